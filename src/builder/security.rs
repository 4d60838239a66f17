//! The [`Builder`]'s setters of credentials and TLS.

use std::path::PathBuf;

use super::Builder;
use crate::config::Secret;
use crate::secure::Named;

/// Credentials and TLS; see the crate docs' table for the variables they override.
impl Builder {
    /// The MQTT user name. Overrides `MPS_MQTT_USERNAME`. Give credentials either here (with
    /// [`password`](Self::password) or [`password_file`](Self::password_file)) or as
    /// `user:password@` in the address, not both: [`build`](Self::build) refuses the mix.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.secure.username = Some(Named {
            name: "username",
            value: username.into(),
        });
        self
    }

    /// The MQTT password. Overrides `MPS_MQTT_PASSWORD`. It appears in no `Debug` output,
    /// log, error or event.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.secure.password = Some(Named {
            name: "password",
            value: Secret::new(password.into()),
        });
        self
    }

    /// A file holding the MQTT password, e.g. a container secret; one trailing newline is
    /// not part of the password. Read by [`build`](Self::build). Overrides
    /// `MPS_MQTT_PASSWORD_FILE`; setting both a password and a password file is refused.
    pub fn password_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.secure.password_file = Some(Named {
            name: "password_file",
            value: path.into(),
        });
        self
    }

    /// A PEM file of the CA certificates to trust for an `mqtts://` broker, instead of the
    /// platform's root certificates. Overrides `MPS_MQTT_CA_FILE`. Read by
    /// [`build`](Self::build) and again at every connection, so a renewed file is used
    /// without a restart.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.secure.ca_file = Some(Named {
            name: "ca_file",
            value: path.into(),
        });
        self
    }

    /// The client certificate (PEM, the chain may follow it) for mutual TLS; needs
    /// [`client_key_file`](Self::client_key_file). Overrides `MPS_MQTT_CLIENT_CERT_FILE`.
    /// Read at every connection, so a renewed certificate is used without a restart.
    pub fn client_cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.secure.client_cert_file = Some(Named {
            name: "client_cert_file",
            value: path.into(),
        });
        self
    }

    /// The private key of the client certificate (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC).
    /// Overrides `MPS_MQTT_CLIENT_KEY_FILE`.
    pub fn client_key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.secure.client_key_file = Some(Named {
            name: "client_key_file",
            value: path.into(),
        });
        self
    }

    /// Skips verifying the broker's certificate: for test brokers with self-signed
    /// certificates only, never in production. Logged as a warning at startup and at every
    /// connection. Overrides `MPS_MQTT_TLS_INSECURE`. Defaults to `false`.
    pub fn tls_insecure(mut self, insecure: bool) -> Self {
        self.secure.tls_insecure = Some(Named {
            name: "tls_insecure",
            value: insecure,
        });
        self
    }

    /// ALPN protocols to offer in the TLS handshake, e.g. `["mqtt"]` for AWS IoT Core on
    /// port 443. Defaults to none.
    pub fn alpn<P: Into<Vec<u8>>>(mut self, protocols: impl IntoIterator<Item = P>) -> Self {
        self.secure.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }
}
