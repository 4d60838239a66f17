//! Load: 10 000 concurrent requests through the layer are all counted, and 20 000 over HTTP
//! keep-alive connections arrive exactly once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::{Layer, ServiceExt, service_fn};

use crate::support::{self, Broker, Subscriber, unique_topic};
use crate::{
    assert_accounted, builder, collect_distinct, indices, init_tracing, power_action_path,
    serve_publishing_to,
};

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
