//! Membership changes with real node processes: a spare joins and a member
//! leaves while a writer keeps writing; partitions move as files (and the
//! transfer resumes after the receiving node is killed mid-way); nothing
//! acknowledged is lost, and every node ends on the same epoch.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{eventually, spawn_writer, TestCluster};
use dynamo_client::Client;
use dynamo_core::version::VectorClock;

const SETTINGS: &str = "n = 3\nr = 2\nw = 2\npartitions = 16\nsync = \"always\"";

/// Every key reads back its own name as its value (through any node).
async fn all_readable(client: &Client, keys: &[String]) {
    for key in keys {
        let mut last = String::new();
        for _ in 0..100 {
            match client.get(key.as_bytes(), None).await {
                Ok(got) if got.values == vec![key.clone().into_bytes()] => {
                    last.clear();
                    break;
                }
                Ok(got) => last = format!("{:?}", got.values),
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(last.is_empty(), "{key}: {last}");
    }
}

async fn epochs(client: &Client, cluster: &TestCluster, nodes: &[usize]) -> Vec<u64> {
    let mut epochs = Vec::new();
    for &index in nodes {
        epochs.push(client.describe(cluster.addrs[index]).await.unwrap().ring.epoch());
    }
    epochs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_and_a_leave_under_writes_lose_nothing() {
    let cluster = TestCluster::start_with_spares("membership", 3, 1, SETTINGS);
    let addrs = cluster.addrs.clone();
    let client = Client::new(addrs[..3].to_vec(), Duration::from_secs(3));
    let mut keys = Vec::new();
    for index in 0..400 {
        let key = format!("before:{index}");
        client
            .put(key.as_bytes(), Some(key.as_bytes()), &VectorClock::new(), None)
            .await
            .unwrap();
        keys.push(key);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(addrs[..3].to_vec(), Arc::clone(&stop), "during", Duration::ZERO);
    // n4 joins through n1.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let noted = Arc::clone(&seen);
    let epoch = client
        .join(addrs[3], addrs[0], Duration::from_secs(120), move |progress| {
            noted.lock().unwrap().push(progress.clone())
        })
        .await
        .unwrap();
    assert_eq!(epoch, 1);
    assert!(!seen.lock().unwrap().is_empty(), "progress was reported");
    let stats = client.stats(addrs[3]).await.unwrap();
    assert!(!stats.transfers.is_empty(), "n4 received partitions as files");
    assert!(stats.transfers.iter().all(|transfer| transfer.bytes > 0));
    // Every node learns the new epoch, and so does this client, which
    // learned epoch 0 before the join: it routes to n4 now.
    eventually(Duration::from_secs(10), "every node at epoch 1", || async {
        epochs(&client, &cluster, &[0, 1, 2, 3]).await == [1, 1, 1, 1]
    })
    .await;
    eventually(Duration::from_secs(10), "the client at epoch 1", || async {
        client.view().await.unwrap().ring.epoch() == 1
    })
    .await;
    let mut routed_to_n4 = 0;
    for index in 0..100 {
        let order = client.route(format!("before:{index}").as_bytes()).await.unwrap();
        routed_to_n4 += usize::from(order.first() == Some(&addrs[3]));
    }
    assert!(routed_to_n4 > 0, "no key routes to n4 first");
    // n2 leaves, writes still going.
    let epoch = client.leave(addrs[1], Duration::from_secs(120), |_| {}).await.unwrap();
    assert_eq!(epoch, 2);
    eventually(Duration::from_secs(10), "every remaining node at epoch 2", || async {
        epochs(&client, &cluster, &[0, 2, 3]).await == [2, 2, 2]
    })
    .await;
    let view = client.describe(addrs[0]).await.unwrap();
    assert!(!view.ring.members().contains(&dynamo_core::NodeId(1)));
    assert!(view.ring.members().contains(&dynamo_core::NodeId(3)));
    stop.store(true, Ordering::Relaxed);
    let during = writer.await.unwrap();
    assert!(
        during.len() > 50,
        "the writer kept writing: {} acknowledged",
        during.len()
    );
    keys.extend(during);
    // The node that left is stopped: everything is on the others.
    let mut cluster = cluster;
    cluster.kill9(1);
    let client = Client::new(vec![addrs[0], addrs[2], addrs[3]], Duration::from_secs(3));
    all_readable(&client, &keys).await;
    // A second join while nothing is pending, of a member, is refused.
    let refused = client.join(addrs[3], addrs[0], Duration::from_secs(5), |_| {}).await;
    assert!(refused.unwrap_err().to_string().contains("already a member"));
}
