//! The one launcher of local clusters: separate `serve` processes on
//! loopback, used by `dynamo-node cluster`, the integration tests, the
//! benches and `dynamo-bench` (which starts nodes from its own binary).
//!
//! [`LocalCluster::start`] writes the cluster file (through
//! [`ClusterConfig::write`], the one writer), starts every member with
//! `BINARY serve --cluster FILE --id NAME --data DIR/NAME`, and waits for
//! each to print its ready line. Nodes can then be killed (SIGKILL: no
//! shutdown, no final sync), stopped (SIGTERM, then SIGKILL after a grace
//! period) and restarted on the same data. Dropping the cluster kills
//! whatever still runs, and no node outlives the thread that started it:
//! each is started with `PR_SET_PDEATHSIG` = SIGKILL, so even a launcher
//! killed by SIGKILL (which runs no destructor) takes its nodes with it,
//! instead of leaving them holding their ports and data locks. (The
//! kernel ties that signal to the starting *thread*: start nodes from a
//! thread that lives as long as the cluster should, such as the main
//! thread.) So every node is started by one spawner thread the cluster
//! keeps for its whole life: a node restarted from any thread (a nemesis,
//! say) still dies with the launcher, and not with that thread.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dynamo_core::ids::NodeId;
use thiserror::Error;

use crate::config::{ClusterConfig, ConfigError, Member, Secret, SecretSource};

/// How long a node may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`LocalCluster::stop`] waits for a node's clean shutdown before
/// it kills it.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Why a local cluster could not start.
#[derive(Debug, Error)]
pub enum LaunchError {
    /// The directory, a port or a process could not be had.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The cluster file could not be written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A node exited before it was ready.
    #[error("{name} exited before it was ready ({status}); its stderr says why")]
    Exited {
        /// The node.
        name: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// A node printed no ready line in time.
    #[error("{name} was not ready within {READY_TIMEOUT:?}")]
    NotReady {
        /// The node.
        name: String,
    },
    /// No node has that index.
    #[error("there is no node {index} in a cluster of {nodes}")]
    NoSuchNode {
        /// The index asked for.
        index: usize,
        /// The cluster's size.
        nodes: usize,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}

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

/// `count` members `n1`, `n2`, ... on 127.0.0.1, on `ports`.
pub fn loopback_members(ports: &[u16]) -> Vec<Member> {
    ports
        .iter()
        .enumerate()
        .map(|(index, port)| Member {
            node: NodeId(index as u32),
            name: format!("n{}", index + 1),
            addr: SocketAddr::from(([127, 0, 0, 1], *port)),
            spare: false,
        })
        .collect()
}

/// The loopback address of local node `index`: 127.0.0.11, .12, ... (the
/// whole 127.0.0.0/8 is loopback on Linux), so that a network fault can
/// cut one pair of nodes and not another.
pub fn node_address(index: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, (index / 240) as u8, 11 + (index % 240) as u8)
}

/// `count` members, each on its own loopback address ([`node_address`])
/// and a port free there.
///
/// # Errors
/// Loopback cannot be bound.
pub fn free_loopback_members(count: usize) -> Result<Vec<Member>, LaunchError> {
    (0..count)
        .map(|index| {
            let ip = node_address(index);
            let listener = std::net::TcpListener::bind((ip, 0)).map_err(io(format!("binding {ip}")))?;
            let addr = listener.local_addr().map_err(io(format!("binding {ip}")))?;
            Ok(Member {
                node: NodeId(index as u32),
                name: format!("n{}", index + 1),
                addr,
                spare: false,
            })
        })
        .collect()
}

/// Makes the child die (SIGKILL) when the thread that starts it does, and
/// refuses to start it if that already happened.
fn die_with_parent(command: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: prctl(2) and getppid(2)
    // are; it allocates nothing and touches no lock.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the launcher exited while starting the node"));
            }
            Ok(())
        });
    }
}

/// A thread that starts child processes on request and lives as long as
/// the cluster, so that `PR_SET_PDEATHSIG` ties the nodes to the cluster's
/// life rather than to whichever thread asked.
#[derive(Debug)]
struct Spawner {
    requests: Option<std::sync::mpsc::Sender<(Command, std::sync::mpsc::Sender<std::io::Result<Child>>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spawner {
    fn start() -> std::io::Result<Spawner> {
        let (requests, incoming) =
            std::sync::mpsc::channel::<(Command, std::sync::mpsc::Sender<std::io::Result<Child>>)>();
        let thread = std::thread::Builder::new()
            .name("dynamo-spawner".into())
            .spawn(move || {
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })?;
        Ok(Spawner {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    fn spawn(&self, command: Command) -> std::io::Result<Child> {
        let (reply, answer) = std::sync::mpsc::channel();
        let gone = || std::io::Error::other("the spawner thread is gone");
        self.requests
            .as_ref()
            .ok_or_else(gone)?
            .send((command, reply))
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `signal` to a child process of ours.
fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) with the pid of a child we started and have not
    // reaped (its pid cannot have been reused); no memory is touched.
    unsafe {
        libc::kill(child.id() as libc::pid_t, signal);
    }
}

/// Running node processes.
#[derive(Debug)]
pub struct LocalCluster {
    binary: PathBuf,
    dir: PathBuf,
    file: PathBuf,
    config: ClusterConfig,
    children: Vec<Option<Child>>,
    /// The thread every node is started from (see the module doc).
    spawner: Spawner,
    log_level: String,
    /// Print each node's ready line on stdout as it comes (the CLI does).
    echo_ready: bool,
    /// Where each node listens when not at its member address (a proxy
    /// in front of it holds that one).
    listen: Vec<Option<SocketAddr>>,
    /// Each node's log (its stderr) goes to `dir/<name>.log`, appended
    /// across restarts, instead of ours.
    log_files: bool,
}

/// How [`LocalCluster::start_with`] starts the nodes.
#[derive(Clone, Debug, Default)]
pub struct LaunchOptions {
    /// Print each node's ready line on stdout as it comes (the CLI does).
    pub echo_ready: bool,
    /// Node `i` listens at `listen[i]` instead of its member address,
    /// where something else (a proxy) listens and forwards to it.
    pub listen: Vec<SocketAddr>,
    /// Each node's log (its stderr) goes to `dir/<name>.log`, appended
    /// across restarts with a line marking each start, instead of ours: a
    /// run keeps its nodes' logs beside its history.
    pub log_files: bool,
}

impl LocalCluster {
    /// Writes `dir/cluster.toml` for `config` and starts every member with
    /// `binary serve`, data under `dir/<name>`.
    ///
    /// # Errors
    /// A file cannot be written, a process cannot start, or a node does not
    /// become ready (its exit status or the timeout is in the message).
    pub fn start(binary: &Path, dir: &Path, config: ClusterConfig) -> Result<LocalCluster, LaunchError> {
        Self::start_with(binary, dir, config, LaunchOptions::default())
    }

    /// As [`LocalCluster::start`], printing each ready line on stdout.
    ///
    /// # Errors
    /// As [`LocalCluster::start`].
    pub fn start_echoing(binary: &Path, dir: &Path, config: ClusterConfig) -> Result<LocalCluster, LaunchError> {
        Self::start_with(
            binary,
            dir,
            config,
            LaunchOptions {
                echo_ready: true,
                ..LaunchOptions::default()
            },
        )
    }

    /// As [`LocalCluster::start`], started as `options` say.
    ///
    /// # Errors
    /// As [`LocalCluster::start`].
    pub fn start_with(
        binary: &Path,
        dir: &Path,
        mut config: ClusterConfig,
        options: LaunchOptions,
    ) -> Result<LocalCluster, LaunchError> {
        let LaunchOptions {
            echo_ready,
            listen,
            log_files,
        } = options;
        std::fs::create_dir_all(dir).map_err(io(dir.display().to_string()))?;
        if config.secret.is_none() {
            // Peers authenticate even on loopback: a fresh secret per
            // cluster, in its file (readable by its owner only).
            let secret = Secret::generate().map_err(io("generating the cluster secret"))?;
            config.secret = Some(SecretSource::Inline(secret));
        }
        let file = dir.join("cluster.toml");
        config.write(&file)?;
        let config_len = config.members.len();
        let mut cluster = LocalCluster {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            file,
            children: config.members.iter().map(|_| None).collect(),
            spawner: Spawner::start().map_err(io("starting the spawner thread"))?,
            config,
            log_level: std::env::var("DYNAMO_LOG").unwrap_or_else(|_| "warn".into()),
            echo_ready,
            listen: (0..config_len).map(|index| listen.get(index).copied()).collect(),
            log_files,
        };
        for index in 0..cluster.children.len() {
            cluster.start_node(index)?;
        }
        Ok(cluster)
    }

    /// Where node `name`'s log goes when the nodes log to files.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// The nodes' log files (with logs to files), each with its lines so
    /// far, the start markers left out.
    pub fn log_files(&self) -> Vec<(PathBuf, usize)> {
        if !self.log_files {
            return Vec::new();
        }
        self.config
            .members
            .iter()
            .map(|member| {
                let path = self.log_path(&member.name);
                let lines = std::fs::read_to_string(&path)
                    .map(|text| text.lines().filter(|line| !line.starts_with("== ")).count())
                    .unwrap_or(0);
                (path, lines)
            })
            .collect()
    }

    /// The nodes' addresses, in order (node `i` is `n<i+1>`).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.config.members.iter().map(|member| member.addr).collect()
    }

    /// The cluster as started.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The cluster file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The node listening on `addr`.
    pub fn index_of(&self, addr: SocketAddr) -> Option<usize> {
        self.config.members.iter().position(|member| member.addr == addr)
    }

    /// The process id of node `index`, if running.
    pub fn pid(&self, index: usize) -> Option<u32> {
        self.children.get(index)?.as_ref().map(Child::id)
    }

    /// Starts (or restarts) node `index` and waits for its ready line.
    ///
    /// # Errors
    /// The process cannot start or exits before it is ready.
    pub fn start_node(&mut self, index: usize) -> Result<(), LaunchError> {
        let nodes = self.children.len();
        let name = match self.config.members.get(index) {
            Some(member) => member.name.clone(),
            None => return Err(LaunchError::NoSuchNode { index, nodes }),
        };
        let mut command = Command::new(&self.binary);
        command
            .arg("serve")
            .arg("--cluster")
            .arg(&self.file)
            .arg("--id")
            .arg(&name)
            .arg("--data")
            .arg(self.dir.join(&name))
            .args(
                self.listen
                    .get(index)
                    .copied()
                    .flatten()
                    .map(|listen| ["--listen".to_string(), listen.to_string()])
                    .into_iter()
                    .flatten(),
            )
            .env("DYNAMO_LOG", &self.log_level)
            .stdout(Stdio::piped());
        if self.log_files {
            let path = self.log_path(&name);
            let mut log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(path.display().to_string()))?;
            let since_epoch = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            use std::io::Write as _;
            writeln!(
                log,
                "== {name} starting at {:.3} s since the epoch (unix time), log level {}",
                since_epoch.as_secs_f64(),
                self.log_level
            )
            .map_err(io(path.display().to_string()))?;
            command.stderr(Stdio::from(log));
        }
        die_with_parent(&mut command);
        let mut child = self
            .spawner
            .spawn(command)
            .map_err(io(format!("starting {name} ({})", self.binary.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io(format!("{name}'s stdout"))(std::io::Error::other("not piped")))?;
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
            Ok(line) => {
                if self.echo_ready {
                    println!("{line}");
                }
                self.children[index] = Some(child);
                Ok(())
            }
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                Err(match status {
                    Some(status) => LaunchError::Exited { name, status },
                    None => LaunchError::NotReady { name },
                })
            }
        }
    }

    /// Nodes that exited on their own since they were started, with how
    /// (each reported once; the node then counts as stopped).
    pub fn exited(&mut self) -> Vec<(String, ExitStatus)> {
        let mut exited = Vec::new();
        for (member, slot) in self.config.members.iter().zip(&mut self.children) {
            if let Some(status) = slot.as_mut().and_then(|child| child.try_wait().ok().flatten()) {
                exited.push((member.name.clone(), status));
                *slot = None;
            }
        }
        exited
    }

    /// SIGSTOP node `index`: it keeps its connections and its state, and
    /// answers nothing (a node that is slow, not dead).
    pub fn pause(&mut self, index: usize) {
        if let Some(child) = self.children.get(index).and_then(Option::as_ref) {
            signal(child, libc::SIGSTOP);
        }
    }

    /// SIGCONT node `index` after [`LocalCluster::pause`].
    pub fn resume(&mut self, index: usize) {
        if let Some(child) = self.children.get(index).and_then(Option::as_ref) {
            signal(child, libc::SIGCONT);
        }
    }

    /// Whether node `index` runs (started and not killed).
    pub fn is_running(&self, index: usize) -> bool {
        self.children.get(index).is_some_and(Option::is_some)
    }

    /// The data directory of node `index`.
    pub fn data_dir(&self, index: usize) -> Option<PathBuf> {
        self.config.members.get(index).map(|member| self.dir.join(&member.name))
    }

    /// SIGKILL node `index`: no shutdown, no final sync.
    pub fn kill9(&mut self, index: usize) {
        if let Some(mut child) = self.children.get_mut(index).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM every node and wait for its clean shutdown; a node still
    /// running after [`STOP_GRACE`] is killed. Returns the nodes that did
    /// not stop cleanly, with why.
    pub fn stop(&mut self) -> Vec<(String, String)> {
        for child in self.children.iter().flatten() {
            signal(child, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        let mut unclean = Vec::new();
        for (member, slot) in self.config.members.iter().zip(&mut self.children) {
            let Some(mut child) = slot.take() else { continue };
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => break,
                    Ok(Some(status)) => {
                        unclean.push((member.name.clone(), status.to_string()));
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        unclean.push((
                            member.name.clone(),
                            format!("did not stop within {STOP_GRACE:?}; killed"),
                        ));
                        break;
                    }
                }
            }
        }
        unclean
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            self.kill9(index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_local_node_has_an_address_of_its_own() {
        let members = free_loopback_members(3).unwrap();
        let ips: Vec<String> = members.iter().map(|member| member.addr.ip().to_string()).collect();
        assert_eq!(ips, ["127.0.0.11", "127.0.0.12", "127.0.0.13"]);
        assert_eq!(node_address(240).to_string(), "127.0.1.11");
    }
}
