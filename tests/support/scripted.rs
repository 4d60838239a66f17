//! A scripted MQTT 3.1.1 broker for protocol faults, built on rumqttc's own codec.
//!
//! It listens on a free loopback port. Each accepted connection follows one [`Script`]: the
//! next one queued with [`ScriptedBroker::queue`], else the default. Everything a client
//! sends is recorded per connection, in order ([`Record`]), with the PUBACKs the broker sent
//! between them, and the test waits on those records with deadlines. A client that
//! misbehaves ends its connection, never the broker: no panic on the client's input.

mod session;

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{ConnectReturnCode, Packet, QoS};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Largest packet read from a client; a larger one ends its connection.
const MAX_PACKET: usize = 1 << 20;
/// Packet id of the PUBACK that [`Acks::unknown_first`] sends: never in flight in a test.
pub const UNKNOWN_PKID: u16 = 0xFFFE;

/// What the broker does on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Script {
    /// CONNACK success; PUBACKs as [`Acks`] says; PINGRESP to every PINGREQ.
    Accept(Acks),
    /// CONNACK with this refusal code, then close.
    Refuse(ConnectReturnCode),
    /// Never answer CONNECT: read and record, hold the socket open.
    NoConnAck,
    /// CONNACK, then answer nothing at all, PINGREQ included.
    Silent,
    /// As `Accept(Acks::NORMAL)`, and write `bytes` once `after_publishes` PUBLISH packets
    /// were read (0: right after CONNACK).
    Inject {
        after_publishes: usize,
        bytes: Vec<u8>,
    },
    /// As `Accept(Acks::NORMAL)` until the `publishes`-th PUBLISH, which is not acknowledged
    /// (or only its first half when `half_ack`), then close.
    CloseAfter { publishes: usize, half_ack: bool },
}

impl Script {
    /// CONNACK, PUBACK each QoS 1 PUBLISH at once, PINGRESP each PINGREQ.
    pub const ACCEPT: Script = Script::Accept(Acks::NORMAL);
    /// CONNACK, record every PUBLISH, acknowledge none.
    pub const WITHHOLD_ACKS: Script = Script::Accept(Acks::WITHHELD);
}

/// How an accepting connection acknowledges QoS 1 publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acks {
    pub order: AckOrder,
    /// Each PUBACK is sent twice.
    pub duplicate: bool,
    /// Each PUBACK is preceded by one for [`UNKNOWN_PKID`].
    pub unknown_first: bool,
}

impl Acks {
    pub const NORMAL: Acks = Acks::new(AckOrder::InOrder);
    pub const WITHHELD: Acks = Acks::new(AckOrder::Withheld);

    pub const fn new(order: AckOrder) -> Acks {
        Acks {
            order,
            duplicate: false,
            unknown_first: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOrder {
    /// Each PUBLISH is acknowledged as soon as it is read.
    InOrder,
    /// No PUBLISH is acknowledged.
    Withheld,
    /// Publishes are held until `n` are, then acknowledged newest first. Send a multiple of
    /// `n` events, no more than the publisher's window at once.
    ReverseEvery(usize),
}

/// One thing that happened on a connection, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Connect {
        client_id: String,
        keep_alive: u16,
        clean_session: bool,
        username: Option<String>,
    },
    Publish(Published),
    PingReq,
    Disconnect,
    /// Another packet from the client, in its `Debug` form.
    Other(String),
    /// A PUBACK the broker sent (not from the client).
    PubAckSent(u16),
}

/// A PUBLISH as the broker read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Index of the connection it came on, from 0.
    pub connection: usize,
    pub pkid: u16,
    pub dup: bool,
    pub qos: QoS,
    pub topic: String,
    /// The payload as JSON, or `{"invalid_json": "<text>"}`.
    pub payload: Value,
}

/// One accepted connection: when, what it recorded, and why it ended (`None` while open).
#[derive(Debug, Clone)]
pub struct Connection {
    pub accepted_at: Instant,
    pub script: Script,
    pub records: Vec<Record>,
    pub ended: Option<String>,
}

impl Connection {
    pub fn publishes(&self) -> impl Iterator<Item = &Published> {
        self.records.iter().filter_map(|r| match r {
            Record::Publish(p) => Some(p),
            _ => None,
        })
    }
}

#[derive(Debug)]
struct State {
    connections: Vec<Connection>,
    queued: VecDeque<Script>,
    default: Script,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Bumped on every change of `state`: what waiters wait on.
    changed: watch::Sender<u64>,
    /// Bumped by [`ScriptedBroker::cut`]: every open connection closes.
    cut: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.send_modify(|n| *n += 1);
    }

    fn record(&self, connection: usize, record: Record) {
        self.update(|s| s.connections[connection].records.push(record));
    }
}

/// The broker; it stops, closing every connection, when dropped.
#[derive(Debug)]
pub struct ScriptedBroker {
    pub port: u16,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

impl ScriptedBroker {
    /// Listens on `127.0.0.1:<free port>`; connections follow `default` unless one is queued.
    pub async fn start(default: Script) -> ScriptedBroker {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                connections: Vec::new(),
                queued: VecDeque::new(),
                default,
            }),
            changed: watch::channel(0).0,
            cut: watch::channel(0).0,
        });
        let acceptor = tokio::spawn(session::accept(listener, Arc::clone(&shared)));
        ScriptedBroker {
            port,
            shared,
            acceptor,
        }
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The next connection not yet accepted follows `script` (first in, first used).
    pub fn queue(&self, script: Script) {
        self.shared.update(|s| s.queued.push_back(script));
    }

    /// Connections follow `script` from now on when none is queued.
    pub fn set_default(&self, script: Script) {
        self.shared.update(|s| s.default = script);
    }

    /// Closes every open connection now.
    pub fn cut(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.lock().connections.len()
    }

    /// A copy of every connection's record so far.
    pub fn records(&self) -> Vec<Connection> {
        self.shared.lock().connections.clone()
    }

    /// Every PUBLISH read so far, in order of connection, then of arrival.
    pub fn publishes(&self) -> Vec<Published> {
        let state = self.shared.lock();
        state
            .connections
            .iter()
            .flat_map(|c| c.publishes().cloned())
            .collect()
    }

    /// Waits until `condition` holds on the connections (`true`) or `timeout` passes.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut condition: impl FnMut(&[Connection]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut changed = self.shared.changed.subscribe();
        loop {
            changed.borrow_and_update();
            if condition(&self.shared.lock().connections) {
                return true;
            }
            // Err: the deadline passed (the sender lives as long as `self`).
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Waits until `n` connections were accepted (`true`) or `timeout` passes.
    pub async fn wait_connections(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |c| c.len() >= n).await
    }

    /// Waits until `n` publishes were read, over all connections, or `timeout` passes;
    /// returns every publish read by then (fewer than `n` on timeout).
    pub async fn wait_publishes(&self, n: usize, timeout: Duration) -> Vec<Published> {
        self.wait_for(timeout, |c| {
            c.iter().map(|c| c.publishes().count()).sum::<usize>() >= n
        })
        .await;
        self.publishes()
    }
}

impl Drop for ScriptedBroker {
    fn drop(&mut self) {
        // Its JoinSet goes with it, aborting every connection.
        self.acceptor.abort();
    }
}

/// Bytes no MQTT packet starts with: a complete frame of reserved type 15, then junk.
pub fn garbage() -> Vec<u8> {
    vec![0xF0, 0x00, 0xDE, 0xAD, 0xBE, 0xEF]
}

/// The fixed header of a PUBLISH announcing 268,435,455 bytes (256 MB, the MQTT maximum),
/// and nothing after it.
pub fn oversized_header() -> Vec<u8> {
    vec![0x30, 0xFF, 0xFF, 0xFF, 0x7F]
}

/// `packet` encoded, for [`Script::Inject`].
pub fn encode(packet: &Packet) -> Vec<u8> {
    let mut buffer = BytesMut::new();
    packet.write(&mut buffer, MAX_PACKET).expect("encodable");
    buffer.to_vec()
}
