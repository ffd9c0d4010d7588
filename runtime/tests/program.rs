//! The generated program's `main`, driven through `Program::run_with`: a
//! one-step workflow over a scripted agent, journals in a temp dir. Nothing
//! here waits on real time: agents reply at once, the retry test runs on
//! paused time, and Ctrl-C is a channel the agent itself triggers, but in
//! `real_signals`, where real signals go to a child process.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use orchestr8_runtime::codegen::{
    slot, store, Agent, AgentContext, AgentError, AgentStep, BreakerRegistry, ExecutionIds, Node, Program, Workflow,
    WorkflowInfo,
};
use orchestr8_runtime::journal::{read_file, JournalEvent};
use orchestr8_runtime::policy::{Policy, RetryPolicy};
use orchestr8_runtime::testing::{assert_well_formed, event_names, MockAgent};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Input {
    ticket_id: String,
    #[serde(default)]
    count: u32,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    qty: u32,
}

struct State {
    input: Input,
    ids: ExecutionIds,
    fetch: OnceLock<Value>,
}

fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["ticketId"],
        "properties": {
            "ticketId": {"type": "string"},
            "count": {"type": "integer", "minimum": 0},
            "items": {"type": "array", "items": {"type": "object"}}
        },
        "additionalProperties": false
    })
}

/// `probe` 1.2.3: one step `fetch` calling `agent`; the output echoes the
/// agent's output and the ids the program chose.
fn program<A: Agent<Input = Value, Output = Value>>(
    agent: A,
    interrupts: UnboundedReceiver<()>,
) -> Program<Input, State, Value> {
    program_on_signals(agent).interrupts(interrupts)
}

/// [`program`] with the real signal handling (no stand-in channel).
fn program_on_signals<A: Agent<Input = Value, Output = Value>>(agent: A) -> Program<Input, State, Value> {
    let policy = Policy { retry: RetryPolicy { jitter: false, ..RetryPolicy::default() }, ..Policy::default() };
    let fetch = AgentStep::new(
        "fetch",
        Arc::new(agent),
        |s: &State| Ok(json!({"id": s.input.ticket_id})),
        |s: &State, out| store(&s.fetch, "fetch", out),
    )
    .policy(policy)
    .node();
    let workflow = Workflow::with_registry(
        WorkflowInfo::new("probe", "1.2.3", "sha256:0"),
        Node::sequence(vec![fetch]),
        |s: &State| {
            Ok(json!({
                "ticket": slot(&s.fetch, "fetch")?,
                "count": s.input.count,
                "executionId": s.ids.execution_id,
                "correlationId": s.ids.correlation_id,
            }))
        },
        &BreakerRegistry::new(16),
    );
    Program::new(Arc::new(workflow), |input: Input, ids: &ExecutionIds| State {
        input,
        ids: ids.clone(),
        fetch: OnceLock::new(),
    })
    .about("Probe a ticket.")
    .input_schema(schema())
}

/// A program whose agent replies `{"body": "hello"}`, never interrupted.
fn ok_program() -> Program<Input, State, Value> {
    program(MockAgent::new("fetch_ticket", "1.0.0").then_ok(json!({"body": "hello"})), never())
}

fn never() -> UnboundedReceiver<()> {
    unbounded_channel().1
}

struct Run {
    code: u8,
    stdout: String,
    stderr: String,
}

impl Run {
    fn output(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }
}

fn run(program: Program<Input, State, Value>, args: &[&str], stdin: &str) -> Run {
    let args = std::iter::once("/usr/local/bin/probe-bin").chain(args.iter().copied()).map(OsString::from).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = program.run_with(args, stdin.as_bytes(), &mut out, &mut err);
    Run { code, stdout: String::from_utf8(out).unwrap(), stderr: String::from_utf8(err).unwrap() }
}

/// `run` with `--journal-dir DIR` first.
fn run_in(dir: &Path, program: Program<Input, State, Value>, args: &[&str], stdin: &str) -> Run {
    let mut all = vec!["--journal-dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    run(program, &all, stdin)
}

fn journals(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries.map(|e| e.unwrap().path()).collect()
}

fn only_journal(dir: &Path) -> Vec<JournalEvent> {
    let files = journals(dir);
    assert_eq!(files.len(), 1, "expected one journal in {}: {files:?}", dir.display());
    read_file(&files[0]).unwrap().events
}

#[test]
fn completed_prints_pretty_json_on_stdout_and_writes_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), ok_program(), &["--input", r#"{"ticketId": "T-1", "count": 3}"#], "");
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let out = r.output();
    let id = out["executionId"].as_str().unwrap().to_owned();
    assert_eq!(out, json!({"ticket": {"body": "hello"}, "count": 3, "executionId": id, "correlationId": id}));
    assert_eq!(r.stdout, serde_json::to_string_pretty(&out).unwrap() + "\n");

    assert_eq!(journals(dir.path()), vec![dir.path().join(format!("{id}.jsonl"))]);
    let events = only_journal(dir.path());
    assert_well_formed(&events);
    assert_eq!(
        event_names(&events),
        ["execution.started", "step.started", "step.attempt.started", "step.succeeded", "execution.completed"]
    );
    assert_eq!(events[0].correlation_id(), Some(id.as_str()));
    assert_eq!(events[0].input.as_deref(), Some(&json!({"ticketId": "T-1", "count": 3, "items": []})));

    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(lines[0].starts_with(&format!("[orchestr8] execution {id} of probe 1.2.3 started; journal ")), "{lines:?}");
    assert_eq!(lines[1], "[orchestr8] step fetch started");
    assert!(lines[2].starts_with("[orchestr8] step fetch succeeded in ") && lines[2].ends_with(" ms"), "{lines:?}");
    assert!(lines[3].starts_with("[orchestr8] execution completed in "), "{lines:?}");
    assert_eq!(lines.len(), 4, "{lines:?}");
}

#[test]
fn quiet_leaves_standard_error_empty_and_correlation_id_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), ok_program(), &["-q", "--correlation-id=corr-7", "--input", r#"{"ticketId":"T"}"#], "");
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(r.output()["correlationId"], "corr-7");
    assert_eq!(only_journal(dir.path())[0].correlation_id(), Some("corr-7"));
}

#[test]
fn input_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), ok_program(), &[], "{\"ticketId\": \"T-2\"}\n");
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert_eq!(r.output()["ticket"], json!({"body": "hello"}));
    // `--input-file -` is standard input too.
    let r = run_in(dir.path(), ok_program(), &["--input-file", "-"], r#"{"ticketId": "T-3"}"#);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
}

#[test]
fn empty_standard_input_is_an_empty_object() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), ok_program(), &[], " \n");
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr, "error: invalid input at /ticketId: missing field `ticketId`\n");
    assert!(r.stdout.is_empty());
    assert!(journals(dir.path()).is_empty(), "no execution on bad input");
}

#[test]
fn input_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.json");
    std::fs::write(&file, "{\n  \"ticketId\": \"T-4\"\n}\n").unwrap();
    let journal = dir.path().join("journal");
    let r = run_in(&journal, ok_program(), &["--input-file", file.to_str().unwrap()], "ignored");
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert_eq!(only_journal(&journal)[0].input.as_deref(), Some(&json!({"ticketId": "T-4", "count": 0, "items": []})));

    let missing = dir.path().join("nope.json");
    let r = run_in(&journal, ok_program(), &["--input-file", missing.to_str().unwrap()], "");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(&format!("error: cannot read the input file {}: ", missing.display())),
        "{}",
        r.stderr
    );
}

#[test]
fn malformed_json_exits_2_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), ok_program(), &["--input", r#"{"ticketId": }"#], "");
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr, "error: invalid JSON in --input at 1:14: expected value\n");
    assert!(r.stdout.is_empty());

    let file = dir.path().join("bad.json");
    std::fs::write(&file, "{\n  \"ticketId\": \"T-1\",\n}\n").unwrap();
    let r = run_in(dir.path(), ok_program(), &["--input-file", file.to_str().unwrap()], "");
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr, format!("error: invalid JSON in {} at 3:1: trailing comma\n", file.display()));
}

#[test]
fn values_that_do_not_fit_exit_2_with_a_json_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("{}", "error: invalid input at /ticketId: missing field `ticketId`"),
        (
            r#"{"ticketId": "T", "count": "x"}"#,
            r#"error: invalid input at /count: invalid type: string "x", expected u32"#,
        ),
        (
            r#"{"ticketId": "T", "items": [{"qty": 1}, {"qty": -1}]}"#,
            "error: invalid input at /items/1/qty: invalid value: integer `-1`, expected u32",
        ),
        (r#"{"ticketId": "T", "items": [{}]}"#, "error: invalid input at /items/0/qty: missing field `qty`"),
        (
            r#"{"ticketId": "T", "extra": 1}"#,
            "error: invalid input at /extra: unknown field `extra`, expected one of `ticketId`, `count`, `items`",
        ),
        ("3", "error: invalid input at the top level: invalid type: integer `3`, expected struct Input"),
    ];
    for (input, want) in cases {
        let r = run_in(dir.path(), ok_program(), &["--input", input], "");
        assert_eq!((r.code, r.stderr.trim_end()), (2, want), "input {input}");
        assert!(r.stdout.is_empty());
    }
    assert!(journals(dir.path()).is_empty());
}

#[test]
fn bad_usage_exits_2() {
    for (args, want) in [
        (&["--frobnicate"][..], "error: unexpected argument '--frobnicate' found"),
        (&["--input"][..], "error: a value is required for '--input <JSON>' but none was supplied"),
        (
            &["--input", "{}", "--input-file", "x.json"][..],
            "error: the argument '--input <JSON>' cannot be used with '--input-file <PATH>'",
        ),
        (&["run"][..], "error: unrecognized subcommand 'run'"),
        (&["--addr", "127.0.0.1:1"][..], "error: unexpected argument '--addr' found"),
        (&["serve", "--input", "{}"][..], "error: unexpected argument '--input' found"),
        (&["--input", "{}", "serve"][..], "error: the subcommand 'serve' cannot be used with '--input <JSON>'"),
        (
            &["serve", "--wait-timeout", "soon"][..],
            "error: invalid value 'soon' for '--wait-timeout <T>': expected a duration like 30s or 500ms",
        ),
        (&["completions", "tcsh"][..], "error: invalid value 'tcsh' for '<SHELL>'"),
    ] {
        let r = run(ok_program(), args, "");
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.starts_with(&format!("{want}\n")), "{args:?}: {}", r.stderr);
        assert!(r.stderr.ends_with("For more information, try '--help'.\n"), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let r = run(ok_program(), &["--frobnicate"], "");
    assert!(r.stderr.contains("\n\nUsage: probe-bin [OPTIONS]\n       probe-bin <COMMAND>\n"), "{}", r.stderr);
    // Where a flag of the other mode goes.
    let r = run(ok_program(), &["--addr", "127.0.0.1:1"], "");
    assert!(
        r.stderr.contains("\n  tip: '--addr' is an option of 'serve': probe-bin serve --addr ...\n"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_misspelt_flag_gets_a_suggestion() {
    let r = run(ok_program(), &["--inptu", "{}"], "");
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("error: unexpected argument '--inptu' found\n\n  tip: a similar argument exists: '--input'\n"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
}

#[test]
fn completions_are_printed_for_a_known_shell() {
    let r = run(ok_program(), &["completions", "bash"], "");
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(r.stdout.starts_with("_probe__bin() {") && r.stdout.contains(" probe-bin\n"), "{}", r.stdout);
    assert!(r.stdout.contains("serve") && r.stdout.contains("--journal-retention"), "{}", r.stdout);
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let r = run(ok_program(), &["completions", shell], "");
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        assert!(r.stdout.contains("probe-bin") && r.stdout.contains("serve"), "{shell}: {}", r.stdout);
    }
    let r = run(ok_program(), &["completions", "tcsh"], "");
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("[possible values: bash, elvish, fish, powershell, zsh]"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn fatal_agent_error_exits_1_with_the_error_json() {
    let dir = tempfile::tempdir().unwrap();
    let agent = MockAgent::new("fetch_ticket", "1.0.0").then_fatal("ticket store said no\nreally");
    let r = run_in(dir.path(), program(agent, never()), &["--input", r#"{"ticketId": "T"}"#], "");
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty());
    let lines: Vec<&str> = r.stderr.lines().collect();
    let n = lines.len();
    assert!(lines.contains(&r"[orchestr8] step fetch failed (fatal, attempt 1) in 0 ms: ticket store said no\nreally"));
    assert_eq!(lines[n - 2], r"error: step `fetch` failed (fatal, attempt 1): ticket store said no\nreally");
    let error: Value = serde_json::from_str(lines[n - 1]).unwrap();
    assert_eq!(
        error,
        json!({"kind": "fatal", "message": "ticket store said no\nreally", "step": "fetch", "attempt": 1})
    );
    assert_eq!(event_names(&only_journal(dir.path())).last(), Some(&"execution.failed"));
}

#[test]
fn retries_are_reported_on_paused_time() {
    let dir = tempfile::tempdir().unwrap();
    let agent = MockAgent::new("fetch_ticket", "1.0.0").then_fail("flaky").then_ok(json!({"body": "second"}));
    let program = program(agent, never()).start_paused();
    let r = run_in(dir.path(), program, &["--input", r#"{"ticketId": "T"}"#], "");
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert_eq!(r.output()["ticket"], json!({"body": "second"}));
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[orchestr8] step fetch attempt 1 failed (agent_failed): flaky; retrying in ")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("[orchestr8] step fetch succeeded in ") && l.ends_with("(attempt 2)")));
}

#[test]
fn journal_that_cannot_be_created_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let r = run_in(&file, ok_program(), &["--input", r#"{"ticketId": "T"}"#], "");
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with(&format!("error: cannot create the journal in {}: ", file.display())), "{}", r.stderr);
}

#[test]
fn version_help_and_input_schema_exit_0() {
    let r = run(ok_program(), &["--version"], "");
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "probe 1.2.3\n", ""));

    let r = run(ok_program(), &["--help"], "");
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert!(r.stdout.starts_with("Probe a ticket.\n\nRuns workflow probe 1.2.3"), "{}", r.stdout);
    assert!(r.stdout.contains("\nUsage: probe-bin [OPTIONS]\n       probe-bin <COMMAND>\n"), "{}", r.stdout);
    assert!(r.stdout.contains("--journal-dir <DIR>"), "{}", r.stdout);
    assert!(r.stdout.contains("\nExit status: 0 completed, 1 failed, 2 bad input or usage, 130 cancelled.\n"));
    assert!(r.stdout.contains("\nExamples:\n  probe-bin --input '{\"ticketId\":\"...\"}'\n"), "{}", r.stdout);

    let r = run(ok_program(), &["serve", "--help"], "");
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("\nUsage: probe-bin serve [OPTIONS]\n"), "{}", r.stdout);
    assert!(r.stdout.contains("--body-limit <N>         Largest request body [default: 1MiB]"), "{}", r.stdout);

    let r = run(ok_program(), &["--input-schema"], "");
    assert_eq!(r.code, 0);
    assert_eq!(serde_json::from_str::<Value>(&r.stdout).unwrap(), schema());
}

/// Presses "Ctrl-C" `presses` times once it runs, then waits for its token
/// (or forever, when `ignore_cancel`).
struct Interrupting {
    ctrl_c: UnboundedSender<()>,
    presses: usize,
    ignore_cancel: bool,
}

impl Agent for Interrupting {
    type Input = Value;
    type Output = Value;

    fn id(&self) -> &str {
        "interrupting"
    }

    fn version(&self) -> &str {
        "1.0.0"
    }

    async fn run(&self, ctx: &AgentContext<'_>, _input: Value) -> Result<Value, AgentError> {
        for _ in 0..self.presses {
            self.ctrl_c.send(()).unwrap();
        }
        if self.ignore_cancel {
            std::future::pending::<()>().await;
        }
        ctx.cancellation_token().cancelled().await;
        Err(AgentError::cancelled())
    }
}

fn interrupted(presses: usize, ignore_cancel: bool) -> Program<Input, State, Value> {
    let (ctrl_c, rx) = unbounded_channel();
    program(Interrupting { ctrl_c, presses, ignore_cancel }, rx)
}

#[test]
fn ctrl_c_cancels_cooperatively_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), interrupted(1, false), &["--input", r#"{"ticketId": "T"}"#], "");
    assert_eq!(r.code, 130);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("[orchestr8] cancelling; press Ctrl-C again to exit at once\n"), "{}", r.stderr);
    assert!(r.stderr.ends_with("\ncancelled\n"), "{}", r.stderr);
    let events = only_journal(dir.path());
    assert_well_formed(&events);
    let names = event_names(&events);
    assert_eq!(&names[names.len() - 2..], ["step.cancelled", "execution.cancelled"]);
}

#[test]
fn a_second_ctrl_c_exits_at_once_with_130() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_in(dir.path(), interrupted(2, true), &["--input", r#"{"ticketId": "T"}"#], "");
    assert_eq!(r.code, 130);
    assert!(r.stderr.ends_with("\ncancelled\n"), "{}", r.stderr);
    // The execution was abandoned: its journal has no terminal event.
    let events = only_journal(dir.path());
    assert!(!events.iter().any(|e| e.event.is_terminal()), "{:?}", event_names(&events));
}

#[test]
fn a_failed_preflight_exits_2_before_anything_runs_but_not_for_help() {
    let dir = tempfile::tempdir().unwrap();
    let missing = || -> Result<(), String> {
        Err("agent `triage`: the environment variable ANTHROPIC_API_KEY is not set".into())
    };
    let r = run_in(
        dir.path(),
        ok_program().preflight(missing).preflight(|| Ok(())),
        &["--input", r#"{"ticketId": "T-1", "count": 3}"#],
        "",
    );
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr, "error: agent `triage`: the environment variable ANTHROPIC_API_KEY is not set\n");
    assert_eq!(r.stdout, "");
    assert!(journals(dir.path()).is_empty(), "no execution started");
    let r = run(ok_program().preflight(missing), &["serve"], "");
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = run(ok_program().preflight(missing), &["--help"], "");
    assert_eq!(r.code, 0);
    let r =
        run_in(dir.path(), ok_program().preflight(|| Ok(())), &["--input", r#"{"ticketId": "T-1", "count": 3}"#], "");
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// Real signals: each test runs this test binary again on itself alone (the
/// child, told by [`CHILD`]), which runs the program with the signal
/// handling it ships with; the parent sends SIGTERM or SIGINT to the child,
/// as a container runtime or a terminal does. A run and `serve` share it.
#[cfg(unix)]
mod real_signals {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, ExitStatus, Stdio};
    use std::sync::mpsc::{channel, Receiver};
    use std::time::Duration;

    /// In the child: the journal directory.
    const CHILD: &str = "ORCHESTR8_PROGRAM_TEST_CHILD";

    fn kill(pid: u32, signal: &str) {
        let status = Command::new("kill").args([signal, &pid.to_string()]).status().expect("kill");
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    /// Sends `signal` to its own process once it runs, then waits for its
    /// token; when `twice`, sends it again once cancelled and never ends.
    struct Signalling {
        signal: &'static str,
        twice: bool,
    }

    impl Agent for Signalling {
        type Input = Value;
        type Output = Value;

        fn id(&self) -> &str {
            "signalling"
        }

        fn version(&self) -> &str {
            "1.0.0"
        }

        async fn run(&self, ctx: &AgentContext<'_>, _input: Value) -> Result<Value, AgentError> {
            kill(std::process::id(), self.signal);
            ctx.cancellation_token().cancelled().await;
            if self.twice {
                kill(std::process::id(), self.signal);
                std::future::pending::<()>().await;
            }
            Err(AgentError::cancelled())
        }
    }

    /// The child's end, its standard error as it comes, and its journals.
    struct Parent {
        child: Child,
        lines: Receiver<String>,
        dir: tempfile::TempDir,
    }

    impl Parent {
        /// Waits (bounded: only a hang fails) for the child to end.
        fn wait(&mut self) -> (ExitStatus, String) {
            for _ in 0..3000 {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return (status, self.lines.iter().collect::<Vec<_>>().join("\n"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            panic!("the child did not end within 30 s");
        }

        /// The next line of standard error that contains `text`.
        fn line_with(&self, text: &str) -> String {
            loop {
                match self.lines.recv_timeout(Duration::from_secs(30)) {
                    Ok(line) if line.contains(text) => return line,
                    Ok(_) => {}
                    Err(e) => panic!("no line with {text:?} from the child: {e}"),
                }
            }
        }
    }

    /// In the parent: starts the child on `test` (its path in this binary).
    /// In the child: runs `program` with `args` then `--journal-dir DIR`,
    /// standard error unbuffered, and exits with its code.
    fn child(test: &str, program: impl FnOnce() -> Program<Input, State, Value>, args: &[&str]) -> Option<Parent> {
        if let Some(dir) = std::env::var_os(CHILD) {
            let mut all = vec![OsString::from("probe")];
            all.extend(args.iter().map(OsString::from));
            all.extend(["--journal-dir".into(), dir]);
            let code = program().run_with(all, std::io::empty(), &mut std::io::stdout(), &mut std::io::stderr());
            std::process::exit(code.into());
        }
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Some(Parent { child, lines, dir })
    }

    fn run_parent(test: &str, signal: &'static str, twice: bool) -> Option<Parent> {
        child(test, || program_on_signals(Signalling { signal, twice }), &["--input", r#"{"ticketId": "T"}"#])
    }

    #[test]
    fn sigterm_cancels_a_plain_run_cooperatively_and_exits_130() {
        let test = "real_signals::sigterm_cancels_a_plain_run_cooperatively_and_exits_130";
        let Some(mut p) = run_parent(test, "-TERM", false) else { return };
        let (status, stderr) = p.wait();
        assert_eq!(status.code(), Some(130), "{status}: {stderr}");
        assert!(stderr.contains("[orchestr8] cancelling; press Ctrl-C again to exit at once"), "{stderr}");
        let events = only_journal(p.dir.path());
        assert_well_formed(&events);
        let names = event_names(&events);
        assert_eq!(&names[names.len() - 2..], ["step.cancelled", "execution.cancelled"]);
    }

    #[test]
    fn a_second_sigterm_exits_a_plain_run_at_once_with_130() {
        let test = "real_signals::a_second_sigterm_exits_a_plain_run_at_once_with_130";
        let Some(mut p) = run_parent(test, "-TERM", true) else { return };
        let (status, stderr) = p.wait();
        assert_eq!(status.code(), Some(130), "{status}: {stderr}");
        let events = only_journal(p.dir.path());
        assert!(!events.iter().any(|e| e.event.is_terminal()), "{:?}", event_names(&events));
    }

    #[test]
    fn sigint_cancels_a_plain_run_cooperatively_and_exits_130() {
        let test = "real_signals::sigint_cancels_a_plain_run_cooperatively_and_exits_130";
        let Some(mut p) = run_parent(test, "-INT", false) else { return };
        let (status, stderr) = p.wait();
        assert_eq!(status.code(), Some(130), "{status}: {stderr}");
        let names = event_names(&only_journal(p.dir.path()));
        assert_eq!(names.last().copied(), Some("execution.cancelled"));
    }

    #[test]
    fn sigterm_stops_serve_and_exits_0() {
        let test = "real_signals::sigterm_stops_serve_and_exits_0";
        let Some(mut p) = child(test, ok_program_on_signals, &["serve", "--addr", "127.0.0.1:0"]) else { return };
        // Said once the signals are handled and the listener is bound.
        p.line_with("[orchestr8] serving probe 1.2.3 on http://127.0.0.1:");
        kill(p.child.id(), "-TERM");
        p.line_with("[orchestr8] stopping: cancelling 0 running executions");
        let (status, stderr) = p.wait();
        assert_eq!(status.code(), Some(0), "{status}: {stderr}");
        assert!(stderr.ends_with("[orchestr8] stopped"), "{stderr}");
    }

    fn ok_program_on_signals() -> Program<Input, State, Value> {
        program_on_signals(MockAgent::new("fetch_ticket", "1.0.0").then_ok(json!({"body": "hello"})))
    }
}
