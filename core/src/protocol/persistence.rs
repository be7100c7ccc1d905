//! Local durability: what the node asked storage to keep, what it serves
//! from memory until then, and what it does once storage says it is done
//! ([`Effect::Persist`] out, [`super::Node::handle_persisted`] in).
//!
//! An acknowledgement that depends on a write is a [`Continuation`] parked
//! on the write's token: nothing is acknowledged before it is durable.

use std::collections::BTreeMap;

use super::node::Node;
use super::reaping::Durable;
use super::types::{Effect, Message, PersistToken, RequestId, Store, StoreError};
use crate::ids::NodeId;
use crate::merkle::entry_hash;
use crate::version::SiblingSet;

/// A set sent to storage, served from memory until it is durable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Pending {
    pub(super) token: PersistToken,
    pub(super) set: SiblingSet,
}

/// What to do once a persist is durable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Continuation {
    /// Acknowledge a replica write to its coordinator.
    AckWrite { to: NodeId, request: RequestId },
    /// Count the coordinator's own write towards W.
    LocalWrite { request: RequestId },
    /// Acknowledge a handoff to the hint holder.
    AckHandoff { to: NodeId, key: Vec<u8> },
    /// Nothing waits (an anti-entropy repair: the exchange that follows
    /// sees whether it took).
    Nothing,
}

/// A durable write's effect on its partition's tree (the key's new entry
/// hash; `None`: removed) and on reaping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct TreeUpdate {
    hash: Option<u64>,
    state: Durable,
}

/// Writes in flight to local storage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Persistence {
    /// The last token issued.
    next_token: u64,
    /// The newest set of each key sent to storage and not yet durable.
    pending: BTreeMap<Vec<u8>, Pending>,
    /// The key each outstanding token wrote, and (when trees are kept)
    /// what the write makes of it in the tree and for reaping.
    pending_keys: BTreeMap<PersistToken, (Vec<u8>, Option<TreeUpdate>)>,
    /// What waits on each token.
    after: BTreeMap<PersistToken, Vec<Continuation>>,
}

impl Persistence {
    /// A fresh token, with `then` waiting on it.
    pub(super) fn token(&mut self, then: Continuation) -> PersistToken {
        self.next_token += 1;
        let token = PersistToken(self.next_token);
        self.after.entry(token).or_default().push(then);
        token
    }
}

impl Node {
    /// The state of `key` as this node serves it: a pending write's set,
    /// else the store's.
    pub(super) fn load(&self, store: &dyn Store, key: &[u8]) -> Result<SiblingSet, StoreError> {
        match self.persistence.pending.get(key) {
            Some(pending) => Ok(pending.set.clone()),
            None => store.load(key),
        }
    }

    /// Asks storage to make `set` the state of `key`; `then` runs once it is
    /// durable.
    pub(super) fn persist(&mut self, key: Vec<u8>, set: SiblingSet, then: Continuation, out: &mut Vec<Effect>) {
        let token = self.persistence.token(then);
        self.persistence.pending.insert(
            key.clone(),
            Pending {
                token,
                set: set.clone(),
            },
        );
        let update = self.keeps_trees().then(|| TreeUpdate {
            hash: (!set.is_empty()).then(|| entry_hash(&key, &set)),
            state: Durable::of(&set),
        });
        self.persistence.pending_keys.insert(token, (key.clone(), update));
        out.push(Effect::Persist { token, key, set });
    }

    /// Merges `set` into this node's state of `key`; runs `then` once the
    /// result is durable (at once if nothing changed and nothing is pending).
    /// True when the merge changed the state.
    pub(super) fn merge_local(
        &mut self,
        store: &dyn Store,
        key: Vec<u8>,
        set: &SiblingSet,
        then: Continuation,
        out: &mut Vec<Effect>,
    ) -> Result<bool, StoreError> {
        let mut local = self.load(store, &key)?;
        if local.merge(set, self.settings.versioning) {
            self.persist(key, local, then, out);
            return Ok(true);
        }
        if let Some(pending) = self.persistence.pending.get(&key) {
            self.persistence.after.entry(pending.token).or_default().push(then);
        } else {
            self.continue_after_persist(then, true, out);
        }
        Ok(false)
    }

    /// A persist asked for by [`Effect::Persist`] or [`Effect::PersistHint`]
    /// is durable (`Ok`) or failed.
    pub fn handle_persisted(&mut self, token: PersistToken, result: Result<(), StoreError>, out: &mut Vec<Effect>) {
        if let Some((key, update)) = self.persistence.pending_keys.remove(&token) {
            if let (Ok(()), Some(update)) = (&result, update) {
                self.tree_entry(&key, update.hash);
                self.note_durable(&key, update.state, self.now_ms);
            }
            if self
                .persistence
                .pending
                .get(&key)
                .is_some_and(|pending| pending.token == token)
            {
                // The store now holds it (or, on failure, still holds the
                // older state, which is then what we serve).
                self.persistence.pending.remove(&key);
            }
        }
        let ok = match &result {
            Ok(()) => true,
            Err(error) => {
                log::error!("a write to local storage failed: {error}");
                false
            }
        };
        for then in self.persistence.after.remove(&token).unwrap_or_default() {
            self.continue_after_persist(then, ok, out);
        }
    }

    fn continue_after_persist(&mut self, then: Continuation, ok: bool, out: &mut Vec<Effect>) {
        if !ok {
            // No acknowledgement: the coordinator times out or writes to a
            // substitute instead.
            return;
        }
        match then {
            Continuation::AckWrite { to, request } => out.push(Effect::Send {
                to,
                message: Message::WriteAck { request },
            }),
            Continuation::LocalWrite { request } => self.count_local_write(request, out),
            Continuation::AckHandoff { to, key } => out.push(Effect::Send {
                to,
                message: Message::HandoffAck { key },
            }),
            Continuation::Nothing => {}
        }
    }
}
