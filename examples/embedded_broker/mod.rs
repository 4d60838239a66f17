//! A tiny in-process MQTT broker ([rumqttd]) for the `mps_server` example and for tests on
//! machines without Mosquitto.
//!
//! **A demo broker, not a production one.** It listens on a free loopback port with one
//! MQTT 3.1.1 (v4) listener, no TLS and no authentication, and it has no shutdown: the broker
//! runs on its own threads until the process exits. Known quirks of rumqttd 0.20:
//!
//! - QoS 0 publishes reach subscribers as QoS 1.
//! - It logs an `ERROR` through `tracing` on every clean client disconnect. This module
//!   installs no subscriber; filter the `rumqttd` target out (`RUST_LOG=info,rumqttd=off`)
//!   where one is installed.
//! - It keeps each topic's messages in memory, up to [`SEGMENT_SIZE`] × [`SEGMENT_COUNT`]
//!   bytes per topic (10 MiB here), even after they were delivered. A subscriber that falls
//!   further behind than that loses messages without notice, even at QoS 1. Measure
//!   throughput against Mosquitto, not against this broker.
//!
//! Used from `examples/mps_server/main.rs` (`#[path = "../embedded_broker/mod.rs"] mod
//! embedded_broker;`) and from `tests/support` (`#[path =
//! "../../examples/embedded_broker/mod.rs"] mod embedded_broker;`), so it depends on nothing
//! else in the example.
//!
//! [rumqttd]: https://docs.rs/rumqttd/0.20

// Each includer uses only part of this module (the tests never call `url`), and it is a
// private module of a binary, so nothing in it is reachable from outside the crate; both
// lints would fire under `-D warnings` although nothing is wrong.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// How long [`EmbeddedBroker::start`] waits for the broker to accept TCP connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes in one in-memory log segment per topic.
pub const SEGMENT_SIZE: usize = 1024 * 1024;
/// Segments kept per topic; the oldest is dropped when a new one starts.
pub const SEGMENT_COUNT: usize = 10;
/// Pause between two connection probes while the broker starts.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Timeout of one connection probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);
/// Fresh ports tried when the broker could not listen on the one it was given (another
/// process took it between our probe bind and rumqttd's bind).
const PORT_ATTEMPTS: u32 = 3;

/// A running in-process rumqttd broker on `127.0.0.1`; see the [module docs](self).
///
/// Dropping it does not stop the broker: it lives until the process exits.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    /// Where the broker accepts MQTT 3.1.1 connections.
    pub addr: SocketAddr,
}

impl EmbeddedBroker {
    /// Starts rumqttd on its own OS thread on a free `127.0.0.1` port and returns once it
    /// accepts TCP connections.
    ///
    /// Blocks the calling thread for up to [`START_TIMEOUT`] (usually a few milliseconds);
    /// call it before entering an async runtime, or from a multi-thread one.
    ///
    /// # Panics
    ///
    /// When no free port can be found, the thread cannot be spawned, or the broker does not
    /// accept connections within [`START_TIMEOUT`].
    pub fn start() -> EmbeddedBroker {
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let addr = free_loopback_addr();
            match start_on(addr) {
                Ok(()) => return EmbeddedBroker { addr },
                Err(Failure::Exited(reason)) => last_failure = reason,
                Err(Failure::TimedOut) => panic!(
                    "embedded MQTT broker (rumqttd) did not accept connections on {addr} \
                     within {START_TIMEOUT:?}"
                ),
            }
        }
        panic!(
            "embedded MQTT broker (rumqttd) could not start after {PORT_ATTEMPTS} attempts: \
             {last_failure}"
        )
    }

    /// The broker address in the syntax of `MPS_MQTT_ADDRESS`: `mqtt://127.0.0.1:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}

/// Why one start attempt failed.
enum Failure {
    /// The broker thread ended (typically: the port was taken meanwhile); retry elsewhere.
    Exited(String),
    /// Still not accepting at the deadline.
    TimedOut,
}

/// A port that was free a moment ago: bind port 0, read the port, release it.
fn free_loopback_addr() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("embedded MQTT broker: cannot bind 127.0.0.1:0: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("embedded MQTT broker: cannot read the bound address: {e}"))
}

/// Spawns the broker thread for `addr` and waits until the port accepts connections.
fn start_on(addr: SocketAddr) -> Result<(), Failure> {
    // The thread reports when `Broker::start` returns, which it only does when the broker
    // failed: rumqttd logs a bind error and its listener thread ends.
    let (exited_tx, exited_rx) = mpsc::channel::<String>();
    thread::Builder::new()
        .name(format!("rumqttd-{}", addr.port()))
        .spawn(move || {
            let mut broker = Broker::new(config(addr));
            let reason = match broker.start() {
                Ok(()) => format!("rumqttd stopped at once (is {addr} taken?)"),
                Err(e) => format!("rumqttd failed on {addr}: {e}"),
            };
            // The receiver is gone once the broker was found running; nothing to tell then.
            let _ = exited_tx.send(reason);
        })
        .unwrap_or_else(|e| panic!("embedded MQTT broker: cannot spawn its thread: {e}"));

    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(reason) = exited_rx.try_recv() {
            return Err(Failure::Exited(reason));
        }
        if TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Failure::TimedOut);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// The whole rumqttd configuration, in code: one v4 listener on `addr`.
fn config(addr: SocketAddr) -> Config {
    let listener = ServerSettings {
        name: "embedded-v4".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            // Time a client gets to send CONNECT after the TCP connect.
            connection_timeout_ms: 5_000,
            max_payload_size: 256 * 1024,
            // Packets rumqttd reads from one connection before handing them to the router.
            max_inflight_count: 500,
            auth: None,
            external_auth: None,
            // Without it, subscriptions to topics nobody has published on yet never match.
            dynamic_filters: true,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1_000,
            max_outgoing_packet_count: 200,
            max_segment_size: SEGMENT_SIZE,
            max_segment_count: SEGMENT_COUNT,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), listener)])),
        ..Config::default()
    }
}
