//! The publisher's figures through the `metrics` facade (cargo feature `metrics`): the task
//! copies [`Stats`](super::Stats) into counters and gauges at most every 100 ms while it
//! works, and whenever its connection changes, it parks or it ends; it records each
//! acknowledged event's delivery delay. Nothing is recorded on the request path. Without the
//! feature, [`Export`] and [`DeliveryDelay`] do nothing and cost nothing.

#[cfg(feature = "metrics")]
pub(crate) use exported::{DeliveryDelay, Export};
#[cfg(not(feature = "metrics"))]
pub(crate) use off::{DeliveryDelay, Export};

#[cfg(feature = "metrics")]
mod exported {
    use std::time::Duration;

    use metrics::{Counter, Gauge, Histogram, Unit};
    use tokio::time::Instant;

    use crate::publisher::shared::Shared;
    use crate::publisher::stats::Stats;

    /// How often a working task exports its figures, at most.
    pub(crate) const EVERY: Duration = Duration::from_millis(100);

    /// The names, with their common prefix; documented in the README ("Metrics").
    pub(crate) mod names {
        pub(crate) const ENQUEUED: &str = "mps_mqtt_events_enqueued_total";
        pub(crate) const DELIVERED: &str = "mps_mqtt_events_delivered_total";
        pub(crate) const FAILED: &str = "mps_mqtt_events_failed_total";
        pub(crate) const DROPPED: &str = "mps_mqtt_events_dropped_total";
        pub(crate) const RECONNECTS: &str = "mps_mqtt_events_reconnects_total";
        pub(crate) const CONNECT_FAILURES: &str = "mps_mqtt_events_connect_failures_total";
        pub(crate) const QUEUE_LENGTH: &str = "mps_mqtt_events_queue_length";
        pub(crate) const IN_FLIGHT: &str = "mps_mqtt_events_in_flight";
        pub(crate) const CONNECTED: &str = "mps_mqtt_events_connected";
        pub(crate) const DELIVERY_DELAY: &str = "mps_mqtt_events_delivery_delay_seconds";
    }

    /// The handles of every figure, taken from the recorder installed when the task started.
    pub(crate) struct Export {
        enqueued: Counter,
        delivered: Counter,
        failed: Counter,
        dropped_queue_full: Counter,
        dropped_closed: Counter,
        reconnects: Counter,
        connect_failures: Counter,
        queue_length: Gauge,
        in_flight: Gauge,
        connected: Gauge,
        /// Exported last at.
        at: Option<Instant>,
    }

    impl Export {
        pub(crate) fn new() -> Self {
            use names::*;
            metrics::describe_counter!(ENQUEUED, Unit::Count, "Events accepted into the queue.");
            metrics::describe_counter!(
                DELIVERED,
                Unit::Count,
                "Events that reached the broker (acknowledged at QoS 1, written at QoS 0)."
            );
            metrics::describe_counter!(
                FAILED,
                Unit::Count,
                "Accepted events given up on (shutdown deadline, task death, not encodable)."
            );
            metrics::describe_counter!(
                DROPPED,
                Unit::Count,
                "Events refused: reason=queue_full (the broker is slow or away) or closed."
            );
            metrics::describe_counter!(RECONNECTS, Unit::Count, "Connections established again.");
            metrics::describe_counter!(
                CONNECT_FAILURES,
                Unit::Count,
                "Connection attempts that failed."
            );
            metrics::describe_gauge!(QUEUE_LENGTH, Unit::Count, "Events waiting in the queue.");
            metrics::describe_gauge!(
                IN_FLIGHT,
                Unit::Count,
                "Events taken from the queue and not yet delivered."
            );
            metrics::describe_gauge!(CONNECTED, "1 while connected to the broker, else 0.");
            metrics::describe_histogram!(
                DELIVERY_DELAY,
                Unit::Seconds,
                "From the response to the broker's acknowledgement (QoS 1)."
            );
            Self {
                enqueued: metrics::counter!(ENQUEUED),
                delivered: metrics::counter!(DELIVERED),
                failed: metrics::counter!(FAILED),
                dropped_queue_full: metrics::counter!(DROPPED, "reason" => "queue_full"),
                dropped_closed: metrics::counter!(DROPPED, "reason" => "closed"),
                reconnects: metrics::counter!(RECONNECTS),
                connect_failures: metrics::counter!(CONNECT_FAILURES),
                queue_length: metrics::gauge!(QUEUE_LENGTH),
                in_flight: metrics::gauge!(IN_FLIGHT),
                connected: metrics::gauge!(CONNECTED),
                at: None,
            }
        }

        /// Exports if [`EVERY`] has passed since the last time.
        pub(crate) fn tick(&mut self, shared: &Shared, now: Instant) {
            if self.at.is_none_or(|at| now.duration_since(at) >= EVERY) {
                self.at = Some(now);
                self.write(&shared.stats());
            }
        }

        /// Exports now.
        pub(crate) fn now(&self, shared: &Shared) {
            self.write(&shared.stats());
        }

        /// The counters of [`Stats`] only grow, so `absolute` never moves one back.
        fn write(&self, stats: &Stats) {
            self.enqueued.absolute(stats.enqueued);
            self.delivered.absolute(stats.delivered);
            self.failed.absolute(stats.failed);
            self.dropped_queue_full.absolute(stats.dropped_queue_full);
            self.dropped_closed.absolute(stats.dropped_closed);
            self.reconnects.absolute(stats.reconnects);
            self.connect_failures.absolute(stats.connect_failures);
            self.queue_length.set(stats.queue_len as f64);
            self.in_flight.set(stats.in_flight as f64);
            self.connected.set(if stats.connected { 1.0 } else { 0.0 });
        }
    }

    /// The delivery delay histogram.
    #[derive(Debug)]
    pub(crate) struct DeliveryDelay(Histogram);

    impl DeliveryDelay {
        pub(crate) fn new() -> Self {
            Self(metrics::histogram!(names::DELIVERY_DELAY))
        }

        /// For the acknowledgements read together: one clock read for all of them.
        pub(crate) fn batch(&self) -> Batch<'_> {
            Batch {
                histogram: &self.0,
                now: std::time::Instant::now(),
            }
        }
    }

    /// Acknowledgements read together.
    pub(crate) struct Batch<'a> {
        histogram: &'a Histogram,
        now: std::time::Instant,
    }

    impl Batch<'_> {
        /// An event whose response was ready at `finished` was acknowledged.
        pub(crate) fn record(&mut self, finished: std::time::Instant) {
            let delay = self.now.saturating_duration_since(finished);
            self.histogram.record(delay.as_secs_f64());
        }
    }
}

/// Without the `metrics` feature: nothing.
#[cfg(not(feature = "metrics"))]
mod off {
    use tokio::time::Instant;

    use crate::publisher::shared::Shared;

    pub(crate) struct Export;

    impl Export {
        pub(crate) fn new() -> Self {
            Self
        }

        pub(crate) fn tick(&mut self, _: &Shared, _: Instant) {}

        pub(crate) fn now(&self, _: &Shared) {}
    }

    #[derive(Debug)]
    pub(crate) struct DeliveryDelay;

    impl DeliveryDelay {
        pub(crate) fn new() -> Self {
            Self
        }

        pub(crate) fn batch(&self) -> Batch {
            Batch
        }
    }

    pub(crate) struct Batch;

    impl Batch {
        pub(crate) fn record(&mut self, _: std::time::Instant) {}
    }
}
