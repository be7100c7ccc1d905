//! The actors, the model and its properties.

use dynamo_checker::Invariant;
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use dynamo_core::ids::NodeId;
use dynamo_core::protocol::{
    ClientId, ClientReply, ClientRequest, Effect, Message, Node, Settings, Store, StoreError, Timer,
};
use dynamo_core::ring::Ring;
use dynamo_core::version::{Actor as VersionActor, SiblingSet, VectorClock, Versioning};
use stateright::actor::{model_timeout, Actor, ActorModel, ActorModelState, Envelope, Id, LossyNetwork, Network, Out};
use stateright::Expectation;

use crate::history::{History, Operation, Outcome};

/// The network the model explores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// Messages arrive in any order, each at most once (the default).
    Unordered,
    /// Messages arrive in any order, any number of times.
    Duplicating,
    /// Unordered, and any message may be lost.
    Lossy,
}

/// How full clients write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Puts {
    /// Each put carries the context of the get before it (the default).
    ReadModifyWrite,
    /// Each put has an empty context.
    Blind,
    /// Read-modify-write, then blind, then read-modify-write, ...: a
    /// client that sometimes overwrites without reading (a reset, say).
    Alternate,
}

impl std::str::FromStr for Puts {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "rmw" => Ok(Puts::ReadModifyWrite),
            "blind" => Ok(Puts::Blind),
            "alternate" => Ok(Puts::Alternate),
            other => Err(format!("{other:?}: expected rmw, blind or alternate")),
        }
    }
}

/// The process id the history gives the preloaded values' writer.
pub const PRELOAD_CLIENT: usize = usize::MAX;

/// What to model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelSettings {
    /// Server actors.
    pub servers: usize,
    /// Client actors.
    pub clients: usize,
    /// Operations per client.
    pub ops: usize,
    /// Replicas per key.
    pub n: usize,
    /// Read quorum.
    pub r: usize,
    /// Write quorum.
    pub w: usize,
    /// Versioning scheme.
    pub versioning: Versioning,
    /// Clock truncation threshold.
    pub truncate: usize,
    /// Sloppy quorum on (replica timers armed, hinted writes).
    pub sloppy: bool,
    /// Server crashes allowed.
    pub crashes: usize,
    /// The network.
    pub network: NetworkKind,
    /// Keys the clients use (1 or 2).
    pub keys: usize,
    /// How full clients' puts get their context.
    pub puts: Puts,
    /// Every key starts with one value, held by all its replicas: written
    /// (and acknowledged) before the clients start, through a node that has
    /// since left the ring, so its clock entry is one no server advances.
    pub preload: bool,
    /// Every client talks to server 0 (else client i talks to server i mod S).
    pub same_coordinator: bool,
    /// Arm request deadlines (see [`TimerPolicy::deadlines`]).
    pub deadlines: bool,
    /// Judge "reads see acknowledged writes": `None` decides by the
    /// configuration (R + W > N without sloppy quorum), `Some` forces it
    /// (to show what R + W <= N does).
    pub strict: Option<bool>,
    /// Also judge "reads never go back in real time" (what a linearizable
    /// register promises and Dynamo does not), to exhibit its violation.
    pub real_time_reads: bool,
    /// Extra clients that make one blind put each (after the `clients`,
    /// talking to the servers in turn from server 0).
    pub writers: usize,
    /// Extra clients that only get (after the writers, talking to the
    /// servers in turn from server 0): reader k makes k + 1 gets. A client
    /// sends its first request at start, so only a later get of a later
    /// reader can begin after an earlier reader's get completed. Writers
    /// and readers watch a write in flight without multiplying the states
    /// as full clients would.
    pub readers: usize,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            servers: 3,
            clients: 2,
            ops: 2,
            n: 3,
            r: 2,
            w: 2,
            versioning: Versioning::Dvv,
            truncate: 10,
            sloppy: false,
            crashes: 0,
            network: NetworkKind::Unordered,
            keys: 1,
            puts: Puts::ReadModifyWrite,
            preload: false,
            same_coordinator: false,
            deadlines: false,
            strict: None,
            real_time_reads: false,
            writers: 0,
            readers: 0,
        }
    }
}

impl ModelSettings {
    /// The protocol settings the servers run with.
    pub fn protocol(&self) -> Settings {
        Settings {
            n: self.n,
            r: self.r,
            w: self.w,
            versioning: self.versioning,
            clock_entries_max: self.truncate,
            sloppy_quorum: self.sloppy,
            ..Settings::default()
        }
    }

    /// Reads must see acknowledged writes: R + W > N without sloppy quorum.
    pub fn strict(&self) -> bool {
        self.strict.unwrap_or(self.r + self.w > self.n && !self.sloppy)
    }

    /// Checks the settings; the message names the setting.
    ///
    /// # Errors
    /// A setting out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.servers == 0 || self.ops == 0 {
            return Err("--servers and --ops must be at least 1".into());
        }
        if self.clients + self.writers + self.readers == 0 {
            return Err("the model needs a client: --clients, --writers or --readers".into());
        }
        if !(1..=2).contains(&self.keys) {
            return Err(format!("--keys must be 1 or 2, got {}", self.keys));
        }
        if self.truncate == 0 {
            return Err("--truncate must be at least 1".into());
        }
        self.protocol()
            .validate(self.servers)
            .map_err(|error| error.to_string())
    }

    /// With `preload`: each key, its first value, that value's sibling set,
    /// and the servers that replicate it.
    fn preloaded(&self, ring: &Ring) -> Vec<(String, String, SiblingSet, Vec<NodeId>)> {
        if !self.preload {
            return Vec::new();
        }
        let departed = VersionActor {
            node: NodeId(self.servers as u32),
            incarnation: 1,
        };
        (0..self.keys)
            .map(|index| {
                let key = key_of(index);
                let value = format!("init-{key}");
                let mut set = SiblingSet::new();
                set.put(
                    departed,
                    &VectorClock::new(),
                    Some(value.clone().into_bytes()),
                    0,
                    self.versioning,
                    self.truncate,
                );
                let replicas = ring.preference_list(ring.partition_of(key.as_bytes()), self.n);
                (key, value, set, replicas)
            })
            .collect()
    }

    /// The stateright model.
    pub fn into_model(self) -> DynamoModel {
        let members: Vec<NodeId> = (0..self.servers as u32).map(NodeId).collect();
        let ring = Ring::new(self.servers as u32, &members).expect("validated: one partition per server");
        let settings = self.protocol();
        let network = match self.network {
            NetworkKind::Duplicating => Network::new_unordered_duplicating([]),
            NetworkKind::Unordered | NetworkKind::Lossy => Network::new_unordered_nonduplicating([]),
        };
        let lossy = if self.network == NetworkKind::Lossy {
            LossyNetwork::Yes
        } else {
            LossyNetwork::No
        };
        let timers = TimerPolicy {
            replicas: self.sloppy,
            deadlines: self.deadlines,
        };
        let preloaded = self.preloaded(&ring);
        let servers = (0..self.servers).map(|server| DynamoActor::Server {
            ring: ring.clone(),
            settings: settings.clone(),
            timers,
            preload: preloaded
                .iter()
                .filter(|(_, _, _, replicas)| replicas.contains(&NodeId(server as u32)))
                .map(|(key, _, set, _)| (key.clone().into_bytes(), set.clone()))
                .collect(),
        });
        let full = (0..self.clients).map(|index| (index, Role::Full, index % self.servers, self.ops));
        let writers = (0..self.writers).map(|k| (self.clients + k, Role::Writer, k % self.servers, 1));
        let readers =
            (0..self.readers).map(|k| (self.clients + self.writers + k, Role::Reader, k % self.servers, k + 1));
        let clients: Vec<DynamoActor> = full
            .chain(writers)
            .chain(readers)
            .map(|(index, role, server, ops)| DynamoActor::Client {
                index,
                server: Id::from(if self.same_coordinator { 0 } else { server }),
                ops,
                keys: self.keys,
                puts: self.puts,
                role,
            })
            .collect();
        let servers: Vec<DynamoActor> = servers.collect();
        let crashes = self.crashes;
        let history = History::preloaded(preloaded.into_iter().map(|(key, value, _, _)| (key, value)));
        properties(
            ActorModel::new(self, history)
                .actors(servers)
                .actors(clients)
                .init_network(network)
                .lossy_network(lossy)
                .max_crashes(crashes)
                .within_boundary(crash_budget)
                .record_msg_out(record_invocation)
                .record_msg_in(record_completion),
        )
    }
}

/// `--crashes K` means K crashes in all. stateright's `max_crashes` bounds
/// only the actors down *at the same time*, and would crash clients too: a
/// server could crash and recover for ever, each start a new incarnation, so
/// the state space would have no end (a depth-first run filled 24 GB in half
/// a minute). The boundary keeps the states where servers have crashed at
/// most K times in all (restarts so far, from the incarnation each stored,
/// plus servers down now) and no client is down.
fn crash_budget(cfg: &ModelSettings, state: &ActorModelState<DynamoActor, History>) -> bool {
    if cfg.crashes == 0 {
        return true;
    }
    if state.crashed.iter().skip(cfg.servers).any(|&crashed| crashed) {
        return false;
    }
    let restarts: u64 = state
        .actor_storages
        .iter()
        .take(cfg.servers)
        .flatten()
        .map(|storage| storage.incarnation.saturating_sub(1))
        .sum();
    let down = state
        .crashed
        .iter()
        .take(cfg.servers)
        .filter(|&&crashed| crashed)
        .count() as u64;
    restarts + down <= cfg.crashes as u64
}

/// The model type.
pub type DynamoModel = ActorModel<DynamoActor, ModelSettings, History>;

/// Messages: the protocol's, plus client requests and replies (requests
/// carry what the history needs to know about them).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Msg {
    /// Node to node.
    Peer(Message),
    /// Client to node.
    Request {
        /// The client's operation number.
        op: usize,
        /// The request.
        request: ClientRequest,
        /// For the history: the put's value id.
        value: Option<String>,
        /// For the history: the values the put's context covers.
        context_values: Vec<String>,
    },
    /// Node to client.
    Reply {
        /// The client's operation number.
        op: usize,
        /// The answer.
        reply: ClientReply,
    },
}

/// Server or client.
#[derive(Clone, Debug)]
pub enum DynamoActor {
    /// A node running the protocol core.
    Server {
        /// The ring.
        ring: Ring,
        /// The protocol settings.
        settings: Settings,
        /// Which timers are armed.
        timers: TimerPolicy,
        /// What its store holds before any client starts (`preload`).
        preload: Vec<(Vec<u8>, SiblingSet)>,
    },
    /// A client.
    Client {
        /// Its number (for value ids).
        index: usize,
        /// The node it sends to.
        server: Id,
        /// Operations to issue.
        ops: usize,
        /// Keys to use.
        keys: usize,
        /// How its puts get their context.
        puts: Puts,
        /// What it does.
        role: Role,
    },
}

/// What a client does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Get, then put with that get's context, and so on.
    Full,
    /// Blind puts only.
    Writer,
    /// Gets only.
    Reader,
}

/// A server's or a client's state.
// Stateright keeps each actor state behind an `Arc` already; boxing the
// server variant would add an allocation to every clone of it.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// A server.
    Server(ServerState),
    /// A client.
    Client(ClientState),
}

/// A server: the protocol core and its store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerState {
    /// The protocol state machine.
    pub node: Node,
    /// Durable sibling sets.
    pub store: BTreeMap<Vec<u8>, SiblingSet>,
    /// Durable hints.
    pub hints: BTreeMap<(NodeId, Vec<u8>), SiblingSet>,
    /// Logical time (steps taken), when truncation can drop entries (it
    /// orders them); otherwise always 0, since timestamps then change
    /// nothing and would only tell apart states that behave alike.
    pub clock: u64,
    /// Whether the clock advances (see `clock`).
    pub timed: bool,
    /// This incarnation.
    pub incarnation: u64,
}

/// What survives a server crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerStorage {
    /// Durable sibling sets.
    pub store: BTreeMap<Vec<u8>, SiblingSet>,
    /// Durable hints.
    pub hints: BTreeMap<(NodeId, Vec<u8>), SiblingSet>,
    /// The last incarnation started.
    pub incarnation: u64,
}

/// A client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientState {
    /// The next operation to issue.
    pub next_op: usize,
    /// The last get's values and context, for read-modify-write.
    pub last_read: Option<(Vec<String>, VectorClock)>,
}

struct MemoryStore<'a>(&'a BTreeMap<Vec<u8>, SiblingSet>);

impl Store for MemoryStore<'_> {
    fn load(&self, key: &[u8]) -> Result<SiblingSet, StoreError> {
        Ok(self.0.get(key).cloned().unwrap_or_default())
    }
}

const OP_BITS: u64 = 20;

/// The model's keys: `k0`, `k1`.
fn key_of(index: usize) -> String {
    format!("k{index}")
}

/// Client operations come in pairs on one key: a get, then a put.
fn key_name(keys: usize, op: usize) -> String {
    key_of((op / 2) % keys.max(1))
}

impl DynamoActor {
    fn issue(&self, state: &ClientState, o: &mut Out<Self>) {
        let DynamoActor::Client {
            index,
            server,
            ops,
            keys,
            puts,
            role,
        } = self
        else {
            return;
        };
        let op = state.next_op;
        if op >= *ops {
            return;
        }
        let key = key_name(*keys, op).into_bytes();
        let get = match role {
            Role::Full => op % 2 == 0,
            Role::Reader => true,
            Role::Writer => false,
        };
        let message = if get {
            Msg::Request {
                op,
                request: ClientRequest::Get { key, r: None },
                value: None,
                context_values: Vec::new(),
            }
        } else {
            let blind = match (role, puts) {
                (Role::Writer, _) | (_, Puts::Blind) => true,
                (_, Puts::ReadModifyWrite) => false,
                // Puts are the odd operations: put 0 reads first, put 1 is blind, ...
                (_, Puts::Alternate) => (op / 2) % 2 == 1,
            };
            let (values, context) = match (&state.last_read, blind) {
                (Some((values, context)), false) => (values.clone(), context.clone()),
                _ => (Vec::new(), VectorClock::new()),
            };
            let value = format!("c{index}o{op}");
            Msg::Request {
                op,
                request: ClientRequest::Put {
                    key,
                    context,
                    value: Some(value.clone().into_bytes()),
                    w: None,
                },
                value: Some(value),
                context_values: values,
            }
        };
        o.send(*server, message);
    }
}

/// Which of the protocol's timers the model arms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerPolicy {
    /// Replica timers: only with sloppy quorum (they pick substitutes).
    pub replicas: bool,
    /// Request deadlines: only when asked for (`--deadlines`). Without
    /// them a client whose reply is lost waits for ever, which hides no
    /// safety violation (its operation stays indeterminate); with them every
    /// request may also time out at any moment, which multiplies the states.
    pub deadlines: bool,
}

/// Carries out a server's effects: sends, replies, timers, and storage
/// writes that complete at once (feeding their completions back).
fn apply(server: &mut ServerState, effects: Vec<Effect>, timers: TimerPolicy, o: &mut Out<DynamoActor>) {
    let mut queue: VecDeque<Effect> = effects.into();
    let mut dirty = false;
    while let Some(effect) = queue.pop_front() {
        match effect {
            Effect::Send { to, message } => o.send(Id::from(to.0 as usize), Msg::Peer(message)),
            Effect::Reply { client, reply } => o.send(
                Id::from((client.0 >> OP_BITS) as usize),
                Msg::Reply {
                    op: (client.0 & ((1 << OP_BITS) - 1)) as usize,
                    reply,
                },
            ),
            Effect::Persist { token, key, set } => {
                server.store.insert(key, set);
                dirty = true;
                let mut more = Vec::new();
                server.node.handle_persisted(token, Ok(()), &mut more);
                queue.extend(more);
            }
            Effect::PersistHint { token, owner, key, set } => {
                server.hints.insert((owner, key), set);
                dirty = true;
                let mut more = Vec::new();
                server.node.handle_persisted(token, Ok(()), &mut more);
                queue.extend(more);
            }
            Effect::DropHint { owner, key } => {
                server.hints.remove(&(owner, key));
                dirty = true;
            }
            Effect::SetTimer { timer, .. } => match timer {
                Timer::Probe(_) => {}
                Timer::Replicas(_) if !timers.replicas => {}
                Timer::Request(_) if !timers.deadlines => {}
                timer => o.set_timer(timer, model_timeout()),
            },
        }
    }
    if dirty {
        o.save(ServerStorage {
            store: server.store.clone(),
            hints: server.hints.clone(),
            incarnation: server.incarnation,
        });
    }
}

impl Actor for DynamoActor {
    type Msg = Msg;
    type Timer = Timer;
    type State = State;
    type Storage = ServerStorage;
    type Random = ();

    fn on_start(&self, id: Id, storage: &Option<Self::Storage>, o: &mut Out<Self>) -> Self::State {
        match self {
            DynamoActor::Server {
                ring,
                settings,
                timers,
                preload,
            } => {
                let (store, hints, incarnation) = match storage {
                    Some(saved) => (saved.store.clone(), saved.hints.clone(), saved.incarnation + 1),
                    None => (preload.iter().cloned().collect(), BTreeMap::new(), 1),
                };
                let node_id = NodeId(usize::from(id) as u32);
                let actor = VersionActor {
                    node: node_id,
                    incarnation,
                };
                let held = hints
                    .iter()
                    .map(|((owner, key), set)| (*owner, key.clone(), set.clone()))
                    .collect();
                let mut server = ServerState {
                    node: Node::new(node_id, actor, ring.clone(), settings.clone(), held),
                    store,
                    hints,
                    clock: 0,
                    // Entries come from at most one incarnation per server
                    // start; truncation bites only below that many.
                    timed: settings.clock_entries_max < ring.members().len() * 2,
                    incarnation,
                };
                let mut effects = Vec::new();
                server.node.start(0, &mut effects);
                // A new incarnation is durable before the node issues a dot.
                o.save(ServerStorage {
                    store: server.store.clone(),
                    hints: server.hints.clone(),
                    incarnation,
                });
                apply(&mut server, effects, *timers, o);
                State::Server(server)
            }
            DynamoActor::Client { .. } => {
                let client = ClientState {
                    next_op: 0,
                    last_read: None,
                };
                self.issue(&client, o);
                State::Client(client)
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<Self::State>, src: Id, msg: Self::Msg, o: &mut Out<Self>) {
        match (self, state.to_mut(), msg) {
            (DynamoActor::Server { timers, .. }, State::Server(server), msg) => {
                server.clock += u64::from(server.timed);
                let now = server.clock;
                let mut effects = Vec::new();
                let store = MemoryStore(&server.store);
                match msg {
                    Msg::Peer(message) => {
                        server
                            .node
                            .handle_message(now, NodeId(usize::from(src) as u32), message, &store, &mut effects)
                    }
                    Msg::Request { op, request, .. } => {
                        let client = ClientId(((usize::from(src) as u64) << OP_BITS) | op as u64);
                        server.node.handle_client(now, client, request, &store, &mut effects)
                    }
                    Msg::Reply { .. } => {}
                }
                apply(server, effects, *timers, o);
            }
            (DynamoActor::Client { .. }, State::Client(client), Msg::Reply { op, reply }) => {
                if op != client.next_op {
                    return;
                }
                if let ClientReply::Got { values, context } = reply {
                    let values = values
                        .into_iter()
                        .map(|value| String::from_utf8_lossy(&value).into_owned())
                        .collect();
                    client.last_read = Some((values, context));
                }
                client.next_op += 1;
                let next = client.clone();
                self.issue(&next, o);
            }
            _ => {}
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<Self::State>, timer: &Self::Timer, o: &mut Out<Self>) {
        if let (DynamoActor::Server { timers, .. }, State::Server(server)) = (self, state.to_mut()) {
            server.clock += u64::from(server.timed);
            let now = server.clock;
            let mut effects = Vec::new();
            server
                .node
                .handle_timer(now, *timer, &MemoryStore(&server.store), &mut effects);
            apply(server, effects, *timers, o);
        }
    }
}

fn record_invocation(settings: &ModelSettings, history: &History, envelope: Envelope<&Msg>) -> Option<History> {
    let Msg::Request {
        op,
        value,
        context_values,
        ..
    } = envelope.msg
    else {
        return None;
    };
    let mut next = history.clone();
    next.operations.push(Arc::new(Operation {
        client: usize::from(envelope.src),
        key: key_name(settings.keys, *op),
        value: value.clone(),
        context: context_values.clone(),
        invoked: history.events,
        completed: None,
    }));
    next.events += 1;
    Some(next)
}

fn record_completion(settings: &ModelSettings, history: &History, envelope: Envelope<&Msg>) -> Option<History> {
    let Msg::Reply { op, reply } = envelope.msg else {
        return None;
    };
    let client = usize::from(envelope.dst);
    let mut next = history.clone();
    let key = key_name(settings.keys, *op);
    let operation = next
        .operations
        .iter_mut()
        .rfind(|operation| operation.client == client && operation.key == key && operation.completed.is_none())?;
    let outcome = match reply {
        ClientReply::Got { values, .. } => Outcome::Got(
            values
                .iter()
                .map(|value| String::from_utf8_lossy(value).into_owned())
                .collect(),
        ),
        ClientReply::Stored => Outcome::Stored,
        ClientReply::Failed(_) => Outcome::Indeterminate,
    };
    Arc::make_mut(operation).completed = Some((history.events, outcome));
    next.events += 1;
    Some(next)
}

/// Acknowledged writes are durable: every `ok` put's value, or a value that
/// causally follows it, is in some server's durable store or hints.
fn durable(_: &DynamoModel, state: &ActorModelState<DynamoActor, History>) -> bool {
    let mut held: Vec<String> = Vec::new();
    for storage in state.actor_storages.iter().flatten() {
        for set in storage.store.values().chain(storage.hints.values()) {
            held.extend(
                set.live_values()
                    .map(|value| String::from_utf8_lossy(value).into_owned()),
            );
        }
    }
    state.history.acknowledged().all(|value| {
        held.iter()
            .any(|kept| kept == value || state.history.ancestors(kept).contains(value))
    })
}

/// What a final read asking every replica would return for each key the
/// history touched: the merge of every server's durable set (store and
/// hints, as [`durable`] counts them), its live values sorted.
pub fn final_reads(model: &DynamoModel, state: &ActorModelState<DynamoActor, History>) -> Vec<(String, Vec<String>)> {
    let keys: std::collections::BTreeSet<&str> = state.history.operations.iter().map(|op| op.key.as_str()).collect();
    keys.into_iter()
        .map(|key| {
            let mut merged = SiblingSet::new();
            for storage in state.actor_storages.iter().flatten() {
                let held = storage.store.get(key.as_bytes()).into_iter().chain(
                    storage
                        .hints
                        .iter()
                        .filter(|((_, hinted), _)| hinted == key.as_bytes())
                        .map(|(_, set)| set),
                );
                for set in held {
                    merged.merge(set, model.cfg.versioning);
                }
            }
            let mut values: Vec<String> = merged
                .live_values()
                .map(|value| String::from_utf8_lossy(value).into_owned())
                .collect();
            values.sort();
            (key.to_string(), values)
        })
        .collect()
}

/// The history checker's verdict (the `checker` crate, which knows nothing
/// of the node) on a state's history followed by its [`final_reads`]: the
/// model's properties restate HISTORY.md's invariants so that they can be
/// judged in every state at model-checking speed; this is how the two are
/// held to each other. Strict mode where the model judges reads strictly.
///
/// # Errors
/// The checker could not read the history (a bug in [`History::to_jsonl`]).
pub fn checker_verdict(
    model: &DynamoModel,
    state: &ActorModelState<DynamoActor, History>,
) -> Result<dynamo_checker::Verdict, String> {
    checker_verdict_on(model, &state.history, &final_reads(model, state))
}

/// The checker's verdict on `history` followed by the final reads `finals`
/// (none: the clients' operations alone), in the model's mode.
///
/// # Errors
/// The checker could not read the history (a bug in [`History::to_jsonl`]).
pub fn checker_verdict_on(
    model: &DynamoModel,
    history: &History,
    finals: &[(String, Vec<String>)],
) -> Result<dynamo_checker::Verdict, String> {
    let text = history.to_jsonl(finals);
    let options = dynamo_checker::Options {
        mode: if model.cfg.strict() {
            dynamo_checker::Mode::Strict
        } else {
            dynamo_checker::Mode::Eventual
        },
        ..dynamo_checker::Options::default()
    };
    dynamo_checker::read("model history", text.as_bytes())
        .map(|history| dynamo_checker::check(&history, &options))
        .map_err(|error| format!("the checker cannot read the model's history: {error}\n{text}"))
}

/// The model's properties, by the names stateright reports them under.
pub mod property {
    /// Restates `sibling-antichain`.
    pub const SIBLINGS_ARE_CONCURRENT: &str = "siblings are concurrent";
    /// Restates `phantom`.
    pub const NO_PHANTOM: &str = "no phantom";
    /// Restates `lost-write`.
    pub const DURABLE: &str = "acknowledged writes are durable";
    /// Restates `stale-read`.
    pub const READS_SEE_ACKNOWLEDGED: &str = "reads see acknowledged writes";
    /// The model's own: replicas agree once the network is empty.
    pub const CONVERGE: &str = "replicas converge once messages drain";
}

/// Each property that restates a checker invariant, with that invariant.
const RESTATES: [(&str, Invariant); 4] = [
    (property::SIBLINGS_ARE_CONCURRENT, Invariant::SiblingAntichain),
    (property::NO_PHANTOM, Invariant::Phantom),
    (property::DURABLE, Invariant::LostWrite),
    (property::READS_SEE_ACKNOWLEDGED, Invariant::StaleRead),
];

/// The checker invariant a model property restates (`None`: the checker
/// does not judge it).
pub fn checker_invariant(property: &str) -> Option<Invariant> {
    RESTATES
        .iter()
        .find(|(name, _)| *name == property)
        .map(|(_, invariant)| *invariant)
}

/// Replicas converge: once no message is in flight, every server's durable
/// store holds the same sibling set of every key (all servers are replicas
/// of every key when N equals the number of servers).
fn converged(model: &DynamoModel, state: &ActorModelState<DynamoActor, History>) -> bool {
    if model.cfg.n < model.cfg.servers || state.network.len() > 0 {
        return true;
    }
    let mut stores = state
        .actor_storages
        .iter()
        .take(model.cfg.servers)
        .map(|storage| storage.as_ref().map(|storage| &storage.store));
    let first = stores.next().flatten();
    stores.all(|store| store == first)
}

/// Adds the properties to a model.
pub fn properties(model: DynamoModel) -> DynamoModel {
    model
        .property(Expectation::Always, property::SIBLINGS_ARE_CONCURRENT, |_, state| {
            state.history.siblings_are_concurrent()
        })
        .property(Expectation::Always, property::NO_PHANTOM, |_, state| {
            state.history.no_phantom()
        })
        .property(Expectation::Always, property::DURABLE, durable)
        .property(Expectation::Always, property::READS_SEE_ACKNOWLEDGED, |model, state| {
            !model.cfg.strict() || state.history.reads_see_acknowledged_writes()
        })
        .property(Expectation::Always, property::CONVERGE, converged)
        .property(
            Expectation::Always,
            "reads never go back in real time",
            |model, state| !model.cfg.real_time_reads || state.history.reads_never_go_back(),
        )
        .property(Expectation::Sometimes, "siblings appear", |_, state| {
            state.history.siblings_appeared()
        })
        .property(
            Expectation::Sometimes,
            "a read returns another client's write",
            |_, state| state.history.read_another_clients_write(),
        )
}
