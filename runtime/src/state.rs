//! Execution and step states, as the contract names them.

use serde::{Deserialize, Serialize};

use crate::journal::StateName;

/// An execution's state.
///
/// ```
/// use orchestr8_runtime::ExecutionState;
///
/// assert!(ExecutionState::Failed.is_terminal());
/// assert!(!ExecutionState::Waiting.is_terminal()); // a signal goes on with it
/// assert_eq!(serde_json::to_value(ExecutionState::Completed).unwrap(), "completed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionState {
    /// Created, not yet running.
    Pending,
    /// Running steps.
    Running,
    /// Finished with an output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped by a cancellation.
    Cancelled,
    /// Steps wait for signals and nothing else runs (a `run` that reached a
    /// `wait` ends its process in this state: `execution.suspended`).
    Waiting,
}

impl ExecutionState {
    /// The contract's name: `pending`, `running`, `completed`, `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionState::Pending => "pending",
            ExecutionState::Running => "running",
            ExecutionState::Completed => "completed",
            ExecutionState::Failed => "failed",
            ExecutionState::Cancelled => "cancelled",
            ExecutionState::Waiting => "waiting",
        }
    }

    /// True for completed, failed and cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(self, ExecutionState::Completed | ExecutionState::Failed | ExecutionState::Cancelled)
    }

    pub(crate) fn to_u8(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_u8(v: u8) -> ExecutionState {
        match v {
            0 => ExecutionState::Pending,
            1 => ExecutionState::Running,
            2 => ExecutionState::Completed,
            3 => ExecutionState::Failed,
            5 => ExecutionState::Waiting,
            _ => ExecutionState::Cancelled,
        }
    }
}

/// A step's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// An attempt is running.
    Executing,
    /// Waiting before the next attempt.
    Retrying,
    /// Produced its output.
    Succeeded,
    /// Failed (not by its timeout).
    Failed,
    /// Its timeout ended it.
    TimedOut,
    /// Cancelled while running.
    Cancelled,
    /// Never run.
    Skipped,
    /// Waiting for its signal (a `wait` step).
    Waiting,
}

impl StepState {
    /// The state a step ends in when it fails with `kind`: `timed_out` for a
    /// timeout, else `failed` (agent, wait and map steps alike).
    pub fn of_failure(kind: crate::error::ErrorKind) -> StepState {
        if kind == crate::error::ErrorKind::Timeout {
            StepState::TimedOut
        } else {
            StepState::Failed
        }
    }

    /// The step state with this name, if it is one.
    pub fn from_name(n: StateName) -> Option<StepState> {
        Some(match n {
            StateName::Executing => StepState::Executing,
            StateName::Retrying => StepState::Retrying,
            StateName::Succeeded => StepState::Succeeded,
            StateName::Failed => StepState::Failed,
            StateName::TimedOut => StepState::TimedOut,
            StateName::Cancelled => StepState::Cancelled,
            StateName::Skipped => StepState::Skipped,
            StateName::Waiting => StepState::Waiting,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod names {
    use super::ExecutionState::*;

    #[test]
    fn as_str_is_the_serialized_name() {
        for s in [Pending, Running, Completed, Failed, Cancelled, Waiting] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
