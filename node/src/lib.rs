//! A Dynamo node (DeCandia et al., SOSP 2007), built to be measured.
//!
//! Modules, from the bottom up:
//!
//! - [`ids`]: newtypes for the identifiers that cross module boundaries.
//! - [`limits`]: every bound of the node as a named constant, with the
//!   relations between them asserted at compile time.
//! - [`codec`]: LEB128 varints and a bounds-checked byte reader, shared by
//!   every binary format of the node.
//! - [`version`]: vector clocks with truncation, dots, sibling sets under
//!   dotted version vectors (`dvv`, the default) or the paper's plain clocks
//!   (`paper`), and the opaque context clients carry between get and put.
//!   Pure: no I/O, no clock reads, no randomness.
//! - [`ring`]: strategy-3 partitioning (Q equal partitions, Q/S per node),
//!   joins and leaves that move the fewest partitions, preference lists.
//!   Pure.
//! - [`storage`]: append-only partition files written through io_uring with
//!   group commit, recovery that cuts only a torn tail, compaction.
//! - [`protocol`]: the sans-IO quorum protocol (coordinator and replica
//!   state machines) that the node runtime and the stateright model both
//!   drive. No I/O, clocks or randomness inside.
//! - [`net`]: the wire format (length-prefixed, versioned frames).
//! - [`logging`]: the small stderr logger the binaries install.
//!
//! Invariants kept here: a sibling set is always an antichain; a `dvv` put
//! discards exactly the siblings its context covers; storage never serves a
//! record whose checksum does not match.

pub mod client;
pub mod codec;
pub mod config;
pub mod ids;
pub mod limits;
pub mod local_cluster;
pub mod logging;
pub mod net;
pub mod protocol;
pub mod ring;
pub mod server;
pub mod storage;
pub mod version;

pub use ids::{NodeId, PartitionId, SegmentId};
