//! `map` steps on virtual time (issue 18): the concurrency bound, input
//! order, tolerated failures, fail-fast beyond them, cancellation, the
//! empty list, item-indexed journal names, and resuming a map that a crash
//! interrupted.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use orchestr8_runtime::codegen::{slot, store, MapStep, Tolerated};
use orchestr8_runtime::journal::{EventKind, JournalEvent};
use orchestr8_runtime::testing::assert_well_formed;
use orchestr8_runtime::{
    Agent, AgentContext, AgentError, AgentStep, ErrorKind, ExecutionOptions, JournalStore, MemoryStore, Node, Policy,
    Resume, RetryPolicy, Runtime, Workflow, WorkflowInfo,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// What the probe saw: calls in flight now and at most, every call's
/// step name, and the items that fail or hang.
#[derive(Default)]
struct Probe {
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    calls: Mutex<Vec<String>>,
    failing: BTreeSet<u64>,
    hanging: Mutex<BTreeSet<u64>>,
}

struct Work(Arc<Probe>);

impl Agent for Work {
    type Input = Value;
    type Output = Value;
    fn id(&self) -> &str {
        "work"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    /// Takes `delay` ms of virtual time, then answers `n * 10 + base`.
    async fn run(&self, ctx: &AgentContext<'_>, input: Value) -> Result<Value, AgentError> {
        let p = &self.0;
        p.calls.lock().unwrap().push(ctx.step_id().to_owned());
        let now = p.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        p.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let n = input["n"].as_u64().unwrap();
        let hang = p.hanging.lock().unwrap().contains(&n);
        let slept = async {
            if hang {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(Duration::from_millis(input["delay"].as_u64().unwrap())).await;
        };
        tokio::select! {
            _ = slept => {}
            _ = ctx.cancellation_token().cancelled() => {
                p.in_flight.fetch_sub(1, Ordering::SeqCst);
                return Err(AgentError::cancelled());
            }
        }
        p.in_flight.fetch_sub(1, Ordering::SeqCst);
        if p.failing.contains(&n) {
            return Err(AgentError::fatal(format!("item {n} fails")));
        }
        Ok(json!(n * 10 + input["base"].as_u64().unwrap()))
    }
}

struct Outer {
    base: u64,
    items: Vec<u64>,
    out: OnceLock<Vec<Option<Value>>>,
}

/// One item's state: the enclosing state, the index, the item, its step's output.
struct Item {
    up: Arc<Outer>,
    index: usize,
    item: u64,
    work: OnceLock<Value>,
}

fn policy() -> Policy {
    Policy {
        timeout: Duration::from_secs(7200),
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        ..Policy::default()
    }
}

/// `m`: a map over `items` at `concurrency`, item `n` taking `delay(n)` ms.
fn workflow(
    probe: &Arc<Probe>,
    concurrency: usize,
    tolerated: Tolerated,
    delay: fn(u64) -> u64,
) -> Workflow<Outer, Value> {
    let body = AgentStep::new(
        "work",
        Arc::new(Work(probe.clone())),
        move |s: &Item| Ok(json!({"n": s.item, "index": s.index, "base": s.up.base, "delay": delay(s.item)})),
        |s: &Item, out| store(&s.work, "work", out),
    )
    .policy(policy())
    .node();
    let map = MapStep::new(
        "m",
        body,
        |s: &Outer| Ok(s.items.clone()),
        |up, index, item| Item { up, index, item, work: OnceLock::new() },
        |i: &Item| i.work.get().cloned(),
        |s: &Outer, outs| store(&s.out, "m", outs),
    )
    .concurrency(concurrency)
    .tolerated(tolerated);
    Workflow::new(WorkflowInfo::new("mapped", "1.0.0", "h:1"), Node::sequence([map.node()]), |s: &Outer| {
        Ok(json!(slot(&s.out, "m")?))
    })
}

fn outer(items: impl IntoIterator<Item = u64>) -> Arc<Outer> {
    Arc::new(Outer { base: 1, items: items.into_iter().collect(), out: OnceLock::new() })
}

fn opts(id: &str) -> ExecutionOptions {
    ExecutionOptions { execution_id: Some(id.into()), ..ExecutionOptions::default() }
}

fn named<'a>(events: &'a [JournalEvent], kind: EventKind, step: &str) -> Vec<&'a JournalEvent> {
    events.iter().filter(|e| e.event == kind && e.step_id.as_deref() == Some(step)).collect()
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_never_exceeded_and_outputs_keep_input_order() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let probe = Arc::new(Probe::default());
    // Later items finish first: completion order is the reverse of input order.
    let wf = workflow(&probe, 4, Tolerated::Count(0), |n| 100 - n);
    let out = runtime.run_shared(&wf, &outer(0..20), opts("order")).await.unwrap().unwrap();
    assert_eq!(out, json!((0..20).map(|n| n * 10 + 1).collect::<Vec<_>>()));
    assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 4, "at most 4 in flight, and 4 reached");
    assert_eq!(probe.calls.lock().unwrap().len(), 20);

    let events = store.events("order");
    assert_well_formed(&events);
    for i in 0..20 {
        let step = format!("m[{i}].work");
        assert_eq!(named(&events, EventKind::StepSucceeded, &step).len(), 1, "{step} journaled by its index");
    }
    let ended = named(&events, EventKind::StepSucceeded, "m");
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].output.as_ref().unwrap().value(), &out);
    let started = named(&events, EventKind::StepStarted, "m");
    assert_eq!(started[0].input.as_ref().unwrap().value(), &json!({"items": 20, "concurrency": 4}));
    // The idempotency keys differ per item: each item's step has its own name.
    let mut calls = probe.calls.lock().unwrap().clone();
    calls.sort();
    calls.dedup();
    assert_eq!(calls.len(), 20);
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_of_one_runs_items_one_after_another() {
    let probe = Arc::new(Probe::default());
    let wf = workflow(&probe, 1, Tolerated::Count(0), |_| 10);
    let started = tokio::time::Instant::now();
    let runtime = Runtime::new(MemoryStore::new());
    runtime.run_shared(&wf, &outer(0..5), opts("one")).await.unwrap().unwrap();
    assert_eq!(probe.max_in_flight.load(Ordering::SeqCst), 1);
    assert_eq!(started.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn tolerated_failures_are_counted_exactly() {
    // Items 1, 3 and 5 fail: three failures.
    let failing = || Probe { failing: [1, 3, 5].into(), ..Probe::default() };
    for (tolerated, ok) in [
        (Tolerated::Count(3), true),
        (Tolerated::Count(2), false),
        // 30% of 10 is 3; 29% rounds down to 2.
        (Tolerated::Percent(30.0), true),
        (Tolerated::Percent(29.0), false),
    ] {
        let store = MemoryStore::new();
        let probe = Arc::new(failing());
        let wf = workflow(&probe, 2, tolerated, |n| 10 + n);
        let result = Runtime::new(store.clone()).run_shared(&wf, &outer(0..10), opts("t")).await.unwrap();
        let events = store.events("t");
        assert_well_formed(&events);
        if ok {
            let expected: Vec<Value> =
                (0..10).map(|n| if [1, 3, 5].contains(&n) { Value::Null } else { json!(n * 10 + 1) }).collect();
            assert_eq!(result.unwrap(), json!(expected), "{tolerated:?}: failed items are null, in place");
            assert_eq!(probe.calls.lock().unwrap().len(), 10);
        } else {
            let e = result.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Fatal, "{tolerated:?}");
            assert_eq!(e.step.as_deref(), Some("m"));
            assert!(e.message.starts_with("3 of 10 items failed (2 tolerated); item 5: "), "{}", e.message);
            // Fail-fast: the items after the third failure never started.
            assert!(probe.calls.lock().unwrap().len() < 10, "{:?}", probe.calls.lock().unwrap());
            assert_eq!(named(&events, EventKind::StepFailed, "m").len(), 1);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_beyond_the_tolerated_ones_cancels_the_items_in_flight() {
    // Item 0 fails at once; items 1..4 are in flight for a long time.
    let store = MemoryStore::new();
    let probe = Arc::new(Probe { failing: [0].into(), ..Probe::default() });
    let wf = workflow(&probe, 4, Tolerated::Count(0), |n| if n == 0 { 1 } else { 10_000 });
    let started = tokio::time::Instant::now();
    let e = Runtime::new(store.clone()).run_shared(&wf, &outer(0..8), opts("ff")).await.unwrap().unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "the others did not run to their end");
    assert_eq!(e.kind, ErrorKind::Fatal);
    let events = store.events("ff");
    assert_well_formed(&events);
    for i in 1..4 {
        assert_eq!(named(&events, EventKind::StepCancelled, &format!("m[{i}].work")).len(), 1, "item {i} cancelled");
    }
    assert_eq!(probe.calls.lock().unwrap().len(), 4, "items 4..8 never started");
    assert_eq!(probe.in_flight.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn cancelling_the_execution_cancels_a_map_in_flight() {
    let store = MemoryStore::new();
    let probe = Arc::new(Probe::default());
    let wf = workflow(&probe, 3, Tolerated::Count(0), |_| 10_000);
    let cancel = CancellationToken::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        canceller.cancel();
    });
    let o = ExecutionOptions { cancel: Some(cancel), ..opts("c") };
    let e = Runtime::new(store.clone()).run_shared(&wf, &outer(0..6), o).await.unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled);
    let events = store.events("c");
    assert_well_formed(&events);
    assert_eq!(named(&events, EventKind::StepCancelled, "m").len(), 1);
    assert_eq!(events.iter().filter(|e| e.event == EventKind::StepCancelled).count(), 4, "3 items and the map");
    assert_eq!(probe.calls.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn an_empty_list_yields_an_empty_output_without_calling_anything() {
    let store = MemoryStore::new();
    let probe = Arc::new(Probe::default());
    let wf = workflow(&probe, 4, Tolerated::Count(0), |_| 1);
    let out = Runtime::new(store.clone()).run_shared(&wf, &outer([]), opts("e")).await.unwrap().unwrap();
    assert_eq!(out, json!([]));
    assert!(probe.calls.lock().unwrap().is_empty());
    let events = store.events("e");
    assert_well_formed(&events);
    assert_eq!(named(&events, EventKind::StepSucceeded, "m").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_map_without_a_shared_state_fails_with_a_clear_error() {
    let probe = Arc::new(Probe::default());
    let wf = workflow(&probe, 4, Tolerated::Count(0), |_| 1);
    let e = Runtime::new(MemoryStore::new()).run(&wf, &outer(0..2), opts("x")).await.unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("run_shared"), "{}", e.message);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_map_runs_only_the_items_that_had_not_ended() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let probe = Arc::new(Probe::default());
    probe.hanging.lock().unwrap().insert(4);
    let wf = workflow(&probe, 2, Tolerated::Count(0), |n| 10 * (n + 1));
    // The "crash": item 4 hangs; the execution is dropped an hour later.
    let first = outer(0..6);
    let run = runtime.run_shared(&wf, &first, opts("r"));
    assert!(tokio::time::timeout(Duration::from_secs(3600), run).await.is_err());
    probe.hanging.lock().unwrap().clear();
    let before = probe.calls.lock().unwrap().clone();
    assert!(before.contains(&"m[4].work".to_owned()));

    let point = Resume::from_journal(&store.read("r").unwrap()).unwrap();
    let state = outer(0..6);
    let exec = runtime.resume(&wf, &state, &point, ExecutionOptions::default()).unwrap();
    let out = exec.run_shared(&wf, &state).await.unwrap();
    assert_eq!(out, json!((0..6).map(|n| n * 10 + 1).collect::<Vec<_>>()));
    let again: Vec<String> = probe.calls.lock().unwrap()[before.len()..].to_vec();
    // Items that had succeeded are not called again; the one in flight is.
    for name in &again {
        let finished = store
            .events("r")
            .iter()
            .take_while(|e| e.event != EventKind::ExecutionResumed)
            .any(|e| e.event == EventKind::StepSucceeded && e.step_id.as_deref() == Some(name));
        assert!(!finished, "{name} had succeeded before the crash, and ran again");
    }
    assert!(again.contains(&"m[4].work".to_owned()), "{again:?}");
    assert_well_formed(&store.events("r"));
}

/// An item of the outer map of [`nested`]: its inner map's outputs.
struct Mid {
    up: Arc<Outer>,
    item: u64,
    inner: OnceLock<Vec<Option<Value>>>,
}

/// An item of the inner map: item `n` of the outer one, `k` of its own.
struct Leaf {
    up: Arc<Mid>,
    item: u64,
    work: OnceLock<Value>,
}

/// `m`: for each item `n`, map `inner` over 0..3, calling the agent with `n * 10 + k`.
fn nested(probe: &Arc<Probe>) -> Workflow<Outer, Value> {
    let leaf = AgentStep::new(
        "work",
        Arc::new(Work(probe.clone())),
        |s: &Leaf| Ok(json!({"n": s.up.item * 10 + s.item, "base": s.up.up.base, "delay": 10 * (s.item + 1)})),
        |s: &Leaf, out| store(&s.work, "work", out),
    )
    .policy(policy())
    .node();
    let inner = MapStep::new(
        "inner",
        leaf,
        |_: &Mid| Ok(vec![0u64, 1, 2]),
        |up, _index, item| Leaf { up, item, work: OnceLock::new() },
        |l: &Leaf| l.work.get().cloned(),
        |s: &Mid, outs| store(&s.inner, "inner", outs),
    )
    .concurrency(2)
    .node();
    let map = MapStep::new(
        "m",
        inner,
        |s: &Outer| Ok(s.items.clone()),
        |up, _index, item| Mid { up, item, inner: OnceLock::new() },
        |i: &Mid| i.inner.get().map(|v| json!(v)),
        |s: &Outer, outs| store(&s.out, "m", outs),
    )
    .concurrency(2);
    Workflow::new(WorkflowInfo::new("nested", "1.0.0", "h:2"), Node::sequence([map.node()]), |s: &Outer| {
        Ok(json!(slot(&s.out, "m")?))
    })
}

#[tokio::test(start_paused = true)]
async fn a_resumed_map_of_maps_runs_only_the_inner_items_that_had_not_ended() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let probe = Arc::new(Probe::default());
    // Item 1's inner item 2 hangs: the "crash" drops the execution an hour later.
    probe.hanging.lock().unwrap().insert(12);
    let wf = nested(&probe);
    let first = outer(0..3);
    assert!(tokio::time::timeout(Duration::from_secs(3600), runtime.run_shared(&wf, &first, opts("n"))).await.is_err());
    probe.hanging.lock().unwrap().clear();
    let before = probe.calls.lock().unwrap().clone();
    assert!(before.contains(&"m[1].inner[2].work".to_owned()), "{before:?}");

    let point = Resume::from_journal(&store.read("n").unwrap()).unwrap();
    let state = outer(0..3);
    let exec = runtime.resume(&wf, &state, &point, ExecutionOptions::default()).unwrap();
    let out = exec.run_shared(&wf, &state).await.unwrap();
    let expected: Vec<Vec<u64>> = (0..3).map(|n| (0..3).map(|k| (n * 10 + k) * 10 + 1).collect()).collect();
    assert_eq!(out, json!(expected));
    let events = store.events("n");
    let crashed = events.iter().position(|e| e.event == EventKind::ExecutionResumed).unwrap();
    let again: Vec<String> = probe.calls.lock().unwrap()[before.len()..].to_vec();
    for name in &again {
        let finished =
            events[..crashed].iter().any(|e| e.event == EventKind::StepSucceeded && e.step_id.as_deref() == Some(name));
        assert!(!finished, "{name} had succeeded before the crash, and ran again");
    }
    assert!(again.contains(&"m[1].inner[2].work".to_owned()), "{again:?}");
    assert_well_formed(&events);
}

#[tokio::test(start_paused = true)]
async fn a_failing_inner_item_fails_its_map_and_the_outer_one_which_cancels_the_others() {
    let store = MemoryStore::new();
    let probe = Arc::new(Probe { failing: [11].into(), ..Probe::default() });
    probe.hanging.lock().unwrap().extend([0, 1, 2]);
    let wf = nested(&probe);
    let e = Runtime::new(store.clone()).run_shared(&wf, &outer(0..3), opts("f")).await.unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal);
    assert_eq!(e.step.as_deref(), Some("m"));
    assert!(e.message.contains("item 1: 1 of 3 items failed (0 tolerated); item 1: item 11 fails"), "{}", e.message);
    let events = store.events("f");
    assert_well_formed(&events);
    assert_eq!(named(&events, EventKind::StepFailed, "m[1].inner").len(), 1);
    assert_eq!(named(&events, EventKind::StepCancelled, "m[0].inner").len(), 1, "item 0's inner map was in flight");
    assert_eq!(named(&events, EventKind::StepCancelled, "m[0].inner[0].work").len(), 1);
    assert_eq!(probe.in_flight.load(Ordering::SeqCst), 0);
}

/// A server stopping while an execution waits suspends it: the steps in
/// flight end, and no new one starts, a map's items as a sequence's steps.
#[tokio::test(start_paused = true)]
async fn a_suspending_execution_starts_no_new_item() {
    let store = MemoryStore::new();
    let probe = Arc::new(Probe::default());
    let wf = workflow(&probe, 1, Tolerated::Count(0), |_| 100);
    let mailbox = Arc::new(orchestr8_runtime::wait::Mailbox::new());
    let stopping = mailbox.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        stopping.suspend();
    });
    let o = ExecutionOptions { mailbox: Some(mailbox), ..opts("s") };
    let result = Runtime::new(store.clone()).run_shared(&wf, &outer(0..4), o).await.unwrap();
    let events = store.events("s");
    assert_eq!(
        probe.calls.lock().unwrap().clone(),
        ["m[0].work", "m[1].work"],
        "item 1 was in flight and ends; items 2 and 3 start in the next process"
    );
    assert!(result.is_err(), "{result:?}");
    assert_eq!(events.last().map(|e| e.event), Some(EventKind::ExecutionSuspended));
    assert!(named(&events, EventKind::StepSucceeded, "m").is_empty(), "the map has not ended");
}

/// A list that cannot be read (generated code's `over` failing at run time,
/// e.g. a JSON field that is not a list) fails the map with `invalid_input`
/// before any item runs, and the journal stays well formed.
#[tokio::test(start_paused = true)]
async fn a_list_that_cannot_be_read_fails_the_map_before_any_item() {
    let journal = MemoryStore::new();
    let probe = Arc::new(Probe::default());
    let body = AgentStep::new(
        "work",
        Arc::new(Work(probe.clone())),
        |s: &Item| Ok(json!({"n": s.item, "base": 1, "delay": 1})),
        |s: &Item, out| store(&s.work, "work", out),
    )
    .node();
    let map = MapStep::new(
        "m",
        body,
        |_: &Outer| Err::<Vec<u64>, _>("`${steps.x.output.items}` is not a list".to_owned()),
        |up, index, item| Item { up, index, item, work: OnceLock::new() },
        |i: &Item| i.work.get().cloned(),
        |s: &Outer, outs| store(&s.out, "m", outs),
    );
    let wf = Workflow::new(WorkflowInfo::new("mapped", "1.0.0", "h:1"), Node::sequence([map.node()]), |s: &Outer| {
        Ok(json!(slot(&s.out, "m")?))
    });
    let e = Runtime::new(journal.clone()).run_shared(&wf, &outer(0..3), opts("bad")).await.unwrap().unwrap_err();
    assert_eq!((e.kind, e.step.as_deref()), (ErrorKind::InvalidInput, Some("m")));
    assert!(e.message.contains("is not a list"), "{}", e.message);
    assert!(probe.calls.lock().unwrap().is_empty());
    let events = journal.events("bad");
    assert_well_formed(&events);
    assert_eq!(named(&events, EventKind::StepFailed, "m").len(), 1);
}
