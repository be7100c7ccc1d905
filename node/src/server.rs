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
//!
//! Files: this one starts a node (cluster file, data directory, storage,
//! hints, listener); `core.rs` is the core task (effects, timers, admin
//! answers); `connections.rs` the accept loop, the per-connection reader
//! and writer tasks and the peer writers.

mod auth;
mod connections;
mod core;
mod transfer;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::sync::Recover;

use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use self::auth::PeerAuth;
use self::connections::{accept_loop, peer_writer, Connections, Outbox};
use self::core::{Core, Input, Persisted};
use crate::config::{ClusterConfig, ConfigError, Member};
use crate::data_dir::{self, DataDirError, Identity};
use crate::storage::{fresh_incarnation, CompactionPolicy, Engine, StorageConfig, StorageError};
use dynamo_core::ids::{NodeId, PartitionId};
use dynamo_core::protocol::{ClientError, ClientId, ClientReply, Node};
use dynamo_core::version::{decode_sibling_set, Actor, SiblingSet};
use dynamo_core::wire::Frame;

/// Frames queued for one connection or peer at most; beyond that, frames
/// to it are dropped (peers) or the request fails (clients).
const OUTBOUND_FRAMES_MAX: usize = 4_096;
/// Inputs queued for the core at most (client and peer traffic; storage
/// completions and timers have their own channels, bounded by the requests
/// in flight that caused them).
const CORE_INPUTS_MAX: usize = 16_384;
/// Bytes read from a socket at a time.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// A node's segment size: compaction rewrites sealed segments, so a
/// partition's dead bytes are bounded by about this much plus what the
/// compaction threshold lets pile up.
const NODE_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// How long a stopping node waits for its connections to send their last
/// replies.
const LAST_REPLIES_GRACE: Duration = Duration::from_secs(2);
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
    /// The data directory belongs to another node, or was written under
    /// another Q or versioning.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The cluster file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Members beyond loopback, and no secret to authenticate them with.
    #[error(
        "the cluster file names members beyond loopback ({addr}) but no cluster secret, so any host could send peer \
         messages: add `secret_file = \"secret\"` (a file of at least 16 random bytes, readable only by the nodes, \
         e.g. `head -c 32 /dev/urandom | base64 > secret`) or `secret = \"...\"` to every member's cluster file"
    )]
    NoSecret {
        /// A member address that is not loopback.
        addr: SocketAddr,
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
    /// Where to listen, when not at the address the cluster file gives
    /// (which is where the others reach it: a proxy in between, say).
    pub listen: Option<SocketAddr>,
}

/// Clients waiting for a reply: the connection to answer on and the id
/// their request carried. Shared by the connection readers (which add) and
/// the core (which answers and removes).
type Waiting = Arc<Mutex<HashMap<ClientId, (Outbox, u64)>>>;

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

/// Answers every client request still waiting with `ShuttingDown` (nothing
/// more will be done for it here), and forgets them.
fn fail_waiting_clients(clients: &Waiting) {
    let waiting: Vec<_> = clients.lock().recover().drain().collect();
    if !waiting.is_empty() {
        log::info!("answering {} requests still waiting: shutting down", waiting.len());
    }
    for (_, (connection, id)) in waiting {
        let reply = ClientReply::Failed(ClientError::ShuttingDown);
        let _ = connection.try_send(Frame::Response { id, reply });
    }
}

/// A cluster without a secret runs only when every member is on loopback.
fn check_secret(config: &ClusterConfig) -> Result<(), ServerError> {
    if config.secret.is_none() {
        if let Some(remote) = config.members.iter().find(|member| !member.addr.ip().is_loopback()) {
            return Err(ServerError::NoSecret { addr: remote.addr });
        }
        log::warn!("no cluster secret: peers are not authenticated (allowed because every member is on loopback)");
    }
    Ok(())
}

/// Claims the data directory for this node (its `NODE` file, checked
/// against Q and the versioning) and opens its storage; true when the
/// directory was new (nothing in it yet).
fn open_storage(config: &ClusterConfig, name: &str, data_dir: &Path) -> Result<(Engine, bool), ServerError> {
    let identity = Identity {
        name: name.to_string(),
        partitions: config.partitions,
        versioning: config.settings.versioning,
    };
    let fresh = data_dir::claim(data_dir, &identity)?;
    let storage = StorageConfig {
        sync: config.sync,
        // Compaction works on sealed segments: smaller segments let it
        // reclaim a partition's dead bytes long before 64 MiB of them.
        segment_bytes_max: config.segment_bytes.unwrap_or(NODE_SEGMENT_BYTES),
        compaction: Some(CompactionPolicy::default()),
        ..StorageConfig::default()
    };
    Ok((Engine::open(&data_dir.join("partitions"), storage)?, fresh))
}

/// The hints this node persisted before it stopped, as `(owner, key, set)`.
fn recover_hints(engine: &Engine, partition: PartitionId) -> Result<Vec<(NodeId, Vec<u8>, SiblingSet)>, StorageError> {
    let mut hints = Vec::new();
    for key in engine.keys(partition) {
        if key.len() < 4 {
            continue;
        }
        let owner = NodeId(u32::from_be_bytes([key[0], key[1], key[2], key[3]]));
        if let Some(bytes) = engine.get(partition, &key)? {
            match decode_sibling_set(&bytes) {
                Ok(set) => hints.push((owner, key[4..].to_vec(), set)),
                Err(error) => log::error!("skipping an undecodable hint: {error}"),
            }
        }
    }
    Ok(hints)
}

/// One writer task per other member, each with its bounded queue.
fn spawn_peer_writers(members: &[Member], auth: &Arc<PeerAuth>) -> HashMap<NodeId, mpsc::Sender<Frame>> {
    let mut peers = HashMap::new();
    for other in members.iter().filter(|other| other.node != auth.me) {
        let (tx, rx) = mpsc::channel(OUTBOUND_FRAMES_MAX);
        tokio::spawn(peer_writer(other.addr, other.node, Arc::clone(auth), rx));
        peers.insert(other.node, tx);
    }
    peers
}

/// What `serve` does from a command line: loads the cluster file, names
/// the log, and runs node `id` with its data in `data` (default
/// `data/<id>`). Shared by `dynamo-node serve` and the node processes that
/// `dynamo-bench` starts from its own binary.
///
/// # Errors
/// The cluster file is not valid, or [`serve`] fails.
pub fn serve_from_file(
    cluster: &Path,
    id: &str,
    data: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> Result<(), ServerError> {
    let config = ClusterConfig::load(cluster)?;
    crate::logging::set_name(id);
    let data_dir = data.unwrap_or_else(|| PathBuf::from("data").join(id));
    serve(ServeOptions {
        config,
        name: id.to_string(),
        data_dir,
        listen,
    })
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
    let ServeOptions {
        config,
        name,
        data_dir,
        listen,
    } = options;
    let member = config.member(&name).cloned().ok_or_else(|| ServerError::UnknownNode {
        name: name.clone(),
        members: config
            .members
            .iter()
            .map(|member| member.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    check_secret(&config)?;
    let (engine, fresh) = open_storage(&config, &name, &data_dir)?;
    // The assignment the node last routed by, if membership ever changed;
    // else the cluster file's initial ring.
    let (ring, next) = match crate::assignment::read(&data_dir, &config)
        .map_err(|error| ServerError::Io(std::io::Error::other(error.to_string())))?
    {
        Some((ring, next)) => (ring, next),
        None => (
            config
                .ring()
                .map_err(|error| ServerError::Io(std::io::Error::other(error.to_string())))?,
            None,
        ),
    };
    let engine = Arc::new(engine);
    let hints = recover_hints(&engine, hint_partition(&config))?;
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
    let mut node = Node::new(member.node, actor, ring.clone(), config.settings.clone(), hints).with_next(next);
    // Anti-entropy repairs first what is known to be missing: every
    // partition of a data directory that starts empty (a new node, or a
    // wiped one), and each partition storage salvaged.
    let salvaged: Vec<PartitionId> = engine
        .stats()
        .iter()
        .filter(|partition| partition.needs_repair.is_some() && partition.partition.0 < config.partitions)
        .map(|partition| partition.partition)
        .collect();
    if !salvaged.is_empty() {
        log::warn!(
            "{} partitions need repair: anti-entropy takes them first",
            salvaged.len()
        );
    }
    node.repair_first(salvaged);
    let restored = data_dir.join(crate::archive::RESTORED_MARKER);
    if restored.exists() {
        log::warn!("restored from an archive: anti-entropy repairs every partition from the peers first");
    }
    if (fresh || restored.exists()) && ring.members().len() > 1 {
        node.repair_first((0..config.partitions).map(PartitionId));
    }
    // The marker has done its work once the node knows (a crash before
    // the repairs end costs only the order of the next start's exchanges).
    let _ = std::fs::remove_file(&restored);
    let listen = listen.unwrap_or(member.addr);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Bind { addr: listen, source })?;
    let (input_tx, input_rx) = mpsc::channel::<Input>(CORE_INPUTS_MAX);
    let (completion_tx, completion_rx) = mpsc::unbounded_channel::<Persisted>();
    let auth = Arc::new(PeerAuth {
        me: member.node,
        ip: member.addr.ip(),
        members: config.members.iter().map(|member| member.node).collect(),
        secret: config.secret.as_ref().map(|source| source.secret().as_bytes().to_vec()),
    });
    let peers = spawn_peer_writers(&config.members, &auth);
    let clients: Waiting = Arc::default();
    let connections = Arc::new(Mutex::new(Connections::default()));
    let accept = tokio::spawn(accept_loop(
        listener,
        input_tx.clone(),
        Arc::clone(&clients),
        Arc::clone(&connections),
        Arc::clone(&auth),
        Arc::new(data_dir.clone()),
    ));
    println!("ready {name} {}", member.addr);
    let _ = std::io::stdout().flush();

    let core = Core::new(
        node,
        Arc::clone(&engine),
        config,
        peers,
        Arc::clone(&clients),
        completion_tx,
        self::core::Membership {
            inputs: input_tx.clone(),
            auth: Arc::clone(&auth),
            data_dir: data_dir.clone(),
        },
    );
    core.run(input_rx, completion_rx).await;
    accept.abort();
    drop(input_tx);
    // Every client still waiting is told, rather than left to see the
    // connection close; then each connection sends what is queued for it.
    fail_waiting_clients(&clients);
    connections::close_all(&connections, LAST_REPLIES_GRACE).await;
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
