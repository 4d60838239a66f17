//! Unit tests of `config.rs`.

use super::*;
use proptest::prelude::*;

fn broker(raw: &str) -> BrokerAddress {
    match parse_address(ENV_ADDRESS, raw) {
        Ok(Some(b)) => b,
        other => panic!("{raw:?} should parse, got {other:?}"),
    }
}

#[test]
fn accepts_mps_address_forms() {
    let cases = [
        ("mqtt://mosquitto:8883", "mosquitto", 8883),
        ("tcp://mosquitto:8883", "mosquitto", 8883),
        ("mqtt://mosquitto", "mosquitto", 1883),
        ("mqtt://mosquitto/", "mosquitto", 1883),
        ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883),
        ("mqtt://[::1]:1884", "[::1]", 1884),
        ("mqtt://[::1]", "[::1]", 1883),
        (
            "  mqtt://Broker.example.com:65535  ",
            "Broker.example.com",
            65535,
        ),
    ];
    for (raw, host, port) in cases {
        let b = broker(raw);
        assert_eq!((b.host.as_str(), b.port), (host, port), "{raw}");
        assert_eq!(b.credentials, None, "{raw}");
    }
}

#[test]
fn falsy_addresses_turn_eventing_off_as_in_mps() {
    for raw in ["", "   ", "false", "FALSE", "0"] {
        assert_eq!(parse_address(ENV_ADDRESS, raw), Ok(None), "{raw:?}");
    }
}

#[test]
fn rejects_bad_addresses_naming_the_variable() {
    let cases = [
        ("htp://mosquitto:8883", "unsupported scheme \"htp\""),
        ("mosquitto", "no scheme"),
        ("mosquitto:1883", "unsupported scheme \"mosquitto\""),
        ("mqtt://", "no host"),
        ("mqtt://:1883", "empty host"),
        ("mqtt://mosquitto:0", "port 0"),
        ("mqtt://mosquitto:65536", "invalid port number"),
        ("mqtt://mosquitto:-1", "invalid port number"),
        (
            "mqtt://mosquitto:1883/events",
            "unexpected path \"/events\"",
        ),
        ("mqtt://mosquitto:1883?qos=1", "unexpected query"),
        ("mqtt://mosquitto:1883#x", "unexpected fragment"),
        ("mqtt://[::1:1883", "invalid IPv6 address"),
        ("mqtt://mos%20quitto", "is not a host name"),
        ("\u{7f}garbage", "no scheme"),
    ];
    for (raw, reason) in cases {
        let err = parse_address(ENV_ADDRESS, raw).expect_err(raw);
        let msg = err.to_string();
        assert!(msg.starts_with("invalid MPS_MQTT_ADDRESS "), "{msg}");
        assert!(msg.contains(reason), "{raw:?}: {msg}");
        assert!(msg.contains("expected mqtt://host[:port]"), "{msg}");
    }
}

#[cfg(all(feature = "websocket", feature = "tls"))]
#[test]
fn websocket_addresses_keep_their_path() {
    let ws = broker("ws://ingress.example/mqtt/broker");
    assert_eq!(
        (ws.scheme, ws.port, ws.path.as_str()),
        (Scheme::Ws, 80, "/mqtt/broker")
    );
    let wss = broker("wss://u:pw@ingress.example");
    assert_eq!(
        (wss.scheme, wss.port, wss.path.as_str()),
        (Scheme::Wss, 443, "/mqtt")
    );
    assert_eq!(wss.to_string(), "wss://u:***@ingress.example:443/mqtt");
}

#[cfg(not(feature = "websocket"))]
#[test]
fn websocket_schemes_name_the_feature_they_need() {
    for scheme in ["ws", "wss"] {
        let raw = format!("{scheme}://ingress.example/mqtt");
        let err = parse_address(ENV_ADDRESS, &raw).expect_err(&raw);
        assert!(
            err.to_string()
                .contains("needs the cargo feature \"websocket\""),
            "{err}"
        );
    }
}

#[cfg(feature = "tls")]
#[test]
fn tls_schemes_default_to_port_8883() {
    for scheme in ["mqtts", "ssl", "tls"] {
        let b = broker(&format!("{scheme}://u:pw@mosquitto"));
        assert_eq!((b.scheme, b.port), (Scheme::Mqtts, DEFAULT_TLS_PORT));
        assert_eq!(b.to_string(), "mqtts://u:***@mosquitto:8883");
    }
    assert_eq!(broker("mqtts://[::1]:8884").port, 8884);
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_schemes_name_the_feature_they_need() {
    for scheme in ["mqtts", "ssl", "tls"] {
        let raw = format!("{scheme}://u:hunter2@mosquitto");
        let err = parse_address(ENV_ADDRESS, &raw).expect_err(&raw);
        assert_eq!(
            err.to_string(),
            format!(
                "invalid MPS_MQTT_ADDRESS \"{scheme}://u:***@mosquitto\": scheme \"{scheme}\" \
                 needs the cargo feature \"tls\" of mps-mqtt-events; enable it, e.g. \
                 mps-mqtt-events = {{ features = [\"tls\"] }}"
            )
        );
    }
}

#[test]
fn credentials_are_used_and_never_shown() {
    let b = broker("mqtt://mps:s%40cret@mosquitto:1883");
    assert_eq!(
        b.credentials,
        Some(("mps".to_owned(), Secret::new("s@cret".to_owned())))
    );
    assert_eq!(format!("{b:?}"), "mqtt://mps:***@mosquitto:1883");
    let err = parse_address(ENV_ADDRESS, "htp://mps:hunter2@mosquitto/x").expect_err("bad");
    let msg = err.to_string();
    assert!(msg.contains("\"htp://mps:***@mosquitto/x\""), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}

#[test]
fn redacts_only_the_password() {
    let cases = [
        ("mqtt://u:p@h:1", "mqtt://u:***@h:1"),
        ("mqtt://u@h:1", "mqtt://u@h:1"),
        ("u:p@h", "u:***@h"),
        ("mqtt://h/a:b@c", "mqtt://h/a:b@c"),
        ("mqtt://u:p:q@r@h", "mqtt://u:***@h"),
        ("", ""),
    ];
    for (raw, shown) in cases {
        assert_eq!(redact(raw), shown, "{raw}");
    }
}

proptest! {
    #[test]
    fn no_address_panics(raw in any::<String>()) {
        let _ = parse_address(ENV_ADDRESS, &raw);
        let _ = redact(&raw);
    }

    #[test]
    fn no_url_shaped_address_panics(
        scheme in "[a-z]{0,6}", host in "[^/?#]{0,20}", port in any::<i32>(), tail in ".{0,10}",
    ) {
        let _ = parse_address(ENV_ADDRESS, &format!("{scheme}://{host}:{port}{tail}"));
    }

    #[test]
    fn passwords_never_appear_in_errors_or_debug(
        user in "[a-z]{1,8}", password in "[A-Za-z0-9]{6,16}", scheme in "(mqtt|htp|mqtts)",
        tail in "(|/x|\\?q)",
    ) {
        let raw = format!("{scheme}://{user}:{password}@host:1883{tail}");
        match parse_address(ENV_ADDRESS, &raw) {
            Ok(Some(b)) => {
                let shown = format!("{b:?} {b}");
                prop_assert!(!shown.contains(&password));
            }
            Ok(None) => prop_assert!(false, "{} parsed as off", raw),
            Err(e) => {
                let shown = format!("{e} {e:?}");
                prop_assert!(!shown.contains(&password));
            }
        }
    }
}
