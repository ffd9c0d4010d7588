//! What the compiler's fuzz targets check on one input. Shared, by path,
//! with `compiler/tests/fuzz_regressions.rs`, which replays the corpus and
//! every crash on stable.

use std::path::PathBuf;

use orchestr8::agents::{DeclaredInWorkflow, FromRustSource};
use orchestr8::codegen::{generate, CrateOptions};
use orchestr8::diagnostics::{render_human, render_json, RenderOptions};
use orchestr8::target::Target;
use orchestr8::validate::{validate, validate_for};

/// The parser and validator on arbitrary bytes: no panic, every diagnostic
/// located inside the document and rendered in both forms, and "valid"
/// exactly when there is a workflow.
pub fn validate_bytes(data: &[u8]) {
    let validation = validate(data, &DeclaredInWorkflow);
    for d in &validation.diagnostics {
        assert!(d.span.start <= d.span.end && d.span.end <= validation.text.len(), "span out of the text: {d:?}");
    }
    render_human("f.json", &validation.text, &validation.diagnostics, RenderOptions { color: true, max_errors: 0 });
    let json = render_json("f.json", &validation.text, &validation.diagnostics);
    assert_eq!(json.lines().count(), validation.diagnostics.len());
    // Declared schemas alone never make a checked workflow (that needs the
    // agents' Rust declarations): `compile_bytes` checks that side.
    assert_eq!(validation.has_errors(), validation.workflow.is_none(), "{:?}", validation.diagnostics);
    assert!(validation.checked.is_none());
}

thread_local! {
    /// The codegen fixtures' agent crate, whose `#[agent]` declarations the
    /// compile seeds call (parsed once per thread: syn's trees are not `Send`).
    static AGENTS: FromRustSource =
        FromRustSource::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../compiler/tests/codegen"));
}

/// `compile` without writing: validation against real `#[agent]`
/// declarations, then generation. Whatever validates generates a crate whose
/// Rust parses (an error from `generate` is generated code that does not),
/// the same every time. Returns whether the input was valid and checked.
pub fn compile_bytes(data: &[u8]) -> bool {
    let validation = AGENTS.with(|agents| validate(data, agents));
    assert_eq!(validation.has_errors(), validation.checked.is_none(), "{:?}", validation.diagnostics);
    let Some(checked) = validation.checked else { return false };
    let options = CrateOptions {
        own: orchestr8::own_crates::OwnCrates::checkout(PathBuf::from("/")),
        out_dir: PathBuf::from("/out"),
        workflow_dir: PathBuf::from("/"),
        target: Target::Embedded,
    };
    let files = generate(&checked, &options).unwrap_or_else(|e| panic!("generated code does not parse: {e}"));
    assert!(files.keys().any(|p| p.ends_with("workflow.rs")));
    assert_eq!(generate(&checked, &options).unwrap(), files, "generation is not deterministic");
    // What the Restate target accepts, it generates code for that parses.
    let restate = AGENTS.with(|agents| validate_for(data, agents, Target::Restate));
    if let Some(checked) = restate.checked {
        let options = CrateOptions { target: Target::Restate, ..options };
        generate(&checked, &options).unwrap_or_else(|e| panic!("generated Restate code does not parse: {e}"));
    }
    true
}
