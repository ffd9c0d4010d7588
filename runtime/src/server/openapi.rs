//! The OpenAPI 3.1 document of the server (`GET /openapi.json`).

use serde_json::{json, Value};

use super::handlers::MAX_PAGE;
use super::Config;

/// `schema` with its local `$ref`s (`#/...`) rewritten to point under `base`
/// (where it sits in the OpenAPI document).
pub(super) fn rebase_refs(schema: &Value, base: &str) -> Value {
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

pub(super) fn openapi(config: &Config) -> Value {
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
                    "408": problem("the body did not arrive whole within the server's body timeout; the connection closes"),
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
