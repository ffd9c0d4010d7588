//! Timeout, retry and circuit breaker, composed as the contract says: the
//! step timeout bounds every attempt and every sleep, the breaker counts every
//! attempt (timeouts included), and an open breaker is never retried.

mod breaker;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use breaker::{
    BreakerKey, BreakerRegistry, CircuitBreaker, CircuitOpen, CircuitState, CircuitTransition, Permit,
    DEFAULT_REGISTRY_CAPACITY,
};

use crate::agent::{AgentError, AgentErrorKind};
use crate::error::{ErrorKind, StepError};
use crate::policy::Policy;

/// Hooks called by [`call`] as a step's attempts unfold. Every method has a
/// no-op default; `()` observes nothing.
pub trait Observer {
    /// Attempt `attempt` is about to call the agent; `at` is now.
    fn attempt_started(&self, _attempt: u32, _at: Instant) {}
    /// Agent code is about to run (each poll of an attempt); the executor
    /// flushes its journal here.
    fn before_agent_poll(&self) {}
    /// Attempt `attempt` failed after `elapsed`.
    fn attempt_failed(&self, _attempt: u32, _error: &StepError, _elapsed: Duration) {}
    /// Attempt `next_attempt` will start after `delay`.
    fn retry_scheduled(&self, _next_attempt: u32, _delay: Duration) {}
    /// The breaker changed state because of this step's call.
    fn circuit(&self, _transition: CircuitTransition) {}
    /// The span an attempt runs in (`agent.run`).
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
/// ignores it is ended by the step timeout. A cancelled call records nothing
/// in the breaker.
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

pin_project_lite::pin_project! {
    /// Like `tokio::time::timeout_at`, but the timer is created only if the
    /// operation does not finish on its first poll: a call that completes at
    /// once never touches the timer wheel.
    struct Deadline<'a, F, O: ?Sized> {
        #[pin]
        fut: F,
        deadline: Instant,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        observer: &'a O,
    }
}

impl<F: Future, O: Observer + ?Sized> Future for Deadline<'_, F, O> {
    type Output = Option<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.observer.before_agent_poll();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Some(v));
        }
        let deadline = *this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        sleep.as_mut().poll(cx).map(|()| None)
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
    let deadline = started + policy.timeout;
    let max_attempts = policy.retry.max_attempts.max(1);
    let mut attempt_start = started;
    let mut attempt = 1u32;
    let mut rng: Option<fastrand::Rng> = None;
    loop {
        if (attempt > 1 || check_first) && cancel.is_cancelled() {
            return Err(StepError::cancelled(attempt));
        }
        let permit = match breaker {
            Some(b) => match b.try_acquire(|t| observer.circuit(t)) {
                Ok(p) => Some(p),
                Err(CircuitOpen) => {
                    return Err(StepError::new(
                        ErrorKind::CircuitOpen,
                        format!("circuit breaker for agent {}@{} is open", b.key().agent_id, b.key().version),
                        attempt,
                    ))
                }
            },
            None => None,
        };
        observer.attempt_started(attempt, attempt_start);
        let attempt_deadline = match policy.attempt_timeout {
            Some(t) => deadline.min(attempt_start + t),
            None => deadline,
        };
        let span = observer.attempt_span(attempt);
        let attempt_fut = Deadline { fut: op(attempt), deadline: attempt_deadline, sleep: None, observer };
        let res = if span.is_disabled() {
            attempt_fut.await
        } else {
            tracing::Instrument::instrument(attempt_fut, span).await
        };
        let (error, hint) = match res {
            Some(Ok(v)) => {
                if let Some(p) = permit {
                    p.success(|t| observer.circuit(t));
                }
                return Ok(v);
            }
            Some(Err(e)) => {
                if e.kind() == AgentErrorKind::Cancelled || cancel.is_cancelled() {
                    // Dropping the permit frees a half-open slot, records nothing.
                    return Err(StepError::cancelled(attempt));
                }
                if let Some(p) = permit {
                    p.failure(|t| observer.circuit(t));
                }
                let kind = if e.kind() == AgentErrorKind::Fatal { ErrorKind::Fatal } else { ErrorKind::AgentFailed };
                (StepError::new(kind, e.message(), attempt), e.retry_after())
            }
            None => {
                if cancel.is_cancelled() {
                    return Err(StepError::cancelled(attempt));
                }
                if let Some(p) = permit {
                    p.failure(|t| observer.circuit(t));
                }
                let err = StepError::new(
                    ErrorKind::Timeout,
                    if attempt_deadline == deadline {
                        format!("step timed out after {} ms", policy.timeout.as_millis())
                    } else {
                        format!("attempt timed out after {} ms", policy.attempt_timeout.unwrap_or_default().as_millis())
                    },
                    attempt,
                );
                if attempt_deadline == deadline {
                    observer.attempt_failed(attempt, &err, deadline - attempt_start);
                    return Err(err);
                }
                (err, None)
            }
        };
        let now = Instant::now();
        observer.attempt_failed(attempt, &error, now - attempt_start);
        let retryable = matches!(error.kind, ErrorKind::AgentFailed | ErrorKind::Timeout);
        if !retryable || attempt >= max_attempts {
            return Err(error);
        }
        let rng = rng.get_or_insert_with(fastrand::Rng::new);
        let mut delay = policy.retry.delay(attempt, rng);
        // The hint is a floor: the agent asked to wait at least that long.
        if let Some(hint) = hint {
            delay = delay.max(hint);
        }
        if now + delay >= deadline {
            let mut error = error;
            error.message.push_str(&format!(
                "; retry not started: a {} ms delay would overrun the step timeout of {} ms",
                delay.as_millis(),
                policy.timeout.as_millis()
            ));
            return Err(error);
        }
        observer.retry_scheduled(attempt + 1, delay);
        let sleep = tokio::time::sleep(delay);
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
        attempt += 1;
        attempt_start = Instant::now();
    }
}
