//! Membership changes as nemesis events: `join`, `leave` and `replace`,
//! done through the nodes' own admin queries (as `dynamo-node admin join`
//! and `leave` do), each held from the request until the change has moved
//! every partition and the nodes route by the new ring.
//!
//! The node a change acts on is settled when it starts, from the ring as
//! the cluster describes it then: a `join` of a node already in the ring
//! takes the first node outside it instead (a spare, or one that left), a
//! `leave` or `replace` of a node outside the ring takes the last member.
//! So a random schedule of these kinds stays meaningful whatever came
//! before. Its history events name the node actually changed, and their
//! `detail` says what moved: partitions received as files (bytes, time,
//! MB/s), epochs, and for `replace` the kill and the wipe.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dynamo_client::Client;
use dynamo_core::admin::TransferDescription;
use dynamo_node::launcher::LocalCluster;
use dynamo_node::sync::Recover;

use super::{FaultKind, Named};

/// How long one change may take before it is reported as a problem.
pub const CHANGE_DEADLINE: Duration = Duration::from_secs(300);

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("a runtime for the membership change: {error}"))
}

/// Every node's name and address.
fn members(cluster: &Mutex<LocalCluster>) -> Vec<(String, SocketAddr)> {
    cluster
        .lock()
        .recover()
        .config()
        .members
        .iter()
        .map(|member| (member.name.clone(), member.addr))
        .collect()
}

/// The names of the ring's members, as the first node that answers
/// describes it.
async fn ring_members(client: &Client, nodes: &[(String, SocketAddr)]) -> Result<Vec<String>, String> {
    let mut last = String::from("no nodes");
    for (_, addr) in nodes {
        match client.describe(*addr).await {
            Ok(view) => {
                let members = view.ring.members();
                return Ok(view
                    .description
                    .members
                    .iter()
                    .filter(|member| members.contains(&member.node))
                    .map(|member| member.name.clone())
                    .collect());
            }
            Err(error) => last = error.to_string(),
        }
    }
    Err(format!("no node describes the ring: {last}"))
}

/// The node a change of `kind` drawn for `drawn` acts on (see the module
/// doc).
///
/// # Errors
/// No node describes the ring, or no node fits (a join with every node
/// in the ring).
pub fn settle_target(cluster: &Mutex<LocalCluster>, kind: FaultKind, drawn: &str) -> Result<String, String> {
    let nodes = members(cluster);
    let client = Client::new(Vec::new(), Duration::from_secs(3));
    let ring = runtime()?.block_on(ring_members(&client, &nodes))?;
    let inside = |name: &str| ring.iter().any(|member| member == name);
    if kind == FaultKind::Join {
        if !inside(drawn) {
            return Ok(drawn.to_string());
        }
        return nodes
            .iter()
            .map(|(name, _)| name.clone())
            .find(|name| !inside(name))
            .ok_or_else(|| {
                "join: every node is in the ring already (add `spares = 1` to [cluster], or schedule a leave first)"
                    .to_string()
            });
    }
    if inside(drawn) {
        return Ok(drawn.to_string());
    }
    ring.last()
        .cloned()
        .ok_or_else(|| format!("{}: the ring has no members", kind.name()))
}

/// Partitions received as files so far, per node.
async fn transfers(client: &Client, nodes: &[(String, SocketAddr)]) -> Vec<Vec<TransferDescription>> {
    let mut all = Vec::new();
    for (_, addr) in nodes {
        all.push(
            client
                .stats(*addr)
                .await
                .map(|stats| stats.transfers)
                .unwrap_or_default(),
        );
    }
    all
}

/// What the change moved: the transfers that are new since `before` (all
/// of a node that `restarted`: its list started over).
fn moved(before: &[Vec<TransferDescription>], after: &[Vec<TransferDescription>], restarted: Option<usize>) -> String {
    let new: Vec<&TransferDescription> = after
        .iter()
        .enumerate()
        .flat_map(|(index, list)| {
            let seen = if restarted == Some(index) {
                0
            } else {
                before.get(index).map_or(0, Vec::len)
            };
            list.iter().skip(seen)
        })
        .collect();
    if new.is_empty() {
        return "no partition moved as files".to_string();
    }
    let bytes: u64 = new.iter().map(|transfer| transfer.bytes).sum();
    let millis: u64 = new.iter().map(|transfer| transfer.millis).sum();
    let largest = new.iter().max_by_key(|transfer| transfer.bytes).copied();
    let rate = |bytes: u64, millis: u64| bytes as f64 / 1e6 / (millis.max(1) as f64 / 1e3);
    let mut text = format!(
        "{} partitions moved as files: {:.2} MB in {:.2} s of transfer ({:.1} MB/s)",
        new.len(),
        bytes as f64 / 1e6,
        millis as f64 / 1e3,
        rate(bytes, millis)
    );
    if let Some(largest) = largest {
        text.push_str(&format!(
            "; the largest, partition {}: {:.2} MB in {:.3} s ({:.1} MB/s)",
            largest.partition,
            largest.bytes as f64 / 1e6,
            largest.millis as f64 / 1e3,
            rate(largest.bytes, largest.millis)
        ));
    }
    text
}

/// A seed for a join: a ring member other than `joining`.
async fn seed(client: &Client, nodes: &[(String, SocketAddr)], joining: &str) -> Result<SocketAddr, String> {
    let ring = ring_members(client, nodes).await?;
    nodes
        .iter()
        .find(|(name, _)| name != joining && ring.contains(name))
        .map(|(_, addr)| *addr)
        .ok_or_else(|| "join: no member to ask".to_string())
}

/// Carries out the change of `kind` on `target`; what happened, in words.
///
/// # Errors
/// The change was refused or did not complete within [`CHANGE_DEADLINE`],
/// or (replace) the node could not be restarted.
pub fn change(cluster: &Mutex<LocalCluster>, kind: FaultKind, target: &str) -> Result<String, String> {
    let nodes = members(cluster);
    let (index, addr) = nodes
        .iter()
        .enumerate()
        .find(|(_, (name, _))| name == target)
        .map(|(index, (_, addr))| (index, *addr))
        .ok_or_else(|| format!("{}: no node {target}", kind.name()))?;
    let seeds: Vec<SocketAddr> = nodes.iter().map(|(_, addr)| *addr).collect();
    let client = Client::new(seeds, Duration::from_secs(5));
    let runtime = runtime()?;
    let started = Instant::now();
    let before = runtime.block_on(transfers(&client, &nodes));
    let failed = |what: &str, error: dynamo_client::Error| format!("{what} {target}: {error}");
    let join = |client: &Client| -> Result<String, String> {
        runtime.block_on(async {
            let seed = seed(client, &nodes, target).await?;
            let epoch = client
                .join(addr, seed, CHANGE_DEADLINE, |_| {})
                .await
                .map_err(|error| failed("join", error))?;
            Ok(format!("joined at epoch {epoch}"))
        })
    };
    let leave = |client: &Client| -> Result<String, String> {
        runtime.block_on(async {
            let epoch = client
                .leave(addr, CHANGE_DEADLINE, |_| {})
                .await
                .map_err(|error| failed("leave", error))?;
            Ok(format!("left at epoch {epoch}"))
        })
    };
    let mut steps = Vec::new();
    match kind {
        FaultKind::Join => steps.push(join(&client)?),
        FaultKind::Leave => steps.push(leave(&client)?),
        FaultKind::Replace => {
            steps.push(leave(&client)?);
            {
                let mut local = cluster.lock().recover();
                let pid = local.pid(index).unwrap_or(0);
                let data = local
                    .data_dir(index)
                    .ok_or_else(|| format!("replace {target}: no data directory"))?;
                local.kill9(index);
                std::fs::remove_dir_all(&data)
                    .map_err(|error| format!("replace {target}: wiping {}: {error}", data.display()))?;
                local
                    .start_node(index)
                    .map_err(|error| format!("replace {target}: restarting: {error}"))?;
                steps.push(format!(
                    "SIGKILL pid {pid}, {} wiped, restarted empty as pid {}",
                    data.display(),
                    local.pid(index).unwrap_or(0)
                ));
            }
            steps.push(join(&client)?);
        }
        other => return Err(format!("{} is not a membership change", other.name())),
    }
    let after = runtime.block_on(transfers(&client, &nodes));
    Ok(format!(
        "{} in {:.1} s; {}",
        steps.join("; "),
        started.elapsed().as_secs_f64(),
        moved(&before, &after, (kind == FaultKind::Replace).then_some(index))
    ))
}
