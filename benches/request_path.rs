//! The request path in instructions, which `valgrind --tool=callgrind` counts the same on
//! every run whatever else the machine does (criterion's nanoseconds on a shared 2-core
//! machine move by tens of percent between runs).
//!
//! `request_path <case> <calls>` makes `<calls>` calls through one service and exits; run it
//! twice under callgrind with different counts and divide the difference of the totals by
//! the difference of the counts to get instructions per call, setup excluded:
//!
//! ```text
//! cargo bench --bench request_path --no-run    # prints the binary's path
//! for n in 20000 40000; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/deps/request_path-<hash> on_queued_traceparent $n 2>&1 | grep refs; done
//! ```
//!
//! Cases: `bare` (no layer; `bare_headers` and `bare_traceparent` with the headers below),
//! `trace_layer` (tower-http's `TraceLayer` instead, for scale), `off` (eventing off),
//! `on_queued` (the event accepted into the queue; the publisher task is never run),
//! `on_queued_headers` and `on_queued_traceparent` (the same request with a client's usual
//! headers, without and with a W3C `traceparent`).
//! Without arguments (as `cargo bench` runs it) it makes a few calls of each case and says so.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::{HeaderMap, Method, Request, Response, Uri};
use mps_mqtt_events::{MAX_QUEUE_CAPACITY, MqttEventLayer};
use support::typical_headers;
use tower::{Layer, Service, service_fn};

const PATH: &str = "/api/v1/amt/power/action/4c4c4544-004b-4210-8033-b6c04f504633";
const CASES: [&str; 8] = [
    "bare",
    "bare_headers",
    "bare_traceparent",
    "trace_layer",
    "off",
    "on_queued",
    "on_queued_headers",
    "on_queued_traceparent",
];

/// The headers of a case: none, a client's usual ones, or those and a `traceparent`.
fn headers(case: &str) -> HeaderMap {
    if case.ends_with("traceparent") {
        typical_headers(true)
    } else if case.ends_with("headers") {
        typical_headers(false)
    } else {
        HeaderMap::new()
    }
}

/// Polls a future that is ready at once.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future)
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the service must answer at once"),
    }
}

/// Makes `calls` calls through `service`, each with its own request.
fn run<S, B>(mut service: S, calls: u64, uri: &Uri, headers: &HeaderMap)
where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    for _ in 0..calls {
        let mut request = Request::new(String::new());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        if !headers.is_empty() {
            *request.headers_mut() = headers.clone();
        }
        black_box(ready(service.call(request)).expect("infallible"));
    }
}

fn case(name: &str, calls: u64) {
    let uri = Uri::from_static(PATH);
    let headers = headers(name);
    let inner = service_fn(|_: Request<String>| async {
        Ok::<_, Infallible>(Response::new(String::new()))
    });
    match name {
        "bare" | "bare_headers" | "bare_traceparent" => run(inner, calls, &uri, &headers),
        "off" => run(
            MqttEventLayer::disabled().layer(inner),
            calls,
            &uri,
            &headers,
        ),
        "trace_layer" => {
            let traced = tower_http::trace::TraceLayer::new_for_http().layer(inner);
            run(traced, calls, &uri, &headers);
        }
        _ => {
            let capacity = usize::try_from(calls + 1).unwrap_or(MAX_QUEUE_CAPACITY);
            let (layer, task) = MqttEventLayer::builder()
                .address("mqtt://127.0.0.1:1")
                .queue_capacity(capacity.clamp(1, MAX_QUEUE_CAPACITY))
                .build_pair()
                .expect("valid config");
            run(layer.layer(inner), calls, &uri, &headers);
            assert_eq!(layer.handle().stats().enqueued, calls, "every event queued");
            // Dropping the layer and the task would drain the queue, counting each event as
            // failed: that is not the request path, so it is not counted.
            std::mem::forget((layer, task));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [name, calls] if CASES.contains(&name.as_str()) => {
            let calls = calls.parse().expect("<calls> is a number");
            case(name, calls);
        }
        _ => {
            for name in CASES {
                case(name, 100);
            }
            println!(
                "request_path: ran {} cases; count instructions with valgrind (see its docs)",
                CASES.len()
            );
        }
    }
}
