//! Resuming an execution from its journal (issue 17): steps that succeeded
//! are read back, not run again; what was in flight runs again; the journal
//! goes on with `execution.resumed`; a changed workflow, an ended or damaged
//! journal and outputs that no longer fit are refused before anything runs.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use orchestr8_runtime::codegen::{slot, store};
use orchestr8_runtime::journal::{self, EventKind, JournalEvent, JournalRead, JournalWriter};
use orchestr8_runtime::testing::{assert_well_formed, event_names};
use orchestr8_runtime::{
    Agent, AgentContext, AgentError, AgentStep, BreakerRegistry, ExecutionOptions, FileStore, JournalStore,
    MemoryStore, Node, OnError, Policy, Resume, ResumeError, RetryPolicy, Runtime, Workflow, WorkflowInfo,
};
use serde_json::{json, Value};

/// Every agent call, by step, with the idempotency key it was given; and
/// the step that hangs (the process "dies" there).
#[derive(Default)]
struct Calls {
    log: Mutex<Vec<(String, String)>>,
    hang_in: Mutex<Option<String>>,
    /// Agent calls, successes journaled and checkpoints, in order (see [`Tracing`]).
    order: Mutex<Vec<String>>,
}

impl Calls {
    fn count(&self, step: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|(s, _)| s == step).count()
    }
    fn keys(&self, step: &str) -> Vec<String> {
        self.log.lock().unwrap().iter().filter(|(s, _)| s == step).map(|(_, k)| k.clone()).collect()
    }
}

/// Answers `{"step": STEP, "n": input.n + 1}`; fails for step `bad`.
struct Counting(Arc<Calls>);

impl Agent for Counting {
    type Input = Value;
    type Output = Value;
    fn id(&self) -> &str {
        "count"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, ctx: &AgentContext<'_>, input: Value) -> Result<Value, AgentError> {
        let step = ctx.step_id().to_owned();
        self.0.log.lock().unwrap().push((step.clone(), ctx.idempotency_key()));
        self.0.order.lock().unwrap().push(format!("agent {step}"));
        if self.0.hang_in.lock().unwrap().as_deref() == Some(step.as_str()) {
            std::future::pending::<()>().await;
        }
        if step == "bad" {
            return Err(AgentError::fatal("bad is always bad"));
        }
        Ok(json!({"step": step, "n": input["n"].as_i64().unwrap_or(0) + 1}))
    }
}

#[derive(Default)]
struct State {
    input: Value,
    out: BTreeMap<&'static str, OnceLock<Value>>,
}

const STEPS: [&str; 5] = ["fetch", "left", "right", "bad", "merge"];

/// fetch → parallel(left, right) → bad (onError: continue) → merge.
fn workflow(calls: &Arc<Calls>, hash: &str) -> Workflow<State, Value> {
    let agent = Arc::new(Counting(calls.clone()));
    // No timeout before the test's "crash" (an hour of virtual time).
    let policy = Policy {
        timeout: Duration::from_secs(7200),
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        ..Policy::default()
    };
    let step = |id: &'static str, from: &'static str| {
        AgentStep::new(
            id,
            agent.clone(),
            move |s: &State| Ok(if from.is_empty() { s.input.clone() } else { slot(&s.out[from], from)?.clone() }),
            move |s: &State, out| store(&s.out[id], id, out),
        )
        .policy(policy)
    };
    let root = Node::sequence(vec![
        step("fetch", "").node(),
        Node::parallel("both", true, vec![step("left", "fetch").node(), step("right", "fetch").node()]),
        step("bad", "fetch").on_error(OnError::Continue).node(),
        step("merge", "right").node(),
    ]);
    Workflow::with_registry(
        WorkflowInfo::new("resumable", "1.0.0", hash),
        root,
        |s: &State| Ok(json!({"left": slot(&s.out["left"], "left")?, "merge": slot(&s.out["merge"], "merge")?})),
        &BreakerRegistry::new(8),
    )
}

fn state() -> State {
    State { input: json!({"n": 1}), out: STEPS.iter().map(|s| (*s, OnceLock::new())).collect() }
}

fn opts(id: &str) -> ExecutionOptions {
    ExecutionOptions { execution_id: Some(id.into()), input: Some(json!({"n": 1})), ..ExecutionOptions::default() }
}

/// Runs until the agent of `hang_in` is called, then drops the execution
/// (as a killed process would stop), leaving its journal unfinished.
async fn crash_in(runtime: &Runtime, calls: &Arc<Calls>, id: &str, hang_in: &str) {
    *calls.hang_in.lock().unwrap() = Some(hang_in.to_owned());
    let wf = workflow(calls, "sha256:1");
    let s = state();
    let run = runtime.run(&wf, &s, opts(id));
    assert!(tokio::time::timeout(Duration::from_secs(3600), run).await.is_err(), "it hung in {hang_in}");
    *calls.hang_in.lock().unwrap() = None;
}

async fn resume(runtime: &Runtime, calls: &Arc<Calls>, id: &str) -> Result<Value, String> {
    let wf = workflow(calls, "sha256:1");
    let point = Resume::from_journal(&runtime.store().read(id).unwrap()).map_err(|e| e.to_string())?;
    point.check_definition(wf.info(), &wf.step_ids(), false).map_err(|e| e.to_string())?;
    let s = state();
    let exec = runtime.resume(&wf, &s, &point, ExecutionOptions::default()).map_err(|e| e.to_string())?;
    exec.run(&wf, &s).await.map_err(|e| e.to_string())
}

#[tokio::test(start_paused = true)]
async fn a_resumed_execution_runs_only_what_had_not_ended_and_ends_as_an_uninterrupted_one() {
    let uninterrupted = {
        let calls = Arc::new(Calls::default());
        let runtime = Runtime::new(MemoryStore::new());
        runtime.run(&workflow(&calls, "sha256:1"), &state(), opts("whole")).await.unwrap().unwrap()
    };
    for hang_in in ["fetch", "right", "merge"] {
        let calls = Arc::new(Calls::default());
        let runtime = Runtime::new(MemoryStore::new());
        crash_in(&runtime, &calls, "e1", hang_in).await;
        let before = runtime.store().read("e1").unwrap().events.len() as u64;
        assert_eq!(resume(&runtime, &calls, "e1").await.unwrap(), uninterrupted, "crashed in {hang_in}");
        for step in STEPS {
            let want = if step == hang_in { 2 } else { 1 };
            assert_eq!(calls.count(step), want, "{step} (crashed in {hang_in})");
            // The same key on the first call and after the resume.
            assert!(calls.keys(step).iter().all(|k| *k == format!("e1/{step}")), "{:?}", calls.keys(step));
        }
        let events = runtime.store().read("e1").unwrap().events;
        assert_well_formed(&events);
        let resumed = events.iter().find(|e| e.event == EventKind::ExecutionResumed).expect("execution.resumed");
        assert_eq!(resumed.seq, before + 1, "the journal goes on after its last event");
        assert_eq!(resumed.definition_hash(), Some("sha256:1"));
        // After the resume only the steps that had not ended appear.
        let after: Vec<_> = events.iter().filter(|e| e.seq > before).filter_map(|e| e.step_id.as_deref()).collect();
        assert!(after.contains(&hang_in), "{after:?}");
        assert!(!after.contains(&"fetch") || hang_in == "fetch", "{after:?}");
        assert_eq!(
            Resume::from_journal(&runtime.store().read("e1").unwrap()).unwrap_err().to_string(),
            "execution e1 has already ended (completed); there is nothing to resume"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_changed_workflow_is_refused_unless_forced_and_an_ill_fitting_output_resumes_nothing() {
    let calls = Arc::new(Calls::default());
    let runtime = Runtime::new(MemoryStore::new());
    crash_in(&runtime, &calls, "e2", "merge").await;
    let read = runtime.store().read("e2").unwrap();
    let point = Resume::from_journal(&read).unwrap();
    assert_eq!(point.done_steps(), ["bad", "fetch", "left", "right"]);

    let changed = workflow(&calls, "sha256:2");
    let err = point.check_definition(changed.info(), &["fetch", "merge"], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "execution e2 was started by a different definition of this workflow (journal: version 1.0.0, \
         definition hash sha256:1; this program: version 1.0.0, definition hash sha256:2); steps done in the \
         journal that this program does not have: bad, left, right; resume with --force to run the rest with \
         this program's definition"
    );
    point.check_definition(changed.info(), &changed.step_ids(), true).unwrap();

    // `left`'s journaled output no longer fits: a workflow whose `left` outputs a number.
    let mut events = read.events.clone();
    let left = events.iter_mut().find(|e| e.event == EventKind::StepSucceeded && e.step_id.as_deref() == Some("left"));
    left.unwrap().output = Some(json!("not a number").into());
    let point = Resume::from_journal(&JournalRead { events, warnings: Vec::new() }).unwrap();
    let typed = Workflow::with_registry(
        WorkflowInfo::new("resumable", "1.0.0", "sha256:1"),
        Node::sequence(vec![AgentStep::new("left", Arc::new(Typed), |_: &()| Ok(()), |_: &(), _: i64| Ok(())).node()]),
        |_: &()| Ok(json!(null)),
        &BreakerRegistry::new(8),
    );
    let err = runtime.resume(&typed, &(), &point, ExecutionOptions::default()).unwrap_err();
    assert!(matches!(err, ResumeError::Output { ref step, .. } if step == "left"), "{err}");
    assert!(err.to_string().contains("invalid type: string \"not a number\", expected i64"), "{err}");
    assert_eq!(runtime.store().read("e2").unwrap().events.len(), read.events.len(), "nothing journaled");
}

/// An agent whose output is a number (for an output that no longer fits).
struct Typed;

impl Agent for Typed {
    type Input = ();
    type Output = i64;
    fn id(&self) -> &str {
        "typed"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, _: &AgentContext<'_>, _: ()) -> Result<i64, AgentError> {
        Ok(1)
    }
}

#[test]
fn damaged_or_ended_journals_resume_nothing_and_say_why() {
    let ev = |seq, kind| {
        let mut e = JournalEvent::new("e3".into(), kind);
        e.seq = seq;
        e
    };
    let read = |events: Vec<JournalEvent>| JournalRead { events, warnings: Vec::new() };
    let err = |events| Resume::from_journal(&read(events)).unwrap_err().to_string();
    assert_eq!(
        err(vec![ev(1, EventKind::StepStarted)]),
        "the journal of execution e3 cannot be resumed: it begins with step.started (seq 1), not with \
         execution.started (seq 1)"
    );
    assert_eq!(
        err(vec![ev(1, EventKind::ExecutionStarted), ev(3, EventKind::StepStarted)]),
        "the journal of execution e3 cannot be resumed: event 2 is seq 3 of execution e3: the journal is not one \
         unbroken run of seq 1, 2, 3…"
    );
    assert_eq!(
        err(vec![ev(1, EventKind::ExecutionStarted), ev(2, EventKind::ExecutionCancelled)]),
        "execution e3 has already ended (cancelled); there is nothing to resume"
    );
    assert_eq!(
        Resume::from_journal(&read(Vec::new())).unwrap_err().to_string(),
        "the journal of execution (unknown) cannot be resumed: it holds no event"
    );
}

/// A file journal torn by a machine crash (its last line half written) is
/// cut back to its last whole line and goes on from there, readable.
#[tokio::test(start_paused = true)]
async fn a_torn_file_journal_is_cut_to_its_last_whole_line_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let runtime = Runtime::new(store.clone());
    let calls = Arc::new(Calls::default());
    crash_in(&runtime, &calls, "e4", "merge").await;
    let path = store.path("e4");
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, [&whole[..], b"{\"seq\":99,\"ev"].concat()).unwrap();
    let read = journal::read_file(&path).unwrap();
    assert_eq!(read.warnings.len(), 1, "the torn line is dropped: {:?}", read.warnings);

    let out = resume(&runtime, &calls, "e4").await.unwrap();
    assert_eq!(out["merge"]["n"], 4);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(&whole), "the whole lines are kept as they were");
    let read = journal::parse(&bytes).unwrap();
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    assert_well_formed(&read.events);
    assert_eq!(calls.count("fetch"), 1);
}

/// A file journal whose last line is whole but lacks its newline (the
/// reader keeps that event) keeps it on reopen: the resume goes on after it,
/// on a line of its own.
#[tokio::test(start_paused = true)]
async fn a_whole_last_line_without_its_newline_is_kept_and_resumed_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let runtime = Runtime::new(store.clone());
    let calls = Arc::new(Calls::default());
    crash_in(&runtime, &calls, "e6", "merge").await;
    let path = store.path("e6");
    let whole = std::fs::read(&path).unwrap();
    let unterminated = &whole[..whole.len() - 1];
    std::fs::write(&path, unterminated).unwrap();
    let before = journal::read_file(&path).unwrap();
    assert!(before.warnings.is_empty(), "{:?}", before.warnings);

    let out = resume(&runtime, &calls, "e6").await.unwrap();
    assert_eq!(out["merge"]["n"], 4);
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(&whole), "the last line is kept and ended with its newline");
    let read = journal::parse(&bytes).unwrap();
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    assert_well_formed(&read.events);
    assert_eq!(read.events[before.events.len()].event, EventKind::ExecutionResumed);
}

/// fetch → parallel fail-fast(left, bad) → merge: `bad` always fails.
fn fail_fast_workflow(calls: &Arc<Calls>) -> Workflow<State, Value> {
    let agent = Arc::new(Counting(calls.clone()));
    let policy = Policy {
        timeout: Duration::from_secs(7200),
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        ..Policy::default()
    };
    let step = |id: &'static str, from: &'static str| {
        AgentStep::new(
            id,
            agent.clone(),
            move |s: &State| Ok(if from.is_empty() { s.input.clone() } else { slot(&s.out[from], from)?.clone() }),
            move |s: &State, out| store(&s.out[id], id, out),
        )
        .policy(policy)
        .node()
    };
    let root = Node::sequence(vec![
        step("fetch", ""),
        Node::parallel("both", true, vec![step("left", "fetch"), step("bad", "fetch")]),
        step("merge", "left"),
    ]);
    Workflow::with_registry(
        WorkflowInfo::new("fail-fast", "1.0.0", "sha256:1"),
        root,
        |s: &State| Ok(json!({"merge": slot(&s.out["merge"], "merge")?})),
        &BreakerRegistry::new(8),
    )
}

/// A fail-fast parallel block one of whose branches had failed before the
/// crash is decided: on resume it fails at once, and its other branches'
/// agents are not called again (they would have been cancelled).
#[tokio::test(start_paused = true)]
async fn a_fail_fast_block_with_a_failed_branch_fails_on_resume_without_calling_the_others() {
    let calls = Arc::new(Calls::default());
    let wf = fail_fast_workflow(&calls);
    // A whole run (`left` in flight when `bad` fails), cut after `bad`'s
    // failure: the journal of a process that crashed right then.
    *calls.hang_in.lock().unwrap() = Some("left".into());
    let whole = Runtime::new(MemoryStore::new());
    let err = whole.run(&wf, &state(), opts("e7")).await.unwrap().unwrap_err().to_string();
    *calls.hang_in.lock().unwrap() = None;
    let events = whole.store().read("e7").unwrap().events;
    let cut = events.iter().position(|e| e.event == EventKind::StepFailed && e.step_id.as_deref() == Some("bad"));
    let events = &events[..=cut.expect("bad failed")];
    assert!(events.iter().any(|e| e.event == EventKind::StepStarted && e.step_id.as_deref() == Some("left")));
    let store = MemoryStore::new();
    let mut writer = store.create("e7").unwrap();
    events.iter().for_each(|e| writer.append(e.clone()).unwrap());
    drop(writer);
    assert_eq!((calls.count("left"), calls.count("bad")), (1, 1));

    let runtime = Runtime::new(store);
    let point = Resume::from_journal(&runtime.store().read("e7").unwrap()).unwrap();
    let s = state();
    let exec = runtime.resume(&wf, &s, &point, ExecutionOptions::default()).unwrap();
    let resumed_err = exec.run(&wf, &s).await.unwrap_err().to_string();
    assert_eq!(resumed_err, err, "it fails as the whole run did");
    assert_eq!((calls.count("left"), calls.count("bad"), calls.count("merge")), (1, 1, 0), "no agent called again");
    let journal = runtime.store().read("e7").unwrap().events;
    assert_well_formed(&journal);
    let after: Vec<_> = journal[events.len()..].iter().map(|e| (e.name(), e.step_id.as_deref())).collect();
    assert!(!after.iter().any(|(n, _)| *n == "step.started"), "{after:?}");
}

/// Execution ids name files in the store's directory: an id that is a path
/// (`../x`, `a/b`) is refused by every method, not read from elsewhere.
#[test]
fn a_file_store_reads_and_reopens_only_ids_that_are_plain_file_names() {
    let dir = tempfile::tempdir().unwrap();
    let journal = |dir: &std::path::Path, id: &str| {
        let mut w = FileStore::new(dir).create(id).unwrap();
        let mut ev = JournalEvent::new(id.into(), EventKind::ExecutionStarted);
        ev.seq = 1;
        w.append(ev).unwrap();
    };
    let store = FileStore::new(dir.path().join("journal"));
    journal(dir.path(), "x");
    journal(&dir.path().join("journal/a"), "b");
    for id in ["../x", "a/b"] {
        let read = store.read(id).map(|r| r.events.len());
        assert_eq!(read.as_ref().map_err(io::Error::kind), Err(io::ErrorKind::InvalidInput), "read {id}: {read:?}");
        let err = store.read(id).unwrap_err().to_string();
        assert!(err.contains("cannot name a journal file"), "{err}");
        assert_eq!(store.reopen(id).err().map(|e| e.kind()), Some(io::ErrorKind::InvalidInput), "reopen {id}");
    }
}

/// A file journal is locked while a writer has it open: it cannot be
/// reopened (resumed) until that writer is gone.
#[test]
fn a_file_journal_being_written_cannot_be_reopened_until_its_writer_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path());
    let writer = store.create("e8").unwrap();
    let err = store.reopen("e8").err().expect("refused while it is written");
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    assert!(err.to_string().contains("locked by another writer"), "{err}");
    drop(writer);
    let reopened = store.reopen("e8").unwrap();
    assert_eq!(store.reopen("e8").err().map(|e| e.kind()), Some(io::ErrorKind::WouldBlock));
    drop(reopened);
    store.reopen("e8").unwrap();
}

/// A resume cut short in turn resumes again: the journal goes on after each
/// `execution.resumed`, `seq` unbroken, and ends with an uninterrupted
/// run's output; only what had not ended ran each time.
#[tokio::test(start_paused = true)]
async fn a_resume_cut_short_resumes_again_from_where_it_ended() {
    let uninterrupted = {
        let calls = Arc::new(Calls::default());
        let runtime = Runtime::new(MemoryStore::new());
        runtime.run(&workflow(&calls, "sha256:1"), &state(), opts("whole")).await.unwrap().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(FileStore::new(dir.path()));
    let calls = Arc::new(Calls::default());
    let len = || runtime.store().read("e9").unwrap().events.len() as u64;
    crash_in(&runtime, &calls, "e9", "right").await;
    let first = len();
    // The first resume's process ends in `merge`.
    *calls.hang_in.lock().unwrap() = Some("merge".into());
    let cut = tokio::time::timeout(Duration::from_secs(3600), resume(&runtime, &calls, "e9")).await;
    assert!(cut.is_err(), "it hung in merge");
    *calls.hang_in.lock().unwrap() = None;
    let second = len();
    let point = Resume::from_journal(&runtime.store().read("e9").unwrap()).unwrap();
    assert_eq!((point.last_seq(), point.done_steps()), (second, vec!["bad", "fetch", "left", "right"]));

    assert_eq!(resume(&runtime, &calls, "e9").await.unwrap(), uninterrupted);
    let counts: Vec<usize> = STEPS.iter().map(|s| calls.count(s)).collect();
    assert_eq!(counts, [1, 1, 2, 1, 2], "{STEPS:?}: only the steps in flight ran again");
    let events = runtime.store().read("e9").unwrap().events;
    assert_well_formed(&events);
    let resumed: Vec<u64> = events.iter().filter(|e| e.event == EventKind::ExecutionResumed).map(|e| e.seq).collect();
    assert_eq!(resumed, [first + 1, second + 1], "each resume goes on after the journal's last event");
    assert_eq!(events.last().map(|e| e.event), Some(EventKind::ExecutionCompleted));
}

/// The durability rule: a step's success is made durable before any later
/// agent code starts (a resume never runs again a step another built on).
#[tokio::test(start_paused = true)]
async fn a_success_is_checkpointed_before_the_next_agent_runs() {
    let calls = Arc::new(Calls::default());
    let runtime = Runtime::new(Tracing { inner: MemoryStore::new(), calls: calls.clone() });
    let wf = workflow(&calls, "sha256:1");
    let out = runtime.run(&wf, &state(), opts("e5")).await.unwrap().unwrap();
    assert_eq!(out["merge"]["n"], 4);
    let order = calls.order.lock().unwrap().clone();
    let at = |what: &str| order.iter().position(|o| o == what).unwrap_or_else(|| panic!("{what} in {order:?}"));
    for (done, next) in [("fetch", "left"), ("fetch", "right"), ("right", "merge"), ("left", "merge")] {
        let (succeeded, next_called) = (at(&format!("succeeded {done}")), at(&format!("agent {next}")));
        assert!(
            order[succeeded..next_called].iter().any(|o| o == "checkpoint"),
            "no checkpoint between {done}'s success and {next}'s agent call: {order:?}"
        );
    }
    let names = event_names(&runtime.store().read("e5").unwrap().events);
    assert_eq!(names.first(), Some(&"execution.started"));
}

/// A store that records the successes appended and the checkpoints, in
/// order with the agents' calls.
struct Tracing {
    inner: MemoryStore,
    calls: Arc<Calls>,
}

struct TracingWriter {
    inner: Box<dyn JournalWriter>,
    calls: Arc<Calls>,
}

impl JournalStore for Tracing {
    fn create(&self, id: &str) -> io::Result<Box<dyn JournalWriter>> {
        Ok(Box::new(TracingWriter { inner: self.inner.create(id)?, calls: self.calls.clone() }))
    }
    fn read(&self, id: &str) -> io::Result<JournalRead> {
        self.inner.read(id)
    }
}

impl JournalWriter for TracingWriter {
    fn append(&mut self, event: JournalEvent) -> io::Result<()> {
        if event.event == EventKind::StepSucceeded {
            let step = event.step_id.as_deref().unwrap_or("-");
            self.calls.order.lock().unwrap().push(format!("succeeded {step}"));
        }
        self.inner.append(event)
    }
    fn checkpoint(&mut self) -> io::Result<()> {
        self.calls.order.lock().unwrap().push("checkpoint".into());
        self.inner.checkpoint()
    }
    fn sync(&mut self) -> journal::Durable {
        self.inner.sync()
    }
}
