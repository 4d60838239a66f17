//! When the publisher starts and stops: layers built before the runtime, flush and shutdown
//! before any request, dropping every handle, and calling shutdown twice.

mod support;

use std::time::Duration;

use mps_mqtt_events::{MqttEventLayer, PublisherState};
use support::{Broker, Subscriber, connected, respond, unique_topic};

const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

/// Sends one power action through `layer` and checks that its event reaches `topic`.
async fn one_event_arrives(broker: &Broker, topic: &str, layer: &MqttEventLayer) {
    let mut subscriber = Subscriber::connect(&broker.url(), topic).await;
    respond(
        layer,
        "POST",
        &format!("/api/v1/amt/power/action/{GUID}"),
        200,
        None,
    )
    .await;
    layer
        .handle()
        .flush(Duration::from_secs(10))
        .await
        .expect("delivered");
    let event = subscriber
        .next(Duration::from_secs(5))
        .await
        .expect("event arrives");
    assert_eq!(event.payload["message"], "Power Action requested");
}

#[test]
fn layer_built_before_the_runtime_publishes_once_it_runs() {
    let broker = Broker::start();
    let topic = unique_topic("before_runtime");
    // No Tokio runtime exists yet: building the layer must neither panic nor spawn.
    let layer = MqttEventLayer::builder()
        .address(broker.url())
        .topic(&topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    assert_eq!(handle.stats().state, PublisherState::NotStarted);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        one_event_arrives(&broker, &topic, &layer).await;
        assert_eq!(handle.stats().state, PublisherState::Running);
        handle.shutdown(Duration::from_secs(5)).await;
    });
}

#[tokio::test]
async fn flush_and_shutdown_before_any_request_return_at_once() {
    let broker = Broker::start();
    let layer = MqttEventLayer::builder()
        .address(broker.url())
        .topic(unique_topic("idle"))
        .build()
        .expect("valid config");
    let handle = layer.handle();
    handle
        .flush(Duration::from_secs(5))
        .await
        .expect("nothing to flush");
    let report = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (report.delivered, report.undelivered, report.dropped),
        (0, 0, 0)
    );
    assert_eq!(report.stats.state, PublisherState::ShutDown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_handle_delivers_what_is_queued() {
    let (_broker, mut subscriber, layer) = connected("drop_drains", |b| b).await;
    for _ in 0..20 {
        respond(&layer, "POST", "/api/v1/devices", 200, None).await;
    }
    drop(layer);
    let events = subscriber.collect(20, Duration::from_secs(10)).await;
    assert_eq!(
        events.len(),
        20,
        "the task drains the queue after the last handle goes"
    );
}

#[tokio::test]
async fn shutdown_twice_reports_the_same_and_later_events_are_dropped() {
    let (_broker, mut subscriber, layer) = connected("shutdown_twice", |b| b).await;
    let handle = layer.handle();
    for _ in 0..5 {
        respond(&layer, "POST", "/api/v1/health", 200, None).await;
    }
    let first = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!((first.delivered, first.undelivered), (5, 0));
    assert_eq!(subscriber.collect(5, Duration::from_secs(5)).await.len(), 5);

    respond(&layer, "POST", "/api/v1/health", 200, None).await;
    let second = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!((second.delivered, second.undelivered), (5, 0));
    assert_eq!(
        second.stats.dropped_closed, 1,
        "events after shutdown are refused and counted"
    );
    let flushed = handle.flush(Duration::from_secs(1)).await;
    assert!(
        flushed.is_err(),
        "flush after shutdown says the publisher is not running"
    );
    subscriber.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn disabled_layer_reports_nothing_and_needs_no_broker() {
    let layer = MqttEventLayer::builder().address("").build().expect("off");
    assert!(!layer.is_enabled());
    respond(&layer, "POST", "/api/v1/health", 200, None).await;
    let handle = layer.handle();
    assert_eq!(handle.stats(), mps_mqtt_events::Stats::default());
    assert_eq!(handle.stats().state, PublisherState::Disabled);
    handle
        .flush(Duration::from_millis(1))
        .await
        .expect("nothing to flush");
}

#[test]
fn a_pair_publisher_runs_where_it_is_spawned() {
    let broker = Broker::start();
    let topic = unique_topic("pair");
    let (layer, task) = MqttEventLayer::builder()
        .address(broker.url())
        .topic(&topic)
        .build_pair()
        .expect("valid config");
    let handle = layer.handle();
    let publisher_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("publisher runtime");
    publisher_runtime.spawn(task);

    let requests_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("requests runtime");
    requests_runtime.block_on(one_event_arrives(&broker, &topic, &layer));

    // The task lived on the publisher runtime: it ends with it, and the layer says so.
    drop(publisher_runtime);
    let stats = handle.stats();
    assert_eq!(stats.state, PublisherState::Stopped, "{stats:#?}");
    assert_eq!(stats.delivered, 1, "{stats:#?}");
}

#[tokio::test]
async fn a_disabled_pair_has_a_finished_task() {
    let (layer, task) = MqttEventLayer::builder().build_pair().expect("off");
    assert!(!layer.is_enabled());
    support::within(Duration::from_secs(1), "the task of a disabled layer", task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_shutdowns_both_wait_for_the_drain() {
    let (_broker, _subscriber, layer) = connected("two_shutdowns", |b| b).await;
    let handle = layer.handle();
    const EVENTS: u64 = 5_000;
    for _ in 0..EVENTS {
        respond(&layer, "POST", "/api/v1/devices", 200, None).await;
    }
    let other = handle.clone();
    let (first, second) = tokio::join!(
        handle.shutdown(Duration::from_secs(10)),
        other.shutdown(Duration::from_secs(10)),
    );
    for report in [first, second] {
        assert_eq!(
            (report.delivered, report.undelivered),
            (EVENTS, 0),
            "{report:#?}"
        );
    }
}
