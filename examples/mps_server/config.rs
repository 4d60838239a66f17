//! Settings from the environment: where the server listens (`MPS_WEB_HOST`, `MPS_WEB_PORT`),
//! where the events go (`MPS_MQTT_ADDRESS`: the embedded demo broker, another broker, or off)
//! and whether the example's own subscriber can follow them there ([`PlainBroker`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mps_mqtt_events::{Builder, MqttEventLayer};

use crate::embedded_broker::EmbeddedBroker;
use crate::output::Failure;

/// The crate's variable that names the broker; unset here means the embedded demo broker.
const ENV_ADDRESS: &str = "MPS_MQTT_ADDRESS";
/// The crate's variables with the broker login when the address carries none.
const ENV_USERNAME: &str = "MPS_MQTT_USERNAME";
const ENV_PASSWORD: &str = "MPS_MQTT_PASSWORD";
const ENV_PASSWORD_FILE: &str = "MPS_MQTT_PASSWORD_FILE";
/// The MQTT port when the address names none.
const DEFAULT_MQTT_PORT: u16 = 1883;
/// Environment variable with the HTTP port, as in MPS.
pub(crate) const ENV_WEB_PORT: &str = "MPS_WEB_PORT";
/// Environment variable with the IP address to listen on (this example only).
const ENV_WEB_HOST: &str = "MPS_WEB_HOST";
/// MPS's default HTTP port.
const DEFAULT_WEB_PORT: u16 = 3000;

/// Where the events go, decided from `MPS_MQTT_ADDRESS`.
pub(crate) struct Events {
    pub(crate) layer: MqttEventLayer,
    pub(crate) mode: Mode,
}

pub(crate) enum Mode {
    /// `MPS_MQTT_ADDRESS` unset or empty: an in-process broker and a printing subscriber.
    Embedded {
        broker: EmbeddedBroker,
        topic: String,
    },
    /// `MPS_MQTT_ADDRESS` names a broker; `watch` is a `mosquitto_sub` command line, `feed`
    /// where the example's subscriber connects to `topic`, or why it cannot (TLS, WebSocket).
    External {
        watch: String,
        topic: String,
        feed: Result<PlainBroker, String>,
    },
    /// `MPS_MQTT_ADDRESS` is one of MPS's "off" values (`false`, `0`).
    Off,
}

impl Events {
    pub(crate) fn from_env() -> Result<Self, Failure> {
        let external = std::env::var_os(ENV_ADDRESS)
            .is_some_and(|value| !value.to_string_lossy().trim().is_empty());
        if external {
            let layer = MqttEventLayer::try_from_env()?;
            let handle = layer.handle();
            let mode = match (handle.broker(), handle.topic()) {
                (Some(broker), Some(topic)) => Mode::External {
                    watch: mosquitto_sub_command(broker, topic),
                    topic: topic.to_owned(),
                    feed: PlainBroker::from_env(),
                },
                _ => Mode::Off,
            };
            return Ok(Events { layer, mode });
        }
        // Checks the other MPS_MQTT_* variables before a broker is started for nothing.
        let builder = Builder::from_env()?;
        let broker = EmbeddedBroker::start();
        let layer = builder.address(broker.url()).build()?;
        let topic = layer.handle().topic().unwrap_or_default().to_owned();
        Ok(Events {
            layer,
            mode: Mode::Embedded { broker, topic },
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Embedded { broker, topic } => write!(
                f,
                "{ENV_ADDRESS} is unset: publishing to the embedded demo broker at {} on topic \
                 {topic}; received events are printed as `event <topic> <json>`",
                broker.url()
            ),
            Mode::External { watch, .. } => write!(
                f,
                "publishing to the broker in {ENV_ADDRESS}; watch the events with: {watch}"
            ),
            Mode::Off => write!(
                f,
                "{ENV_ADDRESS} turns eventing off: no events are published"
            ),
        }
    }
}

/// A broker the example's own subscriber can reach: plain MQTT over TCP, with a login.
pub(crate) struct PlainBroker {
    /// Host name or IP address, as in the address.
    pub(crate) host: String,
    /// The address's port, 1883 when it names none.
    pub(crate) port: u16,
    /// User name and password, from the address or from `MPS_MQTT_USERNAME` and
    /// `MPS_MQTT_PASSWORD` (or `MPS_MQTT_PASSWORD_FILE`).
    pub(crate) login: Option<(String, String)>,
}

impl PlainBroker {
    /// Reads `MPS_MQTT_ADDRESS` again (the layer accepted it, so it parses) for the subscriber.
    ///
    /// # Errors
    ///
    /// Why the subscriber cannot follow: a TLS or WebSocket scheme, or an unreadable value;
    /// the text is shown on the events page.
    fn from_env() -> Result<PlainBroker, String> {
        let raw =
            std::env::var(ENV_ADDRESS).map_err(|_| format!("{ENV_ADDRESS} is not valid UTF-8"))?;
        let url =
            url::Url::parse(raw.trim()).map_err(|e| format!("cannot read {ENV_ADDRESS}: {e}"))?;
        if !matches!(url.scheme(), "mqtt" | "tcp") {
            return Err(format!(
                "the events page follows plain mqtt:// brokers only, and {ENV_ADDRESS} is a \
                 {}:// one; watch the events with mosquitto_sub",
                url.scheme()
            ));
        }
        let host = match url.host() {
            Some(url::Host::Domain(domain)) => domain.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(format!("{ENV_ADDRESS} names no host")),
        };
        let login = if url.username().is_empty() {
            login_from_env()?
        } else {
            let password = url.password().unwrap_or_default();
            Some((percent_decode(url.username()), percent_decode(password)))
        };
        Ok(PlainBroker {
            host,
            port: url.port().unwrap_or(DEFAULT_MQTT_PORT),
            login,
        })
    }
}

/// `MPS_MQTT_USERNAME` with `MPS_MQTT_PASSWORD` or `MPS_MQTT_PASSWORD_FILE` (without one
/// trailing newline, as the crate reads it).
fn login_from_env() -> Result<Option<(String, String)>, String> {
    let Some(user) = std::env::var(ENV_USERNAME).ok().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let password = match (
        std::env::var(ENV_PASSWORD),
        std::env::var_os(ENV_PASSWORD_FILE),
    ) {
        (Ok(password), _) => password,
        (Err(_), Some(file)) => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {ENV_PASSWORD_FILE}: {e}"))?;
            let line = text.strip_suffix('\n').unwrap_or(&text);
            line.strip_suffix('\r').unwrap_or(line).to_owned()
        }
        (Err(_), None) => String::new(),
    };
    Ok(Some((user, password)))
}

/// Undoes the percent-encoding the URL parser keeps in user names and passwords.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `mosquitto_sub -h HOST [-p PORT] -t 'TOPIC/#' -v` for the layer's (redacted) broker.
fn mosquitto_sub_command(address: &str, topic: &str) -> String {
    let url = url::Url::parse(address.trim()).ok();
    let host = match url.as_ref().and_then(url::Url::host) {
        Some(url::Host::Domain(domain)) => domain.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => "HOST".to_owned(),
    };
    let port = match url.and_then(|u| u.port()) {
        Some(port) if port != 1883 => format!(" -p {port}"),
        _ => String::new(),
    };
    format!("mosquitto_sub -h {host}{port} -t '{topic}/#' -v")
}

/// `MPS_WEB_HOST`:`MPS_WEB_PORT`, defaults 127.0.0.1:3000; empty values count as unset.
pub(crate) fn web_addr_from_env() -> Result<SocketAddr, Failure> {
    let host = match std::env::var(ENV_WEB_HOST) {
        Ok(raw) if !raw.trim().is_empty() => raw.trim().parse::<IpAddr>().map_err(|_| {
            Failure::Config(format!(
                "invalid {ENV_WEB_HOST} {raw:?}: expected an IP address such as 127.0.0.1 or \
                 0.0.0.0"
            ))
        })?,
        Ok(_) | Err(std::env::VarError::NotPresent) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Failure::Config(format!(
                "invalid {ENV_WEB_HOST}: the value is not valid UTF-8"
            )));
        }
    };
    let port = match std::env::var(ENV_WEB_PORT) {
        Ok(raw) if !raw.trim().is_empty() => raw.trim().parse::<u16>().map_err(|_| {
            Failure::Config(format!(
                "invalid {ENV_WEB_PORT} {raw:?}: expected a port number from 0 to 65535"
            ))
        })?,
        Ok(_) | Err(std::env::VarError::NotPresent) => DEFAULT_WEB_PORT,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Failure::Config(format!(
                "invalid {ENV_WEB_PORT}: the value is not valid UTF-8"
            )));
        }
    };
    Ok(SocketAddr::new(host, port))
}
