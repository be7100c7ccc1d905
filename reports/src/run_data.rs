//! What a run directory holds, read back for the report: the summary and
//! the checker's verdict (JSON), the interval logs (per operation type and
//! second: intended and service latency), and from the history the
//! outcomes per second and the fault windows.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

/// Why a run directory could not be read.
#[derive(Debug)]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong (with the line, where there is one).
    pub reason: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for ReadError {}

fn error(path: &Path, reason: impl Into<String>) -> ReadError {
    ReadError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// One second (one interval) of one operation type and tag.
#[derive(Clone, Debug, PartialEq)]
pub struct IntervalPoint {
    /// Seconds from the log's start to the interval's start.
    pub at_s: f64,
    /// Operations recorded.
    pub count: u64,
    /// Milliseconds.
    pub p50_ms: f64,
    /// Milliseconds.
    pub p99_ms: f64,
    /// Milliseconds.
    pub p999_ms: f64,
    /// Milliseconds.
    pub max_ms: f64,
}

/// One operation type's latency: per interval, and the whole run.
#[derive(Debug)]
pub struct OpLatency {
    /// From the intended start, per interval.
    pub intended: Vec<IntervalPoint>,
    /// The intended-start histograms themselves, per interval (start
    /// second, values), for comparisons.
    pub intended_intervals: Vec<(f64, crate::compare::Interval)>,
    /// From the send, per interval.
    pub service: Vec<IntervalPoint>,
    /// Every interval of the run together, intended.
    pub intended_total: Histogram<u64>,
    /// Every interval of the run together, service.
    pub service_total: Histogram<u64>,
}

/// A fault as the history recorded it: from its start to its end (a
/// fault with no end lasts to the end of the history).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultWindow {
    /// Its kind (`kill`, `partition`, `join`, ...).
    pub kind: String,
    /// Its targets, as written.
    pub targets: String,
    /// Seconds from the history's start.
    pub start_s: f64,
    /// Seconds from the history's start.
    pub end_s: f64,
    /// What was done, as the start event said.
    pub detail: String,
    /// How it ended, as the end event said.
    pub end_detail: String,
}

/// Completions per second of the history.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcomes {
    /// `ok` per second (index: second from the history's start).
    pub ok: Vec<u64>,
    /// `fail` per second.
    pub fail: Vec<u64>,
    /// `info` (indeterminate) per second.
    pub info: Vec<u64>,
}

/// A run directory, read.
#[derive(Debug)]
pub struct RunData {
    /// The directory.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: serde_json::Value,
    /// `check.json`, when the history was checked.
    pub check: Option<serde_json::Value>,
    /// Per operation type.
    pub latency: BTreeMap<String, OpLatency>,
    /// From `history.jsonl`.
    pub outcomes: Outcomes,
    /// From `history.jsonl`.
    pub faults: Vec<FaultWindow>,
    /// Seconds the history spans.
    pub history_s: f64,
}

fn read_json(path: &Path) -> Result<serde_json::Value, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|io| error(path, io.to_string()))?;
    serde_json::from_str(&text).map_err(|json| error(path, format!("not JSON: {json}")))
}

/// Reads one interval log: its intervals by tag, microseconds.
pub(crate) fn read_hlog(path: &Path) -> Result<OpLatency, ReadError> {
    let bytes = std::fs::read(path).map_err(|io| error(path, io.to_string()))?;
    let mut deserializer = Deserializer::new();
    let fresh = || Histogram::<u64>::new(3).map_err(|creation| error(path, creation.to_string()));
    let mut latency = OpLatency {
        intended: Vec::new(),
        intended_intervals: Vec::new(),
        service: Vec::new(),
        intended_total: fresh()?,
        service_total: fresh()?,
    };
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|parse| error(path, format!("not an interval log: {parse:?}")))?;
        let LogEntry::Interval(interval) = entry else {
            continue;
        };
        let encoded = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|decode| error(path, format!("an interval's histogram: {decode}")))?;
        let histogram: Histogram<u64> = deserializer
            .deserialize(&mut std::io::Cursor::new(encoded))
            .map_err(|decode| error(path, format!("an interval's histogram: {decode:?}")))?;
        let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        let point = IntervalPoint {
            at_s: interval.start_timestamp().as_secs_f64(),
            count: histogram.len(),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: histogram.max() as f64 / 1000.0,
        };
        let service = interval.tag().is_some_and(|tag| tag.as_str() == "service");
        if !service {
            latency
                .intended_intervals
                .push((point.at_s, crate::compare::sparse(&histogram)));
        }
        let (points, total) = if service {
            (&mut latency.service, &mut latency.service_total)
        } else {
            (&mut latency.intended, &mut latency.intended_total)
        };
        total
            .add(&histogram)
            .map_err(|add| error(path, format!("adding an interval: {add:?}")))?;
        if point.count > 0 {
            points.push(point);
        }
    }
    Ok(latency)
}

/// Reads the outcomes per second and the fault windows of a history.
fn read_history(path: &Path) -> Result<(Outcomes, Vec<FaultWindow>, f64), ReadError> {
    let file = std::fs::File::open(path).map_err(|io| error(path, io.to_string()))?;
    let mut outcomes = Outcomes::default();
    let mut open: BTreeMap<(String, String), FaultWindow> = BTreeMap::new();
    let mut faults = Vec::new();
    let mut last_s = 0.0f64;
    // The final reads (invokes marked `final`) come after the load: left
    // out of throughput, which is the load's.
    let mut finals: std::collections::HashSet<u64> = std::collections::HashSet::new();
    for (index, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|io| error(path, format!("line {}: {io}", index + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: serde_json::Value =
            serde_json::from_str(&line).map_err(|json| error(path, format!("line {}: {json}", index + 1)))?;
        let seconds = event["time_ns"].as_u64().unwrap_or(0) as f64 / 1e9;
        last_s = last_s.max(seconds);
        let second = seconds as usize;
        let bump = |counts: &mut Vec<u64>| {
            if counts.len() <= second {
                counts.resize(second + 1, 0);
            }
            counts[second] += 1;
        };
        let op = event["op"].as_u64();
        match event["type"].as_str().unwrap_or("") {
            "invoke" if event["final"].as_bool() == Some(true) => finals.extend(op),
            "invoke" => {}
            _ if op.is_some_and(|op| finals.contains(&op)) => {}
            "ok" => bump(&mut outcomes.ok),
            "fail" => bump(&mut outcomes.fail),
            "info" => bump(&mut outcomes.info),
            "fault" => {
                let kind = event["fault"].as_str().unwrap_or("?").to_string();
                let targets = event["targets"]
                    .as_array()
                    .map(|targets| {
                        targets
                            .iter()
                            .filter_map(|target| target.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                let detail = event["detail"].as_str().unwrap_or("").to_string();
                let key = (kind.clone(), targets.clone());
                if event["phase"].as_str() == Some("end") {
                    if let Some(mut window) = open.remove(&key) {
                        window.end_s = seconds;
                        window.end_detail = detail;
                        faults.push(window);
                    }
                } else {
                    open.insert(
                        key,
                        FaultWindow {
                            kind,
                            targets,
                            start_s: seconds,
                            end_s: seconds,
                            detail,
                            end_detail: String::new(),
                        },
                    );
                }
            }
            _ => {}
        }
    }
    for (_, mut window) in open {
        window.end_s = last_s;
        faults.push(window);
    }
    faults.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let len = outcomes.ok.len().max(outcomes.fail.len()).max(outcomes.info.len());
    for counts in [&mut outcomes.ok, &mut outcomes.fail, &mut outcomes.info] {
        counts.resize(len, 0);
    }
    Ok((outcomes, faults, last_s))
}

impl RunData {
    /// Reads the run directory `dir`.
    ///
    /// # Errors
    /// A file missing or not what `dynamo-bench run` writes, named.
    pub fn read(dir: &Path) -> Result<RunData, ReadError> {
        let summary = read_json(&dir.join("summary.json"))?;
        let check_path = dir.join("check.json");
        let check = if check_path.exists() {
            Some(read_json(&check_path)?)
        } else {
            None
        };
        let mut latency = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|io| error(dir, io.to_string()))?;
        let mut logs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("latency-") && name.ends_with(".hlog"))
            })
            .collect();
        logs.sort();
        for log in logs {
            let name = log.file_name().and_then(|name| name.to_str()).unwrap_or("");
            let op = name
                .trim_start_matches("latency-")
                .trim_end_matches(".hlog")
                .to_string();
            latency.insert(op, read_hlog(&log)?);
        }
        // A baseline keeps no history (it is large and compare needs none).
        let history = dir.join("history.jsonl");
        let (outcomes, faults, history_s) = if history.exists() {
            read_history(&history)?
        } else {
            (Outcomes::default(), Vec::new(), 0.0)
        };
        Ok(RunData {
            dir: dir.to_path_buf(),
            summary,
            check,
            latency,
            outcomes,
            faults,
            history_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_run_directory_names_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("dynamo-run-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let error = RunData::read(&dir).unwrap_err().to_string();
        assert!(error.contains("summary.json"), "{error}");
        std::fs::write(dir.join("summary.json"), "{").unwrap();
        let error = RunData::read(&dir).unwrap_err().to_string();
        assert!(error.contains("summary.json: not JSON"), "{error}");
        std::fs::write(dir.join("summary.json"), "{}").unwrap();
        std::fs::write(dir.join("latency-get.hlog"), "#[StartTime: 1 (x)]\nnot an interval\n").unwrap();
        let error = RunData::read(&dir).unwrap_err().to_string();
        assert!(error.contains("latency-get.hlog"), "{error}");
        std::fs::remove_file(dir.join("latency-get.hlog")).unwrap();
        std::fs::write(
            dir.join("history.jsonl"),
            "{\"type\":\"ok\",\"process\":0,\"op\":0,\"time_ns\":1}\nnot json\n",
        )
        .unwrap();
        let error = RunData::read(&dir).unwrap_err().to_string();
        assert!(error.contains("history.jsonl: line 2"), "{error}");
        // No history at all (a baseline): no outcomes, no faults.
        std::fs::remove_file(dir.join("history.jsonl")).unwrap();
        let data = RunData::read(&dir).unwrap();
        assert!(data.outcomes.ok.is_empty() && data.faults.is_empty());
        // Faults pair up by kind and targets; one never ended lasts to the end.
        std::fs::write(
            dir.join("history.jsonl"),
            concat!(
                "{\"type\":\"fault\",\"fault\":\"kill\",\"phase\":\"start\",\"targets\":[\"n2\"],\"time_ns\":1000000000}\n",
                "{\"type\":\"ok\",\"process\":0,\"op\":0,\"time_ns\":1500000000}\n",
                "{\"type\":\"fault\",\"fault\":\"kill\",\"phase\":\"end\",\"targets\":[\"n2\"],\"time_ns\":2000000000}\n",
                "{\"type\":\"fault\",\"fault\":\"pause\",\"phase\":\"start\",\"targets\":[\"n3\"],\"time_ns\":2500000000}\n",
                "{\"type\":\"info\",\"process\":0,\"op\":1,\"time_ns\":3000000000}\n",
            ),
        )
        .unwrap();
        let data = RunData::read(&dir).unwrap();
        assert_eq!(data.faults.len(), 2);
        assert_eq!((data.faults[0].start_s, data.faults[0].end_s), (1.0, 2.0));
        assert_eq!((data.faults[1].kind.as_str(), data.faults[1].end_s), ("pause", 3.0));
        assert_eq!(data.outcomes.ok, vec![0, 1, 0, 0]);
        assert_eq!(data.outcomes.info, vec![0, 0, 0, 1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
