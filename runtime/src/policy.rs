//! Resilience policies: the resolved form the runtime uses, the partial form
//! a workflow writes, and their merge (built-ins <- `default` <- named <- inline).

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use orchestr8_schema::ast::{parse_duration, CircuitBreakerOverlay, DurationError, PolicyOverlay, RetryOverlay};

/// Resolved durations on the wire: integer milliseconds, read back in any
/// form the contract allows (through the format's one parser).
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        orchestr8_schema::ast::Duration::deserialize(d)?.to_std().map_err(serde::de::Error::custom)
    }
}

/// Retry with exponential backoff. `max_attempts` counts calls, the first included.
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::RetryPolicy;
///
/// let retry = RetryPolicy { max_attempts: 5, jitter: false, ..RetryPolicy::default() };
/// // 1 s, doubling, capped at 10 s.
/// let delays: Vec<u64> = (1..5).map(|n| retry.backoff(n).as_secs()).collect();
/// assert_eq!(delays, [1, 2, 4, 8]);
/// assert_eq!(retry.backoff(9), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Most calls a step makes (3 means at most 3 calls). At least 1.
    pub max_attempts: u32,
    /// Delay before the second attempt.
    #[serde(with = "duration")]
    pub initial_delay: Duration,
    /// Cap on every delay, jitter included.
    #[serde(with = "duration")]
    pub max_delay: Duration,
    /// Growth factor between delays.
    pub backoff_multiplier: f64,
    /// Full jitter: draw uniformly in `[0, delay]`.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(1_000),
            max_delay: Duration::from_millis(10_000),
            backoff_multiplier: 2.0,
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `n + 1`, before jitter:
    /// `min(maxDelay, initialDelay * backoffMultiplier^(n-1))`. `n` starts at 1.
    pub fn backoff(&self, n: u32) -> Duration {
        let exp = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let mult = if self.backoff_multiplier.is_finite() && self.backoff_multiplier >= 0.0 {
            self.backoff_multiplier
        } else {
            1.0
        };
        let secs = self.initial_delay.as_secs_f64() * mult.powi(exp);
        let cap = self.max_delay.as_secs_f64();
        // NaN and overflow both fall back to the cap.
        if secs.is_finite() && secs < cap {
            Duration::from_secs_f64(secs.max(0.0)).min(self.max_delay)
        } else {
            self.max_delay
        }
    }

    /// [`backoff`](Self::backoff) with full jitter applied when enabled; the
    /// result never exceeds `maxDelay`.
    pub fn delay(&self, n: u32, rng: &mut fastrand::Rng) -> Duration {
        let d = self.backoff(n);
        if self.jitter {
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(rng.u64(0..=nanos))
        } else {
            d
        }
    }
}

/// Circuit breaker settings: one breaker per agent id and version, shared
/// by every step that calls it (see [`CircuitBreaker`](crate::CircuitBreaker)).
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::CircuitBreakerPolicy;
///
/// // Open after 3 failures in a row, probe again after 10 s with one call.
/// let breaker = CircuitBreakerPolicy { failure_threshold: 3, reset_timeout: Duration::from_secs(10), half_open_requests: 1 };
/// assert_eq!(serde_json::to_value(breaker).unwrap()["resetTimeout"], 10_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerPolicy {
    /// Consecutive failed attempts (timeouts included) that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before admitting probes.
    #[serde(with = "duration")]
    pub reset_timeout: Duration,
    /// Probes admitted at once while half-open, and successes needed to close.
    pub half_open_requests: u32,
}

impl Default for CircuitBreakerPolicy {
    fn default() -> Self {
        CircuitBreakerPolicy {
            failure_threshold: 5,
            reset_timeout: Duration::from_millis(60_000),
            half_open_requests: 3,
        }
    }
}

/// A fully resolved policy: what a step runs with. A workflow's partial
/// policies ([`PolicyOverlay`]) resolve into one with [`Policy::resolve`];
/// [`Policy::default`] is the contract's built-ins.
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::{Policy, RetryPolicy};
///
/// let policy = Policy {
///     timeout: Duration::from_secs(5),
///     retry: RetryPolicy { max_attempts: 2, ..RetryPolicy::default() },
///     ..Policy::default()
/// };
/// policy.validate().unwrap();
/// assert_eq!(policy.circuit_breaker.failure_threshold, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Bounds the whole step: every attempt and every backoff sleep.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Retry settings.
    pub retry: RetryPolicy,
    /// Circuit breaker settings.
    pub circuit_breaker: CircuitBreakerPolicy,
    /// Bound on a single attempt (`attemptTimeout`). A timed-out attempt is
    /// retryable while the step's `timeout` leaves room. `None`: an attempt
    /// may use the rest of the step's time.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_duration")]
    pub attempt_timeout: Option<Duration>,
    /// How long an agent may take to return once its step is cancelled
    /// (`cancelGrace`); after that its future is dropped and the step is
    /// recorded as cancelled.
    #[serde(default = "default_cancel_grace", with = "duration")]
    pub cancel_grace: Duration,
}

/// The built-in `cancelGrace`.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_millis(5_000);

fn default_cancel_grace() -> Duration {
    DEFAULT_CANCEL_GRACE
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<orchestr8_schema::ast::Duration>::deserialize(d)?
            .map(|d| d.to_std().map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl Default for Policy {
    /// The contract's built-in defaults: 30 s timeout, no attempt timeout,
    /// 3 attempts from 1 s doubling to 10 s with jitter, breaker 5 failures /
    /// 60 s / 3 probes, 5 s cancel grace.
    fn default() -> Self {
        Policy {
            timeout: Duration::from_millis(30_000),
            retry: RetryPolicy::default(),
            circuit_breaker: CircuitBreakerPolicy::default(),
            attempt_timeout: None,
            cancel_grace: DEFAULT_CANCEL_GRACE,
        }
    }
}

/// A field of a policy, for errors that say which one is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyField {
    /// `timeout`
    Timeout,
    /// `attemptTimeout`
    AttemptTimeout,
    /// `cancelGrace`
    CancelGrace,
    /// `retry.maxAttempts`
    MaxAttempts,
    /// `retry.initialDelay`
    InitialDelay,
    /// `retry.maxDelay`
    MaxDelay,
    /// `retry.backoffMultiplier`
    BackoffMultiplier,
    /// `circuitBreaker.failureThreshold`
    FailureThreshold,
    /// `circuitBreaker.resetTimeout`
    ResetTimeout,
    /// `circuitBreaker.halfOpenRequests`
    HalfOpenRequests,
}

impl PolicyField {
    /// Its JSON pointer below the policy object (`/retry/maxAttempts`).
    pub fn pointer(self) -> &'static str {
        match self {
            PolicyField::Timeout => "/timeout",
            PolicyField::AttemptTimeout => "/attemptTimeout",
            PolicyField::CancelGrace => "/cancelGrace",
            PolicyField::MaxAttempts => "/retry/maxAttempts",
            PolicyField::InitialDelay => "/retry/initialDelay",
            PolicyField::MaxDelay => "/retry/maxDelay",
            PolicyField::BackoffMultiplier => "/retry/backoffMultiplier",
            PolicyField::FailureThreshold => "/circuitBreaker/failureThreshold",
            PolicyField::ResetTimeout => "/circuitBreaker/resetTimeout",
            PolicyField::HalfOpenRequests => "/circuitBreaker/halfOpenRequests",
        }
    }

    /// Its name as the contract writes it (`maxAttempts`).
    pub fn name(self) -> &'static str {
        self.pointer().rsplit('/').next().unwrap_or_default()
    }

    /// Whether `overlay` sets it.
    pub fn is_set_in(self, overlay: &PolicyOverlay) -> bool {
        let retry = overlay.retry.as_ref();
        let breaker = overlay.circuit_breaker.as_ref();
        match self {
            PolicyField::Timeout => overlay.timeout.is_some(),
            PolicyField::AttemptTimeout => overlay.attempt_timeout.is_some(),
            PolicyField::CancelGrace => overlay.cancel_grace.is_some(),
            PolicyField::MaxAttempts => retry.is_some_and(|r| r.max_attempts.is_some()),
            PolicyField::InitialDelay => retry.is_some_and(|r| r.initial_delay.is_some()),
            PolicyField::MaxDelay => retry.is_some_and(|r| r.max_delay.is_some()),
            PolicyField::BackoffMultiplier => retry.is_some_and(|r| r.backoff_multiplier.is_some()),
            PolicyField::FailureThreshold => breaker.is_some_and(|c| c.failure_threshold.is_some()),
            PolicyField::ResetTimeout => breaker.is_some_and(|c| c.reset_timeout.is_some()),
            PolicyField::HalfOpenRequests => breaker.is_some_and(|c| c.half_open_requests.is_some()),
        }
    }
}

/// A policy that cannot run (e.g. `maxAttempts: 0`), with the fields at fault.
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::policy::{PolicyError, PolicyField};
/// use orchestr8_runtime::{Policy, RetryPolicy};
///
/// let retry = RetryPolicy { initial_delay: Duration::from_secs(20), ..RetryPolicy::default() };
/// let error = Policy { retry, ..Policy::default() }.validate().unwrap_err();
/// assert!(matches!(error, PolicyError::DelayOrder { .. }));
/// let pointers: Vec<&str> = error.fields().into_iter().map(PolicyField::pointer).collect();
/// assert_eq!(pointers, ["/retry/initialDelay", "/retry/maxDelay"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A duration that does not parse.
    #[error("invalid policy: `{}`: {error}", .field.name())]
    Duration {
        /// Which one.
        field: PolicyField,
        /// Why.
        error: DurationError,
    },
    /// A count or duration that must be positive is zero.
    #[error("invalid policy: `{}` must be greater than 0", .0.name())]
    Zero(PolicyField),
    /// `backoffMultiplier` below 1, or not finite.
    #[error("invalid policy: `backoffMultiplier` must be a finite number of at least 1")]
    Multiplier,
    /// The first delay is longer than the cap on every delay.
    #[error("invalid policy: `initialDelay` ({} ms) is longer than `maxDelay` ({} ms)", .initial.as_millis(), .max.as_millis())]
    DelayOrder {
        /// The resolved `initialDelay`.
        initial: Duration,
        /// The resolved `maxDelay`.
        max: Duration,
    },
}

impl PolicyError {
    /// The fields that make the policy invalid, most telling first.
    pub fn fields(&self) -> Vec<PolicyField> {
        match self {
            PolicyError::Duration { field, .. } | PolicyError::Zero(field) => vec![*field],
            PolicyError::Multiplier => vec![PolicyField::BackoffMultiplier],
            PolicyError::DelayOrder { .. } => vec![PolicyField::InitialDelay, PolicyField::MaxDelay],
        }
    }
}

impl Policy {
    /// Applies the fields `overlay` sets on top of `self`, field by field.
    pub fn overlay(mut self, overlay: &PolicyOverlay) -> Result<Self, PolicyError> {
        let parse = |d: &orchestr8_schema::ast::Duration, field| {
            d.to_std().map_err(|error| PolicyError::Duration { field, error })
        };
        let duration = |d: &Option<orchestr8_schema::ast::Duration>, field, current| match d {
            Some(d) => parse(d, field),
            None => Ok(current),
        };
        self.timeout = duration(&overlay.timeout, PolicyField::Timeout, self.timeout)?;
        if let Some(d) = &overlay.attempt_timeout {
            self.attempt_timeout = Some(parse(d, PolicyField::AttemptTimeout)?);
        }
        self.cancel_grace = duration(&overlay.cancel_grace, PolicyField::CancelGrace, self.cancel_grace)?;
        if let Some(r) = &overlay.retry {
            let p = &mut self.retry;
            p.max_attempts = r.max_attempts.unwrap_or(p.max_attempts);
            p.initial_delay = duration(&r.initial_delay, PolicyField::InitialDelay, p.initial_delay)?;
            p.max_delay = duration(&r.max_delay, PolicyField::MaxDelay, p.max_delay)?;
            p.backoff_multiplier = r.backoff_multiplier.unwrap_or(p.backoff_multiplier);
            p.jitter = r.jitter.unwrap_or(p.jitter);
        }
        if let Some(c) = &overlay.circuit_breaker {
            let p = &mut self.circuit_breaker;
            p.failure_threshold = c.failure_threshold.unwrap_or(p.failure_threshold);
            p.reset_timeout = duration(&c.reset_timeout, PolicyField::ResetTimeout, p.reset_timeout)?;
            p.half_open_requests = c.half_open_requests.unwrap_or(p.half_open_requests);
        }
        Ok(self)
    }

    /// Resolves a step's policy: the built-ins, then each layer in order
    /// (`policies.default`, then the named or inline policy); then checks it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use orchestr8_runtime::{Policy, PolicyOverlay};
    ///
    /// let default: PolicyOverlay = serde_json::from_value(serde_json::json!({"timeout": "10s"})).unwrap();
    /// let step: PolicyOverlay = serde_json::from_value(serde_json::json!({"retry": {"maxAttempts": 5}})).unwrap();
    /// let policy = Policy::resolve([&default, &step]).unwrap();
    /// assert_eq!((policy.timeout, policy.retry.max_attempts), (Duration::from_secs(10), 5));
    ///
    /// // A policy that cannot run names the field at fault.
    /// let never: PolicyOverlay = serde_json::from_value(serde_json::json!({"retry": {"maxAttempts": 0}})).unwrap();
    /// let error = Policy::resolve([&never]).unwrap_err();
    /// assert_eq!(error.to_string(), "invalid policy: `maxAttempts` must be greater than 0");
    /// ```
    pub fn resolve<'a>(layers: impl IntoIterator<Item = &'a PolicyOverlay>) -> Result<Policy, PolicyError> {
        let mut p = Policy::default();
        for layer in layers {
            p = p.overlay(layer)?;
        }
        p.validate()?;
        Ok(p)
    }

    /// Rejects settings the runtime cannot honour.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let r = &self.retry;
        let c = &self.circuit_breaker;
        let zero = [
            (self.timeout.is_zero(), PolicyField::Timeout),
            (self.attempt_timeout.is_some_and(|t| t.is_zero()), PolicyField::AttemptTimeout),
            (r.max_attempts == 0, PolicyField::MaxAttempts),
            (c.failure_threshold == 0, PolicyField::FailureThreshold),
            (c.reset_timeout.is_zero(), PolicyField::ResetTimeout),
            (c.half_open_requests == 0, PolicyField::HalfOpenRequests),
        ];
        if let Some((_, field)) = zero.into_iter().find(|(is_zero, _)| *is_zero) {
            return Err(PolicyError::Zero(field));
        }
        if !(r.backoff_multiplier.is_finite() && r.backoff_multiplier >= 1.0) {
            return Err(PolicyError::Multiplier);
        }
        if r.initial_delay > r.max_delay {
            return Err(PolicyError::DelayOrder { initial: r.initial_delay, max: r.max_delay });
        }
        Ok(())
    }
}
