//! Reconnect delays: exponential from a minimum to a maximum, with jitter, reset only after a
//! connection that held.

use std::time::Duration;

/// A connection that held this long resets the reconnect delay to its minimum.
pub(crate) const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// Reconnect delays: each failed attempt doubles the delay from `min` up to `max`, and each
/// delay is drawn from the upper half of its value so that replicas spread out.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub(crate) fn new((min, max): (Duration, Duration)) -> Self {
        Self {
            min,
            max,
            failures: 0,
        }
    }

    /// Failed attempts since the last reset.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// After a connection that held for `held`: resets when it was stable.
    pub(crate) fn connection_ended(&mut self, held: Duration) {
        if held >= STABLE_CONNECTION {
            self.failures = 0;
        }
    }

    /// The delay before the next attempt; counts a failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self
            .min
            .saturating_mul(1 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = exp / 2;
        half + half.mul_f64((crate::random::u64() % 1000) as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_within_their_upper_half() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new((ms(100), ms(1000)));
        for expected in [100, 200, 400, 800, 1000, 1000] {
            let delay = backoff.next_delay();
            assert!(
                ms(expected / 2) <= delay && delay <= ms(expected),
                "{delay:?} for {expected} ms"
            );
        }
        backoff.connection_ended(ms(9_999));
        assert!(
            backoff.next_delay() >= ms(500),
            "a short connection keeps the delay"
        );
        backoff.connection_ended(STABLE_CONNECTION);
        assert!(backoff.next_delay() <= ms(100), "a stable one resets it");
    }
}
