//! Coordination (Dynamo §4.5): admitting a client's request, forwarding it
//! when this node is not in the key's preference list, and the deadlines
//! every round runs under. The rounds themselves are in `get.rs` and
//! `put.rs`.

use std::collections::{BTreeMap, BTreeSet};

use super::get::GetState;
use super::node::{Node, FORWARDS_REMEMBERED};
use super::put::PutState;
use super::types::{ClientError, ClientReply, ClientRequest, Effect, Message, Origin, RequestId, Store, Timer};
use crate::ids::NodeId;

/// A forwarded request waiting for the coordinator's answer.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct ForwardState {
    origin: Origin,
    to: NodeId,
}

/// Every request this node is coordinating or forwarding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Rounds {
    pub(super) gets: BTreeMap<RequestId, GetState>,
    pub(super) puts: BTreeMap<RequestId, PutState>,
    forwards: BTreeMap<RequestId, ForwardState>,
    /// Forwarded requests already taken, per forwarding node (the newest
    /// [`FORWARDS_REMEMBERED`]): a duplicated `Forward` must not coordinate
    /// the same put twice (two versions of one write).
    forwards_seen: BTreeMap<NodeId, BTreeSet<u64>>,
}

impl Rounds {
    /// Requests in flight.
    pub(super) fn len(&self) -> usize {
        self.gets.len() + self.puts.len() + self.forwards.len()
    }
}

/// An admitted request's parts, as they travel to its round.
pub(super) struct Round {
    /// Where the answer goes.
    pub(super) origin: Origin,
    /// The key.
    pub(super) key: Vec<u8>,
    /// R or W for this request.
    pub(super) quorum: usize,
    /// The key's preference list (this node among them).
    pub(super) preference: Vec<NodeId>,
}

impl Node {
    /// Admits a request from a client or a forwarding node: checks its
    /// quorum, forwards it if this node is not a preference node, and
    /// otherwise starts its round.
    pub(super) fn start_request(
        &mut self,
        now_ms: u64,
        origin: Origin,
        request: ClientRequest,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        let n = self.settings.n;
        let (quorum, what) = match &request {
            ClientRequest::Get { r, .. } => (r.unwrap_or(self.settings.r), "r"),
            ClientRequest::Put { w, .. } => (w.unwrap_or(self.settings.w), "w"),
        };
        if quorum == 0 || quorum > n {
            let reason = format!("{what} = {quorum} is out of range: it must be between 1 and n = {n}");
            self.reply(origin, ClientReply::Failed(ClientError::BadRequest(reason)), out);
            return;
        }
        let preference = self.preference_list(request.key());
        if !preference.contains(&self.id) {
            self.forward(now_ms, origin, request, &preference, out);
            return;
        }
        match request {
            ClientRequest::Get { key, .. } => {
                let round = Round {
                    origin,
                    key,
                    quorum,
                    preference,
                };
                self.coordinate_get(now_ms, round, store, out);
            }
            ClientRequest::Put {
                key, context, value, ..
            } => {
                let round = Round {
                    origin,
                    key,
                    quorum,
                    preference,
                };
                self.coordinate_put(now_ms, round, &context, value, store, out);
            }
        }
    }

    /// Sends the request to the first preference node not suspected.
    fn forward(
        &mut self,
        now_ms: u64,
        origin: Origin,
        request: ClientRequest,
        preference: &[NodeId],
        out: &mut Vec<Effect>,
    ) {
        let to = preference
            .iter()
            .copied()
            .find(|node| !self.failures.suspects(*node))
            .unwrap_or(preference[0]);
        let id = self.new_request();
        self.stats.forwarded += 1;
        self.rounds.forwards.insert(id, ForwardState { origin, to });
        out.push(Effect::Send {
            to,
            message: Message::Forward {
                request: id,
                op: request,
            },
        });
        out.push(Effect::SetTimer {
            timer: Timer::Request(id),
            at_ms: now_ms + self.settings.request_timeout_ms,
        });
    }

    /// Another node forwarded a client's request: coordinate it, once.
    pub(super) fn on_forward(
        &mut self,
        now_ms: u64,
        from: NodeId,
        request: RequestId,
        op: ClientRequest,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        let seen = self.rounds.forwards_seen.entry(from).or_default();
        let oldest = seen.first().copied();
        let duplicate = seen.contains(&request.sequence)
            || (seen.len() >= FORWARDS_REMEMBERED && oldest.is_some_and(|oldest| request.sequence < oldest));
        if duplicate {
            return;
        }
        seen.insert(request.sequence);
        if seen.len() > FORWARDS_REMEMBERED {
            seen.pop_first();
        }
        self.start_request(now_ms, Origin::Forwarded { from, request }, op, store, out);
    }

    /// The coordinator answered a request this node forwarded.
    pub(super) fn on_forward_reply(&mut self, request: RequestId, reply: ClientReply, out: &mut Vec<Effect>) {
        if let Some(forward) = self.rounds.forwards.remove(&request) {
            self.reply(forward.origin, reply, out);
        }
    }

    /// The deadline of a request, and the moment to look for silent replicas.
    pub(super) fn arm_request_timers(&self, id: RequestId, now_ms: u64, out: &mut Vec<Effect>) {
        out.push(Effect::SetTimer {
            timer: Timer::Request(id),
            at_ms: now_ms + self.settings.request_timeout_ms,
        });
        out.push(Effect::SetTimer {
            timer: Timer::Replicas(id),
            at_ms: now_ms + self.settings.replica_timeout_ms,
        });
    }

    /// A request's deadline passed: an unanswered round fails with a
    /// timeout; an answered get finishes (read repair with what it got).
    pub(super) fn on_request_deadline(&mut self, now_ms: u64, id: RequestId, store: &dyn Store, out: &mut Vec<Effect>) {
        self.get_deadline(id, store, out);
        self.put_deadline(id, out);
        if let Some(forward) = self.rounds.forwards.remove(&id) {
            self.suspect(forward.to, now_ms, out);
            let reply = ClientReply::Failed(ClientError::Timeout { got: 0, needed: 1 });
            self.reply(forward.origin, reply, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::types::{ClientId, ClientRequest, Effect, Message, Settings, Store, StoreError};
    use super::super::Node;
    use crate::ids::NodeId;
    use crate::ring::Ring;
    use crate::version::{Actor, SiblingSet, VectorClock, Versioning};

    /// Node 0 started at `wall_ms` (a new incarnation each time).
    fn forwarder(ring: &Ring, settings: &Settings, wall_ms: u64) -> Node {
        let actor = Actor {
            node: NodeId(0),
            incarnation: wall_ms,
        };
        Node::new(NodeId(0), actor, ring.clone(), settings.clone(), Vec::new()).with_wall_clock(wall_ms)
    }

    /// Node 0 takes a read of `key` from a client and forwards it.
    fn forward_of(node: &mut Node, key: &[u8]) -> Message {
        let mut out = Vec::new();
        let get = ClientRequest::Get {
            key: key.to_vec(),
            r: None,
        };
        node.handle_client(0, ClientId(1), get, &One(SiblingSet::new()), &mut out);
        out.into_iter()
            .find_map(|effect| match effect {
                Effect::Send {
                    to: NodeId(1),
                    message: message @ Message::Forward { .. },
                } => Some(message),
                _ => None,
            })
            .expect("a read of a key node 1 owns is forwarded to it")
    }

    fn answered(out: &[Effect]) -> bool {
        out.iter().any(|effect| {
            matches!(
                effect,
                Effect::Send {
                    to: NodeId(0),
                    message: Message::ForwardReply { .. }
                }
            )
        })
    }

    /// A store holding one key's set (or nothing).
    struct One(SiblingSet);

    impl Store for One {
        fn load(&self, _key: &[u8]) -> Result<SiblingSet, StoreError> {
            Ok(self.0.clone())
        }
    }

    /// The set a lone node persists for a client's put of `value` (a
    /// delete with `None`) with `context`, at `now_ms`.
    fn persisted(
        node: &mut Node,
        now_ms: u64,
        held: &SiblingSet,
        context: VectorClock,
        value: Option<&str>,
    ) -> SiblingSet {
        let mut out = Vec::new();
        let put = ClientRequest::Put {
            key: b"cart".to_vec(),
            context,
            value: value.map(|value| value.as_bytes().to_vec()),
            w: None,
        };
        node.handle_client(now_ms, ClientId(1), put, &One(held.clone()), &mut out);
        let (token, set) = out
            .into_iter()
            .find_map(|effect| match effect {
                Effect::Persist { token, set, .. } => Some((token, set)),
                _ => None,
            })
            .expect("a put persists its set");
        // Durable: the node holds nothing of it in memory any more.
        node.handle_persisted(token, Ok(()), &mut Vec::new());
        set
    }

    #[test]
    fn a_write_after_its_keys_tombstone_was_reaped_here_is_not_covered_by_one_held_elsewhere() {
        // One node, N = 1: it coordinates every write of the key. A cart is
        // written, then checked out (a tombstone); another replica still
        // holds that tombstone (down when the reap was sent) when this node,
        // having reaped it, takes a new write with an empty context (the
        // replicas that answered the read had reaped it too).
        let ring = Ring::new(8, &[NodeId(0)]).unwrap();
        let settings = Settings {
            n: 1,
            r: 1,
            w: 1,
            ..Settings::default()
        };
        let actor = Actor {
            node: NodeId(0),
            incarnation: 1,
        };
        let wall_ms = 1_800_000_000_000;
        let mut node = Node::new(NodeId(0), actor, ring, settings, Vec::new()).with_wall_clock(wall_ms);
        let written = persisted(&mut node, 0, &SiblingSet::new(), VectorClock::new(), Some("v1"));
        let tombstone = persisted(&mut node, 10, &written, written.context(), None);
        assert_eq!(tombstone.live_values().count(), 0);
        // 30 s later, past the grace: reaped here, so nothing is held.
        let again = persisted(&mut node, 30_000, &SiblingSet::new(), VectorClock::new(), Some("v2"));
        // Anti-entropy brings the two together: the new write must stay.
        let mut merged = tombstone.clone();
        merged.merge(&again, Versioning::Dvv);
        let live: Vec<&[u8]> = merged.live_values().collect();
        assert_eq!(
            live,
            [b"v2".as_slice()],
            "the tombstone covered the new write: {merged:?}"
        );
    }

    #[test]
    fn a_restarted_node_s_forwards_are_not_taken_for_its_last_incarnation_s() {
        let ring = Ring::new(8, &[NodeId(0), NodeId(1)]).unwrap();
        let settings = Settings {
            n: 1,
            r: 1,
            w: 1,
            ..Settings::default()
        };
        let key = (0u32..)
            .map(|index| format!("k{index}").into_bytes())
            .find(|key| ring.preference_list(ring.partition_of(key), 1) == [NodeId(1)])
            .unwrap();
        let mut owner = Node::new(
            NodeId(1),
            Actor {
                node: NodeId(1),
                incarnation: 1,
            },
            ring.clone(),
            settings.clone(),
            Vec::new(),
        );
        let mut out = Vec::new();
        let first = forward_of(&mut forwarder(&ring, &settings, 1_800_000_000_000), &key);
        owner.handle_message(0, NodeId(0), first.clone(), &One(SiblingSet::new()), &mut out);
        assert!(answered(&out), "{out:?}");
        // The same message again is a duplicate: not coordinated twice.
        out.clear();
        owner.handle_message(1, NodeId(0), first, &One(SiblingSet::new()), &mut out);
        assert!(!answered(&out), "{out:?}");
        // Node 0 restarts five seconds later and forwards a read: a new
        // request, answered.
        let again = forward_of(&mut forwarder(&ring, &settings, 1_800_000_005_000), &key);
        out.clear();
        owner.handle_message(2, NodeId(0), again, &One(SiblingSet::new()), &mut out);
        assert!(answered(&out), "the restarted node's forward was dropped: {out:?}");
    }
}
