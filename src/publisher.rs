//! The publisher: the bounded queue the request path writes to, and the task that owns the
//! MQTT connection and empties the queue into it.
//!
//! The request path ([`Shared::push`]) does one lock-free `push` into a fixed-size
//! [`ArrayQueue`] and two atomic loads; it never awaits, allocates or wakes anything while the
//! task is busy. The task drains the queue on a short tick while there is work and parks only
//! after a quiet spell, so wake-ups (a futex on the request thread) happen at most once per
//! quiet spell, not once per event.
//!
//! rumqttc keeps its own buffers (a request channel, an in-flight window, and a `pending` list
//! it refills on every error); the task bounds them by handing rumqttc at most [`WINDOW`]
//! unconfirmed events and only while connected, clears rumqttc's pending list on every error,
//! and keeps every unconfirmed event itself, to send again after a reconnect. Our queue is
//! the only buffer that grows, and our counters are the only truth about delivery.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use rumqttc::{AsyncClient, ConnectionError, EventLoop, MqttOptions, MqttState, Outgoing, Packet};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, sleep, sleep_until};

use crate::config::{Config, Qos};
use crate::event::Record;
use crate::handle::{PublisherState, Stats};

/// Most events handed to rumqttc and not yet confirmed (written at QoS 0, acknowledged at
/// QoS 1). rumqttc's request channel and in-flight window are sized from it.
pub(crate) const WINDOW: usize = 256;
/// How often the task empties the queue while events keep coming.
const TICK: Duration = Duration::from_millis(5);
/// Empty ticks after which the task parks until a request wakes it.
const IDLE_AFTER_TICKS: u32 = 20;
/// A parked task looks at the queue at least this often, whatever happens.
const IDLE_RECHECK: Duration = Duration::from_secs(1);
/// First reconnect delay; doubles per failed attempt up to [`BACKOFF_MAX`], with jitter.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest reconnect delay, so a broker that returns is found again within this time.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// MQTT keep-alive: a silent broker is detected within about twice this.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Largest PUBLISH we send; an event is far smaller unless the topic is huge.
const MAX_PACKET: usize = 128 * 1024;
/// How long dropping the last layer or handle lets the task deliver what is queued.
pub(crate) const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

// Publisher states, in order: events are refused from `CLOSED` on.
const NOT_STARTED: u8 = 0;
const RUNNING: u8 = 1;
const IDLE: u8 = 2;
const CLOSED: u8 = 3;
const SHUT_DOWN: u8 = 4;
const STOPPED: u8 = 5;

/// A request to the task from a handle.
#[derive(Debug)]
pub(crate) enum Control {
    /// Reply once every event queued before this message is delivered or failed.
    Flush(oneshot::Sender<()>),
    /// Stop accepting, drain until `deadline`, disconnect, then reply (if anyone listens).
    Shutdown {
        deadline: Instant,
        reply: Option<oneshot::Sender<()>>,
    },
}

#[derive(Debug, Default)]
struct Counters {
    dropped_queue_full: AtomicU64,
    dropped_closed: AtomicU64,
    dequeued: AtomicU64,
    published: AtomicU64,
    acknowledged: AtomicU64,
    failed: AtomicU64,
    reconnects: AtomicU64,
    in_flight: AtomicU64,
    undelivered_at_shutdown: AtomicU64,
    connected: AtomicBool,
}

/// What the layer, its services and the handles share with the task.
#[derive(Debug)]
pub(crate) struct Shared {
    queue: ArrayQueue<Record>,
    state: AtomicU8,
    wake: Notify,
    counters: Counters,
    qos: Qos,
    control: mpsc::Sender<Control>,
    /// The task, until it is spawned on the first request or handle call.
    task: Mutex<Option<Task>>,
    stop_reason: Mutex<Option<String>>,
}

/// Everything the task needs, built with the layer and spawned lazily.
#[derive(Debug)]
pub(crate) struct Task {
    config: Config,
    control: mpsc::Receiver<Control>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Arc<Self> {
        let (control_tx, control_rx) = mpsc::channel(64);
        Arc::new(Self {
            queue: ArrayQueue::new(config.queue_capacity),
            state: AtomicU8::new(NOT_STARTED),
            wake: Notify::new(),
            counters: Counters::default(),
            qos: config.qos,
            control: control_tx,
            task: Mutex::new(Some(Task {
                config,
                control: control_rx,
            })),
            stop_reason: Mutex::new(None),
        })
    }

    /// Hands one event to the publisher, or counts it as dropped. Never blocks.
    #[inline]
    pub(crate) fn push(self: &Arc<Self>, record: Record) {
        if self.state.load(Ordering::Acquire) >= CLOSED {
            self.counters.dropped_closed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.queue.push(record).is_err() {
            self.dropped_full();
            return;
        }
        // Read after the push (SeqCst, as the task's store of IDLE): either we see IDLE and
        // wake it, or its re-check of the queue sees our event.
        let state = self.state.load(Ordering::SeqCst);
        if state != RUNNING {
            self.kick(state);
        }
    }

    #[cold]
    fn dropped_full(&self) {
        if self
            .counters
            .dropped_queue_full
            .fetch_add(1, Ordering::Relaxed)
            == 0
        {
            tracing::warn!(
                capacity = self.queue.capacity(),
                "MQTT event queue full: dropping new events (counted in dropped_queue_full)"
            );
        }
    }

    #[cold]
    fn kick(self: &Arc<Self>, state: u8) {
        match state {
            IDLE if self
                .state
                .compare_exchange(IDLE, RUNNING, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok() =>
            {
                self.wake.notify_one();
            }
            NOT_STARTED => self.start(),
            _ => {}
        }
    }

    /// Spawns the task on the current Tokio runtime, once; outside a runtime it waits for a
    /// later call (events queue meanwhile).
    pub(crate) fn start(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(task) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        let _ =
            self.state
                .compare_exchange(NOT_STARTED, RUNNING, Ordering::SeqCst, Ordering::Relaxed);
        runtime.spawn(supervise(Arc::clone(self), task));
    }

    /// Whether the task has ended (shut down or died): queued events will not be sent.
    pub(crate) fn has_ended(&self) -> bool {
        self.state.load(Ordering::Acquire) >= SHUT_DOWN
    }

    pub(crate) fn stop_reason(&self) -> Option<String> {
        self.stop_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn control(&self) -> &mpsc::Sender<Control> {
        &self.control
    }

    pub(crate) fn undelivered_at_shutdown(&self) -> u64 {
        self.counters
            .undelivered_at_shutdown
            .load(Ordering::Acquire)
    }

    /// Asks the task to drain and stop because nobody can use the layer any more.
    pub(crate) fn release(&self) {
        if self.state.load(Ordering::Acquire) == NOT_STARTED {
            return;
        }
        let deadline = Instant::now() + DROP_FLUSH_TIMEOUT;
        let _ = self.control.try_send(Control::Shutdown {
            deadline,
            reply: None,
        });
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Acquire);
        let queue_len = self.queue.len() as u64;
        let published = load(&c.published);
        let acknowledged = load(&c.acknowledged);
        Stats {
            enqueued: load(&c.dequeued) + queue_len,
            dropped_queue_full: load(&c.dropped_queue_full),
            dropped_closed: load(&c.dropped_closed),
            published,
            acknowledged,
            delivered: match self.qos {
                Qos::AtMostOnce => published,
                Qos::AtLeastOnce => acknowledged,
            },
            failed: load(&c.failed),
            reconnects: load(&c.reconnects),
            queue_len,
            in_flight: load(&c.in_flight),
            connected: c.connected.load(Ordering::Acquire),
            state: match self.state.load(Ordering::Acquire) {
                NOT_STARTED => PublisherState::NotStarted,
                RUNNING | IDLE => PublisherState::Running,
                CLOSED => PublisherState::ShuttingDown,
                SHUT_DOWN => PublisherState::ShutDown,
                _ => PublisherState::Stopped,
            },
        }
    }

    /// The task ended: refuse new events, count what it left as failed, say why once.
    fn stopped(&self, reason: String, left_in_flight: u64) {
        self.state.store(STOPPED, Ordering::SeqCst);
        let mut failed = left_in_flight;
        while self.queue.pop().is_some() {
            self.counters.dequeued.fetch_add(1, Ordering::Relaxed);
            failed += 1;
        }
        self.counters.failed.fetch_add(failed, Ordering::Relaxed);
        self.counters.in_flight.store(0, Ordering::Release);
        self.counters.connected.store(false, Ordering::Release);
        tracing::error!(reason = %reason, undelivered = failed, "MQTT event publisher stopped");
        *self
            .stop_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
}

/// Runs the task and makes its death visible: if it panics, the layer keeps serving and the
/// handle reports the publisher as stopped, with the reason.
async fn supervise(shared: Arc<Shared>, task: Task) {
    let worker = tokio::spawn(run(Arc::clone(&shared), task));
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
        let left = shared.counters.in_flight.load(Ordering::Acquire);
        shared.stopped(reason, left);
    }
}

/// One event the task has taken from the queue and not yet settled.
#[derive(Debug)]
struct Entry {
    seq: u64,
    record: Record,
    timestamp: u64,
    /// rumqttc said it wrote the PUBLISH (at least once).
    sent: bool,
    /// Delivered: written at QoS 0, acknowledged at QoS 1.
    done: bool,
}

/// The events handed to rumqttc, in order, and which packet id each got.
#[derive(Debug, Default)]
struct Tracker {
    entries: VecDeque<Entry>,
    /// Index of the first entry rumqttc has not yet reported as written.
    cursor: usize,
    /// Sequence number of the entry sent with each packet id (QoS 1).
    by_pkid: Vec<Option<u64>>,
}

impl Tracker {
    fn entry_mut(&mut self, seq: u64) -> Option<&mut Entry> {
        // Sorted by `seq`, with gaps where events settled early.
        let index = self.entries.binary_search_by_key(&seq, |e| e.seq).ok()?;
        self.entries.get_mut(index)
    }

    fn pop_done(&mut self) {
        while self.entries.front().is_some_and(|e| e.done) {
            self.entries.pop_front();
            self.cursor = self.cursor.saturating_sub(1);
        }
    }
}

/// Reconnect delays: exponential from [`BACKOFF_MIN`] to [`BACKOFF_MAX`], each drawn from
/// its upper half so that replicas spread out.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let exp = BACKOFF_MIN
            .saturating_mul(1 << self.failures.min(16))
            .min(BACKOFF_MAX);
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
    /// Events to send again after a reconnect, in order, before anything from the queue.
    retry: VecDeque<Entry>,
    next_seq: u64,
    connected: bool,
    ever_connected: bool,
    backoff: Backoff,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    shutdown: Option<(Instant, Option<oneshot::Sender<()>>)>,
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

async fn run(shared: Arc<Shared>, task: Task) {
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
        tracker: Tracker {
            by_pkid: vec![None; usize::from(max_inflight) + 1],
            ..Tracker::default()
        },
        retry: VecDeque::new(),
        next_seq: 0,
        connected: false,
        ever_connected: false,
        backoff: Backoff::default(),
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
                // The earliest deadline wins; every caller gets the reply.
                let (current, replies) = self.shutdown.get_or_insert((deadline, None));
                *current = (*current).min(deadline);
                if let Some(reply) = reply {
                    if let Some(previous) = replies.replace(reply) {
                        let _ = previous.send(());
                    }
                }
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
                if self.backoff.failures > 0 || !self.ever_connected {
                    tracing::info!(attempts = self.backoff.failures + 1, "MQTT connected");
                }
                self.connected = true;
                self.ever_connected = true;
                self.backoff = Backoff::default();
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
        let qos = self.qos;
        let tracker = &mut self.tracker;
        let Some(entry) = tracker.entries.get_mut(tracker.cursor) else {
            return;
        };
        tracker.cursor += 1;
        if !entry.sent {
            entry.sent = true;
            self.shared
                .counters
                .published
                .fetch_add(1, Ordering::Relaxed);
        }
        match qos {
            Qos::AtMostOnce => entry.done = true,
            Qos::AtLeastOnce => {
                if let Some(slot) = tracker.by_pkid.get_mut(usize::from(pkid)) {
                    *slot = Some(entry.seq);
                }
            }
        }
        tracker.pop_done();
        self.update_in_flight();
    }

    fn on_puback(&mut self, pkid: u16) {
        let Some(seq) = self
            .tracker
            .by_pkid
            .get_mut(usize::from(pkid))
            .and_then(Option::take)
        else {
            return;
        };
        if let Some(entry) = self.tracker.entry_mut(seq) {
            if !entry.done {
                entry.done = true;
                self.shared
                    .counters
                    .acknowledged
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.tracker.pop_done();
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
        let unconfirmed: Vec<Entry> = self.tracker.entries.drain(..).filter(|e| !e.done).collect();
        for entry in unconfirmed.into_iter().rev() {
            self.retry.push_front(entry);
        }
        self.tracker.cursor = 0;
        self.tracker
            .by_pkid
            .iter_mut()
            .for_each(|slot| *slot = None);
        self.update_in_flight();

        let was_connected = std::mem::replace(&mut self.connected, false);
        self.shared
            .counters
            .connected
            .store(false, Ordering::Release);
        let delay = self.backoff.next_delay();
        if self.shutdown.is_some() {
            tracing::debug!(%error, "MQTT connection closed during shutdown");
        } else if was_connected {
            tracing::warn!(%error, pending = self.retry.len(), "MQTT connection lost; reconnecting with backoff");
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
        while self.tracker.entries.len() < WINDOW {
            let entry = match self.retry.pop_front() {
                Some(entry) => entry,
                None => match self.shared.queue.pop() {
                    Some(record) => {
                        self.shared
                            .counters
                            .dequeued
                            .fetch_add(1, Ordering::Relaxed);
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        let timestamp = record.timestamp_ms();
                        Entry {
                            seq,
                            record,
                            timestamp,
                            sent: false,
                            done: false,
                        }
                    }
                    None => break,
                },
            };
            fed = true;
            let payload = match serde_json::to_vec(&entry.record.event(entry.timestamp)) {
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
                Ok(()) => self.tracker.entries.push_back(entry),
                Err(_) => {
                    // rumqttc's channel is full or closed: keep the event, try next time.
                    self.retry.push_front(entry);
                    break;
                }
            }
        }
        self.update_in_flight();
        fed
    }

    fn fail_one(&mut self, why: Option<String>) {
        self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
        if !std::mem::replace(&mut self.too_large_logged, true) {
            tracing::error!(error = ?why, max_bytes = MAX_PACKET, "MQTT event could not be encoded within the packet limit; counted as failed");
        }
    }

    fn update_in_flight(&self) {
        let n = self.tracker.entries.len() + self.retry.len();
        self.shared
            .counters
            .in_flight
            .store(n as u64, Ordering::Release);
    }

    /// Sequence number of the oldest event not yet delivered or failed.
    fn oldest_unsettled(&self) -> u64 {
        let tracked = self.tracker.entries.iter().find(|e| !e.done).map(|e| e.seq);
        let retried = self.retry.front().map(|e| e.seq);
        [tracked, retried]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.next_seq)
    }

    fn settle_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest = self.oldest_unsettled();
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
        let drained = self.shared.queue.is_empty()
            && self.tracker.entries.is_empty()
            && self.retry.is_empty();
        drained || Instant::now() >= *deadline
    }

    /// Counts what could not be delivered, disconnects cleanly if time allows, replies.
    async fn finish<F>(mut self, mut conn: std::pin::Pin<Box<F>>)
    where
        F: Future<Output = (EventLoop, Result<rumqttc::Event, ConnectionError>)>,
    {
        let Some((deadline, reply)) = self.shutdown.take() else {
            return;
        };
        let mut undelivered =
            (self.tracker.entries.iter().filter(|e| !e.done).count() + self.retry.len()) as u64;
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
        self.tracker.entries.clear();
        self.retry.clear();
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
        if let Some(reply) = reply {
            let _ = reply.send(());
        }
    }
}
