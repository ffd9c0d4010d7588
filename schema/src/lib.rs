//! The orchestr8 workflow format: the AST as serde types, its JSON Schema,
//! span-aware loading and the grammar of value expressions.
//!
//! The format contract is `spec/workflow-v1.md`; `workflow.schema.json`
//! beside this crate is generated from [`ast::Workflow`] by [`json_schema`].

pub mod ast;
pub mod expr;
pub mod source;

pub use ast::Workflow;

/// The JSON Schema of a workflow document (draft 2020-12), as published in
/// `schema/workflow.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(ast::Workflow)).expect("a schema serializes");
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("$id".into(), "https://orchestr8.dev/schema/workflow-v1.json".into());
    }
    schema
}

/// The published schema as pretty JSON with a trailing newline: the exact
/// bytes of `schema/workflow.schema.json`.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("a value serializes");
    text.push('\n');
    text
}
