//! Causality between the versions of one key, derived from contexts alone.
//!
//! Versions are numbered in the order their puts were invoked. A context
//! can only name values some get returned before the put was invoked, so
//! every edge (child → value its context names) points to a *smaller*
//! number: the numbering is a topological order. Edges that would point
//! upwards (a context naming a value written later: the history is already
//! broken there, and the reader reported it) are dropped.
//!
//! # Reachability labels
//!
//! Each version `v` carries its exact set of strict ancestors as a
//! [`Label`]: a *floor* below which every version is an ancestor except a
//! short sorted list of *exceptions*, and a bitset *window* from the floor
//! up to its highest ancestor above it:
//!
//! ```text
//! ancestors(v) = ([0, floor) \ exceptions) ∪ { u ≥ floor : window bit u − floor }
//! ```
//!
//! A label is the union of its parents' labels and the parents themselves
//! ([`Dag::union`]), built once per version in number order; the floor then
//! climbs over every leading member, so a chain's label is a bare floor.
//! In a store the versions below a new write that are not its ancestors are
//! the ones written concurrently with it (since its writer's read), so the
//! window spans about the key's recent concurrency, not its history. A
//! window wider than [`WINDOW_BITS_MAX`] is cut: the floor moves up and the
//! non-ancestors it passes become exceptions (versions nothing ever
//! superseded: lost writes, in a broken history), which keeps labels small
//! whatever the shape.
//!
//! Costs, with `w` the window (≤ [`WINDOW_BITS_MAX`] bits) and `e` the
//! exceptions of a label:
//!
//! - building a version's label: O(parents × (w/64 + e log e));
//! - "is `u` an ancestor of `v`": O(1) (O(log e) below the floor);
//! - [`Dag::covered`] of `t` targets by `s` sources: one union label of the
//!   sources, O(s × w/64), then O(1) per target — O(s + t) for a key's
//!   recent concurrency, however branching its causality;
//! - [`Dag::ordered_pair`]: the same union over the set;
//! - whole-key passes ([`Dag::down_closure`], [`Dag::superseded_by`]): one
//!   linear pass over the versions and edges;
//! - [`Dag::uncovered`] (k-staleness of a stale get) walks the region
//!   between what the get returned and what it missed, highest first.
//!
//! Memory: 16 bytes per version plus its window words and exceptions.

use std::collections::BinaryHeap;

/// The widest window a label keeps before its floor is moved up.
pub const WINDOW_BITS_MAX: u32 = 4096;

/// An exact set of versions: `([0, floor) \ except) ∪ window`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Label {
    /// Every version below it is a member, except `except`.
    pub floor: u32,
    /// Sorted versions below `floor` that are not members.
    pub except: Vec<u32>,
    /// Bit `i` of word `i / 64`: version `floor + i` is a member.
    pub window: Vec<u64>,
}

impl Label {
    /// Is `version` a member?
    pub fn contains(&self, version: u32) -> bool {
        contains(self.floor, &self.except, &self.window, version)
    }
}

fn contains(floor: u32, except: &[u32], window: &[u64], version: u32) -> bool {
    if version < floor {
        return except.binary_search(&version).is_err();
    }
    let bit = (version - floor) as usize;
    window.get(bit / 64).is_some_and(|word| word >> (bit % 64) & 1 == 1)
}

/// The versions of one key, their direct-supersedes edges and their
/// ancestor labels.
#[derive(Debug, Default)]
pub struct Dag {
    /// `parents[offsets[v]..offsets[v+1]]` are the versions `v`'s context names.
    offsets: Vec<u32>,
    parents: Vec<u32>,
    /// Label of `v`: `floors[v]`, `excepts[except_at[v]..except_at[v+1]]`,
    /// `words[word_at[v]..word_at[v+1]]`.
    floors: Vec<u32>,
    except_at: Vec<u32>,
    excepts: Vec<u32>,
    word_at: Vec<u64>,
    words: Vec<u64>,
    /// Per-walk scratch ([`Dag::uncovered`]): the walk that last touched a
    /// version, and what reached it then.
    stamp: Vec<u32>,
    flags: Vec<u8>,
    query: u32,
    heap: BinaryHeap<u32>,
}

const FROM_SOURCE: u8 = 1;
const FROM_OTHER: u8 = 2;

impl Dag {
    /// A DAG whose version `v` has the direct parents `parents_of(v)`.
    pub fn new(count: usize, mut parents_of: impl FnMut(usize, &mut Vec<u32>)) -> Dag {
        let mut dag = Dag {
            offsets: Vec::with_capacity(count + 1),
            floors: Vec::with_capacity(count),
            except_at: Vec::with_capacity(count + 1),
            word_at: Vec::with_capacity(count + 1),
            stamp: vec![0; count],
            flags: vec![0; count],
            ..Dag::default()
        };
        dag.offsets.push(0);
        dag.except_at.push(0);
        dag.word_at.push(0);
        let mut scratch = Vec::new();
        for version in 0..count {
            scratch.clear();
            parents_of(version, &mut scratch);
            scratch.retain(|&parent| (parent as usize) < version);
            scratch.sort_unstable();
            scratch.dedup();
            let label = dag.union(&scratch, true);
            dag.floors.push(label.floor);
            dag.excepts.extend_from_slice(&label.except);
            dag.except_at.push(dag.excepts.len() as u32);
            dag.words.extend_from_slice(&label.window);
            dag.word_at.push(dag.words.len() as u64);
            dag.parents.extend_from_slice(&scratch);
            dag.offsets.push(dag.parents.len() as u32);
        }
        dag
    }

    /// Number of versions.
    pub fn len(&self) -> usize {
        self.stamp.len()
    }

    /// True when the key has no versions.
    pub fn is_empty(&self) -> bool {
        self.stamp.is_empty()
    }

    /// The direct parents of `version`.
    pub fn parents(&self, version: u32) -> &[u32] {
        &self.parents[self.offsets[version as usize] as usize..self.offsets[version as usize + 1] as usize]
    }

    fn except(&self, version: u32) -> &[u32] {
        &self.excepts[self.except_at[version as usize] as usize..self.except_at[version as usize + 1] as usize]
    }

    fn window(&self, version: u32) -> &[u64] {
        &self.words[self.word_at[version as usize] as usize..self.word_at[version as usize + 1] as usize]
    }

    /// Is `ancestor` a strict ancestor of `descendant`?
    pub fn precedes(&self, ancestor: u32, descendant: u32) -> bool {
        ancestor < descendant
            && contains(
                self.floors[descendant as usize],
                self.except(descendant),
                self.window(descendant),
                ancestor,
            )
    }

    /// The union of the strict ancestors of `members` (and the members
    /// themselves when `with_members`), as a label.
    pub fn union(&self, members: &[u32], with_members: bool) -> Label {
        let Some(&highest) = members.iter().max_by_key(|&&member| self.floors[member as usize]) else {
            return Label::default();
        };
        let floor = self.floors[highest as usize];
        // Below the floor, `highest` holds everything but its exceptions;
        // an exception stays one unless another member holds it.
        let except: Vec<u32> = self
            .except(highest)
            .iter()
            .copied()
            .filter(|&version| {
                !members.iter().any(|&member| {
                    member != highest && ((with_members && member == version) || self.precedes(version, member))
                })
            })
            .collect();
        // Above it: every member's window (each starts at or below the
        // floor), and the members themselves.
        let end = members
            .iter()
            .map(|&member| {
                let top = self.floors[member as usize] as u64 + 64 * self.window(member).len() as u64;
                if with_members {
                    top.max(member as u64 + 1)
                } else {
                    top
                }
            })
            .max()
            .unwrap_or(0)
            .max(floor as u64);
        let mut window = vec![0u64; (end - floor as u64).div_ceil(64) as usize];
        for &member in members {
            let shift = floor - self.floors[member as usize];
            or_shifted(&mut window, self.window(member), shift);
            if with_members && member >= floor {
                let bit = (member - floor) as usize;
                window[bit / 64] |= 1 << (bit % 64);
            }
        }
        normalise(Label { floor, except, window })
    }

    /// For each target (in the order given), whether it is an ancestor of
    /// some source — or equal to one, unless `strict`.
    pub fn covered(&self, sources: &[u32], targets: &[u32], strict: bool) -> Vec<bool> {
        if targets.is_empty() || sources.is_empty() {
            return vec![false; targets.len()];
        }
        // A few targets: ask each pair (O(1) each) rather than build the
        // sources' union.
        if sources.len() == 1 || targets.len() <= 2 {
            return targets
                .iter()
                .map(|&target| {
                    sources
                        .iter()
                        .any(|&source| (!strict && target == source) || self.precedes(target, source))
                })
                .collect();
        }
        let below = self.union(sources, !strict);
        targets.iter().map(|&target| below.contains(target)).collect()
    }

    /// A pair `(ancestor, descendant)` within `set`, if `set` is not an
    /// antichain.
    pub fn ordered_pair(&self, set: &[u32]) -> Option<(u32, u32)> {
        if set.len() < 2 {
            return None;
        }
        let below = self.union(set, false);
        let ancestor = *set.iter().find(|&&member| below.contains(member))?;
        let descendant = *set.iter().find(|&&member| self.precedes(ancestor, member))?;
        Some((ancestor, descendant))
    }

    fn begin(&mut self) {
        self.query = self.query.wrapping_add(1);
        if self.query == 0 {
            self.stamp.iter_mut().for_each(|stamp| *stamp = 0);
            self.query = 1;
        }
        self.heap.clear();
    }

    /// Marks `version` with `flag`; true when this walk had not touched it.
    fn touch(&mut self, version: u32, flag: u8) -> bool {
        let index = version as usize;
        if self.stamp[index] != self.query {
            self.stamp[index] = self.query;
            self.flags[index] = flag;
            true
        } else {
            self.flags[index] |= flag;
            false
        }
    }

    fn flags_of(&self, version: u32) -> u8 {
        if self.stamp[version as usize] == self.query {
            self.flags[version as usize]
        } else {
            0
        }
    }

    /// Walks back from `missed` (versions a read failed to cover) to count
    /// the versions they and their ancestors hold that the read's `covers`
    /// (the values it returned) do not reach. `excused(v)` marks versions
    /// that count as covered (superseded by a delete), and with them every
    /// ancestor; `counts(v)` says which uncovered versions are counted.
    /// Calls `each(v)` for each counted version. Visits only the region
    /// between the highest source and the lowest uncovered version.
    pub fn uncovered(
        &mut self,
        covers: &[u32],
        missed: &[u32],
        excused: impl Fn(u32) -> bool,
        counts: impl Fn(u32) -> bool,
        mut each: impl FnMut(u32),
    ) {
        self.begin();
        let mut pending_other = 0usize;
        for &version in covers {
            if self.touch(version, FROM_SOURCE) {
                self.heap.push(version);
            }
        }
        for &version in missed {
            let fresh = self.touch(version, FROM_OTHER);
            if fresh {
                self.heap.push(version);
            }
            if self.flags_of(version) == FROM_OTHER && fresh {
                pending_other += 1;
            }
        }
        while pending_other > 0 {
            let Some(version) = self.heap.pop() else { break };
            let flags = self.flags_of(version);
            let covered = flags & FROM_SOURCE != 0;
            if !covered {
                // Reached only from a missed version.
                pending_other -= 1;
                if excused(version) {
                    continue;
                }
                if counts(version) {
                    each(version);
                }
            }
            let flag = if covered { FROM_SOURCE } else { FROM_OTHER };
            for index in self.offsets[version as usize]..self.offsets[version as usize + 1] {
                let parent = self.parents[index as usize];
                let before = self.flags_of(parent);
                let fresh = self.touch(parent, flag);
                if fresh {
                    self.heap.push(parent);
                }
                let after = self.flags_of(parent);
                // Track how many queued versions are reached only from the
                // missed side.
                let was_other_only = !fresh && before == FROM_OTHER;
                let is_other_only = after == FROM_OTHER;
                match (was_other_only, is_other_only) {
                    (false, true) => pending_other += 1,
                    (true, false) => pending_other -= 1,
                    _ => {}
                }
            }
        }
    }

    /// Marks every version that is `start`'s members or their ancestors
    /// (one linear pass, highest first).
    pub fn down_closure(&self, start: impl Fn(u32) -> bool) -> Vec<bool> {
        let mut marked: Vec<bool> = (0..self.len() as u32).map(start).collect();
        for version in (0..self.len() as u32).rev() {
            if marked[version as usize] {
                for &parent in self.parents(version) {
                    marked[parent as usize] = true;
                }
            }
        }
        marked
    }

    /// Marks every version that has a strict descendant in `members` (one
    /// linear pass).
    pub fn superseded_by(&self, members: impl Fn(u32) -> bool) -> Vec<bool> {
        let mut marked = vec![false; self.len()];
        for version in (0..self.len() as u32).rev() {
            if members(version) || marked[version as usize] {
                for &parent in self.parents(version) {
                    marked[parent as usize] = true;
                }
            }
        }
        marked
    }
}

/// ORs `from` (a window starting `shift` bits below `into`'s) into `into`.
fn or_shifted(into: &mut [u64], from: &[u64], shift: u32) {
    let (words, bits) = ((shift / 64) as usize, shift % 64);
    for (index, slot) in into.iter_mut().enumerate() {
        let low = from.get(index + words).copied().unwrap_or(0);
        let value = if bits == 0 {
            low
        } else {
            let high = from.get(index + words + 1).copied().unwrap_or(0);
            (low >> bits) | (high << (64 - bits))
        };
        *slot |= value;
        if index + words >= from.len() {
            break;
        }
    }
}

/// Climbs the floor over leading members, drops trailing empty words, and
/// cuts a window wider than [`WINDOW_BITS_MAX`] (its skipped non-members
/// become exceptions).
fn normalise(mut label: Label) -> Label {
    let bit = |window: &[u64], index: u32| window[(index / 64) as usize] >> (index % 64) & 1 == 1;
    let width = label.window.len() as u32 * 64;
    let mut skip = 0u32;
    while skip < width && bit(&label.window, skip) {
        skip += 1;
    }
    if width.saturating_sub(skip) > WINDOW_BITS_MAX {
        let cut = width - WINDOW_BITS_MAX;
        for index in skip..cut {
            if !bit(&label.window, index) {
                label.except.push(label.floor + index);
            }
        }
        skip = cut;
        while skip < width && bit(&label.window, skip) {
            skip += 1;
        }
    }
    if skip > 0 {
        let mut shifted = vec![0u64; label.window.len()];
        or_shifted(&mut shifted, &label.window, skip);
        label.window = shifted;
        label.floor += skip;
    }
    while label.window.last() == Some(&0) {
        label.window.pop();
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0 ← 1 ← 2, 0 ← 3 (3 concurrent with 1 and 2), {2,3} ← 4.
    fn diamond() -> Dag {
        let parents: Vec<Vec<u32>> = vec![vec![], vec![0], vec![1], vec![0], vec![2, 3]];
        Dag::new(parents.len(), |version, out| out.extend_from_slice(&parents[version]))
    }

    #[test]
    fn precedes_is_the_transitive_closure() {
        let dag = diamond();
        let expected = |a: u32, b: u32| -> bool {
            matches!(
                (a, b),
                (0, 1) | (0, 2) | (1, 2) | (0, 3) | (0, 4) | (1, 4) | (2, 4) | (3, 4)
            )
        };
        for a in 0..5 {
            for b in 0..5 {
                assert_eq!(dag.precedes(a, b), expected(a, b), "{a} < {b}");
            }
        }
    }

    #[test]
    fn ordered_pairs_are_found_and_antichains_pass() {
        let dag = diamond();
        assert_eq!(dag.ordered_pair(&[2, 3]), None);
        assert_eq!(dag.ordered_pair(&[1, 3]), None);
        assert_eq!(dag.ordered_pair(&[3, 4]), Some((3, 4)));
        assert_eq!(dag.ordered_pair(&[0, 2]), Some((0, 2)));
    }

    #[test]
    fn uncovered_counts_what_the_read_misses() {
        let mut dag = diamond();
        // A read returning 2 misses 3 (and nothing else below 3 is uncovered).
        let mut seen = Vec::new();
        dag.uncovered(&[2], &[3], |_| false, |_| true, |version| seen.push(version));
        assert_eq!(seen, vec![3]);
        // A read returning 0 misses 1, 2, 3 and 4 when 4 is the frontier.
        let mut seen = Vec::new();
        dag.uncovered(&[0], &[4], |_| false, |_| true, |version| seen.push(version));
        assert_eq!(seen, vec![4, 3, 2, 1]);
        // Excused versions (and their ancestors) are not counted.
        let mut seen = Vec::new();
        dag.uncovered(
            &[0],
            &[4],
            |version| version == 2,
            |_| true,
            |version| seen.push(version),
        );
        assert_eq!(seen, vec![4, 3]);
    }

    /// A small seeded generator: `next(bound)` in `[0, bound)`.
    fn lcg(mut state: u64) -> impl FnMut(u64) -> u64 {
        move |bound: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % bound
        }
    }

    /// Random DAGs (mostly chains, with forks and merges), every query
    /// against the transitive closure computed by brute force.
    #[test]
    fn queries_agree_with_the_transitive_closure_on_random_dags() {
        let mut next = lcg(11u64);
        for _ in 0..300 {
            let count = 1 + next(40) as usize;
            let mut parents: Vec<Vec<u32>> = Vec::new();
            for version in 0..count {
                let mut mine = Vec::new();
                if version > 0 {
                    // Usually the previous version; sometimes an older one
                    // (a fork); sometimes two (a merge); sometimes none.
                    match next(10) {
                        0 => {}
                        1..=6 => mine.push(version as u32 - 1),
                        7 | 8 => mine.push(next(version as u64) as u32),
                        _ => {
                            mine.push(next(version as u64) as u32);
                            mine.push(next(version as u64) as u32);
                        }
                    }
                }
                parents.push(mine);
            }
            let mut below = vec![vec![false; count]; count];
            for version in 0..count {
                for &parent in &parents[version] {
                    let inherited = below[parent as usize].clone();
                    let mine = &mut below[version];
                    mine[parent as usize] = true;
                    for (slot, &is_below) in mine.iter_mut().zip(&inherited) {
                        *slot |= is_below;
                    }
                }
            }
            let mut dag = Dag::new(count, |version, out| out.extend_from_slice(&parents[version]));
            for _ in 0..20 {
                let sources: Vec<u32> = (0..1 + next(3)).map(|_| next(count as u64) as u32).collect();
                let targets: Vec<u32> = (0..1 + next(4)).map(|_| next(count as u64) as u32).collect();
                for strict in [false, true] {
                    let answer = dag.covered(&sources, &targets, strict);
                    for (index, &target) in targets.iter().enumerate() {
                        let expected = sources
                            .iter()
                            .any(|&source| below[source as usize][target as usize] || (!strict && source == target));
                        assert_eq!(
                            answer[index], expected,
                            "{parents:?} {sources:?} -> {targets:?}[{index}] strict {strict}"
                        );
                    }
                }
                // k-staleness: what the missed targets and their ancestors
                // hold that the sources do not reach.
                let reached = |version: usize| {
                    sources
                        .iter()
                        .any(|&source| source as usize == version || below[source as usize][version])
                };
                let missed: Vec<u32> = targets
                    .iter()
                    .copied()
                    .filter(|&target| !reached(target as usize))
                    .collect();
                let mut expected: Vec<u32> = (0..count as u32)
                    .filter(|&version| {
                        !reached(version as usize)
                            && missed
                                .iter()
                                .any(|&miss| miss == version || below[miss as usize][version as usize])
                    })
                    .collect();
                let mut counted = Vec::new();
                dag.uncovered(&sources, &missed, |_| false, |_| true, |version| counted.push(version));
                counted.sort_unstable();
                expected.sort_unstable();
                assert_eq!(counted, expected, "{parents:?} {sources:?} missed {missed:?}");
            }
        }
    }

    /// Long keys whose windows outgrow [`WINDOW_BITS_MAX`]: versions
    /// nothing supersedes (lost writes) and wide concurrency, checked
    /// against the transitive closure at random pairs and sets.
    #[test]
    fn labels_stay_exact_when_windows_are_cut() {
        let count = 3 * WINDOW_BITS_MAX as usize;
        let mut next = lcg(5u64);
        let mut parents: Vec<Vec<u32>> = Vec::new();
        for version in 0..count as u32 {
            let mut mine = Vec::new();
            // Every 997th version is never named again (a lost write);
            // others name one or two recent versions, skipping the lost.
            if version > 0 && version % 997 != 1 {
                for _ in 0..1 + next(2) {
                    let back = 1 + next(300.min(version as u64)) as u32;
                    let parent = version - back;
                    if parent % 997 != 0 {
                        mine.push(parent);
                    }
                }
            }
            parents.push(mine);
        }
        let mut below: Vec<Vec<u64>> = Vec::with_capacity(count);
        for named in &parents {
            let mut mine = vec![0u64; count.div_ceil(64)];
            for &parent in named {
                let parent = parent as usize;
                for (slot, inherited) in mine.iter_mut().zip(&below[parent]) {
                    *slot |= inherited;
                }
                mine[parent / 64] |= 1 << (parent % 64);
            }
            below.push(mine);
        }
        let truth = |a: u32, b: u32| below[b as usize][a as usize / 64] >> (a % 64) & 1 == 1;
        let dag = Dag::new(count, |version, out| out.extend_from_slice(&parents[version]));
        assert!(
            (0..count as u32).any(|version| !dag.except(version).is_empty()),
            "no window was cut: the test does not test the cut"
        );
        for _ in 0..20_000 {
            let b = next(count as u64) as u32;
            let a = next(count as u64) as u32;
            assert_eq!(dag.precedes(a, b), truth(a, b), "{a} < {b}");
        }
        for _ in 0..2_000 {
            let sources: Vec<u32> = (0..1 + next(5)).map(|_| next(count as u64) as u32).collect();
            let targets: Vec<u32> = (0..1 + next(5)).map(|_| next(count as u64) as u32).collect();
            let answer = dag.covered(&sources, &targets, true);
            for (index, &target) in targets.iter().enumerate() {
                let expected = sources.iter().any(|&source| truth(target, source));
                assert_eq!(answer[index], expected, "{sources:?} -> {target}");
            }
        }
    }

    #[test]
    fn closures_are_linear_passes() {
        let dag = diamond();
        assert_eq!(dag.down_closure(|v| v == 2), vec![true, true, true, false, false]);
        assert_eq!(dag.superseded_by(|v| v == 4), vec![true, true, true, true, false]);
        assert_eq!(dag.superseded_by(|v| v == 3), vec![true, false, false, false, false]);
    }
}
