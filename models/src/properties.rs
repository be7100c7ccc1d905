//! The model's properties (HISTORY.md's invariants restated over the
//! model's own history, plus convergence) and the bridge to the checker:
//! final reads of every replica, the checker's verdict on a state, and the
//! invariant each property restates.

use dynamo_checker::Invariant;
use stateright::actor::ActorModelState;
use stateright::Expectation;

use dynamo_core::version::SiblingSet;

use crate::history::History;
use crate::model::{DynamoActor, DynamoModel, State};

/// Acknowledged writes are durable: every `ok` put's value, or a value that
/// causally follows it, is in some server's durable store or hints.
fn durable(_: &DynamoModel, state: &ActorModelState<DynamoActor, History>) -> bool {
    let mut held: Vec<String> = Vec::new();
    for storage in state.actor_storages.iter().flatten() {
        for set in storage.store.values().chain(storage.hints.values()) {
            held.extend(
                set.live_values()
                    .map(|value| String::from_utf8_lossy(value).into_owned()),
            );
        }
    }
    state.history.acknowledged().all(|value| {
        held.iter()
            .any(|kept| kept == value || state.history.ancestors(kept).contains(value))
    })
}

/// What a final read asking every replica would return for each key the
/// history touched: the merge of every server's durable set (store and
/// hints, as [`durable`] counts them), its live values sorted.
pub fn final_reads(model: &DynamoModel, state: &ActorModelState<DynamoActor, History>) -> Vec<(String, Vec<String>)> {
    let keys: std::collections::BTreeSet<&str> = state.history.operations.iter().map(|op| op.key.as_str()).collect();
    keys.into_iter()
        .map(|key| {
            let mut merged = SiblingSet::new();
            for storage in state.actor_storages.iter().flatten() {
                let held = storage.store.get(key.as_bytes()).into_iter().chain(
                    storage
                        .hints
                        .iter()
                        .filter(|((_, hinted), _)| hinted == key.as_bytes())
                        .map(|(_, set)| set),
                );
                for set in held {
                    merged.merge(set, model.cfg.versioning);
                }
            }
            let mut values: Vec<String> = merged
                .live_values()
                .map(|value| String::from_utf8_lossy(value).into_owned())
                .collect();
            values.sort();
            (key.to_string(), values)
        })
        .collect()
}

/// The history checker's verdict (the `checker` crate, which knows nothing
/// of the node) on a state's history followed by its [`final_reads`]: the
/// model's properties restate HISTORY.md's invariants so that they can be
/// judged in every state at model-checking speed; this is how the two are
/// held to each other. Strict mode where the model judges reads strictly.
///
/// # Errors
/// The checker could not read the history (a bug in [`History::to_jsonl`]).
pub fn checker_verdict(
    model: &DynamoModel,
    state: &ActorModelState<DynamoActor, History>,
) -> Result<dynamo_checker::Verdict, String> {
    checker_verdict_on(model, &state.history, &final_reads(model, state))
}

/// The checker's verdict on `history` followed by the final reads `finals`
/// (none: the clients' operations alone), in the model's mode.
///
/// # Errors
/// The checker could not read the history (a bug in [`History::to_jsonl`]).
pub fn checker_verdict_on(
    model: &DynamoModel,
    history: &History,
    finals: &[(String, Vec<String>)],
) -> Result<dynamo_checker::Verdict, String> {
    let text = history.to_jsonl(finals);
    let options = dynamo_checker::Options {
        mode: if model.cfg.strict() {
            dynamo_checker::Mode::Strict
        } else {
            dynamo_checker::Mode::Eventual
        },
        ..dynamo_checker::Options::default()
    };
    dynamo_checker::read("model history", text.as_bytes())
        .map(|history| dynamo_checker::check(&history, &options))
        .map_err(|error| format!("the checker cannot read the model's history: {error}\n{text}"))
}

/// The model's properties, by the names stateright reports them under.
pub mod property {
    /// Restates `sibling-antichain`.
    pub const SIBLINGS_ARE_CONCURRENT: &str = "siblings are concurrent";
    /// Restates `phantom`.
    pub const NO_PHANTOM: &str = "no phantom";
    /// Restates `lost-write`.
    pub const DURABLE: &str = "acknowledged writes are durable";
    /// Restates `stale-read`.
    pub const READS_SEE_ACKNOWLEDGED: &str = "reads see acknowledged writes";
    /// The model's own: replicas agree once the network is empty.
    pub const CONVERGE: &str = "replicas converge once messages drain";
}

/// Each property that restates a checker invariant, with that invariant.
const RESTATES: [(&str, Invariant); 4] = [
    (property::SIBLINGS_ARE_CONCURRENT, Invariant::SiblingAntichain),
    (property::NO_PHANTOM, Invariant::Phantom),
    (property::DURABLE, Invariant::LostWrite),
    (property::READS_SEE_ACKNOWLEDGED, Invariant::StaleRead),
];

/// The checker invariant a model property restates (`None`: the checker
/// does not judge it).
pub fn checker_invariant(property: &str) -> Option<Invariant> {
    RESTATES
        .iter()
        .find(|(name, _)| *name == property)
        .map(|(_, invariant)| *invariant)
}

/// Replicas converge: once no message is in flight (and, with
/// anti-entropy, every server has started all its exchanges), every
/// server's durable store holds the same sibling set of every key (all
/// servers are replicas of every key when N equals the number of servers).
fn converged(model: &DynamoModel, state: &ActorModelState<DynamoActor, History>) -> bool {
    if model.cfg.n < model.cfg.servers || state.network.len() > 0 {
        return true;
    }
    if model.cfg.anti_entropy > 0 && exchanges_left(state) {
        return true;
    }
    let mut stores = state
        .actor_storages
        .iter()
        .take(model.cfg.servers)
        .map(|storage| storage.as_ref().map(|storage| &storage.store));
    let first = stores.next().flatten();
    stores.all(|store| store == first)
}

/// Whether some server may still start an anti-entropy exchange.
fn exchanges_left(state: &ActorModelState<DynamoActor, History>) -> bool {
    state.actor_states.iter().any(|actor| match &**actor {
        State::Server(server) => server.exchanges_left > 0,
        State::Client(_) => false,
    })
}

/// Adds the properties to a model.
pub fn properties(model: DynamoModel) -> DynamoModel {
    model
        .property(Expectation::Always, property::SIBLINGS_ARE_CONCURRENT, |_, state| {
            state.history.siblings_are_concurrent()
        })
        .property(Expectation::Always, property::NO_PHANTOM, |_, state| {
            state.history.no_phantom()
        })
        .property(Expectation::Always, property::DURABLE, durable)
        .property(Expectation::Always, property::READS_SEE_ACKNOWLEDGED, |model, state| {
            !model.cfg.strict() || state.history.reads_see_acknowledged_writes()
        })
        .property(Expectation::Always, property::CONVERGE, converged)
        .property(
            Expectation::Always,
            "reads never go back in real time",
            |model, state| !model.cfg.real_time_reads || state.history.reads_never_go_back(),
        )
        .property(
            Expectation::Sometimes,
            "anti-entropy repairs a replica",
            |model, state| {
                model.cfg.anti_entropy == 0
                    || state.actor_states.iter().any(|actor| match &**actor {
                        State::Server(server) => server.node.stats().entropy_repairs > 0,
                        State::Client(_) => false,
                    })
            },
        )
        .property(Expectation::Sometimes, "siblings appear", |_, state| {
            state.history.siblings_appeared()
        })
        .property(
            Expectation::Sometimes,
            "a read returns another client's write",
            |_, state| state.history.read_another_clients_write(),
        )
}
