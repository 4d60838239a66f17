//! A publisher whose runtime went away: requests still succeed, and the death shows in the
//! state, the stop reason and the counters.

use std::time::Duration;

use mps_mqtt_events::{MqttEventLayer, PublisherState};

use crate::support::{Broker, unique_topic};
use crate::{assert_accounted, builder, call, init_tracing, wait_connected};

/// Builds a layer on the broker, serves one request on a runtime that is then dropped with
/// the publisher task in it, and returns the layer.
fn layer_whose_runtime_died(broker: &Broker, wait_for_task: bool) -> MqttEventLayer {
    let layer = builder(&broker.url(), &unique_topic("runtime_died"))
        .build()
        .expect("valid config");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime A");
    runtime.block_on(async {
        assert_eq!(call(&layer, 0).await, 200);
        if wait_for_task {
            wait_connected(&layer.handle(), true).await;
        }
    });
    drop(runtime);
    layer
}

/// Serves requests `1..=10` on a fresh runtime and checks they succeed and are counted as
/// dropped because the publisher is gone.
fn assert_stopped_publisher_is_visible(layer: &MqttEventLayer) {
    let handle = layer.handle();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime B");
    runtime.block_on(async {
        for i in 1..=10 {
            assert_eq!(call(layer, i).await, 200, "request {i} after the task died");
        }
        let stats = handle.stats();
        let reason = handle.stop_reason();
        let flushed = handle.flush(Duration::from_secs(1)).await;
        eprintln!("publisher death: stop_reason {reason:?}, flush {flushed:?}, {stats:?}");
        assert_eq!(stats.state, PublisherState::Stopped, "{stats:#?}");
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.contains("dropped before")),
            "stop_reason {reason:?}"
        );
        assert_eq!(stats.dropped_closed, 10, "{stats:#?}");
        assert_accounted(&stats, 11);
        assert!(
            flushed.is_err(),
            "flush on a stopped publisher: {flushed:?}"
        );
    });
}

#[test]
fn publisher_death_is_visible_and_requests_still_succeed() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    // Runtime A runs until the task is connected, so it surely runs when A is dropped.
    let layer = layer_whose_runtime_died(&broker, true);
    assert_stopped_publisher_is_visible(&layer);
}

#[test]
fn publisher_death_before_its_first_poll_is_visible_too() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    // Runtime A is dropped right after the request: the task was spawned but never polled.
    let layer = layer_whose_runtime_died(&broker, false);
    assert_stopped_publisher_is_visible(&layer);
}
