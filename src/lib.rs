//! Tower middleware that publishes an event for every HTTP request to an MQTT broker, in the
//! format of Open AMT's Management Presence Server (MPS).
//!
//! ```
//! use axum::{Router, routing::post};
//! use mps_mqtt_events::MqttEventLayer;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // MPS_MQTT_ADDRESS=mqtt://mosquitto:1883 turns eventing on; unset, the layer passes through.
//! let events = MqttEventLayer::from_env();
//! let handle = events.handle();
//!
//! let app: Router = Router::new()
//!     .route("/api/v1/amt/power/action/{guid}", post(|| async { "{}" }))
//!     .layer(events);
//! // axum::serve(listener, app).await?;
//!
//! let report = handle.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(report.undelivered, 0);
//! # drop(app);
//! # }
//! ```
//!
//! Each request yields one JSON [`Event`] on topic `mps/events` with MPS's fields (`type`,
//! `message`, `methods`, `guid`, `timestamp`) plus an `http` object, so MPS subscribers keep
//! working. The request path only records a small struct into a bounded queue; a background
//! task owns the [rumqttc] connection, serializes, publishes, reconnects with backoff and
//! counts every event. A slow or dead broker never delays or fails a response: a full queue
//! drops new events and counts them ([`Stats::dropped_queue_full`]).
//!
//! Configuration comes from the environment ([`MqttEventLayer::from_env`], variables listed
//! at [`Builder::from_env`]) or from code ([`MqttEventLayer::builder`]). The
//! [`PublisherHandle`] reads [`Stats`], flushes, and shuts down within a deadline.

// Modules in the order they depend on each other: each imports only those above it.
mod builder;
mod config;
mod error;
mod event;
mod handle;
mod layer;
mod publisher;
mod record;
mod routes;

pub use builder::Builder;
pub use config::{DEFAULT_QUEUE_CAPACITY, MAX_QUEUE_CAPACITY, Qos};
pub use error::{ConfigError, FlushError};
pub use event::{Event, EventType, HttpInfo};
pub use handle::PublisherHandle;
pub use layer::{MqttEventLayer, MqttEventService, ResponseFuture};
pub use publisher::{PublisherState, PublisherTask, ShutdownReport, Stats};

/// A random number for client ids and backoff jitter, from the standard library's
/// per-process random hash keys (no extra dependency, not for cryptography).
pub(crate) fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    std::collections::hash_map::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed))
}
