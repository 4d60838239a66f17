//! Which events the task has taken from the queue and not yet settled, in order: those handed
//! to rumqttc (with the packet id rumqttc gave each) and those waiting to be sent again after
//! a reconnect. Pure bookkeeping, no I/O.

use std::collections::VecDeque;

use crate::config::Qos;
use crate::event::Record;

/// One event taken from the queue.
#[derive(Debug)]
pub(super) struct Entry {
    /// Order of the event in this task; part of its `id`.
    pub(super) seq: u64,
    pub(super) record: Record,
    /// Fixed when the event is first taken, so a resent event is byte-identical.
    pub(super) timestamp: u64,
    /// rumqttc reported writing the PUBLISH at least once.
    sent: bool,
    /// Delivered: written at QoS 0, acknowledged at QoS 1.
    done: bool,
}

impl Entry {
    pub(super) fn new(seq: u64, record: Record) -> Self {
        let timestamp = record.timestamp_ms();
        Self {
            seq,
            record,
            timestamp,
            sent: false,
            done: false,
        }
    }
}

/// Unsettled events, oldest first.
#[derive(Debug)]
pub(super) struct Tracker {
    /// Handed to rumqttc, by `seq`, with gaps where events settled out of order.
    handed: VecDeque<Entry>,
    /// Index in `handed` of the first entry rumqttc has not yet reported as written.
    cursor: usize,
    /// `seq` of the entry written with each packet id (QoS 1), until acknowledged.
    by_pkid: Vec<Option<u64>>,
    /// Entries in `handed` already delivered but behind an older undelivered one.
    delivered_behind: usize,
    /// Taken back after a connection loss, to be handed again before anything newer.
    retry: VecDeque<Entry>,
}

impl Tracker {
    pub(super) fn new(max_inflight: u16) -> Self {
        Self {
            handed: VecDeque::new(),
            cursor: 0,
            by_pkid: vec![None; usize::from(max_inflight) + 1],
            delivered_behind: 0,
            retry: VecDeque::new(),
        }
    }

    /// Slots of rumqttc's window in use: events handed to it, counted until every older one
    /// is delivered too.
    pub(super) fn handed(&self) -> usize {
        self.handed.len()
    }

    /// Events taken from the queue and not yet delivered: handed or waiting to be resent.
    pub(super) fn unsettled(&self) -> usize {
        self.handed.len() - self.delivered_behind + self.retry.len()
    }

    /// The oldest event waiting to be sent again.
    pub(super) fn next_retry(&mut self) -> Option<Entry> {
        self.retry.pop_front()
    }

    /// Records that `entry` was handed to rumqttc (after every older one).
    pub(super) fn hand(&mut self, entry: Entry) {
        self.handed.push_back(entry);
    }

    /// Takes back an entry rumqttc did not accept; it goes first next time.
    pub(super) fn give_back(&mut self, entry: Entry) {
        self.retry.push_front(entry);
    }

    /// rumqttc wrote its next PUBLISH with `pkid` (0 at QoS 0). Returns whether this was the
    /// event's first send.
    pub(super) fn written(&mut self, pkid: u16, qos: Qos) -> bool {
        let Some(entry) = self.handed.get_mut(self.cursor) else {
            return false;
        };
        self.cursor += 1;
        let first = !std::mem::replace(&mut entry.sent, true);
        match qos {
            Qos::AtMostOnce => {
                entry.done = true;
                self.delivered_behind += 1;
            }
            Qos::AtLeastOnce => {
                if let Some(slot) = self.by_pkid.get_mut(usize::from(pkid)) {
                    *slot = Some(entry.seq);
                }
            }
        }
        self.pop_done();
        first
    }

    /// The broker acknowledged `pkid`. Returns whether that delivered an event.
    pub(super) fn acknowledged(&mut self, pkid: u16) -> bool {
        let Some(seq) = self
            .by_pkid
            .get_mut(usize::from(pkid))
            .and_then(Option::take)
        else {
            return false;
        };
        let Ok(index) = self.handed.binary_search_by_key(&seq, |e| e.seq) else {
            return false;
        };
        let newly = !std::mem::replace(&mut self.handed[index].done, true);
        if newly {
            self.delivered_behind += 1;
        }
        self.pop_done();
        newly
    }

    /// The connection broke: every handed event not yet delivered is taken back, in order,
    /// ahead of those already waiting.
    pub(super) fn connection_lost(&mut self) {
        let unconfirmed: Vec<Entry> = self.handed.drain(..).filter(|e| !e.done).collect();
        for entry in unconfirmed.into_iter().rev() {
            self.retry.push_front(entry);
        }
        self.cursor = 0;
        self.delivered_behind = 0;
        self.by_pkid.iter_mut().for_each(|slot| *slot = None);
    }

    /// `seq` of the oldest event not yet delivered, if any.
    pub(super) fn oldest_unsettled(&self) -> Option<u64> {
        let handed = self.handed.front().map(|e| e.seq);
        let retried = self.retry.front().map(|e| e.seq);
        handed.into_iter().chain(retried).min()
    }

    /// Gives up on every unsettled event; returns how many there were.
    pub(super) fn abandon(&mut self) -> u64 {
        let n = self.unsettled() as u64;
        self.handed.clear();
        self.retry.clear();
        self.cursor = 0;
        self.delivered_behind = 0;
        n
    }

    fn pop_done(&mut self) {
        while self.handed.front().is_some_and(|e| e.done) {
            self.handed.pop_front();
            self.cursor = self.cursor.saturating_sub(1);
            self.delivered_behind -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Outcome;
    use std::time::{Duration, Instant};

    fn entry(seq: u64) -> Entry {
        Entry::new(
            seq,
            Record {
                route: None,
                guid: None,
                method: "GET",
                outcome: Outcome::Status(200),
                latency: Duration::ZERO,
                finished: Instant::now(),
            },
        )
    }

    fn tracker_with(seqs: std::ops::Range<u64>) -> Tracker {
        let mut tracker = Tracker::new(8);
        for seq in seqs {
            tracker.hand(entry(seq));
        }
        tracker
    }

    #[test]
    fn acknowledgements_settle_by_packet_id_in_any_order() {
        let mut t = tracker_with(0..3);
        assert!(t.written(1, Qos::AtLeastOnce));
        assert!(t.written(2, Qos::AtLeastOnce));
        assert!(t.written(3, Qos::AtLeastOnce));
        assert_eq!(t.oldest_unsettled(), Some(0));
        assert!(t.acknowledged(2));
        assert!(!t.acknowledged(2), "a second PUBACK settles nothing");
        assert_eq!((t.oldest_unsettled(), t.handed()), (Some(0), 3));
        assert_eq!(t.unsettled(), 2, "delivered out of order is not pending");
        assert!(t.acknowledged(1));
        assert_eq!((t.oldest_unsettled(), t.handed()), (Some(2), 1));
        assert!(t.acknowledged(3));
        assert_eq!((t.oldest_unsettled(), t.unsettled()), (None, 0));
        assert!(!t.acknowledged(7), "unknown packet ids are ignored");
    }

    #[test]
    fn qos0_settles_when_written() {
        let mut t = tracker_with(0..2);
        assert!(t.written(0, Qos::AtMostOnce));
        assert_eq!(t.oldest_unsettled(), Some(1));
        assert!(t.written(0, Qos::AtMostOnce));
        assert_eq!(t.unsettled(), 0);
        assert!(
            !t.written(0, Qos::AtMostOnce),
            "a write with nothing handed is ignored"
        );
    }

    #[test]
    fn a_lost_connection_takes_back_the_unacknowledged_in_order() {
        let mut t = tracker_with(0..4);
        for pkid in 1..=3 {
            t.written(pkid, Qos::AtLeastOnce);
        }
        t.acknowledged(2); // 1 settled out of order; 3 was never written
        t.give_back(entry(9)); // already waiting from an earlier attempt
        t.connection_lost();
        let order: Vec<u64> = std::iter::from_fn(|| t.next_retry())
            .map(|e| e.seq)
            .collect();
        assert_eq!(order, [0, 2, 3, 9]);
    }

    #[test]
    fn a_resent_event_counts_its_first_send_once() {
        let mut t = tracker_with(0..1);
        assert!(t.written(1, Qos::AtLeastOnce));
        t.connection_lost();
        let again = t.next_retry().expect("taken back");
        t.hand(again);
        assert!(
            !t.written(1, Qos::AtLeastOnce),
            "second send of the same event"
        );
        assert!(t.acknowledged(1));
        assert_eq!(t.unsettled(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Hand the oldest waiting event, or a new one, to "rumqttc".
        Hand,
        /// "rumqttc" writes its next PUBLISH.
        Write,
        /// The broker acknowledges the n-th oldest written, unacknowledged packet.
        Ack(usize),
        /// The connection breaks.
        Lose,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => Just(Op::Hand),
            4 => Just(Op::Write),
            3 => (0..8_usize).prop_map(Op::Ack),
            1 => Just(Op::Lose),
        ]
    }

    proptest::proptest! {
        /// Whatever the order of writes, acknowledgements and lost connections, each event is
        /// delivered at most once, nothing is lost from the books, events are handed again in
        /// order, and the oldest unsettled one is never passed over.
        #[test]
        fn every_event_is_delivered_once_or_still_tracked(ops in proptest::collection::vec(op(), 0..200)) {
            let mut t = Tracker::new(16);
            let mut next_seq = 0_u64;
            let mut next_pkid = 0_u16;
            let mut written: Vec<u16> = Vec::new(); // packet ids awaiting PUBACK, oldest first
            let mut delivered = std::collections::BTreeSet::new();
            let mut pkid_seq = std::collections::HashMap::new();
            for op in ops {
                match op {
                    Op::Hand if t.handed() < 8 => {
                        let entry = match t.next_retry() {
                            Some(entry) => entry,
                            None => { next_seq += 1; entry(next_seq - 1) }
                        };
                        if let Some(last) = t.handed.back() {
                            proptest::prop_assert!(last.seq < entry.seq, "handed out of order");
                        }
                        t.hand(entry);
                    }
                    Op::Hand => {}
                    Op::Write => {
                        let seq = t.handed.get(t.cursor).map(|e| e.seq);
                        next_pkid = next_pkid % 16 + 1;
                        t.written(next_pkid, Qos::AtLeastOnce);
                        if let Some(seq) = seq {
                            written.push(next_pkid);
                            pkid_seq.insert(next_pkid, seq);
                        }
                    }
                    Op::Ack(n) if !written.is_empty() => {
                        let pkid = written.remove(n % written.len());
                        if t.acknowledged(pkid) {
                            proptest::prop_assert!(delivered.insert(pkid_seq[&pkid]), "delivered twice");
                        }
                    }
                    Op::Ack(_) => {}
                    Op::Lose => {
                        t.connection_lost();
                        written.clear();
                    }
                }
                let settled = delivered.len() as u64;
                proptest::prop_assert_eq!(settled + t.unsettled() as u64, next_seq, "an event left the books");
                if let Some(oldest) = t.oldest_unsettled() {
                    proptest::prop_assert!((0..oldest).all(|s| delivered.contains(&s)), "skipped an unsettled event");
                } else {
                    proptest::prop_assert_eq!(settled, next_seq);
                }
            }
        }
    }

    #[test]
    fn abandon_counts_everything_unsettled() {
        let mut t = tracker_with(0..3);
        t.written(1, Qos::AtLeastOnce);
        t.connection_lost();
        t.hand(entry(5));
        assert_eq!(t.abandon(), 4);
        assert_eq!((t.unsettled(), t.oldest_unsettled()), (0, None));
    }
}
