//! The resilience cases of DESIGN.md ("Resilience: decisions and tests"), on paused time.

use std::sync::Arc;
use std::time::Duration;

use orchestr8_runtime::policy::{CircuitBreakerPolicy, Policy, RetryPolicy};
use orchestr8_runtime::resilience::{BreakerRegistry, CircuitBreaker, CircuitState};
use orchestr8_runtime::testing::{call_agent, MockAgent, Observed, RecordingObserver, Reply};
use orchestr8_runtime::{CancellationToken, ErrorKind};
use serde_json::json;
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);

fn policy(max_attempts: u32) -> Policy {
    Policy {
        timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            max_attempts,
            initial_delay: S,
            max_delay: Duration::from_secs(10),
            backoff_multiplier: 2.0,
            jitter: false,
        },
        circuit_breaker: CircuitBreakerPolicy::default(),
        attempt_timeout: None,
        cancel_grace: orchestr8_runtime::policy::DEFAULT_CANCEL_GRACE,
    }
}

#[tokio::test(start_paused = true)]
async fn max_attempts_counts_calls_with_delays_1s_2s() {
    for n in [1u32, 2, 3, 5] {
        let agent = MockAgent::new("a", "1").then_fail("boom");
        let obs = RecordingObserver::new();
        let t0 = Instant::now();
        let err = call_agent(&agent, &policy(n), None, &CancellationToken::new(), &obs).await.unwrap_err();
        assert_eq!(agent.calls(), n, "maxAttempts {n} must mean {n} calls");
        assert_eq!(err.kind, ErrorKind::AgentFailed);
        assert_eq!(err.attempt, n);
        let expected: Vec<Duration> = [1, 2, 4, 8][..(n as usize - 1)].iter().map(|s| S * *s).collect();
        assert_eq!(obs.delays(), expected);
        // Calls start exactly after the delays (virtual time).
        let offsets: Vec<Duration> = agent.call_times().iter().map(|t| *t - t0).collect();
        let mut at = Duration::ZERO;
        let mut want = vec![at];
        for d in &expected {
            at += *d;
            want.push(at);
        }
        assert_eq!(offsets, want);
    }
}

#[tokio::test(start_paused = true)]
async fn success_after_retries_stops_calling() {
    let agent = MockAgent::new("a", "1").then_fail("1").then_fail("2").then_ok(json!(7));
    let obs = RecordingObserver::new();
    let out = call_agent(&agent, &policy(5), None, &CancellationToken::new(), &obs).await;
    assert_eq!(out.unwrap(), json!(7));
    assert_eq!(agent.calls(), 3);
    assert_eq!(obs.delays(), vec![S, 2 * S]);
}

#[tokio::test(start_paused = true)]
async fn fatal_error_makes_one_call_and_no_sleep() {
    let agent = MockAgent::new("a", "1").then_fatal("bad request");
    let obs = RecordingObserver::new();
    let t0 = Instant::now();
    let err = call_agent(&agent, &policy(3), None, &CancellationToken::new(), &obs).await.unwrap_err();
    assert_eq!(agent.calls(), 1);
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert_eq!(err.message, "bad request");
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert!(obs.delays().is_empty());
}

#[tokio::test(start_paused = true)]
async fn retry_whose_sleep_overruns_the_timeout_is_not_started() {
    let agent = MockAgent::new("a", "1").then_fail("boom");
    let obs = RecordingObserver::new();
    let mut p = policy(5);
    p.timeout = Duration::from_millis(2_500);
    let t0 = Instant::now();
    let err = call_agent(&agent, &p, None, &CancellationToken::new(), &obs).await.unwrap_err();
    // Attempt 1 at 0 s, attempt 2 at 1 s; the 2 s sleep would end at 3 s > 2.5 s.
    assert_eq!(agent.calls(), 2);
    assert_eq!(t0.elapsed(), S);
    assert_eq!(err.kind, ErrorKind::AgentFailed);
    assert!(err.message.contains("retry not started"), "{}", err.message);
}

#[tokio::test(start_paused = true)]
async fn retry_after_hint_is_honoured_when_the_deadline_allows() {
    let agent = MockAgent::new("a", "1")
        .reply(Reply::fail_retry_after("slow down", Duration::from_secs(7)))
        .then_ok(json!("ok"));
    let obs = RecordingObserver::new();
    let t0 = Instant::now();
    let out = call_agent(&agent, &policy(3), None, &CancellationToken::new(), &obs).await;
    assert_eq!(out.unwrap(), json!("ok"));
    assert_eq!(obs.delays(), vec![Duration::from_secs(7)]);
    assert_eq!(t0.elapsed(), Duration::from_secs(7));

    // A hint that would overrun the step timeout: the retry is not started.
    let agent = MockAgent::new("a", "1")
        .reply(Reply::fail_retry_after("slow down", Duration::from_secs(60)))
        .then_ok(json!("ok"));
    let obs = RecordingObserver::new();
    let err = call_agent(&agent, &policy(3), None, &CancellationToken::new(), &obs).await.unwrap_err();
    assert_eq!(agent.calls(), 1);
    assert_eq!(err.kind, ErrorKind::AgentFailed);
    assert!(obs.delays().is_empty());
}

#[tokio::test(start_paused = true)]
async fn timed_out_attempt_is_retried_when_the_step_has_time() {
    let agent = MockAgent::new("a", "1").reply(Reply::hang().ignoring_cancel()).then_ok(json!(1));
    let obs = RecordingObserver::new();
    let mut p = policy(3);
    p.attempt_timeout = Some(Duration::from_secs(2));
    let t0 = Instant::now();
    let out = call_agent(&agent, &p, None, &CancellationToken::new(), &obs).await;
    assert_eq!(out.unwrap(), json!(1));
    assert_eq!(agent.calls(), 2);
    // 2 s attempt timeout + 1 s backoff.
    assert_eq!(t0.elapsed(), 3 * S);
    assert!(matches!(&obs.seen()[1], Observed::AttemptFailed(1, e) if e.kind == ErrorKind::Timeout));
}

#[tokio::test(start_paused = true)]
async fn step_timeout_bounds_attempts_and_sleeps() {
    // Each attempt takes 4 s and fails; 10 s budget: attempts at 0, 5 (4+1), 11 > 10.
    let agent = MockAgent::new("a", "1").reply(Reply::fail("slow").after(4 * S));
    let obs = RecordingObserver::new();
    let mut p = policy(10);
    p.timeout = 10 * S;
    let t0 = Instant::now();
    let err = call_agent(&agent, &p, None, &CancellationToken::new(), &obs).await.unwrap_err();
    assert!(t0.elapsed() <= 10 * S);
    assert_eq!(agent.calls(), 2);
    assert_eq!(err.kind, ErrorKind::AgentFailed);
}

#[tokio::test(start_paused = true)]
async fn cancellation_during_backoff_ends_at_once_without_retrying() {
    let agent = MockAgent::new("a", "1").then_fail("boom");
    let obs = RecordingObserver::new();
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.cancel();
    });
    let t0 = Instant::now();
    let err = call_agent(&agent, &policy(3), None, &cancel, &obs).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled);
    assert_eq!(agent.calls(), 1);
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn hanging_agent_times_out_and_trips_the_breaker_after_5_steps() {
    let agent = MockAgent::new("hang", "1").reply(Reply::hang().ignoring_cancel());
    let registry = BreakerRegistry::new(16);
    let p = policy(3); // default breaker: 5 failures, 60 s, 3 probes
    let breaker = registry.get("hang", "1", &p.circuit_breaker);
    let obs = RecordingObserver::new();
    for step in 1..=5u32 {
        let t0 = Instant::now();
        let err = call_agent(&agent, &p, Some(&breaker), &CancellationToken::new(), &obs).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout, "step {step}");
        assert_eq!(t0.elapsed(), p.timeout, "fails exactly at its timeout");
        let want = if step < 5 { CircuitState::Closed } else { CircuitState::Open };
        assert_eq!(breaker.state(), want, "after step {step}");
    }
    assert_eq!(agent.calls(), 5, "a timed-out step made no second call");
    let t0 = Instant::now();
    let err = call_agent(&agent, &p, Some(&breaker), &CancellationToken::new(), &obs).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::CircuitOpen);
    assert!(t0.elapsed() < Duration::from_millis(1));
    assert_eq!(agent.calls(), 5, "an open circuit is not called nor retried");
}

fn open_breaker(policy: CircuitBreakerPolicy) -> Arc<CircuitBreaker> {
    let b = Arc::new(CircuitBreaker::new("a", "1", policy));
    for _ in 0..policy.failure_threshold {
        b.try_acquire(|_| {}).unwrap().failure(|_| {});
    }
    assert_eq!(b.state(), CircuitState::Open);
    b
}

fn probes(half_open_requests: u32) -> CircuitBreakerPolicy {
    CircuitBreakerPolicy { failure_threshold: 2, reset_timeout: Duration::from_secs(60), half_open_requests }
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_exactly_3_of_64_concurrent_callers() {
    let b = open_breaker(probes(3));
    tokio::time::advance(Duration::from_secs(60)).await;
    let agent = Arc::new(MockAgent::new("a", "1").reply(Reply::ok(json!(1)).after(S)));
    let mut p = policy(1);
    p.circuit_breaker = probes(3);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (b, agent) = (b.clone(), agent.clone());
        tasks.push(tokio::spawn(async move {
            let obs = RecordingObserver::new();
            call_agent(&agent, &p, Some(&b), &CancellationToken::new(), &obs).await
        }));
    }
    let mut ok = 0;
    let mut open = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) if e.kind == ErrorKind::CircuitOpen => open += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, open), (3, 61));
    assert_eq!(agent.calls(), 3);
    assert_eq!(b.state(), CircuitState::Closed, "3 successes close it");
}

#[test]
fn half_open_admission_is_atomic_across_threads() {
    // reset_timeout 0: the first caller moves it to half-open.
    let policy = CircuitBreakerPolicy { failure_threshold: 1, reset_timeout: Duration::ZERO, half_open_requests: 3 };
    for _ in 0..20 {
        let b = open_breaker(policy);
        let barrier = Arc::new(std::sync::Barrier::new(64));
        let admitted = std::thread::scope(|s| {
            let handles: Vec<_> = (0..64)
                .map(|_| {
                    let (b, barrier) = (&b, barrier.clone());
                    s.spawn(move || {
                        barrier.wait();
                        let p = b.try_acquire(|_| {});
                        let ok = p.is_ok();
                        // Hold the slot until everyone has tried.
                        barrier.wait();
                        drop(p);
                        ok
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).filter(|ok| *ok).count()
        });
        assert_eq!(admitted, 3);
    }
}

#[tokio::test(start_paused = true)]
async fn three_successes_close_one_failure_reopens() {
    let b = open_breaker(probes(3));
    tokio::time::advance(Duration::from_secs(60)).await;
    let mut seen = Vec::new();
    for i in 0..3 {
        let p = b.try_acquire(|t| seen.push(t.to)).unwrap();
        assert_eq!(b.state(), CircuitState::HalfOpen);
        p.success(|t| seen.push(t.to));
        let want = if i < 2 { CircuitState::HalfOpen } else { CircuitState::Closed };
        assert_eq!(b.state(), want);
    }
    assert_eq!(seen, vec![CircuitState::HalfOpen, CircuitState::Closed]);

    let b = open_breaker(probes(3));
    tokio::time::advance(Duration::from_secs(60)).await;
    let first = b.try_acquire(|_| {}).unwrap();
    let second = b.try_acquire(|_| {}).unwrap();
    first.success(|_| {});
    let mut seen = Vec::new();
    second.failure(|t| seen.push(t.to));
    assert_eq!(seen, vec![CircuitState::Open]);
    assert_eq!(b.state(), CircuitState::Open);
    assert!(b.try_acquire(|_| {}).is_err(), "reopened: fails at once");
    // The reset timeout starts again from the reopening.
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(b.try_acquire(|_| {}).is_err());
    tokio::time::advance(S).await;
    assert!(b.try_acquire(|_| {}).is_ok());
}

#[tokio::test(start_paused = true)]
async fn cancelled_probe_frees_its_slot_and_records_nothing() {
    let b = open_breaker(probes(1));
    tokio::time::advance(Duration::from_secs(60)).await;
    let agent = Arc::new(MockAgent::new("a", "1").then_hang().then_ok(json!(1)));
    let mut p = policy(1);
    p.circuit_breaker = probes(1);
    let cancel = CancellationToken::new();
    let probe = {
        let (b, agent, cancel) = (b.clone(), agent.clone(), cancel.clone());
        tokio::spawn(async move {
            let obs = RecordingObserver::new();
            let r = call_agent(&agent, &p, Some(&b), &cancel, &obs).await;
            (r, obs.transitions())
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(agent.calls(), 1);
    // The only slot is taken.
    assert!(b.try_acquire(|_| {}).is_err());
    cancel.cancel();
    let (r, transitions) = probe.await.unwrap();
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
    // Only the open -> half-open move; the cancellation changed nothing.
    assert_eq!(transitions.len(), 1);
    assert_eq!(b.state(), CircuitState::HalfOpen);
    // The slot is free again; a success now closes the breaker.
    let obs = RecordingObserver::new();
    let out = call_agent(&agent, &p, Some(&b), &CancellationToken::new(), &obs).await;
    assert_eq!(out.unwrap(), json!(1));
    assert_eq!(b.state(), CircuitState::Closed);

    // A permit dropped with its future (e.g. the caller was aborted) frees it too.
    let b = open_breaker(probes(1));
    tokio::time::advance(Duration::from_secs(60)).await;
    let permit = b.try_acquire(|_| {}).unwrap();
    assert!(b.try_acquire(|_| {}).is_err());
    drop(permit);
    assert!(b.try_acquire(|_| {}).is_ok());
    assert_eq!(b.state(), CircuitState::HalfOpen);
}

#[tokio::test(start_paused = true)]
async fn failing_a_at_1_never_opens_b_or_a_at_2() {
    let registry = BreakerRegistry::new(16);
    let p = policy(1);
    let a1 = registry.get("a", "1", &p.circuit_breaker);
    let a2 = registry.get("a", "2", &p.circuit_breaker);
    let b1 = registry.get("b", "1", &p.circuit_breaker);
    assert!(Arc::ptr_eq(&a1, &registry.get("a", "1", &p.circuit_breaker)));
    let failing = MockAgent::new("a", "1").then_fail("down");
    let obs = RecordingObserver::new();
    for _ in 0..10 {
        let _ = call_agent(&failing, &p, Some(&a1), &CancellationToken::new(), &obs).await;
    }
    assert_eq!(a1.state(), CircuitState::Open);
    assert_eq!(failing.calls(), 5);
    for b in [&a2, &b1] {
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.consecutive_failures(), 0);
        let ok = MockAgent::new("x", "1").then_ok(json!(1));
        assert!(call_agent(&ok, &p, Some(b), &CancellationToken::new(), &obs).await.is_ok());
    }
}

#[test]
fn registry_is_bounded_and_evicts_idle_breakers_first() {
    let registry = BreakerRegistry::new(2);
    let p = CircuitBreakerPolicy::default();
    let held = registry.get("held", "1", &p);
    let _ = registry.get("idle", "1", &p);
    let _third = registry.get("third", "1", &p);
    assert_eq!(registry.len(), 2);
    // The held breaker survived: asking again returns the same one.
    assert!(Arc::ptr_eq(&held, &registry.get("held", "1", &p)));
}

#[tokio::test(start_paused = true)]
async fn success_resets_the_consecutive_failure_count() {
    let b = CircuitBreaker::new("a", "1", probes(3));
    b.try_acquire(|_| {}).unwrap().failure(|_| {});
    assert_eq!(b.consecutive_failures(), 1);
    b.try_acquire(|_| {}).unwrap().success(|_| {});
    assert_eq!(b.consecutive_failures(), 0);
    b.try_acquire(|_| {}).unwrap().failure(|_| {});
    assert_eq!(b.state(), CircuitState::Closed, "not consecutive: stays closed");
}

#[tokio::test(start_paused = true)]
async fn golden_transitions_closed_open_half_open_closed() {
    let mut p = policy(1);
    p.circuit_breaker =
        CircuitBreakerPolicy { failure_threshold: 2, reset_timeout: Duration::from_secs(5), half_open_requests: 1 };
    let b = CircuitBreaker::new("a", "1", p.circuit_breaker);
    let agent = MockAgent::new("a", "1").then_fail("x").then_fail("y").then_ok(json!(1));
    let obs = RecordingObserver::new();
    let c = CancellationToken::new();
    for _ in 0..3 {
        let _ = call_agent(&agent, &p, Some(&b), &c, &obs).await;
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    call_agent(&agent, &p, Some(&b), &c, &obs).await.unwrap();
    let got: Vec<String> = obs
        .seen()
        .iter()
        .map(|o| match o {
            Observed::AttemptStarted(n) => format!("attempt {n}"),
            Observed::AttemptFailed(n, e) => format!("failed {n} {}", e.kind),
            Observed::RetryScheduled(n, d) => format!("retry {n} {d:?}"),
            Observed::Circuit(t) => format!("circuit {:?}->{:?}", t.from, t.to),
        })
        .collect();
    assert_eq!(
        got,
        [
            "attempt 1",
            "failed 1 agent_failed",
            "attempt 1",
            "circuit Closed->Open",
            "failed 1 agent_failed",
            "circuit Open->HalfOpen",
            "attempt 1",
            "circuit HalfOpen->Closed",
        ]
    );
    assert_eq!(agent.calls(), 3, "the call while open never reached the agent");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn delays_stay_within_bounds_and_total_sleep_within_the_timeout(
            max_attempts in 1u32..12,
            initial_ms in 1u64..5_000,
            extra_ms in 0u64..20_000,
            mult in 1.0f64..4.0,
            jitter in any::<bool>(),
            timeout_ms in 1u64..60_000,
            work_ms in 0u64..3_000,
        ) {
            let p = Policy {
                timeout: Duration::from_millis(timeout_ms),
                retry: RetryPolicy {
                    max_attempts,
                    initial_delay: Duration::from_millis(initial_ms),
                    max_delay: Duration::from_millis(initial_ms + extra_ms),
                    backoff_multiplier: mult,
                    jitter,
                },
                circuit_breaker: CircuitBreakerPolicy::default(),
                attempt_timeout: None,
                cancel_grace: orchestr8_runtime::policy::DEFAULT_CANCEL_GRACE,
            };
            let rt = orchestr8_runtime::testing::paused_runtime();
            let (calls, elapsed, delays) = rt.block_on(async {
                let agent = MockAgent::new("a", "1")
                    .reply(Reply::fail("x").after(Duration::from_millis(work_ms)));
                let obs = RecordingObserver::new();
                let t0 = Instant::now();
                let _ = call_agent(&agent, &p, None, &CancellationToken::new(), &obs).await;
                (agent.calls(), t0.elapsed(), obs.delays())
            });
            prop_assert!(calls >= 1 && calls <= max_attempts);
            prop_assert!(elapsed <= p.timeout, "elapsed {elapsed:?} > timeout {:?}", p.timeout);
            let total: Duration = delays.iter().sum();
            prop_assert!(total <= p.timeout);
            for (i, d) in delays.iter().enumerate() {
                let n = i as u32 + 1;
                let bound = p.retry.backoff(n);
                prop_assert!(*d <= p.retry.max_delay, "delay {d:?} above maxDelay");
                prop_assert!(*d <= bound, "delay {n} {d:?} above {bound:?}");
                if !jitter {
                    prop_assert_eq!(*d, bound);
                }
            }
        }

        #[test]
        fn backoff_follows_the_formula(
            initial_ms in 0u64..10_000,
            extra_ms in 0u64..100_000,
            mult in 1.0f64..10.0,
            n in 1u32..64,
        ) {
            let r = RetryPolicy {
                max_attempts: 3,
                initial_delay: Duration::from_millis(initial_ms),
                max_delay: Duration::from_millis(initial_ms + extra_ms),
                backoff_multiplier: mult,
                jitter: true,
            };
            let want = (initial_ms as f64 / 1000.0 * mult.powi(n as i32 - 1)).min(r.max_delay.as_secs_f64());
            let got = r.backoff(n).as_secs_f64();
            prop_assert!((got - want).abs() < 1e-6, "{got} vs {want}");
            let mut rng = fastrand::Rng::with_seed(n as u64);
            for _ in 0..16 {
                prop_assert!(r.delay(n, &mut rng) <= r.backoff(n));
            }
        }
    }
}
