//! Events of requests served by a real axum server over real HTTP, as a real MQTT broker
//! delivers them to a subscriber; and what the layer does when no broker listens.
//!
//! The tests live in one module per concern (event content, counting and ordering, no
//! broker); the application under test and the helpers they share are here.

#[path = "../support/mod.rs"]
mod support;

mod content;
mod counting;
mod no_broker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::routing::{get, post};
use mps_mqtt_events::{Builder, MqttEventLayer, PublisherHandle, Stats};
use rumqttc::QoS;
use serde_json::{Value, json};
use tokio::sync::Notify;

use support::{Broker, Received, ServerGuard, Subscriber, assert_accounted};

/// A device that is "CIRA-connected": its power state is known.
const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";
/// A device that is not: its AMT routes answer 404.
const UNKNOWN_GUID: &str = "00000000-0000-4000-8000-0000000000ff";

/// What the power action handler answers.
const POWER_ACTION_BODY: &str = r#"{"Body":{"ReturnValue":0}}"#;

/// How long one event may take from the response to the subscriber.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to listen for an event that must not come.
const QUIET: Duration = Duration::from_millis(300);
/// How long flush may take with a healthy local broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a signal from a test handler may take.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Scheduling slack allowed past a shutdown deadline on a loaded 2-core machine.
const DEADLINE_SLACK: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------------------
// The MPS-like application under test

/// Signals from the handler that never finishes on its own.
#[derive(Clone, Default)]
struct Probe {
    /// The handler started (a permit is stored if nobody waits yet).
    started: Arc<Notify>,
    /// The handler's future was dropped: the server cancelled the request.
    dropped: Arc<Notify>,
}

/// Notifies on drop.
struct NotifyOnDrop(Arc<Notify>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

async fn hang_until_cancelled(probe: Probe) -> StatusCode {
    let _dropped = NotifyOnDrop(probe.dropped);
    probe.started.notify_one();
    std::future::pending::<()>().await;
    StatusCode::OK
}

/// A few routes shaped like MPS's, each with a fixed behaviour:
///
/// - `POST /api/v1/amt/power/action/{guid}`: 200
/// - `GET /api/v1/amt/power/state/{guid}`: 200 for [`GUID`], 404 (device not connected) else
/// - `GET /api/v1/amt/log/event/{guid}`: 500
/// - `GET /api/v1/amt/hardwareInfo/{guid}`: never answers (until the client goes away)
/// - `GET /api/v1/devices`: 200
/// - `GET /api/v1/health`: 200, or 500 with a `fail` query
/// - anything else: 404
fn mps_router(probe: Probe) -> Router {
    Router::new()
        .route(
            "/api/v1/amt/power/action/{guid}",
            post(|| async { (StatusCode::OK, POWER_ACTION_BODY) }),
        )
        .route(
            "/api/v1/amt/power/state/{guid}",
            get(|Path(guid): Path<String>| async move {
                if guid == GUID {
                    (StatusCode::OK, r#"{"powerstate":2}"#)
                } else {
                    (StatusCode::NOT_FOUND, r#"{"error":"Device not found"}"#)
                }
            }),
        )
        .route(
            "/api/v1/amt/log/event/{guid}",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        )
        .route(
            "/api/v1/amt/hardwareInfo/{guid}",
            get(move || hang_until_cancelled(probe.clone())),
        )
        .route("/api/v1/devices", get(|| async { "[]" }))
        .route(
            "/api/v1/health",
            get(|RawQuery(query): RawQuery| async move {
                if query.is_some_and(|q| q.contains("fail")) {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
}

/// A broker, a subscriber on a fresh topic, and the application with an event layer
/// publishing to that topic, served on a loopback port.
struct Harness {
    // Dropped in this order: subscriber, server, broker.
    subscriber: Subscriber,
    addr: SocketAddr,
    _server: ServerGuard,
    handle: PublisherHandle,
    probe: Probe,
    topic: String,
    broker: Broker,
}

impl Harness {
    async fn start(test_name: &str) -> Harness {
        Self::start_with(test_name, |builder| builder).await
    }

    /// `configure` gets the builder with address and topic set.
    async fn start_with(test_name: &str, configure: impl FnOnce(Builder) -> Builder) -> Harness {
        let broker = Broker::start();
        let topic = support::unique_topic(test_name);
        let subscriber = Subscriber::connect(&broker.url(), &topic).await;
        let layer = configure(
            MqttEventLayer::builder()
                .address(broker.url())
                .topic(topic.clone()),
        )
        .build()
        .expect("valid layer configuration");
        assert!(layer.is_enabled());
        let handle = layer.handle();
        let probe = Probe::default();
        let (addr, server) = support::serve(mps_router(probe.clone()).layer(layer)).await;
        Harness {
            subscriber,
            addr,
            _server: server,
            handle,
            probe,
            topic,
            broker,
        }
    }

    async fn http(&self, method: &str, path: &str, body: Option<&str>) -> u16 {
        support::http(self.addr, method, path, body).await
    }

    /// The next event, checked to be on the configured topic at `qos`.
    async fn next_event(&mut self, qos: QoS) -> Received {
        let received = self
            .subscriber
            .next(EVENT_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no event on {:?} within {EVENT_TIMEOUT:?}", self.topic));
        assert_eq!(received.topic, self.topic);
        assert_eq!(received.qos, qos, "QoS as received: {received:?}");
        received
    }

    /// Sends one request, expects `status`, and returns its event normalised (see
    /// [`normalised`]) after checking that no second event follows.
    async fn event_of(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        status: u16,
    ) -> Value {
        let before = support::now_ms();
        assert_eq!(
            self.http(method, path, body).await,
            status,
            "{method} {path}"
        );
        let received = self.next_event(QoS::AtLeastOnce).await;
        let after = support::now_ms();
        self.subscriber.assert_quiet(QUIET).await;
        normalised(&received.payload, before, after)
    }
}

/// The event with `timestamp`, `http.latency_ms` and `id` checked and replaced by `0`, `0.0`
/// and `"<id>"`: the timestamp must fall in `before..=after` (milliseconds since the epoch,
/// read by the test around the request; 1 ms of slack below for the library's
/// monotonic-to-wall-clock conversion), the latency must be a finite non-negative number,
/// the id `<16 hex digits>-<sequence>`.
fn normalised(event: &Value, before: u64, after: u64) -> Value {
    let mut event = event.clone();
    let timestamp = event["timestamp"]
        .as_u64()
        .unwrap_or_else(|| panic!("timestamp is not a whole number: {event}"));
    assert!(
        before.saturating_sub(1) <= timestamp && timestamp <= after,
        "timestamp {timestamp} outside the request's window {before}..={after}: {event}"
    );
    event["timestamp"] = json!(0);
    let latency = event["http"]["latency_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("http.latency_ms is not a number: {event}"));
    assert!(
        latency.is_finite() && latency >= 0.0,
        "http.latency_ms {latency} is not a non-negative number: {event}"
    );
    event["http"]["latency_ms"] = json!(0.0);
    let id = event["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {event}"));
    assert!(
        event_id(id).is_some(),
        "id {id:?} is not <16 hex digits>-<sequence>: {event}"
    );
    event["id"] = json!("<id>");
    event
}

/// `(instance, sequence)` of an event id `<16 hex digits>-<decimal sequence>`.
fn event_id(id: &str) -> Option<(&str, u64)> {
    let (instance, sequence) = id.split_once('-')?;
    let hex = instance.len() == 16 && instance.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !sequence.is_empty() && sequence.bytes().all(|b| b.is_ascii_digit());
    (hex && digits).then_some((instance, sequence.parse().ok()?))
}

fn accounted(stats: &Stats) -> bool {
    stats.enqueued == stats.delivered + stats.failed + stats.pending()
}
