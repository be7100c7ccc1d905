//! `dynamo-node client ...`: one request, one clear answer.

use std::process::ExitCode;
use std::time::Duration;

use dynamo_client::{Client, Error};
use dynamo_core::codec::{base64url_encode, printable};
use dynamo_core::version::{decode_context, encode_context, VectorClock};

use super::{AdminCommand, ClientArguments, ClientCommand};

/// A value as the CLI prints it: text when printable (never raw control
/// bytes), base64url otherwise or when asked.
fn show(value: &[u8], base64: bool) -> String {
    if base64 {
        format!("base64:{}", base64url_encode(value))
    } else {
        printable(value, false, usize::MAX)
    }
}

fn context(text: Option<&str>) -> Result<VectorClock, String> {
    match text {
        None => Ok(VectorClock::new()),
        Some(text) => decode_context(text).map_err(|error| format!("--context: {error}")),
    }
}

pub(crate) fn run(arguments: ClientArguments) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dynamo-node client: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_async(arguments)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dynamo-node client: {message}");
            ExitCode::from(1)
        }
    }
}

/// `dynamo-node admin join|leave`: asks for the change and shows it move
/// until it completes. Exit status 1 when refused or not complete in time,
/// 2 when the node cannot be reached.
pub(crate) fn admin(command: AdminCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dynamo-node admin: {error}");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let progress = |state: &dynamo_client::ChangeProgress| match &state.pending {
        Some(pending) => eprint!(
            "\r{:>5.1} s  epoch {} → {}: {} of {} gaining nodes ready; here {} partitions fetching, {} catching up   ",
            started.elapsed().as_secs_f64(),
            state.epoch,
            pending.epoch,
            pending.ready.len(),
            pending.gaining.len(),
            pending.fetching,
            pending.catching_up
        ),
        None => eprint!(
            "\r{:>5.1} s  epoch {}: asking   ",
            started.elapsed().as_secs_f64(),
            state.epoch
        ),
    };
    let client = Client::new(Vec::new(), Duration::from_secs(5));
    let (what, after, outcome) = match command {
        AdminCommand::Join { node, seed, timeout_s } => (
            format!("{node} joined the ring"),
            "",
            runtime.block_on(client.join(node, seed, Duration::from_secs(timeout_s), progress)),
        ),
        AdminCommand::Leave { node, timeout_s } => (
            format!("{node} left the ring"),
            "; it may be stopped now",
            runtime.block_on(client.leave(node, Duration::from_secs(timeout_s), progress)),
        ),
    };
    eprintln!();
    match outcome {
        Ok(epoch) => {
            println!(
                "{what} at epoch {epoch} ({:.1} s){after}",
                started.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
        Err(error @ Error::Unreachable { .. }) => {
            eprintln!("dynamo-node admin: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("dynamo-node admin: {error}");
            ExitCode::from(1)
        }
    }
}

async fn run_async(arguments: ClientArguments) -> Result<(), String> {
    let client = Client::new(vec![arguments.connect], Duration::from_millis(arguments.timeout_ms));
    let failed = |error: Error| error.to_string();
    match arguments.command {
        ClientCommand::Get { key, json, base64, r } => {
            let result = client.get(key.as_bytes(), r).await.map_err(failed)?;
            let context = encode_context(&result.context);
            if json {
                let values: Vec<String> = result.values.iter().map(|value| show(value, base64)).collect();
                println!("{}", serde_json::json!({ "values": values, "context": context }));
            } else {
                for value in &result.values {
                    println!("{}", show(value, base64));
                }
                println!("context: {context}");
            }
        }
        ClientCommand::Put {
            key,
            value,
            context: text,
            w,
        } => {
            let context = context(text.as_deref())?;
            client
                .put(key.as_bytes(), Some(value.as_bytes()), &context, w)
                .await
                .map_err(failed)?;
            println!("stored");
        }
        ClientCommand::Delete { key, context: text } => {
            let context = context(Some(&text))?;
            client.put(key.as_bytes(), None, &context, None).await.map_err(failed)?;
            println!("deleted");
        }
        ClientCommand::Ring => {
            let view = client.view().await.map_err(failed)?;
            println!(
                "n = {}, partitions = {}, epoch = {}",
                view.n(),
                view.ring.partition_count(),
                view.ring.epoch()
            );
            println!(
                "{:<6} {:<8} {:<22} {:>10} suspected",
                "node", "name", "addr", "partitions"
            );
            for member in view.members() {
                println!(
                    "{:<6} {:<8} {:<22} {:>10} {}",
                    member.node.0,
                    member.name,
                    member.addr,
                    member.partitions,
                    if member.suspected { "yes" } else { "no" }
                );
            }
        }
        ClientCommand::Stats => {
            let view = client.view().await.map_err(failed)?;
            const MIB: f64 = 1024.0 * 1024.0;
            println!(
                "{:<8} {:>12} {:>10} {:>10} {:>8} {:>8} {:>10} {:>12} {:>10} {:>10} {:>8} {:>6} {:>7} {:>9}",
                "name",
                "coordinated",
                "r-reads",
                "r-writes",
                "hinted",
                "hints",
                "keys",
                "bytes",
                "exchanges",
                "ae-repairs",
                "rss-MiB",
                "fds",
                "threads",
                "data-MiB"
            );
            let mut repairs = Vec::new();
            let mut moved = Vec::new();
            for member in view.members() {
                let name = &member.name;
                let Some(addr) = view.addrs.get(&member.node) else {
                    continue;
                };
                match client.stats(*addr).await {
                    Ok(stats) => {
                        println!(
                            "{name:<8} {:>12} {:>10} {:>10} {:>8} {:>8} {:>10} {:>12} {:>10} {:>10} {:>8.1} {:>6} {:>7} {:>9.1}",
                            stats.requests_coordinated(),
                            stats.protocol.replica_reads,
                            stats.protocol.replica_writes,
                            stats.protocol.hinted_writes,
                            stats.hints_pending,
                            stats.keys,
                            stats.bytes,
                            stats.protocol.exchanges,
                            stats.protocol.entropy_repairs,
                            stats.process.rss_bytes as f64 / MIB,
                            stats.process.open_fds,
                            stats.process.threads,
                            stats.process.data_dir_bytes as f64 / MIB
                        );
                        repairs.extend(stats.needs_repair.into_iter().map(|repair| (name.clone(), repair)));
                        if !stats.transfers.is_empty() {
                            let bytes: u64 = stats.transfers.iter().map(|transfer| transfer.bytes).sum();
                            let millis: u64 = stats.transfers.iter().map(|transfer| transfer.millis).sum();
                            moved.push(format!(
                                "{name}: received {} partitions as files since it started: {} bytes in {:.2} s of transfer",
                                stats.transfers.len(),
                                bytes,
                                millis as f64 / 1e3
                            ));
                        }
                    }
                    Err(error) => println!("{name:<8} unreachable: {error}"),
                }
            }
            for line in moved {
                println!("{line}");
            }
            for (name, repair) in repairs {
                println!(
                    "{name}: partition {} needs repair: {}",
                    repair.partition.0, repair.reason
                );
            }
        }
    }
    Ok(())
}
