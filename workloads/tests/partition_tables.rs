//! Partition faults leave nothing behind: a bench killed with SIGKILL in
//! the middle of a partition leaves its nft table, `dynamo-bench faults`
//! lists it, and the next run (or `faults --clean`) removes it. Where nft
//! or root is missing, a run with partitions stops before it starts, with
//! one line, exit status 2.
//!
//! Needs root and nft, as in CI: without them these tests fail under CI
//! and, elsewhere, say in one line that they are skipped and why.
#![allow(clippy::unwrap_used)]

mod common;
use common::show;

fn bench() -> Command {
    common::bench_logging("error")
}

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("tables", name)
}

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests share the ruleset (one cleans what another leaves): one at a
/// time.
static RULESET: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    RULESET.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The bench's tables in the ruleset, by name.
fn tables() -> Vec<String> {
    let output = Command::new("nft")
        .args(["list", "tables", "ip"])
        .output()
        .expect("these tests need nft (Debian: apt-get install nftables) and root, as CI has");
    assert!(output.status.success(), "nft needs root here: {}", show(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().strip_prefix("table ip "))
        .filter(|name| name.starts_with("dynamo_bench_"))
        .map(str::to_string)
        .collect()
}

/// A short spec with one partition from `at` for `lasting`.
fn spec(dir: &std::path::Path, duration: &str, at: &str, lasting: &str) -> PathBuf {
    let file = dir.join("partition.toml");
    std::fs::write(
        &file,
        format!(
            r#"name = "partition"
[cluster]
nodes = 3
partitions = 8
[load]
duration = "{duration}"
warmup = "0s"
rate = 50
clients = 4
[keys]
count = 20
[mix]
add = 1
[sla]
max_ms = 600000
[check]
quiet = "0s"
[[faults.events]]
at = "{at}"
kind = "partition"
shape = "isolate"
targets = ["n1"]
for = "{lasting}"
"#
        ),
    )
    .unwrap();
    file
}

#[test]
fn a_table_left_by_a_killed_bench_is_listed_then_removed_by_the_next_run() {
    let _one = one_at_a_time();
    if !common::partitions_here("a_table_left_by_a_killed_bench_is_listed_then_removed_by_the_next_run") {
        return;
    }
    let dir = temp_dir("killed");
    let long = spec(&dir, "60s", "1s", "50s");
    let before = tables();
    let mut child = bench()
        .arg("run")
        .arg(&long)
        .arg("--quiet")
        .arg("--out")
        .arg(dir.join("killed"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ours = format!("dynamo_bench_{pid}_");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tables().iter().any(|table| table.starts_with(&ours)) {
        assert!(Instant::now() < deadline, "the partition never started");
        assert!(child.try_wait().unwrap().is_none(), "the bench exited early");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL: no chance to heal
    child.wait().unwrap();
    let left: Vec<String> = tables().into_iter().filter(|table| table.starts_with(&ours)).collect();
    assert_eq!(left.len(), 1, "the killed bench's table is still up: {left:?}");

    let listed = bench().arg("faults").output().unwrap();
    assert_eq!(listed.status.code(), Some(0), "{}", show(&listed));
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        stdout.contains(&format!("table ip {}  bench pid {pid} is gone", left[0])),
        "{stdout}"
    );

    let short = spec(&dir, "3s", "1s", "1s");
    let next = bench()
        .arg("run")
        .arg(&short)
        .arg("--out")
        .arg(dir.join("next"))
        .output()
        .unwrap();
    assert_eq!(next.status.code(), Some(0), "{}", show(&next));
    let stderr = String::from_utf8_lossy(&next.stderr);
    assert!(stderr.contains(&format!("removed nft table {}", left[0])), "{stderr}");
    let after = tables();
    assert!(
        after.iter().all(|table| before.contains(table)),
        "tables left after a run that healed: {after:?} (before: {before:?})"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn faults_clean_removes_only_tables_whose_bench_is_gone() {
    let _one = one_at_a_time();
    if !common::partitions_here("faults_clean_removes_only_tables_whose_bench_is_gone") {
        return;
    }
    // A pid that no longer runs: a child that has exited and been reaped.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = format!("dynamo_bench_{}_9", gone.id());
    let alive = format!("dynamo_bench_{}_9", std::process::id());
    for table in [&dead, &alive] {
        let made = Command::new("nft")
            .args(["add", "table", "ip", table])
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", show(&made));
    }
    let cleaned = bench().args(["faults", "--clean"]).output().unwrap();
    assert_eq!(cleaned.status.code(), Some(0), "{}", show(&cleaned));
    let stdout = String::from_utf8_lossy(&cleaned.stdout);
    assert!(
        stdout.contains(&format!("table ip {dead}")) && stdout.contains("deleted"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("table ip {alive}")) && stdout.contains("is running: kept"),
        "{stdout}"
    );
    let now = tables();
    assert!(!now.contains(&dead), "{now:?}");
    assert!(now.contains(&alive), "{now:?}");
    let _ = Command::new("nft").args(["delete", "table", "ip", &alive]).output();
}

#[test]
fn partitions_without_nft_or_root_stop_before_the_run_with_one_line_and_exit_two() {
    let _one = one_at_a_time();
    if !common::partitions_here("partitions_without_nft_or_root_stop_before_the_run_with_one_line_and_exit_two") {
        return;
    }
    let dir = temp_dir("preflight");
    let file = spec(&dir, "3s", "1s", "1s");
    let out = dir.join("run");
    let without_nft = bench()
        .env("PATH", "/nonexistent")
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(without_nft.status.code(), Some(2), "{}", show(&without_nft));
    let stderr = String::from_utf8_lossy(&without_nft.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("partition") && stderr.contains("nftables"), "{stderr}");
    assert!(!out.exists(), "a run directory was made for a run that did not start");

    // As nobody (setpriv, util-linux): no root.
    let as_nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_dynamo-bench"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("setpriv (util-linux) runs the bench as another user");
    assert_eq!(as_nobody.status.code(), Some(2), "{}", show(&as_nobody));
    let stderr = String::from_utf8_lossy(&as_nobody.stderr);
    assert!(stderr.contains("partition faults need root"), "{stderr}");
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
