//! Unit tests of `tracker.rs`.

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
    assert!(matches!(t.acknowledged(2), Ack::Delivered(_)));
    assert_eq!(t.acknowledged(2), Ack::Duplicate);
    assert_eq!((t.oldest_unsettled(), t.unsettled()), (Some(0), 2));
    assert!(matches!(t.acknowledged(1), Ack::Delivered(_)));
    assert_eq!(t.oldest_unsettled(), Some(2));
    assert_eq!(t.acknowledged(7), Ack::Unknown);
    assert!(matches!(t.acknowledged(3), Ack::Delivered(_)));
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
    assert!(matches!(t.acknowledged(1), Ack::Delivered(_)));
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
        assert!(matches!(t.acknowledged(pkid), Ack::Delivered(_)));
        in_use.remove(&pkid);
    }
    assert_eq!(t.unsettled(), 1, "only the withheld one");
    assert!(!t.has_room(), "the withheld PUBACK stalls the window");
    assert!(matches!(t.acknowledged(first), Ack::Delivered(_)));
    assert!(t.has_room());
    // Far past the wrap: ids are still found by arithmetic.
    for _ in 0..70_000 {
        let pkid = send(&mut t, seq..seq + 1, &mut end)[0];
        seq += 1;
        t.written(end);
        assert!(
            matches!(t.acknowledged(pkid), Ack::Delivered(_)),
            "pkid {pkid}"
        );
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
                        proptest::prop_assert!(matches!(t.acknowledged(pkid), Ack::Delivered(_)));
                        proptest::prop_assert!(delivered.insert(seq), "delivered twice");
                    }
                }
                Op::Stray(pkid) => {
                    if matches!(t.acknowledged(pkid), Ack::Delivered(_)) {
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
