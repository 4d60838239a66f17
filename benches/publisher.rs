//! Events delivered per second and CPU per event through `MqttEventLayer`, against a plain
//! rumqttc `AsyncClient` loop publishing the same JSON; then delivery latency through the layer.
//!
//! Run with `cargo bench --bench publisher` (about a minute). A quick run:
//! `BENCH_EVENTS_QOS0=20000 BENCH_EVENTS_QOS1=5000 BENCH_ROUNDS=1 BENCH_LATENCY_SECS=1 cargo bench --bench publisher`.
//! `BENCH_MODE=throughput` or `BENCH_MODE=latency` runs one section; `BENCH_RAW_INFLIGHT` sets
//! the raw client's inflight window (default 100, rumqttc's default; the layer uses its own);
//! `BENCH_LAYER_ONLY=1` runs only the layer, for a profiler. `BENCH_MODE=tls` with
//! `--features tls` compares the layer over `mqtts://` with the layer over `mqtt://`.
//!
//! It starts its own Mosquitto (from PATH or /usr/sbin) on a free loopback port, or says why
//! not and exits 0. Throughput: each round runs both variants at QoS 0 and 1, in alternating
//! order; a subscriber in a child process (this binary with `--subscriber`, so its CPU is not
//! counted) reports when the N-th event arrived. Delivered rate = N / (first publish to N-th
//! arrival). CPU = this process's utime + stime (/proc/self/stat) from the first publish until
//! all arrived and, at QoS 1, were acknowledged: request path and publisher task (layer), or
//! serialization, publish loop and event loop (raw). Latency: an in-process subscriber matches
//! each event to its request by the GUID in the request's path.

#[cfg(feature = "tls")]
#[path = "publisher/tls_case.rs"]
mod tls_case;

use std::io::{BufRead, BufReader, Lines};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::{Request, Response, Uri};
use mps_mqtt_events::{Event as MpsEvent, MAX_QUEUE_CAPACITY, MqttEventLayer, Qos};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt, service_fn};

const PATH: &str = "/api/v1/amt/power/action/4c4c4544-004b-4210-8033-b6c04f504633";
const TOPIC: &str = "mps/events/bench";
/// The layer's event for a `POST` on `PATH`; the raw variant sends it with a new id and timestamp.
const TEMPLATE: &str = r#"{"type":"success","message":"Power Action requested","methods":["AMT_PowerAction"],"guid":"4c4c4544-004b-4210-8033-b6c04f504633","timestamp":1764108000123,"id":"1f0e9a7c3b2d4e5f-0","http":{"method":"POST","path":"/api/v1/amt/power/action/:guid","status":200,"latency_ms":0.412}}"#;

fn env_or(name: &str, default: u64) -> u64 {
    let value = std::env::var(name).ok();
    value.and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn since_epoch() -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    now.expect("clock after 1970")
}

fn options(kind: &str, port: u16) -> MqttOptions {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let next = NEXT.fetch_add(1, Ordering::Relaxed);
    let id = format!("bench-{kind}-{}-{next}", std::process::id());
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(10 * 1024, 128 * 1024);
    options
}

/// User + system CPU of this whole process, in clock ticks (fields 14 and 15 of /proc/self/stat).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    let after_name = &stat[stat.rfind(')').expect("(comm)") + 2..]; // starts at field 3
    let fields: Vec<&str> = after_name.split(' ').collect();
    let tick = |i: usize| fields[i].parse::<u64>().expect("tick count");
    tick(11) + tick(12)
}

/// A child process, killed by its pid when dropped (also while a panic unwinds).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("mosquitto"))
        .chain([PathBuf::from("/usr/sbin/mosquitto")])
        .find(|candidate| candidate.is_file())
}

/// Starts Mosquitto on a free loopback port with a config that never drops for a slow reader.
fn start_broker(binary: &PathBuf, extra_listener: &str) -> (Reaped, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    let dir = std::env::temp_dir().join(format!("mps-bench-publisher-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("mosquitto.conf");
    // BENCH_BROKER_NODELAY=1: the broker writes to subscribers without Nagle's delay, so
    // latency measures the publisher rather than the broker's delayed-ACK stalls.
    let nodelay = match std::env::var_os("BENCH_BROKER_NODELAY") {
        Some(_) => "set_tcp_nodelay true\n",
        None => "",
    };
    let text = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
         max_queued_messages 0\nmax_inflight_messages 0\nlog_dest none\n{nodelay}\
         {extra_listener}"
    );
    std::fs::write(&conf, text).expect("write mosquitto.conf");
    let child = Command::new(binary).arg("-c").arg(&conf).spawn();
    let mut broker = Reaped(child.expect("spawn mosquitto"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let running = broker.0.try_wait().expect("mosquitto status").is_none();
        assert!(running && Instant::now() < deadline, "no mosquitto");
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&dir); // read once at startup
    (broker, port)
}

/// `--subscriber PORT TOPIC N`: prints `ready` after SUBACK, then `COUNT EPOCH_NS` at the N-th
/// event, or after 10 s without one.
fn subscriber_main(args: &[String]) {
    let [port, topic, n] = args else {
        panic!("usage: --subscriber PORT TOPIC N")
    };
    let (port, n): (u16, u64) = (port.parse().expect("port"), n.parse().expect("count"));
    let mut runtime = tokio::runtime::Builder::new_current_thread();
    let runtime = runtime.enable_all().build();
    runtime.expect("runtime").block_on(async {
        let (client, mut eventloop) = AsyncClient::new(options("sub", port), 10);
        let subscribed = client.subscribe(topic.as_str(), QoS::AtLeastOnce).await;
        subscribed.expect("subscribe");
        let mut count = 0;
        while count < n {
            let idle = Duration::from_secs(if count == 0 { 60 } else { 10 });
            match tokio::time::timeout(idle, eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => println!("ready"), // stdout: line-buffered
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => count += 1,
                Ok(Ok(_)) => {}
                other => {
                    eprintln!("subscriber stopped: {other:?}");
                    break;
                }
            }
        }
        println!("{count} {}", since_epoch().as_nanos());
    });
}

/// The counting subscriber child, and its output.
struct Subscriber(Reaped, Lines<BufReader<ChildStdout>>);

impl Subscriber {
    /// Returns once it has subscribed.
    fn spawn(port: u16, topic: &str, n: usize) -> Self {
        let exe = std::env::current_exe().expect("path of this bench binary");
        let mut child = Command::new(exe)
            .args(["--subscriber", &port.to_string(), topic, &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn subscriber");
        let lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut subscriber = Self(Reaped(child), lines);
        assert_eq!(subscriber.line(), "ready", "subscriber not ready");
        subscriber
    }

    fn line(&mut self) -> String {
        self.1.next().and_then(Result::ok).unwrap_or_default()
    }

    /// Waits for the N-th arrival and returns when it was, since the epoch.
    fn finish(mut self, n: usize) -> Duration {
        let line = self.line();
        let _ = self.0.0.wait(); // it exits after that line
        let (count, at) = line.split_once(' ').unwrap_or_default();
        assert_eq!(count, n.to_string(), "events the subscriber got");
        Duration::from_nanos(at.parse().expect("arrival time"))
    }
}

/// One measurement: delivered events per second, and CPU µs per event.
#[derive(Clone, Copy)]
struct Sample {
    rate: f64,
    cpu_us: f64,
}

/// Runs `publish` (which returns once every event is delivered or acknowledged), timed from its
/// start to the N-th arrival at `subscriber`.
fn measure(subscriber: Subscriber, n: usize, tck: f64, publish: impl FnOnce()) -> Sample {
    let (first, cpu) = (since_epoch(), cpu_ticks());
    publish();
    let last = subscriber.finish(n);
    let ticks = cpu_ticks() - cpu;
    let seconds = last.saturating_sub(first).as_secs_f64();
    let (rate, cpu_us) = (n as f64 / seconds, ticks as f64 / tck * 1e6 / n as f64);
    Sample { rate, cpu_us }
}

fn request(uri: Uri) -> Request<()> {
    Request::post(uri).body(()).expect("a valid request")
}

/// A layer publishing to `topic`, already connected so that no variant times the CONNECT.
fn layer(rt: &Runtime, to: &Target, topic: &str, qos: Qos, n: usize) -> MqttEventLayer {
    let mut builder = MqttEventLayer::builder().address(&to.address);
    if let Some(ca) = &to.ca_file {
        builder = builder.ca_file(ca);
    }
    let layer = builder
        .topic(topic)
        .qos(qos)
        .queue_capacity(n.clamp(1024, MAX_QUEUE_CAPACITY))
        .build()
        .expect("valid config");
    let handle = layer.handle();
    rt.block_on(async {
        let _ = handle.flush(Duration::from_secs(5)).await; // starts the publisher task
        let deadline = Instant::now() + Duration::from_secs(5);
        while !handle.stats().connected {
            assert!(Instant::now() < deadline, "the layer did not connect");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    layer
}

fn trivial(_: Request<()>) -> std::future::Ready<Result<Response<()>, std::convert::Infallible>> {
    std::future::ready(Ok(Response::new(())))
}

/// Where a layer publishes: the address, and the CA file of a TLS one.
struct Target {
    address: String,
    ca_file: Option<PathBuf>,
}

impl Target {
    fn plain(port: u16) -> Self {
        Self {
            address: format!("mqtt://127.0.0.1:{port}"),
            ca_file: None,
        }
    }
}

/// The layer publishing `n` events to `to`, counted by a subscriber on the plain `port`.
fn run_layer(rt: &Runtime, port: u16, to: &Target, qos: Qos, n: usize, tck: f64) -> Sample {
    let topic = format!("{TOPIC}/layer");
    let subscriber = Subscriber::spawn(port, &topic, n);
    let layer = layer(rt, to, &topic, qos, n);
    let (handle, mut service) = (layer.handle(), layer.layer(service_fn(trivial)));
    let uri = Uri::from_static(PATH);
    let sample = measure(subscriber, n, tck, || {
        rt.block_on(async {
            for _ in 0..n {
                let ready = service.ready().await.expect("infallible");
                ready.call(request(uri.clone())).await.expect("infallible");
            }
            let flushed = handle.flush(Duration::from_secs(120)).await;
            flushed.expect("the layer delivers every event");
        });
    });
    let stats = handle.stats();
    println!("  layer {stats:?}");
    let lost = stats.dropped_queue_full + stats.dropped_closed + stats.failed;
    assert!(lost == 0 && stats.delivered == n as u64, "events lost");
    rt.block_on(handle.shutdown(Duration::from_secs(5)));
    sample
}

fn run_raw(rt: &Runtime, port: u16, qos: QoS, n: usize, inflight: u16, tck: f64) -> Sample {
    let topic = format!("{TOPIC}/raw");
    let subscriber = Subscriber::spawn(port, &topic, n);
    let mut options = options("raw", port);
    options.set_inflight(inflight);
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let (up, is_up) = tokio::sync::oneshot::channel();
    let (mut up, acks) = (Some(up), Arc::clone(&acked));
    let task = rt.spawn(async move {
        // Ends with the error that follows our DISCONNECT.
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Packet::ConnAck(_)) => _ = up.take().map(|up| up.send(())),
                Event::Incoming(Packet::PubAck(_)) => _ = acks.fetch_add(1, Ordering::Relaxed),
                _ => {}
            }
        }
    });
    let up = rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), is_up).await });
    up.expect("raw client connects").expect("event loop");
    let mut event: MpsEvent = serde_json::from_str(TEMPLATE).expect("template event");
    let prefix = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0);
    let sample = measure(subscriber, n, tck, || {
        rt.block_on(async {
            for seq in 0..n {
                event.timestamp = u64::try_from(since_epoch().as_millis()).expect("ms fit");
                event.id = Some(format!("{prefix:016x}-{seq}"));
                let payload = serde_json::to_vec(&event).expect("serializes");
                let sent = client.publish(topic.as_str(), qos, false, payload).await;
                sent.expect("event loop running");
            }
            while qos == QoS::AtLeastOnce && acked.load(Ordering::Relaxed) < n as u64 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    });
    rt.block_on(async {
        let _ = client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    });
    sample
}

/// The layer's and rumqttc's names for QoS `level` (0 or 1).
fn qos(level: u8) -> (Qos, QoS) {
    match level {
        0 => (Qos::AtMostOnce, QoS::AtMostOnce),
        _ => (Qos::AtLeastOnce, QoS::AtLeastOnce),
    }
}

/// `median (min–max)` of `values`.
fn cell(mut values: Vec<f64>, precision: usize) -> String {
    values.sort_by(f64::total_cmp);
    let len = values.len();
    let median = (values[(len - 1) / 2] + values[len / 2]) / 2.0;
    let (min, max) = (values[0], values[len - 1]);
    format!("{median:.precision$} ({min:.precision$}–{max:.precision$})")
}

fn throughput(rt: &Runtime, port: u16, tck: f64) {
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    // For profiling the layer alone (e.g. under `perf record`): no raw runs, no table.
    let layer_only = std::env::var_os("BENCH_LAYER_ONLY").is_some();
    let inflight = u16::try_from(env_or("BENCH_RAW_INFLIGHT", 100)).expect("inflight fits u16");
    let n0 = env_or("BENCH_EVENTS_QOS0", 200_000) as usize;
    let n1 = env_or("BENCH_EVENTS_QOS1", 50_000) as usize;
    let cases = [(0, n0), (1, n1)];
    let size = TEMPLATE.len();
    println!("raw variant: {size}-byte events, inflight {inflight}");
    let mut results: Vec<Vec<(Sample, Sample)>> = vec![Vec::new(); cases.len()];
    for round in 1..=rounds {
        for (case, &(level, n)) in cases.iter().enumerate() {
            let ((qos, raw_qos), layer_first) = (qos(level), round % 2 == 1);
            let first = if layer_first { "layer" } else { "raw" };
            println!("round {round}/{rounds}, QoS {level}, {n} events, {first} first");
            let raw = (!layer_first).then(|| run_raw(rt, port, raw_qos, n, inflight, tck));
            let layer = run_layer(rt, port, &Target::plain(port), qos, n, tck);
            if layer_only {
                continue;
            }
            let raw = raw.unwrap_or_else(|| run_raw(rt, port, raw_qos, n, inflight, tck));
            results[case].push((layer, raw));
        }
    }
    if layer_only {
        return;
    }
    println!("\nthroughput, median (min–max) of {rounds} rounds; CPU = this process's user+sys");
    println!("QoS  variant     events  delivered events/s           CPU µs/event");
    type Pick = fn(&Sample, &Sample) -> (f64, f64);
    let rows: [(&str, Pick, usize); 3] = [
        ("layer", |l, _| (l.rate, l.cpu_us), 0),
        ("raw", |_, r| (r.rate, r.cpu_us), 0),
        (
            "layer/raw",
            |l, r| (l.rate / r.rate, l.cpu_us / r.cpu_us),
            2,
        ),
    ];
    for (case, &(level, n)) in cases.iter().enumerate() {
        for (name, pick, precision) in rows {
            let (rates, cpus) = results[case].iter().map(|(l, r)| pick(l, r)).unzip();
            let (rate, cpu) = (cell(rates, precision), cell(cpus, 2));
            println!("{level:<4} {name:<10} {n:>7}  {rate:<28} {cpu}");
        }
    }
}

/// Delays from request to arrival at an in-process subscriber, sorted; and the event size.
fn latency_case(rt: &Runtime, port: u16, qos: Qos, n: usize, rate: f64) -> (Vec<Duration>, usize) {
    let topic = format!("{TOPIC}/latency");
    let (client, mut eventloop) = AsyncClient::new(options("lat", port), 10);
    let (ready, is_ready) = tokio::sync::oneshot::channel();
    let arrivals = rt.spawn(async move {
        let (mut ready, mut got) = (Some(ready), Vec::with_capacity(n));
        while got.len() < n {
            match tokio::time::timeout(Duration::from_secs(10), eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => _ = ready.take().map(|r| r.send(())),
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => got.push((Instant::now(), p)),
                Ok(Ok(_)) => {}
                _ => break,
            }
        }
        got
    });
    rt.block_on(async {
        let subscribed = client.subscribe(topic.as_str(), QoS::AtLeastOnce).await;
        subscribed.expect("subscribe");
        let subscribed = tokio::time::timeout(Duration::from_secs(5), is_ready).await;
        subscribed.expect("SUBACK").expect("subscriber task");
    });
    let layer = layer(rt, &Target::plain(port), &topic, qos, n);
    let (handle, mut service) = (layer.handle(), layer.layer(service_fn(trivial)));
    let mut sent = Vec::with_capacity(n);
    rt.block_on(async {
        let start = Instant::now();
        while sent.len() < n {
            let due = ((start.elapsed().as_secs_f64() * rate) as usize + 1).min(n);
            while sent.len() < due {
                // The GUID carries the request's number, to match the event to its request.
                let path = format!("{}{:012x}", &PATH[..PATH.len() - 12], sent.len());
                let uri: Uri = path.parse().expect("valid path");
                sent.push(Instant::now());
                let ready = service.ready().await.expect("infallible");
                ready.call(request(uri)).await.expect("infallible");
            }
            std::thread::sleep(Duration::from_micros(100)); // pacing; this thread runs nothing else
        }
        let flushed = handle.flush(Duration::from_secs(30)).await;
        flushed.expect("the layer delivers every event");
    });
    let got = rt.block_on(arrivals).expect("subscriber task");
    let (mut seen, mut delays) = (vec![false; n], Vec::with_capacity(n));
    for (at, publish) in &got {
        let event: MpsEvent = serde_json::from_slice(&publish.payload).expect("an event");
        let guid = event.guid.expect("a guid in the event");
        let seq = usize::from_str_radix(&guid[24..], 16).expect("request number");
        if !std::mem::replace(&mut seen[seq], true) {
            delays.push(at.duration_since(sent[seq]));
        }
    }
    delays.sort();
    rt.block_on(async {
        handle.shutdown(Duration::from_secs(5)).await;
        let _ = client.disconnect().await;
    });
    (delays, got.first().map_or(0, |(_, p)| p.payload.len()))
}

fn latency(rt: &Runtime, port: u16) {
    let seconds = env_or("BENCH_LATENCY_SECS", 3).max(1);
    println!("\nlatency through the layer (request to arrival), {seconds} s per load");
    println!("QoS   events/s  events  received         p50         p99         max");
    for level in [1, 0] {
        for rate in [200, 20_000] {
            let n = (rate * seconds) as usize;
            let (delays, size) = latency_case(rt, port, qos(level).0, n, rate as f64);
            let at = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
            let (got, p50, p99, max) = (delays.len(), at(0.5), at(0.99), at(1.0));
            print!("{level:<4} {rate:>9} {n:>7} {got:>9} {p50:>11.2?} {p99:>11.2?} {max:>11.2?}");
            println!("  ({size}-byte events)");
        }
    }
}

/// The layer over TLS against the layer over plain TCP, alternating, QoS 0 and 1.
#[cfg(feature = "tls")]
fn tls_vs_plain(rt: &Runtime, port: u16, secure: &Target, tck: f64) {
    let rounds = env_or("BENCH_ROUNDS", 3).max(1);
    let cases = [
        (
            Qos::AtMostOnce,
            "0",
            env_or("BENCH_EVENTS_QOS0", 200_000) as usize,
        ),
        (
            Qos::AtLeastOnce,
            "1",
            env_or("BENCH_EVENTS_QOS1", 50_000) as usize,
        ),
    ];
    let plain = Target::plain(port);
    println!("\nlayer over TLS vs plain TCP, median (min–max) of {rounds} rounds");
    println!(
        "QoS  events  TLS events/s     plain events/s   TLS µs/event  plain µs/event  CPU TLS/plain"
    );
    for (qos, level, n) in cases {
        let mut samples = Vec::new();
        for round in 0..rounds {
            let tls_first = round % 2 == 0;
            let first = run_layer(
                rt,
                port,
                if tls_first { secure } else { &plain },
                qos,
                n,
                tck,
            );
            let second = run_layer(
                rt,
                port,
                if tls_first { &plain } else { secure },
                qos,
                n,
                tck,
            );
            samples.push(if tls_first {
                (first, second)
            } else {
                (second, first)
            });
        }
        let col =
            |pick: fn(&(Sample, Sample)) -> f64, p| cell(samples.iter().map(pick).collect(), p);
        println!(
            "{level:<4} {n:>6}  {:<16} {:<16} {:<13} {:<15} {}",
            col(|(t, _)| t.rate, 0),
            col(|(_, p)| p.rate, 0),
            col(|(t, _)| t.cpu_us, 2),
            col(|(_, p)| p.cpu_us, 2),
            col(|(t, p)| t.cpu_us / p.cpu_us, 2),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--subscriber") {
        return subscriber_main(&args[2..]);
    }
    let Some(mosquitto) = find_mosquitto() else {
        println!("skipped: no `mosquitto` on PATH nor at /usr/sbin/mosquitto; install Mosquitto");
        return;
    };
    // BENCH_MODE=tls: a second, TLS listener, and the layer over it against plain.
    #[cfg(feature = "tls")]
    let tls = (std::env::var("BENCH_MODE").as_deref() == Ok("tls")).then(|| {
        let dir = std::env::temp_dir().join(format!("mps-bench-pki-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("PKI dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = port.local_addr().expect("local address").port();
        let (listener, ca_file) = tls_case::tls_listener(&dir, port);
        (listener, port, ca_file)
    });
    #[cfg(feature = "tls")]
    let extra = tls
        .as_ref()
        .map_or("", |(listener, _, _)| listener.as_str());
    #[cfg(not(feature = "tls"))]
    let extra = "";
    let (_broker, port) = start_broker(&mosquitto, extra);
    let getconf = Command::new("getconf").arg("CLK_TCK").output().ok();
    let clk_tck = getconf.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok());
    let tck_note = clk_tck.map_or("unknown, assuming 100".to_owned(), |t: u32| t.to_string());
    let mosquitto = mosquitto.display();
    println!("{mosquitto} on 127.0.0.1:{port}; CLK_TCK {tck_note}");
    let tck = f64::from(clk_tck.unwrap_or(100));
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    let rt = rt.worker_threads(2).enable_all().build().expect("runtime");
    let mode = std::env::var("BENCH_MODE").unwrap_or_default();
    #[cfg(feature = "tls")]
    if let Some((_, tls_port, ca_file)) = tls {
        let secure = Target {
            address: format!("mqtts://127.0.0.1:{tls_port}"),
            ca_file: Some(ca_file),
        };
        return tls_vs_plain(&rt, port, &secure, tck);
    }
    if mode == "tls" {
        println!("BENCH_MODE=tls needs --features tls");
        return;
    }
    if mode != "latency" {
        throughput(&rt, port, tck);
    }
    if mode != "throughput" {
        latency(&rt, port);
    }
}
