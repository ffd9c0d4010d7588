//! `wait` steps in a program's `run`: the run suspends (exit 3) once only
//! waits are left, `signal ID STEP --data JSON` delivers a payload and runs
//! the rest; two parallel branches wait on the same signal name with
//! different payload types; timeouts; every refusal exits 2 and says why.
//! In `serve`: signals over HTTP, each error status, a restart of the
//! server while executions wait. In `--test`: signals on virtual time.

mod common;

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orchestr8_runtime::codegen::{
    slot, store, AgentStep, BreakerRegistry, ExecutionIds, Node, OnError, OnceLock, Program, WaitStep, Workflow,
    WorkflowInfo,
};
use orchestr8_runtime::journal::{read_file, JournalEvent};
use orchestr8_runtime::testing::MockAgent;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use common::http::{id_of, journal_events, Server};

#[derive(Debug, Serialize, Deserialize)]
struct Input {}

/// The payload of `approve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Approval {
    approved: bool,
    by: String,
}

/// The payload of `legal`: the same signal name, another type.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Legal {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Default)]
struct State {
    draft: OnceLock<Value>,
    approve: OnceLock<Approval>,
    legal: OnceLock<Option<Legal>>,
    publish: OnceLock<Value>,
}

struct Agents {
    draft: Arc<MockAgent>,
    publish: Arc<MockAgent>,
}

fn agents() -> Agents {
    Agents {
        draft: Arc::new(MockAgent::new("drafter", "1.0.0").then_ok(json!({"text": "hello"}))),
        publish: Arc::new(MockAgent::new("publisher", "1.0.0").then_ok(json!({"url": "https://x/1"}))),
    }
}

/// `draft`, then a parallel block where `approve` and `legal` both wait for
/// signal `approval`, then `publish` with what they received.
fn program(agents: &Agents, legal_timeout: Option<Duration>, legal_continues: bool) -> Program<Input, State, Value> {
    let draft = AgentStep::new(
        "draft",
        agents.draft.clone(),
        |_: &State| Ok(json!({})),
        |s: &State, out| store(&s.draft, "draft", out),
    )
    .node();
    let approve = WaitStep::new(
        "approve",
        "approval",
        json!({
            "type": "object",
            "required": ["approved", "by"],
            "properties": {"approved": {"type": "boolean"}, "by": {"type": "string", "minLength": 1}},
            "additionalProperties": false
        }),
        |s: &State, p: Approval| store(&s.approve, "approve", p),
    )
    .node();
    let mut legal = WaitStep::new(
        "legal",
        "approval",
        json!({"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}, "note": {"type": "string"}}}),
        |s: &State, p: Legal| store(&s.legal, "legal", Some(p)),
    );
    if let Some(t) = legal_timeout {
        legal = legal.timeout(t);
    }
    if legal_continues {
        legal = legal.on_error(OnError::Continue);
    }
    let publish = AgentStep::new(
        "publish",
        agents.publish.clone(),
        |s: &State| Ok(json!({"approved": slot(&s.approve, "approve")?.approved})),
        |s: &State, out| store(&s.publish, "publish", out),
    )
    .node();
    let workflow = Workflow::with_registry(
        WorkflowInfo::new("review", "1.0.0", "sha256:wait"),
        Node::sequence(vec![draft, Node::parallel("gate", true, vec![approve, legal.node()]), publish]),
        |s: &State| {
            Ok(json!({
                "approvedBy": slot(&s.approve, "approve")?.by,
                "legal": s.legal.get().cloned().flatten(),
                "published": slot(&s.publish, "publish")?,
            }))
        },
        &BreakerRegistry::new(16),
    );
    Program::new(Arc::new(workflow), |_: Input, _: &ExecutionIds| State::default())
}

struct Run {
    code: u8,
    stdout: String,
    stderr: String,
}

fn run(program: Program<Input, State, Value>, dir: &Path, args: &[&str]) -> Run {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.extend([std::ffi::OsStr::new("--journal-dir"), dir.as_os_str()]);
    run_args(program, &all)
}

fn run_args(program: Program<Input, State, Value>, args: &[&std::ffi::OsStr]) -> Run {
    let mut all: Vec<OsString> = vec!["review".into()];
    all.extend(args.iter().map(OsString::from));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = program.run_with(all, &b""[..], &mut out, &mut err);
    Run { code, stdout: String::from_utf8(out).unwrap(), stderr: String::from_utf8(err).unwrap() }
}

fn only_journal(dir: &Path) -> (String, Vec<JournalEvent>) {
    let files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let id = files[0].file_stem().unwrap().to_str().unwrap().to_owned();
    (id, read_file(&files[0]).unwrap().events)
}

fn names(events: &[JournalEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}{}", e.name(), e.step_id.as_deref().map_or(String::new(), |s| format!(":{s}"))))
        .collect()
}

#[test]
fn a_run_suspends_at_its_waits_and_signals_run_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let a = agents();
    let first = run(program(&a, None, false), dir.path(), &[]);
    assert_eq!(first.code, 3, "{}", first.stderr);
    assert!(first.stdout.is_empty());
    let (id, events) = only_journal(dir.path());
    assert!(
        first.stderr.contains(&format!("signal {id} approve --data JSON")),
        "the suspension says how to go on: {}",
        first.stderr
    );
    let waiting: Vec<_> = events.iter().filter(|e| e.name() == "step.waiting").collect();
    assert_eq!(waiting.len(), 2);
    assert!(waiting.iter().all(|e| e.signal() == Some("approval") && e.agent_id.is_none()));
    let last = events.last().unwrap();
    assert_eq!(last.name(), "execution.suspended");
    assert_eq!(last.state.map(|s| format!("{s:?}")), Some("Waiting".into()));

    // One signal: the other branch still waits, so the run suspends again.
    let second = run(
        program(&a, None, false),
        dir.path(),
        &["signal", &id, "approve", "--data", r#"{"approved": true, "by": "ann"}"#],
    );
    assert_eq!(second.code, 3, "{}", second.stderr);
    assert!(second.stderr.contains("signal to approve"), "{}", second.stderr);
    assert!(second.stderr.contains(&format!("signal {id} legal --data JSON")), "{}", second.stderr);

    // The same signal name, the other step's type.
    let third = run(program(&a, None, false), dir.path(), &["signal", &id, "legal", "--data", r#"{"ok": true}"#]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    let output: Value = serde_json::from_str(&third.stdout).unwrap();
    assert_eq!(output, json!({"approvedBy": "ann", "legal": {"ok": true}, "published": {"url": "https://x/1"}}));
    assert_eq!(a.draft.calls(), 1, "the step done before the suspension is not run again");
    assert_eq!(a.publish.calls(), 1);

    let (_, events) = only_journal(dir.path());
    let names = names(&events);
    let received: Vec<_> = events.iter().filter(|e| e.name() == "signal.received").collect();
    assert_eq!(received.len(), 2, "{names:?}");
    assert_eq!(received[0].output.as_ref().unwrap().value(), &json!({"approved": true, "by": "ann"}));
    assert_eq!(received[1].signal(), Some("approval"));
    assert_eq!(names.iter().filter(|n| *n == "execution.suspended").count(), 2, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "execution.resumed").count(), 2, "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("execution.completed"));
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "seq runs on without a break: {names:?}");
    }
    let succeeded: Vec<_> = names.iter().filter(|n| n.starts_with("step.succeeded")).collect();
    assert_eq!(
        succeeded,
        ["step.succeeded:draft", "step.succeeded:approve", "step.succeeded:legal", "step.succeeded:publish"]
    );
}

#[test]
fn bad_signals_exit_2_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let a = agents();
    assert_eq!(run(program(&a, None, false), dir.path(), &[]).code, 3);
    let (id, before) = only_journal(dir.path());
    let refused = |args: &[&str], expected: &str| {
        let r = run(program(&a, None, false), dir.path(), args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(expected), "{args:?}: expected {expected:?} in {}", r.stderr);
    };
    refused(&["signal", &id, "approve", "--data", r#"{"approved": "yes", "by": "ann"}"#], "/approved");
    refused(&["signal", &id, "approve", "--data", r#"{"approved": true, "by": ""}"#], "/by");
    refused(&["signal", &id, "approve", "--data", r#"{"approved": true"#], "at 1:");
    refused(&["signal", &id, "approve", "--data", r#"{"approved": true, "by": "a", "x": 1}"#], "x");
    refused(&["signal", &id, "nope", "--data", "{}"], "its wait steps are: approve, legal");
    refused(&["signal", &id, "draft", "--data", "{}"], "`draft` is not a wait step");
    refused(&["signal", "0000", "approve", "--data", "{}"], "no journal of execution 0000");
    refused(&["signal", &id, "approve"], "--data");
    let (_, after) = only_journal(dir.path());
    assert_eq!(before.len(), after.len(), "a refused signal journals nothing");

    // Delivered once; a second delivery is refused.
    let ok = run(
        program(&a, None, false),
        dir.path(),
        &["signal", &id, "approve", "--data", r#"{"approved": false, "by": "bo"}"#],
    );
    assert_eq!(ok.code, 3, "{}", ok.stderr);
    refused(&["signal", &id, "approve", "--data", r#"{"approved": true, "by": "ann"}"#], "already received its signal");
    assert_eq!(
        run(program(&a, None, false), dir.path(), &["signal", &id, "legal", "--data", r#"{"ok": false}"#]).code,
        0
    );
    refused(&["signal", &id, "legal", "--data", r#"{"ok": true}"#], "has already ended (completed)");
}

#[test]
fn a_wait_that_times_out_fails_or_continues() {
    for continues in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let a = agents();
        let timeout = Some(Duration::from_millis(50));
        assert_eq!(run(program(&a, timeout, continues), dir.path(), &[]).code, 3);
        let (id, _) = only_journal(dir.path());
        let waiting = only_journal(dir.path()).1.into_iter().find(|e| e.step_id.as_deref() == Some("legal")).unwrap();
        assert!(waiting.delay_ms.is_some_and(|ms| ms <= 50), "the time left is journaled: {waiting:?}");
        std::thread::sleep(Duration::from_millis(80));
        let late =
            run(program(&a, timeout, continues), dir.path(), &["signal", &id, "legal", "--data", r#"{"ok": true}"#]);
        assert_eq!(late.code, 2, "{}", late.stderr);
        assert!(late.stderr.contains("timed out"), "{}", late.stderr);
        // The other wait still accepts its signal; the run then records the timeout.
        let r = run(
            program(&a, timeout, continues),
            dir.path(),
            &["signal", &id, "approve", "--data", r#"{"approved": true, "by": "ann"}"#],
        );
        let (_, events) = only_journal(dir.path());
        let failed = events.iter().find(|e| e.name() == "step.failed").expect("the wait failed");
        assert_eq!(failed.step_id.as_deref(), Some("legal"));
        let error = failed.error.as_deref().unwrap();
        assert_eq!(error.kind.as_str(), "timeout");
        assert!(error.message.contains("no signal `approval` arrived within 50ms"), "{}", error.message);
        if continues {
            assert_eq!(r.code, 0, "{}", r.stderr);
            let output: Value = serde_json::from_str(&r.stdout).unwrap();
            assert_eq!(output["legal"], Value::Null);
        } else {
            assert_eq!(r.code, 1, "{}", r.stderr);
            assert!(r.stderr.contains("step `legal` failed (timeout"), "{}", r.stderr);
            assert_eq!(a.publish.calls(), 0);
        }
    }
}

/// `--test FILE` runs on virtual time: signals arrive at their `atMs`, a
/// wait without one times out, or suspends the case when it has no timeout.
#[test]
fn test_files_deliver_signals_on_virtual_time() {
    let dir = tempfile::tempdir().unwrap();
    let hour = Some(Duration::from_secs(3600));
    let test = |cases: Value| {
        let file = dir.path().join("cases.json");
        std::fs::write(&file, json!({ "cases": cases }).to_string()).unwrap();
        run_args(program(&agents(), hour, false), &["--test".as_ref(), file.as_os_str()])
    };
    let approve = json!({"payload": {"approved": true, "by": "ann"}, "atMs": 60_000});
    let passing = test(json!([
        {
            "name": "both signals",
            "signals": {"approve": approve, "legal": {"payload": {"ok": true, "note": "n"}, "atMs": 1_000}},
            "expect": {
                "output": {"approvedBy": "ann", "legal": {"ok": true, "note": "n"}, "published": {"url": "https://x/1"}},
                "steps": ["draft", "legal", "approve", "publish"]
            }
        },
        {
            "name": "the legal wait times out after an hour of virtual time",
            "signals": {"approve": approve},
            "expect": {"error": {"kind": "timeout", "step": "legal"}, "steps": ["draft", "approve"]}
        },
        {
            "name": "a signal later than the timeout comes too late",
            "signals": {"approve": approve, "legal": {"payload": {"ok": true}, "atMs": 3_600_001}},
            "expect": {"error": {"kind": "timeout", "step": "legal"}}
        }
    ]));
    assert_eq!(passing.code, 0, "{}{}", passing.stdout, passing.stderr);
    assert!(passing.stdout.ends_with("3 passed, 0 failed\n"), "{}", passing.stdout);

    let failing = test(json!([{
        "name": "expects the wrong approver",
        "signals": {"approve": approve, "legal": {"payload": {"ok": true}}},
        "expect": {"output": {"approvedBy": "bo", "legal": {"ok": true}, "published": {"url": "https://x/1"}}}
    }]));
    assert_eq!(failing.code, 1, "{}", failing.stdout);
    assert!(
        failing.stdout.contains("-   \"approvedBy\": \"bo\",\n")
            && failing.stdout.contains("+   \"approvedBy\": \"ann\","),
        "{}",
        failing.stdout
    );

    let bad_payload =
        test(json!([{"name": "x", "signals": {"approve": {"payload": {"approved": true, "by": ""}}}, "expect": {}}]));
    assert_eq!(bad_payload.code, 2, "{}", bad_payload.stderr);
    assert!(
        bad_payload.stderr.contains("at /cases/0/signals/approve/payload: the payload does not fit"),
        "{}",
        bad_payload.stderr
    );
    assert!(bad_payload.stderr.contains("/by"), "{}", bad_payload.stderr);
    let not_a_wait = test(json!([{"name": "x", "signals": {"draft": {"payload": {}}}, "expect": {}}]));
    assert_eq!(not_a_wait.code, 2, "{}", not_a_wait.stderr);
    assert!(
        not_a_wait.stderr.contains("`draft` is not a wait step (its wait steps: approve, legal)"),
        "{}",
        not_a_wait.stderr
    );
}

/// `serve`: both waits take their signals over HTTP; every refusal has its
/// status; a server stopped while executions wait suspends them, and the
/// next one on the same directory resumes them and takes the signals.
#[test]
fn serve_takes_signals_over_http_and_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = agents();
    let server = Server::start(program(&a, None, false), dir.path(), &[]);
    let started = server.post("/workflows/execute", &json!({"input": {}}));
    assert_eq!(started.status, 202, "{}", started.text());
    let id = id_of(&started.json());
    let status = server.poll(&format!("/executions/{id}"), |v| v["status"] == "waiting");
    assert_eq!(status["steps"]["approve"], "waiting", "{status}");
    assert_eq!(status["steps"]["legal"], "waiting", "{status}");

    // The OpenAPI document has a path per wait, with that wait's payload schema.
    let doc = server.get("/openapi.json").json();
    let op = &doc["paths"]["/executions/{id}/signals/approve"]["post"];
    assert_eq!(
        op["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Signal_approve"
    );
    assert_eq!(doc["components"]["schemas"]["Signal_legal"]["required"], json!(["ok"]));

    let signal = |step: &str, body: &str| post_signal(&server, &id, step, body.as_bytes());
    let p = signal("approve", r#"{"approved": "yes", "by": "ann"}"#).problem(422);
    assert_eq!(p["errors"][0]["pointer"], "/approved", "{p}");
    let p = signal("approve", r#"{"approved": true, "by": ""}"#).problem(422);
    assert_eq!(p["errors"][0]["pointer"], "/by", "{p}");
    signal("approve", r#"{"approved": true"#).problem(400);
    let p = signal("draft", "{}").problem(404);
    assert!(p["detail"].as_str().unwrap().contains("its wait steps are approve, legal"), "{p}");
    post_signal(&server, "nope", "approve", b"{}").problem(404);
    let form = common::http::request(
        &server.addr,
        "POST",
        &format!("/executions/{id}/signals/approve"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"a=1",
    );
    form.problem(415);

    let ok = signal("approve", r#"{"approved": true, "by": "ann"}"#);
    assert_eq!(ok.status, 202, "{}", ok.text());
    assert_eq!(ok.json()["signal"], "approval");
    // Taken once: the step no longer waits.
    let p = signal("approve", r#"{"approved": true, "by": "bo"}"#).problem(409);
    assert!(p["detail"].as_str().unwrap().contains("the steps waiting now: legal"), "{p}");

    // Stopped while `legal` waits: suspended, not cancelled.
    let (code, lines) = server.stop();
    assert_eq!(code, 0, "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("suspending 1 waiting for signals")), "{lines:?}");
    let names: Vec<String> = journal_events(dir.path(), &id).iter().map(|e| e.name().to_owned()).collect();
    assert_eq!(names.last().map(String::as_str), Some("execution.suspended"), "{names:?}");

    // The next server resumes it; the signal reaches the waiting step there.
    let server = Server::start(program(&a, None, false), dir.path(), &[]);
    server.poll(&format!("/executions/{id}"), |v| v["status"] == "waiting");
    let ok = post_signal(&server, &id, "legal", br#"{"ok": true, "note": "fine"}"#);
    assert_eq!(ok.status, 202, "{}", ok.text());
    let done = server.poll(&format!("/executions/{id}"), |v| v["status"] == "completed");
    assert_eq!(
        done["output"],
        json!({"approvedBy": "ann", "legal": {"ok": true, "note": "fine"}, "published": {"url": "https://x/1"}})
    );
    assert_eq!((a.draft.calls(), a.publish.calls()), (1, 1), "no agent ran twice");
    let p = post_signal(&server, &id, "legal", br#"{"ok": true}"#).problem(409);
    assert!(p["detail"].as_str().unwrap().contains("has already ended"), "{p}");
    let events = journal_events(dir.path(), &id);
    let received: Vec<_> = events.iter().filter(|e| e.name() == "signal.received").collect();
    assert_eq!(received.len(), 2);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
    server.stop();
}

/// The state of [`chain_program`].
#[derive(Default)]
struct ChainState {
    approve: OnceLock<Approval>,
    steps: [OnceLock<Value>; 3],
}

/// A parallel block: `approve` waits while `a1`, `a2`, `a3` run one after
/// another (`agent`, each call 400 ms) in the other branch.
fn chain_program(agent: &Arc<MockAgent>) -> Program<Input, ChainState, Value> {
    let approve = WaitStep::new(
        "approve",
        "approval",
        json!({"type": "object", "required": ["approved", "by"],
               "properties": {"approved": {"type": "boolean"}, "by": {"type": "string"}}}),
        |s: &ChainState, p: Approval| store(&s.approve, "approve", p),
    )
    .node();
    let chain: Vec<_> = (0..3)
        .map(|i| {
            AgentStep::new(
                format!("a{}", i + 1),
                agent.clone(),
                |_: &ChainState| Ok(json!({})),
                move |s: &ChainState, out| store(&s.steps[i], "a", out),
            )
            .node()
        })
        .collect();
    let workflow = Workflow::with_registry(
        WorkflowInfo::new("chain", "1.0.0", "sha256:chain"),
        Node::sequence(vec![Node::parallel("both", true, vec![approve, Node::sequence(chain)])]),
        |s: &ChainState| Ok(json!({"by": slot(&s.approve, "approve")?.by})),
        &BreakerRegistry::new(16),
    );
    Program::new(Arc::new(workflow), |_: Input, _: &ExecutionIds| ChainState::default())
}

/// A server stopped while an execution waits lets the steps in flight end
/// but starts no new one: the execution is suspended within the shutdown's
/// grace, not cancelled for good once a chain of steps outlasts it, and the
/// next server runs the rest.
#[test]
fn a_stop_while_waiting_starts_no_new_step() {
    use orchestr8_runtime::testing::Reply;
    let dir = tempfile::tempdir().unwrap();
    let agent = Arc::new(
        MockAgent::new("slow", "1.0.0").reply(Reply::ok(json!({"ok": true})).after(Duration::from_millis(400))),
    );
    let server = Server::start(chain_program(&agent), dir.path(), &["--shutdown-timeout", "1s"]);
    let started = server.post("/workflows/execute", &json!({"input": {}}));
    assert_eq!(started.status, 202, "{}", started.text());
    let id = id_of(&started.json());
    server.poll(&format!("/executions/{id}"), |v| v["steps"]["approve"] == "waiting");
    let (code, lines) = server.stop();
    assert_eq!(code, 0, "{lines:?}");
    let events = journal_events(dir.path(), &id);
    let names = names(&events);
    assert_eq!(names.last().map(String::as_str), Some("execution.suspended"), "{names:?}");
    assert!(!names.contains(&"step.started:a3".to_owned()), "no step starts once the server stops: {names:?}");

    let server = Server::start(chain_program(&agent), dir.path(), &[]);
    server.poll(&format!("/executions/{id}"), |v| v["status"] == "waiting");
    let ok = post_signal(&server, &id, "approve", br#"{"approved": true, "by": "ann"}"#);
    assert_eq!(ok.status, 202, "{}", ok.text());
    let done = server.poll(&format!("/executions/{id}"), |v| v["status"] == "completed");
    assert_eq!(done["output"], json!({"by": "ann"}));
    assert_eq!(agent.calls(), 3, "each step ran once");
    server.stop();
}

/// A server stopped while an execution waits and one of its steps outlasts
/// the shutdown's grace leaves the execution suspended, not cancelled: the
/// next server runs that step again and the wait still takes its signal.
#[test]
fn a_step_that_outlasts_the_stop_leaves_the_waiting_execution_suspended() {
    use orchestr8_runtime::testing::Reply;
    let dir = tempfile::tempdir().unwrap();
    let slow =
        Arc::new(MockAgent::new("slow", "1.0.0").reply(Reply::ok(json!({"ok": true})).after(Duration::from_secs(3))));
    let server = Server::start(chain_program(&slow), dir.path(), &["--shutdown-timeout", "500ms"]);
    let started = server.post("/workflows/execute", &json!({"input": {}}));
    assert_eq!(started.status, 202, "{}", started.text());
    let id = id_of(&started.json());
    server.poll(&format!("/executions/{id}"), |v| v["steps"]["approve"] == "waiting");
    let (_, lines) = server.stop();
    assert!(lines.iter().any(|l| l.contains("1 waiting executions suspended")), "{lines:?}");
    let stopped = names(&journal_events(dir.path(), &id));
    assert_eq!(stopped.last().map(String::as_str), Some("execution.suspended"), "{stopped:?}");

    let fast = Arc::new(MockAgent::new("slow", "1.0.0").then_ok(json!({"ok": true})));
    let server = Server::start(chain_program(&fast), dir.path(), &[]);
    server.poll(&format!("/executions/{id}"), |v| v["status"] == "waiting");
    let ok = post_signal(&server, &id, "approve", br#"{"approved": true, "by": "ann"}"#);
    assert_eq!(ok.status, 202, "{}", ok.text());
    let done = server.poll(&format!("/executions/{id}"), |v| v["status"] == "completed");
    assert_eq!(done["output"], json!({"by": "ann"}));
    assert_eq!(fast.calls(), 3, "a1 ran again, then a2 and a3");
    let events = journal_events(dir.path(), &id);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "{:?}", names(&events));
    }
    server.stop();
}

/// A run whose wait suspended while another branch failed the block ends
/// `failed` with the wait journaled cancelled (as `serve` has it), not left
/// `waiting` in an execution that has ended.
#[test]
fn a_failure_beside_a_suspended_wait_ends_the_wait_too() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Arc::new(MockAgent::new("slow", "1.0.0").then_fatal("boom"));
    let args: Vec<OsString> = vec!["chain".into(), "--journal-dir".into(), dir.path().into()];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = chain_program(&agent).run_with(args, &b""[..], &mut out, &mut err);
    assert_eq!(code, 1, "{}", String::from_utf8_lossy(&err));
    let (_, events) = only_journal(dir.path());
    let names = names(&events);
    assert_eq!(names.last().map(String::as_str), Some("execution.failed"), "{names:?}");
    let approve: Vec<_> = events.iter().filter(|e| e.step_id.as_deref() == Some("approve")).collect();
    let last = approve.last().unwrap();
    assert_eq!(last.name(), "step.cancelled", "{names:?}");
    assert_eq!(last.state.map(|s| format!("{s:?}")), Some("Cancelled".into()));
    let status = orchestr8_runtime::journal::Snapshot::from_events(&events);
    assert_eq!(status.steps["approve"], orchestr8_runtime::StepState::Cancelled);
}

/// Executions that only wait for signals (a person's approval may take
/// days) do not count against `--max-running`: they hold no agent, and
/// counting them would refuse every new execution while approvals pend.
#[test]
fn waiting_executions_do_not_count_as_running() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Arc::new(MockAgent::new("fast", "1.0.0").reply(orchestr8_runtime::testing::Reply::ok(json!({}))));
    let server = Server::start(chain_program(&agent), dir.path(), &["--max-running", "1"]);
    let first = server.post("/workflows/execute", &json!({"input": {}}));
    assert_eq!(first.status, 202, "{}", first.text());
    let first = id_of(&first.json());
    server.poll(&format!("/executions/{first}"), |v| v["status"] == "waiting");
    let second = server.post("/workflows/execute", &json!({"input": {}}));
    assert_eq!(second.status, 202, "{}", second.text());
    let second = id_of(&second.json());
    server.poll(&format!("/executions/{second}"), |v| v["status"] == "waiting");
    for id in [&first, &second] {
        let ok = post_signal(&server, id, "approve", br#"{"approved": true, "by": "ann"}"#);
        assert_eq!(ok.status, 202, "{}", ok.text());
        server.poll(&format!("/executions/{id}"), |v| v["status"] == "completed");
    }
    server.stop();
}

/// A signal to a wait whose timeout the journal already holds says that
/// the wait has ended, not that `resume` would record its timeout.
#[test]
fn a_signal_to_a_wait_that_timed_out_says_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let a = agents();
    let timeout = Some(Duration::from_millis(50));
    assert_eq!(run(program(&a, timeout, true), dir.path(), &[]).code, 3);
    let (id, _) = only_journal(dir.path());
    std::thread::sleep(Duration::from_millis(80));
    // The timeout is journaled; `approve` still waits.
    let resumed = run(program(&a, timeout, true), dir.path(), &["resume", &id]);
    assert_eq!(resumed.code, 3, "{}", resumed.stderr);
    let late = run(program(&a, timeout, true), dir.path(), &["signal", &id, "legal", "--data", r#"{"ok": true}"#]);
    assert_eq!(late.code, 2, "{}", late.stderr);
    assert!(!late.stderr.contains("records the timeout"), "{}", late.stderr);
    assert!(late.stderr.contains("step `legal` of execution"), "{}", late.stderr);
    assert!(late.stderr.contains("no longer waits"), "{}", late.stderr);
    assert!(late.stderr.contains("the steps waiting now: approve"), "{}", late.stderr);
}

/// A payload the mailbox took (`deliver` said yes: a 202 in `serve`) as the
/// wait's timeout ended it is the step's output, never lost: signals are
/// sent around the deadline, many times over, from another thread.
#[test]
fn a_signal_taken_at_the_timeout_is_not_lost() {
    use orchestr8_runtime::{ExecutionOptions, Mailbox, MemoryStore, Runtime};
    #[derive(Default)]
    struct One {
        approve: OnceLock<Approval>,
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let wait = WaitStep::new(
        "approve",
        "approval",
        json!({"type": "object", "required": ["approved", "by"],
               "properties": {"approved": {"type": "boolean"}, "by": {"type": "string"}}}),
        |s: &One, p: Approval| store(&s.approve, "approve", p),
    )
    .timeout(Duration::from_millis(1))
    .on_error(OnError::Continue);
    let workflow = Workflow::with_registry(
        WorkflowInfo::new("race", "1.0.0", "sha256:race"),
        Node::sequence(vec![wait.node()]),
        |s: &One| Ok(s.approve.get().is_some()),
        &BreakerRegistry::new(4),
    );
    let runtime = Runtime::new(MemoryStore::new());
    let mut lost = 0;
    let runs = 5000u64;
    for i in 0..runs {
        let mailbox = Arc::new(Mailbox::new());
        let m = mailbox.clone();
        // Set once the run has ended: a wait that timed out before the sender
        // saw it waiting (a loaded machine) must not leave the sender spinning.
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let over = ended.clone();
        let sender = std::thread::spawn(move || {
            while !m.is_waiting("approve") {
                if over.load(std::sync::atomic::Ordering::Acquire) {
                    return false;
                }
                std::hint::spin_loop();
            }
            // Spread over the deadline (1 ms, on a timer of 1 ms ticks).
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_micros(500 + (i * 7919) % 2000) {
                std::hint::spin_loop();
            }
            m.deliver("approve", json!({"approved": true, "by": "ann"})).is_ok()
        });
        let opts = ExecutionOptions { mailbox: Some(mailbox), ..ExecutionOptions::default() };
        let state = One::default();
        let took = rt.block_on(runtime.run(&workflow, &state, opts)).unwrap().unwrap();
        ended.store(true, std::sync::atomic::Ordering::Release);
        let delivered = sender.join().unwrap();
        if delivered && !took {
            lost += 1;
        }
        assert!(!took || delivered, "run {i}: an output without a delivery");
    }
    assert_eq!(lost, 0, "of {runs} runs, signals taken but lost to the timeout");
}

/// `POST /executions/{id}/signals/{step}` with `body` as JSON.
fn post_signal(server: &Server, id: &str, step: &str, body: &[u8]) -> common::http::Resp {
    let path = format!("/executions/{id}/signals/{step}");
    common::http::request(&server.addr, "POST", &path, &[("Content-Type", "application/json")], body)
}
