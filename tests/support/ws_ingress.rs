//! A WebSocket ingress in front of a broker's plain TCP port, as Kong or an nginx ingress
//! puts one in front of Mosquitto: it accepts WebSocket connections (subprotocol `mqtt`) on
//! one path, over TLS if given a server configuration, and forwards the bytes of their binary
//! messages to the broker and back. Used where the broker itself has no WebSocket listener
//! (Debian's Mosquitto is built without one).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

/// Connections and messages seen, for tests to check what crossed the ingress.
#[derive(Debug, Default)]
pub struct IngressCounts {
    /// WebSocket connections accepted on the right path.
    pub connections: AtomicU64,
    /// Binary messages received from clients.
    pub messages_in: AtomicU64,
    /// Bytes of those messages.
    pub bytes_in: AtomicU64,
}

/// A running ingress; stops accepting when dropped.
#[derive(Debug)]
pub struct WsIngress {
    pub addr: SocketAddr,
    pub counts: Arc<IngressCounts>,
    accept: JoinHandle<()>,
}

impl Drop for WsIngress {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl WsIngress {
    /// Serves `path` on a free loopback port, forwarding to `127.0.0.1:broker_port`; over
    /// TLS when `tls` is given.
    pub async fn start(broker_port: u16, path: &'static str, tls: Option<ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let counts = Arc::new(IngressCounts::default());
        let tls = tls.map(|config| TlsAcceptor::from(Arc::new(config)));
        let shared = Arc::clone(&counts);
        let accept = tokio::spawn(async move {
            // Bounded by the test: the task is aborted when the ingress is dropped.
            while let Ok((tcp, _)) = listener.accept().await {
                let (counts, tls) = (Arc::clone(&shared), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve(stream, broker_port, path, counts).await;
                            }
                        }
                        None => serve(tcp, broker_port, path, counts).await,
                    }
                });
            }
        });
        WsIngress {
            addr,
            counts,
            accept,
        }
    }

    /// `ws://127.0.0.1:<port><path>` (or `wss://` for a TLS ingress; `scheme` says which).
    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://127.0.0.1:{}{path}", self.addr.port())
    }

    pub fn connections(&self) -> u64 {
        self.counts.connections.load(Ordering::Relaxed)
    }

    pub fn messages_in(&self) -> u64 {
        self.counts.messages_in.load(Ordering::Relaxed)
    }
}

/// One client: the WebSocket handshake (404 on another path), then bytes both ways until
/// either side closes.
async fn serve<S>(stream: S, broker_port: u16, path: &'static str, counts: Arc<IngressCounts>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The callback's type is tungstenite's; its error is an HTTP response.
    #[allow(clippy::result_large_err)]
    let check = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        if request.uri().path() != path {
            let mut refusal = ErrorResponse::new(Some("no such path".to_owned()));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        let offered = request
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim() == "mqtt"));
        if offered {
            let headers = response.headers_mut();
            headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
        }
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    counts.connections.fetch_add(1, Ordering::Relaxed);
    let Ok(mut broker) = TcpStream::connect(("127.0.0.1", broker_port)).await else {
        return;
    };
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Binary(data))) => {
                    counts.messages_in.fetch_add(1, Ordering::Relaxed);
                    counts.bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
                    if broker.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            read = broker.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = bytes::Bytes::copy_from_slice(&buf[..n]);
                    if socket.send(Message::Binary(data)).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
}
