//! The outbox: turns queued records into PUBLISH packets in the session's buffer, re-sends
//! first, within the in-flight window and the write budget, and settles what the session
//! wrote and what the broker acknowledged, counting each event once.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use rumqttc::Publish;

use super::metrics::DeliveryDelay;
use super::session::Session;
use super::shared::Shared;
use super::tracker::{Ack, Entry, Tracker};
use crate::config::{Config, Profile, Qos};
use crate::event::{EventId, EventView, Overrides};
use crate::record::WallClock;
use crate::topic::TopicTemplate;

/// Most bytes buffered for one write: events beyond it wait for the socket.
const BATCH_BYTES: usize = 64 * 1024;
/// Largest PUBLISH we send; an event is far smaller unless the topic is huge.
const MAX_PACKET: usize = 128 * 1024;

/// How far [`Outbox::fill`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filled {
    /// The queue is empty; this many events were taken from it.
    Drained(u64),
    /// The in-flight window is (nearly) full.
    Window,
    /// The write budget is full.
    Budget,
}

/// Events on their way from the queue to the broker.
#[derive(Debug)]
pub(crate) struct Outbox {
    shared: Arc<Shared>,
    /// The PUBLISH of every event: topic and QoS fixed, the rest set per event.
    publish: Publish,
    qos: Qos,
    tracker: Tracker,
    /// Events taken from the queue; the next one's `seq`.
    taken: u64,
    /// Random per task: event ids are `<instance>-<seq>`, unique across processes.
    instance: u64,
    /// JSON of the events; each payload is split off it, so encoding does not allocate.
    payload: BytesMut,
    profile: Profile,
    /// The topic with placeholders, rendered per event; `None` when it is fixed.
    template: Option<TopicTemplate>,
    /// `id` and `http` in `mps` profile events too.
    mps_id_and_http: bool,
    encode_failure_logged: bool,
    /// From the response to the PUBACK, per event (QoS 1; nothing without `metrics`).
    delivery_delay: DeliveryDelay,
}

impl Outbox {
    pub(crate) fn new(shared: Arc<Shared>, config: &Config) -> Self {
        let qos = config.qos;
        let topic = config.topic.fixed().unwrap_or_default().to_owned();
        Self {
            shared,
            publish: {
                let mut publish = Publish::from_bytes(topic, qos.to_rumqttc(), bytes::Bytes::new());
                publish.retain = config.retain;
                publish
            },
            qos,
            tracker: Tracker::new(qos),
            taken: 0,
            instance: crate::random::u64(),
            payload: BytesMut::with_capacity(BATCH_BYTES),
            profile: config.profile,
            template: config.topic.fixed().is_none().then(|| config.topic.clone()),
            mps_id_and_http: config.mps_id_and_http,
            encode_failure_logged: false,
            delivery_delay: DeliveryDelay::new(),
        }
    }

    /// Events taken from the queue so far.
    pub(crate) fn taken(&self) -> u64 {
        self.taken
    }

    /// Events taken from the queue and not yet delivered.
    pub(crate) fn unsettled(&self) -> usize {
        self.tracker.unsettled()
    }

    /// Everything taken before this `seq` is settled: the oldest unsettled event's, or the
    /// next one's when none is unsettled.
    pub(crate) fn settled_below(&self) -> u64 {
        self.tracker.oldest_unsettled().unwrap_or(self.taken)
    }

    /// The connection is gone: what was unsettled is sent again on the next one.
    pub(crate) fn connection_lost(&mut self) {
        self.tracker.connection_lost();
    }

    /// Encodes ready events into the session, re-sends first, until the queue is empty or
    /// the window or the write budget is full.
    pub(crate) fn fill(&mut self, session: &mut Session) -> Filled {
        if !self.tracker.wants_more() {
            return Filled::Window;
        }
        let mut took = 0;
        let clock = WallClock::now();
        loop {
            if !self.tracker.has_room() {
                return Filled::Window;
            }
            if session.unwritten() >= BATCH_BYTES {
                return Filled::Budget;
            }
            let entry = match self.tracker.next_retry() {
                Some(entry) => entry,
                None => {
                    let Some(record) = self.shared.pop() else {
                        return Filled::Drained(took);
                    };
                    self.taken += 1;
                    took += 1;
                    let timestamp = clock.timestamp_ms(&record);
                    Entry::new(self.taken - 1, record, timestamp)
                }
            };
            if self.encode(&entry).is_err() {
                self.fail_one();
                continue;
            }
            match session.publish(&self.publish) {
                Ok(end) => self.tracker.sent(entry, end),
                Err(_) => self.fail_one(),
            }
        }
    }

    /// Sets the PUBLISH template to `entry`'s event: the same bytes on every send, DUP set
    /// on a re-send.
    fn encode(&mut self, entry: &Entry) -> Result<(), ()> {
        let id = EventId {
            instance: self.instance,
            seq: entry.seq,
        };
        let (record, timestamp) = (&entry.record, entry.timestamp);
        let said = Overrides::of(record.details);
        let event = match self.profile {
            Profile::All => Some(EventView::new(record, timestamp, id, said)),
            Profile::Mps => {
                let id = self.mps_id_and_http.then_some(id);
                EventView::mps(record, timestamp, id, said)
            }
        };
        let event = event.ok_or(())?;
        if let Some(template) = &self.template {
            template.render(event.topic_values(), &mut self.publish.topic);
        }
        serde_json::to_writer((&mut self.payload).writer(), &event).map_err(|_| ())?;
        self.publish.payload = self.payload.split().freeze();
        self.publish.dup = entry.sent && self.qos == Qos::AtLeastOnce;
        self.publish.pkid = match self.qos {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => self.tracker.next_pkid(),
        };
        if self.publish.size() > MAX_PACKET {
            return Err(());
        }
        Ok(())
    }

    fn fail_one(&mut self) {
        self.shared.counters.failed.add(1);
        if !std::mem::replace(&mut self.encode_failure_logged, true) {
            tracing::error!(
                max_bytes = MAX_PACKET,
                "MQTT event could not be encoded within the packet limit; counted as failed"
            );
        }
    }

    /// Counts what the session wrote and what the broker acknowledged.
    pub(crate) fn settle(&mut self, session: &mut Session) {
        let counters = &self.shared.counters;
        let written = self.tracker.written(session.written());
        if written.first_sends > 0 {
            counters.published.add(written.first_sends);
        }
        let mut acknowledged = 0;
        let mut delays = self.delivery_delay.batch();
        for pkid in session.take_acks() {
            match self.tracker.acknowledged(pkid) {
                Ack::Delivered(finished) => {
                    acknowledged += 1;
                    delays.record(finished);
                }
                Ack::Duplicate => tracing::debug!(pkid, "duplicate PUBACK ignored"),
                Ack::Unknown => tracing::debug!(pkid, "PUBACK for no PUBLISH in flight ignored"),
            }
        }
        if acknowledged > 0 {
            counters.acknowledged.add(acknowledged);
        }
    }
}
