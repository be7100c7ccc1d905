//! Failure detection (Dynamo §4.8.3, local and timeout-based): a peer that
//! leaves a request unanswered for `replica_timeout_ms` is suspected, new
//! requests skip it, and it is probed with pings at intervals that double
//! up to `probe_interval_max_ms` until any message from it proves it alive.
//! Probes also keep running for the owners of hints this node holds, so a
//! handoff starts as soon as the owner is back.

use std::collections::{BTreeMap, BTreeSet};

use super::node::Node;
use super::types::{Effect, Message, Timer};
use crate::ids::NodeId;

/// Who this node suspects, and which probes are armed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct FailureDetector {
    /// Suspected peers and their current probe interval.
    pub(super) suspects: BTreeMap<NodeId, u64>,
    /// Peers with a probe timer armed (at most one each).
    probing: BTreeSet<NodeId>,
}

impl FailureDetector {
    /// Whether `node` is suspected.
    pub(super) fn suspects(&self, node: NodeId) -> bool {
        self.suspects.contains_key(&node)
    }
}

impl Node {
    /// Suspects `node` (not itself) and starts probing it.
    pub(super) fn suspect(&mut self, node: NodeId, now_ms: u64, out: &mut Vec<Effect>) {
        if node == self.id || self.failures.suspects(node) {
            return;
        }
        self.failures.suspects.insert(node, self.settings.probe_interval_ms);
        self.arm_probe(node, now_ms, self.settings.probe_interval_ms, out);
    }

    /// Arms a probe of `node` in `after_ms`, unless one is armed.
    pub(super) fn arm_probe(&mut self, node: NodeId, now_ms: u64, after_ms: u64, out: &mut Vec<Effect>) {
        if self.failures.probing.insert(node) {
            out.push(Effect::SetTimer {
                timer: Timer::Probe(node),
                at_ms: now_ms + after_ms,
            });
        }
    }

    /// A message from `node` proves it alive: stop suspecting it and hand
    /// off the hints held for it.
    pub(super) fn alive(&mut self, node: NodeId, out: &mut Vec<Effect>) {
        self.failures.suspects.remove(&node);
        self.hand_off_to(node, out);
    }

    /// A probe timer fired: ping the peer again (if it is still suspected
    /// or owed hints) and arm the next probe, backing off.
    pub(super) fn on_probe_timer(&mut self, node: NodeId, now_ms: u64, out: &mut Vec<Effect>) {
        self.failures.probing.remove(&node);
        self.expire_hints_for(node, now_ms, out);
        if !self.failures.suspects(node) && !self.holds_hints_for(node) {
            return;
        }
        // A handoff that got no answer is sent again on the next sign of
        // life.
        self.forget_unanswered_handoffs(node);
        out.push(Effect::Send {
            to: node,
            message: Message::Ping,
        });
        let interval = match self.failures.suspects.get_mut(&node) {
            Some(interval) => {
                let current = *interval;
                *interval = (current * 2).min(self.settings.probe_interval_max_ms);
                current
            }
            None => self.settings.probe_interval_ms,
        };
        self.arm_probe(node, now_ms, interval, out);
    }
}
