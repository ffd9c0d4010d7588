//! The agent abstraction: an async unit of work with typed input and output.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Whether an agent error may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentErrorKind {
    /// An ordinary failure: retried while the policy allows.
    Retryable,
    /// A failure that retrying cannot fix: never retried.
    Fatal,
    /// The agent stopped because its cancellation token fired. Never retried
    /// and never counted by the circuit breaker.
    Cancelled,
    /// The execution's token budget (`limits.maxTokens`) is spent: the step
    /// fails with kind `budget_exceeded`, is never retried, and the breaker
    /// does not count it.
    BudgetExceeded,
}

/// An error returned by an agent: its kind decides whether the step retries.
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::{AgentError, AgentErrorKind};
///
/// // A rate limit: retry, but not before the server says.
/// let busy = AgentError::retryable("429 Too Many Requests").with_retry_after(Duration::from_secs(2));
/// assert!(busy.is_retryable());
/// assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
///
/// // A request that can never succeed: the step fails at once.
/// let bad = AgentError::fatal("unknown customer").with_reason("not_found");
/// assert_eq!((bad.kind(), bad.reason()), (AgentErrorKind::Fatal, Some("not_found")));
/// assert_eq!(bad.to_string(), "unknown customer");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    kind: AgentErrorKind,
    message: String,
    retry_after: Option<Duration>,
    reason: Option<&'static str>,
}

impl AgentError {
    /// An ordinary, retryable failure.
    pub fn retryable(message: impl Into<String>) -> Self {
        AgentError { kind: AgentErrorKind::Retryable, message: message.into(), retry_after: None, reason: None }
    }

    /// A fatal failure: the step fails at once with kind `fatal`.
    pub fn fatal(message: impl Into<String>) -> Self {
        AgentError { kind: AgentErrorKind::Fatal, message: message.into(), retry_after: None, reason: None }
    }

    /// The agent noticed its cancellation token and gave up.
    pub fn cancelled() -> Self {
        AgentError { kind: AgentErrorKind::Cancelled, message: "cancelled".into(), retry_after: None, reason: None }
    }

    /// The execution's token budget is spent.
    pub fn budget_exceeded(message: impl Into<String>) -> Self {
        AgentError { kind: AgentErrorKind::BudgetExceeded, message: message.into(), retry_after: None, reason: None }
    }

    /// A machine-readable sub-kind (e.g. `refused`, `truncated` for LLM
    /// agents), journaled as the step error's `reason`.
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The sub-kind, if any.
    pub fn reason(&self) -> Option<&'static str> {
        self.reason
    }

    /// Asks that the next attempt wait at least `delay` (e.g. an HTTP
    /// `Retry-After`). Honoured when the step's deadline allows it.
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// Retryable, fatal or cancelled.
    pub fn kind(&self) -> AgentErrorKind {
        self.kind
    }

    /// True for [`AgentErrorKind::Retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind == AgentErrorKind::Retryable
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The retry-after hint, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// Identity of one execution, shared by every step of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionMeta {
    /// The execution id (a UUID v4 unless the caller chose one).
    pub execution_id: std::sync::Arc<str>,
    /// The correlation id (defaults to the execution id).
    pub correlation_id: std::sync::Arc<str>,
    /// `metadata.id` of the workflow.
    pub workflow_id: std::sync::Arc<str>,
    /// `metadata.version` of the workflow.
    pub workflow_version: std::sync::Arc<str>,
}

/// What an agent sees of the execution while it runs one attempt.
///
/// Borrowed from the executor so building one per attempt costs nothing.
///
/// An agent that waits on something slow watches the token, so a
/// cancelled step ends promptly instead of at its timeout:
///
/// ```
/// use std::time::Duration;
/// use orchestr8_runtime::{Agent, AgentContext, AgentError};
///
/// struct Poll;
/// impl Agent for Poll {
///     type Input = u64;
///     type Output = String;
///     fn id(&self) -> &str { "poll" }
///     fn version(&self) -> &str { "1.0.0" }
///     async fn run(&self, ctx: &AgentContext<'_>, ms: u64) -> Result<String, AgentError> {
///         tokio::select! {
///             _ = ctx.cancellation_token().cancelled() => Err(AgentError::cancelled()),
///             _ = tokio::time::sleep(Duration::from_millis(ms)) => {
///                 Ok(format!("{} attempt {}", ctx.step_id(), ctx.attempt()))
///             }
///         }
///     }
/// }
///
/// # use orchestr8_runtime::{CancellationToken, ExecutionMeta};
/// let meta = ExecutionMeta {
///     execution_id: "e-1".into(), correlation_id: "e-1".into(),
///     workflow_id: "w".into(), workflow_version: "1.0.0".into(),
/// };
/// let (cancel, config) = (CancellationToken::new(), serde_json::Value::Null);
/// let ctx = AgentContext::new(&cancel, &meta, "wait", 1, &config);
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// assert_eq!(Poll.run(&ctx, 1).await.unwrap(), "wait attempt 1");
/// cancel.cancel();
/// assert_eq!(Poll.run(&ctx, 60_000).await, Err(AgentError::cancelled()));
/// # });
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AgentContext<'a> {
    cancel: &'a CancellationToken,
    meta: &'a ExecutionMeta,
    step_id: &'a str,
    attempt: u32,
    config: &'a Value,
    tokens: Option<crate::usage::Tokens<'a>>,
}

impl<'a> AgentContext<'a> {
    /// Builds a context; the executor does this for every attempt, tests and
    /// hand-written drivers may too.
    pub fn new(
        cancel: &'a CancellationToken,
        meta: &'a ExecutionMeta,
        step_id: &'a str,
        attempt: u32,
        config: &'a Value,
    ) -> Self {
        AgentContext { cancel, meta, step_id, attempt, config, tokens: None }
    }

    /// Where the agent's model calls are counted (the executor sets it).
    pub fn with_tokens(mut self, tokens: crate::usage::Tokens<'a>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The step's and execution's token meters and the budget, when run by
    /// the executor.
    pub fn tokens(&self) -> Option<crate::usage::Tokens<'a>> {
        self.tokens
    }

    /// The token that fires when the step is cancelled. Long-running agents
    /// should watch it (e.g. `tokio::select!` on `cancelled()`).
    pub fn cancellation_token(&self) -> &'a CancellationToken {
        self.cancel
    }

    /// True once cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The execution's id.
    pub fn execution_id(&self) -> &'a str {
        &self.meta.execution_id
    }

    /// The execution's correlation id.
    pub fn correlation_id(&self) -> &'a str {
        &self.meta.correlation_id
    }

    /// Workflow id and version, execution id and correlation id together.
    pub fn execution(&self) -> &'a ExecutionMeta {
        self.meta
    }

    /// The id of the step this attempt belongs to.
    pub fn step_id(&self) -> &'a str {
        self.step_id
    }

    /// A key for this step of this execution, `EXECUTION_ID/STEP_ID`: the
    /// same on every attempt and after a resume, so an agent with side
    /// effects can pass it on (e.g. as a payment API's idempotency key) and
    /// have a repeated call recognised. Steps run at least once: an attempt
    /// cut off by a crash is run again on resume.
    ///
    /// ```
    /// # use orchestr8_runtime::{AgentContext, CancellationToken, ExecutionMeta};
    /// let meta = ExecutionMeta {
    ///     execution_id: "e-1".into(), correlation_id: "e-1".into(),
    ///     workflow_id: "w".into(), workflow_version: "1.0.0".into(),
    /// };
    /// let (cancel, config) = (CancellationToken::new(), serde_json::Value::Null);
    /// let ctx = AgentContext::new(&cancel, &meta, "charge", 3, &config);
    /// assert_eq!(ctx.idempotency_key(), "e-1/charge");
    /// ```
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.meta.execution_id, self.step_id)
    }

    /// The attempt number, 1 for the first call.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The agent's `config` object from the workflow (`null` when absent).
    pub fn config(&self) -> &'a Value {
        self.config
    }
}

/// An async unit of work with an id, a version and typed input and output.
///
/// Implement it with `async fn run(...)`; the returned future must be `Send`.
/// Most agents do not implement it by hand: `#[agent]` (crate
/// `orchestr8-macros`) declares the input and output types on a function
/// and implements this trait for it.
///
/// ```
/// use orchestr8_runtime::{Agent, AgentContext, AgentError};
///
/// struct Upper;
/// impl Agent for Upper {
///     type Input = String;
///     type Output = String;
///     fn id(&self) -> &str { "upper" }
///     fn version(&self) -> &str { "1.0.0" }
///     async fn run(&self, _ctx: &AgentContext<'_>, input: String) -> Result<String, AgentError> {
///         Ok(input.to_uppercase())
///     }
/// }
/// ```
pub trait Agent: Send + Sync + 'static {
    /// The input; cloned once per attempt, so keep it cheap to clone (or an `Arc`).
    type Input: Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static;
    /// The output.
    type Output: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// The agent's id (the key of `agents` in the workflow).
    fn id(&self) -> &str;

    /// The agent's version; with the id it keys the circuit breaker.
    fn version(&self) -> &str;

    /// Runs one attempt.
    fn run(
        &self,
        ctx: &AgentContext<'_>,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Output, AgentError>> + Send;
}

/// A boxed, `Send` future, as returned by [`DynAgent::run_json`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An object-safe view of any [`Agent`] over JSON values, for callers that
/// hold agents of different types together (registries, the REST API).
/// Every [`Agent`] is one.
///
/// ```
/// use std::sync::Arc;
/// use orchestr8_runtime::{Agent, AgentContext, AgentError, DynAgent};
/// # use orchestr8_runtime::{CancellationToken, ExecutionMeta};
///
/// struct Double;
/// impl Agent for Double {
///     type Input = u32;
///     type Output = u32;
///     fn id(&self) -> &str { "double" }
///     fn version(&self) -> &str { "1.0.0" }
///     async fn run(&self, _ctx: &AgentContext<'_>, n: u32) -> Result<u32, AgentError> { Ok(n * 2) }
/// }
///
/// let agents: Vec<Arc<dyn DynAgent>> = vec![Arc::new(Double)];
/// # let meta = ExecutionMeta {
/// #     execution_id: "e".into(), correlation_id: "e".into(), workflow_id: "w".into(), workflow_version: "1".into(),
/// # };
/// # let (cancel, config) = (CancellationToken::new(), serde_json::Value::Null);
/// # let ctx = AgentContext::new(&cancel, &meta, "s", 1, &config);
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let out = agents[0].run_json(&ctx, serde_json::json!(21)).await.unwrap();
/// assert_eq!(out, serde_json::json!(42));
/// // Input that does not fit the agent's type is fatal: retrying cannot fix it.
/// let err = agents[0].run_json(&ctx, serde_json::json!("x")).await.unwrap_err();
/// assert!(!err.is_retryable());
/// # });
/// ```
pub trait DynAgent: Send + Sync {
    /// See [`Agent::id`].
    fn id(&self) -> &str;
    /// See [`Agent::version`].
    fn version(&self) -> &str;
    /// JSON Schema of the input.
    fn input_schema(&self) -> schemars::Schema;
    /// JSON Schema of the output.
    fn output_schema(&self) -> schemars::Schema;
    /// Deserialises the input, runs one attempt, serialises the output. A bad
    /// input is a fatal error (it cannot get better by retrying).
    fn run_json<'a>(&'a self, ctx: &'a AgentContext<'a>, input: Value) -> BoxFuture<'a, Result<Value, AgentError>>;
}

impl<A: Agent> DynAgent for A {
    fn id(&self) -> &str {
        Agent::id(self)
    }
    fn version(&self) -> &str {
        Agent::version(self)
    }
    fn input_schema(&self) -> schemars::Schema {
        schemars::schema_for!(A::Input)
    }
    fn output_schema(&self) -> schemars::Schema {
        schemars::schema_for!(A::Output)
    }
    fn run_json<'a>(&'a self, ctx: &'a AgentContext<'a>, input: Value) -> BoxFuture<'a, Result<Value, AgentError>> {
        Box::pin(async move {
            let input: A::Input =
                serde_json::from_value(input).map_err(|e| AgentError::fatal(format!("invalid input: {e}")))?;
            let out = self.run(ctx, input).await?;
            serde_json::to_value(out).map_err(|e| AgentError::fatal(format!("invalid output: {e}")))
        })
    }
}
