//! An async client: learns the ring from any node, sends each request to a
//! node of the key's preference list, and falls back to the others (then
//! to every member) when a node cannot be reached.
//!
//! Requests on one connection are answered in order; this client keeps one
//! connection per node and sends one request at a time on it (enough for
//! the CLI and the tests; the bench drives its own connections).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::ids::NodeId;
use crate::net::codec::{decode_frame, encode_frame, Frame};
use crate::protocol::{ClientError, ClientReply, ClientRequest};
use crate::ring::Ring;
use crate::version::VectorClock;

/// Why a client call failed.
#[derive(Debug, Error)]
pub enum ClientLibError {
    /// No node could be reached.
    #[error("no node answered (tried {tried}): {last}")]
    Unreachable {
        /// The addresses tried.
        tried: String,
        /// The last failure.
        last: String,
    },
    /// The cluster answered with a failure.
    #[error("{0}")]
    Failed(ClientError),
    /// The node said something this client does not understand.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// The cluster as a node described it (`ring` query).
#[derive(Clone, Debug)]
pub struct ClusterView {
    /// N.
    pub n: usize,
    /// Members: id, name, address, partitions owned, suspected by the node asked.
    pub members: Vec<(NodeId, String, SocketAddr, u64, bool)>,
    /// The ring, rebuilt from Q and the members (the assignment is
    /// deterministic).
    pub ring: Ring,
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
    async fn open(addr: SocketAddr, timeout: Duration) -> Result<Connection, String> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("{addr}: connect timed out"))?
            .map_err(|error| format!("{addr}: {error}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            buffer: Vec::new(),
        })
    }

    async fn call(&mut self, frame: &Frame, id: u64) -> Result<Frame, String> {
        let mut bytes = Vec::new();
        encode_frame(frame, &mut bytes);
        self.stream.write_all(&bytes).await.map_err(|error| error.to_string())?;
        loop {
            while let Some((frame, used)) = decode_frame(&self.buffer).map_err(|error| error.to_string())? {
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
                .map_err(|error| error.to_string())?;
            if read == 0 {
                return Err("the node closed the connection".into());
            }
        }
    }
}

/// A client of one cluster.
pub struct Client {
    seeds: Vec<SocketAddr>,
    timeout: Duration,
    view: Mutex<Option<Arc<ClusterView>>>,
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

    async fn call(&self, addr: SocketAddr, frame_for: impl Fn(u64) -> Frame) -> Result<Frame, String> {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let frame = frame_for(id);
        let mut connections = self.connections.lock().await;
        // A kept connection may have died with its node (a restart): if it
        // fails before any answer arrived, the request goes again once on a
        // fresh connection. For a put that makes delivery at-least-once.
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
                    if attempt == 0 && reused {
                        continue;
                    }
                    return Err(format!("{addr}: {error}"));
                }
                Err(_) => {
                    connections.remove(&addr);
                    return Err(format!("{addr}: no answer within {} ms", self.timeout.as_millis()));
                }
            }
        }
        Err(format!("{addr}: the connection failed twice"))
    }

    /// Sends an admin query (`ring`, `stats`) to one node; returns its JSON.
    ///
    /// # Errors
    /// The node cannot be reached or answers something else.
    pub async fn admin(&self, addr: SocketAddr, query: &str) -> Result<String, ClientLibError> {
        let answer = self
            .call(addr, |id| Frame::Admin {
                id,
                query: query.to_string(),
            })
            .await
            .map_err(|last| ClientLibError::Unreachable {
                tried: addr.to_string(),
                last,
            })?;
        match answer {
            Frame::AdminReply { text, .. } => Ok(text),
            other => Err(ClientLibError::Protocol(format!("{other:?}"))),
        }
    }

    /// The cluster, as the first reachable seed describes it.
    ///
    /// # Errors
    /// No seed answers, or the answer is not a ring description.
    pub async fn view(&self) -> Result<ClusterView, ClientLibError> {
        self.shared_view().await.map(|view| ClusterView::clone(&view))
    }

    /// The cached view, shared (routing asks for it on every request).
    async fn shared_view(&self) -> Result<Arc<ClusterView>, ClientLibError> {
        if let Some(view) = self.view.lock().await.as_ref() {
            return Ok(Arc::clone(view));
        }
        let mut last = String::from("no seeds");
        for &seed in &self.seeds {
            match self.admin(seed, "ring").await {
                Ok(text) => {
                    let view = Arc::new(parse_view(&text).map_err(ClientLibError::Protocol)?);
                    *self.view.lock().await = Some(Arc::clone(&view));
                    return Ok(view);
                }
                Err(ClientLibError::Unreachable { last: reason, .. }) => last = reason,
                Err(error) => last = error.to_string(),
            }
        }
        Err(ClientLibError::Unreachable {
            tried: self
                .seeds
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            last,
        })
    }

    /// Nodes to try for `key`: its preference list, then every other member.
    ///
    /// # Errors
    /// The cluster view cannot be learned.
    pub async fn route(&self, key: &[u8]) -> Result<Vec<SocketAddr>, ClientLibError> {
        let view = self.shared_view().await?;
        let addr_of = |node: NodeId| {
            view.members
                .iter()
                .find(|member| member.0 == node)
                .map(|member| member.2)
        };
        let mut order: Vec<SocketAddr> = view
            .ring
            // Every member, in walk order (`walk` would count them first).
            .preference_list(view.ring.partition_of(key), view.members.len())
            .into_iter()
            .filter_map(addr_of)
            .collect();
        for seed in &self.seeds {
            if !order.contains(seed) {
                order.push(*seed);
            }
        }
        Ok(order)
    }

    /// Sends `request` to the first node of `order` that answers.
    async fn request(&self, order: &[SocketAddr], request: ClientRequest) -> Result<ClientReply, ClientLibError> {
        self.request_routed(order, request).await.map(|(reply, _)| reply)
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
    ) -> Result<(ClientReply, SocketAddr), ClientLibError> {
        let mut last = String::from("no nodes");
        for &addr in order {
            match self
                .call(addr, |id| Frame::Request {
                    id,
                    request: request.clone(),
                })
                .await
            {
                Ok(Frame::Response { reply, .. }) => return Ok((reply, addr)),
                Ok(other) => return Err(ClientLibError::Protocol(format!("{other:?}"))),
                Err(error) => last = error,
            }
        }
        Err(ClientLibError::Unreachable {
            tried: order.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            last,
        })
    }

    /// Reads `key`, waiting for `r` replies (the cluster's R when `None`).
    ///
    /// # Errors
    /// Unreachable cluster, or a failure (timeout) reported by it.
    pub async fn get(&self, key: &[u8], r: Option<usize>) -> Result<GetResult, ClientLibError> {
        let order = self.route(key).await?;
        self.get_via(&order, key, r).await
    }

    /// Reads `key` through the given nodes, in order.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub async fn get_via(
        &self,
        order: &[SocketAddr],
        key: &[u8],
        r: Option<usize>,
    ) -> Result<GetResult, ClientLibError> {
        match self.request(order, ClientRequest::Get { key: key.to_vec(), r }).await? {
            ClientReply::Got { values, context } => Ok(GetResult { values, context }),
            ClientReply::Failed(error) => Err(ClientLibError::Failed(error)),
            other => Err(ClientLibError::Protocol(format!("{other:?}"))),
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
    ) -> Result<(), ClientLibError> {
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
    ) -> Result<(), ClientLibError> {
        let request = ClientRequest::Put {
            key: key.to_vec(),
            context: context.clone(),
            value: value.map(<[u8]>::to_vec),
            w,
        };
        match self.request(order, request).await? {
            ClientReply::Stored => Ok(()),
            ClientReply::Failed(error) => Err(ClientLibError::Failed(error)),
            other => Err(ClientLibError::Protocol(format!("{other:?}"))),
        }
    }
}

fn parse_view(text: &str) -> Result<ClusterView, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
    let n = value["n"].as_u64().ok_or("ring answer without n")? as usize;
    let partitions = value["partitions"].as_u64().ok_or("ring answer without partitions")? as u32;
    let mut members = Vec::new();
    for member in value["members"].as_array().ok_or("ring answer without members")? {
        let node = NodeId(member["node"].as_u64().ok_or("member without node")? as u32);
        let name = member["name"].as_str().ok_or("member without name")?.to_string();
        let addr: SocketAddr = member["addr"]
            .as_str()
            .ok_or("member without addr")?
            .parse()
            .map_err(|error| format!("member addr: {error}"))?;
        let owned = member["partitions"].as_u64().unwrap_or(0);
        let suspected = member["suspected"].as_bool().unwrap_or(false);
        members.push((node, name, addr, owned, suspected));
    }
    let nodes: Vec<NodeId> = members.iter().map(|member| member.0).collect();
    let ring = Ring::new(partitions, &nodes).map_err(|error| error.to_string())?;
    Ok(ClusterView { n, members, ring })
}
