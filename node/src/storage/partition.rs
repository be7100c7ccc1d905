//! One partition: its directory, its segments and the key directory over
//! them (recovery is in `recovery.rs`, the key directory in `keydir.rs`).

use crate::sync::Recover;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::format::{SegmentHeader, FLAG_COMPACTED, HEADER_BYTES};
use super::keydir::KeyDirectory;
use super::{sync_dir, Location, PartitionStats, StorageError};
use crate::storage::format::SegmentId;
use dynamo_core::ids::PartitionId;

/// Suffix of a segment file.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of a compaction output not yet complete (deleted at open).
pub(crate) const COMPACTING_SUFFIX: &str = ".seg.compacting";
/// The file listing a partition's segments.
pub(crate) const MANIFEST_FILE: &str = "MANIFEST";
/// Its first line.
pub(crate) const MANIFEST_MAGIC: &str = "dynamo partition manifest v1";

/// The segments `MANIFEST` lists, if the partition has one (data written
/// before manifests existed has none).
///
/// # Errors
/// The file exists but cannot be read, or is not a manifest.
pub(crate) fn read_manifest(dir: &Path) -> Result<Option<Vec<SegmentId>>, StorageError> {
    let path = dir.join(MANIFEST_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(StorageError::io(&path, error)),
    };
    let mut lines = text.lines();
    let bad = |reason: &str| StorageError::BadHeader {
        path: path.clone(),
        reason: reason.to_string(),
    };
    if lines.next() != Some(MANIFEST_MAGIC) {
        return Err(bad("not a partition manifest"));
    }
    lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.parse::<u64>()
                .map(SegmentId)
                .map_err(|_| bad("a line is not a segment id"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `p00042` → partition 42.
pub(crate) fn parse_partition_dir(name: &str) -> Option<PartitionId> {
    let digits = name.strip_prefix('p')?;
    if digits.len() != 5 || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(PartitionId)
}

pub(crate) fn partition_dir(root: &Path, partition: PartitionId) -> PathBuf {
    root.join(format!("p{:05}", partition.0))
}

pub(crate) fn segment_path(dir: &Path, segment: SegmentId) -> PathBuf {
    dir.join(format!("{segment}{SEGMENT_SUFFIX}"))
}

/// An open segment file.
#[derive(Debug)]
pub(crate) struct Segment {
    pub id: SegmentId,
    pub path: PathBuf,
    pub file: Arc<File>,
    /// Bytes in the file, header included.
    pub len: AtomicU64,
}

/// A partition's shared state.
#[derive(Debug)]
pub(crate) struct Partition {
    pub id: PartitionId,
    pub dir: PathBuf,
    pub state: RwLock<PartitionState>,
    /// The next segment id to hand out (appends and compaction share it).
    pub next_segment: AtomicU64,
    /// The segment appends go to; `u64::MAX` before the first.
    pub active_segment: AtomicU64,
    /// The next sequence number (only the storage thread advances it).
    pub next_sequence: AtomicU64,
    /// The first write or sync failure; the partition takes no writes after.
    pub failed: Mutex<Option<String>>,
    /// One compaction at a time.
    pub compaction: Mutex<()>,
    /// One writer of `MANIFEST` at a time (the storage thread's rolls and
    /// compaction both rewrite it).
    pub manifest: Mutex<()>,
    /// Why recovery found this partition damaged (corrupt bytes skipped,
    /// records salvaged): it serves what verified, and needs the other
    /// replicas' data (read repair now, anti-entropy later).
    pub needs_repair: Mutex<Option<String>>,
}

/// What readers look at, behind one lock so that a location and the file it
/// points into are always taken together.
#[derive(Debug, Default)]
pub(crate) struct PartitionState {
    pub keys: KeyDirectory,
    pub segments: BTreeMap<SegmentId, Arc<Segment>>,
}

pub(crate) const NO_SEGMENT: u64 = u64::MAX;

impl Partition {
    /// An empty partition whose directory exists (created and synced).
    pub(crate) fn create(root: &Path, id: PartitionId) -> Result<Partition, StorageError> {
        let dir = partition_dir(root, id);
        std::fs::create_dir_all(&dir).map_err(|error| StorageError::io(&dir, error))?;
        sync_dir(root)?;
        Ok(Partition::empty(id, dir))
    }

    pub(crate) fn empty(id: PartitionId, dir: PathBuf) -> Partition {
        Partition {
            id,
            dir,
            state: RwLock::new(PartitionState::default()),
            next_segment: AtomicU64::new(1),
            active_segment: AtomicU64::new(NO_SEGMENT),
            next_sequence: AtomicU64::new(1),
            failed: Mutex::new(None),
            compaction: Mutex::new(()),
            manifest: Mutex::new(()),
            needs_repair: Mutex::new(None),
        }
    }

    pub(crate) fn locate(&self, key: &[u8]) -> Option<(Location, Arc<Segment>)> {
        let state = self.state.read().recover();
        let location = *state.keys.get(key)?;
        let segment = state.segments.get(&location.segment)?;
        Some((location, Arc::clone(segment)))
    }

    pub(crate) fn keys(&self) -> Vec<Vec<u8>> {
        self.state
            .read()
            .recover()
            .keys
            .keys()
            .map(|key| key.as_bytes().to_vec())
            .collect()
    }

    pub(crate) fn stats(&self) -> PartitionStats {
        let state = self.state.read().recover();
        PartitionStats {
            partition: self.id,
            keys: state.keys.len() as u64,
            segments: state.segments.len() as u64,
            bytes: state
                .segments
                .values()
                .map(|segment| segment.len.load(Ordering::Acquire))
                .sum(),
            needs_repair: self.needs_repair.lock().recover().clone(),
        }
    }

    /// Creates a new segment file with its header, synced (file and
    /// directory) when `durable`, and registers it.
    pub(crate) fn create_segment(&self, compacted: bool, durable: bool) -> Result<Arc<Segment>, StorageError> {
        let id = SegmentId(self.next_segment.fetch_add(1, Ordering::AcqRel));
        let path = segment_path(&self.dir, id);
        let (file, len) = write_new_segment(&path, self.id, id, compacted, durable)?;
        if durable {
            sync_dir(&self.dir)?;
        }
        let segment = Arc::new(Segment {
            id,
            path,
            file: Arc::new(file),
            len: AtomicU64::new(len),
        });
        {
            // Insert and make active under one lock: compaction reads the
            // segment list and the active id under the same lock, so it can
            // never take a just-rolled active segment for a sealed one (and
            // unlink it while it is appended to).
            let mut state = self.state.write().recover();
            state.segments.insert(id, Arc::clone(&segment));
            if !compacted {
                self.active_segment.store(id.0, Ordering::Release);
            }
        }
        self.write_manifest()?;
        Ok(segment)
    }

    /// Rewrites `MANIFEST`, the list of this partition's segments, from its
    /// current state, atomically (a temporary file, fsync, rename, fsync of
    /// the directory). Recovery treats a listed segment that is missing as
    /// damage: without the list, a deleted middle segment went unnoticed
    /// and its keys silently reverted to older versions.
    pub(crate) fn write_manifest(&self) -> Result<(), StorageError> {
        let _one_writer = self.manifest.lock().recover();
        let ids: Vec<SegmentId> = self.state.read().recover().segments.keys().copied().collect();
        let mut text = String::from(MANIFEST_MAGIC);
        text.push('\n');
        for id in ids {
            text.push_str(&format!("{id}\n"));
        }
        let path = self.dir.join(MANIFEST_FILE);
        crate::data_dir::write_atomically(&path, &text).map_err(|error| StorageError::io(&path, error))
    }

    /// Bytes of its segments, and bytes of the records the key directory
    /// points at: the rest is dead (overwritten, removed, headers).
    pub(crate) fn total_and_live_bytes(&self) -> (u64, u64) {
        let state = self.state.read().recover();
        let total = state
            .segments
            .values()
            .map(|segment| segment.len.load(Ordering::Acquire))
            .sum();
        let live = state.keys.values().map(|location| u64::from(location.len)).sum();
        (total, live)
    }

    /// The segments that are sealed now (every one but the active), read
    /// consistently with the active id (see [`Partition::create_segment`]).
    pub(crate) fn sealed_segments(&self) -> Vec<Arc<Segment>> {
        let state = self.state.read().recover();
        let active = self.active_segment.load(Ordering::Acquire);
        state
            .segments
            .values()
            .filter(|segment| segment.id.0 != active)
            .cloned()
            .collect()
    }
}

/// Creates (or truncates) a segment file and writes its header.
pub(crate) fn write_new_segment(
    path: &Path,
    partition: PartitionId,
    segment: SegmentId,
    compacted: bool,
    durable: bool,
) -> Result<(File, u64), StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|error| StorageError::io(path, error))?;
    let header = SegmentHeader {
        flags: if compacted { FLAG_COMPACTED } else { 0 },
        partition,
        segment,
    };
    file.write_all_at(&header.encode(), 0)
        .map_err(|error| StorageError::io(path, error))?;
    if durable {
        file.sync_all().map_err(|error| StorageError::io(path, error))?;
    }
    Ok((file, HEADER_BYTES as u64))
}
