//! Partition transfers (a membership change moves partitions as files,
//! Dynamo §6.2 strategy 3): the gaining node opens a peer connection of
//! its own to a current replica (the same handshake as every peer
//! connection), asks for the partition ([`Transfer::Ask`], listing what it
//! already holds of each file), and the source streams every file of a
//! consistent snapshot of the partition — the snapshot archival takes — in
//! chunks, each file followed by the SHA-256 of all its bytes.
//!
//! - **Bulk.** Files go as they are, 1 MiB per frame, read on a blocking
//!   thread at the source and written on one at the destination; the
//!   source waits while the connection's backlog is full, so a slow
//!   receiver slows the reads rather than filling memory.
//! - **Checksummed.** The receiver hashes each whole file (the prefix it
//!   had, then what arrived) and compares; a mismatch deletes the file and
//!   fails the attempt.
//! - **Resumable.** Files arrive in `DATA/incoming/<partition>-from-<node>`;
//!   a new attempt from the same source lists what is there, and the
//!   source sends each segment from where that copy ends (segments are
//!   append-only, and the checksum covers the whole file, so a wrong prefix
//!   is caught). A different source starts over: its files are its own.
//!
//! - **Paced, if asked.** `DYNAMO_TRANSFER_BYTES_PER_S` in a source's
//!   environment caps what it sends per second (unset: as fast as the
//!   disks and the loopback go). Tests use it to be sure to kill a node in
//!   the middle of a transfer.
//!
//! Once every file is there and synced, the engine adopts the directory as
//! the partition ([`Engine::adopt`]) and the node catches up through
//! anti-entropy (see `dynamo_core::protocol` `membership.rs`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::auth::PeerAuth;
use super::connections::{connect_peer, Outbox};
use super::core::Input;
use crate::archive::take_partition;
use crate::storage::partition::partition_dir;
use crate::storage::Engine;
use dynamo_core::ids::{NodeId, PartitionId};
use dynamo_core::merkle::Tree;
use dynamo_core::wire::{decode_frame, encode_frame, Frame, Transfer};

/// Bytes per chunk frame.
const CHUNK_BYTES: usize = 1 << 20;
/// A transfer that receives nothing for this long is given up (and tried
/// again).
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Between attempts when every source failed.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Partitions a node receives at once: a join under Q = 256 gains about
/// 190 partitions, and each stream holds a connection, a blocking thread
/// and its buffers. Measured under the cart (`membership-move.toml`, 6
/// partitions, 268 MB): all at once moved them in 1.0 s with the cart's
/// p99.9 during the move at 7.4, 10.4 and once 118.7 ms; one at a time in
/// 1.5–2.0 s at 8.1 and 9.3 ms. A few at once keeps most of the speed.
pub(super) const FETCHES_AT_ONCE: usize = 4;

/// A partition fetched and adopted, for the core.
pub(super) struct Fetched {
    /// The partition.
    pub partition: PartitionId,
    /// Its tree, when the files were adopted; `None` when the node had the
    /// partition already (anti-entropy brings what it lacks).
    pub tree: Option<Tree>,
    /// Where the files came from, bytes received, and how long it took.
    pub report: Option<TransferReport>,
}

/// One completed transfer, as `client stats` shows it.
#[derive(Clone, Debug)]
pub(super) struct TransferReport {
    pub partition: PartitionId,
    pub source: NodeId,
    pub bytes: u64,
    pub resumed_from: u64,
    pub files: usize,
    pub elapsed: Duration,
}

/// Where a transfer from `source` of `partition` lands.
fn staging_dir(data_dir: &Path, partition: PartitionId, source: NodeId) -> PathBuf {
    data_dir
        .join("incoming")
        .join(format!("{}-from-{}", partition.0, source.0))
}

// ---------------------------------------------------------------- source

/// Serves one [`Transfer::Ask`] on the connection `respond` answers on:
/// run on a blocking thread.
pub(super) fn serve(
    runtime: tokio::runtime::Handle,
    data_dir: &Path,
    partition: PartitionId,
    have: Vec<(String, u64)>,
    respond: Outbox,
) {
    let send = |frame: Transfer| -> bool {
        runtime.block_on(async {
            respond.wait_for_room().await;
            respond.send(Frame::Transfer(frame)).await
        })
    };
    if let Err(reason) = serve_files(data_dir, partition, &have, &send) {
        log::warn!("sending partition {}: {reason}", partition.0);
        send(Transfer::Failed(reason));
    }
}

fn serve_files(
    data_dir: &Path,
    partition: PartitionId,
    have: &[(String, u64)],
    send: &dyn Fn(Transfer) -> bool,
) -> Result<(), String> {
    let have: BTreeMap<&str, u64> = have.iter().map(|(name, len)| (name.as_str(), *len)).collect();
    let dir = partition_dir(&data_dir.join("partitions"), partition);
    let taken = if dir.exists() {
        take_partition(data_dir, &dir).map_err(|error| error.to_string())?
    } else {
        Vec::new()
    };
    let pace: Option<f64> = std::env::var("DYNAMO_TRANSFER_BYTES_PER_S")
        .ok()
        .and_then(|text| text.parse::<f64>().ok())
        .filter(|rate| *rate > 0.0);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut buffer = vec![0u8; if pace.is_some() { 64 * 1024 } else { CHUNK_BYTES }];
    for file in &taken {
        let name = file.file_name().to_string();
        let len = file.len();
        // Segments are append-only: a copy no longer than ours is a prefix.
        let from = match have.get(name.as_str()) {
            Some(&held) if held <= len && name.ends_with(".seg") => held,
            _ => 0,
        };
        let mut hasher = Sha256::new();
        let mut offset = 0;
        while offset < len {
            let read = file
                .read_at(offset, &mut buffer)
                .map_err(|error| format!("{name}: {error}"))?;
            if read == 0 {
                return Err(format!("{name} shrank under the snapshot"));
            }
            hasher.update(&buffer[..read]);
            if offset == 0
                && !send(Transfer::File {
                    name: name.clone(),
                    len,
                    from,
                })
            {
                return Ok(()); // the receiver went away
            }
            if offset + read as u64 > from {
                let start = from.saturating_sub(offset) as usize;
                if !send(Transfer::Chunk(buffer[start..read].to_vec())) {
                    return Ok(());
                }
                sent += (read - start) as u64;
                if let Some(rate) = pace {
                    let due = Duration::from_secs_f64(sent as f64 / rate);
                    std::thread::sleep(due.saturating_sub(started.elapsed()));
                }
            }
            offset += read as u64;
        }
        if len == 0
            && !send(Transfer::File {
                name: name.clone(),
                len,
                from,
            })
        {
            return Ok(());
        }
        if !send(Transfer::FileEnd {
            sha256: hasher.finalize().into(),
        }) {
            return Ok(());
        }
    }
    send(Transfer::Done);
    Ok(())
}

// ---------------------------------------------------------- destination

/// Fetches `partition` from the first of `sources` that serves it (trying
/// them in turn until one does), adopts it into `engine`, and tells the
/// core. Gives up only when the core is gone.
pub(super) async fn fetch(
    partition: PartitionId,
    sources: Vec<(NodeId, SocketAddr)>,
    auth: Arc<PeerAuth>,
    data_dir: PathBuf,
    engine: Arc<Engine>,
    core: mpsc::Sender<Input>,
    slots: Arc<tokio::sync::Semaphore>,
) {
    let Ok(_slot) = slots.acquire_owned().await else {
        return;
    };
    let mut round = 0usize;
    loop {
        for &(source, addr) in &sources {
            let Some(stream) = connect_peer(addr, source, &auth).await else {
                log::info!("partition {}: {source} at {addr} is unreachable", partition.0);
                continue;
            };
            let stream = match stream.into_std().and_then(|stream| {
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(STALL_TIMEOUT))?;
                Ok(stream)
            }) {
                Ok(stream) => stream,
                Err(error) => {
                    log::warn!("partition {}: {error}", partition.0);
                    continue;
                }
            };
            let staging = staging_dir(&data_dir, partition, source);
            let engine = Arc::clone(&engine);
            let outcome =
                tokio::task::spawn_blocking(move || receive_and_adopt(stream, &staging, partition, source, &engine))
                    .await;
            match outcome {
                Ok(Ok(fetched)) => {
                    let _ = core.send(Input::Fetched(fetched)).await;
                    return;
                }
                Ok(Err(reason)) => log::warn!("partition {} from {source}: {reason}", partition.0),
                Err(error) => log::error!(
                    "partition {} from {source}: the transfer thread failed: {error}",
                    partition.0
                ),
            }
        }
        round += 1;
        if core.is_closed() {
            return;
        }
        if round % 10 == 1 {
            log::warn!(
                "partition {}: no source served it ({} tried); trying again",
                partition.0,
                sources.len()
            );
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Receives the files into `staging`, syncs them, adopts them, and builds
/// the partition's tree.
fn receive_and_adopt(
    stream: TcpStream,
    staging: &Path,
    partition: PartitionId,
    source: NodeId,
    engine: &Engine,
) -> Result<Fetched, String> {
    let started = Instant::now();
    // Another source's leftovers are of no use with this one.
    if let Some(parent) = staging.parent() {
        if let Ok(entries) = std::fs::read_dir(parent) {
            let prefix = format!("{}-from-", partition.0);
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&prefix) && path != staging {
                    let _ = std::fs::remove_dir_all(&path);
                }
            }
        }
    }
    crate::data_dir::create_durably(staging).map_err(|error| format!("{}: {error}", staging.display()))?;
    let (bytes, resumed_from, files) = receive(stream, staging, partition)?;
    let adopted = engine
        .adopt(partition, staging)
        .map_err(|error| format!("adopting the files: {error}"))?;
    if !adopted {
        let _ = std::fs::remove_dir_all(staging);
        return Ok(Fetched {
            partition,
            tree: None,
            report: None,
        });
    }
    let tree = super::core::partition_tree(engine, partition).0;
    let report = TransferReport {
        partition,
        source,
        bytes,
        resumed_from,
        files,
        elapsed: started.elapsed(),
    };
    log::info!(
        "partition {}: {} files, {} bytes from {source} ({} kept from an earlier attempt) in {:.2} s ({:.1} MB/s), {} keys",
        partition.0,
        files,
        bytes,
        resumed_from,
        report.elapsed.as_secs_f64(),
        bytes as f64 / 1e6 / report.elapsed.as_secs_f64().max(1e-9),
        tree.len()
    );
    Ok(Fetched {
        partition,
        tree: Some(tree),
        report: Some(report),
    })
}

/// The file being received.
struct Receiving {
    name: String,
    file: File,
    len: u64,
    written: u64,
    hasher: Sha256,
}

/// Asks for the partition and writes what comes into `staging`; the bytes
/// received, the bytes kept from an earlier attempt, and the files the
/// snapshot had.
fn receive(mut stream: TcpStream, staging: &Path, partition: PartitionId) -> Result<(u64, u64, usize), String> {
    let io = |what: &Path| {
        let what = what.display().to_string();
        move |error: std::io::Error| format!("{what}: {error}")
    };
    let mut have = Vec::new();
    for entry in std::fs::read_dir(staging).map_err(io(staging))?.filter_map(Result::ok) {
        let len = entry.metadata().map_err(io(&entry.path()))?.len();
        have.push((entry.file_name().to_string_lossy().into_owned(), len));
    }
    let mut bytes = Vec::new();
    encode_frame(&Frame::Transfer(Transfer::Ask { partition, have }), &mut bytes);
    stream.write_all(&bytes).map_err(|error| format!("asking: {error}"))?;
    let mut buffer: Vec<u8> = Vec::with_capacity(2 * CHUNK_BYTES);
    let mut current: Option<Receiving> = None;
    let mut listed: Vec<String> = Vec::new();
    let mut received = 0u64;
    let mut kept = 0u64;
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        while let Some((frame, used)) = decode_frame(&buffer).map_err(|error| error.to_string())? {
            buffer.drain(..used);
            let Frame::Transfer(transfer) = frame else {
                return Err(format!("expected a transfer frame, got {frame:?}"));
            };
            match transfer {
                Transfer::File { name, len, from } => {
                    let path = staging.join(&name);
                    let mut file = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(&path)
                        .map_err(io(&path))?;
                    let held = file.metadata().map_err(io(&path))?.len();
                    if from > held || from > len {
                        return Err(format!(
                            "{name}: the source resumes at {from}, but {held} bytes are here"
                        ));
                    }
                    file.set_len(from).map_err(io(&path))?;
                    kept += from;
                    let mut hasher = Sha256::new();
                    let mut prefix = (&file).take(from);
                    std::io::copy(&mut prefix, &mut hasher).map_err(io(&path))?;
                    file.seek(SeekFrom::Start(from)).map_err(io(&path))?;
                    current = Some(Receiving {
                        name,
                        file,
                        len,
                        written: from,
                        hasher,
                    });
                }
                Transfer::Chunk(data) => {
                    let receiving = current.as_mut().ok_or("a chunk outside a file")?;
                    if receiving.written + data.len() as u64 > receiving.len {
                        return Err(format!("{}: more bytes than its length", receiving.name));
                    }
                    receiving
                        .file
                        .write_all(&data)
                        .map_err(|error| format!("{}: {error}", receiving.name))?;
                    receiving.hasher.update(&data);
                    receiving.written += data.len() as u64;
                    received += data.len() as u64;
                }
                Transfer::FileEnd { sha256 } => {
                    let receiving = current.take().ok_or("a file end outside a file")?;
                    let path = staging.join(&receiving.name);
                    let got: [u8; 32] = receiving.hasher.finalize().into();
                    if receiving.written != receiving.len || got != sha256 {
                        let _ = std::fs::remove_file(&path);
                        return Err(format!(
                            "{}: checksum mismatch ({} of {} bytes): the copy was deleted",
                            receiving.name, receiving.written, receiving.len
                        ));
                    }
                    receiving.file.sync_all().map_err(io(&path))?;
                    listed.push(receiving.name);
                }
                Transfer::Done => {
                    if current.is_some() {
                        return Err("the transfer ended inside a file".into());
                    }
                    // Files the snapshot no longer has (compacted away).
                    for entry in std::fs::read_dir(staging).map_err(io(staging))?.filter_map(Result::ok) {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if !listed.contains(&name) {
                            std::fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
                        }
                    }
                    File::open(staging)
                        .and_then(|dir| dir.sync_all())
                        .map_err(io(staging))?;
                    return Ok((received, kept, listed.len()));
                }
                Transfer::Failed(reason) => return Err(format!("the source failed: {reason}")),
                Transfer::Ask { .. } => return Err("an ask from the source".into()),
            }
        }
        let read = stream.read(&mut chunk).map_err(|error| format!("receiving: {error}"))?;
        if read == 0 {
            return Err("the source closed the connection".into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}
