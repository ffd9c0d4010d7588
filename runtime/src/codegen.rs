//! Everything generated crates use, under one path (like `tonic::codegen`):
//! generated code writes `::orchestr8_runtime::codegen::...` and nothing else.
//! The re-exports of `serde`, `serde_json`, `schemars`, `tokio` and
//! `tracing` are there so that a generated crate needs no dependency of its
//! own on them; the helper functions are used by generated code to move
//! outputs between steps.

pub use crate::agent::{Agent, AgentContext, AgentError, BoxFuture, ExecutionMeta};
pub use crate::error::{ErrorKind, ExecutionError, StepError};
pub use crate::executor::{
    new_execution_id, AgentStep, Execution, ExecutionHandle, ExecutionOptions, Idempotency, MockReply, MockStep, Node,
    OnError, Runtime, StepMocks, Workflow, WorkflowInfo,
};
pub use crate::journal::{FileStore, JournalStore, MemoryStore, DEFAULT_JOURNAL_DIR};
pub use crate::llm;
pub use crate::map::{all as map_all, MapStep, Tolerated};
pub use crate::policy::{CircuitBreakerPolicy, Policy, RetryPolicy};
pub use crate::program::{ExecutionIds, Program};
pub use crate::resilience::BreakerRegistry;
#[cfg(feature = "restate")]
pub use crate::restate;
pub use crate::state::ExecutionState;
pub use crate::switch::Switch;
pub use crate::wait::WaitStep;
pub use std::sync::{Arc, OnceLock};
pub use tokio_util::sync::CancellationToken;
pub use {schemars, serde, serde_json, tokio, tracing};

/// Reads a step's output slot, for building a later step's input: an empty
/// slot (the step did not succeed) is an error naming the step.
///
/// ```
/// use orchestr8_runtime::codegen::{slot, store, OnceLock};
///
/// let fetched: OnceLock<String> = OnceLock::new();
/// assert_eq!(slot(&fetched, "fetch").unwrap_err(), "the output of step fetch is not available");
/// store(&fetched, "fetch", "ticket".to_string()).unwrap();
/// assert_eq!(slot(&fetched, "fetch").unwrap(), "ticket");
/// assert!(store(&fetched, "fetch", "again".to_string()).is_err()); // a step runs once
/// ```
pub fn slot<'a, T>(slot: &'a OnceLock<T>, step: &str) -> Result<&'a T, String> {
    slot.get().ok_or_else(|| format!("the output of step {step} is not available"))
}

/// Stores a step's output in its slot; a second store is an error (a step
/// runs at most once per execution). See [`slot`] for an example.
pub fn store<T>(slot: &OnceLock<T>, step: &str, value: T) -> Result<(), String> {
    slot.set(value).map_err(|_| format!("the output of step {step} was already stored"))
}

/// A value moved into another type through serde: used by generated code
/// only where the compiler cannot see both types (named types defined in an
/// agent crate, `serde_json::Value` fields). Typed data otherwise moves
/// field by field.
///
/// ```
/// use orchestr8_runtime::codegen::convert;
///
/// let n: u32 = convert(&serde_json::json!(7)).unwrap();
/// assert_eq!(n, 7);
/// assert!(convert::<_, u32>(&"seven").is_err());
/// ```
pub fn convert<A: serde::Serialize + ?Sized, B: serde::de::DeserializeOwned>(value: &A) -> Result<B, String> {
    let json = serde_json::to_value(value).map_err(|e| format!("cannot convert a value: {e}"))?;
    serde_json::from_value(json).map_err(|e| format!("cannot convert a value: {e}"))
}

/// A value as JSON, for `serde_json::Value` fields built from typed data.
///
/// ```
/// assert_eq!(orchestr8_runtime::codegen::json(&Some(3)).unwrap(), serde_json::json!(3));
/// ```
pub fn json<A: serde::Serialize + ?Sized>(value: &A) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| format!("cannot convert a value to JSON: {e}"))
}

/// An `f64` as an `f32`, the nearest one, or an error when it is too large
/// for an `f32` (which `as` would make infinite).
///
/// ```
/// use orchestr8_runtime::codegen::f32_from;
///
/// assert_eq!(f32_from(0.5), Ok(0.5));
/// assert!(f32_from(1e39).is_err());
/// ```
pub fn f32_from(value: f64) -> Result<f32, String> {
    let narrowed = value as f32;
    if narrowed.is_finite() || !value.is_finite() {
        Ok(narrowed)
    } else {
        Err(format!("{value} does not fit an f32"))
    }
}

/// The text of a value for interpolation: a string as it is, anything else
/// as its JSON.
///
/// ```
/// use orchestr8_runtime::codegen::text;
///
/// assert_eq!(text(&"Ada").unwrap(), "Ada");
/// assert_eq!(text(&serde_json::json!({"id": 1})).unwrap(), r#"{"id":1}"#);
/// ```
pub fn text<A: serde::Serialize + ?Sized>(value: &A) -> Result<String, String> {
    match serde_json::to_value(value).map_err(|e| format!("cannot render a value: {e}"))? {
        serde_json::Value::String(s) => Ok(s),
        other => Ok(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert_and_text() {
        let n: i64 = convert(&serde_json::json!(5)).unwrap();
        assert_eq!(n, 5);
        assert!(convert::<_, i64>(&"x").is_err());
        assert_eq!(text(&"a b").unwrap(), "a b");
        assert_eq!(text(&serde_json::json!({"k": 1})).unwrap(), "{\"k\":1}");
        assert_eq!(json(&Some(3)).unwrap(), serde_json::json!(3));
        assert_eq!(json(&None::<u8>).unwrap(), serde_json::Value::Null);
        assert_eq!(f32_from(0.5).unwrap(), 0.5f32);
        assert!(f32_from(1e39).is_err());
        assert!(f32_from(-1e39).is_err());
    }
}
