//! Configuration: environment variable names, defaults, the validated [`Config`], and pure
//! parsing of each value.

use std::fmt;
use std::time::Duration;

use url::Url;

use crate::error::ConfigError;

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
/// Broker port used when a plain address names none.
pub(crate) const DEFAULT_PORT: u16 = 1883;
/// Broker port used when a TLS address names none.
pub(crate) const DEFAULT_TLS_PORT: u16 = 8883;
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

/// How the connection to the broker is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// Plain TCP: `mqtt://` or `tcp://`.
    Mqtt,
    /// TLS over TCP: `mqtts://`, `ssl://` or `tls://`.
    Mqtts,
    /// WebSocket: `ws://`.
    Ws,
    /// WebSocket over TLS: `wss://`.
    Wss,
}

impl Scheme {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Mqtts => "mqtts",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Whether the connection is encrypted with TLS.
    pub(crate) fn is_tls(self) -> bool {
        matches!(self, Self::Mqtts | Self::Wss)
    }

    fn default_port(self) -> u16 {
        match self {
            Self::Mqtt => DEFAULT_PORT,
            Self::Mqtts => DEFAULT_TLS_PORT,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }
}

/// The cargo feature a scheme needs that this build lacks, if any.
fn missing_feature(scheme: Scheme) -> Option<&'static str> {
    let websocket = matches!(scheme, Scheme::Ws | Scheme::Wss);
    if websocket && !cfg!(feature = "websocket") {
        Some("websocket")
    } else if scheme.is_tls() && !cfg!(feature = "tls") {
        Some("tls")
    } else {
        None
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

/// Where the broker is, as parsed from `MPS_MQTT_ADDRESS`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BrokerAddress {
    pub(crate) scheme: Scheme,
    /// Host name or IP literal; IPv6 in brackets, so that `host:port` resolves.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The HTTP path of a WebSocket address (`/mqtt` when omitted); empty otherwise.
    pub(crate) path: String,
    /// `user:password@` of the address, percent-decoded.
    pub(crate) credentials: Option<(String, Secret)>,
}

/// A password: shown as `***` by `Debug`, never by anything else.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself, for the CONNECT packet only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
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

impl fmt::Debug for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.as_str())?;
        if let Some((user, _)) = &self.credentials {
            write!(f, "{user}:***@")?;
        }
        write!(f, "{}:{}{}", self.host, self.port, self.path)
    }
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
    let scheme = match url.scheme() {
        "mqtt" | "tcp" => Scheme::Mqtt,
        "mqtts" | "ssl" | "tls" => Scheme::Mqtts,
        "ws" => Scheme::Ws,
        "wss" => Scheme::Wss,
        scheme => return Err(invalid(format!("unsupported scheme {scheme:?}"))),
    };
    if let Some(feature) = missing_feature(scheme) {
        return Err(ConfigError::FeatureDisabled {
            name,
            value: redact(raw),
            scheme: url.scheme().to_owned(),
            feature,
        });
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
        None => scheme.default_port(),
        Some(0) => return Err(invalid("port 0 is not a broker port".to_owned())),
        Some(port) => port,
    };
    let path = match (scheme, url.path()) {
        (Scheme::Ws | Scheme::Wss, "" | "/") => "/mqtt".to_owned(),
        (Scheme::Ws | Scheme::Wss, path) => path.to_owned(),
        (_, "" | "/") => String::new(),
        (_, path) => return Err(invalid(format!("unexpected path {path:?}"))),
    };
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
            Secret::new(percent_decode(url.password().unwrap_or(""))),
        ))
    };
    Ok(Some(BrokerAddress {
        scheme,
        host,
        port,
        path,
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
