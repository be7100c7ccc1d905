//! How small a slowdown `compare` finds, on this machine's own noise.
//!
//! Takes a pool of runs of one build (a directory of run directories, as
//! `dynamo-bench run --repeat K --out POOL` makes), splits it into disjoint
//! groups of 2K consecutive runs, alternately K base runs and K new runs, multiplies every latency of the
//! new runs by 1 + d, and counts in how many groups `compare` calls each
//! operation type slower at p99 (and, for d = 0, anywhere: the A/A false
//! "slower" rate at K runs a side).
//!
//! The slowdown is exact and the noise is real: every figure the bootstrap
//! sees between and within the runs is this machine's.
//!
//! cargo run --release -p dynamo-reports --example power -- POOL [K] [d,d,...]

use dynamo_reports::compare::{compare_op, load_side, Intervals, Verdict};
use dynamo_reports::table::Table;

fn scaled(run: &Intervals, factor: f64) -> Intervals {
    run.iter()
        .map(|interval| {
            interval
                .iter()
                .map(|&(micros, count)| (((micros as f64) * factor).round().max(1.0) as u64, count))
                .collect()
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(pool) = args.next() else {
        eprintln!("usage: power POOL [K] [d,d,...]   (POOL: a directory of runs of one build)");
        std::process::exit(2);
    };
    let per_side: usize = args.next().and_then(|k| k.parse().ok()).unwrap_or(5);
    let slowdowns: Vec<f64> = args
        .next()
        .unwrap_or_else(|| "0,0.05,0.075,0.1,0.15,0.2".into())
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    let side = match load_side(std::path::Path::new(&pool)) {
        Ok(side) => side,
        Err(error) => {
            eprintln!("power: {error}");
            std::process::exit(2);
        }
    };
    let runs = side.dirs.len();
    let groups = runs / (2 * per_side);
    if groups == 0 {
        eprintln!(
            "power: {runs} runs in {pool}: need at least {} for one group",
            2 * per_side
        );
        std::process::exit(2);
    }
    println!("{runs} runs in {pool}: {groups} disjoint groups of {per_side} base + {per_side} new runs; threshold 5 %");
    let mut table = Table::new(["slowdown", "op", "p99 slower", "p99 ratio (median)", "any slower"]);
    for &slowdown in &slowdowns {
        for (index, (op, op_runs)) in side.latency.iter().enumerate() {
            let mut p99_slower = 0;
            let mut any_slower = 0;
            let mut ratios = Vec::new();
            for group in 0..groups {
                // Runs made one after another, alternated: base, new,
                // base, ... (as a comparison of two builds is run, so that
                // the machine's drift hits both sides).
                let group_runs = &op_runs[group * 2 * per_side..(group + 1) * 2 * per_side];
                let base: Vec<Intervals> = group_runs.iter().step_by(2).cloned().collect();
                let new: Vec<Intervals> = group_runs
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .map(|run| scaled(run, 1.0 + slowdown))
                    .collect();
                let rows = compare_op(op, &base, &new, 0.05, (group * 31 + index) as u64).rows;
                let p99 = rows
                    .iter()
                    .find(|row| row.percentile == Some(99.0))
                    .expect("p99 is compared");
                ratios.push(p99.ratio);
                p99_slower += usize::from(p99.verdict == Verdict::Slower);
                any_slower += usize::from(rows.iter().any(|row| row.verdict == Verdict::Slower));
            }
            ratios.sort_by(f64::total_cmp);
            table.row([
                format!("{:.1} %", slowdown * 100.0),
                op.clone(),
                format!("{p99_slower} of {groups}"),
                format!("{:.3}", ratios[ratios.len() / 2]),
                format!("{any_slower} of {groups}"),
            ]);
        }
    }
    print!("{}", table.text());
}
