//! An HTTP server for a router and a minimal HTTP/1.1 client, each bounded in time.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How long [`http`] waits for a whole response.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Aborts the server task on drop.
#[derive(Debug)]
pub struct ServerGuard {
    task: JoinHandle<()>,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `router` on a fresh loopback port until the guard is dropped.
pub async fn serve(router: axum::Router) -> (SocketAddr, ServerGuard) {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("test server stopped: {e}");
        }
    });
    (addr, ServerGuard { task })
}

/// The raw bytes of an HTTP/1.1 request, with `Connection: close` unless `keep_alive`.
pub fn request_bytes(method: &str, path: &str, body: Option<&str>, keep_alive: bool) -> Vec<u8> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if !keep_alive {
        request.push_str("Connection: close\r\n");
    }
    if let Some(body) = body {
        request.push_str("Content-Type: application/json\r\n");
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    } else {
        request.push_str("\r\n");
    }
    request.into_bytes()
}

/// Sends one request and returns the response status. One connection per request.
///
/// # Panics
///
/// When the server does not answer with a status line within 10 s.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> u16 {
    http_response(addr, method, path, body).await.0
}

/// Sends one request and returns the response status and body (lossy UTF-8; not chunked
/// decoded, so meant for handlers that answer with a fixed body).
///
/// # Panics
///
/// When the server does not answer with a status line within 10 s.
pub async fn http_response(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(&request_bytes(method, path, body, false))
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = match tokio::time::timeout(HTTP_TIMEOUT, exchange).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => panic!("{method} {path}: {e}"),
        Err(_) => panic!("{method} {path}: no response within {HTTP_TIMEOUT:?}"),
    };
    let status = parse_status(&response).unwrap_or_else(|| {
        panic!(
            "{method} {path}: bad response {:?}",
            String::from_utf8_lossy(&response)
        )
    });
    let body = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|end| String::from_utf8_lossy(&response[end + 4..]).into_owned())
        .unwrap_or_default();
    (status, body)
}

fn parse_status(response: &[u8]) -> Option<u16> {
    let line_end = response.iter().position(|b| *b == b'\r')?;
    let line = std::str::from_utf8(&response[..line_end]).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Opens a connection and sends a (keep-alive) request without waiting for the answer; drop
/// the stream to make the client go away, which makes hyper drop the handler's future.
pub async fn send_request_only(addr: SocketAddr, method: &str, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to test server");
    stream
        .write_all(&request_bytes(method, path, None, true))
        .await
        .expect("send request");
    stream
}
