//! Load on `PROGRAM serve` (issue 7): executions per second and p50/p99
//! latency of `POST /workflows/execute?wait=true` for a no-op workflow, next
//! to a bare axum handler measured in the same run, both on loopback.
//!
//! A plain `main` (no criterion): each server runs inside this process on
//! 127.0.0.1:0; `CLIENTS` tasks each hold one keep-alive HTTP/1.1
//! connection (a small client over `tokio::net::TcpStream`) and send requests
//! back to back for `WARMUP` + `MEASURE`; only requests that start after the
//! warm-up and end before the deadline are counted. Rows:
//!
//! - `bare axum`: a handler that reads the JSON body and returns a small JSON;
//! - `orchestr8 serve (disk)`: the real server (`Program::run_with`
//!   `serve`), its journal log in a temp dir on the disk, as in production
//!   (every request's journal is counted in the log afterwards);
//! - `orchestr8 serve (tmpfs)`: the same with the journal dir on `/dev/shm`
//!   (when present), where an fsync costs next to nothing;
//! - `executor (...)`: the same workflow through `Runtime::start`, no HTTP,
//!   with a `MemoryStore`, the `LogStore` on disk (and its executions per
//!   fsync), and a `FileStore` (a file and an fsync per execution) on disk:
//!   where the time goes between the journal and the HTTP path.
//!
//! Then the cost of one write + `sync_data` of a new small file on each, and
//! whether issue 7's targets hold for the production row (at least half the
//! bare handler's requests/s, p99 at most 5 ms).
//!
//! Run: `cargo bench -p orchestr8-runtime --features server --bench server`.
//! `O8_BENCH_SECS` changes the measured seconds per row (default 3);
//! `O8_BENCH_ONLY=bare`, `=serve` or `=log` runs just the bare row, `serve`
//! on disk, or the executor on the log store (to profile one of them).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::routing::post;
use axum::Router;
use orchestr8_runtime::codegen::{
    slot, store, Agent, AgentContext, AgentError, AgentStep, BreakerRegistry, ExecutionIds, ExecutionOptions,
    FileStore, JournalStore, MemoryStore, Node, Program, Runtime, Workflow, WorkflowInfo,
};
use orchestr8_runtime::journal::{LogStore, LOG_DIR};
use orchestr8_runtime::policy::{Policy, RetryPolicy};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "common/serve.rs"]
mod serve;

const CLIENTS: usize = 100;
const WARMUP: Duration = Duration::from_millis(500);
const ZERO: Duration = Duration::ZERO;
const BODY: &str = r#"{"input":{}}"#;

// ---------------------------------------------------------------- workflow

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Done {
    ok: bool,
}

/// Returns at once.
struct Noop;

impl Agent for Noop {
    type Input = ();
    type Output = Done;
    fn id(&self) -> &str {
        "noop"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, _ctx: &AgentContext<'_>, _input: ()) -> Result<Done, AgentError> {
        Ok(Done { ok: true })
    }
}

struct State {
    step: OnceLock<Done>,
}

/// `noop` 1.0.0: one step `step` calling [`Noop`]; the output is its output.
fn workflow() -> Arc<Workflow<State, Done>> {
    let policy = Policy {
        timeout: Duration::from_secs(30),
        retry: RetryPolicy { jitter: false, max_attempts: 1, ..RetryPolicy::default() },
        ..Policy::default()
    };
    let step = AgentStep::new("step", Arc::new(Noop), |_: &State| Ok(()), |s: &State, out| store(&s.step, "step", out))
        .policy(policy)
        .node();
    let workflow = Workflow::with_registry(
        WorkflowInfo::new("noop", "1.0.0", "sha256:0"),
        Node::sequence(vec![step]),
        |s: &State| Ok(slot(&s.step, "step")?.clone()),
        &BreakerRegistry::new(16),
    );
    Arc::new(workflow)
}

fn program() -> Program<Input, State, Done> {
    Program::new(workflow(), |_: Input, _: &ExecutionIds| State { step: OnceLock::new() })
        .input_schema(serde_json::json!({"type": "object", "additionalProperties": false}))
        .output_schema(serde_json::json!({"type": "object"}))
}

// ---------------------------------------------------------------- servers

/// Runs `serve` on a thread of its own (`common/serve.rs`); its address and
/// a function that stops it (one interrupt, as Ctrl-C) and returns its exit status.
fn start_orchestr8(dir: &Path) -> (SocketAddr, impl FnOnce() -> u8) {
    let served = serve::start(program(), dir, &[]);
    let addr = served.addr;
    let stop = move || {
        let stopped = served.stop();
        if stopped.status != 0 {
            eprintln!("the server wrote {} line(s) after its first: {:#?}", stopped.lines, stopped.kept);
        }
        stopped.status
    };
    (addr, stop)
}

/// A bare axum server on a multi-thread runtime of its own (as the
/// orchestr8 server has): `POST /execute` reads the body, answers small JSON.
fn start_bare() -> (SocketAddr, impl FnOnce()) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new().route(
                "/execute",
                post(|body: Bytes| async move {
                    let _ = body;
                    ([(CONTENT_TYPE, "application/json")], r#"{"status":"completed","output":{"ok":true}}"#)
                }),
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
        rt.shutdown_background();
    });
    let addr = addr_rx.recv().unwrap();
    (addr, move || {
        let _ = stop_tx.send(());
        thread.join().unwrap();
    })
}

// ---------------------------------------------------------------- client

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr, path: &str) -> Conn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        )
        .into_bytes();
        Conn { stream, request, buf: Vec::with_capacity(4096) }
    }

    /// Sends the request, reads the whole response; its status.
    async fn call(&mut self) -> u16 {
        self.stream.write_all(&self.request).await.expect("write");
        self.buf.clear();
        let (head, len) = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break (end + 4, content_length(&self.buf[..end]));
            }
            self.read_more().await;
        };
        while self.buf.len() < head + len {
            self.read_more().await;
        }
        assert_eq!(self.buf.len(), head + len, "one response at a time");
        std::str::from_utf8(&self.buf[9..12]).ok().and_then(|s| s.parse().ok()).expect("a status line")
    }

    async fn read_more(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> usize {
    let head = std::str::from_utf8(head).expect("ASCII headers");
    head.split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
        })
        .expect("a Content-Length (no chunked responses here)")
}

struct Row {
    requests: usize,
    errors: usize,
    total: usize,
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// `CLIENTS` connections, each a loop until the deadline.
fn load(addr: SocketAddr, path: &'static str, measure: Duration) -> Row {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let mut conns = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            conns.push(Conn::open(addr, path).await);
        }
        let start = Instant::now();
        let (from, to) = (start + WARMUP, start + WARMUP + measure);
        let tasks: Vec<_> = conns.into_iter().map(|conn| tokio::spawn(client_loop(conn, from, to))).collect();
        collect(tasks, measure).await
    })
}

/// One call of a load loop: a request, or an execution; true if it succeeded.
trait Call {
    async fn succeeds(&mut self) -> bool;
}

impl Call for Conn {
    async fn succeeds(&mut self) -> bool {
        self.call().await == 200
    }
}

/// Executions of the no-op workflow through `Runtime::start`, no HTTP.
struct Executions {
    runtime: Arc<Runtime>,
    wf: Arc<Workflow<State, Done>>,
}

impl Call for Executions {
    async fn succeeds(&mut self) -> bool {
        let opts = ExecutionOptions { input: Some(serde_json::json!({})), ..ExecutionOptions::default() };
        let handle = self.runtime.start(self.wf.clone(), State { step: OnceLock::new() }, opts).expect("a journal");
        handle.await.is_ok()
    }
}

/// One client: calls back to back until `to`, counting every call and the
/// failed ones; latencies of the calls that start after `from` and end by `to`.
async fn client_loop(mut client: impl Call, from: Instant, to: Instant) -> (Vec<Duration>, usize, usize) {
    let (mut lat, mut errors, mut total) = (Vec::with_capacity(8192), 0usize, 0usize);
    loop {
        let t0 = Instant::now();
        if t0 >= to {
            break;
        }
        let ok = client.succeeds().await;
        let t1 = Instant::now();
        total += 1;
        if !ok {
            errors += 1;
        } else if t0 >= from && t1 <= to {
            lat.push(t1 - t0);
        }
    }
    (lat, errors, total)
}

type Task = tokio::task::JoinHandle<(Vec<Duration>, usize, usize)>;

/// Merges the clients' latencies into a row.
async fn collect(tasks: Vec<Task>, measure: Duration) -> Row {
    let mut all = Vec::new();
    let (mut errors, mut total) = (0, 0);
    for t in tasks {
        let (lat, e, n) = t.await.unwrap();
        all.extend(lat);
        errors += e;
        total += n;
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1];
    Row {
        requests: all.len(),
        errors,
        total,
        per_sec: all.len() as f64 / measure.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: *all.last().unwrap(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn print_row(label: &str, r: &Row, bare: Option<&Row>) {
    let ratio = bare.map(|b| format!("{:.2}", r.per_sec / b.per_sec)).unwrap_or_else(|| "1.00".into());
    println!(
        "{label:<32} {:>10.0}/s {:>10} {:>10} {:>10} {:>7} {:>8}",
        r.per_sec,
        ms(r.p50),
        ms(r.p99),
        ms(r.max),
        ratio,
        r.requests
    );
    if r.errors > 0 {
        println!("  !! {} of {} responses were not 200", r.errors, r.total);
    }
}

/// Mean time of a small write + `sync_data` on a new file in `dir`, as a
/// journal's end costs (`n` files).
fn fsync_cost(dir: &Path, n: usize) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        let mut f = std::fs::File::create(dir.join(format!("probe-{i}.jsonl"))).unwrap();
        f.write_all(br#"{"seq":1,"type":"execution.completed"}"#).unwrap();
        f.write_all(b"\n").unwrap();
        f.sync_data().unwrap();
    }
    start.elapsed() / n as u32
}

/// Executions in a server's log (by their `execution.started` lines) and its segments.
fn journaled(dir: &Path) -> (usize, usize) {
    let segments: Vec<_> = std::fs::read_dir(dir.join(LOG_DIR))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    let started = segments
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).unwrap();
            count_of(&bytes, br#""event":"execution.started""#)
        })
        .sum();
    (started, segments.len())
}

fn count_of(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fn orchestr8_row(label: &str, dir: &Path, measure: Duration, bare: &Row) -> Row {
    let (addr, stop) = start_orchestr8(dir);
    let row = load(addr, "/workflows/execute?wait=true", measure);
    assert_eq!(stop(), 0, "the server stops cleanly");
    print_row(label, &row, Some(bare));
    let (executions, segments) = journaled(dir);
    println!(
        "  {executions} executions journaled in {segments} log segment(s) in {} ({} requests sent in all, warm-up included)",
        dir.display(),
        row.total
    );
    assert_eq!(executions, row.total, "every request has its journal");
    row
}

/// The same workflow through `Runtime::start` with no HTTP: `CLIENTS` tasks
/// each starting and awaiting executions back to back on a multi-thread
/// runtime; executions per second and p50/p99 of start-to-output.
fn executor_row(label: &str, store: impl JournalStore, measure: Duration, bare: &Row) -> Row {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let row = rt.block_on(async move {
        let runtime = Arc::new(Runtime::new(store));
        let wf = workflow();
        let start = Instant::now();
        let (from, to) = (start + WARMUP, start + WARMUP + measure);
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|_| tokio::spawn(client_loop(Executions { runtime: runtime.clone(), wf: wf.clone() }, from, to)))
            .collect();
        collect(tasks, measure).await
    });
    rt.shutdown_background();
    print_row(label, &row, Some(bare));
    row
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let secs: f64 = std::env::var("O8_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let measure = Duration::from_secs_f64(secs);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "server load: {CLIENTS} keep-alive clients on loopback, {:.1} s warm-up, {secs:.1} s measured per row, {cpus} CPUs",
        WARMUP.as_secs_f64()
    );
    println!("{:<32} {:>12} {:>10} {:>10} {:>10} {:>7} {:>8}", "server", "req/s", "p50", "p99", "max", "x bare", "n");

    let only = std::env::var("O8_BENCH_ONLY").unwrap_or_default();
    // No bare row to compare with: ratios read against 1 req/s.
    let one = Row { requests: 0, errors: 0, total: 0, per_sec: 1.0, p50: ZERO, p99: ZERO, max: ZERO };
    if only == "serve" {
        orchestr8_row("orchestr8 serve (disk)", tempfile::tempdir().unwrap().path(), measure, &one);
        return;
    }
    if only == "log" {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::new(dir.path()).unwrap();
        let row = executor_row("executor (log store, disk)", log.clone(), measure, &one);
        println!("  {} executions per commit (fdatasync) on average", row.total as u64 / log.commits().max(1));
        return;
    }
    let (addr, stop) = start_bare();
    let bare = load(addr, "/execute", measure);
    stop();
    print_row("bare axum", &bare, None);
    if only == "bare" {
        return;
    }

    let disk = tempfile::tempdir().unwrap();
    let served = orchestr8_row("orchestr8 serve (disk)", disk.path(), measure, &bare);

    let shm = Path::new("/dev/shm");
    let tmpfs = shm.is_dir().then(|| tempfile::tempdir_in(shm).ok()).flatten();
    if let Some(tmpfs) = &tmpfs {
        orchestr8_row("orchestr8 serve (tmpfs)", tmpfs.path(), measure, &bare);
    }

    println!("no HTTP: the same workflow through Runtime::start, {CLIENTS} concurrent loops");
    let _ = executor_row("executor (memory store)", MemoryStore::new(), measure, &bare);
    let dir = tempfile::tempdir().unwrap();
    let log = LogStore::new(dir.path()).unwrap();
    let row = executor_row("executor (log store, disk)", log.clone(), measure, &bare);
    println!("  {} executions per commit (fdatasync) on average", row.total as u64 / log.commits().max(1));
    let dir = tempfile::tempdir().unwrap();
    let _ = executor_row("executor (file store, disk)", FileStore::new(dir.path()), measure, &bare);

    let probe = tempfile::tempdir().unwrap();
    println!("write + sync_data of a new small file: {} on disk", ms(fsync_cost(probe.path(), 200)));
    if let Some(tmpfs) = &tmpfs {
        let probe = tempfile::tempdir_in(tmpfs.path()).unwrap();
        println!("write + sync_data of a new small file: {} on tmpfs", ms(fsync_cost(probe.path(), 200)));
    }
    let half = served.per_sec >= bare.per_sec / 2.0;
    let p99 = served.p99 <= Duration::from_millis(5);
    println!(
        "targets (serve, disk): throughput >= half of bare: {} ({:.2}); p99 <= 5 ms: {} ({})",
        if half { "met" } else { "MISSED" },
        served.per_sec / bare.per_sec,
        if p99 { "met" } else { "MISSED" },
        ms(served.p99)
    );
}
