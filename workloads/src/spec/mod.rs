//! Workload specs: the TOML files in `workloads/` (see `cart.toml` for a
//! commented example of every field).
//!
//! Every field is checked: unknown and ill-typed fields are rejected with
//! the file, the line and the field (toml's own message for syntax and
//! types; [`SpecError::Invalid`] with the line found for the field for
//! values out of range). Command-line overrides are applied after parsing
//! and checked the same way.

use dynamo_core::protocol::Settings;
use dynamo_node::config::{sync_policy, ClusterConfig, Member};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod fields;
mod raw;

use crate::faults::{Fault, FaultKind, FaultSettings, RandomFaults};
use dynamo_checker::Mode;
use thiserror::Error;

use fields::Fields;
use raw::RawSpec;

/// Why a spec cannot be used.
#[derive(Debug, Error)]
pub enum SpecError {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// Syntax, unknown field or wrong type (toml names line and column).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message.
        message: String,
    },
    /// A value out of range or inconsistent with another.
    #[error("{path}{}: {field}: {message}", line.map(|line| format!(":{line}")).unwrap_or_default())]
    Invalid {
        /// The file (or `command line` for an override).
        path: PathBuf,
        /// The line of the field, when it is in the file.
        line: Option<usize>,
        /// `section.field`.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// How keys are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyDistribution {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with exponent `theta` over key ranks; `scrambled` spreads
    /// the hot ranks over the key space (YCSB's ScrambledZipfian).
    Zipfian {
        /// Skew (YCSB default 0.99).
        theta: f64,
        /// Hash ranks to keys.
        scrambled: bool,
    },
    /// Zipfian over recency: the most recently written keys are the most
    /// read (writes pick keys uniformly).
    Latest {
        /// Skew.
        theta: f64,
    },
}

/// What one scheduled operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// Get.
    Read,
    /// Put with an empty context (a blind write).
    Write,
    /// Put with the context of this client's last read of the key (blind
    /// when it has none): a client that holds contexts, as YCSB's update.
    Update,
    /// Get, then put with that get's context.
    ReadModifyWrite,
    /// Get, then delete with that get's context.
    Delete,
    /// Cart: get, merge the siblings' items by union, add an item, put back
    /// with the context.
    Add,
    /// Cart: get (a read, named for the table).
    View,
    /// Cart: get, then delete the cart with its context.
    Checkout,
}

impl OpKind {
    /// All kinds, with their spec names.
    pub const ALL: [(OpKind, &'static str); 8] = [
        (OpKind::Read, "read"),
        (OpKind::Write, "write"),
        (OpKind::Update, "update"),
        (OpKind::ReadModifyWrite, "rmw"),
        (OpKind::Delete, "delete"),
        (OpKind::Add, "add"),
        (OpKind::View, "view"),
        (OpKind::Checkout, "checkout"),
    ];

    /// The spec (and table) name.
    pub fn name(self) -> &'static str {
        OpKind::ALL
            .iter()
            .find(|(kind, _)| *kind == self)
            .map(|(_, name)| *name)
            .unwrap_or("?")
    }

    fn parse(name: &str) -> Option<OpKind> {
        OpKind::ALL
            .iter()
            .find(|(_, candidate)| *candidate == name)
            .map(|(kind, _)| *kind)
    }
}

/// The cluster to start locally.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// Local node processes in the ring.
    pub nodes: usize,
    /// More node processes, started outside the ring (`n<nodes+1>`...),
    /// for `join` faults to add.
    pub spares: usize,
    /// Replicas per key.
    pub n: usize,
    /// Replies a get waits for.
    pub r: usize,
    /// Acknowledgements a put waits for.
    pub w: usize,
    /// Q, the number of partitions.
    pub partitions: u32,
    /// `dvv` or `paper`.
    pub versioning: String,
    /// `always`, `batch` or `none`.
    pub sync: String,
    /// With `batch`: the interval.
    pub batch_interval_ms: Option<u64>,
    /// The size at which a partition's segment is sealed.
    pub segment_bytes: Option<u64>,
    /// Sloppy quorum with hinted handoff.
    pub sloppy_quorum: Option<bool>,
    /// Read repair.
    pub read_repair: Option<bool>,
    /// A coordinator's deadline for a request.
    pub request_timeout_ms: Option<u64>,
    /// One anti-entropy exchange per node per this many ms (0: off).
    pub anti_entropy_interval_ms: Option<u64>,
    /// How long a tombstone every replica holds is kept.
    pub tombstone_grace_ms: Option<u64>,
    /// How long a hint is kept before it is dropped (at most the grace).
    pub hint_age_max_ms: Option<u64>,
}

/// The load.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Measured time (after the warm-up).
    pub duration: Duration,
    /// Time at the target rate before measuring (recorded in the history,
    /// left out of the latency tables).
    pub warmup: Duration,
    /// Target rate, operations per second, open loop.
    pub rate: f64,
    /// Logical clients (history processes), one operation at a time each.
    pub clients: usize,
    /// Operations in flight at once, across clients.
    pub max_in_flight: usize,
    /// A request not answered within this is abandoned (`info` for a write).
    pub timeout: Duration,
    /// Which node each request goes to first.
    pub routing: Routing,
}

/// Which node coordinates a request (the paper, §6.4: client-driven
/// coordination, or a load balancer in front of the cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// The first node of the key's preference list (a partition-aware
    /// client): every version of a key comes from one coordinator.
    Preference,
    /// Any of the key's N preference nodes, at random: versions come from
    /// several coordinators, so their merges are exercised.
    AnyReplica,
    /// Any node at random (a load balancer): a node that is not a replica
    /// forwards the request.
    Random,
}

impl std::str::FromStr for Routing {
    type Err = String;

    fn from_str(text: &str) -> Result<Routing, String> {
        match text {
            "preference" => Ok(Routing::Preference),
            "any-replica" => Ok(Routing::AnyReplica),
            "random" => Ok(Routing::Random),
            other => Err(format!("{other:?} is not preference, any-replica or random")),
        }
    }
}

impl Routing {
    /// Its name in specs.
    pub fn name(self) -> &'static str {
        match self {
            Routing::Preference => "preference",
            Routing::AnyReplica => "any-replica",
            Routing::Random => "random",
        }
    }
}

/// The keys.
#[derive(Clone, Debug)]
pub struct KeySpec {
    /// Distinct keys.
    pub count: u64,
    /// Prefix of every key (`cart:` gives `cart:000042`).
    pub prefix: String,
    /// Bytes stored per value (the value id and payload, padded to this).
    pub value_bytes: usize,
    /// How keys are picked.
    pub distribution: KeyDistribution,
}

/// What is checked.
#[derive(Clone, Debug)]
pub struct CheckSpec {
    /// The checker's mode.
    pub mode: Mode,
    /// Read every touched key through every node at the end.
    pub final_reads: bool,
    /// Wait before the final reads.
    pub quiet: Duration,
}

/// A whole spec.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The file it came from.
    pub path: PathBuf,
    /// Short name (the file stem unless given).
    pub name: String,
    /// One line on what it models.
    pub description: String,
    /// Seed of every random choice.
    pub seed: u64,
    /// The local cluster.
    pub cluster: ClusterSpec,
    /// The load.
    pub load: LoadSpec,
    /// The keys.
    pub keys: KeySpec,
    /// Operation kinds with their weights (positive).
    pub mix: Vec<(OpKind, u32)>,
    /// The objective.
    pub sla: dynamo_reports::Sla,
    /// The checking.
    pub check: CheckSpec,
    /// Faults to do while the load runs.
    pub faults: FaultsSpec,
}

/// The spec's faults: explicit events and an optional random schedule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultsSpec {
    /// Events at fixed times.
    pub events: Vec<Fault>,
    /// A seeded random schedule.
    pub random: Option<RandomFaults>,
    /// The settings of the kinds that take any (shapes, damages, delays).
    pub settings: FaultSettings,
}

impl Spec {
    /// Every fault of the run, in time order: the explicit events and the
    /// random schedule drawn from the spec's seed.
    pub fn fault_schedule(&self, nodes: &[String]) -> Vec<Fault> {
        let mut faults = self.faults.events.clone();
        if let Some(random) = &self.faults.random {
            faults.extend(random.schedule(
                nodes,
                self.load.warmup + self.load.duration,
                self.seed,
                &self.faults.settings,
                &self.faults.events,
            ));
        }
        faults.sort_by_key(|fault| fault.at);
        faults
    }
}

/// Parses `20s`, `500ms`, `2m`, `1h` (a bare number is seconds).
/// The longest duration a spec or an override may ask for (a year: longer
/// than any soak, and far from `Duration`'s overflow).
pub const DURATION_MAX: Duration = Duration::from_secs(365 * 24 * 3600);
/// The slowest target rate: one operation every 1,000 seconds. Below it
/// the schedule's interval would outgrow any run.
pub const RATE_MIN: f64 = 0.001;
/// The fastest target rate (one driver on one machine is far below it).
pub const RATE_MAX: f64 = 10_000_000.0;
/// Keys a spec may name at most: the driver keeps a byte per key.
pub const KEYS_MAX: u64 = 100_000_000;

/// Checks an operation rate against [`RATE_MIN`] and [`RATE_MAX`].
///
/// # Errors
/// A rate that is not a number in range, in words.
pub fn check_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && (RATE_MIN..=RATE_MAX).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "{rate} is not a rate between {RATE_MIN} and {RATE_MAX} operations per second"
        ))
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|character: char| !(character.is_ascii_digit() || character == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (examples: 20s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("{text:?}: unknown unit {other:?} (use ms, s, m or h)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    if seconds > DURATION_MAX.as_secs_f64() {
        return Err(format!(
            "{text:?} is longer than the longest duration accepted ({} days)",
            DURATION_MAX.as_secs() / 86_400
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The 1-based line where `field` is set inside `[section]` (or at the top
/// level when `section` is empty), if it is.
fn line_of(text: &str, section: &str, field: &str) -> Option<usize> {
    let mut current = String::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
            current = name.trim().to_string();
            continue;
        }
        if current == section {
            if let Some((name, _)) = trimmed.split_once('=') {
                if name.trim() == field {
                    return Some(index + 1);
                }
            }
        }
    }
    if field.is_empty() {
        return text
            .lines()
            .position(|line| line.trim() == format!("[{section}]"))
            .map(|index| index + 1);
    }
    None
}

/// The line of `field` in the `number`th (from 0) `[[table]]` entry, or of
/// that entry's header when the field is not written there.
fn line_in_entry(text: &str, table: &str, number: usize, field: &str) -> Option<usize> {
    let header = format!("[[{table}]]");
    let mut seen = 0;
    let mut inside = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            seen += usize::from(trimmed == header);
            inside = (trimmed == header && seen == number + 1).then_some(index + 1);
            if inside.is_some() {
                continue;
            }
            if seen > number + 1 {
                break;
            }
        }
        if inside.is_some() && trimmed.split_once('=').is_some_and(|(name, _)| name.trim() == field) {
            return Some(index + 1);
        }
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.trim() == header)
        .nth(number)
        .map(|(index, _)| index + 1)
}

/// Overrides from the command line.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--rate`.
    pub rate: Option<f64>,
    /// `--seed`.
    pub seed: Option<u64>,
    /// `--routing`.
    pub routing: Option<Routing>,
    /// `--faults`: a random schedule of these kinds (the spec's explicit
    /// events stay).
    pub faults: Option<Vec<FaultKind>>,
}

impl Spec {
    /// Reads and checks the spec at `path`.
    ///
    /// # Errors
    /// As [`SpecError`]: each names the file and, where it can, the line
    /// and the field.
    pub fn load(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Spec::parse(path, &text)
    }

    /// Parses the text of a spec (`path` names it in errors).
    ///
    /// # Errors
    /// As [`Spec::load`].
    pub fn parse(path: &Path, text: &str) -> Result<Spec, SpecError> {
        let raw: RawSpec = toml::from_str(text).map_err(|error| SpecError::Parse {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().to_string(),
        })?;
        let fields = Fields { path, text };
        let raw_seed = raw.seed;
        let cluster = fields.cluster(raw.cluster)?;
        let load = fields.load(&raw.load)?;
        let keys = fields.keys(raw.keys)?;
        let mix = fields.mix(&raw.mix)?;
        let sla = fields.sla(&raw.sla)?;
        let check = fields.check(&raw.check, &cluster)?;
        let faults = match &raw.faults {
            Some(raw) => fields.faults(raw, &cluster, raw_seed)?,
            None => FaultsSpec::default(),
        };
        let name = raw.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_else(|| "workload".into())
        });
        Ok(Spec {
            path: path.to_path_buf(),
            name,
            description: raw.description,
            seed: raw.seed,
            cluster,
            load,
            keys,
            mix,
            sla,
            check,
            faults,
        })
    }

    /// Applies command-line overrides.
    ///
    /// # Errors
    /// An override out of range.
    pub fn apply(&mut self, overrides: &Overrides) -> Result<(), SpecError> {
        let invalid = |field: &str, message: &str| SpecError::Invalid {
            path: PathBuf::from("command line"),
            line: None,
            field: field.to_string(),
            message: message.to_string(),
        };
        if let Some(duration) = overrides.duration {
            if duration.is_zero() {
                return Err(invalid("--duration", "must be positive"));
            }
            self.load.duration = duration;
        }
        if let Some(rate) = overrides.rate {
            self.load.rate = check_rate(rate).map_err(|message| invalid("--rate", &message))?;
        }
        if let Some(seed) = overrides.seed {
            self.seed = seed;
        }
        if let Some(routing) = overrides.routing {
            self.load.routing = routing;
        }
        if let Some(kinds) = &overrides.faults {
            self.faults.random = Some(RandomFaults::with_kinds(kinds.clone()));
        }
        Ok(())
    }

    /// The local cluster this spec asks for, on `members` (the launcher
    /// writes its file).
    ///
    /// # Errors
    /// A `[cluster]` field the node would refuse, named.
    pub fn cluster_config(&self, members: Vec<Member>) -> Result<ClusterConfig, String> {
        let cluster = &self.cluster;
        let defaults = Settings::default();
        let settings = Settings {
            n: cluster.n,
            r: cluster.r,
            w: cluster.w,
            versioning: cluster
                .versioning
                .parse()
                .map_err(|error| format!("[cluster] versioning: {error}"))?,
            request_timeout_ms: cluster.request_timeout_ms.unwrap_or(defaults.request_timeout_ms),
            sloppy_quorum: cluster.sloppy_quorum.unwrap_or(defaults.sloppy_quorum),
            read_repair: cluster.read_repair.unwrap_or(defaults.read_repair),
            anti_entropy_interval_ms: cluster
                .anti_entropy_interval_ms
                .unwrap_or(defaults.anti_entropy_interval_ms),
            tombstone_grace_ms: cluster.tombstone_grace_ms.unwrap_or(defaults.tombstone_grace_ms),
            hint_age_max_ms: cluster.hint_age_max_ms.unwrap_or(defaults.hint_age_max_ms),
            ..defaults
        };
        let config = ClusterConfig {
            settings,
            partitions: cluster.partitions,
            sync: sync_policy(&cluster.sync, cluster.batch_interval_ms)
                .map_err(|error| format!("[cluster] {error}"))?,
            segment_bytes: cluster.segment_bytes,
            members,
            secret: None,
            faults: None,
        };
        config.check().map_err(|error| format!("[cluster] {error}"))?;
        Ok(config)
    }

    /// The spec's cart semantics are in play (add or checkout in the mix).
    pub fn is_cart(&self) -> bool {
        self.mix
            .iter()
            .any(|(kind, _)| matches!(kind, OpKind::Add | OpKind::Checkout))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[cluster]\n[load]\nduration = \"10s\"\nrate = 100\n[keys]\ncount = 10\n[mix]\nread = 1\n";

    fn parse(text: &str) -> Result<Spec, SpecError> {
        Spec::parse(Path::new("w.toml"), text)
    }

    #[test]
    fn a_minimal_spec_takes_the_defaults() {
        let spec = parse(MINIMAL).unwrap();
        assert_eq!(spec.name, "w");
        assert_eq!(
            (spec.cluster.nodes, spec.cluster.n, spec.cluster.r, spec.cluster.w),
            (5, 3, 2, 2)
        );
        assert_eq!(spec.sla.percentile, 99.9);
        assert_eq!(spec.sla.max_ms, 300.0);
        assert_eq!(spec.load.max_in_flight, spec.load.clients);
        assert_eq!(spec.check.mode, Mode::Eventual);
    }

    #[test]
    fn unknown_and_ill_typed_fields_name_file_line_and_field() {
        let unknown = parse(&MINIMAL.replace("rate = 100", "rate = 100\nrat = 5"))
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("w.toml") && unknown.contains("line 5") && unknown.contains("rat"),
            "{unknown}"
        );
        let typed = parse(&MINIMAL.replace("rate = 100", "rate = \"fast\""))
            .unwrap_err()
            .to_string();
        assert!(typed.contains("line 4") && typed.contains("rate"), "{typed}");
        let range = parse(&MINIMAL.replace("[cluster]", "[cluster]\nr = 4"))
            .unwrap_err()
            .to_string();
        assert_eq!(range, "w.toml:2: cluster.r: must be between 1 and n (3)");
        let op = parse(&MINIMAL.replace("read = 1", "read = 1\nscan = 2"))
            .unwrap_err()
            .to_string();
        assert!(op.starts_with("w.toml:9: mix.scan: unknown operation"), "{op}");
        let duration = parse(&MINIMAL.replace("\"10s\"", "\"10 parsecs\""))
            .unwrap_err()
            .to_string();
        assert!(duration.starts_with("w.toml:3: load.duration:"), "{duration}");
        let strict = parse(&MINIMAL.replace("[cluster]", "[cluster]\nr = 1\nw = 1\n[check]\nmode = \"strict\""));
        assert!(strict.unwrap_err().to_string().contains("R + W > N"));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 days").is_err());
    }

    #[test]
    fn overrides_replace_the_spec_and_are_checked() {
        let mut spec = parse(MINIMAL).unwrap();
        assert_eq!(spec.load.routing, Routing::Preference);
        spec.apply(&Overrides {
            duration: Some(Duration::from_secs(3)),
            rate: Some(50.0),
            seed: Some(7),
            routing: Some(Routing::AnyReplica),
            faults: Some(vec![FaultKind::Kill]),
        })
        .unwrap();
        assert_eq!(
            (spec.load.duration, spec.load.rate, spec.seed, spec.load.routing),
            (Duration::from_secs(3), 50.0, 7, Routing::AnyReplica)
        );
        assert_eq!(
            spec.faults.random.as_ref().map(|random| random.kinds.clone()),
            Some(vec![FaultKind::Kill])
        );
        let bad = parse(&MINIMAL.replace("[load]", "[load]\nrouting = \"nearest\""))
            .unwrap_err()
            .to_string();
        assert!(bad.contains("load.routing") && bad.contains("nearest"), "{bad}");
        let error = spec
            .apply(&Overrides {
                rate: Some(0.0),
                ..Overrides::default()
            })
            .unwrap_err();
        assert!(error.to_string().contains("--rate"));
    }

    #[test]
    fn every_shipped_spec_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|extension| extension == "toml")
                && path.file_name().unwrap() != "Cargo.toml"
            {
                Spec::load(&path).unwrap_or_else(|error| panic!("{error}"));
                seen += 1;
            }
        }
        assert!(seen >= 6, "cart, session, catalog, ycsb-a, ycsb-b, ycsb-f");
    }

    #[test]
    fn membership_events_name_spares_and_hold_until_done() {
        let spec = parse(&format!(
            "{}[[faults.events]]\nat = \"1s\"\nkind = \"join\"\ntargets = [\"n6\"]\n",
            MINIMAL.replace("[cluster]", "[cluster]\nspares = 1")
        ))
        .unwrap();
        assert_eq!(spec.cluster.spares, 1);
        let join = &spec.faults.events[0];
        assert_eq!(join.action, crate::faults::Action::Membership(FaultKind::Join));
        assert_eq!(join.lasting, Duration::ZERO);
        // Without the spare, n6 is no node; a change takes no `for`.
        let error = parse(&format!(
            "{MINIMAL}[[faults.events]]\nat = \"1s\"\nkind = \"join\"\ntargets = [\"n6\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("\"n6\" is not a node (n1 to n5)"), "{error}");
        let error = parse(&format!(
            "{MINIMAL}[[faults.events]]\nat = \"1s\"\nkind = \"leave\"\ntargets = [\"n2\"]\nfor = \"3s\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("events.for") && error.contains("leave `for` out"),
            "{error}"
        );
        let error = parse(&format!(
            "{MINIMAL}[[faults.events]]\nat = \"1s\"\nkind = \"kill\"\ntargets = [\"n2\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("events.for"), "{error}");
    }

    #[test]
    fn fault_fields_are_checked_and_errors_name_the_line_and_field() {
        let event = |body: &str| format!("{MINIMAL}[[faults.events]]\nat = \"1s\"\nfor = \"2s\"\n{body}\n");
        let error = |text: String| parse(&text).unwrap_err().to_string();
        let shape = error(event("kind = \"partition\"\nshape = \"square\""));
        assert!(
            shape.contains("w.toml:13") && shape.contains("faults.events.shape"),
            "{shape}"
        );
        assert!(shape.contains("isolate, majority, halves, bridge, ring"), "{shape}");
        let second = error(event(
            "kind = \"kill\"\ntargets = [\"n1\"]\n[[faults.events]]\nat = \"5s\"\nkind = \"pause\"\ntargets = [\"n7\"]\nfor = \"1s\"",
        ));
        assert!(
            second.contains("w.toml:17: faults.events.targets"),
            "the second event's line: {second}"
        );
        let no_shape = error(event("kind = \"partition\""));
        assert!(no_shape.contains("names its shape"), "{no_shape}");
        let groups = error(event(
            "kind = \"kill\"\ntargets = [\"n1\"]\ngroups = [[\"n1\"], [\"n2\"]]",
        ));
        assert!(groups.contains("only a partition has groups"), "{groups}");
        let stranger = error(event("kind = \"partition\"\ngroups = [[\"n1\"], [\"n9\"]]"));
        assert!(stranger.contains("\"n9\" is not a node (n1 to n5)"), "{stranger}");
        let damage = error(event("kind = \"disk\"\ntargets = [\"n1\"]\ndamage = \"melt\""));
        assert!(
            damage.contains("flip-sealed, flip-active, truncate, delete-segment, wipe, flip-log"),
            "{damage}"
        );
        let drop = error(format!("{MINIMAL}[faults]\nkinds = [\"loss\"]\ndrop = 1.5\n"));
        assert!(drop.contains("w.toml:11") && drop.contains("faults.drop"), "{drop}");
        let clients = error(format!(
            "{MINIMAL}[faults]\nkinds = [\"partition\"]\nclients = \"maybe\"\n"
        ));
        assert!(clients.contains("kept") && clients.contains("cut"), "{clients}");
        // And a good one: the groups as written, the driver cut.
        let spec = parse(&event(
            "kind = \"partition\"\ngroups = [[\"n1\", \"n2\"], [\"n3\", \"n4\", \"n5\"]]\nclients = \"cut\"",
        ))
        .unwrap();
        let fault = &spec.faults.events[0];
        assert_eq!(fault.history_targets(), ["n1,n2|n3,n4,n5"]);
        assert!(matches!(
            &fault.action,
            crate::faults::Action::Partition { cut_clients: true, .. }
        ));
    }
}
