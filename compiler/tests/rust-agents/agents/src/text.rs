use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(
    id = "summarize",
    version = "1.0.0",
    input = {
        /// The text to summarize.
        text: String,
        maxWords: Option<u32>,
        status: "open" | "closed",
    },
    output = { summary: String },
)]
pub async fn summarize(_ctx: &AgentContext<'_>, input: SummarizeInput) -> Result<SummarizeOutput, AgentError> {
    todo!()
}
