//! Configuration: environment variable names, defaults, the validated [`Config`], and pure
//! parsing of each value.

use std::time::Duration;

use crate::error::ConfigError;

pub(crate) use crate::address::{
    BrokerAddress, DEFAULT_TLS_PORT, Scheme, Secret, parse_address, redact,
};

/// Broker address, `mqtt://host[:port]`; unset or empty turns eventing off.
pub(crate) const ENV_ADDRESS: &str = "MPS_MQTT_ADDRESS";
/// Topic the events are published on.
pub(crate) const ENV_TOPIC: &str = "MPS_MQTT_TOPIC";
/// QoS the events are published with, `0` or `1`.
pub(crate) const ENV_QOS: &str = "MPS_MQTT_QOS";
/// MQTT client id.
pub(crate) const ENV_CLIENT_ID: &str = "MPS_MQTT_CLIENT_ID";
/// Topic of the retained online/offline status (birth message and last will); unset: none.
pub(crate) const ENV_STATUS_TOPIC: &str = "MPS_MQTT_STATUS_TOPIC";
/// `1` publishes events retained, so a new subscriber gets the last one of each topic.
pub(crate) const ENV_RETAIN: &str = "MPS_MQTT_RETAIN";
/// Route templates whose events are left out, comma-separated.
pub(crate) const ENV_EXCLUDE: &str = "MPS_MQTT_EXCLUDE";
/// Event types published, comma-separated (`request`, `success`, `fail`).
pub(crate) const ENV_ONLY: &str = "MPS_MQTT_ONLY";
/// Which events a request publishes: `all` or `mps`.
pub(crate) const ENV_PROFILE: &str = "MPS_MQTT_PROFILE";
/// Number of events the queue holds before it drops new ones.
pub(crate) const ENV_QUEUE_CAPACITY: &str = "MPS_MQTT_QUEUE_CAPACITY";

/// The topic MPS publishes its events on.
pub(crate) const DEFAULT_TOPIC: &str = "mps/events";
/// Events the queue holds by default: under 1 MiB reserved up front.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// The largest queue capacity accepted (the queue is allocated up front).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// First delay before reconnecting to a broker that went away or never answered.
pub(crate) const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Longest delay between reconnect attempts: a broker that returns is found within it.
pub(crate) const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(1);
/// MQTT keep-alive: a broker that stops answering is detected within 1.5 times it.
pub(crate) const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a connection attempt (TCP connect, CONNECT, CONNACK) may take.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The MQTT quality of service events are published with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Qos {
    /// QoS 0, as MPS publishes: no acknowledgement, so an event written just before the
    /// connection breaks can vanish; `published` is then the only delivery count.
    AtMostOnce,
    /// QoS 1 (the default): the broker acknowledges each event, so `acknowledged` counts what
    /// really arrived and unacknowledged events are sent again after a reconnect.
    #[default]
    AtLeastOnce,
}

impl Qos {
    pub(crate) fn to_rumqttc(self) -> rumqttc::QoS {
        match self {
            Self::AtMostOnce => rumqttc::QoS::AtMostOnce,
            Self::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
        }
    }
}

/// Which events a request publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Profile {
    /// One event for every request/response pair (the default): MPS's texts where MPS has
    /// them, the handler's name where MPS publishes nothing, `unknown` outside MPS's routes,
    /// plus `id` and `http`.
    #[default]
    All,
    /// Exactly the stream MPS 2.13.22 publishes for the same requests: its `request` events
    /// before the outcome, nothing where MPS publishes nothing (device CRUD, authorize,
    /// health, version, validation errors, paths outside its routes), and MPS's five fields
    /// only (see [`Builder::mps_id_and_http`](crate::Builder::mps_id_and_http)). The README's
    /// "Compatibility with MPS" lists the deliberate differences.
    Mps,
}

pub(crate) fn parse_profile(name: &'static str, raw: &str) -> Result<Profile, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "" | "all" => Ok(Profile::All),
        "mps" => Ok(Profile::Mps),
        _ => Err(ConfigError::InvalidProfile {
            name,
            value: raw.to_owned(),
        }),
    }
}

/// The MQTT login: from the address, or from `MPS_MQTT_USERNAME` and a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: Option<Secret>,
}

/// A file named by a variable or a setter, remembered with that name for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamedPath {
    pub(crate) name: &'static str,
    pub(crate) path: std::path::PathBuf,
}

/// TLS settings of an `mqtts://` address. Files are read at startup, to report problems, and
/// again at every connection, so that renewed certificates are used without a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    /// PEM file of the CA certificates to trust instead of the platform's roots.
    pub(crate) ca_file: Option<NamedPath>,
    /// PEM files of the client certificate (chain) and its private key, for mutual TLS.
    pub(crate) client: Option<(NamedPath, NamedPath)>,
    /// Skip verifying the broker's certificate (test brokers only).
    pub(crate) insecure: bool,
    /// ALPN protocols offered, e.g. `mqtt` for AWS IoT Core on port 443.
    pub(crate) alpn: Vec<Vec<u8>>,
}

/// A validated configuration; built by [`Builder::build`](crate::Builder::build).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) broker: BrokerAddress,
    pub(crate) topic: crate::topic::TopicTemplate,
    /// Routes left out and event types kept.
    pub(crate) filter: crate::filter::Filter,
    /// Where the retained online/offline status goes, if anywhere.
    pub(crate) status_topic: Option<String>,
    /// Events published with the retain flag.
    pub(crate) retain: bool,
    pub(crate) qos: Qos,
    pub(crate) client_id: String,
    pub(crate) queue_capacity: usize,
    pub(crate) reconnect: (Duration, Duration),
    pub(crate) keep_alive: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) profile: Profile,
    /// `id` and `http` in the events of the `mps` profile too.
    pub(crate) mps_id_and_http: bool,
    /// Present exactly when the scheme is `mqtts` or `wss`.
    pub(crate) tls: Option<TlsSettings>,
}

impl Config {
    /// Logs where events go as the publisher starts, and warns about a connection that is
    /// not what it seems (certificates unchecked, plain text on the TLS port).
    pub(crate) fn log_start(&self) {
        tracing::info!(
            broker = %self.broker,
            topic = %self.topic.as_str(),
            qos = ?self.qos,
            client_id = %self.client_id,
            "MQTT eventing on"
        );
        if self.tls.as_ref().is_some_and(|tls| tls.insecure) {
            tracing::warn!(
                "MPS_MQTT_TLS_INSECURE is set: the broker's certificate will not be verified; \
                 use this with test brokers only"
            );
        }
        if self.tls.is_none() && self.broker.port == DEFAULT_TLS_PORT {
            tracing::warn!(
                broker = %self.broker,
                "the connection to the broker is unencrypted (mqtt:// on port 8883, the TLS \
                 port); use mqtts:// for TLS"
            );
        }
    }
}

pub(crate) fn validate_client_id(name: &'static str, id: String) -> Result<String, ConfigError> {
    let reason = if id.is_empty() {
        "the client id is empty"
    } else if id.contains('\0') {
        "the client id contains NUL"
    } else if id.len() > usize::from(u16::MAX) {
        "the client id is longer than 65535 bytes"
    } else {
        return Ok(id);
    };
    Err(ConfigError::InvalidClientId {
        name,
        value: id,
        reason,
    })
}

pub(crate) fn parse_qos(name: &'static str, raw: &str) -> Result<Qos, ConfigError> {
    match raw.trim() {
        "0" => Ok(Qos::AtMostOnce),
        "1" => Ok(Qos::AtLeastOnce),
        _ => Err(ConfigError::InvalidQos {
            name,
            value: raw.to_owned(),
        }),
    }
}

pub(crate) fn parse_capacity(name: &'static str, raw: &str) -> Result<usize, ConfigError> {
    let invalid = || ConfigError::InvalidQueueCapacity {
        name,
        value: raw.to_owned(),
        max: MAX_QUEUE_CAPACITY,
    };
    let capacity = raw.trim().parse::<usize>().map_err(|_| invalid())?;
    check_capacity(name, capacity).map_err(|_| invalid())
}

pub(crate) fn check_capacity(name: &'static str, capacity: usize) -> Result<usize, ConfigError> {
    if (1..=MAX_QUEUE_CAPACITY).contains(&capacity) {
        Ok(capacity)
    } else {
        Err(ConfigError::InvalidQueueCapacity {
            name,
            value: capacity.to_string(),
            max: MAX_QUEUE_CAPACITY,
        })
    }
}

/// `mps-<host>-<8 hex digits>`, at most 23 bytes (the length every MQTT 3.1.1 broker must
/// accept).
pub(crate) fn default_client_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    let host = if host.is_empty() {
        "host".to_owned()
    } else {
        host
    };
    format!("mps-{host}-{:08x}", crate::random::u64() as u32)
}

#[cfg(test)]
mod tests;
