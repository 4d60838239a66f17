//! What handlers say about their requests' events (`EventDetails` on the response), and
//! events outside HTTP (`PublisherHandle::try_publish`), through a real broker to a real
//! subscriber, in both profiles.

mod support;

use std::time::Duration;

use mps_mqtt_events::{
    Event, EventData, EventDetails, EventType, MqttEventLayer, Profile, TryPublishError,
};
use serde_json::json;
use support::{connected, payloads, respond, respond_with};

const WAIT: Duration = Duration::from_secs(10);
const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

/// MPS's soft fail of the power state route (the device's answer had no state).
static POWER_STATE_FAILED: EventDetails = EventDetails::new()
    .kind(EventType::Fail)
    .methods("AMT_PowerState")
    .message("Power State request failed");
/// MPS's answer when the device has no such alarm (HTTP 404, not the CIRA check's).
static ALARM_NOT_FOUND: EventDetails = EventDetails::new()
    .methods("AMT_AlarmOccurrences")
    .message("Alarm occurrence delete request: alarm not found");
/// A validation error, which MPS answers without an event.
static VALIDATION: EventDetails = EventDetails::SILENT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_details_say_what_happened_in_the_mps_profile() {
    let (_broker, mut subscriber, layer) =
        connected("details_mps", |b| b.profile(Profile::Mps)).await;
    let state = format!("/api/v1/amt/power/state/{GUID}");
    let alarms = format!("/api/v1/amt/alarmOccurrences/{GUID}");
    respond(&layer, "GET", &state, 400, Some(&POWER_STATE_FAILED)).await;
    respond(&layer, "DELETE", &alarms, 404, Some(&ALARM_NOT_FOUND)).await;
    respond(&layer, "GET", &state, 400, Some(&VALIDATION)).await; // silent, as in MPS
    layer.handle().flush(WAIT).await.expect("delivered");
    assert_eq!(
        payloads(&mut subscriber, 4, WAIT).await,
        [
            json!({"type":"request","message":"Power State requested","methods":["AMT_PowerState"],"guid":GUID}),
            json!({"type":"fail","message":"Power State request failed","methods":["AMT_PowerState"],"guid":GUID}),
            json!({"type":"request","message":"Alarm occurrence delete request","methods":["AMT_DeleteAlarm"],"guid":GUID}),
            json!({"type":"fail","message":"Alarm occurrence delete request: alarm not found","methods":["AMT_AlarmOccurrences"],"guid":GUID}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_details_replace_the_one_event_of_the_all_profile() {
    let (_broker, mut subscriber, layer) =
        connected("details_all", |b| b.profile(Profile::All)).await;
    let alarms = format!("/api/v1/amt/alarmOccurrences/{GUID}");
    respond(&layer, "DELETE", &alarms, 404, Some(&ALARM_NOT_FOUND)).await;
    respond(&layer, "GET", "/api/v1/devices", 400, Some(&VALIDATION)).await;
    respond(&layer, "GET", "/api/v1/devices", 200, None).await;
    layer.handle().flush(WAIT).await.expect("delivered");
    let events = payloads(&mut subscriber, 2, WAIT).await;
    assert_eq!(events[0]["type"], "fail");
    assert_eq!(
        events[0]["message"],
        "Alarm occurrence delete request: alarm not found"
    );
    assert_eq!(events[0]["methods"], json!(["AMT_AlarmOccurrences"]));
    assert_eq!(events[0]["http"]["status"], 404);
    assert_eq!(
        events[1]["methods"],
        json!(["getAllDevices"]),
        "the silent one published nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_outside_http_go_through_the_same_queue() {
    let (_broker, mut subscriber, layer) =
        connected("external_all", |b| b.profile(Profile::All)).await;
    let handle = layer.handle();
    handle
        .try_publish(&EventDetails::CIRA_CONNECTED, Some(GUID))
        .expect("queued");
    handle
        .try_publish(&EventDetails::CIRA_DISCONNECTED, Some("not-a-guid"))
        .expect("queued");
    handle
        .try_publish(&EventDetails::REDIRECTION_STARTED, None)
        .expect("queued");
    handle.flush(WAIT).await.expect("delivered");
    let mut events = payloads(&mut subscriber, 3, WAIT).await;
    for event in &mut events {
        let object = event.as_object_mut().expect("an object");
        assert!(
            object.remove("id").is_some_and(|id| id.is_string()),
            "{object:?}"
        );
        assert!(!object.contains_key("http"), "no HTTP exchange: {object:?}");
    }
    assert_eq!(
        events,
        [
            json!({"type":"success","message":"CIRA Connection Established","methods":["CIRA_Connected"],"guid":GUID}),
            json!({"type":"success","message":"CIRA Connection Closed","methods":["CIRA_Disconnected"]}),
            json!({"type":"success","message":"Redirection session started","methods":["handleConnection"]}),
        ]
    );
    let stats = handle.stats();
    assert_eq!((stats.enqueued, stats.delivered), (3, 3), "{stats:#?}");

    handle.shutdown(WAIT).await;
    assert_eq!(
        handle.try_publish(&EventDetails::REDIRECTION_ENDED, None),
        Err(TryPublishError::Closed)
    );
    assert_eq!(handle.stats().dropped_closed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_outside_http_in_the_mps_profile_have_mps_fields_only() {
    let (_broker, mut subscriber, layer) =
        connected("external_mps", |b| b.profile(Profile::Mps)).await;
    let handle = layer.handle();
    handle
        .try_publish(&EventDetails::CIRA_CONNECTION_FAILED, Some(GUID))
        .expect("queued");
    handle.flush(WAIT).await.expect("delivered");
    assert_eq!(
        payloads(&mut subscriber, 1, WAIT).await,
        [
            json!({"type":"fail","message":"CIRA Connection Failed","methods":["CIRA_Connected"],"guid":GUID})
        ]
    );
}

#[test]
fn try_publish_on_a_disabled_layer_does_nothing() {
    let handle = MqttEventLayer::disabled().handle();
    assert_eq!(
        handle.try_publish(&EventDetails::CIRA_CONNECTED, Some(GUID)),
        Ok(())
    );
    assert_eq!(handle.stats().enqueued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_can_name_the_device_of_its_event() {
    use std::convert::Infallible;
    use tower::{Layer, ServiceExt, service_fn};
    const CREATED: &str = "8e1c1d8f-5b3a-4f4e-9f6c-2a7d3c9b0e51";
    let (_broker, mut subscriber, layer) =
        connected("handler_guid", |b| b.profile(Profile::All)).await;
    // A device created from a request body: the path has no guid, the handler knows it.
    let inner = service_fn(|_: http::Request<()>| async {
        let mut response = http::Response::new(());
        assert!(EventDetails::attach_guid(&mut response, CREATED));
        assert!(
            !EventDetails::attach_guid(&mut response, "not/a+guid#"),
            "not a UUID"
        );
        Ok::<_, Infallible>(response)
    });
    let request = http::Request::post("/api/v1/devices")
        .body(())
        .expect("a request");
    layer
        .layer(inner)
        .oneshot(request)
        .await
        .expect("infallible");
    layer.handle().flush(WAIT).await.expect("delivered");
    let events = payloads(&mut subscriber, 1, WAIT).await;
    assert_eq!(events[0]["methods"], json!(["insertDevice"]));
    assert_eq!(events[0]["guid"], CREATED, "{}", events[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_data_arrives_as_the_events_data_in_both_profiles() {
    let state = format!("/api/v1/amt/power/state/{GUID}");
    let answer = json!({"returnValue": 2, "returnValueStr": "NOT_READY"});
    let data = EventData::new(&answer).expect("an object");
    for profile in [Profile::All, Profile::Mps] {
        let (_broker, mut subscriber, layer) =
            connected("handler_data", |b| b.profile(profile)).await;
        let data = data.clone();
        respond_with(&layer, "GET", &state, 400, move |response| {
            POWER_STATE_FAILED.attach(response);
            data.clone().attach(response);
        })
        .await;
        respond(&layer, "GET", &state, 200, None).await;
        layer.handle().flush(WAIT).await.expect("delivered");
        let n = if profile == Profile::Mps { 4 } else { 2 };
        let events = payloads(&mut subscriber, n, WAIT).await;
        let with_data: Vec<_> = events.iter().filter(|e| e.get("data").is_some()).collect();
        assert_eq!(
            with_data.len(),
            1,
            "{profile:?}: only the outcome event: {events:?}"
        );
        assert_eq!(with_data[0]["data"], answer, "{profile:?}");
        assert_eq!(with_data[0]["message"], "Power State request failed");
        let mut payload = with_data[0].clone();
        payload["timestamp"] = json!(0); // `payloads` checked and removed it
        let event: Event = serde_json::from_value(payload).expect("an Event");
        assert_eq!(
            event.data.as_ref().map(|d| d["returnValue"].clone()),
            Some(json!(2))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_goes_with_an_event_outside_http() {
    let (_broker, mut subscriber, layer) =
        connected("external_data", |b| b.profile(Profile::All)).await;
    let handle = layer.handle();
    let data = EventData::new(&json!({"peer": "192.0.2.7:4433"})).expect("an object");
    handle
        .try_publish_with_data(&EventDetails::CIRA_CONNECTED, Some(GUID), data)
        .expect("queued");
    handle.flush(WAIT).await.expect("delivered");
    let events = payloads(&mut subscriber, 1, WAIT).await;
    assert_eq!(events[0]["methods"], json!(["CIRA_Connected"]));
    assert_eq!(events[0]["guid"], GUID);
    assert_eq!(events[0]["data"], json!({"peer": "192.0.2.7:4433"}));
    assert!(events[0].get("http").is_none(), "{}", events[0]);
}
