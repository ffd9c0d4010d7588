//! The endpoints.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::idempotency;
use super::problem::{ok_json, Problem};
use super::registry::{App, Start};
use super::request::{
    bool_param, is_json, json_or_empty, parse_json, query_pairs, request_context, u64_param, ExecuteBody,
    CORRELATION_ID,
};
use super::responses::{
    result_state, timestamp, Accepted, CancelRequested, Ended, ExecutionDoc, Health, HealthStatus, JournalPage, Links,
    NextPage, SignalAccepted,
};
use crate::journal::{EventLabels, Snapshot};
use crate::program::one_line;
use crate::state::{ExecutionState, StepState};

/// Request bodies larger than this are parsed and checked off the async workers.
const BLOCKING_BODY_BYTES: usize = 64 * 1024;

/// Journal events one page holds at most.
pub(super) const MAX_PAGE: usize = 10_000;
const MAX_PAGE_U64: u64 = MAX_PAGE as u64;

/// Bytes of events one page holds at most (a page holds at least one event,
/// however large): a client paging a journal of large inputs and outputs
/// gets responses of a bounded size, with `more` and `links.next`.
pub(super) const MAX_PAGE_BYTES: usize = 1024 * 1024;

pub(super) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/workflows/execute", post(execute))
        .route("/executions/{id}", get(status))
        .route("/executions/{id}/journal", get(journal))
        .route("/executions/{id}/cancel", post(cancel))
        .route("/executions/{id}/signals/{step}", post(signal))
        .route("/health", get(health))
        .route("/openapi.json", get(openapi_doc))
        .fallback(|| async { Problem::not_found("no such resource").into_response() })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed")
                .detail("this resource does not accept that method")
                .into_response()
        })
        .layer(axum::middleware::from_fn_with_state(app.clone(), super::access::front))
        .with_state(app)
}

pub(super) async fn execute(State(app): State<Arc<App>>, RawQuery(query): RawQuery, request: Request) -> Response {
    match execute_inner(app, query, request).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

pub(super) async fn execute_inner(app: Arc<App>, query: Option<String>, request: Request) -> Result<Response, Problem> {
    let mut wait = false;
    for (k, v) in query_pairs(&query) {
        if k == "wait" {
            wait = bool_param(&k, &v)?;
        }
    }
    if !is_json(request.headers()) {
        return Err(Problem::not_json());
    }
    let (trace_parent, header_correlation) = request_context(request.headers())?;
    let key = idempotency::key(request.headers())?;
    let bytes = read_body(&app, request).await?;
    // A large body is parsed and its input checked on the blocking pool:
    // that work is linear in its size, and must not hold up the async
    // workers that answer every other request (`/health` among them).
    let large = bytes.len() > BLOCKING_BODY_BYTES;
    let prepare = {
        let app = app.clone();
        move || {
            let body = ExecuteBody::parse(&bytes, &app.config.info.id, header_correlation)?;
            let started = app.start(&body.input, body.correlation_id.clone(), trace_parent, key)?;
            Ok::<_, Problem>((body.correlation_id, started))
        }
    };
    let (correlation_id, start) = if large {
        tokio::task::spawn_blocking(prepare)
            .await
            .map_err(|e| Problem::internal(format!("the request failed: {e}")))??
    } else {
        prepare()?
    };
    let (entry, mut run, trace_id) = match start {
        Start::New(entry, run, trace_id) => (entry, run, trace_id),
        Start::Replay(id) => {
            // The same request as the first: the same correlation id.
            let mut response = replay(&app, &id, wait).await?;
            stamp_correlation(&mut response, correlation_id.as_deref().unwrap_or(&id));
            return Ok(response);
        }
    };
    let stamp = |mut response: Response| {
        stamp_correlation(&mut response, correlation_id.as_deref().unwrap_or(&entry.id));
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
        // The execution synced its journal before it ended; a log that has
        // failed since it started may have lost its end: the result is not
        // promised durable then, and the client is told so.
        if let Some(why) = app.store.failure() {
            let status = result_state(&done.result);
            return Err(not_durable(&entry.id, status, &why, "its end"));
        }
        let ended = Ended { trace_id: trace_id.as_deref(), ..Ended::new(&entry.id, &done.result) };
        return Ok(stamp(ok_json(StatusCode::OK, &ended)));
    }
    let status = || match &*entry.done.borrow() {
        Some(done) => result_state(&done.result),
        None => ExecutionState::Running,
    };
    // Acknowledged once its start is in the OS: after a crash from here on
    // it reads back `interrupted`, never unknown. When the log cannot say
    // that, the client hears it instead of a 202.
    if let Err(e) = app.store.in_os().await {
        return Err(not_durable(&entry.id, status(), &e.to_string(), "its start"));
    }
    Ok(stamp(accepted(&entry.id, status(), trace_id.as_deref())))
}

/// 202 with the execution's id, state and links, and `Location`.
/// The request's body, within `--body-limit` and `--body-timeout`.
async fn read_body(app: &App, request: Request) -> Result<axum::body::Bytes, Problem> {
    let limit = app.config.args.body_limit;
    axum::body::to_bytes(request.into_body(), limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit exceeded");
        if too_large {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "body-too-large", "Request body too large")
                .detail(format!("the request body is larger than the limit of {limit} bytes"))
        } else if let Some(timeout) = super::listener::body_timeout(&e) {
            Problem::new(StatusCode::REQUEST_TIMEOUT, "body-timeout", "Request body timeout")
                .detail(format!("{timeout}; send it faster, or ask for a longer --body-timeout"))
        } else {
            Problem::new(StatusCode::BAD_REQUEST, "unreadable-body", "Unreadable request body")
                .detail(format!("cannot read the request body: {}", one_line(&e.to_string())))
        }
    })
}

/// `POST /executions/{id}/signals/{step}`: the body is the payload of the
/// signal the wait step `step` waits for.
pub(super) async fn signal(
    State(app): State<Arc<App>>,
    Path((id, step)): Path<(String, String)>,
    request: Request,
) -> Response {
    match signal_inner(app, &id, &step, request).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    }
}

async fn signal_inner(app: Arc<App>, id: &str, step: &str, request: Request) -> Result<Response, Problem> {
    if !is_json(request.headers()) {
        return Err(Problem::not_json());
    }
    let bytes = read_body(&app, request).await?;
    let payload = parse_json(&bytes)?;
    let Some(entry) = app.entry(id) else {
        return Err(match app.journal(id).await? {
            Some(read) if read.events.iter().any(|e| e.event.is_terminal()) => ended_problem(id),
            Some(_) => Problem::new(StatusCode::CONFLICT, "not-running", "Execution not running").detail(format!(
                "execution {id} is not running in this server; a restart of the server on its journal \
                     directory resumes it"
            )),
            None => Problem::unknown_execution(id),
        });
    };
    if entry.done.borrow().is_some() {
        return Err(ended_problem(id));
    }
    let Some(checked) = (app.config.check_signal)(step, &payload) else {
        let waits: Vec<&str> = app.config.waits.iter().map(|w| w.step.as_str()).collect();
        let known = if waits.is_empty() {
            "this workflow has no wait step".to_owned()
        } else {
            format!("its wait steps are {}", waits.join(", "))
        };
        return Err(Problem::not_found(format!("`{step}` is not a wait step of this workflow; {known}")));
    };
    let payload = checked.map_err(|e| Problem::invalid(e.pointer, e.message))?;
    if entry.mailbox.deliver(step, payload).is_err() {
        let waiting = entry.mailbox.waiting();
        let now = if waiting.is_empty() { "none".to_owned() } else { waiting.join(", ") };
        return Err(Problem::new(StatusCode::CONFLICT, "not-waiting", "Step not waiting").detail(format!(
            "step `{step}` of execution {id} is not waiting for its signal (it has not started to wait, has \
             received its signal or has ended); the steps waiting now: {now}"
        )));
    }
    let signal = app.config.waits.iter().find(|w| w.step == step).map(|w| w.signal.clone()).unwrap_or_default();
    let body = SignalAccepted { execution_id: id, step_id: step, signal: &signal, links: Links::of(id) };
    Ok(ok_json(StatusCode::ACCEPTED, &body))
}

fn accepted(id: &str, status: ExecutionState, trace_id: Option<&str>) -> Response {
    let mut response =
        ok_json(StatusCode::ACCEPTED, &Accepted { execution_id: id, status, links: Links::of(id), trace_id });
    if let Ok(location) = HeaderValue::from_str(&format!("/executions/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

pub(super) async fn status(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    let entry = app.entry(&id);
    let done = entry.as_ref().and_then(|e| e.done.borrow().clone());
    // Running here: its state is in memory, folded as its events were appended.
    let live = match (&entry, &done) {
        (Some(_), None) => app.store.live(&id),
        _ => None,
    };
    let snapshot = match live {
        Some(snapshot) => snapshot,
        None => match app.journal(&id).await {
            Ok(Some(read)) => Snapshot::from_events(&read.events),
            Ok(None) if entry.is_some() => Snapshot::default(),
            // Known here: its state is in memory even if its journal is not readable.
            Err(_) if entry.is_some() => Snapshot::default(),
            Ok(None) => return Problem::unknown_execution(&id).into_response(),
            Err(p) => return p.into_response(),
        },
    };
    let labels = snapshot.started.as_ref().and_then(|(_, labels)| labels.as_deref());
    let label = |f: fn(&EventLabels) -> &Option<Arc<str>>| labels.and_then(|l| f(l).as_deref()).map(str::to_owned);
    // Steps run only in a live execution of this process.
    let live = entry.is_some() && done.is_none();
    let running_steps: Vec<String> = snapshot
        .steps
        .iter()
        .filter(|(_, s)| live && matches!(s, StepState::Executing | StepState::Retrying))
        .map(|(k, _)| k.clone())
        .collect();
    // Only steps waiting for signals left: the contract's `waiting`.
    let waits = entry.as_ref().is_some_and(|e| !e.mailbox.waiting().is_empty());
    let (status, output, error) = match (&entry, done) {
        (_, Some(done)) => (result_state(&done.result), done.result.as_ref().ok().cloned(), done.result.clone().err()),
        (Some(_), None) if snapshot.execution.is_none() => (ExecutionState::Pending, None, None),
        (Some(_), None) if waits && running_steps.is_empty() => (ExecutionState::Waiting, None, None),
        (Some(_), None) => (ExecutionState::Running, None, None),
        (None, None) => {
            (snapshot.execution.unwrap_or(ExecutionState::Pending), snapshot.output.clone(), snapshot.error.clone())
        }
    };
    let body = ExecutionDoc {
        execution_id: id.clone(),
        workflow_id: label(|l| &l.workflow_id),
        workflow_version: label(|l| &l.workflow_version),
        correlation_id: label(|l| &l.correlation_id),
        status,
        started_at: snapshot.started.as_ref().map(|(ts, _)| timestamp(*ts)),
        ended_at: snapshot.ended_at.map(timestamp),
        cancel_requested: entry.as_ref().is_some_and(|e| e.cancel.is_cancelled()),
        running_steps,
        steps: snapshot.steps,
        output,
        error,
        links: Links::of(&id),
    };
    ok_json(StatusCode::OK, &body)
}

pub(super) async fn journal(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let (mut after, mut limit) = (0u64, 1000u64);
    for (k, v) in query_pairs(&query) {
        let (k, v) = (k.as_str(), v.as_str());
        let parsed = match k {
            "after" => u64_param(k, v).map(|n| after = n),
            "limit" => u64_param(k, v).and_then(|n| match n {
                1..=MAX_PAGE_U64 => {
                    limit = n;
                    Ok(())
                }
                _ => Err(Problem::bad_query(format!("'limit' must be from 1 to {MAX_PAGE}, not {n}"))),
            }),
            _ => Ok(()),
        };
        if let Err(p) = parsed {
            return p.into_response();
        }
    }
    let page = match app.journal_page(&id, after, limit as usize).await {
        Ok(Some(p)) => p,
        Ok(None) => return Problem::unknown_execution(&id).into_response(),
        Err(p) => return p.into_response(),
    };
    let complete = page.complete;
    let (mut events, mut bytes, mut more, mut last) = (Vec::new(), 0usize, page.more, after);
    for e in &page.events {
        let raw = match serde_json::to_string(e).map(serde_json::value::RawValue::from_string) {
            Ok(Ok(raw)) => raw,
            Ok(Err(e)) | Err(e) => {
                return Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "journal-unreadable", "Journal unreadable")
                    .detail(one_line(&e.to_string()))
                    .into_response()
            }
        };
        // Capped by count and by bytes; never empty while events are left.
        if events.len() as u64 >= limit || (!events.is_empty() && bytes + raw.get().len() > MAX_PAGE_BYTES) {
            more = true;
            break;
        }
        bytes += raw.get().len() + 1;
        last = e.seq;
        events.push(raw);
    }
    let links = more.then(|| NextPage { next: format!("/executions/{id}/journal?after={last}&limit={limit}") });
    ok_json(StatusCode::OK, &JournalPage { execution_id: &id, events, after: last, more, complete, links })
}

pub(super) async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    // A cross-site form can POST; it cannot send JSON or an empty body without a type.
    if let Err(p) = json_or_empty(&headers) {
        return p.into_response();
    }
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
    let body = CancelRequested {
        execution_id: &id,
        status: ExecutionState::Running,
        cancel_requested: true,
        links: Links::of(&id),
    };
    ok_json(StatusCode::ACCEPTED, &body)
}

pub(super) fn ended(id: &str) -> Response {
    ended_problem(id).into_response()
}

fn ended_problem(id: &str) -> Problem {
    Problem::new(StatusCode::CONFLICT, "execution-ended", "Execution ended")
        .detail(format!("execution {id} has already ended"))
}

pub(super) async fn health(State(app): State<Arc<App>>) -> Response {
    let running = app.table.lock().unwrap_or_else(|e| e.into_inner()).running();
    // Unhealthy while the journal fails: executions would go unrecorded.
    let failure = app.store.failure();
    let body = Health {
        status: if failure.is_some() { HealthStatus::Failing } else { HealthStatus::Ok },
        workflow_id: &app.config.info.id,
        workflow_version: &app.config.info.version,
        running,
        journal: failure.as_deref(),
    };
    if failure.is_none() {
        return ok_json(StatusCode::OK, &body);
    }
    let mut response = ok_json(StatusCode::SERVICE_UNAVAILABLE, &body);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(30u32));
    response
}

pub(super) async fn openapi_doc(State(app): State<Arc<App>>) -> Response {
    let body = Body::from(app.openapi.clone());
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}

/// 503: the execution runs (or ran) but the journal could not record `what`.
fn not_durable(id: &str, status: ExecutionState, why: &str, what: &str) -> Problem {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-durable", "Not durable")
        .detail(format!(
            "execution {id} is {} but the journal failed, so {what} may not be recorded durably ({}); \
             GET /executions/{id} answers from memory while this process runs",
            status.as_str(),
            one_line(why)
        ))
        .about(id, Some(status))
        .retry_after(30)
}

/// `X-Correlation-Id`: the request's correlation id, or the execution's id.
fn stamp_correlation(response: &mut Response, correlation: &str) {
    if let Ok(v) = HeaderValue::from_str(correlation) {
        response.headers_mut().insert(CORRELATION_ID, v);
    }
}

/// The answer to a retried request (the same `Idempotency-Key` and body):
/// the execution the first one started, as that one would have been
/// answered now: 200 with its result once it has ended (waiting for it as
/// the request asks), else 202. Marked `Idempotent-Replayed: true`.
async fn replay(app: &Arc<App>, id: &str, wait: bool) -> Result<Response, Problem> {
    let mut response = if let Some(entry) = app.entry(id) {
        // The first request may still be starting it: wait for its start to
        // succeed or fail (parsing and checking the input, nothing longer).
        let (mut ready, mut ended) = (entry.ready.clone(), entry.done.clone());
        tokio::select! {
            _ = ready.wait_for(|r| *r) => {}
            _ = ended.wait_for(Option::is_some) => {}
        }
        if entry.done.borrow().as_ref().is_some_and(|d| !d.started) {
            return Err(Problem::new(StatusCode::CONFLICT, "idempotency-key-unused", "Nothing started").detail(
                "the first request with this Idempotency-Key was refused and started nothing; send the request again",
            ));
        }
        if wait {
            let mut done = entry.done.clone();
            let _ = tokio::time::timeout(app.config.args.wait_timeout, done.wait_for(Option::is_some)).await;
        }
        let done = entry.done.borrow().clone();
        match done {
            Some(done) => ok_json(StatusCode::OK, &Ended::new(id, &done.result)),
            None => accepted(id, ExecutionState::Running, None),
        }
    } else {
        // An earlier process's, or forgotten from memory: its journal says.
        let Some(read) = app.journal(id).await? else {
            return Err(Problem::new(StatusCode::GONE, "execution-gone", "Execution gone").detail(format!(
                "the Idempotency-Key started execution {id}, whose journal is gone (retention); use a new key"
            )));
        };
        let snapshot = Snapshot::from_events(&read.events);
        // Not in memory: ended here, or an earlier process's (one without its
        // terminal event reads as failed, `interrupted`: that process is gone).
        let state = snapshot.execution.unwrap_or(ExecutionState::Pending);
        let mut body = Map::new();
        body.insert("executionId".into(), json!(id));
        body.insert("status".into(), json!(state));
        if let Some(output) = &snapshot.output {
            body.insert("output".into(), output.clone());
        }
        if let Some(error) = &snapshot.error {
            body.insert("error".into(), json!(error));
        }
        ok_json(StatusCode::OK, &Value::Object(body))
    };
    response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}
