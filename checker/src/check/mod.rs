//! Deciding the invariants of shared/HISTORY.md over a read [`History`].
//!
//! [`Dag`]: crate::dag::Dag
//! [`Dag::join`]: crate::dag::Dag::join
//!
//! The work is split by key (causality never crosses keys). For each key:
//!
//! 1. the versions (puts and deletes, in invoke order) and their context
//!    edges form a [`Dag`];
//! 2. two linear passes mark what a delete that did not fail supersedes,
//!    with when the first such delete began (excused from "must be seen":
//!    by any such delete for the stale-read invariant, as HISTORY.md
//!    says, but for the staleness measure only by one begun before the get
//!    completed), and what any acknowledged write supersedes (must not
//!    come back);
//! 3. the key's events are replayed in observation order, keeping the
//!    *frontier* of acknowledged puts (the maximal ones completed `ok` so
//!    far, but those an acknowledged delete supersedes: missing them is
//!    excused, and they would otherwise stay maximal forever) and the
//!    union of the strict ancestors of every acknowledged write, grown one
//!    write at a time ([`Dag::join`]). A get is judged against those:
//!    stale reads, k-staleness (walking back only from the frontier
//!    versions it missed), and the per-process session measures (a
//!    process's reads forget versions deleted before its next get began);
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
//! linear in the history's length. Keys are shared between two threads by
//! estimated cost (a hot key costs more per operation), and the findings
//! joined back in key order.
//!
//! # Whole or as it is written
//!
//! [`check`] judges a history read whole. [`Incremental`] takes it line by
//! line, reports phantom, sibling-antichain, stale-read part 1 and history
//! findings as the operation that decides them completes, judges the rest
//! of a key when it is retired (or the history ends) with the same
//! `KeyJudge`, and frees the key. Both give the same verdict; the tests
//! hold them to it.
//!
//! Files: `verdict.rs` holds what the checker answers (modes, invariants,
//! findings, measures, the verdict); `key.rs` judges one key;
//! `incremental.rs` checks as the history is written.

mod incremental;
mod key;
mod verdict;

use std::collections::BTreeMap;

use crate::history::{History, HistoryProblem, Kind, Operation, Outcome};

pub use incremental::Incremental;
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
    fn new(options: &Options) -> Findings {
        Findings {
            mode: options.mode,
            keep: options.findings_per_invariant,
            counts: Invariant::ALL.iter().map(|&invariant| (invariant, 0)).collect(),
            kept: Vec::new(),
            truncated: false,
            stale_measured: 0,
        }
    }

    fn problem(&mut self, problem: &HistoryProblem) {
        self.add(
            Invariant::History,
            problem.key.as_deref().unwrap_or(""),
            problem.ops.clone(),
            || format!("line {}: {}", problem.line, problem.message),
        );
    }

    /// Takes in what two judges of disjoint keys found (each in its keys'
    /// ascending order, `found_in` naming the key of each kept finding),
    /// after what this one holds and in key order: the findings kept are
    /// the ones one judge going key by key would keep. (Each judge kept
    /// its first findings per invariant; the first overall are among them.)
    fn join(&mut self, first: Findings, first_in: &[u32], second: Findings, second_in: &[u32]) {
        let mut tagged: Vec<(u32, Finding)> = first_in
            .iter()
            .copied()
            .zip(first.kept)
            .chain(second_in.iter().copied().zip(second.kept))
            .collect();
        // Stable: a key's findings stay in the order found.
        tagged.sort_by_key(|tagged| tagged.0);
        let mut kept: BTreeMap<Invariant, usize> = BTreeMap::new();
        for finding in &self.kept {
            *kept.entry(finding.invariant).or_insert(0) += 1;
        }
        for (_, finding) in tagged {
            let count = kept.entry(finding.invariant).or_insert(0);
            if *count < self.keep {
                *count += 1;
                self.kept.push(finding);
            } else {
                self.truncated = true;
            }
        }
        for other in [first.counts, second.counts] {
            for (invariant, count) in other {
                *self.counts.entry(invariant).or_insert(0) += count;
            }
        }
        self.truncated |= first.truncated || second.truncated;
        self.stale_measured += first.stale_measured + second.stale_measured;
    }

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
    let mut findings = Findings::new(options);
    for problem in &history.problems {
        findings.problem(problem);
    }
    let mut counts = count(history);
    for operation in &history.operations {
        counts.operation(operation);
    }
    for get in &history.operations {
        if get.kind == Kind::Get && get.outcome == Outcome::Ok {
            for &value in history.ids(get.values) {
                phantom(history, get, value, true, &mut findings);
            }
        }
    }

    let mut by_key: Vec<Vec<u32>> = vec![Vec::new(); history.keys.len()];
    for (index, operation) in history.operations.iter().enumerate() {
        by_key[operation.key as usize].push(index as u32);
    }
    // Keys are independent: they are shared between two threads, the
    // costliest first to whichever has less (a hot key costs more per
    // operation than a cold one: its labels are wider), and the findings
    // are joined back in key order, so the verdict is one thread's.
    let total = history.operations.len() as u64;
    let judged = std::sync::atomic::AtomicU64::new(0);
    let cost = |key: usize| {
        let operations = by_key[key].len() as f64;
        operations * (1.0 + (operations + 1.0).log2())
    };
    let mut order: Vec<usize> = (0..by_key.len()).filter(|&key| !by_key[key].is_empty()).collect();
    order.sort_by(|&a, &b| cost(b).total_cmp(&cost(a)));
    let mut shares: [(f64, Vec<usize>); 2] = [(0.0, Vec::new()), (0.0, Vec::new())];
    for key in order {
        let lighter = usize::from(shares[1].0 < shares[0].0);
        shares[lighter].0 += cost(key);
        shares[lighter].1.push(key);
    }
    for share in &mut shares {
        share.1.sort_unstable();
    }
    let mut judges = [Judged::new(options), Judged::new(options)];
    let [mine, theirs] = &mut judges;
    let [(_, first), (_, second)] = &shares;
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| theirs.judge(history, &by_key, second, &judged, &mut || {}));
        let step = (total / 100).max(1);
        let mut reported = 0;
        mine.judge(history, &by_key, first, &judged, &mut || {
            let done = judged.load(std::sync::atomic::Ordering::Relaxed);
            if done - reported >= step {
                reported = done;
                progress(done, total);
            }
        });
        // A panic in the worker is a bug: carry it over.
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
    });
    let [first, second] = judges;
    let mut samples = first.samples;
    samples.join(second.samples);
    let mut session = first.session;
    for (process, (monotonic, ryw)) in second.session.misses {
        let tally = session.misses.entry(process).or_insert((0, 0));
        tally.0 += monotonic;
        tally.1 += ryw;
    }
    let final_keys = first.final_keys + second.final_keys;
    findings.join(first.findings, &first.found_in, second.findings, &second.found_in);
    verdict(
        history,
        options,
        &findings,
        &samples,
        &session,
        Counts { final_keys, ..counts },
    )
}

/// What judging some keys found.
struct Judged {
    findings: Findings,
    /// The key each kept finding is of (by id), in order.
    found_in: Vec<u32>,
    samples: Samples,
    session: SessionTally,
    final_keys: u64,
}

impl Judged {
    fn new(options: &Options) -> Judged {
        Judged {
            findings: Findings::new(options),
            found_in: Vec::new(),
            samples: Samples::default(),
            session: SessionTally::default(),
            final_keys: 0,
        }
    }

    /// Judges `keys` (ascending ids; `by_key` holds each key's
    /// operations), adding to `judged` as it goes and calling `tick`.
    fn judge(
        &mut self,
        history: &History,
        by_key: &[Vec<u32>],
        keys: &[usize],
        judged: &std::sync::atomic::AtomicU64,
        tick: &mut dyn FnMut(),
    ) {
        for &key in keys {
            tick();
            let operations = &by_key[key];
            judged.fetch_add(operations.len() as u64, std::sync::atomic::Ordering::Relaxed);
            let mut judge = KeyJudge::new(history, key as u32, operations);
            judge.replay(&mut self.findings, &mut self.samples, &mut self.session);
            if judge.final_reads(&mut self.findings) {
                self.final_keys += 1;
            }
            self.found_in.resize(self.findings.kept.len(), key as u32);
        }
    }
}

fn verdict(
    history: &History,
    options: &Options,
    findings: &Findings,
    samples: &Samples,
    session: &SessionTally,
    counts: Counts,
) -> Verdict {
    let violations = findings.counts.clone();
    Verdict {
        valid: violations.values().all(|&count| count == 0),
        mode: options.mode,
        ops: counts.gets + counts.puts + counts.deletes,
        violations,
        findings: findings.kept.clone(),
        findings_truncated: findings.truncated,
        staleness: samples.summarise(history),
        session: session.summarise(),
        counts,
        stale_reads_measured: findings.stale_measured,
    }
}

/// The counts a history's events give, before its operations are counted
/// ([`Counts::operation`]).
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
    counts
}

impl Counts {
    /// Counts one operation (as it ended, or open).
    fn operation(&mut self, operation: &Operation) {
        match operation.kind {
            Kind::Get => self.gets += 1,
            Kind::Put => self.puts += 1,
            Kind::Delete => self.deletes += 1,
        }
        match operation.outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Info | Outcome::Open => self.info += 1,
        }
        if operation.is_final && operation.kind == Kind::Get && operation.outcome == Outcome::Ok {
            self.final_reads += 1;
        }
    }
}

/// Judges one value an `ok` get returned: was it written by a put invoked
/// before the get completed that did not fail? Decided when the get
/// completes unless that put is still running (`at_end` false): then false
/// is returned, to ask again when it completes.
fn phantom(history: &History, get: &Operation, value: u32, at_end: bool, findings: &mut Findings) -> bool {
    let key = &history.keys[get.key as usize];
    let name = &history.value_names[value as usize];
    let put = history.writers[value as usize]
        .map(|writer| &history.operations[writer.operation as usize])
        .filter(|put| put.invoke_seq < get.complete_seq);
    let Some(put) = put else {
        // A writer invoked later is no excuse: the same finding whether
        // one comes or not, so it is decided now.
        findings.add(Invariant::Phantom, key, vec![get.id], || {
            format!(
                "get {} returned {name:?}, which no put invoked before the get completed wrote",
                get.id
            )
        });
        return true;
    };
    let problem = if put.key != get.key {
        Some(format!("was written to key {:?}", history.keys[put.key as usize]))
    } else if put.kind == Kind::Delete {
        Some("is a tombstone, which reads never return".to_string())
    } else if put.outcome == Outcome::Fail {
        Some(format!("belongs to op {}, which failed", put.id))
    } else if put.outcome == Outcome::Open && !at_end {
        return false;
    } else {
        None
    };
    if let Some(problem) = problem {
        findings.add(Invariant::Phantom, key, vec![get.id, put.id], || {
            format!("get {} returned {name:?}, which {problem}", get.id)
        });
    }
    true
}
