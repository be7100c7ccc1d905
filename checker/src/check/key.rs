//! Judging one key: its versions' causality ([`Dag`]), the frontier of
//! acknowledged writes replayed in observation order, each get against it,
//! and the final reads (see the parent module's doc for the steps).

use std::collections::HashMap;

use super::{Distribution, Findings, Invariant, RangeStaleness, Session, Staleness};
use crate::dag::{Dag, Label};
use crate::history::{History, Kind, Operation, Outcome};

#[derive(Default)]
pub(super) struct Samples {
    /// (key, k, t-visibility ns when stale).
    pub(super) gets: Vec<(u32, u64, Option<u64>)>,
}

impl Samples {
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

/// Everything about one key.
pub(super) struct KeyJudge<'a> {
    pub(super) history: &'a History,
    pub(super) key: &'a str,
    /// The key's operations, in invoke order.
    pub(super) operations: &'a [u32],
    /// Version number → index of the put or delete in `history.operations`.
    pub(super) versions: Vec<u32>,
    /// Value id → version number (a value id written twice keeps its
    /// first writer; the reader reported the second).
    pub(super) numbers: HashMap<u32, u32>,
    pub(super) dag: Dag,
    /// Superseded by a delete that did not fail: need not be seen.
    pub(super) excused: Vec<bool>,
}

impl<'a> KeyJudge<'a> {
    pub(super) fn new(history: &'a History, key: u32, operations: &'a [u32]) -> KeyJudge<'a> {
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

    pub(super) fn operation(&self, number: u32) -> &'a Operation {
        &self.history.operations[self.versions[number as usize] as usize]
    }

    fn at(&self) -> At<'_> {
        At {
            history: self.history,
            key: self.key,
            versions: &self.versions,
            dag: &self.dag,
        }
    }

    /// The version numbers of the values a get returned.
    pub(super) fn returned(&self, get: &Operation) -> Vec<u32> {
        returned(self.history, &self.numbers, &self.versions, get)
    }

    /// Replays the key's events and judges every get: all of it
    /// ([`Parts::All`]), or what the incremental checker leaves to the
    /// key's end ([`Parts::Deferred`]).
    pub(super) fn replay(
        &mut self,
        parts: Parts,
        findings: &mut Findings,
        samples: &mut Samples,
        session: &mut SessionTally,
    ) {
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
        // The union of the frontier's strict ancestors: it only grows (a
        // version leaves the frontier for a descendant), so it is kept
        // rather than rebuilt from a frontier that every tombstone stays in.
        let mut frontier_below = Label::default();
        let mut acknowledged = vec![false; self.dag.len()];
        // Per process: the maximal versions it has read, and its own
        // maximal acknowledged puts.
        let mut reads: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut own: HashMap<u64, Vec<u32>> = HashMap::new();
        for (_, event) in events {
            match event {
                Event::Acknowledged(number) => {
                    // The frontier keeps the maximal acknowledged puts (a
                    // tombstone is nobody's ancestor and would stay in it
                    // forever); what every acknowledged write supersedes is
                    // in `frontier_below` and, for versions with few
                    // descendants, in `acknowledged`.
                    acknowledged[number as usize] = true;
                    frontier_below = self.dag.join(&frontier_below, number);
                    let operation = self.operation(number);
                    if operation.kind == Kind::Put {
                        add_maximal(&self.dag, &mut frontier, &[number]);
                        add_maximal(&self.dag, own.entry(operation.process).or_default(), &[number]);
                    }
                }
                Event::Get(index) => {
                    let get = &history.operations[index as usize];
                    let returned = self.returned(get);
                    if parts == Parts::All {
                        let superseded = self
                            .dag
                            .covered_below(&frontier_below, &returned, |number| acknowledged[number as usize]);
                        judge_returned(&self.at(), get, &returned, &superseded, findings);
                    }
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
                    add_maximal(&self.dag, seen, &returned);
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

    pub(super) fn judge_get(
        &mut self,
        get: &Operation,
        returned: &[u32],
        frontier: &[u32],
        findings: &mut Findings,
        samples: &mut Samples,
        key_id: u32,
    ) {
        let history = self.history;
        // Stale-read part 2: every acknowledged put completed before the get
        // began is returned or has a returned descendant (or a delete
        // supersedes it: known only once the key is over).
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
    pub(super) fn final_reads(&mut self, findings: &mut Findings) -> bool {
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

/// Which parts of a key's judgement [`KeyJudge::replay`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Parts {
    /// Everything (the batch checker).
    All,
    /// Leaves out what the incremental checker decided as each get
    /// completed (sibling-antichain, stale-read part 1).
    Deferred,
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

/// The version numbers of the puts whose values a get returned (phantoms,
/// judged elsewhere, left out).
pub(super) fn returned(history: &History, numbers: &HashMap<u32, u32>, versions: &[u32], get: &Operation) -> Vec<u32> {
    history
        .ids(get.values)
        .iter()
        .filter_map(|value| numbers.get(value).copied())
        .filter(|&number| history.operations[versions[number as usize] as usize].kind == Kind::Put)
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
                    history.value_names[older.value as usize],
                    history.value_names[newer.value as usize],
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
                    get.id, history.value_names[old.value as usize]
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
