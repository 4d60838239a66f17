//! What the benches share.

use http::{HeaderMap, HeaderValue};

/// What a browser or curl sends with an API call, and, with `traceparent`, a W3C trace
/// context as an OpenTelemetry-instrumented client adds it.
pub(crate) fn typical_headers(traceparent: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("host", "mps.example.com:3000"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.signature"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if traceparent {
        headers.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
    }
    headers
}
