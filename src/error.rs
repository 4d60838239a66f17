//! Errors an operator can act on.

use std::time::Duration;

/// A configuration value that cannot be used.
///
/// Every message names the setting (the environment variable, or the [`Builder`] setter that
/// was given the value), shows the value with any password replaced by `***`, and says what is
/// accepted, e.g.
///
/// ```text
/// invalid MPS_MQTT_ADDRESS "htp://mosquitto:8883": unsupported scheme "htp"; expected mqtt://host[:port], mqtts://host[:port] or tcp://host[:port]
/// ```
///
/// [`Builder`]: crate::Builder
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The broker address is not a URL this crate can connect to.
    ///
    /// Fix the value: `mqtt://host[:port]` or `tcp://host[:port]` (port 1883 when omitted),
    /// `mqtts://host[:port]` (TLS, port 8883 when omitted; IPv6 literals in brackets), or
    /// unset it to turn eventing off.
    #[error(
        "invalid {name} {value:?}: {reason}; expected mqtt://host[:port], mqtts://host[:port] or tcp://host[:port]"
    )]
    InvalidAddress {
        /// The environment variable or setter that held the value.
        name: &'static str,
        /// The value as given, password replaced by `***`.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broker address asks for a transport that this build of the crate leaves out.
    ///
    /// Enable the named cargo feature of `mps-mqtt-events` in the server's `Cargo.toml`; the
    /// crate never falls back to plain text where TLS was asked for.
    #[error(
        "invalid {name} {value:?}: scheme {scheme:?} needs the cargo feature {feature:?} of mps-mqtt-events; enable it, e.g. mps-mqtt-events = {{ features = [{feature:?}] }}"
    )]
    FeatureDisabled {
        /// The environment variable or setter that held the value.
        name: &'static str,
        /// The value as given, password replaced by `***`.
        value: String,
        /// The scheme that was asked for.
        scheme: String,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
    /// A certificate, key, CA or password file cannot be used.
    ///
    /// Fix the file or the path: it must exist, be readable, and hold what the setting asks
    /// for in PEM form (a certificate chain, a private key in PKCS#8, PKCS#1 or SEC1 form
    /// matching the certificate, or CA certificates).
    #[error("invalid {name} {path:?}: {reason}")]
    InvalidFile {
        /// The environment variable or setter that named the file.
        name: &'static str,
        /// The path as given.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The settings contradict each other or leave out a required part, e.g. credentials
    /// given both in `MPS_MQTT_ADDRESS` and in `MPS_MQTT_USERNAME`, or a CA file for a plain
    /// `mqtt://` address.
    ///
    /// Keep exactly one source for each setting; the crate refuses rather than guessing.
    #[error("conflicting MQTT settings: {reason}")]
    Conflict {
        /// What conflicts, and how to resolve it.
        reason: String,
    },
    /// The topic cannot be published to.
    ///
    /// Give a topic name such as `mps/events`: not empty, no `+` or `#` wildcards, no NUL, not
    /// starting with `$`, at most 65535 bytes.
    #[error("invalid {name} {value:?}: {reason}")]
    InvalidTopic {
        /// The environment variable or setter that held the value.
        name: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The QoS level is not one this crate publishes with.
    #[error("invalid {name} {value:?}: expected 0 (at most once) or 1 (at least once)")]
    InvalidQos {
        /// The environment variable that held the value.
        name: &'static str,
        /// The value as given.
        value: String,
    },
    /// The MQTT client id cannot be used.
    ///
    /// Give a non-empty id of at most 65535 bytes without NUL, unique per process: two clients
    /// with one id disconnect each other at the broker.
    #[error("invalid {name} {value:?}: {reason}")]
    InvalidClientId {
        /// The environment variable or setter that held the value.
        name: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The queue capacity is not a usable number of events.
    #[error("invalid {name} {value:?}: expected a whole number of events from 1 to {max}")]
    InvalidQueueCapacity {
        /// The environment variable or setter that held the value.
        name: &'static str,
        /// The value as given.
        value: String,
        /// The largest capacity accepted.
        max: usize,
    },
    /// The reconnect delays set with
    /// [`Builder::reconnect_backoff`](crate::Builder::reconnect_backoff) cannot work.
    #[error("invalid reconnect_backoff ({min:?}, {max:?}): expected 0 < min <= max")]
    InvalidBackoff {
        /// The first delay given.
        min: Duration,
        /// The longest delay given.
        max: Duration,
    },
    /// The keep-alive set with [`Builder::keep_alive`](crate::Builder::keep_alive) cannot be
    /// sent in MQTT's CONNECT packet.
    #[error("invalid keep_alive {keep_alive:?}: expected whole seconds from 1 s to 65535 s")]
    InvalidKeepAlive {
        /// The keep-alive given.
        keep_alive: Duration,
    },
    /// The connect timeout set with
    /// [`Builder::connect_timeout`](crate::Builder::connect_timeout) is zero, so no connection
    /// could ever complete.
    #[error("invalid connect_timeout 0s: expected a positive duration, e.g. 5s")]
    InvalidConnectTimeout,
    /// The profile is not one this crate knows.
    #[error(
        "invalid {name} {value:?}: expected all (one event per request) or mps (MPS's own events)"
    )]
    InvalidProfile {
        /// The environment variable.
        name: &'static str,
        /// The value as given.
        value: String,
    },
    /// A route or event type to filter by is not one this crate knows.
    #[error("invalid {name} {value:?}: {reason}")]
    InvalidFilter {
        /// The environment variable or setter that held the value.
        name: &'static str,
        /// The value as given.
        value: String,
        /// What is accepted.
        reason: &'static str,
    },
    /// A yes/no variable holds something else.
    #[error("invalid {name} {value:?}: expected 1 or 0 (or true/false, yes/no, on/off)")]
    InvalidFlag {
        /// The environment variable.
        name: &'static str,
        /// The value as given.
        value: String,
    },
    /// An environment variable holds bytes that are not UTF-8.
    #[error("invalid {name}: the value is not valid UTF-8")]
    NotUnicode {
        /// The environment variable.
        name: &'static str,
    },
}

/// Why [`PublisherHandle::flush`](crate::PublisherHandle::flush) returned before everything
/// queued was delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The timeout passed first; the events are still queued or in flight and will be sent
    /// when the broker allows. Check [`Stats::connected`](crate::Stats::connected); consider a
    /// longer timeout.
    #[error("flush timed out after {timeout:?} with {pending} events not yet delivered")]
    Timeout {
        /// The timeout that passed.
        timeout: Duration,
        /// Events still queued or in flight when it passed.
        pending: u64,
    },
    /// The publisher task is not running (it was shut down or it stopped), so queued events
    /// will not be delivered. See [`Stats::failed`](crate::Stats::failed).
    #[error("the publisher is not running: {reason}")]
    Stopped {
        /// Why it is not running.
        reason: String,
    },
}

/// Why [`PublisherHandle::try_publish`](crate::PublisherHandle::try_publish) dropped an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryPublishError {
    /// The queue is full (the broker is slow or away); the event is counted in
    /// [`Stats::dropped_queue_full`](crate::Stats::dropped_queue_full). Consider a larger
    /// queue capacity.
    #[error("the MQTT event queue is full; the event was dropped")]
    QueueFull,
    /// The publisher was shut down or stopped; the event is counted in
    /// [`Stats::dropped_closed`](crate::Stats::dropped_closed).
    #[error("the MQTT event publisher is not running; the event was dropped")]
    Closed,
}

/// Why [`EventData::new`](crate::EventData::new) refused a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventDataError {
    /// The value is not a JSON object (`{...}`); wrap it, e.g. `{"returnValue": 2}`.
    #[error("event data must be a JSON object, not {found}; wrap the value in an object")]
    NotAnObject {
        /// What the value is instead: `an array`, `a string`, `a number`, ...
        found: &'static str,
    },
    /// The value is longer than [`EventData::MAX_LEN`](crate::EventData::MAX_LEN) bytes as
    /// compact JSON; events are notifications, not payload transport: publish an id or a
    /// summary instead.
    #[error(
        "event data is {len} bytes as JSON, more than the {max} allowed; publish a summary or an id instead"
    )]
    TooLong {
        /// Its length as compact JSON.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// The value could not be serialized (a map with non-string keys, a failing `Serialize`
    /// implementation).
    #[error("event data could not be serialized to JSON: {0}")]
    Serialize(#[from] serde_json::Error),
}
