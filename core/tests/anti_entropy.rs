//! Anti-entropy between protocol nodes in memory: replicas that hold
//! different data converge through hash-tree exchanges alone (no client
//! reads), merging both ways by the usual rules, for bytes that follow the
//! number of differing keys and not the partition's size.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::{BTreeMap, VecDeque};

use dynamo_core::ids::{NodeId, PartitionId};
use dynamo_core::merkle::{entry_hash, trees_of};
use dynamo_core::protocol::{Effect, Message, Node, Settings, Store, StoreError, Timer};
use dynamo_core::ring::Ring;
use dynamo_core::version::{Actor, SiblingSet, VectorClock, Versioning};

struct Memory<'a>(&'a BTreeMap<Vec<u8>, SiblingSet>);

impl Store for Memory<'_> {
    fn load(&self, key: &[u8]) -> Result<SiblingSet, StoreError> {
        Ok(self.0.get(key).cloned().unwrap_or_default())
    }
}

/// Nodes, their durable stores, and the messages between them (delivered
/// in order, none lost). Persists are durable at once.
struct Cluster {
    ring: Ring,
    nodes: Vec<Node>,
    stores: Vec<BTreeMap<Vec<u8>, SiblingSet>>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    now: u64,
    /// Repair messages delivered (each a key's set, one way).
    repairs: u64,
    /// Bytes of tree queries and replies on the wire.
    tree_bytes: u64,
    /// Nodes that are down: messages to and from them are lost, and they
    /// take no ticks.
    down: Vec<bool>,
    /// `Reap` messages to this node are lost.
    lose_reaps_to: Option<usize>,
}

impl Cluster {
    /// A node per store over `partitions` partitions, N = the number of
    /// nodes, node `i` holding `stores[i]` (its trees built from it, as a
    /// node's are on open).
    fn new(partitions: u32, stores: Vec<BTreeMap<Vec<u8>, SiblingSet>>) -> Cluster {
        let settings = Settings {
            n: stores.len(),
            ..Settings::default()
        };
        Cluster::with_settings(partitions, stores, settings)
    }

    fn with_settings(partitions: u32, stores: Vec<BTreeMap<Vec<u8>, SiblingSet>>, settings: Settings) -> Cluster {
        let ids: Vec<NodeId> = (0..stores.len() as u32).map(NodeId).collect();
        let ring = Ring::new(partitions, &ids).unwrap();
        let nodes = ids
            .iter()
            .zip(&stores)
            .map(|(&id, store)| {
                let trees = trees_of(&ring, store);
                let actor = Actor {
                    node: id,
                    incarnation: 1,
                };
                let mut node = Node::new(id, actor, ring.clone(), settings.clone(), Vec::new()).with_trees(trees);
                node.start(0, &mut Vec::new());
                node
            })
            .collect();
        Cluster {
            ring,
            nodes,
            stores,
            queue: VecDeque::new(),
            now: 0,
            repairs: 0,
            tree_bytes: 0,
            down: vec![false; ids.len()],
            lose_reaps_to: None,
        }
    }

    fn apply(&mut self, index: usize, effects: Vec<Effect>) {
        let mut effects: VecDeque<Effect> = effects.into();
        while let Some(effect) = effects.pop_front() {
            match effect {
                Effect::Send { to, message } => self.queue.push_back((NodeId(index as u32), to, message)),
                Effect::Persist { token, key, set } => {
                    if set.is_empty() {
                        self.stores[index].remove(&key);
                    } else {
                        self.stores[index].insert(key, set);
                    }
                    let mut more = Vec::new();
                    self.nodes[index].handle_persisted(token, Ok(()), &mut more);
                    effects.extend(more);
                }
                Effect::Reply { .. } | Effect::SetTimer { .. } | Effect::PartitionRepaired { .. } => {}
                other => panic!("unexpected effect {other:?}"),
            }
        }
    }

    /// Delivers every message, and those they cause.
    fn drain(&mut self) {
        while let Some((from, to, message)) = self.queue.pop_front() {
            if self.down[from.0 as usize] || self.down[to.0 as usize] {
                continue;
            }
            if matches!(message, Message::Reap { .. }) && self.lose_reaps_to == Some(to.0 as usize) {
                continue;
            }
            match &message {
                Message::Repair { .. } => self.repairs += 1,
                Message::TreeQuery { request, .. } => self.tree_bytes += request.encode().len() as u64,
                Message::TreeReply {
                    response: Some(response),
                    ..
                } => self.tree_bytes += response.encode().len() as u64,
                _ => {}
            }
            let index = to.0 as usize;
            let mut out = Vec::new();
            self.nodes[index].handle_message(self.now, from, message, &Memory(&self.stores[index]), &mut out);
            self.apply(index, out);
        }
    }

    /// One anti-entropy tick of node `index`, and everything it causes.
    fn tick(&mut self, index: usize) {
        self.now += Settings::default().anti_entropy_interval_ms;
        if self.down[index] {
            return;
        }
        let mut out = Vec::new();
        self.nodes[index].handle_timer(self.now, Timer::AntiEntropy, &Memory(&self.stores[index]), &mut out);
        self.apply(index, out);
        self.drain();
    }

    fn converged(&self) -> bool {
        self.stores.windows(2).all(|pair| pair[0] == pair[1])
    }

    /// Each node's trees agree with its store, and all roots agree.
    fn trees_match_stores(&mut self) {
        for (index, node) in self.nodes.iter_mut().enumerate() {
            let mut expected = trees_of(&self.ring, &self.stores[index]);
            let roots: Vec<(u32, u64, u64)> = node
                .trees()
                .iter()
                .map(|tree| (tree.partition.0, tree.keys, tree.root))
                .collect();
            let wanted: Vec<(u32, u64, u64)> = expected
                .iter_mut()
                .map(|(partition, tree)| (partition.0, tree.len() as u64, tree.root()))
                .collect();
            assert_eq!(roots, wanted, "node {index}");
        }
    }
}

fn actor(node: u32) -> Actor {
    Actor {
        node: NodeId(node),
        incarnation: 1,
    }
}

/// A set holding one new version of `value` by `writer` (a tombstone for
/// `None`), over `context`.
fn version(writer: u32, context: &VectorClock, value: Option<&str>, at: u64) -> SiblingSet {
    let mut set = SiblingSet::new();
    set.put(
        actor(writer),
        context,
        value.map(|v| v.as_bytes().to_vec()),
        at,
        Versioning::Dvv,
        10,
    )
    .unwrap();
    set
}

fn key(index: usize) -> Vec<u8> {
    format!("key-{index:06}").into_bytes()
}

#[test]
fn a_wiped_replica_converges_without_reads_and_is_repaired_first() {
    let full: BTreeMap<Vec<u8>, SiblingSet> = (0..300)
        .map(|index| (key(index), version(0, &VectorClock::new(), Some("v"), index as u64)))
        .collect();
    let mut cluster = Cluster::new(16, vec![full.clone(), full, BTreeMap::new()]);
    cluster.nodes[2].repair_first((0..16).map(PartitionId));
    // One tick: the urgent partitions' exchanges then run back to back.
    cluster.tick(2);
    assert!(cluster.converged());
    assert_eq!(cluster.nodes[2].repairs_pending(), 0);
    assert_eq!(cluster.nodes[2].stats().entropy_repairs, 300);
    assert_eq!(cluster.nodes[2].stats().exchanges, 16);
    cluster.trees_match_stores();
}

#[test]
fn without_urgency_one_pass_of_ticks_reaches_every_partition() {
    let full: BTreeMap<Vec<u8>, SiblingSet> = (0..300)
        .map(|index| (key(index), version(0, &VectorClock::new(), Some("v"), index as u64)))
        .collect();
    let mut cluster = Cluster::new(16, vec![full.clone(), full, BTreeMap::new()]);
    // The wiped node's own exchanges alone: partition first, so 16 ticks
    // give each partition one exchange.
    for _ in 0..16 {
        cluster.tick(2);
    }
    assert!(cluster.converged());
    cluster.trees_match_stores();
    // Converged replicas exchange roots only.
    let before = (cluster.repairs, cluster.nodes[0].stats().exchange_differences);
    for round in 0..32 {
        cluster.tick(round % 3);
    }
    assert_eq!((cluster.repairs, cluster.nodes[0].stats().exchange_differences), before);
}

#[test]
fn repairs_merge_both_ways_by_the_usual_rules() {
    let base = version(0, &VectorClock::new(), Some("base"), 1);
    let context = base.context();
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    // Concurrent writes on two replicas: both become siblings everywhere.
    a.insert(b"concurrent".to_vec(), version(0, &VectorClock::new(), Some("a"), 2));
    b.insert(b"concurrent".to_vec(), version(1, &VectorClock::new(), Some("b"), 3));
    // A newer version on one side supersedes the older on the other.
    let mut newer = base.clone();
    newer
        .put(actor(1), &context, Some(b"newer".to_vec()), 4, Versioning::Dvv, 10)
        .unwrap();
    a.insert(b"superseded".to_vec(), base.clone());
    b.insert(b"superseded".to_vec(), newer);
    // A delete on one side: its tombstone wins, and travels.
    let mut deleted = base.clone();
    deleted.put(actor(0), &context, None, 5, Versioning::Dvv, 10).unwrap();
    a.insert(b"deleted".to_vec(), deleted);
    b.insert(b"deleted".to_vec(), base);
    let mut cluster = Cluster::new(4, vec![a, b, BTreeMap::new()]);
    for round in 0..24 {
        cluster.tick(round % 3);
    }
    assert!(cluster.converged());
    let store = &cluster.stores[2];
    let mut concurrent: Vec<&[u8]> = store[b"concurrent".as_slice()].live_values().collect();
    concurrent.sort();
    assert_eq!(concurrent, [b"a".as_slice(), b"b".as_slice()]);
    assert_eq!(
        store[b"superseded".as_slice()].live_values().collect::<Vec<_>>(),
        [b"newer".as_slice()]
    );
    assert_eq!(store[b"deleted".as_slice()].live_values().count(), 0);
    assert!(!store[b"deleted".as_slice()].is_empty(), "the tombstone is kept");
    cluster.trees_match_stores();
}

/// Two replicas of one partition of `keys` keys, `differing` of which one
/// of them lacks or holds in an older version; returns the bytes of tree
/// traffic, the repair messages and the exchanges until they agree.
fn diverge_and_converge(keys: usize, differing: usize) -> (u64, u64, u64) {
    // Two nodes, two partitions, N = 2: both replicate everything; the
    // keys are those of partition 0.
    let ring = Ring::new(2, &[NodeId(0), NodeId(1)]).unwrap();
    let mut a = BTreeMap::new();
    let mut index = 0;
    while a.len() < keys {
        let name = key(index);
        index += 1;
        if ring.partition_of(&name) == PartitionId(0) {
            a.insert(name, version(0, &VectorClock::new(), Some("v"), 1));
        }
    }
    let mut b = a.clone();
    for (count, (name, set)) in a.iter().step_by(keys / differing.max(1)).take(differing).enumerate() {
        if count % 2 == 0 {
            b.remove(name);
        } else {
            let mut newer = set.clone();
            newer
                .put(actor(1), &set.context(), Some(b"w".to_vec()), 2, Versioning::Dvv, 10)
                .unwrap();
            b.insert(name.clone(), newer);
        }
    }
    let mut cluster = Cluster::new(2, vec![a, b]);
    let mut exchanges = 0;
    while !cluster.converged() {
        // Node 0's exchanges of partition 0 (its pairs alternate between
        // the two partitions).
        cluster.tick(0);
        exchanges += 1;
        assert!(exchanges < 1_000, "no convergence");
    }
    (cluster.tree_bytes, cluster.repairs, cluster.nodes[0].stats().exchanges)
}

#[test]
fn bytes_follow_the_differing_keys_not_the_partition() {
    let (none, _, _) = diverge_and_converge(10_000, 0);
    let (one, one_repairs, _) = diverge_and_converge(10_000, 1);
    let (hundred, hundred_repairs, _) = diverge_and_converge(10_000, 100);
    assert_eq!(none, 0, "equal replicas: no exchange needed to converge");
    assert!(one < 2_000, "{one} bytes for one differing key");
    assert!(hundred < 100 * 1_000, "{hundred} bytes for 100 differing keys");
    assert!(hundred > one * 10, "{hundred} vs {one}");
    // Each differing key: the initiator's set, and the merge back.
    assert!((1..=2).contains(&one_repairs), "{one_repairs}");
    assert!((100..=200).contains(&hundred_repairs), "{hundred_repairs}");
}

/// The note's figures: `cargo test --release -p dynamo-core --test
/// anti_entropy -- --ignored --nocapture`.
#[test]
#[ignore = "measurement: prints bytes and exchanges for 100,000 keys"]
fn measure_a_partition_of_100_000_keys() {
    for differing in [1, 100, 10_000] {
        let started = std::time::Instant::now();
        let (bytes, repairs, exchanges) = diverge_and_converge(100_000, differing);
        println!(
            "100000 keys, {differing:>5} differing: {bytes:>8} tree bytes ({:.1} per key), {repairs:>5} repair messages, {exchanges} exchanges, {:.2} s in memory",
            bytes as f64 / differing as f64,
            started.elapsed().as_secs_f64()
        );
    }
}

/// A put (or, with `None`, a delete) of `key` through node `index`, with
/// the context that node holds; W = 2.
fn write(cluster: &mut Cluster, index: usize, key: &[u8], value: Option<&str>) {
    let context = cluster.stores[index]
        .get(key)
        .map(SiblingSet::context)
        .unwrap_or_default();
    let request = dynamo_core::protocol::ClientRequest::Put {
        key: key.to_vec(),
        context,
        value: value.map(|value| value.as_bytes().to_vec()),
        w: Some(2),
    };
    let mut out = Vec::new();
    let now = cluster.now;
    cluster.nodes[index].handle_client(
        now,
        dynamo_core::protocol::ClientId(1),
        request,
        &Memory(&cluster.stores[index]),
        &mut out,
    );
    cluster.apply(index, out);
    cluster.drain();
}

/// Live values any replica holds for `key`.
fn live_anywhere(cluster: &Cluster, key: &[u8]) -> Vec<Vec<u8>> {
    cluster
        .stores
        .iter()
        .filter_map(|store| store.get(key))
        .flat_map(|set| set.live_values().map(<[u8]>::to_vec))
        .collect()
}

/// The resurrection reaping must not allow (Riak's bitcask#82 class): a
/// replica misses a delete while down; the others reap the tombstone; the
/// old replica comes back, and anti-entropy copies the deleted value back
/// everywhere. Reaped early (a reap sent without the rule), the value
/// returns; under the rule the tombstone waits until the old replica holds
/// it too, and then goes everywhere with the value staying deleted.
#[test]
fn a_tombstone_is_reaped_only_once_every_replica_holds_it_and_nothing_is_resurrected() {
    let settings = Settings {
        n: 3,
        hint_age_max_ms: 1_000,
        tombstone_grace_ms: 2_000,
        ..Settings::default()
    };
    settings.validate(3).unwrap();
    for early in [true, false] {
        let mut cluster = Cluster::with_settings(4, vec![BTreeMap::new(); 3], settings.clone());
        let key = b"cart:deleted".to_vec();
        let partition = cluster.ring.partition_of(&key);
        let replicas = cluster.ring.preference_list(partition, 3);
        let (reaper, other, old) = (replicas[0].0 as usize, replicas[1].0 as usize, replicas[2].0 as usize);
        write(&mut cluster, reaper, &key, Some("item"));
        assert_eq!(live_anywhere(&cluster, &key).len(), 3, "every replica holds the value");
        // The old replica misses the delete.
        cluster.down[old] = true;
        write(&mut cluster, reaper, &key, None);
        assert!(cluster.stores[other][&key].live_values().next().is_none(), "deleted");
        assert!(cluster.stores[old][&key].live_values().next().is_some(), "missed it");
        if early {
            // Reaped too early: a reap sent without anyone having
            // established that the old replica holds the tombstone.
            let hash = entry_hash(&key, &cluster.stores[reaper][&key]);
            for index in [reaper, other] {
                let mut out = Vec::new();
                let store = Memory(&cluster.stores[index]);
                let message = Message::Reap { key: key.clone(), hash };
                cluster.nodes[index].handle_message(0, NodeId(old as u32), message, &store, &mut out);
                cluster.apply(index, out);
            }
            cluster.queue.clear();
            assert!(!cluster.stores[reaper].contains_key(&key));
        } else {
            // Well past the grace period, with the old replica away: no
            // exchange with it agrees, so the tombstone stays.
            for round in 0..60 {
                cluster.tick(round % 3);
            }
            assert!(cluster.now > settings.tombstone_grace_ms * 5);
            assert!(
                cluster.stores[reaper].contains_key(&key),
                "reaped while a replica lacked it"
            );
            assert_eq!(cluster.nodes[reaper].stats().tombstones_reaped, 0);
        }
        cluster.down[old] = false;
        for round in 0..300 {
            cluster.tick(round % 3);
        }
        let live = live_anywhere(&cluster, &key);
        if early {
            assert_eq!(
                live,
                vec![b"item".to_vec(); 3],
                "the deleted value came back everywhere"
            );
        } else {
            assert!(live.is_empty(), "resurrected: {live:?}");
            for (index, store) in cluster.stores.iter().enumerate() {
                assert!(!store.contains_key(&key), "node {index} still holds the tombstone");
            }
            let reaped: u64 = cluster.nodes.iter().map(|node| node.stats().tombstones_reaped).sum();
            assert_eq!(reaped, 3);
            assert!(cluster.converged());
            cluster.trees_match_stores();
        }
    }
}

/// A reap that one replica never hears of: the reaper finds the tombstone
/// there in a later exchange and sends the reap again; it never takes the
/// reaped tombstone back, and the key ends removed everywhere.
#[test]
fn a_lost_reap_is_sent_again_and_the_reaper_never_takes_the_tombstone_back() {
    let settings = Settings {
        n: 3,
        hint_age_max_ms: 1_000,
        tombstone_grace_ms: 2_000,
        ..Settings::default()
    };
    let mut cluster = Cluster::with_settings(4, vec![BTreeMap::new(); 3], settings);
    let key = b"cart:lost-reap".to_vec();
    let replicas = cluster.ring.preference_list(cluster.ring.partition_of(&key), 3);
    let (reaper, deaf) = (replicas[0].0 as usize, replicas[1].0 as usize);
    write(&mut cluster, reaper, &key, Some("item"));
    write(&mut cluster, reaper, &key, None);
    cluster.lose_reaps_to = Some(deaf);
    let mut round = 0;
    while cluster.stores[reaper].contains_key(&key) {
        cluster.tick(round % 3);
        round += 1;
        assert!(round < 300, "never reaped");
    }
    assert!(cluster.stores[deaf].contains_key(&key), "the reap to it was lost");
    cluster.lose_reaps_to = None;
    for round in 0..300 {
        cluster.tick(round % 3);
        assert!(
            !cluster.stores[reaper].contains_key(&key),
            "the reaper took the tombstone back"
        );
    }
    for store in &cluster.stores {
        assert!(!store.contains_key(&key));
    }
    assert!(cluster.converged());
    cluster.trees_match_stores();
}
