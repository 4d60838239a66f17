//! The example's own MQTT subscriber. It subscribes to the events' topic on the broker the
//! example publishes to (the embedded one, or a plain `mqtt://` one named in
//! `MPS_MQTT_ADDRESS`), prints what the embedded broker delivers as `event <topic> <json>`,
//! and broadcasts every event to the events page ([`Feed`]).

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use tokio::sync::{broadcast, oneshot, watch};
use tracing::{debug, warn};

use crate::config::{Mode, PlainBroker};
use crate::output::{Failure, say};

/// How long the example subscriber may take to connect and subscribe.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause before the example subscriber reconnects after an error.
const SUBSCRIBER_RETRY: Duration = Duration::from_millis(500);

/// Events kept for pages that fall behind; a page further behind skips the oldest.
const FEED_CAPACITY: usize = 1024;

/// What the events page can show.
#[derive(Debug, Clone)]
pub(crate) enum Feed {
    /// The subscriber runs: every event it receives, as compact JSON, and whether it is
    /// subscribed now.
    Live {
        /// Each page subscribes to it; one that falls [`FEED_CAPACITY`] behind skips events.
        events: broadcast::Sender<Arc<str>>,
        /// `true` between a granted SUBACK and the next connection error.
        subscribed: watch::Receiver<bool>,
    },
    /// No subscriber, and why (eventing off, a TLS or WebSocket broker).
    Unavailable(String),
}

/// The running subscriber: the page's [`Feed`] and, for the embedded broker, the count of
/// events printed.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// What the events page shows.
    pub(crate) feed: Feed,
    /// Events printed so far (embedded broker only).
    printed: Option<watch::Receiver<u64>>,
}

/// Where and how the subscriber connects.
struct Target {
    host: String,
    port: u16,
    login: Option<(String, String)>,
    /// Print each event on stdout (embedded broker only: with another broker, `mosquitto_sub`
    /// is the tool).
    print: bool,
}

/// Starts the subscriber for `mode` and waits for its SUBACK, so no event of a later request
/// is missed.
///
/// # Errors
///
/// With the embedded broker, when it refuses the subscription or sends no SUBACK within 5 s.
/// Another broker may come up later: the subscriber keeps trying and only warns.
pub(crate) async fn subscribe(mode: &Mode) -> Result<Subscription, Failure> {
    let (target, topic) = match mode {
        Mode::Embedded { broker, topic } => {
            let target = Target {
                host: broker.addr.ip().to_string(),
                port: broker.addr.port(),
                login: None,
                print: true,
            };
            (target, topic)
        }
        Mode::External {
            topic,
            feed: Ok(PlainBroker { host, port, login }),
            ..
        } => {
            let target = Target {
                host: host.clone(),
                port: *port,
                login: login.clone(),
                print: false,
            };
            let (feed, _, subscribed) = start(target, topic.clone());
            if let Err(reason) = subscribed.await {
                warn!(%reason, "the events page stays empty until the subscriber is subscribed");
            }
            return Ok(Subscription {
                feed,
                printed: None,
            });
        }
        Mode::External { feed: Err(why), .. } => return Ok(unavailable(why.clone())),
        Mode::Off => return Ok(unavailable(mode.to_string())),
    };
    let (feed, printed, subscribed) = start(target, topic.clone());
    subscribed.await.map_err(Failure::Runtime)?;
    Ok(Subscription {
        feed,
        printed: Some(printed),
    })
}

impl Subscription {
    /// At exit: waits up to `timeout` until the subscriber printed `delivered` events (the
    /// broker forwards what it acknowledged); warns when it did not.
    pub(crate) async fn wait_printed(self, delivered: u64, timeout: Duration) {
        let Some(mut printed) = self.printed else {
            return;
        };
        let all_printed = printed.wait_for(|n| *n >= delivered);
        if tokio::time::timeout(timeout, all_printed).await.is_err() {
            warn!(
                printed = *printed.borrow(),
                delivered, "not every delivered event reached the example subscriber"
            );
        }
    }
}

/// No subscriber: the page shows `reason`.
fn unavailable(reason: String) -> Subscription {
    Subscription {
        feed: Feed::Unavailable(reason),
        printed: None,
    }
}

/// The subscription filter for a topic that may be a template: each `{type}`, `{guid}` or
/// `{method}` level becomes `+`.
fn topic_filter(topic: &str) -> String {
    topic
        .split('/')
        .map(|level| {
            if level.starts_with('{') && level.ends_with('}') {
                "+"
            } else {
                level
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The payload as the page gets it: JSON on one line, as an SSE data line needs (compact
/// payloads pass as sent, keeping their field order).
fn page_json(payload: &[u8]) -> Result<Arc<str>, serde_json::Error> {
    let event: serde_json::Value = serde_json::from_slice(payload)?;
    Ok(match std::str::from_utf8(payload) {
        Ok(text) if !text.contains(['\r', '\n']) => Arc::from(text),
        _ => Arc::from(event.to_string()),
    })
}

/// Spawns the subscriber task; returns the feed, the count of events printed, and a future
/// that resolves once the first SUBACK arrived (or with why not, within [`SUBACK_TIMEOUT`]).
fn start(
    target: Target,
    topic: String,
) -> (
    Feed,
    watch::Receiver<u64>,
    impl Future<Output = Result<(), String>>,
) {
    let client_id = format!("mps-server-example-subscriber-{}", std::process::id());
    let mut options = MqttOptions::new(client_id, target.host.clone(), target.port);
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = &target.login {
        options.set_credentials(user.clone(), password.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let (subscribed_tx, subscribed_rx) = oneshot::channel::<Result<(), String>>();
    let (printed_tx, printed_rx) = watch::channel(0_u64);
    let (state_tx, state_rx) = watch::channel(false);
    let (events_tx, _) = broadcast::channel::<Arc<str>>(FEED_CAPACITY);
    let events = events_tx.clone();
    let filter = topic_filter(&topic);
    let where_ = format!("{}:{}", target.host, target.port);

    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                // Clean session: subscribe again after every (re)connect.
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                        warn!(error = %e, "example subscriber cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .any(|code| matches!(code, SubscribeReasonCode::Failure));
                    state_tx.send_replace(!refused);
                    let result = if refused {
                        Err(format!(
                            "the broker {where_} refused the subscription to {filter}"
                        ))
                    } else {
                        Ok(())
                    };
                    if let Some(tx) = subscribed_tx.take() {
                        // `subscribe` stops waiting after SUBACK_TIMEOUT; then nobody listens.
                        let _ = tx.send(result);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if target.print {
                        say(format_args!(
                            "event {} {}",
                            publish.topic,
                            String::from_utf8_lossy(&publish.payload)
                        ));
                        printed_tx.send_modify(|n| *n += 1);
                    }
                    match page_json(&publish.payload) {
                        // No page connected is no error; a slow page lags, never blocks this.
                        Ok(event) => drop(events_tx.send(event)),
                        Err(e) => debug!(error = %e, topic = %publish.topic, "not JSON, not shown"),
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    state_tx.send_replace(false);
                    warn!(error = %e, broker = %where_, "example subscriber lost the broker; reconnecting");
                    tokio::time::sleep(SUBSCRIBER_RETRY).await;
                }
            }
        }
    });

    let subscribed = async move {
        match tokio::time::timeout(SUBACK_TIMEOUT, subscribed_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the example subscriber stopped before subscribing".to_owned()),
            Err(_) => Err(format!(
                "the example subscriber got no SUBACK for {topic} within {SUBACK_TIMEOUT:?}"
            )),
        }
    };
    let feed = Feed::Live {
        events,
        subscribed: state_rx,
    };
    (feed, printed_rx, subscribed)
}
