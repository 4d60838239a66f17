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

mod support;

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use http::{Request, Response};
use mps_mqtt_events::{Builder, MqttEventLayer, PublisherHandle, PublisherState, Stats};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tower::{Layer, Service, ServiceExt, service_fn};

use support::{Broker, Received, Subscriber, UnusedPort, unique_suffix, unique_topic, wait_until};

/// Reconnect delays of every layer here: short, so that tests finish quickly, and still
/// exponential, so that storms show.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Route of the requests: the MPS power action, whose event carries the GUID of the path.
const POWER_ACTION: &str = "/api/v1/amt/power/action/{guid}";
/// GUIDs of the requests are this prefix plus the request's index in 12 digits, so every
/// event says which request it belongs to.
const GUID_PREFIX: &str = "00000000-0000-4000-8000-";

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

/// Which request an event belongs to (from its GUID).
fn request_index(payload: &Value) -> usize {
    payload["guid"]
        .as_str()
        .and_then(|g| g.strip_prefix(GUID_PREFIX))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("event without a test GUID: {payload}"))
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
    assert_eq!(
        stats.enqueued,
        stats.delivered + stats.failed + stats.queue_len + stats.in_flight,
        "enqueued == delivered + failed + queue_len + in_flight: {stats:#?}"
    );
    assert_eq!(
        requests,
        stats.enqueued + stats.dropped_queue_full + stats.dropped_closed,
        "requests == enqueued + dropped_queue_full + dropped_closed: {stats:#?}"
    );
}

/// The most connection attempts that fit in `window` when each retry waits at least the
/// lower half of its exponential delay from [`BACKOFF_MIN`] to [`BACKOFF_MAX`] (the jitter
/// draws from the upper half), counting the first, immediate one.
fn max_attempts(window: Duration) -> u64 {
    let mut attempts = 1;
    let mut at = Duration::ZERO;
    let mut exp = BACKOFF_MIN;
    loop {
        at += exp / 2;
        if at > window {
            return attempts;
        }
        attempts += 1;
        exp = (exp * 2).min(BACKOFF_MAX);
    }
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

// ---------------------------------------------------------------------------------------------
// Fault injectors

/// A TCP forwarder to the broker that the publisher alone connects through.
///
/// It lets a test keep the publisher away from a broker that (re)starts until the test's
/// subscriber has subscribed again: with clean sessions, whatever the publisher sends before
/// would never reach the subscriber, and the test would race the publisher's backoff. Until
/// first opened the port is bound but not listening, so connections are refused exactly as
/// when nothing runs there.
struct Gate {
    port: u16,
    upstream: SocketAddr,
    reserved: Option<UnusedPort>,
    forwarding: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Gate {
    fn closed(upstream: SocketAddr) -> Gate {
        let reserved = UnusedPort::reserve();
        Gate {
            port: reserved.port,
            upstream,
            reserved: Some(reserved),
            forwarding: Arc::new(AtomicBool::new(false)),
            acceptor: None,
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Forwards new connections to the broker from now on.
    fn open(&mut self) {
        self.forwarding.store(true, Ordering::SeqCst);
        let Some(reserved) = self.reserved.take() else {
            return;
        };
        let listener = reserved.into_socket().listen(64).expect("listen");
        let forwarding = Arc::clone(&self.forwarding);
        let upstream = self.upstream;
        self.acceptor = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !forwarding.load(Ordering::SeqCst) {
                    continue; // Dropped: the publisher sees the connection close.
                }
                tokio::spawn(async move {
                    if let Ok(mut broker) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
            }
        }));
    }

    /// Closes every new connection at once; a connection already forwarded ends when the
    /// broker's side does.
    fn close(&self) {
        self.forwarding.store(false, Ordering::SeqCst);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(acceptor) = self.acceptor.take() {
            acceptor.abort();
        }
    }
}

/// A TCP listener that accepts connections and never sends a byte: an MQTT broker that hangs
/// before CONNACK. Holds up to 64 connections open until dropped.
struct SilentListener {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentListener {
    fn start() -> SilentListener {
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local addr");
        let accepted = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let accepted = Arc::clone(&accepted);
            let stop = Arc::clone(&stop);
            move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((socket, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            if held.len() < 64 {
                                held.push(socket);
                            }
                        }
                        // Polling pace of the accept loop, not a synchronisation.
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            }
        });
        SilentListener {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `signal` (`STOP`, `CONT`) to a process.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// Sends SIGCONT on drop, so a failing test does not leave the broker stopped.
struct ContinueOnDrop(u32);

impl Drop for ContinueOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-CONT")
            .arg(self.0.to_string())
            .status();
    }
}

/// An HTTP/1.1 client on one keep-alive connection, for many requests in a row.
struct KeepAliveClient {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl KeepAliveClient {
    async fn connect(addr: SocketAddr) -> KeepAliveClient {
        let stream = TcpStream::connect(addr).await.expect("connect to server");
        stream.set_nodelay(true).expect("nodelay");
        KeepAliveClient {
            stream,
            buffer: Vec::with_capacity(1024),
        }
    }

    /// Sends a bodiless POST and returns the status of its response (which must have a
    /// Content-Length, as axum gives a fixed body).
    async fn post(&mut self, path: &str) -> u16 {
        let request = support::request_bytes("POST", path, None, true);
        self.stream.write_all(&request).await.expect("send request");
        loop {
            if let Some(head_end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..head_end]).expect("ASCII head");
                let status = head
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("bad status line in {head:?}"));
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
                let total = head_end + 4 + length;
                if self.buffer.len() >= total {
                    self.buffer.drain(..total);
                    return status;
                }
            }
            let mut chunk = [0_u8; 4096];
            let n = self.stream.read(&mut chunk).await.expect("read response");
            assert!(n > 0, "server closed the keep-alive connection");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Resident memory of this process in KiB, from `/proc/self/status`.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

// ---------------------------------------------------------------------------------------------
// No broker

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_succeed_and_events_queue_while_broker_never_started() {
    init_tracing();
    let port = UnusedPort::reserve();
    let (handle, addr, _server) =
        serve_publishing_to(&port.url(), &unique_topic("never_started")).await;

    const REQUESTS: usize = 200;
    http_calls(addr, 0..REQUESTS).await;

    let stats = handle.stats();
    assert_eq!(
        stats.queue_len + stats.dropped_queue_full,
        REQUESTS as u64,
        "{stats:#?}"
    );
    assert_eq!(
        stats.queue_len, REQUESTS as u64,
        "default capacity holds all: {stats:#?}"
    );
    assert_eq!(
        (stats.published, stats.delivered, stats.in_flight),
        (0, 0, 0),
        "{stats:#?}"
    );
    assert!(!stats.connected);
    assert_accounted(&stats, REQUESTS as u64);

    let started = Instant::now();
    let report = handle.shutdown(Duration::from_millis(500)).await;
    let took = started.elapsed();
    eprintln!("never started: shutdown(500ms) took {took:?}");
    assert!(took < SHUTDOWN_BOUND, "shutdown(500ms) took {took:?}");
    assert_eq!(report.undelivered, stats.queue_len, "{report:#?}");
    assert_eq!(report.stats.failed, stats.queue_len, "{report:#?}");
    assert_eq!(report.stats.state, PublisherState::ShutDown);
    assert_accounted(&report.stats, REQUESTS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_listener_is_survived() {
    init_tracing();
    let silent = SilentListener::start();
    let (handle, addr, _server) =
        serve_publishing_to(&format!("mqtt://{}", silent.addr), &unique_topic("silent")).await;

    const REQUESTS: usize = 50;
    http_calls(addr, 0..REQUESTS).await;
    assert!(
        wait_until(STATE_TIMEOUT, || silent.accepted.load(Ordering::SeqCst)
            >= 1)
        .await,
        "the publisher never connected to the silent listener"
    );
    let stats = handle.stats();
    assert!(
        !stats.connected,
        "connected to a listener that never sent CONNACK: {stats:#?}"
    );
    assert_eq!(stats.queue_len, REQUESTS as u64, "{stats:#?}");
    assert_accounted(&stats, REQUESTS as u64);

    let started = Instant::now();
    let report = handle.shutdown(Duration::from_millis(500)).await;
    let took = started.elapsed();
    eprintln!(
        "silent listener: shutdown(500ms) took {took:?}, {} connections accepted",
        silent.accepted.load(Ordering::SeqCst)
    );
    assert!(took < SHUTDOWN_BOUND, "shutdown(500ms) took {took:?}");
    assert_eq!(report.undelivered, REQUESTS as u64, "{report:#?}");
    assert_eq!(report.stats.failed, REQUESTS as u64, "{report:#?}");
    assert!(!report.stats.connected);
    assert_accounted(&report.stats, REQUESTS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_while_broker_is_down() {
    init_tracing();
    const CAPACITY: usize = 1000;
    const EVENTS: usize = 100_000;
    let port = UnusedPort::reserve();
    let layer = builder(&port.url(), &unique_topic("memory"))
        .queue_capacity(CAPACITY)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let mut service = layer.layer(inner);
    let path = power_action_path(0);

    // One request first, so the publisher task and its buffers exist before measuring.
    let request = Request::post(path.as_str()).body(()).expect("request");
    service
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect("infallible");
    let before = vm_rss_kib();
    let started = Instant::now();
    for _ in 1..EVENTS {
        let request = Request::post(path.as_str()).body(()).expect("request");
        let response = service.ready().await.expect("ready").call(request).await;
        assert_eq!(response.expect("infallible").status(), 200);
    }
    let took = started.elapsed();
    let after = vm_rss_kib();
    let growth_kib = after.saturating_sub(before);
    eprintln!(
        "memory: {EVENTS} events with the broker down in {took:?}; VmRSS before {before} KiB, \
         after {after} KiB, growth {growth_kib} KiB"
    );

    let stats = handle.stats();
    assert!(stats.queue_len <= CAPACITY as u64, "{stats:#?}");
    assert_eq!(stats.queue_len, CAPACITY as u64, "{stats:#?}");
    assert_eq!(
        stats.dropped_queue_full,
        (EVENTS - CAPACITY) as u64,
        "{stats:#?}"
    );
    assert_accounted(&stats, EVENTS as u64);
    // Other tests run in parallel threads of this process: keep the bound loose.
    assert!(growth_kib < 20 * 1024, "VmRSS grew by {growth_kib} KiB");

    let report = handle.shutdown(Duration::from_millis(200)).await;
    assert_eq!(report.undelivered, CAPACITY as u64, "{report:#?}");
    assert_accounted(&report.stats, EVENTS as u64);
}

// ---------------------------------------------------------------------------------------------
// Broker late, killed, paused

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_queued_before_broker_starts_arrive_when_it_does() {
    init_tracing();
    let Some(mut broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    // Nothing runs on the broker's port nor on the publisher's while the requests are made.
    broker.kill();
    let mut gate = Gate::closed(broker.addr());
    let topic = unique_topic("late_broker");
    let (handle, addr, _server) = serve_publishing_to(&gate.url(), &topic).await;

    const REQUESTS: usize = 50;
    http_calls(addr, 0..REQUESTS).await;
    let stats = handle.stats();
    assert_eq!(stats.queue_len, REQUESTS as u64, "{stats:#?}");
    assert!(!stats.connected);

    tokio::task::block_in_place(|| broker.restart());
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    gate.open();
    handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("queued events delivered once the broker runs");

    let (events, duplicates) =
        collect_distinct(&mut subscriber, REQUESTS, Duration::from_secs(5)).await;
    let order: Vec<usize> = events.iter().map(|e| request_index(&e.payload)).collect();
    assert_eq!(
        order,
        (0..REQUESTS).collect::<Vec<_>>(),
        "all, in request order"
    );
    let seqs: Vec<u64> = events.iter().map(|e| event_seq(&e.payload)).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "id sequence numbers increase: {seqs:?}"
    );
    assert_eq!(duplicates, 0, "nothing was sent twice without a reconnect");

    let stats = handle.stats();
    assert_eq!(stats.delivered, REQUESTS as u64, "{stats:#?}");
    assert_eq!(
        stats.reconnects, 0,
        "the first connection is no reconnect: {stats:#?}"
    );
    assert_accounted(&stats, REQUESTS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_events_survive_a_broker_kill_and_restart() {
    init_tracing();
    let Some(mut broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let mut gate = Gate::closed(broker.addr());
    gate.open();
    let topic = unique_topic("kill_restart");
    let (handle, addr, _server) = serve_publishing_to(&gate.url(), &topic).await;

    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    http_calls(addr, 0..100).await;
    handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("delivered before the kill");
    assert_eq!(handle.stats().acknowledged, 100, "{:#?}", handle.stats());
    let (before, _) = collect_distinct(&mut subscriber, 100, Duration::from_secs(5)).await;
    assert_eq!(
        indices(&before),
        (0..100).collect(),
        "events before the kill"
    );
    drop(subscriber);

    // The publisher may not reach the restarted broker before the new subscriber has
    // subscribed: the gate refuses it until then.
    gate.close();
    broker.kill();
    wait_connected(&handle, false).await;
    for i in 100..200 {
        assert_eq!(
            http_call(addr, i).await,
            200,
            "request {i} during the outage"
        );
    }
    let during = handle.stats();
    assert_eq!(during.pending(), 100, "outage events wait: {during:#?}");
    assert_accounted(&during, 200);

    tokio::task::block_in_place(|| broker.restart());
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    gate.open();
    handle
        .flush(Duration::from_secs(15))
        .await
        .expect("outage events delivered after the restart");

    let (after, duplicates) = collect_distinct(&mut subscriber, 100, Duration::from_secs(5)).await;
    eprintln!(
        "kill/restart: {} outage events arrived, {duplicates} duplicates",
        after.len()
    );
    assert_eq!(
        indices(&after),
        (100..200).collect(),
        "outage events after the restart"
    );
    let stats = handle.stats();
    assert!(stats.reconnects >= 1, "{stats:#?}");
    assert_eq!(stats.acknowledged, 200, "{stats:#?}");
    assert_eq!(stats.failed, 0, "{stats:#?}");
    assert_accounted(&stats, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_broker_never_delays_requests() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let pid = broker.pid().expect("mosquitto runs");
    let topic = unique_topic("paused");
    let (handle, addr, _server) = serve_publishing_to(&broker.url(), &topic).await;
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;

    // More than the 512 unacknowledged events the publisher keeps in flight (its documented
    // window) arrive while the broker is stopped: the rest must wait in our queue, and no
    // request may wait at all.
    const REQUESTS: usize = 700;
    const STOP_AT: usize = 50;
    const WINDOW: u64 = 512;
    let mut slowest = Duration::ZERO;
    let mut paused = None;
    let mut paused_at = Instant::now();
    // Spreads the paused requests over most of a second, so the publisher runs many times
    // while the broker reads nothing (pacing only: no wait depends on it).
    let mut pace = tokio::time::interval(Duration::from_millis(2));
    for i in 0..REQUESTS {
        if i == STOP_AT {
            signal(pid, "STOP");
            paused = Some(ContinueOnDrop(pid));
            paused_at = Instant::now();
        }
        if i >= STOP_AT {
            pace.tick().await;
        }
        let started = Instant::now();
        assert_eq!(http_call(addr, i).await, 200, "request {i}");
        slowest = slowest.max(started.elapsed());
    }
    let paused_for = paused_at.elapsed();
    let during = handle.stats();
    signal(pid, "CONT");
    drop(paused);
    eprintln!(
        "paused broker: {} requests while SIGSTOPped for {paused_for:?}, slowest request \
         {slowest:?}; at SIGCONT: {during:?}",
        REQUESTS - STOP_AT
    );
    assert!(
        during.in_flight <= WINDOW,
        "at most {WINDOW} handed over: {during:#?}"
    );
    assert!(
        during.queue_len > 0,
        "the rest waits in our queue: {during:#?}"
    );

    handle
        .flush(Duration::from_secs(20))
        .await
        .expect("delivered after SIGCONT");
    let (events, _) = collect_distinct(&mut subscriber, REQUESTS, Duration::from_secs(10)).await;
    assert_eq!(
        indices(&events),
        (0..REQUESTS).collect(),
        "every event arrives"
    );
    let stats = handle.stats();
    assert_eq!(stats.delivered, REQUESTS as u64, "{stats:#?}");
    assert_eq!(stats.failed, 0, "{stats:#?}");
    assert_accounted(&stats, REQUESTS as u64);
}

// ---------------------------------------------------------------------------------------------
// Storms

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_backs_off_instead_of_spinning() {
    init_tracing();
    // The last `allow_anonymous` wins, and no password file exists: CONNACK "not authorised".
    let Some(broker) = Broker::start_mosquitto_only("allow_anonymous false") else {
        return;
    };
    let attempts_in = |log: &str| log.matches("New connection from").count() as u64;
    let baseline = attempts_in(&broker.log());
    let layer = builder(&broker.url(), &unique_topic("refused"))
        .build()
        .expect("valid config");
    let handle = layer.handle();

    const WINDOW: Duration = Duration::from_secs(2);
    let started = Instant::now();
    let mut requests = 0_u64;
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < WINDOW {
        pace.tick().await;
        assert_eq!(call(&layer, requests as usize).await, 200);
        requests += 1;
    }
    // The log is read first: every attempt counted there happened within `elapsed`.
    let log = broker.log();
    let elapsed = started.elapsed();
    let attempts = attempts_in(&log) - baseline;
    let refusals = log.matches("not authorised").count();
    let bound = max_attempts(elapsed);
    eprintln!(
        "refused: {attempts} connection attempts ({refusals} refused) in {elapsed:?}, \
         bound {bound}, {requests} requests"
    );
    assert!(
        attempts >= 2,
        "the publisher retries after a refusal; log:\n{log}"
    );
    assert!(
        attempts <= bound,
        "{attempts} attempts in {elapsed:?} exceed the backoff bound {bound}; log:\n{log}"
    );
    let stats = handle.stats();
    assert!(!stats.connected, "{stats:#?}");
    assert_eq!(stats.delivered, 0, "{stats:#?}");
    assert_accounted(&stats, requests);
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_paths_are_never_published() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let topic = unique_topic("oversized");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = builder(&broker.url(), &topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let huge = "x".repeat(60 * 1024); // near http's 64 KiB limit on a URI
    let paths = [
        format!("/{huge}"),                               // no route
        format!("/api/v1/amt/power/action/{huge}"),       // a route, a huge guid segment
        format!("/api/v1/amt/power/action/%FF%FE{huge}"), // percent-encoded invalid UTF-8
    ];
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    for path in &paths {
        let request = Request::post(path.as_str())
            .body(())
            .expect("valid request");
        let response = layer
            .layer(inner)
            .oneshot(request)
            .await
            .expect("infallible");
        assert_eq!(response.status(), 200);
    }
    handle
        .flush(Duration::from_secs(10))
        .await
        .expect("delivered");
    let events = subscriber
        .collect(paths.len(), Duration::from_secs(5))
        .await;
    assert_eq!(events.len(), paths.len());
    for event in &events {
        assert!(event.raw.len() < 1024, "event of {} bytes", event.raw.len());
        assert!(
            !event.raw.contains("xxxx"),
            "the path leaked: {}",
            event.raw
        );
        assert_eq!(event.payload.get("guid"), None);
    }
    assert_eq!(events[0].payload["http"]["path"], Value::Null);
    assert_eq!(
        events[1].payload["http"]["path"],
        "/api/v1/amt/power/action/:guid"
    );
    assert_accounted(&handle.stats(), paths.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_are_all_counted() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    const REQUESTS: usize = 10_000;
    let layer = builder(&broker.url(), &unique_topic("concurrent"))
        .build()
        .expect("valid config");
    let handle = layer.handle();
    // Every request stays in flight until all of them have started.
    let gate = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let inner = service_fn(move |_: Request<()>| {
        let gate = Arc::clone(&gate);
        async move {
            gate.wait().await;
            Ok::<_, Infallible>(Response::new(()))
        }
    });
    let service = layer.layer(inner);
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let service = service.clone();
        requests.spawn(async move {
            let request = Request::post(power_action_path(i)).body(()).expect("valid");
            service.oneshot(request).await.expect("infallible").status()
        });
    }
    let all = support::within(Duration::from_secs(30), "10k requests", requests.join_all()).await;
    assert!(all.iter().all(|status| *status == 200));
    handle
        .flush(Duration::from_secs(30))
        .await
        .expect("delivered");
    let stats = handle.stats();
    assert_accounted(&stats, REQUESTS as u64);
    assert_eq!(stats.failed, 0, "{stats:#?}");
    assert_eq!(stats.delivered, stats.enqueued, "{stats:#?}");
}

/// Pins a limit the README states: an MQTT 3.1.1 broker acknowledges a publish its ACL
/// denies (Mosquitto drops it silently), so such events count as delivered and never arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_denied_events_are_acknowledged_but_never_arrive() {
    init_tracing();
    let dir = support::TempDir::new("mps-acl");
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic read mps/#\n").expect("write the ACL file");
    let Some(broker) =
        Broker::start_mosquitto_only(&format!("acl_file {}\nlog_type debug", acl.display()))
    else {
        return;
    };
    let topic = unique_topic("acl_denied");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = builder(&broker.url(), &topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    for i in 0..5 {
        assert_eq!(call(&layer, i).await, 200);
    }
    handle
        .flush(Duration::from_secs(10))
        .await
        .expect("the broker acknowledges denied publishes");
    let stats = handle.stats();
    assert_eq!(stats.acknowledged, 5, "{stats:#?}");
    assert_accounted(&stats, 5);
    subscriber.assert_quiet(Duration::from_millis(300)).await;
    assert!(broker.log().contains("Denied PUBLISH"), "{}", broker.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_client_id_does_not_cause_a_reconnect_storm() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let suffix = unique_suffix();
    let client_id = format!("dup-{}", &suffix[suffix.len() - 12..]);
    let topic = unique_topic("duplicate_id");
    let layer = builder(&broker.url(), &topic)
        .client_id(&client_id)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;

    let mut requests = 0_usize;
    assert_eq!(call(&layer, requests).await, 200);
    requests += 1;
    handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("connected and delivered");

    // A second client with our id: each connection kicks the other one off.
    let (options, twin_connects) = (
        {
            let mut options = MqttOptions::new(&client_id, "127.0.0.1", broker.port);
            options.set_keep_alive(Duration::from_secs(5));
            options
        },
        Arc::new(AtomicU64::new(0)),
    );
    let (twin, mut twin_loop) = AsyncClient::new(options, 10);
    let twin_task = tokio::spawn({
        let connects = Arc::clone(&twin_connects);
        async move {
            loop {
                match twin_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connects.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    // Reconnects on the next poll; a short pause so it does not spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
    });
    assert!(
        wait_until(STATE_TIMEOUT, || twin_connects.load(Ordering::SeqCst) >= 1).await,
        "the twin client never connected"
    );
    let fight_started = Instant::now();
    let reconnects_before = handle.stats().reconnects;

    const WINDOW: Duration = Duration::from_secs(3);
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    while fight_started.elapsed() < WINDOW {
        pace.tick().await;
        assert_eq!(call(&layer, requests).await, 200, "request {requests}");
        requests += 1;
    }
    let elapsed = fight_started.elapsed();
    let reconnects = handle.stats().reconnects - reconnects_before;
    let twin_total = twin_connects.load(Ordering::SeqCst);
    twin_task.abort();
    drop(twin);
    let bound = max_attempts(elapsed);
    eprintln!(
        "duplicate id: {reconnects} reconnects of ours, {twin_total} connections of the twin \
         in {elapsed:?} (bound {bound}), {requests} requests"
    );
    assert!(
        reconnects >= 1,
        "the twin never kicked us off: {:#?}",
        handle.stats()
    );
    assert!(
        reconnects <= bound,
        "{reconnects} reconnects in {elapsed:?} exceed the backoff bound {bound}"
    );

    // The twin is gone: everything arrives.
    handle
        .flush(Duration::from_secs(15))
        .await
        .expect("delivered once the twin left");
    let (events, duplicates) =
        collect_distinct(&mut subscriber, requests, Duration::from_secs(5)).await;
    eprintln!(
        "duplicate id: {} events arrived, {duplicates} duplicates",
        events.len()
    );
    assert_eq!(
        indices(&events),
        (0..requests).collect(),
        "every event arrives"
    );
    let stats = handle.stats();
    assert_eq!(stats.delivered, requests as u64, "{stats:#?}");
    assert_accounted(&stats, requests as u64);
}

// ---------------------------------------------------------------------------------------------
// Shutdown on a current-thread runtime

#[tokio::test(flavor = "current_thread")]
async fn shutdown_with_live_broker_delivers_everything() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let topic = unique_topic("shutdown_live");
    let layer = builder(&broker.url(), &topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;

    for i in 0..100 {
        assert_eq!(call(&layer, i).await, 200);
    }
    let started = Instant::now();
    let report = handle.shutdown(Duration::from_secs(5)).await;
    eprintln!(
        "shutdown with live broker took {:?}: {report:?}",
        started.elapsed()
    );
    assert_eq!(report.undelivered, 0, "{report:#?}");
    assert_eq!(report.delivered, 100, "{report:#?}");
    let (events, _) = collect_distinct(&mut subscriber, 100, Duration::from_secs(5)).await;
    assert_eq!(indices(&events), (0..100).collect());
    assert_accounted(&report.stats, 100);
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_with_dead_broker_returns_by_the_deadline() {
    init_tracing();
    let Some(mut broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let layer = builder(&broker.url(), &unique_topic("shutdown_dead"))
        .build()
        .expect("valid config");
    let handle = layer.handle();
    // Connected once, so the outage is a lost connection, not a broker that never was.
    assert_eq!(call(&layer, 0).await, 200);
    handle.flush(FLUSH_TIMEOUT).await.expect("delivered");
    broker.kill();
    wait_connected(&handle, false).await;

    for i in 1..=100 {
        assert_eq!(call(&layer, i).await, 200);
    }
    let started = Instant::now();
    let report = handle.shutdown(Duration::from_secs(1)).await;
    let took = started.elapsed();
    eprintln!("shutdown(1s) with dead broker took {took:?}");
    assert!(took < SHUTDOWN_BOUND, "shutdown(1s) took {took:?}");
    assert_eq!(report.undelivered, 100, "{report:#?}");
    assert_eq!(report.stats.failed, 100, "{report:#?}");
    assert_eq!(report.stats.delivered, 1, "{report:#?}");
    assert_accounted(&report.stats, 101);
}

// ---------------------------------------------------------------------------------------------
// Load

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_of_20k_requests_arrives_exactly_once() {
    init_tracing();
    // Mosquitto drops QoS 1 messages for a subscriber more than 1000 behind by default: lift
    // that, so what is measured is the publisher, not the subscriber's pace.
    let Some(broker) = Broker::start_mosquitto_only("max_queued_messages 0") else {
        return;
    };
    const REQUESTS: usize = 20_000;
    const CONCURRENCY: usize = 64;
    let topic = unique_topic("load");
    let (handle, addr, _server) = serve_publishing_to(&broker.url(), &topic).await;
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;

    let started = Instant::now();
    let clients: Vec<_> = (0..CONCURRENCY)
        .map(|client| {
            tokio::spawn(async move {
                let mut connection = KeepAliveClient::connect(addr).await;
                for i in (client..REQUESTS).step_by(CONCURRENCY) {
                    let status = support::within(
                        Duration::from_secs(10),
                        "keep-alive request",
                        connection.post(&power_action_path(i)),
                    )
                    .await;
                    assert_eq!(status, 200, "request {i}");
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client task");
    }
    let served_in = started.elapsed();

    handle
        .flush(Duration::from_secs(30))
        .await
        .expect("all delivered");
    let delivered_in = started.elapsed();
    let (events, duplicates) =
        collect_distinct(&mut subscriber, REQUESTS, Duration::from_secs(30)).await;
    let received_in = started.elapsed();
    eprintln!(
        "load: {REQUESTS} requests at concurrency {CONCURRENCY} served in {served_in:?} \
         ({:.0} req/s), acknowledged after {delivered_in:?}, all received after \
         {received_in:?}",
        REQUESTS as f64 / served_in.as_secs_f64()
    );
    assert_eq!(events.len(), REQUESTS, "distinct ids received");
    assert_eq!(duplicates, 0, "no restart happened, so no duplicates");
    assert_eq!(
        indices(&events),
        (0..REQUESTS).collect(),
        "one event per request"
    );
    // Nothing more may come: the absence is the assertion.
    subscriber.assert_quiet(Duration::from_millis(300)).await;

    let stats = handle.stats();
    assert_eq!(stats.dropped_queue_full, 0, "{stats:#?}");
    assert_eq!(stats.delivered, REQUESTS as u64, "{stats:#?}");
    assert_eq!(stats.reconnects, 0, "{stats:#?}");
    assert_accounted(&stats, REQUESTS as u64);
}

// ---------------------------------------------------------------------------------------------
// Publisher death

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
