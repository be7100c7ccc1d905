//! Interned value ids: every name in one text buffer, found by a 64-bit
//! hash. A history names each value several times (its put, the gets that
//! return it, the contexts that carry it), so the reader interns millions
//! of short strings; with a `HashMap<String, u32>` beside a `Vec<String>`
//! each cost two allocations and about 120 bytes, and the profile showed
//! string hashing, allocation and comparison as a third of the reading
//! time. Here a name costs its bytes, an 8-byte end offset and a map entry.
//!
//! Two names with the same 64-bit hash are told apart: the second goes to
//! a small map of its own, keyed by the name.

use std::collections::HashMap;

use crate::ids::IdMap;

/// Names by id (`names[id]` is the name).
#[derive(Debug, Default)]
pub struct Names {
    text: String,
    /// `text[ends[id - 1]..ends[id]]` is name `id`.
    ends: Vec<u64>,
    /// Hash → the first id with that hash.
    index: IdMap<u64, u32>,
    /// Names whose hash an earlier, different name took.
    collided: HashMap<String, u32>,
}

impl Names {
    /// How many names.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The name of `id`.
    pub fn get(&self, id: u32) -> &str {
        let end = self.ends[id as usize] as usize;
        let start = if id == 0 {
            0
        } else {
            self.ends[id as usize - 1] as usize
        };
        &self.text[start..end]
    }

    /// The id of `name`, interning it if new.
    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        let hash = hash(name.as_bytes());
        if let Some(&id) = self.index.get(&hash) {
            if self.get(id) == name {
                return id;
            }
            if let Some(&id) = self.collided.get(name) {
                return id;
            }
            let id = self.push(name);
            self.collided.insert(name.to_string(), id);
            return id;
        }
        let id = self.push(name);
        self.index.insert(hash, id);
        id
    }

    fn push(&mut self, name: &str) -> u32 {
        self.text.push_str(name);
        self.ends.push(self.text.len() as u64);
        (self.ends.len() - 1) as u32
    }

    /// Keeps the names `keep` marks, renumbered in order.
    pub(crate) fn retain(&mut self, keep: &[bool]) {
        let old = std::mem::take(self);
        self.text.reserve(old.text.len() / 2);
        for id in 0..old.len() as u32 {
            if keep[id as usize] {
                self.intern(old.get(id));
            }
        }
    }
}

impl std::ops::Index<usize> for Names {
    type Output = str;

    fn index(&self, id: usize) -> &str {
        self.get(id as u32)
    }
}

/// A 64-bit hash of `bytes`: eight bytes at a time, multiplied and
/// rotated, then the 64-bit finaliser of MurmurHash3 so every output bit
/// depends on every input bit (a hash table takes its tags from the top
/// bits and its buckets from the bottom ones).
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut state = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        state = (state ^ u64::from_le_bytes(word)).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        state = (state ^ u64::from_le_bytes(word)).wrapping_mul(K).rotate_left(29);
    }
    state ^= state >> 33;
    state = state.wrapping_mul(0xff51_afd7_ed55_8ccd);
    state ^= state >> 33;
    state = state.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    state ^ (state >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_intern_once_and_come_back() {
        let mut names = Names::default();
        let a = names.intern("p1-7");
        let b = names.intern("p12-70000");
        assert_eq!(names.intern("p1-7"), a);
        assert_ne!(a, b);
        assert_eq!(&names[a as usize], "p1-7");
        assert_eq!(names.get(b), "p12-70000");
        assert_eq!(names.intern(""), 2);
        assert_eq!(names.get(2), "");
        names.retain(&[false, true, true]);
        assert_eq!(names.len(), 2);
        assert_eq!(names.get(0), "p12-70000");
        assert_eq!(names.intern("p12-70000"), 0);
        assert_eq!(names.intern("p1-7"), 2);
    }

    /// Two names with one hash stay two names (forced by planting the
    /// second name's hash on the first).
    #[test]
    fn a_hash_collision_keeps_names_apart() {
        let mut names = Names::default();
        let a = names.intern("a");
        names.index.insert(hash(b"b"), a);
        let b = names.intern("b");
        assert_ne!(a, b);
        assert_eq!(names.intern("b"), b);
        assert_eq!(names.intern("a"), a);
        assert_eq!(names.get(b), "b");
    }

    #[test]
    fn many_names_round_trip() {
        let mut names = Names::default();
        for round in 0..2 {
            for id in 0..50_000u32 {
                assert_eq!(names.intern(&format!("v{id}")), id, "round {round}");
            }
        }
        assert_eq!(names.len(), 50_000);
        assert!(
            names.collided.is_empty(),
            "64-bit hashes of 50,000 short names collided"
        );
    }
}
