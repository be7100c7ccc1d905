//! The node runtime: turns [`dynamo_core::protocol::Node`]'s effects into TCP
//! frames, storage writes and tokio timers.
//!
//! Tasks and threads:
//! - the **core task** owns the protocol state machine; every input (client
//!   request, peer message, timer, storage completion, admin query) reaches
//!   it through a channel, and it carries out the effects in order;
//! - an **accept loop** and one reader and one writer task per connection
//!   (clients and peers share the port: each frame says what it is);
//! - one **peer writer** task per other member, connecting lazily and
//!   dropping messages while the peer is unreachable (the protocol copes
//!   with loss);
//! - the storage engine's own thread (see [`crate::storage`]).
//!
//! Shutdown (SIGTERM or Ctrl-C): new client requests are refused, requests
//! in flight are given up to the request timeout to finish, then storage is
//! closed (everything acknowledged is synced).

use crate::sync::Recover;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::config::ClusterConfig;
use crate::storage::{fresh_incarnation, Engine, StorageConfig, StorageError};
use dynamo_core::admin::{AdminAnswer, AdminQuery, MemberDescription, RingDescription, StatsReport};
use dynamo_core::ids::{NodeId, PartitionId};
use dynamo_core::protocol::{
    ClientError, ClientId, ClientReply, ClientRequest, Effect, Message, Node, PersistToken, Store, StoreError, Timer,
};
use dynamo_core::ring::Ring;
use dynamo_core::version::{decode_sibling_set, encode_sibling_set, Actor, SiblingSet};
use dynamo_core::wire::{decode_frame, encode_frame, Frame};

/// Frames queued for one connection or peer at most; beyond that, frames
/// to it are dropped (peers) or the request fails (clients).
const OUTBOUND_FRAMES_MAX: usize = 4_096;
/// Inputs queued for the core at most (client and peer traffic; storage
/// completions and timers have their own channels, bounded by the requests
/// in flight that caused them).
const CORE_INPUTS_MAX: usize = 16_384;
/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// How long a peer writer waits before trying a failed peer again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// Why a node could not start or stopped badly.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The node's name is not in the cluster file.
    #[error("node {name:?} is not in the cluster file (members: {members})")]
    UnknownNode {
        /// The name asked for.
        name: String,
        /// The names in the file.
        members: String,
    },
    /// The data directory belongs to another node.
    #[error("{path} holds the data of node {found:?}, not {expected:?}: pass the right --data")]
    WrongDataDir {
        /// The identity file.
        path: PathBuf,
        /// The node it names.
        found: String,
        /// The node starting.
        expected: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The listening address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another I/O failure.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How to run one node.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The cluster.
    pub config: ClusterConfig,
    /// This node's name in it.
    pub name: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// Clients waiting for a reply: the connection to answer on and the id
/// their request carried. Shared by the connection readers (which add) and
/// the core (which answers and removes).
type Waiting = Arc<std::sync::Mutex<HashMap<ClientId, (mpsc::Sender<Frame>, u64)>>>;

/// What reaches the core task from the connections.
enum Input {
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
        respond: mpsc::Sender<Frame>,
    },
}

/// The storage engine finished a persist the protocol asked for.
struct Persisted {
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

/// Hints live in a partition of their own, numbered Q (one past the ring's
/// last): key = owner (u32 BE) followed by the user key.
fn hint_partition(config: &ClusterConfig) -> PartitionId {
    PartitionId(config.partitions)
}

fn hint_key(owner: NodeId, key: &[u8]) -> Vec<u8> {
    let mut bytes = owner.0.to_be_bytes().to_vec();
    bytes.extend_from_slice(key);
    bytes
}

/// Checks (or, for a new directory, writes) the file naming the node whose
/// data this is.
fn claim_data_dir(data_dir: &Path, name: &str) -> Result<(), ServerError> {
    std::fs::create_dir_all(data_dir)?;
    let path = data_dir.join("NODE");
    match std::fs::read_to_string(&path) {
        Ok(found) if found.trim() == name => Ok(()),
        Ok(found) => Err(ServerError::WrongDataDir {
            path,
            found: found.trim().to_string(),
            expected: name.to_string(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, format!("{name}\n"))?;
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// What `serve` does from a command line: loads the cluster file, names
/// the log, and runs node `id` with its data in `data` (default
/// `data/<id>`). Shared by `dynamo-node serve` and the node processes that
/// `dynamo-bench` starts from its own binary.
///
/// # Errors
/// The cluster file is not valid, or [`serve`] fails; the message says why.
pub fn serve_from_file(cluster: &Path, id: &str, data: Option<PathBuf>) -> Result<(), String> {
    let config = crate::config::ClusterConfig::load(cluster).map_err(|error| error.to_string())?;
    crate::logging::set_name(id);
    let data_dir = data.unwrap_or_else(|| PathBuf::from("data").join(id));
    serve(ServeOptions {
        config,
        name: id.to_string(),
        data_dir,
    })
    .map_err(|error| error.to_string())
}

/// Runs a node until SIGTERM or Ctrl-C. Prints `ready <name> <addr>` on
/// stdout once it serves.
///
/// # Errors
/// A bad name or data directory, storage that cannot open, an address that
/// cannot be bound.
pub fn serve(options: ServeOptions) -> Result<(), ServerError> {
    // One thread for the core and every connection: a request then hops
    // between tasks, not threads. Measured on the 2-core machine with five
    // nodes: a multi-threaded runtime spent its time waking threads.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(options))
}

async fn run(options: ServeOptions) -> Result<(), ServerError> {
    let ServeOptions { config, name, data_dir } = options;
    let member = config.member(&name).cloned().ok_or_else(|| ServerError::UnknownNode {
        name: name.clone(),
        members: config
            .members
            .iter()
            .map(|member| member.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    claim_data_dir(&data_dir, &name)?;
    let ring = config
        .ring()
        .map_err(|error| ServerError::Io(std::io::Error::other(error.to_string())))?;
    let engine = Arc::new(Engine::open(
        &data_dir.join("partitions"),
        StorageConfig {
            sync: config.sync,
            ..StorageConfig::default()
        },
    )?);
    let mut hints = Vec::new();
    for key in engine.keys(hint_partition(&config)) {
        if key.len() < 4 {
            continue;
        }
        let owner = NodeId(u32::from_be_bytes([key[0], key[1], key[2], key[3]]));
        if let Some(bytes) = engine.get(hint_partition(&config), &key)? {
            match decode_sibling_set(&bytes) {
                Ok(set) => hints.push((owner, key[4..].to_vec(), set)),
                Err(error) => log::error!("skipping an undecodable hint: {error}"),
            }
        }
    }
    let actor = Actor {
        node: member.node,
        incarnation: fresh_incarnation()?,
    };
    log::info!(
        "{name} ({}) starts as incarnation {:x} with {} hints, storage on {:?}",
        member.node,
        actor.incarnation,
        hints.len(),
        engine.backend()
    );
    let node = Node::new(member.node, actor, ring.clone(), config.settings.clone(), hints);
    let listener = TcpListener::bind(member.addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: member.addr,
            source,
        })?;

    let (input_tx, input_rx) = mpsc::channel::<Input>(CORE_INPUTS_MAX);
    let (completion_tx, completion_rx) = mpsc::unbounded_channel::<Persisted>();
    let mut peers: HashMap<NodeId, mpsc::Sender<Frame>> = HashMap::new();
    for other in config.members.iter().filter(|other| other.node != member.node) {
        let (tx, rx) = mpsc::channel(OUTBOUND_FRAMES_MAX);
        tokio::spawn(peer_writer(other.addr, rx));
        peers.insert(other.node, tx);
    }
    let clients: Waiting = Arc::default();
    let accept = tokio::spawn(accept_loop(listener, input_tx.clone(), Arc::clone(&clients)));
    println!("ready {name} {}", member.addr);
    let _ = std::io::stdout().flush();

    let core = Core {
        node,
        engine: Arc::clone(&engine),
        ring,
        config: config.clone(),
        peers,
        clients,
        completion_tx,
        started: Instant::now(),
        shutting_down: false,
        timers: std::collections::BTreeMap::new(),
        timer_sequence: 0,
    };
    core.run(input_rx, completion_rx).await;
    accept.abort();
    drop(input_tx);
    match Arc::try_unwrap(engine) {
        Ok(engine) => engine.close(),
        Err(engine) => {
            if let Err(error) = engine.flush() {
                log::error!("final sync failed: {error}");
            }
        }
    }
    log::info!("{name} stopped");
    Ok(())
}

struct Core {
    node: Node,
    engine: Arc<Engine>,
    ring: Ring,
    config: ClusterConfig,
    peers: HashMap<NodeId, mpsc::Sender<Frame>>,
    clients: Waiting,
    completion_tx: mpsc::UnboundedSender<Persisted>,
    started: Instant,
    shutting_down: bool,
    /// Armed timers, by due time: one sleep for all of them instead of a
    /// task per timer.
    timers: std::collections::BTreeMap<(u64, u64), Timer>,
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
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    async fn run(mut self, mut inputs: mpsc::Receiver<Input>, mut completions: mpsc::UnboundedReceiver<Persisted>) {
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
                    Some(Persisted { token, result }) => {
                        self.node.handle_persisted(token, result, &mut out);
                    }
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
                let answer = self.admin(query);
                let _ = respond.try_send(Frame::AdminReply { id, answer });
            }
        }
    }

    fn admin(&self, query: AdminQuery) -> AdminAnswer {
        match query {
            AdminQuery::Ring => AdminAnswer::Ring(self.describe_ring()),
            AdminQuery::Stats => AdminAnswer::Stats(self.stats_report()),
        }
    }

    /// The cluster as this node routes it: the assignment itself, with its
    /// epoch, so that clients route exactly as it does.
    fn describe_ring(&self) -> RingDescription {
        let loads = self.ring.loads();
        let suspects = self.node.suspects();
        let settings = &self.config.settings;
        RingDescription {
            n: settings.n,
            r: settings.r,
            w: settings.w,
            versioning: settings.versioning.to_string(),
            epoch: self.ring.epoch(),
            owners: self.ring.owners().to_vec(),
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
        }
    }

    fn stats_report(&self) -> StatsReport {
        let hint = hint_partition(&self.config);
        let (keys, bytes) = self
            .engine
            .stats()
            .iter()
            .filter(|partition| partition.partition != hint)
            .fold((0u64, 0u64), |(keys, bytes), partition| {
                (keys + partition.keys, bytes + partition.bytes)
            });
        StatsReport {
            node: self.node.id(),
            protocol: self.node.stats().clone(),
            hints_pending: self.node.hints_pending() as u64,
            suspected: self.node.suspects(),
            keys,
            bytes,
        }
    }

    fn apply(&mut self, out: &mut Vec<Effect>) {
        for effect in out.drain(..) {
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
                    let partition = self.ring.partition_of(&key);
                    self.submit(partition, key, Some(encode_sibling_set(&set)), Some(token));
                }
                Effect::PersistHint { token, owner, key, set } => {
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
                Effect::SetTimer { timer, at_ms } => {
                    self.timer_sequence += 1;
                    self.timers.insert((at_ms, self.timer_sequence), timer);
                }
            }
        }
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

async fn accept_loop(listener: TcpListener, inputs: mpsc::Sender<Input>, clients: Waiting) {
    let mut next_client = 0u64;
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                log::warn!("accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::channel::<Frame>(OUTBOUND_FRAMES_MAX);
        tokio::spawn(connection_writer(writer, rx));
        let inputs = inputs.clone();
        let clients = Arc::clone(&clients);
        next_client += 1;
        let connection = next_client;
        tokio::spawn(async move {
            if let Err(reason) = connection_reader(reader, connection, tx, inputs, clients).await {
                log::warn!("closing the connection from {addr}: {reason}");
            }
        });
    }
}

async fn connection_reader(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    connection: u64,
    respond: mpsc::Sender<Frame>,
    inputs: mpsc::Sender<Input>,
    clients: Waiting,
) -> Result<(), String> {
    let mut buffer: Vec<u8> = Vec::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    let mut requests = 0u64;
    loop {
        loop {
            match decode_frame(&buffer) {
                Ok(Some((frame, used))) => {
                    buffer.drain(..used);
                    let input = match frame {
                        Frame::Request { id, request } => {
                            requests += 1;
                            // Client ids: connection number and request count.
                            let client = ClientId((connection << 32) | (requests & 0xffff_ffff));
                            clients.lock().recover().insert(client, (respond.clone(), id));
                            if !admit_client(&inputs, client, request, &clients) {
                                return Ok(());
                            }
                            continue;
                        }
                        Frame::Peer { from, message } => Input::Peer { from, message },
                        Frame::Admin { id, query } => Input::Admin {
                            id,
                            query,
                            respond: respond.clone(),
                        },
                        Frame::Response { .. } | Frame::AdminReply { .. } => {
                            return Err("a node does not take responses".into());
                        }
                    };
                    if inputs.send(input).await.is_err() {
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(error) => return Err(error.to_string()),
            }
        }
        let read = reader.read(&mut chunk).await.map_err(|error| error.to_string())?;
        if read == 0 {
            if buffer.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "the connection closed inside a frame ({} bytes buffered)",
                buffer.len()
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Hands a client's request to the core, or, when the core's queue is full
/// (the node is overloaded), answers `Unavailable` at once: nothing was
/// done, so the client may go to another node rather than wait behind
/// thousands of requests. Peer traffic is never shed this way; it waits.
/// Returns false when the core is gone.
fn admit_client(inputs: &mpsc::Sender<Input>, client: ClientId, request: ClientRequest, clients: &Waiting) -> bool {
    match inputs.try_send(Input::Client { client, request }) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            if let Some((connection, id)) = clients.lock().recover().remove(&client) {
                let reason = format!("the node has {CORE_INPUTS_MAX} requests queued");
                let reply = ClientReply::Failed(ClientError::Unavailable(reason));
                let _ = connection.try_send(Frame::Response { id, reply });
            }
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Encodes `first` and whatever else is already queued (up to a read
/// chunk's worth) into `bytes`: one write system call for a burst.
fn encode_batch(first: Frame, frames: &mut mpsc::Receiver<Frame>, bytes: &mut Vec<u8>) {
    bytes.clear();
    encode_frame(&first, bytes);
    while bytes.len() < READ_CHUNK_BYTES {
        match frames.try_recv() {
            Ok(more) => encode_frame(&more, bytes),
            Err(_) => break,
        }
    }
}

async fn connection_writer(mut writer: tokio::net::tcp::OwnedWriteHalf, mut frames: mpsc::Receiver<Frame>) {
    let mut bytes = Vec::with_capacity(READ_CHUNK_BYTES);
    while let Some(frame) = frames.recv().await {
        encode_batch(frame, &mut frames, &mut bytes);
        if writer.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

async fn peer_writer(addr: SocketAddr, mut frames: mpsc::Receiver<Frame>) {
    let mut stream: Option<TcpStream> = None;
    let mut retry_at = tokio::time::Instant::now();
    let mut bytes = Vec::with_capacity(READ_CHUNK_BYTES);
    while let Some(frame) = frames.recv().await {
        // Peers never write on our outbound connection: if it reads as
        // closed, the peer restarted; reconnect now rather than lose the
        // next frames to a dead socket.
        if let Some(connected) = stream.as_ref() {
            let mut probe = [0u8; 1];
            if matches!(connected.try_read(&mut probe), Ok(0) | Ok(1..)) {
                stream = None;
            }
        }
        if stream.is_none() {
            if tokio::time::Instant::now() < retry_at {
                continue; // unreachable for now: the message is lost
            }
            match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await {
                Ok(Ok(connected)) => {
                    let _ = connected.set_nodelay(true);
                    stream = Some(connected);
                }
                _ => {
                    retry_at = tokio::time::Instant::now() + RECONNECT_BACKOFF;
                    continue;
                }
            }
        }
        encode_batch(frame, &mut frames, &mut bytes);
        if let Some(connected) = stream.as_mut() {
            if connected.write_all(&bytes).await.is_err() {
                stream = None;
                retry_at = tokio::time::Instant::now() + RECONNECT_BACKOFF;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_request_that_finds_the_core_full_is_answered_unavailable() {
        let (inputs, mut core) = mpsc::channel::<Input>(1);
        let (connection, mut answers) = mpsc::channel::<Frame>(4);
        let clients: Waiting = Arc::default();
        let get = |key: &str| ClientRequest::Get {
            key: key.as_bytes().to_vec(),
            r: None,
        };
        for (client, id) in [(ClientId(1), 10), (ClientId(2), 11)] {
            clients.lock().recover().insert(client, (connection.clone(), id));
        }
        assert!(admit_client(&inputs, ClientId(1), get("a"), &clients));
        assert!(admit_client(&inputs, ClientId(2), get("b"), &clients));
        // The first went to the core; the second was answered at once and
        // is no longer waiting for the core.
        assert!(matches!(
            core.try_recv(),
            Ok(Input::Client {
                client: ClientId(1),
                ..
            })
        ));
        match answers.try_recv() {
            Ok(Frame::Response {
                id: 11,
                reply: ClientReply::Failed(ClientError::Unavailable(reason)),
            }) => assert!(reason.contains("queued"), "{reason}"),
            other => panic!("expected Unavailable for request 11, got {other:?}"),
        }
        assert!(!clients.lock().recover().contains_key(&ClientId(2)));
        drop(core);
        assert!(!admit_client(&inputs, ClientId(3), get("c"), &clients));
    }
}
