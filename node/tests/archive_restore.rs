//! Archival with real processes: `dynamo-node archive` snapshots a running
//! node's data directory under load; the node's data is then lost; a
//! `dynamo-node restore` brings the archive back into a fresh directory
//! and the node rejoins. Nothing acknowledged is lost (what the archive
//! missed comes from the peers through anti-entropy, with no client
//! reads), and no version is reissued: the restored node writes as a new
//! incarnation, so a put it coordinates never collides with one it
//! coordinated after the archive was taken.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::cluster::{eventually, TestCluster};
use dynamo_client::Client;
use dynamo_core::admin::{AdminAnswer, AdminQuery, TreeDescription};
use dynamo_core::version::VectorClock;

fn node_binary(arguments: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dynamo-node"))
        .args(arguments)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn archive(data: &Path, out: &Path) -> (bool, String) {
    node_binary(&[
        "archive",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

fn restore(archive: &Path, data: &Path) -> (bool, String) {
    node_binary(&[
        "restore",
        "--archive",
        archive.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ])
}

async fn trees(client: &Client, addr: std::net::SocketAddr) -> Vec<TreeDescription> {
    match client.admin(addr, AdminQuery::Trees).await {
        Ok(AdminAnswer::Trees(trees)) => trees,
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_an_archive_taken_under_load_loses_nothing_and_reissues_no_version() {
    let mut cluster = TestCluster::start("archive", 3, "n = 3\nr = 2\nw = 2\npartitions = 16\nsync = \"always\"");
    let client = Arc::new(Client::new(cluster.addrs.clone(), Duration::from_secs(3)));
    let restored_addr = cluster.addrs[2];
    let name = cluster.cluster.config().members[2].name.clone();
    let restored_node = cluster.cluster.config().members[2].node;
    let data = cluster.dir.path().join(&name);
    let archive_path = cluster.dir.path().join("n.archive");
    // Blind puts coordinated by the node to be restored: concurrent
    // siblings, each with a dot of its own.
    let blind = |client: Arc<Client>, value: String| async move {
        client
            .put_via(
                &[restored_addr],
                b"siblings",
                Some(value.as_bytes()),
                &VectorClock::new(),
                None,
            )
            .await
            .unwrap();
    };
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for index in 0..200 {
        let key = format!("before:{index}");
        client
            .put(key.as_bytes(), Some(key.as_bytes()), &VectorClock::new(), Some(3))
            .await
            .unwrap();
        acknowledged.push((key.clone(), key));
    }
    for index in 0..3 {
        blind(Arc::clone(&client), format!("s{index}")).await;
    }

    // The archive, taken while a writer keeps writing.
    let writer = {
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            let mut written = Vec::new();
            for index in 0..300 {
                let key = format!("during:{index}");
                if client
                    .put(key.as_bytes(), Some(key.as_bytes()), &VectorClock::new(), None)
                    .await
                    .is_ok()
                {
                    written.push((key.clone(), key));
                }
            }
            written
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (ok, text) = archive(&data, &archive_path);
    assert!(ok, "{text}");
    assert!(text.contains("archived 16 partitions"), "{text}");
    acknowledged.extend(writer.await.unwrap());

    // After the archive: more writes, and more puts the node coordinates
    // (its dot counters move past what the archive holds).
    for index in 0..100 {
        let key = format!("after:{index}");
        client
            .put(key.as_bytes(), Some(key.as_bytes()), &VectorClock::new(), None)
            .await
            .unwrap();
        acknowledged.push((key.clone(), key));
    }
    for index in 3..5 {
        blind(Arc::clone(&client), format!("s{index}")).await;
    }

    // The node's data is lost; a restore into a non-empty directory is
    // refused; into the emptied one it works.
    cluster.kill9(2);
    let (ok, text) = restore(&archive_path, &data);
    assert!(!ok && text.contains("is not empty"), "{text}");
    std::fs::remove_dir_all(&data).unwrap();
    let (ok, text) = restore(&archive_path, &data);
    assert!(ok, "{text}");
    assert!(Path::new(&data).join("NODE").exists());
    cluster.start_node(2);
    // A new client: the old one's connection to the killed process is dead.
    let client = Arc::new(Client::new(cluster.addrs.clone(), Duration::from_secs(3)));
    // Until the peers have reconnected to the new process, a put it
    // coordinates may time out (an indeterminate outcome): warm up on
    // another key first.
    eventually(
        Duration::from_secs(20),
        "the restarted node to coordinate a write",
        || {
            let client = Arc::clone(&client);
            async move {
                client
                    .put_via(&[restored_addr], b"warm-up", Some(b"w"), &VectorClock::new(), None)
                    .await
                    .is_ok()
            }
        },
    )
    .await;
    // A put it coordinates. Were its incarnation the archive's, its dot
    // could be one of s3's or s4's (one of the two values would vanish),
    // and the key's clock would hold one incarnation of it, not two.
    blind(Arc::clone(&client), "s5".into()).await;

    // All three trees equal (each read afresh: a write that timed out
    // during the archive may have reached one replica only, and the others
    // converge on it too).
    let addrs = cluster.addrs.clone();
    eventually(Duration::from_secs(60), "the restored node to hold every key", || {
        let (client, addrs) = (Arc::clone(&client), addrs.clone());
        async move {
            let restored = trees(&client, restored_addr).await;
            for addr in addrs {
                if trees(&client, addr).await != restored {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let stats = client.stats(restored_addr).await.unwrap();
    assert_eq!(stats.protocol.coordinated_gets, 0, "no client read did the repair");
    // Every acknowledged write, read from the restored node alone.
    for (key, value) in &acknowledged {
        let got = client.get_via(&[restored_addr], key.as_bytes(), Some(1)).await.unwrap();
        assert_eq!(got.values, vec![value.as_bytes().to_vec()], "{key}");
    }
    let got = client.get_via(&[restored_addr], b"siblings", Some(3)).await.unwrap();
    let mut siblings = got.values;
    siblings.sort();
    let expected: Vec<Vec<u8>> = (0..6).map(|index| format!("s{index}").into_bytes()).collect();
    assert_eq!(siblings, expected, "a version was reissued or lost");
    let incarnations: std::collections::BTreeSet<u64> = got
        .context
        .entries()
        .iter()
        .filter(|entry| entry.actor.node == restored_node)
        .map(|entry| entry.actor.incarnation)
        .collect();
    assert_eq!(
        incarnations.len(),
        2,
        "the restored node wrote as its old incarnation: {incarnations:?}"
    );
}

#[test]
fn a_damaged_or_foreign_archive_is_refused_before_anything_is_written() {
    let dir = common::TempDir::new("archive-damaged");
    let data = dir.path().join("data");
    let out = dir.path().join("a.archive");
    // Not a data directory.
    let (ok, text) = archive(&data, &out);
    assert!(!ok && text.contains("has no NODE file"), "{text}");
    // A small data directory of one partition file.
    std::fs::create_dir_all(data.join("partitions/p00001")).unwrap();
    std::fs::write(
        data.join("NODE"),
        "dynamo node\nname = n1\npartitions = 8\nversioning = dvv\n",
    )
    .unwrap();
    std::fs::write(data.join("partitions/p00001/0000000001.seg"), vec![7u8; 5000]).unwrap();
    let (ok, text) = archive(&data, &out);
    assert!(ok, "{text}");
    let intact = std::fs::read(&out).unwrap();
    let target = dir.path().join("restored");
    // A flipped byte in a file's bytes or in the header, or no archive at
    // all: refused, and the target stays untouched.
    let refused = |bytes: &[u8], why: &str| {
        std::fs::write(&out, bytes).unwrap();
        let (ok, text) = restore(&out, &target);
        assert!(!ok && text.contains(why), "{why}: {text}");
        assert!(!target.exists());
    };
    let flipped = |at: usize| {
        let mut bytes = intact.clone();
        bytes[at] ^= 1;
        bytes
    };
    refused(&flipped(intact.len() - 10), "do not match its checksum");
    refused(&flipped(20), "line ");
    refused(b"hello\n", "not a dynamo archive");
    // Intact, it restores byte for byte.
    std::fs::write(&out, &intact).unwrap();
    let (ok, text) = restore(&out, &target);
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read(target.join("partitions/p00001/0000000001.seg")).unwrap(),
        vec![7u8; 5000]
    );
    assert!(target.join("RESTORED").exists());
}
