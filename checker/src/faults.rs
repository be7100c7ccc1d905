//! What the faults did: the history's fault events paired into windows;
//! for each window, each kind of fault and the time outside faults, the
//! outcomes and latency of the operations invoked then; and after each
//! heal, the time until throughput and p99 are back to their level before
//! the fault. Reported, never judged: under faults a failed operation is
//! availability, not a violation (shared/HISTORY.md).
//!
//! Latency here is the history's own: from an operation's `invoke` to its
//! completion, for operations that completed `ok`.
//!
//! Recovery: the baseline is the fault-free stretch just before the fault
//! (up to [`BASELINE_NS`], at least [`BUCKET_NS`]), cut into [`BUCKET_NS`]
//! buckets counted back from the fault's start: the median over those
//! buckets of their `ok` completions per second and of the p99 latency of
//! the operations completed in each (a median, so that the burst of a
//! backlog served after an earlier fault does not set the bar). After
//! the heal, time is cut into [`BUCKET_NS`] buckets; the fault has
//! recovered at the end of the first bucket whose throughput is at least
//! [`RECOVERED_THROUGHPUT`] of the baseline's and whose p99 is at most
//! [`RECOVERED_P99_FACTOR`] × the baseline's plus [`RECOVERED_P99_SLACK_NS`]
//! (one-second figures are noisy; the tolerances say how close is back).

use crate::history::{History, Operation, Outcome};
use serde::Serialize;

/// One fault from its `start` event to its `end` event.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// Outcomes of the operations invoked while it held.
    pub outcomes: Outcomes,
    /// Their latency (`ok` ones).
    pub latency: Option<Latency>,
    /// How long after its heal the cluster was back to its level before.
    pub recovery: Recovery,
}

/// Latency percentiles, milliseconds, of `ok` operations.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Operations measured.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// The largest.
    pub max_ms: f64,
}

impl Latency {
    /// Of latencies in nanoseconds (sorted here); `None` for none.
    pub fn of(mut nanos: Vec<u64>) -> Option<Latency> {
        if nanos.is_empty() {
            return None;
        }
        nanos.sort_unstable();
        let at = |quantile: f64| nanos[((nanos.len() - 1) as f64 * quantile).ceil() as usize] as f64 / 1e6;
        Some(Latency {
            count: nanos.len() as u64,
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
        })
    }
}

/// The level recovery is judged against (and a bucket's level).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Baseline {
    /// `ok` completions per second before the fault.
    pub ops_per_second: f64,
    /// p99 latency of the operations completed then, ms.
    pub p99_ms: f64,
}

/// Whether and when a fault's heal was followed by the cluster's return to
/// its level before the fault.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Recovery {
    /// Back this long after the heal (the end of the first good bucket).
    Recovered {
        /// Milliseconds from the heal.
        after_ms: u64,
        /// What "back" was judged against.
        baseline: Baseline,
    },
    /// Not back before the next fault started or the history ended.
    NotBack {
        /// Milliseconds watched after the heal.
        watched_ms: u64,
        /// What "back" was judged against.
        baseline: Baseline,
    },
    /// No fault-free second before the fault to compare with.
    NoBaseline,
    /// Less than a second between the heal and the next fault or the end.
    NotWatched,
    /// The fault was never healed.
    NeverHealed,
}

/// The figures of every window of one kind of fault together.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindFigures {
    /// The kind (`kill`, `partition`, ...).
    pub fault: String,
    /// Its windows.
    pub windows: u64,
    /// Outcomes of the operations invoked while one held.
    pub outcomes: Outcomes,
    /// Their latency.
    pub latency: Option<Latency>,
    /// The median time to recover after its heals, ms (recovered ones).
    pub recovery_p50_ms: Option<u64>,
    /// The longest, ms.
    pub recovery_max_ms: Option<u64>,
    /// Heals after which the cluster was not back before the next fault or
    /// the end.
    pub not_back: u64,
}

/// The stretch before a fault that makes its baseline, at most.
pub const BASELINE_NS: u64 = 5_000_000_000;
/// The bucket recovery is judged in (and the shortest baseline).
pub const BUCKET_NS: u64 = 1_000_000_000;
/// Throughput back: at least this share of the baseline's.
pub const RECOVERED_THROUGHPUT: f64 = 0.9;
/// p99 back: at most this factor of the baseline's ...
pub const RECOVERED_P99_FACTOR: f64 = 1.5;
/// ... plus this.
pub const RECOVERED_P99_SLACK_NS: u64 = 1_000_000;

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
    /// Each kind's windows together, by name.
    pub by_kind: Vec<KindFigures>,
    /// Latency of the operations invoked while no fault held.
    pub outside_latency: Option<Latency>,
}

/// Pairs each `start` with the next `end` of the same fault on the same
/// targets, and splits the operations' outcomes and latency by whether they
/// were invoked inside a window, window by window and kind by kind. Final
/// reads are left out: they run after every fault is healed and would
/// flatter the "outside" figures.
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
                outcomes: Outcomes::default(),
                latency: None,
                recovery: Recovery::NeverHealed,
            }),
        }
    }
    windows.sort_by_key(|window| window.start_ns);
    // Two timelines, each sorted once: every figure below is a range of
    // one of them (a binary search), not a pass over the history.
    let mut invoked: Vec<&Operation> = history
        .operations
        .iter()
        .filter(|operation| !operation.is_final)
        .collect();
    invoked.sort_by_key(|operation| operation.invoke_ns);
    let mut completed: Vec<(u64, u64)> = invoked
        .iter()
        .filter(|operation| operation.outcome == Outcome::Ok)
        .map(|operation| (operation.complete_ns, latency_ns(operation)))
        .collect();
    completed.sort_unstable();
    let history_end = invoked.iter().map(|operation| operation.complete_ns).max().unwrap_or(0);
    let timeline = Timeline { invoked, completed };
    let mut report = FaultReport::default();
    let during = disjoint(windows.iter());
    let (inside, outside) = timeline.split(&during);
    report.during = inside.outcomes;
    report.outside = outside.outcomes;
    report.outside_latency = Latency::of(outside.latencies);
    for index in 0..windows.len() {
        let figures = timeline.within(&disjoint(std::iter::once(&windows[index])));
        let recovery = recovery(&windows, index, &timeline, history_end);
        let window = &mut windows[index];
        window.outcomes = figures.outcomes;
        window.latency = Latency::of(figures.latencies);
        window.recovery = recovery;
    }
    let mut kinds: Vec<String> = windows.iter().map(|window| window.fault.clone()).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let of_kind: Vec<&FaultWindow> = windows.iter().filter(|window| window.fault == kind).collect();
        let figures = timeline.within(&disjoint(of_kind.iter().copied()));
        let mut recovered: Vec<u64> = of_kind
            .iter()
            .filter_map(|window| match window.recovery {
                Recovery::Recovered { after_ms, .. } => Some(after_ms),
                _ => None,
            })
            .collect();
        recovered.sort_unstable();
        report.by_kind.push(KindFigures {
            fault: kind,
            windows: of_kind.len() as u64,
            outcomes: figures.outcomes,
            latency: Latency::of(figures.latencies),
            recovery_p50_ms: recovered.get(recovered.len().saturating_sub(1) / 2).copied(),
            recovery_max_ms: recovered.last().copied(),
            not_back: of_kind
                .iter()
                .filter(|window| matches!(window.recovery, Recovery::NotBack { .. }))
                .count() as u64,
        });
    }
    report.windows = windows;
    report
}

/// The latency of an operation, invoke to completion.
fn latency_ns(operation: &Operation) -> u64 {
    operation.complete_ns.saturating_sub(operation.invoke_ns)
}

/// Outcomes and `ok` latencies of some operations.
#[derive(Default)]
struct Figures {
    outcomes: Outcomes,
    latencies: Vec<u64>,
}

impl Figures {
    fn add(&mut self, operation: &Operation) {
        self.outcomes.add(operation.outcome);
        if operation.outcome == Outcome::Ok {
            self.latencies.push(latency_ns(operation));
        }
    }
}

/// The non-final operations by invoke time, and the `ok` ones' (completion
/// time, latency) by completion time.
struct Timeline<'a> {
    invoked: Vec<&'a Operation>,
    completed: Vec<(u64, u64)>,
}

impl Timeline<'_> {
    /// The operations invoked in `[start, end)`.
    fn invoked_in(&self, start: u64, end: u64) -> &[&Operation] {
        let from = self.invoked.partition_point(|operation| operation.invoke_ns < start);
        let to = self.invoked.partition_point(|operation| operation.invoke_ns < end);
        &self.invoked[from..to.max(from)]
    }

    /// The figures of the operations invoked within `spans` (disjoint,
    /// sorted).
    fn within(&self, spans: &[(u64, u64)]) -> Figures {
        let mut figures = Figures::default();
        for &(start, end) in spans {
            self.invoked_in(start, end)
                .iter()
                .for_each(|operation| figures.add(operation));
        }
        figures
    }

    /// The figures inside `spans` (disjoint, sorted) and outside them.
    fn split(&self, spans: &[(u64, u64)]) -> (Figures, Figures) {
        let mut outside = Figures::default();
        let mut at = 0;
        for &(start, end) in spans {
            self.invoked_in(at, start)
                .iter()
                .for_each(|operation| outside.add(operation));
            at = end;
        }
        self.invoked_in(at, u64::MAX)
            .iter()
            .for_each(|operation| outside.add(operation));
        (self.within(spans), outside)
    }

    /// `ok` completions per second and p99 of the operations completed in
    /// `[from, to)`.
    fn level(&self, from: u64, to: u64) -> Baseline {
        let first = self.completed.partition_point(|&(complete, _)| complete < from);
        let last = self.completed.partition_point(|&(complete, _)| complete < to);
        let latencies: Vec<u64> = self.completed[first..last.max(first)]
            .iter()
            .map(|&(_, latency)| latency)
            .collect();
        Baseline {
            ops_per_second: latencies.len() as f64 / ((to - from) as f64 / 1e9),
            p99_ms: Latency::of(latencies).map_or(0.0, |latency| latency.p99_ms),
        }
    }
}

/// The time the `windows` held, as disjoint sorted `[start, end)` spans
/// (a window never healed holds to the end).
fn disjoint<'a>(windows: impl Iterator<Item = &'a FaultWindow>) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = windows
        .map(|window| (window.start_ns, window.end_ns.unwrap_or(u64::MAX)))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// When window `index`'s heal was followed by throughput and p99 back at
/// their level before it (see the module doc).
fn recovery(windows: &[FaultWindow], index: usize, timeline: &Timeline<'_>, history_end: u64) -> Recovery {
    let window = &windows[index];
    let Some(healed) = window.end_ns else {
        return Recovery::NeverHealed;
    };
    // The fault-free stretch just before it.
    let quiet_since = windows
        .iter()
        .filter(|other| other.start_ns < window.start_ns)
        .map(|other| other.end_ns.unwrap_or(u64::MAX))
        .chain(std::iter::once(window.start_ns.saturating_sub(BASELINE_NS)))
        .max()
        .unwrap_or(0);
    if quiet_since >= window.start_ns || window.start_ns - quiet_since < BUCKET_NS {
        return Recovery::NoBaseline;
    }
    let buckets: Vec<Baseline> = (1..=(window.start_ns - quiet_since) / BUCKET_NS)
        .map(|back| {
            let from = window.start_ns - back * BUCKET_NS;
            timeline.level(from, from + BUCKET_NS)
        })
        .collect();
    let median = |figure: fn(&Baseline) -> f64| {
        let mut values: Vec<f64> = buckets.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        values[(values.len() - 1) / 2]
    };
    let baseline = Baseline {
        ops_per_second: median(|bucket| bucket.ops_per_second),
        p99_ms: median(|bucket| bucket.p99_ms),
    };
    if baseline.ops_per_second <= 0.0 {
        return Recovery::NoBaseline;
    }
    // Watched until the next fault starts or the history ends.
    let until = windows
        .iter()
        .map(|other| other.start_ns)
        .filter(|start| *start > healed)
        .min()
        .unwrap_or(history_end)
        .min(history_end);
    if until.saturating_sub(healed) < BUCKET_NS {
        return Recovery::NotWatched;
    }
    let p99_limit = baseline.p99_ms * RECOVERED_P99_FACTOR + RECOVERED_P99_SLACK_NS as f64 / 1e6;
    let mut from = healed;
    while from + BUCKET_NS <= until {
        let bucket = timeline.level(from, from + BUCKET_NS);
        if bucket.ops_per_second >= baseline.ops_per_second * RECOVERED_THROUGHPUT && bucket.p99_ms <= p99_limit {
            return Recovery::Recovered {
                after_ms: (from + BUCKET_NS - healed) / 1_000_000,
                baseline,
            };
        }
        from += BUCKET_NS;
    }
    Recovery::NotBack {
        watched_ms: until.saturating_sub(healed) / 1_000_000,
        baseline,
    }
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

    /// Puts completing every 10 ms from `from_ms` to `to_ms`, each taking
    /// `latency_ms`, ops numbered from `first`.
    fn steady(first: u64, from_ms: u64, to_ms: u64, latency_ms: u64) -> Vec<String> {
        (from_ms / 10..to_ms / 10)
            .enumerate()
            .flat_map(|(index, tick)| {
                let op = first + index as u64;
                let invoke = tick * 10_000_000;
                [
                    format!(
                        r#"{{"type":"invoke","process":{op},"op":{op},"f":"put","key":"k","value":"v{op}","context":[],"time_ns":{invoke}}}"#
                    ),
                    format!(
                        r#"{{"type":"ok","process":{op},"op":{op},"f":"put","time_ns":{}}}"#,
                        invoke + latency_ms * 1_000_000
                    ),
                ]
            })
            .collect()
    }

    fn sorted(mut lines: Vec<String>) -> Vec<String> {
        let time = |line: &String| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["time_ns"].as_u64().unwrap()
        };
        lines.sort_by_key(time);
        lines
    }

    #[test]
    fn recovery_is_the_first_second_after_heal_back_at_the_level_before() {
        // 100 ok/s at 2 ms for 5 s; a fault from 5 s to 6 s; after it,
        // 3 s at 50 ms latency (throughput held, p99 far above; the last
        // slow one completes before 9 s), then 2 ms again: back at the end
        // of the bucket 9 s to 10 s, 4 s after the heal.
        let mut lines = steady(1, 0, 6_000, 2);
        lines.extend(steady(10_000, 6_000, 8_950, 50));
        lines.extend(steady(20_000, 9_000, 14_000, 2));
        lines.push(fault("start", "n2", 5_000_000_000));
        lines.push(fault("end", "n2", 6_000_000_000));
        let found = report(&history(&sorted(lines.clone())));
        match found.windows[0].recovery {
            Recovery::Recovered { after_ms, baseline } => {
                assert_eq!(after_ms, 4_000);
                assert!((baseline.ops_per_second - 100.0).abs() < 1.0, "{baseline:?}");
                assert!((baseline.p99_ms - 2.0).abs() < 0.01, "{baseline:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(found.windows[0].outcomes.total(), 100);
        assert_eq!(found.by_kind[0].recovery_max_ms, Some(4_000));
        assert_eq!(found.by_kind[0].outcomes.total(), 100);

        // Never back: slow to the end.
        let mut slow = steady(1, 0, 6_000, 2);
        slow.extend(steady(10_000, 6_000, 9_000, 50));
        slow.push(fault("start", "n2", 5_000_000_000));
        slow.push(fault("end", "n2", 6_000_000_000));
        let found = report(&history(&sorted(slow)));
        assert!(
            matches!(found.windows[0].recovery, Recovery::NotBack { .. }),
            "{:?}",
            found.windows[0]
        );
        assert_eq!(found.by_kind[0].not_back, 1);

        // A fault at the very start has nothing to compare with.
        let mut early = steady(1, 0, 6_000, 2);
        early.push(fault("start", "n2", 500_000_000));
        early.push(fault("end", "n2", 1_000_000_000));
        let found = report(&history(&sorted(early)));
        assert_eq!(found.windows[0].recovery, Recovery::NoBaseline);
    }
}
