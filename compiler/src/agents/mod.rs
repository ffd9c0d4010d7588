//! Where the type layer gets each agent's input and output schemas.
//!
//! One interface, several sources: the workflow's own `input`/`output`
//! declarations, and the `#[agent]` declarations in agent crates. The
//! validator asks a source and never knows which it is.

mod rust_source;

pub use rust_source::{FoundAgent, FromRustSource};

use orchestr8_schema::ast::AgentDefinition;
use serde_json::Value;

use crate::diagnostics::Diagnostic;

/// Where a schema was declared, for messages that name both places.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// In the workflow document, at this JSON pointer.
    Workflow {
        /// JSON pointer of the schema.
        pointer: String,
    },
    /// In Rust source, at this file and line.
    RustSource {
        /// Path of the file, as shown to the user.
        file: String,
        /// 1-based line.
        line: usize,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Workflow { pointer } => write!(f, "`{pointer}`"),
            Origin::RustSource { file, line } => write!(f, "{file}:{line}"),
        }
    }
}

/// A schema and where it comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredSchema {
    /// The JSON Schema.
    pub schema: Value,
    /// Where it is declared.
    pub origin: Origin,
}

/// What a source knows about one agent's data.
#[derive(Debug, Clone, Default)]
pub struct AgentSchemas {
    /// Its input schema, if known.
    pub input: Option<DeclaredSchema>,
    /// Its output schema, if known.
    pub output: Option<DeclaredSchema>,
    /// Problems finding them (a missing crate, a named type the source
    /// cannot follow), located in the workflow.
    pub diagnostics: Vec<Diagnostic>,
    /// The `#[agent]` declaration, when the source reads them: code is
    /// generated only for agents whose declarations are known.
    pub declaration: Option<FoundAgent>,
}

/// A provider of agent schemas for the type layer.
pub trait AgentSchemaSource {
    /// The schemas of the agent `id`, declared at `pointer` in the workflow
    /// as `definition`.
    fn schemas(&self, id: &str, definition: &AgentDefinition, pointer: &str) -> AgentSchemas;
}

/// Schemas as the workflow itself declares them in `agents.ID.input` and
/// `agents.ID.output`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeclaredInWorkflow;

impl AgentSchemaSource for DeclaredInWorkflow {
    fn schemas(&self, _id: &str, definition: &AgentDefinition, pointer: &str) -> AgentSchemas {
        let common = definition.common();
        let declared = |schema: &Option<Value>, key: &str| {
            schema.as_ref().map(|s| DeclaredSchema {
                schema: s.clone(),
                origin: Origin::Workflow { pointer: format!("{pointer}/{key}") },
            })
        };
        AgentSchemas {
            input: declared(&common.input, "input"),
            output: declared(&common.output, "output"),
            diagnostics: Vec::new(),
            declaration: None,
        }
    }
}
