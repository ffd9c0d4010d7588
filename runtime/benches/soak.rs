//! Soak of `PROGRAM serve` (issue 16): a fixed number of executions through
//! the real server on loopback, with a mix of completions, failures (some
//! after retries) and cancels, status polls, journal pages, `Idempotency-Key`
//! retries and `/health` probes; then every execution's journal is read back
//! (through the server's pages, and from the journal directory with the
//! library's reader, `journal::read_execution` for a sample) and checked
//! whole (`seq` 1..n, `execution.started` first, the expected terminal event
//! last), early executions are read and retried with their keys again once
//! the server has forgotten them from memory, and the process's memory and
//! descriptors are checked against the bounds stated below.
//!
//! A plain `main` (no criterion). The server runs in this process
//! (`common/serve.rs`), its journal in a temp dir on the disk with the
//! default retention; [`CLIENTS`] keep-alive HTTP/1.1 connections (a small
//! client over `tokio::net::TcpStream`, on one thread) take executions from
//! one counter until all are done. Execution `i` is decided by `i` alone
//! (see [`Plan::of`]), so a failure names what it was doing.
//!
//! Run: `cargo bench -p orchestr8-runtime --features server,testing --bench soak`.
//! `O8_SOAK_EXECUTIONS` sets the number of executions (default 20,000);
//! `O8_SOAK_DEADLINE_SECS` the hard deadline (default 300), after which it
//! fails rather than hangs. It exits non-zero, saying why, if any check fails.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use orchestr8_runtime::codegen::{
    slot, store, Agent, AgentContext, AgentError, AgentStep, BreakerRegistry, ExecutionIds, Node, Program, Workflow,
    WorkflowInfo,
};
use orchestr8_runtime::journal::{parse, read_execution, EventKind, INDEX_CAPACITY, LOG_DIR};
use orchestr8_runtime::policy::{CircuitBreakerPolicy, Policy, RetryPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[path = "common/serve.rs"]
mod serve;

const DEFAULT_EXECUTIONS: usize = 20_000;
const CLIENTS: usize = 32;
const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);
/// One request (or one poll loop) longer than this is a failure, not a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The server keeps this many finished executions in memory at most
/// (`server::MAX_FINISHED`, crate-private).
const FINISHED_KEPT: u64 = 10_000;
/// Memory budget per finished execution kept. Measured: 1.7 KiB (RSS from
/// 25% to 50% of 20,000 executions, while the 10,000 kept fill up).
const FINISHED_BUDGET: u64 = 2 << 10;
/// Memory budget per id in the log's line index (at most
/// [`INDEX_CAPACITY`]). Measured: 0.49 KiB (RSS from 50% to 100% of
/// 20,000, once the finished executions kept are full); its parts: the id,
/// the ranges of its lines, a map entry and the eviction order.
const INDEX_BUDGET: u64 = 600;
/// Memory of the process besides those (binary, runtimes, buffers, the
/// clients' preallocated records). Measured: 14 MiB at 5% of 20,000.
const BASE_BUDGET: u64 = 20 << 20;
/// Allocator slack on top of a growth.
const GROWTH_SLACK: u64 = 3 << 20;

/// What the bounded caches may hold after `n` executions.
fn cache_budget(n: u64) -> u64 {
    n.min(FINISHED_KEPT) * FINISHED_BUDGET + n.min(INDEX_CAPACITY as u64) * INDEX_BUDGET
}

/// Peak RSS (VmHWM) of the whole process (server and clients) until the
/// server stopped at most this: the base and the caches' budgets. With the
/// default 20,000: 51.4 MiB; measured 36.8 MiB. It stops growing with `n`
/// past 100,000 executions (the index's capacity).
fn peak_rss_bound(n: u64) -> u64 {
    BASE_BUDGET + cache_budget(n)
}

/// RSS at the end of the executions at most this much above RSS at 25% of
/// them: what the bounded caches may take on between the two, and slack.
/// With the default 20,000: 21.6 MiB; measured 13.6 MiB. A leak of 1 KiB
/// per execution would add 15 MiB over those 15,000 executions and fail it.
fn rss_growth_bound(n: u64) -> u64 {
    cache_budget(n) - cache_budget(n / 4) + GROWTH_SLACK
}

/// Descriptors open after the server stopped at most this many more than
/// before it started (none are expected: every socket, segment and runtime
/// of the server and the clients is closed by then).
const FD_SLACK: usize = 0;
/// Descriptors open at the end of the executions at most this many more
/// than at 25% of them: the connections are the same [`CLIENTS`]; a
/// segment being read or a new segment opened may be between the two.
const FD_RUN_SLACK: usize = 4;

// ---------------------------------------------------------------- workflow

/// What an execution's `work` step does: the input decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    /// Succeeds at once.
    Complete,
    /// Fails twice (retryable), then succeeds: completed after 3 attempts.
    Flaky,
    /// Fails every attempt (retryable): failed after 3 attempts.
    Fail,
    /// Fails at once, not retryable.
    Fatal,
    /// Waits until the execution is cancelled.
    Hang,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Complete => "complete",
            Kind::Flaky => "flaky",
            Kind::Fail => "fail",
            Kind::Fatal => "fatal",
            Kind::Hang => "hang",
        }
    }

    fn expect(self) -> Expect {
        match self {
            Kind::Complete | Kind::Flaky => Expect::Completed,
            Kind::Fail | Kind::Fatal => Expect::Failed,
            Kind::Hang => Expect::Cancelled,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    kind: Kind,
    n: u64,
}

struct State {
    input: Input,
    prepare: OnceLock<Value>,
    work: OnceLock<Value>,
    finish: OnceLock<Value>,
}

/// Returns its input.
struct Echo(&'static str);

impl Agent for Echo {
    type Input = Value;
    type Output = Value;
    fn id(&self) -> &str {
        self.0
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, _ctx: &AgentContext<'_>, input: Value) -> Result<Value, AgentError> {
        Ok(input)
    }
}

/// Does what `kind` in its input says.
struct Work;

impl Agent for Work {
    type Input = Value;
    type Output = Value;
    fn id(&self) -> &str {
        "work"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, ctx: &AgentContext<'_>, input: Value) -> Result<Value, AgentError> {
        let done = || Ok(json!({"n": input["n"], "attempt": ctx.attempt()}));
        match input["kind"].as_str() {
            Some("complete") => done(),
            Some("flaky") if ctx.attempt() < 3 => Err(AgentError::retryable("flaky: fails its first two attempts")),
            Some("flaky") => done(),
            Some("fail") => Err(AgentError::retryable("fails every attempt")),
            Some("fatal") => Err(AgentError::fatal("fails at once")),
            Some("hang") => {
                ctx.cancellation_token().cancelled().await;
                Err(AgentError::cancelled())
            }
            other => Err(AgentError::fatal(format!("no such kind: {other:?}"))),
        }
    }
}

/// `soak` 1.0.0: `prepare` → `work` → `finish`; the output is `n` and what
/// `finish` returned. Retries 1 ms apart; no breaker opens (failures are
/// the point here, not something to stop).
fn program() -> Program<Input, State, Value> {
    let policy = Policy {
        timeout: Duration::from_secs(60),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            backoff_multiplier: 2.0,
            jitter: false,
        },
        circuit_breaker: CircuitBreakerPolicy { failure_threshold: u32::MAX, ..CircuitBreakerPolicy::default() },
        ..Policy::default()
    };
    let prepare = AgentStep::new(
        "prepare",
        Arc::new(Echo("prepare")),
        |s: &State| Ok(json!({"n": s.input.n})),
        |s: &State, out| store(&s.prepare, "prepare", out),
    )
    .policy(policy)
    .node();
    let work = AgentStep::new(
        "work",
        Arc::new(Work),
        |s: &State| Ok(json!({"kind": s.input.kind, "n": slot(&s.prepare, "prepare")?["n"]})),
        |s: &State, out| store(&s.work, "work", out),
    )
    .policy(policy)
    .node();
    let finish = AgentStep::new(
        "finish",
        Arc::new(Echo("finish")),
        |s: &State| Ok(json!({"work": slot(&s.work, "work")?})),
        |s: &State, out| store(&s.finish, "finish", out),
    )
    .policy(policy)
    .node();
    let workflow = Workflow::with_registry(
        WorkflowInfo::new("soak", "1.0.0", "sha256:0"),
        Node::sequence(vec![prepare, work, finish]),
        |s: &State| Ok(json!({"n": s.input.n, "finish": slot(&s.finish, "finish")?})),
        &BreakerRegistry::new(16),
    );
    Program::new(Arc::new(workflow), |input: Input, _: &ExecutionIds| State {
        input,
        prepare: OnceLock::new(),
        work: OnceLock::new(),
        finish: OnceLock::new(),
    })
    .input_schema(json!({
        "type": "object",
        "required": ["kind", "n"],
        "properties": {
            "kind": {"enum": ["complete", "flaky", "fail", "fatal", "hang"]},
            "n": {"type": "integer", "minimum": 0}
        },
        "additionalProperties": false
    }))
    .output_schema(json!({"type": "object"}))
}

// ---------------------------------------------------------------- the mix

/// How an execution should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Completed,
    Failed,
    Cancelled,
}

impl Expect {
    fn state(self) -> &'static str {
        match self {
            Expect::Completed => "completed",
            Expect::Failed => "failed",
            Expect::Cancelled => "cancelled",
        }
    }

    fn terminal_event(self) -> &'static str {
        match self {
            Expect::Completed => "execution.completed",
            Expect::Failed => "execution.failed",
            Expect::Cancelled => "execution.cancelled",
        }
    }
}

/// What the clients do for execution `i`.
struct Plan {
    kind: Kind,
    /// `?wait=true` (else 202 and polling); never for `hang`.
    wait: bool,
    /// Sent with an `Idempotency-Key`, then sent again with it.
    keyed: bool,
    /// And the key sent once more with another body (a 422).
    key_conflict: bool,
    /// Its journal read in pages while the soak runs (of this size).
    pages: Option<u64>,
    /// One `GET /executions/{id}` after a `?wait=true`.
    status_after_wait: bool,
    health: bool,
}

impl Plan {
    /// Out of 20: 11 complete, 2 flaky, 2 fail, 1 fatal, 4 hang (so 65%
    /// completed, 15% failed, 20% cancelled); half of the others wait; one in
    /// 16 keyed; one in 4 read in pages; one in 50 probes `/health`.
    fn of(i: usize) -> Plan {
        let kind = match i % 20 {
            0..=10 => Kind::Complete,
            11 | 12 => Kind::Flaky,
            13 | 14 => Kind::Fail,
            15 => Kind::Fatal,
            _ => Kind::Hang,
        };
        let wait = kind != Kind::Hang && (i / 20) % 2 == 0;
        let keyed = i % 16 == 3 || i % 16 == 12;
        Plan {
            kind,
            wait,
            keyed,
            key_conflict: keyed && (i / 16) % 8 == 0,
            pages: (i % 4 == 1).then_some(1 + (i as u64 / 4) % 5),
            status_after_wait: wait && i % 8 == 0,
            health: i % 50 == 7,
        }
    }
}

// ---------------------------------------------------------------- client

/// One keep-alive HTTP/1.1 connection; reopened after an error.
struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    request: Vec<u8>,
    buf: Vec<u8>,
}

struct Resp {
    status: u16,
    replayed: bool,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("a {} response that is not JSON ({e}): {}", self.status, self.text()))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(500)]).into_owned()
    }
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None, request: Vec::with_capacity(512), buf: Vec::with_capacity(16 * 1024) }
    }

    async fn send(&mut self, method: &str, path: &str, key: Option<&str>, body: Option<&str>) -> Result<Resp, String> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, key, body)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.stream = None;
                Err(format!("{method} {path}: {e}"))
            }
            Err(_) => {
                self.stream = None;
                Err(format!("{method} {path}: no response in {REQUEST_TIMEOUT:?}"))
            }
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> std::io::Result<Resp> {
        use std::io::Write as _;
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected");
        self.request.clear();
        write!(self.request, "{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr)?;
        if let Some(key) = key {
            write!(self.request, "Idempotency-Key: {key}\r\n")?;
        }
        let body = body.unwrap_or("");
        // Cancel is sent as JSON with no body, as a cross-site form cannot.
        write!(self.request, "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())?;
        stream.write_all(&self.request).await?;
        self.buf.clear();
        let (head, len) = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break (end + 4, header(&self.buf[..end], "content-length").and_then(|v| v.parse::<usize>().ok()));
            }
            read_more(stream, &mut self.buf).await?;
        };
        let len = len.ok_or_else(|| bad("a response without Content-Length"))?;
        while self.buf.len() < head + len {
            read_more(stream, &mut self.buf).await?;
        }
        if self.buf.len() != head + len {
            return Err(bad("bytes after the response"));
        }
        let status = std::str::from_utf8(self.buf.get(9..12).unwrap_or_default())
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status line"))?;
        let head_bytes = &self.buf[..head];
        let replayed = header(head_bytes, "idempotent-replayed").as_deref() == Some("true");
        if header(head_bytes, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            self.stream = None;
        }
        Ok(Resp { status, replayed, body: self.buf[head..].to_vec() })
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection"));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header(head: &[u8], name: &str) -> Option<String> {
    let head = std::str::from_utf8(head).ok()?;
    head.split("\r\n").skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

// ---------------------------------------------------------------- figures

/// The request kinds timed.
#[derive(Debug, Clone, Copy)]
enum Req {
    ExecuteWait,
    Execute,
    Retry,
    Status,
    Journal,
    Cancel,
    Health,
}

const REQS: [(Req, &str); 7] = [
    (Req::ExecuteWait, "POST execute?wait=true"),
    (Req::Execute, "POST execute (202)"),
    (Req::Retry, "POST execute, key again"),
    (Req::Status, "GET execution"),
    (Req::Journal, "GET journal page"),
    (Req::Cancel, "POST cancel"),
    (Req::Health, "GET health"),
];

/// Latencies in microseconds to 3 significant digits, in a fixed number of
/// buckets: the clients' memory does not grow with the requests they send
/// (the memory check is of this whole process).
struct Hist(Vec<AtomicU64>);

const EXACT: u64 = 1000;
const BUCKETS: usize = 1000 + 900 * 6;

impl Hist {
    fn new() -> Hist {
        Hist((0..BUCKETS).map(|_| AtomicU64::new(0)).collect())
    }

    fn index(us: u64) -> usize {
        if us < EXACT {
            return us as usize;
        }
        let digits = us.ilog10() + 1; // 4..
        let scale = 10u64.pow(digits - 3);
        let i = 1000 + (digits as usize - 4) * 900 + (us / scale - 100) as usize;
        i.min(BUCKETS - 1)
    }

    fn value(i: usize) -> u64 {
        if i < EXACT as usize {
            return i as u64;
        }
        let (decade, m) = ((i - 1000) / 900, (i - 1000) % 900);
        (100 + m as u64) * 10u64.pow(decade as u32 + 1)
    }

    fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0[Self::index(us)].fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The latency at quantile `q`, in microseconds.
    fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total.max(1));
        let mut seen = 0;
        for (i, c) in self.0.iter().enumerate() {
            seen += c.load(Ordering::Relaxed);
            if seen >= rank {
                return Self::value(i);
            }
        }
        0
    }
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1e3)
}

/// The process's resident set now (`VmRSS`) or at its peak (`VmHWM`), in bytes.
fn proc_status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

fn open_fds() -> usize {
    // The directory's own descriptor is counted every time alike.
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd (Linux)").count()
}

/// Each open descriptor and what it is, to name the ones left open.
fn fd_targets() -> Vec<(String, String)> {
    let mut fds: Vec<_> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd (Linux)")
        .filter_map(Result::ok)
        .map(|e| {
            let target = std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .collect();
    fds.sort();
    fds
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// RSS and descriptors when a share of the executions had ended.
#[derive(Debug, Clone, Copy)]
struct Sample {
    percent: usize,
    at: Duration,
    rss: u64,
    fds: usize,
}

// ---------------------------------------------------------------- the soak

/// One execution as the clients saw it (fixed size: allocated before the
/// run, so the clients' memory does not grow as executions end).
#[derive(Clone, Copy)]
struct Record {
    id: [u8; 36],
    expect: Option<Expect>,
    /// Events in its journal, as the server's pages gave them.
    events: u32,
}

impl Record {
    fn id(&self) -> &str {
        std::str::from_utf8(&self.id).expect("an ASCII id")
    }
}

struct Soak {
    total: usize,
    next: AtomicUsize,
    done: AtomicUsize,
    start: Instant,
    hist: Vec<Hist>,
    records: Mutex<Vec<Record>>,
    failures: Mutex<Vec<String>>,
    failed: AtomicUsize,
    samples: Mutex<Vec<Sample>>,
    polls: AtomicU64,
}

type Check<T = ()> = Result<T, String>;

impl Soak {
    async fn call(
        &self,
        conn: &mut Conn,
        req: Req,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Check<Resp> {
        let t0 = Instant::now();
        let r = conn.send(method, path, key, body).await?;
        self.hist[req as usize].record(t0.elapsed());
        Ok(r)
    }

    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut f = self.failures.lock().unwrap();
        if f.len() < 30 {
            f.push(what);
        }
    }

    /// One execution, driven as its [`Plan`] says, checked at each answer.
    async fn execution(&self, conn: &mut Conn, i: usize) -> Check {
        let plan = Plan::of(i);
        let expect = plan.kind.expect();
        let body = format!(r#"{{"input":{{"kind":"{}","n":{i}}}}}"#, plan.kind.name());
        let key = plan.keyed.then(|| format!("soak-{i}"));
        let path = if plan.wait { "/workflows/execute?wait=true" } else { "/workflows/execute" };
        let req = if plan.wait { Req::ExecuteWait } else { Req::Execute };
        let r = self.call(conn, req, "POST", path, key.as_deref(), Some(&body)).await?;
        let want = if plan.wait { 200 } else { 202 };
        if r.status != want {
            return Err(format!("POST {path}: {} (expected {want}): {}", r.status, r.text()));
        }
        let v = r.json()?;
        let id = v["executionId"].as_str().ok_or_else(|| format!("no executionId in {v}"))?.to_owned();
        if id.len() != 36 {
            return Err(format!("an execution id of {} bytes: {id:?}", id.len()));
        }
        if plan.wait {
            check_result(&v, expect, i)?;
        }

        if let Some(key) = &key {
            // The client did not hear back (say) and sends it again.
            let r = self.call(conn, Req::Retry, "POST", path, Some(key), Some(&body)).await?;
            let ok = if plan.wait { r.status == 200 } else { r.status == 200 || r.status == 202 };
            if !ok || !r.replayed {
                return Err(format!("retry with key {key}: {} replayed={}: {}", r.status, r.replayed, r.text()));
            }
            let again = r.json()?;
            if again["executionId"].as_str() != Some(&id) {
                return Err(format!("retry with key {key} answered another execution: {again} (first {id})"));
            }
            if plan.wait {
                check_result(&again, expect, i)?;
            }
            if plan.key_conflict {
                let other = format!(r#"{{"input":{{"kind":"complete","n":{}}}}}"#, i + 1_000_000_000);
                let r = self.call(conn, Req::Retry, "POST", path, Some(key), Some(&other)).await?;
                if r.status != 422 {
                    return Err(format!("key {key} with another body: {} (expected 422): {}", r.status, r.text()));
                }
            }
        }

        let status_path = format!("/executions/{id}");
        if plan.kind == Kind::Hang {
            let r = self.call(conn, Req::Status, "GET", &status_path, None, None).await?;
            let v = r.json()?;
            if r.status != 200 || !matches!(v["status"].as_str(), Some("pending" | "running")) {
                return Err(format!("GET {status_path} of a hanging execution: {} {v}", r.status));
            }
            let cancel = format!("/executions/{id}/cancel");
            let r = self.call(conn, Req::Cancel, "POST", &cancel, None, None).await?;
            if r.status != 202 {
                return Err(format!("POST {cancel}: {} (expected 202): {}", r.status, r.text()));
            }
            let v = self.poll(conn, &status_path).await?;
            check_result(&v, expect, i)?;
            if v["cancelRequested"] != true {
                return Err(format!("a cancelled execution without cancelRequested: {v}"));
            }
            let r = self.call(conn, Req::Cancel, "POST", &cancel, None, None).await?;
            if r.status != 409 {
                return Err(format!("POST {cancel} once ended: {} (expected 409): {}", r.status, r.text()));
            }
        } else if !plan.wait {
            let v = self.poll(conn, &status_path).await?;
            check_result(&v, expect, i)?;
        } else if plan.status_after_wait {
            let r = self.call(conn, Req::Status, "GET", &status_path, None, None).await?;
            if r.status != 200 {
                return Err(format!("GET {status_path}: {}: {}", r.status, r.text()));
            }
            check_result(&r.json()?, expect, i)?;
        }

        if let Some(limit) = plan.pages {
            let events = self.pages(conn, &id, limit).await?;
            check_journal(events.iter().map(|(s, e)| (*s, e.as_str())), expect)?;
        }
        if plan.health {
            let r = self.call(conn, Req::Health, "GET", "/health", None, None).await?;
            if r.status != 200 || r.json()?["status"] != "ok" {
                return Err(format!("GET /health: {}: {}", r.status, r.text()));
            }
        }

        let mut rec = Record { id: [0; 36], expect: Some(expect), events: 0 };
        rec.id.copy_from_slice(id.as_bytes());
        self.records.lock().unwrap()[i] = rec;
        Ok(())
    }

    /// `GET /executions/{id}` until it has ended.
    async fn poll(&self, conn: &mut Conn, path: &str) -> Check<Value> {
        let until = Instant::now() + REQUEST_TIMEOUT;
        loop {
            self.polls.fetch_add(1, Ordering::Relaxed);
            let r = self.call(conn, Req::Status, "GET", path, None, None).await?;
            if r.status != 200 {
                return Err(format!("GET {path}: {}: {}", r.status, r.text()));
            }
            let v = r.json()?;
            if matches!(v["status"].as_str(), Some("completed" | "failed" | "cancelled")) {
                return Ok(v);
            }
            if Instant::now() > until {
                return Err(format!("GET {path}: still {} after {REQUEST_TIMEOUT:?}", v["status"]));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The whole journal through `GET …/journal?after=..&limit=..`, page by page.
    async fn pages(&self, conn: &mut Conn, id: &str, limit: u64) -> Check<Vec<(u64, String)>> {
        let (mut after, mut events) = (0u64, Vec::new());
        for _ in 0..10_000 {
            let path = format!("/executions/{id}/journal?after={after}&limit={limit}");
            let r = self.call(conn, Req::Journal, "GET", &path, None, None).await?;
            if r.status != 200 {
                return Err(format!("GET {path}: {}: {}", r.status, r.text()));
            }
            let v = r.json()?;
            let page = v["events"].as_array().ok_or_else(|| format!("GET {path}: no events: {v}"))?;
            if page.len() as u64 > limit {
                return Err(format!("GET {path}: {} events on a page of {limit}", page.len()));
            }
            for e in page {
                let seq = e["seq"].as_u64().ok_or_else(|| format!("GET {path}: an event without seq: {e}"))?;
                events.push((seq, e["event"].as_str().unwrap_or_default().to_owned()));
            }
            if v["more"] != true {
                if v["complete"] != true {
                    return Err(format!("GET {path}: the last page of an ended execution is not complete: {v}"));
                }
                return Ok(events);
            }
            after = v["after"].as_u64().ok_or_else(|| format!("GET {path}: no after: {v}"))?;
        }
        Err(format!("journal of {id}: more than 10,000 pages"))
    }

    /// Once every execution has ended (the early ones forgotten from the
    /// server's memory when there are more than it keeps, and answered from
    /// their journals): one in 10 read by `GET /executions/{id}`, and every
    /// keyed one sent again with its key, which must answer the same
    /// execution and its end.
    async fn late(&self, conn: &mut Conn, i: usize, id: &str, expect: Expect) -> Check {
        if i % 10 == 0 {
            let path = format!("/executions/{id}");
            let r = self.call(conn, Req::Status, "GET", &path, None, None).await?;
            if r.status != 200 {
                return Err(format!("GET {path}: {}: {}", r.status, r.text()));
            }
            check_result(&r.json()?, expect, i)?;
        }
        let plan = Plan::of(i);
        if plan.keyed {
            let (key, path) = (format!("soak-{i}"), "/workflows/execute");
            let body = format!(r#"{{"input":{{"kind":"{}","n":{i}}}}}"#, plan.kind.name());
            let r = self.call(conn, Req::Retry, "POST", path, Some(&key), Some(&body)).await?;
            let v = r.json()?;
            if r.status != 200 || !r.replayed || v["executionId"].as_str() != Some(id) {
                return Err(format!("key {key} sent again: {} replayed={}: {v}", r.status, r.replayed));
            }
            check_result(&v, expect, i)?;
        }
        Ok(())
    }

    fn sample(&self, done: usize) {
        // Every 5% of the executions (25% and 100% among them).
        if done * 20 / self.total != (done - 1) * 20 / self.total {
            let s = Sample {
                percent: done * 100 / self.total,
                at: self.start.elapsed(),
                rss: proc_status("VmRSS"),
                fds: open_fds(),
            };
            self.samples.lock().unwrap().push(s);
        }
    }
}

/// A body of `?wait=true`, a replay or `GET /executions/{id}` ended as expected.
fn check_result(v: &Value, expect: Expect, n: usize) -> Check {
    if v["status"] != expect.state() {
        return Err(format!("execution {n} ({}): {} (expected {})", v["executionId"], v["status"], expect.state()));
    }
    match expect {
        Expect::Completed if v["output"]["n"] != json!(n) => Err(format!("execution {n}: another output: {v}")),
        Expect::Failed if v["error"].is_null() => Err(format!("execution {n} failed without an error: {v}")),
        _ => Ok(()),
    }
}

/// A journal whole: `seq` 1..n without gaps, `execution.started` first and
/// the expected terminal event last (and only last). Its length.
fn check_journal<'a>(events: impl Iterator<Item = (u64, &'a str)>, expect: Expect) -> Check<usize> {
    let mut n = 0u64;
    let mut last = "";
    for (seq, event) in events {
        n += 1;
        if seq != n {
            return Err(format!("event {n} has seq {seq}"));
        }
        if n == 1 && event != "execution.started" {
            return Err(format!("the first event is {event}"));
        }
        if n > 1 && is_terminal(last) {
            return Err(format!("{event} (seq {seq}) after the terminal {last}"));
        }
        last = event;
    }
    if n == 0 {
        return Err("an empty journal".into());
    }
    if last != expect.terminal_event() {
        return Err(format!("the journal ends with {last} (seq {n}), not {}", expect.terminal_event()));
    }
    Ok(n as usize)
}

fn is_terminal(event: &str) -> bool {
    matches!(event, "execution.completed" | "execution.failed" | "execution.cancelled")
}

/// Client `c`: executions from the shared counter until none are left.
async fn client(soak: Arc<Soak>, addr: SocketAddr) {
    let mut conn = Conn::new(addr);
    loop {
        let i = soak.next.fetch_add(1, Ordering::Relaxed);
        if i >= soak.total {
            break;
        }
        if let Err(e) = soak.execution(&mut conn, i).await {
            soak.fail(format!("execution {i} ({:?}): {e}", Plan::of(i).kind));
        }
        let done = soak.done.fetch_add(1, Ordering::Relaxed) + 1;
        soak.sample(done);
    }
}

/// Every execution's journal through the server's pages (of 1 to 7
/// events), checked, its length kept for the check of the files.
async fn verify_served(soak: Arc<Soak>, addr: SocketAddr, from: Arc<AtomicUsize>) {
    let mut conn = Conn::new(addr);
    loop {
        let i = from.fetch_add(1, Ordering::Relaxed);
        if i >= soak.total {
            break;
        }
        let rec = soak.records.lock().unwrap()[i];
        let Some(expect) = rec.expect else { continue }; // failed during the run: reported
        let id = rec.id();
        let checked = match soak.pages(&mut conn, id, 1 + i as u64 % 7).await {
            Ok(events) => check_journal(events.iter().map(|(s, e)| (*s, e.as_str())), expect),
            Err(e) => Err(e),
        };
        match checked {
            Ok(n) => soak.records.lock().unwrap()[i].events = n as u32,
            Err(e) => soak.fail(format!("execution {i} {id}, journal read back through the server: {e}")),
        }
        if let Err(e) = soak.late(&mut conn, i, id, expect).await {
            soak.fail(format!("execution {i} {id}, read once all had ended: {e}"));
        }
    }
}

/// Every execution's journal from the files: each segment read once, line
/// by line with `journal::parse` (the reader `read_execution` uses; one
/// line at a time so that this check's memory stays small), events grouped
/// by execution; and one execution in 500 through `journal::read_execution`
/// itself, which scans every segment for an id (all of them would take
/// O(executions x log size)). Returns how many went through the latter.
fn verify_files(soak: &Soak, dir: &Path) -> usize {
    let mut journals: HashMap<Box<str>, Vec<(u64, EventKind)>> = HashMap::new();
    let mut segments: Vec<_> = std::fs::read_dir(dir.join(LOG_DIR))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    segments.sort();
    for path in &segments {
        let mut file = match std::fs::File::open(path) {
            Ok(f) => std::io::BufReader::new(f),
            Err(e) => {
                soak.fail(format!("segment {}: {e}", path.display()));
                continue;
            }
        };
        let (mut line, mut no) = (Vec::new(), 0);
        loop {
            line.clear();
            match file.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => no += 1,
                Err(e) => {
                    soak.fail(format!("segment {}: {e}", path.display()));
                    break;
                }
            }
            match parse(&line) {
                Ok(read) if read.warnings.is_empty() && read.events.len() == 1 => {
                    let e = &read.events[0];
                    journals.entry(Box::from(&*e.execution_id)).or_default().push((e.seq, e.event));
                }
                Ok(read) => soak.fail(format!("{} line {no}: {:?}", path.display(), read.warnings)),
                Err(e) => soak.fail(format!("{} line {no}: {e}", path.display())),
            }
        }
    }
    let records = soak.records.lock().unwrap().clone();
    let mut plain = 0;
    for (i, rec) in records.iter().enumerate() {
        let Some(expect) = rec.expect else { continue };
        let id = rec.id();
        let events = journals.remove(id).unwrap_or_default();
        let check = |events: &[(u64, EventKind)]| -> Check {
            let n = check_journal(events.iter().map(|(s, e)| (*s, e.as_str())), expect)?;
            if n != rec.events as usize {
                return Err(format!("{n} events on disk, {} through the server", rec.events));
            }
            Ok(())
        };
        if let Err(e) = check(&events) {
            soak.fail(format!("execution {i} {id}, journal in the segments of {}: {e}", dir.display()));
        }
        if i % 500 == 0 {
            plain += 1;
            let read = read_execution(dir, id).map_err(|e| format!("unreadable: {e}")).and_then(|read| {
                if !read.warnings.is_empty() {
                    return Err(format!("warnings: {:?}", read.warnings));
                }
                if let Some(e) = read.events.iter().find(|e| &*e.execution_id != id) {
                    return Err(format!("an event of {} in its journal", e.execution_id));
                }
                check(&read.events.iter().map(|e| (e.seq, e.event)).collect::<Vec<_>>())
            });
            if let Err(e) = read {
                soak.fail(format!("execution {i} {id}, journal::read_execution: {e}"));
            }
        }
    }
    // Retries with a key and 422s start nothing: no other journal.
    if !journals.is_empty() {
        let some: Vec<_> = journals.keys().take(5).collect();
        soak.fail(format!("{} journal(s) of executions no client started, e.g. {some:?}", journals.len()));
    }
    plain
}

/// `execution.started` lines in the log's segments, and the segments.
fn started_in_log(dir: &Path) -> (usize, usize, u64) {
    let segments: Vec<_> = std::fs::read_dir(dir.join(LOG_DIR))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    let (mut started, mut bytes) = (0, 0);
    for p in &segments {
        let data = std::fs::read(p).unwrap_or_default();
        bytes += data.len() as u64;
        started += memchr::memmem::find_iter(&data, br#""event":"execution.started""#).count();
    }
    (started, segments.len(), bytes)
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v.trim().parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
            eprintln!("soak: {name}={v:?} is not a positive whole number");
            std::process::exit(2)
        }),
    }
}

fn main() {
    let total = env_number("O8_SOAK_EXECUTIONS", DEFAULT_EXECUTIONS as u64) as usize;
    let deadline = Duration::from_secs(env_number("O8_SOAK_DEADLINE_SECS", DEFAULT_DEADLINE.as_secs()));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "soak: {total} executions through `serve` on loopback, {CLIENTS} keep-alive clients, {cpus} CPUs, deadline {}s",
        deadline.as_secs()
    );

    let wall = Instant::now();
    // Fails rather than hangs: the whole run, verification included.
    let (finished, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watchdog.recv_timeout(deadline) {
            eprintln!(
                "soak: FAILED: not finished within the deadline of {}s (O8_SOAK_DEADLINE_SECS)",
                deadline.as_secs()
            );
            std::process::exit(2);
        }
    });

    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = tmp.path().to_owned();
    let empty = Record { id: [b'-'; 36], expect: None, events: u32::MAX };
    let soak = Arc::new(Soak {
        total,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        start: Instant::now(),
        hist: REQS.iter().map(|_| Hist::new()).collect(),
        records: Mutex::new(vec![empty; total]),
        failures: Mutex::new(Vec::new()),
        failed: AtomicUsize::new(0),
        samples: Mutex::new(Vec::new()),
        polls: AtomicU64::new(0),
    });

    // The first server of a process opens what lives as long as the process
    // (tokio's signal pipe: a socket pair): one started and stopped first, so
    // that the count before and after the soak's server compares like with like.
    let warm = tempfile::tempdir().expect("a temp dir");
    let stopped = serve::start(program(), warm.path(), &[]).stop();
    assert_eq!(stopped.status, 0, "the warm-up server stops cleanly: {:?}", stopped.kept);
    drop(warm);
    let fds_before = open_fds();
    let targets_before = fd_targets();
    let rss_before = proc_status("VmRSS");
    let served = serve::start(program(), &dir, &[]);
    let addr = served.addr;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let start = Instant::now();
    rt.block_on({
        let soak = soak.clone();
        async move {
            let tasks: Vec<_> = (0..CLIENTS).map(|_| tokio::spawn(client(soak.clone(), addr))).collect();
            for t in tasks {
                t.await.expect("a client does not panic");
            }
        }
    });
    let run = start.elapsed();
    let rss_end = proc_status("VmRSS");
    let fds_end = open_fds();

    let verify_start = Instant::now();
    rt.block_on({
        let soak = soak.clone();
        async move {
            let from = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> =
                (0..CLIENTS).map(|_| tokio::spawn(verify_served(soak.clone(), addr, from.clone()))).collect();
            for t in tasks {
                t.await.expect("a client does not panic");
            }
        }
    });
    let verify_served_time = verify_start.elapsed();
    drop(rt);
    let stopped = served.stop();
    let fds_after = open_fds();
    let targets_after = fd_targets();
    let rss_after = proc_status("VmRSS");
    // The peak of the run and of the reads through the server.
    let peak = proc_status("VmHWM");

    let files_start = Instant::now();
    let plain = verify_files(&soak, &dir);
    let verify_files_time = files_start.elapsed();
    let (started, segments, log_bytes) = started_in_log(&dir);
    let peak_end = proc_status("VmHWM");
    let _ = finished.send(());

    // ---- figures
    println!(
        "{total} executions in {:.1} s: {:.0} executions/s ({} status polls); verified through the server in {:.1} s, from the files in {:.1} s ({plain} through read_execution itself)",
        run.as_secs_f64(),
        total as f64 / run.as_secs_f64(),
        soak.polls.load(Ordering::Relaxed),
        verify_served_time.as_secs_f64(),
        verify_files_time.as_secs_f64(),
    );
    println!("{:<26} {:>9} {:>10} {:>10} {:>10}", "request", "n", "p50", "p99", "max");
    let mut requests = 0;
    for (req, name) in REQS {
        let h = &soak.hist[req as usize];
        let n = h.count();
        requests += n;
        if n > 0 {
            println!(
                "{name:<26} {n:>9} {:>10} {:>10} {:>10}",
                ms(h.quantile(0.5)),
                ms(h.quantile(0.99)),
                ms(h.quantile(1.0))
            );
        }
    }
    println!(
        "{requests} requests in all, {:.0}/s over the run and the verification",
        requests as f64 / (run + verify_served_time).as_secs_f64()
    );
    let samples = soak.samples.lock().unwrap().clone();
    let row = |f: &dyn Fn(&Sample) -> String| samples.iter().map(f).collect::<Vec<_>>().join(" ");
    println!("at % of executions: {}", row(&|s| format!("{:>6}", format!("{}%", s.percent))));
    println!("  seconds:          {}", row(&|s| format!("{:>6.1}", s.at.as_secs_f64())));
    println!("  RSS MiB:          {}", row(&|s| format!("{:>6.1}", s.rss as f64 / (1 << 20) as f64)));
    println!("  descriptors:      {}", row(&|s| format!("{:>6}", s.fds)));
    println!(
        "RSS: {} before the server, {} at the end of the executions, {} after the server stopped; peak (VmHWM) {} until then, {} with the check of the files",
        mib(rss_before),
        mib(rss_end),
        mib(rss_after),
        mib(peak),
        mib(peak_end)
    );
    let at = |p: usize| samples.iter().find(|s| s.percent >= p).copied();
    if let (Some(a), Some(b), Some(c)) = (at(25), at(50), samples.last().copied()) {
        let per = |x: Sample, y: Sample| {
            let n = (y.percent - x.percent) as f64 / 100.0 * total as f64;
            (y.rss as f64 - x.rss as f64) / n.max(1.0)
        };
        println!(
            "RSS per execution: {:.0} B from {}% to {}%, {:.0} B from {}% to {}% (bounds: {} at most from 25% to 100%, peak {})",
            per(a, b),
            a.percent,
            b.percent,
            per(b, c),
            b.percent,
            c.percent,
            mib(rss_growth_bound(total as u64)),
            mib(peak_rss_bound(total as u64))
        );
    }
    println!("descriptors: {fds_before} before the server, {fds_end} at the end of the executions, {fds_after} after it stopped");
    println!("journal: {started} executions started in {segments} segment(s), {} in {}", mib(log_bytes), dir.display());
    println!("server: exit status {}, {} line(s) on standard error after its first", stopped.status, stopped.lines);
    for line in &stopped.kept {
        println!("  | {line}");
    }

    // ---- checks
    let mut problems: Vec<String> = Vec::new();
    let failed = soak.failed.load(Ordering::Relaxed);
    if failed > 0 {
        problems.push(format!("{failed} execution check(s) failed; the first:"));
        problems.extend(soak.failures.lock().unwrap().iter().map(|f| format!("  {f}")));
    }
    if stopped.status != 0 {
        problems.push(format!("the server exited with status {}", stopped.status));
    }
    if started != total {
        problems.push(format!("{started} executions in the log, not {total} (retries with a key must start none)"));
    }
    if peak > peak_rss_bound(total as u64) {
        problems.push(format!("peak RSS {} above the bound of {}", mib(peak), mib(peak_rss_bound(total as u64))));
    }
    let quarter = samples.iter().find(|s| s.percent >= 25);
    let last = samples.last();
    match (quarter, last) {
        (Some(q), Some(l)) => {
            if l.rss > q.rss + rss_growth_bound(total as u64) {
                problems.push(format!(
                    "RSS grew from {} at {}% to {} at {}%: more than the bound of {}",
                    mib(q.rss),
                    q.percent,
                    mib(l.rss),
                    l.percent,
                    mib(rss_growth_bound(total as u64))
                ));
            }
            // The most at any sample from 25% on (clients that ran out of
            // executions close their connections, so the last is lower).
            let most = samples.iter().filter(|s| s.percent >= q.percent).max_by_key(|s| s.fds).unwrap_or(q);
            if most.fds > q.fds + FD_RUN_SLACK {
                problems.push(format!(
                    "descriptors grew from {} at {}% to {} at {}% (slack {FD_RUN_SLACK})",
                    q.fds, q.percent, most.fds, most.percent
                ));
            }
        }
        _ => problems.push("no samples at 25% and 100% of the executions".into()),
    }
    if fds_after > fds_before + FD_SLACK {
        let left: Vec<_> = targets_after.iter().filter(|t| !targets_before.contains(t)).collect();
        problems.push(format!(
            "{fds_after} descriptors open after the server stopped, {fds_before} before it started (slack {FD_SLACK}); new: {left:?}"
        ));
    }
    println!("wall time: {:.1} s (warm-up server, soak, verification)", wall.elapsed().as_secs_f64());
    if problems.is_empty() {
        println!(
            "soak: ok (peak RSS <= {}, RSS growth 25%..100% <= {}, descriptors back to {fds_before})",
            mib(peak_rss_bound(total as u64)),
            mib(rss_growth_bound(total as u64))
        );
    } else {
        eprintln!("soak: FAILED");
        for p in &problems {
            eprintln!("{p}");
        }
        std::process::exit(1);
    }
}
