//! Checking a history as it is written, for runs that last hours.
//!
//! [`Incremental`] takes the history's lines one at a time and keeps, per
//! *live* key, what judging it needs. What a completed operation alone
//! decides is found at once, with its op ids:
//!
//! - **history**: a broken rule, on the line that breaks it;
//! - **phantom**: when the get completes (no put invoked before then
//!   wrote the value, or it was a tombstone, or it failed), or, if the put
//!   that wrote the value is still running, when that put completes (a
//!   put that then fails made the read a phantom);
//! - **sibling-antichain**: when the get completes, from the key's DAG
//!   grown one version at a time ([`Dag::push`]);
//! - **stale-read** part 1 (a get returned a value that a write
//!   acknowledged before it began supersedes): when the get completes, in
//!   O(1) per value returned: each version keeps when a descendant of it
//!   was first acknowledged (marked once, by a walk that stops at marked
//!   versions: O(versions + edges) over the key's life).
//!
//! A get that saw every put acknowledged before it began is sampled then
//! too, and the monotonic-read measure is taken. A get that missed some
//! waits, as a small record, for the key's end — its `retire` event, or
//! the end of the history ([`Incremental::finish`]) — because HISTORY.md
//! excuses missing a put that a delete (possibly a later one) supersedes:
//! then stale-read part 2, its k-staleness and read-your-writes are
//! decided. Lost-write and divergence come at the key's end from the final
//! reads. The code that judges is the batch checker's (`key.rs`), driven
//! one event at a time.
//!
//! # Memory
//!
//! A get is dropped once judged (but a `final` one, kept for the key's
//! end), and a key's whole state once it is retired: the operation store
//! is compacted (in place) when what it may drop is a quarter of what it
//! holds, so the cost is amortised O(1) per operation. What is held is the live keys'
//! versions, final reads and running operations, not the run's length;
//! what stays per retired key is its name (an operation on a retired key
//! must still be reported), its staleness samples (24 bytes per get) and
//! its findings; per operation id, one bit (reuse is reported).
//!
//! # Same answer as the batch checker
//!
//! Fed a whole history, [`Incremental::finish`] gives the verdict
//! [`crate::check`] gives: the same counts, measures and findings (in
//! another order: the batch checker goes key by key, this one in time).
//! The tests hold both to that on every fixture and on generated
//! branching histories with retirements.

use std::collections::HashSet;

use crate::ids::IdMap;

use super::key::{
    excused, final_reads, judge_returned, returned, At, AtMut, GetFacts, Replay, Samples, SessionTally, Waiting,
};
use super::{count, phantom, verdict, Counts, Finding, Findings, Options, Verdict};
use crate::dag::Dag;
use crate::history::{Kind, Operation, Outcome, ReadError, Reader, Step};

/// Compact the operation store once at least this many operations may be
/// dropped (and they are at least a quarter of those held).
const COMPACT_AT: usize = 1 << 16;

/// A history checked as its lines arrive. See the module doc.
pub struct Incremental {
    reader: Reader,
    options: Options,
    findings: Findings,
    live: IdMap<u32, Live>,
    /// Counts of the operations completed, and of judged keys' final reads.
    counts: Counts,
    samples: Samples,
    session: SessionTally,
    /// Operations held that the next compaction may drop.
    droppable: usize,
    /// Compact once this many may be dropped.
    compact_at: usize,
    lines: u64,
    /// The history has ended: open operations stay open.
    finishing: bool,
}

/// What a live key needs until its end.
struct Live {
    /// Its versions, final reads and running operations, in invoke order
    /// (indices in the reader's store).
    operations: Vec<u32>,
    /// Version number → operation index.
    versions: Vec<u32>,
    /// Value id → version number (first writer).
    numbers: IdMap<u32, u32>,
    dag: Dag,
    /// Per version: the position (event sequence) of the first
    /// acknowledgement of one of its strict descendants, `u64::MAX` while
    /// none. Acknowledgements come in sequence order, so each version is
    /// marked once: O(versions + edges) for the key's whole life.
    superseded_at: Vec<u64>,
    /// The frontier, per-process reads and writes.
    replay: Replay,
    /// Running gets (by operation index) → the frontier as they began.
    running: IdMap<u32, Vec<u32>>,
    /// Gets that missed acknowledged puts, until excusal is known.
    waiting: Vec<Waiting>,
    /// Values returned by gets whose phantom verdict waits for the
    /// writer to complete: (get index, value id).
    phantoms: Vec<(u32, u32)>,
    /// Operations invoked and not completed.
    open: usize,
    /// Retired while operations were still open (the reader reported it):
    /// judged when the last completes, as the batch checker sees them.
    retiring: bool,
}

impl Live {
    fn new() -> Live {
        Live {
            operations: Vec::new(),
            versions: Vec::new(),
            numbers: IdMap::default(),
            dag: Dag::growing(),
            superseded_at: Vec::new(),
            replay: Replay::default(),
            running: IdMap::default(),
            waiting: Vec::new(),
            phantoms: Vec::new(),
            open: 0,
            retiring: false,
        }
    }
}

impl Incremental {
    /// A checker for the history named `path` (in messages).
    pub fn new(path: &str, options: &Options) -> Incremental {
        Incremental {
            reader: Reader::new(path),
            options: options.clone(),
            findings: Findings::new(options),
            live: IdMap::default(),
            counts: Counts::default(),
            samples: Samples::default(),
            session: SessionTally::default(),
            droppable: 0,
            compact_at: COMPACT_AT,
            lines: 0,
            finishing: false,
        }
    }

    /// Compacts the operation store once `operations` held may be dropped
    /// (and they are at least a quarter of those held); the default is 65,536.
    /// Lower trades time for memory (the tests compact after every few
    /// operations, to hold compaction to the same answers).
    #[must_use]
    pub fn compacting_at(mut self, operations: usize) -> Incremental {
        self.compact_at = operations.max(1);
        self
    }

    /// Takes the next line of the history (with or without its newline).
    ///
    /// # Errors
    /// The line is not a well-formed event ([`ReadError::Malformed`],
    /// naming the line): the checker stays usable, the line is skipped.
    pub fn line(&mut self, text: &str) -> Result<(), ReadError> {
        self.lines += 1;
        let step = self.reader.line(self.lines, text);
        // Problems are findings the moment they are read.
        for problem in std::mem::take(&mut self.reader.history.problems) {
            self.findings.problem(&problem);
        }
        match step? {
            Step::Nothing => {}
            Step::Invoked(index) => self.invoked(index),
            Step::Completed(index) => self.completed(index),
            Step::Retired(keys) => {
                for key in keys {
                    self.close(key);
                }
            }
        }
        self.compact();
        Ok(())
    }

    /// Operations held in memory (those of live keys, and of judged keys
    /// until the next compaction).
    pub fn held_operations(&self) -> usize {
        self.reader.history.operations.len()
    }

    /// Events read so far (operations' invokes and completions, faults,
    /// retirements).
    pub fn events(&self) -> u64 {
        self.reader.history.events
    }

    /// Violations found so far, kept or not.
    pub fn violations(&self) -> u64 {
        self.findings.counts.values().sum()
    }

    /// Lines taken so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Keys with operations not yet judged to the end.
    pub fn live_keys(&self) -> usize {
        self.live.len()
    }

    /// The findings kept so far, in the order they were found; those from
    /// `from` on are the ones found since a caller last looked.
    pub fn findings(&self, from: usize) -> &[Finding] {
        &self.findings.kept[from.min(self.findings.kept.len())..]
    }

    /// The verdict so far: everything found up to now, the operations
    /// completed (those running count as `info`, as at the end of a
    /// history), and the measures of the gets judged (a get that missed a
    /// put counts once its key is over).
    pub fn verdict(&self) -> Verdict {
        let mut counts = Counts {
            final_reads: self.counts.final_reads,
            final_keys: self.counts.final_keys,
            ..count(&self.reader.history)
        };
        add_operations(&mut counts, &self.counts);
        for live in self.live.values() {
            for &index in &live.operations {
                let operation = &self.reader.history.operations[index as usize];
                if operation.outcome == Outcome::Open {
                    counts.operation(operation);
                }
            }
        }
        verdict(
            &self.reader.history,
            &self.options,
            &self.findings,
            &self.samples,
            &self.session,
            counts,
        )
    }

    /// Ends the history: judges every live key as the batch checker would
    /// at the end of the file, and returns the verdict.
    pub fn finish(mut self) -> Verdict {
        self.finishing = true;
        let mut keys: Vec<u32> = self.live.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            self.close(key);
        }
        self.verdict()
    }

    fn invoked(&mut self, index: u32) {
        let history = &self.reader.history;
        let operation = &history.operations[index as usize];
        let live = self.live.entry(operation.key).or_insert_with(Live::new);
        live.operations.push(index);
        live.open += 1;
        if operation.kind == Kind::Get {
            live.running.insert(index, live.replay.frontier.clone());
            return;
        }
        let number = live.versions.len() as u32;
        live.versions.push(index);
        if history.writers[operation.value as usize].map(|writer| writer.operation) == Some(index) {
            live.numbers.insert(operation.value, number);
        }
        let parents: Vec<u32> = history
            .ids(operation.context)
            .iter()
            .filter_map(|value| live.numbers.get(value).copied())
            .collect();
        live.dag.push(&parents);
        live.superseded_at.push(u64::MAX);
        live.replay.add_version();
    }

    fn completed(&mut self, index: u32) {
        let operation = &self.reader.history.operations[index as usize];
        let key = operation.key;
        self.counts.operation(operation);
        self.judge_completed(index);
        if let Some(live) = self.live.get_mut(&key) {
            live.open -= 1;
            if live.retiring && live.open == 0 {
                self.close(key);
            }
        }
    }

    fn judge_completed(&mut self, index: u32) {
        let history = &self.reader.history;
        let operation = &history.operations[index as usize];
        // A key retired while this ran: the reader reported it.
        let Some(live) = self.live.get_mut(&operation.key) else {
            return;
        };
        if operation.kind != Kind::Get {
            if operation.outcome == Outcome::Ok {
                let number = live.versions.partition_point(|&version| version < index) as u32;
                let mut walk = live.dag.parents(number).to_vec();
                while let Some(version) = walk.pop() {
                    let at = &mut live.superseded_at[version as usize];
                    if *at == u64::MAX {
                        *at = operation.complete_seq;
                        walk.extend_from_slice(live.dag.parents(version));
                    }
                }
                live.replay.acknowledged(&live.dag, number, operation);
            }
            // Reads waiting on this writer (or any: cheap, and rare).
            let findings = &mut self.findings;
            let before = live.phantoms.len();
            live.phantoms
                .retain(|&(get, value)| !phantom(history, &history.operations[get as usize], value, false, findings));
            self.droppable += before - live.phantoms.len();
            return;
        }
        let Some(frontier) = live.running.remove(&index) else {
            return;
        };
        if operation.outcome != Outcome::Ok {
            self.droppable += 1;
            return;
        }
        let mut waits = false;
        for &value in history.ids(operation.values) {
            if !phantom(history, operation, value, false, &mut self.findings) {
                live.phantoms.push((index, value));
                waits = true;
            }
        }
        let versions = returned(history, &live.numbers, &live.versions, operation);
        let at = At {
            history,
            key: &history.keys[operation.key as usize],
            versions: &live.versions,
            dag: &live.dag,
        };
        let superseded: Vec<bool> = versions
            .iter()
            .map(|&number| live.superseded_at[number as usize] < operation.invoke_seq)
            .collect();
        judge_returned(&at, operation, &versions, &superseded, &mut self.findings);
        let facts = GetFacts::of(operation);
        if let Some(waiting) = live
            .replay
            .get(&at, facts, &versions, &frontier, &mut self.samples, &mut self.session)
        {
            live.waiting.push(waiting);
        }
        if !operation.is_final && !waits {
            self.droppable += 1;
        }
    }

    /// Judges what waited for the key's end, and frees its state.
    fn close(&mut self, key: u32) {
        let Some(live) = self.live.get_mut(&key) else {
            return;
        };
        if live.open > 0 && !self.finishing {
            live.retiring = true;
            return;
        }
        let Some(mut live) = self.live.remove(&key) else {
            return;
        };
        let history = &self.reader.history;
        for &(get, value) in &live.phantoms {
            phantom(
                history,
                &history.operations[get as usize],
                value,
                true,
                &mut self.findings,
            );
        }
        let excused = excused(history, &live.versions, &live.dag);
        let name = &history.keys[key as usize];
        let mut at = AtMut {
            history,
            key: name,
            versions: &live.versions,
            dag: &mut live.dag,
        };
        for waiting in live.waiting {
            waiting.settle(
                &mut at,
                &excused,
                &mut self.findings,
                &mut self.samples,
                &mut self.session,
            );
        }
        let at = At {
            history,
            key: name,
            versions: &live.versions,
            dag: &live.dag,
        };
        if final_reads(&at, &live.numbers, &live.operations, &mut self.findings) {
            self.counts.final_keys += 1;
        }
        for &index in &live.operations {
            let operation = &history.operations[index as usize];
            // Open at the history's end: counted as `info`.
            if operation.outcome == Outcome::Open {
                self.counts.operation(operation);
            }
        }
        self.droppable += live.operations.len();
    }

    /// Drops judged gets and judged keys' operations from the store once
    /// they are a quarter of it, renumbering what the live keys hold.
    fn compact(&mut self) {
        let held = self.reader.history.operations.len();
        if self.droppable < self.compact_at || self.droppable * 4 < held {
            return;
        }
        let live = &self.live;
        let phantoms: HashSet<u32> = live
            .values()
            .flat_map(|live| live.phantoms.iter().map(|&(get, _)| get))
            .collect();
        let keep = |index: u32, operation: &Operation| {
            live.contains_key(&operation.key)
                && (operation.kind != Kind::Get
                    || operation.is_final
                    || operation.outcome == Outcome::Open
                    || phantoms.contains(&index))
        };
        let remap = self.reader.compact(&keep);
        for live in self.live.values_mut() {
            live.operations = live
                .operations
                .iter()
                .map(|&index| remap.operations[index as usize])
                .filter(|&index| index != u32::MAX)
                .collect();
            for index in &mut live.versions {
                *index = remap.operations[*index as usize];
            }
            live.running = std::mem::take(&mut live.running)
                .into_iter()
                .map(|(index, frontier)| (remap.operations[index as usize], frontier))
                .collect();
            for (get, value) in &mut live.phantoms {
                *get = remap.operations[*get as usize];
                *value = remap.values[*value as usize];
            }
            live.numbers = std::mem::take(&mut live.numbers)
                .into_iter()
                .map(|(value, number)| (remap.values[value as usize], number))
                .collect();
        }
        self.droppable = 0;
    }
}

/// Adds the operation counts of `from` to `to`.
fn add_operations(to: &mut Counts, from: &Counts) {
    to.gets += from.gets;
    to.puts += from.puts;
    to.deletes += from.deletes;
    to.ok += from.ok;
    to.fail += from.fail;
    to.info += from.info;
}
