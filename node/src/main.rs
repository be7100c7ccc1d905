//! `dynamo-node`: the node binary. Thin: it parses arguments and calls the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dynamo_node::codec::base64url_encode;
use dynamo_node::storage::dump_partition;
use dynamo_node::version::decode_sibling_set;

/// A Dynamo node (DeCandia et al., SOSP 2007).
///
/// Serving (`serve`, `cluster`, `client`) arrives with issue #3. Today the
/// binary inspects storage.
#[derive(Parser, Debug)]
#[command(name = "dynamo-node", version)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print every record of a partition directory, one per line.
    ///
    /// Reads the segment files directly and changes nothing: safe on a
    /// stopped node's data, and on a copy of a damaged one. Each line is
    /// `SEGMENT OFFSET seq=N put key=KEY siblings=[...]` (or `remove`);
    /// damage is shown as `SEGMENT OFFSET DAMAGED ...` and makes the exit
    /// status 1.
    ///
    /// Example: dynamo-node dump data/n1/p00042
    Dump {
        /// A partition directory, such as DATA/p00042.
        partition_dir: PathBuf,
        /// Show put payloads as raw base64url instead of decoding them as
        /// sibling sets.
        #[arg(long)]
        raw: bool,
    },
}

fn describe_siblings(payload: &[u8]) -> String {
    match decode_sibling_set(payload) {
        Ok(set) => {
            let versions: Vec<String> = set
                .versions()
                .iter()
                .map(|version| {
                    let value = match &version.value {
                        None => "tombstone".to_string(),
                        Some(bytes) => dynamo_node::storage::format_value(bytes),
                    };
                    format!("{} past={} {value}", version.dot, version.past)
                })
                .collect();
            format!("siblings=[{}]", versions.join(" | "))
        }
        Err(error) => format!(
            "payload-not-a-sibling-set({error}) base64:{}",
            base64url_encode(payload)
        ),
    }
}

fn main() -> ExitCode {
    dynamo_node::logging::init();
    let arguments = Arguments::parse();
    match arguments.command {
        Command::Dump { partition_dir, raw } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let describe: &dyn Fn(&[u8]) -> String = if raw {
                &|payload: &[u8]| format!("payload=base64:{}", base64url_encode(payload))
            } else {
                &describe_siblings
            };
            match dump_partition(&partition_dir, &mut out, describe) {
                Ok(summary) => {
                    drop(out);
                    eprintln!(
                        "{} segments, {} records, {} problems",
                        summary.segments, summary.records, summary.problems
                    );
                    if summary.problems == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(error) => {
                    eprintln!("dynamo-node dump: {error}");
                    ExitCode::from(2)
                }
            }
        }
    }
}
