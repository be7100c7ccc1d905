//! `dynamo-node`: the node binary. Thin: it parses arguments and calls the
//! library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dynamo_core::codec::{base64url_encode, printable};
use dynamo_core::version::decode_sibling_set;
use dynamo_node::storage::dump_partition;

mod cli_client;
mod cli_cluster;
use cli_client as client;
use cli_cluster as cluster;

/// A Dynamo node (DeCandia et al., SOSP 2007).
///
/// Start a local cluster of five nodes and talk to it:
///
///   dynamo-node cluster --nodes 5 --data /tmp/dynamo
///   dynamo-node client --connect 127.0.0.1:7001 put cart:1 apple
///   dynamo-node client --connect 127.0.0.1:7001 get cart:1
#[derive(Parser, Debug)]
#[command(name = "dynamo-node", version)]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node of a cluster until SIGTERM or Ctrl-C.
    ///
    /// Prints `ready <id> <addr>` once it serves. Example:
    /// dynamo-node serve --cluster cluster.toml --id n1 --data data/n1
    Serve {
        /// The cluster file (see the `config` module docs for its fields).
        #[arg(long)]
        cluster: PathBuf,
        /// This node's id in the cluster file.
        #[arg(long)]
        id: String,
        /// Its data directory [default: data/<id>].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Listen here instead of at the address the cluster file gives
        /// (which stays where the others reach it, through a proxy, say).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Start a local cluster of separate node processes on 127.0.0.1.
    ///
    /// Writes DATA/cluster.toml, starts one `serve` process per node, prints
    /// their ready lines, and stops them all on Ctrl-C or SIGTERM.
    Cluster(ClusterArguments),
    /// Talk to a cluster.
    Client(ClientArguments),
    /// Change the cluster's membership: join a node, or make one leave.
    ///
    /// The node must be running (a joining node is listed in the cluster
    /// file, usually with `spare = true`, and started with `serve`). The
    /// command asks for the change, then shows it move (partitions fetched
    /// as files, then caught up through anti-entropy) until every node
    /// routes by the new ring; reads and writes go on meanwhile.
    ///
    /// Examples:
    ///   dynamo-node admin join --node 127.0.0.1:7004 --seed 127.0.0.1:7001
    ///   dynamo-node admin leave --node 127.0.0.1:7002
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print every record of a partition directory, or of the commit log,
    /// one per line.
    ///
    /// Reads the files directly and changes nothing: safe on a stopped
    /// node's data, and on a copy of a damaged one. Each line is
    /// `SEGMENT OFFSET seq=N put key=KEY siblings=[...]` (or `remove`);
    /// for the log (DATA/partitions/log, or one of its .log files), each
    /// batch then its records by partition, and which batches the last
    /// checkpoint covers. Damage is shown as `SEGMENT OFFSET DAMAGED ...`
    /// and makes the exit status 1.
    ///
    /// Example: dynamo-node dump data/n1/partitions/p00042
    ///          dynamo-node dump data/n1/partitions/log
    Dump {
        /// A partition directory, such as DATA/partitions/p00042, or the
        /// commit log, DATA/partitions/log.
        partition_dir: PathBuf,
        /// Show put payloads as raw base64url instead of decoding them as
        /// sibling sets.
        #[arg(long)]
        raw: bool,
    },
    /// Write a snapshot of a node's data directory into one file, while
    /// the node runs (or not).
    ///
    /// Each partition is copied as a state it passed through (its segment
    /// files are append-only; a partition whose files change under the
    /// copy is taken again), so every write acknowledged before the
    /// archive began is in it. The file lists every file with its SHA-256.
    ///
    /// Example: dynamo-node archive --data data/n1 --out n1.archive
    Archive {
        /// The node's data directory.
        #[arg(long)]
        data: PathBuf,
        /// The archive to write (replaced atomically if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Bring an archive back into a new or empty data directory.
    ///
    /// Checks every checksum before writing anything. The node started on
    /// it runs as a new incarnation (it never reissues a version) and
    /// repairs every partition from its peers first, through anti-entropy.
    ///
    /// Example: dynamo-node restore --archive n1.archive --data data/n1
    Restore {
        /// The archive `dynamo-node archive` wrote.
        #[arg(long)]
        archive: PathBuf,
        /// The data directory to fill (new or empty).
        #[arg(long)]
        data: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Add the running node at --node to the ring, through --seed (any
    /// member).
    Join {
        /// The joining node's address (as the cluster file gives it).
        #[arg(long)]
        node: std::net::SocketAddr,
        /// A member of the ring.
        #[arg(long)]
        seed: std::net::SocketAddr,
        /// Seconds to wait for the change to complete.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
    },
    /// Remove the member at --node from the ring, handing its partitions
    /// to the others; it may be stopped once this returns.
    Leave {
        /// The leaving node's address.
        #[arg(long)]
        node: std::net::SocketAddr,
        /// Seconds to wait for the change to complete.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
    },
}

#[derive(clap::Args, Debug)]
struct ClusterArguments {
    /// Number of nodes (ignored with --cluster).
    #[arg(long, default_value_t = 5)]
    nodes: u32,
    /// More nodes, started outside the ring (`spare = true`), for
    /// `dynamo-node admin join` (ignored with --cluster).
    #[arg(long, default_value_t = 0)]
    spares: u32,
    /// Port of the first node; the others follow.
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Where the nodes keep their data (one directory each) and the
    /// cluster file.
    #[arg(long, default_value = "data/cluster")]
    data: PathBuf,
    /// Start the members of this cluster file instead of making one.
    #[arg(long)]
    cluster: Option<PathBuf>,
    /// Replicas per key.
    #[arg(long, default_value_t = 3)]
    n: usize,
    /// Replies a get waits for.
    #[arg(long, default_value_t = 2)]
    r: usize,
    /// Acknowledgements a put waits for.
    #[arg(long, default_value_t = 2)]
    w: usize,
    /// Partitions (Q).
    #[arg(long, default_value_t = 64)]
    partitions: u32,
    /// always | batch | none.
    #[arg(long, default_value = "always")]
    sync: String,
    /// dvv | paper.
    #[arg(long, default_value = "dvv")]
    versioning: String,
}

#[derive(clap::Args, Debug)]
struct ClientArguments {
    /// A node to ask (any member; the client learns the others).
    #[arg(long, default_value = "127.0.0.1:7001")]
    connect: std::net::SocketAddr,
    /// Milliseconds to wait for an answer.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Subcommand, Debug)]
enum ClientCommand {
    /// Read a key: its values (siblings) one per line, then its context.
    Get {
        /// The key.
        key: String,
        /// Print {"values": [...], "context": "..."}.
        #[arg(long)]
        json: bool,
        /// Show values as base64url (for binary values).
        #[arg(long)]
        base64: bool,
        /// Replies to wait for (default: the cluster's R; up to N).
        #[arg(long)]
        r: Option<usize>,
    },
    /// Write a value, with the context of an earlier get (none: blind write).
    Put {
        /// The key.
        key: String,
        /// The value (text).
        value: String,
        /// The context a get printed.
        #[arg(long)]
        context: Option<String>,
        /// Acknowledgements to wait for (default: the cluster's W).
        #[arg(long)]
        w: Option<usize>,
    },
    /// Delete a key, with the context of an earlier get.
    Delete {
        /// The key.
        key: String,
        /// The context a get printed.
        #[arg(long)]
        context: String,
    },
    /// The ring: nodes, partitions per node, who is suspected.
    Ring,
    /// Per node: requests coordinated, replica reads and writes, hints
    /// pending, keys and bytes stored.
    Stats,
}

/// Bytes of a value `dump` shows at most (the rest is counted, not shown).
const VALUE_SHOWN_BYTES_MAX: usize = 80;

fn describe_siblings(payload: &[u8]) -> String {
    match decode_sibling_set(payload) {
        Ok(set) => {
            let versions: Vec<String> = set
                .versions()
                .iter()
                .map(|version| {
                    let value = match &version.value {
                        None => "tombstone".to_string(),
                        Some(bytes) => printable(bytes, true, VALUE_SHOWN_BYTES_MAX),
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

fn serve(cluster: PathBuf, id: String, data: Option<PathBuf>, listen: Option<std::net::SocketAddr>) -> ExitCode {
    match dynamo_node::server::serve_from_file(&cluster, &id, data, listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dynamo-node serve: {error}");
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    dynamo_node::logging::init();
    let arguments = Arguments::parse();
    if matches!(
        arguments.command,
        Command::Client(_) | Command::Admin(_) | Command::Dump { .. }
    ) {
        dynamo_node::logging::quiet_on_broken_pipe();
    }
    match arguments.command {
        Command::Serve {
            cluster,
            id,
            data,
            listen,
        } => serve(cluster, id, data, listen),
        Command::Cluster(arguments) => cluster::run(arguments),
        Command::Client(arguments) => client::run(arguments),
        Command::Admin(command) => client::admin(command),
        Command::Archive { data, out } => {
            let started = std::time::Instant::now();
            let progress = |done: usize, total: usize| {
                if done == total || done % 16 == 0 {
                    eprint!("\rarchiving: {done}/{total} partitions");
                }
            };
            match dynamo_node::archive::archive(&data, &out, progress) {
                Ok(summary) => {
                    eprintln!();
                    println!(
                        "archived {} partitions, {} files, {} bytes into {} in {:.1} s",
                        summary.partitions,
                        summary.files,
                        summary.bytes,
                        out.display(),
                        started.elapsed().as_secs_f64()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("\ndynamo-node archive: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Restore { archive, data } => match dynamo_node::archive::restore(&archive, &data) {
            Ok(summary) => {
                println!(
                    "restored {} partitions, {} files, {} bytes into {}; start the node on it: it repairs every partition from its peers first",
                    summary.partitions,
                    summary.files,
                    summary.bytes,
                    data.display()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("dynamo-node restore: {error}");
                ExitCode::from(2)
            }
        },
        Command::Dump { partition_dir, raw } => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let describe: &dyn Fn(&[u8]) -> String = if raw {
                &|payload: &[u8]| format!("payload=base64:{}", base64url_encode(payload))
            } else {
                &describe_siblings
            };
            let dumped = if dynamo_node::storage::is_log(&partition_dir) {
                dynamo_node::storage::dump_log(&partition_dir, &mut out, describe)
            } else {
                dump_partition(&partition_dir, &mut out, describe)
            };
            match dumped {
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
