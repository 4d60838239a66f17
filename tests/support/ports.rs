//! Loopback ports: one that was free a moment ago, one reserved where nothing listens, and
//! bounded probes of whether something accepts on a port.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdTcpStream};
use std::time::{Duration, Instant};

/// How long one probe waits for a connection, and the pause between two probes.
pub(super) const POLL: Duration = Duration::from_millis(20);

/// A loopback port that was free a moment ago (reserved, then released). Nothing listens on
/// it unless someone binds it again, as a Mosquitto started on it does.
pub fn free_port() -> u16 {
    UnusedPort::reserve().port
}

/// A loopback port reserved for as long as this value lives, where nothing listens: the
/// socket is bound but not listening, so connections are refused and no broker started by
/// a parallel test can take the port.
#[derive(Debug)]
pub struct UnusedPort {
    socket: tokio::net::TcpSocket,
    pub port: u16,
}

impl UnusedPort {
    pub fn reserve() -> UnusedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("create a TCP socket");
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind 127.0.0.1:0");
        let port = socket.local_addr().expect("local addr").port();
        UnusedPort { socket, port }
    }

    /// The bound socket, to start listening on the reserved port.
    pub fn into_socket(self) -> tokio::net::TcpSocket {
        self.socket
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

/// Whether a TCP connection to `addr` succeeds within one [`POLL`].
pub(super) fn accepts_now(addr: SocketAddr) -> bool {
    StdTcpStream::connect_timeout(&addr, POLL).is_ok()
}

/// Probes `addr` every [`POLL`] until it accepts (`Some`) or `timeout` passes (`None`).
/// Blocks the thread.
pub(super) fn wait_accepting(addr: SocketAddr, timeout: Duration) -> Option<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if accepts_now(addr) {
            return Some(());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Whether a connection to `addr` is refused right now (nothing listens).
pub fn refuses_connections(addr: SocketAddr) -> bool {
    matches!(
        StdTcpStream::connect_timeout(&addr, Duration::from_millis(200)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}
