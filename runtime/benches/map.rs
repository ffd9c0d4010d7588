//! Overhead per item of a `map`: 10,000 no-op items at concurrency 64
//! through the executor (memory journal), beside the same agent calls in
//! hand-written tokio code in the same run: a `JoinSet` whose tasks take a
//! semaphore permit each, and the same bound kept in one task.
//!
//! Throughput is reported per item (`elements`), so criterion's time per
//! element is the time per item.

mod common;

use std::sync::{Arc, OnceLock};

use common::Noop;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use futures_util::stream::{FuturesUnordered, StreamExt};
use orchestr8_runtime::agent::{Agent, AgentContext, ExecutionMeta};
use orchestr8_runtime::codegen::{map_all, store, MapStep};
use orchestr8_runtime::{AgentStep, BreakerRegistry, CancellationToken, ExecutionOptions, MemoryStore, Node, Runtime};
use orchestr8_runtime::{Workflow, WorkflowInfo};
use serde_json::Value;

const ITEMS: usize = 10_000;
const CONCURRENCY: usize = 64;

struct Outer {
    items: Vec<u32>,
    out: OnceLock<Vec<()>>,
}

struct Item {
    done: OnceLock<()>,
}

fn workflow(registry: &BreakerRegistry) -> Workflow<Outer, ()> {
    let body =
        AgentStep::new("work", Arc::new(Noop), |_: &Item| Ok(()), |s: &Item, out| store(&s.done, "work", out)).node();
    let map = MapStep::new(
        "each",
        body,
        |s: &Outer| Ok(s.items.clone()),
        |_up, _index, _item| Item { done: OnceLock::new() },
        |i: &Item| i.done.get().copied(),
        |s: &Outer, outs| store(&s.out, "each", map_all(outs)?),
    )
    .concurrency(CONCURRENCY);
    Workflow::with_registry(
        WorkflowInfo::new("bench", "1.0.0", "h"),
        Node::sequence([map.node()]),
        |_| Ok(()),
        registry,
    )
}

/// The floor with tasks: one spawned task per call, `CONCURRENCY` permits.
async fn join_set(meta: &Arc<ExecutionMeta>, token: &CancellationToken) {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..ITEMS {
        let (meta, token, permits) = (meta.clone(), token.clone(), permits.clone());
        set.spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let config = Value::Null;
            let ctx = AgentContext::new(&token, &meta, "work", i as u32, &config);
            Noop.run(&ctx, ()).await
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().unwrap();
    }
}

/// The floor in one task: at most `CONCURRENCY` calls in flight, the rest
/// started as they finish (what a map does, without journal or state).
async fn bounded(meta: &ExecutionMeta, token: &CancellationToken, config: &Value) {
    let mut pending = 0..ITEMS;
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < CONCURRENCY {
            let Some(i) = pending.next() else { break };
            running.push(async move {
                let ctx = AgentContext::new(token, meta, "work", i as u32, config);
                Noop.run(&ctx, ()).await
            });
        }
        match running.next().await {
            Some(r) => r.unwrap(),
            None => break,
        }
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let registry = BreakerRegistry::new(16);
    let meta = common::meta();
    let (token, config) = (CancellationToken::new(), Value::Null);
    let mem = Runtime::new(MemoryStore::with_capacity(2));
    let wf = workflow(&registry);
    let mut group = c.benchmark_group("map_10000_items_at_64");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("tokio_joinset_semaphore", ITEMS), |b| {
        b.iter(|| rt.block_on(join_set(&meta, &token)))
    });
    group.bench_function(BenchmarkId::new("tokio_bounded_one_task", ITEMS), |b| {
        b.iter(|| rt.block_on(bounded(&meta, &token, &config)))
    });
    group.bench_function(BenchmarkId::new("orchestr8_memory", ITEMS), |b| {
        b.iter(|| {
            let state = Arc::new(Outer { items: vec![0; ITEMS], out: OnceLock::new() });
            rt.block_on(mem.run_shared(&wf, &state, ExecutionOptions::default())).unwrap().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
