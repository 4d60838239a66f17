//! Broker addresses: the scheme, host, port, path and login of `MPS_MQTT_ADDRESS`, parsed and
//! shown with the password as `***`; and the [`Secret`] type that keeps passwords out of
//! every `Debug`.

use std::fmt;

use url::Url;

use crate::error::ConfigError;

/// Broker port used when a plain address names none.
pub(crate) const DEFAULT_PORT: u16 = 1883;
/// Broker port used when a TLS address names none.
pub(crate) const DEFAULT_TLS_PORT: u16 = 8883;
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
