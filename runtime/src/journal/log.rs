//! Many executions' journals in one append-only log, made durable by group
//! commit: the store `PROGRAM serve` writes to.
//!
//! Lines go to `DIR/log/SEGMENT.jsonl`. Each line is a journal event in the
//! contract's format, and every event names its `executionId`, so the lines
//! of concurrent executions interleave and one execution's journal is its
//! lines, in `seq` order. A process appends to segments of its own, named
//! `UNIXMS-PID-N.jsonl` (so names sort by age), and starts a new one every
//! [`LogOptions::segment_bytes`].
//!
//! One thread of the log's own does all file I/O. Executions append their
//! lines to a buffer in memory (a copy under a lock, never a system call),
//! and the log thread writes whatever has collected in one `write(2)` as
//! soon as it is there. When an execution ends, [`JournalWriter::sync`]
//! resolves once an `fdatasync` covers its terminal event; one `fdatasync`
//! covers every execution that ended while the previous one ran.
//!
//! Why: on this project's VM disk a file per execution costs a create (20
//! µs to 0.5 ms) and an fsync (0.2 to 3 ms), which capped a server at a few
//! thousand executions a second; and when executions wrote into the log's
//! pages themselves, they waited on the page locks of the commit's
//! write-out, stalling the server's worker threads for milliseconds.
//!
//! What a crash can cost: the lines an execution recorded in the last
//! moments (the time the log thread takes to write them out, typically
//! microseconds) may be missing; the execution then reads back as
//! `interrupted`, as it would anyway. A server acknowledges an execution
//! only once its `execution.started` line is in the OS
//! ([`LogStore::in_os`]), and returns a result only once it is durable.
//! (`run`'s file journal keeps the stricter rule: every event in the OS
//! before the next agent code runs.) A later process finds such executions
//! with [`LogStore::unfinished`] (one pass over the segments, without
//! parsing lines: about 36 ms per 64 MiB segment with the page cache warm)
//! and goes on with one through [`JournalStore::reopen`]: a step whose
//! success was lost with the last moments' lines runs again.
//!
//! Retention ([`LogOptions::retention`], see [`super::retention`]): closed
//! segments whose executions have all ended are deleted, oldest first, by
//! age and to keep the log under a size; the log thread checks.
//!
//! Reading: the log keeps, for the most recent [`INDEX_CAPACITY`]
//! executions, where their lines are, and reads just those; anything older
//! (or written by an earlier process) is found by scanning the segments for
//! its id. An execution an earlier process began and this one reopened is
//! not indexed (its first lines are in the other process's segments): its
//! reads scan too, for the old lines and the new, sorted by `seq`. A plain
//! `EXECUTION_ID.jsonl` in `DIR` (from `run`) is read too, so one directory
//! serves both.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::id_map::IdMap;
use super::lookup::SegmentFilters;
use super::retention::{self, Candidate, Retention, RETENTION_CHECK};
use super::segment::{read_at, write_at};
use super::store::{check_execution_id, Durable};
use super::unfinished::{self, Part, Unfinished};
use super::{EventKind, JournalEvent, JournalRead, JournalStore, JournalWriter, LineCache, Snapshot, StateName};
use crate::error::StepError;

/// A segment is closed and a new one started once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Executions whose line positions the log remembers; older ones are found
/// by scanning (about 150 bytes each).
pub const INDEX_CAPACITY: usize = 100_000;

/// The largest write-out buffer kept for reuse (a burst may grow one past it).
const MAX_SPARE: usize = 4 << 20;

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
    /// Which closed segments are deleted ([`Retention::default`]: after a
    /// week, or beyond 10 GiB).
    pub retention: Retention,
    /// How often the log thread checks retention, besides when it starts
    /// and when it closes a segment ([`RETENTION_CHECK`]).
    pub retention_check: Duration,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            segment_bytes: SEGMENT_BYTES,
            commit_delay: DEFAULT_COMMIT_DELAY,
            retention: Retention::default(),
            retention_check: RETENTION_CHECK,
        }
    }
}

/// See [`LogOptions::commit_delay`].
pub const DEFAULT_COMMIT_DELAY: Duration = Duration::from_micros(500);

/// Journals of many executions in segments under `DIR/log/`, with group
/// commit. Clones share the log; the log thread ends with the last clone
/// (and the last writer), after writing and syncing what is left, and
/// dropping that last one waits for it.
#[derive(Clone)]
pub struct LogStore {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("dir", &self.handle.shared.dir).finish()
    }
}

/// Keeps the log thread alive; the last one dropped stops it and waits for
/// its last write and commit.
struct Handle {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        lock(&self.shared.log).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Shared {
    dir: PathBuf,
    segment_bytes: u64,
    commit_delay: Duration,
    retention: Retention,
    retention_check: Duration,
    /// Held while retention runs (the log thread's, or [`LogStore::retain`]).
    retaining: Mutex<()>,
    /// Segments retention deleted.
    deleted: AtomicU64,
    /// A line for each retention run that deleted something, for the
    /// program's log ([`LogStore::retention_log`]); dropped when full.
    retention_log: tokio::sync::mpsc::Sender<String>,
    retention_log_rx: Mutex<Option<tokio::sync::mpsc::Receiver<String>>>,
    log: Mutex<Log>,
    /// Wakes the log thread: lines to write, a commit wanted, or stop.
    wake: Condvar,
    /// Wakes readers waiting for lines to be written.
    written: Condvar,
    /// Writers alive (executions that may still ask for a commit).
    open: AtomicUsize,
    /// Commits (fsync rounds) done.
    commits: AtomicU64,
    /// What searches learned of the segments.
    filters: SegmentFilters,
    /// How far lines are in the OS, for [`LogStore::in_os`].
    in_os: watch::Sender<Mark>,
    /// How far lines are durable, for [`JournalWriter::sync`]. Two channels,
    /// so that a write-out does not wake every execution waiting for a commit.
    on_disk: watch::Sender<Mark>,
}

/// A log position the log thread reached.
#[derive(Debug, Clone, Default)]
struct Mark {
    pos: u64,
    /// Set once and kept: after a failed write or fsync nothing later can be promised.
    error: Option<Arc<str>>,
}

#[derive(Default)]
struct Log {
    /// This process's segments, oldest first; the last is appended to.
    segments: Vec<Segment>,
    /// Bytes appended in all, across segments (the log position).
    pos: u64,
    /// Appended, not yet written.
    pending: Pending,
    /// The buffer the log thread last wrote out, emptied, for the next
    /// `pending`: appends reuse its memory instead of growing a fresh one.
    spare: Pending,
    /// Log position up to which `pending` has been written.
    written: u64,
    /// The log position a writer waits to be durable.
    wanted: u64,
    /// Writers that asked for a commit since the last one began.
    waiting: usize,
    /// Where the lines of recent executions are.
    index: IdMap<Arc<str>, Vec<Range>>,
    /// Executions whose writer is alive and has not ended their journal.
    writers: IdMap<Arc<str>, Open>,
    /// Executions an earlier process began that this store reopened
    /// ([`JournalStore::reopen`]), not indexed (their first lines are in
    /// other processes' segments): read by searching. The log position
    /// after their last line here, which a read waits to be written.
    reopened: IdMap<Arc<str>, u64>,
    /// The ids of `index` and `reopened`, oldest first: the first forgotten.
    order: VecDeque<Arc<str>>,
    stop: bool,
}

impl Log {
    /// Makes room for one more id in `index` or `reopened`, forgetting the
    /// oldest, and counts `id` in.
    fn remember(&mut self, id: &Arc<str>) {
        while self.order.len() >= INDEX_CAPACITY {
            match self.order.pop_front() {
                Some(old) => {
                    if self.index.remove(&old).is_none() {
                        self.reopened.remove(&old);
                    }
                }
                None => break,
            }
        }
        self.order.push_back(id.clone());
    }
}

/// A segment: its file exists once the log thread first writes to it, and
/// is held open until the segment is full and synced (readers then open it
/// by path: a long-running server must not keep a descriptor per segment).
struct Segment {
    path: PathBuf,
    file: Option<Arc<File>>,
    created: bool,
    /// Bytes appended (written or pending).
    len: u64,
    /// Writers alive (executions not ended) with lines in it: retention keeps it.
    live: usize,
    /// Deleted by retention.
    deleted: bool,
    /// The ids with lines in it (their filter hashes) while it is written:
    /// a search asks these instead of reading it, and learns a filter of
    /// them when it closes, so an id this process never wrote costs no read
    /// of its segments.
    ids: Option<HashSet<u64>>,
}

/// An execution whose writer is alive and has not ended its journal: what
/// [`LogStore::abandon`] needs to end it in the writer's place.
struct Open {
    /// The `seq` of its last event in the log.
    last_seq: u64,
    /// Ended by [`LogStore::abandon`]: the writer's later lines are dropped.
    sealed: bool,
    created: Instant,
    /// Its state so far, folded from what it appended (also what is not
    /// written out yet): a status read from memory, not from its lines.
    live: Arc<Mutex<Snapshot>>,
}

/// Bytes appended and not yet written: runs of `bytes`, in order.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    runs: Vec<Run>,
}

/// `len` bytes of [`Pending::bytes`] from `start`, for segment `segment` at `offset`.
struct Run {
    segment: usize,
    offset: u64,
    start: usize,
    len: usize,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    fn push(&mut self, segment: usize, offset: u64, bytes: &[u8]) {
        match self.runs.last_mut() {
            Some(run) if run.segment == segment && run.offset + run.len as u64 == offset => run.len += bytes.len(),
            _ => self.runs.push(Run { segment, offset, start: self.bytes.len(), len: bytes.len() }),
        }
        self.bytes.extend_from_slice(bytes);
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.runs.clear();
    }
}

/// Some lines of one execution: `len` bytes at `offset` of segment `segment`,
/// ending at log position `end`.
#[derive(Debug, Clone, Copy)]
struct Range {
    segment: u32,
    offset: u64,
    len: u64,
    end: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogStore {
    /// A log under `dir/log/` (created on the first write), written and
    /// committed by a thread of its own, with the default [`LogOptions`].
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        LogStore::with_options(dir, LogOptions::default())
    }

    /// Like [`new`](Self::new) with `options`.
    pub fn with_options(dir: impl Into<PathBuf>, options: LogOptions) -> io::Result<Self> {
        let (retention_log, retention_log_rx) = tokio::sync::mpsc::channel(64);
        let shared = Arc::new(Shared {
            dir: dir.into(),
            segment_bytes: options.segment_bytes.max(1),
            commit_delay: options.commit_delay,
            retention: options.retention,
            retention_check: options.retention_check.max(Duration::from_millis(1)),
            retaining: Mutex::new(()),
            deleted: AtomicU64::new(0),
            retention_log,
            retention_log_rx: Mutex::new(Some(retention_log_rx)),
            log: Mutex::new(Log::default()),
            wake: Condvar::new(),
            written: Condvar::new(),
            open: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
            filters: SegmentFilters::default(),
            in_os: watch::Sender::new(Mark::default()),
            on_disk: watch::Sender::new(Mark::default()),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new().name("orchestr8-journal".into()).spawn(move || shared.run())?
        };
        Ok(LogStore { handle: Arc::new(Handle { shared, thread: Some(thread) }) })
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
        let log = lock(&self.handle.shared.log);
        log.segments.iter().filter(|s| s.created && !s.deleted).map(|s| s.path.clone()).collect()
    }

    /// Applies retention now (the log thread does on its own, see
    /// [`LogOptions::retention`]); the number of segments deleted.
    pub fn retain(&self) -> usize {
        self.handle.shared.retain()
    }

    /// A line for each time retention deleted segments (the last 64 not yet
    /// taken are kept): the server says them. `None` once taken.
    pub fn retention_log(&self) -> Option<tokio::sync::mpsc::Receiver<String>> {
        lock(&self.handle.shared.retention_log_rx).take()
    }

    /// Segments retention has deleted so far.
    pub fn segments_deleted(&self) -> u64 {
        self.handle.shared.deleted.load(Ordering::Relaxed)
    }

    /// The journal of an execution this store started and still indexes
    /// (the last [`INDEX_CAPACITY`]), read from just its lines; `None` for
    /// any other id, which [`search`](Self::search) finds by searching the
    /// segments. `NotFound` while it has recorded nothing yet.
    pub fn read_recent(&self, execution_id: &str) -> Option<io::Result<JournalRead>> {
        if self.reopened(execution_id) {
            return Some(self.search(execution_id));
        }
        // Lines of one execution only: a bad one is said and skipped.
        self.read_indexed_as(execution_id, super::parse_lenient, |r| &r.warnings)
    }

    /// True when `execution_id` is one this store reopened (and still
    /// remembers): its lines are found by [`search`](Self::search), which
    /// reads only the segments that may hold them.
    fn reopened(&self, execution_id: &str) -> bool {
        lock(&self.handle.shared.log).reopened.contains_key(execution_id)
    }

    /// The state of an execution whose journal this store is writing and
    /// has not ended: folded in memory from its events as they were
    /// appended, so no line is read. `None` for any other id.
    pub fn live(&self, execution_id: &str) -> Option<Snapshot> {
        let live = lock(&self.handle.shared.log).writers.get(execution_id)?.live.clone();
        let snapshot = lock(&live).clone();
        Some(snapshot)
    }

    /// Like [`read_recent`](Self::read_recent), one page of it: the events
    /// after `after`, at most `max` ([`super::parse_page`]).
    pub fn read_recent_page(
        &self,
        execution_id: &str,
        after: u64,
        max: usize,
    ) -> Option<io::Result<super::JournalPage>> {
        if self.reopened(execution_id) {
            return Some(self.search(execution_id).map(|read| page_of(read, after, max)));
        }
        self.read_indexed_as(execution_id, |bytes| super::parse_page(bytes, after, max), |p| &p.warnings)
    }

    /// The indexed lines of `execution_id`, parsed by `parse`; the warnings
    /// of the result are logged.
    fn read_indexed_as<T>(
        &self,
        execution_id: &str,
        parse: impl FnOnce(&[u8]) -> T,
        warnings: impl Fn(&T) -> &[String],
    ) -> Option<io::Result<T>> {
        let bytes = match self.handle.shared.read_indexed(execution_id)? {
            Ok(bytes) => bytes,
            Err(e) => return Some(Err(e)),
        };
        Some(if bytes.is_empty() {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("execution {execution_id} has recorded nothing yet")))
        } else {
            let read = parse(&bytes);
            for w in warnings(&read) {
                tracing::warn!(execution_id, "{w}");
            }
            Ok(read)
        })
    }

    /// Finds an execution this store does not index: a `run`'s journal file
    /// in the directory, or its lines in the segments (every process's).
    /// The store learns a filter of the ids in each segment it reads, so
    /// that a later search reads only the segments that may hold the id.
    pub fn search(&self, execution_id: &str) -> io::Result<JournalRead> {
        let shared = &self.handle.shared;
        {
            // A reopened execution's lines appended moments ago: the log
            // thread is writing them now.
            let mut log = lock(&shared.log);
            let end = log.reopened.get(execution_id).copied().unwrap_or(0);
            while log.written < end {
                log = shared.written.wait(log).unwrap_or_else(|e| e.into_inner());
            }
        }
        let own = |path: &Path, hash: u64| {
            let log = lock(&shared.log);
            let seg = log.segments.iter().rev().find(|s| s.path == path)?;
            seg.ids.as_ref().map(|ids| ids.contains(&hash))
        };
        shared.filters.read_execution_with(&shared.dir, execution_id, &own)
    }

    /// Segment files read by searches so far (the others were skipped).
    pub fn segments_searched(&self) -> u64 {
        self.handle.shared.filters.segments_read()
    }

    /// The executions that processes now gone began in the log and did not
    /// end: an `execution.started` (or `execution.resumed`) line in one of
    /// their segments, and no terminal line in any segment (this process's
    /// included); oldest start first. What a restarted server resumes
    /// ([`JournalStore::reopen`]). Segments of other processes still alive
    /// are not read (they run their executions), nor are executions this
    /// store has open. Every segment is read once, in chunks, without
    /// parsing lines (`journal/unfinished.rs`); searches learn the ids
    /// of the segments it read. A line that is not whole is skipped, and so
    /// is a torn last line unless it parses (readers take it then).
    pub fn unfinished(&self) -> io::Result<Vec<Unfinished>> {
        let shared = &self.handle.shared;
        let own: Vec<PathBuf> = {
            // What this store appended so far in the OS, so that an end it
            // wrote (of an execution it reopened) is read.
            let mut log = lock(&shared.log);
            let pos = log.pos;
            while log.written < pos {
                log = shared.written.wait(log).unwrap_or_else(|e| e.into_inner());
            }
            log.segments.iter().filter(|s| s.created && !s.deleted).map(|s| s.path.clone()).collect()
        };
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(shared.dir.join(LOG_DIR)) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        paths.sort();
        let this = std::process::id();
        let segments: Vec<unfinished::Segment> = paths
            .into_iter()
            .filter_map(|path| {
                if own.contains(&path) {
                    return Some(unfinished::Segment { path, part: Part::Ours, learn: false });
                }
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let part = match retention::segment_pid(&name) {
                    // Not this store's, so an earlier store's (one store writes a
                    // directory at a time): of this process, which has dropped it,
                    // or of a dead process whose pid this one reuses.
                    Some(pid) if pid == this => Part::Gone,
                    Some(pid) if unfinished::running(pid) => return None,
                    _ => Part::Gone,
                };
                Some(unfinished::Segment { path, part, learn: true })
            })
            .collect();
        unfinished::scan(&segments, &shared.filters, |id| lock(&shared.log).writers.contains_key(id))
    }

    /// Creates the log's folder now (it is otherwise created on the first
    /// write), so that an unusable journal directory is found before anything
    /// runs.
    pub fn create_dir(&self) -> io::Result<()> {
        std::fs::create_dir_all(self.handle.shared.dir.join(LOG_DIR))
    }

    /// Why the log stopped being written or made durable, once it has: after
    /// a failed write or fsync nothing later is promised.
    pub fn failure(&self) -> Option<Arc<str>> {
        self.handle.shared.on_disk.borrow().error.clone()
    }

    /// Resolves with [`failure`](Self::failure) when the log fails (never,
    /// if it does not).
    pub async fn failed(&self) -> Arc<str> {
        let mut rx = self.handle.shared.on_disk.subscribe();
        let failure = rx.wait_for(|m| m.error.is_some()).await.ok().and_then(|mark| mark.error.clone());
        match failure {
            Some(why) => why,
            None => std::future::pending().await,
        }
    }

    /// Ends the journal of `execution_id` in the place of its writer, which
    /// a task still holds but will not end it (a shutdown stopped waiting
    /// for it): appends a terminal `execution.cancelled` with `error` (its
    /// `seq` after the last event in the log, `durationMs` from the journal's
    /// creation), and closes the journal to that writer, whose later lines
    /// (a terminal event of its own included) are dropped. Resolves once
    /// the event is durable; `None` when no live writer of this store has
    /// the journal open, or it has ended.
    pub fn abandon(&self, execution_id: &str, error: StepError) -> Option<Durable> {
        self.seal(execution_id, EventKind::ExecutionCancelled, StateName::Cancelled, Some(error))
    }

    /// As [`abandon`](Self::abandon), for an execution whose steps wait for
    /// signals: appends `execution.suspended` instead, which does not end it,
    /// so that the next server resumes it (its steps in flight run again)
    /// and its waits still take their signals.
    pub fn abandon_suspended(&self, execution_id: &str) -> Option<Durable> {
        self.seal(execution_id, EventKind::ExecutionSuspended, StateName::Waiting, None)
    }

    fn seal(&self, execution_id: &str, kind: EventKind, state: StateName, error: Option<StepError>) -> Option<Durable> {
        let shared = &self.handle.shared;
        let mut log = lock(&shared.log);
        let (id, open) = log.writers.get_key_value(execution_id)?;
        if open.sealed {
            return None;
        }
        let id = id.clone();
        let mut event = JournalEvent::new(id.clone(), kind);
        event.seq = open.last_seq + 1;
        event.state = Some(state);
        event.duration_ms = Some(u64::try_from(open.created.elapsed().as_millis()).unwrap_or(u64::MAX));
        event.error = error.map(Box::new);
        if let Some(open) = log.writers.get_mut(execution_id) {
            open.sealed = true;
        }
        let mut line = Vec::new();
        event.write_line(&mut line, &mut LineCache::default());
        let end = shared.append(&mut log, &id, &line, None);
        drop(log);
        Some(shared.durable_at(end))
    }

    /// Resolves once every line appended so far is in the OS (written, not
    /// necessarily durable): what survives a crash of this process.
    pub async fn in_os(&self) -> io::Result<()> {
        let shared = &self.handle.shared;
        let rx = shared.in_os.subscribe();
        let pos = lock(&shared.log).pos;
        wait_until(rx, pos).await
    }
}

/// The page of a whole journal `read` after `after`, at most `max` events.
fn page_of(read: JournalRead, after: u64, max: usize) -> super::JournalPage {
    let complete = read.events.last().is_some_and(|e| e.event.is_terminal());
    let mut events: Vec<_> = read.events.into_iter().filter(|e| e.seq > after).collect();
    let more = events.len() > max;
    events.truncate(max);
    super::JournalPage { events, more, complete, warnings: read.warnings }
}

/// Waits until the log thread's mark reaches `pos`; its error if it failed before.
async fn wait_until(mut rx: watch::Receiver<Mark>, pos: u64) -> io::Result<()> {
    let mark = rx
        .wait_for(|m| m.pos >= pos || m.error.is_some())
        .await
        .map_err(|_| io::Error::other("the journal's log thread has stopped"))?;
    match &mark.error {
        Some(e) => Err(io::Error::other(e.to_string())),
        None => Ok(()),
    }
}

impl Shared {
    /// The log thread: writes what was appended, commits when a writer
    /// waits for durability, until stopped; then writes and commits what is
    /// left.
    fn run(&self) {
        let _panic = PanicGuard(self);
        let mut durable = 0u64;
        let mut unsynced: Vec<(usize, Arc<File>)> = Vec::new();
        // A restart over a full directory trims it before anything is added.
        self.retain();
        let mut next_check = std::time::Instant::now() + self.retention_check;
        loop {
            let (commit, stop) = {
                let mut log = lock(&self.log);
                while log.pending.is_empty() && log.wanted <= durable && !log.stop {
                    if !self.retention.deletes() {
                        log = self.wake.wait(log).unwrap_or_else(|e| e.into_inner());
                        continue;
                    }
                    let now = std::time::Instant::now();
                    if now >= next_check {
                        break;
                    }
                    log = self.wake.wait_timeout(log, next_check - now).unwrap_or_else(|e| e.into_inner()).0;
                }
                (log.wanted > durable || log.stop, log.stop)
            };
            if std::time::Instant::now() >= next_check && self.retention.deletes() {
                self.retain();
                next_check = std::time::Instant::now() + self.retention_check;
            }
            let round = std::time::Instant::now();
            // Out first, so that nothing waits on the gathering to be in the OS.
            let mut upto = self.write_out(&mut unsynced);
            if commit && !stop && self.gather() {
                upto = self.write_out(&mut unsynced);
            }
            if commit && upto > durable {
                if let Some(e) = unsynced.iter().find_map(|(_, f)| f.sync_data().err()) {
                    self.fail(&e);
                }
                // The last segment is written on; full ones are done: closed.
                let current = unsynced.pop();
                let mut log = lock(&self.log);
                let mut closed = Vec::new();
                for (number, _) in unsynced.drain(..) {
                    if number + 1 < log.segments.len() {
                        let seg = &mut log.segments[number];
                        seg.file = None;
                        closed.push((seg.path.clone(), seg.ids.take().unwrap_or_default()));
                    }
                }
                drop(log);
                // Done with: its filter from what was written to it.
                for (path, ids) in &closed {
                    self.filters.learn(path, ids.iter().copied());
                }
                let closed = !closed.is_empty();
                unsynced.extend(current);
                durable = upto;
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.on_disk.send_modify(|m| m.pos = durable);
                // From the wake-up to durable: what an ending execution waits for.
                #[cfg(feature = "otel")]
                if let Some(m) = crate::telemetry::otel::instruments() {
                    m.journal_commit.record(round.elapsed().as_secs_f64(), &[]);
                }
                #[cfg(not(feature = "otel"))]
                let _ = round;
                if closed && self.retention.deletes() {
                    self.retain();
                    next_check = std::time::Instant::now() + self.retention_check;
                }
            }
            if stop && lock(&self.log).pending.is_empty() {
                return;
            }
        }
    }

    /// Writes out what is pending and says so (to readers and
    /// [`LogStore::in_os`]); the log position it reached.
    fn write_out(&self, unsynced: &mut Vec<(usize, Arc<File>)>) -> u64 {
        let (batch, upto) = {
            let mut log = lock(&self.log);
            let spare = std::mem::take(&mut log.spare);
            (std::mem::replace(&mut log.pending, spare), log.pos)
        };
        if let Err(e) = self.write(&batch, unsynced) {
            self.fail(&e);
        }
        {
            let mut log = lock(&self.log);
            log.written = upto;
            if batch.bytes.capacity() <= MAX_SPARE {
                let mut batch = batch;
                batch.clear();
                log.spare = batch;
            }
        }
        self.written.notify_all();
        self.in_os.send_modify(|m| m.pos = upto);
        upto
    }

    /// Marks the log failed, before any position it covers is announced:
    /// from now on every wait on it returns the error. Logged once.
    fn fail(&self, e: &io::Error) {
        let error: Arc<str> = format!("journal write failed: {e}").into();
        let mut first = false;
        for mark in [&self.in_os, &self.on_disk] {
            mark.send_if_modified(|m| {
                let new = m.error.is_none();
                m.error.get_or_insert_with(|| error.clone());
                first |= new;
                new
            });
        }
        if first {
            tracing::error!(error = %e, "journal log write or fsync failed; executions ending from now on are not durable");
        }
    }

    /// Before a commit: while other executions are still running (writers
    /// open that have not asked for a commit yet), waits the commit delay
    /// so that their ends share this fsync; true if it waited. Each fsync
    /// costs the disk a flush and this VM an exit to the hypervisor; a lone
    /// execution waits for nothing. (Ending the wait as soon as every running
    /// execution asks costs a wake-up of this thread per execution, and was
    /// slower.)
    fn gather(&self) -> bool {
        let waiting = std::mem::take(&mut lock(&self.log).waiting);
        if self.commit_delay.is_zero() || self.open.load(Ordering::Relaxed) <= waiting {
            return false;
        }
        std::thread::sleep(self.commit_delay);
        true
    }

    /// Writes runs of bytes, one `write(2)` per segment touched, creating
    /// segment files as needed; remembers the files for the next commit.
    fn write(&self, batch: &Pending, unsynced: &mut Vec<(usize, Arc<File>)>) -> io::Result<()> {
        for run in &batch.runs {
            let file = self.file(run.segment)?;
            write_at(&file, &batch.bytes[run.start..run.start + run.len], run.offset)?;
            if !unsynced.iter().any(|(number, _)| *number == run.segment) {
                unsynced.push((run.segment, file));
            }
        }
        Ok(())
    }

    /// The file of segment `number`, created on first use.
    fn file(&self, number: usize) -> io::Result<Arc<File>> {
        let path = {
            let log = lock(&self.log);
            let seg = &log.segments[number];
            if let Some(f) = &seg.file {
                return Ok(f.clone());
            }
            seg.path.clone()
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let open = || OpenOptions::new().create_new(true).write(true).read(true).open(&path);
        let file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                open()?
            }
            Err(e) => return Err(e),
        };
        // The new name must be durable with the bytes: POSIX leaves it to an
        // fsync of the directory (ext4 with its journal happens to cover it).
        sync_dir(dir)?;
        let file = Arc::new(file);
        let mut log = lock(&self.log);
        log.segments[number].file = Some(file.clone());
        log.segments[number].created = true;
        Ok(file)
    }

    /// Appends a writer's `bytes` (whole lines of `id`, the last with `seq`;
    /// `terminal` if they end its journal) to the log, in memory; returns the
    /// log position after them, or `None` when [`LogStore::abandon`] ended
    /// the journal in the writer's place (the lines are dropped).
    fn append_from_writer(
        &self,
        id: &Arc<str>,
        bytes: &[u8],
        seq: u64,
        terminal: bool,
        touched: &mut Vec<u32>,
    ) -> Option<u64> {
        let mut log = lock(&self.log);
        if let Some(open) = log.writers.get_mut(id) {
            if open.sealed {
                return None;
            }
            open.last_seq = seq;
            if terminal {
                // Ended by its own writer: nothing left to abandon.
                log.writers.remove(id);
            }
        }
        Some(self.append(&mut log, id, bytes, Some(touched)))
    }

    /// Appends `bytes` (whole lines of `id`) to the log, in memory; returns
    /// the log position after them. `touched`: the segments the writer has
    /// lines in, each counted [`Segment::live`] once (`None`: lines written
    /// for no live writer, as an abandoned execution's end).
    fn append(&self, log: &mut Log, id: &Arc<str>, bytes: &[u8], touched: Option<&mut Vec<u32>>) -> u64 {
        let n = bytes.len() as u64;
        let full = log.segments.last().is_none_or(|s| s.len > 0 && s.len + n > self.segment_bytes);
        if full {
            // Unique in this process (across stores), sorted by age across processes.
            static SEGMENTS: AtomicU64 = AtomicU64::new(0);
            let n = SEGMENTS.fetch_add(1, Ordering::Relaxed);
            let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
            let name = format!("{millis:013}-{}-{n:04}.jsonl", std::process::id());
            let path = self.dir.join(LOG_DIR).join(name);
            log.segments.push(Segment {
                path,
                file: None,
                created: false,
                len: 0,
                live: 0,
                deleted: false,
                ids: Some(HashSet::new()),
            });
        }
        let number = log.segments.len() - 1;
        let seg = &mut log.segments[number];
        match touched {
            Some(touched) if touched.last() == Some(&(number as u32)) => {}
            touched => {
                if let Some(touched) = touched {
                    touched.push(number as u32);
                    seg.live += 1;
                }
                if let Some(ids) = &mut seg.ids {
                    ids.insert(super::lookup::id_hash(id));
                }
            }
        }
        let offset = seg.len;
        seg.len += n;
        log.pos += n;
        let wake = log.pending.is_empty();
        log.pending.push(number, offset, bytes);
        let end = log.pos;
        if let Some(ranges) = log.index.get_mut(id) {
            let len = n;
            match ranges.last_mut() {
                Some(r) if r.segment == number as u32 && r.offset + r.len == offset => {
                    r.len += len;
                    r.end = end;
                }
                _ => ranges.push(Range { segment: number as u32, offset, len, end }),
            }
        } else if let Some(last) = log.reopened.get_mut(id) {
            *last = end;
        }
        if wake {
            self.wake.notify_one();
        }
        end
    }

    /// Asks the log thread for everything up to `pos`; resolves once it is durable.
    fn durable_at(&self, pos: u64) -> Durable {
        let rx = self.on_disk.subscribe();
        {
            let mut log = lock(&self.log);
            log.waiting += 1;
            if log.wanted < pos {
                log.wanted = pos;
                self.wake.notify_one();
            }
        }
        Box::pin(wait_until(rx, pos))
    }

    /// Deletes the segments [`Retention`] lets go; the number deleted. See
    /// [`super::retention`].
    fn retain(&self) -> usize {
        if !self.retention.deletes() {
            return 0;
        }
        let _one_at_a_time = lock(&self.retaining);
        let log_dir = self.dir.join(LOG_DIR);
        // This store's segments: deletable once closed (not the one being
        // written, its file synced and let go) with no execution running.
        // And the executions it reopened and runs: the other processes'
        // segments that may hold their beginnings are kept.
        let (own, reopened): (Vec<(PathBuf, bool)>, Vec<u64>) = {
            let log = lock(&self.log);
            let last = log.segments.len().saturating_sub(1);
            let own = log
                .segments
                .iter()
                .enumerate()
                .filter(|(_, s)| s.created && !s.deleted)
                .map(|(i, s)| (s.path.clone(), i < last && s.file.is_none() && s.live == 0))
                .collect();
            let reopened = log
                .reopened
                .keys()
                .filter(|id| log.writers.contains_key(*id))
                .map(|id| super::lookup::id_hash(id))
                .collect();
            (own, reopened)
        };
        let entries = match std::fs::read_dir(&log_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return 0,
            Err(e) => {
                tracing::warn!(dir = %log_dir.display(), error = %e, "journal retention cannot list the log");
                return 0;
            }
        };
        let mut files: Vec<(PathBuf, u64, SystemTime)> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((e.path(), meta.len(), meta.modified().unwrap_or(UNIX_EPOCH)))
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let candidates: Vec<Candidate> = files
            .iter()
            .enumerate()
            .map(|(i, (path, len, modified))| {
                let deletable = match own.iter().find(|(p, _)| p == path) {
                    Some((_, deletable)) => *deletable,
                    None => {
                        let pid = retention::segment_pid(&name(path));
                        let newest = !files[i + 1..].iter().any(|(p, _, _)| retention::segment_pid(&name(p)) == pid);
                        retention::foreign_segment_ended(pid, newest)
                            && !reopened.iter().any(|&h| self.filters.may_hold(path, h) != Some(false))
                    }
                };
                Candidate { path: path.clone(), len: *len, modified: *modified, deletable }
            })
            .collect();
        let chosen = retention::select(&candidates, &self.retention, SystemTime::now());
        let (mut deleted, mut bytes) = (Vec::new(), 0u64);
        for i in chosen {
            let c = &candidates[i];
            match std::fs::remove_file(&c.path) {
                Ok(()) => {
                    bytes += c.len;
                    deleted.push(c.path.clone());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => deleted.push(c.path.clone()),
                Err(e) => {
                    tracing::warn!(path = %c.path.display(), error = %e, "journal retention cannot delete a segment")
                }
            }
        }
        if deleted.is_empty() {
            return 0;
        }
        {
            // Their executions are unknown from now on: the index forgets them.
            let mut log = lock(&self.log);
            let log = &mut *log;
            let mut gone = Vec::new();
            for (number, seg) in log.segments.iter_mut().enumerate() {
                if !seg.deleted && deleted.contains(&seg.path) {
                    seg.deleted = true;
                    gone.push(number as u32);
                }
            }
            if !gone.is_empty() {
                log.index.retain(|_, ranges| !ranges.iter().any(|r| gone.contains(&r.segment)));
            }
        }
        for path in &deleted {
            self.filters.forget(path);
        }
        self.deleted.fetch_add(deleted.len() as u64, Ordering::Relaxed);
        let kept = candidates.iter().map(|c| c.len).sum::<u64>() - bytes;
        let line = format!(
            "journal retention deleted {} segments ({bytes} bytes, oldest {}); {} keeps {kept} bytes",
            deleted.len(),
            deleted[0].file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            log_dir.display(),
        );
        tracing::debug!("{line}");
        let _ = self.retention_log.try_send(line);
        deleted.len()
    }

    /// The lines of `id` this process appended and still indexes, once
    /// written (empty: none yet); `None` when the index does not know `id`.
    fn read_indexed(&self, id: &str) -> Option<io::Result<Vec<u8>>> {
        let (ranges, segments) = {
            let mut log = lock(&self.log);
            let ranges = log.index.get(id)?.clone();
            let end = ranges.last().map_or(0, |r| r.end);
            // Appended moments ago: the log thread is writing it now.
            while log.written < end {
                log = self.written.wait(log).unwrap_or_else(|e| e.into_inner());
            }
            let segments: Vec<(PathBuf, Option<Arc<File>>)> =
                log.segments.iter().map(|s| (s.path.clone(), s.file.clone())).collect();
            (ranges, segments)
        };
        Some(read_ranges(&ranges, &segments))
    }
}

/// The bytes of `ranges`, from the segments' open files or, for closed
/// segments, files opened by path.
fn read_ranges(ranges: &[Range], segments: &[(PathBuf, Option<Arc<File>>)]) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(ranges.iter().map(|r| r.len as usize).sum());
    let mut reopened: Vec<(u32, Arc<File>)> = Vec::new();
    for r in ranges {
        let file = match &segments[r.segment as usize] {
            (_, Some(f)) => f.clone(),
            (path, None) => match reopened.iter().find(|(n, _)| *n == r.segment) {
                Some((_, f)) => f.clone(),
                None => {
                    let f = Arc::new(File::open(path)?);
                    reopened.push((r.segment, f.clone()));
                    f
                }
            },
        };
        let start = bytes.len();
        bytes.resize(start + r.len as usize, 0);
        read_at(&file, &mut bytes[start..], r.offset)?;
    }
    Ok(bytes)
}

/// Should the log thread panic (a bug), fails the log and wakes every
/// waiter, instead of leaving them waiting for a thread that is gone.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail(&io::Error::other("the journal's log thread panicked"));
            lock(&self.0.log).written = u64::MAX;
            self.0.written.notify_all();
        }
    }
}

/// Makes a new entry of `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows has no directory fsync; NTFS journals its metadata.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// One execution's writer: lines collect in `buf` and go to the log's
/// buffer in one copy per flush.
struct LogWriter {
    handle: Arc<Handle>,
    id: Arc<str>,
    buf: Vec<u8>,
    cache: LineCache,
    /// The log position after this execution's last write.
    pos: u64,
    /// The segments it has lines in.
    touched: Vec<u32>,
    /// The `seq` of the last event in `buf`, and whether `buf` ends the journal.
    seq: u64,
    terminal: bool,
    /// Registered in the log's `writers` (until its journal ends).
    open: bool,
    /// Shared with its entry in `writers` ([`LogStore::live`]).
    live: Arc<Mutex<Snapshot>>,
}

impl JournalWriter for LogWriter {
    fn append(&mut self, event: JournalEvent) -> io::Result<()> {
        // Not the terminal event: it would copy the output, and once it is
        // appended the execution's own result says how it ended.
        if !event.event.is_terminal() {
            lock(&self.live).apply(&event);
        }
        self.seq = event.seq;
        self.terminal |= event.event.is_terminal();
        event.write_line(&mut self.buf, &mut self.cache);
        if self.buf.len() >= super::store::MAX_BUFFERED {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            // Abandoned: its journal was ended for it; what it says now is dropped.
            let shared = &self.handle.shared;
            if let Some(pos) =
                shared.append_from_writer(&self.id, &self.buf, self.seq, self.terminal, &mut self.touched)
            {
                self.pos = pos;
                self.open &= !self.terminal;
            }
            self.buf.clear();
        }
        Ok(())
    }

    fn buffers(&self) -> bool {
        true
    }

    fn sync(&mut self) -> Durable {
        let _ = self.flush();
        self.handle.shared.durable_at(self.pos)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // E.g. the execution task panicked: keep what was recorded.
        let _ = self.flush();
        // Ended: retention may delete its segments once they are closed.
        let mut log = lock(&self.handle.shared.log);
        for &number in &self.touched {
            if let Some(seg) = log.segments.get_mut(number as usize) {
                seg.live -= 1;
            }
        }
        if self.open {
            log.writers.remove(&self.id);
        }
        drop(log);
        self.handle.shared.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl JournalStore for LogStore {
    fn create(&self, execution_id: &str) -> io::Result<Box<dyn JournalWriter>> {
        check_execution_id(execution_id)?;
        let id: Arc<str> = execution_id.into();
        let live = Arc::new(Mutex::new(Snapshot::default()));
        {
            let mut log = lock(&self.handle.shared.log);
            if log.index.contains_key(&id) || log.reopened.contains_key(&id) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("journal {id} exists")));
            }
            log.remember(&id);
            log.index.insert(id.clone(), Vec::new());
            log.writers
                .insert(id.clone(), Open { last_seq: 0, sealed: false, created: Instant::now(), live: live.clone() });
        }
        self.handle.shared.open.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(LogWriter {
            handle: self.handle.clone(),
            id,
            buf: Vec::with_capacity(1024),
            cache: LineCache::default(),
            pos: 0,
            touched: Vec::new(),
            seq: 0,
            terminal: false,
            open: true,
            live,
        }))
    }

    fn read(&self, execution_id: &str) -> io::Result<JournalRead> {
        match self.read_recent(execution_id) {
            Some(read) => read,
            None => self.search(execution_id),
        }
    }

    /// Goes on with a journal an earlier process (or an earlier writer of
    /// this store) left without its end: the new lines go to this process's
    /// segments, the writer counts as a live one (for [`LogStore::abandon`]
    /// and retention), and [`LogStore::live`] starts from the state the old
    /// events lead to. Reads return the whole journal, old lines and new, in
    /// `seq` order. `NotFound` when there is no journal; `InvalidInput` when
    /// it has ended; `AlreadyExists` when a writer of this store has it open.
    fn reopen(&self, execution_id: &str) -> io::Result<Box<dyn JournalWriter>> {
        check_execution_id(execution_id)?;
        let shared = &self.handle.shared;
        let open_here = || {
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("the journal of execution {execution_id} is open in this process: it is running here"),
            )
        };
        if lock(&shared.log).writers.contains_key(execution_id) {
            return Err(open_here());
        }
        let read = self.read(execution_id)?;
        if let Some(end) = read.events.iter().find(|e| e.event.is_terminal()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "execution {execution_id} has ended ({} at seq {}): its journal cannot go on",
                    end.event.as_str(),
                    end.seq
                ),
            ));
        }
        let Some(last_seq) = read.events.last().map(|e| e.seq) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the journal of execution {execution_id} holds no complete event"),
            ));
        };
        // Its state so far, still running (not `interrupted`: it goes on).
        let mut snapshot = Snapshot::default();
        for ev in &read.events {
            snapshot.apply(ev);
        }
        let live = Arc::new(Mutex::new(snapshot));
        let id: Arc<str> = {
            let mut log = lock(&shared.log);
            if log.writers.contains_key(execution_id) {
                return Err(open_here());
            }
            let id: Arc<str> = match log.index.get_key_value(execution_id) {
                // Begun by this store: its new lines are indexed like the old.
                Some((id, _)) => id.clone(),
                None => match log.reopened.get_key_value(execution_id) {
                    Some((id, _)) => id.clone(),
                    None => {
                        let id: Arc<str> = execution_id.into();
                        log.remember(&id);
                        log.reopened.insert(id.clone(), 0);
                        id
                    }
                },
            };
            log.writers
                .insert(id.clone(), Open { last_seq, sealed: false, created: Instant::now(), live: live.clone() });
            id
        };
        shared.open.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(LogWriter {
            handle: self.handle.clone(),
            id,
            buf: Vec::with_capacity(1024),
            cache: LineCache::default(),
            pos: 0,
            touched: Vec::new(),
            seq: last_seq,
            terminal: false,
            open: true,
            live,
        }))
    }
}
