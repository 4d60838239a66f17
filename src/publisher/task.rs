//! [`PublisherTask`]: the worker as a future, which reports its own death.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::shared::Shared;
use super::state::Phase;

/// The publisher of a layer built with [`Builder::build_pair`](crate::Builder::build_pair):
/// a future that owns the MQTT connection until the publisher is shut down.
///
/// It **is** the publisher: nothing else is spawned, so dropping or aborting it stops
/// publishing, and whatever it still held is counted in
/// [`Stats::failed`](crate::Stats::failed), with the reason in
/// [`PublisherHandle::stop_reason`](crate::PublisherHandle::stop_reason). A panic inside is
/// caught and reported the same way; the future then completes.
///
/// Spawn it on the Tokio runtime that should carry the MQTT work, e.g. a small runtime of its
/// own so that publishing never shares threads with request handling. Until it runs, events
/// wait in the queue (and [`flush`](crate::PublisherHandle::flush) waits). It completes after
/// a shutdown, or once the layer, every service made from it and every handle are dropped
/// (after delivering what was queued, for up to 5 s).
///
/// # Panics
///
/// When polled outside a Tokio runtime (it needs Tokio's I/O and timers).
#[must_use = "the publisher sends nothing until this future is spawned or awaited"]
pub struct PublisherTask {
    running: Option<Running>,
}

struct Running {
    future: Pin<Box<dyn Future<Output = ()> + Send>>,
    shared: Arc<Shared>,
    polled: bool,
}

impl PublisherTask {
    pub(crate) fn new(
        shared: Arc<Shared>,
        future: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self {
            running: Some(Running {
                future: Box::pin(future),
                shared,
                polled: false,
            }),
        }
    }

    /// The task of a disabled layer: already complete.
    pub(crate) fn finished() -> Self {
        Self { running: None }
    }
}

impl Future for PublisherTask {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(running) = self.running.as_mut() else {
            return Poll::Ready(());
        };
        running.polled = true;
        let future = &mut running.future;
        match std::panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => {
                self.running = None;
                Poll::Ready(())
            }
            Err(payload) => {
                let text = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                if let Some(running) = self.running.take() {
                    drop(running.future);
                    let reason = format!("publisher task panicked: {text}");
                    running.shared.end(Phase::Stopped, Some(reason));
                }
                Poll::Ready(())
            }
        }
    }
}

impl Drop for PublisherTask {
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        drop(running.future);
        let reason = if running.polled {
            "publisher task was dropped before it finished: its Tokio runtime shut down or it was aborted"
        } else {
            "publisher task was dropped before it ran"
        };
        running.shared.end(Phase::Stopped, Some(reason.to_owned()));
    }
}

impl std::fmt::Debug for PublisherTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublisherTask")
            .field("finished", &self.running.is_none())
            .finish_non_exhaustive()
    }
}
