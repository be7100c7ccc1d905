//! The `RING` file of a data directory: the assignment the node routes by
//! and the membership change pending, written at every change so that a
//! restarted node resumes at its epoch (and goes on with the partitions it
//! was gaining) instead of the cluster file's initial ring.
//!
//! ```text
//! dynamo-node ring v1
//! ring <epoch> <owner of partition 0> <owner of partition 1> ...
//! next <epoch> <owner of partition 0> ...        (only while a change is pending)
//! ```
//!
//! Owners are node ids (a member's position in the cluster file). Written
//! atomically (temporary file, fsync, rename, fsync of the directory).

use std::path::{Path, PathBuf};

use dynamo_core::ids::NodeId;
use dynamo_core::ring::Ring;

use crate::config::ClusterConfig;

/// The file's name in the data directory.
pub const RING_FILE: &str = "RING";
const MAGIC: &str = "dynamo-node ring v1";

/// Why a `RING` file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {reason}")]
pub struct AssignmentError {
    /// The file.
    pub path: PathBuf,
    /// The line (1-based; 0 when the file could not be read).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

fn ring_line(tag: &str, ring: &Ring) -> String {
    let owners: Vec<String> = ring.owners().iter().map(|owner| owner.0.to_string()).collect();
    format!("{tag} {} {}\n", ring.epoch(), owners.join(" "))
}

/// Writes the assignment (`ring`, and `next` when pending) durably.
///
/// # Errors
/// The file cannot be written or synced.
pub fn write(data_dir: &Path, ring: &Ring, next: Option<&Ring>) -> std::io::Result<()> {
    let mut text = format!("{MAGIC}\n");
    text.push_str(&ring_line("ring", ring));
    if let Some(next) = next {
        text.push_str(&ring_line("next", next));
    }
    crate::data_dir::write_atomically(&data_dir.join(RING_FILE), &text)
}

/// Reads the assignment persisted in `data_dir`, checked against the
/// cluster file (Q, and owners that are members); `None` when there is no
/// file (a node that never saw a change routes by the cluster file's ring).
///
/// # Errors
/// The file cannot be read, or is not a valid assignment for `config`.
pub fn read(data_dir: &Path, config: &ClusterConfig) -> Result<Option<(Ring, Option<Ring>)>, AssignmentError> {
    let path = data_dir.join(RING_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(AssignmentError {
                path,
                line: 0,
                reason: error.to_string(),
            })
        }
    };
    let fail = |line: usize, reason: String| AssignmentError {
        path: path.clone(),
        line,
        reason,
    };
    let mut lines = text.lines().enumerate().map(|(index, line)| (index + 1, line));
    match lines.next() {
        Some((_, MAGIC)) => {}
        _ => return Err(fail(1, format!("expected {MAGIC:?}"))),
    }
    let mut ring = None;
    let mut next = None;
    for (number, line) in lines {
        let mut words = line.split_whitespace();
        let tag = words.next().unwrap_or("");
        let epoch: u64 = words
            .next()
            .and_then(|word| word.parse().ok())
            .ok_or_else(|| fail(number, "expected an epoch after the tag".into()))?;
        let mut owners = Vec::new();
        for word in words {
            let id: u32 = word
                .parse()
                .map_err(|_| fail(number, format!("owner {word:?} is not a node id")))?;
            if id as usize >= config.members.len() {
                return Err(fail(
                    number,
                    format!(
                        "owner {id} is not a member of the cluster file ({} nodes)",
                        config.members.len()
                    ),
                ));
            }
            owners.push(NodeId(id));
        }
        if owners.len() != config.partitions as usize {
            return Err(fail(
                number,
                format!(
                    "{} owners, but the cluster has {} partitions",
                    owners.len(),
                    config.partitions
                ),
            ));
        }
        let parsed = Ring::from_assignment(owners, epoch).map_err(|error| fail(number, error.to_string()))?;
        match tag {
            "ring" if ring.is_none() => ring = Some(parsed),
            "next" if next.is_none() => next = Some(parsed),
            _ => return Err(fail(number, format!("unexpected line tag {tag:?}"))),
        }
    }
    let ring = ring.ok_or_else(|| fail(2, "no `ring` line".into()))?;
    Ok(Some((ring, next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(nodes: usize) -> ClusterConfig {
        let mut text = String::from("n = 1\nr = 1\nw = 1\npartitions = 8\n");
        for index in 0..nodes {
            text.push_str(&format!(
                "[[nodes]]\nid = \"n{index}\"\naddr = \"127.0.0.1:{}\"\n",
                7100 + index
            ));
        }
        ClusterConfig::parse(Path::new("cluster.toml"), &text).unwrap()
    }

    #[test]
    fn an_assignment_reads_back_and_bad_files_name_their_line() {
        let dir = std::env::temp_dir().join(format!("dynamo-ring-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = config(3);
        assert!(read(&dir, &config).unwrap().is_none());
        let ring = Ring::new(8, &[NodeId(0), NodeId(1)]).unwrap();
        let mut next = ring.clone();
        next.join(NodeId(2)).unwrap();
        write(&dir, &ring, Some(&next)).unwrap();
        assert_eq!(read(&dir, &config).unwrap(), Some((ring.clone(), Some(next))));
        write(&dir, &ring, None).unwrap();
        assert_eq!(read(&dir, &config).unwrap(), Some((ring, None)));
        // Owners outside the cluster file, a wrong Q, garbage.
        let error = read(&dir, &self::config(1)).unwrap_err().to_string();
        assert!(error.contains("RING:2: owner 1 is not a member"), "{error}");
        std::fs::write(dir.join(RING_FILE), format!("{MAGIC}\nring 1 0 1\n")).unwrap();
        let error = read(&dir, &config).unwrap_err().to_string();
        assert!(
            error.contains(":2: 2 owners, but the cluster has 8 partitions"),
            "{error}"
        );
        std::fs::write(dir.join(RING_FILE), "hello\n").unwrap();
        let error = read(&dir, &config).unwrap_err().to_string();
        assert!(error.contains(":1: expected"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
