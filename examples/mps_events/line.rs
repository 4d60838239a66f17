//! One event as one aligned line: local time, type, methods, guid, message, HTTP status and
//! latency; the type in colour unless turned off.

use std::fmt::Write as _;

use mps_mqtt_events::{Event, EventType};

/// Widths that keep the columns aligned for MPS's names and texts (longer ones overflow).
const TYPE_WIDTH: usize = 7;
const METHODS_WIDTH: usize = 25;
const GUID_WIDTH: usize = 36;
const MESSAGE_WIDTH: usize = 38;

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// Renders events; the UTC offset is read once at startup.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineFormat {
    pub(crate) color: bool,
    /// Seconds east of UTC.
    pub(crate) utc_offset: i64,
}

impl LineFormat {
    /// `04:13:01.123  success  AMT_PowerAction  4c4c…  Power Action requested  200  0.412 ms`
    pub(crate) fn line(&self, event: &Event) -> String {
        let (color, kind) = match event.kind {
            EventType::Success => (GREEN, "success"),
            EventType::Fail => (RED, "fail"),
            EventType::Request => (YELLOW, "request"),
        };
        let methods = if event.methods.is_empty() {
            "-".to_owned()
        } else {
            event.methods.join(",")
        };
        let guid = event.guid.as_deref().unwrap_or("-");
        let mut line = String::with_capacity(160);
        let time = self.time(event.timestamp);
        let _ = write!(line, "{}  ", self.paint(DIM, &time));
        let _ = write!(
            line,
            "{}  ",
            self.paint(color, &format!("{kind:<TYPE_WIDTH$}"))
        );
        let _ = write!(
            line,
            "{methods:<METHODS_WIDTH$}  {guid:<GUID_WIDTH$}  {}",
            event.message
        );
        if let Some(http) = &event.http {
            let pad = MESSAGE_WIDTH.saturating_sub(event.message.chars().count());
            let status = http
                .status
                .map_or_else(|| "---".to_owned(), |s| s.to_string());
            let _ = write!(line, "{:pad$}  {status}  {:>8.3} ms", "", http.latency_ms);
        }
        line
    }

    /// `? <raw>` for a payload that is not an event.
    pub(crate) fn malformed(&self, payload: &[u8]) -> String {
        format!(
            "{} {}",
            self.paint(RED, "?"),
            String::from_utf8_lossy(payload).trim_end()
        )
    }

    /// `HH:MM:SS.mmm` of a Unix time in milliseconds, in local time.
    fn time(&self, timestamp_ms: u64) -> String {
        let ms = i64::try_from(timestamp_ms).unwrap_or(i64::MAX);
        let local = ms.saturating_add(self.utc_offset.saturating_mul(1000));
        let of_day = local.rem_euclid(86_400_000);
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            of_day / 3_600_000,
            of_day / 60_000 % 60,
            of_day / 1000 % 60,
            of_day % 1000
        )
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}
