//! A spec file as written: what serde reads, with the defaults of every
//! field a spec may leave out. [`super::Spec::parse`] checks it into a
//! [`super::Spec`].

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) description: String,
    #[serde(default)]
    pub(super) seed: u64,
    pub(super) cluster: RawClusterSection,
    pub(super) load: RawLoad,
    pub(super) keys: RawKeys,
    pub(super) mix: BTreeMap<String, u32>,
    #[serde(default)]
    pub(super) sla: RawSla,
    #[serde(default)]
    pub(super) check: RawCheck,
    #[serde(default)]
    pub(super) faults: Option<RawFaults>,
}

/// `[faults]`: a seeded random schedule and/or explicit events, and the
/// settings of the kinds that take any.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFaults {
    #[serde(default)]
    pub(super) kinds: Vec<String>,
    pub(super) every: Option<String>,
    pub(super) lasting: Option<String>,
    pub(super) quiet: Option<String>,
    #[serde(default)]
    pub(super) targets: Vec<String>,
    pub(super) shapes: Option<Vec<String>>,
    pub(super) damages: Option<Vec<String>>,
    pub(super) clients: Option<String>,
    pub(super) delay: Option<String>,
    pub(super) jitter: Option<String>,
    pub(super) bandwidth: Option<u64>,
    pub(super) drop: Option<f64>,
    #[serde(default)]
    pub(super) events: Vec<RawFaultEvent>,
}

/// `[[faults.events]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFaultEvent {
    pub(super) at: String,
    pub(super) kind: String,
    #[serde(default)]
    pub(super) targets: Vec<String>,
    #[serde(rename = "for")]
    pub(super) lasting: Option<String>,
    pub(super) shape: Option<String>,
    pub(super) groups: Option<Vec<Vec<String>>>,
    pub(super) damage: Option<String>,
    pub(super) clients: Option<String>,
    pub(super) delay: Option<String>,
    pub(super) jitter: Option<String>,
    pub(super) bandwidth: Option<u64>,
    pub(super) drop: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClusterSection {
    #[serde(default = "default_nodes")]
    pub(super) nodes: usize,
    #[serde(default)]
    pub(super) spares: usize,
    #[serde(default = "default_three")]
    pub(super) n: usize,
    #[serde(default = "default_two")]
    pub(super) r: usize,
    #[serde(default = "default_two")]
    pub(super) w: usize,
    #[serde(default = "default_partitions")]
    pub(super) partitions: u32,
    #[serde(default = "default_versioning")]
    pub(super) versioning: String,
    #[serde(default = "default_sync")]
    pub(super) sync: String,
    pub(super) batch_interval_ms: Option<u64>,
    pub(super) segment_bytes: Option<u64>,
    pub(super) sloppy_quorum: Option<bool>,
    pub(super) read_repair: Option<bool>,
    pub(super) request_timeout_ms: Option<u64>,
    pub(super) anti_entropy_interval_ms: Option<u64>,
    pub(super) tombstone_grace_ms: Option<u64>,
    pub(super) hint_age_max_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoad {
    pub(super) duration: String,
    #[serde(default = "default_warmup")]
    pub(super) warmup: String,
    pub(super) rate: f64,
    #[serde(default = "default_clients")]
    pub(super) clients: usize,
    pub(super) max_in_flight: Option<usize>,
    #[serde(default = "default_timeout")]
    pub(super) timeout: String,
    #[serde(default = "default_routing")]
    pub(super) routing: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKeys {
    pub(super) count: u64,
    #[serde(default = "default_prefix")]
    pub(super) prefix: String,
    #[serde(default = "default_value_bytes")]
    pub(super) value_bytes: usize,
    #[serde(default = "default_distribution")]
    pub(super) distribution: String,
    pub(super) theta: Option<f64>,
    pub(super) scrambled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSla {
    #[serde(default = "default_percentile")]
    pub(super) percentile: f64,
    #[serde(default = "default_sla_ms")]
    pub(super) max_ms: f64,
}

impl Default for RawSla {
    fn default() -> RawSla {
        RawSla {
            percentile: default_percentile(),
            max_ms: default_sla_ms(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    #[serde(default = "default_mode")]
    pub(super) mode: String,
    #[serde(default = "default_true")]
    pub(super) final_reads: bool,
    #[serde(default = "default_quiet")]
    pub(super) quiet: String,
}

impl Default for RawCheck {
    fn default() -> RawCheck {
        RawCheck {
            mode: default_mode(),
            final_reads: true,
            quiet: default_quiet(),
        }
    }
}

fn default_nodes() -> usize {
    5
}
fn default_three() -> usize {
    3
}
fn default_two() -> usize {
    2
}
fn default_partitions() -> u32 {
    64
}
fn default_versioning() -> String {
    "dvv".into()
}
fn default_sync() -> String {
    "batch".into()
}
fn default_warmup() -> String {
    "2s".into()
}
fn default_clients() -> usize {
    64
}
fn default_timeout() -> String {
    "2s".into()
}
fn default_prefix() -> String {
    "key:".into()
}
fn default_value_bytes() -> usize {
    1024
}
fn default_distribution() -> String {
    "uniform".into()
}
fn default_percentile() -> f64 {
    99.9
}
fn default_sla_ms() -> f64 {
    300.0
}
fn default_mode() -> String {
    "eventual".into()
}
fn default_true() -> bool {
    true
}
fn default_quiet() -> String {
    "2s".into()
}
fn default_routing() -> String {
    "preference".into()
}
