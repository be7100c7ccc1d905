//! Killing the nodes a partition transfer runs between (kill -9, real
//! processes): the receiving node in the middle of a join resumes its
//! transfers where the files it kept end; the leaving node, a source,
//! killed in the middle of a leave, comes back and the change completes.
//! A writer writes throughout; every acknowledged write is there at the
//! end. Transfers are paced (`DYNAMO_TRANSFER_BYTES_PER_S`) so that the
//! kills land mid-transfer.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{spawn_writer, TestCluster};
use dynamo_client::Client;
use dynamo_core::version::VectorClock;

const SETTINGS: &str = "n = 3\nr = 2\nw = 2\npartitions = 8\nsync = \"always\"";

/// Bytes in the staging directories under `data/incoming` whose name
/// contains `from` (all of them for "").
fn staged_bytes(data: &Path, from: &str) -> u64 {
    let Ok(dirs) = std::fs::read_dir(data.join("incoming")) else {
        return 0;
    };
    let mut total = 0;
    for dir in dirs.filter_map(Result::ok) {
        if !dir.file_name().to_string_lossy().contains(from) {
            continue;
        }
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
        {
            total += file.metadata().map(|meta| meta.len()).unwrap_or(0);
        }
    }
    total
}

async fn wait_for(limit: Duration, what: &str, condition: impl Fn() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_survive_kill9_of_their_target_and_their_source() {
    // 1 MB/s: each gained partition (~600 KB) takes about half a second.
    std::env::set_var("DYNAMO_TRANSFER_BYTES_PER_S", "1000000");
    let mut cluster = TestCluster::start_with_spares("membership-kill9", 3, 1, SETTINGS);
    let addrs = cluster.addrs.clone();
    let client = Arc::new(Client::new(addrs[..3].to_vec(), Duration::from_secs(3)));
    let value = vec![b'x'; 4096];
    let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
    for index in 0..1200 {
        let key = format!("before:{index}");
        let mut written = value.clone();
        written.extend_from_slice(key.as_bytes());
        client
            .put(key.as_bytes(), Some(&written), &VectorClock::new(), None)
            .await
            .unwrap();
        keys.push((key, written));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(
        addrs[..3].to_vec(),
        Arc::clone(&stop),
        "during",
        Duration::from_millis(5),
    );

    // n4 joins; killed once 200 KB of a transfer has landed, restarted.
    let join = {
        let client = Arc::clone(&client);
        let (node, seed) = (addrs[3], addrs[0]);
        tokio::spawn(async move { client.join(node, seed, Duration::from_secs(180), |_| {}).await })
    };
    let n4 = cluster.cluster.data_dir(3).unwrap();
    wait_for(Duration::from_secs(60), "n4 to receive 200 KB", || {
        staged_bytes(&n4, "") > 200_000
    })
    .await;
    cluster.kill9(3);
    let kept = staged_bytes(&n4, "");
    assert!(kept > 0);
    cluster.start_node(3);
    assert_eq!(join.await.unwrap().unwrap(), 1);
    let transfers = client.stats(addrs[3]).await.unwrap().transfers;
    assert!(
        transfers.iter().any(|transfer| transfer.resumed_from > 0),
        "a transfer resumed from the bytes kept: {transfers:?}"
    );

    // n2 leaves; killed while another node receives from it, restarted.
    let leave = {
        let client = Arc::clone(&client);
        let node = addrs[1];
        tokio::spawn(async move { client.leave(node, Duration::from_secs(180), |_| {}).await })
    };
    let receivers: Vec<_> = [0, 2, 3]
        .iter()
        .map(|&index| cluster.cluster.data_dir(index).unwrap())
        .collect();
    let from_n2 = "-from-1";
    let sending = wait_for(Duration::from_secs(30), "a transfer from n2", || {
        receivers.iter().any(|dir| staged_bytes(dir, from_n2) > 50_000)
    });
    sending.await;
    cluster.kill9(1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.start_node(1);
    assert_eq!(leave.await.unwrap().unwrap(), 2);

    stop.store(true, Ordering::Relaxed);
    keys.extend(writer.await.unwrap().into_iter().map(|key| {
        let value = key.clone().into_bytes();
        (key, value)
    }));
    cluster.kill9(1);
    let client = Client::new(vec![addrs[0], addrs[2], addrs[3]], Duration::from_secs(3));
    for (key, value) in &keys {
        let mut last = String::new();
        for _ in 0..100 {
            match client.get(key.as_bytes(), None).await {
                Ok(got) if got.values == vec![value.clone()] => {
                    last.clear();
                    break;
                }
                Ok(got) => last = format!("{} values", got.values.len()),
                Err(error) => last = error.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(last.is_empty(), "{key}: {last}");
    }
}
