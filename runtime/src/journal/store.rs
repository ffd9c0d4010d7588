//! Where journals go: files (the default) or memory, behind one trait.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::id_map::IdMap;
use super::{JournalEvent, JournalRead, LineCache};

/// The default journal directory, relative to the working directory.
pub const DEFAULT_JOURNAL_DIR: &str = ".orchestr8/executions";

/// Appends one execution's events. The executor calls it from one task at a
/// time, under its own lock, in `seq` order.
///
/// A writer may hold appended events back until [`flush`](Self::flush); the
/// executor flushes before any agent code runs and whenever the execution
/// task is about to yield, so an event waits only while the runtime's own
/// code runs, never on an agent or a timer.
pub trait JournalWriter: Send {
    /// Appends `event`.
    fn append(&mut self, event: JournalEvent) -> io::Result<()>;
    /// Hands every appended event to the OS (no fsync).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Makes what was appended durable before agent code runs again: the
    /// executor calls it after a step succeeded and before the next agent
    /// call, so that a crash never loses a success a later step built on.
    /// A store that commits only at the end (the server's, which answers
    /// only after its group commit) just flushes.
    fn checkpoint(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// True if [`flush`](Self::flush) has work to do (so the executor can skip calling it).
    fn buffers(&self) -> bool {
        false
    }
    /// Flushes and makes everything appended durable; called after the
    /// terminal event. A store that syncs in place does so here and returns
    /// a finished future; one that commits in groups returns a future that
    /// resolves once the commit covering these events is done.
    fn sync(&mut self) -> Durable;
}

/// What [`JournalWriter::sync`] returns: resolves once the journal is durable.
pub type Durable = crate::agent::BoxFuture<'static, io::Result<()>>;

/// Runs blocking `f` without stalling the other tasks of a multi-threaded
/// tokio runtime (the server's); elsewhere (tests, the CLI) just runs it.
/// Multi-threaded runtimes come with the `server` feature, which enables
/// tokio's `rt-multi-thread`, where `block_in_place` lives.
#[cfg(feature = "server")]
fn outside_the_workers<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Without the server, runtimes are current-thread: run `f` in place.
#[cfg(not(feature = "server"))]
fn outside_the_workers<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// A future already resolved with `r`.
fn durable_now(r: io::Result<()>) -> Durable {
    Box::pin(std::future::ready(r))
}

/// Creates and reads journals, one per execution.
pub trait JournalStore: Send + Sync + 'static {
    /// A writer for a new execution's journal.
    fn create(&self, execution_id: &str) -> io::Result<Box<dyn JournalWriter>>;
    /// Reads an execution's journal back.
    fn read(&self, execution_id: &str) -> io::Result<JournalRead>;
    /// A writer that goes on with an existing journal (a resumed
    /// execution's), after its last complete line.
    fn reopen(&self, execution_id: &str) -> io::Result<Box<dyn JournalWriter>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this journal store cannot go on with the journal of execution {execution_id}"),
        ))
    }
}

/// Journals as `DIR/EXECUTION_ID.jsonl` files.
///
/// By default the events the executor records in one uninterrupted stretch
/// (no agent code, no waiting in between) go to the OS in one `write(2)`;
/// [`write_per_event`](Self::write_per_event) makes one `write(2)` per event.
///
/// ```
/// use orchestr8_runtime::{FileStore, Runtime};
///
/// let journals = FileStore::new("journals");
/// assert_eq!(journals.path("e-1"), std::path::Path::new("journals/e-1.jsonl"));
/// let runtime = Runtime::new(journals); // the directory is created by the first execution
/// ```
///
/// [`Runtime`](crate::Runtime)'s example runs a workflow on one and reads
/// the journal back.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    per_event: bool,
}

/// Bytes a journal writer holds back at most before writing.
pub(super) const MAX_BUFFERED: usize = 64 * 1024;

impl FileStore {
    /// Journals under `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileStore { dir: dir.into(), per_event: false }
    }

    /// One `write(2)` per event instead of one per stretch of events.
    pub fn write_per_event(mut self, yes: bool) -> Self {
        self.per_event = yes;
        self
    }

    /// Journals under [`DEFAULT_JOURNAL_DIR`] in the working directory.
    pub fn default_dir() -> Self {
        FileStore::new(DEFAULT_JOURNAL_DIR)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of one execution.
    pub fn path(&self, execution_id: &str) -> PathBuf {
        self.dir.join(format!("{execution_id}.jsonl"))
    }
}

impl Default for FileStore {
    fn default() -> Self {
        FileStore::default_dir()
    }
}

struct FileWriter {
    file: File,
    /// Reused: lines are written into it and handed to the OS from it.
    buf: Vec<u8>,
    cache: LineCache,
    per_event: bool,
}

impl JournalWriter for FileWriter {
    fn append(&mut self, event: JournalEvent) -> io::Result<()> {
        event.write_line(&mut self.buf, &mut self.cache);
        if self.per_event || self.buf.len() >= MAX_BUFFERED {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            // Whole lines in one write(2): once in the OS, a crash of this
            // process loses nothing; only a machine crash can tear a line.
            let r = self.file.write_all(&self.buf);
            self.buf.clear();
            r?;
        }
        Ok(())
    }

    fn buffers(&self) -> bool {
        !self.per_event
    }

    fn checkpoint(&mut self) -> io::Result<()> {
        self.flush()?;
        outside_the_workers(|| self.file.sync_data())
    }

    fn sync(&mut self) -> Durable {
        // An fsync can take milliseconds: on a multi-threaded runtime (the
        // server's), let the other tasks move to another worker meanwhile.
        durable_now(outside_the_workers(|| self.flush().and_then(|()| self.file.sync_data())))
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        // E.g. the execution task panicked: keep what was recorded.
        let _ = self.flush();
    }
}

impl JournalStore for FileStore {
    fn create(&self, execution_id: &str) -> io::Result<Box<dyn JournalWriter>> {
        check_execution_id(execution_id)?;
        let path = self.path(execution_id);
        let open = || OpenOptions::new().create_new(true).append(true).open(&path);
        let file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)?;
                open()?
            }
            Err(e) => return Err(e),
        };
        // Held for the writer's lifetime: a resume elsewhere sees the
        // execution still runs. A new file's lock is free.
        lock(&file)?;
        Ok(Box::new(FileWriter {
            file,
            buf: Vec::with_capacity(4096),
            cache: LineCache::default(),
            per_event: self.per_event,
        }))
    }

    fn read(&self, execution_id: &str) -> io::Result<JournalRead> {
        // As in create: an id that is a path would read outside the directory.
        check_execution_id(execution_id)?;
        super::read_file(self.path(execution_id))
    }

    fn reopen(&self, execution_id: &str) -> io::Result<Box<dyn JournalWriter>> {
        check_execution_id(execution_id)?;
        let path = self.path(execution_id);
        let mut file = OpenOptions::new().append(true).open(&path)?;
        // Before anything is cut or written: another writer (a live process
        // still running the execution, or another resume) may hold it.
        lock(&file).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock => io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("the journal {} is locked by another writer", path.display()),
            ),
            _ => e,
        })?;
        let bytes = std::fs::read(&path)?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let tail = &bytes[whole..];
        if !tail.is_empty() {
            if super::read::parse_line(tail).is_ok() {
                // A whole event without its newline: the reader kept it (the
                // resume goes on after its seq), so keep it and end its line.
                file.write_all(b"\n")?;
            } else {
                // A last line torn by a machine crash (a process crash cannot
                // tear a write): never durable, and the reader dropped it.
                // Cut it off, so the next line starts clean.
                file.set_len(whole as u64)?;
            }
            file.sync_data()?;
        }
        Ok(Box::new(FileWriter {
            file,
            buf: Vec::with_capacity(4096),
            cache: LineCache::default(),
            per_event: self.per_event,
        }))
    }
}

/// Takes the journal file's advisory lock (flock) for as long as `file` is
/// open, without waiting: `WouldBlock` if another open file of it holds it.
/// The kernel drops it when the process ends, killed or not, so a crashed
/// run's journal is free. A file system without locks leaves it unguarded
/// rather than unusable.
#[cfg(unix)]
fn lock(file: &File) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    loop {
        // SAFETY: flock(2) on a descriptor `file` owns and keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ENOLCK | libc::EOPNOTSUPP) => return Ok(()),
            _ => return Err(e),
        }
    }
}

/// No advisory lock off unix: journals are not guarded against a second writer.
#[cfg(not(unix))]
fn lock(_file: &File) -> io::Result<()> {
    Ok(())
}

/// Execution ids name files: none empty, none with a path separator, none hidden.
pub(super) fn check_execution_id(execution_id: &str) -> io::Result<()> {
    if execution_id.is_empty() || execution_id.contains(['/', '\\', '\n']) || execution_id.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("execution id {execution_id:?} cannot name a journal file"),
        ));
    }
    Ok(())
}

/// Events in fixed-size chunks: appending never moves earlier events.
#[derive(Default)]
struct Chunks(Vec<Vec<JournalEvent>>);

/// Events per chunk: small enough (about 40 KB) that chunks come from the
/// allocator's heap, not fresh mmaps, so a journal reuses the warm memory of
/// the one evicted before it (1024 per chunk cost 0.2 µs per step at 10,000 steps).
const CHUNK: usize = 256;

/// Emptied chunks of evicted journals, reused by new ones: a store that
/// cycles through journals keeps writing into warm memory instead of
/// freeing and faulting in megabytes per execution.
type Spare = Arc<Mutex<Vec<Vec<JournalEvent>>>>;

/// Spare chunks kept at most (about 10 MB).
const MAX_SPARE: usize = 256;

impl Chunks {
    fn push(&mut self, ev: JournalEvent, spare: &Spare) {
        match self.0.last_mut() {
            Some(c) if c.len() < CHUNK => c.push(ev),
            _ => {
                let mut c =
                    spare.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_else(|| Vec::with_capacity(CHUNK));
                c.push(ev);
                self.0.push(c);
            }
        }
    }
    fn to_vec(&self) -> Vec<JournalEvent> {
        self.0.iter().flatten().cloned().collect()
    }
}

type Events = Arc<Mutex<Chunks>>;

#[derive(Default)]
struct MemoryInner {
    journals: IdMap<String, Events>,
    order: VecDeque<String>,
    spare: Spare,
}

/// Journals kept in memory, for tests and benchmarks. Holds at most
/// `capacity` executions; the oldest is forgotten first. A clone shares the
/// journals: keep one to read what a [`Runtime`](crate::Runtime) wrote.
///
/// ```
/// use orchestr8_runtime::{MemoryStore, Runtime};
///
/// let journals = MemoryStore::with_capacity(100);
/// let runtime = Runtime::new(journals.clone());
/// // ... run executions on `runtime`, then:
/// assert!(journals.events("no-such-execution").is_empty());
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    capacity: usize,
    inner: Arc<Mutex<MemoryInner>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("capacity", &self.capacity).field("executions", &self.len()).finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// A store keeping the last 1024 executions.
    pub fn new() -> Self {
        MemoryStore::with_capacity(1024)
    }

    /// A store keeping the last `capacity` executions (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryStore { capacity: capacity.max(1), inner: Arc::new(Mutex::new(MemoryInner::default())) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of one execution's events (empty if unknown).
    pub fn events(&self, execution_id: &str) -> Vec<JournalEvent> {
        let j = self.lock().journals.get(execution_id).cloned();
        j.map(|j| j.lock().unwrap_or_else(|e| e.into_inner()).to_vec()).unwrap_or_default()
    }

    /// Execution ids held, oldest first.
    pub fn execution_ids(&self) -> Vec<String> {
        self.lock().order.iter().cloned().collect()
    }

    /// Executions held.
    pub fn len(&self) -> usize {
        self.lock().journals.len()
    }

    /// True when no execution is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct MemoryWriter {
    events: Events,
    spare: Spare,
}

impl JournalWriter for MemoryWriter {
    fn append(&mut self, event: JournalEvent) -> io::Result<()> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).push(event, &self.spare);
        Ok(())
    }

    fn sync(&mut self) -> Durable {
        durable_now(Ok(()))
    }
}

impl JournalStore for MemoryStore {
    fn create(&self, execution_id: &str) -> io::Result<Box<dyn JournalWriter>> {
        let mut inner = self.lock();
        if inner.journals.contains_key(execution_id) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("journal {execution_id} exists")));
        }
        while inner.journals.len() >= self.capacity {
            match inner.order.pop_front() {
                Some(old) => {
                    if let Some(Ok(old)) = inner.journals.remove(&old).map(Arc::try_unwrap) {
                        let chunks = old.into_inner().unwrap_or_else(|e| e.into_inner()).0;
                        let mut spare = inner.spare.lock().unwrap_or_else(|e| e.into_inner());
                        for mut c in chunks {
                            if spare.len() >= MAX_SPARE {
                                break;
                            }
                            c.clear();
                            spare.push(c);
                        }
                    }
                }
                None => break,
            }
        }
        let events: Events = Arc::new(Mutex::new(Chunks::default()));
        let spare = inner.spare.clone();
        inner.journals.insert(execution_id.to_owned(), events.clone());
        inner.order.push_back(execution_id.to_owned());
        Ok(Box::new(MemoryWriter { events, spare }))
    }

    fn read(&self, execution_id: &str) -> io::Result<JournalRead> {
        let j = self.lock().journals.get(execution_id).cloned();
        match j {
            Some(j) => {
                Ok(JournalRead { events: j.lock().unwrap_or_else(|e| e.into_inner()).to_vec(), warnings: Vec::new() })
            }
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("no journal for execution {execution_id}"))),
        }
    }

    fn reopen(&self, execution_id: &str) -> io::Result<Box<dyn JournalWriter>> {
        let inner = self.lock();
        match inner.journals.get(execution_id) {
            Some(events) => Ok(Box::new(MemoryWriter { events: events.clone(), spare: inner.spare.clone() })),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("no journal for execution {execution_id}"))),
        }
    }
}
