//! The server's journal seen through HTTP (issue 16): deep values read back
//! as they were written, lookups of unknown ids that read no segment, paging
//! by `seq` under a byte cap, and retention of the log's segments.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::http::Server;
use orchestr8_runtime::codegen::{
    slot, store, AgentStep, BreakerRegistry, ExecutionIds, Node, Program, Workflow, WorkflowInfo,
};
use orchestr8_runtime::journal::read_execution;
use orchestr8_runtime::policy::{Policy, RetryPolicy};
use orchestr8_runtime::testing::MockAgent;
use serde_json::{json, Value};

struct State {
    input: Value,
    step: OnceLock<Value>,
}

/// `deep` 1.0.0: one step `echo` (given the input, answering `reply`); the
/// output wraps the input two levels deeper, with the step's reply beside it.
fn program(agent: MockAgent<Value, Value>) -> Program<Value, State, Value> {
    let policy = Policy {
        timeout: Duration::from_secs(600),
        retry: RetryPolicy { jitter: false, max_attempts: 1, ..RetryPolicy::default() },
        ..Policy::default()
    };
    let echo = AgentStep::new(
        "echo",
        Arc::new(agent),
        |s: &State| Ok(s.input.clone()),
        |s: &State, out| store(&s.step, "echo", out),
    )
    .policy(policy)
    .node();
    let workflow = Workflow::with_registry(
        WorkflowInfo::new("deep", "1.0.0", "sha256:0"),
        Node::sequence(vec![echo]),
        |s: &State| Ok(json!({"wrapped": {"input": s.input.clone()}, "reply": slot(&s.step, "echo")?})),
        &BreakerRegistry::new(16),
    );
    Program::new(Arc::new(workflow), |input: Value, _: &ExecutionIds| State { input, step: OnceLock::new() })
}

fn ok_agent() -> MockAgent<Value, Value> {
    MockAgent::new("echo", "1.0.0").then_ok(json!({"ok": true}))
}

/// `[[[…[0]…]]]`, `depth` arrays deep.
fn nested(depth: usize) -> Value {
    let mut v = json!(0);
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

fn id_of(v: &Value) -> String {
    v["executionId"].as_str().expect("executionId").to_owned()
}

fn execute_deep(server: &Server, depth: usize) -> (String, Value) {
    let r = server.post("/workflows/execute?wait=true", &json!({ "input": nested(depth) }));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["output"]["wrapped"]["input"], nested(depth));
    (id_of(&v), v)
}

fn assert_readable(server: &Server, id: &str, depth: usize) {
    let s = server.get(&format!("/executions/{id}"));
    assert_eq!(s.status, 200, "{}", s.text());
    let s = s.json();
    assert_eq!(s["status"], "completed", "{s}");
    assert_eq!(s["output"]["wrapped"]["input"], nested(depth));
    let j = server.get(&format!("/executions/{id}/journal"));
    assert_eq!(j.status, 200, "{}", j.text());
    let j = j.json();
    assert_eq!(j["complete"], true, "{j}");
    let events = j["events"].as_array().unwrap();
    assert_eq!(events.last().unwrap()["event"], "execution.completed");
    assert_eq!(events.last().unwrap()["output"]["wrapped"]["input"], nested(depth));
}

/// Issue 16.1: a request body fits serde_json's 128 levels, the output the
/// workflow builds from it does not; the journal must read it back anyway,
/// in this process and the next.
#[test]
fn a_deep_output_stays_readable_here_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    let (id, _) = execute_deep(&server, 125);
    assert_readable(&server, &id, 125);
    let (code, log) = server.stop();
    assert_eq!(code, 0, "{log:?}");

    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    assert_readable(&server, &id, 125);
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}

/// Issue 16.6: a restart with a size limit trims what an earlier process
/// left (it has ended), says so, and the executions it held are unknown.
#[test]
fn a_restart_trims_the_log_to_its_limit_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    let ids: Vec<String> = (0..3).map(|_| execute_deep(&server, 1).0).collect();
    let (code, _) = server.stop();
    assert_eq!(code, 0);

    let server =
        Server::start(program(ok_agent()), dir.path(), &["--journal-max-bytes", "1", "--journal-retention", "off"]);
    server.wait_for_line(|l| l.contains("journal retention deleted 1 segments"));
    for id in &ids {
        server.get(&format!("/executions/{id}")).problem(404);
        server.get(&format!("/executions/{id}/journal")).problem(404);
    }
    // The new process's own segment is being written: it stays.
    let (id, _) = execute_deep(&server, 1);
    assert_readable(&server, &id, 1);
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}

/// The cap on a journal page's bytes (`MAX_PAGE_BYTES` in server/handlers.rs).
const PAGE_BYTES: usize = 1024 * 1024;

/// Issue 16.5: a journal of large events comes in pages under the byte cap,
/// every event exactly once, by following `links.next`.
#[test]
fn a_long_journal_pages_under_the_byte_cap_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &["--body-limit", "4MiB"]);
    // The input is in `execution.started`, `step.started` and the output in
    // `execution.completed`: three events of 600 KB.
    let big = json!({ "text": "x".repeat(600_000) });
    let r = server.post("/workflows/execute?wait=true", &json!({ "input": big }));
    assert_eq!(r.status, 200, "{}", r.text());
    let id = id_of(&r.json());
    let mut seqs = Vec::new();
    let mut next = format!("/executions/{id}/journal");
    let mut pages = 0;
    loop {
        let r = server.get(&next);
        assert_eq!(r.status, 200, "{}", r.text());
        let page = r.json();
        let events = page["events"].as_array().unwrap();
        assert!(!events.is_empty(), "{page}");
        let bytes: usize = events.iter().map(|e| e.to_string().len()).sum();
        assert!(events.len() == 1 || bytes <= PAGE_BYTES, "{} events, {bytes} bytes", events.len());
        seqs.extend(events.iter().map(|e| e["seq"].as_u64().unwrap()));
        assert_eq!(page["after"], *seqs.last().unwrap());
        pages += 1;
        if page["more"] == false {
            assert!(page.get("links").is_none());
            assert_eq!(page["complete"], true);
            break;
        }
        next = page["links"]["next"].as_str().unwrap().to_owned();
    }
    assert!(pages >= 2, "{pages} pages");
    let all: Vec<u64> = read_execution(dir.path(), &id).unwrap().events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, all, "every event once, in order");
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}

/// Issue 16.5: lookups of ids this process does not know search the log one
/// at a time, and only `SEARCH_QUEUE` (16, server/search_queue.rs) may wait;
/// beyond, a 503 with `Retry-After`, at once. The search under way is held
/// on a FIFO named like a `run`'s journal, which it opens first and reads
/// until the test writes the journal and closes it.
#[cfg(unix)]
#[test]
fn lookups_beyond_the_search_queue_are_refused_with_retry_after() {
    use orchestr8_runtime::journal::{EventKind, JournalEvent};
    use std::io::Write as _;
    use std::sync::mpsc;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    let fifo = dir.path().join("held.jsonl");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let get = |path: String| {
        let addr = server.addr.clone();
        move || common::http::request(&addr, "GET", &path, &[], b"")
    };
    let held = std::thread::spawn(get("/executions/held".into()));
    // Opening the FIFO to write waits for the search to open it to read.
    let (opened_tx, opened) = mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || opened_tx.send(std::fs::OpenOptions::new().write(true).open(path)));
    let mut writer = opened.recv_timeout(Duration::from_secs(60)).expect("the search opens the file").unwrap();

    // 16 wait for the held search; the other 8 are refused at once.
    let (tx, answers) = mpsc::channel();
    for i in 0..24 {
        let (tx, get) = (tx.clone(), get(format!("/executions/nobody-{i}")));
        std::thread::spawn(move || tx.send(get()));
    }
    for _ in 0..8 {
        let r = answers.recv_timeout(Duration::from_secs(60)).expect("a refusal while the search is held");
        assert_eq!(r.problem(503)["type"], "urn:orchestr8:problem:lookups-busy");
        assert_eq!(r.header("retry-after"), Some("1"));
    }

    // Released: the held lookup answers, then each waiting one in turn.
    for (seq, kind) in [(1, EventKind::ExecutionStarted), (2, EventKind::ExecutionCompleted)] {
        let mut ev = JournalEvent::new("held".into(), kind);
        ev.seq = seq;
        writeln!(writer, "{}", serde_json::to_string(&ev).unwrap()).unwrap();
    }
    drop(writer);
    let r = held.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "completed");
    for _ in 0..16 {
        answers.recv_timeout(Duration::from_secs(60)).expect("a waiting lookup's answer").problem(404);
    }
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}
