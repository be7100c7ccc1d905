//! Comparing two sets of runs: is the new one slower, at which percentile,
//! by how much, and is that more than the machine's noise?
//!
//! # The method
//!
//! Each side is one or more runs of the same spec. A run's latency is its
//! interval histograms (one per second, from the interval logs; the
//! warm-up left out). A side's figure at percentile `q` is `q` of all its
//! intervals merged.
//!
//! The uncertainty of the ratio new / base comes from a bootstrap that
//! keeps what makes latency noisy on a shared machine:
//!
//! - **Between runs.** With several runs a side, each resample draws that
//!   many runs with replacement, so one noisy run weighs as one of K
//!   (criterion and benchstat do the same with their samples).
//! - **Within a run, in blocks.** A slow second is rarely alone (a disk
//!   stall, a compaction, a neighbour's burst last a few seconds), so
//!   intervals are resampled as moving blocks of [`BLOCK_SECONDS`]
//!   consecutive seconds (the block bootstrap of time series), not one by
//!   one, which would understate the noise.
//!
//! [`RESAMPLES`] resamples of both sides give the ratio's distribution;
//! its 2.5 and 97.5 percentiles are the 95 % interval. The verdict, with a
//! threshold `t` (default 5 %):
//!
//! - `slower`: the whole interval is above `1 + t`;
//! - `faster`: the whole interval is below `1 − t`;
//! - `unchanged`: the whole interval is within `[1 − t, 1 + t]`;
//! - `inconclusive`: otherwise (the interval is too wide to say).
//!
//! A verdict of `slower` (or `faster`) also needs the runs themselves to
//! agree: at that percentile every new run is slower (faster) than every
//! base run. The bootstrap alone was too sure of the tails: in an A/A test
//! of 12 runs of one build, split 20 times 2 against 2 and 3 against 3, it
//! called 1 and 3 of the 20 splits slower, each time at p99.9 or beyond,
//! from one run's stall.
//!
//! And a percentile is decided only where every run has at least
//! [`TAIL_SAMPLES_MIN`] requests beyond it: the A/A splits above that were
//! still called slower with the runs agreeing were at p99.99 and the
//! maximum of runs with a few thousand requests, where the figure is one
//! or two requests.
//!
//! With fewer than [`RUNS_MIN`] runs on a side every verdict is
//! `inconclusive`: one run cannot tell a change from the drift between
//! runs. `dynamo-bench run --repeat K` makes K runs.
//!
//! The resampling is seeded: the same runs give the same verdicts.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Seconds per block of the within-run bootstrap.
pub const BLOCK_SECONDS: usize = 5;
/// Bootstrap resamples per comparison.
pub const RESAMPLES: usize = 400;
/// Runs a side needs for a verdict other than `inconclusive`: within one
/// run the bootstrap sees the seconds' noise but not the drift from one
/// run to the next (measured here: two runs of one build, one after the
/// other, differed by 8.5 % at a p90), which only repeated runs show.
pub const RUNS_MIN: usize = 2;
/// Samples each run needs beyond a percentile for a verdict there: a
/// tail estimated from a handful of requests is one stall's size, not the
/// build's. (The maximum is never decisive: it is one request.)
pub const TAIL_SAMPLES_MIN: f64 = 10.0;
/// The percentiles compared (100.0 is the maximum).
pub const PERCENTILES: [f64; 6] = [50.0, 90.0, 99.0, 99.9, 99.99, 100.0];

/// One interval's latencies: (microseconds, how many), as recorded.
pub type Interval = Vec<(u64, u64)>;

/// One run's latency of one operation type: its intervals in time order.
pub type Intervals = Vec<Interval>;

/// An interval histogram in the sparse form the comparison resamples.
pub fn sparse(histogram: &Histogram<u64>) -> Interval {
    histogram
        .iter_recorded()
        .map(|value| (value.value_iterated_to(), value.count_at_value()))
        .collect()
}

fn add(total: &mut Histogram<u64>, interval: &Interval) {
    for &(value, count) in interval {
        let _ = total.record_n(value, count);
    }
}

/// What a comparison concluded at one percentile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Slower beyond the threshold, with confidence.
    Slower,
    /// Faster beyond the threshold, with confidence.
    Faster,
    /// Within the threshold, with confidence.
    Unchanged,
    /// The interval is too wide to say.
    Inconclusive,
}

impl Verdict {
    /// The word shown.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Slower => "slower",
            Verdict::Faster => "faster",
            Verdict::Unchanged => "unchanged",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One row of a comparison.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Row {
    /// The operation type.
    pub op: String,
    /// What is compared: `p50` ... `p99.99` and `max` (latency, ms), or
    /// `ops/s` (throughput: completions per second).
    pub measure: String,
    /// The percentile for latency rows (100 = max); none for throughput.
    pub percentile: Option<f64>,
    /// The base's figure (milliseconds, or operations per second).
    pub base: f64,
    /// The new side's figure.
    pub new: f64,
    /// new / base.
    pub ratio: f64,
    /// The 95 % interval of the ratio.
    pub low: f64,
    /// The 95 % interval of the ratio.
    pub high: f64,
    /// What it means (for throughput, `slower` is fewer operations per
    /// second: the interval below `1 / (1 + t)`).
    pub verdict: Verdict,
}

/// The percentile spectrum of both sides of one operation type, each
/// point with its 95 % bootstrap interval (what `compare.html` draws).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Spectrum {
    /// The percentiles (p50 up to as far as both sides have a request
    /// beyond), evenly spaced on a log scale of 1/(1−p).
    pub percentiles: Vec<f64>,
    /// The base's latency at each, ms: (merged runs, 2.5 %, 97.5 %).
    pub base: Vec<(f64, f64, f64)>,
    /// The new side's, likewise.
    pub new: Vec<(f64, f64, f64)>,
}

/// What comparing one operation type gives.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OpComparison {
    /// One row per percentile, then throughput.
    pub rows: Vec<Row>,
    /// Both spectra with their intervals.
    pub spectrum: Spectrum,
}

/// Points of the spectrum drawn.
const SPECTRUM_POINTS: usize = 40;

use crate::rng::Rng;

/// The latency at each of `percentiles` (ascending; 100 = max), in
/// milliseconds, in one pass over the histogram.
fn figures_at(histogram: &Histogram<u64>, percentiles: &[f64]) -> Vec<f64> {
    let total = histogram.len();
    let mut out = Vec::with_capacity(percentiles.len());
    if total == 0 {
        out.resize(percentiles.len(), 0.0);
        return out;
    }
    let mut wanted = percentiles.iter().peekable();
    let mut seen = 0u64;
    for value in histogram.iter_recorded() {
        seen += value.count_at_value();
        while let Some(&&percentile) = wanted.peek() {
            // The smallest value with at least q of the requests at or
            // below it (the maximum for 100).
            let needed = ((percentile / 100.0) * total as f64).ceil().max(1.0) as u64;
            if percentile >= 100.0 || seen < needed {
                break;
            }
            out.push(histogram.highest_equivalent(value.value_iterated_to()) as f64 / 1000.0);
            wanted.next();
        }
    }
    let max = histogram.max() as f64 / 1000.0;
    out.resize(percentiles.len(), max);
    out
}

fn empty() -> Histogram<u64> {
    // Only more than five significant digits are refused.
    Histogram::<u64>::new(3).expect("three significant digits are always allowed")
}

/// Every interval of some runs merged, and how many seconds they cover.
fn merged(runs: &[Intervals]) -> (Histogram<u64>, usize) {
    let mut total = empty();
    for interval in runs.iter().flatten() {
        add(&mut total, interval);
    }
    (total, runs.iter().map(Vec::len).sum())
}

/// One bootstrap resample of a side: runs drawn with replacement, and in
/// each, moving blocks of consecutive intervals; with the seconds taken.
fn resample(runs: &[Intervals], rng: &mut Rng) -> (Histogram<u64>, usize) {
    let mut total = empty();
    let mut seconds = 0;
    for _ in 0..runs.len() {
        let run = &runs[rng.below(runs.len())];
        if run.is_empty() {
            continue;
        }
        let block = BLOCK_SECONDS.min(run.len());
        let starts = run.len() - block + 1;
        let mut taken = 0;
        while taken < run.len() {
            let start = rng.below(starts);
            for interval in &run[start..start + block] {
                if taken == run.len() {
                    break;
                }
                add(&mut total, interval);
                taken += 1;
            }
        }
        seconds += taken;
    }
    (total, seconds)
}

/// Operations per second of a (resampled) side.
fn rate((histogram, seconds): &(Histogram<u64>, usize)) -> f64 {
    if *seconds == 0 {
        0.0
    } else {
        histogram.len() as f64 / *seconds as f64
    }
}

/// The verdict of an interval `[low, high]` under threshold `t`.
pub fn verdict(low: f64, high: f64, threshold: f64) -> Verdict {
    if low > 1.0 + threshold {
        Verdict::Slower
    } else if high < 1.0 - threshold {
        Verdict::Faster
    } else if low >= 1.0 - threshold && high <= 1.0 + threshold {
        Verdict::Unchanged
    } else {
        Verdict::Inconclusive
    }
}

/// The 2.5 and 97.5 percentiles of some resampled values.
fn interval(mut values: Vec<f64>) -> (f64, f64) {
    values.retain(|value| value.is_finite());
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let at = |fraction: f64| values[((values.len() - 1) as f64 * fraction).round() as usize];
    (at(0.025), at(0.975))
}

/// The spectrum's percentiles: 1/(1−p) from 2 evenly on a log scale up to
/// where the side with fewer requests still has one beyond.
fn spectrum_percentiles(requests: u64) -> Vec<f64> {
    let top = (requests as f64).clamp(2.0, 1e5);
    (0..SPECTRUM_POINTS)
        .map(|index| {
            let odds = 2f64 * (top / 2.0).powf(index as f64 / (SPECTRUM_POINTS - 1) as f64);
            100.0 * (1.0 - 1.0 / odds)
        })
        .collect()
}

/// Compares one operation type: the base's runs against the new ones.
pub fn compare_op(op: &str, base: &[Intervals], new: &[Intervals], threshold: f64, seed: u64) -> OpComparison {
    let (base_total, new_total) = (merged(base), merged(new));
    // Each run on its own (merged once), for the runs' agreement and for
    // how many requests each has beyond a percentile.
    let each = |runs: &[Intervals]| -> Vec<(Histogram<u64>, usize)> {
        runs.iter().map(|run| merged(std::slice::from_ref(run))).collect()
    };
    let (base_each, new_each) = (each(base), each(new));
    let spectrum_at = spectrum_percentiles(base_total.0.len().min(new_total.0.len()));
    let mut rng = Rng(seed ^ 0x0063_6f6d_7061_7265); // "compare"
    let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(RESAMPLES); PERCENTILES.len() + 1];
    let mut spectra: [Vec<Vec<f64>>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..RESAMPLES {
        let samples = [resample(base, &mut rng), resample(new, &mut rng)];
        let [base_figures, new_figures] = [&samples[0], &samples[1]].map(|sample| figures_at(&sample.0, &PERCENTILES));
        for (index, (base_figure, new_figure)) in base_figures.iter().zip(&new_figures).enumerate() {
            if *base_figure > 0.0 {
                ratios[index].push(new_figure / base_figure);
            }
        }
        if rate(&samples[0]) > 0.0 {
            ratios[PERCENTILES.len()].push(rate(&samples[1]) / rate(&samples[0]));
        }
        for (side, sample) in spectra.iter_mut().zip(&samples) {
            side.push(figures_at(&sample.0, &spectrum_at));
        }
    }
    let base_runs: Vec<Vec<f64>> = base_each.iter().map(|run| figures_at(&run.0, &PERCENTILES)).collect();
    let new_runs: Vec<Vec<f64>> = new_each.iter().map(|run| figures_at(&run.0, &PERCENTILES)).collect();
    let fewest_beyond = |runs: &[(Histogram<u64>, usize)], percentile: f64| -> f64 {
        runs.iter()
            .map(|run| run.0.len() as f64 * (1.0 - percentile / 100.0))
            .fold(f64::INFINITY, f64::min)
    };
    let most = |figures: &mut dyn Iterator<Item = f64>| figures.fold(f64::NEG_INFINITY, f64::max);
    let least = |figures: &mut dyn Iterator<Item = f64>| figures.fold(f64::INFINITY, f64::min);
    let enough_runs = base.len().min(new.len()) >= RUNS_MIN;
    let base_figures = figures_at(&base_total.0, &PERCENTILES);
    let new_figures = figures_at(&new_total.0, &PERCENTILES);
    let mut rows: Vec<Row> = PERCENTILES
        .iter()
        .enumerate()
        .map(|(index, percentile)| {
            let (low, high) = interval(std::mem::take(&mut ratios[index]));
            let (base_ms, new_ms) = (base_figures[index], new_figures[index]);
            let thin_tail =
                fewest_beyond(&base_each, *percentile).min(fewest_beyond(&new_each, *percentile)) < TAIL_SAMPLES_MIN;
            let verdict = if low.is_nan() || !enough_runs || thin_tail {
                Verdict::Inconclusive
            } else {
                let mut base_at = base_runs.iter().map(|run| run[index]);
                let mut new_at = new_runs.iter().map(|run| run[index]);
                match verdict(low, high, threshold) {
                    Verdict::Slower if least(&mut new_at) <= most(&mut base_at) => Verdict::Inconclusive,
                    Verdict::Faster if most(&mut new_at) >= least(&mut base_at) => Verdict::Inconclusive,
                    decided => decided,
                }
            };
            Row {
                op: op.to_string(),
                measure: measure_name(*percentile),
                percentile: Some(*percentile),
                base: base_ms,
                new: new_ms,
                ratio: if base_ms > 0.0 { new_ms / base_ms } else { f64::NAN },
                low,
                high,
                verdict,
            }
        })
        .collect();
    // Throughput: slower is fewer completions per second, so the verdict
    // is taken on base / new; the runs must agree as for latency.
    let (low, high) = interval(std::mem::take(&mut ratios[PERCENTILES.len()]));
    let (base_rate, new_rate) = (rate(&base_total), rate(&new_total));
    let verdict = if low.is_nan() || low <= 0.0 || !enough_runs {
        Verdict::Inconclusive
    } else {
        let mut base_at = base_each.iter().map(rate);
        let mut new_at = new_each.iter().map(rate);
        match verdict(1.0 / high, 1.0 / low, threshold) {
            Verdict::Slower if most(&mut new_at) >= least(&mut base_at) => Verdict::Inconclusive,
            Verdict::Faster if least(&mut new_at) <= most(&mut base_at) => Verdict::Inconclusive,
            decided => decided,
        }
    };
    rows.push(Row {
        op: op.to_string(),
        measure: "ops/s".into(),
        percentile: None,
        base: base_rate,
        new: new_rate,
        ratio: if base_rate > 0.0 {
            new_rate / base_rate
        } else {
            f64::NAN
        },
        low,
        high,
        verdict,
    });
    let band = |total: &(Histogram<u64>, usize), samples: &[Vec<f64>]| -> Vec<(f64, f64, f64)> {
        let middle = figures_at(&total.0, &spectrum_at);
        (0..spectrum_at.len())
            .map(|point| {
                let (low, high) = interval(samples.iter().map(|sample| sample[point]).collect());
                (middle[point], low, high)
            })
            .collect()
    };
    let spectrum = Spectrum {
        base: band(&base_total, &spectra[0]),
        new: band(&new_total, &spectra[1]),
        percentiles: spectrum_at,
    };
    OpComparison { rows, spectrum }
}

/// `p50`, `p99.9`, `max`.
fn measure_name(percentile: f64) -> String {
    if percentile >= 100.0 {
        "max".to_string()
    } else {
        format!("p{percentile}")
    }
}

/// Compares every operation type both sides have, in name order.
pub fn compare(
    base: &BTreeMap<String, Vec<Intervals>>,
    new: &BTreeMap<String, Vec<Intervals>>,
    threshold: f64,
) -> BTreeMap<String, OpComparison> {
    let mut out = BTreeMap::new();
    for (index, (op, base_runs)) in base.iter().enumerate() {
        if let Some(new_runs) = new.get(op) {
            out.insert(op.clone(), compare_op(op, base_runs, new_runs, threshold, index as u64));
        }
    }
    out
}

/// One side of a comparison: its runs, read.
#[derive(Debug)]
pub struct Side {
    /// The run directories.
    pub dirs: Vec<std::path::PathBuf>,
    /// Each run's `summary.json`.
    pub summaries: Vec<serde_json::Value>,
    /// Per operation type, each run's measured intervals (warm-up left out).
    pub latency: BTreeMap<String, Vec<Intervals>>,
}

/// The settings two runs must share to be compared: the spec, the
/// cluster's shape and settings, and the load (not where the files were);
/// and the seed and the faults (see [`difference`]).
const SAME: [(&str, &[&str]); 3] = [
    ("spec", &["name"]),
    (
        "cluster",
        &[
            "kind",
            "nodes",
            "spares",
            "n",
            "r",
            "w",
            "partitions",
            "versioning",
            "sync",
            "batch_interval_ms",
            "segment_bytes",
            "sloppy_quorum",
            "read_repair",
            "request_timeout_ms",
            "anti_entropy_interval_ms",
            "tombstone_grace_ms",
            "hint_age_max_ms",
        ],
    ),
    (
        "load",
        &[
            "clients",
            "distribution",
            "duration_s",
            "keys",
            "max_in_flight",
            "mix",
            "routing",
            "target_rate",
            "timeout_ms",
            "value_bytes",
            "warmup_s",
        ],
    ),
];

/// Reads a side: `path` is a run directory, or a directory of run
/// directories (a baseline, or `run --repeat`'s output).
///
/// # Errors
/// Nothing there is a run, or a run's files are damaged (named).
pub fn load_side(path: &std::path::Path) -> Result<Side, crate::run_data::ReadError> {
    let mut dirs = Vec::new();
    if path.join("summary.json").is_file() {
        dirs.push(path.to_path_buf());
    } else {
        let entries = std::fs::read_dir(path).map_err(|io| crate::run_data::ReadError {
            path: path.to_path_buf(),
            reason: io.to_string(),
        })?;
        dirs = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|dir| dir.join("summary.json").is_file())
            .collect();
        // In the order they were made: `run --repeat` numbers them 1, 2,
        // ... 10, which sort as numbers, not as text.
        dirs.sort_by_key(|dir| {
            let name = dir
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name.parse::<u64>().unwrap_or(u64::MAX), name)
        });
    }
    if dirs.is_empty() {
        return Err(crate::run_data::ReadError {
            path: path.to_path_buf(),
            reason: "no run here: neither summary.json nor run directories holding one".into(),
        });
    }
    let mut side = Side {
        dirs: Vec::new(),
        summaries: Vec::new(),
        latency: BTreeMap::new(),
    };
    for dir in dirs {
        let data = crate::run_data::RunData::read(&dir)?;
        let warmup = data.summary["load"]["warmup_s"].as_f64().unwrap_or(0.0);
        let end = warmup + data.summary["load"]["duration_s"].as_f64().unwrap_or(f64::INFINITY);
        for (op, latency) in data.latency {
            // The measured seconds. Requests scheduled in the last second
            // but completed after it land in an interval of their own past
            // the end: they join the last second, so that every run has
            // as many seconds as it measured (its throughput is not
            // diluted by a stub second) and no late request is dropped.
            let mut intervals: Intervals = Vec::new();
            for (at_s, interval) in latency.intended_intervals {
                if at_s < warmup {
                    continue;
                }
                match intervals.last_mut() {
                    Some(last) if at_s >= end => {
                        // Kept in value order, as recorded intervals are.
                        last.extend(interval);
                        last.sort_unstable();
                    }
                    _ => intervals.push(interval),
                }
            }
            side.latency.entry(op).or_default().push(intervals);
        }
        side.summaries.push(data.summary);
        side.dirs.push(dir);
    }
    Ok(side)
}

/// The faults a run had, as `kind×windows` by kind (`none` without).
fn fault_signature(summary: &serde_json::Value) -> String {
    let kinds: Vec<String> = summary["faults"]["by_kind"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|kind| format!("{}×{}", kind["fault"].as_str().unwrap_or("?"), kind["windows"]))
        .collect();
    if kinds.is_empty() {
        "none".into()
    } else {
        kinds.join(", ")
    }
}

/// The first setting in which two runs differ, in words (settings named
/// in `allowed`, as `section.field`, `seed` or `faults`, may differ);
/// `None` when they can be compared. A setting an older summary does not
/// record at all is not held against it.
pub fn difference(a: &serde_json::Value, b: &serde_json::Value, allowed: &[String]) -> Option<String> {
    let allows = |name: &str| allowed.iter().any(|allowed| allowed == name);
    for (section, fields) in SAME {
        for field in fields {
            if allows(&format!("{section}.{field}")) {
                continue;
            }
            let recorded = |summary: &serde_json::Value| summary[section].get(field).is_some();
            if !recorded(a) || !recorded(b) {
                continue;
            }
            let (left, right) = (&a[section][field], &b[section][field]);
            if left != right {
                return Some(format!("{section}.{field}: {left} against {right}"));
            }
        }
    }
    if !allows("seed") && a["seed"] != b["seed"] {
        return Some(format!("seed: {} against {}", a["seed"], b["seed"]));
    }
    let (left, right) = (fault_signature(a), fault_signature(b));
    if !allows("faults") && left != right {
        return Some(format!("faults: {left} against {right}"));
    }
    None
}

/// Checks that every run of both sides shares the settings that matter
/// (but those in `allowed`).
///
/// # Errors
/// The first difference, naming the runs and the setting.
pub fn check_comparable(base: &Side, new: &Side, allowed: &[String]) -> Result<(), String> {
    let (first, first_dir) = (&base.summaries[0], &base.dirs[0]);
    for (summary, dir) in base
        .summaries
        .iter()
        .zip(&base.dirs)
        .chain(new.summaries.iter().zip(&new.dirs))
    {
        if let Some(differs) = difference(first, summary, allowed) {
            return Err(format!(
                "{} and {} are runs of different settings ({differs}): compare like with like, or name the setting \
                 with --allow-different to compare them on purpose",
                first_dir.display(),
                dir.display()
            ));
        }
    }
    Ok(())
}

/// What was found slower, in words: `add p99 (+12.3 %)`.
pub fn slower<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Vec<String> {
    rows.into_iter()
        .filter(|row| row.verdict == Verdict::Slower)
        .map(|row| format!("{} {} ({:+.1} %)", row.op, row.measure, (row.ratio - 1.0) * 100.0))
        .collect()
}

/// The rows as a table.
pub fn table<'a>(rows: impl IntoIterator<Item = &'a Row>) -> crate::table::Table {
    let mut table = crate::table::Table::new(["op", "measure", "base", "new", "ratio", "95% interval", "verdict"]);
    for row in rows {
        let decimals = if row.percentile.is_some() { 3 } else { 1 };
        table.row([
            row.op.clone(),
            row.measure.clone(),
            format!("{:.decimals$}", row.base),
            format!("{:.decimals$}", row.new),
            format!("{:.3}", row.ratio),
            format!("[{:.3}, {:.3}]", row.low, row.high),
            row.verdict.word().to_string(),
        ]);
    }
    table
}

/// [`table`] for a terminal, with what it means.
pub fn text<'a>(rows: impl IntoIterator<Item = &'a Row>, threshold: f64) -> String {
    let mut out = table(rows).text();
    out.push_str(&format!(
        "(latency in ms from the intended start, ops/s = completions per second; ratio = new / base; the interval is a \
         95 % block bootstrap over runs and seconds; slower = latency up or throughput down beyond {:.0} % with the \
         whole interval and every run agreeing)\n",
        threshold * 100.0
    ));
    out
}

/// The files of a run a later comparison needs (its history is not one).
const BASELINE_FILES: [&str; 2] = ["summary.json", "check.json"];

/// Saves `runs` as the baseline `name` under `root`: each run's summary,
/// verdict and interval logs in `root/name/<i>/`, and `baseline.json`
/// saying where they came from. A later `compare root/name NEW` reads it
/// as one side. Replaces a baseline of that name.
///
/// # Errors
/// A run is not one, or the files cannot be written (named).
pub fn save_baseline(
    root: &std::path::Path,
    name: &str,
    runs: &[std::path::PathBuf],
    revision: &str,
) -> Result<std::path::PathBuf, crate::run_data::ReadError> {
    let failed = |path: &std::path::Path, reason: String| crate::run_data::ReadError {
        path: path.to_path_buf(),
        reason,
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-'))
        && name != "."
        && name != "..";
    if !valid_name {
        return Err(failed(
            root,
            format!("baseline name {name:?}: letters, digits, '.', '_' and '-' only"),
        ));
    }
    let target = root.join(name);
    let staging = root.join(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    for (index, run) in runs.iter().enumerate() {
        // Read first: what is saved must be a run compare can read.
        crate::run_data::RunData::read(run)?;
        let into = staging.join((index + 1).to_string());
        std::fs::create_dir_all(&into).map_err(|io| failed(&into, io.to_string()))?;
        let entries = std::fs::read_dir(run).map_err(|io| failed(run, io.to_string()))?;
        for entry in entries.filter_map(Result::ok) {
            let file = entry.file_name().to_string_lossy().into_owned();
            let wanted =
                BASELINE_FILES.contains(&file.as_str()) || (file.starts_with("latency-") && file.ends_with(".hlog"));
            if wanted {
                std::fs::copy(entry.path(), into.join(&file)).map_err(|io| failed(&entry.path(), io.to_string()))?;
            }
        }
    }
    let about = serde_json::json!({
        "name": name,
        "revision": revision,
        "created_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
        "runs": runs.iter().map(|run| run.display().to_string()).collect::<Vec<_>>(),
        "note": "latency figures belong to the machine that made them: compare against runs made on it",
    });
    let about_path = staging.join("baseline.json");
    std::fs::write(&about_path, serde_json::to_string_pretty(&about).unwrap_or_default())
        .map_err(|io| failed(&about_path, io.to_string()))?;
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target).map_err(|io| failed(&target, io.to_string()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `seconds` intervals of `per_second` latencies each, drawn
    /// from a log-normal-ish shape around `median_us`, scaled by `scale`,
    /// with a `tail_us` value for one request in `tail_every` (the
    /// p99.9-only kind of change), noisy per second by `noise`.
    fn run(seed: u64, seconds: usize, median_us: f64, scale: f64, tail_us: Option<(u64, u64)>) -> Intervals {
        let mut rng = Rng(seed);
        let mut counter = 0u64;
        (0..seconds)
            .map(|_| {
                let mut histogram = empty();
                // Each second's level wanders by ±10 %: the machine's noise.
                let level = 0.9 + 0.2 * (rng.next() % 1000) as f64 / 1000.0;
                for _ in 0..500 {
                    counter += 1;
                    let uniform = (rng.next() % 1_000_000) as f64 / 1_000_000.0;
                    // An exponential tail over the median.
                    let value = median_us * level * scale * (1.0 - (1.0 - uniform).max(1e-9).ln() * 0.3);
                    let value = match tail_us {
                        Some((tail, every)) if counter % every == 0 => tail,
                        _ => value as u64,
                    };
                    let _ = histogram.record(value.max(1));
                }
                sparse(&histogram)
            })
            .collect()
    }

    fn runs(seeds: std::ops::Range<u64>, scale: f64, tail: Option<(u64, u64)>) -> Vec<Intervals> {
        seeds.map(|seed| run(seed, 30, 1_000.0, scale, tail)).collect()
    }

    fn row(rows: &[Row], percentile: f64) -> &Row {
        rows.iter().find(|row| row.percentile == Some(percentile)).unwrap()
    }

    #[test]
    fn a_twenty_percent_slowdown_is_slower_everywhere_it_shows() {
        let rows = compare_op("get", &runs(0..3, 1.0, None), &runs(10..13, 1.2, None), 0.05, 1).rows;
        for percentile in [50.0, 90.0, 99.0] {
            let row = row(&rows, percentile);
            assert_eq!(row.verdict, Verdict::Slower, "{row:?}");
            assert!((row.ratio - 1.2).abs() < 0.05, "{row:?}");
        }
        let rows = compare_op("get", &runs(10..13, 1.2, None), &runs(0..3, 1.0, None), 0.05, 1).rows;
        assert_eq!(row(&rows, 50.0).verdict, Verdict::Faster);
    }

    #[test]
    fn the_same_build_twice_is_called_slower_at_most_once_in_twenty() {
        // A/A on synthetic runs: twenty comparisons of different seeds of
        // one distribution (whose seconds wander by ±10 %). At most one
        // of the twenty may say slower anywhere (the 5 % the issue
        // allows); the median is never slower nor faster.
        let mut trials_slower = 0;
        for trial in 0..20u64 {
            let base = runs(trial * 10..trial * 10 + 2, 1.0, None);
            let new = runs(trial * 10 + 100..trial * 10 + 102, 1.0, None);
            let rows = compare_op("get", &base, &new, 0.05, trial).rows;
            trials_slower += usize::from(rows.iter().any(|row| row.verdict == Verdict::Slower));
            let median = row(&rows, 50.0);
            assert!(
                matches!(median.verdict, Verdict::Unchanged | Verdict::Inconclusive),
                "{median:?}"
            );
        }
        assert!(trials_slower <= 1, "{trials_slower} of 20 A/A comparisons said slower");
    }

    #[test]
    fn a_change_in_the_tail_alone_is_found_there_and_not_at_the_median() {
        // One request in 500 takes 50 ms in the new runs: p99.9 moves, the
        // median does not.
        let base = runs(0..3, 1.0, None);
        let new = runs(20..23, 1.0, Some((50_000, 500)));
        let rows = compare_op("put", &base, &new, 0.05, 3).rows;
        assert_eq!(row(&rows, 99.9).verdict, Verdict::Slower, "{:?}", row(&rows, 99.9));
        assert_eq!(row(&rows, 50.0).verdict, Verdict::Unchanged, "{:?}", row(&rows, 50.0));
        // 15,000 requests a run leave 1.5 beyond p99.99: not decided there.
        assert_eq!(
            row(&rows, 99.99).verdict,
            Verdict::Inconclusive,
            "{:?}",
            row(&rows, 99.99)
        );
        assert_eq!(row(&rows, 100.0).verdict, Verdict::Inconclusive);
    }

    #[test]
    fn one_noisy_run_makes_a_single_pair_inconclusive_not_slower() {
        // The new side's only run has a ten-second stall at 5x: with one
        // run a side the blocks carry the stall, and the interval widens.
        let base = runs(0..1, 1.0, None);
        let mut noisy = run(50, 30, 1_000.0, 1.0, None);
        for (index, interval) in run(51, 10, 1_000.0, 5.0, None).into_iter().enumerate() {
            noisy[10 + index] = interval;
        }
        let rows = compare_op("get", &base, &[noisy], 0.05, 4).rows;
        assert_ne!(row(&rows, 50.0).verdict, Verdict::Unchanged);
        let p99 = row(&rows, 99.0);
        assert!(p99.high > p99.low * 1.2, "the interval reflects the stall: {p99:?}");
    }

    #[test]
    fn fewer_completions_per_second_is_slower_throughput() {
        // The new runs complete 80 % of the base's requests each second
        // (the same latencies): throughput is slower, latency is not.
        let base = runs(0..3, 1.0, None);
        // Every fifth request of the new runs dropped: 80 % of the rate.
        let thinned: Vec<Intervals> = runs(30..33, 1.0, None)
            .into_iter()
            .map(|run| {
                run.into_iter()
                    .map(|interval| {
                        interval
                            .into_iter()
                            .enumerate()
                            .filter(|(index, _)| index % 5 != 4)
                            .map(|(_, value)| value)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let comparison = compare_op("get", &base, &thinned, 0.05, 5);
        let throughput = comparison.rows.iter().find(|row| row.measure == "ops/s").unwrap();
        assert_eq!(throughput.verdict, Verdict::Slower, "{throughput:?}");
        assert!(throughput.ratio < 0.85 && throughput.ratio > 0.75, "{throughput:?}");
        let same = compare_op("get", &base, &runs(40..43, 1.0, None), 0.05, 5);
        let throughput = same.rows.iter().find(|row| row.measure == "ops/s").unwrap();
        assert_eq!(throughput.verdict, Verdict::Unchanged, "{throughput:?}");
    }

    #[test]
    fn the_spectrum_has_an_interval_around_each_point_and_matches_the_rows() {
        let base = runs(0..3, 1.0, None);
        let comparison = compare_op("get", &base, &runs(10..13, 1.2, None), 0.05, 6);
        let spectrum = &comparison.spectrum;
        assert_eq!(spectrum.percentiles.len(), SPECTRUM_POINTS);
        assert!((spectrum.percentiles[0] - 50.0).abs() < 1e-9);
        // 45,000 requests a side: the spectrum reaches past p99.99.
        assert!(*spectrum.percentiles.last().unwrap() > 99.99);
        for side in [&spectrum.base, &spectrum.new] {
            for (point, (middle, low, high)) in side.iter().enumerate() {
                assert!(low <= high, "point {point}: {low} > {high}");
                assert!(
                    middle * 1.1 >= *low && middle * 0.9 <= *high,
                    "point {point}: {middle} far outside [{low}, {high}]"
                );
            }
            assert!(
                side.windows(2).all(|pair| pair[0].0 <= pair[1].0),
                "a spectrum never falls"
            );
        }
        // The new side sits above the base at the median, as the rows say.
        assert!(spectrum.new[0].1 > spectrum.base[0].2);
        // One pass over the histogram gives hdrhistogram's own quantiles.
        let (total, _) = merged(&base);
        let ours = figures_at(&total, &PERCENTILES);
        for (percentile, figure) in PERCENTILES.iter().zip(ours) {
            let theirs = if *percentile >= 100.0 {
                total.max()
            } else {
                total.value_at_quantile(percentile / 100.0)
            };
            assert_eq!(figure, theirs as f64 / 1000.0, "p{percentile}");
        }
    }

    #[test]
    fn runs_of_other_settings_seeds_or_faults_are_named_unless_allowed() {
        let run = serde_json::json!({
            "seed": 1,
            "spec": {"name": "cart"},
            "cluster": {"sync": "batch", "batch_interval_ms": 5},
            "load": {"target_rate": 1000.0},
            "faults": {"by_kind": []},
        });
        assert_eq!(difference(&run, &run, &[]), None);
        let mut other = run.clone();
        other["cluster"]["batch_interval_ms"] = serde_json::json!(1);
        assert_eq!(
            difference(&run, &other, &[]).as_deref(),
            Some("cluster.batch_interval_ms: 5 against 1")
        );
        assert_eq!(difference(&run, &other, &["cluster.batch_interval_ms".into()]), None);
        // An older summary that does not record the setting at all.
        let mut older = run.clone();
        older["cluster"].as_object_mut().unwrap().remove("batch_interval_ms");
        assert_eq!(difference(&older, &other, &[]), None);
        let mut seeded = run.clone();
        seeded["seed"] = serde_json::json!(2);
        assert_eq!(difference(&run, &seeded, &[]).as_deref(), Some("seed: 1 against 2"));
        let mut faulted = run.clone();
        faulted["faults"]["by_kind"] = serde_json::json!([{"fault": "kill", "windows": 2}]);
        assert_eq!(
            difference(&run, &faulted, &[]).as_deref(),
            Some("faults: none against kill×2")
        );
        assert_eq!(difference(&run, &faulted, &["faults".into()]), None);
    }

    #[test]
    fn verdicts_follow_the_interval_and_threshold() {
        assert_eq!(verdict(1.06, 1.2, 0.05), Verdict::Slower);
        assert_eq!(verdict(0.8, 0.94, 0.05), Verdict::Faster);
        assert_eq!(verdict(0.97, 1.04, 0.05), Verdict::Unchanged);
        assert_eq!(verdict(0.97, 1.2, 0.05), Verdict::Inconclusive);
    }
}
