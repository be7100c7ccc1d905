//! Archival (Dynamo §6.2: partitions are files, so a node's data can be
//! archived as files): `dynamo-node archive` writes a snapshot of a data
//! directory, while its node runs, into one file; `dynamo-node restore`
//! brings one back into an empty data directory.
//!
//! # The snapshot
//!
//! Per partition: read its `MANIFEST`, open every segment it lists and
//! every other `*.seg` present, note each file's length, read `MANIFEST`
//! again, and start the partition over if it changed or a listed segment
//! was gone. The open descriptors keep a segment that compaction unlinks
//! meanwhile readable, and segments are append-only, so each file's first
//! `length` bytes are what it held at that moment (at worst a torn last
//! record, which recovery cuts as after a crash). The partition's copy is
//! therefore a state it passed through, crash-consistent: every write
//! acknowledged before the archive began is in it.
//!
//! # The file
//!
//! ```text
//! DYNAMO-ARCHIVE 1
//! created_ms <ms since the Unix epoch>
//! file <path relative to the data directory> <bytes> <sha256 hex>
//! ...
//! end <sha256 hex of every line above, newlines included>
//! <the files' bytes, back to back, in the order listed>
//! ```
//!
//! The `NODE` file travels as the first file, so the archive says whose
//! data it is, under which Q and versioning. `restore` checks every
//! checksum before it writes anything, writes into an empty directory
//! only, syncs each file and directory, and leaves a `RESTORED` marker:
//! the node that starts on it repairs every partition first through
//! anti-entropy (the archive is older than its peers). It starts as a new
//! incarnation, as every start does, so it never reissues a version.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::storage::partition::{COMPACTING_SUFFIX, MANIFEST_FILE};

/// The first line of an archive.
const MAGIC: &str = "DYNAMO-ARCHIVE 1";
/// The marker `restore` leaves for the node.
pub const RESTORED_MARKER: &str = "RESTORED";
/// Attempts at a partition whose files keep changing under the snapshot.
const ATTEMPTS: usize = 20;

/// Why an archive could not be written or restored.
#[derive(Debug, Error)]
pub enum ArchiveError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The data directory is not one (no `NODE` file).
    #[error("{0} is not a node's data directory (it has no NODE file)")]
    NotDataDir(PathBuf),
    /// A partition changed under every attempt.
    #[error("{0}: its files changed under {ATTEMPTS} attempts in a row; try again")]
    Unsettled(PathBuf),
    /// The archive is damaged or not an archive.
    #[error("{path}: {reason}")]
    Damaged {
        /// The archive.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// `restore` writes into an empty directory only.
    #[error("{0} is not empty: restore writes into a new or empty data directory only")]
    NotEmpty(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What an archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Partition directories.
    pub partitions: usize,
    /// Files (the `NODE` file, manifests, segments).
    pub files: usize,
    /// Bytes of those files.
    pub bytes: u64,
}

/// One file of the snapshot: its path in the archive and its bytes (an
/// open descriptor and how many of its bytes belong to the snapshot, or
/// the bytes themselves).
pub(crate) struct Taken {
    name: String,
    source: Source,
}

enum Source {
    File { file: File, len: u64 },
    Bytes(Vec<u8>),
}

impl Taken {
    /// The file's name (its last path component).
    pub(crate) fn file_name(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// Reads up to `buffer.len()` bytes of the snapshot's file at `offset`
    /// (fewer only at its end).
    pub(crate) fn read_at(&self, offset: u64, buffer: &mut [u8]) -> std::io::Result<usize> {
        let len = self.len();
        if offset >= len {
            return Ok(0);
        }
        let wanted = buffer.len().min((len - offset) as usize);
        match &self.source {
            Source::Bytes(bytes) => {
                buffer[..wanted].copy_from_slice(&bytes[offset as usize..offset as usize + wanted]);
                Ok(wanted)
            }
            Source::File { file, .. } => {
                std::os::unix::fs::FileExt::read_exact_at(file, &mut buffer[..wanted], offset)?;
                Ok(wanted)
            }
        }
    }

    pub(crate) fn len(&self) -> u64 {
        match &self.source {
            Source::File { len, .. } => *len,
            Source::Bytes(bytes) => bytes.len() as u64,
        }
    }

    /// Copies the snapshot's bytes of the file to `out`; their SHA-256.
    fn copy_to(&mut self, out: &mut dyn Write) -> Result<[u8; 32], ArchiveError> {
        let path = PathBuf::from(&self.name);
        let mut tee = Tee {
            hasher: Sha256::new(),
            out,
        };
        match &mut self.source {
            Source::Bytes(bytes) => tee.write_all(bytes).map_err(io(&path))?,
            Source::File { file, len } => {
                let copied = std::io::copy(&mut Read::by_ref(file).take(*len), &mut tee).map_err(io(&path))?;
                if copied != *len {
                    return Err(ArchiveError::Io {
                        path,
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the file shrank under the snapshot",
                        ),
                    });
                }
            }
        }
        Ok(tee.hasher.finalize().into())
    }
}

/// Opens the partition directory `dir` as one state it passed through
/// (names relative to `data`).
pub(crate) fn take_partition(data: &Path, dir: &Path) -> Result<Vec<Taken>, ArchiveError> {
    let relative = |path: &Path| -> String { path.strip_prefix(data).unwrap_or(path).to_string_lossy().into_owned() };
    let manifest_path = dir.join(MANIFEST_FILE);
    for _ in 0..ATTEMPTS {
        let before = match std::fs::read(&manifest_path) {
            Ok(bytes) => Some(bytes),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(io(&manifest_path)(error)),
        };
        let listed: Vec<String> = before
            .as_deref()
            .map(|bytes| {
                String::from_utf8_lossy(bytes)
                    .lines()
                    .skip(1)
                    .map(|id| format!("{id}.seg"))
                    .collect()
            })
            .unwrap_or_default();
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".seg") && !name.ends_with(COMPACTING_SUFFIX))
            .collect();
        for name in &listed {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        let mut taken = Vec::new();
        let mut vanished = false;
        for name in names {
            let path = dir.join(&name);
            match File::open(&path) {
                Ok(file) => {
                    let len = file.metadata().map_err(io(&path))?.len();
                    taken.push(Taken {
                        name: relative(&path),
                        source: Source::File { file, len },
                    });
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    // Unlinked by compaction between the listing and now: a
                    // listed one means the manifest moved on; start over.
                    vanished |= listed.contains(&name);
                }
                Err(error) => return Err(io(&path)(error)),
            }
        }
        let after = std::fs::read(&manifest_path).ok();
        if vanished || after != before {
            continue;
        }
        if let Some(bytes) = before {
            taken.push(Taken {
                name: relative(&manifest_path),
                source: Source::Bytes(bytes),
            });
        }
        return Ok(taken);
    }
    Err(ArchiveError::Unsettled(dir.to_path_buf()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Writes a snapshot of the data directory `data` to `out` (through a
/// temporary file renamed into place). `progress` hears of each partition
/// taken: (done, total).
///
/// # Errors
/// Not a data directory, a file that cannot be read, the output that
/// cannot be written, a partition that changed under every attempt.
pub fn archive(data: &Path, out: &Path, mut progress: impl FnMut(usize, usize)) -> Result<Summary, ArchiveError> {
    let node = std::fs::read(data.join("NODE")).map_err(|_| ArchiveError::NotDataDir(data.to_path_buf()))?;
    let mut taken = vec![Taken {
        name: "NODE".into(),
        source: Source::Bytes(node),
    }];
    let partitions_dir = data.join("partitions");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&partitions_dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            // Partitions only: the commit log holds nothing their files
            // do not (its batches are written to them as they commit, and
            // a read of a file sees them), and a restore starts a new log.
            .filter(|path| {
                path.is_dir()
                    && path
                        .file_name()
                        .and_then(|name| name.to_str())
                        .and_then(crate::storage::partition::parse_partition_dir)
                        .is_some()
            })
            .collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(io(&partitions_dir)(error)),
    };
    dirs.sort();
    for (index, dir) in dirs.iter().enumerate() {
        taken.extend(take_partition(data, dir)?);
        progress(index + 1, dirs.len());
    }
    // One read of each file: the header goes first with placeholder
    // checksums (a SHA-256 has a fixed width, so the header's length is
    // known before the bytes are read), the bytes are copied and hashed,
    // and the header is written again in place with the real checksums.
    let created = format!(
        "{MAGIC}\ncreated_ms {}\n",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis())
    );
    let listed: Vec<(String, u64)> = taken.iter().map(|item| (item.name.clone(), item.len())).collect();
    let header = |digests: &[[u8; 32]]| {
        let mut lines = created.clone();
        for ((name, len), digest) in listed.iter().zip(digests) {
            lines.push_str(&format!("file {name} {len} {}\n", hex(digest)));
        }
        let end = hex(&Sha256::digest(lines.as_bytes()));
        lines.push_str(&format!("end {end}\n"));
        lines
    };
    let placeholder = header(&vec![[0u8; 32]; taken.len()]);
    let temporary = out.with_extension("partial");
    let file = File::create(&temporary).map_err(io(&temporary))?;
    let mut writer = BufWriter::new(file);
    writer.write_all(placeholder.as_bytes()).map_err(io(&temporary))?;
    let mut bytes = 0;
    let mut digests = Vec::with_capacity(taken.len());
    for item in &mut taken {
        digests.push(item.copy_to(&mut writer)?);
        bytes += item.len();
    }
    let lines = header(&digests);
    debug_assert_eq!(lines.len(), placeholder.len());
    {
        use std::io::{Seek, SeekFrom};
        writer.seek(SeekFrom::Start(0)).map_err(io(&temporary))?;
        writer.write_all(lines.as_bytes()).map_err(io(&temporary))?;
    }
    let file = writer
        .into_inner()
        .map_err(|error| io(&temporary)(error.into_error()))?;
    file.sync_all().map_err(io(&temporary))?;
    std::fs::rename(&temporary, out).map_err(io(out))?;
    if let Some(parent) = out.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        File::open(parent).and_then(|dir| dir.sync_all()).map_err(io(parent))?;
    }
    Ok(Summary {
        partitions: dirs.len(),
        files: taken.len(),
        bytes,
    })
}

/// One listed file of an archive.
struct Listed {
    name: String,
    len: u64,
    sha256: String,
}

/// Reads an archive's header: the listed files, checked against the
/// header's own checksum; leaves `reader` at the first file's bytes.
fn read_header(path: &Path, reader: &mut impl BufRead) -> Result<Vec<Listed>, ArchiveError> {
    let damaged = |line: usize, reason: String| ArchiveError::Damaged {
        path: path.to_path_buf(),
        reason: format!("line {line}: {reason}"),
    };
    let mut text = String::new();
    let mut listed = Vec::new();
    for number in 1.. {
        let mut line = String::new();
        let read = reader.by_ref().take(64 * 1024).read_line(&mut line).map_err(io(path))?;
        if read == 0 || !line.ends_with('\n') {
            return Err(damaged(number, "the header ends before its `end` line".into()));
        }
        let content = line.trim_end_matches('\n');
        if number == 1 {
            if content != MAGIC {
                return Err(damaged(1, format!("not a dynamo archive (expected {MAGIC:?})")));
            }
        } else if let Some(sum) = content.strip_prefix("end ") {
            let expected = hex(&Sha256::digest(text.as_bytes()));
            if sum != expected {
                return Err(damaged(
                    number,
                    "the header's checksum does not match: it is damaged".into(),
                ));
            }
            return Ok(listed);
        } else if let Some(rest) = content.strip_prefix("file ") {
            let parts: Vec<&str> = rest.rsplitn(3, ' ').collect();
            let [sha256, len, name] = parts[..] else {
                return Err(damaged(
                    number,
                    "a file line needs a path, a length and a checksum".into(),
                ));
            };
            let len: u64 = len
                .parse()
                .map_err(|_| damaged(number, format!("length {len:?} is not a number")))?;
            let safe = !name.is_empty()
                && Path::new(name)
                    .components()
                    .all(|part| matches!(part, std::path::Component::Normal(_)));
            if !safe {
                return Err(damaged(number, format!("path {name:?} leaves the data directory")));
            }
            listed.push(Listed {
                name: name.to_string(),
                len,
                sha256: sha256.to_string(),
            });
        } else if !content.starts_with("created_ms ") {
            return Err(damaged(number, format!("unknown line {content:?}")));
        }
        text.push_str(&line);
    }
    unreachable!("the loop returns")
}

/// Checks every file of `archive` against its checksum, then writes them
/// into `data` (new or empty), syncs them, and leaves the `RESTORED`
/// marker.
///
/// # Errors
/// A damaged archive (nothing is written then), a non-empty `data`, a file
/// that cannot be written.
pub fn restore(archive: &Path, data: &Path) -> Result<Summary, ArchiveError> {
    let open = || -> Result<BufReader<File>, ArchiveError> {
        Ok(BufReader::with_capacity(
            1 << 20,
            File::open(archive).map_err(io(archive))?,
        ))
    };
    let mut reader = open()?;
    let listed = read_header(archive, &mut reader)?;
    if listed.first().map(|file| file.name.as_str()) != Some("NODE") {
        return Err(ArchiveError::Damaged {
            path: archive.to_path_buf(),
            reason: "the first file is not NODE".into(),
        });
    }
    // First pass: every checksum, before anything is written.
    for file in &listed {
        let mut tee = Tee {
            hasher: Sha256::new(),
            out: &mut std::io::sink(),
        };
        let copied = std::io::copy(&mut reader.by_ref().take(file.len), &mut tee).map_err(io(archive))?;
        if copied != file.len || hex(&tee.hasher.finalize()) != file.sha256 {
            return Err(ArchiveError::Damaged {
                path: archive.to_path_buf(),
                reason: format!("{}: its bytes do not match its checksum (or are cut short)", file.name),
            });
        }
    }
    if std::fs::read_dir(data).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(ArchiveError::NotEmpty(data.to_path_buf()));
    }
    crate::data_dir::create_durably(data).map_err(io(data))?;
    let mut reader = open()?;
    read_header(archive, &mut reader)?;
    let mut dirs = std::collections::BTreeSet::new();
    let mut bytes = 0;
    for file in &listed {
        let path = data.join(&file.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
            dirs.insert(parent.to_path_buf());
        }
        let mut out = File::create(&path).map_err(io(&path))?;
        std::io::copy(&mut reader.by_ref().take(file.len), &mut out).map_err(io(&path))?;
        out.sync_all().map_err(io(&path))?;
        bytes += file.len;
    }
    for dir in dirs.iter().rev() {
        File::open(dir).and_then(|dir| dir.sync_all()).map_err(io(dir))?;
    }
    crate::data_dir::write_atomically(&data.join(RESTORED_MARKER), &format!("{}\n", archive.display()))
        .map_err(io(data))?;
    Ok(Summary {
        partitions: dirs
            .iter()
            .filter(|dir| dir.parent() == Some(&data.join("partitions")))
            .count(),
        files: listed.len(),
        bytes,
    })
}

/// Writes through to `out`, hashing what passes.
struct Tee<'a> {
    hasher: Sha256,
    out: &'a mut dyn Write,
}

impl Write for Tee<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.out.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
