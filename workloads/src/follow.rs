//! `dynamo-bench check HISTORY --follow`: check a history while it is
//! still being written (as `tail -f` reads a log), printing each finding
//! the moment the checker decides it; and `--stream`, the same over a
//! finished file, in memory bounded by its live keys.
//!
//! Lines are fed to [`dynamo_checker::Incremental`] as they are completed
//! by a newline; a partial line waits for the rest. A follow ends when the
//! file has not grown for its idle time (the writer is done, or stuck), a
//! stream at the end of the file, either when `stop` is set (Ctrl-C);
//! whatever was read is then judged to the end, as the batch checker would
//! judge a file that ended there.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dynamo_checker::{Finding, Incremental, Options, ReadError, Verdict};

/// How often the file is polled for more lines.
const POLL: Duration = Duration::from_millis(100);

/// When to stop reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The file has not grown for this long (`--follow`).
    Idle(Duration),
    /// The end of the file (`--stream`).
    End,
}

/// Why a follow ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The file did not grow for the idle time.
    Idle,
    /// The end of the file was reached.
    End,
    /// Stopped from outside (Ctrl-C).
    Stopped,
}

/// Where a follow stands, for a progress line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes read.
    pub bytes: u64,
    /// The file's length when last looked at.
    pub length: u64,
    /// Lines judged.
    pub lines: u64,
    /// Keys not yet judged to their end.
    pub live_keys: usize,
    /// Operations held in memory.
    pub held_operations: usize,
    /// Violations found so far (all, kept or not).
    pub violations: u64,
    /// Time since the file last grew.
    pub idle: Duration,
}

/// Follows the history at `path` until `until` or `stop` is set. `found`
/// is called with each finding as it is found, `progress` now and then.
///
/// # Errors
/// The file cannot be opened (a follow waits up to its idle time for it to
/// appear) or read, it shrank (rewritten under the follower), or a line is
/// not a well-formed event.
pub fn follow(
    path: &Path,
    options: &Options,
    until: Until,
    stop: &AtomicBool,
    found: &mut dyn FnMut(&Finding),
    progress: &mut dyn FnMut(&Progress),
) -> Result<(Verdict, Ended), ReadError> {
    let name = path.display().to_string();
    let io = |source: std::io::Error| ReadError::Io {
        path: name.clone(),
        source,
    };
    let started = Instant::now();
    let idle = match until {
        Until::Idle(idle) => idle,
        Until::End => Duration::ZERO,
    };
    let mut file = loop {
        match std::fs::File::open(path) {
            Ok(file) => break file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && started.elapsed() < idle => {
                if stop.load(Ordering::Relaxed) {
                    return Err(io(error));
                }
                std::thread::sleep(POLL);
            }
            Err(error) => return Err(io(error)),
        }
    };
    let mut checker = Incremental::new(&name, options);
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    let mut reported = 0usize;
    let mut grew = Instant::now();
    let mut length = file.metadata().map_err(io)?.len();
    let ended = loop {
        let read = file.read(&mut chunk).map_err(io)?;
        if read > 0 {
            bytes += read as u64;
            grew = Instant::now();
            pending.extend_from_slice(&chunk[..read]);
            let complete = pending.iter().rposition(|&byte| byte == b'\n').map_or(0, |at| at + 1);
            for line in pending[..complete].split(|&byte| byte == b'\n') {
                if !line.is_empty() {
                    feed(&mut checker, &name, line)?;
                }
            }
            pending.drain(..complete);
            for finding in checker.findings(reported) {
                found(finding);
            }
            reported = checker.findings(0).len();
        } else {
            if stop.load(Ordering::Relaxed) {
                break Ended::Stopped;
            }
            if until == Until::End {
                break Ended::End;
            }
            if grew.elapsed() >= idle {
                break Ended::Idle;
            }
            // Rewritten under us: a shorter file is not a continuation.
            length = file.metadata().map_err(io)?.len();
            if length < bytes {
                return Err(ReadError::Malformed {
                    path: name,
                    line: checker.lines(),
                    message: format!(
                        "the file shrank from {bytes} to {length} bytes while it was followed: it was rewritten, not appended to"
                    ),
                });
            }
            file.seek(SeekFrom::Start(bytes)).map_err(io)?;
            std::thread::sleep(POLL);
        }
        progress(&Progress {
            bytes,
            length: length.max(bytes),
            lines: checker.lines(),
            live_keys: checker.live_keys(),
            held_operations: checker.held_operations(),
            violations: checker.violations(),
            idle: grew.elapsed(),
        });
    };
    // A last line without its newline: the writer stopped mid-line, or
    // simply ended without one. Judged as the batch checker would.
    if !pending.is_empty() {
        feed(&mut checker, &name, &pending)?;
    }
    for finding in checker.findings(reported) {
        found(finding);
    }
    let before = checker.findings(0).len();
    let events = checker.events();
    let verdict = checker.finish();
    for finding in &verdict.findings[before.min(verdict.findings.len())..] {
        found(finding);
    }
    if events == 0 {
        return Err(ReadError::Empty { path: name });
    }
    Ok((verdict, ended))
}

fn feed(checker: &mut Incremental, name: &str, line: &[u8]) -> Result<(), ReadError> {
    match std::str::from_utf8(line) {
        Ok(text) => checker.line(text),
        Err(error) => Err(ReadError::Malformed {
            path: name.to_string(),
            line: checker.lines() + 1,
            message: format!("not UTF-8: {error}"),
        }),
    }
}
