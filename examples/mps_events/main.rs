//! A tail for MPS events: subscribes to the topic of `mps-mqtt-events` (or of MPS itself) and
//! prints every event as one aligned, coloured line. It is the alternative to MQTT Explorer
//! on a headless box.
//!
//! Run with
//!
//! ```not_rust
//! cargo run --example mps_events -- [options]
//! cargo run --example mps_events -- --broker mqtt://127.0.0.1:1883 --type fail
//! MPS_MQTT_ADDRESS=mqtt://user:password@broker:1883 cargo run --example mps_events -- --json
//! ```
//!
//! which prints, for two requests of the `mps_server` example and one event of MPS itself
//! (it has no `http`):
//!
//! ```text
//! 10:40:00.123  success  AMT_PowerAction            4c4c4544-004b-4210-8033-b6c04f504633  Power Action requested                  200     0.155 ms
//! 10:40:01.482  fail     CIRA_Connection            8e1c1d8f-5b3a-4f4e-9f6c-2a7d3c9b0e51  Device Not Found                        404     0.080 ms
//! 10:40:02.007  request  AMT_PowerState             4c4c4544-004b-4210-8033-b6c04f504633  Power State requested
//! ```
//!
//! Options (`--help` lists them): `--broker <url>` (else `MPS_MQTT_ADDRESS`, else
//! `mqtt://127.0.0.1:1883`; plain TCP only, `user:password@` logs in: this small tool does
//! not support TLS or WebSocket brokers), `--topic <t>` (default `mps/events`; `<t>` and
//! everything under it), `--type success|fail|request`, `--guid <uuid>`, `--json` (the
//! payloads as received) and `--no-color`. Times are local, with the UTC offset read at
//! startup (`TZ` applies). A payload that is not an event prints as `? <raw>`, whatever the
//! filters. Connection errors are reported on stderr and retried every second; Ctrl-C or
//! SIGTERM exits.

mod line;
mod options;

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use mps_mqtt_events::Event;
use rumqttc::{AsyncClient, ConnectionError, MqttOptions, Packet, QoS, SubscribeReasonCode};

use line::LineFormat;
use options::{Exit, HELP, Options};

/// Pause before reconnecting after a connection error.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Largest payload accepted; a bigger one would drop the connection at every delivery.
const MAX_PAYLOAD: usize = 1024 * 1024;
/// How long the DISCONNECT may take at exit.
const DISCONNECT_TIMEOUT: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    // Before any thread exists: reading the local offset is refused in a threaded process.
    let utc_offset = match time::UtcOffset::current_local_offset() {
        Ok(offset) => i64::from(offset.whole_seconds()),
        Err(_) => {
            eprintln!("note: the local time zone cannot be read; times are UTC");
            0
        }
    };
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(Exit::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(Exit::Usage(message)) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let format = LineFormat {
        color: options.color && !no_color_env && std::io::stdout().is_terminal(),
        utc_offset,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tail(&options, format)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints events until Ctrl-C or SIGTERM, a closed stdout, or a refusal by the broker.
async fn tail(options: &Options, format: LineFormat) -> Result<(), String> {
    let broker = &options.broker;
    let client_id = format!("mps-events-tail-{}", std::process::id());
    let mut mqtt = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(MAX_PAYLOAD, MAX_PAYLOAD);
    if let Some((user, password)) = &broker.credentials {
        mqtt.set_credentials(user.clone(), password.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, 10);
    // `<t>/#` matches `<t>` itself too (MQTT 3.1.1, 4.7.1.2): one subscription, no duplicates.
    let filter = format!("{}/#", options.topic);
    eprintln!("connecting to {broker}, topic {filter} (Ctrl-C stops)");

    let stop = stop_signal();
    tokio::pin!(stop);
    let mut last_error: Option<String> = None;
    loop {
        let polled = tokio::select! {
            () = &mut stop => break,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(rumqttc::Event::Incoming(Packet::ConnAck(_))) => {
                // Clean session: subscribe after every (re)connect.
                if let Err(e) = client.try_subscribe(filter.as_str(), QoS::AtLeastOnce) {
                    return Err(format!("cannot subscribe to {filter}: {e}"));
                }
            }
            Ok(rumqttc::Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    return Err(format!("the broker refused the subscription to {filter}"));
                }
                match last_error.take() {
                    Some(_) => eprintln!("reconnected, subscribed to {filter}"),
                    None => eprintln!("subscribed to {filter}"),
                }
            }
            Ok(rumqttc::Event::Incoming(Packet::Publish(publish))) => {
                if let Some(line) = render(options, format, &publish.payload) {
                    if let Err(e) = line.write() {
                        // `| head` closed the pipe: done. Anything else is worth a word.
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(());
                        }
                        return Err(format!("cannot write to stdout: {e}"));
                    }
                }
            }
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => {
                return Err(format!(
                    "the broker {broker} refused the connection: {code:?}"
                ));
            }
            Err(e) => {
                let message = e.to_string();
                if last_error.as_deref() != Some(message.as_str()) {
                    eprintln!("broker {broker}: {message}; retrying every {RETRY_PAUSE:?}");
                }
                last_error = Some(message);
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(RETRY_PAUSE) => {}
                }
            }
        }
    }
    disconnect(&client, &mut eventloop).await;
    Ok(())
}

/// Where a payload goes: stdout, stderr (malformed in `--json` mode) or nowhere (filtered).
enum Output {
    Stdout(String),
    Stderr(String),
}

impl Output {
    fn write(&self) -> std::io::Result<()> {
        match self {
            Output::Stdout(line) => writeln!(std::io::stdout().lock(), "{line}"),
            Output::Stderr(line) => writeln!(std::io::stderr().lock(), "{line}"),
        }
    }
}

/// The line for one payload, or `None` when the filters leave it out.
fn render(options: &Options, format: LineFormat, payload: &[u8]) -> Option<Output> {
    let Ok(event) = serde_json::from_slice::<Event>(payload) else {
        let line = format.malformed(payload);
        return Some(if options.json {
            Output::Stderr(line)
        } else {
            Output::Stdout(line)
        });
    };
    if options.kind.is_some_and(|kind| kind != event.kind) {
        return None;
    }
    if let Some(guid) = &options.guid {
        if !event
            .guid
            .as_deref()
            .is_some_and(|g| g.eq_ignore_ascii_case(guid))
        {
            return None;
        }
    }
    Some(Output::Stdout(if options.json {
        String::from_utf8_lossy(payload).trim_end().to_owned()
    } else {
        format.line(&event)
    }))
}

/// Says goodbye to the broker, briefly: exiting must not hang on a dead connection.
async fn disconnect(client: &AsyncClient, eventloop: &mut rumqttc::EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let _ = tokio::time::timeout(DISCONNECT_TIMEOUT, async {
        while let Ok(event) = eventloop.poll().await {
            if matches!(
                event,
                rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)
            ) {
                break;
            }
        }
    })
    .await;
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
