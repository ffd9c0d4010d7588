//! RFC 9457 problem details: every error response.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::responses::{InvalidAt, ProblemDoc};
use crate::program::one_line;
use crate::state::ExecutionState;

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, and for
/// validation errors `errors: [{"pointer", "detail"}]`.
#[derive(Debug)]
pub(super) struct Problem {
    pub(super) status: StatusCode,
    pub(super) kind: &'static str,
    pub(super) title: &'static str,
    pub(super) detail: String,
    pub(super) errors: Vec<(String, String)>,
    /// The execution the problem is about, and its state.
    pub(super) execution: Option<Box<(String, Option<ExecutionState>)>>,
    /// Seconds a client should wait before trying again (`Retry-After`);
    /// every 503 has one.
    pub(super) retry_after: Option<u32>,
}

impl Problem {
    pub(super) fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Self {
        let retry_after = (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1);
        Problem { status, kind, title, detail: String::new(), errors: Vec::new(), execution: None, retry_after }
    }

    pub(super) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub(super) fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found").detail(detail)
    }

    pub(super) fn unknown_execution(id: &str) -> Self {
        Problem::not_found(format!("no execution {id}"))
    }

    /// 422 with one error at `pointer` (into the request body).
    pub(super) fn invalid(pointer: String, message: String) -> Self {
        let at = if pointer.is_empty() { "the top level".to_owned() } else { pointer.clone() };
        let mut p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-input", "Invalid input")
            .detail(format!("invalid input at {at}: {message}"));
        p.errors.push((pointer, message));
        p
    }

    /// Names the execution the problem is about (`executionId`,
    /// `executionStatus`).
    pub(super) fn about(mut self, execution_id: &str, status: Option<ExecutionState>) -> Self {
        self.execution = Some(Box::new((execution_id.to_owned(), status)));
        self
    }

    /// Sets `Retry-After`, in seconds.
    pub(super) fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 415: the body is not JSON.
    pub(super) fn not_json() -> Self {
        Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            .detail("the request body must be JSON (Content-Type: application/json)")
    }

    /// 500: something on our side failed.
    pub(super) fn internal(detail: String) -> Self {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error").detail(one_line(&detail))
    }

    pub(super) fn bad_query(detail: String) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, "invalid-query", "Invalid query").detail(detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemDoc {
            kind: format!("urn:orchestr8:problem:{}", self.kind),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            instance: None, // set by `with_instance`, which knows the request
            errors: self.errors.iter().map(|(pointer, detail)| InvalidAt { pointer, detail }).collect(),
            execution_id: self.execution.as_deref().map(|(id, _)| id.as_str()),
            execution_status: self.execution.as_deref().and_then(|(_, s)| *s),
        };
        let mut response = respond(self.status, PROBLEM_JSON, &body);
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

pub(super) fn respond(status: StatusCode, content_type: &'static str, body: &impl serde::Serialize) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], bytes).into_response()
}

pub(super) fn ok_json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    respond(status, "application/json", body)
}

const PROBLEM_JSON: &str = "application/problem+json";

/// The largest problem body [`with_instance`] rewrites (they are small: a
/// 422's errors are one per request).
const MAX_PROBLEM: usize = 64 * 1024;

/// Every error is a problem, and every problem names the request it answers
/// (`instance`, the request's path `path`), wherever it was made (a handler,
/// an extractor's rejection, a fallback). Answers that are not errors pass
/// untouched.
pub(super) async fn finish(response: Response, path: &str) -> Response {
    let is_problem =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    let status = response.status();
    // A JSON error body of our own (`/health`'s 503) is an answer, not a problem.
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/json");
    if !is_problem && (is_json || !(status.is_client_error() || status.is_server_error())) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_PROBLEM).await.unwrap_or_default();
    let mut body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) if is_problem => m,
        // An error from outside our handlers (axum's extractors answer
        // `text/plain`): its text becomes the detail of a problem.
        _ => {
            let reason = status.canonical_reason().unwrap_or("Error");
            let kind = reason.to_ascii_lowercase().replace(' ', "-");
            let text = String::from_utf8_lossy(&bytes);
            let detail = if text.trim().is_empty() { reason.to_owned() } else { one_line(text.trim()) };
            parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
            let mut m = serde_json::Map::new();
            m.insert("type".into(), json!(format!("urn:orchestr8:problem:{kind}")));
            m.insert("title".into(), json!(reason));
            m.insert("status".into(), json!(status.as_u16()));
            m.insert("detail".into(), json!(detail));
            m
        }
    };
    body.entry("instance").or_insert_with(|| Value::String(path.to_owned()));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(serde_json::to_vec(&body).unwrap_or_default()))
}
