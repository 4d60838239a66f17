//! The publisher: the bounded queue the request path writes to, and the task that owns the
//! MQTT connection and empties the queue into it.
//!
//! Files, in the one direction they import each other: [`link`] (what layers and handles
//! hold) → [`worker`] (the task's loop: connect, serve, back off, flush, shut down) →
//! [`outbox`] (records to PUBLISH packets, settling) → [`tracker`] (unsettled events and
//! packet ids) and [`session`] (one MQTT connection, rumqttc's codec) → [`connector`] (the
//! byte stream); the worker also uses [`backoff`]; all share [`shared`] (queue, counters),
//! [`state`] (the lifecycle) and [`message`]; [`task`] wraps the worker as the public
//! [`PublisherTask`].
//!
//! rumqttc is used for its codec only: the task writes every ready event in one `write` (up
//! to 64 KiB and a window of 1024 unacknowledged events), so the bounded queue is the only
//! buffer that grows, and the counters are the only truth about delivery.

mod backoff;
mod connector;
mod link;
mod message;
mod metrics;
mod outbox;
mod session;
mod shared;
mod state;
mod stats;
mod status;
mod task;
mod tracker;
#[cfg(feature = "websocket")]
mod websocket;
mod worker;

pub(crate) use link::Link;
pub(crate) use message::Control;
pub(crate) use shared::Admission;
pub use stats::{PublisherState, ShutdownReport, Stats};
pub use task::PublisherTask;
