//! Step and execution errors in the contract's shape:
//! `{"kind", "message", "step", "attempt"}`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why a step or an execution failed. The names are the contract's.
///
/// ```
/// use orchestr8_runtime::ErrorKind;
///
/// assert_eq!(ErrorKind::CircuitOpen.as_str(), "circuit_open");
/// assert_eq!(serde_json::to_string(&ErrorKind::AgentFailed).unwrap(), r#""agent_failed""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The agent returned an ordinary (retryable) error on its last attempt.
    AgentFailed,
    /// The agent returned a fatal error; it was not retried.
    Fatal,
    /// The step's timeout ended it.
    Timeout,
    /// The agent's circuit breaker was open.
    CircuitOpen,
    /// The step's input could not be built or was rejected.
    InvalidInput,
    /// The step's (or workflow's) output could not be used.
    InvalidOutput,
    /// The step or execution was cancelled.
    Cancelled,
    /// The process ended while the execution was running (found on reading its journal).
    Interrupted,
    /// The execution's token budget (`limits.maxTokens`) was spent.
    BudgetExceeded,
    /// Not a failure: steps wait for signals and the process that ran the
    /// execution let it go (`run`'s exit code 3); `PROGRAM signal` goes on.
    Suspended,
}

impl ErrorKind {
    /// The contract's name of this kind, e.g. `"circuit_open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::AgentFailed => "agent_failed",
            ErrorKind::Fatal => "fatal",
            ErrorKind::Timeout => "timeout",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::InvalidOutput => "invalid_output",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::BudgetExceeded => "budget_exceeded",
            ErrorKind::Suspended => "suspended",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed step. Serialises to the contract's `{"kind","message","step","attempt"}`.
///
/// `attempt` is the attempt the step was on when it failed (1 for the first
/// call); 0 when no attempt was made (for example invalid input).
///
/// ```
/// use orchestr8_runtime::{ErrorKind, StepError};
///
/// let error = StepError::new(ErrorKind::Timeout, "no answer within 30s", 3).with_step("fetch".into());
/// assert_eq!(error.to_string(), "step fetch: timeout: no answer within 30s (attempt 3)");
/// assert_eq!(
///     serde_json::to_value(&error).unwrap(),
///     serde_json::json!({"kind": "timeout", "message": "no answer within 30s", "step": "fetch", "attempt": 3}),
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error, schemars::JsonSchema)]
#[schemars(rename = "Error")]
#[error("step {}: {kind}: {message} (attempt {attempt})", step.as_deref().unwrap_or("-"))]
pub struct StepError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
    /// The step's id; `None` only for errors raised outside a step (the
    /// standalone resilience API, or a workflow-level output error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Arc<str>>,
    /// The attempt the step was on.
    pub attempt: u32,
    /// A finer class than `kind`, when the agent gives one (an LLM agent's
    /// `refused`, `truncated`, `invalid_output`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An execution's error: the error of the step that failed it (or a
/// cancellation / interruption). Same shape as [`StepError`].
pub type ExecutionError = StepError;

impl StepError {
    /// An error of `kind` with no step attached yet.
    pub fn new(kind: ErrorKind, message: impl Into<String>, attempt: u32) -> Self {
        StepError { kind, message: message.into(), step: None, attempt, reason: None }
    }

    /// Attaches the step id.
    pub fn with_step(mut self, step: Arc<str>) -> Self {
        self.step = Some(step);
        self
    }

    /// Attaches a reason.
    pub fn with_reason(mut self, reason: Option<&str>) -> Self {
        self.reason = reason.map(str::to_owned);
        self
    }

    /// Shorthand for a cancellation error.
    pub fn cancelled(attempt: u32) -> Self {
        StepError::new(ErrorKind::Cancelled, "cancelled", attempt)
    }
}

/// The message of a caught panic's payload (`panic!` with a literal or a format).
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
