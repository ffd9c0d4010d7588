//! A generated program written by hand: one step that greets after a delay,
//! run through [`Program`] exactly as a compiled workflow's `main` is.
//!
//! ```text
//! cargo run -p orchestr8-runtime --example program -- --input '{"name": "Ada", "delayMs": 2000}'
//! ```
//!
//! Press Ctrl-C during the delay to see a cooperative cancellation (exit 130).

use std::process::ExitCode;
use std::time::Duration;

use orchestr8_runtime::codegen::{
    serde_json, slot, store, Agent, AgentContext, AgentError, AgentStep, Arc, ExecutionIds, Node, OnceLock, Program,
    Workflow, WorkflowInfo,
};
use serde::{Deserialize, Serialize};

/// The workflow's input.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Input {
    name: String,
    #[serde(default)]
    delay_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct GreetIn {
    name: String,
    delay_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct GreetOut {
    greeting: String,
}

struct Greet;

impl Agent for Greet {
    type Input = GreetIn;
    type Output = GreetOut;

    fn id(&self) -> &str {
        "greet"
    }

    fn version(&self) -> &str {
        "1.0.0"
    }

    async fn run(&self, ctx: &AgentContext<'_>, input: GreetIn) -> Result<GreetOut, AgentError> {
        tokio::select! {
            _ = ctx.cancellation_token().cancelled() => Err(AgentError::cancelled()),
            _ = tokio::time::sleep(Duration::from_millis(input.delay_ms)) => {
                Ok(GreetOut { greeting: format!("Hello, {}!", input.name) })
            }
        }
    }
}

struct State {
    input: Input,
    ids: ExecutionIds,
    greet: OnceLock<GreetOut>,
}

fn main() -> ExitCode {
    let greet = AgentStep::new(
        "greet",
        Arc::new(Greet),
        |s: &State| Ok(GreetIn { name: s.input.name.clone(), delay_ms: s.input.delay_ms }),
        |s: &State, out| store(&s.greet, "greet", out),
    )
    .node();
    let workflow = Workflow::new(
        WorkflowInfo::new("greeter", "0.1.0", "sha256:example"),
        Node::sequence(vec![greet]),
        |s: &State| {
            Ok(serde_json::json!({
                "greeting": slot(&s.greet, "greet")?.greeting,
                "executionId": s.ids.execution_id,
            }))
        },
    );
    Program::new(Arc::new(workflow), |input: Input, ids: &ExecutionIds| State {
        input,
        ids: ids.clone(),
        greet: OnceLock::new(),
    })
    .about("Greets someone, after a delay.")
    .input_schema(serde_json::json!({
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "delayMs": {"type": "integer", "minimum": 0}},
        "additionalProperties": false
    }))
    .main()
}
