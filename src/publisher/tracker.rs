//! Which events the task has taken from the queue and not yet settled: those written (or
//! being written) on the current connection, in send order, with their packet ids, and those
//! waiting to be sent again after a reconnect. Pure bookkeeping, no I/O.
//!
//! Packet ids are the send number on the connection modulo 65535, plus one. The window holds
//! at most [`WINDOW`] sends, from the oldest unsettled one on, so an id is never reused while
//! its PUBLISH is unacknowledged, and an acknowledgement finds its event by arithmetic.

use std::collections::VecDeque;

use crate::config::Qos;
use crate::record::Record;

/// Most events sent and not yet settled on one connection (QoS 1: the in-flight window),
/// counted from the oldest unsettled one. Chosen from measurement (README, Performance):
/// the acknowledged rate with Mosquitto grows with the window up to about 1000.
pub(crate) const WINDOW: usize = 1024;
/// A window this full is not topped up: new events wait until a quarter of it is free, so
/// that a saturated connection is written in large batches rather than one per PUBACK.
const REFILL_BELOW: usize = WINDOW - WINDOW / 4;

/// Packet ids run from 1 to this.
const PKID_SPACE: u64 = u16::MAX as u64;

/// One event taken from the queue.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Order of the event in this task; part of its `id`.
    pub(crate) seq: u64,
    pub(crate) record: Record,
    /// Fixed when the event is first taken, so a re-sent event is byte-identical.
    pub(crate) timestamp: u64,
    /// Written to a connection at least once: a re-send sets DUP and is not counted again.
    pub(crate) sent: bool,
}

impl Entry {
    pub(crate) fn new(seq: u64, record: Record, timestamp: u64) -> Self {
        Self {
            seq,
            record,
            timestamp,
            sent: false,
        }
    }
}

/// An event handed to the connection.
#[derive(Debug)]
struct Slot {
    entry: Entry,
    /// Where its PUBLISH ends in the connection's outgoing bytes.
    end: u64,
    written: bool,
    /// Acknowledged at QoS 1; written at QoS 0.
    settled: bool,
}

/// What a PUBACK did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    /// It delivered an event.
    Delivered,
    /// Its event was already acknowledged.
    Duplicate,
    /// No PUBLISH with that id is awaiting an acknowledgement.
    Unknown,
}

/// What a write delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// Events written for the first time.
    pub(crate) first_sends: u64,
    /// Events settled by being written (QoS 0).
    pub(crate) delivered: u64,
}

/// Unsettled events, oldest first.
#[derive(Debug)]
pub(crate) struct Tracker {
    qos: Qos,
    /// Sent on this connection, in send order, with settled ones left in place behind an
    /// unsettled older one.
    window: VecDeque<Slot>,
    /// Send number (on this connection) of `window[0]`.
    base: u64,
    /// Index in `window` of the first slot not yet fully written.
    unwritten: usize,
    /// Slots in `window` already settled.
    settled_behind: usize,
    /// Taken back after a connection loss, to be sent again before anything newer.
    retry: VecDeque<Entry>,
}

impl Tracker {
    pub(crate) fn new(qos: Qos) -> Self {
        Self {
            qos,
            window: VecDeque::with_capacity(WINDOW),
            base: 0,
            unwritten: 0,
            settled_behind: 0,
            retry: VecDeque::new(),
        }
    }

    /// Whether another event may be sent on this connection now.
    pub(crate) fn has_room(&self) -> bool {
        self.window.len() < WINDOW
    }

    /// Whether the window has room enough to start another batch of sends (see
    /// [`REFILL_BELOW`]).
    pub(crate) fn wants_more(&self) -> bool {
        self.window.len() < REFILL_BELOW
    }

    /// Events taken from the queue and not yet delivered.
    pub(crate) fn unsettled(&self) -> usize {
        self.window.len() - self.settled_behind + self.retry.len()
    }

    /// The oldest event waiting to be sent again.
    pub(crate) fn next_retry(&mut self) -> Option<Entry> {
        self.retry.pop_front()
    }

    /// The packet id the next [`sent`](Self::sent) event gets.
    pub(crate) fn next_pkid(&self) -> u16 {
        let number = self.base + self.window.len() as u64;
        // Below 65536 by construction.
        (number % PKID_SPACE + 1) as u16
    }

    /// Records that `entry` was encoded into the connection's outgoing bytes, ending at
    /// `end`, with the packet id [`next_pkid`](Self::next_pkid) returned.
    pub(crate) fn sent(&mut self, entry: Entry, end: u64) {
        debug_assert!(self.has_room());
        self.window.push_back(Slot {
            entry,
            end,
            written: false,
            settled: false,
        });
    }

    /// The connection has written its outgoing bytes up to `total`.
    pub(crate) fn written(&mut self, total: u64) -> Written {
        let mut out = Written::default();
        while let Some(slot) = self.window.get_mut(self.unwritten) {
            if slot.end > total {
                break;
            }
            slot.written = true;
            if !std::mem::replace(&mut slot.entry.sent, true) {
                out.first_sends += 1;
            }
            if self.qos == Qos::AtMostOnce {
                slot.settled = true;
                self.settled_behind += 1;
                out.delivered += 1;
            }
            self.unwritten += 1;
        }
        self.pop_settled();
        out
    }

    /// The broker acknowledged `pkid`. Acknowledgements are accepted in any order; one for a
    /// PUBLISH not yet fully written, or outside the window, is unknown.
    pub(crate) fn acknowledged(&mut self, pkid: u16) -> Ack {
        if pkid == 0 || self.qos == Qos::AtMostOnce {
            return Ack::Unknown;
        }
        let front = self.base % PKID_SPACE;
        let offset = (u64::from(pkid) - 1 + PKID_SPACE - front) % PKID_SPACE;
        let Some(slot) = usize::try_from(offset)
            .ok()
            .and_then(|i| self.window.get_mut(i))
        else {
            return Ack::Unknown;
        };
        if !slot.written {
            return Ack::Unknown;
        }
        if std::mem::replace(&mut slot.settled, true) {
            return Ack::Duplicate;
        }
        self.settled_behind += 1;
        self.pop_settled();
        Ack::Delivered
    }

    /// The connection is gone: every unsettled event is taken back, in order, ahead of those
    /// already waiting; packet ids start again on the next connection.
    pub(crate) fn connection_lost(&mut self) {
        let unsettled: Vec<Entry> = self
            .window
            .drain(..)
            .filter(|slot| !slot.settled)
            .map(|slot| slot.entry)
            .collect();
        for entry in unsettled.into_iter().rev() {
            self.retry.push_front(entry);
        }
        self.base = 0;
        self.unwritten = 0;
        self.settled_behind = 0;
    }

    /// `seq` of the oldest event not yet delivered, if any.
    pub(crate) fn oldest_unsettled(&self) -> Option<u64> {
        let sent = self.window.front().map(|slot| slot.entry.seq);
        let waiting = self.retry.front().map(|entry| entry.seq);
        sent.into_iter().chain(waiting).min()
    }

    fn pop_settled(&mut self) {
        while self.window.front().is_some_and(|slot| slot.settled) {
            self.window.pop_front();
            self.base += 1;
            self.unwritten -= 1;
            self.settled_behind -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{MethodName, Outcome};
    use std::time::Instant;

    fn entry(seq: u64) -> Entry {
        let now = Instant::now();
        let get = MethodName::of(&http::Method::GET);
        let record = Record::new((None, None), get, Outcome::Status(200), now, now);
        Entry::new(seq, record, 0)
    }

    /// Sends `seqs`, each 10 bytes long, returning their packet ids.
    fn send(t: &mut Tracker, seqs: std::ops::Range<u64>, end: &mut u64) -> Vec<u16> {
        seqs.map(|seq| {
            let pkid = t.next_pkid();
            *end += 10;
            t.sent(entry(seq), *end);
            pkid
        })
        .collect()
    }

    #[test]
    fn acknowledgements_settle_by_packet_id_in_any_order() {
        let mut t = Tracker::new(Qos::AtLeastOnce);
        let mut end = 0;
        let ids = send(&mut t, 0..3, &mut end);
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(t.acknowledged(2), Ack::Unknown, "not written yet");
        assert_eq!(t.written(end).first_sends, 3);
        assert_eq!(t.acknowledged(2), Ack::Delivered);
        assert_eq!(t.acknowledged(2), Ack::Duplicate);
        assert_eq!((t.oldest_unsettled(), t.unsettled()), (Some(0), 2));
        assert_eq!(t.acknowledged(1), Ack::Delivered);
        assert_eq!(t.oldest_unsettled(), Some(2));
        assert_eq!(t.acknowledged(7), Ack::Unknown);
        assert_eq!(t.acknowledged(3), Ack::Delivered);
        assert_eq!((t.oldest_unsettled(), t.unsettled()), (None, 0));
        assert_eq!(t.acknowledged(1), Ack::Unknown, "left the window");
    }

    #[test]
    fn qos0_settles_when_written_in_part_or_whole() {
        let mut t = Tracker::new(Qos::AtMostOnce);
        let mut end = 0;
        send(&mut t, 0..3, &mut end);
        let w = t.written(25);
        assert_eq!((w.first_sends, w.delivered), (2, 2));
        assert_eq!(t.oldest_unsettled(), Some(2));
        t.connection_lost();
        assert_eq!(t.next_retry().map(|e| e.seq), Some(2));
    }

    #[test]
    fn a_lost_connection_takes_back_the_unacknowledged_in_order() {
        let mut t = Tracker::new(Qos::AtLeastOnce);
        let mut end = 0;
        send(&mut t, 0..4, &mut end);
        t.written(30); // 0, 1, 2 written; 3 not
        t.acknowledged(2); // 1 settled out of order
        t.connection_lost();
        let order: Vec<u64> = std::iter::from_fn(|| t.next_retry())
            .map(|e| e.seq)
            .collect();
        assert_eq!(order, [0, 2, 3]);
    }

    #[test]
    fn a_resent_event_counts_its_first_send_once_and_restarts_ids() {
        let mut t = Tracker::new(Qos::AtLeastOnce);
        let mut end = 0;
        send(&mut t, 0..2, &mut end);
        assert_eq!(t.written(end).first_sends, 2);
        t.connection_lost();
        let again = t.next_retry().expect("taken back");
        assert!(again.sent, "a re-send is marked for DUP");
        assert_eq!(t.next_pkid(), 1, "ids start again on a new connection");
        t.sent(again, 10);
        assert_eq!(t.written(10).first_sends, 0);
        assert_eq!(t.acknowledged(1), Ack::Delivered);
        assert_eq!(t.unsettled(), 1);
    }

    #[test]
    fn ids_wrap_and_are_never_reused_while_unacknowledged() {
        let mut t = Tracker::new(Qos::AtLeastOnce);
        let mut end = 0;
        let mut in_use = std::collections::HashSet::new();
        // Withhold the first PUBACK forever; acknowledge everything else as written.
        let first = send(&mut t, 0..1, &mut end)[0];
        in_use.insert(first);
        t.written(end);
        let mut seq = 1;
        for _ in 0..200_000 {
            if !t.has_room() {
                break;
            }
            let pkid = send(&mut t, seq..seq + 1, &mut end)[0];
            seq += 1;
            assert!(
                in_use.insert(pkid),
                "packet id {pkid} reused while in flight"
            );
            t.written(end);
            assert_eq!(t.acknowledged(pkid), Ack::Delivered);
            in_use.remove(&pkid);
        }
        assert_eq!(t.unsettled(), 1, "only the withheld one");
        assert!(!t.has_room(), "the withheld PUBACK stalls the window");
        assert_eq!(t.acknowledged(first), Ack::Delivered);
        assert!(t.has_room());
        // Far past the wrap: ids are still found by arithmetic.
        for _ in 0..70_000 {
            let pkid = send(&mut t, seq..seq + 1, &mut end)[0];
            seq += 1;
            t.written(end);
            assert_eq!(t.acknowledged(pkid), Ack::Delivered, "pkid {pkid}");
        }
        assert_eq!(t.unsettled(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Send the oldest waiting event, or a new one.
        Send,
        /// The connection writes `n` more bytes.
        Write(u64),
        /// The broker acknowledges the n-th oldest written, unacknowledged packet.
        Ack(usize),
        /// The broker acknowledges an arbitrary id.
        Stray(u16),
        /// The connection breaks.
        Lose,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => Just(Op::Send),
            3 => (1..40_u64).prop_map(Op::Write),
            3 => (0..8_usize).prop_map(Op::Ack),
            1 => any::<u16>().prop_map(Op::Stray),
            1 => Just(Op::Lose),
        ]
    }

    proptest::proptest! {
        /// Whatever the order of writes, acknowledgements (stray ones included) and lost
        /// connections, each event is delivered at most once, none leaves the books, events
        /// are sent again in order, and the oldest unsettled one is never passed over.
        #[test]
        fn every_event_is_delivered_once_or_still_tracked(ops in proptest::collection::vec(op(), 0..300)) {
            let mut t = Tracker::new(Qos::AtLeastOnce);
            let (mut next_seq, mut end, mut written) = (0_u64, 0_u64, 0_u64);
            let mut awaiting: Vec<(u16, u64, u64)> = Vec::new(); // (pkid, seq, end), send order
            let mut delivered = std::collections::BTreeSet::new();
            let mut last_sent: Option<u64> = None;
            for op in ops {
                match op {
                    Op::Send if t.has_room() => {
                        let entry = t.next_retry().unwrap_or_else(|| { next_seq += 1; entry(next_seq - 1) });
                        if let Some(last) = last_sent {
                            proptest::prop_assert!(last < entry.seq, "sent out of order");
                        }
                        last_sent = Some(entry.seq);
                        let pkid = t.next_pkid();
                        proptest::prop_assert!(awaiting.iter().all(|a| a.0 != pkid), "id reused");
                        end += 10;
                        awaiting.push((pkid, entry.seq, end));
                        t.sent(entry, end);
                    }
                    Op::Send => {}
                    Op::Write(n) => { written = (written + n).min(end); t.written(written); }
                    Op::Ack(n) => {
                        let ready: Vec<usize> = (0..awaiting.len()).filter(|&i| awaiting[i].2 <= written).collect();
                        if !ready.is_empty() {
                            let (pkid, seq, _) = awaiting.remove(ready[n % ready.len()]);
                            proptest::prop_assert_eq!(t.acknowledged(pkid), Ack::Delivered);
                            proptest::prop_assert!(delivered.insert(seq), "delivered twice");
                        }
                    }
                    Op::Stray(pkid) => {
                        if t.acknowledged(pkid) == Ack::Delivered {
                            let i = awaiting.iter().position(|a| a.0 == pkid);
                            proptest::prop_assert!(i.is_some(), "a stray id delivered");
                            let (_, seq, _) = awaiting.remove(i.unwrap_or_default());
                            proptest::prop_assert!(delivered.insert(seq), "delivered twice");
                        }
                    }
                    Op::Lose => {
                        t.connection_lost();
                        awaiting.clear();
                        (end, written, last_sent) = (0, 0, None);
                    }
                }
                let settled = delivered.len() as u64;
                proptest::prop_assert_eq!(settled + t.unsettled() as u64, next_seq, "an event left the books");
                match t.oldest_unsettled() {
                    Some(oldest) => proptest::prop_assert!((0..oldest).all(|s| delivered.contains(&s)), "skipped one"),
                    None => proptest::prop_assert_eq!(settled, next_seq),
                }
            }
        }
    }
}
