//! `orchestr8 compile` without the disk: validation against agent sources
//! (`#[agent]` declarations read from a crate) and code generation, on
//! workflows of 100, 1,000 and 5,000 steps.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use orchestr8::agents::FromRustSource;
use orchestr8::codegen::{generate, CrateOptions};
use orchestr8::own_crates::OwnCrates;
use orchestr8::target::Target;
use orchestr8::validate::validate;
use serde_json::json;

mod shared;

/// The shared chain of steps, calling the fixture crate's `echo` agent.
fn workflow(steps: usize) -> String {
    let (list, last) = shared::chained_steps(steps, "echo", "name");
    serde_json::to_string_pretty(&json!({
        "schemaVersion": "1.0.0",
        "metadata": { "id": "bench", "version": "1.0.0" },
        "input": { "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] },
        "agents": { "echo": { "kind": "rust", "crate": "fixture_codegen_agents", "path": "agents", "function": "echo" } },
        "steps": list,
        "output": { "last": format!("${{steps.{last}.output.text}}") }
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/codegen").canonicalize().unwrap();
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap();
    let options = CrateOptions {
        own: OwnCrates::checkout(checkout),
        out_dir: dir.join("out"),
        workflow_dir: dir.clone(),
        target: Target::Embedded,
    };
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for steps in [100, 1_000, 5_000] {
        let text = workflow(steps);
        group.bench_with_input(BenchmarkId::from_parameter(steps), &text, |b, text| {
            b.iter(|| {
                let source = FromRustSource::new(&dir);
                let validation = validate(text.as_bytes(), &source);
                let workflow = validation.checked.expect("the bench workflow is valid");
                generate(&workflow, &options).expect("generates")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
