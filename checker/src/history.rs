//! Reading a history (shared/HISTORY.md) into a compact, interned form.
//!
//! Lines are parsed one at a time (`BufRead`), so nothing but the compact
//! operations is held: keys, value ids and node names are interned to
//! `u32`, and the value lists of every operation live in one flat arena.
//! A line that is not a well-formed event is a [`ReadError`] naming its
//! line number; an event that is well formed but breaks the history's own
//! rules (a completion without an invoke, a reused value id, a context
//! naming a value no get returned yet, time going backwards) is kept as a
//! `history` finding and the checker goes on.
//!
//! Unknown fields are ignored: the format grows only by optional fields.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::ids::IdMap;
use crate::names::Names;
use std::io::BufRead;

use serde::Deserialize;
use thiserror::Error;

/// Why a history could not be read at all.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// A line is not a well-formed event.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The file holds no event at all: nothing was recorded, so there is
    /// nothing to judge (a valid verdict would be a lie).
    #[error("{path}: the history holds no events: nothing was recorded")]
    Empty {
        /// The file.
        path: String,
    },
}

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Read the siblings of a key.
    Get,
    /// Write a value with a context.
    Put,
    /// Write a tombstone with a context.
    Delete,
}

impl Kind {
    /// The `f` field's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Get => "get",
            Kind::Put => "put",
            Kind::Delete => "delete",
        }
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Took effect (for a get: returned `values`).
    Ok,
    /// Definitely did not take effect.
    Fail,
    /// Indeterminate: may or may not have taken effect.
    Info,
    /// No completion in the history: counts as `info`.
    Open,
}

/// A range in [`History::arena`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

/// One operation, from its invoke to its completion.
#[derive(Clone, Debug)]
pub struct Operation {
    /// The `op` id in the history.
    pub id: u64,
    /// The logical client.
    pub process: u64,
    /// What it does.
    pub kind: Kind,
    /// Interned key.
    pub key: u32,
    /// For put/delete: the interned value id written.
    pub value: u32,
    /// For put/delete: the value ids its context covers.
    pub context: Span,
    /// For an `ok` get: the values returned.
    pub values: Span,
    /// How it ended.
    pub outcome: Outcome,
    /// Position of the invoke event among all events (observation order).
    pub invoke_seq: u64,
    /// Position of the completion event (`u64::MAX` when open).
    pub complete_seq: u64,
    /// `time_ns` of the invoke.
    pub invoke_ns: u64,
    /// `time_ns` of the completion (`u64::MAX` when open).
    pub complete_ns: u64,
    /// The invoke was marked `"final": true`.
    pub is_final: bool,
    /// The node the request went to (interned), if named.
    pub node: Option<u32>,
    /// Line number of the invoke, for messages.
    pub line: u64,
}

/// A problem with the history itself (invariant 7), found while reading.
#[derive(Clone, Debug)]
pub struct HistoryProblem {
    /// Line number.
    pub line: u64,
    /// The operation ids involved.
    pub ops: Vec<u64>,
    /// The key, when one is involved.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Where a value id comes from.
#[derive(Clone, Copy, Debug)]
pub struct Writer {
    /// Index in [`History::operations`] of the put or delete writing it.
    pub operation: u32,
}

/// A whole history, interned.
#[derive(Debug, Default)]
pub struct History {
    /// Every operation, in invoke order.
    pub operations: Vec<Operation>,
    /// Key names, by interned id.
    pub keys: Vec<String>,
    /// Value id names, by interned id (`value_names[id]`).
    pub value_names: Names,
    /// For each value id, the operation that wrote it (if any did).
    pub writers: Vec<Option<Writer>>,
    /// Node names, by interned id.
    pub nodes: Vec<String>,
    /// The value lists of every operation.
    pub arena: Vec<u32>,
    /// Problems with the history itself.
    pub problems: Vec<HistoryProblem>,
    /// The fault events, in file order.
    pub faults: Vec<FaultEvent>,
    /// Key retirements, in order.
    pub retirements: Vec<Retirement>,
    /// Number of events read.
    pub events: u64,
}

impl History {
    /// The value ids in `span`.
    pub fn ids(&self, span: Span) -> &[u32] {
        &self.arena[span.start as usize..(span.start + span.len) as usize]
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", borrow)]
    event: Cow<'a, str>,
    process: u64,
    op: u64,
    #[serde(borrow)]
    f: Cow<'a, str>,
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    value: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    context: Option<Vec<Cow<'a, str>>>,
    #[serde(default, borrow)]
    values: Option<Vec<Cow<'a, str>>>,
    #[serde(default, borrow)]
    node: Option<Cow<'a, str>>,
    time_ns: u64,
    #[serde(default, rename = "final")]
    is_final: Option<bool>,
}

/// A `fault` event line.
#[derive(Deserialize)]
struct FaultLine<'a> {
    #[serde(rename = "type", borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    fault: Cow<'a, str>,
    #[serde(borrow)]
    phase: Cow<'a, str>,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    detail: Option<String>,
    time_ns: u64,
}

/// A `retire` event line (HISTORY.md, "Key retirement").
#[derive(Deserialize)]
struct RetireLine {
    #[serde(rename = "type")]
    event: String,
    keys: Vec<String>,
    time_ns: u64,
}

/// Keys the driver retired: no operation on them follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retirement {
    /// The line of the event.
    pub line: u64,
    /// The keys retired.
    pub keys: Vec<String>,
    /// When.
    pub time_ns: u64,
}

/// What the nemesis did, as the history recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultEvent {
    /// 1-based line number.
    pub line: u64,
    /// `kill`, `pause`, `partition`, ... (an open set).
    pub fault: String,
    /// `start` or `end`.
    pub phase: String,
    /// The nodes, or the groups of a partition.
    pub targets: Vec<String>,
    /// How it was done, in words.
    pub detail: Option<String>,
    /// When.
    pub time_ns: u64,
}

/// Operation ids seen: a bitset for ids below 2^31 (a driver numbers its
/// operations from zero), a set for the others.
#[derive(Default)]
struct SeenIds {
    dense: Vec<u64>,
    sparse: std::collections::HashSet<u64>,
}

impl SeenIds {
    const DENSE_BELOW: u64 = 1 << 31;

    /// Adds `id`; false when it was there already.
    fn insert(&mut self, id: u64) -> bool {
        if id >= Self::DENSE_BELOW {
            return self.sparse.insert(id);
        }
        let word = (id / 64) as usize;
        if word >= self.dense.len() {
            self.dense.resize((word + 1).next_power_of_two(), 0);
        }
        let bit = 1u64 << (id % 64);
        let fresh = self.dense[word] & bit == 0;
        self.dense[word] |= bit;
        fresh
    }

    fn contains(&self, id: u64) -> bool {
        if id >= Self::DENSE_BELOW {
            return self.sparse.contains(&id);
        }
        self.dense
            .get((id / 64) as usize)
            .is_some_and(|word| word >> (id % 64) & 1 == 1)
    }
}

struct Interner {
    ids: HashMap<String, u32>,
}

impl Interner {
    fn new() -> Interner {
        Interner { ids: HashMap::new() }
    }

    fn intern(&mut self, names: &mut Vec<String>, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = names.len() as u32;
        names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }
}

/// Reads a history from `reader`; `path` names it in messages.
///
/// # Errors
/// The reader fails, or a line is not a well-formed event (the error names
/// the line).
pub fn read(path: &str, reader: impl BufRead + Send) -> Result<History, ReadError> {
    Reader::new(path).read(reader, &mut |_| {})
}

/// Reads the history file at `path` (`.jsonl`; `.gz` and `.zst` are not
/// supported and say so).
///
/// # Errors
/// As [`read`]; and a file with no event at all is [`ReadError::Empty`].
pub fn read_file(path: &std::path::Path) -> Result<History, ReadError> {
    read_file_with(path, &mut |_, _| {})
}

/// As [`read_file`], calling `progress(bytes_read, bytes_in_file)` as it
/// goes (every 16 MiB), for a progress line on long histories.
///
/// # Errors
/// As [`read_file`].
pub fn read_file_with(path: &std::path::Path, progress: &mut dyn FnMut(u64, u64)) -> Result<History, ReadError> {
    let name = path.display().to_string();
    if name.ends_with(".gz") || name.ends_with(".zst") {
        return Err(ReadError::Malformed {
            path: name,
            line: 0,
            message: "compressed histories are not supported by this checker: decompress to .jsonl first".into(),
        });
    }
    let file = std::fs::File::open(path).map_err(|source| ReadError::Io {
        path: name.clone(),
        source,
    })?;
    let total = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let mut reported = 0;
    let history = Reader::new(&name).read(std::io::BufReader::with_capacity(1 << 20, file), &mut |read| {
        if read - reported >= 16 << 20 {
            reported = read;
            progress(read, total);
        }
    })?;
    if history.events == 0 {
        return Err(ReadError::Empty { path: name });
    }
    Ok(history)
}

/// Reading in two stages: a thread splits the text into lines and parses
/// each line's JSON (a third of the reading time), the caller's thread
/// interns and checks what was parsed, in order. Parsed strings are
/// ranges of their batch's text, so nothing is copied between the two.
mod parsed {
    use std::borrow::Cow;
    use std::io::BufRead;

    use super::Line;

    /// A string of a parsed line: a range of the batch's text, or (when
    /// JSON escapes made serde build it) one of the batch's own strings.
    #[derive(Clone, Copy)]
    pub(super) enum Piece {
        At(u32, u32),
        Own(u32),
    }

    /// An operation event's fields.
    pub(super) struct Fields {
        event: Piece,
        process: u64,
        op: u64,
        f: Piece,
        key: Option<Piece>,
        value: Option<Piece>,
        /// Ranges of [`Batch::pieces`].
        context: Option<(u32, u32)>,
        values: Option<(u32, u32)>,
        node: Option<Piece>,
        time_ns: u64,
        is_final: Option<bool>,
    }

    /// One line, as the parsing thread left it.
    pub(super) enum Parsed {
        /// Anything else (blank, fault, retire, or a line to be read whole
        /// by the reader): this range of the text.
        Whole(u32, u32),
        Event(Fields),
        Malformed(String),
    }

    /// About a megabyte of lines.
    pub(super) struct Batch {
        pub(super) text: String,
        pub(super) lines: Vec<Parsed>,
        pieces: Vec<Piece>,
        owned: Vec<String>,
        /// Bytes of the input read up to the end of this batch.
        pub(super) read: u64,
    }

    impl Batch {
        fn piece(&mut self, text: &str, string: Cow<'_, str>) -> Piece {
            match string {
                Cow::Borrowed(borrowed) => {
                    let start = borrowed.as_ptr() as usize - text.as_ptr() as usize;
                    Piece::At(start as u32, borrowed.len() as u32)
                }
                Cow::Owned(owned) => {
                    self.owned.push(owned);
                    Piece::Own(self.owned.len() as u32 - 1)
                }
            }
        }

        fn list(&mut self, text: &str, list: Option<Vec<Cow<'_, str>>>) -> Option<(u32, u32)> {
            let list = list?;
            let start = self.pieces.len() as u32;
            for string in list {
                let piece = self.piece(text, string);
                self.pieces.push(piece);
            }
            Some((start, self.pieces.len() as u32 - start))
        }

        fn resolve(&self, piece: Piece) -> &str {
            match piece {
                Piece::At(start, len) => &self.text[start as usize..(start + len) as usize],
                Piece::Own(index) => &self.owned[index as usize],
            }
        }

        /// The line's fields, borrowed from the batch.
        pub(super) fn line(&self, fields: &Fields) -> Line<'_> {
            let one = |piece: Piece| Cow::Borrowed(self.resolve(piece));
            let list = |range: Option<(u32, u32)>| {
                range.map(|(start, len)| {
                    self.pieces[start as usize..(start + len) as usize]
                        .iter()
                        .map(|&piece| one(piece))
                        .collect()
                })
            };
            Line {
                event: one(fields.event),
                process: fields.process,
                op: fields.op,
                f: one(fields.f),
                key: fields.key.map(one),
                value: fields.value.map(one),
                context: list(fields.context),
                values: list(fields.values),
                node: fields.node.map(one),
                time_ns: fields.time_ns,
                is_final: fields.is_final,
            }
        }
    }

    /// Parses `text` (whole lines) into a batch.
    fn parse(text: String, read: u64) -> Batch {
        let mut batch = Batch {
            text: String::new(),
            lines: Vec::new(),
            pieces: Vec::new(),
            owned: Vec::new(),
            read,
        };
        let mut start = 0;
        while start < text.len() {
            let end = text[start..].find('\n').map_or(text.len(), |at| start + at + 1);
            let whole = Parsed::Whole(start as u32, (end - start) as u32);
            let trimmed = text[start..end].trim();
            // Fault and retire events (and blank lines) are read whole by
            // the reader, as any line it would rather see itself.
            let parsed = if trimmed.is_empty() || trimmed.contains("\"fault\"") || trimmed.contains("\"retire\"") {
                whole
            } else {
                match serde_json::from_str::<Line>(trimmed) {
                    Ok(line) => {
                        let fields = Fields {
                            event: batch.piece(&text, line.event),
                            process: line.process,
                            op: line.op,
                            f: batch.piece(&text, line.f),
                            key: line.key.map(|key| batch.piece(&text, key)),
                            value: line.value.map(|value| batch.piece(&text, value)),
                            context: batch.list(&text, line.context),
                            values: batch.list(&text, line.values),
                            node: line.node.map(|node| batch.piece(&text, node)),
                            time_ns: line.time_ns,
                            is_final: line.is_final,
                        };
                        Parsed::Event(fields)
                    }
                    Err(error) => Parsed::Malformed(error.to_string()),
                }
            };
            batch.lines.push(parsed);
            start = end;
        }
        batch.text = text;
        batch
    }

    /// Reads `reader` on this thread, sending parsed batches until the
    /// input ends or the receiver is gone.
    pub(super) fn produce(mut reader: impl BufRead, send: &std::sync::mpsc::SyncSender<std::io::Result<Batch>>) {
        const BATCH: usize = 1 << 20;
        let mut read = 0u64;
        loop {
            let mut text = String::with_capacity(BATCH + 4096);
            let mut ended = false;
            while text.len() < BATCH {
                match reader.read_line(&mut text) {
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(bytes) => read += bytes as u64,
                    Err(error) => {
                        let _ = send.send(Err(error));
                        return;
                    }
                }
            }
            if !text.is_empty() && send.send(Ok(parse(text, read))).is_err() {
                return;
            }
            if ended {
                return;
            }
        }
    }
}

/// What one line of a history did (for [`crate::check::Incremental`]).
#[derive(Debug)]
pub(crate) enum Step {
    /// Nothing to judge: a blank line, a fault event, or an event that
    /// only broke the history's rules (a problem was recorded).
    Nothing,
    /// These keys were retired.
    Retired(Vec<u32>),
    /// The operation at this index was invoked.
    Invoked(u32),
    /// The operation at this index completed.
    Completed(u32),
}

/// Old index → new index (or `u32::MAX`: dropped), after
/// [`Reader::compact`].
pub(crate) struct Remap {
    pub(crate) operations: Vec<u32>,
    pub(crate) values: Vec<u32>,
}

pub(crate) struct Reader {
    path: String,
    pub(crate) history: History,
    keys: Interner,
    nodes: Interner,
    /// The running operation of each process, by index.
    running: IdMap<u64, u32>,
    /// Running operations by id, to index completions.
    by_id: IdMap<u64, u32>,
    /// Every operation id seen (one bit each for ids below 2^31).
    seen_ids: SeenIds,
    /// Processes that ended in `info`: never to be reused.
    retired: HashMap<u64, u64>,
    /// Values some get has returned so far.
    returned: Vec<bool>,
    /// Retired keys, with the line that retired them.
    retired_keys: HashMap<u32, u64>,
    last_time_ns: u64,
}

impl Reader {
    pub(crate) fn new(path: &str) -> Reader {
        Reader {
            path: path.to_string(),
            history: History::default(),
            keys: Interner::new(),
            nodes: Interner::new(),
            running: IdMap::default(),
            by_id: IdMap::default(),
            seen_ids: SeenIds::default(),
            retired: HashMap::new(),
            returned: Vec::new(),
            retired_keys: HashMap::new(),
            last_time_ns: 0,
        }
    }

    fn malformed(&self, line: u64, message: impl Into<String>) -> ReadError {
        ReadError::Malformed {
            path: self.path.clone(),
            line,
            message: message.into(),
        }
    }

    fn problem(&mut self, line: u64, ops: Vec<u64>, key: Option<u32>, message: String) {
        let key = key.map(|key| self.history.keys[key as usize].clone());
        self.history.problems.push(HistoryProblem {
            line,
            ops,
            key,
            message,
        });
    }

    fn value_id(&mut self, name: &str) -> u32 {
        let id = self.history.value_names.intern(name);
        if id as usize >= self.history.writers.len() {
            self.history.writers.push(None);
            self.returned.push(false);
        }
        id
    }

    /// Reads everything, parsing on a second thread (see [`parsed`]);
    /// `progress` is told the bytes read after each batch.
    fn read(mut self, reader: impl BufRead + Send, progress: &mut dyn FnMut(u64)) -> Result<History, ReadError> {
        let (send, receive) = std::sync::mpsc::sync_channel(4);
        std::thread::scope(|scope| {
            scope.spawn(move || parsed::produce(reader, &send));
            let mut number = 0u64;
            for batch in receive {
                let batch = batch.map_err(|source| ReadError::Io {
                    path: self.path.clone(),
                    source,
                })?;
                for line in &batch.lines {
                    number += 1;
                    match line {
                        parsed::Parsed::Whole(start, len) => {
                            self.line(number, &batch.text[*start as usize..(start + len) as usize])?;
                        }
                        parsed::Parsed::Event(fields) => {
                            self.event(number, batch.line(fields))?;
                        }
                        parsed::Parsed::Malformed(message) => return Err(self.malformed(number, message.clone())),
                    }
                }
                progress(batch.read);
            }
            Ok(())
        })?;
        Ok(self.history)
    }

    /// Reads line `number` of the history.
    pub(crate) fn line(&mut self, number: u64, text: &str) -> Result<Step, ReadError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Ok(Step::Nothing);
        }
        // Fault events (HISTORY.md, "Fault events") carry no process or
        // op: they are counted, and decide nothing.
        if trimmed.contains("\"fault\"") {
            if let Ok(fault) = serde_json::from_str::<FaultLine>(trimmed) {
                if fault.event == "fault" {
                    self.fault(number, fault);
                    return Ok(Step::Nothing);
                }
            }
        }
        // Key retirement (HISTORY.md, "Key retirement").
        if trimmed.contains("\"retire\"") {
            if let Ok(retire) = serde_json::from_str::<RetireLine>(trimmed) {
                if retire.event == "retire" {
                    return Ok(Step::Retired(self.retire(number, retire)));
                }
            }
        }
        let line: Line = serde_json::from_str(trimmed).map_err(|error| self.malformed(number, error.to_string()))?;
        self.event(number, line)
    }

    /// Drops every operation `keep` refuses (given its index), with the
    /// value ids only they name, renumbering what stays (operations in the
    /// same order). Value ids of dropped operations are forgotten (a later
    /// reuse of one is not reported), but for values a get returned that
    /// no put wrote (a context may still name them). Key names and op ids
    /// stay: an operation on a retired key, or a reused op id, must still
    /// be reported.
    pub(crate) fn compact(&mut self, keep: &dyn Fn(u32, &Operation) -> bool) -> Remap {
        // In place, so that compacting never holds two stores at once:
        // survivors move down, values keep their relative order.
        let history = &mut self.history;
        let mut remap = Remap {
            operations: Vec::with_capacity(history.operations.len()),
            values: vec![u32::MAX; history.value_names.len()],
        };
        let mut kept = 0u32;
        for (index, operation) in history.operations.iter().enumerate() {
            if keep(index as u32, operation) {
                remap.operations.push(kept);
                kept += 1;
            } else {
                remap.operations.push(u32::MAX);
            }
        }
        // Values still named: by a survivor, or returned and never written
        // (a context may still name one).
        let mut used = vec![false; history.value_names.len()];
        for (index, operation) in history.operations.iter().enumerate() {
            if remap.operations[index] == u32::MAX {
                continue;
            }
            if operation.value != u32::MAX {
                used[operation.value as usize] = true;
            }
            for span in [operation.context, operation.values] {
                for &id in history.ids(span) {
                    used[id as usize] = true;
                }
            }
        }
        let mut fresh = 0u32;
        for (old, used) in used.iter_mut().enumerate() {
            *used |= self.returned[old] && history.writers[old].is_none();
            if *used {
                remap.values[old] = fresh;
                fresh += 1;
            }
        }
        history.value_names.retain(&used);
        let (mut old, mut writers) = (0, std::mem::take(&mut history.writers));
        writers.retain(|_| {
            old += 1;
            used[old - 1]
        });
        let mut old = 0;
        self.returned.retain(|_| {
            old += 1;
            used[old - 1]
        });
        // Writers point at operations: renumbered, or gone with them.
        for writer in &mut writers {
            if let Some(at) = writer {
                let index = remap.operations[at.operation as usize];
                *writer = (index != u32::MAX).then_some(Writer { operation: index });
            }
        }
        history.writers = writers;
        let arena = std::mem::take(&mut history.arena);
        let mut old = 0;
        history.operations.retain(|_| {
            old += 1;
            remap.operations[old - 1] != u32::MAX
        });
        for operation in &mut history.operations {
            if operation.value != u32::MAX {
                operation.value = remap.values[operation.value as usize];
            }
            for span in [&mut operation.context, &mut operation.values] {
                let start = history.arena.len() as u32;
                history.arena.extend(
                    arena[span.start as usize..(span.start + span.len) as usize]
                        .iter()
                        .map(|&id| remap.values[id as usize]),
                );
                span.start = start;
            }
        }
        let operations = &remap.operations;
        self.running.retain(|_, index| {
            *index = operations[*index as usize];
            *index != u32::MAX
        });
        self.by_id.retain(|_, index| {
            *index = operations[*index as usize];
            *index != u32::MAX
        });
        remap
    }

    fn fault(&mut self, number: u64, line: FaultLine<'_>) {
        self.history.events += 1;
        if line.phase != "start" && line.phase != "end" {
            self.problem(
                number,
                Vec::new(),
                None,
                format!("a fault event's phase is {:?}, not start or end", line.phase),
            );
        }
        self.history.faults.push(FaultEvent {
            line: number,
            fault: line.fault.into_owned(),
            phase: line.phase.into_owned(),
            targets: line.targets,
            detail: line.detail,
            time_ns: line.time_ns,
        });
    }

    /// Retires keys: an operation still running on one, or any operation
    /// on one later, is a history problem.
    fn retire(&mut self, number: u64, line: RetireLine) -> Vec<u32> {
        self.history.events += 1;
        let mut running: Vec<(u32, u64)> = self
            .running
            .values()
            .map(|&index| {
                let operation = &self.history.operations[index as usize];
                (operation.key, operation.id)
            })
            .collect();
        running.sort_unstable();
        let mut keys = Vec::with_capacity(line.keys.len());
        for name in &line.keys {
            let key = self.keys.intern(&mut self.history.keys, name);
            keys.push(key);
            for &(_, op) in running.iter().filter(|(running_key, _)| *running_key == key) {
                self.problem(
                    number,
                    vec![op],
                    Some(key),
                    format!("key {name:?} is retired while op {op} on it is still running"),
                );
            }
            if let Some(&earlier) = self.retired_keys.get(&key) {
                self.problem(
                    number,
                    Vec::new(),
                    Some(key),
                    format!("key {name:?} is retired again (first at line {earlier})"),
                );
            }
            self.retired_keys.insert(key, number);
        }
        self.history.retirements.push(Retirement {
            line: number,
            keys: line.keys,
            time_ns: line.time_ns,
        });
        keys
    }

    fn event(&mut self, number: u64, line: Line) -> Result<Step, ReadError> {
        let seq = self.history.events;
        self.history.events += 1;
        let kind = match line.f.as_ref() {
            "get" => Kind::Get,
            "put" => Kind::Put,
            "delete" => Kind::Delete,
            other => return Err(self.malformed(number, format!("f: {other:?} is not get, put or delete"))),
        };
        if line.time_ns < self.last_time_ns {
            self.problem(
                number,
                vec![line.op],
                None,
                format!("time_ns goes backwards: {} after {}", line.time_ns, self.last_time_ns),
            );
        }
        self.last_time_ns = self.last_time_ns.max(line.time_ns);
        match line.event.as_ref() {
            "invoke" => self.invoke(number, seq, kind, line),
            "ok" | "fail" | "info" => self.complete(number, seq, kind, line),
            other => Err(self.malformed(number, format!("type: {other:?} is not invoke, ok, fail or info"))),
        }
    }

    fn invoke(&mut self, number: u64, seq: u64, kind: Kind, line: Line) -> Result<Step, ReadError> {
        let Some(key_name) = line.key.as_deref() else {
            return Err(self.malformed(number, "an invoke needs a key"));
        };
        let key = self.keys.intern(&mut self.history.keys, key_name);
        if !self.seen_ids.insert(line.op) {
            self.problem(
                number,
                vec![line.op],
                Some(key),
                format!("op id {} is used twice", line.op),
            );
            return Ok(Step::Nothing);
        }
        if let Some(&running) = self.running.get(&line.process) {
            let other = self.history.operations[running as usize].id;
            self.problem(
                number,
                vec![other, line.op],
                Some(key),
                format!(
                    "process {} invokes op {} while op {other} is running",
                    line.process, line.op
                ),
            );
        }
        if let Some(&retired_at) = self.retired_keys.get(&key) {
            self.problem(
                number,
                vec![line.op],
                Some(key),
                format!("op {} on key {key_name:?}, which line {retired_at} retired", line.op),
            );
        }
        if let Some(&ended) = self.retired.get(&line.process) {
            self.problem(
                number,
                vec![ended, line.op],
                Some(key),
                format!("process {} is reused after its op {ended} ended in info", line.process),
            );
        }
        let index = self.history.operations.len() as u32;
        let mut value = u32::MAX;
        let mut context = Span::default();
        if kind != Kind::Get {
            let Some(value_name) = line.value.as_deref() else {
                return Err(self.malformed(number, format!("a {} invoke needs a value", kind.name())));
            };
            let Some(context_names) = line.context.as_ref() else {
                return Err(self.malformed(number, format!("a {} invoke needs a context", kind.name())));
            };
            value = self.value_id(value_name);
            if let Some(writer) = self.history.writers[value as usize] {
                let other = self.history.operations[writer.operation as usize].id;
                self.problem(
                    number,
                    vec![other, line.op],
                    Some(key),
                    format!("value id {value_name:?} is written twice"),
                );
            } else {
                self.history.writers[value as usize] = Some(Writer { operation: index });
            }
            let start = self.history.arena.len() as u32;
            for name in context_names {
                let id = self.value_id(name);
                if !self.returned[id as usize] {
                    self.problem(
                        number,
                        vec![line.op],
                        Some(key),
                        format!("the context names {name:?}, which no get returned before this put"),
                    );
                }
                self.history.arena.push(id);
            }
            context = Span {
                start,
                len: context_names.len() as u32,
            };
        }
        let node = line
            .node
            .as_deref()
            .map(|name| self.nodes.intern(&mut self.history.nodes, name));
        self.running.insert(line.process, index);
        self.by_id.insert(line.op, index);
        self.history.operations.push(Operation {
            id: line.op,
            process: line.process,
            kind,
            key,
            value,
            context,
            values: Span::default(),
            outcome: Outcome::Open,
            invoke_seq: seq,
            complete_seq: u64::MAX,
            invoke_ns: line.time_ns,
            complete_ns: u64::MAX,
            is_final: line.is_final.unwrap_or(false),
            node,
            line: number,
        });
        Ok(Step::Invoked(index))
    }

    fn complete(&mut self, number: u64, seq: u64, kind: Kind, line: Line) -> Result<Step, ReadError> {
        let outcome = match line.event.as_ref() {
            "ok" => Outcome::Ok,
            "fail" => Outcome::Fail,
            _ => Outcome::Info,
        };
        let Some(index) = self.by_id.remove(&line.op) else {
            let message = if self.seen_ids.contains(line.op) {
                format!("op {} completes twice", line.op)
            } else {
                format!("a completion of op {} that was never invoked", line.op)
            };
            self.problem(number, vec![line.op], None, message);
            return Ok(Step::Nothing);
        };
        let operation = &self.history.operations[index as usize];
        let key = operation.key;
        if operation.process != line.process || operation.kind != kind {
            let message = format!(
                "the completion of op {} says process {} f {}, its invoke said process {} f {}",
                line.op,
                line.process,
                kind.name(),
                operation.process,
                operation.kind.name()
            );
            // Still running, for a completion that matches.
            self.by_id.insert(line.op, index);
            self.problem(number, vec![line.op], Some(key), message);
            return Ok(Step::Nothing);
        }
        let mut values = Span::default();
        if kind == Kind::Get && outcome == Outcome::Ok {
            let Some(names) = line.values.as_ref() else {
                return Err(self.malformed(number, "an ok get needs values"));
            };
            let start = self.history.arena.len() as u32;
            for name in names {
                let id = self.value_id(name);
                self.returned[id as usize] = true;
                self.history.arena.push(id);
            }
            values = Span {
                start,
                len: names.len() as u32,
            };
        }
        let operation = &mut self.history.operations[index as usize];
        operation.outcome = outcome;
        operation.values = values;
        operation.complete_seq = seq;
        operation.complete_ns = line.time_ns;
        if self.running.get(&line.process) == Some(&index) {
            self.running.remove(&line.process);
        }
        if outcome == Outcome::Info {
            self.retired.insert(line.process, line.op);
        }
        Ok(Step::Completed(index))
    }
}
