//! The data directory's identity: the `NODE` file, which says whose data
//! this is and how it was written, so that a node never serves data under
//! settings that would misread it.
//!
//! ```text
//! dynamo-node data v1
//! name = n1
//! partitions = 64
//! versioning = dvv
//! ```
//!
//! Written once, atomically (a temporary file, fsync, rename, fsync of the
//! directory): a crash leaves either no `NODE` or a whole one. `Q` and the
//! versioning are recorded because both change how the bytes on disk are
//! read: another `Q` routes every key to another partition (and turns the
//! hint partition, numbered `Q`, into a data partition); another
//! versioning reads sibling sets by other rules. A `NODE` of the first
//! format (the name alone) is read as such and upgraded in place.

use std::path::{Path, PathBuf};

use thiserror::Error;

use dynamo_core::version::Versioning;

/// The first line of the current format.
const MAGIC: &str = "dynamo-node data v1";

/// What the `NODE` file records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The member whose data this is.
    pub name: String,
    /// Q, fixed for the cluster's life.
    pub partitions: u32,
    /// How versions supersede one another.
    pub versioning: Versioning,
}

/// Why a data directory cannot be used by this node.
#[derive(Debug, Error)]
pub enum DataDirError {
    /// A system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The directory holds another member's data.
    #[error("{path} holds the data of node {found:?}, not {expected:?}: pass the right --data")]
    WrongNode {
        /// The identity file.
        path: PathBuf,
        /// The node it names.
        found: String,
        /// The node starting.
        expected: String,
    },
    /// The data was written under another Q or versioning.
    #[error("{path}: this data was written with {field} = {found}, but the cluster file says {expected}; {why}")]
    Mismatch {
        /// The identity file.
        path: PathBuf,
        /// `partitions` or `versioning`.
        field: &'static str,
        /// What the data was written with.
        found: String,
        /// What the cluster file asks for.
        expected: String,
        /// What would go wrong.
        why: &'static str,
    },
    /// The file is not an identity file.
    #[error(
        "{path}: not a data directory identity file ({reason}); move it aside only if this directory holds no data"
    )]
    Malformed {
        /// The identity file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates `dir` (and its parents) and syncs it and its parent, so that
/// the new directory entry survives a crash.
///
/// # Errors
/// The directory cannot be created or synced.
pub fn create_durably(dir: &Path) -> std::io::Result<()> {
    let existed = dir.is_dir();
    std::fs::create_dir_all(dir)?;
    if !existed {
        std::fs::File::open(dir)?.sync_all()?;
        if let Some(parent) = dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// Writes `text` to `path` atomically: a temporary file beside it, synced,
/// renamed over it, and the directory synced.
///
/// # Errors
/// A write, sync or rename failed.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(&mut file, text.as_bytes())?;
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl Identity {
    fn to_text(&self) -> String {
        format!(
            "{MAGIC}\nname = {}\npartitions = {}\nversioning = {}\n",
            self.name, self.partitions, self.versioning
        )
    }

    fn parse(path: &Path, text: &str) -> Result<Identity, DataDirError> {
        let malformed = |reason: String| DataDirError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(malformed(format!("the first line is not {MAGIC:?}")));
        }
        let mut fields = std::collections::BTreeMap::new();
        for line in lines.filter(|line| !line.trim().is_empty()) {
            let (field, value) = line
                .split_once(" = ")
                .ok_or_else(|| malformed(format!("{line:?} is not `field = value`")))?;
            fields.insert(field.trim(), value.trim());
        }
        let field = |name: &str| fields.get(name).copied().ok_or_else(|| malformed(format!("no {name}")));
        Ok(Identity {
            name: field("name")?.to_string(),
            partitions: field("partitions")?
                .parse()
                .map_err(|_| malformed("partitions is not a number".into()))?,
            versioning: field("versioning")?
                .parse()
                .map_err(|error| malformed(format!("versioning: {error}")))?,
        })
    }
}

/// Checks that `dir` holds `expected`'s data (claiming a new or empty
/// directory for it), under the same Q and versioning. True when the
/// directory was claimed now: it holds nothing yet (a new node, or one
/// whose data was wiped).
///
/// # Errors
/// Another node's data, another Q or versioning, an unreadable or
/// malformed identity file.
pub fn claim(dir: &Path, expected: &Identity) -> Result<bool, DataDirError> {
    create_durably(dir).map_err(io(dir))?;
    let path = dir.join("NODE");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return write_atomically(&path, &expected.to_text())
                .map(|()| true)
                .map_err(io(&path));
        }
        Err(error) => return Err(io(&path)(error)),
    };
    let found = if text.starts_with(MAGIC) {
        Identity::parse(&path, &text)?
    } else {
        // The first format: the name alone. It recorded neither Q nor the
        // versioning; take the cluster file's and record them now.
        let name = text.trim();
        if name.is_empty() || name.lines().count() != 1 {
            return Err(DataDirError::Malformed {
                path,
                reason: "empty, or more than a name".into(),
            });
        }
        Identity {
            name: name.to_string(),
            ..expected.clone()
        }
    };
    if found.name != expected.name {
        return Err(DataDirError::WrongNode {
            path,
            found: found.name,
            expected: expected.name.clone(),
        });
    }
    if found.partitions != expected.partitions {
        return Err(DataDirError::Mismatch {
            path,
            field: "partitions",
            found: found.partitions.to_string(),
            expected: expected.partitions.to_string(),
            why: "another Q would route every key to another partition (Q is fixed for a cluster's life)",
        });
    }
    if found.versioning != expected.versioning {
        return Err(DataDirError::Mismatch {
            path,
            field: "versioning",
            found: found.versioning.to_string(),
            expected: expected.versioning.to_string(),
            why: "sibling sets written under one versioning are not read by the other's rules",
        });
    }
    if !text.starts_with(MAGIC) {
        write_atomically(&path, &expected.to_text()).map_err(io(&path))?;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            name: "n1".into(),
            partitions: 64,
            versioning: Versioning::Dvv,
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dynamo-datadir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_new_directory_is_claimed_and_then_recognised() {
        let dir = temp("new");
        assert!(claim(&dir, &identity()).unwrap(), "claimed now");
        assert!(std::fs::read_to_string(dir.join("NODE")).unwrap().starts_with(MAGIC));
        assert!(!dir.join("NODE.tmp").exists());
        assert!(!claim(&dir, &identity()).unwrap(), "claimed before");
        let other = Identity {
            name: "n2".into(),
            ..identity()
        };
        assert!(matches!(claim(&dir, &other), Err(DataDirError::WrongNode { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn another_q_or_versioning_is_refused_with_the_reason() {
        let dir = temp("mismatch");
        claim(&dir, &identity()).unwrap();
        let other_q = Identity {
            partitions: 128,
            ..identity()
        };
        let message = claim(&dir, &other_q).unwrap_err().to_string();
        assert!(
            message.contains("partitions = 64") && message.contains("128"),
            "{message}"
        );
        let other_versioning = Identity {
            versioning: Versioning::Paper,
            ..identity()
        };
        let message = claim(&dir, &other_versioning).unwrap_err().to_string();
        assert!(
            message.contains("versioning = dvv") && message.contains("paper"),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_first_format_is_read_and_upgraded() {
        let dir = temp("upgrade");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("NODE"), "n1\n").unwrap();
        claim(&dir, &identity()).unwrap();
        let text = std::fs::read_to_string(dir.join("NODE")).unwrap();
        assert!(text.contains("partitions = 64"), "{text}");
        std::fs::write(dir.join("NODE"), "").unwrap();
        assert!(matches!(claim(&dir, &identity()), Err(DataDirError::Malformed { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
