//! Faults on a cluster the bench did not start, through the commands of
//! the cluster file's `[faults]` section: the path a soak of real hosts
//! takes (ssh + systemd + nft there), run here against nodes on loopback
//! started by the file's own `restart` command, with commands that act on
//! their pids and addresses.
#![allow(clippy::unwrap_used)]

mod common;
use common::show;

use std::path::Path;
use std::time::{Duration, Instant};

/// Runs a command as the bench would (`sh -c`), expecting success.
fn sh(command: &str) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .unwrap();
    assert!(status.success(), "{command}: {status}");
}

fn pid(dir: &Path, id: &str) -> u32 {
    std::fs::read_to_string(dir.join(format!("{id}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_soak_of_an_existing_cluster_does_its_faults_through_the_files_commands() {
    let dir = common::temp_dir("remote", "faults");
    let partitions =
        common::partitions_here("a_soak_of_an_existing_cluster_does_its_faults_through_the_files_commands");
    let members = dynamo_node::launcher::free_loopback_members(3).unwrap();
    let bench = env!("CARGO_BIN_EXE_dynamo-bench");
    let table = format!("dynamo_tpl_{}", std::process::id());
    let d = dir.display();
    // The nodes' pids live in DIR/<id>.pid; `restart` starts a node in the
    // background, its output to a log, and records its pid.
    let settings = format!(
        r#"n = 3
r = 2
w = 2
partitions = 16
sync = "batch"
anti_entropy_interval_ms = 200

[faults]
kill = "kill -KILL $(cat {d}/{{id}}.pid)"
restart = "setsid {bench} serve --cluster {d}/cluster.toml --id {{id}} --data {d}/{{id}} >> {d}/{{id}}.log 2>&1 < /dev/null & echo $! > {d}/{{id}}.pid"
pause = "kill -STOP $(cat {d}/{{id}}.pid)"
resume = "kill -CONT $(cat {d}/{{id}}.pid)"
partition = "nft add table ip {table} && nft add chain ip {table} out '{{{{ type filter hook output priority 0 ; }}}}' && nft add rule ip {table} out ip saddr {{host}} ip daddr {{peer_host}} drop"
heal = "nft delete table ip {table} 2>/dev/null; true"
"#
    );
    let cluster = dir.join("cluster.toml");
    let config = dynamo_node::config::ClusterConfig::parse_settings(&cluster, &settings, &members).unwrap();
    config.write(&cluster).unwrap();
    let commands = config.faults.clone().unwrap();
    for member in &config.members {
        sh(&dynamo_node::config::FaultCommands::fill(
            commands.restart.as_deref().unwrap(),
            member,
            None,
        ));
    }
    let up = Instant::now();
    for member in &config.members {
        while std::net::TcpStream::connect(member.addr).is_err() {
            assert!(up.elapsed() < Duration::from_secs(20), "{} did not start", member.name);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let n2_before = pid(&dir, "n2");
    // A spec with one fault of each kind commands can do, in each
    // generation.
    let mut spec = String::from(
        r#"name = "remote"
seed = 5
[cluster]
nodes = 3
n = 3
r = 2
w = 2
[load]
duration = "10s"
warmup = "1s"
rate = 300
clients = 16
max_in_flight = 16
timeout = "2s"
[keys]
count = 400
prefix = "r:"
value_bytes = 128
distribution = "uniform"
[mix]
add = 60
view = 30
checkout = 10
[check]
mode = "eventual"
final_reads = true
quiet = "1s"
[[faults.events]]
at = "2s"
kind = "kill"
targets = ["n2"]
for = "2s"
[[faults.events]]
at = "5s"
kind = "pause"
targets = ["n3"]
for = "1.5s"
"#,
    );
    if partitions {
        spec.push_str("[[faults.events]]\nat = \"8s\"\nkind = \"partition\"\nshape = \"majority\"\nfor = \"1.5s\"\n");
    }
    let spec_path = dir.join("remote.toml");
    std::fs::write(&spec_path, spec).unwrap();
    let out = dir.join("soak");
    let output = common::bench_logging("warn")
        .args([
            "soak",
            spec_path.to_str().unwrap(),
            "--duration",
            "40s",
            "--generation",
            "13s",
        ])
        .args(["--window", "2s", "--cluster"])
        .arg(&cluster)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    // Stop the nodes whatever happened (a paused one must continue first).
    let stop = || {
        for id in ["n1", "n2", "n3"] {
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "kill -CONT $(cat {d}/{id}.pid); kill -KILL $(cat {d}/{id}.pid)"
                ))
                .status();
        }
        if partitions {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "ip", &table])
                .status();
        }
    };
    let soak = std::fs::read_to_string(out.join("soak.json"))
        .map(|text| serde_json::from_str::<serde_json::Value>(&text).unwrap());
    let n2_after = pid(&dir, "n2");
    stop();
    let soak = soak.unwrap_or_else(|_| panic!("no soak.json: {}", show(&output)));
    assert!(soak["generations"].as_u64().unwrap() >= 2, "{}", show(&output));
    assert_eq!(soak["findings"], 0, "{}", show(&output));
    // Every generation did each fault, healed, through the commands.
    let kinds: &[&str] = if partitions {
        &["kill", "pause", "partition"]
    } else {
        &["kill", "pause"]
    };
    for line in std::fs::read_to_string(out.join("generations.jsonl")).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let windows = record["fault_windows"].as_array().unwrap();
        for kind in kinds {
            assert!(
                windows
                    .iter()
                    .any(|window| window["fault"] == *kind && window["end_s"].is_f64()),
                "no healed {kind} in {record}"
            );
        }
    }
    // The history says what ran: the kill command with n2's pid file, the
    // restart that replaced its pid.
    let last = std::fs::read_dir(out.join("generations"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("history.jsonl"))
        .filter(|path| path.is_file())
        .max()
        .unwrap();
    let history = std::fs::read_to_string(last).unwrap();
    assert!(
        history.contains(&format!("ran: kill -KILL $(cat {d}/n2.pid)")),
        "{}",
        show(&output)
    );
    assert!(history.contains("ran: kill -STOP"), "{}", show(&output));
    assert_ne!(n2_before, n2_after, "n2 was not restarted by the restart command");
    // The nodes' figures came from their stats: every node in every window.
    let windows = std::fs::read_to_string(out.join("windows.jsonl")).unwrap();
    for node in ["n1", "n2", "n3"] {
        assert!(
            windows
                .lines()
                .filter(|line| line.contains(&format!("\"node\":\"{node}\"")))
                .count()
                >= 5,
            "{node}: {windows}"
        );
    }
    assert!(out.join("soak.html").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn faults_a_cluster_file_cannot_do_are_refused_before_anything_runs() {
    let dir = common::temp_dir("remote", "refused");
    let members = dynamo_node::launcher::free_loopback_members(3).unwrap();
    let cluster = dir.join("cluster.toml");
    dynamo_node::config::ClusterConfig::parse_settings(
        &cluster,
        "n = 3\nr = 2\nw = 2\n[faults]\nkill = \"true\"\n",
        &members,
    )
    .unwrap()
    .write(&cluster)
    .unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("cart.toml");
    for (faults, expected) in [
        ("kill", "kill faults need [faults] restart in the cluster file"),
        ("disk", "with --cluster only kill, pause and partition"),
    ] {
        let output = common::bench_logging("warn")
            .args([
                "soak",
                spec.to_str().unwrap(),
                "--duration",
                "10s",
                "--generation",
                "5s",
            ])
            .args(["--faults", faults, "--cluster"])
            .arg(&cluster)
            .arg("--out")
            .arg(dir.join(faults))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", show(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected) && stderr.contains("cluster.toml"),
            "{}",
            show(&output)
        );
        assert!(!dir.join(faults).exists(), "{faults}: the soak started");
    }
    // The example shipped for three hosts reads as it is.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster-3-hosts.toml");
    let config = dynamo_node::config::ClusterConfig::load(&example).unwrap();
    let faults = config.faults.unwrap();
    assert!(faults.commands().iter().all(|(_, command)| command.is_some()));
    std::fs::remove_dir_all(&dir).unwrap();
}
