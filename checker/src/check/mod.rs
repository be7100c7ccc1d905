//! Deciding the invariants of shared/HISTORY.md over a read [`History`].
//!
//! [`Dag`]: crate::dag::Dag
//! [`Dag::join`]: crate::dag::Dag::join
//!
//! The work is split by key (causality never crosses keys). For each key:
//!
//! 1. the versions (puts and deletes, in invoke order) and their context
//!    edges form a [`Dag`];
//! 2. two linear passes mark what an acknowledged delete supersedes
//!    (excused from "must be seen") and what any acknowledged write
//!    supersedes (must not come back);
//! 3. the key's events are replayed in observation order, keeping the
//!    *frontier* of acknowledged puts (the maximal ones completed `ok` so
//!    far) and the union of the strict ancestors of every acknowledged
//!    write, grown one write at a time ([`Dag::join`]). A get is judged
//!    against those: stale reads, k-staleness (walking back only from the
//!    frontier versions it missed), and the per-process session
//!    guarantees;
//! 4. the final reads are compared with one another (divergence) and with
//!    every acknowledged write (lost writes, resurrections).
//!
//! Phantom reads and the history's own problems need no graph.
//!
//! # Costs
//!
//! With `n` operations, `V_k` versions of key `k`, `s` the siblings a get
//! returns or the frontier holds (the key's concurrency), `w` a label's
//! window words and `g` its gaps (see [`crate::dag`]; both bounded by the
//! key's recent concurrency, not its length):
//!
//! - reading: O(n) (hash lookups per value id);
//! - history problems, phantom: O(1) per operation and value returned;
//! - the DAG of a key: O(V_k + edges) plus O(parents × (w + g)) per version;
//! - sibling-antichain: one union of the returned set, O(s × (w + g)) per
//!   get;
//! - stale-read part 1 (nothing returned is superseded by an acknowledged
//!   write): O(s log g) per get against the running union; part 2 (every
//!   acknowledged put before the get is seen): one union of the returned
//!   set and O(log g) per frontier put; k-staleness (only for a stale get):
//!   the region between what it returned and what it missed;
//! - sessions: the same unions over a process's maximal reads and puts;
//! - lost-write, resurrection, divergence: two linear passes per key and
//!   O(s) per final read.
//!
//! So a key costs O(V_k × s × (w + g)) whatever the shape of its causality:
//! linear in the history's length.
//!
//! Files: `verdict.rs` holds what the checker answers (modes, invariants,
//! findings, measures, the verdict); `key.rs` judges one key.

mod key;
mod verdict;

use std::collections::BTreeMap;

use crate::history::{History, Kind, Outcome};

use key::{KeyJudge, Samples, SessionTally};
pub use verdict::{
    Counts, Distribution, Finding, Invariant, Mode, Options, RangeStaleness, Session, Staleness, Verdict,
};

struct Findings {
    mode: Mode,
    keep: usize,
    counts: BTreeMap<Invariant, u64>,
    kept: Vec<Finding>,
    truncated: bool,
    stale_measured: u64,
}

impl Findings {
    fn add(&mut self, invariant: Invariant, key: &str, ops: Vec<u64>, message: impl FnOnce() -> String) {
        if invariant == Invariant::StaleRead && self.mode == Mode::Eventual {
            self.stale_measured += 1;
            return;
        }
        let count = self.counts.entry(invariant).or_insert(0);
        *count += 1;
        if *count as usize <= self.keep {
            self.kept.push(Finding {
                invariant,
                key: key.to_string(),
                ops,
                message: message(),
            });
        } else {
            self.truncated = true;
        }
    }
}

/// Checks `history`.
pub fn check(history: &History, options: &Options) -> Verdict {
    check_with(history, options, &mut |_, _| {})
}

/// As [`check`], calling `progress(operations_judged, operations)` as it
/// goes (key by key, at most every 1% of the operations), for a progress
/// line on long histories.
pub fn check_with(history: &History, options: &Options, progress: &mut dyn FnMut(u64, u64)) -> Verdict {
    let mut findings = Findings {
        mode: options.mode,
        keep: options.findings_per_invariant,
        counts: Invariant::ALL.iter().map(|&invariant| (invariant, 0)).collect(),
        kept: Vec::new(),
        truncated: false,
        stale_measured: 0,
    };
    for problem in &history.problems {
        findings.add(
            Invariant::History,
            problem.key.as_deref().unwrap_or(""),
            problem.ops.clone(),
            || format!("line {}: {}", problem.line, problem.message),
        );
    }
    let counts = count(history);
    check_phantoms(history, &mut findings);

    let mut by_key: Vec<Vec<u32>> = vec![Vec::new(); history.keys.len()];
    for (index, operation) in history.operations.iter().enumerate() {
        by_key[operation.key as usize].push(index as u32);
    }
    let mut samples = Samples::default();
    let mut session = SessionTally::default();
    let mut final_keys = 0;
    let total = history.operations.len() as u64;
    let step = (total / 100).max(1);
    let (mut judged, mut reported) = (0u64, 0u64);
    for (key, operations) in by_key.iter().enumerate() {
        if judged - reported >= step {
            reported = judged;
            progress(judged, total);
        }
        judged += operations.len() as u64;
        if operations.is_empty() {
            continue;
        }
        let mut judge = KeyJudge::new(history, key as u32, operations);
        judge.replay(&mut findings, &mut samples, &mut session);
        if judge.final_reads(&mut findings) {
            final_keys += 1;
        }
    }

    let staleness = samples.summarise(history);
    let session = session.summarise();
    let violations = findings.counts.clone();
    let valid = violations.values().all(|&count| count == 0);
    Verdict {
        valid,
        mode: options.mode,
        ops: history.operations.len() as u64,
        violations,
        findings: findings.kept,
        findings_truncated: findings.truncated,
        staleness,
        session,
        counts: Counts { final_keys, ..counts },
        stale_reads_measured: findings.stale_measured,
    }
}

fn count(history: &History) -> Counts {
    let mut counts = Counts {
        keys: history.keys.len() as u64,
        fault_events: history.faults.len() as u64,
        retired_keys: history
            .retirements
            .iter()
            .map(|retirement| retirement.keys.len() as u64)
            .sum(),
        ..Counts::default()
    };
    for fault in history.faults.iter().filter(|fault| fault.phase == "start") {
        *counts.faults.entry(fault.fault.clone()).or_insert(0) += 1;
    }
    for operation in &history.operations {
        match operation.kind {
            Kind::Get => counts.gets += 1,
            Kind::Put => counts.puts += 1,
            Kind::Delete => counts.deletes += 1,
        }
        match operation.outcome {
            Outcome::Ok => counts.ok += 1,
            Outcome::Fail => counts.fail += 1,
            Outcome::Info | Outcome::Open => counts.info += 1,
        }
        if operation.is_final && operation.kind == Kind::Get && operation.outcome == Outcome::Ok {
            counts.final_reads += 1;
        }
    }
    counts
}

fn check_phantoms(history: &History, findings: &mut Findings) {
    for get in &history.operations {
        if get.kind != Kind::Get || get.outcome != Outcome::Ok {
            continue;
        }
        let key = &history.keys[get.key as usize];
        for &value in history.ids(get.values) {
            let name = &history.value_names[value as usize];
            let Some(writer) = history.writers[value as usize] else {
                findings.add(Invariant::Phantom, key, vec![get.id], || {
                    format!("get {} returned {name:?}, which no put wrote", get.id)
                });
                continue;
            };
            let put = &history.operations[writer.operation as usize];
            let problem = if put.key != get.key {
                Some(format!("was written to key {:?}", history.keys[put.key as usize]))
            } else if put.kind == Kind::Delete {
                Some("is a tombstone, which reads never return".to_string())
            } else if put.invoke_seq > get.complete_seq {
                Some(format!("was invoked (op {}) after the get completed", put.id))
            } else if put.outcome == Outcome::Fail {
                Some(format!("belongs to op {}, which failed", put.id))
            } else {
                None
            };
            if let Some(problem) = problem {
                findings.add(Invariant::Phantom, key, vec![get.id, put.id], || {
                    format!("get {} returned {name:?}, which {problem}", get.id)
                });
            }
        }
    }
}
