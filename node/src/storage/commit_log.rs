//! The node-wide commit log: under [`SyncPolicy::Always`] every write of
//! every partition is appended here first, and one group commit is one log
//! write and one `fdatasync`, however many partitions its writes touch.
//! The log write goes through io_uring (a direct write of allocated blocks
//! is not handed to an io-wq worker); while it is in flight the storage
//! thread writes the batch's records to their partition files, buffered,
//! without `fdatasync`; then it calls `fdatasync` on the log itself (io_uring
//! would hand the sync to an io-wq worker, a thread switch per batch).
//! Partition files stay the home of the data: they are synced later at a
//! *checkpoint*, after which the log segments that hold only checkpointed
//! batches are recycled.
//!
//! # Files
//!
//! `<root>/log/<id:010>.log` are the segments, of
//! [`StorageConfig::log_segment_bytes`] each, written from offset 0 in
//! 4 KiB blocks with `O_DIRECT`. A segment is zero-filled (or recycled: an
//! old segment renamed) *before* it is used, so every write overwrites
//! allocated, written blocks: its `fdatasync` has no metadata to commit
//! (measured on this ext4 disk: 4 KiB overwrite + fdatasync 10.8–12.3k/s,
//! append + fdatasync 5.1–7.3k/s; fallocate'd blocks are "unwritten" and
//! cost as much as an append, 5.5k/s). The next segment is made
//! ready (named, its directory synced, opened) by the log's helper thread
//! before the roll needs it; `spare-<n>.log` are recycled segments kept for
//! that. `CHECKPOINT` names the last batch whose records are
//! durable in the partition files.
//!
//! A segment is a run of batches, each starting on a block boundary:
//!
//! ```text
//! offset  size  field
//!  0       4    magic        b"DLB1"
//!  4       4    CRC32C       u32 LE, of bytes 8..32 followed by the body
//!  8       8    segment id   u64 LE (equals the file name: a recycled
//!                            segment's old batches do not match it)
//! 16       8    batch        u64 LE, one more than the batch before it,
//!                            across segments
//! 24       4    body length  u32 LE
//! 28       4    records      u32 LE
//! 32       ..   body: per partition, partition u32 LE, length u32 LE,
//!                     then that many bytes of records exactly as the
//!                     partition file holds them (format.rs)
//!  ..      ..   zeros to the next block
//! ```
//!
//! # Recovery
//!
//! After the partitions are opened, every batch after the checkpoint is
//! replayed in order: a record is applied unless the key directory already
//! holds the key at that sequence number or later (replay is idempotent;
//! a record a torn partition tail lost comes back). Replayed records are
//! copied as they are (the batch's checksum verified them) to a new
//! segment of their partition, written with `O_DIRECT` in block-aligned
//! pieces on a thread of its own while the log is read on, and synced
//! before a new checkpoint is written. A batch that does not verify ends the log only if
//! no valid batch follows it (a torn tail: it was never acknowledged);
//! damage followed by a valid batch is reported, the batches after it are
//! salvaged, and every partition is marked for repair from the other
//! replicas (which writes the damaged batch held is not known).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::format::{scan_record, scan_verified_record, RecordKind, Scan};
use super::io::{AlignedBuf, OpBytes, WriteOp, BLOCK};
use super::keydir::StoredKey;
use super::partition::{Partition, Segment};
use super::{sync_dir, Location, StorageError};
use crate::sync::Recover;
use dynamo_core::ids::PartitionId;

/// The log's directory under a data directory.
pub(crate) const LOG_DIR: &str = "log";
const SUFFIX: &str = ".log";
const SPARE_PREFIX: &str = "spare-";
const CHECKPOINT_FILE: &str = "CHECKPOINT";
const CHECKPOINT_MAGIC: &str = "dynamo commit log checkpoint v1";
/// A batch's magic.
pub(crate) const BATCH_MAGIC: [u8; 4] = *b"DLB1";
/// Bytes of a batch header.
pub(crate) const BATCH_HEADER_BYTES: usize = 32;
/// Recycled segments kept for the next segments (more are deleted).
const SPARES_KEPT: usize = 1;

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:010}{SUFFIX}"))
}

/// The segments in `dir`, by id.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut segments = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(segments),
        Err(error) => return Err(StorageError::io(dir, error)),
    };
    for entry in entries {
        let entry = entry.map_err(|error| StorageError::io(dir, error))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|name| name.strip_suffix(SUFFIX))
            .filter(|digits| digits.len() == 10 && digits.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push((id, entry.path()));
    }
    segments.sort();
    Ok(segments)
}

fn list_spares(dir: &Path) -> Vec<PathBuf> {
    let mut spares: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(SPARE_PREFIX) && name.ends_with(SUFFIX))
        })
        .collect();
    spares.sort();
    spares
}

fn read_checkpoint(dir: &Path) -> Result<u64, StorageError> {
    let path = dir.join(CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(StorageError::io(&path, error)),
    };
    let mut lines = text.lines();
    let bad = || StorageError::BadHeader {
        path: path.clone(),
        reason: format!("not a commit log checkpoint ({CHECKPOINT_MAGIC:?} then a batch number)"),
    };
    if lines.next() != Some(CHECKPOINT_MAGIC) {
        return Err(bad());
    }
    lines.next().and_then(|line| line.trim().parse().ok()).ok_or_else(bad)
}

fn write_checkpoint(dir: &Path, batch: u64) -> Result<(), StorageError> {
    let path = dir.join(CHECKPOINT_FILE);
    crate::data_dir::write_atomically(&path, &format!("{CHECKPOINT_MAGIC}\n{batch}\n"))
        .map_err(|error| StorageError::io(&path, error))
}

/// Creates `path` as `bytes` of zeros, written and synced (its blocks
/// allocated and written, so later overwrites commit no metadata).
fn zero_filled(path: &Path, bytes: u64) -> Result<(), StorageError> {
    let file = File::create(path).map_err(|error| StorageError::io(path, error))?;
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while written < bytes {
        let len = chunk.len().min((bytes - written) as usize);
        file.write_all_at(&chunk[..len], written)
            .map_err(|error| StorageError::io(path, error))?;
        written += len as u64;
    }
    file.sync_all().map_err(|error| StorageError::io(path, error))
}

fn open_direct(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|error| StorageError::io(path, error))
}

/// One batch read back.
struct Batch {
    number: u64,
    body: std::ops::Range<usize>,
}

/// The batch at `offset` of segment `id`'s bytes, if one verifies there
/// and comes after batch `after`.
fn batch_at(bytes: &[u8], offset: usize, id: u64, after: u64) -> Option<Batch> {
    let header = bytes.get(offset..offset + BATCH_HEADER_BYTES)?;
    if header[0..4] != BATCH_MAGIC {
        return None;
    }
    let field = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or_default());
    let (segment, number) = (field(8), field(16));
    let body_len = u32::from_le_bytes(header[24..28].try_into().unwrap_or_default()) as usize;
    if segment != id || number <= after {
        return None;
    }
    let body = bytes.get(offset + BATCH_HEADER_BYTES..offset + BATCH_HEADER_BYTES + body_len)?;
    let expected = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default());
    let got = crc32c::crc32c_append(crc32c::crc32c(&header[8..]), body);
    (got == expected).then_some(Batch {
        number,
        body: offset + BATCH_HEADER_BYTES..offset + BATCH_HEADER_BYTES + body_len,
    })
}

/// The first valid batch after batch `after` at or beyond `from` (block by
/// block): what damage is followed by.
fn next_valid(bytes: &[u8], from: usize, id: u64, after: u64) -> Option<usize> {
    (from.next_multiple_of(BLOCK)..bytes.len())
        .step_by(BLOCK)
        .find(|&offset| batch_at(bytes, offset, id, after).is_some())
}

/// The partitions' chunks of a batch body: (partition, its records).
fn chunks(body: &[u8]) -> impl Iterator<Item = Result<(PartitionId, &[u8]), &'static str>> {
    let mut offset = 0usize;
    std::iter::from_fn(move || {
        if offset >= body.len() {
            return None;
        }
        let Some(head) = body.get(offset..offset + 8) else {
            offset = body.len();
            return Some(Err("a chunk header runs past the body"));
        };
        let partition = PartitionId(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let Some(records) = body.get(offset + 8..offset + 8 + len) else {
            offset = body.len();
            return Some(Err("a chunk runs past the body"));
        };
        offset += 8 + len;
        Some(Ok((partition, records)))
    })
}

/// What replaying the log did at open.
#[derive(Clone, Debug, Default)]
pub struct Replayed {
    /// Batches replayed (after the checkpoint).
    pub batches: u64,
    /// Records applied to partitions (the rest were there already).
    pub applied: u64,
    /// Bytes of log replayed: the batches after the checkpoint as written
    /// (headers, bodies and padding; not the zeros or old batches after
    /// the last one).
    pub bytes: u64,
    /// How long the replay took, applying and syncing included.
    pub seconds: f64,
    /// The last valid batch (the log goes on after it).
    pub(crate) last_batch: u64,
    /// The highest segment id seen.
    pub(crate) last_segment: u64,
}

/// Replays the log under `root` into `partitions` (see the module doc),
/// then checkpoints it, so that every existing segment may be recycled.
///
/// # Errors
/// A log file cannot be read, or a replayed write cannot be made durable.
pub(crate) fn replay(
    root: &Path,
    partitions: &mut std::collections::BTreeMap<PartitionId, Arc<Partition>>,
) -> Result<Replayed, StorageError> {
    let started = std::time::Instant::now();
    let dir = root.join(LOG_DIR);
    let mut replayed = Replayed::default();
    let segments = list_segments(&dir)?;
    if segments.is_empty() {
        return Ok(replayed);
    }
    let checkpoint = read_checkpoint(&dir)?;
    replayed.last_batch = checkpoint;
    replayed.last_segment = segments.last().map_or(0, |(id, _)| *id);
    // Every segment read whole, in order (only segments not yet recycled
    // are here: the few since the last checkpoint, and spares' ids are not
    // segment names).
    let mut contents = Vec::with_capacity(segments.len());
    for (id, path) in &segments {
        let bytes = File::open(path)
            .and_then(|file| super::recovery::SegmentBytes::of(&file, &mut Vec::new()))
            .map_err(|error| StorageError::io(path, error))?;
        contents.push((*id, path.clone(), bytes));
    }
    let mut last = 0u64;
    let mut damage: Vec<String> = Vec::new();
    let mut touched: std::collections::BTreeMap<PartitionId, Replaying> = std::collections::BTreeMap::new();
    let mut writer = ReplayWriter::start()?;
    // Batches are numbered one after another across segments: a number
    // skipped is a batch lost (harmless only when a checkpoint covers it).
    let missing = |from: u64, to: u64, at: String, damage: &mut Vec<String>| {
        if to <= checkpoint {
            log::warn!("{at}: batches {from}..={to} do not verify; the checkpoint covers them, nothing is lost");
        } else {
            damage.push(format!("{at}: batches {from}..={to} do not verify"));
        }
    };
    for (id, path, bytes) in &contents {
        let mut offset = 0usize;
        while offset < bytes.len() {
            let Some(batch) = batch_at(bytes, offset, *id, last) else {
                // Zeros, a recycled segment's old batches, a torn write or
                // damage: which, depends on what follows.
                match next_valid(bytes, offset + BLOCK, *id, last) {
                    Some(resume) => {
                        let next = batch_at(bytes, resume, *id, last).map_or(last + 1, |batch| batch.number);
                        let at = format!("{} bytes {offset}..{resume}", path.display());
                        missing(last + 1, next - 1, at, &mut damage);
                        // Said: the batch resumed at is no gap of its own.
                        last = next - 1;
                        offset = resume;
                        continue;
                    }
                    None => {
                        let header = &bytes[offset..(offset + BATCH_HEADER_BYTES).min(bytes.len())];
                        let ours = header.len() == BATCH_HEADER_BYTES
                            && header[0..4] == BATCH_MAGIC
                            && header[8..16] == id.to_le_bytes();
                        if ours {
                            // Cut, unless a later segment goes on after it
                            // (found below as a gap in the numbers).
                            log::warn!(
                                "{}: the batch at offset {offset} does not verify and nothing valid follows it in \
                                 this segment: a torn write, never acknowledged",
                                path.display()
                            );
                        }
                        break;
                    }
                }
            };
            let gap = if last == 0 {
                batch.number > checkpoint + 1
            } else {
                batch.number != last + 1
            };
            if gap {
                let from = if last == 0 { checkpoint + 1 } else { last + 1 };
                missing(
                    from,
                    batch.number - 1,
                    format!("{} offset {offset}", path.display()),
                    &mut damage,
                );
            }
            let len = (BATCH_HEADER_BYTES + batch.body.len()).next_multiple_of(BLOCK);
            last = batch.number;
            if batch.number > checkpoint {
                replayed.batches += 1;
                replayed.bytes += len as u64;
                for chunk in chunks(&bytes[batch.body.clone()]) {
                    let (partition, records) = match chunk {
                        Ok(chunk) => chunk,
                        Err(reason) => {
                            damage.push(format!("{}: batch {}: {reason}", path.display(), batch.number));
                            break;
                        }
                    };
                    replayed.applied += apply(root, partitions, &mut touched, &mut writer, partition, records)
                        .map_err(|reason| match reason {
                            Applied::Storage(error) => error,
                            Applied::Malformed(reason) => StorageError::Corrupt {
                                path: path.clone(),
                                offset: offset as u64,
                                reason: reason.to_string(),
                            },
                        })?;
                }
            }
            offset += len;
        }
    }
    replayed.last_batch = last.max(checkpoint);
    // What was replayed is durable in its partitions before the checkpoint
    // says so: the last blocks written, each file cut to its data (the
    // last block was padded), then synced.
    let mut ends = Vec::with_capacity(touched.len());
    for replaying in touched.values_mut() {
        ends.push(replaying.end());
        replaying.hand_over(&mut writer, true)?;
    }
    writer.finish()?;
    for ((partition, replaying), end) in touched.iter().zip(ends) {
        let segment = &replaying.segment;
        segment
            .file
            .set_len(end)
            .and_then(|()| segment.file.sync_data())
            .map_err(|error| StorageError::io(&segment.path, error))?;
        segment.len.store(end, Ordering::Release);
        if let Some(part) = partitions.get(partition) {
            part.write_manifest()?;
        }
    }
    if !damage.is_empty() {
        let reason = format!("the commit log was damaged: {}", damage.join("; "));
        log::error!("{reason}; every partition is marked for repair from the other replicas");
        for partition in partitions.values() {
            super::recovery::note_repair(partition, &reason)?;
        }
    }
    write_checkpoint(&dir, replayed.last_batch)?;
    replayed.seconds = started.elapsed().as_secs_f64();
    if replayed.batches > 0 {
        log::info!(
            "commit log: replayed {} batches ({} records applied, {:.1} MiB of batches) after checkpoint {checkpoint} in {:.3} s",
            replayed.batches,
            replayed.applied,
            replayed.bytes as f64 / 1048576.0,
            replayed.seconds
        );
    }
    Ok(replayed)
}

enum Applied {
    Storage(StorageError),
    Malformed(&'static str),
}

/// Where a partition's replayed records go: a new segment, written in
/// large pieces with `O_DIRECT` on a thread of its own while the log is
/// read on (the key directory points at their final offsets at once;
/// nothing reads the files before the engine has opened).
///
/// Direct, because buffered writes of fresh page-cache pages were what
/// replay spent its time on: 65% of it in the kernel's copy into the page
/// cache, at 0.6 GB/s on this kind of machine (a virtual machine whose
/// first touch of a page is slow), and every page written then had to be
/// written back by the final fdatasync anyway.
struct Replaying {
    segment: Arc<Segment>,
    /// The segment opened with `O_DIRECT` (the buffered file where the
    /// file system refuses it).
    direct: Arc<File>,
    /// The file offset the buffer starts at (a whole number of blocks).
    base: u64,
    /// The file's bytes from `base` on, not yet handed to the writer.
    buffer: AlignedBuf,
}

/// A replayed partition hands its bytes to the writer once this many have
/// gathered.
const REPLAY_WRITE_BYTES: usize = 4 << 20;

/// A replay buffer's room: a hand-over's bytes and the record that crossed
/// the threshold.
const REPLAY_BUFFER_BYTES: usize = REPLAY_WRITE_BYTES + (1 << 20);

impl Replaying {
    fn start(partition: &Partition) -> Result<Replaying, StorageError> {
        let segment = partition.create_segment(false, true)?;
        let direct = match open_direct(&segment.path) {
            Ok(file) => Arc::new(file),
            Err(_) => Arc::clone(&segment.file),
        };
        // The segment's header, already on file, is the first block's start.
        let mut header = vec![0u8; segment.len.load(Ordering::Acquire) as usize];
        segment
            .file
            .read_exact_at(&mut header, 0)
            .map_err(|error| StorageError::io(&segment.path, error))?;
        let mut buffer = AlignedBuf::with_capacity(REPLAY_BUFFER_BYTES);
        buffer.extend_from_slice(&header);
        Ok(Replaying {
            segment,
            direct,
            base: 0,
            buffer,
        })
    }

    /// The file offset the next record goes to.
    fn end(&self) -> u64 {
        self.base + self.buffer.len() as u64
    }

    /// Hands the buffer's whole blocks to the writer (all of it, padded,
    /// when `last`), keeping the partial block at its end.
    fn hand_over(&mut self, writer: &mut ReplayWriter, last: bool) -> Result<(), StorageError> {
        let whole = if last {
            self.buffer.len().next_multiple_of(BLOCK)
        } else {
            self.buffer.len() / BLOCK * BLOCK
        };
        if whole == 0 {
            return Ok(());
        }
        let next = if last {
            // Nothing is buffered after the last hand-over.
            AlignedBuf::with_capacity(0)
        } else {
            // The partial block goes on in the next buffer.
            let mut next = writer.buffer();
            next.extend_from_slice(&self.buffer.as_slice()[whole..]);
            self.buffer.truncate(whole);
            next
        };
        self.buffer.pad();
        let full = std::mem::replace(&mut self.buffer, next);
        writer.write(Arc::clone(&self.direct), self.segment.path.clone(), self.base, full)?;
        self.base += whole as u64;
        Ok(())
    }
}

/// The thread that writes replayed partition bytes, so that reading the
/// log and writing the partitions overlap; it keeps the first error.
struct ReplayWriter {
    jobs: Option<std::sync::mpsc::SyncSender<ReplayWrite>>,
    spare: std::sync::mpsc::Receiver<AlignedBuf>,
    thread: Option<std::thread::JoinHandle<Result<(), StorageError>>>,
}

/// One piece for the replay writer: the file, its path (for errors), the
/// offset, the bytes.
type ReplayWrite = (Arc<File>, PathBuf, u64, AlignedBuf);

/// Buffers queued for the writer at most.
const REPLAY_WRITES_QUEUED: usize = 4;

impl ReplayWriter {
    fn start() -> Result<ReplayWriter, StorageError> {
        let (jobs, queued) = std::sync::mpsc::sync_channel::<ReplayWrite>(REPLAY_WRITES_QUEUED);
        let (done, spare) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("dynamo-replay".into())
            .spawn(move || {
                for (file, path, offset, mut buffer) in queued {
                    file.write_all_at(buffer.as_slice(), offset)
                        .map_err(|error| StorageError::io(&path, error))?;
                    buffer.truncate(0);
                    let _ = done.send(buffer);
                }
                Ok(())
            })
            .map_err(|error| StorageError::io(Path::new("dynamo-replay thread"), error))?;
        Ok(ReplayWriter {
            jobs: Some(jobs),
            spare,
            thread: Some(thread),
        })
    }

    /// An empty buffer: one the writer is done with, or a new one.
    fn buffer(&self) -> AlignedBuf {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| AlignedBuf::with_capacity(REPLAY_BUFFER_BYTES))
    }

    fn write(&mut self, file: Arc<File>, path: PathBuf, offset: u64, buffer: AlignedBuf) -> Result<(), StorageError> {
        let sent = self.jobs.as_ref().map(|jobs| jobs.send((file, path, offset, buffer)));
        match sent {
            Some(Ok(())) => Ok(()),
            // The writer stopped at an error: this says which.
            _ => self.join(),
        }
    }

    /// Waits for every write handed over; the first error if one failed.
    fn finish(mut self) -> Result<(), StorageError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), StorageError> {
        drop(self.jobs.take());
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(StorageError::io(
                Path::new("dynamo-replay thread"),
                std::io::Error::other("the replay writer panicked"),
            )),
            None => Err(StorageError::io(
                Path::new("dynamo-replay thread"),
                std::io::Error::other("the replay writer had stopped"),
            )),
        }
    }
}

impl Drop for ReplayWriter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Applies one partition's records of a replayed batch; returns how many
/// were not there already.
fn apply(
    root: &Path,
    partitions: &mut std::collections::BTreeMap<PartitionId, Arc<Partition>>,
    touched: &mut std::collections::BTreeMap<PartitionId, Replaying>,
    writer: &mut ReplayWriter,
    id: PartitionId,
    mut records: &[u8],
) -> Result<u64, Applied> {
    let partition = match partitions.get(&id) {
        Some(partition) => Arc::clone(partition),
        None => {
            let created = Arc::new(Partition::create(root, id).map_err(Applied::Storage)?);
            partitions.insert(id, Arc::clone(&created));
            created
        }
    };
    let mut applied = 0;
    let mut max_sequence = 0;
    let mut state = partition.state.write().recover();
    while !records.is_empty() {
        // The batch's checksum covers its records: each is parsed, not
        // checksummed again, and copied as it is (a partition record is
        // the same bytes as the log's).
        let record = match scan_verified_record(records) {
            Scan::Record(record) => record,
            _ => return Err(Applied::Malformed("a record in a verified batch does not parse")),
        };
        let bytes = &records[..record.len];
        records = &records[record.len..];
        max_sequence = max_sequence.max(record.sequence);
        let held = state.keys.get(record.key).map(|location| location.sequence);
        if held.is_some_and(|sequence| sequence >= record.sequence) {
            continue;
        }
        if record.kind == RecordKind::Remove && held.is_none() {
            continue;
        }
        let replaying = match touched.entry(id) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                drop(state);
                let replaying = Replaying::start(&partition).map_err(Applied::Storage)?;
                state = partition.state.write().recover();
                entry.insert(replaying)
            }
        };
        let offset = replaying.end();
        replaying.buffer.extend_from_slice(bytes);
        let len = bytes.len();
        match record.kind {
            RecordKind::Put => {
                state.keys.insert(
                    StoredKey::from(record.key),
                    Location {
                        segment: replaying.segment.id,
                        offset,
                        len: len as u32,
                        sequence: record.sequence,
                    },
                );
            }
            RecordKind::Remove => {
                state.keys.remove(record.key);
            }
        }
        applied += 1;
        if replaying.buffer.len() >= REPLAY_WRITE_BYTES {
            replaying.hand_over(writer, false).map_err(Applied::Storage)?;
        }
    }
    if max_sequence >= partition.next_sequence.load(Ordering::Acquire) {
        partition.next_sequence.store(max_sequence + 1, Ordering::Release);
    }
    Ok(applied)
}

/// Partition segments with writes a checkpoint must sync first.
pub(crate) type Unsynced = Vec<(Arc<Partition>, Arc<Segment>)>;

/// The log as the storage thread writes it.
pub(crate) struct CommitLog {
    dir: PathBuf,
    segment_bytes: u64,
    /// The segment being written: id, path, file (`O_DIRECT`), size.
    active: (u64, PathBuf, Arc<File>, u64),
    /// Where the next batch goes in it.
    offset: u64,
    /// The next batch's number.
    next_batch: u64,
    /// Earlier segments not yet recycled, oldest first, with the last batch
    /// each holds.
    closed: VecDeque<(u64, PathBuf, u64)>,
    helper: Helper,
    /// A write or sync of the log failed: nothing more is acknowledged.
    failed: Option<String>,
}

impl CommitLog {
    /// Starts the log after [`replay`]: every existing segment is
    /// checkpointed and becomes a spare; writing starts in a new segment.
    ///
    /// # Errors
    /// The directory or the first segment cannot be made.
    pub(crate) fn open(root: &Path, segment_bytes: u64, replayed: &Replayed) -> Result<CommitLog, StorageError> {
        let dir = root.join(LOG_DIR);
        crate::data_dir::create_durably(&dir).map_err(|error| StorageError::io(&dir, error))?;
        let mut spares = list_spares(&dir);
        // Past every spare's number: a name taken twice would lose a file.
        let mut next_spare = spares
            .iter()
            .filter_map(|path| {
                path.file_name()?
                    .to_str()?
                    .strip_prefix(SPARE_PREFIX)?
                    .strip_suffix(SUFFIX)?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .map_or(0, |last| last + 1);
        for (_, path) in list_segments(&dir)? {
            // Checkpointed by `replay`: recycled.
            let spare = dir.join(format!("{SPARE_PREFIX}{next_spare:06}{SUFFIX}"));
            next_spare += 1;
            std::fs::rename(&path, &spare).map_err(|error| StorageError::io(&path, error))?;
            spares.push(spare);
        }
        // A few spares are enough: the rest (a log that grew while
        // checkpoints lagged) go.
        while spares.len() > SPARES_KEPT {
            if let Some(extra) = spares.pop() {
                std::fs::remove_file(&extra).map_err(|error| StorageError::io(&extra, error))?;
            }
        }
        let helper = Helper::start(dir.clone(), segment_bytes, spares, next_spare)?;
        let id = replayed.last_segment + 1;
        let (path, file, size) = Self::ready_segment(&dir, &helper, id, segment_bytes)?;
        helper.prepare(id + 1);
        Ok(CommitLog {
            dir,
            segment_bytes,
            active: (id, path, Arc::new(file), size),
            offset: 0,
            next_batch: replayed.last_batch + 1,
            closed: VecDeque::new(),
            helper,
            failed: None,
        })
    }

    /// Segment `id`, from a spare (or made now), named and synced into the
    /// directory; opened for direct writes.
    fn ready_segment(dir: &Path, helper: &Helper, id: u64, bytes: u64) -> Result<(PathBuf, File, u64), StorageError> {
        let path = segment_path(dir, id);
        match helper.take_spare() {
            Some((spare, size)) if size >= bytes => {
                std::fs::rename(&spare, &path).map_err(|error| StorageError::io(&spare, error))?;
            }
            other => {
                if let Some((spare, _)) = other {
                    let _ = std::fs::remove_file(spare);
                }
                zero_filled(&path, bytes)?;
            }
        }
        sync_dir(dir)?;
        let size = std::fs::metadata(&path)
            .map_err(|error| StorageError::io(&path, error))?
            .len();
        Ok((path.clone(), open_direct(&path)?, size))
    }

    /// A write failed earlier: why.
    pub(crate) fn failure(&self) -> Option<StorageError> {
        self.failed.as_ref().map(|reason| StorageError::Io {
            path: self.dir.clone(),
            source: Arc::new(std::io::Error::other(format!(
                "the commit log stopped taking writes after an earlier failure: {reason}"
            ))),
        })
    }

    /// Marks the log failed (after a failed write or fdatasync the page
    /// cache and the disk cannot be trusted to agree).
    pub(crate) fn fail(&mut self, error: &StorageError) {
        if self.failed.is_none() {
            log::error!("the commit log stops taking writes: {error}");
            self.failed = Some(error.to_string());
        }
    }

    /// The write of one batch holding `chunks`, each a partition's
    /// records; rolls to a new segment when the batch does not fit. Returns
    /// the op and the batch's number. The op does not sync: the caller
    /// calls `fdatasync` on the log once it is written (through io_uring
    /// the sync would go to an io-wq worker; see the module doc).
    pub(crate) fn batch(&mut self, chunks: &[(PartitionId, &[u8], u32)]) -> Result<(WriteOp, u64), StorageError> {
        if let Some(error) = self.failure() {
            return Err(error);
        }
        let body_len: usize = chunks.iter().map(|(_, records, _)| 8 + records.len()).sum();
        let len = (BATCH_HEADER_BYTES + body_len).next_multiple_of(BLOCK) as u64;
        if self.offset + len > self.active.3 {
            self.roll(len)?;
        }
        let number = self.next_batch;
        let mut buffer = AlignedBuf::with_capacity(len as usize);
        buffer.extend_from_slice(&[0u8; BATCH_HEADER_BYTES]);
        let mut records = 0u32;
        for (partition, bytes, count) in chunks {
            buffer.extend_from_slice(&partition.0.to_le_bytes());
            buffer.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            buffer.extend_from_slice(bytes);
            records += count;
        }
        {
            let header = &mut buffer.as_mut_slice()[..BATCH_HEADER_BYTES];
            header[0..4].copy_from_slice(&BATCH_MAGIC);
            header[8..16].copy_from_slice(&self.active.0.to_le_bytes());
            header[16..24].copy_from_slice(&number.to_le_bytes());
            header[24..28].copy_from_slice(&(body_len as u32).to_le_bytes());
            header[28..32].copy_from_slice(&records.to_le_bytes());
        }
        let crc = {
            let bytes = buffer.as_slice();
            crc32c::crc32c_append(
                crc32c::crc32c(&bytes[8..BATCH_HEADER_BYTES]),
                &bytes[BATCH_HEADER_BYTES..BATCH_HEADER_BYTES + body_len],
            )
        };
        buffer.as_mut_slice()[4..8].copy_from_slice(&crc.to_le_bytes());
        buffer.pad();
        let op = WriteOp {
            file: Arc::clone(&self.active.2),
            offset: self.offset,
            bytes: OpBytes::Aligned(buffer),
            sync: false,
        };
        self.offset += len;
        self.next_batch += 1;
        Ok((op, number))
    }

    /// Closes the active segment and starts the next, from a spare.
    fn roll(&mut self, needed: u64) -> Result<(), StorageError> {
        let id = self.active.0 + 1;
        let bytes = self.segment_bytes.max(needed);
        // Made ready by the helper (named, its directory synced, opened):
        // a roll costs this thread nothing. Otherwise it is made here.
        let (path, file, size) = match self.helper.take_prepared(id, bytes) {
            Some(prepared) => prepared,
            None => Self::ready_segment(&self.dir, &self.helper, id, bytes)?,
        };
        let old = std::mem::replace(&mut self.active, (id, path, Arc::new(file), size));
        self.closed.push_back((old.0, old.1, self.next_batch - 1));
        self.offset = 0;
        self.helper.prepare(id + 1);
        Ok(())
    }

    /// Segments wait for a checkpoint: true when one should be asked for
    /// (none in flight).
    pub(crate) fn wants_checkpoint(&self) -> bool {
        !self.closed.is_empty() && self.helper.idle()
    }

    /// Asks the helper to sync `segments` (every partition segment with
    /// writes not yet synced) and then to checkpoint every batch written so
    /// far.
    pub(crate) fn checkpoint(&mut self, segments: Unsynced) {
        self.helper.checkpoint(self.next_batch - 1, segments);
    }

    /// Recycles the closed segments a checkpoint covers.
    pub(crate) fn recycle(&mut self) {
        let checkpointed = self.helper.checkpointed();
        while self.closed.front().is_some_and(|closed| closed.2 <= checkpointed) {
            if let Some((_, path, _)) = self.closed.pop_front() {
                self.helper.recycle(path);
            }
        }
    }

    /// At a clean shutdown, once every partition file is synced: checkpoint
    /// everything, so the next open replays nothing.
    pub(crate) fn close(&mut self) -> Result<(), StorageError> {
        self.helper.stop();
        if self.failed.is_none() {
            write_checkpoint(&self.dir, self.next_batch - 1)?;
        }
        Ok(())
    }
}

/// The log's helper thread: checkpoints (syncing partition files, then
/// writing `CHECKPOINT`) and spare segments, off the storage thread.
struct Helper {
    state: Arc<(Mutex<HelperState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct HelperState {
    /// A checkpoint to make: the batch it covers, the segments to sync.
    job: Option<(u64, Unsynced)>,
    busy: bool,
    checkpointed: u64,
    /// Ready segments, with their sizes.
    spares: Vec<(PathBuf, u64)>,
    /// Segments handed back for recycling, to be renamed spares.
    recycled: Vec<PathBuf>,
    /// The segment to make ready next (its id).
    next: Option<u64>,
    /// The next segment, ready: id, path, file opened for direct writes,
    /// size.
    prepared: Option<(u64, PathBuf, File, u64)>,
    /// The id being made ready now (the roll waits for it rather than
    /// make the same file beside it).
    preparing: Option<u64>,
    next_spare: u64,
    stop: bool,
}

impl Helper {
    fn start(dir: PathBuf, segment_bytes: u64, spares: Vec<PathBuf>, next_spare: u64) -> Result<Helper, StorageError> {
        let spares = spares
            .into_iter()
            .filter_map(|path| Some((path.clone(), std::fs::metadata(&path).ok()?.len())))
            .collect();
        let state = Arc::new((
            Mutex::new(HelperState {
                spares,
                next_spare,
                checkpointed: read_checkpoint(&dir)?,
                ..HelperState::default()
            }),
            Condvar::new(),
        ));
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("dynamo-log".into())
            .spawn(move || helper_loop(&dir, segment_bytes, &shared))
            .map_err(|error| StorageError::io("the commit log's helper thread", error))?;
        Ok(Helper {
            state,
            thread: Some(thread),
        })
    }

    fn take_spare(&self) -> Option<(PathBuf, u64)> {
        let (lock, wake) = &*self.state;
        let spare = lock.lock().recover().spares.pop();
        wake.notify_all();
        spare
    }

    /// Asks for segment `id` to be made ready (named from a spare, its
    /// directory synced, opened).
    fn prepare(&self, id: u64) {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().recover();
        state.next = Some(id);
        state.prepared = None;
        wake.notify_all();
    }

    /// Segment `id`, if it is ready and holds at least `bytes`.
    fn take_prepared(&self, id: u64, bytes: u64) -> Option<(PathBuf, File, u64)> {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().recover();
        while state.preparing == Some(id) {
            state = wake.wait(state).recover();
        }
        // Not to be made now: the roll makes it, if it is not ready.
        if state.next == Some(id) {
            state.next = None;
        }
        match state.prepared.take() {
            Some((ready, path, file, size)) if ready == id && size >= bytes => Some((path, file, size)),
            other => {
                state.prepared = other;
                None
            }
        }
    }

    fn idle(&self) -> bool {
        let state = self.state.0.lock().recover();
        !state.busy && state.job.is_none()
    }

    fn checkpointed(&self) -> u64 {
        self.state.0.lock().recover().checkpointed
    }

    fn checkpoint(&self, batch: u64, segments: Unsynced) {
        let (lock, wake) = &*self.state;
        lock.lock().recover().job = Some((batch, segments));
        wake.notify_all();
    }

    fn recycle(&self, path: PathBuf) {
        let (lock, wake) = &*self.state;
        lock.lock().recover().recycled.push(path);
        wake.notify_all();
    }

    fn stop(&mut self) {
        let (lock, wake) = &*self.state;
        lock.lock().recover().stop = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.stop();
    }
}

/// For the crash tests: with `DYNAMO_FAILPOINT_CHECKPOINT_KILL=POINT`,
/// the process kills itself with SIGKILL inside its first checkpoint that
/// reaches POINT: `before-sync` (no partition segment synced yet),
/// `mid-sync` (the first of several synced), `before-checkpoint` (all
/// synced, `CHECKPOINT` not yet written) or `after-checkpoint` (written,
/// not yet acted on: no segment recycled).
fn checkpoint_kill_failpoint(point: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let chosen = POINT.get_or_init(|| std::env::var("DYNAMO_FAILPOINT_CHECKPOINT_KILL").ok());
    if chosen.as_deref() == Some(point) {
        log::warn!("failpoint: killed inside a checkpoint, {point}");
        // SAFETY: plain system calls on this process.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

fn helper_loop(dir: &Path, segment_bytes: u64, shared: &(Mutex<HelperState>, Condvar)) {
    let (lock, wake) = shared;
    loop {
        enum Work {
            Checkpoint(u64, Unsynced),
            Recycle(PathBuf, u64),
            Prepare(u64, Option<(PathBuf, u64)>),
        }
        let work = {
            let mut state = lock.lock().recover();
            loop {
                // A checkpoint asked for is made even when stopping: its
                // segments were handed over unsynced.
                if let Some((batch, segments)) = state.job.take() {
                    state.busy = true;
                    break Work::Checkpoint(batch, segments);
                }
                if state.stop {
                    return;
                }
                if let Some(path) = state.recycled.pop() {
                    state.next_spare += 1;
                    break Work::Recycle(path, state.next_spare);
                }
                if let Some(id) = state.next.take() {
                    let spare = state.spares.pop();
                    state.preparing = Some(id);
                    break Work::Prepare(id, spare);
                }
                state = wake.wait(state).recover();
            }
        };
        match work {
            Work::Checkpoint(batch, segments) => {
                checkpoint_kill_failpoint("before-sync");
                let mut synced = true;
                for (index, (partition, segment)) in segments.into_iter().enumerate() {
                    if index == 1 {
                        checkpoint_kill_failpoint("mid-sync");
                    }
                    if let Err(error) = segment.file.sync_data() {
                        super::writer::fail_partition(&partition, &StorageError::io(&segment.path, error));
                        synced = false;
                    }
                }
                checkpoint_kill_failpoint("before-checkpoint");
                let written = synced
                    && match write_checkpoint(dir, batch) {
                        Ok(()) => true,
                        Err(error) => {
                            log::error!("commit log checkpoint: {error}");
                            false
                        }
                    };
                if written {
                    checkpoint_kill_failpoint("after-checkpoint");
                }
                let mut state = lock.lock().recover();
                if written {
                    state.checkpointed = batch;
                }
                state.busy = false;
                wake.notify_all();
            }
            Work::Recycle(path, number) => {
                let spare = dir.join(format!("{SPARE_PREFIX}{number:06}{SUFFIX}"));
                let size = std::fs::metadata(&path).map_or(0, |metadata| metadata.len());
                let mut state = lock.lock().recover();
                if state.spares.len() >= SPARES_KEPT {
                    drop(state);
                    let _ = std::fs::remove_file(&path);
                } else if std::fs::rename(&path, &spare).is_ok() {
                    state.spares.push((spare, size));
                }
            }
            Work::Prepare(id, spare) => {
                let path = segment_path(dir, id);
                let made = match spare {
                    Some((spare, size)) if size >= segment_bytes => {
                        std::fs::rename(&spare, &path).map_err(|error| StorageError::io(&spare, error))
                    }
                    other => {
                        if let Some((spare, _)) = other {
                            let _ = std::fs::remove_file(spare);
                        }
                        zero_filled(&path, segment_bytes)
                    }
                }
                .and_then(|()| sync_dir(dir))
                .and_then(|()| {
                    let size = std::fs::metadata(&path)
                        .map_err(|error| StorageError::io(&path, error))?
                        .len();
                    Ok((open_direct(&path)?, size))
                });
                let mut state = lock.lock().recover();
                match made {
                    // Unless another was asked for meanwhile.
                    Ok((file, size)) if state.next.is_none() => state.prepared = Some((id, path, file, size)),
                    Ok(_) => {}
                    Err(error) => {
                        log::warn!("commit log: segment {id} could not be made ready ({error}); the roll makes it")
                    }
                }
                state.preparing = None;
                wake.notify_all();
            }
        }
    }
}

/// Whether `path` is a commit log directory (or one of its segments), for
/// `dynamo-node dump`.
pub fn is_log(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == LOG_DIR)
        || path.extension().is_some_and(|extension| extension == "log")
        || list_segments(path).is_ok_and(|segments| !segments.is_empty())
}

/// Prints every batch and record of the commit log directory `dir` (or of
/// one segment file) to `out`, straight from the files: nothing is
/// replayed or changed. `describe` renders a put's payload.
///
/// # Errors
/// A file cannot be read, or `out` cannot be written. Damage is reported
/// in the output and counted.
pub fn dump_log(
    path: &Path,
    out: &mut dyn std::io::Write,
    describe: &dyn Fn(&[u8]) -> String,
) -> Result<super::DumpSummary, StorageError> {
    let write_error = |error: std::io::Error| StorageError::io("<output>", error);
    let (dir, segments) = if path.is_file() {
        let id = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .and_then(|stem| stem.parse::<u64>().ok())
            .ok_or_else(|| StorageError::Config(format!("{}: not a log segment (<id>.log)", path.display())))?;
        (
            path.parent().unwrap_or(path).to_path_buf(),
            vec![(id, path.to_path_buf())],
        )
    } else {
        (path.to_path_buf(), list_segments(path)?)
    };
    let checkpoint = read_checkpoint(&dir)?;
    writeln!(out, "checkpoint: batches up to {checkpoint} are in the partition files").map_err(write_error)?;
    let mut summary = super::DumpSummary::default();
    for (id, path) in segments {
        summary.segments += 1;
        let bytes = std::fs::read(&path).map_err(|error| StorageError::io(&path, error))?;
        writeln!(out, "{id:010} log segment bytes={}", bytes.len()).map_err(write_error)?;
        let mut offset = 0usize;
        while offset < bytes.len() {
            let Some(batch) = batch_at(&bytes, offset, id, 0) else {
                let header = &bytes[offset..(offset + BATCH_HEADER_BYTES).min(bytes.len())];
                if header.iter().all(|&byte| byte == 0) {
                    writeln!(out, "{id:010} {offset} end (zeros)").map_err(write_error)?;
                } else if header.len() == BATCH_HEADER_BYTES
                    && header[0..4] == BATCH_MAGIC
                    && header[8..16] != id.to_le_bytes()
                {
                    let old = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
                    writeln!(
                        out,
                        "{id:010} {offset} end (an old batch of segment {old}: a recycled file)"
                    )
                    .map_err(write_error)?;
                } else {
                    summary.problems += 1;
                    writeln!(out, "{id:010} {offset} DAMAGED or torn: no batch verifies here").map_err(write_error)?;
                    if let Some(resume) = next_valid(&bytes, offset + BLOCK, id, 0) {
                        offset = resume;
                        continue;
                    }
                }
                break;
            };
            writeln!(
                out,
                "{id:010} {offset} batch={}{} bytes={}",
                batch.number,
                if batch.number <= checkpoint {
                    " (checkpointed)"
                } else {
                    ""
                },
                batch.body.len()
            )
            .map_err(write_error)?;
            for chunk in chunks(&bytes[batch.body.clone()]) {
                let Ok((partition, mut records)) = chunk else {
                    summary.problems += 1;
                    writeln!(out, "{id:010} {offset} DAMAGED chunk").map_err(write_error)?;
                    break;
                };
                while let Scan::Record(record) = scan_record(records) {
                    summary.records += 1;
                    let key = dynamo_core::codec::printable(record.key, true, usize::MAX);
                    match record.kind {
                        RecordKind::Put => writeln!(
                            out,
                            "{id:010} {offset}   p{:05} seq={} put key={key} {}",
                            partition.0,
                            record.sequence,
                            describe(record.payload)
                        ),
                        RecordKind::Remove => {
                            writeln!(
                                out,
                                "{id:010} {offset}   p{:05} seq={} remove key={key}",
                                partition.0, record.sequence
                            )
                        }
                    }
                    .map_err(write_error)?;
                    records = &records[record.len..];
                }
            }
            offset += (BATCH_HEADER_BYTES + batch.body.len()).next_multiple_of(BLOCK);
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::format::encode_record;
    use crate::storage::io::{Backend, IoMode};
    use std::collections::BTreeMap;

    fn temp_root(name: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("dynamo-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    /// Writes `keys` to a fresh log under `root`, one batch each (key `i`
    /// at sequence `i + 1` of partition 0), and leaves it as a crash would:
    /// no checkpoint after them. Returns each batch's (segment path,
    /// offset).
    fn write_batches(root: &Path, keys: &[&str]) -> Vec<(PathBuf, u64)> {
        let replayed = replay(root, &mut BTreeMap::new()).unwrap();
        let mut log = CommitLog::open(root, 64 * 1024, &replayed).unwrap();
        let mut backend = Backend::new(IoMode::Positioned).unwrap();
        let mut placed = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let mut records = Vec::new();
            encode_record(
                &mut records,
                RecordKind::Put,
                index as u64 + 1,
                key.as_bytes(),
                b"value",
            );
            let (op, _) = log.batch(&[(PartitionId(0), &records, 1)]).unwrap();
            placed.push((log.active.1.clone(), op.offset));
            assert!(backend.run(&[op])[0].is_ok());
        }
        // No close: as after a crash, the checkpoint stays where it was.
        log.helper.stop();
        std::mem::forget(log);
        placed
    }

    fn held(partitions: &BTreeMap<PartitionId, Arc<Partition>>, key: &str) -> bool {
        partitions
            .get(&PartitionId(0))
            .is_some_and(|partition| partition.state.read().recover().keys.contains_key(key.as_bytes()))
    }

    fn flip(path: &Path, offset: u64) {
        let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, offset).unwrap();
        file.write_all_at(&[byte[0] ^ 0x40], offset).unwrap();
    }

    #[test]
    fn every_batch_after_the_checkpoint_is_replayed_once() {
        let root = temp_root("replay");
        write_batches(&root, &["k1", "k2", "k3"]);
        let mut partitions = BTreeMap::new();
        let replayed = replay(&root, &mut partitions).unwrap();
        assert_eq!((replayed.batches, replayed.applied, replayed.last_batch), (3, 3, 3));
        assert!(["k1", "k2", "k3"].iter().all(|key| held(&partitions, key)));
        // Again, its checkpoint gone: nothing is applied twice.
        std::fs::remove_file(root.join(LOG_DIR).join(CHECKPOINT_FILE)).unwrap();
        let again = replay(&root, &mut partitions).unwrap();
        assert_eq!((again.batches, again.applied), (3, 0));
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Replay writes partition files in direct, block-aligned pieces of
    /// several MiB, carrying each piece's partial last block over: records
    /// of odd sizes across many pieces, in two partitions, must all read
    /// back whole from the files once the engine opens them.
    #[test]
    fn records_replayed_into_lost_partitions_read_back_from_their_files() {
        let root = temp_root("rewrite");
        let replayed = replay(&root, &mut BTreeMap::new()).unwrap();
        let mut log = CommitLog::open(&root, 4 << 20, &replayed).unwrap();
        let mut backend = Backend::new(IoMode::Positioned).unwrap();
        let value = |index: u64| vec![(index % 251) as u8; 700 + (index as usize * 37) % 1300];
        let count = 2 * (REPLAY_WRITE_BYTES as u64 + (1 << 20)) / 1300 + 100;
        for index in 0..count {
            let mut chunks = Vec::new();
            for partition in [0u32, 1] {
                let mut records = Vec::new();
                let key = format!("k{partition}-{index}");
                encode_record(&mut records, RecordKind::Put, index + 1, key.as_bytes(), &value(index));
                chunks.push((PartitionId(partition), records));
            }
            let chunks: Vec<(PartitionId, &[u8], u32)> =
                chunks.iter().map(|(id, records)| (*id, &records[..], 1)).collect();
            let (op, _) = log.batch(&chunks).unwrap();
            assert!(backend.run(&[op])[0].is_ok());
        }
        log.helper.stop();
        std::mem::forget(log);
        let replayed = replay(&root, &mut BTreeMap::new()).unwrap();
        assert_eq!(replayed.applied, 2 * count);
        let engine = super::super::Engine::open(
            &root,
            super::super::StorageConfig {
                sync: super::super::SyncPolicy::Always,
                ..super::super::StorageConfig::default()
            },
        )
        .unwrap();
        assert!(engine.stats().iter().all(|stats| stats.keys == count));
        for index in 0..count {
            for partition in [0u32, 1] {
                let key = format!("k{partition}-{index}");
                let got = engine.get(PartitionId(partition), key.as_bytes()).unwrap();
                assert_eq!(got, Some(value(index)), "{key}");
            }
        }
        engine.close();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_torn_last_batch_is_cut_and_nothing_is_marked_for_repair() {
        let root = temp_root("torn");
        let placed = write_batches(&root, &["k1", "k2", "k3"]);
        let (path, offset) = &placed[2];
        flip(path, offset + BATCH_HEADER_BYTES as u64 + 12);
        let mut partitions = BTreeMap::new();
        let replayed = replay(&root, &mut partitions).unwrap();
        assert_eq!((replayed.batches, replayed.last_batch), (2, 2));
        assert!(held(&partitions, "k1") && held(&partitions, "k2") && !held(&partitions, "k3"));
        assert!(partitions[&PartitionId(0)].needs_repair.lock().recover().is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn damage_followed_by_valid_batches_is_reported_and_they_are_salvaged() {
        let root = temp_root("damage");
        let placed = write_batches(&root, &["k1", "k2", "k3", "k4"]);
        let (path, offset) = &placed[1];
        flip(path, offset + BATCH_HEADER_BYTES as u64 + 12);
        let mut partitions = BTreeMap::new();
        let replayed = replay(&root, &mut partitions).unwrap();
        assert_eq!((replayed.batches, replayed.last_batch), (3, 4));
        assert!(held(&partitions, "k1") && !held(&partitions, "k2"));
        assert!(held(&partitions, "k3") && held(&partitions, "k4"));
        let reason = partitions[&PartitionId(0)].needs_repair.lock().recover().clone();
        assert!(
            reason.as_deref().is_some_and(|reason| reason.contains("batches 2..=2")),
            "{reason:?}"
        );
        // Durably: the partition's NEEDS_REPAIR file says so.
        assert!(root.join("p00000").join(super::super::recovery::REPAIR_FILE).is_file());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn dump_shows_every_batch_and_record_and_the_damage() {
        let root = temp_root("dump");
        let placed = write_batches(&root, &["k1", "k2", "k3"]);
        let (path, offset) = &placed[1];
        flip(path, offset + BATCH_HEADER_BYTES as u64 + 12);
        let mut out = Vec::new();
        let summary = dump_log(&root.join(LOG_DIR), &mut out, &|payload| {
            format!("{} bytes", payload.len())
        })
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("checkpoint: batches up to 0"), "{text}");
        assert!(text.contains("batch=1 ") && text.contains("batch=3 "), "{text}");
        assert!(text.contains("p00000 seq=1 put key=\"k1\" 5 bytes"), "{text}");
        assert!(text.contains("DAMAGED or torn"), "{text}");
        assert_eq!((summary.records, summary.problems), (2, 1));
        assert!(is_log(&root.join(LOG_DIR)) && !is_log(&root));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
