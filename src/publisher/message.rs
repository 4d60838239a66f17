//! What a handle asks of the task (like opentelemetry-sdk's `BatchMessage`).

use tokio::sync::oneshot;
use tokio::time::Instant;

/// A request to the task from a handle.
#[derive(Debug)]
pub(crate) enum Control {
    /// Reply once every event accepted before this message is delivered or failed.
    Flush(oneshot::Sender<()>),
    /// Stop accepting, drain until `deadline`, disconnect, then reply (if anyone listens).
    Shutdown {
        deadline: Instant,
        reply: Option<oneshot::Sender<()>>,
    },
}
