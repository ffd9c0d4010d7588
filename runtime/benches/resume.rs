//! Resuming an execution of 1,000 succeeded steps from its journal file
//! (issue 17; target ≤ 50 ms release): reading the journal and restoring the
//! typed state, and that plus running the rest (nothing left but the output,
//! `execution.resumed` and the terminal event, synced), next to a fresh run
//! of the same 1,000 steps on the same store in the same run.
//!
//! Run: `cargo bench -p orchestr8-runtime --bench resume`.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use orchestr8_runtime::agent::{Agent, AgentContext, AgentError};
use orchestr8_runtime::codegen::{slot, store};
use orchestr8_runtime::journal::read_file;
use orchestr8_runtime::{
    AgentStep, BreakerRegistry, ExecutionOptions, FileStore, JournalStore, Node, Resume, Runtime, Workflow,
    WorkflowInfo,
};
use serde_json::{json, Value};

const STEPS: usize = 1_000;

/// Answers a small object, as agents do: something to read back.
struct Answer;

impl Agent for Answer {
    type Input = usize;
    type Output = Value;
    fn id(&self) -> &str {
        "answer"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, _ctx: &AgentContext<'_>, i: usize) -> Result<Value, AgentError> {
        Ok(json!({"step": i, "label": "done", "score": 0.5}))
    }
}

struct State(Vec<OnceLock<Value>>);

fn state() -> State {
    State((0..STEPS).map(|_| OnceLock::new()).collect())
}

fn workflow() -> Workflow<State, usize> {
    let agent = Arc::new(Answer);
    let steps = (0..STEPS).map(|i| {
        AgentStep::new(
            format!("s{i}"),
            agent.clone(),
            move |_: &State| Ok(i),
            move |s: &State, out| store(&s.0[i], "s", out),
        )
        .node()
    });
    let output = |s: &State| (0..STEPS).try_fold(0, |n, i| slot(&s.0[i], "s").map(|_| n + 1));
    Workflow::with_registry(
        WorkflowInfo::new("bench", "1.0.0", "h"),
        Node::sequence(steps),
        output,
        &BreakerRegistry::new(4),
    )
}

fn opts(id: &str) -> ExecutionOptions {
    ExecutionOptions { execution_id: Some(id.into()), input: Some(json!({})), ..ExecutionOptions::default() }
}

/// A journal of 1,000 succeeded steps whose process ended before its terminal event.
fn unfinished_journal(rt: &tokio::runtime::Runtime, dir: &Path, wf: &Workflow<State, usize>) -> Vec<u8> {
    let runtime = Runtime::new(FileStore::new(dir));
    assert_eq!(rt.block_on(runtime.run(wf, &state(), opts("template"))).unwrap().unwrap(), STEPS);
    let bytes = std::fs::read(dir.join("template.jsonl")).unwrap();
    let last = bytes[..bytes.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    bytes[..last].to_vec()
}

fn resume(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wf = workflow();
    let journal = unfinished_journal(&rt, dir.path(), &wf);
    let store = FileStore::new(dir.path());
    let runtime = Runtime::new(store.clone());
    let fresh = || std::fs::write(store.path("e"), &journal).unwrap();

    let mut g = c.benchmark_group("resume_1000_steps");
    g.sample_size(20);
    g.bench_function("read_and_restore", |b| {
        b.iter_batched(
            fresh,
            |()| {
                let point = Resume::from_journal(&read_file(store.path("e")).unwrap()).unwrap();
                point.check_definition(wf.info(), &wf.step_ids(), false).unwrap();
                let s = state();
                let exec = runtime.resume(&wf, &s, &point, ExecutionOptions::default()).unwrap();
                (exec, s)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("resume_to_the_end", |b| {
        b.iter_batched(
            fresh,
            |()| {
                let point = Resume::from_journal(&store.read("e").unwrap()).unwrap();
                let s = state();
                let exec = runtime.resume(&wf, &s, &point, ExecutionOptions::default()).unwrap();
                assert_eq!(rt.block_on(exec.run(&wf, &s)).unwrap(), STEPS);
            },
            BatchSize::PerIteration,
        )
    });
    let mut n = 0;
    g.bench_function("fresh_run_beside", |b| {
        b.iter(|| {
            n += 1;
            let id = format!("fresh-{n}");
            assert_eq!(rt.block_on(runtime.run(&wf, &state(), opts(&id))).unwrap().unwrap(), STEPS);
            std::fs::remove_file(store.path(&id)).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, resume);
criterion_main!(benches);
