//! The endpoints.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use super::problem::{ok_json, Problem};
use super::registry::App;
use super::request::{bool_param, is_json, query_pairs, request_context, strip_position, u64_param, CORRELATION_ID};
use super::responses::{insert_result, links, result_state, timestamp, Ended};
use crate::journal::{JournalRead, Snapshot};
use crate::program::{escape_pointer, one_line};
use crate::state::{ExecutionState, StepState};

/// Journal events one page holds at most.
pub(super) const MAX_PAGE: usize = 10_000;

pub(super) fn router(app: Arc<App>) -> Router {
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
        } else if let Some(timeout) = super::listener::body_timeout(&e) {
            Problem::new(StatusCode::REQUEST_TIMEOUT, "body-timeout", "Request body timeout")
                .detail(format!("{timeout}; send it faster, or ask for a longer --body-timeout"))
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

pub(super) async fn status(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
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

pub(super) async fn journal(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
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

pub(super) async fn cancel(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
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

pub(super) fn ended(id: &str) -> Response {
    Problem::new(StatusCode::CONFLICT, "execution-ended", "Execution ended")
        .detail(format!("execution {id} has already ended"))
        .into_response()
}

pub(super) async fn health(State(app): State<Arc<App>>) -> Response {
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

pub(super) async fn openapi_doc(State(app): State<Arc<App>>) -> Response {
    let body = Body::from(app.openapi.clone());
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
