//! Replica work: serving a coordinator's read, merging a coordinator's
//! write (and read repairs, which are writes), and taking a handoff. A
//! replica merges and persists before it acknowledges; it never answers
//! from anything but its own state.

use super::handoff::HintedWrite;
use super::node::Node;
use super::persistence::Continuation;
use super::types::{Effect, Message, RequestId, Store};
use crate::ids::NodeId;
use crate::version::SiblingSet;

/// A coordinator's write as it arrives: its parts, as they travel.
pub(super) struct ReplicaWrite {
    /// The coordinator.
    pub(super) from: NodeId,
    /// The coordinator's request (a repair's id for read repair).
    pub(super) request: RequestId,
    /// The key.
    pub(super) key: Vec<u8>,
    /// The coordinator's whole resulting set.
    pub(super) set: SiblingSet,
    /// The preference node this write stands in for, if any.
    pub(super) hint: Option<NodeId>,
}

impl Node {
    /// A coordinator asks for this node's state of `key`.
    pub(super) fn on_read(
        &mut self,
        from: NodeId,
        request: RequestId,
        key: &[u8],
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        self.stats.replica_reads += 1;
        match self.load(store, key) {
            Ok(set) => out.push(Effect::Send {
                to: from,
                message: Message::ReadReply { request, set },
            }),
            Err(error) => log::warn!("cannot serve a read for {request}: {error}"),
        }
    }

    /// A coordinator's write: kept as a hint when it stands in for another
    /// node, merged into this node's state otherwise.
    pub(super) fn on_write(&mut self, now_ms: u64, write: ReplicaWrite, store: &dyn Store, out: &mut Vec<Effect>) {
        let ReplicaWrite {
            from,
            request,
            key,
            set,
            hint,
        } = write;
        match hint {
            Some(owner) if owner != self.id => {
                let hinted = HintedWrite {
                    from,
                    request,
                    owner,
                    key,
                    set,
                };
                self.on_hinted_write(now_ms, hinted, out);
            }
            _ => {
                self.stats.replica_writes += 1;
                if let Err(error) =
                    self.merge_local(store, key, &set, Continuation::AckWrite { to: from, request }, out)
                {
                    log::warn!("cannot merge a write for {request}: {error}");
                }
            }
        }
    }

    /// A hint holder hands off data written while this node was away.
    pub(super) fn on_handoff(
        &mut self,
        from: NodeId,
        key: Vec<u8>,
        set: &SiblingSet,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        self.stats.replica_writes += 1;
        let then = Continuation::AckHandoff {
            to: from,
            key: key.clone(),
        };
        if let Err(error) = self.merge_local(store, key, set, then, out) {
            log::warn!("cannot take a handoff from {from}: {error}");
        }
    }
}
