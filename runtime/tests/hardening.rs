//! Runtime edges a review reproduced with probe programs (panics, huge
//! retry-after hints, breaker edges, cancellation that is ignored or faked,
//! slow observers). Each test here failed on the runtime before its fix.

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orchestr8_runtime::codegen::store;
use orchestr8_runtime::journal::{EventKind, Snapshot};
use orchestr8_runtime::policy::{CircuitBreakerPolicy, Policy, RetryPolicy};
use orchestr8_runtime::resilience::{BreakerRegistry, CircuitBreaker, CircuitState, Observer};
use orchestr8_runtime::testing::{
    assert_well_formed, call_agent, step_event_names, MockAgent, Observed, RecordingObserver, Reply,
};
use orchestr8_runtime::{
    AgentStep, CancellationToken, ErrorKind, ExecutionState, MemoryStore, Node, OnError, Runtime, StepState, Workflow,
    WorkflowInfo,
};
use serde_json::{json, Value};
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);

fn policy(max_attempts: u32) -> Policy {
    Policy { retry: RetryPolicy { max_attempts, jitter: false, ..RetryPolicy::default() }, ..Policy::default() }
}

fn breaker_policy(failure_threshold: u32) -> CircuitBreakerPolicy {
    CircuitBreakerPolicy { failure_threshold, reset_timeout: 10 * S, half_open_requests: 1 }
}

fn retries(obs: &RecordingObserver) -> usize {
    obs.seen().iter().filter(|o| matches!(o, Observed::RetryScheduled(..))).count()
}

// 1. A retry-after hint (or any duration) past what `Instant` can hold.

#[tokio::test(start_paused = true)]
async fn a_huge_retry_after_hint_fails_the_step_instead_of_panicking() {
    let agent = MockAgent::new("a", "1").reply(Reply::fail_retry_after("rate limited", Duration::from_secs(u64::MAX)));
    let obs = RecordingObserver::new();
    let err = call_agent(&agent, &policy(3), None, &CancellationToken::new(), &obs).await.unwrap_err();
    assert_eq!((err.kind, err.attempt, agent.calls()), (ErrorKind::AgentFailed, 1, 1));
    assert!(err.message.starts_with("rate limited; retry not started"), "{}", err.message);
    assert_eq!(retries(&obs), 0);
}

#[tokio::test(start_paused = true)]
async fn a_hint_above_max_delay_is_honoured_within_the_step_timeout() {
    // The server knows when it will answer: maxDelay caps the backoff, not the hint.
    let agent = MockAgent::new("a", "1").reply(Reply::fail_retry_after("busy", 15 * S)).then_ok(json!({"ok": true}));
    let obs = RecordingObserver::new();
    let t0 = Instant::now();
    call_agent(&agent, &policy(3), None, &CancellationToken::new(), &obs).await.unwrap();
    assert_eq!(obs.delays(), vec![15 * S]);
    assert_eq!(t0.elapsed(), 15 * S);
}

#[tokio::test(start_paused = true)]
async fn durations_past_the_clock_never_panic() {
    // A timeout, an attempt timeout and a reset timeout that overflow `Instant + Duration`.
    let mut p = policy(2);
    p.timeout = Duration::MAX;
    p.attempt_timeout = Some(Duration::MAX);
    let breaker = CircuitBreaker::new(
        "a",
        "1",
        CircuitBreakerPolicy { failure_threshold: 1, reset_timeout: Duration::MAX, half_open_requests: 1 },
    );
    let agent = MockAgent::new("a", "1").then_fail("down");
    let err = call_agent(&agent, &p, Some(&breaker), &CancellationToken::new(), &()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AgentFailed);
    let err = call_agent(&agent, &p, Some(&breaker), &CancellationToken::new(), &()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::CircuitOpen);
}

// 2. A failure that opens the breaker is not retried.

#[tokio::test(start_paused = true)]
async fn the_failure_that_opens_the_breaker_is_not_retried() {
    let breaker = CircuitBreaker::new("a", "1", breaker_policy(1));
    let agent = MockAgent::new("a", "1").then_fail("boom").then_ok(json!({}));
    let obs = RecordingObserver::new();
    let t0 = Instant::now();
    let err = call_agent(&agent, &policy(3), Some(&breaker), &CancellationToken::new(), &obs).await.unwrap_err();
    assert_eq!((err.kind, err.attempt), (ErrorKind::AgentFailed, 1), "the agent's own error: {err:?}");
    assert!(err.message.starts_with("boom; not retried: the circuit breaker"), "{}", err.message);
    assert_eq!(agent.calls(), 1);
    assert_eq!(retries(&obs), 0);
    assert_eq!(t0.elapsed(), Duration::ZERO, "no backoff sleep");
    assert_eq!(breaker.state(), CircuitState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_failing_half_open_probe_is_not_retried() {
    let breaker = CircuitBreaker::new("a", "1", breaker_policy(1));
    let agent = MockAgent::new("a", "1").then_fail("down").then_fail("still down").then_ok(json!({}));
    let err = call_agent(&agent, &policy(1), Some(&breaker), &CancellationToken::new(), &()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AgentFailed);
    tokio::time::advance(10 * S).await;
    let obs = RecordingObserver::new();
    let err = call_agent(&agent, &policy(3), Some(&breaker), &CancellationToken::new(), &obs).await.unwrap_err();
    assert_eq!((err.kind, err.attempt, agent.calls()), (ErrorKind::AgentFailed, 1, 2), "{err:?}");
    assert_eq!(retries(&obs), 0);
    let states: Vec<_> = obs.transitions().iter().map(|t| (t.from, t.to)).collect();
    assert_eq!(states, [(CircuitState::Open, CircuitState::HalfOpen), (CircuitState::HalfOpen, CircuitState::Open)]);
}

#[tokio::test(start_paused = true)]
async fn a_breaker_opened_by_another_caller_during_the_backoff_keeps_the_agents_error() {
    let breaker = Arc::new(CircuitBreaker::new("a", "1", breaker_policy(2)));
    let agent = MockAgent::new("a", "1").then_fail("flaky");
    let other = breaker.clone();
    tokio::spawn(async move {
        // Halfway through the first backoff, someone else's call fails.
        tokio::time::sleep(S / 2).await;
        other.try_acquire(|_| {}).unwrap().failure(|_| {});
    });
    let err = call_agent(&agent, &policy(3), Some(&breaker), &CancellationToken::new(), &()).await.unwrap_err();
    assert_eq!((err.kind, err.attempt, agent.calls()), (ErrorKind::AgentFailed, 1, 1), "{err:?}");
    assert!(err.message.contains("not retried"), "{}", err.message);
}

// 3. A panicking agent is a failed attempt.

#[tokio::test(start_paused = true)]
async fn a_panic_is_a_fatal_attempt_counted_by_the_breaker() {
    let breaker = CircuitBreaker::new("a", "1", breaker_policy(1));
    let agent = MockAgent::new("a", "1").reply(Reply::panic("index out of bounds"));
    let obs = RecordingObserver::new();
    let err = call_agent(&agent, &policy(3), Some(&breaker), &CancellationToken::new(), &obs).await.unwrap_err();
    assert_eq!((err.kind, err.attempt, agent.calls()), (ErrorKind::Fatal, 1, 1));
    assert_eq!(err.message, "the agent panicked: index out of bounds");
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(matches!(obs.seen().last(), Some(Observed::AttemptFailed(1, e)) if e.kind == ErrorKind::Fatal));
}

// 4. `AgentError::cancelled()` without a cancellation.

#[tokio::test(start_paused = true)]
async fn a_cancelled_reply_without_a_cancellation_is_a_failed_attempt() {
    let agent = MockAgent::new("a", "1").reply(Reply::cancelled()).then_ok(json!({"ok": 1}));
    let out = call_agent(&agent, &policy(3), None, &CancellationToken::new(), &()).await.unwrap();
    assert_eq!((out, agent.calls()), (json!({"ok": 1}), 2));

    let agent = MockAgent::new("a", "1").reply(Reply::cancelled());
    let err = call_agent(&agent, &policy(1), None, &CancellationToken::new(), &()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AgentFailed);
    assert!(err.message.contains("not cancelled"), "{}", err.message);
}

// 5. The registry at capacity.

#[test]
fn a_full_registry_never_splits_a_key_or_forgets_an_open_circuit() {
    let registry = BreakerRegistry::new(2);
    let p = breaker_policy(1);
    let held = registry.get("held", "1", &p);
    let open = registry.get("open", "1", &p);
    open.try_acquire(|_| {}).unwrap().failure(|_| {});
    drop(open);
    // Full, and neither may go: the registry grows rather than lose one.
    let extra = registry.get("extra", "1", &p);
    assert!(Arc::ptr_eq(&held, &registry.get("held", "1", &p)), "a held breaker was split");
    assert_eq!(registry.get("open", "1", &p).state(), CircuitState::Open, "an open circuit was forgotten");
    assert_eq!(registry.len(), 3);
    // An idle closed breaker is what goes.
    drop(extra);
    registry.get("new", "1", &p);
    assert_eq!(registry.len(), 3);
    assert!(Arc::ptr_eq(&held, &registry.get("held", "1", &p)));
    assert_eq!(registry.get("open", "1", &p).state(), CircuitState::Open);

    // With a choice, a breaker without failures goes before one with some.
    let registry = BreakerRegistry::new(2);
    let failing = registry.get("failing", "1", &breaker_policy(5));
    failing.try_acquire(|_| {}).unwrap().failure(|_| {});
    drop(failing);
    registry.get("idle", "1", &p);
    registry.get("newer", "1", &p);
    assert_eq!(registry.get("failing", "1", &p).consecutive_failures(), 1);
}

// 7. A sibling that ignores cancellation in a fail-fast block.

/// The state: one slot per step, by index.
#[derive(Default)]
struct Slots([OnceLock<Value>; 4]);

/// Agent step `id` writing into slot `i`.
fn step(id: &'static str, i: usize, agent: MockAgent, p: Policy) -> AgentStep<Slots, MockAgent> {
    AgentStep::new(id, Arc::new(agent), |_: &Slots| Ok(json!({})), move |s: &Slots, out| store(&s.0[i], id, out))
        .policy(p)
}

fn workflow(root: Node<Slots>, registry: &BreakerRegistry) -> Workflow<Slots, Value> {
    Workflow::with_registry(WorkflowInfo::new("wf", "1.0.0", "h"), root, |_| Ok(json!({})), registry)
}

#[tokio::test(start_paused = true)]
async fn a_fail_fast_block_drops_a_sibling_that_ignores_cancellation_after_the_grace() {
    for (grace, expected) in [(None, 5 * S), (Some(S), S), (Some(Duration::ZERO), Duration::ZERO)] {
        let registry = BreakerRegistry::new(8);
        let mut p = policy(1);
        if let Some(g) = grace {
            p.cancel_grace = g;
        }
        let root = Node::parallel(
            "both",
            true,
            [
                step("deaf", 0, MockAgent::new("deaf", "1").reply(Reply::hang().ignoring_cancel()), p).node(),
                step("fails", 1, MockAgent::new("fails", "1").then_fatal("no"), p).node(),
            ],
        );
        let wf = workflow(Node::sequence([root]), &registry);
        let store = MemoryStore::new();
        let t0 = Instant::now();
        let err = Runtime::new(store.clone())
            .run(
                &wf,
                &Slots::default(),
                orchestr8_runtime::ExecutionOptions { execution_id: Some("x".into()), ..Default::default() },
            )
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(t0.elapsed(), expected, "grace {grace:?}: the block waited for the deaf sibling");
        assert_eq!((err.kind, err.step.as_deref()), (ErrorKind::Fatal, Some("fails")));
        let events = store.events("x");
        assert_well_formed(&events);
        assert_eq!(step_event_names(&events, "deaf").last(), Some(&"step.cancelled"));
        let cancelled = events.iter().find(|e| e.event == EventKind::StepCancelled).unwrap();
        assert!(cancelled.error.as_ref().unwrap().message.contains("abandoned"), "{cancelled:?}");
    }
}

// 8. Breaker observers run outside the breaker's lock.

/// Reports transitions through a callback that blocks until released.
struct Blocking {
    entered: mpsc::SyncSender<()>,
    release: std::sync::Mutex<mpsc::Receiver<()>>,
}

#[test]
fn a_slow_transition_observer_does_not_block_other_callers() {
    let breaker = Arc::new(CircuitBreaker::new("a", "1", breaker_policy(1)));
    let (entered_tx, entered) = mpsc::sync_channel(1);
    let (release, release_rx) = mpsc::channel();
    let slow = Blocking { entered: entered_tx, release: std::sync::Mutex::new(release_rx) };
    let b = breaker.clone();
    let opener = std::thread::spawn(move || {
        b.try_acquire(|_| {}).unwrap().failure(|_| {
            slow.entered.send(()).unwrap();
            slow.release.lock().unwrap().recv().unwrap();
        })
    });
    entered.recv().unwrap();
    // The opener's observer is blocked; another caller must still get an answer.
    let (done_tx, done) = mpsc::channel();
    let b = breaker.clone();
    std::thread::spawn(move || done_tx.send(b.try_acquire(|_| {}).is_err()).unwrap());
    let answered = done.recv_timeout(Duration::from_secs(20));
    release.send(()).unwrap();
    opener.join().unwrap();
    assert_eq!(answered, Ok(true), "a caller waited on the breaker's lock for another caller's observer");
}

// 9. Backoff sleeps end at an instant, and the deadline is checked before the agent runs.

/// Blocks the thread in `retry_scheduled`, like a journal on a slow disk.
struct SlowObserver(Duration);

impl Observer for SlowObserver {
    fn retry_scheduled(&self, _next_attempt: u32, _delay: Duration) {
        std::thread::sleep(self.0);
    }
}

fn real_time_policy() -> Policy {
    let mut p = policy(2);
    p.timeout = Duration::from_millis(2_000);
    p.retry.initial_delay = Duration::from_millis(1_000);
    p
}

#[tokio::test]
async fn a_slow_observer_does_not_push_the_retry_past_the_deadline() {
    // Real time: the observer blocks 1.5 s of a 1 s backoff, so the second
    // attempt starts at 1.5 s (not 2.5 s, past the 2 s timeout).
    let agent = MockAgent::new("a", "1").then_fail("once").then_ok(json!({}));
    let t0 = Instant::now();
    let res = call_agent(&agent, &real_time_policy(), None, &CancellationToken::new(), &SlowObserver(S * 3 / 2)).await;
    let second = agent.call_times().get(1).copied();
    let deadline = t0 + Duration::from_millis(2_000);
    assert!(
        res.is_err() || second.is_some_and(|t| t < deadline),
        "the step succeeded after its deadline: {res:?}, second call {:?} after start",
        second.map(|t| t - t0)
    );
}

#[tokio::test]
async fn an_attempt_whose_deadline_passed_is_never_polled() {
    // The observer alone uses up the step's time: the step times out
    // without calling the agent again.
    let agent = MockAgent::new("a", "1").then_fail("once").then_ok(json!({}));
    let breaker = CircuitBreaker::new("a", "1", breaker_policy(5));
    let observer = SlowObserver(S * 5 / 2);
    let err = call_agent(&agent, &real_time_policy(), Some(&breaker), &CancellationToken::new(), &observer)
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.attempt), (ErrorKind::Timeout, 2), "{err:?}");
    assert!(err.message.contains("before attempt 2 started"), "{}", err.message);
    assert_eq!(agent.calls(), 1);
    // The agent did not fail a second time: the breaker counts one failure.
    assert_eq!(breaker.consecutive_failures(), 1);
}

/// Blocks the thread when the journal is flushed before the agent runs, like a stalled disk.
struct SlowFlush(Duration);

impl Observer for SlowFlush {
    fn before_agent_poll(&self) -> bool {
        std::thread::sleep(self.0);
        true
    }
}

#[tokio::test]
async fn a_slow_journal_flush_does_not_let_an_attempt_start_after_its_deadline() {
    // The flush right before the first poll of the first attempt takes the
    // whole step: the agent must not run at all.
    let agent = MockAgent::new("a", "1").then_ok(json!({}));
    let breaker = CircuitBreaker::new("a", "1", breaker_policy(5));
    let err = call_agent(&agent, &real_time_policy(), Some(&breaker), &CancellationToken::new(), &SlowFlush(S * 5 / 2))
        .await
        .unwrap_err();
    assert_eq!((err.kind, err.attempt), (ErrorKind::Timeout, 1), "{err:?}");
    assert_eq!(agent.calls(), 0, "the agent ran after the deadline");
    assert_eq!(breaker.consecutive_failures(), 0, "an attempt that never ran is not a failure");
}

// Every execution's journal ends with a terminal event, whatever its agents do.

#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    Panic,
    Hang,
    IgnoreCancel,
    ReturnCancelled,
}

fn misbehaving(m: Misbehaviour) -> MockAgent {
    let agent = MockAgent::new(format!("{m:?}"), "1");
    match m {
        Misbehaviour::Panic => agent.reply(Reply::panic("bug")),
        Misbehaviour::Hang => agent.then_hang(),
        Misbehaviour::IgnoreCancel => agent.reply(Reply::hang().ignoring_cancel()),
        Misbehaviour::ReturnCancelled => agent.reply(Reply::cancelled()),
    }
}

#[tokio::test(start_paused = true)]
async fn every_journal_ends_with_a_terminal_event() {
    let cases = [Misbehaviour::Panic, Misbehaviour::Hang, Misbehaviour::IgnoreCancel, Misbehaviour::ReturnCancelled];
    for m in cases {
        for parallel in [false, true] {
            for on_error in [OnError::Fail, OnError::Continue] {
                for cancel_at in [None, Some(S / 2)] {
                    let what = format!("{m:?}, parallel {parallel}, {on_error:?}, cancel at {cancel_at:?}");
                    let registry = BreakerRegistry::new(8);
                    let mut p = policy(2);
                    p.timeout = 4 * S;
                    let bad = step("bad", 0, misbehaving(m), p).on_error(on_error).node();
                    let slow = MockAgent::new("ok", "1").reply(Reply::ok(json!({})).after(2 * S));
                    let sibling = step("sibling", 1, slow, p).node();
                    let after = step("after", 2, MockAgent::new("after", "1").then_ok(json!({})), p).node();
                    let block = if parallel {
                        Node::parallel("block", true, [bad, sibling])
                    } else {
                        Node::named_sequence("block", [bad, sibling])
                    };
                    let wf = Arc::new(workflow(Node::sequence([block, after]), &registry));
                    let store = MemoryStore::new();
                    let handle = Runtime::new(store.clone()).start(wf, Slots::default(), Default::default()).unwrap();
                    let id = handle.execution_id().to_owned();
                    if let Some(at) = cancel_at {
                        tokio::time::sleep(at).await;
                        handle.cancel();
                    }
                    let result = handle.await;
                    let events = store.events(&id);
                    assert_well_formed(&events);
                    let snap = Snapshot::from_events(&events);
                    let state = snap.execution.unwrap();
                    assert!(state.is_terminal(), "{what}: {state:?}");
                    assert!(
                        snap.steps.values().all(|s| *s != StepState::Executing && *s != StepState::Retrying),
                        "{what}: a step never ended: {:?}",
                        snap.steps
                    );
                    match (cancel_at, on_error, m) {
                        // A panic fails the execution before anyone cancels it.
                        (Some(_), OnError::Fail, Misbehaviour::Panic) => {
                            assert_eq!(state, ExecutionState::Failed, "{what}")
                        }
                        (Some(_), ..) => assert_eq!(state, ExecutionState::Cancelled, "{what}"),
                        // Nothing cancelled: a hang ends by its timeout, the rest fail.
                        (None, OnError::Continue, _) => assert!(result.is_ok(), "{what}: {result:?}"),
                        (None, OnError::Fail, _) => {
                            assert_eq!(state, ExecutionState::Failed, "{what}");
                            assert_eq!(result.unwrap_err().step.as_deref(), Some("bad"), "{what}");
                        }
                    }
                }
            }
        }
    }
}
