//! `dynamo-node cluster`: a local cluster of separate node processes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use dynamo_node::config::{ClusterConfig, Member};
use dynamo_node::ids::NodeId;
use dynamo_node::protocol::Settings;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::ClusterArguments;

fn make_config(arguments: &ClusterArguments) -> Result<ClusterConfig, String> {
    let members = (0..arguments.nodes)
        .map(|index| {
            let port = u32::from(arguments.base_port) + index;
            let port = u16::try_from(port)
                .map_err(|_| format!("--base-port {} + {index} is not a port", arguments.base_port))?;
            Ok(Member {
                node: NodeId(index),
                name: format!("n{}", index + 1),
                addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
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
        members,
    };
    // Round-trip through the file format so that every check applies.
    ClusterConfig::parse(Path::new("<arguments>"), &config.to_toml()).map_err(|error| error.to_string())
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
    let (config, file) = match &arguments.cluster {
        Some(file) => (
            ClusterConfig::load(file).map_err(|error| error.to_string())?,
            file.clone(),
        ),
        None => {
            let config = make_config(&arguments)?;
            std::fs::create_dir_all(&arguments.data)
                .map_err(|error| format!("{}: {error}", arguments.data.display()))?;
            let file = arguments.data.join("cluster.toml");
            std::fs::write(&file, config.to_toml()).map_err(|error| format!("{}: {error}", file.display()))?;
            (config, file)
        }
    };
    let me = std::env::current_exe().map_err(|error| error.to_string())?;
    let mut children = Vec::new();
    for member in &config.members {
        let data: PathBuf = arguments.data.join(&member.name);
        let mut child = Command::new(&me)
            .arg("serve")
            .arg("--cluster")
            .arg(&file)
            .arg("--id")
            .arg(&member.name)
            .arg("--data")
            .arg(&data)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| format!("starting {}: {error}", member.name))?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    println!("{line}");
                }
            });
        }
        children.push((member.name.clone(), child));
    }
    eprintln!(
        "cluster of {} nodes from {}; Ctrl-C or SIGTERM stops them all",
        config.members.len(),
        file.display()
    );
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|error| error.to_string())?;
    let mut failed = false;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                for (name, child) in &mut children {
                    if let Ok(Some(status)) = child.try_wait() {
                        eprintln!("{name} exited: {status}");
                        failed = true;
                    }
                }
                if failed {
                    break;
                }
            }
        }
    }
    for (_, child) in &children {
        if let Some(pid) = child.id() {
            // SAFETY: sending SIGTERM to our own child process.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
    }
    for (name, child) in &mut children {
        match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => eprintln!("{name} stopped: {status}"),
            _ => {
                eprintln!("{name} did not stop within 10 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
