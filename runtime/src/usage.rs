//! Model token usage: what an LLM call reports, what a step and an
//! execution add up, and the execution's token budget.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Tokens used by model calls. Journaled as `usage` on step and execution
/// events when any were used.
///
/// ```
/// use orchestr8_runtime::Usage;
///
/// let first = Usage { input_tokens: 900, output_tokens: 100, calls: 1, ..Usage::default() };
/// let repair = Usage { input_tokens: 1100, output_tokens: 80, calls: 1, ..Usage::default() };
/// let step = first.plus(repair);
/// assert_eq!((step.total_tokens(), step.calls), (2180, 2));
/// assert_eq!(serde_json::to_value(step).unwrap(), serde_json::json!({"inputTokens": 2000, "outputTokens": 180, "calls": 2}));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Input (prompt) tokens not read from or written to a cache.
    pub input_tokens: u64,
    /// Output (completion) tokens.
    pub output_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the provider's prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_input_tokens: u64,
    /// Model calls made (a repair is a call).
    pub calls: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Every token counted against a budget: input of all sorts and output.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_creation_input_tokens)
            .saturating_add(self.cache_read_input_tokens)
    }

    /// True when nothing was used (no call made).
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    /// The sum of two usages.
    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            cache_creation_input_tokens: self
                .cache_creation_input_tokens
                .saturating_add(other.cache_creation_input_tokens),
            cache_read_input_tokens: self.cache_read_input_tokens.saturating_add(other.cache_read_input_tokens),
            calls: self.calls.saturating_add(other.calls),
        }
    }

    /// What `self` has that `before` had not (both from one growing meter).
    pub fn since(self, before: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_sub(before.input_tokens),
            output_tokens: self.output_tokens.saturating_sub(before.output_tokens),
            cache_creation_input_tokens: self
                .cache_creation_input_tokens
                .saturating_sub(before.cache_creation_input_tokens),
            cache_read_input_tokens: self.cache_read_input_tokens.saturating_sub(before.cache_read_input_tokens),
            calls: self.calls.saturating_sub(before.calls),
        }
    }
}

/// A running total of [`Usage`], added to from concurrent steps.
#[derive(Debug, Default)]
pub struct UsageMeter {
    input: AtomicU64,
    output: AtomicU64,
    cache_creation: AtomicU64,
    cache_read: AtomicU64,
    calls: AtomicU64,
}

impl UsageMeter {
    /// Adds `u`.
    pub fn add(&self, u: Usage) {
        self.input.fetch_add(u.input_tokens, Ordering::Relaxed);
        self.output.fetch_add(u.output_tokens, Ordering::Relaxed);
        self.cache_creation.fetch_add(u.cache_creation_input_tokens, Ordering::Relaxed);
        self.cache_read.fetch_add(u.cache_read_input_tokens, Ordering::Relaxed);
        self.calls.fetch_add(u.calls, Ordering::Relaxed);
    }

    /// The total so far.
    pub fn get(&self) -> Usage {
        Usage {
            input_tokens: self.input.load(Ordering::Relaxed),
            output_tokens: self.output.load(Ordering::Relaxed),
            cache_creation_input_tokens: self.cache_creation.load(Ordering::Relaxed),
            cache_read_input_tokens: self.cache_read.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
        }
    }
}

/// Where an agent's model calls are counted: its step, its execution, and
/// the execution's budget (`limits.maxTokens`).
///
/// A Rust agent that calls a model itself records each call's usage, so the
/// journal shows it and the budget counts it:
///
/// ```
/// use orchestr8_runtime::{AgentContext, AgentError, Usage};
///
/// fn after_model_call(ctx: &AgentContext<'_>, input_tokens: u64, output_tokens: u64) -> Result<(), AgentError> {
///     if let Some(tokens) = ctx.tokens() {
///         tokens.record(Usage { input_tokens, output_tokens, calls: 1, ..Usage::default() });
///         if tokens.remaining() == Some(0) {
///             return Err(AgentError::budget_exceeded("the execution's token budget is spent"));
///         }
///     }
///     Ok(())
/// }
/// # use orchestr8_runtime::{CancellationToken, ExecutionMeta, Tokens, UsageMeter};
/// # let meta = ExecutionMeta { execution_id: "e".into(), correlation_id: "e".into(), workflow_id: "w".into(), workflow_version: "1".into() };
/// # let (cancel, config) = (CancellationToken::new(), serde_json::Value::Null);
/// let (step, execution) = (UsageMeter::default(), UsageMeter::default());
/// let ctx = AgentContext::new(&cancel, &meta, "draft", 1, &config).with_tokens(Tokens::new(&step, &execution, Some(1000)));
/// after_model_call(&ctx, 600, 100).unwrap();
/// assert!(after_model_call(&ctx, 250, 50).is_err());
/// assert_eq!(execution.get().total_tokens(), 1000);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    step: &'a UsageMeter,
    execution: &'a UsageMeter,
    budget: Option<u64>,
}

impl<'a> Tokens<'a> {
    /// Counts into `step` and `execution`, bounded by `budget` tokens per execution.
    pub fn new(step: &'a UsageMeter, execution: &'a UsageMeter, budget: Option<u64>) -> Self {
        Tokens { step, execution, budget }
    }

    /// Records one call's usage.
    pub fn record(&self, usage: Usage) {
        self.step.add(usage);
        self.execution.add(usage);
    }

    /// Tokens left in the execution's budget; `None` when it has none.
    pub fn remaining(&self) -> Option<u64> {
        self.budget.map(|b| b.saturating_sub(self.execution.get().total_tokens()))
    }

    /// The execution's budget, if any.
    pub fn budget(&self) -> Option<u64> {
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_add_and_budgets_shrink() {
        let (step, exec) = (UsageMeter::default(), UsageMeter::default());
        let t = Tokens::new(&step, &exec, Some(100));
        let u = Usage { input_tokens: 30, output_tokens: 20, cache_read_input_tokens: 5, calls: 1, ..Usage::default() };
        t.record(u);
        t.record(u);
        assert_eq!(step.get().total_tokens(), 110);
        assert_eq!(t.remaining(), Some(0));
        assert_eq!(exec.get().since(u), u);
        assert_eq!(
            serde_json::to_value(u).unwrap(),
            serde_json::json!({"inputTokens": 30, "outputTokens": 20, "cacheReadInputTokens": 5, "calls": 1})
        );
    }
}
