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
    /// It delivered an event whose response was ready at this instant.
    Delivered(std::time::Instant),
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
        let finished = slot.entry.record.finished();
        self.settled_behind += 1;
        self.pop_settled();
        Ack::Delivered(finished)
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
mod tests;
