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
    let nodes: Vec<_> = (0..steps)
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
    ev.error = Some(Box::new(StepError::new(ErrorKind::Timeout, "step timed out", 2).with_step("fetch".into())));
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
    futures_util::FutureExt::now_or_never(w.sync()).expect("a file store syncs in place").unwrap();
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
        let before = journal::read_execution(&self.dir, ctx.execution_id()).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let after = journal::read_execution(&self.dir, ctx.execution_id()).unwrap();
        assert_eq!(before.events.len(), after.events.len());
        Ok(before.events.iter().map(|e| e.name().to_string()).collect())
    }
}

#[tokio::test(start_paused = true)]
async fn events_reach_the_file_before_agent_code_runs() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let runtime = Runtime::new(FileStore::new(dir));
    let peek = Arc::new(Peek { dir: dir.to_path_buf() });
    let seen: Arc<std::sync::Mutex<Vec<Vec<String>>>> = Arc::default();
    let steps: Vec<_> = (0..2)
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

#[test]
fn hand_written_lines_are_serdes_bytes() {
    use orchestr8_runtime::journal::{EventLabels, LineCache};
    let mut cache = LineCache::default();
    let mut out = Vec::new();
    let base = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_764_000_000_123_456);
    let mut events = Vec::new();
    for (i, kind) in
        [EventKind::ExecutionStarted, EventKind::StepStarted, EventKind::StepRetryScheduled].into_iter().enumerate()
    {
        let mut ev = JournalEvent::at("exec-1".into(), kind, base + std::time::Duration::from_millis(700 * i as u64));
        ev.seq = i as u64 + 1;
        events.push(ev);
    }
    events[0].labels = Some(Box::new(EventLabels {
        workflow_id: Some("w".into()),
        workflow_version: Some("1.0.0".into()),
        definition_hash: Some("sha256:\"quoted\"".into()),
        correlation_id: Some("c\n1".into()),
        agent_version: None,
        signal: Some("sig \"1\"".into()),
        idempotency_key: Some("key \"1\"".into()),
        request_hash: Some("00ff00ff00ff00ff".into()),
        usage: None,
        reason: Some("switch route took case \"a\\b\"".into()),
    }));
    events[0].input = Some(json!({"z": 1, "a": [true, null, 1.5, "é\u{1}"]}).into());
    events[0].state = Some(StateName::Running);
    events[1].step_id = Some("s\\1".into());
    events[1].agent_id = Some("agent".into());
    events[1].input = Some(Value::Null.into());
    events[1].output = Some(json!("done").into());
    events[1].state = Some(StateName::TimedOut);
    events[1].attempt = Some(3);
    events[1].duration_ms = Some(u64::MAX);
    events[1].error = Some(Box::new(StepError::new(ErrorKind::Timeout, "late\t", 3).with_step("s".into())));
    events[2].delay_ms = Some(0);
    // A value kept as its serialised text (how the executor journals typed outputs).
    let kept = (r#"é"\u{1}"#, 1.5, -3, std::collections::BTreeMap::from([("b", vec![2]), ("a", vec![])]));
    events[2].output = Some(orchestr8_runtime::journal::Json::serialize(&kept).unwrap());
    assert_eq!(events[2].output.as_deref(), Some(&serde_json::to_value(kept).unwrap()));
    events[2].labels_mut().agent_version = Some("2.0".into());
    // Another execution id through the same cache, and a time before 1970 (written as the epoch).
    let mut other = JournalEvent::at("other \"id\"".into(), EventKind::StepSkipped, std::time::UNIX_EPOCH);
    other.ts = std::time::UNIX_EPOCH - std::time::Duration::from_secs(1);
    events.push(other);
    for ev in &events {
        out.clear();
        ev.write_line(&mut out, &mut cache);
        let mut want = serde_json::to_vec(ev).unwrap();
        want.push(b'\n');
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&want));
        let back: JournalEvent = serde_json::from_slice(&out).unwrap();
        // (`"input":null` reads back as no input, as it always did.)
        if ev.ts > std::time::UNIX_EPOCH && ev.input.as_deref() != Some(&Value::Null) {
            assert_eq!(&back, ev);
        }
    }
}

/// Reads its execution's journal file as soon as its code runs; the first
/// attempt of every step fails (retryably).
struct Witness {
    dir: std::path::PathBuf,
    seen: std::sync::Mutex<Vec<(String, u32, Vec<JournalEvent>)>>,
}

impl orchestr8_runtime::Agent for Witness {
    type Input = ();
    type Output = ();
    fn id(&self) -> &str {
        "witness"
    }
    fn version(&self) -> &str {
        "1"
    }
    async fn run(&self, ctx: &orchestr8_runtime::AgentContext<'_>, _: ()) -> Result<(), orchestr8_runtime::AgentError> {
        let read = journal::read_file(self.dir.join(format!("{}.jsonl", ctx.execution_id()))).unwrap();
        assert!(read.warnings.is_empty(), "only whole lines reach the file: {:?}", read.warnings);
        self.seen.lock().unwrap().push((ctx.step_id().to_string(), ctx.attempt(), read.events));
        tokio::task::yield_now().await;
        if ctx.attempt() == 1 {
            return Err(orchestr8_runtime::AgentError::retryable("first attempts fail"));
        }
        Ok(())
    }
}

/// The invariant that lets the file journal group events into one write(2):
/// everything recorded before an agent's code runs is in the file when it
/// runs (retries and parallel siblings included), and the bus hands out an
/// event only once it is in the file.
#[tokio::test(start_paused = true)]
async fn everything_recorded_before_agent_code_is_in_the_file() {
    use orchestr8_runtime::{BusMessage, Policy, RetryPolicy};
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let runtime = Runtime::new(store.clone());
    let agent = Arc::new(Witness { dir: dir.path().to_path_buf(), seen: Default::default() });
    let policy = Policy { retry: RetryPolicy { jitter: false, ..RetryPolicy::default() }, ..Policy::default() };
    let step = |id: &str| AgentStep::new(id, agent.clone(), |_: &()| Ok(()), |_: &(), _| Ok(())).policy(policy);
    let wf = Workflow::with_registry(
        WorkflowInfo::new("w", "1", "h"),
        Node::sequence(vec![
            step("first").node(),
            Node::parallel("block", true, vec![step("left").node(), step("right").node()]),
            step("last").node(),
        ]),
        |_: &()| Ok(()),
        &BreakerRegistry::new(2),
    );
    let mut sub = runtime.bus().subscribe();
    let path = store.path("inv");
    let watcher = tokio::spawn(async move {
        let mut n = 0;
        while let Some(BusMessage::Event(ev)) = sub.recv().await {
            let in_file = journal::read_file(&path).unwrap().events;
            assert!(in_file.iter().any(|e| e.seq == ev.seq), "bus had seq {} before the file", ev.seq);
            n += 1;
            if ev.event.is_terminal() {
                break;
            }
        }
        n
    });
    let o = ExecutionOptions { execution_id: Some("inv".into()), ..ExecutionOptions::default() };
    runtime.run(&wf, &(), o).await.unwrap().unwrap();
    let all = store.read("inv").unwrap().events;
    assert_eq!(watcher.await.unwrap(), all.len());
    let seen = agent.seen.lock().unwrap();
    assert_eq!(seen.len(), 8, "two attempts of four steps");
    for (step, attempt, in_file) in seen.iter() {
        // What the agent saw is a prefix of the final journal…
        assert_eq!(in_file[..], all[..in_file.len()], "{step}#{attempt}");
        // …that holds everything recorded before its attempt started, the
        // failure and retry of the attempt before included.
        let started = all
            .iter()
            .position(|e| {
                e.event == EventKind::StepAttemptStarted
                    && e.step_id.as_deref() == Some(step)
                    && e.attempt == Some(*attempt)
            })
            .unwrap();
        assert!(in_file.len() > started, "{step}#{attempt} ran before its attempt.started reached the file");
        if *attempt == 2 {
            assert!(in_file
                .iter()
                .any(|e| e.event == EventKind::StepRetryScheduled && e.step_id.as_deref() == Some(step)));
        }
    }
}

/// A page parses only itself and the last line: lines before `after` and
/// after the page are skipped by their `seq` prefix (here they are not even
/// JSON, so parsing one would show up as a warning).
#[test]
fn a_page_parses_only_what_it_returns() {
    let line = |seq: u64, event: &str| {
        format!(r#"{{"seq":{seq},"ts":"2026-01-01T00:00:00.000Z","executionId":"e","event":"{event}"}}"#)
    };
    let mut text = String::new();
    for seq in 1..=3 {
        text += &format!("{{\"seq\":{seq},not json\n");
    }
    text += &(line(4, "step.started") + "\n" + &line(5, "step.succeeded") + "\n");
    for seq in 6..=9 {
        text += &format!("{{\"seq\":{seq},not json either\n");
    }
    text += &(line(10, "execution.completed") + "\n");
    let page = orchestr8_runtime::journal::parse_page(text.as_bytes(), 3, 2);
    assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
    assert!(page.more && page.complete, "{page:?}");
    assert!(page.warnings.is_empty(), "nothing outside the page was parsed: {:?}", page.warnings);
    let rest = orchestr8_runtime::journal::parse_page(
        format!("{}\n{}\n", line(9, "step.started"), line(10, "execution.failed")).as_bytes(),
        9,
        5,
    );
    assert_eq!((rest.events.len(), rest.more, rest.complete), (1, false, true));
    // A full page followed by a torn last line (a crash mid-write): nothing more to read.
    let torn = format!("{}\n{{\"se", line(1, "execution.started"));
    let page = orchestr8_runtime::journal::parse_page(torn.as_bytes(), 0, 1);
    assert_eq!((page.events.len(), page.more), (1, false), "{page:?}");
    let open = orchestr8_runtime::journal::parse_page(format!("{}\n", line(1, "execution.started")).as_bytes(), 0, 5);
    assert_eq!((open.events.len(), open.more, open.complete), (1, false, false));
}

/// A typed value kept as text reads back as a journal file's field does:
/// up to `MAX_READ_DEPTH` levels, deeper left out (serde_json writes any
/// depth but reads 128 levels by default: a 300-level value read back null).
#[test]
fn a_value_kept_as_text_reads_back_as_deep_as_a_journal_file_keeps() {
    use orchestr8_runtime::journal::{Json, MAX_READ_DEPTH};
    let nested = |levels: usize| {
        let mut v = serde_json::json!("leaf");
        for _ in 0..levels {
            v = serde_json::json!([v]);
        }
        v
    };
    let deep = nested(300);
    let kept = Json::serialize(&deep).unwrap();
    assert!(kept.value() == &deep, "read back as {}", if kept.is_null() { "null" } else { "another value" });
    assert!(Json::serialize(&nested(MAX_READ_DEPTH)).unwrap().value() == &nested(MAX_READ_DEPTH));
    assert!(Json::serialize(&nested(MAX_READ_DEPTH + 1)).unwrap().is_null());
}

/// A `RawValue` in a typed output is written as it was given, line breaks
/// and all; the journal line it goes into must stay one line.
#[test]
fn a_raw_value_with_line_breaks_stays_on_one_journal_line() {
    use orchestr8_runtime::journal::{Json, LineCache};
    let raw = serde_json::value::RawValue::from_string("{\n  \"a\": [1,\r\n 2]\n}".to_owned()).unwrap();
    let mut ev = JournalEvent::new("e".into(), EventKind::StepSucceeded);
    // Serialised directly (not through a `Value`, which would re-write it).
    ev.output = Some(Json::serialize(&std::collections::BTreeMap::from([("raw", raw)])).unwrap());
    let mut line = Vec::new();
    ev.write_line(&mut line, &mut LineCache::default());
    let text = String::from_utf8(line).unwrap();
    assert_eq!(text.matches('\n').count(), 1, "{text:?}");
    assert!(text.contains(r#""output":{"raw":{"a":[1,2]}}"#), "{text}");
}
