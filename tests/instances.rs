//! Several instances around one event stream: two server instances publishing to one broker
//! with their default client ids, two consumers sharing the stream through an MQTT shared
//! subscription (`$share/<group>/<topic>`), and two Mosquitto brokers bridged to each other
//! with a publisher and a subscriber on each.
//!
//! Every broker is a Mosquitto process started by the test on a free loopback port. Without
//! `mosquitto` the tests print `skipped: ...` and pass, unless `MPS_MQTT_REQUIRE_MOSQUITTO=1`
//! (CI) makes that a failure.
//!
//! "Exactly once" is checked by the events' JSON `id` (unique per event): every expected
//! event arrives, none twice, and nothing more arrives during a short quiet window after.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use mps_mqtt_events::{Builder, MqttEventLayer, PublisherHandle};
use support::{
    Broker, Received, Subscriber, power_actions, request_index, unique_topic, wait_until,
};

/// Reconnect delays of every layer here: short, so that a client disconnected by another
/// would be back (and counted in `reconnects`) well within the quiet window.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How long one request through the layer may take, broker or not.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a publisher may take to connect.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long flush may take with a healthy local broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the subscribers may take to receive every event, bridge hop included.
const COLLECT_TIMEOUT: Duration = Duration::from_secs(20);
/// After the expected events: how long nothing more may arrive (a duplicate, an event
/// looping over the bridge). The bounded wait itself is the check.
const QUIET: Duration = Duration::from_millis(500);
/// Bridge probes: one event every interval until one crosses, at most this many.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
const PROBE_ATTEMPTS: usize = 50;

/// A layer for `address` and `topic` with the short test backoff and the default client id.
fn builder(address: &str, topic: &str) -> Builder {
    MqttEventLayer::builder()
        .address(address)
        .topic(topic)
        .reconnect_backoff(BACKOFF_MIN, BACKOFF_MAX)
}

/// The event ids of `messages`, panicking (naming `who`) when one arrived twice.
#[track_caller]
fn distinct_ids(messages: &[Received], who: &str) -> BTreeSet<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for message in messages {
        let id = message.payload["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{who}: event without an id: {}", message.raw));
        *counts.entry(id).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "{who}: duplicate events {duplicates:?}"
    );
    counts.keys().map(|id| (*id).to_owned()).collect()
}

/// The request indices of `messages`, sorted.
fn indices(messages: &[Received]) -> BTreeSet<usize> {
    messages.iter().map(|m| request_index(&m.payload)).collect()
}

/// Flushes `handle` or panics naming `who`.
async fn flush(handle: &PublisherHandle, who: &str) {
    handle
        .flush(FLUSH_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{who}: flush failed: {e}; stats {:#?}", handle.stats()));
}

/// Sends `n` requests through `layer`, starting at index `start`, in batches that alternate
/// with `other` (its own range starting at `other_start`), so both streams interleave.
async fn interleaved(
    (layer, start): (&MqttEventLayer, usize),
    (other, other_start): (&MqttEventLayer, usize),
    n: usize,
    mut between: impl FnMut(),
) {
    const BATCH: usize = 10;
    for offset in (0..n).step_by(BATCH) {
        let end = (offset + BATCH).min(n);
        power_actions(layer, start + offset..start + end, REQUEST_TIMEOUT).await;
        power_actions(
            other,
            other_start + offset..other_start + end,
            REQUEST_TIMEOUT,
        )
        .await;
        between();
    }
}

/// The client ids Mosquitto logged as connecting that start with `prefix`.
fn logged_client_ids(broker: &Broker, prefix: &str) -> BTreeSet<String> {
    // "New client connected from 127.0.0.1:40000 as mps-host-1a2b (p2, c1, k15)."
    broker
        .log()
        .lines()
        .filter_map(|line| line.split(" as ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|id| id.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_with_default_client_ids_both_deliver_and_never_disconnect_each_other() {
    const N: usize = 100;
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let topic = unique_topic("two_instances");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    // Two server instances: the same settings, no client id of their own.
    let settings = builder(&broker.url(), &topic);
    let first = settings.clone().build().expect("valid config");
    let second = settings.build().expect("valid config");
    let (first_handle, second_handle) = (first.handle(), second.handle());

    // The first connects, then the second: with one shared client id the broker would
    // close the first connection now.
    power_actions(&first, 0..1, REQUEST_TIMEOUT).await;
    assert!(
        wait_until(STATE_TIMEOUT, || first_handle.stats().connected).await,
        "first never connected: {:?}",
        first_handle.last_error()
    );
    power_actions(&second, N..N + 1, REQUEST_TIMEOUT).await;
    assert!(
        wait_until(STATE_TIMEOUT, || second_handle.stats().connected).await,
        "second never connected: {:?}",
        second_handle.last_error()
    );

    let mut disconnected_seen = Vec::new();
    interleaved((&first, 1), (&second, N + 1), N - 1, || {
        for (name, handle) in [("first", &first_handle), ("second", &second_handle)] {
            if !handle.stats().connected {
                disconnected_seen.push(name);
            }
        }
    })
    .await;
    flush(&first_handle, "first").await;
    flush(&second_handle, "second").await;

    let events = subscriber.collect(2 * N, COLLECT_TIMEOUT).await;
    subscriber.assert_quiet(QUIET).await;
    let ids = distinct_ids(&events, "subscriber");
    assert_eq!(ids.len(), 2 * N, "events received: {}", events.len());
    assert_eq!(indices(&events), (0..2 * N).collect::<BTreeSet<_>>());

    // The quiet window gave a kicked-out publisher time to reconnect and count it.
    assert!(
        disconnected_seen.is_empty(),
        "seen disconnected while sending: {disconnected_seen:?}"
    );
    for (name, handle) in [("first", &first_handle), ("second", &second_handle)] {
        let stats = handle.stats();
        assert!(stats.connected, "{name} disconnected: {stats:#?}");
        assert_eq!(stats.reconnects, 0, "{name} reconnected: {stats:#?}");
        assert_eq!(stats.connect_failures, 0, "{name}: {stats:#?}");
        assert_eq!(stats.delivered, N as u64, "{name}: {stats:#?}");
    }
    let log = broker.log();
    assert!(
        !log.contains("already connected"),
        "the broker closed a connection for a client id taken over:\n{log}"
    );
    let client_ids = logged_client_ids(&broker, "mps-");
    assert_eq!(
        client_ids.len(),
        2,
        "two default client ids expected: {client_ids:?}\n{log}"
    );

    first_handle.shutdown(FLUSH_TIMEOUT).await;
    second_handle.shutdown(FLUSH_TIMEOUT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_consumers_split_the_events_each_delivered_once() {
    const N: usize = 200;
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let topic = unique_topic("shared");
    // MQTT 3.1.1 clients (rumqttc's v4 client): Mosquitto 2 accepts `$share/` from them too.
    let filter = format!("$share/mps-consumers/{topic}");
    let mut first = Subscriber::connect(&broker.url(), &filter).await;
    let mut second = Subscriber::connect(&broker.url(), &filter).await;
    let layer = builder(&broker.url(), &topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();

    power_actions(&layer, 0..N, REQUEST_TIMEOUT).await;
    flush(&handle, "publisher").await;

    // Neither consumer knows its share in advance: take from both until all N arrived.
    let deadline = tokio::time::Instant::now() + COLLECT_TIMEOUT;
    let (mut to_first, mut to_second) = (Vec::new(), Vec::new());
    while to_first.len() + to_second.len() < N {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        tokio::select! {
            message = first.next(left) => match message {
                Some(message) => to_first.push(message),
                None => break,
            },
            message = second.next(left) => match message {
                Some(message) => to_second.push(message),
                None => break,
            },
        }
    }
    tokio::join!(first.assert_quiet(QUIET), second.assert_quiet(QUIET));

    let all: Vec<Received> = to_first.iter().chain(&to_second).cloned().collect();
    let ids = distinct_ids(&all, "both consumers together");
    assert_eq!(
        ids.len(),
        N,
        "received {} + {}",
        to_first.len(),
        to_second.len()
    );
    assert_eq!(indices(&all), (0..N).collect::<BTreeSet<_>>());
    // Delivered under the real topic, not the filter.
    assert!(all.iter().all(|m| m.topic == topic), "topics: {all:#?}");
    for (name, got) in [("first", &to_first), ("second", &to_second)] {
        assert!(
            !got.is_empty() && got.len() < N,
            "{name} consumer got {} of {N}: the group must share the load",
            got.len()
        );
    }

    handle.shutdown(FLUSH_TIMEOUT).await;
}

/// Mosquitto configuration lines bridging the broker they are added to with `remote`, for
/// every topic under `mps/events`, in both directions.
fn bridge_to(remote: &Broker) -> String {
    // `mps/events/#` also matches `mps/events` itself. QoS 1 on the bridge, as the
    // publisher's default, so the broker-to-broker hop is acknowledged too. `try_private`
    // stays on (the default): each broker then knows the other is a bridge and never sends
    // an event back where it came from.
    format!(
        "connection bridge-to-a\n\
         address 127.0.0.1:{port}\n\
         topic mps/events/# both 1\n\
         cleansession true\n\
         restart_timeout 1\n\
         notifications false\n",
        port = remote.port
    )
}

/// Publishes probe events on `from` until one arrives at a subscriber on `to`, so that the
/// bridge is connected and its subscription made; panics after [`PROBE_ATTEMPTS`].
async fn wait_bridged(from: &Broker, to: &Broker, direction: &str) {
    let topic = unique_topic("bridge_probe");
    let mut watcher = Subscriber::connect(&to.url(), &topic).await;
    let probe = builder(&from.url(), &topic).build().expect("valid config");
    for attempt in 0..PROBE_ATTEMPTS {
        power_actions(&probe, attempt..attempt + 1, REQUEST_TIMEOUT).await;
        if watcher.next(PROBE_INTERVAL).await.is_some() {
            probe.handle().shutdown(FLUSH_TIMEOUT).await;
            return;
        }
    }
    panic!(
        "bridge {direction} not up after {PROBE_ATTEMPTS} probes; log of {}:\n{}\nlog of {}:\n{}",
        from.port,
        from.log(),
        to.port,
        to.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridged_brokers_deliver_both_publishers_to_both_subscribers_exactly_once() {
    const N: usize = 100;
    let Some(a) = Broker::start_mosquitto_only("") else {
        return;
    };
    let Some(b) = Broker::start_mosquitto_only(&bridge_to(&a)) else {
        return;
    };
    let topic = unique_topic("bridged");
    let mut on_a = Subscriber::connect(&a.url(), &topic).await;
    let mut on_b = Subscriber::connect(&b.url(), &topic).await;
    wait_bridged(&a, &b, "A to B").await;
    wait_bridged(&b, &a, "B to A").await;

    let publisher_a = builder(&a.url(), &topic).build().expect("valid config");
    let publisher_b = builder(&b.url(), &topic).build().expect("valid config");
    interleaved((&publisher_a, 0), (&publisher_b, N), N, || {}).await;
    flush(&publisher_a.handle(), "publisher on A").await;
    flush(&publisher_b.handle(), "publisher on B").await;

    let (at_a, at_b) = tokio::join!(
        on_a.collect(2 * N, COLLECT_TIMEOUT),
        on_b.collect(2 * N, COLLECT_TIMEOUT)
    );
    // An event looping over the bridge would arrive again now.
    tokio::join!(on_a.assert_quiet(QUIET), on_b.assert_quiet(QUIET));

    let ids_a = distinct_ids(&at_a, "subscriber on A");
    let ids_b = distinct_ids(&at_b, "subscriber on B");
    let all = (0..2 * N).collect::<BTreeSet<_>>();
    assert_eq!(ids_a.len(), 2 * N, "A received {}", at_a.len());
    assert_eq!(ids_b.len(), 2 * N, "B received {}", at_b.len());
    assert_eq!(indices(&at_a), all, "requests seen on A");
    assert_eq!(indices(&at_b), all, "requests seen on B");
    assert_eq!(ids_a, ids_b, "both subscribers see the same events");
    assert!(at_a.iter().chain(&at_b).all(|m| m.topic == topic));

    publisher_a.handle().shutdown(FLUSH_TIMEOUT).await;
    publisher_b.handle().shutdown(FLUSH_TIMEOUT).await;
}
