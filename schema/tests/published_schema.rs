//! The checked-in `workflow.schema.json` must be exactly what the AST types
//! generate: editors and the validator read the file, so a stale one lies.
//! Regenerate with `ORCHESTR8_BLESS=1 cargo test -p orchestr8-schema`.

use std::path::Path;

#[test]
fn published_schema_is_current() {
    for (file, generated) in [
        ("workflow.schema.json", orchestr8_schema::json_schema_text()),
        ("eval.schema.json", orchestr8_schema::eval_json_schema_text()),
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        if std::env::var_os("ORCHESTR8_BLESS").is_some() {
            std::fs::write(&path, &generated).expect("write the schema");
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "schema/{file} is stale: run `ORCHESTR8_BLESS=1 cargo test -p orchestr8-schema` and commit it"
        );
    }
}

/// Editors show these descriptions as you type: none may be missing.
#[test]
fn every_property_has_a_description() {
    fn walk(node: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        match node {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        if prop.get("description").is_none() {
                            missing.push(format!("{path}/properties/{name}"));
                        }
                    }
                }
                for (k, v) in map {
                    walk(v, &format!("{path}/{k}"), missing);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{path}/{i}"), missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk(&orchestr8_schema::json_schema(), "workflow", &mut missing);
    walk(&orchestr8_schema::eval_json_schema(), "eval", &mut missing);
    assert!(missing.is_empty(), "properties without a description: {missing:?}");
}
