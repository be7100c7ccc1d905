//! Strategy-3 partitioning (Dynamo §6.2): the 64-bit hash space is cut into
//! `Q` equal partitions, fixed for the life of the cluster, and each of `S`
//! nodes owns about `Q/S` of them.
//!
//! - Assignment: partition `p` starts at node `members[p mod S]`, so loads
//!   differ by at most one and consecutive partitions belong to different
//!   nodes (short preference-list walks).
//! - Join: the new node takes `⌊Q/(S+1)⌋` partitions, one at a time from the
//!   most loaded node. That many is the least any balanced assignment must
//!   move, and only partitions that go *to the new node* move.
//! - Leave: the leaving node's partitions go one at a time to the least
//!   loaded remaining node; nothing else moves.
//! - Both keep `max − min ≤ 1` and bump the epoch.
//! - Preference list: walk clockwise from the key's partition collecting
//!   distinct nodes; the first `N` are the preference list, the rest of the
//!   walk is the sloppy-quorum extension (where hinted writes go).
//!
//! Where we differ from the paper: it hands out tokens at random; we choose
//! deterministically (and prefer partitions whose neighbours another node
//! owns) so that two nodes computing the ring from the same membership agree
//! without exchanging it.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::ids::{NodeId, PartitionId};
use crate::limits::{NODES_MAX, PARTITIONS_MAX};

/// Why a ring could not be built or changed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RingError {
    /// `partitions` outside `1..=PARTITIONS_MAX`.
    #[error("partitions (Q) must be between 1 and {PARTITIONS_MAX}, got {0}")]
    PartitionCount(u32),
    /// No nodes, or more than [`NODES_MAX`].
    #[error("a ring needs between 1 and {NODES_MAX} nodes, got {0}")]
    NodeCount(usize),
    /// More nodes than partitions: some node would own nothing.
    #[error("{nodes} nodes cannot share {partitions} partitions: Q must be at least the number of nodes")]
    TooFewPartitions {
        /// Nodes asked for.
        nodes: usize,
        /// Q.
        partitions: u32,
    },
    /// The same node listed twice, or joining twice.
    #[error("{0} is already a member")]
    DuplicateNode(NodeId),
    /// Leaving a ring it is not in.
    #[error("{0} is not a member")]
    UnknownNode(NodeId),
    /// The last node cannot leave.
    #[error("the last node of a ring cannot leave")]
    LastNode,
}

/// The 64-bit hash that places a key on the ring: FNV-1a over the bytes,
/// then the SplitMix64 finaliser so that short, similar keys spread over the
/// whole space. Stable across builds and platforms (the ring depends on it).
pub fn key_hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The partition assignment of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ring {
    /// Owner of each partition, indexed by partition number.
    owners: Vec<NodeId>,
    /// Bumped by every join and leave, so two assignments can be ordered.
    epoch: u64,
}

impl Ring {
    /// Spreads `partitions` over `nodes` (in the order given), epoch 0.
    ///
    /// # Errors
    /// A partition count out of range, no or too many nodes, duplicates, or
    /// more nodes than partitions.
    pub fn new(partitions: u32, nodes: &[NodeId]) -> Result<Ring, RingError> {
        if partitions == 0 || partitions > PARTITIONS_MAX {
            return Err(RingError::PartitionCount(partitions));
        }
        if nodes.is_empty() || nodes.len() > NODES_MAX {
            return Err(RingError::NodeCount(nodes.len()));
        }
        if nodes.len() > partitions as usize {
            return Err(RingError::TooFewPartitions {
                nodes: nodes.len(),
                partitions,
            });
        }
        for (index, node) in nodes.iter().enumerate() {
            if nodes[..index].contains(node) {
                return Err(RingError::DuplicateNode(*node));
            }
        }
        let owners = (0..partitions as usize).map(|p| nodes[p % nodes.len()]).collect();
        Ok(Ring { owners, epoch: 0 })
    }

    /// A ring with the given assignment (the owner of each partition, as
    /// [`Ring::owners`] returns it) and epoch: how a client rebuilds the
    /// ring a node describes, whatever joins and leaves made it.
    ///
    /// # Errors
    /// A partition count out of range, or more owners than [`NODES_MAX`].
    pub fn from_assignment(owners: Vec<NodeId>, epoch: u64) -> Result<Ring, RingError> {
        if owners.is_empty() || owners.len() > PARTITIONS_MAX as usize {
            return Err(RingError::PartitionCount(owners.len() as u32));
        }
        let ring = Ring { owners, epoch };
        let members = ring.loads().len();
        if members > NODES_MAX {
            return Err(RingError::NodeCount(members));
        }
        Ok(ring)
    }

    /// The owner of each partition, by partition number.
    pub fn owners(&self) -> &[NodeId] {
        &self.owners
    }

    /// Q.
    pub fn partition_count(&self) -> u32 {
        self.owners.len() as u32
    }

    /// The assignment's version.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The partition a hash falls in: partition `p` holds the hashes in
    /// `[p·2⁶⁴/Q, (p+1)·2⁶⁴/Q)`.
    pub fn partition_of_hash(&self, hash: u64) -> PartitionId {
        PartitionId(((u128::from(hash) * self.owners.len() as u128) >> 64) as u32)
    }

    /// The partition a key falls in.
    pub fn partition_of(&self, key: &[u8]) -> PartitionId {
        self.partition_of_hash(key_hash(key))
    }

    /// The node owning a partition. Panics on a partition number out of
    /// range: callers get partitions from this ring.
    pub fn owner(&self, partition: PartitionId) -> NodeId {
        self.owners[partition.0 as usize]
    }

    /// Partitions owned per member, sorted by node.
    pub fn loads(&self) -> BTreeMap<NodeId, u32> {
        let mut loads = BTreeMap::new();
        for owner in &self.owners {
            *loads.entry(*owner).or_insert(0) += 1;
        }
        loads
    }

    /// The members, sorted.
    pub fn members(&self) -> Vec<NodeId> {
        self.loads().into_keys().collect()
    }

    /// The partitions a node owns, in ring order.
    pub fn partitions_of(&self, node: NodeId) -> Vec<PartitionId> {
        (0..self.owners.len())
            .filter(|&p| self.owners[p] == node)
            .map(|p| PartitionId(p as u32))
            .collect()
    }

    /// Every member once, in the order met walking clockwise from
    /// `partition`: the first N are its preference list, the rest its
    /// sloppy-quorum extension.
    pub fn walk(&self, partition: PartitionId) -> Vec<NodeId> {
        let members = self.loads().len();
        let mut seen: Vec<NodeId> = Vec::with_capacity(members);
        let count = self.owners.len();
        for step in 0..count {
            let owner = self.owners[(partition.0 as usize + step) % count];
            if !seen.contains(&owner) {
                seen.push(owner);
                if seen.len() == members {
                    break;
                }
            }
        }
        seen
    }

    /// The first `n` distinct nodes of the walk (fewer if the ring is
    /// smaller than `n`).
    pub fn preference_list(&self, partition: PartitionId, n: usize) -> Vec<NodeId> {
        // The same walk as [`Ring::walk`], stopped at n distinct nodes: it
        // runs for every request, so it must not count the members first.
        let mut list: Vec<NodeId> = Vec::with_capacity(n);
        let count = self.owners.len();
        for step in 0..count {
            if list.len() == n {
                break;
            }
            let owner = self.owners[(partition.0 as usize + step) % count];
            if !list.contains(&owner) {
                list.push(owner);
            }
        }
        list
    }

    /// The nodes after the preference list on the walk: where a write goes,
    /// with a hint, when preference nodes do not answer.
    pub fn sloppy_extension(&self, partition: PartitionId, n: usize) -> Vec<NodeId> {
        self.walk(partition).into_iter().skip(n).collect()
    }

    fn is_adjacent_to(&self, partition: usize, node: NodeId) -> bool {
        let count = self.owners.len();
        self.owners[(partition + 1) % count] == node || self.owners[(partition + count - 1) % count] == node
    }

    /// Adds `node`, moving `⌊Q/(S+1)⌋` partitions to it from the most loaded
    /// nodes. Returns the partitions moved (all now owned by `node`).
    ///
    /// # Errors
    /// The node is already a member, the ring is full, or Q is too small.
    pub fn join(&mut self, node: NodeId) -> Result<Vec<PartitionId>, RingError> {
        let loads = self.loads();
        if loads.contains_key(&node) {
            return Err(RingError::DuplicateNode(node));
        }
        if loads.len() + 1 > NODES_MAX {
            return Err(RingError::NodeCount(loads.len() + 1));
        }
        if loads.len() + 1 > self.owners.len() {
            return Err(RingError::TooFewPartitions {
                nodes: loads.len() + 1,
                partitions: self.partition_count(),
            });
        }
        let target = self.owners.len() / (loads.len() + 1);
        let mut loads = loads;
        let mut moved = Vec::with_capacity(target);
        for _ in 0..target {
            // The most loaded donor; ties go to the smallest id.
            let (&donor, _) = loads
                .iter()
                .max_by(|(a_node, a_load), (b_node, b_load)| a_load.cmp(b_load).then(b_node.cmp(a_node)))
                .ok_or(RingError::NodeCount(0))?;
            let candidates: Vec<usize> = (0..self.owners.len()).filter(|&p| self.owners[p] == donor).collect();
            let chosen = candidates
                .iter()
                .copied()
                .find(|&p| !self.is_adjacent_to(p, node))
                .or_else(|| candidates.first().copied())
                .ok_or(RingError::NodeCount(0))?;
            self.owners[chosen] = node;
            *loads.entry(donor).or_insert(1) -= 1;
            moved.push(PartitionId(chosen as u32));
        }
        moved.sort();
        self.epoch += 1;
        Ok(moved)
    }

    /// Removes `node`, handing each of its partitions to the least loaded
    /// remaining node. Returns `(partition, new owner)` for each move.
    ///
    /// # Errors
    /// The node is not a member, or it is the last one.
    pub fn leave(&mut self, node: NodeId) -> Result<Vec<(PartitionId, NodeId)>, RingError> {
        let mut loads = self.loads();
        if loads.remove(&node).is_none() {
            return Err(RingError::UnknownNode(node));
        }
        if loads.is_empty() {
            return Err(RingError::LastNode);
        }
        let mut moved = Vec::new();
        for partition in 0..self.owners.len() {
            if self.owners[partition] != node {
                continue;
            }
            let least = loads.values().copied().min().unwrap_or(0);
            let mut takers = loads.iter().filter(|(_, &load)| load == least).map(|(&taker, _)| taker);
            let first = takers.clone().next().ok_or(RingError::LastNode)?;
            let taker = takers
                .find(|&taker| !self.is_adjacent_to(partition, taker))
                .unwrap_or(first);
            self.owners[partition] = taker;
            *loads.entry(taker).or_insert(0) += 1;
            moved.push((PartitionId(partition as u32), taker));
        }
        self.epoch += 1;
        Ok(moved)
    }
}

/// The paper's load-balancing efficiency (§6.2): the mean number of
/// requests per node over the hottest node's. 1.0 is perfect balance.
/// `None` when there are no nodes or no requests.
pub fn load_balancing_efficiency(requests_per_node: &[u64]) -> Option<f64> {
    let hottest = *requests_per_node.iter().max()?;
    if hottest == 0 {
        return None;
    }
    let mean = requests_per_node.iter().map(|&count| count as f64).sum::<f64>() / requests_per_node.len() as f64;
    Some(mean / hottest as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes(count: u32) -> Vec<NodeId> {
        (0..count).map(NodeId).collect()
    }

    fn assert_balanced(ring: &Ring) -> Result<(), TestCaseError> {
        let loads = ring.loads();
        let max = loads.values().max().copied().unwrap_or(0);
        let min = loads.values().min().copied().unwrap_or(0);
        prop_assert!(max - min <= 1, "loads {:?}", loads);
        prop_assert_eq!(loads.values().sum::<u32>(), ring.partition_count());
        Ok(())
    }

    #[derive(Debug, Clone)]
    enum Change {
        Join,
        Leave(usize),
    }

    fn arb_changes() -> impl Strategy<Value = Vec<Change>> {
        proptest::collection::vec(
            prop_oneof![Just(Change::Join), any::<usize>().prop_map(Change::Leave)],
            0..12,
        )
    }

    proptest! {
        #[test]
        fn joins_and_leaves_keep_balance_and_move_the_fewest(q in 1u32..300, s in 1u32..12, changes in arb_changes()) {
            prop_assume!(s <= q);
            let mut ring = Ring::new(q, &nodes(s)).unwrap();
            assert_balanced(&ring)?;
            let mut next_id = s;
            for change in changes {
                let before = ring.clone();
                let members = ring.members();
                match change {
                    Change::Join => {
                        if members.len() as u32 >= q { continue; }
                        let new = NodeId(next_id);
                        next_id += 1;
                        let moved = ring.join(new).unwrap();
                        prop_assert_eq!(moved.len() as u32, q / (members.len() as u32 + 1));
                        for p in 0..q {
                            let partition = PartitionId(p);
                            if moved.contains(&partition) {
                                prop_assert_eq!(ring.owner(partition), new);
                            } else {
                                prop_assert_eq!(ring.owner(partition), before.owner(partition));
                            }
                        }
                    }
                    Change::Leave(index) => {
                        if members.len() < 2 { continue; }
                        let gone = members[index % members.len()];
                        let moved = ring.leave(gone).unwrap();
                        prop_assert_eq!(moved.len(), before.partitions_of(gone).len());
                        for p in 0..q {
                            let partition = PartitionId(p);
                            if before.owner(partition) != gone {
                                prop_assert_eq!(ring.owner(partition), before.owner(partition));
                            }
                        }
                        prop_assert!(!ring.members().contains(&gone));
                    }
                }
                prop_assert_eq!(ring.epoch(), before.epoch() + 1);
                assert_balanced(&ring)?;
            }
        }

        #[test]
        fn preference_lists_hold_n_distinct_nodes(q in 1u32..300, s in 1u32..12, n in 1usize..6, joins in 0u32..4) {
            prop_assume!(s <= q);
            let mut ring = Ring::new(q, &nodes(s)).unwrap();
            for j in 0..joins {
                if ring.members().len() as u32 >= q { break; }
                ring.join(NodeId(100 + j)).unwrap();
            }
            let members = ring.members().len();
            for p in 0..q {
                let list = ring.preference_list(PartitionId(p), n);
                prop_assert_eq!(list.len(), n.min(members));
                let mut sorted = list.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), list.len(), "duplicates in {:?}", list);
                prop_assert_eq!(list[0], ring.owner(PartitionId(p)));
                let walk = ring.walk(PartitionId(p));
                prop_assert_eq!(&list[..], &walk[..list.len()]);
                let extension = ring.sloppy_extension(PartitionId(p), n);
                prop_assert_eq!(list.len() + extension.len(), members);
                prop_assert!(extension.iter().all(|node| !list.contains(node)));
            }
        }

        #[test]
        fn partitions_are_equal_slices_of_the_hash_space(q in 1u32..=PARTITIONS_MAX, hash: u64) {
            let ring = Ring::new(q, &[NodeId(0)]).unwrap();
            let p = ring.partition_of_hash(hash);
            prop_assert!(p.0 < q);
            // p = ⌊hash·Q/2⁶⁴⌋: the partition's lower bound is ≤ hash.
            prop_assert!((u128::from(p.0) << 64) <= u128::from(hash) * u128::from(q));
            prop_assert!((u128::from(p.0 + 1) << 64) > u128::from(hash) * u128::from(q));
        }
    }

    #[test]
    fn bad_rings_are_refused_with_reasons() {
        assert_eq!(Ring::new(0, &nodes(1)), Err(RingError::PartitionCount(0)));
        assert_eq!(Ring::new(8, &[]), Err(RingError::NodeCount(0)));
        assert_eq!(
            Ring::new(2, &nodes(3)),
            Err(RingError::TooFewPartitions {
                nodes: 3,
                partitions: 2
            })
        );
        assert_eq!(
            Ring::new(8, &[NodeId(1), NodeId(1)]),
            Err(RingError::DuplicateNode(NodeId(1)))
        );
        let mut ring = Ring::new(8, &nodes(1)).unwrap();
        assert_eq!(ring.leave(NodeId(0)), Err(RingError::LastNode));
        assert_eq!(ring.leave(NodeId(5)), Err(RingError::UnknownNode(NodeId(5))));
    }

    #[test]
    fn key_hash_is_stable() {
        // Pinned (values computed independently from the definition: FNV-1a,
        // then the SplitMix64 finaliser): where every stored key lives
        // depends on them.
        assert_eq!(key_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(key_hash(b"a"), 0x02c0_bdbf_4814_20f8);
        assert_eq!(key_hash(b"cart:7"), 0x8c9d_3166_2441_487b);
        let spread = Ring::new(256, &nodes(5)).unwrap();
        let mut counts = [0u64; 5];
        for index in 0..50_000 {
            let key = format!("cart:{index}");
            counts[spread.owner(spread.partition_of(key.as_bytes())).0 as usize] += 1;
        }
        let efficiency = load_balancing_efficiency(&counts).unwrap();
        assert!(efficiency > 0.9, "uniform keys should spread: {counts:?}");
    }

    #[test]
    fn efficiency_is_mean_over_hottest() {
        assert_eq!(load_balancing_efficiency(&[10, 10, 10]), Some(1.0));
        assert_eq!(load_balancing_efficiency(&[5, 15]), Some(10.0 / 15.0));
        assert_eq!(load_balancing_efficiency(&[]), None);
        assert_eq!(load_balancing_efficiency(&[0, 0]), None);
    }
}
