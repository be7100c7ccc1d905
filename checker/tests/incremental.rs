//! The incremental checker against the batch checker on generated
//! histories of a store with bugs: branching causality (per-process stale
//! contexts, blind writes, deletes), concurrent operations, `fail` and
//! `info` outcomes, keys retired in generations with final reads through
//! three nodes, and injected faults of every kind the checker judges
//! (stale reads, lost writes, phantoms, a value beside its descendant,
//! diverging final reads).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::fmt::Write;

use dynamo_checker::{Incremental, Invariant, Mode, Options};

/// A small seeded generator: `next(bound)` in `[0, bound)`.
fn lcg(mut state: u64) -> impl FnMut(u64) -> u64 {
    move |bound: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % bound.max(1)
    }
}

enum Pending {
    Get {
        op: u64,
        key: String,
    },
    Write {
        op: u64,
        key: String,
        value: String,
        context: Vec<String>,
        delete: bool,
    },
}

struct Generator {
    next: Box<dyn FnMut(u64) -> u64>,
    text: String,
    time: u64,
    op: u64,
    value: u64,
    /// Key → its siblings, and the siblings before the last write (what a
    /// stale replica returns).
    store: HashMap<String, (Vec<String>, Vec<String>)>,
    /// (process, key) → what the process last read.
    read: HashMap<(u64, String), Vec<String>>,
    /// Values some write superseded (an antichain bug returns one).
    superseded: HashMap<String, Vec<String>>,
    /// The process id each client slot uses now: a process whose
    /// operation ended in `info` is never used again (HISTORY.md).
    ids: Vec<u64>,
    fresh: u64,
}

impl Generator {
    fn event(&mut self, body: String) {
        self.time += 1000;
        let body = body.strip_suffix('}').unwrap();
        writeln!(self.text, "{body},\"time_ns\":{}}}", self.time).unwrap();
    }

    fn invoke(&mut self, slot: u64, key: &str) -> Pending {
        let process = self.ids[slot as usize];
        self.op += 1;
        let op = self.op;
        if (self.next)(2) == 0 {
            self.event(format!(
                r#"{{"type":"invoke","process":{process},"op":{op},"f":"get","key":"{key}"}}"#
            ));
            return Pending::Get { op, key: key.into() };
        }
        self.value += 1;
        let value = format!("v{}", self.value);
        let delete = (self.next)(20) == 0;
        let context = if (self.next)(20) == 0 {
            Vec::new()
        } else {
            self.read.get(&(process, key.to_string())).cloned().unwrap_or_default()
        };
        let f = if delete { "delete" } else { "put" };
        self.event(format!(
            r#"{{"type":"invoke","process":{process},"op":{op},"f":"{f}","key":"{key}","value":"{value}","context":{}}}"#,
            serde_json::to_string(&context).unwrap()
        ));
        Pending::Write {
            op,
            key: key.into(),
            value,
            context,
            delete,
        }
    }

    fn complete(&mut self, slot: u64, pending: Pending) {
        let process = self.ids[slot as usize];
        match pending {
            Pending::Get { op, key } => {
                let (now, before) = self.store.get(&key).cloned().unwrap_or_default();
                let mut values = if (self.next)(25) == 0 { before } else { now };
                match (self.next)(400) {
                    0 => values.push(format!("ghost{op}")),
                    1 => {
                        if let Some(old) = values.first().and_then(|value| self.superseded.get(value)) {
                            values.push(old[0].clone());
                        }
                    }
                    _ => {}
                }
                self.read.insert((process, key.clone()), values.clone());
                self.event(format!(
                    r#"{{"type":"ok","process":{process},"op":{op},"f":"get","values":{}}}"#,
                    serde_json::to_string(&values).unwrap()
                ));
            }
            Pending::Write {
                op,
                key,
                value,
                context,
                delete,
            } => {
                let f = if delete { "delete" } else { "put" };
                let outcome = match (self.next)(30) {
                    0 => "fail",
                    1 => "info",
                    _ => "ok",
                };
                // A lost write: acknowledged, never applied.
                let applied = match outcome {
                    "fail" => false,
                    "info" => (self.next)(2) == 0,
                    _ => (self.next)(300) != 0,
                };
                if applied {
                    let entry = self.store.entry(key.clone()).or_default();
                    let mut siblings: Vec<String> = entry
                        .0
                        .iter()
                        .filter(|sibling| !context.contains(sibling))
                        .cloned()
                        .collect();
                    if !delete {
                        siblings.push(value.clone());
                        if !context.is_empty() {
                            self.superseded.insert(value.clone(), context.clone());
                        }
                    }
                    entry.1 = std::mem::replace(&mut entry.0, siblings);
                }
                self.event(format!(
                    r#"{{"type":"{outcome}","process":{process},"op":{op},"f":"{f}"}}"#
                ));
                if outcome == "info" {
                    self.fresh += 1;
                    self.ids[slot as usize] = self.fresh;
                }
            }
        }
    }

    /// Final reads of `keys` through three nodes (the third sometimes
    /// behind: divergence).
    fn final_reads(&mut self, keys: &[String]) {
        for key in keys {
            for node in 0..3u64 {
                self.op += 1;
                let op = self.op;
                let process = 1000 + node;
                self.event(format!(
                    r#"{{"type":"invoke","process":{process},"op":{op},"f":"get","key":"{key}","node":"n{node}","final":true}}"#
                ));
                let (now, before) = self.store.get(key).cloned().unwrap_or_default();
                let values = if node == 2 && (self.next)(40) == 0 { before } else { now };
                self.event(format!(
                    r#"{{"type":"ok","process":{process},"op":{op},"f":"get","values":{}}}"#,
                    serde_json::to_string(&values).unwrap()
                ));
            }
        }
    }
}

/// `generations` generations of `keys` keys, `ops` operations each, by 12
/// processes whose operations overlap. Every generation but the last is
/// retired; the last ends with final reads only.
fn generate(seed: u64, generations: u64, keys: u64, ops: u64) -> String {
    let mut generator = Generator {
        next: Box::new(lcg(seed)),
        text: String::new(),
        time: 0,
        op: 0,
        value: 0,
        store: HashMap::new(),
        read: HashMap::new(),
        superseded: HashMap::new(),
        ids: (0..12).collect(),
        fresh: 100,
    };
    let processes = 12;
    for generation in 0..generations {
        let names: Vec<String> = (0..keys).map(|key| format!("g{generation}:k{key}")).collect();
        let mut running: Vec<Option<Pending>> = (0..processes).map(|_| None).collect();
        for _ in 0..ops {
            let process = (generator.next)(processes);
            match running[process as usize].take() {
                Some(pending) => generator.complete(process, pending),
                None => {
                    // Key 0 is hot.
                    let key = if (generator.next)(3) == 0 {
                        0
                    } else {
                        (generator.next)(keys)
                    };
                    running[process as usize] = Some(generator.invoke(process, &names[key as usize]));
                }
            }
        }
        for (process, pending) in running.into_iter().enumerate() {
            if let Some(pending) = pending {
                generator.complete(process as u64, pending);
            }
        }
        generator.final_reads(&names);
        if generation + 1 < generations {
            let body = format!(
                r#"{{"type":"retire","keys":{}}}"#,
                serde_json::to_string(&names).unwrap()
            );
            generator.event(body);
        }
    }
    generator.text
}

#[test]
fn whole_and_incremental_agree_on_generated_histories_with_retirements() {
    let mut found = HashMap::new();
    for seed in 1..=6 {
        let text = generate(seed, 4, 6, 1500);
        for mode in [Mode::Eventual, Mode::Strict] {
            let verdict = common::both(
                &text,
                &Options {
                    mode,
                    findings_per_invariant: usize::MAX,
                },
            );
            assert!(verdict.counts.retired_keys > 0);
            for (invariant, count) in verdict.violations {
                *found.entry(invariant).or_insert(0) += count;
            }
        }
    }
    // The generator's bugs reach every invariant but the history's own
    // (the fixtures break those rules), so the agreement above covers each
    // kind of finding.
    for invariant in Invariant::ALL {
        let expected = invariant != Invariant::History;
        assert_eq!(found[&invariant] > 0, expected, "{invariant}: {found:?}");
    }
}

#[test]
fn findings_come_as_they_happen_and_retired_keys_are_freed() {
    let text = generate(7, 70, 4, 3000);
    let options = Options {
        mode: Mode::Strict,
        findings_per_invariant: usize::MAX,
    };
    let mut checker = Incremental::new("generated.jsonl", &options);
    let mut held_most = 0;
    let mut first_retire = None;
    let mut early = 0;
    for (index, line) in text.lines().enumerate() {
        checker.line(line).unwrap();
        held_most = held_most.max(checker.held_operations());
        if line.contains("\"retire\"") && first_retire.is_none() {
            first_retire = Some(index);
            // Lost writes and divergence of the first generation are
            // decided at its retirement, not at the end.
            early = checker.findings(0).len();
        }
    }
    let total_ops = text.lines().filter(|line| line.contains("\"invoke\"")).count();
    assert!(first_retire.is_some());
    assert!(early > 0, "nothing was found before the first retirement");
    // Seventy generations of about 1,500 operations: the store holds the
    // live generation plus what waits for compaction (2^16 operations).
    assert!(
        held_most < (1 << 16) + 2 * 1_600,
        "held {held_most} of {total_ops} operations"
    );
    assert!(total_ops > 100_000);
    let verdict = checker.finish();
    let batch = dynamo_checker::check(&dynamo_checker::read("g.jsonl", text.as_bytes()).unwrap(), &options);
    common::assert_same(&batch, &verdict);
}

#[test]
fn a_phantom_is_reported_on_the_line_that_completes_the_get() {
    let lines = [
        r#"{"type":"invoke","process":0,"op":1,"f":"get","key":"k","time_ns":1}"#,
        r#"{"type":"ok","process":0,"op":1,"f":"get","values":["nobody"],"time_ns":2}"#,
        r#"{"type":"invoke","process":1,"op":2,"f":"put","key":"k","value":"a","context":[],"time_ns":3}"#,
        r#"{"type":"invoke","process":0,"op":3,"f":"get","key":"k","time_ns":4}"#,
        r#"{"type":"ok","process":0,"op":3,"f":"get","values":["a"],"time_ns":5}"#,
        r#"{"type":"fail","process":1,"op":2,"f":"put","time_ns":6}"#,
    ];
    let mut checker = Incremental::new("h.jsonl", &Options::default());
    for line in &lines[..2] {
        checker.line(line).unwrap();
    }
    // No put was invoked before the get completed: decided at once.
    assert_eq!(checker.findings(0).len(), 1);
    assert_eq!(checker.findings(0)[0].ops, vec![1]);
    for line in &lines[2..5] {
        checker.line(line).unwrap();
    }
    // "a" is written by a put still running: not yet known.
    assert_eq!(checker.findings(1).len(), 0);
    checker.line(lines[5]).unwrap();
    let found = checker.findings(1);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].invariant, Invariant::Phantom);
    assert_eq!(found[0].ops, vec![3, 2]);
    let verdict = checker.finish();
    assert_eq!(verdict.violations[&Invariant::Phantom], 2);
}

/// The batch checker judges keys on two threads; the findings it keeps
/// when it may keep only a few per invariant are still the first in key
/// order, as one thread going key by key would keep.
#[test]
fn kept_findings_are_the_first_in_key_order_whatever_thread_judged_them() {
    let text = generate(3, 4, 6, 1500);
    let history = dynamo_checker::read("g.jsonl", text.as_bytes()).unwrap();
    let all = dynamo_checker::check(
        &history,
        &Options {
            mode: Mode::Strict,
            findings_per_invariant: usize::MAX,
        },
    );
    let few = dynamo_checker::check(
        &history,
        &Options {
            mode: Mode::Strict,
            findings_per_invariant: 2,
        },
    );
    let mut taken: HashMap<Invariant, usize> = HashMap::new();
    let expected: Vec<_> = all
        .findings
        .iter()
        .filter(|finding| {
            let count = taken.entry(finding.invariant).or_insert(0);
            *count += 1;
            *count <= 2
        })
        .cloned()
        .collect();
    assert_eq!(few.findings, expected);
    assert_eq!(few.violations, all.violations);
    assert!(few.findings_truncated);
    // Key order: the keys of the findings (history problems and phantoms
    // aside, which come first) never go back.
    let order: Vec<u32> = all
        .findings
        .iter()
        .filter(|finding| !matches!(finding.invariant, Invariant::History | Invariant::Phantom))
        .map(|finding| history.keys.iter().position(|key| *key == finding.key).unwrap() as u32)
        .collect();
    assert!(order.windows(2).all(|pair| pair[0] <= pair[1]), "{order:?}");
}
