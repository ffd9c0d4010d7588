//! The server's journal store: many executions in one log, group commit,
//! reading back by index, by scan after a restart, and across segments.

use std::io::Write;
use std::sync::Arc;

use futures_util::future::join_all;
use orchestr8_runtime::journal::{self, EventKind, JournalEvent, LogOptions, LogStore, StateName};
use orchestr8_runtime::testing::{assert_well_formed, MockAgent, Reply};
use orchestr8_runtime::{
    AgentStep, BreakerRegistry, ErrorKind, ExecutionOptions, ExecutionState, FileStore, JournalStore, MemoryStore,
    Node, Policy, Runtime, StepState, Workflow, WorkflowInfo,
};
use serde_json::{json, Value};

fn workflow(steps: usize) -> Arc<Workflow<(), Value>> {
    workflow_calling(MockAgent::<Value>::new("echo", "1").then_ok(json!({"ok": true})), steps)
}

fn workflow_calling(agent: MockAgent<Value>, steps: usize) -> Arc<Workflow<(), Value>> {
    let agent = Arc::new(agent);
    let nodes: Vec<_> = (0..steps)
        .map(|i| {
            AgentStep::new(format!("s{i}"), agent.clone(), move |_: &()| Ok(json!({"n": i})), |_: &(), _| Ok(())).node()
        })
        .collect();
    Arc::new(Workflow::with_registry(
        WorkflowInfo::new("w", "1.0.0", "h"),
        Node::sequence(nodes),
        |_: &()| Ok(json!("done")),
        &BreakerRegistry::new(4),
    ))
}

fn opts(id: &str) -> ExecutionOptions {
    ExecutionOptions { execution_id: Some(id.into()), ..ExecutionOptions::default() }
}

/// Everything but the times (real time passes differently from run to run).
fn without_times(events: &[JournalEvent]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap();
            let fields = v.as_object_mut().unwrap();
            fields.remove("ts");
            fields.remove("durationMs");
            v
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_executions_interleave_in_one_log_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    let runtime = Runtime::new(store.clone());
    // Each call takes a moment (real time), so the 50 executions are all
    // under way at once and their lines must interleave.
    let slow = Reply::ok(json!({"ok": true})).after(std::time::Duration::from_millis(2));
    let wf = workflow_calling(MockAgent::<Value>::new("echo", "1").reply(slow), 3);
    let ids: Vec<String> = (0..50).map(|i| format!("exec-{i}")).collect();
    let handles: Vec<_> = ids.iter().map(|id| runtime.start(wf.clone(), (), opts(id)).unwrap()).collect();
    for r in join_all(handles).await {
        assert_eq!(r.unwrap(), json!("done"));
    }

    // The same events a memory journal holds for the same workflow.
    let memory = MemoryStore::new();
    Runtime::new(memory.clone()).run(&wf, &(), opts("exec-0")).await.unwrap().unwrap();
    let expected = without_times(&memory.events("exec-0"));
    for id in &ids {
        let read = store.read(id).unwrap();
        assert!(read.warnings.is_empty());
        assert_well_formed(&read.events);
        let mut got = without_times(&read.events);
        for ev in &mut got {
            ev["executionId"] = json!("exec-0");
            if ev.get("correlationId").is_some() {
                ev["correlationId"] = json!("exec-0");
            }
        }
        assert_eq!(got, expected, "{id}");
        assert_eq!(read.snapshot().execution, Some(ExecutionState::Completed));
    }

    // One segment holds every line, each a contract line of some execution.
    let segments = store.segments();
    assert_eq!(segments.len(), 1);
    let text = std::fs::read_to_string(&segments[0]).unwrap();
    assert_eq!(text.lines().count(), 50 * expected.len());
    assert!(text.ends_with('\n'));
    let parsed = journal::parse(text.as_bytes()).unwrap();
    assert_eq!(parsed.events.len(), 50 * expected.len());
    // ... and they interleave: some execution's lines are not one block.
    let mut blocks = std::collections::HashMap::<&str, usize>::new();
    let mut previous = "";
    for e in &parsed.events {
        if *e.execution_id != *previous {
            *blocks.entry(&e.execution_id).or_default() += 1;
            previous = &e.execution_id;
        }
    }
    assert!(blocks.values().any(|&n| n > 1), "every execution wrote one block: nothing ran concurrently");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_store_finds_old_executions_and_reports_unfinished_ones_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::new(dir.path()).unwrap();
        Runtime::new(store.clone()).run(&workflow(2), &(), opts("finished")).await.unwrap().unwrap();
        // An execution the process never finished: its writer is dropped mid-run.
        let mut w = store.create("unfinished").unwrap();
        let mut ev = JournalEvent::new("unfinished".into(), EventKind::ExecutionStarted);
        ev.seq = 1;
        w.append(ev).unwrap();
        let mut ev = JournalEvent::new("unfinished".into(), EventKind::StepStarted);
        ev.seq = 2;
        ev.step_id = Some("s0".into());
        w.append(ev).unwrap();
    }
    let restarted = LogStore::new(dir.path()).unwrap();
    let finished = restarted.read("finished").unwrap();
    assert_well_formed(&finished.events);
    assert_eq!(finished.snapshot().output, Some(json!("done")));

    let unfinished = restarted.read("unfinished").unwrap();
    assert_eq!(unfinished.events.len(), 2);
    let snapshot = unfinished.snapshot();
    assert_eq!(snapshot.execution, Some(ExecutionState::Failed));
    assert_eq!(snapshot.error.unwrap().kind, ErrorKind::Interrupted);

    let missing = restarted.read("never-ran").unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    // The same lookup, from outside any store (what `orchestr8 inspect` does).
    assert_eq!(journal::read_execution(dir.path(), "finished").unwrap().events, finished.events);
}

#[tokio::test(start_paused = true)]
async fn segments_rotate_and_a_journal_spanning_them_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions { segment_bytes: 600, ..LogOptions::default() };
    let store = LogStore::with_options(dir.path(), options).unwrap();
    let runtime = Runtime::new(store.clone());
    runtime.run(&workflow(6), &(), opts("long")).await.unwrap().unwrap();
    runtime.run(&workflow(1), &(), opts("short")).await.unwrap().unwrap();
    let segments = store.segments();
    assert!(segments.len() > 2, "{segments:?}");
    let mut names = segments.clone();
    names.sort();
    assert_eq!(names, segments, "segment names sort by age");

    let indexed = store.read("long").unwrap();
    assert_well_formed(&indexed.events);
    assert_eq!(indexed.events.len(), 2 + 6 * 3);
    let scanned = LogStore::new(dir.path()).unwrap().read("long").unwrap();
    assert_eq!(scanned.events, indexed.events);
    assert_eq!(store.read("short").unwrap().snapshot().output, Some(json!("done")));

    // Full segments are closed once synced: one descriptor, not one per segment.
    #[cfg(target_os = "linux")]
    {
        let log_dir = dir.path().join(journal::LOG_DIR).canonicalize().unwrap();
        let open_in_log = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok())
            .filter(|target| target.starts_with(&log_dir))
            .count();
        assert!(open_in_log <= 1, "{open_in_log} segment files open");
    }
    // Every segment holds whole lines.
    for segment in &segments {
        let bytes = std::fs::read(segment).unwrap();
        assert!(bytes.ends_with(b"\n"), "{}", segment.display());
        assert!(journal::parse(&bytes).unwrap().warnings.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn a_torn_line_in_the_log_is_a_warning_and_spares_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    Runtime::new(store.clone()).run(&workflow(1), &(), opts("a")).await.unwrap().unwrap();
    let segment = store.segments().pop().unwrap();
    drop(store);
    // A crash cut the last line of another execution's write.
    let mut f = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
    f.write_all(b"{\"seq\":1,\"ts\":\"2026-11-24T00:00:00Z\",\"executionId\":\"b\",\"event\":\"execu").unwrap();
    drop(f);

    let restarted = LogStore::new(dir.path()).unwrap();
    let a = restarted.read("a").unwrap();
    assert!(a.warnings.is_empty());
    assert_eq!(a.snapshot().execution, Some(ExecutionState::Completed));
    let b = restarted.read("b").unwrap();
    assert!(b.events.is_empty());
    assert_eq!(b.warnings.len(), 1, "{:?}", b.warnings);
    assert!(b.warnings[0].contains("incomplete"), "{}", b.warnings[0]);
}

#[tokio::test(start_paused = true)]
async fn ids_are_checked_and_never_reused_and_run_journals_are_found_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    let _x = store.create("x").unwrap();
    assert_eq!(store.create("x").err().unwrap().kind(), std::io::ErrorKind::AlreadyExists);
    // Known but silent so far: not found, without searching the segments; unknown: not this store's.
    assert_eq!(store.read_recent("x").unwrap().unwrap_err().kind(), std::io::ErrorKind::NotFound);
    assert!(store.read_recent("y").is_none());
    for bad in ["", "../etc/passwd", ".hidden", "a\nb"] {
        assert_eq!(store.create(bad).err().unwrap().kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
    // A journal `run` wrote into the same directory.
    Runtime::new(FileStore::new(dir.path())).run(&workflow(1), &(), opts("from-run")).await.unwrap().unwrap();
    assert_eq!(store.read("from-run").unwrap().snapshot().output, Some(json!("done")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_lines_reach_the_os_by_themselves_and_in_os_waits_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    let mut w = store.create("running").unwrap();
    let mut ev = JournalEvent::new("running".into(), EventKind::ExecutionStarted);
    ev.seq = 1;
    w.append(ev).unwrap();
    w.flush().unwrap();
    // Not synced and nobody asked: the log thread writes it out anyway.
    store.in_os().await.unwrap();
    let seen = journal::read_execution(dir.path(), "running").unwrap();
    assert_eq!(seen.events.len(), 1);
    assert_eq!(seen.snapshot().error.unwrap().kind, ErrorKind::Interrupted, "no terminal event yet");
    assert_eq!(store.commits(), 0, "writing out is not committing");
}

fn completed(id: &str) -> JournalEvent {
    let mut ev = JournalEvent::new(id.into(), EventKind::ExecutionCompleted);
    ev.seq = 1;
    ev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_ending_together_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    let mut writers: Vec<_> = (0..200).map(|i| (i, store.create(&format!("e{i}")).unwrap())).collect();
    let syncs: Vec<_> = writers
        .iter_mut()
        .map(|(i, w)| {
            w.append(completed(&format!("e{i}"))).unwrap();
            w.sync()
        })
        .collect();
    for r in join_all(syncs).await {
        r.unwrap();
    }
    // Grouped: 200 executions ending together do not take 200 fsyncs.
    let commits = store.commits();
    assert!((1..200).contains(&commits), "{commits} commits for 200 executions");
    drop(writers);
    let events = store.read("e199").unwrap().events;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, EventKind::ExecutionCompleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_outliving_its_store_still_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    let mut w = store.create("late").unwrap();
    drop(store);
    w.append(completed("late")).unwrap();
    w.sync().await.unwrap();
    drop(w);
    let events = journal::read_execution(dir.path(), "late").unwrap().events;
    assert_eq!(events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_cannot_be_written_says_so_to_every_wait() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(journal::LOG_DIR), "in the way").unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    assert!(store.create_dir().is_err(), "a file where the log's folder goes");
    assert_eq!(store.failure(), None, "nothing written yet");
    let mut w = store.create("doomed").unwrap();
    w.append(completed("doomed")).unwrap();
    let synced = w.sync().await;
    let err = synced.expect_err("the end of an execution that was not written is not durable");
    assert!(err.to_string().contains("journal write failed"), "{err}");
    assert!(store.in_os().await.is_err());
    assert!(store.failure().unwrap().contains("journal write failed"));
    assert!(store.failed().await.contains("journal write failed"));
    // Sticky: a later execution is told too.
    let mut later = store.create("later").unwrap();
    later.append(completed("later")).unwrap();
    assert!(later.sync().await.is_err());
}

#[tokio::test(start_paused = true)]
async fn searches_learn_which_segments_hold_which_executions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let options = LogOptions { segment_bytes: 2_000, ..LogOptions::default() };
        let runtime = Runtime::new(LogStore::with_options(dir.path(), options).unwrap());
        for i in 0..20 {
            runtime.run(&workflow(1), &(), opts(&format!("e{i}"))).await.unwrap().unwrap();
        }
    }
    let segments = std::fs::read_dir(dir.path().join(journal::LOG_DIR)).unwrap().count() as u64;
    assert!(segments >= 5, "{segments} segments");

    // A later process: nothing indexed, every segment read once.
    let store = LogStore::new(dir.path()).unwrap();
    assert_eq!(store.read("e3").unwrap().snapshot().output, Some(json!("done")));
    assert_eq!(store.segments_searched(), segments);
    // Then only the segments that may hold the id (a filter can be wrong, rarely, the other way).
    assert_eq!(store.read("e17").unwrap().snapshot().output, Some(json!("done")));
    let for_e17 = store.segments_searched() - segments;
    assert!((1..=3).contains(&for_e17), "{for_e17} segments read for one execution");
    let before = store.segments_searched();
    for guess in ["nope", "e20", "e-3", "00000000-0000-4000-8000-000000000000"] {
        assert_eq!(store.read(guess).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }
    assert!(
        store.segments_searched() - before <= 1,
        "unknown ids read {} segments",
        store.segments_searched() - before
    );
}

/// Issue 16.5: the store knows which ids it wrote to each of its segments,
/// the one being written too, so an id it never wrote costs no segment read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_id_reads_no_segment_of_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions { segment_bytes: 2048, ..LogOptions::default() };
    let store = LogStore::with_options(dir.path(), options).unwrap();
    for i in 0..60 {
        let id = format!("e{i}");
        let mut w = store.create(&id).unwrap();
        let mut started = JournalEvent::new(id.as_str().into(), EventKind::ExecutionStarted);
        started.seq = 1;
        started.input = Some(json!({ "padding": "x".repeat(200) }).into());
        w.append(started).unwrap();
        let mut done = completed(&id);
        done.seq = 2;
        w.append(done).unwrap();
        w.sync().await.unwrap();
    }
    assert!(store.segments().len() > 5, "{:?}", store.segments());
    let unknown = ["nobody".to_owned(), "e-1".into()].into_iter().chain((60..80).map(|i| format!("e{i}")));
    for unknown in unknown {
        let err = store.search(&unknown).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    }
    assert_eq!(store.segments_searched(), 0, "no segment read for ids never written");
    // A known id (searched as if evicted from the index) reads only what may hold it.
    assert_eq!(store.search("e30").unwrap().events.len(), 2);
    let read = store.segments_searched();
    assert!((1..=2).contains(&read), "{read} segments read for one execution");
}

/// A shutdown that stops waiting ends the journal of a stuck execution for
/// it (issue 16, item 2): one terminal `execution.cancelled` after its last
/// event, durable; what the execution writes when it comes back is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_execution_is_journaled_cancelled_and_its_own_end_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    let runtime = Runtime::new(store.clone());
    // The agent ignores its cancellation; 200 ms after it the step gives up
    // on it and the execution ends its own way (after the abandon).
    let agent = Arc::new(MockAgent::<Value>::new("echo", "1").reply(Reply::hang().ignoring_cancel()));
    let policy = Policy { cancel_grace: std::time::Duration::from_millis(200), ..Policy::default() };
    let step = AgentStep::new("s0", agent, |_: &()| Ok(json!({})), |_: &(), _| Ok(())).policy(policy).node();
    let wf = Arc::new(Workflow::with_registry(
        WorkflowInfo::new("w", "1.0.0", "h"),
        Node::sequence(vec![step]),
        |_: &()| Ok(json!("done")),
        &BreakerRegistry::new(4),
    ));
    let handle = runtime.start(wf, (), opts("stuck")).unwrap();
    let mut before = Vec::new();
    for _ in 0..2000 {
        before = store.read("stuck").map(|r| r.events).unwrap_or_default();
        if before.iter().any(|e| e.event == EventKind::StepAttemptStarted) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(before.iter().any(|e| e.event == EventKind::StepAttemptStarted), "the agent never started");
    handle.cancel();
    let why = orchestr8_runtime::StepError::new(ErrorKind::Cancelled, "abandoned by the shutdown", 0);
    store.abandon("stuck", why.clone()).expect("a live writer").await.unwrap();
    assert!(store.abandon("stuck", why.clone()).is_none(), "abandoned once");

    // The execution ends its own way (cancelled): none of it is written.
    assert_eq!(handle.await.unwrap_err().kind, ErrorKind::Cancelled);
    let read = store.read("stuck").unwrap();
    assert_well_formed(&read.events);
    assert_eq!(read.events.len(), before.len() + 1, "{:?}", read.events);
    let last = read.events.last().unwrap();
    assert_eq!(last.event, EventKind::ExecutionCancelled);
    assert_eq!(last.state, Some(journal::StateName::Cancelled));
    assert_eq!(last.error.as_deref().map(|e| e.message.as_str()), Some("abandoned by the shutdown"));
    assert!(last.duration_ms.is_some());
    assert_eq!(read.snapshot().execution, Some(ExecutionState::Cancelled));
    // Durable and found the same way after a restart.
    drop((runtime, store));
    let again = journal::read_execution(dir.path(), "stuck").unwrap();
    assert_eq!(again.events, read.events);

    // An execution that ended on its own has nothing to abandon.
    let store = LogStore::new(dir.path()).unwrap();
    Runtime::new(store.clone()).run(&workflow(1), &(), opts("done")).await.unwrap().unwrap();
    assert!(store.abandon("done", why.clone()).is_none());
    assert!(store.abandon("never-ran", why).is_none());
}

/// Issue 16, item 5: the state of an execution still running is kept in
/// memory as its events are appended, so a status needs no line read back:
/// it is there before the lines are even written out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_execution_s_state_is_in_memory_before_its_lines_are_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    let mut w = store.create("live").unwrap();
    assert_eq!(store.live("live"), Some(journal::Snapshot::default()), "created, nothing recorded yet");
    let mut events = Vec::new();
    let mut started = JournalEvent::new("live".into(), EventKind::ExecutionStarted);
    started.labels = Some(Box::new(journal::EventLabels { workflow_id: Some("w".into()), ..Default::default() }));
    events.push(started);
    for (kind, state) in
        [(EventKind::StepStarted, StateName::Executing), (EventKind::StepSucceeded, StateName::Succeeded)]
    {
        let mut ev = JournalEvent::new("live".into(), kind);
        (ev.step_id, ev.state) = (Some("s0".into()), Some(state));
        events.push(ev);
    }
    let mut ev = JournalEvent::new("live".into(), EventKind::StepStarted);
    (ev.step_id, ev.state) = (Some("s1".into()), Some(StateName::Executing));
    events.push(ev);
    for (seq, ev) in events.iter().enumerate() {
        let mut ev = ev.clone();
        ev.seq = seq as u64 + 1;
        w.append(ev).unwrap();
    }

    let live = store.live("live").expect("a running execution's state");
    assert!(
        store.read_recent("live").is_some_and(|r| r.is_err()),
        "its lines are not written out yet: the state cannot have been read from them"
    );
    assert_eq!(live.execution, Some(ExecutionState::Running));
    assert_eq!(live.started.as_ref().and_then(|(_, l)| l.as_ref()?.workflow_id.clone()).as_deref(), Some("w"));
    let steps: Vec<_> = live.steps.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(steps, [("s0", StepState::Succeeded), ("s1", StepState::Executing)]);

    // Written out, the journal reads the same (as interrupted, lacking its end).
    w.flush().unwrap();
    let read = store.read_recent("live").unwrap().unwrap().snapshot();
    assert_eq!((read.steps, read.started.map(|(_, l)| l)), (live.steps, live.started.map(|(_, l)| l)));

    let mut end = completed("live");
    end.seq = 5;
    w.append(end).unwrap();
    w.sync().await.unwrap();
    assert_eq!(store.live("live"), None, "ended: its journal says the rest");
    assert_eq!(store.live("never-ran"), None);
}

/// A process id no process has (Linux's pids stay below 2^22).
fn dead_pid() -> u32 {
    (4_200_000..).find(|pid| !std::path::Path::new("/proc").join(pid.to_string()).exists()).unwrap()
}

/// Renames the segments under `dir/log` that this process wrote as if
/// process `pid` had (a store names its segments with its own pid).
fn as_written_by(dir: &std::path::Path, pid: u32) {
    let log = dir.join(journal::LOG_DIR);
    let me = format!("-{}-", std::process::id());
    for entry in std::fs::read_dir(&log).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.contains(&me) {
            std::fs::rename(&path, log.join(name.replace(&me, &format!("-{pid}-")))).unwrap();
        }
    }
}

/// Event `seq` of `id`: `kind`, of step `step` in `state` if given;
/// `execution.started` carries the identity labels.
fn ev(id: &str, seq: u64, kind: EventKind, step: Option<(&str, StateName)>) -> JournalEvent {
    let mut ev = JournalEvent::new(id.into(), kind);
    ev.seq = seq;
    if let Some((step, state)) = step {
        (ev.step_id, ev.state) = (Some(step.into()), Some(state));
    }
    if kind == EventKind::ExecutionStarted {
        ev.labels = Some(Box::new(journal::EventLabels {
            workflow_id: Some("w".into()),
            workflow_version: Some("1.0.0".into()),
            definition_hash: Some("h".into()),
            correlation_id: Some(id.into()),
            ..Default::default()
        }));
    }
    if kind == EventKind::StepSucceeded {
        ev.output = Some(json!({"from": step.map(|s| s.0)}).into());
    }
    ev
}

fn ids(found: &[journal::Unfinished]) -> Vec<&str> {
    found.iter().map(|u| u.execution_id.as_str()).collect()
}

/// Issue 17, serve side: a restarted store finds the executions a process
/// that is gone left unfinished, oldest first, goes on with one's journal
/// (its new lines in this process's segments, read back whole with the old
/// ones), and then finds only the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_a_gone_process_left_unfinished_are_found_and_one_goes_on() {
    use EventKind::*;
    use StateName::{Executing, Succeeded};
    let dir = tempfile::tempdir().unwrap();
    {
        // Small segments: the journals span several, interleaved.
        let options = LogOptions { segment_bytes: 1_000, ..LogOptions::default() };
        let store = LogStore::with_options(dir.path(), options).unwrap();
        let mut done = store.create("done").unwrap();
        let mut first = store.create("first").unwrap();
        let mut second = store.create("second").unwrap();
        done.append(ev("done", 1, ExecutionStarted, None)).unwrap();
        first.append(ev("first", 1, ExecutionStarted, None)).unwrap();
        first.flush().unwrap();
        second.append(ev("second", 1, ExecutionStarted, None)).unwrap();
        second.append(ev("second", 2, StepStarted, Some(("s0", Executing)))).unwrap();
        second.flush().unwrap();
        first.append(ev("first", 2, StepStarted, Some(("s0", Executing)))).unwrap();
        first.append(ev("first", 3, StepSucceeded, Some(("s0", Succeeded)))).unwrap();
        first.append(ev("first", 4, StepStarted, Some(("s1", Executing)))).unwrap();
        first.flush().unwrap();
        done.append(ev("done", 2, ExecutionCompleted, None)).unwrap();
        done.sync().await.unwrap();
        // The process dies: `first` and `second` never end.
        store.in_os().await.unwrap();
        assert!(store.segments().len() >= 2, "{:?}", store.segments());
    }
    as_written_by(dir.path(), dead_pid());
    // A process still alive (init) runs what it wrote: not unfinished.
    #[cfg(target_os = "linux")]
    {
        let other = tempfile::tempdir().unwrap();
        let store = LogStore::new(other.path()).unwrap();
        let mut w = store.create("elsewhere").unwrap();
        w.append(ev("elsewhere", 1, ExecutionStarted, None)).unwrap();
        w.flush().unwrap();
        store.in_os().await.unwrap();
        let segment = store.segments().pop().unwrap();
        drop((w, store));
        let name = segment.file_name().unwrap().to_str().unwrap();
        let name = name.replace(&format!("-{}-", std::process::id()), "-1-");
        std::fs::rename(&segment, dir.path().join(journal::LOG_DIR).join(name)).unwrap();
    }

    let store = LogStore::new(dir.path()).unwrap();
    let found = store.unfinished().unwrap();
    assert_eq!(ids(&found), ["first", "second"], "oldest start first");
    assert!(found.iter().all(|u| u.segment.exists()), "{found:?}");
    // What it read taught the searches: an unknown id reads (almost) nothing.
    for guess in ["nope", "firs", "second-1"] {
        assert_eq!(store.read(guess).unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }
    assert!(store.segments_searched() <= 1, "{} segments read for unknown ids", store.segments_searched());

    // Errors: no journal, an ended one, one open here.
    let err = store.reopen("never-ran").err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let err = store.reopen("done").err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("has ended (execution.completed at seq 2)"), "{err}");
    let mut w = store.reopen("first").unwrap();
    let err = store.reopen("first").err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert_eq!(store.create("first").err().unwrap().kind(), std::io::ErrorKind::AlreadyExists);

    // Its state goes on from the old events (still running, not interrupted).
    let live = store.live("first").expect("a reopened execution is live");
    assert_eq!(live.execution, Some(ExecutionState::Running));
    assert_eq!(live.started.as_ref().and_then(|(_, l)| l.as_ref()?.workflow_id.clone()).as_deref(), Some("w"));
    let steps: Vec<_> = live.steps.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(steps, [("s0", StepState::Succeeded), ("s1", StepState::Executing)]);
    // Running here: not unfinished.
    assert_eq!(ids(&store.unfinished().unwrap()), ["second"]);

    w.append(ev("first", 5, ExecutionResumed, None)).unwrap();
    w.append(ev("first", 6, StepStarted, Some(("s1", Executing)))).unwrap();
    w.flush().unwrap();
    let steps = store.live("first").unwrap().steps;
    assert_eq!(steps.get("s0"), Some(&StepState::Succeeded), "{steps:?}");
    // Read while it runs: old lines and new.
    let read = store.read("first").unwrap();
    assert_eq!(read.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    w.append(ev("first", 7, StepSucceeded, Some(("s1", Succeeded)))).unwrap();
    w.append(ev("first", 8, ExecutionCompleted, None)).unwrap();
    w.sync().await.unwrap();
    drop(w);
    assert_eq!(store.live("first"), None);
    assert!(store.segments().iter().all(|s| s.to_str().unwrap().contains(&format!("-{}-", std::process::id()))));

    let whole = store.read("first").unwrap();
    assert_well_formed(&whole.events);
    assert_eq!(whole.events.len(), 8);
    assert_eq!(whole.events[4].event, ExecutionResumed);
    assert_eq!(whole.snapshot().execution, Some(ExecutionState::Completed));
    assert_eq!(store.read_recent("first").unwrap().unwrap().events, whole.events);
    assert_eq!(store.search("first").unwrap().events, whole.events);
    let page = store.read_recent_page("first", 3, 2).unwrap().unwrap();
    assert_eq!((page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), page.more), (vec![4, 5], true));
    let page = store.read_recent_page("first", 6, 10).unwrap().unwrap();
    assert_eq!((page.events.len(), page.more, page.complete), (2, false, true));
    let err = store.reopen("first").err().unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "ended now: {err}");
    drop(store);

    // A later process: only the other one is left, and `first` reads whole.
    as_written_by(dir.path(), dead_pid());
    let store = LogStore::new(dir.path()).unwrap();
    assert_eq!(ids(&store.unfinished().unwrap()), ["second"]);
    assert_eq!(store.read("first").unwrap().events, whole.events);
}

/// A line a crash tore is skipped: an execution whose terminal line was
/// torn is still unfinished (readers drop that line too), and a lone torn
/// start is nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_neither_ends_nor_starts_an_execution() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::new(dir.path()).unwrap();
        let mut w = store.create("cut").unwrap();
        w.append(ev("cut", 1, EventKind::ExecutionStarted, None)).unwrap();
        w.flush().unwrap();
        store.in_os().await.unwrap();
    }
    as_written_by(dir.path(), dead_pid());
    let segment = std::fs::read_dir(dir.path().join(journal::LOG_DIR)).unwrap().next().unwrap().unwrap().path();
    let mut end = Vec::new();
    ev("cut", 2, EventKind::ExecutionCompleted, None).write_line(&mut end, &mut Default::default());
    let mut torn_start = Vec::new();
    ev("torn", 1, EventKind::ExecutionStarted, None).write_line(&mut torn_start, &mut Default::default());
    let start = std::fs::read(&segment).unwrap();
    std::fs::write(&segment, [&start[..], &end[..end.len() - 2]].concat()).unwrap();
    let store = LogStore::new(dir.path()).unwrap();
    assert_eq!(ids(&store.unfinished().unwrap()), ["cut"]);
    assert_eq!(store.read("cut").unwrap().snapshot().execution, Some(ExecutionState::Failed), "interrupted");
    // Cut just before its newline, the line is whole: readers take it, and so does this.
    std::fs::write(&segment, [&start[..], &end[..end.len() - 1]].concat()).unwrap();
    assert!(store.unfinished().unwrap().is_empty());
    assert_eq!(store.read("cut").unwrap().snapshot().execution, Some(ExecutionState::Completed));
    std::fs::write(&segment, &torn_start[..torn_start.len() - 2]).unwrap();
    assert!(store.unfinished().unwrap().is_empty());
}

/// `Runtime::resume` on the server's store: an execution a process left in
/// its second step is found, resumed by a later process, runs only what
/// had not succeeded and ends in one well-formed journal.
#[tokio::test(start_paused = true)]
async fn a_resumed_execution_on_the_log_runs_the_rest_and_reads_back_whole() {
    let policy = Policy { timeout: std::time::Duration::from_secs(7200), ..Policy::default() };
    let flow = |agent: MockAgent<Value>| {
        let agent = Arc::new(agent);
        let nodes: Vec<_> = (0..3)
            .map(|i| {
                AgentStep::new(format!("s{i}"), agent.clone(), move |_: &()| Ok(json!({"n": i})), |_: &(), _| Ok(()))
                    .policy(policy)
                    .node()
            })
            .collect();
        let wf = Workflow::with_registry(
            WorkflowInfo::new("w", "1.0.0", "h"),
            Node::sequence(nodes),
            |_: &()| Ok(json!("done")),
            &BreakerRegistry::new(4),
        );
        (agent, wf)
    };
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LogStore::new(dir.path()).unwrap();
        let (_, wf) = flow(MockAgent::new("echo", "1").then_ok(json!({"ok": 0})).then_hang());
        let runtime = Runtime::new(store.clone());
        let run = runtime.run(&wf, &(), opts("crashed"));
        assert!(tokio::time::timeout(std::time::Duration::from_secs(3600), run).await.is_err(), "it hung in s1");
        store.in_os().await.unwrap();
    }
    as_written_by(dir.path(), dead_pid());

    let store = LogStore::new(dir.path()).unwrap();
    assert_eq!(ids(&store.unfinished().unwrap()), ["crashed"]);
    let runtime = Runtime::new(store.clone());
    let (agent, wf) = flow(MockAgent::new("echo", "1").then_ok(json!({"ok": 1})));
    let point = orchestr8_runtime::Resume::from_journal(&store.read("crashed").unwrap()).unwrap();
    point.check_definition(wf.info(), &wf.step_ids(), false).unwrap();
    assert_eq!(point.done_steps(), ["s0"]);
    let exec = runtime.resume(&wf, &(), &point, ExecutionOptions::default()).unwrap();
    assert_eq!(exec.run(&wf, &()).await.unwrap(), json!("done"));
    assert_eq!(agent.calls(), 2, "s1 again and s2; s0 is read back");

    let read = store.read("crashed").unwrap();
    assert_well_formed(&read.events);
    let resumed = read.events.iter().filter(|e| e.event == EventKind::ExecutionResumed).count();
    assert_eq!(resumed, 1);
    assert!(store.unfinished().unwrap().is_empty());
    drop((runtime, store));
    assert_eq!(journal::read_execution(dir.path(), "crashed").unwrap().events, read.events);
}

/// Retention keeps the segments of a process that is gone which hold the
/// beginning of an execution this store reopened and runs: its journal must
/// not lose its head while it goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_keeps_the_beginning_of_a_reopened_execution() {
    use EventKind::*;
    let dir = tempfile::tempdir().unwrap();
    let padded = |mut ev: JournalEvent, bytes: usize| {
        ev.input = Some(json!({ "padding": "x".repeat(bytes) }).into());
        ev
    };
    {
        let options = LogOptions { segment_bytes: 1_000, ..LogOptions::default() };
        let store = LogStore::with_options(dir.path(), options).unwrap();
        let mut other = store.create("other").unwrap();
        other.append(padded(ev("other", 1, ExecutionStarted, None), 900)).unwrap();
        other.append(ev("other", 2, ExecutionCompleted, None)).unwrap();
        other.sync().await.unwrap();
        let mut w = store.create("first").unwrap();
        w.append(padded(ev("first", 1, ExecutionStarted, None), 900)).unwrap();
        w.flush().unwrap();
        store.in_os().await.unwrap();
    }
    as_written_by(dir.path(), dead_pid());
    let segment_of = |id: &str| {
        std::fs::read_dir(dir.path().join(journal::LOG_DIR))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| std::fs::read_to_string(p).unwrap().contains(&format!("\"executionId\":\"{id}\"")))
    };
    let (old_other, old_first) = (segment_of("other").unwrap(), segment_of("first").unwrap());
    assert_ne!(old_other, old_first);
    let before: u64 = [&old_other, &old_first].iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();

    // Room for what there is, not for what the reopened execution adds.
    let retention = journal::Retention { max_age: None, max_bytes: Some(before + 500) };
    let options = LogOptions { segment_bytes: 1_000, retention, ..LogOptions::default() };
    let store = LogStore::with_options(dir.path(), options).unwrap();
    assert_eq!(store.retain(), 0, "the log fits");
    let mut w = store.reopen("first").unwrap();
    w.append(ev("first", 2, ExecutionResumed, None)).unwrap();
    for seq in 3..6 {
        w.append(padded(ev("first", seq, StepStarted, Some(("s0", StateName::Executing))), 900)).unwrap();
    }
    w.flush().unwrap();
    store.in_os().await.unwrap();
    assert!(store.retain() >= 1, "the log is over its size");
    assert!(!old_other.exists(), "the oldest segment, of executions that ended, goes");
    assert!(old_first.exists(), "the beginning of the execution running here stays");
    let read = store.read("first").unwrap();
    assert_eq!(read.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    drop(w);
}
