//! Checking a spec section by section: every error names the file, the
//! line (where it can be found) and the field.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use dynamo_checker::Mode;

use super::raw::{RawCheck, RawClusterSection, RawFaults, RawKeys, RawLoad, RawSla};
use super::{
    check_rate, line_of, parse_duration, CheckSpec, ClusterSpec, FaultsSpec, KeyDistribution, KeySpec, LoadSpec,
    OpKind, SpecError, KEYS_MAX,
};
use crate::faults::{partition, Action, Fault, FaultKind, FaultSettings, Named, RandomFaults};
use crate::keys::Rng;

/// The spec being read, for errors that name its file, line and field;
/// one checker per section.
pub(super) struct Fields<'a> {
    pub(super) path: &'a Path,
    pub(super) text: &'a str,
}

impl Fields<'_> {
    fn invalid(&self, section: &str, field: &str, message: String) -> SpecError {
        SpecError::Invalid {
            path: self.path.to_path_buf(),
            line: line_of(self.text, section, field),
            field: if section.is_empty() {
                field.to_string()
            } else {
                format!("{section}.{field}")
            },
            message,
        }
    }

    /// An error in the `number`th `[[faults.events]]` entry (`field` is
    /// `events.<name>`).
    fn invalid_in_event(&self, number: usize, field: &str, message: String) -> SpecError {
        let name = field.strip_prefix("events.").unwrap_or(field);
        SpecError::Invalid {
            path: self.path.to_path_buf(),
            line: super::line_in_entry(self.text, "faults.events", number, name),
            field: format!("faults.{field}"),
            message,
        }
    }

    fn duration(&self, section: &str, field: &str, value: &str) -> Result<Duration, SpecError> {
        parse_duration(value).map_err(|message| self.invalid(section, field, message))
    }

    pub(super) fn cluster(&self, cluster: RawClusterSection) -> Result<ClusterSpec, SpecError> {
        let invalid = |field: &str, message: String| self.invalid("cluster", field, message);
        if cluster.nodes == 0 {
            return Err(invalid("nodes", "must be at least 1".into()));
        }
        if cluster.n == 0 || cluster.n > cluster.nodes {
            return Err(invalid("n", format!("must be between 1 and nodes ({})", cluster.nodes)));
        }
        for (field, value) in [("r", cluster.r), ("w", cluster.w)] {
            if value == 0 || value > cluster.n {
                return Err(invalid(field, format!("must be between 1 and n ({})", cluster.n)));
            }
        }
        if !["dvv", "paper"].contains(&cluster.versioning.as_str()) {
            return Err(invalid(
                "versioning",
                format!("{:?} is not dvv or paper", cluster.versioning),
            ));
        }
        if !["always", "batch", "none"].contains(&cluster.sync.as_str()) {
            return Err(invalid(
                "sync",
                format!("{:?} is not always, batch or none", cluster.sync),
            ));
        }
        if cluster.batch_interval_ms.is_some() && cluster.sync != "batch" {
            return Err(invalid(
                "batch_interval_ms",
                "is only meaningful with sync = \"batch\"".into(),
            ));
        }
        Ok(ClusterSpec {
            nodes: cluster.nodes,
            spares: cluster.spares,
            n: cluster.n,
            r: cluster.r,
            w: cluster.w,
            partitions: cluster.partitions,
            versioning: cluster.versioning,
            sync: cluster.sync,
            batch_interval_ms: cluster.batch_interval_ms,
            segment_bytes: cluster.segment_bytes,
            sloppy_quorum: cluster.sloppy_quorum,
            read_repair: cluster.read_repair,
            request_timeout_ms: cluster.request_timeout_ms,
            anti_entropy_interval_ms: cluster.anti_entropy_interval_ms,
            tombstone_grace_ms: cluster.tombstone_grace_ms,
            hint_age_max_ms: cluster.hint_age_max_ms,
        })
    }

    pub(super) fn load(&self, raw: &RawLoad) -> Result<LoadSpec, SpecError> {
        let invalid = |field: &str, message: &str| self.invalid("load", field, message.into());
        let load = LoadSpec {
            duration: self.duration("load", "duration", &raw.duration)?,
            warmup: self.duration("load", "warmup", &raw.warmup)?,
            rate: raw.rate,
            clients: raw.clients,
            max_in_flight: raw.max_in_flight.unwrap_or(raw.clients),
            timeout: self.duration("load", "timeout", &raw.timeout)?,
            routing: raw
                .routing
                .parse()
                .map_err(|message| self.invalid("load", "routing", message))?,
        };
        if load.duration.is_zero() {
            return Err(invalid("duration", "must be positive"));
        }
        check_rate(load.rate).map_err(|message| invalid("rate", &message))?;
        if load.clients == 0 {
            return Err(invalid("clients", "must be at least 1"));
        }
        if load.max_in_flight == 0 {
            return Err(invalid("max_in_flight", "must be at least 1"));
        }
        if load.timeout.is_zero() {
            return Err(invalid("timeout", "must be positive"));
        }
        Ok(load)
    }

    pub(super) fn keys(&self, raw: RawKeys) -> Result<KeySpec, SpecError> {
        let invalid = |field: &str, message: String| self.invalid("keys", field, message);
        let theta = raw.theta.unwrap_or(0.99);
        let distribution = match raw.distribution.as_str() {
            "uniform" => KeyDistribution::Uniform,
            "zipfian" => KeyDistribution::Zipfian {
                theta,
                scrambled: raw.scrambled.unwrap_or(true),
            },
            "latest" => KeyDistribution::Latest { theta },
            other => {
                return Err(invalid(
                    "distribution",
                    format!("{other:?} is not uniform, zipfian or latest"),
                ))
            }
        };
        if raw.distribution == "uniform" && raw.theta.is_some() {
            return Err(invalid("theta", "only zipfian and latest have a theta".into()));
        }
        if raw.distribution != "zipfian" && raw.scrambled.is_some() {
            return Err(invalid("scrambled", "only zipfian can be scrambled".into()));
        }
        if !(theta > 0.0 && theta < 1.0) && raw.distribution != "uniform" {
            return Err(invalid("theta", format!("{theta} must be between 0 and 1 (exclusive)")));
        }
        if raw.count == 0 || raw.count > KEYS_MAX {
            return Err(invalid("count", format!("must be between 1 and {KEYS_MAX}")));
        }
        let value_bytes_max = dynamo_core::limits::VALUE_BYTES_MAX / 2;
        if raw.value_bytes > value_bytes_max {
            return Err(invalid("value_bytes", format!("must be at most {value_bytes_max}")));
        }
        Ok(KeySpec {
            count: raw.count,
            prefix: raw.prefix,
            value_bytes: raw.value_bytes,
            distribution,
        })
    }

    pub(super) fn mix(&self, raw: &BTreeMap<String, u32>) -> Result<Vec<(OpKind, u32)>, SpecError> {
        let mut mix = Vec::new();
        for (name, &weight) in raw {
            let Some(kind) = OpKind::parse(name) else {
                let known: Vec<&str> = OpKind::ALL.iter().map(|(_, name)| *name).collect();
                let message = format!("unknown operation (known: {})", known.join(", "));
                return Err(self.invalid("mix", name, message));
            };
            if weight > 0 {
                mix.push((kind, weight));
            }
        }
        if mix.is_empty() {
            let message = "needs at least one operation with a positive weight".into();
            return Err(self.invalid("mix", "", message));
        }
        Ok(mix)
    }

    pub(super) fn sla(&self, raw: &RawSla) -> Result<dynamo_reports::Sla, SpecError> {
        let sla = dynamo_reports::Sla {
            percentile: raw.percentile,
            max_ms: raw.max_ms,
        };
        if !(sla.percentile > 0.0 && sla.percentile < 100.0) {
            let message = "must be between 0 and 100 (exclusive)".into();
            return Err(self.invalid("sla", "percentile", message));
        }
        if !(sla.max_ms.is_finite() && sla.max_ms > 0.0) {
            return Err(self.invalid("sla", "max_ms", "must be positive".into()));
        }
        Ok(sla)
    }

    pub(super) fn check(&self, raw: &RawCheck, cluster: &ClusterSpec) -> Result<CheckSpec, SpecError> {
        let mode: Mode = raw
            .mode
            .parse()
            .map_err(|message| self.invalid("check", "mode", message))?;
        if mode == Mode::Strict && cluster.r + cluster.w <= cluster.n {
            let message = format!(
                "strict mode needs R + W > N (here {} + {} <= {}): quorums that do not overlap read stale values by design",
                cluster.r, cluster.w, cluster.n
            );
            return Err(self.invalid("check", "mode", message));
        }
        Ok(CheckSpec {
            mode,
            final_reads: raw.final_reads,
            quiet: self.duration("check", "quiet", &raw.quiet)?,
        })
    }

    pub(super) fn faults(&self, raw: &RawFaults, cluster: &ClusterSpec, seed: u64) -> Result<FaultsSpec, SpecError> {
        let invalid = |field: &str, message: String| self.invalid("faults", field, message);
        // Spares are nodes too: they run, outside the ring until joined.
        let processes = cluster.nodes + cluster.spares;
        let node_ok = |name: &String| {
            name.strip_prefix('n')
                .and_then(|number| number.parse::<usize>().ok())
                .is_some_and(|number| number >= 1 && number <= processes)
        };
        let not_node =
            |field: &str, name: &String| invalid(field, format!("{name:?} is not a node (n1 to n{processes})"));
        let nodes: Vec<String> = (1..=processes).map(|index| format!("n{index}")).collect();
        let settings = self.fault_settings(raw, &FaultSettings::default(), &|field, message| {
            self.invalid("faults", field, message)
        })?;
        let mut events = Vec::new();
        for (number, event) in raw.events.iter().enumerate() {
            // Errors name the line in this event.
            let invalid = |field: &str, message: String| self.invalid_in_event(number, field, message);
            let not_node =
                |field: &str, name: &String| invalid(field, format!("{name:?} is not a node (n1 to n{processes})"));
            let kind: FaultKind = event.kind.parse().map_err(|message| invalid("events.kind", message))?;
            if let Some(bad) = event.targets.iter().find(|name| !node_ok(name)) {
                return Err(not_node("events.targets", bad));
            }
            let mut own = settings.clone();
            if let Some(damage) = &event.damage {
                own.damages = vec![damage.parse().map_err(|message| invalid("events.damage", message))?];
            }
            if let Some(shape) = &event.shape {
                own.shapes = vec![shape.parse().map_err(|message| invalid("events.shape", message))?];
            }
            let own = self.fault_settings(
                &RawFaults {
                    clients: event.clients.clone(),
                    delay: event.delay.clone(),
                    jitter: event.jitter.clone(),
                    bandwidth: event.bandwidth,
                    drop: event.drop,
                    ..RawFaults::default()
                },
                &own,
                &|field, message| invalid(&format!("events.{field}"), message),
            )?;
            let mut rng = Rng::new(seed ^ (number as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let (action, targets) = match (kind, &event.groups) {
                (FaultKind::Partition, Some(groups)) => {
                    if groups.len() < 2 {
                        return Err(invalid("events.groups", "a partition needs two groups or more".into()));
                    }
                    if let Some(bad) = groups.iter().flatten().find(|name| !node_ok(name)) {
                        return Err(not_node("events.groups", bad));
                    }
                    let action = Action::Partition {
                        groups: groups.clone(),
                        cut_clients: own.cut_clients,
                    };
                    (action, nodes.clone())
                }
                (FaultKind::Partition, None) => {
                    if event.shape.is_none() {
                        return Err(invalid(
                            "events.shape",
                            "a partition event names its shape (isolate, majority, halves, bridge, ring) or its groups"
                                .into(),
                        ));
                    }
                    if event.targets.len() > 1 {
                        return Err(invalid(
                            "events.targets",
                            "a partition's targets name at most one node: the one to isolate or to make the bridge"
                                .into(),
                        ));
                    }
                    if cluster.nodes < 2 {
                        return Err(invalid("events.kind", "a partition needs two nodes or more".into()));
                    }
                    partition(own.shapes[0], event.targets.first(), &nodes, own.cut_clients, &mut rng)
                }
                (_, Some(_)) => {
                    return Err(invalid(
                        "events.groups",
                        format!("only a partition has groups, not {}", kind.name()),
                    ));
                }
                (_, None) => {
                    if event.targets.len() != 1 {
                        let message = format!("{:?}: one node, n1 to n{processes}", event.targets);
                        return Err(invalid("events.targets", message));
                    }
                    Fault::draw(kind, event.targets.first(), &nodes, &own, &mut rng)
                }
            };
            events.push(Fault {
                at: parse_duration(&event.at).map_err(|message| invalid("events.at", message))?,
                action,
                targets,
                lasting: match (&event.lasting, kind.is_membership()) {
                    // A membership change lasts until its partitions moved.
                    (None, true) => Duration::ZERO,
                    (Some(_), true) => {
                        return Err(invalid(
                            "events.for",
                            format!(
                                "a {} lasts until its partitions have moved: leave `for` out",
                                kind.name()
                            ),
                        ))
                    }
                    (Some(text), false) => parse_duration(text).map_err(|message| invalid("events.for", message))?,
                    (None, false) => return Err(invalid("events.for", "how long the fault holds, e.g. \"5s\"".into())),
                },
            });
        }
        let random = if raw.kinds.is_empty() {
            None
        } else {
            let kinds = raw
                .kinds
                .iter()
                .map(|kind| kind.parse::<FaultKind>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|message| invalid("kinds", message))?;
            if kinds.contains(&FaultKind::Partition) && cluster.nodes < 2 {
                return Err(invalid("kinds", "a partition needs two nodes or more".into()));
            }
            if let Some(bad) = raw.targets.iter().find(|name| !node_ok(name)) {
                return Err(not_node("targets", bad));
            }
            let defaults = RandomFaults::with_kinds(kinds);
            let optional = |field: &str, value: &Option<String>, default: Duration| match value {
                Some(text) => self.duration("faults", field, text),
                None => Ok(default),
            };
            let every = optional("every", &raw.every, defaults.every)?;
            if every.is_zero() {
                return Err(invalid("every", "must be positive".into()));
            }
            Some(RandomFaults {
                every,
                lasting: optional("lasting", &raw.lasting, defaults.lasting)?,
                quiet: optional("quiet", &raw.quiet, defaults.quiet)?,
                targets: raw.targets.clone(),
                ..defaults
            })
        };
        Ok(FaultsSpec {
            events,
            random,
            settings,
        })
    }

    /// The settings in `raw` over `base`; `prefix` is `events.` for an
    /// event's own.
    fn fault_settings(
        &self,
        raw: &RawFaults,
        base: &FaultSettings,
        invalid: &dyn Fn(&str, String) -> SpecError,
    ) -> Result<FaultSettings, SpecError> {
        let mut settings = base.clone();
        if let Some(shapes) = &raw.shapes {
            settings.shapes = some_of(shapes).map_err(|message| invalid("shapes", message))?;
        }
        if let Some(damages) = &raw.damages {
            settings.damages = some_of(damages).map_err(|message| invalid("damages", message))?;
        }
        if let Some(clients) = &raw.clients {
            settings.cut_clients = match clients.as_str() {
                "kept" => false,
                "cut" => true,
                other => {
                    return Err(invalid(
                        "clients",
                        format!("{other:?} is not kept (the driver reaches every node) or cut (it is cut with the nodes outside the first group)"),
                    ))
                }
            };
        }
        if let Some(delay) = &raw.delay {
            settings.delay = parse_duration(delay).map_err(|message| invalid("delay", message))?;
        }
        if let Some(jitter) = &raw.jitter {
            settings.jitter = parse_duration(jitter).map_err(|message| invalid("jitter", message))?;
        }
        if let Some(bandwidth) = raw.bandwidth {
            if bandwidth == 0 {
                return Err(invalid("bandwidth", "bytes per second, at least 1".into()));
            }
            settings.bytes_per_second = bandwidth;
        }
        if let Some(drop) = raw.drop {
            if !(drop > 0.0 && drop <= 1.0) {
                return Err(invalid("drop", format!("{drop} is not a probability in (0, 1]")));
            }
            settings.drop = drop;
        }
        Ok(settings)
    }
}

/// A list of names, each a `T`, at least one.
fn some_of<T: Named>(names: &[String]) -> Result<Vec<T>, String> {
    if names.is_empty() {
        return Err(format!("name one {} or more (or leave it out: all)", T::WHAT));
    }
    names.iter().map(|name| T::named(name)).collect()
}
