//! Every bound of the protocol and its formats, in one place: what a ring,
//! a clock, a sibling set, a key, a value, a record and a frame may hold.
//! A limit that is not here (or, for the storage engine's own queues, in
//! `dynamo-node`'s `limits.rs`) is a limit nobody chose. Relations between
//! limits are asserted at compile time.

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

/// Any protocol timeout or probe interval at most, in milliseconds (an
/// hour): `now + timeout` can then never overflow, and a cluster file that
/// asks for more has a typo.
pub const TIMEOUT_MS_MAX: u64 = 3_600_000;

/// Siblings a put may leave on a key, by default (Riak's `max_siblings`):
/// a put past it is refused, telling the client to read and merge.
pub const SIBLINGS_LIMIT_DEFAULT: usize = 100;
/// Siblings past which a put is logged as a warning, by default (Riak warns
/// at 25).
pub const SIBLINGS_WARNING_DEFAULT: usize = 25;
/// The largest sibling limit a cluster may set: far enough under
/// [`SIBLINGS_MAX`] (the decoders' bound) that replicas merging sets from
/// a few coordinators stay readable.
pub const SIBLINGS_LIMIT_MAX: usize = SIBLINGS_MAX / 4;

/// Hints one node holds for others at most: past it, a hinted write is
/// refused (the coordinator writes to another substitute or times out).
pub const HINTS_MAX: usize = 100_000;

/// How long a hint is held before it is dropped, by default (a day).
pub const HINT_AGE_MAX_MS_DEFAULT: u64 = 24 * 3600 * 1000;
/// The longest a cluster may set it to (a month).
pub const HINT_AGE_MAX_MS_MAX: u64 = 30 * 24 * 3600 * 1000;

/// Bytes of a key at most.
pub const KEY_BYTES_MAX: usize = 64 * 1024;
/// Bytes of one value at most (the paper's objects are under 1 MB).
pub const VALUE_BYTES_MAX: usize = 1024 * 1024;
/// Bytes of one storage record body at most: a key and its sibling set.
pub const RECORD_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

const _: () = assert!(PARTITIONS_DEFAULT <= PARTITIONS_MAX);
const _: () = assert!(PARTITIONS_MAX as u64 <= u32::MAX as u64);
const _: () = assert!(CLOCK_ENTRIES_DEFAULT <= CLOCK_ENTRIES_MAX);
const _: () = assert!(SIBLINGS_WARNING_DEFAULT <= SIBLINGS_LIMIT_DEFAULT);
const _: () = assert!(SIBLINGS_LIMIT_DEFAULT <= SIBLINGS_LIMIT_MAX);
const _: () = assert!(KEY_BYTES_MAX + VALUE_BYTES_MAX < RECORD_BODY_BYTES_MAX);

/// Bytes of one network frame at most (length prefix excluded). A put of
/// the largest value with a large sibling set fits; anything bigger closes
/// the connection.
pub const FRAME_BYTES_MAX: usize = 32 * 1024 * 1024;
const _: () = assert!(RECORD_BODY_BYTES_MAX < FRAME_BYTES_MAX);

/// Default interval between anti-entropy exchanges, in ms: with Q = 256
/// and N = 3 each node compares every partition it holds with some other
/// replica within a minute (256 × 0.2 s), one exchange at a time; a
/// converged exchange costs one root query and answer.
pub const ANTI_ENTROPY_INTERVAL_MS_DEFAULT: u64 = 200;

/// Differing keys an anti-entropy exchange repairs before it ends; the
/// next exchange of the partition (at once, not at the next interval)
/// finds the rest.
pub const EXCHANGE_DIFFERENCES_MAX: usize = 1_024;

/// Default grace period before a tombstone every replica holds is reaped:
/// two days, past the default hint age (one day), as reaping requires.
pub const TOMBSTONE_GRACE_MS_DEFAULT: u64 = 2 * HINT_AGE_MAX_MS_DEFAULT;
