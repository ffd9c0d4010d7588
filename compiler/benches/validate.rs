//! `orchestr8 validate` on generated workflows of 100, 1,000 and 5,000 steps:
//! parsing with spans, the JSON Schema, the graph rules and the type checks.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use orchestr8::agents::DeclaredInWorkflow;
use orchestr8::validate::validate;
use serde_json::json;

mod shared;

/// The shared chain of steps, with agent schemas declared in the workflow.
fn workflow(steps: usize) -> String {
    let text_schema = json!({
        "type": "object",
        "properties": { "text": { "type": "string" }, "count": { "type": "integer" } },
        "required": ["text"]
    });
    let out_schema = json!({
        "type": "object",
        "properties": { "text": { "type": "string" }, "length": { "type": "integer" } },
        "required": ["text", "length"]
    });
    let (list, last) = shared::chained_steps(steps, "work", "topic");
    let doc = json!({
        "schemaVersion": "1.0.0",
        "metadata": { "id": "bench", "version": "1.0.0" },
        "input": { "type": "object", "properties": { "topic": { "type": "string" } }, "required": ["topic"] },
        "agents": { "work": { "kind": "rust", "crate": "a", "path": "a", "function": "work", "input": text_schema, "output": out_schema } },
        "policies": { "default": { "timeout": "30s", "retry": { "maxAttempts": 3 } } },
        "steps": list,
        "output": { "last": format!("${{steps.{last}.output.text}}") }
    });
    serde_json::to_string_pretty(&doc).unwrap()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    group.sample_size(20);
    for steps in [100, 1_000, 5_000] {
        let text = workflow(steps);
        let check = validate(text.as_bytes(), &DeclaredInWorkflow);
        assert!(!check.has_errors(), "{:?}", &check.diagnostics[..1]);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(steps), &text, |b, text| {
            b.iter(|| validate(text.as_bytes(), &DeclaredInWorkflow))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
