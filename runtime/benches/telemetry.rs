//! Executor overhead per no-op step with telemetry off and on, in the same
//! run: a sequence of 100 no-op steps (criterion reports time per step)
//!
//! - `off`: no subscriber, as before telemetry existed;
//! - `text_logs`: the subscriber a generated program installs when no
//!   `OTEL_*` variable is set (text log lines at `warn`: spans disabled),
//!   installed globally as the program does;
//! - `exported`: spans through the OpenTelemetry layer to the SDK's batch
//!   processor and an in-memory exporter, and the metrics instruments
//!   recording into an in-memory metric exporter: the full cost of export
//!   minus the network.
//!
//! Run: `cargo bench -p orchestr8-runtime --features otel --bench telemetry`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Noop;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use orchestr8_runtime::telemetry::otel;
use orchestr8_runtime::{
    AgentStep, BreakerRegistry, ExecutionOptions, MemoryStore, Node, Runtime, Workflow, WorkflowInfo,
};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

const STEPS: usize = 100;

fn bench(c: &mut Criterion) {
    let agent = Arc::new(Noop);
    let steps: Vec<Node<()>> = (0..STEPS)
        .map(|i| AgentStep::new(format!("s{i}"), agent.clone(), |_: &()| Ok(()), |_: &(), _| Ok(())).node())
        .collect();
    let wf = Workflow::with_registry(
        WorkflowInfo::new("bench", "1.0.0", "h"),
        Node::sequence(steps),
        |_: &()| Ok(()),
        &BreakerRegistry::new(16),
    );
    let runtime = Runtime::new(MemoryStore::with_capacity(16));
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    let run = || rt.block_on(runtime.run(&wf, &(), ExecutionOptions::default())).unwrap().unwrap();

    let mut group = c.benchmark_group("telemetry");
    group.throughput(Throughput::Elements(STEPS as u64));
    group.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));

    group.bench_function("off", |b| b.iter(run));

    let text = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
    );
    // Global, as a program installs it (a scoped subscriber would make
    // every callsite ask it each time instead of caching `never`).
    tracing::subscriber::set_global_default(text).unwrap();
    group.bench_function("text_logs", |b| b.iter(run));

    let spans = InMemorySpanExporter::default();
    let tracer = SdkTracerProvider::builder().with_batch_exporter(spans.clone()).build();
    let metrics = InMemoryMetricExporter::default();
    let meter = SdkMeterProvider::builder().with_reader(PeriodicReader::builder(metrics.clone()).build()).build();
    // From here on the instruments record (they are process-wide: last row).
    otel::set_instruments(&meter.meter("orchestr8"));
    let exported = tracing_subscriber::registry().with(otel::layer(&tracer));
    tracing::subscriber::with_default(exported, || {
        group.bench_function("exported", |b| {
            b.iter(|| {
                run();
                // The exporter keeps what it gets: bounded memory across iterations.
                spans.reset();
            })
        })
    });
    group.finish();
    tracer.shutdown().unwrap();
    meter.shutdown().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
