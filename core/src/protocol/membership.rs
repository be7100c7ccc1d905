//! Membership changes (Dynamo §4.8, §6.2): joining and leaving nodes, the
//! assignment versioned by epoch and spread by gossip, and partitions
//! handed over only once their new replicas hold them.
//!
//! # The scheme
//!
//! The assignment is a [`Ring`]: the owner of each of the Q partitions and
//! an epoch. A change is *proposed* by one node — the seed a joining node
//! asks ([`Message::Join`]), or the node that leaves — as the `next` ring
//! (epoch + 1, [`Ring::join`] or [`Ring::leave`] of the current one). One
//! change is pending at a time: a proposal while one is pending is refused.
//!
//! While `next` is pending every node still routes by the current ring:
//! coordinators, quorums, hints and anti-entropy are unchanged, so reads
//! and writes go on as before. A node that `next` puts in a preference list
//! it is not in now *gains* that partition:
//!
//! 1. **Files.** It asks the driver to fetch the partition's files from a
//!    current replica ([`Effect::FetchPartition`]): the driver streams the
//!    segment files of a consistent snapshot, checksummed and resumable,
//!    and adopts them as the partition, then calls
//!    [`Node::partition_fetched`] with its hash tree. (A node that already
//!    has data of the partition skips the copy: it must not mix another
//!    replica's files with its own, and anti-entropy brings what it lacks.)
//! 2. **Catch-up.** It runs one anti-entropy exchange of the partition with
//!    every current replica, each begun after the files arrived; together
//!    they bring every write any of them held at that moment.
//! 3. **Ready.** When every partition it gains has caught up, it says so in
//!    its gossip (`ready`).
//!
//! When every gaining node of `next` is ready, any node that sees it makes
//! `next` the ring (*activation*); gossip carries the news. After
//! activation each gaining node exchanges its gained partitions once more
//! with their old replicas (the *handover*), which brings the writes made
//! between its catch-up and the activation. Old replicas keep their data;
//! a node that left may be stopped once the ring without it is active.
//!
//! # Gossip
//!
//! [`Message::Gossip`] carries the sender's ring, its pending `next`, and
//! the gaining nodes it knows to be ready. A node adopts a ring of a higher
//! epoch, a `next` one epoch past its ring, and the union of ready sets;
//! two different proposals for the same epoch (made at once on two nodes)
//! are settled the same way everywhere: the smaller assignment wins. Every
//! change a node makes or learns is pushed to every node of its ring and
//! `next`; every [`GOSSIP_INTERVAL_MS`] it also sends its state to one
//! member, round-robin, and a node that hears an older state answers with
//! its own — so a node that missed a push (down, partitioned) catches up
//! within a few rounds. The driver persists the assignment at every change
//! ([`Effect::Assignment`]), so a restarted node resumes where it was.
//!
//! Where we differ from the paper: it lets nodes learn tokens through
//! seeds and gossip eventually, and moves data while nodes already route
//! by the new assignment; here routing switches only once the new replicas
//! hold the data, so a read served right after a join never comes from an
//! empty replica.

use std::collections::{BTreeMap, BTreeSet};

use super::node::Node;
use super::types::{Effect, Message, Timer};
use crate::ids::{NodeId, PartitionId};
use crate::merkle::Tree;
use crate::ring::{Ring, RingError};

/// How often a node sends its membership state to one other member.
pub const GOSSIP_INTERVAL_MS: u64 = 1_000;

/// Why a membership change was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// Another change is still moving partitions.
    #[error("a change is pending (epoch {current} → {next}): try again when it completes")]
    Pending {
        /// The active epoch.
        current: u64,
        /// The pending one.
        next: u64,
    },
    /// The ring refuses it (unknown node, already a member, last node...).
    #[error("{0}")]
    Ring(#[from] RingError),
    /// Fewer nodes than replicas would remain.
    #[error("{node} cannot leave: {members} members would remain, fewer than N = {n}")]
    TooFew {
        /// The node asked to leave.
        node: NodeId,
        /// Members after the leave.
        members: usize,
        /// Replicas per key.
        n: usize,
    },
}

/// Where a partition this node gains stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Gain {
    /// Its files are being fetched; the current replicas to fetch from.
    Fetching(Vec<NodeId>),
    /// Its files are here; the current replicas not yet exchanged with.
    CatchingUp(BTreeSet<NodeId>),
}

/// A node's view of membership beyond its ring.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Membership {
    /// The assignment being moved to (epoch = the ring's + 1).
    next: Option<Ring>,
    /// Gaining nodes of `next` known to hold all they gain.
    ready: BTreeSet<NodeId>,
    /// This node's gains under `next`.
    gaining: BTreeMap<PartitionId, Gain>,
    /// After an activation: (partition, old replica) to exchange with once.
    handover: BTreeSet<(PartitionId, NodeId)>,
    /// Round-robin position of the periodic gossip.
    cursor: u64,
}

/// A membership change as [`Node::membership`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipStatus {
    /// The assignment being moved to, if any.
    pub next: Option<Ring>,
    /// Gaining nodes of `next` that hold all they gain.
    pub ready: Vec<NodeId>,
    /// Every gaining node of `next`.
    pub gaining_nodes: Vec<NodeId>,
    /// This node's partitions whose files are still being fetched.
    pub fetching: Vec<PartitionId>,
    /// This node's partitions catching up through anti-entropy.
    pub catching_up: Vec<PartitionId>,
    /// Handover exchanges left after the last activation.
    pub handovers_left: usize,
}

/// The partitions `node` gains going from `ring` to `next`, each with its
/// current replicas: those whose preference list (of `n`) it enters.
pub fn gains(ring: &Ring, next: &Ring, node: NodeId, n: usize) -> Vec<(PartitionId, Vec<NodeId>)> {
    (0..next.partition_count().min(ring.partition_count()))
        .map(PartitionId)
        .filter_map(|partition| {
            let new = next.preference_list(partition, n);
            let old = ring.preference_list(partition, n);
            (new.contains(&node) && !old.contains(&node)).then_some((partition, old))
        })
        .collect()
}

/// Every node that gains a partition going from `ring` to `next`.
pub fn gaining_nodes(ring: &Ring, next: &Ring, n: usize) -> BTreeSet<NodeId> {
    let mut nodes = BTreeSet::new();
    for partition in (0..next.partition_count().min(ring.partition_count())).map(PartitionId) {
        let old = ring.preference_list(partition, n);
        nodes.extend(
            next.preference_list(partition, n)
                .into_iter()
                .filter(|node| !old.contains(node)),
        );
    }
    nodes
}

impl Node {
    /// Restores a pending change persisted before a restart (before
    /// [`Node::start`], which resumes this node's gains).
    #[must_use]
    pub fn with_next(mut self, next: Option<Ring>) -> Node {
        self.membership.next = next.filter(|next| next.epoch() == self.ring.epoch() + 1);
        self
    }

    /// The pending change and this node's part in it.
    pub fn membership(&self) -> MembershipStatus {
        let membership = &self.membership;
        let (mut fetching, mut catching_up) = (Vec::new(), Vec::new());
        for (partition, gain) in &membership.gaining {
            match gain {
                Gain::Fetching(_) => fetching.push(*partition),
                Gain::CatchingUp(_) => catching_up.push(*partition),
            }
        }
        MembershipStatus {
            next: membership.next.clone(),
            ready: membership.ready.iter().copied().collect(),
            gaining_nodes: membership
                .next
                .as_ref()
                .map(|next| gaining_nodes(&self.ring, next, self.settings.n).into_iter().collect())
                .unwrap_or_default(),
            fetching,
            catching_up,
            handovers_left: membership.handover.len(),
        }
    }

    /// Whether a membership change is pending.
    pub(super) fn change_pending(&self) -> bool {
        self.membership.next.is_some()
    }

    /// Arms the gossip timer and resumes this node's gains of a pending
    /// change (from [`Node::start`]).
    pub(super) fn start_membership(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        out.push(Effect::SetTimer {
            timer: Timer::Gossip,
            at_ms: now_ms + GOSSIP_INTERVAL_MS,
        });
        self.begin_gains(out);
    }

    /// Proposes adding `node` to the ring.
    ///
    /// # Errors
    /// A change is pending, or the ring refuses the node.
    pub fn propose_join(&mut self, node: NodeId, out: &mut Vec<Effect>) -> Result<(), MembershipError> {
        self.check_no_pending()?;
        let mut next = self.ring.clone();
        next.join(node)?;
        self.adopt_next(next, BTreeSet::new(), out);
        Ok(())
    }

    /// Proposes removing `node` from the ring (its partitions go to the
    /// others).
    ///
    /// # Errors
    /// A change is pending, the node is not a member, or fewer than N
    /// members would remain.
    pub fn propose_leave(&mut self, node: NodeId, out: &mut Vec<Effect>) -> Result<(), MembershipError> {
        self.check_no_pending()?;
        let mut next = self.ring.clone();
        next.leave(node)?;
        let members = next.members().len();
        if members < self.settings.n {
            return Err(MembershipError::TooFew {
                node,
                members,
                n: self.settings.n,
            });
        }
        self.adopt_next(next, BTreeSet::new(), out);
        Ok(())
    }

    /// Asks `seed` to add this node to the ring (a node outside it).
    pub fn request_join(&mut self, seed: NodeId, out: &mut Vec<Effect>) {
        out.push(Effect::Send {
            to: seed,
            message: Message::Join,
        });
    }

    fn check_no_pending(&self) -> Result<(), MembershipError> {
        match &self.membership.next {
            Some(next) => Err(MembershipError::Pending {
                current: self.ring.epoch(),
                next: next.epoch(),
            }),
            None => Ok(()),
        }
    }

    /// A node asks to join through this one.
    pub(super) fn on_join(&mut self, from: NodeId, out: &mut Vec<Effect>) {
        let known = self.ring.members().contains(&from)
            || self
                .membership
                .next
                .as_ref()
                .is_some_and(|next| next.members().contains(&from));
        if !known {
            if let Err(error) = self.propose_join(from, out) {
                log::info!("{from} asked to join: {error}");
            }
        }
        // Whatever happened, it learns the state (and retries if refused).
        self.gossip_to(from, out);
    }

    /// The driver fetched `partition`'s files and adopted them, with their
    /// tree (`None`: the node kept what it had; anti-entropy brings the
    /// rest). The partition now catches up with its current replicas.
    pub fn partition_fetched(&mut self, partition: PartitionId, tree: Option<Tree>, out: &mut Vec<Effect>) {
        let Some(Gain::Fetching(sources)) = self.membership.gaining.get(&partition) else {
            return;
        };
        // Without anti-entropy there is nothing to catch up with: the files
        // are all a gaining node gets (and the handover never runs).
        let waiting: BTreeSet<NodeId> = if self.keeps_trees() {
            sources.iter().copied().collect()
        } else {
            BTreeSet::new()
        };
        if let Some(tree) = tree.filter(|_| self.keeps_trees()) {
            self.anti_entropy_adopt_tree(partition, tree);
        }
        self.membership.gaining.insert(partition, Gain::CatchingUp(waiting));
        self.check_ready(out);
    }

    /// Starts fetching every partition this node gains under `next` that
    /// it is not already working on.
    fn begin_gains(&mut self, out: &mut Vec<Effect>) {
        let Some(next) = &self.membership.next else {
            return;
        };
        for (partition, sources) in gains(&self.ring, next, self.id, self.settings.n) {
            if self.membership.gaining.contains_key(&partition) {
                continue;
            }
            self.membership
                .gaining
                .insert(partition, Gain::Fetching(sources.clone()));
            out.push(Effect::FetchPartition { partition, sources });
        }
        self.check_ready(out);
    }

    /// Takes `next` as the pending change (with the ready set known for it)
    /// and tells everyone.
    fn adopt_next(&mut self, next: Ring, ready: BTreeSet<NodeId>, out: &mut Vec<Effect>) {
        log::info!(
            "{}: change to epoch {} pending ({} partitions move)",
            self.id,
            next.epoch(),
            self.ring
                .owners()
                .iter()
                .zip(next.owners())
                .filter(|(old, new)| old != new)
                .count()
        );
        self.membership.next = Some(next);
        self.membership.ready = ready;
        self.membership.gaining.clear();
        self.persist_assignment(out);
        self.begin_gains(out);
        self.maybe_activate(out);
        self.gossip_all(out);
    }

    /// Ready once every gained partition caught up with all its sources.
    fn check_ready(&mut self, out: &mut Vec<Effect>) {
        if self.membership.next.is_none() || self.membership.ready.contains(&self.id) {
            return;
        }
        let done = self
            .membership
            .gaining
            .values()
            .all(|gain| matches!(gain, Gain::CatchingUp(waiting) if waiting.is_empty()));
        if done && !self.membership.gaining.is_empty() {
            log::info!("{}: holds every partition it gains", self.id);
            self.membership.ready.insert(self.id);
            self.maybe_activate(out);
            self.gossip_all(out);
        }
    }

    /// Makes `next` the ring once every gaining node is ready.
    fn maybe_activate(&mut self, out: &mut Vec<Effect>) {
        let Some(next) = &self.membership.next else {
            return;
        };
        let needed = gaining_nodes(&self.ring, next, self.settings.n);
        if !needed.is_subset(&self.membership.ready) {
            return;
        }
        let next = next.clone();
        self.activate(next, out);
    }

    /// Routes by `ring` from now on.
    fn activate(&mut self, ring: Ring, out: &mut Vec<Effect>) {
        log::info!("{}: routing by epoch {}", self.id, ring.epoch());
        let mut handover = BTreeSet::new();
        for (partition, gain) in &self.membership.gaining {
            if let Gain::CatchingUp(_) = gain {
                for old in self.ring.preference_list(*partition, self.settings.n) {
                    if old != self.id {
                        handover.insert((*partition, old));
                    }
                }
            }
        }
        self.ring = ring;
        self.membership.next = None;
        self.membership.ready.clear();
        self.membership.gaining.clear();
        self.membership.handover = handover;
        self.persist_assignment(out);
    }

    fn persist_assignment(&self, out: &mut Vec<Effect>) {
        out.push(Effect::Assignment {
            ring: self.ring.clone(),
            next: self.membership.next.clone(),
        });
    }

    /// Every node of the ring and of `next` but this one.
    fn gossip_peers(&self) -> Vec<NodeId> {
        let mut peers: BTreeSet<NodeId> = self.ring.members().into_iter().collect();
        if let Some(next) = &self.membership.next {
            peers.extend(next.members());
        }
        peers.remove(&self.id);
        peers.into_iter().collect()
    }

    fn gossip_message(&self) -> Message {
        Message::Gossip {
            ring: self.ring.clone(),
            next: self.membership.next.clone(),
            ready: self.membership.ready.iter().copied().collect(),
        }
    }

    fn gossip_to(&self, to: NodeId, out: &mut Vec<Effect>) {
        out.push(Effect::Send {
            to,
            message: self.gossip_message(),
        });
    }

    fn gossip_all(&self, out: &mut Vec<Effect>) {
        for peer in self.gossip_peers() {
            self.gossip_to(peer, out);
        }
    }

    /// The periodic gossip: one member, round-robin.
    pub(super) fn on_gossip_timer(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let peers = self.gossip_peers();
        if !peers.is_empty() {
            let peer = peers[(self.membership.cursor as usize) % peers.len()];
            self.membership.cursor = self.membership.cursor.wrapping_add(1);
            self.gossip_to(peer, out);
        }
        out.push(Effect::SetTimer {
            timer: Timer::Gossip,
            at_ms: now_ms + GOSSIP_INTERVAL_MS,
        });
    }

    /// Another node's membership state.
    pub(super) fn on_gossip(
        &mut self,
        from: NodeId,
        ring: Ring,
        next: Option<Ring>,
        ready: Vec<NodeId>,
        out: &mut Vec<Effect>,
    ) {
        if ring.partition_count() != self.ring.partition_count() {
            log::warn!("{from} gossips a ring of another Q: ignored");
            return;
        }
        let mut changed = false;
        if ring.epoch() > self.ring.epoch() {
            self.activate(ring.clone(), out);
            changed = true;
        }
        let ready: BTreeSet<NodeId> = ready.into_iter().collect();
        if let Some(theirs) = next.as_ref().filter(|next| next.epoch() == self.ring.epoch() + 1) {
            match &self.membership.next {
                None => {
                    self.adopt_next(theirs.clone(), ready.clone(), out);
                    return;
                }
                Some(mine) if mine == theirs => {
                    if !ready.is_subset(&self.membership.ready) {
                        self.membership.ready.extend(ready.iter().copied());
                        changed = true;
                        self.maybe_activate(out);
                    }
                }
                Some(mine) if theirs.owners() < mine.owners() => {
                    // Two proposals for one epoch: the smaller wins everywhere.
                    self.adopt_next(theirs.clone(), ready.clone(), out);
                    return;
                }
                Some(_) => {}
            }
        }
        if changed {
            self.gossip_all(out);
            return;
        }
        let behind = ring.epoch() < self.ring.epoch()
            || next != self.membership.next
            || (self.membership.next.is_some() && !self.membership.ready.is_subset(&ready));
        if behind {
            self.gossip_to(from, out);
        }
    }

    /// Whether this node may take part in anti-entropy of `partition`: it
    /// replicates it, gains it, or still holds data of it (an old replica
    /// during a handover).
    pub(super) fn takes_part_in(&self, partition: PartitionId) -> bool {
        self.fellow_replicas(partition).is_some()
            || matches!(self.membership.gaining.get(&partition), Some(Gain::CatchingUp(_)))
            || self.holds_tree_of(partition)
    }

    /// The next membership exchange this node owes: a catch-up of a
    /// gained partition with a current replica, else a handover.
    pub(super) fn membership_pair(&mut self, suspects: &[NodeId]) -> Option<(PartitionId, NodeId)> {
        for (partition, gain) in &self.membership.gaining {
            if let Gain::CatchingUp(waiting) = gain {
                if let Some(peer) = waiting.iter().find(|peer| !suspects.contains(peer)) {
                    return Some((*partition, *peer));
                }
            }
        }
        let pair = self
            .membership
            .handover
            .iter()
            .find(|(_, peer)| !suspects.contains(peer))
            .copied()?;
        // Best effort: tried once (a handover peer may be gone for good).
        self.membership.handover.remove(&pair);
        Some(pair)
    }

    /// An exchange of `partition` with `peer` ran to its end.
    pub(super) fn membership_exchanged(&mut self, partition: PartitionId, peer: NodeId, out: &mut Vec<Effect>) {
        if let Some(Gain::CatchingUp(waiting)) = self.membership.gaining.get_mut(&partition) {
            if waiting.remove(&peer) {
                self.check_ready(out);
            }
        }
    }

    /// Whether a membership exchange is owed.
    pub(super) fn membership_exchanges_owed(&self) -> bool {
        !self.membership.handover.is_empty()
            || self
                .membership
                .gaining
                .values()
                .any(|gain| matches!(gain, Gain::CatchingUp(waiting) if !waiting.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_gains_for_the_new_node_only_and_a_leave_for_others() {
        let ring = Ring::new(16, &[NodeId(0), NodeId(1), NodeId(2)]).unwrap();
        let mut joined = ring.clone();
        joined.join(NodeId(3)).unwrap();
        let gaining = gaining_nodes(&ring, &joined, 3);
        assert!(gaining.contains(&NodeId(3)));
        let gains_of_new = gains(&ring, &joined, NodeId(3), 3);
        assert!(!gains_of_new.is_empty());
        for (partition, old) in &gains_of_new {
            assert_eq!(old, &ring.preference_list(*partition, 3));
            assert!(joined.preference_list(*partition, 3).contains(&NodeId(3)));
        }
        let mut left = joined.clone();
        left.leave(NodeId(3)).unwrap();
        let gaining = gaining_nodes(&joined, &left, 3);
        assert!(!gaining.contains(&NodeId(3)));
        assert!(!gaining.is_empty());
    }
}
