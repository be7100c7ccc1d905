//! Connections: the accept loop, one reader and one writer task per
//! connection (clients and peers share the port; each frame says what it
//! is), and one writer per peer that connects lazily and drops messages
//! while the peer is unreachable (the protocol copes with loss).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::auth::{self, PeerAuth, Side};
use super::core::Input;
use super::{Waiting, CORE_INPUTS_MAX, OUTBOUND_FRAMES_MAX, READ_CHUNK_BYTES, RECONNECT_BACKOFF};
use crate::limits::{
    ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN, CONNECTIONS_MAX, CONNECTION_BACKLOG_BYTES_MAX,
    CONNECTION_REQUESTS_IN_FLIGHT_MAX, PARTIAL_FRAME_TIMEOUT, READ_RESERVE_BYTES,
};
use crate::sync::Recover;
use dynamo_core::ids::NodeId;
use dynamo_core::limits::FRAME_BYTES_MAX;
use dynamo_core::protocol::{ClientError, ClientId, ClientReply, ClientRequest};
use dynamo_core::wire::{decode_frame, encode_frame, Frame, Transfer};

/// The tasks of every open connection, so that shutdown can stop the
/// readers and wait for the writers to send what is queued.
#[derive(Default)]
pub(super) struct Connections {
    readers: Vec<tokio::task::AbortHandle>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Connections {
    fn add(&mut self, reader: tokio::task::AbortHandle, writer: tokio::task::JoinHandle<()>) {
        // Forget the connections that have closed since (bounded by the
        // connections open at once).
        self.readers.retain(|reader| !reader.is_finished());
        self.writers.retain(|writer| !writer.is_finished());
        self.readers.push(reader);
        self.writers.push(writer);
    }
}

/// Stops every connection's reader and waits, up to `limit`, for every
/// writer to send what was queued for it (replies the core gave in its
/// last steps included) and close. The caller has dropped every other
/// sender of the connections' queues (the waiting-clients map).
pub(super) async fn close_all(connections: &Mutex<Connections>, limit: Duration) {
    let writers = {
        let mut connections = connections.lock().recover();
        for reader in connections.readers.drain(..) {
            reader.abort();
        }
        std::mem::take(&mut connections.writers)
    };
    let all = async {
        for writer in writers {
            let _ = writer.await;
        }
    };
    if tokio::time::timeout(limit, all).await.is_err() {
        log::warn!("some connections did not take their last replies within {limit:?}");
    }
}

/// Where an inbound connection stands in the peer handshake.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PeerState {
    /// No handshake yet (a client, or a peer about to say hello).
    Unknown,
    /// Challenged `from`: the opener's nonce and ours.
    Challenged {
        from: NodeId,
        opener: auth::Bytes,
        acceptor: auth::Bytes,
    },
    /// `from` proved it holds the secret.
    Authenticated(NodeId),
}

impl PeerState {
    /// A peer says hello: answer with our nonce and proof.
    fn hello(&mut self, auth: &PeerAuth, from: NodeId, opener: auth::Bytes) -> Result<Frame, String> {
        let Some(secret) = auth.secret.as_deref() else {
            return Err(format!(
                "{from} opened a peer handshake, but this node has no cluster secret"
            ));
        };
        if from == auth.me || !auth.members.contains(&from) {
            return Err(format!("a peer handshake from {from}, which is not another member"));
        }
        if *self != PeerState::Unknown {
            return Err("a second peer handshake on one connection".into());
        }
        let acceptor = auth::nonce().map_err(|error| format!("no nonce: {error}"))?;
        let proof = auth::proof(secret, Side::Acceptor, from, auth.me, (&opener, &acceptor));
        *self = PeerState::Challenged { from, opener, acceptor };
        Ok(Frame::PeerChallenge { nonce: acceptor, proof })
    }

    /// The opener's proof: the connection now carries `from`'s messages.
    fn proof(&mut self, auth: &PeerAuth, proof: &auth::Bytes) -> Result<(), String> {
        let (Some(secret), PeerState::Challenged { from, opener, acceptor }) = (auth.secret.as_deref(), *self) else {
            return Err("a handshake proof without a challenge".into());
        };
        if !auth::verify(secret, Side::Opener, from, auth.me, (&opener, &acceptor), proof) {
            return Err(format!(
                "{from} failed the peer handshake: it does not hold this cluster's secret"
            ));
        }
        *self = PeerState::Authenticated(from);
        Ok(())
    }
}

pub(super) async fn accept_loop(
    listener: TcpListener,
    inputs: mpsc::Sender<Input>,
    clients: Waiting,
    connections: Arc<Mutex<Connections>>,
    auth: Arc<PeerAuth>,
    data_dir: Arc<PathBuf>,
) {
    let mut next_client = 0u64;
    let slots = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut refused_logged = tokio::time::Instant::now() - Duration::from_secs(1);
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => {
                backoff = ACCEPT_BACKOFF_MIN;
                accepted
            }
            Err(error) => {
                // Out of file descriptors (or another passing failure):
                // back off, doubling up to a second, instead of spinning.
                log::warn!("accept failed: {error}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // At the cap: close at once (the peer sees the connection
            // refused by a close) rather than let connections grow without
            // bound. Said at most once a second.
            if refused_logged.elapsed() >= Duration::from_secs(1) {
                log::warn!("{CONNECTIONS_MAX} connections are open: closing new ones (from {addr} and others)");
                refused_logged = tokio::time::Instant::now();
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        let (tx, rx) = Outbox::new();
        let writer = tokio::spawn(connection_writer(writer, rx, tx.backlog()));
        let inputs = inputs.clone();
        let clients = Arc::clone(&clients);
        next_client += 1;
        let connection = next_client;
        let auth = Arc::clone(&auth);
        let data_dir = Arc::clone(&data_dir);
        let reader = tokio::spawn(async move {
            let _slot = slot;
            let context = Context {
                inputs,
                clients,
                auth,
                data_dir,
            };
            if let Err(reason) = connection_reader(reader, connection, tx, context).await {
                log::warn!("closing the connection from {addr}: {reason}");
            }
        });
        connections.lock().recover().add(reader.abort_handle(), writer);
    }
}

/// What a connection's reader works with.
struct Context {
    inputs: mpsc::Sender<Input>,
    clients: Waiting,
    auth: Arc<PeerAuth>,
    /// The data directory partition transfers are served from.
    data_dir: Arc<PathBuf>,
}

async fn connection_reader(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    connection: u64,
    respond: Outbox,
    context: Context,
) -> Result<(), String> {
    let Context {
        inputs,
        clients,
        auth,
        data_dir,
    } = context;
    // Idle connections cost a small buffer, not a read chunk each: 1,100
    // of them once held 140 MB.
    let mut buffer: Vec<u8> = Vec::new();
    let mut peer = PeerState::Unknown;
    let mut requests = 0u64;
    // When the frame now half-received must be whole.
    let mut frame_deadline: Option<tokio::time::Instant> = None;
    loop {
        loop {
            // Backpressure: while this connection's replies are not being
            // read, take no more of its requests.
            respond.wait_for_room().await;
            match decode_frame(&buffer) {
                Ok(Some((frame, used))) => {
                    buffer.drain(..used);
                    let input = match frame {
                        Frame::Request { id, request } => {
                            requests += 1;
                            // Client ids: connection number and request count.
                            let client = ClientId((connection << 32) | (requests & 0xffff_ffff));
                            clients.lock().recover().insert(client, (respond.clone(), id));
                            respond.request_taken();
                            if !admit_client(&inputs, client, request, &clients) {
                                return Ok(());
                            }
                            continue;
                        }
                        Frame::Peer { from, message } => {
                            if auth.secret.is_some() && peer != PeerState::Authenticated(from) {
                                return Err(format!(
                                    "a peer frame from {from} on a connection that did not complete the handshake"
                                ));
                            }
                            Input::Peer { from, message }
                        }
                        Frame::PeerHello { from, nonce } => {
                            let challenge = peer.hello(&auth, from, nonce)?;
                            if !respond.send(challenge).await {
                                return Ok(());
                            }
                            continue;
                        }
                        Frame::PeerProof { proof } => {
                            peer.proof(&auth, &proof)?;
                            continue;
                        }
                        Frame::PeerChallenge { .. } => {
                            return Err("a handshake challenge sent to the accepting side".into());
                        }
                        Frame::Transfer(Transfer::Ask { partition, have }) => {
                            if auth.secret.is_some() && !matches!(peer, PeerState::Authenticated(_)) {
                                return Err(
                                    "a partition transfer asked on a connection that did not complete the handshake"
                                        .into(),
                                );
                            }
                            let runtime = tokio::runtime::Handle::current();
                            let data_dir = Arc::clone(&data_dir);
                            let respond = respond.clone();
                            tokio::task::spawn_blocking(move || {
                                super::transfer::serve(runtime, &data_dir, partition, have, respond);
                            });
                            continue;
                        }
                        Frame::Transfer(_) => {
                            return Err("a node takes only transfer asks".into());
                        }
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
        if buffer.is_empty() {
            frame_deadline = None;
            if buffer.capacity() > READ_CHUNK_BYTES {
                // Give back what a large frame needed.
                buffer = Vec::new();
            }
        } else if frame_deadline.is_none() {
            frame_deadline = Some(tokio::time::Instant::now() + PARTIAL_FRAME_TIMEOUT);
        }
        buffer.reserve(READ_RESERVE_BYTES);
        let read = match frame_deadline {
            None => reader.read_buf(&mut buffer).await,
            Some(deadline) => match tokio::time::timeout_at(deadline, reader.read_buf(&mut buffer)).await {
                Ok(read) => read,
                Err(_) => {
                    return Err(format!(
                        "a frame stayed incomplete for {PARTIAL_FRAME_TIMEOUT:?} ({} bytes buffered)",
                        buffer.len()
                    ))
                }
            },
        };
        let read = read.map_err(|error| error.to_string())?;
        if read == 0 {
            if buffer.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "the connection closed inside a frame ({} bytes buffered)",
                buffer.len()
            ));
        }
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
/// Returns what the frames encoded cost against their connection's
/// backlog (see [`frame_cost`]).
fn encode_batch(first: Frame, frames: &mut mpsc::Receiver<Frame>, bytes: &mut Vec<u8>) -> usize {
    bytes.clear();
    let mut cost = frame_cost(&first);
    encode_bounded(&first, bytes);
    while bytes.len() < READ_CHUNK_BYTES {
        match frames.try_recv() {
            Ok(more) => {
                cost += frame_cost(&more);
                encode_bounded(&more, bytes);
            }
            Err(_) => break,
        }
    }
    cost
}

/// Appends `frame` unless it encodes past `FRAME_BYTES_MAX`, which every
/// decoder refuses (closing the connection): such a frame is dropped here,
/// and said, instead of sent.
fn encode_bounded(frame: &Frame, bytes: &mut Vec<u8>) {
    let start = bytes.len();
    encode_frame(frame, bytes);
    let len = bytes.len() - start;
    if len > FRAME_BYTES_MAX + 4 {
        bytes.truncate(start);
        log::error!("dropping a frame of {len} bytes: over the limit of {FRAME_BYTES_MAX} that every decoder enforces");
    }
}

async fn connection_writer(
    mut writer: tokio::net::tcp::OwnedWriteHalf,
    mut frames: mpsc::Receiver<Frame>,
    backlog: Arc<Backlog>,
) {
    // Grown by the first burst, not reserved up front: most connections
    // never send more than a few small frames at once.
    let mut bytes = Vec::new();
    while let Some(frame) = frames.recv().await {
        let cost = encode_batch(frame, &mut frames, &mut bytes);
        let written = writer.write_all(&bytes).await;
        backlog.drained(cost);
        if written.is_err() {
            return;
        }
    }
}

/// What one connection has queued to send, counted in the bytes of its
/// replies: the reader takes no more requests past
/// `CONNECTION_BACKLOG_BYTES_MAX`, so a client that pipelines requests and
/// never reads the replies holds that much at most, not gigabytes.
pub(super) struct Backlog {
    bytes: AtomicUsize,
    /// Requests taken from this connection and not answered yet: their
    /// replies are not in `bytes` until the core answers.
    in_flight: AtomicUsize,
    drained: tokio::sync::Notify,
}

impl Backlog {
    fn drained(&self, cost: usize) {
        self.bytes.fetch_sub(cost, Ordering::AcqRel);
        self.drained.notify_waiters();
    }
}

/// The sending side of a connection's queue, with its backlog.
#[derive(Clone)]
pub(super) struct Outbox {
    frames: mpsc::Sender<Frame>,
    backlog: Arc<Backlog>,
}

impl Outbox {
    /// A connection's queue: its outbox and the writer's end.
    pub(super) fn new() -> (Outbox, mpsc::Receiver<Frame>) {
        let (frames, receiver) = mpsc::channel(OUTBOUND_FRAMES_MAX);
        let backlog = Arc::new(Backlog {
            bytes: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            drained: tokio::sync::Notify::new(),
        });
        (Outbox { frames, backlog }, receiver)
    }

    fn backlog(&self) -> Arc<Backlog> {
        Arc::clone(&self.backlog)
    }

    /// A request was taken from this connection.
    pub(super) fn request_taken(&self) {
        self.backlog.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Queues `frame` unless the queue is full (then false: dropped).
    pub(super) fn try_send(&self, frame: Frame) -> bool {
        if matches!(frame, Frame::Response { .. }) {
            // Answered: its reply now counts in bytes, not as in flight.
            let _ = self
                .backlog
                .in_flight
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| count.checked_sub(1));
            self.backlog.drained.notify_waiters();
        }
        let cost = frame_cost(&frame);
        self.backlog.bytes.fetch_add(cost, Ordering::AcqRel);
        let sent = self.frames.try_send(frame).is_ok();
        if !sent {
            self.backlog.bytes.fetch_sub(cost, Ordering::AcqRel);
        }
        sent
    }

    /// Queues `frame`, waiting for room; false when the writer is gone.
    pub(super) async fn send(&self, frame: Frame) -> bool {
        let cost = frame_cost(&frame);
        self.backlog.bytes.fetch_add(cost, Ordering::AcqRel);
        let sent = self.frames.send(frame).await.is_ok();
        if !sent {
            self.backlog.bytes.fetch_sub(cost, Ordering::AcqRel);
        }
        sent
    }

    /// Waits until the queued replies are under the connection's bound
    /// and few enough of its requests are still being answered.
    pub(super) async fn wait_for_room(&self) {
        loop {
            let drained = self.backlog.drained.notified();
            if self.backlog.bytes.load(Ordering::Acquire) <= CONNECTION_BACKLOG_BYTES_MAX
                && self.backlog.in_flight.load(Ordering::Acquire) < CONNECTION_REQUESTS_IN_FLIGHT_MAX
            {
                return;
            }
            drained.await;
        }
    }
}

/// What a frame counts against its connection's backlog: its values'
/// bytes (the only part that can be large) plus a little for the rest.
fn frame_cost(frame: &Frame) -> usize {
    const OVERHEAD: usize = 64;
    match frame {
        Frame::Response {
            reply: ClientReply::Got { values, .. },
            ..
        } => OVERHEAD + values.iter().map(Vec::len).sum::<usize>(),
        Frame::Transfer(Transfer::Chunk(bytes)) => OVERHEAD + bytes.len(),
        _ => OVERHEAD,
    }
}

/// How long a peer handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// The opener's side of the peer handshake (see `auth.rs`).
async fn open_handshake(stream: &mut TcpStream, auth: &PeerAuth, secret: &[u8], peer: NodeId) -> Result<(), String> {
    let mine = auth::nonce().map_err(|error| format!("no nonce: {error}"))?;
    let mut bytes = Vec::new();
    encode_frame(
        &Frame::PeerHello {
            from: auth.me,
            nonce: mine,
        },
        &mut bytes,
    );
    stream.write_all(&bytes).await.map_err(|error| error.to_string())?;
    let mut buffer = Vec::new();
    let (theirs, proof) = loop {
        if let Some((frame, _)) = decode_frame(&buffer).map_err(|error| error.to_string())? {
            match frame {
                Frame::PeerChallenge { nonce, proof } => break (nonce, proof),
                other => return Err(format!("expected a handshake challenge, got {other:?}")),
            }
        }
        buffer.reserve(READ_RESERVE_BYTES);
        if stream.read_buf(&mut buffer).await.map_err(|error| error.to_string())? == 0 {
            return Err("the peer closed the connection during the handshake (does it hold the same secret?)".into());
        }
    };
    if !auth::verify(secret, Side::Acceptor, auth.me, peer, (&mine, &theirs), &proof) {
        return Err(format!("{peer} could not prove it holds the cluster secret"));
    }
    bytes.clear();
    let proof = auth::proof(secret, Side::Opener, auth.me, peer, (&mine, &theirs));
    encode_frame(&Frame::PeerProof { proof }, &mut bytes);
    stream.write_all(&bytes).await.map_err(|error| error.to_string())
}

/// Connects to `peer` at `addr` and, with a secret, completes the handshake.
pub(super) async fn connect_peer(addr: SocketAddr, peer: NodeId, auth: &PeerAuth) -> Option<TcpStream> {
    // From this node's own address, so that peer traffic between two
    // nodes is traffic between their two addresses (what a network
    // partition between them cuts).
    let connect = async {
        let socket = match auth.ip {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(auth.ip, 0))?;
        socket.connect(addr).await
    };
    let mut stream = match tokio::time::timeout(Duration::from_millis(500), connect).await {
        Ok(Ok(stream)) => stream,
        _ => return None,
    };
    let _ = stream.set_nodelay(true);
    if let Some(secret) = auth.secret.as_deref() {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, open_handshake(&mut stream, auth, secret, peer)).await {
            Ok(Ok(())) => {}
            Ok(Err(why)) => {
                log::warn!("peer handshake with {peer} at {addr} failed: {why}");
                return None;
            }
            Err(_) => {
                log::warn!("peer handshake with {peer} at {addr} took over {HANDSHAKE_TIMEOUT:?}");
                return None;
            }
        }
    }
    Some(stream)
}

pub(super) async fn peer_writer(
    addr: SocketAddr,
    peer: NodeId,
    auth: Arc<PeerAuth>,
    mut frames: mpsc::Receiver<Frame>,
) {
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
            match connect_peer(addr, peer, &auth).await {
                Some(connected) => stream = Some(connected),
                None => {
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
    fn a_frame_no_decoder_would_take_is_never_sent() {
        let huge = Frame::Response {
            id: 1,
            reply: ClientReply::Got {
                values: vec![vec![0u8; FRAME_BYTES_MAX]],
                context: dynamo_core::version::VectorClock::new(),
            },
        };
        let small = Frame::Response {
            id: 2,
            reply: ClientReply::Stored,
        };
        let mut bytes = Vec::new();
        encode_bounded(&small, &mut bytes);
        let kept = bytes.len();
        encode_bounded(&huge, &mut bytes);
        assert_eq!(bytes.len(), kept, "the oversized frame was not dropped");
        let (decoded, used) = decode_frame(&bytes).unwrap().unwrap();
        assert_eq!((decoded, used), (small, kept));
    }

    #[test]
    fn a_client_request_that_finds_the_core_full_is_answered_unavailable() {
        let (inputs, mut core) = mpsc::channel::<Input>(1);
        let (connection, mut answers) = Outbox::new();
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
