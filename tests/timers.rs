//! Timer logic on Tokio's paused clock: a flush timeout and a shutdown deadline against a
//! broker that refuses connections return at their deadline, reconnects to a broker that
//! hangs up stay within the backoff, and a parked publisher wakes for the next request. Real loopback sockets; the waits take no real time.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use mps_mqtt_events::{FlushError, MqttEventLayer, PublisherState, Qos};
use support::scripted::{Script, ScriptedBroker};
use support::{UnusedPort, max_attempts, unique_topic};
use tower::{Layer, ServiceExt, service_fn};

/// Sends one request (MPS's device list) through the layer on the current runtime.
async fn call(layer: &MqttEventLayer) {
    let service = layer.layer(service_fn(|_: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    }));
    let request = Request::get("/api/v1/devices")
        .body(())
        .expect("valid request");
    let response = service.oneshot(request).await.expect("infallible");
    assert_eq!(response.status().as_u16(), 200);
}

/// How far past its deadline a flush or shutdown may return in virtual time. With the clock
/// paused nothing else can make it late; the margin only allows for timer granularity.
const VIRTUAL_SLACK: Duration = Duration::from_millis(5);

/// A layer publishing to a refused loopback port, with one event queued on the current
/// runtime (which starts the task there).
async fn one_event_for_a_dead_broker(dead: &UnusedPort) -> MqttEventLayer {
    let layer = MqttEventLayer::builder()
        .address(dead.url())
        .topic(unique_topic("virtual"))
        .build()
        .expect("valid config");
    call(&layer).await;
    layer
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn flush_against_a_refused_port_times_out_at_its_deadline_in_virtual_time() {
    let dead = UnusedPort::reserve();
    let layer = one_event_for_a_dead_broker(&dead).await;
    let handle = layer.handle();
    let timeout = Duration::from_secs(60);
    let start = tokio::time::Instant::now();
    let result = handle.flush(timeout).await;
    let elapsed = start.elapsed();
    assert!(
        matches!(result, Err(FlushError::Timeout { pending: 1, .. })),
        "{result:?}"
    );
    assert!(
        elapsed >= timeout && elapsed <= timeout + VIRTUAL_SLACK,
        "flush({timeout:?}) returned after {elapsed:?} of virtual time"
    );
    assert_eq!(
        handle.stats().pending(),
        1,
        "a timed-out flush keeps the event"
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn shutdown_against_a_refused_port_returns_at_its_deadline_in_virtual_time() {
    let dead = UnusedPort::reserve();
    let layer = one_event_for_a_dead_broker(&dead).await;
    let handle = layer.handle();
    let timeout = Duration::from_secs(60);
    let start = tokio::time::Instant::now();
    let report = handle.shutdown(timeout).await;
    let elapsed = start.elapsed();
    assert!(
        elapsed >= timeout && elapsed <= timeout + VIRTUAL_SLACK,
        "shutdown({timeout:?}) returned after {elapsed:?} of virtual time"
    );
    assert_eq!(
        (report.delivered, report.undelivered, report.stats.failed),
        (0, 1, 1),
        "{report:#?}"
    );
    assert_eq!(report.stats.state, PublisherState::ShutDown);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn reconnects_to_a_broker_that_hangs_up_stay_within_the_backoff() {
    let (min, max) = (Duration::from_millis(100), Duration::from_millis(800));
    let window = Duration::from_secs(20);
    // A "broker" that accepts every connection and closes it at once: each accept is one
    // connection attempt of the publisher, which fails and backs off.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local addr").port();
    let layer = MqttEventLayer::builder()
        .address(format!("mqtt://127.0.0.1:{port}"))
        .topic(unique_topic("backoff"))
        .reconnect_backoff(min, max)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let start = tokio::time::Instant::now();
    call(&layer).await;
    let mut attempts = 0_u64;
    let bound = max_attempts(min, max, window);
    while attempts <= bound {
        match tokio::time::timeout_at(start + window, listener.accept()).await {
            Ok(Ok((stream, _))) => {
                attempts += 1;
                drop(stream);
            }
            Ok(Err(e)) => panic!("accept: {e}"),
            Err(_) => break,
        }
    }
    assert!(
        attempts <= bound,
        "{attempts} connection attempts within {window:?} of virtual time; \
         reconnect_backoff({min:?}, {max:?}) allows at most {bound}"
    );
    // It does retry: with every delay at its longest (min doubling to max) it still makes
    // this many attempts in the window.
    assert!(
        attempts >= 10,
        "only {attempts} connection attempts within {window:?} of virtual time"
    );
    assert!(!handle.stats().connected);
    drop(listener);
    let _ = handle.shutdown(Duration::from_secs(1)).await;
}

/// A publisher that has parked after a quiet spell is woken by the next request, not by a
/// timer: on the paused clock, its event is written with no virtual time passing. Were the
/// wake-up lost, the task would sleep until its keep-alive (60 s here) and the clock would
/// jump there.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_parked_publisher_is_woken_by_the_next_request_at_once() {
    let broker = ScriptedBroker::start(Script::ACCEPT).await;
    let layer = MqttEventLayer::builder()
        .address(broker.url())
        .topic(unique_topic("parked"))
        .qos(Qos::AtMostOnce)
        .keep_alive(Duration::from_secs(60))
        .build()
        .expect("valid config");
    let handle = layer.handle();
    call(&layer).await;
    handle
        .flush(Duration::from_secs(5))
        .await
        .expect("the first event is written");
    // Quiet far longer than the publisher waits before it parks.
    tokio::time::sleep(Duration::from_secs(5)).await;

    // No flush here: a handle's message would wake the task by itself.
    let start = tokio::time::Instant::now();
    call(&layer).await;
    let written = broker.wait_publishes(2, Duration::from_secs(30)).await;
    let elapsed = start.elapsed();
    assert_eq!(written.len(), 2, "the second event reached the broker");
    assert!(
        elapsed < Duration::from_millis(2),
        "the parked publisher took {elapsed:?} of virtual time to write a new event"
    );
    let _ = handle.shutdown(Duration::from_secs(1)).await;
}
