//! The executor driven by hand (no codegen): a three-step workflow with one
//! parallel block, cancellation, fail-fast, onError, the bus, file journals.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orchestr8_runtime::codegen::{slot, store};
use orchestr8_runtime::journal::{EventKind, StateName};
use orchestr8_runtime::policy::{CircuitBreakerPolicy, Policy, RetryPolicy};
use orchestr8_runtime::testing::{assert_events, assert_well_formed, step_event_names, MockAgent, Reply};
use orchestr8_runtime::{
    AgentStep, BreakerRegistry, BusMessage, ErrorKind, EventBus, ExecutionOptions, ExecutionState, FileStore,
    JournalStore, MemoryStore, Node, OnError, Runtime, StepState, Workflow, WorkflowInfo,
};
use serde_json::{json, Value};
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);

/// The typed state generated code would define: one slot per step.
#[derive(Default)]
struct Triage {
    ticket_id: String,
    fetch: OnceLock<Value>,
    classify: OnceLock<Value>,
    mood: OnceLock<Value>,
    reply: OnceLock<Value>,
}

fn ticket() -> Triage {
    Triage { ticket_id: "T-1".into(), ..Triage::default() }
}

#[derive(Clone)]
struct Agents {
    fetch: Arc<MockAgent>,
    classify: Arc<MockAgent>,
    mood: Arc<MockAgent>,
    reply: Arc<MockAgent>,
}

fn agents(fetch: MockAgent, classify: MockAgent, mood: MockAgent) -> Agents {
    Agents {
        fetch: Arc::new(fetch),
        classify: Arc::new(classify),
        mood: Arc::new(mood),
        reply: Arc::new(MockAgent::new("draft_reply", "1.0.0").then_ok(json!({"text": "Hello, sorry!"}))),
    }
}

fn happy_agents() -> Agents {
    agents(
        MockAgent::new("fetch_ticket", "1.0.0").then_ok(json!({"body": "my printer is on fire"})),
        MockAgent::new("classify", "1.0.0").reply(Reply::ok(json!({"category": "hardware"})).after(2 * S)),
        MockAgent::new("sentiment", "1.0.0").reply(Reply::ok(json!({"mood": "angry"})).after(S)),
    )
}

fn no_jitter(timeout: Duration) -> Policy {
    Policy { timeout, retry: RetryPolicy { jitter: false, ..RetryPolicy::default() }, ..Policy::default() }
}

/// fetch -> parallel analyze(classify, mood) -> reply; output {category, reply}.
fn triage(
    a: &Agents,
    registry: &BreakerRegistry,
    fail_fast: bool,
    mood_on_error: OnError,
) -> Arc<Workflow<Triage, Value>> {
    let fetch = AgentStep::new(
        "fetch",
        a.fetch.clone(),
        |s: &Triage| Ok(json!({"id": s.ticket_id})),
        |s: &Triage, out| store(&s.fetch, "fetch", out),
    )
    .policy(no_jitter(10 * S))
    .node();
    let classify = AgentStep::new(
        "classify",
        a.classify.clone(),
        |s: &Triage| Ok(json!({"text": slot(&s.fetch, "fetch")?["body"]})),
        |s: &Triage, out| store(&s.classify, "classify", out),
    )
    .policy(no_jitter(10 * S))
    .config(json!({"model": "small"}))
    .node();
    let mood = AgentStep::new(
        "mood",
        a.mood.clone(),
        |s: &Triage| Ok(json!({"text": slot(&s.fetch, "fetch")?["body"]})),
        |s: &Triage, out| store(&s.mood, "mood", out),
    )
    .policy(Policy {
        timeout: 5 * S,
        retry: RetryPolicy { max_attempts: 2, jitter: false, ..RetryPolicy::default() },
        ..Policy::default()
    })
    .on_error(mood_on_error)
    .node();
    let reply = AgentStep::new(
        "reply",
        a.reply.clone(),
        |s: &Triage| {
            Ok(json!({
                "category": slot(&s.classify, "classify")?["category"],
                // The output of an onError: continue step is optional.
                "mood": s.mood.get().map(|m| m["mood"].clone()),
            }))
        },
        |s: &Triage, out| store(&s.reply, "reply", out),
    )
    .policy(no_jitter(10 * S))
    .node();
    let root = Node::sequence(vec![fetch, Node::parallel("analyze", fail_fast, vec![classify, mood]), reply]);
    Arc::new(Workflow::with_registry(
        WorkflowInfo::new("ticket-triage", "0.1.0", "sha256:abc"),
        root,
        |s: &Triage| {
            Ok(json!({
                "category": slot(&s.classify, "classify")?["category"],
                "reply": slot(&s.reply, "reply")?["text"],
            }))
        },
        registry,
    ))
}

fn opts() -> ExecutionOptions {
    ExecutionOptions {
        correlation_id: Some("corr-1".into()),
        input: Some(json!({"ticketId": "T-1"})),
        ..ExecutionOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn three_steps_with_a_parallel_block() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let registry = BreakerRegistry::new(16);
    let a = happy_agents();
    let wf = triage(&a, &registry, true, OnError::Fail);
    let t0 = Instant::now();
    let handle = runtime.start(wf, ticket(), opts()).unwrap();
    assert_eq!(handle.state(), ExecutionState::Pending);
    let id = handle.execution_id().to_owned();
    let out = handle.wait().await.unwrap();
    assert_eq!(out, json!({"category": "hardware", "reply": "Hello, sorry!"}));
    // The parallel block took as long as its slowest child.
    assert_eq!(t0.elapsed(), 2 * S);

    let events = store.events(&id);
    assert_well_formed(&events);
    assert_events(
        &events,
        &[
            "execution.started",
            "step.started",
            "step.attempt.started",
            "step.succeeded",
            "step.started",
            "step.attempt.started",
            "step.started",
            "step.attempt.started",
            "step.succeeded",
            "step.succeeded",
            "step.started",
            "step.attempt.started",
            "step.succeeded",
            "execution.completed",
        ],
    );
    let steps: Vec<_> = events.iter().map(|e| e.step_id.as_deref().unwrap_or("-")).collect();
    assert_eq!(
        steps,
        [
            "-", "fetch", "fetch", "fetch", "classify", "classify", "mood", "mood", "mood", "classify", "reply",
            "reply", "reply", "-"
        ]
    );
    let started = &events[0];
    assert_eq!(started.workflow_id(), Some("ticket-triage"));
    assert_eq!(started.workflow_version(), Some("0.1.0"));
    assert_eq!(started.definition_hash(), Some("sha256:abc"));
    assert_eq!(started.correlation_id(), Some("corr-1"));
    assert_eq!(started.input.as_deref(), Some(&json!({"ticketId": "T-1"})));
    assert_eq!(events[1].input.as_deref(), Some(&json!({"id": "T-1"})));
    assert_eq!(events[1].agent_id.as_deref(), Some("fetch_ticket"));
    assert_eq!(events[3].output.as_deref(), Some(&json!({"body": "my printer is on fire"})));
    assert_eq!(events[9].duration_ms, Some(2000));
    assert_eq!(events[12].input, None);
    assert_eq!(events[10].input.as_deref(), Some(&json!({"category": "hardware", "mood": "angry"})));
    assert_eq!(events[13].output.as_deref(), Some(&out));
    assert_eq!(events[13].state, Some(StateName::Completed));

    let snap = store.read(&id).unwrap().snapshot();
    assert_eq!(snap.execution, Some(ExecutionState::Completed));
    for s in ["fetch", "classify", "mood", "reply"] {
        assert_eq!(snap.steps[s], StepState::Succeeded, "{s}");
    }
    // The agents saw the execution's context.
    let call = &a.classify.call_log()[0];
    assert_eq!((call.step_id.as_str(), call.attempt), ("classify", 1));
    assert_eq!(call.input, json!({"text": "my printer is on fire"}));
}

#[tokio::test(start_paused = true)]
async fn retries_are_journaled_with_their_states() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let registry = BreakerRegistry::new(16);
    let a = agents(
        MockAgent::new("fetch_ticket", "1.0.0").then_fail("503").then_ok(json!({"body": "b"})),
        MockAgent::new("classify", "1.0.0").then_ok(json!({"category": "c"})),
        MockAgent::new("sentiment", "1.0.0").then_ok(json!({"mood": "m"})),
    );
    let wf = triage(&a, &registry, true, OnError::Fail);
    let mut o = opts();
    o.execution_id = Some("exec-retry".into());
    runtime.run(&wf, &ticket(), o).await.unwrap().unwrap();
    let events = store.events("exec-retry");
    assert_eq!(
        step_event_names(&events, "fetch"),
        [
            "step.started",
            "step.attempt.started",
            "step.attempt.failed",
            "step.retry.scheduled",
            "step.attempt.started",
            "step.succeeded"
        ]
    );
    let sched = events.iter().find(|e| e.event == EventKind::StepRetryScheduled).unwrap();
    assert_eq!((sched.attempt, sched.delay_ms, sched.state), (Some(2), Some(1000), Some(StateName::Retrying)));
    let failed = events.iter().find(|e| e.event == EventKind::StepAttemptFailed).unwrap();
    let err = serde_json::to_value(failed.error.as_ref().unwrap()).unwrap();
    assert_eq!(err, json!({"kind": "agent_failed", "message": "503", "step": "fetch", "attempt": 1}));
    let ok = events.iter().find(|e| e.event == EventKind::StepSucceeded).unwrap();
    assert_eq!((ok.attempt, ok.duration_ms), (Some(2), Some(1000)));
}

#[tokio::test(start_paused = true)]
async fn cancel_mid_step_with_cooperative_agents() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let registry = BreakerRegistry::new(16);
    let a = agents(
        MockAgent::new("fetch_ticket", "1.0.0").then_ok(json!({"body": "b"})),
        MockAgent::new("classify", "1.0.0").then_hang(),
        MockAgent::new("sentiment", "1.0.0").reply(Reply::ok(json!({"mood": "m"})).after(10 * S)),
    );
    let wf = triage(&a, &registry, true, OnError::Fail);
    let handle = runtime.start(wf, ticket(), opts()).unwrap();
    let id = handle.execution_id().to_owned();
    tokio::time::sleep(S).await;
    assert_eq!(handle.state(), ExecutionState::Running);
    let t_cancel = Instant::now();
    handle.cancel();
    let err = handle.wait().await.unwrap_err();
    assert!(t_cancel.elapsed() <= Duration::from_millis(50), "took {:?}", t_cancel.elapsed());
    assert_eq!(err.kind, ErrorKind::Cancelled);

    let events = store.events(&id);
    assert_well_formed(&events);
    let snap = orchestr8_runtime::journal::Snapshot::from_events(&events);
    assert_eq!(snap.execution, Some(ExecutionState::Cancelled));
    assert_eq!(snap.steps["fetch"], StepState::Succeeded);
    assert_eq!(snap.steps["classify"], StepState::Cancelled);
    assert_eq!(snap.steps["mood"], StepState::Cancelled);
    assert_eq!(snap.steps["reply"], StepState::Skipped, "no new work after cancel");
    assert_eq!(a.reply.calls(), 0);
    assert_eq!(events.last().unwrap().event, EventKind::ExecutionCancelled);
}

#[tokio::test(start_paused = true)]
async fn cancel_with_an_agent_that_ignores_the_token_ends_after_the_cancel_grace() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let registry = BreakerRegistry::new(16);
    let a = agents(
        MockAgent::new("fetch_ticket", "1.0.0").reply(Reply::hang().ignoring_cancel()),
        MockAgent::new("classify", "1.0.0").then_ok(json!({"category": "c"})),
        MockAgent::new("sentiment", "1.0.0").then_ok(json!({"mood": "m"})),
    );
    let wf = triage(&a, &registry, true, OnError::Fail);
    let t0 = Instant::now();
    let handle = runtime.start(wf, ticket(), opts()).unwrap();
    let id = handle.execution_id().to_owned();
    tokio::time::sleep(S).await;
    handle.cancel();
    let err = handle.wait().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled);
    // Cancelled at 1 s, the ignoring agent is abandoned 5 s later (the
    // default cancelGrace), before fetch's 10 s timeout.
    assert_eq!(t0.elapsed(), 6 * S);
    let snap = orchestr8_runtime::journal::Snapshot::from_events(&store.events(&id));
    assert_eq!(snap.execution, Some(ExecutionState::Cancelled));
    assert_eq!(snap.steps["fetch"], StepState::Cancelled);
    assert_eq!(snap.steps["classify"], StepState::Skipped);
    assert_eq!(a.fetch.calls(), 1, "not retried after cancellation");
}

#[tokio::test(start_paused = true)]
async fn fail_fast_cancels_siblings() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let registry = BreakerRegistry::new(16);
    let a = agents(
        MockAgent::new("fetch_ticket", "1.0.0").then_ok(json!({"body": "b"})),
        MockAgent::new("classify", "1.0.0").then_hang(),
        MockAgent::new("sentiment", "1.0.0").reply(Reply::fatal("no model").after(S)),
    );
    let wf = triage(&a, &registry, true, OnError::Fail);
    let t0 = Instant::now();
    let mut o = opts();
    o.execution_id = Some("ff".into());
    let err = runtime.run(&wf, &ticket(), o).await.unwrap().unwrap_err();
    assert_eq!(t0.elapsed(), S);
    assert_eq!((err.kind, err.step.as_deref(), err.attempt), (ErrorKind::Fatal, Some("mood"), 1));
    let events = store.events("ff");
    assert_well_formed(&events);
    let snap = orchestr8_runtime::journal::Snapshot::from_events(&events);
    assert_eq!(snap.execution, Some(ExecutionState::Failed));
    assert_eq!(snap.steps["mood"], StepState::Failed);
    assert_eq!(snap.steps["classify"], StepState::Cancelled);
    assert_eq!(snap.steps["reply"], StepState::Skipped);
    assert_eq!(snap.error.unwrap().kind, ErrorKind::Fatal);
}

#[tokio::test(start_paused = true)]
async fn fail_fast_false_waits_for_all() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let registry = BreakerRegistry::new(16);
    let a = agents(
        MockAgent::new("fetch_ticket", "1.0.0").then_ok(json!({"body": "b"})),
        MockAgent::new("classify", "1.0.0").reply(Reply::ok(json!({"category": "c"})).after(3 * S)),
        MockAgent::new("sentiment", "1.0.0").then_fatal("no model"),
    );
    let wf = triage(&a, &registry, false, OnError::Fail);
    let t0 = Instant::now();
    let mut o = opts();
    o.execution_id = Some("nff".into());
    let err = runtime.run(&wf, &ticket(), o).await.unwrap().unwrap_err();
    assert_eq!(t0.elapsed(), 3 * S, "waited for classify");
    assert_eq!(err.step.as_deref(), Some("mood"));
    let snap = orchestr8_runtime::journal::Snapshot::from_events(&store.events("nff"));
    assert_eq!(snap.steps["classify"], StepState::Succeeded);
    assert_eq!(snap.steps["mood"], StepState::Failed);
    assert_eq!(snap.steps["reply"], StepState::Skipped);
}

#[tokio::test(start_paused = true)]
async fn on_error_continue_leaves_the_slot_empty_and_goes_on() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let registry = BreakerRegistry::new(16);
    let a = agents(
        MockAgent::new("fetch_ticket", "1.0.0").then_ok(json!({"body": "b"})),
        MockAgent::new("classify", "1.0.0").then_ok(json!({"category": "c"})),
        // Hangs past its 5 s timeout: timed_out, then continue.
        MockAgent::new("sentiment", "1.0.0").reply(Reply::hang().ignoring_cancel()),
    );
    let wf = triage(&a, &registry, true, OnError::Continue);
    let mut o = opts();
    o.execution_id = Some("cont".into());
    let out = runtime.run(&wf, &ticket(), o).await.unwrap().unwrap();
    assert_eq!(out["category"], "c");
    let events = store.events("cont");
    let snap = orchestr8_runtime::journal::Snapshot::from_events(&events);
    assert_eq!(snap.execution, Some(ExecutionState::Completed));
    assert_eq!(snap.steps["mood"], StepState::TimedOut);
    assert_eq!(snap.steps["reply"], StepState::Succeeded);
    assert_eq!(a.reply.call_log()[0].input, json!({"category": "c", "mood": null}));
    let failed = events.iter().find(|e| e.event == EventKind::StepFailed).unwrap();
    assert_eq!(failed.error.as_ref().unwrap().kind, ErrorKind::Timeout);
    assert_eq!(failed.duration_ms, Some(5000));
}

#[tokio::test(start_paused = true)]
async fn invalid_input_fails_without_calling_the_agent() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let agent = Arc::new(MockAgent::<Value>::new("a", "1").then_ok(json!(1)));
    let step =
        AgentStep::new("only", agent.clone(), |_: &()| Err("field x is missing".to_string()), |_: &(), _| Ok(()));
    let wf = Workflow::with_registry(
        WorkflowInfo::new("w", "1", "h"),
        Node::sequence(vec![step.node()]),
        |_: &()| Ok(()),
        &BreakerRegistry::new(4),
    );
    let o = ExecutionOptions { execution_id: Some("bad".into()), ..ExecutionOptions::default() };
    let err = runtime.run(&wf, &(), o).await.unwrap().unwrap_err();
    assert_eq!((err.kind, err.attempt), (ErrorKind::InvalidInput, 0));
    assert_eq!(agent.calls(), 0);
    assert_events(&store.events("bad"), &["execution.started", "step.started", "step.failed", "execution.failed"]);
}

#[tokio::test(start_paused = true)]
async fn golden_circuit_events_in_journals() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let registry = BreakerRegistry::new(4);
    let agent = Arc::new(MockAgent::new("flaky", "2.0.0").then_fail("a").then_fail("b").then_ok(json!("ok")));
    let policy = Policy {
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        circuit_breaker: CircuitBreakerPolicy { failure_threshold: 2, reset_timeout: 5 * S, half_open_requests: 1 },
        ..Policy::default()
    };
    let wf = Workflow::with_registry(
        WorkflowInfo::new("w", "1", "h"),
        Node::sequence(vec![AgentStep::new("s", agent.clone(), |_: &()| Ok(json!({})), |_: &(), _| Ok(()))
            .policy(policy)
            .node()]),
        |_: &()| Ok(()),
        &registry,
    );
    let mut all = Vec::new();
    for (i, wait) in [0, 0, 0, 5].into_iter().enumerate() {
        tokio::time::advance(wait * S).await;
        let id = format!("run-{i}");
        let o = ExecutionOptions { execution_id: Some(id.clone()), ..ExecutionOptions::default() };
        let _ = runtime.run(&wf, &(), o).await.unwrap();
        let events = store.events(&id);
        assert_well_formed(&events);
        all.push(events);
    }
    assert_events(
        &all[1],
        &[
            "execution.started",
            "step.started",
            "step.attempt.started",
            "circuit.opened",
            "step.attempt.failed",
            "step.failed",
            "execution.failed",
        ],
    );
    assert_events(&all[2], &["execution.started", "step.started", "step.failed", "execution.failed"]);
    assert_eq!(all[2][2].error.as_ref().unwrap().kind, ErrorKind::CircuitOpen);
    assert_events(
        &all[3],
        &[
            "execution.started",
            "step.started",
            "circuit.half_opened",
            "step.attempt.started",
            "circuit.closed",
            "step.succeeded",
            "execution.completed",
        ],
    );
    let circuit: Vec<_> = all
        .iter()
        .flatten()
        .filter(|e| e.name().starts_with("circuit."))
        .map(|e| (e.name(), e.agent_id.as_deref().unwrap(), e.agent_version().unwrap()))
        .collect();
    assert_eq!(
        circuit,
        [
            ("circuit.opened", "flaky", "2.0.0"),
            ("circuit.half_opened", "flaky", "2.0.0"),
            ("circuit.closed", "flaky", "2.0.0")
        ]
    );
    assert_eq!(agent.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn bus_delivers_events_and_reports_what_a_slow_subscriber_missed() {
    // The largest burst the executor publishes without yielding here is 8 events.
    let bus = EventBus::new(8);
    let runtime = Runtime::new(MemoryStore::new()).with_bus(bus.clone());
    let mut fast = bus.subscribe();
    let mut slow = bus.subscribe();
    let registry = BreakerRegistry::new(16);
    let a = happy_agents();
    let wf = triage(&a, &registry, true, OnError::Fail);
    let handle = runtime.start(wf, ticket(), opts()).unwrap();
    // Drain the fast subscriber while it runs; never read the slow one.
    let reader = tokio::spawn(async move {
        let mut names = Vec::new();
        while let Some(m) = fast.recv().await {
            match m {
                BusMessage::Event(e) => {
                    let done = e.event.is_terminal();
                    names.push(e.name());
                    if done {
                        break;
                    }
                }
                BusMessage::Missed(n) => panic!("fast subscriber missed {n}"),
            }
        }
        names
    });
    handle.wait().await.unwrap();
    let names = reader.await.unwrap();
    assert_eq!(names.len(), 14);
    assert_eq!(names[0], "execution.started");
    // The slow one lost the oldest 6 of 14 and is told so, then gets the last 8.
    assert_eq!(slow.try_recv(), Some(BusMessage::Missed(6)));
    assert_eq!(slow.missed(), 6);
    let mut rest = Vec::new();
    while let Some(BusMessage::Event(e)) = slow.try_recv() {
        rest.push(e.seq);
    }
    assert_eq!(rest, (7..=14).collect::<Vec<u64>>());
}

#[tokio::test(start_paused = true)]
async fn file_journal_is_written_through_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("executions"));
    let runtime = Runtime::new(store.clone());
    let registry = BreakerRegistry::new(16);
    let a = happy_agents();
    let wf = triage(&a, &registry, true, OnError::Fail);
    let mut o = opts();
    o.execution_id = Some("file-1".into());
    runtime.run(&wf, &ticket(), o).await.unwrap().unwrap();
    let path = store.path("file-1");
    assert!(path.ends_with("executions/file-1.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 14);
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["event"], "execution.started");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["executionId"], "file-1");
    assert_eq!(first["workflowId"], "ticket-triage");
    assert!(first["ts"].as_str().unwrap().ends_with('Z'));
    let read = store.read("file-1").unwrap();
    assert!(read.warnings.is_empty());
    assert_well_formed(&read.events);
    assert_eq!(read.snapshot().execution, Some(ExecutionState::Completed));
    // Ids that are not file names are refused.
    assert!(store.create("../escape").is_err());
    assert_eq!(orchestr8_runtime::journal::DEFAULT_JOURNAL_DIR, ".orchestr8/executions");
}
