//! Helpers shared by the integration tests.
#![allow(dead_code)]
// Test helpers: a failure here is a failed test, and says where.
#![allow(clippy::unwrap_used)]

pub mod cluster;

use std::path::{Path, PathBuf};

/// A directory removed when dropped (kept, and its path printed, when the
/// test panicked, so the files can be inspected).
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let base = std::env::var_os("CARGO_TARGET_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = base.join(format!("{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The workspace's one seeded generator, so tests need no RNG crate and
/// every run can be replayed from its printed seed.
#[allow(unused_imports)] // not every test binary draws
pub use dynamo_core::rng::SplitMix64 as Rng;

/// A seed from the environment (`DYNAMO_TEST_SEED`) or the clock; printed
/// so a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("DYNAMO_TEST_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("{test}: seed {seed} (replay with DYNAMO_TEST_SEED={seed})");
    seed
}

/// The value a test stores under `key` in round `round`: self-describing,
/// so a wrong value names where it came from.
pub fn value_for(key: u64, round: u64, len: usize) -> Vec<u8> {
    let mut value = format!("key={key} round={round} ").into_bytes();
    while value.len() < len {
        value.push(b'a' + (value.len() % 26) as u8);
    }
    value.truncate(len);
    value
}
