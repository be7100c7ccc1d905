//! `dynamo-node client ...`: one request, one clear answer.

use std::process::ExitCode;
use std::time::Duration;

use dynamo_node::client::{Client, ClientLibError};
use dynamo_node::codec::base64url_encode;
use dynamo_node::version::{decode_context, encode_context, VectorClock};

use super::{ClientArguments, ClientCommand};

fn show(value: &[u8], base64: bool) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !base64 => text.to_string(),
        _ => format!("base64:{}", base64url_encode(value)),
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

async fn run_async(arguments: ClientArguments) -> Result<(), String> {
    let client = Client::new(vec![arguments.connect], Duration::from_millis(arguments.timeout_ms));
    let failed = |error: ClientLibError| error.to_string();
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
            println!("n = {}, partitions = {}", view.n, view.ring.partition_count());
            println!(
                "{:<6} {:<8} {:<22} {:>10} suspected",
                "node", "name", "addr", "partitions"
            );
            for (node, name, addr, owned, suspected) in &view.members {
                println!(
                    "{:<6} {name:<8} {:<22} {owned:>10} {}",
                    node.0,
                    addr.to_string(),
                    if *suspected { "yes" } else { "no" }
                );
            }
        }
        ClientCommand::Stats => {
            let view = client.view().await.map_err(failed)?;
            println!(
                "{:<8} {:>12} {:>10} {:>10} {:>8} {:>8} {:>10} {:>12}",
                "name", "coordinated", "r-reads", "r-writes", "hinted", "hints", "keys", "bytes"
            );
            for (_, name, addr, _, _) in &view.members {
                match client.admin(*addr, "stats").await {
                    Ok(text) => {
                        let stats: serde_json::Value =
                            serde_json::from_str(&text).map_err(|error| error.to_string())?;
                        let field = |name: &str| stats[name].as_u64().unwrap_or(0);
                        println!(
                            "{name:<8} {:>12} {:>10} {:>10} {:>8} {:>8} {:>10} {:>12}",
                            field("requests_coordinated"),
                            field("replica_reads"),
                            field("replica_writes"),
                            field("hinted_writes"),
                            field("hints_pending"),
                            field("keys"),
                            field("bytes")
                        );
                    }
                    Err(error) => println!("{name:<8} unreachable: {error}"),
                }
            }
        }
    }
    Ok(())
}
