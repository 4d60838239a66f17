//! What AMT records on a device: the audit log, the event log and the alarm clock's
//! occurrences (read, add, delete). Fixed records; an added alarm is acknowledged, not kept.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use mps_mqtt_events::{EventDetails, EventType};
use serde_json::{Value, json};

use super::devices::{Store, connected_device};
use super::error::{ApiError, ApiResult, parse_body};

/// `?startIndex=N` (optional, a positive integer); validated before the device is looked up,
/// as in MPS.
pub(crate) async fn audit_log(
    State(store): State<Store>,
    Path(guid): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    if let Some(raw) = query.get("startIndex") {
        if raw.parse::<u32>().map_or(true, |n| n == 0) {
            return Err(ApiError::bad_request(format!(
                "startIndex {raw:?} must be a positive integer"
            )));
        }
    }
    connected_device(&store, &guid).await?;
    Ok(Json(json!({
        "totalCnt": 1,
        "records": [{
            "AuditAppID": 16,
            "EventID": 0,
            "InitiatorType": 0,
            "AuditApp": "Security Admin",
            "Event": "Provisioning Started",
            "Initiator": "admin",
            "Time": "2026-11-20T09:12:44.000Z",
            "MCLocationType": 0,
            "NetAddress": "127.0.0.1",
            "Ex": "",
            "ExStr": null,
        }],
    })))
}

pub(crate) async fn event_log(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(Json(json!([{
        "DeviceAddress": 255,
        "EventSensorType": 15,
        "EventType": 111,
        "EventOffset": 2,
        "EventSourceType": 104,
        "EventSeverity": 8,
        "SensorNumber": 255,
        "Entity": "BIOS",
        "EntityInstance": 0,
        "EventData": [64, 19, 0, 0, 0, 0, 0, 0],
        "Time": "2026-11-20T09:10:02.000Z",
        "EntityStr": "BIOS",
        "Desc": "Starting operating system boot process",
        "eventTypeDesc": "Sensor-specific",
    }])))
}

pub(crate) async fn alarm_occurrences(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(Json(json!([{
        "ElementName": "nightly-update",
        "InstanceID": "nightly-update",
        "StartTime": { "Datetime": "2026-11-27T02:00:00Z" },
        "Interval": 1440,
        "DeleteOnCompletion": false,
    }])))
}

/// `{"ElementName": "...", "StartTime": "...", "Interval": minutes, "DeleteOnCompletion":
/// bool}`; as in MPS, the CIRA check runs first and a bad body is a 400 after it.
pub(crate) async fn add_alarm(
    State(store): State<Store>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    let body: Value = parse_body(&body)?;
    for field in ["ElementName", "StartTime"] {
        if !body.get(field).is_some_and(Value::is_string) {
            return Err(ApiError::bad_request(format!(
                "Alarm add request failed: {field} is required (a string)"
            )));
        }
    }
    if body.get("Interval").is_some_and(|v| !v.is_u64()) {
        return Err(ApiError::bad_request(
            "Interval must be a number of minutes",
        ));
    }
    Ok(Json(
        json!({ "ReturnValue": 0, "ReturnValueStr": "SUCCESS" }),
    ))
}

/// MPS's soft fail for an alarm the device does not have: a 404 that is not the CIRA check's,
/// which only the handler can tell.
static ALARM_NOT_FOUND: EventDetails = EventDetails::new()
    .kind(EventType::Fail)
    .methods("AMT_AlarmOccurrences")
    .message("Alarm occurrence delete request: alarm not found");

/// MPS's soft fail for a delete request without a `Name`.
static INVALID_ALARM_REQUEST: EventDetails = EventDetails::new()
    .kind(EventType::Fail)
    .methods("AMT_AlarmOccurrences")
    .message("Invalid alarm occurrence request");

/// `{"Name": "..."}`: deletes the occurrence of that name; an unknown one is a 404.
pub(crate) async fn delete_alarm(
    State(store): State<Store>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    let body: Value = parse_body(&body)?;
    match body.get("Name").and_then(Value::as_str) {
        Some("nightly-update") => Ok(Json(json!({ "status": "Alarm occurrence deleted" }))),
        Some(name) => Err(ApiError::not_found(format!(
            "Alarm occurrence delete request: alarm {name:?} not found"
        ))
        .with_details(&ALARM_NOT_FOUND)),
        None => Err(
            ApiError::bad_request("Invalid alarm occurrence request: Name is required")
                .with_details(&INVALID_ALARM_REQUEST),
        ),
    }
}
