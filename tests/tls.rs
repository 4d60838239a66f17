//! TLS, mutual TLS and logins against a real Mosquitto, with a throwaway PKI made by
//! `support::tls` at test time: a custom CA, refusals for every reason a certificate can be
//! wrong (unknown issuer, wrong name, expired, client certificate missing), user names and
//! passwords (from the URL, the setters, a password file; wrong), an ACL that denies our
//! topic, plain text and TLS on the wrong port, a client certificate renewed on disk, and
//! the `ConfigError`s of bad files and ambiguous credentials.
//!
//! Each broker has the listener under test (TLS unless a case says otherwise) and a second,
//! plain listener where the test's [`Subscriber`] watches what arrives. A refusal must never
//! touch the request path: requests succeed at once, nothing is counted as failed, the
//! events wait for a broker that accepts us, and the reason is logged once at WARN and kept
//! in `last_error()`.
//!
//! `tests/secrets.rs` checks that no password, key or URL userinfo leaks into logs, errors
//! or events.

#![cfg(feature = "tls")]

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use mps_mqtt_events::{Builder, MqttEventLayer, PublisherHandle};
use tracing::Level;

use support::child::{child_output, in_child, run_child};
use support::logs::with_captured_logs;
use support::tls::{
    CLIENT_CN, CertFiles, Pki, acl_conf, acl_file, auth_conf, password_file, plain_listener,
};
use support::{
    Broker, GUID_PREFIX, Received, Subscriber, assert_accounted, free_port, unique_topic,
    wait_until,
};

/// Reconnect delays: short so that tests finish quickly, exponential so that a refusal is not
/// retried in a storm.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How long one request may take, broker or not: the proof that nothing waits on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous bound for anything the publisher or the broker should do soon (connect, fail,
/// deliver): not a performance assertion, only "it does not hang".
const WAIT: Duration = Duration::from_secs(10);
/// How long a subscriber must stay quiet to show that a denied event never arrives.
const QUIET: Duration = Duration::from_millis(300);
/// Connection attempts a refusal test waits for, so that "logged once" means something.
const REFUSALS: u64 = 3;

/// The publisher's login on brokers with a password file, and the subscriber's.
const USER: &str = "mps";
const PASSWORD: &str = "mps-test-password";
const WATCHER: &str = "watcher";
const WATCHER_PASSWORD: &str = "watcher-test-password";

// ---------------------------------------------------------------------------------------------
// Brokers, layers, requests

/// A Mosquitto whose first listener is configured by `listener_conf` (TLS lines from
/// [`Pki`]), with a second, plain listener for the subscriber, then `global_conf`.
struct TlsBroker {
    broker: Broker,
    plain_port: u16,
}

impl TlsBroker {
    /// `None` (after printing `skipped: ...`) without Mosquitto, as every broker test here.
    fn start(listener_conf: &str, global_conf: &str) -> Option<TlsBroker> {
        let plain_port = free_port();
        let conf = format!("{listener_conf}{}{global_conf}", plain_listener(plain_port));
        let broker = Broker::start_mosquitto_only(&conf)?;
        Some(TlsBroker { broker, plain_port })
    }

    /// `mqtts://127.0.0.1:<port>` of the first listener.
    fn tls_url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.broker.port)
    }

    /// `mqtt://127.0.0.1:<port>` of the plain listener.
    fn plain_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.plain_port)
    }

    /// A subscriber on the plain listener, logged in as [`WATCHER`] when `login`.
    async fn subscriber(&self, topic: &str, login: bool) -> Subscriber {
        let credentials = login.then_some((WATCHER, WATCHER_PASSWORD));
        Subscriber::connect_as(&self.plain_url(), topic, credentials).await
    }
}

/// A password file with [`USER`] and [`WATCHER`], and the lines that require a login.
fn login_conf(pki: &Pki) -> String {
    let file = password_file(pki.dir(), &[(USER, PASSWORD), (WATCHER, WATCHER_PASSWORD)]);
    auth_conf(&file)
}

/// A layer for `address` and `topic` with the short test backoff; TLS options follow.
fn builder(address: &str, topic: &str) -> Builder {
    MqttEventLayer::builder()
        .address(address)
        .topic(topic)
        .reconnect_backoff(BACKOFF_MIN, BACKOFF_MAX)
}

/// [`builder`] trusting the test CA.
fn trusting(pki: &Pki, address: &str, topic: &str) -> Builder {
    builder(address, topic).ca_file(&pki.ca_file)
}

/// [`trusting`] with `client` as the client certificate.
fn with_client(pki: &Pki, client: &CertFiles, address: &str, topic: &str) -> Builder {
    trusting(pki, address, topic)
        .client_cert_file(&client.cert)
        .client_key_file(&client.key)
}

/// Sends power actions `indices` through the layer; each must succeed at once.
async fn calls(layer: &MqttEventLayer, indices: std::ops::Range<usize>) {
    support::power_actions(layer, indices, REQUEST_TIMEOUT).await;
}

/// Which requests `events` belong to (from their GUIDs).
fn indices(events: &[Received]) -> BTreeSet<usize> {
    events
        .iter()
        .map(|e| {
            e.payload["guid"]
                .as_str()
                .and_then(|g| g.strip_prefix(GUID_PREFIX))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("event without a test GUID: {}", e.raw))
        })
        .collect()
}

/// Sends requests `indices`, then checks that the broker acknowledged them and the
/// subscriber received exactly them.
async fn assert_delivered(
    layer: &MqttEventLayer,
    subscriber: &mut Subscriber,
    indices_sent: std::ops::Range<usize>,
) {
    let handle = layer.handle();
    let before = handle.stats().delivered;
    calls(layer, indices_sent.clone()).await;
    let flushed = handle.flush(WAIT).await;
    let stats = handle.stats();
    assert!(
        flushed.is_ok(),
        "flush: {flushed:?}, last_error {:?}, {stats:#?}",
        handle.last_error()
    );
    let n = indices_sent.len();
    assert_eq!(stats.delivered - before, n as u64, "{stats:#?}");
    assert_eq!(stats.failed, 0, "{stats:#?}");
    assert!(stats.connected, "{stats:#?}");
    assert_accounted(&stats);
    let events = subscriber.collect(n, WAIT).await;
    assert_eq!(indices(&events), indices_sent.collect(), "{events:#?}");
}

/// Whether `text`, in lower case, contains one of `words`.
fn mentions(text: &str, words: &[&str]) -> bool {
    let text = text.to_lowercase();
    words.iter().any(|w| text.contains(w))
}

/// Sends [`REFUSALS`] requests through `layer` whose broker refuses every connection, then
/// checks: the requests succeeded at once; the publisher tried at least [`REFUSALS`] times
/// (`connect_failures`), never connected, failed nothing and keeps every event pending; and
/// `last_error()` mentions one of `reasons`, which it returns.
async fn assert_refused(layer: &MqttEventLayer, reasons: &[&str]) -> String {
    let handle = layer.handle();
    calls(layer, 0..REFUSALS as usize).await;
    let tried = wait_until(WAIT, || handle.stats().connect_failures >= REFUSALS).await;
    let stats = handle.stats();
    assert!(
        tried,
        "{REFUSALS} failed connection attempts within {WAIT:?}; last_error {:?}, {stats:#?}",
        handle.last_error()
    );
    assert!(!stats.connected, "{stats:#?}");
    assert_eq!(
        (
            stats.enqueued,
            stats.delivered,
            stats.failed,
            stats.published
        ),
        (REFUSALS, 0, 0, 0),
        "nothing is lost or sent while refused: {stats:#?}"
    );
    assert_eq!(stats.queue_len + stats.in_flight, REFUSALS, "{stats:#?}");
    assert_accounted(&stats);
    let error = handle
        .last_error()
        .unwrap_or_else(|| panic!("last_error after a refusal: {stats:#?}"));
    assert!(
        mentions(&error, reasons),
        "last_error {error:?} names the reason, one of {reasons:?}"
    );
    error
}

/// Runs `test` (which calls [`assert_refused`]) with logs captured, then checks that the
/// reason, one of `reasons`, was logged at WARN exactly once over all the attempts.
fn refused_and_warned_once<F: Future<Output = ()>>(reasons: &[&str], test: impl FnOnce() -> F) {
    let logs = with_captured_logs(Level::DEBUG, test);
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("WARN") && mentions(line, reasons))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "the reason (one of {reasons:?}) at WARN once over {REFUSALS}+ attempts; logs:\n{logs}"
    );
}

// ---------------------------------------------------------------------------------------------
// Server certificates

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_a_tls_listener_whose_certificate_the_custom_ca_signed() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), "") else {
        return;
    };
    let topic = unique_topic("tls_custom_ca");
    let mut subscriber = broker.subscriber(&topic, false).await;
    let layer = trusting(&pki, &broker.tls_url(), &topic)
        .build()
        .expect("valid config");
    assert_delivered(&layer, &mut subscriber, 0..5).await;
    let stats = layer.handle().stats();
    assert_eq!(stats.connect_failures, 0, "{stats:#?}");
    assert_eq!(layer.handle().last_error(), None);
    let report = layer.handle().shutdown(WAIT).await;
    assert_eq!(report.undelivered, 0, "{report:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_name_localhost_is_verified_as_well_as_the_ip_address() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), "") else {
        return;
    };
    let topic = unique_topic("tls_localhost");
    let mut subscriber = broker.subscriber(&topic, false).await;
    let address = format!("mqtts://localhost:{}", broker.broker.port);
    let layer = trusting(&pki, &address, &topic)
        .build()
        .expect("valid config");
    assert_delivered(&layer, &mut subscriber, 0..3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_and_tls_schemes_mean_mqtts() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), "") else {
        return;
    };
    for scheme in ["ssl", "tls"] {
        let topic = unique_topic(&format!("tls_scheme_{scheme}"));
        let mut subscriber = broker.subscriber(&topic, false).await;
        let address = format!("{scheme}://127.0.0.1:{}", broker.broker.port);
        let layer = trusting(&pki, &address, &topic)
            .build()
            .expect("valid config");
        assert_delivered(&layer, &mut subscriber, 0..2).await;
    }
}

#[test]
fn a_server_certificate_from_an_unknown_ca_is_refused_without_touching_requests() {
    const REASONS: &[&str] = &["unknown issuer", "not trusted"];
    refused_and_warned_once(REASONS, || async {
        let pki = Pki::new();
        let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), "") else {
            return;
        };
        let topic = unique_topic("tls_unknown_ca");
        let layer = builder(&broker.tls_url(), &topic)
            .ca_file(&pki.other_ca_file)
            .build()
            .expect("valid config");
        assert_refused(&layer, REASONS).await;
        let report = layer.handle().shutdown(Duration::from_millis(200)).await;
        assert_eq!(report.undelivered, REFUSALS, "{report:#?}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_ca_file_the_platform_roots_do_not_trust_the_test_ca() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), "") else {
        return;
    };
    let layer = builder(&broker.tls_url(), &unique_topic("tls_platform_roots"))
        .build()
        .expect("valid config");
    assert_refused(&layer, &["unknown issuer", "not trusted"]).await;
}

#[test]
fn a_server_certificate_for_another_name_is_refused() {
    const REASONS: &[&str] = &["name"];
    refused_and_warned_once(REASONS, || async {
        let pki = Pki::new();
        let listener = pki.tls_listener(&pki.other_name_server);
        let Some(broker) = TlsBroker::start(&listener, "") else {
            return;
        };
        let layer = trusting(&pki, &broker.tls_url(), &unique_topic("tls_other_name"))
            .build()
            .expect("valid config");
        let error = assert_refused(&layer, REASONS).await;
        assert!(error.contains("127.0.0.1"), "names the address: {error:?}");
    });
}

#[test]
fn an_expired_server_certificate_is_refused() {
    const REASONS: &[&str] = &["expired"];
    refused_and_warned_once(REASONS, || async {
        let pki = Pki::new();
        let listener = pki.tls_listener(&pki.expired_server);
        let Some(broker) = TlsBroker::start(&listener, "") else {
            return;
        };
        let layer = trusting(&pki, &broker.tls_url(), &unique_topic("tls_expired"))
            .build()
            .expect("valid config");
        assert_refused(&layer, REASONS).await;
    });
}

#[test]
fn tls_insecure_accepts_any_server_certificate_and_warns() {
    let logs = with_captured_logs(Level::DEBUG, || async {
        let pki = Pki::new();
        let listener = pki.tls_listener(&pki.other_name_server);
        let Some(broker) = TlsBroker::start(&listener, "") else {
            return;
        };
        let topic = unique_topic("tls_insecure");
        let mut subscriber = broker.subscriber(&topic, false).await;
        // Neither the name nor the issuer would pass verification.
        let layer = builder(&broker.tls_url(), &topic)
            .ca_file(&pki.other_ca_file)
            .tls_insecure(true)
            .build()
            .expect("valid config");
        assert_delivered(&layer, &mut subscriber, 0..2).await;
    });
    assert!(
        logs.lines()
            .any(|l| l.contains("WARN") && mentions(l, &["insecure", "not verified"])),
        "insecure TLS is a warning; logs:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alpn_offer_does_not_stop_a_broker_without_alpn() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), "") else {
        return;
    };
    let topic = unique_topic("tls_alpn");
    let mut subscriber = broker.subscriber(&topic, false).await;
    let layer = trusting(&pki, &broker.tls_url(), &topic)
        .alpn(["mqtt"])
        .build()
        .expect("valid config");
    assert_delivered(&layer, &mut subscriber, 0..2).await;
}

// ---------------------------------------------------------------------------------------------
// Client certificates

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate_the_ca_signed_delivers() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.mutual_tls_listener(true), "") else {
        return;
    };
    let topic = unique_topic("tls_mutual");
    let mut subscriber = broker.subscriber(&topic, false).await;
    let layer = with_client(&pki, &pki.client, &broker.tls_url(), &topic)
        .build()
        .expect("valid config");
    assert_delivered(&layer, &mut subscriber, 0..5).await;
    let log = broker.broker.log();
    assert!(log.contains(&format!("u'{CLIENT_CN}'")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keys_in_sec1_and_pkcs1_and_a_certificate_chain_are_accepted() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.mutual_tls_listener(true), "") else {
        return;
    };
    let mut cases = vec![
        (
            "mps-sec1",
            pki.client_with_sec1_key("sec1-client", "mps-sec1"),
        ),
        (
            "mps-chain",
            pki.client_with_chain("chain-client", "mps-chain"),
        ),
    ];
    if let Some(rsa) = pki.rsa_client_with_pkcs1_key("rsa-client", "mps-pkcs1") {
        cases.push(("mps-pkcs1", rsa));
    }
    for (case, client) in &cases {
        let topic = unique_topic(&format!("tls_key_{case}"));
        let mut subscriber = broker.subscriber(&topic, false).await;
        let layer = with_client(&pki, client, &broker.tls_url(), &topic)
            .build()
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_delivered(&layer, &mut subscriber, 0..1).await;
        layer.handle().shutdown(WAIT).await;
    }
    let log = broker.broker.log();
    for (cn, _) in &cases {
        assert!(log.contains(&format!("u'{cn}'")), "{cn}: {log}");
    }
}

#[test]
fn a_missing_client_certificate_is_refused_when_the_broker_requires_one() {
    const REASONS: &[&str] = &["client certificate"];
    refused_and_warned_once(REASONS, || async {
        let pki = Pki::new();
        let Some(broker) = TlsBroker::start(&pki.mutual_tls_listener(false), "") else {
            return;
        };
        let layer = trusting(&pki, &broker.tls_url(), &unique_topic("tls_no_client_cert"))
            .build()
            .expect("valid config");
        assert_refused(&layer, REASONS).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_an_unknown_ca_is_refused() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.mutual_tls_listener(false), "") else {
        return;
    };
    let address = broker.tls_url();
    let layer = with_client(
        &pki,
        &pki.untrusted_client,
        &address,
        &unique_topic("tls_bad_client"),
    )
    .build()
    .expect("valid config");
    // The broker's alert says its CA list does not know our certificate.
    assert_refused(&layer, &["certificate", "unknown ca", "ca"]).await;
}

/// Certificates are read again at every connection: a client certificate renewed on disk
/// (new key, new common name) is the one the next connection presents. The broker makes the
/// common name the user name and logs it with every connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_renewed_on_disk_is_used_by_the_next_connection() {
    const BEFORE: &str = "mps-before-renewal";
    const AFTER: &str = "mps-after-renewal";
    let pki = Pki::new();
    let Some(mut broker) = TlsBroker::start(&pki.mutual_tls_listener(true), "") else {
        return;
    };
    let files = pki.issue_client("renewing-client", BEFORE);
    let topic = unique_topic("tls_renewal");
    let mut subscriber = broker.subscriber(&topic, false).await;
    let layer = with_client(&pki, &files, &broker.tls_url(), &topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    assert_delivered(&layer, &mut subscriber, 0..1).await;
    assert!(broker.broker.log().contains(&format!("u'{BEFORE}'")));

    pki.renew_client(&files, AFTER);
    drop(subscriber);
    broker.broker.restart();
    assert!(
        wait_until(WAIT, || {
            let stats = handle.stats();
            stats.reconnects >= 1 && stats.connected
        })
        .await,
        "reconnected after the restart: last_error {:?}, {:#?}",
        handle.last_error(),
        handle.stats()
    );
    let mut subscriber = broker.subscriber(&topic, false).await;
    assert_delivered(&layer, &mut subscriber, 1..2).await;
    let log = broker.broker.log();
    assert!(log.contains(&format!("u'{AFTER}'")), "{log}");
    assert_eq!(
        log.matches(&format!("u'{BEFORE}'")).count(),
        1,
        "the old certificate was used once, before the renewal: {log}"
    );
}

// ---------------------------------------------------------------------------------------------
// Logins

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_in_the_url_is_accepted() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), &login_conf(&pki)) else {
        return;
    };
    let topic = unique_topic("login_url");
    let mut subscriber = broker.subscriber(&topic, true).await;
    let address = format!("mqtts://{USER}:{PASSWORD}@127.0.0.1:{}", broker.broker.port);
    let layer = trusting(&pki, &address, &topic)
        .build()
        .expect("valid config");
    assert_delivered(&layer, &mut subscriber, 0..3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_from_the_username_and_password_setters_is_accepted() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), &login_conf(&pki)) else {
        return;
    };
    let topic = unique_topic("login_setters");
    let mut subscriber = broker.subscriber(&topic, true).await;
    let layer = trusting(&pki, &broker.tls_url(), &topic)
        .username(USER)
        .password(PASSWORD)
        .build()
        .expect("valid config");
    assert_delivered(&layer, &mut subscriber, 0..3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_file_with_a_trailing_newline_is_accepted() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), &login_conf(&pki)) else {
        return;
    };
    let topic = unique_topic("login_password_file");
    let mut subscriber = broker.subscriber(&topic, true).await;
    let file = pki.write("mps-password", &format!("{PASSWORD}\n"));
    let layer = trusting(&pki, &broker.tls_url(), &topic)
        .username(USER)
        .password_file(&file)
        .build()
        .expect("valid config");
    assert_delivered(&layer, &mut subscriber, 0..3).await;
}

/// Mosquitto 2.0 answers a wrong password over MQTT 3.1.1 with CONNACK 5 (not authorised),
/// not 4 (bad user name or password): either wording is the reason.
#[test]
fn a_wrong_password_is_refused_by_connack_and_logged_once() {
    const REASONS: &[&str] = &["bad user name or password", "not authori"];
    refused_and_warned_once(REASONS, || async {
        let pki = Pki::new();
        let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), &login_conf(&pki))
        else {
            return;
        };
        let layer = trusting(&pki, &broker.tls_url(), &unique_topic("login_wrong"))
            .username(USER)
            .password("not-the-password")
            .build()
            .expect("valid config");
        assert_refused(&layer, REASONS).await;
    });
}

#[test]
fn no_login_where_the_broker_requires_one_is_refused_as_not_authorised() {
    const REASONS: &[&str] = &["not authori"];
    refused_and_warned_once(REASONS, || async {
        let pki = Pki::new();
        let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), &login_conf(&pki))
        else {
            return;
        };
        let layer = trusting(&pki, &broker.tls_url(), &unique_topic("login_none"))
            .build()
            .expect("valid config");
        assert_refused(&layer, REASONS).await;
    });
}

/// An MQTT 3.1.1 broker acknowledges a publish its ACL denies (Mosquitto drops it silently),
/// so such events count as delivered and never arrive; over TLS with a login as in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_denied_events_over_tls_are_acknowledged_but_never_arrive() {
    let pki = Pki::new();
    let acl = acl_file(
        pki.dir(),
        &format!("user {USER}\ntopic write other/#\n\nuser {WATCHER}\ntopic read mps/#\n"),
    );
    let global = format!("{}{}", login_conf(&pki), acl_conf(&acl));
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), &global) else {
        return;
    };
    let topic = unique_topic("acl_tls");
    let mut subscriber = broker.subscriber(&topic, true).await;
    let layer = trusting(&pki, &broker.tls_url(), &topic)
        .username(USER)
        .password(PASSWORD)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    calls(&layer, 0..5).await;
    handle
        .flush(WAIT)
        .await
        .expect("the broker acknowledges denied publishes");
    let stats = handle.stats();
    assert_eq!((stats.acknowledged, stats.failed), (5, 0), "{stats:#?}");
    assert_accounted(&stats);
    subscriber.assert_quiet(QUIET).await;
    let log = broker.broker.log();
    assert!(log.contains("Denied PUBLISH"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// The wrong port

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_to_a_tls_port_fails_with_a_clear_last_error() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), "") else {
        return;
    };
    let address = format!("mqtt://127.0.0.1:{}", broker.broker.port);
    let layer = builder(&address, &unique_topic("plain_to_tls"))
        .build()
        .expect("valid config");
    let error = assert_refused(&layer, &["tls", "mqtts"]).await;
    eprintln!("plain text to a TLS port: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_a_plain_port_fails_with_a_clear_last_error() {
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.tls_listener(&pki.server), "") else {
        return;
    };
    let address = format!("mqtts://127.0.0.1:{}", broker.plain_port);
    let layer = trusting(&pki, &address, &unique_topic("tls_to_plain"))
        .build()
        .expect("valid config");
    let error = assert_refused(&layer, &["tls"]).await;
    eprintln!("TLS to a plain port: {error}");
}

// ---------------------------------------------------------------------------------------------
// Configuration errors at build()

/// `build()` fails with an error naming one of `names` (variable or setter) and `path`.
#[track_caller]
fn assert_file_error(builder: Builder, names: &[&str], path: &Path) {
    let error = builder
        .build()
        .expect_err("a bad file is a configuration error")
        .to_string();
    assert!(
        names.iter().any(|n| error.contains(n)),
        "names one of {names:?}: {error}"
    );
    assert!(
        error.contains(&path.display().to_string()),
        "names the path {}: {error}",
        path.display()
    );
}

const ADDRESS: &str = "mqtts://127.0.0.1:8883";
const CA: &[&str] = &["MPS_MQTT_CA_FILE", "ca_file"];
const CERT: &[&str] = &["MPS_MQTT_CLIENT_CERT_FILE", "client_cert_file"];
const KEY: &[&str] = &["MPS_MQTT_CLIENT_KEY_FILE", "client_key_file"];
const PASSWORD_FILE: &[&str] = &["MPS_MQTT_PASSWORD_FILE", "password_file"];

#[test]
fn missing_files_are_config_errors_naming_the_setting_and_the_path() {
    let pki = Pki::new();
    let missing = pki.dir().join("no-such-file.pem");
    let topic = "mps/events";
    assert_file_error(builder(ADDRESS, topic).ca_file(&missing), CA, &missing);
    assert_file_error(
        builder(ADDRESS, topic)
            .client_cert_file(&missing)
            .client_key_file(&pki.client.key),
        CERT,
        &missing,
    );
    assert_file_error(
        builder(ADDRESS, topic)
            .client_cert_file(&pki.client.cert)
            .client_key_file(&missing),
        KEY,
        &missing,
    );
    assert_file_error(
        builder(ADDRESS, topic)
            .username(USER)
            .password_file(&missing),
        PASSWORD_FILE,
        &missing,
    );
}

#[test]
fn unreadable_files_are_config_errors() {
    // A directory cannot be read as a file, even by root (who reads any mode-000 file).
    let pki = Pki::new();
    let dir = pki.dir().to_path_buf();
    assert_file_error(builder(ADDRESS, "t").ca_file(&dir), CA, &dir);
    assert_file_error(
        builder(ADDRESS, "t")
            .client_cert_file(&dir)
            .client_key_file(&pki.client.key),
        CERT,
        &dir,
    );
}

#[test]
fn files_without_pem_certificates_or_keys_are_config_errors() {
    let pki = Pki::new();
    let text = pki.write("not-pem.pem", "this is not a certificate\n");
    assert_file_error(builder(ADDRESS, "t").ca_file(&text), CA, &text);
    assert_file_error(
        builder(ADDRESS, "t")
            .client_cert_file(&text)
            .client_key_file(&pki.client.key),
        CERT,
        &text,
    );
    // A key where the certificate belongs holds no certificate, and the other way round.
    assert_file_error(
        builder(ADDRESS, "t").ca_file(&pki.client.key),
        CA,
        &pki.client.key,
    );
    assert_file_error(
        builder(ADDRESS, "t")
            .client_cert_file(&pki.client.cert)
            .client_key_file(&pki.client.cert),
        KEY,
        &pki.client.cert,
    );
}

#[test]
fn a_client_key_that_does_not_match_the_certificate_is_a_config_error() {
    let pki = Pki::new();
    let error = builder(ADDRESS, "t")
        .client_cert_file(&pki.client.cert)
        .client_key_file(&pki.untrusted_client.key)
        .build()
        .expect_err("a mismatched key is a configuration error")
        .to_string();
    assert!(mentions(&error, &["match"]), "{error}");
    assert!(
        error.contains(&pki.untrusted_client.key.display().to_string())
            || error.contains(&pki.client.cert.display().to_string()),
        "names a path: {error}"
    );
}

#[test]
fn an_expired_or_not_yet_valid_client_certificate_is_a_config_error() {
    let pki = Pki::new();
    for (client, words) in [
        (
            pki.client_valid_between("expired-client", 2000, 2001),
            "expired on",
        ),
        (
            pki.client_valid_between("future-client", 2090, 2099),
            "not valid before",
        ),
    ] {
        let error = builder(ADDRESS, "t")
            .ca_file(&pki.ca_file)
            .client_cert_file(&client.cert)
            .client_key_file(&client.key)
            .build()
            .expect_err("a client certificate out of its validity is a configuration error")
            .to_string();
        assert!(error.contains(words), "{error}");
        assert!(
            error.contains("client_cert_file"),
            "names the setter: {error}"
        );
        assert!(
            error.contains(&client.cert.display().to_string()),
            "names the path: {error}"
        );
    }
}

#[test]
fn a_client_certificate_without_its_key_and_a_key_without_its_certificate_are_config_errors() {
    let pki = Pki::new();
    for builder in [
        builder(ADDRESS, "t").client_cert_file(&pki.client.cert),
        builder(ADDRESS, "t").client_key_file(&pki.client.key),
    ] {
        let error = builder
            .build()
            .expect_err("half a client identity")
            .to_string();
        assert!(CERT.iter().chain(KEY).any(|n| error.contains(n)), "{error}");
    }
}

#[test]
fn ambiguous_or_incomplete_credentials_are_config_errors() {
    let pki = Pki::new();
    let file = pki.write("password", PASSWORD);
    let url_login = format!("mqtts://{USER}:{PASSWORD}@127.0.0.1:8883");
    let cases = [
        (
            "URL login and username",
            builder(&url_login, "t").username(USER),
        ),
        (
            "URL login and password",
            builder(&url_login, "t").password(PASSWORD),
        ),
        (
            "password and password file",
            builder(ADDRESS, "t")
                .username(USER)
                .password(PASSWORD)
                .password_file(&file),
        ),
        (
            "password without user name",
            builder(ADDRESS, "t").password(PASSWORD),
        ),
        (
            "password file without user name",
            builder(ADDRESS, "t").password_file(&file),
        ),
    ];
    for (case, builder) in cases {
        let result = builder.build();
        assert!(result.is_err(), "{case}: accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// The environment (in a child process, as tests/env.rs does)

/// In the child: a layer from the environment (`Builder::from_env()`, then the setters the
/// `OVERRIDE_CA_FILE` variable asks for) publishes one event and flushes it.
async fn child_publishes_one_event() {
    let mut builder = Builder::from_env().expect("a valid environment");
    if let Some(ca) = std::env::var_os("OVERRIDE_CA_FILE") {
        builder = builder.ca_file(ca);
    }
    let layer = builder
        .reconnect_backoff(BACKOFF_MIN, BACKOFF_MAX)
        .build()
        .expect("a valid environment");
    calls(&layer, 0..1).await;
    let handle: PublisherHandle = layer.handle();
    let flushed = handle.flush(WAIT).await;
    assert!(
        flushed.is_ok(),
        "{flushed:?}, last_error {:?}, {:#?}",
        handle.last_error(),
        handle.stats()
    );
}

/// Mutual TLS and a login from `MPS_MQTT_CA_FILE`, `MPS_MQTT_CLIENT_CERT_FILE`,
/// `MPS_MQTT_CLIENT_KEY_FILE`, `MPS_MQTT_USERNAME` and `MPS_MQTT_PASSWORD_FILE`; then the
/// `ca_file` setter overriding a `MPS_MQTT_CA_FILE` that names the wrong CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_and_login_variables_are_read_from_the_environment_and_setters_override_them() {
    const NAME: &str =
        "the_tls_and_login_variables_are_read_from_the_environment_and_setters_override_them";
    if in_child() {
        return child_publishes_one_event().await;
    }
    let pki = Pki::new();
    let Some(broker) = TlsBroker::start(&pki.mutual_tls_listener(false), &login_conf(&pki)) else {
        return;
    };
    let password = pki.write("env-password", &format!("{PASSWORD}\n"));
    let path = |p: &Path| p.display().to_string();
    let topic = unique_topic("tls_env");
    let mut subscriber = broker.subscriber(&topic, true).await;
    let env = [
        ("MPS_MQTT_ADDRESS", broker.tls_url()),
        ("MPS_MQTT_TOPIC", topic.clone()),
        ("MPS_MQTT_CA_FILE", path(&pki.ca_file)),
        ("MPS_MQTT_CLIENT_CERT_FILE", path(&pki.client.cert)),
        ("MPS_MQTT_CLIENT_KEY_FILE", path(&pki.client.key)),
        ("MPS_MQTT_USERNAME", USER.to_owned()),
        ("MPS_MQTT_PASSWORD_FILE", path(&password)),
    ];
    let out = tokio::task::spawn_blocking({
        let env = env.clone();
        move || run_child(NAME, &env)
    })
    .await
    .expect("child runner");
    assert!(
        out.status.success(),
        "from the environment: {}",
        child_output(&out)
    );
    assert_eq!(subscriber.collect(1, WAIT).await.len(), 1);

    // The environment names the wrong CA; the setter's CA wins.
    let mut overridden = env.to_vec();
    overridden[2].1 = path(&pki.other_ca_file);
    overridden.push(("OVERRIDE_CA_FILE", path(&pki.ca_file)));
    let out = tokio::task::spawn_blocking(move || run_child(NAME, &overridden))
        .await
        .expect("child runner");
    assert!(
        out.status.success(),
        "the setter overrides MPS_MQTT_CA_FILE: {}",
        child_output(&out)
    );
    assert_eq!(subscriber.collect(1, WAIT).await.len(), 1);
}

/// `MPS_MQTT_TLS_INSECURE=1` against a broker whose certificate expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_insecure_from_the_environment_skips_verification() {
    const NAME: &str = "tls_insecure_from_the_environment_skips_verification";
    if in_child() {
        return child_publishes_one_event().await;
    }
    let pki = Pki::new();
    let listener = pki.tls_listener(&pki.expired_server);
    let Some(broker) = TlsBroker::start(&listener, "") else {
        return;
    };
    let topic = unique_topic("tls_env_insecure");
    let mut subscriber = broker.subscriber(&topic, false).await;
    let env = [
        ("MPS_MQTT_ADDRESS", broker.tls_url()),
        ("MPS_MQTT_TOPIC", topic.clone()),
        ("MPS_MQTT_TLS_INSECURE", "1".to_owned()),
    ];
    let out = tokio::task::spawn_blocking(move || run_child(NAME, &env))
        .await
        .expect("child runner");
    assert!(out.status.success(), "{}", child_output(&out));
    assert_eq!(subscriber.collect(1, WAIT).await.len(), 1);
}

#[test]
fn ambiguous_login_variables_stop_startup() {
    if in_child() {
        let expected = std::env::var("EXPECTED").expect("EXPECTED is set");
        let error = MqttEventLayer::try_from_env().expect_err("ambiguous login");
        assert!(error.to_string().contains(&expected), "{error}");
        return;
    }
    let pki = Pki::new();
    let file = pki.write("password", PASSWORD).display().to_string();
    let cases: [&[(&str, String)]; 3] = [
        &[
            (
                "MPS_MQTT_ADDRESS",
                format!("mqtt://{USER}:{PASSWORD}@127.0.0.1:1883"),
            ),
            ("MPS_MQTT_USERNAME", USER.to_owned()),
            ("EXPECTED", "MPS_MQTT_USERNAME".to_owned()),
        ],
        &[
            ("MPS_MQTT_ADDRESS", "mqtt://127.0.0.1:1883".to_owned()),
            ("MPS_MQTT_USERNAME", USER.to_owned()),
            ("MPS_MQTT_PASSWORD", PASSWORD.to_owned()),
            ("MPS_MQTT_PASSWORD_FILE", file.clone()),
            ("EXPECTED", "MPS_MQTT_PASSWORD".to_owned()),
        ],
        &[
            ("MPS_MQTT_ADDRESS", "mqtt://127.0.0.1:1883".to_owned()),
            ("MPS_MQTT_PASSWORD", PASSWORD.to_owned()),
            ("EXPECTED", "MPS_MQTT_PASSWORD".to_owned()),
        ],
    ];
    for vars in cases {
        let out = run_child("ambiguous_login_variables_stop_startup", vars);
        assert!(out.status.success(), "{vars:?}: {}", child_output(&out));
    }
}
