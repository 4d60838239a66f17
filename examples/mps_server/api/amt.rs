//! The `/api/v1/amt/*` routes; as in MPS, they answer 404 for a device that is not
//! connected.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
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

/// `{"action": N}`; as in MPS the body is validated before the device is looked up.
pub(crate) async fn power_action(
    State(store): State<Store>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(
        json!({ "Body": { "ReturnValue": 0, "ReturnValueStr": "SUCCESS" } }),
    ))
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
