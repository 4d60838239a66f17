//! The `mps` profile: the events MPS 2.13.22 itself publishes for a request, route by route
//! and outcome by outcome, as pure functions over the route table. MPS publishes a `request`
//! event when a handler starts and an outcome event when it ends; some routes publish only
//! one of them, some nothing, and its CIRA check answers for a device that is not connected.

use crate::record::Outcome;
use crate::routes::{INTERNAL_ERROR, Route};

/// Where the `mps` profile deliberately differs from MPS 2.13.22, one line each: what MPS does
/// that an HTTP status alone cannot tell, and what is left out. The README's "Differences
/// from MPS" lists exactly these (a test checks it).
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const DIFFERENCES: [&str; 6] = [
    "A 4xx on a route with a soft-fail text publishes that fail unless the handler attaches EventDetails::SILENT; MPS stays silent when its validator rejected the request, which the status alone cannot tell.",
    "DELETE /api/v1/amt/alarmOccurrences/:guid answering 404 publishes Device Not Found (the CIRA check) unless the handler attaches its own details; MPS also answers 404 for an alarm the device does not have.",
    "GET /api/v1/amt/features/:guid answering 500 publishes its request event; MPS publishes it only if the handler's three device reads succeeded before the error.",
    "A cancelled request (the client went away) publishes nothing; MPS would still publish what its handler ends with.",
    "A status of 501 to 599 other than 500 publishes nothing, as MPS's only such answer (health's 503) is silent; MPS's exceptions are always 500.",
    "MPS's second event after some successes (Internal Service Error from later work in the same handler) is not reproduced: one outcome event per request.",
];

/// `methods` of MPS's CIRA check event.
pub(crate) const CIRA_OPERATION: &str = "CIRA_Connection";
/// `message` of MPS's CIRA check event.
pub(crate) const DEVICE_NOT_FOUND: &str = "Device Not Found";

/// Which events MPS publishes for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    /// The `request` event of the handler's start.
    pub(crate) request: bool,
    /// The event of the outcome.
    pub(crate) outcome: bool,
}

/// What one event of the profile says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Said {
    pub(crate) kind: Kind,
    pub(crate) message: &'static str,
    pub(crate) operation: &'static str,
    /// Whether the event carries the path's guid.
    pub(crate) guid: bool,
}

/// The `type` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Request,
    Success,
    Fail,
}

/// HTTP 500, a service error or a panic: what MPS's handlers catch as an exception.
fn is_exception(outcome: Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Status(500) | Outcome::ServiceError | Outcome::Panicked
    )
}

/// The events MPS publishes for a request to `route` that ended as `outcome`. Nothing outside
/// MPS's routes, for a cancelled request (MPS would report the handler's end, which this layer
/// cannot see), or for a status MPS answers silently.
pub(crate) fn plan(route: Option<&Route>, outcome: Outcome) -> Plan {
    let Some(route) = route else {
        return Plan::default();
    };
    let (ran, event) = match outcome {
        Outcome::Status(404) if route.cira => (false, true),
        Outcome::Status(status) if status < 400 => (true, route.mps.success.is_some()),
        // A 4xx is a soft failure where the route has one; otherwise a validation error,
        // answered before the handler runs, silently.
        Outcome::Status(status) if status < 500 => (route.mps.soft_fail, route.mps.soft_fail),
        other if is_exception(other) => (true, route.error.is_some()),
        _ => (false, false),
    };
    Plan {
        request: ran && route.mps.request.is_some(),
        outcome: event,
    }
}

/// What the event of `outcome` on `route` says; `Outcome::Started` is the `request` event.
/// Only called for events [`plan`] asked for.
pub(crate) fn describe(route: &Route, outcome: Outcome) -> Said {
    let operation = route.operation;
    let said = |kind, message: Option<&'static str>, guid| Said {
        kind,
        message: message.unwrap_or(INTERNAL_ERROR),
        operation,
        guid,
    };
    match outcome {
        Outcome::Started => Said {
            operation: route.mps.request_operation.unwrap_or(operation),
            ..said(Kind::Request, route.mps.request, route.mps.guid)
        },
        Outcome::Status(404) if route.cira => Said {
            kind: Kind::Fail,
            message: DEVICE_NOT_FOUND,
            operation: CIRA_OPERATION,
            guid: true,
        },
        Outcome::Status(status) if status < 400 => {
            said(Kind::Success, route.mps.success, route.mps.guid)
        }
        Outcome::Status(status) if status < 500 => {
            said(Kind::Fail, route.soft_fail, route.mps.guid)
        }
        // MPS's exception handlers leave the guid out, although it is known.
        _ => said(Kind::Fail, route.error, false),
    }
}

#[cfg(test)]
mod tests;
