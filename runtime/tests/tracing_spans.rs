//! The spans the product spec names, with their fields.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestr8_runtime::policy::{CircuitBreakerPolicy, Policy, RetryPolicy};
use orchestr8_runtime::testing::MockAgent;
use orchestr8_runtime::{
    AgentStep, BreakerRegistry, ExecutionOptions, MemoryStore, Node, Runtime, Workflow, WorkflowInfo,
};
use serde_json::{json, Value};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Subscriber;
use tracing::{Event, Metadata};

/// A span's name and field names.
type SpanInfo = (String, BTreeSet<String>);

/// Records every span's name and field names, and the fields of every
/// warning (as `name=value` text).
#[derive(Default, Clone)]
struct Spans {
    seen: Arc<Mutex<Vec<SpanInfo>>>,
    warnings: Arc<Mutex<Vec<String>>>,
    infos: Arc<Mutex<Vec<String>>>,
    next: Arc<AtomicU64>,
}

/// `name=value` pairs of an event's fields.
#[derive(Default)]
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let fields = attrs.metadata().fields().iter().map(|f| f.name().to_string()).collect();
        self.seen.lock().unwrap().push((attrs.metadata().name().to_string(), fields));
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        match *event.metadata().level() {
            tracing::Level::WARN => self.warnings.lock().unwrap().push(fields.0),
            tracing::Level::INFO => self.infos.lock().unwrap().push(fields.0),
            _ => {}
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test(start_paused = true)]
async fn spans_carry_the_spec_names_and_fields() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(spans.clone());
    let agent = Arc::new(MockAgent::<Value>::new("a", "1").then_fail("x").then_fail("y").then_ok(json!(1)));
    let policy = Policy {
        retry: RetryPolicy { max_attempts: 2, jitter: false, ..RetryPolicy::default() },
        circuit_breaker: CircuitBreakerPolicy {
            failure_threshold: 2,
            reset_timeout: Duration::ZERO,
            half_open_requests: 1,
        },
        ..Policy::default()
    };
    let wf = Workflow::with_registry(
        WorkflowInfo::new("w", "1", "h"),
        Node::sequence(vec![AgentStep::new("s", agent, |_: &()| Ok(json!({})), |_: &(), _| Ok(()))
            .policy(policy)
            .node()]),
        |_: &()| Ok(()),
        &BreakerRegistry::new(2),
    );
    // The first execution retries once, then its second failure opens the
    // breaker; the second is the half-open probe that closes it.
    let runtime = Runtime::new(MemoryStore::new());
    runtime.run(&wf, &(), ExecutionOptions::default()).await.unwrap().unwrap_err();
    runtime.run(&wf, &(), ExecutionOptions::default()).await.unwrap().unwrap();
    let seen = spans.seen.lock().unwrap().clone();
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "orchestrator.execute",
            "orchestrator.step",
            "agent.run",
            "resilience.retry",
            "agent.run",
            "orchestrator.execute",
            "orchestrator.step",
            "agent.run",
        ]
    );
    // Circuit transitions are events in the step's span, not spans.
    let transitions: Vec<String> =
        spans.infos.lock().unwrap().iter().filter(|e| e.contains("circuit.state")).cloned().collect();
    assert_eq!(transitions.len(), 3, "opened, half-opened, closed: {transitions:?}");
    assert!(transitions[0].contains("from=\"closed\"") && transitions[0].contains("to=\"open\""), "{transitions:?}");
    let fields = |name: &str| seen.iter().find(|(n, _)| n == name).unwrap().1.clone();
    let want = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    for name in ["agent.run", "resilience.retry"] {
        assert!(
            fields(name).is_superset(&want(&["workflow_id", "step_id", "agent_id", "correlation_id", "attempt"])),
            "{name}: {:?}",
            fields(name)
        );
    }
    assert!(fields("orchestrator.execute").is_superset(&want(&[
        "workflow_id",
        "workflow_version",
        "correlation_id",
        "execution_id",
        "outcome",
        "error.type",
        "otel.status_code"
    ])));
    assert!(fields("orchestrator.step").is_superset(&want(&[
        "step_id",
        "agent_id",
        "execution_id",
        "outcome",
        "duration_ms"
    ])));
}

#[test]
fn execution_ids_are_uuid_v4() {
    let a = orchestr8_runtime::executor::new_execution_id();
    let b = orchestr8_runtime::executor::new_execution_id();
    assert_ne!(a, b);
    let parts: Vec<&str> = a.split('-').collect();
    assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
    assert!(parts[2].starts_with('4'));
    assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
    assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
}

#[test]
fn a_breaker_asked_for_with_other_settings_is_warned_about_once() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(spans.clone());
    let registry = BreakerRegistry::new(4);
    let first = CircuitBreakerPolicy::default();
    let other = CircuitBreakerPolicy { failure_threshold: 1, ..first };
    registry.get("a", "1", &first);
    registry.get("a", "1", &first);
    assert!(spans.warnings.lock().unwrap().is_empty(), "the same settings are fine");
    let b = registry.get("a", "1", &other);
    registry.get("a", "1", &other);
    assert_eq!(b.policy(), &first, "the first settings stay");
    let warnings = spans.warnings.lock().unwrap().clone();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("agent_id=\"a\"") && warnings[0].contains("failure_threshold"), "{warnings:?}");
}
