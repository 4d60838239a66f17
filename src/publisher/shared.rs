//! What the request path, the handles and the task share: the bounded queue, the lifecycle
//! and the counters.
//!
//! The request path ([`Shared::push`]) does one lock-free push into a fixed-size
//! [`ArrayQueue`], one atomic increment and three atomic loads; it never awaits, allocates,
//! or wakes the task while the task is busy.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crossbeam_queue::ArrayQueue;

use super::state::{AfterPush, Lifecycle, Phase};
use super::stats::{PublisherState, Stats};
use crate::config::Qos;
use crate::record::Record;

/// An atomic counter on a cache line of its own, so that the request path's increments do
/// not contend with the task's.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Release);
    }

    /// An increment that takes part in the total order of [`Lifecycle::after_push`].
    pub(crate) fn add_ordered(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    /// The value, for [`Lifecycle::try_park`]'s side of the same order.
    pub(crate) fn atomic(&self) -> &AtomicU64 {
        &self.0
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Monotonic counters. `queue_len` and `in_flight` are derived from them, so a snapshot
/// cannot break the identity of [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Incremented by the request path with `SeqCst`, see [`Lifecycle::after_push`].
    pub(crate) enqueued: Counter,
    pub(crate) dropped_queue_full: Counter,
    pub(crate) dropped_closed: Counter,
    /// Taken out of the queue, by the task or by a drain after the end.
    pub(crate) dequeued: Counter,
    pub(crate) published: Counter,
    pub(crate) acknowledged: Counter,
    pub(crate) failed: Counter,
    pub(crate) reconnects: Counter,
    pub(crate) connect_failures: Counter,
    pub(crate) connected: AtomicBool,
}

/// What became of an event handed to the publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// In the queue, counted in `enqueued`.
    Accepted,
    /// The queue was full: counted in `dropped_queue_full`.
    Full,
    /// The publisher is shutting down or has ended: counted in `dropped_closed`.
    Closed,
}

/// What the layer, its services, the handles and the task share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) queue: ArrayQueue<Record>,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) counters: Counters,
    qos: Qos,
    stop_reason: Mutex<Option<String>>,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn new(capacity: usize, qos: Qos) -> Self {
        Self {
            queue: ArrayQueue::new(capacity),
            lifecycle: Lifecycle::new(),
            counters: Counters::default(),
            qos,
            stop_reason: Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    /// Hands one event to the publisher, or counts it as dropped. Never blocks. Says what
    /// became of it, and whether the task has yet to be spawned (the caller spawns it).
    #[inline(always)]
    pub(crate) fn push(&self, record: Record) -> (Admission, bool) {
        let phase = self.lifecycle.phase();
        if !phase.accepts() {
            self.counters.dropped_closed.add(1);
            return (Admission::Closed, false);
        }
        if self.queue.push(record).is_err() {
            self.dropped_full();
            return (Admission::Full, phase == Phase::Lazy);
        }
        self.counters.enqueued.add_ordered();
        match self.lifecycle.after_push() {
            AfterPush::Done => {}
            AfterPush::Wake => self.lifecycle.wake(),
            AfterPush::Drain => {
                self.drain_as_failed();
            }
        }
        (Admission::Accepted, phase == Phase::Lazy)
    }

    #[cold]
    fn dropped_full(&self) {
        if self
            .counters
            .dropped_queue_full
            .0
            .fetch_add(1, Ordering::Relaxed)
            == 0
        {
            tracing::warn!(
                capacity = self.queue.capacity(),
                "MQTT event queue full: dropping new events (counted in dropped_queue_full)"
            );
        }
    }

    /// Takes one event out of the queue, counting it.
    pub(crate) fn pop(&self) -> Option<Record> {
        let record = self.queue.pop()?;
        self.counters.dequeued.add(1);
        Some(record)
    }

    /// Empties the queue, counting each event as failed; returns how many.
    #[cold]
    fn drain_as_failed(&self) -> u64 {
        let mut n = 0;
        while self.pop().is_some() {
            self.counters.failed.add(1);
            n += 1;
        }
        n
    }

    /// Events delivered: acknowledged at QoS 1, written at QoS 0.
    fn delivered(&self) -> u64 {
        match self.qos {
            Qos::AtMostOnce => self.counters.published.get(),
            Qos::AtLeastOnce => self.counters.acknowledged.get(),
        }
    }

    /// Ends the publisher, once: counts every event the task still held (`in_flight`) and
    /// every queued one as failed, and refuses new events. Only call it when the task will
    /// not touch the counters again (it finished, panicked, or was dropped). Returns the
    /// number of events given up, or `None` if the publisher had already ended.
    pub(crate) fn end(&self, how: Phase, reason: Option<String>) -> Option<u64> {
        // Read before ending: from then on pushers may drain the queue concurrently, and
        // their events are not the task's.
        let held = (self.counters.dequeued.get())
            .saturating_sub(self.delivered() + self.counters.failed.get());
        let ran = !matches!(self.lifecycle.phase(), Phase::Lazy | Phase::HandedOut);
        if !self.lifecycle.end(how) {
            return None;
        }
        self.counters.failed.add(held);
        let given_up = held + self.drain_as_failed();
        self.counters.connected.store(false, Ordering::Release);
        if let Some(reason) = reason {
            if given_up > 0 {
                tracing::error!(%reason, undelivered = given_up, "MQTT event publisher stopped");
            } else if ran {
                tracing::warn!(%reason, "MQTT event publisher stopped");
            } else {
                tracing::debug!(%reason, "MQTT event publisher stopped before it ran");
            }
            *self
                .stop_reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(reason);
        }
        Some(given_up)
    }

    /// Remembers why the last connection attempt or connection failed (never a secret).
    pub(crate) fn set_last_error(&self, error: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn stop_reason(&self) -> Option<String> {
        self.stop_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A snapshot. Counters are read settled-first (delivered, failed, then dequeued, then
    /// enqueued): each event is counted in `dequeued` before it is delivered or failed, and
    /// in the queue before `dequeued`, so every difference below is non-negative and the
    /// identity holds exactly. `enqueued` is raised to `dequeued` when a pusher has not yet
    /// counted the event the task already took.
    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        let published = c.published.get();
        let acknowledged = c.acknowledged.get();
        let delivered = match self.qos {
            Qos::AtMostOnce => published,
            Qos::AtLeastOnce => acknowledged,
        };
        let failed = c.failed.get();
        let dequeued = c.dequeued.get();
        let enqueued = c.enqueued.get().max(dequeued);
        Stats {
            enqueued,
            dropped_queue_full: c.dropped_queue_full.get(),
            dropped_closed: c.dropped_closed.get(),
            published,
            acknowledged,
            delivered,
            failed,
            reconnects: c.reconnects.get(),
            connect_failures: c.connect_failures.get(),
            queue_len: enqueued - dequeued,
            in_flight: dequeued.saturating_sub(delivered + failed),
            connected: c.connected.load(Ordering::Acquire),
            state: match self.lifecycle.phase() {
                Phase::Lazy | Phase::HandedOut => PublisherState::NotStarted,
                Phase::Running => PublisherState::Running,
                Phase::Closing => PublisherState::ShuttingDown,
                Phase::ShutDown => PublisherState::ShutDown,
                Phase::Stopped => PublisherState::Stopped,
            },
        }
    }
}
