//! Anti-entropy hash trees (§4.7): one per partition and replica, over the
//! partition's keys and their sibling sets (tombstones included), and the
//! exchange two replicas run to find the keys on which they differ.
//!
//! # The tree
//!
//! A key's *entry hash* is SHA-256 (first 8 bytes) over the key and its
//! sibling set's canonical encoding ([`entry_hash`]): two replicas have the
//! same entry hash for a key exactly when they hold the same versions. Keys
//! fall into [`SEGMENTS`] segments by a hash of the key alone; a segment's
//! hash is the wrapping sum of its entries' hashes, so a write updates it
//! in O(1) (take the key's old entry out, put the new one in) and no
//! exchange ever rebuilds the tree. Above the segments, [`DEPTH`] levels of
//! [`FANOUT`]-way nodes each hash their children; a write forgets the
//! hashes on its path and the next question about the tree recomputes only
//! those (O(DEPTH × FANOUT) per write, paid lazily).
//!
//! The tree keeps each key's entry hash (ordered by segment, then key), so
//! it can answer for a segment without touching storage; on open, the node
//! rebuilds it from its partition files with [`Tree::set`] per key.
//!
//! # The exchange
//!
//! The initiator compares roots; where they differ it asks for the
//! children of the differing nodes only, level by level
//! ([`Request::Children`]); at the bottom it asks for the entries of the
//! differing segments ([`Request::Segments`]) and compares them key by key.
//! What it learns is the list of [`Difference`]s: keys one side lacks or
//! holds differently. Repairing them (merging sibling sets both ways) is the
//! caller's. Bytes exchanged grow with the number of differing keys times
//! the depth (each differing key costs at most one node of `FANOUT` hashes
//! per level plus its segment's entries), not with the partition's size.
//!
//! Everything here is pure: the caller carries [`Request`]s and
//! [`Response`]s between replicas in whatever frames it uses
//! ([`Request::encode`] and friends give the bytes).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::codec::{put_bytes, put_varint, DecodeError, Reader};
use crate::ids::PartitionId;
use crate::limits::KEY_BYTES_MAX;
use crate::ring::Ring;
use crate::version::{encode_sibling_set, SiblingSet};

/// Children per inner node, as bits.
pub const FANOUT_BITS: u32 = 4;
/// Children per inner node.
pub const FANOUT: usize = 1 << FANOUT_BITS;
/// Levels below the root; the deepest holds the segments.
pub const DEPTH: u32 = 3;
/// Segments per tree (`FANOUT^DEPTH`).
pub const SEGMENTS: usize = 1 << (FANOUT_BITS * DEPTH);

/// Nodes a request may name, and segments it may ask for.
pub const REQUEST_NODES_MAX: usize = SEGMENTS;

/// Segments the initiator asks for in one request: the entries of many
/// differing segments (a replica that lost everything differs in all of
/// them) come in batches, so no response grows with the partition.
pub const SEGMENTS_PER_REQUEST: usize = 16;

fn sha64(parts: &[&[u8]]) -> u64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// The entry hash of `key` holding `set`.
pub fn entry_hash(key: &[u8], set: &SiblingSet) -> u64 {
    entry_hash_encoded(key, &encode_sibling_set(set))
}

/// The trees of one replica's partitions, built from its sibling sets (as
/// a node rebuilds them from its partition files on open).
pub fn trees_of<'a>(
    ring: &Ring,
    sets: impl IntoIterator<Item = (&'a Vec<u8>, &'a SiblingSet)>,
) -> BTreeMap<PartitionId, Tree> {
    let mut trees: BTreeMap<PartitionId, Tree> = BTreeMap::new();
    for (key, set) in sets {
        trees
            .entry(ring.partition_of(key))
            .or_default()
            .set(key, Some(entry_hash(key, set)));
    }
    trees
}

/// The entry hash of `key` from its set's encoding (what a partition file
/// stores: [`encode_sibling_set`] is canonical, so a set read back hashes
/// as the set written).
pub fn entry_hash_encoded(key: &[u8], encoded: &[u8]) -> u64 {
    sha64(&[key, encoded])
}

/// The segment `key` falls into.
pub fn segment_of(key: &[u8]) -> u32 {
    (sha64(&[b"segment", key]) >> (64 - FANOUT_BITS * DEPTH)) as u32
}

/// An inner node's hash from its children's.
fn combine(children: &[u64]) -> u64 {
    let mut bytes = [0u8; FANOUT * 8];
    for (slot, child) in bytes.chunks_exact_mut(8).zip(children) {
        slot.copy_from_slice(&child.to_le_bytes());
    }
    sha64(&[&bytes])
}

/// One replica's tree for one partition.
///
/// Sparse: it holds its entries, the sums of its non-empty segments and
/// the inner nodes computed since they last changed, so an empty or small
/// tree is small (the model keeps one per partition in every state) and a
/// full one holds at most its [`SEGMENTS`] sums and the nodes above them.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// (segment, key) → entry hash.
    entries: BTreeMap<(u32, Vec<u8>), u64>,
    /// Segment → the wrapping sum of its entries' hashes (absent: zero).
    segments: BTreeMap<u32, u64>,
    /// (depth, node) → the node's hash, for inner nodes computed since
    /// their subtree last changed; empty subtrees are never cached.
    inner: BTreeMap<(u32, u32), u64>,
}

/// The hash of an empty subtree whose root is at `depth`.
fn empty_hash(depth: u32) -> u64 {
    static EMPTY: std::sync::OnceLock<[u64; DEPTH as usize + 1]> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| {
        let mut hashes = [0u64; DEPTH as usize + 1];
        for depth in (0..DEPTH as usize).rev() {
            hashes[depth] = combine(&[hashes[depth + 1]; FANOUT]);
        }
        hashes
    })[depth as usize]
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Keys in the tree.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no key is in the tree.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records that `key` now has entry hash `hash` (`None`: the key is no
    /// longer held, as after a tombstone is reaped).
    pub fn set(&mut self, key: &[u8], hash: Option<u64>) {
        let segment = segment_of(key);
        let slot = (segment, key.to_vec());
        let old = match hash {
            Some(hash) => self.entries.insert(slot, hash),
            None => self.entries.remove(&slot),
        };
        if old == hash {
            return;
        }
        let sum = self
            .segments
            .get(&segment)
            .copied()
            .unwrap_or(0)
            .wrapping_sub(old.unwrap_or(0))
            .wrapping_add(hash.unwrap_or(0));
        if sum == 0 {
            self.segments.remove(&segment);
        } else {
            self.segments.insert(segment, sum);
        }
        for depth in 0..DEPTH {
            self.inner.remove(&(depth, segment >> (FANOUT_BITS * (DEPTH - depth))));
        }
    }

    /// The entry hash of `key`, if held.
    pub fn get(&self, key: &[u8]) -> Option<u64> {
        self.entries.get(&(segment_of(key), key.to_vec())).copied()
    }

    /// The hash of node `node` at `depth` (`DEPTH`: a segment's sum).
    fn node_hash(&mut self, depth: u32, node: u32) -> u64 {
        if depth == DEPTH {
            return self.segments.get(&node).copied().unwrap_or(0);
        }
        if let Some(&hash) = self.inner.get(&(depth, node)) {
            return hash;
        }
        let span = FANOUT_BITS * (DEPTH - depth);
        let first = node << span;
        let last = first + ((1u32 << span) - 1);
        if self.segments.range(first..=last).next().is_none() {
            return empty_hash(depth);
        }
        let mut children = [0u64; FANOUT];
        for (index, child) in children.iter_mut().enumerate() {
            *child = self.node_hash(depth + 1, node << FANOUT_BITS | index as u32);
        }
        let hash = combine(&children);
        self.inner.insert((depth, node), hash);
        hash
    }

    /// The root hash.
    pub fn root(&mut self) -> u64 {
        self.node_hash(0, 0)
    }

    /// The hashes of the children of node `node` at depth `depth` (which
    /// must be below [`DEPTH`]); `None` for a node that does not exist.
    pub fn children(&mut self, depth: u32, node: u32) -> Option<[u64; FANOUT]> {
        if depth >= DEPTH || node >= 1 << (FANOUT_BITS * depth) {
            return None;
        }
        let mut children = [0u64; FANOUT];
        for (index, child) in children.iter_mut().enumerate() {
            *child = self.node_hash(depth + 1, node << FANOUT_BITS | index as u32);
        }
        Some(children)
    }

    /// The entries of `segment`, by key.
    pub fn segment(&self, segment: u32) -> Vec<(Vec<u8>, u64)> {
        self.entries
            .range((segment, Vec::new())..)
            .take_while(|((at, _), _)| *at == segment)
            .map(|((_, key), hash)| (key.clone(), *hash))
            .collect()
    }
}

/// What the initiator asks the other replica.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Request {
    /// The root hash.
    Root,
    /// The children of these nodes, at this depth.
    Children {
        /// Depth of the nodes (0: the root).
        depth: u32,
        /// The nodes, ascending.
        nodes: Vec<u32>,
    },
    /// The entries of these segments.
    Segments(Vec<u32>),
}

/// The other replica's answer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Response {
    /// The root hash.
    Root(u64),
    /// The children of each node asked for, in order.
    Children(Vec<[u64; FANOUT]>),
    /// The entries of each segment asked for, in order.
    Segments(Vec<Vec<(Vec<u8>, u64)>>),
}

/// Answers `request` from `tree`; `None` when the request names a node or
/// segment that does not exist (a peer with another tree shape).
pub fn answer(tree: &mut Tree, request: &Request) -> Option<Response> {
    match request {
        Request::Root => Some(Response::Root(tree.root())),
        Request::Children { depth, nodes } => nodes
            .iter()
            .map(|&node| tree.children(*depth, node))
            .collect::<Option<Vec<_>>>()
            .map(Response::Children),
        Request::Segments(segments) => {
            if segments.iter().any(|&segment| segment as usize >= SEGMENTS) {
                return None;
            }
            Some(Response::Segments(
                segments.iter().map(|&segment| tree.segment(segment)).collect(),
            ))
        }
    }
}

const TAG_CHILDREN: u8 = 1;
const TAG_SEGMENTS: u8 = 2;
const TAG_ROOT: u8 = 3;

impl Request {
    /// The request's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::Root => out.push(TAG_ROOT),
            Request::Children { depth, nodes } => {
                out.push(TAG_CHILDREN);
                put_varint(&mut out, u64::from(*depth));
                put_varint(&mut out, nodes.len() as u64);
                for &node in nodes {
                    put_varint(&mut out, u64::from(node));
                }
            }
            Request::Segments(segments) => {
                out.push(TAG_SEGMENTS);
                put_varint(&mut out, segments.len() as u64);
                for &segment in segments {
                    put_varint(&mut out, u64::from(segment));
                }
            }
        }
        out
    }

    /// Decodes what [`Request::encode`] wrote; garbage is an error.
    ///
    /// # Errors
    /// The bytes are not a request.
    pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
        let mut reader = Reader::new(bytes);
        let request = match reader.u8("request tag")? {
            TAG_ROOT => Request::Root,
            TAG_CHILDREN => {
                let depth = reader.varint_at_most(DEPTH as usize, "depth")? as u32;
                let count = reader.varint_at_most(REQUEST_NODES_MAX, "node count")?;
                let nodes = (0..count)
                    .map(|_| reader.varint_at_most(SEGMENTS, "node").map(|node| node as u32))
                    .collect::<Result<_, _>>()?;
                Request::Children { depth, nodes }
            }
            TAG_SEGMENTS => {
                let count = reader.varint_at_most(REQUEST_NODES_MAX, "segment count")?;
                let segments = (0..count)
                    .map(|_| reader.varint_at_most(SEGMENTS, "segment").map(|segment| segment as u32))
                    .collect::<Result<_, _>>()?;
                Request::Segments(segments)
            }
            _ => return Err(reader.error("request tag")),
        };
        reader.finish()?;
        Ok(request)
    }
}

impl Response {
    /// The response's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Root(root) => {
                out.push(TAG_ROOT);
                out.extend_from_slice(&root.to_le_bytes());
            }
            Response::Children(nodes) => {
                out.push(TAG_CHILDREN);
                put_varint(&mut out, nodes.len() as u64);
                for children in nodes {
                    for child in children {
                        out.extend_from_slice(&child.to_le_bytes());
                    }
                }
            }
            Response::Segments(segments) => {
                out.push(TAG_SEGMENTS);
                put_varint(&mut out, segments.len() as u64);
                for entries in segments {
                    put_varint(&mut out, entries.len() as u64);
                    for (key, hash) in entries {
                        put_bytes(&mut out, key);
                        out.extend_from_slice(&hash.to_le_bytes());
                    }
                }
            }
        }
        out
    }

    /// Decodes what [`Response::encode`] wrote; garbage is an error, and
    /// nothing is allocated beyond what the input holds.
    ///
    /// # Errors
    /// The bytes are not a response.
    pub fn decode(bytes: &[u8]) -> Result<Response, DecodeError> {
        let mut reader = Reader::new(bytes);
        let response = match reader.u8("response tag")? {
            TAG_ROOT => Response::Root(reader.u64_le("root hash")?),
            TAG_CHILDREN => {
                let count = reader.varint_at_most(reader.remaining() / (FANOUT * 8), "node count")?;
                let mut nodes = Vec::with_capacity(count);
                for _ in 0..count {
                    let mut children = [0u64; FANOUT];
                    for child in &mut children {
                        *child = reader.u64_le("child hash")?;
                    }
                    nodes.push(children);
                }
                Response::Children(nodes)
            }
            TAG_SEGMENTS => {
                let count = reader.varint_at_most(REQUEST_NODES_MAX.min(reader.remaining()), "segment count")?;
                let mut segments = Vec::with_capacity(count);
                for _ in 0..count {
                    let entries = reader.varint_at_most(reader.remaining() / 9, "entry count")?;
                    let mut segment = Vec::with_capacity(entries);
                    for _ in 0..entries {
                        let key = reader.bytes(KEY_BYTES_MAX, "key")?.to_vec();
                        let hash = reader.u64_le("entry hash")?;
                        segment.push((key, hash));
                    }
                    segments.push(segment);
                }
                Response::Segments(segments)
            }
            _ => return Err(reader.error("response tag")),
        };
        reader.finish()?;
        Ok(response)
    }
}

/// A key the two replicas hold differently.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Difference {
    /// The key.
    pub key: Vec<u8>,
    /// Its entry hash here (`None`: not held here).
    pub local: Option<u64>,
    /// Its entry hash there.
    pub remote: Option<u64>,
}

/// The initiator's side of one exchange.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Exchange {
    /// The request in flight.
    asked: Option<Request>,
    /// Bytes of requests and responses so far.
    bytes: u64,
    /// Round trips so far.
    rounds: u32,
    /// Differing segments not yet asked for.
    queue: Vec<u32>,
    /// Differences found so far.
    found: Vec<Difference>,
    /// Once this many are found, the exchange ends (the rest wait for the
    /// next one).
    differences_max: usize,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Send this request, and give the response to [`Exchange::step`].
    Ask(Request),
    /// The exchange is over: these keys differ (sorted by key).
    Done(Vec<Difference>),
}

/// Why an exchange could not go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The response does not answer the request (another shape, or a bug).
    #[error("the response does not answer the request")]
    Mismatch,
    /// No request is in flight.
    #[error("no request is in flight")]
    Idle,
}

impl Exchange {
    /// Starts an exchange with a replica whose root is `remote_root`; it
    /// ends once it has found `differences_max` differing keys (or fewer,
    /// when that is all there are): a later exchange finds the rest.
    pub fn start(local: &mut Tree, remote_root: u64, differences_max: usize) -> (Exchange, Next) {
        let mut exchange = Exchange {
            asked: None,
            bytes: 16,
            rounds: 1,
            queue: Vec::new(),
            found: Vec::new(),
            differences_max: differences_max.max(1),
        };
        if local.root() == remote_root {
            return (exchange, Next::Done(Vec::new()));
        }
        let next = exchange.ask(Request::Children {
            depth: 0,
            nodes: vec![0],
        });
        (exchange, next)
    }

    /// Asks for the next batch of queued segments, or ends the exchange.
    fn next_segments(&mut self) -> Next {
        if self.queue.is_empty() || self.found.len() >= self.differences_max {
            let mut found = std::mem::take(&mut self.found);
            found.sort();
            return Next::Done(found);
        }
        let batch: Vec<u32> = self.queue.drain(..SEGMENTS_PER_REQUEST.min(self.queue.len())).collect();
        self.ask(Request::Segments(batch))
    }

    fn ask(&mut self, request: Request) -> Next {
        self.bytes += request.encode().len() as u64;
        self.rounds += 1;
        self.asked = Some(request.clone());
        Next::Ask(request)
    }

    /// Bytes exchanged so far (requests, responses, and the two roots).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Round trips so far (the roots' included).
    pub fn rounds(&self) -> u32 {
        self.rounds
    }

    /// Takes the other replica's response to the request in flight.
    ///
    /// # Errors
    /// No request was in flight, or the response does not answer it.
    pub fn step(&mut self, local: &mut Tree, response: &Response) -> Result<Next, ExchangeError> {
        let asked = self.asked.take().ok_or(ExchangeError::Idle)?;
        self.bytes += response.encode().len() as u64;
        match (asked, response) {
            (Request::Children { depth, nodes }, Response::Children(remote)) if remote.len() == nodes.len() => {
                let mut differing = Vec::new();
                for (&node, theirs) in nodes.iter().zip(remote) {
                    let ours = local.children(depth, node).ok_or(ExchangeError::Mismatch)?;
                    for (index, (mine, other)) in ours.iter().zip(theirs).enumerate() {
                        if mine != other {
                            differing.push(((node as usize) << FANOUT_BITS | index) as u32);
                        }
                    }
                }
                if differing.is_empty() {
                    return Ok(Next::Done(Vec::new()));
                }
                if depth + 1 == DEPTH {
                    self.queue = differing;
                    Ok(self.next_segments())
                } else {
                    Ok(self.ask(Request::Children {
                        depth: depth + 1,
                        nodes: differing,
                    }))
                }
            }
            (Request::Segments(segments), Response::Segments(remote)) if remote.len() == segments.len() => {
                let differences = &mut self.found;
                for (&segment, theirs) in segments.iter().zip(remote) {
                    let ours: BTreeMap<Vec<u8>, u64> = local.segment(segment).into_iter().collect();
                    let theirs: BTreeMap<&[u8], u64> =
                        theirs.iter().map(|(key, hash)| (key.as_slice(), *hash)).collect();
                    for (key, &hash) in &ours {
                        if theirs.get(key.as_slice()) != Some(&hash) {
                            differences.push(Difference {
                                key: key.clone(),
                                local: Some(hash),
                                remote: theirs.get(key.as_slice()).copied(),
                            });
                        }
                    }
                    for (key, &hash) in &theirs {
                        if !ours.contains_key(*key) {
                            differences.push(Difference {
                                key: key.to_vec(),
                                local: None,
                                remote: Some(hash),
                            });
                        }
                    }
                }
                Ok(self.next_segments())
            }
            _ => Err(ExchangeError::Mismatch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Runs an exchange between two trees, in memory, through the encoded
    /// bytes; returns the differences and the bytes exchanged.
    fn exchange(local: &mut Tree, remote: &mut Tree) -> (Vec<Difference>, u64, u32) {
        let (mut exchange, mut next) = Exchange::start(local, remote.root(), usize::MAX);
        loop {
            match next {
                Next::Done(differences) => return (differences, exchange.bytes(), exchange.rounds()),
                Next::Ask(request) => {
                    let request = Request::decode(&request.encode()).expect("a request decodes");
                    let response = answer(remote, &request).expect("same shape");
                    let response = Response::decode(&response.encode()).expect("a response decodes");
                    next = exchange.step(local, &response).expect("answers the request");
                }
            }
        }
    }

    fn key(index: u64) -> Vec<u8> {
        format!("cart:{index}").into_bytes()
    }

    #[test]
    fn equal_trees_agree_at_the_root() {
        let (mut a, mut b) = (Tree::new(), Tree::new());
        for index in 0..1000 {
            a.set(&key(index), Some(index * 7));
        }
        // Inserted in another order: the same tree.
        for index in (0..1000).rev() {
            b.set(&key(index), Some(index * 7));
        }
        assert_eq!(a.root(), b.root());
        let (differences, bytes, rounds) = exchange(&mut a, &mut b);
        assert!(differences.is_empty());
        assert_eq!((bytes, rounds), (16, 1));
    }

    #[test]
    fn updates_are_incremental_and_undoable() {
        let mut tree = Tree::new();
        let empty = tree.root();
        tree.set(b"a", Some(1));
        let one = tree.root();
        tree.set(b"b", Some(2));
        tree.set(b"b", Some(3));
        tree.set(b"b", None);
        assert_eq!(tree.root(), one);
        tree.set(b"a", None);
        assert_eq!(tree.root(), empty);
        assert!(tree.is_empty());
    }

    /// Random partitions of N keys where k keys differ (changed, missing
    /// on either side): the exchange finds exactly those keys, and the
    /// bytes it moves follow k, not N.
    #[test]
    fn the_exchange_finds_exactly_the_differing_keys_for_bytes_that_follow_them() {
        let mut rng = SplitMix64::new(42);
        for (keys, differing) in [
            (10_000u64, 0usize),
            (10_000, 1),
            (10_000, 10),
            (10_000, 100),
            (100_000, 10),
        ] {
            let (mut a, mut b) = (Tree::new(), Tree::new());
            for index in 0..keys {
                let hash = rng.next_u64();
                a.set(&key(index), Some(hash));
                b.set(&key(index), Some(hash));
            }
            let mut expected = Vec::new();
            while expected.len() < differing {
                let index = rng.below(keys + keys / 10);
                let name = key(index);
                if expected.iter().any(|difference: &Difference| difference.key == name) {
                    continue;
                }
                match rng.below(3) {
                    // Changed on one side.
                    0 => b.set(&name, Some(rng.next_u64())),
                    // Missing here.
                    1 => a.set(&name, None),
                    // Missing there (or new here).
                    _ => a.set(&name, Some(rng.next_u64())),
                }
                let (local, remote) = (a.get(&name), b.get(&name));
                if local != remote {
                    expected.push(Difference {
                        key: name,
                        local,
                        remote,
                    });
                }
            }
            expected.sort();
            let (differences, bytes, rounds) = exchange(&mut a, &mut b);
            assert_eq!(differences, expected, "{keys} keys, {differing} differing");
            // Per differing key at most one node of FANOUT hashes per
            // level and its segment's entries (N / SEGMENTS keys of ~20
            // bytes); nothing that grows with N otherwise.
            let per_key = (DEPTH as u64) * (FANOUT as u64 * 8 + 8) + (keys / SEGMENTS as u64 + 2) * 24;
            assert!(
                bytes <= 64 + differing as u64 * per_key,
                "{keys} keys, {differing} differing: {bytes} bytes"
            );
            // The roots, one round per level above the segments, and the
            // differing segments in batches.
            let batches = differing.div_ceil(SEGMENTS_PER_REQUEST) as u32;
            assert!(rounds <= DEPTH + 1 + batches, "{rounds} rounds");
        }
    }

    /// An exchange that stops at its limit finds at least that many
    /// differences (a whole batch of segments), and the next finds the rest.
    #[test]
    fn an_exchange_stops_at_its_limit_and_the_next_one_finds_the_rest() {
        let (mut a, mut b) = (Tree::new(), Tree::new());
        for index in 0..5_000 {
            a.set(&key(index), Some(index + 1));
        }
        let mut remaining = 5_000;
        let mut exchanges = 0;
        while remaining > 0 {
            let (mut exchange, mut next) = Exchange::start(&mut a, b.root(), 100);
            let differences = loop {
                match next {
                    Next::Ask(request) => {
                        let response = answer(&mut b, &request).unwrap();
                        next = exchange.step(&mut a, &response).unwrap();
                    }
                    Next::Done(differences) => break differences,
                }
            };
            assert!(differences.len() >= 100.min(remaining), "{}", differences.len());
            for difference in &differences {
                assert_eq!(difference.remote, None);
                b.set(&difference.key, difference.local);
            }
            remaining -= differences.len();
            exchanges += 1;
        }
        assert_eq!(a.root(), b.root());
        assert!(exchanges > 2, "{exchanges}");
    }

    #[test]
    fn garbage_and_other_shapes_are_refused_not_panicked_on() {
        let mut rng = SplitMix64::new(7);
        for _ in 0..2_000 {
            let length = rng.below(64) as usize;
            let bytes: Vec<u8> = (0..length).map(|_| rng.next_u64() as u8).collect();
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }
        let mut tree = Tree::new();
        assert_eq!(
            answer(
                &mut tree,
                &Request::Children {
                    depth: DEPTH,
                    nodes: vec![0]
                }
            ),
            None
        );
        assert_eq!(answer(&mut tree, &Request::Segments(vec![SEGMENTS as u32])), None);
        let (mut exchange, _) = Exchange::start(&mut tree, 1, usize::MAX);
        assert_eq!(
            exchange.step(&mut tree, &Response::Segments(Vec::new())),
            Err(ExchangeError::Mismatch)
        );
        assert_eq!(
            exchange.step(&mut tree, &Response::Children(Vec::new())),
            Err(ExchangeError::Idle)
        );
    }

    #[test]
    fn entry_hashes_follow_the_sibling_set_and_the_key() {
        let empty = SiblingSet::new();
        assert_eq!(entry_hash(b"k", &empty), entry_hash(b"k", &empty));
        assert_ne!(entry_hash(b"k", &empty), entry_hash(b"l", &empty));
        // The length prefix keeps (key, set) pairs from running together.
        assert_ne!(sha64(&[b"ab", b"c"]), sha64(&[b"a", b"bc"]));
        assert!((segment_of(b"k") as usize) < SEGMENTS);
    }
}
