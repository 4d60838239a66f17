//! [`EventData`]: a small JSON object a handler adds to the event of its own request, or
//! that goes with an event published through the handle.
//!
//! The value is serialized once, where it is made (by the handler, off every request that
//! does not use it), checked to be an object of at most [`EventData::MAX_LEN`] bytes, and
//! carried through the queue behind one pointer; the publisher copies its bytes into the
//! event as they are.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::EventDataError;

/// A JSON object published as the event's `data` field, chosen by the handler.
///
/// ```
/// use http::{Response, StatusCode};
/// use mps_mqtt_events::EventData;
///
/// // The device answered the power action with ReturnValue 2 (not ready).
/// let data = EventData::new(&serde_json::json!({"returnValue": 2, "action": 10}))?;
/// assert_eq!(data.as_json(), r#"{"action":10,"returnValue":2}"#);
///
/// let mut response = Response::new("{}");
/// *response.status_mut() = StatusCode::BAD_REQUEST;
/// data.attach(&mut response);
/// # Ok::<(), mps_mqtt_events::EventDataError>(())
/// ```
///
/// Anything in it is published as it is: never put a secret, a password or a request body
/// in it.
#[derive(Clone)]
pub struct EventData(Box<RawValue>);

/// The extension a response carries: the data its handler adds, boxed so that the record
/// carrying it through the queue grows by one pointer only.
#[derive(Clone)]
struct Attached(Box<EventData>);

impl EventData {
    /// The most bytes a value may take as compact JSON. With every queue slot holding data
    /// of this size the queue stays bounded, at about `queue_capacity` KiB more.
    pub const MAX_LEN: usize = 1024;

    /// Serializes `value`, which must be a JSON object of at most [`Self::MAX_LEN`] bytes.
    ///
    /// # Errors
    ///
    /// [`EventDataError::NotAnObject`], [`EventDataError::TooLong`], or
    /// [`EventDataError::Serialize`] when `value` cannot be written as JSON.
    pub fn new<T: Serialize + ?Sized>(value: &T) -> Result<Self, EventDataError> {
        let raw = serde_json::value::to_raw_value(value)?;
        let json = raw.get();
        let found = match json.as_bytes().first() {
            Some(b'{') => None,
            Some(b'[') => Some("an array"),
            Some(b'"') => Some("a string"),
            Some(b't' | b'f') => Some("a boolean"),
            Some(b'n') => Some("null"),
            _ => Some("a number"),
        };
        if let Some(found) = found {
            return Err(EventDataError::NotAnObject { found });
        }
        if json.len() > Self::MAX_LEN {
            return Err(EventDataError::TooLong {
                len: json.len(),
                max: Self::MAX_LEN,
            });
        }
        Ok(Self(raw))
    }

    /// The object as compact JSON, as it is published.
    #[must_use]
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// Attaches this data to `response`, for the layer to take when it is ready: the
    /// request's event (in the `mps` profile, its outcome event) carries it as `data`.
    pub fn attach<B>(self, response: &mut http::Response<B>) {
        response.extensions_mut().insert(Attached(Box::new(self)));
    }

    pub(crate) fn raw(&self) -> &RawValue {
        &self.0
    }
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl Eq for EventData {}

impl std::fmt::Debug for EventData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EventData").field(&self.as_json()).finish()
    }
}

/// Takes the data attached to a response, if any; cheap when there are no extensions.
pub(crate) fn take(extensions: &mut http::Extensions) -> Option<Box<EventData>> {
    extensions.remove::<Attached>().map(|attached| attached.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_is_kept_as_compact_json() {
        let data = EventData::new(&json!({ "a": [1, 2], "b": "x" })).expect("an object");
        assert_eq!(data.as_json(), r#"{"a":[1,2],"b":"x"}"#);
    }

    #[test]
    fn anything_but_an_object_is_refused_by_name() {
        for (value, found) in [
            (json!([1]), "an array"),
            (json!("s"), "a string"),
            (json!(true), "a boolean"),
            (json!(null), "null"),
            (json!(-1.5), "a number"),
        ] {
            let error = EventData::new(&value).expect_err("not an object");
            assert!(
                matches!(error, EventDataError::NotAnObject { found: f } if f == found),
                "{value}: {error}"
            );
        }
    }

    #[test]
    fn a_value_longer_than_max_len_is_refused_with_its_length() {
        let fits = "x".repeat(EventData::MAX_LEN - r#"{"k":""}"#.len());
        assert!(
            EventData::new(&json!({ "k": fits })).is_ok(),
            "exactly MAX_LEN"
        );
        let error = EventData::new(&json!({ "k": format!("{fits}y") })).expect_err("too long");
        assert_eq!(
            error.to_string(),
            "event data is 1025 bytes as JSON, more than the 1024 allowed; publish a summary or an id instead"
        );
    }

    #[test]
    fn the_layer_takes_what_the_handler_attached() {
        let mut response = http::Response::new(());
        assert!(take(response.extensions_mut()).is_none());
        let data = EventData::new(&json!({ "n": 1 })).expect("an object");
        data.clone().attach(&mut response);
        assert_eq!(take(response.extensions_mut()).as_deref(), Some(&data));
        assert!(take(response.extensions_mut()).is_none(), "taken once");
    }
}
