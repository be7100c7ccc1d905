//! The history, written as the driver observes it (shared/HISTORY.md):
//! one JSON line per event, streamed through a buffer, so memory does not
//! grow with the run. The timestamp is taken under the writer's lock, so
//! `time_ns` never decreases down the file, and an invoke is written
//! before its request is sent, a completion after its answer arrived.

use dynamo_node::sync::Recover;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    process: u64,
    op: u64,
    f: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    time_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(rename = "final", skip_serializing_if = "std::ops::Not::not")]
    is_final: bool,
}

/// An operation's invoke, as the driver is about to send it.
pub struct Invoke<'a> {
    /// The logical client.
    pub process: u64,
    /// The op id.
    pub op: u64,
    /// `get`, `put` or `delete`.
    pub f: &'a str,
    /// The key.
    pub key: &'a str,
    /// For put/delete: the value id written.
    pub value: Option<&'a str>,
    /// For put/delete: the value ids the context covers.
    pub context: Option<&'a [String]>,
    /// The node the request goes to first.
    pub node: Option<&'a str>,
    /// Part of the final read phase.
    pub is_final: bool,
}

/// How an operation ended.
pub enum Completion<'a> {
    /// A get returned these value ids.
    Got(&'a [String]),
    /// A put or delete was acknowledged.
    Stored,
    /// Definitely did not take effect.
    Fail(&'a str),
    /// May or may not have taken effect.
    Info(&'a str),
}

struct Inner {
    out: std::io::BufWriter<std::fs::File>,
    failed: Option<std::io::Error>,
    events: u64,
}

/// The history file being written.
pub struct HistoryWriter {
    start: Instant,
    inner: Mutex<Inner>,
    /// A write failed (a full disk): nothing more is written, and the
    /// driver stops the load rather than run on unrecorded.
    failed: std::sync::atomic::AtomicBool,
}

impl HistoryWriter {
    /// Creates `path`; times count from `start`.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path, start: Instant) -> std::io::Result<HistoryWriter> {
        Ok(HistoryWriter {
            start,
            inner: Mutex::new(Inner {
                out: std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?),
                failed: None,
                events: 0,
            }),
            failed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn write(&self, event: impl FnOnce(u64) -> Vec<u8>) -> u64 {
        let mut inner = self.inner.lock().recover();
        let time_ns = self.start.elapsed().as_nanos() as u64;
        if inner.failed.is_none() {
            let line = event(time_ns);
            if let Err(error) = inner.out.write_all(&line) {
                inner.failed = Some(error);
                self.failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            inner.events += 1;
        }
        time_ns
    }

    /// A write has failed: what follows is not recorded ([`Self::finish`]
    /// returns the error).
    pub fn failed(&self) -> bool {
        self.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes a fault event (HISTORY.md, "Fault events"); returns its
    /// `time_ns`.
    pub fn fault(&self, fault: &str, phase: &str, targets: &[String], detail: Option<&str>) -> u64 {
        self.write(|time_ns| {
            let event = serde_json::json!({
                "type": "fault",
                "fault": fault,
                "phase": phase,
                "targets": targets,
                "detail": detail,
                "time_ns": time_ns,
            });
            let mut bytes = serde_json::to_vec(&event).unwrap_or_default();
            bytes.push(b'\n');
            bytes
        })
    }

    /// Writes an invoke; returns its `time_ns`.
    pub fn invoke(&self, invoke: &Invoke) -> u64 {
        self.write(|time_ns| {
            line(&Event {
                kind: "invoke",
                process: invoke.process,
                op: invoke.op,
                f: invoke.f,
                key: Some(invoke.key),
                value: invoke.value,
                context: invoke.context,
                values: None,
                node: invoke.node,
                time_ns,
                error: None,
                is_final: invoke.is_final,
            })
        })
    }

    /// Writes a completion; returns its `time_ns`.
    pub fn complete(&self, process: u64, op: u64, f: &str, completion: Completion) -> u64 {
        let (kind, values, error) = match completion {
            Completion::Got(values) => ("ok", Some(values), None),
            Completion::Stored => ("ok", None, None),
            Completion::Fail(error) => ("fail", None, Some(error)),
            Completion::Info(error) => ("info", None, Some(error)),
        };
        self.write(|time_ns| {
            line(&Event {
                kind,
                process,
                op,
                f,
                key: None,
                value: None,
                context: None,
                values,
                node: None,
                time_ns,
                error,
                is_final: false,
            })
        })
    }

    /// Flushes the file; returns the number of events written.
    ///
    /// # Errors
    /// A write failed (at any point of the run).
    pub fn finish(&self) -> std::io::Result<u64> {
        let mut inner = self.inner.lock().recover();
        if let Some(error) = inner.failed.take() {
            return Err(error);
        }
        inner.out.flush()?;
        inner.out.get_ref().sync_all()?;
        Ok(inner.events)
    }
}

fn line(event: &Event) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(event).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_seen_at_once_and_returned_at_the_end() {
        // /dev/full fails every write with ENOSPC, as a full disk does.
        let writer = HistoryWriter::create(Path::new("/dev/full"), Instant::now()).unwrap();
        let mut events = 0;
        while !writer.failed() {
            writer.complete(events, events, "get", Completion::Stored);
            events += 1;
            assert!(events < 1_000_000, "a full disk went unseen");
        }
        // Nothing more is taken once a write failed.
        writer.fault("kill", "start", &["n1".to_string()], None);
        let error = writer.finish().unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC), "{error}");
    }
}
