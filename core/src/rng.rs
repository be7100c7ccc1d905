//! SplitMix64 (Steele, Lea and Flood, 2014): the one seeded generator of
//! the workspace. Small, fast and good enough to pick keys, operations and
//! test cases; seeded, so a run or a failing test replays from its seed.
//!
//! The protocol never draws from it: a seed is chosen by a driver (the
//! bench, a test, a simulation) and passed in. This is a generator, not a
//! source of entropy, and it is no use for anything secret.

/// SplitMix64's state: one word, advanced by the golden-ratio increment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SplitMix64(u64);

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SplitMix64 {
    /// A generator for `seed` (mixed first, so that seeds 0, 1, 2 ... do
    /// not start on neighbouring states).
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed ^ GOLDEN_GAMMA)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), with 53 bits of precision.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, `bound`) by multiply-shift (Lemire), no modulo bias
    /// worth the name; 0 when `bound` is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    /// True with probability `probability` (clamped to [0, 1]).
    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence_and_others_differ() {
        let first: Vec<u64> = (0..4)
            .map({
                let mut rng = SplitMix64::new(7);
                move |_| rng.next_u64()
            })
            .collect();
        let again: Vec<u64> = (0..4)
            .map({
                let mut rng = SplitMix64::new(7);
                move |_| rng.next_u64()
            })
            .collect();
        let other: Vec<u64> = (0..4)
            .map({
                let mut rng = SplitMix64::new(8);
                move |_| rng.next_u64()
            })
            .collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn below_stays_below_and_reaches_every_value() {
        let mut rng = SplitMix64::new(1);
        let mut seen = [false; 5];
        for _ in 0..1_000 {
            let value = rng.below(5);
            assert!(value < 5);
            seen[value as usize] = true;
        }
        assert!(seen.iter().all(|hit| *hit), "{seen:?}");
        assert_eq!(rng.below(0), 0);
    }

    #[test]
    fn unit_is_in_the_half_open_interval() {
        let mut rng = SplitMix64::new(3);
        for _ in 0..1_000 {
            let value = rng.unit();
            assert!((0.0..1.0).contains(&value));
        }
    }
}
