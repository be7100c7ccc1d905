//! `report.html`: one self-contained page per run — inline SVG plots drawn
//! with `plotters`' SVG backend, tables, no scripts, nothing fetched — so
//! it reads offline and can be attached to a ticket.
//!
//! Plots:
//!
//! - latency over time per operation type: per-second p50, p99, p99.9 and
//!   max from the interval logs (intended start), log scale, with the SLA
//!   line and every fault window as a labelled band;
//! - the percentile spectrum per operation type, HdrHistogram style: x is
//!   the percentile on a log scale of 1/(1−p) from p50 to p99.999, y the
//!   latency, intended and service together;
//! - throughput over time: `ok`, `fail` and `info` completions per second
//!   from the history, with the fault bands;
//! - requests per node (load balance) and versions per read.
//!
//! Beside them: the settings, the verdict and the checker's findings, the
//! fault timeline, the driver's own CPU and lag.

use std::fmt::Write as _;

use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;

use crate::run_data::{FaultWindow, RunData};

pub(crate) const WIDTH: u32 = 960;
pub(crate) const HEIGHT: u32 = 340;
/// Percentiles the spectrum runs through: 1/(1−p) from 2 to 10^5.
const SPECTRUM_POINTS: usize = 120;

/// Colours of the lines, in a fixed order.
pub(crate) const LINE_COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];
/// Fault bands.
const BAND: RGBColor = RGBColor(255, 214, 170);

use crate::table::{escape, Table};

pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// One figure of an interval, in milliseconds.
type Figure = fn(&crate::run_data::IntervalPoint) -> f64;

/// Draws into an SVG string; a drawing error becomes a note in its place.
pub(crate) fn svg(draw: impl FnOnce(&Area<'_>) -> Result<(), String>) -> String {
    svg_sized((WIDTH, HEIGHT), draw)
}

/// [`svg`] of another size (pixels).
pub(crate) fn svg_sized(size: (u32, u32), draw: impl FnOnce(&Area<'_>) -> Result<(), String>) -> String {
    let mut out = String::new();
    let result = {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|error| error.to_string())
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(|error| error.to_string()))
    };
    match result {
        Ok(()) => out,
        Err(error) => format!(
            "<p class=\"error\">this plot could not be drawn: {}</p>",
            escape(&error)
        ),
    }
}

fn fault_bands<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, impl Ranged<ValueType = f64>>>,
    faults: &[FaultWindow],
    y: (f64, f64),
) -> Result<(), String> {
    chart
        .draw_series(faults.iter().map(|fault| {
            // A zero-length window (an instant) still shows as a thin band.
            let end = fault.end_s.max(fault.start_s + 0.2);
            Rectangle::new([(fault.start_s, y.0), (end, y.1)], BAND.mix(0.6).filled())
        }))
        .map_err(|error| error.to_string())?;
    // Labels a line apart in turn, so that faults close in time do not
    // print over each other.
    chart
        .draw_series(faults.iter().enumerate().map(|(index, fault)| {
            EmptyElement::at((fault.start_s, y.1))
                + Text::new(
                    format!("{} {}", fault.kind, fault.targets),
                    (2, 2 + 13 * (index % 3) as i32),
                    ("sans-serif", 11).into_font().color(&RGBColor(120, 60, 0)),
                )
        }))
        .map_err(|error| error.to_string())?;
    Ok(())
}

/// Draws one named line of data, with its legend entry.
pub(crate) fn line<'a, DB: DrawingBackend + 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    name: &str,
    colour: RGBColor,
    points: impl IntoIterator<Item = (f64, f64)>,
) -> Result<(), String> {
    chart
        .draw_series(LineSeries::new(points, colour.stroke_width(2)))
        .map_err(|error| error.to_string())?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
    Ok(())
}

/// The legend of the lines drawn, boxed, at `position`.
pub(crate) fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(|error| error.to_string())
}

/// Latency over time of one operation type (intended start).
fn latency_over_time(data: &RunData, op: &str, sla: Option<(f64, f64)>) -> String {
    let Some(latency) = data.latency.get(op) else {
        return String::new();
    };
    let points = &latency.intended;
    svg(|root| {
        let x_max = data.history_s.max(points.last().map_or(1.0, |point| point.at_s + 1.0));
        let y_max = points
            .iter()
            .map(|point| point.max_ms)
            .fold(sla.map_or(1.0, |(_, max)| max), f64::max)
            * 1.5;
        let y_min = points
            .iter()
            .map(|point| point.p50_ms)
            .fold(f64::INFINITY, f64::min)
            .clamp(0.01, 1.0)
            / 2.0;
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("{op}: latency over time (from the intended start)"),
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
            .map_err(|error| error.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds from the start of the run")
            .y_desc("latency (ms, log scale)")
            .y_label_formatter(&|value| format!("{value}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|error| error.to_string())?;
        fault_bands(&mut chart, &data.faults, (y_min, y_max))?;
        let series: [(&str, Figure); 4] = [
            ("p50", |point| point.p50_ms),
            ("p99", |point| point.p99_ms),
            ("p99.9", |point| point.p999_ms),
            ("max", |point| point.max_ms),
        ];
        for (index, (name, value)) in series.iter().enumerate() {
            let colour = LINE_COLOURS[index];
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|point| (point.at_s + 0.5, value(point).max(y_min))),
                    colour.stroke_width(2),
                ))
                .map_err(|error| error.to_string())?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2)));
        }
        if let Some((percentile, max_ms)) = sla {
            let name = format!("SLA p{percentile} ≤ {max_ms} ms");
            line(&mut chart, &name, BLACK, [(0.0, max_ms), (x_max, max_ms)])?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })
}

/// A chart of latency by percentile: x is 1/(1−p) on a log scale from 2
/// (p50) to `x_max`, labelled as percentiles; y latency in ms, log scale.
pub(crate) type SpectrumChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::combinators::LogCoord<f64>, plotters::coord::combinators::LogCoord<f64>>,
>;

/// Draws the axes of a [`SpectrumChart`].
pub(crate) fn spectrum_chart<'a, 'b>(
    root: &'a Area<'b>,
    caption: &str,
    x_max: f64,
    (y_min, y_max): (f64, f64),
) -> Result<SpectrumChart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        // Room for the last label, p99.999, centred on the right edge.
        .margin_right(32)
        .x_label_area_size(38)
        .y_label_area_size(64)
        .build_cartesian_2d((2f64..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(|error| error.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms, log scale)")
        .x_label_formatter(&|inverse| {
            let percentile = 100.0 * (1.0 - 1.0 / inverse);
            let text = format!("{percentile:.4}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            format!("p{text}")
        })
        .y_label_formatter(&|value| format!("{value}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|error| error.to_string())?;
    Ok(chart)
}

/// The percentile spectrum of one operation type: intended and service.
fn spectrum(data: &RunData, op: &str) -> String {
    let Some(latency) = data.latency.get(op) else {
        return String::new();
    };
    let curve = |histogram: &hdrhistogram::Histogram<u64>| -> Vec<(f64, f64)> {
        (0..=SPECTRUM_POINTS)
            .map(|step| {
                // 1/(1-p) from 2 (p50) to 10^5 (p99.999), evenly in log.
                let exponent = 2f64.log10() + (5.0 - 2f64.log10()) * step as f64 / SPECTRUM_POINTS as f64;
                let inverse = 10f64.powf(exponent);
                let quantile = 1.0 - 1.0 / inverse;
                (inverse, histogram.value_at_quantile(quantile) as f64 / 1000.0)
            })
            .collect()
    };
    let intended = curve(&latency.intended_total);
    let service = curve(&latency.service_total);
    svg(|root| {
        let y_max = intended.iter().chain(&service).map(|(_, ms)| *ms).fold(0.1, f64::max) * 1.3;
        let y_min = service
            .iter()
            .map(|(_, ms)| *ms)
            .fold(f64::INFINITY, f64::min)
            .clamp(0.01, 1.0)
            / 2.0;
        let caption = format!(
            "{op}: latency by percentile ({} operations)",
            latency.intended_total.len()
        );
        let mut chart = spectrum_chart(root, &caption, 100_000.0, (y_min, y_max))?;
        for (index, (name, points)) in [("intended start", &intended), ("service (from the send)", &service)]
            .into_iter()
            .enumerate()
        {
            line(
                &mut chart,
                name,
                LINE_COLOURS[index],
                points.iter().map(|(x, y)| (*x, y.max(y_min))),
            )?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// Completions per second: ok, fail, info.
fn throughput(data: &RunData) -> String {
    let outcomes = &data.outcomes;
    svg(|root| {
        let x_max = (outcomes.ok.len() as f64).max(1.0);
        let y_max = outcomes
            .ok
            .iter()
            .zip(&outcomes.fail)
            .zip(&outcomes.info)
            .map(|((ok, fail), info)| ok + fail + info)
            .max()
            .unwrap_or(1)
            .max(1) as f64
            * 1.2;
        let mut chart = ChartBuilder::on(root)
            .caption("throughput: completions per second", ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|error| error.to_string())?;
        chart
            .configure_mesh()
            .x_desc("seconds from the start of the run")
            .y_desc("operations per second")
            .y_label_formatter(&|value| format!("{value:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|error| error.to_string())?;
        fault_bands(&mut chart, &data.faults, (0.0, y_max))?;
        for (index, (name, counts)) in [
            ("ok", &outcomes.ok),
            ("fail", &outcomes.fail),
            ("info (indeterminate)", &outcomes.info),
        ]
        .into_iter()
        .enumerate()
        {
            let values = counts
                .iter()
                .enumerate()
                .map(|(second, count)| (second as f64 + 0.5, *count as f64));
            line(&mut chart, name, LINE_COLOURS[[2, 3, 1][index]], values)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// A bar chart of named counts; with `log`, on a log scale (for counts
/// where one bar dwarfs the rest, such as gets by k-staleness).
fn bars(title: &str, x_desc: &str, y_desc: &str, bars: &[(String, f64)], log: bool) -> String {
    if bars.is_empty() {
        return String::new();
    }
    let y_max = bars.iter().map(|(_, value)| *value).fold(1.0, f64::max);
    if log {
        bars_on(title, x_desc, y_desc, bars, (0.5..y_max * 3.0).log_scale(), 0.5)
    } else {
        bars_on(title, x_desc, y_desc, bars, 0f64..y_max * 1.15, 0.0)
    }
}

fn bars_on<Y>(title: &str, x_desc: &str, y_desc: &str, bars: &[(String, f64)], y: Y, floor: f64) -> String
where
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..bars.len() as f64, y)
            .map_err(|error| error.to_string())?;
        let names: Vec<String> = bars.iter().map(|(name, _)| name.clone()).collect();
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(bars.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let index = x.floor() as usize;
                if (x - index as f64 - 0.5).abs() < 0.26 {
                    names.get(index).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .disable_x_mesh()
            .y_label_formatter(&|value| format!("{value:.0}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|error| error.to_string())?;
        chart
            .draw_series(bars.iter().enumerate().map(|(index, (_, value))| {
                Rectangle::new(
                    [(index as f64 + 0.15, floor), (index as f64 + 0.85, value.max(floor))],
                    LINE_COLOURS[0].filled(),
                )
            }))
            .map_err(|error| error.to_string())?;
        Ok(())
    })
}

/// t-visibility of the stale gets as a cumulative share (x: ms after the
/// missed put completed, log scale): how long acknowledged writes stayed
/// invisible to some reader.
fn t_visibility(histogram: &[(f64, f64)], stale_gets: f64) -> String {
    svg(|root| {
        let x_max = histogram.last().map_or(10.0, |(bound, _)| bound * 2.0);
        let x_min = histogram
            .first()
            .map_or(0.01, |(bound, _)| bound / 2.0)
            .min(x_max / 10.0);
        let mut chart = ChartBuilder::on(root)
            .caption(
                "t-visibility: stale gets by time since the missed write was acknowledged",
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(38)
            .y_label_area_size(64)
            .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..1.05)
            .map_err(|error| error.to_string())?;
        chart
            .configure_mesh()
            .x_desc("ms after the missed put was acknowledged (log scale)")
            .y_desc("share of stale gets at or below")
            .x_label_formatter(&|value| format!("{value}"))
            .y_label_formatter(&|value| format!("{value:.1}"))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|error| error.to_string())?;
        if histogram.is_empty() || stale_gets <= 0.0 {
            chart
                .draw_series(std::iter::once(Text::new(
                    "no stale get: every get saw every acknowledged write",
                    (x_min * 2.0, 0.5),
                    ("sans-serif", 15).into_font(),
                )))
                .map_err(|error| error.to_string())?;
            return Ok(());
        }
        let mut seen = 0.0;
        let mut points = vec![(x_min, 0.0)];
        for (bound, gets) in histogram {
            seen += gets;
            points.push((*bound, seen / stale_gets));
        }
        line(
            &mut chart,
            &format!("{stale_gets:.0} stale gets"),
            LINE_COLOURS[3],
            points,
        )?;
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// The staleness section: the share of fresh gets, gets by k-staleness
/// and the t-visibility of the stale ones (from `check.json`).
fn staleness(check: &serde_json::Value) -> String {
    let staleness = &check["staleness"];
    let pairs = |field: &str| -> Vec<(f64, f64)> {
        staleness[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pair| Some((pair.get(0)?.as_f64()?, pair.get(1)?.as_f64()?)))
            .collect()
    };
    let by_k: Vec<(String, f64)> = pairs("k_histogram")
        .into_iter()
        .map(|(k, gets)| (format!("{k:.0}"), gets))
        .collect();
    let count = |value: &serde_json::Value| format!("{:.0}", value.as_f64().unwrap_or(0.0));
    let mut out = format!(
        "<h2>Staleness</h2>\n<p>{} of {} gets missed an acknowledged write (k-staleness p99 {}, max {}; t-visibility \
         p99 {} ms, max {} ms); {} returned a value an acknowledged write had superseded.</p>\n",
        number(&staleness["stale_gets"]),
        number(&staleness["gets"]),
        count(&staleness["k"]["p99"]),
        count(&staleness["k"]["max"]),
        number(&staleness["t_visibility_ms"]["p99"]),
        number(&staleness["t_visibility_ms"]["max"]),
        number(&check["stale_reads_measured"]),
    );
    let _ = writeln!(
        out,
        "<div class=\"plot\">{}</div>\n<div class=\"plot\">{}</div>",
        bars(
            "k-staleness: gets by acknowledged writes missed (0: saw them all)",
            "acknowledged puts missed (k)",
            "gets (log scale)",
            &by_k,
            true
        ),
        t_visibility(
            &pairs("t_visibility_histogram_ms"),
            staleness["stale_gets"].as_f64().unwrap_or(0.0)
        )
    );
    out
}

/// A JSON value as a cell (not escaped: [`Table`] escapes).
pub(crate) fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => format!("{float:.2}"),
            _ => number.to_string(),
        },
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// A JSON value for the page's text.
fn number(value: &serde_json::Value) -> String {
    escape(&plain(value))
}

/// The page's head and style, and its title as a heading.
pub(crate) fn page_start(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{title}</title>\n<style>\
         body{{font-family:sans-serif;margin:24px;max-width:1000px;color:#222}}\
         table{{border-collapse:collapse;margin:8px 0 20px}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
         td:first-child,th:first-child,td.t,th.t{{text-align:left}}h2{{margin-top:32px}}.valid{{color:#1a7f37}}.invalid{{color:#c0392b}}\
         .plot{{margin:8px 0 16px}}.pair{{display:flex;gap:0}}.error{{color:#c0392b}}\
         </style></head><body>\n<h1>{title}</h1>\n",
        title = escape(title)
    )
}

/// The whole page.
pub fn render(data: &RunData) -> String {
    let summary = &data.summary;
    let name = summary["spec"]["name"].as_str().unwrap_or("run");
    let sla = summary["sla"]["percentile"]
        .as_f64()
        .zip(summary["sla"]["max_ms"].as_f64());
    let mut page = page_start(&format!("dynamo-bench: {name}"));
    // Verdict first: what a reader came for.
    if let Some(check) = &data.check {
        let valid = check["valid"].as_bool().unwrap_or(false);
        let _ = writeln!(
            page,
            "<p class=\"{}\"><b>History: {}</b> ({} mode).</p>",
            if valid { "valid" } else { "invalid" },
            if valid { "VALID" } else { "INVALID" },
            escape(check["mode"].as_str().unwrap_or("?"))
        );
        let mut invariants = Table::new(["invariant", "violations"]);
        for (invariant, count) in check["violations"].as_object().into_iter().flatten() {
            invariants.row([invariant.clone(), plain(count)]);
        }
        page.push_str(&invariants.html());
        if let Some(findings) = check["findings"].as_array().filter(|findings| !findings.is_empty()) {
            let mut table = Table::new(["invariant", "key", "ops", "what"]);
            for finding in findings.iter().take(100) {
                table.row([
                    plain(&finding["invariant"]),
                    plain(&finding["key"]),
                    finding["ops"].to_string(),
                    plain(&finding["message"]),
                ]);
            }
            let _ = writeln!(page, "<h2>Findings</h2>{}", table.html());
        }
    }
    if let Some((percentile, max_ms)) = sla {
        let met = summary["sla"]["met"].as_bool().unwrap_or(false);
        let _ = writeln!(
            page,
            "<p class=\"{}\"><b>SLA p{percentile} ≤ {max_ms} ms: {}</b></p>",
            if met { "valid" } else { "invalid" },
            if met { "met" } else { "MISSED" }
        );
    }
    // The driver's own figures: whether it kept its schedule.
    let driver = &summary["driver"];
    if driver.is_object() {
        let late = driver["operations_issued_late"].as_u64().unwrap_or(0);
        let _ = writeln!(
            page,
            "<p{}>Driver: {:.0} % of one core; scheduler late by up to {:.1} ms ({late} operations issued more than \
             10 ms late); {} operations waited for a free client.{}</p>",
            if late > 0 { " class=\"invalid\"" } else { "" },
            driver["cpu_share_of_one_core"].as_f64().unwrap_or(0.0) * 100.0,
            driver["lag_max_ms"].as_f64().unwrap_or(0.0),
            driver["operations_queued_for_a_client"].as_u64().unwrap_or(0),
            if late > 0 {
                " The driver fell behind: latencies still count from the intended start, but the offered rate \
                 was not kept."
            } else {
                ""
            }
        );
    }
    // The table `run` printed, from the rows summary.json keeps.
    let rows: Vec<crate::latency::Row> = serde_json::from_value(summary["latency"].clone()).unwrap_or_default();
    let _ = writeln!(
        page,
        "<h2>Latency (milliseconds)</h2>\n{}",
        match sla {
            Some((percentile, max_ms)) => crate::latency::table(&rows, &crate::Sla { percentile, max_ms }).html(),
            None => String::new(),
        }
    );
    for op in data.latency.keys() {
        let _ = writeln!(
            page,
            "<div class=\"plot\">{}</div>\n<div class=\"plot\">{}</div>",
            latency_over_time(data, op, sla),
            spectrum(data, op)
        );
    }
    page.push_str("<h2>Throughput</h2>\n");
    let _ = writeln!(page, "<div class=\"plot\">{}</div>", throughput(data));
    if let Some(check) = &data.check {
        page.push_str(&staleness(check));
    }
    if !data.faults.is_empty() {
        let mut table = Table::new(["kind", "targets", "from s", "to s", "how", "end"]);
        for fault in &data.faults {
            table.row([
                fault.kind.clone(),
                fault.targets.clone(),
                format!("{:.1}", fault.start_s),
                format!("{:.1}", fault.end_s),
                fault.detail.clone(),
                fault.end_detail.clone(),
            ]);
        }
        let _ = writeln!(page, "<h2>Faults</h2>\n{}", table.html());
    }
    page.push_str("<h2>Load balance and versions</h2>\n");
    let requests: Vec<(String, f64)> = summary["nodes"]["requests"]
        .as_object()
        .map(|nodes| {
            let mut nodes: Vec<(String, f64)> = nodes
                .iter()
                .map(|(node, count)| (node.clone(), count.as_f64().unwrap_or(0.0)))
                .collect();
            nodes.sort_by_key(|(node, _)| node.trim_start_matches('n').parse::<u64>().unwrap_or(u64::MAX));
            nodes
        })
        .unwrap_or_default();
    let _ = writeln!(
        page,
        "<div class=\"plot\">{}</div>",
        bars(
            &format!(
                "requests per node (load-balancing efficiency {})",
                number(&summary["nodes"]["load_balancing_efficiency"])
            ),
            "node",
            "requests",
            &requests,
            false
        )
    );
    let versions: Vec<(String, f64)> = summary["versions_per_read"]["histogram"]
        .as_object()
        .map(|histogram| {
            let mut bars: Vec<(String, f64)> = histogram
                .iter()
                .map(|(versions, count)| (versions.clone(), count.as_f64().unwrap_or(0.0)))
                .collect();
            bars.sort_by_key(|(versions, _)| versions.parse::<u64>().unwrap_or(u64::MAX));
            bars
        })
        .unwrap_or_default();
    let _ = writeln!(
        page,
        "<div class=\"plot\">{}</div>",
        bars(
            "versions (siblings) per read",
            "versions returned",
            "reads (log scale)",
            &versions,
            true
        )
    );
    if let Some(nodes) = summary["node_resources"].as_object().filter(|nodes| !nodes.is_empty()) {
        let mib = |value: &serde_json::Value| format!("{:.1}", value.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0));
        let mut table = Table::new([
            "node",
            "RSS MiB",
            "open fds",
            "of them data files",
            "sockets",
            "threads",
            "CPU s",
            "data MiB",
        ]);
        for (addr, figures) in nodes {
            table.row([
                addr.clone(),
                mib(&figures["rss_bytes"]),
                plain(&figures["open_fds"]),
                plain(&figures["data_fds"]),
                plain(&figures["socket_fds"]),
                plain(&figures["threads"]),
                format!("{:.1}", figures["cpu_ms"].as_f64().unwrap_or(0.0) / 1000.0),
                mib(&figures["data_dir_bytes"]),
            ]);
        }
        let _ = writeln!(
            page,
            "<h2>Nodes at the end of the load</h2>\n{}<p>As each node reports itself (its stats: /proc and its data \
             directory); CPU since the node started.</p>",
            table.html()
        );
    }
    let mut settings = Table::new(["setting", "value"]);
    for section in ["spec", "cluster", "load", "driver", "throughput"] {
        for (field, value) in summary[section].as_object().into_iter().flatten() {
            settings.row([format!("{section}.{field}"), plain(value)]);
        }
    }
    let _ = writeln!(page, "<h2>Settings</h2>\n{}", settings.html());
    let _ = writeln!(
        page,
        "<p>Written by <code>dynamo-bench report {}</code>.</p>\n</body></html>",
        escape(&data.dir.display().to_string())
    );
    page
}

/// Reads `dir` and writes `dir/report.html`; returns its path.
///
/// # Errors
/// The run directory cannot be read, or the page cannot be written.
pub fn write(dir: &std::path::Path) -> Result<std::path::PathBuf, crate::run_data::ReadError> {
    let data = RunData::read(dir)?;
    let path = dir.join("report.html");
    std::fs::write(&path, render(&data)).map_err(|io| crate::run_data::ReadError {
        path: path.clone(),
        reason: io.to_string(),
    })?;
    Ok(path)
}
