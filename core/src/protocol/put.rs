//! A put's round (Dynamo §4.5–4.6): the coordinator makes the new version
//! from the client's context, persists its resulting sibling set and sends
//! the *whole set* to the other N−1 preference nodes; it succeeds at W
//! acknowledgements, its own counted once its persist is durable. With
//! sloppy quorum a suspected or silent preference node is replaced by the
//! next healthy node of the walk, which keeps the write as a hint.

use std::collections::{BTreeMap, BTreeSet};

use super::coordinator::Round;
use super::node::Node;
use super::persistence::Continuation;
use super::types::{ClientError, ClientReply, Effect, Message, Origin, RequestId, Store};
use crate::codec::printable;
use crate::ids::NodeId;
use crate::version::{SiblingSet, VectorClock};

/// A put in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct PutState {
    origin: Origin,
    key: Vec<u8>,
    w: usize,
    /// The coordinator's resulting sibling set, sent to every replica.
    set: SiblingSet,
    /// Nodes that acknowledged (the coordinator once its persist is durable).
    acked: BTreeSet<NodeId>,
    /// Nodes written to, with the preference node each stands in for.
    targets: BTreeMap<NodeId, Option<NodeId>>,
    /// Targets given up on (a substitute was sent in their place).
    replaced: BTreeSet<NodeId>,
    answered: bool,
}

impl Node {
    /// Starts a put's (or a delete's, with `value: None`) round.
    pub(super) fn coordinate_put(
        &mut self,
        now_ms: u64,
        round: Round,
        context: &VectorClock,
        value: Option<Vec<u8>>,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        let Round {
            origin,
            key,
            quorum: w,
            preference,
        } = round;
        self.stats.coordinated_puts += 1;
        let mut set = match self.load(store, &key) {
            Ok(local) => local,
            Err(error) => {
                self.reply(origin, ClientReply::Failed(ClientError::Storage(error)), out);
                return;
            }
        };
        let made = set.put_above(
            self.actor,
            self.dot_floor(now_ms),
            context,
            value,
            self.wall_ms(now_ms),
            self.settings.versioning,
            self.settings.clock_entries_max,
        );
        if let Err(exhausted) = made {
            let reply = ClientReply::Failed(ClientError::BadRequest(exhausted.to_string()));
            self.reply(origin, reply, out);
            return;
        }
        // Checked before anything is persisted or sent: a set past the
        // limit is never written anywhere.
        let siblings = set.versions().len();
        if siblings > self.settings.siblings_max {
            let reason = format!(
                "key {}: this put would leave {siblings} siblings, over the limit of {} (siblings_max): \
                 read the key and write one value merging its siblings, with the context of that read",
                printable(&key, true, 64),
                self.settings.siblings_max
            );
            self.reply(origin, ClientReply::Failed(ClientError::BadRequest(reason)), out);
            return;
        }
        if siblings == self.settings.siblings_warning + 1 {
            log::warn!(
                "key {} now has {siblings} siblings (warning at {}, refused past {}): its writers do not read before they write",
                printable(&key, true, 64),
                self.settings.siblings_warning,
                self.settings.siblings_max
            );
        }
        let id = self.new_request();
        self.persist(key.clone(), set.clone(), Continuation::LocalWrite { request: id }, out);
        let mut targets = BTreeMap::new();
        let mut replaced = BTreeSet::new();
        for node in preference.iter().copied().filter(|node| *node != self.id) {
            if self.settings.sloppy_quorum && self.failures.suspects(node) {
                replaced.insert(node);
                if let Some(substitute) = self.substitute(&key, &targets, &replaced) {
                    targets.insert(substitute, Some(node));
                }
            } else {
                targets.insert(node, None);
            }
        }
        for (&to, &hint) in &targets {
            send_write(id, &key, &set, to, hint, out);
        }
        let put = PutState {
            origin,
            key,
            w,
            set,
            acked: BTreeSet::new(),
            targets,
            replaced,
            answered: false,
        };
        self.rounds.puts.insert(id, put);
        self.arm_request_timers(id, now_ms, out);
    }

    /// The next node of the walk beyond the preference list that is not
    /// suspected and not already written to.
    fn substitute(
        &self,
        key: &[u8],
        targets: &BTreeMap<NodeId, Option<NodeId>>,
        replaced: &BTreeSet<NodeId>,
    ) -> Option<NodeId> {
        self.ring
            .sloppy_extension(self.ring.partition_of(key), self.settings.n)
            .into_iter()
            .find(|node| {
                *node != self.id
                    && !self.failures.suspects(*node)
                    && !targets.contains_key(node)
                    && !replaced.contains(node)
            })
    }

    /// Answers at W acknowledgements; forgets the round once every target
    /// acknowledged or was replaced.
    fn check_put(&mut self, id: RequestId, out: &mut Vec<Effect>) {
        let Some(put) = self.rounds.puts.get_mut(&id) else {
            return;
        };
        if !put.answered && put.acked.len() >= put.w {
            put.answered = true;
            let origin = put.origin;
            self.reply(origin, ClientReply::Stored, out);
        }
        let complete = self.rounds.puts.get(&id).is_some_and(|put| {
            put.answered
                && put.acked.contains(&self.id)
                && put
                    .targets
                    .keys()
                    .all(|node| put.acked.contains(node) || put.replaced.contains(node))
        });
        if complete {
            self.rounds.puts.remove(&id);
        }
    }

    /// A replica made the write durable.
    pub(super) fn on_write_ack(&mut self, from: NodeId, request: RequestId, out: &mut Vec<Effect>) {
        if let Some(put) = self.rounds.puts.get_mut(&request) {
            if put.targets.contains_key(&from) {
                put.acked.insert(from);
            }
        }
        self.check_put(request, out);
    }

    /// The coordinator's own write is durable: it counts towards W.
    pub(super) fn count_local_write(&mut self, request: RequestId, out: &mut Vec<Effect>) {
        if let Some(put) = self.rounds.puts.get_mut(&request) {
            put.acked.insert(self.id);
        }
        self.check_put(request, out);
    }

    /// The deadline of a put: fails it if unanswered, and forgets it.
    pub(super) fn put_deadline(&mut self, id: RequestId, out: &mut Vec<Effect>) {
        if let Some(put) = self.rounds.puts.remove(&id) {
            if !put.answered {
                let reply = ClientReply::Failed(ClientError::Timeout {
                    got: put.acked.len(),
                    needed: put.w,
                });
                self.reply(put.origin, reply, out);
            }
        }
    }

    /// Suspects the replicas of a request that stayed silent; for a put,
    /// writes to substitutes in their place (with hints), and looks again
    /// later.
    pub(super) fn replace_silent_replicas(&mut self, now_ms: u64, id: RequestId, out: &mut Vec<Effect>) {
        if let Some(get) = self.rounds.gets.get(&id) {
            for node in get.silent() {
                self.suspect(node, now_ms, out);
            }
            return;
        }
        let Some(put) = self.rounds.puts.get(&id) else { return };
        let silent: Vec<(NodeId, Option<NodeId>)> = put
            .targets
            .iter()
            .filter(|(node, _)| !put.acked.contains(*node) && !put.replaced.contains(*node))
            .map(|(node, hint)| (*node, *hint))
            .collect();
        if silent.is_empty() {
            return;
        }
        let (key, set) = (put.key.clone(), put.set.clone());
        let mut targets = put.targets.clone();
        let mut replaced = put.replaced.clone();
        for (node, _) in &silent {
            self.suspect(*node, now_ms, out);
        }
        if !self.settings.sloppy_quorum {
            return;
        }
        let mut sends = Vec::new();
        for (node, hint) in silent {
            replaced.insert(node);
            // A silent substitute's data still belongs to the same owner.
            let owner = hint.unwrap_or(node);
            if let Some(substitute) = self.substitute(&key, &targets, &replaced) {
                targets.insert(substitute, Some(owner));
                sends.push((substitute, owner));
            }
        }
        for (to, owner) in sends {
            send_write(id, &key, &set, to, Some(owner), out);
        }
        if let Some(put) = self.rounds.puts.get_mut(&id) {
            put.targets = targets;
            put.replaced = replaced;
        }
        out.push(Effect::SetTimer {
            timer: super::types::Timer::Replicas(id),
            at_ms: now_ms + self.settings.replica_timeout_ms,
        });
        self.check_put(id, out);
    }
}

/// Sends the round's set to one target (standing in for `hint`, if any).
fn send_write(
    request: RequestId,
    key: &[u8],
    set: &SiblingSet,
    to: NodeId,
    hint: Option<NodeId>,
    out: &mut Vec<Effect>,
) {
    out.push(Effect::Send {
        to,
        message: Message::Write {
            request,
            key: key.to_vec(),
            set: set.clone(),
            hint,
        },
    });
}
