//! Agent schemas read from `#[agent]` declarations in source: the crate in
//! `tests/rust-agents/agents` is parsed, never built. Each workflow beside it
//! shows one way of getting it right or wrong.

use std::path::Path;

use orchestr8::agents::FromRustSource;
use orchestr8::diagnostics::{render_human, RenderOptions};
use orchestr8::validate::validate;

fn report(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let validation = validate(&bytes, &FromRustSource::new(path.parent().unwrap()));
    let name = format!("rust-agents/{}", path.file_name().unwrap().to_string_lossy());
    let rendered = render_human(&name, &validation.text, &validation.diagnostics, RenderOptions::default());
    let verdict = if validation.has_errors() { "invalid" } else { "valid" };
    format!("{verdict}\n{rendered}")
}

#[test]
fn declarations_in_source() {
    insta::glob!("rust-agents/*.json", |path| {
        insta::assert_snapshot!(report(path));
    });
}

#[test]
fn the_valid_workflow_is_checked_against_source_schemas() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rust-agents");
    let text = std::fs::read_to_string(dir.join("valid.json")).unwrap();
    // The same workflow with a reference to a field the declaration lacks must fail:
    // proof that the declared schemas, not a fallback, were used.
    let broken = text.replace("${steps.get.output.author.name}", "${steps.get.output.author.nmae}");
    assert_ne!(broken, text);
    let validation = validate(broken.as_bytes(), &FromRustSource::new(&dir));
    let messages: Vec<&str> = validation.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages, ["`${steps.get.output.author.nmae}`: `steps.get.output.author` has no field `nmae`"]);
}
