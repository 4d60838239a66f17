//! The seam between the MQTT session and the byte stream it runs on: the session speaks MQTT
//! over any [`Transport`], and a [`Connector`] makes one per connection attempt: plain TCP,
//! or TLS over it (cargo feature `tls`). WebSocket streams plug in here too.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

#[cfg(feature = "tls")]
use crate::config::TlsSettings;
use crate::config::{Config, Scheme};

/// A connected byte stream to the broker.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

/// Why no stream could be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// TCP (or name resolution) failed.
    #[error("cannot connect: {0}")]
    Tcp(#[source] io::Error),
    /// A certificate, key or CA file could not be read again for this connection.
    #[cfg(feature = "tls")]
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
    /// The TLS handshake failed; the text says what it means.
    #[cfg(feature = "tls")]
    #[error("{0}")]
    Handshake(String),
}

/// Opens connections to the broker.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    host: String,
    port: u16,
    #[cfg(feature = "tls")]
    tls: Option<TlsSettings>,
}

impl Connector {
    pub(crate) fn new(config: &Config) -> Self {
        let broker = &config.broker;
        debug_assert_eq!(broker.scheme == Scheme::Mqtts, config.tls.is_some());
        Self {
            host: broker.host.clone(),
            port: broker.port,
            #[cfg(feature = "tls")]
            tls: config.tls.clone(),
        }
    }

    /// One connection; resolves the host name each time, so a broker that moved is found,
    /// and reads TLS files each time, so renewed certificates are used.
    pub(crate) async fn connect(&self) -> Result<Box<dyn Transport>, ConnectError> {
        let stream = TcpStream::connect(format!("{}:{}", self.host, self.port))
            .await
            .map_err(ConnectError::Tcp)?;
        // Writes are already coalesced; Nagle would only delay the last one.
        stream.set_nodelay(true).map_err(ConnectError::Tcp)?;
        #[cfg(feature = "tls")]
        if let Some(settings) = &self.tls {
            return self.handshake(stream, settings).await;
        }
        Ok(Box::new(stream))
    }

    #[cfg(feature = "tls")]
    async fn handshake(
        &self,
        stream: TcpStream,
        settings: &TlsSettings,
    ) -> Result<Box<dyn Transport>, ConnectError> {
        use crate::tls;
        if settings.insecure {
            tracing::warn!(
                host = %self.host,
                "connecting with MPS_MQTT_TLS_INSECURE: the broker's certificate is not verified"
            );
        }
        let config =
            tls::client_config(settings).map_err(|e| ConnectError::TlsSetup(e.to_string()))?;
        let name = tls::server_name(&self.host).map_err(ConnectError::Tcp)?;
        let connector = tokio_rustls::TlsConnector::from(config);
        match connector.connect(name, stream).await {
            Ok(stream) => Ok(Box::new(stream)),
            Err(e) => Err(ConnectError::Handshake(tls::handshake_failure(
                &e, &self.host,
            ))),
        }
    }
}
