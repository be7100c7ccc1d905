//! [`Node`]: one node's protocol state machine (see the module doc): its
//! state, its inputs (`handle_*`) and the helpers every concern shares.
//! Each concern's handlers live in a file of their own.

use std::collections::BTreeSet;

use super::anti_entropy::AntiEntropy;
use super::coordinator::Rounds;
use super::failure::FailureDetector;
use super::handoff::Hints;
use super::membership::Membership;
use super::persistence::Persistence;
use super::reaping::Reaping;
use super::replica::ReplicaWrite;
use super::stats::NodeStats;
use super::types::{
    ClientError, ClientId, ClientReply, ClientRequest, Effect, Message, Origin, RequestId, Settings, Store, Timer,
};
use crate::ids::NodeId;
use crate::ring::Ring;
use crate::version::{Actor, SiblingSet};

/// Forwarded request ids remembered per forwarding node, for dropping
/// duplicates. A duplicate older than that many newer forwards is taken
/// again; the network would have to hold it back that long.
pub const FORWARDS_REMEMBERED: usize = 1_024;

/// Request numbers a node may take per millisecond of wall time since it
/// started before they could overlap its next incarnation's.
const REQUESTS_PER_MS: u64 = 1 << 20;

/// Dot counters a node's writes of one key may take per millisecond of
/// wall time before the floor ([`Node::dot_floor`]) stops rising above them.
const DOT_SLOTS_PER_MS: u64 = 1_000;

/// One node's protocol state. `Clone + Hash + Eq + Debug`, with ordered
/// maps only, so that the stateright model can explore it. Equality and
/// hashing leave out the counters in [`NodeStats`]: they observe the
/// protocol without steering it, and two nodes that differ only in them
/// behave alike (keeping them would multiply the model's states).
///
/// Call order: [`Node::start`] once, then any `handle_*` in any order;
/// every call appends the [`Effect`]s the driver must carry out, in order.
#[derive(Clone, Debug)]
pub struct Node {
    /// This node.
    pub(super) id: NodeId,
    /// The incarnation it writes as: a fresh one per data directory, so
    /// counters are never reissued after data loss.
    pub(super) actor: Actor,
    /// The assignment it routes by.
    pub(super) ring: Ring,
    /// N, R, W, versioning, timeouts.
    pub(super) settings: Settings,
    /// The last request number issued here.
    next_request: u64,
    /// Wall-clock milliseconds (since the Unix epoch) at the driver's time
    /// zero: version timestamps are `wall_origin_ms + now_ms`, so they
    /// order entries across restarts and nodes (truncation drops the
    /// oldest), while timers keep the driver's monotonic `now_ms`.
    wall_origin_ms: u64,
    /// The `now_ms` of the latest input (for what completes without one:
    /// a persist). Left out of equality and hashing, as time is.
    pub(super) now_ms: u64,
    /// Gets, puts and forwards in flight.
    pub(super) rounds: Rounds,
    /// Writes in flight to local storage, and what waits on them.
    pub(super) persistence: Persistence,
    /// Hinted data held for other nodes.
    pub(super) hints: Hints,
    /// Suspected peers and probes.
    pub(super) failures: FailureDetector,
    /// Hash trees and the exchange in flight.
    pub(super) anti_entropy: AntiEntropy,
    /// Tombstones waiting to be reaped, and reaps not yet answered.
    pub(super) reaping: Reaping,
    /// A pending membership change and this node's part in it.
    pub(super) membership: Membership,
    /// Counters (not part of the protocol state).
    pub(super) stats: NodeStats,
}

impl Node {
    /// Everything but the counters, for equality and hashing.
    #[allow(clippy::type_complexity)]
    fn protocol_state(
        &self,
    ) -> (
        (NodeId, Actor, &Ring, &Settings, u64, u64),
        (
            &Rounds,
            &Persistence,
            &Hints,
            &FailureDetector,
            &AntiEntropy,
            &Reaping,
            &Membership,
        ),
    ) {
        (
            (
                self.id,
                self.actor,
                &self.ring,
                &self.settings,
                self.next_request,
                self.wall_origin_ms,
            ),
            (
                &self.rounds,
                &self.persistence,
                &self.hints,
                &self.failures,
                &self.anti_entropy,
                &self.reaping,
                &self.membership,
            ),
        )
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Self) -> bool {
        self.protocol_state() == other.protocol_state()
    }
}

impl Eq for Node {}

impl std::hash::Hash for Node {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.protocol_state().hash(state);
    }
}

impl Node {
    /// A node `id` of `ring`, issuing versions as `actor` (its incarnation),
    /// holding the hints it persisted before (`owner, key, set`).
    pub fn new(
        id: NodeId,
        actor: Actor,
        ring: Ring,
        settings: Settings,
        hints: Vec<(NodeId, Vec<u8>, SiblingSet)>,
    ) -> Node {
        Node {
            id,
            actor,
            ring,
            settings,
            next_request: 0,
            wall_origin_ms: 0,
            rounds: Rounds::default(),
            persistence: Persistence::default(),
            hints: Hints::recovered(hints),
            failures: FailureDetector::default(),
            anti_entropy: AntiEntropy::default(),
            reaping: Reaping::default(),
            membership: Membership::default(),
            now_ms: 0,
            stats: NodeStats::default(),
        }
    }

    /// Arms what a starting node needs: probes of the owners of the hints
    /// it holds, the anti-entropy tick and gossip, and resumes the
    /// partitions it gains in a pending membership change. Call once, before any other
    /// input.
    pub fn start(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        self.now_ms = now_ms;
        self.start_anti_entropy(now_ms, out);
        self.start_membership(now_ms, out);
        let owners: BTreeSet<NodeId> = self.hints.held.keys().map(|(owner, _)| *owner).collect();
        for owner in owners {
            self.arm_probe(owner, now_ms, self.settings.probe_interval_ms, out);
        }
    }

    /// Anchors version timestamps to the wall clock: `origin_ms` is the
    /// wall-clock time (ms since the Unix epoch) at the driver's `now_ms`
    /// zero. Without it (the model, simulations) timestamps are `now_ms`.
    #[must_use]
    pub fn with_wall_clock(mut self, origin_ms: u64) -> Node {
        self.wall_origin_ms = origin_ms;
        // Request numbers go on rising across restarts: peers remember the
        // forwards they took by (node, number) to refuse duplicates, and a
        // node that counted from 1 again after a restart had its forwards
        // dropped as duplicates of the last incarnation's (found by a soak:
        // a restarted node failed a third of its reads for minutes). A
        // millisecond of wall time per 2^20 requests leaves room for any
        // rate this node can reach.
        self.next_request = self.next_request.max(origin_ms.saturating_mul(REQUESTS_PER_MS));
        self
    }

    /// The least counter a new dot of this node may take at `now_ms`: the
    /// wall clock in microseconds' worth of slots (1,000 per ms), so a dot
    /// made after a key's tombstone was reaped here is newer than every dot
    /// this actor made before it (see [`SiblingSet::put_above`]), unless the
    /// actor wrote one key more than 1,000 times a millisecond for longer
    /// than the tombstone grace. Zero without a wall clock (the model).
    pub(super) fn dot_floor(&self, now_ms: u64) -> u64 {
        if self.wall_origin_ms == 0 {
            0
        } else {
            self.wall_ms(now_ms).saturating_mul(DOT_SLOTS_PER_MS)
        }
    }

    /// The wall-clock time at the driver's `now_ms`.
    pub(super) fn wall_ms(&self, now_ms: u64) -> u64 {
        self.wall_origin_ms.saturating_add(now_ms)
    }

    /// This node.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The incarnation it writes as.
    pub fn actor(&self) -> Actor {
        self.actor
    }

    /// The ring it routes by.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }

    /// The protocol settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Its counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Peers it currently suspects.
    pub fn suspects(&self) -> Vec<NodeId> {
        self.failures.suspects.keys().copied().collect()
    }

    /// Hints held for other nodes.
    pub fn hints_pending(&self) -> usize {
        self.hints.held.len()
    }

    /// Requests this node is coordinating or forwarding.
    pub fn requests_in_flight(&self) -> usize {
        self.rounds.len()
    }

    /// The hints held, as `(owner, key, set)`.
    pub fn hints(&self) -> impl Iterator<Item = (NodeId, &[u8], &SiblingSet)> {
        self.hints
            .held
            .iter()
            .map(|((owner, key), set)| (*owner, key.as_slice(), set))
    }

    /// A fresh request id of this node (see [`Node::with_wall_clock`] for
    /// why they start where they do).
    pub(super) fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId {
            node: self.id,
            sequence: self.next_request,
        }
    }

    /// The first N nodes of `key`'s walk.
    pub(super) fn preference_list(&self, key: &[u8]) -> Vec<NodeId> {
        self.ring.preference_list(self.ring.partition_of(key), self.settings.n)
    }

    /// Answers a client of this node, or the node that forwarded to it.
    pub(super) fn reply(&mut self, origin: Origin, reply: ClientReply, out: &mut Vec<Effect>) {
        if let ClientReply::Failed(ClientError::Timeout { .. }) = reply {
            self.stats.timeouts += 1;
        }
        match origin {
            Origin::Client(client) => out.push(Effect::Reply { client, reply }),
            Origin::Forwarded { from, request } => out.push(Effect::Send {
                to: from,
                message: Message::ForwardReply { request, reply },
            }),
        }
    }

    /// A client request arrives at this node.
    pub fn handle_client(
        &mut self,
        now_ms: u64,
        client: ClientId,
        request: ClientRequest,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        self.now_ms = now_ms;
        self.start_request(now_ms, Origin::Client(client), request, store, out);
    }

    /// A message from a peer. Any message proves its sender alive.
    pub fn handle_message(
        &mut self,
        now_ms: u64,
        from: NodeId,
        message: Message,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        self.now_ms = now_ms;
        self.alive(from, out);
        match message {
            Message::Read { request, key } => self.on_read(from, request, &key, store, out),
            Message::ReadReply { request, set } => self.on_read_reply(from, request, set, store, out),
            Message::Write {
                request,
                key,
                set,
                hint,
            } => {
                let write = ReplicaWrite {
                    from,
                    request,
                    key,
                    set,
                    hint,
                };
                self.on_write(now_ms, write, store, out);
            }
            Message::WriteAck { request } => self.on_write_ack(from, request, out),
            Message::Forward { request, op } => self.on_forward(now_ms, from, request, op, store, out),
            Message::ForwardReply { request, reply } => self.on_forward_reply(request, reply, out),
            Message::Handoff { key, set } => self.on_handoff(from, key, &set, store, out),
            Message::HandoffAck { key } => self.on_handoff_ack(from, key, out),
            Message::Ping => out.push(Effect::Send {
                to: from,
                message: Message::Pong,
            }),
            Message::Pong => {}
            Message::TreeQuery {
                exchange,
                partition,
                request,
            } => self.on_tree_query(from, exchange, partition, &request, out),
            Message::TreeReply { exchange, response, .. } => {
                self.on_tree_reply(now_ms, from, exchange, response, store, out)
            }
            Message::Repair { key, set, back } => self.on_repair(from, key, &set, back, store, out),
            Message::Reap { key, hash } => self.on_reap(from, key, hash, store, out),
            Message::Reaped { key } => self.on_reaped(from, &key),
            Message::Gossip { ring, next, ready } => self.on_gossip(from, ring, next, ready, out),
            Message::Join => self.on_join(from, out),
        }
    }

    /// A timer armed with [`Effect::SetTimer`] fired.
    pub fn handle_timer(&mut self, now_ms: u64, timer: Timer, store: &dyn Store, out: &mut Vec<Effect>) {
        self.now_ms = now_ms;
        match timer {
            Timer::Request(id) => self.on_request_deadline(now_ms, id, store, out),
            Timer::Replicas(id) => self.replace_silent_replicas(now_ms, id, out),
            Timer::Probe(node) => self.on_probe_timer(node, now_ms, out),
            Timer::AntiEntropy => self.on_anti_entropy_timer(now_ms, store, out),
            Timer::Gossip => self.on_gossip_timer(now_ms, out),
        }
    }
}
