//! The nemesis: faults done for real to a local cluster while the load
//! runs, each recorded in the history as a `fault` event (HISTORY.md,
//! "Fault events") with how it was done.
//!
//! Kinds here: `kill` (SIGKILL, then a restart on the same data directory
//! when the fault ends) and `pause` (SIGSTOP, then SIGCONT: a node that is
//! slow, not dead — the hardest case for failure detection). A schedule is
//! explicit events from the spec, a seeded random one (`kinds`, how often,
//! how long, a quiet period at the end), or both; the same seed gives the
//! same schedule. At most one fault holds a node at a time. When the load
//! ends, every fault still on is healed before the final reads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dynamo_node::launcher::LocalCluster;
use dynamo_node::sync::Recover;

use crate::keys::Rng;
use crate::record::HistoryWriter;

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL, then a restart on the same data directory.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
}

impl FaultKind {
    /// Its name in specs and histories.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
        }
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;

    fn from_str(text: &str) -> Result<FaultKind, String> {
        match text {
            "kill" => Ok(FaultKind::Kill),
            "pause" => Ok(FaultKind::Pause),
            "partition" | "latency" | "loss" | "disk" => Err(format!(
                "{text:?} is a fault this dynamo-bench cannot do yet (kill and pause can); the run would skip it, so it does not start"
            )),
            other => Err(format!("{other:?} is not a fault kind (kill, pause)")),
        }
    }
}

/// One fault: from `at` (since the load started) for `lasting`, on nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// When it starts, from the start of the load (warm-up included).
    pub at: Duration,
    /// What it does.
    pub kind: FaultKind,
    /// The node names it acts on.
    pub targets: Vec<String>,
    /// How long it holds before it is healed.
    pub lasting: Duration,
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
    /// fault at a time per node.
    pub fn schedule(&self, nodes: &[String], total: Duration, seed: u64) -> Vec<Fault> {
        let mut rng = Rng::new(seed ^ 0x6661_756c_7473); // "faults"
        let eligible: Vec<String> = if self.targets.is_empty() {
            nodes.to_vec()
        } else {
            self.targets.clone()
        };
        let mut faults: Vec<Fault> = Vec::new();
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
                faults
                    .iter()
                    .any(|fault| fault.targets.contains(node) && fault.at + fault.lasting > at)
            };
            let free: Vec<&String> = eligible.iter().filter(|node| !busy(node)).collect();
            if free.is_empty() {
                continue;
            }
            let node = free[rng.below(free.len() as u64) as usize].clone();
            let kind = self.kinds[rng.below(self.kinds.len() as u64) as usize];
            faults.push(Fault {
                at,
                kind,
                targets: vec![node],
                lasting: self.lasting,
            });
        }
        faults
    }
}

/// Runs `schedule` against `cluster` on a thread of its own, writing each
/// fault's start and end to `history`, from `load_start`. Returns a handle
/// that heals what is still on and joins when the load is over.
pub struct Nemesis {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

/// A fault being held, to heal.
struct Held {
    fault: Fault,
    index: usize,
    until: Instant,
}

impl Nemesis {
    /// Starts the nemesis.
    pub fn start(
        cluster: Arc<Mutex<LocalCluster>>,
        mut schedule: Vec<Fault>,
        history: Arc<HistoryWriter>,
        load_start: Instant,
    ) -> Nemesis {
        schedule.sort_by_key(|fault| fault.at);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut problems = Vec::new();
            let mut held: Vec<Held> = Vec::new();
            let mut next = 0;
            while !stopping.load(Ordering::Relaxed) {
                let now = Instant::now();
                held.retain(|hold| {
                    if hold.until <= now {
                        heal(&cluster, hold, &history, &mut problems);
                        false
                    } else {
                        true
                    }
                });
                while next < schedule.len() && load_start + schedule[next].at <= now {
                    let fault = schedule[next].clone();
                    next += 1;
                    if let Some(hold) = inflict(&cluster, fault, &history, &mut problems) {
                        held.push(hold);
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            for hold in &held {
                heal(&cluster, hold, &history, &mut problems);
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

fn inflict(
    cluster: &Mutex<LocalCluster>,
    fault: Fault,
    history: &HistoryWriter,
    problems: &mut Vec<String>,
) -> Option<Held> {
    let mut cluster = cluster.lock().recover();
    let name = fault.targets.first()?.clone();
    let Some(index) = cluster.config().members.iter().position(|member| member.name == name) else {
        problems.push(format!("fault on {name}: no such node"));
        return None;
    };
    let Some(pid) = cluster.pid(index) else {
        problems.push(format!("fault on {name}: it is not running"));
        return None;
    };
    match fault.kind {
        FaultKind::Kill => cluster.kill9(index),
        FaultKind::Pause => cluster.pause(index),
    }
    let detail = match fault.kind {
        FaultKind::Kill => format!("SIGKILL pid {pid}"),
        FaultKind::Pause => format!("SIGSTOP pid {pid}"),
    };
    history.fault(fault.kind.name(), "start", &fault.targets, Some(&detail));
    let until = Instant::now() + fault.lasting;
    Some(Held { fault, index, until })
}

fn heal(cluster: &Mutex<LocalCluster>, hold: &Held, history: &HistoryWriter, problems: &mut Vec<String>) {
    let mut cluster = cluster.lock().recover();
    let detail = match hold.fault.kind {
        FaultKind::Kill => match cluster.start_node(hold.index) {
            Ok(()) => format!(
                "restarted on the same data directory, pid {}",
                cluster.pid(hold.index).unwrap_or(0)
            ),
            Err(error) => {
                problems.push(format!("restarting {}: {error}", hold.fault.targets.join(",")));
                format!("restart failed: {error}")
            }
        },
        FaultKind::Pause => {
            cluster.resume(hold.index);
            format!("SIGCONT pid {}", cluster.pid(hold.index).unwrap_or(0))
        }
    };
    history.fault(hold.fault.kind.name(), "end", &hold.fault.targets, Some(&detail));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_schedule_is_seeded_quiet_at_the_end_and_one_fault_per_node_at_a_time() {
        let nodes: Vec<String> = (1..=5).map(|index| format!("n{index}")).collect();
        let random = RandomFaults::with_kinds(vec![FaultKind::Kill, FaultKind::Pause]);
        let total = Duration::from_secs(120);
        let schedule = random.schedule(&nodes, total, 7);
        assert_eq!(
            schedule,
            random.schedule(&nodes, total, 7),
            "the same seed, the same schedule"
        );
        assert_ne!(schedule, random.schedule(&nodes, total, 8));
        assert!(schedule.len() >= 5, "{schedule:?}");
        for fault in &schedule {
            assert!(fault.at + fault.lasting <= total - random.quiet, "{fault:?}");
            let overlapping = schedule.iter().filter(|other| {
                other.targets == fault.targets
                    && other.at < fault.at + fault.lasting
                    && fault.at < other.at + other.lasting
            });
            assert_eq!(overlapping.count(), 1, "two faults hold {:?} at once", fault.targets);
        }
        assert!("partition".parse::<FaultKind>().unwrap_err().contains("cannot do yet"));
    }
}
