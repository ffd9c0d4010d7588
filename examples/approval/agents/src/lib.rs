//! The agents of the `approval` example: a draft, and its publication once
//! people have answered.
//!
//! Each call appends its step id to the file named by `APPROVAL_CALLS`, when
//! set, so tests can count invocations across processes.

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(
    id = "draft",
    version = "1.0.0",
    input = {
        /// What to write about.
        topic: String,
    },
    output = {
        /// The draft.
        text: String,
    },
)]
/// Writes a draft announcement.
pub async fn draft(ctx: &AgentContext<'_>, input: DraftInput) -> Result<DraftOutput, AgentError> {
    count(ctx)?;
    Ok(DraftOutput { text: format!("Announcing: {}.", input.topic.trim()) })
}

#[agent(
    id = "publish",
    version = "1.0.0",
    input = {
        /// The text to publish.
        text: String,
        /// Whether the reviewer approved it.
        approved: bool,
        /// Who reviewed it.
        by: String,
    },
    output = {
        /// Whether it was published.
        published: bool,
        /// A summary of what happened.
        summary: String,
    },
)]
/// Publishes the draft if it was approved.
pub async fn publish(ctx: &AgentContext<'_>, input: PublishInput) -> Result<PublishOutput, AgentError> {
    count(ctx)?;
    let summary = if input.approved {
        format!("{} (approved by {})", input.text, input.by)
    } else {
        format!("not published: {} said no", input.by)
    };
    Ok(PublishOutput { published: input.approved, summary })
}

/// Records the call in `APPROVAL_CALLS`, if set.
fn count(ctx: &AgentContext<'_>) -> Result<(), AgentError> {
    use std::io::Write;
    let Some(path) = std::env::var_os("APPROVAL_CALLS") else { return Ok(()) };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| AgentError::fatal(format!("cannot record the call: {e}")))?;
    // One write per line, so concurrent calls' lines do not interleave.
    file.write_all(format!("{}\n", ctx.step_id()).as_bytes())
        .map_err(|e| AgentError::fatal(format!("cannot record the call: {e}")))
}
