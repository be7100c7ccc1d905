//! The pure part of a Dynamo node (DeCandia et al., SOSP 2007): everything
//! that decides, nothing that waits. No sockets, files, clocks, threads or
//! randomness: time arrives as an argument, storage through a trait, and
//! effects leave as values. The build enforces it: this crate depends on
//! no runtime (`.ci/run` fails if `cargo tree -p dynamo-core -e normal`
//! shows tokio, io-uring or libc), so the node (`dynamo-node`) and the
//! stateright model (`dynamo-models`) drive exactly this code.
//!
//! Modules, from the bottom up:
//!
//! - [`ids`]: newtypes for the identifiers that cross module boundaries
//!   (`NodeId`, `PartitionId`).
//! - [`limits`]: every bound of the protocol and its formats as a named
//!   constant, with the relations between them asserted at compile time.
//! - [`codec`]: LEB128 varints, a bounds-checked byte reader, base64url and
//!   the one way bytes are shown to people; shared by every binary format.
//! - [`rng`]: SplitMix64, the one seeded generator of tests, benches and the
//!   workload driver (deterministic: the core itself never draws).
//! - [`version`]: vector clocks with truncation, dots, sibling sets under
//!   dotted version vectors (`dvv`, the default) or the paper's plain clocks
//!   (`paper`), and the opaque context clients carry between get and put.
//! - [`ring`]: strategy-3 partitioning (Q equal partitions, Q/S per node),
//!   joins and leaves that move the fewest partitions, preference lists,
//!   the paper's load-balancing efficiency.
//! - [`merkle`]: anti-entropy hash trees over a partition's keys and sibling
//!   sets, and the exchange that finds where two replicas differ (§4.7).
//! - [`protocol`]: the sans-IO quorum protocol (coordinator rounds, replica
//!   work, hinted handoff, failure detection, statistics) as one state
//!   machine, [`protocol::Node`].
//! - [`admin`]: the typed admin queries and answers (`ring`, `stats`) that
//!   clients and operators ask a node, carried as JSON in admin frames.
//! - [`wire`]: the wire format (length-prefixed, versioned frames).
//!
//! Invariants kept here: a sibling set is always an antichain; a `dvv` put
//! discards exactly the siblings its context covers; what a decoder refuses
//! (sibling counts, clock entries, frame sizes) no encoder here writes.

pub mod admin;
pub mod codec;
pub mod ids;
pub mod limits;
pub mod merkle;
pub mod protocol;
pub mod ring;
pub mod rng;
pub mod version;
pub mod wire;

pub use ids::{NodeId, PartitionId};
