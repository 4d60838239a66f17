//! Helpers shared by the integration tests: a real MQTT broker, a subscriber that collects
//! what the broker delivers, an HTTP server for a router and a minimal HTTP client.
//!
//! Every wait here is bounded: conditions are polled or awaited with a deadline, and a helper
//! that runs out of time either returns what it has (`Option`, `bool`, a short `Vec`) or
//! panics with what it was waiting for.

// Each test binary uses a subset of these helpers.
#![allow(dead_code)]
// `pub` so that every test binary can reach them; the crate-wide lint does not fit a test
// helper module.
#![allow(unreachable_pub)]

#[path = "../../examples/embedded_broker/mod.rs"]
mod embedded_broker;

use std::fs::{self, File};
use std::future::Future;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener, TcpStream as StdTcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Set to `1` (as CI does) to fail instead of falling back or skipping when `mosquitto` is
/// not installed.
pub const REQUIRE_MOSQUITTO: &str = "MPS_MQTT_REQUIRE_MOSQUITTO";

/// How long a broker gets to accept connections after it was started.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a starting broker is probed with a TCP connect.
const BROKER_POLL: Duration = Duration::from_millis(20);
/// Attempts to start Mosquitto on a fresh port when it exits at once (port taken meanwhile).
const MOSQUITTO_ATTEMPTS: u32 = 3;
/// How long a subscriber waits for its CONNACK and SUBACK.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`http`] waits for a whole response.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between two polls of the subscriber's event loop after a connection error, so a
/// broker that is down is not hammered; rumqttc reconnects on the next poll.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// How often [`wait_until`] polls its condition.
const WAIT_POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Unique names

/// A number that differs per call and per process, for topics, client ids and directories.
pub fn unique_suffix() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let random = std::collections::hash_map::RandomState::new().hash_one((n, nanos));
    format!("{}-{n}-{random:016x}", std::process::id())
}

/// A topic no other test uses: `mps/events/test/<name>/<random>`, so that tests sharing a
/// broker never see each other's events.
pub fn unique_topic(test_name: &str) -> String {
    format!("mps/events/test/{test_name}/{}", unique_suffix())
}

/// Milliseconds since the Unix epoch, as event timestamps count them.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
        .try_into()
        .expect("fits u64")
}

// ---------------------------------------------------------------------------------------------
// Temporary directory

/// A directory under the system temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", unique_suffix()));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", path.display()));
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------------------------
// Broker

/// Which broker a [`Broker`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// A `mosquitto` process started from `PATH`, killed on drop.
    Mosquitto,
    /// The in-process rumqttd broker of `examples/embedded_broker` (lives until the test
    /// binary exits; it has no shutdown).
    Embedded,
}

/// A running MQTT broker on a loopback port.
pub struct Broker {
    pub port: u16,
    pub kind: BrokerKind,
    mosquitto: Option<Mosquitto>,
    // Kept so the embedded broker's handle lives as long as this value.
    embedded: Option<embedded_broker::EmbeddedBroker>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("port", &self.port)
            .field("kind", &self.kind)
            .field("mosquitto", &self.mosquitto)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct Mosquitto {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    // Last field: removed after the process is gone.
    dir: TempDir,
}

impl Broker {
    /// Mosquitto when it is installed, else the embedded broker (unless
    /// `MPS_MQTT_REQUIRE_MOSQUITTO=1`, which makes a missing `mosquitto` a failure).
    pub fn start() -> Broker {
        if let Some(binary) = find_on_path("mosquitto") {
            return Self::spawn_mosquitto(binary, "");
        }
        if require_mosquitto() {
            panic!(
                "mosquitto binary not found but {REQUIRE_MOSQUITTO}=1: install mosquitto \
                 (e.g. apt-get install mosquitto) or unset {REQUIRE_MOSQUITTO} to use the \
                 embedded broker"
            );
        }
        eprintln!("note: mosquitto not found, using the embedded broker");
        let embedded = embedded_broker::EmbeddedBroker::start();
        let addr = embedded.addr;
        wait_accepting(addr, BROKER_START_TIMEOUT)
            .unwrap_or_else(|| panic!("embedded broker did not accept on {addr} in time"));
        Broker {
            port: addr.port(),
            kind: BrokerKind::Embedded,
            mosquitto: None,
            embedded: Some(embedded),
        }
    }

    /// Mosquitto with `extra_conf` appended to the test configuration, for tests that need
    /// what only a real broker process offers (restart, kill, ACLs). `None` after printing
    /// `skipped: ...` when it is not installed; panics instead when
    /// `MPS_MQTT_REQUIRE_MOSQUITTO=1`.
    pub fn start_mosquitto_only(extra_conf: &str) -> Option<Broker> {
        match find_on_path("mosquitto") {
            Some(binary) => Some(Self::spawn_mosquitto(binary, extra_conf)),
            None if require_mosquitto() => panic!(
                "mosquitto binary not found but {REQUIRE_MOSQUITTO}=1: install mosquitto \
                 (e.g. apt-get install mosquitto)"
            ),
            None => {
                eprintln!("skipped: mosquitto binary not found on PATH (this test needs it)");
                None
            }
        }
    }

    /// `mqtt://127.0.0.1:<port>`, the syntax of `MPS_MQTT_ADDRESS`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// Kills Mosquitto with SIGKILL and waits for it to exit; the port stops accepting.
    ///
    /// # Panics
    ///
    /// On the embedded broker, which cannot be stopped.
    pub fn kill(&mut self) {
        let mosquitto = self
            .mosquitto
            .as_mut()
            .expect("only a Mosquitto broker can be killed; use start_mosquitto_only");
        mosquitto.kill();
    }

    /// Kills Mosquitto if it runs, then starts it again on the same port with the same
    /// configuration and waits until it accepts connections. Blocks the thread while it
    /// waits (as [`Broker::start`] does): call it from a multi-thread runtime.
    ///
    /// # Panics
    ///
    /// On the embedded broker, or when Mosquitto does not come back within 5 s.
    pub fn restart(&mut self) {
        let port = self.port;
        let mosquitto = self
            .mosquitto
            .as_mut()
            .expect("only a Mosquitto broker can be restarted; use start_mosquitto_only");
        mosquitto.kill();
        // The port may still be held for a moment by the dying process: retry a few times.
        for attempt in 1..=MOSQUITTO_ATTEMPTS {
            mosquitto.spawn();
            match mosquitto.wait_ready(port) {
                Ok(()) => return,
                Err(reason) if attempt < MOSQUITTO_ATTEMPTS => {
                    eprintln!("mosquitto restart attempt {attempt} failed: {reason}");
                    mosquitto.kill();
                }
                Err(reason) => panic!("mosquitto did not restart on port {port}: {reason}"),
            }
        }
    }

    /// Whether Mosquitto is running (always true for the embedded broker).
    pub fn is_running(&self) -> bool {
        self.mosquitto.as_ref().is_none_or(|m| m.child.is_some())
    }

    /// The PID of the running Mosquitto process, for signals such as SIGSTOP/SIGCONT
    /// (`None` for the embedded broker or while Mosquitto is stopped).
    pub fn pid(&self) -> Option<u32> {
        self.mosquitto.as_ref()?.child.as_ref().map(Child::id)
    }

    /// Mosquitto's log so far (empty for the embedded broker).
    pub fn log(&self) -> String {
        self.mosquitto
            .as_ref()
            .map(|m| fs::read_to_string(&m.log).unwrap_or_default())
            .unwrap_or_default()
    }

    fn spawn_mosquitto(binary: PathBuf, extra_conf: &str) -> Broker {
        let mut failures = Vec::new();
        for _ in 0..MOSQUITTO_ATTEMPTS {
            let port = free_port();
            let dir = TempDir::new("mps-mqtt-events-mosquitto");
            let config = dir.path().join("mosquitto.conf");
            let log = dir.path().join("mosquitto.log");
            let text = format!(
                "listener {port} 127.0.0.1\n\
                 allow_anonymous true\n\
                 persistence false\n\
                 log_dest stderr\n\
                 log_type error\n\
                 log_type warning\n\
                 log_type notice\n\
                 log_type information\n\
                 {extra_conf}\n"
            );
            fs::write(&config, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
            let mut mosquitto = Mosquitto {
                binary: binary.clone(),
                config,
                log,
                child: None,
                dir,
            };
            mosquitto.spawn();
            match mosquitto.wait_ready(port) {
                Ok(()) => {
                    return Broker {
                        port,
                        kind: BrokerKind::Mosquitto,
                        mosquitto: Some(mosquitto),
                        embedded: None,
                    };
                }
                Err(reason) => {
                    mosquitto.kill();
                    failures.push(format!("port {port}: {reason}"));
                }
            }
        }
        panic!(
            "mosquitto did not start after {MOSQUITTO_ATTEMPTS} attempts:\n{}",
            failures.join("\n")
        );
    }
}

impl Mosquitto {
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "mosquitto already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let log_err = log.try_clone().expect("clone log file handle");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// Polls the port until it accepts, the process exits, or the start timeout passes.
    fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "mosquitto exited with {status}; log:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            if StdTcpStream::connect_timeout(&addr, BROKER_POLL).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not accepting on {addr} after {BROKER_START_TIMEOUT:?}; log:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            std::thread::sleep(BROKER_POLL);
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

fn require_mosquitto() -> bool {
    std::env::var(REQUIRE_MOSQUITTO).is_ok_and(|v| v.trim() == "1")
}

/// Directories searched after `PATH`: Debian and Homebrew install the broker in an `sbin`
/// that a non-login `PATH` often lacks.
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/opt/homebrew/sbin"];

/// The first executable file called `name` in a `PATH` directory, or else in an `sbin`
/// directory where packages put daemons.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// A loopback port that was free a moment ago (bound to port 0, then released). Nothing
/// listens on it unless someone binds it again.
pub fn free_port() -> u16 {
    let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
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

fn wait_accepting(addr: SocketAddr, timeout: Duration) -> Option<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if StdTcpStream::connect_timeout(&addr, BROKER_POLL).is_ok() {
            return Some(());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(BROKER_POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// Subscriber

/// One PUBLISH as the subscriber received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub topic: String,
    pub qos: QoS,
    /// The payload parsed as JSON; a payload that is not JSON arrives as
    /// `{"invalid_json": "<text>"}` so that comparisons fail with the text in view.
    pub payload: serde_json::Value,
    /// The payload as sent, for checks of field order and compactness.
    pub raw: String,
}

/// An MQTT client subscribed at QoS 1 to one topic, collecting what arrives.
///
/// It subscribes again after every reconnect (clean sessions), so it survives a broker
/// restart; what is published while it is disconnected is lost.
#[derive(Debug)]
pub struct Subscriber {
    client: AsyncClient,
    received: mpsc::UnboundedReceiver<Received>,
    task: JoinHandle<()>,
    pub topic: String,
}

impl Subscriber {
    /// Connects to `broker` (`mqtt://host:port`, `host:port` or a bare loopback port),
    /// subscribes to `topic` at QoS 1 and returns once the broker sent SUBACK.
    ///
    /// # Panics
    ///
    /// When no SUBACK arrives within 5 s.
    pub async fn connect(broker: &str, topic: &str) -> Subscriber {
        let (host, port) = host_port(broker);
        let client_id = format!("test-sub-{}", unique_suffix());
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(true);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        let (tx, received) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let topic_owned = topic.to_owned();
        let resubscriber = client.clone();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            let mut connections = 0_u64;
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connections += 1;
                        if connections > 1 {
                            // A clean session forgets the subscription: make it again.
                            let _ =
                                resubscriber.try_subscribe(topic_owned.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let payload =
                            serde_json::from_slice(&publish.payload).unwrap_or_else(|_| {
                                serde_json::json!({
                                    "invalid_json": String::from_utf8_lossy(&publish.payload)
                                })
                            });
                        let message = Received {
                            topic: publish.topic,
                            qos: publish.qos,
                            payload,
                            raw: String::from_utf8_lossy(&publish.payload).into_owned(),
                        };
                        if tx.send(message).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(RECONNECT_PAUSE).await,
                }
            }
        });
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .expect("queue SUBSCRIBE");
        match tokio::time::timeout(SUBACK_TIMEOUT, subscribed).await {
            Ok(Ok(())) => {}
            _ => {
                task.abort();
                panic!("no SUBACK for {topic:?} from {broker} within {SUBACK_TIMEOUT:?}");
            }
        }
        Subscriber {
            client,
            received,
            task,
            topic: topic.to_owned(),
        }
    }

    /// The next message, or `None` when none arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Received> {
        tokio::time::timeout(timeout, self.received.recv())
            .await
            .ok()
            .flatten()
    }

    /// Up to `n` messages, returning early with fewer when `timeout` (for all of them)
    /// passes first.
    pub async fn collect(&mut self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut all = Vec::with_capacity(n);
        while all.len() < n {
            match tokio::time::timeout_at(deadline, self.received.recv()).await {
                Ok(Some(message)) => all.push(message),
                Ok(None) | Err(_) => break,
            }
        }
        all
    }

    /// Panics if any message arrives within `duration`. Only to check that nothing more
    /// comes: here the bounded wait itself is the signal.
    pub async fn assert_quiet(&mut self, duration: Duration) {
        if let Ok(Some(extra)) = tokio::time::timeout(duration, self.received.recv()).await {
            panic!(
                "expected no more messages on {:?} within {duration:?}, got {extra:#?}",
                self.topic
            );
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.task.abort();
    }
}

/// `(host, port)` from `mqtt://host:port`, `tcp://host:port`, `host:port` or `port`.
fn host_port(broker: &str) -> (String, u16) {
    let rest = broker.split_once("://").map_or(broker, |(_, rest)| rest);
    let rest = rest.trim_end_matches('/');
    if let Ok(port) = rest.parse::<u16>() {
        return ("127.0.0.1".to_owned(), port);
    }
    let (host, port) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("broker address {broker:?} has no port"));
    let port = port
        .parse()
        .unwrap_or_else(|_| panic!("broker address {broker:?} has a bad port"));
    (host.trim_matches(['[', ']']).to_owned(), port)
}

// ---------------------------------------------------------------------------------------------
// HTTP server and client

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

/// Whether a connection to `addr` is refused right now (nothing listens).
pub fn refuses_connections(addr: SocketAddr) -> bool {
    matches!(
        StdTcpStream::connect_timeout(&addr, Duration::from_millis(200)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `condition` every 10 ms until it holds (`true`) or `timeout` passes (`false`).
pub async fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// Awaits `future` for at most `timeout`, panicking with `what` when it takes longer.
pub async fn within<T>(timeout: Duration, what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: not done within {timeout:?}"))
}
