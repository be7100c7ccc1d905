//! Append-only partition storage (Dynamo §6.2, strategy 3: partitions are
//! files, so moving or archiving a partition is copying its directory).
//!
//! Layout: `<root>/p<partition:05>/<segment:010>.seg`, the format written
//! byte by byte in [`format`]. Each partition keeps an in-memory key
//! directory, key → (segment, offset, length, sequence).
//!
//! Writes: callers hand records to one storage thread through a bounded
//! queue ([`commit_queue`]). The thread drains whatever has arrived (up to
//! [`crate::limits::COMMIT_BATCH_WRITES_MAX`] writes), appends each partition's share as one
//! buffer, and submits every partition's write, each linked to its
//! `fdatasync`, in one io_uring submission: a group commit, so concurrent
//! writers share fdatasyncs. With [`SyncPolicy::Always`] the batch also
//! goes, first and whole, to the node-wide commit log ([`commit_log`]): one
//! `O_DIRECT` write and one fdatasync, however many partitions the batch
//! touches, and the partitions' writes beside it are not synced (they are
//! at the log's checkpoints); a write is acknowledged only after the log's
//! fdatasync returned. With `Batch` a write is acknowledged after its
//! write, files being synced at the interval; with `None` never synced
//! until shutdown. Where io_uring cannot be set up the engine says so once
//! and uses positioned writes ([`io`]).
//!
//! Before the storage thread starts, the commit log is replayed into the
//! partitions from its last checkpoint, whatever the policy now.
//!
//! Reads never wait for the storage thread: a read lock on the partition's
//! key directory, a positioned read, and the record's checksum is verified
//! again before anything is returned.
//!
//! Recovery on open (`recovery.rs`): every record of every segment is
//! checksummed; only a torn tail of a partition's last appendable segment is
//! cut (then the file and the directory are synced, and the cut is logged).
//! Damage followed by a record that verifies is corruption, not a tear: the
//! damaged bytes are never served, the records after them are salvaged
//! (the scan resynchronises on the next header whose length and checksum
//! verify), the range is logged, and the partition is reported as needing
//! repair ([`PartitionStats::needs_repair`]); so is damage at the end of a
//! sealed segment. The node starts: N−1 other replicas hold the same data.
//!
//! Compaction ([`Engine::compact`]) copies the live records of every sealed
//! segment into new segments written beside them under a temporary name,
//! syncs and renames them into place, swaps key-directory entries that still
//! point at the old records, and deletes the old segments. Readers holding an
//! old segment keep reading it (the file stays open); writers never wait on
//! it.
//!
//! Durability contract: an acknowledged write under `Always` survives a
//! crash of the process or the machine; a write that was never acknowledged
//! may or may not survive, but what survives is never torn.

pub(crate) mod commit_log;
pub use commit_log::{dump_log, is_log, Replayed};
pub(crate) mod commit_queue;
mod compaction;
mod dump;
pub mod format;
pub(crate) mod io;
mod keydir;
pub(crate) mod partition;
mod recovery;
mod writer;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;

use crate::limits::{COMMIT_QUEUE_DEPTH, SEGMENT_BYTES_DEFAULT, SEGMENT_BYTES_MIN};
use crate::storage::format::SegmentId;
use crate::sync::Recover;
use commit_queue::{CommitQueue, Oneshot};
pub use compaction::CompactionStats;
pub use dump::{dump_partition, DumpSummary};
use dynamo_core::ids::PartitionId;
use dynamo_core::limits::{KEY_BYTES_MAX, RECORD_BODY_BYTES_MAX};
use format::{scan_record, RecordKind, Scan};
pub use io::{IoBackendKind, IoMode};
use partition::Partition;
use writer::{Command, WriteRequest};

/// When a write is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Acknowledge only after `fdatasync` returned (group commit shares it).
    Always,
    /// Acknowledge after the write; `fdatasync` dirty files every interval.
    Batch {
        /// How often dirty files are synced.
        interval: Duration,
    },
    /// Never sync until a clean shutdown; a crash of the machine may lose
    /// acknowledged writes (a crash of the process does not).
    None,
}

impl SyncPolicy {
    /// The interval `batch` uses when none is given.
    pub const BATCH_INTERVAL_DEFAULT: Duration = Duration::from_millis(10);
}

impl FromStr for SyncPolicy {
    type Err = String;
    /// `always`, `none`, `batch` (10 ms) or `batch:<N>ms`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "always" => Ok(SyncPolicy::Always),
            "none" => Ok(SyncPolicy::None),
            "batch" => Ok(SyncPolicy::Batch {
                interval: SyncPolicy::BATCH_INTERVAL_DEFAULT,
            }),
            other => {
                let millis = other
                    .strip_prefix("batch:")
                    .and_then(|rest| rest.strip_suffix("ms"))
                    .and_then(|number| number.parse::<u64>().ok())
                    .filter(|&millis| millis > 0)
                    .ok_or_else(|| {
                        format!("unknown sync policy {other:?}: expected \"always\", \"batch\", \"batch:<N>ms\" or \"none\"")
                    })?;
                Ok(SyncPolicy::Batch {
                    interval: Duration::from_millis(millis),
                })
            }
        }
    }
}

impl fmt::Display for SyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncPolicy::Always => f.write_str("always"),
            SyncPolicy::None => f.write_str("none"),
            SyncPolicy::Batch { interval } => write!(f, "batch:{}ms", interval.as_millis()),
        }
    }
}

/// How an engine is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    /// When writes are made durable.
    pub sync: SyncPolicy,
    /// A segment is sealed once it reaches this size.
    pub segment_bytes_max: u64,
    /// io_uring, positioned I/O, or whichever works.
    pub io: IoMode,
    /// Compact partitions in the background, and when (none: only when
    /// [`Engine::compact`] is called).
    pub compaction: Option<CompactionPolicy>,
    /// Size of a commit log segment (the log is written under `always`).
    pub log_segment_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            sync: SyncPolicy::Always,
            segment_bytes_max: SEGMENT_BYTES_DEFAULT,
            io: IoMode::Auto,
            compaction: None,
            log_segment_bytes: crate::limits::LOG_SEGMENT_BYTES_DEFAULT,
        }
    }
}

/// When the background compactor rewrites a partition, and how fast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// How often every partition is looked at.
    pub interval: Duration,
    /// A partition is compacted when at least this percentage of its
    /// bytes is dead (overwritten or removed records) ...
    pub dead_percent_min: u8,
    /// ... and at least this many bytes are dead (small partitions are not
    /// worth the work).
    pub dead_bytes_min: u64,
    /// Bytes copied per second at most, so that compaction never takes the
    /// disk from the foreground's writes.
    pub bytes_per_second_max: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            interval: Duration::from_secs(5),
            dead_percent_min: 50,
            dead_bytes_min: 4 * 1024 * 1024,
            bytes_per_second_max: 64 * 1024 * 1024,
        }
    }
}

/// What went wrong in storage. Every variant about a file names it.
#[derive(Debug, Clone, Error)]
pub enum StorageError {
    /// A system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A record's checksum does not match its bytes.
    #[error("{path}: checksum mismatch in the record at offset {offset} (got {got:#010x}, expected {expected:#010x})")]
    ChecksumMismatch {
        /// The segment file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// The checksum computed over the bytes.
        got: u32,
        /// The checksum stored in the record.
        expected: u32,
    },
    /// A record is damaged in a way other than its checksum.
    #[error("{path}: corrupt record at offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A segment header is damaged or from another format.
    #[error("{path}: bad segment header: {reason}")]
    BadHeader {
        /// The segment file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is longer than [`KEY_BYTES_MAX`].
    #[error("a key of {len} bytes is over the limit of {KEY_BYTES_MAX}")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
    },
    /// The record would be larger than [`RECORD_BODY_BYTES_MAX`].
    #[error("a record of {len} bytes is over the limit of {RECORD_BODY_BYTES_MAX}")]
    RecordTooLarge {
        /// The record body's length.
        len: usize,
    },
    /// An earlier write or sync of this partition failed; after a failed
    /// fdatasync the page cache cannot be trusted, so the partition takes no
    /// more writes until the node restarts and recovers it from disk.
    #[error("partition {partition} stopped taking writes after an earlier failure: {reason}")]
    PartitionFailed {
        /// The partition.
        partition: PartitionId,
        /// The first failure.
        reason: String,
    },
    /// The configuration is unusable.
    #[error("bad storage configuration: {0}")]
    Config(String),
    /// Another engine, in this process or another, has the directory open.
    #[error("{path}: the data directory is in use by another storage engine{holder}; stop that one first (two writers would corrupt each other's files)")]
    InUse {
        /// The data directory.
        path: PathBuf,
        /// ` (pid N)` when the holder wrote its pid into the lock file.
        holder: String,
    },
    /// The engine is shutting down.
    #[error("the storage engine is shut down")]
    Closed,
}

/// How a storage failure reaches the protocol (and, from there, a client):
/// damage, a bound, or any other failure, with the engine's description.
impl From<&StorageError> for dynamo_core::protocol::StoreError {
    fn from(error: &StorageError) -> Self {
        use dynamo_core::protocol::StoreError;
        let text = error.to_string();
        match error {
            StorageError::ChecksumMismatch { .. } | StorageError::Corrupt { .. } | StorageError::BadHeader { .. } => {
                StoreError::Corrupt(text)
            }
            StorageError::KeyTooLarge { .. } | StorageError::RecordTooLarge { .. } => StoreError::TooLarge(text),
            _ => StoreError::Failed(text),
        }
    }
}

impl StorageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

/// Per-partition figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionStats {
    /// The partition.
    pub partition: PartitionId,
    /// Live keys.
    pub keys: u64,
    /// Segment files.
    pub segments: u64,
    /// Bytes in segment files (live and dead records).
    pub bytes: u64,
    /// Why the partition needs repair from the other replicas, if recovery
    /// found damage in it.
    pub needs_repair: Option<String>,
}

/// Called once with the outcome of a submitted write.
pub type OnDurable = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

/// The storage engine of one node: every partition under one root.
pub struct Engine {
    shared: Arc<Shared>,
    queue: Arc<CommitQueue<Command>>,
    writer: Option<JoinHandle<()>>,
    /// The background compactor, with the channel that stops it.
    compactor: Option<(std::sync::mpsc::Sender<()>, JoinHandle<()>)>,
    backend: IoBackendKind,
    /// What the commit log's replay did at open.
    replayed: Replayed,
    /// Held (an exclusive `flock` on `LOCK`) until the engine is dropped;
    /// the kernel releases it when the process dies, even by SIGKILL.
    _lock: std::fs::File,
}

/// The lock file in a data directory.
const LOCK_FILE: &str = "LOCK";

/// Takes the data directory for this engine, or says who has it.
fn lock_directory(root: &Path) -> Result<std::fs::File, StorageError> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::io::AsRawFd;
    let path = root.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|error| StorageError::io(&path, error))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(StorageError::io(&path, error));
        }
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let holder = text
            .trim()
            .parse::<u32>()
            .map(|pid| format!(" (pid {pid})"))
            .unwrap_or_default();
        return Err(StorageError::InUse {
            path: root.to_path_buf(),
            holder,
        });
    }
    // Ours now: say who holds it, for the next one to ask.
    let said = file
        .set_len(0)
        .and_then(|()| file.seek(std::io::SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    if let Err(error) = said {
        log::warn!("{}: could not write our pid: {error}", path.display());
    }
    Ok(file)
}

pub(crate) struct Shared {
    root: PathBuf,
    config: StorageConfig,
    partitions: RwLock<BTreeMap<PartitionId, Arc<Partition>>>,
    /// Background compactions run.
    compactions: std::sync::atomic::AtomicU64,
    /// Bytes they freed.
    compacted_bytes: std::sync::atomic::AtomicU64,
}

impl Shared {
    fn partition(&self, partition: PartitionId) -> Option<Arc<Partition>> {
        self.partitions.read().recover().get(&partition).cloned()
    }
}

/// Syncs a directory, so that file creations, renames and deletions in it
/// survive a crash.
pub(crate) fn sync_dir(path: &Path) -> Result<(), StorageError> {
    std::fs::File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|error| StorageError::io(path, error))
}

impl Engine {
    /// Opens (creating if needed) the storage under `root`, recovering every
    /// partition found there, and starts the storage thread.
    ///
    /// # Errors
    /// A bad configuration, an I/O error, or damage that is not a torn tail
    /// (named by file and offset).
    pub fn open(root: &Path, config: StorageConfig) -> Result<Engine, StorageError> {
        if config.segment_bytes_max < SEGMENT_BYTES_MIN {
            return Err(StorageError::Config(format!(
                "segment size {} is below the minimum of {SEGMENT_BYTES_MIN} bytes",
                config.segment_bytes_max
            )));
        }
        crate::data_dir::create_durably(root).map_err(|error| StorageError::io(root, error))?;
        let lock = lock_directory(root)?;
        let mut partitions = BTreeMap::new();
        let entries = std::fs::read_dir(root).map_err(|error| StorageError::io(root, error))?;
        for entry in entries {
            let entry = entry.map_err(|error| StorageError::io(root, error))?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(partition::parse_partition_dir) else {
                continue;
            };
            let partition = Partition::recover(root, id)?;
            partitions.insert(id, Arc::new(partition));
        }
        // Writes the log holds beyond its last checkpoint, into their
        // partitions (whatever the policy now: it may have been `always`).
        let replayed = commit_log::replay(root, &mut partitions)?;
        let log = match config.sync {
            SyncPolicy::Always => Some(commit_log::CommitLog::open(root, config.log_segment_bytes, &replayed)?),
            _ => None,
        };
        let backend = io::Backend::new(config.io).map_err(|error| StorageError::io(root, error))?;
        let backend_kind = backend.kind();
        let shared = Arc::new(Shared {
            root: root.to_path_buf(),
            config,
            partitions: RwLock::new(partitions),
            compactions: std::sync::atomic::AtomicU64::new(0),
            compacted_bytes: std::sync::atomic::AtomicU64::new(0),
        });
        let queue = Arc::new(CommitQueue::new(COMMIT_QUEUE_DEPTH));
        let writer = writer::spawn(Arc::clone(&shared), Arc::clone(&queue), backend, log)
            .map_err(|error| StorageError::io(root, error))?;
        let compactor = match shared.config.compaction {
            Some(policy) => Some(
                compaction::spawn_compactor(Arc::clone(&shared), policy)
                    .map_err(|error| StorageError::io(root, error))?,
            ),
            None => None,
        };
        Ok(Engine {
            shared,
            queue,
            writer: Some(writer),
            compactor,
            backend: backend_kind,
            replayed,
            _lock: lock,
        })
    }

    /// The directory this engine stores under.
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &StorageConfig {
        &self.shared.config
    }

    /// What replaying the commit log did when this engine opened.
    pub fn replayed(&self) -> &Replayed {
        &self.replayed
    }

    /// Which I/O backend the storage thread uses.
    pub fn backend(&self) -> IoBackendKind {
        self.backend
    }

    fn check_sizes(key: &[u8], payload: &[u8]) -> Result<(), StorageError> {
        if key.len() > KEY_BYTES_MAX {
            return Err(StorageError::KeyTooLarge { len: key.len() });
        }
        let body = format::record_len(key, payload) - format::RECORD_HEADER_BYTES;
        if body > RECORD_BODY_BYTES_MAX {
            return Err(StorageError::RecordTooLarge { len: body });
        }
        Ok(())
    }

    /// Hands a write to the storage thread; `done` is called (on that
    /// thread: keep it short) once the write is acknowledged under the sync
    /// policy, or failed. Blocks only while the queue is full. `payload`
    /// `None` removes the key. The payload is taken by value, so a caller
    /// that already owns it (the server encodes each sibling set into a
    /// fresh buffer) hands it over without a copy; so is a long key.
    ///
    /// # Errors
    /// Sizes over the limits, or an engine shutting down (then `done` is
    /// not called).
    pub fn submit(
        &self,
        partition: PartitionId,
        key: impl Into<Vec<u8>>,
        payload: Option<Vec<u8>>,
        done: OnDurable,
    ) -> Result<(), StorageError> {
        self.submit_stored(partition, keydir::StoredKey::from(key.into()), payload, done)
    }

    /// [`Engine::submit`] with the key already in its key-directory form.
    fn submit_stored(
        &self,
        partition: PartitionId,
        key: keydir::StoredKey,
        payload: Option<Vec<u8>>,
        done: OnDurable,
    ) -> Result<(), StorageError> {
        let (kind, payload) = match payload {
            Some(payload) => (RecordKind::Put, payload),
            None => (RecordKind::Remove, Vec::new()),
        };
        Self::check_sizes(&key, &payload)?;
        let command = Command::Write(WriteRequest {
            partition,
            kind,
            key,
            payload,
            done,
        });
        self.queue.push(command).map_err(|_| StorageError::Closed)
    }

    fn submit_and_wait(&self, partition: PartitionId, key: &[u8], payload: Option<&[u8]>) -> Result<(), StorageError> {
        let slot = Oneshot::new();
        let answer = slot.clone();
        // A borrowed key goes straight into its stored form: a short one
        // is copied inline, with no vector allocated on the way.
        self.submit_stored(
            partition,
            keydir::StoredKey::from(key),
            payload.map(<[u8]>::to_vec),
            Box::new(move |result| answer.complete(result)),
        )?;
        slot.wait()
    }

    /// Stores `payload` as the state of `key`; returns once acknowledged.
    ///
    /// # Errors
    /// Sizes over the limits, an I/O failure, a failed partition, shutdown.
    pub fn put(&self, partition: PartitionId, key: &[u8], payload: &[u8]) -> Result<(), StorageError> {
        self.submit_and_wait(partition, key, Some(payload))
    }

    /// Removes `key` (a remove record, so recovery forgets it too).
    ///
    /// # Errors
    /// As [`Engine::put`].
    pub fn remove(&self, partition: PartitionId, key: &[u8]) -> Result<(), StorageError> {
        self.submit_and_wait(partition, key, None)
    }

    /// Makes every write acknowledged so far durable, whatever the policy.
    ///
    /// # Errors
    /// A failed fdatasync, or shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        let slot = Oneshot::new();
        let answer = slot.clone();
        self.queue
            .push(Command::Flush {
                done: Box::new(move |result| answer.complete(result)),
            })
            .map_err(|_| StorageError::Closed)?;
        slot.wait()
    }

    /// The current payload of `key`, or `None`.
    ///
    /// # Errors
    /// An I/O failure, or a record that fails its checksum (never served).
    pub fn get(&self, partition: PartitionId, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(part) = self.shared.partition(partition) else {
            return Ok(None);
        };
        let Some((location, segment)) = part.locate(key) else {
            return Ok(None);
        };
        let mut bytes = vec![0u8; location.len as usize];
        segment
            .file
            .read_exact_at(&mut bytes, location.offset)
            .map_err(|error| StorageError::io(&segment.path, error))?;
        match scan_record(&bytes) {
            Scan::Record(record) if record.key == key && record.sequence == location.sequence => {
                let start = record.len - record.payload.len();
                bytes.drain(..start);
                Ok(Some(bytes))
            }
            Scan::Checksum { got, expected } => Err(StorageError::ChecksumMismatch {
                path: segment.path.clone(),
                offset: location.offset,
                got,
                expected,
            }),
            other => Err(StorageError::Corrupt {
                path: segment.path.clone(),
                offset: location.offset,
                reason: format!("the key directory points at {other:?}"),
            }),
        }
    }

    /// The live keys of a partition (unordered).
    pub fn keys(&self, partition: PartitionId) -> Vec<Vec<u8>> {
        self.shared
            .partition(partition)
            .map(|part| part.keys())
            .unwrap_or_default()
    }

    /// The partitions that have storage on this node.
    pub fn partitions(&self) -> Vec<PartitionId> {
        self.shared.partitions.read().recover().keys().copied().collect()
    }

    /// Keys, segments and bytes per partition.
    pub fn stats(&self) -> Vec<PartitionStats> {
        let partitions: Vec<Arc<Partition>> = self.shared.partitions.read().recover().values().cloned().collect();
        partitions.iter().map(|part| part.stats()).collect()
    }

    /// Anti-entropy has made `partition` whole again from another replica:
    /// forget why it needed repair (its `NEEDS_REPAIR` file, durably).
    ///
    /// # Errors
    /// The file cannot be removed, or the directory synced.
    pub fn clear_repair(&self, partition: PartitionId) -> Result<(), StorageError> {
        let Some(part) = self.shared.partition(partition) else {
            return Ok(());
        };
        let reason = part.needs_repair.lock().recover().take();
        if let Some(reason) = reason {
            let repaired = part.dir.join(recovery::REPAIRED_FILE);
            let mut text = std::fs::read_to_string(&repaired).unwrap_or_default();
            let known: std::collections::BTreeSet<String> = text.lines().map(str::to_string).collect();
            for line in reason.lines().filter(|line| !known.contains(*line)) {
                text.push_str(line);
                text.push('\n');
            }
            crate::data_dir::write_atomically(&repaired, &text).map_err(|error| StorageError::io(&repaired, error))?;
            let noted = part.dir.join(recovery::REPAIR_FILE);
            match std::fs::remove_file(&noted) {
                Ok(()) => sync_dir(&part.dir)?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(StorageError::io(&noted, error)),
            }
            log::info!("partition {} repaired by anti-entropy", partition.0);
        }
        Ok(())
    }

    /// Takes the files in `staged` (another replica's copy of `partition`:
    /// segments and manifest, complete and synced) as this engine's
    /// partition: the directory is renamed into place and recovered as at
    /// an open. Returns false, moving nothing, when the engine already has
    /// the partition (its own records must not be mixed with another
    /// node's: their sequence numbers are each node's own).
    ///
    /// Writes wait while the partition is recovered.
    ///
    /// # Errors
    /// The rename, or the recovery, failed.
    pub fn adopt(&self, partition: PartitionId, staged: &Path) -> Result<bool, StorageError> {
        let mut partitions = self.shared.partitions.write().recover();
        let dir = partition::partition_dir(&self.shared.root, partition);
        if partitions.contains_key(&partition) || dir.exists() {
            return Ok(false);
        }
        std::fs::rename(staged, &dir).map_err(|error| StorageError::io(&dir, error))?;
        sync_dir(&self.shared.root)?;
        if let Some(parent) = staged.parent() {
            sync_dir(parent)?;
        }
        let recovered = Partition::recover(&self.shared.root, partition)?;
        partitions.insert(partition, Arc::new(recovered));
        Ok(true)
    }

    /// Rewrites the live records of every sealed segment of `partition`
    /// into new segments and deletes the old ones. Runs on the caller's
    /// thread; reads and writes go on meanwhile.
    ///
    /// # Errors
    /// An I/O failure or a damaged record (the old segments are kept).
    pub fn compact(&self, partition: PartitionId) -> Result<CompactionStats, StorageError> {
        match self.shared.partition(partition) {
            Some(part) => compaction::compact(&part, &self.shared.config),
            None => Ok(CompactionStats::default()),
        }
    }

    /// Compactions the background compactor has run, and bytes it freed.
    pub fn compactions(&self) -> (u64, u64) {
        (
            self.shared.compactions.load(std::sync::atomic::Ordering::Relaxed),
            self.shared.compacted_bytes.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Stops the storage thread after it has written, and synced, every
    /// write already queued.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some((stop, compactor)) = self.compactor.take() {
            drop(stop);
            if compactor.join().is_err() {
                log::error!("the compaction thread panicked");
            }
        }
        self.queue.close();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                log::error!("the storage thread panicked");
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.shared.root)
            .field("config", &self.shared.config)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// A fresh incarnation number for a node opening its data directory: 64
/// random bits from the kernel. A node takes a new one at every start, so
/// that no loss of its data directory (wiped, lost, restored from an old
/// backup, or a write lost under `sync = none`) can make it reissue a
/// version counter that other replicas already hold.
///
/// # Errors
/// The kernel's random source cannot be read.
pub fn fresh_incarnation() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// Where a key's current record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub segment: SegmentId,
    pub offset: u64,
    pub len: u32,
    pub sequence: u64,
}
