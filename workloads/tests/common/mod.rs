//! What the bench's tests share: the binary, scratch directories, and
//! readable failures.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `dynamo-bench` with nodes logging at `log` (`warn`, `error`).
pub fn bench_logging(log: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dynamo-bench"));
    command.env("DYNAMO_LOG", log);
    command
}

/// A fresh scratch directory `dynamo-<suite>-<name>-<pid>` under the
/// system's temporary directory.
pub fn temp_dir(suite: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dynamo-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A finished command's status and both streams, for assertion messages.
pub fn show(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A JSON file of the run directory.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Whether partition faults can be done here (root and nft). Where they
/// cannot: under CI (`CI` set, as `.ci/run` is run) the test fails; on a
/// developer's machine it says in one line that it is skipped and why.
pub fn partitions_here(test: &str) -> bool {
    match dynamo_bench::faults::firewall::preflight() {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => panic!("{test} needs partition faults: {why}"),
        Err(why) => {
            // Straight to stderr, past the test harness's capture: a skip
            // must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {why} (CI runs it, as root with nftables)"
            );
            false
        }
    }
}
