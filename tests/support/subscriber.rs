//! A real MQTT client subscribed to one topic, collecting what the broker delivers.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::unique_suffix;

/// How long a subscriber waits for its CONNACK and SUBACK.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between two polls of the subscriber's event loop after a connection error, so a
/// broker that is down is not hammered; rumqttc reconnects on the next poll.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);
/// One PUBLISH as the subscriber received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub topic: String,
    pub qos: QoS,
    /// The payload parsed as JSON; a payload that is not JSON arrives as
    /// `{"invalid_json": "<text>"}` so that comparisons fail with the text in view.
    pub payload: serde_json::Value,
    /// The payload as sent, for checks of field order and compactness.
    pub raw: String,
}

/// An MQTT client subscribed at QoS 1 to one topic, collecting what arrives.
///
/// It subscribes again after every reconnect (clean sessions), so it survives a broker
/// restart; what is published while it is disconnected is lost.
#[derive(Debug)]
pub struct Subscriber {
    client: AsyncClient,
    received: mpsc::UnboundedReceiver<Received>,
    task: JoinHandle<()>,
    pub topic: String,
}

impl Subscriber {
    /// Connects to `broker` (`mqtt://host:port`, `host:port` or a bare loopback port),
    /// subscribes to `topic` at QoS 1 and returns once the broker sent SUBACK.
    ///
    /// # Panics
    ///
    /// When no SUBACK arrives within 5 s.
    pub async fn connect(broker: &str, topic: &str) -> Subscriber {
        Self::connect_as(broker, topic, None).await
    }

    /// As [`Subscriber::connect`], logging in with `credentials` (user name, password) when
    /// given, for brokers that refuse anonymous clients.
    pub async fn connect_as(
        broker: &str,
        topic: &str,
        credentials: Option<(&str, &str)>,
    ) -> Subscriber {
        let (host, port) = host_port(broker);
        let client_id = format!("test-sub-{}", unique_suffix());
        let mut options = MqttOptions::new(client_id, host, port);
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        options.set_keep_alive(Duration::from_secs(5));
        options.set_clean_session(true);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut event_loop) = AsyncClient::new(options, 64);
        let (tx, received) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let topic_owned = topic.to_owned();
        let resubscriber = client.clone();
        let task = tokio::spawn(async move {
            let mut subscribed_tx = Some(subscribed_tx);
            let mut connections = 0_u64;
            loop {
                match event_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connections += 1;
                        if connections > 1 {
                            // A clean session forgets the subscription: make it again.
                            let _ =
                                resubscriber.try_subscribe(topic_owned.clone(), QoS::AtLeastOnce);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(publish))) => {
                        let payload =
                            serde_json::from_slice(&publish.payload).unwrap_or_else(|_| {
                                serde_json::json!({
                                    "invalid_json": String::from_utf8_lossy(&publish.payload)
                                })
                            });
                        let message = Received {
                            topic: publish.topic,
                            qos: publish.qos,
                            payload,
                            raw: String::from_utf8_lossy(&publish.payload).into_owned(),
                        };
                        if tx.send(message).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(RECONNECT_PAUSE).await,
                }
            }
        });
        client
            .subscribe(topic, QoS::AtLeastOnce)
            .await
            .expect("queue SUBSCRIBE");
        match tokio::time::timeout(SUBACK_TIMEOUT, subscribed).await {
            Ok(Ok(())) => {}
            _ => {
                task.abort();
                panic!("no SUBACK for {topic:?} from {broker} within {SUBACK_TIMEOUT:?}");
            }
        }
        Subscriber {
            client,
            received,
            task,
            topic: topic.to_owned(),
        }
    }

    /// The next message, or `None` when none arrives within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Received> {
        tokio::time::timeout(timeout, self.received.recv())
            .await
            .ok()
            .flatten()
    }

    /// Up to `n` messages, returning early with fewer when `timeout` (for all of them)
    /// passes first.
    pub async fn collect(&mut self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut all = Vec::with_capacity(n);
        while all.len() < n {
            match tokio::time::timeout_at(deadline, self.received.recv()).await {
                Ok(Some(message)) => all.push(message),
                Ok(None) | Err(_) => break,
            }
        }
        all
    }

    /// Panics if any message arrives within `duration`. Only to check that nothing more
    /// comes: here the bounded wait itself is the signal.
    pub async fn assert_quiet(&mut self, duration: Duration) {
        if let Ok(Some(extra)) = tokio::time::timeout(duration, self.received.recv()).await {
            panic!(
                "expected no more messages on {:?} within {duration:?}, got {extra:#?}",
                self.topic
            );
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
        self.task.abort();
    }
}

/// `(host, port)` from `mqtt://host:port`, `tcp://host:port`, `host:port` or `port`.
fn host_port(broker: &str) -> (String, u16) {
    let rest = broker.split_once("://").map_or(broker, |(_, rest)| rest);
    let rest = rest.trim_end_matches('/');
    if let Ok(port) = rest.parse::<u16>() {
        return ("127.0.0.1".to_owned(), port);
    }
    let (host, port) = rest
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("broker address {broker:?} has no port"));
    let port = port
        .parse()
        .unwrap_or_else(|_| panic!("broker address {broker:?} has a bad port"));
    (host.trim_matches(['[', ']']).to_owned(), port)
}
