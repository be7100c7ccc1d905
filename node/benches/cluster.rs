//! Cluster benchmark: `cargo bench -p dynamo-node --bench cluster`.
//!
//! A local 5-node cluster (separate processes), N=3 R=2 W=2, 1 KiB values,
//! 64 requests in flight (64 closed-loop clients, each with its own
//! connections): put and get throughput with p50 / p99 / p99.9, for sync
//! `none` and `always`; then the same at half the measured rate, paced
//! (latency from each request's intended start, so queueing counts).
//! Beside it, the loopback round trip measured in the same run.
//!
//! Ends with the targets of issue #18 and their verdicts (puts under
//! `always` against puts under `none`; paced `always` puts' p99.9).
//!
//! Each row says how busy the machine's CPUs were during it (from
//! `/proc/stat`: the cluster, the client and everything else together,
//! kernel threads included; it undercounts light load, whose short bursts
//! the tick misses) and, in brackets, the nodes' processes' share plus the
//! client's own (their exact CPU time), and each paced row how late the
//! client itself sent (its share of the CPU), the part of the latency that
//! is not the cluster's, and where the requests slower than its p99 began:
//! gathered in a few 100 ms windows (a stall: a disk flush, a pause) or
//! spread over most of them (a machine short of CPU). Paced clients sleep on a `timerfd`, to the
//! microsecond: the runtime's millisecond timer added 0.7-0.9 ms to every
//! paced latency and sent the load in millisecond bursts, which the
//! cluster's group commit turned into fewer, larger batches than an even
//! rate gives (measured at 6,000 puts/s: 67% busy with the bursts, 88%
//! with the even rate).
//!
//! Flags (after `--`): `--seconds S` per phase (default 5), `--sync
//! none|always` (default both), `--in-flight N` (default 64), `--warmup S`
//! (each paced phase runs S seconds unmeasured first; default 1), `--rates
//! R,R,...` (puts paced at these rates instead of the closed-loop phases:
//! latency and CPU against load), `--json PATH` (every row as a JSON line,
//! for `ci/vs-etcd.sh`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_client::pace::PreciseSleep;
use dynamo_client::Client;
use dynamo_core::version::VectorClock;
use dynamo_node::config::ClusterConfig;
use dynamo_node::launcher::{free_loopback_members, LocalCluster};

const VALUE_BYTES: usize = 1024;
const PRELOADED_KEYS: u64 = 10_000;

struct Options {
    seconds: f64,
    syncs: Vec<String>,
    in_flight: usize,
    json: Option<std::path::PathBuf>,
    rates: Vec<f64>,
    warmup: f64,
}

/// One row of the table.
struct Row {
    sync: String,
    op: &'static str,
    paced: bool,
    rate: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    failed: u64,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 5.0,
        syncs: vec!["none".into(), "always".into()],
        in_flight: 64,
        json: None,
        rates: Vec::new(),
        warmup: 1.0,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--seconds" => {
                options.seconds = arguments
                    .next()
                    .and_then(|text| text.parse().ok())
                    .expect("--seconds S")
            }
            "--sync" => options.syncs = vec![arguments.next().expect("--sync none|always")],
            "--in-flight" => {
                options.in_flight = arguments
                    .next()
                    .and_then(|text| text.parse().ok())
                    .expect("--in-flight N")
            }
            "--json" => options.json = Some(arguments.next().expect("--json PATH").into()),
            "--warmup" => options.warmup = arguments.next().and_then(|text| text.parse().ok()).expect("--warmup S"),
            "--rates" => {
                options.rates = arguments
                    .next()
                    .map(|text| {
                        text.split(',')
                            .map(|rate| rate.trim().parse().expect("--rates R,R,..."))
                            .collect()
                    })
                    .expect("--rates R,R,...")
            }
            "--bench" => {}
            other => eprintln!("ignoring argument {other:?}"),
        }
    }
    options
}

fn percentiles(mut latencies_us: Vec<u64>) -> (f64, f64, f64) {
    latencies_us.sort_unstable();
    let at = |p: f64| latencies_us[((latencies_us.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0;
    (at(0.5), at(0.99), at(0.999))
}

fn loopback_round_trip() -> (f64, f64) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        let mut byte = [0u8; 1];
        while stream.read_exact(&mut byte).is_ok() {
            if stream.write_all(&byte).is_err() {
                break;
            }
        }
    });
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut latencies = Vec::with_capacity(20_000);
    let mut byte = [7u8; 1];
    for _ in 0..20_000 {
        let started = Instant::now();
        stream.write_all(&byte).expect("write");
        stream.read_exact(&mut byte).expect("read");
        latencies.push(started.elapsed().as_nanos() as u64);
    }
    latencies.sort_unstable();
    let at = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    (at(0.5), at(0.99))
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Put,
    Get,
}

/// Runs one loop of `op` per client for `seconds`: closed-loop, or with
/// `rate` (ops/s over all clients) each client paced and latency counted
/// from the intended start, so queueing counts. Returns (ops/s, latencies
/// in µs, failures, how late each request was sent after its intended
/// start, in µs: the load generator's own part of the latency, its share
/// of the CPU, and when each began, in µs from the phase's start).
async fn phase(clients: &[Arc<Client>], op: Op, seconds: f64, rate: Option<f64>) -> Measured {
    let deadline = Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let count = clients.len();
    // Every phase puts keys of its own: a put of a key an earlier phase
    // wrote, without its context, would add a sibling, and later phases
    // would write ever larger values.
    static PHASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let phase = PHASES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tasks: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(task, client)| {
            let client = Arc::clone(client);
            tokio::spawn(async move {
                let value = vec![b'v'; VALUE_BYTES];
                let mut latencies = Vec::new();
                let mut lateness = Vec::new();
                let mut began = Vec::new();
                let mut failures = 0u64;
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ task as u64;
                let interval = rate.map(|rate| Duration::from_secs_f64(count as f64 / rate));
                let sleep = PreciseSleep::new().expect("timerfd");
                let mut index = 0u64;
                loop {
                    // Clients' schedules are staggered across the interval,
                    // so the load arrives evenly rather than in bursts.
                    let intended = match interval {
                        Some(interval) => started + interval.mul_f64(index as f64 + task as f64 / count as f64),
                        None => Instant::now(),
                    };
                    if intended.duration_since(started) >= deadline {
                        break;
                    }
                    sleep.until(intended).await.expect("timerfd");
                    lateness.push(intended.elapsed().as_micros() as u64);
                    began.push(intended.duration_since(started).as_micros() as u64);
                    let result = match op {
                        Op::Put => {
                            let key = format!("bench:{phase}:{task}:{index}");
                            client
                                .put(key.as_bytes(), Some(&value), &VectorClock::new(), None)
                                .await
                                .map(|_| ())
                        }
                        Op::Get => {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            let key = format!("preload:{}", state % PRELOADED_KEYS);
                            client.get(key.as_bytes(), None).await.map(|_| ())
                        }
                    };
                    if result.is_err() {
                        failures += 1;
                    }
                    latencies.push(intended.elapsed().as_micros() as u64);
                    index += 1;
                }
                (latencies, failures, lateness, began)
            })
        })
        .collect();
    let mut measured = Measured::default();
    for task in tasks {
        let (mut more, failed, mut late, mut began) = task.await.expect("client task");
        measured.latencies.append(&mut more);
        measured.lateness.append(&mut late);
        measured.began.append(&mut began);
        measured.failures += failed;
    }
    measured.rate = measured.latencies.len() as f64 / started.elapsed().as_secs_f64();
    measured
}

/// What one phase measured; see `phase`.
#[derive(Default)]
struct Measured {
    rate: f64,
    latencies: Vec<u64>,
    failures: u64,
    lateness: Vec<u64>,
    began: Vec<u64>,
}

/// Whether the slowest requests came together or spread out: the requests
/// slower than `threshold_us`, counted by the 100 ms window each began in.
/// Returns (how many, windows holding any, windows in all, the most in one
/// window). A stall (a disk flush, a pause) gathers them in a few windows;
/// a machine short of CPU spreads them over most.
fn slow_windows(latencies: &[u64], began: &[u64], threshold_us: u64) -> (usize, usize, usize, usize) {
    const WINDOW_US: u64 = 100_000;
    let windows = began.iter().max().map_or(0, |last| (last / WINDOW_US + 1) as usize);
    let mut counts = vec![0usize; windows];
    for (latency, start) in latencies.iter().zip(began) {
        if *latency > threshold_us {
            counts[(start / WINDOW_US) as usize] += 1;
        }
    }
    let slow = counts.iter().sum();
    let touched = counts.iter().filter(|count| **count > 0).count();
    (slow, touched, windows, counts.iter().copied().max().unwrap_or(0))
}

/// The machine's CPU time so far, from `/proc/stat`: (busy, all), in
/// ticks; `None` where it cannot be read.
fn cpu_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let all: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((all - idle, all))
}

/// CPU time this process (the client) has used so far, in seconds.
fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given, which lives across
    // the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// One phase measured and printed as a row of the table: closed-loop, or
/// paced at `rate` (then with the client's own lateness under it).
/// CPU time the processes `pids` (the nodes: every thread, io-wq workers
/// included) have used so far, in seconds, from `/proc/PID/stat`.
fn processes_cpu_seconds(pids: &[u32]) -> f64 {
    // SAFETY: a plain query with no memory passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            // After the command's closing bracket: state, ppid, ... utime
            // (the 12th), stime (the 13th).
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .sum()
}

async fn measured(
    sync: &str,
    clients: &[Arc<Client>],
    pids: &[u32],
    op: Op,
    options: &Options,
    rate: Option<f64>,
) -> Row {
    let name = if op == Op::Put { "put" } else { "get" };
    if rate.is_some() && options.warmup > 0.0 {
        // Unmeasured: the load settles at its new rate first (the writes
        // of a phase at full speed are still being checkpointed).
        phase(clients, op, options.warmup, rate).await;
    }
    let before = cpu_ticks();
    let (own_before, nodes_before, wall) = (own_cpu_seconds(), processes_cpu_seconds(pids), Instant::now());
    let Measured {
        rate: done,
        latencies,
        failures: failed,
        lateness,
        began,
    } = phase(clients, op, options.seconds, rate).await;
    let seconds = wall.elapsed().as_secs_f64();
    let client_share = (own_cpu_seconds() - own_before) / seconds;
    let nodes_share = (processes_cpu_seconds(pids) - nodes_before) / seconds;
    let cpu = match (before, cpu_ticks()) {
        (Some((busy0, all0)), Some((busy1, all1))) if all1 > all0 => {
            format!("{:.0}", 100.0 * (busy1 - busy0) as f64 / (all1 - all0) as f64)
        }
        _ => "?".into(),
    };
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let cpu = format!(
        "{cpu} ({:.0}+{:.0})",
        100.0 * nodes_share / cpus,
        100.0 * client_share / cpus
    );
    let (p50, p99, p999) = percentiles(latencies.clone());
    let load = match rate {
        Some(rate) => format!("paced {rate:.0}/s"),
        None => format!("{} in flight", options.in_flight),
    };
    println!("{sync:<7} {name:<4} {load:<16} {done:>10.0} {p50:>9.2} {p99:>9.2} {p999:>9.2} {failed:>8} {cpu:>12}");
    if rate.is_some() {
        let (late50, late99, late999) = percentiles(lateness);
        println!(
            "{:<7} {:<4} {:<16} {:>10} {late50:>9.2} {late99:>9.2} {late999:>9.2}",
            "", "", "(sent late by)", ""
        );
        let (slow, touched, windows, most) = slow_windows(&latencies, &began, (p99 * 1000.0) as u64);
        println!(
            "{:<7} {:<4} {:<16} the {slow} slower than p99 began in {touched} of {windows} 100-ms windows, at most {most} in one",
            "", "", "(when slow)"
        );
    }
    Row {
        sync: sync.to_string(),
        op: name,
        paced: rate.is_some(),
        rate: done,
        p50,
        p99,
        p999,
        failed,
    }
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (rtt_p50, rtt_p99) = loopback_round_trip();
    println!("loopback round trip (1 byte, TCP_NODELAY): p50 {rtt_p50:.1} µs, p99 {rtt_p99:.1} µs");
    println!(
        "{:<7} {:<4} {:<16} {:>10} {:>9} {:>9} {:>9} {:>8} {:>12}",
        "sync", "op", "load", "ops/s", "p50 ms", "p99 ms", "p99.9 ms", "failed", "cpu %"
    );
    let mut rows: Vec<Row> = Vec::new();
    for sync in &options.syncs {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-cluster-{sync}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let settings = format!("n = 3\nr = 2\nw = 2\npartitions = 64\nsync = \"{sync}\"");
        let members = free_loopback_members(5).expect("loopback ports");
        let config = ClusterConfig::parse_settings(Path::new("bench"), &settings, &members).expect("settings");
        let mut cluster =
            LocalCluster::start(Path::new(env!("CARGO_BIN_EXE_dynamo-node")), &dir, config).expect("cluster");
        let addrs = cluster.addrs();
        let pids: Vec<u32> = (0..addrs.len()).filter_map(|index| cluster.pid(index)).collect();
        runtime.block_on(async {
            // One client per request in flight, kept through every phase:
            // each learns the cluster and opens its connections while it
            // preloads the keys the gets read, not inside a measured phase.
            let clients: Vec<Arc<Client>> = (0..options.in_flight)
                .map(|_| Arc::new(Client::new(addrs.clone(), Duration::from_secs(5))))
                .collect();
            let loaders: Vec<_> = clients
                .iter()
                .enumerate()
                .map(|(loader, client)| {
                    let client = Arc::clone(client);
                    let (loader, step) = (loader as u64, options.in_flight as u64);
                    tokio::spawn(async move {
                        let value = vec![b'p'; VALUE_BYTES];
                        for index in (loader..PRELOADED_KEYS).step_by(step as usize) {
                            let key = format!("preload:{index}");
                            client
                                .put(key.as_bytes(), Some(&value), &VectorClock::new(), None)
                                .await
                                .expect("preload");
                        }
                    })
                })
                .collect();
            for loader in loaders {
                loader.await.expect("loader");
            }
            if !options.rates.is_empty() {
                for &rate in &options.rates {
                    let row = measured(sync, &clients, &pids, Op::Put, &options, Some(rate)).await;
                    rows.push(row);
                }
                return;
            }
            for op in [Op::Put, Op::Get] {
                let row = measured(sync, &clients, &pids, op, &options, None).await;
                let half = row.rate / 2.0;
                rows.push(row);
                rows.push(measured(sync, &clients, &pids, op, &options, Some(half)).await);
            }
        });
        cluster.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
    if options.rates.is_empty() {
        report(&rows);
    }
    if let Some(path) = &options.json {
        let lines: String = rows
            .iter()
            .map(|row| {
                format!(
                    "{{\"sync\":\"{}\",\"op\":\"{}\",\"paced\":{},\"ops_per_second\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"failed\":{}}}\n",
                    row.sync, row.op, row.paced, row.rate, row.p50, row.p99, row.p999, row.failed
                )
            })
            .collect();
        std::fs::write(path, lines).expect("--json PATH: cannot write");
    }
}

/// Issue #18's targets, each with its verdict, from this run's rows.
fn report(rows: &[Row]) {
    let find = |sync: &str, op: &str, paced: bool| {
        rows.iter()
            .find(|row| row.sync == sync && row.op == op && row.paced == paced)
    };
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let mut lines = Vec::new();
    if let (Some(always), Some(none)) = (find("always", "put", false), find("none", "put", false)) {
        let ratio = always.rate / none.rate;
        lines.push(format!(
            "puts, sync always: {:.0}/s = {ratio:.2}x puts with sync none ({:.0}/s); target >= 0.6x: {}",
            always.rate,
            none.rate,
            verdict(ratio >= 0.6)
        ));
    }
    if let Some(paced) = find("always", "put", true) {
        let beside = find("none", "put", true)
            .map(|none| format!(" (paced puts with sync none, same run: {:.2} ms)", none.p999))
            .unwrap_or_default();
        lines.push(format!(
            "paced puts at half their rate, sync always: p99.9 {:.2} ms{beside}; target <= 5 ms: {}",
            paced.p999,
            verdict(paced.p999 <= 5.0)
        ));
    }
    if !lines.is_empty() {
        println!("targets (issue #18), this run:");
        for line in lines {
            println!("  {line}");
        }
    }
}
