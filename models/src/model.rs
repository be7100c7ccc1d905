//! The actors (servers driving `dynamo_core::protocol::Node`, clients), how
//! their effects become stateright sends and timers, and how every request
//! and reply is recorded in the history. Settings are in `settings.rs`,
//! properties in `properties.rs`.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use dynamo_core::ids::NodeId;
use dynamo_core::merkle::trees_of;
use dynamo_core::protocol::{
    ClientId, ClientReply, ClientRequest, Effect, Message, Node, Settings, Store, StoreError, Timer,
};
use dynamo_core::ring::Ring;
use dynamo_core::version::{Actor as VersionActor, SiblingSet, VectorClock};
use stateright::actor::{model_timeout, Actor, ActorModel, Envelope, Id, Out};

use crate::history::{History, Operation, Outcome};
use crate::settings::{ModelSettings, Puts};

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
    /// Anti-entropy exchanges this server may still start.
    pub exchanges_left: usize,
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
pub(crate) fn key_of(index: usize) -> String {
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
    /// Anti-entropy exchanges each server starts (0: its tick is never
    /// armed), so that every run ends and "converge once messages drain"
    /// can be judged once they are spent.
    pub exchanges: usize,
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
                if set.is_empty() {
                    server.store.remove(&key);
                } else {
                    server.store.insert(key, set);
                }
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
            // The model's ring is fixed: no membership change is proposed,
            // so partitions are never fetched nor the assignment changed,
            // and gossip (which would only repeat the one ring) is not run.
            Effect::PartitionRepaired { .. } | Effect::FetchPartition { .. } | Effect::Assignment { .. } => {}
            Effect::SetTimer { timer, .. } => match timer {
                Timer::Probe(_) | Timer::Gossip => {}
                Timer::Replicas(_) if !timers.replicas => {}
                Timer::Request(_) if !timers.deadlines => {}
                Timer::AntiEntropy if server.exchanges_left == 0 => {}
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
                // The trees of the durable state, as a node rebuilds them
                // from its files on open.
                let trees = trees_of(ring, &store);
                let mut server = ServerState {
                    node: Node::new(node_id, actor, ring.clone(), settings.clone(), held).with_trees(trees),
                    store,
                    hints,
                    clock: 0,
                    // Entries come from at most one incarnation per server
                    // start; truncation bites only below that many.
                    timed: settings.clock_entries_max < ring.members().len() * 2,
                    incarnation,
                    exchanges_left: timers.exchanges,
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
            if *timer == Timer::AntiEntropy {
                if server.node.exchange_running() {
                    // This tick would start nothing: it is not spent.
                    o.set_timer(Timer::AntiEntropy, model_timeout());
                    return;
                }
                server.exchanges_left -= 1;
            }
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

pub(crate) fn record_invocation(
    settings: &ModelSettings,
    history: &History,
    envelope: Envelope<&Msg>,
) -> Option<History> {
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

pub(crate) fn record_completion(
    settings: &ModelSettings,
    history: &History,
    envelope: Envelope<&Msg>,
) -> Option<History> {
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
