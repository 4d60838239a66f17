//! The `/api/v1/amt/*` routes; as in MPS, they answer 404 for a device that is not
//! connected.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use mps_mqtt_events::EventData;
use serde_json::{Value, json};

use super::devices::{Store, connected_device};
use super::error::{ApiError, ApiResult, parse_body};

/// AMT power actions this imitation accepts (a subset of what MPS accepts).
const POWER_ACTIONS: [i64; 7] = [2, 5, 8, 10, 11, 12, 14];

pub(crate) async fn amt_version(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(Json(json!({
        "CIM_SoftwareIdentity": { "responses": [
            software_identity("Flash", "16.1.27"),
            software_identity("Netstack", "16.1.27"),
            software_identity("AMTApps", "16.1.27"),
            software_identity("AMT", "16.1.27"),
            software_identity("Sku", "16392"),
            software_identity("Build Number", "2225"),
        ]},
        "AMT_SetupAndConfigurationService": { "response": {
            "ProvisioningMode": 1,
            "ProvisioningState": 2,
            "EnabledState": 5,
        }},
    })))
}

/// One firmware component as `CIM_SoftwareIdentity` lists it.
fn software_identity(id: &str, version: &str) -> Value {
    json!({ "InstanceID": id, "VersionString": version, "IsEntity": true })
}

pub(crate) async fn power_state(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let device = connected_device(&store, &guid).await?;
    Ok(Json(json!({ "powerstate": device.power_state })))
}

/// `{"action": N}`; as in MPS the body is validated before the device is looked up. Its
/// event carries `data: {"action": N}`, which MPS's does not, so subscribers see which action.
pub(crate) async fn power_action(
    State(store): State<Store>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: Value = parse_body(&body)?;
    let action = match body.get("action") {
        None => return Err(ApiError::bad_request("action is required")),
        Some(value) => value.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!("action must be an integer, got {value}"))
        })?,
    };
    if !POWER_ACTIONS.contains(&action) {
        return Err(ApiError::bad_request(format!(
            "action {action} is not supported; expected one of {POWER_ACTIONS:?}"
        )));
    }
    connected_device(&store, &guid).await?;
    if let Some(device) = store.write().await.get_mut(&guid.to_ascii_lowercase()) {
        // Power off (8) and graceful off (12) leave the device off; everything else on.
        device.power_state = if matches!(action, 8 | 12) { 8 } else { 2 };
    }
    let mut response =
        Json(json!({ "Body": { "ReturnValue": 0, "ReturnValueStr": "SUCCESS" } })).into_response();
    if let Ok(data) = EventData::new(&json!({ "action": action })) {
        data.attach(&mut response);
    }
    Ok(response)
}

pub(crate) async fn hardware_info(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let device = connected_device(&store, &guid).await?;
    let platform_guid = device.guid.replace('-', "").to_uppercase();
    let dimm = json!({ "Capacity": 8_589_934_592_u64, "Speed": 3200, "MemoryType": 26 });
    Ok(Json(json!({
        "CIM_ComputerSystemPackage": { "response": { "PlatformGUID": platform_guid } },
        "CIM_SystemPackaging": { "responses": [{
            "Manufacturer": "Dell Inc.",
            "Model": "OptiPlex 7090",
            "SerialNumber": "4KB2X53",
        }]},
        "CIM_Chassis": { "response": { "ChassisPackageType": 3, "Manufacturer": "Dell Inc." } },
        "CIM_Processor": { "responses": [{
            "CurrentClockSpeed": 2500,
            "MaxClockSpeed": 8000,
            "HealthState": 5,
        }]},
        "CIM_PhysicalMemory": { "responses": [dimm.clone(), dimm] },
    })))
}

pub(crate) async fn amt_features(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(Json(json!({
        "userConsent": "kvm",
        "redirection": true,
        "KVM": true,
        "SOL": true,
        "IDER": true,
        "optInState": 0,
        "kvmAvailable": true,
        "ocr": false,
        "httpsBootSupported": false,
        "winREBootSupported": false,
        "localPBABootSupported": false,
        "remoteErase": false,
    })))
}

/// `{"userConsent": "kvm"|"all"|"none", "enableSOL": bool, "enableIDER": bool, "enableKVM":
/// bool}` (`ocr` and `remoteErase` optional booleans); as in MPS the body is validated before
/// the device is looked up, and the answer's `status` is the success event's text.
pub(crate) async fn set_amt_features(
    State(store): State<Store>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Value = parse_body(&body)?;
    match body.get("userConsent").and_then(Value::as_str) {
        Some("kvm" | "all" | "none") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "userConsent {other:?} is not supported; expected kvm, all or none"
            )));
        }
        None => return Err(ApiError::bad_request("userConsent is required")),
    }
    for (field, required) in [
        ("enableSOL", true),
        ("enableIDER", true),
        ("enableKVM", true),
        ("ocr", false),
        ("remoteErase", false),
    ] {
        match body.get(field) {
            Some(Value::Bool(_)) => {}
            None if !required => {}
            None => return Err(ApiError::bad_request(format!("{field} is required"))),
            Some(value) => {
                return Err(ApiError::bad_request(format!(
                    "{field} must be a boolean, got {value}"
                )));
            }
        }
    }
    connected_device(&store, &guid).await?;
    Ok(Json(json!({ "status": "AMT Features updated" })))
}

pub(crate) async fn general_settings(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let device = connected_device(&store, &guid).await?;
    Ok(Json(json!({
        "HostName": device.hostname,
        "DomainName": "vpro.example",
        "NetworkInterfaceEnabled": true,
        "DigestRealm": "Digest:A3829B3827DE4D33D4449B366831B69B",
        "PowerSource": 0,
        "AMTNetworkEnabled": 1,
        "RmcpPingResponseEnabled": true,
        "WsmanOnlyMode": false,
    })))
}

pub(crate) async fn power_capabilities(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(Json(json!({
        "Power up": 2, "Power cycle": 5, "Power down": 8, "Reset": 10,
        "Soft-off": 12, "Soft-reset": 14, "Sleep": 4, "Hibernate": 7,
        "Power up to BIOS": 100, "Reset to BIOS": 101,
    })))
}

/// `{"action": N, "useSOL": bool}`; validated before the device is looked up, as in MPS.
pub(crate) async fn boot_options(
    State(store): State<Store>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Value = parse_body(&body)?;
    match body.get("action").map(Value::as_i64) {
        Some(Some(100..=111 | 200..=203 | 300..=301 | 400..=401)) => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "action is not a boot action (100-111, 200-203, 300-301, 400-401)",
            ));
        }
        None => return Err(ApiError::bad_request("action is required")),
    }
    if body.get("useSOL").is_some_and(|v| !v.is_boolean()) {
        return Err(ApiError::bad_request("useSOL must be a boolean"));
    }
    connected_device(&store, &guid).await?;
    Ok(Json(
        json!({ "Body": { "ReturnValue": 0, "ReturnValueStr": "SUCCESS" } }),
    ))
}

/// Unprovisions AMT: the device stays listed, as MPS leaves that to the caller.
pub(crate) async fn deactivate(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(Json(json!({ "status": "SUCCESS" })))
}
