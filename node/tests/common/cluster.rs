//! Real node processes on 127.0.0.1 for the integration tests: the
//! library's `LocalCluster` in a directory removed after the test.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dynamo_node::config::ClusterConfig;
use dynamo_node::launcher::{free_loopback_members, LocalCluster};

use super::TempDir;

/// A local cluster in a temporary directory; killed when dropped.
pub struct TestCluster {
    pub cluster: LocalCluster,
    pub addrs: Vec<SocketAddr>,
    pub dir: TempDir,
}

impl TestCluster {
    /// Starts `nodes` nodes with the given top-level settings (TOML lines).
    pub fn start(name: &str, nodes: usize, settings: &str) -> TestCluster {
        TestCluster::start_with_spares(name, nodes, 0, settings)
    }

    /// Starts `nodes` members and `spares` more nodes outside the ring
    /// (listed with `spare = true`), with the given settings.
    pub fn start_with_spares(name: &str, nodes: usize, spares: usize, settings: &str) -> TestCluster {
        let dir = TempDir::new(name);
        let mut members = free_loopback_members(nodes + spares).unwrap();
        for member in &mut members[nodes..] {
            member.spare = true;
        }
        let config = ClusterConfig::parse_settings(std::path::Path::new(name), settings, &members).unwrap();
        let cluster = LocalCluster::start(
            std::path::Path::new(env!("CARGO_BIN_EXE_dynamo-node")),
            dir.path(),
            config,
        )
        .unwrap();
        let addrs = cluster.addrs();
        TestCluster { cluster, addrs, dir }
    }

    pub fn start_node(&mut self, index: usize) {
        self.cluster.start_node(index).unwrap();
    }

    pub fn kill9(&mut self, index: usize) {
        self.cluster.kill9(index);
    }

    pub fn index_of(&self, addr: SocketAddr) -> usize {
        self.cluster.index_of(addr).unwrap()
    }
}

/// Writes fresh keys `<prefix>:<n>`, each with its own name as its value,
/// through a client of `seeds`, pausing `pause` between writes, until
/// `stop`; returns the keys acknowledged.
pub fn spawn_writer(
    seeds: Vec<SocketAddr>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    prefix: &'static str,
    pause: Duration,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let client = dynamo_client::Client::new(seeds, Duration::from_secs(3));
        let mut acked = Vec::new();
        let mut index = 0u64;
        let fresh = dynamo_core::version::VectorClock::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let key = format!("{prefix}:{index}");
            index += 1;
            let put = client.put(key.as_bytes(), Some(key.as_bytes()), &fresh, None);
            if put.await.is_ok() {
                acked.push(key);
            }
            tokio::time::sleep(pause).await;
        }
        acked
    })
}

/// Polls `condition` until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < limit, "gave up waiting for {what} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
