//! The `switch` node on virtual time: each branch of an enum, the default,
//! the journal's `step.skipped` with its reason, the switch's output, a
//! selector failure, cancellation, and resuming inside a taken branch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use orchestr8_runtime::codegen::{slot, store};
use orchestr8_runtime::journal::{EventKind, JournalEvent};
use orchestr8_runtime::policy::Policy;
use orchestr8_runtime::testing::assert_well_formed;
use orchestr8_runtime::{
    Agent, AgentContext, AgentError, AgentStep, BreakerRegistry, ErrorKind, ExecutionOptions, JournalStore,
    MemoryStore, Node, Resume, Runtime, Switch, Workflow, WorkflowInfo,
};
use serde_json::{json, Value};
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);

const STEPS: [&str; 6] = ["classify", "refund", "file_bug", "notify", "escalate", "reply"];

struct State {
    category: String,
    out: HashMap<&'static str, OnceLock<Value>>,
    route: OnceLock<Value>,
}

fn state(category: &str) -> State {
    State {
        category: category.into(),
        out: STEPS.iter().map(|s| (*s, OnceLock::new())).collect(),
        route: OnceLock::new(),
    }
}

/// Every call by step; a step to hang in (the process "dies" there).
#[derive(Default)]
struct Calls {
    log: Mutex<Vec<String>>,
    hang_in: Mutex<Option<String>>,
}

impl Calls {
    fn steps(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

/// Takes one virtual second and answers `{"step": STEP, "input": INPUT}`.
struct Echo(Arc<Calls>);

impl Agent for Echo {
    type Input = Value;
    type Output = Value;
    fn id(&self) -> &str {
        "echo"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, ctx: &AgentContext<'_>, input: Value) -> Result<Value, AgentError> {
        let step = ctx.step_id().to_owned();
        self.0.log.lock().unwrap().push(step.clone());
        if self.0.hang_in.lock().unwrap().as_deref() == Some(step.as_str()) {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(S).await;
        if input["fail"] == true {
            return Err(AgentError::fatal(format!("{step} was told to fail")));
        }
        Ok(json!({"step": step, "input": input}))
    }
}

fn step(calls: &Arc<Calls>, id: &'static str, input: fn(&State) -> Result<Value, String>) -> Node<State> {
    // Long enough for a hang to outlast the test's crash timeout.
    let policy = Policy { timeout: Duration::from_secs(7200), ..Policy::default() };
    AgentStep::new(id, Arc::new(Echo(calls.clone())), input, move |s: &State, out| store(&s.out[id], id, out))
        .policy(policy)
        .node()
}

/// classify; switch route on the category: "billing" [refund], "bug"
/// [file_bug, notify], default [escalate], each with an output; reply reads it.
fn workflow(calls: &Arc<Calls>) -> Workflow<State, Value> {
    let classify = step(calls, "classify", |s| Ok(json!({"category": s.category})));
    let route = Switch::new(
        "route",
        |s: &State| {
            let category = slot(&s.out["classify"], "classify")?["input"]["category"].clone();
            Ok(match category.as_str() {
                Some("billing") => 0,
                Some("bug") => 1,
                Some(_) => 2,
                None => return Err(format!("category {category} is not a string")),
            })
        },
        [
            ("\"billing\"", step(calls, "refund", |_| Ok(json!({})))),
            (
                "\"bug\"",
                Node::sequence([
                    step(calls, "file_bug", |_| Ok(json!({}))),
                    // Reads an earlier step of its own case.
                    step(calls, "notify", |s| Ok(json!({"bug": slot(&s.out["file_bug"], "file_bug")?["step"]}))),
                ]),
            ),
            ("default", step(calls, "escalate", |_| Ok(json!({})))),
        ],
    )
    .output(|s: &State, case| {
        let team = match case {
            0 => json!({"team": "finance", "by": slot(&s.out["refund"], "refund")?["step"]}),
            1 => json!({"team": "engineering", "by": slot(&s.out["notify"], "notify")?["step"]}),
            _ => json!({"team": "support", "by": slot(&s.out["escalate"], "escalate")?["step"]}),
        };
        store(&s.route, "route", team)
    })
    .node();
    let reply = step(calls, "reply", |s| Ok(json!({"route": slot(&s.route, "route")?})));
    Workflow::with_registry(
        WorkflowInfo::new("switching", "1.0.0", "sha256:1"),
        Node::sequence([classify, route, reply]),
        |s: &State| {
            Ok(json!({
                "route": slot(&s.route, "route")?,
                // Steps of a case are optional after the switch.
                "bug": s.out["file_bug"].get().map(|o| o["step"].clone()),
            }))
        },
        &BreakerRegistry::new(8),
    )
}

fn opts(id: &str) -> ExecutionOptions {
    ExecutionOptions { execution_id: Some(id.into()), ..ExecutionOptions::default() }
}

/// `(event, step, reason)` of every step event.
fn step_events(events: &[JournalEvent]) -> Vec<(&'static str, String, Option<String>)> {
    events
        .iter()
        .filter(|e| e.step_id.is_some() && e.event != EventKind::StepAttemptStarted)
        .map(|e| (e.event.as_str(), e.step_id.as_deref().unwrap().to_owned(), e.reason().map(str::to_owned)))
        .collect()
}

fn ev(event: &'static str, step: &str) -> (&'static str, String, Option<String>) {
    (event, step.to_owned(), None)
}

fn skipped(step: &str, reason: &str) -> (&'static str, String, Option<String>) {
    ("step.skipped", step.to_owned(), Some(reason.to_owned()))
}

#[tokio::test(start_paused = true)]
async fn a_switch_takes_each_branch_of_the_enum_and_journals_the_others_skipped_with_the_reason() {
    for (category, ran, team, took) in [
        ("billing", vec!["classify", "refund", "reply"], "finance", "\"billing\""),
        ("bug", vec!["classify", "file_bug", "notify", "reply"], "engineering", "\"bug\""),
    ] {
        let store = MemoryStore::new();
        let runtime = Runtime::new(store.clone());
        let calls = Arc::new(Calls::default());
        let wf = workflow(&calls);
        let t0 = Instant::now();
        let out = runtime.run(&wf, &state(category), opts(category)).await.unwrap().unwrap();
        // One virtual second per step that ran, none for the skipped ones.
        assert_eq!(t0.elapsed(), S * u32::try_from(ran.len()).unwrap(), "{category}");
        assert_eq!(calls.steps(), ran, "{category}");
        assert_eq!(out["route"]["team"], team, "{category}");
        let events = store.events(category);
        assert_well_formed(&events);
        let reason = format!("switch route took case {took}");
        let mut expected = vec![ev("step.started", "classify"), ev("step.succeeded", "classify")];
        match category {
            "billing" => {
                expected.extend([
                    skipped("file_bug", &reason),
                    skipped("notify", &reason),
                    skipped("escalate", &reason),
                    ev("step.started", "refund"),
                    ev("step.succeeded", "refund"),
                ]);
                assert_eq!(out["bug"], Value::Null);
            }
            _ => {
                expected.extend([
                    skipped("refund", &reason),
                    skipped("escalate", &reason),
                    ev("step.started", "file_bug"),
                    ev("step.succeeded", "file_bug"),
                    ev("step.started", "notify"),
                    ev("step.succeeded", "notify"),
                ]);
                assert_eq!(out["bug"], "file_bug");
                let notify =
                    events.iter().find(|e| e.event == EventKind::StepStarted && e.step_id.as_deref() == Some("notify"));
                assert_eq!(notify.unwrap().input.as_deref(), Some(&json!({"bug": "file_bug"})));
            }
        }
        expected.extend([ev("step.started", "reply"), ev("step.succeeded", "reply")]);
        assert_eq!(step_events(&events), expected, "{category}");
        // The switch's output reached the step after it.
        let reply = events.iter().find(|e| e.event == EventKind::StepStarted && e.step_id.as_deref() == Some("reply"));
        assert_eq!(reply.unwrap().input.as_deref().unwrap()["route"]["team"], team);
    }
}

#[tokio::test(start_paused = true)]
async fn a_value_no_case_names_takes_the_default() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let calls = Arc::new(Calls::default());
    let wf = workflow(&calls);
    let out = runtime.run(&wf, &state("question"), opts("e1")).await.unwrap().unwrap();
    assert_eq!(out, json!({"route": {"team": "support", "by": "escalate"}, "bug": null}));
    assert_eq!(calls.steps(), ["classify", "escalate", "reply"]);
    let reason = "switch route took case default";
    let events = store.events("e1");
    let skips: Vec<_> = step_events(&events).into_iter().filter(|e| e.0 == "step.skipped").collect();
    assert_eq!(skips, [skipped("refund", reason), skipped("file_bug", reason), skipped("notify", reason)]);
    let snap = store.read("e1").unwrap().snapshot();
    assert_eq!(snap.steps["refund"], orchestr8_runtime::StepState::Skipped);
    assert_eq!(snap.steps["escalate"], orchestr8_runtime::StepState::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn a_selector_error_fails_the_switch_and_skips_every_branch() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let calls = Arc::new(Calls::default());
    let wf_bad = Workflow::with_registry(
        WorkflowInfo::new("bad", "1.0.0", "sha256:2"),
        Node::sequence([Switch::new(
            "route",
            |_: &State| Err("no category".to_owned()),
            [
                ("\"billing\"", step(&calls, "refund", |_| Ok(json!({})))),
                ("default", step(&calls, "escalate", |_| Ok(json!({})))),
            ],
        )
        .node()]),
        |_: &State| Ok(Value::Null),
        &BreakerRegistry::new(8),
    );
    let err = runtime.run(&wf_bad, &state("billing"), opts("e2")).await.unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert_eq!(err.step.as_deref(), Some("route"));
    assert!(calls.steps().is_empty());
    let events = store.events("e2");
    assert_eq!(
        step_events(&events),
        [
            skipped("refund", "switch route failed: no category"),
            skipped("escalate", "switch route failed: no category"),
        ]
    );
    assert_eq!(events.last().unwrap().event, EventKind::ExecutionFailed);
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_execution_skips_the_switch_without_a_reason() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let calls = Arc::new(Calls::default());
    let wf = Arc::new(workflow(&calls));
    let handle = runtime.start(wf, state("bug"), opts("e3")).unwrap();
    // classify takes one second: cancel while it runs.
    tokio::time::sleep(S / 2).await;
    handle.cancel();
    let err = handle.wait().await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Cancelled);
    let events = store.events("e3");
    let skips: Vec<_> = step_events(&events).into_iter().filter(|e| e.0 == "step.skipped").collect();
    let names: Vec<&str> = skips.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(names, ["refund", "file_bug", "notify", "escalate", "reply"]);
    assert!(skips.iter().all(|e| e.2.is_none()), "{skips:?}");
}

#[tokio::test(start_paused = true)]
async fn a_resumed_execution_goes_on_in_the_branch_it_took_and_rebuilds_the_output() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let calls = Arc::new(Calls::default());
    // Dies in `notify`, the second step of the "bug" case.
    *calls.hang_in.lock().unwrap() = Some("notify".into());
    let wf = workflow(&calls);
    let s = state("bug");
    let run = runtime.run(&wf, &s, opts("e4"));
    assert!(tokio::time::timeout(Duration::from_secs(3600), run).await.is_err());
    *calls.hang_in.lock().unwrap() = None;
    let before = store.events("e4").len();

    let point = Resume::from_journal(&runtime.store().read("e4").unwrap()).unwrap();
    let s = state("bug");
    let exec = runtime.resume(&wf, &s, &point, ExecutionOptions::default()).unwrap();
    let out = exec.run(&wf, &s).await.unwrap();
    assert_eq!(out["route"], json!({"team": "engineering", "by": "notify"}));
    assert_eq!(calls.steps(), ["classify", "file_bug", "notify", "notify", "reply"]);
    let events = store.events("e4");
    assert_well_formed(&events);
    // The skips were journaled before the crash, and not again.
    let after: Vec<_> = step_events(&events[before..]);
    assert!(after.iter().all(|e| e.0 != "step.skipped"), "{after:?}");

    // Resumed once more after the switch ended: its output comes back from
    // the journal without running a step of it again.
    let store2 = MemoryStore::new();
    let runtime2 = Runtime::new(store2.clone());
    let calls2 = Arc::new(Calls::default());
    *calls2.hang_in.lock().unwrap() = Some("reply".into());
    let wf2 = workflow(&calls2);
    let s2 = state("billing");
    let run = runtime2.run(&wf2, &s2, opts("e5"));
    assert!(tokio::time::timeout(Duration::from_secs(3600), run).await.is_err());
    *calls2.hang_in.lock().unwrap() = None;
    let point = Resume::from_journal(&runtime2.store().read("e5").unwrap()).unwrap();
    let s2 = state("billing");
    let exec = runtime2.resume(&wf2, &s2, &point, ExecutionOptions::default()).unwrap();
    let out = exec.run(&wf2, &s2).await.unwrap();
    assert_eq!(out["route"], json!({"team": "finance", "by": "refund"}));
    assert_eq!(calls2.steps(), ["classify", "refund", "reply", "reply"]);
}

/// A failing step in the taken case fails the switch like a sequence: the
/// rest of its case and the steps after the switch are skipped, without a
/// reason; the cases not taken keep theirs.
#[tokio::test(start_paused = true)]
async fn a_failure_in_the_taken_case_fails_the_switch_and_skips_what_follows() {
    let store = MemoryStore::new();
    let runtime = Runtime::new(store.clone());
    let calls = Arc::new(Calls::default());
    let fail = |_: &State| Ok(json!({"fail": true}));
    let ok = |_: &State| Ok(json!({}));
    let wf = Workflow::with_registry(
        WorkflowInfo::new("failing", "1.0.0", "sha256:3"),
        Node::sequence([
            Switch::new(
                "route",
                |_: &State| Ok(1),
                [
                    ("\"billing\"", step(&calls, "refund", ok)),
                    ("\"bug\"", Node::sequence([step(&calls, "file_bug", fail), step(&calls, "notify", ok)])),
                    // An empty branch: nothing to skip.
                    ("default", Node::sequence([])),
                ],
            )
            .node(),
            step(&calls, "reply", ok),
        ]),
        |_: &State| Ok(Value::Null),
        &BreakerRegistry::new(8),
    );
    let err = runtime.run(&wf, &state("bug"), opts("e6")).await.unwrap().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Fatal);
    assert_eq!(err.step.as_deref(), Some("file_bug"));
    assert_eq!(calls.steps(), ["file_bug"]);
    let events = store.events("e6");
    assert_well_formed(&events);
    assert_eq!(
        step_events(&events),
        [
            skipped("refund", "switch route took case \"bug\""),
            ev("step.started", "file_bug"),
            ev("step.attempt.failed", "file_bug"),
            ev("step.failed", "file_bug"),
            ev("step.skipped", "notify"),
            ev("step.skipped", "reply"),
        ]
    );
}

mod waiting {
    //! A wait in a switch's case: the run suspends inside the case, a signal
    //! resumes it, and the cases not taken are journaled skipped once.

    use std::ffi::OsString;
    use std::sync::{Arc, OnceLock};

    use orchestr8_runtime::codegen::{store, AgentStep, BreakerRegistry, ExecutionIds, Node, Program, WaitStep};
    use orchestr8_runtime::journal::read_file;
    use orchestr8_runtime::testing::MockAgent;
    use orchestr8_runtime::{Switch, Workflow, WorkflowInfo};
    use serde::{Deserialize, Serialize};
    use serde_json::{json, Value};

    #[derive(Debug, Serialize, Deserialize)]
    struct Input {
        route: String,
    }

    struct State {
        route: String,
        sign_off: OnceLock<Value>,
        escalate: OnceLock<Value>,
    }

    fn program(escalate: &Arc<MockAgent>) -> Program<Input, State, Value> {
        let sign_off = WaitStep::new(
            "sign_off",
            "approval",
            json!({"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}),
            |s: &State, p: Value| store(&s.sign_off, "sign_off", p),
        )
        .node();
        let escalate = AgentStep::new(
            "escalate",
            escalate.clone(),
            |_: &State| Ok(json!({})),
            |s: &State, out| store(&s.escalate, "escalate", out),
        )
        .node();
        let route = Switch::new(
            "route",
            |s: &State| Ok(usize::from(s.route != "approve")),
            [("\"approve\"", sign_off), ("default", escalate)],
        )
        .node();
        let workflow = Workflow::with_registry(
            WorkflowInfo::new("gated", "1.0.0", "sha256:gate"),
            Node::sequence([route]),
            |s: &State| Ok(json!({"signOff": s.sign_off.get(), "escalated": s.escalate.get().is_some()})),
            &BreakerRegistry::new(8),
        );
        Program::new(Arc::new(workflow), |i: Input, _: &ExecutionIds| State {
            route: i.route,
            sign_off: OnceLock::new(),
            escalate: OnceLock::new(),
        })
    }

    fn run(program: Program<Input, State, Value>, args: &[&str]) -> (u8, String, String) {
        let args: Vec<OsString> = std::iter::once("gated").chain(args.iter().copied()).map(OsString::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = program.run_with(args, &b""[..], &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    #[test]
    fn a_wait_in_the_taken_case_suspends_and_a_signal_finishes_the_switch() {
        let dir = tempfile::tempdir().unwrap();
        let journals = dir.path().to_str().unwrap();
        let escalate = Arc::new(MockAgent::new("escalator", "1.0.0").then_ok(json!({"to": "boss"})));
        let (code, _, err) =
            run(program(&escalate), &["--input", r#"{"route": "approve"}"#, "--journal-dir", journals]);
        assert_eq!(code, 3, "suspended: {err}");
        let file = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let id = file.file_stem().unwrap().to_str().unwrap().to_owned();

        let signal = ["signal", id.as_str(), "sign_off", "--data", r#"{"ok": true}"#, "--journal-dir", journals];
        let (code, out, err) = run(program(&escalate), &signal);
        assert_eq!(code, 0, "{err}");
        let out: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(out, json!({"signOff": {"ok": true}, "escalated": false}));
        assert_eq!(escalate.calls(), 0);
        let events = read_file(&file).unwrap().events;
        let skips: Vec<_> = events.iter().filter(|e| e.name() == "step.skipped").collect();
        assert_eq!(skips.len(), 1, "skipped once, not again on the resume: {events:?}");
        assert_eq!(skips[0].step_id.as_deref(), Some("escalate"));
        assert_eq!(skips[0].reason(), Some("switch route took case \"approve\""));
        assert_eq!(events.last().unwrap().name(), "execution.completed");
    }
}
