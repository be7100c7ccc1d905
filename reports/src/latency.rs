//! Latency per operation type: recording, percentiles, the table.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency recorded: one hour, in microseconds (larger values are
/// clamped to it and counted in `clamped`).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;

/// Significant digits kept by the histograms (0.1% resolution).
const SIGNIFICANT_DIGITS: u8 = 3;

fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts: this cannot fail.
    #[allow(clippy::unwrap_used)]
    Histogram::new_with_bounds(1, LATENCY_US_MAX, SIGNIFICANT_DIGITS).unwrap()
}

/// The two histograms of one operation type.
#[derive(Clone, Debug)]
pub struct Pair {
    /// From the intended start (µs).
    pub intended: Histogram<u64>,
    /// From the send (µs).
    pub service: Histogram<u64>,
    /// Operations that ended in an error (also recorded in the histograms:
    /// a timeout is latency too).
    pub errors: u64,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            intended: histogram(),
            service: histogram(),
            errors: 0,
        }
    }
}

/// Records latencies per operation type, per interval and in total.
#[derive(Debug, Default)]
pub struct LatencyRecorder {
    interval: BTreeMap<String, Pair>,
    total: BTreeMap<String, Pair>,
    /// Values above [`LATENCY_US_MAX`], clamped.
    pub clamped: u64,
}

impl LatencyRecorder {
    /// An empty recorder.
    pub fn new() -> LatencyRecorder {
        LatencyRecorder::default()
    }

    /// Records one operation of type `op`.
    pub fn record(&mut self, op: &str, intended_us: u64, service_us: u64, error: bool) {
        if !self.interval.contains_key(op) {
            self.interval.insert(op.to_string(), Pair::new());
        }
        let Some(pair) = self.interval.get_mut(op) else { return };
        for (histogram, value) in [(&mut pair.intended, intended_us), (&mut pair.service, service_us)] {
            let value = value.clamp(1, LATENCY_US_MAX);
            if value == LATENCY_US_MAX {
                self.clamped += 1;
            }
            histogram.saturating_record(value);
        }
        if error {
            pair.errors += 1;
        }
    }

    /// Ends the current interval: returns its histograms (per type) and
    /// adds them to the totals.
    pub fn rotate(&mut self) -> BTreeMap<String, Pair> {
        let interval = std::mem::take(&mut self.interval);
        for (op, pair) in &interval {
            let total = self.total.entry(op.clone()).or_insert_with(Pair::new);
            // Same bounds on both sides: adding cannot fail.
            let _ = total.intended.add(&pair.intended);
            let _ = total.service.add(&pair.service);
            total.errors += pair.errors;
        }
        interval
    }

    /// The totals so far (after the last [`LatencyRecorder::rotate`]).
    pub fn totals(&self) -> &BTreeMap<String, Pair> {
        &self.total
    }
}

/// One histogram summarised (milliseconds).
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Percentiles {
    /// Operations.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// 99.99th percentile.
    pub p9999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Percentiles {
    /// Summarises `histogram` (µs values).
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_percentile(50.0)),
            p90_ms: ms(histogram.value_at_percentile(90.0)),
            p99_ms: ms(histogram.value_at_percentile(99.0)),
            p999_ms: ms(histogram.value_at_percentile(99.9)),
            p9999_ms: ms(histogram.value_at_percentile(99.99)),
            max_ms: ms(histogram.max()),
            mean_ms: histogram.mean() / 1000.0,
        }
    }
}

/// The service-level objective: a percentile of intended-start latency at
/// or under a bound.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Sla {
    /// The percentile, e.g. 99.9.
    pub percentile: f64,
    /// The bound in milliseconds, e.g. 300.
    pub max_ms: f64,
}

impl Sla {
    /// The measured value at this SLA's percentile (ms).
    pub fn measured(&self, histogram: &Histogram<u64>) -> f64 {
        // By percentile, as the table's columns are: 99.9 / 100 in floating
        // point is not 0.999, and would land in another bucket.
        histogram.value_at_percentile(self.percentile) as f64 / 1000.0
    }

    /// True when `histogram` meets the objective (an empty one does).
    pub fn met(&self, histogram: &Histogram<u64>) -> bool {
        histogram.is_empty() || self.measured(histogram) <= self.max_ms
    }
}

/// One row of the table (as `summary.json` keeps it, and reads back).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Row {
    /// Operation type.
    pub op: String,
    /// Throughput over the measured period.
    pub ops_per_second: f64,
    /// Errors (timeouts, failures).
    pub errors: u64,
    /// Latency from the intended start.
    pub intended: Percentiles,
    /// Service time.
    pub service: Percentiles,
    /// Intended-start latency at the SLA's percentile.
    pub sla_measured_ms: f64,
    /// The SLA held for this type.
    pub sla_met: bool,
}

/// The rows for `totals` over `seconds` of measurement.
pub fn rows(totals: &BTreeMap<String, Pair>, seconds: f64, sla: &Sla) -> Vec<Row> {
    let mut all: Option<Pair> = None;
    let mut rows = Vec::new();
    for (op, pair) in totals {
        rows.push(row(op, pair, seconds, sla));
        match &mut all {
            None => all = Some(pair.clone()),
            Some(all) => {
                let _ = all.intended.add(&pair.intended);
                let _ = all.service.add(&pair.service);
                all.errors += pair.errors;
            }
        }
    }
    if let Some(all) = all {
        if rows.len() > 1 {
            rows.push(row("all", &all, seconds, sla));
        }
    }
    rows
}

fn row(op: &str, pair: &Pair, seconds: f64, sla: &Sla) -> Row {
    Row {
        op: op.to_string(),
        ops_per_second: if seconds > 0.0 {
            pair.intended.len() as f64 / seconds
        } else {
            0.0
        },
        errors: pair.errors,
        intended: Percentiles::of(&pair.intended),
        service: Percentiles::of(&pair.service),
        sla_measured_ms: sla.measured(&pair.intended),
        sla_met: sla.met(&pair.intended),
    }
}

/// The table: per type, intended-start latency then service time.
pub fn table(rows: &[Row], sla: &Sla) -> crate::table::Table {
    let sla_column = format!("SLA p{} ≤ {} ms", sla.percentile, sla.max_ms);
    let mut table = crate::table::Table::new([
        "op",
        "count",
        "ops/s",
        "errors",
        "latency",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        &sla_column,
    ]);
    for row in rows {
        for (index, (label, percentiles)) in [("intended", &row.intended), ("service", &row.service)]
            .into_iter()
            .enumerate()
        {
            let first = index == 0;
            let figures = [
                percentiles.p50_ms,
                percentiles.p90_ms,
                percentiles.p99_ms,
                percentiles.p999_ms,
                percentiles.p9999_ms,
                percentiles.max_ms,
            ]
            .map(|ms| format!("{ms:.2}"));
            let mut cells = vec![
                if first { row.op.clone() } else { String::new() },
                if first {
                    row.intended.count.to_string()
                } else {
                    String::new()
                },
                if first {
                    format!("{:.0}", row.ops_per_second)
                } else {
                    String::new()
                },
                if first { row.errors.to_string() } else { String::new() },
                label.to_string(),
            ];
            cells.extend(figures);
            cells.push(if first {
                format!(
                    "{:.2} {}",
                    row.sla_measured_ms,
                    if row.sla_met { "met" } else { "MISSED" }
                )
            } else {
                String::new()
            });
            table.row(cells);
        }
    }
    table
}

/// [`table`] for a terminal, with what the columns mean.
pub fn text(rows: &[Row], sla: &Sla) -> String {
    let mut out = table(rows, sla).text();
    out.push_str("(milliseconds; intended = from the scheduled start, service = from the send)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_the_sla_follow_what_was_recorded() {
        let mut recorder = LatencyRecorder::new();
        for value in 1..=1000u64 {
            recorder.record("get", value * 1000, value * 500, value > 998);
        }
        recorder.rotate();
        let sla = Sla {
            percentile: 99.9,
            max_ms: 500.0,
        };
        let rows = rows(recorder.totals(), 10.0, &sla);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.intended.count, 1000);
        assert_eq!(row.errors, 2);
        assert!((row.ops_per_second - 100.0).abs() < 1e-9);
        assert!((row.intended.p50_ms - 500.0).abs() < 1.0, "{row:?}");
        assert!((row.service.p50_ms - 250.0).abs() < 1.0, "{row:?}");
        assert!(!row.sla_met, "p99.9 is ~999 ms");
        let lenient = Sla {
            percentile: 50.0,
            max_ms: 600.0,
        };
        assert!(lenient.met(&recorder.totals()["get"].intended));
        assert!(text(&rows, &sla).contains("MISSED"));
    }
}
