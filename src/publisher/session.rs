//! One MQTT 3.1.1 connection, the publisher's half of the protocol, over any [`Transport`],
//! with rumqttc's codec for every packet: CONNECT/CONNACK, PUBLISH, PUBACK, PINGREQ/PINGRESP
//! and DISCONNECT. It buffers what it is given and writes it in as few `write` calls as the
//! socket allows; it reads every packet that has arrived. No timers of its own: the worker
//! asks [`Session::keep_alive_at`] when to call [`Session::on_keep_alive`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use rumqttc::{Connect, ConnectReturnCode, Packet, Publish};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::connector::{ConnectError, Connector, Transport};

/// Largest packet accepted from the broker. A publisher receives only CONNACK, PUBACK and
/// PINGRESP (2 to 4 bytes); anything larger is a broker error.
const MAX_INCOMING: usize = 4096;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 4096;
/// `read` calls per poll before yielding, so a flooding broker cannot hold the task.
const READS_PER_POLL: usize = 16;

/// Why a connection failed or ended. Never contains credentials.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    #[error("{0}")]
    Connect(#[from] ConnectError),
    #[error("no CONNACK within the connect timeout ({0:?})")]
    ConnectTimeout(Duration),
    #[error("the broker refused the connection: {}", refusal(*.0))]
    Refused(ConnectReturnCode),
    #[error("connection lost: {0}")]
    Io(#[source] io::Error),
    #[error("the broker closed the connection")]
    Closed,
    #[error(
        "the broker closed the connection before its CONNACK (is this a TLS port? then use \
         mqtts://)"
    )]
    ClosedBeforeConnAck,
    #[error("the broker closed the connection in the middle of a packet")]
    ClosedMidPacket,
    #[error("the broker sent a malformed or oversized packet: {0}")]
    Malformed(String),
    #[error("the broker sent a {0} packet, which a publisher never receives")]
    Unexpected(&'static str),
    #[error("the broker did not answer PINGREQ within {0:?} (half the keep-alive)")]
    KeepAlive(Duration),
    #[error("cannot encode the {0} packet: {1}")]
    Encode(&'static str, String),
}

impl SessionError {
    /// Errors of one kind are logged once in a row; this names the kind.
    pub(crate) fn kind(&self) -> (&'static str, Option<u8>) {
        match self {
            Self::Connect(ConnectError::Tcp(_)) => ("connect", None),
            #[cfg(feature = "tls")]
            Self::Connect(ConnectError::TlsSetup(_)) => ("tls setup", None),
            #[cfg(feature = "tls")]
            Self::Connect(ConnectError::Handshake(_)) => ("tls handshake", None),
            #[cfg(feature = "websocket")]
            Self::Connect(ConnectError::WebSocket(_)) => ("websocket", None),
            Self::ConnectTimeout(_) => ("connect timeout", None),
            Self::Refused(code) => ("refused", Some(*code as u8)),
            Self::Io(_) | Self::Closed | Self::ClosedMidPacket => ("lost", None),
            Self::ClosedBeforeConnAck => ("closed before connack", None),
            Self::Malformed(_) | Self::Unexpected(_) => ("protocol", None),
            Self::KeepAlive(_) => ("keep-alive", None),
            Self::Encode(..) => ("encode", None),
        }
    }
}

/// An I/O error of the connection, with the meaning of a TLS alert the broker sent (after
/// the handshake, TLS 1.3 reports a refused client certificate this way).
fn io_error(error: io::Error) -> SessionError {
    #[cfg(feature = "tls")]
    if let Some(reason) = crate::tls::alert_reason(&error) {
        return SessionError::Connect(ConnectError::Handshake(reason));
    }
    SessionError::Io(error)
}

/// An I/O error before CONNACK: on a plain connection, a reset or a close most often means
/// the port speaks TLS.
fn io_error_before_connack(error: io::Error, plain: bool) -> SessionError {
    let closed = matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
    );
    if plain && closed {
        return SessionError::ClosedBeforeConnAck;
    }
    io_error(error)
}

/// What each CONNACK refusal means, and what to do about it.
fn refusal(code: ConnectReturnCode) -> &'static str {
    match code {
        ConnectReturnCode::Success => "accepted",
        ConnectReturnCode::RefusedProtocolVersion => {
            "unacceptable protocol version (the broker does not accept MQTT 3.1.1)"
        }
        ConnectReturnCode::BadClientId => {
            "identifier rejected (set MPS_MQTT_CLIENT_ID to a client id the broker accepts)"
        }
        ConnectReturnCode::ServiceUnavailable => "server unavailable (retrying)",
        ConnectReturnCode::BadUserNamePassword => {
            "bad user name or password (check the credentials in MPS_MQTT_ADDRESS, \
             MPS_MQTT_USERNAME and MPS_MQTT_PASSWORD or MPS_MQTT_PASSWORD_FILE)"
        }
        ConnectReturnCode::NotAuthorized => {
            "not authorised (the broker does not let this client connect: check the user name \
             and password, which Mosquitto refuses with this code, and the broker's rules)"
        }
    }
}

fn packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

/// A connected, accepted MQTT session.
pub(crate) struct Session {
    stream: Box<dyn Transport>,
    /// Received bytes not yet parsed (at most one partial packet between polls).
    read: BytesMut,
    scratch: Box<[u8; READ_CHUNK]>,
    /// Bytes to write; what is written is advanced out of it.
    write: BytesMut,
    /// Bytes ever written on this connection.
    written: u64,
    /// A write completed since the last flush (TLS streams buffer).
    unflushed: bool,
    /// Packet ids of PUBACKs read and not yet taken by the worker.
    acks: Vec<u16>,
    keep_alive: Duration,
    next_ping: Instant,
    pong_due: Option<Instant>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("written", &self.written)
            .field("to_write", &self.write.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects, sends CONNECT and waits for an accepting CONNACK. The caller bounds it with
    /// the connect timeout.
    pub(crate) async fn open(
        connector: &Connector,
        connect: &Connect,
    ) -> Result<Self, SessionError> {
        let mut stream = connector.connect().await?;
        let mut out = BytesMut::with_capacity(256);
        Packet::Connect(connect.clone())
            .write(&mut out, usize::MAX)
            .map_err(|e| SessionError::Encode("CONNECT", e.to_string()))?;
        let plain = !connector.is_tls();
        let failed = |e| io_error_before_connack(e, plain);
        stream.write_all(&out).await.map_err(failed)?;
        stream.flush().await.map_err(failed)?;
        let mut read = BytesMut::with_capacity(READ_CHUNK);
        let ack = loop {
            match Packet::read(&mut read, MAX_INCOMING) {
                Ok(Packet::ConnAck(ack)) => break ack,
                Ok(other) => return Err(SessionError::Unexpected(packet_name(&other))),
                Err(rumqttc::Error::InsufficientBytes(_)) => {}
                Err(e) => return Err(SessionError::Malformed(e.to_string())),
            }
            if stream.read_buf(&mut read).await.map_err(failed)? == 0 {
                return Err(if read.is_empty() && plain {
                    SessionError::ClosedBeforeConnAck
                } else if read.is_empty() {
                    SessionError::Closed
                } else {
                    SessionError::ClosedMidPacket
                });
            }
        };
        if ack.code != ConnectReturnCode::Success {
            return Err(SessionError::Refused(ack.code));
        }
        let keep_alive = Duration::from_secs(u64::from(connect.keep_alive));
        out.clear();
        Ok(Self {
            stream,
            read,
            scratch: Box::new([0; READ_CHUNK]),
            write: out,
            written: 0,
            unflushed: false,
            acks: Vec::new(),
            keep_alive,
            next_ping: Instant::now() + keep_alive,
            pong_due: None,
        })
    }

    /// Bytes waiting to be written.
    pub(crate) fn unwritten(&self) -> usize {
        self.write.len()
    }

    /// Bytes ever written on this connection.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Buffers a PUBLISH; returns where it ends in the connection's outgoing bytes.
    pub(crate) fn publish(&mut self, publish: &Publish) -> Result<u64, SessionError> {
        publish
            .write(&mut self.write)
            .map_err(|e| SessionError::Encode("PUBLISH", e.to_string()))?;
        Ok(self.written + self.write.len() as u64)
    }

    /// Takes the packet ids of the PUBACKs read so far.
    pub(crate) fn take_acks(&mut self) -> std::vec::Drain<'_, u16> {
        self.acks.drain(..)
    }

    /// When [`on_keep_alive`](Self::on_keep_alive) must run next.
    pub(crate) fn keep_alive_at(&self) -> Instant {
        self.pong_due.unwrap_or(self.next_ping)
    }

    /// Sends a PINGREQ when one is due, and fails when the last one went unanswered for
    /// half the keep-alive: a silent broker is detected within 1.5 times the keep-alive.
    pub(crate) fn on_keep_alive(&mut self, now: Instant) -> Result<(), SessionError> {
        if let Some(due) = self.pong_due {
            if now >= due {
                return Err(SessionError::KeepAlive(self.keep_alive / 2));
            }
            return Ok(());
        }
        if now >= self.next_ping {
            Packet::PingReq
                .write(&mut self.write, MAX_INCOMING)
                .map_err(|e| SessionError::Encode("PINGREQ", e.to_string()))?;
            self.pong_due = Some(now + self.keep_alive / 2);
            self.next_ping = now + self.keep_alive;
        }
        Ok(())
    }

    /// Writes what is buffered and reads what has arrived, without waiting. Ready with
    /// `Ok` once anything was written or read, so the caller can refill and settle; pending
    /// when the socket can take nothing and has nothing for us.
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SessionError>> {
        let mut progress = false;
        while !self.write.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.write) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(SessionError::Closed)),
                Poll::Ready(Ok(n)) => {
                    self.write.advance(n);
                    self.written += n as u64;
                    self.unflushed = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(e))),
                Poll::Pending => break,
            }
        }
        if self.unflushed && self.write.is_empty() {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(e))),
                Poll::Pending => {}
            }
        }
        for _ in 0..READS_PER_POLL {
            let mut buf = ReadBuf::new(&mut self.scratch[..]);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    return Poll::Ready(Err(if self.read.is_empty() {
                        SessionError::Closed
                    } else {
                        SessionError::ClosedMidPacket
                    }));
                }
                Poll::Ready(Ok(())) => {
                    self.read.extend_from_slice(buf.filled());
                    progress = true;
                    if let Err(e) = self.parse() {
                        return Poll::Ready(Err(e));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(e))),
                Poll::Pending => break,
            }
        }
        if progress {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// Parses every complete packet received.
    fn parse(&mut self) -> Result<(), SessionError> {
        loop {
            match Packet::read(&mut self.read, MAX_INCOMING) {
                Ok(Packet::PubAck(ack)) => self.acks.push(ack.pkid),
                Ok(Packet::PingResp) => self.pong_due = None,
                Ok(other) => return Err(SessionError::Unexpected(packet_name(&other))),
                Err(rumqttc::Error::InsufficientBytes(_)) => return Ok(()),
                Err(e) => return Err(SessionError::Malformed(e.to_string())),
            }
        }
    }

    /// Ends the session cleanly with `farewell` (if any) and DISCONNECT, if everything
    /// buffered was written (a half-written PUBLISH cannot be followed by another packet);
    /// waits until `deadline` at most.
    pub(crate) async fn disconnect(mut self, deadline: Instant, farewell: Option<&Publish>) {
        if !self.write.is_empty() {
            return;
        }
        let mut out = BytesMut::with_capacity(256);
        if let Some(farewell) = farewell {
            // The broker publishes no last will after a DISCONNECT: say it ourselves.
            let _ = farewell.write(&mut out);
        }
        if Packet::Disconnect.write(&mut out, MAX_INCOMING).is_err() {
            return;
        }
        let close = async {
            self.stream.write_all(&out).await?;
            self.stream.shutdown().await
        };
        let _ = tokio::time::timeout_at(deadline, close).await;
    }
}
