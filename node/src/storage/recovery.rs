//! Recovery of a partition on open: every record of every segment is
//! scanned and its checksum verified, and the key directory rebuilt from
//! the newest record of each key. Only the last appendable segment may
//! have a torn tail (damage with nothing valid after it), which is cut and
//! the cut synced; any other damage fails the partition.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::format::{scan_record, HeaderProblem, RecordKind, Scan, SegmentHeader, FLAG_COMPACTED, HEADER_BYTES};
use super::keydir::{KeyDirectory, KeyHasherBuilder, StoredKey};
use super::partition::{
    partition_dir, read_manifest, write_new_segment, Partition, PartitionState, Segment, COMPACTING_SUFFIX,
    MANIFEST_FILE, NO_SEGMENT, SEGMENT_SUFFIX,
};
use super::{sync_dir, Location, StorageError};
use crate::storage::format::SegmentId;
use crate::sync::Recover;
use dynamo_core::ids::PartitionId;

impl Partition {
    /// Recovers the partition stored in `root/p<id>`: lists its segments,
    /// checks their headers (rewriting one torn while the newest segment
    /// was created), then scans every record of every segment on a reader
    /// thread while this one folds them into the key directory. Only the
    /// last appendable segment may have a torn tail, which is cut; any
    /// other damage fails the partition.
    pub(crate) fn recover(root: &Path, id: PartitionId) -> Result<Partition, StorageError> {
        let dir = partition_dir(root, id);
        let files = list_segments(&dir)?;
        let missing = missing_segments(&dir, &files)?;
        let last_appendable = check_headers(&dir, id, &files)?;
        let mut fold = Fold {
            partition: id,
            needs_repair: None,
            repaired: std::fs::read_to_string(dir.join(REPAIRED_FILE))
                .map(|text| text.lines().map(str::to_string).collect())
                .unwrap_or_default(),
            keys: KeyDirectory::default(),
            removed: HashMap::default(),
            max_sequence: 0,
            state: PartitionState::default(),
            total_bytes: 0,
        };
        for path in files.values() {
            fold.total_bytes += std::fs::metadata(path)
                .map_err(|error| StorageError::io(path, error))?
                .len();
        }
        scan_segments(&files, |segment, path, scanned| {
            let is_last = Some(segment) == last_appendable;
            fold.segment(&dir, segment, path, scanned, is_last)
        })?;
        let partition = Partition::empty(id, dir.clone());
        let next_segment = files.keys().next_back().map_or(1, |last| last.0 + 1);
        partition.next_segment.store(next_segment, Ordering::Release);
        partition.next_sequence.store(fold.max_sequence + 1, Ordering::Release);
        partition.active_segment.store(
            last_appendable.map_or(NO_SEGMENT, |segment| segment.0),
            Ordering::Release,
        );
        fold.state.keys = fold.keys;
        if !missing.is_empty() {
            let reason = format!(
                "segments {missing:?} are listed in {} but missing: their records are lost here",
                dir.join(MANIFEST_FILE).display()
            );
            log::error!("{reason}; the partition is marked for repair from the other replicas");
            if !fold.repaired.contains(&reason) {
                fold.needs_repair.get_or_insert(reason);
            }
        }
        // Damage found before is remembered until a repair clears it: the
        // data it cost is still missing even when its traces are gone (a
        // manifest rewritten, a damaged range compacted away).
        let noted = dir.join(REPAIR_FILE);
        let earlier = std::fs::read_to_string(&noted)
            .ok()
            .filter(|text| !text.trim().is_empty());
        if let Some(reason) = fold.needs_repair.as_ref() {
            let text = match &earlier {
                Some(earlier) => format!("{}\n{reason}\n", earlier.trim_end()),
                None => format!("{reason}\n"),
            };
            crate::data_dir::write_atomically(&noted, &text).map_err(|error| StorageError::io(&noted, error))?;
        }
        if let Some(reason) = fold.needs_repair.or(earlier.map(|text| text.trim().to_string())) {
            log::error!("partition {} needs repair: {reason}", id.0);
            *partition.needs_repair.lock().recover() = Some(reason);
        }
        *partition.state.write().recover() = fold.state;
        // The list now matches what is here (the missing stay reported).
        partition.write_manifest()?;
        Ok(partition)
    }
}

/// Marks `partition` for repair from the other replicas, durably (its
/// `NEEDS_REPAIR` file gains `reason`), as recovery does for damage found
/// in its own files.
pub(crate) fn note_repair(partition: &Partition, reason: &str) -> Result<(), StorageError> {
    let noted = partition.dir.join(REPAIR_FILE);
    let earlier = std::fs::read_to_string(&noted).unwrap_or_default();
    let text = format!("{earlier}{reason}\n");
    crate::data_dir::write_atomically(&noted, &text).map_err(|error| StorageError::io(&noted, error))?;
    let mut needs = partition.needs_repair.lock().recover();
    *needs = Some(match needs.take() {
        Some(before) => format!("{before}\n{reason}"),
        None => reason.to_string(),
    });
    Ok(())
}

/// The file that remembers why a partition needs repair, until a repair
/// (anti-entropy) clears it.
pub(crate) const REPAIR_FILE: &str = "NEEDS_REPAIR";

/// The damage anti-entropy has repaired, a line each: the damaged bytes
/// stay in their segment until compaction drops them, and are not
/// reported again meanwhile.
pub(crate) const REPAIRED_FILE: &str = "REPAIRED";

/// Segments the manifest lists that are not on disk (none without a
/// manifest). Files the manifest does not list are fine: a roll or a
/// compaction creates its file before it rewrites the manifest.
fn missing_segments(dir: &Path, files: &BTreeMap<SegmentId, PathBuf>) -> Result<Vec<u64>, StorageError> {
    Ok(read_manifest(dir)?
        .unwrap_or_default()
        .into_iter()
        .filter(|id| !files.contains_key(id))
        .map(|id| id.0)
        .collect())
}

/// The segment files of a partition directory, by id; an unfinished
/// compaction's output is removed on the way.
fn list_segments(dir: &Path) -> Result<BTreeMap<SegmentId, PathBuf>, StorageError> {
    let mut files = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|error| StorageError::io(dir, error))?;
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::io(dir, error))?;
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
    Ok(files)
}

/// Checks every segment's header and returns the last appendable segment
/// (the only one that may have a torn tail). A header torn while the
/// newest segment was being created is rewritten; any other bad header,
/// or one naming another partition or segment, is an error.
fn check_headers(
    dir: &Path,
    id: PartitionId,
    files: &BTreeMap<SegmentId, PathBuf>,
) -> Result<Option<SegmentId>, StorageError> {
    let mut headers: BTreeMap<SegmentId, Result<SegmentHeader, HeaderProblem>> = BTreeMap::new();
    for (&segment, path) in files {
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
    for (&segment, path) in files {
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
                sync_dir(dir)?;
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
    }
    Ok(last_appendable)
}

/// Scans every segment on a reader thread, handing each to `take` in id
/// order on this one, so that recovery uses both cores: the reader maps
/// each segment and verifies every record's checksum, while this thread
/// folds the records into the key directory (hashing and inserting are
/// ours). Mapping instead of reading saves the copy out of the page cache,
/// which was most of the reader's time and made it the slower of the two.
/// Used bytes go back to the reader: it unmaps (off this thread, which is
/// the one recovery waits for) or reuses the buffer of a segment that had
/// to be read.
fn scan_segments(
    files: &BTreeMap<SegmentId, PathBuf>,
    mut take: impl FnMut(SegmentId, &Path, ScannedSegment) -> Result<SegmentBytes, StorageError>,
) -> Result<(), StorageError> {
    std::thread::scope(|scope| -> Result<(), StorageError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Result<ScannedSegment, StorageError>>(2);
        let (recycle, recycled) = std::sync::mpsc::channel::<SegmentBytes>();
        scope.spawn(move || {
            let mut spare = Vec::new();
            for (&segment, path) in files {
                while let Ok(used) = recycled.try_recv() {
                    if let SegmentBytes::Read(buffer) = used {
                        spare = buffer;
                    }
                }
                let read = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .and_then(|file| {
                        let bytes = SegmentBytes::of(&file, &mut spare)?;
                        Ok((file, bytes))
                    })
                    .map_err(|error| StorageError::io(path, error))
                    .map(|(file, bytes)| scan_segment(segment, file, bytes));
                let failed = read.is_err();
                if sender.send(read).is_err() || failed {
                    return;
                }
            }
        });
        for (&segment, path) in files {
            let scanned = receiver
                .recv()
                .map_err(|_| StorageError::io(path, std::io::Error::other("segment reader stopped")))??;
            let _ = recycle.send(take(segment, path, scanned)?);
        }
        Ok(())
    })
}

/// What recovery has folded so far.
struct Fold {
    /// The partition recovered.
    partition: PartitionId,
    /// Why the partition needs repair from the other replicas (the first
    /// damage found), if it does.
    needs_repair: Option<String>,
    /// Damage anti-entropy has repaired already (`REPAIRED`): found again,
    /// it is not reported again (the keys it cost were written anew).
    repaired: std::collections::BTreeSet<String>,
    keys: KeyDirectory,
    /// Keys whose newest record so far is a remove, with its sequence:
    /// files are not in write order (compaction outputs), so a put read
    /// later may still be older than a remove read earlier.
    removed: HashMap<StoredKey, u64, KeyHasherBuilder>,
    max_sequence: u64,
    state: PartitionState,
    /// Bytes of all segments, to size the key directory once.
    total_bytes: u64,
}

impl Fold {
    /// Notes damage that makes the partition need repair, unless it was
    /// repaired already.
    fn damage(&mut self, reason: String) {
        if !self.repaired.contains(&reason) {
            self.needs_repair.get_or_insert(reason);
        }
    }

    /// Folds one scanned segment in, and decides on its damage: a torn tail
    /// of the last appendable segment is cut (and the cut synced); any
    /// other damage is an error. Returns the segment's bytes, to recycle.
    fn segment(
        &mut self,
        dir: &Path,
        segment: SegmentId,
        path: &Path,
        scanned: ScannedSegment,
        is_last: bool,
    ) -> Result<SegmentBytes, StorageError> {
        if self.keys.is_empty() && !scanned.bytes.is_empty() {
            // Size the directory once, from the first segment's record
            // density, rather than rehashing it log₂(n) times.
            let density = scanned.records.len() as f64 / scanned.bytes.len() as f64;
            self.keys.reserve((self.total_bytes as f64 * density) as usize);
        }
        for record in &scanned.records {
            let key = &scanned.bytes[record.key_start..record.key_start + record.key_len];
            self.max_sequence = self.max_sequence.max(record.location.sequence);
            apply_recovered(&mut self.keys, &mut self.removed, record.kind, key, record.location);
        }
        for (start, end, damage) in &scanned.corrupt {
            log::error!(
                "{}: bytes {start}..{end} are corrupt ({damage:?}) and valid records follow: they are skipped, the \
                 records after them salvaged, and partition {} is marked for repair from the other replicas",
                path.display(),
                self.partition.0
            );
            self.damage(format!("corrupt bytes {start}..{end} in {}", path.display()));
        }
        let len = match scanned.damage {
            None => scanned.bytes.len(),
            Some((offset, damage)) => {
                let tail = Tail {
                    len: scanned.bytes.len(),
                    offset,
                    damage,
                };
                let (len, repair) = cut_torn_tail(dir, path, &scanned.file, tail, is_last)?;
                if let Some(reason) = repair {
                    self.damage(reason);
                }
                len
            }
        };
        self.state.segments.insert(
            segment,
            Arc::new(Segment {
                id: segment,
                path: path.to_path_buf(),
                file: Arc::new(scanned.file),
                len: AtomicU64::new(len as u64),
            }),
        );
        Ok(scanned.bytes)
    }
}

/// Where a scan of a segment of `len` bytes stopped, and why.
struct Tail {
    len: usize,
    offset: usize,
    damage: Damage,
}

/// Damage with nothing valid after it. In the last appendable segment it
/// is a torn tail (the last batch, never acknowledged under `always`): cut,
/// and the cut synced; returns the new length. Anywhere else (a sealed
/// segment), or when the checksum verified but the body did not decode, it
/// is corruption: nothing is cut, the damaged bytes are never served, and
/// the reason comes back for the partition to be repaired.
fn cut_torn_tail(
    dir: &Path,
    path: &Path,
    file: &File,
    tail: Tail,
    is_last: bool,
) -> Result<(usize, Option<String>), StorageError> {
    let Tail { len, offset, damage } = tail;
    if is_last && !matches!(damage, Damage::Malformed(_)) {
        let cut = len - offset;
        log::warn!(
            "{}: cutting a torn tail of {cut} bytes at offset {offset} ({damage:?})",
            path.display()
        );
        file.set_len(offset as u64)
            .map_err(|error| StorageError::io(path, error))?;
        file.sync_all().map_err(|error| StorageError::io(path, error))?;
        sync_dir(dir)?;
        return Ok((offset, None));
    }
    log::error!(
        "{}: bytes {offset}..{len} are damaged ({damage:?}) in a segment that is not being appended to: \
         they are not served, and the partition is marked for repair from the other replicas",
        path.display()
    );
    Ok((
        len,
        Some(format!("damaged bytes {offset}..{len} in {}", path.display())),
    ))
}

/// A segment read and checked, ready to be indexed.
struct ScannedSegment {
    file: File,
    bytes: SegmentBytes,
    records: Vec<ScannedRecord>,
    /// Damaged byte ranges followed by a record that verifies: corruption,
    /// not a tear (a tear only ever damages the last batch written). Never
    /// served; the records after each are salvaged.
    corrupt: Vec<(usize, usize, Damage)>,
    /// Where the valid records stop short of the end with nothing valid
    /// after, and why: a torn tail in the last appendable segment.
    damage: Option<(usize, Damage)>,
}

struct ScannedRecord {
    kind: RecordKind,
    key_start: usize,
    key_len: usize,
    location: Location,
}

/// What [`Scan`] found instead of a record, without the borrow.
#[derive(Clone, Copy, Debug)]
// The fields are read through Debug, in the log lines that report damage.
#[allow(dead_code)]
enum Damage {
    Truncated,
    BadLength(u32),
    Checksum { got: u32, expected: u32 },
    Malformed(&'static str),
}

/// A whole segment's bytes, for recovery and compaction to scan.
pub(super) enum SegmentBytes {
    /// Mapped read-only, pages populated up front.
    Mapped(Mapping),
    /// Read into memory: an empty file, or one the kernel would not map.
    Read(Vec<u8>),
}

impl SegmentBytes {
    /// Maps `file`, or reads it into `spare` (taken) if it cannot be mapped.
    pub(super) fn of(file: &File, spare: &mut Vec<u8>) -> std::io::Result<SegmentBytes> {
        if let Some(mapping) = Mapping::new(file)? {
            return Ok(SegmentBytes::Mapped(mapping));
        }
        let mut buffer = std::mem::take(spare);
        buffer.clear();
        std::io::Read::read_to_end(&mut &*file, &mut buffer)?;
        Ok(SegmentBytes::Read(buffer))
    }
}

impl std::ops::Deref for SegmentBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            SegmentBytes::Mapped(mapping) => mapping.bytes(),
            SegmentBytes::Read(buffer) => buffer,
        }
    }
}

/// A read-only, private mapping of a whole file, unmapped on drop.
///
/// Recovery owns the data directory while it maps: nothing else appends to
/// or truncates these files meanwhile (the only truncation, of a torn tail,
/// is ours and comes after the scan; no byte past the cut is read again).
/// A file shrunk by another process under the mapping would fault, which
/// is why it is used for recovery's single pass only, never for serving.
pub(super) struct Mapping {
    address: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain read-only memory; moving its ownership to
// another thread (the reader hands it over, and gets it back to unmap) is
// no different from moving a `Box<[u8]>`.
unsafe impl Send for Mapping {}

impl Mapping {
    /// `None` for an empty file or where the kernel refuses the mapping (the
    /// caller then reads the file).
    fn new(file: &File) -> std::io::Result<Option<Mapping>> {
        use std::os::unix::io::AsRawFd;
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        if len == 0 {
            return Ok(None);
        }
        // SAFETY: a fresh read-only private mapping of an open file; the
        // kernel chooses the address. Checked for MAP_FAILED below.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Ok(None);
        }
        Ok(std::ptr::NonNull::new(address.cast::<u8>()).map(|address| Mapping { address, len }))
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `address` maps `len` readable bytes until `drop`.
        unsafe { std::slice::from_raw_parts(self.address.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once.
        unsafe {
            libc::munmap(self.address.as_ptr().cast(), self.len);
        }
    }
}

/// Verifies every record of a segment's bytes.
fn scan_segment(segment: SegmentId, file: File, buffer: SegmentBytes) -> ScannedSegment {
    let mut records = Vec::with_capacity(buffer.len() / 256);
    let mut corrupt = Vec::new();
    let mut offset = HEADER_BYTES.min(buffer.len());
    let damage = loop {
        let damage = match scan_record(&buffer[offset..]) {
            Scan::Record(record) => {
                records.push(ScannedRecord {
                    kind: record.kind,
                    key_start: record.key.as_ptr() as usize - buffer.as_ptr() as usize,
                    key_len: record.key.len(),
                    location: Location {
                        segment,
                        offset: offset as u64,
                        len: record.len as u32,
                        sequence: record.sequence,
                    },
                });
                offset += record.len;
                continue;
            }
            Scan::End => None,
            Scan::Truncated => Some(Damage::Truncated),
            Scan::BadLength(len) => Some(Damage::BadLength(len)),
            Scan::Checksum { got, expected } => Some(Damage::Checksum { got, expected }),
            Scan::Malformed(reason) => Some(Damage::Malformed(reason)),
        };
        let Some(damage) = damage else { break None };
        // Damage followed by any record that verifies is corruption: skip
        // to that record (resynchronise on the next header whose length
        // and checksum verify) and go on. Only damage with nothing valid
        // after it can be a torn tail.
        match resynchronise(&buffer, offset + 1) {
            Some(next) => {
                corrupt.push((offset, next, damage));
                offset = next;
            }
            None => break Some((offset, damage)),
        }
    };
    ScannedSegment {
        file,
        bytes: buffer,
        records,
        corrupt,
        damage,
    }
}

/// The first offset at or after `from` where a whole record verifies.
pub(crate) fn resynchronise(buffer: &[u8], from: usize) -> Option<usize> {
    (from..buffer.len()).find(|&offset| matches!(scan_record(&buffer[offset..]), Scan::Record(_)))
}

/// Folds one recovered record into the key directory: the record with the
/// highest sequence for a key wins, whatever order the files are read in.
fn apply_recovered(
    keys: &mut KeyDirectory,
    removed: &mut HashMap<StoredKey, u64, KeyHasherBuilder>,
    kind: RecordKind,
    key: &[u8],
    location: Location,
) {
    match kind {
        RecordKind::Put => {
            if !removed.is_empty() {
                match removed.get(key) {
                    Some(&removed_at) if removed_at > location.sequence => return,
                    Some(_) => {
                        removed.remove(key);
                    }
                    None => {}
                }
            }
            // One hash for the common case, a new key.
            match keys.entry(key.into()) {
                std::collections::hash_map::Entry::Occupied(mut existing) => {
                    if existing.get().sequence < location.sequence {
                        existing.insert(location);
                    }
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(location);
                }
            }
        }
        RecordKind::Remove => {
            if keys.get(key).is_some_and(|live| live.sequence > location.sequence) {
                return;
            }
            keys.remove(key);
            let newest = removed.entry(key.into()).or_insert(location.sequence);
            *newest = (*newest).max(location.sequence);
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever order recovery meets records in (compaction outputs
        /// are numbered after newer segments), the newest record of each
        /// key decides: live if a put, gone if a remove.
        #[test]
        fn recovery_order_does_not_matter(
            records in proptest::collection::vec((0u8..4, any::<bool>()), 1..40),
            order in any::<proptest::sample::Index>(),
        ) {
            let records: Vec<(u8, bool, u64)> = records
                .into_iter()
                .enumerate()
                .map(|(sequence, (key, remove))| (key, remove, sequence as u64 + 1))
                .collect();
            let mut shuffled = records.clone();
            shuffled.rotate_left(order.index(records.len()));
            shuffled.reverse();
            let mut keys = KeyDirectory::default();
            let mut removed = HashMap::default();
            for &(key, remove, sequence) in &shuffled {
                let kind = if remove { RecordKind::Remove } else { RecordKind::Put };
                let location = Location { segment: SegmentId(1), offset: sequence, len: 1, sequence };
                apply_recovered(&mut keys, &mut removed, kind, &[key], location);
            }
            for key in 0u8..4 {
                let newest = records.iter().filter(|record| record.0 == key).max_by_key(|record| record.2);
                let expected = newest.filter(|record| !record.1).map(|record| record.2);
                prop_assert_eq!(keys.get(&[key][..]).map(|location| location.sequence), expected);
            }
        }
    }
}
