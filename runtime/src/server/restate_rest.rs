//! `ID-restate rest`: the REST API of `PROGRAM serve` for a workflow that
//! runs on Restate, over Restate's ingress and admin APIs, so a client does
//! not change when the workflow moves (feature `restate-rest`).
//!
//! | endpoint | over |
//! | --- | --- |
//! | `POST /workflows/execute[?wait=true]` | the input checked here (422, as `serve`), then `POST INGRESS/ID/run/send` (an `Idempotency-Key` is Restate's own, the request's fingerprint sent with it: a key reused for another request is a 422), and with `wait` the invocation's attach |
//! | `GET /executions/{id}` | `sys_invocation` (admin SQL) and the invocation's output |
//! | `GET /executions/{id}/journal[?after=SEQ&limit=N]` | `sys_journal` of the invocation and of the branch and item calls it made, as the contract's events |
//! | `POST /executions/{id}/cancel` | `PATCH ADMIN/invocations/{id}/cancel` |
//! | `POST /executions/{id}/signals/{step}` | the workflow's signals object (`ID-signals`) |
//! | `GET /health` | Restate's admin `/health` |
//!
//! The execution id is the `run` invocation's (`inv_...`). This process keeps
//! nothing: any number of them may serve one workflow.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::problem::{ok_json, Problem};
use super::request::{is_json, ExecuteBody};
use super::responses::{Accepted, CancelRequested, Ended, ExecutionDoc, Links, SignalAccepted};
use crate::error::{ErrorKind, ExecutionError};
use crate::program::InputError;
use crate::state::ExecutionState;

/// Checks an execution's input (the workflow's types and its schema's
/// bounds): the JSON to send, or where and why it does not fit.
pub(crate) type CheckInput = dyn Fn(&Value) -> Result<Value, InputError> + Send + Sync;

/// What the facade knows of the workflow and of Restate.
pub(crate) struct Facade {
    /// The workflow id: the service's name.
    pub id: String,
    /// Restate's ingress and admin, `http://HOST:PORT`.
    pub ingress: String,
    pub admin: String,
    /// The wait steps, with their signal names.
    pub waits: Vec<(String, String)>,
    pub check_input: Box<CheckInput>,
    /// How long `?wait=true` waits before answering 202.
    pub wait_timeout: Duration,
    pub http: reqwest::Client,
}

pub(crate) fn router(facade: Arc<Facade>) -> Router {
    Router::new()
        .route("/workflows/execute", post(execute))
        .route("/executions/{id}", get(status))
        .route("/executions/{id}/journal", get(journal))
        .route("/executions/{id}/cancel", post(cancel))
        .route("/executions/{id}/signals/{step}", post(signal))
        .route("/health", get(health))
        .with_state(facade)
}

/// An answer from Restate, read whole.
struct Answer {
    status: u16,
    body: String,
}

/// How long a call to Restate may take (but an attach, which `?wait=true`'s
/// own timeout bounds): a Restate that does not answer is a 502.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Facade {
    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, Problem> {
        self.send(self.http.request(method, &url).timeout(REQUEST_TIMEOUT), &url, body, headers).await
    }

    async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
        url: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, Problem> {
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.map_err(|e| unavailable(&format!("cannot reach Restate at {url}: {e}")))?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|e| unavailable(&format!("Restate's answer from {url}: {e}")))?;
        Ok(Answer { status, body })
    }

    /// Rows of a query to the admin API's SQL.
    async fn sql(&self, query: String) -> Result<Vec<Map<String, Value>>, Problem> {
        let answer = self.sql_answer(query).await?;
        if answer.status != 200 {
            return Err(unavailable(&format!("Restate's admin API answered {}: {}", answer.status, answer.body)));
        }
        rows(&answer)
    }

    async fn sql_answer(&self, query: String) -> Result<Answer, Problem> {
        let body = json!({ "query": query }).to_string();
        self.call(reqwest::Method::POST, format!("{}/query", self.admin), Some(body), &[("accept", "application/json")])
            .await
    }

    /// The fingerprint a keyed request sent with invocation `id` (from its
    /// journal's input entry), if it sent one and Restate still keeps it.
    async fn request_hash(&self, id: &str) -> Result<Option<String>, Problem> {
        if !is_invocation_id(id) {
            return Ok(None);
        }
        let rows = self
            .sql(format!("SELECT entry_json FROM sys_journal WHERE id = '{id}' AND entry_type = 'Command: Input'"))
            .await?;
        let entry: Option<Value> =
            rows.first().and_then(|r| r.get("entry_json")?.as_str()).and_then(|t| serde_json::from_str(t).ok());
        Ok(entry.as_ref().and_then(|e| header_value(e, REQUEST_HASH)).map(str::to_owned))
    }

    /// The `run` invocation `id`, from `sys_invocation`; `None` when Restate
    /// does not know it (or it is not this workflow's execution).
    async fn invocation(&self, id: &str) -> Result<Option<Map<String, Value>>, Problem> {
        if !is_invocation_id(id) {
            return Ok(None);
        }
        let answer = self.sql_answer(format!("SELECT * FROM sys_invocation WHERE id = '{id}'")).await?;
        if answer.status != 200 {
            // The SQL cannot read a malformed id (a 500); the ingress says
            // so with a 400 of its own.
            let probe = self
                .call(reqwest::Method::GET, format!("{}/restate/invocation/{id}/output", self.ingress), None, &[])
                .await?;
            if probe.status == 400 {
                return Ok(None);
            }
            return Err(unavailable(&format!("Restate's admin API answered {}: {}", answer.status, answer.body)));
        }
        let target = format!("{}/run", self.id);
        Ok(rows(&answer)?.into_iter().find(|r| r.get("target").and_then(Value::as_str) == Some(target.as_str())))
    }

    /// The invocation's output (once it completed with one).
    async fn output(&self, id: &str) -> Result<Option<Value>, Problem> {
        let answer = self
            .call(reqwest::Method::GET, format!("{}/restate/invocation/{id}/output", self.ingress), None, &[])
            .await?;
        Ok((answer.status == 200).then(|| serde_json::from_str(&answer.body).ok()).flatten())
    }
}

/// The rows of an admin SQL answer.
fn rows(answer: &Answer) -> Result<Vec<Map<String, Value>>, Problem> {
    let parsed: Value =
        serde_json::from_str(&answer.body).map_err(|e| unavailable(&format!("Restate's admin API: {e}")))?;
    Ok(parsed["rows"].as_array().into_iter().flatten().filter_map(|r| r.as_object().cloned()).collect())
}

/// The value of header `name` in a journal entry: the object, anywhere in
/// it, whose `key` (or `name`) is `name`.
fn header_value<'a>(entry: &'a Value, name: &str) -> Option<&'a str> {
    match entry {
        Value::Object(o) => {
            let named = ["key", "name"].iter().any(|k| o.get(*k).and_then(Value::as_str) == Some(name));
            match o.get("value").and_then(Value::as_str) {
                Some(value) if named => Some(value),
                _ => o.values().find_map(|v| header_value(v, name)),
            }
        }
        Value::Array(items) => items.iter().find_map(|v| header_value(v, name)),
        _ => None,
    }
}

/// `inv_` and base62: the only ids put into a query.
fn is_invocation_id(id: &str) -> bool {
    id.strip_prefix("inv_").is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()))
}

fn unavailable(detail: &str) -> Problem {
    Problem::new(StatusCode::BAD_GATEWAY, "restate-unavailable", "Restate unavailable").detail(detail.to_owned())
}

/// What an invocation's row says of its execution: its state, and its
/// error when it failed.
fn state_of(row: &Map<String, Value>) -> (ExecutionState, Option<ExecutionError>) {
    let text = |k: &str| row.get(k).and_then(Value::as_str).unwrap_or_default();
    match (text("status"), text("completion_result")) {
        ("completed", "success") => (ExecutionState::Completed, None),
        ("completed", _) => {
            let failure = text("completion_failure");
            let error = failure_error(failure);
            let state =
                if error.kind == ErrorKind::Cancelled { ExecutionState::Cancelled } else { ExecutionState::Failed };
            (state, Some(error))
        }
        ("pending" | "scheduled", _) => (ExecutionState::Pending, None),
        // Retries used up (Restate 1.5+ pauses then): it goes on only if an
        // operator resumes it; its last failure is the error.
        ("paused", _) => {
            let failure = text("last_failure");
            let message = if failure.is_empty() { "paused by Restate after its retries" } else { failure };
            (ExecutionState::Failed, Some(ExecutionError::new(ErrorKind::AgentFailed, message.to_owned(), 0)))
        }
        // ready, running, backing-off, suspended (waiting for a signal or a timer).
        _ => (ExecutionState::Running, None),
    }
}

/// Restate's `[CODE] message` of a terminal error, as the execution's error.
fn failure_error(failure: &str) -> ExecutionError {
    let (code, message) = match failure.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((code, message)) => (code.parse::<u16>().unwrap_or(500), message),
        None => (500, failure),
    };
    failure_with_code(code, message)
}

fn failure_with_code(code: u16, message: &str) -> ExecutionError {
    let kind = match code {
        409 => ErrorKind::Cancelled,
        400 => ErrorKind::InvalidInput,
        crate::restate::BUDGET_EXCEEDED => ErrorKind::BudgetExceeded,
        _ => ErrorKind::AgentFailed,
    };
    // `step ID: ...`: the step the error is about.
    let step = message.strip_prefix("step ").and_then(|r| r.split_once(": ")).map(|(s, _)| Arc::from(s));
    ExecutionError { step, ..ExecutionError::new(kind, message.to_owned(), 0) }
}

fn problem_response(p: Problem) -> Response {
    p.into_response()
}

fn accepted(id: &str) -> Response {
    let body = Accepted { execution_id: id, status: ExecutionState::Running, links: Links::of(id), trace_id: None };
    let mut response = ok_json(StatusCode::ACCEPTED, &body);
    if let Ok(location) = HeaderValue::from_str(&format!("/executions/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn execute(State(f): State<Arc<Facade>>, RawQuery(query): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    execute_inner(&f, query, &headers, &body).await.unwrap_or_else(problem_response)
}

async fn execute_inner(
    f: &Facade,
    query: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, Problem> {
    let wait = query.as_deref().is_some_and(|q| q.split('&').any(|p| p == "wait=true" || p == "wait"));
    if !is_json(headers) {
        return Err(Problem::not_json());
    }
    let header_correlation = headers.get("x-correlation-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = ExecuteBody::parse(body, &f.id, header_correlation)?;
    let input = (f.check_input)(&body.input).map_err(|e| Problem::invalid(e.pointer, e.message))?;
    // Restate keeps idempotency keys itself: a retry gets the same
    // invocation. Its keys ignore the body, so the request's fingerprint
    // goes with it as a header, which Restate keeps with the input: a key
    // reused for another request is refused (422), as `serve` refuses it,
    // while Restate keeps the first invocation's journal (after that, or
    // for a first request sent without the header, the first execution).
    let key = super::idempotency::key(headers)?;
    // As `serve` fingerprints it: the input and the correlation id.
    let hash = super::idempotency::fingerprint(&input, body.correlation_id.as_deref());
    let mut extra = Vec::new();
    if let Some(key) = &key {
        extra.push(("idempotency-key", &**key));
        extra.push((REQUEST_HASH, hash.as_str()));
    }
    let sent = f
        .call(reqwest::Method::POST, format!("{}/{}/run/send", f.ingress, f.id), Some(input.to_string()), &extra)
        .await?;
    let answer = serde_json::from_str::<Value>(&sent.body).ok().filter(|_| (200..300).contains(&sent.status));
    let Some(id) = answer.as_ref().and_then(|v| v["invocationId"].as_str()).map(str::to_owned) else {
        return Err(unavailable(&format!("Restate did not start it ({}): {}", sent.status, sent.body)));
    };
    if let (Some(key), Some("PreviouslyAccepted")) = (&key, answer.as_ref().and_then(|v| v["status"].as_str())) {
        if f.request_hash(&id).await?.is_some_and(|first| first != hash) {
            return Err(super::idempotency::reused(key, &id));
        }
    }
    let mut response = if wait { ended_or_accepted(f, &id).await? } else { accepted(&id) };
    let correlation = body.correlation_id.as_deref().unwrap_or(&id);
    if let Ok(v) = HeaderValue::from_str(correlation) {
        response.headers_mut().insert("x-correlation-id", v);
    }
    Ok(response)
}

/// The header that carries a keyed request's fingerprint into Restate.
const REQUEST_HASH: &str = "x-orchestr8-request-hash";

/// 200 with the result once the invocation ended within the wait timeout,
/// else 202.
async fn ended_or_accepted(f: &Facade, id: &str) -> Result<Response, Problem> {
    let url = format!("{}/restate/invocation/{id}/attach", f.ingress);
    let attach = f.send(f.http.get(&url), &url, None, &[]);
    let Ok(answer) = tokio::time::timeout(f.wait_timeout, attach).await else { return Ok(accepted(id)) };
    let answer = answer?;
    if answer.status == 200 {
        let output = Ok(serde_json::from_str(&answer.body).unwrap_or(Value::Null));
        return Ok(ok_json(StatusCode::OK, &Ended::new(id, &output)));
    }
    // Ended only if Restate says so: an ingress that fails is not the
    // execution failing.
    match f.invocation(id).await?.map(|row| state_of(&row)) {
        Some((_, Some(error))) => Ok(ok_json(StatusCode::OK, &Ended::new(id, &Err(error)))),
        Some(_) => Ok(accepted(id)),
        None => Err(unavailable(&format!("attaching to {id}: Restate answered {}: {}", answer.status, answer.body))),
    }
}

async fn status(State(f): State<Arc<Facade>>, Path(id): Path<String>) -> Response {
    status_inner(&f, &id).await.unwrap_or_else(problem_response)
}

async fn status_inner(f: &Facade, id: &str) -> Result<Response, Problem> {
    let Some(row) = f.invocation(id).await? else { return Err(Problem::unknown_execution(id)) };
    let (state, error) = state_of(&row);
    let output = match state {
        ExecutionState::Completed => f.output(id).await?,
        _ => None,
    };
    let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_owned);
    let ended = matches!(state, ExecutionState::Completed | ExecutionState::Failed | ExecutionState::Cancelled);
    let doc = ExecutionDoc {
        execution_id: id.to_owned(),
        workflow_id: Some(f.id.clone()),
        workflow_version: None,
        correlation_id: None,
        status: state,
        started_at: text("created_at"),
        ended_at: if ended { text("completed_at").or_else(|| text("modified_at")) } else { None },
        cancel_requested: false,
        running_steps: Vec::new(),
        steps: Default::default(),
        output,
        error,
        links: Links::of(id),
    };
    Ok(ok_json(StatusCode::OK, &doc))
}

/// One of the contract's journal events, as far as Restate's journal says.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    seq: u64,
    ts: String,
    event: &'static str,
    execution_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    step_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ExecutionError>,
}

async fn journal(State(f): State<Arc<Facade>>, Path(id): Path<String>, RawQuery(query): RawQuery) -> Response {
    journal_inner(&f, &id, query).await.unwrap_or_else(problem_response)
}

async fn journal_inner(f: &Facade, id: &str, query: Option<String>) -> Result<Response, Problem> {
    let (mut after, mut limit) = (0u64, 100usize);
    for pair in query.as_deref().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "after" => {
                after = v.parse().map_err(|_| Problem::bad_query(format!("`after` is a sequence number, not `{v}`")))?
            }
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| Problem::bad_query(format!("`limit` is 1 to 1000, not `{v}`")))?
            }
            _ => return Err(Problem::bad_query(format!("unknown parameter `{k}`"))),
        }
    }
    let Some(row) = f.invocation(id).await? else { return Err(Problem::unknown_execution(id)) };
    let (state, _) = state_of(&row);
    let events = events_of(f, id).await?;
    let complete = matches!(state, ExecutionState::Completed | ExecutionState::Failed | ExecutionState::Cancelled);
    let page: Vec<&Event> = events.iter().filter(|e| e.seq > after).take(limit).collect();
    let last = page.last().map_or(after, |e| e.seq);
    let more = events.iter().any(|e| e.seq > last);
    let body = json!({
        "executionId": id,
        "events": page,
        "after": last,
        "more": more,
        "complete": complete,
        "links": more.then(|| json!({"next": format!("/executions/{id}/journal?after={last}&limit={limit}")})),
    });
    Ok(ok_json(StatusCode::OK, &body))
}

/// The execution's events: its `run` invocation's journal and those of the
/// calls it made (branches, map items), merged in time order.
async fn events_of(f: &Facade, id: &str) -> Result<Vec<Event>, Problem> {
    // The invocations of the execution: `run`, then what they called, one
    // query per level of calls (a map's thousand items are one level).
    // Every id is checked (`inv_` and alphanumerics) before it is quoted.
    let quoted = |ids: &[String]| ids.iter().map(|i| format!("'{i}'")).collect::<Vec<_>>().join(", ");
    let mut ids = vec![id.to_owned()];
    let mut known: std::collections::HashSet<String> = ids.iter().cloned().collect();
    let mut level = ids.clone();
    while !level.is_empty() {
        let rows = f.sql(format!("SELECT id FROM sys_invocation WHERE invoked_by_id IN ({})", quoted(&level))).await?;
        level = rows
            .iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str))
            .filter(|c| is_invocation_id(c) && known.insert((*c).to_owned()))
            .map(str::to_owned)
            .collect();
        ids.extend(level.iter().cloned());
    }
    let list = quoted(&ids);
    let rows = f
        .sql(format!(
            "SELECT id, \"index\", entry_type, name, entry_json, appended_at FROM sys_journal WHERE id IN ({list}) ORDER BY appended_at, id, \"index\""
        ))
        .await?;
    let mut events = Vec::new();
    // A Run command's name, by invocation and completion id, for its result.
    let mut runs: HashMap<(String, u64), String> = HashMap::new();
    for row in &rows {
        let invocation = row.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let ts = row.get("appended_at").and_then(Value::as_str).unwrap_or_default().to_owned();
        let entry: Value = row
            .get("entry_json")
            .and_then(Value::as_str)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        let top = invocation == id;
        let mut push =
            |event: &'static str, step: Option<String>, output: Option<Value>, error: Option<ExecutionError>| {
                events.push(Event {
                    seq: 0,
                    ts: ts.clone(),
                    event,
                    execution_id: id.to_owned(),
                    step_id: step,
                    output,
                    error,
                });
            };
        match row.get("entry_type").and_then(Value::as_str).unwrap_or_default() {
            "Command: Input" if top => push("execution.started", None, None, None),
            "Command: Run" => {
                let name = row.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                if let Some(completion) = entry["Command"]["Run"]["completion_id"].as_u64() {
                    runs.insert((invocation.clone(), completion), name.clone());
                }
                push("step.started", Some(name), None, None);
            }
            "Notification: Run" => {
                let completion = &entry["Notification"]["Completion"]["Run"];
                let Some(name) = completion["completion_id"].as_u64().and_then(|c| runs.get(&(invocation.clone(), c)))
                else {
                    continue;
                };
                match journal_result(&completion["result"]) {
                    // The action's answer: `{"output", "usage"?}`.
                    Ok(answer) => push("step.succeeded", Some(name.clone()), Some(answer["output"].clone()), None),
                    Err(error) => push("step.failed", Some(name.clone()), None, Some(error)),
                }
            }
            "Command: Output" if top => match journal_result(&entry["Command"]["Output"]["result"]) {
                Ok(output) => push("execution.completed", None, Some(output), None),
                Err(error) => {
                    let event =
                        if error.kind == ErrorKind::Cancelled { "execution.cancelled" } else { "execution.failed" };
                    push(event, None, None, Some(error));
                }
            },
            _ => {}
        }
    }
    for (i, e) in events.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
    }
    Ok(events)
}

/// A journal entry's `result`: `{"Success": [bytes of JSON]}` or
/// `{"Failure": {"code", "message"}}`.
fn journal_result(result: &Value) -> Result<Value, ExecutionError> {
    match result["Success"].as_array() {
        Some(bytes) => {
            let text: Vec<u8> = bytes.iter().filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok())).collect();
            Ok(serde_json::from_slice(&text).unwrap_or_default())
        }
        None => {
            let failure = &result["Failure"];
            let code = failure["code"].as_u64().and_then(|c| u16::try_from(c).ok()).unwrap_or(500);
            Err(failure_with_code(code, failure["message"].as_str().unwrap_or_default()))
        }
    }
}

async fn cancel(State(f): State<Arc<Facade>>, Path(id): Path<String>) -> Response {
    cancel_inner(&f, &id).await.unwrap_or_else(problem_response)
}

async fn cancel_inner(f: &Facade, id: &str) -> Result<Response, Problem> {
    let Some(row) = f.invocation(id).await? else { return Err(Problem::unknown_execution(id)) };
    if row.get("status").and_then(Value::as_str) == Some("completed") {
        return Err(Problem::new(StatusCode::CONFLICT, "execution-ended", "Execution ended")
            .detail(format!("execution {id} has already ended")));
    }
    let answer = f.call(reqwest::Method::PATCH, format!("{}/invocations/{id}/cancel", f.admin), None, &[]).await?;
    if !(200..300).contains(&answer.status) {
        return Err(unavailable(&format!("Restate did not cancel it ({}): {}", answer.status, answer.body)));
    }
    let body = CancelRequested {
        execution_id: id,
        status: ExecutionState::Running,
        cancel_requested: true,
        links: Links::of(id),
    };
    Ok(ok_json(StatusCode::ACCEPTED, &body))
}

async fn signal(
    State(f): State<Arc<Facade>>,
    Path((id, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    signal_inner(&f, &id, &step, &headers, &body).await.unwrap_or_else(problem_response)
}

async fn signal_inner(f: &Facade, id: &str, step: &str, headers: &HeaderMap, body: &[u8]) -> Result<Response, Problem> {
    if !is_json(headers) {
        return Err(Problem::not_json());
    }
    let payload = super::request::parse_json(body)?;
    let Some((_, signal)) = f.waits.iter().find(|(s, _)| s == step) else {
        let steps: Vec<&str> = f.waits.iter().map(|(s, _)| s.as_str()).collect();
        return Err(Problem::not_found(format!("no wait step `{step}` (the wait steps: {})", steps.join(", "))));
    };
    let Some(row) = f.invocation(id).await? else { return Err(Problem::unknown_execution(id)) };
    if row.get("status").and_then(Value::as_str) == Some("completed") {
        return Err(Problem::new(StatusCode::CONFLICT, "execution-ended", "Execution ended")
            .detail(format!("execution {id} has already ended")));
    }
    let request = json!({ "step": step, "payload": payload }).to_string();
    let object = crate::restate::signals_object(&f.id);
    let answer =
        f.call(reqwest::Method::POST, format!("{}/{object}/{id}/signal", f.ingress), Some(request), &[]).await?;
    match answer.status {
        200..=299 => {
            let body = SignalAccepted { execution_id: id, step_id: step, signal, links: Links::of(id) };
            Ok(ok_json(StatusCode::ACCEPTED, &body))
        }
        // The signals object's own 404/409/422, with its message.
        404 | 409 | 422 => {
            let error: Value = serde_json::from_str(&answer.body).unwrap_or_default();
            let message = error["message"].as_str().unwrap_or(&answer.body).to_owned();
            Err(match answer.status {
                422 => Problem::invalid(String::new(), message),
                409 => Problem::new(StatusCode::CONFLICT, "signal-not-taken", "Signal not taken").detail(message),
                _ => Problem::not_found(message),
            })
        }
        other => Err(unavailable(&format!("the signals object answered {other}: {}", answer.body))),
    }
}

async fn health(State(f): State<Arc<Facade>>) -> Response {
    match f.call(reqwest::Method::GET, format!("{}/health", f.admin), None, &[]).await {
        Ok(a) if a.status == 200 => ok_json(StatusCode::OK, &json!({"status": "ok", "workflowId": f.id})),
        Ok(a) => ok_json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "failing", "workflowId": f.id, "restate": a.status}),
        ),
        Err(p) => p.into_response(),
    }
}
