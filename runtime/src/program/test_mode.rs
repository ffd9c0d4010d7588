//! `BINARY --test FILE`: the cases of a workflow test file, each run in
//! process on paused tokio time with its steps mocked per attempt, its own
//! in-memory journal and its own circuit breakers.
//!
//! ```json
//! { "cases": [ {
//!     "name": "billing ticket",
//!     "input": { "ticketId": "T-1" },
//!     "mocks": {
//!       "fetch": { "1": { "error": "boom" }, "2-3": { "output": { "body": "..." } } },
//!       "classify": { "output": { "category": "billing" }, "delayMs": 500 },
//!       "slow": { "hang": true }, "x": { "fatal": "no" }
//!     },
//!     "signals": { "approve": { "payload": { "approved": true }, "atMs": 3600000 } },
//!     "expect": {
//!       "output": { "...": "..." },
//!       "steps": ["fetch", "classify"],
//!       "attempts": { "fetch": 2 }
//!     }
//! } ] }
//! ```
//!
//! `signals` sends each wait step its payload (checked like `PROGRAM signal`'s
//! when the file is read) at `atMs` of virtual time from the start (default
//! 0), or when the step starts to wait if that is later. A wait without a
//! signal times out on virtual time, or, without a timeout, suspends the
//! execution (error kind `suspended`).
//!
//! `expect` holds `output` or `error` (`{"kind", "step"?}`) or neither (the
//! execution must complete, with any output), and optionally
//! `steps` (the steps that succeeded, in order of completion), `skipped`
//! (the steps journaled `step.skipped`, in any order: the cases a switch did
//! not take, the steps after a failure) and `attempts` (calls per step,
//! mocked or not).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    checked_json, describe_error, escape_pointer, one_line, parse_input, pretty, ExecutionIds, Program, Source,
    EXIT_COMPLETED, EXIT_FAILED, EXIT_USAGE,
};
use crate::error::ErrorKind;
use crate::executor::{ExecutionOptions, MockReply, MockStep, Runtime, StepMocks};
use crate::journal::{EventKind, MemoryStore};
use crate::resilience::{BreakerRegistry, DEFAULT_REGISTRY_CAPACITY};
use crate::wait::Mailbox;

/// Lines of unchanged context around each change in an output diff.
const DIFF_CONTEXT: usize = 3;

/// Runs every case of `file`; the report goes to `stdout`, problems with
/// the file itself to `stderr`.
pub(super) fn run<I, S, O>(
    program: &Program<I, S, O>,
    file: &Path,
    stdin: Option<&mut dyn Read>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    if !cfg!(feature = "test-mode") {
        // Paused time needs tokio's test clock, which a production build leaves out.
        let _ = writeln!(
            stderr,
            "error: this program was built without its test mode: build it with `--features test-mode` (`orchestr8 test` does)"
        );
        return EXIT_USAGE;
    }
    let shown = if file.as_os_str() == "-" { "standard input".to_owned() } else { file.display().to_string() };
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        match stdin.map(|s| s.read_to_string(&mut text)) {
            Some(Ok(_)) => Ok(text),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("standard input is a terminal".to_owned()),
        }
    } else {
        std::fs::read_to_string(file).map_err(|e| e.to_string())
    };
    let text = match text {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(stderr, "error: cannot read the test file {shown}: {}", one_line(&e));
            return EXIT_USAGE;
        }
    };
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(
                stderr,
                "error: invalid JSON in the test file {shown} at {}:{}: {}",
                e.line(),
                e.column(),
                one_line(&super::strip_position(&e))
            );
            return EXIT_USAGE;
        }
    };
    let mut steps = Vec::new();
    steps.extend(program.workflow.step_ids().into_iter().map(str::to_owned));
    let waits = program.workflow.wait_steps();
    let check = |step: &str, payload: &Value| -> Option<Result<Value, String>> {
        let wait = program.workflow.waiting(step)?;
        Some(wait.check(payload).map_err(|e| e.to_string()))
    };
    let known = Known { steps: &steps, waits: &waits, check: &check };
    let cases = match parse_file(&doc, &known) {
        Ok(c) => c,
        Err(Invalid { at, msg }) => {
            let at = if at.is_empty() { "the top level".to_owned() } else { at };
            let _ = writeln!(stderr, "error: invalid test file {shown} at {at}: {}", one_line(&msg));
            return EXIT_USAGE;
        }
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut report = String::new();
    for (n, case) in cases.iter().enumerate() {
        let failures = run_case(program, case, n + 1);
        let name = one_line(&case.name);
        if failures.is_empty() {
            passed += 1;
            let _ = writeln!(report, "case {name} ... ok");
        } else {
            failed += 1;
            let _ = writeln!(report, "case {name} ... FAILED");
            for f in &failures {
                for line in f.lines() {
                    let _ = writeln!(report, "    {line}");
                }
            }
        }
        // Written case by case, so a long run shows progress.
        if stdout.write_all(report.as_bytes()).and_then(|()| stdout.flush()).is_err() {
            let _ = writeln!(stderr, "error: cannot write to standard output");
            return EXIT_FAILED;
        }
        report.clear();
    }
    let _ = writeln!(stdout, "{passed} passed, {failed} failed");
    let _ = stdout.flush();
    if failed == 0 {
        EXIT_COMPLETED
    } else {
        EXIT_FAILED
    }
}

/// One case of the file.
struct Case {
    name: String,
    input: Value,
    mocks: Arc<CaseMocks>,
    /// `(step, payload, at)`: signals sent at virtual times.
    signals: Vec<(String, Value, Duration)>,
    expect: Expect,
}

/// What a test file may name: the workflow's steps, its waits, and how a
/// wait's payload is checked (`None`: not a wait).
struct Known<'a> {
    steps: &'a [String],
    waits: &'a [&'a str],
    check: &'a CheckPayload<'a>,
}

/// Checks a wait step's payload (`None`: the step is not a wait).
type CheckPayload<'a> = dyn Fn(&str, &Value) -> Option<Result<Value, String>> + 'a;

enum Outcome {
    /// Neither `output` nor `error`: the execution completes, with any output.
    Completed,
    Output(Value),
    Error {
        kind: ErrorKind,
        step: Option<String>,
    },
}

struct Expect {
    outcome: Outcome,
    steps: Option<Vec<String>>,
    skipped: Option<Vec<String>>,
    attempts: Vec<(String, u64)>,
}

/// The mocks of one case, per step.
#[derive(Debug, Default)]
struct CaseMocks {
    steps: HashMap<String, Script>,
}

/// A step's mocks: entries for attempt ranges, and `*` for the rest.
#[derive(Debug, Default)]
struct Script {
    /// `(first, last, reply)`, sorted, not overlapping.
    ranges: Vec<(u32, u32, MockStep)>,
    star: Option<MockStep>,
}

impl Script {
    fn reply(&self, attempt: u32) -> Option<MockStep> {
        let hit = self.ranges.iter().find(|(a, b, _)| (*a..=*b).contains(&attempt)).map(|(_, _, r)| r);
        // No entry: `*`, else the last entry.
        hit.or(self.star.as_ref()).or(self.ranges.last().map(|(_, _, r)| r)).cloned()
    }
}

impl StepMocks for CaseMocks {
    fn reply(&self, step_id: &str, attempt: u32) -> Option<MockStep> {
        self.steps.get(step_id)?.reply(attempt)
    }
}

/// A problem with the test file, at a JSON pointer into it.
struct Invalid {
    at: String,
    msg: String,
}

fn invalid<T>(at: &str, msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid { at: at.to_owned(), msg: msg.into() })
}

fn child(at: &str, key: &str) -> String {
    format!("{at}/{}", escape_pointer(key))
}

fn object<'a>(v: &'a Value, at: &str, what: &str) -> Result<&'a Map<String, Value>, Invalid> {
    v.as_object().map_or_else(|| invalid(at, format!("{what} must be an object")), Ok)
}

fn no_other_keys(obj: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<(), Invalid> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => invalid(&child(at, k), format!("unknown key `{k}` (expected one of: {})", allowed.join(", "))),
        None => Ok(()),
    }
}

/// `id` names a step, or one item's step of a map (`summaries[3].summarize`).
fn known_step<'a>(steps: &[String], id: &'a str, at: &str) -> Result<&'a str, Invalid> {
    if steps.iter().any(|s| s == crate::map::step_of(id)) {
        Ok(id)
    } else {
        invalid(at, format!("the workflow has no step `{id}` (its steps: {})", steps.join(", ")))
    }
}

fn parse_file(doc: &Value, known: &Known<'_>) -> Result<Vec<Case>, Invalid> {
    let root = object(doc, "", "a test file")?;
    no_other_keys(root, "", &["$schema", "description", "cases"])?;
    let Some(cases) = root.get("cases") else {
        return invalid("", "missing key `cases`");
    };
    let Some(cases) = cases.as_array() else {
        return invalid("/cases", "`cases` must be an array");
    };
    cases.iter().enumerate().map(|(i, c)| parse_case(c, &format!("/cases/{i}"), known)).collect()
}

fn parse_case(v: &Value, at: &str, known: &Known<'_>) -> Result<Case, Invalid> {
    let steps = known.steps;
    let obj = object(v, at, "a case")?;
    no_other_keys(obj, at, &["name", "description", "input", "mocks", "signals", "expect"])?;
    let name = match obj.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => return invalid(&child(at, "name"), "`name` must be a non-empty string"),
        None => return invalid(at, "missing key `name`"),
    };
    let input = obj.get("input").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut mocks = CaseMocks::default();
    if let Some(m) = obj.get("mocks") {
        let at = child(at, "mocks");
        for (step, script) in object(m, &at, "`mocks`")? {
            let at = child(&at, step);
            known_step(steps, step, &at)?;
            mocks.steps.insert(step.clone(), parse_script(script, &at)?);
        }
    }
    let mut signals = Vec::new();
    if let Some(s) = obj.get("signals") {
        let at = child(at, "signals");
        for (step, signal) in object(s, &at, "`signals`")? {
            signals.push(parse_signal(step, signal, &child(&at, step), known)?);
        }
    }
    let Some(expect) = obj.get("expect") else {
        return invalid(at, "missing key `expect`");
    };
    let expect = parse_expect(expect, &child(at, "expect"), steps)?;
    Ok(Case { name, input, mocks: Arc::new(mocks), signals, expect })
}

/// `{"payload": {...}, "atMs": N}` for the wait step `step`.
fn parse_signal(step: &str, v: &Value, at: &str, known: &Known<'_>) -> Result<(String, Value, Duration), Invalid> {
    let obj = object(v, at, "a signal")?;
    no_other_keys(obj, at, &["payload", "atMs"])?;
    let Some(payload) = obj.get("payload") else {
        return invalid(at, "missing key `payload`");
    };
    let checked = match (known.check)(step, payload) {
        Some(Ok(checked)) => checked,
        Some(Err(msg)) => return invalid(&child(at, "payload"), format!("the payload does not fit: {msg}")),
        None if known.waits.is_empty() => {
            return invalid(at, format!("`{step}` is not a wait step; the workflow has none"))
        }
        None => {
            return invalid(at, format!("`{step}` is not a wait step (its wait steps: {})", known.waits.join(", ")))
        }
    };
    let at_ms = match obj.get("atMs") {
        None => 0,
        Some(n) => match n.as_u64() {
            Some(n) => n,
            None => return invalid(&child(at, "atMs"), "`atMs` must be a whole number of milliseconds"),
        },
    };
    Ok((step.to_owned(), checked, Duration::from_millis(at_ms)))
}

const REPLY_KEYS: [&str; 5] = ["output", "error", "fatal", "hang", "delayMs"];

fn parse_script(v: &Value, at: &str) -> Result<Script, Invalid> {
    let obj = object(v, at, "a step's mocks")?;
    let mut script = Script::default();
    if obj.keys().any(|k| REPLY_KEYS.contains(&k.as_str())) {
        // A bare reply: every attempt.
        script.star = Some(parse_reply(v, at)?);
        return Ok(script);
    }
    if obj.is_empty() {
        return invalid(at, "a step's mocks need a reply (`output`, `error`, `fatal` or `hang`) or attempt keys");
    }
    for (key, reply) in obj {
        let at_key = child(at, key);
        let reply = parse_reply(reply, &at_key)?;
        if key == "*" {
            script.star = Some(reply);
            continue;
        }
        let Some((a, b)) = attempt_range(key) else {
            return invalid(
                &at_key,
                format!("`{key}` is not an attempt: expected a number from 1 (`2`), a range (`2-3`) or `*`"),
            );
        };
        if let Some((x, y, _)) = script.ranges.iter().find(|(x, y, _)| a <= *y && *x <= b) {
            let other = if x == y { x.to_string() } else { format!("{x}-{y}") };
            return invalid(&at_key, format!("attempts `{key}` overlap attempts `{other}`"));
        }
        script.ranges.push((a, b, reply));
    }
    script.ranges.sort_by_key(|(a, _, _)| *a);
    Ok(script)
}

/// `"2"` or `"2-3"`, attempts counted from 1.
fn attempt_range(key: &str) -> Option<(u32, u32)> {
    let num = |s: &str| s.trim().parse::<u32>().ok().filter(|n| *n >= 1);
    match key.split_once('-') {
        Some((a, b)) => Some((num(a)?, num(b)?)).filter(|(a, b)| a <= b),
        None => num(key).map(|n| (n, n)),
    }
}

fn parse_reply(v: &Value, at: &str) -> Result<MockStep, Invalid> {
    let obj = object(v, at, "a mocked reply")?;
    no_other_keys(obj, at, &REPLY_KEYS)?;
    let present: Vec<&str> = REPLY_KEYS[..4].iter().copied().filter(|k| obj.contains_key(*k)).collect();
    let message = |key: &str| match &obj[key] {
        Value::String(s) => Ok(s.clone()),
        _ => invalid(&child(at, key), format!("`{key}` must be a string (the error message)")),
    };
    let reply = match present.as_slice() {
        ["output"] => MockReply::Output(obj["output"].clone()),
        ["error"] => MockReply::Fail(message("error")?),
        ["fatal"] => MockReply::Fatal(message("fatal")?),
        ["hang"] => match obj["hang"] {
            Value::Bool(true) => MockReply::Hang,
            _ => return invalid(&child(at, "hang"), "`hang` must be `true`"),
        },
        [] => return invalid(at, "a mocked reply needs one of `output`, `error`, `fatal` or `hang`"),
        many => {
            return invalid(
                at,
                format!("a mocked reply has one of `output`, `error`, `fatal` or `hang`, not {}", {
                    many.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ")
                }),
            )
        }
    };
    let delay = match obj.get("delayMs") {
        None => None,
        Some(d) => match d.as_u64() {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => return invalid(&child(at, "delayMs"), "`delayMs` must be a whole number of milliseconds"),
        },
    };
    Ok(MockStep { delay, reply })
}

fn parse_expect(v: &Value, at: &str, steps: &[String]) -> Result<Expect, Invalid> {
    let obj = object(v, at, "`expect`")?;
    no_other_keys(obj, at, &["output", "error", "steps", "skipped", "attempts"])?;
    let outcome = match (obj.get("output"), obj.get("error")) {
        (Some(o), None) => Outcome::Output(o.clone()),
        (None, Some(e)) => {
            let at = child(at, "error");
            let e = object(e, &at, "`error`")?;
            no_other_keys(e, &at, &["kind", "step"])?;
            let kind = match e.get("kind") {
                Some(k) => match serde_json::from_value::<ErrorKind>(k.clone()) {
                    Ok(k) => k,
                    Err(_) => {
                        return invalid(
                            &child(&at, "kind"),
                            format!(
                                "unknown error kind {k} (expected agent_failed, fatal, timeout, circuit_open, \
                                 invalid_input, invalid_output, cancelled, budget_exceeded or suspended)"
                            ),
                        )
                    }
                },
                None => return invalid(&at, "missing key `kind`"),
            };
            let step = match e.get("step") {
                None => None,
                Some(Value::String(s)) => Some(known_step(steps, s, &child(&at, "step"))?.to_owned()),
                Some(_) => return invalid(&child(&at, "step"), "`step` must be a string"),
            };
            Outcome::Error { kind, step }
        }
        (Some(_), Some(_)) => return invalid(at, "`expect` has `output` or `error`, not both"),
        (None, None) => Outcome::Completed,
    };
    let step_list = |key: &str| -> Result<Option<Vec<String>>, Invalid> {
        match obj.get(key) {
            None => Ok(None),
            Some(Value::Array(list)) => {
                let at = child(at, key);
                let mut out = Vec::new();
                for (i, s) in list.iter().enumerate() {
                    let at = format!("{at}/{i}");
                    match s {
                        Value::String(s) => out.push(known_step(steps, s, &at)?.to_owned()),
                        _ => return invalid(&at, "a step id must be a string"),
                    }
                }
                Ok(Some(out))
            }
            Some(_) => invalid(&child(at, key), format!("`{key}` must be an array of step ids")),
        }
    };
    let expect_steps = step_list("steps")?;
    let skipped = step_list("skipped")?;
    let mut attempts = Vec::new();
    if let Some(a) = obj.get("attempts") {
        let at = child(at, "attempts");
        for (step, n) in object(a, &at, "`attempts`")? {
            let at = child(&at, step);
            known_step(steps, step, &at)?;
            match n.as_u64() {
                Some(n) => attempts.push((step.clone(), n)),
                None => return invalid(&at, "an attempt count must be a whole number"),
            }
        }
    }
    Ok(Expect { outcome, steps: expect_steps, skipped, attempts })
}

/// Runs one case; the reasons it failed (empty when it passed).
fn run_case<I, S, O>(program: &Program<I, S, O>, case: &Case, n: usize) -> Vec<String>
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    // The input goes through the same checks as a normal run's.
    let input: I = match parse_input(&case.input.to_string(), &Source::Flag) {
        Ok(i) => i,
        Err(msg) => return vec![msg],
    };
    let input_json = match checked_json(program.input_schema.as_ref(), &input) {
        Ok(v) => v,
        Err(e) => return vec![e.to_string()],
    };
    // Deterministic ids, so outputs that carry them can be expected.
    let execution_id = format!("00000000-0000-4000-8000-{n:012x}");
    let ids = ExecutionIds { execution_id: execution_id.clone(), correlation_id: execution_id.clone() };
    let store = MemoryStore::with_capacity(1);
    let runtime = Runtime::new(store.clone());
    let mailbox = Arc::new(Mailbox::new());
    let opts = ExecutionOptions {
        execution_id: Some(execution_id.clone()),
        correlation_id: Some(execution_id.clone()),
        input: Some(input_json),
        mocks: Some(case.mocks.clone()),
        breakers: Some(Arc::new(BreakerRegistry::new(DEFAULT_REGISTRY_CAPACITY))),
        mailbox: Some(mailbox.clone()),
        ..ExecutionOptions::default()
    };
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    #[cfg(feature = "test-mode")]
    builder.start_paused(true);
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => return vec![format!("cannot start the tokio runtime: {e}")],
    };
    let workflow = &program.workflow;
    let ran = catch_unwind(AssertUnwindSafe(|| {
        let state = Arc::new((program.make_state)(input, &ids));
        rt.block_on(async {
            let start = tokio::time::Instant::now();
            let mut signals = case.signals.clone();
            signals.sort_by_key(|(_, _, at)| *at);
            let sender = mailbox.clone();
            // Sent in order on virtual time; then no more will come.
            let sending = tokio::spawn(async move {
                for (step, payload, at) in signals {
                    tokio::time::sleep_until(start + at).await;
                    sender.post(&step, payload);
                }
                sender.close();
            });
            let result = runtime.run_shared(workflow, &state, opts).await;
            sending.abort();
            result
        })
    }));
    rt.shutdown_background();
    let result = match ran {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return vec![format!("cannot create the journal: {e}")],
        Err(panic) => {
            return vec![format!("the execution panicked: {}", one_line(&crate::error::panic_message(&*panic)))]
        }
    };
    let events = store.events(&execution_id);
    let mut failures = Vec::new();
    match (&case.expect.outcome, &result) {
        (Outcome::Completed, Ok(_)) => {}
        (Outcome::Completed, Err(e)) => {
            failures.push(format!("expected the execution to complete, but it failed: {}", describe_error(e)))
        }
        (Outcome::Output(want), Ok(out)) => match serde_json::to_value(out) {
            Ok(got) if same_json(&got, want) => {}
            Ok(got) => failures.push(format!(
                "output differs (- expected, + actual):\n{}",
                line_diff(&pretty(want).unwrap_or_default(), &pretty(&got).unwrap_or_default())
            )),
            Err(e) => failures.push(format!("the output cannot be written as JSON: {e}")),
        },
        (Outcome::Output(_), Err(e)) => {
            failures.push(format!("expected an output, but the execution failed: {}", describe_error(e)))
        }
        (Outcome::Error { kind, .. }, Ok(out)) => failures.push(format!(
            "expected error `{kind}`, but the execution completed with output {}",
            serde_json::to_string(out).unwrap_or_default()
        )),
        (Outcome::Error { kind, step }, Err(e)) => {
            if e.kind != *kind {
                failures.push(format!("error kind: expected `{kind}`, got `{}` ({})", e.kind, describe_error(e)));
            }
            if let Some(step) = step {
                if e.step.as_deref() != Some(step.as_str()) {
                    let got = e.step.as_deref().map_or("no step".to_owned(), |s| format!("`{s}`"));
                    failures.push(format!("error step: expected `{step}`, got {got}"));
                }
            }
        }
    }
    if let Some(want) = &case.expect.steps {
        let got: Vec<&str> = events
            .iter()
            .filter(|e| e.event == EventKind::StepSucceeded)
            .filter_map(|e| e.step_id.as_deref())
            .collect();
        if got != *want {
            failures.push(format!("steps: expected [{}], got [{}]", want.join(", "), got.join(", ")));
        }
    }
    if let Some(want) = &case.expect.skipped {
        let mut got: Vec<&str> =
            events.iter().filter(|e| e.event == EventKind::StepSkipped).filter_map(|e| e.step_id.as_deref()).collect();
        // In any order: which branch's steps are journaled first is not the point.
        let mut sorted_want: Vec<&str> = want.iter().map(String::as_str).collect();
        sorted_want.sort_unstable();
        let shown = got.join(", ");
        got.sort_unstable();
        if got != sorted_want {
            failures.push(format!("skipped: expected [{}], got [{shown}]", want.join(", ")));
        }
    }
    for (step, want) in &case.expect.attempts {
        let got = events
            .iter()
            .filter(|e| {
                e.event == EventKind::StepAttemptStarted && e.step_id.as_deref().is_some_and(|s| names(step, s))
            })
            .count() as u64;
        if got != *want {
            failures.push(format!("attempts of `{step}`: expected {want}, got {got}"));
        }
    }
    failures
}

/// Whether the journal's step name `name` is step `key`: the same name, or,
/// for the id of a step in a map's body, any item's.
fn names(key: &str, name: &str) -> bool {
    name == key || (!key.contains('[') && crate::map::step_of(name) == key)
}

/// JSON equality where numbers compare by value (`3` equals `3.0`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// A line diff of `expected` against `actual`: `- ` lines only expected,
/// `+ ` lines only actual, `  ` lines shared (up to [`DIFF_CONTEXT`] around
/// each change; `...` where more were left out).
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let ops = if a.len().saturating_mul(b.len()) > 4_000_000 {
        // Too big for the table: the whole of both.
        a.iter().map(|l| ('-', *l)).chain(b.iter().map(|l| ('+', *l))).collect()
    } else {
        lcs_ops(&a, &b)
    };
    let changed: Vec<bool> = ops.iter().map(|(op, _)| *op != ' ').collect();
    let near = |i: usize| {
        let lo = i.saturating_sub(DIFF_CONTEXT);
        let hi = (i + DIFF_CONTEXT + 1).min(ops.len());
        changed[lo..hi].iter().any(|c| *c)
    };
    let mut out = String::new();
    let mut skipped = false;
    for (i, (op, line)) in ops.iter().enumerate() {
        if *op == ' ' && !near(i) {
            skipped = true;
            continue;
        }
        if skipped {
            out.push_str("  ...\n");
            skipped = false;
        }
        let _ = writeln!(out, "{op} {line}");
    }
    if skipped {
        out.push_str("  ...\n");
    }
    out.truncate(out.trim_end().len());
    out
}

/// The shortest edit script between two line lists (longest common subsequence).
fn lcs_ops<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    let (n, m) = (a.len(), b.len());
    // table[i][j]: LCS length of a[i..] and b[j..].
    let mut table = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            table[at(i, j)] =
                if a[i] == b[j] { table[at(i + 1, j + 1)] + 1 } else { table[at(i + 1, j)].max(table[at(i, j + 1)]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n && j < m {
        if a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if table[at(i + 1, j)] >= table[at(i, j + 1)] {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    ops.extend(a[i..].iter().map(|l| ('-', *l)));
    ops.extend(b[j..].iter().map(|l| ('+', *l)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_keys() {
        assert_eq!(attempt_range("1"), Some((1, 1)));
        assert_eq!(attempt_range("2-3"), Some((2, 3)));
        assert_eq!(attempt_range("0"), None);
        assert_eq!(attempt_range("3-2"), None);
        assert_eq!(attempt_range("x"), None);
    }

    #[test]
    fn scripts_fall_back_to_star_then_the_last_entry() {
        let steps = vec!["s".to_owned()];
        let _ = &steps;
        let script =
            parse_script(&serde_json::json!({"2-3": {"output": 2}, "1": {"error": "boom"}}), "/cases/0/mocks/s")
                .ok()
                .unwrap();
        let reply = |n| script.reply(n).map(|m| m.reply);
        assert_eq!(reply(1), Some(MockReply::Fail("boom".into())));
        assert_eq!(reply(3), Some(MockReply::Output(2.into())));
        assert_eq!(reply(9), Some(MockReply::Output(2.into())));
        let star = parse_script(&serde_json::json!({"1": {"fatal": "x"}, "*": {"hang": true}}), "").ok().unwrap();
        assert_eq!(star.reply(5).map(|m| m.reply), Some(MockReply::Hang));
        let overlap = parse_script(&serde_json::json!({"1-2": {"fatal": "x"}, "2": {"hang": true}}), "/m");
        assert_eq!(overlap.err().map(|e| e.at), Some("/m/2".to_owned()));
    }

    #[test]
    fn diffs_keep_context_short() {
        let a: String = (0..20).map(|i| format!("{i}\n")).collect();
        let b = a.replace("10\n", "ten\n");
        assert_eq!(line_diff(&a, &b), "  ...\n  7\n  8\n  9\n- 10\n+ ten\n  11\n  12\n  13\n  ...");
    }
}
