//! Timeout, retry and circuit breaker, composed as the contract says: the
//! step timeout bounds every attempt and every sleep, the breaker counts every
//! attempt (timeouts included), and an open breaker is never retried.

mod breaker;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

pub use breaker::{
    BreakerKey, BreakerRegistry, CircuitBreaker, CircuitOpen, CircuitState, CircuitTransition, Permit,
    DEFAULT_REGISTRY_CAPACITY,
};

use crate::agent::{AgentError, AgentErrorKind};
use crate::error::{panic_message, ErrorKind, StepError};
use crate::policy::Policy;

/// Hooks called by [`call`] as a step's attempts unfold. Every method has a
/// no-op default; `()` observes nothing.
///
/// ```
/// use std::cell::Cell;
/// use std::time::Duration;
/// use orchestr8_runtime::resilience::{call, Observer};
/// use orchestr8_runtime::{AgentError, CancellationToken, Policy, RetryPolicy, StepError};
///
/// #[derive(Default)]
/// struct Failures(Cell<u32>);
/// impl Observer for Failures {
///     fn attempt_failed(&self, attempt: u32, error: &StepError, _elapsed: Duration) {
///         eprintln!("attempt {attempt} failed: {}", error.message);
///         self.0.set(self.0.get() + 1);
///     }
/// }
///
/// let policy = Policy { retry: RetryPolicy { initial_delay: Duration::from_millis(1), ..RetryPolicy::default() }, ..Policy::default() };
/// let failures = Failures::default();
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let result = call(&policy, None, &CancellationToken::new(), &failures, |_| async { Err::<(), _>(AgentError::retryable("down")) }).await;
/// assert!(result.is_err());
/// assert_eq!(failures.0.get(), 3); // every attempt the policy allows
/// # });
/// ```
pub trait Observer {
    /// Attempt `attempt` is about to call the agent; `at` is now.
    fn attempt_started(&self, _attempt: u32, _at: Instant) {}
    /// Agent code is about to run (each poll of an attempt); the executor
    /// flushes its journal here. Returns whether it did work that may have
    /// taken time (I/O): the deadline is then checked before the agent's
    /// first poll.
    fn before_agent_poll(&self) -> bool {
        false
    }
    /// Attempt `attempt` failed after `elapsed`.
    fn attempt_failed(&self, _attempt: u32, _error: &StepError, _elapsed: Duration) {}
    /// Attempt `next_attempt` will start after `delay`.
    fn retry_scheduled(&self, _next_attempt: u32, _delay: Duration) {}
    /// The breaker changed state because of this step's call.
    fn circuit(&self, _transition: CircuitTransition) {}
    /// The span an attempt runs in (`agent.run`). When it ends, its fields
    /// `outcome`, `error.type`, `duration_ms`, `otel.status_code` (and
    /// `trace_id`, `span_id` before it starts) are recorded: declare them.
    fn attempt_span(&self, _attempt: u32) -> tracing::Span {
        tracing::Span::none()
    }
    /// The span a backoff sleep runs in (`resilience.retry`).
    fn retry_span(&self, _next_attempt: u32, _delay: Duration) -> tracing::Span {
        tracing::Span::none()
    }
}

impl Observer for () {}

/// Runs `op` (one call per attempt, given the attempt number from 1) under
/// `policy`'s timeout and retry and `breaker`, starting the clock now.
///
/// Cooperative cancellation: `cancel` stops new attempts and backoff sleeps at
/// once; a running attempt is expected to watch the same token, and one that
/// ignores it is abandoned (its future dropped) after the policy's
/// `cancel_grace`. A cancelled call records nothing in the breaker.
///
/// An agent that panics fails its attempt with kind `fatal`; an agent that
/// returns [`AgentError::cancelled`] while `cancel` has not fired fails its
/// attempt like any retryable error.
///
/// Any async operation can run under a policy, not only an agent:
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::{AgentError, CancellationToken, ErrorKind, Policy, RetryPolicy};
/// use orchestr8_runtime::resilience::call;
///
/// let policy = Policy {
///     retry: RetryPolicy { max_attempts: 3, initial_delay: Duration::from_millis(10), ..RetryPolicy::default() },
///     ..Policy::default()
/// };
/// let cancel = CancellationToken::new();
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// // Fails twice, then answers on the third attempt.
/// let answer = call(&policy, None, &cancel, &(), |attempt| async move {
///     if attempt < 3 { Err(AgentError::retryable("busy")) } else { Ok(attempt) }
/// })
/// .await;
/// assert_eq!(answer, Ok(3));
///
/// // A fatal error is not retried.
/// let error = call(&policy, None, &cancel, &(), |_| async { Err::<(), _>(AgentError::fatal("no such user")) })
///     .await
///     .unwrap_err();
/// assert_eq!((error.kind, error.attempt), (ErrorKind::Fatal, 1));
/// # });
/// ```
pub fn call<'a, T, F, Fut, O>(
    policy: &'a Policy,
    breaker: Option<&'a CircuitBreaker>,
    cancel: &'a CancellationToken,
    observer: &'a O,
    op: F,
) -> impl Future<Output = Result<T, StepError>> + 'a
where
    T: 'a,
    F: FnMut(u32) -> Fut + 'a,
    Fut: Future<Output = Result<T, AgentError>> + 'a,
    O: Observer + ?Sized,
{
    // A plain function returning the state machine: no extra future layer to move.
    run(Instant::now(), true, policy, breaker, cancel, observer, op)
}

/// [`call`] for a caller that has read the clock (`started`) and has already
/// checked `cancel` before the first attempt (the executor does both).
pub(crate) fn call_from<'a, T, F, Fut, O>(
    started: Instant,
    policy: &'a Policy,
    breaker: Option<&'a CircuitBreaker>,
    cancel: &'a CancellationToken,
    observer: &'a O,
    op: F,
) -> impl Future<Output = Result<T, StepError>> + 'a
where
    T: 'a,
    F: FnMut(u32) -> Fut + 'a,
    Fut: Future<Output = Result<T, AgentError>> + 'a,
    O: Observer + ?Sized,
{
    run(started, false, policy, breaker, cancel, observer, op)
}

/// `at + d`, or an instant decades away when that overflows: a deadline
/// that far off never fires, and no caller's duration can panic the clock.
#[inline]
pub(crate) fn saturating_after(at: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(60 * 60 * 24 * 365 * 30);
    at.checked_add(d).or_else(|| at.checked_add(FAR)).unwrap_or(at)
}

/// How one attempt ended.
enum Ended<T> {
    /// The agent returned.
    Returned(T),
    /// The attempt's deadline passed while the agent ran.
    TimedOut,
    /// The deadline had passed before the agent was first polled: the agent
    /// did nothing, so the breaker records nothing.
    Expired,
    /// The step was cancelled and the agent did not return within the grace period.
    Abandoned,
    /// The agent panicked; the payload's message.
    Panicked(String),
}

pin_project_lite::pin_project! {
    /// Like `tokio::time::timeout_at`, but the timer is created only if the
    /// operation does not finish on its first poll: a call that completes at
    /// once never touches the timer wheel. The deadline is checked before the
    /// agent's first poll when time may have passed since it was set (a
    /// retry, whose backoff's observers ran; a journal flush that wrote), a
    /// panic in the agent ends the attempt, and once `cancel` fires the agent
    /// has `grace` left to return before it is abandoned.
    struct Deadline<'a, F, O: ?Sized> {
        #[pin]
        fut: F,
        deadline: Instant,
        first_poll: bool,
        retry: bool,
        waiting: Option<Pin<Box<Waiting<'a>>>>,
        cancel: &'a CancellationToken,
        grace: &'a Duration,
        observer: &'a O,
    }
}

pin_project_lite::pin_project! {
    /// What an attempt that did not finish on its first poll also waits on,
    /// in one allocation made only then.
    struct Waiting<'a> {
        #[pin]
        sleep: tokio::time::Sleep,
        #[pin]
        cancelled: WaitForCancellationFuture<'a>,
        in_grace: bool,
    }
}

impl<F: Future, O: Observer + ?Sized> Future for Deadline<'_, F, O> {
    type Output = Ended<F::Output>;
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // After the observer's flush (a journal write may block), before the
        // agent's first poll: a retry always (its backoff's observers ran),
        // a first attempt only when the flush did write.
        let wrote = this.observer.before_agent_poll();
        if std::mem::take(this.first_poll) && (*this.retry || wrote) && Instant::now() >= *this.deadline {
            return Poll::Ready(Ended::Expired);
        }
        match catch_unwind(AssertUnwindSafe(|| this.fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(v)) => return Poll::Ready(Ended::Returned(v)),
            Ok(Poll::Pending) => {}
            Err(panic) => return Poll::Ready(Ended::Panicked(panic_message(&*panic))),
        }
        let (deadline, cancel) = (*this.deadline, *this.cancel);
        let waiting = this.waiting.get_or_insert_with(|| {
            Box::pin(Waiting {
                sleep: tokio::time::sleep_until(deadline),
                cancelled: cancel.cancelled(),
                in_grace: false,
            })
        });
        let mut w = waiting.as_mut().project();
        if !*w.in_grace && w.cancelled.poll(cx).is_ready() {
            *w.in_grace = true;
            let end = saturating_after(Instant::now(), **this.grace);
            if end < deadline {
                *this.deadline = end;
                w.sleep.as_mut().reset(end);
            }
        }
        if w.sleep.poll(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(if *w.in_grace { Ended::Abandoned } else { Ended::TimedOut })
    }
}

#[allow(clippy::too_many_arguments)]
async fn run<T, F, Fut, O>(
    started: Instant,
    check_first: bool,
    policy: &Policy,
    breaker: Option<&CircuitBreaker>,
    cancel: &CancellationToken,
    observer: &O,
    mut op: F,
) -> Result<T, StepError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, AgentError>>,
    O: Observer + ?Sized,
{
    let deadline = saturating_after(started, policy.timeout);
    let max_attempts = policy.retry.max_attempts.max(1);
    let mut attempt_start = started;
    let mut attempt = 1u32;
    let mut rng: Option<fastrand::Rng> = None;
    // The error of the attempt before this one: what the step fails with
    // when a retry cannot be made after all.
    let mut previous: Option<Box<StepError>> = None;
    loop {
        if (attempt > 1 || check_first) && cancel.is_cancelled() {
            return Err(StepError::cancelled(attempt));
        }
        let permit = match breaker {
            Some(b) => match b.try_acquire(|t| observer.circuit(t)) {
                Ok(p) => Some(p),
                Err(CircuitOpen) => {
                    // Opened by another caller during the backoff: the step
                    // fails with its own last error, not with the breaker's.
                    return Err(match previous {
                        Some(e) => not_retried(*e, b),
                        None => StepError::new(ErrorKind::CircuitOpen, open_breaker(b), attempt),
                    });
                }
            },
            None => None,
        };
        observer.attempt_started(attempt, attempt_start);
        let attempt_deadline = match policy.attempt_timeout {
            Some(t) => deadline.min(saturating_after(attempt_start, t)),
            None => deadline,
        };
        // The closure only builds the attempt's future (an agent's code runs
        // when it is polled, where panics are caught); catching here would
        // copy the whole future through the unwinding machinery.
        let attempt_fut = Deadline {
            fut: op(attempt),
            deadline: attempt_deadline,
            first_poll: true,
            retry: attempt > 1,
            waiting: None,
            cancel,
            grace: &policy.cancel_grace,
            observer,
        };
        let span = observer.attempt_span(attempt);
        let res = if span.is_disabled() {
            attempt_fut.await
        } else {
            crate::telemetry::stamp_ids(&span);
            tracing::Instrument::instrument(attempt_fut, span.clone()).await
        };
        let expired = matches!(res, Ended::Expired);
        let (error, hint) = match res {
            Ended::Returned(Ok(v)) => {
                if let Some(p) = permit {
                    p.success(|t| observer.circuit(t));
                }
                crate::telemetry::end_span(&span, "attempt", "succeeded", None, None);
                return Ok(v);
            }
            // Only the execution's token makes a cancellation: dropping the
            // permit frees a half-open slot and records nothing.
            _ if cancel.is_cancelled() => {
                crate::telemetry::end_span(&span, "attempt", "cancelled", None, None);
                return Err(match res {
                    Ended::Abandoned => StepError::new(
                        ErrorKind::Cancelled,
                        format!(
                            "cancelled; the agent did not return within the cancel grace of {} ms and was abandoned",
                            policy.cancel_grace.as_millis()
                        ),
                        attempt,
                    ),
                    _ => StepError::cancelled(attempt),
                });
            }
            Ended::Returned(Err(e)) => {
                let kind = match e.kind() {
                    AgentErrorKind::Fatal => ErrorKind::Fatal,
                    AgentErrorKind::BudgetExceeded => ErrorKind::BudgetExceeded,
                    AgentErrorKind::Retryable | AgentErrorKind::Cancelled => ErrorKind::AgentFailed,
                };
                let message = if e.kind() == AgentErrorKind::Cancelled {
                    "the agent returned `cancelled` although its step was not cancelled"
                } else {
                    e.message()
                };
                (StepError::new(kind, message, attempt).with_reason(e.reason()), e.retry_after())
            }
            Ended::Panicked(message) => {
                (StepError::new(ErrorKind::Fatal, format!("the agent panicked: {message}"), attempt), None)
            }
            Ended::TimedOut | Ended::Abandoned | Ended::Expired => {
                let mut message = if attempt_deadline == deadline {
                    format!("step timed out after {} ms", policy.timeout.as_millis())
                } else {
                    format!("attempt timed out after {} ms", policy.attempt_timeout.unwrap_or_default().as_millis())
                };
                if expired {
                    message.push_str(&format!(" before attempt {attempt} started"));
                }
                (StepError::new(ErrorKind::Timeout, message, attempt), None)
            }
        };
        // An attempt that never ran is not the agent's failure; dropping its
        // permit unrecorded frees a half-open slot.
        // Nor is a spent token budget.
        let not_the_agents = expired || error.kind == ErrorKind::BudgetExceeded;
        if let Some(p) = permit.filter(|_| !not_the_agents) {
            p.failure(|t| observer.circuit(t));
        }
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(attempt_start);
        let outcome = if error.kind == ErrorKind::Timeout { "timed_out" } else { "failed" };
        crate::telemetry::end_span(&span, "attempt", outcome, Some(&error), u64::try_from(elapsed.as_millis()).ok());
        observer.attempt_failed(attempt, &error, elapsed);
        let retryable = matches!(error.kind, ErrorKind::AgentFailed | ErrorKind::Timeout);
        if !retryable || attempt >= max_attempts {
            return Err(error);
        }
        // An open circuit is not retried, whoever opened it.
        if let Some(b) = breaker.filter(|b| b.state() == CircuitState::Open) {
            return Err(not_retried(error, b));
        }
        let rng = rng.get_or_insert_with(fastrand::Rng::new);
        let mut delay = policy.retry.delay(attempt, rng);
        // The hint is a floor: the agent asked to wait at least that long
        // (past `maxDelay` too); the step's deadline is the only cap.
        if let Some(hint) = hint {
            delay = delay.max(hint);
        }
        if delay >= deadline.saturating_duration_since(now) {
            let mut error = error;
            error.message.push_str(&format!(
                "; retry not started: a {} ms delay would overrun the step timeout of {} ms",
                delay.as_millis(),
                policy.timeout.as_millis()
            ));
            return Err(error);
        }
        // Shorter than what is left before the deadline, so this cannot overflow.
        let wake = now + delay;
        observer.retry_scheduled(attempt + 1, delay);
        // Until an instant, not for a duration: a slow observer above does
        // not push the next attempt later.
        let sleep = tokio::time::sleep_until(wake);
        let span = observer.retry_span(attempt + 1, delay);
        let cancelled = tracing::Instrument::instrument(
            async {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => true,
                    _ = sleep => false,
                }
            },
            span,
        )
        .await;
        if cancelled {
            return Err(StepError::cancelled(attempt));
        }
        previous = Some(Box::new(error));
        attempt += 1;
        attempt_start = Instant::now();
    }
}

/// `error`, noting that the open breaker stopped its retry.
fn not_retried(mut error: StepError, breaker: &CircuitBreaker) -> StepError {
    error.message.push_str(&format!("; not retried: the {}", open_breaker(breaker)));
    error
}

/// "circuit breaker for agent ID@VERSION is open".
fn open_breaker(breaker: &CircuitBreaker) -> String {
    let key = breaker.key();
    format!("circuit breaker for agent {}@{} is open", key.agent_id, key.version)
}
