//! The history checker: reads a `history.jsonl` (shared/HISTORY.md) and
//! decides its invariants from the history alone, knowing nothing of vector
//! clocks.
//!
//! Not built yet: it arrives with issue #5. This crate depends on nothing
//! of the node's, and must stay that way.
