//! `dynamo-bench`: runs a workload spec against a Dynamo cluster, records
//! the history, checks it and reports latency per percentile.
//!
//! The `run` and `check` commands arrive with issue #5; until then the
//! binary says so and exits with status 2 rather than pretending to run.

use clap::Parser;

/// Drive a Dynamo cluster with a workload, record and check the history,
/// report latency against the SLA.
///
/// Not built yet: `dynamo-bench run workloads/cart.toml` and
/// `dynamo-bench check HISTORY` arrive with issue #5. Today the workspace
/// holds the node's foundation (versions, ring, storage): see README.md.
#[derive(Parser, Debug)]
#[command(name = "dynamo-bench", version)]
struct Arguments {
    /// What to do (run, check): not available yet.
    command: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let arguments = Arguments::parse();
    eprintln!(
        "dynamo-bench: {:?} is not available yet: `run` and `check` arrive with issue #5 (see README.md)",
        arguments.command.join(" ")
    );
    std::process::ExitCode::from(2)
}
