//! `dynamo-client`: an async, partition-aware client of a Dynamo cluster.
//!
//! It learns the ring from any node as the node describes it (the
//! assignment of every partition with its epoch, a typed admin answer:
//! [`dynamo_core::admin::RingDescription`]), never by re-deriving it; sends
//! each request to a node of the key's preference list; and falls back to
//! the others (then to every member) when a node cannot be reached.
//!
//! One module: [`Client`] (get, put, delete, admin queries, routing) and
//! its [`Error`]. Requests on one connection are answered in order; this
//! client keeps one connection per node and sends one request at a time on
//! it (enough for the CLI, the tests and the bench, which spreads its load
//! over many clients).

pub mod pace;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use dynamo_core::admin::{AdminAnswer, AdminQuery, DescriptionError, MemberDescription, RingDescription, StatsReport};
use dynamo_core::ids::NodeId;
use dynamo_core::protocol::{ClientError, ClientReply, ClientRequest};
use dynamo_core::ring::Ring;
use dynamo_core::version::VectorClock;
use dynamo_core::wire::{decode_frame, encode_frame, Frame};

/// Why a client call failed.
#[derive(Debug, Error)]
pub enum Error {
    /// No node could be reached.
    #[error("no node answered (tried {tried}): {last}")]
    Unreachable {
        /// The addresses tried.
        tried: String,
        /// The last failure.
        last: String,
    },
    /// A write reached a node and no answer came: it may or may not take
    /// effect. It is not sent anywhere else (that would make it twice);
    /// read the key before writing again.
    #[error(
        "{addr} took the write but did not answer ({reason}): it may or may not take effect; read before retrying"
    )]
    Indeterminate {
        /// The node.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// The cluster answered with a failure (its kind says what to do).
    #[error("{0}")]
    Failed(ClientError),
    /// The node answered something that does not fit the question.
    #[error("unexpected answer from {addr}: {answer}")]
    Unexpected {
        /// The node.
        addr: SocketAddr,
        /// What it said.
        answer: String,
    },
    /// A membership change was refused, or did not complete in time.
    #[error("{0}")]
    Change(String),
    /// The node described a ring no cluster could have.
    #[error("{addr} described an unusable ring: {source}")]
    BadDescription {
        /// The node.
        addr: SocketAddr,
        /// What is wrong with it.
        #[source]
        source: DescriptionError,
    },
}

/// Why one call to one node got no answer.
#[derive(Debug)]
enum CallError {
    /// The request never left whole (no connection, or a failed write):
    /// no node can have acted on it.
    NotSent(String),
    /// The request was sent; no answer came (a timeout, a closed
    /// connection): the node may have acted on it, or may yet.
    MaybeDelivered(String),
}

impl CallError {
    fn at(self, addr: SocketAddr) -> CallError {
        match self {
            CallError::NotSent(reason) => CallError::NotSent(format!("{addr}: {reason}")),
            CallError::MaybeDelivered(reason) => CallError::MaybeDelivered(format!("{addr}: {reason}")),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NotSent(reason) | CallError::MaybeDelivered(reason) => f.write_str(reason),
        }
    }
}

/// The cluster as a node described it.
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// The description as received: settings, epoch, members.
    pub description: RingDescription,
    /// Each member's address, by node.
    pub addrs: HashMap<NodeId, SocketAddr>,
    /// The ring, as the node routes it.
    pub ring: Ring,
}

impl ClusterView {
    fn from_description(addr: SocketAddr, description: RingDescription) -> Result<ClusterView, Error> {
        let ring = description
            .ring()
            .map_err(|source| Error::BadDescription { addr, source })?;
        let mut addrs = HashMap::new();
        for member in &description.members {
            let parsed = member.addr.parse().map_err(|_| Error::Unexpected {
                addr,
                answer: format!("member {} at {:?}, which is not an address", member.name, member.addr),
            })?;
            addrs.insert(member.node, parsed);
        }
        Ok(ClusterView {
            description,
            addrs,
            ring,
        })
    }

    /// N.
    pub fn n(&self) -> usize {
        self.description.n
    }

    /// The members as described.
    pub fn members(&self) -> &[MemberDescription] {
        &self.description.members
    }
}

/// A get's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResult {
    /// The live siblings.
    pub values: Vec<Vec<u8>>,
    /// The context to write with.
    pub context: VectorClock,
}

/// Room made in a connection's buffer before each read.
const READ_RESERVE_BYTES: usize = 16 * 1024;

struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr, timeout: Duration) -> Result<Connection, CallError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| CallError::NotSent(format!("{addr}: connect timed out")))?
            .map_err(|error| CallError::NotSent(format!("{addr}: {error}")))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            buffer: Vec::new(),
        })
    }

    async fn call(&mut self, frame: &Frame, id: u64) -> Result<Frame, CallError> {
        // A kept connection whose node closed it (a restart, a kill) reads
        // as closed: say so before sending, so that the request goes on a
        // fresh connection instead of being written into a dead one and
        // reported as maybe delivered. (Bytes waiting are late answers to
        // abandoned calls: kept in the buffer.)
        self.buffer.reserve(READ_RESERVE_BYTES);
        match self.stream.try_read_buf(&mut self.buffer) {
            Ok(0) => return Err(CallError::NotSent("the node had closed the connection".into())),
            Err(error) if error.kind() != std::io::ErrorKind::WouldBlock => {
                return Err(CallError::NotSent(error.to_string()))
            }
            _ => {}
        }
        let mut bytes = Vec::new();
        encode_frame(frame, &mut bytes);
        // A write that failed left at most part of the frame, which no node
        // decodes: the request was not sent.
        self.stream
            .write_all(&bytes)
            .await
            .map_err(|error| CallError::NotSent(error.to_string()))?;
        let delivered = |error: String| CallError::MaybeDelivered(error);
        loop {
            while let Some((frame, used)) = decode_frame(&self.buffer).map_err(|error| delivered(error.to_string()))? {
                self.buffer.drain(..used);
                match &frame {
                    Frame::Response { id: got, .. } | Frame::AdminReply { id: got, .. } if *got == id => {
                        return Ok(frame)
                    }
                    _ => continue, // an answer to an earlier, abandoned call
                }
            }
            // Straight into the buffer's spare room: zeroing a fresh 64 KiB
            // chunk per call was a fifth of the bench client's CPU.
            self.buffer.reserve(READ_RESERVE_BYTES);
            let read = self
                .stream
                .read_buf(&mut self.buffer)
                .await
                .map_err(|error| delivered(error.to_string()))?;
            if read == 0 {
                return Err(delivered("the node closed the connection".into()));
            }
        }
    }
}

/// How long a learned view routes requests before it is asked for again:
/// a client follows membership changes within this much (a request routed
/// by an older epoch meanwhile is forwarded by the node it reaches).
pub const VIEW_MAX_AGE: Duration = Duration::from_secs(2);

/// Where a membership change stands, as [`Client::join`] and
/// [`Client::leave`] report it while they wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeProgress {
    /// The epoch the node routes by.
    pub epoch: u64,
    /// The change pending, as the node sees it.
    pub pending: Option<dynamo_core::admin::PendingDescription>,
}

/// A client of one cluster.
pub struct Client {
    seeds: Vec<SocketAddr>,
    timeout: Duration,
    view: Mutex<Option<(std::time::Instant, Arc<ClusterView>)>>,
    connections: Mutex<HashMap<SocketAddr, Connection>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Client {
    /// A client that learns the cluster from `seeds` (any members), with a
    /// per-request `timeout`.
    pub fn new(seeds: Vec<SocketAddr>, timeout: Duration) -> Client {
        Client {
            seeds,
            timeout,
            view: Mutex::new(None),
            connections: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Sends one frame to `addr` and waits for its answer. `idempotent`:
    /// whether sending it twice is harmless (reads, admin queries); a put
    /// is not — a second delivery makes a second version — so a put is
    /// never sent again once it may have been delivered.
    async fn call(
        &self,
        addr: SocketAddr,
        idempotent: bool,
        frame_for: impl Fn(u64) -> Frame,
    ) -> Result<Frame, CallError> {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let frame = frame_for(id);
        let mut connections = self.connections.lock().await;
        // A kept connection may have died with its node (a restart): the
        // request goes again once on a fresh connection if it was not sent
        // (or, for an idempotent request, if no answer came).
        let reused = connections.contains_key(&addr);
        for attempt in 0..2 {
            let connection = match connections.entry(addr) {
                std::collections::hash_map::Entry::Occupied(existing) => existing.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(Connection::open(addr, self.timeout).await?)
                }
            };
            match tokio::time::timeout(self.timeout, connection.call(&frame, id)).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(error)) => {
                    connections.remove(&addr);
                    let again = matches!(error, CallError::NotSent(_)) || idempotent;
                    if attempt == 0 && reused && again {
                        continue;
                    }
                    return Err(error.at(addr));
                }
                Err(_) => {
                    connections.remove(&addr);
                    let reason = format!("{addr}: no answer within {} ms", self.timeout.as_millis());
                    return Err(CallError::MaybeDelivered(reason));
                }
            }
        }
        Err(CallError::MaybeDelivered(format!(
            "{addr}: the connection failed twice"
        )))
    }

    /// Sends an admin query to one node.
    ///
    /// # Errors
    /// The node cannot be reached or answers something else.
    pub async fn admin(&self, addr: SocketAddr, query: AdminQuery) -> Result<AdminAnswer, Error> {
        let answer = self
            .call(addr, true, |id| Frame::Admin {
                id,
                query: query.clone(),
            })
            .await
            .map_err(|last| Error::Unreachable {
                tried: addr.to_string(),
                last: last.to_string(),
            })?;
        match answer {
            Frame::AdminReply { answer, .. } => Ok(answer),
            other => Err(Error::Unexpected {
                addr,
                answer: format!("{other:?}"),
            }),
        }
    }

    /// One node's counters and storage figures.
    ///
    /// # Errors
    /// The node cannot be reached or answers something else.
    pub async fn stats(&self, addr: SocketAddr) -> Result<StatsReport, Error> {
        match self.admin(addr, AdminQuery::Stats).await? {
            AdminAnswer::Stats(report) => Ok(*report),
            other => Err(Error::Unexpected {
                addr,
                answer: format!("{other:?}"),
            }),
        }
    }

    /// The cluster as the node at `addr` describes it.
    ///
    /// # Errors
    /// The node cannot be reached, or describes no usable ring.
    pub async fn describe(&self, addr: SocketAddr) -> Result<ClusterView, Error> {
        match self.admin(addr, AdminQuery::Ring).await? {
            AdminAnswer::Ring(description) => ClusterView::from_description(addr, description),
            other => Err(Error::Unexpected {
                addr,
                answer: format!("{other:?}"),
            }),
        }
    }

    /// The cluster, as the first reachable seed describes it.
    ///
    /// # Errors
    /// No seed answers, or the answer is not a ring description.
    pub async fn view(&self) -> Result<ClusterView, Error> {
        self.shared_view().await.map(|view| ClusterView::clone(&view))
    }

    /// The cached view, shared (routing asks for it on every request).
    async fn shared_view(&self) -> Result<Arc<ClusterView>, Error> {
        let cached = self.view.lock().await.clone();
        if let Some((learned, view)) = &cached {
            if learned.elapsed() < VIEW_MAX_AGE {
                return Ok(Arc::clone(view));
            }
        }
        // Ask a member of the ring known (it may have moved on), then seeds.
        let mut asked: Vec<SocketAddr> = cached
            .as_ref()
            .map(|(_, view)| {
                view.ring
                    .members()
                    .iter()
                    .filter_map(|node| view.addrs.get(node).copied())
                    .collect()
            })
            .unwrap_or_default();
        for seed in &self.seeds {
            if !asked.contains(seed) {
                asked.push(*seed);
            }
        }
        let mut last = String::from("no seeds");
        for seed in asked {
            match self.describe(seed).await {
                Ok(view) => {
                    // Never back to an older epoch than the one known.
                    if let Some((_, known)) = &cached {
                        if known.ring.epoch() > view.ring.epoch() {
                            *self.view.lock().await = Some((std::time::Instant::now(), Arc::clone(known)));
                            return Ok(Arc::clone(known));
                        }
                    }
                    let view = Arc::new(view);
                    *self.view.lock().await = Some((std::time::Instant::now(), Arc::clone(&view)));
                    return Ok(view);
                }
                Err(Error::Unreachable { last: reason, .. }) => last = reason,
                Err(error) => last = error.to_string(),
            }
        }
        Err(Error::Unreachable {
            tried: self
                .seeds
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            last,
        })
    }

    /// Asks the node at `node` (running, outside the ring) to join it
    /// through the member at `seed`, and waits until the node routes by a
    /// ring that includes it, calling `progress` about twice a second.
    /// Returns the epoch it joined at.
    ///
    /// # Errors
    /// The node or seed cannot be reached, the change is refused (the
    /// node is a member already, another change is pending and does not
    /// end), or it does not complete within `deadline`.
    pub async fn join(
        &self,
        node: SocketAddr,
        seed: SocketAddr,
        deadline: Duration,
        progress: impl FnMut(&ChangeProgress),
    ) -> Result<u64, Error> {
        let query = AdminQuery::Join { seed: seed.to_string() };
        self.change(node, seed, query, true, deadline, progress).await
    }

    /// Asks the member at `node` to leave the ring, handing its partitions
    /// to the others, and waits until it routes by a ring without it
    /// (it may be stopped then). Returns that ring's epoch.
    ///
    /// # Errors
    /// As [`Client::join`]; also when fewer than N members would remain.
    pub async fn leave(
        &self,
        node: SocketAddr,
        deadline: Duration,
        progress: impl FnMut(&ChangeProgress),
    ) -> Result<u64, Error> {
        self.change(node, node, AdminQuery::Leave, false, deadline, progress)
            .await
    }

    /// Asks `node` for a change and waits for it, judging where it stands
    /// by `authority`'s view: for a join, the seed (a member, whose ring
    /// is current, where a node that just started empty may still route
    /// by an old ring until gossip reaches it); for a leave, the node.
    async fn change(
        &self,
        node: SocketAddr,
        authority: SocketAddr,
        query: AdminQuery,
        joining: bool,
        deadline: Duration,
        mut progress: impl FnMut(&ChangeProgress),
    ) -> Result<u64, Error> {
        let started = std::time::Instant::now();
        let me = self
            .describe(node)
            .await?
            .description
            .members
            .iter()
            .find(|member| member.addr.parse::<SocketAddr>().ok() == Some(node))
            .map(|member| member.node)
            .ok_or_else(|| Error::Change(format!("{node} is not in its own cluster file")))?;
        let mut asked_at: Option<std::time::Instant> = None;
        loop {
            // The nodes may restart during a long change: wait for them.
            let views = match (self.describe(authority).await, self.describe(node).await) {
                (Ok(view), Ok(own)) => (view, own),
                (Err(_), _) | (_, Err(_)) if started.elapsed() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                (Err(error), _) | (_, Err(error)) => return Err(error),
            };
            let (view, own) = views;
            let member = view.ring.members().contains(&me);
            if member == joining && view.description.pending.is_none() {
                if asked_at.is_some() {
                    // Done once the node itself routes by it too.
                    if own.ring.epoch() >= view.ring.epoch() {
                        return Ok(view.ring.epoch());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                return Err(Error::Change(if joining {
                    format!("{node} is already a member (epoch {})", view.ring.epoch())
                } else {
                    format!("{node} is not a member (epoch {})", view.ring.epoch())
                }));
            }
            progress(&ChangeProgress {
                epoch: view.ring.epoch(),
                pending: view.description.pending.clone(),
            });
            // Ask (again, while no change of ours is pending: a change
            // pending elsewhere refuses it, and a join request can be lost).
            let ours_pending = view.description.pending.as_ref().is_some_and(|pending| {
                Ring::from_assignment(pending.owners.clone(), pending.epoch)
                    .is_ok_and(|next| next.members().contains(&me) == joining)
            });
            let due = asked_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(2));
            if !ours_pending && due {
                match self.admin(node, query.clone()).await? {
                    AdminAnswer::Change(Ok(_)) => {}
                    AdminAnswer::Change(Err(reason)) if reason.contains("a change is pending") => {}
                    AdminAnswer::Change(Err(reason)) => return Err(Error::Change(reason)),
                    other => {
                        return Err(Error::Unexpected {
                            addr: node,
                            answer: format!("{other:?}"),
                        })
                    }
                }
                asked_at = Some(std::time::Instant::now());
            }
            if started.elapsed() >= deadline {
                return Err(Error::Change(format!(
                    "the change did not complete within {} s (epoch {}{})",
                    deadline.as_secs(),
                    view.ring.epoch(),
                    view.description
                        .pending
                        .map(|pending| format!(
                            ", epoch {} pending: {} of {} gaining nodes ready",
                            pending.epoch,
                            pending.ready.len(),
                            pending.gaining.len()
                        ))
                        .unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Nodes to try for `key`: its preference list, then every other member.
    ///
    /// # Errors
    /// The cluster view cannot be learned.
    pub async fn route(&self, key: &[u8]) -> Result<Vec<SocketAddr>, Error> {
        let view = self.shared_view().await?;
        let mut order: Vec<SocketAddr> = view
            .ring
            // Every member, in walk order (`walk` would count them first).
            .preference_list(view.ring.partition_of(key), view.addrs.len())
            .into_iter()
            .filter_map(|node| view.addrs.get(&node).copied())
            .collect();
        for seed in &self.seeds {
            if !order.contains(seed) {
                order.push(*seed);
            }
        }
        Ok(order)
    }

    /// Sends `request` to the first node of `order` that answers; returns
    /// the reply and the node that gave it.
    ///
    /// # Errors
    /// No node of `order` answered, or one answered with something other
    /// than a response.
    pub async fn request_routed(
        &self,
        order: &[SocketAddr],
        request: ClientRequest,
    ) -> Result<(ClientReply, SocketAddr), Error> {
        let mut last = String::from("no nodes");
        let idempotent = matches!(request, ClientRequest::Get { .. });
        for &addr in order {
            match self
                .call(addr, idempotent, |id| Frame::Request {
                    id,
                    request: request.clone(),
                })
                .await
            {
                Ok(Frame::Response { reply, .. }) => return Ok((reply, addr)),
                Ok(other) => {
                    return Err(Error::Unexpected {
                        addr,
                        answer: format!("{other:?}"),
                    })
                }
                // A put that may have reached a node must not go to the
                // next one: if the first still coordinates it (a paused
                // node, a slow one), the write is made twice, as two
                // versions, and the second can bring back a value a later
                // write already superseded.
                Err(CallError::MaybeDelivered(reason)) if !idempotent => {
                    return Err(Error::Indeterminate { addr, reason });
                }
                Err(error) => last = error.to_string(),
            }
        }
        Err(Error::Unreachable {
            tried: order.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            last,
        })
    }

    /// Reads `key`, waiting for `r` replies (the cluster's R when `None`).
    ///
    /// # Errors
    /// Unreachable cluster, or a failure (timeout) reported by it.
    pub async fn get(&self, key: &[u8], r: Option<usize>) -> Result<GetResult, Error> {
        let order = self.route(key).await?;
        self.get_via(&order, key, r).await
    }

    /// Reads `key` through the given nodes, in order.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub async fn get_via(&self, order: &[SocketAddr], key: &[u8], r: Option<usize>) -> Result<GetResult, Error> {
        match self
            .request_routed(order, ClientRequest::Get { key: key.to_vec(), r })
            .await?
        {
            (ClientReply::Got { values, context }, _) => Ok(GetResult { values, context }),
            (ClientReply::Failed(error), _) => Err(Error::Failed(error)),
            (other, addr) => Err(Error::Unexpected {
                addr,
                answer: format!("{other:?}"),
            }),
        }
    }

    /// Writes `value` (or deletes, with `None`) with `context`.
    ///
    /// # Errors
    /// Unreachable cluster, or a failure reported by it (a timeout leaves
    /// the write's fate unknown).
    pub async fn put(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        context: &VectorClock,
        w: Option<usize>,
    ) -> Result<(), Error> {
        let order = self.route(key).await?;
        self.put_via(&order, key, value, context, w).await
    }

    /// Writes through the given nodes, in order.
    ///
    /// # Errors
    /// As [`Client::put`].
    pub async fn put_via(
        &self,
        order: &[SocketAddr],
        key: &[u8],
        value: Option<&[u8]>,
        context: &VectorClock,
        w: Option<usize>,
    ) -> Result<(), Error> {
        let request = ClientRequest::Put {
            key: key.to_vec(),
            context: context.clone(),
            value: value.map(<[u8]>::to_vec),
            w,
        };
        match self.request_routed(order, request).await? {
            (ClientReply::Stored, _) => Ok(()),
            (ClientReply::Failed(error), _) => Err(Error::Failed(error)),
            (other, addr) => Err(Error::Unexpected {
                addr,
                answer: format!("{other:?}"),
            }),
        }
    }
}
