//! Reports of a run: latency recording per operation type, percentile
//! tables with the SLA verdict, and HdrHistogram interval logs.
//!
//! - [`latency`]: per operation type, two histograms — latency from the
//!   intended start (what a user waiting on an open-loop schedule sees,
//!   coordinated omission corrected) and service time (from the moment the
//!   request was sent) — per interval and in total; percentiles; the table.
//! - [`hlog`]: interval logs in HdrHistogram's V2 + DEFLATE log format (one
//!   file per operation type, tags `intended` and `service`), readable by
//!   the standard HdrHistogram tools (HistogramLogProcessor, hdr-plot).
//!
//! - [`run_data`]: a run directory read back (summary, verdict, interval
//!   logs, the history's outcomes per second and fault windows).
//! - [`html`]: `report.html`, one self-contained page of inline SVG plots
//!   and tables per run.
//!
//! - [`soak`]: a soak directory read back, its trend table and `soak.html`.
//!
//! Run directories land under `reports/runs/` (ignored by git).

pub mod check_text;
pub mod compare;
pub mod compare_html;
pub mod hlog;
pub mod html;
pub mod latency;
mod rng;
pub mod run_data;
pub mod soak;
pub mod table;
pub mod trend;

pub use latency::{LatencyRecorder, Percentiles, Sla};
