//! Anti-entropy's figures on real processes: a partition of 100,000 keys
//! on three nodes; one node misses 1, 100 and then 10,000 overwrites while
//! it is down (no sloppy quorum, so no hints carry them), comes back, and
//! nobody reads. Prints the time from its restart until its tree equals
//! the others' and the tree bytes the exchanges moved (from the nodes'
//! own counters). A measurement, not a pass/fail:
//!
//! `cargo test --release -p dynamo-node --test anti_entropy_figures -- --ignored --nocapture`

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{eventually, TestCluster};
use dynamo_client::Client;
use dynamo_core::admin::{AdminAnswer, AdminQuery, TreeDescription};
use dynamo_core::ids::PartitionId;
use dynamo_core::protocol::NodeStats;
use dynamo_core::version::VectorClock;

const KEYS: usize = 100_000;
const IN_FLIGHT: usize = 64;

async fn tree(client: &Client, addr: std::net::SocketAddr) -> Option<TreeDescription> {
    match client.admin(addr, AdminQuery::Trees).await {
        Ok(AdminAnswer::Trees(trees)) => trees.into_iter().find(|tree| tree.partition == 0),
        _ => None,
    }
}

/// The anti-entropy counters of these nodes, summed (a restarted node's
/// start at zero).
async fn totals(client: &Client, addrs: &[std::net::SocketAddr]) -> NodeStats {
    let mut sum = NodeStats::default();
    for &addr in addrs {
        let stats = client.stats(addr).await.unwrap().protocol;
        sum.exchanges += stats.exchanges;
        sum.exchange_bytes += stats.exchange_bytes;
        sum.exchange_differences += stats.exchange_differences;
        sum.entropy_repairs += stats.entropy_repairs;
    }
    sum
}

/// Writes `keys` with `value`, `IN_FLIGHT` at a time, each to `w` replicas.
async fn write_all(client: &Arc<Client>, keys: &[Vec<u8>], value: &[u8], w: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in keys.chunks(keys.len().div_ceil(IN_FLIGHT)) {
        let client = Arc::clone(client);
        let chunk = chunk.to_vec();
        let value = value.to_vec();
        tasks.spawn(async move {
            for key in chunk {
                let context = client
                    .get(&key, Some(w))
                    .await
                    .map(|got| got.context)
                    .unwrap_or_default();
                client.put(&key, Some(&value), &context, Some(w)).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: 100,000 keys on three real nodes (about a minute in release)"]
async fn convergence_time_and_bytes_for_1_100_and_10000_divergent_keys_of_100000() {
    let mut cluster = TestCluster::start(
        "ae-figures",
        3,
        "n = 3\nr = 2\nw = 3\npartitions = 3\nsync = \"batch\"\nsloppy_quorum = false",
    );
    let client = Arc::new(Client::new(cluster.addrs.clone(), Duration::from_secs(5)));
    let view = client.view().await.unwrap();
    let keys: Vec<Vec<u8>> = (0..)
        .map(|index: u64| format!("ae:{index:07}").into_bytes())
        .filter(|key| view.ring.partition_of(key) == PartitionId(0))
        .take(KEYS)
        .collect();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in keys.chunks(KEYS / IN_FLIGHT) {
        let client = Arc::clone(&client);
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for key in chunk {
                client
                    .put(&key, Some(b"v0"), &VectorClock::new(), Some(3))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    println!(
        "loaded {KEYS} keys into partition 0 in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let full = tree(&client, cluster.addrs[0]).await.unwrap();
    assert_eq!(full.keys as usize, KEYS);
    for (round, differing) in [1usize, 100, 10_000].into_iter().enumerate() {
        cluster.kill9(2);
        let value = format!("v{}", round + 1);
        let step = KEYS / differing;
        let changed: Vec<Vec<u8>> = keys.iter().step_by(step).take(differing).cloned().collect();
        write_all(&client, &changed, value.as_bytes(), 2).await;
        let before = totals(&client, &cluster.addrs[..2]).await;
        cluster.start_node(2);
        let restarted = Instant::now();
        let target = tree(&client, cluster.addrs[0]).await.unwrap();
        let addr = cluster.addrs[2];
        let client_ref = &client;
        eventually(
            Duration::from_secs(300),
            "the restarted replica's tree",
            || async move {
                tree(client_ref, addr)
                    .await
                    .is_some_and(|tree| tree.root == target.root)
            },
        )
        .await;
        let took = restarted.elapsed();
        // Let the exchanges in flight finish before reading the counters.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = totals(&client, &cluster.addrs).await;
        let bytes = after.exchange_bytes - before.exchange_bytes;
        println!(
            "{differing:>6} of {KEYS} keys divergent: converged {:.2} s after the restart; {} exchanges, {bytes} tree bytes ({:.0} per divergent key), {} differences found, {} keys repaired",
            took.as_secs_f64(),
            after.exchanges - before.exchanges,
            bytes as f64 / differing as f64,
            after.exchange_differences - before.exchange_differences,
            after.entropy_repairs - before.entropy_repairs,
        );
    }
}
