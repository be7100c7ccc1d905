//! Locks, one way: every lock in the node and the bench is taken with
//! [`Recover::recover`], which takes over a poisoned lock instead of
//! propagating the panic that poisoned it. Each critical section here
//! leaves its data consistent at every step (a push, a drain, a swap), so
//! the data behind a poisoned lock is as good as any; what panicked was a
//! caller's callback, and it is logged where it is caught.
//!
//! `handoff` holds the primitives of the storage engine's hand-off:
//! loom's under `--cfg dynamo_loom`, so the loom tests explore every
//! interleaving of the real code; std's otherwise. (The cfg is
//! `dynamo_loom`, not `loom`: tokio reads `cfg(loom)` too and compiles its
//! networking out under it.)

use std::sync::{LockResult, PoisonError};

/// Takes the guard out of a lock result, poisoned or not.
pub trait Recover<G> {
    /// The guard, whether or not a panic poisoned the lock.
    fn recover(self) -> G;
}

impl<G> Recover<G> for LockResult<G> {
    fn recover(self) -> G {
        self.unwrap_or_else(PoisonError::into_inner)
    }
}

/// The storage hand-off's primitives: loom's under `--cfg dynamo_loom`.
pub(crate) mod handoff {
    #[cfg(dynamo_loom)]
    pub(crate) use loom::sync::{Arc, Condvar, Mutex};
    #[cfg(not(dynamo_loom))]
    pub(crate) use std::sync::{Arc, Condvar, Mutex};
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, RwLock};

    #[test]
    fn a_poisoned_lock_is_taken_over() {
        let mutex = Mutex::new(1);
        let rwlock = RwLock::new(2);
        let _ = std::panic::catch_unwind(|| {
            let _held = mutex.lock().recover();
            let _written = rwlock.write().recover();
            panic!("poison both");
        });
        assert!(mutex.is_poisoned() && rwlock.is_poisoned());
        *mutex.lock().recover() += 1;
        assert_eq!(*mutex.lock().recover(), 2);
        assert_eq!(*rwlock.read().recover(), 2);
    }
}
