//! The driver: one scheduler issues operations at their intended start
//! times (open loop, constant arrival at the target rate), a fixed set of
//! logical clients executes them one at a time each, and every request is
//! recorded in the history as it is sent and as it is answered.
//!
//! Latency is measured from the *intended* start: when the cluster (or
//! the clients) fall behind, operations wait in the scheduler's queue and
//! that wait counts, so a stall shows at the percentiles it really hits
//! (coordinated omission corrected). Service time, from the moment the
//! first request of an operation was sent, is kept beside it.
//!
//! The scheduler's queue is bounded: when it is full the scheduler waits,
//! but the intended start times stay on the schedule, so the wait still
//! shows in the latency.

mod finals;
mod worker;

use dynamo_node::sync::Recover;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_client::Client;
use dynamo_client::Error as ClientLibError;
use dynamo_reports::latency::Pair;
use dynamo_reports::LatencyRecorder;

use crate::faults::{Fault, Nemesis, World};
use crate::keys::{KeyChooser, Rng};
use crate::record::HistoryWriter;

use crate::spec::{OpKind, Spec};
pub use finals::CartFigures;
use finals::{cart_figures, final_reads, CartBook};
use worker::Worker;

/// Scheduled operations waiting for a free client.
const QUEUE_OPERATIONS_MAX: usize = 10_000;

/// Contexts each client keeps for `update` (oldest dropped beyond this).
const CACHED_CONTEXTS_MAX: usize = 10_000;

/// The scheduler counts itself late beyond this.
const LAG_WARNING: Duration = Duration::from_millis(10);

/// Final reads in flight at once.
const FINAL_READERS: usize = 32;

/// One scheduled operation.
struct Scheduled {
    intended: Instant,
    /// When the scheduler handed it over (after its timer fired).
    dispatched: Instant,
    kind: OpKind,
    key: u64,
    measured: bool,
}

/// The nodes the driver talks to.
#[derive(Clone, Debug)]
pub struct Target {
    /// Addresses with names, in cluster order.
    pub nodes: Vec<(String, SocketAddr)>,
    /// N: the replicas a final read asks.
    pub n: usize,
}

/// What the driver measured, for the report.
#[derive(Debug, Default)]
pub struct Measured {
    /// Latency totals over the measured period.
    pub totals: BTreeMap<String, Pair>,
    /// Seconds measured (after warm-up).
    pub measured_seconds: f64,
    /// Operations scheduled in all (warm-up included).
    pub scheduled: u64,
    /// Requests per node during the measured period.
    pub node_requests: BTreeMap<String, u64>,
    /// Sibling counts of measured gets: count → gets.
    pub versions_per_read: BTreeMap<usize, u64>,
    /// The scheduler's worst lateness.
    pub lag_max: Duration,
    /// Operations the scheduler issued more than [`LAG_WARNING`] late.
    pub lagged_operations: u64,
    /// Operations that waited for a free client more than 1 ms.
    pub queued_operations: u64,
    /// The driver's own CPU time over the run.
    pub cpu: Duration,
    /// Wall time of the load phase.
    pub wall: Duration,
    /// Final reads made (ok or not).
    pub final_reads: u64,
    /// Of them, failed: a node that could not serve a read with every
    /// fault healed (the checker cannot judge that node's copy).
    pub final_reads_failed: u64,
    /// Keys touched.
    pub keys_touched: u64,
    /// Cart figures, when the spec is a cart.
    pub cart: Option<CartFigures>,
    /// The nodes' repair counters at the end of the load.
    pub repair: RepairFigures,
    /// Each node's use of its machine at the end of the load, by address.
    pub node_resources: BTreeMap<String, dynamo_core::admin::ProcessFigures>,
    /// Latencies clamped to the histogram's bound.
    pub clamped: u64,
    /// What went wrong doing faults (a node that would not restart).
    pub fault_problems: Vec<String>,
}

struct Shared {
    spec: Spec,
    history: Arc<HistoryWriter>,
    recorder: Mutex<LatencyRecorder>,
    next_op: AtomicU64,
    next_process: AtomicU64,
    node_names: HashMap<SocketAddr, String>,
    node_requests: Mutex<BTreeMap<String, u64>>,
    versions_per_read: Mutex<BTreeMap<usize, u64>>,
    touched: Vec<AtomicBool>,
    cart: Mutex<CartBook>,
    errors: AtomicU64,
    in_flight: AtomicU64,
    queued: AtomicU64,
    padding: Vec<u8>,
    /// N: the replicas a key has (for `any-replica` routing).
    replicas: usize,
}

impl Shared {
    /// The name of the node a routed request goes to first (for the
    /// history's `node` field).
    fn first_node<E>(&self, routed: &Result<Vec<SocketAddr>, E>) -> Option<&str> {
        routed
            .as_ref()
            .ok()
            .and_then(|order| order.first())
            .and_then(|addr| self.node_names.get(addr))
            .map(String::as_str)
    }

    fn key_name(&self, index: u64) -> String {
        key_name(&self.spec.keys.prefix, index, self.spec.keys.count)
    }
}

/// Key `index` of a key space of `count` keys under `prefix`, zero-padded
/// to the width of the largest index so names sort as numbers.
pub fn key_name(prefix: &str, index: u64, count: u64) -> String {
    let width = (count.max(2) - 1).to_string().len();
    format!("{prefix}{index:0width$}")
}

/// Options of one drive.
pub struct DriveOptions {
    /// Show a progress line.
    pub progress: bool,
    /// Where HdrHistogram interval logs go.
    pub hlog: dynamo_reports::hlog::HistogramLog,
    /// The history file.
    pub history: std::path::PathBuf,
    /// Becomes true when the run is interrupted (SIGINT, SIGTERM): the
    /// scheduler stops issuing, operations in flight finish, the final
    /// reads are skipped, and the history is completed and synced.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Faults to do to a local cluster while the load runs.
    pub faults: Option<(World, Vec<Fault>)>,
    /// Where every second's operations, errors and latencies are added as
    /// they happen (a soak reads its windows from it).
    pub gauge: Option<Arc<Gauge>>,
}

/// The load's figures since they were last taken, added every second
/// while a drive runs: a soak's windows read it, across its generations.
#[derive(Debug, Default)]
pub struct Gauge {
    window: Mutex<GaugeWindow>,
}

/// What a [`Gauge`] gathered over one window.
#[derive(Clone, Debug, Default)]
pub struct GaugeWindow {
    /// Operations completed (ok or not).
    pub ops: u64,
    /// Of them, errors (timeouts, refusals, failed quorums).
    pub errors: u64,
    /// Latency from the intended start, every operation type together.
    pub latency: Option<hdrhistogram::Histogram<u64>>,
}

impl Gauge {
    /// What was gathered since the last call; starts a new window.
    pub fn take(&self) -> GaugeWindow {
        std::mem::take(&mut *self.window.lock().recover())
    }

    fn add(&self, ops: u64, errors: u64, latency: Option<hdrhistogram::Histogram<u64>>) {
        let mut window = self.window.lock().recover();
        window.ops += ops;
        window.errors += errors;
        match (&mut window.latency, latency) {
            (Some(all), Some(more)) => {
                let _ = all.add(&more);
            }
            (slot @ None, more) => *slot = more,
            (Some(_), None) => {}
        }
    }
}

impl GaugeWindow {
    /// The window's p99 (ms), 0 with no operation.
    pub fn p99_ms(&self) -> f64 {
        self.latency
            .as_ref()
            .map_or(0.0, |all| all.value_at_quantile(0.99) as f64 / 1000.0)
    }
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if status != 0 {
        return Duration::ZERO;
    }
    let time = |value: libc::timeval| Duration::new(value.tv_sec as u64, value.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Why a drive could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// No node of the cluster answered before the load began.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(#[from] ClientLibError),
    /// The history file could not be created or written.
    #[error("{path}: {source}")]
    History {
        /// The history file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A task of the driver itself panicked (a bug: its message says where).
    #[error("a driver task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The pacing of one drive: every operation's intended start is
/// `load_start + k · interval`, for `k` while it is before `total`.
#[derive(Clone, Copy)]
struct Pace {
    load_start: Instant,
    interval: Duration,
    warmup: Duration,
    total: Duration,
}

/// The scheduler's worst lateness and how many operations were late by
/// more than [`LAG_WARNING`].
type Lag = Arc<Mutex<(Duration, u64)>>;

/// Drives `spec` against `target`; returns what it measured. The history
/// is complete (and synced) when this returns.
///
/// # Errors
/// The cluster cannot be reached at the start, or the history cannot be
/// written.
pub async fn drive(spec: Spec, target: Target, options: DriveOptions) -> Result<Measured, DriveError> {
    let start = Instant::now();
    let cpu_start = cpu_time();
    let seeds: Vec<SocketAddr> = target.nodes.iter().map(|(_, addr)| *addr).collect();
    // Fail fast, with the reason, when the cluster is not there.
    Client::new(seeds.clone(), spec.load.timeout).view().await?;
    let history = HistoryWriter::create(&options.history, start).map_err(|source| DriveError::History {
        path: options.history.clone(),
        source,
    })?;
    let shared = Arc::new(Shared::new(&spec, &target, history));
    let (sender, receiver) = tokio::sync::mpsc::channel::<Scheduled>(QUEUE_OPERATIONS_MAX);
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let in_flight_limit = Arc::new(tokio::sync::Semaphore::new(spec.load.max_in_flight));
    let pace = Pace {
        load_start: Instant::now(),
        interval: Duration::from_secs_f64(1.0 / spec.load.rate),
        warmup: spec.load.warmup,
        total: spec.load.warmup + spec.load.duration,
    };
    let lag: Lag = Arc::default();
    let nemesis = options
        .faults
        .map(|(world, schedule)| Nemesis::start(world, schedule, Arc::clone(&shared.history), pace.load_start));
    let scheduler = tokio::spawn(schedule(
        spec.clone(),
        pace,
        sender,
        lag.clone(),
        options.stop.clone(),
        Arc::clone(&shared.history),
    ));
    let workers: Vec<_> = (0..spec.load.clients)
        .map(|index| {
            let client = Client::new(seeds.clone(), spec.load.timeout);
            let worker = Worker::new(client, shared.clone(), index as u64);
            tokio::spawn(worker.run(receiver.clone(), in_flight_limit.clone()))
        })
        .collect();
    let finished = Arc::new(AtomicBool::new(false));
    let ticker = tokio::spawn(tick(
        shared.clone(),
        pace,
        options.progress,
        options.hlog,
        options.gauge,
        finished.clone(),
    ));

    let scheduled = scheduler.await?;
    for worker in workers {
        let _ = worker.await;
    }
    let load_end = Instant::now();
    finished.store(true, Ordering::Relaxed);
    let hlog = ticker.await?;
    let cpu = cpu_time().saturating_sub(cpu_start);
    let (totals, clamped) = {
        let mut recorder = shared.recorder.lock().recover();
        recorder.rotate();
        (recorder.totals().clone(), recorder.clamped)
    };
    let _ = hlog.finish();

    let interrupted = *options.stop.borrow();
    // Every fault healed, and the hints written meanwhile handed off,
    // before the final reads.
    let had_faults = nemesis.is_some();
    let fault_problems = nemesis.map(Nemesis::finish).unwrap_or_default();
    // A history that could not be written (a full disk) ends the drive
    // here, its faults healed: final reads would not be recorded either.
    if shared.history.failed() {
        let error = shared
            .history
            .finish()
            .err()
            .unwrap_or_else(|| std::io::Error::other("a write failed"));
        return Err(DriveError::History {
            path: options.history.clone(),
            source: std::io::Error::new(
                error.kind(),
                format!(
                    "{error}; the load stopped {:.1} s in, when the history could no longer be written",
                    (load_end - pace.load_start).as_secs_f64()
                ),
            ),
        });
    }
    if had_faults {
        wait_for_handoff(&seeds, spec.load.timeout, options.progress).await;
    }
    // Before the final reads, whose own read repairs are not the run's.
    let (repair, node_resources) = repair_figures(&seeds, spec.load.timeout).await;
    let (final_reads, final_reads_failed, keys_touched) =
        final_reads(&shared, &target, options.progress && !interrupted, interrupted).await;
    let events = shared.history.finish().map_err(|source| DriveError::History {
        path: options.history.clone(),
        source,
    })?;
    debug_assert!(events > 0 || scheduled == 0);

    let (lag_max, lagged_operations) = *lag.lock().recover();
    let node_requests = shared.node_requests.lock().recover().clone();
    let versions_per_read = shared.versions_per_read.lock().recover().clone();
    Ok(Measured {
        totals,
        // From the first measured intended start to the last completion.
        measured_seconds: load_end
            .saturating_duration_since(pace.load_start + pace.warmup)
            .as_secs_f64(),
        scheduled,
        node_requests,
        versions_per_read,
        lag_max,
        lagged_operations,
        queued_operations: shared.queued.load(Ordering::Relaxed),
        cpu,
        wall: load_end.saturating_duration_since(pace.load_start),
        final_reads,
        final_reads_failed,
        keys_touched,
        cart: spec.is_cart().then(|| cart_figures(&shared)),
        repair,
        node_resources,
        fault_problems,
        clamped,
    })
}

/// The nodes' repair counters, summed: read repairs, handoffs,
/// anti-entropy. A node that restarted during the run counts from its
/// restart, so under kill faults they are lower bounds.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RepairFigures {
    /// Nodes that answered.
    pub nodes: usize,
    /// Replicas repaired after gets.
    pub read_repairs: u64,
    /// Hints handed off and acknowledged.
    pub handoffs: u64,
    /// Anti-entropy exchanges run to the end.
    pub exchanges: u64,
    /// Bytes of hash-tree traffic in them.
    pub exchange_bytes: u64,
    /// Keys anti-entropy changed on some replica.
    pub entropy_repairs: u64,
    /// Tombstones removed.
    pub tombstones_reaped: u64,
}

/// The nodes' repair counters, summed, and each node's resources.
async fn repair_figures(
    seeds: &[SocketAddr],
    timeout: Duration,
) -> (RepairFigures, BTreeMap<String, dynamo_core::admin::ProcessFigures>) {
    let client = Client::new(seeds.to_vec(), timeout);
    let mut figures = RepairFigures::default();
    let mut resources = BTreeMap::new();
    for addr in seeds {
        if let Ok(stats) = client.stats(*addr).await {
            resources.insert(addr.to_string(), stats.process.clone());
            let protocol = stats.protocol;
            figures.nodes += 1;
            figures.read_repairs += protocol.read_repairs;
            figures.handoffs += protocol.handoffs;
            figures.exchanges += protocol.exchanges;
            figures.exchange_bytes += protocol.exchange_bytes;
            figures.entropy_repairs += protocol.entropy_repairs;
            figures.tombstones_reaped += protocol.tombstones_reaped;
        }
    }
    (figures, resources)
}

/// Waits (up to a minute) until no node holds hints: what was written
/// while a node was away has been handed to it.
async fn wait_for_handoff(seeds: &[SocketAddr], timeout: Duration, progress: bool) {
    let client = Client::new(seeds.to_vec(), timeout);
    let started = Instant::now();
    loop {
        let mut pending = 0;
        for addr in seeds {
            pending += client.stats(*addr).await.map_or(1, |stats| stats.hints_pending);
        }
        if pending == 0 {
            return;
        }
        if started.elapsed() > Duration::from_secs(60) {
            eprintln!("note: {pending} hints still pending after a minute; final reads go ahead");
            return;
        }
        if progress && started.elapsed().as_secs() % 5 == 0 {
            eprintln!("waiting for hinted handoff: {pending} hints pending");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl Shared {
    fn new(spec: &Spec, target: &Target, history: HistoryWriter) -> Shared {
        Shared {
            history: Arc::new(history),
            recorder: Mutex::new(LatencyRecorder::new()),
            next_op: AtomicU64::new(0),
            next_process: AtomicU64::new(spec.load.clients as u64),
            node_names: target.nodes.iter().map(|(name, addr)| (*addr, name.clone())).collect(),
            node_requests: Mutex::new(target.nodes.iter().map(|(name, _)| (name.clone(), 0)).collect()),
            versions_per_read: Mutex::new(BTreeMap::new()),
            touched: (0..spec.keys.count).map(|_| AtomicBool::new(false)).collect(),
            cart: Mutex::new(CartBook::default()),
            errors: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            padding: vec![b'.'; spec.keys.value_bytes],
            replicas: target.n,
            spec: spec.clone(),
        }
    }
}

/// The scheduler: issues every operation at its intended start (open
/// loop), whatever the clients are doing; returns how many it issued.
async fn schedule(
    spec: Spec,
    pace: Pace,
    sender: tokio::sync::mpsc::Sender<Scheduled>,
    lag: Lag,
    mut stop: tokio::sync::watch::Receiver<bool>,
    history: Arc<HistoryWriter>,
) -> u64 {
    let mut rng = Rng::new(spec.seed);
    let mut chooser = KeyChooser::new(spec.keys.count, spec.keys.distribution);
    let weight_total: u64 = spec.mix.iter().map(|(_, weight)| *weight as u64).sum();
    let mut scheduled = 0u64;
    // On time to the microsecond: tokio's timer rounds each sleep up to
    // the next millisecond, and that rounding was counted in every
    // latency from the intended start (see `dynamo_client::pace`).
    let precise = match dynamo_client::pace::PreciseSleep::new() {
        Ok(precise) => Some(precise),
        Err(error) => {
            eprintln!("note: no timerfd ({error}): operations are issued on the runtime's millisecond timer");
            None
        }
    };
    loop {
        let offset = pace.interval.mul_f64(scheduled as f64);
        if offset >= pace.total {
            break;
        }
        let intended = pace.load_start + offset;
        if *stop.borrow() || history.failed() {
            break;
        }
        if intended > Instant::now() {
            let on_time = async {
                match &precise {
                    Some(precise) => {
                        if precise.until(intended).await.is_err() {
                            tokio::time::sleep_until(intended.into()).await;
                        }
                    }
                    None => tokio::time::sleep_until(intended.into()).await,
                }
            };
            tokio::select! {
                () = on_time => {}
                _ = stop.changed() => break,
            }
        }
        let late = Instant::now().saturating_duration_since(intended);
        {
            let mut lag = lag.lock().recover();
            lag.0 = lag.0.max(late);
            if late > LAG_WARNING {
                lag.1 += 1;
            }
        }
        let kind = choose_kind(&spec.mix, rng.below(weight_total));
        let key = chooser.choose(kind, &mut rng);
        let operation = Scheduled {
            intended,
            dispatched: Instant::now(),
            kind,
            key,
            measured: offset >= pace.warmup,
        };
        tokio::select! {
            sent = sender.send(operation) => if sent.is_err() { break },
            _ = stop.changed() => break,
        }
        scheduled += 1;
    }
    scheduled
}

/// The operation a draw of `pick` in `[0, total weight)` lands on.
fn choose_kind(mix: &[(OpKind, u32)], mut pick: u64) -> OpKind {
    for (candidate, weight) in mix {
        if pick < u64::from(*weight) {
            return *candidate;
        }
        pick -= u64::from(*weight);
    }
    mix[0].0
}

/// Every second: the histogram log's interval, the progress line; stops
/// after the load has finished. Returns the log, to be finished.
async fn tick(
    shared: Arc<Shared>,
    pace: Pace,
    progress: bool,
    hlog: dynamo_reports::hlog::HistogramLog,
    gauge: Option<Arc<Gauge>>,
    finished: Arc<AtomicBool>,
) -> dynamo_reports::hlog::HistogramLog {
    let mut tick = tokio::time::interval_at(
        (pace.load_start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    let mut second = 0u64;
    let mut errors_before = 0;
    let is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    loop {
        tick.tick().await;
        let elapsed = pace.load_start.elapsed();
        let intervals = shared.recorder.lock().recover().rotate();
        let all = merged(&intervals);
        let (count, p99) = all
            .as_ref()
            .map_or((0, 0.0), |all| (all.len(), all.value_at_quantile(0.99) as f64 / 1000.0));
        hlog.add(intervals, Duration::from_secs(second), Duration::from_secs(1));
        second += 1;
        let errors = shared.errors.load(Ordering::Relaxed);
        if let Some(gauge) = &gauge {
            gauge.add(count, errors - errors_before, all);
        }
        if progress {
            let line = format!(
                "[{:>6.1}s/{:.0}s] {:>7} ops/s  errors {:<5} p99 {:>8.2} ms  in flight {:<4} queued {}{}",
                elapsed.as_secs_f64(),
                pace.total.as_secs_f64(),
                count,
                errors - errors_before,
                p99,
                shared.in_flight.load(Ordering::Relaxed),
                shared.queued.load(Ordering::Relaxed),
                if elapsed < pace.warmup { "  (warm-up)" } else { "" }
            );
            if is_terminal {
                eprint!("\r{line}\x1b[K");
            } else if second % 5 == 0 {
                eprintln!("{line}");
            }
        }
        errors_before = errors;
        if finished.load(Ordering::Relaxed) {
            break;
        }
    }
    if progress && is_terminal {
        eprintln!();
    }
    hlog
}

/// One interval's latencies from the intended start, every operation type
/// together.
fn merged(intervals: &BTreeMap<String, Pair>) -> Option<hdrhistogram::Histogram<u64>> {
    let mut all: Option<hdrhistogram::Histogram<u64>> = None;
    for pair in intervals.values() {
        match &mut all {
            None => all = Some(pair.intended.clone()),
            Some(all) => {
                let _ = all.add(&pair.intended);
            }
        }
    }
    all
}
