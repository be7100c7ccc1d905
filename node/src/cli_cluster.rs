//! `dynamo-node cluster`: a local cluster of separate node processes,
//! started by the one launcher ([`dynamo_node::launcher`]).

use std::process::ExitCode;
use std::time::Duration;

use dynamo_core::protocol::Settings;
use dynamo_node::config::ClusterConfig;
use dynamo_node::launcher::{loopback_members, LocalCluster};

use super::ClusterArguments;

fn make_config(arguments: &ClusterArguments) -> Result<ClusterConfig, String> {
    let ports = (0..arguments.nodes + arguments.spares)
        .map(|index| {
            u16::try_from(u32::from(arguments.base_port) + index)
                .map_err(|_| format!("--base-port {} + {index} is not a port", arguments.base_port))
        })
        .collect::<Result<Vec<u16>, String>>()?;
    let settings = Settings {
        n: arguments.n,
        r: arguments.r,
        w: arguments.w,
        versioning: arguments
            .versioning
            .parse()
            .map_err(|error| format!("--versioning: {error}"))?,
        ..Settings::default()
    };
    let config = ClusterConfig {
        settings,
        partitions: arguments.partitions,
        sync: arguments.sync.parse().map_err(|error| format!("--sync: {error}"))?,
        segment_bytes: None,
        members: loopback_members(&ports)
            .into_iter()
            .enumerate()
            .map(|(index, mut member)| {
                member.spare = index as u32 >= arguments.nodes;
                member
            })
            .collect(),
        secret: None,
        faults: None,
    };
    // Round-trip through the file format so that every check applies.
    ClusterConfig::parse(std::path::Path::new("<arguments>"), &config.to_toml()).map_err(|error| error.to_string())
}

pub(crate) fn run(arguments: ClusterArguments) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dynamo-node cluster: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_async(arguments)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("dynamo-node cluster: {message}");
            ExitCode::from(2)
        }
    }
}

async fn run_async(arguments: ClusterArguments) -> Result<ExitCode, String> {
    let config = match &arguments.cluster {
        Some(file) => ClusterConfig::load(file).map_err(|error| error.to_string())?,
        None => make_config(&arguments)?,
    };
    let me = std::env::current_exe().map_err(|error| error.to_string())?;
    let mut cluster = LocalCluster::start_echoing(&me, &arguments.data, config).map_err(|error| error.to_string())?;
    let spares: Vec<String> = cluster
        .config()
        .members
        .iter()
        .filter(|member| member.spare)
        .map(|member| format!("{} ({})", member.name, member.addr))
        .collect();
    eprintln!(
        "cluster of {} nodes from {}{}; Ctrl-C or SIGTERM stops them all",
        cluster.config().members.len(),
        cluster.file().display(),
        if spares.is_empty() {
            String::new()
        } else {
            format!(
                "; outside the ring until `dynamo-node admin join`: {}",
                spares.join(", ")
            )
        }
    );
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|error| error.to_string())?;
    let mut failed = false;
    while !failed {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                for (name, status) in cluster.exited() {
                    eprintln!("{name} exited: {status}");
                    failed = true;
                }
            }
        }
    }
    for (name, why) in cluster.stop() {
        eprintln!("{name} stopped: {why}");
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
