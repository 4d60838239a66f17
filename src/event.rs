//! The event published for each request: MPS's fields, then an `http` object and any data
//! its handler added.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;

use crate::data::EventData;
use crate::details::EventDetails;
pub use crate::event_type::EventType;
use crate::mps;
use crate::record::{Outcome, Record};
use crate::routes::{self, Guid, INTERNAL_ERROR, Route};
use crate::topic::TopicValues;

/// One event as published, compact JSON in this field order:
///
/// ```json
/// {"type":"success","message":"Power Action requested","methods":["AMT_PowerAction"],
///  "guid":"4c4c4544-004b-4210-8033-b6c04f504633","timestamp":1764108000123,"id":"1f0e9a7c3b2d4e5f-42",
///  "http":{"method":"POST","path":"/api/v1/amt/power/action/:guid","status":200,"latency_ms":0.412}}
/// ```
///
/// The first five fields are those of MPS's `OpenAMTEvent`, so existing subscribers keep
/// working; this type also reads MPS's own events (they have no `http`). Bodies, query strings,
/// headers and unrecognised paths are never included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Whether the request succeeded.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// MPS's text for the route and outcome, or a generic one.
    pub message: Cow<'static, str>,
    /// One name: the AMT operation of the route (e.g. `AMT_PowerAction`), the handler name
    /// where MPS publishes nothing, or `unknown` outside MPS's routes.
    pub methods: Vec<Cow<'static, str>>,
    /// The device GUID from the path, as sent; absent when the route has none or the path
    /// segment is not in UUID form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    /// When the response was ready, in milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Unique per event and the same when an event is sent again after a reconnect (QoS 1
    /// delivers at least once): subscribers drop duplicates by it. Absent in MPS's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The HTTP exchange; absent in events published by MPS itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpInfo>,
    /// The W3C trace id (32 lowercase hex digits) of the request's `traceparent` header, if
    /// it had a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The parent id (16 lowercase hex digits) of that header: the span of the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// The JSON object the handler added ([`EventData`](crate::EventData)), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The `http` object of an [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HttpInfo {
    /// The request method (`OTHER` for a non-standard one).
    pub method: Cow<'static, str>,
    /// The route template, e.g. `/api/v1/amt/power/action/:guid`; `null` outside MPS's routes,
    /// since a raw path can carry anything, of any length.
    pub path: Option<Cow<'static, str>>,
    /// The response status; `null` when the request was cancelled or the service failed.
    pub status: Option<u16>,
    /// Time from the call to the response head, in milliseconds (microsecond precision).
    pub latency_ms: f64,
}

/// The `id` of an event: `<instance as 16 hex digits>-<seq>`, written without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EventId {
    /// Random per publisher task, so ids are unique across processes.
    pub(crate) instance: u64,
    /// Order of the event in its task.
    pub(crate) seq: u64,
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}-{}", self.instance, self.seq)
    }
}

impl Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An [`Event`] as the publisher serializes it: the same JSON, byte for byte (a test pins
/// it), borrowing everything so that encoding an event allocates nothing.
#[derive(Debug, Serialize)]
pub(crate) struct EventView<'a> {
    #[serde(rename = "type")]
    kind: EventType,
    message: &'static str,
    methods: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    guid: Option<&'a str>,
    timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
}

/// What a handler said about its event ([`EventDetails`](crate::EventDetails)), replacing
/// what the route table says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Overrides {
    pub(crate) kind: Option<EventType>,
    pub(crate) message: Option<&'static str>,
    pub(crate) methods: Option<&'static str>,
}

impl Overrides {
    /// What `details` replace; nothing for none.
    pub(crate) fn of(details: Option<&EventDetails>) -> Self {
        details.map_or_else(Self::default, |d| Self {
            kind: d.kind,
            message: d.message,
            methods: d.methods,
        })
    }

    fn over(
        self,
        (kind, message, methods): (EventType, &'static str, &'static str),
    ) -> (EventType, &'static str, &'static str) {
        (
            self.kind.unwrap_or(kind),
            self.message.unwrap_or(message),
            self.methods.unwrap_or(methods),
        )
    }
}

/// The `http` object of an [`EventView`].
#[derive(Debug, Serialize)]
struct HttpView {
    method: &'static str,
    path: Option<&'static str>,
    status: Option<u16>,
    latency_ms: f64,
}

impl<'a> EventView<'a> {
    /// The event of the request `record` describes in the `all` profile, stamped with
    /// `timestamp` and `id`, with what its handler said.
    pub(crate) fn new(record: &'a Record, timestamp: u64, id: EventId, said: Overrides) -> Self {
        if record.outcome == Outcome::External {
            return Self::external(record, timestamp, Some(id), said);
        }
        let route = record.route().map(|id| &routes::ROUTES[usize::from(id)]);
        let guid = match route {
            _ if record.guid_from_handler() => record.guid.as_ref().and_then(Guid::as_str),
            Some(r) if r.has_guid() => record.guid.as_ref().and_then(Guid::as_str),
            _ => None,
        };
        let described = said.over(describe(route, record.outcome));
        Self::with(record, described, guid, timestamp, Some(id))
    }

    /// The event of `record` in the `mps` profile (see [`mps::describe`]): MPS's five fields,
    /// and `id` and `http` only when `id` is given.
    pub(crate) fn mps(
        record: &'a Record,
        timestamp: u64,
        id: Option<EventId>,
        said: Overrides,
    ) -> Option<Self> {
        if record.outcome == Outcome::External {
            return Some(Self::external(record, timestamp, id, said));
        }
        let route = &routes::ROUTES[usize::from(record.route()?)];
        let mps = mps::describe(route, record.outcome);
        let kind = match mps.kind {
            mps::Kind::Request => EventType::Request,
            mps::Kind::Success => EventType::Success,
            mps::Kind::Fail => EventType::Fail,
        };
        let shown = record.guid_from_handler() || (mps.guid && route.has_guid());
        let guid = match shown {
            true => record.guid.as_ref().and_then(Guid::as_str),
            false => None,
        };
        let described = said.over((kind, mps.message, mps.operation));
        Some(Self::with(record, described, guid, timestamp, id))
    }

    /// What the event puts into a topic template.
    pub(crate) fn topic_values(&self) -> TopicValues<'a> {
        let kind = match self.kind {
            EventType::Request => "request",
            EventType::Success => "success",
            EventType::Fail => "fail",
        };
        TopicValues {
            kind,
            guid: self.guid,
            method: self.methods[0],
        }
    }

    /// An event outside HTTP ([`PublisherHandle::try_publish`](crate::PublisherHandle::try_publish)):
    /// what its details say and its guid; no `http` object.
    fn external(record: &'a Record, timestamp: u64, id: Option<EventId>, said: Overrides) -> Self {
        let described = said.over((EventType::Success, GENERIC_SUCCESS, UNKNOWN_OPERATION));
        let guid = record.guid.as_ref().and_then(Guid::as_str);
        let mut view = Self::with(record, described, guid, timestamp, id);
        view.http = None;
        view
    }

    fn with(
        record: &'a Record,
        (kind, message, operation): (EventType, &'static str, &'static str),
        guid: Option<&'a str>,
        timestamp: u64,
        id: Option<EventId>,
    ) -> Self {
        let route = record.route().map(|id| &routes::ROUTES[usize::from(id)]);
        let status = match record.outcome {
            Outcome::Status(status) => Some(status),
            _ => None,
        };
        let micros = record.latency_us();
        // Like `id` and `http`, only where the profile shows fields beyond MPS's.
        let trace = id.and_then(|_| record.trace.ids());
        Self {
            kind,
            message,
            methods: [operation],
            guid,
            timestamp,
            id,
            http: id.map(|_| HttpView {
                method: record.method(),
                path: route.map(|r| r.template),
                status,
                latency_ms: micros as f64 / 1000.0,
            }),
            trace_id: trace.map(|(trace_id, _)| trace_id),
            span_id: trace.map(|(_, span_id)| span_id),
            data: record.data.as_deref().map(EventData::raw),
        }
    }
}

#[cfg(test)]
impl Event {
    /// The owned form of [`EventView::new`], with any `id`.
    pub(crate) fn of(record: &Record, timestamp: u64, id: String) -> Self {
        let view = EventView::new(
            record,
            timestamp,
            EventId {
                instance: 0,
                seq: 0,
            },
            Overrides::default(),
        );
        Event {
            kind: view.kind,
            message: Cow::Borrowed(view.message),
            methods: vec![Cow::Borrowed(view.methods[0])],
            guid: view.guid.map(str::to_owned),
            timestamp,
            id: Some(id),
            http: view.http.map(|http| HttpInfo {
                method: Cow::Borrowed(http.method),
                path: http.path.map(Cow::Borrowed),
                status: http.status,
                latency_ms: http.latency_ms,
            }),
            trace_id: None,
            span_id: None,
            data: None,
        }
    }
}

/// `message` of a success event on a route where MPS publishes no success text.
pub(crate) const GENERIC_SUCCESS: &str = "Request succeeded";
/// `message` of a fail event on a route where MPS publishes no text for that failure.
pub(crate) const GENERIC_FAIL: &str = "Request failed";
/// `message` of the event of a request whose client went away before the response.
pub(crate) const CANCELLED: &str = "Request cancelled before a response was sent";
/// `methods` value of the events of requests to paths outside the route table.
pub(crate) const UNKNOWN_OPERATION: &str = "unknown";

/// What the event of a request says: its type, `message` and `methods` value.
pub(crate) fn describe(
    route: Option<&Route>,
    outcome: Outcome,
) -> (EventType, &'static str, &'static str) {
    let Some(route) = route else {
        let (kind, message) = match outcome {
            Outcome::Status(status) if status < 400 => (EventType::Success, GENERIC_SUCCESS),
            Outcome::Status(_) => (EventType::Fail, GENERIC_FAIL),
            Outcome::Cancelled => (EventType::Fail, CANCELLED),
            Outcome::ServiceError | Outcome::Panicked | Outcome::Started | Outcome::External => {
                (EventType::Fail, INTERNAL_ERROR)
            }
        };
        return (kind, message, UNKNOWN_OPERATION);
    };
    let op = route.operation;
    match outcome {
        Outcome::Status(status) if status < 400 => (
            EventType::Success,
            route.success.unwrap_or(GENERIC_SUCCESS),
            op,
        ),
        Outcome::Status(404) if route.cira => {
            (EventType::Fail, mps::DEVICE_NOT_FOUND, mps::CIRA_OPERATION)
        }
        Outcome::Status(status) if status >= 500 => {
            (EventType::Fail, route.error.unwrap_or(GENERIC_FAIL), op)
        }
        Outcome::Status(_) => (EventType::Fail, route.soft_fail.unwrap_or(GENERIC_FAIL), op),
        Outcome::Cancelled => (EventType::Fail, CANCELLED, op),
        // `Started` belongs to the `mps` profile; never recorded in this one.
        Outcome::ServiceError | Outcome::Panicked | Outcome::Started | Outcome::External => {
            (EventType::Fail, route.error.unwrap_or(INTERNAL_ERROR), op)
        }
    }
}

#[cfg(test)]
mod tests;
