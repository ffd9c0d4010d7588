//! The orchestr8 workflow format: the AST as serde types, its JSON Schema,
//! span-aware loading and the grammar of value expressions.
//!
//! The format contract is `docs/spec/workflow-v1.md`; `workflow.schema.json`
//! beside this crate is generated from [`ast::Workflow`] by [`json_schema`].

pub mod ast;
pub mod eval;
pub mod expr;
pub mod source;

pub use ast::Workflow;
use serde_json::Value;

/// The JSON Schema of a workflow document (draft 2020-12), as published in
/// `schema/workflow.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let schema = serde_json::to_value(schemars::schema_for!(ast::Workflow)).expect("a schema serializes");
    publish(schema, "AgentDefinition", "Which sort of agent this is.", "workflow-v1")
}

/// The published schema as pretty JSON with a trailing newline: the exact
/// bytes of `schema/workflow.schema.json`.
pub fn json_schema_text() -> String {
    pretty(&json_schema())
}

/// The JSON Schema of an eval file (`*.eval.json`), as published in
/// `schema/eval.schema.json`. Its inline agents are the workflow's LLM agents.
pub fn eval_json_schema() -> serde_json::Value {
    let schema = serde_json::to_value(schemars::schema_for!(eval::EvalFile)).expect("a schema serializes");
    publish(schema, "InlineAgent", "Which sort of agent this is: `llm`.", "eval-v1")
}

/// The published eval schema's exact bytes (`schema/eval.schema.json`).
pub fn eval_json_schema_text() -> String {
    pretty(&eval_json_schema())
}

/// What schemars generates, made what we publish: optional fields absent
/// (never null, so editors and the validator reject `"timeout": null` as
/// the AST types do), the tag of the agent union described (schemars
/// leaves an internally tagged enum's tag bare), and an `$id`.
fn publish(mut schema: Value, agent_union: &str, tag: &str, id: &str) -> Value {
    remove_null(&mut schema);
    if let Some(Value::Array(kinds)) = schema.pointer_mut(&format!("/$defs/{agent_union}/oneOf")) {
        for kind in kinds {
            if let Some(Value::Object(t)) = kind.pointer_mut("/properties/kind") {
                t.insert("description".into(), tag.into());
            }
        }
    }
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("$id".into(), format!("https://orchestr8.dev/schema/{id}.json").into());
    }
    schema
}

fn pretty(schema: &Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a value serializes");
    text.push('\n');
    text
}

/// Removes the `null` that schemars adds to every `Option` field.
fn remove_null(schema: &mut serde_json::Value) {
    use serde_json::Value;
    match schema {
        Value::Object(obj) => {
            if let Some(Value::Array(types)) = obj.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.pop().expect("one type");
                    obj.insert("type".into(), only);
                }
            }
            let single_branch = match obj.get_mut("anyOf") {
                Some(Value::Array(branches)) => {
                    branches.retain(|b| b.get("type").is_none_or(|t| t != "null"));
                    (branches.len() == 1).then(|| branches.pop().expect("one branch"))
                }
                _ => None,
            };
            if let Some(Value::Object(branch)) = single_branch {
                obj.remove("anyOf");
                for (k, v) in branch {
                    obj.entry(k).or_insert(v);
                }
            }
            obj.values_mut().for_each(remove_null);
        }
        Value::Array(items) => items.iter_mut().for_each(remove_null),
        _ => {}
    }
}
