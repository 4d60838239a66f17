//! What the example tells its operator: [`say`] writes a line on stdout; a [`Failure`] is why
//! the example exits early, with its exit code.

use std::fmt;
use std::io::Write as _;
use std::process::ExitCode;

use mps_mqtt_events::ConfigError;

/// Why the example exits early.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A setting cannot be used: exit code 2.
    Config(String),
    /// Something failed at run time: exit code 1.
    Runtime(String),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> ExitCode {
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
pub(crate) fn say(line: fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout(), "{line}");
}
