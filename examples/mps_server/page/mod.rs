//! The live events page. `GET /events` serves one self-contained HTML page (`events.html`,
//! embedded at compile time: no build step, nothing fetched from elsewhere); `GET
//! /events/stream` is the server-sent-events stream that feeds it:
//!
//! - `status` once on connect: `{"feed":"live","subscribed":true}`, or
//!   `{"feed":"unavailable","reason":"..."}` when the example's subscriber cannot follow the
//!   broker (eventing off, a TLS or WebSocket broker);
//! - `event` for every event the example's subscriber receives, as its JSON;
//! - `stats` once a second: the publisher's counters (`delivered`, `dropped` = queue full +
//!   closed, `connected`) and whether the subscriber is `subscribed`;
//! - `lagged` with the number of events a page too slow to keep up skipped.
//!
//! These routes sit outside the event layer: watching the events publishes none.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use mps_mqtt_events::PublisherHandle;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use crate::subscriber::Feed;

/// The page: HTML, CSS and JavaScript in one file.
const PAGE: &str = include_str!("events.html");
/// How often a page gets the publisher's counters.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// What every stream reads from.
#[derive(Debug, Clone)]
struct PageState {
    /// The subscriber's events, or why there are none.
    feed: Feed,
    /// The publisher, for its counters.
    handle: PublisherHandle,
    /// Turns `true` when the server shuts down.
    stop: watch::Receiver<bool>,
}

/// Ends every open stream, so the server's graceful shutdown need not wait for pages that
/// never close their connection. Dropping it ends them too.
#[derive(Debug)]
pub(crate) struct StopStreams(watch::Sender<bool>);

impl StopStreams {
    /// Ends the open streams; pages that reconnect find the server gone.
    pub(crate) fn stop(self) {
        self.0.send_replace(true);
    }
}

/// `GET /events` and `GET /events/stream`, fed by `feed`, with `handle`'s counters.
pub(crate) fn router(feed: Feed, handle: PublisherHandle) -> (Router, StopStreams) {
    let (stop_tx, stop) = watch::channel(false);
    let state = PageState { feed, handle, stop };
    let router = Router::new()
        .route("/events", get(page))
        .route("/events/stream", get(stream))
        .with_state(state);
    (router, StopStreams(stop_tx))
}

/// `GET /events`: the page itself; never cached, so a rebuilt example serves its new page.
async fn page() -> ([(header::HeaderName, &'static str); 2], &'static str) {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}

/// `GET /events/stream`: one page's server-sent events, until the page goes away or the
/// server shuts down ([`StopStreams`]).
async fn stream(
    State(state): State<PageState>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let (events, subscribed, status) = match &state.feed {
        Feed::Live { events, subscribed } => (
            Some(events.subscribe()),
            Some(subscribed.clone()),
            json!({ "feed": "live", "subscribed": *subscribed.borrow() }),
        ),
        Feed::Unavailable(reason) => (
            None,
            None,
            json!({ "feed": "unavailable", "reason": reason }),
        ),
    };
    let mut ticker = tokio::time::interval(STATS_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let cursor = Cursor {
        events,
        subscribed,
        handle: state.handle,
        ticker,
        stop: state.stop,
        greeting: Some(sse("status", &status.to_string())),
    };
    let stream = futures_util::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        Some((Ok(event), cursor))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// One page's position in the feed.
struct Cursor {
    /// `None` once the feed is unavailable or its subscriber stopped.
    events: Option<broadcast::Receiver<Arc<str>>>,
    /// Whether the subscriber is subscribed; `None` without one.
    subscribed: Option<watch::Receiver<bool>>,
    handle: PublisherHandle,
    /// When to send the next `stats`.
    ticker: Interval,
    stop: watch::Receiver<bool>,
    /// The `status` event, sent first.
    greeting: Option<SseEvent>,
}

/// What woke a [`Cursor`] up.
enum Wake {
    /// The server shuts down.
    Stop,
    /// The subscriber's next event, or how many this page skipped, or that it stopped.
    Received(Result<Arc<str>, RecvError>),
    /// Time for `stats`.
    Tick,
}

impl Cursor {
    /// The next SSE event for the page, `None` when the server shuts down.
    async fn next(&mut self) -> Option<SseEvent> {
        if let Some(greeting) = self.greeting.take() {
            return Some(greeting);
        }
        if *self.stop.borrow() {
            return None;
        }
        let wake = tokio::select! {
            // A change is the stop; an error means the sender is gone: stop as well.
            _ = self.stop.changed() => Wake::Stop,
            received = recv(self.events.as_mut()) => Wake::Received(received),
            _ = self.ticker.tick() => Wake::Tick,
        };
        Some(match wake {
            Wake::Stop => return None,
            Wake::Received(Ok(event)) => sse("event", &event),
            Wake::Received(Err(RecvError::Lagged(skipped))) => sse("lagged", &skipped.to_string()),
            Wake::Received(Err(RecvError::Closed)) => {
                self.events = None;
                let reason = "the example's subscriber stopped";
                let status = json!({ "feed": "unavailable", "reason": reason });
                sse("status", &status.to_string())
            }
            Wake::Tick => self.stats(),
        })
    }

    /// The `stats` event: the publisher's counters and the subscriber's state.
    fn stats(&self) -> SseEvent {
        let stats = self.handle.stats();
        let subscribed = self.subscribed.as_ref().map(|s| *s.borrow());
        let data = json!({
            "enabled": self.handle.is_enabled(),
            "delivered": stats.delivered,
            "dropped": stats.dropped_queue_full + stats.dropped_closed,
            "connected": stats.connected,
            "subscribed": subscribed,
        });
        sse("stats", &data.to_string())
    }
}

/// The next event of `events`; never resolves without a receiver.
async fn recv(events: Option<&mut broadcast::Receiver<Arc<str>>>) -> Result<Arc<str>, RecvError> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// An SSE event of type `kind`; `data` is compact JSON (no carriage returns, which SSE cannot
/// carry).
fn sse(kind: &str, data: &str) -> SseEvent {
    SseEvent::default().event(kind).data(data)
}
