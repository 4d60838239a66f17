//! The publisher task: owns the rumqttc event loop, feeds it from the queue, tracks what is
//! unconfirmed, reconnects with backoff, flushes and shuts down.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, EventLoop, MqttOptions, MqttState, Outgoing, Packet};
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep, sleep_until};

use super::tracker::{Entry, Tracker};
use super::{CLOSED, Control, IDLE, RUNNING, SHUT_DOWN, Shared, Task};
use crate::config::{Config, Qos};

/// Most events handed to rumqttc and not yet confirmed (written at QoS 0, acknowledged at
/// QoS 1). rumqttc's request channel and in-flight window are sized from it.
pub(super) const WINDOW: usize = 256;
/// How often the task empties the queue while events keep coming.
const TICK: Duration = Duration::from_millis(5);
/// Empty ticks after which the task parks until a request wakes it.
const IDLE_AFTER_TICKS: u32 = 20;
/// A parked task looks at the queue at least this often, whatever happens.
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// A connection that held this long resets the reconnect delay to its minimum.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);
/// MQTT keep-alive: a silent broker is detected within about twice this.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Largest PUBLISH we send; an event is far smaller unless the topic is huge.
const MAX_PACKET: usize = 128 * 1024;

/// Runs the task and makes its death visible: if it panics, the layer keeps serving and the
/// handle reports the publisher as stopped, with the panic message. The guard travels inside
/// the futures from the moment the task is spawned, so even a task dropped before its first
/// poll (its runtime ended) is reported.
pub(super) async fn supervise(shared: Arc<Shared>, task: Task, alive: Alive) {
    let worker = tokio::spawn(run(Arc::clone(&shared), task, alive));
    if let Err(err) = worker.await {
        let reason = if err.is_panic() {
            let payload = err.into_panic();
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            format!("publisher task panicked: {text}")
        } else {
            "publisher task was cancelled".to_owned()
        };
        shared.stopped(reason);
    }
}

/// Marks the publisher stopped if the task is dropped before it finished, as when its Tokio
/// runtime shuts down (then [`supervise`] is dropped too and cannot tell).
#[derive(Debug)]
pub(super) struct Alive(pub(super) Arc<Shared>);

impl Drop for Alive {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.0
                .stopped("publisher task was cancelled: its Tokio runtime shut down".to_owned());
        }
    }
}

/// Reconnect delays: exponential from `min` to `max`, each drawn from its upper half so that
/// replicas spread out.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let exp = self
            .min
            .saturating_mul(1 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = exp / 2;
        half + half.mul_f64((crate::random_u64() % 1000) as f64 / 1000.0)
    }
}

struct Worker {
    shared: Arc<Shared>,
    client: AsyncClient,
    topic: String,
    qos: Qos,
    max_inflight: u16,
    tracker: Tracker,
    next_seq: u64,
    connected: bool,
    ever_connected: bool,
    connected_at: Instant,
    backoff: Backoff,
    /// Random per task: event ids are `<instance>-<seq>`, unique across processes.
    instance: u64,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    /// Set once shutdown is asked for: the deadline, and whom to tell when it is done.
    shutdown: Option<(Instant, Vec<oneshot::Sender<()>>)>,
    empty_ticks: u32,
    too_large_logged: bool,
}

/// Polls the event loop once, after `delay`; owning it means the poll is never cancelled
/// half-way (rumqttc's poll is not cancel-safe while it writes).
async fn drive(
    mut eventloop: EventLoop,
    delay: Duration,
) -> (EventLoop, Result<rumqttc::Event, ConnectionError>) {
    if !delay.is_zero() {
        sleep(delay).await;
    }
    let result = eventloop.poll().await;
    (eventloop, result)
}

fn mqtt_options(config: &Config, max_inflight: u16) -> MqttOptions {
    let broker = &config.broker;
    let mut options = MqttOptions::new(&config.client_id, &broker.host, broker.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_clean_session(true)
        .set_inflight(max_inflight)
        .set_max_packet_size(10 * 1024, MAX_PACKET);
    if let Some((user, password)) = &broker.credentials {
        options.set_credentials(user, password);
    }
    options
}

async fn run(shared: Arc<Shared>, task: Task, alive: Alive) {
    let Task {
        config,
        mut control,
    } = task;
    // Twice our window, so packet ids are never reused while in flight (no collisions).
    let max_inflight = (WINDOW * 2) as u16;
    let (client, eventloop) = AsyncClient::new(mqtt_options(&config, max_inflight), WINDOW);
    tracing::info!(
        broker = %config.broker,
        topic = %config.topic,
        qos = ?config.qos,
        client_id = %config.client_id,
        "MQTT eventing on"
    );
    let mut worker = Worker {
        shared,
        client,
        topic: config.topic,
        qos: config.qos,
        max_inflight,
        tracker: Tracker::new(max_inflight),
        next_seq: 0,
        connected: false,
        ever_connected: false,
        connected_at: Instant::now(),
        backoff: Backoff {
            min: config.reconnect.0,
            max: config.reconnect.1,
            failures: 0,
        },
        instance: crate::random_u64(),
        flushes: Vec::new(),
        shutdown: None,
        empty_ticks: 0,
        too_large_logged: false,
    };
    let mut conn = Box::pin(drive(eventloop, Duration::ZERO));
    loop {
        let park = worker.prepare_wait();
        let deadline = worker.shutdown.as_ref().map(|(d, _)| *d);
        let mut ticked = false;
        tokio::select! {
            biased;
            Some(message) = control.recv() => worker.on_control(message),
            (mut eventloop, result) = &mut conn => {
                let delay = worker.on_poll(&mut eventloop, result);
                conn.set(drive(eventloop, delay));
            }
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
            () = worker.wait_for_work(park) => ticked = true,
        }
        worker.resume();
        if worker.feed() {
            worker.empty_ticks = 0;
        } else if ticked {
            worker.empty_ticks = worker.empty_ticks.saturating_add(1);
        }
        worker.settle_flushes();
        if worker.shutdown_due() {
            break;
        }
    }
    worker.finish(conn).await;
    drop(alive); // The state is SHUT_DOWN now: this marks nothing.
}

/// What the task waits for besides the connection and the handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Park {
    /// Nothing to feed (not connected): only the connection or a handle can wake it.
    Never,
    /// Events are coming: look again after one tick.
    Tick,
    /// Quiet: wait for a request to wake it.
    Idle,
}

impl Worker {
    fn prepare_wait(&mut self) -> Park {
        if !self.connected {
            return Park::Never;
        }
        if self.empty_ticks < IDLE_AFTER_TICKS || self.shutdown.is_some() {
            return Park::Tick;
        }
        let state = &self.shared.state;
        if state
            .compare_exchange(RUNNING, IDLE, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Park::Tick;
        }
        if self.shared.queue.is_empty() {
            Park::Idle
        } else {
            let _ = state.compare_exchange(IDLE, RUNNING, Ordering::SeqCst, Ordering::Relaxed);
            Park::Tick
        }
    }

    async fn wait_for_work(&self, park: Park) {
        match park {
            Park::Never => std::future::pending().await,
            Park::Tick => sleep(TICK).await,
            Park::Idle => {
                let _ = tokio::time::timeout(IDLE_RECHECK, self.shared.wake.notified()).await;
            }
        }
    }

    fn resume(&self) {
        let _ =
            self.shared
                .state
                .compare_exchange(IDLE, RUNNING, Ordering::SeqCst, Ordering::Relaxed);
    }

    fn on_control(&mut self, message: Control) {
        match message {
            Control::Flush(reply) => {
                let target = self.next_seq + self.shared.queue.len() as u64;
                self.flushes.push((target, reply));
            }
            Control::Shutdown { deadline, reply } => {
                if self.shutdown.is_none() {
                    self.shared.state.store(CLOSED, Ordering::SeqCst);
                    tracing::debug!("MQTT event publisher shutting down");
                }
                // The earliest deadline wins; every caller is told when it is done.
                let (current, replies) = self.shutdown.get_or_insert((deadline, Vec::new()));
                *current = (*current).min(deadline);
                replies.extend(reply);
            }
        }
    }

    fn on_poll(
        &mut self,
        eventloop: &mut EventLoop,
        result: Result<rumqttc::Event, ConnectionError>,
    ) -> Duration {
        match result {
            Ok(event) => {
                self.on_event(event);
                Duration::ZERO
            }
            Err(error) => self.on_connection_error(eventloop, &error),
        }
    }

    fn on_event(&mut self, event: rumqttc::Event) {
        use rumqttc::Event::{Incoming, Outgoing as Out};
        match event {
            Incoming(Packet::ConnAck(_)) => {
                if self.ever_connected {
                    self.shared
                        .counters
                        .reconnects
                        .fetch_add(1, Ordering::Relaxed);
                }
                tracing::info!(attempts = self.backoff.failures + 1, "MQTT connected");
                self.connected = true;
                self.ever_connected = true;
                self.connected_at = Instant::now();
                self.shared
                    .counters
                    .connected
                    .store(true, Ordering::Release);
            }
            Incoming(Packet::PubAck(ack)) => self.on_puback(ack.pkid),
            Out(Outgoing::Publish(pkid)) => self.on_written(pkid),
            _ => {}
        }
    }

    fn on_written(&mut self, pkid: u16) {
        if self.tracker.written(pkid, self.qos) {
            self.shared
                .counters
                .published
                .fetch_add(1, Ordering::Relaxed);
        }
        self.update_in_flight();
    }

    fn on_puback(&mut self, pkid: u16) {
        if self.tracker.acknowledged(pkid) {
            self.shared
                .counters
                .acknowledged
                .fetch_add(1, Ordering::Relaxed);
        }
        self.update_in_flight();
    }

    /// The connection broke (or never came up): settle what rumqttc had already reported,
    /// take back every unconfirmed event for resending, and empty rumqttc's buffers so
    /// nothing is sent twice by it or kept unbounded.
    fn on_connection_error(
        &mut self,
        eventloop: &mut EventLoop,
        error: &ConnectionError,
    ) -> Duration {
        let buffered: Vec<_> = eventloop.state.events.drain(..).collect();
        for event in buffered {
            self.on_event(event);
        }
        eventloop.pending.clear();
        eventloop.state = MqttState::new(self.max_inflight, false);
        self.tracker.connection_lost();
        self.update_in_flight();

        let was_connected = std::mem::replace(&mut self.connected, false);
        self.shared
            .counters
            .connected
            .store(false, Ordering::Release);
        if was_connected && self.connected_at.elapsed() >= STABLE_CONNECTION {
            self.backoff.failures = 0;
        }
        let delay = self.backoff.next_delay();
        if self.shutdown.is_some() {
            tracing::debug!(%error, "MQTT connection closed during shutdown");
        } else if was_connected {
            tracing::warn!(%error, unconfirmed = self.tracker.unsettled(), "MQTT connection lost; reconnecting with backoff");
        } else if self.backoff.failures <= 3 || self.backoff.failures % 100 == 0 {
            tracing::warn!(%error, attempt = self.backoff.failures, retry_in = ?delay, "MQTT broker unreachable");
        } else {
            tracing::debug!(%error, attempt = self.backoff.failures, retry_in = ?delay, "MQTT broker unreachable");
        }
        delay
    }

    /// Hands events to rumqttc while connected, resends first, at most [`WINDOW`] unconfirmed.
    /// Returns whether it took any.
    fn feed(&mut self) -> bool {
        if !self.connected {
            return false;
        }
        let mut fed = false;
        while self.tracker.handed() < WINDOW {
            let entry = match self.tracker.next_retry() {
                Some(entry) => entry,
                None => match self.shared.queue.pop() {
                    Some(record) => {
                        self.shared
                            .counters
                            .dequeued
                            .fetch_add(1, Ordering::Relaxed);
                        self.next_seq += 1;
                        Entry::new(self.next_seq - 1, record)
                    }
                    None => break,
                },
            };
            fed = true;
            let payload = match serde_json::to_vec(
                &entry
                    .record
                    .event(entry.timestamp, self.event_id(entry.seq)),
            ) {
                Ok(payload) if payload.len() + self.topic.len() + 8 <= MAX_PACKET => payload,
                other => {
                    self.fail_one(other.err().map(|e| e.to_string()));
                    continue;
                }
            };
            match self.client.try_publish(
                self.topic.as_str(),
                self.qos.to_rumqttc(),
                false,
                payload,
            ) {
                Ok(()) => self.tracker.hand(entry),
                Err(_) => {
                    // rumqttc's channel is full or closed: keep the event, try next time.
                    self.tracker.give_back(entry);
                    break;
                }
            }
        }
        self.update_in_flight();
        fed
    }

    /// The `id` of an event: the same when it is sent again, different in every process.
    fn event_id(&self, seq: u64) -> String {
        format!("{:016x}-{seq}", self.instance)
    }

    fn fail_one(&mut self, why: Option<String>) {
        self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(&mut self.too_large_logged, true) {
            tracing::error!(error = ?why, max_bytes = MAX_PACKET, "MQTT event could not be encoded within the packet limit; counted as failed");
        }
    }

    fn update_in_flight(&self) {
        let n = self.tracker.unsettled();
        self.shared
            .counters
            .in_flight
            .store(n as u64, Ordering::Release);
    }

    fn settle_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        // Events are numbered as they leave the queue: everything older than the oldest
        // unsettled one, or than the next number when none is unsettled, is settled.
        let oldest = self.tracker.oldest_unsettled().unwrap_or(self.next_seq);
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(target, reply)| *target <= oldest || reply.is_closed());
        self.flushes = waiting;
        for (_, reply) in done {
            let _ = reply.send(());
        }
    }

    fn shutdown_due(&self) -> bool {
        let Some((deadline, _)) = &self.shutdown else {
            return false;
        };
        let drained = self.shared.queue.is_empty() && self.tracker.unsettled() == 0;
        drained || Instant::now() >= *deadline
    }

    /// Counts what could not be delivered, disconnects cleanly if time allows, replies.
    async fn finish<F>(mut self, mut conn: std::pin::Pin<Box<F>>)
    where
        F: Future<Output = (EventLoop, Result<rumqttc::Event, ConnectionError>)>,
    {
        let Some((deadline, replies)) = self.shutdown.take() else {
            return;
        };
        let mut undelivered = self.tracker.abandon();
        while self.shared.queue.pop().is_some() {
            self.shared
                .counters
                .dequeued
                .fetch_add(1, Ordering::Relaxed);
            undelivered += 1;
        }
        let counters = &self.shared.counters;
        counters.failed.fetch_add(undelivered, Ordering::Relaxed);
        counters
            .undelivered_at_shutdown
            .store(undelivered, Ordering::Release);
        counters.in_flight.store(0, Ordering::Release);
        if self.connected && self.client.try_disconnect().is_ok() {
            // Wait for the DISCONNECT to be written, within what is left of the deadline.
            let _ = tokio::time::timeout_at(deadline, async {
                let (mut eventloop, mut result) = conn.as_mut().await;
                while let Ok(event) = result {
                    if event == rumqttc::Event::Outgoing(Outgoing::Disconnect) {
                        break;
                    }
                    result = eventloop.poll().await;
                }
            })
            .await;
        }
        counters.connected.store(false, Ordering::Release);
        self.shared.state.store(SHUT_DOWN, Ordering::SeqCst);
        let stats = self.shared.stats();
        tracing::info!(
            delivered = stats.delivered,
            undelivered,
            dropped = stats.dropped_queue_full + stats.dropped_closed,
            "MQTT event publisher shut down"
        );
        for reply in replies {
            let _ = reply.send(());
        }
    }
}
