//! HdrHistogram interval logs, written by a thread of their own.
//!
//! One file per operation type (`latency-<op>.hlog`), in the V2 + DEFLATE
//! encoding of the standard interval log format, with a `#[StartTime: ...]`
//! header; each interval is two lines, tagged `intended` and `service`.
//! Values are microseconds. The writer thread owns the files (the
//! hdrhistogram writer borrows its file and serializer, so it lives on one
//! stack), and the recorder hands it each interval through a bounded
//! channel.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::latency::Pair;

/// Intervals waiting for the writer thread.
const QUEUE_INTERVALS_MAX: usize = 64;

/// One interval of one operation type.
struct Interval {
    op: String,
    start: Duration,
    duration: Duration,
    pair: Pair,
}

/// A running interval-log writer.
pub struct HistogramLog {
    sender: Option<mpsc::SyncSender<Interval>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<Vec<PathBuf>>>>,
}

impl HistogramLog {
    /// Starts writing logs into `dir` for intervals measured from `start`.
    pub fn start(dir: &Path, start: SystemTime) -> HistogramLog {
        let (sender, receiver) = mpsc::sync_channel::<Interval>(QUEUE_INTERVALS_MAX);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("hlog".into())
            .spawn(move || write_logs(&dir, start, receiver))
            .ok();
        HistogramLog {
            sender: Some(sender),
            thread,
        }
    }

    /// Queues one interval's histograms (per type). `start` is the
    /// interval's start since the log's start time.
    pub fn add(&self, intervals: BTreeMap<String, Pair>, start: Duration, duration: Duration) {
        if let Some(sender) = &self.sender {
            for (op, pair) in intervals {
                let _ = sender.send(Interval {
                    op,
                    start,
                    duration,
                    pair,
                });
            }
        }
    }

    /// Flushes and closes every log; returns their paths.
    ///
    /// # Errors
    /// A log could not be written.
    pub fn finish(mut self) -> std::io::Result<Vec<PathBuf>> {
        drop(self.sender.take());
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| std::io::Error::other("the histogram log writer panicked"))?,
            None => Err(std::io::Error::other("the histogram log writer could not start")),
        }
    }
}

fn write_logs(dir: &Path, start: SystemTime, receiver: mpsc::Receiver<Interval>) -> std::io::Result<Vec<PathBuf>> {
    // Files are opened as operation types appear.
    let mut files: BTreeMap<String, (PathBuf, std::io::BufWriter<std::fs::File>)> = BTreeMap::new();
    let mut serializer = V2DeflateSerializer::new();
    for interval in receiver {
        if !files.contains_key(&interval.op) {
            let path = dir.join(format!("latency-{}.hlog", interval.op));
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            IntervalLogWriterBuilder::new()
                .add_comment(&format!(
                    "dynamo-bench latency of {} operations, microseconds; tags: intended (from the scheduled start), service (from the send)",
                    interval.op
                ))
                .with_start_time(start)
                .with_base_time(start)
                .begin_log_with(&mut file, &mut serializer)
                .map_err(std::io::Error::other)?;
            files.insert(interval.op.clone(), (path, file));
        }
        let Some((_, file)) = files.get_mut(&interval.op) else {
            continue;
        };
        // A builder with no comments, times or divisor writes no header:
        // this continues the file begun above.
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(file, &mut serializer)
            .map_err(std::io::Error::other)?;
        for (tag, histogram) in [
            ("intended", &interval.pair.intended),
            ("service", &interval.pair.service),
        ] {
            writer
                .write_histogram(histogram, interval.start, interval.duration, Tag::new(tag))
                .map_err(|error| std::io::Error::other(format!("{error:?}")))?;
        }
    }
    let mut paths = Vec::new();
    for (_, (path, mut file)) in files {
        file.flush()?;
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LatencyRecorder;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn logs_read_back_with_the_standard_reader() {
        let dir = std::env::temp_dir().join(format!("dynamo-hlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = HistogramLog::start(&dir, SystemTime::now());
        let mut recorder = LatencyRecorder::new();
        for second in 0..3u64 {
            for value in 1..=100u64 {
                recorder.record("put", value * 10 * (second + 1), value, false);
            }
            log.add(recorder.rotate(), Duration::from_secs(second), Duration::from_secs(1));
        }
        let paths = log.finish().unwrap();
        assert_eq!(paths, vec![dir.join("latency-put.hlog")]);
        let bytes = std::fs::read(&paths[0]).unwrap();
        let mut deserializer = Deserializer::new();
        let mut intervals = 0;
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(interval) = entry.unwrap() {
                let encoded = interval.encoded_histogram();
                let raw = decode_base64(encoded);
                let histogram: hdrhistogram::Histogram<u64> = deserializer.deserialize(&mut raw.as_slice()).unwrap();
                assert_eq!(histogram.len(), 100);
                intervals += 1;
            }
        }
        assert_eq!(intervals, 6, "three intervals, two tags each");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Standard base64 (the log's encoding), for reading it back here.
    fn decode_base64(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut buffer, mut bits) = (0u32, 0u32);
        for byte in text.bytes().filter(|&byte| byte != b'=') {
            let value = ALPHABET.iter().position(|&symbol| symbol == byte).unwrap() as u32;
            buffer = (buffer << 6) | value;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
                buffer &= (1 << bits) - 1;
            }
        }
        out
    }
}
