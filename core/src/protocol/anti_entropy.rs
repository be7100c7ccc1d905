//! Anti-entropy (Dynamo §4.7): replicas of a partition compare hash trees
//! ([`crate::merkle`]) and repair the keys they hold differently, so that a
//! replica that missed writes converges without any client reading them.
//!
//! # The schedule
//!
//! Every `anti_entropy_interval_ms` the node starts one exchange, with one
//! other replica of one partition it holds; at most one runs at a time, so
//! anti-entropy never costs the foreground more than one small request and
//! its repairs at a time. The pairs come round-robin, partition first: the
//! first pass gives every partition one exchange before any gets a second.
//! A partition reported as needing repair ([`Node::repair_first`]: a
//! salvaged segment, a wiped data directory), or one whose last exchange
//! stopped at [`EXCHANGE_DIFFERENCES_MAX`] differences, goes first, and
//! its exchanges run back to back.
//!
//! # An exchange
//!
//! The initiator asks for the peer's root ([`Message::TreeQuery`]), then
//! for the children of differing nodes only, then for the entries of
//! differing segments, as [`Exchange`] says. For each differing key it
//! sends its own set ([`Message::Repair`] with `back`); the peer merges it
//! and answers with its merged set unless that is what it was sent; the
//! initiator merges that. Both sides then hold the merge (the usual rules:
//! nothing concurrent is dropped, nothing superseded is kept). The peer
//! answers from the tree of its durable state; a repair's own writes enter
//! the trees once durable, so the next exchange sees whether they took.
//!
//! A peer that does not answer within `request_timeout_ms` is given up on
//! at the next tick; a peer that does not replicate the partition (another
//! view of the ring) answers `None` and the exchange is dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::node::Node;
use super::persistence::Continuation;
use super::types::{Effect, Message, Store, Timer};
use crate::ids::{NodeId, PartitionId};
use crate::limits::EXCHANGE_DIFFERENCES_MAX;
use crate::merkle::{answer, entry_hash, Difference, Exchange, Next, Request, Response, Tree};
use crate::version::SiblingSet;

/// Partitions a node holds, each with its other replicas.
type Held = Arc<Vec<(PartitionId, Vec<NodeId>)>>;

/// The exchange this node is running as the initiator.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Running {
    id: u64,
    partition: PartitionId,
    peer: NodeId,
    started_ms: u64,
    /// `None` until the peer's root arrives.
    exchange: Option<Exchange>,
}

/// A node's anti-entropy state: its trees, and the exchange it runs.
///
/// Equality and hashing leave out the trees: they are a function of the
/// durable state (kept as writes become durable, rebuilt on open), which
/// the driver holds and the model compares already.
#[derive(Clone, Debug, Default)]
pub(super) struct AntiEntropy {
    /// The tree of each partition this node holds keys of.
    trees: BTreeMap<PartitionId, Tree>,
    /// The last exchange number issued.
    next_id: u64,
    /// Position in the round-robin over (partition, peer) pairs.
    cursor: u64,
    /// Partitions to exchange first.
    urgent: BTreeSet<PartitionId>,
    /// Partitions reported as needing repair that no replica has agreed
    /// with yet.
    repairing: BTreeSet<PartitionId>,
    /// Repairing partitions whose last exchange found differences: the
    /// next tick exchanges them again (not at once: the repairs it sent
    /// must land first).
    recheck: BTreeSet<PartitionId>,
    /// The exchange in flight.
    running: Option<Running>,
    /// The partitions this node holds with their other replicas, for the
    /// ring epoch they were computed at (a function of the ring: left out
    /// of equality and hashing, recomputed only when the ring changes).
    held: Option<(u64, Held)>,
}

impl AntiEntropy {
    /// Everything but the trees, for equality and hashing.
    #[allow(clippy::type_complexity)]
    fn protocol_state(
        &self,
    ) -> (
        u64,
        u64,
        &BTreeSet<PartitionId>,
        &Option<Running>,
        &BTreeSet<PartitionId>,
        &BTreeSet<PartitionId>,
    ) {
        (
            self.next_id,
            self.cursor,
            &self.urgent,
            &self.running,
            &self.repairing,
            &self.recheck,
        )
    }
}

impl PartialEq for AntiEntropy {
    fn eq(&self, other: &Self) -> bool {
        self.protocol_state() == other.protocol_state()
    }
}

impl Eq for AntiEntropy {}

impl std::hash::Hash for AntiEntropy {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.protocol_state().hash(state);
    }
}

/// A partition's tree as an admin query reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeSummary {
    /// The partition.
    pub partition: PartitionId,
    /// Keys in its tree.
    pub keys: u64,
    /// Its root hash.
    pub root: u64,
}

impl Node {
    /// Whether this node keeps hash trees (only with anti-entropy on: the
    /// model's configurations without it need not pay for them).
    pub(super) fn keeps_trees(&self) -> bool {
        self.settings.anti_entropy_interval_ms > 0
    }

    /// Gives the node the trees of its durable state, rebuilt from its
    /// files when it opens them (before [`Node::start`]).
    #[must_use]
    pub fn with_trees(mut self, trees: BTreeMap<PartitionId, Tree>) -> Node {
        if self.keeps_trees() {
            self.anti_entropy.trees = trees;
        }
        self
    }

    /// Exchanges these partitions before any other, back to back, until
    /// each agrees with another replica; then says so
    /// ([`Effect::PartitionRepaired`]).
    pub fn repair_first(&mut self, partitions: impl IntoIterator<Item = PartitionId>) {
        for partition in partitions {
            self.anti_entropy.urgent.insert(partition);
            self.anti_entropy.repairing.insert(partition);
        }
    }

    /// Whether an exchange this node started is still running.
    pub fn exchange_running(&self) -> bool {
        self.anti_entropy.running.is_some()
    }

    /// Partitions waiting to be exchanged first.
    pub fn repairs_pending(&self) -> usize {
        self.anti_entropy.urgent.len()
    }

    /// Every non-empty tree: partition, keys, root.
    pub fn trees(&mut self) -> Vec<TreeSummary> {
        self.anti_entropy
            .trees
            .iter_mut()
            .filter(|(_, tree)| !tree.is_empty())
            .map(|(partition, tree)| TreeSummary {
                partition: *partition,
                keys: tree.len() as u64,
                root: tree.root(),
            })
            .collect()
    }

    /// Takes `tree` as the tree of `partition` (files adopted from another
    /// replica in a membership change).
    pub(super) fn anti_entropy_adopt_tree(&mut self, partition: PartitionId, tree: Tree) {
        self.anti_entropy.trees.insert(partition, tree);
    }

    /// Whether this node holds keys of `partition`.
    pub(super) fn holds_tree_of(&self, partition: PartitionId) -> bool {
        self.anti_entropy
            .trees
            .get(&partition)
            .is_some_and(|tree| !tree.is_empty())
    }

    /// Records `key`'s durable entry hash in its partition's tree.
    pub(super) fn tree_entry(&mut self, key: &[u8], hash: Option<u64>) {
        let partition = self.ring.partition_of(key);
        self.anti_entropy.trees.entry(partition).or_default().set(key, hash);
    }

    /// Arms the first anti-entropy tick (from [`Node::start`]).
    pub(super) fn start_anti_entropy(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        if self.keeps_trees() {
            out.push(Effect::SetTimer {
                timer: Timer::AntiEntropy,
                at_ms: now_ms + self.settings.anti_entropy_interval_ms,
            });
        }
    }

    /// The anti-entropy tick: give up on a silent exchange, start the next
    /// one if none runs, arm the next tick.
    pub(super) fn on_anti_entropy_timer(&mut self, now_ms: u64, store: &dyn Store, out: &mut Vec<Effect>) {
        if let Some(running) = &self.anti_entropy.running {
            if now_ms.saturating_sub(running.started_ms) >= self.settings.request_timeout_ms {
                log::debug!(
                    "anti-entropy: {} did not finish exchange {} of {}",
                    running.peer,
                    running.id,
                    running.partition
                );
                self.stats.exchanges_abandoned += 1;
                self.anti_entropy.running = None;
            }
        }
        let recheck = std::mem::take(&mut self.anti_entropy.recheck);
        self.anti_entropy.urgent.extend(recheck);
        if self.anti_entropy.running.is_none() {
            self.start_exchange(now_ms, out);
        }
        self.reap_due(now_ms, store, out);
        self.start_anti_entropy(now_ms, out);
    }

    /// The other replicas of `partition`, if this node is one.
    pub(super) fn fellow_replicas(&self, partition: PartitionId) -> Option<Vec<NodeId>> {
        if partition.0 >= self.ring.partition_count() {
            return None;
        }
        let replicas = self.ring.preference_list(partition, self.settings.n);
        replicas
            .contains(&self.id)
            .then(|| replicas.into_iter().filter(|node| *node != self.id).collect())
    }

    /// Picks the next (partition, peer) and asks the peer for its root.
    fn start_exchange(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let Some((partition, peer)) = self.next_pair() else {
            return;
        };
        self.anti_entropy.next_id += 1;
        let id = self.anti_entropy.next_id;
        self.anti_entropy.running = Some(Running {
            id,
            partition,
            peer,
            started_ms: now_ms,
            exchange: None,
        });
        out.push(Effect::Send {
            to: peer,
            message: Message::TreeQuery {
                exchange: id,
                partition,
                request: Request::Root,
            },
        });
    }

    /// A membership change's exchange first (catch-up, then handover),
    /// then an urgent partition (with a peer not suspected), else the next
    /// pair of the round-robin whose peer is not suspected.
    fn next_pair(&mut self) -> Option<(PartitionId, NodeId)> {
        let suspects = self.suspects();
        if let Some(pair) = self.membership_pair(&suspects) {
            return Some(pair);
        }
        while let Some(partition) = self.anti_entropy.urgent.pop_first() {
            let Some(peers) = self.fellow_replicas(partition) else {
                continue;
            };
            let live: Vec<NodeId> = peers.into_iter().filter(|peer| !suspects.contains(peer)).collect();
            if live.is_empty() {
                // Nobody to repair from now: the next tick tries again.
                if self.anti_entropy.repairing.contains(&partition) {
                    self.anti_entropy.recheck.insert(partition);
                }
                continue;
            }
            let peer = live[(self.anti_entropy.cursor as usize) % live.len()];
            self.anti_entropy.cursor += 1;
            return Some((partition, peer));
        }
        let epoch = self.ring.epoch();
        if self.anti_entropy.held.as_ref().is_none_or(|(at, _)| *at != epoch) {
            let held: Vec<(PartitionId, Vec<NodeId>)> = (0..self.ring.partition_count())
                .map(PartitionId)
                .filter_map(|partition| self.fellow_replicas(partition).map(|peers| (partition, peers)))
                .filter(|(_, peers)| !peers.is_empty())
                .collect();
            self.anti_entropy.held = Some((epoch, Arc::new(held)));
        }
        let held = Arc::clone(&self.anti_entropy.held.as_ref()?.1);
        let peers_each = held.iter().map(|(_, peers)| peers.len()).max()?;
        let pairs = (held.len() * peers_each) as u64;
        for _ in 0..pairs {
            let k = self.anti_entropy.cursor % pairs;
            self.anti_entropy.cursor = (self.anti_entropy.cursor + 1) % pairs;
            let (partition, peers) = &held[(k % held.len() as u64) as usize];
            let peer = peers[((k / held.len() as u64) as usize) % peers.len()];
            if !suspects.contains(&peer) {
                return Some((*partition, peer));
            }
        }
        None
    }

    /// Another replica asks about this node's tree of `partition`.
    pub(super) fn on_tree_query(
        &mut self,
        from: NodeId,
        exchange: u64,
        partition: PartitionId,
        request: &Request,
        out: &mut Vec<Effect>,
    ) {
        let response = if self.keeps_trees() && self.takes_part_in(partition) {
            answer(self.anti_entropy.trees.entry(partition).or_default(), request)
        } else {
            None
        };
        out.push(Effect::Send {
            to: from,
            message: Message::TreeReply {
                exchange,
                partition,
                response,
            },
        });
    }

    /// The peer's answer in the exchange this node runs.
    pub(super) fn on_tree_reply(
        &mut self,
        now_ms: u64,
        from: NodeId,
        exchange: u64,
        response: Option<Response>,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        let Some(mut running) = self.anti_entropy.running.take() else {
            return;
        };
        if running.id != exchange || running.peer != from {
            self.anti_entropy.running = Some(running);
            return;
        }
        let tree = self.anti_entropy.trees.entry(running.partition).or_default();
        let next = match (&mut running.exchange, response) {
            (None, Some(Response::Root(root))) => {
                let (started, next) = Exchange::start(tree, root, EXCHANGE_DIFFERENCES_MAX);
                running.exchange = Some(started);
                Ok(next)
            }
            (Some(exchange), Some(response)) => exchange.step(tree, &response).map_err(|error| error.to_string()),
            (_, None) => Err("the peer does not replicate the partition".to_string()),
            (None, Some(_)) => Err("the peer did not answer with its root".to_string()),
        };
        match next {
            Ok(Next::Ask(request)) => {
                out.push(Effect::Send {
                    to: from,
                    message: Message::TreeQuery {
                        exchange,
                        partition: running.partition,
                        request,
                    },
                });
                self.anti_entropy.running = Some(running);
            }
            Ok(Next::Done(differences)) => {
                self.stats.exchanges += 1;
                self.stats.exchange_bytes += running.exchange.as_ref().map_or(16, Exchange::bytes);
                self.stats.exchange_differences += differences.len() as u64;
                if differences.is_empty() {
                    self.note_agreement(running.partition, from, running.started_ms);
                    if self.anti_entropy.repairing.remove(&running.partition) {
                        out.push(Effect::PartitionRepaired {
                            partition: running.partition,
                        });
                    }
                } else if self.anti_entropy.repairing.contains(&running.partition) {
                    self.anti_entropy.recheck.insert(running.partition);
                }
                if differences.len() >= EXCHANGE_DIFFERENCES_MAX {
                    self.anti_entropy.urgent.insert(running.partition);
                }
                self.repair(from, &differences, store, out);
                self.membership_exchanged(running.partition, from, out);
                if !self.anti_entropy.urgent.is_empty() || self.membership_exchanges_owed() {
                    self.start_exchange(now_ms, out);
                }
            }
            Err(reason) => {
                log::warn!("anti-entropy with {from} on {} given up: {reason}", running.partition);
                self.stats.exchanges_abandoned += 1;
            }
        }
    }

    /// Sends the peer this node's set of every differing key, to merge and
    /// answer with the merge.
    fn repair(&mut self, peer: NodeId, differences: &[Difference], store: &dyn Store, out: &mut Vec<Effect>) {
        for difference in differences {
            if difference.local.is_none() && self.repeat_reap(peer, &difference.key, difference.remote, store, out) {
                continue;
            }
            let set = match self.load(store, &difference.key) {
                Ok(set) => set,
                Err(error) => {
                    // Not offered: the peer's answer still repairs this side.
                    log::warn!("anti-entropy: a differing key is unreadable here: {error}");
                    SiblingSet::new()
                }
            };
            out.push(Effect::Send {
                to: peer,
                message: Message::Repair {
                    key: difference.key.clone(),
                    set,
                    back: true,
                },
            });
        }
    }

    /// A replica's set of a key the two hold differently: merge it, and
    /// answer with the merge when asked and it differs from what came.
    pub(super) fn on_repair(
        &mut self,
        from: NodeId,
        key: Vec<u8>,
        set: &SiblingSet,
        back: bool,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        let partition = self.ring.partition_of(&key);
        if !self.takes_part_in(partition) {
            log::warn!("anti-entropy: {from} sent a key of {partition}, which this node does not replicate");
            return;
        }
        if !set.is_empty() && self.repeat_reap(from, &key, Some(entry_hash(&key, set)), store, out) {
            return;
        }
        match self.merge_local(store, key.clone(), set, Continuation::Nothing, out) {
            Ok(changed) => self.stats.entropy_repairs += u64::from(changed),
            Err(error) => {
                log::warn!("anti-entropy: cannot merge a repair from {from}: {error}");
                return;
            }
        }
        if !back {
            return;
        }
        if let Ok(merged) = self.load(store, &key) {
            if merged != *set {
                out.push(Effect::Send {
                    to: from,
                    message: Message::Repair {
                        key,
                        set: merged,
                        back: false,
                    },
                });
            }
        }
    }
}
