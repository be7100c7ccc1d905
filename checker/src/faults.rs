//! What the faults did to availability: the history's fault events paired
//! into windows, and the outcomes of the operations invoked inside them
//! against those invoked outside. Reported, never judged: under faults a
//! failed operation is availability, not a violation (shared/HISTORY.md).

use crate::history::{History, Outcome};
use serde::Serialize;

/// One fault from its `start` event to its `end` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultWindow {
    /// `kill`, `pause`, ...
    pub fault: String,
    /// The nodes it acted on.
    pub targets: Vec<String>,
    /// `time_ns` of the start event.
    pub start_ns: u64,
    /// `time_ns` of the end event; `None` when the history has no end for it.
    pub end_ns: Option<u64>,
    /// How it was done and how it was healed, as recorded.
    pub detail: Vec<String>,
}

/// Outcomes of the operations invoked in a stretch of time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Outcomes {
    /// Completed `ok`.
    pub ok: u64,
    /// Completed `fail`: certainly not applied.
    pub fail: u64,
    /// `info` or never completed: indeterminate.
    pub info: u64,
}

impl Outcomes {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ok => self.ok += 1,
            Outcome::Fail => self.fail += 1,
            Outcome::Info | Outcome::Open => self.info += 1,
        }
    }

    /// Operations counted.
    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.info
    }

    /// The share that completed `ok`; `None` when there were none.
    pub fn ok_share(&self) -> Option<f64> {
        (self.total() > 0).then(|| self.ok as f64 / self.total() as f64)
    }
}

/// The faults of a history and their effect on availability.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FaultReport {
    /// The windows, in start order.
    pub windows: Vec<FaultWindow>,
    /// Outcomes of the (non-final) operations invoked while any fault held.
    pub during: Outcomes,
    /// Outcomes of the (non-final) operations invoked while none held.
    pub outside: Outcomes,
}

/// Pairs each `start` with the next `end` of the same fault on the same
/// targets, and splits the operations' outcomes by whether they were
/// invoked inside a window. Final reads are left out: they run after every
/// fault is healed and would flatter the "outside" figure.
pub fn report(history: &History) -> FaultReport {
    let mut windows: Vec<FaultWindow> = Vec::new();
    for event in &history.faults {
        let open = windows
            .iter_mut()
            .find(|window| window.end_ns.is_none() && window.fault == event.fault && window.targets == event.targets);
        match (event.phase.as_str(), open) {
            ("end", Some(window)) => {
                window.end_ns = Some(event.time_ns);
                window.detail.extend(event.detail.clone());
            }
            // An end with nothing open is a history problem the reader
            // already reports; it makes no window.
            ("end", None) => {}
            _ => windows.push(FaultWindow {
                fault: event.fault.clone(),
                targets: event.targets.clone(),
                start_ns: event.time_ns,
                end_ns: None,
                detail: event.detail.iter().cloned().collect(),
            }),
        }
    }
    windows.sort_by_key(|window| window.start_ns);
    let mut report = FaultReport {
        windows,
        ..FaultReport::default()
    };
    for operation in history.operations.iter().filter(|operation| !operation.is_final) {
        let inside = report.windows.iter().any(|window| {
            operation.invoke_ns >= window.start_ns && window.end_ns.is_none_or(|end| operation.invoke_ns < end)
        });
        if inside {
            report.during.add(operation.outcome);
        } else {
            report.outside.add(operation.outcome);
        }
    }
    report
}

/// The faults for people, one line each (times are the history's
/// `time_ns`: for dynamo-bench, from the start of the run, warm-up
/// included), and the share of operations that succeeded inside and
/// outside them. Empty for a run without faults.
pub fn text(faults: &FaultReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if faults.windows.is_empty() {
        return out;
    }
    let seconds = |ns: u64| ns as f64 / 1e9;
    let _ = writeln!(out, "faults (seconds from the start of the history):");
    for window in &faults.windows {
        let span = match window.end_ns {
            Some(end) => format!(
                "{:7.1} to {:7.1} ({:.1} s)",
                seconds(window.start_ns),
                seconds(end),
                seconds(end.saturating_sub(window.start_ns))
            ),
            None => format!("{:7.1} to the end (never healed)", seconds(window.start_ns)),
        };
        let _ = writeln!(out, "  {span}  {} {}", window.fault, window.targets.join(","));
    }
    // Rounded down, so a run with failures never reads as 100% ok.
    let share = |outcomes: &Outcomes| match outcomes.ok_share() {
        Some(share) => format!(
            "{:.3}% ok of {} ({} fail, {} indeterminate)",
            (share * 100_000.0).floor() / 1000.0,
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
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(lines: &[String]) -> History {
        crate::history::read("test.jsonl", lines.join("\n").as_bytes()).expect("a well-formed history")
    }

    fn fault(phase: &str, target: &str, time_ns: u64) -> String {
        format!(
            r#"{{"type":"fault","fault":"kill","phase":"{phase}","targets":["{target}"],"detail":"{phase} {target}","time_ns":{time_ns}}}"#
        )
    }

    fn put(op: u64, time_ns: u64, outcome: &str) -> [String; 2] {
        [
            format!(
                r#"{{"type":"invoke","process":{op},"op":{op},"f":"put","key":"k","value":"v{op}","context":[],"time_ns":{time_ns}}}"#
            ),
            format!(
                r#"{{"type":"{outcome}","process":{op},"op":{op},"f":"put","time_ns":{}}}"#,
                time_ns + 1
            ),
        ]
    }

    #[test]
    fn operations_are_counted_by_whether_a_fault_held_when_they_were_invoked() {
        let mut lines = Vec::new();
        lines.extend(put(1, 10, "ok"));
        lines.push(fault("start", "n2", 100));
        lines.extend(put(2, 150, "fail"));
        lines.extend(put(3, 160, "ok"));
        lines.push(fault("end", "n2", 200));
        lines.extend(put(4, 250, "info"));
        lines.push(fault("start", "n3", 300));
        lines.extend(put(5, 350, "info"));
        let report = report(&history(&lines));
        assert_eq!(report.windows.len(), 2);
        assert_eq!(report.windows[0].targets, vec!["n2".to_string()]);
        assert_eq!((report.windows[0].start_ns, report.windows[0].end_ns), (100, Some(200)));
        assert_eq!(
            report.windows[0].detail,
            vec!["start n2".to_string(), "end n2".to_string()]
        );
        assert_eq!(report.windows[1].end_ns, None, "a fault never ended holds to the end");
        assert_eq!(
            report.during,
            Outcomes {
                ok: 1,
                fail: 1,
                info: 1
            }
        );
        assert_eq!(
            report.outside,
            Outcomes {
                ok: 1,
                fail: 0,
                info: 1
            }
        );
        assert_eq!(report.during.ok_share(), Some(1.0 / 3.0));
    }

    #[test]
    fn an_end_pairs_with_the_start_of_the_same_fault_on_the_same_nodes() {
        let lines = vec![
            fault("start", "n1", 10),
            fault("start", "n2", 20),
            fault("end", "n1", 30),
            fault("end", "n2", 40),
        ];
        let report = report(&history(&lines));
        let spans: Vec<(u64, Option<u64>)> = report.windows.iter().map(|w| (w.start_ns, w.end_ns)).collect();
        assert_eq!(spans, vec![(10, Some(30)), (20, Some(40))]);
    }

    #[test]
    fn the_fault_timeline_names_each_fault_and_availability_inside_and_outside() {
        assert_eq!(
            text(&FaultReport::default()),
            "",
            "a run without faults prints no timeline"
        );
        let window = |fault: &str, target: &str, start_ns, end_ns| FaultWindow {
            fault: fault.to_string(),
            targets: vec![target.to_string()],
            start_ns,
            end_ns,
            detail: Vec::new(),
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
        };
        let text = text(&report);
        assert!(text.contains("    4.0 to     8.5 (4.5 s)  kill n2"), "{text}");
        assert!(text.contains("    9.0 to the end (never healed)  pause n1"), "{text}");
        assert!(
            text.contains("during faults 75.000% ok of 4 (1 fail, 0 indeterminate); outside them no operations"),
            "{text}"
        );
    }
}
