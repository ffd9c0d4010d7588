//! The Restate target against the embedded executor (issue 19), same run,
//! same machine: a 100-step sequence of no-op agents per execution (the
//! per-step cost is the time per execution over 100), then executions per
//! second with 16 concurrent clients.
//!
//! The Restate side is a real server (`scripts/restate-server start`: the
//! pinned 1.7.12, loopback, telemetry off) and this process serving the same
//! workflow as a Restate service, called through the ingress over HTTP as a
//! client would; the embedded side runs the workflow in process with a
//! memory journal, as `PROGRAM serve` does without the HTTP.
//!
//! Run: `scripts/restate-server with cargo bench -p orchestr8-runtime --features restate --bench restate`.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Noop;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use orchestr8_runtime::{AgentStep, ExecutionOptions, MemoryStore, Node, Runtime, Workflow, WorkflowInfo};
use restate_sdk::prelude::*;

const STEPS: usize = 100;
const CLIENTS: usize = 16;

fn workflow() -> Workflow<(), ()> {
    let agent = Arc::new(Noop);
    let steps: Vec<Node<()>> = (0..STEPS)
        .map(|i| AgentStep::new(format!("s{i}"), agent.clone(), |_: &()| Ok(()), |_: &(), _| Ok(())).node())
        .collect();
    Workflow::new(WorkflowInfo::new("bench", "1.0.0", "h"), Node::sequence(steps), |_: &()| Ok(()))
}

/// The workflow as a Restate service, as `orchestr8 compile --target restate` writes it.
struct Bench {
    service: orchestr8_runtime::restate::Service<(), ()>,
}

#[restate_sdk::service(name = "bench")]
impl Bench {
    #[handler]
    async fn run(&self, ctx: Context<'_>) -> HandlerResult<orchestr8_runtime::restate::Output<()>> {
        orchestr8_runtime::restate::run(&ctx, &self.service, (), |(), _| ()).await
    }
}

/// The server `scripts/restate-server start` started: stopped on drop.
struct Server {
    ingress: String,
    admin: String,
    pid: String,
}

impl Server {
    fn start() -> Option<Server> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/restate-server");
        let out = Command::new(script).arg("start").output().ok()?;
        if !out.status.success() {
            eprintln!("cannot start a Restate server: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        let vars = String::from_utf8_lossy(&out.stdout).into_owned();
        let var = |name: &str| {
            vars.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).map(str::to_owned).unwrap_or_default()
        };
        Some(Server {
            ingress: var("ORCHESTR8_RESTATE_INGRESS"),
            admin: var("ORCHESTR8_RESTATE_ADMIN"),
            pid: var("RESTATE_SERVER_PID"),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

fn bench(c: &mut Criterion) {
    let Some(server) = Server::start() else {
        eprintln!("skipped: no Restate server (run under `scripts/restate-server with`, or install npm)");
        return;
    };
    // The service, on its own runtime, as its own process would be.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let service = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        service.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            let service = orchestr8_runtime::restate::Service::new("bench", workflow());
            let endpoint = Endpoint::builder().bind(Bench { service }).build();
            HttpServer::new(endpoint).serve(listener).await;
        })
    });
    let port = rx.recv().unwrap();
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let http = reqwest::Client::new();
    client.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let registered = http
                .post(format!("{}/deployments", server.admin))
                .header("content-type", "application/json")
                .body(serde_json::json!({ "uri": format!("http://127.0.0.1:{port}"), "force": true }).to_string())
                .send()
                .await;
            match registered {
                Ok(r) if r.status().is_success() => break,
                other if Instant::now() > deadline => panic!("cannot register the service: {other:?}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let url = format!("{}/bench/run", server.ingress);
    let invoke = || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let r = http.post(url).send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
        }
    };
    let embedded = Runtime::new(MemoryStore::with_capacity(1024));
    let flow = Arc::new(workflow());
    let run_embedded = || {
        let (embedded, flow) = (&embedded, flow.clone());
        async move { embedded.run(&flow, &(), ExecutionOptions::default()).await.unwrap().unwrap() }
    };

    let mut group = c.benchmark_group("restate_100_steps");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(STEPS as u64));
    group.bench_function("embedded (memory journal)", |b| b.iter(|| client.block_on(run_embedded())));
    group.bench_function("restate (server journal, over its ingress)", |b| b.iter(|| client.block_on(invoke())));
    group.finish();

    let mut group = c.benchmark_group("restate_16_clients");
    group.sample_size(10).measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(CLIENTS as u64));
    group.bench_function("embedded (memory journal)", |b| {
        b.iter(|| client.block_on(futures_util::future::join_all((0..CLIENTS).map(|_| run_embedded()))))
    });
    group.bench_function("restate (server journal, over its ingress)", |b| {
        b.iter(|| client.block_on(futures_util::future::join_all((0..CLIENTS).map(|_| invoke()))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
