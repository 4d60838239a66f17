//! An imitation of the Open AMT MPS REST API (`/api/v1`, in-memory devices) wrapped in
//! [`MqttEventLayer`], so every request publishes an MPS-style event.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --example mps_server
//! ```
//!
//! With `MPS_MQTT_ADDRESS` unset this starts an in-process demo broker and prints every event
//! it receives as `event mps/events {json}`; <http://localhost:3000/events> shows them live in
//! a browser (a plain `mqtt://` broker in `MPS_MQTT_ADDRESS` works too). Then, in another
//! terminal:
//!
//! ```not_rust
//! curl localhost:3000/api/v1/devices
//! curl -X POST localhost:3000/api/v1/amt/power/action/4c4c4544-004b-4210-8033-b6c04f504633 \
//!   -H 'content-type: application/json' -d '{"action": 8}'
//! curl localhost:3000/api/v1/amt/power/state/4c4c4544-004b-4210-8033-b6c04f504633
//! # a known but disconnected device: 404 and a `Device Not Found` event, as in MPS
//! curl localhost:3000/api/v1/amt/features/8e1c1d8f-5b3a-4f4e-9f6c-2a7d3c9b0e51
//! ```
//!
//! Against a real broker (here a local Mosquitto), watching the events with `mosquitto_sub`:
//!
//! ```not_rust
//! mosquitto_sub -h 127.0.0.1 -t 'mps/events/#' -v
//! cargo run --example mps_events   # the same, one aligned line per event
//! MPS_MQTT_ADDRESS=mqtt://127.0.0.1:1883 cargo run --example mps_server
//! ```
//!
//! A TLS or WebSocket broker needs the crate's features, e.g.
//! `MPS_MQTT_ADDRESS=mqtts://broker:8883 MPS_MQTT_CA_FILE=ca.pem cargo run --example mps_server
//! --features tls`; every `MPS_MQTT_*` variable of the README applies.
//!
//! Environment: `MPS_WEB_PORT` (default 3000; 0 picks a free port), `MPS_WEB_HOST` (default
//! 127.0.0.1; MPS itself listens on all interfaces, set `0.0.0.0` for that), `RUST_LOG`
//! (default `info,rumqttd=off`), and the crate's `MPS_MQTT_*` variables (`MPS_MQTT_TOPIC`,
//! `MPS_MQTT_QOS`, ...). A bad value prints `error: ...` and exits with code 2. Ctrl-C or
//! SIGTERM stops the server, then the publisher gets 5 s to deliver what is queued.

#[path = "../embedded_broker/mod.rs"]
mod embedded_broker;

mod api;
mod config;
mod metrics;
mod output;
mod page;
mod shutdown;
mod subscriber;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tracing::info;
use tracing_subscriber::EnvFilter;

use api::{DEMO_GUID, announce_connected, app, seed_devices};
use config::{ENV_WEB_PORT, Events, web_addr_from_env};
use output::{Failure, say};
use shutdown::shutdown_signal;
use subscriber::subscribe;

/// Log filter when `RUST_LOG` is unset: rumqttd logs an ERROR on every clean disconnect.
const DEFAULT_LOG_FILTER: &str = "info,rumqttd=off";
/// How long the publisher gets to deliver queued events after the server stopped.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait, at exit, for the subscriber to print the last delivered events.
const PRINT_TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        // Logs on stderr; stdout carries the instructions and the received events.
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}

/// Reads the configuration, starts the runtime and serves until Ctrl-C or SIGTERM.
fn run() -> Result<(), Failure> {
    let web_addr = web_addr_from_env()?;
    // Before the runtime: starting the embedded broker blocks while it comes up.
    let events = Events::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the Tokio runtime: {e}")))?;
    runtime.block_on(serve(web_addr, events))
}

async fn serve(web_addr: SocketAddr, events: Events) -> Result<(), Failure> {
    let handle = events.layer.handle();
    // Subscribed before the first request, so no event is missed.
    let subscription = subscribe(&events.mode).await?;

    let listener = tokio::net::TcpListener::bind(web_addr).await.map_err(|e| {
        Failure::Runtime(format!(
            "cannot listen on {web_addr}: {e}; set {ENV_WEB_PORT} to a free port"
        ))
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("cannot read the listening address: {e}")))?;

    say(format_args!("{}", events.mode));
    say(format_args!("listening on http://{local}/api/v1"));
    say(format_args!("events page: http://{local}/events"));
    say(format_args!(
        "try: curl -X POST localhost:{port}/api/v1/amt/power/action/{DEMO_GUID} \
         -H 'content-type: application/json' -d '{{\"action\": 8}}'",
        port = local.port()
    ));

    let metrics = metrics::router(); // before the first event starts the publisher
    let devices = seed_devices();
    announce_connected(&devices, &handle).await;
    let (page, stop_streams) = page::router(subscription.feed.clone(), handle.clone());
    let stopped = async move {
        shutdown_signal().await;
        // Open event streams never end by themselves; graceful shutdown waits for them.
        stop_streams.stop();
    };
    let routes = app(devices, events.layer).merge(page).merge(metrics);
    axum::serve(listener, routes)
        .with_graceful_shutdown(stopped)
        .await
        .map_err(|e| Failure::Runtime(format!("the HTTP server failed: {e}")))?;

    let report = handle.shutdown(SHUTDOWN_TIMEOUT).await;
    info!(
        delivered = report.delivered,
        undelivered = report.undelivered,
        dropped = report.dropped,
        "MQTT publisher shut down"
    );
    // The broker forwards what it acknowledged; let the subscriber print it before exit.
    subscription
        .wait_printed(report.delivered, PRINT_TIMEOUT)
        .await;
    Ok(())
}
