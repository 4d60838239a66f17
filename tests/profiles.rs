//! The `mps` profile end to end: requests through the layer, events as a real subscriber
//! receives them from a real broker, in MPS's order and with MPS's fields only.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use mps_mqtt_events::{MqttEventLayer, Profile};
use serde_json::{Value, json};
use support::{Broker, Subscriber, unique_topic};
use tower::{Layer, ServiceExt, service_fn};

const WAIT: Duration = Duration::from_secs(10);
const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

/// Sends `method path` through the layer, the inner service answering `status`.
async fn call(layer: &MqttEventLayer, method: &str, path: &str, status: u16) {
    let inner = service_fn(move |_: Request<()>| async move {
        let mut response = Response::new(());
        *response.status_mut() = StatusCode::from_u16(status).expect("a status");
        Ok::<_, Infallible>(response)
    });
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .expect("a request");
    let response = layer
        .layer(inner)
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status().as_u16(), status);
}

/// The events a subscriber receives, without their timestamps (checked to be numbers).
async fn received(subscriber: &mut Subscriber, n: usize) -> Vec<Value> {
    let events = subscriber.collect(n, WAIT).await;
    subscriber.assert_quiet(Duration::from_millis(300)).await;
    events
        .into_iter()
        .map(|event| {
            let mut payload = event.payload;
            let timestamp = payload.as_object_mut().and_then(|o| o.remove("timestamp"));
            assert!(timestamp.is_some_and(|t| t.is_u64()), "{payload}");
            payload
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mps_profile_publishes_mps_events_in_mps_order_and_nothing_else() {
    let broker = Broker::start();
    let topic = unique_topic("mps_profile");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = MqttEventLayer::builder()
        .address(broker.url())
        .topic(&topic)
        .profile(Profile::Mps)
        .build()
        .expect("valid config");
    let handle = layer.handle();

    call(
        &layer,
        "GET",
        &format!("/api/v1/amt/hardwareInfo/{GUID}"),
        200,
    )
    .await;
    call(&layer, "GET", "/api/v1/devices", 200).await; // MPS publishes nothing
    call(
        &layer,
        "POST",
        &format!("/api/v1/amt/power/action/{GUID}"),
        200,
    )
    .await;
    call(&layer, "GET", &format!("/api/v1/amt/features/{GUID}"), 404).await;
    call(
        &layer,
        "GET",
        &format!("/api/v1/amt/power/state/{GUID}"),
        500,
    )
    .await;
    call(&layer, "GET", "/not/mps", 200).await; // outside MPS's routes
    handle.flush(WAIT).await.expect("delivered");

    let events = received(&mut subscriber, 6).await;
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
    let broker = Broker::start();
    let topic = unique_topic("mps_profile_fields");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = MqttEventLayer::builder()
        .address(broker.url())
        .topic(&topic)
        .profile(Profile::Mps)
        .mps_id_and_http(true)
        .build()
        .expect("valid config");
    call(&layer, "GET", &format!("/api/v1/amt/log/audit/{GUID}"), 200).await;
    layer.handle().flush(WAIT).await.expect("delivered");
    let events = received(&mut subscriber, 1).await;
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
    call(
        &layer,
        "POST",
        &format!("/api/v1/amt/power/action/{GUID}"),
        200,
    )
    .await;
    call(&layer, "GET", "/api/v1/devices", 500).await;
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
    call(&layer, "GET", "/api/v1/health", 500).await; // route left out
    call(&layer, "GET", "/api/v1/devices", 200).await; // a success: type left out
    call(&layer, "GET", "/api/v1/devices", 404).await; // kept
    handle.flush(WAIT).await.expect("delivered");
    let events = received(&mut subscriber, 1).await;
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
