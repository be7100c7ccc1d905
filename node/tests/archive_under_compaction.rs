//! An archive taken while the engine writes and compacts as fast as it can
//! (tiny segments, compaction every 2 ms): each one, restored into a fresh
//! directory and opened, holds every key in the state of its last
//! acknowledged operation before the archive began, or of a later one — no
//! acknowledged put lost, no removed key back with an older value —
//! whichever rename or unlink the snapshot ran into.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{value_for, TempDir};
use dynamo_core::PartitionId;
use dynamo_node::storage::Engine;

const THREADS: u64 = 2;
const KEYS_PER_THREAD: u64 = 6;
const ARCHIVES: usize = 150;

/// Per key, every operation begun on it: (its index, the state it leaves).
type Log = BTreeMap<String, Vec<(u64, Option<Vec<u8>>)>>;

#[test]
fn every_archive_taken_under_writes_and_compaction_restores_every_acknowledged_state() {
    let dir = TempDir::new("archive-compaction");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("NODE"),
        "dynamo node\nname = n1\npartitions = 2\nversioning = dvv\n",
    )
    .unwrap();
    let engine = Arc::new(Engine::open(&data.join("partitions"), common::compacting_storage(true)).unwrap());
    let begun: Arc<Mutex<Log>> = Arc::default();
    // key → index of its last acknowledged operation.
    let acknowledged: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (engine, begun, acknowledged, stop) = (
                Arc::clone(&engine),
                Arc::clone(&begun),
                Arc::clone(&acknowledged),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                let partition = PartitionId(thread as u32);
                let mut index = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("t{thread}-k{}", index % KEYS_PER_THREAD);
                    let value = (index % 3 != 2).then(|| value_for(thread * 1_000_000 + index, 0, 200));
                    begun
                        .lock()
                        .unwrap()
                        .entry(key.clone())
                        .or_default()
                        .push((index, value.clone()));
                    match &value {
                        Some(value) => engine.put(partition, key.as_bytes(), value).unwrap(),
                        None => engine.remove(partition, key.as_bytes()).unwrap(),
                    }
                    acknowledged.lock().unwrap().insert(key, index);
                    index += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut compacted = 0;
    for round in 0..ARCHIVES {
        let settled: BTreeMap<String, u64> = acknowledged.lock().unwrap().clone();
        let out = dir.path().join(format!("a{round}.archive"));
        dynamo_node::archive::archive(&data, &out, |_, _| {}).unwrap();
        let target = dir.path().join(format!("restored{round}"));
        dynamo_node::archive::restore(&out, &target).unwrap();
        let restored = Engine::open(&target.join("partitions"), common::compacting_storage(false)).unwrap();
        let log = begun.lock().unwrap().clone();
        for (key, index) in &settled {
            let thread: u32 = key[1..key.find('-').unwrap()].parse().unwrap();
            let state = restored.get(PartitionId(thread), key.as_bytes()).unwrap();
            let allowed = log[key].iter().any(|(at, value)| at >= index && *value == state);
            assert!(
                allowed,
                "archive {round}: {key} restored as {:?}, not the state of operation {index} or a later one",
                state.map(|value| String::from_utf8_lossy(&value[..24]).into_owned())
            );
        }
        for partition in restored.stats() {
            assert_eq!(
                partition.needs_repair, None,
                "archive {round}: partition {}",
                partition.partition.0
            );
        }
        restored.close();
        compacted += segments_removed(&data.join("partitions"));
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().unwrap();
    }
    assert!(compacted > 0, "compaction ran while the archives were taken");
}

/// Segment ids missing below the highest of each partition: segments
/// compaction rewrote and unlinked.
fn segments_removed(partitions: &std::path::Path) -> usize {
    let mut removed = 0;
    for dir in std::fs::read_dir(partitions)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
    {
        let ids: Vec<u64> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().to_str()?.strip_suffix(".seg")?.parse().ok())
            .collect();
        if let Some(max) = ids.iter().max() {
            removed += *max as usize - ids.len();
        }
    }
    removed
}
