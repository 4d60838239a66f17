//! The seam between the MQTT session and the byte stream it runs on: the session speaks MQTT
//! over any [`Transport`], and a [`Connector`] makes one per connection attempt: TCP, then TLS
//! over it (cargo feature `tls`) and a WebSocket over that (feature `websocket`), as the
//! address's scheme asks.

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
    /// The WebSocket handshake failed; the text says what it means.
    #[cfg(feature = "websocket")]
    #[error("{0}")]
    WebSocket(String),
}

/// Opens connections to the broker.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    scheme: Scheme,
    host: String,
    port: u16,
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    path: String,
    #[cfg(feature = "tls")]
    tls: Option<TlsSettings>,
}

impl Connector {
    pub(crate) fn new(config: &Config) -> Self {
        let broker = &config.broker;
        debug_assert_eq!(broker.scheme.is_tls(), config.tls.is_some());
        Self {
            scheme: broker.scheme,
            host: broker.host.clone(),
            port: broker.port,
            path: broker.path.clone(),
            #[cfg(feature = "tls")]
            tls: config.tls.clone(),
        }
    }

    /// Whether the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        self.scheme.is_tls()
    }

    /// One connection; resolves the host name each time, so a broker that moved is found,
    /// and reads TLS files each time, so renewed certificates are used.
    pub(crate) async fn connect(&self) -> Result<Box<dyn Transport>, ConnectError> {
        let tcp = TcpStream::connect(format!("{}:{}", self.host, self.port))
            .await
            .map_err(ConnectError::Tcp)?;
        // Writes are already coalesced; Nagle would only delay the last one.
        tcp.set_nodelay(true).map_err(ConnectError::Tcp)?;
        #[allow(unused_mut)]
        let mut stream: Box<dyn Transport> = Box::new(tcp);
        #[cfg(feature = "tls")]
        if let Some(settings) = &self.tls {
            stream = self.tls_handshake(stream, settings).await?;
        }
        #[cfg(feature = "websocket")]
        if matches!(self.scheme, Scheme::Ws | Scheme::Wss) {
            let url = format!(
                "{}://{}:{}{}",
                self.scheme.as_str(),
                self.host,
                self.port,
                self.path
            );
            stream = super::websocket::handshake(&url, stream).await?;
        }
        Ok(stream)
    }

    #[cfg(feature = "tls")]
    async fn tls_handshake(
        &self,
        stream: Box<dyn Transport>,
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
