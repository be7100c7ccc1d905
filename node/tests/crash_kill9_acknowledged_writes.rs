//! A child process appends with sync `always` from several threads and
//! prints each write once it is acknowledged; the parent kills it with
//! SIGKILL at a random moment, reopens the storage, and checks that every
//! acknowledged write is there, byte for byte, and that nothing corrupt is
//! served. Repeated on the same directory, so each round also recovers what
//! the earlier crashes left (torn tails included).
//!
//! The commit log's segments are small, so crashes also land during log
//! rolls, checkpoints and recycling. A second test runs the children with
//! `DYNAMO_FAILPOINT_LOG_ONLY`: nothing reaches the partition files, as
//! after a power cut that lost every partition write since the last
//! checkpoint, so every acknowledged write must come back from the log.
//!
//! A third kills the child inside a checkpoint, at each of its steps in
//! turn (before any partition segment is synced, between two, before and
//! after `CHECKPOINT` is written), by a failpoint rather than by chance.
//!
//! `DYNAMO_CRASH_ROUNDS` sets the number of rounds (default 25);
//! `DYNAMO_TEST_SEED` replays a run.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{ack_until, crash_child_args, crash_round, crash_rounds, seed, value_for, Rng, TempDir};
use dynamo_core::PartitionId;
use dynamo_node::storage::{Engine, StorageConfig, SyncPolicy};

const WRITER_THREADS: u64 = 4;
const PARTITIONS: u64 = 3;
/// Small segments, so that crashes also land during segment rolls.
const SEGMENT_BYTES: u64 = 64 * 1024;
/// Small log segments: rolls, checkpoints and recycling every few dozen
/// writes.
const LOG_SEGMENT_BYTES: u64 = 64 * 1024;
/// A child left alone stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(20);

fn config() -> StorageConfig {
    StorageConfig {
        sync: SyncPolicy::Always,
        segment_bytes_max: SEGMENT_BYTES,
        log_segment_bytes: LOG_SEGMENT_BYTES,
        ..StorageConfig::default()
    }
}

fn key(round: u64, thread: u64, index: u64) -> String {
    format!("r{round}-t{thread}-{index}")
}

fn partition_of(thread: u64, index: u64) -> PartitionId {
    PartitionId(((thread + index) % PARTITIONS) as u32)
}

fn value(round: u64, thread: u64, index: u64) -> Vec<u8> {
    value_for(
        round * 1_000_000 + thread * 100_000 + index,
        round,
        200 + (index as usize % 7) * 150,
    )
}

/// The child: not a test of its own (ignored), run by the parent below.
#[test]
#[ignore = "run as a child process by kill9_never_loses_an_acknowledged_write"]
fn crash_child_appends_until_killed() {
    appends_until_killed();
}

/// The child whose writes reach the commit log only.
#[test]
#[ignore = "run as a child process by kill9_with_every_partition_write_lost_recovers_all_from_the_log"]
fn crash_child_appends_to_the_log_only() {
    std::env::set_var("DYNAMO_FAILPOINT_LOG_ONLY", "1");
    appends_until_killed();
}

/// The child that kills itself inside its first checkpoint, at the step
/// the parent names (`DYNAMO_FAILPOINT_CHECKPOINT_KILL`).
#[test]
#[ignore = "run as a child process by a_crash_at_every_step_of_a_checkpoint_loses_no_acknowledged_write"]
fn crash_child_killed_inside_a_checkpoint() {
    appends_until_killed();
}

fn appends_until_killed() {
    let Some((dir, round)) = crash_child_args() else { return };
    let engine = Arc::new(Engine::open(&dir, config()).unwrap());
    ack_until(WRITER_THREADS, CHILD_LIFETIME, move |thread, index| {
        engine
            .put(
                partition_of(thread, index),
                key(round, thread, index).as_bytes(),
                &value(round, thread, index),
            )
            .unwrap();
    });
}

#[test]
fn kill9_never_loses_an_acknowledged_write() {
    kill9_rounds("crash_child_appends_until_killed", crash_rounds(25));
}

#[test]
fn kill9_with_every_partition_write_lost_recovers_all_from_the_log() {
    kill9_rounds("crash_child_appends_to_the_log_only", crash_rounds(10));
}

/// The steps of a checkpoint the failpoint can kill at.
const CHECKPOINT_STEPS: [&str; 4] = ["before-sync", "mid-sync", "before-checkpoint", "after-checkpoint"];

#[test]
fn a_crash_at_every_step_of_a_checkpoint_loses_no_acknowledged_write() {
    use std::os::unix::process::ExitStatusExt;
    let child = "crash_child_killed_inside_a_checkpoint";
    let dir = TempDir::new(child);
    let mut acknowledged: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut total_acks = 0u64;
    for round in 0..2 * CHECKPOINT_STEPS.len() as u64 {
        let step = CHECKPOINT_STEPS[round as usize % CHECKPOINT_STEPS.len()];
        let env = [
            (common::CRASH_CHILD_DIR, dir.path().display().to_string()),
            (common::CRASH_CHILD_ROUND, round.to_string()),
            ("DYNAMO_LOG", "warn".to_string()),
            ("DYNAMO_FAILPOINT_CHECKPOINT_KILL", step.to_string()),
        ];
        let mut process = common::spawn_child(child, &env);
        let reader = common::read_acks(&mut process);
        // The child's first checkpoint comes after a few dozen writes; it
        // must die there, by its own SIGKILL, long before this.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = process.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                process.kill().unwrap();
                process.wait().unwrap();
                panic!("round {round}: the child never reached the checkpoint step {step}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: the child should have killed itself {step}, it ended with {status}"
        );
        total_acks += record_acks(&mut acknowledged, round, reader.join().unwrap());
        verify(dir.path(), round, &acknowledged);
    }
    eprintln!("killed inside a checkpoint at each step twice: {total_acks} acknowledged writes, all recovered");
}

/// Adds a round's acks to `acknowledged` (round, thread → acknowledged
/// writes); returns how many there were.
fn record_acks(acknowledged: &mut BTreeMap<(u64, u64), u64>, round: u64, acks: Vec<(u64, u64)>) -> u64 {
    // A partial last line (killed mid-print) is not read: the child
    // prints whole lines at once.
    let count = acks.len() as u64;
    for (thread, index) in acks {
        let next = acknowledged.entry((round, thread)).or_insert(0);
        assert_eq!(*next, index, "acks of a thread arrive in order");
        *next = index + 1;
    }
    count
}

fn kill9_rounds(child: &str, rounds: u64) {
    let mut rng = Rng::new(seed(child));
    let dir = TempDir::new(child);
    // round → thread → highest acknowledged index + 1
    let mut acknowledged: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut total_acks = 0u64;
    for round in 0..rounds {
        // Let it start (open + recovery) and write for a random while.
        let pause = Duration::from_millis(30 + rng.below(250));
        let acks = crash_round(child, dir.path(), round, "warn", pause);
        total_acks += record_acks(&mut acknowledged, round, acks);
        verify(dir.path(), round, &acknowledged);
    }
    eprintln!("{rounds} kill -9 rounds, {total_acks} acknowledged writes, all recovered");
    assert!(
        total_acks > rounds,
        "the children barely wrote: {total_acks} acks in {rounds} rounds"
    );
}

/// Reopens the storage after round `round`'s crash: every acknowledged
/// write reads back byte for byte, and nothing served is corrupt.
fn verify(dir: &std::path::Path, round: u64, acknowledged: &BTreeMap<(u64, u64), u64>) {
    let engine = Engine::open(dir, config()).unwrap_or_else(|error| panic!("round {round}: recovery failed: {error}"));
    for (&(acked_round, thread), &count) in acknowledged {
        for index in 0..count {
            let got = engine
                .get(partition_of(thread, index), key(acked_round, thread, index).as_bytes())
                .unwrap_or_else(|error| panic!("round {round}: reading {}: {error}", key(acked_round, thread, index)));
            assert_eq!(
                got.as_deref().map(String::from_utf8_lossy),
                Some(String::from_utf8_lossy(&value(acked_round, thread, index))),
                "round {round}: acknowledged write {} lost or damaged",
                key(acked_round, thread, index)
            );
        }
    }
    // Nothing served is corrupt: every stored key reads back whole and
    // is one the children wrote.
    for partition in engine.partitions() {
        for stored in engine.keys(partition) {
            let name = String::from_utf8(stored.clone()).unwrap();
            let parts: Vec<u64> = name
                .trim_start_matches('r')
                .split(['-', 't'])
                .filter(|part| !part.is_empty())
                .map(|part| part.parse().unwrap())
                .collect();
            let (r, t, i) = (parts[0], parts[1], parts[2]);
            assert_eq!(engine.get(partition, &stored).unwrap(), Some(value(r, t, i)), "{name}");
        }
    }
    engine.close();
}
