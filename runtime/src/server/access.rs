//! The layer in front of every endpoint, in one pass (one boxed future per
//! request rather than one per concern): the guard ([`Guard`](super::guard::Guard)),
//! the problem form of every error ([`problem::finish`]), `Cache-Control:
//! no-store` on every answer about executions (their state changes under
//! the client), and the access log: a line per request at info level
//! (method, path, status, duration), unless `serve -q`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

use super::problem;
use super::registry::App;
use super::LogLine;
use crate::program::one_line;

/// Middleware: the whole front of the server.
pub(super) async fn front(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // A cheap clone (shared bytes); the path only is used: a query could
    // carry what does not belong in a log.
    let uri = request.uri().clone();
    let path = uri.path();
    let response = match app.guard.refuse(&method, path, request.headers()) {
        Some(refused) => refused,
        None => next.run(request).await,
    };
    let mut response = problem::finish(response, path).await;
    if path != "/openapi.json" {
        response.headers_mut().entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    }
    if let Some(log) = &app.log {
        let status = response.status().as_u16();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let path = one_line(path);
        let line = LogLine {
            level: tracing::Level::INFO,
            message: format!("[orchestr8] {method} {path} {status} {ms:.1}ms"),
            fields: vec![
                ("method", method.to_string()),
                ("path", path),
                ("status", status.to_string()),
                ("duration_ms", format!("{ms:.3}")),
            ],
        };
        // Dropped rather than waited for when standard error is behind.
        let _ = log.try_send(line);
    }
    response
}
