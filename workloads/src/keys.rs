//! Seeded randomness and key choice: uniform, zipfian (YCSB's generator,
//! optionally scrambled) and latest (zipfian over recency).

use crate::spec::{KeyDistribution, OpKind};

/// The workspace's one seeded generator (SplitMix64): a run's schedule is
/// reproducible from its seed.
pub use dynamo_core::rng::SplitMix64 as Rng;

/// YCSB's zipfian generator over `0..items` (rank 0 the most popular).
#[derive(Clone, Debug)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// Precomputes ζ(items, θ): O(items), once.
    pub fn new(items: u64, theta: f64) -> Zipfian {
        let zeta = |count: u64| (1..=count).map(|rank| 1.0 / (rank as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(items);
        let zeta2 = zeta(2.min(items));
        let eta = if items < 2 {
            0.0
        } else {
            (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        };
        Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        }
    }

    /// The next rank.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let unit = rng.unit();
        let uz = unit * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let rank = (self.items as f64 * (self.eta * unit - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.items - 1)
    }
}

/// FNV-1a over the rank's bytes: YCSB scrambles zipfian ranks this way.
fn fnv64(value: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in value.to_le_bytes() {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Keys written most recently, for the `latest` distribution.
const RECENT_KEYS_MAX: usize = 65_536;

/// Picks key indices in `0..count`.
#[derive(Clone, Debug)]
pub struct KeyChooser {
    count: u64,
    distribution: KeyDistribution,
    zipfian: Option<Zipfian>,
    recent: Vec<u64>,
    recent_next: usize,
}

impl KeyChooser {
    /// A chooser for `count` keys.
    pub fn new(count: u64, distribution: KeyDistribution) -> KeyChooser {
        let zipfian = match distribution {
            KeyDistribution::Uniform => None,
            KeyDistribution::Zipfian { theta, .. } => Some(Zipfian::new(count, theta)),
            KeyDistribution::Latest { theta } => Some(Zipfian::new(count.min(RECENT_KEYS_MAX as u64), theta)),
        };
        KeyChooser {
            count,
            distribution,
            zipfian,
            recent: Vec::new(),
            recent_next: 0,
        }
    }

    /// The key for an operation of `kind`.
    pub fn choose(&mut self, kind: OpKind, rng: &mut Rng) -> u64 {
        let writes = matches!(
            kind,
            OpKind::Write | OpKind::Update | OpKind::ReadModifyWrite | OpKind::Add
        );
        match (&self.distribution, &self.zipfian) {
            (KeyDistribution::Zipfian { scrambled, .. }, Some(zipfian)) => {
                let rank = zipfian.sample(rng);
                if *scrambled {
                    fnv64(rank) % self.count
                } else {
                    rank
                }
            }
            (KeyDistribution::Latest { .. }, Some(zipfian)) if !writes && !self.recent.is_empty() => {
                // Rank 0 is the newest write.
                let rank = zipfian.sample(rng) as usize % self.recent.len();
                let newest = (self.recent_next + self.recent.len() - 1) % self.recent.len();
                self.recent[(newest + self.recent.len() - rank) % self.recent.len()]
            }
            (KeyDistribution::Latest { .. }, _) => {
                let key = rng.below(self.count);
                if writes {
                    if self.recent.len() < RECENT_KEYS_MAX {
                        self.recent.push(key);
                        self.recent_next = self.recent.len() % RECENT_KEYS_MAX;
                    } else {
                        self.recent[self.recent_next] = key;
                        self.recent_next = (self.recent_next + 1) % RECENT_KEYS_MAX;
                    }
                }
                key
            }
            _ => rng.below(self.count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipfian_is_skewed_like_ycsb_and_uniform_is_not() {
        let mut rng = Rng::new(1);
        let zipfian = Zipfian::new(1000, 0.99);
        let mut counts = vec![0u64; 1000];
        for _ in 0..100_000 {
            counts[zipfian.sample(&mut rng) as usize] += 1;
        }
        // With θ = 0.99 over 1000 items, rank 0 takes about 1/ζ ≈ 13%.
        let share = counts[0] as f64 / 100_000.0;
        assert!((0.11..0.16).contains(&share), "rank 0 share {share}");
        assert!(counts[0] > counts[10] && counts[10] > counts[500]);
        let mut chooser = KeyChooser::new(1000, KeyDistribution::Uniform);
        let mut uniform = vec![0u64; 1000];
        for _ in 0..100_000 {
            uniform[chooser.choose(OpKind::Read, &mut rng) as usize] += 1;
        }
        assert!(*uniform.iter().max().unwrap() < 200, "no key near 13%");
    }

    #[test]
    fn latest_reads_favour_recent_writes() {
        let mut rng = Rng::new(2);
        let mut chooser = KeyChooser::new(100_000, KeyDistribution::Latest { theta: 0.99 });
        let mut last = 0;
        for _ in 0..1000 {
            last = chooser.choose(OpKind::Write, &mut rng);
        }
        let hits = (0..1000)
            .filter(|_| chooser.choose(OpKind::Read, &mut rng) == last)
            .count();
        assert!(hits > 50, "the newest key is read often: {hits}");
    }

    #[test]
    fn the_same_seed_gives_the_same_keys() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut chooser = KeyChooser::new(
                500,
                KeyDistribution::Zipfian {
                    theta: 0.9,
                    scrambled: true,
                },
            );
            (0..100)
                .map(|_| chooser.choose(OpKind::Read, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }
}
