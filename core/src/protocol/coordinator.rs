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
