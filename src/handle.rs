//! The handle: delivery statistics, flush and shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::FlushError;
use crate::publisher::{Control, Shared};

/// Extra time a handle waits for the task's reply past the deadline it gave it, so that a
/// reply sent right at the deadline is not missed.
const REPLY_GRACE: Duration = Duration::from_millis(100);

/// Keeps the publisher alive for the layer, its services and handles; when the last one
/// goes, the task drains what is queued for up to 5 s, disconnects and ends.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.release();
    }
}

/// Where the publisher task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PublisherState {
    /// Eventing is off: `MPS_MQTT_ADDRESS` is unset or empty.
    #[default]
    Disabled,
    /// No request has been served yet; the task starts with the first one.
    NotStarted,
    /// Accepting events and delivering them whenever the broker is reachable.
    Running,
    /// [`PublisherHandle::shutdown`] was called: new events are refused, queued ones drained.
    ShuttingDown,
    /// Shut down: new events are refused and counted in [`Stats::dropped_closed`].
    ShutDown,
    /// The task ended unexpectedly (see [`PublisherHandle::stop_reason`]); the layer keeps
    /// serving requests and counts their events in [`Stats::dropped_closed`].
    Stopped,
}

/// A snapshot of the publisher's counters.
///
/// Every event the layer captures is either accepted into the queue (`enqueued`) or dropped
/// (`dropped_queue_full`, `dropped_closed`). Every accepted event is delivered, failed, or
/// still pending, so at any moment
///
/// ```text
/// enqueued == delivered + failed + queue_len + in_flight
/// ```
///
/// (up to events moving between counters while the snapshot is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Events accepted into the queue.
    pub enqueued: u64,
    /// Events refused because the queue was full (the newest are dropped, so what is queued
    /// stays in order). The first drop is logged once.
    pub dropped_queue_full: u64,
    /// Events refused because the publisher was shut down or had stopped.
    pub dropped_closed: u64,
    /// Events whose PUBLISH was written to the broker connection, counted once even when sent
    /// again after a reconnect.
    pub published: u64,
    /// Events the broker acknowledged (QoS 1).
    pub acknowledged: u64,
    /// Events that reached the broker: `acknowledged` at QoS 1, `published` at QoS 0.
    pub delivered: u64,
    /// Accepted events given up on: undelivered at the shutdown deadline, left behind by a
    /// task that died, or impossible to encode.
    pub failed: u64,
    /// Times the connection was established again after it was lost.
    pub reconnects: u64,
    /// Events waiting in the queue.
    pub queue_len: u64,
    /// Events taken from the queue and not yet delivered (handed to the MQTT client, or held
    /// to be sent again after a reconnect).
    pub in_flight: u64,
    /// Whether the publisher is connected to the broker now.
    pub connected: bool,
    /// Where the publisher task is in its life.
    pub state: PublisherState,
}

impl Stats {
    /// Events accepted and not yet delivered or failed: `queue_len + in_flight`.
    #[must_use]
    pub fn pending(&self) -> u64 {
        self.queue_len + self.in_flight
    }
}

/// What [`PublisherHandle::shutdown`] could and could not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Events delivered over the publisher's life.
    pub delivered: u64,
    /// Events still queued or in flight at the deadline, now counted in [`Stats::failed`].
    pub undelivered: u64,
    /// Events dropped over the publisher's life (queue full or after shutdown).
    pub dropped: u64,
    /// The counters after shutdown.
    pub stats: Stats,
}

/// Reads the publisher's statistics, flushes it and shuts it down. Cheap to clone.
///
/// Get one from [`MqttEventLayer::handle`](crate::MqttEventLayer::handle). On a disabled
/// layer every counter is zero and [`flush`](Self::flush) and [`shutdown`](Self::shutdown)
/// return at once.
///
/// Keep a handle (or the layer) for as long as events should flow: when the layer, every
/// service made from it and every handle are dropped, the task gives queued events up to 5
/// seconds, then disconnects. Nothing blocks in `Drop`; if the runtime stops first, what is
/// still queued is lost, so call [`shutdown`](Self::shutdown) before the runtime ends.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct PublisherHandle {
    link: Option<Arc<Link>>,
}

impl PublisherHandle {
    pub(crate) fn new(link: Option<Arc<Link>>) -> Self {
        Self { link }
    }

    /// Whether eventing is on.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.link.is_some()
    }

    /// A snapshot of the counters. Cheap: a few atomic loads.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.link
            .as_ref()
            .map(|l| l.shared.stats())
            .unwrap_or_default()
    }

    /// Why the publisher task stopped, if it died (a panic, or its runtime went away).
    #[must_use]
    pub fn stop_reason(&self) -> Option<String> {
        self.link.as_ref().and_then(|l| l.shared.stop_reason())
    }

    /// Waits until every event accepted before this call is delivered (acknowledged at QoS
    /// 1) or failed, or until `timeout` passes. Starts the publisher if no request has yet.
    ///
    /// # Errors
    ///
    /// [`FlushError::Timeout`] when `timeout` passed first (the events stay queued and will
    /// be sent when the broker allows); [`FlushError::Stopped`] when the publisher is shut
    /// down or has stopped.
    pub async fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        let shared = &link.shared;
        shared.start();
        let deadline = Instant::now() + timeout;
        let stopped = || FlushError::Stopped {
            reason: shared
                .stop_reason()
                .unwrap_or_else(|| "it was shut down".to_owned()),
        };
        if shared.has_ended() {
            return Err(stopped());
        }
        let (reply, done) = oneshot::channel();
        let sent =
            tokio::time::timeout_at(deadline, shared.control().send(Control::Flush(reply))).await;
        let result = match sent {
            Ok(Ok(())) => tokio::time::timeout_at(deadline, done).await,
            Ok(Err(_)) => return Err(stopped()),
            Err(elapsed) => Err(elapsed),
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(FlushError::Timeout {
                timeout,
                pending: shared.stats().pending(),
            }),
        }
    }

    /// Stops accepting events, delivers what is queued until `timeout` passes, disconnects
    /// cleanly, and reports what was not delivered (also counted in [`Stats::failed`]).
    ///
    /// Returns by the deadline (plus a few milliseconds) even with the broker dead, on any
    /// Tokio runtime flavour. Events of requests served afterwards are counted in
    /// [`Stats::dropped_closed`]. Calling it again returns the same report.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let Some(link) = &self.link else {
            return ShutdownReport::default();
        };
        let shared = &link.shared;
        shared.start();
        let deadline = Instant::now() + timeout;
        if !shared.has_ended() {
            let (reply, done) = oneshot::channel();
            let message = Control::Shutdown {
                deadline,
                reply: Some(reply),
            };
            let grace = deadline + REPLY_GRACE;
            if let Ok(Ok(())) = tokio::time::timeout_at(grace, shared.control().send(message)).await
            {
                let _ = tokio::time::timeout_at(grace, done).await;
            }
        }
        let stats = shared.stats();
        ShutdownReport {
            delivered: stats.delivered,
            undelivered: shared.undelivered_at_shutdown() + stats.pending(),
            dropped: stats.dropped_queue_full + stats.dropped_closed,
            stats,
        }
    }
}
