//! Reports of a run: percentile tables, HdrHistogram interval logs, SLA
//! verdicts, and comparison across runs.
//!
//! Not built yet: it arrives with issue #5 (and the comparison after it).
//! Run directories land under `reports/runs/` (ignored by git).
