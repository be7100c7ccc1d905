//! The nemesis: faults done for real to a local cluster while the load
//! runs, each recorded in the history as `fault` events (HISTORY.md,
//! "Fault events") with how it was done, in words a person can repeat.
//!
//! Kinds:
//!
//! - `kill`: SIGKILL, then a restart on the same data directory when the
//!   fault ends. `pause`: SIGSTOP, then SIGCONT (a node that is slow, not
//!   dead: the hardest case for failure detection).
//! - `partition`: nft rules in a table of the bench's own that drop the
//!   traffic between groups of node addresses ([`firewall`]; root).
//!   Shapes: isolate one node, majority/minority, random halves, a bridge,
//!   a ring.
//! - On a cluster this bench did not start (`--cluster FILE`): kill, pause
//!   and partition through the file's `[faults]` commands ([`remote`]).
//! - `disk`: kill the node, damage its data directory while it is down
//!   (a flipped byte in a sealed or the active segment, a cut tail, a
//!   deleted segment, or the whole directory wiped), restart it ([`disk`]).
//! - `latency`, `stall`, `bandwidth`, `loss`: on the peer links of a node,
//!   through the bench's userspace TCP proxy ([`proxy`]): delay plus
//!   jitter, nothing moving at all, a slow link, connections dropped.
//! - `join`, `leave`, `replace`: membership changes ([`membership`]): a
//!   node outside the ring (a spare, or one that left) joins it; a member
//!   leaves it; a member leaves, is killed, has its data directory wiped,
//!   restarts and joins again. Each holds from the request until every
//!   partition it moves has moved (its `for` is not used).
//!
//! A schedule is explicit events from the spec, a seeded random one (kinds,
//! how often, how long, a quiet period at the end), or both; the same seed
//! gives the same schedule. At most one fault holds a node at a time (a
//! partition holds them all). When the load ends, every fault still on is
//! healed before the final reads.

use std::time::Duration;

use crate::keys::Rng;

pub mod disk;
pub mod firewall;
pub mod membership;
mod nemesis;
pub mod proxy;
pub mod remote;

pub use nemesis::{Nemesis, World};

/// What kind of fault: the names used in specs, `--faults` and histories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL, then a restart on the same data directory.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// nft rules dropping traffic between groups of nodes.
    Partition,
    /// Damage to a data directory while its node is down.
    Disk,
    /// Delay plus jitter on a node's peer links (the proxy).
    Latency,
    /// Nothing moves on a node's peer links until the fault ends.
    Stall,
    /// A node's peer links slowed to a bandwidth.
    Bandwidth,
    /// A node's peer connections dropped at random.
    Loss,
    /// A node outside the ring joins it.
    Join,
    /// A member leaves the ring.
    Leave,
    /// A member leaves, is wiped and joins again.
    Replace,
}

/// A choice spelled by a name in specs: its names, its parsing.
pub trait Named: Copy + PartialEq + 'static {
    /// What it is, for errors ("fault kind").
    const WHAT: &'static str;
    /// Every value with its name.
    const ALL: &'static [(Self, &'static str)];

    /// Its name.
    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(value, _)| *value == self)
            .map_or("?", |(_, name)| name)
    }

    /// The value named `text`; the error lists the names.
    fn named(text: &str) -> Result<Self, String> {
        Self::ALL
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(value, _)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|(_, name)| *name).collect();
                format!("{text:?} is not a {} ({})", Self::WHAT, names.join(", "))
            })
    }
}

impl Named for FaultKind {
    const WHAT: &'static str = "fault kind";
    const ALL: &'static [(FaultKind, &'static str)] = &[
        (FaultKind::Kill, "kill"),
        (FaultKind::Pause, "pause"),
        (FaultKind::Partition, "partition"),
        (FaultKind::Disk, "disk"),
        (FaultKind::Latency, "latency"),
        (FaultKind::Stall, "stall"),
        (FaultKind::Bandwidth, "bandwidth"),
        (FaultKind::Loss, "loss"),
        (FaultKind::Join, "join"),
        (FaultKind::Leave, "leave"),
        (FaultKind::Replace, "replace"),
    ];
}

impl FaultKind {
    /// A membership change, held until it completes.
    pub fn is_membership(self) -> bool {
        matches!(self, FaultKind::Join | FaultKind::Leave | FaultKind::Replace)
    }

    /// A fault on the peer links, done by the proxy.
    pub fn is_link(self) -> bool {
        matches!(
            self,
            FaultKind::Latency | FaultKind::Stall | FaultKind::Bandwidth | FaultKind::Loss
        )
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;

    fn from_str(text: &str) -> Result<FaultKind, String> {
        FaultKind::named(text)
    }
}

/// The shape of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One node cut from all others.
    Isolate,
    /// A majority and a minority (the minority holds ⌊(n−1)/2⌋ nodes).
    Majority,
    /// Two random halves.
    Halves,
    /// Two halves that share one node, which sees both.
    Bridge,
    /// Nodes in a random ring, each seeing only its two neighbours.
    Ring,
}

impl Named for Shape {
    const WHAT: &'static str = "partition shape";
    const ALL: &'static [(Shape, &'static str)] = &[
        (Shape::Isolate, "isolate"),
        (Shape::Majority, "majority"),
        (Shape::Halves, "halves"),
        (Shape::Bridge, "bridge"),
        (Shape::Ring, "ring"),
    ];
}

impl Shape {
    /// The groups of this shape over `nodes` (at least two), drawn from
    /// `rng`; `pick` is the node to isolate or to make the bridge, when the
    /// schedule chose one. Two nodes can talk iff a group holds both.
    pub fn groups(self, nodes: &[String], pick: Option<&String>, rng: &mut Rng) -> Vec<Vec<String>> {
        let mut order = nodes.to_vec();
        for index in (1..order.len()).rev() {
            let other = rng.below(index as u64 + 1) as usize;
            order.swap(index, other);
        }
        if let Some(pick) = pick {
            order.retain(|node| node != pick);
            order.insert(0, pick.clone());
        }
        let count = order.len();
        let mut groups = match self {
            Shape::Isolate => vec![order[1..].to_vec(), order[..1].to_vec()],
            Shape::Majority => {
                let minority = (count - 1) / 2;
                vec![order[minority..].to_vec(), order[..minority].to_vec()]
            }
            Shape::Halves => {
                let half = count / 2;
                vec![order[half..].to_vec(), order[..half].to_vec()]
            }
            Shape::Bridge => {
                let rest = &order[1..];
                let half = rest.len().div_ceil(2);
                let mut left = rest[..half].to_vec();
                let mut right = rest[half..].to_vec();
                left.push(order[0].clone());
                right.push(order[0].clone());
                vec![left, right]
            }
            Shape::Ring => (0..count)
                .map(|index| vec![order[index].clone(), order[(index + 1) % count].clone()])
                .collect(),
        };
        for group in &mut groups {
            group.sort_by_key(|name| node_number(name));
        }
        groups.retain(|group| !group.is_empty());
        groups
    }
}

impl std::str::FromStr for Shape {
    type Err = String;

    fn from_str(text: &str) -> Result<Shape, String> {
        Shape::named(text)
    }
}

/// `n12` → 12, for ordering node names as people count them.
pub(crate) fn node_number(name: &str) -> usize {
    name.trim_start_matches('n').parse().unwrap_or(usize::MAX)
}

/// Damage done to a data directory while its node is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Damage {
    /// One byte flipped in a sealed segment (one that is no longer
    /// appended to).
    FlipSealed,
    /// One byte flipped in a partition's active (last) segment.
    FlipActive,
    /// The tail of an active segment cut off, as a torn write leaves it.
    Truncate,
    /// A whole segment file deleted.
    DeleteSegment,
    /// The whole data directory removed: the node comes back empty, as a
    /// fresh incarnation (a replaced disk).
    Wipe,
    /// One byte flipped inside a batch of the commit log (sync `always`):
    /// replay must cut it as a torn tail, or report it and salvage the
    /// batches after it, and lose no acknowledged write either way.
    FlipLog,
}

impl Named for Damage {
    const WHAT: &'static str = "disk damage";
    const ALL: &'static [(Damage, &'static str)] = &[
        (Damage::FlipSealed, "flip-sealed"),
        (Damage::FlipActive, "flip-active"),
        (Damage::Truncate, "truncate"),
        (Damage::DeleteSegment, "delete-segment"),
        (Damage::Wipe, "wipe"),
        (Damage::FlipLog, "flip-log"),
    ];
}

impl std::str::FromStr for Damage {
    type Err = String;

    fn from_str(text: &str) -> Result<Damage, String> {
        Damage::named(text)
    }
}

/// What the proxy does to a link while a link fault holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LinkFault {
    /// Each chunk delivered `delay` plus a uniform draw in `[0, jitter)`
    /// late (in order).
    Latency {
        /// The fixed part.
        delay: Duration,
        /// The random part's bound.
        jitter: Duration,
    },
    /// Nothing is delivered until the fault ends.
    Stall,
    /// At most this many bytes per second each way.
    Bandwidth {
        /// Bytes per second.
        bytes_per_second: u64,
    },
    /// Each chunk forwarded drops its connection with this probability.
    Loss {
        /// Per chunk, in (0, 1].
        drop: f64,
    },
}

impl LinkFault {
    /// In words, for the history's `detail`.
    pub fn describe(&self) -> String {
        match self {
            LinkFault::Latency { delay, jitter } => {
                format!(
                    "+{} ms + uniform [0, {}) ms per chunk",
                    delay.as_millis(),
                    jitter.as_millis()
                )
            }
            LinkFault::Stall => "nothing delivered until the end".to_string(),
            LinkFault::Bandwidth { bytes_per_second } => format!("at most {bytes_per_second} bytes/s each way"),
            LinkFault::Loss { drop } => format!("each chunk drops its connection with probability {drop}"),
        }
    }
}

/// The settings of faults that take any: from `[faults]`, with defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSettings {
    /// Partition shapes the random schedule draws from.
    pub shapes: Vec<Shape>,
    /// Disk damages the random schedule draws from.
    pub damages: Vec<Damage>,
    /// Whether a partition also cuts the driver from the nodes outside its
    /// group (the first, largest one).
    pub cut_clients: bool,
    /// `latency`: fixed delay.
    pub delay: Duration,
    /// `latency`: jitter bound.
    pub jitter: Duration,
    /// `bandwidth`: bytes per second.
    pub bytes_per_second: u64,
    /// `loss`: probability per chunk.
    pub drop: f64,
}

impl Default for FaultSettings {
    fn default() -> FaultSettings {
        FaultSettings {
            shapes: Shape::ALL.iter().map(|(shape, _)| *shape).collect(),
            damages: Damage::ALL.iter().map(|(damage, _)| *damage).collect(),
            cut_clients: false,
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(50),
            bytes_per_second: 64 * 1024,
            drop: 0.01,
        }
    }
}

impl FaultSettings {
    /// The link fault of `kind` under these settings.
    pub fn link(&self, kind: FaultKind) -> Option<LinkFault> {
        match kind {
            FaultKind::Latency => Some(LinkFault::Latency {
                delay: self.delay,
                jitter: self.jitter,
            }),
            FaultKind::Stall => Some(LinkFault::Stall),
            FaultKind::Bandwidth => Some(LinkFault::Bandwidth {
                bytes_per_second: self.bytes_per_second,
            }),
            FaultKind::Loss => Some(LinkFault::Loss { drop: self.drop }),
            _ => None,
        }
    }
}

/// What a scheduled fault does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// SIGKILL, restart at the end.
    Kill,
    /// SIGSTOP, SIGCONT at the end.
    Pause,
    /// Cut every link no group holds both ends of.
    Partition {
        /// The groups (two nodes talk iff a group holds both).
        groups: Vec<Vec<String>>,
        /// Also cut the driver from the nodes outside the first group.
        cut_clients: bool,
    },
    /// Kill, damage, restart at the end.
    Disk(Damage),
    /// Through the proxy, on every peer link of the targets.
    Link(FaultKind, LinkFault),
    /// A membership change: `Join`, `Leave` or `Replace`.
    Membership(FaultKind),
}

impl Action {
    /// The kind.
    pub fn kind(&self) -> FaultKind {
        match self {
            Action::Kill => FaultKind::Kill,
            Action::Pause => FaultKind::Pause,
            Action::Partition { .. } => FaultKind::Partition,
            Action::Disk(_) => FaultKind::Disk,
            Action::Link(kind, _) | Action::Membership(kind) => *kind,
        }
    }
}

/// One fault: from `at` (since the load started) for `lasting`, on nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// When it starts, from the start of the load (warm-up included).
    pub at: Duration,
    /// What it does.
    pub action: Action,
    /// The nodes it holds (a partition: every node of its groups).
    pub targets: Vec<String>,
    /// How long it holds before it is healed.
    pub lasting: Duration,
}

impl Fault {
    /// The `targets` of its history events: the nodes, or for a partition
    /// its groups as `"n1,n2|n3,n4,n5"` (HISTORY.md).
    pub fn history_targets(&self) -> Vec<String> {
        match &self.action {
            Action::Partition { groups, .. } => {
                vec![groups.iter().map(|group| group.join(",")).collect::<Vec<_>>().join("|")]
            }
            _ => self.targets.clone(),
        }
    }

    /// Builds the action of `kind` on `target` (the node a one-node fault
    /// hits; a partition's isolated or bridging node), drawing a partition's
    /// shape and groups and a disk damage from `rng`.
    pub fn draw(
        kind: FaultKind,
        target: Option<&String>,
        nodes: &[String],
        settings: &FaultSettings,
        rng: &mut Rng,
    ) -> (Action, Vec<String>) {
        let one = || target.cloned().into_iter().collect::<Vec<_>>();
        match kind {
            FaultKind::Kill => (Action::Kill, one()),
            FaultKind::Pause => (Action::Pause, one()),
            FaultKind::Disk => {
                let damage = settings.damages[rng.below(settings.damages.len().max(1) as u64) as usize];
                (Action::Disk(damage), one())
            }
            FaultKind::Partition => {
                let shape = settings.shapes[rng.below(settings.shapes.len().max(1) as u64) as usize];
                partition(shape, target, nodes, settings.cut_clients, rng)
            }
            FaultKind::Join | FaultKind::Leave | FaultKind::Replace => (Action::Membership(kind), one()),
            link => {
                let fault = settings.link(link).unwrap_or(LinkFault::Stall);
                (Action::Link(link, fault), one())
            }
        }
    }
}

/// A partition of `shape` over `nodes`: the action and the nodes it holds.
pub fn partition(
    shape: Shape,
    pick: Option<&String>,
    nodes: &[String],
    cut_clients: bool,
    rng: &mut Rng,
) -> (Action, Vec<String>) {
    let groups = shape.groups(nodes, pick, rng);
    (Action::Partition { groups, cut_clients }, nodes.to_vec())
}

/// A seeded random schedule's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomFaults {
    /// The kinds to draw from.
    pub kinds: Vec<FaultKind>,
    /// The mean time between fault starts.
    pub every: Duration,
    /// How long each lasts.
    pub lasting: Duration,
    /// No fault starts in this last part of the load (so the cluster is
    /// whole again before the final reads).
    pub quiet: Duration,
    /// The nodes that may be hit (empty: all).
    pub targets: Vec<String>,
}

impl RandomFaults {
    /// The defaults `--faults KINDS` uses.
    pub fn with_kinds(kinds: Vec<FaultKind>) -> RandomFaults {
        RandomFaults {
            kinds,
            every: Duration::from_secs(8),
            lasting: Duration::from_secs(3),
            quiet: Duration::from_secs(5),
            targets: Vec::new(),
        }
    }

    /// The schedule for a load of `total` over `nodes`, from `seed`: one
    /// fault at a time per node (a partition holds every node), counting
    /// the `fixed` faults (the spec's explicit events) as already holding
    /// theirs. Returns the drawn faults only.
    pub fn schedule(
        &self,
        nodes: &[String],
        total: Duration,
        seed: u64,
        settings: &FaultSettings,
        fixed: &[Fault],
    ) -> Vec<Fault> {
        let mut rng = Rng::new(seed ^ 0x6661_756c_7473); // "faults"
        let eligible: Vec<String> = if self.targets.is_empty() {
            nodes.to_vec()
        } else {
            self.targets.clone()
        };
        let mut faults: Vec<Fault> = fixed.to_vec();
        let mut at = Duration::ZERO;
        let end = total.saturating_sub(self.quiet);
        loop {
            // Exponential gaps around the mean: faults come irregularly.
            let gap = -(1.0 - rng.unit()).ln() * self.every.as_secs_f64();
            at += Duration::from_secs_f64(gap.min(self.every.as_secs_f64() * 5.0));
            if at + self.lasting > end || eligible.is_empty() || self.kinds.is_empty() {
                break;
            }
            let busy = |node: &String| {
                faults.iter().any(|fault| {
                    fault.targets.contains(node) && fault.at + fault.lasting > at && fault.at < at + self.lasting
                })
            };
            let free: Vec<&String> = eligible.iter().filter(|node| !busy(node)).collect();
            let kind = self.kinds[rng.below(self.kinds.len() as u64) as usize];
            if free.is_empty() || (kind == FaultKind::Partition && nodes.iter().any(busy)) {
                continue;
            }
            let node = free[rng.below(free.len() as u64) as usize].clone();
            let (action, targets) = Fault::draw(kind, Some(&node), nodes, settings, &mut rng);
            faults.push(Fault {
                at,
                action,
                targets,
                lasting: self.lasting,
            });
        }
        faults.split_off(fixed.len())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_schedule_is_seeded_quiet_at_the_end_and_one_fault_per_node_at_a_time() {
        let nodes: Vec<String> = (1..=5).map(|index| format!("n{index}")).collect();
        let random = RandomFaults::with_kinds(vec![
            FaultKind::Kill,
            FaultKind::Pause,
            FaultKind::Partition,
            FaultKind::Disk,
            FaultKind::Latency,
        ]);
        let settings = FaultSettings::default();
        let total = Duration::from_secs(300);
        let fixed = vec![Fault {
            at: Duration::from_secs(20),
            action: Action::Kill,
            targets: vec!["n1".to_string()],
            lasting: Duration::from_secs(60),
        }];
        let drawn = random.schedule(&nodes, total, 7, &settings, &fixed);
        assert_eq!(
            drawn,
            random.schedule(&nodes, total, 7, &settings, &fixed),
            "the same seed, the same schedule"
        );
        assert_ne!(drawn, random.schedule(&nodes, total, 8, &settings, &fixed));
        let schedule: Vec<Fault> = fixed.iter().chain(&drawn).cloned().collect();
        assert!(schedule.len() >= 10, "{schedule:?}");
        for kind in [FaultKind::Partition, FaultKind::Disk, FaultKind::Latency] {
            assert!(schedule.iter().any(|fault| fault.action.kind() == kind), "no {kind:?}");
        }
        for fault in &drawn {
            assert!(fault.at + fault.lasting <= total - random.quiet, "{fault:?}");
        }
        for fault in &schedule {
            for node in &fault.targets {
                let holding = schedule.iter().filter(|other| {
                    other.targets.contains(node)
                        && other.at < fault.at + fault.lasting
                        && fault.at < other.at + other.lasting
                });
                assert_eq!(holding.count(), 1, "two faults hold {node} at once");
            }
        }
        assert!("partition".parse::<FaultKind>().is_ok());
        assert!("flood"
            .parse::<FaultKind>()
            .unwrap_err()
            .contains("kill, pause, partition"));
    }

    fn groups(shape: Shape, count: usize, pick: Option<&str>) -> Vec<Vec<String>> {
        let nodes: Vec<String> = (1..=count).map(|index| format!("n{index}")).collect();
        shape.groups(&nodes, pick.map(str::to_string).as_ref(), &mut Rng::new(3))
    }

    fn talks(groups: &[Vec<String>], a: &str, b: &str) -> bool {
        groups
            .iter()
            .any(|group| group.iter().any(|n| n == a) && group.iter().any(|n| n == b))
    }

    #[test]
    fn each_shape_cuts_the_links_it_names() {
        let isolate = groups(Shape::Isolate, 5, Some("n3"));
        assert_eq!(isolate, [vec!["n1", "n2", "n4", "n5"], vec!["n3"]]);
        let majority = groups(Shape::Majority, 5, None);
        assert_eq!((majority[0].len(), majority[1].len()), (3, 2));
        let halves = groups(Shape::Halves, 4, None);
        assert_eq!((halves[0].len(), halves[1].len()), (2, 2));
        let bridge = groups(Shape::Bridge, 5, Some("n2"));
        assert!(
            bridge.iter().all(|group| group.contains(&"n2".to_string())),
            "{bridge:?}"
        );
        let sides: Vec<_> = bridge.iter().map(|group| group.len()).collect();
        assert_eq!(sides, [3, 3], "{bridge:?}");
        let ring = groups(Shape::Ring, 5, None);
        for node in 1..=5 {
            let name = format!("n{node}");
            let neighbours = (1..=5)
                .filter(|other| *other != node && talks(&ring, &name, &format!("n{other}")))
                .count();
            assert_eq!(neighbours, 2, "{name} in {ring:?}");
        }
    }
}
