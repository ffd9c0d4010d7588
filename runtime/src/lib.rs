//! The runtime every workflow compiled by orchestr8 links: agents, resilience
//! (timeout, retry, circuit breaker), the executor, cancellation, the journal
//! and the event bus. Semantics follow the format contract
//! (`spec/workflow-v1.md`).
//!
//! Generated code reaches everything through [`codegen`].

#![warn(missing_docs)]

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
