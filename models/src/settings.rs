//! What a model check explores: the cluster (servers, N, R, W,
//! versioning, truncation), the clients and their operations, the network,
//! crashes; and how those settings become a stateright model.

use dynamo_core::ids::NodeId;
use dynamo_core::protocol::Settings;
use dynamo_core::ring::Ring;
use dynamo_core::version::{Actor as VersionActor, SiblingSet, VectorClock, Versioning};
use stateright::actor::{ActorModel, ActorModelState, Id, LossyNetwork, Network};

use crate::history::History;
use crate::model::{key_of, record_completion, record_invocation, DynamoActor, DynamoModel, Role, TimerPolicy};
use crate::properties::properties;

/// The network the model explores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// Messages arrive in any order, each at most once (the default).
    Unordered,
    /// Messages arrive in any order, any number of times.
    Duplicating,
    /// Unordered, and any message may be lost.
    Lossy,
}

/// How full clients write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Puts {
    /// Each put carries the context of the get before it (the default).
    ReadModifyWrite,
    /// Each put has an empty context.
    Blind,
    /// Read-modify-write, then blind, then read-modify-write, ...: a
    /// client that sometimes overwrites without reading (a reset, say).
    Alternate,
}

impl std::str::FromStr for Puts {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "rmw" => Ok(Puts::ReadModifyWrite),
            "blind" => Ok(Puts::Blind),
            "alternate" => Ok(Puts::Alternate),
            other => Err(format!("{other:?}: expected rmw, blind or alternate")),
        }
    }
}

/// The process id the history gives the preloaded values' writer.
pub const PRELOAD_CLIENT: usize = usize::MAX;

/// What to model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelSettings {
    /// Server actors.
    pub servers: usize,
    /// Client actors.
    pub clients: usize,
    /// Operations per client.
    pub ops: usize,
    /// Replicas per key.
    pub n: usize,
    /// Read quorum.
    pub r: usize,
    /// Write quorum.
    pub w: usize,
    /// Versioning scheme.
    pub versioning: Versioning,
    /// Clock truncation threshold.
    pub truncate: usize,
    /// Sloppy quorum on (replica timers armed, hinted writes).
    pub sloppy: bool,
    /// Server crashes allowed.
    pub crashes: usize,
    /// The network.
    pub network: NetworkKind,
    /// Keys the clients use (1 or 2).
    pub keys: usize,
    /// How full clients' puts get their context.
    pub puts: Puts,
    /// Every key starts with one value, held by all its replicas: written
    /// (and acknowledged) before the clients start, through a node that has
    /// since left the ring, so its clock entry is one no server advances.
    pub preload: bool,
    /// Every client talks to server 0 (else client i talks to server i mod S).
    pub same_coordinator: bool,
    /// Arm request deadlines (see [`TimerPolicy::deadlines`]).
    pub deadlines: bool,
    /// Judge "reads see acknowledged writes": `None` decides by the
    /// configuration (R + W > N without sloppy quorum), `Some` forces it
    /// (to show what R + W <= N does).
    pub strict: Option<bool>,
    /// Also judge "reads never go back in real time" (what a linearizable
    /// register promises and Dynamo does not), to exhibit its violation.
    pub real_time_reads: bool,
    /// Extra clients that make one blind put each (after the `clients`,
    /// talking to the servers in turn from server 0).
    pub writers: usize,
    /// Extra clients that only get (after the writers, talking to the
    /// servers in turn from server 0): reader k makes k + 1 gets. A client
    /// sends its first request at start, so only a later get of a later
    /// reader can begin after an earlier reader's get completed. Writers
    /// and readers watch a write in flight without multiplying the states
    /// as full clients would.
    pub readers: usize,
    /// Anti-entropy exchanges each server starts (0: anti-entropy off).
    /// A tick that finds an exchange still running starts none and spends
    /// none.
    pub anti_entropy: usize,
    /// With `preload`: only one replica of each key (the first that is not
    /// server 0) holds the preloaded value (the others missed it), so only
    /// anti-entropy or a read can spread it.
    pub diverged: bool,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            servers: 3,
            clients: 2,
            ops: 2,
            n: 3,
            r: 2,
            w: 2,
            versioning: Versioning::Dvv,
            truncate: 10,
            sloppy: false,
            crashes: 0,
            network: NetworkKind::Unordered,
            keys: 1,
            puts: Puts::ReadModifyWrite,
            preload: false,
            same_coordinator: false,
            deadlines: false,
            strict: None,
            real_time_reads: false,
            writers: 0,
            readers: 0,
            anti_entropy: 0,
            diverged: false,
        }
    }
}

impl ModelSettings {
    /// The protocol settings the servers run with.
    pub fn protocol(&self) -> Settings {
        Settings {
            n: self.n,
            r: self.r,
            w: self.w,
            versioning: self.versioning,
            clock_entries_max: self.truncate,
            sloppy_quorum: self.sloppy,
            // The model's timers fire whenever it chooses; any positive
            // interval turns anti-entropy (and its trees) on.
            anti_entropy_interval_ms: u64::from(self.anti_entropy > 0),
            ..Settings::default()
        }
    }

    /// Reads must see acknowledged writes: R + W > N without sloppy quorum.
    pub fn strict(&self) -> bool {
        self.strict.unwrap_or(self.r + self.w > self.n && !self.sloppy)
    }

    /// Checks the settings; the message names the setting.
    ///
    /// # Errors
    /// A setting out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.servers == 0 || self.ops == 0 {
            return Err("--servers and --ops must be at least 1".into());
        }
        if self.clients + self.writers + self.readers == 0 {
            return Err("the model needs a client: --clients, --writers or --readers".into());
        }
        if !(1..=2).contains(&self.keys) {
            return Err(format!("--keys must be 1 or 2, got {}", self.keys));
        }
        if self.truncate == 0 {
            return Err("--truncate must be at least 1".into());
        }
        if self.diverged && !self.preload {
            return Err("--diverged needs --preload (it says who holds the preloaded values)".into());
        }
        self.protocol()
            .validate(self.servers)
            .map_err(|error| error.to_string())
    }

    /// With `preload`: each key, its first value, that value's sibling set,
    /// and the servers that replicate it.
    fn preloaded(&self, ring: &Ring) -> Vec<(String, String, SiblingSet, Vec<NodeId>)> {
        if !self.preload {
            return Vec::new();
        }
        let departed = VersionActor {
            node: NodeId(self.servers as u32),
            incarnation: 1,
        };
        (0..self.keys)
            .map(|index| {
                let key = key_of(index);
                let value = format!("init-{key}");
                let mut set = SiblingSet::new();
                set.put(
                    departed,
                    &VectorClock::new(),
                    Some(value.clone().into_bytes()),
                    0,
                    self.versioning,
                    self.truncate,
                )
                .expect("an empty set takes a first version");
                let replicas = ring.preference_list(ring.partition_of(key.as_bytes()), self.n);
                (key, value, set, replicas)
            })
            .collect()
    }

    /// The stateright model.
    pub fn into_model(self) -> DynamoModel {
        let members: Vec<NodeId> = (0..self.servers as u32).map(NodeId).collect();
        let ring = Ring::new(self.servers as u32, &members).expect("validated: one partition per server");
        let settings = self.protocol();
        let network = match self.network {
            NetworkKind::Duplicating => Network::new_unordered_duplicating([]),
            NetworkKind::Unordered | NetworkKind::Lossy => Network::new_unordered_nonduplicating([]),
        };
        let lossy = if self.network == NetworkKind::Lossy {
            LossyNetwork::Yes
        } else {
            LossyNetwork::No
        };
        let timers = TimerPolicy {
            replicas: self.sloppy,
            deadlines: self.deadlines,
            exchanges: self.anti_entropy,
        };
        let preloaded = self.preloaded(&ring);
        let servers = (0..self.servers).map(|server| DynamoActor::Server {
            ring: ring.clone(),
            settings: settings.clone(),
            timers,
            preload: preloaded
                .iter()
                .filter(|(_, _, _, replicas)| {
                    let here = NodeId(server as u32);
                    if self.diverged {
                        // One replica other than server 0, where writers'
                        // puts enter: a coordinator sends its whole set,
                        // so a put through the holder would carry it.
                        replicas.iter().find(|replica| replica.0 != 0) == Some(&here)
                    } else {
                        replicas.contains(&here)
                    }
                })
                .map(|(key, _, set, _)| (key.clone().into_bytes(), set.clone()))
                .collect(),
        });
        let full = (0..self.clients).map(|index| (index, Role::Full, index % self.servers, self.ops));
        let writers = (0..self.writers).map(|k| (self.clients + k, Role::Writer, k % self.servers, 1));
        let readers =
            (0..self.readers).map(|k| (self.clients + self.writers + k, Role::Reader, k % self.servers, k + 1));
        let clients: Vec<DynamoActor> = full
            .chain(writers)
            .chain(readers)
            .map(|(index, role, server, ops)| DynamoActor::Client {
                index,
                server: Id::from(if self.same_coordinator { 0 } else { server }),
                ops,
                keys: self.keys,
                puts: self.puts,
                role,
            })
            .collect();
        let servers: Vec<DynamoActor> = servers.collect();
        let crashes = self.crashes;
        let history = History::preloaded(preloaded.into_iter().map(|(key, value, _, _)| (key, value)));
        properties(
            ActorModel::new(self, history)
                .actors(servers)
                .actors(clients)
                .init_network(network)
                .lossy_network(lossy)
                .max_crashes(crashes)
                .within_boundary(crash_budget)
                .record_msg_out(record_invocation)
                .record_msg_in(record_completion),
        )
    }
}

/// `--crashes K` means K crashes in all. stateright's `max_crashes` bounds
/// only the actors down *at the same time*, and would crash clients too: a
/// server could crash and recover for ever, each start a new incarnation, so
/// the state space would have no end (a depth-first run filled 24 GB in half
/// a minute). The boundary keeps the states where servers have crashed at
/// most K times in all (restarts so far, from the incarnation each stored,
/// plus servers down now) and no client is down.
fn crash_budget(cfg: &ModelSettings, state: &ActorModelState<DynamoActor, History>) -> bool {
    if cfg.crashes == 0 {
        return true;
    }
    if state.crashed.iter().skip(cfg.servers).any(|&crashed| crashed) {
        return false;
    }
    let restarts: u64 = state
        .actor_storages
        .iter()
        .take(cfg.servers)
        .flatten()
        .map(|storage| storage.incarnation.saturating_sub(1))
        .sum();
    let down = state
        .crashed
        .iter()
        .take(cfg.servers)
        .filter(|&&crashed| crashed)
        .count() as u64;
    restarts + down <= cfg.crashes as u64
}
