//! The queued item: what the request path records for one request, small and `Copy` (like
//! tower's `buffer/message.rs`). The publisher task turns it into an event.

use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Method;

use crate::data::EventData;
use crate::details::EventDetails;
use crate::routes::{Guid, RouteId};
use crate::trace::TraceIds;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The inner service answered with this status.
    Status(u16),
    /// The inner service returned an error instead of a response.
    ServiceError,
    /// The response future was dropped first: the client went away.
    Cancelled,
    /// The inner service panicked.
    Panicked,
    /// Not an outcome: the start of the request, for the `request` event of the `mps`
    /// profile (published when the request ends, stamped with its start).
    Started,
    /// Not a request: an event published through the handle (a CIRA connection, ...).
    External,
}

/// What the request path records: no heap unless a handler added [`EventData`] (one pointer),
/// 120 bytes (128 with the queue's stamp).
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The route's [`RouteId`], or [`NO_ROUTE`].
    route: u8,
    pub(crate) guid: Option<Guid>,
    method: MethodName,
    /// What the handler said about the event, if anything.
    pub(crate) details: Option<&'static EventDetails>,
    pub(crate) outcome: Outcome,
    /// The JSON object the handler added, if any.
    pub(crate) data: Option<Box<EventData>>,
    /// The ids of the request's `traceparent` header, if it had a valid one.
    pub(crate) trace: TraceIds,
    latency_us: u32,
    /// When the response was ready, in nanoseconds since [`EPOCH`].
    finished_ns: u64,
}

/// [`Record::route`] of a request outside MPS's routes, or of an event outside HTTP.
const NO_ROUTE: u8 = u8::MAX;

/// The monotonic clock's origin for [`Record`]s: the first time one is made.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Record {
    /// A request to `route` with `method`, called at `start`, that ended as `outcome` at
    /// `finished`.
    pub(crate) fn new(
        (route, guid): (Option<RouteId>, Option<Guid>),
        method: MethodName,
        outcome: Outcome,
        start: Instant,
        finished: Instant,
    ) -> Self {
        let latency = finished.saturating_duration_since(start);
        let since_epoch = finished.saturating_duration_since(*EPOCH);
        Self {
            route: route.unwrap_or(NO_ROUTE),
            guid,
            method,
            details: None,
            outcome,
            data: None,
            trace: TraceIds::NONE,
            latency_us: u32::try_from(latency.as_micros()).unwrap_or(u32::MAX),
            finished_ns: u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// The MPS route of the request, if it has one.
    pub(crate) fn route(&self) -> Option<RouteId> {
        (self.route != NO_ROUTE).then_some(self.route)
    }

    /// Replaces the guid with one the handler set; it is shown even on a route whose path
    /// has none.
    pub(crate) fn set_guid_from_handler(&mut self, guid: Guid) {
        self.guid = Some(guid);
        self.method.0 |= HANDLER_GUID;
    }

    /// Whether the guid was set by the handler rather than taken from the path.
    pub(crate) fn guid_from_handler(&self) -> bool {
        self.method.0 & HANDLER_GUID != 0
    }

    /// The request method's name.
    pub(crate) fn method(&self) -> &'static str {
        self.method.as_str()
    }

    /// Time from the call to the response, in microseconds (saturating at 71 minutes).
    pub(crate) fn latency_us(&self) -> u32 {
        self.latency_us
    }

    /// When the response was ready.
    pub(crate) fn finished(&self) -> Instant {
        *EPOCH + Duration::from_nanos(self.finished_ns)
    }
}

/// A standard method, in one byte; other methods are not echoed into events. The byte's high
/// bit is [`HANDLER_GUID`], so that the record keeps its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MethodName(u8);

/// Set in a record's [`MethodName`] byte when the handler set the guid.
const HANDLER_GUID: u8 = 0x80;

const METHOD_NAMES: [&str; 10] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

impl MethodName {
    pub(crate) fn of(method: &Method) -> Self {
        Self(match *method {
            Method::GET => 0,
            Method::POST => 1,
            Method::PUT => 2,
            Method::PATCH => 3,
            Method::DELETE => 4,
            Method::HEAD => 5,
            Method::OPTIONS => 6,
            Method::CONNECT => 7,
            Method::TRACE => 8,
            _ => 9,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        METHOD_NAMES[usize::from(self.0 & !HANDLER_GUID)]
    }
}

/// The wall clock and the monotonic clock read together, so that many records can be
/// stamped with two clock reads in all.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    system: SystemTime,
    instant: Instant,
}

impl WallClock {
    pub(crate) fn now() -> Self {
        Self {
            system: SystemTime::now(),
            instant: Instant::now(),
        }
    }

    /// Milliseconds since the epoch at which `record`'s response was ready.
    pub(crate) fn timestamp_ms(&self, record: &Record) -> u64 {
        let ago = self.instant.saturating_duration_since(record.finished());
        let finished = self.system.checked_sub(ago).unwrap_or(UNIX_EPOCH);
        finished
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_record_stays_small() {
        // The queue reserves one slot per event up front: 128 bytes with its stamp (the docs
        // say so), handler data behind one pointer.
        assert_eq!(std::mem::size_of::<Record>(), 120);
    }

    #[test]
    fn extension_methods_are_not_echoed() {
        let method = Method::from_bytes(b"SECRETVERB").expect("valid token");
        assert_eq!(MethodName::of(&method).as_str(), "OTHER");
        assert_eq!(MethodName::of(&Method::PATCH).as_str(), "PATCH");
    }

    #[test]
    fn timestamp_is_when_the_response_was_ready() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after epoch")
            .as_millis() as u64;
        let now = Instant::now();
        let r = Record::new(
            (None, None),
            MethodName::of(&Method::GET),
            Outcome::Status(200),
            now,
            now,
        );
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after epoch")
            .as_millis() as u64;
        let ts = WallClock::now().timestamp_ms(&r);
        assert!(
            before <= ts && ts <= after + 1,
            "{before} <= {ts} <= {after}"
        );
    }

    #[test]
    fn latency_keeps_microseconds_and_saturates() {
        let start = Instant::now();
        let get = MethodName::of(&Method::GET);
        let r = Record::new(
            (None, None),
            get,
            Outcome::Cancelled,
            start,
            start + Duration::from_micros(1234),
        );
        assert_eq!(r.latency_us(), 1234);
        let long = start + Duration::from_secs(100_000);
        assert_eq!(
            Record::new((None, None), get, Outcome::Cancelled, start, long).latency_us(),
            u32::MAX
        );
    }
}
