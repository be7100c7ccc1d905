//! The history checker: reads a `history.jsonl` (shared/HISTORY.md) and
//! decides its invariants from the history alone, knowing nothing of vector
//! clocks. This crate depends on nothing of the node's, and must stay that
//! way: a checker sharing the node's clock code would share its bugs.
//!
//! - [`history`]: reading lines into interned operations; malformed lines
//!   are errors naming the line, broken history rules are findings.
//! - [`dag`]: causality per key from contexts, with queries that visit only
//!   the region of the key's versions they need.
//! - [`check`]: the invariants, staleness and session measures, and the
//!   verdict (`check.json`).
//! - [`faults`]: the fault windows and availability inside and outside them.
//! - [`ids`]: hash maps keyed by integer ids; [`names`]: interned value ids.

pub mod check;
pub mod dag;
pub mod faults;
pub mod history;
pub mod ids;
pub mod names;

pub use check::{check, check_with, Finding, Incremental, Invariant, Mode, Options, Verdict};
pub use history::{read, read_file, read_file_with, History, ReadError};
