//! Reconnect storms that must not happen: a broker that refuses us, and a second client that
//! fights us over the client id. Connection attempts stay within the backoff's bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet};

use crate::support::{Broker, Subscriber, max_attempts, unique_suffix, unique_topic, wait_until};
use crate::{
    BACKOFF_MAX, BACKOFF_MIN, FLUSH_TIMEOUT, STATE_TIMEOUT, assert_accounted, builder, call,
    collect_distinct, indices, init_tracing,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_backs_off_instead_of_spinning() {
    init_tracing();
    // The last `allow_anonymous` wins, and no password file exists: CONNACK "not authorised".
    let Some(broker) = Broker::start_mosquitto_only("allow_anonymous false") else {
        return;
    };
    let attempts_in = |log: &str| log.matches("New connection from").count() as u64;
    let baseline = attempts_in(&broker.log());
    let layer = builder(&broker.url(), &unique_topic("refused"))
        .build()
        .expect("valid config");
    let handle = layer.handle();

    const WINDOW: Duration = Duration::from_secs(2);
    let started = Instant::now();
    let mut requests = 0_u64;
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < WINDOW {
        pace.tick().await;
        assert_eq!(call(&layer, requests as usize).await, 200);
        requests += 1;
    }
    // The log is read first: every attempt counted there happened within `elapsed`.
    let log = broker.log();
    let elapsed = started.elapsed();
    let attempts = attempts_in(&log) - baseline;
    let refusals = log.matches("not authorised").count();
    let bound = max_attempts(BACKOFF_MIN, BACKOFF_MAX, elapsed);
    eprintln!(
        "refused: {attempts} connection attempts ({refusals} refused) in {elapsed:?}, \
         bound {bound}, {requests} requests"
    );
    assert!(
        attempts >= 2,
        "the publisher retries after a refusal; log:\n{log}"
    );
    assert!(
        attempts <= bound,
        "{attempts} attempts in {elapsed:?} exceed the backoff bound {bound}; log:\n{log}"
    );
    let stats = handle.stats();
    assert!(!stats.connected, "{stats:#?}");
    assert_eq!(stats.delivered, 0, "{stats:#?}");
    assert_accounted(&stats, requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_client_id_does_not_cause_a_reconnect_storm() {
    init_tracing();
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let suffix = unique_suffix();
    let client_id = format!("dup-{}", &suffix[suffix.len() - 12..]);
    let topic = unique_topic("duplicate_id");
    let layer = builder(&broker.url(), &topic)
        .client_id(&client_id)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;

    let mut requests = 0_usize;
    assert_eq!(call(&layer, requests).await, 200);
    requests += 1;
    handle
        .flush(FLUSH_TIMEOUT)
        .await
        .expect("connected and delivered");

    // A second client with our id: each connection kicks the other one off.
    let (options, twin_connects) = (
        {
            let mut options = MqttOptions::new(&client_id, "127.0.0.1", broker.port);
            options.set_keep_alive(Duration::from_secs(5));
            options
        },
        Arc::new(AtomicU64::new(0)),
    );
    let (twin, mut twin_loop) = AsyncClient::new(options, 10);
    let twin_task = tokio::spawn({
        let connects = Arc::clone(&twin_connects);
        async move {
            loop {
                match twin_loop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connects.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    // Reconnects on the next poll; a short pause so it does not spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
    });
    assert!(
        wait_until(STATE_TIMEOUT, || twin_connects.load(Ordering::SeqCst) >= 1).await,
        "the twin client never connected"
    );
    let fight_started = Instant::now();
    let reconnects_before = handle.stats().reconnects;

    const WINDOW: Duration = Duration::from_secs(3);
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    while fight_started.elapsed() < WINDOW {
        pace.tick().await;
        assert_eq!(call(&layer, requests).await, 200, "request {requests}");
        requests += 1;
    }
    let elapsed = fight_started.elapsed();
    let reconnects = handle.stats().reconnects - reconnects_before;
    let twin_total = twin_connects.load(Ordering::SeqCst);
    twin_task.abort();
    drop(twin);
    let bound = max_attempts(BACKOFF_MIN, BACKOFF_MAX, elapsed);
    eprintln!(
        "duplicate id: {reconnects} reconnects of ours, {twin_total} connections of the twin \
         in {elapsed:?} (bound {bound}), {requests} requests"
    );
    assert!(
        reconnects >= 1,
        "the twin never kicked us off: {:#?}",
        handle.stats()
    );
    assert!(
        reconnects <= bound,
        "{reconnects} reconnects in {elapsed:?} exceed the backoff bound {bound}"
    );

    // The twin is gone: everything arrives.
    handle
        .flush(Duration::from_secs(15))
        .await
        .expect("delivered once the twin left");
    let (events, duplicates) =
        collect_distinct(&mut subscriber, requests, Duration::from_secs(5)).await;
    eprintln!(
        "duplicate id: {} events arrived, {duplicates} duplicates",
        events.len()
    );
    assert_eq!(
        indices(&events),
        (0..requests).collect(),
        "every event arrives"
    );
    let stats = handle.stats();
    assert_eq!(stats.delivered, requests as u64, "{stats:#?}");
    assert_accounted(&stats, requests as u64);
}
