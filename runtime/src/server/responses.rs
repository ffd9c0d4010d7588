//! The bodies of the server's answers, as types: the handlers serialize
//! them and the OpenAPI document is generated from them (`openapi.rs`), so
//! the two cannot drift apart. Fields holding the workflow's own data
//! (`input`, `output`, journal events) point at the document's components.

use std::collections::BTreeMap;
use std::time::SystemTime;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::Value;

use crate::error::{ErrorKind, ExecutionError};
use crate::state::{ExecutionState, StepState};

/// Where to find an execution's other resources.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Links {
    #[serde(rename = "self")]
    pub(super) self_: String,
    pub(super) journal: String,
    pub(super) cancel: String,
}

impl Links {
    pub(super) fn of(id: &str) -> Self {
        Links {
            self_: format!("/executions/{id}"),
            journal: format!("/executions/{id}/journal"),
            cancel: format!("/executions/{id}/cancel"),
        }
    }
}

/// 202 of `POST /workflows/execute`: the execution started.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Accepted<'a> {
    pub(super) execution_id: &'a str,
    pub(super) status: ExecutionState,
    pub(super) links: Links,
    /// The execution's trace, when traces are exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "trace_id")]
    pub(super) trace_id: Option<&'a str>,
}

/// 200 of `POST /workflows/execute?wait=true`: the execution ended. Written
/// straight from the result (no `Value` built, the output not copied).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Result")]
pub(super) struct Ended<'a> {
    pub(super) execution_id: &'a str,
    pub(super) status: ExecutionState,
    /// The workflow's output, when it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "output")]
    pub(super) output: Option<&'a Value>,
    /// Why it did not complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<&'a ExecutionError>,
    /// The execution's trace, when traces are exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "trace_id")]
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

/// 200 of `GET /executions/{id}`: the execution's state.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Execution")]
pub(super) struct ExecutionDoc {
    pub(super) execution_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) workflow_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) workflow_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) correlation_id: Option<String>,
    pub(super) status: ExecutionState,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub(super) started_at: Option<String>,
    /// RFC 3339; once it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time")]
    pub(super) ended_at: Option<String>,
    /// A cancellation was asked for (it may still be running).
    pub(super) cancel_requested: bool,
    /// Steps running now (only in an execution of this process).
    pub(super) running_steps: Vec<String>,
    /// Each step's latest state.
    pub(super) steps: BTreeMap<String, StepState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "output")]
    pub(super) output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<ExecutionError>,
    pub(super) links: Links,
}

/// 200 of `GET /executions/{id}/journal`: a page of events.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct JournalPage<'a> {
    pub(super) execution_id: &'a str,
    /// The journal's events after `?after=`, in `seq` order.
    #[schemars(schema_with = "events")]
    pub(super) events: Vec<Box<serde_json::value::RawValue>>,
    /// The seq to pass as `?after=` for the next page.
    pub(super) after: u64,
    /// More events follow this page.
    pub(super) more: bool,
    /// The journal has its terminal event.
    pub(super) complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) links: Option<NextPage>,
}

/// The next page of a journal.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct NextPage {
    pub(super) next: String,
}

/// 202 of `POST /executions/{id}/cancel`: cancellation requested.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CancelRequested<'a> {
    pub(super) execution_id: &'a str,
    /// Still `running`: it ends `cancelled` once its agents return.
    pub(super) status: ExecutionState,
    pub(super) cancel_requested: bool,
    pub(super) links: Links,
}

/// 202 of `POST /executions/{id}/signals/{step}`: the waiting step took the
/// payload; the execution journals `signal.received` and goes on.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignalAccepted<'a> {
    pub(super) execution_id: &'a str,
    pub(super) step_id: &'a str,
    /// The signal's name.
    pub(super) signal: &'a str,
    pub(super) links: Links,
}

/// `GET /health`: 200 `ok`, or 503 `failing` with the journal's error.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Health<'a> {
    pub(super) status: HealthStatus,
    pub(super) workflow_id: &'a str,
    pub(super) workflow_version: &'a str,
    /// Executions running now.
    pub(super) running: usize,
    /// Why the journal fails (with `failing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) journal: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum HealthStatus {
    Ok,
    Failing,
}

/// An RFC 9457 problem, every error's body (`application/problem+json`).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "Problem")]
pub(super) struct ProblemDoc<'a> {
    /// `urn:orchestr8:problem:KIND`.
    #[serde(rename = "type")]
    #[schemars(schema_with = "uri_reference")]
    pub(super) kind: String,
    pub(super) title: &'a str,
    pub(super) status: u16,
    pub(super) detail: &'a str,
    /// The request's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) instance: Option<&'a str>,
    /// Each error of an invalid input, located in the request body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) errors: Vec<InvalidAt<'a>>,
    /// The execution the problem is about (`not-durable`, `idempotency-key-reused`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) execution_id: Option<&'a str>,
    /// Its state (`not-durable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) execution_status: Option<ExecutionState>,
}

/// One error of an invalid input.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct InvalidAt<'a> {
    /// JSON pointer into the request body.
    pub(super) pointer: &'a str,
    pub(super) detail: &'a str,
}

pub(super) fn result_state(result: &Result<Value, ExecutionError>) -> ExecutionState {
    match result {
        Ok(_) => ExecutionState::Completed,
        Err(e) if e.kind == ErrorKind::Cancelled => ExecutionState::Cancelled,
        // Only a workflow built by hand in Rust gets here: `serve` does not
        // deliver signals yet, and the compiler does not emit waits yet.
        Err(e) if e.kind == ErrorKind::Suspended => ExecutionState::Waiting,
        Err(_) => ExecutionState::Failed,
    }
}

pub(super) fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

// Schemas of fields whose Rust type says less than the document should.

fn output(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "$ref": "#/components/schemas/Output" })
}

fn events(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "array", "items": { "$ref": "#/components/schemas/JournalEvent" } })
}

fn trace_id(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "pattern": "^[0-9a-f]{32}$" })
}

fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}

fn uri_reference(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "uri-reference" })
}
