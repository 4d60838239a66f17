//! Headless Chromium, driven over the Chrome DevTools Protocol (CDP): [`Chromium`] starts the
//! browser on a loopback debugging port and kills it on drop; [`Page`] is a CDP session with
//! its one tab, over a plain WebSocket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::output::Output;
use crate::support::{TempDir, find_on_path};

/// Set to `1` (as CI does) to fail instead of skipping when Chromium is not installed.
const REQUIRE_BROWSER: &str = "MPS_MQTT_REQUIRE_BROWSER";
/// Where Debian's package installs the browser.
const DEBIAN_CHROMIUM: &str = "/usr/bin/chromium";
/// How long Chromium gets to print its DevTools address.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the browser's processes get to go after they were killed.
const GROUP_EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often drop checks whether they are gone.
const GROUP_POLL: Duration = Duration::from_millis(20);
/// How long one CDP command may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Messages read while waiting for one reply (events in between are skipped).
const MAX_MESSAGES_PER_CALL: usize = 10_000;
/// What Chromium prints before its DevTools WebSocket address.
const DEVTOOLS: &str = "DevTools listening on ";
/// How often [`Page::wait_for`] evaluates its condition.
pub(crate) const POLL: Duration = Duration::from_millis(50);

/// The Chromium binary, or `None` (after saying so) when it is not installed.
///
/// # Panics
///
/// When it is not installed and `MPS_MQTT_REQUIRE_BROWSER=1`.
pub(crate) fn find() -> Option<PathBuf> {
    let debian = Path::new(DEBIAN_CHROMIUM);
    let found = if debian.is_file() {
        Some(debian.to_path_buf())
    } else {
        find_on_path("chromium")
    };
    if found.is_none() {
        assert!(
            std::env::var(REQUIRE_BROWSER).as_deref() != Ok("1"),
            "chromium not found but {REQUIRE_BROWSER}=1: install it (apt-get install chromium) \
             or unset {REQUIRE_BROWSER} to skip the browser test"
        );
        println!("skipped: chromium not found (apt-get install chromium)");
    }
    found
}

/// A headless Chromium with a fresh profile, killed (by its PID) on drop.
pub(crate) struct Chromium {
    child: Child,
    /// `ws://127.0.0.1:PORT/devtools/browser/ID`.
    pub(crate) debugger: String,
    output: Output,
    // Last: removed after the browser is gone.
    _profile: TempDir,
}

impl Chromium {
    /// Starts `binary` headless on `about:blank` and waits for its DevTools address.
    ///
    /// # Panics
    ///
    /// When it cannot start or prints no address within 20 s.
    pub(crate) fn launch(binary: &Path) -> Chromium {
        let profile = TempDir::new("mps-browser-profile");
        let mut command = Command::new(binary);
        // Its own process group, so that drop can kill its helper processes too.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let (found_tx, found_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let output = Output::collect("chromium", stderr, Some((DEVTOOLS, found_tx)));
        let mut chromium = Chromium {
            child,
            debugger: String::new(),
            output,
            _profile: profile,
        };
        match found_rx.recv_timeout(LAUNCH_TIMEOUT) {
            Ok(line) => {
                chromium.debugger = line.trim_start_matches(DEVTOOLS).to_owned();
            }
            Err(_) => panic!(
                "chromium printed no DevTools address within {LAUNCH_TIMEOUT:?}:\n{}",
                chromium.output.tail()
            ),
        }
        chromium
    }
}

impl Drop for Chromium {
    /// Kills the browser's process group (the browser and its GPU, network and renderer
    /// processes), waits until the group is gone, then the profile is removed: a process
    /// still writing into it would make the removal fail.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        #[cfg(unix)]
        {
            let deadline = Instant::now() + GROUP_EXIT_TIMEOUT;
            let max_polls = GROUP_EXIT_TIMEOUT.as_millis() / GROUP_POLL.as_millis() + 1;
            for _ in 0..max_polls {
                // `kill -0` fails once no process of the group is left.
                let alive = Command::new("kill")
                    .args(["-0", "--", &group])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|status| status.success());
                if !alive || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(GROUP_POLL);
            }
        }
        if std::thread::panicking() {
            eprintln!("chromium's last output:\n{}", self.output.tail());
        }
    }
}

/// A CDP session attached (flat mode) to the browser's one page.
pub(crate) struct Page {
    ws: WebSocketStream<TcpStream>,
    session: String,
    next_id: u64,
}

impl Page {
    /// Connects to `browser`'s DevTools WebSocket and attaches to its `about:blank` page.
    pub(crate) async fn attach(browser: &Chromium) -> Page {
        let host = browser
            .debugger
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(
            host.starts_with("127.0.0.1:"),
            "DevTools must listen on loopback: {}",
            browser.debugger
        );
        let tcp = TcpStream::connect(&host)
            .await
            .unwrap_or_else(|e| panic!("connect to DevTools at {host}: {e}"));
        let (ws, _) = tokio_tungstenite::client_async(browser.debugger.as_str(), tcp)
            .await
            .unwrap_or_else(|e| panic!("DevTools WebSocket handshake: {e}"));
        let mut page = Page {
            ws,
            session: String::new(),
            next_id: 0,
        };
        let targets = page.send(None, "Target.getTargets", json!({})).await;
        let target = targets["targetInfos"]
            .as_array()
            .and_then(|all| all.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .unwrap_or_else(|| panic!("no page target: {targets}"))
            .to_owned();
        let attached = page
            .send(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await;
        page.session = attached["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId: {attached}"))
            .to_owned();
        page
    }

    /// Sends a CDP command to the page and returns its result.
    ///
    /// # Panics
    ///
    /// On a CDP error, or no reply within 15 s.
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.send(Some(&session), method, params).await
    }

    async fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        let exchange = async {
            self.ws
                .send(Message::text(command.to_string()))
                .await
                .unwrap_or_else(|e| panic!("{method}: cannot send: {e}"));
            for _ in 0..MAX_MESSAGES_PER_CALL {
                let message = match self.ws.next().await {
                    Some(Ok(message)) => message,
                    Some(Err(e)) => panic!("{method}: DevTools connection failed: {e}"),
                    None => panic!("{method}: DevTools closed the connection"),
                };
                let Ok(text) = message.to_text() else {
                    continue;
                };
                let reply: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("{method}: reply is not JSON ({e}): {text}"));
                // Events have no id; they are not needed here.
                if reply["id"] != id {
                    continue;
                }
                if let Some(error) = reply.get("error") {
                    panic!("{method}: {error}");
                }
                return reply["result"].clone();
            }
            panic!("{method}: no reply among {MAX_MESSAGES_PER_CALL} messages")
        };
        tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| panic!("{method}: no reply within {CALL_TIMEOUT:?}"))
    }

    /// The value of a JavaScript expression in the page.
    ///
    /// # Panics
    ///
    /// When it throws.
    pub(crate) async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}\nthrew: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Evaluates `expression` every 50 ms until it gives something other than `null` or
    /// `false`, and returns that.
    ///
    /// # Panics
    ///
    /// When `timeout` passes first, naming `what` and the last value.
    pub(crate) async fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let max_polls = timeout.as_millis() / POLL.as_millis() + 1;
        let mut last = Value::Null;
        for _ in 0..max_polls {
            last = self.eval(expression).await;
            if !matches!(last, Value::Null | Value::Bool(false)) {
                return last;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("waited {timeout:?} for {what}; last value {last}")
    }

    /// A PNG of the viewport.
    pub(crate) async fn screenshot(&mut self) -> Vec<u8> {
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        let data = shot["data"].as_str().expect("screenshot data");
        base64_decode(data).expect("screenshot data is base64")
    }
}

/// Standard base64 with padding, as CDP sends binary data; `None` on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let padding = chunk.iter().rev().take_while(|c| **c == b'=').count();
        let mut group = 0_u32;
        for (i, c) in chunk.iter().enumerate() {
            let v = if i >= 4 - padding { 0 } else { value(*c)? };
            group = (group << 6) | v;
        }
        let decoded = group.to_be_bytes();
        out.extend_from_slice(&decoded[1..4 - padding]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("TWFu").as_deref(), Some(&b"Man"[..]));
        assert_eq!(base64_decode("TWE=").as_deref(), Some(&b"Ma"[..]));
        assert_eq!(base64_decode("TQ==").as_deref(), Some(&b"M"[..]));
        assert_eq!(
            base64_decode("iVBORw0KGgo=").as_deref(),
            Some(&b"\x89PNG\r\n\x1a\n"[..])
        );
        assert_eq!(base64_decode("TQ="), None);
        assert_eq!(base64_decode("T!=="), None);
    }
}
