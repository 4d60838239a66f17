//! W3C Trace Context: the `trace_id` and `span_id` of a request's `traceparent` header, so
//! that an operator can go from an MQTT event to the trace of its request.
//!
//! The request path only finds the header and copies its 48 id digits into the queued record
//! (no allocation, no decoding); the publisher checks them and writes them into the event as
//! they are. Anything that is not a valid `traceparent` is ignored, never copied into an event.

use http::HeaderMap;
use http::header::HeaderName;

/// The header, as W3C Trace Context names it.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Digits of a trace id.
const TRACE_DIGITS: usize = 32;

/// The id digits of a request's `traceparent` as sent (trace id, then parent id), or all
/// zero bytes for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceIds {
    digits: [u8; 48],
}

impl TraceIds {
    /// No trace.
    pub(crate) const NONE: Self = Self { digits: [0; 48] };

    /// The `traceparent` of `headers`, if it has the header's shape, else [`Self::NONE`].
    /// A scan of the few headers a request has costs less than hashing the name.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        if headers.is_empty() {
            return Self::NONE;
        }
        match headers.iter().find(|(name, _)| **name == TRACEPARENT) {
            Some((_, value)) => Self::capture(value.as_bytes()),
            None => Self::NONE,
        }
    }

    /// Takes the id digits of `version-traceid-parentid-flags` (`00-` + 32 + `-` + 16 + `-` +
    /// 2 hex digits; a later version may append fields after a `-`) where the shape is
    /// right; [`Self::ids`] checks the digits themselves.
    fn capture(value: &[u8]) -> Self {
        let Some(head) = value.get(..55) else {
            return Self::NONE;
        };
        let version = [head[0], head[1]];
        let more_allowed = value.len() == 55 || (version != *b"00" && value[55] == b'-');
        let shaped = head[2] == b'-' && head[35] == b'-' && head[52] == b'-';
        let known = version != *b"ff"
            && [head[0], head[1], head[53], head[54]]
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !(more_allowed && shaped && known) {
            return Self::NONE;
        }
        let mut digits = [0; 48];
        digits[..TRACE_DIGITS].copy_from_slice(&head[3..35]);
        digits[TRACE_DIGITS..].copy_from_slice(&head[36..52]);
        Self { digits }
    }

    /// The trace id (32 digits) and parent id (16 digits), if both are lowercase hex and
    /// neither is all zeros, as the standard requires.
    pub(crate) fn ids(&self) -> Option<(&str, &str)> {
        let hex = self
            .digits
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let (trace, span) = self.digits.split_at(TRACE_DIGITS);
        let zero = |id: &[u8]| id.iter().all(|b| *b == b'0');
        if !hex || zero(trace) || zero(span) {
            return None;
        }
        Some((
            std::str::from_utf8(trace).ok()?,
            std::str::from_utf8(span).ok()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn parse(value: &str) -> Option<(String, String)> {
        TraceIds::capture(value.as_bytes())
            .ids()
            .map(|(trace, span)| (trace.to_owned(), span.to_owned()))
    }

    #[test]
    fn the_standards_example_gives_its_ids_back() {
        assert_eq!(
            parse(VALID),
            Some((
                "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
                "00f067aa0ba902b7".to_owned()
            ))
        );
        let mut headers = HeaderMap::new();
        assert_eq!(TraceIds::of(&headers), TraceIds::NONE);
        headers.insert("accept", "*/*".parse().expect("a header value"));
        assert_eq!(TraceIds::of(&headers), TraceIds::NONE);
        headers.insert("traceparent", VALID.parse().expect("a header value"));
        assert!(TraceIds::of(&headers).ids().is_some());
        assert_eq!(TraceIds::NONE.ids(), None);
    }

    #[test]
    fn what_the_standard_refuses_is_ignored() {
        for value in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", // uppercase
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // zero trace id
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // zero parent id
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // version ff
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 with more
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", // more without a dash
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", // dash misplaced
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",  // short
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", // flags not hex
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7\0-1", // NUL
            "",
        ] {
            assert_eq!(parse(value), None, "{value:?}");
        }
        // A later version may add fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        assert!(parse(later).is_some());
    }

    proptest! {
        /// Whatever the header holds, ids that come out are lowercase hex of the right
        /// lengths, and they are the header's own digits (nothing else is ever copied).
        #[test]
        fn only_hex_ids_from_the_header_come_out(value in "[0-9a-fA-F-]{0,60}|.{0,70}") {
            if let Some((trace, span)) = parse(&value) {
                prop_assert_eq!(trace.len(), 32);
                prop_assert_eq!(span.len(), 16);
                prop_assert!(trace.bytes().chain(span.bytes()).all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
                prop_assert_eq!(&value[3..35], trace.as_str());
                prop_assert_eq!(&value[36..52], span.as_str());
            }
        }

        #[test]
        fn valid_ids_round_trip(trace in any::<u128>(), span in any::<u64>(), flags in any::<u8>()) {
            prop_assume!(trace != 0 && span != 0);
            let value = format!("00-{trace:032x}-{span:016x}-{flags:02x}");
            prop_assert_eq!(parse(&value), Some((format!("{trace:032x}"), format!("{span:016x}"))));
        }
    }
}
