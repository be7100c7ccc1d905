//! A node refuses data it would misread: `serve` on a data directory
//! written under another Q or versioning exits 2 naming both values.
//! (Before, editing `partitions` in cluster.toml silently re-routed every
//! key and turned the hint partition into a data partition.)

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TempDir;
use dynamo_node::config::ClusterConfig;
use dynamo_node::launcher::free_loopback_members;

fn write_cluster(file: &Path, settings: &str) {
    let members = free_loopback_members(1).unwrap();
    ClusterConfig::parse_settings(file, settings, &members)
        .unwrap()
        .write(file)
        .unwrap();
}

fn serve(file: &Path, data: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_dynamo-node"))
        .args(["serve", "--cluster"])
        .arg(file)
        .args(["--id", "n1", "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_node_refuses_data_written_under_another_q_or_versioning() {
    let dir = TempDir::new("identity");
    let file = dir.path().join("cluster.toml");
    let data = dir.path().join("n1");
    write_cluster(&file, "n = 1\nr = 1\nw = 1\npartitions = 8");
    serves_then_stops(&file, &data);

    for (settings, field, values) in [
        ("n = 1\nr = 1\nw = 1\npartitions = 16", "partitions", ["8", "16"]),
        (
            "n = 1\nr = 1\nw = 1\npartitions = 8\nversioning = \"paper\"",
            "versioning",
            ["dvv", "paper"],
        ),
    ] {
        write_cluster(&file, settings);
        let refused = serve(&file, &data);
        let output = wait_with_timeout(refused, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{field}: {stderr}");
        assert!(
            stderr.contains(field) && values.iter().all(|value| stderr.contains(value)),
            "{field}: {stderr}"
        );
    }
    // The original settings still serve.
    write_cluster(&file, "n = 1\nr = 1\nw = 1\npartitions = 8");
    serves_then_stops(&file, &data);
}

/// Starts the node, waits for its ready line, and kills it.
fn serves_then_stops(file: &Path, data: &Path) {
    let mut node = serve(file, data);
    let mut ready = String::new();
    BufReader::new(node.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("ready n1"), "{ready}");
    node.kill().unwrap();
    node.wait().unwrap();
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the node kept running on data it should have refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A cluster file without a secret runs on loopback (with a warning), but
/// is refused, saying how to add one, when a member is beyond loopback:
/// anyone who can reach the port could otherwise send peer messages.
#[test]
fn a_cluster_beyond_loopback_without_a_secret_is_refused_with_the_fix() {
    use dynamo_node::config::Member;
    let dir = TempDir::new("no-secret");
    let file = dir.path().join("cluster.toml");
    let mut members = free_loopback_members(1).unwrap();
    members.push(Member {
        node: dynamo_core::NodeId(1),
        name: "n2".into(),
        // TEST-NET-1 (RFC 5737): never contacted, the node refuses first.
        addr: "192.0.2.10:7002".parse().unwrap(),
        spare: false,
    });
    ClusterConfig::parse_settings(&file, "n = 1\nr = 1\nw = 1\npartitions = 8", &members)
        .unwrap()
        .write(&file)
        .unwrap();
    let output = wait_with_timeout(serve(&file, &dir.path().join("n1")), Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("192.0.2.10") && stderr.contains("secret_file"),
        "{stderr}"
    );
}
