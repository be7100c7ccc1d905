//! Checker benchmark: `cargo bench -p dynamo-checker --bench checker`.
//!
//! Writes a synthetic history of a correct store, then reads and checks
//! it, reporting seconds and peak memory. The store is simulated with
//! the semantics a history can only have if it is right: each key holds an
//! antichain of sibling values; a get returns it (or, with a small
//! probability, the one before: a stale replica); a put with the context
//! of its get replaces exactly the values that context names. Processes
//! interleave a get and its put with other processes' operations, so
//! siblings appear and are merged again, as with real concurrency.
//!
//! One key is hot: it takes `--hot` of all operations (default 60%), so a
//! 1-million-operation history gives it hundreds of thousands of versions.
//! Ends with a final read of every key.
//!
//! `--shape branching` writes another shape, the one that made the old
//! checker quadratic: half gets and half puts, each put carrying the
//! context of *its own process's* last read of the key (often stale, so
//! causality branches and a hot key carries tens of siblings), with blind
//! writes (5% of puts, empty context) and deletes (5%, with context). The
//! store stays correct: a write replaces exactly the siblings its context
//! names and joins the rest.
//!
//! Flags (after `--`): `--ops N` (default 1 000 000), `--keys K` (10 000),
//! `--processes P` (64), `--hot F` (0.6; 0.3 for branching), `--shape
//! chain|branching` (chain), `--keep` (keep the file and print its path),
//! `--incremental` (check line by line with [`Incremental`], as a soak
//! does, instead of reading the whole file first), `--retire-every N`
//! (branching: every N operations the keys get final reads and are
//! retired, and a fresh generation of keys takes their place, as a soak
//! does; key names carry the generation, `g3:k17`).

use std::io::Write;
use std::time::Instant;

use dynamo_checker::{check, read_file, Incremental, Options};

use dynamo_core::rng::SplitMix64 as Rng;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let mut ops = 1_000_000u64;
    let mut keys = 10_000u64;
    let mut processes = 64u64;
    let mut hot = None;
    let mut branching = false;
    let mut keep = false;
    let mut incremental = false;
    let mut retire_every = None;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut number = || arguments.next().and_then(|text| text.parse::<f64>().ok());
        match argument.as_str() {
            "--ops" => ops = number().expect("--ops N") as u64,
            "--keys" => keys = number().expect("--keys K") as u64,
            "--processes" => processes = number().expect("--processes P") as u64,
            "--hot" => hot = Some(number().expect("--hot F")),
            "--shape" => match arguments.next().as_deref() {
                Some("chain") => branching = false,
                Some("branching") => branching = true,
                other => panic!("--shape chain|branching, not {other:?}"),
            },
            "--keep" => keep = true,
            "--incremental" => incremental = true,
            "--retire-every" => retire_every = Some(number().expect("--retire-every N") as u64),
            "--bench" => {}
            other => eprintln!("ignoring argument {other:?}"),
        }
    }
    let path = std::env::temp_dir().join(format!("dynamo-checker-bench-{}.jsonl", std::process::id()));
    let started = Instant::now();
    let (lines, hot_versions) = if branching {
        generate_branching(&path, ops, keys, processes, hot.unwrap_or(0.3), retire_every)
    } else {
        generate(&path, ops, keys, processes, hot.unwrap_or(0.6))
    };
    let bytes = std::fs::metadata(&path).map(|meta| meta.len()).unwrap_or(0);
    println!(
        "history ({}): {ops} operations ({lines} lines, {:.0} MiB) over {keys} keys, the hot key with {hot_versions} versions; written in {:.2}s",
        if branching { "branching" } else { "chain" },
        bytes as f64 / (1 << 20) as f64,
        started.elapsed().as_secs_f64()
    );
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let verdict = if incremental {
        // Line by line, as `dynamo-bench check --follow` and a soak do.
        let mut checker = Incremental::new(&path.display().to_string(), &Options::default());
        let file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).expect("open"));
        for line in std::io::BufRead::lines(file) {
            checker.line(&line.expect("read")).expect("well formed");
        }
        let verdict = checker.finish();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "checked incrementally in {seconds:.2}s, {:.0} ops/s; peak RSS {:.0} MiB (generator included: {rss_before:.0} MiB before reading)",
            verdict.ops as f64 / seconds,
            peak_rss_mib()
        );
        verdict
    } else {
        let history = read_file(&path).expect("read");
        let read_seconds = started.elapsed().as_secs_f64();
        let verdict = check(&history, &Options::default());
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "checked in {seconds:.2}s ({read_seconds:.2}s reading, {:.2}s judging), {:.0} ops/s; peak RSS {:.0} MiB (generator included: {rss_before:.0} MiB before reading)",
            seconds - read_seconds,
            history.operations.len() as f64 / seconds,
            peak_rss_mib()
        );
        verdict
    };
    println!(
        "verdict: valid {} violations {:?}; {} stale gets, k p99 {} max {}",
        verdict.valid,
        verdict.violations,
        verdict.staleness.stale_gets,
        verdict.staleness.k.p99,
        verdict.staleness.k.max
    );
    assert!(
        verdict.valid,
        "the simulated store is correct: {:#?}",
        &verdict.findings[..verdict.findings.len().min(5)]
    );
    if keep {
        println!("kept {}", path.display());
    } else {
        let _ = std::fs::remove_file(&path);
    }
}

/// Writes the history; returns (lines, versions of the hot key).
fn generate(path: &std::path::Path, ops: u64, keys: u64, processes: u64, hot: f64) -> (u64, u64) {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create"));
    let mut rng = Rng::new(7);
    // Per key: current siblings, and the previous state (what a stale
    // replica still returns).
    let mut current: Vec<Vec<u64>> = vec![Vec::new(); keys as usize];
    let mut previous: Vec<Vec<u64>> = vec![Vec::new(); keys as usize];
    // Per process: a get that returned, waiting for its put: (key, seen).
    let mut pending: Vec<Option<(u64, Vec<u64>)>> = vec![None; processes as usize];
    let mut time = 0u64;
    let mut op = 0u64;
    let mut lines = 0u64;
    let mut hot_versions = 0u64;
    let mut write = |out: &mut std::io::BufWriter<std::fs::File>, line: String| {
        out.write_all(line.as_bytes()).expect("write");
        lines += 1;
    };
    while op < ops {
        let process = rng.below(processes) as usize;
        time += 1000;
        match pending[process].take() {
            Some((key, seen)) => {
                // The put of a read-modify-write: replaces what it saw.
                let value = op;
                write(
                    &mut out,
                    format!(
                        "{{\"type\":\"invoke\",\"process\":{process},\"op\":{op},\"f\":\"put\",\"key\":\"k{key}\",\"value\":\"v{value}\",\"context\":[{}],\"time_ns\":{time}}}\n",
                        ids(&seen)
                    ),
                );
                let state = &mut current[key as usize];
                previous[key as usize] = state.clone();
                state.retain(|sibling| !seen.contains(sibling));
                state.push(value);
                if key == 0 {
                    hot_versions += 1;
                }
                time += 1000;
                write(
                    &mut out,
                    format!("{{\"type\":\"ok\",\"process\":{process},\"op\":{op},\"f\":\"put\",\"time_ns\":{time}}}\n"),
                );
            }
            None => {
                let key = if rng.chance(hot) { 0 } else { 1 + rng.below(keys - 1) };
                write(
                    &mut out,
                    format!("{{\"type\":\"invoke\",\"process\":{process},\"op\":{op},\"f\":\"get\",\"key\":\"k{key}\",\"time_ns\":{time}}}\n"),
                );
                let stale = rng.chance(0.01);
                let seen = if stale {
                    previous[key as usize].clone()
                } else {
                    current[key as usize].clone()
                };
                time += 1000;
                write(
                    &mut out,
                    format!(
                        "{{\"type\":\"ok\",\"process\":{process},\"op\":{op},\"f\":\"get\",\"values\":[{}],\"time_ns\":{time}}}\n",
                        ids(&seen)
                    ),
                );
                // Most gets are followed by a put of the same process.
                if rng.chance(0.8) {
                    pending[process] = Some((key, seen));
                }
            }
        }
        op += 1;
    }
    // Final reads: every key, after everything settled.
    for key in 0..keys {
        time += 1000;
        write(
            &mut out,
            format!("{{\"type\":\"invoke\",\"process\":{processes},\"op\":{op},\"f\":\"get\",\"key\":\"k{key}\",\"final\":true,\"time_ns\":{time}}}\n"),
        );
        write(
            &mut out,
            format!(
                "{{\"type\":\"ok\",\"process\":{processes},\"op\":{op},\"f\":\"get\",\"values\":[{}],\"time_ns\":{time}}}\n",
                ids(&current[key as usize])
            ),
        );
        op += 1;
    }
    out.flush().expect("flush");
    (lines, hot_versions)
}

/// The branching shape (see the module doc); returns (lines, versions of
/// the hot key).
fn generate_branching(
    path: &std::path::Path,
    ops: u64,
    keys: u64,
    processes: u64,
    hot: f64,
    retire_every: Option<u64>,
) -> (u64, u64) {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create"));
    let mut rng = Rng::new(11);
    let mut generation = 0u64;
    let mut final_op = ops;
    let mut current: Vec<Vec<u64>> = vec![Vec::new(); keys as usize];
    // Per process: its last read of each key it read.
    let mut last_read: Vec<std::collections::HashMap<u64, Vec<u64>>> =
        vec![std::collections::HashMap::new(); processes as usize];
    let (mut time, mut lines, mut hot_versions, mut widest) = (0u64, 0u64, 0u64, 0usize);
    for op in 0..ops {
        if retire_every.is_some_and(|every| op > 0 && op % every == 0) {
            // A generation ends: final reads of its keys, then they retire
            // and a fresh set takes their place.
            lines += final_reads(&mut out, &current, generation, processes, &mut final_op, &mut time);
            let names: Vec<String> = (0..keys).map(|key| format!("\"g{generation}:k{key}\"")).collect();
            time += 1000;
            writeln!(
                out,
                "{{\"type\":\"retire\",\"keys\":[{}],\"time_ns\":{time}}}",
                names.join(",")
            )
            .expect("write");
            lines += 1;
            generation += 1;
            current = vec![Vec::new(); keys as usize];
            last_read = vec![std::collections::HashMap::new(); processes as usize];
        }
        let process = rng.below(processes) as usize;
        let key = if rng.chance(hot) { 0 } else { 1 + rng.below(keys - 1) };
        time += 1000;
        let (invoke, complete) = if rng.chance(0.5) {
            let seen = current[key as usize].clone();
            let invoke =
                format!("{{\"type\":\"invoke\",\"process\":{process},\"op\":{op},\"f\":\"get\",\"key\":\"g{generation}:k{key}\",\"time_ns\":{time}}}\n");
            let complete = format!(
                "{{\"type\":\"ok\",\"process\":{process},\"op\":{op},\"f\":\"get\",\"values\":[{}],\"time_ns\":{}}}\n",
                ids(&seen),
                time + 500
            );
            last_read[process].insert(key, seen);
            (invoke, complete)
        } else {
            let blind = rng.chance(0.05);
            let delete = !blind && rng.chance(0.05);
            let context = if blind {
                Vec::new()
            } else {
                last_read[process].get(&key).cloned().unwrap_or_default()
            };
            let f = if delete { "delete" } else { "put" };
            let invoke = format!(
                "{{\"type\":\"invoke\",\"process\":{process},\"op\":{op},\"f\":\"{f}\",\"key\":\"g{generation}:k{key}\",\"value\":\"v{op}\",\"context\":[{}],\"time_ns\":{time}}}\n",
                ids(&context)
            );
            let state = &mut current[key as usize];
            state.retain(|sibling| !context.contains(sibling));
            if !delete {
                state.push(op);
            }
            widest = widest.max(state.len());
            if key == 0 {
                hot_versions += 1;
            }
            let complete = format!(
                "{{\"type\":\"ok\",\"process\":{process},\"op\":{op},\"f\":\"{f}\",\"time_ns\":{}}}\n",
                time + 500
            );
            (invoke, complete)
        };
        out.write_all(invoke.as_bytes()).expect("write");
        out.write_all(complete.as_bytes()).expect("write");
        lines += 2;
    }
    lines += final_reads(&mut out, &current, generation, processes, &mut final_op, &mut time);
    out.flush().expect("flush");
    eprintln!("branching: at most {widest} siblings on a key at once");
    (lines, hot_versions)
}

/// Final reads of every key of a generation (by process `process`, op ids
/// from `op` on); returns the lines written.
fn final_reads(
    out: &mut impl Write,
    current: &[Vec<u64>],
    generation: u64,
    process: u64,
    op: &mut u64,
    time: &mut u64,
) -> u64 {
    for (key, values) in current.iter().enumerate() {
        *time += 1000;
        writeln!(
            out,
            "{{\"type\":\"invoke\",\"process\":{process},\"op\":{op},\"f\":\"get\",\"key\":\"g{generation}:k{key}\",\"final\":true,\"time_ns\":{time}}}\n{{\"type\":\"ok\",\"process\":{process},\"op\":{op},\"f\":\"get\",\"values\":[{}],\"time_ns\":{time}}}",
            ids(values)
        )
        .expect("write");
        *op += 1;
    }
    2 * current.len() as u64
}

/// Value ids as a JSON array's inside: `"v1","v2"`.
fn ids(values: &[u64]) -> String {
    values
        .iter()
        .map(|value| format!("\"v{value}\""))
        .collect::<Vec<_>>()
        .join(",")
}
