//! OpenTelemetry in process, with the SDK's in-memory exporters: the span
//! tree, names, attributes and status of a completed, a retried, a failed
//! and a cancelled execution; metric values after a known workload; a model
//! call's GenAI span, its metrics and the `traceparent` it sends.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _};
use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use orchestr8_runtime::codegen::{slot, store};
use orchestr8_runtime::llm::LlmAgent;
use orchestr8_runtime::policy::{CircuitBreakerPolicy, Policy, RetryPolicy};
use orchestr8_runtime::telemetry::otel;
use orchestr8_runtime::testing::MockAgent;
use orchestr8_runtime::{
    AgentStep, BreakerRegistry, CancellationToken, ExecutionOptions, MemoryStore, Node, Runtime, Workflow, WorkflowInfo,
};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;

/// Spans exported while `f` runs on this thread.
async fn traced<F: std::future::Future<Output = ()>>(f: F) -> Vec<SpanData> {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let subscriber = tracing_subscriber::registry().with(otel::layer(&provider));
    {
        let _guard = tracing::subscriber::set_default(subscriber);
        f.await;
    }
    provider.force_flush().unwrap();
    exporter.get_finished_spans().unwrap()
}

/// The process's meter provider and its exporter: instruments are
/// process-wide, so every test here records into this one.
fn metrics() -> &'static (SdkMeterProvider, InMemoryMetricExporter) {
    static METRICS: OnceLock<(SdkMeterProvider, InMemoryMetricExporter)> = OnceLock::new();
    METRICS.get_or_init(|| {
        let exporter = InMemoryMetricExporter::default();
        let provider =
            SdkMeterProvider::builder().with_reader(PeriodicReader::builder(exporter.clone()).build()).build();
        use opentelemetry::metrics::MeterProvider as _;
        otel::set_instruments(&provider.meter("orchestr8"));
        (provider, exporter)
    })
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a OtelValue> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attr(span, key).map(|v| v.to_string()).unwrap_or_default()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name}: {:#?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    found[0]
}

fn workflow(id: &str, agent: MockAgent<Value, Value>, policy: Policy) -> Workflow<(), ()> {
    Workflow::with_registry(
        WorkflowInfo::new(id, "2.0.0", "h"),
        Node::sequence(vec![AgentStep::new("s", Arc::new(agent), |_: &()| Ok(json!({})), |_: &(), _| Ok(()))
            .policy(policy)
            .node()]),
        |_: &()| Ok(()),
        &BreakerRegistry::new(4),
    )
}

fn retrying(attempts: u32) -> Policy {
    Policy {
        retry: RetryPolicy {
            max_attempts: attempts,
            jitter: false,
            initial_delay: Duration::from_millis(100),
            ..RetryPolicy::default()
        },
        ..Policy::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_completed_execution_is_one_trace_of_execution_step_and_attempt() {
    let wf = workflow("traced", MockAgent::new("a", "1").then_ok(json!(1)), Policy::default());
    let runtime = Runtime::new(MemoryStore::new());
    let spans = traced(async {
        let opts = ExecutionOptions { correlation_id: Some("corr-1".into()), ..ExecutionOptions::default() };
        runtime.run(&wf, &(), opts).await.unwrap().unwrap();
    })
    .await;
    let execute = one(&spans, "orchestrator.execute");
    let step = one(&spans, "orchestrator.step");
    let attempt = one(&spans, "agent.run");
    assert_eq!(step.parent_span_id, execute.span_context.span_id());
    assert_eq!(attempt.parent_span_id, step.span_context.span_id());
    assert!(spans.iter().all(|s| s.span_context.trace_id() == execute.span_context.trace_id()));
    assert_eq!(text(execute, "workflow_id"), "traced");
    assert_eq!(text(execute, "workflow_version"), "2.0.0");
    assert_eq!(text(execute, "correlation_id"), "corr-1");
    assert_eq!(text(execute, "outcome"), "completed");
    assert!(!text(execute, "execution_id").is_empty());
    assert_eq!(execute.status, Status::Unset);
    assert_eq!(text(step, "step_id"), "s");
    assert_eq!(text(step, "agent_id"), "a");
    assert_eq!(text(step, "outcome"), "succeeded");
    assert!(matches!(attr(step, "duration_ms"), Some(OtelValue::I64(_))), "{:?}", step.attributes);
    assert_eq!(attr(attempt, "attempt"), Some(&OtelValue::I64(1)), "an integer, not a string");
    assert_eq!(text(attempt, "outcome"), "succeeded");
    // No location, thread or busy-time noise on the spans.
    assert!(attr(step, "code.file.path").is_none() && attr(step, "thread.id").is_none(), "{:?}", step.attributes);
}

#[tokio::test(start_paused = true)]
async fn a_retried_step_has_an_attempt_span_each_and_a_retry_span_between() {
    let agent = MockAgent::new("a", "1").then_fail("busy").then_ok(json!(1));
    let wf = workflow("retried", agent, retrying(2));
    let runtime = Runtime::new(MemoryStore::new());
    let spans = traced(async {
        runtime.run(&wf, &(), ExecutionOptions::default()).await.unwrap().unwrap();
    })
    .await;
    let step = one(&spans, "orchestrator.step");
    let attempts = named(&spans, "agent.run");
    assert_eq!(attempts.len(), 2);
    assert!(attempts.iter().all(|a| a.parent_span_id == step.span_context.span_id()));
    let first = attempts.iter().find(|a| attr(a, "attempt") == Some(&OtelValue::I64(1))).unwrap();
    assert!(matches!(first.status, Status::Error { .. }), "{:?}", first.status);
    assert_eq!(text(first, "error.type"), "agent_failed");
    assert_eq!(text(first, "outcome"), "failed");
    let retry = one(&spans, "resilience.retry");
    assert_eq!(retry.parent_span_id, step.span_context.span_id());
    assert_eq!(attr(retry, "attempt"), Some(&OtelValue::I64(2)));
    assert_eq!(attr(retry, "delay_ms"), Some(&OtelValue::I64(100)));
    assert_eq!(text(step, "outcome"), "succeeded");
    assert_eq!(step.status, Status::Unset);
}

#[tokio::test(start_paused = true)]
async fn a_failed_execution_has_error_status_and_its_error_type() {
    let policy = Policy {
        circuit_breaker: CircuitBreakerPolicy {
            failure_threshold: 1,
            reset_timeout: Duration::from_secs(30),
            half_open_requests: 1,
        },
        ..Policy::default()
    };
    let wf = workflow("failed", MockAgent::new("a", "1").then_fatal("no such customer"), policy);
    let runtime = Runtime::new(MemoryStore::new());
    let spans = traced(async {
        runtime.run(&wf, &(), ExecutionOptions::default()).await.unwrap().unwrap_err();
    })
    .await;
    for name in ["orchestrator.execute", "orchestrator.step", "agent.run"] {
        let span = one(&spans, name);
        assert!(matches!(span.status, Status::Error { .. }), "{name}: {:?}", span.status);
        assert_eq!(text(span, "error.type"), "fatal", "{name}");
    }
    assert_eq!(text(one(&spans, "orchestrator.execute"), "outcome"), "failed");
    // The breaker it opened: an event on the step's span, not a span.
    let step = one(&spans, "orchestrator.step");
    let event = step.events.iter().find(|e| e.name.contains("circuit.state")).expect("the transition");
    let fields: Vec<(String, String)> =
        event.attributes.iter().map(|kv| (kv.key.to_string(), kv.value.to_string())).collect();
    assert!(fields.contains(&("to".into(), "open".into())), "{fields:?}");
    // The error's message is the status's description.
    assert_eq!(step.status, Status::error("no such customer"));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_execution_is_not_an_error() {
    let wf = workflow("cancelled", MockAgent::new("a", "1").then_hang(), Policy::default());
    let runtime = Runtime::new(MemoryStore::new());
    let cancel = CancellationToken::new();
    let spans = traced(async {
        let opts = ExecutionOptions { cancel: Some(cancel.clone()), ..ExecutionOptions::default() };
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            canceller.cancel();
        });
        runtime.run(&wf, &(), opts).await.unwrap().unwrap_err();
    })
    .await;
    let execute = one(&spans, "orchestrator.execute");
    assert_eq!(text(execute, "outcome"), "cancelled");
    assert_eq!(execute.status, Status::Unset);
    assert_eq!(text(one(&spans, "orchestrator.step"), "outcome"), "cancelled");
    assert_eq!(text(one(&spans, "agent.run"), "outcome"), "cancelled");
}

#[tokio::test(start_paused = true)]
async fn a_remote_parent_makes_the_execution_its_child() {
    let wf = workflow("child", MockAgent::new("a", "1").then_ok(json!(1)), Policy::default());
    let runtime = Runtime::new(MemoryStore::new());
    let mut trace_id = None;
    let spans = traced(async {
        let parent = orchestr8_runtime::telemetry::TraceParent {
            traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
            tracestate: Some("vendor=1".into()),
        };
        let opts = ExecutionOptions { trace_parent: Some(parent), ..ExecutionOptions::default() };
        let execution = runtime.prepare(wf.info(), opts).unwrap();
        trace_id = execution.trace_id();
        execution.run(&wf, &()).await.unwrap();
    })
    .await;
    assert_eq!(trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"), "known before it runs");
    let execute = one(&spans, "orchestrator.execute");
    assert_eq!(execute.span_context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(execute.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(execute.parent_span_is_remote);

    // A malformed one is ignored: a trace of its own.
    let spans = traced(async {
        let parent = orchestr8_runtime::telemetry::TraceParent { traceparent: "garbage".into(), tracestate: None };
        let opts = ExecutionOptions { trace_parent: Some(parent), ..ExecutionOptions::default() };
        runtime.run(&wf, &(), opts).await.unwrap().unwrap();
    })
    .await;
    let execute = one(&spans, "orchestrator.execute");
    assert!(execute.span_context.is_valid());
    assert_eq!(execute.parent_span_id, opentelemetry::trace::SpanId::INVALID);
}

/// Sum of a counter's points, or a histogram's sample count, with `attrs`.
fn metric_total(name: &str, attrs: &[KeyValue]) -> u64 {
    let (provider, exporter) = metrics();
    provider.force_flush().unwrap();
    let all = exporter.get_finished_metrics().unwrap();
    // Cumulative: the last export holds the totals.
    let Some(last) = all.last() else { return 0 };
    let has = |point_attrs: &mut dyn Iterator<Item = &KeyValue>| {
        let point: Vec<&KeyValue> = point_attrs.collect();
        attrs.iter().all(|a| point.contains(&a))
    };
    let mut total = 0;
    for m in last.scope_metrics().flat_map(|s| s.metrics()).filter(|m| m.name() == name) {
        total += match m.data() {
            AggregatedMetrics::U64(MetricData::Sum(s)) => {
                s.data_points().filter(|p| has(&mut p.attributes())).map(|p| p.value()).sum::<u64>()
            }
            AggregatedMetrics::F64(MetricData::Histogram(h)) => {
                h.data_points().filter(|p| has(&mut p.attributes())).map(|p| p.count()).sum::<u64>()
            }
            AggregatedMetrics::U64(MetricData::Histogram(h)) => {
                h.data_points().filter(|p| has(&mut p.attributes())).map(|p| p.sum()).sum::<u64>()
            }
            other => panic!("{name}: unexpected {other:?}"),
        };
    }
    total
}

#[tokio::test(start_paused = true)]
async fn metrics_count_a_known_workload() {
    metrics();
    let runtime = Runtime::new(MemoryStore::new());
    // Three executions: one retried then fine, one fine, one failing for good.
    let ok = workflow(
        "metered",
        MockAgent::new("a", "1").then_fail("busy").then_ok(json!(1)).then_ok(json!(2)),
        retrying(2),
    );
    runtime.run(&ok, &(), ExecutionOptions::default()).await.unwrap().unwrap();
    runtime.run(&ok, &(), ExecutionOptions::default()).await.unwrap().unwrap();
    let bad = workflow("metered-bad", MockAgent::new("a", "1").then_fatal("no"), Policy::default());
    runtime.run(&bad, &(), ExecutionOptions::default()).await.unwrap().unwrap_err();

    let wf = |id: &'static str| KeyValue::new("workflow_id", id);
    assert_eq!(metric_total("orchestr8.step.successes", &[wf("metered"), KeyValue::new("step_id", "s")]), 2);
    assert_eq!(metric_total("orchestr8.step.retries", &[wf("metered")]), 1);
    assert_eq!(metric_total("orchestr8.step.failures", &[wf("metered")]), 0);
    assert_eq!(metric_total("orchestr8.step.failures", &[wf("metered-bad"), KeyValue::new("error.type", "fatal")]), 1);
    assert_eq!(metric_total("orchestr8.step.duration", &[wf("metered")]), 2);
    assert_eq!(
        metric_total("orchestr8.execution.duration", &[wf("metered"), KeyValue::new("outcome", "completed")]),
        2
    );
    assert_eq!(
        metric_total("orchestr8.execution.duration", &[wf("metered-bad"), KeyValue::new("outcome", "failed")]),
        1
    );
}

const KEY: &str = "sk-test-TELEMETRY-0123456789abcdef";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Question {
    text: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Answer {
    answer: String,
}

/// One step asking an OpenAI-compatible `server` through an LLM agent.
fn ask_workflow(server: &wiremock::MockServer, policy: Policy) -> Workflow<OnceLock<Answer>, Answer> {
    std::env::set_var("ORCHESTR8_TEST_KEY_TELEMETRY", KEY);
    let definition = json!({
        "kind": "llm", "provider": "openai", "model": "test-model",
        "baseUrl": format!("{}/v1", server.uri()), "apiKeyEnv": "ORCHESTR8_TEST_KEY_TELEMETRY",
        "prompt": {"system": "Answer.", "instructions": "${input.text}"},
        "input": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "output": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    });
    let agent = LlmAgent::<Question, Answer>::new("ask", "1", &definition.to_string());
    agent.check().unwrap();
    Workflow::new(
        WorkflowInfo::new("genai", "1", "h"),
        Node::sequence([AgentStep::new(
            "ask",
            Arc::new(agent),
            |_: &OnceLock<Answer>| Ok(Question { text: "What is six times seven?".into() }),
            |s: &OnceLock<Answer>, o| store(s, "ask", o),
        )
        .policy(policy)
        .node()]),
        |s: &OnceLock<Answer>| slot(s, "ask").cloned(),
    )
}

/// A call cut off by the step's timeout still shows: a failed `chat` span.
#[tokio::test]
async fn a_model_call_cut_off_by_a_timeout_is_a_failed_span() {
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .mount(&server)
        .await;
    let policy = Policy { timeout: Duration::from_millis(200), ..Policy::default() };
    let wf = ask_workflow(&server, policy);
    let runtime = Runtime::new(MemoryStore::new());
    let spans = traced(async {
        runtime.run(&wf, &OnceLock::new(), ExecutionOptions::default()).await.unwrap().unwrap_err();
    })
    .await;
    let chat = one(&spans, "chat test-model");
    assert_eq!(text(chat, "error.type"), "aborted");
    assert!(matches!(chat.status, Status::Error { .. }), "{:?}", chat.status);
    assert_eq!(text(one(&spans, "agent.run"), "outcome"), "timed_out");
}

#[tokio::test]
async fn a_model_call_is_a_genai_client_span_that_sends_its_traceparent() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    metrics();
    let server = MockServer::start().await;
    let completion = json!({
        "id": "chatcmpl-7", "object": "chat.completion", "created": 1, "model": "test-model-2026-01",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "{\"answer\": \"42\"}"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37}
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion))
        .mount(&server)
        .await;
    let wf = ask_workflow(&server, Policy::default());
    let runtime = Runtime::new(MemoryStore::new());
    let spans = traced(async {
        runtime.run(&wf, &OnceLock::new(), ExecutionOptions::default()).await.unwrap().unwrap();
    })
    .await;
    let chat = one(&spans, "chat test-model");
    let attempt = one(&spans, "agent.run");
    assert_eq!(chat.parent_span_id, attempt.span_context.span_id(), "under the attempt");
    assert_eq!(chat.span_kind, SpanKind::Client);
    assert_eq!(text(chat, "gen_ai.operation.name"), "chat");
    assert_eq!(text(chat, "gen_ai.provider.name"), "openai");
    assert_eq!(text(chat, "gen_ai.request.model"), "test-model");
    assert_eq!(text(chat, "gen_ai.response.model"), "test-model-2026-01");
    assert_eq!(text(chat, "gen_ai.response.id"), "chatcmpl-7");
    assert_eq!(
        attr(chat, "gen_ai.response.finish_reasons"),
        Some(&OtelValue::Array(opentelemetry::Array::String(vec!["stop".into()]))),
        "a string array"
    );
    assert_eq!(attr(chat, "gen_ai.usage.input_tokens"), Some(&OtelValue::I64(30)));
    assert_eq!(attr(chat, "gen_ai.usage.output_tokens"), Some(&OtelValue::I64(7)));
    assert_eq!(text(chat, "server.address"), "127.0.0.1");
    assert!(attr(chat, "gen_ai.input.messages").is_none(), "contents only when opted in");
    // The key is nowhere in the trace.
    for s in &spans {
        for kv in &s.attributes {
            assert!(!kv.value.to_string().contains(KEY), "{}: {kv:?}", s.name);
        }
    }
    // The request carried the call's trace context.
    let requests = server.received_requests().await.unwrap();
    let traceparent = requests[0].headers.get("traceparent").expect("a traceparent header").to_str().unwrap();
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts[1], chat.span_context.trace_id().to_string());
    assert_eq!(parts[2], chat.span_context.span_id().to_string(), "the chat span is the server's parent");

    let model = [KeyValue::new("gen_ai.request.model", "test-model")];
    assert_eq!(metric_total("gen_ai.client.operation.duration", &model), 1);
    let input = [model[0].clone(), KeyValue::new("gen_ai.token.type", "input")];
    assert_eq!(metric_total("gen_ai.client.token.usage", &input), 30);
    let output = [model[0].clone(), KeyValue::new("gen_ai.token.type", "output")];
    assert_eq!(metric_total("gen_ai.client.token.usage", &output), 7);
    // The current context in a test thread is not a span's: nothing leaked out.
    assert!(!opentelemetry::Context::current().span().span_context().is_valid());
}
