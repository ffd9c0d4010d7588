//! `orchestr8 compile` without the disk: validation against agent sources
//! (`#[agent]` declarations read from a crate) and code generation, on
//! workflows of 100, 1,000 and 5,000 steps.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use orchestr8::agents::FromRustSource;
use orchestr8::codegen::{generate, CrateOptions};
use orchestr8::validate::validate;
use serde_json::{json, Value};

/// Chained `echo` steps, every tenth position a parallel block of three.
fn workflow(steps: usize) -> String {
    let mut list = Vec::new();
    let mut previous: Option<String> = None;
    let step = |id: &str, previous: &Option<String>| {
        let text = match previous {
            Some(p) => format!("${{steps.{p}.output.text}} and ${{input.name}}"),
            None => "${input.name}".to_owned(),
        };
        json!({ "id": id, "agent": "echo", "input": { "text": text, "times": 1 } })
    };
    let mut n = 0;
    while n < steps {
        if n % 10 == 9 && n + 3 <= steps {
            let children: Vec<Value> = (0..3).map(|i| step(&format!("s{}", n + i), &previous)).collect();
            list.push(json!({ "id": format!("block{n}"), "parallel": children }));
            previous = Some(format!("s{}", n + 2));
            n += 3;
        } else {
            let id = format!("s{n}");
            list.push(step(&id, &previous));
            previous = Some(id);
            n += 1;
        }
    }
    serde_json::to_string_pretty(&json!({
        "schemaVersion": "1.0.0",
        "metadata": { "id": "bench", "version": "1.0.0" },
        "input": { "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] },
        "agents": { "echo": { "kind": "rust", "crate": "fixture_codegen_agents", "path": "agents", "function": "echo" } },
        "steps": list,
        "output": { "last": format!("${{steps.{}.output.text}}", previous.unwrap()) }
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/codegen").canonicalize().unwrap();
    let runtime = Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime").canonicalize().unwrap();
    let options = CrateOptions { runtime_dir: runtime, out_dir: dir.join("out"), workflow_dir: dir.clone() };
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for steps in [100, 1_000, 5_000] {
        let text = workflow(steps);
        group.bench_with_input(BenchmarkId::from_parameter(steps), &text, |b, text| {
            b.iter(|| {
                let source = FromRustSource::new(&dir);
                let validation = validate(text.as_bytes(), &source);
                let workflow = validation.workflow.expect("the bench workflow is valid");
                generate(&workflow, &validation.text, &source.found(), &options).expect("generates")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
