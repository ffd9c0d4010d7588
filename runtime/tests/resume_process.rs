//! `PROGRAM resume ID` with real processes (issue 17): a run is killed with
//! SIGKILL in a chosen step, then resumed from its journal file; the output
//! is an uninterrupted run's, steps that had succeeded ran once, the
//! interrupted one at most twice. And what a resume refuses, in process.
//!
//! The child is this test binary again, running the test that started it
//! with `ORCHESTR8_RESUME_CHILD` set to what it should do.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod common;

use orchestr8_runtime::codegen::{
    slot, store, Agent, AgentContext, AgentError, AgentStep, BreakerRegistry, ExecutionIds, Node, Program, Workflow,
    WorkflowInfo,
};
use orchestr8_runtime::journal::{read_file, EventKind};
use orchestr8_runtime::policy::{Policy, RetryPolicy};
use orchestr8_runtime::testing::{assert_well_formed, event_names};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const CHILD: &str = "ORCHESTR8_RESUME_CHILD";

/// What the child does: run the program with `args`, its agents counting
/// their calls in `count` and hanging in step `hang_in`, its output in `out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Child {
    args: Vec<String>,
    count: PathBuf,
    hang_in: Option<String>,
    out: PathBuf,
    hash: String,
}

/// Appends its step id to the count file, hangs in `hang_in`, and answers
/// `{"step", "n"}` (`n` one more than its input's).
struct Counting {
    count: PathBuf,
    hang_in: Option<String>,
}

impl Agent for Counting {
    type Input = Value;
    type Output = Value;
    fn id(&self) -> &str {
        "count"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, ctx: &AgentContext<'_>, input: Value) -> Result<Value, AgentError> {
        let step = ctx.step_id();
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.count).unwrap();
        // One write per line: with O_APPEND a single write is not interleaved
        // with other processes' (writeln! may split it into several).
        f.write_all(format!("{step} {}\n", ctx.idempotency_key()).as_bytes()).unwrap();
        drop(f);
        if self.hang_in.as_deref() == Some(step) {
            std::future::pending::<()>().await;
        }
        Ok(json!({"step": step, "n": input["n"].as_i64().unwrap_or(0) + 1}))
    }
}

struct State {
    input: Value,
    out: [OnceLock<Value>; 4],
}

const STEPS: [&str; 4] = ["fetch", "left", "right", "merge"];

/// fetch → parallel(left, right) → merge (of right).
fn program(count: &Path, hang_in: Option<String>, hash: &str) -> Program<Value, State, Value> {
    let agent = Arc::new(Counting { count: count.to_owned(), hang_in });
    let policy = Policy {
        timeout: Duration::from_secs(600),
        retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() },
        ..Policy::default()
    };
    let step = |i: usize, from: Option<usize>| {
        AgentStep::new(
            STEPS[i],
            agent.clone(),
            move |s: &State| match from {
                Some(f) => Ok(slot(&s.out[f], STEPS[f])?.clone()),
                None => Ok(s.input.clone()),
            },
            move |s: &State, out| store(&s.out[i], STEPS[i], out),
        )
        .policy(policy)
        .node()
    };
    let root = Node::sequence(vec![
        step(0, None),
        Node::parallel("both", true, vec![step(1, Some(0)), step(2, Some(0))]),
        step(3, Some(2)),
    ]);
    let workflow = Workflow::with_registry(
        WorkflowInfo::new("resumable", "1.0.0", hash),
        root,
        |s: &State| Ok(json!({"left": slot(&s.out[1], "left")?, "merge": slot(&s.out[3], "merge")?})),
        &BreakerRegistry::new(8),
    );
    Program::new(Arc::new(workflow), |input: Value, _: &ExecutionIds| State { input, out: Default::default() })
}

fn args(list: &[&str]) -> Vec<OsString> {
    std::iter::once("resumable").chain(list.iter().copied()).map(OsString::from).collect()
}

/// In the child: does what `CHILD` says and exits with the program's code.
fn be_the_child() {
    let Some(spec) = std::env::var_os(CHILD) else { return };
    let c: Child = serde_json::from_str(spec.to_str().unwrap()).unwrap();
    let mut out = std::fs::File::create(&c.out).unwrap();
    let list: Vec<&str> = c.args.iter().map(String::as_str).collect();
    let code =
        program(&c.count, c.hang_in, &c.hash).run_with(args(&list), std::io::empty(), &mut out, &mut std::io::stderr());
    std::process::exit(code.into());
}

/// Starts the child on `test` (this test's path in the binary).
fn spawn(test: &str, child: &Child) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, serde_json::to_string(child).unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits (bounded: only a hang fails) for the child to end; its code and standard error.
fn wait(child: std::process::Child) -> (Option<i32>, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx.recv_timeout(Duration::from_secs(120)).expect("the child ends").unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn calls(count: &Path) -> Vec<String> {
    std::fs::read_to_string(count).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn a_run_killed_in_a_step_resumes_to_the_output_of_an_uninterrupted_run() {
    be_the_child();
    let test = "a_run_killed_in_a_step_resumes_to_the_output_of_an_uninterrupted_run";
    let tmp = tempfile::tempdir().unwrap();
    let input = r#"{"n": 1}"#;
    let uninterrupted = {
        let (count, dir) = (tmp.path().join("baseline.count"), tmp.path().join("baseline"));
        let mut out = Vec::new();
        let dir = dir.to_str().unwrap();
        let code = program(&count, None, "sha256:1").run_with(
            args(&["--input", input, "--journal-dir", dir, "-q"]),
            std::io::empty(),
            &mut out,
            &mut std::io::sink(),
        );
        assert_eq!(code, 0);
        serde_json::from_slice::<Value>(&out).unwrap()
    };
    for hang_in in ["fetch", "right", "merge"] {
        let (dir, id, bytes, count) = killed_in(test, tmp.path(), hang_in, hang_in);
        let journal = dir.join(format!("{id}.jsonl"));
        let out = tmp.path().join(format!("{hang_in}.out"));
        let before = orchestr8_runtime::journal::parse(&bytes).unwrap().events;
        assert!(!before.iter().any(|e| e.event.is_terminal()), "{:?}", event_names(&before));
        let succeeded: Vec<String> = before
            .iter()
            .filter(|e| e.event == EventKind::StepSucceeded)
            .filter_map(|e| e.step_id.as_deref().map(str::to_owned))
            .collect();

        let resume = Child {
            args: ["resume", &id, "--journal-dir", dir.to_str().unwrap()].map(String::from).to_vec(),
            count: count.clone(),
            hang_in: None,
            out: out.clone(),
            hash: "sha256:1".into(),
        };
        let (code, stderr) = wait(spawn(test, &resume));
        assert_eq!(code, Some(0), "{stderr}");
        let output: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(output, uninterrupted, "killed in {hang_in}");

        let calls = calls(&count);
        for step in STEPS {
            let n = calls.iter().filter(|c| c.starts_with(&format!("{step} "))).count();
            if succeeded.iter().any(|s| s == step) {
                assert_eq!(n, 1, "{step} had succeeded before the kill in {hang_in}: {calls:?}");
            } else {
                assert!((1..=2).contains(&n), "{step} (killed in {hang_in}): {calls:?}");
            }
            assert!(calls
                .iter()
                .filter(|c| c.starts_with(&format!("{step} ")))
                .all(|c| c.ends_with(&format!(" {id}/{step}"))));
        }
        assert_eq!(calls.iter().filter(|c| c.starts_with(&format!("{hang_in} "))).count(), 2, "{calls:?}");
        let events = read_file(&journal).unwrap().events;
        assert_well_formed(&events);
        assert_eq!(events[before.len()].event, EventKind::ExecutionResumed, "{:?}", event_names(&events));
        assert!(stderr.contains(&format!("resuming execution {id} after seq {}", before.len())), "{stderr}");
    }
}

/// Runs the program in a child killed (SIGKILL) in `hang_in`; its journal
/// directory, the execution id, the journal as it was left and the count file.
fn killed_in(test: &str, tmp: &Path, name: &str, hang_in: &str) -> (PathBuf, String, Vec<u8>, PathBuf) {
    let (mut child, dir, id, count) = running_in(test, tmp, name, hang_in);
    child.kill().unwrap();
    let (code, _) = wait(child);
    assert_eq!(code, None, "killed by a signal");
    let bytes = std::fs::read(dir.join(format!("{id}.jsonl"))).unwrap();
    (dir, id, bytes, count)
}

/// Runs the program in a child until it hangs in `hang_in`; the child, its
/// journal directory, the execution id and the count file.
fn running_in(test: &str, tmp: &Path, name: &str, hang_in: &str) -> (std::process::Child, PathBuf, String, PathBuf) {
    let dir = tmp.join(name);
    let count = tmp.join(format!("{name}.count"));
    let run = Child {
        args: ["--input", r#"{"n": 1}"#, "--journal-dir", dir.to_str().unwrap()].map(String::from).to_vec(),
        count: count.clone(),
        hang_in: Some(hang_in.into()),
        out: tmp.join(format!("{name}.out")),
        hash: "sha256:1".into(),
    };
    let child = spawn(test, &run);
    let mut waited = 0;
    while !calls(&count).iter().any(|c| c.starts_with(&format!("{hang_in} "))) {
        assert!(waited < 12_000, "{hang_in} was never called");
        std::thread::sleep(Duration::from_millis(10));
        waited += 1;
    }
    let journal = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    let id = journal.file_stem().unwrap().to_str().unwrap().to_owned();
    (child, dir, id, count)
}

/// A resume while the execution still runs in another process (which
/// holds its journal's lock) is refused, and nothing is journaled; once
/// that process is gone (killed: the lock goes with it), it resumes.
#[test]
fn a_resume_is_refused_while_the_execution_still_runs_in_another_process() {
    be_the_child();
    let test = "a_resume_is_refused_while_the_execution_still_runs_in_another_process";
    let tmp = tempfile::tempdir().unwrap();
    let (mut child, dir, id, count) = running_in(test, tmp.path(), "running", "merge");
    let dir_s = dir.to_str().unwrap();
    let journal = dir.join(format!("{id}.jsonl"));
    let before = std::fs::read(&journal).unwrap();
    let (code, out, err) = resume_in_process(&count, "sha256:1", &["resume", &id, "--journal-dir", dir_s]);
    child.kill().unwrap();
    let _ = wait(child);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains(&format!("execution {id} is still running in another process")), "{err}");
    assert!(!err.contains("resuming execution"), "a refused resume says only why: {err}");
    assert_eq!(std::fs::read(&journal).unwrap(), before, "nothing journaled");
    assert_eq!(calls(&count).iter().filter(|c| c.starts_with("merge ")).count(), 1, "merge ran once");

    let (code, out, err) = resume_in_process(&count, "sha256:1", &["resume", &id, "--journal-dir", dir_s, "-q"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["merge"]["n"], 4);
    assert_well_formed(&read_file(&journal).unwrap().events);
}

fn resume_in_process(count: &Path, hash: &str, list: &[&str]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = program(count, None, hash).run_with(args(list), std::io::empty(), &mut out, &mut err);
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

#[test]
fn a_resume_is_refused_with_exit_2_for_a_changed_workflow_an_ended_or_damaged_journal() {
    be_the_child();
    let test = "a_resume_is_refused_with_exit_2_for_a_changed_workflow_an_ended_or_damaged_journal";
    let tmp = tempfile::tempdir().unwrap();
    let (dir, id, original, count) = killed_in(test, tmp.path(), "journal", "merge");
    let dir_s = dir.to_str().unwrap();
    let journal = dir.join(format!("{id}.jsonl"));

    let (code, out, err) = resume_in_process(&count, "sha256:2", &["resume", &id, "--journal-dir", dir_s]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains("definition hash sha256:1; this program: version 1.0.0, definition hash sha256:2")
            && err.contains("resume with --force"),
        "{err}"
    );
    assert_eq!(std::fs::read(&journal).unwrap(), original, "nothing journaled");

    let (code, _, err) = resume_in_process(&count, "sha256:1", &["resume", "nobody", "--journal-dir", dir_s]);
    assert_eq!(code, 2);
    assert!(err.contains("no journal of execution nobody at "), "{err}");

    // A line in the middle that does not parse: nothing resumes, and it says where.
    let mut damaged = original.clone();
    let cut = damaged.iter().position(|&b| b == b'\n').unwrap() + 1;
    damaged.splice(cut..cut, b"{not json}\n".iter().copied());
    std::fs::write(&journal, &damaged).unwrap();
    let (code, _, err) = resume_in_process(&count, "sha256:1", &["resume", &id, "--journal-dir", dir_s]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot resume from") && err.contains("line 2"), "{err}");
    std::fs::write(&journal, &original).unwrap();

    // A copy under another name is another execution's journal: refused, nothing written to either.
    let copy = dir.join("copy.jsonl");
    std::fs::copy(&journal, &copy).unwrap();
    let (code, out, err) = resume_in_process(&count, "sha256:1", &["resume", "copy", "--journal-dir", dir_s]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains(&format!("is the journal of execution {id}, not of copy")), "{err}");
    assert_eq!(std::fs::read(&journal).unwrap(), original, "nothing journaled");
    assert_eq!(std::fs::read(&copy).unwrap(), original, "nothing journaled");
    std::fs::remove_file(&copy).unwrap();
    // An id that is a path, even to this very journal: refused.
    let path_id = format!("../journal/{id}");
    let (code, _, err) = resume_in_process(&count, "sha256:1", &["resume", &path_id, "--journal-dir", dir_s]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot name a journal file"), "{err}");
    assert_eq!(std::fs::read(&journal).unwrap(), original, "nothing journaled");

    // Forced, with the other definition: it runs the rest.
    let (code, out, err) =
        resume_in_process(&count, "sha256:2", &["resume", &id, "--force", "--journal-dir", dir_s, "-q"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["merge"]["n"], 4);
    let events = read_file(&journal).unwrap().events;
    assert_well_formed(&events);
    let resumed = events.iter().find(|e| e.event == EventKind::ExecutionResumed).unwrap();
    assert_eq!(resumed.definition_hash(), Some("sha256:2"));

    // Ended now: nothing to resume.
    let (code, _, err) = resume_in_process(&count, "sha256:1", &["resume", &id, "--journal-dir", dir_s]);
    assert_eq!(code, 2);
    assert!(err.contains(&format!("execution {id} has already ended (completed)")), "{err}");
}

/// Starts the child on `test` serving (`Child::args` are `serve`'s), and
/// reads its address from its standard error.
#[allow(clippy::zombie_processes)] // returned to the caller, which kills and waits for it
fn serve_child(test: &str, child: &Child) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let mut process = spawn(test, child);
    let stderr = std::io::BufReader::new(process.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("the child serves");
        if let Some(rest) = line.split_once(" on http://").map(|(_, r)| r) {
            return (process, rest.split(';').next().unwrap().to_owned());
        }
    }
}

/// Issue 17: `serve` killed with SIGKILL while 20 executions are in flight,
/// restarted on the same journal directory, resumes all 20: each ends with
/// an uninterrupted run's output, steps that had succeeded ran once.
#[test]
fn a_killed_server_restarted_on_its_journal_resumes_its_executions() {
    be_the_child();
    let test = "a_killed_server_restarted_on_its_journal_resumes_its_executions";
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let dir_s = dir.to_str().unwrap();
    let count = tmp.path().join("count");
    let serve = Child {
        args: ["serve", "--addr", "127.0.0.1:0", "--journal-dir", dir.to_str().unwrap(), "-q"]
            .map(String::from)
            .to_vec(),
        count: count.clone(),
        hang_in: Some("right".into()),
        out: tmp.path().join("serve.out"),
        hash: "sha256:1".into(),
    };
    let (process, addr) = serve_child(test, &serve);
    let ids: Vec<String> = (0..20)
        .map(|i| {
            let body = json!({"input": {"n": 1, "i": i}}).to_string();
            let r = common::http::request(
                &addr,
                "POST",
                "/workflows/execute",
                &[("content-type", "application/json")],
                body.as_bytes(),
            );
            assert_eq!(r.status, 202, "{}", r.text());
            r.json()["executionId"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut waited = 0;
    while calls(&count).iter().filter(|c| c.starts_with("right ")).count() < 20 {
        assert!(waited < 12_000, "not every execution reached `right`: {:?}", calls(&count));
        std::thread::sleep(Duration::from_millis(10));
        waited += 1;
    }
    let mut process = process;
    process.kill().unwrap(); // SIGKILL, with 20 executions in `right`
    assert_eq!(process.wait().unwrap().code(), None);
    let before = calls(&count);

    // `--no-resume`: left as they are, read as interrupted.
    let left = common::http::Server::start(program(&count, None, "sha256:1"), &dir, &["--no-resume"]);
    let s = left.get(&format!("/executions/{}", ids[0])).json();
    assert_eq!((s["status"].as_str(), s["error"]["kind"].as_str()), (Some("failed"), Some("interrupted")), "{s}");
    assert_eq!(left.stop().0, 0);
    // `resume` goes on with a run's journal file, not with serve's log: it says where the journal is.
    let (code, _, err) = resume_in_process(&count, "sha256:1", &["resume", &ids[0], "--journal-dir", dir_s]);
    assert_eq!(code, 2, "{err}");
    let log = dir.join("log");
    assert!(
        err.contains(&format!("execution {} was served: its journal is in serve's log in {}", ids[0], log.display()))
            && err.contains(&format!("serve --journal-dir {dir_s}")),
        "{err}"
    );
    // Another definition: each stays unfinished, and the log says why.
    let other = common::http::Server::start(program(&count, None, "sha256:2"), &dir, &[]);
    let refused: Vec<_> =
        other.before.iter().filter(|l| l.contains("stays unfinished") && l.contains("sha256:2")).collect();
    assert_eq!(refused.len(), 20, "{:?}", other.before);
    // serve has no --force: the line says what can be done instead.
    let advice = "serve this journal directory with the program that started it (version 1.0.0, definition hash \
                  sha256:1) to resume it";
    assert!(refused.iter().all(|l| !l.contains("--force") && l.ends_with(advice)), "{refused:?}");
    assert!(other.before.iter().any(|l| l.ends_with("resumed 0 of 20 executions an earlier process left unfinished")));
    assert_eq!(other.get(&format!("/executions/{}", ids[0])).json()["error"]["kind"], "interrupted");
    assert_eq!(other.stop().0, 0);
    assert_eq!(calls(&count), before, "nothing ran");

    // Restarted (here, on a thread): every execution is resumed and ends.
    let restarted = common::http::Server::start(program(&count, None, "sha256:1"), &dir, &[]);
    let said = "[orchestr8] resumed 20 of 20 executions an earlier process left unfinished";
    assert!(restarted.before.iter().any(|l| l == said), "{:?}", restarted.before);
    for id in &ids {
        let s = restarted.poll(&format!("/executions/{id}"), |v| v["status"] != "running");
        assert_eq!(s["status"], "completed", "{s}");
        assert_eq!(s["output"]["merge"]["n"], 4, "{s}");
        assert_eq!(s["steps"]["fetch"], "succeeded", "{s}");
        let events = orchestr8_runtime::journal::read_execution(&dir, id).unwrap().events;
        assert_well_formed(&events);
        assert_eq!(events.iter().filter(|e| e.event == EventKind::ExecutionResumed).count(), 1);
        let calls = calls(&count);
        let n = |step: &str| calls.iter().filter(|c| **c == format!("{step} {id}/{step}")).count();
        let n_before = |step: &str| before.iter().filter(|c| **c == format!("{step} {id}/{step}")).count();
        assert_eq!((n("fetch"), n("right"), n("merge")), (1, 2, 1), "{id}: {calls:?}");
        // `left` ran once, or twice if it was cut off by the kill too.
        assert!((1..=2).contains(&n("left")) && n_before("left") <= 1, "{id}: {calls:?}");
    }
    let (code, _) = restarted.stop();
    assert_eq!(code, 0);

    // Nothing is left to resume.
    let log = orchestr8_runtime::journal::LogStore::new(&dir).unwrap();
    assert_eq!(log.unfinished().unwrap().len(), 0);
}
