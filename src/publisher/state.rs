//! The publisher's lifecycle, and how a parked task is woken.
//!
//! The phase is one atomic behind [`Lifecycle`], whose methods name each transition; nothing
//! else sees its integer. The idle flag is a separate atomic beside the [`Notify`]. The two
//! places where the request path and the task race (parking, and ending) are argued once,
//! at [`Lifecycle::after_push`] and the two task-side functions it pairs with.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::SeqCst};

use tokio::sync::Notify;

/// Where the publisher is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Built; the first request or handle call spawns the task on the current runtime.
    Lazy = 0,
    /// Handed out by `build_pair`: the caller spawns it; the request path never has to.
    HandedOut = 1,
    /// The task runs: events are accepted and delivered whenever the broker allows.
    Running = 2,
    /// Shutdown was asked for: new events are refused, queued ones drained.
    Closing = 3,
    /// Ended by a shutdown.
    ShutDown = 4,
    /// Ended any other way: the task panicked, or was dropped before it finished.
    Stopped = 5,
}

impl Phase {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Lazy,
            1 => Self::HandedOut,
            2 => Self::Running,
            3 => Self::Closing,
            4 => Self::ShutDown,
            _ => Self::Stopped,
        }
    }

    /// Whether new events are accepted into the queue.
    pub(crate) fn accepts(self) -> bool {
        matches!(self, Self::Lazy | Self::HandedOut | Self::Running)
    }

    /// Whether the task has ended: queued events will not be sent.
    pub(crate) fn has_ended(self) -> bool {
        matches!(self, Self::ShutDown | Self::Stopped)
    }
}

/// What a pusher must do after its event went into the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterPush {
    /// Nothing: the task will take the event.
    Done,
    /// The task is parked: wake it.
    Wake,
    /// The task has ended and may have drained the queue before the event landed: the pusher
    /// drains what is left, counting it as failed.
    Drain,
}

/// The phase, the idle flag and the wake-up signal.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    phase: AtomicU8,
    parked: AtomicBool,
    wake: Notify,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Self {
            phase: AtomicU8::new(Phase::Lazy as u8),
            parked: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(SeqCst))
    }

    fn advance(&self, from: &[Phase], to: Phase) -> bool {
        self.phase
            .fetch_update(SeqCst, SeqCst, |now| {
                from.contains(&Phase::from_u8(now)).then_some(to as u8)
            })
            .is_ok()
    }

    /// `Lazy` → `HandedOut`: the task was given to the caller of `build_pair`.
    pub(crate) fn hand_out(&self) -> bool {
        self.advance(&[Phase::Lazy], Phase::HandedOut)
    }

    /// `Lazy` or `HandedOut` → `Running`: the task runs for the first time.
    pub(crate) fn run(&self) -> bool {
        self.advance(&[Phase::Lazy, Phase::HandedOut], Phase::Running)
    }

    /// → `Closing`: shutdown was asked for; from then on new events are refused.
    pub(crate) fn close(&self) -> bool {
        self.advance(
            &[Phase::Lazy, Phase::HandedOut, Phase::Running],
            Phase::Closing,
        )
    }

    /// → `ShutDown` or `Stopped`, once: returns whether this call ended it. After it, the
    /// caller drains the queue (see [`after_push`](Self::after_push) for why that catches
    /// every event).
    pub(crate) fn end(&self, how: Phase) -> bool {
        debug_assert!(how.has_ended());
        self.advance(
            &[
                Phase::Lazy,
                Phase::HandedOut,
                Phase::Running,
                Phase::Closing,
            ],
            how,
        )
    }

    /// Called by the request path right after its event went into the queue and `enqueued`
    /// was incremented (with `SeqCst`).
    ///
    /// # Why no event is stranded
    ///
    /// Three atomics of ours carry the argument: `enqueued`, `parked` and the phase, every
    /// access `SeqCst`, so all of them lie in one total order S. The queue's own orderings
    /// are not relied on: a pusher's `push` is sequenced before its `enqueued` increment, so
    /// whoever reads that increment (a `SeqCst` load synchronises with the `SeqCst` RMW) also
    /// sees the event in the queue.
    ///
    /// - Parking ([`try_park`](Self::try_park)): the task stores `parked = true`, then loads
    ///   `enqueued`. The pusher increments `enqueued`, then loads `parked`. Either the
    ///   increment comes first in S, so the task's load sees it and the task does not park,
    ///   or the task's store comes first, so the pusher's load sees `parked` and wakes it.
    /// - Ending ([`end`](Self::end), then the ender drains): the ender stores the ended phase,
    ///   then loads `enqueued` and pops until the queue is empty. The pusher increments
    ///   `enqueued`, then loads the phase. Either the pusher sees the end and drains itself,
    ///   or its increment precedes the store in S, so the ender's drain sees its event. Both
    ///   may drain at once; each event is popped, and counted, by exactly one of them.
    #[inline]
    pub(crate) fn after_push(&self) -> AfterPush {
        if self.phase().has_ended() {
            return AfterPush::Drain;
        }
        if self.parked.load(SeqCst) {
            return AfterPush::Wake;
        }
        AfterPush::Done
    }

    /// Wakes a parked task; cheap and harmless if another pusher already did.
    #[cold]
    pub(crate) fn wake(&self) {
        if self.parked.swap(false, SeqCst) {
            self.wake.notify_one();
        }
    }

    /// The task's half of the parking protocol (see [`after_push`](Self::after_push)):
    /// announces that it is about to sleep, then checks that nothing was pushed that it has
    /// not taken. Returns whether it may sleep; if not, the flag is cleared again.
    pub(crate) fn try_park(&self, enqueued: &AtomicU64, taken: u64) -> bool {
        self.parked.store(true, SeqCst);
        if enqueued.load(SeqCst) == taken {
            return true;
        }
        self.parked.store(false, SeqCst);
        false
    }

    /// Sleeps after a successful [`try_park`](Self::try_park) until a pusher wakes it.
    pub(crate) async fn parked(&self) {
        self.wake.notified().await;
    }

    /// Leaves the parked state after waking for any reason.
    pub(crate) fn unpark(&self) {
        self.parked.store(false, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_go_one_way() {
        let life = Lifecycle::new();
        assert_eq!(life.phase(), Phase::Lazy);
        assert!(life.hand_out());
        assert!(!life.hand_out(), "handed out once");
        assert!(life.run());
        assert!(!life.run(), "runs once");
        assert!(life.phase().accepts());
        assert!(life.close());
        assert!(!life.phase().accepts());
        assert!(life.end(Phase::ShutDown));
        assert!(!life.end(Phase::Stopped), "the first end wins");
        assert_eq!(life.phase(), Phase::ShutDown);
        assert!(!life.close(), "an ended publisher does not reopen to close");
    }

    #[test]
    fn a_pusher_sees_a_parked_task_or_the_task_sees_the_event() {
        let life = Lifecycle::new();
        let enqueued = AtomicU64::new(0);
        assert!(life.try_park(&enqueued, 0));
        enqueued.fetch_add(1, SeqCst);
        assert_eq!(life.after_push(), AfterPush::Wake);
        life.unpark();
        assert!(
            !life.try_park(&enqueued, 0),
            "an event not yet taken keeps it awake"
        );
        assert_eq!(life.after_push(), AfterPush::Done);
        life.end(Phase::Stopped);
        assert_eq!(life.after_push(), AfterPush::Drain);
    }
}
