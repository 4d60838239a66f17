//! [`EventDetails`]: what a handler says about the event of its own request, and the events
//! that are not HTTP requests (a device connecting over CIRA, a redirection session).
//!
//! Details are `'static` (a `static` or `const` in the handler's code), so the request path
//! carries them through the queue as a reference: nothing is copied, looked up or locked.

use http::Extensions;

use crate::event_type::EventType;
use crate::routes::Guid;

/// What the event of a request says, set by its handler: the `type`, `message` and
/// `methods` MPS's handlers choose, or that no event is published at all.
///
/// Make it a `static` and attach it to the response; the layer reads it when the response
/// is ready. Requests that attach nothing cost nothing extra.
///
/// ```
/// use http::Response;
/// use mps_mqtt_events::{EventDetails, EventType};
///
/// // MPS's answer when the device's power state came back empty (HTTP 400).
/// static POWER_STATE_FAILED: EventDetails = EventDetails::new()
///     .kind(EventType::Fail)
///     .methods("AMT_PowerState")
///     .message("Power State request failed");
///
/// let mut response = Response::new("{}");
/// *response.status_mut() = http::StatusCode::BAD_REQUEST;
/// POWER_STATE_FAILED.attach(&mut response);
/// ```
///
/// In the `mps` profile the details replace what the outcome event says (and a `request`
/// event still comes first where MPS publishes one); in the `all` profile they replace what
/// the request's one event says. [`EventDetails::SILENT`] publishes nothing, e.g. for a
/// validation error MPS answers without an event.
#[derive(Debug, PartialEq, Eq)]
pub struct EventDetails {
    pub(crate) kind: Option<EventType>,
    pub(crate) message: Option<&'static str>,
    pub(crate) methods: Option<&'static str>,
    pub(crate) silent: bool,
}

/// The extension a response carries: which details, by reference.
#[derive(Debug, Clone, Copy)]
struct Attached(&'static EventDetails);

/// The extension a response carries: the device guid its handler names.
#[derive(Debug, Clone, Copy)]
struct AttachedGuid(Guid);

impl EventDetails {
    /// Details that change nothing; set what should differ.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            kind: None,
            message: None,
            methods: None,
            silent: false,
        }
    }

    /// The event's `type`.
    #[must_use]
    pub const fn kind(mut self, kind: EventType) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The event's `message`.
    #[must_use]
    pub const fn message(mut self, message: &'static str) -> Self {
        self.message = Some(message);
        self
    }

    /// The event's one `methods` entry.
    #[must_use]
    pub const fn methods(mut self, methods: &'static str) -> Self {
        self.methods = Some(methods);
        self
    }

    /// No event for this request (nor MPS's `request` event before it).
    pub const SILENT: EventDetails = EventDetails {
        kind: None,
        message: None,
        methods: None,
        silent: true,
    };

    /// MPS's event when a device connected over CIRA and was recorded as connected.
    pub const CIRA_CONNECTED: EventDetails = EventDetails::new()
        .kind(EventType::Success)
        .methods("CIRA_Connected")
        .message("CIRA Connection Established");

    /// MPS's event when a device connected over CIRA but could not be recorded.
    pub const CIRA_CONNECTION_FAILED: EventDetails = EventDetails::new()
        .kind(EventType::Fail)
        .methods("CIRA_Connected")
        .message("CIRA Connection Failed");

    /// A device's CIRA connection closed. MPS never publishes this (its users asked for it:
    /// device-management-toolkit/mps issue 8); the names follow MPS's connect event.
    pub const CIRA_DISCONNECTED: EventDetails = EventDetails::new()
        .kind(EventType::Success)
        .methods("CIRA_Disconnected")
        .message("CIRA Connection Closed");

    /// MPS's event when a KVM, SOL or IDER redirection session started.
    pub const REDIRECTION_STARTED: EventDetails = EventDetails::new()
        .kind(EventType::Success)
        .methods("handleConnection")
        .message("Redirection session started");

    /// MPS's event when a redirection session ended.
    pub const REDIRECTION_ENDED: EventDetails = EventDetails::new()
        .kind(EventType::Success)
        .methods("handleClose")
        .message("Redirection session ended");

    /// Attaches these details to `response`, for the layer to read when it is ready.
    pub fn attach<B>(&'static self, response: &mut http::Response<B>) {
        response.extensions_mut().insert(Attached(self));
    }

    /// Names the device of this request's event, replacing the guid of the path (or giving
    /// one where the path has none, e.g. a device created from a request body). Only a guid
    /// in UUID form is kept; returns whether it was. Works with or without details.
    pub fn attach_guid<B>(response: &mut http::Response<B>, guid: &str) -> bool {
        match Guid::new(guid).filter(|g| g.as_str().is_some()) {
            Some(guid) => {
                response.extensions_mut().insert(AttachedGuid(guid));
                true
            }
            None => false,
        }
    }
}

impl Default for EventDetails {
    fn default() -> Self {
        Self::new()
    }
}

/// The guid attached to a response, if any.
pub(crate) fn attached_guid(extensions: &Extensions) -> Option<Guid> {
    extensions.get::<AttachedGuid>().map(|attached| attached.0)
}

/// The details attached to a response, if any; cheap when there are no extensions.
pub(crate) fn attached(extensions: &Extensions) -> Option<&'static EventDetails> {
    extensions.get::<Attached>().map(|attached| attached.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: EventDetails = EventDetails::new().message("a");

    #[test]
    fn a_response_carries_attached_details() {
        let mut response = http::Response::new(());
        assert!(attached(response.extensions()).is_none());
        A.attach(&mut response);
        assert!(std::ptr::eq(
            attached(response.extensions()).expect("attached"),
            &A
        ));
        // The constants attach as they are (promoted to statics), as the README shows.
        EventDetails::SILENT.attach(&mut response);
        assert!(attached(response.extensions()).expect("attached").silent);
    }
}
