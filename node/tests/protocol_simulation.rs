//! Deterministic simulation of the protocol core alone: five nodes, no
//! sockets, no clocks. A seeded generator chooses every step: which message
//! is delivered next (reordering), which is lost or duplicated, when a node
//! goes silent and comes back, when storage finishes a write, when timers
//! fire. Clients read, read-modify-write, write blindly and delete.
//!
//! Checked on every run, from what clients saw alone:
//! - no phantom: every value a get returns was written by a put invoked
//!   before the get completed;
//! - siblings are concurrent: no get returns a value together with one of
//!   its causal ancestors (ancestry from the contexts the writers used);
//! - no lost write: after healing, a final read of every key asking all N
//!   replicas returns every acknowledged put or a causal descendant of it.
//!
//! A failure prints its seed; `DYNAMO_TEST_SEED=<seed>` replays exactly
//! that run (and only it); `DYNAMO_SIM_RUNS` sets how many seeds to try.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Rng;
use dynamo_core::protocol::{
    ClientId, ClientReply, ClientRequest, Effect, Message, Node, PersistToken, Settings, Store, StoreError, Timer,
};
use dynamo_core::ring::Ring;
use dynamo_core::version::{Actor, SiblingSet, VectorClock, Versioning};
use dynamo_core::NodeId;

const NODES: u32 = 5;
const KEYS: [&[u8]; 2] = [b"cart:a", b"cart:b"];
/// Bytes a value carries to name itself: values are "c<client>-<op>".
const FINAL_CLIENT: u64 = 1_000;

#[derive(Default)]
struct MemoryStore(BTreeMap<Vec<u8>, SiblingSet>);

impl Store for MemoryStore {
    fn load(&self, key: &[u8]) -> Result<SiblingSet, StoreError> {
        Ok(self.0.get(key).cloned().unwrap_or_default())
    }
}

#[derive(Clone, Copy, Debug)]
struct Faults {
    loss_percent: u64,
    duplicate_percent: u64,
    down_percent: u64,
}

/// What a client is doing.
#[derive(Clone, Debug)]
enum Step {
    Idle,
    /// Waiting for a get; then (if `then_write`) write with its context.
    Reading {
        key: usize,
        then_write: Option<Option<String>>,
    },
    Writing,
}

struct Client {
    ops_left: u32,
    step: Step,
    /// Values returned by this client's last read, with its context.
    last_read: Option<(usize, Vec<String>, VectorClock)>,
}

/// A put as clients saw it.
#[derive(Clone, Debug)]
struct PutRecord {
    key: usize,
    /// Values its context covered (what the writer had read).
    context: Vec<String>,
    invoked_at_step: u64,
    acknowledged: bool,
}

/// A persist waiting for the simulated storage: the key and set for a main
/// store write, `None` for a hint.
type PendingPersist = (PersistToken, Option<(Vec<u8>, SiblingSet)>);

struct Simulation {
    rng: Rng,
    now_ms: u64,
    step: u64,
    nodes: Vec<Node>,
    stores: Vec<MemoryStore>,
    /// Per node, its storage's queue: a key's new set, or a hint (None).
    persists: Vec<Vec<PendingPersist>>,
    network: Vec<(NodeId, NodeId, Message)>,
    timers: BTreeMap<(u64, u64), (usize, Timer)>,
    timer_sequence: u64,
    down: BTreeSet<usize>,
    clients: BTreeMap<u64, Client>,
    /// Outstanding request per client: which put value it was writing.
    writing: BTreeMap<u64, String>,
    puts: BTreeMap<String, PutRecord>,
    next_value: u64,
    final_reads: BTreeMap<usize, Vec<String>>,
    violations: Vec<String>,
    faults: Faults,
}

impl Simulation {
    fn new(seed: u64, versioning: Versioning, faults: Faults) -> Simulation {
        let members: Vec<NodeId> = (0..NODES).map(NodeId).collect();
        let ring = Ring::new(16, &members).unwrap();
        let settings = Settings {
            versioning,
            ..Settings::default()
        };
        let nodes = members
            .iter()
            .map(|&id| {
                let actor = Actor {
                    node: id,
                    incarnation: 1,
                };
                Node::new(id, actor, ring.clone(), settings.clone(), Vec::new())
            })
            .collect();
        let clients = (0..3)
            .map(|client| {
                (
                    client,
                    Client {
                        ops_left: 6,
                        step: Step::Idle,
                        last_read: None,
                    },
                )
            })
            .collect();
        Simulation {
            rng: Rng::new(seed),
            now_ms: 0,
            step: 0,
            nodes,
            stores: (0..NODES).map(|_| MemoryStore::default()).collect(),
            persists: (0..NODES).map(|_| Vec::new()).collect(),
            network: Vec::new(),
            timers: BTreeMap::new(),
            timer_sequence: 0,
            down: BTreeSet::new(),
            clients,
            writing: BTreeMap::new(),
            puts: BTreeMap::new(),
            next_value: 0,
            final_reads: BTreeMap::new(),
            violations: Vec::new(),
            faults,
        }
    }

    fn apply(&mut self, node: usize, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { to, message } => self.network.push((NodeId(node as u32), to, message)),
                Effect::Reply { client, reply } => self.client_reply(client.0, reply),
                Effect::Persist { token, key, set } => self.persists[node].push((token, Some((key, set)))),
                Effect::PersistHint { token, .. } => self.persists[node].push((token, None)),
                Effect::DropHint { .. }
                | Effect::PartitionRepaired { .. }
                | Effect::FetchPartition { .. }
                | Effect::Assignment { .. } => {}
                Effect::SetTimer { timer, at_ms } => {
                    self.timer_sequence += 1;
                    self.timers.insert((at_ms, self.timer_sequence), (node, timer));
                }
            }
        }
    }

    fn request(&mut self, client: u64, node: usize, request: ClientRequest) {
        let mut out = Vec::new();
        let (nodes, stores) = (&mut self.nodes, &self.stores);
        nodes[node].handle_client(self.now_ms, ClientId(client), request, &stores[node], &mut out);
        self.apply(node, out);
    }

    fn values(set_values: &[Vec<u8>]) -> Vec<String> {
        set_values
            .iter()
            .map(|value| String::from_utf8(value.clone()).unwrap())
            .collect()
    }

    /// Every value that `value` causally follows (through writers' contexts).
    fn ancestors(&self, value: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = self.puts.get(value).map(|put| put.context.clone()).unwrap_or_default();
        while let Some(next) = todo.pop() {
            if seen.insert(next.clone()) {
                if let Some(put) = self.puts.get(&next) {
                    todo.extend(put.context.iter().cloned());
                }
            }
        }
        seen
    }

    fn check_read(&mut self, key: usize, values: &[String]) {
        for value in values {
            match self.puts.get(value) {
                None => self
                    .violations
                    .push(format!("phantom: read {value:?} that no put wrote")),
                Some(put) if put.key != key => self
                    .violations
                    .push(format!("phantom: read {value:?} from another key")),
                Some(_) => {}
            }
            let ancestors = self.ancestors(value);
            for other in values {
                if ancestors.contains(other) {
                    self.violations.push(format!(
                        "sibling-antichain: {other:?} returned beside its descendant {value:?}"
                    ));
                }
            }
        }
        let unique: BTreeSet<&String> = values.iter().collect();
        if unique.len() != values.len() {
            self.violations.push(format!("duplicate siblings {values:?}"));
        }
    }

    fn client_reply(&mut self, client: u64, reply: ClientReply) {
        if client >= FINAL_CLIENT {
            let key = (client - FINAL_CLIENT) as usize;
            match reply {
                ClientReply::Got { values, .. } => {
                    let values = Self::values(&values);
                    self.check_read(key, &values);
                    self.final_reads.insert(key, values);
                }
                other => self
                    .violations
                    .push(format!("final read of key {key} failed: {other:?}")),
            }
            return;
        }
        let step = self.clients.get(&client).map(|state| state.step.clone());
        match (step, reply) {
            (Some(Step::Reading { key, then_write }), ClientReply::Got { values, context }) => {
                let values = Self::values(&values);
                self.check_read(key, &values);
                let state = self.clients.get_mut(&client).unwrap();
                state.last_read = Some((key, values.clone(), context.clone()));
                match then_write {
                    None => state.step = Step::Idle,
                    Some(value) => {
                        state.step = Step::Writing;
                        self.put(client, key, values, context, value);
                    }
                }
            }
            (Some(Step::Reading { .. }), _) => self.clients.get_mut(&client).unwrap().step = Step::Idle,
            (Some(Step::Writing), reply) => {
                if let Some(value) = self.writing.remove(&client) {
                    if reply == ClientReply::Stored {
                        if let Some(put) = self.puts.get_mut(&value) {
                            put.acknowledged = true;
                        }
                    }
                }
                self.clients.get_mut(&client).unwrap().step = Step::Idle;
            }
            (other, reply) => self
                .violations
                .push(format!("unexpected reply {reply:?} to client {client} in {other:?}")),
        }
    }

    /// `value: None` deletes; the tombstone gets a name too (reads never
    /// return it, but descendants name it in their ancestry).
    fn put(
        &mut self,
        client: u64,
        key: usize,
        context_values: Vec<String>,
        context: VectorClock,
        value: Option<String>,
    ) {
        let name = value.clone().unwrap_or_else(|| {
            self.next_value += 1;
            format!("tombstone-{}", self.next_value)
        });
        self.puts.insert(
            name.clone(),
            PutRecord {
                key,
                context: context_values,
                invoked_at_step: self.step,
                acknowledged: false,
            },
        );
        self.writing.insert(client, name);
        let node = self.rng.below(u64::from(NODES)) as usize;
        let request = ClientRequest::Put {
            key: KEYS[key].to_vec(),
            context,
            value: value.map(String::into_bytes),
            w: None,
        };
        self.request(client, node, request);
    }

    fn start_get(&mut self, client: u64, node: usize, key: usize, then_write: Option<Option<String>>) {
        self.clients.get_mut(&client).unwrap().step = Step::Reading { key, then_write };
        let request = ClientRequest::Get {
            key: KEYS[key].to_vec(),
            r: None,
        };
        self.request(client, node, request);
    }

    fn client_step(&mut self, client: u64) {
        let state = self.clients.get_mut(&client).unwrap();
        if !matches!(state.step, Step::Idle) || state.ops_left == 0 {
            return;
        }
        state.ops_left -= 1;
        let last_read = state.last_read.clone();
        let key = self.rng.below(KEYS.len() as u64) as usize;
        let node = self.rng.below(u64::from(NODES)) as usize;
        self.next_value += 1;
        let value = format!("c{client}-{}", self.next_value);
        match self.rng.below(4) {
            0 => self.start_get(client, node, key, None),
            1 => self.start_get(client, node, key, Some(Some(value))),
            2 => {
                self.clients.get_mut(&client).unwrap().step = Step::Writing;
                self.put(client, key, Vec::new(), VectorClock::new(), Some(value));
            }
            // Delete what this client last read of this key, if anything.
            _ => match last_read {
                Some((read_key, values, context)) if read_key == key => {
                    self.clients.get_mut(&client).unwrap().step = Step::Writing;
                    self.put(client, key, values, context, None);
                }
                _ => self.start_get(client, node, key, None),
            },
        }
    }

    fn deliver(&mut self, index: usize, lossy: bool) {
        let (from, to, message) = self.network.swap_remove(index);
        let (from_index, to_index) = (from.0 as usize, to.0 as usize);
        if lossy && (self.down.contains(&from_index) || self.down.contains(&to_index)) {
            return;
        }
        if lossy && self.rng.below(100) < self.faults.loss_percent {
            return;
        }
        if lossy && self.rng.below(100) < self.faults.duplicate_percent {
            self.network.push((from, to, message.clone()));
        }
        let mut out = Vec::new();
        let (nodes, stores) = (&mut self.nodes, &self.stores);
        nodes[to_index].handle_message(self.now_ms, from, message, &stores[to_index], &mut out);
        self.apply(to_index, out);
    }

    fn complete_persist(&mut self, node: usize) {
        if self.persists[node].is_empty() {
            return;
        }
        // Storage completes a node's writes in order (one storage thread).
        let (token, write) = self.persists[node].remove(0);
        if let Some((key, set)) = write {
            // An empty set is a reaped tombstone: the key goes.
            if set.is_empty() {
                self.stores[node].0.remove(&key);
            } else {
                self.stores[node].0.insert(key, set);
            }
        }
        let mut out = Vec::new();
        self.nodes[node].handle_persisted(token, Ok(()), &mut out);
        self.apply(node, out);
    }

    fn fire_next_timer(&mut self) -> bool {
        let Some((&(at_ms, sequence), _)) = self.timers.iter().next() else {
            return false;
        };
        let (node, timer) = self.timers.remove(&(at_ms, sequence)).unwrap();
        self.now_ms = self.now_ms.max(at_ms);
        // A silent node's timers still fire: it is cut off, not dead.
        let mut out = Vec::new();
        let (nodes, stores) = (&mut self.nodes, &self.stores);
        nodes[node].handle_timer(self.now_ms, timer, &stores[node], &mut out);
        self.apply(node, out);
        true
    }

    fn busy(&self) -> bool {
        !self.network.is_empty() || self.persists.iter().any(|queue| !queue.is_empty())
    }

    fn run(&mut self) {
        // Load with faults.
        while self.step < 3_000 {
            self.step += 1;
            let clients_active = self
                .clients
                .values()
                .any(|client| client.ops_left > 0 || !matches!(client.step, Step::Idle));
            if !clients_active && !self.busy() {
                break;
            }
            match self.rng.below(100) {
                0..=14 => {
                    let client = self.rng.below(self.clients.len() as u64);
                    self.client_step(client);
                }
                15..=59 if !self.network.is_empty() => {
                    let index = self.rng.below(self.network.len() as u64) as usize;
                    self.deliver(index, true);
                }
                60..=84 => {
                    let node = self.rng.below(u64::from(NODES)) as usize;
                    self.complete_persist(node);
                }
                85..=86 => {
                    let node = self.rng.below(u64::from(NODES)) as usize;
                    if self.rng.below(100) < self.faults.down_percent && self.down.is_empty() {
                        self.down.insert(node);
                    } else {
                        self.down.remove(&node);
                    }
                }
                _ => {
                    if !self.fire_next_timer() {
                        self.now_ms += 1;
                    }
                }
            }
        }
        // Heal: no more loss or silence; drain; let probes and handoffs run.
        self.down.clear();
        for _ in 0..20_000 {
            if self.busy() {
                if !self.network.is_empty() {
                    let index = self.rng.below(self.network.len() as u64) as usize;
                    self.deliver(index, false);
                }
                let node = self.rng.below(u64::from(NODES)) as usize;
                self.complete_persist(node);
            } else if self
                .nodes
                .iter()
                .any(|node| node.hints_pending() > 0 || node.requests_in_flight() > 0 || !node.suspects().is_empty())
            {
                if !self.fire_next_timer() {
                    break;
                }
            } else {
                break;
            }
        }
        // Final reads: every key, all N replicas, through a random node.
        for (key, name) in KEYS.iter().enumerate() {
            let node = self.rng.below(u64::from(NODES)) as usize;
            let n = self.nodes[0].settings().n;
            self.request(
                FINAL_CLIENT + key as u64,
                node,
                ClientRequest::Get {
                    key: name.to_vec(),
                    r: Some(n),
                },
            );
            for _ in 0..10_000 {
                if !self.busy() {
                    if self.final_reads.contains_key(&key) || !self.fire_next_timer() {
                        break;
                    }
                    continue;
                }
                if !self.network.is_empty() {
                    let index = self.rng.below(self.network.len() as u64) as usize;
                    self.deliver(index, false);
                }
                let node = self.rng.below(u64::from(NODES)) as usize;
                self.complete_persist(node);
            }
        }
        self.check_no_lost_write();
    }

    /// HISTORY.md's lost-write, for this simulation: every acknowledged
    /// put is returned by the final read of its key, or a returned value
    /// descends from it, or a delete descends from it; and every returned
    /// value is maximal: no acknowledged put or delete descends from it.
    fn check_no_lost_write(&mut self) {
        let mut findings = Vec::new();
        for (key, final_values) in &self.final_reads {
            for value in final_values {
                let superseded_by = self
                    .puts
                    .iter()
                    .find(|(other, put)| put.acknowledged && self.ancestors(other).contains(value));
                if let Some((other, _)) = superseded_by {
                    findings.push(format!(
                        "lost-write: key {key} returned {value:?} although acknowledged {other:?} descends from it"
                    ));
                }
            }
        }
        for (value, put) in &self.puts {
            if !put.acknowledged || value.starts_with("tombstone-") {
                continue;
            }
            let Some(final_values) = self.final_reads.get(&put.key) else {
                findings.push(format!("no final read of key {}", put.key));
                continue;
            };
            let covered = final_values.contains(value)
                || final_values
                    .iter()
                    .any(|returned| self.ancestors(returned).contains(value))
                || self
                    .puts
                    .keys()
                    .any(|other| other.starts_with("tombstone-") && self.ancestors(other).contains(value));
            if !covered {
                findings.push(format!(
                    "lost-write: acknowledged {value:?} (invoked at step {}) missing from the final read {final_values:?}",
                    put.invoked_at_step
                ));
            }
        }
        self.violations.extend(findings);
    }
}

fn run_seeds(name: &str, versioning: Versioning, faults: Faults) -> (u64, Vec<(u64, Vec<String>)>) {
    let replay = std::env::var("DYNAMO_TEST_SEED")
        .ok()
        .and_then(|text| text.parse::<u64>().ok());
    let runs: u64 = std::env::var("DYNAMO_SIM_RUNS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(150);
    let seeds: Vec<u64> = match replay {
        Some(seed) => vec![seed],
        None => {
            let base = common::seed(name);
            (0..runs).map(|index| base.wrapping_add(index)).collect()
        }
    };
    let mut failures = Vec::new();
    let mut acknowledged = 0;
    for seed in seeds {
        let mut simulation = Simulation::new(seed, versioning, faults);
        simulation.run();
        acknowledged += simulation.puts.values().filter(|put| put.acknowledged).count() as u64;
        if !simulation.violations.is_empty() {
            failures.push((seed, simulation.violations));
        }
    }
    (acknowledged, failures)
}

#[test]
fn dvv_loses_nothing_under_loss_duplication_reordering_and_silent_nodes() {
    let faults = Faults {
        loss_percent: 10,
        duplicate_percent: 10,
        down_percent: 50,
    };
    let (acknowledged, failures) = run_seeds("dvv_faults", Versioning::Dvv, faults);
    for (seed, violations) in failures.iter().take(3) {
        eprintln!(
            "seed {seed} (replay with DYNAMO_TEST_SEED={seed}):\n  {}",
            violations.join("\n  ")
        );
    }
    eprintln!("{acknowledged} puts acknowledged across the runs");
    assert!(failures.is_empty(), "{} runs violated an invariant", failures.len());
    assert!(
        acknowledged > 100,
        "the runs acknowledged only {acknowledged} puts: the simulation barely ran"
    );
}

#[test]
fn the_paper_scheme_is_caught_losing_writes() {
    // The same simulation without faults: the paper's clocks still lose
    // acknowledged writes made from the same context through one
    // coordinator, and the checks above must see it.
    let faults = Faults {
        loss_percent: 0,
        duplicate_percent: 0,
        down_percent: 0,
    };
    let (_, failures) = run_seeds("paper", Versioning::Paper, faults);
    assert!(
        failures
            .iter()
            .any(|(_, violations)| violations.iter().any(|violation| violation.starts_with("lost-write"))),
        "expected the paper scheme to lose a write in some run"
    );
}
