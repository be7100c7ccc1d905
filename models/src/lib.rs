//! The stateright model of the quorum and vector-clock protocol.
//!
//! Not built yet: it arrives with issue #4 and will drive
//! `dynamo_node::protocol` (issue #3) as stateright actors, with the
//! invariants of `shared/HISTORY.md` as its properties. Until then this
//! crate holds no code, so that nothing here can be mistaken for a check.
