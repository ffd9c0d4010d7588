//! The workflow document as Rust types: the format contract of
//! `docs/spec/workflow-v1.md`, one type per concept.
//!
//! Doc comments here become the descriptions of the published JSON Schema,
//! so they are written for the person editing `workflow.json`.

use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The format versions this build reads.
pub const SUPPORTED_SCHEMA_VERSIONS: &[&str] = &["1.0.0"];

/// Pattern of a workflow id (`metadata.id`).
pub const WORKFLOW_ID_PATTERN: &str = "^[a-z][a-z0-9-]{0,63}$";
/// Pattern of an agent id and of a step id.
pub const IDENTIFIER_PATTERN: &str = "^[a-z][a-z0-9_]{0,63}$";
/// Pattern of a signal name (`wait.signal`).
pub const SIGNAL_PATTERN: &str = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$";
/// Pattern of a semantic version.
pub const SEMVER_PATTERN: &str = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$";
/// Pattern of a duration written as text.
pub const DURATION_PATTERN: &str = r"^[0-9]+(ms|s|m|h)$";

/// An orchestr8 workflow: agents wired into steps, with resilience policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "orchestr8 workflow")]
pub struct Workflow {
    /// The JSON Schema this document follows, for editors (ignored by orchestr8).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Version of the workflow format. This build reads "1.0.0".
    #[schemars(schema_with = "schema_version_schema")]
    pub schema_version: String,
    /// Who the workflow is: its id, name, version and description.
    pub metadata: Metadata,
    /// JSON Schema (draft 2020-12) of the workflow's input. Absent means `{}` is the only input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "inline_schema")]
    pub input: Option<Value>,
    /// The agents the steps call, by agent id (lower case letters, digits and `_`).
    #[schemars(extend("propertyNames" = {"pattern": IDENTIFIER_PATTERN}))]
    pub agents: BTreeMap<String, AgentDefinition>,
    /// Resilience policies by name. The policy named `default` applies to every step;
    /// a step's own policy overrides it field by field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, PolicyOverlay>,
    /// The steps, run in order.
    #[schemars(length(min = 1))]
    pub steps: Vec<Step>,
    /// A value expression for the workflow's result. Absent means the last step's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "value_expression")]
    pub output: Option<Value>,
    /// Limits on each execution (a token budget for its model calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<WorkflowLimits>,
}

/// Who the workflow is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Workflow id: lower case letters, digits and `-`, starting with a letter. It names the
    /// generated crate and binary.
    #[schemars(regex(pattern = WORKFLOW_ID_PATTERN))]
    pub id: String,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Semantic version of this workflow, recorded in every journal.
    #[schemars(regex(pattern = SEMVER_PATTERN))]
    pub version: String,
    /// What the workflow does; becomes doc comments in generated code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// An agent: a unit of work with a typed input and a typed output. `kind` says which sort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AgentDefinition {
    /// An async Rust function marked `#[agent]` in a crate beside the workflow.
    Rust(RustAgent),
    /// A language model called with a JSON prompt; its answer is validated against `output`.
    Llm(LlmAgent),
}

impl Workflow {
    /// The policy layers a step runs with, in merge order: `policies.default`,
    /// then the step's named or inline policy. `None` when it names a policy
    /// that is not declared.
    pub fn policy_layers<'a>(&'a self, step: &'a AgentStep) -> Option<impl Iterator<Item = &'a PolicyOverlay>> {
        let own = match &step.policy {
            Some(PolicyRef::Named(name)) => Some(self.policies.get(name)?),
            Some(PolicyRef::Inline(policy)) => Some(policy),
            None => None,
        };
        Some(self.policies.get("default").into_iter().chain(own))
    }
}

impl AgentDefinition {
    /// The part every kind of agent has.
    pub fn common(&self) -> &AgentCommon {
        match self {
            AgentDefinition::Rust(a) => &a.common,
            AgentDefinition::Llm(a) => &a.common,
        }
    }
}

/// A Rust agent: an async function marked `#[agent]`. Its input and output schemas come
/// from that declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RustAgent {
    /// Package name of the agent crate.
    #[serde(rename = "crate")]
    #[schemars(regex(pattern = r"^[A-Za-z][A-Za-z0-9_-]*$"))]
    pub crate_name: String,
    /// Directory of the agent crate, relative to the workflow file.
    #[schemars(length(min = 1))]
    pub path: String,
    /// Path of the `#[agent]` function inside the crate, e.g. `classify` or `nlp::classify`.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*$"))]
    pub function: String,
    /// Fields every kind of agent has.
    #[serde(flatten)]
    pub common: AgentCommon,
}

/// An agent that calls a language model: a JSON prompt in, JSON matching `output` out.
/// `input` and `output` are required: they are the agent's types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LlmAgent {
    /// The wire format: `anthropic` (the Messages API), or `openai` (any
    /// OpenAI-compatible chat-completions server: OpenAI, Ollama, vLLM, llama.cpp).
    pub provider: Provider,
    /// The model, as the provider names it (e.g. `claude-sonnet-4-5`).
    #[schemars(length(min = 1))]
    pub model: String,
    /// The provider's base URL (default `https://api.anthropic.com`, or
    /// `https://api.openai.com/v1`). `ORCHESTR8_ANTHROPIC_BASE_URL` /
    /// `ORCHESTR8_OPENAI_BASE_URL` override it at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The environment variable holding the API key (default `ANTHROPIC_API_KEY`, or
    /// `OPENAI_API_KEY`, which may be unset for a local server). The key is read from the
    /// environment only and never written anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub api_key_env: Option<String>,
    /// The JSON prompt.
    pub prompt: Prompt,
    /// Bound on the answer's tokens (default 4096). An answer cut off there fails the
    /// step with reason `truncated`; it is not repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_tokens: Option<u32>,
    /// Sampling temperature (the provider's default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// How an answer that does not match `output` is sent back with its validation errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
    /// How Anthropic is made to answer with the schema: `native` (`output_config.format`,
    /// the default) or `tool` (a forced tool call, for models without native structured
    /// output). Ignored by `openai`, which always uses `response_format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<StructuredOutput>,
    /// Limits on this agent's calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AgentLimits>,
    /// Fields every kind of agent has.
    #[serde(flatten)]
    pub common: AgentCommon,
}

/// A model provider's wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Anthropic's Messages API.
    Anthropic,
    /// An OpenAI-compatible chat-completions API.
    Openai,
}

/// How Anthropic is made to answer with the output schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StructuredOutput {
    /// `output_config.format`: the answer is JSON text.
    #[default]
    Native,
    /// A forced call of one tool whose input schema is the output schema.
    Tool,
}

/// The JSON prompt. Texts may reference the agent's own input (`${input.ticket.subject}`),
/// and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Prompt {
    /// The system prompt: who the model is.
    pub system: String,
    /// What to do with the input.
    pub instructions: String,
    /// Rules the answer must follow, listed in the system prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Worked examples; each must fit the agent's input and output schemas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Example>,
    /// How the user turn is rendered: `json` (the default: instructions, constraints,
    /// examples and input as one JSON object) or `markdown` (the same content as headings
    /// and lists). The system turn is the same in both; `orchestr8 eval` compares them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<PromptFormat>,
}

/// How a prompt's user turn is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromptFormat {
    /// One JSON object: `instructions`, `constraints`, `examples`, `input`.
    #[default]
    Json,
    /// Headings and lists, JSON values in fenced code blocks.
    Markdown,
}

/// An input and the output expected for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// An input, valid against the agent's input schema.
    pub input: Value,
    /// Its output, valid against the agent's output schema.
    pub output: Value,
}

/// The repair loop: an invalid answer is sent back with what is wrong with it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Repair {
    /// How many times an invalid answer is sent back (default 2; 0 never repairs). Each
    /// repair replaces the previous one, so a call's cost does not grow with them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10))]
    pub max_attempts: Option<u32>,
}

/// Limits on an agent's calls.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentLimits {
    /// Calls in flight at once to this provider URL and model, shared by every execution
    /// in the process (the first agent to run sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrency: Option<u32>,
}

/// Limits on one execution.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkflowLimits {
    /// Model tokens (input and output, repairs included) one execution may use. A call is
    /// not started once they are spent, and an answer is bounded by what is left; the
    /// step then fails with kind `budget_exceeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u64>,
}

/// Fields every kind of agent has.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentCommon {
    /// Semantic version of the agent; defaults to the crate's version. Circuit breakers are
    /// kept per agent id and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SEMVER_PATTERN))]
    pub version: Option<String>,
    /// What the agent does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A JSON object handed to the agent at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    /// JSON Schema of the agent's input. For a Rust agent it must agree with the `#[agent]`
    /// declaration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "inline_schema")]
    pub input: Option<Value>,
    /// JSON Schema of the agent's output. For a Rust agent it must agree with the `#[agent]`
    /// declaration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "inline_schema")]
    pub output: Option<Value>,
}

/// A step: an agent call, a wait for a signal, a parallel block, a sequence, a switch or
/// a map. Exactly one of `agent`, `wait`, `parallel`, `sequence`, `switch` and `map` says
/// which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
// Steps are read once per document; boxing the agent step would only make matching noisier.
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// Calls an agent.
    Agent(AgentStep),
    /// Waits for a signal; its payload is the step's output.
    Wait(WaitStep),
    /// Runs its steps concurrently.
    Parallel(ParallelStep),
    /// Runs its steps in order.
    Sequence(SequenceStep),
    /// Runs the steps of the case matching a value.
    Switch(SwitchStep),
    /// Runs its body once per item of a list.
    Map(MapStep),
}

impl Step {
    /// The step's id.
    pub fn id(&self) -> &str {
        match self {
            Step::Agent(s) => &s.id,
            Step::Wait(s) => &s.id,
            Step::Parallel(s) => &s.id,
            Step::Sequence(s) => &s.id,
            Step::Switch(s) => &s.id,
            Step::Map(s) => &s.id,
        }
    }

    /// The steps nested directly inside a block (none for an agent step); a
    /// switch's cases one after another, then its `default`; a map's body.
    pub fn children(&self) -> Vec<&Step> {
        self.child_lists().into_iter().flat_map(|l| l.steps).collect()
    }

    /// The lists of steps nested directly inside a block, each with the JSON
    /// pointer of the list relative to the block: one for a parallel block
    /// or a sequence, one per case (then `default`) for a switch, the body
    /// (one step, at `/map/step` itself) for a map.
    pub fn child_lists(&self) -> Vec<StepList<'_>> {
        match self {
            Step::Agent(_) | Step::Wait(_) => Vec::new(),
            Step::Parallel(s) => {
                vec![StepList { pointer: "/parallel".into(), case: None, steps: &s.parallel, single: false }]
            }
            Step::Sequence(s) => {
                vec![StepList { pointer: "/sequence".into(), case: None, steps: &s.sequence, single: false }]
            }
            Step::Switch(s) => s
                .branches()
                .map(|(i, b)| StepList {
                    pointer: b.steps_pointer(),
                    case: Some(i),
                    steps: b.case.steps(),
                    single: false,
                })
                .collect(),
            Step::Map(s) => vec![StepList {
                pointer: "/map/step".into(),
                case: None,
                steps: std::slice::from_ref(&*s.map.step),
                single: true,
            }],
        }
    }

    /// The step whose output is this step's output: itself for an agent
    /// step, a wait, a map or a switch with outputs; a sequence's last
    /// step's; none for a parallel block or a switch without outputs.
    pub fn result(&self) -> Option<&Step> {
        match self {
            Step::Agent(_) | Step::Wait(_) | Step::Map(_) => Some(self),
            Step::Switch(s) => s.branches().next().and_then(|(_, b)| b.case.output()).map(|_| self),
            Step::Sequence(s) => s.sequence.last()?.result(),
            Step::Parallel(_) => None,
        }
    }

    /// What sort of block it is: `parallel`, `sequence`, `switch`, `map`, or none.
    pub fn children_key(&self) -> Option<&'static str> {
        match self {
            Step::Agent(_) | Step::Wait(_) => None,
            Step::Parallel(_) => Some("parallel"),
            Step::Sequence(_) => Some("sequence"),
            Step::Switch(_) => Some("switch"),
            Step::Map(_) => Some("map"),
        }
    }
}

/// A list of steps nested in a block ([`Step::child_lists`]).
#[derive(Debug, Clone)]
pub struct StepList<'a> {
    /// The list's JSON pointer relative to the block (`/parallel`, `/cases/bug/steps`).
    pub pointer: String,
    /// For a switch: the branch's index (cases in document order, then `default`).
    pub case: Option<usize>,
    /// The steps.
    pub steps: &'a [Step],
    /// Whether the list is one step written as such (a map's `step`), not
    /// an array: its step's pointer is the list's.
    pub single: bool,
}

impl StepList<'_> {
    /// The pointer of the list's step `i`, in the block at `block`.
    pub fn step_pointer(&self, block: &str, i: usize) -> String {
        match self.single {
            true => format!("{block}{}", self.pointer),
            false => format!("{block}{}/{i}", self.pointer),
        }
    }
}

/// Calls an agent with an input built from value expressions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentStep {
    /// Step id: lower case letters, digits and `_`, unique in the document, not a Rust keyword, nor `input` or `ids`.
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub id: String,
    /// What the step does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The id of the agent to call, a key of `agents`.
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub agent: String,
    /// The agent's input: one value expression per field of the agent's input. Strings may
    /// reference data with `${input.x}`, `${steps.ID.output.y}`, `${execution.id}`,
    /// `${execution.correlationId}`, `${workflow.id}`, `${workflow.version}`; `$${` is a
    /// literal `${`.
    #[serde(default)]
    #[schemars(schema_with = "step_input")]
    pub input: Map<String, Value>,
    /// A policy name (a key of `policies`) or an inline policy. Fields it leaves out come
    /// from `policies.default`, then from the built-in defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRef>,
    /// What a failure of this step does: `fail` (the default) fails the workflow;
    /// `continue` records it, and later steps see this step's output as optional.
    #[serde(default, skip_serializing_if = "OnError::is_fail")]
    pub on_error: OnError,
}

/// Waits for a signal sent from outside (`PROGRAM signal ID STEP --data JSON`); the
/// signal's payload, checked against `wait.schema`, is the step's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaitStep {
    /// Step id: lower case letters, digits and `_`, unique in the document, not a Rust keyword, nor `input` or `ids`.
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub id: String,
    /// What the step waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The signal and its payload.
    pub wait: WaitSpec,
    /// What a timeout of the wait does: `fail` (the default) fails the workflow;
    /// `continue` records it, and later steps see this step's output as optional.
    #[serde(default, skip_serializing_if = "OnError::is_fail")]
    pub on_error: OnError,
}

/// The signal a `wait` step waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaitSpec {
    /// The signal's name. Waits are addressed by their step id, so two steps may wait
    /// for signals of the same name.
    #[schemars(regex(pattern = SIGNAL_PATTERN))]
    pub signal: String,
    /// JSON Schema (draft 2020-12) of the payload: an object. Later steps read its fields
    /// as `${steps.ID.output.FIELD}`.
    #[schemars(schema_with = "inline_schema")]
    pub schema: Value,
    /// How long to wait (counted from the first time the step waits, across suspensions).
    /// Absent: until the signal comes. A timeout fails the step with kind `timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

/// Runs its steps concurrently; completes when all have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParallelStep {
    /// Step id: lower case letters, digits and `_`, unique in the document, not a Rust keyword, nor `input` or `ids`.
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub id: String,
    /// What the block does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The steps to run concurrently. They may not reference each other.
    #[schemars(length(min = 1))]
    pub parallel: Vec<Step>,
    /// `true` (the default): the first failure cancels the others and fails the block.
    /// `false`: wait for every step, then fail if any failed.
    #[serde(default = "fail_fast_default", skip_serializing_if = "is_true")]
    pub fail_fast: bool,
}

/// Runs its steps in order (a branch of a parallel block with several steps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SequenceStep {
    /// Step id: lower case letters, digits and `_`, unique in the document, not a Rust keyword, nor `input` or `ids`.
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub id: String,
    /// What the sequence does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The steps to run in order.
    #[schemars(length(min = 1))]
    pub sequence: Vec<Step>,
}

/// Runs a body (an agent step, a sequence or a parallel block) once per item
/// of a list, at most `concurrency` items at a time; its output is the list
/// of the body's outputs, in the list's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MapStep {
    /// Step id: lower case letters, digits and `_`, unique in the document, not a Rust keyword, nor `input` or `ids`.
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub id: String,
    /// What the map does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The list, the item's name, and the body.
    pub map: MapSpec,
}

/// What a `map` step maps over, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MapSpec {
    /// The list: one reference, `${steps.ID.output.FIELD}` or `${input.FIELD}`, to a list.
    pub over: String,
    /// The item's name: inside the body, `${NAME}` (and paths below it) is the current
    /// item, and `${map.index}` its index from 0.
    #[serde(rename = "as")]
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub item: String,
    /// At most this many items in flight (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub concurrency: Option<u64>,
    /// How many items may fail before the map fails: a count (`2`) or a percentage
    /// of the items (`"10%"`). Default 0. When it is not 0, a failed item's output is
    /// `null` in the map's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerated_failures: Option<ToleratedFailures>,
    /// The step run for each item: an agent step, a sequence or a parallel block. Its
    /// output (a sequence's: its last step's) is the item's output.
    pub step: Box<Step>,
}

/// `map.toleratedFailures`: a count or a percentage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ToleratedFailures {
    /// At most this many items.
    Count(u64),
    /// At most this percentage of the items, rounded down: `"10%"`, `"2.5%"`.
    Percent(#[schemars(regex(pattern = PERCENT_PATTERN))] String),
}

/// A percentage from 0 to 100.
pub const PERCENT_PATTERN: &str = r"^(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)%$";

impl ToleratedFailures {
    /// Whether no failure is tolerated.
    pub fn is_zero(&self) -> bool {
        match self {
            ToleratedFailures::Count(n) => *n == 0,
            ToleratedFailures::Percent(_) => self.percent().is_some_and(|v| v == 0.0),
        }
    }

    /// The percentage, for `Percent` (its pattern checked by the schema).
    pub fn percent(&self) -> Option<f64> {
        match self {
            ToleratedFailures::Count(_) => None,
            ToleratedFailures::Percent(p) => p.strip_suffix('%')?.parse().ok(),
        }
    }
}

/// Runs the steps of the case whose key is the value of `switch`; the other cases' steps
/// are skipped. Steps inside a case read as optional after the switch (they may not have
/// run). With `output` on every case, later steps read the taken case's output as
/// `${steps.ID.output}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SwitchStep {
    /// Step id: lower case letters, digits and `_`, unique in the document, not a Rust keyword, nor `input` or `ids`.
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub id: String,
    /// What the switch decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The value to switch on: one reference, `"${steps.classify.output.category}"`, to a
    /// string enum, a boolean (cases `"true"` and `"false"`) or a string (then `default` is
    /// required).
    pub switch: String,
    /// The cases, by value, in the order they are listed: a list of steps, or
    /// `{"steps": [...], "output": VALUE}`.
    #[schemars(extend("minProperties" = 1))]
    pub cases: SwitchCases,
    /// The case for every value no key of `cases` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<SwitchCase>,
}

/// A switch's cases in document order ([`SwitchStep::cases`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SwitchCases(pub Vec<(String, SwitchCase)>);

impl SwitchCases {
    /// The case for `value`.
    pub fn get(&self, value: &str) -> Option<&SwitchCase> {
        self.0.iter().find(|(k, _)| k == value).map(|(_, c)| c)
    }
}

impl Serialize for SwitchCases {
    fn serialize<Se: serde::Serializer>(&self, serializer: Se) -> Result<Se::Ok, Se::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SwitchCases {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SwitchCases;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of cases")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<SwitchCases, M::Error> {
                // In document order: the order cases are shown and numbered in.
                let mut cases = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, SwitchCase>()? {
                    cases.push((k, v));
                }
                Ok(SwitchCases(cases))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl JsonSchema for SwitchCases {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SwitchCases".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let case = generator.subschema_for::<SwitchCase>();
        json!({
            "description": "The cases, by value, in the order they are listed.",
            "type": "object",
            "additionalProperties": case,
        })
        .try_into()
        .expect("a JSON object is a schema")
    }
}

/// One case of a switch: its steps, or its steps and the switch's output when it is taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SwitchCase {
    /// The steps to run, in order (none: the case does nothing).
    Steps(Vec<Step>),
    /// The steps and the output.
    WithOutput(CaseWithOutput),
}

/// A case with an output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaseWithOutput {
    /// The steps to run, in order.
    pub steps: Vec<Step>,
    /// A value expression: the switch's output when this case is taken. It may read the
    /// case's own steps; every case's output has the same type.
    #[schemars(schema_with = "value_expression")]
    pub output: Value,
}

impl SwitchCase {
    /// Its steps.
    pub fn steps(&self) -> &[Step] {
        match self {
            SwitchCase::Steps(s) => s,
            SwitchCase::WithOutput(c) => &c.steps,
        }
    }

    /// Its output expression, if it declares one.
    pub fn output(&self) -> Option<&Value> {
        match self {
            SwitchCase::Steps(_) => None,
            SwitchCase::WithOutput(c) => Some(&c.output),
        }
    }
}

/// One branch of a switch ([`SwitchStep::branches`]).
#[derive(Debug, Clone, Copy)]
pub struct Branch<'a> {
    /// The case's key, `None` for `default`.
    pub value: Option<&'a str>,
    /// The case.
    pub case: &'a SwitchCase,
}

impl Branch<'_> {
    /// The branch's JSON pointer relative to the switch (`/cases/bug`, `/default`).
    pub fn pointer(&self) -> String {
        match self.value {
            Some(v) => format!("/cases/{}", crate::source::escape_pointer_token(v)),
            None => "/default".into(),
        }
    }

    /// The pointer of its list of steps relative to the switch.
    pub fn steps_pointer(&self) -> String {
        match self.case {
            SwitchCase::Steps(_) => self.pointer(),
            SwitchCase::WithOutput(_) => format!("{}/steps", self.pointer()),
        }
    }

    /// How the branch is shown: `"bug"`, or `default`.
    pub fn label(&self) -> String {
        self.value.map_or_else(|| "default".into(), |v| format!("\"{v}\""))
    }
}

impl SwitchStep {
    /// The cases in order, then `default`, with their index (the runtime's case index).
    pub fn branches(&self) -> impl Iterator<Item = (usize, Branch<'_>)> {
        self.cases
            .0
            .iter()
            .map(|(k, c)| Branch { value: Some(k.as_str()), case: c })
            .chain(self.default.iter().map(|c| Branch { value: None, case: c }))
            .enumerate()
    }
}

/// What a failed step does to the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// The workflow fails fast.
    #[default]
    Fail,
    /// The failure is recorded and the workflow goes on; the step's output becomes optional.
    Continue,
}

impl OnError {
    fn is_fail(&self) -> bool {
        *self == OnError::Fail
    }
}

/// A step's policy: the name of a policy in `policies`, or a policy written inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PolicyRef {
    /// A key of `policies`.
    Named(String),
    /// A policy for this step alone.
    Inline(PolicyOverlay),
}

/// Resilience for a step. Every field is optional: missing ones come from
/// `policies.default`, then from the built-in defaults.
// The partial form a workflow writes; the runtime's `Policy` is the resolved
// one, and the only place of defaults, merging and checks.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "Policy")]
pub struct PolicyOverlay {
    /// Bound on the whole step, every attempt and backoff sleep included (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Bound on one attempt (default: none, an attempt may use what is left of `timeout`).
    /// A timed-out attempt is retried while `retry` and `timeout` allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_timeout: Option<Duration>,
    /// How long a cancelled step's agent may take to return before it is abandoned and
    /// recorded as cancelled (default 5s; 0 abandons it at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_grace: Option<Duration>,
    /// Retry of retryable failures with exponential backoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryOverlay>,
    /// The circuit breaker of the step's agent. There is one breaker per agent id and
    /// version, shared by every step that calls it: its settings must agree (a warning
    /// otherwise), and the first step to run with it sets them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerOverlay>,
}

/// Retry with exponential backoff. The delay before attempt n+1 is
/// `min(maxDelay, initialDelay * backoffMultiplier^(n-1))`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "RetryPolicy")]
pub struct RetryOverlay {
    /// How many calls at most, the first included (default 3; 1 means no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u32>,
    /// Delay before the second call (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Duration>,
    /// Upper bound of the backoff delay, jitter included (default 10s). An agent's
    /// retry-after hint may ask for longer; only `timeout` bounds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Duration>,
    /// Factor by which the delay grows per attempt (default 2; at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub backoff_multiplier: Option<f64>,
    /// Full jitter: draw each delay uniformly in `[0, delay]` (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
}

/// A circuit breaker: after `failureThreshold` consecutive failed attempts the agent's
/// calls fail at once with `circuit_open` until `resetTimeout` has passed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(rename = "CircuitBreakerPolicy")]
pub struct CircuitBreakerOverlay {
    /// Consecutive failed attempts (timeouts included) that open the circuit (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub failure_threshold: Option<u32>,
    /// How long the circuit stays open before it lets probe calls through (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_timeout: Option<Duration>,
    /// Probe calls let through at once when half-open, and successes that close it (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub half_open_requests: Option<u32>,
}

/// A duration: integer milliseconds, or a string such as `"250ms"`, `"30s"`, `"2m"`, `"1h"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Duration {
    /// Milliseconds.
    Millis(u64),
    /// Digits and a unit: `ms`, `s`, `m` or `h`.
    Text(#[schemars(regex(pattern = DURATION_PATTERN))] String),
}

impl Duration {
    /// The duration, or what is wrong with it.
    pub fn to_std(&self) -> Result<std::time::Duration, DurationError> {
        match self {
            Duration::Millis(ms) => Ok(std::time::Duration::from_millis(*ms)),
            Duration::Text(text) => parse_duration(text),
        }
    }
}

/// A duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    /// The text as written.
    pub text: String,
    /// What is wrong with it.
    pub reason: DurationProblem,
}

/// What is wrong with a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationProblem {
    /// Not digits and a unit.
    NotADuration,
    /// A unit without a number.
    NoNumber,
    /// More milliseconds than fit 64 bits.
    TooLong,
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = &self.text;
        match self.reason {
            DurationProblem::NotADuration => write!(
                f,
                "`{text}` is not a duration: write integer milliseconds or digits with a unit (`250ms`, `30s`, `2m`, `1h`)"
            ),
            DurationProblem::NoNumber => write!(f, "`{text}` has no number before its unit"),
            DurationProblem::TooLong => write!(f, "`{text}` is too long a duration"),
        }
    }
}

impl std::error::Error for DurationError {}

/// The one duration parser: `"250ms"`, `"30s"`, `"2m"`, `"1h"`, or bare digits
/// of milliseconds (the contract's JSON form writes those as a number; a
/// command-line flag may write them as text). Blanks around it are ignored.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, DurationError> {
    let error = |reason| DurationError { text: text.to_owned(), reason };
    let trimmed = text.trim();
    let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(digits_end);
    let factor: u64 = match unit {
        "" | "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(error(DurationProblem::NotADuration)),
    };
    if digits.is_empty() {
        return Err(error(if unit.is_empty() { DurationProblem::NotADuration } else { DurationProblem::NoNumber }));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .map(std::time::Duration::from_millis)
        .ok_or_else(|| error(DurationProblem::TooLong))
}

fn fail_fast_default() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn schema_version_schema(_: &mut SchemaGenerator) -> Schema {
    json!({
        "description": "Version of the workflow format. This build reads \"1.0.0\".",
        "type": "string",
        "enum": SUPPORTED_SCHEMA_VERSIONS,
    })
    .try_into()
    .expect("a JSON object is a schema")
}

fn inline_schema(_: &mut SchemaGenerator) -> Schema {
    json!({
        "description": "A JSON Schema (draft 2020-12). orchestr8 supports `type`, `properties`, \
            `required`, `items`, `enum`, `const`, `description`, `title`, `default`, \
            `additionalProperties`, local `$ref`/`$defs`, `anyOf` with `null` for optional \
            values, and the validation keywords (`minimum`, `maxLength`, `pattern`, `format`, ...).",
        "type": ["object", "boolean"],
    })
    .try_into()
    .expect("a JSON object is a schema")
}

fn value_expression(_: &mut SchemaGenerator) -> Schema {
    json!({
        "description": "A value expression: any JSON value. A string that is exactly one \
            `${REF}` passes the referenced value with its own type; text around references \
            makes a string. `$${` is a literal `${`.",
    })
    .try_into()
    .expect("a JSON object is a schema")
}

fn step_input(_: &mut SchemaGenerator) -> Schema {
    json!({
        "description": "The agent's input: one value expression per field of the agent's input.",
        "type": "object",
        "additionalProperties": {
            "description": "A value expression: any JSON value, strings may hold `${REF}` references."
        },
    })
    .try_into()
    .expect("a JSON object is a schema")
}
