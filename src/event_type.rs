//! [`EventType`], on its own so that handler details and the queued record can name it
//! without the event's serialization.

use serde::{Deserialize, Serialize};

/// The `type` of an event, as MPS writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// MPS publishes it when a handler starts, before the outcome; so does the `mps` profile
    /// where MPS does (never the default `all` profile: one event per request).
    Request,
    /// The response status was below 400.
    Success,
    /// The response status was 400 or above, the service failed, or the request was cancelled.
    Fail,
}
