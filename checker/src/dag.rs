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
//! [`Label`]: a *floor* below which every version is an ancestor except
//! those in a short sorted list of *gaps* (ranges holding none), and a
//! bitset *window* from the floor up to its highest ancestor:
//!
//! ```text
//! ancestors(v) = ([0, floor) \ gaps) ∪ { u ≥ floor : window bit u − floor }
//! ```
//!
//! A label is the union of its parents' labels and the parents themselves
//! ([`Dag::union`]), built once per version in number order. The floor
//! climbs over every leading member, so a chain's label is a bare floor; a
//! long clear run at the window's start becomes a gap (a blind write's
//! descendants: everything before the write is one gap); a window wider
//! than [`WINDOW_BITS_MAX`] is cut, its clear runs below the cut becoming
//! gaps. In a store the versions below a new write that are not its
//! ancestors are the ones written concurrently with it (since its writer's
//! read), so the window spans about the key's recent concurrency, not its
//! history.
//!
//! Versions with few descendants in the whole key (at most
//! [`FEW_DESCENDANTS`]: tombstones, which reads never return; the values a
//! delete superseded; writes nobody read again) keep their descendants
//! instead, as a sorted list, and every question about one as an ancestor
//! is answered from that list before any label is read. Labels treat them
//! as members, and gaps that only they separate are joined: they never hold
//! a floor down nor split a gap, however many a long key accumulates.
//! (Without this, each delete left versions that were ancestors of nothing
//! after it, and every later label carried them: the labels grew with the
//! key's history.)
//!
//! # Growing without hindsight
//!
//! The incremental checker grows a key's DAG one version at a time
//! ([`Dag::push`]) and cannot know which versions will keep few
//! descendants. It guesses, and every answer stays exact whatever the
//! guess: when a version leaves the newest [`GROWING_HORIZON`], a search
//! over its children (giving up past [`FEW_DESCENDANTS`]) lists its
//! descendants if it has few; each new version is appended to the lists
//! of the listed versions it descends from (a wrong guess costs a longer
//! list); and each time the DAG doubles it is rebuilt, listing anew over
//! everything seen so far. Amortised, a version costs what building its
//! label costs, plus the listed versions it descends from.
//!
//! Costs, with `w` the window (≤ [`WINDOW_BITS_MAX`] bits, about the key's
//! recent concurrency) and `g` the gaps of a label (a handful: one per
//! blind write whose descendants did not merge with the older line):
//!
//! - building a version's label: O(parents × (w/64 + g));
//! - "is `u` an ancestor of `v`" ([`Dag::precedes`]): O(log g), or
//!   O(log [`FEW_DESCENDANTS`]) for a version with few descendants;
//! - [`Dag::covered`] of `t` targets by `s` sources: one union label of the
//!   sources, O(s × (w/64 + g)), then O(log g) per target — independent of
//!   the key's length, however branching its causality;
//!   [`Dag::covered_below`] against a running union ([`Dag::join`], one
//!   version at a time): O(log g) per target;
//! - [`Dag::ordered_pair`]: the same union over the set;
//! - whole-key passes ([`Dag::down_closure`], [`Dag::superseded_by`], the
//!   descendant lists): one linear pass over the versions and edges;
//! - [`Dag::uncovered`] (k-staleness of a stale get) walks the region
//!   between what the get returned and what it missed, highest first.
//!
//! Memory: about 24 bytes per version, plus its window words, gaps and
//! (for a version with few descendants) its list.

use std::collections::{BinaryHeap, VecDeque};

use crate::ids::IdMap;

/// The widest window a label keeps before its floor is moved up.
pub const WINDOW_BITS_MAX: u32 = 4096;

/// A version with at most this many descendants keeps them as a list.
pub const FEW_DESCENDANTS: usize = 32;

/// A grown DAG never lists the descendants of its newest this-many
/// versions: they are still being read and written over.
pub const GROWING_HORIZON: usize = 1024;

/// An exact set of versions (those with few descendants aside, see the
/// module doc): `([0, floor) \ gaps) ∪ window`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Label {
    /// Every version below it is a member, but those in `gaps`.
    pub floor: u32,
    /// Sorted, disjoint `[start, end)` ranges below `floor` holding no
    /// member.
    pub gaps: Vec<(u32, u32)>,
    /// Bit `i` of word `i / 64`: version `floor + i` is a member.
    pub window: Vec<u64>,
}

impl Label {
    /// Is `version` a member?
    pub fn contains(&self, version: u32) -> bool {
        contains(self.floor, &self.gaps, &self.window, version)
    }
}

fn contains(floor: u32, gaps: &[(u32, u32)], window: &[u64], version: u32) -> bool {
    if version < floor {
        // The last gap starting at or below it.
        let after = gaps.partition_point(|&(start, _)| start <= version);
        return after == 0 || gaps[after - 1].1 <= version;
    }
    let bit = (version - floor) as usize;
    window.get(bit / 64).is_some_and(|word| word >> (bit % 64) & 1 == 1)
}

fn bit(window: &[u64], index: u32) -> bool {
    window
        .get((index / 64) as usize)
        .is_some_and(|word| word >> (index % 64) & 1 == 1)
}

/// The ranges of `[from, to)` whose bits in `window` (bit 0 = version
/// `base`) are clear, appended to `out` (positions past the window are
/// clear).
fn clear_runs(window: &[u64], base: u32, from: u32, to: u32, out: &mut Vec<(u32, u32)>) {
    // Word by word: the clear bits of each word in range, as runs found
    // with trailing_zeros; a run open at a word's end continues.
    let mut open: Option<u32> = None;
    let mut at = from;
    while at < to {
        let index = at - base;
        let (word_index, offset) = ((index / 64) as usize, index % 64);
        let count = (64 - offset).min(to - at);
        let mask = if count == 64 {
            u64::MAX
        } else {
            ((1u64 << count) - 1) << offset
        };
        let clear = !window.get(word_index).copied().unwrap_or(0) & mask;
        let mut bits = clear;
        let mut position = offset;
        let end = offset + count;
        while position < end {
            // Skip set bits (members).
            let rest = bits >> position;
            if rest & 1 == 0 {
                if let Some(start) = open.take() {
                    out.push((start, base + (word_index as u32) * 64 + position));
                }
                let skip = if rest == 0 {
                    end - position
                } else {
                    rest.trailing_zeros().min(end - position)
                };
                position += skip;
                continue;
            }
            // A run of clear bits.
            let run = (!rest).trailing_zeros().min(end - position);
            if open.is_none() {
                open = Some(base + (word_index as u32) * 64 + position);
            }
            position += run;
            if position < end {
                if let Some(start) = open.take() {
                    out.push((start, base + (word_index as u32) * 64 + position));
                }
            }
            bits = clear;
        }
        at += count;
    }
    if let Some(start) = open {
        out.push((start, to));
    }
}

/// The intersection of two sorted lists of disjoint ranges.
fn intersect(a: &[(u32, u32)], b: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let start = a[i].0.max(b[j].0);
        let end = a[i].1.min(b[j].1);
        if start < end {
            out.push((start, end));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The versions of one key, their direct-supersedes edges and their
/// ancestor labels.
#[derive(Debug, Default)]
pub struct Dag {
    /// `parents[offsets[v]..offsets[v+1]]` are the versions `v`'s context names.
    offsets: Vec<u32>,
    parents: Vec<u32>,
    /// Label of `v`: `floors[v]`, `gaps[gap_at[v]..gap_at[v+1]]`,
    /// `words[word_at[v]..word_at[v+1]]`.
    floors: Vec<u32>,
    gap_at: Vec<u32>,
    gaps: Vec<(u32, u32)>,
    /// Versions below `n` that do not have few descendants.
    many_before: Vec<u32>,
    word_at: Vec<u64>,
    words: Vec<u64>,
    /// Bit `v`: `v` has at most [`FEW_DESCENDANTS`] descendants, listed in
    /// `descendants[descendant_at[v]..descendant_at[v+1]]`.
    few: Vec<u64>,
    descendant_at: Vec<u32>,
    descendants: Vec<u32>,
    /// A grown DAG ([`Dag::push`]): descendants a listed version gained
    /// after its list was made (sorted, as versions come in order), and
    /// per version the listed versions it descends from.
    /// (Only versions that have any are in the maps.)
    gained: IdMap<u32, Vec<u32>>,
    listed_above: IdMap<u32, Vec<u32>>,
    /// A grown DAG: the children of the versions from `children_base` on
    /// (the horizon, where the next listing looks), and the versions
    /// listed since the last rebuild (ascending; `many_before` still
    /// counts them).
    children: VecDeque<Vec<u32>>,
    children_base: u32,
    promoted: Vec<u32>,
    /// A grown DAG lists anew when it reaches this many versions.
    relist_at: usize,
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
    pub fn new(count: usize, parents_of: impl FnMut(usize, &mut Vec<u32>)) -> Dag {
        Dag::with_few(count, FEW_DESCENDANTS, parents_of)
    }

    /// As [`Dag::new`], listing descendants of versions that have at most
    /// `few` (the tests use 0 and small numbers to exercise both paths).
    pub fn with_few(count: usize, few: usize, parents_of: impl FnMut(usize, &mut Vec<u32>)) -> Dag {
        Dag::build(count, few, count, parents_of)
    }

    /// Builds the DAG, listing the descendants of versions below `cutoff`
    /// that have at most `few`.
    fn build(count: usize, few: usize, cutoff: usize, mut parents_of: impl FnMut(usize, &mut Vec<u32>)) -> Dag {
        let mut dag = Dag {
            offsets: Vec::with_capacity(count + 1),
            floors: Vec::with_capacity(count),
            gap_at: Vec::with_capacity(count + 1),
            word_at: Vec::with_capacity(count + 1),
            stamp: vec![0; count],
            flags: vec![0; count],
            ..Dag::default()
        };
        dag.offsets.push(0);
        dag.gap_at.push(0);
        dag.word_at.push(0);
        let mut scratch = Vec::new();
        for version in 0..count {
            scratch.clear();
            parents_of(version, &mut scratch);
            scratch.retain(|&parent| (parent as usize) < version);
            scratch.sort_unstable();
            scratch.dedup();
            dag.parents.extend_from_slice(&scratch);
            dag.offsets.push(dag.parents.len() as u32);
        }
        dag.list_few_descendants(few, cutoff);
        for version in 0..count as u32 {
            let parents = dag.parents(version).to_vec();
            dag.label(&parents);
        }
        dag
    }

    /// Builds and stores the label of the next version, whose parents are
    /// `parents`: their union with them.
    fn label(&mut self, parents: &[u32]) {
        let label = self.union(parents, true);
        self.floors.push(label.floor);
        self.gaps.extend_from_slice(&label.gaps);
        self.gap_at.push(self.gaps.len() as u32);
        self.words.extend_from_slice(&label.window);
        self.word_at.push(self.words.len() as u64);
    }

    /// An empty DAG that grows one version at a time ([`Dag::push`]), for
    /// checking a history as it is written.
    pub fn growing() -> Dag {
        let mut dag = Dag::build(0, FEW_DESCENDANTS, 0, |_, _| {});
        dag.relist_at = GROWING_HORIZON * 2;
        dag
    }

    /// Adds the next version, whose context names `parents` (versions
    /// already added; others are dropped), and returns its number.
    ///
    /// Without hindsight, which versions will keep few descendants is a
    /// guess: each time the DAG doubles, it is rebuilt listing the
    /// descendants of versions that have few so far, leaving out the
    /// newest [`GROWING_HORIZON`]. A listed version that gains descendants
    /// after that keeps them in its list (every answer stays exact; a
    /// wrong guess costs a longer list until the next rebuild). Amortised
    /// cost: O(parents × (w/64 + g)) per version, as building any label,
    /// plus the listed versions it descends from.
    pub fn push(&mut self, parents: &[u32]) -> u32 {
        debug_assert!(self.relist_at > 0, "push grows a DAG made by Dag::growing");
        if self.len() >= self.relist_at && self.relist_at > 0 {
            self.relist();
        }
        let version = self.len() as u32;
        let mut scratch: Vec<u32> = parents.iter().copied().filter(|&parent| parent < version).collect();
        scratch.sort_unstable();
        scratch.dedup();
        // The listed versions this one descends from gain it.
        let mut above = Vec::new();
        for &parent in &scratch {
            if self.is_few(parent) {
                above.push(parent);
            }
            if let Some(theirs) = self.listed_above.get(&parent) {
                above.extend_from_slice(theirs);
            }
        }
        above.sort_unstable();
        above.dedup();
        for &listed in &above {
            self.gained.entry(listed).or_default().push(version);
        }
        if !above.is_empty() {
            self.listed_above.insert(version, above);
        }
        self.children.push_back(Vec::new());
        for &parent in &scratch {
            if parent >= self.children_base {
                self.children[(parent - self.children_base) as usize].push(version);
            }
        }
        if version as usize >= GROWING_HORIZON {
            self.promote(version - GROWING_HORIZON as u32);
            // Its children were the last question about it.
            while self.children_base <= version - GROWING_HORIZON as u32 {
                self.children.pop_front();
                self.children_base += 1;
            }
        }
        self.parents.extend_from_slice(&scratch);
        self.offsets.push(self.parents.len() as u32);
        if version as usize / 64 >= self.few.len() {
            self.few.push(0);
        }
        let many = self.many_before.last().copied().unwrap_or(0) + 1;
        self.many_before.push(many);
        self.descendant_at.push(self.descendants.len() as u32);
        self.stamp.push(0);
        self.flags.push(0);
        self.label(&scratch);
        version
    }

    /// Lists the descendants of `version` (leaving the horizon) if it has
    /// few: a search over children that gives up past
    /// [`FEW_DESCENDANTS`]. Labels built from now on count it as a member
    /// and drop the gaps only it held open.
    fn promote(&mut self, version: u32) {
        if self.is_few(version) {
            return;
        }
        let mut found: Vec<u32> = Vec::new();
        let mut next = 0;
        let mut at = version;
        loop {
            for &child in &self.children[(at - self.children_base) as usize] {
                if !found.contains(&child) {
                    if found.len() == FEW_DESCENDANTS {
                        return;
                    }
                    found.push(child);
                }
            }
            let Some(&deeper) = found.get(next) else { break };
            at = deeper;
            next += 1;
        }
        found.sort_unstable();
        for &descendant in &found {
            self.listed_above.entry(descendant).or_default().push(version);
        }
        self.gained.insert(version, found);
        self.few[version as usize / 64] |= 1 << (version % 64);
        self.promoted.push(version);
    }

    /// Rebuilds a grown DAG, listing anew (see [`Dag::push`]).
    fn relist(&mut self) {
        let count = self.len();

        let (offsets, parents) = (std::mem::take(&mut self.offsets), std::mem::take(&mut self.parents));
        let mut dag = Dag::build(
            count,
            FEW_DESCENDANTS,
            count - GROWING_HORIZON.min(count),
            |version, out| {
                out.extend_from_slice(&parents[offsets[version] as usize..offsets[version + 1] as usize]);
            },
        );
        dag.children_base = count.saturating_sub(GROWING_HORIZON) as u32;
        dag.children = (dag.children_base..count as u32).map(|_| Vec::new()).collect();
        for version in dag.children_base..count as u32 {
            for index in dag.offsets[version as usize]..dag.offsets[version as usize + 1] {
                let parent = dag.parents[index as usize];
                if parent >= dag.children_base {
                    dag.children[(parent - dag.children_base) as usize].push(version);
                }
            }
        }
        for version in 0..count as u32 {
            if dag.is_few(version) {
                for index in dag.descendant_at[version as usize]..dag.descendant_at[version as usize + 1] {
                    let descendant = dag.descendants[index as usize];
                    dag.listed_above.entry(descendant).or_default().push(version);
                }
            }
        }
        dag.relist_at = count * 2;
        *self = dag;
    }

    /// Which versions have few descendants, and those descendants: one
    /// pass from the highest version down over a children index.
    fn list_few_descendants(&mut self, few_max: usize, cutoff: usize) {
        let count = self.offsets.len() - 1;
        let mut child_at = vec![0u32; count + 1];
        for &parent in &self.parents {
            child_at[parent as usize + 1] += 1;
        }
        for index in 0..count {
            child_at[index + 1] += child_at[index];
        }
        let mut children = vec![0u32; self.parents.len()];
        let mut fill = child_at.clone();
        for version in 0..count as u32 {
            for &parent in self.parents(version) {
                children[fill[parent as usize] as usize] = version;
                fill[parent as usize] += 1;
            }
        }
        self.few = vec![0u64; count.div_ceil(64)];
        let mut lists: Vec<Option<Vec<u32>>> = vec![None; count];
        let mut set = Vec::new();
        for version in (0..count).rev() {
            set.clear();
            let mut few = true;
            for &child in &children[child_at[version] as usize..child_at[version + 1] as usize] {
                match &lists[child as usize] {
                    Some(below) if set.len() + below.len() < few_max * 2 + 1 => {
                        set.push(child);
                        set.extend_from_slice(below);
                    }
                    _ => {
                        few = false;
                        break;
                    }
                }
            }
            if few {
                set.sort_unstable();
                set.dedup();
                if set.len() <= few_max {
                    lists[version] = Some(set.clone());
                    if version < cutoff {
                        self.few[version / 64] |= 1 << (version % 64);
                    }
                }
            }
        }
        self.many_before = Vec::with_capacity(count + 1);
        self.many_before.push(0);
        let mut many = 0;
        for version in 0..count as u32 {
            many += u32::from(!self.is_few(version));
            self.many_before.push(many);
        }
        self.descendant_at = Vec::with_capacity(count + 1);
        self.descendant_at.push(0);
        for (version, list) in lists.iter().enumerate() {
            if let Some(list) = list.as_ref().filter(|_| self.is_few(version as u32)) {
                self.descendants.extend_from_slice(list);
            }
            self.descendant_at.push(self.descendants.len() as u32);
        }
    }

    /// True when `version` keeps its descendants as a list.
    fn is_few(&self, version: u32) -> bool {
        self.few[version as usize / 64] >> (version % 64) & 1 == 1
    }

    /// The descendants of `version` (which `is_few` must hold).
    fn listed(&self, version: u32) -> impl Iterator<Item = u32> + '_ {
        let gained = self.gained.get(&version).map_or(&[][..], Vec::as_slice);
        self.descendants
            [self.descendant_at[version as usize] as usize..self.descendant_at[version as usize + 1] as usize]
            .iter()
            .chain(gained)
            .copied()
    }

    /// Is `descendant` in `version`'s list (which `is_few` must hold)?
    fn lists(&self, version: u32, descendant: u32) -> bool {
        let list = &self.descendants
            [self.descendant_at[version as usize] as usize..self.descendant_at[version as usize + 1] as usize];
        list.binary_search(&descendant).is_ok()
            || self
                .gained
                .get(&version)
                .is_some_and(|gained| gained.binary_search(&descendant).is_ok())
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

    fn gaps_of(&self, version: u32) -> &[(u32, u32)] {
        &self.gaps[self.gap_at[version as usize] as usize..self.gap_at[version as usize + 1] as usize]
    }

    fn window(&self, version: u32) -> &[u64] {
        &self.words[self.word_at[version as usize] as usize..self.word_at[version as usize + 1] as usize]
    }

    /// Is `ancestor` a strict ancestor of `descendant`?
    pub fn precedes(&self, ancestor: u32, descendant: u32) -> bool {
        if ancestor >= descendant {
            return false;
        }
        if self.is_few(ancestor) {
            return self.lists(ancestor, descendant);
        }
        contains(
            self.floors[descendant as usize],
            self.gaps_of(descendant),
            self.window(descendant),
            ancestor,
        )
    }

    /// The union of the strict ancestors of `members` (and the members
    /// themselves when `with_members`), as a label in which versions with
    /// few descendants count as members (ask [`Dag::precedes`] about
    /// those, or check them first, as [`Dag::covered`] does).
    pub fn union(&self, members: &[u32], with_members: bool) -> Label {
        let pieces: Vec<Piece<'_>> = members.iter().map(|&member| self.piece(member)).collect();
        self.union_of(&pieces, if with_members { members } else { &[] })
    }

    /// `label` joined with the strict ancestors of `version`: a running
    /// union, grown one version at a time (the frontier's, say).
    pub fn join(&self, label: &Label, version: u32) -> Label {
        let running = Piece {
            floor: label.floor,
            gaps: &label.gaps,
            window: &label.window,
        };
        self.union_of(&[running, self.piece(version)], &[])
    }

    /// For each target, whether it is a strict ancestor of a member of a
    /// set: `below` is the union of the set's strict ancestors, `member`
    /// says whether a version is in the set (or below one of it; asked only
    /// of the descendants of targets with few descendants).
    pub fn covered_below(&self, below: &Label, targets: &[u32], member: impl Fn(u32) -> bool) -> Vec<bool> {
        targets
            .iter()
            .map(|&target| {
                if self.is_few(target) {
                    self.listed(target).any(&member)
                } else {
                    below.contains(target)
                }
            })
            .collect()
    }

    fn piece(&self, version: u32) -> Piece<'_> {
        Piece {
            floor: self.floors[version as usize],
            gaps: self.gaps_of(version),
            window: self.window(version),
        }
    }

    /// The union of `pieces` and the versions `singles`, as a label.
    fn union_of(&self, pieces: &[Piece<'_>], singles: &[u32]) -> Label {
        if pieces.is_empty() {
            return Label::default();
        }
        let floor = pieces.iter().map(|piece| piece.floor).max().unwrap_or(0);
        // Just below the floor (up to a window's width), each member's set
        // as a bitset, ORed: its clear runs are the union's gaps there.
        let low = pieces
            .iter()
            .map(|piece| piece.floor)
            .min()
            .unwrap_or(floor)
            .max(floor.saturating_sub(WINDOW_BITS_MAX));
        let width = floor - low;
        let mut near = vec![0u64; width.div_ceil(64) as usize];
        let mut dense = vec![0u64; near.len()];
        for piece in pieces {
            let own = piece.floor;
            if own > low {
                // Its dense part with its own gaps cleared, then ORed in.
                dense.iter_mut().for_each(|word| *word = 0);
                set_range(&mut dense, 0, own - low);
                for &(start, end) in piece.gaps {
                    if end > low {
                        clear_range(&mut dense, start.max(low) - low, end.min(own) - low);
                    }
                }
                near.iter_mut().zip(&dense).for_each(|(word, add)| *word |= add);
                or_shifted_left(&mut near, piece.window, own - low, width);
            } else {
                or_shifted(&mut near, piece.window, low - own);
                mask_above(&mut near, width);
            }
        }
        for &single in singles.iter().filter(|&&single| single >= low && single < floor) {
            let bit = (single - low) as usize;
            near[bit / 64] |= 1 << (bit % 64);
        }
        if !near.is_empty() {
            or_shifted(
                &mut near,
                &self.few[(low as usize / 64).min(self.few.len())..],
                low % 64,
            );
            mask_above(&mut near, width);
        }
        // Further down: the ranges no member holds, the intersection of
        // each member's non-members there (gap lists are short).
        let mut gaps: Option<Vec<(u32, u32)>> = None;
        let mut scratch = Vec::new();
        for piece in pieces {
            let own = piece.floor;
            scratch.clear();
            scratch.extend(
                piece
                    .gaps
                    .iter()
                    .filter(|&&(start, _)| start < low)
                    .map(|&(start, end)| (start, end.min(low))),
            );
            if own < low {
                let top = (own as u64 + 64 * piece.window.len() as u64).min(low as u64) as u32;
                clear_runs(piece.window, own, own, top, &mut scratch);
                if top < low {
                    scratch.push((top, low));
                }
            }
            gaps = Some(match gaps {
                None => scratch.clone(),
                Some(so_far) => intersect(&so_far, &scratch),
            });
            if gaps.as_ref().is_some_and(Vec::is_empty) {
                break;
            }
        }
        let mut gaps = gaps.unwrap_or_default();
        for &single in singles.iter().filter(|&&single| single < low) {
            punch(&mut gaps, single);
        }
        clear_runs(&near, low, low, floor, &mut gaps);
        // Above it: every member's window (each starts at or below the
        // floor), and the members themselves.
        let end = pieces
            .iter()
            .map(|piece| piece.floor as u64 + 64 * piece.window.len() as u64)
            .chain(singles.iter().map(|&single| single as u64 + 1))
            .max()
            .unwrap_or(0)
            .max(floor as u64);
        let mut window = vec![0u64; (end - floor as u64).div_ceil(64) as usize];
        for piece in pieces {
            or_shifted(&mut window, piece.window, floor - piece.floor);
        }
        for &single in singles.iter().filter(|&&single| single >= floor) {
            let bit = (single - floor) as usize;
            window[bit / 64] |= 1 << (bit % 64);
        }
        // Versions with few descendants are answered from their lists:
        // members here, so that they neither hold the floor down nor
        // split gaps.
        if !window.is_empty() {
            let start = floor as usize / 64;
            or_shifted(&mut window, &self.few[start.min(self.few.len())..], floor % 64);
        }
        self.normalise(Label { floor, gaps, window })
    }

    /// How many versions in `[from, to)` do not have few descendants.
    fn many_between(&self, from: u32, to: u32) -> u32 {
        let promoted = self.promoted.partition_point(|&version| version < to)
            - self.promoted.partition_point(|&version| version < from);
        self.many_before[to as usize] - self.many_before[from as usize] - promoted as u32
    }

    /// Climbs the floor over leading members, cuts a window wider than
    /// [`WINDOW_BITS_MAX`] (its clear runs below the cut become gaps), drops
    /// trailing empty words, and joins gaps that only versions with few
    /// descendants separate (and drops gaps holding none of the others).
    fn normalise(&self, mut label: Label) -> Label {
        let width = label.window.len() as u32 * 64;
        let base = label.floor;
        let mut skip = 0u32;
        loop {
            while skip < width && bit(&label.window, skip) {
                skip += 1;
            }
            // A long clear run at the start is a gap, not window.
            let mut clear = skip;
            while clear < width && !bit(&label.window, clear) {
                clear += 1;
            }
            if clear < width && clear - skip >= 64 {
                label.gaps.push((base + skip, base + clear));
                skip = clear;
                continue;
            }
            break;
        }
        if width.saturating_sub(skip) > WINDOW_BITS_MAX {
            let cut = width - WINDOW_BITS_MAX;
            clear_runs(&label.window, base, base + skip, base + cut, &mut label.gaps);
            skip = cut;
            while skip < width && bit(&label.window, skip) {
                skip += 1;
            }
        }
        if skip >= width {
            label.window.clear();
            label.floor = base + width.min(skip);
            // Nothing above: the floor stops at the last member.
        } else if skip > 0 {
            let mut shifted = vec![0u64; label.window.len()];
            or_shifted(&mut shifted, &label.window, skip);
            label.window = shifted;
            label.floor += skip;
        }
        while label.window.last() == Some(&0) {
            label.window.pop();
        }
        let limit = (self.many_before.len() - 1) as u32;
        let mut joined: Vec<(u32, u32)> = Vec::with_capacity(label.gaps.len());
        for (start, end) in label.gaps.drain(..) {
            let (start, end) = (start.min(limit), end.min(limit));
            if self.many_between(start, end) == 0 {
                continue;
            }
            match joined.last_mut() {
                Some(last) if self.many_between(last.1, start) == 0 => last.1 = end,
                _ => joined.push((start, end)),
            }
        }
        label.gaps = joined;
        label
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
        let below = self.union(sources, false);
        targets
            .iter()
            .map(|&target| {
                if self.is_few(target) {
                    sources
                        .iter()
                        .any(|&source| (!strict && source == target) || self.lists(target, source))
                } else {
                    (!strict && sources.contains(&target)) || below.contains(target)
                }
            })
            .collect()
    }

    /// A pair `(ancestor, descendant)` within `set`, if `set` is not an
    /// antichain.
    pub fn ordered_pair(&self, set: &[u32]) -> Option<(u32, u32)> {
        if set.len() < 2 {
            return None;
        }
        let below = self.union(set, false);
        let ancestor = *set.iter().find(|&&member| {
            if self.is_few(member) {
                set.iter().any(|&other| self.lists(member, other))
            } else {
                below.contains(member)
            }
        })?;
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
        self.least_below(|version| members(version).then_some(0))
            .into_iter()
            .map(|least| least != u64::MAX)
            .collect()
    }

    /// For every version, the least `weight` among its strict descendants
    /// that have one (`u64::MAX` where none does), in one linear pass
    /// (versions are numbered parents first).
    pub fn least_below(&self, weight: impl Fn(u32) -> Option<u64>) -> Vec<u64> {
        let mut least = vec![u64::MAX; self.len()];
        for version in (0..self.len() as u32).rev() {
            let here = weight(version).unwrap_or(u64::MAX).min(least[version as usize]);
            if here != u64::MAX {
                for &parent in self.parents(version) {
                    least[parent as usize] = least[parent as usize].min(here);
                }
            }
        }
        least
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

/// A label borrowed from the DAG or from a running union.
#[derive(Clone, Copy)]
struct Piece<'a> {
    floor: u32,
    gaps: &'a [(u32, u32)],
    window: &'a [u64],
}

/// Sets bits `[from, to)`.
fn set_range(bits: &mut [u64], from: u32, to: u32) {
    apply_range(bits, from, to, |word, mask| *word |= mask);
}

/// Clears bits `[from, to)`.
fn clear_range(bits: &mut [u64], from: u32, to: u32) {
    apply_range(bits, from, to, |word, mask| *word &= !mask);
}

/// Calls `apply(word, mask)` for each word `[from, to)` touches, with the
/// mask of the bits of the range in it.
fn apply_range(bits: &mut [u64], from: u32, to: u32, apply: impl Fn(&mut u64, u64)) {
    let mut at = from;
    while at < to {
        let (index, offset) = ((at / 64) as usize, at % 64);
        let count = (64 - offset).min(to - at);
        let mask = if count == 64 {
            u64::MAX
        } else {
            ((1u64 << count) - 1) << offset
        };
        apply(&mut bits[index], mask);
        at += count;
    }
}

/// ORs `from` into `into` starting `offset` bits up, below bit `width`.
fn or_shifted_left(into: &mut [u64], from: &[u64], offset: u32, width: u32) {
    let (words, bits) = ((offset / 64) as usize, offset % 64);
    for (index, &word) in from.iter().enumerate() {
        let Some(slot) = into.get_mut(index + words) else { break };
        *slot |= word << bits;
        if bits > 0 {
            if let Some(next) = into.get_mut(index + words + 1) {
                *next |= word >> (64 - bits);
            }
        }
    }
    mask_above(into, width);
}

/// Clears every bit at or above `width`.
fn mask_above(bits: &mut [u64], width: u32) {
    let full = (width / 64) as usize;
    if let Some(word) = bits.get_mut(full) {
        *word &= (1u64 << (width % 64)) - 1;
    }
    for word in bits.iter_mut().skip(full + 1) {
        *word = 0;
    }
}

/// Takes `version` out of the gaps that hold it.
fn punch(gaps: &mut Vec<(u32, u32)>, version: u32) {
    let after = gaps.partition_point(|&(start, _)| start <= version);
    if after == 0 || gaps[after - 1].1 <= version {
        return;
    }
    let (start, end) = gaps[after - 1];
    let mut pieces = Vec::with_capacity(2);
    if start < version {
        pieces.push((start, version));
    }
    if version + 1 < end {
        pieces.push((version + 1, end));
    }
    gaps.splice(after - 1..after, pieces);
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
            // Built whole (with and without descendant lists) or grown one
            // version at a time, as the incremental checker does.
            let mut dag = match next(4) {
                3 => {
                    let mut dag = Dag::growing();
                    for mine in &parents {
                        dag.push(mine);
                    }
                    dag
                }
                choice => {
                    let few = [0, 2, FEW_DESCENDANTS][choice as usize];
                    Dag::with_few(count, few, |version, out| out.extend_from_slice(&parents[version]))
                }
            };
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
                // An ordered pair within the targets, or none.
                let pair = dag.ordered_pair(&targets);
                let ordered = targets
                    .iter()
                    .any(|&a| targets.iter().any(|&b| below[b as usize][a as usize]));
                assert_eq!(pair.is_some(), ordered, "{parents:?} {targets:?}");
                if let Some((a, b)) = pair {
                    assert!(below[b as usize][a as usize], "{a} does not precede {b}");
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
        for few in [0, FEW_DESCENDANTS] {
            let dag = Dag::with_few(count, few, |version, out| out.extend_from_slice(&parents[version]));
            assert!(
                (0..count as u32).any(|version| !dag.gaps_of(version).is_empty()),
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
    }

    /// A DAG grown one version at a time past several rebuilds: dead
    /// versions (tombstones: never named), branches that die, and old
    /// versions named again long after they looked dead (the guess that
    /// they keep few descendants goes wrong). Queries are checked against
    /// the transitive closure as it grows, not only at the end.
    #[test]
    fn a_grown_dag_stays_exact_across_rebuilds_and_wrong_guesses() {
        let count = 5 * GROWING_HORIZON + 300;
        let mut next = lcg(21u64);
        let mut dag = Dag::growing();
        let mut below: Vec<Vec<u64>> = Vec::with_capacity(count);
        let words = count.div_ceil(64);
        let mut dead = Vec::new();
        for version in 0..count as u32 {
            let mut mine = Vec::new();
            match next(20) {
                // A tombstone or a lost write: nobody names it again.
                0 | 1 => {
                    if version > 0 {
                        mine.push(version - 1 - next(u64::from(version.min(8))) as u32);
                    }
                }
                // A blind write.
                2 => {}
                // An old version read again (often one that looked dead).
                3 if !dead.is_empty() => mine.push(dead[next(dead.len() as u64) as usize]),
                _ => {
                    for _ in 0..1 + next(2) {
                        if version > 0 {
                            let back = 1 + next(u64::from(version.min(40))) as u32;
                            mine.push(version - back);
                        }
                    }
                }
            }
            mine.retain(|parent| !dead.contains(parent) || next(4) == 0);
            if next(20) < 2 {
                dead.push(version);
            }
            assert_eq!(dag.push(&mine), version);
            let mut bits = vec![0u64; words];
            for &parent in &mine {
                for (slot, inherited) in bits.iter_mut().zip(&below[parent as usize]) {
                    *slot |= inherited;
                }
                bits[parent as usize / 64] |= 1 << (parent % 64);
            }
            below.push(bits);
            if version % 500 != 499 && version as usize != count - 1 {
                continue;
            }
            let truth = |a: u32, b: u32| below[b as usize][a as usize / 64] >> (a % 64) & 1 == 1;
            let len = u64::from(version) + 1;
            for _ in 0..3_000 {
                let (a, b) = (next(len) as u32, next(len) as u32);
                assert_eq!(dag.precedes(a, b), truth(a, b), "{a} < {b} at {version}");
            }
            for _ in 0..300 {
                let sources: Vec<u32> = (0..1 + next(5)).map(|_| next(len) as u32).collect();
                let targets: Vec<u32> = (0..1 + next(5)).map(|_| next(len) as u32).collect();
                let answer = dag.covered(&sources, &targets, true);
                for (index, &target) in targets.iter().enumerate() {
                    let expected = sources.iter().any(|&source| truth(target, source));
                    assert_eq!(answer[index], expected, "{sources:?} -> {target} at {version}");
                }
                let pair = dag.ordered_pair(&targets);
                let ordered = targets.iter().any(|&a| targets.iter().any(|&b| truth(a, b)));
                assert_eq!(pair.is_some(), ordered, "{targets:?} at {version}");
                let union = dag.union(&sources, false);
                let is_source = |member: u32| sources.contains(&member);
                let answer = dag.covered_below(&union, &targets, |member| {
                    is_source(member) || sources.iter().any(|&source| truth(member, source))
                });
                for (index, &target) in targets.iter().enumerate() {
                    let expected = sources.iter().any(|&source| truth(target, source));
                    assert_eq!(answer[index], expected, "below {sources:?} -> {target} at {version}");
                }
            }
        }
        assert!(
            dag.gained.values().any(|gained| !gained.is_empty()),
            "no version was listed while growing"
        );
    }

    #[test]
    fn clear_runs_match_a_bit_by_bit_scan() {
        let mut next = lcg(9);
        for _ in 0..500 {
            let words: Vec<u64> = (0..1 + next(4))
                .map(|_| match next(4) {
                    0 => 0,
                    1 => u64::MAX,
                    _ => next(u64::MAX) ^ (next(u64::MAX) << 31),
                })
                .collect();
            let base = next(1000) as u32;
            let span = words.len() as u32 * 64 + 70;
            let from = base + next(u64::from(span)) as u32;
            let to = from + next(u64::from(span)) as u32;
            let mut fast = vec![(0, 0)];
            clear_runs(&words, base, from, to, &mut fast);
            let mut slow = vec![(0, 0)];
            let mut at = from;
            while at < to {
                if bit(&words, at - base) {
                    at += 1;
                    continue;
                }
                let start = at;
                while at < to && !bit(&words, at - base) {
                    at += 1;
                }
                slow.push((start, at));
            }
            assert_eq!(fast, slow, "{words:x?} base {base} [{from}, {to})");
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
