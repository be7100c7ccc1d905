//! The node's own bounds: the storage engine's (segment sizes, the commit
//! queue, group commit batches, the io_uring ring) and the network's
//! (connections, partial frames, accept backoff). The bounds of the protocol and its
//! formats (keys, values, records, frames) are in [`dynamo_core::limits`];
//! relations across the two are asserted here, at compile time.

use std::time::Duration;

use dynamo_core::limits::RECORD_BODY_BYTES_MAX;

/// Connections a node keeps open at most (clients and peers together); a
/// connection past it is closed as soon as it is accepted.
pub const CONNECTIONS_MAX: usize = 4_096;
/// How long a frame may stay half-received: a connection that sends part
/// of a frame and stops is closed then, instead of held open forever.
pub const PARTIAL_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Room made in a connection's buffer before each read: an idle connection
/// holds about this much.
pub const READ_RESERVE_BYTES: usize = 4 * 1024;
/// Bytes of replies one connection may have queued and unread: past it,
/// its reader takes no more of its requests until the client reads.
pub const CONNECTION_BACKLOG_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Requests of one connection being answered at once at most: a client
/// that pipelines more waits (its next request is not read) until replies
/// go out. With the backlog bound, what one connection can pin is about
/// this many replies plus the backlog.
pub const CONNECTION_REQUESTS_IN_FLIGHT_MAX: usize = 64;
/// The first pause after a failed accept (out of file descriptors, say).
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause between failed accepts.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
const _: () = assert!(ACCEPT_BACKOFF_MIN.as_millis() <= ACCEPT_BACKOFF_MAX.as_millis());

/// A segment is sealed and a new one started once it reaches this size.
pub const SEGMENT_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
/// The smallest segment size a configuration may ask for (tests use small
/// segments to exercise rolling and compaction).
pub const SEGMENT_BYTES_MIN: u64 = 4 * 1024;
/// The largest segment size a cluster file may ask for.
pub const SEGMENT_BYTES_MAX: u64 = 1024 * 1024 * 1024;
/// A commit log segment's size: written in place once zero-filled, then
/// recycled after a checkpoint (a batch larger than this gets a segment
/// of its own size).
pub const LOG_SEGMENT_BYTES_DEFAULT: u64 = 8 * 1024 * 1024;
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
