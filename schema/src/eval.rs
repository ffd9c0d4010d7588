//! The eval file (`*.eval.json`): the tasks `orchestr8 eval` measures, each
//! an LLM agent, its inputs, and checks of its answers beyond the output
//! schema. `eval.schema.json` beside this crate is generated from
//! [`EvalFile`] by [`crate::eval_json_schema`].
//!
//! Doc comments here become the published schema's descriptions.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ast::LlmAgent;

/// The eval file versions this build reads.
pub const SUPPORTED_EVAL_VERSIONS: &[&str] = &["1.0.0"];

/// Pattern of a task id.
pub const TASK_ID_PATTERN: &str = "^[a-z][a-z0-9-]{0,63}$";

/// An orchestr8 eval: tasks whose LLM agents answer every input with the prompt rendered as
/// Markdown (control) and as JSON (test), scored on structure, constraints and completeness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schemars(title = "orchestr8 eval")]
pub struct EvalFile {
    /// The JSON Schema this document follows, for editors (ignored by orchestr8).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Version of the eval format. This build reads "1.0.0".
    #[schemars(schema_with = "eval_version_schema")]
    pub schema_version: String,
    /// A name for the reports.
    #[schemars(length(min = 1))]
    pub name: String,
    /// What the eval measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The tasks, run in this order in the report (their calls are interleaved).
    #[schemars(length(min = 1))]
    pub tasks: Vec<Task>,
}

/// One task: an agent, the inputs it answers, and what its answers must satisfy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Task {
    /// The task's id (lower case letters, digits and `-`), unique in the file.
    #[schemars(regex(pattern = TASK_ID_PATTERN))]
    pub id: String,
    /// What the task is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The LLM agent: inline (`{"kind": "llm", ...}`, as in a workflow's `agents`), or one
    /// of a workflow's (`{"workflow": "path/to/workflow.json", "agent": "classify"}`).
    pub agent: TaskAgent,
    /// The input documents, each valid against the agent's input schema.
    #[schemars(length(min = 1))]
    pub inputs: Vec<Value>,
    /// Checks of each answer beyond its output schema.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// JSON pointers of output fields that must be present and non-empty (scored under
    /// completeness with the output schema's required fields); `*` stands for every item
    /// of a list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Where a task's agent is defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TaskAgent {
    /// An LLM agent of a workflow file.
    Workflow(WorkflowAgent),
    /// An LLM agent written here, as in a workflow's `agents`.
    Inline(Box<InlineAgent>),
}

/// An LLM agent of a workflow file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowAgent {
    /// The workflow file, relative to the eval file.
    #[schemars(length(min = 1))]
    pub workflow: String,
    /// The id of an LLM agent in its `agents`.
    #[schemars(length(min = 1))]
    pub agent: String,
}

/// An LLM agent written in the eval file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum InlineAgent {
    /// A language model called with a JSON prompt (`prompt.format` is set by each arm).
    Llm(LlmAgent),
}

/// A check of one output field. `path` is a JSON pointer into the answer (`*` for every
/// item of a list: all must pass); exactly one of the checks is given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Constraint {
    /// The field checked: a JSON pointer into the answer, e.g. `/priority` or `/tags/*`.
    pub path: String,
    /// What the check is for, shown in the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A number within bounds (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Bounds>,
    /// A list's number of items, or a string's number of characters, within bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<Bounds>,
    /// A string's number of words (runs of non-blank characters), within bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Bounds>,
    /// A regular expression the string matches (Rust `regex` syntax, unanchored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub pattern: Option<String>,
    /// A term the string contains, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub contains: Option<String>,
    /// A term the string does not contain, ignoring case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub excludes: Option<String>,
    /// A JSON pointer into the input: the field equals the input's value there (strings
    /// compared trimmed and ignoring case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echoes: Option<String>,
}

/// Inclusive bounds; at least one is given.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    /// The smallest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The largest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl Bounds {
    /// Whether `x` is within the bounds.
    pub fn contains(&self, x: f64) -> bool {
        self.min.is_none_or(|m| x >= m) && self.max.is_none_or(|m| x <= m)
    }
}

fn eval_version_schema(_: &mut SchemaGenerator) -> Schema {
    json!({
        "description": "Version of the eval format. This build reads \"1.0.0\".",
        "type": "string",
        "enum": SUPPORTED_EVAL_VERSIONS,
    })
    .try_into()
    .expect("a JSON object is a schema")
}
