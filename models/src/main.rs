//! `dynamo-models`: model-check the protocol the node runs.

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dynamo_models::{ModelSettings, NetworkKind};
use stateright::{Checker, Model};

/// Model-check dynamo-core's quorum and vector-clock protocol with
/// stateright: the servers are the node's own protocol core.
///
/// Examples:
///   dynamo-models check                               # dvv, N=3 R=2 W=2, 3 servers, 2 clients x 2 ops
///   dynamo-models check --versioning paper --same-coordinator
///   dynamo-models check --r 1 --w 1                   # R + W <= N: a read misses an acknowledged write
///   dynamo-models check --clients 0 --writers 1 --readers 2 --real-time-reads --first   # R + W > N is not linearizable
///   dynamo-models check --clients 1 --ops 4 --puts alternate --preload --versioning paper --truncate 1
///   dynamo-models check --servers 2 --n 2 --clients 0 --writers 2 --same-coordinator --preload --diverged --anti-entropy 3
///   dynamo-models check-simulation --seed 7 --steps 200
///   dynamo-models explore                             # step through it in a browser
///
/// Exit status: 0 every Always property holds, 1 a counterexample was
/// found, 2 bad settings.
#[derive(Parser, Debug)]
#[command(name = "dynamo-models", version)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Exhaustive breadth-first check of the bounded configuration.
    Check {
        #[command(flatten)]
        settings: SettingsArguments,
        /// Stop at this depth (default: no bound).
        #[arg(long)]
        depth: Option<usize>,
        /// Stop at the first counterexample instead of exploring everything.
        #[arg(long)]
        first: bool,
        /// Depth-first instead of breadth-first: far less memory (state
        /// fingerprints and one path, not a queue of whole states), for
        /// large exhaustive runs; counterexamples may be longer.
        #[arg(long)]
        dfs: bool,
        /// Write each counterexample's history (shared/HISTORY.md JSON
        /// Lines, ending in final reads of every replica) to
        /// DIR/<property>.jsonl, for `dynamo-bench check` or other tools.
        #[arg(long, value_name = "DIR")]
        save_histories: Option<std::path::PathBuf>,
    },
    /// Random walks from a seed.
    CheckSimulation {
        #[command(flatten)]
        settings: SettingsArguments,
        /// The seed (runs are reproducible from it).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Depth of each walk.
        #[arg(long, default_value_t = 100)]
        steps: usize,
        /// States to visit in all.
        #[arg(long, default_value_t = 100_000)]
        states: usize,
    },
    /// Serve stateright's explorer on 127.0.0.1 to step through the model.
    Explore {
        #[command(flatten)]
        settings: SettingsArguments,
        /// Address to serve on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        address: String,
    },
}

#[derive(Args, Debug)]
struct SettingsArguments {
    /// Server actors.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Client actors.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// Operations per client (get, put, get, ...).
    #[arg(long, default_value_t = 2)]
    ops: usize,
    /// Replicas per key.
    #[arg(long, default_value_t = 3)]
    n: usize,
    /// Read quorum.
    #[arg(long, default_value_t = 2)]
    r: usize,
    /// Write quorum.
    #[arg(long, default_value_t = 2)]
    w: usize,
    /// dvv | paper.
    #[arg(long, default_value = "dvv")]
    versioning: String,
    /// Clock truncation threshold.
    #[arg(long, default_value_t = 10)]
    truncate: usize,
    /// Sloppy quorum with hinted writes.
    #[arg(long)]
    sloppy: bool,
    /// Server crashes allowed.
    #[arg(long, default_value_t = 0)]
    crashes: usize,
    /// unordered | duplicating | lossy.
    #[arg(long, default_value = "unordered")]
    network: String,
    /// Keys (1 or 2).
    #[arg(long, default_value_t = 1)]
    keys: usize,
    /// How clients' puts get their context: rmw (the get's before it),
    /// blind (empty), alternate (rmw, blind, rmw, ...).
    #[arg(long, default_value = "rmw")]
    puts: String,
    /// Every key starts with one acknowledged value, held by all its
    /// replicas (written through a node that has since left the ring).
    #[arg(long)]
    preload: bool,
    /// Every client talks to server 0.
    #[arg(long)]
    same_coordinator: bool,
    /// Arm request deadlines: requests may time out at any moment (more
    /// behaviours, many more states).
    #[arg(long)]
    deadlines: bool,
    /// Judge "reads see acknowledged writes" even when R + W <= N or with
    /// sloppy quorum (by default only R + W > N without sloppy quorum).
    #[arg(long)]
    strict: bool,
    /// Also judge "reads never go back in real time" (linearizable reads,
    /// which Dynamo does not promise: see it fail with --clients 3).
    #[arg(long)]
    real_time_reads: bool,
    /// Extra clients that make one blind put each.
    #[arg(long, default_value_t = 0)]
    writers: usize,
    /// Extra clients that only get: reader k makes k + 1 gets (a client's
    /// first request starts at once, so only a later reader's later get
    /// can begin after an earlier read completed).
    #[arg(long, default_value_t = 0)]
    readers: usize,
    /// Anti-entropy: each server starts this many hash-tree exchanges
    /// (0: off). "Replicas converge" is then judged once all are spent.
    #[arg(long, default_value_t = 0)]
    anti_entropy: usize,
    /// With --preload: only one replica of each key (the first that is not
    /// server 0) holds the preloaded value, so only anti-entropy (or a
    /// read) can spread it.
    #[arg(long)]
    diverged: bool,
}

impl SettingsArguments {
    fn settings(&self) -> Result<ModelSettings, String> {
        let settings = ModelSettings {
            servers: self.servers,
            clients: self.clients,
            ops: self.ops,
            n: self.n,
            r: self.r,
            w: self.w,
            versioning: self
                .versioning
                .parse()
                .map_err(|error| format!("--versioning: {error}"))?,
            truncate: self.truncate,
            sloppy: self.sloppy,
            crashes: self.crashes,
            network: match self.network.as_str() {
                "unordered" => NetworkKind::Unordered,
                "duplicating" => NetworkKind::Duplicating,
                "lossy" => NetworkKind::Lossy,
                other => return Err(format!("--network {other:?}: expected unordered, duplicating or lossy")),
            },
            keys: self.keys,
            puts: self.puts.parse().map_err(|error| format!("--puts {error}"))?,
            preload: self.preload,
            same_coordinator: self.same_coordinator,
            deadlines: self.deadlines,
            strict: self.strict.then_some(true),
            real_time_reads: self.real_time_reads,
            writers: self.writers,
            readers: self.readers,
            anti_entropy: self.anti_entropy,
            diverged: self.diverged,
        };
        settings.validate()?;
        Ok(settings)
    }
}

fn report(
    checker: &impl Checker<dynamo_models::DynamoModel>,
    seconds: f64,
    save: Option<&std::path::Path>,
) -> ExitCode {
    println!(
        "states: {} explored, {} unique, max depth {}, {:.1}s, {:.0} states/s",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        seconds,
        checker.state_count() as f64 / seconds.max(1e-9)
    );
    let mut violated = false;
    for property in checker.model().properties() {
        let discovery = checker.discovery(property.name);
        let always = matches!(property.expectation, stateright::Expectation::Always);
        let verdict = match (&property.expectation, &discovery) {
            (stateright::Expectation::Always, None) => "holds",
            (stateright::Expectation::Always, Some(_)) => {
                violated = true;
                "VIOLATED"
            }
            (stateright::Expectation::Sometimes, Some(_)) => "reached",
            (stateright::Expectation::Sometimes, None) => "not reached",
            (stateright::Expectation::Eventually, None) => "holds",
            (stateright::Expectation::Eventually, Some(_)) => {
                violated = true;
                "VIOLATED"
            }
        };
        println!("{:<40} {verdict}", property.name);
        if let (true, Some(path)) = (always, discovery) {
            show_counterexample(checker.model(), property.name, path, save);
        }
    }
    if violated {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints a counterexample step by step, then as a HISTORY.md history with
/// the history checker's verdict on it; with `save`, writes that history to
/// DIR/<property>.jsonl.
fn show_counterexample(
    model: &dynamo_models::DynamoModel,
    property: &str,
    path: stateright::Path<<dynamo_models::DynamoModel as Model>::State, <dynamo_models::DynamoModel as Model>::Action>,
    save: Option<&std::path::Path>,
) {
    let state = path.last_state().clone();
    let actions = path.into_actions();
    println!("  counterexample ({} steps):", actions.len());
    for action in &actions {
        println!("    {}", dynamo_models::explain::describe(&model.cfg, action));
    }
    let history = state.history.to_jsonl(&dynamo_models::final_reads(model, &state));
    println!("  its history (shared/HISTORY.md), ending in final reads of every replica:");
    for line in history.lines() {
        println!("    {line}");
    }
    match dynamo_models::checker_verdict(model, &state) {
        Ok(verdict) => {
            let findings: Vec<String> = verdict
                .findings
                .iter()
                .map(|finding| format!("{} {:?}", finding.invariant, finding.ops))
                .collect();
            let restated = dynamo_models::checker_invariant(property).map_or("-", |invariant| invariant.name());
            let found = if findings.is_empty() {
                "valid".to_string()
            } else {
                findings.join(", ")
            };
            println!(
                "  the checker on that history ({:?} mode, restated invariant: {restated}): {found}",
                verdict.mode
            );
        }
        Err(error) => println!("  the checker: {error}"),
    }
    if let Some(dir) = save {
        let file = dir.join(format!("{}.jsonl", property.replace(' ', "-")));
        match std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&file, &history)) {
            Ok(()) => println!("  saved: {}", file.display()),
            Err(error) => eprintln!("dynamo-models: cannot write {}: {error}", file.display()),
        }
    }
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    let (settings, run) = match &arguments.command {
        Command::Check { settings, .. }
        | Command::CheckSimulation { settings, .. }
        | Command::Explore { settings, .. } => (settings.settings(), &arguments.command),
    };
    let settings = match settings {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("dynamo-models: {error}");
            return ExitCode::from(2);
        }
    };
    println!("{settings:?}");
    let started = std::time::Instant::now();
    match run {
        Command::Check {
            depth,
            first,
            dfs,
            save_histories,
            ..
        } => {
            let mut builder = settings.into_model().checker().threads(2);
            if let Some(depth) = depth {
                builder = builder.target_max_depth(*depth);
            }
            if *first {
                builder = builder.finish_when(stateright::HasDiscoveries::AnyFailures);
            }
            let seconds = || started.elapsed().as_secs_f64();
            let save = save_histories.as_deref();
            if *dfs {
                report(&builder.spawn_dfs().join(), seconds(), save)
            } else {
                report(&builder.spawn_bfs().join(), seconds(), save)
            }
        }
        Command::CheckSimulation {
            seed, steps, states, ..
        } => {
            let checker = settings
                .into_model()
                .checker()
                .target_max_depth(*steps)
                .target_state_count(*states)
                .spawn_simulation(*seed, stateright::UniformChooser)
                .join();
            report(&checker, started.elapsed().as_secs_f64(), None)
        }
        Command::Explore { address, .. } => {
            println!("serving the explorer on http://{address}");
            settings.into_model().checker().serve(address.as_str());
            ExitCode::SUCCESS
        }
    }
}
