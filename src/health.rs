//! [`Health`]: the publisher's state for a health endpoint such as MPS's `/api/v1/health`.

use serde::Serialize;

use crate::publisher::{PublisherState, Stats};

/// What a health endpoint shows about event publishing: serializable, free of secrets (the
/// broker's password and the last error's details are redacted where they are made).
///
/// ```
/// let handle = mps_mqtt_events::MqttEventLayer::disabled().handle();
/// let health = handle.health();
/// assert!(health.healthy());
/// assert_eq!(
///     serde_json::to_value(&health).unwrap()["status"],
///     "disabled"
/// );
/// ```
///
/// It is information, not a verdict on the server: a broker that is away never fails a
/// request (the events wait in the queue), so a server should keep answering its health
/// check with 200 and show this beside it, unless it wants orchestration to act on
/// [`Health::healthy`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Health {
    /// `ok` (connected), `connecting` (started, not connected yet or again), `idle` (no
    /// request yet), `disabled` (eventing off) or `stopped` (shut down, or the task died).
    pub status: &'static str,
    /// Where the publisher task is in its life.
    pub state: PublisherState,
    /// Whether the publisher is connected to the broker now.
    pub connected: bool,
    /// The broker, with any password as `***`; `None` when eventing is off.
    pub broker: Option<String>,
    /// Why the last connection attempt or connection failed (see
    /// [`PublisherHandle::last_error`](crate::PublisherHandle::last_error)).
    pub last_error: Option<String>,
    /// Events waiting in the queue.
    pub queue_len: u64,
    /// The most events the queue holds.
    pub queue_capacity: u64,
    /// `queue_len / queue_capacity`, from 0 to 1: near 1, new events are about to be
    /// dropped.
    pub queue_fill: f64,
    /// Events delivered so far.
    pub delivered: u64,
    /// Events dropped so far (queue full, or after shutdown).
    pub dropped: u64,
    /// Accepted events given up on so far.
    pub failed: u64,
}

impl Health {
    pub(crate) fn new(
        stats: &Stats,
        queue_capacity: u64,
        broker: Option<String>,
        last_error: Option<String>,
    ) -> Self {
        let status = match stats.state {
            PublisherState::Disabled => "disabled",
            PublisherState::NotStarted => "idle",
            PublisherState::Running if stats.connected => "ok",
            PublisherState::Running => "connecting",
            _ => "stopped",
        };
        Self {
            status,
            state: stats.state,
            connected: stats.connected,
            broker,
            last_error,
            queue_len: stats.queue_len,
            queue_capacity,
            queue_fill: match queue_capacity {
                0 => 0.0,
                capacity => stats.queue_len as f64 / capacity as f64,
            },
            delivered: stats.delivered,
            dropped: stats.dropped_queue_full + stats.dropped_closed,
            failed: stats.failed,
        }
    }

    /// Whether events are flowing or can: connected, not started yet, or eventing off.
    #[must_use]
    pub fn healthy(&self) -> bool {
        matches!(self.status, "ok" | "idle" | "disabled")
    }
}
