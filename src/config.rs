//! Configuration: environment variables, their defaults, and pure parsing of each value.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::error::ConfigError;

/// Broker address, `mqtt://host[:port]`; unset or empty turns eventing off.
pub const ENV_ADDRESS: &str = "MPS_MQTT_ADDRESS";
/// Topic the events are published on.
pub const ENV_TOPIC: &str = "MPS_MQTT_TOPIC";
/// QoS the events are published with, `0` or `1`.
pub const ENV_QOS: &str = "MPS_MQTT_QOS";
/// MQTT client id.
pub const ENV_CLIENT_ID: &str = "MPS_MQTT_CLIENT_ID";
/// Number of events the queue holds before it drops new ones.
pub const ENV_QUEUE_CAPACITY: &str = "MPS_MQTT_QUEUE_CAPACITY";

/// The topic MPS publishes its events on.
pub const DEFAULT_TOPIC: &str = "mps/events";
/// Broker port used when the address names none.
pub const DEFAULT_PORT: u16 = 1883;
/// Events the queue holds by default: under 1 MiB reserved up front.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;
/// The largest queue capacity accepted (the queue is allocated up front).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// First delay before reconnecting to a broker that went away or never answered.
pub const DEFAULT_RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Longest delay between reconnect attempts: a broker that returns is found within it.
pub const DEFAULT_RECONNECT_MAX: Duration = Duration::from_secs(1);

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

/// Where the broker is, as parsed from `MPS_MQTT_ADDRESS`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BrokerAddress {
    /// Host name or IP literal; IPv6 in brackets, as rumqttc resolves `host:port`.
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<(String, String)>,
}

impl fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mqtt://")?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:***@")?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A validated configuration; built by [`Builder::build`](crate::Builder::build).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) broker: BrokerAddress,
    pub(crate) topic: String,
    pub(crate) qos: Qos,
    pub(crate) client_id: String,
    pub(crate) queue_capacity: usize,
    pub(crate) reconnect: (Duration, Duration),
}

/// A raw value and the name of the setting it came from, for error messages.
#[derive(Clone)]
struct Setting<T> {
    name: &'static str,
    value: T,
}

/// Sets up an [`MqttEventLayer`](crate::MqttEventLayer) in code.
///
/// Start from [`MqttEventLayer::builder`](crate::MqttEventLayer::builder) (defaults, eventing
/// off) or [`Builder::from_env`] (the environment); setters called afterwards override what
/// the environment said. Values are checked by [`build`](Builder::build).
///
/// ```
/// use mps_mqtt_events::{MqttEventLayer, Qos};
///
/// let layer = MqttEventLayer::builder()
///     .address("mqtt://127.0.0.1:1883")
///     .topic("mps/events")
///     .qos(Qos::AtLeastOnce)
///     .queue_capacity(1024)
///     .build()?;
/// assert!(layer.is_enabled());
/// # Ok::<(), mps_mqtt_events::ConfigError>(())
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct Builder {
    address: Option<Setting<String>>,
    topic: Option<Setting<String>>,
    qos: Qos,
    client_id: Option<Setting<String>>,
    queue_capacity: Option<Setting<usize>>,
    reconnect: Option<(Duration, Duration)>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("address", &self.address.as_ref().map(|a| redact(&a.value)))
            .field("topic", &self.topic.as_ref().map(|t| &t.value))
            .field("qos", &self.qos)
            .field("client_id", &self.client_id.as_ref().map(|c| &c.value))
            .field(
                "queue_capacity",
                &self.queue_capacity.as_ref().map(|c| c.value),
            )
            .field("reconnect_backoff", &self.reconnect)
            .finish()
    }
}

impl Builder {
    /// A builder holding what the environment says: [`ENV_ADDRESS`], [`ENV_TOPIC`],
    /// [`ENV_QOS`], [`ENV_CLIENT_ID`] and [`ENV_QUEUE_CAPACITY`]. Unset variables keep their
    /// defaults.
    ///
    /// # Errors
    ///
    /// A variable that is not UTF-8, a QoS other than `0` or `1`, or a queue capacity that is
    /// not a number. The address, topic and client id are checked by [`build`](Self::build).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { name }),
        })
    }

    /// [`from_env`](Self::from_env) over any lookup function, so parsing is testable without
    /// touching the process environment.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&'static str) -> Result<Option<String>, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut builder = Self::default();
        if let Some(value) = lookup(ENV_ADDRESS)? {
            builder.address = Some(Setting {
                name: ENV_ADDRESS,
                value,
            });
        }
        if let Some(value) = lookup(ENV_TOPIC)? {
            builder.topic = Some(Setting {
                name: ENV_TOPIC,
                value,
            });
        }
        if let Some(value) = lookup(ENV_QOS)? {
            builder.qos = parse_qos(ENV_QOS, &value)?;
        }
        if let Some(value) = lookup(ENV_CLIENT_ID)? {
            builder.client_id = Some(Setting {
                name: ENV_CLIENT_ID,
                value,
            });
        }
        if let Some(value) = lookup(ENV_QUEUE_CAPACITY)? {
            let capacity = parse_capacity(ENV_QUEUE_CAPACITY, &value)?;
            builder.queue_capacity = Some(Setting {
                name: ENV_QUEUE_CAPACITY,
                value: capacity,
            });
        }
        Ok(builder)
    }

    /// The broker, in the syntax of `MPS_MQTT_ADDRESS`: `mqtt://host[:port]` or
    /// `tcp://host[:port]`, plain TCP whatever the port, 1883 when omitted; IPv6 literals in
    /// brackets; `user:password@` before the host logs in. An empty string, `false` or `0`
    /// turns eventing off, as in MPS. Overrides [`ENV_ADDRESS`]. Defaults to off.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(Setting {
            name: "address",
            value: address.into(),
        });
        self
    }

    /// The topic events are published on. Overrides [`ENV_TOPIC`]. Defaults to
    /// [`DEFAULT_TOPIC`], `mps/events`, where existing MPS subscribers listen.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(Setting {
            name: "topic",
            value: topic.into(),
        });
        self
    }

    /// The QoS events are published with. Overrides [`ENV_QOS`]. Defaults to
    /// [`Qos::AtLeastOnce`], so that delivery is acknowledged and counted.
    pub fn qos(mut self, qos: Qos) -> Self {
        self.qos = qos;
        self
    }

    /// The MQTT client id. Overrides [`ENV_CLIENT_ID`]. Defaults to `mps-<host>-<random>`,
    /// new for each process, so that replicas never disconnect each other at the broker.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(Setting {
            name: "client_id",
            value: client_id.into(),
        });
        self
    }

    /// How many events wait for the broker before new ones are dropped (and counted in
    /// [`Stats::dropped_queue_full`](crate::Stats::dropped_queue_full)). Overrides
    /// [`ENV_QUEUE_CAPACITY`]. Defaults to [`DEFAULT_QUEUE_CAPACITY`].
    ///
    /// The queue is allocated up front, about 100 bytes an event, and is the only buffer
    /// that grows while the broker is away: choose the number of events to keep through
    /// the longest outage you want to bridge (requests per second × seconds), within the
    /// memory you can spare.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = Some(Setting {
            name: "queue_capacity",
            value: capacity,
        });
        self
    }

    /// Delays between reconnect attempts: the first is `min`, each failed attempt doubles it
    /// up to `max`, and each delay is drawn at random from its upper half so that replicas
    /// spread out. A connection that held for 10 s resets the delay to `min`; one that breaks
    /// sooner (a duplicate client id, a broker that accepts then closes) keeps doubling it, so
    /// nothing reconnects in a tight loop. Defaults to [`DEFAULT_RECONNECT_MIN`] (100 ms) and
    /// [`DEFAULT_RECONNECT_MAX`] (1 s): a broker that returns is used again within a second,
    /// and a broker that is down sees about one attempt a second from each process.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect = Some((min, max));
        self
    }

    /// Checks every value and builds the layer; it is disabled when no address was given.
    ///
    /// # Errors
    ///
    /// The first value that cannot be used, named as the setting it came from.
    pub fn build(self) -> Result<crate::MqttEventLayer, ConfigError> {
        Ok(match self.into_config()? {
            Some(config) => crate::MqttEventLayer::with_config(config),
            None => crate::MqttEventLayer::disabled(),
        })
    }

    /// Like [`build`](Self::build), but hands back the publisher task instead of letting the
    /// first request spawn it on the runtime that serves it: spawn the
    /// [`PublisherTask`](crate::PublisherTask) where the MQTT work should run (its own small
    /// runtime, a dedicated thread). When eventing is off, the task is already finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mps_mqtt_events::ConfigError> {
    /// let (layer, task) = mps_mqtt_events::MqttEventLayer::builder()
    ///     .address("mqtt://127.0.0.1:1883")
    ///     .build_pair()?;
    /// tokio::spawn(task);
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_pair(self) -> Result<(crate::MqttEventLayer, crate::PublisherTask), ConfigError> {
        let layer = self.build()?;
        let task = layer.take_task();
        Ok((layer, task))
    }

    /// Validates the settings; `None` means eventing is off.
    pub(crate) fn into_config(self) -> Result<Option<Config>, ConfigError> {
        let Some(address) = self.address else {
            return Ok(None);
        };
        let Some(broker) = parse_address(address.name, &address.value)? else {
            return Ok(None);
        };
        let topic = match self.topic {
            Some(t) => validate_topic(t.name, t.value)?,
            None => DEFAULT_TOPIC.to_owned(),
        };
        let client_id = match self.client_id {
            Some(c) => validate_client_id(c.name, c.value)?,
            None => default_client_id(),
        };
        let queue_capacity = match self.queue_capacity {
            Some(c) => check_capacity(c.name, c.value)?,
            None => DEFAULT_QUEUE_CAPACITY,
        };
        let reconnect = match self.reconnect {
            Some((min, max)) if min.is_zero() || max < min => {
                return Err(ConfigError::InvalidBackoff { min, max });
            }
            Some(backoff) => backoff,
            None => (DEFAULT_RECONNECT_MIN, DEFAULT_RECONNECT_MAX),
        };
        Ok(Some(Config {
            broker,
            topic,
            qos: self.qos,
            client_id,
            queue_capacity,
            reconnect,
        }))
    }
}

/// Parses a broker address; `Ok(None)` means eventing is off.
pub(crate) fn parse_address(
    name: &'static str,
    raw: &str,
) -> Result<Option<BrokerAddress>, ConfigError> {
    let value = raw.trim();
    // MPS treats every falsy value as "off": unset, empty, `false`, `0`.
    if value.is_empty() || value.eq_ignore_ascii_case("false") || value == "0" {
        return Ok(None);
    }
    let invalid = |reason: String| ConfigError::InvalidAddress {
        name,
        value: redact(raw),
        reason,
    };
    let url = Url::parse(value).map_err(|e| {
        invalid(match e {
            url::ParseError::RelativeUrlWithoutBase => "no scheme".to_owned(),
            other => other.to_string(),
        })
    })?;
    match url.scheme() {
        "mqtt" | "tcp" => {}
        scheme @ ("mqtts" | "ssl" | "tls" | "ws" | "wss") => {
            return Err(ConfigError::UnsupportedScheme {
                name,
                value: redact(raw),
                scheme: scheme.to_owned(),
            });
        }
        scheme => return Err(invalid(format!("unsupported scheme {scheme:?}"))),
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => {
            // Opaque hosts keep percent-encoding; a real host name never needs it.
            if d.contains('%') {
                return Err(invalid(format!("host {d:?} is not a host name")));
            }
            d.to_owned()
        }
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => return Err(invalid("no host".to_owned())),
    };
    let port = match url.port() {
        None => DEFAULT_PORT,
        Some(0) => return Err(invalid("port 0 is not a broker port".to_owned())),
        Some(port) => port,
    };
    if !matches!(url.path(), "" | "/") {
        return Err(invalid(format!("unexpected path {:?}", url.path())));
    }
    if url.query().is_some() {
        return Err(invalid("unexpected query".to_owned()));
    }
    if url.fragment().is_some() {
        return Err(invalid("unexpected fragment".to_owned()));
    }
    let credentials = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        Some((
            percent_decode(url.username()),
            percent_decode(url.password().unwrap_or("")),
        ))
    };
    Ok(Some(BrokerAddress {
        host,
        port,
        credentials,
    }))
}

/// Undoes the percent-encoding the URL parser keeps in user names and passwords.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value with the password of any `user:password@` part replaced by `***`; works on
/// values that are not URLs at all.
pub(crate) fn redact(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let rest = &raw[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return raw.to_owned();
    };
    let Some(colon) = authority[..at].find(':') else {
        return raw.to_owned();
    };
    format!("{}***{}", &raw[..start + colon + 1], &raw[start + at..])
}

fn validate_topic(name: &'static str, topic: String) -> Result<String, ConfigError> {
    let reason = if topic.is_empty() {
        "the topic is empty"
    } else if topic.contains(['+', '#']) {
        "wildcards + and # are for subscribing, not publishing"
    } else if topic.contains('\0') {
        "the topic contains NUL"
    } else if topic.starts_with('$') {
        "topics starting with $ are reserved for the broker"
    } else if topic.len() > usize::from(u16::MAX) {
        "the topic is longer than 65535 bytes"
    } else {
        return Ok(topic);
    };
    Err(ConfigError::InvalidTopic {
        name,
        value: topic,
        reason,
    })
}

fn validate_client_id(name: &'static str, id: String) -> Result<String, ConfigError> {
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

fn parse_capacity(name: &'static str, raw: &str) -> Result<usize, ConfigError> {
    let invalid = || ConfigError::InvalidQueueCapacity {
        name,
        value: raw.to_owned(),
        max: MAX_QUEUE_CAPACITY,
    };
    let capacity = raw.trim().parse::<usize>().map_err(|_| invalid())?;
    check_capacity(name, capacity).map_err(|_| invalid())
}

fn check_capacity(name: &'static str, capacity: usize) -> Result<usize, ConfigError> {
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
fn default_client_id() -> String {
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
    format!("mps-{host}-{:08x}", crate::random_u64() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn from_vars(vars: &[(&'static str, &str)]) -> Result<Option<Config>, ConfigError> {
        let vars: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        Builder::from_lookup(|name| Ok(vars.get(name).cloned()))?.into_config()
    }

    fn broker(raw: &str) -> BrokerAddress {
        match parse_address(ENV_ADDRESS, raw) {
            Ok(Some(b)) => b,
            other => panic!("{raw:?} should parse, got {other:?}"),
        }
    }

    #[test]
    fn accepts_mps_address_forms() {
        let cases = [
            ("mqtt://mosquitto:8883", "mosquitto", 8883),
            ("tcp://mosquitto:8883", "mosquitto", 8883),
            ("mqtt://mosquitto", "mosquitto", 1883),
            ("mqtt://mosquitto/", "mosquitto", 1883),
            ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883),
            ("mqtt://[::1]:1884", "[::1]", 1884),
            ("mqtt://[::1]", "[::1]", 1883),
            (
                "  mqtt://Broker.example.com:65535  ",
                "Broker.example.com",
                65535,
            ),
        ];
        for (raw, host, port) in cases {
            let b = broker(raw);
            assert_eq!((b.host.as_str(), b.port), (host, port), "{raw}");
            assert_eq!(b.credentials, None, "{raw}");
        }
    }

    #[test]
    fn falsy_addresses_turn_eventing_off_as_in_mps() {
        for raw in ["", "   ", "false", "FALSE", "0"] {
            assert_eq!(parse_address(ENV_ADDRESS, raw), Ok(None), "{raw:?}");
        }
        assert!(from_vars(&[]).expect("no vars is valid").is_none());
        assert!(
            from_vars(&[(ENV_ADDRESS, "")])
                .expect("empty is valid")
                .is_none()
        );
    }

    #[test]
    fn rejects_bad_addresses_naming_the_variable() {
        let cases = [
            ("htp://mosquitto:8883", "unsupported scheme \"htp\""),
            ("mosquitto", "no scheme"),
            ("mosquitto:1883", "unsupported scheme \"mosquitto\""),
            ("mqtt://", "no host"),
            ("mqtt://:1883", "empty host"),
            ("mqtt://mosquitto:0", "port 0"),
            ("mqtt://mosquitto:65536", "invalid port number"),
            ("mqtt://mosquitto:-1", "invalid port number"),
            (
                "mqtt://mosquitto:1883/events",
                "unexpected path \"/events\"",
            ),
            ("mqtt://mosquitto:1883?qos=1", "unexpected query"),
            ("mqtt://mosquitto:1883#x", "unexpected fragment"),
            ("mqtt://[::1:1883", "invalid IPv6 address"),
            ("mqtt://mos%20quitto", "is not a host name"),
            ("\u{7f}garbage", "no scheme"),
        ];
        for (raw, reason) in cases {
            let err = parse_address(ENV_ADDRESS, raw).expect_err(raw);
            let msg = err.to_string();
            assert!(msg.starts_with("invalid MPS_MQTT_ADDRESS "), "{msg}");
            assert!(msg.contains(reason), "{raw:?}: {msg}");
            assert!(msg.contains("expected mqtt://host[:port]"), "{msg}");
        }
    }

    #[test]
    fn reserved_schemes_are_not_supported_yet() {
        for scheme in ["mqtts", "ssl", "ws", "wss"] {
            let raw = format!("{scheme}://mosquitto:8883");
            let err = parse_address(ENV_ADDRESS, &raw).expect_err(&raw);
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid MPS_MQTT_ADDRESS \"{raw}\": scheme \"{scheme}\" is not supported yet; \
                     use mqtt://host[:port] or tcp://host[:port]"
                )
            );
        }
    }

    #[test]
    fn credentials_are_used_and_never_shown() {
        let b = broker("mqtt://mps:s%40cret@mosquitto:1883");
        assert_eq!(b.credentials, Some(("mps".to_owned(), "s@cret".to_owned())));
        assert_eq!(format!("{b:?}"), "mqtt://mps:***@mosquitto:1883");
        let err = parse_address(ENV_ADDRESS, "htp://mps:hunter2@mosquitto/x").expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("\"htp://mps:***@mosquitto/x\""), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        let builder = Builder::default().address("mqtt://u:hunter2@h");
        assert!(!format!("{builder:?}").contains("hunter2"));
    }

    #[test]
    fn redacts_only_the_password() {
        let cases = [
            ("mqtt://u:p@h:1", "mqtt://u:***@h:1"),
            ("mqtt://u@h:1", "mqtt://u@h:1"),
            ("u:p@h", "u:***@h"),
            ("mqtt://h/a:b@c", "mqtt://h/a:b@c"),
            ("mqtt://u:p:q@r@h", "mqtt://u:***@h"),
            ("", ""),
        ];
        for (raw, shown) in cases {
            assert_eq!(redact(raw), shown, "{raw}");
        }
    }

    #[test]
    fn defaults_apply_when_only_the_address_is_set() {
        let config = from_vars(&[(ENV_ADDRESS, "mqtt://mosquitto:8883")])
            .expect("valid")
            .expect("enabled");
        assert_eq!(config.topic, DEFAULT_TOPIC);
        assert_eq!(config.qos, Qos::AtLeastOnce);
        assert_eq!(config.queue_capacity, DEFAULT_QUEUE_CAPACITY);
        assert!(config.client_id.starts_with("mps-"), "{}", config.client_id);
        assert!(config.client_id.len() <= 23, "{}", config.client_id);
        let other = from_vars(&[(ENV_ADDRESS, "mqtt://mosquitto:8883")])
            .expect("valid")
            .expect("enabled");
        assert_ne!(
            config.client_id, other.client_id,
            "client ids must differ per layer"
        );
    }

    #[test]
    fn reads_every_variable() {
        let config = from_vars(&[
            (ENV_ADDRESS, "tcp://broker:1884"),
            (ENV_TOPIC, "site/a/events"),
            (ENV_QOS, "0"),
            (ENV_CLIENT_ID, "mps-replica-1"),
            (ENV_QUEUE_CAPACITY, "16"),
        ])
        .expect("valid")
        .expect("enabled");
        assert_eq!(config.broker.host, "broker");
        assert_eq!(config.broker.port, 1884);
        assert_eq!(config.topic, "site/a/events");
        assert_eq!(config.qos, Qos::AtMostOnce);
        assert_eq!(config.client_id, "mps-replica-1");
        assert_eq!(config.queue_capacity, 16);
    }

    #[test]
    fn code_setters_override_the_environment() {
        let vars: HashMap<&str, String> = [
            (ENV_ADDRESS, "mqtt://from-env"),
            (ENV_TOPIC, "env/topic"),
            (ENV_QOS, "0"),
            (ENV_QUEUE_CAPACITY, "5"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
        let config = Builder::from_lookup(|name| Ok(vars.get(name).cloned()))
            .expect("valid env")
            .address("mqtt://from-code:1999")
            .topic("code/topic")
            .qos(Qos::AtLeastOnce)
            .queue_capacity(7)
            .into_config()
            .expect("valid")
            .expect("enabled");
        assert_eq!(
            (config.broker.host.as_str(), config.broker.port),
            ("from-code", 1999)
        );
        assert_eq!(config.topic, "code/topic");
        assert_eq!(config.qos, Qos::AtLeastOnce);
        assert_eq!(config.queue_capacity, 7);
    }

    #[test]
    fn rejects_bad_values_naming_the_variable() {
        let addr = (ENV_ADDRESS, "mqtt://broker");
        let cases: [(&'static str, &str, &str); 11] = [
            (
                ENV_TOPIC,
                "",
                "invalid MPS_MQTT_TOPIC \"\": the topic is empty",
            ),
            (ENV_TOPIC, "mps/#", "wildcards"),
            (ENV_TOPIC, "mps/+/x", "wildcards"),
            (ENV_TOPIC, "a\0b", "NUL"),
            (ENV_TOPIC, "$SYS/x", "reserved"),
            (
                ENV_QOS,
                "2",
                "invalid MPS_MQTT_QOS \"2\": expected 0 (at most once) or 1",
            ),
            (ENV_QOS, "one", "invalid MPS_MQTT_QOS"),
            (
                ENV_CLIENT_ID,
                "",
                "invalid MPS_MQTT_CLIENT_ID \"\": the client id is empty",
            ),
            (
                ENV_QUEUE_CAPACITY,
                "0",
                "invalid MPS_MQTT_QUEUE_CAPACITY \"0\": expected a whole",
            ),
            (
                ENV_QUEUE_CAPACITY,
                "-3",
                "invalid MPS_MQTT_QUEUE_CAPACITY \"-3\"",
            ),
            (ENV_QUEUE_CAPACITY, "99999999999", "from 1 to 1048576"),
        ];
        for (name, value, expected) in cases {
            let err = from_vars(&[addr, (name, value)]).expect_err(value);
            assert!(
                err.to_string().contains(expected),
                "{name}={value:?}: {err}"
            );
        }
    }

    #[test]
    fn setter_errors_name_the_setter() {
        let err = Builder::default()
            .address("mqtt://b")
            .queue_capacity(0)
            .into_config()
            .expect_err("0");
        assert_eq!(
            err.to_string(),
            "invalid queue_capacity \"0\": expected a whole number of events from 1 to 1048576"
        );
        let err = Builder::default()
            .address("htp://b")
            .into_config()
            .expect_err("htp");
        assert!(
            err.to_string().starts_with("invalid address \"htp://b\""),
            "{err}"
        );
    }

    #[test]
    fn reconnect_backoff_must_grow_from_a_positive_delay() {
        let build = |min, max| {
            Builder::default()
                .address("mqtt://b")
                .reconnect_backoff(min, max)
                .into_config()
        };
        let ms = Duration::from_millis;
        let config = build(ms(10), ms(10)).expect("valid").expect("enabled");
        assert_eq!(config.reconnect, (ms(10), ms(10)));
        let err = build(ms(0), ms(10)).expect_err("zero");
        assert_eq!(
            err.to_string(),
            "invalid reconnect_backoff (0ns, 10ms): expected 0 < min <= max"
        );
        assert!(build(ms(20), ms(10)).is_err());
        let default = Builder::default().address("mqtt://b").into_config();
        let default = default.expect("valid").expect("enabled");
        assert_eq!(
            default.reconnect,
            (DEFAULT_RECONNECT_MIN, DEFAULT_RECONNECT_MAX)
        );
    }

    #[test]
    fn not_unicode_is_an_error() {
        let err = Builder::from_lookup(|name| {
            if name == ENV_TOPIC {
                Err(ConfigError::NotUnicode { name })
            } else {
                Ok(None)
            }
        })
        .expect_err("not unicode");
        assert_eq!(
            err.to_string(),
            "invalid MPS_MQTT_TOPIC: the value is not valid UTF-8"
        );
    }

    proptest! {
        #[test]
        fn no_address_panics(raw in any::<String>()) {
            let _ = parse_address(ENV_ADDRESS, &raw);
            let _ = redact(&raw);
        }

        #[test]
        fn no_url_shaped_address_panics(
            scheme in "[a-z]{0,6}", host in "[^/?#]{0,20}", port in any::<i32>(), tail in ".{0,10}",
        ) {
            let _ = parse_address(ENV_ADDRESS, &format!("{scheme}://{host}:{port}{tail}"));
        }

        #[test]
        fn no_setting_panics(topic in any::<String>(), qos in any::<String>(), cap in any::<String>()) {
            let _ = from_vars(&[
                (ENV_ADDRESS, "mqtt://b"), (ENV_TOPIC, &topic), (ENV_QOS, &qos), (ENV_QUEUE_CAPACITY, &cap),
            ]);
        }

        #[test]
        fn passwords_never_appear_in_errors_or_debug(
            user in "[a-z]{1,8}", password in "[A-Za-z0-9]{6,16}", scheme in "(mqtt|htp|mqtts)",
            tail in "(|/x|\\?q)",
        ) {
            let raw = format!("{scheme}://{user}:{password}@host:1883{tail}");
            match parse_address(ENV_ADDRESS, &raw) {
                Ok(Some(b)) => {
                    let shown = format!("{b:?} {b}");
                    prop_assert!(!shown.contains(&password));
                }
                Ok(None) => prop_assert!(false, "{} parsed as off", raw),
                Err(e) => {
                    let shown = format!("{e} {e:?}");
                    prop_assert!(!shown.contains(&password));
                }
            }
        }
    }
}
