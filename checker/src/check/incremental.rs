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
//! The rest waits for the key's end — its `retire` event, or the end of
//! the history ([`Incremental::finish`]): lost-write and divergence (the
//! final reads), stale-read part 2 (a get that missed an acknowledged put
//! is excused when a delete that did not fail supersedes the put, and
//! HISTORY.md lets that delete come later), k-staleness and the session
//! measures. At its end a key is judged by the batch checker's own
//! `KeyJudge` over the key's operations, and its state is freed.
//!
//! # Memory
//!
//! Bounded by the live keys, not the run's length: a retired key's
//! operations, values and DAG are dropped (the operation store is
//! compacted when the retired part outweighs the live part, so the cost is
//! amortised O(1) per operation). What stays per retired key: its name (an
//! operation on a retired key must still be reported), its staleness
//! samples (one per get, 24 bytes) and its findings. Op ids and value ids
//! of retired keys are forgotten, so reusing one is not reported.
//!
//! # Same answer as the batch checker
//!
//! Fed a whole history, [`Incremental::finish`] gives the verdict
//! [`crate::check`] gives: the same counts, measures and findings (in
//! another order: the batch checker goes key by key, this one in time).
//! The tests hold both to that on every fixture and on generated
//! branching histories with retirements.

use std::collections::HashMap;

use super::key::{judge_returned, returned, At, KeyJudge, Parts, Samples, SessionTally};
use super::{count, phantom, verdict, Counts, Finding, Findings, Options, Verdict};
use crate::dag::Dag;
use crate::history::{Kind, Outcome, ReadError, Reader, Step};

/// Compact the operation store once at least this many operations of
/// retired keys are held (and they outnumber the live ones).
const COMPACT_AT: usize = 1 << 16;

/// A history checked as its lines arrive. See the module doc.
pub struct Incremental {
    reader: Reader,
    options: Options,
    findings: Findings,
    live: HashMap<u32, Live>,
    /// Counts of the operations of keys already judged.
    closed: Counts,
    samples: Samples,
    session: SessionTally,
    /// Operations of judged keys still in the reader's store.
    dead: usize,
    lines: u64,
    /// The history has ended: open operations stay open.
    finishing: bool,
}

/// What a live key needs until its end.
struct Live {
    /// Its operations, in invoke order (indices in the reader's store).
    operations: Vec<u32>,
    /// Version number → operation index.
    versions: Vec<u32>,
    /// Value id → version number (first writer).
    numbers: HashMap<u32, u32>,
    dag: Dag,
    /// Per version: the position (event sequence) of the first
    /// acknowledgement of one of its strict descendants, `u64::MAX` while
    /// none. Acknowledgements come in sequence order, so each version is
    /// marked once: O(versions + edges) for the key's whole life.
    superseded_at: Vec<u64>,
    /// Values returned by gets whose phantom verdict waits for the
    /// writer: (get index, value id).
    waiting: Vec<(u32, u32)>,
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
            numbers: HashMap::new(),
            dag: Dag::growing(),
            superseded_at: Vec::new(),
            waiting: Vec::new(),
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
            live: HashMap::new(),
            closed: Counts::default(),
            samples: Samples::default(),
            session: SessionTally::default(),
            dead: 0,
            lines: 0,
            finishing: false,
        }
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
                self.compact();
            }
        }
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

    /// The verdict so far: everything found up to now, and the counts and
    /// measures of the keys already judged to their end (live keys' lost
    /// writes, divergence and missed puts are not known yet).
    pub fn verdict(&self) -> Verdict {
        let mut counts = Counts {
            final_keys: self.closed.final_keys,
            ..count(&self.reader.history)
        };
        add_operations(&mut counts, &self.closed);
        for live in self.live.values() {
            for &index in &live.operations {
                counts.operation(&self.reader.history.operations[index as usize]);
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
    }

    fn completed(&mut self, index: u32) {
        let key = self.reader.history.operations[index as usize].key;
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
            }
            // Reads waiting on this writer (or any: cheap, and rare).
            let findings = &mut self.findings;
            live.waiting
                .retain(|&(get, value)| !phantom(history, &history.operations[get as usize], value, false, findings));
            return;
        }
        if operation.outcome != Outcome::Ok {
            return;
        }
        for &value in history.ids(operation.values) {
            if !phantom(history, operation, value, false, &mut self.findings) {
                live.waiting.push((index, value));
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
        let Some(live) = self.live.remove(&key) else {
            return;
        };
        let history = &self.reader.history;
        for &(get, value) in &live.waiting {
            phantom(
                history,
                &history.operations[get as usize],
                value,
                true,
                &mut self.findings,
            );
        }
        let mut judge = KeyJudge::new(history, key, &live.operations);
        judge.replay(
            Parts::Deferred,
            &mut self.findings,
            &mut self.samples,
            &mut self.session,
        );
        if judge.final_reads(&mut self.findings) {
            self.closed.final_keys += 1;
        }
        for &index in &live.operations {
            self.closed.operation(&history.operations[index as usize]);
        }
        self.dead += live.operations.len();
    }

    /// Drops judged keys' operations from the store once they outweigh
    /// the live ones, renumbering what the live keys hold.
    fn compact(&mut self) {
        let held = self.reader.history.operations.len();
        if self.dead < COMPACT_AT || self.dead * 2 < held {
            return;
        }
        let live = &self.live;
        let remap = self.reader.compact(&|key| live.contains_key(&key));
        let operation = |index: &mut u32| *index = remap.operations[*index as usize];
        for live in self.live.values_mut() {
            live.operations.iter_mut().for_each(operation);
            live.versions.iter_mut().for_each(operation);
            for (get, value) in &mut live.waiting {
                *get = remap.operations[*get as usize];
                *value = remap.values[*value as usize];
            }
            live.numbers = std::mem::take(&mut live.numbers)
                .into_iter()
                .map(|(value, number)| (remap.values[value as usize], number))
                .collect();
        }
        self.dead = 0;
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
    to.final_reads += from.final_reads;
}
