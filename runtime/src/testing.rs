//! Test helpers: mock agents scripted per attempt, an observer that records
//! what the resilience layer did, and assertions on journals. Everything
//! runs on paused tokio time (`#[tokio::test(start_paused = true)]`).
//!
//! A workflow test: the agent is scripted to fail once, the retry's backoff
//! takes no real time, and the journal says what happened.
//!
//! ```
//! use std::sync::{Arc, OnceLock};
//! use orchestr8_runtime::codegen::{slot, store};
//! use orchestr8_runtime::testing::{assert_events, assert_events_in_order, assert_well_formed, paused_runtime, MockAgent};
//! use orchestr8_runtime::{AgentStep, ExecutionOptions, MemoryStore, Node, Runtime, Workflow, WorkflowInfo};
//! use serde_json::{json, Value};
//!
//! struct State { reply: OnceLock<Value> }
//!
//! let agent = Arc::new(MockAgent::new("draft", "1.0.0").then_fail("model busy").then_ok(json!("Hi!")));
//! let step = AgentStep::new("reply", agent.clone(), |_: &State| Ok(json!({})), |s: &State, out| store(&s.reply, "reply", out));
//! let workflow = Workflow::new(
//!     WorkflowInfo::new("support", "1.0.0", "sha256:test"),
//!     Node::sequence([step.node()]),
//!     |s: &State| Ok(slot(&s.reply, "reply")?.clone()),
//! );
//! let journals = MemoryStore::new();
//! let runtime = Runtime::new(journals.clone());
//! let opts = ExecutionOptions { execution_id: Some("e-1".into()), ..ExecutionOptions::default() };
//!
//! let output = paused_runtime().block_on(runtime.run(&workflow, &State { reply: OnceLock::new() }, opts));
//! assert_eq!(output.unwrap(), Ok(json!("Hi!")));
//! assert_eq!(agent.calls(), 2);
//!
//! let events = journals.events("e-1");
//! assert_well_formed(&events);
//! assert_events(
//!     &events,
//!     &[
//!         "execution.started",
//!         "step.started",
//!         "step.attempt.started",
//!         "step.attempt.failed",
//!         "step.retry.scheduled",
//!         "step.attempt.started",
//!         "step.succeeded",
//!         "execution.completed",
//!     ],
//! );
//! assert_events_in_order(&events, &["step.attempt.failed", "step.succeeded"]);
//! ```

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::agent::{Agent, AgentContext, AgentError, ExecutionMeta};
use crate::error::StepError;
use crate::journal::JournalEvent;
use crate::policy::Policy;
use crate::resilience::CircuitBreaker;
use crate::resilience::{CircuitTransition, Observer};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
enum ReplyKind<O> {
    Ok(O),
    Fail(String, Option<Duration>),
    Fatal(String),
    Hang,
    Panic(String),
    Cancelled,
}

/// What a [`MockAgent`] does on one call.
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::testing::{call_agent, paused_runtime, MockAgent, Reply};
/// use orchestr8_runtime::{CancellationToken, Policy};
/// use serde_json::json;
///
/// // A first call that takes 5 s, past the 1 s attempt timeout; the retry answers in 50 ms.
/// let agent = MockAgent::new("slow", "1.0.0")
///     .reply(Reply::ok(json!("late")).after(Duration::from_secs(5)))
///     .reply(Reply::ok(json!("on time")).after(Duration::from_millis(50)));
/// let policy = Policy { attempt_timeout: Some(Duration::from_secs(1)), ..Policy::default() };
/// let result = paused_runtime().block_on(call_agent(&agent, &policy, None, &CancellationToken::new(), &()));
/// assert_eq!((result.unwrap(), agent.calls()), (json!("on time"), 2));
/// ```
#[derive(Debug, Clone)]
pub struct Reply<O> {
    kind: ReplyKind<O>,
    delay: Duration,
    ignore_cancel: bool,
}

impl<O> Reply<O> {
    fn of(kind: ReplyKind<O>) -> Self {
        Reply { kind, delay: Duration::ZERO, ignore_cancel: false }
    }
    /// Returns `output`.
    pub fn ok(output: O) -> Self {
        Reply::of(ReplyKind::Ok(output))
    }
    /// Returns a retryable error.
    pub fn fail(message: impl Into<String>) -> Self {
        Reply::of(ReplyKind::Fail(message.into(), None))
    }
    /// Returns a retryable error with a retry-after hint.
    pub fn fail_retry_after(message: impl Into<String>, retry_after: Duration) -> Self {
        Reply::of(ReplyKind::Fail(message.into(), Some(retry_after)))
    }
    /// Returns a fatal error.
    pub fn fatal(message: impl Into<String>) -> Self {
        Reply::of(ReplyKind::Fatal(message.into()))
    }
    /// Never returns on its own; returns `cancelled` when its token fires
    /// unless [`ignoring_cancel`](Self::ignoring_cancel).
    pub fn hang() -> Self {
        Reply::of(ReplyKind::Hang)
    }
    /// Panics with `message` (a bug in the agent).
    pub fn panic(message: impl Into<String>) -> Self {
        Reply::of(ReplyKind::Panic(message.into()))
    }
    /// Returns [`AgentError::cancelled`] whether or not its token fired.
    pub fn cancelled() -> Self {
        Reply::of(ReplyKind::Cancelled)
    }
    /// Waits `delay` (virtual time) before replying.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    /// Does not watch the cancellation token (only a timeout ends it).
    pub fn ignoring_cancel(mut self) -> Self {
        self.ignore_cancel = true;
        self
    }
}

/// One call a [`MockAgent`] received.
#[derive(Debug, Clone)]
pub struct Call<I> {
    /// When it started (virtual time).
    pub at: Instant,
    /// The attempt number from the context.
    pub attempt: u32,
    /// The step id from the context.
    pub step_id: String,
    /// The input.
    pub input: I,
}

/// An agent scripted per call: the n-th call plays the n-th [`Reply`]; once
/// the script runs out the last reply repeats.
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::testing::{call_agent, paused_runtime, MockAgent, RecordingObserver};
/// use orchestr8_runtime::{CancellationToken, Policy, RetryPolicy};
///
/// let agent = MockAgent::new("fetch", "1.0.0").then_fail("503").then_fail("503").then_ok(serde_json::json!("ok"));
/// let policy = Policy { retry: RetryPolicy { jitter: false, ..RetryPolicy::default() }, ..Policy::default() };
/// let observer = RecordingObserver::new();
/// let result = paused_runtime().block_on(call_agent(&agent, &policy, None, &CancellationToken::new(), &observer));
/// assert_eq!(result.unwrap(), "ok");
/// assert_eq!(agent.calls(), 3);
/// // The backoff, on virtual time: 1 s, then 2 s.
/// assert_eq!(observer.delays(), [Duration::from_secs(1), Duration::from_secs(2)]);
/// ```
pub struct MockAgent<I = Value, O = Value> {
    id: String,
    version: String,
    script: Vec<Reply<O>>,
    calls: Mutex<Vec<Call<I>>>,
    count: AtomicU32,
    _input: PhantomData<fn(I)>,
}

impl<I, O> std::fmt::Debug for MockAgent<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockAgent")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("calls", &self.count.load(Ordering::Relaxed))
            .finish()
    }
}

impl<I, O> MockAgent<I, O> {
    /// An agent `id`@`version` with an empty script (add replies before use).
    pub fn new(id: impl Into<String>, version: impl Into<String>) -> Self {
        MockAgent {
            id: id.into(),
            version: version.into(),
            script: Vec::new(),
            calls: Mutex::new(Vec::new()),
            count: AtomicU32::new(0),
            _input: PhantomData,
        }
    }

    /// Appends a reply to the script.
    pub fn reply(mut self, reply: Reply<O>) -> Self {
        self.script.push(reply);
        self
    }

    /// Appends [`Reply::ok`].
    pub fn then_ok(self, output: O) -> Self {
        self.reply(Reply::ok(output))
    }

    /// Appends [`Reply::fail`].
    pub fn then_fail(self, message: &str) -> Self {
        self.reply(Reply::fail(message))
    }

    /// Appends [`Reply::fatal`].
    pub fn then_fatal(self, message: &str) -> Self {
        self.reply(Reply::fatal(message))
    }

    /// Appends [`Reply::hang`].
    pub fn then_hang(self) -> Self {
        self.reply(Reply::hang())
    }

    /// Calls received so far.
    pub fn calls(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }

    /// When each call started.
    pub fn call_times(&self) -> Vec<Instant> {
        self.lock().iter().map(|c| c.at).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Call<I>>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<I: Clone, O> MockAgent<I, O> {
    /// Every call received, in order.
    pub fn call_log(&self) -> Vec<Call<I>> {
        self.lock().clone()
    }
}

impl<I, O> Agent for MockAgent<I, O>
where
    I: Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static,
    O: Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static,
{
    type Input = I;
    type Output = O;

    fn id(&self) -> &str {
        &self.id
    }

    fn version(&self) -> &str {
        &self.version
    }

    async fn run(&self, ctx: &AgentContext<'_>, input: I) -> Result<O, AgentError> {
        let n = self.count.fetch_add(1, Ordering::SeqCst) as usize;
        self.lock().push(Call { at: Instant::now(), attempt: ctx.attempt(), step_id: ctx.step_id().to_owned(), input });
        let Some(reply) = self.script.get(n).or(self.script.last()).cloned() else {
            return Err(AgentError::fatal(format!("mock agent {} has an empty script", self.id)));
        };
        let token = ctx.cancellation_token();
        if !reply.delay.is_zero() {
            if reply.ignore_cancel {
                tokio::time::sleep(reply.delay).await;
            } else {
                tokio::select! {
                    _ = token.cancelled() => return Err(AgentError::cancelled()),
                    _ = tokio::time::sleep(reply.delay) => {}
                }
            }
        }
        match reply.kind {
            ReplyKind::Ok(o) => Ok(o),
            ReplyKind::Fail(m, None) => Err(AgentError::retryable(m)),
            ReplyKind::Fail(m, Some(d)) => Err(AgentError::retryable(m).with_retry_after(d)),
            ReplyKind::Fatal(m) => Err(AgentError::fatal(m)),
            ReplyKind::Panic(m) => panic!("{m}"),
            ReplyKind::Cancelled => Err(AgentError::cancelled()),
            ReplyKind::Hang if reply.ignore_cancel => std::future::pending().await,
            ReplyKind::Hang => {
                token.cancelled().await;
                Err(AgentError::cancelled())
            }
        }
    }
}

/// What the resilience layer reported to a [`RecordingObserver`].
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// An attempt began.
    AttemptStarted(u32),
    /// An attempt failed.
    AttemptFailed(u32, StepError),
    /// A retry was scheduled after a delay.
    RetryScheduled(u32, Duration),
    /// The breaker changed state.
    Circuit(CircuitTransition),
}

/// An [`Observer`] that keeps everything it is told.
#[derive(Debug, Default)]
pub struct RecordingObserver {
    seen: Mutex<Vec<Observed>>,
}

impl RecordingObserver {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }
    /// Everything observed, in order.
    pub fn seen(&self) -> Vec<Observed> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// The scheduled delays, in order.
    pub fn delays(&self) -> Vec<Duration> {
        self.seen()
            .into_iter()
            .filter_map(|o| match o {
                Observed::RetryScheduled(_, d) => Some(d),
                _ => None,
            })
            .collect()
    }
    /// The breaker transitions, in order.
    pub fn transitions(&self) -> Vec<CircuitTransition> {
        self.seen()
            .into_iter()
            .filter_map(|o| match o {
                Observed::Circuit(t) => Some(t),
                _ => None,
            })
            .collect()
    }
    fn push(&self, o: Observed) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).push(o);
    }
}

impl Observer for RecordingObserver {
    fn attempt_started(&self, attempt: u32, _at: Instant) {
        self.push(Observed::AttemptStarted(attempt));
    }
    fn attempt_failed(&self, attempt: u32, error: &StepError, _elapsed: Duration) {
        self.push(Observed::AttemptFailed(attempt, error.clone()));
    }
    fn retry_scheduled(&self, next_attempt: u32, delay: Duration) {
        self.push(Observed::RetryScheduled(next_attempt, delay));
    }
    fn circuit(&self, transition: CircuitTransition) {
        self.push(Observed::Circuit(transition));
    }
}

/// One step's calls to `agent` under `policy`, `breaker` and `cancel`, the
/// way the executor makes them (step `s` of execution `e1`, input `{}`),
/// reported to `observer`.
pub async fn call_agent<O: Observer + ?Sized>(
    agent: &MockAgent,
    policy: &Policy,
    breaker: Option<&CircuitBreaker>,
    cancel: &CancellationToken,
    observer: &O,
) -> Result<Value, StepError> {
    let meta = ExecutionMeta {
        execution_id: "e1".into(),
        correlation_id: "c1".into(),
        workflow_id: "wf".into(),
        workflow_version: "1.0.0".into(),
    };
    let config = Value::Null;
    crate::resilience::call(policy, breaker, cancel, observer, |attempt| {
        let (meta, config) = (&meta, &config);
        async move { agent.run(&AgentContext::new(cancel, meta, "s", attempt, config), serde_json::json!({})).await }
    })
    .await
}

/// Event names in order.
pub fn event_names(events: &[JournalEvent]) -> Vec<&'static str> {
    events.iter().map(JournalEvent::name).collect()
}

/// Event names of one step, in order.
pub fn step_event_names(events: &[JournalEvent], step: &str) -> Vec<&'static str> {
    events.iter().filter(|e| e.step_id.as_deref() == Some(step)).map(JournalEvent::name).collect()
}

/// Events with this name.
pub fn events_named<'a>(events: &'a [JournalEvent], name: &str) -> Vec<&'a JournalEvent> {
    events.iter().filter(|e| e.name() == name).collect()
}

/// Panics unless the event names are exactly `expected`.
#[track_caller]
pub fn assert_events(events: &[JournalEvent], expected: &[&str]) {
    let got = event_names(events);
    assert_eq!(got, expected, "journal events differ\n got: {got:#?}\nwant: {expected:#?}");
}

/// Panics unless `expected` occurs in the event names in this order (other events may come between).
#[track_caller]
pub fn assert_events_in_order(events: &[JournalEvent], expected: &[&str]) {
    let got = event_names(events);
    let mut it = got.iter();
    for want in expected {
        assert!(it.any(|g| g == want), "journal lacks {want:?} in order {expected:?}\n got: {got:#?}");
    }
}

/// Panics unless the journal is well formed: `seq` runs 1, 2, 3…, one
/// execution id, `execution.started` first with its identity fields, and
/// exactly one terminal event, last. The [module documentation](self) has
/// an example of it and of the other journal assertions.
#[track_caller]
pub fn assert_well_formed(events: &[JournalEvent]) {
    assert!(!events.is_empty(), "journal is empty");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "seq is not contiguous at {e:?}");
        assert_eq!(e.execution_id, events[0].execution_id, "mixed execution ids");
    }
    let first = &events[0];
    assert_eq!(first.name(), "execution.started");
    assert!(
        first.workflow_id().is_some()
            && first.workflow_version().is_some()
            && first.definition_hash().is_some()
            && first.correlation_id().is_some(),
        "execution.started lacks identity fields: {first:?}"
    );
    let terminal = events.iter().filter(|e| e.event.is_terminal()).count();
    assert_eq!(terminal, 1, "expected one terminal event");
    assert!(events.last().is_some_and(|e| e.event.is_terminal()), "terminal event is not last");
}

/// A current-thread runtime on paused time, for tests that cannot use
/// `#[tokio::test(start_paused = true)]` (e.g. inside `proptest!`).
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::testing::paused_runtime;
///
/// let started = std::time::Instant::now();
/// paused_runtime().block_on(async { tokio::time::sleep(Duration::from_secs(3600)).await });
/// assert!(started.elapsed() < Duration::from_secs(60)); // an hour of virtual time
/// ```
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("build a paused current-thread runtime")
}
