//! Tombstone reaping: a deleted key's tombstone is removed once removing
//! it cannot bring the deleted value back.
//!
//! A tombstone must outlive every copy of what it deletes: a replica that
//! missed the delete (down, partitioned) still holds the old value, and if
//! the others forgot the tombstone first, anti-entropy or a read would copy
//! the old value back to them (Riak's bitcask#82 class of bug). So a
//! tombstone-only set is removed only when
//!
//! 1. **every replica holds it**, established by anti-entropy: the
//!    partition's first preference node (its *reaper*; only it decides) has,
//!    for each other replica, an exchange that began after the tombstone was
//!    durable here and ended with equal trees (equal trees hold equal sets
//!    of every key);
//! 2. **no hint can bring an older version back**: hints are dropped after
//!    `hint_age_max_ms` wherever they are held, and the grace period is at
//!    least that long (settings refuse less), so a hint written before the
//!    tombstone is gone by then; the reaper also holds none for the key;
//! 3. **the grace period** (`tombstone_grace_ms`) has passed since the
//!    tombstone became durable here;
//! 4. **no membership change is pending** (as this reaper knows): a node
//!    gaining the partition may hold files copied before the delete.
//!
//! The reaper then removes the key and sends [`Message::Reap`] with the
//! tombstone's entry hash to the other replicas; each removes the key if it
//! still holds exactly that set (a newer write is never removed) and
//! answers [`Message::Reaped`]. Until every replica has answered, the reaper
//! remembers the reap: an exchange or a repair that offers it the reaped
//! tombstone back is answered with the reap again instead of storing it.

use std::collections::{BTreeMap, BTreeSet};

use super::node::Node;
use super::persistence::Continuation;
use super::types::{Effect, Message, Store};
use crate::ids::{NodeId, PartitionId};
use crate::merkle::entry_hash;
use crate::version::SiblingSet;

/// Tombstones scanned per anti-entropy tick, so a partition full of them
/// never makes one tick long.
const SCANNED_PER_TICK: usize = 1_024;

/// A key's state once durable, as reaping sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Durable {
    /// Some live value.
    Live,
    /// Tombstones only.
    Tombstone,
    /// Nothing (reaped).
    Absent,
}

impl Durable {
    /// The state `set` is.
    pub(super) fn of(set: &SiblingSet) -> Durable {
        if set.is_empty() {
            Durable::Absent
        } else if set.live_values().next().is_none() {
            Durable::Tombstone
        } else {
            Durable::Live
        }
    }
}

/// What the reaper knows about the tombstones of its partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Reaping {
    /// Tombstone-only keys of partitions this node reaps, and since when
    /// (the driver's `now_ms`) each is durable here.
    since: BTreeMap<Vec<u8>, u64>,
    /// The same, oldest first.
    by_age: BTreeSet<(u64, Vec<u8>)>,
    /// (partition, replica) → when the last exchange that ended with equal
    /// trees began.
    agreed: BTreeMap<(PartitionId, NodeId), u64>,
    /// Keys reaped here whose other replicas have not all answered: the
    /// tombstone's entry hash and who has yet to answer.
    reaped: BTreeMap<Vec<u8>, (u64, BTreeSet<NodeId>)>,
}

impl Node {
    /// Whether this node reaps the tombstones of `partition` (it is the
    /// partition's first preference node).
    fn reaps(&self, partition: PartitionId) -> bool {
        partition.0 < self.ring.partition_count()
            && self.ring.preference_list(partition, self.settings.n).first() == Some(&self.id)
    }

    /// Tombstones this node waits to reap.
    pub fn tombstones_held(&self) -> usize {
        self.reaping.since.len()
    }

    /// Keys this node reaped whose other replicas have not all answered
    /// (remembered until they do).
    pub fn reaps_unanswered(&self) -> usize {
        self.reaping.reaped.len()
    }

    /// Tells the reaper which keys of its durable state are tombstones only
    /// (on open, before [`Node::start`]); they count from `now_ms`.
    pub fn with_tombstones(mut self, keys: impl IntoIterator<Item = Vec<u8>>, now_ms: u64) -> Node {
        for key in keys {
            self.note_durable(&key, Durable::Tombstone, now_ms);
        }
        self
    }

    /// `key`'s new state is durable: track it if it is a tombstone this
    /// node reaps, forget it otherwise.
    pub(super) fn note_durable(&mut self, key: &[u8], state: Durable, now_ms: u64) {
        let partition = self.ring.partition_of(key);
        if let Some(old) = self.reaping.since.remove(key) {
            self.reaping.by_age.remove(&(old, key.to_vec()));
        }
        match state {
            // A new tombstone over an old one counts from now: the replicas
            // must agree on the new set.
            Durable::Tombstone if self.reaps(partition) => {
                self.reaping.since.insert(key.to_vec(), now_ms);
                self.reaping.by_age.insert((now_ms, key.to_vec()));
            }
            Durable::Tombstone | Durable::Absent => {}
            // Written again: no reap is pending any more.
            Durable::Live => {
                self.reaping.reaped.remove(key);
            }
        }
    }

    /// An exchange with `peer` on `partition`, begun at `started_ms`, ended
    /// with equal trees.
    pub(super) fn note_agreement(&mut self, partition: PartitionId, peer: NodeId, started_ms: u64) {
        let agreed = self.reaping.agreed.entry((partition, peer)).or_insert(started_ms);
        *agreed = (*agreed).max(started_ms);
    }

    /// Reaps the tombstones whose time has come (from the anti-entropy
    /// tick).
    pub(super) fn reap_due(&mut self, now_ms: u64, store: &dyn Store, out: &mut Vec<Effect>) {
        // Not while partitions move: a gaining node may hold a copy taken
        // before the delete, which the reap would leave without the
        // tombstone that supersedes it.
        if self.change_pending() {
            return;
        }
        let grace = self.settings.tombstone_grace_ms;
        let due: Vec<(u64, Vec<u8>)> = self
            .reaping
            .by_age
            .iter()
            .take(SCANNED_PER_TICK)
            .take_while(|(since, _)| now_ms.saturating_sub(*since) >= grace)
            .cloned()
            .collect();
        if due.is_empty() {
            return;
        }
        let hinted: BTreeSet<&[u8]> = self.hints.held.keys().map(|(_, key)| key.as_slice()).collect();
        let due: Vec<(u64, Vec<u8>)> = due
            .into_iter()
            .filter(|(_, key)| !hinted.contains(key.as_slice()))
            .collect();
        for (since, key) in due {
            let partition = self.ring.partition_of(&key);
            let Some(fellows) = self.fellow_replicas(partition) else {
                continue;
            };
            let everyone_holds_it = fellows.iter().all(|fellow| {
                self.reaping
                    .agreed
                    .get(&(partition, *fellow))
                    .is_some_and(|&agreed| agreed > since)
            });
            if !everyone_holds_it {
                continue;
            }
            let Ok(set) = self.load(store, &key) else { continue };
            if set.is_empty() || set.live_values().next().is_some() {
                continue;
            }
            let hash = entry_hash(&key, &set);
            self.reaping.by_age.remove(&(since, key.clone()));
            self.reaping.since.remove(&key);
            self.stats.tombstones_reaped += 1;
            self.persist(key.clone(), SiblingSet::new(), Continuation::Nothing, out);
            for fellow in &fellows {
                out.push(Effect::Send {
                    to: *fellow,
                    message: Message::Reap { key: key.clone(), hash },
                });
            }
            self.reaping.reaped.insert(key, (hash, fellows.into_iter().collect()));
        }
    }

    /// If `key` was reaped here as the set hashing to `hash`, is absent
    /// here, and a replica offers it back, sends that replica the reap
    /// again; true when it did (the offer is then not taken).
    pub(super) fn repeat_reap(
        &mut self,
        to: NodeId,
        key: &[u8],
        hash: Option<u64>,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) -> bool {
        let Some(&(reaped, _)) = self.reaping.reaped.get(key) else {
            return false;
        };
        if hash != Some(reaped) || !self.load(store, key).is_ok_and(|set| set.is_empty()) {
            return false;
        }
        out.push(Effect::Send {
            to,
            message: Message::Reap {
                key: key.to_vec(),
                hash: reaped,
            },
        });
        true
    }

    /// The reaper removed `key` as the set hashing to `hash`: remove it
    /// too if that is still what this node holds, and answer.
    pub(super) fn on_reap(&mut self, from: NodeId, key: Vec<u8>, hash: u64, store: &dyn Store, out: &mut Vec<Effect>) {
        match self.load(store, &key) {
            Ok(set) if !set.is_empty() && entry_hash(&key, &set) == hash => {
                self.stats.tombstones_reaped += 1;
                self.persist(key.clone(), SiblingSet::new(), Continuation::Nothing, out);
            }
            // Absent already, or written since: nothing to remove.
            Ok(_) => {}
            Err(error) => {
                log::warn!("cannot reap a tombstone {from} reaped: {error}");
                return;
            }
        }
        out.push(Effect::Send {
            to: from,
            message: Message::Reaped { key },
        });
    }

    /// A replica removed a key this node reaped.
    pub(super) fn on_reaped(&mut self, from: NodeId, key: &[u8]) {
        if let Some((_, waiting)) = self.reaping.reaped.get_mut(key) {
            waiting.remove(&from);
            if waiting.is_empty() {
                self.reaping.reaped.remove(key);
            }
        }
    }
}
