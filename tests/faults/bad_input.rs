//! Input the events must survive: paths too large to publish, and a broker whose ACL denies
//! our topic.

use std::time::Duration;

use serde_json::Value;

use crate::support::{self, Broker, Subscriber, unique_topic};
use crate::{assert_accounted, builder, call, init_tracing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_paths_are_never_published() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let topic = unique_topic("oversized");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = builder(&broker.url(), &topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let huge = "x".repeat(60 * 1024); // near http's 64 KiB limit on a URI
    let paths = [
        format!("/{huge}"),                               // no route
        format!("/api/v1/amt/power/action/{huge}"),       // a route, a huge guid segment
        format!("/api/v1/amt/power/action/%FF%FE{huge}"), // percent-encoded invalid UTF-8
    ];
    for path in &paths {
        support::respond(&layer, "POST", path, 200, None).await;
    }
    handle
        .flush(Duration::from_secs(10))
        .await
        .expect("delivered");
    let events = subscriber
        .collect(paths.len(), Duration::from_secs(5))
        .await;
    assert_eq!(events.len(), paths.len());
    for event in &events {
        assert!(event.raw.len() < 1024, "event of {} bytes", event.raw.len());
        assert!(
            !event.raw.contains("xxxx"),
            "the path leaked: {}",
            event.raw
        );
        assert_eq!(event.payload.get("guid"), None);
    }
    assert_eq!(events[0].payload["http"]["path"], Value::Null);
    assert_eq!(
        events[1].payload["http"]["path"],
        "/api/v1/amt/power/action/:guid"
    );
    assert_accounted(&handle.stats(), paths.len() as u64);
}

/// Pins a limit the README states: an MQTT 3.1.1 broker acknowledges a publish its ACL
/// denies (Mosquitto drops it silently), so such events count as delivered and never arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_denied_events_are_acknowledged_but_never_arrive() {
    init_tracing();
    let dir = support::TempDir::new("mps-acl");
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic read mps/#\n").expect("write the ACL file");
    let Some(broker) =
        Broker::start_mosquitto_only(&format!("acl_file {}\nlog_type debug", acl.display()))
    else {
        return;
    };
    let topic = unique_topic("acl_denied");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = builder(&broker.url(), &topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    for i in 0..5 {
        assert_eq!(call(&layer, i).await, 200);
    }
    handle
        .flush(Duration::from_secs(10))
        .await
        .expect("the broker acknowledges denied publishes");
    let stats = handle.stats();
    assert_eq!(stats.acknowledged, 5, "{stats:#?}");
    assert_accounted(&stats, 5);
    subscriber.assert_quiet(Duration::from_millis(300)).await;
    assert!(broker.log().contains("Denied PUBLISH"), "{}", broker.log());
}
