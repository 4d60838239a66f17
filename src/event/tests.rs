//! Unit tests of `event.rs`.

use super::*;
use crate::record::MethodName;
use http::Method;
use serde_json::json;
use std::time::{Duration, Instant};

const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

fn record(method: Method, path: &str, outcome: Outcome) -> Record {
    let start = Instant::now();
    Record::new(
        routes::recognize(&method, path),
        MethodName::of(&method),
        outcome,
        start,
        start + Duration::from_micros(1234),
    )
}

fn route_of(method: Method, path: &str) -> Option<&'static Route> {
    let (id, _) = routes::recognize(&method, path);
    id.map(|id| &routes::ROUTES[usize::from(id)])
}

fn json_of(record: &Record) -> serde_json::Value {
    let bytes = serde_json::to_vec(&Event::of(record, 1_700_000_000_123, "e-1".to_owned()))
        .expect("serializes");
    serde_json::from_slice(&bytes).expect("valid JSON")
}

#[test]
fn power_action_success_is_mps_shaped() {
    let r = record(
        Method::POST,
        &format!("/api/v1/amt/power/action/{GUID}"),
        Outcome::Status(200),
    );
    let text = serde_json::to_string(&Event::of(&r, 1_700_000_000_123, "e-1".to_owned()))
        .expect("serializes");
    assert_eq!(
        text,
        format!(
            r#"{{"type":"success","message":"Power Action requested","methods":["AMT_PowerAction"],"guid":"{GUID}","timestamp":1700000000123,"id":"e-1","http":{{"method":"POST","path":"/api/v1/amt/power/action/:guid","status":200,"latency_ms":1.234}}}}"#
        )
    );
}

#[test]
fn device_not_found_names_the_cira_connection() {
    let r = record(
        Method::GET,
        &format!("/api/v1/amt/hardwareInfo/{GUID}"),
        Outcome::Status(404),
    );
    assert_eq!(
        json_of(&r),
        json!({"type":"fail","message":"Device Not Found","methods":["CIRA_Connection"],"guid":GUID,
               "timestamp":1_700_000_000_123_u64, "id":"e-1",
               "http":{"method":"GET","path":"/api/v1/amt/hardwareInfo/:guid","status":404,"latency_ms":1.234}})
    );
}

#[test]
fn routes_without_guid_omit_the_key() {
    let r = record(Method::GET, "/api/v1/devices/stats", Outcome::Status(200));
    assert_eq!(
        json_of(&r),
        json!({"type":"success","message":"Request succeeded","methods":["getDeviceStats"],
               "timestamp":1_700_000_000_123_u64, "id":"e-1",
               "http":{"method":"GET","path":"/api/v1/devices/stats","status":200,"latency_ms":1.234}})
    );
}

#[test]
fn unknown_route_has_null_path_and_no_guid() {
    let r = record(
        Method::GET,
        &format!("/secret/token/{GUID}?key=x"),
        Outcome::Status(404),
    );
    assert_eq!(
        json_of(&r),
        json!({"type":"fail","message":"Request failed","methods":["unknown"],
               "timestamp":1_700_000_000_123_u64, "id":"e-1",
               "http":{"method":"GET","path":null,"status":404,"latency_ms":1.234}})
    );
}

#[test]
fn cancelled_and_errors_have_null_status() {
    let path = format!("/api/v1/amt/power/state/{GUID}");
    let cancelled = json_of(&record(Method::GET, &path, Outcome::Cancelled));
    assert_eq!(cancelled["type"], "fail");
    assert_eq!(
        cancelled["message"],
        "Request cancelled before a response was sent"
    );
    assert_eq!(cancelled["http"]["status"], serde_json::Value::Null);
    let error = json_of(&record(Method::GET, &path, Outcome::ServiceError));
    assert_eq!(error["message"], "Internal Service Error");
    assert_eq!(error["guid"], GUID);
    assert_eq!(error["http"]["status"], serde_json::Value::Null);
}

#[test]
fn malformed_guids_are_left_out() {
    let bad = "4c4c4544-004b-4210-8033-b6c04f50463\"";
    let r = record(
        Method::GET,
        &format!("/api/v1/amt/power/state/{bad}"),
        Outcome::Status(400),
    );
    let event = json_of(&r);
    assert_eq!(event["http"]["path"], "/api/v1/amt/power/state/:guid");
    assert_eq!(event.get("guid"), None);
}

#[test]
fn reads_events_published_by_mps() {
    let mps = r#"{"type":"request","message":"Event Log requested","methods":["AMT_EventLog"],"guid":"4c4c4544-004b-4210-8033-b6c04f504633","timestamp":1700000000123}"#;
    let event: Event = serde_json::from_str(mps).expect("MPS event parses");
    assert_eq!(event.kind, EventType::Request);
    assert_eq!(event.http, None);
    assert_eq!(
        serde_json::to_string(&event).expect("serializes"),
        mps,
        "round trip is byte-identical"
    );
}

#[test]
fn messages_follow_mps_per_outcome() {
    let power = route_of(Method::POST, &format!("/api/v1/amt/power/action/{GUID}"));
    let state = route_of(Method::GET, &format!("/api/v1/amt/power/state/{GUID}"));
    let devices = route_of(Method::GET, "/api/v1/devices");
    let health = route_of(Method::GET, "/api/v1/health");
    let cases = [
        (
            power,
            Outcome::Status(200),
            (
                EventType::Success,
                "Power Action requested",
                "AMT_PowerAction",
            ),
        ),
        (
            power,
            Outcome::Status(404),
            (EventType::Fail, "Device Not Found", "CIRA_Connection"),
        ),
        (
            power,
            Outcome::Status(500),
            (EventType::Fail, "Internal Service Error", "AMT_PowerAction"),
        ),
        (
            power,
            Outcome::Status(400),
            (EventType::Fail, "Request failed", "AMT_PowerAction"),
        ),
        (
            power,
            Outcome::ServiceError,
            (EventType::Fail, "Internal Service Error", "AMT_PowerAction"),
        ),
        (
            power,
            Outcome::Cancelled,
            (EventType::Fail, CANCELLED, "AMT_PowerAction"),
        ),
        (
            state,
            Outcome::Status(200),
            (
                EventType::Success,
                "Power State requested",
                "AMT_PowerState",
            ),
        ),
        (
            state,
            Outcome::Status(400),
            (
                EventType::Fail,
                "Power State request failed",
                "AMT_PowerState",
            ),
        ),
        (
            devices,
            Outcome::Status(200),
            (EventType::Success, "Request succeeded", "getAllDevices"),
        ),
        (
            devices,
            Outcome::Status(404),
            (EventType::Fail, "Request failed", "getAllDevices"),
        ),
        (
            health,
            Outcome::Status(500),
            (EventType::Fail, "Health Check Failed", "getHealthCheck"),
        ),
        (
            health,
            Outcome::Status(503),
            (EventType::Fail, "Health Check Failed", "getHealthCheck"),
        ),
        (
            None,
            Outcome::Status(302),
            (EventType::Success, "Request succeeded", "unknown"),
        ),
        (
            None,
            Outcome::Status(404),
            (EventType::Fail, "Request failed", "unknown"),
        ),
        (
            None,
            Outcome::Panicked,
            (EventType::Fail, "Internal Service Error", "unknown"),
        ),
    ];
    for (route, outcome, expected) in cases {
        assert_eq!(
            describe(route, outcome),
            expected,
            "{:?} {outcome:?}",
            route.map(|r| r.template)
        );
    }
}

#[test]
fn the_view_serializes_exactly_as_the_event() {
    let outcomes = [
        Outcome::Status(200),
        Outcome::Status(404),
        Outcome::Status(503),
        Outcome::Cancelled,
        Outcome::ServiceError,
        Outcome::Panicked,
    ];
    let mut paths: Vec<(Method, String)> = routes::ROUTES
        .iter()
        .map(|r| (r.method.clone(), r.template.replace(":guid", GUID)))
        .collect();
    paths.push((Method::GET, "/elsewhere".to_owned()));
    paths.push((Method::GET, "/api/v1/amt/power/state/not-a-guid".to_owned()));
    for (method, path) in &paths {
        for outcome in outcomes {
            let r = record(method.clone(), path, outcome);
            let id = EventId {
                instance: 0x1f0e_9a7c_3b2d_4e5f,
                seq: 42,
            };
            let view = serde_json::to_string(&EventView::new(
                &r,
                1_700_000_000_123,
                id,
                Overrides::default(),
            ))
            .expect("serializes");
            let event = serde_json::to_string(&Event::of(&r, 1_700_000_000_123, id.to_string()))
                .expect("serializes");
            assert_eq!(view, event, "{method} {path} {outcome:?}");
        }
    }
}
