//! What operators and clients ask a node about the cluster, and its
//! answers: typed on both sides, carried as JSON text in the wire's admin
//! frames (so `dynamo-node client ring --json`-style tooling and people
//! reading a packet capture both get something legible).
//!
//! The ring travels as the assignment itself (the owner of every
//! partition, with its epoch), never as "Q plus the member order": a client
//! that re-derived the assignment would route wrongly as soon as a join or
//! a leave moved a partition.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::ids::{NodeId, PartitionId};
use crate::protocol::NodeStats;
use crate::ring::{Ring, RingError};

/// A question for one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminQuery {
    /// The cluster as this node routes it: settings, members, assignment.
    Ring,
    /// This node's counters and storage figures.
    Stats,
    /// The roots of this node's anti-entropy trees, per partition it holds.
    Trees,
    /// Asked of a node outside the ring: join it through the member
    /// listening at `seed`.
    Join {
        /// A member's address, as the cluster file gives it.
        seed: String,
    },
    /// Asked of a member: leave the ring, handing its partitions away.
    Leave,
}

/// A node's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminAnswer {
    /// The answer to [`AdminQuery::Ring`].
    Ring(RingDescription),
    /// The answer to [`AdminQuery::Stats`].
    Stats(Box<StatsReport>),
    /// The answer to [`AdminQuery::Trees`], by partition.
    Trees(Vec<TreeDescription>),
    /// The answer to [`AdminQuery::Join`] and [`AdminQuery::Leave`]: the
    /// change was asked for (it completes later: watch the ring's epoch),
    /// or why not.
    Change(Result<String, String>),
}

/// A membership change under way, as one node sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDescription {
    /// The epoch being moved to.
    pub epoch: u64,
    /// Its owner of each partition.
    pub owners: Vec<NodeId>,
    /// Nodes that gain partitions.
    pub gaining: Vec<NodeId>,
    /// Those of them that hold everything they gain.
    pub ready: Vec<NodeId>,
    /// This node's gained partitions whose files are still coming.
    pub fetching: u32,
    /// This node's gained partitions catching up through anti-entropy.
    pub catching_up: u32,
}

/// One partition's anti-entropy tree on the node asked (see
/// [`crate::merkle`]): two replicas whose roots are equal hold the same
/// versions of the same keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeDescription {
    /// The partition.
    pub partition: u32,
    /// Keys the tree covers (tombstones included).
    pub keys: u64,
    /// The root hash.
    pub root: u64,
}

/// One member as the node asked sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDescription {
    /// Its id in the ring.
    pub node: NodeId,
    /// Its name in the cluster file.
    pub name: String,
    /// Where it listens (clients and peers alike).
    pub addr: String,
    /// Partitions it owns.
    pub partitions: u32,
    /// Whether the node asked currently suspects it.
    pub suspected: bool,
}

/// The cluster as one node routes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingDescription {
    /// Replicas per key (N).
    pub n: usize,
    /// Replies a get waits for (R).
    pub r: usize,
    /// Acknowledgements a put waits for (W).
    pub w: usize,
    /// `dvv` or `paper`.
    pub versioning: String,
    /// The assignment's version: bumped by every join and leave.
    pub epoch: u64,
    /// The owner of each partition, by partition number (Q entries).
    pub owners: Vec<NodeId>,
    /// Every member.
    pub members: Vec<MemberDescription>,
    /// The membership change under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingDescription>,
}

/// A ring description that does not describe a usable ring.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DescriptionError {
    /// The assignment is not a valid ring.
    #[error("the assignment is not a valid ring: {0}")]
    Ring(#[from] RingError),
    /// A partition is owned by a node that is not listed as a member.
    #[error("partitions are assigned to {0}, which is not among the members")]
    OwnerNotMember(NodeId),
}

impl RingDescription {
    /// The ring this description carries, as the node routes it.
    ///
    /// # Errors
    /// An assignment that no ring could have (out-of-range Q, an owner that
    /// is not a member).
    pub fn ring(&self) -> Result<Ring, DescriptionError> {
        if let Some(stranger) = self
            .owners
            .iter()
            .find(|owner| !self.members.iter().any(|member| member.node == **owner))
        {
            return Err(DescriptionError::OwnerNotMember(*stranger));
        }
        Ok(Ring::from_assignment(self.owners.clone(), self.epoch)?)
    }
}

/// One node's counters and storage figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    /// The node reporting.
    pub node: NodeId,
    /// What its protocol state machine counted.
    pub protocol: NodeStats,
    /// Hints it holds for other nodes.
    pub hints_pending: u64,
    /// Tombstones it waits to reap (of the partitions it reaps).
    #[serde(default)]
    pub tombstones_held: u64,
    /// Keys it reaped whose other replicas have not all answered.
    #[serde(default)]
    pub reaps_unanswered: u64,
    /// Peers it suspects.
    pub suspected: Vec<NodeId>,
    /// Keys stored in its partitions (hints excluded).
    pub keys: u64,
    /// Bytes of its partition files (hints excluded).
    pub bytes: u64,
    /// Partitions whose recovery found damage (skipped, never served):
    /// they need the other replicas' data.
    pub needs_repair: Vec<Repair>,
    /// Partitions this node received as files in membership changes since
    /// it started (the latest last).
    #[serde(default)]
    pub transfers: Vec<TransferDescription>,
    /// What the node process uses of its machine (zero where the node's
    /// platform cannot say).
    #[serde(default)]
    pub process: ProcessFigures,
}

/// A node process's use of its machine, as it reads it of itself (so a
/// soak of remote hosts needs no agent on them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessFigures {
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Of it, what the program holds allocated (the allocator's count:
    /// glibc's `mallinfo2`), bytes; 0 where unknown. Resident memory minus
    /// this is the allocator's free space, stacks and code: a soak judges a
    /// leak by this, fragmentation by the difference.
    #[serde(default)]
    pub heap_bytes: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// Of them, files under the data directory: segments held open for
    /// reads grow with the data, so a soak judges them apart.
    #[serde(default)]
    pub data_fds: u64,
    /// Of them, sockets (the listener, peers, clients).
    #[serde(default)]
    pub socket_fds: u64,
    /// Threads.
    pub threads: u64,
    /// CPU time used since the process started (user + system), ms.
    pub cpu_ms: u64,
    /// Disk space its data directory takes (allocated blocks), bytes.
    pub data_dir_bytes: u64,
}

/// A partition received as files from another node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferDescription {
    /// The partition.
    pub partition: u32,
    /// The node it came from.
    pub source: NodeId,
    /// Bytes received (a resumed transfer counts only what it received).
    pub bytes: u64,
    /// Bytes already here from an earlier, interrupted attempt.
    #[serde(default)]
    pub resumed_from: u64,
    /// Files in the snapshot.
    pub files: u64,
    /// From the connection to the partition adopted, in milliseconds.
    pub millis: u64,
}

/// A partition that needs repair, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    /// The partition.
    pub partition: PartitionId,
    /// What recovery found (file and byte range).
    pub reason: String,
}

impl StatsReport {
    /// Gets, puts and deletes this node coordinated.
    pub fn requests_coordinated(&self) -> u64 {
        self.protocol.coordinated_gets + self.protocol.coordinated_puts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn description(owners: Vec<NodeId>) -> RingDescription {
        RingDescription {
            n: 2,
            r: 1,
            w: 1,
            versioning: "dvv".into(),
            epoch: 3,
            owners,
            members: (0..3)
                .map(|node| MemberDescription {
                    node: NodeId(node),
                    name: format!("n{node}"),
                    addr: format!("127.0.0.1:{}", 7000 + node),
                    partitions: 0,
                    suspected: false,
                })
                .collect(),
            pending: None,
        }
    }

    #[test]
    fn a_moved_partition_survives_the_round_trip() {
        // The assignment after a join is not what Q and the member order
        // would give: the description must carry it as it is.
        let mut ring = Ring::new(8, &[NodeId(0), NodeId(1)]).unwrap();
        ring.join(NodeId(2)).unwrap();
        let sent = description((0..8).map(|p| ring.owner(PartitionId(p))).collect());
        let sent = RingDescription {
            epoch: ring.epoch(),
            ..sent
        };
        let text = serde_json::to_string(&AdminAnswer::Ring(sent.clone())).unwrap();
        let AdminAnswer::Ring(received) = serde_json::from_str(&text).unwrap() else {
            panic!("not a ring answer: {text}")
        };
        assert_eq!(received, sent);
        assert_eq!(received.ring().unwrap(), ring);
        assert_ne!(
            received.ring().unwrap(),
            Ring::new(8, &[NodeId(0), NodeId(1), NodeId(2)]).unwrap()
        );
    }

    #[test]
    fn an_owner_outside_the_members_is_refused() {
        let error = description(vec![NodeId(0), NodeId(9)]).ring().unwrap_err();
        assert_eq!(error, DescriptionError::OwnerNotMember(NodeId(9)));
    }
}
