//! `compare.html`: a comparison to look at, self-contained as
//! `report.html` is (inline SVG, no scripts, nothing fetched).
//!
//! - the verdict and the table `compare` prints;
//! - per operation type, both percentile spectra overlaid (x: the
//!   percentile on a log scale of 1/(1−p), y: latency), each with its 95 %
//!   bootstrap interval as a band: where the bands part, the sides differ;
//! - per operation type, latency over time side by side: every run's p50
//!   and p99 per second, base on the left and new on the right on the same
//!   scale, so a run that drifted or stalled shows as itself.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plotters::prelude::*;

use crate::compare::{Interval, OpComparison, Side};
use crate::html::{legend, line, page_start, spectrum_chart, svg, svg_sized, LINE_COLOURS};
use crate::table::escape;

/// Colours of the two sides.
const BASE: RGBColor = RGBColor(31, 119, 180);
const NEW: RGBColor = RGBColor(214, 39, 40);

/// `q` (0..1) of a sparse interval, microseconds.
fn quantile(interval: &Interval, q: f64) -> Option<f64> {
    let total: u64 = interval.iter().map(|(_, count)| count).sum();
    if total == 0 {
        return None;
    }
    let needed = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for &(value, count) in interval {
        seen += count;
        if seen >= needed {
            return Some(value as f64);
        }
    }
    interval.last().map(|(value, _)| *value as f64)
}

/// The two spectra of one operation type with their bands.
fn spectra(op: &str, comparison: &OpComparison) -> String {
    let spectrum = &comparison.spectrum;
    if spectrum.percentiles.is_empty() {
        return String::new();
    }
    let x: Vec<f64> = spectrum
        .percentiles
        .iter()
        .map(|percentile| 1.0 / (1.0 - percentile / 100.0))
        .collect();
    svg(|root| {
        let all = spectrum.base.iter().chain(&spectrum.new);
        let y_max = all.clone().map(|(_, _, high)| *high).fold(0.01, f64::max) * 1.3;
        let y_min = all
            .map(|(middle, low, _)| low.min(*middle))
            .filter(|value| *value > 0.0)
            .fold(f64::INFINITY, f64::min)
            .clamp(0.001, 1.0)
            / 1.5;
        let x_max = x.last().copied().unwrap_or(2.0).max(2.5);
        let caption = format!("{op}: latency by percentile, base and new, with 95 % intervals");
        let mut chart = spectrum_chart(root, &caption, x_max, (y_min, y_max))?;
        for (name, side, colour) in [("base", &spectrum.base, BASE), ("new", &spectrum.new, NEW)] {
            // The band: up along the high edge, back along the low one.
            let band: Vec<(f64, f64)> = x
                .iter()
                .zip(side)
                .map(|(x, (_, _, high))| (*x, high.max(y_min)))
                .chain(x.iter().zip(side).rev().map(|(x, (_, low, _))| (*x, low.max(y_min))))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(band, colour.mix(0.18).filled())))
                .map_err(|error| error.to_string())?;
            line(
                &mut chart,
                &format!("{name} (band: 95 % interval)"),
                colour,
                x.iter().zip(side).map(|(x, (middle, _, _))| (*x, middle.max(y_min))),
            )?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })
}

/// Per-second p50 and p99 of every run of one side, ms: (run, second, p50, p99).
fn per_second(runs: &[Vec<Interval>]) -> Vec<Vec<(f64, f64, f64)>> {
    runs.iter()
        .map(|run| {
            run.iter()
                .enumerate()
                .filter_map(|(second, interval)| {
                    let p50 = quantile(interval, 0.5)?;
                    let p99 = quantile(interval, 0.99)?;
                    Some((second as f64 + 0.5, p50 / 1000.0, p99 / 1000.0))
                })
                .collect()
        })
        .collect()
}

/// Latency over time of one operation type, base beside new, one scale.
fn over_time(op: &str, base: &[Vec<Interval>], new: &[Vec<Interval>]) -> String {
    let sides = [("base", per_second(base)), ("new", per_second(new))];
    let points = sides.iter().flat_map(|(_, runs)| runs.iter().flatten());
    let y_max = points.clone().map(|(_, _, p99)| *p99).fold(0.01, f64::max) * 1.5;
    let y_min = points
        .clone()
        .map(|(_, p50, _)| *p50)
        .filter(|value| *value > 0.0)
        .fold(f64::INFINITY, f64::min)
        .clamp(0.001, 1.0)
        / 1.5;
    let x_max = points.map(|(second, _, _)| *second + 0.5).fold(1.0, f64::max);
    let mut out = String::from("<div class=\"pair\">");
    for (name, runs) in &sides {
        out.push_str(&svg_sized((crate::html::WIDTH / 2, crate::html::HEIGHT), |root| {
            let mut chart = ChartBuilder::on(root)
                .caption(format!("{op}, {name}: p99 (p50 faint) per second"), ("sans-serif", 15))
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())
                .map_err(|error| error.to_string())?;
            chart
                .configure_mesh()
                .x_desc("measured seconds")
                .y_desc("latency (ms, log)")
                .y_label_formatter(&|value| format!("{value}"))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|error| error.to_string())?;
            for (index, run) in runs.iter().enumerate() {
                let colour = LINE_COLOURS[index % LINE_COLOURS.len()];
                chart
                    .draw_series(LineSeries::new(
                        run.iter().map(|(second, p50, _)| (*second, p50.max(y_min))),
                        colour.mix(0.35).stroke_width(1),
                    ))
                    .map_err(|error| error.to_string())?;
                line(
                    &mut chart,
                    &format!("run {}", index + 1),
                    colour,
                    run.iter().map(|(second, _, p99)| (*second, p99.max(y_min))),
                )?;
            }
            legend(&mut chart, SeriesLabelPosition::UpperRight)
        }));
    }
    out.push_str("</div>");
    out
}

/// The whole page.
pub fn render(base: &Side, new: &Side, comparison: &BTreeMap<String, OpComparison>, threshold: f64) -> String {
    let name = base.summaries[0]["spec"]["name"].as_str().unwrap_or("runs");
    let mut page = page_start(&format!("dynamo-bench compare: {name}"));
    let sides = |side: &Side| {
        side.dirs
            .iter()
            .map(|dir| escape(&dir.display().to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        page,
        "<p>base: {} run(s): {}<br>new: {} run(s): {}</p>",
        base.dirs.len(),
        sides(base),
        new.dirs.len(),
        sides(new)
    );
    let rows: Vec<&crate::compare::Row> = comparison.values().flat_map(|op| &op.rows).collect();
    let slower = crate::compare::slower(rows.iter().copied());
    if slower.is_empty() {
        let _ = writeln!(
            page,
            "<p class=\"valid\"><b>Nothing slower beyond {:.0} % with confidence.</b></p>",
            threshold * 100.0
        );
    } else {
        let _ = writeln!(
            page,
            "<p class=\"invalid\"><b>SLOWER at {}.</b></p>",
            escape(&slower.join(", "))
        );
    }
    page.push_str(&crate::compare::table(rows.iter().copied()).html());
    let _ = writeln!(
        page,
        "<p>Latency in ms from the intended start; ops/s = completions per second; ratio = new / base; the interval \
         is a 95 % block bootstrap over runs and seconds (method: the module doc of <code>dynamo_reports::compare</code>); \
         slower = latency up or throughput down beyond {:.0} %, with the whole interval and every run agreeing.</p>",
        threshold * 100.0
    );
    for (op, op_comparison) in comparison {
        let _ = writeln!(page, "<h2>{}</h2>", escape(op));
        let _ = writeln!(page, "<div class=\"plot\">{}</div>", spectra(op, op_comparison));
        if let (Some(base_runs), Some(new_runs)) = (base.latency.get(op), new.latency.get(op)) {
            let _ = writeln!(page, "<div class=\"plot\">{}</div>", over_time(op, base_runs, new_runs));
        }
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quantile_of_a_sparse_interval_counts_each_value_as_often_as_recorded() {
        let interval: Interval = vec![(100, 50), (200, 49), (5_000, 1)];
        assert_eq!(quantile(&interval, 0.5), Some(100.0));
        assert_eq!(quantile(&interval, 0.51), Some(200.0));
        assert_eq!(quantile(&interval, 0.99), Some(200.0));
        assert_eq!(quantile(&interval, 0.995), Some(5_000.0));
        assert_eq!(quantile(&Vec::new(), 0.5), None);
    }
}
