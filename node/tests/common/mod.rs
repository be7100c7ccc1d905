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

/// Runs the ignored test `name` of this test binary as a child process,
/// with `env`, its stdout piped (for `ack` lines) and its stderr dropped:
/// the crash tests kill it at a moment of their choosing.
pub fn spawn_child(name: &str, env: &[(&str, String)]) -> std::process::Child {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--ignored", "--exact", name, "--nocapture", "--test-threads=1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

/// Rounds for a crash test: `DYNAMO_CRASH_ROUNDS`, or `default`.
#[allow(dead_code)] // not every test binary crashes a child
pub fn crash_rounds(default: u64) -> u64 {
    std::env::var("DYNAMO_CRASH_ROUNDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

/// A child's acknowledgement of write `index` of `thread`, for
/// [`read_acks`]: one write(2) per line, so a line the parent reads whole
/// was printed after the acknowledgement.
#[allow(dead_code)] // not every test binary crashes a child
pub fn print_ack(thread: u64, index: u64) {
    use std::io::Write;
    let line = format!("ack {thread} {index}\n");
    std::io::stdout().lock().write_all(line.as_bytes()).unwrap();
}

/// Reads a child's `ack THREAD INDEX` lines, in order, until it dies (on
/// a thread of its own, so the parent can kill the child meanwhile).
/// libtest prints "test NAME ... " without a newline before the child's
/// first line, so the marker is looked for anywhere in a line; a line cut
/// by the kill has no newline and is not read.
pub fn read_acks(child: &mut std::process::Child) -> std::thread::JoinHandle<Vec<(u64, u64)>> {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut acks = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Some(start) = line.find("ack ") else { continue };
            let mut words = line[start + 4..].split(' ');
            let thread: u64 = words.next().unwrap().parse().unwrap();
            let index: u64 = words.next().unwrap().parse().unwrap();
            acks.push((thread, index));
        }
        acks
    })
}

/// The environment variables that tell a crash child where to write and
/// which round it is.
pub const CRASH_CHILD_DIR: &str = "DYNAMO_CRASH_CHILD_DIR";
pub const CRASH_CHILD_ROUND: &str = "DYNAMO_CRASH_CHILD_ROUND";

/// In a crash child: its data directory and round, or `None` when the
/// test runs on its own (not as a child).
#[allow(dead_code)] // not every test binary crashes a child
pub fn crash_child_args() -> Option<(std::path::PathBuf, u64)> {
    let dir = std::env::var_os(CRASH_CHILD_DIR)?;
    let round = std::env::var(CRASH_CHILD_ROUND).ok()?.parse().ok()?;
    Some((dir.into(), round))
}

/// In a crash child: `threads` threads each run `operation(thread, index)`
/// for index 0, 1, ... and acknowledge each ([`print_ack`]) until
/// `lifetime` has passed (the parent kills it long before).
#[allow(dead_code)]
pub fn ack_until(threads: u64, lifetime: std::time::Duration, operation: impl Fn(u64, u64) + Send + Sync + 'static) {
    let started = std::time::Instant::now();
    let operation = std::sync::Arc::new(operation);
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let operation = std::sync::Arc::clone(&operation);
            std::thread::spawn(move || {
                let mut index = 0;
                while started.elapsed() < lifetime {
                    operation(thread, index);
                    print_ack(thread, index);
                    index += 1;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

/// In the parent: one round. Starts the ignored test `child` on `dir` for
/// `round`, lets it run for `pause`, SIGKILLs it, and returns the acks it
/// printed, in order (a line cut by the kill is not read).
#[allow(dead_code)]
pub fn crash_round(
    child: &str,
    dir: &std::path::Path,
    round: u64,
    log: &str,
    pause: std::time::Duration,
) -> Vec<(u64, u64)> {
    let env = [
        (CRASH_CHILD_DIR, dir.display().to_string()),
        (CRASH_CHILD_ROUND, round.to_string()),
        ("DYNAMO_LOG", log.to_string()),
    ];
    let mut process = spawn_child(child, &env);
    let reader = read_acks(&mut process);
    std::thread::sleep(pause);
    process.kill().unwrap(); // SIGKILL
    process.wait().unwrap();
    reader.join().unwrap()
}

/// Storage for the compaction tests: sync `always`, 8 KiB segments and,
/// with `compacting`, a compactor that runs every 2 ms whatever the dead
/// bytes, unthrottled.
pub fn compacting_storage(compacting: bool) -> dynamo_node::storage::StorageConfig {
    use dynamo_node::storage::{CompactionPolicy, StorageConfig, SyncPolicy};
    StorageConfig {
        sync: SyncPolicy::Always,
        segment_bytes_max: 8 * 1024,
        compaction: compacting.then_some(CompactionPolicy {
            interval: std::time::Duration::from_millis(2),
            dead_percent_min: 1,
            dead_bytes_min: 0,
            bytes_per_second_max: 0,
        }),
        ..StorageConfig::default()
    }
}
