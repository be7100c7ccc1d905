//! Compaction: copy the live records of every sealed segment into new
//! segments, then drop the old ones.
//!
//! Why dropping remove records is safe here: every record older than a
//! remove of the same key sits in a segment sealed no later than the
//! remove's, so when all sealed segments are compacted together, the older
//! records go too. Why copies may sit in segments numbered after the active
//! one: recovery orders records by sequence, not by file.

use crate::sync::Recover;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::format::{scan_record, Scan, HEADER_BYTES};
use super::partition::{segment_path, write_new_segment, Partition, Segment, COMPACTING_SUFFIX};
use super::{sync_dir, Location, StorageConfig, StorageError};
use crate::storage::format::SegmentId;

/// What one compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Sealed segments read.
    pub segments_in: u64,
    /// Segments written.
    pub segments_out: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Live records copied.
    pub records_kept: u64,
    /// Dead records (overwritten, removed, remove markers) dropped.
    pub records_dropped: u64,
}

/// Key-directory entries swapped per lock acquisition, so readers and the
/// storage thread wait at most this many map updates.
const SWAP_CHUNK: usize = 1024;
/// Bytes buffered before an output write.
const OUTPUT_BUFFER_BYTES: usize = 1024 * 1024;

struct Output {
    id: SegmentId,
    temporary: PathBuf,
    path: PathBuf,
    file: File,
    len: u64,
    buffer: Vec<u8>,
}

impl Output {
    fn flush(&mut self) -> Result<(), StorageError> {
        let start = self.len - self.buffer.len() as u64;
        self.file
            .write_all_at(&self.buffer, start)
            .map_err(|error| StorageError::io(&self.temporary, error))?;
        self.buffer.clear();
        Ok(())
    }
}

pub(crate) fn compact(partition: &Partition, config: &StorageConfig) -> Result<CompactionStats, StorageError> {
    let _one_at_a_time = partition.compaction.lock().recover();
    let active = partition.active_segment.load(Ordering::Acquire);
    let sealed: Vec<Arc<Segment>> = partition
        .state
        .read()
        .recover()
        .segments
        .values()
        .filter(|segment| segment.id.0 != active)
        .cloned()
        .collect();
    let mut stats = CompactionStats::default();
    if sealed.is_empty() {
        return Ok(stats);
    }
    let mut outputs: Vec<Output> = Vec::new();
    let mut moves: Vec<(Box<[u8]>, Location, Location)> = Vec::new();
    let result = copy_live(partition, config, &sealed, &mut outputs, &mut moves, &mut stats);
    if let Err(error) = result {
        for output in &outputs {
            let _ = std::fs::remove_file(&output.temporary);
        }
        return Err(error);
    }
    // Make the outputs durable under their temporary names, then rename them
    // into place: a crash leaves either no output or a complete one.
    for output in &mut outputs {
        output.flush()?;
        output
            .file
            .sync_all()
            .map_err(|error| StorageError::io(&output.temporary, error))?;
        std::fs::rename(&output.temporary, &output.path).map_err(|error| StorageError::io(&output.path, error))?;
    }
    sync_dir(&partition.dir)?;
    {
        let mut state = partition.state.write().recover();
        for output in outputs {
            stats.bytes_out += output.len;
            stats.segments_out += 1;
            state.segments.insert(
                output.id,
                Arc::new(Segment {
                    id: output.id,
                    path: output.path,
                    file: Arc::new(output.file),
                    len: AtomicU64::new(output.len),
                }),
            );
        }
    }
    // Swap only entries that still point at the copied record: a newer
    // write that landed meanwhile wins.
    for chunk in moves.chunks(SWAP_CHUNK) {
        let mut state = partition.state.write().recover();
        for (key, old, new) in chunk {
            if let Some(location) = state.keys.get_mut(&key[..]) {
                if location == old {
                    *location = *new;
                }
            }
        }
    }
    {
        let mut state = partition.state.write().recover();
        for segment in &sealed {
            state.segments.remove(&segment.id);
        }
        debug_assert!(
            state
                .keys
                .values()
                .all(|location| state.segments.contains_key(&location.segment)),
            "a key points at a compacted-away segment"
        );
    }
    for segment in &sealed {
        std::fs::remove_file(&segment.path).map_err(|error| StorageError::io(&segment.path, error))?;
    }
    sync_dir(&partition.dir)?;
    log::info!(
        "partition {}: compacted {} segments ({} bytes) into {} ({} bytes); kept {} records, dropped {}",
        partition.id,
        stats.segments_in,
        stats.bytes_in,
        stats.segments_out,
        stats.bytes_out,
        stats.records_kept,
        stats.records_dropped
    );
    Ok(stats)
}

fn copy_live(
    partition: &Partition,
    config: &StorageConfig,
    sealed: &[Arc<Segment>],
    outputs: &mut Vec<Output>,
    moves: &mut Vec<(Box<[u8]>, Location, Location)>,
    stats: &mut CompactionStats,
) -> Result<(), StorageError> {
    let mut bytes = Vec::new();
    for segment in sealed {
        let len = segment.len.load(Ordering::Acquire) as usize;
        bytes.resize(len, 0);
        segment
            .file
            .read_exact_at(&mut bytes, 0)
            .map_err(|error| StorageError::io(&segment.path, error))?;
        stats.segments_in += 1;
        stats.bytes_in += len as u64;
        let mut offset = HEADER_BYTES;
        loop {
            match scan_record(&bytes[offset.min(bytes.len())..]) {
                Scan::Record(record) => {
                    let old = Location {
                        segment: segment.id,
                        offset: offset as u64,
                        len: record.len as u32,
                        sequence: record.sequence,
                    };
                    let live = partition.state.read().recover().keys.get(record.key) == Some(&old);
                    if live {
                        let needs_new = outputs
                            .last()
                            .is_none_or(|output| output.len >= config.segment_bytes_max);
                        if needs_new {
                            if let Some(full) = outputs.last_mut() {
                                full.flush()?;
                            }
                            let id = SegmentId(partition.next_segment.fetch_add(1, Ordering::AcqRel));
                            let path = segment_path(&partition.dir, id);
                            let temporary = partition.dir.join(format!("{id}{COMPACTING_SUFFIX}"));
                            let (file, len) = write_new_segment(&temporary, partition.id, id, true, false)?;
                            outputs.push(Output {
                                id,
                                temporary,
                                path,
                                file,
                                len,
                                buffer: Vec::with_capacity(OUTPUT_BUFFER_BYTES),
                            });
                        }
                        let output = outputs.last_mut().ok_or(StorageError::Closed)?;
                        let new = Location {
                            segment: output.id,
                            offset: output.len,
                            len: old.len,
                            sequence: old.sequence,
                        };
                        output.buffer.extend_from_slice(&bytes[offset..offset + record.len]);
                        output.len += record.len as u64;
                        if output.buffer.len() >= OUTPUT_BUFFER_BYTES {
                            output.flush()?;
                        }
                        moves.push((record.key.into(), old, new));
                        stats.records_kept += 1;
                    } else {
                        stats.records_dropped += 1;
                    }
                    offset += record.len;
                }
                Scan::End => break,
                Scan::Checksum { got, expected } => {
                    return Err(StorageError::ChecksumMismatch {
                        path: segment.path.clone(),
                        offset: offset as u64,
                        got,
                        expected,
                    })
                }
                damage => {
                    return Err(StorageError::Corrupt {
                        path: segment.path.clone(),
                        offset: offset as u64,
                        reason: format!("{damage:?} while compacting"),
                    })
                }
            }
        }
    }
    Ok(())
}
