//! Circuit breaker per agent id and version, and the bounded registry that
//! shares breakers between every step and execution in the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::policy::CircuitBreakerPolicy;

/// The three states of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls pass; consecutive failures are counted.
    Closed,
    /// Calls fail at once with `circuit_open`.
    Open,
    /// A limited number of probe calls pass.
    HalfOpen,
}

impl CircuitState {
    /// `closed`, `open`, `half_open`: the journal's and the telemetry's word.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }

    fn from_word(w: u64) -> CircuitState {
        match w & STATE_MASK {
            0 => CircuitState::Closed,
            1 => CircuitState::Open,
            _ => CircuitState::HalfOpen,
        }
    }
    fn bits(self) -> u64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::Open => 1,
            CircuitState::HalfOpen => 2,
        }
    }
}

const STATE_MASK: u64 = 0b11;

/// Identifies a breaker: agent id and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BreakerKey {
    /// The agent's id.
    pub agent_id: Arc<str>,
    /// The agent's version.
    pub version: Arc<str>,
}

/// One state change of a breaker. Each change is reported exactly once, to
/// the caller whose call caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitTransition {
    /// Which breaker.
    pub key: BreakerKey,
    /// State before.
    pub from: CircuitState,
    /// State after.
    pub to: CircuitState,
}

impl CircuitTransition {
    /// The journal event this transition is recorded as.
    pub fn event(&self) -> crate::journal::EventKind {
        use crate::journal::EventKind;
        match self.to {
            CircuitState::Open => EventKind::CircuitOpened,
            CircuitState::HalfOpen => EventKind::CircuitHalfOpened,
            CircuitState::Closed => EventKind::CircuitClosed,
        }
    }
}

/// A call refused because the breaker is open (or half-open and full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit open")]
pub struct CircuitOpen;

#[derive(Debug)]
struct Inner {
    opened_at: Instant,
    in_flight: u32,
    successes: u32,
}

/// A circuit breaker. Consecutive failed attempts (timeouts included) open
/// it; after `resetTimeout` it admits at most `halfOpenRequests` probes at
/// once, closes after that many successes and reopens on any failure.
///
/// The closed state is served by two atomics (no lock on the success path);
/// every transition happens under the mutex.
///
/// Steps get theirs from a [`BreakerRegistry`]; [`call`](crate::resilience::call)
/// asks it for a [`Permit`] per attempt. By hand:
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::{CircuitBreaker, CircuitBreakerPolicy, CircuitState};
///
/// let policy = CircuitBreakerPolicy { failure_threshold: 2, reset_timeout: Duration::from_secs(30), half_open_requests: 1 };
/// let breaker = CircuitBreaker::new("fetch", "1.0.0", policy);
/// for _ in 0..2 {
///     let permit = breaker.try_acquire(|_| {}).expect("closed: the call may go");
///     permit.failure(|transition| println!("{transition:?}"));
/// }
/// assert_eq!(breaker.state(), CircuitState::Open);
/// assert!(breaker.try_acquire(|_| {}).is_err()); // refused until the reset timeout has passed
/// ```
#[derive(Debug)]
pub struct CircuitBreaker {
    key: BreakerKey,
    policy: CircuitBreakerPolicy,
    /// `generation << 2 | state`: permits remember the word they were issued
    /// under, so an outcome from an earlier state is ignored.
    word: AtomicU64,
    failures: AtomicU32,
    inner: Mutex<Inner>,
    /// Someone asked the registry for this breaker with other settings (warned once).
    other_settings_seen: AtomicBool,
}

impl CircuitBreaker {
    /// A closed breaker for `agent_id`@`version`.
    pub fn new(agent_id: impl Into<Arc<str>>, version: impl Into<Arc<str>>, policy: CircuitBreakerPolicy) -> Self {
        CircuitBreaker {
            key: BreakerKey { agent_id: agent_id.into(), version: version.into() },
            policy,
            word: AtomicU64::new(CircuitState::Closed.bits()),
            failures: AtomicU32::new(0),
            inner: Mutex::new(Inner { opened_at: Instant::now(), in_flight: 0, successes: 0 }),
            other_settings_seen: AtomicBool::new(false),
        }
    }

    /// Agent id and version.
    pub fn key(&self) -> &BreakerKey {
        &self.key
    }

    /// The settings this breaker was created with.
    pub fn policy(&self) -> &CircuitBreakerPolicy {
        &self.policy
    }

    /// The current state (an open breaker whose reset timeout has passed
    /// still reads `Open` until the next call moves it to half-open).
    pub fn state(&self) -> CircuitState {
        CircuitState::from_word(self.word.load(Ordering::Acquire))
    }

    /// Consecutive failures counted while closed.
    pub fn consecutive_failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave Inner inconsistent
        // (plain counters), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves to `to` (caller holds the lock and has checked `word`). The
    /// change is reported by [`report`](Self::report) once the lock is released.
    fn transition(&self, inner: &mut Inner, word: u64, to: CircuitState) -> CircuitTransition {
        let from = CircuitState::from_word(word);
        let next = ((word >> 2) + 1) << 2 | to.bits();
        match to {
            CircuitState::Open => {
                inner.opened_at = Instant::now();
                inner.in_flight = 0;
                inner.successes = 0;
            }
            CircuitState::HalfOpen => {
                inner.in_flight = 0;
                inner.successes = 0;
            }
            CircuitState::Closed => {
                self.failures.store(0, Ordering::Relaxed);
            }
        }
        self.word.store(next, Ordering::Release);
        CircuitTransition { key: self.key.clone(), from, to }
    }

    /// Tells the log and the caller's observer about a transition. Never
    /// under the lock: an observer (a journal write) may be slow, and every
    /// caller of the agent would wait for it.
    fn report(&self, t: Option<CircuitTransition>, mut on_transition: impl FnMut(CircuitTransition)) {
        let Some(t) = t else { return };
        let (from, to) = (t.from, t.to);
        // An event on the span of the step whose call changed it (a span
        // event in a trace), not a span of its own: it takes no time.
        tracing::info!(
            agent_id = &*self.key.agent_id,
            version = &*self.key.version,
            from = from.as_str(),
            to = to.as_str(),
            "circuit.state: circuit breaker state changed"
        );
        on_transition(t);
    }

    /// Asks to make one call. `on_transition` sees an open→half-open change
    /// this request causes.
    pub fn try_acquire(&self, on_transition: impl FnMut(CircuitTransition)) -> Result<Permit<'_>, CircuitOpen> {
        let word = self.word.load(Ordering::Acquire);
        if word & STATE_MASK == CircuitState::Closed.bits() {
            return Ok(Permit { breaker: self, word, done: false });
        }
        let mut inner = self.lock();
        let mut word = self.word.load(Ordering::Acquire);
        let mut changed = None;
        match CircuitState::from_word(word) {
            CircuitState::Closed => return Ok(Permit { breaker: self, word, done: false }),
            CircuitState::Open => {
                if Instant::now() < super::saturating_after(inner.opened_at, self.policy.reset_timeout) {
                    return Err(CircuitOpen);
                }
                changed = Some(self.transition(&mut inner, word, CircuitState::HalfOpen));
                word = self.word.load(Ordering::Acquire);
            }
            CircuitState::HalfOpen => {}
        }
        let admitted = inner.in_flight < self.policy.half_open_requests;
        if admitted {
            inner.in_flight += 1;
        }
        drop(inner);
        self.report(changed, on_transition);
        if admitted {
            Ok(Permit { breaker: self, word, done: false })
        } else {
            Err(CircuitOpen)
        }
    }
}

/// Leave to make one call. Record its outcome with [`success`](Self::success)
/// or [`failure`](Self::failure); dropping it unrecorded (a cancelled call, an
/// ignored outcome) changes nothing but frees a half-open slot.
#[derive(Debug)]
#[must_use = "record the outcome, or drop the permit to ignore it"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    word: u64,
    done: bool,
}

impl Permit<'_> {
    /// The state the call was admitted in.
    pub fn admitted_in(&self) -> CircuitState {
        CircuitState::from_word(self.word)
    }

    /// Records a successful call.
    pub fn success(mut self, on_transition: impl FnMut(CircuitTransition)) {
        self.done = true;
        let b = self.breaker;
        if self.word & STATE_MASK == CircuitState::Closed.bits() {
            // Fast path: reset the streak only when there is one.
            if b.word.load(Ordering::Acquire) == self.word && b.failures.load(Ordering::Relaxed) != 0 {
                b.failures.store(0, Ordering::Relaxed);
            }
            return;
        }
        let mut inner = b.lock();
        if b.word.load(Ordering::Acquire) != self.word {
            return;
        }
        inner.in_flight = inner.in_flight.saturating_sub(1);
        inner.successes += 1;
        let changed = (inner.successes >= b.policy.half_open_requests)
            .then(|| b.transition(&mut inner, self.word, CircuitState::Closed));
        drop(inner);
        b.report(changed, on_transition);
    }

    /// Records a failed call (an error, a panic or a timed-out attempt).
    pub fn failure(mut self, on_transition: impl FnMut(CircuitTransition)) {
        self.done = true;
        let b = self.breaker;
        if self.word & STATE_MASK == CircuitState::Closed.bits() {
            if b.word.load(Ordering::Acquire) != self.word {
                return;
            }
            let n = b.failures.fetch_add(1, Ordering::AcqRel) + 1;
            if n < b.policy.failure_threshold {
                return;
            }
        }
        let mut inner = b.lock();
        if b.word.load(Ordering::Acquire) != self.word {
            return;
        }
        let changed = b.transition(&mut inner, self.word, CircuitState::Open);
        drop(inner);
        b.report(Some(changed), on_transition);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.done || self.word & STATE_MASK != CircuitState::HalfOpen.bits() {
            return;
        }
        let mut inner = self.breaker.lock();
        if self.breaker.word.load(Ordering::Acquire) == self.word {
            inner.in_flight = inner.in_flight.saturating_sub(1);
        }
    }
}

/// A bounded map from agent id and version to breaker.
///
/// [`BreakerRegistry::global`] is the one shared by the process; tests build
/// their own with [`BreakerRegistry::new`]. A breaker's settings are those of
/// the first step that asked for it; the first request with other settings
/// is logged as a warning.
///
/// ```
/// use std::sync::Arc;
/// use orchestr8_runtime::{BreakerRegistry, CircuitBreakerPolicy};
///
/// let registry = BreakerRegistry::new(100);
/// let a = registry.get("fetch", "1.0.0", &CircuitBreakerPolicy::default());
/// let b = registry.get("fetch", "1.0.0", &CircuitBreakerPolicy::default());
/// assert!(Arc::ptr_eq(&a, &b)); // one breaker per agent id and version
/// ```
///
/// Eviction never splits a key or forgets a circuit that is not closed: when
/// the registry is full, only a breaker that no step holds and that is closed
/// may go (one without failures first). When none may, the registry holds
/// more than its capacity until one may: the excess is bounded by the
/// breakers steps hold and the circuits that are open or half-open.
#[derive(Debug)]
pub struct BreakerRegistry {
    capacity: usize,
    map: Mutex<HashMap<BreakerKey, Arc<CircuitBreaker>>>,
}

/// Breakers kept by [`BreakerRegistry::global`].
pub const DEFAULT_REGISTRY_CAPACITY: usize = 1024;

impl BreakerRegistry {
    /// A registry holding at most `capacity` idle breakers (at least 1).
    pub fn new(capacity: usize) -> Self {
        BreakerRegistry { capacity: capacity.max(1), map: Mutex::new(HashMap::new()) }
    }

    /// The process-wide registry.
    pub fn global() -> &'static BreakerRegistry {
        static GLOBAL: OnceLock<BreakerRegistry> = OnceLock::new();
        GLOBAL.get_or_init(|| BreakerRegistry::new(DEFAULT_REGISTRY_CAPACITY))
    }

    /// The breaker for `agent_id`@`version`, created with `policy` if absent;
    /// every caller asking for one key gets the same breaker.
    pub fn get(&self, agent_id: &str, version: &str, policy: &CircuitBreakerPolicy) -> Arc<CircuitBreaker> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let key = BreakerKey { agent_id: agent_id.into(), version: version.into() };
        if let Some(b) = map.get(&key) {
            // One breaker per key keeps the first settings; `validate` warns
            // within a workflow (W0322), this across workflows in a process.
            if b.policy != *policy && !b.other_settings_seen.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    agent_id,
                    version,
                    in_use = ?b.policy,
                    asked = ?policy,
                    "circuit breaker asked for with other settings than the ones in use, which stay: \
                     failure_threshold, reset_timeout and half_open_requests are per agent and version"
                );
            }
            return b.clone();
        }
        if map.len() >= self.capacity {
            // Held: a step keeps using it, so a new one would split the key.
            let evictable = |b: &Arc<CircuitBreaker>| Arc::strong_count(b) == 1 && b.state() == CircuitState::Closed;
            let victim = map
                .iter()
                .filter(|(_, b)| evictable(b))
                .min_by_key(|(_, b)| b.consecutive_failures())
                .map(|(k, _)| k.clone());
            if let Some(k) = victim {
                map.remove(&k);
            }
        }
        let b = Arc::new(CircuitBreaker::new(key.agent_id.clone(), key.version.clone(), *policy));
        map.insert(key, b.clone());
        b
    }

    /// Breakers held now.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no breaker is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most breakers held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
