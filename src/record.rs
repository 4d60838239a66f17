//! The queued item: what the request path records for one request, small and `Copy` (like
//! tower's `buffer/message.rs`). The publisher task turns it into an event.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Method;

use crate::routes::{Guid, RouteId};

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
}

/// What the request path records: small, `Copy`, no heap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    pub(crate) route: Option<RouteId>,
    pub(crate) guid: Option<Guid>,
    pub(crate) method: &'static str,
    pub(crate) outcome: Outcome,
    pub(crate) latency: Duration,
    pub(crate) finished: Instant,
}

/// The name of a standard method; other methods are not echoed into events.
pub(crate) fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
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
        let ago = self.instant.saturating_duration_since(record.finished);
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
        // The queue reserves one slot per event up front; the docs promise about 100 bytes.
        assert!(
            std::mem::size_of::<Record>() <= 104,
            "{}",
            std::mem::size_of::<Record>()
        );
    }

    #[test]
    fn extension_methods_are_not_echoed() {
        let method = Method::from_bytes(b"SECRETVERB").expect("valid token");
        assert_eq!(method_name(&method), "OTHER");
    }

    #[test]
    fn timestamp_is_when_the_response_was_ready() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after epoch")
            .as_millis() as u64;
        let r = Record {
            route: None,
            guid: None,
            method: "GET",
            outcome: Outcome::Status(200),
            latency: Duration::ZERO,
            finished: Instant::now(),
        };
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
}
