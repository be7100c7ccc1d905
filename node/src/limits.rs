//! The storage engine's own bounds: segment sizes, the commit queue, group
//! commit batches and the io_uring ring. The bounds of the protocol and its
//! formats (keys, values, records, frames) are in [`dynamo_core::limits`];
//! relations across the two are asserted here, at compile time.

use dynamo_core::limits::RECORD_BODY_BYTES_MAX;

/// A segment is sealed and a new one started once it reaches this size.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// The smallest segment size a configuration may ask for (tests use small
/// segments to exercise rolling and compaction).
pub const SEGMENT_BYTES_MIN: u64 = 4 * 1024;
/// Writes waiting for the storage thread at most; a full queue blocks the
/// writer (back-pressure) rather than growing.
pub const COMMIT_QUEUE_DEPTH: usize = 4_096;
/// Writes in one group commit at most.
pub const COMMIT_BATCH_WRITES_MAX: usize = 1_024;
/// Bytes in one group commit at most (the batch stops growing past this).
pub const COMMIT_BATCH_BYTES_MAX: usize = 32 * 1024 * 1024;
/// Submission queue entries of the io_uring ring.
pub const RING_ENTRIES: u32 = 256;

const _: () = assert!(RECORD_BODY_BYTES_MAX <= COMMIT_BATCH_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(COMMIT_BATCH_WRITES_MAX <= COMMIT_QUEUE_DEPTH);
// A batch touches at most COMMIT_BATCH_WRITES_MAX files, each needing a write
// and an fdatasync entry; the ring is reused in rounds, so it only needs room
// for one file's pair.
const _: () = assert!(RING_ENTRIES >= 2);
