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
    let human = render_human(&name, &validation.text, &validation.diagnostics, RenderOptions::default());
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

#[test]
fn steps_that_give_one_agent_different_breakers_are_warned_about_at_the_later_step() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid-fixture.json"))
        .unwrap()
        .replacen(
            "\"text\": \"${steps.first.output.text}\"\n          }",
            "\"text\": \"${steps.first.output.text}\"\n          },\n          \"policy\": { \"circuitBreaker\": { \"failureThreshold\": 1, \"resetTimeout\": \"5s\" } }",
            1,
        )
        .replacen("\"timeout\": \"30s\"\n    }", "\"timeout\": \"30s\"\n    },\n    \"same\": { \"retry\": { \"maxAttempts\": 1 } }", 1)
        .replacen("\"id\": \"last\",\n      \"agent\": \"echo\",", "\"id\": \"last\",\n      \"agent\": \"echo\",\n      \"policy\": \"same\",", 1);
    let validation = validate(text.as_bytes(), &DeclaredInWorkflow);
    let found: Vec<(&str, &str)> =
        validation.diagnostics.iter().map(|d| (d.code.as_str(), d.pointer.as_str())).collect();
    // `last` agrees with `first` (retry settings are the step's own); `right` does not.
    assert_eq!(found, [("W0322", "/steps/1/parallel/1/policy")]);
    assert!(!validation.has_errors());
    let human = render_human("workflow.json", &validation.text, &validation.diagnostics, RenderOptions::default());
    insta::assert_snapshot!(human);

    // The first step sets a breaker and later ones leave the defaults: located at their agent.
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid-fixture.json"))
        .unwrap()
        .replacen("\"id\": \"first\",\n      \"agent\": \"echo\",", "\"id\": \"first\",\n      \"agent\": \"echo\",\n      \"policy\": { \"circuitBreaker\": { \"failureThreshold\": 1, \"resetTimeout\": \"5s\" } },", 1);
    let validation = validate(text.as_bytes(), &DeclaredInWorkflow);
    let found: Vec<(&str, &str)> =
        validation.diagnostics.iter().map(|d| (d.code.as_str(), d.pointer.as_str())).collect();
    assert_eq!(found, [("W0322", "/steps/1/parallel/1/agent"), ("W0322", "/steps/2/agent")]);
}

/// What a provider cannot enforce of an LLM agent's output schema is a
/// warning, and the workflow stays valid.
#[test]
fn llm_provider_limits_are_warnings() {
    insta::glob!("llm-warnings/*.json", |path| {
        let bytes = std::fs::read(path).unwrap();
        let name = format!("llm-warnings/{}", path.file_name().unwrap().to_string_lossy());
        let validation = validate(&bytes, &DeclaredInWorkflow);
        assert!(!validation.has_errors() && !validation.diagnostics.is_empty(), "{name}: {:?}", validation.diagnostics);
        assert!(validation.checked.is_some(), "{name}: a valid workflow is lowered");
        insta::assert_snapshot!(render_human(
            &name,
            &validation.text,
            &validation.diagnostics,
            RenderOptions::default()
        ));
    });
}

/// Review finding: agent ids that give one Rust name (`tri_age`, `tri__age`)
/// got one function for both, and an agent no step calls was still built
/// and checked for its key when the program starts.
#[test]
fn llm_agents_get_distinct_functions_and_unused_ones_none() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/llm-warnings/llm-unused-agent-and-similar-ids.json");
    let checked = validate(&std::fs::read(path).unwrap(), &DeclaredInWorkflow).checked.unwrap();
    let idents: Vec<String> = checked.llm_agents.iter().map(|a| a.ident.to_string()).collect();
    let mut sorted = idents.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!((idents.len(), sorted), (2, vec!["agent_tri_age".to_owned(), "agent_tri_age2".to_owned()]));
    assert!(checked.llm_agents.iter().all(|a| a.id != "unused"));
}

/// `{"type": "object"}` is the schema of an object: a wait whose signal
/// carries no fields of interest (a trigger) writes it so. Its payload is
/// a map, which later steps may read.
#[test]
fn a_wait_payload_may_be_any_object() {
    let document = serde_json::json!({
        "schemaVersion": "1.0.0",
        "metadata": {"id": "trigger", "version": "1.0.0"},
        "input": {"type": "object", "properties": {}},
        "agents": {},
        "steps": [
            {"id": "go", "wait": {"signal": "go", "schema": {"type": "object"}}},
            {"id": "counts", "wait": {"signal": "counts", "schema": {
                "type": "object", "additionalProperties": {"type": "integer"}}}}
        ],
        "output": {"go": "${steps.go.output}", "counts": "${steps.counts.output}"}
    });
    let bytes = serde_json::to_vec(&document).unwrap();
    let validation = validate(&bytes, &DeclaredInWorkflow);
    assert_eq!(validation.diagnostics, vec![]);
    assert!(validation.checked.is_some(), "lowered to a crate");
}

/// A map that tolerates no failure has every item's output once it has
/// succeeded, its body's result step continuing on error or not (such an
/// item fails the map): a later map reads the items as required values.
#[test]
fn a_map_without_tolerated_failures_has_every_item_even_when_its_result_step_continues_on_error() {
    let echo = serde_json::json!({
        "kind": "rust", "crate": "fixture_agents", "path": "agents", "function": "echo",
        "input": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "output": {"type": "object", "properties": {"text": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["text", "tags"]}
    });
    let document = serde_json::json!({
        "schemaVersion": "1.0.0",
        "metadata": {"id": "continued", "version": "1.0.0"},
        "input": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
        "agents": {"echo": echo},
        "steps": [
            {"id": "first", "agent": "echo", "input": {"text": "${input.text}"}},
            {"id": "each", "map": {"over": "${steps.first.output.tags}", "as": "tag", "step":
                {"id": "shout", "agent": "echo", "input": {"text": "${tag}"}, "onError": "continue"}}},
            {"id": "again", "map": {"over": "${steps.each.output}", "as": "shouted", "step":
                {"id": "echoed", "agent": "echo", "input": {"text": "${shouted.text}"}}}}
        ],
        "output": {"texts": "${steps.again.output}"}
    });
    let bytes = serde_json::to_vec(&document).unwrap();
    let validation = validate(&bytes, &DeclaredInWorkflow);
    assert_eq!(validation.diagnostics, vec![]);
}
