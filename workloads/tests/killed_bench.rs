//! A bench stopped early, as users stop it: Ctrl-C / SIGTERM must stop the
//! load, complete the history, check and report it and stop the nodes;
//! even SIGKILL must leave no node behind and a history that ends at a
//! complete line. (Before, SIGTERM left five `serve` processes holding
//! their ports and data locks, and lost the history's last buffer.)
#![allow(clippy::unwrap_used)]

mod common;

fn temp_dir(name: &str) -> PathBuf {
    common::temp_dir("killed", name)
}

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts a long cart run into `out` and waits until its nodes serve and
/// the history has events.
fn start_run(out: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_dynamo-bench"))
        .env("DYNAMO_LOG", "warn")
        .args(["run", concat!(env!("CARGO_MANIFEST_DIR"), "/cart.toml")])
        .args(["--duration", "120s", "--rate", "200", "--quiet", "--out"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let history = out.join("history.jsonl");
    let started = Instant::now();
    while std::fs::metadata(&history).map_or(0, |meta| meta.len()) == 0 || node_pids(out).len() < 5 {
        assert!(started.elapsed() < Duration::from_secs(60), "the run did not get going");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

/// Pids of the node processes serving data under `out`.
fn node_pids(out: &Path) -> Vec<u32> {
    let needle = out.join("cluster").display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(" serve ") && cmdline.contains(&needle) {
            pids.push(pid);
        }
    }
    pids
}

fn signal(child: &Child, signal: i32) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_for_no_nodes(out: &Path, within: Duration) {
    let started = Instant::now();
    while !node_pids(out).is_empty() {
        assert!(
            started.elapsed() < within,
            "nodes outlived the bench: {:?}",
            node_pids(out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assert_whole_lines(history: &Path) {
    let bytes = std::fs::read(history).unwrap();
    assert!(!bytes.is_empty(), "nothing was recorded");
    assert_eq!(bytes.last(), Some(&b'\n'), "the history ends inside a line");
    for line in bytes.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
        let _: serde_json::Value = serde_json::from_slice(line).unwrap();
    }
}

#[test]
fn sigterm_stops_the_load_completes_checks_and_reports_the_history_and_stops_the_nodes() {
    let out = temp_dir("term");
    let mut bench = start_run(&out);
    std::thread::sleep(Duration::from_secs(2));
    signal(&bench, 15);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = bench.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the bench did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(bench.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    wait_for_no_nodes(&out, Duration::from_secs(5));
    assert_whole_lines(&out.join("history.jsonl"));
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("check.json")).unwrap()).unwrap();
    assert!(check["ops"].as_u64().unwrap() > 0, "{check}");
    assert!(out.join("summary.json").is_file());
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn sigkill_of_the_bench_leaves_no_node_behind_and_a_history_of_whole_lines() {
    let out = temp_dir("kill");
    let mut bench = start_run(&out);
    std::thread::sleep(Duration::from_secs(1));
    bench.kill().unwrap();
    bench.wait().unwrap();
    wait_for_no_nodes(&out, Duration::from_secs(5));
    let history = out.join("history.jsonl");
    if std::fs::metadata(&history).unwrap().len() > 0 {
        assert_whole_lines(&history);
    }
    std::fs::remove_dir_all(&out).unwrap();
}
