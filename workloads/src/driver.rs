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

use dynamo_node::sync::Recover;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_client::Client;
use dynamo_client::Error as ClientLibError;
use dynamo_core::protocol::{ClientError, ClientReply, ClientRequest};
use dynamo_core::version::VectorClock;
use dynamo_reports::latency::Pair;
use dynamo_reports::LatencyRecorder;

use crate::keys::{KeyChooser, Rng};
use crate::record::{Completion, HistoryWriter, Invoke};
use crate::spec::{OpKind, Spec};

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
    /// Keys touched.
    pub keys_touched: u64,
    /// Cart figures, when the spec is a cart.
    pub cart: Option<CartFigures>,
    /// Latencies clamped to the histogram's bound.
    pub clamped: u64,
}

/// The cart's own figures.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CartFigures {
    /// Acknowledged adds.
    pub adds_acknowledged: u64,
    /// Acknowledged adds missing from the final carts, not removed by a
    /// checkout (must be 0).
    pub adds_missing: u64,
    /// Items a checkout removed that came back in the final carts (the
    /// paper's known anomaly: reported, not a violation).
    pub deleted_items_returned: u64,
    /// Keys judged (those with a final read).
    pub carts_judged: u64,
    /// Some missing items, for the report: (key, item).
    pub missing_examples: Vec<(String, String)>,
}

#[derive(Default)]
struct CartBook {
    /// Key → items whose add was acknowledged.
    added: HashMap<u64, Vec<u64>>,
    /// Key → items a checkout saw and deleted (ok or info).
    checked_out: HashMap<u64, HashSet<u64>>,
    /// Key → the items of its first final read.
    finals: HashMap<u64, HashSet<u64>>,
}

struct Shared {
    spec: Spec,
    history: HistoryWriter,
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
    key_width: usize,
    padding: Vec<u8>,
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
        format!("{}{:0width$}", self.spec.keys.prefix, index, width = self.key_width)
    }
}

/// A stored value: `<value id>\n<cart items, comma-separated>\n<padding>`.
fn encode_value(shared: &Shared, id: &str, items: Option<&[u64]>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(shared.spec.keys.value_bytes.max(id.len() + 2));
    bytes.extend_from_slice(id.as_bytes());
    bytes.push(b'\n');
    if let Some(items) = items {
        for (index, item) in items.iter().enumerate() {
            if index > 0 {
                bytes.push(b',');
            }
            bytes.extend_from_slice(format!("i{item}").as_bytes());
        }
        bytes.push(b'\n');
    }
    let missing = shared.spec.keys.value_bytes.saturating_sub(bytes.len());
    bytes.extend_from_slice(&shared.padding[..missing.min(shared.padding.len())]);
    bytes
}

/// The value id a stored value carries (its bytes up to the first newline).
fn value_id(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&byte| byte == b'\n').unwrap_or(bytes.len());
    match std::str::from_utf8(&bytes[..end]) {
        Ok(id) if !id.is_empty() => id.to_string(),
        _ => format!(
            "unrecognised:{}",
            dynamo_core::codec::base64url_encode(&bytes[..end.min(32)])
        ),
    }
}

/// The cart items a stored value holds.
fn cart_items(bytes: &[u8]) -> Vec<u64> {
    let mut lines = bytes.split(|&byte| byte == b'\n');
    let _id = lines.next();
    let Some(items) = lines.next() else { return Vec::new() };
    items
        .split(|&byte| byte == b',')
        .filter_map(|item| std::str::from_utf8(item).ok()?.strip_prefix('i')?.parse().ok())
        .collect()
}

/// One logical client: a process id (renewed after an indeterminate
/// outcome), its own connections, its contexts for `update`.
struct Worker {
    shared: Arc<Shared>,
    client: Client,
    process: u64,
    contexts: HashMap<u64, (Vec<String>, VectorClock)>,
    measured: bool,
}

/// A get's result in history terms.
struct Read {
    ids: Vec<String>,
    values: Vec<Vec<u8>>,
    context: VectorClock,
}

enum Outcome<T> {
    /// Acknowledged (a get: answered).
    Done(T),
    /// Definitely did not take effect.
    Failed,
    /// A write that may or may not have taken effect (`info`).
    Unknown,
}

impl Worker {
    fn retire(&mut self) {
        self.process = self.shared.next_process.fetch_add(1, Ordering::Relaxed);
    }

    fn count_node(&self, addr: SocketAddr) {
        if self.measured {
            if let Some(name) = self.shared.node_names.get(&addr) {
                *self
                    .shared
                    .node_requests
                    .lock()
                    .recover()
                    .entry(name.clone())
                    .or_insert(0) += 1;
            }
        }
    }

    async fn get(
        &mut self,
        key: u64,
        r: Option<usize>,
        order: Option<Vec<SocketAddr>>,
        is_final: bool,
    ) -> Outcome<Read> {
        let shared = self.shared.clone();
        let key_name = shared.key_name(key);
        let op = shared.next_op.fetch_add(1, Ordering::Relaxed);
        let routed = match order {
            Some(order) => Ok(order),
            None => self.client.route(key_name.as_bytes()).await,
        };
        let node = shared.first_node(&routed);
        shared.history.invoke(&Invoke {
            process: self.process,
            op,
            f: "get",
            key: &key_name,
            value: None,
            context: None,
            node,
            is_final,
        });
        let order = match routed {
            Ok(order) => order,
            Err(error) => return self.not_sent(op, "get", &error.to_string()),
        };
        let request = ClientRequest::Get {
            key: key_name.clone().into_bytes(),
            r,
        };
        match self.client.request_routed(&order, request).await {
            Ok((ClientReply::Got { values, context }, addr)) => {
                self.count_node(addr);
                let ids: Vec<String> = values.iter().map(|value| value_id(value)).collect();
                shared.history.complete(self.process, op, "get", Completion::Got(&ids));
                if self.measured && !is_final {
                    *shared.versions_per_read.lock().recover().entry(ids.len()).or_insert(0) += 1;
                }
                Outcome::Done(Read { ids, values, context })
            }
            Ok((other, _)) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let error = format!("unexpected reply {other:?}");
                shared
                    .history
                    .complete(self.process, op, "get", Completion::Fail(&error));
                Outcome::Failed
            }
            Err(error) => {
                // A get has no effect: whatever went wrong, it did not
                // take effect.
                shared.errors.fetch_add(1, Ordering::Relaxed);
                shared
                    .history
                    .complete(self.process, op, "get", Completion::Fail(&error.to_string()));
                Outcome::Failed
            }
        }
    }

    /// An operation that could not even be routed (its invoke is written):
    /// failed, since nothing was sent.
    fn not_sent<T>(&mut self, op: u64, f: &str, error: &str) -> Outcome<T> {
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        self.shared
            .history
            .complete(self.process, op, f, Completion::Fail(error));
        Outcome::Failed
    }

    /// Writes `value` (a delete with `None`) with `context`, whose value ids
    /// are `covered`. `items` are the cart's items for the stored bytes.
    async fn put(
        &mut self,
        key: u64,
        covered: Vec<String>,
        context: VectorClock,
        delete: bool,
        items: Option<&[u64]>,
    ) -> Outcome<u64> {
        let shared = self.shared.clone();
        let key_name = shared.key_name(key);
        let op = shared.next_op.fetch_add(1, Ordering::Relaxed);
        let id = format!("v{op}");
        let f = if delete { "delete" } else { "put" };
        let routed = self.client.route(key_name.as_bytes()).await;
        let node = shared.first_node(&routed);
        shared.touched[key as usize].store(true, Ordering::Relaxed);
        shared.history.invoke(&Invoke {
            process: self.process,
            op,
            f,
            key: &key_name,
            value: Some(&id),
            context: Some(&covered),
            node,
            is_final: false,
        });
        let order = match routed {
            Ok(order) => order,
            // Nothing was sent: the write definitely did not happen.
            Err(error) => return self.not_sent(op, f, &error.to_string()),
        };
        let value = (!delete).then(|| encode_value(&shared, &id, items));
        let request = ClientRequest::Put {
            key: key_name.into_bytes(),
            context,
            value,
            w: None,
        };
        match self.client.request_routed(&order, request).await {
            Ok((ClientReply::Stored, addr)) => {
                self.count_node(addr);
                shared.history.complete(self.process, op, f, Completion::Stored);
                Outcome::Done(op)
            }
            Ok((
                ClientReply::Failed(
                    error @ (ClientError::BadRequest(_) | ClientError::ShuttingDown | ClientError::Unavailable(_)),
                ),
                addr,
            )) => {
                // Refused before anything was stored.
                self.count_node(addr);
                shared.errors.fetch_add(1, Ordering::Relaxed);
                shared
                    .history
                    .complete(self.process, op, f, Completion::Fail(&error.to_string()));
                Outcome::Failed
            }
            other => {
                // Timed out, storage failed, connection lost: the write may
                // have reached some replicas. Indeterminate; the process
                // id is retired.
                shared.errors.fetch_add(1, Ordering::Relaxed);
                let error = match other {
                    Ok((reply, _)) => format!("{reply:?}"),
                    Err(ClientLibError::Failed(error)) => error.to_string(),
                    Err(error) => error.to_string(),
                };
                shared.history.complete(self.process, op, f, Completion::Info(&error));
                self.retire();
                Outcome::Unknown
            }
        }
    }

    fn remember(&mut self, key: u64, read: &Read) {
        if self.contexts.len() >= CACHED_CONTEXTS_MAX && !self.contexts.contains_key(&key) {
            if let Some(&old) = self.contexts.keys().next() {
                self.contexts.remove(&old);
            }
        }
        self.contexts.insert(key, (read.ids.clone(), read.context.clone()));
    }

    /// Runs one scheduled operation; true when every request succeeded.
    async fn execute(&mut self, kind: OpKind, key: u64) -> bool {
        let shared = self.shared.clone();
        shared.touched[key as usize].store(true, Ordering::Relaxed);
        match kind {
            OpKind::Read | OpKind::View => match self.get(key, None, None, false).await {
                Outcome::Done(read) => {
                    self.remember(key, &read);
                    true
                }
                Outcome::Failed | Outcome::Unknown => false,
            },
            OpKind::Write => matches!(
                self.put(key, Vec::new(), VectorClock::default(), false, None).await,
                Outcome::Done(_)
            ),
            OpKind::Update => {
                let (covered, context) = self.contexts.remove(&key).unwrap_or_default();
                matches!(self.put(key, covered, context, false, None).await, Outcome::Done(_))
            }
            OpKind::ReadModifyWrite | OpKind::Delete | OpKind::Add | OpKind::Checkout => {
                let Outcome::Done(read) = self.get(key, None, None, false).await else {
                    return false;
                };
                match kind {
                    OpKind::ReadModifyWrite => matches!(
                        self.put(key, read.ids, read.context, false, None).await,
                        Outcome::Done(_)
                    ),
                    OpKind::Delete => {
                        read.ids.is_empty()
                            || matches!(
                                self.put(key, read.ids, read.context, true, None).await,
                                Outcome::Done(_)
                            )
                    }
                    OpKind::Add => {
                        // Merge the siblings by union, add an item.
                        let mut items: Vec<u64> = read.values.iter().flat_map(|value| cart_items(value)).collect();
                        items.sort_unstable();
                        items.dedup();
                        let item = shared.next_op.fetch_add(1, Ordering::Relaxed);
                        items.push(item);
                        match self.put(key, read.ids, read.context, false, Some(&items)).await {
                            Outcome::Done(_) => {
                                shared.cart.lock().recover().added.entry(key).or_default().push(item);
                                true
                            }
                            Outcome::Failed | Outcome::Unknown => false,
                        }
                    }
                    _ => {
                        // Checkout: delete the cart that was read.
                        if read.ids.is_empty() {
                            return true;
                        }
                        let items: HashSet<u64> = read.values.iter().flat_map(|value| cart_items(value)).collect();
                        let outcome = self.put(key, read.ids, read.context, true, None).await;
                        // Acknowledged or indeterminate, these items may be
                        // gone: they are no longer owed to the final cart. A
                        // delete that definitely failed removed nothing.
                        if !matches!(outcome, Outcome::Failed) {
                            shared
                                .cart
                                .lock()
                                .recover()
                                .checked_out
                                .entry(key)
                                .or_default()
                                .extend(items);
                        }
                        matches!(outcome, Outcome::Done(_))
                    }
                }
            }
        }
    }
}

/// Options of one drive.
pub struct DriveOptions {
    /// Show a progress line.
    pub progress: bool,
    /// Where HdrHistogram interval logs go.
    pub hlog: dynamo_reports::hlog::HistogramLog,
    /// The history file.
    pub history: std::path::PathBuf,
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
    let scheduler = tokio::spawn(schedule(spec.clone(), pace, sender, lag.clone()));
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

    let (final_reads, keys_touched) = final_reads(&shared, &target, options.progress).await;
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
        keys_touched,
        cart: spec.is_cart().then(|| cart_figures(&shared)),
        clamped,
    })
}

impl Shared {
    fn new(spec: &Spec, target: &Target, history: HistoryWriter) -> Shared {
        Shared {
            history,
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
            key_width: (spec.keys.count.max(2) - 1).to_string().len(),
            padding: vec![b'.'; spec.keys.value_bytes],
            spec: spec.clone(),
        }
    }
}

/// The scheduler: issues every operation at its intended start (open
/// loop), whatever the clients are doing; returns how many it issued.
async fn schedule(spec: Spec, pace: Pace, sender: tokio::sync::mpsc::Sender<Scheduled>, lag: Lag) -> u64 {
    let mut rng = Rng::new(spec.seed);
    let mut chooser = KeyChooser::new(spec.keys.count, spec.keys.distribution);
    let weight_total: u64 = spec.mix.iter().map(|(_, weight)| *weight as u64).sum();
    let mut scheduled = 0u64;
    loop {
        let offset = pace.interval.mul_f64(scheduled as f64);
        if offset >= pace.total {
            break;
        }
        let intended = pace.load_start + offset;
        if intended > Instant::now() {
            tokio::time::sleep_until(intended.into()).await;
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
        if sender.send(operation).await.is_err() {
            break;
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

impl Worker {
    fn new(client: Client, shared: Arc<Shared>, process: u64) -> Worker {
        Worker {
            client,
            shared,
            process,
            contexts: HashMap::new(),
            measured: false,
        }
    }

    /// Takes scheduled operations until the scheduler stops, one at a time,
    /// within the in-flight limit; records each one's latency from its
    /// intended start and from when it began.
    async fn run(
        mut self,
        receiver: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Scheduled>>>,
        limit: Arc<tokio::sync::Semaphore>,
    ) {
        let shared = self.shared.clone();
        loop {
            let next = receiver.lock().await.recv().await;
            let Some(operation) = next else { break };
            let Ok(_permit) = limit.acquire().await else { break };
            let began = Instant::now();
            // Waiting for a free client (or an in-flight slot), not the
            // scheduler's own timer slack (that is the lag above).
            if began.saturating_duration_since(operation.dispatched) > Duration::from_millis(1) {
                shared.queued.fetch_add(1, Ordering::Relaxed);
            }
            self.measured = operation.measured;
            shared.in_flight.fetch_add(1, Ordering::Relaxed);
            let ok = self.execute(operation.kind, operation.key).await;
            shared.in_flight.fetch_sub(1, Ordering::Relaxed);
            let done = Instant::now();
            let intended_us = done.saturating_duration_since(operation.intended).as_micros() as u64;
            let service_us = done.saturating_duration_since(began).as_micros() as u64;
            if operation.measured {
                shared
                    .recorder
                    .lock()
                    .recover()
                    .record(operation.kind.name(), intended_us, service_us, !ok);
            }
        }
    }
}

/// Every second: the histogram log's interval, the progress line; stops
/// after the load has finished. Returns the log, to be finished.
async fn tick(
    shared: Arc<Shared>,
    pace: Pace,
    progress: bool,
    hlog: dynamo_reports::hlog::HistogramLog,
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
        let (count, p99) = interval_summary(&intervals);
        hlog.add(intervals, Duration::from_secs(second), Duration::from_secs(1));
        second += 1;
        if progress {
            let errors = shared.errors.load(Ordering::Relaxed);
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
            errors_before = errors;
            if is_terminal {
                eprint!("\r{line}\x1b[K");
            } else if second % 5 == 0 {
                eprintln!("{line}");
            }
        }
        if finished.load(Ordering::Relaxed) {
            break;
        }
    }
    if progress && is_terminal {
        eprintln!();
    }
    hlog
}

/// Final reads: after a quiet period, every touched key through every
/// node, asking all N replicas. Returns the reads made and the keys
/// touched.
async fn final_reads(shared: &Arc<Shared>, target: &Target, progress: bool) -> (u64, u64) {
    let spec = &shared.spec;
    let keys_touched: Vec<u64> = (0..spec.keys.count)
        .filter(|&key| shared.touched[key as usize].load(Ordering::Relaxed))
        .collect();
    if !spec.check.final_reads {
        return (0, keys_touched.len() as u64);
    }
    if progress {
        eprintln!(
            "quiet for {:.1}s, then final reads of {} keys through {} nodes (R = N = {})",
            spec.check.quiet.as_secs_f64(),
            keys_touched.len(),
            target.nodes.len(),
            target.n
        );
    }
    tokio::time::sleep(spec.check.quiet).await;
    let reads = final_read_phase(shared, target, &keys_touched).await;
    (reads, keys_touched.len() as u64)
}

fn interval_summary(intervals: &BTreeMap<String, Pair>) -> (u64, f64) {
    let mut all: Option<hdrhistogram::Histogram<u64>> = None;
    for pair in intervals.values() {
        match &mut all {
            None => all = Some(pair.intended.clone()),
            Some(all) => {
                let _ = all.add(&pair.intended);
            }
        }
    }
    match all {
        Some(all) => (all.len(), all.value_at_quantile(0.99) as f64 / 1000.0),
        None => (0, 0.0),
    }
}

async fn final_read_phase(shared: &Arc<Shared>, target: &Target, keys: &[u64]) -> u64 {
    let jobs: Arc<Mutex<Vec<(u64, SocketAddr)>>> = Arc::new(Mutex::new(
        keys.iter()
            .flat_map(|&key| target.nodes.iter().map(move |(_, addr)| (key, *addr)))
            .rev()
            .collect(),
    ));
    let seeds: Vec<SocketAddr> = target.nodes.iter().map(|(_, addr)| *addr).collect();
    let done = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for _ in 0..FINAL_READERS {
        let shared = shared.clone();
        let jobs = jobs.clone();
        let seeds = seeds.clone();
        let done = done.clone();
        let n = target.n;
        readers.push(tokio::spawn(async move {
            let mut worker = Worker {
                client: Client::new(seeds, shared.spec.load.timeout),
                process: shared.next_process.fetch_add(1, Ordering::Relaxed),
                shared: shared.clone(),
                contexts: HashMap::new(),
                measured: false,
            };
            loop {
                let job = jobs.lock().recover().pop();
                let Some((key, addr)) = job else { break };
                if let Outcome::Done(read) = worker.get(key, Some(n), Some(vec![addr]), true).await {
                    let items: HashSet<u64> = read.values.iter().flat_map(|value| cart_items(value)).collect();
                    shared.cart.lock().recover().finals.entry(key).or_insert(items);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for reader in readers {
        let _ = reader.await;
    }
    done.load(Ordering::Relaxed)
}

fn cart_figures(shared: &Shared) -> CartFigures {
    let book = shared.cart.lock().recover();
    let mut figures = CartFigures::default();
    for (key, added) in &book.added {
        figures.adds_acknowledged += added.len() as u64;
        let Some(final_items) = book.finals.get(key) else {
            continue;
        };
        let removed = book.checked_out.get(key);
        for item in added {
            let checked_out = removed.is_some_and(|removed| removed.contains(item));
            if !final_items.contains(item) && !checked_out {
                figures.adds_missing += 1;
                if figures.missing_examples.len() < 10 {
                    figures
                        .missing_examples
                        .push((shared.key_name(*key), format!("i{item}")));
                }
            }
        }
    }
    for (key, final_items) in &book.finals {
        figures.carts_judged += 1;
        if let Some(removed) = book.checked_out.get(key) {
            figures.deleted_items_returned += final_items.iter().filter(|item| removed.contains(item)).count() as u64;
        }
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_their_id_and_cart_items() {
        let bytes = b"v42\ni1,i7,i9\n....".to_vec();
        assert_eq!(value_id(&bytes), "v42");
        assert_eq!(cart_items(&bytes), vec![1, 7, 9]);
        assert_eq!(value_id(b"v3\n...."), "v3");
        assert!(cart_items(b"v3\n").is_empty());
        assert!(value_id(b"\xff\xfe").starts_with("unrecognised:"));
    }
}
