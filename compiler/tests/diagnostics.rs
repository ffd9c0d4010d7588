//! Every document in `tests/invalid/` is invalid; its diagnostics, as a
//! person and as a tool sees them, are snapshots reviewed like code.

use std::path::Path;

use orchestr8::agents::{DeclaredInWorkflow, FromRustSource};
use orchestr8::diagnostics::{render_human, render_json, RenderOptions};
use orchestr8::validate::validate;

/// Fixtures whose agent crates exist (beside `tests/invalid`) are checked
/// against their `#[agent]` declarations, as `orchestr8 validate` does; the
/// others against the schemas they declare themselves.
fn report(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("fixture is readable");
    let name = format!("invalid/{}", path.file_name().unwrap().to_string_lossy());
    let dir = path.parent().unwrap();
    let document: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let crates: Vec<&str> = document["agents"]
        .as_object()
        .map(|agents| agents.values().filter_map(|a| a["path"].as_str()).collect())
        .unwrap_or_default();
    let validation = if !crates.is_empty() && crates.iter().all(|c| dir.join(c).join("Cargo.toml").exists()) {
        validate(&bytes, &FromRustSource::new(dir))
    } else {
        validate(&bytes, &DeclaredInWorkflow)
    };
    assert!(validation.has_errors(), "{name} should be invalid");
    assert!(validation.workflow.is_none(), "{name}: an invalid document yields no workflow");
    let human = render_human(&name, &validation.text, &validation.diagnostics, RenderOptions { color: false });
    let json = render_json(&name, &validation.text, &validation.diagnostics);
    format!("{human}---- json ----\n{json}")
}

#[test]
fn invalid_documents() {
    insta::glob!("invalid/*.json", |path| {
        insta::assert_snapshot!(report(path));
    });
}

#[test]
fn there_are_at_least_forty_invalid_documents() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let count = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
        .count();
    assert!(count >= 40, "only {count} invalid documents");
}

#[test]
fn the_valid_fixture_is_valid() {
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid-fixture.json")).unwrap();
    let validation = validate(&bytes, &DeclaredInWorkflow);
    assert_eq!(validation.diagnostics, vec![], "the base of every invalid fixture must itself be valid");
    assert!(validation.workflow.is_some());
}

#[test]
fn unchecked_input_keywords_are_warned_about_where_they_are() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid-fixture.json"))
        .unwrap()
        .replacen(
            "\"text\": {\n        \"type\": \"string\"\n      }",
            "\"text\": {\n        \"type\": \"string\",\n        \"pattern\": \"^a\"\n      }",
            1,
        );
    let validation = validate(text.as_bytes(), &DeclaredInWorkflow);
    let found: Vec<(&str, &str)> =
        validation.diagnostics.iter().map(|d| (d.code.as_str(), d.pointer.as_str())).collect();
    assert_eq!(found, [("W0419", "/input/properties/text/pattern")]);
    assert!(!validation.has_errors());
}
