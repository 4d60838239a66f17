//! MQTT over WebSocket (cargo feature `websocket`): the handshake (subprotocol `mqtt`), and a
//! byte stream over the WebSocket's binary messages, so the session runs on it unchanged.
//! Each write of the session (already coalesced) becomes one binary message.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use super::connector::{ConnectError, Transport};

/// Opens the WebSocket over `stream` to `url` (`ws://host:port/path` or `wss://...`).
pub(crate) async fn handshake(
    url: &str,
    stream: Box<dyn Transport>,
) -> Result<Box<dyn Transport>, ConnectError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::WebSocket(format!("invalid WebSocket address: {e}")))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    match tokio_tungstenite::client_async(request, stream).await {
        Ok((socket, _)) => Ok(Box::new(WsBytes {
            socket,
            pending: Bytes::new(),
        })),
        Err(tungstenite::Error::Http(response)) => Err(ConnectError::WebSocket(format!(
            "the WebSocket endpoint answered HTTP {} (check the path in MPS_MQTT_ADDRESS; \
             the default is /mqtt)",
            response.status()
        ))),
        Err(tungstenite::Error::Io(e)) => Err(ConnectError::WebSocket(format!(
            "the WebSocket handshake failed: {e}"
        ))),
        Err(e) => Err(ConnectError::WebSocket(format!(
            "the WebSocket handshake failed: {e}"
        ))),
    }
}

/// The bytes of a WebSocket's binary messages as one stream.
struct WsBytes {
    socket: WebSocketStream<Box<dyn Transport>>,
    /// What is left of the last message received.
    pending: Bytes,
}

fn to_io(error: tungstenite::Error) -> io::Error {
    match error {
        tungstenite::Error::Io(e) => e,
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            io::ErrorKind::BrokenPipe.into()
        }
        other => io::Error::other(other.to_string()),
    }
}

impl AsyncRead for WsBytes {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending.is_empty() {
            match ready!(Pin::new(&mut self.socket).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => self.pending = data,
                // Pings are answered by the socket itself; text has no place in MQTT.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the broker sent a WebSocket text message; MQTT uses binary messages",
                    )));
                }
                // End of stream: the session reports the broker closing.
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WsBytes {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let socket = &mut self.socket;
        ready!(Pin::new(&mut *socket).poll_ready(cx)).map_err(to_io)?;
        let message = Message::Binary(Bytes::copy_from_slice(buf));
        Pin::new(socket).start_send(message).map_err(to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx).map_err(to_io)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.socket).poll_close(cx).map_err(to_io)
    }
}
