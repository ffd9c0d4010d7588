//! The OpenAPI 3.1 document of the server (`GET /openapi.json`). Response
//! bodies are generated from the types the handlers serialize
//! (`responses.rs`) with schemars; the workflow's input and output schemas
//! are the program's own.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use super::handlers::MAX_PAGE;
use super::responses::{
    Accepted, CancelRequested, Ended, ExecutionDoc, Health, JournalPage, ProblemDoc, SignalAccepted,
};
use super::{Config, WaitInfo};
use crate::executor::WorkflowInfo;
use crate::journal::EventKind;
use crate::usage::Usage;

/// Keywords whose values are data, not schemas: a `$ref` inside them is a
/// string like any other and stays as it is.
const DATA_KEYWORDS: [&str; 4] = ["const", "default", "examples", "enum"];

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
                    (data, _) if DATA_KEYWORDS.contains(&data) => (k.clone(), v.clone()),
                    // Under `properties` (and the like) keys are names, not
                    // keywords: a property called `const` is a schema.
                    ("properties" | "patternProperties" | "$defs" | "definitions", Value::Object(named)) => (
                        k.clone(),
                        Value::Object(named.iter().map(|(n, s)| (n.clone(), rebase_refs(s, base))).collect()),
                    ),
                    _ => (k.clone(), rebase_refs(v, base)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| rebase_refs(v, base)).collect()),
        other => other.clone(),
    }
}

/// The component schemas of the server's own bodies, by name.
fn components() -> Map<String, Value> {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    // Bodies the server writes: a field it may leave out is not required.
    settings.contract = schemars::generate::Contract::Serialize;
    let mut generator = settings.into_generator();
    fn add<T: JsonSchema>(g: &mut schemars::SchemaGenerator) {
        let _ = g.subschema_for::<T>();
    }
    add::<Accepted<'static>>(&mut generator);
    add::<Ended<'static>>(&mut generator);
    add::<SignalAccepted<'static>>(&mut generator);
    add::<ExecutionDoc>(&mut generator);
    add::<JournalPage<'static>>(&mut generator);
    add::<CancelRequested<'static>>(&mut generator);
    add::<Health<'static>>(&mut generator);
    add::<ProblemDoc<'static>>(&mut generator);
    let kind = generator.subschema_for::<EventKind>().to_value();
    let usage = generator.subschema_for::<Usage>().to_value();
    let error = generator.subschema_for::<crate::error::ExecutionError>().to_value();
    let mut schemas = generator.take_definitions(true);
    // A journal line, as the contract describes it (written by the journal's
    // own line writer, not by a derived type).
    schemas.insert(
        "JournalEvent".into(),
        json!({
            "type": "object",
            "required": ["seq", "ts", "executionId", "event"],
            "properties": {
                "seq": { "type": "integer", "minimum": 1 },
                "ts": { "type": "string", "format": "date-time" },
                "executionId": { "type": "string" },
                "event": kind,
                "state": { "type": "string" },
                "stepId": { "type": "string" },
                "agentId": { "type": "string" },
                "attempt": { "type": "integer", "minimum": 0 },
                "durationMs": { "type": "integer", "minimum": 0 },
                "delayMs": { "type": "integer", "minimum": 0 },
                "input": {},
                "output": {},
                "error": error,
                "workflowId": { "type": "string" },
                "workflowVersion": { "type": "string" },
                "definitionHash": { "type": "string" },
                "correlationId": { "type": "string" },
                "agentVersion": { "type": "string" },
                "signal": { "type": "string" },
                "reason": { "type": "string" },
                "idempotencyKey": { "type": "string" },
                "requestHash": { "type": "string", "pattern": "^[0-9a-f]{16}$" },
                "usage": usage
            }
        }),
    );
    schemas
}

pub(super) fn openapi(config: &Config) -> Value {
    let (input, output) = (config.input_schema.as_ref(), config.output_schema.as_ref());
    document(&config.info, config.about.as_deref(), input, output, &config.waits)
}

/// The OpenAPI 3.1 document that `PROGRAM serve` answers `GET /openapi.json`
/// with, for a workflow of this identity, description (`about`), input and
/// output schemas, and wait steps (`(step id, signal, payload schema)`, in
/// plan order). Public so that the book's REST API page is generated from it.
pub fn openapi_document(
    info: &WorkflowInfo,
    about: Option<&str>,
    input_schema: Option<&Value>,
    output_schema: Option<&Value>,
    waits: &[(&str, &str, &Value)],
) -> Value {
    let waits: Vec<WaitInfo> = (waits.iter())
        .map(|&(step, signal, schema)| WaitInfo { step: step.into(), signal: signal.into(), schema: schema.clone() })
        .collect();
    document(info, about, input_schema, output_schema, &waits)
}

fn document(
    info: &WorkflowInfo,
    about: Option<&str>,
    input_schema: Option<&Value>,
    output_schema: Option<&Value>,
    waits: &[WaitInfo],
) -> Value {
    let input = input_schema.map_or_else(|| json!({}), |s| rebase_refs(s, "#/components/schemas/Input"));
    let output = output_schema.map_or_else(|| json!({}), |s| rebase_refs(s, "#/components/schemas/Output"));
    let body = |schema: &str| json!({ "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } });
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
        })
    };
    let id_param = json!({ "name": "id", "in": "path", "required": true,
                           "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$" } });
    let trace_headers = json!({
        "X-Correlation-Id": { "schema": { "type": "string" }, "description": "the execution's correlation id" },
        "X-Trace-Id": { "schema": { "type": "string" }, "description": "the execution's trace id, when traces are exported" }
    });
    let mut schemas = components();
    schemas.insert("Input".into(), input);
    schemas.insert("Output".into(), output);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("{} {}", info.id, info.version),
            "version": &*info.version,
            "description": about.map_or_else(|| format!("Workflow {} served by orchestr8.", info.id), str::to_owned),
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
                    { "name": "Idempotency-Key", "in": "header", "required": false,
                      "schema": { "type": "string", "minLength": 1, "maxLength": 255 },
                      "description": "a retry with the same key and request answers with the execution the first started (Idempotent-Replayed: true); the same key with another request is a 422" },
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
                             "content": body("Result") },
                    "202": { "description": "the execution started",
                             "headers": trace_headers,
                             "content": body("Accepted") },
                    "400": problem("malformed JSON or query"),
                    "408": problem("the body did not arrive whole within the server's body timeout; the connection closes"),
                    "413": problem("the body is over the server's limit"),
                    "415": problem("the body is not JSON"),
                    "410": problem("the Idempotency-Key's execution has been deleted by retention"),
                    "422": problem("the input does not fit the workflow's input schema (`errors` holds JSON pointers), or the Idempotency-Key was used for another request"),
                    "503": problem("shutting down, the journal failing or not durable, or --max-running reached (Retry-After says when to try again)")
                }
            } },
            "/executions/{id}": { "get": {
                "operationId": "getExecution",
                "summary": "An execution's state",
                "parameters": [id_param.clone()],
                "responses": {
                    "200": { "description": "the execution",
                             "content": body("Execution") },
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
                    "200": { "description": "a page of events", "content": body("JournalPage") },
                    "400": problem("a bad query parameter"),
                    "404": problem("unknown execution")
                }
            } },
            "/executions/{id}/cancel": { "post": {
                "operationId": "cancelExecution",
                "summary": "Request cooperative cancellation",
                "parameters": [id_param],
                "responses": {
                    "202": { "description": "cancellation requested", "content": body("CancelRequested") },
                    "415": problem("a body that is not JSON (a form): refused"),
                    "404": problem("unknown execution"),
                    "409": problem("the execution has already ended")
                }
            } },
            "/health": { "get": {
                "operationId": "health",
                "summary": "Whether the server is up and its journal works",
                "responses": {
                    "200": { "description": "the server is up", "content": body("Health") },
                    "503": { "description": "the journal is failing (`journal` says why): executions would go unrecorded",
                             "headers": { "Retry-After": { "schema": { "type": "integer" } } },
                             "content": body("Health") }
                }
            } },
            "/openapi.json": { "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": { "200": { "description": "this document", "content": { "application/json": { "schema": { "type": "object" } } } } }
            } }
        },
        "components": { "schemas": schemas }
    });
    // One path per wait step: each with its own payload's schema.
    let mut payloads = Vec::new();
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for wait in waits {
            let name = format!("Signal_{}", wait.step);
            let base = format!("#/components/schemas/{name}");
            let operation = json!({ "post": {
                "operationId": format!("signal_{}", wait.step),
                "summary": format!("Send step `{}` the signal `{}` it waits for", wait.step, wait.signal),
                "description": "The body is the signal's payload. The waiting step takes it as its output and the execution goes on.",
                "parameters": [id_param],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": base } } } },
                "responses": {
                    "202": { "description": "the waiting step took the payload", "content": body("SignalAccepted") },
                    "400": problem("malformed JSON"),
                    "404": problem("unknown execution"),
                    "409": problem("the execution has ended, is not running in this server, or the step is not waiting now"),
                    "413": problem("a body over --body-limit"),
                    "415": problem("a body that is not JSON"),
                    "422": problem("a payload that does not fit the wait's schema (`errors` has JSON pointers into the body)")
                }
            } });
            paths.insert(format!("/executions/{{id}}/signals/{}", wait.step), operation);
            payloads.push((name, rebase_refs(&wait.schema, &base)));
        }
    }
    if let Some(Value::Object(schemas)) = doc.pointer_mut("/components/schemas") {
        schemas.extend(payloads);
    }
    // What any operation may answer.
    let common = [
        ("401", "`--auth-token-env` is set and the request has no (or another) bearer token"),
        ("421", "the request's Host is not one this server answers to (see --allowed-host)"),
        ("500", "the server failed (the problem says how)"),
    ];
    // What any POST may answer besides: the guard's check of `Origin`.
    let cross_origin = ("403", "a page of another origin (`Origin`) may not start or cancel executions here");
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            for (method, operation) in item.as_object_mut().into_iter().flat_map(|m| m.iter_mut()) {
                let Some(Value::Object(responses)) = operation.get_mut("responses") else { continue };
                let post = (method == "post").then_some(cross_origin);
                for (status, why) in common.into_iter().chain(post) {
                    if path == "/health" && status == "401" {
                        continue; // probes need no token
                    }
                    responses.entry(status).or_insert_with(|| problem(why));
                }
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_are_rebased_and_data_is_left_alone() {
        let schema = json!({
            "$ref": "#/$defs/a",
            "properties": {
                "const": { "$ref": "#/$defs/b" },
                "x": { "const": { "$ref": "#/$defs/c" }, "default": { "$ref": "#/d" } },
                "y": { "enum": [{ "$ref": "#/e" }], "examples": [{ "$ref": "#/f" }] }
            },
            "$defs": { "a": { "items": { "$ref": "#/$defs/b" } }, "b": {} }
        });
        let rebased = rebase_refs(&schema, "#/components/schemas/Input");
        assert_eq!(rebased["$ref"], "#/components/schemas/Input/$defs/a");
        assert_eq!(
            rebased["properties"]["const"]["$ref"], "#/components/schemas/Input/$defs/b",
            "a property named const"
        );
        assert_eq!(rebased["$defs"]["a"]["items"]["$ref"], "#/components/schemas/Input/$defs/b");
        assert_eq!(rebased["properties"]["x"]["const"]["$ref"], "#/$defs/c", "data");
        assert_eq!(rebased["properties"]["x"]["default"]["$ref"], "#/d");
        assert_eq!(rebased["properties"]["y"]["enum"][0]["$ref"], "#/e");
        assert_eq!(rebased["properties"]["y"]["examples"][0]["$ref"], "#/f");
    }
}
