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
//! working; a handler can add to it ([`EventDetails`], [`EventData`]) and a W3C `traceparent`
//! links it to the request's trace. The request path only records a 120-byte struct into a
//! bounded queue; a background
//! task owns the MQTT connection (speaking MQTT 3.1.1 with [rumqttc]'s codec), serializes,
//! writes every ready event in one go, reconnects with backoff and counts every event. A slow
//! or dead broker never delays or fails a response: a full queue drops new events and counts
//! them ([`Stats::dropped_queue_full`]).
//!
//! Configuration comes from the environment ([`MqttEventLayer::from_env`]) or from code
//! ([`MqttEventLayer::builder`]). The [`PublisherHandle`] reads [`Stats`] and [`Health`],
//! publishes events outside requests, flushes, and shuts down within a deadline.
//!
//! # Configuration
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `MPS_MQTT_ADDRESS` | unset: eventing off | `mqtt://host[:port]` or `tcp://host[:port]` (port 1883 when omitted, IPv6 in brackets, `user:password@` logs in); `mqtts://` (port 8883, feature `tls`); `ws://host[:port][/path]` and `wss://` (feature `websocket`); empty, `false` or `0` turn eventing off, as in MPS |
//! | `MPS_MQTT_TOPIC` | `mps/events` | the topic of every event |
//! | `MPS_MQTT_QOS` | `1` | `0` (at most once, as MPS) or `1` (at least once) |
//! | `MPS_MQTT_CLIENT_ID` | `mps-<host>-<random>` | the MQTT client id, new per process |
//! | `MPS_MQTT_QUEUE_CAPACITY` | `8192` ([`DEFAULT_QUEUE_CAPACITY`]) | events held while the broker is slow or away |
//! | `MPS_MQTT_PROFILE` | `all` | `all`: one event per request; `mps`: exactly MPS's own events ([`Profile`]) |
//! | `MPS_MQTT_EXCLUDE` | none | route templates whose events are left out, comma-separated |
//! | `MPS_MQTT_ONLY` | all | event types published, comma-separated: `request`, `success`, `fail` |
//! | `MPS_MQTT_STATUS_TOPIC` | none | topic of the retained online/offline status (birth and last will) |
//! | `MPS_MQTT_RETAIN` | `0` | `1` publishes events retained |
//! | `MPS_MQTT_USERNAME` | unset | the MQTT user name, instead of `user:password@` in the address |
//! | `MPS_MQTT_PASSWORD` | unset | its password |
//! | `MPS_MQTT_PASSWORD_FILE` | unset | a file holding the password; one trailing newline is trimmed |
//! | `MPS_MQTT_CA_FILE` | the platform's roots | PEM CA certificates to trust (TLS) |
//! | `MPS_MQTT_CLIENT_CERT_FILE` | unset | client certificate chain (PEM) for mutual TLS |
//! | `MPS_MQTT_CLIENT_KEY_FILE` | unset | its private key (PEM: PKCS#8, PKCS#1 or SEC1) |
//! | `MPS_MQTT_TLS_INSECURE` | `0` | `1` skips verifying the broker's certificate (test brokers only) |
//!
//! Each has a [`Builder`] setter that overrides it; [`Builder::reconnect_backoff`],
//! [`Builder::keep_alive`], [`Builder::connect_timeout`], [`Builder::alpn`] and
//! [`Builder::mps_id_and_http`] exist only in code. `MPS_MQTT_TOPIC` may be a template with
//! `{type}`, `{guid}` and `{method}` levels. Conflicting settings (credentials in the address and in the variables, a password
//! and a password file, a CA file for a plain address) are refused rather than guessed at.
//!
//! # Features
//!
//! | feature | adds | pulls in |
//! | --- | --- | --- |
//! | `tls` | `mqtts://` (and `wss://` with `websocket`): custom CA, mutual TLS, ALPN | tokio-rustls with ring, rustls-native-certs, rustls-pki-types, x509-parser |
//! | `websocket` | `ws://` (and `wss://` with `tls`) | tokio-tungstenite (handshake only), futures-util |
//! | `metrics` | the publisher's counters, gauges and delivery delay through the [`metrics`](https://docs.rs/metrics) facade (names in the README, "Metrics") | metrics |
//!
//! None is on by default; an address whose scheme needs a feature that is not built is
//! refused at startup, naming the feature.

#![cfg_attr(docsrs, feature(doc_cfg))]

// Imports run one way, no two files importing each other: builder → layer → handle →
// {health, publisher} → event → {mps, topic} → record → {data, details, routes, trace};
// details → {event_type, routes}; layer → {data, details, trace}; filter → event; config →
// {address, topic, filter}; secure → {config, tls}; tls → config; address, topic, data →
// error; error, event_type, random and trace import nothing of ours.
mod address;
mod builder;
mod config;
mod data;
mod details;
mod error;
mod event;
mod event_type;
mod filter;
mod handle;
mod health;
mod layer;
mod mps;
mod publisher;
mod random;
mod record;
mod routes;
mod secure;
#[cfg(feature = "tls")]
mod tls;
mod topic;
mod trace;

pub use builder::Builder;
pub use config::{DEFAULT_QUEUE_CAPACITY, MAX_QUEUE_CAPACITY, Profile, Qos};
pub use data::EventData;
pub use details::EventDetails;
pub use error::{ConfigError, EventDataError, FlushError, TryPublishError};
pub use event::{Event, EventType, HttpInfo};
pub use handle::PublisherHandle;
pub use health::Health;
pub use layer::{MqttEventLayer, MqttEventService, ResponseFuture};
pub use publisher::{PublisherState, PublisherTask, ShutdownReport, Stats};
