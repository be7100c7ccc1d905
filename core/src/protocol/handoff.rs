//! Sloppy quorum's second half (Dynamo §4.6): hinted writes kept for a
//! preference node that was unreachable, handed off to it once it answers,
//! and dropped only when it has made them durable and nothing was added to
//! the hint since.

use std::collections::BTreeMap;

use super::node::Node;
use super::persistence::Continuation;
use super::types::{Effect, Message, RequestId};
use crate::ids::NodeId;
use crate::limits::HINTS_MAX;
use crate::version::SiblingSet;

/// Hinted data held for other nodes.
///
/// Equality and hashing leave out `since` (as the node's do its counters):
/// hint ages only matter past `hint_age_max_ms`, hours, far beyond any
/// model run, and keeping them would split states that behave alike.
#[derive(Clone, Debug, Default)]
pub(super) struct Hints {
    /// (owner, key) → the hinted set.
    pub(super) held: BTreeMap<(NodeId, Vec<u8>), SiblingSet>,
    /// Hints sent in a handoff and not yet acknowledged, as sent.
    handed: BTreeMap<(NodeId, Vec<u8>), SiblingSet>,
    /// When each hint was first held (the driver's `now_ms`; hints
    /// recovered at a restart count from the start).
    since: BTreeMap<(NodeId, Vec<u8>), u64>,
}

impl PartialEq for Hints {
    fn eq(&self, other: &Self) -> bool {
        (&self.held, &self.handed) == (&other.held, &other.handed)
    }
}

impl Eq for Hints {}

impl std::hash::Hash for Hints {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.held, &self.handed).hash(state);
    }
}

impl Hints {
    /// Hints persisted before a restart.
    pub(super) fn recovered(hints: Vec<(NodeId, Vec<u8>, SiblingSet)>) -> Hints {
        let held: BTreeMap<(NodeId, Vec<u8>), SiblingSet> =
            hints.into_iter().map(|(owner, key, set)| ((owner, key), set)).collect();
        Hints {
            since: held.keys().map(|slot| (slot.clone(), 0)).collect(),
            held,
            handed: BTreeMap::new(),
        }
    }
}

impl Node {
    /// Whether this node holds a hint for `owner`.
    pub(super) fn holds_hints_for(&self, owner: NodeId) -> bool {
        self.hints
            .held
            .range((owner, Vec::new())..)
            .next()
            .is_some_and(|((held_for, _), _)| *held_for == owner)
    }

    /// Sends `owner` every hint held for it that is not already on its way.
    pub(super) fn hand_off_to(&mut self, owner: NodeId, out: &mut Vec<Effect>) {
        let due: Vec<(Vec<u8>, SiblingSet)> = self
            .hints
            .held
            .range((owner, Vec::new())..)
            .take_while(|((held_for, _), _)| *held_for == owner)
            .filter(|(slot, set)| self.hints.handed.get(*slot) != Some(*set))
            .map(|((_, key), set)| (key.clone(), set.clone()))
            .collect();
        for (key, set) in due {
            self.hints.handed.insert((owner, key.clone()), set.clone());
            out.push(Effect::Send {
                to: owner,
                message: Message::Handoff { key, set },
            });
        }
    }

    /// Drops the hints for `owner` held longer than `hint_age_max_ms`: an
    /// owner away that long is rebuilt from the other replicas (read repair,
    /// anti-entropy), and a hint must not be probed for ever.
    pub(super) fn expire_hints_for(&mut self, owner: NodeId, now_ms: u64, out: &mut Vec<Effect>) {
        let age_max = self.settings.hint_age_max_ms;
        let expired: Vec<(NodeId, Vec<u8>)> = self
            .hints
            .since
            .range((owner, Vec::new())..)
            .take_while(|((held_for, _), _)| *held_for == owner)
            .filter(|(_, since)| now_ms.saturating_sub(**since) > age_max)
            .map(|(slot, _)| slot.clone())
            .collect();
        if !expired.is_empty() {
            log::warn!("dropping {} hints for {owner}, held over {age_max} ms", expired.len());
        }
        for slot in expired {
            self.hints.held.remove(&slot);
            self.hints.handed.remove(&slot);
            self.hints.since.remove(&slot);
            out.push(Effect::DropHint {
                owner: slot.0,
                key: slot.1,
            });
        }
    }

    /// Handoffs to `owner` that got no answer are sent again on its next
    /// sign of life.
    pub(super) fn forget_unanswered_handoffs(&mut self, owner: NodeId) {
        self.hints.handed.retain(|(held_for, _), _| *held_for != owner);
    }

    /// A write that stands in for `owner`: merged into the hint, persisted,
    /// acknowledged once durable; the owner is probed until it is back.
    pub(super) fn on_hinted_write(&mut self, now_ms: u64, hinted: HintedWrite, out: &mut Vec<Effect>) {
        let HintedWrite {
            from,
            request,
            owner,
            key,
            set,
        } = hinted;
        // A hint is a promise to hand data to a member: one for a node that
        // is not a member would be probed for ever; past the cap, a hint
        // is refused (no acknowledgement: the coordinator looks elsewhere).
        if !self.ring.owners().contains(&owner) {
            log::warn!("refusing a hinted write from {from} for {owner}, which is not a member");
            return;
        }
        if self.hints.held.len() >= HINTS_MAX && !self.hints.held.contains_key(&(owner, key.clone())) {
            log::warn!("refusing a hinted write from {from} for {owner}: {HINTS_MAX} hints are held already");
            return;
        }
        self.stats.hinted_writes += 1;
        let slot = (owner, key);
        let mut held = self.hints.held.get(&slot).cloned().unwrap_or_default();
        held.merge(&set, self.settings.versioning);
        self.hints.held.insert(slot.clone(), held.clone());
        self.hints.since.entry(slot.clone()).or_insert(now_ms);
        let token = self.persistence.token(Continuation::AckWrite { to: from, request });
        out.push(Effect::PersistHint {
            token,
            owner,
            key: slot.1,
            set: held,
        });
        self.arm_probe(owner, now_ms, self.settings.probe_interval_ms, out);
    }

    /// The owner made a handed-off hint durable: drop the hint, unless
    /// something was added to it since it was sent.
    pub(super) fn on_handoff_ack(&mut self, from: NodeId, key: Vec<u8>, out: &mut Vec<Effect>) {
        let slot = (from, key);
        if let Some(sent) = self.hints.handed.remove(&slot) {
            if self.hints.held.get(&slot) == Some(&sent) {
                self.hints.held.remove(&slot);
                self.hints.since.remove(&slot);
                self.stats.handoffs += 1;
                out.push(Effect::DropHint {
                    owner: slot.0,
                    key: slot.1,
                });
            }
        }
    }
}

/// A replica write that carries a hint: its parts, as they travel.
pub(super) struct HintedWrite {
    /// The coordinator.
    pub(super) from: NodeId,
    /// The coordinator's request.
    pub(super) request: RequestId,
    /// The preference node the write stands in for.
    pub(super) owner: NodeId,
    /// The key.
    pub(super) key: Vec<u8>,
    /// The coordinator's set.
    pub(super) set: SiblingSet,
}

#[cfg(test)]
mod tests {
    use super::super::types::{Effect, Message, RequestId, Settings, Store, StoreError};
    use super::super::Node;
    use crate::ids::NodeId;
    use crate::ring::Ring;
    use crate::version::{Actor, SiblingSet, VectorClock, Versioning};

    struct Empty;

    impl Store for Empty {
        fn load(&self, _key: &[u8]) -> Result<SiblingSet, StoreError> {
            Ok(SiblingSet::new())
        }
    }

    fn write(hint: NodeId) -> Message {
        let actor = Actor {
            node: NodeId(1),
            incarnation: 1,
        };
        let mut set = SiblingSet::new();
        set.put(actor, &VectorClock::new(), Some(b"v".to_vec()), 1, Versioning::Dvv, 10)
            .unwrap();
        Message::Write {
            request: RequestId {
                node: NodeId(1),
                sequence: 1,
            },
            key: b"k".to_vec(),
            set,
            hint: Some(hint),
        }
    }

    #[test]
    fn a_hint_for_a_node_that_is_not_a_member_is_refused() {
        let ring = Ring::new(8, &[NodeId(0), NodeId(1), NodeId(2)]).unwrap();
        let actor = Actor {
            node: NodeId(0),
            incarnation: 7,
        };
        let mut node = Node::new(NodeId(0), actor, ring, Settings::default(), Vec::new());
        let mut out = Vec::new();
        node.handle_message(0, NodeId(1), write(NodeId(99)), &Empty, &mut out);
        assert!(
            !out.iter()
                .any(|effect| matches!(effect, Effect::PersistHint { .. } | Effect::SetTimer { .. })),
            "{out:?}"
        );
        assert_eq!(node.hints_pending(), 0);
        // A member's hint is kept (and its owner probed).
        node.handle_message(0, NodeId(1), write(NodeId(2)), &Empty, &mut out);
        assert!(out
            .iter()
            .any(|effect| matches!(effect, Effect::PersistHint { owner: NodeId(2), .. })));
        assert_eq!(node.hints_pending(), 1);
    }

    #[test]
    fn a_hint_held_past_its_age_limit_is_dropped_at_the_next_probe() {
        use super::super::types::Timer;
        let ring = Ring::new(8, &[NodeId(0), NodeId(1), NodeId(2)]).unwrap();
        let actor = Actor {
            node: NodeId(0),
            incarnation: 7,
        };
        let settings = Settings::default();
        let age_max = settings.hint_age_max_ms;
        let mut node = Node::new(NodeId(0), actor, ring, settings, Vec::new());
        let mut out = Vec::new();
        node.handle_message(0, NodeId(1), write(NodeId(2)), &Empty, &mut out);
        assert_eq!(node.hints_pending(), 1);
        out.clear();
        node.handle_timer(age_max / 2, Timer::Probe(NodeId(2)), &Empty, &mut out);
        assert_eq!(node.hints_pending(), 1, "not yet expired");
        out.clear();
        node.handle_timer(age_max + 1, Timer::Probe(NodeId(2)), &Empty, &mut out);
        assert_eq!(node.hints_pending(), 0);
        assert!(
            out.iter()
                .any(|effect| matches!(effect, Effect::DropHint { owner: NodeId(2), .. })),
            "{out:?}"
        );
    }
}
