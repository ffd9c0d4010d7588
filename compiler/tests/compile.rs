//! `orchestr8 compile`: the generated crates of the examples, as snapshots
//! (reviewed like code), then built under `-D warnings` and run end to end.
//! The crates share one target folder and the workspace's lockfile, and each
//! is built once per run.

use std::path::{Path, PathBuf};
use std::process::Command;

use orchestr8::agents::FromRustSource;
use orchestr8::codegen::{generate, CrateOptions};
use orchestr8::own_crates::OwnCrates;
use orchestr8::target::Target;
use orchestr8::validate::{validate, validate_for};
use serde_json::{json, Value};

mod common;

const EXAMPLES: [&str; 6] = ["hello", "document-pipeline", "flaky-dependency", "ticket-triage", "approval", "digest"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap()
}

fn orchestr8() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orchestr8"));
    cmd.env("NO_COLOR", "1");
    cmd
}

/// The examples the Restate target runs (all but prompt-eval, an eval's
/// workflow).
pub const RESTATE_EXAMPLES: [&str; 7] =
    ["hello", "approval", "digest", "document-pipeline", "flaky-dependency", "llm-triage", "ticket-triage"];

/// Each example's generated crate for `target`, as one snapshot per example.
fn snapshot_crates(examples: &[&str], target: Target, prefix: &str) {
    for example in examples {
        let dir = repo().join("examples").join(example);
        let text = std::fs::read_to_string(dir.join("workflow.json")).unwrap();
        let source = FromRustSource::new(&dir);
        let validation = validate_for(text.as_bytes(), &source, target);
        let workflow = validation.checked.unwrap_or_else(|| panic!("{example}: {:?}", validation.diagnostics));
        let options =
            CrateOptions { own: OwnCrates::checkout(repo()), out_dir: dir.clone(), workflow_dir: dir.clone(), target };
        let files = generate(&workflow, &options).unwrap();
        let again = generate(&workflow, &options).unwrap();
        assert_eq!(files, again, "{example}: generation is deterministic");
        let mut all = String::new();
        for (path, content) in &files {
            all.push_str(&format!("==> {} <==\n{content}\n", path.display()));
        }
        insta::assert_snapshot!(format!("{prefix}{example}"), all);
    }
}

#[test]
fn generated_crates_of_the_examples() {
    snapshot_crates(&EXAMPLES, Target::Embedded, "example_");
}

#[test]
fn generated_restate_crates_of_the_examples() {
    snapshot_crates(&RESTATE_EXAMPLES, Target::Restate, "restate_");
}

#[test]
fn restate_crates_pin_the_sdk_the_runtime_is_built_on() {
    let manifest = std::fs::read_to_string(repo().join("runtime/Cargo.toml")).unwrap();
    let pinned =
        format!("restate-sdk = {{ version = \"={}\", optional = true }}", orchestr8::codegen::RESTATE_SDK_VERSION);
    assert!(manifest.contains(&pinned), "runtime/Cargo.toml should have `{pinned}`");
}

/// Generated crates share one target directory, and every `hello` project
/// builds `debug/hello` there, with or without its test mode: a test that
/// builds and runs one holds this, so no other replaces its binary meanwhile.
static GENERATED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn generated_lock() -> std::sync::MutexGuard<'static, ()> {
    GENERATED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Compiles `example` into `target/e2e/EXAMPLE` and builds it.
fn build(example: &str) -> PathBuf {
    let out = repo().join("target/e2e").join(example);
    let status = orchestr8()
        .args(["compile", "--out"])
        .arg(&out)
        .arg(repo().join("examples").join(example).join("workflow.json"))
        .status()
        .unwrap();
    assert!(status.success(), "compile {example}");
    // One pinned set of dependency versions for every generated crate.
    std::fs::copy(repo().join("Cargo.lock"), out.join("Cargo.lock")).unwrap();
    let output = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--offline", "--manifest-path"])
        .arg(out.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", repo().join("target/generated"))
        // Generated code is warning-free: any warning fails the build.
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .unwrap();
    assert!(output.status.success(), "build {example}:\n{}", String::from_utf8_lossy(&output.stderr));
    // And clippy has nothing to say about it.
    let output = Command::new(env!("CARGO"))
        .args(["clippy", "--quiet", "--offline", "--manifest-path"])
        .arg(out.join("Cargo.toml"))
        .args(["--", "-D", "warnings"])
        .env("CARGO_TARGET_DIR", repo().join("target/generated"))
        .output()
        .unwrap();
    assert!(output.status.success(), "clippy {example}:\n{}", String::from_utf8_lossy(&output.stderr));
    repo().join("target/generated/debug").join(example)
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(binary: &Path, args: &[&str], journal_dir: &Path) -> Run {
    let output = Command::new(binary).args(args).arg("--journal-dir").arg(journal_dir).output().unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn journal_events(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "one journal per execution");
    let text = std::fs::read_to_string(files.pop().unwrap()).unwrap();
    text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["event"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn examples_build_and_run_end_to_end() {
    let _generated = generated_lock();
    let journals = tempfile::tempdir().unwrap();
    let examples = repo().join("examples");
    let mut n = 0;
    let mut fresh_journal = || {
        n += 1;
        journals.path().join(n.to_string())
    };
    let expected = [
        ("hello", json!({ "greeting": "Hello, Ada!" })),
        (
            "ticket-triage",
            json!({
                "category": "billing",
                "reply": "Hello Ada, Our billing team will get back to you today.",
                "route": { "team": "billing", "note": "duplicate charge found, refund started" }
            }),
        ),
        (
            "document-pipeline",
            json!({
                "report": "# Release notes (21 words, en)\n\nCargo builds the crate. Cargo also runs the tests!\n\nKeywords: cargo (2), release (2), also (1)\n\nReadability: easy\n",
                "readability": 5.25,
                "keywords": [{ "word": "cargo", "count": 2 }, { "word": "release", "count": 2 }, { "word": "also", "count": 1 }]
            }),
        ),
    ];
    for (example, want) in expected {
        let binary = build(example);
        let input = examples.join(example).join("input.json");
        let journal = fresh_journal();
        let ran = run(&binary, &["--input-file", input.to_str().unwrap()], &journal);
        assert_eq!(ran.code, 0, "{example}: {}", ran.stderr);
        assert_eq!(serde_json::from_str::<Value>(&ran.stdout).unwrap(), want, "{example}");
        let events = journal_events(&journal);
        assert_eq!(events.first().map(String::as_str), Some("execution.started"), "{example}");
        assert_eq!(events.last().map(String::as_str), Some("execution.completed"), "{example}");
    }

    // The flaky dependency: retried twice, then live; with too many failures, the cache answers.
    let flaky = build("flaky-dependency");
    let journal = fresh_journal();
    let ran = run(&flaky, &["--input", r#"{"sku": "ABC-123", "failuresBeforeSuccess": 2}"#], &journal);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(out["price"]["source"], "live");
    let events = journal_events(&journal);
    assert_eq!(events.iter().filter(|e| *e == "step.retry.scheduled").count(), 2, "{events:?}");
    let ran = run(&flaky, &["--input", r#"{"sku": "XYZ", "failuresBeforeSuccess": 9}"#], &fresh_journal());
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(out["price"]["source"], "cache", "after 3 failed calls the circuit opens and the cache answers");

    // A bound of the input schema that the types cannot hold (`minimum: 0`).
    let ran = run(&flaky, &["--input", r#"{"sku": "S", "failuresBeforeSuccess": -1}"#], &fresh_journal());
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("at /failuresBeforeSuccess: -1 is less than the minimum 0"), "{}", ran.stderr);

    // Bad input: exit 2, located; nothing runs.
    let hello = repo().join("target/generated/debug/hello");
    let ran = run(&hello, &["--input", r#"{"nme": "Ada"}"#], &fresh_journal());
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("/nme"), "{}", ran.stderr);
    assert!(ran.stdout.is_empty());
    let ran = run(&hello, &["--input", "{\"name\": "], &fresh_journal());
    assert_eq!(ran.code, 2, "{}", ran.stderr);

    // An agent that fails for good: exit 1, the error as JSON on the last line of stderr.
    let journal = fresh_journal();
    let ran = run(&hello, &["--input", r#"{"name": "   "}"#], &journal);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let error: Value = serde_json::from_str(ran.stderr.lines().last().unwrap()).unwrap();
    assert_eq!(error["kind"], "fatal");
    assert_eq!(error["step"], "greet");
    assert_eq!(journal_events(&journal).last().map(String::as_str), Some("execution.failed"));
}

/// The approval example waits for two signals in a parallel block, one name
/// with two payload types: each `run` ends suspended (exit 3) until the last
/// signal, and no agent runs twice (the agents count their calls in a file).
#[test]
fn a_run_that_waits_is_suspended_and_signals_finish_it() {
    let _generated = generated_lock();
    let binary = build("approval");
    let scratch = tempfile::tempdir().unwrap();
    let (journal, calls) = (scratch.path().join("journal"), scratch.path().join("calls"));
    let run = |args: &[&str]| {
        let output = Command::new(&binary)
            .args(args)
            .arg("--journal-dir")
            .arg(&journal)
            .env("APPROVAL_CALLS", &calls)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Run { code: output.status.code().unwrap_or(-1), stdout: text(&output.stdout), stderr: text(&output.stderr) }
    };
    let first = run(&["--input", r#"{"topic": "v2"}"#]);
    assert_eq!(first.code, 3, "{}", first.stderr);
    assert!(first.stdout.is_empty());
    let id = std::fs::read_dir(&journal).unwrap().next().unwrap().unwrap().path();
    let id = id.file_stem().unwrap().to_str().unwrap().to_owned();
    assert!(first.stderr.contains(&format!("`signal {id} editor --data JSON`")), "{}", first.stderr);

    // A payload that does not fit the editor's schema: exit 2, located, nothing journaled.
    let before = journal_events(&journal).len();
    let bad = run(&["signal", &id, "editor", "--data", r#"{"approved": true, "by": ""}"#]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("/by"), "{}", bad.stderr);
    // The lawyer's payload type is not the editor's, though the signal's name is the same.
    let bad = run(&["signal", &id, "editor", "--data", r#"{"ok": true}"#]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_eq!(journal_events(&journal).len(), before);

    let second = run(&["signal", &id, "editor", "--data", r#"{"approved": true, "by": "ann"}"#]);
    assert_eq!(second.code, 3, "the lawyer still has to answer: {}", second.stderr);
    let last = run(&["signal", &id, "legal", "--data", r#"{"ok": true, "note": "fine"}"#]);
    assert_eq!(last.code, 0, "{}", last.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&last.stdout).unwrap(),
        json!({"published": true, "summary": "Announcing: v2. (approved by ann)", "legalNote": "fine"})
    );
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(calls.lines().collect::<Vec<_>>(), ["draft", "publish"], "each agent ran once");
    let events = journal_events(&journal);
    for (event, count) in
        [("step.waiting", 3), ("signal.received", 2), ("execution.suspended", 2), ("execution.resumed", 2)]
    {
        assert_eq!(events.iter().filter(|e| *e == event).count(), count, "{event}: {events:?}");
    }
    assert_eq!(events.last().map(String::as_str), Some("execution.completed"));
    let again = run(&["signal", &id, "legal", "--data", r#"{"ok": true}"#]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("already ended"), "{}", again.stderr);
}

#[test]
fn examples_pass_their_workflow_tests() {
    let _generated = generated_lock();
    // The LLM example too: its steps are mocked, so no model is needed.
    for example in EXAMPLES.into_iter().chain(["llm-triage"]) {
        let dir = repo().join("examples").join(example);
        let out = orchestr8()
            .arg("test")
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", repo().join("target/generated"))
            .env("RUSTFLAGS", "-D warnings")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{example}:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let last = stdout.lines().last().unwrap_or_default();
        assert!(last.ends_with(" passed, 0 failed") && !last.starts_with("0 "), "{example}: {last}");
        insta::assert_snapshot!(format!("test_report_{example}"), stdout);
    }
}

#[test]
fn a_bad_test_file_is_reported_where_it_is_wrong_and_nothing_runs() {
    let stderr = refused_test_file(
        r#"{
  "cases": [
    {
      "name": "typos",
      "input": { "name": "Ada" },
      "mocks": { "gret": { "output": {} }, "greet": { "2-1": { "output": {} }, "1": { "output": { "greeting": 5 } } } },
      "expect": { "output": {}, "atempts": {} }
    }
  ]
}
"#,
        "examples/hello/workflow.json",
    );
    insta::assert_snapshot!(stderr);
}

/// The workflow's own warnings are shown even when its test file is refused
/// (they were lost: the workflow was validated silently, and shown only by
/// the build that a bad test file never reaches).
#[test]
fn a_refused_test_file_still_shows_the_workflows_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let mut workflow: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("examples/llm-triage/workflow.json")).unwrap())
            .unwrap();
    // On Anthropic, `minimum`/`maximum` are checked locally only: W0423.
    for agent in workflow["agents"].as_object_mut().unwrap().values_mut() {
        agent["provider"] = "anthropic".into();
        agent["model"] = "claude-sonnet-4-5".into();
        agent.as_object_mut().unwrap().remove("baseUrl");
    }
    std::fs::write(dir.path().join("workflow.json"), serde_json::to_string_pretty(&workflow).unwrap()).unwrap();
    std::fs::write(
        dir.path().join("bad.test.json"),
        r#"{"cases": [{"name": "x", "input": {}, "mocks": {"nope": {}}}]}"#,
    )
    .unwrap();
    let out = orchestr8().arg("test").arg("bad.test.json").current_dir(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("warning[W0423]") && stderr.contains("--> workflow.json:"), "{stderr}");
    assert!(stderr.contains("bad.test.json: invalid test file; nothing was run"), "{stderr}");
}

/// Signals in a test file name wait steps, with payloads their schemas take.
#[test]
fn bad_signals_in_a_test_file_are_reported_where_they_are() {
    let stderr = refused_test_file(
        r#"{
  "cases": [
    {
      "name": "signals",
      "input": { "topic": "v2" },
      "signals": {
        "editr": { "payload": {} },
        "draft": { "payload": {} },
        "editor": { "payload": { "approved": "yes", "by": "" }, "atMs": -1 },
        "legal": { "atMs": 5, "when": 1 }
      },
      "expect": { "steps": ["draft", "editor", "legal"] }
    }
  ]
}
"#,
        "examples/approval/workflow.json",
    );
    for expected in [
        "the workflow has no wait step `editr`",
        "the workflow has no wait step `draft`",
        "/cases/0/signals/editor/payload/approved",
        "/cases/0/signals/editor/payload/by",
        "/cases/0/signals/editor/atMs",
        "a signal needs a `payload`",
        "unknown field `when`",
    ] {
        assert!(stderr.contains(expected), "{expected}: {stderr}");
    }
    assert!(!stderr.contains("expect/steps"), "waits may be listed in expect.steps: {stderr}");
    insta::assert_snapshot!(stderr);
}

/// One HTTP/1.1 request on loopback; the response's status and body.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = request(port, method, path, &[], body);
    (status, body)
}

/// A request with extra headers; the status, the response head (lower
/// case) and the body.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[test]
fn a_generated_crate_serves_its_workflow_with_the_serve_feature() {
    // Its own target folder: the same binary name is built without the feature by another test.
    build_hello("serve", &["--features", "serve"], "target/generated-serve");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let journals = tempfile::tempdir().unwrap();
    let (mut server, up) = serve_hello(port, journals.path(), None);
    let result = std::panic::catch_unwind(|| {
        assert!(up, "the server did not start listening");
        let (status, body) = http(port, "POST", "/workflows/execute?wait=true", r#"{"input": {"name": "Ada"}}"#);
        assert_eq!(status, 200, "{body}");
        let value: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["output"], json!({ "greeting": "Hello, Ada!" }), "{body}");
        let (status, body) = http(port, "POST", "/workflows/execute", r#"{"input": {"nme": "Ada"}}"#);
        assert_eq!(status, 422, "{body}");
        assert!(body.contains("/input"), "{body}");
        let (status, body) = http(port, "GET", "/openapi.json", "");
        assert_eq!(status, 200);
        assert!(body.contains("greeting"), "the output schema is published: {body}");
        // No OTEL_* variable: no exporter thread, no connection of its own.
        let threads = thread_names(server.id());
        assert!(!threads.iter().any(|t| t.starts_with("OpenTelemetry")), "{threads:?}");
        assert_eq!(outgoing_connections(server.id()), 0, "a served workflow connects nowhere by itself");
    });
    server.kill().ok();
    server.wait().ok();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }

    // With a collector: a request's `traceparent` makes the execution part
    // of the caller's trace; SIGTERM still delivers every span.
    let receiver = Receiver::start();
    let (mut server, up) = serve_hello(port, journals.path(), Some(&receiver.endpoint()));
    let pid = server.id();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(up, "the server did not start listening");
        let threads = thread_names(pid);
        assert!(threads.iter().any(|t| t.starts_with("OpenTelemetry")), "the exporters run: {threads:?}");
        let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parent_span = "00f067aa0ba902b7";
        let (status, headers, body) = request(
            port,
            "POST",
            "/workflows/execute?wait=true",
            &[("traceparent", &format!("00-{parent_trace}-{parent_span}-01")), ("X-Correlation-Id", "order-7")],
            r#"{"input": {"name": "Ada"}}"#,
        );
        assert_eq!(status, 200, "{body}");
        assert!(headers.contains(&format!("x-trace-id: {parent_trace}")), "{headers}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["traceId"], parent_trace, "{body}");
        assert!(headers.contains("x-correlation-id: order-7"), "{headers}");
        let terminated = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
        assert!(terminated.success());
        let code = server.wait().unwrap();
        assert!(code.success(), "{code:?}");
        let spans = receiver.get("spans");
        let execute = spans.iter().find(|s| s["name"] == "orchestrator.execute").expect("the execution's span");
        assert_eq!(execute["trace_id"], parent_trace, "{execute}");
        assert_eq!(execute["parent_span_id"], parent_span, "{execute}");
        assert_eq!(execute["attributes"]["correlation_id"], "order-7");
        assert!(spans.iter().any(|s| s["name"] == "orchestrator.step" && s["trace_id"] == parent_trace));
        // The journal log's group commits, timed (delivered at shutdown).
        let metrics = receiver.get("metrics");
        let commits =
            metrics.iter().find(|m| m["name"] == "orchestr8.journal.commit.duration").expect("commit latency");
        assert_eq!(commits["unit"], "s");
        assert!(commits["points"][0]["count"].as_u64().unwrap() >= 1, "{commits}");
    }));
    server.kill().ok();
    server.wait().ok();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// `examples/hello` compiled into `target/e2e/hello-VARIANT` and built with
/// `cargo_args`; the binary.
fn build_hello(variant: &str, cargo_args: &[&str], target: &str) -> PathBuf {
    let out = repo().join(format!("target/e2e/hello-{variant}"));
    let status = orchestr8()
        .args(["compile", "--out"])
        .arg(&out)
        .arg(repo().join("examples/hello/workflow.json"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::copy(repo().join("Cargo.lock"), out.join("Cargo.lock")).unwrap();
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--offline"])
        .args(cargo_args)
        .arg("--manifest-path")
        .arg(out.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", repo().join(target))
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    repo().join(target).join("debug/hello")
}

/// `hello serve` on `port`, exporting to `otlp` if given; whether it
/// listened within 5 s.
fn serve_hello(port: u16, journals: &Path, otlp: Option<&str>) -> (std::process::Child, bool) {
    let mut command = Command::new(repo().join("target/generated-serve/debug/hello"));
    command
        .args(["serve", "--quiet", "--addr", &format!("127.0.0.1:{port}"), "--journal-dir"])
        .arg(journals)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stderr(std::process::Stdio::null());
    if let Some(endpoint) = otlp {
        command.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    let server = command.spawn().unwrap();
    // Bounded wait for the listener.
    let up = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(25));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (server, up)
}

/// The names of a process's threads (Linux).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}

/// TCP connections a process holds that it did not accept on its listener
/// (Linux: its socket inodes matched against /proc/net/tcp{,6}).
fn outgoing_connections(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let mut n = 0;
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // State 0A is LISTEN; everything else is a connection.
            if cols.len() > 9 && cols[3] != "0A" && inodes.iter().any(|i| i == cols[9]) {
                n += 1;
            }
        }
    }
    n
}

/// The LLM example: its generated crate (snapshot), built and linted like
/// the others, then run against a real model server on loopback:
/// llama.cpp's `llama-server` with SmolLM2-135M, installed by
/// `scripts/local-llm with` (which `.ci/run` runs the suite under) and started here.
/// The model's text is not asserted, only what must hold whatever it says.
#[test]
fn llm_example_runs_against_a_local_model() {
    let dir = repo().join("examples/llm-triage");
    let text = std::fs::read_to_string(dir.join("workflow.json")).unwrap();
    let validation = validate(text.as_bytes(), &FromRustSource::new(&dir));
    let workflow = validation.checked.unwrap_or_else(|| panic!("{:?}", validation.diagnostics));
    let options = CrateOptions {
        own: OwnCrates::checkout(repo()),
        out_dir: dir.clone(),
        workflow_dir: dir.clone(),
        target: Target::Embedded,
    };
    let mut all = String::new();
    for (path, content) in &generate(&workflow, &options).unwrap() {
        all.push_str(&format!("==> {} <==\n{content}\n", path.display()));
    }
    insta::assert_snapshot!("example_llm-triage", all);

    let Some(llama) = common::LlamaServer::start() else { return };
    let binary = {
        let _generated = generated_lock();
        build("llm-triage")
    };

    let journal = tempfile::tempdir().unwrap();
    // A key the server ignores: it must not reach the journal or stderr.
    let key = "sk-local-NEVERSHOWN-9f8e7d6c5b4a";
    let output = Command::new(&binary)
        .arg("--input-file")
        .arg(dir.join("input.json"))
        .arg("--journal-dir")
        .arg(journal.path())
        .env("ORCHESTR8_OPENAI_BASE_URL", llama.base_url())
        .env("OPENAI_API_KEY", key)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let files: Vec<_> = std::fs::read_dir(journal.path()).unwrap().map(|e| e.unwrap().path()).collect();
    let lines = std::fs::read_to_string(&files[0]).unwrap();
    for text in [&lines, &stderr.to_string(), &stdout.to_string()] {
        assert!(!text.contains(key) && !text.contains("NEVERSHOWN"), "the key leaked: {text}");
    }
    let events: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = events.last().unwrap();
    let usage = &last["usage"];
    assert!(usage["calls"].as_u64().unwrap() >= 1 && usage["inputTokens"].as_u64().unwrap() > 0, "{last}");
    match output.status.code() {
        Some(0) => {
            // Valid against the output schema, which the program checked.
            let result: Value = serde_json::from_str(&stdout).unwrap();
            assert!(
                ["bug", "billing", "question", "feature"].contains(&result["category"].as_str().unwrap()),
                "{result}"
            );
            assert!((1..=4).contains(&result["priority"].as_i64().unwrap()), "{result}");
            assert!(result["reply"].as_str().unwrap().chars().count() <= 600, "{result}");
            assert_eq!(last["event"], "execution.completed");
        }
        Some(1) => {
            // A classified, journaled failure of one of the LLM outcome classes.
            let error = &last["error"];
            assert_eq!(last["event"], "execution.failed", "{last}");
            let reason = error["reason"].as_str().unwrap_or_default();
            assert!(
                ["invalid_output", "truncated", "refused", "stopped", "budget_exceeded"].contains(&reason)
                    || error["kind"] == "budget_exceeded",
                "{error}"
            );
            assert!(stderr.contains(error["message"].as_str().unwrap()), "{stderr}");
        }
        other => panic!("exit {other:?}\n{stderr}"),
    }
    let started = events.iter().filter(|e| e["event"] == "step.started").count();
    assert!(started >= 1);
}

/// A real OTLP/HTTP receiver (scripts/otlp_receiver.py on the official
/// `opentelemetry-proto` package, in a venv `scripts/otlp-receiver` caches),
/// started on a free loopback port; killed when dropped.
struct Receiver {
    child: std::process::Child,
    port: u16,
}

impl Receiver {
    fn start() -> Receiver {
        use std::io::BufRead;
        let python = Command::new("bash").arg(repo().join("scripts/otlp-receiver")).arg("python").output().unwrap();
        assert!(python.status.success(), "installing the receiver: {}", String::from_utf8_lossy(&python.stderr));
        let python = String::from_utf8(python.stdout).unwrap().trim().to_owned();
        let mut child = Command::new(python)
            .arg(repo().join("scripts/otlp_receiver.py"))
            .args(["--port", "0"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("LISTENING ").and_then(|p| p.parse().ok());
        let Some(port) = port else {
            child.kill().ok();
            panic!("the receiver did not start: {line:?}");
        };
        Receiver { child, port }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn get(&self, what: &str) -> Vec<Value> {
        let (status, body) = http(self.port, "GET", &format!("/debug/{what}"), "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

/// A compiled example run with OTEL_EXPORTER_OTLP_ENDPOINT set delivers its
/// trace and metrics to a real receiver before it exits, and the trace shows
/// what the journal (and so `inspect`) shows: the same steps, attempts and
/// durations.
#[test]
fn a_run_exports_its_trace_and_metrics_to_an_otlp_receiver() {
    let _generated = generated_lock();
    let binary = build("flaky-dependency");
    let receiver = Receiver::start();
    let journals = tempfile::tempdir().unwrap();
    let output = Command::new(&binary)
        .args(["--input", r#"{"sku": "ABC-123", "failuresBeforeSuccess": 2}"#, "--journal-dir"])
        .arg(journals.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let journal_file = std::fs::read_dir(journals.path()).unwrap().next().unwrap().unwrap().path();
    let events: Vec<Value> =
        std::fs::read_to_string(&journal_file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let execution_id = events[0]["executionId"].as_str().unwrap().to_owned();

    // Exported at exit: no wait on the batch delay or the metric interval.
    let spans = receiver.get("spans");
    let named = |name: &str| spans.iter().filter(|s| s["name"] == name).collect::<Vec<_>>();
    let execute = named("orchestrator.execute");
    assert_eq!(execute.len(), 1, "{spans:#?}");
    let execute = execute[0];
    assert_eq!(attr(execute, "execution_id"), &json!(execution_id));
    assert_eq!(attr(execute, "workflow_id"), "flaky-dependency");
    assert_eq!(attr(execute, "outcome"), "completed");
    assert_eq!(execute["resource"]["service.name"], "flaky-dependency", "the workflow id by default");
    assert_eq!(execute["parent_span_id"], "", "a root span");
    let trace = execute["trace_id"].as_str().unwrap();
    assert!(spans.iter().all(|s| s["trace_id"] == trace), "one trace per execution");

    // Steps under the execution, attempts under their step, as in the journal.
    let steps = named("orchestrator.step");
    let journal_steps: Vec<&Value> = events.iter().filter(|e| e["event"] == "step.succeeded").collect();
    assert_eq!(steps.len(), journal_steps.len(), "{spans:#?}");
    for step in &steps {
        assert_eq!(step["parent_span_id"], execute["span_id"]);
        let id = attr(step, "step_id");
        let journaled = journal_steps.iter().find(|e| &e["stepId"] == id).unwrap();
        assert_eq!(attr(step, "duration_ms"), &journaled["durationMs"], "{id}: the journal's duration");
        let attempts = named("agent.run").iter().filter(|a| a["parent_span_id"] == step["span_id"]).count();
        let journaled_attempts =
            events.iter().filter(|e| e["event"] == "step.attempt.started" && &e["stepId"] == id).count();
        assert_eq!(attempts, journaled_attempts, "{id}: one agent.run per attempt");
    }
    let live: Vec<&Value> = named("agent.run").into_iter().filter(|a| attr(a, "step_id") == "live_price").collect();
    assert_eq!(live.len(), 3, "two failures, then success");
    for a in &live {
        let failed = attr(a, "outcome") == "failed";
        assert_eq!(a["status"], if failed { 2 } else { 0 }, "status Error on failure: {a}");
        if failed {
            assert_eq!(attr(a, "error.type"), "agent_failed");
        }
    }
    assert_eq!(live.iter().filter(|a| attr(a, "outcome") == "failed").count(), 2);
    assert_eq!(named("resilience.retry").len(), 2, "one span per backoff");
    assert!(live.iter().all(|a| attr(a, "attempt").is_i64()), "attempt is an integer, not a string");

    // Metrics, with workflow and step attributes, never execution ids.
    let metrics = receiver.get("metrics");
    let total = |name: &str| -> f64 {
        metrics
            .iter()
            .filter(|m| m["name"] == name)
            .flat_map(|m| m["points"].as_array().unwrap())
            .map(|p| p["value"].as_f64().or_else(|| p["count"].as_f64()).unwrap())
            .sum()
    };
    assert_eq!(total("orchestr8.step.retries"), 2.0, "{metrics:#?}");
    assert_eq!(total("orchestr8.step.successes"), 2.0);
    assert_eq!(total("orchestr8.step.duration"), 2.0, "two steps recorded");
    assert_eq!(total("orchestr8.execution.duration"), 1.0);
    let units: Vec<(&Value, &Value)> = metrics.iter().map(|m| (&m["name"], &m["unit"])).collect();
    assert!(units.contains(&(&json!("orchestr8.step.duration"), &json!("s"))), "{units:?}");
    let text = serde_json::to_string(&metrics).unwrap();
    assert!(!text.contains(&execution_id), "no execution id on metrics");

    // JSON logs: every line of standard error is one object, and a line
    // inside the execution carries the ids a trace has.
    let json_run = |envs: &[(&str, &str)], args: &[&str]| {
        let journals = tempfile::tempdir().unwrap();
        let mut command = Command::new(&binary);
        command
            .args(["--input", r#"{"sku": "A", "failuresBeforeSuccess": 1}"#, "--journal-dir"])
            .arg(journals.path())
            .args(args)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("RUST_LOG")
            .env_remove("ORCHESTR8_LOG_FORMAT");
        for (k, v) in envs {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
        let lines: Vec<Value> = String::from_utf8(output.stderr)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        lines
    };
    let endpoint = receiver.endpoint();
    let lines = json_run(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)], &["--log-format", "json"]);
    let done = lines.iter().find(|l| l["message"] == "execution completed").expect("the execution's end");
    for key in ["timestamp", "level", "execution_id", "trace_id", "span_id"] {
        assert!(done[key].is_string(), "{key}: {done}");
    }
    let exported = receiver.get("spans");
    let its = exported.iter().find(|s| s["attributes"]["execution_id"] == done["execution_id"]).unwrap();
    assert_eq!(done["trace_id"], its["trace_id"], "the log line names the exported trace");
    let failed = lines.iter().find(|l| l["message"] == "attempt failed").expect("the failed attempt's line");
    assert_eq!(failed["step_id"], "live_price");
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["error.type"], "agent_failed");
    // The variable does what the flag does; without export there is no trace id.
    let lines = json_run(&[("ORCHESTR8_LOG_FORMAT", "json")], &[]);
    let done = lines.iter().find(|l| l["message"] == "execution completed").unwrap();
    assert!(done["execution_id"].is_string() && done.get("trace_id").is_none(), "{done}");
    // RUST_LOG filters: warnings only, and this run has none.
    let lines = json_run(&[("RUST_LOG", "warn")], &["--log-format", "json"]);
    assert!(lines.is_empty(), "{lines:?}");
    // A TLS endpoint cannot be served: said (in the log format), nothing exported, the run goes on.
    let lines =
        json_run(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.example:4318")], &["--log-format", "json"]);
    let warning = lines.iter().find(|l| l["level"] == "WARN").expect("a warning");
    assert!(warning["message"].as_str().unwrap().contains("not plain http://"), "{warning}");
    // A collector that is down: the run ends as it would without one, the
    // exporter's complaints are log lines too (JSON), and shutdown is bounded.
    let lines = json_run(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")], &["--log-format", "json"]);
    assert!(lines.iter().any(|l| l["message"] == "execution completed"), "{lines:?}");
    // The standard sampler variable: no trace, the metrics still.
    let (spans_before, metrics_before) = (receiver.get("spans").len(), receiver.get("metrics").len());
    let sampled = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_TRACES_SAMPLER", "always_off")];
    let lines = json_run(&sampled, &["--log-format", "json"]);
    assert!(lines.iter().all(|l| l["level"] != "WARN"), "{lines:?}");
    assert!(lines.iter().all(|l| l.get("trace_id").is_none()), "no id of a trace that is not recorded: {lines:?}");
    assert_eq!(receiver.get("spans").len(), spans_before, "always_off samples nothing");
    assert!(receiver.get("metrics").len() > metrics_before, "metrics are not sampled");
}

/// Built without its default feature `otel`, a program asked to export
/// says it cannot, and runs.
#[test]
fn a_program_built_without_otel_says_it_cannot_export() {
    // In the shared target folder (its dependencies are mostly built there
    // already), holding it: `hello` is built with the feature by other tests.
    let _generated = generated_lock();
    let hello = build_hello("no-otel", &["--no-default-features"], "target/generated");
    let journals = tempfile::tempdir().unwrap();
    let output = Command::new(hello)
        .args(["--input", r#"{"name": "Ada"}"#, "--journal-dir"])
        .arg(journals.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT is set but this program was built without OpenTelemetry export")
            && stderr.contains("--features otel"),
        "{stderr}"
    );
}

/// Issue 18: a test file names a map's body step for every item
/// (`summarize`) or one item's (`summaries[1].summarize`): a name whose
/// maps are not exactly the step's, or whose index is not a number, is
/// reported where it is.
#[test]
fn item_names_in_a_test_file_must_name_the_steps_maps() {
    let stderr = refused_test_file(
        r#"{
  "cases": [
    {
      "name": "item names",
      "input": { "articles": [], "maxWords": 3 },
      "mocks": {
        "summaries[0].summarize": { "fatal": "no" },
        "sumaries[0].summarize": { "fatal": "no" },
        "summaries[x].summarize": { "fatal": "no" },
        "summaries[1].write": { "fatal": "no" }
      },
      "expect": { "steps": ["summaries", "summaries[2].summarize", "write[0].summaries", "summarize"], "attempts": { "summarize": 0, "summaries[3]summarize": 1 } }
    }
  ]
}
"#,
        "examples/digest/workflow.json",
    );
    for wrong in [
        "`sumaries[0].summarize`",
        "`summaries[x].summarize`",
        "`summaries[1].write`",
        "`write[0].summaries`",
        "`summaries[3]summarize`",
        "step `summarize` runs once per item of a map",
    ] {
        assert!(stderr.contains(wrong), "{wrong} not reported: {stderr}");
    }
    for right in ["`summaries[0].summarize`", "`summaries[2].summarize`", "`summaries`\n"] {
        assert!(!stderr.contains(right), "{right} reported: {stderr}");
    }
}

/// Runs `orchestr8 test` on a test file of `text` (as `bad.test.json`)
/// against `workflow` (from the repository's root), which must refuse it
/// with exit 2: its standard error, the file named `bad.test.json`.
fn refused_test_file(text: &str, workflow: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.test.json");
    std::fs::write(&file, text).unwrap();
    let out = orchestr8().arg("test").arg(&file).arg("--workflow").arg(repo().join(workflow)).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    String::from_utf8_lossy(&out.stderr).replace(&file.display().to_string(), "bad.test.json")
}

/// On Restate a map's items and a parallel block's branches are calls found
/// from the plan's root: inside a map's body, neither is, and E0460 says so
/// where each is written (a map elsewhere, and the steps of its body, are
/// fine).
#[test]
fn restate_refuses_parallel_blocks_and_maps_in_a_maps_body() {
    let agent = serde_json::json!({"id": "s", "agent": "echo", "input": {"text": "${item}"}});
    let workflow = |body: serde_json::Value| {
        serde_json::json!({
            "schemaVersion": "1.0.0",
            "metadata": {"id": "nested", "version": "1.0.0"},
            "input": {"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "string"}}}, "required": ["xs"]},
            "agents": {"echo": {"kind": "rust", "crate": "a", "path": "a", "function": "echo",
                "input": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
                "output": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}},
            "steps": [{"id": "m", "map": {"over": "${input.xs}", "as": "item", "step": body}}],
            "output": {"n": "${steps.m.output}"}
        })
        .to_string()
    };
    let codes = |text: &str, target| {
        let v = validate_for(text.as_bytes(), &orchestr8::agents::DeclaredInWorkflow, target);
        v.diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| (d.code.as_str().to_owned(), d.pointer.clone()))
            .collect::<Vec<_>>()
    };
    let fine = workflow(serde_json::json!({"id": "body", "sequence": [agent.clone()]}));
    assert_eq!(codes(&fine, Target::Restate), []);
    let parallel = workflow(
        serde_json::json!({"id": "b", "sequence": [{"id": "p", "parallel": [agent.clone()]}, {"id": "t", "agent": "echo", "input": {"text": "${item}"}}]}),
    );
    assert_eq!(
        codes(&parallel, Target::Restate),
        [("E0460".to_owned(), "/steps/0/map/step/sequence/0/parallel".to_owned())]
    );
    assert_eq!(codes(&parallel, Target::Embedded), []);
    let nested = workflow(serde_json::json!({"id": "inner", "map": {"over": "${input.xs}", "as": "x", "step": agent}}));
    assert_eq!(codes(&nested, Target::Restate), [("E0460".to_owned(), "/steps/0/map/step/map".to_owned())]);
    // A wait in a map's body is E0454 on every target: not E0460 again.
    let wait = workflow(
        serde_json::json!({"id": "w", "wait": {"signal": "go", "schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}}),
    );
    let wait_codes: Vec<String> = codes(&wait, Target::Restate).into_iter().map(|(code, _)| code).collect();
    assert!(wait_codes.contains(&"E0454".to_owned()) && !wait_codes.contains(&"E0460".to_owned()), "{wait_codes:?}");
}
