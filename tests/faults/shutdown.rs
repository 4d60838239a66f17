//! Shutdown on a current-thread runtime, with the broker alive (everything is delivered) or
//! dead (it returns by its deadline).

use std::time::{Duration, Instant};

use crate::support::{Broker, Subscriber, unique_topic};
use crate::{
    FLUSH_TIMEOUT, SHUTDOWN_BOUND, assert_accounted, builder, call, collect_distinct, indices,
    init_tracing, wait_connected,
};

#[tokio::test(flavor = "current_thread")]
async fn shutdown_with_live_broker_delivers_everything() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let topic = unique_topic("shutdown_live");
    let layer = builder(&broker.url(), &topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;

    for i in 0..100 {
        assert_eq!(call(&layer, i).await, 200);
    }
    let started = Instant::now();
    let report = handle.shutdown(Duration::from_secs(5)).await;
    eprintln!(
        "shutdown with live broker took {:?}: {report:?}",
        started.elapsed()
    );
    assert_eq!(report.undelivered, 0, "{report:#?}");
    assert_eq!(report.delivered, 100, "{report:#?}");
    let (events, _) = collect_distinct(&mut subscriber, 100, Duration::from_secs(5)).await;
    assert_eq!(indices(&events), (0..100).collect());
    assert_accounted(&report.stats, 100);
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_with_dead_broker_returns_by_the_deadline() {
    init_tracing();
    let Some(mut broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let layer = builder(&broker.url(), &unique_topic("shutdown_dead"))
        .build()
        .expect("valid config");
    let handle = layer.handle();
    // Connected once, so the outage is a lost connection, not a broker that never was.
    assert_eq!(call(&layer, 0).await, 200);
    handle.flush(FLUSH_TIMEOUT).await.expect("delivered");
    broker.kill();
    wait_connected(&handle, false).await;

    for i in 1..=100 {
        assert_eq!(call(&layer, i).await, 200);
    }
    let started = Instant::now();
    let report = handle.shutdown(Duration::from_secs(1)).await;
    let took = started.elapsed();
    eprintln!("shutdown(1s) with dead broker took {took:?}");
    assert!(took < SHUTDOWN_BOUND, "shutdown(1s) took {took:?}");
    assert_eq!(report.undelivered, 100, "{report:#?}");
    assert_eq!(report.stats.failed, 100, "{report:#?}");
    assert_eq!(report.stats.delivered, 1, "{report:#?}");
    assert_accounted(&report.stats, 101);
}
