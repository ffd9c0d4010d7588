//! `wait` steps: a step whose output is the payload of a signal sent from
//! outside (a person's approval, another system's callback).
//!
//! A waiting step journals `step.waiting`. Where the execution's process can
//! be reached (`serve`), it waits there for its signal; otherwise (`run`) the
//! execution is suspended once nothing else can run (`execution.suspended`)
//! and `PROGRAM signal ID STEP` goes on with it later: the payload is
//! journaled as `signal.received` and the step succeeds with it. The timeout
//! counts from the step's first `step.waiting`, whatever happens in between.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::BoxFuture;
use crate::error::{ErrorKind, StepError};
use crate::executor::{millis, resumed_with, Cx, Node, OnError, Outcome, StepNode};
use crate::journal::{EventKind, Json};
use crate::resilience::BreakerRegistry;
use crate::resume::Done;
use crate::state::StepState;

/// What the program and the server need of a waiting step: its signal, its
/// payload's schema and type.
pub trait Waiting: Send + Sync {
    /// The signal's name (`wait.signal`).
    fn signal(&self) -> &str;
    /// The payload's JSON Schema, as the workflow writes it.
    fn schema(&self) -> &Value;
    /// `wait.timeout`.
    fn timeout(&self) -> Option<Duration>;
    /// Checks a payload against the step's type and its schema's bounds:
    /// the JSON to journal, or where (a JSON pointer into the payload) and
    /// why it does not fit.
    fn check(&self, payload: &Value) -> Result<Value, PayloadError>;
}

/// Where and why a signal's payload does not fit its wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    /// A JSON pointer into the payload (`""`: the whole of it).
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() { "the top level" } else { &self.pointer };
        write!(f, "at {at}: {}", self.message)
    }
}

impl std::error::Error for PayloadError {}

/// The signals of one execution: what its journal says was received and
/// since when each step waits (read back on resuming), and where payloads
/// sent to a running execution arrive.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Payloads received, by step id.
    pub(crate) received: HashMap<Arc<str>, Json>,
    /// Payloads handed to this process to journal as `signal.received` first.
    pub(crate) fresh: Vec<Arc<str>>,
    /// When each step first journaled `step.waiting`.
    pub(crate) since: HashMap<Arc<str>, SystemTime>,
    /// The signal each waiting step waits for.
    pub(crate) names: HashMap<Arc<str>, Arc<str>>,
}

impl Signals {
    /// The steps that wait (journaled `step.waiting`) and have not received
    /// their signal, sorted.
    pub fn waiting(&self) -> Vec<&str> {
        let mut steps: Vec<&str> =
            self.since.keys().filter(|s| !self.received.contains_key(*s)).map(|s| &**s).collect();
        steps.sort_unstable();
        steps
    }

    /// Whether `step` received its signal.
    pub fn received(&self, step: &str) -> bool {
        self.received.contains_key(step)
    }

    /// When `step` first waited, if it did.
    pub fn since(&self, step: &str) -> Option<SystemTime> {
        self.since.get(step).copied()
    }
}

/// Where signals for a running execution's waiting steps arrive: `serve`'s
/// signal endpoint and the test mode deliver here, and a waiting step takes
/// its payload from here instead of suspending the execution.
///
/// A signal delivered to a running execution, as `serve` delivers one:
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use orchestr8_runtime::codegen::{slot, store, WaitStep};
/// use orchestr8_runtime::{ExecutionOptions, Mailbox, Node, Runtime, Undelivered, Workflow, WorkflowInfo};
/// use serde_json::json;
///
/// struct State { reviewer: OnceLock<String> }
/// let wait = WaitStep::new("review", "reviewed", json!({ "type": "string", "minLength": 1 }), |s: &State, who: String| {
///     store(&s.reviewer, "review", who)
/// });
/// let workflow = Arc::new(Workflow::new(
///     WorkflowInfo::new("review", "1.0.0", "sha256:x"),
///     Node::sequence([wait.node()]),
///     |s: &State| Ok(slot(&s.reviewer, "review")?.clone()),
/// ));
/// let mailbox = Arc::new(Mailbox::new());
/// assert_eq!(mailbox.deliver("review", json!("ada")), Err(Undelivered::NotWaiting)); // nothing runs yet
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let opts = ExecutionOptions { mailbox: Some(mailbox.clone()), ..ExecutionOptions::default() };
/// let handle = Runtime::default().start(workflow, State { reviewer: OnceLock::new() }, opts)?;
/// while !mailbox.is_waiting("review") {
///     tokio::task::yield_now().await;
/// }
/// assert_eq!(mailbox.waiting(), ["review"]);
/// mailbox.deliver("review", json!("ada")).unwrap();
/// assert_eq!(handle.wait().await.unwrap(), "ada");
/// # Ok::<_, std::io::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Default)]
pub struct Mailbox {
    waiting: Mutex<HashMap<Arc<str>, oneshot::Sender<Json>>>,
    /// Payloads posted before their step waits ([`Mailbox::post`]).
    early: Mutex<HashMap<Arc<str>, Json>>,
    /// Ends the live waits with a suspension (a server shutting down): the
    /// execution ends `execution.suspended` and goes on in the next process.
    suspend: CancellationToken,
    /// No more signals will come: a wait without a payload or a timeout
    /// suspends at once ([`Mailbox::close`]).
    closed: CancellationToken,
}

/// Why [`Mailbox::deliver`] did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undelivered {
    /// The step is not waiting for its signal now (it has not started to
    /// wait, has received its signal, or has ended).
    NotWaiting,
}

impl Mailbox {
    /// An empty mailbox.
    pub fn new() -> Self {
        Mailbox::default()
    }

    /// Hands `payload` (checked with [`Waiting::check`]) to the waiting step
    /// `step`; at most one payload per wait is taken.
    pub fn deliver(&self, step: &str, payload: Value) -> Result<(), Undelivered> {
        let sender = self.lock().remove(step).ok_or(Undelivered::NotWaiting)?;
        // A wait that ended meanwhile (a timeout, a cancellation) dropped its receiver.
        sender.send(Json::from(payload)).map_err(|_| Undelivered::NotWaiting)
    }

    /// Hands `payload` to `step` now if it waits, else when it starts to
    /// (the test mode's signals, sent at a virtual time).
    pub fn post(&self, step: &str, payload: Value) {
        if self.deliver(step, payload.clone()).is_err() {
            self.early.lock().unwrap_or_else(|e| e.into_inner()).insert(step.into(), Json::from(payload));
        }
    }

    /// No more signals will be sent: waits without a posted payload suspend
    /// the execution (those with a timeout still time out).
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Whether `step` waits for its signal now.
    pub fn is_waiting(&self, step: &str) -> bool {
        self.lock().get(step).is_some_and(|s| !s.is_closed())
    }

    /// The steps waiting now, sorted.
    pub fn waiting(&self) -> Vec<String> {
        let mut steps: Vec<String> =
            self.lock().iter().filter(|(_, s)| !s.is_closed()).map(|(k, _)| k.to_string()).collect();
        steps.sort_unstable();
        steps
    }

    /// Ends every live wait, now and later, with a suspension.
    pub fn suspend(&self) {
        self.suspend.cancel();
    }

    /// Whether [`Mailbox::suspend`] was called: no new step starts.
    pub(crate) fn suspending(&self) -> bool {
        self.suspend.is_cancelled()
    }

    fn register(&self, step: &Arc<str>) -> oneshot::Receiver<Json> {
        let (tx, rx) = oneshot::channel();
        match self.early.lock().unwrap_or_else(|e| e.into_inner()).remove(step) {
            // The receiver is right here: this cannot fail.
            Some(payload) => drop(tx.send(payload)),
            None => drop(self.lock().insert(step.clone(), tx)),
        }
        rx
    }

    fn unregister(&self, step: &str) {
        self.lock().remove(step);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, oneshot::Sender<Json>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How a live wait ended without its payload.
enum Ended {
    TimedOut,
    Cancelled,
    Suspended,
}

type StoreFn<S, T> = dyn Fn(&S, T) -> Result<(), String> + Send + Sync;

/// A `wait` step: its output is the payload of the signal `signal`, of type
/// `T`; generated code builds it with a function that stores it in the state.
///
/// Signals reach a running execution through its [`Mailbox`] (`serve`'s
/// signal endpoint delivers there); without one, the wait suspends the
/// execution and `PROGRAM signal` goes on with it.
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use orchestr8_runtime::codegen::{slot, store, WaitStep};
/// use orchestr8_runtime::{ExecutionOptions, Mailbox, Node, Runtime, Workflow, WorkflowInfo};
/// use serde_json::json;
///
/// struct State { approval: OnceLock<bool> }
///
/// let wait = WaitStep::new("approve", "approval", json!({ "type": "boolean" }), |s: &State, ok: bool| {
///     store(&s.approval, "approve", ok)
/// });
/// let workflow = Workflow::new(
///     WorkflowInfo::new("approve", "1.0.0", "sha256:x"),
///     Node::sequence([wait.node()]),
///     |s: &State| Ok(*slot(&s.approval, "approve")?),
/// );
/// let mailbox = Arc::new(Mailbox::new());
/// mailbox.post("approve", json!(true)); // taken once the step waits
/// let opts = ExecutionOptions { mailbox: Some(mailbox), ..ExecutionOptions::default() };
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let output = Runtime::default().run(&workflow, &State { approval: OnceLock::new() }, opts).await.unwrap();
/// assert_eq!(output, Ok(true));
/// # });
/// ```
pub struct WaitStep<S, T> {
    id: Arc<str>,
    signal: Arc<str>,
    schema: Value,
    timeout: Option<Duration>,
    on_error: OnError,
    store: Box<StoreFn<S, T>>,
    _payload: PhantomData<fn() -> T>,
}

impl<S, T> fmt::Debug for WaitStep<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitStep")
            .field("id", &self.id)
            .field("signal", &self.signal)
            .field("timeout", &self.timeout)
            .field("on_error", &self.on_error)
            .finish()
    }
}

impl<S, T> WaitStep<S, T>
where
    S: Send + Sync + 'static,
    T: DeserializeOwned + Serialize + Send + 'static,
{
    /// A step `id` waiting for `signal`, whose payload follows `schema`
    /// (checked for the bounds its type `T` cannot hold) and is put in the
    /// state by `store`. No timeout: it waits until the signal comes.
    pub fn new(
        id: impl Into<Arc<str>>,
        signal: impl Into<Arc<str>>,
        schema: Value,
        store: impl Fn(&S, T) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        WaitStep {
            id: id.into(),
            signal: signal.into(),
            schema,
            timeout: None,
            on_error: OnError::Fail,
            store: Box::new(store),
            _payload: PhantomData,
        }
    }

    /// Ends the wait with a `timeout` failure after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets `onError`.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// Wraps the step as a plan node.
    pub fn node(self) -> Node<S> {
        Node::Step(Box::new(self))
    }

    fn succeed(&self, cx: &Cx<'_, S>, payload: &Json, since: SystemTime) -> Outcome {
        let rec = cx.recorder();
        if let Err(why) = self.restore(cx.state(), payload.value()) {
            // The payload was checked when it arrived: only a program whose
            // type changed since (a forced resume) gets here.
            let e = StepError::new(ErrorKind::InvalidOutput, format!("the signal's payload does not fit: {why}"), 0);
            return self.failed(cx, e);
        }
        let mut ev = rec.step_event(EventKind::StepSucceeded, &self.id, None, Instant::now());
        ev.duration_ms = Some(millis(rec.wall_now().duration_since(since).unwrap_or_default()));
        ev.output = Some(payload.clone());
        ev.state = Some(StepState::Succeeded.into());
        rec.record(ev);
        Outcome::Ok
    }

    fn failed(&self, cx: &Cx<'_, S>, e: StepError) -> Outcome {
        let rec = cx.recorder();
        let e = e.with_step(self.id.clone());
        let state = StepState::of_failure(e.kind);
        let mut ev = rec.step_event(EventKind::StepFailed, &self.id, None, Instant::now());
        ev.state = Some(state.into());
        ev.error = Some(Box::new(e.clone()));
        rec.record(ev);
        match self.on_error {
            OnError::Fail => Outcome::Failed(e),
            OnError::Continue => Outcome::Ok,
        }
    }

    async fn run_wait(&self, cx: &Cx<'_, S>, cancel: &CancellationToken) -> Outcome {
        let rec = cx.recorder();
        if cancel.is_cancelled() {
            rec.skipped(&self.id, None);
            return Outcome::Cancelled;
        }
        let signals = cx.signals();
        let now = rec.wall_now();
        let since = signals.and_then(|s| s.since(&self.id)).unwrap_or(now);
        if let Some(payload) = signals.and_then(|s| s.received.get(&self.id)) {
            return self.succeed(cx, payload, since);
        }
        let left = match self.timeout {
            Some(t) => match (since + t).duration_since(now) {
                Ok(left) if !left.is_zero() => Some(left),
                _ => return self.failed(cx, self.timed_out(t)),
            },
            None => None,
        };
        let mailbox = cx.mailbox().filter(|m| !m.suspending());
        // Registered before `step.waiting` is seen: a signal sent on seeing it is taken.
        let arrival = mailbox.map(|m| m.register(&self.id));
        let mut ev = rec.step_event(EventKind::StepWaiting, &self.id, None, Instant::now());
        ev.labels_mut().signal = Some(self.signal.clone());
        ev.delay_ms = left.map(millis);
        ev.state = Some(StepState::Waiting.into());
        rec.record(ev);
        let (Some(mailbox), Some(mut arrival)) = (mailbox, arrival) else {
            rec.waiting(&self.id);
            return Outcome::Suspended;
        };
        let deadline = async {
            match left {
                Some(left) => tokio::time::sleep(left).await,
                None => std::future::pending().await,
            }
        };
        // `biased`: a payload already there wins over an end of the wait.
        let ended = tokio::select! {
            biased;
            payload = &mut arrival => match payload {
                Ok(payload) => return self.received(cx, payload, since),
                // The mailbox went away with its execution: nothing more can arrive.
                Err(_) => {
                    rec.waiting(&self.id);
                    return Outcome::Suspended;
                }
            },
            () = deadline => Ended::TimedOut,
            () = cancel.cancelled() => Ended::Cancelled,
            () = mailbox.suspend.cancelled() => Ended::Suspended,
            () = mailbox.closed.cancelled(), if left.is_none() => Ended::Suspended,
        };
        mailbox.unregister(&self.id);
        // A payload sent while the wait was ending was promised to its sender
        // (`deliver` said yes: a 202): it wins. From here on, none is taken.
        arrival.close();
        if let Ok(payload) = arrival.try_recv() {
            return self.received(cx, payload, since);
        }
        match ended {
            Ended::TimedOut => self.failed(cx, self.timed_out(self.timeout.unwrap_or_default())),
            Ended::Cancelled => {
                let mut ev = rec.step_event(EventKind::StepCancelled, &self.id, None, Instant::now());
                ev.state = Some(StepState::Cancelled.into());
                ev.error = Some(Box::new(StepError::cancelled(0).with_step(self.id.clone())));
                rec.record(ev);
                Outcome::Cancelled
            }
            Ended::Suspended => {
                rec.waiting(&self.id);
                Outcome::Suspended
            }
        }
    }

    /// Journals `signal.received` for `payload`, then succeeds with it.
    fn received(&self, cx: &Cx<'_, S>, payload: Json, since: SystemTime) -> Outcome {
        let rec = cx.recorder();
        let mut ev = rec.step_event(EventKind::SignalReceived, &self.id, None, Instant::now());
        ev.labels_mut().signal = Some(self.signal.clone());
        ev.output = Some(payload.clone());
        rec.record(ev);
        self.succeed(cx, &payload, since)
    }

    fn timed_out(&self, timeout: Duration) -> StepError {
        let msg = format!("no signal `{}` arrived within {}", self.signal, humanize(timeout));
        StepError::new(ErrorKind::Timeout, msg, 0)
    }
}

impl<S, T> Waiting for WaitStep<S, T>
where
    S: Send + Sync + 'static,
    T: DeserializeOwned + Serialize + Send + 'static,
{
    fn signal(&self) -> &str {
        &self.signal
    }

    fn schema(&self) -> &Value {
        &self.schema
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    fn check(&self, payload: &Value) -> Result<Value, PayloadError> {
        crate::program::check_payload::<T>(payload, &self.schema)
            .map_err(|e| PayloadError { pointer: e.pointer, message: e.message })
    }
}

impl<S, T> StepNode<S> for WaitStep<S, T>
where
    S: Send + Sync + 'static,
    T: DeserializeOwned + Serialize + Send + 'static,
{
    fn step_id(&self) -> &Arc<str> {
        &self.id
    }

    fn agent_id(&self) -> Option<&Arc<str>> {
        None
    }

    fn bind(&mut self, _: &BreakerRegistry) {}

    fn run<'a>(&'a self, cx: &'a Cx<'a, S>, cancel: &'a CancellationToken) -> BoxFuture<'a, Outcome> {
        if let Some(done) = cx.done(&self.id) {
            return Box::pin(std::future::ready(self.resumed(done)));
        }
        Box::pin(self.run_wait(cx, cancel))
    }

    fn restore(&self, state: &S, output: &Value) -> Result<(), String> {
        let payload = T::deserialize(output).map_err(|e| e.to_string())?;
        (self.store)(state, payload)
    }

    fn resumed(&self, done: &Done) -> Outcome {
        resumed_with(done, self.on_error)
    }

    #[cfg(feature = "restate")]
    fn run_on_restate<'a>(
        &'a self,
        on: &'a crate::restate::Invocation<'a>,
        state: &'a Arc<S>,
        _path: &'a [usize],
    ) -> BoxFuture<'a, Result<(), restate_sdk::errors::TerminalError>> {
        use restate_sdk::errors::TerminalError;
        Box::pin(async move {
            let ended = match crate::restate::wait_for_signal(on, &self.id, self.timeout).await {
                Ok(Some(payload)) => {
                    // Checked by the signals object when it arrived.
                    self.restore(state, &payload).map_err(|e| {
                        TerminalError::new(format!("step {}: the signal's payload does not fit: {e}", self.id))
                    })?;
                    on.succeeded(&self.id, payload);
                    return Ok(());
                }
                Ok(None) => {
                    let timeout = self.timeout.unwrap_or_default();
                    TerminalError::new(format!("step {}: {}", self.id, self.timed_out(timeout).message))
                }
                Err(e) => e,
            };
            match self.on_error {
                // The step's slot stays empty, as embedded; never past a cancellation.
                OnError::Continue if !crate::restate::is_cancellation(&ended) => Ok(()),
                _ => Err(ended),
            }
        })
    }

    fn waiting(&self) -> Option<&dyn Waiting> {
        Some(self)
    }
}

/// `24h`, `90s`, `250ms`: the largest unit that divides it.
fn humanize(d: Duration) -> String {
    let ms = millis(d);
    match ms {
        0 => "0ms".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}
