//! A flood of connections that each send half a frame and stop: the node
//! keeps serving a normal client, its memory stays bounded, and the
//! half-frames are closed after the partial-frame timeout. (Before, every
//! connection held two 64 KiB buffers and a half-frame was held forever.)

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use dynamo_client::Client;
use dynamo_core::protocol::ClientRequest;
use dynamo_core::version::VectorClock;
use dynamo_core::wire::{encode_frame, Frame};
use dynamo_node::limits::PARTIAL_FRAME_TIMEOUT;

const FLOOD: usize = 1_100;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn round_trips(client: &Client, phase: &str, count: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(count);
    for index in 0..count {
        let key = format!("{phase}:{index}");
        let started = Instant::now();
        client
            .put(key.as_bytes(), Some(b"v"), &VectorClock::new(), None)
            .await
            .unwrap();
        assert_eq!(
            client.get(key.as_bytes(), None).await.unwrap().values,
            vec![b"v".to_vec()]
        );
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_frames_from_a_thousand_connections_neither_starve_a_client_nor_pin_memory() {
    let cluster = TestCluster::start("flood", 1, "n = 1\nr = 1\nw = 1\npartitions = 8\nsync = \"none\"");
    let pid = cluster.cluster.pid(0).unwrap();
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(5));
    let before = round_trips(&client, "before", 200).await;
    let rss_before = rss_kib(pid);

    let mut frame = Vec::new();
    let request = ClientRequest::Get {
        key: vec![b'k'; 4_000],
        r: None,
    };
    encode_frame(&Frame::Request { id: 1, request }, &mut frame);
    let half = &frame[..frame.len() / 2];
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let mut stream = TcpStream::connect(cluster.addrs[0]).unwrap();
        stream.write_all(half).unwrap();
        flood.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = round_trips(&client, "during", 200).await;
    let rss_during = rss_kib(pid);
    eprintln!(
        "normal client p50/p99 before the flood {:?}/{:?}, during {:?}/{:?}; node RSS {} KiB -> {} KiB with {FLOOD} half-frames open",
        before[100], before[197], during[100], during[197], rss_before, rss_during
    );
    // Two 64 KiB buffers per connection would be 140 MB; a few KiB each is
    // what an idle connection may cost.
    assert!(
        rss_during < rss_before + 48 * 1024,
        "RSS grew from {rss_before} KiB to {rss_during} KiB"
    );

    // Past the partial-frame timeout, every half-frame is closed.
    tokio::time::sleep(PARTIAL_FRAME_TIMEOUT + Duration::from_secs(2)).await;
    let mut closed = 0;
    for stream in &mut flood {
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => closed += 1,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert_eq!(
        closed, FLOOD,
        "half-frames still held open after {PARTIAL_FRAME_TIMEOUT:?}"
    );
    round_trips(&client, "after", 10).await;
}

/// A client that pipelines gets of a 1 MiB value and never reads the
/// replies: the node's queue for it was bounded by frame count (4,096
/// frames: 4 GiB of replies). It is now bounded by bytes, and the reader
/// takes no more of that client's requests until it reads: memory stays
/// bounded, and other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_replies_pins_no_more_than_its_backlog() {
    let cluster = TestCluster::start("unread", 1, "n = 1\nr = 1\nw = 1\npartitions = 8\nsync = \"none\"");
    let pid = cluster.cluster.pid(0).unwrap();
    let client = Client::new(cluster.addrs.clone(), Duration::from_secs(5));
    client
        .put(b"big", Some(&vec![7u8; 1 << 20]), &VectorClock::new(), None)
        .await
        .unwrap();
    round_trips(&client, "warm", 20).await;
    let rss_before = rss_kib(pid);
    let mut bytes = Vec::new();
    for id in 0..300u64 {
        let request = ClientRequest::Get {
            key: b"big".to_vec(),
            r: None,
        };
        encode_frame(&Frame::Request { id, request }, &mut bytes);
    }
    let mut greedy = TcpStream::connect(cluster.addrs[0]).unwrap();
    greedy.write_all(&bytes).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_during = rss_kib(pid);
    let during = round_trips(&client, "beside", 50).await;
    eprintln!(
        "node RSS {rss_before} KiB -> {rss_during} KiB with 300 unread 1 MiB replies requested; another client's p50 {:?}",
        during[25]
    );
    assert!(
        rss_during < rss_before + 96 * 1024,
        "RSS grew from {rss_before} KiB to {rss_during} KiB"
    );
    drop(greedy);
}
