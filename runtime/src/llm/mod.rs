//! Agents that call a language model from a JSON prompt (`"kind": "llm"`).
//!
//! - [`prompt`]: the JSON prompt rendered into system text and a user turn;
//! - [`wire`]: the output schema as each provider can enforce it;
//! - [`provider`]: the Anthropic and OpenAI-compatible wire formats, their
//!   bodies written by `json_writer`;
//! - [`Failure`]: the failure classes the journal records;
//! - `LlmAgent` (feature `llm`): the HTTP calls and the repair loop.
//!
//! Everything but `LlmAgent` is plain data and always built: the compiler
//! checks a workflow with the same code that runs it.

#[cfg(feature = "llm")]
mod agent;
#[cfg(feature = "llm")]
mod call_span;
mod failure;
mod json_writer;
pub mod prompt;
pub mod provider;
pub mod wire;

#[cfg(feature = "llm")]
pub use agent::{Answer, AnswerAgent, LlmAgent};
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

/// An `http` or `https` URL with a host, and nothing the endpoint path
/// cannot be appended to (a query or a fragment).
///
/// ```
/// use orchestr8_runtime::llm::check_base_url;
///
/// assert!(check_base_url("http://127.0.0.1:8080/v1").is_ok());
/// assert_eq!(check_base_url("localhost:8080"), Err("it must start with `http://` or `https://`"));
/// ```
pub fn check_base_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("it must start with `http://` or `https://`")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err("it has no host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it holds blanks");
    }
    if url.contains('?') || url.contains('#') {
        return Err("it has a query or a fragment, and the endpoint's path is appended to it");
    }
    if host.contains('@') {
        return Err("it holds credentials; name the key's variable with `apiKeyEnv` instead");
    }
    let port = host.rsplit_once(':').filter(|(h, _)| !h.ends_with(']') || host.starts_with('[')).map(|(_, p)| p);
    if let Some(p) = port.filter(|p| !p.contains(']')) {
        if p.parse::<u16>().is_err() {
            return Err("its port is not a number from 0 to 65535");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_base_url;

    #[test]
    fn base_urls() {
        for ok in ["http://127.0.0.1:8080/v1", "https://api.example.com", "http://[::1]:9000/v1", "http://localhost/"] {
            assert_eq!(check_base_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ftp://x",
            "127.0.0.1:8080",
            "http://",
            "http://:80",
            "http://h:99999",
            "http://a b",
            "http://h/v1?x=1",
            "https://u:p@h",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
    }
}
