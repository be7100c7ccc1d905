//! The synchronisation primitives of the storage engine's hand-off: loom's
//! under `--cfg loom`, so the loom tests explore every interleaving of the
//! real code; std's otherwise.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
