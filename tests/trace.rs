//! W3C trace correlation: a request's valid `traceparent` header puts its `trace_id` and
//! `span_id` into the event that reaches a real subscriber; anything else puts nothing there.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use mps_mqtt_events::{MqttEventLayer, Profile};
use serde_json::{Value, json};
use support::{Broker, payloads, unique_topic};
use tower::{Layer, ServiceExt, service_fn};

const WAIT: Duration = Duration::from_secs(10);
const PATH: &str = "/api/v1/amt/power/action/4c4c4544-004b-4210-8033-b6c04f504633";
/// The example of the W3C Trace Context recommendation.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Sends a power action through `layer`, with `traceparent` if given.
async fn power_action(layer: &MqttEventLayer, traceparent: Option<&str>) {
    let inner =
        service_fn(|_: http::Request<()>| async { Ok::<_, Infallible>(http::Response::new(())) });
    let mut request = http::Request::post(PATH);
    if let Some(value) = traceparent {
        request = request.header("traceparent", value);
    }
    let request = request.body(()).expect("a request");
    layer
        .layer(inner)
        .oneshot(request)
        .await
        .expect("infallible");
}

/// The `trace_id` and `span_id` of `event`.
fn ids(event: &Value) -> (Value, Value) {
    (event["trace_id"].clone(), event["span_id"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_traceparent_links_the_event_to_its_trace() {
    let (_broker, mut subscriber, layer) = support::connected("trace", |b| b).await;
    power_action(&layer, Some(TRACEPARENT)).await;
    power_action(&layer, None).await;
    // Uppercase hex, a zero trace id, a secret in the header: ignored, never copied.
    power_action(
        &layer,
        Some("00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01"),
    )
    .await;
    power_action(
        &layer,
        Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
    )
    .await;
    power_action(
        &layer,
        Some("Bearer hunter2-hunter2-hunter2-hunter2-hunter2-hunter2"),
    )
    .await;
    layer.handle().flush(WAIT).await.expect("delivered");
    let events = payloads(&mut subscriber, 5, WAIT).await;
    assert_eq!(
        ids(&events[0]),
        (
            json!("4bf92f3577b34da6a3ce929d0e0e4736"),
            json!("00f067aa0ba902b7")
        )
    );
    for event in &events[1..] {
        assert_eq!(ids(event), (Value::Null, Value::Null), "{event}");
        assert!(!event.to_string().contains("hunter2"), "{event}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mps_profile_adds_trace_ids_only_with_id_and_http() {
    let broker = Broker::start();
    for (extra_fields, expected) in [
        (false, (Value::Null, Value::Null)),
        (
            true,
            (
                json!("4bf92f3577b34da6a3ce929d0e0e4736"),
                json!("00f067aa0ba902b7"),
            ),
        ),
    ] {
        let topic = unique_topic("trace_mps");
        let mut subscriber = support::Subscriber::connect(&broker.url(), &topic).await;
        let layer = MqttEventLayer::builder()
            .address(broker.url())
            .topic(&topic)
            .profile(Profile::Mps)
            .mps_id_and_http(extra_fields)
            .build()
            .expect("valid config");
        power_action(&layer, Some(TRACEPARENT)).await;
        layer.handle().flush(WAIT).await.expect("delivered");
        let events = payloads(&mut subscriber, 1, WAIT).await;
        assert_eq!(events[0]["message"], "Power Action requested");
        assert_eq!(ids(&events[0]), expected, "id and http: {extra_fields}");
    }
}
