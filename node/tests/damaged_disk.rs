//! A node whose disk damaged a byte of acknowledged data: it starts, never
//! serves the damaged record, serves every record around it, and says
//! which partition needs repair (`client stats`, and its log).

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::cluster::TestCluster;
use dynamo_client::Client;
use dynamo_core::version::VectorClock;

/// The partition segment holding the most bytes.
fn fullest_segment(data: &std::path::Path) -> PathBuf {
    let mut best: Option<(u64, PathBuf)> = None;
    for partition in std::fs::read_dir(data.join("partitions")).unwrap().flatten() {
        // Partition directories only (not the commit log's).
        if !partition.path().is_dir() || !partition.file_name().to_string_lossy().starts_with('p') {
            continue;
        }
        for segment in std::fs::read_dir(partition.path()).unwrap().flatten() {
            let len = segment.metadata().unwrap().len();
            if best.as_ref().is_none_or(|(most, _)| len > *most) {
                best = Some((len, segment.path()));
            }
        }
    }
    best.unwrap().1
}

fn value(key: usize) -> Vec<u8> {
    format!("value-{key}-{}", "x".repeat(100)).into_bytes()
}

/// Writes `keys` keys (`k0`.. with [`value`]), kills node 0, flips a byte a
/// third into its fullest segment, restarts it; returns that segment.
async fn write_then_flip_a_byte(cluster: &mut TestCluster, keys: usize) -> PathBuf {
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    for key in 0..keys {
        client
            .put(
                format!("k{key}").as_bytes(),
                Some(&value(key)),
                &VectorClock::new(),
                None,
            )
            .await
            .unwrap();
    }
    cluster.kill9(0);
    let segment = fullest_segment(&cluster.dir.path().join("n1"));
    let mut bytes = std::fs::read(&segment).unwrap();
    let third = bytes.len() / 3;
    bytes[third] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();
    cluster.start_node(0);
    segment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_costs_one_record_and_the_partition_is_reported_for_repair() {
    let mut cluster = TestCluster::start("damaged", 1, "n = 1\nr = 1\nw = 1\npartitions = 2\nsync = \"always\"");
    let segment = write_then_flip_a_byte(&mut cluster, 40).await;

    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    let mut missing = Vec::new();
    for key in 0..40 {
        let got = client.get(format!("k{key}").as_bytes(), None).await.unwrap();
        if got.values != vec![value(key)] {
            missing.push(key);
        }
    }
    assert!(missing.len() <= 1, "only the damaged record may be lost: {missing:?}");
    let stats = client.stats(cluster.addrs[0]).await.unwrap();
    assert_eq!(stats.needs_repair.len(), 1, "{stats:?}");
    let partition = segment
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(format!("p{:05}", stats.needs_repair[0].partition.0), partition);
}

/// The same damage on one replica of three: the partition is repaired
/// first, from the other replicas, by anti-entropy alone (no client
/// reads): the lost record is back on the damaged node, and once its tree
/// agrees with a peer's the partition is no longer reported (its
/// `NEEDS_REPAIR` file is gone, so a restart does not report it again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_replica_is_repaired_by_anti_entropy_and_stops_being_reported() {
    use common::cluster::eventually;
    // Sync `batch`: under `always` the commit log would bring the damaged
    // record back itself at the restart (it is after the last checkpoint),
    // and anti-entropy would have nothing to repair.
    let mut cluster = TestCluster::start("repaired", 3, "n = 3\nr = 2\nw = 3\npartitions = 3\nsync = \"batch\"");
    write_then_flip_a_byte(&mut cluster, 60).await;
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    let damaged = cluster.addrs[0];
    eventually(
        Duration::from_secs(30),
        "the damaged partition to be repaired",
        || async {
            client
                .stats(damaged)
                .await
                .is_ok_and(|stats| stats.needs_repair.is_empty() && stats.keys == 60)
        },
    )
    .await;
    let stats = client.stats(damaged).await.unwrap();
    assert_eq!(stats.protocol.coordinated_gets, 0, "no client read did it");
    assert!(stats.protocol.entropy_repairs >= 1, "{:?}", stats.protocol);
    for key in 0..60 {
        let got = client
            .get_via(&[damaged], format!("k{key}").as_bytes(), Some(1))
            .await
            .unwrap();
        assert_eq!(got.values, vec![value(key)], "k{key} on the repaired node");
    }
    cluster.kill9(0);
    cluster.start_node(0);
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    let stats = client.stats(damaged).await.unwrap();
    assert!(
        stats.needs_repair.is_empty(),
        "reported again after a restart: {stats:?}"
    );
}
