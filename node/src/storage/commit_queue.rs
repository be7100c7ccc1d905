//! The hand-off between writers and the storage thread: a bounded queue
//! that the storage thread drains in batches (one batch = one group
//! commit), and a one-shot slot through which a blocked writer learns the
//! outcome of its write.
//!
//! Built on `crate::sync`, which is loom's primitives under `--cfg dynamo_loom`
//! (see the loom tests at the bottom) and std's otherwise.

use crate::sync::Recover;
use std::collections::VecDeque;
use std::time::Duration;

use crate::sync::handoff::{Arc, Condvar, Mutex};

/// A bounded multi-producer, single-consumer queue.
#[derive(Debug)]
pub(crate) struct CommitQueue<T> {
    state: Mutex<QueueState<T>>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

#[derive(Debug)]
struct QueueState<T> {
    items: VecDeque<T>,
    closed: bool,
    /// The consumer is (about to be) asleep on `not_empty`. Pushes notify
    /// only then: profiling showed a futex wake per push as the largest
    /// cost of the write path while the storage thread was awake anyway.
    consumer_waiting: bool,
    /// Producers asleep on `not_full`.
    producers_waiting: usize,
}

/// The queue was closed: the item comes back to the caller.
#[derive(Debug)]
pub(crate) struct Closed<T>(pub T);

/// What one drain returned.
#[derive(Debug)]
pub(crate) struct Drained<T> {
    /// The items, in arrival order (at most the `max` asked for).
    pub items: Vec<T>,
    /// The queue is closed and empty: nothing will ever arrive again.
    pub finished: bool,
}

impl<T> CommitQueue<T> {
    /// A queue holding at most `capacity` items.
    pub(crate) fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a commit queue needs room for one item");
        CommitQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::with_capacity(capacity.min(1024)),
                closed: false,
                consumer_waiting: false,
                producers_waiting: 0,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
        }
    }

    /// Adds an item, waiting while the queue is full (back-pressure).
    pub(crate) fn push(&self, item: T) -> Result<(), Closed<T>> {
        let mut state = self.state.lock().recover();
        while !state.closed && state.items.len() >= self.capacity {
            state.producers_waiting += 1;
            state = self.not_full.wait(state).recover();
            state.producers_waiting -= 1;
        }
        if state.closed {
            return Err(Closed(item));
        }
        state.items.push_back(item);
        let wake = state.consumer_waiting;
        drop(state);
        if wake {
            self.not_empty.notify_one();
        }
        Ok(())
    }

    /// Takes up to `max` items, waiting for the first one (at most
    /// `timeout`, when given). `weigh` may stop the batch early: it is called
    /// with each item and the batch stops once it returns false, after
    /// including that item.
    pub(crate) fn drain(&self, max: usize, timeout: Option<Duration>, mut weigh: impl FnMut(&T) -> bool) -> Drained<T> {
        let mut state = self.state.lock().recover();
        while state.items.is_empty() && !state.closed {
            state.consumer_waiting = true;
            let timed_out = match timeout {
                None => {
                    state = self.not_empty.wait(state).recover();
                    false
                }
                Some(timeout) => {
                    let (next, result) = self.not_empty.wait_timeout(state, timeout).recover();
                    state = next;
                    result.timed_out()
                }
            };
            state.consumer_waiting = false;
            if timed_out {
                break;
            }
        }
        let mut items = Vec::new();
        while items.len() < max {
            let Some(item) = state.items.pop_front() else { break };
            let more = weigh(&item);
            items.push(item);
            if !more {
                break;
            }
        }
        let finished = state.closed && state.items.is_empty() && items.is_empty();
        let wake = !items.is_empty() && state.producers_waiting > 0;
        drop(state);
        if wake {
            self.not_full.notify_all();
        }
        Drained { items, finished }
    }

    /// Refuses further pushes; items already queued are still drained.
    pub(crate) fn close(&self) {
        self.state.lock().recover().closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }
}

/// A slot written once by the storage thread and waited on by a writer.
#[derive(Debug)]
pub(crate) struct Oneshot<T> {
    inner: Arc<(Mutex<Option<T>>, Condvar)>,
}

impl<T> Clone for Oneshot<T> {
    fn clone(&self) -> Self {
        Oneshot {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Oneshot<T> {
    pub(crate) fn new() -> Self {
        Oneshot {
            inner: Arc::new((Mutex::new(None), Condvar::new())),
        }
    }

    /// Fills the slot and wakes the waiter.
    pub(crate) fn complete(&self, value: T) {
        let (slot, ready) = &*self.inner;
        *slot.lock().recover() = Some(value);
        ready.notify_all();
    }

    /// Waits until the slot is filled and takes the value.
    pub(crate) fn wait(&self) -> T {
        let (slot, ready) = &*self.inner;
        let mut guard = slot.lock().recover();
        loop {
            if let Some(value) = guard.take() {
                return value;
            }
            guard = ready.wait(guard).recover();
        }
    }
}

#[cfg(all(test, dynamo_loom))]
mod loom_tests {
    //! Run with `RUSTFLAGS="--cfg dynamo_loom" cargo test -p dynamo-node --lib --release loom`.
    use super::*;
    use loom::thread;

    /// Exhaustive up to this many preemptions per execution: the usual loom
    /// bound (bugs need few preemptions to show), and it keeps the run to
    /// seconds instead of hours.
    fn model(test: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(test);
    }

    /// Two writers hand their writes to a storage thread that drains in
    /// batches of at most two through a queue of capacity one (so the
    /// back-pressure path runs), and completes each write with its own
    /// result. Every interleaving: nothing lost, nothing duplicated, no
    /// deadlock, every writer gets its own answer, batches bounded.
    #[test]
    fn loom_group_commit_hands_every_write_its_own_result() {
        model(|| {
            let queue: Arc<CommitQueue<(u32, Oneshot<u32>)>> = Arc::new(CommitQueue::new(1));
            let writers: Vec<_> = (0..2u32)
                .map(|id| {
                    let queue = Arc::clone(&queue);
                    thread::spawn(move || {
                        let done = Oneshot::new();
                        queue.push((id, done.clone())).map_err(|_| "closed").unwrap();
                        assert_eq!(done.wait(), id * 10, "writer {id} got another's result");
                    })
                })
                .collect();
            let consumer = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    while seen.len() < 2 {
                        let drained = queue.drain(2, None, |_| true);
                        assert!(drained.items.len() <= 2);
                        assert!(!drained.finished);
                        for (id, done) in drained.items {
                            seen.push(id);
                            done.complete(id * 10);
                        }
                    }
                    seen.sort();
                    assert_eq!(seen, vec![0, 1]);
                })
            };
            for writer in writers {
                writer.join().unwrap();
            }
            consumer.join().unwrap();
        });
    }

    /// Closing wakes a consumer waiting on an empty queue, and a push after
    /// close gets its item back.
    #[test]
    fn loom_close_wakes_the_storage_thread() {
        model(|| {
            let queue: Arc<CommitQueue<u32>> = Arc::new(CommitQueue::new(1));
            let consumer = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || loop {
                    let drained = queue.drain(4, None, |_| true);
                    if drained.finished {
                        return;
                    }
                })
            };
            queue.close();
            assert!(matches!(queue.push(7), Err(Closed(7))));
            consumer.join().unwrap();
        });
    }
}

#[cfg(all(test, not(dynamo_loom)))]
mod tests {
    use super::*;

    #[test]
    fn weigh_stops_a_batch_early() {
        let queue = CommitQueue::new(8);
        for item in 0..5 {
            queue.push(item).map_err(|_| ()).unwrap();
        }
        let drained = queue.drain(10, None, |&item| item < 2);
        assert_eq!(drained.items, vec![0, 1, 2]);
        let drained = queue.drain(1, None, |_| true);
        assert_eq!(drained.items, vec![3]);
    }

    #[test]
    fn a_timed_drain_of_an_empty_queue_returns_nothing() {
        let queue: CommitQueue<u8> = CommitQueue::new(1);
        let drained = queue.drain(1, Some(Duration::from_millis(1)), |_| true);
        assert!(drained.items.is_empty());
        assert!(!drained.finished);
        queue.close();
        assert!(queue.drain(1, None, |_| true).finished);
    }
}
