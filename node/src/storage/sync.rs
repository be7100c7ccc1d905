//! The synchronisation primitives of the storage engine's hand-off: loom's
//! under `--cfg dynamo_loom`, so the loom tests explore every interleaving of the
//! real code; std's otherwise.

#[cfg(dynamo_loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(dynamo_loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

// The cfg is `dynamo_loom`, not `loom`: tokio reads `cfg(loom)` too and
// compiles its networking out under it.
