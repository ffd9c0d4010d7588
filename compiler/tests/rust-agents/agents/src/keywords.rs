//! A declaration whose field no Rust identifier can name.

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(id = "odd", version = "1.0.0", input = { name: String, self: String }, output = { text: String })]
/// Its input has a field named `self`.
pub async fn odd(_ctx: &AgentContext<'_>, input: OddInput) -> Result<OddOutput, AgentError> {
    Ok(OddOutput { text: input.name })
}
