//! What the checker answers: the mode it judges in, the invariants of
//! HISTORY.md, each finding, the staleness and session measures, and the
//! verdict as `check.json` holds it.

use std::collections::BTreeMap;

use serde::Serialize;

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
    pub(crate) fn of(mut samples: Vec<f64>) -> Distribution {
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
    /// Every get by its k-staleness: `[k, gets]`, ascending k (k = 0: the
    /// gets that saw every acknowledged write).
    pub k_histogram: Vec<(u64, u64)>,
    /// Stale gets by t-visibility: `[upper bound ms, gets]`, buckets ten
    /// to a decade from 0.01 ms (a get falls in the first bucket whose
    /// bound is at least its t-visibility); empty buckets left out.
    pub t_visibility_histogram_ms: Vec<(f64, u64)>,
    /// Gets by the second of the history they were invoked in (`time_ns`
    /// / 10^9): `[second, gets, stale gets]`, ascending, seconds without
    /// a judged get left out. A soak bins them into its windows.
    #[serde(default)]
    pub by_second: Vec<(u64, u64, u64)>,
}

/// Upper bound (ms) of t-visibility bucket `index`: ten to a decade from
/// 0.01 ms.
pub(crate) fn t_visibility_bound_ms(index: u32) -> f64 {
    0.01 * 10f64.powf(f64::from(index) / 10.0)
}

/// The bucket of a t-visibility (ms).
pub(crate) fn t_visibility_bucket(ms: f64) -> u32 {
    if ms <= 0.01 {
        return 0;
    }
    let mut index = ((ms / 0.01).log10() * 10.0).ceil().max(0.0) as u32;
    // Rounding at a bound: the first bucket whose bound holds it.
    while index > 0 && t_visibility_bound_ms(index - 1) >= ms {
        index -= 1;
    }
    while t_visibility_bound_ms(index) < ms {
        index += 1;
    }
    index
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
    /// Fault events (`start` and `end`), which decide nothing.
    pub fault_events: u64,
    /// Faults started, by kind.
    pub faults: std::collections::BTreeMap<String, u64>,
    /// Keys retired (HISTORY.md, "Key retirement").
    pub retired_keys: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_t_visibility_falls_in_the_first_bucket_whose_bound_holds_it() {
        assert_eq!(t_visibility_bucket(0.0), 0);
        assert_eq!(t_visibility_bucket(0.01), 0);
        assert_eq!(t_visibility_bucket(0.0101), 1);
        // 1 ms is bucket 20's bound exactly (0.01 · 10^2).
        assert_eq!(t_visibility_bucket(1.0), 20);
        assert_eq!(t_visibility_bucket(1.0001), 21);
        for ms in [0.02, 0.5, 3.3, 47.0, 1234.5, 98765.0] {
            let bucket = t_visibility_bucket(ms);
            assert!(t_visibility_bound_ms(bucket) >= ms, "{ms}");
            assert!(t_visibility_bound_ms(bucket - 1) < ms, "{ms}");
        }
    }
}
