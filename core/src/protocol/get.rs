//! A get's round (Dynamo §4.5): the coordinator reads its own state and
//! asks the other preference nodes, answers at R replies with the merge of
//! what it got, then waits for the rest until the deadline and repairs
//! every replica that missed something (read repair), itself included.

use std::collections::{BTreeMap, BTreeSet};

use super::coordinator::Round;
use super::node::Node;
use super::persistence::Continuation;
use super::types::{ClientError, ClientReply, Effect, Message, RequestId, Store};
use crate::ids::NodeId;
use crate::version::SiblingSet;

/// A get in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct GetState {
    origin: super::types::Origin,
    key: Vec<u8>,
    r: usize,
    /// Replies so far, the coordinator's own included.
    replies: BTreeMap<NodeId, SiblingSet>,
    /// Replicas asked (not the coordinator itself).
    asked: BTreeSet<NodeId>,
    answered: bool,
}

impl GetState {
    /// Replicas asked that have not replied.
    pub(super) fn silent(&self) -> Vec<NodeId> {
        self.asked
            .iter()
            .copied()
            .filter(|node| !self.replies.contains_key(node))
            .collect()
    }
}

impl Node {
    /// Starts a get's round.
    pub(super) fn coordinate_get(&mut self, now_ms: u64, round: Round, store: &dyn Store, out: &mut Vec<Effect>) {
        let Round {
            origin,
            key,
            quorum: r,
            preference,
        } = round;
        self.stats.coordinated_gets += 1;
        let local = match self.load(store, &key) {
            Ok(local) => local,
            Err(error) => {
                self.reply(origin, ClientReply::Failed(ClientError::Storage(error)), out);
                return;
            }
        };
        let id = self.new_request();
        // Every preference node is asked, suspected or not: a get needs R of
        // N and costs only a message to a node that may be back.
        let asked: BTreeSet<NodeId> = preference.iter().copied().filter(|node| *node != self.id).collect();
        for node in &asked {
            out.push(Effect::Send {
                to: *node,
                message: Message::Read {
                    request: id,
                    key: key.clone(),
                },
            });
        }
        let mut replies = BTreeMap::new();
        replies.insert(self.id, local);
        let get = GetState {
            origin,
            key,
            r,
            replies,
            asked,
            answered: false,
        };
        self.rounds.gets.insert(id, get);
        self.arm_request_timers(id, now_ms, out);
        self.check_get(id, store, out);
    }

    /// A replica answered a get.
    pub(super) fn on_read_reply(
        &mut self,
        from: NodeId,
        request: RequestId,
        set: SiblingSet,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        if let Some(get) = self.rounds.gets.get_mut(&request) {
            if get.asked.contains(&from) {
                get.replies.insert(from, set);
            }
        }
        self.check_get(request, store, out);
    }

    fn merged(&self, replies: &BTreeMap<NodeId, SiblingSet>) -> SiblingSet {
        let mut merged = SiblingSet::new();
        for set in replies.values() {
            merged.merge(set, self.settings.versioning);
        }
        merged
    }

    /// Answers at R replies; finishes once every replica asked replied.
    fn check_get(&mut self, id: RequestId, store: &dyn Store, out: &mut Vec<Effect>) {
        let Some(get) = self.rounds.gets.get(&id) else { return };
        if !get.answered && get.replies.len() >= get.r {
            let merged = self.merged(&get.replies);
            let reply = ClientReply::Got {
                values: merged.live_values().map(<[u8]>::to_vec).collect(),
                context: merged.context(),
            };
            let origin = get.origin;
            if let Some(get) = self.rounds.gets.get_mut(&id) {
                get.answered = true;
            }
            self.reply(origin, reply, out);
        }
        let complete = self
            .rounds
            .gets
            .get(&id)
            .is_some_and(|get| get.answered && get.replies.len() == get.asked.len() + 1);
        if complete {
            self.finish_get(id, store, out);
        }
    }

    /// The deadline of a get: fails it if unanswered, finishes it otherwise.
    pub(super) fn get_deadline(&mut self, id: RequestId, store: &dyn Store, out: &mut Vec<Effect>) {
        let Some(get) = self.rounds.gets.get(&id) else { return };
        if get.answered {
            self.finish_get(id, store, out);
            return;
        }
        let (origin, got, needed) = (get.origin, get.replies.len(), get.r);
        self.rounds.gets.remove(&id);
        self.reply(origin, ClientReply::Failed(ClientError::Timeout { got, needed }), out);
    }

    /// Read repair: every replica that replied with less than the merge
    /// gets the merge.
    fn finish_get(&mut self, id: RequestId, store: &dyn Store, out: &mut Vec<Effect>) {
        let Some(get) = self.rounds.gets.remove(&id) else {
            return;
        };
        if !self.settings.read_repair || !get.answered {
            return;
        }
        let merged = self.merged(&get.replies);
        for (node, set) in &get.replies {
            let mut theirs = set.clone();
            if !theirs.merge(&merged, self.settings.versioning) {
                continue;
            }
            self.stats.read_repairs += 1;
            let repair = self.new_request();
            if *node == self.id {
                // Our own repair needs no acknowledgement: count it as a
                // local write of a request nobody waits for.
                let then = Continuation::LocalWrite { request: repair };
                if let Err(error) = self.merge_local(store, get.key.clone(), &merged, then, out) {
                    log::warn!("read repair of the local replica failed: {error}");
                }
            } else {
                out.push(Effect::Send {
                    to: *node,
                    message: Message::Write {
                        request: repair,
                        key: get.key.clone(),
                        set: merged.clone(),
                        hint: None,
                    },
                });
            }
        }
    }
}
