//! `dynamo-bench`: thin command line over the `dynamo_bench` library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dynamo_bench::run::{run, RunRequest};
use dynamo_bench::spec::{parse_duration, Overrides, Spec};
use dynamo_checker::Mode;

/// Drive a Dynamo cluster with a workload, record and check the history,
/// report latency against the SLA.
///
/// Start with `dynamo-bench run workloads/cart.toml`: it starts a local
/// 5-node cluster, drives the shopping-cart workload open-loop, checks the
/// recorded history and prints the latency table and the verdict. Exit
/// status: 0 valid and SLA met, 1 an invariant failed or the SLA was
/// missed, 2 bad input or a cluster that could not be started or reached,
/// 3 interrupted (SIGINT or SIGTERM: the load stops, what was recorded is
/// checked and reported, the local nodes are stopped).
#[derive(Parser, Debug)]
#[command(name = "dynamo-bench", version)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a workload spec end to end and leave a run directory behind.
    ///
    /// Examples:
    ///   dynamo-bench run workloads/cart.toml
    ///   dynamo-bench run workloads/ycsb-a.toml --duration 20s --rate 5000
    ///   dynamo-bench run workloads/session.toml --cluster my-cluster.toml
    ///
    /// The run directory (default reports/runs/<time>-<spec>/) holds
    /// history.jsonl, latency-<op>.hlog (HdrHistogram interval logs),
    /// summary.json, check.json and report.html.
    Run {
        /// The workload spec (TOML; see workloads/cart.toml for every field).
        spec: PathBuf,
        /// Measured duration, overriding the spec's (e.g. 20s, 2m).
        #[arg(long, value_parser = parse_duration)]
        duration: Option<std::time::Duration>,
        /// Target rate in operations per second, overriding the spec's.
        #[arg(long)]
        rate: Option<f64>,
        /// Seed of every random choice, overriding the spec's.
        #[arg(long)]
        seed: Option<u64>,
        /// Which node coordinates each request, overriding the spec's:
        /// preference (the first node of the key's preference list),
        /// any-replica (any of its N, at random), or random (any node; one
        /// that is not a replica forwards).
        #[arg(long)]
        routing: Option<dynamo_bench::spec::Routing>,
        /// Add a seeded random schedule of these faults to the spec's
        /// (comma-separated: kill, pause, partition, disk, latency, stall,
        /// bandwidth, loss): a fault every 8 s on average, lasting 3 s,
        /// none in the last 5 s; healed before the final reads, and
        /// recorded in the history. partition needs root and nft.
        #[arg(long, value_delimiter = ',')]
        faults: Option<Vec<dynamo_bench::faults::FaultKind>>,
        /// The run directory [default: reports/runs/<time>-<spec>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run the spec this many times, one after the other, into
        /// OUT/1, OUT/2, ... (a directory `compare` takes as one side:
        /// more runs, narrower intervals). Needs --out.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000), requires = "out")]
        repeat: u32,
        /// Use the running cluster this file describes (dynamo-node's
        /// cluster.toml) instead of starting a local one.
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// No progress output (the final report is still printed).
        #[arg(long)]
        quiet: bool,
    },
    /// Check a recorded history (shared/HISTORY.md) and print the verdict.
    ///
    /// With --follow, the history may still be being written (a soak, a
    /// long run): each line is judged as it is appended, each finding is
    /// printed the moment it is decided (phantom, sibling-antichain, the
    /// first part of stale-read and the history's own rules when the
    /// operation completes; lost writes, divergence and missed puts when
    /// the key is retired or the history ends), and the follow ends when
    /// the file has not grown for --idle, or on Ctrl-C. Then the verdict is
    /// printed and written as without --follow (the fault report needs the
    /// whole history: run check again without --follow for it).
    ///
    /// With --stream, a finished history is checked the same way, line by
    /// line to its end: memory follows the keys not yet retired rather
    /// than the file (for soak histories, whose keys retire in
    /// generations); without it the whole file is read first, which is
    /// faster.
    ///
    ///   dynamo-bench check reports/runs/<run>/history.jsonl --follow
    ///
    /// Exit status: 0 valid, 1 violations found, 2 the history could not be
    /// read (the message names the line).
    Check {
        /// The history (JSON Lines).
        history: PathBuf,
        /// eventual (default: stale reads measured) or strict (stale reads
        /// are violations; for R + W > N without sloppy quorum or faults).
        #[arg(long, default_value = "eventual")]
        mode: Mode,
        /// Where to write the verdict JSON [default: check.json beside the
        /// history].
        #[arg(long)]
        json: Option<PathBuf>,
        /// Follow a history that is still being written (see above).
        #[arg(long, conflicts_with = "stream")]
        follow: bool,
        /// Check line by line to the end of the file (see above).
        #[arg(long)]
        stream: bool,
        /// With --follow: stop once the file has not grown for this long
        /// (e.g. 30s, 2m).
        #[arg(long, default_value = "10s", value_parser = parse_idle, requires = "follow")]
        idle: std::time::Duration,
    },
    /// Hours of the spec's load with its faults repeating, on one local
    /// cluster, checked as it goes.
    ///
    /// The soak runs in generations of --generation: each drives the load on
    /// keys of its own with the spec's fault schedule (drawn again from
    /// seed + n), then final-reads its keys, retires them and is checked
    /// at once: lost writes are found generation by generation and the
    /// checker's memory stays flat. Every window records throughput,
    /// errors, latency, findings, staleness, faults and each node's RSS,
    /// descriptors, threads, CPU and data bytes (from the node's stats).
    /// At the end (or Ctrl-C) memory, descriptors, threads and latency
    /// that keep growing are reported as suspected leaks or drift.
    ///
    /// With --cluster FILE the nodes are wherever the file says; faults
    /// run through the commands of its [faults] section (kill, restart,
    /// pause, resume, partition, heal: e.g. ssh + systemd + nft, see
    /// workloads/examples/cluster-3-hosts.toml), and each node's figures
    /// come from its own stats, so nothing runs on the hosts but the nodes.
    ///
    /// Example: dynamo-bench soak workloads/soak.toml --duration 8h
    ///          dynamo-bench soak workloads/soak.toml --duration 3m --generation 30s --window 4s --warmup 90s
    ///          dynamo-bench soak workloads/soak.toml --duration 8h --cluster /etc/dynamo/cluster.toml
    ///
    /// Exit status: 0 clean, 1 a finding, a suspected leak or final reads
    /// that failed with every fault healed, 2 bad input, 3 interrupted
    /// before a whole generation ran.
    Soak {
        /// The workload spec (its [load] duration is ignored: see
        /// --duration and --window).
        spec: PathBuf,
        /// How long in all (e.g. 2m, 8h).
        #[arg(long, value_parser = parse_duration)]
        duration: std::time::Duration,
        /// One generation of keys: written for this long, then final-read,
        /// checked and retired.
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        generation: std::time::Duration,
        /// How often each node's RSS, descriptors, threads, CPU and data
        /// bytes are sampled (from its stats).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        window: std::time::Duration,
        /// Target rate in operations per second, overriding the spec's.
        #[arg(long)]
        rate: Option<f64>,
        /// Seed, overriding the spec's.
        #[arg(long)]
        seed: Option<u64>,
        /// Add a seeded random schedule of these faults to each
        /// generation (as `run --faults`).
        #[arg(long, value_delimiter = ',')]
        faults: Option<Vec<dynamo_bench::faults::FaultKind>>,
        /// The soak directory [default: reports/soaks/<time>-<spec>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Soak the running cluster this file describes (dynamo-node's
        /// cluster.toml, with a [faults] section for faults) instead of
        /// starting a local one.
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// End at the first generation with a finding, keeping what
        /// reproduces it (its history, the one before, the seed).
        #[arg(long)]
        stop_on_violation: bool,
        /// Keep every generation's history (by default a clean
        /// generation's is dropped once the next is clean too).
        #[arg(long)]
        keep_history: bool,
        /// The windows before this are warm-up (a node's allocator and
        /// buffers grow to its working set under faults, some minutes), not
        /// judged for trends [default: the first generation].
        #[arg(long, value_parser = parse_duration)]
        warmup: Option<std::time::Duration>,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// Compare two sets of runs of one spec: per operation type and
    /// percentile (p50 to p99.99, max), the two figures, their ratio, a
    /// 95 % interval for the ratio (a bootstrap over runs and over blocks
    /// of seconds, so that one slow second or one noisy run does not make
    /// a verdict) and the verdict: slower, faster, unchanged or
    /// inconclusive.
    ///
    /// Each side is a run directory, or a directory of run directories
    /// (several runs of one build: more runs, narrower intervals).
    ///
    /// Example: dynamo-bench compare reports/runs/old reports/runs/new
    ///
    /// Exit status: 0 nothing slower beyond the threshold, 1 something
    /// is, 2 bad input (runs of different specs or settings are refused,
    /// the difference named).
    Compare {
        /// The base: a run directory or a directory of them.
        base: PathBuf,
        /// The new side: a run directory or a directory of them.
        new: PathBuf,
        /// The change that counts: `5%` or `0.05`.
        #[arg(long, default_value = "5%", value_parser = parse_threshold)]
        threshold: f64,
        /// Also write the rows as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Where to write compare.html (both spectra overlaid with their
        /// intervals, latency over time side by side) [default:
        /// NEW/compare.html]
        #[arg(long)]
        html: Option<PathBuf>,
        /// A setting the two sides may differ in, on purpose (e.g.
        /// `cluster.sync` to measure what sync = always costs; `seed`;
        /// `faults`, the kinds and number of faults); repeatable.
        #[arg(long = "allow-different", value_name = "SECTION.FIELD")]
        allowed: Vec<String>,
    },
    /// Keep what a later `compare` needs of some runs (their summaries,
    /// verdicts and interval logs: small; not their histories) as a named
    /// baseline under reports/baselines/NAME/.
    ///
    /// Example: dynamo-bench baseline save v0.1-cart runs/v0.1
    ///          dynamo-bench compare reports/baselines/v0.1-cart runs/new
    ///
    /// Latency belongs to the machine that measured it: compare a
    /// baseline with runs made on the same machine.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Write RUN_DIR/report.html again from the files of a run directory:
    /// one self-contained page (inline SVG, no scripts, nothing fetched)
    /// with latency over time per operation type (fault windows as bands,
    /// the SLA line), the percentile spectra, throughput, load balance,
    /// versions per read, the verdict, the faults and the settings.
    ///
    /// Given a soak directory (it has soak.json, or generations.jsonl of a
    /// soak that was killed), writes DIR/soak.html instead: every window
    /// over time (each node's memory, descriptors, threads, data and keys;
    /// latency, throughput, errors and stale gets), the faults as bands,
    /// the trend verdicts and the generations.
    ///
    /// Example: dynamo-bench report reports/runs/20261129-221736-cart
    ///
    /// Exit status: 0 written, 2 not a run or soak directory (the file
    /// named).
    Report {
        /// A run directory (what `run` leaves: summary.json, the interval
        /// logs, history.jsonl, check.json) or a soak directory.
        run_dir: PathBuf,
    },
    /// List the nft tables partition faults made (one per partition,
    /// `ip dynamo_bench_<pid>_<n>`), and with --clean delete those whose
    /// bench is gone (one killed before it could heal). A run with
    /// partitions also does this before it starts. Needs root and nft.
    ///
    /// Exit status: 0 done, 2 nft cannot be used here.
    Faults {
        /// Delete the tables left by benches that no longer run.
        #[arg(long)]
        clean: bool,
    },
    /// Run one node (used by `run` to start its local cluster from this
    /// binary; the same as `dynamo-node serve`).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        cluster: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
}

#[derive(clap::Subcommand, Debug)]
enum BaselineCommand {
    /// Save runs (run directories, or directories of them) as baseline NAME.
    Save {
        /// Letters, digits, '.', '_' and '-'.
        name: String,
        /// Run directories, or directories of run directories.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where baselines live.
        #[arg(long, default_value = "reports/baselines")]
        dir: PathBuf,
    },
}

fn baseline(command: BaselineCommand) -> ExitCode {
    let BaselineCommand::Save { name, runs, dir } = command;
    let mut found = Vec::new();
    for path in &runs {
        match dynamo_reports::compare::load_side(path) {
            Ok(side) => found.extend(side.dirs),
            Err(error) => {
                eprintln!("dynamo-bench baseline: {error}");
                return ExitCode::from(2);
            }
        }
    }
    let revision = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    match dynamo_reports::compare::save_baseline(&dir, &name, &found, &revision) {
        Ok(saved) => {
            println!(
                "baseline {name}: {} runs in {} (revision {revision})",
                found.len(),
                saved.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dynamo-bench baseline: {error}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    if matches!(
        arguments.command,
        Command::Check { .. } | Command::Compare { .. } | Command::Report { .. } | Command::Faults { .. }
    ) {
        dynamo_node::logging::quiet_on_broken_pipe();
    }
    match arguments.command {
        Command::Run {
            spec,
            duration,
            rate,
            seed,
            routing,
            faults,
            out,
            repeat,
            cluster,
            quiet,
        } => {
            let mut spec = match Spec::load(&spec) {
                Ok(spec) => spec,
                Err(error) => {
                    eprintln!("dynamo-bench run: {error}");
                    return ExitCode::from(2);
                }
            };
            if let Err(error) = spec.apply(&Overrides {
                duration,
                rate,
                seed,
                routing,
                faults,
            }) {
                eprintln!("dynamo-bench run: {error}");
                return ExitCode::from(2);
            }
            let node_binary = match std::env::current_exe() {
                Ok(path) => path,
                Err(error) => {
                    eprintln!("dynamo-bench run: cannot find my own binary to start nodes: {error}");
                    return ExitCode::from(2);
                }
            };
            // The worst outcome of the runs: 2 bad input, 3 interrupted
            // (which stops the repeats), 1 an invalid history or a missed
            // SLA, 0 all well.
            let mut worst = 0u8;
            for index in 1..=repeat {
                let out = match (&out, repeat) {
                    (Some(out), 1) => Some(out.clone()),
                    (Some(out), _) => {
                        eprintln!("run {index} of {repeat}");
                        Some(out.join(index.to_string()))
                    }
                    (None, _) => None,
                };
                let code = match run(RunRequest {
                    spec: spec.clone(),
                    out,
                    cluster_file: cluster.clone(),
                    node_binary: node_binary.clone(),
                    progress: !quiet,
                }) {
                    Ok(result) if result.interrupted => 3,
                    Ok(result) if result.valid && result.sla_met => 0,
                    Ok(_) => 1,
                    Err(error) => {
                        eprintln!("dynamo-bench run: {error}");
                        2
                    }
                };
                worst = if code == 2 || worst == 2 { 2 } else { worst.max(code) };
                if code >= 2 {
                    break;
                }
            }
            ExitCode::from(worst)
        }
        Command::Check {
            history,
            mode,
            json,
            follow: false,
            stream: false,
            ..
        } => check(&history, mode, json),
        Command::Check {
            history,
            mode,
            json,
            follow,
            idle,
            ..
        } => check_following(
            &history,
            mode,
            json,
            if follow {
                dynamo_bench::follow::Until::Idle(idle)
            } else {
                dynamo_bench::follow::Until::End
            },
        ),
        Command::Faults { clean } => faults(clean),
        Command::Compare {
            base,
            new,
            threshold,
            json,
            html,
            allowed,
        } => compare(&base, &new, threshold, json.as_deref(), html, &allowed),
        Command::Baseline(command) => baseline(command),
        Command::Soak {
            spec,
            duration,
            generation,
            window,
            rate,
            seed,
            faults,
            out,
            cluster,
            stop_on_violation,
            keep_history,
            warmup,
            quiet,
        } => soak(
            spec,
            duration,
            (generation, window),
            Overrides {
                duration: Some(generation),
                rate,
                seed,
                routing: None,
                faults,
            },
            (out, cluster),
            stop_on_violation,
            (keep_history, warmup),
            quiet,
        ),
        Command::Report { run_dir } => match if dynamo_reports::soak::is_soak(&run_dir) {
            dynamo_reports::soak::write(&run_dir)
        } else {
            dynamo_reports::html::write(&run_dir)
        } {
            Ok(page) => {
                println!("{}", page.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("dynamo-bench report: {error}");
                ExitCode::from(2)
            }
        },
        Command::Serve {
            cluster,
            id,
            data,
            listen,
        } => {
            dynamo_node::logging::init();
            match dynamo_node::server::serve_from_file(&cluster, &id, data, listen) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("dynamo-bench serve: {error}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// `5%` or `0.05`, between 0 and 1.
fn parse_threshold(text: &str) -> Result<f64, String> {
    let value = match text.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|percent| percent / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| format!("{text:?} is not a threshold like 5% or 0.05"))?;
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(format!("{text:?}: a threshold is between 0 and 100%"))
    }
}

#[allow(clippy::too_many_arguments)]
fn soak(
    spec: PathBuf,
    duration: std::time::Duration,
    (generation, window): (std::time::Duration, std::time::Duration),
    overrides: Overrides,
    (out, cluster_file): (Option<PathBuf>, Option<PathBuf>),
    stop_on_violation: bool,
    (keep_history, warmup): (bool, Option<std::time::Duration>),
    quiet: bool,
) -> ExitCode {
    let mut spec = match Spec::load(&spec) {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("dynamo-bench soak: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = spec.apply(&overrides) {
        eprintln!("dynamo-bench soak: {error}");
        return ExitCode::from(2);
    }
    let node_binary = match std::env::current_exe() {
        Ok(path) => path,
        Err(error) => {
            eprintln!("dynamo-bench soak: cannot find my own binary to start nodes: {error}");
            return ExitCode::from(2);
        }
    };
    match dynamo_bench::soak::soak(dynamo_bench::soak::SoakRequest {
        spec,
        duration,
        generation,
        window,
        out,
        cluster_file,
        node_binary,
        progress: !quiet,
        stop_on_violation,
        keep_history,
        warmup,
    }) {
        Ok(result) if result.generations == 0 && result.interrupted => ExitCode::from(3),
        Ok(result) if result.findings > 0 || !result.leaks.is_empty() || result.final_reads_failed > 0 => {
            ExitCode::from(1)
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dynamo-bench soak: {error}");
            ExitCode::from(2)
        }
    }
}

fn compare(
    base: &std::path::Path,
    new: &std::path::Path,
    threshold: f64,
    json: Option<&std::path::Path>,
    html: Option<PathBuf>,
    allowed: &[String],
) -> ExitCode {
    use dynamo_reports::compare::{check_comparable, compare, load_side, text};
    let sides = load_side(base).and_then(|base| Ok((base, load_side(new)?)));
    let (base_side, new_side) = match sides {
        Ok(sides) => sides,
        Err(error) => {
            eprintln!("dynamo-bench compare: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(why) = check_comparable(&base_side, &new_side, allowed) {
        eprintln!("dynamo-bench compare: {why}");
        return ExitCode::from(2);
    }
    println!(
        "base: {} run(s); new: {} run(s)",
        base_side.dirs.len(),
        new_side.dirs.len()
    );
    if base_side.dirs.len().min(new_side.dirs.len()) < dynamo_reports::compare::RUNS_MIN {
        println!(
            "note: a side with fewer than {} runs cannot tell a change from the drift between runs: every verdict \
             is inconclusive (run each side with --repeat K)",
            dynamo_reports::compare::RUNS_MIN
        );
    }
    let comparison = compare(&base_side.latency, &new_side.latency, threshold);
    let rows: Vec<&dynamo_reports::compare::Row> = comparison.values().flat_map(|op| &op.rows).collect();
    print!("{}", text(rows.iter().copied(), threshold));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&rows).unwrap_or_default();
        if let Err(error) = std::fs::write(path, text) {
            eprintln!("dynamo-bench compare: {}: {error}", path.display());
            return ExitCode::from(2);
        }
    }
    let html = html.unwrap_or_else(|| new.join("compare.html"));
    let page = dynamo_reports::compare_html::render(&base_side, &new_side, &comparison, threshold);
    match std::fs::write(&html, page) {
        Ok(()) => println!("compare.html: {}", html.display()),
        Err(error) => {
            eprintln!("dynamo-bench compare: {}: {error}", html.display());
            return ExitCode::from(2);
        }
    }
    let slower = dynamo_reports::compare::slower(rows.iter().copied());
    if slower.is_empty() {
        println!(
            "verdict: nothing slower beyond {:.0} % with confidence",
            threshold * 100.0
        );
        ExitCode::SUCCESS
    } else {
        println!("verdict: SLOWER at {}", slower.join(", "));
        ExitCode::from(1)
    }
}

fn check(path: &std::path::Path, mode: Mode, json: Option<PathBuf>) -> ExitCode {
    let started = std::time::Instant::now();
    let mut line = dynamo_bench::progress::Line::on_terminal();
    let history = match dynamo_checker::read_file_with(path, &mut |done, total| {
        line.show(format_args!(
            "reading {}: {:.0}% of {:.0} MiB",
            path.display(),
            done as f64 * 100.0 / total.max(1) as f64,
            total as f64 / (1 << 20) as f64
        ))
    }) {
        Ok(history) => history,
        Err(error) => {
            line.clear();
            eprintln!("dynamo-bench check: {error}");
            return ExitCode::from(2);
        }
    };
    let read_seconds = started.elapsed().as_secs_f64();
    let verdict = dynamo_checker::check_with(
        &history,
        &dynamo_checker::Options {
            mode,
            ..dynamo_checker::Options::default()
        },
        &mut |done, total| {
            line.show(format_args!(
                "judging: {:.0}% of {total} operations",
                done as f64 * 100.0 / total.max(1) as f64
            ))
        },
    );
    line.clear();
    let seconds = started.elapsed().as_secs_f64();
    let faults = dynamo_checker::faults::report(&history);
    drop(history);
    let json_path = json.unwrap_or_else(|| path.with_file_name("check.json"));
    if let Err(message) = write_verdict(&json_path, &verdict) {
        eprintln!("dynamo-bench check: {message}");
        return ExitCode::from(2);
    }
    print!("{}", dynamo_reports::check_text::faults(&faults));
    print!("{}", dynamo_reports::check_text::verdict(&verdict));
    println!(
        "checked in {seconds:.2}s ({read_seconds:.2}s reading); verdict written to {}",
        json_path.display()
    );
    if verdict.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `--idle`: a duration such as `10s`, `2m` or `500ms`.
fn parse_idle(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 10s, 2m or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{other:?} is not a unit: ms, s, m or h")),
    };
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(format!("{text:?}: the idle time must be more than zero"));
    }
    Ok(std::time::Duration::from_secs_f64(seconds))
}

/// Set by Ctrl-C while a history is followed.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn check_following(
    path: &std::path::Path,
    mode: Mode,
    json: Option<PathBuf>,
    until: dynamo_bench::follow::Until,
) -> ExitCode {
    use dynamo_bench::follow::{Ended, Until};
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    let started = std::time::Instant::now();
    // Shared by the two callbacks: a finding clears the progress line.
    let line = std::cell::RefCell::new(dynamo_bench::progress::Line::on_terminal());
    let options = dynamo_checker::Options {
        mode,
        ..dynamo_checker::Options::default()
    };
    match until {
        Until::Idle(idle) => eprintln!(
            "following {} (stops after {idle:?} without growth, or on Ctrl-C)",
            path.display()
        ),
        Until::End => eprintln!("streaming {} to its end", path.display()),
    }
    let followed = dynamo_bench::follow::follow(
        path,
        &options,
        until,
        &STOP,
        &mut |finding| {
            line.borrow_mut().clear();
            println!(
                "{} on {:?} (ops {:?}): {}",
                finding.invariant, finding.key, finding.ops, finding.message
            );
        },
        &mut |at| {
            line.borrow_mut().show(format_args!(
                "{:.0} of {:.0} MiB, {} lines; {} keys live, {} operations held; {} violations; idle {:.0} s",
                at.bytes as f64 / (1 << 20) as f64,
                at.length as f64 / (1 << 20) as f64,
                at.lines,
                at.live_keys,
                at.held_operations,
                at.violations,
                at.idle.as_secs_f64()
            ))
        },
    );
    line.borrow_mut().clear();
    let (verdict, ended) = match followed {
        Ok(followed) => followed,
        Err(error) => {
            eprintln!("dynamo-bench check: {error}");
            return ExitCode::from(2);
        }
    };
    let json_path = json.unwrap_or_else(|| path.with_file_name("check.json"));
    if let Err(message) = write_verdict(&json_path, &verdict) {
        eprintln!("dynamo-bench check: {message}");
        return ExitCode::from(2);
    }
    print!("{}", dynamo_reports::check_text::verdict(&verdict));
    if verdict.counts.fault_events > 0 {
        println!("fault report: it needs the whole history; run check without --follow or --stream for it");
    }
    println!(
        "checked line by line in {:.1}s ({}); verdict written to {}",
        started.elapsed().as_secs_f64(),
        match (ended, until) {
            (Ended::Idle, Until::Idle(idle)) => format!("the file did not grow for {idle:?}"),
            (Ended::Stopped, _) => "stopped by Ctrl-C".to_string(),
            _ => "the end of the file".to_string(),
        },
        json_path.display()
    );
    if verdict.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Writes the verdict as JSON.
fn write_verdict(path: &std::path::Path, verdict: &dynamo_checker::Verdict) -> Result<(), String> {
    let text = serde_json::to_string_pretty(verdict).map_err(|error| error.to_string())?;
    std::fs::write(path, text + "\n").map_err(|error| format!("{}: {error}", path.display()))
}

fn faults(clean: bool) -> ExitCode {
    use dynamo_bench::faults::firewall;
    let listed = firewall::tables().and_then(|tables| {
        if clean {
            firewall::clean().map(|_| tables)
        } else {
            Ok(tables)
        }
    });
    match listed {
        Ok(tables) if tables.is_empty() => {
            println!("no partition tables of dynamo-bench's in the ruleset");
            ExitCode::SUCCESS
        }
        Ok(tables) => {
            for table in tables {
                let owner = match (table.pid, table.owner_alive) {
                    (Some(pid), true) => format!("bench pid {pid} is running: kept"),
                    (Some(pid), false) if clean => format!("bench pid {pid} is gone: deleted"),
                    (Some(pid), false) => format!("bench pid {pid} is gone: --clean deletes it"),
                    (None, _) if clean => "no bench named: deleted".to_string(),
                    (None, _) => "no bench named: --clean deletes it".to_string(),
                };
                println!("table ip {}  {owner}", table.table);
            }
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("dynamo-bench faults: {why}");
            ExitCode::from(2)
        }
    }
}
