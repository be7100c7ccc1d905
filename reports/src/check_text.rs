//! The checker's verdict and fault report for people (what `check` and
//! `run` print): counts per invariant, the first findings with their op
//! ids, staleness and session measures; the fault timeline, availability
//! inside and outside faults, and figures by fault kind. The checker
//! decides; this only shows.

use std::fmt::Write;

use dynamo_checker::faults::{
    FaultReport, Latency, Outcomes, Recovery, BASELINE_NS, RECOVERED_P99_FACTOR, RECOVERED_P99_SLACK_NS,
    RECOVERED_THROUGHPUT,
};
use dynamo_checker::{Invariant, Mode, Verdict};

use crate::table::Table;

/// Findings shown per invariant in the text (all are in the JSON).
const SHOWN_PER_INVARIANT: usize = 3;

/// The verdict as text: the history's counts, a table of invariants with
/// their first findings, staleness and sessions.
pub fn verdict(verdict: &Verdict) -> String {
    let mut out = String::new();
    let counts = &verdict.counts;
    let _ = writeln!(
        out,
        "history: {} ops ({} gets, {} puts, {} deletes; {} ok, {} fail, {} info) over {} keys; {} final reads on {} keys",
        verdict.ops,
        counts.gets,
        counts.puts,
        counts.deletes,
        counts.ok,
        counts.fail,
        counts.info,
        counts.keys,
        counts.final_reads,
        counts.final_keys
    );
    if counts.fault_events > 0 {
        let kinds: Vec<String> = counts
            .faults
            .iter()
            .map(|(kind, count)| format!("{kind} {count}"))
            .collect();
        let _ = writeln!(
            out,
            "faults: {} ({} events; under faults a fail or info is availability, not a violation)",
            kinds.join(", "),
            counts.fault_events
        );
    }
    if counts.retired_keys > 0 {
        let _ = writeln!(
            out,
            "retired keys: {} (each judged from its final reads before its retirement)",
            counts.retired_keys
        );
    }
    let _ = writeln!(
        out,
        "verdict ({} mode): {}",
        match verdict.mode {
            Mode::Eventual => "eventual",
            Mode::Strict => "strict",
        },
        if verdict.valid { "VALID" } else { "INVALID" }
    );
    let mut table = Table::new(["invariant", "violations", "note / first findings (key, ops: what)"]);
    for invariant in Invariant::ALL {
        let count = verdict.violations.get(&invariant).copied().unwrap_or(0);
        let note = match invariant {
            Invariant::StaleRead if verdict.mode == Mode::Eventual => {
                format!("eventual mode: measured, {} stale reads", verdict.stale_reads_measured)
            }
            Invariant::LostWrite | Invariant::Divergence if counts.final_reads == 0 => {
                "no final reads: not judged".to_string()
            }
            _ => String::new(),
        };
        table.row([invariant.name().to_string(), count.to_string(), note]);
        for finding in verdict
            .findings
            .iter()
            .filter(|finding| finding.invariant == invariant)
            .take(SHOWN_PER_INVARIANT)
        {
            table.row([
                String::new(),
                String::new(),
                format!("key {:?} ops {:?}: {}", finding.key, finding.ops, finding.message),
            ]);
        }
    }
    out.push_str(&table.text());
    let staleness = &verdict.staleness;
    let _ = writeln!(
        out,
        "staleness: {} of {} gets saw every acknowledged write ({:.4}%); k-staleness p99 {} max {}; t-visibility p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        staleness.gets - staleness.stale_gets,
        staleness.gets,
        staleness.fresh_fraction * 100.0,
        staleness.k.p99,
        staleness.k.max,
        staleness.t_visibility_ms.p50,
        staleness.t_visibility_ms.p99,
        staleness.t_visibility_ms.max
    );
    let session = &verdict.session;
    let _ = writeln!(
        out,
        "sessions (not promised by Dynamo): {} monotonic-read misses, {} read-your-writes misses, over {} processes",
        session.monotonic_read_misses, session.read_your_writes_misses, session.processes_with_misses
    );
    out
}

/// Rounded down, so a run with failures never reads as 100% ok.
fn ok_percent(outcomes: &Outcomes) -> String {
    match outcomes.ok_share() {
        Some(share) => format!("{:.3}", (share * 100_000.0).floor() / 1000.0),
        None => "-".to_string(),
    }
}

fn recovery_text(recovery: &Recovery) -> String {
    match recovery {
        Recovery::Recovered { after_ms, baseline } => format!(
            "back {:.0} s after heal (baseline {:.0} ok/s, p99 {:.1} ms)",
            *after_ms as f64 / 1000.0,
            baseline.ops_per_second,
            baseline.p99_ms
        ),
        Recovery::NotBack { watched_ms, baseline } => format!(
            "NOT back within {:.1} s of heal (before the next fault or the end; baseline {:.0} ok/s, p99 {:.1} ms)",
            *watched_ms as f64 / 1000.0,
            baseline.ops_per_second,
            baseline.p99_ms
        ),
        Recovery::NoBaseline => "recovery not judged: no fault-free second before it".to_string(),
        Recovery::NotWatched => {
            "recovery not judged: less than a second between its heal and the next fault or the end".to_string()
        }
        Recovery::NeverHealed => "never healed".to_string(),
    }
}

/// p50, p99 and p99.9 in milliseconds, or dashes.
fn latency_cells(latency: &Option<Latency>) -> [String; 3] {
    match latency {
        Some(latency) => [latency.p50_ms, latency.p99_ms, latency.p999_ms].map(|ms| format!("{ms:.1}")),
        None => ["-", "-", "-"].map(String::from),
    }
}

/// The faults for people: the timeline (one row per fault with its
/// figures; times are the history's `time_ns`: for dynamo-bench, from the
/// start of the run, warm-up included); availability inside and outside
/// faults; a table by kind. Empty for a run without faults.
pub fn faults(faults: &FaultReport) -> String {
    let mut out = String::new();
    if faults.windows.is_empty() {
        return out;
    }
    let seconds = |ns: u64| ns as f64 / 1e9;
    let mut timeline = Table::new([
        "from s", "to s", "fault", "targets", "ops", "ok %", "p50 ms", "p99 ms", "p99.9 ms", "recovery",
    ]);
    for window in &faults.windows {
        let [p50, p99, p999] = latency_cells(&window.latency);
        timeline.row([
            format!("{:.1}", seconds(window.start_ns)),
            match window.end_ns {
                Some(end) => format!("{:.1}", seconds(end)),
                None => "the end".to_string(),
            },
            window.fault.clone(),
            window.targets.join(","),
            window.outcomes.total().to_string(),
            ok_percent(&window.outcomes),
            p50,
            p99,
            p999,
            recovery_text(&window.recovery),
        ]);
    }
    let _ = writeln!(out, "faults (seconds from the start of the history):");
    out.push_str(&timeline.text());
    let share = |outcomes: &Outcomes| match outcomes.ok_share() {
        Some(_) => format!(
            "{}% ok of {} ({} fail, {} indeterminate)",
            ok_percent(outcomes),
            outcomes.total(),
            outcomes.fail,
            outcomes.info
        ),
        None => "no operations".to_string(),
    };
    let _ = writeln!(
        out,
        "availability: during faults {}; outside them {}",
        share(&faults.during),
        share(&faults.outside)
    );
    let mut by_kind = Table::new([
        "by kind",
        "faults",
        "ops",
        "ok %",
        "fail",
        "indet",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "recovery p50 / max",
    ]);
    let mut row = |name: &str, count: String, outcomes: &Outcomes, latency: &Option<Latency>, recovery: String| {
        let [p50, p99, p999] = latency_cells(latency);
        by_kind.row([
            name.to_string(),
            count,
            outcomes.total().to_string(),
            ok_percent(outcomes),
            outcomes.fail.to_string(),
            outcomes.info.to_string(),
            p50,
            p99,
            p999,
            recovery,
        ]);
    };
    for kind in &faults.by_kind {
        let recovery = match (kind.recovery_p50_ms, kind.recovery_max_ms) {
            (Some(p50), Some(max)) => format!("{:.0} s / {:.0} s", p50 as f64 / 1e3, max as f64 / 1e3),
            _ => "-".to_string(),
        };
        let recovery = if kind.not_back > 0 {
            format!("{recovery}, {} not back", kind.not_back)
        } else {
            recovery
        };
        row(
            &kind.fault,
            kind.windows.to_string(),
            &kind.outcomes,
            &kind.latency,
            recovery,
        );
    }
    row(
        "outside faults",
        "-".into(),
        &faults.outside,
        &faults.outside_latency,
        String::new(),
    );
    out.push_str(&by_kind.text());
    let _ = writeln!(
        out,
        "(latency from invoke to ok completion; back = 1 s of >= {:.0}% of the ok/s and <= {}x the p99 (+{} ms) of the median second of the {} s before the fault)",
        RECOVERED_THROUGHPUT * 100.0,
        RECOVERED_P99_FACTOR,
        RECOVERED_P99_SLACK_NS / 1_000_000,
        BASELINE_NS / 1_000_000_000
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynamo_checker::faults::FaultWindow;

    #[test]
    fn the_fault_timeline_names_each_fault_and_availability_inside_and_outside() {
        assert_eq!(
            faults(&FaultReport::default()),
            "",
            "a run without faults prints no timeline"
        );
        let window = |fault: &str, target: &str, start_ns, end_ns| FaultWindow {
            fault: fault.to_string(),
            targets: vec![target.to_string()],
            start_ns,
            end_ns,
            detail: Vec::new(),
            outcomes: Outcomes::default(),
            latency: None,
            recovery: Recovery::NeverHealed,
        };
        let report = FaultReport {
            windows: vec![
                window("kill", "n2", 4_000_000_000, Some(8_500_000_000)),
                window("pause", "n1", 9_000_000_000, None),
            ],
            during: Outcomes {
                ok: 3,
                fail: 1,
                info: 0,
            },
            outside: Outcomes::default(),
            ..FaultReport::default()
        };
        let text = faults(&report);
        let row = |from: &str, to: &str, fault: &str| {
            text.lines().any(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                cells.len() > 3 && cells[0] == from && cells[1] == to && cells[2] == fault
            })
        };
        assert!(row("4.0", "8.5", "kill"), "{text}");
        assert!(row("9.0", "the end", "pause"), "{text}");
        assert!(text.contains("never healed"), "{text}");
        let recovered = FaultReport {
            windows: vec![FaultWindow {
                recovery: Recovery::Recovered {
                    after_ms: 4_000,
                    baseline: dynamo_checker::faults::Baseline {
                        ops_per_second: 100.0,
                        p99_ms: 2.0,
                    },
                },
                ..window("kill", "n2", 5_000_000_000, Some(6_000_000_000))
            }],
            ..FaultReport::default()
        };
        let shown = faults(&recovered);
        // (The recovery column may wrap at a word: each piece is there.)
        assert!(shown.contains("back 4 s after heal (baseline 100 ok/s,"), "{shown}");
        assert!(shown.contains("p99 2.0 ms)"), "{shown}");
        assert!(
            text.contains("during faults 75.000% ok of 4 (1 fail, 0 indeterminate); outside them no operations"),
            "{text}"
        );
    }
}
