//! Fault injection ("unbreakable delivery"): a broker that never started, starts late, is
//! killed and restarted, paused with SIGSTOP, accepts but never answers, refuses us, or
//! fights us over the client id; shutdown on a current-thread runtime with the broker alive
//! or dead; memory during a long outage; 20 000 requests over HTTP; a publisher whose
//! runtime went away.
//!
//! Each broker is a Mosquitto process started by the test on a free loopback port and
//! stopped by its PID. Without `mosquitto` those tests print `skipped: ...` and pass, unless
//! `MPS_MQTT_REQUIRE_MOSQUITTO=1` (CI) makes that a failure.
//!
//! After each scenario two identities are checked (see [`assert_accounted`]):
//! `enqueued == delivered + failed + queue_len + in_flight` and
//! `requests == enqueued + dropped_queue_full + dropped_closed`.
//!
//! The scenarios live in one module per concern (no broker, restarts, storms, bad input,
//! shutdown, load, publisher death); the helpers they share are here.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod death;
mod load;
mod no_broker;
mod restarts;
mod shutdown;
mod storms;

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use http::{Request, Response};
use mps_mqtt_events::{Builder, MqttEventLayer, PublisherHandle, Stats};
use serde_json::Value;
use tower::{Layer, ServiceExt, service_fn};

use support::{GUID_PREFIX, Received, Subscriber, request_index, wait_until};

/// Reconnect delays of every layer here: short, so that tests finish quickly, and still
/// exponential, so that storms show.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Route of the requests: the MPS power action, whose event carries the GUID of the path.
const POWER_ACTION: &str = "/api/v1/amt/power/action/{guid}";

/// How long one request may take, broker or not: the proof that nothing waits on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a state change of the publisher (connected, disconnected) may take.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long flush may take with a healthy local broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Generous bound for a `shutdown(timeout)` that must return by its deadline: not a
/// performance assertion, only "it does not hang" on a loaded 2-core machine.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// Requests and events

fn guid(index: usize) -> String {
    format!("{GUID_PREFIX}{index:012}")
}

fn power_action_path(index: usize) -> String {
    format!("/api/v1/amt/power/action/{}", guid(index))
}

/// A layer for `address` and `topic` with the short test backoff; more options can follow.
fn builder(address: &str, topic: &str) -> Builder {
    MqttEventLayer::builder()
        .address(address)
        .topic(topic)
        .reconnect_backoff(BACKOFF_MIN, BACKOFF_MAX)
}

/// The MPS-like app: the power action answers 200 with a small JSON body.
fn router(layer: MqttEventLayer) -> Router {
    Router::new()
        .route(POWER_ACTION, post(|| async { "{}" }))
        .layer(layer)
}

/// Serves the MPS-like router with a layer publishing to `address` on `topic`.
async fn serve_publishing_to(
    address: &str,
    topic: &str,
) -> (PublisherHandle, SocketAddr, support::ServerGuard) {
    let layer = builder(address, topic).build().expect("valid config");
    let handle = layer.handle();
    let (addr, server) = support::serve(router(layer)).await;
    (handle, addr, server)
}

/// Sends requests `indices` one after the other; each must succeed.
async fn http_calls(addr: SocketAddr, indices: std::ops::Range<usize>) {
    for i in indices {
        assert_eq!(http_call(addr, i).await, 200, "request {i}");
    }
}

/// Sends request `index` straight to the layered service (no HTTP), returning its status.
async fn call(layer: &MqttEventLayer, index: usize) -> u16 {
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let request = Request::post(power_action_path(index))
        .body(())
        .expect("valid request");
    let response = support::within(
        REQUEST_TIMEOUT,
        "request through the layer",
        layer.layer(inner).oneshot(request),
    )
    .await
    .expect("infallible");
    response.status().as_u16()
}

/// Sends request `index` over HTTP (one connection), bounded by [`REQUEST_TIMEOUT`].
async fn http_call(addr: SocketAddr, index: usize) -> u16 {
    let path = power_action_path(index);
    support::within(
        REQUEST_TIMEOUT,
        &format!("POST {path}"),
        support::http(addr, "POST", &path, None),
    )
    .await
}

/// The event's `id`, `<16 hex>-<seq>`.
fn event_id(payload: &Value) -> &str {
    payload["id"]
        .as_str()
        .unwrap_or_else(|| panic!("event without an id: {payload}"))
}

/// The sequence number of the event's `id`.
fn event_seq(payload: &Value) -> u64 {
    let id = event_id(payload);
    id.rsplit_once('-')
        .and_then(|(_, seq)| seq.parse().ok())
        .unwrap_or_else(|| panic!("id {id:?} is not <hex>-<seq>"))
}

/// Collects events until `n` distinct ids arrived (duplicates, which QoS 1 allows after a
/// reconnect, are skipped) or `timeout` passes; returns the first copy of each, in arrival
/// order, and how many duplicates came.
async fn collect_distinct(
    subscriber: &mut Subscriber,
    n: usize,
    timeout: Duration,
) -> (Vec<Received>, usize) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut seen = HashSet::new();
    let mut distinct = Vec::with_capacity(n);
    let mut duplicates = 0;
    while distinct.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(message) = subscriber.next(left).await else {
            break;
        };
        if seen.insert(event_id(&message.payload).to_owned()) {
            distinct.push(message);
        } else {
            duplicates += 1;
        }
    }
    (distinct, duplicates)
}

/// The request indices of `events`, sorted.
fn indices(events: &[Received]) -> BTreeSet<usize> {
    events.iter().map(|e| request_index(&e.payload)).collect()
}

/// Every accepted event is delivered, failed or pending; every request's event was accepted
/// or dropped. Call it when the publisher is quiet (after flush or shutdown, or with no
/// broker), since the counters are read one by one.
#[track_caller]
fn assert_accounted(stats: &Stats, requests: u64) {
    support::assert_accounted(stats);
    assert_eq!(
        requests,
        stats.enqueued + stats.dropped_queue_full + stats.dropped_closed,
        "requests == enqueued + dropped_queue_full + dropped_closed: {stats:#?}"
    );
}

/// Logs of the library to the test's output, with `RUST_LOG=mps_mqtt_events=debug`.
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

async fn wait_connected(handle: &PublisherHandle, connected: bool) {
    assert!(
        wait_until(STATE_TIMEOUT, || handle.stats().connected == connected).await,
        "publisher connected != {connected} within {STATE_TIMEOUT:?}: {:#?}",
        handle.stats()
    );
}
