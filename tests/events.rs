//! Events of requests served by a real axum server over real HTTP, as a real MQTT broker
//! delivers them to a subscriber; and what the layer does when no broker listens.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::routing::{get, post};
use mps_mqtt_events::{Builder, MqttEventLayer, PublisherHandle, Qos, Stats};
use rumqttc::QoS;
use serde_json::{Value, json};
use tokio::sync::Notify;

use support::{Broker, BrokerKind, Received, ServerGuard, Subscriber, UnusedPort};

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

/// Every accepted event is delivered, failed or pending.
fn assert_accounted(stats: &Stats) {
    assert_eq!(
        stats.enqueued,
        stats.delivered + stats.failed + stats.pending(),
        "enqueued == delivered + failed + pending: {stats:#?}"
    );
}

fn accounted(stats: &Stats) -> bool {
    stats.enqueued == stats.delivered + stats.failed + stats.pending()
}

// ---------------------------------------------------------------------------------------------
// Event content

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_mps_shaped_event_for_power_action() {
    let mut h = Harness::start("power_action").await;
    let path = format!("/api/v1/amt/power/action/{GUID}");

    let before = support::now_ms();
    let response = support::http_response(h.addr, "POST", &path, Some(r#"{"action":2}"#)).await;
    assert_eq!(
        response,
        (200, POWER_ACTION_BODY.to_owned()),
        "response unchanged"
    );
    let received = h.next_event(QoS::AtLeastOnce).await;
    let after = support::now_ms();

    assert_eq!(
        normalised(&received.payload, before, after),
        json!({
            "type": "success",
            "message": "Power Action requested",
            "methods": ["AMT_PowerAction"],
            "guid": GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "POST",
                "path": "/api/v1/amt/power/action/:guid",
                "status": 200,
                "latency_ms": 0.0
            }
        })
    );
    // MPS's fields first, in MPS's order, compact: what MPS subscribers parse.
    let mps_prefix = format!(
        r#"{{"type":"success","message":"Power Action requested","methods":["AMT_PowerAction"],"guid":"{GUID}","timestamp":"#
    );
    assert!(
        received.raw.starts_with(&mps_prefix),
        "payload {:?} does not start with {mps_prefix:?}",
        received.raw
    );
    assert!(
        !received.raw.contains('\n'),
        "payload is not compact: {:?}",
        received.raw
    );
    h.subscriber.assert_quiet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_device_not_found_when_an_amt_route_answers_404() {
    let mut h = Harness::start("device_not_found").await;
    let event = h
        .event_of(
            "GET",
            &format!("/api/v1/amt/power/state/{UNKNOWN_GUID}"),
            None,
            404,
        )
        .await;
    assert_eq!(
        event,
        json!({
            "type": "fail",
            "message": "Device Not Found",
            "methods": ["CIRA_Connection"],
            "guid": UNKNOWN_GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/amt/power/state/:guid",
                "status": 404,
                "latency_ms": 0.0
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_power_state_success_for_a_connected_device() {
    let mut h = Harness::start("power_state").await;
    let event = h
        .event_of("GET", &format!("/api/v1/amt/power/state/{GUID}"), None, 200)
        .await;
    assert_eq!(
        event,
        json!({
            "type": "success",
            "message": "Power State requested",
            "methods": ["AMT_PowerState"],
            "guid": GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/amt/power/state/:guid",
                "status": 200,
                "latency_ms": 0.0
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_internal_service_error_when_a_handler_answers_500() {
    let mut h = Harness::start("internal_error").await;
    let event = h
        .event_of("GET", &format!("/api/v1/amt/log/event/{GUID}"), None, 500)
        .await;
    assert_eq!(
        event,
        json!({
            "type": "fail",
            "message": "Internal Service Error",
            "methods": ["AMT_EventLog"],
            "guid": GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/amt/log/event/:guid",
                "status": 500,
                "latency_ms": 0.0
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_success_without_guid_for_the_device_list() {
    let mut h = Harness::start("device_list").await;
    let event = h.event_of("GET", "/api/v1/devices", None, 200).await;
    assert_eq!(
        event,
        json!({
            "type": "success",
            "message": "Request succeeded",
            "methods": ["getAllDevices"],
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/devices",
                "status": 200,
                "latency_ms": 0.0
            }
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_health_check_events_for_success_and_failure() {
    let mut h = Harness::start("health").await;
    let healthy = h.event_of("GET", "/api/v1/health", None, 200).await;
    assert_eq!(
        healthy,
        json!({
            "type": "success",
            "message": "Request succeeded",
            "methods": ["getHealthCheck"],
            "timestamp": 0,
            "id": "<id>",
            "http": {"method": "GET", "path": "/api/v1/health", "status": 200, "latency_ms": 0.0}
        })
    );
    // The query string takes part in routing the handler, never in the event.
    let failed = h.event_of("GET", "/api/v1/health?fail=1", None, 500).await;
    assert_eq!(
        failed,
        json!({
            "type": "fail",
            "message": "Health Check Failed",
            "methods": ["getHealthCheck"],
            "timestamp": 0,
            "id": "<id>",
            "http": {"method": "GET", "path": "/api/v1/health", "status": 500, "latency_ms": 0.0}
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_not_echoed_into_events() {
    let mut h = Harness::start("unknown_path").await;
    let event = h
        .event_of(
            "GET",
            &format!("/internal/token/s3cr3t/{GUID}?key=x"),
            None,
            404,
        )
        .await;
    assert_eq!(
        event,
        json!({
            "type": "fail",
            "message": "Request failed",
            "methods": ["unknown"],
            "timestamp": 0,
            "id": "<id>",
            "http": {"method": "GET", "path": null, "status": 404, "latency_ms": 0.0}
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Counting and ordering

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_exactly_one_event_per_request() {
    const REQUESTS: usize = 50;
    let mut h = Harness::start("one_per_request").await;
    // Each request names a different device, so the events' order is visible.
    let guids: Vec<String> = (0..REQUESTS)
        .map(|i| format!("4c4c4544-004b-4210-8033-{i:012x}"))
        .collect();
    for guid in &guids {
        let status = h
            .http("POST", &format!("/api/v1/amt/power/action/{guid}"), None)
            .await;
        assert_eq!(status, 200);
    }

    let received = h
        .subscriber
        .collect(REQUESTS, Duration::from_secs(10))
        .await;
    assert_eq!(received.len(), REQUESTS, "events received: {received:#?}");
    let received_guids: Vec<&str> = received
        .iter()
        .map(|r| r.payload["guid"].as_str().unwrap_or("<no guid>"))
        .collect();
    assert_eq!(received_guids, guids, "events in request order");
    // One publisher: one instance part, and the sequence grows with every event.
    let ids: Vec<(&str, u64)> = received
        .iter()
        .map(|r| {
            let id = r.payload["id"].as_str().unwrap_or_default();
            event_id(id).unwrap_or_else(|| panic!("bad id {id:?} in {r:?}"))
        })
        .collect();
    assert!(
        ids.iter().all(|(instance, _)| *instance == ids[0].0),
        "one instance part for all events of a publisher: {ids:?}"
    );
    assert!(
        ids.windows(2).all(|w| w[0].1 < w[1].1),
        "id sequence grows in publish order: {ids:?}"
    );
    for r in &received {
        assert_eq!(r.payload["type"], "success", "{r:?}");
        assert_eq!(r.payload["methods"], json!(["AMT_PowerAction"]), "{r:?}");
    }
    h.subscriber.assert_quiet(QUIET).await;

    h.handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("flush with a healthy broker");
    let stats = h.handle.stats();
    assert_eq!(stats.enqueued, REQUESTS as u64, "{stats:#?}");
    assert_eq!(stats.acknowledged, REQUESTS as u64, "{stats:#?}");
    assert_eq!(
        stats.dropped_queue_full + stats.dropped_closed,
        0,
        "{stats:#?}"
    );
    assert_accounted(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_request_publishes_fail_event() {
    let mut h = Harness::start("cancelled").await;
    let path = format!("/api/v1/amt/hardwareInfo/{GUID}");

    let before = support::now_ms();
    let stream = support::send_request_only(h.addr, "GET", &path).await;
    support::within(SIGNAL_TIMEOUT, "handler start", h.probe.started.notified()).await;
    drop(stream);
    support::within(
        SIGNAL_TIMEOUT,
        "server dropping the handler after the client left",
        h.probe.dropped.notified(),
    )
    .await;
    let received = h.next_event(QoS::AtLeastOnce).await;
    let after = support::now_ms();

    let mut event = normalised(&received.payload, before, after);
    let message = event["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.to_lowercase().contains("cancel"),
        "message {message:?} does not say the request was cancelled"
    );
    event["message"] = json!("<cancelled>");
    assert_eq!(
        event,
        json!({
            "type": "fail",
            "message": "<cancelled>",
            "methods": ["AMT_HardwareInfo"],
            "guid": GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/amt/hardwareInfo/:guid",
                "status": null,
                "latency_ms": 0.0
            }
        })
    );
    h.subscriber.assert_quiet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_is_honoured() {
    let mut h = Harness::start_with("qos0", |b| b.qos(Qos::AtMostOnce)).await;
    let status = h
        .http("POST", &format!("/api/v1/amt/power/action/{GUID}"), None)
        .await;
    assert_eq!(status, 200);

    // The subscription is QoS 1, so the delivery QoS shows the publish QoS. The embedded
    // broker upgrades QoS 0 deliveries to QoS 1 (a known rumqttd quirk), so only Mosquitto
    // can show it.
    let expected_qos = match h.broker.kind {
        BrokerKind::Mosquitto => QoS::AtMostOnce,
        BrokerKind::Embedded => QoS::AtLeastOnce,
    };
    let received = h.next_event(expected_qos).await;
    assert_eq!(received.payload["type"], "success");
    assert_eq!(received.payload["guid"], GUID);

    h.handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("flush with a healthy broker");
    let stats = h.handle.stats();
    assert_eq!(stats.enqueued, 1, "{stats:#?}");
    assert_eq!(stats.published, 1, "{stats:#?}");
    assert_eq!(
        stats.delivered, 1,
        "QoS 0 counts a written PUBLISH as delivered: {stats:#?}"
    );
    assert_eq!(stats.acknowledged, 0, "no PUBACK at QoS 0: {stats:#?}");
    assert_accounted(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_until_broker_acknowledged() {
    const REQUESTS: u64 = 20;
    let mut h = Harness::start("flush").await;
    for i in 0..REQUESTS {
        let (method, path, status) = if i % 2 == 0 {
            ("POST", format!("/api/v1/amt/power/action/{GUID}"), 200)
        } else {
            ("GET", "/api/v1/devices".to_owned(), 200)
        };
        assert_eq!(h.http(method, &path, None).await, status);
    }

    h.handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("flush with a healthy broker");
    // No waiting here: flush returning Ok promises the acknowledgements are counted.
    let stats = h.handle.stats();
    assert_eq!(stats.enqueued, REQUESTS, "{stats:#?}");
    assert_eq!(stats.acknowledged, REQUESTS, "{stats:#?}");
    assert_eq!(stats.published, REQUESTS, "{stats:#?}");
    assert_eq!(stats.delivered, REQUESTS, "{stats:#?}");
    assert_eq!(stats.failed, 0, "{stats:#?}");
    assert_eq!(stats.pending(), 0, "{stats:#?}");
    assert!(stats.connected, "{stats:#?}");
    assert_accounted(&stats);

    let received = h
        .subscriber
        .collect(REQUESTS as usize, Duration::from_secs(10))
        .await;
    assert_eq!(received.len() as u64, REQUESTS);
}

// ---------------------------------------------------------------------------------------------
// Without a broker

/// The application with an event layer pointed at a port where nothing listens.
async fn serve_without_broker(
    configure: impl FnOnce(Builder) -> Builder,
) -> (SocketAddr, ServerGuard, PublisherHandle, UnusedPort) {
    let port = UnusedPort::reserve();
    assert!(support::refuses_connections(SocketAddr::from((
        [127, 0, 0, 1],
        port.port
    ))));
    let layer = configure(
        MqttEventLayer::builder()
            .address(port.url())
            .topic(support::unique_topic("no_broker")),
    )
    .build()
    .expect("valid layer configuration");
    let handle = layer.handle();
    let (addr, server) = support::serve(mps_router(Probe::default()).layer(layer)).await;
    (addr, server, handle, port)
}

/// Sends `n` requests over a mix of routes, checking each gets its normal status.
async fn send_mixed_requests(addr: SocketAddr, n: usize) {
    for i in 0..n {
        let (method, path, status) = match i % 4 {
            0 => ("POST", format!("/api/v1/amt/power/action/{GUID}"), 200),
            1 => (
                "GET",
                format!("/api/v1/amt/power/state/{UNKNOWN_GUID}"),
                404,
            ),
            2 => ("GET", format!("/api/v1/amt/log/event/{GUID}"), 500),
            _ => ("GET", "/api/v1/devices".to_owned(), 200),
        };
        assert_eq!(
            support::http(addr, method, &path, None).await,
            status,
            "request {i}: {method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_succeed_when_no_broker_listens() {
    const REQUESTS: u64 = 200;
    let (addr, _server, handle, _port) = serve_without_broker(|b| b).await;
    send_mixed_requests(addr, REQUESTS as usize).await;

    assert!(
        support::wait_until(Duration::from_secs(2), || accounted(&handle.stats())).await,
        "counters never added up: {:#?}",
        handle.stats()
    );
    let stats = handle.stats();
    assert_eq!(
        stats.enqueued + stats.dropped_queue_full + stats.dropped_closed,
        REQUESTS,
        "every event accepted or dropped: {stats:#?}"
    );
    assert_eq!(
        stats.enqueued, REQUESTS,
        "the default queue holds them all: {stats:#?}"
    );
    assert_eq!(stats.published, 0, "{stats:#?}");
    assert_eq!(stats.acknowledged, 0, "{stats:#?}");
    assert_eq!(stats.delivered, 0, "{stats:#?}");
    assert!(!stats.connected, "{stats:#?}");

    let started = Instant::now();
    let report = handle.shutdown(Duration::from_millis(500)).await;
    let took = started.elapsed();
    assert!(
        took <= Duration::from_millis(500) + DEADLINE_SLACK,
        "shutdown took {took:?} with a 500 ms deadline"
    );
    assert_eq!(report.undelivered, stats.enqueued, "{report:#?}");
    assert_eq!(report.delivered, 0, "{report:#?}");
    let after = handle.stats();
    assert_eq!(after.failed, stats.enqueued, "{after:#?}");
    assert_eq!(after.pending(), 0, "{after:#?}");
    assert_accounted(&after);

    // After shutdown requests are still served; their events are counted as dropped.
    send_mixed_requests(addr, 8).await;
    let closed = handle.stats();
    assert_eq!(closed.dropped_closed, 8, "{closed:#?}");
    assert_eq!(closed.enqueued, stats.enqueued, "{closed:#?}");
    assert_accounted(&closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_and_counts_when_queue_full() {
    const REQUESTS: u64 = 200;
    const CAPACITY: usize = 16;
    let (addr, _server, handle, _port) = serve_without_broker(|b| b.queue_capacity(CAPACITY)).await;
    send_mixed_requests(addr, REQUESTS as usize).await;

    assert!(
        support::wait_until(Duration::from_secs(2), || accounted(&handle.stats())).await,
        "counters never added up: {:#?}",
        handle.stats()
    );
    let stats = handle.stats();
    assert_eq!(
        stats.enqueued + stats.dropped_queue_full + stats.dropped_closed,
        REQUESTS,
        "every event accepted or dropped: {stats:#?}"
    );
    // Disconnected, the publisher takes nothing from the queue: exactly `CAPACITY` fit.
    assert_eq!(stats.enqueued, CAPACITY as u64, "{stats:#?}");
    assert_eq!(
        stats.dropped_queue_full,
        REQUESTS - CAPACITY as u64,
        "{stats:#?}"
    );
    assert_eq!(stats.dropped_closed, 0, "{stats:#?}");
    assert_eq!(stats.pending(), CAPACITY as u64, "{stats:#?}");

    let started = Instant::now();
    let report = handle.shutdown(Duration::from_millis(500)).await;
    let took = started.elapsed();
    assert!(
        took <= Duration::from_millis(500) + DEADLINE_SLACK,
        "shutdown took {took:?} with a 500 ms deadline"
    );
    assert_eq!(report.undelivered, CAPACITY as u64, "{report:#?}");
    assert_accounted(&handle.stats());
}

// ---------------------------------------------------------------------------------------------
// Disabled

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_layer_passes_requests_through() {
    let layer = MqttEventLayer::disabled();
    assert!(!layer.is_enabled());
    let handle = layer.handle();
    let (addr, _server) = support::serve(mps_router(Probe::default()).layer(layer)).await;

    send_mixed_requests(addr, 8).await;
    let response = support::http_response(
        addr,
        "POST",
        &format!("/api/v1/amt/power/action/{GUID}"),
        None,
    )
    .await;
    assert_eq!(response, (200, POWER_ACTION_BODY.to_owned()));
    assert_eq!(
        support::http(addr, "GET", "/api/v1/health", None).await,
        200
    );
    assert_eq!(support::http(addr, "GET", "/nope", None).await, 404);

    assert_eq!(handle.stats(), Stats::default());
    support::within(
        Duration::from_millis(100),
        "flush of a disabled layer",
        async {
            handle
                .flush(Duration::from_secs(5))
                .await
                .expect("nothing to flush");
        },
    )
    .await;
    let report = support::within(
        Duration::from_millis(100),
        "shutdown of a disabled layer",
        handle.shutdown(Duration::from_secs(5)),
    )
    .await;
    assert_eq!(report.undelivered, 0);
    assert_eq!(report.delivered, 0);
    assert_eq!(handle.stats(), Stats::default());
}
