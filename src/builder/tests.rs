//! Unit tests of `builder.rs`.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

fn from_vars(vars: &[(&'static str, &str)]) -> Result<Option<Config>, ConfigError> {
    let vars: HashMap<&str, String> = vars.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    Builder::from_lookup(|name| Ok(vars.get(name).cloned()))?.into_config()
}

#[test]
fn no_or_empty_address_turns_eventing_off() {
    assert!(from_vars(&[]).expect("no vars is valid").is_none());
    let empty = from_vars(&[(ENV_ADDRESS, "")]).expect("empty is valid");
    assert!(empty.is_none());
}

#[test]
fn debug_never_shows_the_password() {
    let builder = Builder::default().address("mqtt://u:hunter2@h");
    assert!(!format!("{builder:?}").contains("hunter2"));
}

#[test]
fn keep_alive_and_connect_timeout_are_checked() {
    let build = |keep_alive, timeout| {
        Builder::default()
            .address("mqtt://b")
            .keep_alive(keep_alive)
            .connect_timeout(timeout)
            .into_config()
    };
    let s = Duration::from_secs;
    let config = build(Duration::from_millis(2500), s(1))
        .expect("valid")
        .expect("on");
    assert_eq!((config.keep_alive, config.connect_timeout), (s(2), s(1)));
    let err = build(Duration::from_millis(999), s(1)).expect_err("below 1 s");
    assert_eq!(
        err.to_string(),
        "invalid keep_alive 999ms: expected whole seconds from 1 s to 65535 s"
    );
    assert!(build(s(65_536), s(1)).is_err());
    assert!(build(s(1), Duration::ZERO).is_err());
    let default = from_vars(&[(ENV_ADDRESS, "mqtt://b")])
        .expect("valid")
        .expect("on");
    assert_eq!(
        (default.keep_alive, default.connect_timeout),
        (DEFAULT_KEEP_ALIVE, DEFAULT_CONNECT_TIMEOUT)
    );
}

#[test]
fn defaults_apply_when_only_the_address_is_set() {
    let config = from_vars(&[(ENV_ADDRESS, "mqtt://mosquitto:8883")])
        .expect("valid")
        .expect("enabled");
    assert_eq!(config.topic.as_str(), DEFAULT_TOPIC);
    assert_eq!(config.qos, Qos::AtLeastOnce);
    assert_eq!(config.queue_capacity, DEFAULT_QUEUE_CAPACITY);
    assert!(config.client_id.starts_with("mps-"), "{}", config.client_id);
    assert!(config.client_id.len() <= 23, "{}", config.client_id);
    let other = from_vars(&[(ENV_ADDRESS, "mqtt://mosquitto:8883")])
        .expect("valid")
        .expect("enabled");
    assert_ne!(
        config.client_id, other.client_id,
        "client ids must differ per layer"
    );
}

#[test]
fn reads_every_variable() {
    let config = from_vars(&[
        (ENV_ADDRESS, "tcp://broker:1884"),
        (ENV_TOPIC, "site/a/events"),
        (ENV_QOS, "0"),
        (ENV_CLIENT_ID, "mps-replica-1"),
        (ENV_QUEUE_CAPACITY, "16"),
    ])
    .expect("valid")
    .expect("enabled");
    assert_eq!(config.broker.host, "broker");
    assert_eq!(config.broker.port, 1884);
    assert_eq!(config.topic.as_str(), "site/a/events");
    assert_eq!(config.qos, Qos::AtMostOnce);
    assert_eq!(config.client_id, "mps-replica-1");
    assert_eq!(config.queue_capacity, 16);
}

#[test]
fn code_setters_override_the_environment() {
    let vars: HashMap<&str, String> = [
        (ENV_ADDRESS, "mqtt://from-env"),
        (ENV_TOPIC, "env/topic"),
        (ENV_QOS, "0"),
        (ENV_QUEUE_CAPACITY, "5"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    let config = Builder::from_lookup(|name| Ok(vars.get(name).cloned()))
        .expect("valid env")
        .address("mqtt://from-code:1999")
        .topic("code/topic")
        .qos(Qos::AtLeastOnce)
        .queue_capacity(7)
        .into_config()
        .expect("valid")
        .expect("enabled");
    assert_eq!(
        (config.broker.host.as_str(), config.broker.port),
        ("from-code", 1999)
    );
    assert_eq!(config.topic.as_str(), "code/topic");
    assert_eq!(config.qos, Qos::AtLeastOnce);
    assert_eq!(config.queue_capacity, 7);
}

#[test]
fn rejects_bad_values_naming_the_variable() {
    let addr = (ENV_ADDRESS, "mqtt://broker");
    let cases: [(&'static str, &str, &str); 11] = [
        (
            ENV_TOPIC,
            "",
            "invalid MPS_MQTT_TOPIC \"\": the topic is empty",
        ),
        (ENV_TOPIC, "mps/#", "wildcards"),
        (ENV_TOPIC, "mps/+/x", "wildcards"),
        (ENV_TOPIC, "a\0b", "NUL"),
        (ENV_TOPIC, "$SYS/x", "reserved"),
        (
            ENV_QOS,
            "2",
            "invalid MPS_MQTT_QOS \"2\": expected 0 (at most once) or 1",
        ),
        (ENV_QOS, "one", "invalid MPS_MQTT_QOS"),
        (
            ENV_CLIENT_ID,
            "",
            "invalid MPS_MQTT_CLIENT_ID \"\": the client id is empty",
        ),
        (
            ENV_QUEUE_CAPACITY,
            "0",
            "invalid MPS_MQTT_QUEUE_CAPACITY \"0\": expected a whole",
        ),
        (
            ENV_QUEUE_CAPACITY,
            "-3",
            "invalid MPS_MQTT_QUEUE_CAPACITY \"-3\"",
        ),
        (ENV_QUEUE_CAPACITY, "99999999999", "from 1 to 1048576"),
    ];
    for (name, value, expected) in cases {
        let err = from_vars(&[addr, (name, value)]).expect_err(value);
        assert!(
            err.to_string().contains(expected),
            "{name}={value:?}: {err}"
        );
    }
}

#[test]
fn setter_errors_name_the_setter() {
    let err = Builder::default()
        .address("mqtt://b")
        .queue_capacity(0)
        .into_config()
        .expect_err("0");
    assert_eq!(
        err.to_string(),
        "invalid queue_capacity \"0\": expected a whole number of events from 1 to 1048576"
    );
    let err = Builder::default()
        .address("htp://b")
        .into_config()
        .expect_err("htp");
    assert!(
        err.to_string().starts_with("invalid address \"htp://b\""),
        "{err}"
    );
}

#[test]
fn reconnect_backoff_must_grow_from_a_positive_delay() {
    let build = |min, max| {
        Builder::default()
            .address("mqtt://b")
            .reconnect_backoff(min, max)
            .into_config()
    };
    let ms = Duration::from_millis;
    let config = build(ms(10), ms(10)).expect("valid").expect("enabled");
    assert_eq!(config.reconnect, (ms(10), ms(10)));
    let err = build(ms(0), ms(10)).expect_err("zero");
    assert_eq!(
        err.to_string(),
        "invalid reconnect_backoff (0ns, 10ms): expected 0 < min <= max"
    );
    assert!(build(ms(20), ms(10)).is_err());
    let default = Builder::default().address("mqtt://b").into_config();
    let default = default.expect("valid").expect("enabled");
    assert_eq!(
        default.reconnect,
        (DEFAULT_RECONNECT_MIN, DEFAULT_RECONNECT_MAX)
    );
}

#[test]
fn not_unicode_is_an_error() {
    let err = Builder::from_lookup(|name| {
        if name == ENV_TOPIC {
            Err(ConfigError::NotUnicode { name })
        } else {
            Ok(None)
        }
    })
    .expect_err("not unicode");
    assert_eq!(
        err.to_string(),
        "invalid MPS_MQTT_TOPIC: the value is not valid UTF-8"
    );
}

/// A file in a fresh temporary directory, removed with the directory when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mps-builder-{}", crate::random::u64()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn credentials_of(vars: &[(&'static str, &str)]) -> Option<(String, Option<String>)> {
    let config = from_vars(vars).expect("valid").expect("enabled");
    config.credentials.map(|c| {
        let password = c.password.map(|p| p.expose().to_owned());
        (c.username, password)
    })
}

#[test]
fn credentials_come_from_the_address_or_the_variables() {
    use crate::secure::{ENV_PASSWORD, ENV_PASSWORD_FILE, ENV_USERNAME};
    let from_url = credentials_of(&[(ENV_ADDRESS, "mqtt://mps:s%40cret@b")]);
    assert_eq!(from_url, Some(("mps".into(), Some("s@cret".into()))));
    let from_env = credentials_of(&[
        (ENV_ADDRESS, "mqtt://b"),
        (ENV_USERNAME, "mps"),
        (ENV_PASSWORD, "pw"),
    ]);
    assert_eq!(from_env, Some(("mps".into(), Some("pw".into()))));
    let file = TempFile::new("password", "from-file\r\n");
    let from_file = credentials_of(&[
        (ENV_ADDRESS, "mqtt://b"),
        (ENV_USERNAME, "mps"),
        (ENV_PASSWORD_FILE, file.path()),
    ]);
    assert_eq!(
        from_file,
        Some(("mps".into(), Some("from-file".into()))),
        "one trailing newline is not part of the password"
    );
    let user_only = credentials_of(&[(ENV_ADDRESS, "mqtt://b"), (ENV_USERNAME, "mps")]);
    assert_eq!(user_only, Some(("mps".into(), None)));
    assert_eq!(credentials_of(&[(ENV_ADDRESS, "mqtt://b")]), None);
}

#[test]
fn ambiguous_credentials_are_refused() {
    use crate::secure::{ENV_PASSWORD, ENV_PASSWORD_FILE, ENV_USERNAME};
    let both_sources = from_vars(&[
        (ENV_ADDRESS, "mqtt://mps:hunter2@b"),
        (ENV_USERNAME, "other"),
    ])
    .expect_err("URL and variables");
    assert_eq!(
        both_sources.to_string(),
        "conflicting MQTT settings: credentials are given both in MPS_MQTT_ADDRESS \
         (user:***@) and in MPS_MQTT_USERNAME; keep one"
    );
    let both_passwords = from_vars(&[
        (ENV_ADDRESS, "mqtt://b"),
        (ENV_USERNAME, "mps"),
        (ENV_PASSWORD, "hunter2"),
        (ENV_PASSWORD_FILE, "/run/secrets/mqtt"),
    ])
    .expect_err("password and file");
    assert!(
        both_passwords
            .to_string()
            .contains("both MPS_MQTT_PASSWORD and MPS_MQTT_PASSWORD_FILE are set"),
        "{both_passwords}"
    );
    let no_user = from_vars(&[(ENV_ADDRESS, "mqtt://b"), (ENV_PASSWORD, "hunter2")])
        .expect_err("password without user");
    assert!(
        no_user
            .to_string()
            .contains("MPS_MQTT_PASSWORD is set but no MPS_MQTT_USERNAME"),
        "{no_user}"
    );
    let setters = Builder::default()
        .address("mqtt://u:hunter2@b")
        .password("again")
        .into_config()
        .expect_err("setter and URL");
    assert!(
        setters
            .to_string()
            .contains("in address (user:***@) and in password")
    );
    for err in [both_sources, both_passwords, no_user, setters] {
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    }
}

#[test]
fn a_missing_password_file_is_named() {
    let err = Builder::default()
        .address("mqtt://b")
        .username("mps")
        .password_file("/nonexistent/mqtt-password")
        .into_config()
        .expect_err("missing file");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "invalid password_file \"/nonexistent/mqtt-password\": cannot read the file:"
        ),
        "{msg}"
    );
}

#[test]
fn tls_settings_need_a_tls_address() {
    use crate::secure::{ENV_CA_FILE, ENV_TLS_INSECURE};
    let err = from_vars(&[(ENV_ADDRESS, "mqtt://b:8883"), (ENV_CA_FILE, "/etc/ca.pem")])
        .expect_err("CA for plain");
    assert_eq!(
        err.to_string(),
        "conflicting MQTT settings: MPS_MQTT_CA_FILE set for a plain mqtt:// address in \
         MPS_MQTT_ADDRESS; use mqtts:// (or wss://) for TLS"
    );
    let off = from_vars(&[(ENV_ADDRESS, "mqtt://b"), (ENV_TLS_INSECURE, "0")]);
    assert!(off.expect("insecure off is no TLS setting").is_some());
    let bad = from_vars(&[(ENV_ADDRESS, "mqtt://b"), (ENV_TLS_INSECURE, "maybe")]);
    assert_eq!(
        bad.expect_err("not a flag").to_string(),
        "invalid MPS_MQTT_TLS_INSECURE \"maybe\": expected 1 or 0 (or true/false, yes/no, on/off)"
    );
}

#[cfg(feature = "tls")]
#[test]
fn tls_file_problems_stop_startup_naming_the_variable() {
    use crate::secure::{ENV_CA_FILE, ENV_CLIENT_CERT_FILE};
    let missing = from_vars(&[
        (ENV_ADDRESS, "mqtts://b"),
        (ENV_CA_FILE, "/nonexistent/ca.pem"),
    ])
    .expect_err("missing CA");
    assert!(
        missing
            .to_string()
            .starts_with("invalid MPS_MQTT_CA_FILE \"/nonexistent/ca.pem\": cannot read the file:"),
        "{missing}"
    );
    let not_pem = TempFile::new("ca.pem", "this is not a certificate\n");
    let err = from_vars(&[(ENV_ADDRESS, "mqtts://b"), (ENV_CA_FILE, not_pem.path())])
        .expect_err("not PEM");
    assert!(
        err.to_string()
            .ends_with("no CA certificate in it (expected PEM)"),
        "{err}"
    );
    let half = from_vars(&[(ENV_ADDRESS, "mqtts://b"), (ENV_CLIENT_CERT_FILE, "/c.pem")])
        .expect_err("cert without key");
    assert!(
        half.to_string()
            .contains("needs both MPS_MQTT_CLIENT_CERT_FILE and MPS_MQTT_CLIENT_KEY_FILE"),
        "{half}"
    );
}

proptest! {
    #[test]
    fn no_setting_panics(topic in any::<String>(), qos in any::<String>(), cap in any::<String>()) {
        let _ = from_vars(&[
            (ENV_ADDRESS, "mqtt://b"), (ENV_TOPIC, &topic), (ENV_QOS, &qos), (ENV_QUEUE_CAPACITY, &cap),
        ]);
    }

}
