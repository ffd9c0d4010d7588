//! `PROGRAM serve`: the workflow as an HTTP service (feature `server`).
//!
//! | endpoint | what |
//! | --- | --- |
//! | `POST /workflows/execute[?wait=true]` | starts an execution of `{"input", "correlationId"?, "workflowId"?}`: 202 with its id, status and links; with `wait`, 200 with its output or error once it ends (202 when it has not ended within `--wait-timeout`) |
//! | `GET /executions/{id}` | state, timestamps, running steps, output or error |
//! | `GET /executions/{id}/journal[?after=SEQ&limit=N]` | the journal's events after `SEQ` |
//! | `POST /executions/{id}/cancel` | 202 cancellation requested, 409 already ended, 404 unknown |
//! | `GET /health` | `{"status": "ok", ...}`; 503 `"failing"` with the reason while the journal fails |
//! | `GET /openapi.json` | an OpenAPI 3.1 document of all of these, with the input schema |
//!
//! Errors are RFC 9457 problem details (`application/problem+json`): 400
//! malformed JSON or query, 404, 405, 409, 413 over `--body-limit`, 415 not
//! JSON, 422 an input that does not fit the workflow's types or bounds (each
//! error with its JSON pointer into the request body), 503 while shutting
//! down.
//!
//! Executions run on the same executor as a plain run. Their journals go to
//! one append-only log under `--journal-dir` ([`LogStore`]: `DIR/log/`,
//! the contract's lines of all executions interleaved, one `fdatasync` for
//! every execution that ended meanwhile): a request that waits gets its
//! result once its terminal event is durable, a 202 is sent once the
//! execution's start is in the OS. Executions are kept in memory by id (the
//! most recent [`MAX_FINISHED`] finished ones); older ones, and those of
//! earlier processes, are read back from the log (or a `run`'s
//! `ID.jsonl`): one without a terminal event is reported `failed` with kind
//! `interrupted`.
//!
//! The first Ctrl-C or SIGTERM stops accepting connections, cancels every
//! running execution cooperatively and waits for their journals to end; a
//! second one exits at once.

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::FutureExt;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::agent::BoxFuture;
use crate::error::panic_message;
use crate::error::{ErrorKind, ExecutionError, StepError};
use crate::executor::{new_execution_id, Runtime, WorkflowInfo};
use crate::journal::id_map::IdMap;
use crate::journal::{JournalRead, LogStore, Snapshot, LOG_DIR};
use crate::program::{escape_pointer, one_line, signals, ExecutionIds, InputError, ServeArgs};
use crate::state::{ExecutionState, StepState};
use crate::telemetry::TraceParent;

/// Finished executions kept in memory at most; older ones are read back
/// from their journals.
pub(crate) const MAX_FINISHED: usize = 10_000;

/// Journal events one page holds at most.
const MAX_PAGE: usize = 10_000;

/// A prepared execution (journal created): runs it to its output, as JSON.
pub(crate) type Run = BoxFuture<'static, Result<Value, ExecutionError>>;

/// Why an execution could not be started.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The input does not fit the workflow's types or bounds.
    Input(InputError),
    /// The journal could not be created.
    Journal(io::Error),
}

/// Parses the input, builds the state and prepares the execution on
/// `runtime` (the typed part, from [`Program`](crate::program::Program)).
pub(crate) type StartFn = dyn Fn(&Runtime, &Value, ExecutionIds, Option<TraceParent>, CancellationToken) -> Result<Started, StartError>
    + Send
    + Sync;

/// An execution the start function prepared.
pub(crate) struct Started {
    pub run: Run,
    /// Its trace, when traces are exported.
    pub trace_id: Option<String>,
}

/// The request headers of trace context and correlation.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
const CORRELATION_ID: &str = "x-correlation-id";

/// What the server is about.
pub(crate) struct Config {
    pub args: ServeArgs,
    pub info: WorkflowInfo,
    pub about: Option<String>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
}

/// How the server ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// Stopped by a signal; every execution ended and its journal with it.
    Stopped,
    /// A second signal: left without waiting for executions.
    Abandoned,
}

/// Runs the server until a signal stops it; log lines go to `log` (the
/// calling thread writes them). `Err` when it cannot start.
pub(crate) fn run(
    config: Config,
    start: Arc<StartFn>,
    interrupts: Option<UnboundedReceiver<()>>,
    log: SyncSender<String>,
) -> Result<End, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("orchestr8-server")
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let end = rt.block_on(serve(config, start, interrupts, log));
    // An abandoned execution (or an agent's blocking task) is not waited for.
    rt.shutdown_background();
    end
}

/// Log lines that cannot be written at once are dropped: never wait on standard error.
fn say(log: &SyncSender<String>, line: String) {
    let _ = log.try_send(line);
}

async fn serve(
    config: Config,
    start: Arc<StartFn>,
    interrupts: Option<UnboundedReceiver<()>>,
    log: SyncSender<String>,
) -> Result<End, String> {
    let addr = config.args.addr;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let mut interrupts = interrupts.unwrap_or_else(signals);
    let store = LogStore::new(config.args.journal_dir.clone())
        .map_err(|e| format!("cannot start the journal's log thread: {e}"))?;
    store.create_dir().map_err(|e| {
        format!(
            "cannot use the journal directory {}: {e} (give --journal-dir a directory this program can write)",
            config.args.journal_dir.display()
        )
    })?;
    let app = Arc::new(App {
        openapi: Bytes::from(serde_json::to_vec_pretty(&openapi(&config)).unwrap_or_default()),
        runtime: Runtime::new(store.clone()),
        store,
        start,
        table: Mutex::new(Table::default()),
        scans: tokio::sync::Mutex::new(()),
        config,
    });
    say(
        &log,
        format!(
            "[orchestr8] serving {} {} on http://{local}; journals in {}",
            app.config.info.id,
            app.config.info.version,
            app.store.dir().join(LOG_DIR).display()
        ),
    );
    {
        // A journal that fails is said once, loudly; /health reports it.
        let (store, log) = (app.store.clone(), log.clone());
        tokio::spawn(async move {
            let why = store.failed().await;
            say(
                &log,
                format!("[orchestr8] error: the journal is failing ({why}); executions are no longer recorded durably"),
            );
        });
    }
    let shutdown = CancellationToken::new();
    let server = axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .into_future();
    let mut server = tokio::spawn(server);
    let mut interruptible = true;
    loop {
        tokio::select! {
            r = &mut server => return Err(match r {
                Ok(Ok(())) => "the server stopped".into(),
                Ok(Err(e)) => format!("the server failed: {e}"),
                Err(e) => format!("the server failed: {e}"),
            }),
            signal = interrupts.recv(), if interruptible => match signal {
                None => interruptible = false,
                Some(()) => break,
            },
        }
    }
    // Stop accepting, then cancel every execution; none starts after this.
    let running: Vec<Arc<Entry>> = {
        let mut table = app.table.lock().unwrap_or_else(|e| e.into_inner());
        table.closing = true;
        table.entries.values().filter(|e| e.done.borrow().is_none()).cloned().collect()
    };
    shutdown.cancel();
    say(
        &log,
        format!(
            "[orchestr8] stopping: cancelling {} running executions; press Ctrl-C again to exit at once",
            running.len()
        ),
    );
    for e in &running {
        e.cancel.cancel();
    }
    let finished = async {
        for e in &running {
            let mut rx = e.done.clone();
            let _ = rx.wait_for(Option::is_some).await;
        }
        let _ = (&mut server).await;
    };
    tokio::select! {
        () = finished => {
            say(&log, "[orchestr8] stopped".into());
            Ok(End::Stopped)
        }
        Some(()) = interrupts.recv() => {
            say(&log, "[orchestr8] exiting without waiting for running executions".into());
            Ok(End::Abandoned)
        }
    }
}

struct App {
    config: Config,
    runtime: Runtime,
    store: LogStore,
    start: Arc<StartFn>,
    table: Mutex<Table>,
    openapi: Bytes,
    /// Held while the segments are searched for an id ([`App::journal`]).
    scans: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Table {
    entries: IdMap<Arc<str>, Arc<Entry>>,
    /// Finished executions, oldest first, for eviction.
    finished: VecDeque<Arc<str>>,
    /// Shutting down: nothing new starts.
    closing: bool,
}

/// An execution this process started.
struct Entry {
    id: Arc<str>,
    cancel: CancellationToken,
    /// `Some` once it ended.
    done: watch::Receiver<Option<Arc<Done>>>,
}

struct Done {
    result: Result<Value, ExecutionError>,
}

impl App {
    fn entry(&self, id: &str) -> Option<Arc<Entry>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).entries.get(id).cloned()
    }

    fn finished(&self, id: Arc<str>) {
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
    fn start(
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
    async fn journal(&self, id: &str) -> Result<Option<JournalRead>, Problem> {
        if !valid_id(id) {
            return Ok(None);
        }
        let (store, owned) = (self.store.clone(), id.to_owned());
        let recent = blocking(move || Ok(store.read_recent(&owned))).await.transpose();
        let read = match recent {
            Some(read) => read.and_then(|r| r),
            None => {
                let _one_at_a_time = self.scans.lock().await;
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
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(io::Error::other(format!("the journal read failed: {e}"))),
    }
}

/// Execution ids name files: letters, digits, `-` and `_` only.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/workflows/execute", post(execute))
        .route("/executions/{id}", get(status))
        .route("/executions/{id}/journal", get(journal))
        .route("/executions/{id}/cancel", post(cancel))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_doc))
        .fallback(|| async { Problem::not_found("no such resource").into_response() })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
                .detail("this resource does not accept that method")
                .into_response()
        })
        .with_state(app)
}

// ---------------------------------------------------------------- problems

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, and for
/// validation errors `errors: [{"pointer", "detail"}]`.
struct Problem {
    status: StatusCode,
    kind: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<(String, String)>,
}

impl Problem {
    fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Self {
        Problem { status, kind, title, detail: String::new(), errors: Vec::new() }
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(detail)
    }

    fn unknown_execution(id: &str) -> Self {
        Problem::not_found(format!("no execution {id}"))
    }

    /// 422 with one error at `pointer` (into the request body).
    fn invalid(pointer: String, message: String) -> Self {
        let at = if pointer.is_empty() { "the top level".to_owned() } else { pointer.clone() };
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", "Invalid input")
            .detail(format!("invalid input at {at}: {message}"));
        p.errors.push((pointer, message));
        p
    }

    fn bad_query(detail: String) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query").detail(detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("urn:orchestr8:problem:{}", self.kind),
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.errors.is_empty() {
            body["errors"] = self
                .errors
                .into_iter()
                .map(|(pointer, detail)| json!({"pointer": pointer, "detail": detail}))
                .collect();
        }
        respond(self.status, "application/problem+json", &body)
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], bytes).into_response()
}

fn ok_json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    respond(status, "application/json", body)
}

// ---------------------------------------------------------------- handlers

/// `application/json`, or any `application/*+json`, with parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().as_bytes();
    let (kind, subtype) = match essence.iter().position(|&b| b == b'/') {
        Some(i) => (&essence[..i], &essence[i + 1..]),
        None => return false,
    };
    let json = |s: &[u8]| s.eq_ignore_ascii_case(b"json");
    kind.eq_ignore_ascii_case(b"application")
        && (json(subtype)
            || subtype.len() > 5 && json(&subtype[subtype.len() - 4..]) && subtype[subtype.len() - 5] == b'+')
}

/// `a=b&c=d` into pairs (values are plain words and numbers: no decoding).
fn query_pairs(query: &Option<String>) -> Vec<(&str, &str)> {
    query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect()
}

fn bool_param(name: &str, v: &str) -> Result<bool, Problem> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Problem::bad_query(format!("'{name}' must be true or false, not '{}'", one_line(v)))),
    }
}

fn u64_param(name: &str, v: &str) -> Result<u64, Problem> {
    v.parse().map_err(|_| Problem::bad_query(format!("'{name}' must be a non-negative integer, not '{}'", one_line(v))))
}

async fn execute(State(app): State<Arc<App>>, RawQuery(query): RawQuery, request: Request) -> Response {
    match execute_inner(app, query, request).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn execute_inner(app: Arc<App>, query: Option<String>, request: Request) -> Result<Response, Problem> {
    let mut wait = false;
    for (k, v) in query_pairs(&query) {
        if k == "wait" {
            wait = bool_param(k, v)?;
        }
    }
    if !is_json(request.headers()) {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .detail("the request body must be JSON (Content-Type: application/json)"));
    }
    let (trace_parent, header_correlation) = request_context(request.headers())?;
    let limit = app.config.args.body_limit;
    let bytes = axum::body::to_bytes(request.into_body(), limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit exceeded");
        if too_large {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large")
                .detail(format!("the request body is larger than the limit of {limit} bytes"))
        } else {
            Problem::new(StatusCode::BAD_REQUEST, "unreadable-body", "Unreadable request body")
                .detail(format!("cannot read the request body: {}", one_line(&e.to_string())))
        }
    })?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON").detail(format!(
            "the request body is not JSON: {} at {}:{}",
            strip_position(&e),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(mut body) = body else {
        return Err(Problem::invalid(String::new(), "the request body must be an object with `input`".into()));
    };
    let input =
        body.remove("input").ok_or_else(|| Problem::invalid("/input".into(), "missing field `input`".into()))?;
    let mut correlation_id = None;
    for (key, value) in body {
        match (key.as_str(), value) {
            ("correlationId", Value::String(c)) if !c.is_empty() => correlation_id = Some(c),
            ("correlationId", Value::Null) => {}
            ("correlationId", _) => {
                return Err(Problem::invalid("/correlationId".into(), "must be a non-empty string".into()))
            }
            ("workflowId", Value::String(w)) if *w == *app.config.info.id => {}
            ("workflowId", _) => {
                return Err(Problem::invalid(
                    "/workflowId".into(),
                    format!("this server runs workflow `{}`", app.config.info.id),
                ))
            }
            (other, _) => {
                return Err(Problem::invalid(
                    format!("/{}", escape_pointer(other)),
                    format!("unknown field `{}`, expected `input`, `correlationId` or `workflowId`", one_line(other)),
                ))
            }
        }
    }
    let correlation_id = match (correlation_id, header_correlation) {
        (Some(body), Some(header)) if body != header => {
            return Err(Problem::invalid(
                "/correlationId".into(),
                format!(
                    "differs from the X-Correlation-Id header `{}`; give one, or the same in both",
                    one_line(&header)
                ),
            ))
        }
        (body, header) => body.or(header),
    };
    let (entry, mut run, trace_id) = app.start(&input, correlation_id.clone(), trace_parent)?;
    let stamp = |mut response: Response| {
        let correlation = correlation_id.as_deref().unwrap_or(&entry.id);
        if let Ok(v) = HeaderValue::from_str(correlation) {
            response.headers_mut().insert(CORRELATION_ID, v);
        }
        if let Some(Ok(v)) = trace_id.as_deref().map(HeaderValue::from_str) {
            response.headers_mut().insert("x-trace-id", v);
        }
        response
    };
    if !wait {
        // Up to its first wait: `execution.started` is recorded.
        std::future::poll_fn(|cx| {
            let _ = std::future::Future::poll(std::pin::Pin::new(&mut run), cx);
            std::task::Poll::Ready(())
        })
        .await;
    } else if let Ok(done) = tokio::time::timeout(app.config.args.wait_timeout, &mut run).await {
        let ended = Ended { trace_id: trace_id.as_deref(), ..Ended::new(&entry.id, &done.result) };
        return Ok(stamp(ok_json(StatusCode::OK, &ended)));
    }
    // Acknowledged once its start is in the OS: after a crash from here on
    // it reads back `interrupted`, never unknown. (A failing journal is
    // logged by the journal; the execution runs regardless.)
    let _ = app.store.in_os().await;
    let status = match &*entry.done.borrow() {
        Some(done) => result_state(&done.result),
        None => ExecutionState::Running,
    };
    let mut body = json!({ "executionId": &*entry.id, "status": status, "links": links(&entry.id) });
    if let Some(t) = &trace_id {
        body["traceId"] = json!(t);
    }
    let mut response = ok_json(StatusCode::ACCEPTED, &body);
    if let Ok(location) = HeaderValue::from_str(&format!("/executions/{}", entry.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(stamp(response))
}

/// The trace context and correlation id a request brings in its headers.
/// A malformed `traceparent` is not the request's failure (W3C Trace
/// Context): the execution then starts a trace of its own.
fn request_context(headers: &HeaderMap) -> Result<(Option<TraceParent>, Option<String>), Problem> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let trace_parent = text(TRACEPARENT).map(|traceparent| TraceParent { traceparent, tracestate: text(TRACESTATE) });
    let correlation = match headers.get(CORRELATION_ID).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        Some(_) => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "bad-header", "Bad header")
                .detail("the `X-Correlation-Id` header must be visible ASCII and not empty"))
        }
    };
    Ok((trace_parent, correlation))
}

/// An execution that runs to its end wherever it is: polled by the request
/// that waits for it, and spawned as a task of its own (with what is left of
/// it) when dropped unfinished, as when the wait times out, the client goes
/// away, or nobody waits.
struct Detached(Option<BoxFuture<'static, Arc<Done>>>);

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

/// serde_json's message without its ` at line L column C` suffix.
fn strip_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    one_line(full.strip_suffix(&suffix).unwrap_or(&full))
}

fn links(id: &str) -> Value {
    json!({
        "self": format!("/executions/{id}"),
        "journal": format!("/executions/{id}/journal"),
        "cancel": format!("/executions/{id}/cancel"),
    })
}

fn result_state(result: &Result<Value, ExecutionError>) -> ExecutionState {
    match result {
        Ok(_) => ExecutionState::Completed,
        Err(e) if e.kind == ErrorKind::Cancelled => ExecutionState::Cancelled,
        Err(_) => ExecutionState::Failed,
    }
}

/// The body of a waited-for execution's 200: written straight from the
/// result (no `Value` built, the output not copied).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Ended<'a> {
    execution_id: &'a str,
    status: ExecutionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ExecutionError>,
    /// The execution's trace, when traces are exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
}

impl<'a> Ended<'a> {
    fn new(execution_id: &'a str, result: &'a Result<Value, ExecutionError>) -> Self {
        Ended {
            execution_id,
            status: result_state(result),
            output: result.as_ref().ok(),
            error: result.as_ref().err(),
            trace_id: None,
        }
    }
}

fn insert_result(body: &mut Map<String, Value>, result: &Result<Value, ExecutionError>) {
    body.insert("status".into(), json!(result_state(result)));
    match result {
        Ok(output) => body.insert("output".into(), output.clone()),
        Err(e) => body.insert("error".into(), json!(e)),
    };
}

fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

async fn status(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let entry = app.entry(&id);
    let read = match app.journal(&id).await {
        Ok(r) => r,
        // Known here: its state is in memory even if its journal is not readable.
        Err(_) if entry.is_some() => None,
        Err(p) => return p.into_response(),
    };
    let (entry, read) = match (entry, read) {
        (None, None) => return Problem::unknown_execution(&id).into_response(),
        (Some(e), None) => (Some(e), JournalRead::default()),
        (e, Some(r)) => (e, r),
    };
    let snapshot = Snapshot::from_events(&read.events);
    let mut body = Map::new();
    body.insert("executionId".into(), json!(id));
    if let Some(started) = read.events.iter().find(|e| e.event == crate::journal::EventKind::ExecutionStarted) {
        body.insert("workflowId".into(), json!(started.workflow_id()));
        body.insert("workflowVersion".into(), json!(started.workflow_version()));
        body.insert("correlationId".into(), json!(started.correlation_id()));
        body.insert("startedAt".into(), json!(timestamp(started.ts)));
    }
    if let Some(last) = read.events.last().filter(|e| e.event.is_terminal()) {
        body.insert("endedAt".into(), json!(timestamp(last.ts)));
    }
    let done = entry.as_ref().and_then(|e| e.done.borrow().clone());
    // Steps run only in a live execution of this process.
    let live = entry.is_some() && done.is_none();
    let running: Vec<&String> = snapshot
        .steps
        .iter()
        .filter(|(_, s)| live && matches!(s, StepState::Executing | StepState::Retrying))
        .map(|(k, _)| k)
        .collect();
    match (&entry, done) {
        (_, Some(done)) => insert_result(&mut body, &done.result),
        (Some(_), None) => {
            let state = snapshot.execution.map_or(ExecutionState::Pending, |_| ExecutionState::Running);
            body.insert("status".into(), json!(state));
        }
        (None, None) => {
            body.insert("status".into(), json!(snapshot.execution.unwrap_or(ExecutionState::Pending)));
            if let Some(output) = &snapshot.output {
                body.insert("output".into(), output.clone());
            }
            if let Some(error) = &snapshot.error {
                body.insert("error".into(), json!(error));
            }
        }
    }
    let cancel_requested = entry.as_ref().is_some_and(|e| e.cancel.is_cancelled());
    body.insert("cancelRequested".into(), json!(cancel_requested));
    body.insert("runningSteps".into(), json!(running));
    body.insert("steps".into(), json!(snapshot.steps));
    body.insert("links".into(), links(&id));
    ok_json(StatusCode::OK, &Value::Object(body))
}

async fn journal(State(app): State<Arc<App>>, Path(id): Path<String>, RawQuery(query): RawQuery) -> Response {
    let (mut after, mut limit) = (0u64, 1000u64);
    for (k, v) in query_pairs(&query) {
        let parsed = match k {
            "after" => u64_param(k, v).map(|n| after = n),
            "limit" => u64_param(k, v).map(|n| limit = n.clamp(1, MAX_PAGE as u64)),
            _ => Ok(()),
        };
        if let Err(p) = parsed {
            return p.into_response();
        }
    }
    let read = match app.journal(&id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Problem::unknown_execution(&id).into_response(),
        Err(p) => return p.into_response(),
    };
    let complete = read.events.last().is_some_and(|e| e.event.is_terminal());
    let page: Vec<_> = read.events.iter().filter(|e| e.seq > after).take(limit as usize).collect();
    let more = read.events.iter().filter(|e| e.seq > after).nth(page.len()).is_some();
    let last = page.last().map_or(after, |e| e.seq);
    let events = match serde_json::to_value(&page) {
        Ok(v) => v,
        Err(e) => {
            return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "journal-unreadable", "Journal unreadable")
                .detail(one_line(&e.to_string()))
                .into_response()
        }
    };
    let mut body = json!({
        "executionId": id,
        "events": events,
        "after": last,
        "more": more,
        "complete": complete,
    });
    if more {
        body["links"] = json!({ "next": format!("/executions/{id}/journal?after={last}&limit={limit}") });
    }
    ok_json(StatusCode::OK, &body)
}

async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let Some(entry) = app.entry(&id) else {
        return match app.journal(&id).await {
            Ok(Some(_)) => ended(&id),
            Ok(None) => Problem::unknown_execution(&id).into_response(),
            Err(p) => p.into_response(),
        };
    };
    if entry.done.borrow().is_some() {
        return ended(&id);
    }
    entry.cancel.cancel();
    ok_json(
        StatusCode::ACCEPTED,
        &json!({ "executionId": id, "status": ExecutionState::Running, "cancelRequested": true, "links": links(&id) }),
    )
}

fn ended(id: &str) -> Response {
    Problem::new(StatusCode::CONFLICT, "execution-ended", "Execution ended")
        .detail(format!("execution {id} has already ended"))
        .into_response()
}

async fn health(State(app): State<Arc<App>>) -> Response {
    let running = {
        let table = app.table.lock().unwrap_or_else(|e| e.into_inner());
        table.entries.values().filter(|e| e.done.borrow().is_none()).count()
    };
    let mut body = json!({
        "status": "ok",
        "workflowId": &*app.config.info.id,
        "workflowVersion": &*app.config.info.version,
        "running": running,
    });
    // Unhealthy while the journal fails: executions would go unrecorded.
    let status = match app.store.failure() {
        Some(why) => {
            body["status"] = json!("failing");
            body["journal"] = json!(&*why);
            StatusCode::SERVICE_UNAVAILABLE
        }
        None => StatusCode::OK,
    };
    ok_json(status, &body)
}

async fn openapi_doc(State(app): State<Arc<App>>) -> Response {
    let body = Body::from(app.openapi.clone());
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

// ---------------------------------------------------------------- OpenAPI

/// `schema` with its local `$ref`s (`#/...`) rewritten to point under `base`
/// (where it sits in the OpenAPI document).
fn rebase_refs(schema: &Value, base: &str) -> Value {
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("$ref", Value::String(r)) if r.starts_with("#/") => {
                        (k.clone(), json!(format!("{base}{}", &r[1..])))
                    }
                    _ => (k.clone(), rebase_refs(v, base)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| rebase_refs(v, base)).collect()),
        other => other.clone(),
    }
}

fn openapi(config: &Config) -> Value {
    let info = &config.info;
    let input =
        config.input_schema.as_ref().map_or_else(|| json!({}), |s| rebase_refs(s, "#/components/schemas/Input"));
    let output =
        config.output_schema.as_ref().map_or_else(|| json!({}), |s| rebase_refs(s, "#/components/schemas/Output"));
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
        })
    };
    let id_param = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
    let state = json!({ "type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled"] });
    let trace_id = json!({ "type": "string", "pattern": "^[0-9a-f]{32}$",
                           "description": "the execution's trace, when traces are exported" });
    let trace_headers = json!({
        "X-Correlation-Id": { "schema": { "type": "string" }, "description": "the execution's correlation id" },
        "X-Trace-Id": { "schema": { "type": "string" }, "description": "the execution's trace id, when traces are exported" }
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("{} {}", info.id, info.version),
            "version": &*info.version,
            "description": config.about.clone().unwrap_or_else(|| format!("Workflow {} served by orchestr8.", info.id)),
        },
        "paths": {
            "/workflows/execute": { "post": {
                "operationId": "execute",
                "summary": "Start an execution",
                "parameters": [
                    { "name": "wait", "in": "query", "required": false, "schema": { "type": "boolean" },
                      "description": "wait (bounded by the server's --wait-timeout) for the result" },
                    { "name": "traceparent", "in": "header", "required": false, "schema": { "type": "string" },
                      "description": "W3C Trace Context: the execution's trace continues it (when traces are exported; a malformed one is ignored)" },
                    { "name": "tracestate", "in": "header", "required": false, "schema": { "type": "string" },
                      "description": "W3C Trace Context, with traceparent" },
                    { "name": "X-Correlation-Id", "in": "header", "required": false, "schema": { "type": "string", "minLength": 1 },
                      "description": "the correlation id, as `correlationId` in the body (different values in both: 422)" }
                ],
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object",
                    "required": ["input"],
                    "additionalProperties": false,
                    "properties": {
                        "input": { "$ref": "#/components/schemas/Input" },
                        "correlationId": { "type": "string", "minLength": 1 },
                        "workflowId": { "const": &*info.id }
                    }
                } } } },
                "responses": {
                    "200": { "description": "the execution ended (with ?wait=true)",
                             "headers": trace_headers,
                             "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Result" } } } },
                    "202": { "description": "the execution started",
                             "headers": trace_headers,
                             "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Accepted" } } } },
                    "400": problem("malformed JSON or query"),
                    "413": problem("the body is over the server's limit"),
                    "415": problem("the body is not JSON"),
                    "422": problem("the input does not fit the workflow's input schema; `errors` holds JSON pointers"),
                    "503": problem("the server is shutting down")
                }
            } },
            "/executions/{id}": { "get": {
                "operationId": "getExecution",
                "summary": "An execution's state",
                "parameters": [id_param.clone()],
                "responses": {
                    "200": { "description": "the execution",
                             "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Execution" } } } },
                    "404": problem("unknown execution")
                }
            } },
            "/executions/{id}/journal": { "get": {
                "operationId": "getJournal",
                "summary": "An execution's journal events",
                "parameters": [
                    id_param.clone(),
                    { "name": "after", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 },
                      "description": "only events with a greater seq" },
                    { "name": "limit", "in": "query", "required": false,
                      "schema": { "type": "integer", "minimum": 1, "maximum": MAX_PAGE } }
                ],
                "responses": {
                    "200": { "description": "a page of events", "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["executionId", "events", "after", "more", "complete"],
                        "properties": {
                            "executionId": { "type": "string" },
                            "events": { "type": "array", "items": { "type": "object" } },
                            "after": { "type": "integer", "description": "the seq to pass as ?after= for the next page" },
                            "more": { "type": "boolean" },
                            "complete": { "type": "boolean", "description": "the journal has its terminal event" }
                        }
                    } } } },
                    "400": problem("a bad query parameter"),
                    "404": problem("unknown execution")
                }
            } },
            "/executions/{id}/cancel": { "post": {
                "operationId": "cancelExecution",
                "summary": "Request cooperative cancellation",
                "parameters": [id_param],
                "responses": {
                    "202": { "description": "cancellation requested" },
                    "404": problem("unknown execution"),
                    "409": problem("the execution has already ended")
                }
            } },
            "/health": { "get": {
                "operationId": "health",
                "responses": {
                    "200": { "description": "the server is up" },
                    "503": { "description": "the journal is failing (`journal` says why): executions would go unrecorded" }
                }
            } },
            "/openapi.json": { "get": {
                "operationId": "openapi",
                "responses": { "200": { "description": "this document" } }
            } }
        },
        "components": { "schemas": {
            "Input": input,
            "Output": output,
            "Error": {
                "type": "object",
                "required": ["kind", "message", "attempt"],
                "properties": {
                    "kind": { "type": "string", "enum": ["agent_failed", "fatal", "timeout", "circuit_open",
                              "invalid_input", "invalid_output", "cancelled", "interrupted"] },
                    "message": { "type": "string" },
                    "step": { "type": "string" },
                    "attempt": { "type": "integer" }
                }
            },
            "Links": {
                "type": "object",
                "properties": { "self": { "type": "string" }, "journal": { "type": "string" }, "cancel": { "type": "string" } }
            },
            "Accepted": {
                "type": "object",
                "required": ["executionId", "status", "links"],
                "properties": {
                    "executionId": { "type": "string" },
                    "status": state,
                    "links": { "$ref": "#/components/schemas/Links" },
                    "traceId": trace_id
                }
            },
            "Result": {
                "type": "object",
                "required": ["executionId", "status"],
                "properties": {
                    "executionId": { "type": "string" },
                    "status": state,
                    "output": { "$ref": "#/components/schemas/Output" },
                    "error": { "$ref": "#/components/schemas/Error" },
                    "traceId": trace_id
                }
            },
            "Execution": {
                "type": "object",
                "required": ["executionId", "status", "runningSteps", "steps", "links"],
                "properties": {
                    "executionId": { "type": "string" },
                    "workflowId": { "type": "string" },
                    "workflowVersion": { "type": "string" },
                    "correlationId": { "type": "string" },
                    "status": state,
                    "startedAt": { "type": "string", "format": "date-time" },
                    "endedAt": { "type": "string", "format": "date-time" },
                    "cancelRequested": { "type": "boolean" },
                    "runningSteps": { "type": "array", "items": { "type": "string" } },
                    "steps": { "type": "object", "additionalProperties": { "type": "string" } },
                    "output": { "$ref": "#/components/schemas/Output" },
                    "error": { "$ref": "#/components/schemas/Error" },
                    "links": { "$ref": "#/components/schemas/Links" }
                }
            },
            "Problem": {
                "type": "object",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": { "type": "string", "format": "uri-reference" },
                    "title": { "type": "string" },
                    "status": { "type": "integer" },
                    "detail": { "type": "string" },
                    "errors": { "type": "array", "items": {
                        "type": "object",
                        "required": ["pointer", "detail"],
                        "properties": { "pointer": { "type": "string" }, "detail": { "type": "string" } }
                    } }
                }
            }
        } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content_type(ct: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        is_json(&headers)
    }

    #[test]
    fn json_media_types_with_any_case_and_parameters() {
        for yes in
            ["application/json", "Application/JSON; charset=utf-8", " application/problem+json ", "application/x+JSON"]
        {
            assert!(content_type(yes), "{yes}");
        }
        for no in ["text/json", "application/jsonx", "application/+json", "json", "application/xml", ""] {
            assert!(!content_type(no), "{no:?}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
