//! A Dynamo node (DeCandia et al., SOSP 2007), built to be measured: the
//! runtime around the pure protocol of [`dynamo_core`].
//!
//! Modules:
//!
//! - [`limits`]: the storage engine's own bounds (segments, the commit
//!   queue, group commit, the io_uring ring); the protocol's and the
//!   formats' are in [`dynamo_core::limits`].
//! - [`storage`]: append-only partition files written through io_uring with
//!   group commit, recovery that cuts only a torn tail, compaction, `dump`.
//! - [`config`]: the cluster file (`cluster.toml`): read, checked, written.
//! - [`data_dir`]: the data directory's identity (`NODE`: whose data, under
//!   which Q and versioning), written atomically.
//! - [`assignment`]: the data directory's `RING`: the assignment the node
//!   routes by after membership changes, and the change pending.
//! - [`server`]: the node runtime: listeners, connections, timers and the
//!   storage thread around [`dynamo_core::protocol::Node`]; `serve`.
//! - [`launcher`]: the one launcher of local clusters of node processes,
//!   used by `dynamo-node cluster`, the tests, the benches and
//!   `dynamo-bench`.
//! - [`sync`]: the lock helpers every thread here uses (a poisoned lock is
//!   taken over, not propagated as a panic).
//! - [`logging`]: the small stderr logger the binaries install.
//!
//! Invariants kept here: storage never serves a record whose checksum does
//! not match; nothing is acknowledged before the storage engine reports it
//! durable under the configured sync policy.

pub mod archive;
pub mod assignment;
pub mod config;
pub mod data_dir;
pub mod launcher;
pub mod limits;
pub mod logging;
pub mod process;
pub mod server;
pub mod storage;
pub mod sync;
