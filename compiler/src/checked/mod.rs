//! The checked workflow: what validation returns when a workflow is valid,
//! and the only thing code generation reads.
//!
//! Lowering ([`lower`]) decides everything here once: the Rust name of every
//! item, the type of every value, the resolved policy of every step (merged
//! by the runtime's own `Policy::resolve`), and each value expression as
//! typed reads and conversions ([`value`]). Code generation then renders it
//! and decides nothing.

pub mod lower;
pub mod types;
pub mod value;

use orchestr8_runtime::policy::Policy;
use proc_macro2::Ident;

pub use types::{RustTy, TypePath};
pub use value::Expr;

/// A valid workflow, ready to be rendered.
#[derive(Debug, Clone)]
pub struct CheckedWorkflow {
    /// `metadata.id`: the crate's and the binary's name.
    pub id: String,
    /// `metadata.version`.
    pub version: String,
    /// The generated module's doc comment: who the workflow is, what it does.
    pub docs: Vec<String>,
    /// `metadata.description`, else `metadata.name`: the program's `--help` text.
    pub about: Option<String>,
    /// A hash of the document's text, recorded in every journal.
    pub definition_hash: String,
    /// The input's type (`WorkflowInput`).
    pub input: RustTy,
    /// The input's JSON Schema as the document writes it (or the empty object's).
    pub input_schema: String,
    /// The result's type.
    pub output: RustTy,
    /// How the result is built from the state.
    pub output_value: Expr,
    /// The structs and enums the crate defines for its input, in order.
    pub input_types: Vec<RustTy>,
    /// The structs the crate defines for its result, in order.
    pub output_types: Vec<RustTy>,
    /// Whether any expression reads the input (the state then keeps it).
    pub reads_input: bool,
    /// Whether any expression reads the execution's ids.
    pub reads_ids: bool,
    /// The agent steps, in document order.
    pub steps: Vec<CheckedStep>,
    /// The wait steps, in document order.
    pub waits: Vec<CheckedWait>,
    /// The map steps, in document order (an enclosing map before the maps in its body).
    pub maps: Vec<CheckedMap>,
    /// The switches, in document order.
    pub switches: Vec<CheckedSwitch>,
    /// The plan: the top-level sequence.
    pub plan: Vec<PlanNode>,
    /// The distinct policies the steps run with.
    pub policies: Vec<NamedPolicy>,
    /// The agent crates the generated crate depends on.
    pub crates: Vec<AgentCrate>,
    /// The LLM agents, in id order.
    pub llm_agents: Vec<CheckedLlmAgent>,
    /// The structs and enums the crate defines for its LLM agents' inputs and outputs.
    pub agent_types: Vec<RustTy>,
    /// `limits.maxTokens`: each execution's token budget.
    pub max_tokens: Option<u64>,
}

/// How a step's agent is made.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentImpl {
    /// The unit struct `#[agent]` defines in an agent crate.
    Rust(TypePath),
    /// An LLM agent: an index into [`CheckedWorkflow::llm_agents`].
    Llm(usize),
}

/// An LLM agent, built once per program from its definition.
#[derive(Debug, Clone)]
pub struct CheckedLlmAgent {
    /// Its id.
    pub id: String,
    /// Its version: its own, else the workflow's.
    pub version: String,
    /// The function giving the program's one instance (`agent_triage`).
    pub ident: Ident,
    /// `agents.ID` as JSON: the runtime reads the prompt, provider and schemas from it.
    pub definition: String,
    /// Its input type (a struct or enum of [`CheckedWorkflow::agent_types`], or a plain type).
    pub input: RustTy,
    /// Its output type.
    pub output: RustTy,
}

/// An agent step.
#[derive(Debug, Clone)]
pub struct CheckedStep {
    /// The step's id.
    pub id: String,
    /// Its doc comment.
    pub docs: Vec<String>,
    /// The state's field holding its output, and the name its functions are made from.
    pub slot: Ident,
    /// The agent's id.
    pub agent: String,
    /// How the agent is made (`::triage_agents::nlp::ClassifyAgent`, or an LLM agent).
    pub agent_impl: AgentImpl,
    /// The agent's input type.
    pub input_type: RustTy,
    /// The agent's output type.
    pub output_type: RustTy,
    /// The agent's input, built from the state.
    pub input: Expr,
    /// Its policy: an index into [`CheckedWorkflow::policies`].
    pub policy: usize,
    /// `onError: "continue"`.
    pub continue_on_error: bool,
    /// The agent's `config`.
    pub config: Option<serde_json::Value>,
    /// The state it runs on: the workflow's, or the item state of the map
    /// (an index into [`CheckedWorkflow::maps`]) whose body it is in.
    pub state: Option<usize>,
}

/// A map step.
#[derive(Debug, Clone)]
pub struct CheckedMap {
    /// The step's id.
    pub id: String,
    /// Its doc comment.
    pub docs: Vec<String>,
    /// The field of the state it runs on holding its output, and the name its functions are made from.
    pub slot: Ident,
    /// The state it runs on (as [`CheckedStep::state`]).
    pub state: Option<usize>,
    /// The struct of each item's state (`SummariesItem`).
    pub item_state: Ident,
    /// The item's type.
    pub item: RustTy,
    /// The list, read from the state it runs on.
    pub over: Expr,
    /// The body: nodes on the item state.
    pub body: Box<PlanNode>,
    /// The field of the item state holding the body's output (its result step's).
    pub result: Ident,
    /// The type of one item's output.
    pub result_type: RustTy,
    /// `map.concurrency`.
    pub concurrency: Option<u64>,
    /// `map.toleratedFailures`, when not 0: the output is then `Vec<Option<T>>`.
    pub tolerated: Option<Tolerated>,
    /// Its output type: `Vec<T>`, or `Vec<Option<T>>` when failures are tolerated.
    pub output: RustTy,
    /// What the steps inside read of the item state's own fields (a field
    /// nothing reads is not generated: it would be dead code).
    pub reads: ItemReads,
}

/// Which of an item state's own fields are read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemReads {
    /// `up`: the state the map runs on.
    pub up: bool,
    /// `index`.
    pub index: bool,
    /// `item`.
    pub item: bool,
}

/// How many of a map's items may fail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerated {
    /// A count.
    Count(u64),
    /// A percentage.
    Percent(f64),
}

/// A step that waits for a signal.
#[derive(Debug, Clone)]
pub struct CheckedWait {
    /// The step's id.
    pub id: String,
    /// Its doc comment.
    pub docs: Vec<String>,
    /// The state's field holding its payload.
    pub slot: Ident,
    /// The signal's name.
    pub signal: String,
    /// The payload's JSON Schema as the document writes it (checked at run time
    /// for the bounds its type cannot hold).
    pub schema: String,
    /// The payload's type (a struct of [`CheckedWorkflow::agent_types`]).
    pub payload: RustTy,
    /// `wait.timeout`, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `onError: "continue"`.
    pub continue_on_error: bool,
}

/// A switch.
#[derive(Debug, Clone)]
pub struct CheckedSwitch {
    /// The step's id.
    pub id: String,
    /// Its doc comment.
    pub docs: Vec<String>,
    /// The name its functions are made from, and the state's field holding its output.
    pub slot: Ident,
    /// The value it switches on, owned.
    pub on: Expr,
    /// Which branch each value takes.
    pub arms: SwitchArms,
    /// Each branch's label (`"bug"`, `default`), for skip reasons.
    pub labels: Vec<String>,
    /// Its output: the type, and each branch's value of it.
    pub output: Option<(RustTy, Vec<Expr>)>,
}

/// Which branch (by index: the cases in order, then `default`) each value of
/// a switch takes: an exhaustive `match`.
#[derive(Debug, Clone, PartialEq)]
pub enum SwitchArms {
    /// A string enum: every variant, with its branch.
    Enum {
        /// The enum.
        path: TypePath,
        /// Each variant and its branch.
        arms: Vec<(Ident, usize)>,
    },
    /// A boolean.
    Bool {
        /// The branch of `true`.
        when_true: usize,
        /// The branch of `false`.
        when_false: usize,
    },
    /// A string: the cases' values, then every other value.
    Str {
        /// Each case's value and branch.
        arms: Vec<(String, usize)>,
        /// The `default` branch; none: another value fails the switch.
        otherwise: Option<usize>,
    },
}

/// A node of the plan.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanNode {
    /// An agent step: an index into [`CheckedWorkflow::steps`].
    Step(usize),
    /// A wait step: an index into [`CheckedWorkflow::waits`].
    Wait(usize),
    /// Children run concurrently.
    Parallel {
        /// The block's id.
        id: String,
        /// Whether the first failure cancels the others.
        fail_fast: bool,
        /// Its children.
        children: Vec<PlanNode>,
    },
    /// Children run in order.
    Sequence(Vec<PlanNode>),
    /// A map step: an index into [`CheckedWorkflow::maps`].
    Map(usize),
    /// A switch: an index into [`CheckedWorkflow::switches`], and its
    /// branches' plans (the cases in order, then `default`).
    Switch {
        /// The switch.
        index: usize,
        /// Each branch's steps.
        branches: Vec<Vec<PlanNode>>,
    },
}

/// A resolved policy, with the function that gives it.
#[derive(Debug, Clone)]
pub struct NamedPolicy {
    /// The function's name (`policy_default`, `policy_fast`, `policy_of_fetch`).
    pub ident: Ident,
    /// Where it comes from, for its doc comment.
    pub source: PolicySource,
    /// Whether the workflow has a `policies.default` under it.
    pub over_default: bool,
    /// The resolved policy.
    pub policy: Policy,
    /// The steps that run with it.
    pub steps: Vec<String>,
}

/// What a step's policy is written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// No policy: `policies.default` (if any) over the built-ins.
    Default,
    /// A named policy.
    Named(String),
    /// An inline policy of this step.
    Inline(String),
}

/// An agent crate the generated crate depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCrate {
    /// Its package name.
    pub name: String,
    /// Its directory, relative to the workflow file.
    pub path: String,
}
