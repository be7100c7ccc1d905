//! The stateright model of the quorum and vector-clock protocol.
//!
//! Server actors are `dynamo_core::protocol::Node` — the very state machine
//! the node runs — with an in-memory store; this crate holds no second copy
//! of the protocol. Client actors read, read-modify-write (get, then put
//! with that context) or write blindly, one operation at a time. Every
//! request and reply is recorded in a history in the terms of
//! `shared/HISTORY.md` (values are unique ids; a put names the values its
//! context covered), and the properties are that contract's invariants,
//! decided from the history (plus, for durability, the replicas' stores).
//!
//! Modelling choices, each a bound on the state space rather than a change
//! of the protocol:
//! - a storage write completes in the step that asks for it (persist
//!   latency is modelled by message delivery order instead);
//! - time is a per-server step counter (it orders clock entries for
//!   truncation; the protocol's timeouts are stateright timers that may fire
//!   at any moment, which models every timing at once);
//! - failure-detector probes are not armed: they only ever restore
//!   liveness, and re-arming them would make the state space infinite.
//!   Replica timers (sloppy quorum) and request deadlines are modelled.
//!
//! The properties restate HISTORY.md's invariants over the model's own
//! history, so that every state can be judged at model-checking speed; the
//! `checker` crate's definitions are held to them rather than copied:
//! [`checker_verdict`] runs the checker on a state's history (ending in
//! final reads of every replica, [`final_reads`]), each counterexample is
//! shown with the checker's verdict, and the tests assert that both agree
//! on every counterexample and on random walks.
//!
//! Properties (see [`properties`]): *siblings are concurrent*, *no
//! phantom*, *acknowledged writes are durable*, and, with R + W > N and no
//! sloppy quorum, *reads see acknowledged writes*; *replicas converge once
//! messages drain* (checked when every server replicates every key);
//! sometimes *siblings appear* and *a read returns another client's write*.

//!
//! Modules: [`settings`] (what a check explores, and the stateright model
//! it becomes), [`model`] (the actors and their history), [`properties`]
//! (the invariants, and the bridge to the checker), [`history`] (the
//! model's history, written as HISTORY.md JSON Lines), [`explain`]
//! (counterexamples in words).

pub mod explain;
pub mod history;
pub mod model;
pub mod properties;
pub mod settings;

pub use model::DynamoModel;
pub use properties::{checker_invariant, checker_verdict, checker_verdict_on, final_reads, properties, property};
pub use settings::{ModelSettings, NetworkKind, Puts};
