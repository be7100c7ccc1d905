//! [`Node`]: one node's protocol state machine (see the module doc).

use std::collections::{BTreeMap, BTreeSet};

use super::types::{
    ClientError, ClientId, ClientReply, ClientRequest, Effect, Message, Origin, PersistToken, RequestId, Settings,
    Store, Timer,
};
use crate::ids::NodeId;
use crate::ring::Ring;
use crate::version::{Actor, SiblingSet, VectorClock};

/// Counters a node keeps about its work (what `dynamo-node client stats`
/// shows, and what the bench's load-balancing efficiency is computed from).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NodeStats {
    /// Gets this node coordinated.
    pub coordinated_gets: u64,
    /// Puts and deletes this node coordinated.
    pub coordinated_puts: u64,
    /// Client requests forwarded to a preference node.
    pub forwarded: u64,
    /// Reads served for other coordinators.
    pub replica_reads: u64,
    /// Writes merged for other coordinators (repairs and handoffs included).
    pub replica_writes: u64,
    /// Writes kept as hints for a node that was down.
    pub hinted_writes: u64,
    /// Hints handed off and acknowledged by their owner.
    pub handoffs: u64,
    /// Replicas repaired after gets.
    pub read_repairs: u64,
    /// Requests that timed out.
    pub timeouts: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GetState {
    origin: Origin,
    key: Vec<u8>,
    r: usize,
    /// Replies so far, the coordinator's own included.
    replies: BTreeMap<NodeId, SiblingSet>,
    /// Replicas asked (not the coordinator itself).
    asked: BTreeSet<NodeId>,
    answered: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PutState {
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

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ForwardState {
    origin: Origin,
    to: NodeId,
}

/// A set sent to storage, served from memory until it is durable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Pending {
    token: PersistToken,
    set: SiblingSet,
}

/// What to do once a persist is durable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Continuation {
    /// Acknowledge a replica write to its coordinator.
    AckWrite { to: NodeId, request: RequestId },
    /// Count the coordinator's own write towards W.
    LocalWrite { request: RequestId },
    /// Acknowledge a handoff to the hint holder.
    AckHandoff { to: NodeId, key: Vec<u8> },
}

/// One node's protocol state. `Clone + Hash + Eq + Debug`, with ordered
/// maps only, so that the stateright model can explore it. Equality and
/// hashing leave out the counters in [`NodeStats`]: they observe the
/// protocol without steering it, and two nodes that differ only in them
/// behave alike (keeping them would multiply the model's states).
#[derive(Clone, Debug)]
pub struct Node {
    id: NodeId,
    actor: Actor,
    ring: Ring,
    settings: Settings,
    next_request: u64,
    next_token: u64,
    gets: BTreeMap<RequestId, GetState>,
    puts: BTreeMap<RequestId, PutState>,
    forwards: BTreeMap<RequestId, ForwardState>,
    pending: BTreeMap<Vec<u8>, Pending>,
    pending_keys: BTreeMap<PersistToken, Vec<u8>>,
    after_persist: BTreeMap<PersistToken, Vec<Continuation>>,
    /// Hinted data held for other nodes: (owner, key) → set.
    hints: BTreeMap<(NodeId, Vec<u8>), SiblingSet>,
    /// Hints sent in a handoff and not yet acknowledged, as sent.
    handed: BTreeMap<(NodeId, Vec<u8>), SiblingSet>,
    /// Suspected peers and their current probe interval.
    suspects: BTreeMap<NodeId, u64>,
    /// Peers with a probe timer armed.
    probing: BTreeSet<NodeId>,
    /// Forwarded requests already taken, per forwarding node (the newest
    /// [`FORWARDS_REMEMBERED`]): a duplicated `Forward` must not coordinate
    /// the same put twice (two versions of one write).
    forwards_seen: BTreeMap<NodeId, BTreeSet<u64>>,
    stats: NodeStats,
}

impl Node {
    /// Everything but the counters, for equality and hashing.
    #[allow(clippy::type_complexity)]
    fn protocol_state(
        &self,
    ) -> (
        (NodeId, Actor, &Ring, &Settings, u64, u64),
        (
            &BTreeMap<RequestId, GetState>,
            &BTreeMap<RequestId, PutState>,
            &BTreeMap<RequestId, ForwardState>,
        ),
        (
            &BTreeMap<Vec<u8>, Pending>,
            &BTreeMap<PersistToken, Vec<u8>>,
            &BTreeMap<PersistToken, Vec<Continuation>>,
        ),
        (
            &BTreeMap<(NodeId, Vec<u8>), SiblingSet>,
            &BTreeMap<(NodeId, Vec<u8>), SiblingSet>,
            &BTreeMap<NodeId, u64>,
            &BTreeSet<NodeId>,
            &BTreeMap<NodeId, BTreeSet<u64>>,
        ),
    ) {
        (
            (
                self.id,
                self.actor,
                &self.ring,
                &self.settings,
                self.next_request,
                self.next_token,
            ),
            (&self.gets, &self.puts, &self.forwards),
            (&self.pending, &self.pending_keys, &self.after_persist),
            (
                &self.hints,
                &self.handed,
                &self.suspects,
                &self.probing,
                &self.forwards_seen,
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

/// Forwarded request ids remembered per forwarding node, for dropping
/// duplicates. A duplicate older than that many newer forwards is taken
/// again; the network would have to hold it back that long.
pub const FORWARDS_REMEMBERED: usize = 1_024;

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
            next_token: 0,
            gets: BTreeMap::new(),
            puts: BTreeMap::new(),
            forwards: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_keys: BTreeMap::new(),
            after_persist: BTreeMap::new(),
            hints: hints.into_iter().map(|(owner, key, set)| ((owner, key), set)).collect(),
            handed: BTreeMap::new(),
            suspects: BTreeMap::new(),
            probing: BTreeSet::new(),
            forwards_seen: BTreeMap::new(),
            stats: NodeStats::default(),
        }
    }

    /// Arms what a starting node needs: probes of the owners of the hints
    /// it holds. Call once, before any other input.
    pub fn start(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let owners: BTreeSet<NodeId> = self.hints.keys().map(|(owner, _)| *owner).collect();
        for owner in owners {
            self.arm_probe(owner, now_ms, self.settings.probe_interval_ms, out);
        }
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
        self.suspects.keys().copied().collect()
    }

    /// Hints held for other nodes.
    pub fn hints_pending(&self) -> usize {
        self.hints.len()
    }

    /// Requests this node is coordinating or forwarding.
    pub fn requests_in_flight(&self) -> usize {
        self.gets.len() + self.puts.len() + self.forwards.len()
    }

    /// The hints held, as `(owner, key, set)`.
    pub fn hints(&self) -> impl Iterator<Item = (NodeId, &[u8], &SiblingSet)> {
        self.hints
            .iter()
            .map(|((owner, key), set)| (*owner, key.as_slice(), set))
    }

    fn new_request(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId {
            node: self.id,
            sequence: self.next_request,
        }
    }

    fn preference_list(&self, key: &[u8]) -> Vec<NodeId> {
        self.ring.preference_list(self.ring.partition_of(key), self.settings.n)
    }

    fn load(&self, store: &dyn Store, key: &[u8]) -> Result<SiblingSet, String> {
        match self.pending.get(key) {
            Some(pending) => Ok(pending.set.clone()),
            None => store.load(key),
        }
    }

    fn reply(&mut self, origin: Origin, reply: ClientReply, out: &mut Vec<Effect>) {
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

    fn persist(&mut self, key: Vec<u8>, set: SiblingSet, then: Continuation, out: &mut Vec<Effect>) {
        self.next_token += 1;
        let token = PersistToken(self.next_token);
        self.pending.insert(
            key.clone(),
            Pending {
                token,
                set: set.clone(),
            },
        );
        self.pending_keys.insert(token, key.clone());
        self.after_persist.entry(token).or_default().push(then);
        out.push(Effect::Persist { token, key, set });
    }

    /// Merges `set` into this node's state of `key`; runs `then` once the
    /// result is durable (at once if nothing changed and nothing is pending).
    fn merge_local(
        &mut self,
        store: &dyn Store,
        key: Vec<u8>,
        set: &SiblingSet,
        then: Continuation,
        out: &mut Vec<Effect>,
    ) -> Result<(), String> {
        let mut local = self.load(store, &key)?;
        if local.merge(set, self.settings.versioning) {
            self.persist(key, local, then, out);
        } else if let Some(pending) = self.pending.get(&key) {
            self.after_persist.entry(pending.token).or_default().push(then);
        } else {
            self.continue_after_persist(then, true, out);
        }
        Ok(())
    }

    fn suspect(&mut self, node: NodeId, now_ms: u64, out: &mut Vec<Effect>) {
        if node == self.id || self.suspects.contains_key(&node) {
            return;
        }
        self.suspects.insert(node, self.settings.probe_interval_ms);
        self.arm_probe(node, now_ms, self.settings.probe_interval_ms, out);
    }

    fn arm_probe(&mut self, node: NodeId, now_ms: u64, after_ms: u64, out: &mut Vec<Effect>) {
        if self.probing.insert(node) {
            out.push(Effect::SetTimer {
                timer: Timer::Probe(node),
                at_ms: now_ms + after_ms,
            });
        }
    }

    /// A message from `node` proves it alive: stop suspecting it and hand
    /// off the hints held for it.
    fn alive(&mut self, node: NodeId, out: &mut Vec<Effect>) {
        self.suspects.remove(&node);
        let due: Vec<(Vec<u8>, SiblingSet)> = self
            .hints
            .range((node, Vec::new())..)
            .take_while(|((owner, _), _)| *owner == node)
            .filter(|(slot, set)| self.handed.get(*slot) != Some(*set))
            .map(|((_, key), set)| (key.clone(), set.clone()))
            .collect();
        for (key, set) in due {
            self.handed.insert((node, key.clone()), set.clone());
            out.push(Effect::Send {
                to: node,
                message: Message::Handoff { key, set },
            });
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
        self.start_request(now_ms, Origin::Client(client), request, store, out);
    }

    fn start_request(
        &mut self,
        now_ms: u64,
        origin: Origin,
        request: ClientRequest,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        let n = self.settings.n;
        let quorum = match &request {
            ClientRequest::Get { r, .. } => r.unwrap_or(self.settings.r),
            ClientRequest::Put { w, .. } => w.unwrap_or(self.settings.w),
        };
        if quorum == 0 || quorum > n {
            let what = if matches!(request, ClientRequest::Get { .. }) {
                "r"
            } else {
                "w"
            };
            let reason = format!("{what} = {quorum} is out of range: it must be between 1 and n = {n}");
            self.reply(origin, ClientReply::Failed(ClientError::BadRequest(reason)), out);
            return;
        }
        let preference = self.preference_list(request.key());
        if !preference.contains(&self.id) {
            let to = preference
                .iter()
                .copied()
                .find(|node| !self.suspects.contains_key(node))
                .unwrap_or(preference[0]);
            let id = self.new_request();
            self.stats.forwarded += 1;
            self.forwards.insert(id, ForwardState { origin, to });
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
            return;
        }
        match request {
            ClientRequest::Get { key, .. } => self.coordinate_get(now_ms, origin, key, quorum, &preference, store, out),
            ClientRequest::Put {
                key, context, value, ..
            } => self.coordinate_put(now_ms, origin, key, &context, value, quorum, &preference, store, out),
        }
    }

    #[allow(clippy::too_many_arguments)] // the request's parts, unpacked once
    fn coordinate_get(
        &mut self,
        now_ms: u64,
        origin: Origin,
        key: Vec<u8>,
        r: usize,
        preference: &[NodeId],
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
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
        self.gets.insert(
            id,
            GetState {
                origin,
                key,
                r,
                replies,
                asked,
                answered: false,
            },
        );
        self.arm_request_timers(id, now_ms, out);
        self.check_get(id, store, out);
    }

    /// The deadline of a request, and the moment to look for silent replicas.
    fn arm_request_timers(&self, id: RequestId, now_ms: u64, out: &mut Vec<Effect>) {
        out.push(Effect::SetTimer {
            timer: Timer::Request(id),
            at_ms: now_ms + self.settings.request_timeout_ms,
        });
        out.push(Effect::SetTimer {
            timer: Timer::Replicas(id),
            at_ms: now_ms + self.settings.replica_timeout_ms,
        });
    }

    fn merged(&self, replies: &BTreeMap<NodeId, SiblingSet>) -> SiblingSet {
        let mut merged = SiblingSet::new();
        for set in replies.values() {
            merged.merge(set, self.settings.versioning);
        }
        merged
    }

    fn check_get(&mut self, id: RequestId, store: &dyn Store, out: &mut Vec<Effect>) {
        let Some(get) = self.gets.get(&id) else { return };
        if !get.answered && get.replies.len() >= get.r {
            let merged = self.merged(&get.replies);
            let reply = ClientReply::Got {
                values: merged.live_values().map(<[u8]>::to_vec).collect(),
                context: merged.context(),
            };
            let origin = get.origin;
            if let Some(get) = self.gets.get_mut(&id) {
                get.answered = true;
            }
            self.reply(origin, reply, out);
        }
        let complete = self
            .gets
            .get(&id)
            .is_some_and(|get| get.answered && get.replies.len() == get.asked.len() + 1);
        if complete {
            self.finish_get(id, store, out);
        }
    }

    /// Read repair: every replica that replied with less than the merge
    /// gets the merge.
    fn finish_get(&mut self, id: RequestId, store: &dyn Store, out: &mut Vec<Effect>) {
        let Some(get) = self.gets.remove(&id) else { return };
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
            if *node == self.id {
                let repair = self.new_request();
                // Our own repair needs no acknowledgement: count it as a
                // local write of a request nobody waits for.
                if let Err(error) = self.merge_local(
                    store,
                    get.key.clone(),
                    &merged,
                    Continuation::LocalWrite { request: repair },
                    out,
                ) {
                    log::warn!("read repair of the local replica failed: {error}");
                }
            } else {
                let repair = self.new_request();
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

    #[allow(clippy::too_many_arguments)] // the request's parts, unpacked once
    fn coordinate_put(
        &mut self,
        now_ms: u64,
        origin: Origin,
        key: Vec<u8>,
        context: &VectorClock,
        value: Option<Vec<u8>>,
        w: usize,
        preference: &[NodeId],
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        self.stats.coordinated_puts += 1;
        let mut set = match self.load(store, &key) {
            Ok(local) => local,
            Err(error) => {
                self.reply(origin, ClientReply::Failed(ClientError::Storage(error)), out);
                return;
            }
        };
        set.put(
            self.actor,
            context,
            value,
            now_ms,
            self.settings.versioning,
            self.settings.clock_entries_max,
        );
        let id = self.new_request();
        self.persist(key.clone(), set.clone(), Continuation::LocalWrite { request: id }, out);
        let mut targets = BTreeMap::new();
        let mut replaced = BTreeSet::new();
        for node in preference.iter().copied().filter(|node| *node != self.id) {
            if self.settings.sloppy_quorum && self.suspects.contains_key(&node) {
                replaced.insert(node);
                if let Some(substitute) = self.substitute(&key, &targets, &replaced) {
                    targets.insert(substitute, Some(node));
                }
            } else {
                targets.insert(node, None);
            }
        }
        for (&to, &hint) in &targets {
            out.push(Effect::Send {
                to,
                message: Message::Write {
                    request: id,
                    key: key.clone(),
                    set: set.clone(),
                    hint,
                },
            });
        }
        self.puts.insert(
            id,
            PutState {
                origin,
                key,
                w,
                set,
                acked: BTreeSet::new(),
                targets,
                replaced,
                answered: false,
            },
        );
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
                    && !self.suspects.contains_key(node)
                    && !targets.contains_key(node)
                    && !replaced.contains(node)
            })
    }

    fn check_put(&mut self, id: RequestId, out: &mut Vec<Effect>) {
        let Some(put) = self.puts.get_mut(&id) else { return };
        if !put.answered && put.acked.len() >= put.w {
            put.answered = true;
            let origin = put.origin;
            self.reply(origin, ClientReply::Stored, out);
        }
        let complete = self.puts.get(&id).is_some_and(|put| {
            put.answered
                && put.acked.contains(&self.id)
                && put
                    .targets
                    .keys()
                    .all(|node| put.acked.contains(node) || put.replaced.contains(node))
        });
        if complete {
            self.puts.remove(&id);
        }
    }

    /// A message from a peer.
    pub fn handle_message(
        &mut self,
        now_ms: u64,
        from: NodeId,
        message: Message,
        store: &dyn Store,
        out: &mut Vec<Effect>,
    ) {
        self.alive(from, out);
        match message {
            Message::Read { request, key } => {
                self.stats.replica_reads += 1;
                match self.load(store, &key) {
                    Ok(set) => out.push(Effect::Send {
                        to: from,
                        message: Message::ReadReply { request, set },
                    }),
                    Err(error) => log::warn!("cannot serve a read for {request}: {error}"),
                }
            }
            Message::ReadReply { request, set } => {
                if let Some(get) = self.gets.get_mut(&request) {
                    if get.asked.contains(&from) {
                        get.replies.insert(from, set);
                    }
                }
                self.check_get(request, store, out);
            }
            Message::Write {
                request,
                key,
                set,
                hint,
            } => match hint {
                Some(owner) if owner != self.id => {
                    self.stats.hinted_writes += 1;
                    let slot = (owner, key);
                    let mut held = self.hints.get(&slot).cloned().unwrap_or_default();
                    held.merge(&set, self.settings.versioning);
                    self.hints.insert(slot.clone(), held.clone());
                    self.next_token += 1;
                    let token = PersistToken(self.next_token);
                    self.after_persist
                        .entry(token)
                        .or_default()
                        .push(Continuation::AckWrite { to: from, request });
                    out.push(Effect::PersistHint {
                        token,
                        owner,
                        key: slot.1,
                        set: held,
                    });
                    self.arm_probe(owner, now_ms, self.settings.probe_interval_ms, out);
                }
                _ => {
                    self.stats.replica_writes += 1;
                    if let Err(error) =
                        self.merge_local(store, key, &set, Continuation::AckWrite { to: from, request }, out)
                    {
                        log::warn!("cannot merge a write for {request}: {error}");
                    }
                }
            },
            Message::WriteAck { request } => {
                if let Some(put) = self.puts.get_mut(&request) {
                    if put.targets.contains_key(&from) {
                        put.acked.insert(from);
                    }
                }
                self.check_put(request, out);
            }
            Message::Forward { request, op } => {
                let seen = self.forwards_seen.entry(from).or_default();
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
            Message::ForwardReply { request, reply } => {
                if let Some(forward) = self.forwards.remove(&request) {
                    self.reply(forward.origin, reply, out);
                }
            }
            Message::Handoff { key, set } => {
                self.stats.replica_writes += 1;
                let then = Continuation::AckHandoff {
                    to: from,
                    key: key.clone(),
                };
                if let Err(error) = self.merge_local(store, key, &set, then, out) {
                    log::warn!("cannot take a handoff from {from}: {error}");
                }
            }
            Message::HandoffAck { key } => {
                let slot = (from, key);
                if let Some(sent) = self.handed.remove(&slot) {
                    // Drop the hint only if nothing was added to it since.
                    if self.hints.get(&slot) == Some(&sent) {
                        self.hints.remove(&slot);
                        self.stats.handoffs += 1;
                        out.push(Effect::DropHint {
                            owner: slot.0,
                            key: slot.1,
                        });
                    }
                }
            }
            Message::Ping => out.push(Effect::Send {
                to: from,
                message: Message::Pong,
            }),
            Message::Pong => {}
        }
    }

    /// A timer armed with [`Effect::SetTimer`] fired.
    pub fn handle_timer(&mut self, now_ms: u64, timer: Timer, store: &dyn Store, out: &mut Vec<Effect>) {
        match timer {
            Timer::Request(id) => {
                if let Some(get) = self.gets.get(&id) {
                    if !get.answered {
                        let (origin, got, needed) = (get.origin, get.replies.len(), get.r);
                        self.gets.remove(&id);
                        self.reply(origin, ClientReply::Failed(ClientError::Timeout { got, needed }), out);
                    } else {
                        self.finish_get(id, store, out);
                    }
                }
                if let Some(put) = self.puts.remove(&id) {
                    if !put.answered {
                        let reply = ClientReply::Failed(ClientError::Timeout {
                            got: put.acked.len(),
                            needed: put.w,
                        });
                        self.reply(put.origin, reply, out);
                    }
                }
                if let Some(forward) = self.forwards.remove(&id) {
                    self.suspect(forward.to, now_ms, out);
                    let reply = ClientReply::Failed(ClientError::Timeout { got: 0, needed: 1 });
                    self.reply(forward.origin, reply, out);
                }
            }
            Timer::Replicas(id) => self.replace_silent_replicas(now_ms, id, out),
            Timer::Probe(node) => {
                self.probing.remove(&node);
                let holds_hints = self
                    .hints
                    .range((node, Vec::new())..)
                    .next()
                    .is_some_and(|((owner, _), _)| *owner == node);
                if !self.suspects.contains_key(&node) && !holds_hints {
                    return;
                }
                // A handoff that got no answer is sent again on the next sign
                // of life.
                self.handed.retain(|(owner, _), _| *owner != node);
                out.push(Effect::Send {
                    to: node,
                    message: Message::Ping,
                });
                let interval = match self.suspects.get_mut(&node) {
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
    }

    /// Suspects the replicas of a request that stayed silent; for a put,
    /// writes to substitutes in their place (with hints), and looks again
    /// later.
    fn replace_silent_replicas(&mut self, now_ms: u64, id: RequestId, out: &mut Vec<Effect>) {
        if let Some(get) = self.gets.get(&id) {
            let silent: Vec<NodeId> = get
                .asked
                .iter()
                .copied()
                .filter(|node| !get.replies.contains_key(node))
                .collect();
            for node in silent {
                self.suspect(node, now_ms, out);
            }
            return;
        }
        let Some(put) = self.puts.get(&id) else { return };
        let silent: Vec<(NodeId, Option<NodeId>)> = put
            .targets
            .iter()
            .filter(|(node, _)| !put.acked.contains(*node) && !put.replaced.contains(*node))
            .map(|(node, hint)| (*node, *hint))
            .collect();
        let (key, set) = (put.key.clone(), put.set.clone());
        let mut targets = put.targets.clone();
        let mut replaced = put.replaced.clone();
        if silent.is_empty() {
            return;
        }
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
        for (to, owner) in &sends {
            out.push(Effect::Send {
                to: *to,
                message: Message::Write {
                    request: id,
                    key: key.clone(),
                    set: set.clone(),
                    hint: Some(*owner),
                },
            });
        }
        if let Some(put) = self.puts.get_mut(&id) {
            put.targets = targets;
            put.replaced = replaced;
        }
        out.push(Effect::SetTimer {
            timer: Timer::Replicas(id),
            at_ms: now_ms + self.settings.replica_timeout_ms,
        });
        self.check_put(id, out);
    }

    /// A persist asked for by [`Effect::Persist`] or [`Effect::PersistHint`]
    /// is durable (`Ok`) or failed.
    pub fn handle_persisted(&mut self, token: PersistToken, result: Result<(), String>, out: &mut Vec<Effect>) {
        if let Some(key) = self.pending_keys.remove(&token) {
            if self.pending.get(&key).is_some_and(|pending| pending.token == token) {
                // The store now holds it (or, on failure, still holds the
                // older state, which is then what we serve).
                self.pending.remove(&key);
            }
        }
        let ok = match &result {
            Ok(()) => true,
            Err(error) => {
                log::error!("a write to local storage failed: {error}");
                false
            }
        };
        for then in self.after_persist.remove(&token).unwrap_or_default() {
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
            Continuation::LocalWrite { request } => {
                if let Some(put) = self.puts.get_mut(&request) {
                    put.acked.insert(self.id);
                }
                self.check_put(request, out);
            }
            Continuation::AckHandoff { to, key } => out.push(Effect::Send {
                to,
                message: Message::HandoffAck { key },
            }),
        }
    }
}
