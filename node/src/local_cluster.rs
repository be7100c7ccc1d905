//! A cluster of separate `dynamo-node serve` processes on 127.0.0.1, for
//! tests, benchmarks and the workload driver: started from a cluster file
//! it writes, each node waited for until it prints its ready line, killed
//! with SIGKILL or stopped with SIGTERM on demand, and killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a node may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Ports nobody listens on right now (bound, then released).
///
/// # Errors
/// Loopback cannot be bound.
pub fn free_ports(count: usize) -> std::io::Result<Vec<u16>> {
    let listeners = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|addr| addr.port()))
        .collect()
}

/// Running node processes.
#[derive(Debug)]
pub struct LocalCluster {
    binary: PathBuf,
    dir: PathBuf,
    file: PathBuf,
    addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    log_level: String,
}

impl LocalCluster {
    /// Writes `dir/cluster.toml` (the given top-level settings, then one
    /// `[[nodes]]` per node on free loopback ports) and starts every node
    /// with `binary serve`, data under `dir/n<i>`.
    ///
    /// # Errors
    /// A file cannot be written, a process cannot start, or a node does not
    /// become ready (its exit status or the timeout is in the message).
    pub fn start(binary: &Path, dir: &Path, nodes: usize, settings: &str) -> std::io::Result<LocalCluster> {
        std::fs::create_dir_all(dir)?;
        let addrs: Vec<SocketAddr> = free_ports(nodes)?
            .into_iter()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .collect();
        let mut text = format!("{settings}\n");
        for (index, addr) in addrs.iter().enumerate() {
            text.push_str(&format!("\n[[nodes]]\nid = \"n{}\"\naddr = \"{addr}\"\n", index + 1));
        }
        let file = dir.join("cluster.toml");
        std::fs::write(&file, text)?;
        let mut cluster = LocalCluster {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            file,
            addrs,
            children: (0..nodes).map(|_| None).collect(),
            log_level: std::env::var("DYNAMO_LOG").unwrap_or_else(|_| "warn".into()),
        };
        for index in 0..nodes {
            cluster.start_node(index)?;
        }
        Ok(cluster)
    }

    /// The nodes' addresses, in order (node `i` is `n<i+1>`).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The cluster file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The node listening on `addr`.
    pub fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.addrs.iter().position(|candidate| *candidate == addr)
    }

    /// The process id of node `index`, if running.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.children.get(index)?.as_ref().map(Child::id)
    }

    /// Starts (or restarts) node `index` and waits for its ready line.
    ///
    /// # Errors
    /// The process cannot start or exits before it is ready.
    pub fn start_node(&mut self, index: usize) -> std::io::Result<()> {
        let name = format!("n{}", index + 1);
        let mut child = Command::new(&self.binary)
            .arg("serve")
            .arg("--cluster")
            .arg(&self.file)
            .arg("--id")
            .arg(&name)
            .arg("--data")
            .arg(self.dir.join(&name))
            .env("DYNAMO_LOG", &self.log_level)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ready ") {
                    let _ = ready_tx.send(line);
                }
            }
        });
        match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(_) => {
                self.children[index] = Some(child);
                Ok(())
            }
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                Err(std::io::Error::other(match status {
                    Some(status) => format!("{name} exited before it was ready ({status}); its stderr says why"),
                    None => format!("{name} was not ready within {READY_TIMEOUT:?}"),
                }))
            }
        }
    }

    /// SIGKILL node `index`: no shutdown, no final sync.
    pub fn kill9(&mut self, index: usize) {
        if let Some(mut child) = self.children.get_mut(index).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM every node and wait for them (their clean shutdown).
    pub fn stop(&mut self) {
        for child in self.children.iter().flatten() {
            // SAFETY: signalling our own child process.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
        }
        for slot in &mut self.children {
            if let Some(mut child) = slot.take() {
                let _ = child.wait();
            }
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill9(index);
        }
    }
}
