//! The `mps_server` example's live events page (`/events`) in a real headless Chromium: the
//! example runs as a child process against Mosquitto (or, where Mosquitto is not installed,
//! its embedded broker), the browser is driven over the Chrome DevTools Protocol, and every
//! API request must show up as a row of the page.
//!
//! `metrics.rs` scrapes the example's `/metrics` (crate feature `metrics`); it needs no browser.
//!
//! Skipped, with a note, when Chromium is not installed, unless `MPS_MQTT_REQUIRE_BROWSER=1`
//! (as in CI). `MPS_MQTT_UPDATE_SCREENSHOT=1` also writes the screenshot to
//! `examples/mps_server/page/events-page.png`.

#[path = "../support/mod.rs"]
mod support;

mod chromium;
mod example;
#[cfg(feature = "metrics")]
mod metrics;
mod output;

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use chromium::{Chromium, Page};
use example::Example;
use support::{Broker, REQUIRE_MOSQUITTO, find_on_path, http_response, now_ms, unique_topic};

/// A device of the example that is connected: its AMT routes answer 200.
const CONNECTED: &str = "4c4c4544-004b-4210-8033-b6c04f504633";
/// A device the example knows but that is not connected: its AMT routes answer 404.
const DISCONNECTED: &str = "8e1c1d8f-5b3a-4f4e-9f6c-2a7d3c9b0e51";
/// The longest wait for something to show on the page.
const PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Set to `1` to refresh the screenshot committed with the example.
const UPDATE_SCREENSHOT: &str = "MPS_MQTT_UPDATE_SCREENSHOT";

/// One API request and the row its event must make.
struct Expected {
    method: &'static str,
    path: String,
    body: Option<&'static str>,
    status: u16,
    kind: &'static str,
    guid: &'static str,
    message: &'static str,
}

fn checked_requests() -> [Expected; 3] {
    [
        Expected {
            method: "POST",
            path: format!("/api/v1/amt/power/action/{CONNECTED}"),
            body: Some(r#"{"action": 8}"#),
            status: 200,
            kind: "success",
            guid: CONNECTED,
            message: "Power Action requested",
        },
        Expected {
            method: "GET",
            path: format!("/api/v1/amt/power/state/{CONNECTED}"),
            body: None,
            status: 200,
            kind: "success",
            guid: CONNECTED,
            message: "Power State requested",
        },
        Expected {
            method: "GET",
            path: format!("/api/v1/amt/features/{DISCONNECTED}"),
            body: None,
            status: 404,
            kind: "fail",
            guid: DISCONNECTED,
            message: "Device Not Found",
        },
    ]
}

/// Mosquitto where it is installed (or required), else `None`: the example's embedded broker.
fn broker() -> Option<Broker> {
    let required = std::env::var(REQUIRE_MOSQUITTO).as_deref() == Ok("1");
    if find_on_path("mosquitto").is_some() || required {
        Some(Broker::start())
    } else {
        println!("note: mosquitto not found, the example uses its embedded broker");
        None
    }
}

/// A JavaScript literal for `value`.
fn js(value: impl serde::Serialize) -> String {
    serde_json::to_string(&value).expect("serialisable")
}

#[tokio::test]
async fn the_events_page_shows_every_request_live() {
    let Some(chromium_binary) = chromium::find() else {
        return;
    };
    let example_binary = example::binary();
    let broker = broker();
    let topic = unique_topic("browser");
    let url = broker.as_ref().map(Broker::url);
    let example = Example::start(&example_binary, url.as_deref(), &topic);
    println!(
        "example at http://{}/events, broker {}, topic {topic}",
        example.addr,
        url.as_deref().unwrap_or("embedded")
    );
    let (browser, mut page) = open_events_page(&chromium_binary, &example).await;
    page.wait_for(
        "the page's stream to be live",
        "document.getElementById('status')?.dataset.state === 'live'",
        PAGE_TIMEOUT,
    )
    .await;

    let requests = checked_requests();
    for request in &requests {
        check_row(&mut page, &example, request).await;
    }
    // Loading the page itself publishes nothing (no /favicon.ico request reaches the API).
    let rows = page.eval(ROW_COUNT).await;
    assert_eq!(rows, requests.len(), "one row per request, no other");
    check_filters(&mut page).await;
    let delivered = page
        .wait_for(
            "the delivered counter to count the requests",
            &format!(
                "(() => {{ const n = Number(document.getElementById('delivered').dataset.value); \
                 return n >= {} ? n : null; }})()",
                requests.len()
            ),
            PAGE_TIMEOUT,
        )
        .await;
    let connected = page
        .eval("document.getElementById('connected').dataset.value")
        .await;
    println!("counters: delivered {delivered}, connected {connected}");
    assert_eq!(connected, "yes", "the publisher is connected");

    traffic_for_the_screenshot(&mut page, &example).await;
    let png = page.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("events-page.png");
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("screenshot: {}", path.display());
    if std::env::var(UPDATE_SCREENSHOT).as_deref() == Ok("1") {
        let committed = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/mps_server/page/events-page.png"
        );
        std::fs::write(committed, &png).unwrap_or_else(|e| panic!("write {committed}: {e}"));
        println!("screenshot updated: {committed}");
    }
    // Chromium, then the example, then the broker are killed as they drop.
    drop(page);
    drop(browser);
    drop(example);
}

#[tokio::test]
async fn the_events_page_says_why_it_has_no_events() {
    let Some(chromium_binary) = chromium::find() else {
        return;
    };
    let example_binary = example::binary();
    // MPS's "off" value: no publisher, so no subscriber either.
    let example = Example::start(&example_binary, Some("false"), &unique_topic("browser-off"));
    let (browser, mut page) = open_events_page(&chromium_binary, &example).await;
    let reason = page
        .wait_for(
            "the page to say it has no live events",
            "(() => { const s = document.getElementById('status'); \
               const why = document.getElementById('reason'); \
               return s?.dataset.state === 'unavailable' && !why?.hidden ? why.textContent : null; })()",
            PAGE_TIMEOUT,
        )
        .await;
    println!("eventing off, the page says: {reason}");
    assert!(
        reason.as_str().is_some_and(|r| r.contains("eventing off")),
        "{reason}"
    );
    let delivered = page
        .wait_for(
            "the counters to say the publisher is off",
            "document.getElementById('delivered').dataset.value === 'off' || null",
            PAGE_TIMEOUT,
        )
        .await;
    assert_eq!(delivered, true);
    drop(page);
    drop(browser);
    drop(example);
}

/// Starts Chromium with a 1280x800 viewport on the example's `/events`.
async fn open_events_page(chromium_binary: &Path, example: &Example) -> (Chromium, Page) {
    let browser = Chromium::launch(chromium_binary);
    let mut page = Page::attach(&browser).await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false }),
    )
    .await;
    page.call(
        "Page.navigate",
        json!({ "url": format!("http://{}/events", example.addr) }),
    )
    .await;
    // Page.navigate answers before the new document has loaded.
    page.wait_for(
        "the events page to load",
        "location.pathname === '/events' && document.readyState === 'complete'",
        PAGE_TIMEOUT,
    )
    .await;
    (browser, page)
}

/// Sends `request`, waits for the new row with its guid, checks the row, and prints how long
/// after the response the page had it.
async fn check_row(page: &mut Page, example: &Example, request: &Expected) {
    let known = page
        .eval("[...document.querySelectorAll('#rows tr.event')].map(r => r.dataset.id)")
        .await;
    let sent = now_ms();
    let (status, body) =
        http_response(example.addr, request.method, &request.path, request.body).await;
    let answered = now_ms();
    assert_eq!(
        status, request.status,
        "{} {}: {body}",
        request.method, request.path
    );
    let what = format!("a row for {} {}", request.method, request.path);
    let row = page
        .wait_for(
            &what,
            &format!(
                "(() => {{ const known = new Set({known}); \
                 const tr = [...document.querySelectorAll('#rows tr.event')].find(r => \
                   !known.has(r.dataset.id) && r.dataset.guid === {guid}); \
                 return tr ? {{ id: tr.dataset.id, type: tr.dataset.type, \
                   guid: tr.dataset.guid, status: tr.dataset.status, \
                   received: Number(tr.dataset.received), hidden: tr.hidden, \
                   message: tr.querySelector('td.message').textContent }} : null; }})()",
                guid = js(request.guid),
            ),
            PAGE_TIMEOUT,
        )
        .await;
    let received = row["received"].as_u64().unwrap_or_default();
    println!(
        "{} {} -> {status}: row {} on the page {} ms after the response (request took {} ms)",
        request.method,
        request.path,
        row["id"],
        i128::from(received) - i128::from(answered),
        answered - sent,
    );
    let expected = json!({
        "type": request.kind,
        "guid": request.guid,
        "status": request.status.to_string(),
        "message": request.message,
        "hidden": false,
    });
    for (key, value) in expected.as_object().expect("an object") {
        assert_eq!(&row[key], value, "{what}: {key} in {row}");
    }
    assert!(
        row["id"].as_str().is_some_and(|id| !id.is_empty()),
        "{what}: data-id {row}"
    );
}

/// The type filter shows only rows of its type; the guid filter only rows of its device.
async fn check_filters(page: &mut Page) {
    let filtered = |control: &str, value: &str, event: &str| {
        format!(
            "(() => {{ const c = document.getElementById({control}); c.value = {value}; \
             c.dispatchEvent(new Event({event})); \
             const rows = [...document.querySelectorAll('#rows tr.event')]; \
             return {{ shown: rows.filter(r => !r.hidden).map(r => [r.dataset.type, r.dataset.guid]), \
                       hidden: rows.filter(r => r.hidden).length }}; }})()",
            control = js(control),
            value = js(value),
            event = js(event),
        )
    };
    let fail_only = page.eval(&filtered("filter-type", "fail", "change")).await;
    let shown = fail_only["shown"].as_array().expect("shown rows");
    assert!(!shown.is_empty(), "the fail row stays: {fail_only}");
    assert!(
        shown.iter().all(|row| row[0] == "fail"),
        "only fail rows: {fail_only}"
    );
    assert!(
        fail_only["hidden"].as_u64() >= Some(2),
        "the success rows are hidden: {fail_only}"
    );

    page.eval(&filtered("filter-type", "all", "change")).await;
    let one_device = page
        .eval(&filtered("filter-guid", &CONNECTED[..8], "input"))
        .await;
    let shown = one_device["shown"].as_array().expect("shown rows");
    assert!(shown.len() >= 2, "both rows of {CONNECTED}: {one_device}");
    assert!(
        shown.iter().all(|row| row[1] == CONNECTED),
        "only rows of {CONNECTED}: {one_device}"
    );
    let all = page.eval(&filtered("filter-guid", "", "input")).await;
    assert_eq!(all["hidden"], 0, "no filter hides nothing: {all}");
}

/// A few seconds of mixed requests, so the screenshot's table and chart have something to
/// show; waits until the page has a row for each.
async fn traffic_for_the_screenshot(page: &mut Page, example: &Example) {
    let paths = [
        ("GET", format!("/api/v1/amt/power/state/{CONNECTED}"), None),
        ("GET", format!("/api/v1/amt/features/{DISCONNECTED}"), None),
        (
            "POST",
            format!("/api/v1/amt/power/action/{CONNECTED}"),
            Some(r#"{"action": 2}"#),
        ),
        ("GET", "/api/v1/devices".to_owned(), None),
        ("GET", format!("/api/v1/amt/version/{CONNECTED}"), None),
    ];
    let before = page.eval(ROW_COUNT).await.as_u64().unwrap_or_default();
    let mut sent = 0_u64;
    for burst in [3_usize, 7, 2, 9, 5] {
        for i in 0..burst {
            let (method, path, body) = &paths[(sent as usize + i) % paths.len()];
            http_response(example.addr, method, path, *body).await;
        }
        sent += burst as u64;
        // Pacing, not synchronisation: spreads the bursts over several seconds of the chart.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let expected = (before + sent).min(200);
    page.wait_for(
        "a row for every request of the screenshot",
        &format!("{ROW_COUNT} >= {expected}"),
        PAGE_TIMEOUT,
    )
    .await;
}

/// The number of event rows on the page.
const ROW_COUNT: &str = "document.querySelectorAll('#rows tr.event').length";
