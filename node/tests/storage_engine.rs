//! The storage engine through its public API, on real files.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{value_for, TempDir};
use dynamo_core::PartitionId;
use dynamo_node::storage::{Engine, IoBackendKind, IoMode, StorageConfig, StorageError, SyncPolicy};

fn config(sync: SyncPolicy, io: IoMode, segment_bytes_max: u64) -> StorageConfig {
    StorageConfig {
        sync,
        segment_bytes_max,
        io,
        compaction: None,
        ..StorageConfig::default()
    }
}

fn segments(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn puts_removes_and_gets_survive_a_reopen_with_each_backend_and_policy() {
    for io in [IoMode::Uring, IoMode::Positioned] {
        for sync in [SyncPolicy::Always, "batch:2ms".parse().unwrap(), SyncPolicy::None] {
            let dir = TempDir::new("round-trip");
            let mut expected: BTreeMap<(u32, u64), Option<Vec<u8>>> = BTreeMap::new();
            {
                let engine = Engine::open(dir.path(), config(sync, io, 16 * 1024)).unwrap();
                let expected_backend = if io == IoMode::Uring {
                    IoBackendKind::Uring
                } else {
                    IoBackendKind::Positioned
                };
                assert_eq!(engine.backend(), expected_backend);
                for round in 0..3u64 {
                    for key in 0..200u64 {
                        let partition = (key % 4) as u32;
                        let name = format!("key-{key}");
                        if round == 2 && key % 5 == 0 {
                            engine.remove(PartitionId(partition), name.as_bytes()).unwrap();
                            expected.insert((partition, key), None);
                        } else {
                            let value = value_for(key, round, 100 + (key as usize * 7) % 900);
                            engine.put(PartitionId(partition), name.as_bytes(), &value).unwrap();
                            expected.insert((partition, key), Some(value));
                        }
                    }
                }
                for ((partition, key), value) in &expected {
                    let got = engine
                        .get(PartitionId(*partition), format!("key-{key}").as_bytes())
                        .unwrap();
                    assert_eq!(&got, value, "{io:?} {sync} key {key} before reopen");
                }
                engine.close();
            }
            // 16 KiB segments: the writes rolled over many segments.
            assert!(segments(&dir.path().join("p00000")).len() > 3, "{io:?} {sync}");
            let engine = Engine::open(dir.path(), config(sync, io, 16 * 1024)).unwrap();
            for ((partition, key), value) in &expected {
                let got = engine
                    .get(PartitionId(*partition), format!("key-{key}").as_bytes())
                    .unwrap();
                assert_eq!(&got, value, "{io:?} {sync} key {key} after reopen");
            }
            let live: u64 = engine.stats().iter().map(|stats| stats.keys).sum();
            assert_eq!(live, expected.values().filter(|value| value.is_some()).count() as u64);
        }
    }
}

#[test]
fn compaction_keeps_every_live_record_while_reads_and_writes_go_on() {
    let dir = TempDir::new("compaction");
    let engine = Arc::new(Engine::open(dir.path(), config(SyncPolicy::None, IoMode::Auto, 8 * 1024)).unwrap());
    let partition = PartitionId(3);
    // Many overwrites: most records are dead.
    for round in 0..10u64 {
        for key in 0..100u64 {
            engine
                .put(partition, format!("k{key}").as_bytes(), &value_for(key, round, 200))
                .unwrap();
        }
    }
    let before = engine.stats()[0].clone();
    let stop = Arc::new(AtomicBool::new(false));
    // A writer keeps overwriting keys 0..10 and a reader keeps reading all.
    let writer = {
        let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut round = 10;
            while !stop.load(Ordering::Relaxed) {
                for key in 0..10u64 {
                    engine
                        .put(partition, format!("k{key}").as_bytes(), &value_for(key, round, 200))
                        .unwrap();
                }
                round += 1;
            }
            (round - 1, (round - 10) * 10)
        })
    };
    let reader = {
        let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for key in 0..100u64 {
                    let value = engine
                        .get(partition, format!("k{key}").as_bytes())
                        .unwrap()
                        .expect("never missing");
                    assert!(value.starts_with(format!("key={key} ").as_bytes()));
                    reads += 1;
                }
            }
            reads
        })
    };
    let stats = engine.compact(partition).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let (last_round, puts_during) = writer.join().unwrap();
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert!(stats.records_dropped > stats.records_kept, "{stats:?}");
    assert!(stats.bytes_out < stats.bytes_in / 2, "{stats:?}");
    let after = engine.stats()[0].clone();
    // Before: 1,000 records, 100 of them live. After: the live ones plus
    // whatever the writer appended meanwhile (however fast this machine
    // is); the dead 900 must be gone.
    let record_bytes = before.bytes as f64 / 1_000.0;
    let appended = puts_during as f64 * record_bytes;
    assert!(
        (after.bytes as f64) < before.bytes as f64 / 2.0 + appended * 1.1,
        "before {before:?} after {after:?}, {puts_during} puts during compaction"
    );
    let check = |engine: &Engine| {
        for key in 0..100u64 {
            let round = if key < 10 { last_round } else { 9 };
            let got = engine.get(partition, format!("k{key}").as_bytes()).unwrap();
            assert_eq!(got, Some(value_for(key, round, 200)), "key {key}");
        }
    };
    check(&engine);
    // Recovery from compacted segments (numbered after the active one)
    // still picks the newest record of each key.
    let engine = Arc::into_inner(engine).unwrap();
    engine.close();
    let engine = Engine::open(dir.path(), config(SyncPolicy::None, IoMode::Auto, 8 * 1024)).unwrap();
    check(&engine);
}

#[test]
fn removes_survive_compaction_and_reopen() {
    let dir = TempDir::new("compaction-removes");
    let partition = PartitionId(0);
    {
        let engine = Engine::open(dir.path(), config(SyncPolicy::None, IoMode::Auto, 4 * 1024)).unwrap();
        for key in 0..50u64 {
            engine
                .put(partition, format!("k{key}").as_bytes(), &value_for(key, 0, 300))
                .unwrap();
        }
        for key in (0..50u64).step_by(2) {
            engine.remove(partition, format!("k{key}").as_bytes()).unwrap();
        }
        // Roll past the removes so they sit in sealed segments.
        for key in 100..130u64 {
            engine
                .put(partition, format!("k{key}").as_bytes(), &value_for(key, 0, 300))
                .unwrap();
        }
        engine.compact(partition).unwrap();
        engine.close();
    }
    let engine = Engine::open(dir.path(), config(SyncPolicy::None, IoMode::Auto, 4 * 1024)).unwrap();
    for key in 0..50u64 {
        let got = engine.get(partition, format!("k{key}").as_bytes()).unwrap();
        assert_eq!(got.is_some(), key % 2 == 1, "key {key}");
    }
}

/// One bad byte in a sealed segment used to stop the whole node (N−1
/// replicas hold the same data). Now the engine opens, never serves the
/// damaged record, serves everything else, and reports the partition as
/// needing repair, naming the file and the damaged range.
#[test]
fn a_flipped_byte_in_a_sealed_segment_is_skipped_and_the_partition_marked_for_repair() {
    let dir = TempDir::new("flip-sealed");
    {
        let engine = Engine::open(dir.path(), config(SyncPolicy::Always, IoMode::Auto, 4 * 1024)).unwrap();
        for key in 0..40u64 {
            engine
                .put(PartitionId(1), format!("k{key}").as_bytes(), &value_for(key, 0, 500))
                .unwrap();
        }
    }
    let files = segments(&dir.path().join("p00001"));
    assert!(files.len() >= 2);
    let first = &files[0];
    let mut bytes = std::fs::read(first).unwrap();
    bytes[32 + 8 + 20] ^= 0x01; // inside the first record's body
    std::fs::write(first, &bytes).unwrap();
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    // The damaged record is k0's (the first written): never served.
    assert_eq!(engine.get(PartitionId(1), b"k0").unwrap(), None);
    for key in 1..40u64 {
        let got = engine.get(PartitionId(1), format!("k{key}").as_bytes()).unwrap();
        assert_eq!(got, Some(value_for(key, 0, 500)), "k{key}");
    }
    let stats = engine.stats();
    let reason = stats[0].needs_repair.as_deref().expect("marked for repair");
    assert!(reason.contains("0000000001.seg") && reason.contains("32.."), "{reason}");
}

/// The case: sync = always, 40 puts, a clean stop, one byte
/// flipped a third of the way into the active segment. Recovery took the
/// damage for a torn tail and cut everything after it: 9 acknowledged,
/// fdatasync'ed keys gone for good. A tear only ever damages the last
/// batch written, so damage followed by a valid record is corruption:
/// only the damaged record is lost (and the partition marked for repair);
/// every record after it is salvaged, and nothing is cut.
#[test]
fn a_flipped_byte_inside_the_active_segment_loses_only_the_damaged_record() {
    let dir = TempDir::new("flip-active");
    {
        let engine = Engine::open(dir.path(), config(SyncPolicy::Always, IoMode::Auto, 1 << 20)).unwrap();
        for key in 0..40u64 {
            engine
                .put(PartitionId(0), format!("k{key}").as_bytes(), &value_for(key, 0, 100))
                .unwrap();
        }
    }
    let files = segments(&dir.path().join("p00000"));
    assert_eq!(files.len(), 1);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let length = bytes.len();
    bytes[length / 3] ^= 0x40;
    std::fs::write(&files[0], &bytes).unwrap();
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    let missing: Vec<u64> = (0..40u64)
        .filter(|key| {
            engine.get(PartitionId(0), format!("k{key}").as_bytes()).unwrap() != Some(value_for(*key, 0, 100))
        })
        .collect();
    assert_eq!(missing.len(), 1, "only the damaged record may be lost: {missing:?}");
    assert!(engine.stats()[0].needs_repair.is_some());
    assert_eq!(
        std::fs::metadata(&files[0]).unwrap().len() as usize,
        length,
        "nothing was cut"
    );
}

#[test]
fn a_torn_tail_of_the_last_segment_is_cut_and_the_rest_served() {
    let dir = TempDir::new("torn-tail");
    {
        let engine = Engine::open(dir.path(), config(SyncPolicy::Always, IoMode::Auto, 1 << 20)).unwrap();
        for key in 0..10u64 {
            engine
                .put(PartitionId(0), format!("k{key}").as_bytes(), &value_for(key, 0, 100))
                .unwrap();
        }
    }
    let file = segments(&dir.path().join("p00000")).pop().unwrap();
    let full = std::fs::metadata(&file).unwrap().len();
    // Cut the last record in half, as a crash mid-write would.
    let file_handle = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    file_handle.set_len(full - 40).unwrap();
    drop(file_handle);
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    for key in 0..9u64 {
        assert_eq!(
            engine.get(PartitionId(0), format!("k{key}").as_bytes()).unwrap(),
            Some(value_for(key, 0, 100))
        );
    }
    assert_eq!(engine.get(PartitionId(0), b"k9").unwrap(), None);
    // The cut is durable and appends continue after it.
    engine.put(PartitionId(0), b"k9", b"again").unwrap();
    engine.close();
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    assert_eq!(engine.get(PartitionId(0), b"k9").unwrap(), Some(b"again".to_vec()));
    assert_eq!(engine.get(PartitionId(0), b"k8").unwrap(), Some(value_for(8, 0, 100)));
}

#[test]
fn garbage_appended_to_the_last_segment_is_cut() {
    let dir = TempDir::new("garbage-tail");
    {
        let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
        engine.put(PartitionId(0), b"k", b"v").unwrap();
    }
    let file = segments(&dir.path().join("p00000")).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let good = bytes.len();
    bytes.extend_from_slice(&[0x55; 100]);
    std::fs::write(&file, &bytes).unwrap();
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    assert_eq!(engine.get(PartitionId(0), b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(std::fs::metadata(&file).unwrap().len(), good as u64);
}

#[test]
fn a_record_damaged_after_open_is_never_served() {
    let dir = TempDir::new("rot-after-open");
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    engine.put(PartitionId(0), b"k", b"the value").unwrap();
    let file = segments(&dir.path().join("p00000")).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    match engine.get(PartitionId(0), b"k") {
        Err(StorageError::ChecksumMismatch { path, offset, .. }) => {
            assert_eq!(path, file);
            assert_eq!(offset, 32);
        }
        other => panic!("a damaged record was served or misreported: {other:?}"),
    }
}

#[test]
fn oversized_keys_and_records_are_refused_with_their_sizes() {
    let dir = TempDir::new("sizes");
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    let key = vec![b'k'; dynamo_core::limits::KEY_BYTES_MAX + 1];
    assert!(matches!(
        engine.put(PartitionId(0), &key, b"v"),
        Err(StorageError::KeyTooLarge { .. })
    ));
    let value = vec![0u8; dynamo_core::limits::RECORD_BODY_BYTES_MAX];
    assert!(matches!(
        engine.put(PartitionId(0), b"k", &value),
        Err(StorageError::RecordTooLarge { .. })
    ));
    let error = Engine::open(dir.path(), config(SyncPolicy::Always, IoMode::Auto, 10)).unwrap_err();
    assert!(error.to_string().contains("segment size 10"), "{error}");
}

#[test]
fn group_commit_acknowledges_every_concurrent_writer() {
    let dir = TempDir::new("group-commit");
    let engine = Arc::new(Engine::open(dir.path(), StorageConfig::default()).unwrap());
    let threads: Vec<_> = (0..16u64)
        .map(|writer| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for index in 0..50u64 {
                    let key = format!("w{writer}-{index}");
                    engine
                        .put(PartitionId((writer % 3) as u32), key.as_bytes(), key.as_bytes())
                        .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for writer in 0..16u64 {
        for index in 0..50u64 {
            let key = format!("w{writer}-{index}");
            assert_eq!(
                engine.get(PartitionId((writer % 3) as u32), key.as_bytes()).unwrap(),
                Some(key.clone().into_bytes())
            );
        }
    }
}

/// Under `batch`, periodic syncs run on their own thread while writers go
/// on; `flush` waits for a round in flight and then syncs the rest, and
/// segment rolls wait too. Many writers, small segments (rolls), flushes
/// from several threads, then a reopen: everything acknowledged is there.
#[test]
fn batch_syncs_in_the_background_and_flush_and_rolls_still_cover_every_write() {
    let dir = TempDir::new("batch-background");
    {
        let engine = Arc::new(
            Engine::open(
                dir.path(),
                config("batch:1ms".parse().unwrap(), IoMode::Uring, 8 * 1024),
            )
            .unwrap(),
        );
        let threads: Vec<_> = (0..8u64)
            .map(|writer| {
                let engine = Arc::clone(&engine);
                std::thread::spawn(move || {
                    for index in 0..300u64 {
                        let key = format!("w{writer}-{index}");
                        let value = value_for(writer, index, 200);
                        engine
                            .put(PartitionId((index % 5) as u32), key.as_bytes(), &value)
                            .unwrap();
                        if index % 50 == 49 {
                            engine.flush().unwrap();
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        engine.flush().unwrap();
        Arc::try_unwrap(engine).ok().unwrap().close();
    }
    let engine = Engine::open(dir.path(), config(SyncPolicy::None, IoMode::Uring, 8 * 1024)).unwrap();
    for writer in 0..8u64 {
        for index in 0..300u64 {
            let key = format!("w{writer}-{index}");
            assert_eq!(
                engine.get(PartitionId((index % 5) as u32), key.as_bytes()).unwrap(),
                Some(value_for(writer, index, 200)),
                "{key}"
            );
        }
    }
}

#[test]
fn a_completion_that_panics_does_not_stop_the_storage_thread() {
    let dir = TempDir::new("panicking-completion");
    let engine = Engine::open(dir.path(), config(SyncPolicy::None, IoMode::Auto, 1 << 20)).unwrap();
    engine
        .submit(
            PartitionId(0),
            &b"first"[..],
            Some(b"one".to_vec()),
            Box::new(|_| panic!("a caller's bug, on the storage thread")),
        )
        .unwrap();
    // Without the storage thread these would wait forever: bound the wait.
    let (done, finished) = std::sync::mpsc::channel();
    let engine = Arc::new(engine);
    let writer = Arc::clone(&engine);
    std::thread::spawn(move || {
        let outcome = writer.put(PartitionId(0), b"second", b"two");
        let _ = done.send(outcome);
    });
    let outcome = finished
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the write after a panicking completion was never acknowledged");
    outcome.unwrap();
    assert_eq!(
        engine.get(PartitionId(0), b"first").unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(
        engine.get(PartitionId(0), b"second").unwrap().as_deref(),
        Some(&b"two"[..])
    );
}

#[test]
fn a_second_engine_on_the_same_directory_is_refused_until_the_first_is_gone() {
    let dir = TempDir::new("in-use");
    let first = Engine::open(dir.path(), config(SyncPolicy::Always, IoMode::Auto, 1 << 20)).unwrap();
    first.put(PartitionId(0), b"key", b"value").unwrap();
    match Engine::open(dir.path(), config(SyncPolicy::Always, IoMode::Auto, 1 << 20)) {
        Err(error @ StorageError::InUse { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&dir.path().display().to_string()), "{message}");
            assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
        }
        other => panic!("a second engine opened the directory: {other:?}"),
    }
    drop(first);
    let again = Engine::open(dir.path(), config(SyncPolicy::Always, IoMode::Auto, 1 << 20)).unwrap();
    assert_eq!(
        again.get(PartitionId(0), b"key").unwrap().as_deref(),
        Some(&b"value"[..])
    );
}

/// Compaction had no caller outside tests and benches: every overwrite
/// grew the partition for good (a 10-minute ycsb-a grew each node's data
/// to 3.4–4.6 GB). With a compaction policy the engine compacts on its
/// own, triggered by dead bytes, and the partition stays near its live
/// data while writes go on.
#[test]
fn background_compaction_keeps_an_overwritten_partition_near_its_live_data() {
    let dir = TempDir::new("background-compaction");
    let mut config = config(SyncPolicy::None, IoMode::Auto, 64 * 1024);
    config.compaction = Some(dynamo_node::storage::CompactionPolicy {
        interval: std::time::Duration::from_millis(20),
        dead_percent_min: 50,
        dead_bytes_min: 64 * 1024,
        bytes_per_second_max: 256 * 1024 * 1024,
    });
    let engine = Engine::open(dir.path(), config).unwrap();
    let partition = PartitionId(2);
    let live_bytes = 200 * 220;
    for round in 0..60u64 {
        for key in 0..200u64 {
            engine
                .put(partition, format!("k{key}").as_bytes(), &value_for(key, round, 200))
                .unwrap();
        }
    }
    let started = std::time::Instant::now();
    while engine.stats()[0].bytes > 4 * live_bytes + 2 * 64 * 1024 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?} after {} compactions",
            engine.stats()[0],
            engine.compactions().0
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(engine.compactions().0 > 0);
    for key in 0..200u64 {
        let got = engine.get(partition, format!("k{key}").as_bytes()).unwrap();
        assert_eq!(got, Some(value_for(key, 59, 200)), "k{key}");
    }
    drop(engine);
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    for key in 0..200u64 {
        let got = engine.get(partition, format!("k{key}").as_bytes()).unwrap();
        assert_eq!(got, Some(value_for(key, 59, 200)), "k{key} after reopening");
    }
}

/// A failed fdatasync while rolling a segment used to return an error for
/// that one write and leave the partition taking writes, though after a
/// failed fdatasync the page cache cannot be trusted (a retried sync can
/// "succeed" after the kernel dropped the pages). It now fails the
/// partition, as the commit path does. Run in a child process, where the
/// failure is injected (`DYNAMO_FAILPOINT_ROLL_SYNC`).
#[test]
#[ignore = "run as a child process by a_failed_sync_at_a_roll_fails_the_partition"]
fn roll_sync_failure_child() {
    let Some(dir) = std::env::var_os("DYNAMO_ROLL_CHILD_DIR") else {
        return;
    };
    let engine = Engine::open(
        std::path::Path::new(&dir),
        config(
            SyncPolicy::Batch {
                interval: std::time::Duration::from_secs(60),
            },
            IoMode::Auto,
            4 * 1024,
        ),
    )
    .unwrap();
    let partition = PartitionId(0);
    let mut failed_at = None;
    for index in 0..100u64 {
        if engine
            .put(partition, format!("k{index}").as_bytes(), &value_for(index, 0, 300))
            .is_err()
        {
            failed_at = Some(index);
            break;
        }
    }
    let failed_at = failed_at.expect("a roll happened, and its sync failed");
    let after = engine.put(partition, b"after", b"v").unwrap_err();
    assert!(matches!(after, StorageError::PartitionFailed { .. }), "{after}");
    // Other partitions are not affected.
    engine.put(PartitionId(1), b"elsewhere", b"v").unwrap();
    println!("roll sync failed at write {failed_at}; the partition refuses writes since");
}

#[test]
fn a_failed_sync_at_a_roll_fails_the_partition() {
    let dir = TempDir::new("roll-sync");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "roll_sync_failure_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("DYNAMO_ROLL_CHILD_DIR", dir.path())
        .env("DYNAMO_FAILPOINT_ROLL_SYNC", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("the partition refuses writes"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A deleted middle segment went unnoticed: its keys silently reverted to
/// older versions (or vanished). The partition's MANIFEST lists its
/// segments; one listed and missing is damage, reported for repair.
#[test]
fn a_missing_middle_segment_is_noticed_and_reported_for_repair() {
    let dir = TempDir::new("missing-segment");
    {
        let engine = Engine::open(dir.path(), config(SyncPolicy::Always, IoMode::Auto, 4 * 1024)).unwrap();
        for key in 0..40u64 {
            engine
                .put(PartitionId(5), format!("k{key}").as_bytes(), &value_for(key, 0, 500))
                .unwrap();
        }
    }
    let files = segments(&dir.path().join("p00005"));
    assert!(files.len() >= 3, "{files:?}");
    let middle = &files[files.len() / 2];
    std::fs::remove_file(middle).unwrap();
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    let stats = engine.stats();
    let reason = stats[0]
        .needs_repair
        .as_deref()
        .expect("the missing segment is reported");
    assert!(reason.contains("missing"), "{reason}");
    // The partition still serves what it has.
    assert!(engine.get(PartitionId(5), b"k0").unwrap().is_some());
    // And, reopened again, it is still reported: the loss did not become
    // the new normal.
    drop(engine);
    let engine = Engine::open(dir.path(), StorageConfig::default()).unwrap();
    assert!(engine.stats()[0].needs_repair.is_some(), "forgotten after one restart");
}
