//! The nemesis thread: starts each scheduled fault on time, heals it when
//! it has lasted, and heals everything still on when the load ends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_node::launcher::LocalCluster;
use dynamo_node::sync::Recover;

use super::firewall::Firewall;
use super::proxy::Proxy;
use super::remote::Remote;
use super::{disk, membership, Action, Fault, FaultKind, Named};
use crate::keys::Rng;
use crate::record::HistoryWriter;

/// What the faults act on: a local cluster's processes, or the nodes of
/// a cluster file through its fault commands.
pub struct World {
    /// The local cluster's processes.
    pub cluster: Option<Arc<Mutex<LocalCluster>>>,
    /// A cluster this bench did not start, and its fault commands.
    pub remote: Option<Arc<Remote>>,
    /// Partitions (when the schedule has any).
    pub firewall: Option<Arc<Firewall>>,
    /// The link proxy (when the schedule has link faults).
    pub proxy: Option<Arc<Proxy>>,
    /// Seeds the nemesis's own choices (which byte a disk fault flips).
    pub seed: u64,
}

/// Runs a schedule against a [`World`] on a thread of its own, writing
/// each fault's start and end to the history.
pub struct Nemesis {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

/// A fault being held, to heal.
struct Held {
    fault: Fault,
    index: usize,
    until: Instant,
    /// A partition's nft table.
    table: Option<String>,
    /// A membership change, running on a thread of its own: it is held
    /// until it ends (`until` is not used).
    change: Option<std::thread::JoinHandle<Result<String, String>>>,
}

impl Held {
    fn is_due(&self, now: Instant) -> bool {
        match &self.change {
            Some(change) => change.is_finished(),
            None => self.until <= now,
        }
    }
}

impl Nemesis {
    /// Starts the nemesis; `load_start` is the time `Fault::at` counts from.
    pub fn start(world: World, mut schedule: Vec<Fault>, history: Arc<HistoryWriter>, load_start: Instant) -> Nemesis {
        schedule.sort_by_key(|fault| fault.at);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut rng = Rng::new(world.seed ^ 0x006e_656d_6573_6973); // "nemesis"
            let mut problems = Vec::new();
            let mut held: Vec<Held> = Vec::new();
            let mut next = 0;
            while !stopping.load(Ordering::Relaxed) {
                let now = Instant::now();
                held.retain_mut(|hold| {
                    if hold.is_due(now) {
                        heal(&world, hold, &history, &mut problems);
                        false
                    } else {
                        true
                    }
                });
                while next < schedule.len() && load_start + schedule[next].at <= now {
                    let fault = schedule[next].clone();
                    next += 1;
                    match inflict(&world, fault, &history, &mut rng) {
                        Ok(hold) => held.push(hold),
                        Err(problem) => problems.push(problem),
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            for hold in &mut held {
                heal(&world, hold, &history, &mut problems);
            }
            problems
        });
        Nemesis { stop, thread }
    }

    /// Stops starting faults, heals every fault still on, and returns what
    /// went wrong doing faults (a node that would not restart, say).
    pub fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| vec!["the nemesis thread panicked".to_string()])
    }
}

fn inflict(world: &World, fault: Fault, history: &HistoryWriter, rng: &mut Rng) -> Result<Held, String> {
    let kind = fault.action.kind().name();
    if let Some(remote) = &world.remote {
        let detail = remote
            .inflict(&fault)
            .map_err(|why| format!("{kind} on {}: {why}", fault.history_targets().join(",")))?;
        history.fault(kind, "start", &fault.history_targets(), Some(&detail));
        return Ok(Held {
            until: Instant::now() + fault.lasting,
            fault,
            index: 0,
            table: None,
            change: None,
        });
    }
    let local = world
        .cluster
        .as_ref()
        .ok_or_else(|| format!("{kind}: no cluster to act on"))?;
    if let Action::Membership(kind) = fault.action {
        return start_change(local, fault, kind, history);
    }
    let mut cluster = local.lock().recover();
    let name = fault.targets.first().cloned().unwrap_or_default();
    let index = cluster
        .config()
        .members
        .iter()
        .position(|member| member.name == name)
        .ok_or_else(|| format!("{kind} on {name}: no such node"))?;
    let pid = || {
        cluster
            .pid(index)
            .ok_or_else(|| format!("{kind} on {name}: it is not running"))
    };
    let mut table = None;
    let detail = match &fault.action {
        Action::Kill => {
            let pid = pid()?;
            cluster.kill9(index);
            format!("SIGKILL pid {pid}")
        }
        Action::Pause => {
            let pid = pid()?;
            cluster.pause(index);
            format!("SIGSTOP pid {pid}")
        }
        Action::Disk(damage) => {
            let pid = pid()?;
            let data = cluster
                .data_dir(index)
                .ok_or_else(|| format!("disk on {name}: no data directory"))?;
            cluster.kill9(index);
            let done = disk::damage(&data, *damage, rng).unwrap_or_else(|error| format!("nothing damaged: {error}"));
            format!("SIGKILL pid {pid}; {}: {done}", damage.name())
        }
        Action::Partition { groups, cut_clients } => {
            let firewall = world
                .firewall
                .as_ref()
                .ok_or_else(|| "partition: the run has no firewall".to_string())?;
            let (made, detail) = firewall
                .cut(groups, *cut_clients)
                .map_err(|error| format!("partition {groups:?}: {error}"))?;
            table = Some(made);
            detail
        }
        Action::Link(_, link) => {
            let proxy = world
                .proxy
                .as_ref()
                .ok_or_else(|| format!("{kind}: the run has no link proxy"))?;
            for target in &fault.targets {
                proxy.set(target, *link);
            }
            format!(
                "link proxy, every peer link of {}: {}",
                fault.targets.join(","),
                link.describe()
            )
        }
        // Started by `start_change` (the early return above).
        Action::Membership(_) => String::new(),
    };
    history.fault(kind, "start", &fault.history_targets(), Some(&detail));
    let until = Instant::now() + fault.lasting;
    Ok(Held {
        fault,
        index,
        until,
        table,
        change: None,
    })
}

/// Starts a membership change on a thread of its own (it lasts as long as
/// its partitions take to move).
fn start_change(
    local: &Arc<Mutex<LocalCluster>>,
    mut fault: Fault,
    kind: FaultKind,
    history: &HistoryWriter,
) -> Result<Held, String> {
    let drawn = fault.targets.first().cloned().unwrap_or_default();
    let target = membership::settle_target(local, kind, &drawn)?;
    let index = local
        .lock()
        .recover()
        .config()
        .members
        .iter()
        .position(|member| member.name == target)
        .ok_or_else(|| format!("{}: no node {target}", kind.name()))?;
    fault.targets = vec![target.clone()];
    let detail = match kind {
        FaultKind::Join => "asked to join the ring (dynamo-node admin join)",
        FaultKind::Leave => "asked to leave the ring (dynamo-node admin leave)",
        _ => "asked to leave the ring, to be wiped and to join again",
    };
    history.fault(kind.name(), "start", &fault.targets, Some(detail));
    let cluster = Arc::clone(local);
    let change = std::thread::spawn(move || membership::change(&cluster, kind, &target));
    Ok(Held {
        fault,
        index,
        until: Instant::now(),
        table: None,
        change: Some(change),
    })
}

fn heal(world: &World, hold: &mut Held, history: &HistoryWriter, problems: &mut Vec<String>) {
    if let Some(change) = hold.change.take() {
        let targets = hold.fault.history_targets();
        let detail = match change.join() {
            Ok(Ok(detail)) => detail,
            Ok(Err(problem)) => {
                problems.push(problem.clone());
                format!("failed: {problem}")
            }
            Err(_) => {
                problems.push("a membership change's thread panicked".into());
                "failed: its thread panicked".into()
            }
        };
        history.fault(hold.fault.action.kind().name(), "end", &targets, Some(&detail));
        return;
    }
    let targets = hold.fault.history_targets();
    let kind = hold.fault.action.kind().name();
    if let Some(remote) = &world.remote {
        let detail = remote.heal(&hold.fault).unwrap_or_else(|why| {
            problems.push(format!("healing {kind} on {}: {why}", targets.join(",")));
            format!("heal failed: {why}")
        });
        history.fault(kind, "end", &targets, Some(&detail));
        return;
    }
    let Some(local) = world.cluster.as_ref() else {
        return;
    };
    let mut cluster = local.lock().recover();
    let detail = match &hold.fault.action {
        Action::Kill | Action::Disk(_) => match cluster.start_node(hold.index) {
            Ok(()) => format!(
                "restarted on {} data directory, pid {}",
                if matches!(hold.fault.action, Action::Disk(_)) {
                    "its damaged"
                } else {
                    "the same"
                },
                cluster.pid(hold.index).unwrap_or(0)
            ),
            Err(error) => {
                problems.push(format!("restarting {}: {error}", targets.join(",")));
                format!("restart failed: {error}")
            }
        },
        Action::Pause => {
            cluster.resume(hold.index);
            format!("SIGCONT pid {}", cluster.pid(hold.index).unwrap_or(0))
        }
        Action::Partition { .. } => {
            let table = hold.table.clone().unwrap_or_default();
            match world.firewall.as_ref().map(|firewall| firewall.heal(&table)) {
                Some(Ok(())) => format!("nft delete table ip {table}"),
                Some(Err(error)) => {
                    problems.push(format!("healing partition {table}: {error}"));
                    format!("heal failed: {error}")
                }
                None => "no firewall".to_string(),
            }
        }
        Action::Link(..) => {
            if let Some(proxy) = world.proxy.as_ref() {
                for target in &hold.fault.targets {
                    proxy.clear(target);
                }
            }
            "link proxy forwards untouched again".to_string()
        }
        // Ended above, when its thread is joined.
        Action::Membership(_) => String::new(),
    };
    history.fault(hold.fault.action.kind().name(), "end", &targets, Some(&detail));
}
