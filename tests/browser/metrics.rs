//! The example's `GET /metrics` (crate feature `metrics`), scraped after known traffic and
//! checked against the publisher's `Stats` as the example's health route shows them. Needs
//! no browser.

use std::time::Duration;

use serde_json::Value;

use crate::example::{self, Example};
use crate::support::{http_response, prometheus_sample, unique_topic};
use crate::{CONNECTED, broker};

const WAIT: Duration = Duration::from_secs(10);
/// API requests of the known traffic.
const REQUESTS: u64 = 12;

/// A scrape, as sample name (with labels) to value.
struct Scrape(String);

impl Scrape {
    async fn of(example: &Example) -> Scrape {
        let (status, text) = http_response(example.addr, "GET", "/metrics", None).await;
        assert_eq!(status, 200, "{text}");
        Scrape(text)
    }

    fn get(&self, name: &str) -> u64 {
        prometheus_sample(&self.0, name)
            .unwrap_or_else(|| panic!("no sample {name} in\n{}", self.0)) as u64
    }

    /// Every accepted event delivered, nothing waiting.
    fn settled(&self) -> bool {
        self.get("mps_mqtt_events_enqueued_total") == self.get("mps_mqtt_events_delivered_total")
            && self.get("mps_mqtt_events_queue_length") == 0
            && self.get("mps_mqtt_events_in_flight") == 0
    }
}

/// Scrapes until `done`, at most [`WAIT`]; the last scrape.
async fn scrape_until(example: &Example, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let scrape = Scrape::of(example).await;
        if done(&scrape) || tokio::time::Instant::now() >= deadline {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_examples_metrics_are_its_publishers_stats() {
    let broker = broker();
    let address = broker.as_ref().map(|b| b.url());
    let example = Example::start(
        &example::binary(),
        address.as_deref(),
        &unique_topic("example_metrics"),
    );
    let path = format!("/api/v1/amt/power/state/{CONNECTED}");
    for _ in 0..REQUESTS {
        let (status, body) = http_response(example.addr, "GET", &path, None).await;
        assert_eq!(status, 200, "{body}");
    }
    let before = scrape_until(&example, |s| {
        s.settled() && s.get("mps_mqtt_events_delivered_total") >= REQUESTS
    })
    .await;
    assert!(
        before.settled(),
        "not settled within {WAIT:?}:\n{}",
        before.0
    );

    // The health route shows `Stats` as they were before its own request's event.
    let (status, body) = http_response(example.addr, "GET", "/api/v1/health", None).await;
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).expect("JSON");
    let mqtt = &health["mqtt"];
    let delivered = before.get("mps_mqtt_events_delivered_total");
    assert_eq!(mqtt["delivered"], delivered, "{mqtt}");
    assert_eq!(mqtt["failed"], before.get("mps_mqtt_events_failed_total"));
    let dropped = before.get("mps_mqtt_events_dropped_total{reason=\"queue_full\"}")
        + before.get("mps_mqtt_events_dropped_total{reason=\"closed\"}");
    assert_eq!(mqtt["dropped"], dropped);
    assert_eq!(mqtt["connected"], true);
    assert_eq!(before.get("mps_mqtt_events_connected"), 1);
    assert_eq!(mqtt["status"], "ok");

    // Its event is one more, delivered and counted.
    let after = scrape_until(&example, |s| {
        s.settled() && s.get("mps_mqtt_events_delivered_total") > delivered
    })
    .await;
    assert_eq!(after.get("mps_mqtt_events_delivered_total"), delivered + 1);
}
