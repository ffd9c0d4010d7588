//! What the benches share: an agent that answers at once.

use orchestr8_runtime::agent::{Agent, AgentContext, AgentError};

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
