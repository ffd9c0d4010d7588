//! RFC 9457 problem details: every error response.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, and for
/// validation errors `errors: [{"pointer", "detail"}]`.
pub(super) struct Problem {
    pub(super) status: StatusCode,
    pub(super) kind: &'static str,
    pub(super) title: &'static str,
    pub(super) detail: String,
    pub(super) errors: Vec<(String, String)>,
    /// Seconds for a `Retry-After` header.
    pub(super) retry_after: Option<u32>,
}

impl Problem {
    pub(super) fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Self {
        Problem { status, kind, title, detail: String::new(), errors: Vec::new(), retry_after: None }
    }

    pub(super) fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
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

    pub(super) fn bad_query(detail: String) -> Self {
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
        let mut response = respond(self.status, "application/problem+json", &body);
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
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
