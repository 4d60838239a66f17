//! Tests of the process environment run this test binary again as a child with the
//! variables set, since changing the environment of a running multi-threaded test binary is
//! unsound.

use std::ffi::OsStr;
use std::process::{Command, Output};

/// Set in the children [`run_child`] starts.
const CHILD: &str = "MPS_MQTT_EVENTS_TEST_CHILD";

/// Whether this process is such a child: the test then does the child's part.
pub fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs test `name` of this binary in a child process with `vars` set (and every other
/// `MPS_MQTT_*` variable of this process removed); returns its output.
pub fn run_child<V: AsRef<OsStr>>(name: &str, vars: &[(&str, V)]) -> Output {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("MPS_MQTT_") && key != "MPS_MQTT_REQUIRE_MOSQUITTO" {
            command.env_remove(key);
        }
    }
    command
        .env(CHILD, "1")
        .envs(vars.iter().map(|(k, v)| (k, v.as_ref())));
    let out = command.output().expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("running 1 test"),
        "the child ran no test {name:?}: {stdout}"
    );
    out
}

/// What a child printed, for the message of a failed check.
pub fn child_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
