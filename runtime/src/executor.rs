//! The executor: a plan tree of agent steps, sequences and parallel blocks,
//! generic over a typed shared state so steps hand typed outputs to later
//! steps without JSON round trips (JSON is made only for the journal).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use std::time::SystemTime;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::agent::{Agent, AgentContext, AgentError, BoxFuture, ExecutionMeta};
use crate::bus::EventBus;
use crate::error::{ErrorKind, ExecutionError, StepError};
use crate::journal::{EventKind, EventLabels, JournalEvent, JournalStore, Json, MemoryStore, StateName};
use crate::policy::Policy;
use crate::resilience::{self, BreakerRegistry, CircuitBreaker, CircuitTransition, Observer};
use crate::resume::{Done, Resume, ResumeError};
use crate::state::{ExecutionState, StepState};
use crate::switch::Switch;
use crate::usage::{Tokens, Usage, UsageMeter};
use crate::wait::{Mailbox, Signals, Waiting};

/// What the workflow does when an agent step fails.
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use orchestr8_runtime::codegen::store;
/// use orchestr8_runtime::{AgentStep, ExecutionOptions, Node, OnError, Runtime, Workflow, WorkflowInfo};
/// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
/// # struct Lookup;
/// # impl Agent for Lookup {
/// #     type Input = String;
/// #     type Output = usize;
/// #     fn id(&self) -> &str { "lookup" }
/// #     fn version(&self) -> &str { "1.0.0" }
/// #     async fn run(&self, _: &AgentContext<'_>, key: String) -> Result<usize, AgentError> {
/// #         if key.is_empty() { Err(AgentError::fatal("empty key")) } else { Ok(key.len()) }
/// #     }
/// # }
///
/// struct State { key: String, found: OnceLock<usize> }
///
/// // The lookup is optional: when it fails, its output stays empty and the workflow goes on.
/// let lookup = AgentStep::new("lookup", Arc::new(Lookup), |s: &State| Ok(s.key.clone()), |s: &State, n| store(&s.found, "lookup", n))
///     .on_error(OnError::Continue);
/// let workflow = Workflow::new(
///     WorkflowInfo::new("optional", "1.0.0", "sha256:x"),
///     Node::sequence([lookup.node()]),
///     |s: &State| Ok(s.found.get().copied()),
/// );
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let state = State { key: String::new(), found: OnceLock::new() };
/// let output = Runtime::default().run(&workflow, &state, ExecutionOptions::default()).await.unwrap();
/// assert_eq!(output, Ok(None));
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// The failure fails the enclosing blocks and the execution (the default).
    #[default]
    Fail,
    /// The failure is recorded, the step's output stays empty, the workflow goes on.
    Continue,
}

/// How a node ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done (including a failed step with `onError: "continue"`).
    Ok,
    /// Failed; the error of the first failing step.
    Failed(StepError),
    /// Stopped by a cancellation.
    Cancelled,
    /// Steps wait for signals that can only come once this process has let
    /// the execution go (`run`): it ends `execution.suspended`.
    Suspended,
}

/// Identity of a workflow definition, recorded in every journal.
///
/// ```
/// use orchestr8_runtime::WorkflowInfo;
///
/// let info = WorkflowInfo::new("triage", "1.2.0", "sha256:0f3a").max_tokens(50_000);
/// assert_eq!((&*info.id, info.max_tokens), ("triage", Some(50_000)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowInfo {
    /// `metadata.id`.
    pub id: Arc<str>,
    /// `metadata.version`.
    pub version: Arc<str>,
    /// Hash of the definition the code was generated from.
    pub definition_hash: Arc<str>,
    /// `limits.maxTokens`: the model tokens one execution may use.
    pub max_tokens: Option<u64>,
}

impl WorkflowInfo {
    /// Builds the identity.
    pub fn new(id: impl Into<Arc<str>>, version: impl Into<Arc<str>>, definition_hash: impl Into<Arc<str>>) -> Self {
        WorkflowInfo {
            id: id.into(),
            version: version.into(),
            definition_hash: definition_hash.into(),
            max_tokens: None,
        }
    }

    /// Sets the execution's token budget (`limits.maxTokens`).
    pub fn max_tokens(mut self, tokens: u64) -> Self {
        self.max_tokens = Some(tokens);
        self
    }
}

/// Appends one execution's journal events in `seq` order and mirrors them on the bus.
pub struct Recorder {
    meta: Arc<ExecutionMeta>,
    bus: EventBus,
    inner: Mutex<RecorderInner>,
    /// The writer holds events back until flushed.
    buffers: bool,
    /// Events were appended since the last flush.
    dirty: AtomicBool,
    /// A step succeeded since the last checkpoint: it is made durable before
    /// any agent code runs again ([`Recorder::before_agent`]).
    succeeded: AtomicBool,
    /// Wall clock and monotonic clock read together at the start, so event
    /// times come from the monotonic readings the executor takes anyway
    /// (and follow tokio's paused clock in tests).
    base_wall: SystemTime,
    base_mono: Instant,
    /// The model tokens the execution's steps used.
    usage: UsageMeter,
    /// `limits.maxTokens`.
    budget: Option<u64>,
    /// The `wait` steps that suspended the execution.
    waits: Mutex<Vec<Arc<str>>>,
}

struct RecorderInner {
    seq: u64,
    writer: Box<dyn crate::journal::JournalWriter>,
    failed: bool,
    /// Events held back by the writer, published on the bus once flushed:
    /// nothing leaves the runtime before it is in the OS.
    unpublished: Vec<Arc<JournalEvent>>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder").field("execution_id", &self.meta.execution_id).finish()
    }
}

impl Recorder {
    /// A fresh event of `kind` for this execution, stamped now.
    pub fn event(&self, kind: EventKind) -> JournalEvent {
        self.event_at(kind, Instant::now())
    }

    /// A fresh event of `kind` stamped with the monotonic instant `at`.
    pub fn event_at(&self, kind: EventKind, at: Instant) -> JournalEvent {
        let ts = self.base_wall + at.saturating_duration_since(self.base_mono);
        JournalEvent::at(self.meta.execution_id.clone(), kind, ts)
    }

    /// Hands held-back events to the OS. Called before agent code runs and
    /// before the execution task yields. Returns whether anything was written.
    pub fn flush(&self) -> bool {
        if !self.buffers || !self.dirty.swap(false, Ordering::AcqRel) {
            return false;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let res = inner.writer.flush();
        self.check(&mut inner, res);
        self.publish_flushed(&mut inner);
        true
    }

    /// Before agent code runs: a step success recorded since the last
    /// checkpoint is made durable first (a resume must never run a step
    /// again whose success a later step already built on); otherwise a flush.
    fn before_agent(&self) -> bool {
        if !self.succeeded.swap(false, Ordering::AcqRel) {
            return self.flush();
        }
        self.dirty.store(false, Ordering::Release);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let res = inner.writer.checkpoint();
        self.check(&mut inner, res);
        self.publish_flushed(&mut inner);
        true
    }

    fn publish_flushed(&self, inner: &mut RecorderInner) {
        for ev in inner.unpublished.drain(..) {
            self.bus.publish(ev);
        }
    }

    fn check(&self, inner: &mut RecorderInner, res: io::Result<()>) {
        if let Err(e) = res {
            if !inner.failed {
                inner.failed = true;
                tracing::error!(execution_id = &*self.meta.execution_id, error = %e, "journal write failed; later events of this execution may be missing");
            }
        }
    }

    /// Assigns the next `seq`, appends, publishes (once the event is in the
    /// OS). A journal write error is logged once and the execution goes on.
    pub fn record(&self, mut event: JournalEvent) {
        #[cfg(feature = "otel")]
        if let Some(metrics) = crate::telemetry::otel::instruments() {
            metrics.observe(&self.meta, &event);
        }
        let terminal = event.event.is_terminal();
        if event.event == EventKind::StepSucceeded {
            self.succeeded.store(true, Ordering::Release);
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.seq += 1;
        event.seq = inner.seq;
        // Published under the lock so the bus sees seq order too.
        let publish = self.bus.has_subscribers().then(|| Arc::new(event.clone()));
        let mut res = inner.writer.append(event);
        if terminal && res.is_ok() {
            // In the OS now; `sync` makes it durable.
            res = inner.writer.flush();
        } else if self.buffers {
            self.dirty.store(true, Ordering::Release);
        }
        self.check(&mut inner, res);
        if let Some(ev) = publish {
            if self.buffers && !terminal {
                inner.unpublished.push(ev);
            } else {
                self.publish_flushed(&mut inner);
                self.bus.publish(ev);
            }
        }
    }

    /// Makes everything recorded durable (called after the terminal event);
    /// an error is logged like a failed write.
    pub async fn sync(&self) {
        let durable = self.inner.lock().unwrap_or_else(|e| e.into_inner()).writer.sync();
        let res = durable.await;
        if res.is_err() {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            self.check(&mut inner, res);
        }
    }

    /// The execution this recorder writes for.
    pub fn meta(&self) -> &ExecutionMeta {
        &self.meta
    }

    pub(crate) fn step_event(
        &self,
        kind: EventKind,
        step: &Arc<str>,
        agent: Option<&Arc<str>>,
        at: Instant,
    ) -> JournalEvent {
        let mut ev = self.event_at(kind, at);
        ev.step_id = Some(step.clone());
        ev.agent_id = agent.cloned();
        ev
    }

    /// Wall-clock now, on the same clock as the events' `ts` (tokio's, so
    /// paused time moves it in tests).
    pub(crate) fn wall_now(&self) -> SystemTime {
        self.base_wall + Instant::now().saturating_duration_since(self.base_mono)
    }

    /// Notes that `step` waits for its signal (for the suspension's message).
    pub(crate) fn waiting(&self, step: &Arc<str>) {
        self.waits.lock().unwrap_or_else(|e| e.into_inner()).push(step.clone());
    }

    pub(crate) fn skipped(&self, step: &Arc<str>, agent: Option<&Arc<str>>) {
        self.skipped_because(step, agent, None)
    }

    /// `step.skipped`, with why when it is not the usual (an earlier failure
    /// or a cancellation): a switch took another case.
    pub(crate) fn skipped_because(&self, step: &Arc<str>, agent: Option<&Arc<str>>, reason: Option<&Arc<str>>) {
        let mut ev = self.step_event(EventKind::StepSkipped, step, agent, Instant::now());
        ev.state = Some(StepState::Skipped.into());
        if let Some(reason) = reason {
            ev.labels_mut().reason = Some(reason.clone());
        }
        self.record(ev);
    }

    fn circuit(&self, t: &CircuitTransition, step: &Arc<str>) {
        let mut ev = self.event(t.event());
        ev.step_id = Some(step.clone());
        ev.agent_id = Some(t.key.agent_id.clone());
        ev.labels_mut().agent_version = Some(t.key.version.clone());
        self.record(ev);
    }
}

/// What a node sees while it runs: the typed state, the execution, the journal.
pub struct Cx<'a, S> {
    state: &'a S,
    /// The state's `Arc`, when the execution has one: a `map` hands it to
    /// its items' states, which read the steps before the map through it.
    owner: Option<&'a Arc<S>>,
    /// Inside a `map`'s item: `ID[INDEX].`, before each step's id in the journal.
    prefix: Option<&'a str>,
    recorder: &'a Recorder,
    mocks: Option<&'a dyn StepMocks>,
    breakers: Option<&'a BreakerRegistry>,
    /// A resumed execution's steps that ended before (not run again).
    done: Option<&'a HashMap<Arc<str>, Done>>,
    /// A resumed execution's steps journaled `step.skipped` before.
    skipped: Option<&'a std::collections::HashSet<Arc<str>>>,
    /// A resumed execution's signals: received, and since when steps wait.
    signals: Option<&'a Signals>,
    /// Where signals arrive while the execution runs.
    mailbox: Option<&'a Mailbox>,
}

impl<'a, S> Cx<'a, S> {
    /// The execution's typed state.
    pub fn state(&self) -> &'a S {
        self.state
    }
    /// The journal and bus.
    pub fn recorder(&self) -> &'a Recorder {
        self.recorder
    }
    /// The execution's identity.
    pub fn meta(&self) -> &'a ExecutionMeta {
        &self.recorder.meta
    }
    /// The execution's step mocks ([`ExecutionOptions::mocks`]).
    pub fn mocks(&self) -> Option<&'a dyn StepMocks> {
        self.mocks
    }
    /// The execution's own breaker registry ([`ExecutionOptions::breakers`]),
    /// used instead of the breakers the workflow bound at construction.
    pub fn breakers(&self) -> Option<&'a BreakerRegistry> {
        self.breakers
    }
    /// How `step` ended before its execution was resumed, if it did.
    pub fn done(&self, step: &str) -> Option<&'a Done> {
        let done = self.done?;
        match self.prefix {
            None => done.get(step),
            Some(prefix) => done.get(format!("{prefix}{step}").as_str()),
        }
    }
    /// The state's `Arc`, if the execution was started with one.
    pub fn owner(&self) -> Option<&'a Arc<S>> {
        self.owner
    }
    /// The name step `id` has in the journal: `id`, or `MAP[INDEX].id` inside
    /// a map's item.
    pub fn name(&self, id: &Arc<str>) -> Arc<str> {
        match self.prefix {
            None => id.clone(),
            Some(prefix) => format!("{prefix}{id}").into(),
        }
    }
    /// The context of one item of a map: the item's state, named by `prefix`,
    /// in this execution.
    pub(crate) fn item<'b, I>(&'b self, state: &'b Arc<I>, prefix: &'b str) -> Cx<'b, I> {
        Cx {
            state,
            owner: Some(state),
            prefix: Some(prefix),
            recorder: self.recorder,
            mocks: self.mocks,
            breakers: self.breakers,
            done: self.done,
            skipped: self.skipped,
            signals: self.signals,
            mailbox: self.mailbox,
        }
    }
    /// A resumed execution's steps that ended before, by id.
    pub(crate) fn done_steps(&self) -> Option<&'a HashMap<Arc<str>, Done>> {
        self.done
    }
    /// Whether a resumed execution's journal has `step` skipped already.
    pub(crate) fn skipped_before(&self, step: &str) -> bool {
        self.skipped.is_some_and(|s| s.contains(step))
    }
    /// The signals the journal holds for a resumed execution.
    pub fn signals(&self) -> Option<&'a Signals> {
        self.signals
    }
    /// Where signals arrive while the execution runs ([`ExecutionOptions::mailbox`]).
    pub fn mailbox(&self) -> Option<&'a Mailbox> {
        self.mailbox
    }
}

/// Replies that stand in for agent calls, per step and attempt (the test mode
/// of the generated program; see [`ExecutionOptions::mocks`]).
///
/// A workflow's steps mocked without touching its agents: the first attempt
/// of `charge` fails, the retry gets an output.
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use orchestr8_runtime::codegen::{slot, store};
/// use orchestr8_runtime::{AgentStep, ExecutionOptions, MockReply, MockStep, Node, Runtime, StepMocks, Workflow, WorkflowInfo};
/// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
/// # struct Payments;
/// # impl Agent for Payments {
/// #     type Input = u64;
/// #     type Output = String;
/// #     fn id(&self) -> &str { "payments" }
/// #     fn version(&self) -> &str { "1.0.0" }
/// #     async fn run(&self, _: &AgentContext<'_>, _: u64) -> Result<String, AgentError> { panic!("a real payment") }
/// # }
///
/// struct Flaky;
/// impl StepMocks for Flaky {
///     fn reply(&self, step_id: &str, attempt: u32) -> Option<MockStep> {
///         match (step_id, attempt) {
///             ("charge", 1) => Some(MockReply::Fail("card network down".into()).into()),
///             ("charge", _) => Some(MockReply::Output(serde_json::json!("ch_123")).into()),
///             _ => None, // the real agent
///         }
///     }
/// }
///
/// struct State { receipt: OnceLock<String> }
/// let charge = AgentStep::new("charge", Arc::new(Payments), |_: &State| Ok(4200), |s: &State, r| store(&s.receipt, "charge", r));
/// let workflow = Workflow::new(WorkflowInfo::new("pay", "1.0.0", "sha256:x"), Node::sequence([charge.node()]), |s: &State| Ok(slot(&s.receipt, "charge")?.clone()));
/// let opts = ExecutionOptions { mocks: Some(Arc::new(Flaky)), ..ExecutionOptions::default() };
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let output = Runtime::default().run(&workflow, &State { receipt: OnceLock::new() }, opts).await.unwrap();
/// assert_eq!(output.unwrap(), "ch_123");
/// # });
/// ```
pub trait StepMocks: Send + Sync {
    /// The reply for attempt `attempt` (from 1) of step `step_id`; `None`
    /// calls the real agent.
    fn reply(&self, step_id: &str, attempt: u32) -> Option<MockStep>;
}

/// What a mocked attempt returns, in place of the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum MockReply {
    /// This output, deserialised into the agent's output type; a value that
    /// does not fit fails the step with `invalid_output` (not retried).
    Output(Value),
    /// A retryable error with this message.
    Fail(String),
    /// A fatal error with this message.
    Fatal(String),
    /// Never replies: the attempt ends by the step's timeout or by cancellation.
    Hang,
}

/// One mocked attempt: wait `delay` (tokio time; cancellation ends the wait),
/// then `reply`.
#[derive(Debug, Clone, PartialEq)]
pub struct MockStep {
    /// How long the attempt takes before it replies.
    pub delay: Option<Duration>,
    /// The reply.
    pub reply: MockReply,
}

impl MockStep {
    /// `reply` without a delay.
    pub fn new(reply: MockReply) -> Self {
        MockStep { delay: None, reply }
    }
    /// The same reply after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

impl From<MockReply> for MockStep {
    fn from(reply: MockReply) -> Self {
        MockStep::new(reply)
    }
}

/// A mocked attempt: `Ok(Err(message))` is an output that does not fit `O`.
async fn mock_attempt<O: serde::de::DeserializeOwned>(
    mock: MockStep,
    cancel: &CancellationToken,
) -> Result<Result<O, String>, AgentError> {
    if let Some(delay) = mock.delay.filter(|d| !d.is_zero()) {
        tokio::select! {
            _ = cancel.cancelled() => return Err(AgentError::cancelled()),
            _ = tokio::time::sleep(delay) => {}
        }
    }
    match mock.reply {
        MockReply::Output(v) => {
            Ok(serde_json::from_value(v).map_err(|e| format!("the mocked output does not fit the agent's output: {e}")))
        }
        MockReply::Fail(m) => Err(AgentError::retryable(m)),
        MockReply::Fatal(m) => Err(AgentError::fatal(m)),
        MockReply::Hang => {
            cancel.cancelled().await;
            Err(AgentError::cancelled())
        }
    }
}

/// A leaf of the plan. [`AgentStep`] is the implementation generated code
/// uses; implement it yourself for other kinds of steps.
pub trait StepNode<S>: Send + Sync {
    /// The step's id.
    fn step_id(&self) -> &Arc<str>;
    /// The agent's id (`None` for a step that calls no agent, a `wait`).
    fn agent_id(&self) -> Option<&Arc<str>>;
    /// Takes the step's circuit breaker from `registry`.
    fn bind(&mut self, registry: &BreakerRegistry);
    /// Runs the step, recording its events.
    fn run<'a>(&'a self, cx: &'a Cx<'a, S>, cancel: &'a CancellationToken) -> BoxFuture<'a, Outcome>;
    /// Puts the step's journaled `output` into `state`, as if it had just
    /// run (resuming an execution); `Err` says why the output does not fit.
    fn restore(&self, state: &S, output: &Value) -> Result<(), String> {
        let _ = (state, output);
        Err(format!("step {} cannot be restored from a journal", self.step_id()))
    }
    /// How the step ends when its execution is resumed and the journal says
    /// it ended `done` before: not run again, nothing journaled.
    fn resumed(&self, done: &Done) -> Outcome {
        resumed_with(done, OnError::Fail)
    }
    /// For a `wait` step: its signal and payload ([`crate::wait::WaitStep`]).
    fn waiting(&self) -> Option<&dyn Waiting> {
        None
    }
    /// For a `map` step: the ids of the steps of its body, which run per
    /// item (named `MAP[INDEX].ID` in the journal).
    fn inner_step_ids(&self) -> Vec<&str> {
        Vec::new()
    }
    /// The longest one call of an agent of the step may run, its
    /// cancellation grace included (a map: its body's longest); `None` for
    /// a step that calls no agent. The Restate target keeps invocations
    /// in flight at least this long.
    fn longest_call(&self) -> Option<std::time::Duration> {
        None
    }
    /// Runs the step in a Restate handler (the Restate target), at `path`
    /// in the plan: agent and map steps do; `orchestr8 compile --target
    /// restate` refuses the others.
    #[cfg(feature = "restate")]
    fn run_on_restate<'a>(
        &'a self,
        on: &'a crate::restate::Invocation<'a>,
        state: &'a Arc<S>,
        path: &'a [usize],
    ) -> BoxFuture<'a, Result<(), restate_sdk::errors::TerminalError>> {
        let _ = (on, state, path);
        let message = format!("step {} does not run on the Restate target yet", self.step_id());
        Box::pin(std::future::ready(Err(restate_sdk::errors::TerminalError::new(message))))
    }
    /// For a map step on Restate: runs item `index`'s body (in the handler
    /// its call went to) and answers the item's output, `None` when its body
    /// ended without one.
    #[cfg(feature = "restate")]
    fn run_item_on_restate<'a>(
        &'a self,
        on: &'a crate::restate::Invocation<'a>,
        state: &'a Arc<S>,
        index: usize,
    ) -> BoxFuture<'a, Result<Option<Value>, restate_sdk::errors::TerminalError>> {
        let _ = (on, state, index);
        let message = format!("step {} is not a map", self.step_id());
        Box::pin(std::future::ready(Err(restate_sdk::errors::TerminalError::new(message))))
    }
}

/// How a step that ended `done` before a resume ends now: a failure fails
/// the block again unless the step continues on error.
pub(crate) fn resumed_with(done: &Done, on_error: OnError) -> Outcome {
    match (done, on_error) {
        (Done::Failed(e), OnError::Fail) => Outcome::Failed(e.clone()),
        _ => Outcome::Ok,
    }
}

/// A node of the plan tree.
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use orchestr8_runtime::codegen::{slot, store};
/// use orchestr8_runtime::{AgentStep, ExecutionOptions, Node, Runtime, Workflow, WorkflowInfo};
/// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
/// # struct Lookup;
/// # impl Agent for Lookup {
/// #     type Input = String;
/// #     type Output = usize;
/// #     fn id(&self) -> &str { "lookup" }
/// #     fn version(&self) -> &str { "1.0.0" }
/// #     async fn run(&self, _: &AgentContext<'_>, key: String) -> Result<usize, AgentError> {
/// #         if key.is_empty() { Err(AgentError::fatal("empty key")) } else { Ok(key.len()) }
/// #     }
/// # }
///
/// #[derive(Default)]
/// struct State { a: OnceLock<usize>, b: OnceLock<usize>, sum: OnceLock<usize> }
///
/// let lookup = Arc::new(Lookup);
/// let a = AgentStep::new("a", lookup.clone(), |_: &State| Ok("ab".into()), |s: &State, n| store(&s.a, "a", n));
/// let b = AgentStep::new("b", lookup.clone(), |_: &State| Ok("abc".into()), |s: &State, n| store(&s.b, "b", n));
/// // `sum` reads both outputs: it runs after the parallel block.
/// let sum = AgentStep::new(
///     "sum",
///     lookup,
///     |s: &State| Ok("x".repeat(slot(&s.a, "a")? + slot(&s.b, "b")?)),
///     |s: &State, n| store(&s.sum, "sum", n),
/// );
/// let plan = Node::sequence([Node::parallel("fetch", true, [a.node(), b.node()]), sum.node()]);
/// assert_eq!(plan.step_ids(), ["a", "b", "sum"]);
///
/// let workflow = Workflow::new(WorkflowInfo::new("sum", "1.0.0", "sha256:x"), plan, |s: &State| Ok(*slot(&s.sum, "sum")?));
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let output = Runtime::default().run(&workflow, &State::default(), ExecutionOptions::default()).await.unwrap();
/// assert_eq!(output, Ok(5));
/// # });
/// ```
pub enum Node<S> {
    /// One agent step.
    Step(Box<dyn StepNode<S>>),
    /// Children run one after another.
    Sequence {
        /// The block's id, if it has one.
        id: Option<Arc<str>>,
        /// The children.
        children: Vec<Node<S>>,
    },
    /// Children run concurrently, in the execution's task.
    Parallel {
        /// The block's id, if it has one.
        id: Option<Arc<str>>,
        /// The children.
        children: Vec<Node<S>>,
        /// Cancel the others at the first failure (the default), or wait for all.
        fail_fast: bool,
    },
    /// One branch runs, chosen from the state; the others are skipped.
    Switch(Box<Switch<S>>),
}

impl<S> fmt::Debug for Node<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Step(s) => write!(f, "Step({})", s.step_id()),
            Node::Sequence { id, children } => {
                f.debug_struct("Sequence").field("id", id).field("children", children).finish()
            }
            Node::Parallel { id, children, fail_fast } => f
                .debug_struct("Parallel")
                .field("id", id)
                .field("fail_fast", fail_fast)
                .field("children", children)
                .finish(),
            Node::Switch(s) => s.fmt(f),
        }
    }
}

impl<S: Send + Sync + 'static> Node<S> {
    /// A leaf node for a step.
    pub fn step(step: impl StepNode<S> + 'static) -> Self {
        Node::Step(Box::new(step))
    }

    /// A sequence without an id (e.g. the workflow's top-level `steps`).
    pub fn sequence(children: impl IntoIterator<Item = Node<S>>) -> Self {
        Node::Sequence { id: None, children: children.into_iter().collect() }
    }

    /// A sequence block with an id.
    pub fn named_sequence(id: impl Into<Arc<str>>, children: impl IntoIterator<Item = Node<S>>) -> Self {
        Node::Sequence { id: Some(id.into()), children: children.into_iter().collect() }
    }

    /// A parallel block.
    pub fn parallel(id: impl Into<Arc<str>>, fail_fast: bool, children: impl IntoIterator<Item = Node<S>>) -> Self {
        Node::Parallel { id: Some(id.into()), children: children.into_iter().collect(), fail_fast }
    }

    pub(crate) fn bind(&mut self, registry: &BreakerRegistry) {
        match self {
            Node::Step(s) => s.bind(registry),
            Node::Sequence { children, .. } | Node::Parallel { children, .. } => {
                children.iter_mut().for_each(|c| c.bind(registry))
            }
            Node::Switch(s) => s.nodes_mut().for_each(|c| c.bind(registry)),
        }
    }

    /// Every step's id, in plan order, with the steps of maps' bodies.
    pub fn step_ids(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        self.each_step(&mut |s| {
            ids.push(&**s.step_id());
            ids.extend(s.inner_step_ids());
        });
        ids
    }

    pub(crate) fn each_step<'a>(&'a self, f: &mut dyn FnMut(&'a dyn StepNode<S>)) {
        match self {
            Node::Step(s) => f(&**s),
            Node::Sequence { children, .. } | Node::Parallel { children, .. } => {
                children.iter().for_each(|c| c.each_step(f))
            }
            Node::Switch(s) => s.nodes().for_each(|c| c.each_step(f)),
        }
    }

    /// Puts the output of every step the journal says succeeded into `state`.
    fn restore(&self, state: &S, point: &Resume) -> Result<(), ResumeError> {
        self.restore_from(state, &point.done, "")
    }

    /// [`Self::restore`] from the journal's ended steps, each step named
    /// `prefix` and its id (a map's item restores its own steps).
    pub(crate) fn restore_from(
        &self,
        state: &S,
        done: &HashMap<Arc<str>, Done>,
        prefix: &str,
    ) -> Result<(), ResumeError> {
        let mut result = Ok(());
        self.each_step(&mut |s| {
            let step = format!("{prefix}{}", s.step_id());
            if let (Ok(()), Some(Done::Succeeded(output))) = (&result, done.get(step.as_str())) {
                let output = output.as_ref().map_or(&Value::Null, |o| o.value());
                if let Err(why) = s.restore(state, output) {
                    result = Err(ResumeError::Output { step, why });
                }
            }
        });
        result?;
        self.restore_switches(state, done)
    }

    /// The outputs of the switches whose taken branch the journal decides,
    /// innermost first (an outer case's output may read an inner switch's).
    fn restore_switches(&self, state: &S, done: &HashMap<Arc<str>, Done>) -> Result<(), ResumeError> {
        match self {
            Node::Step(_) => Ok(()),
            Node::Sequence { children, .. } | Node::Parallel { children, .. } => {
                children.iter().try_for_each(|c| c.restore_switches(state, done))
            }
            Node::Switch(s) => {
                s.nodes().try_for_each(|c| c.restore_switches(state, done))?;
                s.restore(state, done).map_err(|why| ResumeError::Output { step: s.id().to_string(), why })
            }
        }
    }

    fn skip_all(&self, cx: &Cx<'_, S>) {
        match self {
            Node::Step(s) => cx.recorder.skipped(&cx.name(s.step_id()), s.agent_id()),
            Node::Sequence { children, .. } | Node::Parallel { children, .. } => {
                children.iter().for_each(|c| c.skip_all(cx))
            }
            Node::Switch(s) => s.nodes().for_each(|c| c.skip_all(cx)),
        }
    }

    pub(crate) fn skip_all_because(&self, rec: &Recorder, reason: Option<&Arc<str>>) {
        match self {
            Node::Step(s) => rec.skipped_because(s.step_id(), s.agent_id(), reason),
            Node::Sequence { children, .. } | Node::Parallel { children, .. } => {
                children.iter().for_each(|c| c.skip_all_because(rec, reason))
            }
            Node::Switch(s) => s.nodes().for_each(|c| c.skip_all_because(rec, reason)),
        }
    }

    /// How the node ends, if a resumed execution's journal (`done`) already
    /// decides it: every step in it ended, or a fail-fast parallel block has
    /// a branch that failed (its other branches would have been cancelled).
    pub(crate) fn decided(&self, state: &S, done: &HashMap<Arc<str>, Done>) -> Option<Outcome> {
        match self {
            Node::Step(s) => done.get(s.step_id()).map(|d| s.resumed(d)),
            Node::Switch(s) => s.decided(state, done),
            Node::Sequence { children, .. } => {
                for child in children {
                    match child.decided(state, done)? {
                        Outcome::Ok => {}
                        ended => return Some(ended),
                    }
                }
                Some(Outcome::Ok)
            }
            Node::Parallel { children, fail_fast, .. } => {
                let mut undecided = false;
                let mut first_error = None;
                for child in children {
                    match child.decided(state, done) {
                        Some(Outcome::Failed(e)) if *fail_fast => return Some(Outcome::Failed(e)),
                        Some(Outcome::Failed(e)) => first_error = first_error.or(Some(e)),
                        Some(_) => {}
                        None => undecided = true,
                    }
                }
                (!undecided).then(|| first_error.map_or(Outcome::Ok, Outcome::Failed))
            }
        }
    }

    /// Runs the node.
    pub fn run<'a>(&'a self, cx: &'a Cx<'a, S>, cancel: &'a CancellationToken) -> BoxFuture<'a, Outcome> {
        if let Node::Sequence { .. } | Node::Parallel { .. } = self {
            // Inside a map's item (its steps named with a prefix) blocks are
            // not decided from the journal: each step looks itself up.
            let journal = cx.done.filter(|_| cx.prefix.is_none());
            if let Some(outcome) = journal.and_then(|d| self.decided(cx.state, d)) {
                // Nothing in it runs again; its steps that never ended (e.g.
                // in flight at the crash) read as skipped, as after a failure.
                self.each_step(&mut |s| {
                    if cx.done(s.step_id()).is_none() {
                        cx.recorder.skipped(&cx.name(s.step_id()), s.agent_id());
                    }
                });
                return Box::pin(std::future::ready(outcome));
            }
        }
        match self {
            Node::Step(s) => s.run(cx, cancel),
            Node::Sequence { children, .. } => Box::pin(run_sequence(children, cx, cancel)),
            Node::Parallel { children, fail_fast, .. } => Box::pin(run_parallel(children, *fail_fast, cx, cancel)),
            Node::Switch(s) => s.run(cx, cancel),
        }
    }
}

async fn run_sequence<'a, S: Send + Sync + 'static>(
    children: &'a [Node<S>],
    cx: &'a Cx<'a, S>,
    cancel: &'a CancellationToken,
) -> Outcome {
    for (i, child) in children.iter().enumerate() {
        if cancel.is_cancelled() {
            // New work stops at once: this child and the rest never start.
            children[i..].iter().for_each(|c| c.skip_all(cx));
            return Outcome::Cancelled;
        }
        if cx.mailbox.is_some_and(Mailbox::suspending) {
            // The server stops while steps wait: the rest runs in the next
            // one, once it resumes the execution; starting it here would
            // outlast the shutdown's grace.
            return Outcome::Suspended;
        }
        let outcome = child.run(cx, cancel).await;
        if outcome == Outcome::Suspended {
            // The rest runs once the signal has come.
            return outcome;
        }
        if outcome != Outcome::Ok {
            children[i + 1..].iter().for_each(|c| c.skip_all(cx));
            return outcome;
        }
    }
    Outcome::Ok
}

async fn run_parallel<'a, S: Send + Sync + 'static>(
    children: &'a [Node<S>],
    fail_fast: bool,
    cx: &'a Cx<'a, S>,
    cancel: &'a CancellationToken,
) -> Outcome {
    let block = cancel.child_token();
    let mut running: FuturesUnordered<_> = children.iter().map(|c| c.run(cx, &block)).collect();
    let mut first_error: Option<StepError> = None;
    let mut cancelled = false;
    let mut suspended = false;
    while let Some(outcome) = running.next().await {
        match outcome {
            Outcome::Ok => {}
            // The other branches go on as far as they can.
            Outcome::Suspended => suspended = true,
            Outcome::Failed(e) => {
                if first_error.is_none() {
                    if fail_fast {
                        block.cancel();
                    }
                    first_error = Some(e);
                }
            }
            Outcome::Cancelled => cancelled = true,
        }
    }
    match first_error {
        Some(e) => Outcome::Failed(e),
        None if cancelled => Outcome::Cancelled,
        None if suspended => Outcome::Suspended,
        None => Outcome::Ok,
    }
}

type InputFn<S, I> = dyn Fn(&S) -> Result<I, String> + Send + Sync;
type StoreFn<S, O> = dyn Fn(&S, O) -> Result<(), String> + Send + Sync;

/// An agent step: builds the agent's input from the state, runs the agent
/// under the step's policy (timeout, retry, circuit breaker), records the
/// journal, and stores the typed output in the state.
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use std::time::Duration;
/// use orchestr8_runtime::codegen::store;
/// use orchestr8_runtime::{AgentStep, Policy, RetryPolicy};
/// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
/// # struct Lookup;
/// # impl Agent for Lookup {
/// #     type Input = String;
/// #     type Output = usize;
/// #     fn id(&self) -> &str { "lookup" }
/// #     fn version(&self) -> &str { "1.0.0" }
/// #     async fn run(&self, _: &AgentContext<'_>, key: String) -> Result<usize, AgentError> {
/// #         if key.is_empty() { Err(AgentError::fatal("empty key")) } else { Ok(key.len()) }
/// #     }
/// # }
///
/// struct State { key: String, found: OnceLock<usize> }
///
/// let step = AgentStep::new(
///     "lookup",
///     Arc::new(Lookup),
///     |s: &State| Ok(s.key.clone()),                     // the agent's input, from the state
///     |s: &State, n| store(&s.found, "lookup", n),       // its output, into the state
/// )
/// .policy(Policy { timeout: Duration::from_secs(5), retry: RetryPolicy { max_attempts: 2, ..RetryPolicy::default() }, ..Policy::default() })
/// .config(serde_json::json!({ "region": "eu" }));      // what `AgentContext::config` returns
/// let node = step.node();
/// ```
pub struct AgentStep<S, A: Agent> {
    id: Arc<str>,
    agent_id: Arc<str>,
    agent: Arc<A>,
    policy: Policy,
    on_error: OnError,
    config: Value,
    breaker: Option<Arc<CircuitBreaker>>,
    input: Box<InputFn<S, A::Input>>,
    store: Box<StoreFn<S, A::Output>>,
    _state: PhantomData<fn(&S)>,
}

impl<S, A: Agent> fmt::Debug for AgentStep<S, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentStep")
            .field("id", &self.id)
            .field("agent", &self.agent_id)
            .field("policy", &self.policy)
            .field("on_error", &self.on_error)
            .finish()
    }
}

impl<S: Send + Sync + 'static, A: Agent> AgentStep<S, A> {
    /// A step `id` running `agent` (shared, so several steps may use one
    /// agent) with the built-in policy.
    ///
    /// `input` builds the agent's input from the state (an `Err` fails the
    /// step with `invalid_input`); `store` puts the output in the state (an
    /// `Err` fails it with `invalid_output`).
    pub fn new(
        id: impl Into<Arc<str>>,
        agent: Arc<A>,
        input: impl Fn(&S) -> Result<A::Input, String> + Send + Sync + 'static,
        store: impl Fn(&S, A::Output) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        AgentStep {
            id: id.into(),
            agent_id: Agent::id(&*agent).into(),
            agent,
            policy: Policy::default(),
            on_error: OnError::Fail,
            config: Value::Null,
            breaker: None,
            input: Box::new(input),
            store: Box::new(store),
            _state: PhantomData,
        }
    }

    /// Sets the resolved policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets `onError`.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// Sets the agent's `config` object.
    pub fn config(mut self, config: Value) -> Self {
        self.config = config;
        self
    }

    /// Uses this breaker instead of one from the workflow's registry.
    pub fn breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Wraps the step as a plan node.
    pub fn node(self) -> Node<S> {
        Node::Step(Box::new(self))
    }

    async fn run_step(
        &self,
        cx: &Cx<'_, S>,
        cancel: &CancellationToken,
        span: tracing::Span,
        id: &Arc<str>,
    ) -> Outcome {
        let rec = cx.recorder;
        if cancel.is_cancelled() {
            rec.skipped(id, Some(&self.agent_id));
            crate::telemetry::end_span(&span, "step", "skipped", None, None);
            return Outcome::Cancelled;
        }
        let started = Instant::now();
        let input = (self.input)(cx.state);
        let mut ev = rec.step_event(EventKind::StepStarted, id, Some(&self.agent_id), started);
        ev.state = Some(StepState::Executing.into());
        if let Ok(i) = &input {
            ev.input = to_json(i);
        }
        rec.record(ev);
        let input = match input {
            Ok(i) => i,
            Err(msg) => {
                let e = StepError::new(ErrorKind::InvalidInput, msg, 0);
                return self.failed(rec, id, e, started, &UsageMeter::default(), &span);
            }
        };
        let observer = StepObserver {
            rec,
            step: id,
            agent: &self.agent_id,
            attempt: AtomicU32::new(0),
            usage: UsageMeter::default(),
            attempt_usage: Mutex::new(Usage::default()),
        };
        let usage = &observer.usage;
        let meta = cx.meta();
        let agent = &*self.agent;
        let step_id: &str = id;
        // Inside a map's item, mocks written for the step serve every item.
        let base_id: Option<&str> = (**id != *self.id).then_some(&*self.id);
        let config = &self.config;
        let mocks = cx.mocks;
        // An execution with its own registry takes its breaker from there.
        let own_breaker =
            cx.breakers.map(|r| r.get(&self.agent_id, Agent::version(&*self.agent), &self.policy.circuit_breaker));
        let breaker = own_breaker.as_deref().or(self.breaker.as_deref());
        let result = resilience::call_from(started, &self.policy, breaker, cancel, &observer, |attempt| {
            let input = input.clone();
            let mock = mocks.and_then(|m| m.reply(step_id, attempt).or_else(|| m.reply(base_id?, attempt)));
            async move {
                if let Some(mock) = mock {
                    return mock_attempt(mock, cancel).await;
                }
                let tokens = Tokens::new(usage, &rec.usage, rec.budget);
                let ctx = AgentContext::new(cancel, meta, step_id, attempt, config).with_tokens(tokens);
                agent.run(&ctx, input).await.map(Ok)
            }
        })
        .await;
        let attempt = observer.attempt.load(Ordering::Relaxed);
        match result {
            Ok(Err(msg)) => {
                let e = StepError::new(ErrorKind::InvalidOutput, msg, attempt);
                self.failed(rec, id, e, started, &observer.usage, &span)
            }
            Ok(Ok(out)) => {
                let output = to_json(&out);
                if let Err(msg) = (self.store)(cx.state, out) {
                    let e = StepError::new(ErrorKind::InvalidOutput, msg, attempt);
                    return self.failed(rec, id, e, started, &observer.usage, &span);
                }
                let end = Instant::now();
                let mut ev = rec.step_event(EventKind::StepSucceeded, id, Some(&self.agent_id), end);
                ev.attempt = Some(attempt);
                ev.duration_ms = Some(millis(end - started));
                ev.output = output;
                ev.state = Some(StepState::Succeeded.into());
                set_usage(&mut ev, observer.usage.get());
                crate::telemetry::end_span(&span, "step", "succeeded", None, ev.duration_ms);
                rec.record(ev);
                Outcome::Ok
            }
            Err(e) if e.kind == ErrorKind::Cancelled => {
                let end = Instant::now();
                let mut ev = rec.step_event(EventKind::StepCancelled, id, Some(&self.agent_id), end);
                ev.attempt = Some(e.attempt);
                ev.duration_ms = Some(millis(end - started));
                ev.error = Some(Box::new(e.with_step(id.clone())));
                ev.state = Some(StepState::Cancelled.into());
                set_usage(&mut ev, observer.usage.get());
                crate::telemetry::end_span(&span, "step", "cancelled", None, ev.duration_ms);
                rec.record(ev);
                Outcome::Cancelled
            }
            Err(e) => self.failed(rec, id, e, started, &observer.usage, &span),
        }
    }

    fn failed(
        &self,
        rec: &Recorder,
        id: &Arc<str>,
        e: StepError,
        started: Instant,
        usage: &UsageMeter,
        span: &tracing::Span,
    ) -> Outcome {
        let e = e.with_step(id.clone());
        let state = StepState::of_failure(e.kind);
        let end = Instant::now();
        let mut ev = rec.step_event(EventKind::StepFailed, id, Some(&self.agent_id), end);
        ev.attempt = Some(e.attempt);
        ev.duration_ms = Some(millis(end - started));
        ev.state = Some(state.into());
        ev.error = Some(Box::new(e.clone()));
        set_usage(&mut ev, usage.get());
        let outcome = if state == StepState::TimedOut { "timed_out" } else { "failed" };
        crate::telemetry::end_span(span, "step", outcome, Some(&e), ev.duration_ms);
        rec.record(ev);
        match self.on_error {
            OnError::Fail => Outcome::Failed(e),
            OnError::Continue => Outcome::Ok,
        }
    }
}

impl<S: Send + Sync + 'static, A: Agent> StepNode<S> for AgentStep<S, A> {
    fn step_id(&self) -> &Arc<str> {
        &self.id
    }

    #[cfg(feature = "restate")]
    fn run_on_restate<'a>(
        &'a self,
        on: &'a crate::restate::Invocation<'a>,
        state: &'a Arc<S>,
        _path: &'a [usize],
    ) -> BoxFuture<'a, Result<(), restate_sdk::errors::TerminalError>> {
        Box::pin(async move {
            let input = (self.input)(state);
            let step = crate::restate::AgentCall {
                step: &self.id,
                agent: &self.agent,
                policy: &self.policy,
                config: &self.config,
                breaker: self.breaker.as_ref(),
            };
            match step.run(on, input).await {
                Ok(output) => {
                    // A parallel block's branches start from the outputs so far.
                    if let Ok(value) = serde_json::to_value(&output) {
                        on.succeeded(&self.id, value);
                    }
                    (self.store)(state, output)
                        .map_err(|e| restate_sdk::errors::TerminalError::new(format!("step {}: {e}", self.id)))
                }
                // The step's slot stays empty: what reads it sees it absent.
                Err(e) if self.on_error == OnError::Continue && !crate::restate::is_cancellation(&e) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    fn agent_id(&self) -> Option<&Arc<str>> {
        Some(&self.agent_id)
    }

    fn longest_call(&self) -> Option<std::time::Duration> {
        let attempt = self.policy.attempt_timeout.map_or(self.policy.timeout, |t| t.min(self.policy.timeout));
        Some(attempt + self.policy.cancel_grace)
    }

    fn bind(&mut self, registry: &BreakerRegistry) {
        if self.breaker.is_none() {
            self.breaker =
                Some(registry.get(&self.agent_id, Agent::version(&*self.agent), &self.policy.circuit_breaker));
        }
    }

    fn restore(&self, state: &S, output: &Value) -> Result<(), String> {
        let output = A::Output::deserialize(output).map_err(|e| e.to_string())?;
        (self.store)(state, output)
    }

    fn resumed(&self, done: &Done) -> Outcome {
        resumed_with(done, self.on_error)
    }

    fn run<'a>(&'a self, cx: &'a Cx<'a, S>, cancel: &'a CancellationToken) -> BoxFuture<'a, Outcome> {
        if let Some(done) = cx.done(&self.id) {
            return Box::pin(std::future::ready(self.resumed(done)));
        }
        let id = cx.name(&self.id);
        let m = cx.meta();
        let span = crate::telemetry::executor_span!(
            "orchestrator.step",
            workflow_id = &*m.workflow_id,
            execution_id = &*m.execution_id,
            correlation_id = &*m.correlation_id,
            step_id = &*id,
            agent_id = &*self.agent_id,
        );
        if span.is_disabled() {
            return Box::pin(async move { self.run_step(cx, cancel, span, &id).await });
        }
        crate::telemetry::stamp_ids(&span);
        Box::pin(async move { self.run_step(cx, cancel, span.clone(), &id).instrument(span).await })
    }
}

struct StepObserver<'a> {
    rec: &'a Recorder,
    step: &'a Arc<str>,
    agent: &'a Arc<str>,
    attempt: AtomicU32,
    /// The step's model tokens so far.
    usage: UsageMeter,
    /// `usage` when the current attempt started: its own usage is the difference.
    attempt_usage: Mutex<Usage>,
}

impl Observer for StepObserver<'_> {
    fn attempt_started(&self, attempt: u32, at: Instant) {
        self.attempt.store(attempt, Ordering::Relaxed);
        let so_far = self.usage.get();
        if !so_far.is_empty() {
            *self.attempt_usage.lock().unwrap_or_else(|p| p.into_inner()) = so_far;
        }
        let mut ev = self.rec.step_event(EventKind::StepAttemptStarted, self.step, Some(self.agent), at);
        ev.attempt = Some(attempt);
        ev.state = Some(StepState::Executing.into());
        self.rec.record(ev);
    }

    fn attempt_failed(&self, attempt: u32, error: &StepError, elapsed: Duration) {
        let mut ev = self.rec.step_event(EventKind::StepAttemptFailed, self.step, Some(self.agent), Instant::now());
        ev.attempt = Some(attempt);
        ev.duration_ms = Some(millis(elapsed));
        ev.error = Some(Box::new(error.clone().with_step(self.step.clone())));
        let so_far = self.usage.get();
        if !so_far.is_empty() {
            set_usage(&mut ev, so_far.since(*self.attempt_usage.lock().unwrap_or_else(|p| p.into_inner())));
        }
        self.rec.record(ev);
    }

    fn retry_scheduled(&self, next_attempt: u32, delay: Duration) {
        let mut ev = self.rec.step_event(EventKind::StepRetryScheduled, self.step, Some(self.agent), Instant::now());
        ev.attempt = Some(next_attempt);
        ev.delay_ms = Some(millis(delay));
        ev.state = Some(StepState::Retrying.into());
        self.rec.record(ev);
    }

    fn circuit(&self, t: CircuitTransition) {
        self.rec.circuit(&t, self.step);
    }

    fn before_agent_poll(&self) -> bool {
        self.rec.before_agent()
    }

    fn attempt_span(&self, attempt: u32) -> tracing::Span {
        let m = &self.rec.meta;
        crate::telemetry::executor_span!(
            "agent.run",
            workflow_id = &*m.workflow_id,
            execution_id = &*m.execution_id,
            step_id = &**self.step,
            agent_id = &**self.agent,
            correlation_id = &*m.correlation_id,
            // i64: tracing-opentelemetry exports unsigned fields as strings.
            attempt = i64::from(attempt),
        )
    }

    fn retry_span(&self, next_attempt: u32, delay: Duration) -> tracing::Span {
        let m = &self.rec.meta;
        tracing::info_span!(
            "resilience.retry",
            workflow_id = &*m.workflow_id,
            execution_id = &*m.execution_id,
            step_id = &**self.step,
            agent_id = &**self.agent,
            correlation_id = &*m.correlation_id,
            attempt = i64::from(next_attempt),
            delay_ms = i64::try_from(millis(delay)).unwrap_or(i64::MAX)
        )
    }
}

/// Journals `usage` on `ev` when any model call was made.
fn set_usage(ev: &mut JournalEvent, usage: Usage) {
    if !usage.is_empty() {
        ev.labels_mut().usage = Some(usage);
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn to_json<T: Serialize>(v: &T) -> Option<Json> {
    match Json::serialize(v) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, "value cannot be journaled as JSON");
            None
        }
    }
}

type OutputFn<S, O> = dyn Fn(&S) -> Result<O, String> + Send + Sync;

/// A runnable workflow: identity, plan tree and how to read the output from
/// the state. Build it once and run it many times.
///
/// The [crate documentation](crate) builds and runs one; [`Node`] has a
/// parallel block.
pub struct Workflow<S, O> {
    info: WorkflowInfo,
    root: Node<S>,
    output: Box<OutputFn<S, O>>,
}

impl<S, O> fmt::Debug for Workflow<S, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow").field("info", &self.info).field("root", &self.root).finish()
    }
}

impl<S: Send + Sync + 'static, O: Serialize> Workflow<S, O> {
    /// A workflow whose steps share breakers through [`BreakerRegistry::global`].
    pub fn new(
        info: WorkflowInfo,
        root: Node<S>,
        output: impl Fn(&S) -> Result<O, String> + Send + Sync + 'static,
    ) -> Self {
        Workflow::with_registry(info, root, output, BreakerRegistry::global())
    }

    /// A workflow whose steps take their breakers from `registry`.
    pub fn with_registry(
        info: WorkflowInfo,
        mut root: Node<S>,
        output: impl Fn(&S) -> Result<O, String> + Send + Sync + 'static,
        registry: &BreakerRegistry,
    ) -> Self {
        root.bind(registry);
        Workflow { info, root, output: Box::new(output) }
    }

    /// The workflow's identity.
    pub fn info(&self) -> &WorkflowInfo {
        &self.info
    }

    /// The plan tree.
    pub fn root(&self) -> &Node<S> {
        &self.root
    }

    /// The workflow's output, built from a state whose steps have run.
    #[cfg(feature = "restate")]
    pub(crate) fn output_of(&self, state: &S) -> Result<O, String> {
        (self.output)(state)
    }

    /// Every step's id, in plan order.
    pub fn step_ids(&self) -> Vec<&str> {
        self.root.step_ids()
    }

    /// The `wait` step `id`, if the workflow has one.
    pub fn waiting(&self, id: &str) -> Option<&dyn Waiting> {
        let mut found = None;
        self.root.each_step(&mut |s| {
            if found.is_none() && **s.step_id() == *id {
                found = s.waiting();
            }
        });
        found
    }

    /// The ids of the `wait` steps, in plan order.
    pub fn wait_steps(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        self.root.each_step(&mut |s| {
            if s.waiting().is_some() {
                ids.push(&**s.step_id());
            }
        });
        ids
    }
}

/// Per-execution choices.
///
/// ```
/// use orchestr8_runtime::{CancellationToken, ExecutionOptions};
///
/// let cancel = CancellationToken::new(); // cancel it (e.g. on Ctrl-C) to cancel the execution
/// let opts = ExecutionOptions {
///     execution_id: Some("order-1042".into()),
///     correlation_id: Some("req-7f3c".into()),
///     input: Some(serde_json::json!({ "order": 1042 })),
///     cancel: Some(cancel.clone()),
///     ..ExecutionOptions::default()
/// };
/// ```
#[derive(Clone, Default)]
pub struct ExecutionOptions {
    /// The execution id; a fresh UUID v4 when `None`.
    pub execution_id: Option<String>,
    /// The correlation id; the execution id when `None`.
    pub correlation_id: Option<String>,
    /// The workflow input as JSON, for the journal's `execution.started`.
    pub input: Option<Value>,
    /// Cancels the execution when cancelled; a fresh token when `None`.
    pub cancel: Option<CancellationToken>,
    /// Replies standing in for agent calls: an attempt the mocks answer does
    /// not call the agent, and goes through the same policy, breaker,
    /// journal and events as a real call. Steps (or attempts) without a mock
    /// call the real agent.
    pub mocks: Option<Arc<dyn StepMocks>>,
    /// A breaker registry of this execution's own, used instead of the one
    /// the workflow's steps were bound to (tests that must not share breakers).
    pub breakers: Option<Arc<BreakerRegistry>>,
    /// A W3C trace context the execution's trace continues (a request's
    /// `traceparent`); used when traces are exported.
    pub trace_parent: Option<crate::telemetry::TraceParent>,
    /// The request's idempotency key and fingerprint, recorded on
    /// `execution.started` (a server's retried requests find it there).
    pub idempotency: Option<Idempotency>,
    /// Where signals for the execution's waiting steps arrive while it runs
    /// (`serve`, the test mode); without one, a wait suspends the execution.
    pub mailbox: Option<Arc<Mailbox>>,
}

/// An `Idempotency-Key` and the fingerprint of the request that came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The client's key.
    pub key: Arc<str>,
    /// The request's fingerprint (hex).
    pub request_hash: Arc<str>,
}

impl fmt::Debug for ExecutionOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecutionOptions")
            .field("execution_id", &self.execution_id)
            .field("correlation_id", &self.correlation_id)
            .field("input", &self.input)
            .field("cancel", &self.cancel)
            .field("mocks", &self.mocks.is_some())
            .field("breakers", &self.breakers)
            .field("idempotency", &self.idempotency)
            .field("mailbox", &self.mailbox.is_some())
            .finish()
    }
}

/// Journal store and event bus shared by the executions it starts.
///
/// With journal files, as `PROGRAM run` writes them, and a subscriber on
/// the bus:
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use orchestr8_runtime::codegen::{slot, store};
/// use orchestr8_runtime::journal::read_file;
/// use orchestr8_runtime::{AgentStep, BusMessage, ExecutionOptions, ExecutionState, FileStore, Node, Runtime, Workflow, WorkflowInfo};
/// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
/// # struct Lookup;
/// # impl Agent for Lookup {
/// #     type Input = String;
/// #     type Output = usize;
/// #     fn id(&self) -> &str { "lookup" }
/// #     fn version(&self) -> &str { "1.0.0" }
/// #     async fn run(&self, _: &AgentContext<'_>, key: String) -> Result<usize, AgentError> { Ok(key.len()) }
/// # }
///
/// struct State { found: OnceLock<usize> }
/// let step = AgentStep::new("lookup", Arc::new(Lookup), |_: &State| Ok("key".into()), |s: &State, n| store(&s.found, "lookup", n));
/// let workflow = Workflow::new(WorkflowInfo::new("files", "1.0.0", "sha256:x"), Node::sequence([step.node()]), |s: &State| Ok(*slot(&s.found, "lookup")?));
///
/// let dir = tempfile::tempdir()?;
/// let journals = FileStore::new(dir.path());
/// let runtime = Runtime::new(journals.clone());
/// let mut events = runtime.bus().subscribe();
/// let opts = ExecutionOptions { execution_id: Some("e-1".into()), ..ExecutionOptions::default() };
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// assert_eq!(runtime.run(&workflow, &State { found: OnceLock::new() }, opts).await?, Ok(3));
/// # Ok::<_, std::io::Error>(()) })?;
///
/// // The bus saw every event as it was journaled...
/// let Some(BusMessage::Event(first)) = events.try_recv() else { panic!("no event") };
/// assert_eq!(first.name(), "execution.started");
/// // ...and the journal file holds them.
/// let journal = read_file(journals.path("e-1"))?;
/// assert_eq!(journal.snapshot().execution, Some(ExecutionState::Completed));
/// # Ok::<_, std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Runtime {
    store: Arc<dyn JournalStore>,
    bus: EventBus,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("bus", &self.bus).finish()
    }
}

impl Default for Runtime {
    /// Journals in memory; see [`Runtime::new`] for files.
    fn default() -> Self {
        Runtime::new(MemoryStore::new())
    }
}

impl Runtime {
    /// A runtime writing journals to `store`, with a default-sized bus.
    pub fn new(store: impl JournalStore) -> Self {
        Runtime { store: Arc::new(store), bus: EventBus::default() }
    }

    /// Uses `bus` for lifecycle events.
    pub fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = bus;
        self
    }

    /// The event bus.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// The journal store.
    pub fn store(&self) -> &Arc<dyn JournalStore> {
        &self.store
    }

    /// Creates an execution of `info` (id, journal, token) without running it:
    /// its id is known, and its journal started, before anything runs (a
    /// server answers with the id, then runs it).
    ///
    /// ```
    /// use std::sync::{Arc, OnceLock};
    /// use orchestr8_runtime::codegen::{slot, store};
    /// use orchestr8_runtime::{AgentStep, ExecutionOptions, ExecutionState, Node, Runtime, Workflow, WorkflowInfo};
    /// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
    /// # struct Nop;
    /// # impl Agent for Nop {
    /// #     type Input = ();
    /// #     type Output = ();
    /// #     fn id(&self) -> &str { "nop" }
    /// #     fn version(&self) -> &str { "1.0.0" }
    /// #     async fn run(&self, _: &AgentContext<'_>, _: ()) -> Result<(), AgentError> { Ok(()) }
    /// # }
    ///
    /// struct State { done: OnceLock<()> }
    /// let step = AgentStep::new("a", Arc::new(Nop), |_: &State| Ok(()), |s: &State, o| store(&s.done, "a", o));
    /// let workflow = Arc::new(Workflow::new(WorkflowInfo::new("w", "1.0.0", "sha256:x"), Node::sequence([step.node()]), |s: &State| Ok(*slot(&s.done, "a")?)));
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let execution = Runtime::default().prepare(workflow.info(), ExecutionOptions::default())?;
    /// let id = execution.execution_id().to_owned(); // a UUID v4
    /// assert_eq!(execution.state(), ExecutionState::Pending);
    /// let handle = execution.spawn(workflow, Arc::new(State { done: OnceLock::new() }));
    /// assert_eq!(handle.execution_id(), id);
    /// assert_eq!(handle.wait().await, Ok(()));
    /// # Ok::<_, std::io::Error>(()) }).unwrap();
    /// ```
    pub fn prepare(&self, info: &WorkflowInfo, opts: ExecutionOptions) -> io::Result<Execution> {
        let execution_id: Arc<str> = opts.execution_id.clone().unwrap_or_else(new_execution_id).into();
        let correlation_id = opts.correlation_id.clone().map(Arc::from).unwrap_or_else(|| execution_id.clone());
        let writer = self.store.create(&execution_id)?;
        Ok(self.execution(info, opts, execution_id, correlation_id, writer, None))
    }

    /// Goes on with the execution `point` read from its journal: the outputs
    /// of the steps that succeeded are put into `state` (an output that no
    /// longer fits its type is an error, and nothing runs), its journal is
    /// reopened, and the returned execution, once run, journals
    /// `execution.resumed` and runs only what had not ended. `opts`' ids are
    /// ignored (the journal's are kept); check the definition first with
    /// [`Resume::check_definition`]. [`Resume`] has an example.
    pub fn resume<S: Send + Sync + 'static, O: Serialize>(
        &self,
        workflow: &Workflow<S, O>,
        state: &S,
        point: &Resume,
        opts: ExecutionOptions,
    ) -> Result<Execution, ResumeError> {
        workflow.root.restore(state, point)?;
        let writer = self.store.reopen(&point.execution_id).map_err(|source| {
            let id = point.execution_id.to_string();
            match source.kind() {
                io::ErrorKind::WouldBlock => ResumeError::Running { id, source },
                _ => ResumeError::Journal { id, source },
            }
        })?;
        let (id, correlation) = (point.execution_id.clone(), point.correlation_id.clone());
        Ok(self.execution(&workflow.info, opts, id, correlation, writer, Some(point)))
    }

    fn execution(
        &self,
        info: &WorkflowInfo,
        opts: ExecutionOptions,
        execution_id: Arc<str>,
        correlation_id: Arc<str>,
        writer: Box<dyn crate::journal::JournalWriter>,
        resumed: Option<&Resume>,
    ) -> Execution {
        let buffers = writer.buffers();
        let meta = Arc::new(ExecutionMeta {
            execution_id,
            correlation_id,
            workflow_id: info.id.clone(),
            workflow_version: info.version.clone(),
        });
        let span = crate::telemetry::executor_span!(
            "orchestrator.execute",
            workflow_id = &*meta.workflow_id,
            workflow_version = &*meta.workflow_version,
            correlation_id = &*meta.correlation_id,
            execution_id = &*meta.execution_id,
        );
        #[cfg(feature = "otel")]
        if let Some(parent) = &opts.trace_parent {
            crate::telemetry::otel::adopt(&span, parent);
        }
        crate::telemetry::stamp_ids(&span);
        let usage = UsageMeter::default();
        if let Some(point) = resumed {
            usage.add(point.usage);
        }
        let seq = resumed.map_or(0, |p| p.last_seq);
        Execution {
            recorder: Recorder {
                meta,
                bus: self.bus.clone(),
                inner: Mutex::new(RecorderInner { seq, writer, failed: false, unpublished: Vec::new() }),
                buffers,
                dirty: AtomicBool::new(false),
                succeeded: AtomicBool::new(false),
                base_wall: SystemTime::now(),
                base_mono: Instant::now(),
                usage,
                budget: info.max_tokens,
                waits: Mutex::new(Vec::new()),
            },
            done: resumed.map(|p| p.done.clone()),
            skipped: resumed.map(|p| p.skipped.clone()),
            signals: resumed.map(|p| p.signals.clone()),
            mailbox: opts.mailbox,
            definition_hash: info.definition_hash.clone(),
            input: opts.input.map(Json::from),
            idempotency: opts.idempotency,
            cancel: opts.cancel.unwrap_or_default(),
            state: Arc::new(AtomicU8::new(ExecutionState::Pending.to_u8())),
            mocks: opts.mocks,
            breakers: opts.breakers,
            span,
        }
    }

    /// Runs `workflow` on `state` in the current task.
    pub async fn run<S: Send + Sync + 'static, O: Serialize>(
        &self,
        workflow: &Workflow<S, O>,
        state: &S,
        opts: ExecutionOptions,
    ) -> io::Result<Result<O, ExecutionError>> {
        let exec = self.prepare(&workflow.info, opts)?;
        Ok(exec.run(workflow, state).await)
    }

    /// [`Self::run`] on a shared state (see [`Execution::run_shared`]).
    pub async fn run_shared<S: Send + Sync + 'static, O: Serialize>(
        &self,
        workflow: &Workflow<S, O>,
        state: &Arc<S>,
        opts: ExecutionOptions,
    ) -> io::Result<Result<O, ExecutionError>> {
        let exec = self.prepare(&workflow.info, opts)?;
        Ok(exec.run_shared(workflow, state).await)
    }

    /// Spawns an execution of `workflow` on `state`; the handle awaits or cancels it.
    /// Dropping the handle leaves the execution running.
    ///
    /// ```
    /// use std::sync::{Arc, OnceLock};
    /// use orchestr8_runtime::codegen::{slot, store};
    /// use orchestr8_runtime::{AgentStep, ErrorKind, ExecutionOptions, ExecutionState, Node, Runtime, Workflow, WorkflowInfo};
    /// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
    /// # struct Forever;
    /// # impl Agent for Forever {
    /// #     type Input = ();
    /// #     type Output = ();
    /// #     fn id(&self) -> &str { "forever" }
    /// #     fn version(&self) -> &str { "1.0.0" }
    /// #     async fn run(&self, ctx: &AgentContext<'_>, _: ()) -> Result<(), AgentError> {
    /// #         ctx.cancellation_token().cancelled().await;
    /// #         Err(AgentError::cancelled())
    /// #     }
    /// # }
    ///
    /// struct State { done: OnceLock<()> }
    /// // `Forever` waits until its step is cancelled.
    /// let step = AgentStep::new("wait", Arc::new(Forever), |_: &State| Ok(()), |s: &State, o| store(&s.done, "wait", o));
    /// let workflow = Arc::new(Workflow::new(
    ///     WorkflowInfo::new("forever", "1.0.0", "sha256:x"),
    ///     Node::sequence([step.node()]),
    ///     |s: &State| Ok(*slot(&s.done, "wait")?),
    /// ));
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let handle = Runtime::default().start(workflow, State { done: OnceLock::new() }, ExecutionOptions::default())?;
    /// tokio::task::yield_now().await; // let it start
    /// assert_eq!(handle.state(), ExecutionState::Running);
    /// handle.cancel();
    /// assert_eq!(handle.wait().await.unwrap_err().kind, ErrorKind::Cancelled);
    /// # Ok::<_, std::io::Error>(()) }).unwrap();
    /// ```
    pub fn start<S, O>(
        &self,
        workflow: Arc<Workflow<S, O>>,
        state: impl Into<Arc<S>>,
        opts: ExecutionOptions,
    ) -> io::Result<ExecutionHandle<O>>
    where
        S: Send + Sync + 'static,
        O: Serialize + Send + 'static,
    {
        let exec = self.prepare(&workflow.info, opts)?;
        Ok(exec.spawn(workflow, state.into()))
    }
}

/// A UUID v4 from the OS's random generator.
pub fn new_execution_id() -> String {
    // From the OS's generator: ids are unguessable (a served execution can
    // be read and cancelled by whoever knows its id). Falls back to the
    // process's generator only if the OS has none to offer.
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        b = fastrand::u128(..).to_be_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        id.push(HEX[usize::from(x >> 4)].into());
        id.push(HEX[usize::from(x & 0xf)].into());
    }
    id
}

/// One execution, created by [`Runtime::prepare`], not yet run.
pub struct Execution {
    recorder: Recorder,
    /// Resumed: the steps that ended before, by id.
    done: Option<Arc<HashMap<Arc<str>, Done>>>,
    /// Resumed: the steps journaled skipped before.
    skipped: Option<Arc<std::collections::HashSet<Arc<str>>>>,
    /// Resumed: the signals its journal holds (and one being delivered).
    signals: Option<Signals>,
    mailbox: Option<Arc<Mailbox>>,
    definition_hash: Arc<str>,
    input: Option<Json>,
    idempotency: Option<Idempotency>,
    cancel: CancellationToken,
    state: Arc<AtomicU8>,
    mocks: Option<Arc<dyn StepMocks>>,
    breakers: Option<Arc<BreakerRegistry>>,
    /// `orchestrator.execute`, built at prepare time so its trace id is
    /// known before the execution runs (a server answers with it).
    span: tracing::Span,
}

impl fmt::Debug for Execution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Execution").field("execution_id", &self.recorder.meta.execution_id).finish()
    }
}

impl Execution {
    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.recorder.meta.execution_id
    }

    /// The id of the execution's trace, when traces are exported.
    pub fn trace_id(&self) -> Option<String> {
        #[cfg(feature = "otel")]
        return crate::telemetry::otel::trace_id(&self.span);
        #[cfg(not(feature = "otel"))]
        None
    }

    /// The token that cancels this execution.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The current state.
    pub fn state(&self) -> ExecutionState {
        ExecutionState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Runs the workflow to its end on a task of its own; the handle awaits
    /// or cancels it. Dropping the handle leaves the execution running.
    pub fn spawn<S, O>(self, workflow: Arc<Workflow<S, O>>, state: Arc<S>) -> ExecutionHandle<O>
    where
        S: Send + Sync + 'static,
        O: Serialize + Send + 'static,
    {
        let execution_id = self.recorder.meta.execution_id.clone();
        let cancel = self.cancel.clone();
        let shared = self.state.clone();
        let join = tokio::spawn(async move { self.run_shared(&workflow, &state).await });
        ExecutionHandle { execution_id, cancel, state: shared, join }
    }

    /// Runs the workflow to its end and records the terminal event.
    pub async fn run<S: Send + Sync + 'static, O: Serialize>(
        self,
        workflow: &Workflow<S, O>,
        state: &S,
    ) -> Result<O, ExecutionError> {
        let span = self.span.clone();
        self.run_inner(workflow, state, None).instrument(span).await
    }

    /// [`Self::run`] on a shared state: a workflow with a `map` needs it (its
    /// items' states read the steps before the map through the `Arc`).
    pub async fn run_shared<S: Send + Sync + 'static, O: Serialize>(
        self,
        workflow: &Workflow<S, O>,
        state: &Arc<S>,
    ) -> Result<O, ExecutionError> {
        let span = self.span.clone();
        self.run_inner(workflow, state, Some(state)).instrument(span).await
    }

    async fn run_inner<S: Send + Sync + 'static, O: Serialize>(
        self,
        workflow: &Workflow<S, O>,
        state: &S,
        owner: Option<&Arc<S>>,
    ) -> Result<O, ExecutionError> {
        let rec = &self.recorder;
        let started = Instant::now();
        self.set_state(ExecutionState::Running);
        if self.done.is_some() {
            // The journal goes on; this program's identity, which `--force`
            // may have let differ from the one on `execution.started`.
            let mut ev = rec.event(EventKind::ExecutionResumed);
            ev.labels = Some(Box::new(EventLabels {
                workflow_version: Some(rec.meta.workflow_version.clone()),
                definition_hash: Some(self.definition_hash.clone()),
                ..EventLabels::default()
            }));
            ev.state = Some(StateName::Running);
            rec.record(ev);
            self.record_fresh_signals(rec);
        } else {
            self.record_started(rec);
        }
        let cx = Cx {
            state,
            owner,
            prefix: None,
            recorder: rec,
            mocks: self.mocks.as_deref(),
            breakers: self.breakers.as_deref(),
            done: self.done.as_deref(),
            skipped: self.skipped.as_deref(),
            signals: self.signals.as_ref(),
            mailbox: self.mailbox.as_deref(),
        };
        let outcome = FlushOnYield { fut: workflow.root.run(&cx, &self.cancel), rec }.await;
        if outcome == Outcome::Suspended && !self.cancel.is_cancelled() {
            return Err(self.suspend(started).await);
        }
        let result = match outcome {
            _ if self.cancel.is_cancelled() && outcome != Outcome::Ok => {
                Err(StepError::new(ErrorKind::Cancelled, "execution cancelled", 0))
            }
            Outcome::Ok => (workflow.output)(state).map_err(|msg| StepError::new(ErrorKind::InvalidOutput, msg, 0)),
            Outcome::Failed(e) => Err(e),
            Outcome::Cancelled | Outcome::Suspended => {
                Err(StepError::new(ErrorKind::Cancelled, "execution cancelled", 0))
            }
        };
        self.end_suspended_waits(rec, &result);
        let (kind, final_state) = match &result {
            Ok(_) => (EventKind::ExecutionCompleted, ExecutionState::Completed),
            Err(e) if e.kind == ErrorKind::Cancelled => (EventKind::ExecutionCancelled, ExecutionState::Cancelled),
            Err(_) => (EventKind::ExecutionFailed, ExecutionState::Failed),
        };
        let mut ev = rec.event(kind);
        ev.duration_ms = Some(millis(started.elapsed()));
        ev.state = Some(final_state.into());
        match &result {
            Ok(o) => ev.output = to_json(o),
            Err(e) => ev.error = Some(Box::new(e.clone())),
        }
        set_usage(&mut ev, rec.usage.get());
        let outcome = match final_state {
            ExecutionState::Completed => "completed",
            ExecutionState::Cancelled => "cancelled",
            _ => "failed",
        };
        crate::telemetry::end_span(&self.span, "execution", outcome, result.as_ref().err(), ev.duration_ms);
        rec.record(ev);
        rec.sync().await;
        self.set_state(final_state);
        result
    }

    /// Journals the signals handed to this resume (`PROGRAM signal`) before
    /// anything runs: from here on the journal holds them.
    fn record_fresh_signals(&self, rec: &Recorder) {
        let Some(signals) = &self.signals else { return };
        for step in &signals.fresh {
            let mut ev = rec.step_event(EventKind::SignalReceived, step, None, Instant::now());
            ev.output = signals.received.get(step).cloned();
            if let Some(name) = signals.names.get(step) {
                ev.labels_mut().signal = Some(name.clone());
            }
            rec.record(ev);
        }
    }

    /// Journals `step.cancelled` for the waits that suspended when the
    /// execution ends anyway (another branch failed, a cancellation): no
    /// signal can reach them now, and they must not read as waiting.
    fn end_suspended_waits<O>(&self, rec: &Recorder, result: &Result<O, StepError>) {
        let waits = std::mem::take(&mut *rec.waits.lock().unwrap_or_else(|e| e.into_inner()));
        let why = match result {
            Ok(_) => "the execution ended before the step's signal came".to_owned(),
            Err(e) => format!("the execution ended (error kind `{}`) before the step's signal came", e.kind),
        };
        for step in waits {
            let mut ev = rec.step_event(EventKind::StepCancelled, &step, None, Instant::now());
            ev.state = Some(StepState::Cancelled.into());
            ev.error = Some(Box::new(StepError::new(ErrorKind::Cancelled, why.clone(), 0).with_step(step.clone())));
            rec.record(ev);
        }
    }

    /// Ends the process's part of an execution whose steps wait for signals.
    async fn suspend(&self, started: Instant) -> ExecutionError {
        let rec = &self.recorder;
        let waits = std::mem::take(&mut *rec.waits.lock().unwrap_or_else(|e| e.into_inner()));
        let mut ev = rec.event(EventKind::ExecutionSuspended);
        ev.duration_ms = Some(millis(started.elapsed()));
        ev.state = Some(StateName::Waiting);
        set_usage(&mut ev, rec.usage.get());
        crate::telemetry::end_span(&self.span, "execution", "suspended", None, ev.duration_ms);
        rec.record(ev);
        rec.sync().await;
        self.set_state(ExecutionState::Waiting);
        let names: Vec<&str> = waits.iter().map(|s| &**s).collect();
        let mut e = StepError::new(ErrorKind::Suspended, format!("waiting for a signal to {}", names.join(", ")), 0);
        e.step = waits.first().cloned();
        e
    }

    fn record_started(&self, rec: &Recorder) {
        let mut ev = rec.event(EventKind::ExecutionStarted);
        ev.labels = Some(Box::new(EventLabels {
            workflow_id: Some(rec.meta.workflow_id.clone()),
            workflow_version: Some(rec.meta.workflow_version.clone()),
            definition_hash: Some(self.definition_hash.clone()),
            correlation_id: Some(rec.meta.correlation_id.clone()),
            idempotency_key: self.idempotency.as_ref().map(|i| i.key.clone()),
            request_hash: self.idempotency.as_ref().map(|i| i.request_hash.clone()),
            ..EventLabels::default()
        }));
        ev.input = self.input.clone();
        ev.state = Some(StateName::Running);
        rec.record(ev);
    }

    fn set_state(&self, s: ExecutionState) {
        self.state.store(s.to_u8(), Ordering::Release);
    }
}

/// Polls the plan and flushes the journal after every poll, so nothing
/// recorded stays held back while the execution task waits.
struct FlushOnYield<'a, F> {
    fut: F,
    rec: &'a Recorder,
}

impl<F: Future + Unpin> Future for FlushOnYield<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let r = Pin::new(&mut self.fut).poll(cx);
        self.rec.flush();
        r
    }
}

/// A running execution: await it or cancel it. [`Runtime::start`] has an
/// example.
#[derive(Debug)]
pub struct ExecutionHandle<O> {
    execution_id: Arc<str>,
    cancel: CancellationToken,
    state: Arc<AtomicU8>,
    join: tokio::task::JoinHandle<Result<O, ExecutionError>>,
}

impl<O> ExecutionHandle<O> {
    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// Requests cooperative cancellation: no new step starts; running agents
    /// see their token; the execution ends `cancelled` when they return or
    /// their timeouts end them.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A clone of the execution's cancellation token (e.g. for a Ctrl-C handler).
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// `pending`, `running`, `completed`, `failed` or `cancelled`.
    pub fn state(&self) -> ExecutionState {
        ExecutionState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Waits for the result. A panic inside the execution is resumed here.
    pub async fn wait(self) -> Result<O, ExecutionError> {
        match self.join.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(StepError::new(ErrorKind::Cancelled, "execution task was aborted", 0)),
        }
    }
}

impl<O> Future for ExecutionHandle<O> {
    type Output = Result<O, ExecutionError>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        match std::pin::Pin::new(&mut self.join).poll(cx) {
            std::task::Poll::Ready(Ok(r)) => std::task::Poll::Ready(r),
            std::task::Poll::Ready(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            std::task::Poll::Ready(Err(_)) => {
                std::task::Poll::Ready(Err(StepError::new(ErrorKind::Cancelled, "execution task was aborted", 0)))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}
