//! The verdict for people: counts per invariant, the first findings with
//! their op ids, staleness and session measures.

use std::fmt::Write;

use crate::check::{Invariant, Verdict};

/// Findings shown per invariant in the text summary (all are in the JSON).
const SHOWN_PER_INVARIANT: usize = 3;

/// The summary as lines of text.
pub fn text(verdict: &Verdict) -> String {
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
            crate::Mode::Eventual => "eventual",
            crate::Mode::Strict => "strict",
        },
        if verdict.valid { "VALID" } else { "INVALID" }
    );
    for invariant in Invariant::ALL {
        let count = verdict.violations.get(&invariant).copied().unwrap_or(0);
        let note = match invariant {
            Invariant::StaleRead if verdict.mode == crate::Mode::Eventual => {
                format!(
                    "  (eventual mode: measured, {} stale reads)",
                    verdict.stale_reads_measured
                )
            }
            Invariant::LostWrite | Invariant::Divergence if counts.final_reads == 0 => {
                "  (no final reads: not judged)".to_string()
            }
            _ => String::new(),
        };
        let _ = writeln!(out, "  {:<18} {count:>8}{note}", invariant.name());
        for finding in verdict
            .findings
            .iter()
            .filter(|finding| finding.invariant == invariant)
            .take(SHOWN_PER_INVARIANT)
        {
            let _ = writeln!(
                out,
                "      key {:?} ops {:?}: {}",
                finding.key, finding.ops, finding.message
            );
        }
    }
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
