//! `cluster.toml`: the cluster a node belongs to.
//!
//! ```toml
//! n = 3                  # replicas per key
//! r = 2                  # replies a get waits for
//! w = 2                  # acknowledgements a put waits for
//! partitions = 64        # Q, fixed for the cluster's life
//! sync = "always"        # "always" | "batch" | "none"
//! versioning = "dvv"     # "dvv" | "paper"
//!
//! [[nodes]]
//! id = "n1"
//! addr = "127.0.0.1:7001"
//!
//! [[nodes]]              # a machine that may join later
//! id = "n4"
//! addr = "127.0.0.1:7004"
//! spare = true
//! ```
//!
//! The cluster file is the address book: every machine that is or may
//! become a member, with its id and address. The initial ring spreads the
//! partitions over the members that are not `spare`; joins and leaves
//! change it (`dynamo-node admin join` / `leave`), and each node keeps the
//! current assignment in its data directory.
//!
//! Optional settings and their defaults: `batch_interval_ms = 10`,
//! `segment_bytes = 8388608` (a partition's segment is sealed at this
//! size; 4096 to 1073741824),
//! `clock_entries_max = 10`, `siblings_max = 100` (a put that would leave
//! more siblings is refused), `siblings_warning = 25` (a put past it is
//! logged), `request_timeout_ms = 1000`,
//! `replica_timeout_ms = 100`, `probe_interval_ms = 100`,
//! `probe_interval_max_ms = 2000`, `sloppy_quorum = true`,
//! `read_repair = true`, `anti_entropy_interval_ms = 200` (one hash-tree
//! exchange with one other replica of one partition per interval; 0 turns
//! anti-entropy off), `tombstone_grace_ms = 172800000` (two days: a
//! tombstone every replica holds is removed this long after it was
//! written; at least `hint_age_max_ms`). Unknown or ill-typed fields are rejected with the
//! file, line and field.
//!
//! Peers prove they hold the cluster secret before a node takes their
//! messages: `secret = "..."` (at least 16 bytes; the file is then written
//! readable by its owner only) or `secret_file = "PATH"` (relative to the
//! cluster file). `dynamo-node cluster` and `dynamo-bench`'s local clusters
//! generate one. A file without a secret runs only when every member is on
//! loopback (one warning line says peers are not authenticated).
//!
//! One reader ([`ClusterConfig::parse`]) and one writer
//! ([`ClusterConfig::to_toml`], which serialises the same raw type the
//! reader deserialises): every cluster file this workspace writes — by
//! `dynamo-node cluster`, the launcher of local clusters, the tests and
//! `dynamo-bench` — comes from it, so what is written always reads back.

use crate::limits::{SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::storage::SyncPolicy;
use dynamo_core::ids::NodeId;
use dynamo_core::limits::PARTITIONS_DEFAULT;
use dynamo_core::protocol::{Settings, SettingsError};
use dynamo_core::ring::{Ring, RingError};
use dynamo_core::version::Versioning;

/// Why a cluster file is unusable.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file cannot be written.
    #[error("{path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or a field unknown, missing or of the wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Well-formed but inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The file as written: what [`ClusterConfig::parse`] reads and
/// [`ClusterConfig::to_toml`] writes.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    n: usize,
    r: usize,
    w: usize,
    #[serde(default = "default_partitions")]
    partitions: u32,
    #[serde(default = "default_sync")]
    sync: String,
    #[serde(default = "default_versioning")]
    versioning: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    segment_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clock_entries_max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    siblings_max: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    siblings_warning: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replica_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe_interval_max_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sloppy_quorum: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hint_age_max_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    read_repair: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    anti_entropy_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tombstone_grace_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_file: Option<PathBuf>,
    #[serde(default)]
    nodes: Vec<RawNode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    faults: Option<FaultCommands>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: String,
    addr: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    spare: bool,
}

fn default_partitions() -> u32 {
    PARTITIONS_DEFAULT
}
fn default_sync() -> String {
    "always".into()
}
fn default_versioning() -> String {
    "dvv".into()
}

/// The sync policy named `sync`, with `batch_interval_ms` for `batch`.
///
/// # Errors
/// An unknown policy, a zero interval, or an interval without `batch`;
/// the message names the field.
pub fn sync_policy(sync: &str, batch_interval_ms: Option<u64>) -> Result<SyncPolicy, String> {
    let sync: SyncPolicy = sync.parse().map_err(|error| format!("sync: {error}"))?;
    match (sync, batch_interval_ms) {
        (SyncPolicy::Batch { .. }, Some(0)) => Err("batch_interval_ms must be positive".into()),
        (SyncPolicy::Batch { .. }, Some(millis)) => Ok(SyncPolicy::Batch {
            interval: Duration::from_millis(millis),
        }),
        (_, Some(_)) => Err("batch_interval_ms is only meaningful with sync = \"batch\"".into()),
        (sync, None) => Ok(sync),
    }
}

/// A member's name names its data directory (`DATA/<name>`) and its log
/// lines: letters, digits, `.`, `_` and `-`, at most 64, and not `.` or
/// `..`, so that no name can reach outside the data directory.
fn check_name(name: &str) -> Result<(), &'static str> {
    let allowed = |character: char| character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | '-');
    if name.is_empty() || name.len() > 64 {
        Err("must have 1 to 64 characters")
    } else if name == "." || name == ".." || !name.chars().all(allowed) {
        Err("may hold only letters, digits, '.', '_' and '-' (it names the node's data directory), and not be '.' or '..'")
    } else {
        Ok(())
    }
}

/// The cluster secret peers prove they hold (HMAC-SHA256 key): at least
/// [`SECRET_BYTES_MIN`] bytes. Never shown: its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

/// The shortest secret accepted.
pub const SECRET_BYTES_MIN: usize = 16;

impl Secret {
    /// A secret from its text (surrounding white space dropped).
    ///
    /// # Errors
    /// Shorter than [`SECRET_BYTES_MIN`].
    pub fn new(text: &str) -> Result<Secret, String> {
        let text = text.trim();
        if text.len() < SECRET_BYTES_MIN {
            return Err(format!(
                "the secret has {} bytes; it needs at least {SECRET_BYTES_MIN}",
                text.len()
            ));
        }
        Ok(Secret(text.as_bytes().to_vec()))
    }

    /// A fresh random secret (32 bytes from the kernel, as 64 hex digits).
    ///
    /// # Errors
    /// `/dev/urandom` cannot be read.
    pub fn generate() -> std::io::Result<Secret> {
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        Ok(Secret(
            bytes
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect::<String>()
                .into_bytes(),
        ))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Where the secret came from, so that writing the file keeps it there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// `secret = "..."` in the cluster file.
    Inline(Secret),
    /// `secret_file = "PATH"`: the file holds it (PATH as written, relative
    /// to the cluster file's directory).
    File {
        /// The path as written in the cluster file.
        path: PathBuf,
        /// The secret read from it.
        secret: Secret,
    },
}

impl SecretSource {
    /// The secret.
    pub fn secret(&self) -> &Secret {
        match self {
            SecretSource::Inline(secret) | SecretSource::File { secret, .. } => secret,
        }
    }
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its index in the file, the protocol's node id.
    pub node: NodeId,
    /// Its name (`id` in the file).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Listed, but not in the initial ring: it runs outside it until it
    /// joins (`dynamo-node admin join`).
    pub spare: bool,
}

/// A parsed, checked cluster file.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// The protocol settings.
    pub settings: Settings,
    /// Q.
    pub partitions: u32,
    /// The storage sync policy.
    pub sync: SyncPolicy,
    /// The size at which a partition's segment is sealed and the next one
    /// begun (none: the node's default, 8 MiB). Smaller segments roll
    /// (and are synced) more often and let compaction reclaim dead bytes
    /// sooner.
    pub segment_bytes: Option<u64>,
    /// The members, in file order.
    pub members: Vec<Member>,
    /// The cluster secret peers authenticate with (none: peers are not
    /// authenticated, which a node accepts only when every member is on
    /// loopback).
    pub secret: Option<SecretSource>,
    /// How a bench does faults to these nodes where they run (`[faults]`;
    /// nodes ignore it).
    pub faults: Option<FaultCommands>,
}

/// `[faults]`: the shell commands (`sh -c`) a bench runs to do faults to
/// the nodes of a cluster it did not start, because each site controls
/// its machines its own way (ssh and systemd, a container runtime, a
/// cloud API). Placeholders: `{id}` (the node's id), `{host}` and `{port}`
/// (from its `addr`), `{addr}`; in `partition` also the other side's
/// `{peer_id}`, `{peer_host}`, `{peer_port}`, `{peer_addr}`. A command must
/// return (start long-lived things in the background, their output
/// redirected); a non-zero exit is a failed fault, reported.
///
/// ```toml
/// [faults]
/// kill = "ssh {host} sudo systemctl kill -s KILL dynamo@{id}"
/// restart = "ssh {host} sudo systemctl start dynamo@{id}"
/// pause = "ssh {host} sudo systemctl kill -s STOP dynamo@{id}"
/// resume = "ssh {host} sudo systemctl kill -s CONT dynamo@{id}"
/// partition = "ssh {host} sudo nft add rule inet dynamo_bench input ip saddr {peer_host} drop"
/// heal = "ssh {host} sudo nft flush chain inet dynamo_bench input"
/// ```
///
/// `kill` ends with `restart` (the node on the same data directory),
/// `pause` with `resume`; `partition` runs once for every ordered pair of
/// nodes on opposite sides (so each side drops the other), and `heal` once
/// on every node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultCommands {
    /// Kill the node (SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<String>,
    /// Start it again on its data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// Stop it (SIGSTOP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<String>,
    /// Continue it (SIGCONT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    /// Cut the node (`{host}`) off from one across the cut (`{peer_host}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Undo every partition command on the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heal: Option<String>,
}

/// The placeholders of a node in a fault command.
const FAULT_PLACEHOLDERS: [&str; 4] = ["id", "host", "port", "addr"];

impl FaultCommands {
    /// Every command with its field name.
    pub fn commands(&self) -> [(&'static str, Option<&str>); 6] {
        [
            ("kill", self.kill.as_deref()),
            ("restart", self.restart.as_deref()),
            ("pause", self.pause.as_deref()),
            ("resume", self.resume.as_deref()),
            ("partition", self.partition.as_deref()),
            ("heal", self.heal.as_deref()),
        ]
    }

    /// Checks every placeholder is known (`peer_*` only in `partition`).
    fn check(&self) -> Result<(), String> {
        for (field, command) in self.commands() {
            let Some(command) = command else { continue };
            if command.trim().is_empty() {
                return Err(format!("faults.{field}: an empty command"));
            }
            expand(command, |name| {
                let known = FAULT_PLACEHOLDERS.contains(&name)
                    || (field == "partition"
                        && name
                            .strip_prefix("peer_")
                            .is_some_and(|name| FAULT_PLACEHOLDERS.contains(&name)));
                known.then(String::new)
            })
            .map_err(|why| {
                format!(
                    "faults.{field}: {why} (known: {{id}}, {{host}}, {{port}}, {{addr}}{}; {{{{ and }}}} are literal braces)",
                    if field == "partition" {
                        ", and {peer_id}, {peer_host}, {peer_port}, {peer_addr}"
                    } else {
                        ""
                    }
                )
            })?;
        }
        Ok(())
    }

    /// `template` with `member`'s (and `peer`'s) values in place (a
    /// placeholder with no value is left as written; `check` refuses those).
    pub fn fill(template: &str, member: &Member, peer: Option<&Member>) -> String {
        let value = |member: &Member, name: &str| match name {
            "id" => Some(member.name.clone()),
            "host" => Some(member.addr.ip().to_string()),
            "port" => Some(member.addr.port().to_string()),
            "addr" => Some(member.addr.to_string()),
            _ => None,
        };
        expand(template, |name| match name.strip_prefix("peer_") {
            Some(name) => peer.and_then(|peer| value(peer, name)),
            None => value(member, name),
        })
        .unwrap_or_else(|_| template.to_string())
    }
}

/// `template` with each `{name}` replaced by `lookup(name)`; `{{` and `}}`
/// are literal braces (an nft rule's `{ ... }`).
fn expand(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{").or_else(|| tail.strip_prefix("}}")) {
            out.push_str(&tail[..1]);
            rest = after;
        } else if tail.starts_with('}') {
            return Err(format!("a '}}' without its '{{' in {template:?}"));
        } else {
            let close = tail
                .find('}')
                .ok_or_else(|| format!("a '{{' without its '}}' in {template:?}"))?;
            let name = &tail[1..close];
            out.push_str(&lookup(name).ok_or_else(|| format!("unknown placeholder {{{name}}}"))?);
            rest = &tail[close + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

impl ClusterConfig {
    /// Reads and checks a cluster file.
    ///
    /// # Errors
    /// The file cannot be read, is not valid, or is inconsistent; the
    /// message names the file and, for syntax and type errors, the line.
    pub fn load(path: &Path) -> Result<ClusterConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and checks the text of a cluster file (`path` names it in
    /// errors).
    ///
    /// # Errors
    /// As [`ClusterConfig::load`].
    pub fn parse(path: &Path, text: &str) -> Result<ClusterConfig, ConfigError> {
        let raw: RawCluster = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().to_string(),
        })?;
        Self::from_raw(path, raw)
    }

    /// Parses the top-level settings of a cluster file (no `[[nodes]]`) and
    /// gives the cluster `members`: how a launcher that picks the addresses
    /// itself takes settings written by a person.
    ///
    /// # Errors
    /// As [`ClusterConfig::parse`]; `[[nodes]]` in `text` is refused.
    pub fn parse_settings(path: &Path, text: &str, members: &[Member]) -> Result<ClusterConfig, ConfigError> {
        let mut raw: RawCluster = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().to_string(),
        })?;
        if !raw.nodes.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "[[nodes]] is chosen by the launcher here: give the settings only".into(),
            });
        }
        raw.nodes = members
            .iter()
            .map(|member| RawNode {
                id: member.name.clone(),
                addr: member.addr.to_string(),
                spare: member.spare,
            })
            .collect();
        Self::from_raw(path, raw)
    }

    fn from_raw(path: &Path, raw: RawCluster) -> Result<ClusterConfig, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let versioning: Versioning = raw
            .versioning
            .parse()
            .map_err(|error| invalid(format!("versioning: {error}")))?;
        let sync = sync_policy(&raw.sync, raw.batch_interval_ms).map_err(invalid)?;
        let defaults = Settings::default();
        let settings = Settings {
            n: raw.n,
            r: raw.r,
            w: raw.w,
            versioning,
            clock_entries_max: raw.clock_entries_max.unwrap_or(defaults.clock_entries_max),
            siblings_max: raw.siblings_max.unwrap_or(defaults.siblings_max),
            siblings_warning: raw.siblings_warning.unwrap_or(defaults.siblings_warning),
            request_timeout_ms: raw.request_timeout_ms.unwrap_or(defaults.request_timeout_ms),
            replica_timeout_ms: raw.replica_timeout_ms.unwrap_or(defaults.replica_timeout_ms),
            probe_interval_ms: raw.probe_interval_ms.unwrap_or(defaults.probe_interval_ms),
            probe_interval_max_ms: raw.probe_interval_max_ms.unwrap_or(defaults.probe_interval_max_ms),
            sloppy_quorum: raw.sloppy_quorum.unwrap_or(defaults.sloppy_quorum),
            hint_age_max_ms: raw.hint_age_max_ms.unwrap_or(defaults.hint_age_max_ms),
            read_repair: raw.read_repair.unwrap_or(defaults.read_repair),
            anti_entropy_interval_ms: raw
                .anti_entropy_interval_ms
                .unwrap_or(defaults.anti_entropy_interval_ms),
            tombstone_grace_ms: raw.tombstone_grace_ms.unwrap_or(defaults.tombstone_grace_ms),
        };
        let mut members = Vec::with_capacity(raw.nodes.len());
        for (index, node) in raw.nodes.iter().enumerate() {
            check_name(&node.id).map_err(|why| invalid(format!("nodes[{index}]: id {:?} {why}", node.id)))?;
            if raw.nodes[..index].iter().any(|other| other.id == node.id) {
                return Err(invalid(format!("nodes[{index}]: id {:?} is listed twice", node.id)));
            }
            let addr: SocketAddr = node
                .addr
                .parse()
                .map_err(|error| invalid(format!("nodes[{index}] ({}): addr {:?}: {error}", node.id, node.addr)))?;
            if raw.nodes[..index].iter().any(|other| other.addr == node.addr) {
                return Err(invalid(format!(
                    "nodes[{index}] ({}): addr {} is listed twice",
                    node.id, node.addr
                )));
            }
            members.push(Member {
                node: NodeId(index as u32),
                name: node.id.clone(),
                addr,
                spare: node.spare,
            });
        }
        let secret = match (raw.secret, raw.secret_file) {
            (Some(_), Some(_)) => return Err(invalid("give secret or secret_file, not both".into())),
            (Some(text), None) => Some(SecretSource::Inline(
                Secret::new(&text).map_err(|why| invalid(format!("secret: {why}")))?,
            )),
            (None, Some(file)) => {
                let full = path.parent().unwrap_or(Path::new("")).join(&file);
                let text = std::fs::read_to_string(&full)
                    .map_err(|error| invalid(format!("secret_file {}: {error}", full.display())))?;
                let secret =
                    Secret::new(&text).map_err(|why| invalid(format!("secret_file {}: {why}", full.display())))?;
                Some(SecretSource::File { path: file, secret })
            }
            (None, None) => None,
        };
        let config = ClusterConfig {
            settings,
            partitions: raw.partitions,
            sync,
            segment_bytes: raw.segment_bytes,
            members,
            secret,
            faults: raw.faults,
        };
        if let Some(faults) = &config.faults {
            faults.check().map_err(invalid)?;
        }
        config.check().map_err(invalid)?;
        Ok(config)
    }

    /// Whether every member listens on a loopback address (where a cluster
    /// without a secret is allowed to run).
    pub fn all_loopback(&self) -> bool {
        self.members.iter().all(|member| member.addr.ip().is_loopback())
    }

    /// Checks what a file's syntax cannot: N, R and W against the members,
    /// positive limits, Q against the members.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> Result<(), String> {
        let ring = self.ring().map_err(|error| error.to_string())?;
        self.settings
            .validate(ring.members().len())
            .map_err(|error: SettingsError| error.to_string())?;
        if let Some(bytes) = self.segment_bytes {
            if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&bytes) {
                return Err(format!(
                    "segment_bytes = {bytes}: between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}"
                ));
            }
        }
        Ok(())
    }

    /// The initial ring: partitions spread over the members that are not
    /// spares, in file order. (A node routes by the assignment in its data
    /// directory once membership has changed: see `assignment.rs`.)
    ///
    /// # Errors
    /// Q out of range or smaller than the number of nodes; every node a
    /// spare.
    pub fn ring(&self) -> Result<Ring, RingError> {
        let nodes: Vec<NodeId> = self
            .members
            .iter()
            .filter(|member| !member.spare)
            .map(|member| member.node)
            .collect();
        Ring::new(self.partitions, &nodes)
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|member| member.name == name)
    }

    /// The batch interval, for `sync = "batch"`.
    pub fn batch_interval(&self) -> Option<Duration> {
        match self.sync {
            SyncPolicy::Batch { interval } => Some(interval),
            _ => None,
        }
    }

    /// The text of a cluster file describing this configuration, every
    /// setting spelled out: [`ClusterConfig::parse`] reads it back equal.
    pub fn to_toml(&self) -> String {
        let s = &self.settings;
        let raw = RawCluster {
            n: s.n,
            r: s.r,
            w: s.w,
            partitions: self.partitions,
            sync: match self.sync {
                SyncPolicy::Always => "always",
                SyncPolicy::Batch { .. } => "batch",
                SyncPolicy::None => "none",
            }
            .to_string(),
            versioning: s.versioning.to_string(),
            batch_interval_ms: self.batch_interval().map(|interval| interval.as_millis() as u64),
            segment_bytes: self.segment_bytes,
            clock_entries_max: Some(s.clock_entries_max),
            siblings_max: Some(s.siblings_max),
            siblings_warning: Some(s.siblings_warning),
            request_timeout_ms: Some(s.request_timeout_ms),
            replica_timeout_ms: Some(s.replica_timeout_ms),
            probe_interval_ms: Some(s.probe_interval_ms),
            probe_interval_max_ms: Some(s.probe_interval_max_ms),
            sloppy_quorum: Some(s.sloppy_quorum),
            hint_age_max_ms: Some(s.hint_age_max_ms),
            read_repair: Some(s.read_repair),
            anti_entropy_interval_ms: Some(s.anti_entropy_interval_ms),
            tombstone_grace_ms: Some(s.tombstone_grace_ms),
            secret: match &self.secret {
                Some(SecretSource::Inline(secret)) => Some(secret.text()),
                _ => None,
            },
            secret_file: match &self.secret {
                Some(SecretSource::File { path, .. }) => Some(path.clone()),
                _ => None,
            },
            nodes: self
                .members
                .iter()
                .map(|member| RawNode {
                    id: member.name.clone(),
                    addr: member.addr.to_string(),
                    spare: member.spare,
                })
                .collect(),
            faults: self.faults.clone(),
        };
        // Plain strings, numbers and booleans: serialising cannot fail.
        toml::to_string(&raw).unwrap_or_default()
    }

    /// Writes [`ClusterConfig::to_toml`] to `path`.
    ///
    /// # Errors
    /// The file cannot be written.
    /// The file is readable by its owner only when it holds the secret.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), ConfigError> {
        use std::os::unix::fs::OpenOptionsExt;
        let write_error = |source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        };
        let inline = matches!(self.secret, Some(SecretSource::Inline(_)));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(if inline { 0o600 } else { 0o644 })
            .open(path)
            .map_err(write_error)?;
        std::io::Write::write_all(&mut file, self.to_toml().as_bytes()).map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
n = 3
r = 2
w = 2
partitions = 16
sync = "batch"
batch_interval_ms = 5
versioning = "paper"
segment_bytes = 65536

[[nodes]]
id = "n1"
addr = "127.0.0.1:7001"
[[nodes]]
id = "n2"
addr = "127.0.0.1:7002"
[[nodes]]
id = "n3"
addr = "127.0.0.1:7003"
"#;

    #[test]
    fn a_good_file_parses_and_round_trips() {
        let config = ClusterConfig::parse(Path::new("c.toml"), GOOD).unwrap();
        assert_eq!(config.settings.versioning, Versioning::Paper);
        assert_eq!(config.batch_interval(), Some(Duration::from_millis(5)));
        assert_eq!(config.member("n2").unwrap().node, NodeId(1));
        let again = ClusterConfig::parse(Path::new("c.toml"), &config.to_toml()).unwrap();
        assert_eq!(again.members, config.members);
        assert_eq!(again.settings, config.settings);
        assert_eq!(again.sync, config.sync);
        assert_eq!(again.partitions, config.partitions);
        assert_eq!(again.segment_bytes, Some(65536));
        // Outside 4 KiB ..= 1 GiB: refused, the field named.
        let tiny = GOOD.replace("segment_bytes = 65536", "segment_bytes = 100");
        let error = ClusterConfig::parse(Path::new("c.toml"), &tiny)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("segment_bytes = 100: between 4096 and 1073741824"),
            "{error}"
        );
    }

    #[test]
    fn fault_commands_round_trip_fill_in_and_name_a_bad_placeholder() {
        let text = format!(
            "{GOOD}[faults]\nkill = \"ssh {{host}} systemctl kill -s KILL dynamo@{{id}}\"\n\
             partition = \"ssh {{host}} nft add rule inet t input ip saddr {{peer_host}} tcp dport {{port}} drop\"\n"
        );
        let config = ClusterConfig::parse(Path::new("c.toml"), &text).unwrap();
        let faults = config.faults.clone().unwrap();
        assert_eq!(faults.pause, None);
        let again = ClusterConfig::parse(Path::new("c.toml"), &config.to_toml()).unwrap();
        assert_eq!(again.faults, config.faults);
        let (n1, n3) = (config.member("n1").unwrap(), config.member("n3").unwrap());
        assert_eq!(
            FaultCommands::fill(faults.kill.as_deref().unwrap(), n1, None),
            "ssh 127.0.0.1 systemctl kill -s KILL dynamo@n1"
        );
        assert_eq!(
            FaultCommands::fill(faults.partition.as_deref().unwrap(), n1, Some(n3)),
            "ssh 127.0.0.1 nft add rule inet t input ip saddr 127.0.0.1 tcp dport 7001 drop"
        );
        // Doubled braces are literal.
        let chain = "nft add chain t c {{ type filter hook input priority 0 ; }} # {id}";
        assert_eq!(
            FaultCommands::fill(chain, n1, None),
            "nft add chain t c { type filter hook input priority 0 ; } # n1"
        );
        // A peer's placeholder outside `partition`, an unknown one, an
        // unknown command: each named.
        for (bad, expected) in [
            (
                "kill = \"kill {peer_id}\"",
                "faults.kill: unknown placeholder {peer_id}",
            ),
            (
                "pause = \"kill -STOP {pid}\"",
                "faults.pause: unknown placeholder {pid}",
            ),
            ("heal = \"nft flush {host\"", "faults.heal: a '{' without its '}'"),
            ("heal = \"nft { x }\"", "faults.heal: unknown placeholder { x }"),
            ("reboot = \"ssh {host} reboot\"", "unknown field `reboot`"),
        ] {
            let error = error(&format!("{GOOD}[faults]\n{bad}\n"));
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn settings_alone_take_the_launchers_members() {
        let members = vec![
            Member {
                node: NodeId(0),
                name: "n1".into(),
                addr: "127.0.0.1:9001".parse().unwrap(),
                spare: false,
            },
            Member {
                node: NodeId(1),
                name: "n2".into(),
                addr: "127.0.0.1:9002".parse().unwrap(),
                spare: false,
            },
        ];
        let text = "n = 2\nr = 1\nw = 2\nsloppy_quorum = false";
        let config = ClusterConfig::parse_settings(Path::new("s"), text, &members).unwrap();
        assert_eq!(config.members, members);
        assert!(!config.settings.sloppy_quorum);
        let refused = ClusterConfig::parse_settings(Path::new("s"), GOOD, &members).unwrap_err();
        assert!(refused.to_string().contains("[[nodes]]"), "{refused}");
    }

    fn error(text: &str) -> String {
        ClusterConfig::parse(Path::new("bad.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_files_name_the_file_the_line_and_the_field() {
        let unknown = error(&GOOD.replace("versioning = \"paper\"", "versoning = \"paper\""));
        assert!(
            unknown.contains("bad.toml") && unknown.contains("versoning") && unknown.contains("line 8"),
            "{unknown}"
        );
        let ill_typed = error(&GOOD.replace("r = 2", "r = \"two\""));
        assert!(ill_typed.contains("line 3") && ill_typed.contains("r"), "{ill_typed}");
        let quorum = error(&GOOD.replace("w = 2", "w = 4"));
        assert!(quorum.contains("w = 4 is out of range"), "{quorum}");
        let sync = error(&GOOD.replace("sync = \"batch\"", "sync = \"sometimes\""));
        assert!(sync.contains("sync") && sync.contains("sometimes"), "{sync}");
        let addr = error(&GOOD.replace("127.0.0.1:7003", "localhost"));
        assert!(addr.contains("nodes[2] (n3)") && addr.contains("localhost"), "{addr}");
        let twice = error(&GOOD.replace("id = \"n3\"", "id = \"n1\""));
        assert!(twice.contains("listed twice"), "{twice}");
        // A name is a directory under the data root: no way out of it.
        for escaping in ["/etc", "../n1", "..", "a/b", ""] {
            let message = error(&GOOD.replace("id = \"n3\"", &format!("id = {escaping:?}")));
            assert!(
                message.contains("nodes[2]") && message.contains("id"),
                "{escaping}: {message}"
            );
        }
        // `now + timeout` must not wrap.
        let timeout = error(&GOOD.replace("w = 2", "w = 2\nrequest_timeout_ms = 18446744073709551615"));
        assert!(
            timeout.contains("request_timeout_ms") && timeout.contains("over the limit"),
            "{timeout}"
        );
    }
}
