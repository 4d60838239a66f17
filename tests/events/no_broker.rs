//! Without a broker: requests get their normal answers while events queue, are dropped and
//! counted when the queue is full, and fail by the shutdown deadline; a disabled layer passes
//! requests through and counts nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mps_mqtt_events::{Builder, MqttEventLayer, PublisherHandle, Stats};

use crate::support::{self, ServerGuard, UnusedPort};
use crate::{
    DEADLINE_SLACK, GUID, POWER_ACTION_BODY, Probe, UNKNOWN_GUID, accounted, assert_accounted,
    mps_router,
};

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

/// Sends `n` mixed requests, waits until the counters add up, and checks that every event
/// was accepted or dropped; the counters then.
async fn send_and_account(addr: SocketAddr, handle: &PublisherHandle, n: u64) -> Stats {
    send_mixed_requests(addr, n as usize).await;
    assert!(
        support::wait_until(Duration::from_secs(2), || accounted(&handle.stats())).await,
        "counters never added up: {:#?}",
        handle.stats()
    );
    let stats = handle.stats();
    assert_eq!(
        stats.enqueued + stats.dropped_queue_full + stats.dropped_closed,
        n,
        "every event accepted or dropped: {stats:#?}"
    );
    stats
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
    let stats = send_and_account(addr, &handle, REQUESTS).await;
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
    let stats = send_and_account(addr, &handle, REQUESTS).await;
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
