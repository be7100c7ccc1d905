//! Compaction under SIGKILL: a child overwrites and removes a few keys per
//! thread (sync `always`, tiny segments) while the engine's background
//! compactor rewrites partitions as fast as it can; the parent kills it at
//! a random moment, reopens the storage and checks every key: it holds the
//! state of its last acknowledged operation (or, for the one operation in
//! flight, the state after it). A removed key must not come back, and no
//! acknowledged put may be lost, whichever unlink or rename the kill
//! landed between. Earlier rounds' keys must keep the state they settled
//! in, round after round.
//!
//! `DYNAMO_CRASH_ROUNDS` sets the number of rounds (default 15);
//! `DYNAMO_TEST_SEED` replays a run.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{ack_until, crash_child_args, crash_round, crash_rounds, seed, value_for, Rng, TempDir};
use dynamo_core::PartitionId;
use dynamo_node::storage::Engine;

const THREADS: u64 = 3;
const KEYS_PER_THREAD: u64 = 6;
const CHILD_LIFETIME: Duration = Duration::from_secs(20);

fn key(round: u64, thread: u64, slot: u64) -> String {
    format!("r{round}-t{thread}-k{slot}")
}

fn partition_of(thread: u64) -> PartitionId {
    PartitionId(thread as u32 % 2)
}

/// Operation `index` of a thread: on key `index % KEYS_PER_THREAD`, a
/// remove every third operation, a put of a value naming it otherwise.
fn operation(round: u64, thread: u64, index: u64) -> (u64, Option<Vec<u8>>) {
    let slot = index % KEYS_PER_THREAD;
    let value = (index % 3 != 2).then(|| value_for(round * 1_000_000 + thread * 100_000 + index, round, 120));
    (slot, value)
}

#[test]
#[ignore = "run as a child process by compaction_under_kill9_loses_and_resurrects_nothing"]
fn compaction_crash_child() {
    let Some((dir, round)) = crash_child_args() else { return };
    let engine = Arc::new(Engine::open(&dir, common::compacting_storage(true)).unwrap());
    ack_until(THREADS, CHILD_LIFETIME, move |thread, index| {
        let (slot, value) = operation(round, thread, index);
        let key = key(round, thread, slot);
        match value {
            Some(value) => engine.put(partition_of(thread), key.as_bytes(), &value).unwrap(),
            None => engine.remove(partition_of(thread), key.as_bytes()).unwrap(),
        }
    });
}

#[test]
fn compaction_under_kill9_loses_and_resurrects_nothing() {
    let rounds = crash_rounds(15);
    let mut rng = Rng::new(seed("compaction_under_kill9_loses_and_resurrects_nothing"));
    let dir = TempDir::new("kill9-compaction");
    // Keys of finished rounds and the state each settled in.
    let mut settled: BTreeMap<(u64, String), Option<Vec<u8>>> = BTreeMap::new();
    let mut total_acks = 0u64;
    for round in 0..rounds {
        let pause = Duration::from_millis(50 + rng.below(400));
        let acks = crash_round("compaction_crash_child", dir.path(), round, "error", pause);
        let last: BTreeMap<u64, u64> = acks.into_iter().collect();
        total_acks += last.values().map(|index| index + 1).sum::<u64>();

        let engine = Engine::open(dir.path(), common::compacting_storage(false))
            .unwrap_or_else(|error| panic!("round {round}: recovery failed: {error}"));
        for thread in 0..THREADS {
            let acked = last.get(&thread).copied();
            for slot in 0..KEYS_PER_THREAD {
                let name = key(round, thread, slot);
                // The state after the last acknowledged operation on it...
                let mut expected: Vec<Option<Vec<u8>>> = vec![None];
                if let Some(acked) = acked {
                    if let Some(index) = (0..=acked).rev().find(|index| index % KEYS_PER_THREAD == slot) {
                        expected = vec![operation(round, thread, index).1];
                    }
                }
                // ... or after the one in flight when the kill came.
                let in_flight = acked.map_or(0, |acked| acked + 1);
                if in_flight % KEYS_PER_THREAD == slot {
                    expected.push(operation(round, thread, in_flight).1);
                }
                let got = engine.get(partition_of(thread), name.as_bytes()).unwrap();
                assert!(
                    expected.contains(&got),
                    "round {round}: {name} reads {:?}, expected one of {:?}",
                    got.as_deref().map(String::from_utf8_lossy),
                    expected
                        .iter()
                        .map(|state| state.as_deref().map(String::from_utf8_lossy))
                        .collect::<Vec<_>>()
                );
                settled.insert((round, name), got);
            }
        }
        for ((settled_round, name), state) in &settled {
            let thread: u64 = name
                .split("-t")
                .nth(1)
                .unwrap()
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let got = engine.get(partition_of(thread), name.as_bytes()).unwrap();
            assert_eq!(
                &got, state,
                "round {round}: {name} (settled in round {settled_round}) changed"
            );
        }
        engine.close();
    }
    eprintln!("{rounds} kill -9 rounds during compaction, {total_acks} acknowledged operations");
    assert!(total_acks > rounds * THREADS, "the children barely wrote: {total_acks}");
}

const FAILPOINT_DIR: &str = "DYNAMO_UNLINK_FAILPOINT_DIR";

/// Puts a remove in a segment numbered *below* the compaction output that
/// holds the put it shadows, then compacts with a crash after the first
/// unlink: unlinking by segment number removed the remove first and
/// brought the key back; unlinking by highest sequence removes the put's
/// segment first.
#[test]
#[ignore = "run as a child process by a_crash_between_two_unlinks_brings_no_removed_key_back"]
fn unlink_failpoint_child() {
    let Some(dir) = std::env::var_os(FAILPOINT_DIR) else {
        return;
    };
    let engine = Engine::open(std::path::Path::new(&dir), common::compacting_storage(false)).unwrap();
    let partition = PartitionId(0);
    let filler = |engine: &Engine, from: u64| {
        for index in from..from + 80 {
            engine
                .put(partition, format!("filler-{index}").as_bytes(), &[b'.'; 100])
                .unwrap();
        }
    };
    engine.put(partition, b"doomed", b"must not come back").unwrap();
    filler(&engine, 0); // seals the segment holding the put
    engine.compact(partition).unwrap(); // the put now lives in an output numbered above the active segment
    engine.remove(partition, b"doomed").unwrap(); // in the active segment, numbered below that output
    filler(&engine, 1_000); // seals it
    engine.compact(partition).unwrap(); // aborts after its first unlink
    unreachable!("the failpoint should have aborted the process");
}

#[test]
fn a_crash_between_two_unlinks_brings_no_removed_key_back() {
    let dir = TempDir::new("unlink-order");
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "unlink_failpoint_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(FAILPOINT_DIR, dir.path())
        .env("DYNAMO_FAILPOINT_COMPACTION_UNLINKS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        !status.success(),
        "the child should have been aborted between two unlinks"
    );
    let engine = Engine::open(dir.path(), common::compacting_storage(false)).unwrap();
    assert_eq!(
        engine.get(PartitionId(0), b"doomed").unwrap(),
        None,
        "a removed key came back"
    );
    for index in (0..80).chain(1_000..1_080) {
        assert!(engine
            .get(PartitionId(0), format!("filler-{index}").as_bytes())
            .unwrap()
            .is_some());
    }
}
