//! An agent that says each call out loud: it appends its step's name to the
//! file named by `ORCHESTR8_CALLS_FILE` (one `write`, so lines from several
//! processes never interleave) before it sleeps, so a test counts how many
//! times each step really ran, across kills and restarts.

use std::io::Write;
use std::time::Duration;

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{tokio, AgentContext, AgentError};

#[agent(
    id = "record",
    version = "1.0.0",
    input = {
        /// The name written to the calls file.
        name: String,
        /// How long the call takes.
        sleepMs: u64,
    },
    output = {
        /// The name, back.
        name: String,
    },
)]
/// Records the call, then sleeps; when cancelled, records that (`NAME:cancelled`)
/// and gives up.
pub async fn record(ctx: &AgentContext<'_>, input: RecordInput) -> Result<RecordOutput, AgentError> {
    append(&input.name)?;
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(input.sleep_ms)) => {}
        _ = ctx.cancellation_token().cancelled() => {
            // Told: a test checks a cancellation reaches a running agent.
            append(&format!("{}:cancelled", input.name))?;
            return Err(AgentError::cancelled());
        }
    }
    Ok(RecordOutput { name: input.name })
}

#[agent(
    id = "fail",
    version = "1.0.0",
    input = {
        /// The name written to the calls file.
        name: String,
    },
    output = {
        /// Never given.
        name: String,
    },
)]
/// Records the call, then fails for good.
pub async fn fail(_ctx: &AgentContext<'_>, input: FailInput) -> Result<FailOutput, AgentError> {
    append(&input.name)?;
    Err(AgentError::fatal(format!("{} fails on purpose", input.name)))
}

#[agent(
    id = "bag",
    version = "1.0.0",
    input = {
        /// How many entries.
        size: u32,
    },
    output = {
        /// `k0: 0`, `k1: 1`, ...: a map whose order a replay does not keep.
        counts: std::collections::HashMap<String, u32>,
    },
)]
/// A `HashMap` output: decoded again on every replay, in another order.
pub async fn bag(_ctx: &AgentContext<'_>, input: BagInput) -> Result<BagOutput, AgentError> {
    Ok(BagOutput { counts: (0..input.size).map(|i| (format!("k{i}"), i)).collect() })
}

#[agent(
    id = "flaky",
    version = "1.0.0",
    input = {
        /// The name written to the calls file.
        name: String,
    },
    output = {
        /// The name, back.
        name: String,
    },
)]
/// Fails its first call in this process (retryably), then answers: a retry,
/// which Restate makes by replaying the invocation.
pub async fn flaky(_ctx: &AgentContext<'_>, input: FlakyInput) -> Result<FlakyOutput, AgentError> {
    static CALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    append(&input.name)?;
    if !CALLED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Err(AgentError::retryable(format!("{} fails its first call", input.name)));
    }
    Ok(FlakyOutput { name: input.name })
}

#[agent(
    id = "stubborn",
    version = "1.0.0",
    input = {
        /// The name written to the calls file.
        name: String,
        /// How long the call takes, cancelled or not.
        sleepMs: u64,
    },
    output = {
        /// The name, back.
        name: String,
    },
)]
/// Records the call, sleeps whatever happens, then records that it is done
/// (`NAME:done`): an agent that ignores its cancellation token.
pub async fn stubborn(_ctx: &AgentContext<'_>, input: StubbornInput) -> Result<StubbornOutput, AgentError> {
    append(&input.name)?;
    tokio::time::sleep(Duration::from_millis(input.sleep_ms)).await;
    append(&format!("{}:done", input.name))?;
    Ok(StubbornOutput { name: input.name })
}

#[agent(
    id = "item",
    version = "1.0.0",
    input = {
        /// The name written to the calls file.
        name: String,
        /// How long the call takes.
        sleepMs: u64,
        /// Whether it fails (for good) after its sleep.
        fail: bool,
    },
    output = {
        /// The name, back.
        name: String,
        /// The agent's step as it was told it (`MAP[INDEX].STEP` in a map).
        step: String,
        /// Its idempotency key.
        key: String,
    },
)]
/// A map item's work: records the call, sleeps (recording `NAME:cancelled`
/// and giving up when cancelled), then answers or fails as asked.
pub async fn item(ctx: &AgentContext<'_>, input: ItemInput) -> Result<ItemOutput, AgentError> {
    let recorded = record(ctx, RecordInput { name: input.name, sleep_ms: input.sleep_ms }).await?;
    if input.fail {
        return Err(AgentError::fatal(format!("{} fails on purpose", recorded.name)));
    }
    Ok(ItemOutput { name: recorded.name, step: ctx.step_id().to_owned(), key: ctx.idempotency_key() })
}

/// Appends `name` to the calls file, if the test named one.
fn append(name: &str) -> Result<(), AgentError> {
    let Some(path) = std::env::var_os("ORCHESTR8_CALLS_FILE") else { return Ok(()) };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| AgentError::fatal(format!("cannot open the calls file: {e}")))?;
    file.write_all(format!("{name}\n").as_bytes())
        .map_err(|e| AgentError::fatal(format!("cannot write the calls file: {e}")))
}
