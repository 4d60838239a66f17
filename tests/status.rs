//! The retained online/offline status (birth message, last will, farewell) and retained
//! events, against a real broker and real subscribers.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use mps_mqtt_events::MqttEventLayer;
use support::{Broker, Subscriber, unique_topic, wait_until};
use tower::{Layer, ServiceExt, service_fn};

const WAIT: Duration = Duration::from_secs(10);
const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

async fn power_action(layer: &MqttEventLayer) {
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let path = format!("/api/v1/amt/power/action/{GUID}");
    let request = Request::post(path).body(()).expect("a request");
    let response = layer
        .layer(inner)
        .oneshot(request)
        .await
        .expect("infallible");
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_topic_says_online_at_connect_and_offline_at_shutdown() {
    let broker = Broker::start();
    let status = unique_topic("status");
    let layer = MqttEventLayer::builder()
        .address(broker.url())
        .topic(unique_topic("status_events"))
        .client_id("mps-status-test")
        .status_topic(&status)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    power_action(&layer).await;
    handle.flush(WAIT).await.expect("delivered");
    // Retained: a subscriber that comes after the connection still gets it.
    let mut watcher = Subscriber::connect(&broker.url(), &status).await;
    let online = watcher
        .next(WAIT)
        .await
        .expect("the retained online status");
    assert_eq!(
        online.payload,
        serde_json::json!({"status": "online", "client_id": "mps-status-test"})
    );
    handle.shutdown(WAIT).await;
    let offline = watcher
        .next(WAIT)
        .await
        .expect("the offline status at shutdown");
    assert_eq!(offline.payload["status"], "offline");
}

#[test]
fn a_publisher_that_dies_leaves_its_last_will() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let broker = Broker::start();
    let status = unique_topic("will");
    let (layer, task) = MqttEventLayer::builder()
        .address(broker.url())
        .topic(unique_topic("will_events"))
        .status_topic(&status)
        .build_pair()
        .expect("valid config");
    let handle = layer.handle();
    // The publisher runs on a runtime of its own, which then goes away with it: the
    // connection closes without a DISCONNECT, as when the server process is killed.
    let publisher_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("publisher runtime");
    let (kill, killed) = tokio::sync::oneshot::channel::<()>();
    let worker = std::thread::spawn(move || {
        publisher_runtime.block_on(async {
            // Runs the publisher until told to die; dropping it then drops its connection.
            tokio::select! {
                () = task => {}
                _ = killed => {}
            }
        });
    });
    runtime.block_on(async {
        let mut watcher = Subscriber::connect(&broker.url(), &status).await;
        assert!(
            wait_until(WAIT, || handle.stats().connected).await,
            "connected"
        );
        let online = watcher.next(WAIT).await.expect("online");
        assert_eq!(online.payload["status"], "online");
        kill.send(()).expect("the publisher is running");
        worker.join().expect("the publisher thread");
        let will = watcher
            .next(WAIT)
            .await
            .expect("the broker publishes the last will");
        assert_eq!(will.payload["status"], "offline");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_events_reach_subscribers_that_come_later() {
    let broker = Broker::start();
    let base = unique_topic("retained");
    let layer = MqttEventLayer::builder()
        .address(broker.url())
        .topic(format!("{base}/{{guid}}"))
        .retain(true)
        .build()
        .expect("valid config");
    power_action(&layer).await;
    layer.handle().flush(WAIT).await.expect("delivered");
    let mut late = Subscriber::connect(&broker.url(), &format!("{base}/{GUID}")).await;
    let event = late
        .next(WAIT)
        .await
        .expect("the device's retained last event");
    assert_eq!(event.payload["message"], "Power Action requested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_ok_while_connected_and_why_not_when_the_broker_is_away() {
    // Connected: ok, nothing waiting.
    let (_broker, _subscriber, layer) = support::connected("health", |b| b).await;
    assert_eq!(layer.handle().health().status, "idle", "before any request");
    power_action(&layer).await;
    layer.handle().flush(WAIT).await.expect("delivered");
    let health = layer.handle().health();
    assert_eq!(health.status, "ok", "{health:?}");
    assert!(health.healthy() && health.connected);
    assert_eq!(
        (health.queue_len, health.queue_fill, health.delivered),
        (0, 0.0, 1)
    );

    // Nobody listens: connecting, the reason, the queue filling; JSON without the password.
    let nobody = support::UnusedPort::reserve();
    let away = MqttEventLayer::builder()
        .address(nobody.url().replace("mqtt://", "mqtt://mps:s3cret-pw@"))
        .queue_capacity(8)
        .build()
        .expect("valid config");
    for _ in 0..4 {
        power_action(&away).await;
    }
    let handle = away.handle();
    assert!(
        wait_until(WAIT, || handle.last_error().is_some()).await,
        "a failed connection attempt"
    );
    let health = handle.health();
    assert_eq!(health.status, "connecting", "{health:?}");
    assert!(!health.healthy() && !health.connected);
    assert_eq!((health.queue_len, health.queue_capacity), (4, 8));
    assert_eq!(health.queue_fill, 0.5);
    let json = serde_json::to_value(&health).expect("serializable");
    assert_eq!(json["state"], "running");
    assert_eq!(json["queueFill"], 0.5);
    assert!(
        json["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{json}"
    );
    assert!(!json.to_string().contains("s3cret"), "{json}");
    assert!(
        json["broker"].as_str().is_some_and(|b| b.contains("***")),
        "{json}"
    );
}
