//! The runtime every workflow compiled by orchestr8 links: agents, resilience
//! (timeout, retry, circuit breaker), the executor, cancellation, the journal
//! and the event bus. Semantics follow the format contract
//! (`docs/spec/workflow-v1.md` in the repository).
//!
//! Generated code reaches everything through [`codegen`]; a generated
//! crate's `main` is one [`Program`](program::Program). The same pieces
//! drive a workflow by hand: an [`Agent`] per unit of work, an [`AgentStep`]
//! per step (its input read from a typed state, its output stored back into
//! it), a [`Workflow`] over a plan of [`Node`]s, and a [`Runtime`] that runs
//! it and journals every event.
//!
//! ```
//! use std::sync::{Arc, OnceLock};
//! use orchestr8_runtime::codegen::{slot, store};
//! use orchestr8_runtime::{
//!     Agent, AgentContext, AgentError, AgentStep, ExecutionOptions, Node, Runtime, Workflow, WorkflowInfo,
//! };
//!
//! struct Greet;
//! impl Agent for Greet {
//!     type Input = String;
//!     type Output = String;
//!     fn id(&self) -> &str { "greet" }
//!     fn version(&self) -> &str { "1.0.0" }
//!     async fn run(&self, _ctx: &AgentContext<'_>, name: String) -> Result<String, AgentError> {
//!         Ok(format!("Hello, {name}!"))
//!     }
//! }
//!
//! // The execution's state: the input and one output slot per step.
//! struct State { name: String, greet: OnceLock<String> }
//!
//! let step = AgentStep::new(
//!     "greet",
//!     Arc::new(Greet),
//!     |s: &State| Ok(s.name.clone()),
//!     |s: &State, out| store(&s.greet, "greet", out),
//! );
//! let workflow = Workflow::new(
//!     WorkflowInfo::new("hello", "0.1.0", "sha256:example"),
//!     Node::sequence([step.node()]),
//!     |s: &State| Ok(slot(&s.greet, "greet")?.clone()),
//! );
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let runtime = Runtime::default(); // journals in memory; `Runtime::new(FileStore::default())` for files
//! let state = State { name: "Ada".into(), greet: OnceLock::new() };
//! let output = runtime.run(&workflow, &state, ExecutionOptions::default()).await?;
//! assert_eq!(output.unwrap(), "Hello, Ada!");
//! # Ok::<_, std::io::Error>(()) }).unwrap();
//! ```
//!
//! Typed outputs go from step to step through the state's slots; JSON is
//! made only for the journal and the bus.
//!
//! # Where things are
//!
//! - [`agent`]: the [`Agent`] trait, its [`AgentContext`] (cancellation,
//!   ids, attempt, config) and [`AgentError`] (retryable or fatal);
//! - [`executor`]: plans ([`Node`], [`AgentStep`]), [`Workflow`], [`Runtime`]
//!   and the handle of a running execution; [`switch`], [`map`] and [`wait`]
//!   are the other kinds of steps;
//! - [`policy`] and [`resilience`]: timeouts, retries and circuit breakers,
//!   usable around any async call ([`resilience::call`]);
//! - [`journal`]: the JSON Lines journal, its stores and readers; [`resume`]
//!   goes on with an execution whose process died; [`bus`] streams events;
//! - [`program`]: the generated program's `main` (run, `serve`, `--test`);
//! - `testing` (feature `testing`): mock agents and journal assertions;
//! - [`codegen`]: the one path generated code uses.
//!
//! # Feature flags
//!
//! None is on by default: a generated crate turns on what its workflow needs.
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `test-mode` | the generated program's `--test FILE`: mocked steps on paused tokio time |
//! | `testing` | the `testing` module (mock agents, journal assertions); implies `test-mode` |
//! | `server` | `PROGRAM serve`: the workflow as an HTTP service (axum) |
//! | `llm` | LLM agents (`llm::LlmAgent`): an HTTP client and the output validator |
//! | `restate` | the Restate target (`restate` module, `orchestr8 compile --target restate`) |
//! | `restate-rest` | `ID-restate rest`: `PROGRAM serve`'s REST API for a workflow on Restate, over its ingress and admin APIs ([`restate::rest`]) |
//! | `otel` | OpenTelemetry export of traces and metrics over OTLP/HTTP, switched on by the `OTEL_*` variables |

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod agent;
pub mod bus;
pub mod codegen;
pub mod error;
pub mod executor;
pub mod journal;
pub mod llm;
pub mod map;
pub mod policy;
pub mod program;
pub mod resilience;
#[cfg(feature = "restate")]
pub mod restate;
pub mod resume;
#[cfg(feature = "server")]
mod server;
#[cfg(feature = "server")]
pub use server::openapi_document;
pub mod state;
pub mod switch;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod usage;
pub mod wait;

pub use agent::{Agent, AgentContext, AgentError, AgentErrorKind, DynAgent, ExecutionMeta};
pub use bus::{BusMessage, EventBus, Subscriber};
pub use error::{ErrorKind, ExecutionError, StepError};
pub use executor::{
    AgentStep, Execution, ExecutionHandle, ExecutionOptions, Idempotency, MockReply, MockStep, Node, OnError, Outcome,
    Runtime, StepMocks, StepNode, Workflow, WorkflowInfo,
};
pub use journal::{FileStore, JournalEvent, JournalStore, Json, MemoryStore};
pub use policy::{CircuitBreakerPolicy, Policy, PolicyOverlay, RetryPolicy};
pub use resilience::{BreakerRegistry, CircuitBreaker, CircuitState};
pub use resume::{Resume, ResumeError};
pub use state::{ExecutionState, StepState};
pub use switch::Switch;
pub use tokio_util::sync::CancellationToken;
pub use usage::{Tokens, Usage, UsageMeter};
pub use wait::{Mailbox, PayloadError, Signals, Undelivered, WaitStep, Waiting};
