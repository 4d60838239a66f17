//! Protocol faults, deterministically, against the scripted broker of
//! `support/scripted.rs`: withheld, reordered, unknown and duplicate PUBACKs, packet ids,
//! every CONNACK refusal code, garbage and oversized packets, packets a publisher never
//! expects, a connection closed mid-packet, and the DISCONNECT at shutdown. The last section
//! needs the `keep_alive` and `connect_timeout` builder setters of the new publisher core.
//!
//! Requests go through the public layer only (`tower::Layer::layer` over a `service_fn`,
//! awaited with `oneshot`); the broker's record of what it read is the other witness. After
//! each scenario `enqueued == delivered + failed + queue_len + in_flight` is checked.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use mps_mqtt_events::{Builder, MqttEventLayer, PublisherHandle, PublisherState, Qos, Stats};
use rumqttc::{ConnectReturnCode, Packet, QoS};

use support::logs::with_captured_logs;
use support::scripted::{
    AckOrder, Acks, Published, Record, Script, ScriptedBroker, encode, garbage, oversized_header,
};
use support::{assert_accounted, max_attempts, request_index, wait_until};

/// Reconnect delays: short so that tests finish quickly, exponential so that storms show.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
const TOPIC: &str = "mps/events/scripted";
/// How long one request may take, broker or not: the proof that nothing waits on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous bound for anything the publisher or the broker should do soon (connect,
/// reconnect, deliver): not a performance assertion, only "it does not hang".
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Requests, events, checks

fn builder(broker: &ScriptedBroker) -> Builder {
    MqttEventLayer::builder()
        .address(broker.url())
        .topic(TOPIC)
        .qos(Qos::AtLeastOnce)
        .reconnect_backoff(BACKOFF_MIN, BACKOFF_MAX)
}

/// Sends power actions `indices` through the layer; each must succeed at once.
async fn calls(layer: &MqttEventLayer, indices: std::ops::Range<usize>) {
    support::power_actions(layer, indices, REQUEST_TIMEOUT).await;
}

fn event_id(publish: &Published) -> String {
    publish.payload["id"]
        .as_str()
        .unwrap_or_else(|| panic!("event without an id: {publish:?}"))
        .to_owned()
}

/// The request indices of the first copy of each event id, in arrival order.
fn first_copies(publishes: &[Published]) -> Vec<usize> {
    let mut seen = HashSet::new();
    publishes
        .iter()
        .filter(|p| seen.insert(event_id(p)))
        .map(|p| request_index(&p.payload))
        .collect()
}

/// Flushes within [`WAIT`], then checks that all `n` events were delivered and none failed.
async fn assert_all_delivered(handle: &PublisherHandle, n: u64) -> Stats {
    let flushed = handle.flush(WAIT).await;
    let stats = handle.stats();
    assert!(flushed.is_ok(), "flush: {flushed:?}, {stats:#?}");
    assert_eq!((stats.delivered, stats.failed), (n, 0), "{stats:#?}");
    assert_accounted(&stats);
    stats
}

/// The task still runs: no panic, no death.
#[track_caller]
fn assert_alive(handle: &PublisherHandle) {
    assert_eq!(handle.stats().state, PublisherState::Running);
    assert_eq!(handle.stop_reason(), None);
}

/// Every connection, counted from the first, came no faster than the backoff allows.
#[track_caller]
fn assert_backed_off(broker: &ScriptedBroker) {
    let connections = broker.records();
    let first = connections[0].accepted_at;
    for (i, connection) in connections.iter().enumerate() {
        let window = connection.accepted_at - first;
        assert!(
            (i as u64) < max_attempts(BACKOFF_MIN, BACKOFF_MAX, window),
            "connection {} came {window:?} after the first: faster than the backoff",
            i + 1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Acknowledgements

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_broker_that_acknowledges_everything() {
    let broker = ScriptedBroker::start(Script::ACCEPT).await;
    let layer = builder(&broker).build().expect("valid config");
    let handle = layer.handle();
    calls(&layer, 0..10).await;
    let stats = assert_all_delivered(&handle, 10).await;
    assert_eq!((stats.published, stats.reconnects), (10, 0), "{stats:#?}");

    let connections = broker.records();
    assert_eq!(connections.len(), 1, "{connections:#?}");
    let Some(Record::Connect {
        client_id,
        keep_alive,
        clean_session,
        ..
    }) = connections[0].records.first()
    else {
        panic!("the first packet is CONNECT: {connections:#?}");
    };
    assert!(!client_id.is_empty() && *keep_alive > 0 && *clean_session);
    let publishes = broker.publishes();
    assert_eq!(first_copies(&publishes), (0..10).collect::<Vec<_>>());
    for publish in &publishes {
        assert_eq!(publish.topic, TOPIC);
        assert_eq!(publish.qos, QoS::AtLeastOnce);
        assert!(!publish.dup && publish.pkid != 0, "{publish:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_events_are_sent_again_once_with_the_same_id_and_dup_after_a_cut() {
    const N: usize = 20;
    let broker = ScriptedBroker::start(Script::ACCEPT).await;
    broker.queue(Script::WITHHOLD_ACKS);
    let layer = builder(&broker).build().expect("valid config");
    let handle = layer.handle();
    calls(&layer, 0..N).await;
    let written = broker.wait_publishes(N, WAIT).await;
    assert_eq!(written.len(), N, "all written before the cut: {written:#?}");
    assert!(
        wait_until(WAIT, || handle.stats().published == N as u64).await,
        "{:#?}",
        handle.stats()
    );
    let before = handle.stats();
    assert_eq!(
        (before.delivered, before.in_flight),
        (0, N as u64),
        "{before:#?}"
    );

    broker.cut();
    assert!(broker.wait_connections(2, WAIT).await, "no reconnect");
    let stats = assert_all_delivered(&handle, N as u64).await;
    assert_eq!(
        stats.published, N as u64,
        "each event counted once: {stats:#?}"
    );
    assert!(stats.reconnects >= 1, "{stats:#?}");

    let publishes = broker.publishes();
    let (first, resent): (Vec<_>, Vec<_>) =
        publishes.iter().cloned().partition(|p| p.connection == 0);
    assert_eq!(
        first_copies(&first),
        (0..N).collect::<Vec<_>>(),
        "first copies in order"
    );
    assert!(
        first.iter().all(|p| !p.dup),
        "a first copy is no duplicate: {first:#?}"
    );
    let first_ids: HashSet<_> = first.iter().map(event_id).collect();
    let mut resent_ids = HashMap::<String, usize>::new();
    for publish in &resent {
        *resent_ids.entry(event_id(publish)).or_default() += 1;
    }
    assert_eq!(
        resent_ids.keys().cloned().collect::<HashSet<_>>(),
        first_ids,
        "every unacknowledged event is sent again with its id"
    );
    if broker.connections() == 2 {
        assert!(
            resent_ids.values().all(|n| *n == 1),
            "sent again once: {resent_ids:?}"
        );
    }
    assert!(
        resent.iter().all(|p| p.dup),
        "a re-sent PUBLISH has the DUP flag: {:?}",
        resent.iter().map(|p| (p.pkid, p.dup)).collect::<Vec<_>>()
    );
}

/// Sends 20 events to a broker acknowledging as `acks` says; each must be delivered once,
/// on one connection.
async fn acks_settle_each_event_once(acks: Acks) {
    const N: usize = 20;
    let broker = ScriptedBroker::start(Script::Accept(acks)).await;
    let layer = builder(&broker).build().expect("valid config");
    let handle = layer.handle();
    calls(&layer, 0..N).await;
    let stats = assert_all_delivered(&handle, N as u64).await;
    assert_eq!(stats.acknowledged, N as u64, "{stats:#?}");
    assert_eq!(
        (broker.connections(), stats.reconnects),
        (1, 0),
        "no reconnect: {:#?}",
        broker.records()
    );
    let publishes = broker.publishes();
    assert_eq!(publishes.len(), N, "each sent once: {publishes:#?}");
    assert_eq!(first_copies(&publishes), (0..N).collect::<Vec<_>>());
    assert_alive(&handle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubacks_in_reverse_order_settle_each_event_once() {
    acks_settle_each_event_once(Acks::new(AckOrder::ReverseEvery(5))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_puback_for_an_unknown_packet_id_is_ignored() {
    let acks = Acks {
        unknown_first: true,
        ..Acks::NORMAL
    };
    acks_settle_each_event_once(acks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_puback_is_ignored() {
    let acks = Acks {
        duplicate: true,
        ..Acks::NORMAL
    };
    acks_settle_each_event_once(acks).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_packet_id_is_reused_while_its_publish_is_unacknowledged() {
    // More events than any window, acknowledged 32 at a time in reverse, so that many are
    // unacknowledged at once and the packet ids wrap around.
    const N: usize = 640;
    let broker = ScriptedBroker::start(Script::Accept(Acks::new(AckOrder::ReverseEvery(32)))).await;
    let layer = builder(&broker).build().expect("valid config");
    let handle = layer.handle();
    calls(&layer, 0..N).await;
    assert_all_delivered(&handle, N as u64).await;
    let connections = broker.records();
    assert_eq!(connections.len(), 1, "no reconnect");

    let mut unacknowledged = HashSet::new();
    let mut most = 0;
    for record in &connections[0].records {
        match record {
            Record::Publish(p) => {
                assert_ne!(p.pkid, 0, "QoS 1 needs a packet id");
                assert!(
                    unacknowledged.insert(p.pkid),
                    "packet id {} reused while unacknowledged",
                    p.pkid
                );
                most = most.max(unacknowledged.len());
            }
            Record::PubAckSent(pkid) => {
                unacknowledged.remove(pkid);
            }
            _ => {}
        }
    }
    eprintln!("packet ids: at most {most} unacknowledged at once");
    assert_eq!(
        first_copies(&broker.publishes()),
        (0..N).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// CONNACK refusals

/// The broker refuses the first [`REFUSALS`] connections with `code`, then accepts: requests
/// succeed at once, the publisher retries with backoff, nothing fails, every event arrives
/// on the first accepted connection, and the refusal is logged once at WARN with its
/// meaning, which `meaning` (lower case) is part of.
fn refusal_is_retried_with_backoff_and_logged_once(code: ConnectReturnCode, meaning: &str) {
    const REFUSALS: usize = 4;
    const N: usize = 5;
    let logs = with_captured_logs(tracing::Level::DEBUG, || async {
        let broker = ScriptedBroker::start(Script::ACCEPT).await;
        for _ in 0..REFUSALS {
            broker.queue(Script::Refuse(code));
        }
        let layer = builder(&broker).build().expect("valid config");
        let handle = layer.handle();
        calls(&layer, 0..N).await;
        assert!(
            broker.wait_connections(REFUSALS + 1, WAIT).await,
            "retried after each refusal: {:#?}",
            broker.records()
        );
        assert_all_delivered(&handle, N as u64).await;
        assert_backed_off(&broker);
        let connections = broker.records();
        for refused in &connections[..REFUSALS] {
            assert!(
                matches!(refused.records[..], [Record::Connect { .. }]),
                "{refused:#?}"
            );
        }
        assert!(
            connections[..REFUSALS]
                .iter()
                .all(|c| c.publishes().count() == 0)
        );
        let accepted: Vec<_> = connections[REFUSALS].publishes().cloned().collect();
        assert_eq!(first_copies(&accepted), (0..N).collect::<Vec<_>>());
        let report = handle.shutdown(WAIT).await;
        assert_accounted(&report.stats);
    });
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| line.to_lowercase().contains(meaning))
        .collect();
    let warnings = lines.iter().filter(|line| line.contains("WARN")).count();
    assert!(
        !lines.is_empty(),
        "the refusal's meaning {meaning:?} is logged; logs:\n{logs}"
    );
    assert_eq!(
        warnings, 1,
        "{meaning:?} at WARN once over {REFUSALS} refusals; logs:\n{logs}"
    );
}

#[test]
fn refused_protocol_version_is_retried_with_backoff_and_logged_once() {
    refusal_is_retried_with_backoff_and_logged_once(
        ConnectReturnCode::RefusedProtocolVersion,
        "protocol version",
    );
}

#[test]
fn rejected_client_id_is_retried_with_backoff_and_logged_once() {
    refusal_is_retried_with_backoff_and_logged_once(
        ConnectReturnCode::BadClientId,
        "identifier rejected",
    );
}

#[test]
fn server_unavailable_is_retried_with_backoff_and_logged_once() {
    refusal_is_retried_with_backoff_and_logged_once(
        ConnectReturnCode::ServiceUnavailable,
        "server unavailable",
    );
}

#[test]
fn bad_user_name_or_password_is_retried_with_backoff_and_logged_once() {
    refusal_is_retried_with_backoff_and_logged_once(
        ConnectReturnCode::BadUserNamePassword,
        "bad user name or password",
    );
}

#[test]
fn not_authorised_is_retried_with_backoff_and_logged_once() {
    // "authorised" or "authorized".
    refusal_is_retried_with_backoff_and_logged_once(
        ConnectReturnCode::NotAuthorized,
        "not authori",
    );
}

// ---------------------------------------------------------------------------------------------
// Broken connections

/// The first connection follows `script`, later ones accept: 10 events are all delivered,
/// nothing fails, the task stays up, and, when `reconnects`, the publisher came back.
async fn first_connection_broken_by(script: Script, reconnects: bool) {
    const N: usize = 10;
    let broker = ScriptedBroker::start(Script::ACCEPT).await;
    broker.queue(script);
    let layer = builder(&broker).build().expect("valid config");
    let handle = layer.handle();
    calls(&layer, 0..N).await;
    if reconnects {
        assert!(
            broker.wait_connections(2, WAIT).await,
            "{:#?}",
            broker.records()
        );
    }
    let stats = assert_all_delivered(&handle, N as u64).await;
    assert_alive(&handle);
    if reconnects {
        assert!(stats.reconnects >= 1, "{stats:#?}");
    }
    let mut delivered = first_copies(&broker.publishes());
    delivered.sort_unstable();
    assert_eq!(
        delivered,
        (0..N).collect::<Vec<_>>(),
        "{:#?}",
        broker.records()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_make_the_publisher_reconnect_without_losing_events() {
    let script = Script::Inject {
        after_publishes: 1,
        bytes: garbage(),
    };
    first_connection_broken_by(script, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_packet_makes_the_publisher_reconnect_without_losing_events() {
    let script = Script::Inject {
        after_publishes: 1,
        bytes: oversized_header(),
    };
    first_connection_broken_by(script, true).await;
}

#[tokio::test(flavor = "current_thread")]
async fn an_unexpected_suback_and_publish_lose_no_events() {
    let mut bytes = encode(&Packet::SubAck(rumqttc::SubAck::new(
        7,
        vec![rumqttc::SubscribeReasonCode::Success(QoS::AtLeastOnce)],
    )));
    let mut publish = rumqttc::Publish::new("not/ours", QoS::AtLeastOnce, "{}");
    publish.pkid = 9;
    bytes.extend(encode(&Packet::Publish(publish)));
    let script = Script::Inject {
        after_publishes: 1,
        bytes,
    };
    // Reconnecting is allowed, not required: MQTT does not say what a client must do.
    first_connection_broken_by(script, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_mid_puback_makes_the_publisher_reconnect_without_losing_events() {
    let script = Script::CloseAfter {
        publishes: 3,
        half_ack: true,
    };
    first_connection_broken_by(script, true).await;
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[tokio::test(flavor = "current_thread")]
async fn shutdown_ends_the_connection_with_a_disconnect() {
    let broker = ScriptedBroker::start(Script::ACCEPT).await;
    let layer = builder(&broker).build().expect("valid config");
    let handle = layer.handle();
    calls(&layer, 0..3).await;
    let report = handle.shutdown(WAIT).await;
    assert_eq!(
        (report.delivered, report.undelivered),
        (3, 0),
        "{report:#?}"
    );
    assert_eq!(report.stats.state, PublisherState::ShutDown);
    assert_accounted(&report.stats);
    let disconnected = broker
        .wait_for(WAIT, |c| c[0].records.last() == Some(&Record::Disconnect))
        .await;
    assert!(disconnected, "no DISCONNECT last: {:#?}", broker.records());
}

// ---------------------------------------------------------------------------------------------
// NEW CORE: these need `Builder::keep_alive` and `Builder::connect_timeout`, which the
// rewritten publisher core adds; they do not compile before it lands.

mod new_core {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_silent_after_connack_is_detected_within_the_keep_alive() {
        const KEEP_ALIVE: Duration = Duration::from_secs(1);
        // 1.5 × keep-alive plus slack for a loaded 2-core machine: "detected", not "fast".
        const DETECTION_BOUND: Duration = Duration::from_millis(1500 + 8000);
        let broker = ScriptedBroker::start(Script::ACCEPT).await;
        broker.queue(Script::Silent);
        let layer = builder(&broker)
            .keep_alive(KEEP_ALIVE)
            .build()
            .expect("valid config");
        let handle = layer.handle();
        calls(&layer, 0..1).await;
        assert!(wait_until(WAIT, || handle.stats().connected).await);
        let started = tokio::time::Instant::now();
        let detected = wait_until(DETECTION_BOUND, || {
            !handle.stats().connected || broker.connections() >= 2
        })
        .await;
        eprintln!("silent broker detected after {:?}", started.elapsed());
        assert!(
            detected,
            "still connected to a silent broker: {:#?}",
            handle.stats()
        );
        assert!(broker.wait_connections(2, WAIT).await, "no new connection");
        let Some(Record::Connect { keep_alive, .. }) = broker.records()[0].records.first().cloned()
        else {
            panic!("CONNECT first: {:#?}", broker.records());
        };
        assert_eq!(keep_alive, 1, "keep-alive in seconds in CONNECT");
        assert_all_delivered(&handle, 1).await;
        assert_alive(&handle);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_listener_that_never_answers_connect_is_retried_after_the_connect_timeout() {
        const N: usize = 20;
        let broker = ScriptedBroker::start(Script::NoConnAck).await;
        let layer = builder(&broker)
            .connect_timeout(Duration::from_millis(500))
            .build()
            .expect("valid config");
        let handle = layer.handle();
        calls(&layer, 0..N).await;
        assert!(
            broker.wait_connections(3, WAIT).await,
            "attempts after connect timeouts: {:#?}",
            broker.records()
        );
        let stats = handle.stats();
        assert!(!stats.connected, "connected without CONNACK: {stats:#?}");
        assert_eq!(stats.queue_len + stats.in_flight, N as u64, "{stats:#?}");
        assert_accounted(&stats);
        assert_backed_off(&broker);
        assert!(broker.records().iter().all(|c| c.publishes().count() == 0));

        broker.set_default(Script::ACCEPT);
        assert_all_delivered(&handle, N as u64).await;
        assert_alive(&handle);
    }
}
