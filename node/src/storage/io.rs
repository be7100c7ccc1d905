//! The two ways the storage thread writes what must reach the disk now:
//! io_uring (batched submissions, each write linked to its fdatasync; the
//! commit log's `O_DIRECT` write) and, where io_uring cannot be set up,
//! ordinary positioned writes with `fdatasync`. Buffered writes that need
//! no sync are plain pwrites on either (see `Writer::commit`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::sync::{Arc, Once};

use io_uring::{opcode, squeue, types, IoUring};

use crate::limits::RING_ENTRIES;

/// How the engine should write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IoMode {
    /// io_uring if the kernel lets us set up a ring, positioned I/O
    /// otherwise (said once in the log).
    #[default]
    Auto,
    /// io_uring or an error at open.
    Uring,
    /// Positioned writes and `fdatasync` through ordinary system calls.
    Positioned,
}

/// Which backend an engine ended up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoBackendKind {
    /// io_uring.
    Uring,
    /// `pwrite` + `fdatasync`.
    Positioned,
}

/// One file's share of a group commit: bytes to write at an offset, then
/// (if `sync`) one `fdatasync` covering them.
#[derive(Debug)]
pub(crate) struct WriteOp {
    pub file: Arc<File>,
    pub offset: u64,
    pub bytes: OpBytes,
    pub sync: bool,
}

/// What a [`WriteOp`] writes: an ordinary buffer, or one aligned for a file
/// opened with `O_DIRECT` (the commit log).
#[derive(Debug)]
pub(crate) enum OpBytes {
    /// Any buffer (buffered files).
    Plain(Vec<u8>),
    /// Aligned to [`BLOCK`] in memory and in length.
    Aligned(AlignedBuf),
}

impl From<Vec<u8>> for OpBytes {
    fn from(bytes: Vec<u8>) -> Self {
        OpBytes::Plain(bytes)
    }
}

impl std::ops::Deref for OpBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            OpBytes::Plain(bytes) => bytes,
            OpBytes::Aligned(bytes) => bytes.as_slice(),
        }
    }
}

/// The block `O_DIRECT` writes are aligned to, in memory, offset and length.
pub(crate) const BLOCK: usize = 4096;

/// An x86-64 huge page (see [`AlignedBuf::align`]).
const HUGE_PAGE: usize = 2 << 20;

/// A growable buffer whose memory starts on a [`BLOCK`] boundary, as
/// `O_DIRECT` needs; [`AlignedBuf::pad`] zero-fills it to a whole block.
pub(crate) struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: the buffer owns its allocation, as a Vec<u8> does.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access is read-only (`as_slice`).
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// An empty buffer with room for `capacity` bytes (at least a block).
    pub(crate) fn with_capacity(capacity: usize) -> AlignedBuf {
        let capacity = capacity.max(BLOCK).next_multiple_of(Self::align(capacity));
        let layout = Self::layout(capacity);
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let ptr = std::ptr::NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        if layout.align() == HUGE_PAGE {
            // SAFETY: the range is this buffer's own allocation. Advice
            // only: where transparent huge pages are off, nothing changes.
            // Given before the first touch, which is what faults pages in.
            unsafe { libc::madvise(raw.cast(), capacity, libc::MADV_HUGEPAGE) };
        }
        // SAFETY: `capacity` bytes from `raw` are this allocation's.
        unsafe { std::ptr::write_bytes(raw, 0, capacity) };
        AlignedBuf { ptr, len: 0, capacity }
    }

    /// Large buffers (a replay's, filled once with megabytes) start on a
    /// huge page and ask for huge pages: their first touch then faults a
    /// few times rather than once per 4 KiB page, which on a virtual
    /// machine was a fifth of replay's time.
    fn align(capacity: usize) -> usize {
        if capacity >= HUGE_PAGE {
            HUGE_PAGE
        } else {
            BLOCK
        }
    }

    fn layout(capacity: usize) -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(capacity, Self::align(capacity)).expect("an aligned layout")
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` bytes from `ptr` are initialised (allocated zeroed).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes from `start`, to be filled in place (a header written last).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    fn reserve(&mut self, more: usize) {
        if self.len + more <= self.capacity {
            return;
        }
        let mut grown = AlignedBuf::with_capacity((self.len + more).max(self.capacity * 2));
        grown.len = self.len;
        grown.as_mut_slice().copy_from_slice(self.as_slice());
        *self = grown;
    }

    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        let start = self.len;
        self.len += bytes.len();
        self.as_mut_slice()[start..].copy_from_slice(bytes);
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Keeps the first `len` bytes (no more than it holds).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Zero-fills to the next whole block.
    pub(crate) fn pad(&mut self) {
        let target = self.len.next_multiple_of(BLOCK);
        self.reserve(target - self.len);
        let start = self.len;
        self.len = target;
        self.as_mut_slice()[start..].fill(0);
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `with_capacity` with this very layout (a
        // function of the capacity alone).
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.capacity)) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

pub(crate) enum Backend {
    Uring(Box<IoUring>),
    Positioned,
}

static FALLBACK_SAID: Once = Once::new();

impl Backend {
    /// Sets up the backend `mode` asks for.
    ///
    /// # Errors
    /// Only with [`IoMode::Uring`], when the ring cannot be set up.
    pub(crate) fn new(mode: IoMode) -> io::Result<Backend> {
        Self::choose(mode, || IoUring::new(RING_ENTRIES))
    }

    /// The choice itself, with ring set-up passed in so that tests can make
    /// it fail the way a seccomp filter or an old kernel does.
    pub(crate) fn choose(mode: IoMode, setup: impl FnOnce() -> io::Result<IoUring>) -> io::Result<Backend> {
        match mode {
            IoMode::Positioned => Ok(Backend::Positioned),
            IoMode::Uring => setup().map(|ring| Backend::Uring(Box::new(ring))),
            IoMode::Auto => match setup() {
                Ok(ring) => Ok(Backend::Uring(Box::new(ring))),
                Err(error) => {
                    FALLBACK_SAID.call_once(|| {
                        log::warn!(
                            "io_uring is unavailable ({error}); storage falls back to positioned writes and fdatasync"
                        );
                    });
                    Ok(Backend::Positioned)
                }
            },
        }
    }

    pub(crate) fn kind(&self) -> IoBackendKind {
        match self {
            Backend::Uring(_) => IoBackendKind::Uring,
            Backend::Positioned => IoBackendKind::Positioned,
        }
    }

    /// Performs every op; one result per op, in order.
    pub(crate) fn run(&mut self, ops: &[WriteOp]) -> Vec<io::Result<()>> {
        self.run_during(ops, || ()).0
    }

    /// Performs every op, running `during` on this thread while the first
    /// round is in flight (io_uring), or after the ops (positioned I/O).
    pub(crate) fn run_during<R>(&mut self, ops: &[WriteOp], during: impl FnOnce() -> R) -> (Vec<io::Result<()>>, R) {
        match self {
            Backend::Positioned => {
                let results = ops.iter().map(run_positioned).collect();
                (results, during())
            }
            Backend::Uring(ring) => {
                let mut during = Some(during);
                let mut answer = None;
                let results = run_uring(ring, ops, &mut || {
                    if let Some(during) = during.take() {
                        answer = Some(during());
                    }
                });
                // Run even when no op needed a round (an empty batch).
                let answer = match answer {
                    Some(answer) => answer,
                    None => during.map(|during| during()).expect("run once"),
                };
                (results, answer)
            }
        }
    }
}

/// One op through ordinary system calls: the write, then its
/// `fdatasync` if it asks for one (a buffered write that does not is a
/// plain pwrite, which the storage thread prefers to io_uring's worker hop).
pub(crate) fn run_positioned(op: &WriteOp) -> io::Result<()> {
    op.file.write_all_at(&op.bytes, op.offset)?;
    if op.sync {
        op.file.sync_data()?;
    }
    Ok(())
}

#[derive(Debug)]
struct OpState {
    written: usize,
    synced: bool,
    error: Option<io::Error>,
}

impl OpState {
    fn pending(&self, op: &WriteOp) -> bool {
        self.error.is_none() && (self.written < op.bytes.len() || !self.synced)
    }
}

/// Submits the ops in rounds: each round pushes, for every unfinished op,
/// its remaining write linked to its fdatasync (so the sync starts only
/// after the write completed in full), submits them with one system call
/// and reaps every completion. A short write breaks the link (the sync
/// comes back cancelled) and the next round writes the rest.
fn run_uring(ring: &mut IoUring, ops: &[WriteOp], during: &mut dyn FnMut()) -> Vec<io::Result<()>> {
    let mut states: Vec<OpState> = ops
        .iter()
        .map(|op| OpState {
            written: 0,
            synced: !op.sync,
            error: None,
        })
        .collect();
    let per_round = (RING_ENTRIES / 2) as usize;
    loop {
        let pending: Vec<usize> = (0..ops.len())
            .filter(|&index| states[index].pending(&ops[index]))
            .collect();
        if pending.is_empty() {
            break;
        }
        for chunk in pending.chunks(per_round) {
            if let Err(error) = uring_round(ring, ops, &mut states, chunk, during) {
                for &index in chunk {
                    if states[index].error.is_none() {
                        states[index].error = Some(io::Error::new(error.kind(), error.to_string()));
                    }
                }
            }
        }
    }
    states
        .into_iter()
        .map(|state| match state.error {
            Some(error) => Err(error),
            None => Ok(()),
        })
        .collect()
}

fn uring_round(
    ring: &mut IoUring,
    ops: &[WriteOp],
    states: &mut [OpState],
    chunk: &[usize],
    during: &mut dyn FnMut(),
) -> io::Result<()> {
    let mut expected = 0usize;
    {
        let mut submission = ring.submission();
        for &index in chunk {
            let (op, state) = (&ops[index], &states[index]);
            let fd = types::Fd(op.file.as_raw_fd());
            if state.written < op.bytes.len() {
                let rest = &op.bytes[state.written..];
                let mut entry = opcode::Write::new(fd, rest.as_ptr(), rest.len() as u32)
                    .offset(op.offset + state.written as u64)
                    .build()
                    .user_data((index as u64) << 1);
                if !state.synced {
                    entry = entry.flags(squeue::Flags::IO_LINK);
                }
                // SAFETY: the buffer lives in `ops`, which outlives this
                // round: every completion is reaped before we return.
                unsafe { submission.push(&entry) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
                expected += 1;
            }
            if !state.synced {
                let entry = opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(((index as u64) << 1) | 1);
                // SAFETY: an fsync entry refers to no memory of ours.
                unsafe { submission.push(&entry) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
                expected += 1;
            }
        }
    }
    // Submitted without waiting, then the caller's work meanwhile (called
    // once: later calls do nothing).
    // A failed submit is seen again, and handled, by the wait below.
    let _ = ring.submit();
    during();
    let mut reaped = 0usize;
    let mut submit_error = None;
    while reaped < expected {
        if let Err(error) = ring.submit_and_wait(expected - reaped) {
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Entries already in flight still complete: keep reaping them,
            // but do not wait for entries that may never have been taken.
            submit_error = Some(error);
        }
        let before = reaped;
        for completion in ring.completion() {
            reaped += 1;
            let index = (completion.user_data() >> 1) as usize;
            let is_sync = completion.user_data() & 1 == 1;
            let result = completion.result();
            let state = &mut states[index];
            if is_sync {
                if result >= 0 {
                    state.synced = true;
                } else if result != -libc::ECANCELED {
                    state.error.get_or_insert(io::Error::from_raw_os_error(-result));
                }
            } else if result > 0 {
                state.written += result as usize;
            } else if result == 0 {
                state
                    .error
                    .get_or_insert(io::Error::new(io::ErrorKind::WriteZero, "io_uring write wrote nothing"));
            } else {
                state.error.get_or_insert(io::Error::from_raw_os_error(-result));
            }
        }
        if let Some(error) = submit_error.take() {
            if reaped == before {
                return Err(error);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_buffer_grown_past_a_huge_page_keeps_its_bytes_and_starts_on_one() {
        let mut buffer = AlignedBuf::with_capacity(100);
        assert_eq!(buffer.ptr.as_ptr() as usize % BLOCK, 0);
        let pattern: Vec<u8> = (0..=255u8).cycle().take(3 * HUGE_PAGE / 2).collect();
        buffer.extend_from_slice(&pattern[..1000]);
        buffer.extend_from_slice(&pattern[1000..]);
        assert_eq!(
            buffer.ptr.as_ptr() as usize % HUGE_PAGE,
            0,
            "a large buffer starts on a huge page"
        );
        assert_eq!(buffer.as_slice(), &pattern[..]);
        buffer.extend_from_slice(b"tail");
        buffer.pad();
        assert_eq!(buffer.len() % BLOCK, 0);
        assert_eq!(&buffer.as_slice()[pattern.len()..pattern.len() + 4], b"tail");
        assert!(buffer.as_slice()[pattern.len() + 4..].iter().all(|byte| *byte == 0));
        let fresh = AlignedBuf::with_capacity(HUGE_PAGE + 1);
        assert_eq!(fresh.capacity, 2 * HUGE_PAGE);
        assert_eq!(fresh.ptr.as_ptr() as usize % HUGE_PAGE, 0);
    }

    fn temp_file(name: &str) -> (std::path::PathBuf, Arc<File>) {
        let dir = std::env::temp_dir().join(format!("dynamo-io-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (path, Arc::new(file))
    }

    fn exercise(backend: &mut Backend, name: &str) {
        let (path_a, a) = temp_file(&format!("{name}-a"));
        let (path_b, b) = temp_file(&format!("{name}-b"));
        let ops = vec![
            WriteOp {
                file: Arc::clone(&a),
                offset: 0,
                bytes: b"hello ".to_vec().into(),
                sync: true,
            },
            WriteOp {
                file: Arc::clone(&b),
                offset: 0,
                bytes: vec![7u8; 300_000].into(),
                sync: false,
            },
        ];
        assert!(backend.run(&ops).iter().all(Result::is_ok));
        let ops = vec![
            WriteOp {
                file: Arc::clone(&a),
                offset: 6,
                bytes: b"world".to_vec().into(),
                sync: true,
            },
            WriteOp {
                file: Arc::clone(&b),
                offset: 0,
                bytes: Vec::new().into(),
                sync: true,
            },
        ];
        assert!(backend.run(&ops).iter().all(Result::is_ok));
        let mut text = String::new();
        File::open(&path_a).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello world");
        assert_eq!(std::fs::metadata(&path_b).unwrap().len(), 300_000);
        std::fs::remove_dir_all(path_a.parent().unwrap()).unwrap();
        std::fs::remove_dir_all(path_b.parent().unwrap()).unwrap();
    }

    #[test]
    fn uring_writes_and_syncs() {
        let mut backend = Backend::new(IoMode::Uring).expect("io_uring is available on the machines we test on");
        assert_eq!(backend.kind(), IoBackendKind::Uring);
        exercise(&mut backend, "uring");
    }

    #[test]
    fn positioned_writes_and_syncs() {
        let mut backend = Backend::new(IoMode::Positioned).unwrap();
        exercise(&mut backend, "positioned");
    }

    #[test]
    fn auto_falls_back_when_the_ring_cannot_be_set_up() {
        let denied = || Err(io::Error::from_raw_os_error(libc::EPERM));
        let backend = Backend::choose(IoMode::Auto, denied).unwrap();
        assert_eq!(backend.kind(), IoBackendKind::Positioned);
        assert!(Backend::choose(IoMode::Uring, denied).is_err());
    }

    #[test]
    fn a_write_to_a_bad_file_is_an_error_not_a_hang() {
        let (path, _) = temp_file("readonly");
        let read_only = Arc::new(File::open(&path).unwrap());
        for mode in [IoMode::Uring, IoMode::Positioned] {
            let mut backend = Backend::new(mode).unwrap();
            let ops = vec![WriteOp {
                file: Arc::clone(&read_only),
                offset: 0,
                bytes: b"x".to_vec().into(),
                sync: true,
            }];
            assert!(backend.run(&ops)[0].is_err(), "{mode:?}");
        }
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
