//! `dynamo-node dump`: every record of a partition directory, one per line,
//! read straight from the files (nothing is repaired or truncated).

use std::io::Write;
use std::path::Path;

use dynamo_core::codec::printable;

use super::format::{scan_record, RecordKind, Scan, SegmentHeader, FLAG_COMPACTED, HEADER_BYTES};
use super::partition::SEGMENT_SUFFIX;
use super::StorageError;

/// What a dump saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DumpSummary {
    /// Segment files read.
    pub segments: u64,
    /// Valid records printed.
    pub records: u64,
    /// Damaged headers or records found (each ends the reading of its file).
    pub problems: u64,
}

/// Prints every segment and record of the partition directory `dir` to
/// `out`. `describe` renders a put's payload.
///
/// # Errors
/// The directory or a file cannot be read, or `out` cannot be written.
/// Damage inside files is reported in the output and counted, not an error.
pub fn dump_partition(
    dir: &Path,
    out: &mut dyn Write,
    describe: &dyn Fn(&[u8]) -> String,
) -> Result<DumpSummary, StorageError> {
    let write_error = |error: std::io::Error| StorageError::io("<output>", error);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|error| StorageError::io(dir, error))? {
        let entry = entry.map_err(|error| StorageError::io(dir, error))?;
        if let Some(number) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.strip_suffix(SEGMENT_SUFFIX))
        {
            if let Ok(number) = number.parse::<u64>() {
                files.push((number, entry.path()));
            }
        }
    }
    files.sort();
    let mut summary = DumpSummary::default();
    for (number, path) in files {
        summary.segments += 1;
        let bytes = std::fs::read(&path).map_err(|error| StorageError::io(&path, error))?;
        let header = match SegmentHeader::decode(&bytes) {
            Ok(header) => header,
            Err(problem) => {
                summary.problems += 1;
                writeln!(out, "{number:010} 0 DAMAGED header: {problem:?}; file not read").map_err(write_error)?;
                continue;
            }
        };
        writeln!(
            out,
            "{number:010} segment partition={} written-by={} bytes={}",
            header.partition.0,
            if header.flags & FLAG_COMPACTED != 0 {
                "compaction"
            } else {
                "appends"
            },
            bytes.len()
        )
        .map_err(write_error)?;
        let mut offset = HEADER_BYTES;
        loop {
            match scan_record(&bytes[offset..]) {
                Scan::Record(record) => {
                    summary.records += 1;
                    match record.kind {
                        RecordKind::Put => writeln!(
                            out,
                            "{number:010} {offset} seq={} put key={} {}",
                            record.sequence,
                            printable(record.key, true, usize::MAX),
                            describe(record.payload)
                        ),
                        RecordKind::Remove => writeln!(
                            out,
                            "{number:010} {offset} seq={} remove key={}",
                            record.sequence,
                            printable(record.key, true, usize::MAX)
                        ),
                    }
                    .map_err(write_error)?;
                    offset += record.len;
                }
                Scan::End => break,
                damage => {
                    summary.problems += 1;
                    writeln!(
                        out,
                        "{number:010} {offset} DAMAGED {damage:?}; {} bytes from here not read",
                        bytes.len() - offset
                    )
                    .map_err(write_error)?;
                    break;
                }
            }
        }
    }
    Ok(summary)
}
