//! The orchestr8 workflow format: the AST as serde types, its JSON Schema,
//! span-aware loading and the grammar of value expressions.
//!
//! The format contract is `docs/spec/workflow-v1.md`; `workflow.schema.json`
//! beside this crate is generated from [`ast::Workflow`] by [`json_schema`].

pub mod ast;
pub mod expr;
pub mod source;

pub use ast::Workflow;
use serde_json::Value;

/// The JSON Schema of a workflow document (draft 2020-12), as published in
/// `schema/workflow.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(ast::Workflow)).expect("a schema serializes");
    // Optional fields are absent, never null: say so, so editors and the
    // validator reject `"timeout": null` as the AST types do.
    remove_null(&mut schema);
    // schemars leaves the tag of an internally tagged enum undescribed.
    if let Some(Value::Array(kinds)) = schema.pointer_mut("/$defs/AgentDefinition/oneOf") {
        for kind in kinds {
            if let Some(Value::Object(tag)) = kind.pointer_mut("/properties/kind") {
                tag.insert("description".into(), "Which sort of agent this is.".into());
            }
        }
    }
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
