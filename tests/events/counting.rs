//! One event per request, in request order, with growing ids; the fail event of a cancelled
//! request; the QoS as configured; and flush returning once the broker acknowledged.

use std::time::Duration;

use mps_mqtt_events::Qos;
use rumqttc::QoS;
use serde_json::json;

use crate::support::{self, BrokerKind};
use crate::{
    FLUSH_TIMEOUT, GUID, Harness, QUIET, SIGNAL_TIMEOUT, assert_accounted, event_id, normalised,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_exactly_one_event_per_request() {
    const REQUESTS: usize = 50;
    let mut h = Harness::start("one_per_request").await;
    // Each request names a different device, so the events' order is visible.
    let guids: Vec<String> = (0..REQUESTS)
        .map(|i| format!("4c4c4544-004b-4210-8033-{i:012x}"))
        .collect();
    for guid in &guids {
        let status = h
            .http("POST", &format!("/api/v1/amt/power/action/{guid}"), None)
            .await;
        assert_eq!(status, 200);
    }

    let received = h
        .subscriber
        .collect(REQUESTS, Duration::from_secs(10))
        .await;
    assert_eq!(received.len(), REQUESTS, "events received: {received:#?}");
    let received_guids: Vec<&str> = received
        .iter()
        .map(|r| r.payload["guid"].as_str().unwrap_or("<no guid>"))
        .collect();
    assert_eq!(received_guids, guids, "events in request order");
    // One publisher: one instance part, and the sequence grows with every event.
    let ids: Vec<(&str, u64)> = received
        .iter()
        .map(|r| {
            let id = r.payload["id"].as_str().unwrap_or_default();
            event_id(id).unwrap_or_else(|| panic!("bad id {id:?} in {r:?}"))
        })
        .collect();
    assert!(
        ids.iter().all(|(instance, _)| *instance == ids[0].0),
        "one instance part for all events of a publisher: {ids:?}"
    );
    assert!(
        ids.windows(2).all(|w| w[0].1 < w[1].1),
        "id sequence grows in publish order: {ids:?}"
    );
    for r in &received {
        assert_eq!(r.payload["type"], "success", "{r:?}");
        assert_eq!(r.payload["methods"], json!(["AMT_PowerAction"]), "{r:?}");
    }
    h.subscriber.assert_quiet(QUIET).await;

    h.handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("flush with a healthy broker");
    let stats = h.handle.stats();
    assert_eq!(stats.enqueued, REQUESTS as u64, "{stats:#?}");
    assert_eq!(stats.acknowledged, REQUESTS as u64, "{stats:#?}");
    assert_eq!(
        stats.dropped_queue_full + stats.dropped_closed,
        0,
        "{stats:#?}"
    );
    assert_accounted(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_request_publishes_fail_event() {
    let mut h = Harness::start("cancelled").await;
    let path = format!("/api/v1/amt/hardwareInfo/{GUID}");

    let before = support::now_ms();
    let stream = support::send_request_only(h.addr, "GET", &path).await;
    support::within(SIGNAL_TIMEOUT, "handler start", h.probe.started.notified()).await;
    drop(stream);
    support::within(
        SIGNAL_TIMEOUT,
        "server dropping the handler after the client left",
        h.probe.dropped.notified(),
    )
    .await;
    let received = h.next_event(QoS::AtLeastOnce).await;
    let after = support::now_ms();

    let mut event = normalised(&received.payload, before, after);
    let message = event["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.to_lowercase().contains("cancel"),
        "message {message:?} does not say the request was cancelled"
    );
    event["message"] = json!("<cancelled>");
    assert_eq!(
        event,
        json!({
            "type": "fail",
            "message": "<cancelled>",
            "methods": ["AMT_HardwareInfo"],
            "guid": GUID,
            "timestamp": 0,
            "id": "<id>",
            "http": {
                "method": "GET",
                "path": "/api/v1/amt/hardwareInfo/:guid",
                "status": null,
                "latency_ms": 0.0
            }
        })
    );
    h.subscriber.assert_quiet(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_is_honoured() {
    let mut h = Harness::start_with("qos0", |b| b.qos(Qos::AtMostOnce)).await;
    let status = h
        .http("POST", &format!("/api/v1/amt/power/action/{GUID}"), None)
        .await;
    assert_eq!(status, 200);

    // The subscription is QoS 1, so the delivery QoS shows the publish QoS. The embedded
    // broker upgrades QoS 0 deliveries to QoS 1 (a known rumqttd quirk), so only Mosquitto
    // can show it.
    let expected_qos = match h.broker.kind {
        BrokerKind::Mosquitto => QoS::AtMostOnce,
        BrokerKind::Embedded => QoS::AtLeastOnce,
    };
    let received = h.next_event(expected_qos).await;
    assert_eq!(received.payload["type"], "success");
    assert_eq!(received.payload["guid"], GUID);

    h.handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("flush with a healthy broker");
    let stats = h.handle.stats();
    assert_eq!(stats.enqueued, 1, "{stats:#?}");
    assert_eq!(stats.published, 1, "{stats:#?}");
    assert_eq!(
        stats.delivered, 1,
        "QoS 0 counts a written PUBLISH as delivered: {stats:#?}"
    );
    assert_eq!(stats.acknowledged, 0, "no PUBACK at QoS 0: {stats:#?}");
    assert_accounted(&stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_until_broker_acknowledged() {
    const REQUESTS: u64 = 20;
    let mut h = Harness::start("flush").await;
    for i in 0..REQUESTS {
        let (method, path, status) = if i % 2 == 0 {
            ("POST", format!("/api/v1/amt/power/action/{GUID}"), 200)
        } else {
            ("GET", "/api/v1/devices".to_owned(), 200)
        };
        assert_eq!(h.http(method, &path, None).await, status);
    }

    h.handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("flush with a healthy broker");
    // No waiting here: flush returning Ok promises the acknowledgements are counted.
    let stats = h.handle.stats();
    assert_eq!(stats.enqueued, REQUESTS, "{stats:#?}");
    assert_eq!(stats.acknowledged, REQUESTS, "{stats:#?}");
    assert_eq!(stats.published, REQUESTS, "{stats:#?}");
    assert_eq!(stats.delivered, REQUESTS, "{stats:#?}");
    assert_eq!(stats.failed, 0, "{stats:#?}");
    assert_eq!(stats.pending(), 0, "{stats:#?}");
    assert!(stats.connected, "{stats:#?}");
    assert_accounted(&stats);

    let received = h
        .subscriber
        .collect(REQUESTS as usize, Duration::from_secs(10))
        .await;
    assert_eq!(received.len() as u64, REQUESTS);
}
