//! [`NodeStats`]: what a node counts about its work. Observed, never
//! steering: the protocol's equality and hashing leave them out (see
//! [`super::Node`]).

use serde::{Deserialize, Serialize};

/// Counters a node keeps about its work (what `dynamo-node client stats`
/// shows, and what the bench's load-balancing efficiency is computed from).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeStats {
    /// Gets this node coordinated.
    pub coordinated_gets: u64,
    /// Puts and deletes this node coordinated.
    pub coordinated_puts: u64,
    /// Client requests forwarded to a preference node.
    pub forwarded: u64,
    /// Reads served for other coordinators.
    pub replica_reads: u64,
    /// Writes merged for other coordinators (repairs and handoffs included).
    pub replica_writes: u64,
    /// Writes kept as hints for a node that was down.
    pub hinted_writes: u64,
    /// Hints handed off and acknowledged by their owner.
    pub handoffs: u64,
    /// Replicas repaired after gets.
    pub read_repairs: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Anti-entropy exchanges this node ran to the end as the initiator.
    #[serde(default)]
    pub exchanges: u64,
    /// Exchanges given up (the peer fell silent, or does not replicate the
    /// partition).
    #[serde(default)]
    pub exchanges_abandoned: u64,
    /// Bytes of tree requests and responses in those exchanges (the roots
    /// included, the repairs not).
    #[serde(default)]
    pub exchange_bytes: u64,
    /// Keys the exchanges found held differently.
    #[serde(default)]
    pub exchange_differences: u64,
    /// Keys whose local state an anti-entropy repair changed.
    #[serde(default)]
    pub entropy_repairs: u64,
    /// Tombstones removed here (as the reaper, or at its word).
    #[serde(default)]
    pub tombstones_reaped: u64,
}
