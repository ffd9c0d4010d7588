//! LLM agents against a mock provider (wiremock on loopback): every outcome
//! class for both wire formats, the repair loop, retries through the step's
//! policy, usage and budgets in the journal, cancellation, concurrency
//! limits, and the API key never leaving the process.
//!
//! The answers are the files in `tests/fixtures/llm/`, served byte for byte;
//! every parse and check runs through the production code.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orchestr8_runtime::codegen::{slot, store};
use orchestr8_runtime::journal::{EventKind, JournalEvent, LineCache};
use orchestr8_runtime::llm::LlmAgent;
use orchestr8_runtime::policy::{Policy, RetryPolicy};
use orchestr8_runtime::testing::{assert_well_formed, step_event_names};
use orchestr8_runtime::{
    Agent, AgentStep, BreakerRegistry, ErrorKind, ExecutionError, ExecutionOptions, MemoryStore, Node, Runtime,
    StepError, Workflow, WorkflowInfo,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Ticket {
    subject: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
struct Triage {
    kind: String,
    confidence: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum P {
    Anthropic,
    Openai,
}

impl P {
    fn name(self) -> &'static str {
        match self {
            P::Anthropic => "anthropic",
            P::Openai => "openai",
        }
    }

    fn path(self) -> &'static str {
        match self {
            P::Anthropic => "/v1/messages",
            P::Openai => "/v1/chat/completions",
        }
    }

    fn base(self, server: &MockServer) -> String {
        match self {
            P::Anthropic => server.uri(),
            P::Openai => format!("{}/v1", server.uri()),
        }
    }
}

const BOTH: [P; 2] = [P::Anthropic, P::Openai];
const KEY: &str = "sk-test-LEAKCHECK-0123456789abcdef-5678";

fn key_env(test: &str) -> String {
    let name = format!("ORCHESTR8_TEST_KEY_{}", test.to_uppercase());
    // Each test has its own variable: tests run in parallel threads.
    std::env::set_var(&name, KEY);
    name
}

fn output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["bug", "question", "feature"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1}
        },
        "required": ["kind", "confidence"]
    })
}

fn definition(p: P, server: &MockServer, test: &str, extra: Value) -> String {
    let mut d = json!({
        "kind": "llm",
        "provider": p.name(),
        "model": "test-model",
        "baseUrl": p.base(server),
        "apiKeyEnv": key_env(test),
        "prompt": {
            "system": "You triage support tickets.",
            "instructions": "Classify the ticket \"${input.subject}\".",
            "constraints": ["Confidence is between 0 and 1."]
        },
        "input": {"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]},
        "output": output_schema(),
        "temperature": 0
    });
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    d.to_string()
}

fn agent(p: P, server: &MockServer, test: &str, extra: Value) -> LlmAgent<Ticket, Triage> {
    let a = LlmAgent::new("triage", "1.0.0", &definition(p, server, test, extra));
    a.check().unwrap();
    a
}

/// A fixture as wiremock's answer: its status, headers and body bytes.
fn answer(p: P, case: &str) -> ResponseTemplate {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/llm/{}/{case}.json", p.name()));
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let mut t = ResponseTemplate::new(fixture["status"].as_u64().unwrap() as u16);
    for (k, v) in fixture["headers"].as_object().unwrap() {
        t = t.insert_header(k.as_str(), v.as_str().unwrap());
    }
    t.set_body_raw(serde_json::to_vec(&fixture["body"]).unwrap(), "application/json")
}

/// Serves `cases` in order, one request each; the last one again after that.
async fn serve(server: &MockServer, p: P, cases: &[&str]) {
    for (i, case) in cases.iter().enumerate() {
        let mock = Mock::given(method("POST")).and(path(p.path())).respond_with(answer(p, case));
        let mock = if i + 1 < cases.len() { mock.up_to_n_times(1) } else { mock };
        // Earlier cases first: wiremock tries lower priority numbers first.
        mock.with_priority(u8::try_from(i + 1).unwrap()).mount(server).await;
    }
}

#[derive(Default)]
struct Slots {
    out: OnceLock<Triage>,
}

struct Ran {
    result: Result<Triage, ExecutionError>,
    events: Vec<JournalEvent>,
    journal: String,
}

fn policy(max_attempts: u32) -> Policy {
    Policy {
        retry: RetryPolicy {
            max_attempts,
            initial_delay: Duration::from_millis(10),
            jitter: false,
            ..RetryPolicy::default()
        },
        ..Policy::default()
    }
}

fn workflow<A: Agent<Input = Ticket, Output = Triage>>(
    agents: Vec<A>,
    policy: Policy,
    budget: Option<u64>,
) -> Workflow<Slots, Triage> {
    let steps = agents.into_iter().enumerate().map(|(i, a)| {
        let id = format!("s{i}");
        let last = id.clone();
        AgentStep::new(
            id.as_str(),
            Arc::new(a),
            |_: &Slots| Ok(Ticket { subject: "Login page is blank".into() }),
            move |s: &Slots, o| {
                // Every step writes the one slot; the last one's answer is the result.
                let _ = s.out.set(o);
                let _ = &last;
                Ok(())
            },
        )
        .policy(policy)
        .node()
    });
    let mut info = WorkflowInfo::new("llm-test", "1.0.0", "h");
    if let Some(b) = budget {
        info = info.max_tokens(b);
    }
    // Each workflow its own breakers: the tests share an agent id.
    Workflow::with_registry(
        info,
        Node::sequence(steps.collect::<Vec<_>>()),
        |s: &Slots| slot(&s.out, "s0").cloned(),
        &BreakerRegistry::new(16),
    )
}

async fn run_all<A: Agent<Input = Ticket, Output = Triage>>(
    agents: Vec<A>,
    policy: Policy,
    budget: Option<u64>,
) -> Ran {
    let store = MemoryStore::new();
    let wf = workflow(agents, policy, budget);
    let opts = ExecutionOptions { execution_id: Some("x".into()), ..Default::default() };
    let result = Runtime::new(store.clone()).run(&wf, &Slots::default(), opts).await.unwrap();
    let events = store.events("x");
    assert_well_formed(&events);
    let mut bytes = Vec::new();
    let mut cache = LineCache::default();
    for e in &events {
        e.write_line(&mut bytes, &mut cache);
    }
    Ran { result, events, journal: String::from_utf8(bytes).unwrap() }
}

async fn run_one(a: LlmAgent<Ticket, Triage>, policy: Policy) -> Ran {
    run_all(vec![a], policy, None).await
}

fn step_error(ran: &Ran) -> StepError {
    ran.result.clone().unwrap_err()
}

fn usage_of(e: &JournalEvent) -> Value {
    serde_json::to_value(e.usage().expect("the event carries usage")).unwrap()
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server.received_requests().await.unwrap().iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
}

// Success, and what is sent.

#[tokio::test]
async fn anthropic_native_request_and_a_recorded_answer() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(answer(P::Anthropic, "success-native"))
        .expect(1)
        .mount(&server)
        .await;
    // The recorded exchange's own schema: what the official SDK sent.
    let recorded: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/llm/anthropic/success-native.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let sdk_schema = recorded["meta"]["request_output_config"]["format"]["schema"].clone();
    #[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
    struct Order {
        items: Vec<Value>,
        total: f64,
    }
    let def = json!({
        "kind": "llm", "provider": "anthropic", "model": "claude-sonnet-4-5", "baseUrl": server.uri(),
        "apiKeyEnv": key_env("recorded"), "maxTokens": 1024,
        "prompt": {"system": "Extract orders.", "instructions": "${input.subject}"},
        "input": {"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]},
        "output": sdk_schema
    });
    let a: LlmAgent<Ticket, Order> = LlmAgent::new("extract", "1.0.0", &def.to_string());
    let journal = MemoryStore::new();
    let wf = Workflow::new(
        WorkflowInfo::new("rec", "1.0.0", "h"),
        Node::sequence([AgentStep::new(
            "extract",
            Arc::new(a),
            |_: &OnceLock<Order>| {
                Ok(Ticket { subject: "Extract order: 2 Green Tea at $5.50 and 1 Coffee at $3.00. Total $14.".into() })
            },
            |s: &OnceLock<Order>, o| store(s, "extract", o),
        )
        .node()]),
        |s: &OnceLock<Order>| slot(s, "extract").cloned(),
    );
    let opts = ExecutionOptions { execution_id: Some("r".into()), ..Default::default() };
    let order = Runtime::new(journal.clone()).run(&wf, &OnceLock::new(), opts).await.unwrap().unwrap();
    assert_eq!((order.items.len(), order.total), (2, 14.0));
    let sent = &bodies(&server).await[0];
    assert_eq!(
        sent["output_config"]["format"]["schema"],
        recorded["meta"]["request_output_config"]["format"]["schema"]
    );
    assert_eq!(sent["max_tokens"], 1024);
    assert_eq!(sent["messages"].as_array().unwrap().len(), 1, "the conversation ends with the user's turn");
    let completed = journal.events("r").into_iter().find(|e| e.event == EventKind::ExecutionCompleted).unwrap();
    assert_eq!(usage_of(&completed), json!({"inputTokens": 406, "outputTokens": 50, "calls": 1}));
}

#[tokio::test]
async fn openai_request_uses_response_format_and_records_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(answer(P::Openai, "success"))
        .expect(1)
        .mount(&server)
        .await;
    let ran = run_one(agent(P::Openai, &server, "openai_ok", json!({})), policy(1)).await;
    assert_eq!(ran.result.unwrap(), Triage { kind: "bug".into(), confidence: 0.8 });
    let sent = &bodies(&server).await[0];
    assert_eq!(sent["response_format"]["type"], "json_schema");
    // Every property is required, so strict mode is on; the bounds stay (OpenAI enforces them).
    assert_eq!(sent["response_format"]["json_schema"]["strict"], true);
    assert_eq!(sent["response_format"]["json_schema"]["schema"]["properties"]["confidence"]["maximum"], 1);
    assert_eq!(sent["response_format"]["json_schema"]["schema"]["additionalProperties"], false);
    // A custom base URL is an OpenAI-compatible server: `max_tokens`, which they all read.
    assert_eq!(sent["max_tokens"], 4096);
    assert_eq!(sent["temperature"], 0.0);
    assert_eq!(sent["messages"][0]["role"], "system");
    // The default JSON prompt: the user turn is one JSON object.
    let user: Value = serde_json::from_str(sent["messages"][1]["content"].as_str().unwrap()).unwrap();
    assert!(
        user["instructions"].as_str().unwrap().starts_with("Classify the ticket \"Login page is blank\"."),
        "{user}"
    );
    let succeeded = ran.events.iter().find(|e| e.event == EventKind::StepSucceeded).unwrap();
    assert_eq!(
        usage_of(succeeded),
        json!({"inputTokens": 86, "outputTokens": 12, "cacheReadInputTokens": 64, "calls": 1})
    );
}

#[tokio::test]
async fn anthropic_tool_mode_forces_the_tool_and_reads_its_input() {
    let server = MockServer::start().await;
    serve(&server, P::Anthropic, &["success-tool"]).await;
    let ran = run_one(agent(P::Anthropic, &server, "tool", json!({"structuredOutput": "tool"})), policy(1)).await;
    assert_eq!(ran.result.unwrap(), Triage { kind: "bug".into(), confidence: 0.75 });
    let sent = &bodies(&server).await[0];
    assert_eq!(sent["tool_choice"], json!({"type": "tool", "name": "emit_result", "disable_parallel_tool_use": true}));
    assert!(sent.get("output_config").is_none());
    // Anthropic drops the bounds from the wire schema; the description carries them.
    let confidence = &sent["tools"][0]["input_schema"]["properties"]["confidence"];
    assert!(confidence.get("maximum").is_none());
    assert_eq!(confidence["description"], "{\"minimum\":0,\"maximum\":1}");
}

#[tokio::test]
async fn unknown_blocks_and_fields_do_not_break_parsing() {
    let server = MockServer::start().await;
    serve(&server, P::Anthropic, &["unknown-block"]).await;
    let ran = run_one(agent(P::Anthropic, &server, "unknown", json!({})), policy(1)).await;
    assert_eq!(ran.result.unwrap().kind, "question");
}

// The repair loop.

#[tokio::test]
async fn an_invalid_answer_is_sent_back_with_its_errors_and_repaired() {
    for p in BOTH {
        let server = MockServer::start().await;
        serve(&server, p, &["invalid-maximum", "valid"]).await;
        let ran = run_one(agent(p, &server, &format!("repair_{}", p.name()), json!({})), policy(1)).await;
        assert_eq!(ran.result.as_ref().unwrap().confidence, 0.9, "{p:?}");
        let sent = bodies(&server).await;
        assert_eq!(sent.len(), 2, "{p:?}");
        let messages = sent[1]["messages"].as_array().unwrap();
        let (assistant, feedback) = (&messages[messages.len() - 2], &messages[messages.len() - 1]);
        assert_eq!(assistant["role"], "assistant");
        let previous = assistant["content"].as_str().unwrap();
        assert!(previous.contains("9."), "{p:?}: the model's own answer goes back: {previous}");
        assert_eq!(feedback["role"], "user", "{p:?}: the conversation ends with the user");
        let text = feedback["content"].as_str().unwrap();
        assert!(text.contains("at `/confidence`") && text.contains("maximum of 1"), "{p:?}: {text}");
        // One attempt of the step, two calls: the usage says so.
        let succeeded = ran.events.iter().find(|e| e.event == EventKind::StepSucceeded).unwrap();
        assert_eq!(usage_of(succeeded)["calls"], 2, "{p:?}");
        assert_eq!(step_event_names(&ran.events, "s0"), ["step.started", "step.attempt.started", "step.succeeded"]);
    }
}

#[tokio::test]
async fn repairs_replace_each_other_and_stop_at_max_attempts() {
    for p in BOTH {
        let server = MockServer::start().await;
        serve(&server, p, &["invalid-maximum"]).await;
        let test = format!("exhausted_{}", p.name());
        let ran = run_one(agent(p, &server, &test, json!({"repair": {"maxAttempts": 2}})), policy(3)).await;
        let e = step_error(&ran);
        assert_eq!((e.kind, e.reason.as_deref(), e.attempt), (ErrorKind::Fatal, Some("invalid_output"), 1), "{p:?}");
        assert!(e.message.contains("after 3 call(s)") && e.message.contains("maximum of 1"), "{p:?}: {}", e.message);
        let sent = bodies(&server).await;
        assert_eq!(sent.len(), 3, "{p:?}: the first call and two repairs; the step does not retry them");
        let first = sent[0]["messages"].as_array().unwrap().len();
        for s in &sent[1..] {
            assert_eq!(s["messages"].as_array().unwrap().len(), first + 2, "{p:?}: a repair replaces the one before");
        }
        let failed = ran.events.iter().find(|e| e.event == EventKind::StepFailed).unwrap();
        assert_eq!(usage_of(failed)["calls"], 3);
    }
}

// Terminal outcomes: never repaired, never retried.

async fn terminal(p: P, case: &str, test: &str) -> (StepError, usize) {
    let server = MockServer::start().await;
    serve(&server, p, &[case]).await;
    let ran = run_one(agent(p, &server, test, json!({})), policy(3)).await;
    (step_error(&ran), bodies(&server).await.len())
}

#[tokio::test]
async fn refusals_are_terminal() {
    for p in BOTH {
        let (e, calls) = terminal(p, "refusal", &format!("refusal_{}", p.name())).await;
        assert_eq!((e.kind, e.reason.as_deref(), calls), (ErrorKind::Fatal, Some("refused"), 1), "{p:?}");
        assert!(e.message.starts_with("the model refused: "), "{}", e.message);
    }
}

#[tokio::test]
async fn a_content_filter_is_terminal() {
    let (e, calls) = terminal(P::Openai, "content-filter", "filter").await;
    assert_eq!((e.kind, e.reason.as_deref(), calls), (ErrorKind::Fatal, Some("content_filter"), 1));
}

#[tokio::test]
async fn truncation_is_terminal_and_not_a_validation_error() {
    for p in BOTH {
        let (e, calls) = terminal(p, "truncated", &format!("truncated_{}", p.name())).await;
        assert_eq!((e.kind, e.reason.as_deref(), calls), (ErrorKind::Fatal, Some("truncated"), 1), "{p:?}");
        assert!(e.message.contains("cut off at 4096 tokens"), "{}", e.message);
    }
}

#[tokio::test]
async fn rejected_requests_are_fatal_with_the_providers_message() {
    let cases: [(P, &str, &str); 6] = [
        (P::Anthropic, "error-400-schema", "For 'number' type, properties maximum, minimum are not supported"),
        (P::Anthropic, "error-401", "authentication_error: invalid x-api-key"),
        (P::Anthropic, "error-429-spend-limit", "usage limits"),
        (P::Openai, "error-400-unsupported-parameter", "Use 'max_completion_tokens' instead"),
        (P::Openai, "error-401", "Incorrect API key provided"),
        (P::Openai, "error-429-insufficient-quota", "exceeded your current quota"),
    ];
    for (i, (p, case, said)) in cases.into_iter().enumerate() {
        let (e, calls) = terminal(p, case, &format!("rejected_{i}")).await;
        assert_eq!((e.kind, e.reason.as_deref(), calls), (ErrorKind::Fatal, Some("provider_rejected"), 1), "{case}");
        assert!(e.message.contains(said), "{case}: {}", e.message);
    }
    let (e, calls) = terminal(P::Anthropic, "error-500-no-retry", "no_retry").await;
    assert_eq!((e.kind, calls), (ErrorKind::Fatal, 1), "x-should-retry: false wins over the status");
    // Status 404: the route or model does not exist.
    let server = MockServer::start().await;
    let ran = run_one(agent(P::Openai, &server, "not_found", json!({})), policy(3)).await;
    let e = step_error(&ran);
    assert_eq!((e.kind, e.reason.as_deref()), (ErrorKind::Fatal, Some("provider_rejected")));
    assert!(e.message.contains("answered 404"), "{}", e.message);
}

// Retryable outcomes go through the step's retry policy, once.

#[tokio::test]
async fn overload_and_rate_limits_are_retried_by_the_step_honouring_retry_after() {
    let cases: [(P, &str, Option<u64>); 5] = [
        (P::Anthropic, "error-429-retry-after", Some(300)),
        (P::Anthropic, "error-529-overloaded", None),
        (P::Openai, "error-429-rate-limit", Some(300)),
        (P::Openai, "error-503-loading", None),
        (P::Openai, "error-503-ollama-busy", None),
    ];
    for (i, (p, case, hint)) in cases.into_iter().enumerate() {
        let server = MockServer::start().await;
        serve(&server, p, &[case, "valid"]).await;
        let ran = run_one(agent(p, &server, &format!("retry_{i}"), json!({})), policy(3)).await;
        assert_eq!(ran.result.as_ref().unwrap().kind, "bug", "{case}");
        assert_eq!(bodies(&server).await.len(), 2, "{case}");
        let failed = ran.events.iter().find(|e| e.event == EventKind::StepAttemptFailed).unwrap();
        let error = failed.error.as_ref().unwrap();
        assert_eq!(
            (error.kind, error.reason.as_deref()),
            (ErrorKind::AgentFailed, Some("provider_unavailable")),
            "{case}"
        );
        let scheduled = ran.events.iter().find(|e| e.event == EventKind::StepRetryScheduled).unwrap();
        match hint {
            Some(ms) => assert_eq!(scheduled.delay_ms, Some(ms), "{case}: the provider's retry-after is the delay"),
            None => assert_eq!(scheduled.delay_ms, Some(10), "{case}: the policy's backoff"),
        }
    }
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_is_a_retryable_transport_error() {
    for p in BOTH {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = match p {
            P::Anthropic => format!("http://127.0.0.1:{port}"),
            P::Openai => format!("http://127.0.0.1:{port}/v1"),
        };
        let def = json!({
            "kind": "llm", "provider": p.name(), "model": "m", "baseUrl": base,
            "apiKeyEnv": key_env(&format!("unreachable_{}", p.name())),
            "prompt": {"system": "s", "instructions": "i"},
            "input": {"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]},
            "output": output_schema()
        });
        let ran = run_one(LlmAgent::new("triage", "1.0.0", &def.to_string()), policy(2)).await;
        let e = step_error(&ran);
        assert_eq!((e.kind, e.reason.as_deref(), e.attempt), (ErrorKind::AgentFailed, Some("transport"), 2), "{p:?}");
        assert!(e.message.contains(&format!("127.0.0.1:{port}")), "{}", e.message);
    }
}

// The key.

#[tokio::test]
async fn the_api_key_never_reaches_the_journal_or_an_error() {
    let server = MockServer::start().await;
    // A provider that echoes the whole key, and one that echoes it masked.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {"message": format!("bad key {KEY} (masked sk-test-****5678)"), "type": "invalid_request_error"}})))
        .mount(&server)
        .await;
    let a = agent(P::Openai, &server, "leak", json!({}));
    let shown = format!("{a:?}");
    let ran = run_one(a, policy(1)).await;
    let e = step_error(&ran);
    let texts = [ran.journal.clone(), e.message.clone(), e.to_string(), shown];
    for (what, text) in ["journal", "message", "display", "debug"].iter().zip(texts) {
        // The key, any part of its secret middle, and the provider's masked echo of it.
        for needle in [KEY, "LEAKCHECK", "0123456789abcdef", "sk-test-****5678"] {
            assert!(!text.contains(needle), "{what} holds `{needle}`: {text}");
        }
    }
    assert!(e.message.contains("[redacted]"), "{}", e.message);
}

#[test]
fn a_missing_key_is_reported_with_the_variable_and_the_agent() {
    let def = json!({
        "kind": "llm", "provider": "anthropic", "model": "m", "apiKeyEnv": "ORCHESTR8_TEST_KEY_NEVER_SET",
        "prompt": {"system": "s", "instructions": "i"},
        "input": {"type": "object"}, "output": output_schema()
    });
    let a: LlmAgent<Value, Triage> = LlmAgent::new("triage", "1.0.0", &def.to_string());
    let e = a.check().unwrap_err();
    assert!(e.contains("ORCHESTR8_TEST_KEY_NEVER_SET") && e.contains("`triage`"), "{e}");
    // An OpenAI-compatible local server needs none when no variable is named.
    let def = json!({
        "kind": "llm", "provider": "openai", "model": "m", "baseUrl": "http://127.0.0.1:9/v1",
        "prompt": {"system": "s", "instructions": "i"}, "input": {"type": "object"}, "output": output_schema()
    });
    let a: LlmAgent<Value, Triage> = LlmAgent::new("local", "1.0.0", &def.to_string());
    a.check().unwrap();
}

// Budgets, limits, cancellation.

#[tokio::test]
async fn a_token_budget_stops_calls_and_repairs() {
    let server = MockServer::start().await;
    // Each answer costs 120 tokens (100 in, 20 out), and is invalid.
    serve(&server, P::Anthropic, &["invalid-maximum"]).await;
    let ran = run_all(vec![agent(P::Anthropic, &server, "budget", json!({}))], policy(1), Some(200)).await;
    let e = step_error(&ran);
    assert_eq!((e.kind, e.attempt), (ErrorKind::BudgetExceeded, 1));
    assert!(e.message.contains("token budget of 200"), "{}", e.message);
    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 2, "the first repair fits in the budget, the second does not");
    assert_eq!(sent[1]["max_tokens"], 70, "an answer is bounded by what is left (200 - 130)");
    let failed = ran.events.iter().find(|e| e.event == EventKind::ExecutionFailed).unwrap();
    assert_eq!(usage_of(failed)["calls"], 2);
    assert_eq!(failed.error.as_ref().unwrap().kind, ErrorKind::BudgetExceeded);
}

#[tokio::test]
async fn cancellation_aborts_the_request_in_flight() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer(P::Openai, "success").set_delay(Duration::from_secs(600)))
        .mount(&server)
        .await;
    let wf = Arc::new(workflow(vec![agent(P::Openai, &server, "cancel", json!({}))], policy(1), None));
    let store = MemoryStore::new();
    let handle = Runtime::new(store.clone()).start(wf, Slots::default(), ExecutionOptions::default()).unwrap();
    while server.received_requests().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handle.cancel();
    // Without the abort this waits out the cancel grace (5 s) and records an abandoned agent.
    let e = tokio::time::timeout(Duration::from_secs(4), handle.wait())
        .await
        .expect("the request was aborted")
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled);
}

#[tokio::test]
async fn a_concurrency_limit_holds_calls_back_across_executions() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer(P::Openai, "success").set_delay(Duration::from_secs(600)))
        .mount(&server)
        .await;
    // Two agents, one model, a limit of one: the second waits for the first.
    let limits = json!({"limits": {"concurrency": 1}, "model": "limited-model"});
    let first = Arc::new(workflow(vec![agent(P::Openai, &server, "limit_a", limits.clone())], policy(1), None));
    let second = Arc::new(workflow(vec![agent(P::Openai, &server, "limit_b", limits)], policy(1), None));
    let rt = Runtime::new(MemoryStore::new());
    let a = rt.start(first, Slots::default(), ExecutionOptions::default()).unwrap();
    let b = rt.start(second, Slots::default(), ExecutionOptions::default()).unwrap();
    while server.received_requests().await.unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.received_requests().await.unwrap().len(), 1, "the second call waits for a permit");
    // A waiting call is cancellable too.
    b.cancel();
    a.cancel();
    assert_eq!(b.wait().await.unwrap_err().kind, ErrorKind::Cancelled);
    assert_eq!(a.wait().await.unwrap_err().kind, ErrorKind::Cancelled);
}

#[test]
fn llm_fixtures_say_where_they_come_from() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm");
    let mut seen = 0;
    for p in BOTH {
        for entry in std::fs::read_dir(dir.join(p.name())).unwrap() {
            let path = entry.unwrap().path();
            let f: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let source = f["meta"]["source"].as_str().unwrap_or_else(|| panic!("{path:?} has no meta.source"));
            assert!(["live-anthropic", "local-llama-server", "hand-written"].contains(&source), "{path:?}: {source}");
            let cited = f["meta"]["shape"].as_str().or(f["meta"]["from"].as_str()).unwrap_or_default();
            assert!(!cited.is_empty(), "{path:?} does not say where its shape comes from");
            seen += 1;
        }
    }
    assert!(seen >= 20, "{seen}");
    let native: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("anthropic/success-native.json")).unwrap()).unwrap();
    assert_eq!(native["meta"]["source"], "live-anthropic", "Anthropic's success shape is a recorded one");
}

// Found by review; each failed before its fix.

#[test]
fn a_key_that_is_not_visible_ascii_is_refused_at_start_without_showing_it() {
    std::env::set_var("ORCHESTR8_TEST_KEY_NON_ASCII", "sk-ant-äöü-1234567890-secret");
    let def = json!({
        "kind": "llm", "provider": "anthropic", "model": "m", "apiKeyEnv": "ORCHESTR8_TEST_KEY_NON_ASCII",
        "prompt": {"system": "s", "instructions": "i"}, "input": {"type": "object"}, "output": output_schema()
    });
    let a: LlmAgent<Value, Triage> = LlmAgent::new("triage", "1.0.0", &def.to_string());
    let e = a.check().unwrap_err();
    assert!(e.contains("ORCHESTR8_TEST_KEY_NON_ASCII") && !e.contains("secret") && !e.contains("äöü"), "{e}");
    let def = json!({
        "kind": "llm", "provider": "openai", "model": "m", "baseUrl": "localhost:8080/v1",
        "prompt": {"system": "s", "instructions": "i"}, "input": {"type": "object"}, "output": output_schema()
    });
    let a: LlmAgent<Value, Triage> = LlmAgent::new("triage", "1.0.0", &def.to_string());
    assert!(a.check().unwrap_err().contains("`localhost:8080/v1` (from baseUrl) is not usable"));
}

#[tokio::test]
async fn a_redirect_is_not_followed_so_the_key_stays_with_the_provider() {
    let (server, elsewhere) = (MockServer::start().await, MockServer::start().await);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(307).insert_header("location", format!("{}/v1/messages", elsewhere.uri())))
        .mount(&server)
        .await;
    Mock::given(method("POST")).respond_with(answer(P::Anthropic, "valid")).mount(&elsewhere).await;
    let ran = run_one(agent(P::Anthropic, &server, "redirect", json!({})), policy(1)).await;
    let e = step_error(&ran);
    assert_eq!((e.kind, e.reason.as_deref()), (ErrorKind::Fatal, Some("provider_rejected")));
    assert!(e.message.contains("answered 307"), "{}", e.message);
    assert!(elsewhere.received_requests().await.unwrap().is_empty(), "the key went to another host");
}

#[tokio::test]
async fn an_empty_answer_is_repaired_without_an_empty_turn() {
    for p in BOTH {
        let server = MockServer::start().await;
        let empty = match p {
            P::Anthropic => {
                json!({"type": "message", "role": "assistant", "content": [], "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 0}})
            }
            P::Openai => {
                json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}]})
            }
        };
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(empty))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST")).respond_with(answer(p, "valid")).with_priority(2).mount(&server).await;
        let ran = run_one(agent(p, &server, &format!("empty_{}", p.name()), json!({})), policy(1)).await;
        assert_eq!(ran.result.unwrap().kind, "bug", "{p:?}");
        let sent = bodies(&server).await;
        let messages = sent[1]["messages"].as_array().unwrap();
        assert!(messages.iter().all(|m| m["role"] != "assistant"), "{p:?}: {messages:?}");
        let last = messages.last().unwrap();
        assert_eq!(last["role"], "user");
        assert!(last["content"].as_str().unwrap().contains("did not validate"), "{p:?}: {last}");
    }
}

#[tokio::test]
async fn tool_mode_wraps_a_non_object_root_with_its_definitions() {
    let server = MockServer::start().await;
    let answer = json!({
        "type": "message", "role": "assistant", "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 3},
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "emit_result", "input": {"result": "b"}}]
    });
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(200).set_body_json(answer)).mount(&server).await;
    let def = json!({
        "kind": "llm", "provider": "anthropic", "model": "m", "baseUrl": server.uri(), "apiKeyEnv": key_env("wrapped"),
        "structuredOutput": "tool",
        "prompt": {"system": "s", "instructions": "i"},
        "input": {"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]},
        "output": {"$ref": "#/$defs/K", "$defs": {"K": {"type": "string", "enum": ["a", "b"]}}}
    });
    let a: LlmAgent<Ticket, String> = LlmAgent::new("pick", "1.0.0", &def.to_string());
    a.check().unwrap();
    let cancel = orchestr8_runtime::CancellationToken::new();
    let meta = orchestr8_runtime::ExecutionMeta {
        execution_id: "e".into(),
        correlation_id: "e".into(),
        workflow_id: "w".into(),
        workflow_version: "1".into(),
    };
    let config = Value::Null;
    let ctx = orchestr8_runtime::AgentContext::new(&cancel, &meta, "s", 1, &config);
    let out = Agent::run(&a, &ctx, Ticket { subject: "x".into() }).await.unwrap();
    assert_eq!(out, "b");
    let schema = &bodies(&server).await[0]["tools"][0]["input_schema"];
    assert_eq!(schema["properties"]["result"], json!({"$ref": "#/$defs/K"}));
    assert_eq!(schema["$defs"]["K"]["enum"], json!(["a", "b"]), "{schema}");
}

#[tokio::test]
async fn an_answer_cut_off_by_the_budget_is_a_budget_error() {
    let server = MockServer::start().await;
    serve(&server, P::Anthropic, &["truncated"]).await;
    let ran = run_all(vec![agent(P::Anthropic, &server, "budget_cut", json!({}))], policy(1), Some(150)).await;
    let e = step_error(&ran);
    assert_eq!(e.kind, ErrorKind::BudgetExceeded, "{e:?}");
    assert_eq!(bodies(&server).await[0]["max_tokens"], 150);
}

#[tokio::test]
async fn redaction_leaves_words_that_merely_look_like_the_key_alone() {
    let server = MockServer::start().await;
    std::env::set_var("ORCHESTR8_TEST_KEY_DUMMY", "sk-no-key-required");
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": {"message": "'messages' is a required property", "type": "invalid_request_error"}}),
        ))
        .mount(&server)
        .await;
    let a = agent(P::Openai, &server, "unused", json!({"apiKeyEnv": "ORCHESTR8_TEST_KEY_DUMMY"}));
    let e = step_error(&run_one(a, policy(1)).await);
    assert!(e.message.contains("'messages' is a required property"), "{}", e.message);
}
