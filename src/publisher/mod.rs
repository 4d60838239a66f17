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
//! it refills on every error); the task bounds them by handing rumqttc at most `WINDOW` (256)
//! unconfirmed events and only while connected, clears rumqttc's pending list on every error,
//! and keeps every unconfirmed event itself, to send again after a reconnect. Our queue is
//! the only buffer that grows, and our counters are the only truth about delivery.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::config::{Config, Qos};
use crate::event::Record;
use crate::handle::{PublisherState, Stats};

mod tracker;
mod worker;

use worker::{Alive, supervise};

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
        let alive = Alive(Arc::clone(self));
        runtime.spawn(supervise(Arc::clone(self), task, alive));
    }

    /// Takes the task out, for the caller to spawn where it wants (see
    /// [`Builder::build_pair`](crate::Builder::build_pair)); the layer then never spawns it.
    pub(crate) fn take_task(self: &Arc<Self>) -> PublisherTask {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let shared = Arc::clone(self);
        PublisherTask::new(async move {
            let Some(task) = task else {
                return;
            };
            let _ = shared.state.compare_exchange(
                NOT_STARTED,
                RUNNING,
                Ordering::SeqCst,
                Ordering::Relaxed,
            );
            let alive = Alive(Arc::clone(&shared));
            supervise(shared, task, alive).await;
        })
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
    fn stopped(&self, reason: String) {
        let not_ended = |state| (state < SHUT_DOWN).then_some(STOPPED);
        if self
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, not_ended)
            .is_err()
        {
            return;
        }
        let left_in_flight = self.counters.in_flight.load(Ordering::Acquire);
        let mut failed = left_in_flight;
        while self.queue.pop().is_some() {
            self.counters.dequeued.fetch_add(1, Ordering::Relaxed);
            failed += 1;
        }
        self.counters.failed.fetch_add(failed, Ordering::Relaxed);
        self.counters.in_flight.store(0, Ordering::Release);
        self.counters.connected.store(false, Ordering::Release);
        if failed > 0 {
            tracing::error!(%reason, undelivered = failed, "MQTT event publisher stopped");
        } else {
            tracing::warn!(%reason, "MQTT event publisher stopped");
        }
        *self
            .stop_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }
}

/// The publisher of a layer built with [`Builder::build_pair`](crate::Builder::build_pair):
/// a future that owns the MQTT connection until the publisher is shut down.
///
/// Spawn it on the Tokio runtime that should carry the MQTT work, e.g. a small runtime of its
/// own so that publishing never shares threads with request handling. Until it runs, events
/// wait in the queue (and [`flush`](crate::PublisherHandle::flush) waits); if it is dropped
/// without running, the publisher never starts.
///
/// # Panics
///
/// When polled outside a Tokio runtime (rumqttc needs Tokio's I/O and timers).
#[must_use = "the publisher sends nothing until this future is spawned or awaited"]
pub struct PublisherTask {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl PublisherTask {
    pub(crate) fn new(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            future: Box::pin(future),
        }
    }
}

impl Future for PublisherTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.future.as_mut().poll(cx)
    }
}

impl std::fmt::Debug for PublisherTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublisherTask").finish_non_exhaustive()
    }
}
