//! Vector clocks of `(actor, counter, timestamp)` entries.

use std::cmp::Ordering;
use std::fmt;

use crate::ids::NodeId;

/// A node incarnation: the unit that issues counters. A node gets a fresh
/// incarnation whenever its data directory is opened anew, so counters are
/// never reissued after data loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Actor {
    /// The node this incarnation belongs to (for people reading clocks).
    pub node: NodeId,
    /// Distinguishes this incarnation from every other of the same node.
    pub incarnation: u64,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}.{:x}", self.node.0, self.incarnation)
    }
}

/// The event that created a version: the `counter`-th event of `actor` on
/// this key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// Who created the version.
    pub actor: Actor,
    /// Its counter for this key, starting at 1.
    pub counter: u64,
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.actor, self.counter)
    }
}

/// One entry of a vector clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockEntry {
    /// Whose events this entry counts.
    pub actor: Actor,
    /// How many of `actor`'s events the clock covers (all of `1..=counter`).
    pub counter: u64,
    /// Milliseconds (wall clock of the node that last advanced the entry);
    /// only truncation reads it, to drop the oldest entry.
    pub timestamp_ms: u64,
}

/// How two clocks relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Causality {
    /// Every counter of the left is ≤ the right's, and one is smaller.
    Before,
    /// The mirror of `Before`.
    After,
    /// Same counters.
    Equal,
    /// Neither covers the other.
    Concurrent,
}

/// A vector clock: entries sorted by actor, every counter ≥ 1.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VectorClock {
    entries: Vec<ClockEntry>,
}

impl VectorClock {
    /// The empty clock (the context of a blind write).
    pub fn new() -> Self {
        VectorClock::default()
    }

    /// Builds a clock from entries in any order; for an actor named twice
    /// the larger counter wins; zero counters are dropped.
    pub fn from_entries(entries: impl IntoIterator<Item = ClockEntry>) -> Self {
        let mut clock = VectorClock::new();
        for entry in entries {
            clock.observe(entry);
        }
        clock
    }

    /// The entries, sorted by actor.
    pub fn entries(&self) -> &[ClockEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True for the empty clock.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, actor: &Actor) -> Result<usize, usize> {
        self.entries.binary_search_by(|entry| entry.actor.cmp(actor))
    }

    /// The counter of `actor`, 0 when absent.
    pub fn get(&self, actor: &Actor) -> u64 {
        self.position(actor)
            .map(|index| self.entries[index].counter)
            .unwrap_or(0)
    }

    /// True when this clock covers the event `dot`.
    pub fn covers(&self, dot: &Dot) -> bool {
        self.get(&dot.actor) >= dot.counter
    }

    /// Raises `entry.actor`'s counter to at least `entry.counter`, keeping
    /// the timestamp of the larger counter (the later one on a tie).
    pub fn observe(&mut self, entry: ClockEntry) {
        if entry.counter == 0 {
            return;
        }
        match self.position(&entry.actor) {
            Ok(index) => {
                let mine = &mut self.entries[index];
                match entry.counter.cmp(&mine.counter) {
                    Ordering::Greater => *mine = entry,
                    Ordering::Equal => mine.timestamp_ms = mine.timestamp_ms.max(entry.timestamp_ms),
                    Ordering::Less => {}
                }
            }
            Err(index) => self.entries.insert(index, entry),
        }
    }

    /// Advances `actor`'s entry by one, stamped `now_ms`; returns the new
    /// counter.
    pub fn advance(&mut self, actor: Actor, now_ms: u64) -> u64 {
        let counter = self.get(&actor) + 1;
        self.observe(ClockEntry {
            actor,
            counter,
            timestamp_ms: now_ms,
        });
        counter
    }

    /// Removes `actor`'s entry, if any.
    pub fn remove(&mut self, actor: &Actor) {
        if let Ok(index) = self.position(actor) {
            self.entries.remove(index);
        }
    }

    /// The least upper bound: pointwise maximum.
    pub fn merge(&mut self, other: &VectorClock) {
        for entry in &other.entries {
            self.observe(*entry);
        }
    }

    /// Compares counters (timestamps play no part).
    pub fn compare(&self, other: &VectorClock) -> Causality {
        let (mut less, mut greater) = (false, false);
        let (mut left, mut right) = (self.entries.iter().peekable(), other.entries.iter().peekable());
        loop {
            match (left.peek(), right.peek()) {
                (None, None) => break,
                (Some(_), None) => {
                    greater = true;
                    left.next();
                }
                (None, Some(_)) => {
                    less = true;
                    right.next();
                }
                (Some(a), Some(b)) => match a.actor.cmp(&b.actor) {
                    Ordering::Less => {
                        greater = true;
                        left.next();
                    }
                    Ordering::Greater => {
                        less = true;
                        right.next();
                    }
                    Ordering::Equal => {
                        match a.counter.cmp(&b.counter) {
                            Ordering::Less => less = true,
                            Ordering::Greater => greater = true,
                            Ordering::Equal => {}
                        }
                        left.next();
                        right.next();
                    }
                },
            }
            if less && greater {
                return Causality::Concurrent;
            }
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Drops entries with the oldest timestamp (ties: the smallest actor,
    /// so the result is deterministic) until at most `threshold` remain,
    /// never dropping `keep`. Returns how many were dropped.
    pub fn truncate(&mut self, threshold: usize, keep: Option<&Actor>) -> usize {
        let mut dropped = 0;
        while self.entries.len() > threshold {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .filter(|(_, entry)| Some(&entry.actor) != keep)
                .min_by_key(|(_, entry)| (entry.timestamp_ms, entry.actor))
                .map(|(index, _)| index);
            match oldest {
                Some(index) => {
                    self.entries.remove(index);
                    dropped += 1;
                }
                None => break,
            }
        }
        dropped
    }
}

impl fmt::Display for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (index, entry) in self.entries.iter().enumerate() {
            if index > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{}:{}", entry.actor, entry.counter)?;
        }
        write!(f, "}}")
    }
}

/// Appends the binary form of a clock: a varint entry count, then per entry
/// varints of node, incarnation, counter and timestamp, sorted by actor.
pub(crate) fn put_clock(out: &mut Vec<u8>, clock: &VectorClock) {
    use crate::codec::put_varint;
    put_varint(out, clock.entries.len() as u64);
    for entry in &clock.entries {
        put_actor(out, &entry.actor);
        put_varint(out, entry.counter);
        put_varint(out, entry.timestamp_ms);
    }
}

pub(crate) fn put_actor(out: &mut Vec<u8>, actor: &Actor) {
    use crate::codec::put_varint;
    put_varint(out, u64::from(actor.node.0));
    put_varint(out, actor.incarnation);
}

pub(crate) fn read_actor(reader: &mut crate::codec::Reader<'_>) -> Result<Actor, crate::codec::DecodeError> {
    let node = reader.varint_at_most(u32::MAX as usize, "node id")? as u32;
    let incarnation = reader.varint("incarnation")?;
    Ok(Actor {
        node: NodeId(node),
        incarnation,
    })
}

/// Reads what [`put_clock`] wrote; rejects unsorted or duplicate actors and
/// zero counters, so that every decoded clock is canonical.
pub(crate) fn read_clock(reader: &mut crate::codec::Reader<'_>) -> Result<VectorClock, crate::codec::DecodeError> {
    let count = reader.varint_at_most(crate::limits::CLOCK_ENTRIES_MAX, "clock entry count")?;
    let mut entries: Vec<ClockEntry> = Vec::with_capacity(count);
    for _ in 0..count {
        let actor = read_actor(reader)?;
        let counter = reader.varint("counter")?;
        if counter == 0 {
            return Err(reader.error("zero counter in clock"));
        }
        let timestamp_ms = reader.varint("timestamp")?;
        if let Some(last) = entries.last() {
            if last.actor >= actor {
                return Err(reader.error("clock entries out of order"));
            }
        }
        entries.push(ClockEntry {
            actor,
            counter,
            timestamp_ms,
        });
    }
    Ok(VectorClock { entries })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn actor(node: u32) -> Actor {
        Actor {
            node: NodeId(node),
            incarnation: u64::from(node) * 7919,
        }
    }

    pub(crate) fn arb_clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::vec((0u32..4, 1u64..5, 0u64..100), 0..5).prop_map(|entries| {
            VectorClock::from_entries(entries.into_iter().map(|(node, counter, timestamp_ms)| ClockEntry {
                actor: actor(node),
                counter,
                timestamp_ms,
            }))
        })
    }

    fn leq(a: &VectorClock, b: &VectorClock) -> bool {
        matches!(a.compare(b), Causality::Before | Causality::Equal)
    }

    proptest! {
        #[test]
        fn order_is_reflexive(a in arb_clock()) {
            prop_assert_eq!(a.compare(&a), Causality::Equal);
        }

        #[test]
        fn order_is_antisymmetric(a in arb_clock(), b in arb_clock()) {
            let expected = match a.compare(&b) {
                Causality::Before => Causality::After,
                Causality::After => Causality::Before,
                other => other,
            };
            prop_assert_eq!(b.compare(&a), expected);
            if leq(&a, &b) && leq(&b, &a) {
                prop_assert_eq!(a.compare(&b), Causality::Equal);
            }
        }

        #[test]
        fn order_is_transitive(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
            if leq(&a, &b) && leq(&b, &c) {
                prop_assert!(leq(&a, &c));
            }
        }

        #[test]
        fn merge_is_the_least_upper_bound(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
            let mut join = a.clone();
            join.merge(&b);
            prop_assert!(leq(&a, &join));
            prop_assert!(leq(&b, &join));
            // Least: any upper bound of both is above the join.
            if leq(&a, &c) && leq(&b, &c) {
                prop_assert!(leq(&join, &c));
            }
            let mut other_way = b.clone();
            other_way.merge(&a);
            prop_assert_eq!(join.compare(&other_way), Causality::Equal);
        }

        #[test]
        fn advance_moves_strictly_after(a in arb_clock(), node in 0u32..5) {
            let mut next = a.clone();
            next.advance(actor(node), 1_000);
            prop_assert_eq!(a.compare(&next), Causality::Before);
        }

        #[test]
        fn truncation_keeps_the_newest_and_the_kept_actor(a in arb_clock(), threshold in 0usize..4) {
            let keep = a.entries().first().map(|entry| entry.actor);
            let mut truncated = a.clone();
            truncated.truncate(threshold, keep.as_ref());
            prop_assert!(truncated.len() <= threshold.max(usize::from(keep.is_some())));
            prop_assert!(leq(&truncated, &a));
            if let Some(keep) = keep {
                prop_assert_eq!(truncated.get(&keep), a.get(&keep));
            }
            // Whatever was dropped is no newer than anything kept (the kept
            // actor aside).
            let newest_dropped = a.entries().iter()
                .filter(|entry| truncated.get(&entry.actor) == 0)
                .map(|entry| entry.timestamp_ms).max();
            let oldest_kept = truncated.entries().iter()
                .filter(|entry| Some(entry.actor) != keep)
                .map(|entry| entry.timestamp_ms).min();
            if let (Some(dropped), Some(kept)) = (newest_dropped, oldest_kept) {
                prop_assert!(dropped <= kept);
            }
        }
    }

    #[test]
    fn truncation_drops_the_oldest_entry_as_in_the_paper() {
        let mut clock = VectorClock::new();
        for node in 0..12 {
            clock.observe(ClockEntry {
                actor: actor(node),
                counter: 1,
                timestamp_ms: 100 + u64::from(node),
            });
        }
        assert_eq!(clock.truncate(10, None), 2);
        assert_eq!(clock.get(&actor(0)), 0);
        assert_eq!(clock.get(&actor(1)), 0);
        assert_eq!(clock.get(&actor(2)), 1);
    }
}
