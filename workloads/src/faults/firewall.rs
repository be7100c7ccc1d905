//! Partitions: nft rules that drop the traffic between groups of node
//! addresses (each local node listens on a loopback address of its own).
//!
//! Each partition is one nft table of ours, `ip dynamo_bench_<pid>_<n>`,
//! with one `output` chain holding a pair of `drop` rules per cut link
//! (one for each direction, matched by address and the listening port, so
//! that another cluster on the same addresses is not touched). Healing
//! deletes the table; dropping the [`Firewall`] deletes any table still
//! up (every exit path that unwinds). A bench killed with SIGKILL leaves
//! its tables: the next run finds the tables whose bench is gone and
//! deletes them, and `dynamo-bench faults --clean` lists and deletes them.
//!
//! nft needs root (CAP_NET_ADMIN) and the `nft` program (Debian package
//! `nftables`): [`preflight`] says which is missing before a run starts.

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use dynamo_node::sync::Recover;

/// The prefix of every table the bench makes.
pub const TABLE_PREFIX: &str = "dynamo_bench_";

/// The address the driver's connections come from (the kernel's choice
/// for a loopback destination).
pub const CLIENT_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Runs `nft` with `arguments`, feeding `script` on stdin when given.
fn nft(arguments: &[&str], script: Option<&str>) -> Result<String, String> {
    let mut command = Command::new("nft");
    command
        .args(arguments)
        .stdin(if script.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => {
            "the nft program is not installed (Debian: apt-get install nftables)".to_string()
        }
        _ => format!("cannot run nft: {error}"),
    })?;
    if let (Some(script), Some(mut stdin)) = (script, child.stdin.take()) {
        use std::io::Write;
        stdin
            .write_all(script.as_bytes())
            .map_err(|error| format!("writing nft's script: {error}"))?;
    }
    let output = child.wait_with_output().map_err(|error| format!("nft: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "nft {} failed: {}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Whether partitions can be done here: root, `nft`, and a table that can
/// be made and removed. The error is one line naming what is missing.
pub fn preflight() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("partition faults need root (nft rules between loopback addresses); run as root, or leave partition out of the faults".into());
    }
    static PROBES: AtomicUsize = AtomicUsize::new(0);
    let probe = format!(
        "{TABLE_PREFIX}{}_probe{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    nft(&["add", "table", "ip", &probe], None)?;
    nft(&["delete", "table", "ip", &probe], None)?;
    Ok(())
}

/// A table of ours found in the ruleset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leftover {
    /// Its name.
    pub table: String,
    /// The bench process that made it.
    pub pid: Option<u32>,
    /// Whether that process still runs.
    pub owner_alive: bool,
}

/// Every table of ours in the ruleset.
pub fn tables() -> Result<Vec<Leftover>, String> {
    let listing = nft(&["list", "tables", "ip"], None)?;
    Ok(listing
        .lines()
        .filter_map(|line| line.trim().strip_prefix("table ip "))
        .filter(|name| name.starts_with(TABLE_PREFIX))
        .map(|name| {
            let pid = name[TABLE_PREFIX.len()..]
                .split('_')
                .next()
                .and_then(|pid| pid.parse::<u32>().ok());
            Leftover {
                table: name.to_string(),
                pid,
                owner_alive: pid.is_some_and(alive),
            }
        })
        .collect())
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

/// Deletes the tables of ours whose bench is gone; returns them.
pub fn clean() -> Result<Vec<Leftover>, String> {
    let mut removed = Vec::new();
    for leftover in tables()? {
        if !leftover.owner_alive {
            nft(&["delete", "table", "ip", &leftover.table], None)?;
            removed.push(leftover);
        }
    }
    Ok(removed)
}

/// The partitions of one run.
pub struct Firewall {
    members: Vec<(String, SocketAddr)>,
    next: AtomicUsize,
    up: Mutex<Vec<String>>,
}

impl Firewall {
    /// For a cluster whose nodes listen on `members`' addresses.
    pub fn new(members: Vec<(String, SocketAddr)>) -> Firewall {
        Firewall {
            members,
            next: AtomicUsize::new(1),
            up: Mutex::new(Vec::new()),
        }
    }

    /// The nft script of a partition into `groups`, named `table`, and the
    /// pairs of addresses it cuts.
    pub fn script(&self, table: &str, groups: &[Vec<String>], cut_clients: bool) -> (String, Vec<String>) {
        let talk = |a: &str, b: &str| {
            groups
                .iter()
                .any(|group| group.iter().any(|n| n == a) && group.iter().any(|n| n == b))
        };
        let mut rules = Vec::new();
        let mut cuts = Vec::new();
        let cut = |from: IpAddr, to: SocketAddr, rules: &mut Vec<String>| {
            rules.push(format!(
                "ip saddr {from} ip daddr {} tcp dport {} drop",
                to.ip(),
                to.port()
            ));
            rules.push(format!(
                "ip saddr {} tcp sport {} ip daddr {from} drop",
                to.ip(),
                to.port()
            ));
        };
        for (a, a_addr) in &self.members {
            for (b, b_addr) in &self.members {
                if a != b && !talk(a, b) {
                    cut(a_addr.ip(), *b_addr, &mut rules);
                    if super::node_number(a) < super::node_number(b) {
                        cuts.push(format!("{} <-> {}", a_addr.ip(), b_addr.ip()));
                    }
                }
            }
        }
        cuts.sort();
        if cut_clients {
            let first = groups.first().cloned().unwrap_or_default();
            for (b, b_addr) in &self.members {
                if !first.contains(b) {
                    cut(CLIENT_IP, *b_addr, &mut rules);
                    cuts.push(format!("driver {CLIENT_IP} <-> {}", b_addr.ip()));
                }
            }
        }
        let script = format!(
            "table ip {table} {{\n  chain cut {{\n    type filter hook output priority 0; policy accept;\n{}  }}\n}}\n",
            rules.iter().map(|rule| format!("    {rule}\n")).collect::<String>()
        );
        (script, cuts)
    }

    /// Cuts the links between `groups`; returns the table (to heal) and
    /// what was done, in words.
    pub fn cut(&self, groups: &[Vec<String>], cut_clients: bool) -> Result<(String, String), String> {
        let table = format!(
            "{TABLE_PREFIX}{}_{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let (script, cuts) = self.script(&table, groups, cut_clients);
        nft(&["-f", "-"], Some(&script))?;
        self.up.lock().recover().push(table.clone());
        let detail = format!(
            "nft table ip {table} (hook output) drops, both ways, on the listening ports: {}",
            cuts.join(", ")
        );
        Ok((table, detail))
    }

    /// Removes a partition's table.
    pub fn heal(&self, table: &str) -> Result<(), String> {
        self.up.lock().recover().retain(|up| up != table);
        nft(&["delete", "table", "ip", table], None).map(|_| ())
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        for table in self.up.lock().recover().drain(..) {
            if let Err(error) = nft(&["delete", "table", "ip", &table], None) {
                eprintln!("note: removing partition table {table}: {error}; `dynamo-bench faults --clean` removes it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members() -> Vec<(String, SocketAddr)> {
        (1..=3)
            .map(|index| {
                (
                    format!("n{index}"),
                    SocketAddr::from(([127, 0, 0, 10 + index], 7000 + u16::from(index))),
                )
            })
            .collect()
    }

    #[test]
    fn a_partition_drops_exactly_the_links_no_group_holds_both_ways() {
        let firewall = Firewall::new(members());
        let groups = vec![vec!["n1".to_string(), "n2".to_string()], vec!["n3".to_string()]];
        let (script, cuts) = firewall.script("t", &groups, false);
        assert_eq!(cuts, ["127.0.0.11 <-> 127.0.0.13", "127.0.0.12 <-> 127.0.0.13"]);
        assert!(
            script.contains("ip saddr 127.0.0.11 ip daddr 127.0.0.13 tcp dport 7003 drop"),
            "{script}"
        );
        assert!(
            script.contains("ip saddr 127.0.0.13 tcp sport 7003 ip daddr 127.0.0.11 drop"),
            "{script}"
        );
        assert!(
            script.contains("ip saddr 127.0.0.13 ip daddr 127.0.0.11 tcp dport 7001 drop"),
            "{script}"
        );
        assert!(
            !script.contains("saddr 127.0.0.11 ip daddr 127.0.0.12"),
            "n1 and n2 still talk: {script}"
        );
        assert!(
            !script.contains("saddr 127.0.0.12 ip daddr 127.0.0.11"),
            "n1 and n2 still talk: {script}"
        );
        assert!(!script.contains("127.0.0.1 "), "the driver is kept: {script}");
        let (script, cuts) = firewall.script("t", &groups, true);
        assert!(
            script.contains("ip saddr 127.0.0.1 ip daddr 127.0.0.13 tcp dport 7003 drop"),
            "{script}"
        );
        assert!(cuts.contains(&"driver 127.0.0.1 <-> 127.0.0.13".to_string()));
        assert_eq!(script.matches(" drop").count(), 4 * 2 + 2);
    }
}
