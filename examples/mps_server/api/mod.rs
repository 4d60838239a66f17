//! An imitation of the Open AMT MPS REST API under `/api/v1`: the route table ([`app`], all
//! 33 routes of MPS) and the routes that need no device. Logging in is in `auth`, the device
//! routes and the in-memory devices in `devices`, the AMT routes in `amt`, `records` (logs and
//! alarms) and `consent`, MPS's error responses in `error`.

mod amt;
mod auth;
mod consent;
mod devices;
mod error;
mod records;

use axum::Router;
use axum::http::{Method, Uri, header};
use axum::routing::{delete, get, post};
use axum::{Extension, Json};
use mps_mqtt_events::{MqttEventLayer, PublisherHandle};
use serde_json::{Value, json};

use devices::Store;
use error::ApiError;

pub(crate) use devices::{DEMO_GUID, announce_connected, seed_devices};

/// The MPS routes, under `/api/v1`, in the order of MPS's route files, wrapped in `events`.
pub(crate) fn app(store: Store, events: MqttEventLayer) -> Router {
    let handle = events.handle();
    Router::new()
        .route("/api/v1/authorize", post(auth::authorize))
        .route(
            "/api/v1/authorize/redirection/{guid}",
            get(auth::redirection_token),
        )
        .route(
            "/api/v1/devices",
            get(devices::list_devices)
                .post(devices::create_device)
                .patch(devices::update_device),
        )
        .route("/api/v1/devices/stats", get(devices::device_stats))
        .route("/api/v1/devices/tags", get(devices::device_tags))
        .route(
            "/api/v1/devices/{guid}",
            get(devices::get_device).delete(devices::delete_device),
        )
        .route(
            "/api/v1/devices/redirectstatus/{guid}",
            get(devices::redirect_status),
        )
        .route(
            "/api/v1/devices/refresh/{guid}",
            delete(devices::refresh_device),
        )
        .route(
            "/api/v1/devices/disconnect/{guid}",
            delete(devices::disconnect_device),
        )
        .route("/api/v1/ciracert", get(cira_cert))
        .route("/api/v1/amt/log/audit/{guid}", get(records::audit_log))
        .route("/api/v1/amt/log/event/{guid}", get(records::event_log))
        .route(
            "/api/v1/amt/generalSettings/{guid}",
            get(amt::general_settings),
        )
        .route("/api/v1/amt/hardwareInfo/{guid}", get(amt::hardware_info))
        .route("/api/v1/amt/power/action/{guid}", post(amt::power_action))
        .route(
            "/api/v1/amt/power/bootOptions/{guid}",
            post(amt::boot_options),
        )
        .route(
            "/api/v1/amt/power/capabilities/{guid}",
            get(amt::power_capabilities),
        )
        .route("/api/v1/amt/power/state/{guid}", get(amt::power_state))
        .route(
            "/api/v1/amt/features/{guid}",
            get(amt::amt_features).post(amt::set_amt_features),
        )
        .route("/api/v1/amt/version/{guid}", get(amt::amt_version))
        .route("/api/v1/amt/deactivate/{guid}", delete(amt::deactivate))
        .route(
            "/api/v1/amt/userConsentCode/cancel/{guid}",
            get(consent::cancel_code),
        )
        .route(
            "/api/v1/amt/userConsentCode/{guid}",
            get(consent::request_code).post(consent::send_code),
        )
        .route(
            "/api/v1/amt/alarmOccurrences/{guid}",
            get(records::alarm_occurrences)
                .post(records::add_alarm)
                .delete(records::delete_alarm),
        )
        .route("/api/v1/health", get(health))
        .route("/api/v1/version", get(version))
        .fallback(no_route)
        .with_state(store)
        // For handlers that publish events outside requests (a device disconnecting).
        .layer(axum::Extension(handle))
        // Once, last: it wraps every route and the fallback and sees the full request path.
        .layer(events)
}

/// The CA certificate devices trust for CIRA, as PEM (a placeholder in this imitation).
async fn cira_cert() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        "-----BEGIN CERTIFICATE-----\nMPS example: no real CIRA certificate\n-----END CERTIFICATE-----\n",
    )
}

/// MPS's health answer, and the event publisher's (`PublisherHandle::health`): shown, not
/// judged, since a broker that is away fails no request.
async fn health(Extension(events): Extension<PublisherHandle>) -> Json<Value> {
    Json(json!({
        "db": { "name": "in-memory", "status": "OK" },
        "secretStore": { "name": "none", "status": "OK" },
        "mqtt": events.health(),
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
