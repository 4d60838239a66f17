//! The `mps_server` example as a child process: found next to this test binary (cargo builds
//! examples for `cargo test`), started on a free loopback port, killed (by its PID) on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::output::Output;

/// How long the example gets to print its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The line the example prints once it listens.
const LISTENING: &str = "listening on http://";

/// `target/<profile>/examples/mps_server`, from `target/<profile>/deps/<this test>`.
///
/// # Panics
///
/// When it is not there: the test was not run through `cargo test`, or only this test target
/// was built.
pub(crate) fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("unexpected test binary path {}", exe.display()));
    let binary = profile_dir
        .join("examples")
        .join(format!("mps_server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "{} not found: run this test via `cargo test --all-features`, which builds the \
         examples (`cargo test --test browser` alone does not: run `cargo build --all-features \
         --example mps_server` first then)",
        binary.display()
    );
    binary
}

/// The running example.
pub(crate) struct Example {
    child: Child,
    /// Where it serves `/api/v1` and `/events`.
    pub(crate) addr: SocketAddr,
    stdout: Output,
    stderr: Output,
}

impl Example {
    /// Starts `binary` on `127.0.0.1:0` with the events on `topic`, at `broker`
    /// (`mqtt://...`) or, when `None`, at the example's embedded broker. Every other
    /// `MPS_MQTT_*` variable of this process is removed.
    ///
    /// # Panics
    ///
    /// When it does not print its listening address within 20 s.
    pub(crate) fn start(binary: &PathBuf, broker: Option<&str>, topic: &str) -> Example {
        let mut command = Command::new(binary);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("MPS_") {
                command.env_remove(key);
            }
        }
        command
            .env("MPS_WEB_HOST", "127.0.0.1")
            .env("MPS_WEB_PORT", "0")
            .env("MPS_MQTT_TOPIC", topic)
            .env("RUST_LOG", "warn,rumqttd=off");
        if let Some(broker) = broker {
            command.env("MPS_MQTT_ADDRESS", broker);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let (found_tx, found_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout = Output::collect("mps_server", stdout, Some((LISTENING, found_tx)));
        let stderr = child.stderr.take().expect("piped stderr");
        let stderr = Output::collect("mps_server stderr", stderr, None);
        let line = found_rx.recv_timeout(START_TIMEOUT);
        let mut example = Example {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout,
            stderr,
        };
        let addr = line.ok().and_then(|line| {
            let rest = line.strip_prefix(LISTENING)?;
            rest.split('/').next()?.parse().ok()
        });
        example.addr = addr.unwrap_or_else(|| {
            panic!(
                "the example printed no `{LISTENING}ADDR` line within {START_TIMEOUT:?}:\n{}",
                example.output()
            )
        });
        example
    }

    /// Everything kept of what it printed.
    pub(crate) fn output(&self) -> String {
        format!("{}{}", self.stdout.tail(), self.stderr.tail())
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("the example's last output:\n{}", self.output());
        }
    }
}
