//! `dynamo-bench soak`: hours of the spec's load, with its faults
//! repeating, against one local cluster, checked as it goes.
//!
//! # Generations and windows
//!
//! The soak runs in *generations* of `--generation` (default five
//! minutes) while time is left of `--duration` (wall time). A
//! generation drives the spec's load (open loop, as `run`) on keys of its
//! own (the spec's prefix + `g<n>:`), with the spec's fault schedule drawn
//! again from the spec's seed + n, then heals the faults, makes the final
//! reads of its keys and retires them: no later operation touches them.
//! So each generation's history is complete on its own and is checked as
//! soon as it ends: lost writes and divergence are decided generation by
//! generation, not only at the end, and the checker's memory is one
//! generation's, however long the soak.
//!
//! # What is kept
//!
//! `OUT/generations/<n>/` holds the generation's interval logs and
//! `check.json`; its `history.jsonl` is dropped once the generation and the
//! next one are checked clean (the segments around a finding are kept), so
//! the disk a soak takes stays bounded. `OUT/generations.jsonl` has one
//! line a generation: throughput, errors, latency per operation type, the
//! checker's findings and staleness (also by the second gets began in),
//! faults done. Every `--window` (default one minute) each node's memory,
//! descriptors, threads, CPU and data bytes, as the node reports them in
//! its stats, go to `OUT/windows.jsonl`, and the load's operations, errors
//! and p99 over the window to `OUT/load.jsonl`. A local cluster's nodes log
//! to `OUT/cluster/<node>.log`.
//!
//! # The verdict
//!
//! At the end (or at Ctrl-C) each node's series are judged
//! ([`dynamo_reports::trend`], after the first generation as warm-up):
//! latency per generation, resources per window:
//! memory, descriptors or threads that keep growing are a suspected leak;
//! the data directory's growth is reported with its rate (new keys every
//! generation make it grow); latency drift per operation type likewise.
//! `OUT/soak.json` has it all. Exit status: 0 clean, 1 a finding, a
//! suspected leak or final reads that failed with every fault healed, 2
//! bad input, 3 interrupted before a whole generation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dynamo_core::admin::ProcessFigures;
use dynamo_reports::hlog::HistogramLog;
use dynamo_reports::trend::{judge, Trend, TrendVerdict};
use dynamo_reports::Percentiles;
use serde_json::json;

use crate::driver::{drive, key_name, DriveOptions, Gauge};
use crate::faults::firewall::Firewall;
use crate::run::{
    check_history, existing_cluster, fault_schedule, human_bytes, local_cluster, partitions,
    runtime_stopped_by_interrupt, write_json, RunError, RunRequest,
};
use crate::spec::Spec;
use dynamo_node::sync::Recover;

/// A growth rate this small (a share of the level, per hour) is not a
/// leak, however sure the slope: 1 % an hour is 24 % a day.
pub const LEAK_FLOOR_PER_HOUR: f64 = 0.01;

/// How `soak` was asked to run.
pub struct SoakRequest {
    /// The spec, overrides applied.
    pub spec: Spec,
    /// How long in all (wall time: generations start while there is time
    /// left).
    pub duration: Duration,
    /// One generation of keys: written for this long, then retired.
    pub generation: Duration,
    /// One window: each node's resources are sampled this often.
    pub window: Duration,
    /// The soak directory (default `reports/soaks/<time>-<spec>`).
    pub out: Option<PathBuf>,
    /// An existing cluster's file, instead of a local cluster (faults
    /// through its `[faults]` commands).
    pub cluster_file: Option<PathBuf>,
    /// The binary that runs a node.
    pub node_binary: PathBuf,
    /// Show progress.
    pub progress: bool,
    /// End at the first generation with a finding.
    pub stop_on_violation: bool,
    /// Keep every generation's history, clean or not.
    pub keep_history: bool,
    /// Windows before this are warm-up, not judged (none: the first
    /// generation).
    pub warmup: Option<Duration>,
}

/// What a soak found.
pub struct SoakResult {
    /// The soak directory.
    pub dir: PathBuf,
    /// Generations run to the end.
    pub generations: u64,
    /// Findings of the checker over all generations.
    pub findings: u64,
    /// Suspected leaks, in words.
    pub leaks: Vec<String>,
    /// Final reads that failed with every fault healed (a node that could
    /// not serve reads: a finding of its own).
    pub final_reads_failed: u64,
    /// Ctrl-C stopped it.
    pub interrupted: bool,
}

/// Generation `n`'s spec: its own keys, duration, seed (warm-up only for
/// the first).
fn generation_spec(spec: &Spec, window: Duration, generation: u64) -> Spec {
    let mut spec = spec.clone();
    spec.keys.prefix = format!("{}g{generation}:", spec.keys.prefix);
    spec.load.duration = window;
    if generation > 1 {
        spec.load.warmup = Duration::ZERO;
    }
    spec.seed = spec.seed.wrapping_add(generation - 1);
    spec
}

/// One node sampled in one window: a line of `windows.jsonl`.
#[derive(Clone, Debug, serde::Serialize)]
struct Sample {
    /// Seconds from the soak's start.
    at_s: f64,
    /// The node's name.
    node: String,
    /// Its process figures, from its stats.
    resources: ProcessFigures,
    /// Keys it holds (tombstones included).
    keys: u64,
    /// Hints it holds for other nodes.
    hints_pending: u64,
    /// Tombstones it waits to reap.
    tombstones_held: u64,
    /// Keys it reaped whose other replicas have not all answered.
    reaps_unanswered: u64,
}

/// The load over one window: a line of `load.jsonl`.
#[derive(Clone, Debug, serde::Serialize)]
struct LoadWindow {
    /// Seconds from the soak's start, at the window's end.
    at_s: f64,
    /// The window's length.
    seconds: f64,
    /// Operations completed in it (ok or not), every type together.
    ops: u64,
    /// The same per second.
    ops_per_second: f64,
    /// Of them, errors (timeouts, refusals, failed quorums).
    errors: u64,
    /// Latency from the intended start, p99 (ms), every type together.
    p99_ms: f64,
}

impl LoadWindow {
    /// What `gathered` holds, over the `seconds` up to `at_s`.
    fn of(gathered: &crate::driver::GaugeWindow, at_s: f64, seconds: f64) -> LoadWindow {
        let seconds = seconds.max(1e-9);
        LoadWindow {
            at_s,
            seconds,
            ops: gathered.ops,
            ops_per_second: gathered.ops as f64 / seconds,
            errors: gathered.errors,
            p99_ms: gathered.p99_ms(),
        }
    }
}

/// One series of a soak judged.
#[derive(serde::Serialize)]
struct Judged {
    node: String,
    figure: &'static str,
    #[serde(flatten)]
    trend: Trend,
    /// A leak or drift (growth of memory, descriptors, threads, latency)
    /// rather than expected growth (data).
    counts: bool,
    /// Why growth does not count: `keys` (memory no faster than the keys
    /// the node holds), `allocator` (resident memory growing while what
    /// the program holds allocated does not: the allocator's free space).
    #[serde(skip_serializing_if = "Option::is_none")]
    explained_by: Option<&'static str>,
}

/// Runs the soak.
///
/// # Errors
/// Bad input, a cluster that cannot start, a directory that cannot be
/// written (exit status 2).
pub fn soak(request: SoakRequest) -> Result<SoakResult, RunError> {
    let spec = &request.spec;
    if request.generation.is_zero() || request.duration < request.generation {
        return Err(RunError::Spec(format!(
            "--generation {:?} must be positive and at most --duration {:?}",
            request.generation, request.duration
        )));
    }
    if request.window < Duration::from_secs(1) {
        return Err(RunError::Spec(format!(
            "--window {:.3} s: at least 1 s",
            request.window.as_secs_f64()
        )));
    }
    // At most this many generations fit (each takes at least its load).
    let generations = (request.duration.as_secs_f64() / request.generation.as_secs_f64()).ceil() as u64;
    let started_at = SystemTime::now();
    let dir = request.out.clone().unwrap_or_else(|| {
        PathBuf::from("reports/soaks").join(format!("{}-{}", crate::run::timestamp(started_at), spec.name))
    });
    // Every generation's faults, drawn before anything starts.
    let mut schedules = Vec::new();
    for generation in 1..=generations {
        schedules.push(fault_schedule(
            &generation_spec(spec, request.generation, generation),
            request.cluster_file.as_deref(),
            generation == 1,
        )?);
    }
    let all: Vec<_> = schedules.iter().flatten().cloned().collect();
    let partitioned = match request.cluster_file {
        Some(_) => false,
        None => partitions(spec, &all, request.progress)?,
    };
    let proxied = all.iter().any(|fault| fault.action.kind().is_link());
    std::fs::create_dir_all(dir.join("generations")).map_err(|source| RunError::Io {
        path: dir.clone(),
        source,
    })?;
    let run_request = RunRequest {
        spec: spec.clone(),
        out: Some(dir.clone()),
        cluster_file: request.cluster_file.clone(),
        node_binary: request.node_binary.clone(),
        progress: request.progress,
    };
    let (cluster, proxy) = match &request.cluster_file {
        Some(file) => (existing_cluster(file)?, None),
        None => local_cluster(&run_request, &dir, proxied)?,
    };
    if request.progress {
        eprintln!(
            "soaking {} for {:.0} s: generations of {:.0} s, windows of {:.0} s, at {} ops/s; seed {}",
            spec.name,
            request.duration.as_secs_f64(),
            request.generation.as_secs_f64(),
            request.window.as_secs_f64(),
            spec.load.rate,
            spec.seed
        );
    }
    let (runtime, stop) =
        runtime_stopped_by_interrupt("the generation in flight stops; what ran is checked and reported")?;
    // Each node's name by address, for the tables.
    let names: BTreeMap<String, String> = cluster
        .target
        .nodes
        .iter()
        .map(|(name, addr)| (addr.to_string(), name.clone()))
        .collect();
    let clock = Instant::now();
    // The windows: the load's figures and every node's resources, sampled
    // while the load runs.
    let samples: Arc<std::sync::Mutex<Vec<Sample>>> = Arc::default();
    let loads: Arc<std::sync::Mutex<Vec<LoadWindow>>> = Arc::default();
    let gauge: Arc<Gauge> = Arc::default();
    let findings_so_far: Arc<AtomicU64> = Arc::default();
    {
        let (samples, loads, gauge) = (Arc::clone(&samples), Arc::clone(&loads), Arc::clone(&gauge));
        let findings_so_far = Arc::clone(&findings_so_far);
        let nodes = cluster.target.nodes.clone();
        let (window, names, progress) = (request.window, names.clone(), request.progress);
        runtime.spawn(async move {
            let addrs: Vec<std::net::SocketAddr> = nodes.iter().map(|(_, addr)| *addr).collect();
            let client = dynamo_client::Client::new(addrs.clone(), Duration::from_secs(2));
            let mut tick = tokio::time::interval(window);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            let mut window_start = Instant::now();
            loop {
                tick.tick().await;
                let seconds = window_start.elapsed().as_secs_f64();
                window_start = Instant::now();
                let load = LoadWindow::of(&gauge.take(), clock.elapsed().as_secs_f64(), seconds);
                let mut round = Vec::new();
                for addr in &addrs {
                    if let Ok(stats) = client.stats(*addr).await {
                        round.push(Sample {
                            at_s: clock.elapsed().as_secs_f64(),
                            node: names
                                .get(&addr.to_string())
                                .cloned()
                                .unwrap_or_else(|| addr.to_string()),
                            resources: stats.process,
                            keys: stats.keys,
                            hints_pending: stats.hints_pending,
                            tombstones_held: stats.tombstones_held,
                            reaps_unanswered: stats.reaps_unanswered,
                        });
                    }
                }
                if progress {
                    let largest = |figure: fn(&Sample) -> u64| round.iter().map(figure).max().unwrap_or(0);
                    eprintln!(
                        "soak {:.0} s: {:.0} ops/s, {} errors, p99 {:.2} ms over the last {:.0} s; {} findings so far; \
                         {} of {} nodes answered: largest RSS {}, descriptors {}, threads {}, keys {}, hints pending {}",
                        load.at_s,
                        load.ops_per_second,
                        load.errors,
                        load.p99_ms,
                        load.seconds,
                        findings_so_far.load(Ordering::Relaxed),
                        round.len(),
                        addrs.len(),
                        human_bytes(largest(|sample| sample.resources.rss_bytes) as f64),
                        largest(|sample| sample.resources.open_fds),
                        largest(|sample| sample.resources.threads),
                        largest(|sample| sample.keys),
                        largest(|sample| sample.hints_pending),
                    );
                }
                samples.lock().recover().extend(round);
                loads.lock().recover().push(load);
            }
        });
    }
    let retirer = Arc::new(dynamo_client::Client::new(
        cluster.target.nodes.iter().map(|(_, addr)| *addr).collect(),
        spec.load.timeout,
    ));
    let generations_path = dir.join("generations.jsonl");
    let windows_path = dir.join("windows.jsonl");
    let load_path = dir.join("load.jsonl");
    let mut generation_lines = String::new();
    let firewall = partitioned.then(|| Arc::new(Firewall::new(cluster.target.nodes.clone())));
    let (mut done, mut findings, mut faults_done, mut ops) = (0u64, 0u64, 0u64, 0u64);
    let (mut history_written, mut history_kept) = (0u64, 0u64);
    let mut final_reads_failed = 0u64;
    let mut previous_clean: Option<PathBuf> = None;
    let mut first_generation_end_s = 0.0;
    let mut series: BTreeMap<(String, &'static str), Vec<(f64, f64)>> = BTreeMap::new();
    for (index, faults) in schedules.into_iter().enumerate() {
        let generation = index as u64 + 1;
        if *stop.borrow() || (generation > 1 && clock.elapsed() + request.generation > request.duration) {
            break;
        }
        let generation_spec = generation_spec(spec, request.generation, generation);
        let generation_dir = dir.join("generations").join(format!("{generation:05}"));
        std::fs::create_dir_all(&generation_dir).map_err(|source| RunError::Io {
            path: generation_dir.clone(),
            source,
        })?;
        let history = generation_dir.join("history.jsonl");
        let start_s = clock.elapsed().as_secs_f64();
        let options = DriveOptions {
            progress: false,
            hlog: HistogramLog::start(&generation_dir, SystemTime::now()),
            history: history.clone(),
            stop: stop.clone(),
            faults: cluster.world(faults, firewall.clone(), proxy.clone(), generation_spec.seed),
            gauge: Some(Arc::clone(&gauge)),
        };
        let measured = runtime.block_on(drive(generation_spec.clone(), cluster.target.clone(), options))?;
        let interrupted = *stop.borrow();
        for problem in &measured.fault_problems {
            eprintln!("note: generation {generation}: a fault went wrong: {problem}");
        }
        let (verdict, _, fault_report) = check_history(&history, &generation_spec, false)?;
        write_json(
            &generation_dir.join("check.json"),
            &serde_json::to_value(&verdict).unwrap_or_default(),
        )?;
        let end_s = clock.elapsed().as_secs_f64();
        if generation == 1 {
            first_generation_end_s = end_s;
        }
        // The generation's keys are done with: delete them (outside the
        // checked history), so that once their tombstones are reaped the
        // nodes' keys, memory and data stay level however long the soak.
        let retired = runtime.block_on(retire(&retirer, &generation_spec, cluster.target.n));
        let generation_findings: u64 = verdict.violations.values().sum();
        findings += generation_findings;
        findings_so_far.store(findings, Ordering::Relaxed);
        faults_done += fault_report.windows.len() as u64;
        let generation_ops: u64 = measured.totals.values().map(|pair| pair.intended.len()).sum();
        let errors: u64 = measured.totals.values().map(|pair| pair.errors).sum();
        ops += generation_ops;
        final_reads_failed += measured.final_reads_failed;
        let latency: BTreeMap<&String, Percentiles> = measured
            .totals
            .iter()
            .map(|(op, pair)| (op, Percentiles::of(&pair.intended)))
            .collect();
        let bytes = std::fs::metadata(&history).map_or(0, |metadata| metadata.len());
        history_written += bytes;
        let record = json!({
            "generation": generation,
            "start_s": start_s,
            "end_s": end_s,
            "ops": generation_ops,
            "ops_per_second": generation_ops as f64 / measured.measured_seconds.max(1e-9),
            "errors": errors,
            "latency": latency,
            "valid": verdict.valid,
            "violations": verdict.violations.iter().map(|(invariant, count)| (invariant.name(), *count)).collect::<BTreeMap<_, _>>(),
            "stale_gets": verdict.staleness.stale_gets,
            "gets": verdict.staleness.gets,
            // On the soak's clock: [second's start, gets, stale gets].
            "staleness_by_second": verdict.staleness.by_second.iter()
                .map(|&(second, gets, stale)| json!([start_s + second as f64, gets, stale]))
                .collect::<Vec<_>>(),
            "faults": fault_report.windows.len(),
            "fault_windows": fault_report.windows.iter().map(|window| json!({
                "fault": window.fault,
                "targets": window.targets,
                "start_s": start_s + window.start_ns as f64 / 1e9,
                "end_s": window.end_ns.map(|end| start_s + end as f64 / 1e9),
            })).collect::<Vec<_>>(),
            "retired": retired,
            "final_reads": measured.final_reads,
            "final_reads_failed": measured.final_reads_failed,
            "history_bytes": bytes,
        });
        let _ = writeln!(generation_lines, "{record}");
        std::fs::write(&generations_path, &generation_lines).map_err(|source| RunError::Io {
            path: generations_path.clone(),
            source,
        })?;
        // The windows so far, so a soak that dies leaves them.
        write_lines(&windows_path, &samples.lock().recover())?;
        write_lines(&load_path, &loads.lock().recover())?;
        // Disk: a clean generation's history goes once the next one is
        // clean too; the two around a finding stay.
        if verdict.valid && !request.keep_history {
            if let Some(older) = previous_clean.take() {
                let _ = std::fs::remove_file(&older);
            }
            previous_clean = Some(history.clone());
        } else {
            previous_clean = None;
        }
        if !interrupted {
            done += 1;
        }
        if request.progress {
            let p99 = latency.values().map(|figures| figures.p99_ms).fold(0.0, f64::max);
            let rss = measured
                .node_resources
                .values()
                .map(|figures| figures.rss_bytes)
                .max()
                .unwrap_or(0);
            eprintln!(
                "soak {:.0} s of {:.0} s: generation {generation} of {generations}: {:.0} ops/s, {errors} errors, p99 {p99:.2} ms, \
                 {} findings ({findings} in all), {} faults, {} final reads failed, {} keys retired, largest node RSS {}",
                end_s,
                request.duration.as_secs_f64(),
                generation_ops as f64 / measured.measured_seconds.max(1e-9),
                generation_findings,
                fault_report.windows.len(),
                measured.final_reads_failed,
                retired.deleted,
                human_bytes(rss as f64)
            );
        }
        if interrupted || (request.stop_on_violation && !verdict.valid) {
            if !verdict.valid {
                eprintln!(
                    "generation {generation} has findings: stopping. Kept to reproduce them: its history and the one \
                     before it ({}), its check.json, its faults (fault_windows in {}), its seed {} and the nodes' \
                     logs ({}); check it again with `dynamo-bench check {}`",
                    history.display(),
                    generations_path.display(),
                    generation_spec.seed,
                    if cluster.local.is_some() {
                        dir.join("cluster").join("<node>.log").display().to_string()
                    } else {
                        "on their hosts".to_string()
                    },
                    history.display()
                );
            }
            break;
        }
    }
    cluster.stop();
    // The last window, cut short by the soak's end.
    {
        let mut loads = loads.lock().recover();
        let rest = gauge.take();
        if rest.ops > 0 {
            let at_s = clock.elapsed().as_secs_f64();
            let seconds = at_s - loads.last().map_or(0.0, |last| last.at_s);
            loads.push(LoadWindow::of(&rest, at_s, seconds));
        }
    }
    let samples = std::mem::take(&mut *samples.lock().recover());
    write_lines(&windows_path, &samples)?;
    write_lines(&load_path, &loads.lock().recover())?;
    // Warm-up: the first generation unless asked otherwise. A node warms
    // up again after every restart (a kill): its windows within the
    // warm-up of its own start are not judged either, or every restart
    // would read as growth. A restart shows as its CPU time going back.
    let warmup_s = request
        .warmup
        .map_or(first_generation_end_s, |warmup| warmup.as_secs_f64());
    let mut started_at: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
    let mut restarts: BTreeMap<String, u64> = BTreeMap::new();
    for Sample {
        at_s,
        node,
        resources: figures,
        keys,
        hints_pending,
        tombstones_held,
        reaps_unanswered,
    } in &samples
    {
        let (start, cpu) = started_at.entry(node.as_str()).or_insert((0.0, 0));
        if figures.cpu_ms < *cpu {
            *start = *at_s;
            *restarts.entry(node.clone()).or_default() += 1;
        }
        *cpu = figures.cpu_ms;
        if *at_s - *start < warmup_s {
            continue;
        }
        for (name, value) in [
            ("rss_bytes", figures.rss_bytes),
            ("heap_bytes", figures.heap_bytes),
            // Segments are held open for reads and come and go with the
            // data; every other descriptor (sockets, pipes, the log)
            // should stay level.
            ("other_fds", figures.open_fds.saturating_sub(figures.data_fds)),
            ("data_fds", figures.data_fds),
            ("threads", figures.threads),
            ("data_dir_bytes", figures.data_dir_bytes),
            ("keys", *keys),
            ("hints_pending", *hints_pending),
            ("tombstones_held", *tombstones_held),
            ("reaps_unanswered", *reaps_unanswered),
        ] {
            series
                .entry((node.clone(), name))
                .or_default()
                .push((*at_s, value as f64));
        }
    }
    // Latency drift: each operation type's p99 per window, from the
    // generations' interval logs.
    let records: Vec<serde_json::Value> = generation_lines
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    match dynamo_reports::soak::window_latency(&dir, request.window.as_secs_f64(), &records) {
        Ok(latency) => {
            for (op, windows) in latency {
                series.insert(
                    (format!("op {op}"), "p99_ms"),
                    windows.iter().map(|window| (window.at_s, window.p99_ms)).collect(),
                );
            }
        }
        Err(why) => eprintln!("note: latency per window could not be read back: {why}"),
    }
    // Sampling rounds: the most any node answered.
    let mut answered: BTreeMap<&str, usize> = BTreeMap::new();
    for sample in &samples {
        *answered.entry(sample.node.as_str()).or_default() += 1;
    }
    let windows = answered.values().copied().max().unwrap_or(0);
    for entry in walk_histories(&dir.join("generations")) {
        history_kept += std::fs::metadata(entry).map_or(0, |metadata| metadata.len());
    }
    // The verdicts: after the warm-up.
    let judged: Vec<Judged> = series
        .iter()
        .map(|((node, figure), points)| Judged {
            node: node.clone(),
            figure,
            trend: judge(points, warmup_s, LEAK_FLOOR_PER_HOUR),
            counts: !matches!(*figure, "data_dir_bytes" | "data_fds" | "keys" | "tombstones_held"),
            explained_by: None,
        })
        .collect();
    // Memory grows with the keys a node holds (its key directory): every
    // generation adds keys. So memory is a suspected leak only when it
    // grows faster, relative to its level, than the node's keys do.
    let relative = |judged: &Judged| judged.trend.per_hour / judged.trend.mean.abs().max(f64::MIN_POSITIVE);
    let keys_rate: BTreeMap<String, f64> = judged
        .iter()
        .filter(|judged| judged.figure == "keys")
        .map(|judged| (judged.node.clone(), relative(judged)))
        .collect();
    // What the program holds allocated, per node, when it is not growing.
    let heap_level: BTreeMap<String, bool> = judged
        .iter()
        .filter(|judged| judged.figure == "heap_bytes" && judged.trend.mean > 0.0)
        .map(|judged| (judged.node.clone(), judged.trend.verdict != TrendVerdict::Growing))
        .collect();
    let explained = |judged: &Judged| -> Option<&'static str> {
        if !matches!(judged.figure, "rss_bytes" | "heap_bytes") || judged.trend.verdict != TrendVerdict::Growing {
            return None;
        }
        // The low end of memory's rate, relative, within the keys' rate
        // plus the floor.
        let by_keys = keys_rate.get(&judged.node).is_some_and(|keys| {
            judged.trend.low / judged.trend.mean.abs().max(f64::MIN_POSITIVE) <= keys + LEAK_FLOOR_PER_HOUR
        });
        if by_keys {
            Some("keys")
        } else if judged.figure == "rss_bytes" && heap_level.get(&judged.node) == Some(&true) {
            Some("allocator")
        } else {
            None
        }
    };
    // A count (threads, descriptors, hints) leaks only if it grew by at
    // least one whole unit over the judged windows, at the low end of its
    // interval: a thread count flickering between 6 and 7 has a slope, not
    // a leak.
    let judged_hours = (clock.elapsed().as_secs_f64() - warmup_s).max(0.0) / 3600.0;
    let under_one = |judged: &Judged| {
        judged.trend.verdict == TrendVerdict::Growing
            && !matches!(judged.figure, "rss_bytes" | "heap_bytes" | "p99_ms")
            && judged.trend.low * judged_hours < 1.0
    };
    let judged: Vec<Judged> = judged
        .into_iter()
        .map(|mut judged| {
            judged.explained_by = explained(&judged).or_else(|| under_one(&judged).then_some("under one unit"));
            if judged.explained_by.is_some() {
                judged.counts = false;
            }
            judged
        })
        .collect();
    let leaks: Vec<String> = judged
        .iter()
        .filter(|judged| judged.counts && judged.trend.verdict == TrendVerdict::Growing)
        .map(|judged| {
            format!(
                "{} {} grows {:+.3e} an hour (95 % interval {:.3e} to {:.3e}) on a mean of {:.3e}",
                judged.node,
                judged.figure,
                judged.trend.per_hour,
                judged.trend.low,
                judged.trend.high,
                judged.trend.mean
            )
        })
        .collect();
    let trends: Vec<serde_json::Value> = judged
        .iter()
        .map(|judged| serde_json::to_value(judged).unwrap_or_default())
        .collect();
    let table = dynamo_reports::soak::trend_table(&trends);
    let interrupted = *stop.borrow();
    write_json(
        &dir.join("soak.json"),
        &json!({
            "format": "dynamo-bench soak v1",
            "spec": { "name": spec.name, "path": spec.path.display().to_string() },
            "seed": spec.seed,
            "window_s": request.window.as_secs_f64(),
            "generation_s": request.generation.as_secs_f64(),
            "windows": windows,
            "duration_s": request.duration.as_secs_f64(),
            "generations": done,
            "ops": ops,
            "findings": findings,
            "final_reads_failed": final_reads_failed,
            "faults": faults_done,
            "history_bytes_written": history_written,
            "history_bytes_kept": history_kept,
            "trends": trends,
            "leaks": leaks,
            "warmup_s": warmup_s,
            "restarts": restarts,
            "interrupted": interrupted,
        }),
    )?;
    println!(
        "soak {}: {done} generations, {windows} windows, {ops} operations, {faults_done} faults, {findings} findings, \
         {final_reads_failed} final reads failed",
        spec.name
    );
    println!(
        "history: {} written, {} kept on disk (clean generations' histories dropped)",
        human_bytes(history_written as f64),
        human_bytes(history_kept as f64)
    );
    print!("{}", table.text());
    println!(
        "(after {warmup_s:.0} s of warm-up; GROWING = memory, descriptors, threads, hints or latency rising by at \
         least {:.0} % of its level an hour with the whole 95 % interval above zero, memory faster than the node's keys; \
         rss growing while heap, what the node holds allocated, is flat is the allocator's free space; data and keys grow \
         until each generation's deleted keys are reaped)",
        LEAK_FLOOR_PER_HOUR * 100.0
    );
    let unjudged: Vec<&str> = answered
        .keys()
        .copied()
        .filter(|node| !series.contains_key(&(node.to_string(), "rss_bytes")))
        .collect();
    if !unjudged.is_empty() {
        println!(
            "not judged (no window past the warm-up since its last restart): {}",
            unjudged.join(", ")
        );
    }
    for leak in &leaks {
        println!("suspected leak: {leak}");
    }
    if final_reads_failed > 0 {
        println!(
            "{final_reads_failed} final reads failed with every fault healed: a node could not serve reads (see \
             final_reads_failed in generations.jsonl)"
        );
    }
    match dynamo_reports::soak::write(&dir) {
        Ok(page) => println!("report: {}", page.display()),
        Err(why) => eprintln!("note: the soak report could not be written: {why}"),
    }
    println!("soak directory: {}", dir.display());
    Ok(SoakResult {
        dir,
        generations: done,
        findings,
        leaks,
        final_reads_failed,
        interrupted,
    })
}

/// `windows.jsonl` (one line a node a window), `load.jsonl` (one line a
/// window).
fn write_lines<T: serde::Serialize>(path: &std::path::Path, records: &[T]) -> Result<(), RunError> {
    let mut lines = String::new();
    for record in records {
        let _ = writeln!(lines, "{}", json!(record));
    }
    std::fs::write(path, lines).map_err(|source| RunError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A retired generation's keys, deleted.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct Retired {
    /// Keys deleted.
    deleted: u64,
    /// Keys with nothing live (never written, or checked out).
    absent: u64,
    /// Keys whose read or delete failed (left for anti-entropy; counted).
    failed: u64,
}

/// Operations a retirement keeps in flight.
const RETIRE_IN_FLIGHT: usize = 64;

/// Deletes every live key of a generation: a read from all N replicas
/// (from R when that fails) for the context, then a delete with it.
async fn retire(client: &Arc<dynamo_client::Client>, spec: &Spec, replicas: usize) -> Retired {
    let mut retired = Retired::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut absorb = |outcome: Result<Result<bool, dynamo_client::Error>, tokio::task::JoinError>| match outcome {
        Ok(Ok(true)) => retired.deleted += 1,
        Ok(Ok(false)) => retired.absent += 1,
        _ => retired.failed += 1,
    };
    for index in 0..spec.keys.count {
        while tasks.len() >= RETIRE_IN_FLIGHT {
            if let Some(outcome) = tasks.join_next().await {
                absorb(outcome);
            }
        }
        let key = key_name(&spec.keys.prefix, index, spec.keys.count).into_bytes();
        let client = Arc::clone(client);
        tasks.spawn(async move {
            let got = match client.get(&key, Some(replicas)).await {
                Ok(got) => got,
                Err(_) => client.get(&key, None).await?,
            };
            if got.values.is_empty() {
                return Ok(false);
            }
            client.put(&key, None, &got.context, None).await.map(|()| true)
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        absorb(outcome);
    }
    retired
}

/// The generations' history files still on disk.
fn walk_histories(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().filter_map(Result::ok) {
        let history = entry.path().join("history.jsonl");
        if history.is_file() {
            found.push(history);
        }
    }
    found
}
