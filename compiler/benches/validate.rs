//! `orchestr8 validate` on generated workflows of 100, 1,000 and 5,000 steps:
//! parsing with spans, the JSON Schema, the graph rules and the type checks.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use orchestr8::agents::DeclaredInWorkflow;
use orchestr8::validate::validate;
use serde_json::{json, Value};

/// A chain of agent steps, every tenth position a parallel block of three,
/// each step reading the previous step's output and the workflow's input.
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
    let mut list = Vec::new();
    let mut previous = None::<String>;
    let mut n = 0;
    let step = |id: &str, previous: &Option<String>| {
        let text = match previous {
            Some(p) => format!("${{steps.{p}.output.text}} / ${{input.topic}}"),
            None => "${input.topic}".to_owned(),
        };
        json!({ "id": id, "agent": "work", "input": { "text": text, "count": 3 } })
    };
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
    let doc = json!({
        "schemaVersion": "1.0.0",
        "metadata": { "id": "bench", "version": "1.0.0" },
        "input": { "type": "object", "properties": { "topic": { "type": "string" } }, "required": ["topic"] },
        "agents": { "work": { "kind": "rust", "crate": "a", "path": "a", "function": "work", "input": text_schema, "output": out_schema } },
        "policies": { "default": { "timeout": "30s", "retry": { "maxAttempts": 3 } } },
        "steps": list,
        "output": { "last": format!("${{steps.{}.output.text}}", previous.unwrap()) }
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
