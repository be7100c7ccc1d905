//! Every bound of the node, in one place. A limit that is not here is a
//! limit nobody chose. Relations between limits are asserted at compile time.

/// Partitions in a ring (Q) at most. Q is fixed for the life of a cluster.
pub const PARTITIONS_MAX: u32 = 65_536;
/// The default Q, as in DESIGN.md.
pub const PARTITIONS_DEFAULT: u32 = 256;
/// Nodes in a ring at most.
pub const NODES_MAX: usize = 1_024;
/// Replicas per key (N) at most.
pub const REPLICAS_MAX: usize = 16;

/// Entries of a vector clock beyond which the oldest is dropped (the
/// paper's truncation threshold), by default.
pub const CLOCK_ENTRIES_DEFAULT: usize = 10;
/// Entries a decoded clock may have at most: a bound for decoders, far
/// above any truncation threshold in use.
pub const CLOCK_ENTRIES_MAX: usize = 256;
/// Siblings a decoded sibling set may have at most.
pub const SIBLINGS_MAX: usize = 4_096;

/// Bytes of a key at most.
pub const KEY_BYTES_MAX: usize = 64 * 1024;
/// Bytes of one value at most (the paper's objects are under 1 MB).
pub const VALUE_BYTES_MAX: usize = 1024 * 1024;
/// Bytes of one storage record body at most: a key and its sibling set.
pub const RECORD_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

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

const _: () = assert!(PARTITIONS_DEFAULT <= PARTITIONS_MAX);
const _: () = assert!(PARTITIONS_MAX as u64 <= u32::MAX as u64);
const _: () = assert!(CLOCK_ENTRIES_DEFAULT <= CLOCK_ENTRIES_MAX);
const _: () = assert!(KEY_BYTES_MAX + VALUE_BYTES_MAX < RECORD_BODY_BYTES_MAX);
const _: () = assert!(RECORD_BODY_BYTES_MAX <= COMMIT_BATCH_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_MIN <= SEGMENT_BYTES_DEFAULT);
const _: () = assert!(COMMIT_BATCH_WRITES_MAX <= COMMIT_QUEUE_DEPTH);
// A batch touches at most COMMIT_BATCH_WRITES_MAX files, each needing a write
// and an fdatasync entry; the ring is reused in rounds, so it only needs room
// for one file's pair.
const _: () = assert!(RING_ENTRIES >= 2);

/// Bytes of one network frame at most (length prefix excluded). A put of
/// the largest value with a large sibling set fits; anything bigger closes
/// the connection.
pub const FRAME_BYTES_MAX: usize = 32 * 1024 * 1024;
const _: () = assert!(RECORD_BODY_BYTES_MAX < FRAME_BYTES_MAX);
