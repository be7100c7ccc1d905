//! Judging one key: its versions' causality ([`Dag`]), the frontier of
//! acknowledged writes replayed in observation order, each get against it,
//! and the final reads (see the parent module's doc for the steps).

use std::collections::HashMap;

use crate::ids::IdMap;

use super::{Distribution, Findings, Invariant, RangeStaleness, Session, Staleness};
use crate::dag::{Dag, Label};
use crate::history::{History, Kind, Operation, Outcome};

#[derive(Default)]
pub(super) struct Samples {
    /// (key, k, t-visibility ns when stale).
    pub(super) gets: Vec<(u32, u64, Option<u64>)>,
    /// By the second of the history its get was invoked in: (gets, stale
    /// gets).
    pub(super) by_second: Vec<(u64, u64)>,
}

impl Samples {
    /// One get's sample: `k` 0 when it saw every acknowledged write.
    pub(super) fn add(&mut self, get: GetFacts, k: u64, visibility_ns: Option<u64>) {
        self.gets.push((get.key, k, visibility_ns));
        let second = (get.invoke_ns / 1_000_000_000) as usize;
        if self.by_second.len() <= second {
            self.by_second.resize(second + 1, (0, 0));
        }
        self.by_second[second].0 += 1;
        self.by_second[second].1 += u64::from(k > 0);
    }

    /// Takes in another judge's samples.
    pub(super) fn join(&mut self, other: Samples) {
        self.gets.extend(other.gets);
        if self.by_second.len() < other.by_second.len() {
            self.by_second.resize(other.by_second.len(), (0, 0));
        }
        for (mine, theirs) in self.by_second.iter_mut().zip(other.by_second) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
    }

    /// Gets, stale gets, k and t-visibility of some samples.
    pub(super) fn measure<'a>(
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

    pub(super) fn summarise(&self, history: &History) -> Staleness {
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
            k_histogram: Vec::new(),
            t_visibility_histogram_ms: Vec::new(),
            by_second: self
                .by_second
                .iter()
                .enumerate()
                .filter(|(_, tally)| tally.0 > 0)
                .map(|(second, &(gets, stale_gets))| (second as u64, gets, stale_gets))
                .collect(),
        };
        let mut by_k: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
        let mut by_t: std::collections::BTreeMap<u32, u64> = std::collections::BTreeMap::new();
        for &(_, k, t_ns) in &self.gets {
            *by_k.entry(k).or_default() += 1;
            if let Some(ns) = t_ns.filter(|_| k > 0) {
                *by_t
                    .entry(super::verdict::t_visibility_bucket(ns as f64 / 1e6))
                    .or_default() += 1;
            }
        }
        staleness.k_histogram = by_k.into_iter().collect();
        staleness.t_visibility_histogram_ms = by_t
            .into_iter()
            .map(|(bucket, gets)| (super::verdict::t_visibility_bound_ms(bucket), gets))
            .collect();
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
pub(super) struct SessionTally {
    /// Process → (monotonic misses, read-your-writes misses).
    pub(super) misses: HashMap<u64, (u64, u64)>,
}

impl SessionTally {
    pub(super) fn summarise(&self) -> Session {
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

/// Everything about one key, judged whole (the batch checker).
pub(super) struct KeyJudge<'a> {
    pub(super) history: &'a History,
    pub(super) key: &'a str,
    /// The key's operations, in invoke order.
    pub(super) operations: &'a [u32],
    /// Version number → index of the put or delete in `history.operations`.
    pub(super) versions: Vec<u32>,
    /// Value id → version number (a value id written twice keeps its
    /// first writer; the reader reported the second).
    pub(super) numbers: IdMap<u32, u32>,
    pub(super) dag: Dag,
}

impl<'a> KeyJudge<'a> {
    pub(super) fn new(history: &'a History, key: u32, operations: &'a [u32]) -> KeyJudge<'a> {
        let versions: Vec<u32> = operations
            .iter()
            .copied()
            .filter(|&index| history.operations[index as usize].kind != Kind::Get)
            .collect();
        let mut numbers = IdMap::with_capacity_and_hasher(versions.len(), Default::default());
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
        KeyJudge {
            history,
            key: &history.keys[key as usize],
            operations,
            versions,
            numbers,
            dag,
        }
    }

    fn at(&self) -> At<'_> {
        At {
            history: self.history,
            key: self.key,
            versions: &self.versions,
            dag: &self.dag,
        }
    }

    /// Replays the key's events in observation order and judges every get.
    pub(super) fn replay(&mut self, findings: &mut Findings, samples: &mut Samples, session: &mut SessionTally) {
        let history = self.history;
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

        let excused = excused(history, &self.versions, &self.dag);
        let mut replay = Replay::new(self.versions.len());
        // The union of the strict ancestors of every acknowledged write:
        // it only grows, so it is kept rather than rebuilt.
        let mut below = Label::default();
        let mut acknowledged = vec![false; self.dag.len()];
        for (_, event) in events {
            match event {
                Event::Acknowledged(number) => {
                    acknowledged[number as usize] = true;
                    below = self.dag.join(&below, number);
                    replay.acknowledged(&self.dag, number, self.at().operation(number));
                }
                Event::Get(index) => {
                    let get = &history.operations[index as usize];
                    let returned = returned(history, &self.numbers, &self.versions, get);
                    let superseded = self
                        .dag
                        .covered_below(&below, &returned, |number| acknowledged[number as usize]);
                    judge_returned(&self.at(), get, &returned, &superseded, findings);
                    let frontier = replay.frontier.clone();
                    let facts = GetFacts::of(get);
                    if let Some(waiting) = replay.get(&self.at(), facts, &returned, &frontier, samples, session) {
                        let mut at = AtMut {
                            history,
                            key: self.key,
                            versions: &self.versions,
                            dag: &mut self.dag,
                        };
                        waiting.settle(&mut at, &excused, findings, samples, session);
                    }
                }
            }
        }
    }

    /// Judges the final reads (lost writes, resurrections, divergence).
    /// True when the key has any.
    pub(super) fn final_reads(&self, findings: &mut Findings) -> bool {
        final_reads(&self.at(), &self.numbers, self.operations, findings)
    }
}

/// Per version, the invoke sequence number of the first delete that did
/// not fail and supersedes it (`u64::MAX`: none). Such a version need not
/// be seen (HISTORY.md, stale-read); staleness is measured against the
/// deletes invoked before the get completed only (see [`Waiting::settle`]).
pub(super) fn excused(history: &History, versions: &[u32], dag: &Dag) -> Vec<u64> {
    dag.least_below(|number| {
        let operation = &history.operations[versions[number as usize] as usize];
        (operation.kind == Kind::Delete && operation.outcome != Outcome::Fail).then_some(operation.invoke_seq)
    })
}

/// What judging a get needs of it once it is over (the incremental
/// checker drops the get itself).
#[derive(Clone, Copy, Debug)]
pub(super) struct GetFacts {
    pub(super) id: u64,
    pub(super) key: u32,
    pub(super) process: u64,
    pub(super) invoke_seq: u64,
    pub(super) invoke_ns: u64,
    pub(super) complete_seq: u64,
}

impl GetFacts {
    pub(super) fn of(get: &Operation) -> GetFacts {
        GetFacts {
            id: get.id,
            key: get.key,
            process: get.process,
            invoke_seq: get.invoke_seq,
            invoke_ns: get.invoke_ns,
            complete_seq: get.complete_seq,
        }
    }
}

/// A key's replay state, advanced one event at a time: the frontier of
/// acknowledged puts and, per process, what it has read and written.
#[derive(Default)]
pub(super) struct Replay {
    /// The maximal acknowledged puts, but those an acknowledged delete
    /// supersedes (a tombstone is nobody's ancestor and would stay in it
    /// forever, so deletes are left out).
    pub(super) frontier: Vec<u32>,
    /// Per process: the maximal versions it has read (but those deleted
    /// since).
    reads: IdMap<u64, Vec<u32>>,
    /// Per process: its own maximal acknowledged puts.
    own: IdMap<u64, Vec<u32>>,
    /// Per version: the position (event sequence) of the first
    /// acknowledgement of a delete that supersedes it, `u64::MAX` while
    /// none (each version is marked once, by a walk that stops at marked
    /// versions).
    deleted_at: Vec<u64>,
}

/// A get that missed acknowledged puts (before excusal: a delete that
/// supersedes a put, known only at the key's end, excuses missing it).
pub(super) struct Waiting {
    get: GetFacts,
    returned: Vec<u32>,
    /// Frontier puts (as the get began) it neither returned nor covered.
    missed: Vec<u32>,
    /// The process's own acknowledged puts it did not see.
    mine: Vec<u32>,
}

impl Replay {
    /// A replay of a key with `versions` versions so far.
    pub(super) fn new(versions: usize) -> Replay {
        Replay {
            deleted_at: vec![u64::MAX; versions],
            ..Replay::default()
        }
    }

    /// The key has one more version.
    pub(super) fn add_version(&mut self) {
        self.deleted_at.push(u64::MAX);
    }

    /// Version `number` (written by `operation`) was acknowledged.
    ///
    /// An acknowledged delete takes the puts it supersedes out of the
    /// frontier and the processes' own puts: missing them is excused
    /// anyway, and a put superseded only by tombstones would otherwise stay
    /// maximal forever, so the frontier (and every question asked of it)
    /// would grow with the key's deletes rather than its concurrency.
    pub(super) fn acknowledged(&mut self, dag: &Dag, number: u32, operation: &Operation) {
        match operation.kind {
            Kind::Put => {
                // Acknowledged after a delete of it was: excused already.
                if self.deleted_at[number as usize] != u64::MAX {
                    return;
                }
                add_maximal(dag, &mut self.frontier, &[number]);
                add_maximal(dag, self.own.entry(operation.process).or_default(), &[number]);
            }
            Kind::Delete => {
                let mut walk = dag.parents(number).to_vec();
                while let Some(version) = walk.pop() {
                    let at = &mut self.deleted_at[version as usize];
                    if *at == u64::MAX {
                        *at = operation.complete_seq;
                        walk.extend_from_slice(dag.parents(version));
                    }
                }
                let deleted_at = &self.deleted_at;
                let live = |put: &u32| deleted_at[*put as usize] == u64::MAX;
                self.frontier.retain(live);
                for own in self.own.values_mut() {
                    own.retain(live);
                }
            }
            Kind::Get => {}
        }
    }

    /// Judges a get that returned `returned` against `frontier` (the
    /// maximal puts acknowledged before it began): a fresh read is
    /// sampled now, a read that missed something waits for excusal. The
    /// monotonic-read session measure is decided now.
    pub(super) fn get(
        &mut self,
        at: &At<'_>,
        get: GetFacts,
        returned: &[u32],
        frontier: &[u32],
        samples: &mut Samples,
        session: &mut SessionTally,
    ) -> Option<Waiting> {
        let seen = at.dag.covered(returned, frontier, false);
        let missed: Vec<u32> = frontier
            .iter()
            .zip(&seen)
            .filter(|pair| !*pair.1)
            .map(|pair| *pair.0)
            .collect();
        let tally = session.misses.entry(get.process).or_insert((0, 0));
        let reads = self.reads.entry(get.process).or_default();
        // A version deleted before this get began is no longer worth
        // remembering as read: reading its ancestor now is a stale read
        // (part 1), not a session measure, and a process that read a value
        // that was then deleted would otherwise carry it forever. (Decided
        // by the get's start, so the batch and incremental checkers agree.)
        let deleted_at = &self.deleted_at;
        reads.retain(|&version| deleted_at[version as usize] >= get.invoke_seq);
        if !reads.is_empty() && !returned.is_empty() {
            let behind = at.dag.covered(reads, returned, true);
            if behind.iter().any(|&hit| hit) {
                tally.0 += 1;
            }
        }
        add_maximal(at.dag, reads, returned);
        let mut mine = Vec::new();
        if let Some(own) = self.own.get(&get.process) {
            let seen_mine = at.dag.covered(returned, own, false);
            mine.extend(own.iter().zip(&seen_mine).filter(|pair| !*pair.1).map(|pair| *pair.0));
        }
        if missed.is_empty() {
            samples.add(get, 0, None);
            if mine.is_empty() {
                return None;
            }
        }
        Some(Waiting {
            get,
            returned: returned.to_vec(),
            missed,
            mine,
        })
    }
}

/// A key's versions, mutable (walks keep scratch in the DAG).
pub(super) struct AtMut<'a> {
    pub(super) history: &'a History,
    pub(super) key: &'a str,
    pub(super) versions: &'a [u32],
    pub(super) dag: &'a mut Dag,
}

impl Waiting {
    /// Judges what the get missed once `excused` is known: stale-read part
    /// 2 and its k-staleness sample, and read-your-writes.
    ///
    /// The invariant excuses a missed put that any delete (even a later
    /// one) supersedes, as HISTORY.md says. The staleness measure excuses
    /// it only when that delete was invoked before the get completed (the
    /// delete may be what the get saw); a get that returned an old value
    /// and missed a put a delete superseded only later did miss an
    /// acknowledged write, and counts as stale with its k.
    pub(super) fn settle(
        self,
        at: &mut AtMut<'_>,
        excused: &[u64],
        findings: &mut Findings,
        samples: &mut Samples,
        session: &mut SessionTally,
    ) {
        let history = at.history;
        let versions = at.versions;
        let operation = |number: u32| &history.operations[versions[number as usize] as usize];
        let get = self.get;
        let by_any_delete = |number: u32| excused[number as usize] != u64::MAX;
        let by_a_delete_in_time = |number: u32| excused[number as usize] < get.complete_seq;
        if self.mine.iter().any(|&number| !by_any_delete(number)) {
            session.misses.entry(get.process).or_insert((0, 0)).1 += 1;
        }
        if self.missed.is_empty() {
            // Sampled when the get was judged.
            return;
        }
        for &number in self.missed.iter().filter(|&&number| !by_any_delete(number)) {
            let put = operation(number);
            findings.add(Invariant::StaleRead, at.key, vec![get.id, put.id], || {
                format!(
                    "get {} began after put {} ({:?}) was acknowledged, and returned neither it nor a descendant",
                    get.id, put.id, &history.value_names[put.value as usize]
                )
            });
        }
        let missed: Vec<u32> = self
            .missed
            .into_iter()
            .filter(|&number| !by_a_delete_in_time(number))
            .collect();
        if missed.is_empty() {
            samples.add(get, 0, None);
            return;
        }
        let mut k = 0u64;
        let mut oldest_ns = u64::MAX;
        at.dag.uncovered(
            &self.returned,
            &missed,
            by_a_delete_in_time,
            |number| {
                let version = operation(number);
                version.kind == Kind::Put && version.outcome == Outcome::Ok && version.complete_seq < get.invoke_seq
            },
            |number| {
                k += 1;
                oldest_ns = oldest_ns.min(operation(number).complete_ns);
            },
        );
        let visibility = (oldest_ns != u64::MAX).then(|| get.invoke_ns.saturating_sub(oldest_ns));
        samples.add(get, k.max(1), visibility);
    }
}

/// Judges the final reads among a key's `operations` (indices in the
/// history: lost writes, resurrections, divergence). True when there are
/// any.
pub(super) fn final_reads(at: &At<'_>, numbers: &IdMap<u32, u32>, operations: &[u32], findings: &mut Findings) -> bool {
    let history = at.history;
    let finals: Vec<&Operation> = operations
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
        let describe =
            |set: &[u32]| -> Vec<&str> { set.iter().map(|&value| &history.value_names[value as usize]).collect() };
        findings.add(
            Invariant::Divergence,
            at.key,
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
    let superseded = at
        .dag
        .superseded_by(|number| at.operation(number).outcome == Outcome::Ok);
    for (set, read) in &distinct {
        let returned: Vec<u32> = set.iter().filter_map(|value| numbers.get(value).copied()).collect();
        let mut is_returned = vec![false; at.versions.len()];
        for &number in &returned {
            is_returned[number as usize] = true;
        }
        let covered = at.dag.down_closure(|number| {
            let operation = at.operation(number);
            is_returned[number as usize] || (operation.kind == Kind::Delete && operation.outcome != Outcome::Fail)
        });
        for number in 0..at.versions.len() as u32 {
            let put = at.operation(number);
            if put.kind == Kind::Put && put.outcome == Outcome::Ok && !covered[number as usize] {
                findings.add(Invariant::LostWrite, at.key, vec![put.id, read.id], || {
                    format!(
                        "put {} ({:?}) was acknowledged, but final get {} returned neither it nor a descendant, and no delete follows it",
                        put.id, &history.value_names[put.value as usize], read.id
                    )
                });
            }
        }
        for &number in &returned {
            if superseded[number as usize] {
                let old = at.operation(number);
                findings.add(Invariant::LostWrite, at.key, vec![old.id, read.id], || {
                    format!(
                        "final get {} returned {:?} (op {}), which an acknowledged write supersedes: it came back",
                        read.id, &history.value_names[old.value as usize], old.id
                    )
                });
            }
        }
    }
    true
}

/// A key's versions, for judging a get.
pub(super) struct At<'a> {
    pub(super) history: &'a History,
    pub(super) key: &'a str,
    /// Version number → index in `history.operations`.
    pub(super) versions: &'a [u32],
    pub(super) dag: &'a Dag,
}

impl At<'_> {
    fn operation(&self, number: u32) -> &Operation {
        &self.history.operations[self.versions[number as usize] as usize]
    }
}

/// The version numbers of the puts whose values a get returned: a value
/// no put invoked before the get completed wrote is a phantom, judged
/// elsewhere, and left out.
pub(super) fn returned(history: &History, numbers: &IdMap<u32, u32>, versions: &[u32], get: &Operation) -> Vec<u32> {
    history
        .ids(get.values)
        .iter()
        .filter_map(|value| numbers.get(value).copied())
        .filter(|&number| {
            let put = &history.operations[versions[number as usize] as usize];
            put.kind == Kind::Put && put.invoke_seq < get.complete_seq
        })
        .collect()
}

/// What a get's result alone decides, as soon as it completes:
/// sibling-antichain, and stale-read part 1 (nothing returned is
/// superseded by a write acknowledged before the get began: `superseded`
/// says which returned versions are).
pub(super) fn judge_returned(
    at: &At<'_>,
    get: &Operation,
    returned: &[u32],
    superseded: &[bool],
    findings: &mut Findings,
) {
    let history = at.history;
    if let Some((ancestor, descendant)) = at.dag.ordered_pair(returned) {
        let (older, newer) = (at.operation(ancestor), at.operation(descendant));
        findings.add(
            Invariant::SiblingAntichain,
            at.key,
            vec![get.id, older.id, newer.id],
            || {
                format!(
                    "get {} returned {:?} together with its descendant {:?} (written by op {})",
                    get.id,
                    &history.value_names[older.value as usize],
                    &history.value_names[newer.value as usize],
                    newer.id
                )
            },
        );
    }
    {
        for (&number, _) in returned.iter().zip(superseded).filter(|pair| *pair.1) {
            let old = at.operation(number);
            findings.add(Invariant::StaleRead, at.key, vec![get.id, old.id], || {
                format!(
                    "get {} returned {:?}, which an acknowledged write completed before the get began supersedes",
                    get.id, &history.value_names[old.value as usize]
                )
            });
        }
    }
}

/// Adds `new` to the antichain `maximal`: drops members below a new one,
/// and new ones below a member.
fn add_maximal(dag: &Dag, maximal: &mut Vec<u32>, new: &[u32]) {
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
