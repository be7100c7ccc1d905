//! Storage engine benchmark: `cargo bench -p dynamo-node --bench storage`.
//!
//! Measures, with 1 KiB values:
//! - appends per second with sync `none` and `always` at 1, 16 and 64
//!   concurrent writers, into one partition and spread over 16: once with
//!   one OS thread per writer doing blocking puts (`appends`), once with one
//!   thread keeping that many writes in flight through the callback API,
//!   as the node's async server does (`pipelined`);
//! - random reads per second (1 and 2 reader threads) over a preloaded
//!   partition;
//! - recovery time of a partition holding 1 GiB (warm page cache);
//! - commit log replay (up to 512 MiB of log, warm cache), with the
//!   partition files whole and with them lost;
//! - this machine's own limits, in the same sitting (`machine`): one writer
//!   appending with `pwrite` + `fdatasync` per write at 1 and 4 KiB (what
//!   `fio --rw=write --ioengine=psync --fdatasync=1 --fallocate=none`
//!   measures), buffered 64 KiB sequential writes, and 4 KiB overwrites
//!   of a zero-filled file + `fdatasync`, buffered and `O_DIRECT` (the
//!   commit log's write);
//!
//! and ends with the targets beside what this run measured.
//!
//! Flags (after `--`): `--seconds S` per append/read measurement (default 3),
//! `--recovery-mib M` (default 1024), `--only machine|appends|pipelined|reads|recovery|replay` (or several, comma-separated), `--io auto|uring|positioned`;
//! `--sync none|always`, `--partitions P`, `--writers W` keep only those rows of the append tables.
//! Files go under the cargo target directory (same disk as the project).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dynamo_core::PartitionId;
use dynamo_node::storage::{Engine, IoMode, StorageConfig, SyncPolicy};

const VALUE_BYTES: usize = 1024;

struct Options {
    seconds: f64,
    recovery_mib: u64,
    only: Option<String>,
    io: IoMode,
    sync: Option<String>,
    partitions: Option<u64>,
    writers: Option<u64>,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 3.0,
        recovery_mib: 1024,
        only: None,
        io: IoMode::Auto,
        sync: None,
        partitions: None,
        writers: None,
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--seconds" => {
                options.seconds = arguments
                    .next()
                    .and_then(|text| text.parse().ok())
                    .expect("--seconds S")
            }
            "--recovery-mib" => {
                options.recovery_mib = arguments
                    .next()
                    .and_then(|text| text.parse().ok())
                    .expect("--recovery-mib M")
            }
            "--only" => options.only = arguments.next(),
            "--sync" => options.sync = arguments.next(),
            "--partitions" => options.partitions = arguments.next().and_then(|text| text.parse().ok()),
            "--writers" => options.writers = arguments.next().and_then(|text| text.parse().ok()),
            "--io" => {
                options.io = match arguments.next().as_deref() {
                    Some("uring") => IoMode::Uring,
                    Some("positioned") => IoMode::Positioned,
                    _ => IoMode::Auto,
                }
            }
            "--bench" => {}
            other => eprintln!("ignoring argument {other:?}"),
        }
    }
    options
}

fn scratch(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    path
}

fn open(dir: &Path, sync: SyncPolicy, io: IoMode) -> Engine {
    Engine::open(
        dir,
        StorageConfig {
            sync,
            io,
            ..StorageConfig::default()
        },
    )
    .expect("open")
}

fn value(index: u64) -> Vec<u8> {
    let mut value = vec![b'x'; VALUE_BYTES];
    let tag = index.to_le_bytes();
    value[..8].copy_from_slice(&tag);
    value
}

/// Runs `writers` threads doing blocking puts for `seconds`; returns
/// (appends per second, p50 µs, p99 µs).
fn appends(sync: SyncPolicy, writers: u64, partitions: u64, seconds: f64) -> (f64, f64, f64) {
    let dir = scratch("appends");
    let engine = Arc::new(open(&dir, sync, IoMode::Auto));
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|writer| {
            let (engine, stop, total) = (Arc::clone(&engine), Arc::clone(&stop), Arc::clone(&total));
            std::thread::spawn(move || {
                let mut latencies_ns = Vec::with_capacity(1 << 16);
                let mut index = 0u64;
                let payload = value(writer);
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{writer}-{index}");
                    let partition = PartitionId(((writer + index) % partitions) as u32);
                    let begin = Instant::now();
                    engine.put(partition, key.as_bytes(), &payload).expect("put");
                    latencies_ns.push(begin.elapsed().as_nanos() as u64);
                    index += 1;
                }
                total.fetch_add(index, Ordering::Relaxed);
                latencies_ns
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<u64> = threads
        .into_iter()
        .flat_map(|thread| thread.join().expect("writer"))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort_unstable();
    let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    (
        total.load(Ordering::Relaxed) as f64 / elapsed,
        percentile(0.50),
        percentile(0.99),
    )
}

/// One submitting thread keeps `in_flight` writes outstanding through the
/// callback API (as the node's server does with its async tasks); returns
/// (appends per second, p50 µs, p99 µs), latency from submit to ack.
fn appends_pipelined(sync: SyncPolicy, io: IoMode, in_flight: u64, partitions: u64, seconds: f64) -> (f64, f64, f64) {
    let dir = scratch("pipelined");
    let engine = open(&dir, sync, io);
    // The outcome travels to this thread: a panic in the callback would be
    // on the storage thread, and this loop would wait for its ack forever.
    let (acks, acked) = std::sync::mpsc::channel::<Result<u64, String>>();
    let payload = value(7);
    let started = Instant::now();
    let deadline = Duration::from_secs_f64(seconds);
    let mut latencies = Vec::with_capacity(1 << 20);
    let mut submitted = 0u64;
    let submit = |index: u64| {
        let key = format!("k{index}");
        let acks = acks.clone();
        let begin = Instant::now();
        engine
            .submit(
                PartitionId((index % partitions) as u32),
                key.into_bytes(),
                Some(payload.clone()),
                Box::new(move |result| {
                    let _ = acks.send(
                        result
                            .map(|()| begin.elapsed().as_nanos() as u64)
                            .map_err(|error| error.to_string()),
                    );
                }),
            )
            .expect("submit");
    };
    while submitted < in_flight {
        submit(submitted);
        submitted += 1;
    }
    while started.elapsed() < deadline {
        latencies.push(acked.recv().expect("ack").expect("write"));
        submit(submitted);
        submitted += 1;
    }
    for _ in 0..in_flight {
        latencies.push(acked.recv().expect("ack").expect("write"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
    latencies.sort_unstable();
    let percentile = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    (submitted as f64 / elapsed, percentile(0.50), percentile(0.99))
}

fn reads(seconds: f64) {
    let dir = scratch("reads");
    let keys = 200_000u64;
    let engine = Arc::new(open(&dir, SyncPolicy::None, IoMode::Auto));
    let loaders: Vec<_> = (0..64u64)
        .map(|loader| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for index in (loader..keys).step_by(64) {
                    engine
                        .put(PartitionId(0), format!("k{index}").as_bytes(), &value(index))
                        .expect("put");
                }
            })
        })
        .collect();
    for loader in loaders {
        loader.join().expect("loader");
    }
    for threads in [1u64, 2] {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let readers: Vec<_> = (0..threads)
            .map(|reader| {
                let (engine, stop) = (Arc::clone(&engine), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ reader;
                    let mut count = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let index = state % keys;
                        let got = engine.get(PartitionId(0), format!("k{index}").as_bytes()).expect("get");
                        assert_eq!(got.as_deref().map(|bytes| &bytes[..8]), Some(&index.to_le_bytes()[..]));
                        count += 1;
                    }
                    count
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        let count: u64 = readers.into_iter().map(|reader| reader.join().expect("reader")).sum();
        let rate = count as f64 / started.elapsed().as_secs_f64();
        println!("random reads, 1 KiB, {keys} keys, {threads} thread(s): {rate:>10.0} reads/s");
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

/// This machine's limits, measured without the engine.
struct Machine {
    /// Appends of 1 KiB, one writer, `fdatasync` after each: per second.
    sync_1k: f64,
    /// The same with 4 KiB.
    sync_4k: f64,
    /// Buffered sequential writes of 64 KiB, no sync: bytes per second.
    buffered: f64,
}

/// One writer appending `block`-byte writes to a fresh file for `seconds`,
/// `fdatasync` after each when `sync`; returns (writes/s, bytes/s).
fn raw_appends(block: usize, sync: bool, seconds: f64) -> (f64, f64) {
    use std::os::unix::fs::FileExt;
    let dir = scratch("machine");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = std::fs::File::create(dir.join("appends")).expect("create");
    let bytes = vec![0x5au8; block];
    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        file.write_all_at(&bytes, writes * block as u64).expect("write");
        if sync {
            file.sync_data().expect("fdatasync");
        }
        writes += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_dir_all(&dir);
    (writes as f64 / elapsed, (writes * block as u64) as f64 / elapsed)
}

/// One writer overwriting a zero-filled (written and synced) 64 MiB file
/// in 4 KiB blocks for `seconds`, `fdatasync` after each, with `O_DIRECT`
/// or buffered: the commit log's write (issue #18: an overwrite of
/// allocated blocks commits no metadata). Writes per second.
fn raw_overwrites(direct: bool, seconds: f64) -> f64 {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const BYTES: u64 = 64 << 20;
    let dir = scratch("machine-overwrite");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("zeros");
    {
        let file = std::fs::File::create(&path).expect("create");
        let zeros = vec![0u8; 1 << 20];
        for offset in (0..BYTES).step_by(zeros.len()) {
            file.write_all_at(&zeros, offset).expect("zero-fill");
        }
        file.sync_all().expect("sync");
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(if direct { libc::O_DIRECT } else { 0 })
        .open(&path)
        .expect("open");
    let layout = std::alloc::Layout::from_size_align(4096, 4096).expect("layout");
    // SAFETY: a non-zero layout; freed below with the same layout.
    let block = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!block.is_null(), "allocation");
    // SAFETY: 4096 bytes from `block`, allocated above and zeroed.
    let bytes = unsafe { std::slice::from_raw_parts(block, 4096) };
    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed().as_secs_f64() < seconds && (writes + 1) * 4096 <= BYTES {
        file.write_all_at(bytes, writes * 4096).expect("overwrite");
        file.sync_data().expect("fdatasync");
        writes += 1;
    }
    let rate = writes as f64 / started.elapsed().as_secs_f64();
    // SAFETY: allocated above with this layout; `bytes` is not used again.
    unsafe { std::alloc::dealloc(block, layout) };
    drop(file);
    let _ = std::fs::remove_dir_all(&dir);
    rate
}

fn machine(seconds: f64) -> Machine {
    let (sync_1k, _) = raw_appends(1024, true, seconds);
    let (sync_4k, _) = raw_appends(4096, true, seconds);
    let overwrite = raw_overwrites(false, seconds);
    let overwrite_direct = raw_overwrites(true, seconds);
    // Long enough to leave the first burst into an empty page cache.
    let (_, buffered) = raw_appends(64 * 1024, false, seconds);
    println!("this machine, same sitting (no engine; one writer appending to a fresh file):");
    println!("  pwrite 1 KiB + fdatasync: {sync_1k:>10.0} writes/s");
    println!("  pwrite 4 KiB + fdatasync: {sync_4k:>10.0} writes/s");
    println!("  pwrite 64 KiB, buffered:  {:>10.2} GB/s", buffered / 1e9);
    println!("and overwriting a zero-filled file (the commit log's write):");
    println!(
        "  4 KiB + fdatasync:        {overwrite:>10.0} writes/s ({:.1}x the append)",
        overwrite / sync_4k
    );
    println!(
        "  4 KiB O_DIRECT + fdatasync:{overwrite_direct:>9.0} writes/s ({:.1}x the append)",
        overwrite_direct / sync_4k
    );
    Machine {
        sync_1k,
        sync_4k,
        buffered,
    }
}

/// Writes `records` records (`key-<index>`, 1 KiB) from 64 threads doing
/// blocking puts, spread over `partitions`; closes the engine.
fn fill(engine: Engine, records: u64, partitions: u64) {
    let engine = Arc::new(engine);
    let writers: Vec<_> = (0..64u64)
        .map(|writer| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                let payload = value(writer);
                for index in (writer..records).step_by(64) {
                    let partition = PartitionId((index % partitions) as u32);
                    engine
                        .put(partition, format!("key-{index:012}").as_bytes(), &payload)
                        .expect("put");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
}

fn recovery(mib: u64) -> f64 {
    let dir = scratch("recovery");
    let records = mib * 1024 * 1024 / (VALUE_BYTES as u64 + 32);
    let write_started = Instant::now();
    {
        fill(open(&dir, SyncPolicy::None, IoMode::Auto), records, 1);
    }
    let written = write_started.elapsed();
    let bytes: u64 = std::fs::read_dir(dir.join("p00000"))
        .expect("partition dir")
        .map(|entry| entry.expect("entry").metadata().expect("metadata").len())
        .sum();
    // Warm the cache the way a restart right after a stop finds it.
    for entry in std::fs::read_dir(dir.join("p00000")).expect("partition dir") {
        let _ = std::fs::read(entry.expect("entry").path());
    }
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let engine = Engine::open(&dir, StorageConfig::default()).expect("reopen");
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(engine.stats()[0].keys, records);
        best = best.min(elapsed);
        engine.close();
    }
    println!(
        "recovery: {records} records, {:.0} MiB in {} segments, written in {:.1}s; open (warm cache, best of 3) {:.3}s = {:.2} GB/s",
        bytes as f64 / 1048576.0,
        bytes.div_ceil(dynamo_node::limits::SEGMENT_BYTES_DEFAULT),
        written.as_secs_f64(),
        best,
        bytes as f64 / best / 1e9
    );
    let _ = std::fs::remove_dir_all(&dir);
    bytes as f64 / best
}

/// Copies every file of `from` into `to` (a flat directory).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy target");
    for entry in std::fs::read_dir(from).expect("copy source") {
        let entry = entry.expect("entry");
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
        }
    }
}

/// Commit log replay (issue #18): `mib` MiB written under `always` by 64
/// threads over 16 partitions into one log segment, the engine closed,
/// then opened again twice with the log's checkpoint taken away: once with
/// the partition files as they are (every record is found there already:
/// the log is read and verified), once with the partition files gone (as
/// if a power cut lost every write since the checkpoint: every record is
/// applied again). Returns both rates, log bytes per second.
fn replay(mib: u64) -> (f64, f64) {
    let dir = scratch("replay");
    let records = mib * 1024 * 1024 / (VALUE_BYTES as u64 + 64);
    let config = StorageConfig {
        sync: SyncPolicy::Always,
        log_segment_bytes: (mib + 64) * 1024 * 1024,
        ..StorageConfig::default()
    };
    {
        fill(Engine::open(&dir, config.clone()).expect("open"), records, 16);
    }
    let log = dir.join("log");
    let saved = scratch("replay-log");
    copy_dir(&log, &saved);
    let timed = |what: &str, wipe_partitions: bool| -> f64 {
        if wipe_partitions {
            for entry in std::fs::read_dir(&dir).expect("data dir").flatten() {
                if entry.file_name().to_string_lossy().starts_with('p') {
                    std::fs::remove_dir_all(entry.path()).expect("wipe partition");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&log);
        copy_dir(&saved, &log);
        let _ = std::fs::remove_file(log.join("CHECKPOINT"));
        // Warm, as a restart right after a stop finds it.
        for entry in std::fs::read_dir(&log).expect("log dir").flatten() {
            let _ = std::fs::read(entry.path());
        }
        let started = Instant::now();
        let engine = Engine::open(&dir, config.clone()).expect("reopen");
        let opened = started.elapsed().as_secs_f64();
        let replayed = engine.replayed().clone();
        let keys: u64 = engine.stats().iter().map(|stats| stats.keys).sum();
        assert_eq!(keys, records, "{what}: every record back");
        engine.close();
        println!(
            "log replay, {what}: {:.0} MiB of log, {} batches, {} records applied, in {:.3}s = {:.2} GB/s (the whole open: {opened:.3}s)",
            replayed.bytes as f64 / 1048576.0,
            replayed.batches,
            replayed.applied,
            replayed.seconds,
            replayed.bytes as f64 / replayed.seconds / 1e9
        );
        replayed.bytes as f64 / replayed.seconds
    };
    let verified = timed("partition files whole (read and verify)", false);
    let applied = timed("partition files lost (every record applied again)", true);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&saved);
    (verified, applied)
}

/// What one run measured, for the closing comparison with the targets.
#[derive(Default)]
struct Measured {
    machine: Option<Machine>,
    /// (sync, partitions, in flight) → appends/s, pipelined.
    pipelined: Vec<(SyncPolicy, u64, u64, f64)>,
    recovery: Option<f64>,
    replay: Option<(f64, f64)>,
}

impl Measured {
    fn best(&self, sync: SyncPolicy, in_flight: u64) -> Option<(f64, u64)> {
        self.pipelined
            .iter()
            .filter(|row| row.0 == sync && row.2 == in_flight)
            .map(|row| (row.3, row.1))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    fn report(&self) {
        let verdict = |met: bool| if met { "met" } else { "NOT met" };
        let mut lines = Vec::new();
        // Issue #18: each partition count on its own (a group commit that
        // touches many partitions is one commit-log write and sync).
        for (sync_row, partitions, in_flight, rate) in &self.pipelined {
            let (SyncPolicy::Always, 64, Some(machine)) = (sync_row, in_flight, &self.machine) else {
                continue;
            };
            let ratio = rate / machine.sync_4k;
            lines.push(format!(
                "sync always, {partitions} partition(s), 64 in flight: {rate:.0}/s = {ratio:.1}x one writer's 4 KiB append+fdatasync rate ({:.0}/s; {:.1}x the 1 KiB rate); target >= 20x: {}",
                machine.sync_4k,
                rate / machine.sync_1k,
                verdict(ratio >= 20.0)
            ));
        }
        if let (Some((many, _)), Some((one, _))) = (self.best(SyncPolicy::Always, 64), self.best(SyncPolicy::Always, 1))
        {
            lines.push(format!(
                "sync always, group commit: 64 in flight = {:.1}x the engine's own single-writer rate ({one:.0}/s)",
                many / one
            ));
        }
        if let Some((rate, partitions)) = self.best(SyncPolicy::None, 64) {
            lines.push(format!(
                "sync none, 64 in flight: {rate:.0}/s ({partitions} partition(s)); target >= 250000: {}",
                verdict(rate >= 250_000.0)
            ));
        }
        let beside = self
            .machine
            .as_ref()
            .map(|machine| format!(" (buffered writes here: {:.2} GB/s)", machine.buffered / 1e9))
            .unwrap_or_default();
        if let Some(rate) = self.recovery {
            lines.push(format!(
                "recovery, warm cache: {:.2} GB/s{beside}; target >= 1 GB/s: {}",
                rate / 1e9,
                verdict(rate >= 1e9)
            ));
        }
        if let Some((verified, applied)) = self.replay {
            lines.push(format!(
                "commit log replay, warm cache, partition files whole (after a process crash): {:.2} GB/s; target >= 1 GB/s: {}",
                verified / 1e9,
                verdict(verified >= 1e9)
            ));
            lines.push(format!(
                "commit log replay, warm cache, partition files lost (a power cut: every record written again, direct, and synced): {:.2} GB/s; target >= 1 GB/s: {}",
                applied / 1e9,
                verdict(applied >= 1e9)
            ));
        }
        if !lines.is_empty() {
            println!("targets (issues #2 and #18), this run:");
            for line in lines {
                println!("  {line}");
            }
        }
    }
}

fn main() {
    dynamo_node::logging::init();
    let options = options();
    let wants = |what: &str| {
        options
            .only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|one| one == what))
    };
    let mut measured = Measured::default();
    if wants("machine") {
        measured.machine = Some(machine(options.seconds));
    }
    let row = |sync: SyncPolicy, partitions: u64, writers: u64| {
        options.sync.as_deref().is_none_or(|only| only == sync.to_string())
            && options.partitions.is_none_or(|only| only == partitions)
            && options.writers.is_none_or(|only| only == writers)
    };
    if wants("appends") {
        println!("appends, 1 KiB values, blocking puts (one thread per writer):");
        println!(
            "{:<8} {:>10} {:>8} {:>14} {:>10} {:>10}",
            "sync", "partitions", "writers", "appends/s", "p50 µs", "p99 µs"
        );
        for sync in [SyncPolicy::None, SyncPolicy::Always] {
            for partitions in [1u64, 16] {
                for writers in [1u64, 16, 64] {
                    if !row(sync, partitions, writers) {
                        continue;
                    }
                    let (rate, p50, p99) = appends(sync, writers, partitions, options.seconds);
                    println!(
                        "{:<8} {partitions:>10} {writers:>8} {rate:>14.0} {p50:>10.1} {p99:>10.1}",
                        sync.to_string()
                    );
                }
            }
        }
    }
    if wants("pipelined") {
        println!("appends, 1 KiB values, one thread keeping N writes in flight (submit + callback):");
        println!(
            "{:<8} {:>10} {:>8} {:>14} {:>10} {:>10}",
            "sync", "partitions", "in-flight", "appends/s", "p50 µs", "p99 µs"
        );
        for sync in [SyncPolicy::None, SyncPolicy::Always] {
            for partitions in [1u64, 16] {
                for in_flight in [1u64, 16, 64] {
                    if !row(sync, partitions, in_flight) {
                        continue;
                    }
                    let (rate, p50, p99) = appends_pipelined(sync, options.io, in_flight, partitions, options.seconds);
                    measured.pipelined.push((sync, partitions, in_flight, rate));
                    println!(
                        "{:<8} {partitions:>10} {in_flight:>8} {rate:>14.0} {p50:>10.1} {p99:>10.1}",
                        sync.to_string()
                    );
                }
            }
        }
    }
    if wants("reads") {
        reads(options.seconds);
    }
    if wants("recovery") {
        measured.recovery = Some(recovery(options.recovery_mib));
    }
    if wants("replay") {
        measured.replay = Some(replay(options.recovery_mib.min(512)));
    }
    measured.report();
}
