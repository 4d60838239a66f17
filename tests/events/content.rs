//! What each event says: MPS's fields for each kind of route and status, and no trace of a
//! path the route table does not know.

use rumqttc::QoS;
use serde_json::json;

use crate::support;
use crate::{GUID, Harness, POWER_ACTION_BODY, QUIET, UNKNOWN_GUID, normalised};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_mps_shaped_event_for_power_action() {
    let mut h = Harness::start("power_action").await;
    let path = format!("/api/v1/amt/power/action/{GUID}");

    let before = support::now_ms();
    let response = support::http_response(h.addr, "POST", &path, Some(r#"{"action":2}"#)).await;
    assert_eq!(
        response,
        (200, POWER_ACTION_BODY.to_owned()),
        "response unchanged"
    );
    let received = h.next_event(QoS::AtLeastOnce).await;
    let after = support::now_ms();

    assert_eq!(
        normalised(&received.payload, before, after),
        json!({
            "type": "success",
            "message": "Power Action requested",
            "methods": ["AMT_PowerAction"],
            "guid": GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "POST",
                "path": "/api/v1/amt/power/action/:guid",
                "status": 200,
                "latency_ms": 0.0
            }
        })
    );
    // MPS's fields first, in MPS's order, compact: what MPS subscribers parse.
    let mps_prefix = format!(
        r#"{{"type":"success","message":"Power Action requested","methods":["AMT_PowerAction"],"guid":"{GUID}","timestamp":"#
    );
    assert!(
        received.raw.starts_with(&mps_prefix),
        "payload {:?} does not start with {mps_prefix:?}",
        received.raw
    );
    assert!(
        !received.raw.contains('\n'),
        "payload is not compact: {:?}",
        received.raw
    );
    h.subscriber.assert_quiet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_device_not_found_when_an_amt_route_answers_404() {
    let mut h = Harness::start("device_not_found").await;
    let event = h
        .event_of(
            "GET",
            &format!("/api/v1/amt/power/state/{UNKNOWN_GUID}"),
            None,
            404,
        )
        .await;
    assert_eq!(
        event,
        json!({
            "type": "fail",
            "message": "Device Not Found",
            "methods": ["CIRA_Connection"],
            "guid": UNKNOWN_GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/amt/power/state/:guid",
                "status": 404,
                "latency_ms": 0.0
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_power_state_success_for_a_connected_device() {
    let mut h = Harness::start("power_state").await;
    let event = h
        .event_of("GET", &format!("/api/v1/amt/power/state/{GUID}"), None, 200)
        .await;
    assert_eq!(
        event,
        json!({
            "type": "success",
            "message": "Power State requested",
            "methods": ["AMT_PowerState"],
            "guid": GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/amt/power/state/:guid",
                "status": 200,
                "latency_ms": 0.0
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_internal_service_error_when_a_handler_answers_500() {
    let mut h = Harness::start("internal_error").await;
    let event = h
        .event_of("GET", &format!("/api/v1/amt/log/event/{GUID}"), None, 500)
        .await;
    assert_eq!(
        event,
        json!({
            "type": "fail",
            "message": "Internal Service Error",
            "methods": ["AMT_EventLog"],
            "guid": GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/amt/log/event/:guid",
                "status": 500,
                "latency_ms": 0.0
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_success_without_guid_for_the_device_list() {
    let mut h = Harness::start("device_list").await;
    let event = h.event_of("GET", "/api/v1/devices", None, 200).await;
    assert_eq!(
        event,
        json!({
            "type": "success",
            "message": "Request succeeded",
            "methods": ["getAllDevices"],
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/devices",
                "status": 200,
                "latency_ms": 0.0
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_health_check_events_for_success_and_failure() {
    let mut h = Harness::start("health").await;
    let healthy = h.event_of("GET", "/api/v1/health", None, 200).await;
    assert_eq!(
        healthy,
        json!({
            "type": "success",
            "message": "Request succeeded",
            "methods": ["getHealthCheck"],
            "timestamp": 0,
            "id": "<id>",
            "http": {"method": "GET", "path": "/api/v1/health", "status": 200, "latency_ms": 0.0}
        })
    );
    // The query string takes part in routing the handler, never in the event.
    let failed = h.event_of("GET", "/api/v1/health?fail=1", None, 500).await;
    assert_eq!(
        failed,
        json!({
            "type": "fail",
            "message": "Health Check Failed",
            "methods": ["getHealthCheck"],
            "timestamp": 0,
            "id": "<id>",
            "http": {"method": "GET", "path": "/api/v1/health", "status": 500, "latency_ms": 0.0}
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_not_echoed_into_events() {
    let mut h = Harness::start("unknown_path").await;
    let event = h
        .event_of(
            "GET",
            &format!("/internal/token/s3cr3t/{GUID}?key=x"),
            None,
            404,
        )
        .await;
    assert_eq!(
        event,
        json!({
            "type": "fail",
            "message": "Request failed",
            "methods": ["unknown"],
            "timestamp": 0,
            "id": "<id>",
            "http": {"method": "GET", "path": null, "status": 404, "latency_ms": 0.0}
        })
    );
}
