//! Membership changes between protocol nodes in memory: a join and a leave
//! move partitions (fetched as "files": a copy of a source's keys of the
//! partition), catch up through anti-entropy, and switch every node to the
//! new epoch only once the gaining nodes hold the data — including writes
//! made after the copy was taken.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use dynamo_core::ids::{NodeId, PartitionId};
use dynamo_core::merkle::{entry_hash, trees_of, Tree};
use dynamo_core::protocol::{
    gaining_nodes, Effect, Message, Node, Settings, Store, StoreError, Timer, GOSSIP_INTERVAL_MS,
};
use dynamo_core::ring::Ring;
use dynamo_core::version::{Actor, SiblingSet, VectorClock, Versioning};

type Data = BTreeMap<Vec<u8>, SiblingSet>;

struct Memory<'a>(&'a Data);

impl Store for Memory<'_> {
    fn load(&self, key: &[u8]) -> Result<SiblingSet, StoreError> {
        Ok(self.0.get(key).cloned().unwrap_or_default())
    }
}

/// Nodes (the first `members` in the ring, the rest spares), their stores,
/// messages in order, fetches waiting for the test to carry them out.
struct Cluster {
    nodes: Vec<Node>,
    stores: Vec<Data>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    fetches: Vec<(usize, PartitionId, Vec<NodeId>)>,
    /// The last assignment each node asked to persist.
    persisted: Vec<Option<(Ring, Option<Ring>)>>,
    /// Each node's store when it first routed by a ring past epoch 0.
    at_activation: Vec<Option<Data>>,
    down: Vec<bool>,
    now: u64,
}

fn settings() -> Settings {
    Settings {
        n: 3,
        ..Settings::default()
    }
}

impl Cluster {
    fn new(partitions: u32, members: usize, spares: usize, keys: usize) -> Cluster {
        let ids: Vec<NodeId> = (0..members as u32).map(NodeId).collect();
        let ring = Ring::new(partitions, &ids).unwrap();
        let data: Data = (0..keys)
            .map(|index| (key(index), version(0, Some("v"), index as u64)))
            .collect();
        let total = members + spares;
        let mut stores = Vec::new();
        let mut nodes = Vec::new();
        for index in 0..total {
            let id = NodeId(index as u32);
            // Members hold the keys they replicate; spares nothing.
            let store: Data = data
                .iter()
                .filter(|(key, _)| index < members && ring.preference_list(ring.partition_of(key), 3).contains(&id))
                .map(|(key, set)| (key.clone(), set.clone()))
                .collect();
            let actor = Actor {
                node: id,
                incarnation: 1,
            };
            let node = Node::new(id, actor, ring.clone(), settings(), Vec::new()).with_trees(trees_of(&ring, &store));
            stores.push(store);
            nodes.push(node);
        }
        let mut cluster = Cluster {
            nodes,
            stores,
            queue: VecDeque::new(),
            fetches: Vec::new(),
            persisted: vec![None; total],
            at_activation: vec![None; total],
            down: vec![false; total],
            now: 0,
        };
        for index in 0..total {
            let mut out = Vec::new();
            cluster.nodes[index].start(0, &mut out);
            cluster.apply(index, out);
        }
        cluster
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
                Effect::FetchPartition { partition, sources } => self.fetches.push((index, partition, sources)),
                Effect::Assignment { ring, next } => {
                    if ring.epoch() > 0 && self.at_activation[index].is_none() {
                        self.at_activation[index] = Some(self.stores[index].clone());
                    }
                    self.persisted[index] = Some((ring, next));
                }
                Effect::Reply { .. } | Effect::SetTimer { .. } | Effect::PartitionRepaired { .. } => {}
                other => panic!("unexpected effect {other:?}"),
            }
        }
    }

    fn drain(&mut self) {
        while let Some((from, to, message)) = self.queue.pop_front() {
            if self.down[from.0 as usize] || self.down[to.0 as usize] {
                continue;
            }
            let index = to.0 as usize;
            let mut out = Vec::new();
            self.nodes[index].handle_message(self.now, from, message, &Memory(&self.stores[index]), &mut out);
            self.apply(index, out);
        }
    }

    /// Carries out the fetches asked for: node copies the partition's keys
    /// from its first source that is up, as its files would arrive.
    fn fetch_all(&mut self) {
        self.fetch_all_then(|_| {});
    }

    /// As [`Cluster::fetch_all`], calling `meanwhile` once the copies are
    /// taken and before they are handed to the nodes (writes made then
    /// are not in the files).
    fn fetch_all_then(&mut self, meanwhile: impl FnOnce(&mut Cluster)) {
        let mut copies = Vec::new();
        for (index, partition, sources) in std::mem::take(&mut self.fetches) {
            let source = sources.iter().find(|source| !self.down[source.0 as usize]).unwrap();
            let ring = self.nodes[index].ring().clone();
            let copied: Data = self.stores[source.0 as usize]
                .iter()
                .filter(|(key, _)| ring.partition_of(key) == partition)
                .map(|(key, set)| (key.clone(), set.clone()))
                .collect();
            copies.push((index, partition, copied));
        }
        meanwhile(self);
        for (index, partition, copied) in copies {
            let mut tree = Tree::default();
            for (key, set) in &copied {
                tree.set(key, Some(entry_hash(key, set)));
            }
            self.stores[index].extend(copied);
            let mut out = Vec::new();
            self.nodes[index].partition_fetched(partition, Some(tree), &mut out);
            self.apply(index, out);
        }
        self.drain();
    }

    /// An anti-entropy tick and a gossip tick of every node that is up.
    fn tick(&mut self) {
        self.now += GOSSIP_INTERVAL_MS;
        for index in 0..self.nodes.len() {
            if self.down[index] {
                continue;
            }
            for timer in [Timer::AntiEntropy, Timer::Gossip] {
                let mut out = Vec::new();
                self.nodes[index].handle_timer(self.now, timer, &Memory(&self.stores[index]), &mut out);
                self.apply(index, out);
                self.drain();
            }
        }
    }

    /// Writes `set` for `key` on every current replica (as a quorum write
    /// that reached all of them).
    fn write_on_replicas(&mut self, key: &[u8], set: SiblingSet) {
        let ring = self.nodes[0].ring().clone();
        for node in ring.preference_list(ring.partition_of(key), 3) {
            let index = node.0 as usize;
            let mut out = Vec::new();
            self.nodes[index].handle_message(
                self.now,
                node,
                Message::Repair {
                    key: key.to_vec(),
                    set: set.clone(),
                    back: false,
                },
                &Memory(&self.stores[index]),
                &mut out,
            );
            self.apply(index, out);
        }
        self.drain();
    }

    fn epochs(&self) -> Vec<u64> {
        self.nodes.iter().map(|node| node.ring().epoch()).collect()
    }

    /// Every key is on every replica the (common) ring names for it.
    fn replicas_hold_everything(&self, keys: &[Vec<u8>]) {
        let ring = self.nodes[0].ring();
        for key in keys {
            for node in ring.preference_list(ring.partition_of(key), 3) {
                assert!(
                    self.stores[node.0 as usize].contains_key(key),
                    "{node} lacks {}",
                    String::from_utf8_lossy(key)
                );
            }
        }
    }
}

fn version(writer: u32, value: Option<&str>, at: u64) -> SiblingSet {
    let mut set = SiblingSet::new();
    set.put(
        Actor {
            node: NodeId(writer),
            incarnation: 1,
        },
        &VectorClock::new(),
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
fn a_join_switches_only_once_the_new_node_holds_its_partitions_and_later_writes() {
    let mut cluster = Cluster::new(16, 3, 1, 400);
    let mut keys: Vec<Vec<u8>> = (0..400).map(key).collect();
    // The spare asks node 0 to add it.
    let mut out = Vec::new();
    cluster.nodes[3].request_join(NodeId(0), &mut out);
    cluster.apply(3, out);
    cluster.drain();
    // Everyone knows the pending change; nobody routes by it yet.
    for node in &cluster.nodes {
        assert_eq!(node.ring().epoch(), 0);
        assert_eq!(node.membership().next.as_ref().map(Ring::epoch), Some(1));
    }
    let next = cluster.nodes[0].membership().next.unwrap();
    assert_eq!(
        gaining_nodes(cluster.nodes[0].ring(), &next, 3),
        BTreeSet::from([NodeId(3)])
    );
    assert!(!cluster.fetches.is_empty());
    assert!(cluster.fetches.iter().all(|(index, _, _)| *index == 3));
    // Ticks without the files: nothing switches.
    for _ in 0..5 {
        cluster.tick();
    }
    assert_eq!(cluster.epochs(), [0, 0, 0, 0]);
    // The files are taken; then, before they arrive, more writes land on
    // the current replicas only.
    let late: Vec<Vec<u8>> = (400..450).map(key).collect();
    let writes = late.clone();
    cluster.fetch_all_then(move |cluster| {
        for (index, key) in writes.iter().enumerate() {
            cluster.write_on_replicas(key, version(1, Some("late"), index as u64));
        }
    });
    keys.extend(late.iter().cloned());
    for _ in 0..10 {
        cluster.tick();
    }
    assert_eq!(cluster.epochs(), [1, 1, 1, 1], "every node routes by the new epoch");
    assert!(cluster.nodes[0].ring().members().contains(&NodeId(3)));
    assert!(cluster.nodes.iter().all(|node| node.membership().next.is_none()));
    cluster.replicas_hold_everything(&keys);
    // The new node held the late writes of its partitions already when it
    // switched: caught up before, not repaired after.
    let at_switch = cluster.at_activation[3].clone().unwrap();
    let ring = cluster.nodes[0].ring().clone();
    for key in &late {
        if ring.preference_list(ring.partition_of(key), 3).contains(&NodeId(3)) {
            assert!(
                at_switch.contains_key(key),
                "{} came after the switch",
                String::from_utf8_lossy(key)
            );
        }
    }
    // Every node asked to persist the new assignment.
    for persisted in &cluster.persisted {
        let (ring, next) = persisted.clone().unwrap();
        assert_eq!((ring.epoch(), next), (1, None));
    }
}

#[test]
fn a_leave_hands_every_partition_to_the_others_and_a_second_change_waits() {
    let mut cluster = Cluster::new(16, 4, 0, 300);
    let keys: Vec<Vec<u8>> = (0..300).map(key).collect();
    let mut out = Vec::new();
    cluster.nodes[2].propose_leave(NodeId(2), &mut out).unwrap();
    cluster.apply(2, out);
    cluster.drain();
    // One change at a time.
    let refused = cluster.nodes[0].propose_leave(NodeId(1), &mut Vec::new());
    assert!(refused.unwrap_err().to_string().contains("a change is pending"));
    cluster.fetch_all();
    for _ in 0..10 {
        cluster.tick();
    }
    assert_eq!(cluster.epochs(), [1, 1, 1, 1]);
    assert!(!cluster.nodes[0].ring().members().contains(&NodeId(2)));
    cluster.replicas_hold_everything(&keys);
    // Fewer than N members may not remain.
    let mut cluster = Cluster::new(8, 3, 0, 10);
    let refused = cluster.nodes[0].propose_leave(NodeId(1), &mut Vec::new());
    assert!(refused.unwrap_err().to_string().contains("fewer than N"));
    cluster.tick();
}

#[test]
fn a_node_down_during_the_change_learns_it_by_gossip_and_a_restart_resumes() {
    let mut cluster = Cluster::new(16, 4, 1, 200);
    let keys: Vec<Vec<u8>> = (0..200).map(key).collect();
    // Node 1 is down when the change is proposed.
    cluster.down[1] = true;
    let mut out = Vec::new();
    cluster.nodes[4].request_join(NodeId(0), &mut out);
    cluster.apply(4, out);
    cluster.drain();
    assert!(cluster.nodes[1].membership().next.is_none());
    // The joining node "restarts" mid-fetch: a new Node from its persisted
    // assignment, which asks for its fetches again.
    let (ring, next) = cluster.persisted[4].clone().unwrap();
    assert!(next.is_some());
    cluster.fetches.retain(|(index, _, _)| *index != 4);
    let store = cluster.stores[4].clone();
    let actor = Actor {
        node: NodeId(4),
        incarnation: 2,
    };
    cluster.nodes[4] = Node::new(NodeId(4), actor, ring.clone(), settings(), Vec::new())
        .with_trees(trees_of(&ring, &store))
        .with_next(next);
    let mut out = Vec::new();
    cluster.nodes[4].start(cluster.now, &mut out);
    cluster.apply(4, out);
    assert!(
        cluster.fetches.iter().any(|(index, _, _)| *index == 4),
        "the restarted node fetches again"
    );
    cluster.down[1] = false;
    // Sources that are down are skipped by the fetch; node 1 is up again.
    cluster.fetch_all();
    for _ in 0..12 {
        cluster.tick();
    }
    assert_eq!(cluster.epochs(), [1, 1, 1, 1, 1]);
    cluster.replicas_hold_everything(&keys);
}

#[test]
fn two_proposals_for_one_epoch_settle_on_the_same_ring_everywhere() {
    let mut cluster = Cluster::new(16, 4, 0, 50);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    cluster.nodes[0].propose_leave(NodeId(3), &mut first).unwrap();
    cluster.nodes[1].propose_leave(NodeId(2), &mut second).unwrap();
    cluster.apply(0, first);
    cluster.apply(1, second);
    cluster.drain();
    let pending: Vec<Option<Ring>> = cluster.nodes.iter().map(|node| node.membership().next).collect();
    assert!(pending.windows(2).all(|pair| pair[0] == pair[1]), "{pending:?}");
    cluster.fetch_all();
    for _ in 0..10 {
        cluster.tick();
    }
    assert_eq!(cluster.epochs(), [1, 1, 1, 1]);
    let rings: BTreeSet<Ring> = cluster.nodes.iter().map(|node| node.ring().clone()).collect();
    assert_eq!(rings.len(), 1);
}
