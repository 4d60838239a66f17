//! The handle: delivery statistics, flush and shutdown, over the publisher's [`Link`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::data::EventData;
use crate::details::EventDetails;
use crate::error::{FlushError, TryPublishError};
use crate::event::EventType;
use crate::health::Health;
use crate::publisher::{Admission, Control, Link, ShutdownReport, Stats};
use crate::record::{MethodName, Outcome, Record};
use crate::routes::Guid;

/// Extra time a handle waits for the task's reply past the deadline it gave it, so that a
/// reply sent right at the deadline is not missed.
const REPLY_GRACE: Duration = Duration::from_millis(100);

/// Reads the publisher's statistics, flushes it and shuts it down. Cheap to clone.
///
/// Get one from [`MqttEventLayer::handle`](crate::MqttEventLayer::handle). On a disabled
/// layer every counter is zero and [`flush`](Self::flush) and [`shutdown`](Self::shutdown)
/// return at once.
///
/// Keep a handle (or the layer) for as long as events should flow: when the layer, every
/// service made from it and every handle are dropped, the task's control channel closes; it
/// gives queued events up to 5 seconds, then disconnects and ends. Nothing blocks in `Drop`; if the runtime stops first, what is
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
            .map(|link| link.shared().stats())
            .unwrap_or_default()
    }

    /// The publisher's health for a health endpoint (serializable; no secrets): whether it
    /// is connected, the last connection error, how full the queue is, its state.
    #[must_use]
    pub fn health(&self) -> Health {
        let capacity = self
            .link
            .as_ref()
            .map_or(0, |link| link.shared().queue.capacity() as u64);
        Health::new(
            &self.stats(),
            capacity,
            self.broker().map(str::to_owned),
            self.last_error(),
        )
    }

    /// Why the publisher task stopped, if it died (a panic, or its runtime went away).
    #[must_use]
    pub fn stop_reason(&self) -> Option<String> {
        self.link
            .as_ref()
            .and_then(|link| link.shared().stop_reason())
    }

    /// Why the last connection attempt or connection failed, e.g. `the broker refused the
    /// connection: bad user name or password (...)` or `the broker's certificate is not
    /// trusted (unknown issuer): ...`; `None` if none has failed. It stays after a later
    /// success: [`Stats::connected`] tells the current state. Never contains a secret, so a
    /// health endpoint may show it.
    #[must_use]
    pub fn last_error(&self) -> Option<String> {
        self.link
            .as_ref()
            .and_then(|link| link.shared().last_error())
    }

    /// Publishes an event that is not an HTTP request's, e.g. a device connecting over CIRA
    /// ([`EventDetails::CIRA_CONNECTED`]) or a redirection session ending
    /// ([`EventDetails::REDIRECTION_ENDED`]), with the device's `guid` (left out unless it is
    /// a UUID). It goes through the same bounded queue, with the same counters and
    /// guarantees as the events of requests, and never waits: a full queue drops it.
    /// Publishes nothing when eventing is off or [`Builder::only_types`](crate::Builder::only_types)
    /// leaves its type out. Cheap to call from any thread; the handle is cheap to clone.
    ///
    /// ```
    /// # let handle = mps_mqtt_events::MqttEventLayer::disabled().handle();
    /// use mps_mqtt_events::EventDetails;
    /// handle.try_publish(&EventDetails::CIRA_CONNECTED, Some("4c4c4544-004b-4210-8033-b6c04f504633"))?;
    /// # Ok::<(), mps_mqtt_events::TryPublishError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`TryPublishError::QueueFull`] or [`TryPublishError::Closed`]: the event was dropped
    /// and counted in [`Stats::dropped_queue_full`] or [`Stats::dropped_closed`].
    pub fn try_publish(
        &self,
        details: &'static EventDetails,
        guid: Option<&str>,
    ) -> Result<(), TryPublishError> {
        self.publish_external(details, guid, None)
    }

    /// [`try_publish`](Self::try_publish) with a JSON object as the event's `data`, e.g. the
    /// address a device connected from.
    ///
    /// ```
    /// # let handle = mps_mqtt_events::MqttEventLayer::disabled().handle();
    /// use mps_mqtt_events::{EventData, EventDetails};
    /// let data = EventData::new(&serde_json::json!({"peer": "192.0.2.7:4433"})).expect("an object");
    /// handle.try_publish_with_data(&EventDetails::CIRA_CONNECTED, Some("4c4c4544-004b-4210-8033-b6c04f504633"), data)?;
    /// # Ok::<(), mps_mqtt_events::TryPublishError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_publish`](Self::try_publish).
    pub fn try_publish_with_data(
        &self,
        details: &'static EventDetails,
        guid: Option<&str>,
        data: EventData,
    ) -> Result<(), TryPublishError> {
        self.publish_external(details, guid, Some(Box::new(data)))
    }

    fn publish_external(
        &self,
        details: &'static EventDetails,
        guid: Option<&str>,
        data: Option<Box<EventData>>,
    ) -> Result<(), TryPublishError> {
        let Some(link) = &self.link else {
            return Ok(());
        };
        if !link
            .filter()
            .keeps(details.kind.unwrap_or(EventType::Success))
        {
            return Ok(());
        }
        let guid = guid.and_then(Guid::new);
        let now = std::time::Instant::now();
        let get = MethodName::of(&http::Method::GET);
        let mut record = Record::new((None, guid), get, Outcome::External, now, now);
        record.details = Some(details);
        record.data = data;
        match link.push(record) {
            Admission::Accepted => Ok(()),
            Admission::Full => Err(TryPublishError::QueueFull),
            Admission::Closed => Err(TryPublishError::Closed),
        }
    }

    /// The topic events are published on (`None` when eventing is off), as resolved from
    /// the environment and the builder.
    #[must_use]
    pub fn topic(&self) -> Option<&str> {
        self.link.as_deref().map(Link::topic)
    }

    /// The broker address, e.g. `mqtt://mps:***@mosquitto:1883`, with any password replaced
    /// by `***` (`None` when eventing is off): safe to log or show on a status page.
    #[must_use]
    pub fn broker(&self) -> Option<&str> {
        self.link.as_deref().map(Link::broker)
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
        let shared = link.shared();
        link.start();
        let deadline = Instant::now() + timeout;
        let stopped = || FlushError::Stopped {
            reason: shared
                .stop_reason()
                .unwrap_or_else(|| "it was shut down".to_owned()),
        };
        if shared.lifecycle.phase().has_ended() {
            return Err(stopped());
        }
        let (reply, done) = oneshot::channel();
        let sent =
            tokio::time::timeout_at(deadline, link.control().send(Control::Flush(reply))).await;
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
        let shared = link.shared();
        link.start();
        let deadline = Instant::now() + timeout;
        if !shared.lifecycle.phase().has_ended() {
            let (reply, done) = oneshot::channel();
            let message = Control::Shutdown {
                deadline,
                reply: Some(reply),
            };
            let grace = deadline + REPLY_GRACE;
            if let Ok(Ok(())) = tokio::time::timeout_at(grace, link.control().send(message)).await {
                let _ = tokio::time::timeout_at(grace, done).await;
            }
        }
        let stats = shared.stats();
        ShutdownReport {
            delivered: stats.delivered,
            undelivered: stats.failed + stats.pending(),
            dropped: stats.dropped_queue_full + stats.dropped_closed,
            stats,
        }
    }
}
