//! The broker starts late, is killed and restarted, or is paused with SIGSTOP: requests never
//! wait, and the events queued meanwhile arrive once it is back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::support::{Broker, Subscriber, UnusedPort, unique_topic};
use crate::{
    FLUSH_TIMEOUT, assert_accounted, collect_distinct, event_seq, http_call, http_calls, indices,
    init_tracing, request_index, serve_publishing_to, wait_connected,
};

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
    // More events than Mosquitto queues for one subscriber by default (1000) arrive at once
    // after SIGCONT: unlimited, so that the broker drops none for the test's subscriber.
    let Some(broker) = Broker::start_mosquitto_only("max_queued_messages 0") else {
        return;
    };
    let pid = broker.pid().expect("mosquitto runs");
    let topic = unique_topic("paused");
    let (handle, addr, _server) = serve_publishing_to(&broker.url(), &topic).await;
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;

    // More than the 1024 unacknowledged events the publisher keeps in flight (its documented
    // window) arrive while the broker is stopped: the rest must wait in our queue, and no
    // request may wait at all.
    const REQUESTS: usize = 1400;
    const STOP_AT: usize = 50;
    const WINDOW: u64 = 1024;
    let mut slowest = Duration::ZERO;
    let mut paused = None;
    let mut paused_at = Instant::now();
    // Spreads the paused requests over most of a second, so the publisher runs many times
    // while the broker reads nothing (pacing only: no wait depends on it).
    let mut pace = tokio::time::interval(Duration::from_millis(1));
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
