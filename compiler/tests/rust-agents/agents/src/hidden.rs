use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(id = "secret", version = "1.0.0", input = { id: String }, output = { body: String })]
pub async fn secret(_ctx: &AgentContext<'_>, input: SecretInput) -> Result<SecretOutput, AgentError> {
    todo!()
}
