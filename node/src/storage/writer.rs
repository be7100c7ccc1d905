//! The storage thread: drains the commit queue in batches and turns each
//! batch into one group commit.

use crate::sync::Recover;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::commit_log::CommitLog;
use super::commit_queue::CommitQueue;
use super::format::{encode_record, RecordKind};
use super::io::{run_positioned, Backend, WriteOp};
use super::keydir::StoredKey;
use super::partition::{Partition, Segment, NO_SEGMENT};
use super::{sync_dir, Location, OnDurable, Shared, StorageError, SyncPolicy};
use crate::limits::{COMMIT_BATCH_BYTES_MAX, COMMIT_BATCH_WRITES_MAX};
use crate::storage::format::SegmentId;
use dynamo_core::ids::PartitionId;

/// What writers hand to the storage thread.
pub(crate) enum Command {
    /// Append one record.
    Write(WriteRequest),
    /// Sync every file with acknowledged but unsynced writes.
    Flush { done: OnDurable },
}

/// One record to append, and whom to tell.
pub(crate) struct WriteRequest {
    pub partition: PartitionId,
    pub kind: RecordKind,
    /// Built on the caller's thread: it becomes the key directory's entry as is.
    pub key: StoredKey,
    pub payload: Vec<u8>,
    pub done: OnDurable,
}

impl Command {
    fn bytes(&self) -> usize {
        match self {
            Command::Write(request) => request.key.len() + request.payload.len() + 32,
            Command::Flush { .. } => 0,
        }
    }
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Write(request) => write!(
                f,
                "Write({}, {:?}, {} key bytes)",
                request.partition,
                request.kind,
                request.key.len()
            ),
            Command::Flush { .. } => write!(f, "Flush"),
        }
    }
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    queue: Arc<CommitQueue<Command>>,
    backend: Backend,
    log: Option<CommitLog>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("dynamo-storage".into())
        .spawn(move || {
            Writer {
                shared,
                queue,
                backend,
                appenders: HashMap::new(),
                last_sync: Instant::now(),
                previous_batch: 0,
                syncer: None,
                log,
                sealed: Vec::new(),
            }
            .run()
        })
}

/// Where one partition's appends go.
struct Appender {
    partition: Arc<Partition>,
    segment: Arc<Segment>,
    /// End of the data in the active segment.
    end: u64,
    /// Acknowledged writes not yet synced.
    dirty: bool,
}

struct Writer {
    shared: Arc<Shared>,
    queue: Arc<CommitQueue<Command>>,
    backend: Backend,
    appenders: HashMap<PartitionId, Appender>,
    last_sync: Instant,
    /// Writes in the last non-empty batch (see the yield in `run`).
    previous_batch: usize,
    /// With `batch`: the thread that runs the periodic syncs.
    syncer: Option<Syncer>,
    /// With `always`: the node-wide commit log every batch goes to first.
    log: Option<CommitLog>,
    /// With the log: segments sealed with writes not yet synced (the log
    /// holds them), synced at the next checkpoint rather than on this
    /// thread at the roll.
    sealed: Vec<(Arc<Partition>, Arc<Segment>)>,
}

/// The periodic syncs of the `batch` policy, on a thread of their own.
///
/// Under `batch` an acknowledgement never waits for a sync, so appends
/// should not either: when the storage thread itself ran the periodic
/// fdatasyncs, one slow sync (all nodes of a local cluster share a disk,
/// so they stall together and W replicas cannot mask it) held every append
/// behind it; the cart workload showed 100 ms write stalls at p99.9 while
/// reads stayed under 7 ms. Now the storage thread hands the dirty segments
/// to this thread and goes on appending; while a sync round runs, the next
/// one waits (segments stay dirty), so there is at most one in flight.
/// `flush`, segment rolls and shutdown wait for the round in flight, then
/// sync synchronously, so their guarantees are unchanged.
struct Syncer {
    state: Arc<(Mutex<SyncerState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct SyncerState {
    /// Segments to sync, handed over by the storage thread.
    job: Option<Vec<(Arc<Partition>, Arc<Segment>)>>,
    /// A round is running.
    busy: bool,
    stop: bool,
}

impl Syncer {
    fn start() -> std::io::Result<Syncer> {
        let state = Arc::new((Mutex::new(SyncerState::default()), Condvar::new()));
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("dynamo-sync".into())
            .spawn(move || loop {
                let (lock, wake) = &*shared;
                let job = {
                    let mut state = lock.lock().recover();
                    loop {
                        if let Some(job) = state.job.take() {
                            state.busy = true;
                            break job;
                        }
                        if state.stop {
                            return;
                        }
                        state = wake.wait(state).recover();
                    }
                };
                for (partition, segment) in job {
                    if let Err(error) = segment.file.sync_data() {
                        Writer::fail(&partition, &StorageError::io(&segment.path, error));
                    }
                }
                lock.lock().recover().busy = false;
                wake.notify_all();
            })?;
        Ok(Syncer {
            state,
            thread: Some(thread),
        })
    }

    /// Hands over a round unless one is in flight; false when busy.
    fn offer(&self, job: impl FnOnce() -> Vec<(Arc<Partition>, Arc<Segment>)>) -> bool {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().recover();
        if state.busy || state.job.is_some() {
            return false;
        }
        state.job = Some(job());
        wake.notify_all();
        true
    }

    /// Waits until no round is queued or running.
    fn wait_idle(&self) {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().recover();
        while state.busy || state.job.is_some() {
            state = wake.wait(state).recover();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.state;
        lock.lock().recover().stop = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Stops `partition` taking writes after a failed write or sync.
pub(super) fn fail_partition(partition: &Partition, error: &StorageError) {
    Writer::fail(partition, error);
}

/// Tells a writer the outcome of its write. A completion that panics is a
/// bug in its caller, but it must not take the storage thread down with it:
/// every other writer, now and later, would wait for an answer forever.
fn acknowledge(done: OnDurable, result: Result<(), StorageError>) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || done(result))).is_err() {
        log::error!("a write's completion callback panicked; the storage thread goes on");
    }
}

/// A batch smaller than this, right after a batch of more than one write,
/// yields once to let writers that are resubmitting join it.
const YIELD_BELOW_BATCH: usize = 64;

/// A write placed in a group commit, waiting for its outcome.
struct Placed {
    kind: RecordKind,
    key: StoredKey,
    location: Location,
    done: OnDurable,
}

impl Writer {
    fn run(mut self) {
        if let SyncPolicy::Batch { .. } = self.shared.config.sync {
            match Syncer::start() {
                Ok(syncer) => self.syncer = Some(syncer),
                Err(error) => log::warn!("no sync thread ({error}): periodic syncs run on the storage thread"),
            }
        }
        loop {
            let timeout = match self.shared.config.sync {
                SyncPolicy::Batch { interval } if self.appenders.values().any(|appender| appender.dirty) => {
                    Some(interval.saturating_sub(self.last_sync.elapsed()))
                }
                _ => None,
            };
            let mut batch_bytes = 0usize;
            let mut drained = self.queue.drain(COMMIT_BATCH_WRITES_MAX, timeout, |command| {
                batch_bytes += command.bytes();
                batch_bytes < COMMIT_BATCH_BYTES_MAX
            });
            // Group commit forms batches from whatever has arrived. Right
            // after a commit acknowledged a batch of several writes, its
            // writers are still busy handing in their next writes; cutting
            // the next batch at once would commit a few of them and make the
            // rest wait a whole fdatasync. So a small batch that follows a
            // batch of more than one yields the core once and takes what
            // arrived meanwhile; a lone writer never yields. Measured (1 KiB,
            // sync always, 64 in flight, one partition): 71k/s without,
            // 77k-129k/s with, run to run; 1 in flight unchanged.
            if !drained.items.is_empty() && self.previous_batch > 1 && drained.items.len() < YIELD_BELOW_BATCH {
                std::thread::yield_now();
                let room = COMMIT_BATCH_WRITES_MAX - drained.items.len();
                let more = self.queue.drain(room, Some(std::time::Duration::ZERO), |command| {
                    batch_bytes += command.bytes();
                    batch_bytes < COMMIT_BATCH_BYTES_MAX
                });
                drained.items.extend(more.items);
            }
            if !drained.items.is_empty() {
                self.previous_batch = drained.items.len();
            }
            if drained.finished {
                if self.log.is_some() {
                    // Partition files are synced only at checkpoints: all
                    // of them now, then the last checkpoint.
                    for appender in self.appenders.values_mut() {
                        appender.dirty = true;
                    }
                }
                match self.sync_dirty() {
                    Err(error) => log::error!("final sync at shutdown failed: {error}"),
                    Ok(()) => {
                        if let Some(Err(error)) = self.log.as_mut().map(CommitLog::close) {
                            log::error!("the commit log's last checkpoint failed: {error}");
                        }
                    }
                }
                if self.shared.config.sync == SyncPolicy::None {
                    // Segments created under `none` were not synced into
                    // their directories: a clean shutdown still leaves
                    // every file findable after a power cut.
                    if let Err(error) = self.sync_directories() {
                        log::error!("syncing directories at shutdown failed: {error}");
                    }
                }
                return;
            }
            let mut writes = Vec::with_capacity(drained.items.len());
            let mut flushes = Vec::new();
            for command in drained.items {
                match command {
                    Command::Flush { done } => flushes.push(done),
                    Command::Write(request) => writes.push(request),
                }
            }
            if !writes.is_empty() {
                self.commit(writes);
                self.checkpoint();
            }
            if let SyncPolicy::Batch { interval } = self.shared.config.sync {
                if self.last_sync.elapsed() >= interval {
                    self.periodic_sync();
                }
            }
            if !flushes.is_empty() {
                let result = self.sync_dirty();
                for done in flushes {
                    acknowledge(done, result.clone());
                }
            }
        }
    }

    /// Each partition's write is synced before it is acknowledged
    /// (`always` without a commit log; with one, the log's sync is).
    fn sync_on_ack(&self) -> bool {
        self.shared.config.sync == SyncPolicy::Always && self.log.is_none()
    }

    /// The appender of a partition, creating the partition or its first
    /// segment as needed, and rolling a full segment.
    fn appender(&mut self, id: PartitionId) -> Result<&mut Appender, StorageError> {
        if !self.appenders.contains_key(&id) {
            let partition = match self.shared.partition(id) {
                Some(partition) => partition,
                None => {
                    let created = Arc::new(Partition::create(&self.shared.root, id)?);
                    Arc::clone(self.shared.partitions.write().recover().entry(id).or_insert(created))
                }
            };
            let active = partition.active_segment.load(Ordering::Acquire);
            let existing = (active != NO_SEGMENT)
                .then(|| {
                    partition
                        .state
                        .read()
                        .recover()
                        .segments
                        .get(&SegmentId(active))
                        .cloned()
                })
                .flatten();
            let segment = match existing {
                Some(segment) => segment,
                None => self.new_segment(&partition)?,
            };
            let end = segment.len.load(Ordering::Acquire);
            self.appenders.insert(
                id,
                Appender {
                    partition,
                    segment,
                    end,
                    dirty: false,
                },
            );
        }
        let limit = self.shared.config.segment_bytes_max;
        let needs_roll = self.appenders.get(&id).is_some_and(|appender| appender.end >= limit);
        if needs_roll {
            // A failed partition does not try its sync again.
            if let Some(error) = self
                .appenders
                .get(&id)
                .and_then(|appender| Self::failure(&appender.partition))
            {
                return Err(error);
            }
            self.roll(id)?;
        }
        self.appenders.get_mut(&id).ok_or(StorageError::Closed)
    }

    fn new_segment(&self, partition: &Partition) -> Result<Arc<Segment>, StorageError> {
        let durable = self.shared.config.sync != SyncPolicy::None;
        // Made active by create_segment, under the partition's state lock.
        partition.create_segment(false, durable)
    }

    /// Seals the active segment (syncing what it holds, whatever the
    /// policy, so that sealed segments are always durable) and starts a new
    /// one.
    fn roll(&mut self, id: PartitionId) -> Result<(), StorageError> {
        if let Some(syncer) = &self.syncer {
            // A background round may hold this segment's last writes.
            syncer.wait_idle();
        }
        let Some(appender) = self.appenders.get(&id) else {
            return Ok(());
        };
        if appender.dirty && self.log.is_some() {
            // Its writes are in the log: synced at the next checkpoint, on
            // the log's helper thread. A roll's fdatasync of megabytes of
            // dirty pages here held every write behind it.
            self.sealed
                .push((Arc::clone(&appender.partition), Arc::clone(&appender.segment)));
        } else if appender.dirty {
            let sync = WriteOp {
                file: Arc::clone(&appender.segment.file),
                offset: 0,
                bytes: Vec::new().into(),
                sync: true,
            };
            let result = match roll_sync_failpoint() {
                true => Some(Err(std::io::Error::other(
                    "injected fdatasync failure (DYNAMO_FAILPOINT_ROLL_SYNC)",
                ))),
                false => self.backend.run(&[sync]).pop(),
            };
            if let Some(Err(error)) = result {
                // As on the commit path: after a failed fdatasync the page
                // cache cannot be trusted (a retry may "succeed" after the
                // kernel dropped the dirty pages), so the partition takes
                // no more writes until a restart recovers it from disk.
                let error = StorageError::io(&appender.segment.path, error);
                Self::fail(&appender.partition, &error);
                return Err(error);
            }
        }
        let partition = Arc::clone(&appender.partition);
        let segment = self.new_segment(&partition)?;
        let end = segment.len.load(Ordering::Acquire);
        if let Some(appender) = self.appenders.get_mut(&id) {
            appender.segment = segment;
            appender.end = end;
            appender.dirty = false;
        }
        Ok(())
    }

    fn failure(partition: &Partition) -> Option<StorageError> {
        let failed = partition.failed.lock().recover();
        failed.as_ref().map(|reason| StorageError::PartitionFailed {
            partition: partition.id,
            reason: reason.clone(),
        })
    }

    fn fail(partition: &Partition, error: &StorageError) {
        let mut failed = partition.failed.lock().recover();
        if failed.is_none() {
            log::error!("partition {} stops taking writes: {error}", partition.id);
            *failed = Some(error.to_string());
        }
    }

    /// One group commit: every partition's writes appended as one buffer,
    /// all partitions submitted together.
    fn commit(&mut self, writes: Vec<WriteRequest>) {
        let mut groups: BTreeMap<PartitionId, Vec<WriteRequest>> = BTreeMap::new();
        for request in writes {
            groups.entry(request.partition).or_default().push(request);
        }
        let sync = self.sync_on_ack();
        let mut ops = Vec::with_capacity(groups.len());
        let mut plans: Vec<(PartitionId, Vec<Placed>, u64)> = Vec::with_capacity(groups.len());
        for (id, group) in groups {
            let appender = match self.appender(id) {
                Ok(appender) => appender,
                Err(error) => {
                    for request in group {
                        acknowledge(request.done, Err(error.clone()));
                    }
                    continue;
                }
            };
            if let Some(error) = Self::failure(&appender.partition) {
                for request in group {
                    acknowledge(request.done, Err(error.clone()));
                }
                continue;
            }
            let mut buffer = Vec::with_capacity(
                group
                    .iter()
                    .map(|request| request.key.len() + request.payload.len() + 32)
                    .sum(),
            );
            let mut placed = Vec::with_capacity(group.len());
            for WriteRequest {
                kind,
                key,
                payload,
                done,
                ..
            } in group
            {
                let sequence = appender.partition.next_sequence.fetch_add(1, Ordering::AcqRel);
                let offset = appender.end + buffer.len() as u64;
                let len = encode_record(&mut buffer, kind, sequence, &key, &payload);
                placed.push(Placed {
                    kind,
                    key,
                    location: Location {
                        segment: appender.segment.id,
                        offset,
                        len: len as u32,
                        sequence,
                    },
                    done,
                });
            }
            let total = buffer.len() as u64;
            ops.push(WriteOp {
                file: Arc::clone(&appender.segment.file),
                offset: appender.end,
                bytes: buffer.into(),
                sync,
            });
            plans.push((id, placed, total));
        }
        // With the commit log: one log write and fdatasync for the whole
        // batch, first in the submission; the partitions' writes beside it
        // are buffered, synced at checkpoints.
        if plans.is_empty() {
            return;
        }
        let logged = match self.log.as_mut() {
            None => None,
            Some(log) => {
                let chunks: Vec<(PartitionId, &[u8], u32)> = plans
                    .iter()
                    .zip(&ops)
                    .map(|(plan, op)| (plan.0, &op.bytes[..], plan.1.len() as u32))
                    .collect();
                match log.batch(&chunks) {
                    Ok((op, _)) => {
                        if log_only_failpoint() {
                            // As if a power cut took every partition write
                            // since the last checkpoint: only the log has
                            // them.
                            for op in &mut ops {
                                op.bytes = Vec::new().into();
                            }
                        }
                        Some(op)
                    }
                    Err(error) => {
                        for (_, placed, _) in plans {
                            for write in placed {
                                acknowledge(write.done, Err(error.clone()));
                            }
                        }
                        return;
                    }
                }
            }
        };
        let log_error = match logged {
            None => None,
            Some(op) => {
                let path = self.log_path();
                // The log's direct write goes through io_uring; the
                // partitions' buffered writes are done here meanwhile
                // (measured: io_uring hands every buffered ext4 write to an
                // io-wq worker, one thread switch each, while the direct
                // log write stays in line). Then this thread makes the log
                // durable itself: io_uring hands every fsync to an io-wq
                // worker too, and that hop cost each durable put (cluster
                // bench, puts paced at 3,000/s and 6,000/s: p50 0.56-0.63
                // and 0.93-1.48 ms through the ring, 0.37-0.38 and
                // 0.58-0.64 ms here).
                let (mut log_results, results) = self.backend.run_during(std::slice::from_ref(&op), || {
                    ops.iter().map(run_positioned).collect::<Vec<_>>()
                });
                let result = log_results.pop().unwrap_or(Ok(())).and_then(|()| op.file.sync_data());
                let error = result.err().map(|error| StorageError::io(path, error));
                if let (Some(error), Some(log)) = (&error, self.log.as_mut()) {
                    log.fail(error);
                }
                return self.settle(plans, results, error);
            }
        };
        // Writes that need no sync are plain buffered pwrites whatever the
        // backend: io_uring hands every buffered ext4 write to an io-wq
        // worker, a thread switch each (storage bench, sync none, 64 in
        // flight: 16 partitions 228k/s through the ring, 340k/s as
        // pwrites; 1 partition 271k-296k/s and 295k-304k/s).
        let results = if sync {
            self.backend.run(&ops)
        } else {
            ops.iter().map(run_positioned).collect()
        };
        self.settle(plans, results, log_error);
    }

    /// With the commit log: recycles the segments the last checkpoint
    /// covers, and asks for the next checkpoint once a segment is full
    /// (every partition segment written since the last one is synced on
    /// the log's helper thread, then `CHECKPOINT` moves on).
    fn checkpoint(&mut self) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        log.recycle();
        if log.wants_checkpoint() && !log_only_failpoint() {
            let mut segments = std::mem::take(&mut self.sealed);
            segments.extend(
                self.appenders
                    .values_mut()
                    .filter(|appender| appender.dirty)
                    .map(|appender| {
                        appender.dirty = false;
                        (Arc::clone(&appender.partition), Arc::clone(&appender.segment))
                    }),
            );
            log.checkpoint(segments);
        }
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.shared.root.join(super::commit_log::LOG_DIR)
    }

    /// The outcome of a group commit's writes: the key directory updated
    /// and each writer told, partition by partition; with the commit log,
    /// its outcome decides for all.
    fn settle(
        &mut self,
        plans: Vec<(PartitionId, Vec<Placed>, u64)>,
        results: Vec<std::io::Result<()>>,
        log_error: Option<StorageError>,
    ) {
        // Not synced on acknowledgement: synced later (periodically, or at
        // a checkpoint).
        let unsynced = self.log.is_some() || !self.sync_on_ack();
        for ((id, placed, total), result) in plans.into_iter().zip(results) {
            let Some(appender) = self.appenders.get_mut(&id) else {
                continue;
            };
            if let (Some(error), Ok(())) = (&log_error, &result) {
                // In the partition file but not in the log: never
                // acknowledged (it may or may not survive).
                appender.end += total;
                appender.segment.len.store(appender.end, Ordering::Release);
                for write in placed {
                    acknowledge(write.done, Err(error.clone()));
                }
                continue;
            }
            match result {
                Ok(()) => {
                    appender.end += total;
                    appender.segment.len.store(appender.end, Ordering::Release);
                    appender.dirty |= unsynced;
                    let mut dones = Vec::with_capacity(placed.len());
                    {
                        let mut state = appender.partition.state.write().recover();
                        for write in placed {
                            match write.kind {
                                RecordKind::Put => {
                                    state.keys.insert(write.key, write.location);
                                }
                                RecordKind::Remove => {
                                    state.keys.remove(write.key.as_bytes());
                                }
                            }
                            dones.push(write.done);
                        }
                    }
                    for done in dones {
                        acknowledge(done, Ok(()));
                    }
                }
                Err(error) => {
                    let error = StorageError::io(&appender.segment.path, error);
                    Self::fail(&appender.partition, &error);
                    for write in placed {
                        acknowledge(write.done, Err(error.clone()));
                    }
                }
            }
        }
    }

    /// The `batch` policy's periodic sync: handed to the sync thread (or,
    /// without one, run here).
    fn periodic_sync(&mut self) {
        self.last_sync = Instant::now();
        let Some(syncer) = &self.syncer else {
            if let Err(error) = self.sync_dirty() {
                log::error!("periodic sync failed: {error}");
            }
            return;
        };
        let appenders = &mut self.appenders;
        // Busy: the segments stay dirty for the next interval.
        let _ = syncer.offer(|| {
            appenders
                .values_mut()
                .filter(|appender| appender.dirty)
                .map(|appender| {
                    appender.dirty = false;
                    (Arc::clone(&appender.partition), Arc::clone(&appender.segment))
                })
                .collect()
        });
    }

    /// Syncs every partition directory, then the root.
    fn sync_directories(&self) -> Result<(), StorageError> {
        let partitions: Vec<Arc<Partition>> = self.shared.partitions.read().recover().values().cloned().collect();
        for partition in partitions {
            sync_dir(&partition.dir)?;
        }
        sync_dir(&self.shared.root)
    }

    /// Syncs every partition with unsynced acknowledged writes (after any
    /// background round in flight, so everything acknowledged is covered).
    fn sync_dirty(&mut self) -> Result<(), StorageError> {
        if let Some(syncer) = &self.syncer {
            syncer.wait_idle();
        }
        self.last_sync = Instant::now();
        let mut first_error = None;
        for (partition, segment) in std::mem::take(&mut self.sealed) {
            if let Err(error) = segment.file.sync_data() {
                let error = StorageError::io(&segment.path, error);
                Self::fail(&partition, &error);
                first_error.get_or_insert(error);
            }
        }
        let dirty: Vec<PartitionId> = self
            .appenders
            .iter()
            .filter(|(_, appender)| appender.dirty)
            .map(|(&id, _)| id)
            .collect();
        if dirty.is_empty() {
            return first_error.map_or(Ok(()), Err);
        }
        let ops: Vec<WriteOp> = dirty
            .iter()
            .filter_map(|id| self.appenders.get(id))
            .map(|appender| WriteOp {
                file: Arc::clone(&appender.segment.file),
                offset: 0,
                bytes: Vec::new().into(),
                sync: true,
            })
            .collect();
        let results = self.backend.run(&ops);
        for (id, result) in dirty.iter().zip(results) {
            let Some(appender) = self.appenders.get_mut(id) else {
                continue;
            };
            match result {
                Ok(()) => appender.dirty = false,
                Err(error) => {
                    let error = StorageError::io(&appender.segment.path, error);
                    Self::fail(&appender.partition, &error);
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Test hook: `DYNAMO_FAILPOINT_ROLL_SYNC=1` makes every segment roll's
/// fdatasync fail, so a test can see the partition fail as on the commit
/// path. Read once; unset in any real run.
fn roll_sync_failpoint() -> bool {
    static FAILPOINT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAILPOINT.get_or_init(|| std::env::var_os("DYNAMO_FAILPOINT_ROLL_SYNC").is_some())
}

/// Test hook: `DYNAMO_FAILPOINT_LOG_ONLY=1` writes every batch to the
/// commit log only, never to the partition files, and never checkpoints:
/// the state a power cut leaves when the page cache lost every partition
/// write since the last checkpoint. Recovery must bring it all back from
/// the log. Read once; unset in any real run.
fn log_only_failpoint() -> bool {
    static FAILPOINT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FAILPOINT.get_or_init(|| std::env::var_os("DYNAMO_FAILPOINT_LOG_ONLY").is_some())
}
