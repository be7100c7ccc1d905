//! `dynamo-bench`: runs a workload spec against a Dynamo cluster, records
//! the history (shared/HISTORY.md), checks it, and reports latency per
//! percentile against the SLA.
//!
//! - [`spec`]: the workload specs (TOML), with file/line/field errors.
//! - [`keys`]: seeded randomness and key distributions.
//! - [`record`]: the streaming history writer.
//! - [`driver`]: the open-loop scheduler, the logical clients, final reads.
//! - [`run`]: the whole job: cluster, drive, check, report, run directory.
//! - [`faults`]: the nemesis (kill, pause, partition, disk, link faults).
//! - [`progress`]: a progress line on a terminal.
//! - [`follow`]: checking a history while it is being written.

pub mod driver;
pub mod faults;
pub mod follow;
pub mod keys;
pub mod progress;
pub mod record;
pub mod run;
pub mod soak;
pub mod spec;
