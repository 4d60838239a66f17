//! The `mps` profile end to end: requests through the layer, events as a real subscriber
//! receives them from a real broker, in MPS's order and with MPS's fields only.

mod support;

use std::time::Duration;

use mps_mqtt_events::{MqttEventLayer, Profile};
use serde_json::{Value, json};
use support::{Broker, Subscriber, connected, payloads, respond, unique_topic};

const WAIT: Duration = Duration::from_secs(10);
const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mps_profile_publishes_mps_events_in_mps_order_and_nothing_else() {
    let (_broker, mut subscriber, layer) =
        connected("mps_profile", |b| b.profile(Profile::Mps)).await;
    let handle = layer.handle();

    respond(
        &layer,
        "GET",
        &format!("/api/v1/amt/hardwareInfo/{GUID}"),
        200,
        None,
    )
    .await;
    respond(&layer, "GET", "/api/v1/devices", 200, None).await; // MPS publishes nothing
    respond(
        &layer,
        "POST",
        &format!("/api/v1/amt/power/action/{GUID}"),
        200,
        None,
    )
    .await;
    respond(
        &layer,
        "GET",
        &format!("/api/v1/amt/features/{GUID}"),
        404,
        None,
    )
    .await;
    respond(
        &layer,
        "GET",
        &format!("/api/v1/amt/power/state/{GUID}"),
        500,
        None,
    )
    .await;
    respond(&layer, "GET", "/not/mps", 200, None).await; // outside MPS's routes
    handle.flush(WAIT).await.expect("delivered");

    let events = payloads(&mut subscriber, 6, WAIT).await;
    assert_eq!(
        events,
        [
            json!({"type":"request","message":"Hardware Information requested","methods":["AMT_HardwareInfo"],"guid":GUID}),
            json!({"type":"success","message":"Hardware Information received","methods":["AMT_HardwareInfo"],"guid":GUID}),
            json!({"type":"success","message":"Power Action requested","methods":["AMT_PowerAction"]}),
            json!({"type":"fail","message":"Device Not Found","methods":["CIRA_Connection"],"guid":GUID}),
            json!({"type":"request","message":"Power State requested","methods":["AMT_PowerState"],"guid":GUID}),
            json!({"type":"fail","message":"Internal Service Error","methods":["AMT_PowerState"]}),
        ]
    );
    let stats = handle.stats();
    assert_eq!((stats.enqueued, stats.delivered), (6, 6), "{stats:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mps_id_and_http_add_our_fields_to_the_mps_profile() {
    let (_broker, mut subscriber, layer) = connected("mps_profile_fields", |b| {
        b.profile(Profile::Mps).mps_id_and_http(true)
    })
    .await;
    respond(
        &layer,
        "GET",
        &format!("/api/v1/amt/log/audit/{GUID}"),
        200,
        None,
    )
    .await;
    layer.handle().flush(WAIT).await.expect("delivered");
    let events = payloads(&mut subscriber, 1, WAIT).await;
    assert_eq!(events[0]["message"], "Audit Log Requested");
    assert_eq!(events[0]["type"], "request");
    assert!(events[0]["id"].is_string(), "{}", events[0]);
    assert_eq!(events[0]["http"]["path"], "/api/v1/amt/log/audit/:guid");
    // A request event is published for the start of the request: no status yet.
    assert_eq!(events[0]["http"]["status"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_templates_put_type_guid_and_method_into_the_topic() {
    let broker = Broker::start();
    let base = unique_topic("templates");
    let mut subscriber = Subscriber::connect(&broker.url(), &format!("{base}/#")).await;
    let layer = MqttEventLayer::builder()
        .address(broker.url())
        .topic(format!("{base}/{{type}}/{{guid}}/{{method}}"))
        .build()
        .expect("valid config");
    respond(
        &layer,
        "POST",
        &format!("/api/v1/amt/power/action/{GUID}"),
        200,
        None,
    )
    .await;
    respond(&layer, "GET", "/api/v1/devices", 500, None).await;
    layer.handle().flush(WAIT).await.expect("delivered");
    let topics: Vec<String> = subscriber
        .collect(2, WAIT)
        .await
        .into_iter()
        .map(|event| event.topic)
        .collect();
    assert_eq!(
        topics,
        [
            format!("{base}/success/{GUID}/AMT_PowerAction"),
            format!("{base}/fail/none/getAllDevices"),
        ]
    );
    assert_eq!(
        layer.handle().topic(),
        Some(format!("{base}/{{type}}/{{guid}}/{{method}}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_leave_out_routes_and_types_before_anything_is_queued() {
    let broker = Broker::start();
    let topic = unique_topic("filters");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = MqttEventLayer::builder()
        .address(broker.url())
        .topic(&topic)
        .exclude_routes(["/api/v1/health"])
        .only_types([mps_mqtt_events::EventType::Fail])
        .build()
        .expect("valid config");
    let handle = layer.handle();
    respond(&layer, "GET", "/api/v1/health", 500, None).await; // route left out
    respond(&layer, "GET", "/api/v1/devices", 200, None).await; // a success: type left out
    respond(&layer, "GET", "/api/v1/devices", 404, None).await; // kept
    handle.flush(WAIT).await.expect("delivered");
    let events = payloads(&mut subscriber, 1, WAIT).await;
    assert_eq!(events[0]["type"], "fail");
    assert_eq!(events[0]["http"]["path"], "/api/v1/devices");
    let stats = handle.stats();
    assert_eq!(
        (
            stats.enqueued,
            stats.dropped_queue_full,
            stats.dropped_closed
        ),
        (1, 0, 0),
        "left-out events are counted nowhere: {stats:#?}"
    );
}
