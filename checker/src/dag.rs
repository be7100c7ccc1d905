//! Causality between the versions of one key, derived from contexts alone.
//!
//! Versions are numbered in the order their puts were invoked. A context
//! can only name values some get returned before the put was invoked, so
//! every edge (child → value its context names) points to a *smaller*
//! number: the numbering is a topological order. Every query walks
//! backwards from its sources through a max-heap, visiting versions in
//! decreasing number, and stops as soon as the answer is known — nothing
//! below the lowest version still in question is ever visited. The cost of
//! a query is the size of the region of the DAG between its sources and
//! its lowest open target, which for a store that keeps siblings recent
//! (the normal case) is a handful of versions, however long the key's
//! history. Whole-key questions (what the final reads cover, what is
//! superseded by an acknowledged write) are single linear passes.
//!
//! Most histories are nearly chains (a read-modify-write supersedes what it
//! read), so each version also keeps a *prefix*: a number below which every
//! version is its ancestor or itself, computed in the construction pass
//! from its parents' prefixes. A walk that reaches a version settles every
//! target below that version's prefix at once, so walking from a new read
//! back to a process's old one costs a step, not the distance between them.
//!
//! Edges that would point upwards (a context naming a value written
//! later: the history is already broken there, and the reader reported
//! it) are dropped, so the walk always terminates.

use std::collections::BinaryHeap;

/// The versions of one key and their direct-supersedes edges.
#[derive(Debug, Default)]
pub struct Dag {
    /// `parents[offsets[v]..offsets[v+1]]` are the versions `v`'s context names.
    offsets: Vec<u32>,
    parents: Vec<u32>,
    /// Every version below `prefix[v]` is an ancestor of `v` or `v` itself.
    prefix: Vec<u32>,
    /// Per-query scratch: the query number that last touched a version.
    stamp: Vec<u32>,
    /// Per-query scratch: what reached a version in that query.
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
            stamp: vec![0; count],
            flags: vec![0; count],
            ..Dag::default()
        };
        dag.offsets.push(0);
        let mut scratch = Vec::new();
        for version in 0..count {
            scratch.clear();
            parents_of(version, &mut scratch);
            scratch.retain(|&parent| (parent as usize) < version);
            scratch.sort_unstable();
            scratch.dedup();
            // Below the best parent's prefix everything is an ancestor;
            // then climb while the next number is itself a parent.
            let mut prefix = scratch
                .iter()
                .map(|&parent| dag.prefix[parent as usize])
                .max()
                .unwrap_or(0);
            while scratch.binary_search(&prefix).is_ok() {
                prefix = (prefix + 1).max(dag.prefix[prefix as usize]);
            }
            if prefix == version as u32 {
                prefix += 1;
            }
            dag.prefix.push(prefix);
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

    fn begin(&mut self) {
        self.query = self.query.wrapping_add(1);
        if self.query == 0 {
            self.stamp.iter_mut().for_each(|stamp| *stamp = 0);
            self.query = 1;
        }
        self.heap.clear();
    }

    /// Marks `version` with `flag`; true when this query had not touched it.
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

    /// For each target (in the order given), whether it is an ancestor of
    /// some source — or equal to one, unless `strict`.
    pub fn covered(&mut self, sources: &[u32], targets: &[u32], strict: bool) -> Vec<bool> {
        let mut answer = vec![false; targets.len()];
        if targets.is_empty() || sources.is_empty() {
            return answer;
        }
        // Targets from the highest down; each is settled once the walk has
        // passed it.
        let mut order: Vec<usize> = (0..targets.len()).collect();
        order.sort_unstable_by(|&a, &b| targets[b].cmp(&targets[a]));
        let lowest = targets[order[order.len() - 1]];
        self.begin();
        for &source in sources {
            if strict {
                for index in self.offsets[source as usize]..self.offsets[source as usize + 1] {
                    let parent = self.parents[index as usize];
                    if parent >= lowest && self.touch(parent, FROM_SOURCE) {
                        self.heap.push(parent);
                    }
                }
            } else if source >= lowest && self.touch(source, FROM_SOURCE) {
                self.heap.push(source);
            }
        }
        let mut next = 0;
        while next < order.len() {
            let Some(version) = self.heap.pop() else { break };
            // Targets above this version can no longer be reached.
            while next < order.len() && targets[order[next]] > version {
                next += 1;
            }
            // This version and everything below its prefix are reached.
            let prefix = self.prefix[version as usize];
            while next < order.len() && (targets[order[next]] == version || targets[order[next]] < prefix) {
                answer[order[next]] = true;
                next += 1;
            }
            if next == order.len() {
                break;
            }
            // Nothing below the lowest target can matter (the highest open
            // one is not a floor: lower targets may still be reached).
            for index in self.offsets[version as usize]..self.offsets[version as usize + 1] {
                let parent = self.parents[index as usize];
                if parent >= lowest && self.touch(parent, FROM_SOURCE) {
                    self.heap.push(parent);
                }
            }
        }
        answer
    }

    /// Is `ancestor` a strict ancestor of `descendant`?
    pub fn precedes(&mut self, ancestor: u32, descendant: u32) -> bool {
        ancestor < descendant && self.covered(&[descendant], &[ancestor], true)[0]
    }

    /// A pair `(ancestor, descendant)` within `set`, if `set` is not an
    /// antichain.
    pub fn ordered_pair(&mut self, set: &[u32]) -> Option<(u32, u32)> {
        if set.len() < 2 {
            return None;
        }
        let hit = self.covered(set, set, true);
        let ancestor = set[hit.iter().position(|&hit| hit)?];
        // Which member descends from it: rare (a violation), so ask each.
        let descendant = set
            .iter()
            .copied()
            .find(|&member| member != ancestor && self.precedes(ancestor, member))?;
        Some((ancestor, descendant))
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
        let mut dag = diamond();
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
        let mut dag = diamond();
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

    /// Random DAGs (mostly chains, with forks and merges), every query
    /// against the transitive closure computed by brute force.
    #[test]
    fn queries_agree_with_the_transitive_closure_on_random_dags() {
        let mut state = 11u64;
        let mut next = move |bound: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % bound
        };
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

    #[test]
    fn closures_are_linear_passes() {
        let dag = diamond();
        assert_eq!(dag.down_closure(|v| v == 2), vec![true, true, true, false, false]);
        assert_eq!(dag.superseded_by(|v| v == 4), vec![true, true, true, true, false]);
        assert_eq!(dag.superseded_by(|v| v == 3), vec![true, false, false, false, false]);
    }
}
