pub mod text;
mod hidden;

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(
    id = "fetch",
    version = "1.0.0",
    input = { id: String },
    output = {
        body: String,
        words: u32,
        author: { name: String, email: Option<String> },
        status: "open" | "closed",
    },
)]
/// Fetches a document.
pub async fn fetch(_ctx: &AgentContext<'_>, input: FetchInput) -> Result<FetchOutput, AgentError> {
    todo!()
}

#[agent(id = "score", version = "2.0.0", input = { value: f64, label: Option<String> }, output = { rating: Rating })]
pub async fn score(_ctx: &AgentContext<'_>, input: ScoreInput) -> Result<ScoreOutput, AgentError> {
    todo!()
}

/// Not an agent.
pub async fn helper(_ctx: &AgentContext<'_>, input: String) -> Result<String, AgentError> {
    todo!()
}

#[agent(id = "broken", version = "1.0", input = { a: &str }, output = {})]
pub async fn broken(_ctx: &AgentContext<'_>, input: BrokenInput) -> Result<BrokenOutput, AgentError> {
    todo!()
}

pub mod keywords;
