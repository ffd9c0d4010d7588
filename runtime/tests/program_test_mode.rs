//! `BINARY --test FILE` driven through `Program::run_with`, and the
//! executor's step mocks on their own. A two-step workflow (`fetch`, then
//! `classify` with a typed output) over scripted agents that count their
//! calls; everything runs on paused tokio time, nothing waits on real time.

use std::ffi::OsString;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orchestr8_runtime::codegen::{
    slot, store, AgentStep, BreakerRegistry, ExecutionIds, ExecutionOptions, MemoryStore, MockReply, MockStep, Node,
    Program, Runtime, StepMocks, Workflow, WorkflowInfo,
};
use orchestr8_runtime::journal::EventKind;
use orchestr8_runtime::policy::{CircuitBreakerPolicy, Policy, RetryPolicy};
use orchestr8_runtime::testing::{step_event_names, MockAgent};
use orchestr8_runtime::ErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Input {
    ticket_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Class {
    category: String,
}

struct State {
    input: Input,
    fetch: OnceLock<Value>,
    classify: OnceLock<Class>,
}

type Fetch = MockAgent<Value, Value>;
type Classify = MockAgent<Value, Class>;

/// Real agents: `fetch` answers `{"body": "hello"}`, `classify` `general`.
fn agents() -> (Arc<Fetch>, Arc<Classify>) {
    (
        Arc::new(MockAgent::new("fetch_ticket", "1.0.0").then_ok(json!({"body": "hello"}))),
        Arc::new(MockAgent::new("classify", "1.0.0").then_ok(Class { category: "general".into() })),
    )
}

/// 60 s step timeout, 3 attempts 100 ms apart, a breaker that opens after 3 failures.
fn policy() -> Policy {
    Policy {
        timeout: Duration::from_secs(60),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(100),
            jitter: false,
            ..RetryPolicy::default()
        },
        circuit_breaker: CircuitBreakerPolicy { failure_threshold: 3, ..CircuitBreakerPolicy::default() },
        attempt_timeout: None,
        cancel_grace: orchestr8_runtime::policy::DEFAULT_CANCEL_GRACE,
    }
}

/// `triage` 0.1.0: `fetch` then `classify`; the output is
/// `{"body", "category", "ticket"}`. Breakers come from the global registry,
/// as in generated code.
fn workflow(fetch: Arc<Fetch>, classify: Arc<Classify>) -> Workflow<State, Value> {
    let fetch = AgentStep::new(
        "fetch",
        fetch,
        |s: &State| Ok(json!({"id": s.input.ticket_id})),
        |s: &State, out| store(&s.fetch, "fetch", out),
    )
    .policy(policy())
    .node();
    let classify = AgentStep::new(
        "classify",
        classify,
        |s: &State| Ok(slot(&s.fetch, "fetch")?.clone()),
        |s: &State, out| store(&s.classify, "classify", out),
    )
    .policy(policy())
    .node();
    Workflow::new(
        WorkflowInfo::new("triage", "0.1.0", "sha256:0"),
        Node::sequence(vec![fetch, classify]),
        |s: &State| {
            Ok(json!({
                "body": slot(&s.fetch, "fetch")?["body"],
                "category": slot(&s.classify, "classify")?.category,
                "ticket": s.input.ticket_id,
            }))
        },
    )
}

fn new_state(input: Input) -> State {
    State { input, fetch: OnceLock::new(), classify: OnceLock::new() }
}

fn program(fetch: Arc<Fetch>, classify: Arc<Classify>) -> Program<Input, State, Value> {
    Program::new(Arc::new(workflow(fetch, classify)), |input: Input, _: &ExecutionIds| new_state(input))
}

struct Run {
    code: u8,
    stdout: String,
    stderr: String,
}

fn run_args(program: Program<Input, State, Value>, args: &[&str], stdin: &str) -> Run {
    let args = std::iter::once("triage").chain(args.iter().copied()).map(OsString::from).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = program.run_with(args, stdin.as_bytes(), &mut out, &mut err);
    Run { code, stdout: String::from_utf8(out).unwrap(), stderr: String::from_utf8(err).unwrap() }
}

/// Runs `--test` on a file holding `file`, with fresh real agents.
fn run_file(file: &str) -> Run {
    let (fetch, classify) = agents();
    run_with_agents(file, fetch, classify)
}

fn run_with_agents(file: &str, fetch: Arc<Fetch>, classify: Arc<Classify>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workflow.test.json");
    std::fs::write(&path, file).unwrap();
    let run = run_args(program(fetch, classify), &["--test", path.to_str().unwrap()], "");
    // Nothing but the test file in the folder: no journal written.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    run
}

fn cases(cases: Value) -> String {
    json!({ "cases": cases }).to_string()
}

const OK_OUTPUT: &str = r#"{"body": "hello", "category": "general", "ticket": "T-1"}"#;

#[test]
fn a_passing_case_calls_the_unmocked_step_s_real_agent() {
    let (fetch, classify) = agents();
    let file = cases(json!([{
        "name": "billing ticket",
        "input": {"ticketId": "T-1"},
        "mocks": {"fetch": {"output": {"body": "mocked"}}},
        "expect": {
            "output": {"body": "mocked", "category": "general", "ticket": "T-1"},
            "steps": ["fetch", "classify"],
            "attempts": {"fetch": 1, "classify": 1}
        }
    }]));
    let run = run_with_agents(&file, fetch.clone(), classify.clone());
    assert_eq!(run.stdout, "case billing ticket ... ok\n1 passed, 0 failed\n");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    assert_eq!(fetch.calls(), 0, "a mocked step does not call its agent");
    assert_eq!(classify.calls(), 1, "an unmocked step calls the real agent");
}

#[test]
fn a_wrong_output_shows_a_line_diff() {
    let file = cases(json!([
        {"name": "right", "input": {"ticketId": "T-1"}, "expect": {"output": serde_json::from_str::<Value>(OK_OUTPUT).unwrap()}},
        {"name": "wrong", "input": {"ticketId": "T-1"},
         "expect": {"output": {"body": "hello", "category": "billing", "ticket": "T-1"}}}
    ]));
    let run = run_file(&file);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        "case right ... ok\n\
         case wrong ... FAILED\n    \
         output differs (- expected, + actual):\n      \
         {\n        \
         \"body\": \"hello\",\n    \
         -   \"category\": \"billing\",\n    \
         +   \"category\": \"general\",\n        \
         \"ticket\": \"T-1\"\n      \
         }\n\
         1 passed, 1 failed\n"
    );
}

#[test]
fn numbers_compare_by_value() {
    let file = cases(json!([{
        "name": "floats",
        "input": {"ticketId": "T-1"},
        "mocks": {"fetch": {"output": {"body": 3}}},
        "expect": {"output": {"body": 3.0, "category": "general", "ticket": "T-1"}}
    }]));
    let run = run_file(&file);
    assert_eq!(run.stdout, "case floats ... ok\n1 passed, 0 failed\n");
}

#[test]
fn error_kind_and_step_expectations() {
    let fatal = json!({"fetch": {"fatal": "no such ticket"}});
    let file = cases(json!([
        {"name": "fatal", "input": {"ticketId": "T-1"}, "mocks": fatal,
         "expect": {"error": {"kind": "fatal", "step": "fetch"}, "steps": [], "attempts": {"fetch": 1, "classify": 0}}},
        {"name": "kind only", "input": {"ticketId": "T-1"}, "mocks": fatal, "expect": {"error": {"kind": "fatal"}}},
        {"name": "wrong kind", "input": {"ticketId": "T-1"}, "mocks": fatal,
         "expect": {"error": {"kind": "timeout", "step": "classify"}}},
        {"name": "wanted an error", "input": {"ticketId": "T-1"}, "expect": {"error": {"kind": "fatal"}}},
        {"name": "wanted an output", "input": {"ticketId": "T-1"}, "mocks": fatal, "expect": {"output": {}}},
        {"name": "wanted completion", "input": {"ticketId": "T-1"}, "mocks": fatal, "expect": {}}
    ]));
    let run = run_file(&file);
    assert_eq!(run.code, 1);
    let want = "\
case fatal ... ok
case kind only ... ok
case wrong kind ... FAILED
    error kind: expected `timeout`, got `fatal` (step `fetch` failed (fatal, attempt 1): no such ticket)
    error step: expected `classify`, got `fetch`
case wanted an error ... FAILED
    expected error `fatal`, but the execution completed with output {\"body\":\"hello\",\"category\":\"general\",\"ticket\":\"T-1\"}
case wanted an output ... FAILED
    expected an output, but the execution failed: step `fetch` failed (fatal, attempt 1): no such ticket
case wanted completion ... FAILED
    expected the execution to complete, but it failed: step `fetch` failed (fatal, attempt 1): no such ticket
2 passed, 4 failed
";
    assert_eq!(run.stdout, want);
}

/// `expect.skipped`: the steps journaled `step.skipped`, in any order.
#[test]
fn skipped_expectations() {
    let fatal = json!({"fetch": {"fatal": "no such ticket"}});
    let file = cases(json!([
        {"name": "after a failure", "input": {"ticketId": "T-1"}, "mocks": fatal,
         "expect": {"error": {"kind": "fatal"}, "skipped": ["classify"]}},
        {"name": "none skipped", "input": {"ticketId": "T-1"}, "expect": {"skipped": []}},
        {"name": "wrongly expected", "input": {"ticketId": "T-1"}, "expect": {"skipped": ["classify"]}},
        {"name": "missed", "input": {"ticketId": "T-1"}, "mocks": fatal, "expect": {"skipped": []}}
    ]));
    let run = run_file(&file);
    assert_eq!(run.code, 1);
    let want = "\
case after a failure ... ok
case none skipped ... ok
case wrongly expected ... FAILED
    skipped: expected [classify], got []
case missed ... FAILED
    expected the execution to complete, but it failed: step `fetch` failed (fatal, attempt 1): no such ticket
    skipped: expected [], got [classify]
2 passed, 2 failed
";
    assert_eq!(run.stdout, want);
    let bad = cases(json!([{"name": "typo", "input": {"ticketId": "T-1"}, "expect": {"skipped": ["clasify"]}}]));
    let run = run_file(&bad);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(run.stderr.contains("the workflow has no step `clasify`"), "{}", run.stderr);
}

#[test]
fn retries_follow_the_mocks_per_attempt() {
    let (fetch, classify) = agents();
    let file = cases(json!([
        {"name": "second attempt", "input": {"ticketId": "T-1"},
         "mocks": {"fetch": {"1": {"error": "boom"}, "2": {"output": {"body": "again"}}}},
         "expect": {"output": {"body": "again", "category": "general", "ticket": "T-1"},
                    "steps": ["fetch", "classify"], "attempts": {"fetch": 2, "classify": 1}}},
        {"name": "a range, then the last entry", "input": {"ticketId": "T-1"},
         "mocks": {"fetch": {"1-2": {"error": "boom"}, "3": {"error": "still"}}},
         "expect": {"error": {"kind": "agent_failed", "step": "fetch"}, "attempts": {"fetch": 3}}},
        {"name": "star", "input": {"ticketId": "T-1"},
         "mocks": {"fetch": {"1": {"error": "boom"}, "*": {"output": {"body": "star"}}}},
         "expect": {"output": {"body": "star", "category": "general", "ticket": "T-1"}, "attempts": {"fetch": 2}}},
        {"name": "counted wrong", "input": {"ticketId": "T-1"},
         "mocks": {"fetch": {"1": {"error": "boom"}, "2": {"output": {"body": "again"}}}},
         "expect": {"attempts": {"fetch": 1}, "steps": ["classify", "fetch"]}}
    ]));
    let run = run_with_agents(&file, fetch.clone(), classify);
    assert_eq!(
        run.stdout,
        "case second attempt ... ok\n\
         case a range, then the last entry ... ok\n\
         case star ... ok\n\
         case counted wrong ... FAILED\n    \
         steps: expected [classify, fetch], got [fetch, classify]\n    \
         attempts of `fetch`: expected 1, got 2\n\
         3 passed, 1 failed\n"
    );
    assert_eq!(fetch.calls(), 0);
}

#[test]
fn a_hang_under_a_60_second_timeout_ends_at_once() {
    // On real time this case would take a minute (and the delayed one 2 s).
    let file = cases(json!([
        {"name": "hang", "input": {"ticketId": "T-1"}, "mocks": {"classify": {"hang": true}},
         "expect": {"error": {"kind": "timeout", "step": "classify"}, "steps": ["fetch"], "attempts": {"classify": 1}}},
        {"name": "slow but in time", "input": {"ticketId": "T-1"},
         "mocks": {"fetch": {"1": {"error": "slow", "delayMs": 2000}, "2": {"output": {"body": "late"}, "delayMs": 500}}},
         "expect": {"output": {"body": "late", "category": "general", "ticket": "T-1"}, "attempts": {"fetch": 2}}}
    ]));
    let run = run_file(&file);
    assert_eq!(run.stdout, "case hang ... ok\ncase slow but in time ... ok\n2 passed, 0 failed\n");
    assert_eq!(run.code, 0);
}

#[test]
fn an_output_that_does_not_fit_is_invalid_output_and_not_retried() {
    let file = cases(json!([{
        "name": "bad mock", "input": {"ticketId": "T-1"},
        "mocks": {"classify": {"output": {"category": 5}}},
        "expect": {"error": {"kind": "invalid_output", "step": "classify"}, "attempts": {"classify": 1}}
    }, {
        "name": "shown", "input": {"ticketId": "T-1"},
        "mocks": {"classify": {"output": {"category": 5}}},
        "expect": {"output": {}}
    }]));
    let run = run_file(&file);
    assert_eq!(run.code, 1);
    assert!(run.stdout.starts_with("case bad mock ... ok\ncase shown ... FAILED\n"), "{}", run.stdout);
    assert!(
        run.stdout.contains(
            "step `classify` failed (invalid_output, attempt 1): the mocked output does not fit the agent's output: \
             invalid type: integer `5`, expected a string"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn each_case_has_its_own_breakers() {
    // Three failures open `fetch`'s breaker; the next case starts closed.
    let file = cases(json!([
        {"name": "opens", "input": {"ticketId": "T-1"}, "mocks": {"fetch": {"error": "down"}},
         "expect": {"error": {"kind": "agent_failed"}, "attempts": {"fetch": 3}}},
        {"name": "closed again", "input": {"ticketId": "T-1"},
         "expect": {"output": serde_json::from_str::<Value>(OK_OUTPUT).unwrap()}}
    ]));
    let run = run_file(&file);
    assert_eq!(run.stdout, "case opens ... ok\ncase closed again ... ok\n2 passed, 0 failed\n");
}

#[test]
fn a_bad_case_input_fails_that_case_only() {
    let file = cases(json!([
        {"name": "no ticket", "input": {}, "expect": {}},
        {"name": "wrong type", "input": {"ticketId": 7}, "expect": {}},
        {"name": "fine", "input": {"ticketId": "T-1"}, "expect": {}}
    ]));
    let run = run_file(&file);
    assert_eq!(
        run.stdout,
        "case no ticket ... FAILED\n    \
         invalid input at /ticketId: missing field `ticketId`\n\
         case wrong type ... FAILED\n    \
         invalid input at /ticketId: invalid type: integer `7`, expected a string\n\
         case fine ... ok\n\
         1 passed, 2 failed\n"
    );
    assert_eq!(run.code, 1);
}

#[test]
fn the_test_file_can_come_from_standard_input() {
    let file = cases(json!([{"name": "stdin", "input": {"ticketId": "T-1"}, "expect": {}}]));
    let (fetch, classify) = agents();
    let run = run_args(program(fetch, classify), &["--test", "-"], &file);
    assert_eq!(run.stdout, "case stdin ... ok\n1 passed, 0 failed\n");
}

#[test]
fn bad_test_files_exit_2_with_a_pointer() {
    let bad = |file: &str| {
        let run = run_file(file);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert_eq!(run.stdout, "");
        run.stderr.trim_end().rsplit_once(" at ").map(|(_, at)| at.to_owned()).unwrap()
    };
    let case = |extra: Value| {
        let mut c = json!({"name": "c", "input": {"ticketId": "T-1"}, "expect": {}});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        cases(json!([c]))
    };
    assert_eq!(bad("{\"cases\": [,]}"), "1:12: expected value");
    assert_eq!(bad("[]"), "the top level: a test file must be an object");
    assert_eq!(bad("{}"), "the top level: missing key `cases`");
    assert_eq!(bad(r#"{"cases": [], "extra": 1}"#).split(':').next(), Some("/extra"));
    assert_eq!(bad(&cases(json!([{"input": {}, "expect": {}}]))), "/cases/0: missing key `name`");
    assert!(bad(&case(json!({"mocks": {"nope": {"output": 1}}})))
        .starts_with("/cases/0/mocks/nope: the workflow has no step `nope`"));
    assert!(bad(&case(json!({"mocks": {"fetch": {"0": {"output": 1}}}})))
        .starts_with("/cases/0/mocks/fetch/0: `0` is not an attempt"));
    assert_eq!(
        bad(&case(json!({"mocks": {"fetch": {"1-3": {"error": "x"}, "2": {"error": "y"}}}}))),
        "/cases/0/mocks/fetch/2: attempts `2` overlap attempts `1-3`"
    );
    assert_eq!(
        bad(&case(json!({"mocks": {"fetch": {"output": 1, "fatal": "x"}}}))),
        "/cases/0/mocks/fetch: a mocked reply has one of `output`, `error`, `fatal` or `hang`, not `output` and `fatal`"
    );
    assert_eq!(
        bad(&case(json!({"mocks": {"fetch": {"hang": false}}}))),
        "/cases/0/mocks/fetch/hang: `hang` must be `true`"
    );
    assert!(bad(&case(json!({"expect": {"error": {"kind": "oops"}}})))
        .starts_with("/cases/0/expect/error/kind: unknown error kind \"oops\""));
    assert_eq!(bad(&case(json!({"expect": {"error": {}}}))), "/cases/0/expect/error: missing key `kind`");
    assert_eq!(
        bad(&case(json!({"expect": {"output": 1, "error": {"kind": "fatal"}}}))),
        "/cases/0/expect: `expect` has `output` or `error`, not both"
    );
    assert!(bad(&case(json!({"expect": {"attempts": {"fetch": -1}}}))).starts_with("/cases/0/expect/attempts/fetch:"));

    let (fetch, classify) = agents();
    let run = run_args(program(fetch, classify), &["--test", "/nonexistent/workflow.test.json"], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with("error: cannot read the test file /nonexistent/workflow.test.json: "),
        "{}",
        run.stderr
    );
    let (fetch, classify) = agents();
    let run = run_args(program(fetch, classify), &["--test", "t.json", "--input", "{}"], "");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with("error: the argument '--test <FILE>' cannot be used with '--input <JSON>'\n"),
        "{}",
        run.stderr
    );
}

/// Mocks for the executor: `fetch` fails on attempt 1, answers after 300 ms on
/// attempt 2, and is left to the real agent from attempt 3; `classify` hangs.
struct Scripted;

impl StepMocks for Scripted {
    fn reply(&self, step_id: &str, attempt: u32) -> Option<MockStep> {
        match (step_id, attempt) {
            ("fetch", 1) => Some(MockReply::Fail("boom".into()).into()),
            ("fetch", 2) => {
                Some(MockStep::new(MockReply::Output(json!({"body": "mocked"}))).after(Duration::from_millis(300)))
            }
            ("classify", _) => Some(MockReply::Hang.into()),
            _ => None,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn executor_mocks_go_through_retry_journal_and_timeout() {
    let (fetch, classify) = agents();
    let wf = workflow(fetch.clone(), classify.clone());
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let opts = ExecutionOptions {
        execution_id: Some("m1".into()),
        mocks: Some(Arc::new(Scripted)),
        breakers: Some(Arc::new(BreakerRegistry::new(4))),
        ..ExecutionOptions::default()
    };
    let state = new_state(Input { ticket_id: "T-1".into() });
    let err = runtime.run(&wf, &state, opts).await.unwrap().unwrap_err();
    assert_eq!((err.kind, err.step.as_deref(), err.attempt), (ErrorKind::Timeout, Some("classify"), 1));
    assert_eq!(state.fetch.get(), Some(&json!({"body": "mocked"})));
    assert_eq!((fetch.calls(), classify.calls()), (0, 0));
    let events = store.events("m1");
    assert_eq!(
        step_event_names(&events, "fetch"),
        [
            "step.started",
            "step.attempt.started",
            "step.attempt.failed",
            "step.retry.scheduled",
            "step.attempt.started",
            "step.succeeded"
        ]
    );
    // The delay is on tokio's (virtual) clock: 100 ms backoff + 300 ms reply.
    let succeeded = events.iter().find(|e| e.event == EventKind::StepSucceeded).unwrap();
    assert_eq!((succeeded.attempt, succeeded.duration_ms), (Some(2), Some(400)));
    assert_eq!(
        step_event_names(&events, "classify"),
        ["step.started", "step.attempt.started", "step.attempt.failed", "step.failed"]
    );
}

struct FetchFailsTwice;

impl StepMocks for FetchFailsTwice {
    fn reply(&self, step_id: &str, attempt: u32) -> Option<MockStep> {
        (step_id == "fetch" && attempt < 3).then(|| MockReply::Fail("boom".into()).into())
    }
}

#[tokio::test(start_paused = true)]
async fn executor_calls_the_agent_for_attempts_without_a_mock() {
    let (fetch, classify) = agents();
    let wf = workflow(fetch.clone(), classify.clone());
    let opts = ExecutionOptions {
        mocks: Some(Arc::new(FetchFailsTwice)),
        breakers: Some(Arc::new(BreakerRegistry::new(4))),
        ..ExecutionOptions::default()
    };
    let state = new_state(Input { ticket_id: "T-1".into() });
    let out = Runtime::default().run(&wf, &state, opts).await.unwrap().unwrap();
    assert_eq!(out, serde_json::from_str::<Value>(OK_OUTPUT).unwrap());
    let log = fetch.call_log();
    assert_eq!(log.iter().map(|c| c.attempt).collect::<Vec<_>>(), [3], "only attempt 3 reached the agent");
    assert_eq!(classify.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn executor_hang_ends_on_cancellation() {
    let (fetch, classify) = agents();
    let wf = Arc::new(workflow(fetch, classify));
    let runtime = Runtime::default();
    let opts = ExecutionOptions { mocks: Some(Arc::new(Scripted)), ..ExecutionOptions::default() };
    let handle = runtime.start(wf, new_state(Input { ticket_id: "T-1".into() }), opts).unwrap();
    // Past fetch (about 400 ms), into classify's hang.
    tokio::time::sleep(Duration::from_secs(5)).await;
    handle.cancel();
    let err = handle.wait().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled);
}
