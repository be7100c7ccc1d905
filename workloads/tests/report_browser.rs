//! `report.html` as a person opens it: a short cart run with a kill fault
//! leaves the page; it is self-contained (no scripts, nothing fetched);
//! `dynamo-bench report` writes it again; and headless Chromium loads it
//! with no console message and finds every plot drawn; `compare` of the
//! run with itself writes compare.html, which draws in the browser too.
#![allow(clippy::unwrap_used)]

mod common;
use common::show;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Chromium, when this machine has it. Where it has not: under CI (`CI`
/// set, as `.ci/run` runs, which installs Debian's `chromium`) the test
/// fails; elsewhere it says in one line that it is skipped.
fn chromium(test: &str) -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(output) = Command::new("which").arg(name).output() {
            if output.status.success() {
                let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
                return Some(PathBuf::from(path));
            }
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs chromium (Debian: apt-get install chromium)");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: no chromium here (CI runs it; Debian: apt-get install chromium)"
    );
    None
}

/// Loads a page in headless Chromium (bounded in time, a profile of its
/// own); asserts it logged nothing to the console; returns the DOM it
/// built.
fn browse(chromium: &Path, dir: &Path, page: &Path) -> String {
    let output = Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", dir.join("chromium").display()))
        .args([
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=2000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", page.canonicalize().unwrap().display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "chromium: {}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let console: Vec<&str> = stderr.lines().filter(|line| line.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "{} logged: {console:?}", page.display());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// No script, no stylesheet, image or font to fetch.
fn self_contained(page: &str) {
    for forbidden in ["<script", " src=", " href=", "@import", "url("] {
        assert!(!page.contains(forbidden), "the page holds {forbidden:?}");
    }
}

/// The `<svg>...</svg>` blocks of a page.
fn plots(page: &str) -> Vec<&str> {
    page.match_indices("<svg")
        .filter_map(|(start, _)| {
            let end = page[start..].find("</svg>")?;
            Some(&page[start..start + end])
        })
        .collect()
}

/// Lines of data in a plot: polylines through three points or more (axes
/// and ticks are two-point lines).
fn data_lines(plot: &str) -> usize {
    plot.match_indices("<polyline")
        .filter(|(start, _)| {
            let rest = &plot[*start..];
            let points = rest
                .find("points=\"")
                .map(|at| &rest[at + 8..])
                .and_then(|points| points.split('"').next())
                .unwrap_or("");
            points.split_whitespace().count() >= 3
        })
        .count()
}

/// Whether plot `index` of a cart report (add, checkout and view: latency
/// over time then spectrum each; throughput; gets by k-staleness;
/// t-visibility; requests per node; versions per read) drew its data: four
/// percentile lines over time, two spectra, three outcome lines, the
/// t-visibility curve (or, with no stale get, the words that say so), or
/// bars.
fn drawn(index: usize, plot: &str) -> bool {
    match index {
        0 | 2 | 4 => data_lines(plot) >= 4,
        1 | 3 | 5 => data_lines(plot) >= 2,
        6 => data_lines(plot) >= 3,
        8 => data_lines(plot) >= 1 || plot.contains("no stale get"),
        // At least one bar, filled in the first line colour (k-staleness
        // may have a single bar: every get fresh).
        _ => plot.contains("fill=\"#1F77B4\""),
    }
}

fn short_run_with_a_fault(dir: &Path) -> PathBuf {
    let spec = dir.join("cart-kill.toml");
    let cart = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("cart.toml")).unwrap();
    // The shipped cart, a bound no healthy debug run misses, one kill.
    let text = format!(
        "{}\n[[faults.events]]\nat = \"2s\"\nkind = \"kill\"\ntargets = [\"n2\"]\nfor = \"1s\"\n",
        cart.replace("max_ms = 300", "max_ms = 60000")
    );
    std::fs::write(&spec, text).unwrap();
    let out = dir.join("run");
    let output = common::bench_logging("warn")
        .args([
            "run",
            spec.to_str().unwrap(),
            "--duration",
            "5s",
            "--rate",
            "200",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    out
}

#[test]
fn the_report_is_self_contained_rewritable_and_draws_in_a_browser() {
    let dir = common::temp_dir("report", "browser");
    let run = short_run_with_a_fault(&dir);
    let page_path = run.join("report.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    self_contained(&page);
    assert!(page.contains("History: VALID"), "the verdict is shown");
    assert!(page.contains("kill n2"), "the fault is labelled on the plots");
    // Two plots per operation type, throughput, requests and versions.
    let plots_found = plots(&page);
    assert_eq!(plots_found.len(), 3 * 2 + 5, "{} plots", plots_found.len());
    for (index, plot) in plots_found.iter().enumerate() {
        assert!(drawn(index, plot), "plot {index} drew nothing");
    }
    // `report` writes the same page again from the files.
    std::fs::remove_file(&page_path).unwrap();
    let again = common::bench_logging("warn").arg("report").arg(&run).output().unwrap();
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    assert_eq!(std::fs::read_to_string(&page_path).unwrap(), page);
    // Not a run directory: exit 2, the missing file named.
    let wrong = common::bench_logging("warn").arg("report").arg(&dir).output().unwrap();
    assert_eq!(wrong.status.code(), Some(2), "{}", show(&wrong));
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("summary.json"),
        "{}",
        show(&wrong)
    );

    // A run against itself: one run a side, so every verdict is
    // inconclusive and nothing is slower; exit 0.
    let same = common::bench_logging("warn")
        .arg("compare")
        .arg(&run)
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(same.status.code(), Some(0), "{}", show(&same));
    let said = String::from_utf8_lossy(&same.stdout);
    assert!(
        said.contains("every verdict is inconclusive") && !said.contains(" slower\n"),
        "{said}"
    );
    // compare.html beside the new side: self-contained, and per operation
    // type both spectra (two lines with their bands) and latency over time
    // side by side (a p99 and a p50 line each).
    let compare_path = run.join("compare.html");
    let compare_page = std::fs::read_to_string(&compare_path).unwrap();
    self_contained(&compare_page);
    assert!(
        compare_page.contains("<td class=\"t\">ops/s</td>"),
        "throughput is compared"
    );
    let compare_plots = plots(&compare_page);
    assert_eq!(
        compare_plots.len(),
        9,
        "add, checkout, view: a spectrum and two plots over time each"
    );
    for (index, plot) in compare_plots.iter().enumerate() {
        assert!(data_lines(plot) >= 2, "compare plot {index} drew no data");
        if index % 3 == 0 {
            assert!(plot.contains("<polygon"), "compare plot {index} has no interval band");
        }
    }
    // Runs of other settings are refused, the setting named; unless
    // allowed on purpose.
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    for file in ["summary.json", "history.jsonl", "latency-add.hlog"] {
        std::fs::copy(run.join(file), other.join(file)).unwrap();
    }
    let mut summary = common::json(&other.join("summary.json"));
    summary["load"]["target_rate"] = serde_json::json!(300.0);
    std::fs::write(other.join("summary.json"), summary.to_string()).unwrap();
    let refused = common::bench_logging("warn")
        .arg("compare")
        .arg(&run)
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("load.target_rate: 200.0 against 300.0"),
        "{}",
        show(&refused)
    );
    let allowed = common::bench_logging("warn")
        .args(["compare", "--allow-different", "load.target_rate"])
        .arg(&run)
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(allowed.status.code(), Some(0), "{}", show(&allowed));

    // Saved as a baseline (no history: small), it compares as the run did.
    let saved = common::bench_logging("warn")
        .args(["baseline", "save", "short"])
        .arg(&run)
        .arg("--dir")
        .arg(dir.join("baselines"))
        .output()
        .unwrap();
    assert_eq!(saved.status.code(), Some(0), "{}", show(&saved));
    let baseline = dir.join("baselines").join("short");
    assert!(baseline.join("1").join("latency-add.hlog").is_file());
    assert!(!baseline.join("1").join("history.jsonl").exists());
    let against = common::bench_logging("warn")
        .arg("compare")
        .arg(&baseline)
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(against.status.code(), Some(0), "{}", show(&against));

    let Some(chromium) = chromium("the_report_is_self_contained_rewritable_and_draws_in_a_browser") else {
        std::fs::remove_dir_all(&dir).unwrap();
        return;
    };
    // What the browser built: every plot there, with its drawing.
    let dom = browse(&chromium, &dir, &page_path);
    let rendered = plots(&dom);
    assert_eq!(rendered.len(), plots_found.len(), "the browser's DOM lost plots");
    for (index, plot) in rendered.iter().enumerate() {
        assert!(drawn(index, plot), "plot {index} has no drawing in the browser's DOM");
    }
    let dom = browse(&chromium, &dir, &compare_path);
    assert_eq!(
        plots(&dom).len(),
        compare_plots.len(),
        "the browser's DOM lost compare plots"
    );
    let url = format!("file://{}", page_path.canonicalize().unwrap().display());
    // And a screenshot, to look at.
    let shot = dir.join("report.png");
    let screenshot = Command::new("timeout")
        .arg("120")
        .arg(&chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1050,4000",
        ])
        .arg(format!("--user-data-dir={}", dir.join("chromium").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(screenshot.status.success(), "chromium: {}", show(&screenshot));
    assert!(std::fs::metadata(&shot).unwrap().len() > 50_000, "a blank screenshot");
    std::fs::remove_dir_all(&dir).unwrap();
}
