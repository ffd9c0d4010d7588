//! `orchestr8 validate` on generated workflows of 100, 1,000 and 5,000 steps:
//! parsing with spans, the JSON Schema, the graph rules and the type checks;
//! and reporting: 2,000 and 20,000 errors rendered for people, from a
//! minified document (one line), where a per-diagnostic scan of the line
//! would be quadratic.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use orchestr8::agents::DeclaredInWorkflow;
use orchestr8::diagnostics::{render_human, RenderOptions};
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

    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    for steps in [2_000, 20_000] {
        let list: Vec<_> =
            (0..steps).map(|i| json!({ "id": format!("s{i}"), "agent": "missing", "input": {} })).collect();
        let doc = json!({
            "schemaVersion": "1.0.0",
            "metadata": { "id": "bench", "version": "1.0.0" },
            "input": { "type": "object" },
            "agents": { "work": { "kind": "rust", "crate": "a", "path": "a", "function": "work", "input": {"type": "object"}, "output": {"type": "object"} } },
            "steps": list,
            "output": {}
        });
        let text = serde_json::to_string(&doc).unwrap();
        let validation = validate(text.as_bytes(), &DeclaredInWorkflow);
        assert!(validation.diagnostics.len() > steps);
        group.throughput(Throughput::Elements(validation.diagnostics.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(steps), &validation, |b, v| {
            b.iter(|| render_human("bench.json", &v.text, &v.diagnostics, RenderOptions::default()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
