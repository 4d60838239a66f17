//! Credentials and TLS settings: read from the environment or set in code, then resolved
//! against the address into one unambiguous login and TLS configuration. Files named here are
//! read now, so that a bad path stops startup with the variable's name.

use std::fmt;
use std::path::PathBuf;

use crate::config::{BrokerAddress, Credentials, NamedPath, Secret, TlsSettings};
use crate::error::ConfigError;

pub(crate) const ENV_USERNAME: &str = "MPS_MQTT_USERNAME";
pub(crate) const ENV_PASSWORD: &str = "MPS_MQTT_PASSWORD";
pub(crate) const ENV_PASSWORD_FILE: &str = "MPS_MQTT_PASSWORD_FILE";
pub(crate) const ENV_CA_FILE: &str = "MPS_MQTT_CA_FILE";
pub(crate) const ENV_CLIENT_CERT_FILE: &str = "MPS_MQTT_CLIENT_CERT_FILE";
pub(crate) const ENV_CLIENT_KEY_FILE: &str = "MPS_MQTT_CLIENT_KEY_FILE";
pub(crate) const ENV_TLS_INSECURE: &str = "MPS_MQTT_TLS_INSECURE";

/// A value and the variable or setter it came from.
#[derive(Clone)]
pub(crate) struct Named<T> {
    pub(crate) name: &'static str,
    pub(crate) value: T,
}

/// The raw credential and TLS settings of a builder.
#[derive(Clone, Default)]
pub(crate) struct SecureSettings {
    pub(crate) username: Option<Named<String>>,
    pub(crate) password: Option<Named<Secret>>,
    pub(crate) password_file: Option<Named<PathBuf>>,
    pub(crate) ca_file: Option<Named<PathBuf>>,
    pub(crate) client_cert_file: Option<Named<PathBuf>>,
    pub(crate) client_key_file: Option<Named<PathBuf>>,
    pub(crate) tls_insecure: Option<Named<bool>>,
    pub(crate) alpn: Vec<Vec<u8>>,
}

impl fmt::Debug for SecureSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = |p: &Option<Named<PathBuf>>| p.as_ref().map(|p| p.value.clone());
        f.debug_struct("SecureSettings")
            .field("username", &self.username.as_ref().map(|u| &u.value))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &path(&self.password_file))
            .field("ca_file", &path(&self.ca_file))
            .field("client_cert_file", &path(&self.client_cert_file))
            .field("client_key_file", &path(&self.client_key_file))
            .field("tls_insecure", &self.tls_insecure.as_ref().map(|i| i.value))
            .field("alpn", &self.alpn.len())
            .finish()
    }
}

fn named_path(named: &Named<PathBuf>) -> NamedPath {
    NamedPath {
        name: named.name,
        path: named.value.clone(),
    }
}

/// `1`, `true`, `yes` or `on` (any case) is true; `0`, `false`, `no`, `off` or empty is false.
pub(crate) fn parse_flag(name: &'static str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(ConfigError::InvalidFlag {
            name,
            value: raw.to_owned(),
        }),
    }
}

impl SecureSettings {
    /// Reads the variables through `lookup`.
    pub(crate) fn from_lookup(
        lookup: &impl Fn(&'static str) -> Result<Option<String>, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let text = |name| -> Result<Option<Named<String>>, ConfigError> {
            Ok(lookup(name)?
                .filter(|v| !v.is_empty())
                .map(|value| Named { name, value }))
        };
        let path = |name| -> Result<Option<Named<PathBuf>>, ConfigError> {
            Ok(text(name)?.map(|n| Named {
                name,
                value: PathBuf::from(n.value),
            }))
        };
        let tls_insecure = match lookup(ENV_TLS_INSECURE)? {
            Some(raw) => Some(Named {
                name: ENV_TLS_INSECURE,
                value: parse_flag(ENV_TLS_INSECURE, &raw)?,
            }),
            None => None,
        };
        Ok(Self {
            username: text(ENV_USERNAME)?,
            password: text(ENV_PASSWORD)?.map(|n| Named {
                name: n.name,
                value: Secret::new(n.value),
            }),
            password_file: path(ENV_PASSWORD_FILE)?,
            ca_file: path(ENV_CA_FILE)?,
            client_cert_file: path(ENV_CLIENT_CERT_FILE)?,
            client_key_file: path(ENV_CLIENT_KEY_FILE)?,
            tls_insecure,
            alpn: Vec::new(),
        })
    }

    /// The login: from the address or from the username and password settings, never both.
    pub(crate) fn credentials(
        &self,
        address_name: &'static str,
        broker: &BrokerAddress,
    ) -> Result<Option<Credentials>, ConfigError> {
        let conflict = |reason: String| Err(ConfigError::Conflict { reason });
        if let (Some(password), Some(file)) = (&self.password, &self.password_file) {
            return conflict(format!(
                "both {} and {} are set; keep one",
                password.name, file.name
            ));
        }
        let separate = [
            self.username.as_ref().map(|n| n.name),
            self.password.as_ref().map(|n| n.name),
            self.password_file.as_ref().map(|n| n.name),
        ];
        let separate: Vec<&str> = separate.into_iter().flatten().collect();
        if let Some((username, password)) = &broker.credentials {
            if !separate.is_empty() {
                return conflict(format!(
                    "credentials are given both in {address_name} (user:***@) and in {}; keep \
                     one",
                    separate.join(" and ")
                ));
            }
            return Ok(Some(Credentials {
                username: username.clone(),
                password: Some(password.clone()),
            }));
        }
        let Some(username) = &self.username else {
            if let Some(name) = separate.first() {
                return conflict(format!("{name} is set but no {ENV_USERNAME} (or username)"));
            }
            return Ok(None);
        };
        let password = match (&self.password, &self.password_file) {
            (Some(password), _) => Some(password.value.clone()),
            (None, Some(file)) => Some(read_password(file)?),
            (None, None) => None,
        };
        Ok(Some(Credentials {
            username: username.value.clone(),
            password,
        }))
    }

    /// The TLS settings of an `mqtts://` or `wss://` address, checked by building them once; `None` for
    /// a plain address, which must then have no TLS settings.
    pub(crate) fn tls(
        &self,
        address_name: &'static str,
        broker: &BrokerAddress,
    ) -> Result<Option<TlsSettings>, ConfigError> {
        let given: Vec<&str> = [
            self.ca_file.as_ref().map(|n| n.name),
            self.client_cert_file.as_ref().map(|n| n.name),
            self.client_key_file.as_ref().map(|n| n.name),
            self.tls_insecure
                .as_ref()
                .filter(|n| n.value)
                .map(|n| n.name),
            (!self.alpn.is_empty()).then_some("alpn"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !broker.scheme.is_tls() {
            if given.is_empty() {
                return Ok(None);
            }
            return Err(ConfigError::Conflict {
                reason: format!(
                    "{} set for a plain {}:// address in {address_name}; use mqtts:// (or \
                     wss://) for TLS",
                    given.join(" and "),
                    broker.scheme.as_str()
                ),
            });
        }
        let client = match (&self.client_cert_file, &self.client_key_file) {
            (Some(cert), Some(key)) => Some((named_path(cert), named_path(key))),
            (None, None) => None,
            (Some(one), None) | (None, Some(one)) => {
                return Err(ConfigError::Conflict {
                    reason: format!(
                        "{} is set without the other half of the client certificate: mutual \
                         TLS needs both {ENV_CLIENT_CERT_FILE} and {ENV_CLIENT_KEY_FILE}",
                        one.name
                    ),
                });
            }
        };
        let settings = TlsSettings {
            ca_file: self.ca_file.as_ref().map(named_path),
            client,
            insecure: self.tls_insecure.as_ref().is_some_and(|n| n.value),
            alpn: self.alpn.clone(),
        };
        check(&settings)?;
        Ok(Some(settings))
    }
}

/// Reads a password file; a trailing newline (as `echo` and editors leave) is not part of it.
fn read_password(file: &Named<PathBuf>) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(&file.value).map_err(|e| ConfigError::InvalidFile {
        name: file.name,
        path: file.value.clone(),
        reason: format!("cannot read the file: {e}"),
    })?;
    let password = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    Ok(Secret::new(password.to_owned()))
}

/// Builds the TLS configuration once, so that every file problem stops startup.
#[cfg(feature = "tls")]
fn check(settings: &TlsSettings) -> Result<(), ConfigError> {
    crate::tls::client_config(settings)
        .map(drop)
        .map_err(|e| match e.file {
            Some(file) => ConfigError::InvalidFile {
                name: file.name,
                path: file.path,
                reason: e.reason,
            },
            None => ConfigError::Conflict { reason: e.reason },
        })
}

/// Without the `tls` feature no address is `mqtts://`, so this is never reached.
#[cfg(not(feature = "tls"))]
fn check(_: &TlsSettings) -> Result<(), ConfigError> {
    Ok(())
}
