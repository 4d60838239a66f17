//! What the publisher reports: its state, its counters, and the outcome of a shutdown.

/// Where the publisher task is in its life; serialized in `snake_case` (`shutting_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PublisherState {
    /// Eventing is off: `MPS_MQTT_ADDRESS` is unset or empty.
    #[default]
    Disabled,
    /// No request has been served yet; the task starts with the first one.
    NotStarted,
    /// Accepting events and delivering them whenever the broker is reachable.
    Running,
    /// [`PublisherHandle::shutdown`](crate::PublisherHandle::shutdown) was called: new events are refused, queued ones drained.
    ShuttingDown,
    /// Shut down: new events are refused and counted in [`Stats::dropped_closed`].
    ShutDown,
    /// The task ended unexpectedly (see [`PublisherHandle::stop_reason`](crate::PublisherHandle::stop_reason)); the layer keeps
    /// serving requests and counts their events in [`Stats::dropped_closed`].
    Stopped,
}

/// A snapshot of the publisher's counters.
///
/// Every event the layer captures is either accepted into the queue (`enqueued`) or dropped
/// (`dropped_queue_full`, `dropped_closed`). Every accepted event is delivered, failed, or
/// still pending, and every snapshot satisfies, exactly,
///
/// ```text
/// enqueued == delivered + failed + queue_len + in_flight
/// ```
///
/// Every counter (all fields but `queue_len`, `in_flight`, `connected` and `state`) only
/// grows from one snapshot to the next, so it can be exported as a Prometheus counter. A
/// snapshot is a few atomic loads; `enqueued` may trail the true count by the events being
/// pushed at that instant.
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
    /// Connection attempts that failed: refused TCP connections, TLS handshake failures,
    /// CONNACK refusals (bad credentials, not authorised), timeouts. See
    /// [`PublisherHandle::last_error`](crate::PublisherHandle::last_error) for the latest.
    pub connect_failures: u64,
    /// Events waiting in the queue.
    pub queue_len: u64,
    /// Events taken from the queue and not yet delivered: written and awaiting their PUBACK,
    /// about to be written, or held to be sent again after a reconnect. At most the in-flight
    /// window, 1024.
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

/// What [`PublisherHandle::shutdown`](crate::PublisherHandle::shutdown) could and could not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Events delivered over the publisher's life.
    pub delivered: u64,
    /// Accepted events that were never delivered, over the publisher's life: those given up
    /// at the shutdown deadline, left behind by a task that died, or impossible to encode
    /// (all counted in [`Stats::failed`]), plus any still pending. `0` means every accepted
    /// event reached the broker.
    pub undelivered: u64,
    /// Events dropped over the publisher's life (queue full or after shutdown).
    pub dropped: u64,
    /// The counters after shutdown.
    pub stats: Stats,
}
