//! The model's verdicts, pinned. Run in release (they explore millions of
//! states; about 5 minutes on 2 cores): `cargo test --release -p dynamo-models -- --include-ignored`,
//! as `.ci/run` does.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use dynamo_checker::Invariant;
use dynamo_core::version::Versioning;
use dynamo_models::{
    checker_invariant, checker_verdict, checker_verdict_on, property, DynamoModel, ModelSettings, Puts,
};
use stateright::{Checker, HasDiscoveries, Model};
use stateright::{CheckerVisitor, Path};

fn first_failure(settings: ModelSettings) -> impl Checker<dynamo_models::DynamoModel> {
    settings
        .into_model()
        .checker()
        .threads(2)
        .finish_when(HasDiscoveries::AnyFailures)
        .spawn_bfs()
        .join()
}

#[test]
#[ignore = "explores 12 million states: run in release (see the file's doc)"]
fn dvv_with_r_plus_w_over_n_and_one_crash_holds_every_always_property_exhaustively() {
    // 3 servers, 2 clients x 2 operations, any one server may crash once
    // (at any moment) and recover from what it persisted. Depth-first: the
    // breadth-first queue of whole states does not fit in 24 GB; this run
    // holds ~160 MB and takes ~4 minutes on 2 cores. The crash-free
    // configuration (1,012,668 states, `dynamo-models check`) is a subset.
    let checker = ModelSettings {
        crashes: 1,
        ..ModelSettings::default()
    }
    .into_model()
    .checker()
    .threads(2)
    .spawn_dfs()
    .join();
    checker.assert_properties_hold_except_sometimes();
    assert!(checker.discovery("a read returns another client's write").is_some());
    // Pinned: a change of behaviour in the protocol core shows here first.
    assert_eq!(checker.unique_state_count(), 12_425_538);
}

#[test]
#[ignore = "model check: run in release (see the file's doc)"]
fn paper_versioning_loses_a_write_made_from_the_same_context_through_one_coordinator() {
    let checker = first_failure(ModelSettings {
        versioning: Versioning::Paper,
        same_coordinator: true,
        ..ModelSettings::default()
    });
    let checker = assert_found(checker, property::DURABLE, "the paper scheme loses a write");
    assert_the_checker_agrees(&checker, property::DURABLE);
}

#[test]
#[ignore = "model check: run in release (see the file's doc)"]
fn r_plus_w_at_most_n_lets_a_read_miss_an_acknowledged_write() {
    let checker = first_failure(ModelSettings {
        r: 1,
        w: 1,
        ops: 3,
        strict: Some(true),
        ..ModelSettings::default()
    });
    let checker = assert_found(
        checker,
        property::READS_SEE_ACKNOWLEDGED,
        "R + W <= N misses an acknowledged write",
    );
    assert_the_checker_agrees(&checker, property::READS_SEE_ACKNOWLEDGED);
}

/// The counterexample to `property` (`why` says what it shows); prints its
/// depth and returns the checker for further assertions.
fn assert_found<C: Checker<DynamoModel>>(checker: C, property: &'static str, why: &str) -> C {
    let path = checker
        .discovery(property)
        .unwrap_or_else(|| panic!("{why}: no counterexample to {property:?}"));
    eprintln!("{why}: found at depth {}", path.into_actions().len());
    checker
}

/// The history checker (the `checker` crate), run on the counterexample's
/// history and final reads, finds the invariant the violated property
/// restates: the model and the checker agree on what went wrong.
fn assert_the_checker_agrees(checker: &impl Checker<DynamoModel>, property: &'static str) {
    let path = checker.discovery(property).expect("a counterexample");
    let verdict = checker_verdict(checker.model(), path.last_state()).expect("the checker reads the model's history");
    let invariant = checker_invariant(property).expect("a property the checker judges");
    assert!(
        verdict.violations.get(&invariant).copied().unwrap_or(0) > 0,
        "the checker missed {invariant} in the counterexample to {property:?}: {:?}",
        verdict.findings
    );
}

trait HoldExceptSometimes {
    fn assert_properties_hold_except_sometimes(&self);
}

impl<C: Checker<dynamo_models::DynamoModel>> HoldExceptSometimes for C {
    fn assert_properties_hold_except_sometimes(&self) {
        for property in self.model().properties() {
            if matches!(property.expectation, stateright::Expectation::Always) {
                assert!(self.discovery(property.name).is_none(), "{} violated", property.name);
            }
        }
    }
}

#[test]
#[ignore = "model check: run in release (see the file's doc)"]
fn r_plus_w_over_n_is_still_not_linearizable_a_later_read_by_another_client_goes_back() {
    // One blind writer; two readers (the first shares the writer's
    // coordinator, the second makes two gets). While the put is on its
    // coordinator only, a read through that node returns it; the other
    // reader's second get, begun after that read completed, goes through the
    // other two replicas and returns the older state.
    let checker = first_failure(ModelSettings {
        clients: 0,
        writers: 1,
        readers: 2,
        real_time_reads: true,
        ..ModelSettings::default()
    });
    let checker = assert_found(
        checker,
        "reads never go back in real time",
        "R + W > N goes back in real time",
    );
    for property in [
        property::DURABLE,
        property::READS_SEE_ACKNOWLEDGED,
        property::SIBLINGS_ARE_CONCURRENT,
    ] {
        assert!(checker.discovery(property).is_none(), "{property} must still hold");
    }
}

/// One client on a preloaded key: get, put with that context, get, blind
/// put, all through server 0. The preloaded value was written through a
/// node that has left, so the read-modify-write put's clock is
/// {departed:1, s0:1} and the blind put's is {s0:2}: concurrent, both kept.
fn read_modify_write_then_blind(versioning: Versioning, truncate: usize) -> ModelSettings {
    ModelSettings {
        clients: 1,
        ops: 4,
        puts: Puts::Alternate,
        preload: true,
        versioning,
        truncate,
        ..ModelSettings::default()
    }
}

fn exhaustive(settings: ModelSettings) -> impl Checker<DynamoModel> {
    settings.into_model().checker().threads(2).spawn_bfs().join()
}

#[test]
#[ignore = "model check: run in release (see the file's doc)"]
fn truncation_under_paper_loses_a_write_the_untruncated_clock_keeps_and_under_dvv_only_adds_siblings() {
    // Untruncated, the paper's scheme keeps both writes (exhaustively).
    let untruncated = exhaustive(read_modify_write_then_blind(Versioning::Paper, 10));
    untruncated.assert_properties_hold_except_sometimes();

    // Truncated to one entry, the read-modify-write put's clock keeps only
    // {s0:1}, which the blind {s0:2} dominates: an acknowledged write lost.
    let truncated = exhaustive(read_modify_write_then_blind(Versioning::Paper, 1));
    let truncated = assert_found(
        truncated,
        property::DURABLE,
        "paper versioning with truncation loses a write",
    );
    assert_the_checker_agrees(&truncated, property::DURABLE);

    // dvv with the same truncation: the blind put's empty context covers no
    // dot, so nothing is lost; the truncated context forgets the preloaded
    // value, which comes back beside its descendant (extra siblings).
    let dvv = exhaustive(read_modify_write_then_blind(Versioning::Dvv, 1));
    assert!(dvv.discovery(property::DURABLE).is_none());
    assert!(dvv.discovery(property::SIBLINGS_ARE_CONCURRENT).is_some());
    assert_the_checker_agrees(&dvv, property::SIBLINGS_ARE_CONCURRENT);
}

/// Compares, in every state a random walk visits, the model's restated
/// invariants with the checker's verdict on the same history.
#[derive(Default)]
struct Agreement {
    /// States compared.
    states: Mutex<u64>,
    /// Per checker invariant, states where it was violated.
    violated: Mutex<BTreeMap<Invariant, u64>>,
    /// Disagreements, described.
    disagreements: Mutex<Vec<String>>,
}

struct Visitor(Arc<Agreement>);

impl CheckerVisitor<DynamoModel> for Visitor {
    fn visit(&self, model: &DynamoModel, path: Path<<DynamoModel as Model>::State, <DynamoModel as Model>::Action>) {
        let this = &self.0;
        let state = path.last_state();
        let history = &state.history;
        let reads_only = checker_verdict_on(model, history, &[]).expect("the model writes well-formed histories");
        let with_finals = checker_verdict(model, state).expect("the model writes well-formed histories");
        let found = |verdict: &dynamo_checker::Verdict, invariant: Invariant| {
            verdict.violations.get(&invariant).copied().unwrap_or(0) > 0
        };
        let antichain = found(&reads_only, Invariant::SiblingAntichain);
        let stale = found(&reads_only, Invariant::StaleRead);
        let phantom = found(&reads_only, Invariant::Phantom);
        let lost = found(&with_finals, Invariant::LostWrite);
        let model_stale = model.cfg.strict() && !history.reads_see_acknowledged_writes();
        let model_lost = !model
            .properties()
            .iter()
            .find(|p| p.name == property::DURABLE)
            .is_none_or(|p| (p.condition)(model, state));
        let mut problems = Vec::new();
        if phantom == history.no_phantom() {
            problems.push("phantom");
        }
        if antichain == history.siblings_are_concurrent() {
            problems.push("sibling-antichain");
        }
        // The checker's stale-read is stricter: it also flags a get that
        // returns a value beside one superseding it (a sibling-antichain
        // break the model reports under its own name).
        if model_stale && !stale || stale && !antichain && !model_stale {
            problems.push("stale-read");
        }
        // The checker's lost-write also flags resurrections in the final
        // reads, which the model's durability property does not restate.
        if model_lost && !lost {
            problems.push("lost-write");
        }
        *this.states.lock().unwrap() += 1;
        let mut violated = this.violated.lock().unwrap();
        for (invariant, hit) in [
            (Invariant::Phantom, phantom),
            (Invariant::SiblingAntichain, antichain),
            (Invariant::StaleRead, stale),
            (Invariant::LostWrite, model_lost),
        ] {
            if hit {
                *violated.entry(invariant).or_insert(0) += 1;
            }
        }
        if !problems.is_empty() {
            this.disagreements
                .lock()
                .unwrap()
                .push(format!("{problems:?} on {}", history.to_jsonl(&[])));
        }
    }
}

#[test]
#[ignore = "model check: run in release (see the file's doc)"]
fn the_models_properties_and_the_checker_agree_on_random_walks() {
    let agreement = Arc::new(Agreement::default());
    let configurations = [
        ModelSettings::default(),
        ModelSettings {
            versioning: Versioning::Paper,
            same_coordinator: true,
            ..ModelSettings::default()
        },
        ModelSettings {
            r: 1,
            w: 1,
            ops: 3,
            strict: Some(true),
            ..ModelSettings::default()
        },
        ModelSettings {
            truncate: 1,
            ops: 3,
            ..ModelSettings::default()
        },
        read_modify_write_then_blind(Versioning::Paper, 1),
    ];
    for (seed, settings) in configurations.into_iter().enumerate() {
        settings
            .into_model()
            .checker()
            .target_max_depth(40)
            .target_state_count(8_000)
            .visitor(Visitor(Arc::clone(&agreement)))
            .spawn_simulation(seed as u64, stateright::UniformChooser)
            .join();
    }
    let disagreements = agreement.disagreements.lock().unwrap();
    assert!(
        disagreements.is_empty(),
        "{} disagreements, first: {}",
        disagreements.len(),
        disagreements[0]
    );
    let violated = agreement.violated.lock().unwrap();
    eprintln!(
        "{} states compared; violations seen: {violated:?}",
        agreement.states.lock().unwrap()
    );
    // Not vacuous: the walks reach violations of each compared invariant
    // but phantom (which the protocol never breaks).
    for invariant in [Invariant::SiblingAntichain, Invariant::StaleRead, Invariant::LostWrite] {
        assert!(
            violated.get(&invariant).copied().unwrap_or(0) > 0,
            "no walk broke {invariant}"
        );
    }
}

/// Anti-entropy, the same code the node runs: only one replica of the key
/// holds the preloaded value, nobody reads, two writers make concurrent
/// blind puts through the other server (a put through the holder would
/// carry the value: a coordinator sends its whole set), and each server
/// starts three exchanges. Once they are spent and the network is empty,
/// both replicas hold the same data, on every interleaving (3,116,836
/// states, ~1 minute, 2.4 GB).
///
/// Two servers with N = 2, not three: a server's exchanges cover every
/// (partition, peer) pair only after six of them, and an adversarial order
/// can run all of a node's earlier exchanges before the data reaches their
/// peer, so three servers need six exchanges each to be sure to converge,
/// past 18 GB of states; with two, three suffice. One crash as well is
/// past 24 GB.
#[test]
#[ignore = "model check: run in release (see the file's doc)"]
fn anti_entropy_makes_diverged_replicas_converge_without_reads() {
    let settings = ModelSettings {
        servers: 2,
        n: 2,
        clients: 0,
        writers: 2,
        same_coordinator: true,
        preload: true,
        diverged: true,
        anti_entropy: 3,
        ..ModelSettings::default()
    };
    let checker = exhaustive(settings.clone());
    checker.assert_properties_hold_except_sometimes();
    assert!(checker.discovery("anti-entropy repairs a replica").is_some());
    assert_eq!(checker.unique_state_count(), 3_116_836);
    // Without anti-entropy the same start never converges: the property
    // has teeth, and anti-entropy is what makes it hold.
    let checker = first_failure(ModelSettings {
        anti_entropy: 0,
        ..settings
    });
    assert_found(
        checker,
        property::CONVERGE,
        "no anti-entropy, no reads: replicas stay apart",
    );
}
