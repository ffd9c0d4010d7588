//! Why an LLM call failed: the `reason` journaled with the step's error, so
//! a reader (or `onError` handling) can tell a refusal from a truncation
//! without reading the message.

use crate::agent::AgentError;

/// An LLM agent's failure class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// The agent cannot run as defined (no API key, a schema the provider cannot take).
    Config,
    /// The model declined to answer. Never repaired.
    Refused,
    /// The provider's content filter stopped the answer. Never repaired.
    ContentFilter,
    /// The answer hit `maxTokens`. Never repaired.
    Truncated,
    /// The model stopped for another reason (e.g. `pause_turn`).
    Stopped,
    /// No answer matched the output schema within `repair.maxAttempts` repairs.
    InvalidOutput,
    /// The provider rejected the request (400, 401, 403, 404, a spent quota).
    ProviderRejected,
    /// The provider is overloaded or failing (408, 409, 429, 5xx, 529): retried.
    ProviderUnavailable,
    /// The provider answered 2xx with a body that is not its API's.
    ProviderError,
    /// The provider could not be reached (connection refused, reset, DNS).
    Transport,
}

impl Failure {
    /// The journal's name, e.g. `"refused"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Config => "config",
            Failure::Refused => "refused",
            Failure::ContentFilter => "content_filter",
            Failure::Truncated => "truncated",
            Failure::Stopped => "stopped",
            Failure::InvalidOutput => "invalid_output",
            Failure::ProviderRejected => "provider_rejected",
            Failure::ProviderUnavailable => "provider_unavailable",
            Failure::ProviderError => "provider_error",
            Failure::Transport => "transport",
        }
    }

    /// A fatal agent error of this class.
    pub fn fatal(self, message: impl Into<String>) -> AgentError {
        AgentError::fatal(message).with_reason(self.as_str())
    }

    /// A retryable agent error of this class.
    pub fn retryable(self, message: impl Into<String>) -> AgentError {
        AgentError::retryable(message).with_reason(self.as_str())
    }
}
