//! What the layer adds to each request, against a bare service and tower-http's `TraceLayer`.
//!
//! Run with `cargo bench --bench layer`. The `on` case publishes for real to the Mosquitto on
//! 127.0.0.1:1883 (set `BENCH_MQTT_ADDRESS` to use another broker) and is skipped with a note
//! when none answers; it times batches the queue can take and flushes between them, so it
//! measures the accepted path while the publisher works on the other core: on 2 cores shared
//! with Mosquitto it includes the request thread being preempted. `on_queued` times the same
//! accepted path with the publisher not running, i.e. the request path alone;
//! `on_queued_headers` and `on_queued_traceparent` the same with a client's usual headers,
//! without and with a W3C `traceparent`.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method, Request, Response, Uri};
use mps_mqtt_events::MqttEventLayer;
use support::typical_headers;
use tower::{Layer, Service, service_fn};

const PATH: &str = "/api/v1/amt/power/action/4c4c4544-004b-4210-8033-b6c04f504633";
const CAPACITY: usize = 8192;
/// Untimed calls of the `on` case after each flush.
const WARM_UP: u64 = 64;

fn request(uri: &Uri, headers: &HeaderMap) -> Request<String> {
    let mut request = Request::new(String::new());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    if !headers.is_empty() {
        *request.headers_mut() = headers.clone();
    }
    request
}

/// Polls a future that is ready at once (every service here answers without waiting).
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the benchmarked service must answer at once"),
    }
}

fn call<S, B>(service: &mut S, uri: &Uri)
where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    call_with(service, uri, &HeaderMap::new());
}

fn call_with<S, B>(service: &mut S, uri: &Uri, headers: &HeaderMap)
where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let response = ready(service.call(request(uri, headers))).expect("infallible");
    black_box(response);
}

/// Times calls whose events are accepted into the queue while the publisher task (from
/// `build_pair`, never spawned) does not run, so nothing competes for the cores. A fresh
/// layer per batch keeps the queue from filling; building it is not timed.
fn queued(iters: u64, uri: &Uri, headers: &HeaderMap) -> Duration {
    let mut timed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let batch = left.min(CAPACITY as u64 - 1);
        let (layer, task) = MqttEventLayer::builder()
            .address("mqtt://127.0.0.1:1")
            .queue_capacity(CAPACITY)
            .build_pair()
            .expect("valid config");
        let mut queued = layer.layer(inner());
        call_with(&mut queued, uri, headers);
        let start = Instant::now();
        for _ in 0..batch {
            call_with(&mut queued, uri, headers);
        }
        timed += start.elapsed();
        left -= batch;
        assert_eq!(layer.handle().stats().dropped_queue_full, 0);
        drop((queued, layer, task));
    }
    timed
}

fn inner() -> impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone
{
    service_fn(|_: Request<String>| async { Ok::<_, Infallible>(Response::new(String::new())) })
}

fn broker_reachable(address: &str) -> bool {
    let host_port = address
        .trim_start_matches("mqtt://")
        .trim_start_matches("tcp://");
    std::net::TcpStream::connect(host_port).is_ok()
}

fn per_request(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    let uri = Uri::from_static(PATH);
    let mut group = c.benchmark_group("per_request");

    let mut bare = inner();
    group.bench_function("bare", |b| b.iter(|| call(&mut bare, &uri)));

    let mut traced = tower_http::trace::TraceLayer::new_for_http().layer(inner());
    group.bench_function("trace_layer", |b| b.iter(|| call(&mut traced, &uri)));

    let mut off = MqttEventLayer::disabled().layer(inner());
    group.bench_function("off", |b| b.iter(|| call(&mut off, &uri)));

    let address =
        std::env::var("BENCH_MQTT_ADDRESS").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".to_owned());
    if broker_reachable(&address) {
        let layer = MqttEventLayer::builder()
            .address(&address)
            .topic("mps/events/bench")
            .queue_capacity(CAPACITY)
            .build()
            .expect("valid config");
        let handle = layer.handle();
        let mut on = layer.layer(inner());
        group.bench_function("on", |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(CAPACITY as u64 / 2 - WARM_UP);
                    // The first calls after the thread slept in `flush` run on cold caches:
                    // untimed, so that small samples measure a request, not a wake-up.
                    for _ in 0..WARM_UP {
                        call(&mut on, &uri);
                    }
                    let start = Instant::now();
                    for _ in 0..batch {
                        call(&mut on, &uri);
                    }
                    timed += start.elapsed();
                    left -= batch;
                    runtime
                        .block_on(handle.flush(Duration::from_secs(30)))
                        .expect("the broker takes every event");
                }
                timed
            })
        });
        let stats = handle.stats();
        assert_eq!(
            stats.dropped_queue_full, 0,
            "the on case must measure accepted events"
        );
        runtime.block_on(handle.shutdown(Duration::from_secs(5)));
    } else {
        eprintln!("note: no broker at {address}; skipping per_request/on");
    }

    // The request path alone (see `queued`); then with a client's usual headers, without
    // and with a `traceparent`: the difference is what reading the trace context costs.
    let none = HeaderMap::new();
    group.bench_function("on_queued", |b| b.iter_custom(|n| queued(n, &uri, &none)));
    let usual = typical_headers(false);
    group.bench_function("on_queued_headers", |b| {
        b.iter_custom(|n| queued(n, &uri, &usual))
    });
    let traced = typical_headers(true);
    group.bench_function("on_queued_traceparent", |b| {
        b.iter_custom(|n| queued(n, &uri, &traced))
    });

    // Nobody listens on port 1: the queue fills once and every later event is dropped.
    let full = MqttEventLayer::builder()
        .address("mqtt://127.0.0.1:1")
        .queue_capacity(64)
        .build()
        .expect("valid config");
    let full_handle = full.handle();
    let mut full = full.layer(inner());
    for _ in 0..64 {
        call(&mut full, &uri);
    }
    group.bench_function("on_queue_full", |b| b.iter(|| call(&mut full, &uri)));
    assert!(full_handle.stats().dropped_queue_full > 0);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = per_request
}
criterion_main!(benches);
