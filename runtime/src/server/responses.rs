//! The bodies of successful responses.

use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::error::{ErrorKind, ExecutionError};
use crate::state::ExecutionState;

pub(super) fn links(id: &str) -> Value {
    json!({
        "self": format!("/executions/{id}"),
        "journal": format!("/executions/{id}/journal"),
        "cancel": format!("/executions/{id}/cancel"),
    })
}

pub(super) fn result_state(result: &Result<Value, ExecutionError>) -> ExecutionState {
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
pub(super) struct Ended<'a> {
    pub(super) execution_id: &'a str,
    pub(super) status: ExecutionState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) output: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<&'a ExecutionError>,
    /// The execution's trace, when traces are exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) trace_id: Option<&'a str>,
}

impl<'a> Ended<'a> {
    pub(super) fn new(execution_id: &'a str, result: &'a Result<Value, ExecutionError>) -> Self {
        Ended {
            execution_id,
            status: result_state(result),
            output: result.as_ref().ok(),
            error: result.as_ref().err(),
            trace_id: None,
        }
    }
}

pub(super) fn insert_result(body: &mut Map<String, Value>, result: &Result<Value, ExecutionError>) {
    body.insert("status".into(), json!(result_state(result)));
    match result {
        Ok(output) => body.insert("output".into(), output.clone()),
        Err(e) => body.insert("error".into(), json!(e)),
    };
}

pub(super) fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}
