//! One partition: its directory, segments, key directory, and recovery.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::format::{scan_record, HeaderProblem, RecordKind, Scan, SegmentHeader, FLAG_COMPACTED, HEADER_BYTES};
use super::{read_lock, sync_dir, write_lock, Location, PartitionStats, StorageError};
use crate::ids::{PartitionId, SegmentId};

/// Suffix of a segment file.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// Suffix of a compaction output not yet complete (deleted at open).
pub(crate) const COMPACTING_SUFFIX: &str = ".seg.compacting";

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
}

/// What readers look at, behind one lock so that a location and the file it
/// points into are always taken together.
#[derive(Debug, Default)]
pub(crate) struct PartitionState {
    pub keys: HashMap<Box<[u8]>, Location>,
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

    fn empty(id: PartitionId, dir: PathBuf) -> Partition {
        Partition {
            id,
            dir,
            state: RwLock::new(PartitionState::default()),
            next_segment: AtomicU64::new(1),
            active_segment: AtomicU64::new(NO_SEGMENT),
            next_sequence: AtomicU64::new(1),
            failed: Mutex::new(None),
            compaction: Mutex::new(()),
        }
    }

    pub(crate) fn locate(&self, key: &[u8]) -> Option<(Location, Arc<Segment>)> {
        let state = read_lock(&self.state);
        let location = *state.keys.get(key)?;
        let segment = state.segments.get(&location.segment)?;
        Some((location, Arc::clone(segment)))
    }

    pub(crate) fn keys(&self) -> Vec<Vec<u8>> {
        read_lock(&self.state).keys.keys().map(|key| key.to_vec()).collect()
    }

    pub(crate) fn stats(&self) -> PartitionStats {
        let state = read_lock(&self.state);
        PartitionStats {
            partition: self.id,
            keys: state.keys.len() as u64,
            segments: state.segments.len() as u64,
            bytes: state
                .segments
                .values()
                .map(|segment| segment.len.load(Ordering::Acquire))
                .sum(),
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
        write_lock(&self.state).segments.insert(id, Arc::clone(&segment));
        Ok(segment)
    }

    /// Recovers the partition stored in `root/p<id>`.
    pub(crate) fn recover(root: &Path, id: PartitionId) -> Result<Partition, StorageError> {
        let dir = partition_dir(root, id);
        let mut files: BTreeMap<SegmentId, PathBuf> = BTreeMap::new();
        let entries = std::fs::read_dir(&dir).map_err(|error| StorageError::io(&dir, error))?;
        for entry in entries {
            let entry = entry.map_err(|error| StorageError::io(&dir, error))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(COMPACTING_SUFFIX) {
                let path = entry.path();
                log::info!("{}: removing an unfinished compaction output", path.display());
                std::fs::remove_file(&path).map_err(|error| StorageError::io(&path, error))?;
                continue;
            }
            let Some(number) = name.strip_suffix(SEGMENT_SUFFIX) else {
                continue;
            };
            if let Ok(number) = number.parse::<u64>() {
                files.insert(SegmentId(number), entry.path());
            }
        }

        // Pass 1: headers, to learn which segment is the last appendable one
        // (the only one that may have a torn tail).
        let mut headers: BTreeMap<SegmentId, Result<SegmentHeader, HeaderProblem>> = BTreeMap::new();
        for (&segment, path) in &files {
            let mut header = [0u8; HEADER_BYTES];
            let file = File::open(path).map_err(|error| StorageError::io(path, error))?;
            let read = read_up_to(&file, &mut header).map_err(|error| StorageError::io(path, error))?;
            headers.insert(segment, SegmentHeader::decode(&header[..read]));
        }
        let newest = files.keys().next_back().copied();
        let last_appendable = headers
            .iter()
            .filter(|(&segment, header)| match header {
                Ok(header) => header.flags & FLAG_COMPACTED == 0,
                // A header torn while the newest segment was being created.
                Err(_) => Some(segment) == newest,
            })
            .map(|(&segment, _)| segment)
            .next_back();

        let partition = Partition::empty(id, dir.clone());
        let mut directory: HashMap<Box<[u8]>, Entry> = HashMap::new();
        let mut max_sequence = 0u64;
        let mut state = PartitionState::default();
        let mut buffer = Vec::new();
        for (&segment, path) in &files {
            let is_last = Some(segment) == last_appendable;
            let header = match headers.remove(&segment).unwrap_or(Err(HeaderProblem::Short)) {
                Ok(header) => header,
                Err(problem) if is_last && is_torn_header(path, problem)? => {
                    log::warn!(
                        "{}: the header was torn while the segment was created; rewriting it",
                        path.display()
                    );
                    let (file, len) = write_new_segment(path, id, segment, false, true)?;
                    drop(file);
                    sync_dir(&dir)?;
                    debug_assert_eq!(len, HEADER_BYTES as u64);
                    SegmentHeader {
                        flags: 0,
                        partition: id,
                        segment,
                    }
                }
                Err(problem) => {
                    return Err(StorageError::BadHeader {
                        path: path.clone(),
                        reason: format!("{problem:?}"),
                    })
                }
            };
            if header.partition != id || header.segment != segment {
                return Err(StorageError::BadHeader {
                    path: path.clone(),
                    reason: format!(
                        "the header names partition {} segment {}, but the file is partition {} segment {}",
                        header.partition.0, header.segment.0, id.0, segment.0
                    ),
                });
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|error| StorageError::io(path, error))?;
            buffer.clear();
            let mut reader = &file;
            std::io::Read::read_to_end(&mut reader, &mut buffer).map_err(|error| StorageError::io(path, error))?;
            let mut offset = HEADER_BYTES;
            loop {
                match scan_record(&buffer[offset..]) {
                    Scan::Record(record) => {
                        let location = Location {
                            segment,
                            offset: offset as u64,
                            len: record.len as u32,
                            sequence: record.sequence,
                        };
                        let entry = match record.kind {
                            RecordKind::Put => Entry::Live(location),
                            RecordKind::Remove => Entry::Removed(record.sequence),
                        };
                        max_sequence = max_sequence.max(record.sequence);
                        match directory.get_mut(record.key) {
                            Some(existing) if existing.sequence() >= record.sequence => {}
                            Some(existing) => *existing = entry,
                            None => {
                                directory.insert(record.key.into(), entry);
                            }
                        }
                        offset += record.len;
                    }
                    Scan::End => break,
                    Scan::Malformed(reason) => {
                        return Err(StorageError::Corrupt {
                            path: path.clone(),
                            offset: offset as u64,
                            reason: reason.to_string(),
                        })
                    }
                    damage if is_last => {
                        let cut = buffer.len() - offset;
                        log::warn!(
                            "{}: cutting a torn tail of {cut} bytes at offset {offset} ({damage:?})",
                            path.display()
                        );
                        file.set_len(offset as u64)
                            .map_err(|error| StorageError::io(path, error))?;
                        file.sync_all().map_err(|error| StorageError::io(path, error))?;
                        sync_dir(&dir)?;
                        buffer.truncate(offset);
                        break;
                    }
                    Scan::Checksum { got, expected } => {
                        return Err(StorageError::ChecksumMismatch {
                            path: path.clone(),
                            offset: offset as u64,
                            got,
                            expected,
                        })
                    }
                    damage => {
                        return Err(StorageError::Corrupt {
                            path: path.clone(),
                            offset: offset as u64,
                            reason: format!("{damage:?} in a segment that is not the last one"),
                        })
                    }
                }
            }
            state.segments.insert(
                segment,
                Arc::new(Segment {
                    id: segment,
                    path: path.clone(),
                    file: Arc::new(file),
                    len: AtomicU64::new(buffer.len() as u64),
                }),
            );
        }
        state.keys = directory
            .into_iter()
            .filter_map(|(key, entry)| match entry {
                Entry::Live(location) => Some((key, location)),
                Entry::Removed(_) => None,
            })
            .collect();
        let next_segment = files.keys().next_back().map_or(1, |last| last.0 + 1);
        partition.next_segment.store(next_segment, Ordering::Release);
        partition.next_sequence.store(max_sequence + 1, Ordering::Release);
        partition.active_segment.store(
            last_appendable.map_or(NO_SEGMENT, |segment| segment.0),
            Ordering::Release,
        );
        *write_lock(&partition.state) = state;
        Ok(partition)
    }
}

/// During recovery: the newest record of a key, live or removed.
#[derive(Clone, Copy, Debug)]
enum Entry {
    Live(Location),
    Removed(u64),
}

impl Entry {
    fn sequence(&self) -> u64 {
        match self {
            Entry::Live(location) => location.sequence,
            Entry::Removed(sequence) => *sequence,
        }
    }
}

/// A header problem is a torn creation only if nothing follows the header.
fn is_torn_header(path: &Path, problem: HeaderProblem) -> Result<bool, StorageError> {
    let len = std::fs::metadata(path)
        .map_err(|error| StorageError::io(path, error))?
        .len();
    Ok(len <= HEADER_BYTES as u64 && matches!(problem, HeaderProblem::Short | HeaderProblem::Checksum))
}

fn read_up_to(file: &File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], filled as u64)? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
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
