//! Helpers shared by the integration tests: real MQTT brokers ([`mosquitto`]), a scripted
//! MQTT broker for protocol faults ([`scripted`]), a subscriber that collects what a broker
//! delivers ([`subscriber`]), an HTTP server and client ([`http`]), loopback ports
//! ([`ports`]), captured logs ([`logs`]) and a throwaway PKI with Mosquitto's TLS and login
//! configuration ([`tls`]). This file keeps the small shared helpers and re-exports the rest,
//! so tests say `support::Broker`, `support::http`, ...
//!
//! Every wait here is bounded: conditions are polled or awaited with a deadline, and a helper
//! that runs out of time either returns what it has (`Option`, `bool`, a short `Vec`) or
//! panics with what it was waiting for.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]
// `pub` so that every test binary can reach them; the crate-wide lint does not fit a test
// helper module.
#![allow(unreachable_pub)]

pub mod child;
#[path = "../../examples/embedded_broker/mod.rs"]
mod embedded_broker;
mod http;
pub mod logs;
mod mosquitto;
mod ports;
pub mod scripted;
mod subscriber;
pub mod tls;
pub mod ws_ingress;

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// Each test binary uses a subset of these.
#[allow(unused_imports)]
pub use http::{ServerGuard, http, http_response, request_bytes, send_request_only, serve};
#[allow(unused_imports)]
pub use mosquitto::{Broker, BrokerKind, REQUIRE_MOSQUITTO, find_on_path};
#[allow(unused_imports)]
pub use ports::{UnusedPort, free_port, refuses_connections};
#[allow(unused_imports)]
pub use subscriber::{Received, Subscriber};

/// Every event the publisher accepted is delivered, failed or still pending. Call it when the
/// publisher is quiet (after a flush or shutdown, or with no broker), since the counters are
/// read one by one.
#[track_caller]
pub fn assert_accounted(stats: &mps_mqtt_events::Stats) {
    assert_eq!(
        stats.enqueued,
        stats.delivered + stats.failed + stats.pending(),
        "enqueued == delivered + failed + pending: {stats:#?}"
    );
}

/// How often [`wait_until`] polls its condition.
const WAIT_POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Unique names

/// The most connection attempts that fit in `window` when the publisher's
/// `reconnect_backoff(min, max)` is in force: the first at once, then after each failure at
/// least the lower half of a delay that starts at `min` and doubles up to `max` (the jitter
/// draws from the upper half).
pub fn max_attempts(min: Duration, max: Duration, window: Duration) -> u64 {
    let mut attempts = 1;
    let mut at = Duration::ZERO;
    let mut exp = min;
    // Bounded: each round adds at least min / 2 > 0.
    while attempts < 100_000 {
        at += exp / 2;
        if at > window {
            break;
        }
        attempts += 1;
        exp = (exp * 2).min(max);
    }
    attempts
}

/// A number that differs per call and per process, for topics, client ids and directories.
pub fn unique_suffix() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let random = std::collections::hash_map::RandomState::new().hash_one((n, nanos));
    format!("{}-{n}-{random:016x}", std::process::id())
}

/// A topic no other test uses: `mps/events/test/<name>/<random>`, so that tests sharing a
/// broker never see each other's events.
pub fn unique_topic(test_name: &str) -> String {
    format!("mps/events/test/{test_name}/{}", unique_suffix())
}

/// Milliseconds since the Unix epoch, as event timestamps count them.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
        .try_into()
        .expect("fits u64")
}

// ---------------------------------------------------------------------------------------------
// Temporary directory

/// A directory under the system temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", unique_suffix()));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `condition` every 10 ms until it holds (`true`) or `timeout` passes (`false`).
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// Awaits `future` for at most `timeout`, panicking with `what` when it takes longer.
pub async fn within<T>(timeout: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {timeout:?}"))
}

/// GUIDs of [`power_actions`]: this prefix and the request's index in 12 digits, so every
/// event says which request it belongs to.
pub const GUID_PREFIX: &str = "00000000-0000-4000-8000-";

/// Which request an event belongs to, from its GUID ([`GUID_PREFIX`] + index).
pub fn request_index(payload: &serde_json::Value) -> usize {
    payload["guid"]
        .as_str()
        .and_then(|g| g.strip_prefix(GUID_PREFIX))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("event without a test GUID: {payload}"))
}

/// Sends MPS power actions `indices` (GUID [`GUID_PREFIX`] + index) straight through the
/// layer, one after the other; each must answer 200 within `timeout`, broker or not.
pub async fn power_actions(
    layer: &mps_mqtt_events::MqttEventLayer,
    indices: std::ops::Range<usize>,
    timeout: Duration,
) {
    use tower::{Layer, ServiceExt};
    for index in indices {
        let inner = tower::service_fn(|_: ::http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(::http::Response::new(()))
        });
        let path = format!("/api/v1/amt/power/action/{GUID_PREFIX}{index:012}");
        let request = ::http::Request::post(path).body(()).expect("valid request");
        let response = within(
            timeout,
            "request through the layer",
            layer.layer(inner).oneshot(request),
        )
        .await
        .expect("infallible");
        assert_eq!(response.status(), 200, "request {index}");
    }
}

/// Sends `method path` straight through the layer; the inner service answers `status`, with
/// `details` attached to its response if given.
pub async fn respond(
    layer: &mps_mqtt_events::MqttEventLayer,
    method: &str,
    path: &str,
    status: u16,
    details: Option<&'static mps_mqtt_events::EventDetails>,
) {
    respond_with(layer, method, path, status, move |response| {
        if let Some(details) = details {
            details.attach(response);
        }
    })
    .await;
}

/// Sends `method path` through `layer` to a service answering `status`, whose handler does
/// `attach` to its response (details, a guid, data) as a handler would.
pub async fn respond_with(
    layer: &mps_mqtt_events::MqttEventLayer,
    method: &str,
    path: &str,
    status: u16,
    attach: impl Fn(&mut ::http::Response<()>) + Clone + Send + 'static,
) {
    use tower::{Layer, ServiceExt};
    let inner = tower::service_fn(move |_: ::http::Request<()>| {
        let attach = attach.clone();
        async move {
            let mut response = ::http::Response::new(());
            *response.status_mut() = ::http::StatusCode::from_u16(status).expect("a status");
            attach(&mut response);
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let request = ::http::Request::builder()
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

/// A broker, a subscriber on a fresh topic named after `test`, and a layer publishing there,
/// set up further by `configure` (a profile, a QoS, ...).
pub async fn connected(
    test: &str,
    configure: impl FnOnce(mps_mqtt_events::Builder) -> mps_mqtt_events::Builder,
) -> (Broker, Subscriber, mps_mqtt_events::MqttEventLayer) {
    let broker = Broker::start();
    let topic = unique_topic(test);
    let subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let builder = mps_mqtt_events::MqttEventLayer::builder()
        .address(broker.url())
        .topic(&topic);
    let layer = configure(builder).build().expect("valid config");
    (broker, subscriber, layer)
}

/// The value of the sample `name` (with its labels, as rendered) in Prometheus text.
pub fn prometheus_sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The payloads of the next `n` events, each `timestamp` checked to be a number and removed,
/// then nothing more for 300 ms.
pub async fn payloads(
    subscriber: &mut Subscriber,
    n: usize,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let events = subscriber.collect(n, timeout).await;
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
