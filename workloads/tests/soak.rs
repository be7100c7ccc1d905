//! `dynamo-bench soak` as a person runs it, shortened: generations of keys
//! checked one by one, windows of node resources, histories of clean
//! generations dropped, trends judged, and the exit status saying so.
#![allow(clippy::unwrap_used)]

mod common;
use common::show;

#[test]
fn a_short_soak_checks_each_generation_samples_the_nodes_and_bounds_its_disk() {
    let dir = std::env::temp_dir().join(format!("dynamo-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cart.toml");
    let output = common::bench_logging("warn")
        .args([
            "soak",
            spec.to_str().unwrap(),
            "--duration",
            "36s",
            "--generation",
            "8s",
            "--window",
            "1s",
        ])
        .args(["--rate", "200", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let soak = common::json(&dir.join("soak.json"));
    // Every generation ran to its end and was checked clean.
    let generations = soak["generations"].as_u64().unwrap();
    assert!(generations >= 2, "{}", show(&output));
    assert_eq!(soak["findings"], 0, "{}", show(&output));
    let records = std::fs::read_to_string(dir.join("generations.jsonl")).unwrap();
    assert_eq!(records.lines().count() as u64, generations);
    for record in records.lines() {
        let record: serde_json::Value = serde_json::from_str(record).unwrap();
        assert_eq!(record["valid"], true, "{record}");
        assert!(record["ops"].as_u64().unwrap() > 1000, "{record}");
        // Its keys were deleted once it was checked (some were checked
        // out by the load itself), and its final reads all answered.
        assert!(record["retired"]["deleted"].as_u64().unwrap() > 0, "{record}");
        assert_eq!(record["retired"]["failed"], 0, "{record}");
        assert_eq!(record["final_reads_failed"], 0, "{record}");
        // Its gets, by the second they began in, on the soak's clock.
        let by_second = record["staleness_by_second"].as_array().unwrap();
        let gets: u64 = by_second.iter().map(|second| second[1].as_u64().unwrap()).sum();
        assert_eq!(gets, record["gets"].as_u64().unwrap(), "{record}");
        let start = record["start_s"].as_f64().unwrap();
        assert!(by_second
            .iter()
            .all(|second| second[0].as_f64().unwrap() >= start && second[2].as_u64() <= second[1].as_u64()));
    }
    // The load, window by window, as it ran: every operation counted once.
    let load: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("load.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(load.len() >= 10, "{} load windows", load.len());
    let counted: u64 = load.iter().map(|window| window["ops"].as_u64().unwrap()).sum();
    let ops = soak["ops"].as_u64().unwrap();
    assert!(
        counted >= ops && counted <= ops * 2,
        "{counted} counted by window, {ops} measured"
    );
    assert!(load
        .iter()
        .all(|window| window["errors"].as_u64().unwrap() <= window["ops"].as_u64().unwrap()));
    // The progress line of each window says so.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.lines().any(|line| line.contains(" ops/s, ")
            && line.contains("p99")
            && line.contains("findings so far")
            && line.contains("largest RSS")),
        "{stderr}"
    );
    // Each node's log, kept beside the run, marks each of its starts.
    let log = std::fs::read_to_string(dir.join("cluster").join("n1.log")).unwrap();
    assert!(log.starts_with("== n1 starting at "), "{log}");
    // Each node sampled about once a second, by name, with its keys.
    let windows = std::fs::read_to_string(dir.join("windows.jsonl")).unwrap();
    for node in ["n1", "n2", "n3", "n4", "n5"] {
        let samples: Vec<serde_json::Value> = windows
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .filter(|sample| sample["node"] == node)
            .collect();
        assert!(samples.len() >= 10, "{node}: {} samples", samples.len());
        assert!(samples
            .iter()
            .all(|sample| sample["resources"]["rss_bytes"].as_u64().unwrap() > 0));
    }
    // Clean generations' histories are dropped but the last two: the disk
    // holds less than was written.
    let written = soak["history_bytes_written"].as_u64().unwrap();
    let kept = soak["history_bytes_kept"].as_u64().unwrap();
    assert!(kept > 0 && kept < written, "kept {kept} of {written}");
    let histories = std::fs::read_dir(dir.join("generations"))
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().join("history.jsonl").is_file())
        .count();
    assert!(histories <= 2, "{histories} histories kept");
    // Trends for every node's figures; the exit status follows the leaks.
    let trends = soak["trends"].as_array().unwrap();
    assert!(trends
        .iter()
        .any(|trend| trend["node"] == "n3" && trend["figure"] == "rss_bytes"));
    let leaks = soak["leaks"].as_array().unwrap();
    assert_eq!(
        output.status.code(),
        Some(if leaks.is_empty() { 0 } else { 1 }),
        "{}",
        show(&output)
    );
    assert!(stdout.contains("soak directory:"), "{stdout}");
    // The report: every node's memory plotted, the trends tabled.
    let page = std::fs::read_to_string(dir.join("soak.html")).unwrap();
    assert!(page.contains("resident memory") && page.contains("<svg"), "{page}");
    assert!(page.contains("Trends") && page.contains("Generations"));
    assert!(page.contains("errors and stale gets per window"), "{page}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_soak_killed_mid_run_leaves_no_node_behind_and_its_report_shows_what_ran() {
    let dir = common::temp_dir("soak", "killed");
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("cart.toml");
    let mut soak = common::bench_logging("warn")
        .args([
            "soak",
            spec.to_str().unwrap(),
            "--duration",
            "10m",
            "--generation",
            "6s",
        ])
        .args(["--window", "1s", "--rate", "200", "--out"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Until the first generation is written, then kill -9 mid-generation.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !dir.join("generations.jsonl").is_file() {
        assert!(std::time::Instant::now() < deadline, "no generation after 120 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    soak.kill().unwrap();
    soak.wait().unwrap();
    // Its nodes die with it (no process serving this soak's data is left).
    let data = dir.join("cluster");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let serving = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| std::fs::read(entry.ok()?.path().join("cmdline")).ok())
            .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(data.to_str().unwrap()))
            .count()
    };
    while serving() > 0 {
        assert!(std::time::Instant::now() < deadline, "nodes outlived the soak");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!dir.join("soak.json").exists());
    // The report reads what it wrote, and says it stopped.
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-bench"))
        .arg("report")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(report.status.success(), "{}", show(&report));
    let page = std::fs::read_to_string(dir.join("soak.html")).unwrap();
    assert!(page.contains("This soak stopped before its end"), "{page}");
    assert!(page.contains("resident memory") && page.contains("<svg"));
    std::fs::remove_dir_all(&dir).unwrap();
}
