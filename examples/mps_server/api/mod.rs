//! An imitation of the Open AMT MPS REST API under `/api/v1`: the route table ([`app`]) and
//! the routes that need no device. The device routes and the in-memory devices are in
//! `devices`, the AMT routes in `amt`, MPS's error responses in `error`.

mod amt;
mod devices;
mod error;

use axum::Json;
use axum::Router;
use axum::http::{Method, Uri};
use axum::routing::get;
use mps_mqtt_events::MqttEventLayer;
use serde_json::{Value, json};

use amt::{amt_features, amt_version, hardware_info, power_action, power_state};
use devices::{
    Store, create_device, delete_device, device_stats, get_device, list_devices, update_device,
};
use error::ApiError;

pub(crate) use devices::{DEMO_GUID, seed_devices};

/// The MPS routes this example implements, under `/api/v1`, wrapped in `events`.
pub(crate) fn app(store: Store, events: MqttEventLayer) -> Router {
    Router::new()
        .route(
            "/api/v1/devices",
            get(list_devices).post(create_device).patch(update_device),
        )
        .route("/api/v1/devices/stats", get(device_stats))
        .route(
            "/api/v1/devices/{guid}",
            get(get_device).delete(delete_device),
        )
        .route("/api/v1/amt/version/{guid}", get(amt_version))
        .route("/api/v1/amt/power/state/{guid}", get(power_state))
        .route(
            "/api/v1/amt/power/action/{guid}",
            axum::routing::post(power_action),
        )
        .route("/api/v1/amt/hardwareInfo/{guid}", get(hardware_info))
        .route("/api/v1/amt/features/{guid}", get(amt_features))
        .route("/api/v1/health", get(health))
        .route("/api/v1/version", get(version))
        .fallback(no_route)
        .with_state(store)
        // Once, last: it wraps every route and the fallback and sees the full request path.
        .layer(events)
}

async fn health() -> Json<Value> {
    Json(json!({
        "db": { "name": "in-memory", "status": "OK" },
        "secretStore": { "name": "none", "status": "OK" },
    }))
}

async fn version() -> Json<Value> {
    Json(json!({
        "serviceVersion": concat!(env!("CARGO_PKG_VERSION"), " (mps-mqtt-events example)"),
        "protocolVersion": "4.0.0",
    }))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}
