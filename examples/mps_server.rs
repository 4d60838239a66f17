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
//! it receives as `event mps/events {json}`. Then, in another terminal:
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
//! MPS_MQTT_ADDRESS=mqtt://127.0.0.1:1883 cargo run --example mps_server
//! ```
//!
//! Environment: `MPS_WEB_PORT` (default 3000; 0 picks a free port), `MPS_WEB_HOST` (default
//! 127.0.0.1; MPS itself listens on all interfaces, set `0.0.0.0` for that), `RUST_LOG`
//! (default `info,rumqttd=off`), and the crate's `MPS_MQTT_*` variables (`MPS_MQTT_TOPIC`,
//! `MPS_MQTT_QOS`, ...). A bad value prints `error: ...` and exits with code 2. Ctrl-C or
//! SIGTERM stops the server, then the publisher gets 5 s to deliver what is queued.

mod embedded_broker;

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use embedded_broker::EmbeddedBroker;
use mps_mqtt_events::{Builder, ConfigError, MqttEventLayer};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{RwLock, oneshot, watch};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// The crate's variable that names the broker; unset here means the embedded demo broker.
const ENV_ADDRESS: &str = "MPS_MQTT_ADDRESS";
/// Environment variable with the HTTP port, as in MPS.
const ENV_WEB_PORT: &str = "MPS_WEB_PORT";
/// Environment variable with the IP address to listen on (this example only).
const ENV_WEB_HOST: &str = "MPS_WEB_HOST";
/// MPS's default HTTP port.
const DEFAULT_WEB_PORT: u16 = 3000;
/// Log filter when `RUST_LOG` is unset: rumqttd logs an ERROR on every clean disconnect.
const DEFAULT_LOG_FILTER: &str = "info,rumqttd=off";
/// How long the publisher gets to deliver queued events after the server stopped.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the example subscriber may take to connect and subscribe.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long to wait, at exit, for the subscriber to print the last delivered events.
const PRINT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause before the example subscriber reconnects after an error.
const SUBSCRIBER_RETRY: Duration = Duration::from_millis(500);
/// AMT power actions this imitation accepts (a subset of what MPS accepts).
const POWER_ACTIONS: [i64; 7] = [2, 5, 8, 10, 11, 12, 14];
/// The device the printed `curl` line targets.
const DEMO_GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

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
    let printed = match &events.mode {
        Mode::Embedded { broker, topic } => Some(print_events(broker.addr, topic.clone()).await?),
        Mode::External { .. } | Mode::Off => None,
    };

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
    say(format_args!(
        "try: curl -X POST localhost:{port}/api/v1/amt/power/action/{DEMO_GUID} \
         -H 'content-type: application/json' -d '{{\"action\": 8}}'",
        port = local.port()
    ));

    axum::serve(listener, app(seed_devices(), events.layer))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| Failure::Runtime(format!("the HTTP server failed: {e}")))?;

    let report = handle.shutdown(SHUTDOWN_TIMEOUT).await;
    info!(
        delivered = report.delivered,
        undelivered = report.undelivered,
        dropped = report.dropped,
        "MQTT publisher shut down"
    );
    if let Some(mut printed) = printed {
        // The broker forwards what it acknowledged; let the subscriber print it before exit.
        let delivered = report.delivered;
        let all_printed = printed.wait_for(|n| *n >= delivered);
        if tokio::time::timeout(PRINT_TIMEOUT, all_printed)
            .await
            .is_err()
        {
            warn!(
                printed = *printed.borrow(),
                delivered, "not every delivered event reached the example subscriber"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// Where the events go, decided from `MPS_MQTT_ADDRESS`.
struct Events {
    layer: MqttEventLayer,
    mode: Mode,
}

enum Mode {
    /// `MPS_MQTT_ADDRESS` unset or empty: an in-process broker and a printing subscriber.
    Embedded {
        broker: EmbeddedBroker,
        topic: String,
    },
    /// `MPS_MQTT_ADDRESS` names a broker; the text is a `mosquitto_sub` command line.
    External { watch: String },
    /// `MPS_MQTT_ADDRESS` is one of MPS's "off" values (`false`, `0`).
    Off,
}

impl Events {
    fn from_env() -> Result<Self, Failure> {
        let external = std::env::var_os(ENV_ADDRESS)
            .is_some_and(|value| !value.to_string_lossy().trim().is_empty());
        if external {
            let layer = MqttEventLayer::try_from_env()?;
            let handle = layer.handle();
            let mode = match (handle.broker(), handle.topic()) {
                (Some(broker), Some(topic)) => Mode::External {
                    watch: mosquitto_sub_command(broker, topic),
                },
                _ => Mode::Off,
            };
            return Ok(Events { layer, mode });
        }
        // Checks the other MPS_MQTT_* variables before a broker is started for nothing.
        let builder = Builder::from_env()?;
        let broker = EmbeddedBroker::start();
        let layer = builder.address(broker.url()).build()?;
        let topic = layer.handle().topic().unwrap_or_default().to_owned();
        Ok(Events {
            layer,
            mode: Mode::Embedded { broker, topic },
        })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Embedded { broker, topic } => write!(
                f,
                "{ENV_ADDRESS} is unset: publishing to the embedded demo broker at {} on topic \
                 {topic}; received events are printed as `event <topic> <json>`",
                broker.url()
            ),
            Mode::External { watch } => write!(
                f,
                "publishing to the broker in {ENV_ADDRESS}; watch the events with: {watch}"
            ),
            Mode::Off => write!(
                f,
                "{ENV_ADDRESS} turns eventing off: no events are published"
            ),
        }
    }
}

/// `mosquitto_sub -h HOST [-p PORT] -t 'TOPIC/#' -v` for the layer's (redacted) broker.
fn mosquitto_sub_command(address: &str, topic: &str) -> String {
    let url = url::Url::parse(address.trim()).ok();
    let host = match url.as_ref().and_then(url::Url::host) {
        Some(url::Host::Domain(domain)) => domain.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => "HOST".to_owned(),
    };
    let port = match url.and_then(|u| u.port()) {
        Some(port) if port != 1883 => format!(" -p {port}"),
        _ => String::new(),
    };
    format!("mosquitto_sub -h {host}{port} -t '{topic}/#' -v")
}

/// `MPS_WEB_HOST`:`MPS_WEB_PORT`, defaults 127.0.0.1:3000; empty values count as unset.
fn web_addr_from_env() -> Result<SocketAddr, Failure> {
    let host = match std::env::var(ENV_WEB_HOST) {
        Ok(raw) if !raw.trim().is_empty() => raw.trim().parse::<IpAddr>().map_err(|_| {
            Failure::Config(format!(
                "invalid {ENV_WEB_HOST} {raw:?}: expected an IP address such as 127.0.0.1 or \
                 0.0.0.0"
            ))
        })?,
        Ok(_) | Err(std::env::VarError::NotPresent) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Failure::Config(format!(
                "invalid {ENV_WEB_HOST}: the value is not valid UTF-8"
            )));
        }
    };
    let port = match std::env::var(ENV_WEB_PORT) {
        Ok(raw) if !raw.trim().is_empty() => raw.trim().parse::<u16>().map_err(|_| {
            Failure::Config(format!(
                "invalid {ENV_WEB_PORT} {raw:?}: expected a port number from 0 to 65535"
            ))
        })?,
        Ok(_) | Err(std::env::VarError::NotPresent) => DEFAULT_WEB_PORT,
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Failure::Config(format!(
                "invalid {ENV_WEB_PORT}: the value is not valid UTF-8"
            )));
        }
    };
    Ok(SocketAddr::new(host, port))
}

/// Why the example exits early.
#[derive(Debug)]
enum Failure {
    /// A setting cannot be used: exit code 2.
    Config(String),
    /// Something failed at run time: exit code 1.
    Runtime(String),
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Config(_) => ExitCode::from(2),
            Failure::Runtime(_) => ExitCode::FAILURE,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Config(message) | Failure::Runtime(message) => f.write_str(message),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Failure::Config(error.to_string())
    }
}

/// One line on stdout; a closed stdout (`| head`) is not worth a panic.
fn say(line: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

// ---------------------------------------------------------------------------------------------
// Printing subscriber (embedded broker only)

/// Connects to the embedded broker, subscribes to `topic`, waits for the SUBACK, then prints
/// every message in the background. The receiver counts the messages printed.
async fn print_events(broker: SocketAddr, topic: String) -> Result<watch::Receiver<u64>, Failure> {
    let client_id = format!("mps-server-example-subscriber-{}", std::process::id());
    let mut options = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    let (subscribed_tx, subscribed_rx) = oneshot::channel::<Result<(), String>>();
    let (printed_tx, printed_rx) = watch::channel(0_u64);
    let subscription = topic.clone();

    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                // Clean session: subscribe again after every (re)connect.
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Err(e) = client.try_subscribe(subscription.as_str(), QoS::AtLeastOnce) {
                        warn!(error = %e, "example subscriber cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .any(|code| matches!(code, SubscribeReasonCode::Failure));
                    let result = if refused {
                        Err(format!(
                            "the embedded broker refused the subscription to {subscription}"
                        ))
                    } else {
                        Ok(())
                    };
                    if let Some(tx) = subscribed_tx.take() {
                        // `serve` stops waiting after SUBACK_TIMEOUT; then nobody listens.
                        let _ = tx.send(result);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    say(format_args!(
                        "event {} {}",
                        publish.topic,
                        String::from_utf8_lossy(&publish.payload)
                    ));
                    printed_tx.send_modify(|n| *n += 1);
                }
                Ok(_) => {}
                Err(e) => {
                    warn!(error = %e, "example subscriber lost the embedded broker; reconnecting");
                    tokio::time::sleep(SUBSCRIBER_RETRY).await;
                }
            }
        }
    });

    match tokio::time::timeout(SUBACK_TIMEOUT, subscribed_rx).await {
        Ok(Ok(Ok(()))) => Ok(printed_rx),
        Ok(Ok(Err(refused))) => Err(Failure::Runtime(refused)),
        Ok(Err(_)) => Err(Failure::Runtime(
            "the example subscriber stopped before subscribing".to_owned(),
        )),
        Err(_) => Err(Failure::Runtime(format!(
            "the example subscriber got no SUBACK for {topic} from the embedded broker within \
             {SUBACK_TIMEOUT:?}"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Shutdown

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received, shutting down"),
        () = terminate => info!("SIGTERM received, shutting down"),
    }
}

// ---------------------------------------------------------------------------------------------
// The MPS imitation

/// A device as MPS lists it (a subset of its fields).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Device {
    guid: String,
    hostname: Option<String>,
    tags: Vec<String>,
    mpsusername: String,
    connection_status: bool,
    friendly_name: Option<String>,
    tenant_id: String,
    /// The AMT power state `GET /amt/power/state` reports (2 = on, 8 = off).
    #[serde(skip)]
    power_state: u8,
}

/// The body of `POST` and `PATCH /api/v1/devices`; absent fields keep their value.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceInput {
    guid: String,
    hostname: Option<String>,
    tags: Option<Vec<String>>,
    mpsusername: Option<String>,
    connection_status: Option<bool>,
    friendly_name: Option<String>,
    tenant_id: Option<String>,
}

/// Devices by lower-case GUID.
type Store = Arc<RwLock<HashMap<String, Device>>>;

/// Three devices: two connected over CIRA, one not (its AMT routes answer 404, as in MPS).
fn seed_devices() -> Store {
    let device = |guid: &str, hostname: &str, tags: &[&str], connected: bool, power: u8| Device {
        guid: guid.to_owned(),
        hostname: Some(hostname.to_owned()),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        mpsusername: "admin".to_owned(),
        connection_status: connected,
        friendly_name: Some(hostname.to_uppercase()),
        tenant_id: String::new(),
        power_state: power,
    };
    let devices = [
        device(DEMO_GUID, "ws-berlin-042", &["berlin", "floor-3"], true, 2),
        device(
            "d12428be-9fa1-4226-9784-54b2038beab6",
            "kiosk-lobby-01",
            &["kiosk"],
            true,
            8,
        ),
        device(
            "8e1c1d8f-5b3a-4f4e-9f6c-2a7d3c9b0e51",
            "lab-nuc-07",
            &["lab"],
            false,
            2,
        ),
    ];
    Arc::new(RwLock::new(
        devices.into_iter().map(|d| (d.guid.clone(), d)).collect(),
    ))
}

/// The MPS routes this example implements, under `/api/v1`, wrapped in `events`.
fn app(store: Store, events: MqttEventLayer) -> Router {
    Router::new()
        .route(
            "/api/v1/devices",
            get(list_devices).post(create_device).patch(update_device),
        )
        .route("/api/v1/devices/stats", get(device_stats))
        .route(
            "/api/v1/devices/{guid}",
            get(get_device).delete(delete_device),
        )
        .route("/api/v1/amt/version/{guid}", get(amt_version))
        .route("/api/v1/amt/power/state/{guid}", get(power_state))
        .route(
            "/api/v1/amt/power/action/{guid}",
            axum::routing::post(power_action),
        )
        .route("/api/v1/amt/hardwareInfo/{guid}", get(hardware_info))
        .route("/api/v1/amt/features/{guid}", get(amt_features))
        .route("/api/v1/health", get(health))
        .route("/api/v1/version", get(version))
        .fallback(no_route)
        .with_state(store)
        // Once, last: it wraps every route and the fallback and sees the full request path.
        .layer(events)
}

/// An error response in MPS's shape: `{"error": "Not Found", "message": "..."}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    fn unknown_device(guid: &str) -> Self {
        Self::not_found(format!("device {guid} not found"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.status.canonical_reason().unwrap_or("Error");
        (
            self.status,
            Json(json!({ "error": error, "message": self.message })),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON body; malformed JSON or a wrong shape is a 400 with a JSON error body.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

async fn find_device(store: &Store, guid: &str) -> ApiResult<Device> {
    store
        .read()
        .await
        .get(&guid.to_ascii_lowercase())
        .cloned()
        .ok_or_else(|| ApiError::unknown_device(guid))
}

/// The device, if it is known and connected; what MPS's CIRA middleware checks on `/amt/*`.
async fn connected_device(store: &Store, guid: &str) -> ApiResult<Device> {
    let device = find_device(store, guid).await?;
    if device.connection_status {
        Ok(device)
    } else {
        Err(ApiError::not_found(format!(
            "device {guid} is not connected; connect it again using CIRA"
        )))
    }
}

async fn list_devices(State(store): State<Store>) -> Json<Vec<Device>> {
    let mut devices: Vec<Device> = store.read().await.values().cloned().collect();
    devices.sort_by(|a, b| a.guid.cmp(&b.guid));
    Json(devices)
}

async fn device_stats(State(store): State<Store>) -> Json<Value> {
    let devices = store.read().await;
    let connected = devices.values().filter(|d| d.connection_status).count();
    Json(json!({
        "totalCount": devices.len(),
        "connectedCount": connected,
        "disconnectedCount": devices.len() - connected,
    }))
}

async fn get_device(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Device>> {
    find_device(&store, &guid).await.map(Json)
}

async fn create_device(
    State(store): State<Store>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Device>)> {
    let input: DeviceInput = parse_body(&body)?;
    if !is_uuid(&input.guid) {
        return Err(ApiError::bad_request(format!(
            "guid {:?} is not a UUID (8-4-4-4-12 hex digits)",
            input.guid
        )));
    }
    let guid = input.guid.to_ascii_lowercase();
    let mut devices = store.write().await;
    if devices.contains_key(&guid) {
        return Err(ApiError::bad_request(format!(
            "device {guid} already exists"
        )));
    }
    let device = Device {
        guid: guid.clone(),
        hostname: input.hostname,
        tags: input.tags.unwrap_or_default(),
        mpsusername: input.mpsusername.unwrap_or_default(),
        connection_status: input.connection_status.unwrap_or(false),
        friendly_name: input.friendly_name,
        tenant_id: input.tenant_id.unwrap_or_default(),
        power_state: 2,
    };
    devices.insert(guid, device.clone());
    Ok((StatusCode::CREATED, Json(device)))
}

async fn update_device(State(store): State<Store>, body: Bytes) -> ApiResult<Json<Device>> {
    let input: DeviceInput = parse_body(&body)?;
    let mut devices = store.write().await;
    let device = devices
        .get_mut(&input.guid.to_ascii_lowercase())
        .ok_or_else(|| ApiError::unknown_device(&input.guid))?;
    if input.hostname.is_some() {
        device.hostname = input.hostname;
    }
    if let Some(tags) = input.tags {
        device.tags = tags;
    }
    if let Some(user) = input.mpsusername {
        device.mpsusername = user;
    }
    if let Some(connected) = input.connection_status {
        device.connection_status = connected;
    }
    if input.friendly_name.is_some() {
        device.friendly_name = input.friendly_name;
    }
    if let Some(tenant) = input.tenant_id {
        device.tenant_id = tenant;
    }
    Ok(Json(device.clone()))
}

async fn delete_device(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<StatusCode> {
    match store.write().await.remove(&guid.to_ascii_lowercase()) {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::unknown_device(&guid)),
    }
}

async fn amt_version(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(Json(json!({
        "CIM_SoftwareIdentity": { "responses": [
            software_identity("Flash", "16.1.27"),
            software_identity("Netstack", "16.1.27"),
            software_identity("AMTApps", "16.1.27"),
            software_identity("AMT", "16.1.27"),
            software_identity("Sku", "16392"),
            software_identity("Build Number", "2225"),
        ]},
        "AMT_SetupAndConfigurationService": { "response": {
            "ProvisioningMode": 1,
            "ProvisioningState": 2,
            "EnabledState": 5,
        }},
    })))
}

/// One firmware component as `CIM_SoftwareIdentity` lists it.
fn software_identity(id: &str, version: &str) -> Value {
    json!({ "InstanceID": id, "VersionString": version, "IsEntity": true })
}

async fn power_state(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let device = connected_device(&store, &guid).await?;
    Ok(Json(json!({ "powerstate": device.power_state })))
}

/// `{"action": N}`; as in MPS the body is validated before the device is looked up.
async fn power_action(
    State(store): State<Store>,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let body: Value = parse_body(&body)?;
    let action = match body.get("action") {
        None => return Err(ApiError::bad_request("action is required")),
        Some(value) => value.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!("action must be an integer, got {value}"))
        })?,
    };
    if !POWER_ACTIONS.contains(&action) {
        return Err(ApiError::bad_request(format!(
            "action {action} is not supported; expected one of {POWER_ACTIONS:?}"
        )));
    }
    connected_device(&store, &guid).await?;
    if let Some(device) = store.write().await.get_mut(&guid.to_ascii_lowercase()) {
        // Power off (8) and graceful off (12) leave the device off; everything else on.
        device.power_state = if matches!(action, 8 | 12) { 8 } else { 2 };
    }
    Ok(Json(
        json!({ "Body": { "ReturnValue": 0, "ReturnValueStr": "SUCCESS" } }),
    ))
}

async fn hardware_info(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    let device = connected_device(&store, &guid).await?;
    let platform_guid = device.guid.replace('-', "").to_uppercase();
    let dimm = json!({ "Capacity": 8_589_934_592_u64, "Speed": 3200, "MemoryType": 26 });
    Ok(Json(json!({
        "CIM_ComputerSystemPackage": { "response": { "PlatformGUID": platform_guid } },
        "CIM_SystemPackaging": { "responses": [{
            "Manufacturer": "Dell Inc.",
            "Model": "OptiPlex 7090",
            "SerialNumber": "4KB2X53",
        }]},
        "CIM_Chassis": { "response": { "ChassisPackageType": 3, "Manufacturer": "Dell Inc." } },
        "CIM_Processor": { "responses": [{
            "CurrentClockSpeed": 2500,
            "MaxClockSpeed": 8000,
            "HealthState": 5,
        }]},
        "CIM_PhysicalMemory": { "responses": [dimm.clone(), dimm] },
    })))
}

async fn amt_features(
    State(store): State<Store>,
    Path(guid): Path<String>,
) -> ApiResult<Json<Value>> {
    connected_device(&store, &guid).await?;
    Ok(Json(json!({
        "userConsent": "kvm",
        "redirection": true,
        "KVM": true,
        "SOL": true,
        "IDER": true,
        "optInState": 0,
        "kvmAvailable": true,
        "ocr": false,
        "httpsBootSupported": false,
        "winREBootSupported": false,
        "localPBABootSupported": false,
        "remoteErase": false,
    })))
}

async fn health() -> Json<Value> {
    Json(json!({
        "db": { "name": "in-memory", "status": "OK" },
        "secretStore": { "name": "none", "status": "OK" },
    }))
}

async fn version() -> Json<Value> {
    Json(json!({
        "serviceVersion": concat!(env!("CARGO_PKG_VERSION"), " (mps-mqtt-events example)"),
        "protocolVersion": "4.0.0",
    }))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}
