//! Resilience policies: the resolved form the runtime uses, the partial form
//! a workflow writes, and their merge (built-ins <- `default` <- named <- inline).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Durations as the contract writes them: integer milliseconds or strings
/// such as `"250ms"`, `"30s"`, `"2m"`.
pub mod duration {
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// A duration string or number that does not parse.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("invalid duration {input:?}: expected integer milliseconds or a number with unit ms, s, m or h (e.g. \"250ms\", \"30s\", \"2m\")")]
    pub struct ParseDurationError {
        input: String,
    }

    /// Parses `"250ms"`, `"30s"`, `"2m"`, `"1h"` or a bare integer of milliseconds.
    pub fn parse(s: &str) -> Result<Duration, ParseDurationError> {
        let err = || ParseDurationError { input: s.to_owned() };
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(err());
        }
        let n: u64 = num.parse().map_err(|_| err())?;
        let ms = match unit.trim() {
            "" | "ms" => Some(n),
            "s" => n.checked_mul(1_000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            _ => None,
        }
        .ok_or_else(err)?;
        Ok(Duration::from_millis(ms))
    }

    /// Serialises as integer milliseconds.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    /// Deserialises integer milliseconds or a duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("integer milliseconds or a string such as \"250ms\", \"30s\", \"2m\"")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v).map(Duration::from_millis).map_err(|_| E::custom("a duration cannot be negative"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            // JSON writers sometimes emit 1000.0; accept whole numbers only.
            if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
                Ok(Duration::from_millis(v as u64))
            } else {
                Err(E::custom("a duration in milliseconds must be a non-negative integer"))
            }
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::duration::parse(v).map_err(E::custom)
        }
    }

    /// `Option<Duration>` with the same formats.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserializer, Serializer};

        /// Serialises `Some` as integer milliseconds.
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        /// Deserialises a present value with [`super::deserialize`].
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// Retry with exponential backoff. `max_attempts` counts calls, the first included.
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

/// Circuit breaker settings.
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

/// A fully resolved policy: what a step runs with.
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
    /// Optional bound on a single attempt (Rust API only; the contract has no
    /// such field). A timed-out attempt is retryable while the step's
    /// `timeout` leaves room. `None`: an attempt may use the rest of the step's time.
    #[serde(default, skip)]
    pub attempt_timeout: Option<Duration>,
}

impl Default for Policy {
    /// The contract's built-in defaults: 30 s timeout, 3 attempts from 1 s
    /// doubling to 10 s with jitter, breaker 5 failures / 60 s / 3 probes.
    fn default() -> Self {
        Policy {
            timeout: Duration::from_millis(30_000),
            retry: RetryPolicy::default(),
            circuit_breaker: CircuitBreakerPolicy::default(),
            attempt_timeout: None,
        }
    }
}

/// The partial retry settings a workflow writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryOverlay {
    /// See [`RetryPolicy::max_attempts`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// See [`RetryPolicy::initial_delay`].
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Duration>,
    /// See [`RetryPolicy::max_delay`].
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Duration>,
    /// See [`RetryPolicy::backoff_multiplier`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_multiplier: Option<f64>,
    /// See [`RetryPolicy::jitter`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
}

/// The partial breaker settings a workflow writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreakerOverlay {
    /// See [`CircuitBreakerPolicy::failure_threshold`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// See [`CircuitBreakerPolicy::reset_timeout`].
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub reset_timeout: Option<Duration>,
    /// See [`CircuitBreakerPolicy::half_open_requests`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_open_requests: Option<u32>,
}

/// A policy as written in a workflow: every field optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyOverlay {
    /// See [`Policy::timeout`].
    #[serde(default, with = "duration::option", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// See [`Policy::retry`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryOverlay>,
    /// See [`Policy::circuit_breaker`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerOverlay>,
}

/// A policy that cannot run (e.g. `maxAttempts: 0`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(String);

impl Policy {
    /// Applies the fields `overlay` sets on top of `self`, field by field.
    pub fn overlay(mut self, overlay: &PolicyOverlay) -> Self {
        if let Some(t) = overlay.timeout {
            self.timeout = t;
        }
        if let Some(r) = &overlay.retry {
            let p = &mut self.retry;
            p.max_attempts = r.max_attempts.unwrap_or(p.max_attempts);
            p.initial_delay = r.initial_delay.unwrap_or(p.initial_delay);
            p.max_delay = r.max_delay.unwrap_or(p.max_delay);
            p.backoff_multiplier = r.backoff_multiplier.unwrap_or(p.backoff_multiplier);
            p.jitter = r.jitter.unwrap_or(p.jitter);
        }
        if let Some(c) = &overlay.circuit_breaker {
            let p = &mut self.circuit_breaker;
            p.failure_threshold = c.failure_threshold.unwrap_or(p.failure_threshold);
            p.reset_timeout = c.reset_timeout.unwrap_or(p.reset_timeout);
            p.half_open_requests = c.half_open_requests.unwrap_or(p.half_open_requests);
        }
        self
    }

    /// Resolves a step's policy: built-ins, then `policies.default`, then the
    /// named policy, then an inline one; then checks it.
    pub fn resolve(
        default: Option<&PolicyOverlay>,
        named: Option<&PolicyOverlay>,
        inline: Option<&PolicyOverlay>,
    ) -> Result<Policy, PolicyError> {
        let mut p = Policy::default();
        for o in [default, named, inline].into_iter().flatten() {
            p = p.overlay(o);
        }
        p.validate()?;
        Ok(p)
    }

    /// Rejects settings the runtime cannot honour.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let r = &self.retry;
        let c = &self.circuit_breaker;
        if r.max_attempts == 0 {
            return Err(PolicyError("retry.maxAttempts must be at least 1".into()));
        }
        if !(r.backoff_multiplier.is_finite() && r.backoff_multiplier >= 1.0) {
            return Err(PolicyError("retry.backoffMultiplier must be a finite number >= 1".into()));
        }
        if r.initial_delay > r.max_delay {
            return Err(PolicyError("retry.initialDelay must not exceed retry.maxDelay".into()));
        }
        if self.timeout.is_zero() {
            return Err(PolicyError("timeout must be positive".into()));
        }
        if c.failure_threshold == 0 || c.half_open_requests == 0 {
            return Err(PolicyError("circuitBreaker.failureThreshold and halfOpenRequests must be at least 1".into()));
        }
        Ok(())
    }
}
