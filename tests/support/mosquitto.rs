//! Broker processes for the tests: a `mosquitto` started from `PATH` on a free loopback
//! port (killed on drop, restartable on the same port), or the in-process embedded broker
//! where Mosquitto is not installed.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;
use super::embedded_broker;
use super::ports::{POLL, accepts_now, free_port, wait_accepting};

/// Set to `1` (as CI does) to fail instead of falling back or skipping when `mosquitto` is
/// not installed.
pub const REQUIRE_MOSQUITTO: &str = "MPS_MQTT_REQUIRE_MOSQUITTO";

/// How long a broker gets to accept connections after it was started.
const BROKER_START_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts to start Mosquitto on a fresh port when it exits at once (port taken meanwhile).
const MOSQUITTO_ATTEMPTS: u32 = 3;

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
            if accepts_now(addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not accepting on {addr} after {BROKER_START_TIMEOUT:?}; log:\n{}",
                    fs::read_to_string(&self.log).unwrap_or_default()
                ));
            }
            std::thread::sleep(POLL);
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
