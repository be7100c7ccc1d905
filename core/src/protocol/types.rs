//! The protocol's vocabulary: settings, requests, replies, messages, effects.

use std::fmt;

use thiserror::Error;

use crate::ids::{NodeId, PartitionId};
use crate::limits::{
    ANTI_ENTROPY_INTERVAL_MS_DEFAULT, CLOCK_ENTRIES_DEFAULT, CLOCK_ENTRIES_MAX, HINT_AGE_MAX_MS_DEFAULT,
    HINT_AGE_MAX_MS_MAX, REPLICAS_MAX, SIBLINGS_LIMIT_DEFAULT, SIBLINGS_LIMIT_MAX, SIBLINGS_WARNING_DEFAULT,
    TIMEOUT_MS_MAX, TOMBSTONE_GRACE_MS_DEFAULT,
};
use crate::merkle;
use crate::ring::Ring;
use crate::version::{SiblingSet, VectorClock, Versioning};

/// Cluster-wide protocol settings. Every node of a cluster must use the
/// same N, R, W and versioning.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Settings {
    /// Replicas per key (N).
    pub n: usize,
    /// Replies a get waits for (R), the coordinator's own included.
    pub r: usize,
    /// Acknowledgements a put waits for (W), the coordinator's own included.
    pub w: usize,
    /// How versions supersede one another.
    pub versioning: Versioning,
    /// Vector clock truncation threshold.
    pub clock_entries_max: usize,
    /// Siblings a put may leave on a key: a put past it is refused.
    pub siblings_max: usize,
    /// Siblings past which a put is logged as a warning.
    pub siblings_warning: usize,
    /// A request not answered by then fails with a timeout.
    pub request_timeout_ms: u64,
    /// A replica silent for this long is suspected; with sloppy quorum a
    /// write then goes to the next node of the walk with a hint.
    pub replica_timeout_ms: u64,
    /// First probe interval of a suspected peer (doubles up to the max).
    pub probe_interval_ms: u64,
    /// Longest probe interval.
    pub probe_interval_max_ms: u64,
    /// Write to fallback nodes with hints when preference nodes are down.
    pub sloppy_quorum: bool,
    /// A hint held longer than this is dropped (its owner is rebuilt by
    /// read repair and anti-entropy instead).
    pub hint_age_max_ms: u64,
    /// Repair stale replicas after a get.
    pub read_repair: bool,
    /// Anti-entropy (§4.7): start an exchange of hash trees with one
    /// other replica of one partition every this many ms (0: never). One
    /// exchange runs at a time; partitions reported as needing repair go
    /// first, back to back.
    pub anti_entropy_interval_ms: u64,
    /// A tombstone every replica holds is removed this long after it
    /// became durable (see `reaping.rs`); at least `hint_age_max_ms` with
    /// sloppy quorum, so that no hint of an older version outlives it.
    pub tombstone_grace_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            n: 3,
            r: 2,
            w: 2,
            versioning: Versioning::Dvv,
            clock_entries_max: CLOCK_ENTRIES_DEFAULT,
            siblings_max: SIBLINGS_LIMIT_DEFAULT,
            siblings_warning: SIBLINGS_WARNING_DEFAULT,
            request_timeout_ms: 1_000,
            replica_timeout_ms: 100,
            probe_interval_ms: 100,
            probe_interval_max_ms: 2_000,
            sloppy_quorum: true,
            hint_age_max_ms: HINT_AGE_MAX_MS_DEFAULT,
            read_repair: true,
            anti_entropy_interval_ms: ANTI_ENTROPY_INTERVAL_MS_DEFAULT,
            tombstone_grace_ms: TOMBSTONE_GRACE_MS_DEFAULT,
        }
    }
}

/// Why settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SettingsError {
    /// N out of range.
    #[error("n = {0} is out of range: it must be between 1 and {REPLICAS_MAX}")]
    N(usize),
    /// R out of range.
    #[error("r = {r} is out of range: it must be between 1 and n = {n}")]
    R {
        /// R.
        r: usize,
        /// N.
        n: usize,
    },
    /// W out of range.
    #[error("w = {w} is out of range: it must be between 1 and n = {n}")]
    W {
        /// W.
        w: usize,
        /// N.
        n: usize,
    },
    /// Fewer nodes than N.
    #[error("n = {n} replicas need at least {n} nodes, the cluster has {nodes}")]
    TooFewNodes {
        /// N.
        n: usize,
        /// Nodes in the cluster.
        nodes: usize,
    },
    /// A zero truncation threshold or timeout.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// A grace period hints could outlive.
    #[error(
        "tombstone_grace_ms = {grace} is under hint_age_max_ms = {hint_age}: a hint of a deleted value could \
         outlive its tombstone and bring the value back; raise the grace period or lower the hint age"
    )]
    GraceUnderHintAge {
        /// The grace period.
        grace: u64,
        /// The hint age limit.
        hint_age: u64,
    },
    /// A truncation threshold or timeout over its bound.
    #[error("{name} = {value} is over the limit of {max}")]
    TooLarge {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: u64,
        /// The most it may be.
        max: u64,
    },
}

impl Settings {
    /// Checks the settings for a cluster of `nodes` nodes.
    ///
    /// # Errors
    /// N, R or W out of range, too few nodes, or a zero limit.
    pub fn validate(&self, nodes: usize) -> Result<(), SettingsError> {
        if self.n == 0 || self.n > REPLICAS_MAX {
            return Err(SettingsError::N(self.n));
        }
        if self.r == 0 || self.r > self.n {
            return Err(SettingsError::R { r: self.r, n: self.n });
        }
        if self.w == 0 || self.w > self.n {
            return Err(SettingsError::W { w: self.w, n: self.n });
        }
        if nodes < self.n {
            return Err(SettingsError::TooFewNodes { n: self.n, nodes });
        }
        for (value, name, max) in [
            (
                self.clock_entries_max as u64,
                "clock_entries_max",
                CLOCK_ENTRIES_MAX as u64,
            ),
            (self.siblings_max as u64, "siblings_max", SIBLINGS_LIMIT_MAX as u64),
            (
                self.siblings_warning as u64,
                "siblings_warning",
                self.siblings_max as u64,
            ),
            (self.request_timeout_ms, "request_timeout_ms", TIMEOUT_MS_MAX),
            (self.replica_timeout_ms, "replica_timeout_ms", TIMEOUT_MS_MAX),
            (self.probe_interval_ms, "probe_interval_ms", TIMEOUT_MS_MAX),
            (self.probe_interval_max_ms, "probe_interval_max_ms", TIMEOUT_MS_MAX),
            (self.hint_age_max_ms, "hint_age_max_ms", HINT_AGE_MAX_MS_MAX),
            (
                self.anti_entropy_interval_ms,
                "anti_entropy_interval_ms",
                TIMEOUT_MS_MAX,
            ),
        ] {
            if value == 0 && name != "anti_entropy_interval_ms" {
                return Err(SettingsError::Zero(name));
            }
            if value > max {
                return Err(SettingsError::TooLarge { name, value, max });
            }
        }
        if self.sloppy_quorum && self.tombstone_grace_ms < self.hint_age_max_ms {
            return Err(SettingsError::GraceUnderHintAge {
                grace: self.tombstone_grace_ms,
                hint_age: self.hint_age_max_ms,
            });
        }
        Ok(())
    }
}

/// A client as the driver knows it (a connection and a request on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub u64);

/// A request, unique per coordinating node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId {
    /// The node that made it.
    pub node: NodeId,
    /// Its number there.
    pub sequence: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.node, self.sequence)
    }
}

/// Where a reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// A client of this node.
    Client(ClientId),
    /// Another node forwarded the request; the reply goes back to it.
    Forwarded {
        /// The node that forwarded.
        from: NodeId,
        /// Its request id.
        request: RequestId,
    },
}

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientRequest {
    /// Read a key's siblings.
    Get {
        /// The key.
        key: Vec<u8>,
        /// Replies to wait for instead of the cluster's R (at most N).
        r: Option<usize>,
    },
    /// Write a value (or, with `value: None`, delete) with the context of
    /// an earlier get (empty for a blind write).
    Put {
        /// The key.
        key: Vec<u8>,
        /// The context the client read.
        context: VectorClock,
        /// The value; `None` deletes (writes a tombstone).
        value: Option<Vec<u8>>,
        /// Acknowledgements to wait for instead of the cluster's W (at most N).
        w: Option<usize>,
    },
}

impl ClientRequest {
    /// The key the request is about.
    pub fn key(&self) -> &[u8] {
        match self {
            ClientRequest::Get { key, .. } | ClientRequest::Put { key, .. } => key,
        }
    }
}

/// Why a request failed, as the client sees it: each kind says what the
/// client can do about it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Error)]
pub enum ClientError {
    /// Not enough replicas answered before the deadline. The write may
    /// still have taken effect on some (an indeterminate outcome): read
    /// before retrying.
    #[error("timed out with {got} of the {needed} replicas needed")]
    Timeout {
        /// Replies or acknowledgements received.
        got: usize,
        /// Replies or acknowledgements needed.
        needed: usize,
    },
    /// The node cannot take the request now (it is overloaded); nothing was
    /// done, so the same request may go to another node at once.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The node is stopping; nothing was done: send the request elsewhere.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// The request cannot be served as asked (R or W above N, and so on):
    /// retrying it unchanged will fail again.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The coordinator's local storage failed the request.
    #[error("storage failed: {0}")]
    Storage(StoreError),
}

/// Why the local store could not serve or keep a key. The node's storage
/// engine has richer errors (file, offset, system error); they cross into
/// the protocol as one of these kinds, the engine's description kept for
/// the log and the client.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Error)]
pub enum StoreError {
    /// The engine failed: an I/O error, a partition that stopped taking
    /// writes after one, or an engine that is closing.
    #[error("{0}")]
    Failed(String),
    /// The stored bytes are damaged: a checksum mismatch, or a sibling set
    /// that does not decode. Never served.
    #[error("damaged data: {0}")]
    Corrupt(String),
    /// The write is over a bound of the store (key or record size).
    #[error("{0}")]
    TooLarge(String),
}

/// A reply to a client.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClientReply {
    /// A get's answer: the live siblings and the context to write with.
    Got {
        /// Live sibling values (tombstones excluded), sorted by dot.
        values: Vec<Vec<u8>>,
        /// The merged clock of every sibling read, tombstones included.
        context: VectorClock,
    },
    /// The put or delete reached W replicas.
    Stored,
    /// The request failed.
    Failed(ClientError),
}

/// What nodes say to each other.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Message {
    /// Coordinator → replica: send me your state of `key`.
    Read {
        /// The coordinator's request.
        request: RequestId,
        /// The key.
        key: Vec<u8>,
    },
    /// Replica → coordinator.
    ReadReply {
        /// The coordinator's request.
        request: RequestId,
        /// The replica's sibling set (empty if it has none).
        set: SiblingSet,
    },
    /// Coordinator → replica: merge this set into your state (or, with a
    /// hint, keep it for the node named there).
    Write {
        /// The coordinator's request (a repair's id for read repair).
        request: RequestId,
        /// The key.
        key: Vec<u8>,
        /// The coordinator's whole resulting sibling set.
        set: SiblingSet,
        /// The preference node this write stands in for (sloppy quorum).
        hint: Option<NodeId>,
    },
    /// Replica → coordinator: the write is durable.
    WriteAck {
        /// The coordinator's request.
        request: RequestId,
    },
    /// Non-preference node → preference node: coordinate this for me.
    Forward {
        /// The forwarding node's request.
        request: RequestId,
        /// The client's request.
        op: ClientRequest,
    },
    /// The coordinator's answer to a forwarded request.
    ForwardReply {
        /// The forwarding node's request.
        request: RequestId,
        /// The answer.
        reply: ClientReply,
    },
    /// Hint holder → owner: data written while you were away.
    Handoff {
        /// The key.
        key: Vec<u8>,
        /// The hinted sibling set.
        set: SiblingSet,
    },
    /// Owner → hint holder: the handed-off data is durable here.
    HandoffAck {
        /// The key.
        key: Vec<u8>,
    },
    /// Are you alive?
    Ping,
    /// Yes.
    Pong,
    /// Anti-entropy initiator → another replica of `partition`: answer
    /// this question about your hash tree.
    TreeQuery {
        /// The initiator's exchange.
        exchange: u64,
        /// The partition.
        partition: PartitionId,
        /// The question.
        request: merkle::Request,
    },
    /// The answer (`None`: this node does not replicate the partition, or
    /// cannot answer that question).
    TreeReply {
        /// The initiator's exchange.
        exchange: u64,
        /// The partition.
        partition: PartitionId,
        /// The answer.
        response: Option<merkle::Response>,
    },
    /// Anti-entropy repair of a key the two replicas hold differently:
    /// merge this set; with `back`, answer with your merged set unless it
    /// is the one sent.
    Repair {
        /// The key.
        key: Vec<u8>,
        /// The sender's set (empty if it holds none).
        set: SiblingSet,
        /// Send the merge back.
        back: bool,
    },
    /// A partition's reaper removed this tombstone-only key (every replica
    /// held it): remove it too if you still hold the set hashing to `hash`.
    Reap {
        /// The key.
        key: Vec<u8>,
        /// The reaped set's entry hash.
        hash: u64,
    },
    /// Reply to [`Message::Reap`]: done (or nothing to do).
    Reaped {
        /// The key.
        key: Vec<u8>,
    },
    /// The sender's membership state (see `membership.rs`).
    Gossip {
        /// The ring it routes by.
        ring: Ring,
        /// The change pending, if any.
        next: Option<Ring>,
        /// Gaining nodes of `next` that hold all they gain.
        ready: Vec<NodeId>,
    },
    /// The sender, outside the ring, asks to be added to it.
    Join,
}

/// Identifies a persist until the driver reports it done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistToken(pub u64);

/// A timer the node asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// The request's deadline.
    Request(RequestId),
    /// Time to replace silent replicas of a request (sloppy quorum).
    Replicas(RequestId),
    /// Time to ping a suspected peer (or a hint's owner) again.
    Probe(NodeId),
    /// Time for the next anti-entropy exchange.
    AntiEntropy,
    /// Time to gossip membership to one member.
    Gossip,
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Send a message to a peer (best effort: it may be lost).
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        message: Message,
    },
    /// Answer a client of this node.
    Reply {
        /// The client.
        client: ClientId,
        /// The answer.
        reply: ClientReply,
    },
    /// Make `set` the durable state of `key`, then call
    /// [`super::Node::handle_persisted`] with `token`.
    Persist {
        /// Reported back when durable.
        token: PersistToken,
        /// The key.
        key: Vec<u8>,
        /// Its whole new state.
        set: SiblingSet,
    },
    /// Durably keep `set` as a hint of `key` for `owner`, then call
    /// [`super::Node::handle_persisted`] with `token`.
    PersistHint {
        /// Reported back when durable.
        token: PersistToken,
        /// The preference node the data belongs to.
        owner: NodeId,
        /// The key.
        key: Vec<u8>,
        /// The hinted state.
        set: SiblingSet,
    },
    /// Forget the hint of `key` for `owner` (it was handed off).
    DropHint {
        /// The owner.
        owner: NodeId,
        /// The key.
        key: Vec<u8>,
    },
    /// A partition reported as needing repair ([`super::Node::repair_first`])
    /// now agrees with another replica's tree: whatever it had lost is
    /// back, and the driver may forget why it needed repair.
    PartitionRepaired {
        /// The partition.
        partition: PartitionId,
    },
    /// Fetch `partition`'s files from one of `sources` (its current
    /// replicas, in order of preference) and adopt them, unless this node
    /// has data of it already; then call
    /// [`super::Node::partition_fetched`].
    FetchPartition {
        /// The partition.
        partition: PartitionId,
        /// Where its files may come from.
        sources: Vec<NodeId>,
    },
    /// The assignment changed: persist it (a restart resumes from it) and
    /// route by `ring`.
    Assignment {
        /// The ring routed by.
        ring: Ring,
        /// The change pending, if any.
        next: Option<Ring>,
    },
    /// Call [`super::Node::handle_timer`] with `timer` at `at_ms`.
    SetTimer {
        /// Which timer.
        timer: Timer,
        /// When, on the driver's clock.
        at_ms: u64,
    },
}

/// Read access to the node's durable state, lent by the driver for the
/// duration of one call.
pub trait Store {
    /// The durable sibling set of `key` (empty if none).
    ///
    /// # Errors
    /// A storage failure, of a kind the client can be told.
    fn load(&self, key: &[u8]) -> Result<SiblingSet, StoreError>;
}
