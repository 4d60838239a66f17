//! The example's own subscriber (embedded broker only): prints every event the embedded
//! broker delivers as `event <topic> <json>`.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use tokio::sync::{oneshot, watch};
use tracing::warn;

use crate::output::{Failure, say};

/// How long the example subscriber may take to connect and subscribe.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause before the example subscriber reconnects after an error.
const SUBSCRIBER_RETRY: Duration = Duration::from_millis(500);

/// Connects to the embedded broker, subscribes to `topic`, waits for the SUBACK, then prints
/// every message in the background. The receiver counts the messages printed.
pub(crate) async fn print_events(
    broker: SocketAddr,
    topic: String,
) -> Result<watch::Receiver<u64>, Failure> {
    let client_id = format!("mps-server-example-subscriber-{}", std::process::id());
    let mut options = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let (subscribed_tx, subscribed_rx) = oneshot::channel::<Result<(), String>>();
    let (printed_tx, printed_rx) = watch::channel(0_u64);
    let subscription = topic.clone();

    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                // Clean session: subscribe again after every (re)connect.
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Err(e) = client.try_subscribe(subscription.as_str(), QoS::AtLeastOnce) {
                        warn!(error = %e, "example subscriber cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .any(|code| matches!(code, SubscribeReasonCode::Failure));
                    let result = if refused {
                        Err(format!(
                            "the embedded broker refused the subscription to {subscription}"
                        ))
                    } else {
                        Ok(())
                    };
                    if let Some(tx) = subscribed_tx.take() {
                        // `serve` stops waiting after SUBACK_TIMEOUT; then nobody listens.
                        let _ = tx.send(result);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    say(format_args!(
                        "event {} {}",
                        publish.topic,
                        String::from_utf8_lossy(&publish.payload)
                    ));
                    printed_tx.send_modify(|n| *n += 1);
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "example subscriber lost the embedded broker; reconnecting");
                    tokio::time::sleep(SUBSCRIBER_RETRY).await;
                }
            }
        }
    });

    match tokio::time::timeout(SUBACK_TIMEOUT, subscribed_rx).await {
        Ok(Ok(Ok(()))) => Ok(printed_rx),
        Ok(Ok(Err(refused))) => Err(Failure::Runtime(refused)),
        Ok(Err(_)) => Err(Failure::Runtime(
            "the example subscriber stopped before subscribing".to_owned(),
        )),
        Err(_) => Err(Failure::Runtime(format!(
            "the example subscriber got no SUBACK for {topic} from the embedded broker within \
             {SUBACK_TIMEOUT:?}"
        ))),
    }
}
