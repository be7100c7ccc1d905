//! The node as a person runs it: separate `dynamo-node serve` processes on
//! loopback ports, real kill -9, real restarts.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use common::cluster::{eventually, TestCluster};
use dynamo_client::Client;
use dynamo_core::version::VectorClock;

const QUORUM: &str = "n = 3\nr = 2\nw = 2\npartitions = 32\nsync = \"always\"";

fn client(cluster: &TestCluster) -> Client {
    Client::new(cluster.addrs.clone(), Duration::from_secs(3))
}

async fn preference(client: &Client, key: &[u8]) -> Vec<SocketAddr> {
    let view = client.view().await.unwrap();
    let nodes = view.ring.preference_list(view.ring.partition_of(key), view.n());
    nodes.into_iter().map(|node| view.addrs[&node]).collect()
}

async fn hints_pending(client: &Client, cluster: &TestCluster, alive: &[usize]) -> u64 {
    let mut total = 0;
    for &index in alive {
        total += client.stats(cluster.addrs[index]).await.unwrap().hints_pending;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_round_trip_many_keys() {
    let cluster = TestCluster::start("round-trip", 5, QUORUM);
    let client = client(&cluster);
    for index in 0..300u32 {
        let key = format!("cart:{index}");
        client
            .put(
                key.as_bytes(),
                Some(format!("value-{index}").as_bytes()),
                &VectorClock::new(),
                None,
            )
            .await
            .unwrap();
    }
    for index in 0..300u32 {
        let key = format!("cart:{index}");
        let got = client.get(key.as_bytes(), None).await.unwrap();
        assert_eq!(got.values, vec![format!("value-{index}").into_bytes()], "{key}");
    }
    // Every node coordinated some of it: the ring spreads keys.
    for addr in &cluster.addrs {
        let stats = client.stats(*addr).await.unwrap();
        assert!(stats.keys > 50, "{addr}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_blind_puts_are_siblings_under_dvv_and_lost_under_paper() {
    for versioning in ["dvv", "paper"] {
        let cluster = TestCluster::start(
            &format!("siblings-{versioning}"),
            5,
            &format!("{QUORUM}\nversioning = \"{versioning}\""),
        );
        let client = client(&cluster);
        let key = b"cart:siblings";
        let coordinator = vec![preference(&client, key).await[0]];
        client
            .put_via(&coordinator, key, Some(b"apple"), &VectorClock::new(), None)
            .await
            .unwrap();
        client
            .put_via(&coordinator, key, Some(b"pear"), &VectorClock::new(), None)
            .await
            .unwrap();
        let got = client.get(key, None).await.unwrap();
        if versioning == "dvv" {
            assert_eq!(got.values, vec![b"apple".to_vec(), b"pear".to_vec()]);
            client.put(key, Some(b"apple+pear"), &got.context, None).await.unwrap();
            assert_eq!(
                client.get(key, None).await.unwrap().values,
                vec![b"apple+pear".to_vec()]
            );
        } else {
            // The paper's clocks: the second blind write looks newer and
            // silently replaces the first, although both were acknowledged.
            assert_eq!(
                got.values,
                vec![b"pear".to_vec()],
                "the paper anomaly must stay visible"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_of_a_preference_node_then_hinted_handoff_on_restart() {
    let mut cluster = TestCluster::start("handoff", 5, QUORUM);
    let client = client(&cluster);
    let key = b"cart:handoff";
    let preference = preference(&client, key).await;
    let (first, down, third) = (
        cluster.index_of(preference[0]),
        cluster.index_of(preference[1]),
        cluster.index_of(preference[2]),
    );
    cluster.kill9(down);
    // Puts and gets keep succeeding while it is down.
    let mut context = VectorClock::new();
    for round in 0..5 {
        let value = format!("while-down-{round}");
        client
            .put_via(&[preference[0]], key, Some(value.as_bytes()), &context, None)
            .await
            .unwrap();
        let got = client.get_via(&[preference[0]], key, None).await.unwrap();
        assert_eq!(got.values, vec![value.into_bytes()]);
        context = got.context;
    }
    let alive: Vec<usize> = (0..5).filter(|index| *index != down).collect();
    eventually(Duration::from_secs(5), "a hinted write on a fallback node", || async {
        hints_pending(&client, &cluster, &alive).await > 0
    })
    .await;
    cluster.start_node(down);
    let all: Vec<usize> = (0..5).collect();
    eventually(Duration::from_secs(15), "the hints to be handed off", || async {
        hints_pending(&client, &cluster, &all).await == 0
    })
    .await;
    // The restarted node alone now holds the latest write.
    cluster.kill9(first);
    cluster.kill9(third);
    let got = client.get_via(&[cluster.addrs[down]], key, Some(1)).await.unwrap();
    assert_eq!(got.values, vec![b"while-down-4".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_repair_brings_a_stale_replica_up_to_date() {
    // Anti-entropy off: the repair seen must be the get's.
    let mut cluster = TestCluster::start(
        "read-repair",
        5,
        &format!("{QUORUM}\nsloppy_quorum = false\nanti_entropy_interval_ms = 0"),
    );
    let client = client(&cluster);
    let key = b"cart:repair";
    let preference = preference(&client, key).await;
    let stale = cluster.index_of(preference[2]);
    cluster.kill9(stale);
    client
        .put_via(&[preference[0]], key, Some(b"fresh"), &VectorClock::new(), None)
        .await
        .unwrap();
    cluster.start_node(stale);
    // Without sloppy quorum nothing else brings it the write: only the
    // repair after a get that hears from it (the first gets after the
    // restart may not reach it while its peers reconnect).
    eventually(Duration::from_secs(10), "a get to repair the stale replica", || async {
        let got = client.get_via(&[preference[0]], key, None).await.unwrap();
        assert_eq!(got.values, vec![b"fresh".to_vec()]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.stats(preference[2]).await.unwrap().keys == 1
    })
    .await;
    cluster.kill9(cluster.index_of(preference[0]));
    cluster.kill9(cluster.index_of(preference[1]));
    let got = client.get_via(&[preference[2]], key, Some(1)).await.unwrap();
    assert_eq!(
        got.values,
        vec![b"fresh".to_vec()],
        "the stale replica was not repaired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_and_restart_with_sync_always_keeps_every_acknowledged_write() {
    let mut cluster = TestCluster::start("restart", 5, "n = 3\nr = 2\nw = 3\npartitions = 32\nsync = \"always\"");
    let client = client(&cluster);
    let victim = 2usize;
    let mut keys = Vec::new();
    for index in 0..200u32 {
        let key = format!("durable:{index}");
        client
            .put(key.as_bytes(), Some(key.as_bytes()), &VectorClock::new(), None)
            .await
            .unwrap();
        keys.push(key);
    }
    cluster.kill9(victim);
    cluster.start_node(victim);
    let mine: Vec<String> = {
        let mut mine = Vec::new();
        for key in &keys {
            if preference(&client, key.as_bytes())
                .await
                .contains(&cluster.addrs[victim])
            {
                mine.push(key.clone());
            }
        }
        mine
    };
    assert!(
        mine.len() > 50,
        "the victim should hold a share of the keys: {}",
        mine.len()
    );
    for index in (0..5).filter(|index| *index != victim) {
        cluster.kill9(index);
    }
    for key in mine {
        let got = client
            .get_via(&[cluster.addrs[victim]], key.as_bytes(), Some(1))
            .await
            .unwrap();
        assert_eq!(
            got.values,
            vec![key.clone().into_bytes()],
            "{key} acknowledged by W = N but lost on restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_and_half_frames_close_only_their_connection() {
    let cluster = TestCluster::start("garbage", 3, QUORUM);
    let addr = cluster.addrs[0];
    let mut attacks: Vec<std::net::TcpStream> = Vec::new();
    for bytes in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3],
        vec![200, 0, 0, 0, 1, 1, 1],
    ] {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(&bytes).unwrap();
        attacks.push(stream);
    }
    // A half frame whose sender goes away.
    {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(&[50, 0, 0, 0, 1, 1]).unwrap();
    }
    let client = client(&cluster);
    client
        .put_via(&[addr], b"still", Some(b"serving"), &VectorClock::new(), None)
        .await
        .unwrap();
    assert_eq!(
        client.get_via(&[addr], b"still", None).await.unwrap().values,
        vec![b"serving".to_vec()]
    );
    // The garbage and the oversized frame were answered by closing.
    for stream in attacks.iter_mut().take(2) {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buffer = [0u8; 16];
        assert!(
            matches!(stream.read(&mut buffer), Ok(0) | Err(_)),
            "connection left open"
        );
    }
}

fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A node stopped with SIGTERM answers every request it holds: the put
/// waiting for two paused replicas gets a failure it can act on, never a
/// bare EOF. (Before, the reply queued in the core's last step was dropped
/// with the runtime, and the client saw the connection close.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_the_requests_in_flight() {
    let mut cluster = TestCluster::start(
        "sigterm-in-flight",
        3,
        "n = 3\nr = 2\nw = 3\npartitions = 8\nsync = \"none\"\nrequest_timeout_ms = 1500",
    );
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(10));
    client
        .put(b"warm", Some(b"up"), &VectorClock::new(), None)
        .await
        .unwrap();
    let pids: Vec<u32> = (0..3).map(|index| cluster.cluster.pid(index).unwrap()).collect();
    signal(pids[1], "STOP");
    signal(pids[2], "STOP");
    let coordinator = cluster.addrs[0];
    let put = {
        let client = Client::new(vec![coordinator], Duration::from_secs(10));
        tokio::spawn(async move {
            client
                .put_via(&[coordinator], b"k", Some(b"v"), &VectorClock::new(), None)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(pids[0], "TERM");
    let answer = tokio::time::timeout(Duration::from_secs(10), put)
        .await
        .unwrap()
        .unwrap();
    signal(pids[1], "CONT");
    signal(pids[2], "CONT");
    match answer {
        Err(dynamo_client::Error::Failed(
            dynamo_core::protocol::ClientError::ShuttingDown | dynamo_core::protocol::ClientError::Timeout { .. },
        )) => {}
        other => panic!("expected a timeout or shutting-down failure from the stopping node, got {other:?}"),
    }
    cluster.kill9(1);
    cluster.kill9(2);
}

/// Clock entries carry the wall clock (the paper's timestamp), not the
/// milliseconds since the node process started: truncation drops the
/// oldest entry first, which is only right if timestamps compare across
/// restarts and nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_timestamps_are_wall_clock_time_across_a_restart() {
    let mut cluster = TestCluster::start(
        "wall-clock",
        1,
        "n = 1\nr = 1\nw = 1\npartitions = 8\nsync = \"always\"",
    );
    let client = client(&cluster);
    let wall_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    client.put(b"k", Some(b"a"), &VectorClock::new(), None).await.unwrap();
    cluster.kill9(0);
    cluster.start_node(0);
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    let read = client.get(b"k", None).await.unwrap();
    client.put(b"k", Some(b"b"), &read.context, None).await.unwrap();
    let context = client.get(b"k", None).await.unwrap().context;
    let stamps: Vec<u64> = context.entries().iter().map(|entry| entry.timestamp_ms).collect();
    assert_eq!(stamps.len(), 2, "one entry per incarnation: {context:?}");
    for stamp in stamps {
        assert!(
            stamp.abs_diff(wall_ms()) < 60_000,
            "a timestamp of {stamp} ms is not the wall clock ({} ms)",
            wall_ms()
        );
    }
}

/// Found by the bench under pauses with any-replica routing: a put that
/// timed out at a paused coordinator went on to the next node, and when
/// the paused one resumed it coordinated the same put again: two versions
/// of one write, the second able to bring back a value a later write had
/// superseded (the checker's sibling-antichain finding). A put that may
/// have reached a node is now never sent to another; the client reports
/// it as indeterminate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_timed_out_at_a_paused_node_is_not_made_twice() {
    let cluster = TestCluster::start("put-once", 3, "n = 3\nr = 2\nw = 2\npartitions = 8\nsync = \"none\"");
    let paused = cluster.cluster.pid(0).unwrap();
    signal(paused, "STOP");
    let client = Client::new(cluster.addrs.clone(), Duration::from_millis(300));
    let order = [cluster.addrs[0], cluster.addrs[1]];
    let answer = client
        .put_via(&order, b"k", Some(b"once"), &VectorClock::new(), None)
        .await;
    signal(paused, "CONT");
    assert!(
        matches!(answer, Err(dynamo_client::Error::Indeterminate { .. })),
        "a put that may have reached the paused node was sent elsewhere: {answer:?}"
    );
    // The resumed node coordinates the put it was sent, once.
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    eventually(Duration::from_secs(10), "the resumed node's write", || async {
        client.get(b"k", None).await.is_ok_and(|got| !got.values.is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = client.get(b"k", Some(3)).await.unwrap();
    assert_eq!(got.values, vec![b"once".to_vec()], "the write was made more than once");
}

/// A client's kept connection to a node that was killed and restarted is
/// dead: the next put through it goes on a fresh connection and succeeds,
/// instead of being written into the dead one and reported as maybe made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_after_the_node_restarted_goes_on_a_fresh_connection() {
    let mut cluster = TestCluster::start("fresh-conn", 3, "n = 3\nr = 2\nw = 2\npartitions = 8");
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    let order = [cluster.addrs[0]];
    client
        .put_via(&order, b"before", Some(b"1"), &VectorClock::new(), None)
        .await
        .unwrap();
    cluster.kill9(0);
    cluster.start_node(0);
    // The peers reconnect to the new process first (a put needs W = 2).
    let other = Client::new(cluster.addrs.clone(), Duration::from_secs(3));
    eventually(Duration::from_secs(10), "the restarted node to coordinate", || async {
        other
            .put_via(&order, b"warm-up", Some(b"1"), &VectorClock::new(), None)
            .await
            .is_ok()
    })
    .await;
    let answer = client
        .put_via(&order, b"after", Some(b"2"), &VectorClock::new(), None)
        .await;
    assert!(answer.is_ok(), "{answer:?}");
}

/// Every node's anti-entropy trees over what it holds: with W = N every
/// acknowledged write is on every replica, so three replicas of every
/// partition report the same roots (deletes included); a node killed with
/// SIGKILL rebuilds the same trees from its partition files; and a write
/// changes the roots of its partition on every replica alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_agree_on_their_anti_entropy_trees_and_a_restart_rebuilds_them() {
    use dynamo_core::admin::{AdminAnswer, AdminQuery, TreeDescription};
    let mut cluster = TestCluster::start("trees", 3, "n = 3\nr = 2\nw = 3\npartitions = 16\nsync = \"always\"");
    let client = client(&cluster);
    async fn trees(client: &Client, addr: SocketAddr) -> Vec<TreeDescription> {
        match client.admin(addr, AdminQuery::Trees).await.unwrap() {
            AdminAnswer::Trees(trees) => trees,
            other => panic!("{addr} answered {other:?}"),
        }
    }
    for index in 0..150u32 {
        let key = format!("tree:{index}");
        client
            .put(key.as_bytes(), Some(key.as_bytes()), &VectorClock::new(), None)
            .await
            .unwrap();
    }
    for index in 0..10u32 {
        let key = format!("tree:{index}");
        let got = client.get(key.as_bytes(), None).await.unwrap();
        client.put(key.as_bytes(), None, &got.context, None).await.unwrap();
    }
    let first: Vec<TreeDescription> = trees(&client, cluster.addrs[0]).await;
    assert_eq!(first.iter().map(|tree| tree.keys).sum::<u64>(), 150, "{first:?}");
    assert!(first.len() > 8, "keys spread over the partitions: {first:?}");
    for &addr in &cluster.addrs[1..] {
        assert_eq!(
            trees(&client, addr).await,
            first,
            "{addr} disagrees with {}",
            cluster.addrs[0]
        );
    }
    cluster.kill9(1);
    cluster.start_node(1);
    assert_eq!(
        trees(&client, cluster.addrs[1]).await,
        first,
        "rebuilt from the partition files"
    );
    // Until the peers have reconnected to the new process, a put that
    // needs all three replicas may time out: warm up on another key. A
    // timed-out attempt may have reached some replicas only, so the trees
    // are compared once anti-entropy has had its say.
    let client = std::sync::Arc::new(self::client(&cluster));
    eventually(Duration::from_secs(20), "a write all three replicas take", || {
        let client = std::sync::Arc::clone(&client);
        async move {
            client
                .put(b"tree:warm-up", Some(b"w"), &VectorClock::new(), None)
                .await
                .is_ok()
        }
    })
    .await;
    let addrs = cluster.addrs.clone();
    eventually(Duration::from_secs(10), "the replicas to agree again", || {
        let (client, addrs) = (std::sync::Arc::clone(&client), addrs.clone());
        async move {
            let first = trees(&client, addrs[0]).await;
            for &addr in &addrs[1..] {
                if trees(&client, addr).await != first {
                    return false;
                }
            }
            true
        }
    })
    .await;
    let before = trees(&client, cluster.addrs[0]).await;
    client
        .put(b"tree:new", Some(b"new"), &VectorClock::new(), None)
        .await
        .unwrap();
    let after = trees(&client, cluster.addrs[0]).await;
    let changed: Vec<u32> = after
        .iter()
        .filter(|tree| !before.contains(tree))
        .map(|tree| tree.partition)
        .collect();
    assert_eq!(changed.len(), 1, "one partition's root moved: {after:?}");
    for &addr in &cluster.addrs[1..] {
        assert_eq!(trees(&client, addr).await, after, "{addr} after one more write");
    }
}

/// §4.7's promise, with real processes at the default settings: a replica
/// whose data directory was wiped holds every key again within two
/// minutes of its restart, through anti-entropy alone (no client reads,
/// no hints: its keys were all written before it went away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_replica_holds_every_key_again_within_two_minutes_without_reads() {
    use dynamo_core::admin::{AdminAnswer, AdminQuery, TreeDescription};
    let mut cluster = TestCluster::start("wiped", 3, "n = 3\nr = 2\nw = 2");
    let client = client(&cluster);
    async fn trees(client: &Client, addr: SocketAddr) -> Vec<TreeDescription> {
        match client.admin(addr, AdminQuery::Trees).await {
            Ok(AdminAnswer::Trees(trees)) => trees,
            Ok(other) => panic!("{addr} answered {other:?}"),
            Err(_) => Vec::new(),
        }
    }
    const KEYS: u32 = 400;
    for index in 0..KEYS {
        let key = format!("wiped:{index}");
        client
            .put(key.as_bytes(), Some(key.as_bytes()), &VectorClock::new(), Some(3))
            .await
            .unwrap();
    }
    let full = trees(&client, cluster.addrs[0]).await;
    assert_eq!(full.iter().map(|tree| tree.keys).sum::<u64>(), u64::from(KEYS));
    assert_eq!(trees(&client, cluster.addrs[2]).await, full, "all three hold every key");
    cluster.kill9(2);
    let name = cluster.cluster.config().members[2].name.clone();
    std::fs::remove_dir_all(cluster.dir.path().join(name)).unwrap();
    cluster.start_node(2);
    let restarted = std::time::Instant::now();
    assert!(trees(&client, cluster.addrs[2]).await.is_empty(), "wiped");
    let addr = cluster.addrs[2];
    eventually(Duration::from_secs(120), "the wiped replica to hold every key", || {
        let client = &client;
        let full = &full;
        async move { trees(client, addr).await == *full }
    })
    .await;
    println!(
        "a wiped replica held all {KEYS} keys again {:.1} s after its restart",
        restarted.elapsed().as_secs_f64()
    );
    let stats = client.stats(cluster.addrs[2]).await.unwrap();
    assert_eq!(stats.protocol.coordinated_gets, 0, "no reads");
    assert!(
        stats.protocol.entropy_repairs >= u64::from(KEYS),
        "{:?}",
        stats.protocol
    );
}

/// Tombstone reaping on real processes: a replica misses a delete while
/// it is down; well past the grace period the others still keep the
/// tombstone (no exchange with the missing replica has agreed); once it
/// is back, anti-entropy gives it the tombstone, every replica then holds
/// it, and the key is removed everywhere, the deleted value never back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tombstone_waits_for_the_replica_that_missed_the_delete_then_goes_everywhere() {
    let mut cluster = TestCluster::start(
        "reaping",
        3,
        "n = 3\nr = 2\nw = 2\npartitions = 3\nsync = \"always\"\nsloppy_quorum = false\ntombstone_grace_ms = 1000",
    );
    let client = client(&cluster);
    let key = b"cart:reaped";
    client
        .put(key, Some(b"item"), &VectorClock::new(), Some(3))
        .await
        .unwrap();
    let preference = preference(&client, key).await;
    let old = cluster.index_of(preference[2]);
    cluster.kill9(old);
    let got = client.get_via(&[preference[0]], key, Some(2)).await.unwrap();
    client
        .put_via(&[preference[0]], key, None, &got.context, Some(2))
        .await
        .unwrap();
    // Three grace periods with the old replica away: the tombstone stays.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    for &addr in &preference[..2] {
        let stats = client.stats(addr).await.unwrap();
        assert_eq!(stats.keys, 1, "{addr} reaped while a replica lacked the tombstone");
        assert_eq!(stats.protocol.tombstones_reaped, 0);
    }
    cluster.start_node(old);
    let client = std::sync::Arc::new(Client::new(cluster.addrs.clone(), Duration::from_secs(3)));
    let addrs = preference.clone();
    eventually(Duration::from_secs(30), "the tombstone to be reaped everywhere", || {
        let client = std::sync::Arc::clone(&client);
        let addrs = addrs.clone();
        async move {
            for addr in addrs {
                match client.stats(addr).await {
                    Ok(stats) if stats.keys == 0 => {}
                    _ => return false,
                }
            }
            true
        }
    })
    .await;
    let mut reaped = 0;
    for &addr in &preference {
        reaped += client.stats(addr).await.unwrap().protocol.tombstones_reaped;
        let got = client.get_via(&[addr], key, Some(1)).await.unwrap();
        assert!(got.values.is_empty(), "{addr} serves the deleted value again: {got:?}");
    }
    assert_eq!(reaped, 3, "the reaper and the two others each removed it once");
}
