//! The sans-IO quorum protocol: coordinator and replica state machines.
//!
//! **No I/O here, structurally**: this module uses no sockets, files,
//! clocks, randomness, threads or tokio — only `std::collections`, the
//! pure [`crate::version`] and [`crate::ring`] modules, and the [`Store`]
//! trait through which the caller lends read access to local state. Time
//! arrives as `now_ms` on every call. So the code the stateright model
//! checks (`models/`) is the code the node runs (`server.rs`): both are thin
//! drivers of [`Node`].
//!
//! # Driving a node
//!
//! Inputs are `handle_*` calls; every call appends [`Effect`]s to a
//! caller-owned `Vec`, which the driver carries out in order:
//!
//! - [`Node::handle_client`]: a get, put or delete from a client.
//! - [`Node::handle_message`]: a [`Message`] from a peer.
//! - [`Node::handle_timer`]: a [`Timer`] the node armed with
//!   [`Effect::SetTimer`] has fired. Timers are never cancelled; one that
//!   fires after its purpose is gone is ignored.
//! - [`Node::handle_persisted`]: an [`Effect::Persist`] or
//!   [`Effect::PersistHint`] is durable (or failed). Until then the node
//!   serves the pending state from memory and withholds every
//!   acknowledgement that depends on it.
//!
//! # The protocol (Dynamo §4.5–4.6)
//!
//! - **Coordinator.** A node in the key's preference list (the first N of
//!   the ring walk) coordinates; any other node forwards the request to the
//!   first preference node it does not suspect.
//! - **put / delete.** The coordinator makes the new version from the
//!   client's context ([`SiblingSet::put`]: a fresh dot under `dvv`, the
//!   advanced clock under `paper`), persists its resulting sibling set, and
//!   sends the *whole set* to the other N−1 preference nodes (sending the
//!   set, not just the version, is what makes dotted version vectors exact:
//!   see [`crate::version`]). It succeeds at W acknowledgements, its own
//!   counted once its persist is durable. Replicas merge and persist before
//!   acknowledging.
//! - **get.** The coordinator reads its own state and asks the other
//!   preference nodes, answers at R replies with the merge of what it got
//!   (live siblings and their context), then waits for the rest until the
//!   request deadline and repairs every replica that missed something (read
//!   repair), itself included.
//! - **Sloppy quorum and hinted handoff.** A preference node that does not
//!   answer within `replica_timeout_ms` is suspected, and the write goes to
//!   the next node of the walk beyond the N, tagged with a hint naming the
//!   intended owner. That node persists the hint and, once the owner answers
//!   a probe, hands the data off and drops the hint when the owner has
//!   persisted it.
//! - **Anti-entropy (§4.7).** Replicas of a partition periodically compare
//!   hash trees and merge the keys they hold differently, both ways (see
//!   `anti_entropy.rs`).
//! - **Failure detection.** A suspected peer is skipped by new requests and
//!   probed (ping) with exponential backoff until it answers.
//!
//! Where we differ from the paper: a put's coordinator must be a
//! preference node (the paper lets any of the top N coordinate, as here,
//! and load-balances among them); gets read only from preference nodes,
//! never from hint holders.

//!
//! # Where each concern lives
//!
//! | file | what |
//! |---|---|
//! | `types.rs` | the vocabulary: settings, requests, replies, errors, messages, effects, the [`Store`] trait |
//! | `node.rs` | [`Node`]: its state, `handle_client`/`handle_message`/`handle_timer`, shared helpers |
//! | `coordinator.rs` | admitting a request, forwarding, deadlines |
//! | `get.rs` | a get's round and read repair |
//! | `put.rs` | a put's round, sloppy-quorum substitutes |
//! | `replica.rs` | serving reads, merging writes and handoffs |
//! | `handoff.rs` | hints: kept, handed off, dropped |
//! | `failure.rs` | suspicion and probes |
//! | `persistence.rs` | writes in flight to local storage, `handle_persisted` |
//! | `stats.rs` | [`NodeStats`] |
//! | `anti_entropy.rs` | hash trees kept as writes land, exchanges, repairs |
//! | `reaping.rs` | tombstones removed once every replica holds them |
//! | `membership.rs` | joins and leaves: epochs, gossip, partitions handed over |

mod anti_entropy;
mod coordinator;
mod failure;
mod get;
mod handoff;
mod membership;
mod node;
mod persistence;
mod put;
mod reaping;
mod replica;
mod stats;
mod types;

pub use anti_entropy::TreeSummary;
pub use membership::{gaining_nodes, gains, MembershipError, MembershipStatus, GOSSIP_INTERVAL_MS};
pub use node::{Node, FORWARDS_REMEMBERED};
pub use stats::NodeStats;
pub use types::{
    ClientError, ClientId, ClientReply, ClientRequest, Effect, Message, Origin, PersistToken, RequestId, Settings,
    SettingsError, Store, StoreError, Timer,
};
