//! The executions this process started, by id: starting one, its end, and
//! reading any execution's journal.

use std::collections::VecDeque;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::Bytes;
use axum::http::StatusCode;
use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::guard::Guard;
use super::idempotency::{self, Keys, Seen};
use super::problem::Problem;
use super::search_queue::{SearchQueue, SEARCH_RETRY_AFTER};
use super::{Config, StartError, StartFn, StartOptions, Started};
use crate::agent::BoxFuture;
use crate::error::{panic_message, ErrorKind, ExecutionError, StepError};
use crate::executor::{new_execution_id, Idempotency, Runtime};
use crate::journal::id_map::IdMap;
use crate::journal::{JournalPage, JournalRead, LogStore};
use crate::program::{one_line, ExecutionIds};
use crate::resume::Resume;
use crate::state::StepState;
use crate::telemetry::TraceParent;
use crate::wait::Mailbox;

pub(super) struct App {
    /// Where access log lines go; `None` with `-q`.
    pub(super) log: Option<std::sync::mpsc::SyncSender<super::LogLine>>,
    pub(super) guard: Guard,
    pub(super) config: Config,
    pub(super) runtime: Runtime,
    pub(super) store: LogStore,
    pub(super) start: Arc<StartFn>,
    pub(super) table: Mutex<Table>,
    pub(super) openapi: Bytes,
    /// Searches of the segments for an id, one at a time ([`App::journal`]).
    pub(super) scans: SearchQueue,
}

/// The executions this process knows, by id, with the server's limits on
/// them: how many may run at once, and how many finished ones (and how
/// many bytes of their results) stay in memory. Finished ones past those
/// bounds are forgotten oldest first and read back from their journals.
pub(super) struct Table {
    pub(super) entries: IdMap<Arc<str>, Arc<Entry>>,
    /// Finished executions, oldest first, with the bytes their result holds.
    pub(super) finished: VecDeque<(Arc<str>, usize)>,
    /// The sum of `finished`'s bytes.
    finished_bytes: usize,
    /// Executions started and not yet finished (`/health` reads this, it
    /// does not scan).
    running: usize,
    limits: Limits,
    /// `Idempotency-Key`s of recent requests.
    pub(super) keys: Keys,
    /// Shutting down: nothing new starts.
    pub(super) closing: bool,
}

/// What a [`Table`] holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Executions running at once (`--max-running`).
    pub running: usize,
    /// Finished executions kept in memory.
    pub finished: usize,
    /// Bytes of finished executions' results kept in memory (estimated).
    pub finished_bytes: usize,
}

/// Why the table would not take another execution.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    Closing,
    Busy(usize),
}

impl Table {
    pub(super) fn new(limits: Limits, keys: Keys) -> Self {
        Table {
            keys,
            entries: IdMap::default(),
            finished: VecDeque::new(),
            finished_bytes: 0,
            running: 0,
            limits,
            closing: false,
        }
    }

    /// Takes a new running execution, unless closing or (`bounded`) full.
    /// Executions resumed at startup are not bounded: they were taken before.
    pub(super) fn admit(&mut self, entry: Arc<Entry>, bounded: bool) -> Result<(), Refused> {
        self.admit_unless_waiting(entry, bounded, |_| false)
    }

    /// [`admit`](Self::admit), where the executions `only_waits` says run
    /// nothing but waits for signals do not count against the bound: they
    /// hold no agent, and may wait for days.
    pub(super) fn admit_unless_waiting(
        &mut self,
        entry: Arc<Entry>,
        bounded: bool,
        only_waits: impl Fn(&Entry) -> bool,
    ) -> Result<(), Refused> {
        if self.closing {
            return Err(Refused::Closing);
        }
        if bounded && self.running >= self.limits.running {
            let waiting = self.entries.values().filter(|e| e.done.borrow().is_none() && only_waits(e)).count();
            let running = self.running.saturating_sub(waiting);
            if running >= self.limits.running {
                return Err(Refused::Busy(running));
            }
        }
        self.running += 1;
        self.entries.insert(entry.id.clone(), entry);
        Ok(())
    }

    /// An admitted execution that never started.
    pub(super) fn withdraw(&mut self, id: &str) {
        if self.entries.remove(id).is_some() {
            self.running -= 1;
        }
    }

    /// An admitted execution ended; its result holds `bytes`.
    pub(super) fn finish(&mut self, id: Arc<str>, bytes: usize) {
        self.running = self.running.saturating_sub(1);
        self.finished.push_back((id, bytes));
        self.finished_bytes += bytes;
        while self.finished.len() > self.limits.finished || self.finished_bytes > self.limits.finished_bytes {
            let Some((old, bytes)) = self.finished.pop_front() else { break };
            self.finished_bytes -= bytes;
            self.entries.remove(&old);
        }
    }

    pub(super) fn running(&self) -> usize {
        self.running
    }
}

/// What [`App::start`] did.
pub(super) enum Start {
    /// Started this execution (its trace id, when traces are exported).
    New(Arc<Entry>, Detached, Option<String>),
    /// The request's `Idempotency-Key` had started this execution already.
    Replay(Arc<str>),
}

/// An execution this process started.
pub(super) struct Entry {
    pub(super) id: Arc<str>,
    pub(super) cancel: CancellationToken,
    /// Where its waiting steps' signals are delivered.
    pub(super) mailbox: Arc<Mailbox>,
    /// `Some` once it ended.
    pub(super) done: watch::Receiver<Option<Arc<Done>>>,
    /// `true` once its start succeeded (its journal exists); a start that
    /// failed ends it with a [`Done`] that did not start.
    pub(super) ready: watch::Receiver<bool>,
}

pub(super) struct Done {
    pub(super) result: Result<Value, ExecutionError>,
    /// `false`: the execution never started (its request was refused).
    pub(super) started: bool,
}

impl App {
    pub(super) fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.table().entries.get(id).cloned()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts an execution of `input`. Its entry goes into the table first
    /// (under the lock, cheap), so a shutdown sees and cancels it; the input
    /// is parsed and the journal created outside the lock.
    ///
    /// Returns the entry and the execution, not yet polled: a request that
    /// waits drives it itself (no task to spawn, no wake-up to hand the
    /// result over), and [`Detached`] spawns whatever is left of it when the
    /// request stops waiting.
    pub(super) fn start(
        self: &Arc<Self>,
        input: &Value,
        correlation_id: Option<String>,
        trace_parent: Option<TraceParent>,
        key: Option<Arc<str>>,
    ) -> Result<Start, Problem> {
        let id: Arc<str> = new_execution_id().into();
        let idempotency = key.map(|key| Idempotency {
            request_hash: idempotency::fingerprint(input, correlation_id.as_deref()).into(),
            key,
        });
        let cancel = CancellationToken::new();
        let (tx, rx) = watch::channel(None);
        let (ready_tx, ready) = watch::channel(false);
        let entry =
            Arc::new(Entry { id: id.clone(), cancel: cancel.clone(), mailbox: Arc::default(), done: rx, ready });
        if let Some(why) = self.store.failure() {
            return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "journal-failing", "Journal failing")
                .detail(format!("no new execution starts while the journal fails: {}", one_line(&why)))
                .retry_after(30));
        }
        let mut table = self.table();
        let now = SystemTime::now();
        if let Some(i) = &idempotency {
            match table.keys.seen(&i.key, &i.request_hash, now) {
                Seen::New => {}
                Seen::Same(original) => return Ok(Start::Replay(original)),
                Seen::Different(other) => return Err(idempotency::reused(&i.key, &other)),
            }
        }
        match table.admit_unless_waiting(entry.clone(), true, |e| self.only_waits(e)) {
            Ok(()) => {}
            Err(Refused::Closing) => {
                return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "shutting-down", "Shutting down")
                    .detail("the server is shutting down and starts no new execution")
                    .retry_after(5))
            }
            Err(Refused::Busy(n)) => {
                return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "too-many-executions", "Too many executions")
                    .detail(format!(
                "{n} executions are running, the most this server runs at once (--max-running); try again shortly"
            ))
                    .retry_after(1))
            }
        }
        if let Some(i) = &idempotency {
            table.keys.insert(i.key.clone(), id.clone(), i.request_hash.clone(), now);
        }
        drop(table);
        let key = idempotency.as_ref().map(|i| i.key.clone());
        let ids = ExecutionIds {
            execution_id: id.to_string(),
            correlation_id: correlation_id.unwrap_or_else(|| id.to_string()),
        };
        let mailbox = entry.mailbox.clone();
        let options = StartOptions { ids, trace_parent, cancel, idempotency, resume: None, mailbox };
        let (run, trace_id) = self.launch(&entry, input, options, tx, ready_tx, key)?;
        Ok(Start::New(entry, run, trace_id))
    }

    /// Whether `entry` runs nothing now but steps waiting for signals (what
    /// its status reads as `waiting`).
    pub(super) fn only_waits(&self, entry: &Entry) -> bool {
        !entry.mailbox.waiting().is_empty()
            && self.store.live(&entry.id).is_some_and(|snapshot| {
                !snapshot.steps.values().any(|s| matches!(s, StepState::Executing | StepState::Retrying))
            })
    }

    /// Goes on with an execution an earlier process left unfinished (its
    /// journal read into `point`), as a task of its own; `Err` says why not.
    pub(super) fn resume(self: &Arc<Self>, point: Resume) -> Result<(), String> {
        let id: Arc<str> = point.execution_id().into();
        let (tx, rx) = watch::channel(None);
        let (ready_tx, ready) = watch::channel(false);
        let cancel = CancellationToken::new();
        let entry =
            Arc::new(Entry { id: id.clone(), cancel: cancel.clone(), mailbox: Arc::default(), done: rx, ready });
        if self.table().admit(entry.clone(), false).is_err() {
            return Err("the server is shutting down".into());
        }
        let ids = ExecutionIds { execution_id: id.to_string(), correlation_id: point.correlation_id().to_owned() };
        let input = point.input().clone();
        let (resume, mailbox) = (Some(Box::new(point)), entry.mailbox.clone());
        let options = StartOptions { ids, trace_parent: None, cancel, idempotency: None, resume, mailbox };
        match self.launch(&entry, &input, options, tx, ready_tx, None) {
            // Dropped unpolled: it runs as a task of its own.
            Ok((run, _)) => {
                drop(run);
                Ok(())
            }
            Err(p) if p.errors.is_empty() => Err(p.detail),
            Err(p) => Err(p.errors.iter().map(|(at, why)| format!("{at}: {why}")).collect::<Vec<_>>().join("; ")),
        }
    }

    /// Starts the admitted `entry` through the start function; on failure
    /// withdraws it (and frees `key`) and says why as a problem.
    fn launch(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        input: &Value,
        options: StartOptions,
        tx: watch::Sender<Option<Arc<Done>>>,
        ready_tx: watch::Sender<bool>,
        key: Option<Arc<str>>,
    ) -> Result<(Detached, Option<String>), Problem> {
        let id = entry.id.clone();
        // A panic in the typed part (the workflow's own state builder) must not
        // leave the execution admitted for ever: it is a start that failed.
        let started = std::panic::catch_unwind(AssertUnwindSafe(|| (self.start)(&self.runtime, input, options)))
            .unwrap_or_else(|panic| Err(StartError::Panicked(one_line(&panic_message(&*panic)))));
        let Started { run, trace_id } = match started {
            Ok(started) => started,
            Err(e) => {
                let mut table = self.table();
                table.withdraw(&id);
                // A request that started nothing leaves its key unused.
                if let Some(key) = key {
                    table.keys.remove(&key);
                }
                drop(table);
                // Whoever waits on it (a shutdown) sees it end.
                let cause = StepError::new(ErrorKind::InvalidInput, "the execution did not start", 0);
                let _ = tx.send(Some(Arc::new(Done { result: Err(cause), started: false })));
                return Err(match e {
                    StartError::Input(e) => Problem::invalid(format!("/input{}", e.pointer), e.message),
                    StartError::Journal(e) => {
                        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "journal-unavailable", "Journal unavailable")
                            .detail(format!("cannot create the journal: {}", one_line(&e.to_string())))
                    }
                    StartError::Panicked(why) => Problem::internal(format!("the execution could not start: {why}")),
                    // Said at startup, where there is no --force to offer.
                    StartError::Resume(crate::resume::ResumeError::Changed(c)) => Problem::internal(format!(
                        "{}; a server resumes only the executions of its own definition: serve this journal \
                         directory with the program that started it (version {}, definition hash {}) to resume it",
                        c.difference(),
                        c.journal_version,
                        c.journal_hash
                    )),
                    StartError::Resume(e) => Problem::internal(e.to_string()),
                });
            }
        };
        let _ = ready_tx.send(true);
        let app = self.clone();
        let run = Box::pin(async move {
            let result = match AssertUnwindSafe(run).catch_unwind().await {
                Ok(r) => r,
                Err(panic) => Err(StepError::new(
                    ErrorKind::Fatal,
                    format!("the execution panicked: {}", one_line(&panic_message(&*panic))),
                    0,
                )),
            };
            let bytes = result.as_ref().map_or(256, json_size);
            let done = Arc::new(Done { result, started: true });
            let _ = tx.send(Some(done.clone()));
            app.table().finish(id, bytes);
            done
        });
        Ok((Detached(Some(run)), trace_id))
    }

    /// The journal of `id`; `None` when there is none (or the id cannot
    /// name one). Read on the blocking pool (the write-out of its last lines
    /// may be behind an fsync). An id the log does not index, an earlier
    /// process's or none at all, is searched for in every segment: one such
    /// search at a time, so that requests for unknown ids cannot take more
    /// than one thread.
    pub(super) async fn journal(&self, id: &str) -> Result<Option<JournalRead>, Problem> {
        self.lookup(id, |store, id| store.read_recent(id), |read| read).await
    }

    /// A page of the journal of `id`: the events after `after`, at most
    /// `max`. For an execution the log indexes only the page is parsed.
    pub(super) async fn journal_page(&self, id: &str, after: u64, max: usize) -> Result<Option<JournalPage>, Problem> {
        let page_of = move |read: JournalRead| {
            let complete = read.events.last().is_some_and(|e| e.event.is_terminal());
            let mut events: Vec<_> = read.events.into_iter().filter(|e| e.seq > after).collect();
            let more = events.len() > max;
            events.truncate(max);
            JournalPage { events, more, complete, warnings: read.warnings }
        };
        self.lookup(id, move |store, id| store.read_recent_page(id, after, max), page_of).await
    }

    /// Reads what `recent` makes of an id the log indexes, else searches the
    /// segments (one search at a time, a bounded queue) and makes `searched`
    /// of what it finds. `None`: no such journal (or the id cannot name one).
    async fn lookup<T: Send + 'static>(
        &self,
        id: &str,
        recent: impl FnOnce(&LogStore, &str) -> Option<io::Result<T>> + Send + 'static,
        searched: impl FnOnce(JournalRead) -> T + Send + 'static,
    ) -> Result<Option<T>, Problem> {
        if !valid_id(id) {
            return Ok(None);
        }
        let (store, owned) = (self.store.clone(), id.to_owned());
        let recent = blocking(move || Ok(recent(&store, &owned))).await.transpose();
        let read = match recent {
            Some(read) => read.and_then(|r| r),
            None => {
                let Some(_one_at_a_time) = self.scans.turn().await else {
                    return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "lookups-busy", "Lookups busy")
                        .detail(format!(
                            "too many lookups of executions this process does not know are waiting; \
                             try again in {SEARCH_RETRY_AFTER} s"
                        ))
                        .retry_after(SEARCH_RETRY_AFTER));
                };
                let (store, owned) = (self.store.clone(), id.to_owned());
                blocking(move || store.search(&owned).map(searched)).await
            }
        };
        match read {
            Ok(read) => Ok(Some(read)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "journal-unreadable", "Journal unreadable")
                .detail(format!("cannot read the journal of execution {id}: {}", one_line(&e.to_string())))),
        }
    }
}

/// Runs `f` on the blocking pool; a panic in it is an error too.
pub(super) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(io::Error::other(format!("the journal read failed: {e}"))),
    }
}

/// Execution ids name files: letters, digits, `-` and `_` only.
pub(super) fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An execution that runs to its end wherever it is: polled by the request
/// that waits for it, and spawned as a task of its own (with what is left of
/// it) when dropped unfinished, as when the wait times out, the client goes
/// away, or nobody waits.
pub(super) struct Detached(pub(super) Option<BoxFuture<'static, Arc<Done>>>);

impl std::future::Future for Detached {
    type Output = Arc<Done>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Arc<Done>> {
        let Some(run) = self.0.as_mut() else {
            // Polled after it ended: never, as `timeout` stops at `Ready`.
            return std::task::Poll::Pending;
        };
        let done = std::task::ready!(run.as_mut().poll(cx));
        self.0 = None;
        std::task::Poll::Ready(done)
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(run) = self.0.take() {
            // Dropped inside the server's runtime (a handler); without one
            // (the runtime is gone) there is nothing left to run it on.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(run);
            }
        }
    }
}

/// About how many bytes `v` holds in memory (without recursion: an output
/// may be deep).
fn json_size(v: &Value) -> usize {
    let mut size = 0;
    let mut todo = vec![v];
    while let Some(v) = todo.pop() {
        size += std::mem::size_of::<Value>();
        match v {
            Value::String(s) => size += s.len(),
            Value::Array(a) => todo.extend(a),
            Value::Object(m) => {
                for (k, x) in m {
                    size += k.len() + std::mem::size_of::<String>();
                    todo.push(x);
                }
            }
            _ => {}
        }
    }
    size
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(std::time::Duration::from_secs(60))
    }

    fn entry(id: &str) -> Arc<Entry> {
        let (_tx, done) = watch::channel(None);
        let (_ready_tx, ready) = watch::channel(true);
        Arc::new(Entry { id: id.into(), cancel: CancellationToken::new(), mailbox: Arc::default(), done, ready })
    }

    #[test]
    fn running_executions_are_bounded() {
        let mut t = Table::new(Limits { running: 2, finished: 10, finished_bytes: 1 << 20 }, keys());
        t.admit(entry("a"), true).unwrap();
        t.admit(entry("b"), true).unwrap();
        assert_eq!(t.admit(entry("c"), true), Err(Refused::Busy(2)));
        t.withdraw("b");
        assert_eq!(t.running(), 1);
        t.admit(entry("c"), true).unwrap();
        t.finish("a".into(), 10);
        assert_eq!(t.running(), 1);
        t.admit(entry("d"), true).unwrap();
        t.closing = true;
        assert_eq!(t.admit(entry("e"), true), Err(Refused::Closing));
        assert!(t.entries.contains_key("a"), "finished, still known");
    }

    #[test]
    fn finished_executions_are_bounded_by_count_and_bytes() {
        let mut t = Table::new(Limits { running: 100, finished: 3, finished_bytes: 1000 }, keys());
        for id in ["a", "b", "c", "d"] {
            t.admit(entry(id), true).unwrap();
            t.finish(id.into(), 100);
        }
        assert!(!t.entries.contains_key("a"), "the oldest goes past the count");
        assert!(["b", "c", "d"].iter().all(|id| t.entries.contains_key(*id)));
        t.admit(entry("big"), true).unwrap();
        t.finish("big".into(), 900);
        // 100 + 100 + 900 > 1000: b and c go, d and big stay (1000).
        assert!(!t.entries.contains_key("b") && !t.entries.contains_key("c"));
        assert!(t.entries.contains_key("d") && t.entries.contains_key("big"));
        t.admit(entry("huge"), true).unwrap();
        t.finish("huge".into(), 5000);
        assert!(!t.entries.contains_key("huge"), "larger than the budget: read back from the journal");
        assert_eq!((t.running(), t.finished.len()), (0, 0));
    }

    #[test]
    fn sizes_grow_with_the_value_and_deep_values_do_not_recurse() {
        let small = json_size(&serde_json::json!({"a": 1}));
        let big = json_size(&serde_json::json!({"a": "x".repeat(10_000)}));
        assert!(big >= small + 10_000, "{small} {big}");
        let mut deep = Value::Null;
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        assert!(json_size(&deep) >= 100_000);
        // Dropping a value this deep recurses in serde_json; leak it instead.
        std::mem::forget(deep);
    }
}
