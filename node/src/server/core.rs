//! The core task: owns the protocol state machine, takes every input
//! (client requests, peer messages, storage completions, timers, admin
//! queries) from channels, and carries out the effects in order: frames to
//! peers and clients, writes to storage, timers on one timer wheel.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::auth::PeerAuth;
use super::connections::Outbox;
use super::transfer::{Fetched, TransferReport};
use super::{hint_key, hint_partition, Waiting};
use crate::config::ClusterConfig;
use crate::storage::{Engine, StorageError};
use crate::sync::Recover;
use dynamo_core::admin::{
    AdminAnswer, AdminQuery, MemberDescription, PendingDescription, Repair, RingDescription, StatsReport,
    TransferDescription, TreeDescription,
};
use dynamo_core::ids::{NodeId, PartitionId};
use dynamo_core::merkle::{entry_hash_encoded, Tree};
use dynamo_core::protocol::{
    ClientError, ClientId, ClientReply, ClientRequest, Effect, Message, Node, PersistToken, Store, StoreError, Timer,
};
use dynamo_core::ring::Ring;
use dynamo_core::version::{decode_sibling_set, encode_sibling_set, SiblingSet};
use dynamo_core::wire::Frame;

/// What reaches the core task from the connections.
pub(super) enum Input {
    Client {
        client: ClientId,
        request: ClientRequest,
    },
    Peer {
        from: NodeId,
        message: Message,
    },
    Admin {
        id: u64,
        query: AdminQuery,
        respond: Outbox,
    },
    /// A partition's files arrived and were adopted (or were not needed).
    Fetched(Fetched),
}

/// The storage engine finished a persist the protocol asked for.
pub(super) struct Persisted {
    token: PersistToken,
    result: Result<(), StoreError>,
}

/// Read access to the engine for the protocol core.
struct EngineStore<'a> {
    engine: &'a Engine,
    ring: &'a Ring,
}

impl Store for EngineStore<'_> {
    fn load(&self, key: &[u8]) -> Result<SiblingSet, StoreError> {
        match self.engine.get(self.ring.partition_of(key), key) {
            Ok(Some(bytes)) => {
                decode_sibling_set(&bytes).map_err(|error| StoreError::Corrupt(format!("stored sibling set: {error}")))
            }
            Ok(None) => Ok(SiblingSet::new()),
            Err(error) => Err(StoreError::from(&error)),
        }
    }
}

/// What the core needs to move partitions: its own input channel (for
/// fetches to report to), the peer credentials, the data directory.
pub(super) struct Membership {
    pub inputs: mpsc::Sender<Input>,
    pub auth: Arc<PeerAuth>,
    pub data_dir: PathBuf,
}

/// Transfers remembered for `client stats`.
const TRANSFERS_REMEMBERED: usize = 256;

pub(super) struct Core {
    node: Node,
    engine: Arc<Engine>,
    ring: Ring,
    config: ClusterConfig,
    membership: Membership,
    /// Partitions received as files, the latest last.
    transfers: VecDeque<TransferReport>,
    /// Fetches that may stream at once.
    fetch_slots: Arc<tokio::sync::Semaphore>,
    /// Partitions being fetched.
    fetching: std::collections::HashSet<PartitionId>,
    peers: HashMap<NodeId, mpsc::Sender<Frame>>,
    clients: Waiting,
    completion_tx: mpsc::UnboundedSender<Persisted>,
    started: Instant,
    shutting_down: bool,
    /// Armed timers, by due time: one sleep for all of them instead of a
    /// task per timer.
    timers: BTreeMap<(u64, u64), Timer>,
    timer_sequence: u64,
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                log::warn!("cannot watch SIGTERM: {error}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

impl Core {
    pub(super) fn new(
        node: Node,
        engine: Arc<Engine>,
        config: ClusterConfig,
        peers: HashMap<NodeId, mpsc::Sender<Frame>>,
        clients: Waiting,
        completion_tx: mpsc::UnboundedSender<Persisted>,
        membership: Membership,
    ) -> Core {
        // The core's clock (`now_ms`) starts at zero here; version
        // timestamps are anchored to the wall clock at the same moment.
        let started = Instant::now();
        let wall_origin_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        let (trees, tombstones) = rebuild_trees(&engine, hint_partition(&config));
        Core {
            ring: node.ring().clone(),
            node: node
                .with_wall_clock(wall_origin_ms)
                .with_trees(trees)
                .with_tombstones(tombstones, 0),
            engine,
            config,
            membership,
            transfers: VecDeque::new(),
            fetch_slots: Arc::new(tokio::sync::Semaphore::new(super::transfer::FETCHES_AT_ONCE)),
            fetching: std::collections::HashSet::new(),
            peers,
            clients,
            completion_tx,
            started,
            shutting_down: false,
            timers: BTreeMap::new(),
            timer_sequence: 0,
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(super) async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        mut completions: mpsc::UnboundedReceiver<Persisted>,
    ) {
        let mut out = Vec::new();
        self.node.start(self.now_ms(), &mut out);
        self.apply(&mut out);
        let signal = shutdown_signal();
        tokio::pin!(signal);
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        loop {
            if let Some(deadline) = drain_deadline {
                if self.node.requests_in_flight() == 0 || tokio::time::Instant::now() >= deadline {
                    log::info!(
                        "shutting down with {} requests still in flight",
                        self.node.requests_in_flight()
                    );
                    return;
                }
            }
            let next_timer_ms = self.timers.keys().next().map(|(at_ms, _)| *at_ms);
            let wake = match next_timer_ms {
                Some(at_ms) => self.started + Duration::from_millis(at_ms),
                None => Instant::now() + Duration::from_millis(50),
            };
            let tick = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
            tokio::select! {
                biased;
                completion = completions.recv() => match completion {
                    Some(Persisted { token, result }) => self.node.handle_persisted(token, result, &mut out),
                    None => return,
                },
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input, &mut out),
                    None => return,
                },
                _ = &mut signal, if drain_deadline.is_none() => {
                    log::info!("signal received: finishing requests in flight, then stopping");
                    self.shutting_down = true;
                    drain_deadline = Some(
                        tokio::time::Instant::now() + Duration::from_millis(self.config.settings.request_timeout_ms),
                    );
                }
                _ = tick => {}
            }
            self.fire_due_timers(&mut out);
            self.apply(&mut out);
        }
    }

    fn fire_due_timers(&mut self, out: &mut Vec<Effect>) {
        let now = self.now_ms();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            let store = EngineStore {
                engine: &self.engine,
                ring: &self.ring,
            };
            self.node.handle_timer(now, timer, &store, out);
        }
    }

    fn handle(&mut self, input: Input, out: &mut Vec<Effect>) {
        let now = self.now_ms();
        let store = EngineStore {
            engine: &self.engine,
            ring: &self.ring,
        };
        match input {
            Input::Client { client, request } => {
                if self.shutting_down {
                    out.push(Effect::Reply {
                        client,
                        reply: ClientReply::Failed(ClientError::ShuttingDown),
                    });
                } else {
                    self.node.handle_client(now, client, request, &store, out);
                }
            }
            Input::Peer { from, message } => self.node.handle_message(now, from, message, &store, out),
            Input::Admin { id, query, respond } => {
                let answer = self.admin(query, out);
                let _ = respond.try_send(Frame::AdminReply { id, answer });
            }
            Input::Fetched(fetched) => {
                self.fetching.remove(&fetched.partition);
                if let Some(report) = fetched.report {
                    if self.transfers.len() == TRANSFERS_REMEMBERED {
                        self.transfers.pop_front();
                    }
                    self.transfers.push_back(report);
                }
                self.node.partition_fetched(fetched.partition, fetched.tree, out);
            }
        }
    }

    /// Asks `seed` to add this node to the ring.
    fn join(&mut self, seed: &str, out: &mut Vec<Effect>) -> Result<String, String> {
        let me = self.node.id();
        // No refusal from this node's own ring: one that started empty
        // routes by the cluster file's until gossip brings the current
        // one. The seed decides, and answers with its state.
        let addr: std::net::SocketAddr = seed
            .parse()
            .map_err(|error| format!("--seed {seed:?} is not an address: {error}"))?;
        let member = self
            .config
            .members
            .iter()
            .find(|member| member.addr == addr)
            .ok_or_else(|| format!("no node of the cluster file listens at {addr}"))?;
        if member.node == me {
            return Err("the seed must be another node, one in the ring".into());
        }
        self.node.request_join(member.node, out);
        Ok(format!("asked {} to add this node to the ring", member.name))
    }

    fn admin(&mut self, query: AdminQuery, out: &mut Vec<Effect>) -> AdminAnswer {
        match query {
            AdminQuery::Join { seed } => AdminAnswer::Change(self.join(&seed, out)),
            AdminQuery::Leave => {
                let me = self.node.id();
                AdminAnswer::Change(
                    self.node
                        .propose_leave(me, out)
                        .map(|()| {
                            format!(
                                "leaving: epoch {} pending; this node's partitions move to the others",
                                self.node.ring().epoch() + 1
                            )
                        })
                        .map_err(|error| error.to_string()),
                )
            }
            AdminQuery::Ring => AdminAnswer::Ring(self.describe_ring()),
            AdminQuery::Stats => AdminAnswer::Stats(Box::new(self.stats_report())),
            AdminQuery::Trees => AdminAnswer::Trees(
                self.node
                    .trees()
                    .into_iter()
                    .map(|tree| TreeDescription {
                        partition: tree.partition.0,
                        keys: tree.keys,
                        root: tree.root,
                    })
                    .collect(),
            ),
        }
    }

    /// The cluster as this node routes it: the assignment itself, with its
    /// epoch, so that clients route exactly as it does.
    fn describe_ring(&self) -> RingDescription {
        let ring = self.node.ring();
        let loads = ring.loads();
        let suspects = self.node.suspects();
        let settings = &self.config.settings;
        let status = self.node.membership();
        let pending = status.next.as_ref().map(|next| PendingDescription {
            epoch: next.epoch(),
            owners: next.owners().to_vec(),
            gaining: status.gaining_nodes.clone(),
            ready: status.ready.clone(),
            fetching: status.fetching.len() as u32,
            catching_up: status.catching_up.len() as u32,
        });
        RingDescription {
            n: settings.n,
            r: settings.r,
            w: settings.w,
            versioning: settings.versioning.to_string(),
            epoch: ring.epoch(),
            owners: ring.owners().to_vec(),
            members: self
                .config
                .members
                .iter()
                .map(|member| MemberDescription {
                    node: member.node,
                    name: member.name.clone(),
                    addr: member.addr.to_string(),
                    partitions: loads.get(&member.node).copied().unwrap_or(0),
                    suspected: suspects.contains(&member.node),
                })
                .collect(),
            pending,
        }
    }

    fn stats_report(&self) -> StatsReport {
        let hint = hint_partition(&self.config);
        let partitions = self.engine.stats();
        let needs_repair = partitions
            .iter()
            .filter_map(|partition| {
                let reason = partition.needs_repair.clone()?;
                Some(Repair {
                    partition: partition.partition,
                    reason,
                })
            })
            .collect();
        let (keys, bytes) = partitions
            .iter()
            .filter(|partition| partition.partition != hint)
            .fold((0u64, 0u64), |(keys, bytes), partition| {
                (keys + partition.keys, bytes + partition.bytes)
            });
        StatsReport {
            node: self.node.id(),
            protocol: self.node.stats().clone(),
            hints_pending: self.node.hints_pending() as u64,
            tombstones_held: self.node.tombstones_held() as u64,
            reaps_unanswered: self.node.reaps_unanswered() as u64,
            suspected: self.node.suspects(),
            keys,
            bytes,
            needs_repair,
            transfers: self
                .transfers
                .iter()
                .map(|report| TransferDescription {
                    partition: report.partition.0,
                    source: report.source,
                    bytes: report.bytes,
                    resumed_from: report.resumed_from,
                    files: report.files as u64,
                    millis: report.elapsed.as_millis() as u64,
                })
                .collect(),
            process: crate::process::figures(None, &self.membership.data_dir),
        }
    }

    /// A set past a bound its decoder enforces is never written (it could
    /// never be read back): the persist fails instead, so nothing is
    /// acknowledged for it. True when the set was refused.
    fn refuse_unreadable(&self, token: PersistToken, set: &SiblingSet) -> bool {
        let Err(over) = set.check_bounds() else { return false };
        log::error!("refusing to store a sibling set no decoder would read back: {over}");
        let _ = self.completion_tx.send(Persisted {
            token,
            result: Err(StoreError::TooLarge(over.to_string())),
        });
        true
    }

    fn apply(&mut self, out: &mut Vec<Effect>) {
        // Effects can cause effects (a partition already here is "fetched"
        // at once): carried out until none is left.
        while !out.is_empty() {
            let effects = std::mem::take(out);
            self.apply_each(effects, out);
        }
    }

    fn apply_each(&mut self, effects: Vec<Effect>, out: &mut Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { to, message } => {
                    if let Some(peer) = self.peers.get(&to) {
                        // Best effort: a full queue means the peer is slow or
                        // gone, and the protocol treats the loss as silence.
                        let _ = peer.try_send(Frame::Peer {
                            from: self.node.id(),
                            message,
                        });
                    }
                }
                Effect::Reply { client, reply } => {
                    let entry = self.clients.lock().recover().remove(&client);
                    if let Some((connection, id)) = entry {
                        let _ = connection.try_send(Frame::Response { id, reply });
                    }
                }
                Effect::Persist { token, key, set } => {
                    if self.refuse_unreadable(token, &set) {
                        continue;
                    }
                    let partition = self.ring.partition_of(&key);
                    // An empty set is a reaped tombstone: the key goes.
                    let payload = (!set.is_empty()).then(|| encode_sibling_set(&set));
                    self.submit(partition, key, payload, Some(token));
                }
                Effect::PersistHint { token, owner, key, set } => {
                    if self.refuse_unreadable(token, &set) {
                        continue;
                    }
                    let partition = hint_partition(&self.config);
                    self.submit(
                        partition,
                        hint_key(owner, &key),
                        Some(encode_sibling_set(&set)),
                        Some(token),
                    );
                }
                Effect::DropHint { owner, key } => {
                    let partition = hint_partition(&self.config);
                    self.submit(partition, hint_key(owner, &key), None, None);
                }
                Effect::PartitionRepaired { partition } => {
                    if let Err(error) = self.engine.clear_repair(partition) {
                        log::warn!("partition {} was repaired, but: {error}", partition.0);
                    }
                }
                Effect::SetTimer { timer, at_ms } => {
                    self.timer_sequence += 1;
                    self.timers.insert((at_ms, self.timer_sequence), timer);
                }
                Effect::Assignment { ring, next } => {
                    if let Err(error) = crate::assignment::write(&self.membership.data_dir, &ring, next.as_ref()) {
                        log::error!("cannot persist the assignment (epoch {}): {error}", ring.epoch());
                    }
                    self.ring = ring;
                }
                Effect::FetchPartition { partition, sources } => self.fetch(partition, sources, out),
            }
        }
    }

    /// Starts fetching a partition this node gains, unless it has the
    /// partition already.
    fn fetch(&mut self, partition: PartitionId, sources: Vec<NodeId>, out: &mut Vec<Effect>) {
        if self.engine.partitions().contains(&partition) {
            log::info!(
                "partition {}: data of it is here already; anti-entropy brings the rest",
                partition.0
            );
            self.node.partition_fetched(partition, None, out);
            return;
        }
        // Asked again while a fetch of it runs (a restarted change, two
        // proposals settled): the running one reports for both, and two
        // would write into the same staging directory.
        if !self.fetching.insert(partition) {
            return;
        }
        let sources: Vec<(NodeId, std::net::SocketAddr)> = sources
            .into_iter()
            .filter_map(|node| {
                let member = self.config.members.iter().find(|member| member.node == node)?;
                Some((node, member.addr))
            })
            .collect();
        tokio::spawn(super::transfer::fetch(
            partition,
            sources,
            Arc::clone(&self.membership.auth),
            self.membership.data_dir.clone(),
            Arc::clone(&self.engine),
            self.membership.inputs.clone(),
            Arc::clone(&self.fetch_slots),
        ));
    }

    fn submit(&self, partition: PartitionId, key: Vec<u8>, payload: Option<Vec<u8>>, token: Option<PersistToken>) {
        let completions = self.completion_tx.clone();
        let done = Box::new(move |result: Result<(), StorageError>| {
            if let Some(token) = token {
                let _ = completions.send(Persisted {
                    token,
                    result: result.map_err(|error| StoreError::from(&error)),
                });
            } else if let Err(error) = result {
                log::warn!("dropping a handed-off hint failed: {error}");
            }
        });
        if let Err(error) = self.engine.submit(partition, key, payload, done) {
            if let Some(token) = token {
                let _ = self.completion_tx.send(Persisted {
                    token,
                    result: Err(StoreError::from(&error)),
                });
            }
        }
    }
}

/// The anti-entropy trees of every partition the engine holds (the hint
/// partition aside), from the sets stored in its files: the bytes stored
/// are the canonical encoding, hashed as they are. A key that cannot be
/// read is left out (its partition is reported as needing repair, and the
/// next exchange finds the key missing). Also the keys that hold only
/// tombstones, for reaping.
fn rebuild_trees(engine: &Engine, hints: PartitionId) -> (BTreeMap<PartitionId, Tree>, Vec<Vec<u8>>) {
    let mut trees = BTreeMap::new();
    let mut tombstones = Vec::new();
    for partition in engine.partitions() {
        if partition == hints {
            continue;
        }
        let (tree, dead) = partition_tree(engine, partition);
        trees.insert(partition, tree);
        tombstones.extend(dead);
    }
    (trees, tombstones)
}

/// One partition's tree, and its keys that hold only tombstones.
pub(super) fn partition_tree(engine: &Engine, partition: PartitionId) -> (Tree, Vec<Vec<u8>>) {
    let mut tree = Tree::default();
    let mut tombstones = Vec::new();
    for key in engine.keys(partition) {
        match engine.get(partition, &key) {
            Ok(Some(bytes)) => {
                tree.set(&key, Some(entry_hash_encoded(&key, &bytes)));
                if decode_sibling_set(&bytes).is_ok_and(|set| set.live_values().next().is_none()) {
                    tombstones.push(key);
                }
            }
            Ok(None) => {}
            Err(error) => log::warn!(
                "anti-entropy tree of partition {}: a key is unreadable: {error}",
                partition.0
            ),
        }
    }
    (tree, tombstones)
}
