//! A soak directory read back and `soak.html`: the windows over time
//! (each node's memory, descriptors, threads, data and keys; latency and
//! throughput per window from the generations' interval logs), the
//! faults as bands, the generations as a table, and the trend verdicts —
//! one self-contained page, as `report.html` is for a run.
//!
//! What it reads (written by `dynamo-bench soak`): `soak.json` (totals,
//! trends, leaks), `generations.jsonl` (one line a generation, with its
//! fault windows and gets by second on the soak's clock), `windows.jsonl`
//! (one line a node a window), `load.jsonl` (one line a window: operations,
//! errors, p99) and `generations/<n>/latency-<op>.hlog`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::html::{legend, line, page_start, plain, svg, LINE_COLOURS};
use crate::run_data::{read_hlog, ReadError};
use crate::table::{escape, Table};

fn error(path: &Path, reason: impl Into<String>) -> ReadError {
    ReadError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// One window of one operation type: latency and completions.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowLatency {
    /// Seconds from the soak's start to the window's middle.
    pub at_s: f64,
    /// Completions per second in the window (its recorded seconds).
    pub ops_per_second: f64,
    /// Milliseconds, from the intended start.
    pub p50_ms: f64,
    /// Milliseconds.
    pub p99_ms: f64,
    /// Milliseconds.
    pub p999_ms: f64,
}

/// A soak directory, read.
#[derive(Debug)]
pub struct SoakData {
    /// The directory.
    pub dir: PathBuf,
    /// `soak.json`.
    pub soak: serde_json::Value,
    /// `generations.jsonl`, one value a generation.
    pub generations: Vec<serde_json::Value>,
    /// `windows.jsonl`, one value a node a window.
    pub windows: Vec<serde_json::Value>,
    /// `load.jsonl`, one value a window (none from soaks before it).
    pub load: Vec<serde_json::Value>,
    /// Per operation type, per window.
    pub latency: BTreeMap<String, Vec<WindowLatency>>,
}

fn read_lines(path: &Path) -> Result<Vec<serde_json::Value>, ReadError> {
    let text = std::fs::read_to_string(path).map_err(|io| error(path, io.to_string()))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).map_err(|parse| error(path, format!("line {}: {parse}", index + 1)))
        })
        .collect()
}

/// Latency and throughput per window and operation type, from the
/// generations' interval logs (`generations` as `generations.jsonl` has
/// them: each one's number and start on the soak's clock).
///
/// # Errors
/// An interval log that cannot be read (named).
pub fn window_latency(
    dir: &Path,
    window_s: f64,
    generations: &[serde_json::Value],
) -> Result<BTreeMap<String, Vec<WindowLatency>>, ReadError> {
    // Per operation type and window: the intended-start histograms of
    // every second in it, merged, and how many seconds they were.
    let mut merged: BTreeMap<(String, u64), (Histogram<u64>, u64)> = BTreeMap::new();
    for generation in generations {
        let (Some(number), Some(start_s)) = (generation["generation"].as_u64(), generation["start_s"].as_f64()) else {
            continue;
        };
        let generation_dir = dir.join("generations").join(format!("{number:05}"));
        let Ok(entries) = std::fs::read_dir(&generation_dir) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let Some(op) = path
                .file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.strip_prefix("latency-"))
                .and_then(|name| name.strip_suffix(".hlog"))
                .map(str::to_string)
            else {
                continue;
            };
            for (at_s, interval) in read_hlog(&path)?.intended_intervals {
                let window = ((start_s + at_s) / window_s).floor().max(0.0) as u64;
                let (histogram, seconds) = merged.entry((op.clone(), window)).or_insert_with(|| {
                    (
                        Histogram::new(3).expect("3 significant figures is a valid precision"),
                        0,
                    )
                });
                for (value, count) in interval {
                    let _ = histogram.record_n(value, count);
                }
                *seconds += 1;
            }
        }
    }
    let mut latency: BTreeMap<String, Vec<WindowLatency>> = BTreeMap::new();
    for ((op, window), (histogram, seconds)) in merged {
        if histogram.is_empty() {
            continue;
        }
        let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        latency.entry(op).or_default().push(WindowLatency {
            at_s: (window as f64 + 0.5) * window_s,
            ops_per_second: histogram.len() as f64 / seconds.max(1) as f64,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
        });
    }
    Ok(latency)
}

impl SoakData {
    /// Reads a soak directory.
    ///
    /// # Errors
    /// A file missing or damaged: the error names it (and the line).
    pub fn read(dir: &Path) -> Result<SoakData, ReadError> {
        let soak_path = dir.join("soak.json");
        let generations = read_lines(&dir.join("generations.jsonl"))?;
        let optional = |name: &str| {
            let path = dir.join(name);
            if path.exists() {
                read_lines(&path)
            } else {
                Ok(Vec::new())
            }
        };
        let windows = optional("windows.jsonl")?;
        let load = optional("load.jsonl")?;
        let soak: serde_json::Value = if soak_path.exists() {
            serde_json::from_str(&std::fs::read_to_string(&soak_path).map_err(|io| error(&soak_path, io.to_string()))?)
                .map_err(|parse| error(&soak_path, parse.to_string()))?
        } else {
            unfinished(dir, &generations, &load)
        };
        let window_s = soak["window_s"].as_f64().filter(|window| *window > 0.0).unwrap_or(60.0);
        let latency = window_latency(dir, window_s, &generations)?;
        Ok(SoakData {
            dir: dir.to_path_buf(),
            soak,
            generations,
            windows,
            load,
            latency,
        })
    }

    /// Gets judged and stale gets per window (`window_s` seconds of the
    /// soak's clock, from 0): (the window's middle, gets, stale gets),
    /// from each generation's `staleness_by_second`.
    pub fn staleness_per_window(&self) -> Vec<(f64, u64, u64)> {
        let window_s = self.soak["window_s"]
            .as_f64()
            .filter(|window| *window > 0.0)
            .unwrap_or(60.0);
        let mut windows: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for generation in &self.generations {
            for second in generation["staleness_by_second"].as_array().into_iter().flatten() {
                let (Some(at), Some(gets), Some(stale)) = (second[0].as_f64(), second[1].as_u64(), second[2].as_u64())
                else {
                    continue;
                };
                let tally = windows.entry((at.max(0.0) / window_s) as u64).or_default();
                tally.0 += gets;
                tally.1 += stale;
            }
        }
        windows
            .into_iter()
            .map(|(index, (gets, stale))| ((index as f64 + 0.5) * window_s, gets, stale))
            .collect()
    }

    /// Every fault window, on the soak's clock (seconds): kind, start, end.
    fn faults(&self) -> Vec<(String, f64, f64)> {
        self.generations
            .iter()
            .flat_map(|generation| generation["fault_windows"].as_array().cloned().unwrap_or_default())
            .filter_map(|window| {
                let start = window["start_s"].as_f64()?;
                let end = window["end_s"].as_f64().unwrap_or(start);
                Some((window["fault"].as_str().unwrap_or("?").to_string(), start, end))
            })
            .collect()
    }

    /// The soak's length on its clock, seconds.
    fn span_s(&self) -> f64 {
        let generations = self
            .generations
            .iter()
            .filter_map(|generation| generation["end_s"].as_f64())
            .fold(1.0, f64::max);
        let windows = self
            .windows
            .iter()
            .filter_map(|window| window["at_s"].as_f64())
            .fold(1.0, f64::max);
        generations.max(windows)
    }

    /// One node figure's series, per node: (seconds, value).
    fn node_series(&self, value: impl Fn(&serde_json::Value) -> Option<f64>) -> BTreeMap<String, Vec<(f64, f64)>> {
        let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for window in &self.windows {
            if let (Some(node), Some(at), Some(value)) =
                (window["node"].as_str(), window["at_s"].as_f64(), value(window))
            {
                series.entry(node.to_string()).or_default().push((at, value));
            }
        }
        series
    }
}

/// Whether `dir` is a soak's directory: it has `soak.json`, or the
/// `generations.jsonl` of a soak that did not get to write it (killed).
pub fn is_soak(dir: &Path) -> bool {
    dir.join("soak.json").is_file() || dir.join("generations.jsonl").is_file()
}

/// What `soak.json` would say of a soak that stopped before writing it,
/// from its generations and load windows (no trends: they were never
/// judged).
fn unfinished(dir: &Path, generations: &[serde_json::Value], load: &[serde_json::Value]) -> serde_json::Value {
    let kept: u64 = std::fs::read_dir(dir.join("generations"))
        .into_iter()
        .flatten()
        .filter_map(|entry| std::fs::metadata(entry.ok()?.path().join("history.jsonl")).ok())
        .map(|metadata| metadata.len())
        .sum();
    let sum = |field: &str| -> u64 {
        generations
            .iter()
            .filter_map(|generation| generation[field].as_u64())
            .sum()
    };
    let findings: u64 = generations
        .iter()
        .filter_map(|generation| generation["violations"].as_object())
        .flat_map(|violations| violations.values().filter_map(serde_json::Value::as_u64))
        .sum();
    // The windows' length, from the load's (the first window is whole).
    let window_s = load
        .first()
        .and_then(|window| window["seconds"].as_f64())
        .unwrap_or(60.0);
    let generation_s = generations
        .first()
        .and_then(|generation| Some(generation["end_s"].as_f64()? - generation["start_s"].as_f64()?))
        .unwrap_or(0.0);
    serde_json::json!({
        "spec": { "name": "soak" },
        "unfinished": true,
        "window_s": window_s,
        "generation_s": generation_s,
        "windows": load.len(),
        "generations": generations.len(),
        "ops": sum("ops"),
        "findings": findings,
        "final_reads_failed": sum("final_reads_failed"),
        "faults": sum("faults"),
        "history_bytes_written": sum("history_bytes"),
        "history_bytes_kept": kept,
        "trends": [],
        "leaks": [],
    })
}

/// The trend verdicts as a table (the terminal's and the page's).
pub fn trend_table(trends: &[serde_json::Value]) -> Table {
    let mut table = Table::new([
        "series",
        "figure",
        "mean",
        "per hour",
        "95% interval",
        "points",
        "verdict",
    ]);
    for trend in trends {
        let figure = trend["figure"].as_str().unwrap_or("?");
        let counts = trend["counts"].as_bool().unwrap_or(true);
        // Bytes in MiB, latency in ms, counts as they are.
        let (unit, scale) = match figure {
            "rss_bytes" | "heap_bytes" | "data_dir_bytes" => (" MiB", 1024.0 * 1024.0),
            "p99_ms" => (" ms", 1.0),
            _ => ("", 1.0),
        };
        let value = |name: &str| trend[name].as_f64().unwrap_or(f64::NAN);
        let shown = |value: f64| format!("{:.2}", value / scale);
        let judged = !value("low").is_nan();
        table.row([
            trend["node"].as_str().unwrap_or("?").to_string(),
            figure.trim_end_matches("_bytes").trim_end_matches("_ms").to_string(),
            format!("{}{unit}", shown(value("mean"))),
            if judged {
                format!("{:+.2}{unit}", value("per_hour") / scale)
            } else {
                "-".to_string()
            },
            if judged {
                format!("[{}, {}]", shown(value("low")), shown(value("high")))
            } else {
                "-".to_string()
            },
            trend["windows"].as_u64().unwrap_or(0).to_string(),
            match (trend["verdict"].as_str().unwrap_or("?"), counts) {
                ("growing", true) => "GROWING".to_string(),
                ("growing", false) => match trend["explained_by"].as_str() {
                    Some("keys") => "growing with keys".to_string(),
                    Some("allocator") => "growing, heap flat".to_string(),
                    Some("under one unit") => "growing < 1 unit".to_string(),
                    _ => "growing".to_string(),
                },
                ("too_few_windows", _) => "too few points".to_string(),
                (verdict, _) => verdict.to_string(),
            },
        ]);
    }
    table
}

/// A figure of one node's window, from its `windows.jsonl` line.
type WindowFigure = fn(&serde_json::Value) -> Option<f64>;

const MIB: f64 = 1024.0 * 1024.0;

/// Minutes on the x axis.
fn minutes(seconds: f64) -> f64 {
    seconds / 60.0
}

/// Fault bands, generation boundaries, then the series and their legend.
fn decorate<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    y: (f64, f64),
    faults: &[(String, f64, f64)],
    boundaries: &[f64],
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), String> {
    chart
        .draw_series(faults.iter().map(|(_, start, end)| {
            Rectangle::new(
                [(minutes(*start), y.0), (minutes(end.max(start + 0.2)), y.1)],
                RGBColor(255, 214, 170).mix(0.5).filled(),
            )
        }))
        .map_err(|error| error.to_string())?;
    chart
        .draw_series(boundaries.iter().map(|at| {
            PathElement::new(
                vec![(minutes(*at), y.0), (minutes(*at), y.1)],
                BLACK.mix(0.25).stroke_width(1),
            )
        }))
        .map_err(|error| error.to_string())?;
    for (index, (name, points)) in series.iter().enumerate() {
        let colour = LINE_COLOURS[index % LINE_COLOURS.len()];
        line(
            chart,
            name,
            colour,
            points.iter().map(|(at, value)| (minutes(*at), value.max(y.0))),
        )?;
    }
    legend(chart, SeriesLabelPosition::UpperLeft)
}

/// A chart over the soak's time: one line per series, fault bands and
/// generation boundaries behind them.
fn over_time(data: &SoakData, title: &str, y_desc: &str, series: &[(String, Vec<(f64, f64)>)], log: bool) -> String {
    let points: Vec<f64> = series
        .iter()
        .flat_map(|(_, points)| points)
        .map(|(_, value)| *value)
        .collect();
    if points.is_empty() {
        return format!("<p>{}: no windows recorded.</p>", escape(title));
    }
    let x_max = minutes(data.span_s());
    let top = points.iter().copied().fold(f64::MIN, f64::max);
    let bottom = points.iter().copied().fold(f64::MAX, f64::min);
    let faults = data.faults();
    let boundaries: Vec<f64> = data
        .generations
        .iter()
        .filter_map(|generation| generation["start_s"].as_f64())
        .skip(1)
        .collect();
    svg(|root| {
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(70);
        if log {
            let y = ((bottom.max(1e-3) / 2.0), top.max(1e-3) * 3.0);
            let mut chart = builder
                .build_cartesian_2d(0f64..x_max, (y.0..y.1).log_scale())
                .map_err(|error| error.to_string())?;
            chart
                .configure_mesh()
                .x_desc("minutes from the start of the soak (shaded: faults; grey lines: generations)")
                .y_desc(y_desc)
                .y_label_formatter(&|value| format!("{value}"))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|error| error.to_string())?;
            decorate(&mut chart, y, &faults, &boundaries, series)
        } else {
            // Room above for the legend; from zero, so a level line looks level.
            let y = (0.0, (top * 1.25).max(1.0));
            let mut chart = builder
                .build_cartesian_2d(0f64..x_max, y.0..y.1)
                .map_err(|error| error.to_string())?;
            chart
                .configure_mesh()
                .x_desc("minutes from the start of the soak (shaded: faults; grey lines: generations)")
                .y_desc(y_desc)
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|error| error.to_string())?;
            decorate(&mut chart, y, &faults, &boundaries, series)
        }
    })
}

/// One plot on the page.
fn plot(page: &mut String, svg: String) {
    let _ = writeln!(page, "<div class=\"plot\">{svg}</div>");
}

/// The whole page.
pub fn render(data: &SoakData) -> String {
    let soak = &data.soak;
    let name = soak["spec"]["name"].as_str().unwrap_or("soak");
    let mut page = page_start(&format!("Soak: {name}"));
    let findings = soak["findings"].as_u64().unwrap_or(0);
    let leaks: Vec<&str> = soak["leaks"]
        .as_array()
        .map(|leaks| leaks.iter().filter_map(|leak| leak.as_str()).collect())
        .unwrap_or_default();
    let final_reads_failed = soak["final_reads_failed"].as_u64().unwrap_or(0);
    let clean = findings == 0 && leaks.is_empty() && final_reads_failed == 0;
    let _ = writeln!(
        page,
        "<p class=\"{}\"><b>{}</b></p>",
        if clean { "valid" } else { "invalid" },
        escape(&if clean && soak["unfinished"].as_bool().unwrap_or(false) {
            "No finding in the generations checked before it stopped; resources not judged.".to_string()
        } else if clean {
            "Clean: no finding in any generation, no resource growing.".to_string()
        } else {
            format!(
                "{findings} findings; {} suspected leaks or drifts; {final_reads_failed} final reads failed with every \
                 fault healed.",
                leaks.len()
            )
        })
    );
    let history_written = soak["history_bytes_written"].as_f64().unwrap_or(0.0);
    let history_kept = soak["history_bytes_kept"].as_f64().unwrap_or(0.0);
    let _ = writeln!(
        page,
        "<p>{:.0} minutes{}: {} generations of {:.0} s, {} windows of {:.0} s, {} operations, {} faults. \
         History: {:.1} MiB written, {:.1} MiB kept on disk (clean generations' histories are dropped). \
         Seed {}.</p>",
        data.span_s() / 60.0,
        if soak["interrupted"].as_bool().unwrap_or(false) {
            " (interrupted)"
        } else {
            ""
        },
        plain(&soak["generations"]),
        soak["generation_s"].as_f64().unwrap_or(0.0),
        plain(&soak["windows"]),
        soak["window_s"].as_f64().unwrap_or(0.0),
        plain(&soak["ops"]),
        plain(&soak["faults"]),
        history_written / MIB,
        history_kept / MIB,
        plain(&soak["seed"]),
    );
    if soak["unfinished"].as_bool().unwrap_or(false) {
        let _ = writeln!(
            page,
            "<p class=\"invalid\">This soak stopped before its end (no soak.json: killed?). What follows is what it \
             wrote until then: generations checked, windows sampled. Trends were not judged.</p>"
        );
    }
    for leak in &leaks {
        let _ = writeln!(page, "<p class=\"invalid\">suspected: {}</p>", escape(leak));
    }
    let _ = writeln!(page, "<h2>Latency and throughput per window</h2>");
    for (op, windows) in &data.latency {
        let series: Vec<(String, Vec<(f64, f64)>)> = [
            (
                "p50",
                windows.iter().map(|window| (window.at_s, window.p50_ms)).collect(),
            ),
            (
                "p99",
                windows.iter().map(|window| (window.at_s, window.p99_ms)).collect(),
            ),
            (
                "p99.9",
                windows.iter().map(|window| (window.at_s, window.p999_ms)).collect(),
            ),
        ]
        .into_iter()
        .map(|(name, points)| (name.to_string(), points))
        .collect();
        plot(
            &mut page,
            over_time(
                data,
                &format!("{op}: latency per window (from the intended start)"),
                "ms (log scale)",
                &series,
                true,
            ),
        );
    }
    let throughput: Vec<(String, Vec<(f64, f64)>)> = data
        .latency
        .iter()
        .map(|(op, windows)| {
            (
                op.clone(),
                windows
                    .iter()
                    .map(|window| (window.at_s, window.ops_per_second))
                    .collect(),
            )
        })
        .collect();
    plot(
        &mut page,
        over_time(
            data,
            "throughput per window (ok completions)",
            "operations per second",
            &throughput,
            false,
        ),
    );
    // Errors as the driver counted them per window; stale gets as the
    // checker judged them, binned by when each get began.
    let errors: Vec<(f64, f64)> = data
        .load
        .iter()
        .filter_map(|window| {
            // At the window's middle, as the latency is (`at_s` is its end).
            let middle = window["at_s"].as_f64()? - window["seconds"].as_f64().unwrap_or(0.0) / 2.0;
            Some((middle, window["errors"].as_f64()?))
        })
        .collect();
    let stale: Vec<(f64, f64)> = data
        .staleness_per_window()
        .into_iter()
        .map(|(at, _, stale)| (at, stale as f64))
        .collect();
    if !errors.is_empty() || !stale.is_empty() {
        plot(
            &mut page,
            over_time(
                data,
                "errors and stale gets per window (a stale get missed an acknowledged write)",
                "operations",
                &[("errors".to_string(), errors), ("stale gets".to_string(), stale)],
                false,
            ),
        );
    }
    let _ = writeln!(page, "<h2>Each node, every window</h2>");
    let figures: [(&str, &str, WindowFigure); 8] = [
        ("resident memory", "MiB", |window| {
            Some(window["resources"]["rss_bytes"].as_f64()? / MIB)
        }),
        (
            "held allocated (the allocator's count; resident minus this is its free space, stacks and code)",
            "MiB",
            |window| Some(window["resources"]["heap_bytes"].as_f64()? / MIB),
        ),
        (
            "open descriptors other than data files (sockets, pipes, logs)",
            "descriptors",
            |window| {
                let resources = &window["resources"];
                Some(resources["open_fds"].as_f64()? - resources["data_fds"].as_f64().unwrap_or(0.0))
            },
        ),
        ("data files held open (segments)", "descriptors", |window| {
            window["resources"]["data_fds"].as_f64()
        }),
        ("threads", "threads", |window| window["resources"]["threads"].as_f64()),
        ("data directory", "MiB", |window| {
            Some(window["resources"]["data_dir_bytes"].as_f64()? / MIB)
        }),
        ("keys held (tombstones included)", "keys", |window| {
            window["keys"].as_f64()
        }),
        ("hints held for other nodes", "hints", |window| {
            window["hints_pending"].as_f64()
        }),
    ];
    for (title, unit, value) in &figures {
        let series: Vec<_> = data.node_series(value).into_iter().collect();
        plot(&mut page, over_time(data, title, unit, &series, false));
    }
    let _ = writeln!(
        page,
        "<h2>Trends</h2>\n<p>Each series after the first generation (warm-up), judged by its least-squares slope \
         and a 95 % interval that allows for windows that follow each other; GROWING is a suspected leak or drift.</p>\n{}",
        trend_table(soak["trends"].as_array().map_or(&[][..], Vec::as_slice)).html()
    );
    let mut generations = Table::new([
        "generation",
        "start min",
        "ops/s",
        "errors",
        "p99 ms (worst op)",
        "findings",
        "stale gets",
        "faults",
        "final reads failed",
        "retired keys",
        "history MiB",
    ]);
    for generation in &data.generations {
        let p99 = generation["latency"]
            .as_object()
            .map(|latency| {
                latency
                    .values()
                    .filter_map(|figures| figures["p99_ms"].as_f64())
                    .fold(0.0, f64::max)
            })
            .unwrap_or(0.0);
        let findings: u64 = generation["violations"]
            .as_object()
            .map(|violations| violations.values().filter_map(serde_json::Value::as_u64).sum())
            .unwrap_or(0);
        generations.row([
            plain(&generation["generation"]),
            format!("{:.1}", generation["start_s"].as_f64().unwrap_or(0.0) / 60.0),
            format!("{:.0}", generation["ops_per_second"].as_f64().unwrap_or(0.0)),
            plain(&generation["errors"]),
            format!("{p99:.2}"),
            findings.to_string(),
            plain(&generation["stale_gets"]),
            plain(&generation["faults"]),
            plain(&generation["final_reads_failed"]),
            plain(&generation["retired"]["deleted"]),
            format!("{:.1}", generation["history_bytes"].as_f64().unwrap_or(0.0) / MIB),
        ]);
    }
    let _ = writeln!(page, "<h2>Generations</h2>\n{}", generations.html());
    let _ = writeln!(
        page,
        "<p>Written by <code>dynamo-bench report {}</code>.</p>\n</body></html>",
        escape(&data.dir.display().to_string())
    );
    page
}

/// Reads `dir` and writes `dir/soak.html`; returns its path.
///
/// # Errors
/// The soak directory cannot be read, or the page cannot be written.
pub fn write(dir: &Path) -> Result<PathBuf, ReadError> {
    let data = SoakData::read(dir)?;
    let path = dir.join("soak.html");
    std::fs::write(&path, render(&data)).map_err(|io| error(&path, io.to_string()))?;
    Ok(path)
}
