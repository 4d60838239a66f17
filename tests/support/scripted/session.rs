//! The scripted broker's side of a connection: accepting it, and following its [`Script`]
//! packet by packet.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::{ConnAck, ConnectReturnCode, Packet, PubAck, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    AckOrder, Acks, Connection, MAX_PACKET, Published, Record, Script, Shared, UNKNOWN_PKID, encode,
};

/// Packets one connection may send before the broker hangs up.
const MAX_PACKETS: usize = 100_000;
/// Longest life of one connection.
const MAX_LIFE: Duration = Duration::from_secs(120);
/// Connections the broker accepts over its life.
const MAX_CONNECTIONS: usize = 1_000;

pub(super) async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    for _ in 0..MAX_CONNECTIONS {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while sessions.try_join_next().is_some() {}
        let mut index = 0;
        let mut script = Script::ACCEPT;
        shared.update(|s| {
            script = s.queued.pop_front().unwrap_or_else(|| s.default.clone());
            index = s.connections.len();
            s.connections.push(Connection {
                accepted_at: Instant::now(),
                script: script.clone(),
                records: Vec::new(),
                ended: None,
            });
        });
        let mut session = Session {
            shared: Arc::clone(&shared),
            index,
            script,
            stream,
            buffer: BytesMut::new(),
            held: Vec::new(),
            publishes: 0,
        };
        let mut cut = shared.cut.subscribe();
        cut.borrow_and_update();
        sessions.spawn(async move {
            let ended = tokio::select! {
                result = tokio::time::timeout(MAX_LIFE, session.run()) => match result {
                    Ok(Ok(why)) => why,
                    Ok(Err(error)) => error,
                    Err(_) => format!("open longer than {MAX_LIFE:?}"),
                },
                _ = cut.changed() => "cut by the test".to_owned(),
            };
            // The socket closes when `session` drops, after the record says why.
            let index = session.index;
            session
                .shared
                .update(|s| s.connections[index].ended = Some(ended));
        });
    }
}

/// One connection: its script, the bytes read and not yet decoded, the publishes held for
/// reversed acknowledgement, and how many publishes came.
struct Session {
    shared: Arc<Shared>,
    index: usize,
    script: Script,
    stream: TcpStream,
    buffer: BytesMut,
    held: Vec<u16>,
    publishes: usize,
}

impl Session {
    /// Follows the script until the client goes or the script closes; `Ok` says why it
    /// ended normally, `Err` what went wrong.
    async fn run(&mut self) -> Result<String, String> {
        for _ in 0..MAX_PACKETS {
            let Some(packet) = self.read().await? else {
                return Ok("closed by the client".to_owned());
            };
            match packet {
                Packet::Connect(connect) => {
                    self.shared.record(
                        self.index,
                        Record::Connect {
                            client_id: connect.client_id,
                            keep_alive: connect.keep_alive,
                            clean_session: connect.clean_session,
                            username: connect.login.map(|l| l.username),
                        },
                    );
                    match self.script.clone() {
                        Script::NoConnAck => {}
                        Script::Refuse(code) => {
                            self.write(&Packet::ConnAck(ConnAck::new(code, false)))
                                .await?;
                            return Ok(format!("refused with {code:?}"));
                        }
                        script => {
                            let success = ConnAck::new(ConnectReturnCode::Success, false);
                            self.write(&Packet::ConnAck(success)).await?;
                            self.inject_if(&script, 0).await?;
                        }
                    }
                }
                Packet::Publish(publish) => {
                    self.publishes += 1;
                    let pkid = publish.pkid;
                    let payload = serde_json::from_slice(&publish.payload).unwrap_or_else(|_| {
                        serde_json::json!({
                            "invalid_json": String::from_utf8_lossy(&publish.payload)
                        })
                    });
                    let acked = publish.qos != QoS::AtMostOnce;
                    self.shared.record(
                        self.index,
                        Record::Publish(Published {
                            connection: self.index,
                            pkid,
                            dup: publish.dup,
                            qos: publish.qos,
                            topic: publish.topic,
                            payload,
                        }),
                    );
                    match self.script.clone() {
                        Script::Accept(acks) if acked => self.ack(acks, pkid).await?,
                        Script::Inject { .. } if acked => self.ack(Acks::NORMAL, pkid).await?,
                        Script::CloseAfter {
                            publishes,
                            half_ack,
                        } if self.publishes >= publishes => {
                            if half_ack {
                                let whole = encode(&Packet::PubAck(PubAck::new(pkid)));
                                self.write_bytes(&whole[..whole.len() / 2]).await?;
                            }
                            return Ok(format!("closed after {publishes} publishes"));
                        }
                        Script::CloseAfter { .. } if acked => self.ack(Acks::NORMAL, pkid).await?,
                        _ => {}
                    }
                    let script = self.script.clone();
                    self.inject_if(&script, self.publishes).await?;
                }
                Packet::PingReq => {
                    self.shared.record(self.index, Record::PingReq);
                    if !matches!(self.script, Script::Silent | Script::NoConnAck) {
                        self.write(&Packet::PingResp).await?;
                    }
                }
                Packet::Disconnect => {
                    self.shared.record(self.index, Record::Disconnect);
                    return Ok("DISCONNECT".to_owned());
                }
                other => self
                    .shared
                    .record(self.index, Record::Other(format!("{other:?}"))),
            }
        }
        Err(format!("more than {MAX_PACKETS} packets"))
    }

    /// The next packet, `None` when the client closed between packets.
    async fn read(&mut self) -> Result<Option<Packet>, String> {
        // Bounded: each turn reads at least one byte, and the codec refuses a frame
        // longer than MAX_PACKET before it is buffered whole.
        loop {
            match Packet::read(&mut self.buffer, MAX_PACKET) {
                Ok(packet) => return Ok(Some(packet)),
                Err(rumqttc::Error::InsufficientBytes(_)) => {}
                Err(error) => return Err(format!("undecodable packet: {error}")),
            }
            match self.stream.read_buf(&mut self.buffer).await {
                Ok(0) if self.buffer.is_empty() => return Ok(None),
                Ok(0) => return Err("closed by the client mid-packet".to_owned()),
                Ok(_) => {}
                Err(error) => return Err(format!("read: {error}")),
            }
        }
    }

    async fn write(&mut self, packet: &Packet) -> Result<(), String> {
        self.write_bytes(&encode(packet)).await?;
        if let Packet::PubAck(ack) = packet {
            self.shared.record(self.index, Record::PubAckSent(ack.pkid));
        }
        Ok(())
    }

    async fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    async fn ack(&mut self, acks: Acks, pkid: u16) -> Result<(), String> {
        let pkids = match acks.order {
            AckOrder::InOrder => vec![pkid],
            AckOrder::Withheld => Vec::new(),
            AckOrder::ReverseEvery(n) => {
                self.held.push(pkid);
                if self.held.len() < n {
                    return Ok(());
                }
                self.held.drain(..).rev().collect()
            }
        };
        for pkid in pkids {
            if acks.unknown_first {
                self.write(&Packet::PubAck(PubAck::new(UNKNOWN_PKID)))
                    .await?;
            }
            self.write(&Packet::PubAck(PubAck::new(pkid))).await?;
            if acks.duplicate {
                self.write(&Packet::PubAck(PubAck::new(pkid))).await?;
            }
        }
        Ok(())
    }

    async fn inject_if(&mut self, script: &Script, publishes: usize) -> Result<(), String> {
        match script {
            Script::Inject {
                after_publishes,
                bytes,
            } if *after_publishes == publishes => self.write_bytes(bytes).await,
            _ => Ok(()),
        }
    }
}
