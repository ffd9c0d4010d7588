//! What the benches share: an agent that answers at once.

use orchestr8_runtime::agent::{Agent, AgentContext, AgentError, ExecutionMeta};

/// A no-op agent: what the executor costs around an agent call.
pub struct Noop;

impl Agent for Noop {
    type Input = ();
    type Output = ();
    fn id(&self) -> &str {
        "noop"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, _ctx: &AgentContext<'_>, _input: ()) -> Result<(), AgentError> {
        Ok(())
    }
}

/// An execution's identity for agent calls made outside the executor (the
/// hand-written floors).
#[allow(dead_code)] // Not every bench has a floor that needs it.
pub fn meta() -> std::sync::Arc<ExecutionMeta> {
    std::sync::Arc::new(ExecutionMeta {
        execution_id: "e".into(),
        correlation_id: "c".into(),
        workflow_id: "w".into(),
        workflow_version: "1".into(),
    })
}
