//! Many executions' journals in one append-only log, made durable by group
//! commit: the store `PROGRAM serve` writes to.
//!
//! Lines go to `DIR/log/SEGMENT.jsonl`. Each line is a journal event in the
//! contract's format, and every event names its `executionId`, so the lines
//! of concurrent executions interleave and one execution's journal is its
//! lines, in `seq` order. A process appends to segments of its own, named
//! `UNIXMS-PID-N.jsonl` (so names sort by age), and starts a new one every
//! [`SEGMENT_BYTES`].
//!
//! Why not a file per execution, as `run` writes: on this project's VM disk
//! creating a file costs 20 µs to 0.5 ms and an fsync 0.2 to 3 ms, so a server
//! doing both per execution tops out at a few thousand executions a second.
//! Here an execution's events reach the OS in the same `write(2)`s as with a
//! file (before any agent code runs, see [`JournalWriter`]), and its terminal
//! event is durable before [`JournalWriter::sync`] resolves, but one
//! `fdatasync` by a background thread covers every execution that ended
//! while the previous one ran.
//!
//! Reading: the log keeps, for the most recent [`INDEX_CAPACITY`]
//! executions, where their lines are, and reads just those; anything older
//! (or written by an earlier process) is found by scanning the segments,
//! newest last, for its id. A plain `EXECUTION_ID.jsonl` in `DIR` (from
//! `run`) is read too, so one directory serves both.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::segment::{read_at, Segment};
use super::store::{check_execution_id, Durable};
use super::{JournalEvent, JournalRead, JournalStore, JournalWriter, LineCache};

/// A segment is closed and a new one started once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Executions whose line positions the log remembers; older ones are found
/// by scanning (about 150 bytes each).
pub const INDEX_CAPACITY: usize = 100_000;

/// The log's folder under the journal directory.
pub const LOG_DIR: &str = "log";

/// How a [`LogStore`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// How long a commit waits, while other executions are running, for
    /// their ends to share its fsync ([`DEFAULT_COMMIT_DELAY`]; zero: never).
    pub commit_delay: Duration,
    /// Reserve each segment's space up front and append through a shared
    /// mapping (Linux; a copy instead of a system call per append). Off, or
    /// where the file system cannot reserve, appends are positioned writes.
    pub map_segments: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { segment_bytes: SEGMENT_BYTES, commit_delay: DEFAULT_COMMIT_DELAY, map_segments: true }
    }
}

/// See [`LogOptions::commit_delay`].
pub const DEFAULT_COMMIT_DELAY: Duration = Duration::from_micros(500);

/// Journals of many executions in segments under `DIR/log/`, with group
/// commit. Clones share the log; the commit thread ends with the last clone
/// (and the last writer), after a final sync, and dropping that last one
/// waits for it.
#[derive(Clone)]
pub struct LogStore {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.handle.shared.dir).finish()
    }
}

/// Keeps the commit thread alive; the last one dropped stops it and waits
/// for its last commit, so a dropped store has synced and closed its log.
struct Handle {
    shared: Arc<Shared>,
    committer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared.commit).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.committer.take() {
            let _ = thread.join();
        }
    }
}

struct Shared {
    dir: PathBuf,
    segment_bytes: u64,
    commit_delay: Duration,
    map_segments: bool,
    /// Writers alive (executions that may still ask for a commit).
    open: AtomicUsize,
    /// Commits (fsync rounds) done.
    commits: AtomicU64,
    log: Mutex<Log>,
    commit: Mutex<CommitRequest>,
    wake: Condvar,
    /// What the commit thread has made durable.
    durable: watch::Sender<Synced>,
}

#[derive(Default)]
struct CommitRequest {
    /// The log position (bytes this process wrote in all) a writer waits for.
    wanted: u64,
    /// Writers that asked since the last commit began.
    waiting: usize,
    stop: bool,
}

#[derive(Debug, Clone, Default)]
struct Synced {
    upto: u64,
    /// Set once and kept: after a failed fsync nothing later can be promised.
    error: Option<Arc<str>>,
}

#[derive(Default)]
struct Log {
    /// This process's segments, oldest first; the last is written.
    segments: Vec<Segment>,
    /// Bytes written in all, across segments.
    pos: u64,
    /// Segments (indexes) full since the last commit: synced, then closed.
    full: Vec<usize>,
    /// Where the lines of recent executions are.
    index: HashMap<Arc<str>, Vec<Range>>,
    order: VecDeque<Arc<str>>,
    /// Segments opened by this process, to name the next one.
    opened: u32,
}

/// Some lines of one execution: `len` bytes at `offset` of segment `segment`.
#[derive(Debug, Clone, Copy)]
struct Range {
    segment: u32,
    offset: u64,
    len: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogStore {
    /// A log under `dir/log/` (created on the first write), committed by a
    /// thread of its own, with the default [`LogOptions`].
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        LogStore::with_options(dir, LogOptions::default())
    }

    /// Like [`new`](Self::new) with `options`.
    pub fn with_options(dir: impl Into<PathBuf>, options: LogOptions) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            dir: dir.into(),
            segment_bytes: options.segment_bytes.max(1),
            commit_delay: options.commit_delay,
            map_segments: options.map_segments,
            open: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            log: Mutex::new(Log::default()),
            commit: Mutex::new(CommitRequest::default()),
            wake: Condvar::new(),
            durable: watch::Sender::new(Synced::default()),
        });
        let committer = shared.clone();
        let committer =
            std::thread::Builder::new().name("orchestr8-journal".into()).spawn(move || committer.commit_loop())?;
        Ok(LogStore { handle: Arc::new(Handle { shared, committer: Some(committer) }) })
    }

    /// Commits (fsync rounds) so far: each made the ends of one or more
    /// executions durable.
    pub fn commits(&self) -> u64 {
        self.handle.shared.commits.load(Ordering::Relaxed)
    }

    /// The journal directory (segments are in its `log/`).
    pub fn dir(&self) -> &Path {
        &self.handle.shared.dir
    }

    /// The segments this process has written, oldest first.
    pub fn segments(&self) -> Vec<PathBuf> {
        lock(&self.handle.shared.log).segments.iter().map(|s| s.path.clone()).collect()
    }
}

impl Shared {
    /// Before a commit: while other executions are still running (writers
    /// open that have not asked for a commit yet), waits up to the commit
    /// delay so that their ends share this fsync. Each fsync costs the disk
    /// a flush and this VM an exit to the hypervisor; a lone execution
    /// waits for nothing.
    fn gather(&self) {
        if self.commit_delay.is_zero() {
            return;
        }
        let waiting = std::mem::take(&mut lock(&self.commit).waiting);
        if self.open.load(Ordering::Relaxed) > waiting {
            std::thread::sleep(self.commit_delay);
        }
    }

    /// The commit thread: waits for a writer to want a position, syncs
    /// everything written so far (one `fdatasync` for all who asked
    /// meanwhile), says so, repeats; on stop, commits what is left.
    fn commit_loop(&self) {
        let mut done = 0u64;
        loop {
            let stop = {
                let mut c = lock(&self.commit);
                while c.wanted <= done && !c.stop {
                    c = self.wake.wait(c).unwrap_or_else(|e| e.into_inner());
                }
                c.stop
            };
            if !stop {
                self.gather();
            }
            let (files, full, upto) = {
                let mut log = lock(&self.log);
                let full = std::mem::take(&mut log.full);
                let mut files: Vec<Arc<File>> = full.iter().map(|&i| log.segments[i].file.clone()).collect();
                files.extend(log.segments.last().map(|s| s.file.clone()));
                (files, full, log.pos)
            };
            if upto > done || !full.is_empty() {
                let failed = files.iter().find_map(|f| f.sync_data().err());
                if let Some(e) = &failed {
                    tracing::error!(error = %e, "journal log fsync failed; executions ending from now on are not durable");
                }
                self.durable.send_modify(|s| {
                    s.upto = upto;
                    if let (None, Some(e)) = (&s.error, &failed) {
                        s.error = Some(format!("journal fsync failed: {e}").into());
                    }
                });
                done = upto;
                self.commits.fetch_add(1, Ordering::Relaxed);
                let mut log = lock(&self.log);
                for i in full {
                    self.close(&mut log.segments[i]);
                }
            }
            if stop {
                // No store and no writer is left: nothing appends any more.
                let mut log = lock(&self.log);
                if let Some(last) = log.segments.last_mut() {
                    self.close(last);
                }
                return;
            }
        }
    }

    /// Cuts a segment that is written no more to its length.
    fn close(&self, segment: &mut Segment) {
        if let Err(e) = segment.close() {
            tracing::warn!(path = %segment.path.display(), error = %e, "cannot cut the journal segment to its length; readers skip its NUL tail");
        }
    }

    /// Appends `bytes` (whole lines of `id`) to the current segment; returns
    /// the log position after them.
    fn append(&self, id: &Arc<str>, bytes: &[u8]) -> io::Result<u64> {
        let n = bytes.len() as u64;
        let mut log = lock(&self.log);
        let log = &mut *log;
        let full = log.segments.last().is_none_or(|s| s.len > 0 && (s.len + n > self.segment_bytes || !s.fits(n)));
        if full {
            self.open_segment(log, n)?;
        }
        let number = log.segments.len() - 1;
        let offset = log.segments[number].append(bytes)?;
        log.pos += n;
        if let Some(ranges) = log.index.get_mut(id) {
            let len = bytes.len() as u32;
            match ranges.last_mut() {
                Some(r) if r.segment == number as u32 && r.offset + u64::from(r.len) == offset => r.len += len,
                _ => ranges.push(Range { segment: number as u32, offset, len }),
            }
        }
        Ok(log.pos)
    }

    /// Starts the next segment, with room for at least `n` bytes.
    fn open_segment(&self, log: &mut Log, n: u64) -> io::Result<()> {
        let dir = self.dir.join(LOG_DIR);
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let path = dir.join(format!("{millis:013}-{}-{:04}.jsonl", std::process::id(), log.opened));
        let open = || OpenOptions::new().create_new(true).write(true).read(true).open(&path);
        let file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&dir)?;
                open()?
            }
            Err(e) => return Err(e),
        };
        log.opened += 1;
        if !log.segments.is_empty() {
            log.full.push(log.segments.len() - 1);
        }
        let reserve = if self.map_segments { self.segment_bytes.max(n) } else { 0 };
        log.segments.push(Segment::new(path, file, reserve));
        Ok(())
    }

    /// Asks the commit thread for everything up to `pos`; resolves once it is durable.
    fn durable_at(&self, pos: u64) -> Durable {
        let mut rx = self.durable.subscribe();
        {
            let mut c = lock(&self.commit);
            c.waiting += 1;
            if c.wanted < pos {
                c.wanted = pos;
                self.wake.notify_one();
            }
        }
        Box::pin(async move {
            let synced = rx
                .wait_for(|s| s.upto >= pos || s.error.is_some())
                .await
                .map_err(|_| io::Error::other("the journal's commit thread has stopped"))?;
            match &synced.error {
                Some(e) => Err(io::Error::other(e.to_string())),
                None => Ok(()),
            }
        })
    }

    /// The lines of `id` this process wrote and still indexes.
    fn read_indexed(&self, id: &str) -> Option<io::Result<Vec<u8>>> {
        let (ranges, files): (Vec<Range>, Vec<Arc<File>>) = {
            let log = lock(&self.log);
            let ranges = log.index.get(id)?.clone();
            (ranges, log.segments.iter().map(|s| s.file.clone()).collect())
        };
        let mut bytes = Vec::with_capacity(ranges.iter().map(|r| r.len as usize).sum());
        for r in ranges {
            let start = bytes.len();
            bytes.resize(start + r.len as usize, 0);
            if let Err(e) = read_at(&files[r.segment as usize], &mut bytes[start..], r.offset) {
                return Some(Err(e));
            }
        }
        Some(Ok(bytes))
    }
}

/// One execution's writer: lines collect in `buf` and go to the log in one
/// write per flush.
struct LogWriter {
    handle: Arc<Handle>,
    id: Arc<str>,
    buf: Vec<u8>,
    cache: LineCache,
    /// The log position after this execution's last write.
    pos: u64,
}

impl JournalWriter for LogWriter {
    fn append(&mut self, event: JournalEvent) -> io::Result<()> {
        event.write_line(&mut self.buf, &mut self.cache);
        if self.buf.len() >= super::store::MAX_BUFFERED {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.handle.shared.append(&self.id, &self.buf);
        self.buf.clear();
        self.pos = r?;
        Ok(())
    }

    fn buffers(&self) -> bool {
        true
    }

    fn sync(&mut self) -> Durable {
        match self.flush() {
            Ok(()) => self.handle.shared.durable_at(self.pos),
            Err(e) => Box::pin(std::future::ready(Err(e))),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // E.g. the execution task panicked: keep what was recorded.
        let _ = self.flush();
        self.handle.shared.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl JournalStore for LogStore {
    fn create(&self, execution_id: &str) -> io::Result<Box<dyn JournalWriter>> {
        check_execution_id(execution_id)?;
        let id: Arc<str> = execution_id.into();
        {
            let mut log = lock(&self.handle.shared.log);
            if log.index.contains_key(&id) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("journal {id} exists")));
            }
            while log.order.len() >= INDEX_CAPACITY {
                if let Some(old) = log.order.pop_front() {
                    log.index.remove(&old);
                }
            }
            log.index.insert(id.clone(), Vec::new());
            log.order.push_back(id.clone());
        }
        self.handle.shared.open.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(LogWriter {
            handle: self.handle.clone(),
            id,
            buf: Vec::with_capacity(1024),
            cache: LineCache::default(),
            pos: 0,
        }))
    }

    fn read(&self, execution_id: &str) -> io::Result<JournalRead> {
        if let Some(bytes) = self.handle.shared.read_indexed(execution_id) {
            let bytes = bytes?;
            if !bytes.is_empty() {
                return super::parse(&bytes);
            }
        }
        read_execution(&self.handle.shared.dir, execution_id)
    }
}

/// Reads the journal of `execution_id` from a journal directory, wherever it
/// is: `DIR/EXECUTION_ID.jsonl` (a `run`) or the lines in `DIR/log/` (a
/// server). `NotFound` when neither has it.
pub fn read_execution(dir: &Path, execution_id: &str) -> io::Result<JournalRead> {
    check_execution_id(execution_id)?;
    match super::read_file(dir.join(format!("{execution_id}.jsonl"))) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    let read = scan(&dir.join(LOG_DIR), execution_id)?;
    if read.events.is_empty() && read.warnings.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("no journal for execution {execution_id}")));
    }
    Ok(read)
}

/// Every line of `execution_id` in the segments under `log_dir`, oldest
/// segment first. A line that does not parse is a warning (the last line of
/// a segment a crash cut, or damage), not an error: one bad line must not
/// hide every other execution's journal.
fn scan(log_dir: &Path, execution_id: &str) -> io::Result<JournalRead> {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(log_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    names.sort();
    let mut key = b"\"executionId\":".to_vec();
    // Ids as the line writer escapes them (valid ids need no escaping).
    serde_json::to_writer(&mut key, execution_id).map_err(io::Error::other)?;
    key.push(b',');
    let finder = memchr::memmem::Finder::new(&key);
    let mut read = JournalRead::default();
    for path in names {
        let bytes = read_segment(&path)?;
        let mut from = 0;
        while let Some(at) = finder.find(&bytes[from..]) {
            let at = from + at;
            let start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &bytes[at..]).map(|i| at + i);
            let line = &bytes[start..end.unwrap_or(bytes.len())];
            match serde_json::from_slice::<JournalEvent>(line) {
                Ok(ev) if *ev.execution_id == *execution_id => read.events.push(ev),
                Ok(_) => {}
                Err(e) => {
                    let what = if end.is_none() { "its last line is incomplete (cut by a crash)" } else { "a line" };
                    read.warnings.push(format!(
                        "{}: {what} of execution {execution_id} does not parse ({e}); ignored",
                        path.display()
                    ));
                }
            }
            from = end.map_or(bytes.len(), |e| e + 1);
        }
    }
    read.events.sort_by_key(|e| e.seq);
    for w in &read.warnings {
        tracing::warn!("{w}");
    }
    Ok(read)
}

/// A segment's lines: its bytes up to the first NUL. Lines never hold one
/// (JSON escapes control characters); a segment still being written (or
/// cut short by a crash) has its reserved space after them, all NULs, which
/// is not read.
fn read_segment(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    const CHUNK: usize = 1 << 20;
    let mut file = File::open(path)?;
    let mut bytes = Vec::new();
    loop {
        let start = bytes.len();
        bytes.resize(start + CHUNK, 0);
        let n = file.read(&mut bytes[start..])?;
        bytes.truncate(start + n);
        if let Some(nul) = memchr::memchr(0, &bytes[start..]) {
            bytes.truncate(start + nul);
            return Ok(bytes);
        }
        if n == 0 {
            return Ok(bytes);
        }
    }
}
