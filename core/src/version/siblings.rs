//! Versions and sibling sets, under either versioning scheme.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::clock::{put_actor, put_clock, read_actor, read_clock, Actor, Causality, ClockEntry, Dot, VectorClock};
use crate::codec::{put_bytes, put_varint, DecodeError, Reader};
use crate::limits::{CLOCK_ENTRIES_MAX, SIBLINGS_MAX, VALUE_BYTES_MAX};

/// A put whose context (or stored set) already holds the coordinator's
/// largest counter: no new version can be made by that actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the context's counter for {actor} is already at its maximum ({max}); it cannot have come from this cluster", max = u64::MAX)]
pub struct CounterExhausted {
    /// The coordinator's actor.
    pub actor: Actor,
}

/// Which rule decides that one version supersedes another. A cluster-wide
/// setting: every node of a cluster must use the same one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Versioning {
    /// Dotted version vectors: a version supersedes another exactly when its
    /// past covers the other's dot. Never loses a concurrent write.
    #[default]
    Dvv,
    /// The paper's plain vector clocks: a version supersedes another when its
    /// clock descends from the other's. Loses writes made through one
    /// coordinator from the same context; kept to show that.
    Paper,
}

impl FromStr for Versioning {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "dvv" => Ok(Versioning::Dvv),
            "paper" => Ok(Versioning::Paper),
            other => Err(format!("unknown versioning {other:?}: expected \"dvv\" or \"paper\"")),
        }
    }
}

impl fmt::Display for Versioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Versioning::Dvv => "dvv",
            Versioning::Paper => "paper",
        })
    }
}

/// One version of a key's value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// The event that created this version; unique per version.
    pub dot: Dot,
    /// When the dot was issued (coordinator's wall clock, milliseconds);
    /// the timestamp of the dot's entry in [`Version::clock`].
    pub timestamp_ms: u64,
    /// The causal past the version was written with: the client's context,
    /// truncated. Under `paper` the coordinator's own entry is folded into
    /// the dot instead.
    pub past: VectorClock,
    /// The value; `None` is a tombstone (a delete), which gets never return.
    pub value: Option<Vec<u8>>,
}

impl Version {
    /// The version's full clock: its past plus its dot.
    pub fn clock(&self) -> VectorClock {
        let mut clock = self.past.clone();
        clock.observe(ClockEntry {
            actor: self.dot.actor,
            counter: self.dot.counter,
            timestamp_ms: self.timestamp_ms,
        });
        clock
    }

    /// True for a delete marker.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// True when `self` makes `other` obsolete under `versioning`.
    pub fn supersedes(&self, other: &Version, versioning: Versioning) -> bool {
        if self.dot == other.dot {
            return false;
        }
        match versioning {
            Versioning::Dvv => self.past.covers(&other.dot),
            Versioning::Paper => other.clock().compare(&self.clock()) == Causality::Before,
        }
    }
}

/// The versions of one key none of which supersedes another (an antichain),
/// sorted by dot.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SiblingSet {
    versions: Vec<Version>,
}

impl SiblingSet {
    /// No versions: a key never written.
    pub fn new() -> Self {
        SiblingSet::default()
    }

    /// The versions, sorted by dot (tombstones included).
    pub fn versions(&self) -> &[Version] {
        &self.versions
    }

    /// True when there are no versions at all (not even tombstones).
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// The values a get returns: every sibling but tombstones.
    pub fn live_values(&self) -> impl Iterator<Item = &[u8]> {
        self.versions.iter().filter_map(|version| version.value.as_deref())
    }

    /// The context a get returns: the join of every sibling's full clock,
    /// tombstones included (so that a put after a delete supersedes it).
    pub fn context(&self) -> VectorClock {
        let mut context = VectorClock::new();
        for version in &self.versions {
            context.merge(&version.past);
            context.observe(ClockEntry {
                actor: version.dot.actor,
                counter: version.dot.counter,
                timestamp_ms: version.timestamp_ms,
            });
        }
        context
    }

    /// The largest counter of `actor` this set knows of.
    pub fn max_counter(&self, actor: &Actor) -> u64 {
        self.versions
            .iter()
            .map(|version| {
                let own = if version.dot.actor == *actor {
                    version.dot.counter
                } else {
                    0
                };
                own.max(version.past.get(actor))
            })
            .max()
            .unwrap_or(0)
    }

    /// The coordinator's step of a put (or, with `value: None`, a delete):
    /// makes the new version from the client's `context` with a fresh dot
    /// of `actor`, truncates its clock to `clock_entries_max` entries, adds
    /// it, and returns it (to be replicated together with the whole set).
    pub fn put(
        &mut self,
        actor: Actor,
        context: &VectorClock,
        value: Option<Vec<u8>>,
        now_ms: u64,
        versioning: Versioning,
        clock_entries_max: usize,
    ) -> Result<Version, CounterExhausted> {
        self.put_above(actor, 0, context, value, now_ms, versioning, clock_entries_max)
    }

    /// [`SiblingSet::put`] with the new dot's counter above `floor` too.
    ///
    /// A coordinator that holds nothing of a key (its tombstone reaped
    /// here) and is given an empty context (the replicas that answered the
    /// read had reaped it too) would count from 1 again, reusing dots that a
    /// replica which has not reaped yet still holds in the tombstone: the
    /// new write is then "already seen" there, and anti-entropy spreads the
    /// tombstone over it (Riak's kv679). A floor that rises with the wall
    /// clock makes a new dot newer than any its actor made before.
    #[allow(clippy::too_many_arguments)]
    pub fn put_above(
        &mut self,
        actor: Actor,
        floor: u64,
        context: &VectorClock,
        value: Option<Vec<u8>>,
        now_ms: u64,
        versioning: Versioning,
        clock_entries_max: usize,
    ) -> Result<Version, CounterExhausted> {
        // The context is client input: a forged counter at u64::MAX must be
        // refused, not wrapped to 0 (a version no decoder accepts) or let
        // overflow (a panic in a debug build).
        let counter = self
            .max_counter(&actor)
            .max(context.get(&actor))
            .max(floor)
            .checked_add(1)
            .ok_or(CounterExhausted { actor })?;
        let mut past = context.clone();
        if versioning == Versioning::Paper {
            // The paper's new clock is the context with the coordinator's
            // entry advanced: that entry lives in the dot.
            past.remove(&actor);
        }
        let budget = if past.get(&actor) > 0 {
            clock_entries_max
        } else {
            clock_entries_max.saturating_sub(1)
        };
        past.truncate(budget, Some(&actor));
        let version = Version {
            dot: Dot { actor, counter },
            timestamp_ms: now_ms,
            past,
            value,
        };
        self.insert(version.clone(), versioning);
        Ok(version)
    }

    /// Adds one version: it is dropped if a sibling supersedes it (or it is
    /// already here); otherwise every sibling it supersedes is dropped.
    /// Returns true when the set changed.
    pub fn insert(&mut self, version: Version, versioning: Versioning) -> bool {
        let mut single = SiblingSet::new();
        single.versions.push(version);
        self.merge(&single, versioning)
    }

    /// Merges another replica's set into this one: the result is the
    /// versions of the union that no version of the union supersedes.
    /// Commutative, associative and idempotent on the sets replicas hold.
    /// Returns true when this set changed.
    pub fn merge(&mut self, other: &SiblingSet, versioning: Versioning) -> bool {
        let mut union: Vec<Version> = Vec::with_capacity(self.versions.len() + other.versions.len());
        let (mut left, mut right) = (self.versions.iter().peekable(), other.versions.iter().peekable());
        loop {
            let next = match (left.peek(), right.peek()) {
                (None, None) => break,
                (Some(_), None) => left.next(),
                (None, Some(_)) => right.next(),
                (Some(a), Some(b)) => match a.dot.cmp(&b.dot) {
                    std::cmp::Ordering::Less => left.next(),
                    std::cmp::Ordering::Greater => right.next(),
                    std::cmp::Ordering::Equal => {
                        right.next();
                        left.next()
                    }
                },
            };
            if let Some(version) = next {
                union.push(version.clone());
            }
        }
        let keep = match versioning {
            Versioning::Dvv => survivors_dvv(&union),
            Versioning::Paper => survivors_paper(&union),
        };
        let merged: Vec<Version> = union
            .into_iter()
            .zip(keep)
            .filter_map(|(version, keep)| keep.then_some(version))
            .collect();
        let changed = merged != self.versions;
        self.versions = merged;
        changed
    }

    /// True when no version supersedes another (pairwise: for checks).
    pub fn is_antichain(&self, versioning: Versioning) -> bool {
        self.versions
            .iter()
            .all(|a| self.versions.iter().all(|b| !a.supersedes(b, versioning)))
    }
}

/// Which versions of `union` no other version supersedes, under `dvv`,
/// in O(total clock entries · log actors) rather than pairwise: a version
/// is superseded exactly when another version's past covers its dot, so
/// per actor it is enough to know the highest counter any past covers and
/// which version's past that is (and the runner-up, from another version,
/// for that version itself). With hundreds of siblings the pairwise test
/// made every put quadratic and building a large set cubic.
fn survivors_dvv(union: &[Version]) -> Vec<bool> {
    // Per actor: (highest covered counter, the version covering it, the
    // highest covered counter among all other versions).
    let mut covered: BTreeMap<Actor, (u64, usize, u64)> = BTreeMap::new();
    for (index, version) in union.iter().enumerate() {
        for entry in version.past.entries() {
            let slot = covered.entry(entry.actor).or_insert((0, usize::MAX, 0));
            if entry.counter > slot.0 {
                *slot = (entry.counter, index, slot.0);
            } else if entry.counter > slot.2 {
                slot.2 = entry.counter;
            }
        }
    }
    union
        .iter()
        .enumerate()
        .map(|(index, candidate)| {
            let by_others = covered.get(&candidate.dot.actor).map_or(
                0,
                |&(best, holder, runner_up)| {
                    if holder == index {
                        runner_up
                    } else {
                        best
                    }
                },
            );
            by_others < candidate.dot.counter
        })
        .collect()
}

/// Which versions of `union` no other version supersedes, under `paper`:
/// dominance between whole clocks, pairwise (the paper's scheme is kept to
/// show the write it loses, not to hold large sets).
fn survivors_paper(union: &[Version]) -> Vec<bool> {
    union
        .iter()
        .map(|candidate| {
            !union.iter().any(|other| {
                other.supersedes(candidate, Versioning::Paper)
                    // Equal clocks with different dots can only come from
                    // truncation; keep the larger dot.
                    || (other.dot > candidate.dot && other.clock().compare(&candidate.clock()) == Causality::Equal)
            })
        })
        .collect()
}

const SIBLING_SET_FORMAT_V1: u8 = 1;
const TAG_TOMBSTONE: u8 = 0;
const TAG_VALUE: u8 = 1;

/// Encodes a sibling set (format 1):
///
/// ```text
/// u8      format = 1
/// varint  number of versions
/// per version, sorted by dot:
///   varint node, varint incarnation, varint counter   the dot
///   varint timestamp_ms                               when the dot was issued
///   clock                                             the past: varint count, then
///                                                     per entry varint node,
///                                                     incarnation, counter, timestamp
///   u8      0 = tombstone, 1 = value
///   varint length + bytes                             the value (tag 1 only)
/// ```
/// Why a sibling set cannot be written: it is past a bound its decoder
/// enforces, so what was written could never be read back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverBound {
    /// More siblings than a decoder takes.
    #[error("{0} siblings, over the decoders' limit of {SIBLINGS_MAX}")]
    Siblings(usize),
    /// A version's clock with more entries than a decoder takes.
    #[error("a clock of {0} entries, over the decoders' limit of {CLOCK_ENTRIES_MAX}")]
    ClockEntries(usize),
    /// A value larger than a decoder takes.
    #[error("a value of {0} bytes, over the limit of {VALUE_BYTES_MAX}")]
    Value(usize),
}

impl SiblingSet {
    /// Checks the set against every bound [`decode_sibling_set`] enforces:
    /// the pair of bounds (what a decoder refuses, no writer writes).
    ///
    /// # Errors
    /// The first bound the set is past.
    pub fn check_bounds(&self) -> Result<(), OverBound> {
        if self.versions.len() > SIBLINGS_MAX {
            return Err(OverBound::Siblings(self.versions.len()));
        }
        for version in &self.versions {
            if version.past.len() > CLOCK_ENTRIES_MAX {
                return Err(OverBound::ClockEntries(version.past.len()));
            }
            if let Some(value) = &version.value {
                if value.len() > VALUE_BYTES_MAX {
                    return Err(OverBound::Value(value.len()));
                }
            }
        }
        Ok(())
    }
}

/// Encodes a set (its bounds are the caller's to check first, with
/// [`SiblingSet::check_bounds`]: the node does before it persists).
pub fn encode_sibling_set(set: &SiblingSet) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        16 + set
            .versions
            .iter()
            .map(|v| 64 + v.value.as_ref().map_or(0, Vec::len))
            .sum::<usize>(),
    );
    out.push(SIBLING_SET_FORMAT_V1);
    put_varint(&mut out, set.versions.len() as u64);
    for version in &set.versions {
        put_actor(&mut out, &version.dot.actor);
        put_varint(&mut out, version.dot.counter);
        put_varint(&mut out, version.timestamp_ms);
        put_clock(&mut out, &version.past);
        match &version.value {
            None => out.push(TAG_TOMBSTONE),
            Some(value) => {
                out.push(TAG_VALUE);
                put_bytes(&mut out, value);
            }
        }
    }
    out
}

/// Decodes what [`encode_sibling_set`] wrote. Garbage is an error, never a
/// panic; the decoded set is canonical (sorted, no duplicate dots).
pub fn decode_sibling_set(bytes: &[u8]) -> Result<SiblingSet, DecodeError> {
    let mut reader = Reader::new(bytes);
    let format = reader.u8("sibling set format")?;
    if format != SIBLING_SET_FORMAT_V1 {
        return Err(DecodeError {
            offset: 0,
            what: "unknown sibling set format",
        });
    }
    let count = reader.varint_at_most(SIBLINGS_MAX, "sibling count")?;
    let mut versions: Vec<Version> = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let actor = read_actor(&mut reader)?;
        let counter = reader.varint("dot counter")?;
        if counter == 0 {
            return Err(reader.error("zero dot counter"));
        }
        let timestamp_ms = reader.varint("dot timestamp")?;
        let past = read_clock(&mut reader)?;
        let value = match reader.u8("value tag")? {
            TAG_TOMBSTONE => None,
            TAG_VALUE => Some(reader.bytes(VALUE_BYTES_MAX, "value")?.to_vec()),
            _ => return Err(reader.error("unknown value tag")),
        };
        let dot = Dot { actor, counter };
        if let Some(last) = versions.last() {
            if last.dot >= dot {
                return Err(reader.error("versions out of order"));
            }
        }
        versions.push(Version {
            dot,
            timestamp_ms,
            past,
            value,
        });
    }
    reader.finish()?;
    Ok(SiblingSet { versions })
}

#[cfg(test)]
mod tests {
    use super::super::clock::tests::actor;
    use super::*;
    use proptest::prelude::*;

    const ENTRIES: usize = crate::limits::CLOCK_ENTRIES_DEFAULT;

    #[test]
    fn blind_puts_through_one_coordinator_survive_under_dvv() {
        let a = actor(1);
        let mut set = SiblingSet::new();
        set.put(a, &VectorClock::new(), Some(b"x".to_vec()), 1, Versioning::Dvv, ENTRIES)
            .unwrap();
        set.put(a, &VectorClock::new(), Some(b"y".to_vec()), 2, Versioning::Dvv, ENTRIES)
            .unwrap();
        let values: Vec<&[u8]> = set.live_values().collect();
        assert_eq!(values, vec![&b"x"[..], &b"y"[..]]);
        // A put with the merged context replaces both: exactly one value.
        let context = set.context();
        set.put(a, &context, Some(b"xy".to_vec()), 3, Versioning::Dvv, ENTRIES)
            .unwrap();
        assert_eq!(set.live_values().collect::<Vec<_>>(), vec![&b"xy"[..]]);
    }

    #[test]
    fn the_paper_scheme_loses_the_first_of_two_writes_from_one_context() {
        let a = actor(1);
        for versioning in [Versioning::Dvv, Versioning::Paper] {
            let mut set = SiblingSet::new();
            set.put(a, &VectorClock::new(), Some(b"v0".to_vec()), 1, versioning, ENTRIES)
                .unwrap();
            let read = set.context();
            set.put(a, &read, Some(b"client-1".to_vec()), 2, versioning, ENTRIES)
                .unwrap();
            set.put(a, &read, Some(b"client-2".to_vec()), 3, versioning, ENTRIES)
                .unwrap();
            let values: Vec<&[u8]> = set.live_values().collect();
            match versioning {
                Versioning::Dvv => assert_eq!(values, vec![&b"client-1"[..], &b"client-2"[..]]),
                Versioning::Paper => assert_eq!(values, vec![&b"client-2"[..]], "the anomaly must stay visible"),
            }
        }
    }

    #[test]
    fn a_delete_leaves_a_tombstone_that_gets_do_not_return() {
        let a = actor(1);
        let mut set = SiblingSet::new();
        set.put(a, &VectorClock::new(), Some(b"x".to_vec()), 1, Versioning::Dvv, ENTRIES)
            .unwrap();
        let context = set.context();
        set.put(a, &context, None, 2, Versioning::Dvv, ENTRIES).unwrap();
        assert_eq!(set.live_values().count(), 0);
        assert_eq!(set.versions().len(), 1);
        assert!(set.versions()[0].is_tombstone());
        // Writing after the delete, with the get's context, supersedes it.
        let context = set.context();
        set.put(a, &context, Some(b"z".to_vec()), 3, Versioning::Dvv, ENTRIES)
            .unwrap();
        assert_eq!(set.versions().len(), 1);
        assert_eq!(set.live_values().collect::<Vec<_>>(), vec![&b"z"[..]]);
    }

    #[test]
    fn truncation_forgets_causality_and_leaves_siblings() {
        // Three coordinators; threshold 1 means a new version keeps only its
        // own entry, so it forgets what its context covered.
        let (a, b) = (actor(1), actor(2));
        for versioning in [Versioning::Dvv, Versioning::Paper] {
            let mut set = SiblingSet::new();
            set.put(a, &VectorClock::new(), Some(b"first".to_vec()), 1, versioning, 1)
                .unwrap();
            let context = set.context();
            set.put(b, &context, Some(b"second".to_vec()), 2, versioning, 1)
                .unwrap();
            let values: Vec<&[u8]> = set.live_values().collect();
            // Under both schemes the truncated clock no longer shows that
            // "second" descends from "first", so both are kept as siblings:
            // no write is lost, one extra sibling appears.
            assert_eq!(values.len(), 2, "{versioning}");
        }
    }

    /// Replicas' sets as a cluster makes them: coordinators put with
    /// contexts read from some replica, replicas exchange whole sets.
    fn arb_replica_sets(versioning: Versioning) -> impl Strategy<Value = Vec<SiblingSet>> {
        let step = (0usize..3, 0usize..3, 0usize..3, any::<bool>(), any::<bool>());
        proptest::collection::vec(step, 1..24).prop_map(move |steps| {
            let mut replicas = vec![SiblingSet::new(); 3];
            for (index, (coordinator, read_from, sync_to, blind, delete)) in steps.into_iter().enumerate() {
                let context = if blind {
                    VectorClock::new()
                } else {
                    replicas[read_from].context()
                };
                let value = (!delete).then(|| format!("v{index}").into_bytes());
                replicas[coordinator]
                    .put(
                        actor(coordinator as u32),
                        &context,
                        value,
                        index as u64,
                        versioning,
                        ENTRIES,
                    )
                    .unwrap();
                let sent = replicas[coordinator].clone();
                replicas[sync_to].merge(&sent, versioning);
            }
            replicas
        })
    }

    fn merged(a: &SiblingSet, b: &SiblingSet) -> SiblingSet {
        let mut out = a.clone();
        out.merge(b, Versioning::Dvv);
        out
    }

    proptest! {
        /// The per-actor survivors test keeps exactly the versions the
        /// pairwise definition keeps, on the unions replicas really merge.
        #[test]
        fn dvv_survivors_match_the_pairwise_definition(replicas in arb_replica_sets(Versioning::Dvv)) {
            let mut union: Vec<Version> = replicas.iter().flat_map(|set| set.versions().iter().cloned()).collect();
            union.sort_by_key(|version| version.dot);
            union.dedup_by(|a, b| a.dot == b.dot);
            let pairwise: Vec<bool> = union
                .iter()
                .map(|candidate| !union.iter().any(|other| other.supersedes(candidate, Versioning::Dvv)))
                .collect();
            prop_assert_eq!(survivors_dvv(&union), pairwise);
        }

        #[test]
        fn merge_is_commutative_associative_idempotent_and_an_antichain(replicas in arb_replica_sets(Versioning::Dvv)) {
            let (a, b, c) = (&replicas[0], &replicas[1], &replicas[2]);
            prop_assert_eq!(merged(a, b), merged(b, a));
            prop_assert_eq!(merged(&merged(a, b), c), merged(a, &merged(b, c)));
            prop_assert_eq!(merged(a, a), a.clone());
            for set in [a, b, c, &merged(&merged(a, b), c)] {
                prop_assert!(set.is_antichain(Versioning::Dvv));
            }
        }

        #[test]
        fn a_dvv_put_discards_exactly_the_siblings_its_context_covers(
            replicas in arb_replica_sets(Versioning::Dvv),
            read_from in 0usize..3,
            write_at in 0usize..3,
        ) {
            let context = replicas[read_from].context();
            let before = replicas[write_at].clone();
            let mut after = before.clone();
            let new = after.put(actor(9), &context, Some(b"new".to_vec()), 1_000, Versioning::Dvv, ENTRIES).unwrap();
            for old in before.versions() {
                let kept = after.versions().contains(old);
                prop_assert_eq!(kept, !context.covers(&old.dot), "sibling {} with context {}", old.dot, context);
            }
            prop_assert!(after.versions().contains(&new));
        }

        #[test]
        fn sibling_sets_round_trip(replicas in arb_replica_sets(Versioning::Dvv)) {
            for set in &replicas {
                prop_assert_eq!(&decode_sibling_set(&encode_sibling_set(set)).unwrap(), set);
            }
        }

        #[test]
        fn paper_sets_are_antichains_too(replicas in arb_replica_sets(Versioning::Paper)) {
            for set in &replicas {
                prop_assert!(set.is_antichain(Versioning::Paper));
            }
        }

        #[test]
        fn sibling_set_decoder_rejects_garbage_without_panicking(bytes: Vec<u8>) {
            let _ = decode_sibling_set(&bytes);
        }
    }

    #[test]
    fn a_set_past_a_decoder_bound_is_refused_before_it_is_written() {
        let mut set = SiblingSet::new();
        for node in 0..(SIBLINGS_MAX as u32 + 1) {
            set.put(
                actor(node),
                &VectorClock::new(),
                Some(vec![1]),
                1,
                Versioning::Dvv,
                ENTRIES,
            )
            .unwrap();
        }
        assert_eq!(set.versions().len(), SIBLINGS_MAX + 1);
        assert_eq!(set.check_bounds(), Err(OverBound::Siblings(SIBLINGS_MAX + 1)));
        // And what it refuses, the decoder refuses too.
        assert!(decode_sibling_set(&encode_sibling_set(&set)).is_err());
        // What it passes, the decoder reads back.
        let mut small = SiblingSet::new();
        small
            .put(
                actor(1),
                &VectorClock::new(),
                Some(vec![1]),
                1,
                Versioning::Dvv,
                ENTRIES,
            )
            .unwrap();
        small.check_bounds().unwrap();
        assert_eq!(decode_sibling_set(&encode_sibling_set(&small)).unwrap(), small);
    }
}
