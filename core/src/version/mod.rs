//! Versions: vector clocks, dots, sibling sets and client contexts.
//!
//! Dynamo (§4.4) gives every version a vector clock of `(node, counter)`
//! pairs and keeps, per key, the versions none of which descends from
//! another. The coordinator of a put makes the new clock from the client's
//! context by advancing its own entry. That scheme loses writes: two clients
//! that read the same version and write through one coordinator get clocks
//! that *look* ordered (`{a:2}` then `{a:3}`), so the second silently
//! replaces the first although neither client saw the other's write.
//!
//! We keep the paper's scheme as [`Versioning::Paper`] (so the harness can
//! show the anomaly) and default to dotted version vectors,
//! [`Versioning::Dvv`]: each version carries the *dot* `(actor, counter)` that
//! created it and, separately, the causal *past* it was written with (the
//! client's context). A version supersedes another exactly when its past
//! covers the other's dot. So a put discards exactly the siblings whose dots
//! its context covers, concurrent writes survive as siblings even through one
//! coordinator, and siblings never multiply without real concurrency.
//!
//! Why "past covers dot" is causality: a context is the join of the full
//! clocks (past plus dot) of the versions a get returned; and because a
//! coordinator replicates its whole resulting sibling set, a replica that
//! knows dot `(a, k)` holds that version or one that supersedes it. So a
//! context that covers `(a, k)` was read from a state that included the
//! version `(a, k)` or its successors.
//!
//! An actor is a node *incarnation*, not just a node: a node whose data
//! directory was wiped or restored gets a fresh incarnation, so it can never
//! reissue a dot that others already hold (riak_kv#679).
//!
//! Truncation (§4.4): past a threshold (default 10) the entry with the
//! oldest timestamp is dropped from a new version's clock, never the
//! coordinator's own. Under `paper` that can make an old version look
//! concurrent or a new one look older; under `dvv` it only shrinks what a
//! put supersedes, which can only leave extra siblings.
//!
//! Everything here is pure: time arrives as an argument, nothing reads a
//! clock, a file or a random source.

mod clock;
mod context;
mod siblings;

pub(crate) use clock::{put_clock, read_clock};
pub use clock::{Actor, Causality, ClockEntry, Dot, VectorClock};
pub use context::{decode_context, encode_context, ContextError};
pub use siblings::{
    decode_sibling_set, encode_sibling_set, CounterExhausted, OverBound, SiblingSet, Version, Versioning,
};
