//! No broker at all, or one that accepts connections and never answers: requests succeed,
//! events queue up to the capacity, memory stays bounded, and shutdown returns by its
//! deadline.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::{Request, Response};
use mps_mqtt_events::PublisherState;
use tower::{Layer, Service, ServiceExt, service_fn};

use crate::support::{UnusedPort, unique_topic, wait_until};
use crate::{
    SHUTDOWN_BOUND, STATE_TIMEOUT, assert_accounted, builder, http_calls, init_tracing,
    power_action_path, serve_publishing_to,
};

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

/// Resident memory of this process in KiB, from `/proc/self/status`.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

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
