//! The executions this process started, by id: starting one, its end, and
//! reading any execution's journal.

use std::collections::VecDeque;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use futures_util::FutureExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::problem::Problem;
use super::search_queue::{SearchQueue, SEARCH_RETRY_AFTER};
use super::{Config, StartError, StartFn, Started, MAX_FINISHED};
use crate::agent::BoxFuture;
use crate::error::{panic_message, ErrorKind, ExecutionError, StepError};
use crate::executor::{new_execution_id, Runtime};
use crate::journal::id_map::IdMap;
use crate::journal::{JournalRead, LogStore};
use crate::program::{one_line, ExecutionIds};
use crate::telemetry::TraceParent;

pub(super) struct App {
    pub(super) config: Config,
    pub(super) runtime: Runtime,
    pub(super) store: LogStore,
    pub(super) start: Arc<StartFn>,
    pub(super) table: Mutex<Table>,
    pub(super) openapi: Bytes,
    /// Searches of the segments for an id, one at a time ([`App::journal`]).
    pub(super) scans: SearchQueue,
}

#[derive(Default)]
pub(super) struct Table {
    pub(super) entries: IdMap<Arc<str>, Arc<Entry>>,
    /// Finished executions, oldest first, for eviction.
    pub(super) finished: VecDeque<Arc<str>>,
    /// Shutting down: nothing new starts.
    pub(super) closing: bool,
}

/// An execution this process started.
pub(super) struct Entry {
    pub(super) id: Arc<str>,
    pub(super) cancel: CancellationToken,
    /// `Some` once it ended.
    pub(super) done: watch::Receiver<Option<Arc<Done>>>,
}

pub(super) struct Done {
    pub(super) result: Result<Value, ExecutionError>,
}

impl App {
    pub(super) fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).entries.get(id).cloned()
    }

    pub(super) fn finished(&self, id: Arc<str>) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.finished.push_back(id);
        while table.finished.len() > MAX_FINISHED {
            if let Some(old) = table.finished.pop_front() {
                table.entries.remove(&old);
            }
        }
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
    ) -> Result<(Arc<Entry>, Detached, Option<String>), Problem> {
        let id: Arc<str> = new_execution_id().into();
        let cancel = CancellationToken::new();
        let (tx, rx) = watch::channel(None);
        let entry = Arc::new(Entry { id: id.clone(), cancel: cancel.clone(), done: rx });
        {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            if table.closing {
                return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "shutting-down", "Shutting down")
                    .detail("the server is shutting down and starts no new execution"));
            }
            if let Some(why) = self.store.failure() {
                return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "journal-failing", "Journal failing")
                    .detail(format!("no new execution starts while the journal fails: {}", one_line(&why))));
            }
            table.entries.insert(id.clone(), entry.clone());
        }
        let ids = ExecutionIds {
            execution_id: id.to_string(),
            correlation_id: correlation_id.unwrap_or_else(|| id.to_string()),
        };
        let Started { run, trace_id } = match (self.start)(&self.runtime, input, ids, trace_parent, cancel) {
            Ok(started) => started,
            Err(e) => {
                self.table.lock().unwrap_or_else(|e| e.into_inner()).entries.remove(&id);
                // Whoever waits on it (a shutdown) sees it end.
                let cause = StepError::new(ErrorKind::InvalidInput, "the execution did not start", 0);
                let _ = tx.send(Some(Arc::new(Done { result: Err(cause) })));
                return Err(match e {
                    StartError::Input(e) => Problem::invalid(format!("/input{}", e.pointer), e.message),
                    StartError::Journal(e) => {
                        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "journal-unavailable", "Journal unavailable")
                            .detail(format!("cannot create the journal: {}", one_line(&e.to_string())))
                    }
                });
            }
        };
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
            let done = Arc::new(Done { result });
            let _ = tx.send(Some(done.clone()));
            app.finished(id);
            done
        });
        Ok((entry, Detached(Some(run)), trace_id))
    }

    /// The journal of `id`; `None` when there is none (or the id cannot
    /// name one). Read on the blocking pool (the write-out of its last lines
    /// may be behind an fsync). An id the log does not index, an earlier
    /// process's or none at all, is searched for in every segment: one such
    /// search at a time, so that requests for unknown ids cannot take more
    /// than one thread.
    pub(super) async fn journal(&self, id: &str) -> Result<Option<JournalRead>, Problem> {
        if !valid_id(id) {
            return Ok(None);
        }
        let (store, owned) = (self.store.clone(), id.to_owned());
        let recent = blocking(move || Ok(store.read_recent(&owned))).await.transpose();
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
                blocking(move || store.search(&owned)).await
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
