//! `PROGRAM serve`: the workflow as an HTTP service (feature `server`).
//!
//! | endpoint | what |
//! | --- | --- |
//! | `POST /workflows/execute[?wait=true]` | starts an execution of `{"input", "correlationId"?, "workflowId"?}`: 202 with its id, status and links; with `wait`, 200 with its output or error once it ends (202 when it has not ended within `--wait-timeout`) |
//! | `GET /executions/{id}` | state, timestamps, running steps, output or error |
//! | `GET /executions/{id}/journal[?after=SEQ&limit=N]` | the journal's events after `SEQ` |
//! | `POST /executions/{id}/cancel` | 202 cancellation requested, 409 already ended, 404 unknown |
//! | `POST /executions/{id}/signals/{step}` | the body is the payload of the signal the wait step `step` waits for: 202 taken, 422 it does not fit, 409 not waiting or ended, 404 unknown |
//! | `GET /health` | `{"status": "ok", ...}`; 503 `"failing"` with the reason while the journal fails |
//! | `GET /openapi.json` | an OpenAPI 3.1 document of all of these, with the input schema |
//!
//! Errors are RFC 9457 problem details (`application/problem+json`): 400
//! malformed JSON or query, 404, 405, 408 a body slower than
//! `--body-timeout`, 409, 413 over `--body-limit`, 415 not JSON, 422 an input
//! that does not fit the workflow's types or bounds (each error with its JSON
//! pointer into the request body), 503 while shutting down.
//!
//! Connections are served by our own accept loop ([`listener`]): header,
//! body and idle timeouts, and at most `--max-connections` open at once.
//!
//! Executions run on the same executor as a plain run. Their journals go to
//! one append-only log under `--journal-dir` ([`LogStore`]: `DIR/log/`,
//! the contract's lines of all executions interleaved, one `fdatasync` for
//! every execution that ended meanwhile): a request that waits gets its
//! result once its terminal event is durable, a 202 is sent once the
//! execution's start is in the OS. Executions are kept in memory by id (the
//! most recent [`MAX_FINISHED`] finished ones, within [`MAX_FINISHED_BYTES`]); older ones, and those of
//! earlier processes, are read back from the log (or a `run`'s
//! `ID.jsonl`): one without a terminal event is reported `failed` with kind
//! `interrupted`.
//!
//! The first Ctrl-C or SIGTERM stops accepting connections, cancels every
//! running execution cooperatively (suspends those with steps waiting for
//! signals: the next server resumes them) and waits, up to `--shutdown-timeout`,
//! for their journals to end and open requests to be answered; past it,
//! each execution still running is journaled as cancelled in its place
//! ([`LogStore::abandon`](crate::journal::LogStore::abandon): durable before
//! the process exits, and whatever the execution writes later is dropped),
//! or as suspended if it waits for signals (the next server runs its steps
//! in flight again), and open connections are closed. A second signal exits
//! at once.

mod access;
mod guard;
mod handlers;
mod idempotency;
mod lifecycle;
mod listener;
mod openapi;
mod problem;
mod recovery;
mod registry;
mod request;
mod responses;
#[cfg(feature = "restate-rest")]
pub(crate) mod restate_rest;
mod search_queue;

use std::io;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::agent::BoxFuture;
use crate::error::ExecutionError;
use crate::executor::{Idempotency, Runtime, WorkflowInfo};
use crate::program::{ExecutionIds, InputError, ServeArgs};
use crate::telemetry::TraceParent;

pub(crate) use lifecycle::run;
pub use openapi::openapi_document;

/// Finished executions kept in memory at most; older ones are read back
/// from their journals.
pub(crate) const MAX_FINISHED: usize = 10_000;

/// Bytes of finished executions' results kept in memory at most (an
/// estimate of their size as `serde_json::Value`s); beyond it the oldest
/// are read back from their journals.
pub(crate) const MAX_FINISHED_BYTES: usize = 64 << 20;

/// A prepared execution (journal created): runs it to its output, as JSON.
pub(crate) type Run = BoxFuture<'static, Result<Value, ExecutionError>>;

/// Why an execution could not be started.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The input does not fit the workflow's types or bounds.
    Input(InputError),
    /// The journal could not be created.
    Journal(io::Error),
    /// The typed part panicked (the panic's message).
    Panicked(String),
    /// A journal this program cannot go on with.
    Resume(crate::resume::ResumeError),
}

/// Parses the input, builds the state and prepares the execution on
/// `runtime` (the typed part, from [`Program`](crate::program::Program)).
pub(crate) type StartFn = dyn Fn(&Runtime, &Value, StartOptions) -> Result<Started, StartError> + Send + Sync;

/// What a request gives the execution it starts besides its input.
pub(crate) struct StartOptions {
    pub ids: ExecutionIds,
    pub trace_parent: Option<TraceParent>,
    pub cancel: CancellationToken,
    pub idempotency: Option<Idempotency>,
    /// Goes on with this journal (an execution an earlier process left
    /// unfinished) instead of starting a new one.
    pub resume: Option<Box<crate::resume::Resume>>,
    /// Where `POST /executions/{id}/signals/{step}` delivers.
    pub mailbox: Arc<crate::wait::Mailbox>,
}

/// A wait step of the workflow, for the signal endpoint and the OpenAPI document.
#[derive(Clone)]
pub(crate) struct WaitInfo {
    pub step: String,
    pub signal: String,
    pub schema: Value,
}

/// Checks a payload for the wait step `step` (`None`: not a wait step).
pub(crate) type CheckSignal = dyn Fn(&str, &Value) -> Option<Result<Value, crate::wait::PayloadError>> + Send + Sync;

/// An execution the start function prepared.
pub(crate) struct Started {
    pub run: Run,
    /// Its trace, when traces are exported.
    pub trace_id: Option<String>,
}

/// A line for the server's standard error (the calling thread writes it,
/// as text or JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogLine {
    pub level: tracing::Level,
    pub message: String,
    /// Fields of a JSON line (the text line has them in `message`).
    pub fields: Vec<(&'static str, String)>,
}

/// What the server is about.
pub(crate) struct Config {
    pub args: ServeArgs,
    pub info: WorkflowInfo,
    pub about: Option<String>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    /// The workflow's wait steps, in plan order.
    pub waits: Vec<WaitInfo>,
    pub check_signal: Arc<CheckSignal>,
}

/// How the server ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Stopped by a signal; every execution ended and its journal with it.
    Stopped,
    /// A second signal: left without waiting for executions.
    Abandoned,
    /// `--shutdown-timeout` passed with executions still running: each was
    /// journaled as cancelled (suspended, if it waits) in its place.
    TimedOut,
}
