//! Journal format, torn-line recovery, interruption, and the stores.

use std::io::Write;
use std::sync::Arc;

use orchestr8_runtime::journal::{self, EventKind, JournalEvent, Snapshot, StateName};
use orchestr8_runtime::testing::{assert_well_formed, MockAgent};
use orchestr8_runtime::{
    AgentStep, BreakerRegistry, ErrorKind, ExecutionOptions, ExecutionState, FileStore, JournalStore, MemoryStore,
    Node, Runtime, StepError, Workflow, WorkflowInfo,
};
use serde_json::{json, Value};

async fn run_one(store: impl JournalStore, id: &str, steps: usize) {
    let runtime = Runtime::new(store);
    let agent = Arc::new(MockAgent::<Value>::new("echo", "1").then_ok(json!({"ok": true})));
    let nodes = (0..steps)
        .map(|i| {
            AgentStep::new(format!("s{i}"), agent.clone(), |_: &()| Ok(json!({"n": 1})), |_: &(), _| Ok(())).node()
        })
        .collect();
    let wf = Workflow::with_registry(
        WorkflowInfo::new("w", "1.0.0", "h"),
        Node::sequence(nodes),
        |_: &()| Ok(json!("done")),
        &BreakerRegistry::new(4),
    );
    let o = ExecutionOptions { execution_id: Some(id.into()), ..ExecutionOptions::default() };
    runtime.run(&wf, &(), o).await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn truncated_mid_line_recovers_every_complete_event() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    run_one(store.clone(), "torn", 3).await;
    let path = store.path("torn");
    let full = std::fs::read(&path).unwrap();
    let complete = journal::parse(&full).unwrap().events;
    assert_eq!(complete.len(), 11);
    // Cut at every byte inside the last three lines.
    let line_starts: Vec<usize> =
        std::iter::once(0).chain(full.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1)).collect();
    for cut in line_starts[line_starts.len() - 4]..full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        let read = store.read("torn").unwrap();
        let whole_lines = full[..cut].iter().filter(|b| **b == b'\n').count();
        let mid_line = cut > 0 && full[cut - 1] != b'\n';
        // An unterminated line that still parses (cut just before its '\n') is complete.
        let parses_anyway = mid_line && full[cut] == b'\n';
        let want = whole_lines + usize::from(parses_anyway);
        assert_eq!(read.events, complete[..want], "cut at {cut}");
        assert_eq!(!read.warnings.is_empty(), mid_line && !parses_anyway, "cut at {cut}: {:?}", read.warnings);
    }
    // Torn inside the terminal event: the execution reads as interrupted.
    let last_start = line_starts[line_starts.len() - 2];
    std::fs::write(&path, &full[..last_start + 10]).unwrap();
    let read = store.read("torn").unwrap();
    assert_eq!(read.events.len(), 10);
    assert!(read.warnings[0].contains("incomplete"), "{:?}", read.warnings);
    let snap = read.snapshot();
    assert!(snap.interrupted());
    assert_eq!(snap.error.unwrap().kind, ErrorKind::Interrupted);
}

#[test]
fn a_bad_line_in_the_middle_is_an_error() {
    let good = r#"{"seq":1,"ts":"2026-01-01T00:00:00Z","executionId":"e","event":"execution.started"}"#;
    let text = format!("{good}\nnot json\n{good}\n");
    let err = journal::parse(text.as_bytes()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("line 2"));
}

#[test]
fn event_serialises_in_the_contract_shape() {
    let mut ev = JournalEvent::new("exec-1".into(), EventKind::StepAttemptFailed);
    ev.seq = 7;
    ev.ts = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
    ev.step_id = Some("fetch".into());
    ev.agent_id = Some("fetch_ticket".into());
    ev.attempt = Some(2);
    ev.duration_ms = Some(15);
    ev.error = Some(StepError::new(ErrorKind::Timeout, "step timed out", 2).with_step("fetch".into()));
    let v = serde_json::to_value(&ev).unwrap();
    assert_eq!(
        v,
        json!({
            "seq": 7,
            "ts": "2023-11-14T22:13:20.123000Z",
            "executionId": "exec-1",
            "event": "step.attempt.failed",
            "stepId": "fetch",
            "agentId": "fetch_ticket",
            "attempt": 2,
            "durationMs": 15,
            "error": {"kind": "timeout", "message": "step timed out", "step": "fetch", "attempt": 2}
        })
    );
    let back: JournalEvent = serde_json::from_value(v).unwrap();
    assert_eq!(back, ev);
}

#[test]
fn every_event_and_state_name_is_the_contracts() {
    let names = [
        "execution.started",
        "step.started",
        "step.attempt.started",
        "step.attempt.failed",
        "step.retry.scheduled",
        "step.succeeded",
        "step.failed",
        "step.cancelled",
        "step.skipped",
        "circuit.opened",
        "circuit.half_opened",
        "circuit.closed",
        "execution.completed",
        "execution.failed",
        "execution.cancelled",
    ];
    for n in names {
        let k: EventKind = serde_json::from_value(json!(n)).unwrap();
        assert_eq!(k.as_str(), n);
        assert_eq!(serde_json::to_value(k).unwrap(), json!(n));
    }
    let states = [
        "pending",
        "running",
        "completed",
        "failed",
        "cancelled",
        "executing",
        "retrying",
        "succeeded",
        "timed_out",
        "skipped",
    ];
    for n in states {
        let s: StateName = serde_json::from_value(json!(n)).unwrap();
        assert_eq!(serde_json::to_value(s).unwrap(), json!(n));
    }
    let kinds = [
        "agent_failed",
        "fatal",
        "timeout",
        "circuit_open",
        "invalid_input",
        "invalid_output",
        "cancelled",
        "interrupted",
    ];
    for n in kinds {
        let k: ErrorKind = serde_json::from_value(json!(n)).unwrap();
        assert_eq!(k.as_str(), n);
    }
}

#[tokio::test(start_paused = true)]
async fn memory_store_is_bounded_and_file_store_refuses_reuse() {
    let store = MemoryStore::with_capacity(2);
    for id in ["a", "b", "c"] {
        run_one(store.clone(), id, 1).await;
    }
    assert_eq!(store.execution_ids(), ["b", "c"]);
    assert!(store.read("a").is_err());
    let read = store.read("c").unwrap();
    assert_well_formed(&read.events);
    assert_eq!(read.snapshot().output, Some(json!("done")));

    let dir = tempfile::tempdir().unwrap();
    let files = FileStore::new(dir.path().join("nested/dir"));
    run_one(files.clone(), "x", 1).await;
    // A second execution with the same id must not append to the first's journal.
    assert!(files.create("x").is_err());
}

#[test]
fn snapshot_of_a_journal_without_terminal_event_is_interrupted() {
    let mut started = JournalEvent::new("e".into(), EventKind::ExecutionStarted);
    started.seq = 1;
    let mut step = JournalEvent::new("e".into(), EventKind::StepStarted);
    step.seq = 2;
    step.step_id = Some("s".into());
    step.state = Some(StateName::Executing);
    let snap = Snapshot::from_events(&[started, step]);
    assert_eq!(snap.execution, Some(ExecutionState::Failed));
    assert!(snap.interrupted());
    assert_eq!(snap.steps["s"], orchestr8_runtime::StepState::Executing);
}

#[test]
fn file_writer_writes_per_event_or_per_flush() {
    let dir = tempfile::tempdir().unwrap();
    let lines = |store: &FileStore, id: &str| std::fs::read_to_string(store.path(id)).unwrap().lines().count() as u64;
    let grouped = FileStore::new(dir.path());
    let mut w = grouped.create("grouped").unwrap();
    assert!(w.buffers());
    for seq in 1..=3 {
        w.append(JournalEvent::new("grouped".into(), EventKind::StepStarted)).unwrap();
        assert_eq!(lines(&grouped, "grouped"), 0, "held back until flushed ({seq})");
    }
    w.flush().unwrap();
    assert_eq!(lines(&grouped, "grouped"), 3);
    w.append(JournalEvent::new("grouped".into(), EventKind::StepStarted)).unwrap();
    drop(w);
    assert_eq!(lines(&grouped, "grouped"), 4, "dropping the writer flushes");

    let store = FileStore::new(dir.path()).write_per_event(true);
    let mut w = store.create("lines").unwrap();
    assert!(!w.buffers());
    for seq in 1..=3 {
        let mut ev = JournalEvent::new("lines".into(), EventKind::StepStarted);
        ev.seq = seq;
        w.append(ev).unwrap();
        // Written through: visible to a reader before any sync.
        let text = std::fs::read_to_string(store.path("lines")).unwrap();
        assert_eq!(text.lines().count() as u64, seq);
        assert!(text.ends_with('\n'));
    }
    w.sync().unwrap();
    drop(w);
    let mut f = std::fs::OpenOptions::new().append(true).open(store.path("lines")).unwrap();
    f.write_all(b"{\"seq\":4,\"ts\":\"2026-").unwrap();
    let read = store.read("lines").unwrap();
    assert_eq!(read.events.len(), 3);
    assert_eq!(read.warnings.len(), 1);
}

/// Reads its own execution's journal file while it runs.
struct Peek {
    dir: std::path::PathBuf,
}

impl orchestr8_runtime::Agent for Peek {
    type Input = ();
    type Output = Vec<String>;
    fn id(&self) -> &str {
        "peek"
    }
    fn version(&self) -> &str {
        "1"
    }
    async fn run(
        &self,
        ctx: &orchestr8_runtime::AgentContext<'_>,
        _: (),
    ) -> Result<Vec<String>, orchestr8_runtime::AgentError> {
        // Wait first so the execution task yields, then look again after.
        let before = journal::read_file(self.dir.join(format!("{}.jsonl", ctx.execution_id()))).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let after = journal::read_file(self.dir.join(format!("{}.jsonl", ctx.execution_id()))).unwrap();
        assert_eq!(before.events.len(), after.events.len());
        Ok(before.events.iter().map(|e| e.name().to_string()).collect())
    }
}

#[tokio::test(start_paused = true)]
async fn events_reach_the_file_before_agent_code_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(FileStore::new(dir.path()));
    let peek = Arc::new(Peek { dir: dir.path().to_path_buf() });
    let seen: Arc<std::sync::Mutex<Vec<Vec<String>>>> = Arc::default();
    let steps = (0..2)
        .map(|i| {
            let seen = seen.clone();
            AgentStep::new(
                format!("p{i}"),
                peek.clone(),
                |_: &()| Ok(()),
                move |_: &(), out| {
                    seen.lock().unwrap().push(out);
                    Ok(())
                },
            )
            .node()
        })
        .collect();
    let wf = Workflow::with_registry(
        WorkflowInfo::new("w", "1", "h"),
        Node::sequence(steps),
        |_: &()| Ok(()),
        &BreakerRegistry::new(2),
    );
    runtime.run(&wf, &(), ExecutionOptions::default()).await.unwrap().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], ["execution.started", "step.started", "step.attempt.started"]);
    assert_eq!(
        seen[1],
        [
            "execution.started",
            "step.started",
            "step.attempt.started",
            "step.succeeded",
            "step.started",
            "step.attempt.started"
        ]
    );
}
