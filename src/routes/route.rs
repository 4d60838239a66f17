//! The shape of one MPS route's description.

use http::Method;

/// MPS's text for an exception in a handler; ours for an error from the inner service.
pub(crate) const INTERNAL_ERROR: &str = "Internal Service Error";

/// One REST route of MPS.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) method: Method,
    /// The path with `:guid` for the device id, as MPS's docs write it.
    pub(crate) template: &'static str,
    /// The `methods` value: the AMT operation, or the handler name where MPS publishes none.
    pub(crate) operation: &'static str,
    /// Text of a success (HTTP < 400); falls back to [`GENERIC_SUCCESS`].
    pub(crate) success: Option<&'static str>,
    /// Text of a failure the handler reports itself (HTTP 4xx).
    pub(crate) soft_fail: Option<&'static str>,
    /// Text of an exception (HTTP 5xx).
    pub(crate) error: Option<&'static str>,
    /// Behind MPS's CIRA middleware: HTTP 404 means the device is not connected.
    pub(crate) cira: bool,
    /// What MPS itself publishes on this route, for the `mps` profile.
    pub(crate) mps: MpsEvents,
}

/// MPS's own events on a route, besides those `Route`'s `soft_fail` (HTTP 4xx) and `error`
/// (HTTP 500) texts and the CIRA check describe.
#[derive(Debug)]
pub(crate) struct MpsEvents {
    /// Text of the `request` event MPS publishes when the handler starts.
    pub(crate) request: Option<&'static str>,
    /// `methods` of that `request` event when it differs from the route's operation.
    pub(crate) request_operation: Option<&'static str>,
    /// Text of MPS's `success` event, if it publishes one.
    pub(crate) success: Option<&'static str>,
    /// Whether MPS publishes the route's `soft_fail` text for an HTTP 4xx (a device answer it
    /// could not use); health's only failure is an exception.
    pub(crate) soft_fail: bool,
    /// Whether MPS's request, success and soft-fail events carry the path's guid.
    pub(crate) guid: bool,
}

impl Route {
    /// Whether the path carries the device guid.
    pub(crate) fn has_guid(&self) -> bool {
        self.template.ends_with(":guid")
    }
}
