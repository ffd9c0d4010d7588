//! Agents that call a language model from a JSON prompt (`"kind": "llm"`).
//!
//! - [`prompt`]: the JSON prompt rendered into system text and a user turn;
//! - [`wire`]: the output schema as each provider can enforce it;
//! - [`provider`]: the Anthropic and OpenAI-compatible wire formats;
//! - [`Failure`]: the failure classes the journal records;
//! - `LlmAgent` (feature `llm`): the HTTP calls and the repair loop.
//!
//! Everything but `LlmAgent` is plain data and always built: the compiler
//! checks a workflow with the same code that runs it.

#[cfg(feature = "llm")]
mod agent;
mod failure;
pub mod prompt;
pub mod provider;
pub mod wire;

#[cfg(feature = "llm")]
pub use agent::LlmAgent;
pub use failure::Failure;

use orchestr8_schema::ast::Provider;

/// `maxTokens` when the agent does not say.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;
/// `repair.maxAttempts` when the agent does not say.
pub const DEFAULT_REPAIRS: u32 = 2;

/// The environment variable that overrides a provider's base URL at run
/// time (a local server, a proxy, a test double).
pub fn base_url_env(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "ORCHESTR8_ANTHROPIC_BASE_URL",
        Provider::Openai => "ORCHESTR8_OPENAI_BASE_URL",
    }
}
