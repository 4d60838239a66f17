//! The `metrics` feature: what a Prometheus scrape shows is what `Stats` says, after known
//! traffic through a real broker (events delivered, events dropped because the queue was
//! full, the delivery delay of each acknowledged event).

#![cfg(feature = "metrics")]

mod support;

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use mps_mqtt_events::{MqttEventLayer, Stats};
use support::{Broker, prometheus_sample, respond, unique_topic};

const WAIT: Duration = Duration::from_secs(10);
const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";
/// Events the queue holds before the task first runs.
const CAPACITY: usize = 8;
/// Requests made before the task first runs: the rest of them are dropped.
const REQUESTS: u64 = 20;

/// Scrapes until the exported `delivered` reaches `stats.delivered` (the task exports at
/// most every 100 ms), bounded in time; returns the last scrape.
async fn scrape_until_current(prometheus: &PrometheusHandle, stats: &Stats) -> String {
    let name = "mps_mqtt_events_delivered_total";
    let current = |text: &str| prometheus_sample(text, name) == Some(stats.delivered as f64);
    support::wait_until(WAIT, || current(&prometheus.render())).await;
    prometheus.render()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_the_publishers_stats() {
    // The one recorder of this test binary, installed before the publisher starts.
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .expect("the only recorder of this test binary");
    let broker = Broker::start();
    let topic = unique_topic("metrics");
    let mut subscriber = support::Subscriber::connect(&broker.url(), &topic).await;
    let (layer, task) = MqttEventLayer::builder()
        .address(broker.url())
        .topic(&topic)
        .queue_capacity(CAPACITY)
        .build_pair()
        .expect("valid config");
    let path = format!("/api/v1/amt/power/state/{GUID}");
    for _ in 0..REQUESTS {
        respond(&layer, "GET", &path, 200, None).await;
    }
    // Only now does the publisher run: CAPACITY events queued, the others dropped.
    let running = tokio::spawn(task);
    let handle = layer.handle();
    handle.flush(WAIT).await.expect("delivered");
    let received = subscriber.collect(CAPACITY, WAIT).await;
    assert_eq!(received.len(), CAPACITY);

    let stats = handle.stats();
    let text = scrape_until_current(&prometheus, &stats).await;
    let expect = [
        ("mps_mqtt_events_enqueued_total", CAPACITY as f64),
        ("mps_mqtt_events_delivered_total", CAPACITY as f64),
        ("mps_mqtt_events_failed_total", 0.0),
        (
            "mps_mqtt_events_dropped_total{reason=\"queue_full\"}",
            (REQUESTS - CAPACITY as u64) as f64,
        ),
        ("mps_mqtt_events_dropped_total{reason=\"closed\"}", 0.0),
        ("mps_mqtt_events_connect_failures_total", 0.0),
        ("mps_mqtt_events_queue_length", 0.0),
        ("mps_mqtt_events_in_flight", 0.0),
        ("mps_mqtt_events_connected", 1.0),
        // One delay per acknowledged event (rendered as a summary by this exporter).
        (
            "mps_mqtt_events_delivery_delay_seconds_count",
            CAPACITY as f64,
        ),
    ];
    for (name, value) in expect {
        assert_eq!(
            prometheus_sample(&text, name),
            Some(value),
            "{name} in\n{text}"
        );
    }
    // And they are Stats' own figures.
    assert_eq!(stats.enqueued, CAPACITY as u64);
    assert_eq!(stats.dropped_queue_full, REQUESTS - CAPACITY as u64);
    assert!(
        text.contains("# HELP mps_mqtt_events_delivered_total"),
        "described:\n{text}"
    );

    let report = handle.shutdown(WAIT).await;
    assert_eq!(report.undelivered, 0);
    running.await.expect("the task ends");
    let text = prometheus.render();
    assert_eq!(
        prometheus_sample(&text, "mps_mqtt_events_connected"),
        Some(0.0),
        "{text}"
    );
}
