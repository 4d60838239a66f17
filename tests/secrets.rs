//! Secrets never leak: passwords (given to the setters, in a password file, in the URL's
//! userinfo), private keys and what a request carries (`Authorization`, `Cookie`, a JSON
//! body, a query string) appear in no log line at TRACE, no `Debug` or `Display` of the
//! builder, layer, handle, stats, reports and errors, no `last_error()`, and no event.
//!
//! Every scenario runs with a `tracing` subscriber at TRACE writing into a buffer, on the
//! success paths and the error paths (a bad address, a wrong password against Mosquitto,
//! missing and bad files, a key that does not match its certificate, a TLS publish). What
//! the scenario formats itself is added to the same text, and the text is searched for
//! every secret.

mod support;

use std::convert::Infallible;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use http::{Request, Response};
use mps_mqtt_events::{Builder, MqttEventLayer, PublisherHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceExt, service_fn};
use tracing::Level;

use support::logs::with_captured_logs;
use support::tls::{auth_conf, password_file};
use support::{Broker, Subscriber, TempDir, unique_topic, wait_until, within};

/// The password given to `.password()`, right for [`USER`].
const PASSWORD: &str = "s3cr3t-PASSWORD-4711";
/// A wrong password for [`USER`].
const WRONG_PASSWORD: &str = "wr0ng-s3cr3t-PASSWORD-0042";
/// The contents of the password file, right for [`FILE_USER`].
const FILE_PASSWORD: &str = "f1le-s3cr3t-PASSWORD-0815";
/// The password in the URL's userinfo, right for [`URL_USER`].
const URL_PASSWORD: &str = "url-s3cr3t-PASSWORD-1234";
/// What a request carries that must never reach an event.
const BEARER: &str = "bearer-s3cr3t-TOKEN-5555";
const COOKIE: &str = "cookie-s3cr3t-SESSION-6666";
const BODY_PASSWORD: &str = "body-s3cr3t-PASSWORD-7777";
const QUERY_TOKEN: &str = "query-s3cr3t-TOKEN-8888";
/// The contents of a key file that holds no key: a parser must not echo it.
const NOT_A_KEY: &str = "n0t-a-key-s3cr3t-CONTENT-9999";

const USER: &str = "mps";
const FILE_USER: &str = "mps-file";
const URL_USER: &str = "mps-url";
const WATCHER: &str = "watcher";
const WATCHER_PASSWORD: &str = "watcher-test-password";

const SECRETS: &[&str] = &[
    PASSWORD,
    WRONG_PASSWORD,
    FILE_PASSWORD,
    URL_PASSWORD,
    BEARER,
    COOKIE,
    BODY_PASSWORD,
    QUERY_TOKEN,
    NOT_A_KEY,
];

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Generous bound for anything the publisher or the broker should do soon: not a performance
/// assertion, only "it does not hang".
const WAIT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Failed connection attempts the error scenarios wait for, so that retries are logged too.
const FAILURES: u64 = 2;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Text gathered for the final search: what the scenario formatted itself.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    /// Records `value` as `Debug`, and `{:#?}` too (fields formatted one per line).
    fn debug(&mut self, what: &str, value: &impl Debug) {
        self.0
            .push(format!("{what}: {value:?}\n{what}: {value:#?}"));
    }

    /// Records an error's `Display` and `Debug`.
    fn error(&mut self, what: &str, error: &(impl std::fmt::Display + Debug)) {
        self.0.push(format!("{what}: {error}"));
        self.debug(what, error);
    }

    /// Records everything a handle tells: `Debug`, stats, `broker()`, `topic()`,
    /// `last_error()`, `stop_reason()`.
    fn handle(&mut self, what: &str, handle: &PublisherHandle) {
        self.debug(what, handle);
        self.debug(&format!("{what}.stats()"), &handle.stats());
        self.0.push(format!(
            "{what}: broker {:?} topic {:?} last_error {:?} stop_reason {:?}",
            handle.broker(),
            handle.topic(),
            handle.last_error(),
            handle.stop_reason()
        ));
    }

    fn text(&self) -> String {
        self.0.join("\n")
    }
}

/// Fails, naming the secret and where, when `text` contains any of [`SECRETS`] or `more`.
#[track_caller]
fn assert_no_secret(where_: &str, text: &str, more: &[String]) {
    for secret in SECRETS
        .iter()
        .copied()
        .chain(more.iter().map(String::as_str))
    {
        assert!(
            !text.contains(secret),
            "{where_} contains the secret {secret:?}:\n{text}"
        );
    }
}

/// Every line of base64 in `pem` (the body of a private key file), as a secret to look for.
#[cfg(feature = "tls")]
fn key_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect()
}

fn builder(address: &str, topic: &str) -> Builder {
    MqttEventLayer::builder()
        .address(address)
        .topic(topic)
        .reconnect_backoff(BACKOFF_MIN, BACKOFF_MAX)
}

/// One request through the layer, which must succeed at once.
async fn call(layer: &MqttEventLayer) {
    let inner = service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    let request = Request::post("/api/v1/amt/power/action/00000000-0000-4000-8000-000000000001")
        .body(())
        .expect("valid request");
    let response = within(
        REQUEST_TIMEOUT,
        "request",
        layer.layer(inner).oneshot(request),
    )
    .await
    .expect("infallible");
    assert_eq!(response.status(), 200);
}

/// A password file with every user of these tests, and the lines that require a login.
fn login_conf(dir: &std::path::Path) -> String {
    let file = password_file(
        dir,
        &[
            (USER, PASSWORD),
            (FILE_USER, FILE_PASSWORD),
            (URL_USER, URL_PASSWORD),
            (WATCHER, WATCHER_PASSWORD),
        ],
    );
    auth_conf(&file)
}

/// Sends a request that must fail to connect, waits for [`FAILURES`] attempts, then records
/// everything the layer tells, a failed flush and the shutdown report.
async fn refused(seen: &mut Seen, what: &str, layer: MqttEventLayer) {
    let handle = layer.handle();
    seen.debug(&format!("{what} layer"), &layer);
    call(&layer).await;
    assert!(
        wait_until(WAIT, || handle.stats().connect_failures >= FAILURES).await,
        "{what}: {FAILURES} failed attempts: {:#?}",
        handle.stats()
    );
    assert!(handle.last_error().is_some(), "{what}: a last error");
    seen.handle(what, &handle);
    let flushed = handle.flush(Duration::from_millis(100)).await;
    let error = flushed.expect_err("nothing can be delivered");
    seen.error(&format!("{what} flush"), &error);
    let report = handle.shutdown(Duration::from_millis(100)).await;
    seen.debug(&format!("{what} shutdown"), &report);
    seen.handle(&format!("{what} after shutdown"), &handle);
}

/// Sends a request that must be delivered, and records what the layer tells.
async fn delivered(
    seen: &mut Seen,
    what: &str,
    layer: MqttEventLayer,
    subscriber: &mut Subscriber,
) {
    let handle = layer.handle();
    seen.debug(&format!("{what} layer"), &layer);
    call(&layer).await;
    let flushed = handle.flush(WAIT).await;
    assert!(
        flushed.is_ok(),
        "{what}: {flushed:?}, last_error {:?}",
        handle.last_error()
    );
    let events = subscriber.collect(1, WAIT).await;
    assert_eq!(events.len(), 1, "{what}");
    seen.0.push(events[0].raw.clone());
    seen.handle(what, &handle);
    let report = handle.shutdown(WAIT).await;
    seen.debug(&format!("{what} shutdown"), &report);
}

// ---------------------------------------------------------------------------------------------
// Configuration errors

#[test]
fn config_errors_never_show_a_password() {
    let dir = TempDir::new("mps-secrets");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, FILE_PASSWORD).expect("write the password file");
    let mut seen = Seen::default();
    let seen_in_test = &mut seen;
    let logs = with_captured_logs(Level::TRACE, || async move {
        let seen = seen_in_test;
        let cases = [
            (
                "bad scheme with userinfo",
                builder(
                    &format!("htp://{URL_USER}:{URL_PASSWORD}@mosquitto:8883"),
                    "t",
                ),
            ),
            (
                "bad port with userinfo",
                builder(
                    &format!("mqtt://{URL_USER}:{URL_PASSWORD}@mosquitto:99999"),
                    "t",
                ),
            ),
            (
                "userinfo and username",
                builder(
                    &format!("mqtt://{URL_USER}:{URL_PASSWORD}@127.0.0.1:1883"),
                    "t",
                )
                .username(USER),
            ),
            (
                "userinfo and password",
                builder(
                    &format!("mqtt://{URL_USER}:{URL_PASSWORD}@127.0.0.1:1883"),
                    "t",
                )
                .password(PASSWORD),
            ),
            (
                "password without user name",
                builder("mqtt://127.0.0.1:1883", "t").password(PASSWORD),
            ),
            (
                "password and password file",
                builder("mqtt://127.0.0.1:1883", "t")
                    .username(USER)
                    .password(PASSWORD)
                    .password_file(&password_file),
            ),
            (
                "bad topic with a password",
                builder("mqtt://127.0.0.1:1883", "mps/#")
                    .username(USER)
                    .password(PASSWORD),
            ),
        ];
        for (case, builder) in cases {
            seen.debug(&format!("{case} builder"), &builder);
            let error = builder.build().expect_err(case);
            seen.error(case, &error);
        }
    });
    assert_no_secret("the logs", &logs, &[]);
    assert_no_secret("errors and builders", &seen.text(), &[]);
}

#[test]
fn a_password_in_the_environment_is_never_shown_when_startup_fails() {
    const CHILD: &str = "MPS_MQTT_EVENTS_TEST_CHILD";
    const NAME: &str = "a_password_in_the_environment_is_never_shown_when_startup_fails";
    if std::env::var_os(CHILD).is_some() {
        let _ = MqttEventLayer::from_env();
        return;
    }
    let dir = TempDir::new("mps-secrets-env");
    let file = dir.path().join("password");
    std::fs::write(&file, FILE_PASSWORD).expect("write the password file");
    let file = file.display().to_string();
    let address = format!("mqtt://{URL_USER}:{URL_PASSWORD}@127.0.0.1:1883");
    let cases: [&[(&str, &str)]; 4] = [
        &[("MPS_MQTT_ADDRESS", "htp://u:s3cr3t-PASSWORD-4711@h:1")],
        &[
            ("MPS_MQTT_ADDRESS", address.as_str()),
            ("MPS_MQTT_USERNAME", USER),
            ("MPS_MQTT_PASSWORD", PASSWORD),
        ],
        &[
            ("MPS_MQTT_ADDRESS", "mqtt://127.0.0.1:1883"),
            ("MPS_MQTT_USERNAME", USER),
            ("MPS_MQTT_PASSWORD", PASSWORD),
            ("MPS_MQTT_PASSWORD_FILE", file.as_str()),
        ],
        &[
            ("MPS_MQTT_ADDRESS", "mqtt://127.0.0.1:1883"),
            ("MPS_MQTT_PASSWORD", PASSWORD),
        ],
    ];
    for vars in cases {
        let mut command = Command::new(std::env::current_exe().expect("test binary path"));
        command.args(["--exact", NAME, "--nocapture", "--test-threads=1"]);
        for (key, _) in std::env::vars() {
            if key.starts_with("MPS_MQTT_") && key != "MPS_MQTT_REQUIRE_MOSQUITTO" {
                command.env_remove(key);
            }
        }
        let out = command
            .env(CHILD, "1")
            .envs(vars.iter().copied())
            .output()
            .expect("run the test binary again");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{vars:?}: startup must fail: {stderr}"
        );
        assert!(stderr.contains("MPS_MQTT_"), "names a variable: {stderr}");
        let output = format!("{}{stderr}", String::from_utf8_lossy(&out.stdout));
        assert_no_secret(&format!("{vars:?}"), &output, &[]);
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

#[test]
fn wrong_and_right_passwords_against_mosquitto_are_never_shown() {
    let mut seen = Seen::default();
    let seen_in_test = &mut seen;
    let logs = with_captured_logs(Level::TRACE, || async move {
        let seen = seen_in_test;
        let dir = TempDir::new("mps-secrets-login");
        let Some(broker) = Broker::start_mosquitto_only(&login_conf(dir.path())) else {
            return;
        };
        let url_login =
            |password: &str| format!("mqtt://{URL_USER}:{password}@127.0.0.1:{}", broker.port);
        let wrong_file = dir.path().join("wrong-password");
        std::fs::write(&wrong_file, format!("{WRONG_PASSWORD}\n")).expect("write");
        let right_file = dir.path().join("right-password");
        std::fs::write(&right_file, format!("{FILE_PASSWORD}\n")).expect("write");

        let topic = unique_topic("secrets_login");
        let wrong = [
            (
                "wrong password setter",
                builder(&broker.url(), &topic)
                    .username(USER)
                    .password(WRONG_PASSWORD),
            ),
            (
                "wrong password in the URL",
                builder(&url_login(WRONG_PASSWORD), &topic),
            ),
            (
                "wrong password file",
                builder(&broker.url(), &topic)
                    .username(FILE_USER)
                    .password_file(&wrong_file),
            ),
        ];
        for (case, builder) in wrong {
            seen.debug(&format!("{case} builder"), &builder);
            refused(seen, case, builder.build().expect("valid config")).await;
        }

        let mut subscriber =
            Subscriber::connect_as(&broker.url(), &topic, Some((WATCHER, WATCHER_PASSWORD))).await;
        let right = [
            (
                "password setter",
                builder(&broker.url(), &topic)
                    .username(USER)
                    .password(PASSWORD),
            ),
            (
                "password in the URL",
                builder(&url_login(URL_PASSWORD), &topic),
            ),
            (
                "password file",
                builder(&broker.url(), &topic)
                    .username(FILE_USER)
                    .password_file(&right_file),
            ),
        ];
        for (case, builder) in right {
            seen.debug(&format!("{case} builder"), &builder);
            let layer = builder.build().expect("valid config");
            delivered(seen, case, layer, &mut subscriber).await;
        }
    });
    assert!(logs.contains("WARN"), "the failures are logged: {logs}");
    assert_no_secret("the logs", &logs, &[]);
    assert_no_secret("what the layers tell", &seen.text(), &[]);
}

#[cfg(feature = "tls")]
#[test]
fn keys_and_passwords_of_tls_connections_are_never_shown() {
    use support::tls::{Pki, plain_listener};

    let pki = Pki::new();
    let client_key = std::fs::read_to_string(&pki.client.key).expect("read the client key");
    let other_key = std::fs::read_to_string(&pki.untrusted_client.key).expect("read the other key");
    let server_key = std::fs::read_to_string(&pki.server.key).expect("read the server key");
    let mut key_secrets = key_lines(&client_key);
    key_secrets.extend(key_lines(&other_key));
    key_secrets.extend(key_lines(&server_key));
    assert!(key_secrets.len() >= 6, "{key_secrets:?}");

    let mut seen = Seen::default();
    let seen_in_test = &mut seen;
    let logs = with_captured_logs(Level::TRACE, || async move {
        let seen = seen_in_test;
        let missing = pki.dir().join("missing-ca.pem");
        let not_a_key = pki.write("not-a-key.pem", NOT_A_KEY);
        let errors = [
            (
                "missing CA file",
                builder("mqtts://127.0.0.1:8883", "t")
                    .ca_file(&missing)
                    .username(USER)
                    .password(PASSWORD),
            ),
            (
                "key that does not match",
                builder("mqtts://127.0.0.1:8883", "t")
                    .ca_file(&pki.ca_file)
                    .client_cert_file(&pki.client.cert)
                    .client_key_file(&pki.untrusted_client.key),
            ),
            (
                "key file holding no key",
                builder("mqtts://127.0.0.1:8883", "t")
                    .client_cert_file(&pki.client.cert)
                    .client_key_file(&not_a_key),
            ),
            (
                "a key where the CA belongs",
                builder("mqtts://127.0.0.1:8883", "t").ca_file(&pki.client.key),
            ),
            (
                "a key where the certificate belongs",
                builder("mqtts://127.0.0.1:8883", "t")
                    .client_cert_file(&pki.client.key)
                    .client_key_file(&pki.client.key),
            ),
        ];
        for (case, builder) in errors {
            seen.debug(&format!("{case} builder"), &builder);
            let error = builder.build().expect_err(case);
            seen.error(case, &error);
        }

        let dir = TempDir::new("mps-secrets-tls");
        let plain = support::free_port();
        let conf = format!(
            "{}{}{}",
            pki.mutual_tls_listener(false),
            plain_listener(plain),
            login_conf(dir.path())
        );
        let Some(broker) = Broker::start_mosquitto_only(&conf) else {
            return;
        };
        let tls_url = |login: &str| format!("mqtts://{login}127.0.0.1:{}", broker.port);
        let topic = unique_topic("secrets_tls");
        let mut subscriber = Subscriber::connect_as(
            &format!("127.0.0.1:{plain}"),
            &topic,
            Some((WATCHER, WATCHER_PASSWORD)),
        )
        .await;
        let with_client = |address: &str| {
            builder(address, &topic)
                .ca_file(&pki.ca_file)
                .client_cert_file(&pki.client.cert)
                .client_key_file(&pki.client.key)
        };
        let wrong = with_client(&tls_url(&format!("{URL_USER}:{WRONG_PASSWORD}@")));
        seen.debug("TLS wrong password builder", &wrong);
        refused(
            seen,
            "TLS wrong password",
            wrong.build().expect("valid config"),
        )
        .await;
        let unknown_ca = builder(&tls_url(""), &topic)
            .ca_file(&pki.other_ca_file)
            .client_cert_file(&pki.client.cert)
            .client_key_file(&pki.client.key)
            .username(USER)
            .password(PASSWORD);
        refused(
            seen,
            "TLS unknown CA",
            unknown_ca.build().expect("valid config"),
        )
        .await;
        let right = with_client(&tls_url("")).username(USER).password(PASSWORD);
        seen.debug("TLS builder", &right);
        let layer = right.build().expect("valid config");
        delivered(seen, "TLS publish", layer, &mut subscriber).await;
        let in_url = with_client(&tls_url(&format!("{URL_USER}:{URL_PASSWORD}@")));
        let layer = in_url.build().expect("valid config");
        delivered(
            seen,
            "TLS publish, login in the URL",
            layer,
            &mut subscriber,
        )
        .await;
    });
    assert!(logs.contains("WARN"), "the failures are logged: {logs}");
    assert_no_secret("the logs", &logs, &key_secrets);
    assert_no_secret("what the layers tell", &seen.text(), &key_secrets);
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Sends a request with credentials in its headers, body and query string, returning the
/// response status.
async fn request_with_secrets(addr: SocketAddr) -> u16 {
    let body = format!(r#"{{"action": 8, "password": "{BODY_PASSWORD}"}}"#);
    let request = format!(
        "POST /api/v1/amt/power/action/00000000-0000-4000-8000-000000000001?token={QUERY_TOKEN} HTTP/1.1\r\n\
         Host: 127.0.0.1\r\n\
         Authorization: Bearer {BEARER}\r\n\
         Cookie: session={COOKIE}\r\n\
         Content-Type: application/json\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = within(WAIT, "request with secrets", exchange)
        .await
        .expect("HTTP exchange");
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_bodies_and_query_strings_never_reach_an_event() {
    let Some(broker) = Broker::start_mosquitto_only("") else {
        return;
    };
    let topic = unique_topic("secrets_request");
    let mut subscriber = Subscriber::connect(&broker.url(), &topic).await;
    let layer = builder(&broker.url(), &topic)
        .build()
        .expect("valid config");
    let handle = layer.handle();
    let router = Router::new()
        .route(
            "/api/v1/amt/power/action/{guid}",
            post(|body: String| async move {
                // The handler did receive the secret: it is the layer that leaves it out.
                assert!(body.contains(BODY_PASSWORD));
                "{}"
            }),
        )
        .layer(layer);
    let (addr, _server) = support::serve(router).await;
    assert_eq!(request_with_secrets(addr).await, 200);
    handle.flush(WAIT).await.expect("delivered");
    let events = subscriber.collect(1, WAIT).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].payload["type"], "success", "{}", events[0].raw);
    assert_no_secret("the event", &events[0].raw, &[]);
    assert!(
        !events[0].raw.contains("token=") && !events[0].raw.contains('?'),
        "no query string: {}",
        events[0].raw
    );
}
