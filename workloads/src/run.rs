//! `dynamo-bench run`: start (or reach) the cluster, drive the workload,
//! check the history, report, and leave a run directory behind.
//!
//! The run directory holds `history.jsonl`, `latency-<op>.hlog` (one
//! HdrHistogram interval log per operation type), `summary.json`,
//! `check.json`, `report.html` (the plots and tables, one self-contained
//! page), and for a local cluster its `cluster/` (cluster file, node
//! data).

use dynamo_core::ring::load_balancing_efficiency;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dynamo_checker::faults::FaultReport;
use dynamo_checker::{Options, Verdict};
use dynamo_node::config::ClusterConfig;
use dynamo_node::launcher::{free_loopback_members, LaunchError, LaunchOptions, LocalCluster};
use dynamo_reports::hlog::HistogramLog;
use dynamo_reports::latency::{rows, text, Row};
use serde_json::json;

use crate::driver::{drive, DriveError, DriveOptions, Measured, Target};
use crate::faults::firewall::{self, Firewall};
use crate::faults::proxy::{Calibration, Fronted, Proxy};
use crate::faults::remote::Remote;
use crate::faults::{Fault, FaultKind, Named, World};
use crate::spec::Spec;
use dynamo_node::sync::Recover;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// How `run` was asked to run.
pub struct RunRequest {
    /// The spec, overrides applied.
    pub spec: Spec,
    /// The run directory (default `reports/runs/<time>-<name>`).
    pub out: Option<PathBuf>,
    /// An existing cluster's file, instead of a local cluster.
    pub cluster_file: Option<PathBuf>,
    /// The binary that runs a node (`<binary> serve ...`).
    pub node_binary: PathBuf,
    /// Show progress.
    pub progress: bool,
}

/// What `run` found.
pub struct RunResult {
    /// The run directory.
    pub dir: PathBuf,
    /// The history is valid.
    pub valid: bool,
    /// The SLA held for every operation type.
    pub sla_met: bool,
    /// SIGINT or SIGTERM stopped the load early: what was recorded was
    /// checked and reported, without final reads.
    pub interrupted: bool,
}

/// Resolves at the first SIGINT or SIGTERM (never, if neither can be
/// watched, which is said once).
async fn interrupt() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            eprintln!("note: cannot watch SIGINT/SIGTERM; an interrupted run will not be reported");
            std::future::pending::<()>().await
        }
    }
}

/// A runtime for the load, and a flag that turns true at the first SIGINT
/// or SIGTERM (saying `what` happens then).
pub(crate) fn runtime_stopped_by_interrupt(
    what: &'static str,
) -> Result<(tokio::runtime::Runtime, tokio::sync::watch::Receiver<bool>), RunError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    runtime.spawn(async move {
        interrupt().await;
        eprintln!("\ninterrupted: {what}");
        let _ = stop_tx.send(true);
    });
    Ok((runtime, stop))
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub(crate) fn timestamp(time: SystemTime) -> String {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// CPU a process has used (from /proc), if it can be read.
fn process_cpu(pid: u32) -> Option<Duration> {
    dynamo_node::process::cpu(Some(pid))
}

/// Why a run could not be made (exit status 2). A run that was made but
/// found violations or missed its SLA is a [`RunResult`], not an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file or directory of the run could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The existing cluster's file is unusable.
    #[error(transparent)]
    ClusterFile(#[from] dynamo_node::config::ConfigError),
    /// The spec's `[cluster]` describes a cluster no node would run.
    #[error("{0}")]
    Spec(String),
    /// The local cluster did not start.
    #[error("the local cluster did not start: {0}")]
    Launch(#[from] LaunchError),
    /// The async runtime could not be built.
    #[error("cannot start the driver's runtime: {0}")]
    Runtime(std::io::Error),
    /// The drive itself failed (cluster unreachable, history unwritable).
    #[error(transparent)]
    Drive(#[from] DriveError),
    /// The recorded history could not be read back.
    #[error(transparent)]
    History(#[from] dynamo_checker::ReadError),
}

/// The cluster a run drives: where its nodes are, and how the run
/// describes it in `summary.json`; a local one is kept here to be stopped.
pub(crate) struct Cluster {
    pub(crate) target: Target,
    pub(crate) description: serde_json::Value,
    pub(crate) local: Option<Arc<Mutex<LocalCluster>>>,
    /// An existing cluster's fault commands (its file's `[faults]`).
    pub(crate) remote: Option<Arc<Remote>>,
}

impl Cluster {
    /// What `faults` act on (none when there are none): the local
    /// cluster's processes, or an existing one's fault commands.
    pub(crate) fn world(
        &self,
        faults: Vec<Fault>,
        firewall: Option<Arc<Firewall>>,
        proxy: Option<Arc<Proxy>>,
        seed: u64,
    ) -> Option<(World, Vec<Fault>)> {
        if faults.is_empty() || (self.local.is_none() && self.remote.is_none()) {
            return None;
        }
        let world = World {
            cluster: self.local.clone(),
            remote: self.remote.clone(),
            firewall: firewall.filter(|_| self.local.is_some()),
            proxy,
            seed,
        };
        Some((world, faults))
    }

    /// Stops a local cluster (nothing for an existing one): says which
    /// nodes did not stop cleanly and where their logs are.
    pub(crate) fn stop(&self) {
        let Some(local) = self.local.as_ref() else {
            return;
        };
        let mut local = local.lock().recover();
        for (name, why) in local.stop() {
            eprintln!("note: node {name} did not stop cleanly: {why}");
        }
        let logs = local.log_files();
        let written: Vec<String> = logs
            .iter()
            .filter(|(_, lines)| *lines > 0)
            .map(|(path, lines)| format!("{} ({lines} lines)", path.display()))
            .collect();
        if !written.is_empty() {
            eprintln!("node logs: {}", written.join(", "));
        } else if let Some((path, _)) = logs.first() {
            eprintln!(
                "node logs: nothing logged at level {} (DYNAMO_LOG) in {}",
                std::env::var("DYNAMO_LOG").unwrap_or_else(|_| "warn".into()),
                path.parent().unwrap_or(path).join("<node>.log").display()
            );
        }
    }
}

/// Runs the whole job.
///
/// # Errors
/// Bad input, a cluster that cannot be started or reached, a run directory
/// that cannot be written: the error says which (exit status 2).
pub fn run(request: RunRequest) -> Result<RunResult, RunError> {
    let spec = &request.spec;
    let started_at = SystemTime::now();
    let dir = request
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports/runs").join(format!("{}-{}", timestamp(started_at), spec.name)));
    let faults = fault_schedule(spec, request.cluster_file.as_deref(), true)?;
    // Partitions on an existing cluster are its file's commands' business.
    let partitioned = match request.cluster_file {
        Some(_) => false,
        None => partitions(spec, &faults, request.progress)?,
    };
    std::fs::create_dir_all(&dir).map_err(|source| RunError::Io {
        path: dir.clone(),
        source,
    })?;
    let proxied = faults.iter().any(|fault| fault.action.kind().is_link());
    let (cluster, proxy) = match &request.cluster_file {
        Some(file) => (existing_cluster(file)?, None),
        None => local_cluster(&request, &dir, proxied)?,
    };
    let cpu = NodeCpu::start(cluster.local.as_deref());
    if request.progress {
        eprintln!(
            "driving {} for {:.0}s (+{:.0}s warm-up) at {} ops/s, {} clients, up to {} in flight; seed {}",
            spec.name,
            spec.load.duration.as_secs_f64(),
            spec.load.warmup.as_secs_f64(),
            spec.load.rate,
            spec.load.clients,
            spec.load.max_in_flight,
            spec.seed
        );
    }
    let history_path = dir.join("history.jsonl");
    let (runtime, stop) = runtime_stopped_by_interrupt(
        "stopping the load; the history is completed, checked and reported, then the nodes stop",
    )?;
    let options = DriveOptions {
        progress: request.progress,
        hlog: HistogramLog::start(&dir, started_at),
        history: history_path.clone(),
        stop: stop.clone(),
        faults: cluster.world(
            faults,
            partitioned.then(|| Arc::new(Firewall::new(cluster.target.nodes.clone()))),
            proxy.clone(),
            spec.seed,
        ),
        gauge: None,
    };
    let measured = runtime.block_on(drive(spec.clone(), cluster.target.clone(), options))?;
    let interrupted = *stop.borrow();
    let node_cpu = cpu.since(cluster.local.as_deref());
    for problem in &measured.fault_problems {
        eprintln!("note: a fault went wrong: {problem}");
    }
    cluster.stop();
    let (verdict, check_seconds, fault_report) = check_history(&history_path, spec, request.progress)?;
    write_json(
        &dir.join("check.json"),
        &serde_json::to_value(&verdict).unwrap_or_default(),
    )?;
    let rows = rows(&measured.totals, measured.measured_seconds, &spec.sla);
    let sla_met = rows.iter().all(|row| row.sla_met);
    let figures = Figures {
        spec,
        cluster: &cluster.description,
        started_at,
        measured: &measured,
        rows: &rows,
        sla_met,
        verdict: &verdict,
        node_cpu: &node_cpu,
        check_seconds,
        faults: &fault_report,
        proxy: proxy.as_ref().map(|proxy| proxy.calibration),
        dir: &dir,
    };
    write_json(&dir.join("summary.json"), &summary_json(&figures))?;
    print!("{}", terminal_report(&figures));
    // The page is a view of the files above: a run whose page cannot be
    // drawn still has them (and `dynamo-bench report` draws it again).
    match dynamo_reports::html::write(&dir) {
        Ok(page) => println!("report: {}", page.display()),
        Err(error) => eprintln!("note: report.html was not written: {error}"),
    }
    if interrupted {
        eprintln!("the run was interrupted: the figures above cover what ran, and lost writes were not judged (no final reads)");
    }
    Ok(RunResult {
        valid: verdict.valid,
        sla_met,
        interrupted,
        dir,
    })
}

/// The run's faults, drawn before anything starts. On a local cluster
/// they act on the processes this bench starts; on an existing one
/// (`cluster_file`) through the file's `[faults]` commands, on its nodes
/// by their ids, and only the kinds those can do (else refused, named).
/// `notes`: say what was left out or not drawn (once, not for every
/// generation of a soak).
pub(crate) fn fault_schedule(spec: &Spec, cluster_file: Option<&Path>, notes: bool) -> Result<Vec<Fault>, RunError> {
    let existing = cluster_file.map(ClusterConfig::load).transpose()?;
    let nodes: Vec<String> = match &existing {
        Some(config) => config
            .members
            .iter()
            .filter(|member| !member.spare)
            .map(|member| member.name.clone())
            .collect(),
        None => (1..=spec.cluster.nodes + spec.cluster.spares)
            .map(|index| format!("n{index}"))
            .collect(),
    };
    let mut faults = spec.fault_schedule(&nodes);
    if let (Some(config), Some(file)) = (&existing, cluster_file) {
        let mut kinds: Vec<FaultKind> = faults.iter().map(|fault| fault.action.kind()).collect();
        kinds.extend(
            spec.faults
                .random
                .iter()
                .flat_map(|random| random.kinds.iter().copied()),
        );
        kinds.sort();
        kinds.dedup();
        for kind in kinds {
            Remote::can_do(config.faults.as_ref(), kind)
                .map_err(|why| RunError::Spec(format!("{}: {why}", file.display())))?;
        }
    }
    let load = spec.load.warmup + spec.load.duration;
    let late: Vec<String> = faults
        .iter()
        .filter(|fault| fault.at >= load)
        .map(|fault| format!("{} at {:.1}s", fault.action.kind().name(), fault.at.as_secs_f64()))
        .collect();
    if !late.is_empty() && notes {
        eprintln!(
            "note: {} fault event(s) start after the load ends ({:.1}s with warm-up) and are left out: {}",
            late.len(),
            load.as_secs_f64(),
            late.join(", ")
        );
    }
    faults.retain(|fault| fault.at < load);
    if let Some(random) = spec.faults.random.as_ref() {
        let drawn = faults.len() - spec.faults.events.iter().filter(|event| event.at < load).count();
        if drawn == 0 && notes {
            eprintln!(
                "note: the random fault schedule drew no fault: the load ({:.0}s with warm-up) leaves no room for one lasting {:.0}s before the last {:.0}s (quiet); run longer or shorten [faults] lasting/quiet",
                load.as_secs_f64(),
                random.lasting.as_secs_f64(),
                random.quiet.as_secs_f64()
            );
        }
    }
    Ok(faults)
}

/// When the schedule has partitions: checks that they can be done here
/// (root, nft) before anything starts, and removes the tables a killed
/// bench left behind. True when a firewall is needed.
pub(crate) fn partitions(spec: &Spec, faults: &[Fault], progress: bool) -> Result<bool, RunError> {
    // Asked for, even when this run's schedule drew none: a spec that
    // needs root fails the same way every time.
    let asked = spec
        .faults
        .random
        .as_ref()
        .is_some_and(|random| random.kinds.contains(&FaultKind::Partition))
        || faults.iter().any(|fault| fault.action.kind() == FaultKind::Partition);
    if !asked {
        return Ok(false);
    }
    firewall::preflight().map_err(|why| RunError::Spec(format!("cannot do partition faults here: {why}")))?;
    match firewall::clean() {
        Ok(removed) => {
            for leftover in removed {
                if progress {
                    eprintln!(
                        "removed nft table {} left by an earlier bench (pid {}) that did not heal it",
                        leftover.table,
                        leftover.pid.map_or("?".to_string(), |pid| pid.to_string())
                    );
                }
            }
        }
        Err(why) => eprintln!("note: cannot look for partition tables left by earlier runs: {why}"),
    }
    Ok(true)
}

/// An existing cluster, from its file.
pub(crate) fn existing_cluster(file: &Path) -> Result<Cluster, RunError> {
    let config = ClusterConfig::load(file)?;
    let nodes = config
        .members
        .iter()
        .map(|member| (member.name.clone(), member.addr))
        .collect();
    let settings = &config.settings;
    let description = json!({
        "kind": "existing",
        "file": file.display().to_string(),
        "nodes": config.members.len(),
        "n": settings.n, "r": settings.r, "w": settings.w,
        "partitions": config.partitions,
        "versioning": format!("{:?}", settings.versioning).to_lowercase(),
        "sync": format!("{:?}", config.sync),
    });
    Ok(Cluster {
        target: Target { nodes, n: settings.n },
        description,
        local: None,
        remote: Remote::of(&config).map(Arc::new),
    })
}

/// A local cluster as the spec asks, started in `dir/cluster`.
pub(crate) fn local_cluster(
    request: &RunRequest,
    dir: &Path,
    proxied: bool,
) -> Result<(Cluster, Option<Arc<Proxy>>), RunError> {
    let spec = &request.spec.cluster;
    let cluster_dir = dir.join("cluster");
    if request.progress {
        eprintln!(
            "starting {} local nodes{} (N={} R={} W={}, Q={}, {} versioning, sync {}) in {}",
            spec.nodes,
            if spec.spares > 0 {
                format!(" and {} spares outside the ring", spec.spares)
            } else {
                String::new()
            },
            spec.n,
            spec.r,
            spec.w,
            spec.partitions,
            spec.versioning,
            spec.sync,
            cluster_dir.display()
        );
    }
    let mut members = free_loopback_members(spec.nodes + spec.spares)?;
    for member in &mut members[spec.nodes..] {
        member.spare = true;
    }
    let config = request.spec.cluster_config(members).map_err(RunError::Spec)?;
    let (local, proxy) = if proxied {
        // The cluster file names the proxy's listeners; each node listens
        // on another port of its own address.
        let listen: Vec<SocketAddr> = free_loopback_members(spec.nodes + spec.spares)?
            .iter()
            .map(|member| member.addr)
            .collect();
        let fronted = config
            .members
            .iter()
            .zip(&listen)
            .map(|(member, listen)| Fronted {
                name: member.name.clone(),
                advertised: member.addr,
                listen: *listen,
            })
            .collect();
        let proxy =
            Proxy::start(fronted).map_err(|error| RunError::Spec(format!("starting the link proxy: {error}")))?;
        if request.progress {
            eprintln!("{}", proxy.calibration.text());
        }
        let options = LaunchOptions {
            listen,
            log_files: true,
            ..LaunchOptions::default()
        };
        let local = LocalCluster::start_with(&request.node_binary, &cluster_dir, config, options)?;
        (local, Some(Arc::new(proxy)))
    } else {
        let options = LaunchOptions {
            log_files: true,
            ..LaunchOptions::default()
        };
        (
            LocalCluster::start_with(&request.node_binary, &cluster_dir, config, options)?,
            None,
        )
    };
    let nodes = local
        .config()
        .members
        .iter()
        .map(|member| (member.name.clone(), member.addr))
        .collect();
    let description = json!({
        "kind": "local",
        "file": local.file().display().to_string(),
        "nodes": spec.nodes,
        "spares": spec.spares,
        "n": spec.n, "r": spec.r, "w": spec.w,
        "partitions": spec.partitions,
        "versioning": spec.versioning,
        "sync": spec.sync,
        // The spec's settings as written (null: the node's default).
        "batch_interval_ms": spec.batch_interval_ms,
        "segment_bytes": spec.segment_bytes,
        "sloppy_quorum": spec.sloppy_quorum,
        "read_repair": spec.read_repair,
        "request_timeout_ms": spec.request_timeout_ms,
        "anti_entropy_interval_ms": spec.anti_entropy_interval_ms,
        "tombstone_grace_ms": spec.tombstone_grace_ms,
        "hint_age_max_ms": spec.hint_age_max_ms,
    });
    let cluster = Cluster {
        target: Target { nodes, n: spec.n },
        description,
        local: Some(Arc::new(Mutex::new(local))),
        remote: None,
    };
    Ok((cluster, proxy))
}

/// The local nodes' CPU time at the start of the load.
struct NodeCpu(Vec<Option<Duration>>);

impl NodeCpu {
    fn read(cluster: Option<&Mutex<LocalCluster>>) -> Vec<Option<Duration>> {
        match cluster.map(|cluster| cluster.lock().recover()) {
            Some(cluster) => (0..cluster.config().members.len())
                .map(|index| cluster.pid(index).and_then(process_cpu))
                .collect(),
            None => Vec::new(),
        }
    }

    fn start(cluster: Option<&Mutex<LocalCluster>>) -> NodeCpu {
        NodeCpu(Self::read(cluster))
    }

    /// CPU seconds each node used since the start (NaN where unknown).
    fn since(&self, cluster: Option<&Mutex<LocalCluster>>) -> Vec<f64> {
        Self::read(cluster)
            .into_iter()
            .enumerate()
            .map(|(index, end)| match (self.0.get(index).copied().flatten(), end) {
                (Some(start), Some(end)) => end.saturating_sub(start).as_secs_f64(),
                _ => f64::NAN,
            })
            .collect()
    }
}

/// Reads the history back and checks it in the spec's mode; returns the
/// verdict, the seconds it took and what the faults did to availability.
pub(crate) fn check_history(path: &Path, spec: &Spec, progress: bool) -> Result<(Verdict, f64, FaultReport), RunError> {
    if progress {
        eprintln!("checking {}", path.display());
    }
    let started = std::time::Instant::now();
    let mut line = crate::progress::Line::on_terminal();
    let history = dynamo_checker::read_file_with(path, &mut |done, total| {
        if progress {
            line.show(format_args!(
                "reading the history: {:.0}%",
                done as f64 * 100.0 / total.max(1) as f64
            ));
        }
    })?;
    let options = Options {
        mode: spec.check.mode,
        ..Options::default()
    };
    let verdict = dynamo_checker::check_with(&history, &options, &mut |done, total| {
        if progress {
            line.show(format_args!(
                "judging: {:.0}% of {total} operations",
                done as f64 * 100.0 / total.max(1) as f64
            ));
        }
    });
    line.clear();
    Ok((
        verdict,
        started.elapsed().as_secs_f64(),
        dynamo_checker::faults::report(&history),
    ))
}

pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(path, text + "\n").map_err(|source| RunError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Everything a run's reports are made of.
struct Figures<'a> {
    spec: &'a Spec,
    cluster: &'a serde_json::Value,
    started_at: SystemTime,
    measured: &'a Measured,
    rows: &'a [Row],
    sla_met: bool,
    verdict: &'a Verdict,
    node_cpu: &'a [f64],
    check_seconds: f64,
    faults: &'a FaultReport,
    /// The link proxy's own cost, when it stood between the nodes.
    proxy: Option<Calibration>,
    dir: &'a Path,
}

fn one_version_share(versions: &std::collections::BTreeMap<usize, u64>) -> Option<f64> {
    let found: u64 = versions
        .iter()
        .filter(|(count, _)| **count > 0)
        .map(|(_, gets)| gets)
        .sum();
    (found > 0).then(|| versions.get(&1).copied().unwrap_or(0) as f64 / found as f64)
}

fn summary_json(figures: &Figures<'_>) -> serde_json::Value {
    let Figures {
        spec,
        cluster,
        started_at,
        measured,
        rows,
        sla_met,
        verdict,
        node_cpu,
        check_seconds,
        faults,
        ..
    } = *figures;
    let requests: Vec<u64> = measured.node_requests.values().copied().collect();
    let wall = measured.wall.as_secs_f64();
    json!({
        "format": "dynamo-bench summary v1",
        "spec": { "name": spec.name, "path": spec.path.display().to_string(), "description": spec.description },
        "versions": { "dynamo-bench": env!("CARGO_PKG_VERSION") },
        "started_at_unix_s": started_at.duration_since(UNIX_EPOCH).map(|since| since.as_secs_f64()).unwrap_or(0.0),
        "seed": spec.seed,
        "cluster": cluster,
        "load": {
            "duration_s": spec.load.duration.as_secs_f64(),
            "warmup_s": spec.load.warmup.as_secs_f64(),
            "target_rate": spec.load.rate,
            "clients": spec.load.clients,
            "max_in_flight": spec.load.max_in_flight,
            "timeout_ms": spec.load.timeout.as_millis() as u64,
            "routing": spec.load.routing.name(),
            "keys": spec.keys.count,
            "value_bytes": spec.keys.value_bytes,
            "distribution": format!("{:?}", spec.keys.distribution),
            "mix": spec.mix.iter().map(|(kind, weight)| (kind.name().to_string(), json!(weight))).collect::<serde_json::Map<_, _>>(),
        },
        "throughput": {
            "measured_s": measured.measured_seconds,
            "operations": rows.iter().filter(|row| row.op != "all").map(|row| row.intended.count).sum::<u64>(),
            "ops_per_second": rows.iter().filter(|row| row.op != "all").map(|row| row.ops_per_second).sum::<f64>(),
            "scheduled_including_warmup": measured.scheduled,
        },
        "latency": rows,
        "sla": { "percentile": spec.sla.percentile, "max_ms": spec.sla.max_ms, "met": sla_met },
        "driver": {
            "cpu_s": measured.cpu.as_secs_f64(),
            "cpu_share_of_one_core": if wall > 0.0 { measured.cpu.as_secs_f64() / wall } else { 0.0 },
            "lag_max_ms": measured.lag_max.as_secs_f64() * 1000.0,
            "operations_issued_late": measured.lagged_operations,
            "operations_queued_for_a_client": measured.queued_operations,
            "latencies_clamped": measured.clamped,
        },
        "nodes": {
            "requests": measured.node_requests,
            "load_balancing_efficiency": load_balancing_efficiency(&requests),
            "cpu_s": node_cpu,
        },
        "versions_per_read": {
            "histogram": measured.versions_per_read.iter().map(|(count, gets)| (count.to_string(), json!(gets))).collect::<serde_json::Map<_, _>>(),
            "one_version_share": one_version_share(&measured.versions_per_read),
        },
        "final_reads": measured.final_reads,
        "final_reads_failed": measured.final_reads_failed,
        "keys_touched": measured.keys_touched,
        "repair": measured.repair,
        "node_resources": measured.node_resources,
        "cart": measured.cart,
        "faults": {
            "windows": faults.windows.iter().map(|window| json!({
                "fault": window.fault,
                "targets": window.targets,
                "start_s": window.start_ns as f64 / 1e9,
                "end_s": window.end_ns.map(|end| end as f64 / 1e9),
                "detail": window.detail,
                "outcomes": window.outcomes,
                "latency": window.latency,
                "recovery": window.recovery,
            })).collect::<Vec<_>>(),
            "during": { "outcomes": faults.during, "ok_share": faults.during.ok_share() },
            "outside": {
                "outcomes": faults.outside,
                "ok_share": faults.outside.ok_share(),
                "latency": faults.outside_latency,
            },
            "by_kind": faults.by_kind,
            "proxy": figures.proxy,
        },
        "check": {
            "valid": verdict.valid,
            "mode": verdict.mode,
            "violations": verdict.violations,
            "seconds": check_seconds,
            "staleness": { "fresh_fraction": verdict.staleness.fresh_fraction, "k": verdict.staleness.k, "t_visibility_ms": verdict.staleness.t_visibility_ms },
        },
    })
}

fn terminal_report(figures: &Figures<'_>) -> String {
    let Figures {
        spec,
        measured,
        rows,
        sla_met,
        verdict,
        node_cpu,
        faults,
        dir,
        ..
    } = *figures;
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} — {:.1}s measured, seed {}",
        spec.name, measured.measured_seconds, spec.seed
    );
    out.push_str(&text(rows, &spec.sla));
    let _ = writeln!(
        out,
        "SLA p{} <= {} ms: {}",
        spec.sla.percentile,
        spec.sla.max_ms,
        if sla_met { "met" } else { "MISSED" }
    );
    let wall = measured.wall.as_secs_f64();
    let cpu_share = if wall > 0.0 {
        measured.cpu.as_secs_f64() / wall * 100.0
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "driver: {:.0}% of one core; scheduler late by up to {:.1} ms ({} operations issued more than 10 ms late); {} operations waited for a free client",
        cpu_share,
        measured.lag_max.as_secs_f64() * 1000.0,
        measured.lagged_operations,
        measured.queued_operations
    );
    if measured.lagged_operations > 0 {
        let _ = writeln!(
            out,
            "warning: the driver fell behind its schedule; latencies still count from the intended start, but the offered rate was not kept"
        );
    }
    let requests: Vec<u64> = measured.node_requests.values().copied().collect();
    let nodes: Vec<String> = measured
        .node_requests
        .iter()
        .enumerate()
        .map(|(index, (name, count))| match node_cpu.get(index) {
            Some(cpu) if cpu.is_finite() => format!("{name} {count} ({cpu:.1} s CPU)"),
            _ => format!("{name} {count}"),
        })
        .collect();
    let efficiency = match load_balancing_efficiency(&requests) {
        Some(efficiency) => format!("{efficiency:.3}"),
        None => "n/a (no requests)".to_string(),
    };
    let _ = writeln!(
        out,
        "load balance: efficiency {efficiency} (mean over busiest node); requests {}",
        nodes.join(", ")
    );
    let repair = &measured.repair;
    let _ = writeln!(
        out,
        "repair (node counters, {} nodes; a restarted node counts from its restart): {} read repairs, {} handoffs; anti-entropy {} exchanges ({} of trees), {} keys repaired, {} tombstones reaped",
        repair.nodes,
        repair.read_repairs,
        repair.handoffs,
        repair.exchanges,
        human_bytes(repair.exchange_bytes as f64),
        repair.entropy_repairs,
        repair.tombstones_reaped
    );
    let resources: Vec<String> = measured
        .node_resources
        .iter()
        .map(|(addr, figures)| {
            format!(
                "{addr} {} RSS, {} fds ({} data files, {} sockets), {} threads, {} data",
                human_bytes(figures.rss_bytes as f64),
                figures.open_fds,
                figures.data_fds,
                figures.socket_fds,
                figures.threads,
                human_bytes(figures.data_dir_bytes as f64)
            )
        })
        .collect();
    if !resources.is_empty() {
        let _ = writeln!(out, "nodes at the end: {}", resources.join("; "));
    }
    if measured.final_reads_failed > 0 {
        let _ = writeln!(
            out,
            "warning: {} of {} final reads failed with every fault healed: a node could not serve reads (the checker \
             cannot judge its copies of those keys)",
            measured.final_reads_failed, measured.final_reads
        );
    }
    let versions: Vec<String> = measured
        .versions_per_read
        .iter()
        .map(|(count, gets)| format!("{count}: {gets}"))
        .collect();
    let _ = writeln!(
        out,
        "versions per read: {}{}",
        versions.join(", "),
        one_version_share(&measured.versions_per_read)
            .map(|share| format!(
                " ({:.3}% of reads that found the key saw exactly one version)",
                share * 100.0
            ))
            .unwrap_or_default()
    );
    if let Some(cart) = &measured.cart {
        let _ = writeln!(
            out,
            "cart: {} acknowledged adds; {} missing from the final carts (must be 0); {} deleted items came back (the paper's known anomaly, reported only); {} carts judged",
            cart.adds_acknowledged, cart.adds_missing, cart.deleted_items_returned, cart.carts_judged
        );
        for (key, item) in &cart.missing_examples {
            let _ = writeln!(out, "  missing: {item} in {key}");
        }
    }
    out.push_str(&dynamo_reports::check_text::faults(faults));
    if let Some(calibration) = figures.proxy {
        let _ = writeln!(out, "{}", calibration.text());
    }
    let _ = writeln!(out);
    out.push_str(&dynamo_reports::check_text::verdict(verdict));
    let _ = writeln!(out);
    let _ = writeln!(out, "run directory: {}", dir.display());
    out
}

/// Bytes as a person reads them: `812 B`, `3.4 KiB`, `1.2 MiB`, `5.0 GiB`.
pub(crate) fn human_bytes(bytes: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_civil_time() {
        assert_eq!(timestamp(UNIX_EPOCH), "19700101-000000");
        // 2026-11-26 22:13:24 UTC.
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(1_795_731_204)),
            "20261126-221324"
        );
        // 2000-02-29 12:00:00 UTC.
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_825_600)),
            "20000229-120000"
        );
    }

    #[test]
    fn bytes_read_as_a_person_reads_them() {
        assert_eq!(super::human_bytes(812.0), "812 B");
        assert_eq!(super::human_bytes(3.5 * 1024.0), "3.5 KiB");
        assert_eq!(super::human_bytes(1.25 * 1024.0 * 1024.0), "1.2 MiB");
        assert_eq!(
            super::human_bytes(5.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
            "5120.0 GiB"
        );
    }
}
