//! Real node processes on 127.0.0.1 for the integration tests.
#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

/// Ports nobody listens on right now (bound, then released).
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}

/// A cluster of `dynamo-node serve` processes; killed when dropped.
pub struct TestCluster {
    pub dir: TempDir,
    pub file: PathBuf,
    pub addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
}

impl TestCluster {
    /// Starts `nodes` nodes with the given top-level settings (TOML lines).
    pub fn start(name: &str, nodes: usize, settings: &str) -> TestCluster {
        let dir = TempDir::new(name);
        let ports = free_ports(nodes);
        let mut text = format!("{settings}\n");
        let addrs: Vec<SocketAddr> = ports
            .iter()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], *port)))
            .collect();
        for (index, addr) in addrs.iter().enumerate() {
            text.push_str(&format!("\n[[nodes]]\nid = \"n{}\"\naddr = \"{addr}\"\n", index + 1));
        }
        let file = dir.path().join("cluster.toml");
        std::fs::write(&file, text).unwrap();
        let mut cluster = TestCluster {
            dir,
            file,
            addrs,
            children: (0..nodes).map(|_| None).collect(),
        };
        for index in 0..nodes {
            cluster.start_node(index);
        }
        cluster
    }

    /// Starts (or restarts) node `index` and waits for its ready line.
    pub fn start_node(&mut self, index: usize) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dynamo-node"))
            .arg("serve")
            .arg("--cluster")
            .arg(&self.file)
            .arg("--id")
            .arg(format!("n{}", index + 1))
            .arg("--data")
            .arg(self.dir.path().join(format!("n{}", index + 1)))
            .env("DYNAMO_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ready ") {
                    let _ = ready_tx.send(line);
                }
            }
        });
        let line = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("node n{} did not print its ready line", index + 1));
        assert!(line.contains(&self.addrs[index].to_string()), "{line}");
        self.children[index] = Some(child);
    }

    /// SIGKILL: no shutdown, no final sync.
    pub fn kill9(&mut self, index: usize) {
        if let Some(mut child) = self.children[index].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Index of the node listening on `addr`.
    pub fn index_of(&self, addr: SocketAddr) -> usize {
        self.addrs.iter().position(|candidate| *candidate == addr).unwrap()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill9(index);
        }
    }
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
