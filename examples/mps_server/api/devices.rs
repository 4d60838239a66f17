//! The in-memory devices and the `/api/v1/devices` routes: list, stats, get, create, update
//! and delete.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use mps_mqtt_events::{EventDetails, EventType, PublisherHandle};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::RwLock;

use super::error::{ApiError, ApiResult, parse_body};

/// The device the printed `curl` line targets.
pub(crate) const DEMO_GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

/// A device as MPS lists it (a subset of its fields).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Device {
    pub(crate) guid: String,
    pub(crate) hostname: Option<String>,
    tags: Vec<String>,
    mpsusername: String,
    pub(crate) connection_status: bool,
    friendly_name: Option<String>,
    tenant_id: String,
    /// The AMT power state `GET /amt/power/state` reports (2 = on, 8 = off).
    #[serde(skip)]
    pub(crate) power_state: u8,
}

/// The body of `POST` and `PATCH /api/v1/devices`; absent fields keep their value.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceInput {
    guid: String,
    hostname: Option<String>,
    tags: Option<Vec<String>>,
    mpsusername: Option<String>,
    connection_status: Option<bool>,
    friendly_name: Option<String>,
    tenant_id: Option<String>,
}

/// Devices by lower-case GUID.
pub(crate) type Store = Arc<RwLock<HashMap<String, Device>>>;

/// Three devices: two connected over CIRA, one not (its AMT routes answer 404, as in MPS).
pub(crate) fn seed_devices() -> Store {
    let device = |guid: &str, hostname: &str, tags: &[&str], connected: bool, power: u8| Device {
        guid: guid.to_owned(),
        hostname: Some(hostname.to_owned()),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        mpsusername: "admin".to_owned(),
        connection_status: connected,
        friendly_name: Some(hostname.to_uppercase()),
        tenant_id: String::new(),
        power_state: power,
    };
    let devices = [
        device(DEMO_GUID, "ws-berlin-042", &["berlin", "floor-3"], true, 2),
        device(
            "d12428be-9fa1-4226-9784-54b2038beab6",
            "kiosk-lobby-01",
            &["kiosk"],
            true,
            8,
        ),
        device(
            "8e1c1d8f-5b3a-4f4e-9f6c-2a7d3c9b0e51",
            "lab-nuc-07",
            &["lab"],
            false,
            2,
        ),
    ];
    Arc::new(RwLock::new(
        devices.into_iter().map(|d| (d.guid.clone(), d)).collect(),
    ))
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

async fn find_device(store: &Store, guid: &str) -> ApiResult<Device> {
    store
        .read()
        .await
        .get(&guid.to_ascii_lowercase())
        .cloned()
        .ok_or_else(|| ApiError::unknown_device(guid))
}

/// The event of MPS's CIRA check, said by the handler itself (the layer would say the same
/// for a 404 on these routes; this shows how a handler states it).
static DEVICE_NOT_CONNECTED: EventDetails = EventDetails::new()
    .kind(EventType::Fail)
    .methods("CIRA_Connection")
    .message("Device Not Found");

/// The device, if it is known and connected; what MPS's CIRA middleware checks on `/amt/*`.
pub(crate) async fn connected_device(store: &Store, guid: &str) -> ApiResult<Device> {
    let device = find_device(store, guid).await?;
    if device.connection_status {
        Ok(device)
    } else {
        let message = format!("device {guid} is not connected; connect it again using CIRA");
        Err(ApiError::not_found(message).with_details(&DEVICE_NOT_CONNECTED))
    }
}

/// Publishes MPS's CIRA connection event for every connected device, as if each had just
/// connected (this imitation has no CIRA server).
pub(crate) async fn announce_connected(store: &Store, events: &PublisherHandle) {
    for device in store.read().await.values().filter(|d| d.connection_status) {
        if let Err(e) = events.try_publish(&EventDetails::CIRA_CONNECTED, Some(&device.guid)) {
            tracing::warn!(error = %e, "no CIRA connection event");
        }
    }
}

pub(crate) async fn list_devices(State(store): State<Store>) -> Json<Vec<Device>> {
    let mut devices: Vec<Device> = store.read().await.values().cloned().collect();
    devices.sort_by(|a, b| a.guid.cmp(&b.guid));
    Json(devices)
}

pub(crate) async fn device_stats(State(store): State<Store>) -> Json<Value> {
    let devices = store.read().await;
    let connected = devices.values().filter(|d| d.connection_status).count();
    Json(json!({
        "totalCount": devices.len(),
        "connectedCount": connected,
        "disconnectedCount": devices.len() - connected,
    }))
}

pub(crate) async fn get_device(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Device>> {
    find_device(&store, &guid).await.map(Json)
}

pub(crate) async fn create_device(
    State(store): State<Store>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Device>)> {
    let input: DeviceInput = parse_body(&body)?;
    if !is_uuid(&input.guid) {
        return Err(ApiError::bad_request(format!(
            "guid {:?} is not a UUID (8-4-4-4-12 hex digits)",
            input.guid
        )));
    }
    let guid = input.guid.to_ascii_lowercase();
    let mut devices = store.write().await;
    if devices.contains_key(&guid) {
        return Err(ApiError::bad_request(format!(
            "device {guid} already exists"
        )));
    }
    let device = Device {
        guid: guid.clone(),
        hostname: input.hostname,
        tags: input.tags.unwrap_or_default(),
        mpsusername: input.mpsusername.unwrap_or_default(),
        connection_status: input.connection_status.unwrap_or(false),
        friendly_name: input.friendly_name,
        tenant_id: input.tenant_id.unwrap_or_default(),
        power_state: 2,
    };
    devices.insert(guid, device.clone());
    Ok((StatusCode::CREATED, Json(device)))
}

pub(crate) async fn update_device(
    State(store): State<Store>,
    body: Bytes,
) -> ApiResult<Json<Device>> {
    let input: DeviceInput = parse_body(&body)?;
    let mut devices = store.write().await;
    let device = devices
        .get_mut(&input.guid.to_ascii_lowercase())
        .ok_or_else(|| ApiError::unknown_device(&input.guid))?;
    if input.hostname.is_some() {
        device.hostname = input.hostname;
    }
    if let Some(tags) = input.tags {
        device.tags = tags;
    }
    if let Some(user) = input.mpsusername {
        device.mpsusername = user;
    }
    if let Some(connected) = input.connection_status {
        device.connection_status = connected;
    }
    if input.friendly_name.is_some() {
        device.friendly_name = input.friendly_name;
    }
    if let Some(tenant) = input.tenant_id {
        device.tenant_id = tenant;
    }
    Ok(Json(device.clone()))
}

pub(crate) async fn delete_device(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<StatusCode> {
    match store.write().await.remove(&guid.to_ascii_lowercase()) {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::unknown_device(&guid)),
    }
}

/// Every tag of every device, sorted, once each.
pub(crate) async fn device_tags(State(store): State<Store>) -> Json<Vec<String>> {
    let mut tags: Vec<String> = store
        .read()
        .await
        .values()
        .flat_map(|d| d.tags.iter().cloned())
        .collect();
    tags.sort();
    tags.dedup();
    Json(tags)
}

/// Which redirection sessions (KVM, SOL, IDER) are open: none in this imitation.
pub(crate) async fn redirect_status(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(Json(json!({
        "isKVMConnected": false,
        "isSOLConnected": false,
        "isIDERConnected": false,
    })))
}

/// Forgets a device's cached state; as in MPS, no CIRA connection is required.
pub(crate) async fn refresh_device(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<StatusCode> {
    find_device(&store, &guid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Closes the device's CIRA connection: its AMT routes answer 404 afterwards.
pub(crate) async fn disconnect_device(
    State(store): State<Store>,
    Extension(events): Extension<PublisherHandle>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    if let Some(device) = store.write().await.get_mut(&guid.to_ascii_lowercase()) {
        device.connection_status = false;
    }
    // The event MPS users asked for and MPS never sent.
    if let Err(e) = events.try_publish(&EventDetails::CIRA_DISCONNECTED, Some(&guid)) {
        tracing::warn!(error = %e, "no CIRA disconnection event");
    }
    Ok(Json(json!({
        "success": 200,
        "description": format!("Device {guid} disconnected"),
    })))
}
