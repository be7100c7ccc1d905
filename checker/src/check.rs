//! Deciding the invariants of shared/HISTORY.md over a read [`History`].
//!
//! The work is split by key (causality never crosses keys). For each key:
//!
//! 1. the versions (puts and deletes, in invoke order) and their context
//!    edges form a [`Dag`];
//! 2. two linear passes mark what an acknowledged delete supersedes
//!    (excused from "must be seen") and what any acknowledged write
//!    supersedes (must not come back);
//! 3. the key's events are replayed in observation order, keeping the
//!    *frontier* of acknowledged writes — the maximal versions among the
//!    puts and deletes completed `ok` so far. Every write completed before
//!    a get began is below that frontier, so a get is judged against a few
//!    frontier versions, not the whole past: stale reads, k-staleness
//!    (walking back only from the frontier versions it missed), and the
//!    per-process session guarantees;
//! 4. the final reads are compared with one another (divergence) and with
//!    every acknowledged write (lost writes, resurrections).
//!
//! Phantom reads and the history's own problems need no graph.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::dag::Dag;
use crate::history::{History, Kind, Operation, Outcome};

/// Which invariants are violations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Stale reads are measured, not judged (any R, W; sloppy quorum; faults).
    Eventual,
    /// Stale reads are violations (R + W > N, no sloppy quorum, no faults).
    Strict,
}

impl std::str::FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "eventual" => Ok(Mode::Eventual),
            "strict" => Ok(Mode::Strict),
            other => Err(format!("{other:?} is not a mode: eventual or strict")),
        }
    }
}

/// The invariants of HISTORY.md. Their serde names (in `check.json`, as
/// `violations` keys and each finding's `invariant`) are exactly
/// HISTORY.md's strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// 1. Every value a get returns was written by some put.
    Phantom,
    /// 2. No get returns a value beside one that supersedes it.
    SiblingAntichain,
    /// 3. (strict) A get sees every put acknowledged before it began.
    StaleRead,
    /// 4. Every acknowledged put is covered by the final reads.
    LostWrite,
    /// 5. The final reads of a key agree across nodes.
    Divergence,
    /// 7. The history itself is well formed.
    History,
}

impl Invariant {
    /// Every invariant, in HISTORY.md's order.
    pub const ALL: [Invariant; 6] = [
        Invariant::Phantom,
        Invariant::SiblingAntichain,
        Invariant::StaleRead,
        Invariant::LostWrite,
        Invariant::Divergence,
        Invariant::History,
    ];

    /// HISTORY.md's name.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Phantom => "phantom",
            Invariant::SiblingAntichain => "sibling-antichain",
            Invariant::StaleRead => "stale-read",
            Invariant::LostWrite => "lost-write",
            Invariant::Divergence => "divergence",
            Invariant::History => "history",
        }
    }
}

impl std::fmt::Display for Invariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Invariant {
    type Err = String;

    fn from_str(text: &str) -> Result<Invariant, String> {
        Invariant::ALL
            .into_iter()
            .find(|invariant| invariant.name() == text)
            .ok_or_else(|| format!("{text:?} is not an invariant of HISTORY.md"))
    }
}

/// How the checker runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which invariants are violations.
    pub mode: Mode,
    /// Findings kept per invariant (all are counted).
    pub findings_per_invariant: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            mode: Mode::Eventual,
            findings_per_invariant: 100,
        }
    }
}

/// One violation.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// Which invariant.
    pub invariant: Invariant,
    /// The key (empty when none is involved).
    pub key: String,
    /// The op ids involved.
    pub ops: Vec<u64>,
    /// What happened.
    pub message: String,
}

/// A distribution, summarised.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Distribution {
    /// Samples.
    pub count: u64,
    /// Percentiles of the samples.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

impl Distribution {
    fn of(mut samples: Vec<f64>) -> Distribution {
        if samples.is_empty() {
            return Distribution::default();
        }
        samples.sort_unstable_by(f64::total_cmp);
        let at = |quantile: f64| samples[((samples.len() - 1) as f64 * quantile).round() as usize];
        Distribution {
            count: samples.len() as u64,
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[samples.len() - 1],
        }
    }
}

/// Staleness of one range of keys.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct RangeStaleness {
    /// First key of the range (keys sorted by name).
    pub first_key: String,
    /// Last key of the range.
    pub last_key: String,
    /// Gets judged.
    pub gets: u64,
    /// Gets that missed at least one acknowledged write.
    pub stale_gets: u64,
    /// k-staleness of every get.
    pub k: Distribution,
    /// t-visibility (ms) of the stale gets.
    pub t_visibility_ms: Distribution,
}

/// Staleness, measured (probabilistically bounded staleness style).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Staleness {
    /// Gets judged (`ok` gets).
    pub gets: u64,
    /// Gets that missed at least one acknowledged write.
    pub stale_gets: u64,
    /// Share of gets that saw every acknowledged write.
    pub fresh_fraction: f64,
    /// k-staleness: acknowledged puts on the key, completed before the get
    /// began, that its result fails to cover.
    pub k: Distribution,
    /// t-visibility: for each stale get, how long (ms) after the oldest
    /// missed put completed the get began.
    pub t_visibility_ms: Distribution,
    /// The same per key range (up to ten ranges of keys, sorted by name).
    pub ranges: Vec<RangeStaleness>,
}

/// Session guarantees, measured per process (never violations).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Session {
    /// Gets that returned a value causally before one the same process had
    /// already read.
    pub monotonic_read_misses: u64,
    /// Gets that missed the process's own acknowledged put (and every
    /// descendant).
    pub read_your_writes_misses: u64,
    /// Processes with at least one miss of either kind.
    pub processes_with_misses: u64,
    /// The processes with the most misses: (process, monotonic, ryw).
    pub worst: Vec<(u64, u64, u64)>,
}

/// Counts of what the history holds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Counts {
    /// Gets, puts, deletes invoked.
    pub gets: u64,
    /// Puts invoked.
    pub puts: u64,
    /// Deletes invoked.
    pub deletes: u64,
    /// Completions by type.
    pub ok: u64,
    /// `fail` completions.
    pub fail: u64,
    /// `info` completions, and invokes without completion.
    pub info: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Final reads (`ok`).
    pub final_reads: u64,
    /// Keys with final reads.
    pub final_keys: u64,
}

/// The checker's verdict, as `check.json` holds it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Verdict {
    /// No violation in this mode.
    pub valid: bool,
    /// The mode judged in.
    pub mode: Mode,
    /// Operations in the history.
    pub ops: u64,
    /// Violations per invariant (every invariant named, 0 where none).
    pub violations: BTreeMap<Invariant, u64>,
    /// The first findings of each invariant.
    pub findings: Vec<Finding>,
    /// Findings beyond the kept ones were dropped (all are counted).
    pub findings_truncated: bool,
    /// Staleness measured.
    pub staleness: Staleness,
    /// Session guarantees measured.
    pub session: Session,
    /// What the history holds.
    pub counts: Counts,
    /// Stale reads found in eventual mode (measured, not violations).
    pub stale_reads_measured: u64,
}

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
    for (key, operations) in by_key.iter().enumerate() {
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
        ..Counts::default()
    };
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

#[derive(Default)]
struct Samples {
    /// (key, k, t-visibility ns when stale).
    gets: Vec<(u32, u64, Option<u64>)>,
}

impl Samples {
    /// Gets, stale gets, k and t-visibility of some samples.
    fn measure<'a>(
        samples: impl Iterator<Item = &'a (u32, u64, Option<u64>)> + Clone,
    ) -> (u64, u64, Distribution, Distribution) {
        let stale = samples.clone().filter(|sample| sample.1 > 0);
        (
            samples.clone().count() as u64,
            stale.clone().count() as u64,
            Distribution::of(samples.map(|sample| sample.1 as f64).collect()),
            Distribution::of(stale.filter_map(|sample| sample.2).map(|ns| ns as f64 / 1e6).collect()),
        )
    }

    fn summarise(&self, history: &History) -> Staleness {
        let (gets, stale_gets, k, t_visibility_ms) = Self::measure(self.gets.iter());
        let mut staleness = Staleness {
            gets,
            stale_gets,
            fresh_fraction: if gets == 0 {
                1.0
            } else {
                1.0 - stale_gets as f64 / gets as f64
            },
            k,
            t_visibility_ms,
            ranges: Vec::new(),
        };
        // Key ranges: keys sorted by name, cut into up to ten equal ranges.
        let mut order: Vec<u32> = (0..history.keys.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| history.keys[a as usize].cmp(&history.keys[b as usize]));
        let ranges = order.len().clamp(1, 10);
        let mut range_of = vec![0usize; history.keys.len()];
        for (rank, &key) in order.iter().enumerate() {
            range_of[key as usize] = rank * ranges / order.len().max(1);
        }
        for range in 0..ranges {
            let first = order.iter().position(|&key| range_of[key as usize] == range);
            let last = order.iter().rposition(|&key| range_of[key as usize] == range);
            let (Some(first), Some(last)) = (first, last) else {
                continue;
            };
            let (gets, stale_gets, k, t_visibility_ms) =
                Self::measure(self.gets.iter().filter(|sample| range_of[sample.0 as usize] == range));
            staleness.ranges.push(RangeStaleness {
                first_key: history.keys[order[first] as usize].clone(),
                last_key: history.keys[order[last] as usize].clone(),
                gets,
                stale_gets,
                k,
                t_visibility_ms,
            });
        }
        staleness
    }
}

#[derive(Default)]
struct SessionTally {
    /// Process → (monotonic misses, read-your-writes misses).
    misses: HashMap<u64, (u64, u64)>,
}

impl SessionTally {
    fn summarise(&self) -> Session {
        let mut worst: Vec<(u64, u64, u64)> = self
            .misses
            .iter()
            .map(|(&process, &(monotonic, ryw))| (process, monotonic, ryw))
            .filter(|entry| entry.1 + entry.2 > 0)
            .collect();
        worst.sort_unstable_by(|a, b| (b.1 + b.2).cmp(&(a.1 + a.2)).then(a.0.cmp(&b.0)));
        let processes_with_misses = worst.len() as u64;
        worst.truncate(10);
        Session {
            monotonic_read_misses: self.misses.values().map(|entry| entry.0).sum(),
            read_your_writes_misses: self.misses.values().map(|entry| entry.1).sum(),
            processes_with_misses,
            worst,
        }
    }
}

/// Everything about one key.
struct KeyJudge<'a> {
    history: &'a History,
    key: &'a str,
    /// The key's operations, in invoke order.
    operations: &'a [u32],
    /// Version number → index of the put or delete in `history.operations`.
    versions: Vec<u32>,
    /// Value id → version number (a value id written twice keeps its
    /// first writer; the reader reported the second).
    numbers: HashMap<u32, u32>,
    dag: Dag,
    /// Superseded by a delete that did not fail: need not be seen.
    excused: Vec<bool>,
}

impl<'a> KeyJudge<'a> {
    fn new(history: &'a History, key: u32, operations: &'a [u32]) -> KeyJudge<'a> {
        let versions: Vec<u32> = operations
            .iter()
            .copied()
            .filter(|&index| history.operations[index as usize].kind != Kind::Get)
            .collect();
        let mut numbers = HashMap::with_capacity(versions.len());
        for (number, &index) in versions.iter().enumerate() {
            let value = history.operations[index as usize].value;
            if history.writers[value as usize].map(|writer| writer.operation) == Some(index) {
                numbers.insert(value, number as u32);
            }
        }
        let dag = Dag::new(versions.len(), |number, out| {
            let operation = &history.operations[versions[number] as usize];
            out.extend(
                history
                    .ids(operation.context)
                    .iter()
                    .filter_map(|value| numbers.get(value).copied()),
            );
        });
        let excused = dag.superseded_by(|number| {
            let operation = &history.operations[versions[number as usize] as usize];
            operation.kind == Kind::Delete && operation.outcome != Outcome::Fail
        });
        KeyJudge {
            history,
            key: &history.keys[key as usize],
            operations,
            versions,
            numbers,
            dag,
            excused,
        }
    }

    fn operation(&self, number: u32) -> &'a Operation {
        &self.history.operations[self.versions[number as usize] as usize]
    }

    /// The version numbers of the values a get returned (phantoms, judged
    /// elsewhere, left out).
    fn returned(&self, get: &Operation) -> Vec<u32> {
        self.history
            .ids(get.values)
            .iter()
            .filter_map(|value| self.numbers.get(value).copied())
            .filter(|&number| self.operation(number).kind == Kind::Put)
            .collect()
    }

    fn replay(&mut self, findings: &mut Findings, samples: &mut Samples, session: &mut SessionTally) {
        let history = self.history;
        let key_id = history.operations[self.operations[0] as usize].key;
        // The key's events in observation order: acknowledged writes at
        // their completion, gets at their invoke.
        enum Event {
            Acknowledged(u32),
            Get(u32),
        }
        let mut events: Vec<(u64, Event)> = Vec::new();
        for (number, &index) in self.versions.iter().enumerate() {
            let operation = &history.operations[index as usize];
            if operation.outcome == Outcome::Ok {
                events.push((operation.complete_seq, Event::Acknowledged(number as u32)));
            }
        }
        for &index in self.operations {
            let operation = &history.operations[index as usize];
            if operation.kind == Kind::Get && operation.outcome == Outcome::Ok {
                events.push((operation.invoke_seq, Event::Get(index)));
            }
        }
        events.sort_unstable_by_key(|event| event.0);

        let mut frontier: Vec<u32> = Vec::new();
        // Per process: the maximal versions it has read, and its own
        // maximal acknowledged puts.
        let mut reads: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut own: HashMap<u64, Vec<u32>> = HashMap::new();
        for (_, event) in events {
            match event {
                Event::Acknowledged(number) => {
                    add_maximal(&mut self.dag, &mut frontier, &[number]);
                    let operation = self.operation(number);
                    if operation.kind == Kind::Put {
                        add_maximal(&mut self.dag, own.entry(operation.process).or_default(), &[number]);
                    }
                }
                Event::Get(index) => {
                    let get = &history.operations[index as usize];
                    let returned = self.returned(get);
                    self.judge_get(get, &returned, &frontier, findings, samples, key_id);
                    // Sessions.
                    let tally = session.misses.entry(get.process).or_insert((0, 0));
                    let seen = reads.entry(get.process).or_default();
                    if !seen.is_empty() && !returned.is_empty() {
                        let behind = self.dag.covered(seen, &returned, true);
                        if behind.iter().any(|&hit| hit) {
                            tally.0 += 1;
                        }
                    }
                    add_maximal(&mut self.dag, seen, &returned);
                    if let Some(mine) = own.get(&get.process) {
                        let seen_mine = self.dag.covered(&returned, mine, false);
                        let missed = mine
                            .iter()
                            .zip(&seen_mine)
                            .any(|(&number, &seen)| !seen && !self.excused[number as usize]);
                        if missed {
                            tally.1 += 1;
                        }
                    }
                }
            }
        }
    }

    fn judge_get(
        &mut self,
        get: &Operation,
        returned: &[u32],
        frontier: &[u32],
        findings: &mut Findings,
        samples: &mut Samples,
        key_id: u32,
    ) {
        let history = self.history;
        if let Some((ancestor, descendant)) = self.dag.ordered_pair(returned) {
            let (older, newer) = (self.operation(ancestor), self.operation(descendant));
            findings.add(
                Invariant::SiblingAntichain,
                self.key,
                vec![get.id, older.id, newer.id],
                || {
                    format!(
                        "get {} returned {:?} together with its descendant {:?} (written by op {})",
                        get.id,
                        history.value_names[older.value as usize],
                        history.value_names[newer.value as usize],
                        newer.id
                    )
                },
            );
        }
        // Part 1: nothing returned may be superseded by a completed write.
        if !frontier.is_empty() && !returned.is_empty() {
            let superseded = self.dag.covered(frontier, returned, true);
            for (&number, _) in returned.iter().zip(&superseded).filter(|pair| *pair.1) {
                let old = self.operation(number);
                findings.add(Invariant::StaleRead, self.key, vec![get.id, old.id], || {
                    format!(
                        "get {} returned {:?}, which an acknowledged write completed before the get began supersedes",
                        get.id, history.value_names[old.value as usize]
                    )
                });
            }
        }
        // Part 2: every acknowledged put completed before the get began is
        // returned or has a returned descendant (or a delete supersedes it).
        let puts: Vec<u32> = frontier
            .iter()
            .copied()
            .filter(|&number| self.operation(number).kind == Kind::Put && !self.excused[number as usize])
            .collect();
        let seen = self.dag.covered(returned, &puts, false);
        let missed: Vec<u32> = puts
            .iter()
            .zip(&seen)
            .filter(|pair| !*pair.1)
            .map(|pair| *pair.0)
            .collect();
        if missed.is_empty() {
            samples.gets.push((key_id, 0, None));
            return;
        }
        for &number in &missed {
            let put = self.operation(number);
            findings.add(Invariant::StaleRead, self.key, vec![get.id, put.id], || {
                format!(
                    "get {} began after put {} ({:?}) was acknowledged, and returned neither it nor a descendant",
                    get.id, put.id, history.value_names[put.value as usize]
                )
            });
        }
        let mut k = 0u64;
        let mut oldest_ns = u64::MAX;
        let excused = &self.excused;
        let versions = &self.versions;
        self.dag.uncovered(
            returned,
            &missed,
            |number| excused[number as usize],
            |number| {
                let operation = &history.operations[versions[number as usize] as usize];
                operation.kind == Kind::Put
                    && operation.outcome == Outcome::Ok
                    && operation.complete_seq < get.invoke_seq
            },
            |number| {
                let operation = &history.operations[versions[number as usize] as usize];
                k += 1;
                oldest_ns = oldest_ns.min(operation.complete_ns);
            },
        );
        let visibility = (oldest_ns != u64::MAX).then(|| get.invoke_ns.saturating_sub(oldest_ns));
        samples.gets.push((key_id, k.max(1), visibility));
    }

    /// Judges the final reads (lost writes, resurrections, divergence).
    /// True when the key has any.
    fn final_reads(&mut self, findings: &mut Findings) -> bool {
        let history = self.history;
        let finals: Vec<&Operation> = self
            .operations
            .iter()
            .map(|&index| &history.operations[index as usize])
            .filter(|operation| operation.kind == Kind::Get && operation.is_final && operation.outcome == Outcome::Ok)
            .collect();
        if finals.is_empty() {
            return false;
        }
        // Distinct result sets (as sorted value ids), each with one read.
        let mut distinct: Vec<(Vec<u32>, &Operation)> = Vec::new();
        for read in &finals {
            let mut set = history.ids(read.values).to_vec();
            set.sort_unstable();
            if !distinct.iter().any(|(other, _)| *other == set) {
                distinct.push((set, read));
            }
        }
        if distinct.len() > 1 {
            let describe = |set: &[u32]| -> Vec<&str> {
                set.iter()
                    .map(|&value| history.value_names[value as usize].as_str())
                    .collect()
            };
            findings.add(
                Invariant::Divergence,
                self.key,
                distinct.iter().map(|(_, read)| read.id).collect(),
                || {
                    distinct
                        .iter()
                        .map(|(set, read)| format!("final get {} returned {:?}", read.id, describe(set)))
                        .collect::<Vec<_>>()
                        .join("; ")
                },
            );
        }
        let superseded = self
            .dag
            .superseded_by(|number| self.operation(number).outcome == Outcome::Ok);
        for (set, read) in &distinct {
            let returned: Vec<u32> = set
                .iter()
                .filter_map(|value| self.numbers.get(value).copied())
                .collect();
            let mut is_returned = vec![false; self.versions.len()];
            for &number in &returned {
                is_returned[number as usize] = true;
            }
            let covered = self.dag.down_closure(|number| {
                let operation = self.operation(number);
                is_returned[number as usize] || (operation.kind == Kind::Delete && operation.outcome != Outcome::Fail)
            });
            for number in 0..self.versions.len() as u32 {
                let put = self.operation(number);
                if put.kind == Kind::Put && put.outcome == Outcome::Ok && !covered[number as usize] {
                    findings.add(Invariant::LostWrite, self.key, vec![put.id, read.id], || {
                        format!(
                            "put {} ({:?}) was acknowledged, but final get {} returned neither it nor a descendant, and no delete follows it",
                            put.id, history.value_names[put.value as usize], read.id
                        )
                    });
                }
            }
            for &number in &returned {
                if superseded[number as usize] {
                    let old = self.operation(number);
                    findings.add(Invariant::LostWrite, self.key, vec![old.id, read.id], || {
                        format!(
                            "final get {} returned {:?} (op {}), which an acknowledged write supersedes: it came back",
                            read.id, history.value_names[old.value as usize], old.id
                        )
                    });
                }
            }
        }
        true
    }
}

/// Adds `new` to the antichain `maximal`: drops members below a new one,
/// and new ones below a member.
fn add_maximal(dag: &mut Dag, maximal: &mut Vec<u32>, new: &[u32]) {
    for &number in new {
        if maximal.contains(&number) {
            continue;
        }
        if !maximal.is_empty() && dag.covered(maximal, &[number], true)[0] {
            continue;
        }
        if !maximal.is_empty() {
            let below = dag.covered(&[number], maximal, true);
            let mut keep = below.iter().map(|&below| !below);
            maximal.retain(|_| keep.next().unwrap_or(true));
        }
        maximal.push(number);
    }
}
