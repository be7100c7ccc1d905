//! Input a client controls must never crash a node or damage a key: real
//! node processes on loopback, fed what a buggy or hostile client sends.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::cluster::TestCluster;
use dynamo_client::{Client, Error};
use dynamo_core::protocol::ClientError;
use dynamo_core::version::{ClockEntry, VectorClock};

/// A context whose counter for the coordinator is u64::MAX: before the
/// coordinator checked its arithmetic, `+ 1` overflowed (a panic that
/// killed a debug-built node; a wrap to 0 in release, after which the
/// stored set no longer decoded and the key was unreadable on that node).
/// Now the put is refused with a reason, and the key and node are as they
/// were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_context_at_the_counters_maximum_is_refused_and_the_key_stays_readable() {
    let cluster = TestCluster::start(
        "forged-context",
        1,
        "n = 1\nr = 1\nw = 1\npartitions = 8\nsync = \"none\"",
    );
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    client
        .put(b"k", Some(b"apple"), &VectorClock::new(), None)
        .await
        .unwrap();
    let read = client.get(b"k", None).await.unwrap();
    let forged = VectorClock::from_entries(read.context.entries().iter().map(|entry| ClockEntry {
        counter: u64::MAX,
        ..*entry
    }));
    match client.put(b"k", Some(b"pear"), &forged, None).await {
        Err(Error::Failed(ClientError::BadRequest(reason))) => {
            assert!(reason.contains("maximum"), "{reason}")
        }
        other => panic!("a forged context must be refused as a bad request, got {other:?}"),
    }
    let after = client.get(b"k", None).await.unwrap();
    assert_eq!(after.values, vec![b"apple".to_vec()]);
    // The node is alive and takes an honest write.
    client.put(b"k", Some(b"pear"), &after.context, None).await.unwrap();
    assert_eq!(client.get(b"k", None).await.unwrap().values, vec![b"pear".to_vec()]);
}

/// Stored bytes are data, not terminal commands: `client get` once printed
/// values raw, so a value holding an escape sequence cleared (or
/// retitled, or worse) the terminal of whoever read it. It now prints
/// such a value as base64url.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_never_writes_a_stored_escape_sequence_to_the_terminal() {
    let cluster = TestCluster::start("escape", 1, "n = 1\nr = 1\nw = 1\npartitions = 8\nsync = \"none\"");
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    let hostile = b"\x1b]0;owned\x07\x1b[2Jgone".to_vec();
    client
        .put(b"k", Some(&hostile), &VectorClock::new(), None)
        .await
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dynamo-node"))
        .args(["client", "--connect", &cluster.addrs[0].to_string(), "get", "k"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        !output
            .stdout
            .iter()
            .any(|byte| byte.is_ascii_control() && *byte != b'\n'),
        "control bytes reached stdout: {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(shown.starts_with("base64:"), "{shown}");
}

/// Blind puts to one key pile up siblings (every one concurrent with the
/// rest). Before the limit, 4,097 of them made the key unreadable on every
/// replica (the stored set was past the decoder's bound) and no put could
/// heal it. Now the put past `siblings_max` is refused before anything is
/// written, saying to read and merge, and a merging put heals the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_puts_past_the_sibling_limit_are_refused_and_a_merge_heals_the_key() {
    let cluster = TestCluster::start(
        "siblings",
        1,
        "n = 1\nr = 1\nw = 1\npartitions = 8\nsync = \"none\"\nsiblings_max = 40\nsiblings_warning = 10",
    );
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    for index in 0..40 {
        let value = format!("v{index}");
        client
            .put(b"hot", Some(value.as_bytes()), &VectorClock::new(), None)
            .await
            .unwrap();
    }
    match client
        .put(b"hot", Some(b"one too many"), &VectorClock::new(), None)
        .await
    {
        Err(Error::Failed(ClientError::BadRequest(reason))) => {
            assert!(
                reason.contains("41 siblings") && reason.contains("read the key"),
                "{reason}"
            )
        }
        other => panic!("the 41st sibling must be refused, got {other:?}"),
    }
    let read = client.get(b"hot", None).await.unwrap();
    assert_eq!(read.values.len(), 40);
    client.put(b"hot", Some(b"merged"), &read.context, None).await.unwrap();
    assert_eq!(client.get(b"hot", None).await.unwrap().values, vec![b"merged".to_vec()]);
}

/// Any TCP client could once send peer frames: acknowledgements forged in a
/// replica's name satisfied W with nothing persisted there. Peers now prove
/// they hold the cluster secret first; a peer frame on a connection that
/// did not is refused (the connection closed), and the put it tried to
/// satisfy times out as the paused replicas dictate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_peer_acknowledgements_do_not_satisfy_a_write() {
    use dynamo_core::protocol::{Message, RequestId};
    use dynamo_core::wire::{encode_frame, Frame};
    use std::io::{Read, Write};

    let mut cluster = TestCluster::start(
        "forged-acks",
        3,
        "n = 3\nr = 1\nw = 2\npartitions = 8\nsync = \"none\"\nrequest_timeout_ms = 1500",
    );
    let pids: Vec<u32> = (0..3).map(|index| cluster.cluster.pid(index).unwrap()).collect();
    let stop = |pid: u32, signal: &str| {
        std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
    };
    stop(pids[1], "STOP");
    stop(pids[2], "STOP");
    let coordinator = cluster.addrs[0];
    let put = tokio::spawn(async move {
        let client = Client::new(vec![coordinator], Duration::from_secs(10));
        client
            .put_via(&[coordinator], b"k", Some(b"v"), &VectorClock::new(), None)
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Acknowledge, in n2's name, every request n1 may have made so far.
    let mut forger = std::net::TcpStream::connect(coordinator).unwrap();
    let mut bytes = Vec::new();
    for sequence in 1..200 {
        let request = RequestId {
            node: dynamo_core::NodeId(0),
            sequence,
        };
        let frame = Frame::Peer {
            from: dynamo_core::NodeId(1),
            message: Message::WriteAck { request },
        };
        encode_frame(&frame, &mut bytes);
    }
    let _ = forger.write_all(&bytes);
    forger.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(forger.read(&mut byte), Ok(0) | Err(_)),
        "the node kept a connection that sent unauthenticated peer frames"
    );
    let answer = tokio::time::timeout(Duration::from_secs(10), put)
        .await
        .unwrap()
        .unwrap();
    stop(pids[1], "CONT");
    stop(pids[2], "CONT");
    assert!(
        matches!(answer, Err(Error::Failed(ClientError::Timeout { got: 1, needed: 2 }))),
        "forged acknowledgements counted towards W: {answer:?}"
    );
    cluster.kill9(1);
    cluster.kill9(2);
}
