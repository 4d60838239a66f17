//! The seam between the MQTT session and the byte stream it runs on: the session speaks MQTT
//! over any [`Transport`], and a [`Connector`] makes one per connection attempt. Plain TCP
//! today; TLS and WebSocket streams plug in here without touching the session.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::BrokerAddress;

/// A connected byte stream to the broker.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

/// Opens connections to the broker.
#[derive(Debug, Clone)]
pub(crate) enum Connector {
    /// Plain TCP to `host:port` (IPv6 literals in brackets).
    Tcp { host: String, port: u16 },
}

impl Connector {
    pub(crate) fn new(broker: &BrokerAddress) -> Self {
        Self::Tcp {
            host: broker.host.clone(),
            port: broker.port,
        }
    }

    /// One connection; resolves the host name each time, so a broker that moved is found.
    pub(crate) async fn connect(&self) -> io::Result<Box<dyn Transport>> {
        match self {
            Self::Tcp { host, port } => {
                let stream = TcpStream::connect(format!("{host}:{port}")).await?;
                // Writes are already coalesced; Nagle would only delay the last one.
                stream.set_nodelay(true)?;
                Ok(Box::new(stream))
            }
        }
    }
}
