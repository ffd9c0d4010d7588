//! The execution journal: one JSON object per line, in the contract's format.
//!
//! Every event is appended and handed to the OS before any agent code runs
//! after it (and before the execution task waits; no fsync per step); the
//! execution ends only once its terminal event is durable (an fsync of its
//! file, or of the server's shared [`LogStore`], one for many executions). See [`JournalWriter`] and the
//! crate README for why grouping the events between two agent calls into one
//! `write(2)` loses nothing a recovery could use. [`read_file`] and
//! [`parse`] recover every complete event of a journal whose last line was
//! torn by a crash, and say so.

pub(crate) mod id_map;
mod log;
mod lookup;
mod read;
mod retention;
mod segment;
mod store;
mod unfinished;

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use log::{LogOptions, LogStore, DEFAULT_COMMIT_DELAY, INDEX_CAPACITY, LOG_DIR, SEGMENT_BYTES};
pub use lookup::{read_execution, SegmentFilters};
pub use read::MAX_READ_DEPTH;
pub use retention::{Retention, DEFAULT_MAX_BYTES, DEFAULT_RETENTION, RETENTION_CHECK};
pub use store::{Durable, FileStore, JournalStore, JournalWriter, MemoryStore, DEFAULT_JOURNAL_DIR};
pub use unfinished::Unfinished;

use crate::error::{ErrorKind, StepError};
use crate::state::{ExecutionState, StepState};
use crate::usage::Usage;

/// The journal's event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum EventKind {
    /// The first event; carries workflow id and version, definition hash and correlation id.
    #[serde(rename = "execution.started")]
    ExecutionStarted,
    /// The execution goes on after its process ended: `PROGRAM resume` (or a
    /// restarted `serve`) continues the journal, with the steps that
    /// succeeded before read back instead of run again.
    #[serde(rename = "execution.resumed")]
    ExecutionResumed,
    /// A step began (its input was built).
    #[serde(rename = "step.started")]
    StepStarted,
    /// One call of the agent began.
    #[serde(rename = "step.attempt.started")]
    StepAttemptStarted,
    /// One call of the agent failed.
    #[serde(rename = "step.attempt.failed")]
    StepAttemptFailed,
    /// Another attempt will follow after `delayMs`.
    #[serde(rename = "step.retry.scheduled")]
    StepRetryScheduled,
    /// The step produced its output.
    #[serde(rename = "step.succeeded")]
    StepSucceeded,
    /// The step failed (`state` is `failed` or `timed_out`).
    #[serde(rename = "step.failed")]
    StepFailed,
    /// The step was cancelled.
    #[serde(rename = "step.cancelled")]
    StepCancelled,
    /// The step was never run (an earlier failure or a cancellation).
    #[serde(rename = "step.skipped")]
    StepSkipped,
    /// A `wait` step began waiting for its signal (`signal`; `delayMs`: its
    /// timeout, counted from the first `step.waiting` of the step).
    #[serde(rename = "step.waiting")]
    StepWaiting,
    /// The signal a waiting step waits for arrived; `output` is its payload.
    #[serde(rename = "signal.received")]
    SignalReceived,
    /// The process ended the execution while steps wait for signals (`run`):
    /// not an end; `PROGRAM signal` (or `resume`) goes on with it.
    #[serde(rename = "execution.suspended")]
    ExecutionSuspended,
    /// A circuit breaker opened.
    #[serde(rename = "circuit.opened")]
    CircuitOpened,
    /// A circuit breaker began admitting probes.
    #[serde(rename = "circuit.half_opened")]
    CircuitHalfOpened,
    /// A circuit breaker closed.
    #[serde(rename = "circuit.closed")]
    CircuitClosed,
    /// Terminal: the execution produced its output.
    #[serde(rename = "execution.completed")]
    ExecutionCompleted,
    /// Terminal: the execution failed.
    #[serde(rename = "execution.failed")]
    ExecutionFailed,
    /// Terminal: the execution was cancelled.
    #[serde(rename = "execution.cancelled")]
    ExecutionCancelled,
}

impl EventKind {
    /// The contract's name, e.g. `"step.retry.scheduled"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ExecutionStarted => "execution.started",
            EventKind::ExecutionResumed => "execution.resumed",
            EventKind::StepStarted => "step.started",
            EventKind::StepAttemptStarted => "step.attempt.started",
            EventKind::StepAttemptFailed => "step.attempt.failed",
            EventKind::StepRetryScheduled => "step.retry.scheduled",
            EventKind::StepSucceeded => "step.succeeded",
            EventKind::StepFailed => "step.failed",
            EventKind::StepCancelled => "step.cancelled",
            EventKind::StepSkipped => "step.skipped",
            EventKind::StepWaiting => "step.waiting",
            EventKind::SignalReceived => "signal.received",
            EventKind::ExecutionSuspended => "execution.suspended",
            EventKind::CircuitOpened => "circuit.opened",
            EventKind::CircuitHalfOpened => "circuit.half_opened",
            EventKind::CircuitClosed => "circuit.closed",
            EventKind::ExecutionCompleted => "execution.completed",
            EventKind::ExecutionFailed => "execution.failed",
            EventKind::ExecutionCancelled => "execution.cancelled",
        }
    }

    /// True for the three events that end an execution.
    pub fn is_terminal(self) -> bool {
        matches!(self, EventKind::ExecutionCompleted | EventKind::ExecutionFailed | EventKind::ExecutionCancelled)
    }
}

/// The `state` field: an execution state or a step state by its contract name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum StateName {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Waiting,
    Executing,
    Retrying,
    Succeeded,
    TimedOut,
    Skipped,
}

impl From<ExecutionState> for StateName {
    fn from(s: ExecutionState) -> Self {
        match s {
            ExecutionState::Pending => StateName::Pending,
            ExecutionState::Running => StateName::Running,
            ExecutionState::Completed => StateName::Completed,
            ExecutionState::Failed => StateName::Failed,
            ExecutionState::Cancelled => StateName::Cancelled,
            ExecutionState::Waiting => StateName::Waiting,
        }
    }
}

impl From<StepState> for StateName {
    fn from(s: StepState) -> Self {
        match s {
            StepState::Executing => StateName::Executing,
            StepState::Retrying => StateName::Retrying,
            StepState::Succeeded => StateName::Succeeded,
            StepState::Failed => StateName::Failed,
            StepState::TimedOut => StateName::TimedOut,
            StepState::Cancelled => StateName::Cancelled,
            StepState::Skipped => StateName::Skipped,
            StepState::Waiting => StateName::Waiting,
        }
    }
}

/// A JSON value in the journal: shared (cloning is a reference count), and
/// `null` costs no allocation. Derefs to [`Value`].
///
/// A value the executor journals from a typed input or output
/// ([`Json::serialize`]) is kept as its serialised text, one allocation
/// instead of a tree of them; it is parsed only if something reads it as a
/// [`Value`] (or serialises it), once. Journal files copy the text as is.
#[derive(Clone, Default)]
pub struct Json(Option<Arc<Repr>>);

enum Repr {
    Value(Value),
    /// Valid JSON as `serde_json` wrote it (never `null`; made at its exact
    /// size), and its parse once made.
    Text {
        text: String,
        parsed: OnceLock<Value>,
    },
}

static NULL: Value = Value::Null;

impl Json {
    /// `null`.
    pub const NULL: Json = Json(None);

    /// `v` as JSON, kept as its serialised text. An error if `v` has no JSON
    /// form (e.g. a map with non-string keys).
    ///
    /// ```
    /// use orchestr8_runtime::journal::Json;
    ///
    /// let j = Json::serialize(&("a", 1)).unwrap();
    /// assert_eq!(j, serde_json::json!(["a", 1]));
    /// assert_eq!(serde_json::to_string(&j).unwrap(), r#"["a",1]"#);
    /// assert!(Json::serialize(&None::<u8>).unwrap().is_null());
    /// ```
    pub fn serialize<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Json> {
        // Written into a buffer kept per thread, then copied once at its
        // exact size: no growing, no spare capacity kept, nothing allocated
        // for `null` (a step of `()`).
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|buf| {
            let mut own = Vec::new();
            // Taken already only if `v`'s own `Serialize` journals a value.
            let mut shared = buf.try_borrow_mut();
            let out = shared.as_deref_mut().unwrap_or(&mut own);
            out.clear();
            serde_json::to_writer(&mut *out, v)?;
            // serde_json writes UTF-8 only.
            let text = String::from_utf8_lossy(out);
            let json = match &out[..] {
                b"null" => Json::NULL,
                // serde_json escapes line breaks in strings; only a `RawValue`
                // in `v`, written as it was given, has them. A journal line
                // must hold none: such a value is kept as a tree (written compact).
                raw if raw.contains(&b'\n') || raw.contains(&b'\r') => Json::from(read::field_value(&text)),
                _ => Json(Some(Arc::new(Repr::Text { text: text.into_owned(), parsed: OnceLock::new() }))),
            };
            if out.capacity() > 64 * 1024 {
                // A rare large value: its buffer is not kept.
                *out = Vec::new();
            }
            Ok(json)
        })
    }

    /// The value. A value kept as text is parsed on the first call, and
    /// both are kept from then on.
    pub fn value(&self) -> &Value {
        match self.0.as_deref() {
            None => &NULL,
            Some(Repr::Value(v)) => v,
            // As a journal file's reader reads it: serde_json's own reader
            // stops at 128 levels, which its writer does not.
            Some(Repr::Text { text, parsed }) => parsed.get_or_init(|| read::field_value(text)),
        }
    }

    /// Appends the value's JSON text to `out`: the kept text as is.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        match self.0.as_deref() {
            None => out.extend_from_slice(b"null"),
            Some(Repr::Text { text, .. }) => out.extend_from_slice(text.as_bytes()),
            // Writing a `Value` to a Vec cannot fail (maps have string keys).
            Some(Repr::Value(v)) => serde_json::to_writer(&mut *out, v).expect("a JSON value serialises"),
        }
    }
}

impl std::ops::Deref for Json {
    type Target = Value;
    fn deref(&self) -> &Value {
        self.value()
    }
}

impl From<Value> for Json {
    fn from(v: Value) -> Self {
        if v.is_null() {
            Json(None)
        } else {
            Json(Some(Arc::new(Repr::Value(v))))
        }
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.value() == other.value()
    }
}

impl PartialEq<Value> for Json {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl std::fmt::Debug for Json {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value().fmt(f)
    }
}

impl Serialize for Json {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Through the parsed value, not `RawValue` (which only serde_json's
        // serializers understand): any format gets the value itself.
        self.value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Json::from)
    }
}

/// The fields only `execution.started` (the workflow's identity) and
/// `circuit.*` events (the agent's version) carry, kept out of line so the
/// common step events stay small.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventLabels {
    /// `execution.started` only.
    pub workflow_id: Option<Arc<str>>,
    /// `execution.started` only.
    pub workflow_version: Option<Arc<str>>,
    /// `execution.started` only.
    pub definition_hash: Option<Arc<str>>,
    /// `execution.started` only.
    pub correlation_id: Option<Arc<str>>,
    /// The signal a `wait` step waits for (`step.waiting`, `signal.received`).
    pub signal: Option<Arc<str>>,
    /// The agent's version, on `circuit.*` events (the breaker's key).
    pub agent_version: Option<Arc<str>>,
    /// `execution.started` of a served request with an `Idempotency-Key`.
    pub idempotency_key: Option<Arc<str>>,
    /// With `idempotency_key`: the fingerprint of the request it started
    /// (a retry with the key must match it).
    pub request_hash: Option<Arc<str>>,
    /// Model tokens: of the attempt (`step.attempt.failed`), the step
    /// (`step.succeeded`, `step.failed`, `step.cancelled`) or the execution
    /// (its terminal event); absent when no model was called.
    pub usage: Option<Usage>,
    /// Why a step was skipped (`step.skipped` of a switch's case not taken).
    pub reason: Option<Arc<str>>,
}

/// One line of the journal. Serialises to the contract's flat JSON object
/// (`labels` are flattened, absent fields are left out).
///
/// Kept small (the memory journal holds and drops millions of these): JSON
/// values are shared [`Json`], the error and the rare labels are boxed.
///
/// ```
/// use orchestr8_runtime::journal::{EventKind, JournalEvent};
///
/// let mut event = JournalEvent::new("e-1".into(), EventKind::StepRetryScheduled);
/// event.seq = 4;
/// event.step_id = Some("fetch".into());
/// event.attempt = Some(1);
/// event.delay_ms = Some(200);
/// assert_eq!(event.name(), "step.retry.scheduled");
///
/// let line = serde_json::to_value(&event).unwrap();
/// assert_eq!(line["event"], "step.retry.scheduled");
/// assert_eq!((&line["stepId"], &line["delayMs"]), (&serde_json::json!("fetch"), &serde_json::json!(200)));
/// assert!(line.get("output").is_none()); // absent fields are left out
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEvent {
    /// 1, 2, 3… in the order events were appended.
    pub seq: u64,
    /// Wall-clock time, RFC 3339 UTC.
    pub ts: SystemTime,
    /// The execution.
    pub execution_id: Arc<str>,
    /// What happened.
    pub event: EventKind,
    /// The execution's or step's state after this event.
    pub state: Option<StateName>,
    /// The step, for `step.*` events (and circuit events a step caused).
    pub step_id: Option<Arc<str>>,
    /// The agent, for `step.*` and `circuit.*` events.
    pub agent_id: Option<Arc<str>>,
    /// The attempt, from 1.
    pub attempt: Option<u32>,
    /// Duration of the attempt, step or execution.
    pub duration_ms: Option<u64>,
    /// Backoff before the next attempt.
    pub delay_ms: Option<u64>,
    /// The step's (or execution's) input.
    pub input: Option<Json>,
    /// The step's (or execution's) output.
    pub output: Option<Json>,
    /// The failure.
    pub error: Option<Box<StepError>>,
    /// Workflow identity (`execution.started`) and agent version (`circuit.*`).
    pub labels: Option<Box<EventLabels>>,
}

impl JournalEvent {
    /// An event of `kind` for `execution_id`, stamped now, with every optional field empty.
    /// `seq` is assigned when the event is appended.
    pub fn new(execution_id: Arc<str>, kind: EventKind) -> Self {
        JournalEvent::at(execution_id, kind, SystemTime::now())
    }

    /// Like [`new`](Self::new) with the timestamp given.
    pub fn at(execution_id: Arc<str>, kind: EventKind, ts: SystemTime) -> Self {
        JournalEvent {
            seq: 0,
            ts,
            execution_id,
            event: kind,
            state: None,
            step_id: None,
            agent_id: None,
            attempt: None,
            duration_ms: None,
            delay_ms: None,
            input: None,
            output: None,
            error: None,
            labels: None,
        }
    }

    /// The event's name.
    pub fn name(&self) -> &'static str {
        self.event.as_str()
    }

    /// The labels, created empty if absent, to set one.
    pub fn labels_mut(&mut self) -> &mut EventLabels {
        self.labels.get_or_insert_with(Default::default)
    }

    fn label(&self, f: impl Fn(&EventLabels) -> &Option<Arc<str>>) -> Option<&str> {
        self.labels.as_deref().and_then(|l| f(l).as_deref())
    }

    /// `workflowId` (`execution.started`).
    pub fn workflow_id(&self) -> Option<&str> {
        self.label(|l| &l.workflow_id)
    }

    /// `workflowVersion` (`execution.started`).
    pub fn workflow_version(&self) -> Option<&str> {
        self.label(|l| &l.workflow_version)
    }

    /// `definitionHash` (`execution.started`).
    pub fn definition_hash(&self) -> Option<&str> {
        self.label(|l| &l.definition_hash)
    }

    /// `correlationId` (`execution.started`).
    pub fn correlation_id(&self) -> Option<&str> {
        self.label(|l| &l.correlation_id)
    }

    /// `idempotencyKey` (`execution.started` of a served request that had one).
    pub fn idempotency_key(&self) -> Option<&str> {
        self.label(|l| &l.idempotency_key)
    }

    /// `requestHash` (with `idempotencyKey`).
    pub fn request_hash(&self) -> Option<&str> {
        self.label(|l| &l.request_hash)
    }

    /// `agentVersion` (`circuit.*`).
    pub fn agent_version(&self) -> Option<&str> {
        self.label(|l| &l.agent_version)
    }

    /// `signal` (`step.waiting`, `signal.received`).
    pub fn signal(&self) -> Option<&str> {
        self.label(|l| &l.signal)
    }

    /// `reason` (`step.skipped` of a switch's case not taken).
    pub fn reason(&self) -> Option<&str> {
        self.label(|l| &l.reason)
    }

    /// The model tokens it records, if any.
    pub fn usage(&self) -> Option<&Usage> {
        self.labels.as_deref().and_then(|l| l.usage.as_ref())
    }

    /// Appends the event as one JSON line (with its `\n`) to `out`: the same
    /// bytes as `serde_json::to_writer` followed by a newline, written by
    /// hand (no intermediate values, timestamps from a cached prefix).
    pub fn write_line(&self, out: &mut Vec<u8>, cache: &mut LineCache) {
        line::write(self, out, cache)
    }
}

pub use line::LineCache;

mod line;

/// The contract's field names and order, shared by `Serialize` and the line writer.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    seq: u64,
    #[serde(with = "rfc3339")]
    ts: SystemTime,
    execution_id: Arc<str>,
    event: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    step_id: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent_id: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    attempt: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    input: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    output: Option<Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Box<StepError>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    state: Option<StateName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workflow_id: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    workflow_version: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    definition_hash: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    correlation_id: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent_version: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signal: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_hash: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<Arc<str>>,
}

impl Serialize for JournalEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.labels.as_deref();
        let label = |f: fn(&EventLabels) -> &Option<Arc<str>>| l.and_then(|l| f(l).clone());
        Wire {
            seq: self.seq,
            ts: self.ts,
            execution_id: self.execution_id.clone(),
            event: self.event,
            step_id: self.step_id.clone(),
            agent_id: self.agent_id.clone(),
            attempt: self.attempt,
            duration_ms: self.duration_ms,
            input: self.input.clone(),
            output: self.output.clone(),
            error: self.error.clone(),
            delay_ms: self.delay_ms,
            state: self.state,
            workflow_id: label(|l| &l.workflow_id),
            workflow_version: label(|l| &l.workflow_version),
            definition_hash: label(|l| &l.definition_hash),
            correlation_id: label(|l| &l.correlation_id),
            agent_version: label(|l| &l.agent_version),
            signal: label(|l| &l.signal),
            idempotency_key: label(|l| &l.idempotency_key),
            request_hash: label(|l| &l.request_hash),
            usage: l.and_then(|l| l.usage),
            reason: label(|l| &l.reason),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for JournalEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let labels = EventLabels {
            workflow_id: w.workflow_id,
            workflow_version: w.workflow_version,
            definition_hash: w.definition_hash,
            correlation_id: w.correlation_id,
            agent_version: w.agent_version,
            signal: w.signal,
            idempotency_key: w.idempotency_key,
            request_hash: w.request_hash,
            usage: w.usage,
            reason: w.reason,
        };
        Ok(JournalEvent {
            seq: w.seq,
            ts: w.ts,
            execution_id: w.execution_id,
            event: w.event,
            state: w.state,
            step_id: w.step_id,
            agent_id: w.agent_id,
            attempt: w.attempt,
            duration_ms: w.duration_ms,
            delay_ms: w.delay_ms,
            input: w.input,
            output: w.output,
            error: w.error,
            labels: (labels != EventLabels::default()).then(|| Box::new(labels)),
        })
    }
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{de, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::line::format_ts(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        humantime::parse_rfc3339_weak(&s).map_err(de::Error::custom)
    }
}

/// What reading a journal found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalRead {
    /// Every complete event, in order.
    pub events: Vec<JournalEvent>,
    /// Problems that did not stop the read (a torn last line).
    pub warnings: Vec<String>,
}

impl JournalRead {
    /// The state the journal ends in: the execution's and every step's.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::from_events(&self.events)
    }
}

/// Parses journal bytes. A last line without its newline that does not parse
/// is dropped with a warning (a crash tore it); any other bad line is an
/// `InvalidData` error. A value nested deeper than [`MAX_READ_DEPTH`] is
/// left out of its event, with a warning.
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use orchestr8_runtime::codegen::store;
/// use orchestr8_runtime::journal::parse;
/// use orchestr8_runtime::{AgentStep, ExecutionOptions, ExecutionState, MemoryStore, Node, Runtime, StepState, Workflow, WorkflowInfo};
/// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
/// # struct Nop;
/// # impl Agent for Nop {
/// #     type Input = ();
/// #     type Output = ();
/// #     fn id(&self) -> &str { "nop" }
/// #     fn version(&self) -> &str { "1.0.0" }
/// #     async fn run(&self, _: &AgentContext<'_>, _: ()) -> Result<(), AgentError> { Ok(()) }
/// # }
/// # struct State { done: OnceLock<()> }
/// # let step = AgentStep::new("a", Arc::new(Nop), |_: &State| Ok(()), |s: &State, o| store(&s.done, "a", o));
/// # let workflow = Workflow::new(WorkflowInfo::new("w", "1.0.0", "sha256:x"), Node::sequence([step.node()]), |_: &State| Ok(()));
/// # let journals = MemoryStore::new();
/// # let opts = ExecutionOptions { execution_id: Some("e-1".into()), ..ExecutionOptions::default() };
/// # let (runtime, state) = (Runtime::new(journals.clone()), State { done: OnceLock::new() });
/// # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(runtime.run(&workflow, &state, opts))?.unwrap();
/// // The journal of a finished one-step execution, as JSON Lines...
/// let mut bytes = Vec::new();
/// for event in journals.events("e-1") {
///     serde_json::to_writer(&mut bytes, &event)?;
///     bytes.push(b'\n');
/// }
/// // ...and a last line a crash cut short.
/// bytes.extend_from_slice(br#"{"seq":9,"ts":"#);
///
/// let read = parse(&bytes)?;
/// assert_eq!(read.warnings.len(), 1);
/// let snapshot = read.snapshot();
/// assert_eq!(snapshot.execution, Some(ExecutionState::Completed));
/// assert_eq!(snapshot.steps["a"], StepState::Succeeded);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn parse(bytes: &[u8]) -> io::Result<JournalRead> {
    parse_with(bytes, false)
}

/// Like [`parse`], with every line that does not parse a warning: one
/// damaged line must not hide the rest of a journal (its terminal event).
pub(crate) fn parse_lenient(bytes: &[u8]) -> JournalRead {
    match parse_with(bytes, true) {
        Ok(read) => read,
        Err(e) => JournalRead { events: Vec::new(), warnings: vec![e.to_string()] },
    }
}

fn parse_with(bytes: &[u8], lenient: bool) -> io::Result<JournalRead> {
    let mut read = JournalRead::default();
    let mut rest = bytes;
    let mut line_no = 0usize;
    while !rest.is_empty() {
        line_no += 1;
        let (line, complete) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let l = &rest[..i];
                rest = &rest[i + 1..];
                (l, true)
            }
            None => {
                let l = rest;
                rest = &[];
                (l, false)
            }
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match read::parse_line(line) {
            Ok((ev, warning)) => {
                read.warnings.extend(warning.map(|w| format!("line {line_no}: {w}")));
                read.events.push(ev);
            }
            Err(e) if !complete => {
                read.warnings.push(format!(
                    "line {line_no}: last line is incomplete ({} bytes, {e}); ignored, the journal was probably cut by a crash",
                    line.len()
                ));
            }
            Err(e) if lenient => read.warnings.push(format!("line {line_no} does not parse ({e}); ignored")),
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("journal line {line_no}: {e}"))),
        }
    }
    Ok(read)
}

/// A page of one execution's journal lines (the server's `GET
/// /executions/{id}/journal`).
#[derive(Debug, Default)]
pub struct JournalPage {
    /// The events after the page's `after`, in order, at most its `max`.
    pub events: Vec<JournalEvent>,
    /// Events follow this page.
    pub more: bool,
    /// The journal ends with its terminal event.
    pub complete: bool,
    /// Lines that did not parse (skipped).
    pub warnings: Vec<String>,
}

/// The page of `bytes` (one execution's lines, in `seq` order) after `after`,
/// at most `max` events. Lines at or before `after` are skipped by the
/// `{"seq":N` every line starts with, unparsed, and parsing stops once the
/// page is full (then only the last line is parsed, for `complete`): a page
/// costs a scan of the bytes plus the parsing of the page, so reading a long
/// journal page by page is linear, not quadratic.
pub fn parse_page(bytes: &[u8], after: u64, max: usize) -> JournalPage {
    let mut page = JournalPage::default();
    let mut last: Option<&[u8]> = None;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        last = Some(line);
        if page.more || leading_seq(line).is_some_and(|seq| seq <= after) {
            continue;
        }
        if page.events.len() == max {
            // A line after a full page: there is more, and it need not be
            // read, unless it lacks the prefix (then only a readable event
            // counts: a torn last line is not more).
            page.more = leading_seq(line).is_some() || read::parse_line(line).is_ok_and(|(ev, _)| ev.seq > after);
            continue;
        }
        match read::parse_line(line) {
            Ok((ev, _)) if ev.seq <= after => {}
            Ok((ev, warning)) => {
                page.warnings.extend(warning.map(|w| format!("line {}: {w}", i + 1)));
                page.events.push(ev);
            }
            Err(e) => page.warnings.push(format!("line {} does not parse ({e}); ignored", i + 1)),
        }
    }
    page.complete = match (last, page.events.last()) {
        (_, Some(ev)) if !page.more => ev.event.is_terminal(),
        (Some(line), _) => read::parse_line(line).is_ok_and(|(ev, _)| ev.event.is_terminal()),
        (None, _) => false,
    };
    page
}

/// `N` of a line that starts `{"seq":N`, as the line writer writes them.
fn leading_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// Reads and parses a journal file; see [`parse`]. Warnings are also logged.
pub fn read_file(path: impl AsRef<Path>) -> io::Result<JournalRead> {
    let path = path.as_ref();
    let bytes = std::fs::read(path)?;
    let read = parse(&bytes)?;
    for w in &read.warnings {
        tracing::warn!(path = %path.display(), "{w}");
    }
    Ok(read)
}

/// The states a journal's events lead to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The execution's state; `None` before `execution.started`.
    pub execution: Option<ExecutionState>,
    /// Each step's latest state, by step id.
    pub steps: BTreeMap<String, StepState>,
    /// The execution's error, when it failed or was cancelled; `interrupted`
    /// when the journal ends without a terminal event.
    pub error: Option<StepError>,
    /// The output of `execution.completed`.
    pub output: Option<Value>,
    /// When `execution.started` was recorded, with its labels (the
    /// workflow's identity, the correlation id).
    pub started: Option<(SystemTime, Option<Box<EventLabels>>)>,
    /// When the terminal event was recorded.
    pub ended_at: Option<SystemTime>,
}

impl Snapshot {
    /// Folds events into states; a journal that ends without a terminal
    /// event reads as `interrupted` (its process is gone).
    pub fn from_events(events: &[JournalEvent]) -> Snapshot {
        let mut s = Snapshot::default();
        for ev in events {
            s.apply(ev);
        }
        if s.execution == Some(ExecutionState::Running) {
            // The process ended mid-run: the contract calls this `interrupted`.
            s.execution = Some(ExecutionState::Failed);
            s.error = Some(StepError::new(
                ErrorKind::Interrupted,
                "the journal ends without a terminal event: the process ended while the execution was running",
                0,
            ));
        }
        s
    }

    /// Folds one more event in: the state of a journal still being written
    /// (no `interrupted` here; see [`from_events`](Self::from_events)).
    pub fn apply(&mut self, ev: &JournalEvent) {
        if let (Some(step), Some(state)) = (&ev.step_id, ev.state) {
            if let Some(st) = StepState::from_name(state) {
                if ev.event.as_str().starts_with("step.") {
                    // Most events are of a step already seen: no key to allocate.
                    match self.steps.get_mut(&**step) {
                        Some(slot) => *slot = st,
                        None => {
                            self.steps.insert(step.to_string(), st);
                        }
                    }
                }
            }
        }
        let ended = match ev.event {
            EventKind::ExecutionStarted => {
                self.execution = Some(ExecutionState::Running);
                self.started = Some((ev.ts, ev.labels.clone()));
                return;
            }
            EventKind::ExecutionResumed => {
                // Running again: what the crash left `executing` runs again.
                self.execution = Some(ExecutionState::Running);
                return;
            }
            EventKind::ExecutionSuspended => {
                // Not an end: a signal resumes it.
                self.execution = Some(ExecutionState::Waiting);
                return;
            }
            EventKind::ExecutionCompleted => {
                self.output = ev.output.as_ref().map(|o| o.value().clone());
                ExecutionState::Completed
            }
            EventKind::ExecutionFailed => {
                self.error = ev.error.as_deref().cloned();
                ExecutionState::Failed
            }
            EventKind::ExecutionCancelled => {
                self.error = ev.error.as_deref().cloned();
                ExecutionState::Cancelled
            }
            _ => return,
        };
        self.execution = Some(ended);
        self.ended_at = Some(ev.ts);
    }

    /// True when the journal ended without a terminal event.
    pub fn interrupted(&self) -> bool {
        self.error.as_ref().is_some_and(|e| e.kind == ErrorKind::Interrupted)
    }
}
