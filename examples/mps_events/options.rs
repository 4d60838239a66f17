//! The command line, parsed by hand from `std::env::args`, and the broker address (plain
//! `mqtt://` or `tcp://` only).

use mps_mqtt_events::EventType;

/// The variable naming the broker, as for the server.
const ENV_ADDRESS: &str = "MPS_MQTT_ADDRESS";
/// Broker when neither `--broker` nor `MPS_MQTT_ADDRESS` is given.
const DEFAULT_BROKER: &str = "mqtt://127.0.0.1:1883";
/// Topic when `--topic` is not given (the crate's and MPS's default).
const DEFAULT_TOPIC: &str = "mps/events";

pub(crate) const HELP: &str = "\
mps_events: print the MPS events published on an MQTT broker, one line each
(the alternative to MQTT Explorer on a headless box)

usage: cargo run --example mps_events -- [options]

options:
  --broker <url>     mqtt://[user:password@]host[:port] (port 1883 when omitted);
                     default: $MPS_MQTT_ADDRESS, else mqtt://127.0.0.1:1883
  --topic <topic>    subscribe to <topic> and everything under it (<topic>/#);
                     default: mps/events
  --type <type>      only events of this type: success, fail or request
  --guid <uuid>      only events of this device (case-insensitive)
  --json             print each payload as received, one per line (malformed ones
                     go to stderr as `? <raw>`)
  --no-color         no colours (also when stdout is not a terminal or NO_COLOR is set)
  -h, --help         this text

Lines: local time, type, methods, guid (or -), message, then the HTTP status and
latency of events published by mps-mqtt-events (MPS's own events have none). A
payload that is not an event is printed as `? <raw>`, whatever the filters.
Connection errors are retried every second; Ctrl-C stops.

Only plain TCP brokers are supported by this small tool: for mqtts://, ws:// or
wss:// use mosquitto_sub or MQTT Explorer.
";

/// What the command line asked for.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) broker: Broker,
    pub(crate) topic: String,
    pub(crate) kind: Option<EventType>,
    pub(crate) guid: Option<String>,
    pub(crate) json: bool,
    pub(crate) color: bool,
}

/// Why the tool does not start.
#[derive(Debug)]
pub(crate) enum Exit {
    /// `--help`: print [`HELP`], exit 0.
    Help,
    /// A bad option or value: print it, exit 2.
    Usage(String),
}

/// A plain MQTT broker: host, port and optional credentials.
#[derive(Debug)]
pub(crate) struct Broker {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) credentials: Option<(String, String)>,
}

impl std::fmt::Display for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = match &self.credentials {
            Some((user, _)) => format!("{user}:***@"),
            None => String::new(),
        };
        if self.host.contains(':') {
            write!(f, "mqtt://{user}[{}]:{}", self.host, self.port)
        } else {
            write!(f, "mqtt://{user}{}:{}", self.host, self.port)
        }
    }
}

impl Options {
    /// Parses the arguments after the program name; `--opt value` and `--opt=value`.
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, Exit> {
        let mut broker = None;
        let mut topic = DEFAULT_TOPIC.to_owned();
        let (mut kind, mut guid, mut json, mut no_color) = (None, None, false, false);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name.to_owned(), Some(value)),
                _ => (arg.clone(), None),
            };
            let mut value = || match inline {
                Some(value) => Ok(value.to_owned()),
                None => args
                    .next()
                    .ok_or_else(|| Exit::Usage(format!("{name} needs a value"))),
            };
            match name.as_str() {
                "-h" | "--help" => return Err(Exit::Help),
                "--json" => json = true,
                "--no-color" | "--no-colour" => no_color = true,
                "--broker" => broker = Some(value()?),
                "--topic" => topic = parse_topic(&value()?)?,
                "--type" => kind = Some(parse_type(&value()?)?),
                "--guid" => guid = Some(parse_guid(&value()?)?),
                _ => {
                    return Err(Exit::Usage(format!(
                        "unknown argument {arg:?} (see --help)"
                    )));
                }
            }
        }
        let broker = match broker {
            Some(url) => parse_broker(&url, "--broker")?,
            None => match std::env::var(ENV_ADDRESS) {
                Ok(url) if !url.trim().is_empty() => parse_broker(&url, ENV_ADDRESS)?,
                _ => parse_broker(DEFAULT_BROKER, "the default broker")?,
            },
        };
        Ok(Options {
            broker,
            topic,
            kind,
            guid,
            json,
            color: !no_color,
        })
    }
}

fn parse_type(raw: &str) -> Result<EventType, Exit> {
    match raw {
        "success" => Ok(EventType::Success),
        "fail" => Ok(EventType::Fail),
        "request" => Ok(EventType::Request),
        _ => Err(Exit::Usage(format!(
            "invalid --type {raw:?}: expected success, fail or request"
        ))),
    }
}

/// A GUID in 8-4-4-4-12 hex form, lower-cased for comparison.
fn parse_guid(raw: &str) -> Result<String, Exit> {
    let uuid = raw.len() == 36
        && raw.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if uuid {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(Exit::Usage(format!(
            "invalid --guid {raw:?}: expected a UUID such as 4c4c4544-004b-4210-8033-b6c04f504633"
        )))
    }
}

fn parse_topic(raw: &str) -> Result<String, Exit> {
    let topic = raw.trim_end_matches('/');
    if topic.is_empty() || topic.contains(['#', '+', '\0']) {
        Err(Exit::Usage(format!(
            "invalid --topic {raw:?}: expected a topic without wildcards, e.g. mps/events"
        )))
    } else {
        Ok(topic.to_owned())
    }
}

/// `mqtt://` or `tcp://`, `user:password@` allowed; TLS and WebSocket schemes are refused.
fn parse_broker(raw: &str, source: &str) -> Result<Broker, Exit> {
    let bad = |why: &str| Exit::Usage(format!("invalid {source} {raw:?}: {why}"));
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "mqtt" | "tcp" => {}
        "mqtts" | "ssl" | "tls" | "ws" | "wss" => {
            return Err(bad(
                "TLS and WebSocket brokers are not supported by this small tool; use \
                 mosquitto_sub or MQTT Explorer, or a plain mqtt://host:port listener",
            ));
        }
        other => {
            return Err(bad(&format!(
                "unsupported scheme {other:?}; expected mqtt://"
            )));
        }
    }
    let host = match url.host() {
        Some(url::Host::Domain(domain)) => domain.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(bad("no host; expected mqtt://host[:port]")),
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, password) => Some((
            percent_decode(user),
            percent_decode(password.unwrap_or_default()),
        )),
    };
    Ok(Broker {
        host,
        port: url.port().unwrap_or(1883),
        credentials,
    })
}

/// `%XX` escapes of a URL's user name or password, as sent by the user.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = raw.get(i + 1..i + 3).filter(|_| bytes[i] == b'%');
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
