//! `from_env` and `try_from_env` against the real process environment. Each case runs this
//! test binary again as a child with the variables set (`support::child`).

mod support;

use std::process::Output;

use mps_mqtt_events::MqttEventLayer;
use support::child::{in_child, run_child};

/// Fails with the child's output unless its test passed.
fn assert_child_passed(out: &Output, case: impl std::fmt::Debug) {
    assert!(
        out.status.success(),
        "{case:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn from_env_panics_naming_the_variable_without_the_password() {
    if in_child() {
        let _ = MqttEventLayer::from_env();
        return;
    }
    let out = run_child(
        "from_env_panics_naming_the_variable_without_the_password",
        &[("MPS_MQTT_ADDRESS", "htp://mps:hunter2@mosquitto:8883")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child must fail: {stderr}");
    assert!(
        stderr.contains(
            "invalid MPS_MQTT_ADDRESS \"htp://mps:***@mosquitto:8883\": unsupported scheme \"htp\"; \
             expected mqtt://host[:port], mqtts://host[:port] or tcp://host[:port]"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}

#[test]
fn try_from_env_reports_each_bad_variable() {
    if in_child() {
        let expected = std::env::var("EXPECTED").expect("EXPECTED is set");
        let err = MqttEventLayer::try_from_env().expect_err("a bad value");
        assert!(err.to_string().contains(&expected), "{err}");
        return;
    }
    let cases = [
        (
            "MPS_MQTT_ADDRESS",
            "ftp://mosquitto:8883",
            "invalid MPS_MQTT_ADDRESS \"ftp://mosquitto:8883\": unsupported scheme \"ftp\"",
        ),
        (
            "MPS_MQTT_TLS_INSECURE",
            "perhaps",
            "invalid MPS_MQTT_TLS_INSECURE \"perhaps\"",
        ),
        (
            "MPS_MQTT_TOPIC",
            "mps/#",
            "invalid MPS_MQTT_TOPIC \"mps/#\"",
        ),
        ("MPS_MQTT_QOS", "2", "invalid MPS_MQTT_QOS \"2\""),
        ("MPS_MQTT_CLIENT_ID", "", "invalid MPS_MQTT_CLIENT_ID \"\""),
        (
            "MPS_MQTT_QUEUE_CAPACITY",
            "lots",
            "invalid MPS_MQTT_QUEUE_CAPACITY \"lots\"",
        ),
    ];
    for (name, value, expected) in cases {
        let mut vars = vec![(name, value), ("EXPECTED", expected)];
        if name != "MPS_MQTT_ADDRESS" {
            vars.push(("MPS_MQTT_ADDRESS", "mqtt://127.0.0.1:1883"));
        }
        let out = run_child("try_from_env_reports_each_bad_variable", &vars);
        assert_child_passed(&out, (name, value));
    }
}

#[test]
fn unset_or_falsy_address_turns_eventing_off() {
    if in_child() {
        let layer = MqttEventLayer::try_from_env().expect("valid");
        assert!(!layer.is_enabled());
        return;
    }
    for value in [None, Some(""), Some("false"), Some("0")] {
        let vars: Vec<(&str, &str)> = value.map(|v| ("MPS_MQTT_ADDRESS", v)).into_iter().collect();
        let out = run_child("unset_or_falsy_address_turns_eventing_off", &vars);
        assert_child_passed(&out, value);
    }
}

#[test]
fn a_good_environment_turns_eventing_on() {
    if in_child() {
        let layer = MqttEventLayer::try_from_env().expect("valid");
        assert!(layer.is_enabled());
        return;
    }
    let out = run_child(
        "a_good_environment_turns_eventing_on",
        &[
            ("MPS_MQTT_ADDRESS", "mqtt://[::1]:8883"),
            ("MPS_MQTT_TOPIC", "site/a/events"),
            ("MPS_MQTT_QOS", "0"),
            ("MPS_MQTT_CLIENT_ID", "mps-replica-1"),
            ("MPS_MQTT_QUEUE_CAPACITY", "16"),
        ],
    );
    assert_child_passed(&out, "a good environment");
}
