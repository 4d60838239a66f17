//! MQTT over WebSocket (feature `websocket`), through an ingress in front of a real broker's
//! TCP port, as an HTTP ingress (Kong, nginx) carries MPS's broker: plain `ws://`, `wss://`
//! with a custom CA (feature `tls` too), a wrong path, and writes still coalesced into few
//! WebSocket messages.

#![cfg(feature = "websocket")]

mod support;

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response};
use mps_mqtt_events::{MqttEventLayer, PublisherHandle};
use support::ws_ingress::WsIngress;
use support::{Broker, Subscriber, unique_topic, wait_until};
use tower::{Layer, ServiceExt, service_fn};

/// Generous bound for anything that should happen soon: not a performance assertion.
const WAIT: Duration = Duration::from_secs(10);
const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

/// Sends `n` power actions through the layer; each must succeed at once.
async fn calls(layer: &MqttEventLayer, n: usize) {
    for _ in 0..n {
        let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
        let path = format!("/api/v1/amt/power/action/{GUID}");
        let request = Request::post(path).body(()).expect("valid request");
        let response = tokio::time::timeout(WAIT, layer.layer(inner).oneshot(request))
            .await
            .expect("a request never waits on the broker")
            .expect("infallible");
        assert_eq!(response.status(), 200);
    }
}

/// Flushes and checks that all `n` events were delivered and all arrived at `subscriber`.
async fn all_arrive(handle: &PublisherHandle, subscriber: &mut Subscriber, n: usize) {
    let flushed = handle.flush(WAIT).await;
    let stats = handle.stats();
    assert!(
        flushed.is_ok(),
        "flush: {flushed:?}, {stats:#?}, {:?}",
        handle.last_error()
    );
    assert_eq!((stats.delivered, stats.failed), (n as u64, 0), "{stats:#?}");
    let received = subscriber.collect(n, WAIT).await;
    assert_eq!(received.len(), n, "events that arrived");
    assert!(received.iter().all(|r| r.payload["guid"] == GUID));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_over_websocket_through_an_ingress() {
    let broker = Broker::start();
    let ingress = WsIngress::start(broker.port, "/mqtt", None).await;
    let topic = unique_topic("websocket");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    // The default path is /mqtt.
    let layer = MqttEventLayer::builder()
        .address(ingress.url("ws", ""))
        .topic(&topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    assert_eq!(handle.broker(), Some(ingress.url("ws", "/mqtt").as_str()));
    calls(&layer, 20).await;
    all_arrive(&handle, &mut subscriber, 20).await;
    assert_eq!(ingress.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_stay_coalesced_over_websocket() {
    // Within what a broker queues for one subscriber by default (Mosquitto: 1000).
    const N: usize = 500;
    let broker = Broker::start();
    let ingress = WsIngress::start(broker.port, "/mqtt", None).await;
    let topic = unique_topic("websocket_batches");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = MqttEventLayer::builder()
        .address(ingress.url("ws", "/mqtt"))
        .topic(&topic)
        .queue_capacity(N)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    // The first request starts the publisher; count messages once it is connected.
    calls(&layer, 1).await;
    assert!(wait_until(WAIT, || handle.stats().delivered == 1).await);
    let before = ingress.messages_in();
    calls(&layer, N - 1).await;
    all_arrive(&handle, &mut subscriber, N).await;
    let messages = ingress.messages_in() - before;
    eprintln!("{N} events in {messages} WebSocket messages");
    assert!(
        messages * 10 <= N as u64,
        "{messages} WebSocket messages for {N} events: writes are not coalesced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_websocket_path_is_reported_and_requests_are_unaffected() {
    let broker = Broker::start();
    let ingress = WsIngress::start(broker.port, "/mqtt", None).await;
    let layer = MqttEventLayer::builder()
        .address(ingress.url("ws", "/wrong"))
        .topic(unique_topic("websocket_path"))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .expect("valid config");
    let handle = layer.handle();
    calls(&layer, 3).await;
    assert!(
        wait_until(WAIT, || handle.stats().connect_failures >= 2).await,
        "{:#?}",
        handle.stats()
    );
    let error = handle.last_error().unwrap_or_default();
    assert!(
        error.contains("HTTP 404") && error.contains("path"),
        "last_error: {error:?}"
    );
    let stats = handle.stats();
    assert!(!stats.connected);
    assert_eq!((stats.failed, stats.pending()), (0, 3), "{stats:#?}");
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_over_secure_websocket_with_a_custom_ca() {
    use support::tls::Pki;
    let pki = Pki::new();
    let broker = Broker::start();
    let ingress = WsIngress::start(broker.port, "/mqtt", Some(server_config(&pki))).await;
    let topic = unique_topic("secure_websocket");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = MqttEventLayer::builder()
        .address(ingress.url("wss", "/mqtt"))
        .ca_file(&pki.ca_file)
        .topic(&topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    calls(&layer, 20).await;
    all_arrive(&handle, &mut subscriber, 20).await;
    assert_eq!(ingress.connections(), 1);
}

/// The ingress's TLS: the test PKI's server certificate for 127.0.0.1.
#[cfg(feature = "tls")]
fn server_config(pki: &support::tls::Pki) -> tokio_rustls::rustls::ServerConfig {
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::crypto::ring;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(&pki.server.cert)
        .expect("server certificate file")
        .collect::<Result<Vec<_>, _>>()
        .expect("server certificate PEM");
    let key = PrivateKeyDer::from_pem_file(&pki.server.key).expect("server key PEM");
    ServerConfig::builder_with_provider(std::sync::Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate and key")
}
