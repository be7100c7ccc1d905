//! Hash maps keyed by the checker's integer ids (interned keys and values,
//! version numbers, op ids, processes): one multiplication instead of
//! SipHash, which the profile showed as a tenth of the incremental
//! checker's time. Not for strings, and not flooding-resistant: the keys
//! come from the history being judged, and a hostile history can only
//! slow its own check.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map keyed by integer ids.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Multiplies by an odd constant (the golden ratio's, as Fibonacci
/// hashing): a bijection, so distinct ids never collide in full, and the
/// high bits the table uses for its tags are mixed from all input bits.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.write_u64(u64::from(id));
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0.rotate_left(5) ^ id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, id: usize) {
        self.write_u64(id as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread_over_the_table() {
        let mut map: IdMap<u32, u32> = IdMap::default();
        for id in 0..100_000u32 {
            map.insert(id, id * 2);
        }
        assert!((0..100_000u32).all(|id| map[&id] == id * 2));
        // Low bits pick the bucket: sequential ids must not all share a
        // few of them.
        let buckets: std::collections::HashSet<u64> = (0..1024u64)
            .map(|id| {
                let mut hasher = IdHasher::default();
                hasher.write_u64(id);
                hasher.finish() % 1024
            })
            .collect();
        assert_eq!(buckets.len(), 1024);
    }
}
