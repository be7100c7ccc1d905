//! Disk faults: damage done to a node's data directory while the node is
//! down (between its SIGKILL and its restart), as a bad disk, a torn write
//! or an operator's mistake leaves it.
//!
//! The storage layout is `<data>/partitions/p<partition:05>/<segment:010>.seg` (see
//! `dynamo_node::storage`): a partition's last segment is the one being
//! appended to (active), the others are sealed. The node must notice every
//! damaged record (each is checksummed) and never serve it; what it lost,
//! the other replicas hold.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Damage;
use crate::keys::Rng;

/// A partition's segments, in order (the last is active).
fn partitions(data: &Path) -> std::io::Result<Vec<Vec<(PathBuf, u64)>>> {
    let mut partitions = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_dir()
                && path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with('p'))
        })
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut segments: Vec<(PathBuf, u64)> = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
            .filter_map(|path| {
                let length = std::fs::metadata(&path).ok()?.len();
                Some((path, length))
            })
            .collect();
        segments.sort();
        if !segments.is_empty() {
            partitions.push(segments);
        }
    }
    Ok(partitions)
}

fn pick<'a, T>(items: &'a [T], rng: &mut Rng) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        items.get(rng.below(items.len() as u64) as usize)
    }
}

/// Does `damage` to the data directory `data` (its node must be down);
/// returns what was done, in words a person can repeat.
///
/// # Errors
/// A file cannot be read or written, or there is nothing of the kind to
/// damage (no segment with data yet).
pub fn damage(data: &Path, damage: Damage, rng: &mut Rng) -> Result<String, String> {
    let shown = |path: &Path| path.strip_prefix(data).unwrap_or(path).display().to_string();
    let failed = |path: &Path, error: std::io::Error| format!("{}: {error}", path.display());
    let root = data.join("partitions");
    let partitions = partitions(&root).map_err(|error| failed(&root, error))?;
    let with_data = |segments: &[(PathBuf, u64)]| segments.iter().any(|(_, length)| *length > 0);
    let active: Vec<&(PathBuf, u64)> = partitions
        .iter()
        .filter_map(|segments| segments.last())
        .filter(|(_, length)| *length > 1)
        .collect();
    let sealed: Vec<&(PathBuf, u64)> = partitions
        .iter()
        .flat_map(|segments| &segments[..segments.len() - 1])
        .filter(|(_, length)| *length > 0)
        .collect();
    let all: Vec<&(PathBuf, u64)> = partitions
        .iter()
        .filter(|segments| with_data(segments))
        .flatten()
        .collect();
    let nothing = |what: &str| format!("{}: no {what} segment with data to damage", data.display());
    match damage {
        Damage::FlipSealed | Damage::FlipActive => {
            let sealed_one = if damage == Damage::FlipSealed {
                pick(&sealed, rng)
            } else {
                None
            };
            let (chosen, note) = match sealed_one {
                Some(segment) => (*segment, ""),
                None => {
                    let segment = *pick(&active, rng).ok_or_else(|| nothing("active"))?;
                    // Rolling and compaction make sealed segments only in
                    // longer runs: say so, and damage what there is.
                    let note = if damage == Damage::FlipSealed {
                        " (no sealed segment yet: an active one)"
                    } else {
                        ""
                    };
                    (segment, note)
                }
            };
            let (path, length) = chosen;
            let offset = rng.below(*length);
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|error| failed(path, error))?;
            let mut byte = [0u8];
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut byte))
                .map_err(|error| failed(path, error))?;
            let flipped = byte[0] ^ 0xff;
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.write_all(&[flipped]))
                .and_then(|()| file.sync_all())
                .map_err(|error| failed(path, error))?;
            Ok(format!(
                "flipped byte {offset} of {}{note} ({} bytes): {:#04x} -> {flipped:#04x}",
                shown(path),
                length,
                byte[0]
            ))
        }
        Damage::Truncate => {
            let (path, length) = *pick(&active, rng).ok_or_else(|| nothing("active"))?;
            let cut = 1 + rng.below((*length - 1).min(4096));
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|error| failed(path, error))?;
            file.set_len(length - cut)
                .and_then(|()| file.sync_all())
                .map_err(|error| failed(path, error))?;
            Ok(format!(
                "truncated {} from {length} to {} bytes (the last {cut} cut)",
                shown(path),
                length - cut
            ))
        }
        Damage::DeleteSegment => {
            let (path, length) = *pick(&all, rng).ok_or_else(|| nothing("any"))?;
            std::fs::remove_file(path).map_err(|error| failed(path, error))?;
            Ok(format!("deleted {} ({length} bytes)", shown(path)))
        }
        Damage::FlipLog => {
            // The newest log segment holding a batch of its own (a batch
            // starts on a 4 KiB block with the magic and the segment's id).
            let log = root.join("log");
            let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(&log)
                .map_err(|error| failed(&log, error))?
                .filter_map(Result::ok)
                .filter_map(|entry| {
                    let name = entry.file_name().to_str()?.to_string();
                    let id = name.strip_suffix(".log")?.parse::<u64>().ok()?;
                    Some((id, entry.path()))
                })
                .collect();
            segments.sort();
            for (id, path) in segments.iter().rev() {
                let bytes = std::fs::read(path).map_err(|error| failed(path, error))?;
                let batches: Vec<(usize, usize)> = (0..bytes.len().saturating_sub(32))
                    .step_by(4096)
                    .filter(|&at| bytes[at..at + 4] == *b"DLB1" && bytes[at + 8..at + 16] == id.to_le_bytes())
                    .map(|at| {
                        let body = u32::from_le_bytes([bytes[at + 24], bytes[at + 25], bytes[at + 26], bytes[at + 27]]);
                        (at, 32 + body as usize)
                    })
                    .collect();
                let Some(&(start, len)) = pick(&batches, rng) else {
                    continue;
                };
                let offset = (start + rng.below(len as u64) as usize) as u64;
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|error| failed(path, error))?;
                let flipped = bytes[offset as usize] ^ 0xff;
                std::os::unix::fs::FileExt::write_all_at(&file, &[flipped], offset)
                    .and_then(|()| file.sync_all())
                    .map_err(|error| failed(path, error))?;
                return Ok(format!(
                    "flipped byte {offset} of {} (inside the batch at {start}, {} batches in the segment): {:#04x} -> {flipped:#04x}",
                    shown(path),
                    batches.len(),
                    bytes[offset as usize]
                ));
            }
            Err(format!(
                "{}: no commit log batch to damage (the log is written under sync = \"always\")",
                log.display()
            ))
        }
        Damage::Wipe => {
            std::fs::remove_dir_all(data).map_err(|error| failed(data, error))?;
            Ok(format!(
                "removed the data directory {} (the node comes back empty)",
                data.display()
            ))
        }
    }
}
