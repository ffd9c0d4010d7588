//! Overhead per no-op step: sequences and parallel blocks of 1 to 10,000
//! steps through the executor (memory and file journals) against the same
//! agent calls in plain hand-written tokio code, in the same run.
//!
//! Throughput is reported per step (`elements`), so criterion's time per
//! element is the time per step.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Noop;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::stream::{FuturesUnordered, StreamExt};
use orchestr8_runtime::agent::{Agent, AgentContext, ExecutionMeta};
use orchestr8_runtime::{
    AgentStep, BreakerRegistry, CancellationToken, ExecutionOptions, FileStore, MemoryStore, Node, Runtime, Workflow,
    WorkflowInfo,
};
use serde_json::Value;

const SIZES: [usize; 5] = [1, 10, 100, 1_000, 10_000];

fn workflow(n: usize, parallel: bool, registry: &BreakerRegistry) -> Workflow<(), ()> {
    let agent = Arc::new(Noop);
    let steps: Vec<Node<()>> = (0..n)
        .map(|i| AgentStep::new(format!("s{i}"), agent.clone(), |_: &()| Ok(()), |_: &(), _| Ok(())).node())
        .collect();
    let root = if parallel { Node::parallel("block", true, steps) } else { Node::sequence(steps) };
    Workflow::with_registry(WorkflowInfo::new("bench", "1.0.0", "h"), root, |_: &()| Ok(()), registry)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

/// The hand-written floor: the same agent calls, awaited in order.
async fn plain_sequence(n: usize, meta: &ExecutionMeta, token: &CancellationToken, config: &Value) {
    for i in 0..n {
        let ctx = AgentContext::new(token, meta, "s", i as u32, config);
        Noop.run(&ctx, ()).await.unwrap();
    }
}

/// The hand-written floor for a parallel block: the calls joined in one task.
async fn plain_join(n: usize, meta: &ExecutionMeta, token: &CancellationToken, config: &Value) {
    let mut set: FuturesUnordered<_> = (0..n)
        .map(|i| async move {
            let ctx = AgentContext::new(token, meta, "s", i as u32, config);
            Noop.run(&ctx, ()).await
        })
        .collect();
    while let Some(r) = set.next().await {
        r.unwrap();
    }
}

/// A parallel block written with one spawned task per call.
async fn plain_spawn(n: usize, meta: &Arc<ExecutionMeta>, token: &CancellationToken) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (meta, token) = (meta.clone(), token.clone());
        set.spawn(async move {
            let config = Value::Null;
            let ctx = AgentContext::new(&token, &meta, "s", i as u32, &config);
            Noop.run(&ctx, ()).await
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let rt = rt();
    let registry = BreakerRegistry::new(16);
    let meta = common::meta();
    let token = CancellationToken::new();
    let config = Value::Null;
    let mem = Runtime::new(MemoryStore::with_capacity(2));
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let files = FileStore::new(dir.path());
    let file_rt = Runtime::new(files.clone());
    let strict_rt = Runtime::new(files.clone().write_per_event(true));

    // The floor for a file journal with one write(2) per step: the same bytes
    // per step as the executor writes, appended with one write(2) each, then
    // one fsync, with no runtime at all.
    {
        let id = orchestr8_runtime::executor::new_execution_id();
        let opts = ExecutionOptions { execution_id: Some(id.clone()), ..ExecutionOptions::default() };
        rt.block_on(file_rt.run(&workflow(1000, false, &registry), &(), opts)).unwrap().unwrap();
        let bytes = std::fs::read(files.path(&id)).unwrap();
        std::fs::remove_file(files.path(&id)).unwrap();
        let step = vec![b'x'; bytes.len() / 1000];
        let mut group = c.benchmark_group("io");
        group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
        for n in [1_000usize, 10_000] {
            group.throughput(Throughput::Elements(n as u64));
            for fsync in [false, true] {
                let name = if fsync { "write_per_step_then_fsync" } else { "write_per_step" };
                group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let path = dir.path().join(orchestr8_runtime::executor::new_execution_id());
                            let t = Instant::now();
                            let mut f = std::fs::OpenOptions::new().create_new(true).append(true).open(&path).unwrap();
                            for _ in 0..n {
                                f.write_all(&step).unwrap();
                            }
                            if fsync {
                                f.sync_data().unwrap();
                            }
                            total += t.elapsed();
                            std::fs::remove_file(&path).unwrap();
                        }
                        total
                    })
                });
            }
        }
        group.finish();
    }

    for parallel in [false, true] {
        let mut group = c.benchmark_group(if parallel { "parallel" } else { "sequence" });
        group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2)).sample_size(20);
        for n in SIZES {
            group.throughput(Throughput::Elements(n as u64));
            let wf = workflow(n, parallel, &registry);
            if parallel {
                group.bench_with_input(BenchmarkId::new("tokio_join", n), &n, |b, &n| {
                    b.iter(|| rt.block_on(plain_join(n, &meta, &token, &config)))
                });
                group.bench_with_input(BenchmarkId::new("tokio_spawn", n), &n, |b, &n| {
                    b.iter(|| rt.block_on(plain_spawn(n, &meta, &token)))
                });
            } else {
                group.bench_with_input(BenchmarkId::new("tokio", n), &n, |b, &n| {
                    b.iter(|| rt.block_on(plain_sequence(n, &meta, &token, &config)))
                });
            }
            group.bench_with_input(BenchmarkId::new("orchestr8_memory", n), &n, |b, _| {
                b.iter(|| rt.block_on(mem.run(&wf, &(), ExecutionOptions::default())).unwrap().unwrap())
            });
            let variants: &[(&str, &Runtime)] = if parallel {
                &[("orchestr8_file", &file_rt)]
            } else {
                &[("orchestr8_file", &file_rt), ("orchestr8_file_per_event", &strict_rt)]
            };
            // A file journal syncs each success before the next agent call
            // (issue 17's durability rule): about a millisecond per step on
            // this machine's disk, so 10,000 steps would take minutes a sample.
            let variants = if n <= 1_000 { variants } else { &[] };
            for (name, file_rt) in variants {
                group.bench_with_input(BenchmarkId::new(*name, n), &n, |b, _| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let id = orchestr8_runtime::executor::new_execution_id();
                            let opts =
                                ExecutionOptions { execution_id: Some(id.clone()), ..ExecutionOptions::default() };
                            let t = Instant::now();
                            rt.block_on(file_rt.run(&wf, &(), opts)).unwrap().unwrap();
                            total += t.elapsed();
                            // Untimed: keep the temp dir small.
                            std::fs::remove_file(files.path(&id)).unwrap();
                        }
                        total
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
