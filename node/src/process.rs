//! A process's use of its machine, read from Linux's `/proc`: resident
//! memory, open file descriptors, threads and CPU time; and the disk
//! space a directory takes. A node reports its own in its stats
//! ([`dynamo_core::admin::ProcessFigures`]); `dynamo-bench` reads the
//! local nodes' CPU the same way. Where `/proc` says nothing (another
//! platform, a process gone) the figure is absent or zero, never a guess.

use std::path::Path;
use std::time::Duration;

use dynamo_core::admin::ProcessFigures;

/// `/proc/<pid>` or `/proc/self`.
fn proc_dir(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}"),
        None => "/proc/self".to_string(),
    }
}

/// CPU time (user + system) a process has used.
pub fn cpu(pid: Option<u32>) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("{}/stat", proc_dir(pid))).ok()?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf reads a constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| Duration::from_secs_f64((utime + stime) as f64 / ticks as f64))
}

/// Resident memory, bytes.
fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("{}/statm", proc_dir(pid))).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as u64)
}

/// Bytes this process holds allocated from the allocator (in use in its
/// arenas plus its own mappings), from glibc's `mallinfo2`.
fn heap_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let info = unsafe { libc::mallinfo2() };
        Some((info.uordblks + info.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Threads, from `status`.
fn threads(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("{}/status", proc_dir(pid))).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
}

/// Open file descriptors: all of them, those on files under `data_dir`,
/// and sockets. A descriptor closed while it is read is not counted.
fn open_fds(pid: Option<u32>, data_dir: &Path) -> Option<(u64, u64, u64)> {
    let data_dir = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
    let (mut all, mut data, mut sockets) = (0, 0, 0);
    for entry in std::fs::read_dir(format!("{}/fd", proc_dir(pid)))
        .ok()?
        .filter_map(Result::ok)
    {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        all += 1;
        if target.starts_with(&data_dir) {
            data += 1;
        } else if target.to_str().is_some_and(|target| target.starts_with("socket:")) {
            sockets += 1;
        }
    }
    Some((all, data, sockets))
}

/// The disk space the files under `dir` take (allocated blocks, so a
/// preallocated or sparse file counts what it holds of the disk). Files
/// that vanish while it walks (a compaction's) are skipped.
pub fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.filter_map(Result::ok) {
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                total += metadata.blocks() * 512;
            }
        }
    }
    total
}

/// A process's figures (`None`: this process), with `data_dir`'s size.
pub fn figures(pid: Option<u32>, data_dir: &Path) -> ProcessFigures {
    let (open_fds, data_fds, socket_fds) = open_fds(pid, data_dir).unwrap_or((0, 0, 0));
    ProcessFigures {
        rss_bytes: rss_bytes(pid).unwrap_or(0),
        // Only a process's own allocator can be asked.
        heap_bytes: if pid.is_none() { heap_bytes().unwrap_or(0) } else { 0 },
        open_fds,
        data_fds,
        socket_fds,
        threads: threads(pid).unwrap_or(0),
        cpu_ms: cpu(pid).map_or(0, |cpu| cpu.as_millis() as u64),
        data_dir_bytes: disk_bytes(data_dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run alone in a process of its own: the heap figure is the whole
    /// process's, and another test of this binary freeing its buffers at
    /// the same moment hid the 64 MiB this one holds (seen in CI, beside
    /// the commit log's replay test).
    #[test]
    fn this_process_reads_its_own_figures_and_they_follow_what_it_does() {
        let test = "process::tests::figures_child";
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", test, "--nocapture", "--test-threads=1"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    #[ignore = "run in a process of its own by this_process_reads_its_own_figures_and_they_follow_what_it_does"]
    fn figures_child() {
        let dir = std::env::temp_dir().join(format!("dynamo-process-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let before = figures(None, &dir);
        assert!(before.rss_bytes > 1024 * 1024, "{before:?}");
        assert!(before.threads >= 1 && before.open_fds >= 3, "{before:?}");
        assert_eq!(before.data_dir_bytes, 0);
        // A file of 1 MiB written (not sparse), a file held open, memory
        // touched: each figure moves.
        std::fs::write(dir.join("sub").join("data"), vec![7u8; 1024 * 1024]).unwrap();
        let held = std::fs::File::open(dir.join("sub").join("data")).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let touched = vec![1u8; 64 * 1024 * 1024];
        let after = figures(None, &dir);
        assert!(after.data_dir_bytes >= 1024 * 1024, "{after:?}");
        assert!(after.open_fds > before.open_fds, "{before:?} {after:?}");
        // Only this test opens files under its directory.
        assert_eq!((before.data_fds, after.data_fds), (0, 1), "{after:?}");
        assert!(after.socket_fds >= 1, "{after:?}");
        assert!(
            after.rss_bytes >= before.rss_bytes + 32 * 1024 * 1024,
            "{before:?} {after:?}"
        );
        // The 64 MiB held is counted as allocated.
        assert!(
            after.heap_bytes >= before.heap_bytes + 32 * 1024 * 1024,
            "{before:?} {after:?}"
        );
        drop((held, listener, touched));
        std::fs::remove_dir_all(&dir).unwrap();
        // A process that is not there: zeros, not a guess.
        let gone = figures(Some(u32::MAX), &dir);
        assert_eq!(gone, ProcessFigures::default());
    }
}
