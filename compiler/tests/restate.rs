//! The Restate target end to end, against a real Restate server started
//! here (installed by `scripts/restate-server with`): each example the
//! target runs gives the output the embedded program gives for the same
//! input, and an invocation survives a kill -9 of the service or of the
//! server during a step, with every finished step run exactly once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

use common::restate::{free_port, RestateServer, ServiceProcess};
use orchestr8::restate::http::http;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap()
}

/// Generated crates share the suite's one target folder (and its builds).
fn generated_target() -> PathBuf {
    repo().join("target/generated")
}

/// Every crate built, by name and target: what `build` made, and a lock
/// that a test building through `orchestr8 run` holds too.
static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// Compiles `workflow` for `target` into `target/restate-e2e/NAME`, builds
/// it under `-D warnings`, runs clippy on it, and returns a copy of its
/// binary (the two targets' binaries share a name in the shared folder).
fn build(workflow: &Path, target: &str, name: &str) -> PathBuf {
    build_with(workflow, target, name, &[])
}

/// `build` with the generated crate's `features`.
fn build_with(workflow: &Path, target: &str, name: &str, features: &[&str]) -> PathBuf {
    // The tests run in parallel, and the crates of one name share files:
    // each crate is built once, and its binary is not replaced while it runs.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let key = [&[name, target][..], features].concat().join("-");
    if let Some((_, binary)) = built.iter().find(|(k, _)| *k == key) {
        return binary.clone();
    }
    let out = repo().join("target/restate-e2e").join(&key);
    let status = Command::new(env!("CARGO_BIN_EXE_orchestr8"))
        .args(["compile", "--target", target, "--out"])
        .arg(&out)
        .arg(workflow)
        .status()
        .unwrap();
    assert!(status.success(), "compile {name} for {target}");
    std::fs::copy(repo().join("Cargo.lock"), out.join("Cargo.lock")).unwrap();
    for (command, flags) in [("build", Some("-D warnings")), ("clippy", None)] {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args([command, "--quiet", "--manifest-path"]).arg(out.join("Cargo.toml"));
        cargo.args(features.iter().flat_map(|f| ["--features", f]));
        if command == "clippy" {
            cargo.args(["--", "-D", "warnings"]);
        }
        if let Some(flags) = flags {
            cargo.env("RUSTFLAGS", flags);
        }
        let output = cargo.env("CARGO_TARGET_DIR", generated_target()).output().unwrap();
        assert!(output.status.success(), "{command} {name} ({target}):\n{}", String::from_utf8_lossy(&output.stderr));
    }
    let id = workflow_id(workflow);
    let bin_name = if target == "restate" { orchestr8::codegen::restate_binary(&id) } else { id.clone() };
    let binary = out.join(format!("{bin_name}-copy"));
    std::fs::copy(generated_target().join("debug").join(&bin_name), &binary).unwrap();
    built.push((key, binary.clone()));
    binary
}

fn workflow_id(workflow: &Path) -> String {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(workflow).unwrap()).unwrap();
    doc["metadata"]["id"].as_str().unwrap().to_owned()
}

/// The service on a free port, registered with `server`.
fn serve(server: &RestateServer, binary: &Path, envs: &[(&str, &str)]) -> ServiceProcess {
    let port = free_port();
    let service = ServiceProcess::start(binary, &["--bind", &format!("127.0.0.1:{port}")], envs, port);
    server.register(&service.uri());
    service
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn examples_give_the_same_output_on_restate_as_embedded() {
    let Some(server) = RestateServer::start() else { return };
    // llm-triage runs on Restate too (its crate is a snapshot in compile.rs)
    // but a model's answers differ between runs: there is no output to compare.
    for example in ["hello", "flaky-dependency", "document-pipeline", "ticket-triage", "digest"] {
        let dir = repo().join("examples").join(example);
        let workflow = dir.join("workflow.json");
        let input = std::fs::read_to_string(dir.join("input.json")).unwrap();

        let embedded = build(&workflow, "embedded", example);
        let journals = tempfile::tempdir().unwrap();
        let run = Command::new(&embedded)
            .arg("--input-file")
            .arg(dir.join("input.json"))
            .arg("--journal-dir")
            .arg(journals.path())
            .output()
            .unwrap();
        assert!(run.status.success(), "{example} embedded: {}", String::from_utf8_lossy(&run.stderr));
        let expected = json(&String::from_utf8_lossy(&run.stdout));

        let service = serve(&server, &build(&workflow, "restate", example), &[]);
        let (status, body) = server.invoke(&format!("/{example}/run"), &input);
        assert_eq!(status, 200, "{example} on Restate: {body}\n{}", service.log_tail());
        let (mut got, mut expected) = (json(&body), expected);
        // The execution id is the invocation's on Restate: the rest is the same.
        if let (Some(on_restate), Some(_)) = (got.get("execution").cloned(), expected.get("execution")) {
            assert!(on_restate.as_str().is_some_and(|id| id.starts_with("inv_")), "{example}: {on_restate}");
            got["execution"] = Value::Null;
            expected["execution"] = Value::Null;
        }
        assert_eq!(got, expected, "{example}: the same output on both targets");
    }
}

#[test]
fn the_llm_example_runs_on_restate_within_its_token_budget() {
    let Some(server) = RestateServer::start() else { return };
    // Built under clippy either way; called when a local model is there.
    let example = build(&repo().join("examples/llm-triage/workflow.json"), "restate", "llm-triage");
    let tight = build(&repo().join("compiler/tests/restate/llm-tight.json"), "restate", "llm-tight");
    let Some(llama) = common::LlamaServer::start() else { return };
    let envs = [("ORCHESTR8_OPENAI_BASE_URL", llama.base_url()), ("OPENAI_API_KEY", "sk-local".to_owned())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let input = std::fs::read_to_string(repo().join("examples/llm-triage/input.json")).unwrap();
    let service = serve(&server, &example, &envs);
    let (status, body) = server.invoke("/llm-triage/run", &input);
    // A model's answers differ between runs: valid against the schema, or a
    // classified failure (the embedded target's test asserts the same).
    match status {
        200 => {
            let out = json(&body);
            assert!(["bug", "billing", "question", "feature"].contains(&out["category"].as_str().unwrap()), "{out}");
            assert!((1..=4).contains(&out["priority"].as_i64().unwrap()), "{out}");
        }
        _ => assert!(
            ["invalid", "truncated", "refused", "token budget"].iter().any(|c| body.contains(c)),
            "{status} {body}\n{}",
            service.log_tail()
        ),
    }
    // A budget of one token: the first call is cut off at the token left, and
    // the step fails for the budget, never retried, as embedded.
    let service = serve(&server, &tight, &envs);
    let (status, body) = server.invoke("/llm-tight/run", &input);
    // The budget's own terminal code (the REST facade's `budget_exceeded`).
    assert_eq!(status, 402, "{body}\n{}", service.log_tail());
    assert!(body.contains("the execution's token budget of 1"), "{body}");
}

#[test]
fn orchestr8_run_target_restate_serves_runs_and_stops_in_one_command() {
    let Some(_server) = RestateServer::start() else { return };
    // It builds `hello`'s service in the shared target folder too.
    let _building = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let hello = repo().join("examples/hello/workflow.json");
    let run = |input: &str| {
        Command::new(env!("CARGO_BIN_EXE_orchestr8"))
            .args(["run", "--target", "restate"])
            .arg(&hello)
            .args(["--input", input])
            .env("CARGO_TARGET_DIR", generated_target())
            .output()
            .unwrap()
    };
    let out = run(r#"{"name": "Ada"}"#);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&String::from_utf8_lossy(&out.stdout)), serde_json::json!({"greeting": "Hello, Ada!"}));
    // A failed execution: its error, exit 1, as the embedded program.
    let out = run(r#"{"name": " "}"#);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a greeting needs a name"));
    // What it started, it stopped: no data directory is left behind.
    let left = repo().join("examples/hello/.orchestr8/restate");
    assert!(std::fs::read_dir(&left).map_or(true, |mut d| d.next().is_none()), "{left:?} is not empty");
    // Without a server to start: exit 2, saying how to get one.
    let out = Command::new(env!("CARGO_BIN_EXE_orchestr8"))
        .args(["run", "--target", "restate"])
        .arg(&hello)
        .env_remove("ORCHESTR8_RESTATE_SERVER")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Restate server found"));
}

#[test]
fn orchestr8_run_target_restate_shows_how_to_signal_a_wait() {
    use std::io::BufRead;
    let Some(_server) = RestateServer::start() else { return };
    let _building = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(env!("CARGO_BIN_EXE_orchestr8"))
        .args(["run", "--target", "restate"])
        .arg(repo().join("compiler/tests/restate/waits.json"))
        .args(["--input", r#"{"slowMs": 1500}"#])
        .env("CARGO_TARGET_DIR", generated_target())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It names the execution and says how to signal its wait: do as it says.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut url = None;
    for line in stderr.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("curl -X POST ") {
            url = rest.split_whitespace().next().map(str::to_owned);
            break;
        }
        seen.push(line);
    }
    // The rest is read on, so that the pipe stays open while it runs.
    let rest = std::thread::spawn(move || stderr.map_while(Result::ok).collect::<Vec<_>>());
    let url = url.unwrap_or_else(|| panic!("no signal command in {seen:#?}"));
    assert!(seen.iter().any(|l| l.starts_with("execution inv_")), "{seen:#?}");
    assert!(url.contains("/waits-signals/inv_") && url.ends_with("/signal"), "{url}");
    let body = serde_json::json!({"step": "gate", "payload": {"ok": true}}).to_string();
    let answer = orchestr8::restate::http::http(
        "POST",
        &url,
        &[("content-type", "application/json")],
        Some(&body),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {:#?}", out.status, rest.join().unwrap());
    assert_eq!(json(&String::from_utf8_lossy(&out.stdout)), serde_json::json!({"ok": true, "last": "last"}));
}

#[test]
fn what_restate_cannot_keep_or_name_is_refused_where_it_is_written() {
    let mut doc = json(&std::fs::read_to_string(repo().join("examples/hello/workflow.json")).unwrap());
    doc["limits"] = serde_json::json!({"maxTokens": 1000});
    doc["metadata"]["id"] = "openapi".into();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workflow.json");
    std::fs::write(&file, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orchestr8"))
        .args(["validate", "--declared-only", "--target", "restate"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    // A token budget is kept on Restate too: only the id is refused.
    assert!(!stderr.contains("E0460"), "{stderr}");
    assert!(stderr.contains("error[E0461]") && stderr.contains("`openapi`"), "{stderr}");
    // The embedded target keeps both.
    let out = Command::new(env!("CARGO_BIN_EXE_orchestr8"))
        .args(["validate", "--declared-only"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("E046"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_service_binary_refuses_a_taken_address_and_a_bad_command_line() {
    let Some(_server) = RestateServer::start() else { return };
    let binary = build(&repo().join("examples/hello/workflow.json"), "restate", "hello");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(&binary).args(["--bind", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("cannot serve on {addr}")));
    for (args, says) in [(&["--bind"][..], "--bind needs an address"), (&["--port", "1"][..], "unexpected argument")] {
        let out = Command::new(&binary).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{args:?}");
    }
    // An invalid workflow: `run --target restate` reports it, builds nothing, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let mut doc = json(&std::fs::read_to_string(repo().join("examples/hello/workflow.json")).unwrap());
    doc["steps"][0]["agent"] = "missing".into();
    let file = dir.path().join("workflow.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_orchestr8")).args(["run", "--target", "restate"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error[E0303]"));
    assert!(!dir.path().join(".orchestr8/restate").exists(), "no server was started");
}

/// The fixture `compiler/tests/restate/FIXTURE.json` (workflow id `id`)
/// built, served and registered, its agents writing their calls to a file
/// (in the returned directory): the file and the service.
fn serve_recording(server: &RestateServer, fixture: &str, id: &str) -> (tempfile::TempDir, PathBuf, ServiceProcess) {
    let binary = build(&repo().join(format!("compiler/tests/restate/{fixture}.json")), "restate", id);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calls");
    let service = serve(server, &binary, &[("ORCHESTR8_CALLS_FILE", file.to_str().unwrap())]);
    (dir, file, service)
}

/// Lines of the calls file: each agent call's step name.
fn calls(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_owned).collect()
}

fn count(calls: &[String], step: &str) -> usize {
    calls.iter().filter(|c| *c == step).count()
}

/// Waits until the slow step has started (its agent wrote its line).
fn wait_for_slow_step(file: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&calls(file), "slow") == 0 {
        assert!(Instant::now() < deadline, "the slow step never started: {:?}", calls(file));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A kill -9 during the slow step, of the service (`kill_server` false) or
/// of the server, then a restart: the invocation completes, and the first
/// step, finished before the kill, ran exactly once.
fn survives_a_kill(kill_server: bool) {
    let Some(mut server) = RestateServer::start() else { return };
    let (_dir, file, mut service) = serve_recording(&server, "workflow", "durable");
    let id = server.send("/durable/run", r#"{"slowMs": 3000}"#);
    wait_for_slow_step(&file);
    if kill_server {
        server.kill9();
        server.restart();
    } else {
        service.kill9();
        service.restart();
    }
    let (status, body) = server.attach(&id);
    assert_eq!(status, 200, "{body}\nservice: {}\nserver: {}", service.log_tail(), server.log_tail());
    assert_eq!(json(&body), serde_json::json!({"first": "first", "slow": "slow", "last": "last"}));
    let calls = calls(&file);
    assert_eq!(count(&calls, "first"), 1, "a finished step is never run again: {calls:?}");
    assert!((1..=2).contains(&count(&calls, "slow")), "the step that was running runs again at most once: {calls:?}");
    assert_eq!(count(&calls, "last"), 1, "{calls:?}");
}

#[test]
fn a_parallel_block_fails_fast_and_what_follows_never_runs() {
    let Some(server) = RestateServer::start() else { return };
    let (_dir, file, service) = serve_recording(&server, "fail-fast", "fail-fast");
    let (status, body) = server.invoke("/fail-fast/run", "{}");
    assert_eq!(status, 500, "the invocation fails: {body}\n{}", service.log_tail());
    assert!(body.contains("broken fails on purpose"), "with the failing branch's error: {body}");
    let made = calls(&file);
    assert_eq!(count(&made, "broken"), 1, "a fatal error is not retried: {made:?}");
    assert_eq!(count(&made, "after"), 0, "the step after a failed block never runs: {made:?}");
    let branches = |done: &str| {
        server.sql_rows(&format!(
            "SELECT status, completion_result, completion_failure FROM sys_invocation WHERE target = 'fail-fast/branch' AND status {done} 'completed'"
        ))
    };
    // Failing fast: the block cancelled the slow branch (8 s), which ends
    // cancelled, not succeeded, and whose agent was told (checked below:
    // only a cancellation before its sleep ends writes that line).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !branches("<>").is_empty() {
        assert!(Instant::now() < deadline, "the slow branch never ended: {:?}", branches("<>"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let failures: Vec<String> = branches("=").iter().map(|b| b["completion_failure"].to_string()).collect();
    assert!(failures.iter().any(|f| f.contains("[409] cancelled")), "the slow branch was cancelled: {failures:?}");
    assert!(failures.iter().any(|f| f.contains("broken fails on purpose")), "{failures:?}");
    // `onError: continue` is for the step's own failures, not a cancellation.
    let made = calls(&file);
    assert_eq!((count(&made, "after"), count(&made, "after_slow")), (0, 0), "{made:?}");
    // Its running agent was told, through its cancellation token.
    assert_eq!(count(&made, "slow:cancelled"), 1, "the slow branch's agent was told: {made:?}");
}

#[test]
fn a_cancelled_invocation_ends_cancelled_and_its_running_agent_is_told() {
    let Some(server) = RestateServer::start() else { return };
    let (_dir, file, service) = serve_recording(&server, "workflow", "durable");
    // A step that would take a minute, unless told.
    let id = server.send("/durable/run", r#"{"slowMs": 60000}"#);
    wait_for_slow_step(&file);
    server.cancel(&id);
    let (status, body) = server.attach(&id);
    assert_eq!(status, 409, "{body}\n{}", service.log_tail());
    assert!(body.contains("cancelled"), "{body}");
    let made = calls(&file);
    assert_eq!(count(&made, "slow:cancelled"), 1, "the running agent was told: {made:?}");
    assert_eq!(count(&made, "slow"), 1, "a cancelled step is not retried: {made:?}");
    assert_eq!(count(&made, "last"), 0, "no step runs after a cancellation: {made:?}");
    let rows = server.sql_rows(&format!("SELECT status, completion_failure FROM sys_invocation WHERE id = '{id}'"));
    assert!(rows[0]["completion_failure"].to_string().contains("[409] cancelled"), "{rows:?}");
}

#[test]
fn an_input_outside_its_schema_bounds_is_refused_before_any_step() {
    let Some(server) = RestateServer::start() else { return };
    let workflow = repo().join("examples/document-pipeline/workflow.json");
    let service = serve(&server, &build(&workflow, "restate", "document-pipeline"), &[]);
    let input = std::fs::read_to_string(repo().join("examples/document-pipeline/input.json")).unwrap();
    let mut input = json(&input);
    input["maxKeywords"] = 0.into();
    let (status, body) = server.invoke("/document-pipeline/run", &input.to_string());
    assert_eq!(status, 400, "as the embedded program's exit 2: {body}\n{}", service.log_tail());
    assert!(body.contains("invalid input") && body.contains("/maxKeywords"), "{body}");
}

#[test]
fn a_replay_sends_the_branches_what_it_sent_the_first_time() {
    let Some(server) = RestateServer::start() else { return };
    let (_dir, file, service) = serve_recording(&server, "replay", "replay");
    // `last` fails once: Restate retries by replaying the invocation, calls
    // to the branches included, after a map output decoded in another order.
    let (status, body) = server.invoke("/replay/run", "{}");
    assert_eq!(status, 200, "{body}\n{}", service.log_tail());
    assert_eq!(json(&body), serde_json::json!({"size": 11, "last": "last"}));
    let made = calls(&file);
    assert_eq!((count(&made, "left"), count(&made, "right"), count(&made, "last")), (1, 1, 2), "{made:?}");
}

#[test]
fn an_invocation_survives_a_kill_9_of_the_service_during_a_step() {
    survives_a_kill(false);
}

#[test]
fn an_invocation_survives_a_kill_9_of_the_server_during_a_step() {
    survives_a_kill(true);
}

#[test]
fn a_cancelled_agent_that_ignores_its_token_is_abandoned_after_its_grace() {
    let Some(server) = RestateServer::start() else { return };
    let (_dir, file, service) = serve_recording(&server, "stubborn", "stubborn");
    // Restate may leave the invocation in flight without progress as long
    // as its longest call (5 minutes, and 200 ms of grace), and a margin:
    // else it would ask it to suspend mid-call.
    let services =
        http("GET", &format!("{}/services/stubborn", server.admin()), &[], None, Duration::from_secs(10)).unwrap();
    let inactivity = json(&services.body)["inactivity_timeout"].clone();
    assert_eq!(inactivity, "5m 30s 200ms", "{}", services.body);
    let id = server.send("/stubborn/run", "{}");
    wait_for_slow_step(&file);
    server.cancel(&id);
    let (status, body) = server.attach(&id);
    assert_eq!(status, 409, "{body}\n{}", service.log_tail());
    // Ended without waiting for the agent's minute (it never wrote `done`):
    // its 200 ms of grace were up.
    let made = calls(&file);
    assert_eq!((count(&made, "slow"), count(&made, "slow:done"), count(&made, "last")), (1, 0, 0), "{made:?}");
}

#[test]
fn a_map_fails_beyond_its_tolerated_failures_and_cancels_the_items_running() {
    let Some(server) = RestateServer::start() else { return };
    let (_dir, file, service) = serve_recording(&server, "map-fail", "map-fail");
    let items = serde_json::json!({"items": [
        {"name": "a", "sleepMs": 8000, "fail": false},
        {"name": "b", "sleepMs": 0, "fail": true},
        {"name": "c", "sleepMs": 0, "fail": false},
    ]});
    let (status, body) = server.invoke("/map-fail/run", &items.to_string());
    assert_eq!(status, 500, "the invocation fails: {body}\n{}", service.log_tail());
    assert!(body.contains("map work: 1 of 3 items failed (0 tolerated); item 1:"), "{body}");
    assert!(body.contains("b fails on purpose"), "with the item's error: {body}");
    let made = calls(&file);
    // Two at a time: `c` waits for a free slot, which the failure never gives.
    assert_eq!((count(&made, "a"), count(&made, "b"), count(&made, "c")), (1, 1, 0), "{made:?}");
    assert_eq!(count(&made, "after"), 0, "the step after a failed map never runs: {made:?}");
    // The slow item was cancelled, its agent told, before the map ended (as
    // embedded: a map ends once the items it cancelled have).
    assert_eq!(count(&made, "a:cancelled"), 1, "the running item was told before the map failed: {made:?}");
    // With every item succeeding, the outputs in input order.
    let items = serde_json::json!({"items": [
        {"name": "x", "sleepMs": 300, "fail": false},
        {"name": "y", "sleepMs": 0, "fail": false},
        {"name": "z", "sleepMs": 0, "fail": false},
    ]});
    let (status, body) = server.invoke("/map-fail/run", &items.to_string());
    assert_eq!(status, 200, "{body}\n{}", service.log_tail());
    let out = json(&body);
    assert_eq!(out["after"], "after");
    // Each item's agent is told its own step, as embedded: `MAP[INDEX].STEP`,
    // and so its own idempotency key.
    for (i, name) in ["x", "y", "z"].into_iter().enumerate() {
        let item = &out["done"][i];
        let step = format!("work[{i}].do_item");
        assert_eq!((item["name"].as_str(), item["step"].as_str()), (Some(name), Some(step.as_str())), "{out}");
        assert!(item["key"].as_str().unwrap().ends_with(&format!("/{step}")), "{item}");
    }
}

#[test]
fn a_wait_takes_its_signal_through_the_signals_object() {
    let Some(server) = RestateServer::start() else { return };
    let binary = build_with(&repo().join("examples/approval/workflow.json"), "restate", "approval", &["rest"]);
    let service = serve(&server, &binary, &[]);
    // Restate's discovery declares `run`'s input with the workflow's own
    // schema, and its output with the output type's.
    let services =
        http("GET", &format!("{}/services/approval", server.admin()), &[], None, Duration::from_secs(10)).unwrap();
    let doc = json(&services.body);
    let run = doc["handlers"].as_array().unwrap().iter().find(|h| h["name"] == "run").unwrap();
    let declared: Value = json(&std::fs::read_to_string(repo().join("examples/approval/workflow.json")).unwrap());
    assert_eq!(run["input_json_schema"], declared["input"], "{run}");
    assert!(run["output_json_schema"]["properties"]["published"].is_object(), "{run}");
    let id = server.send("/approval/run", r#"{"topic": "the launch"}"#);
    // What does not fit is refused where it is sent, as the embedded server's
    // signal endpoint refuses it: an unknown step, a payload off its schema.
    let (status, body) = server.signal("approval", &id, "reviewer", serde_json::json!({"ok": true}));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no wait step `reviewer`") && body.contains("editor, legal"), "{body}");
    let (status, body) = server.signal("approval", &id, "editor", serde_json::json!({"approved": true, "by": ""}));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("/by"), "where it does not fit: {body}");
    let (status, body) = server.signal("approval", &id, "legal", serde_json::json!({"ok": true, "note": "fine"}));
    assert_eq!(status, 200, "{body}\n{}", service.log_tail());
    let (status, body) = server.signal("approval", &id, "legal", serde_json::json!({"ok": false}));
    assert_eq!(status, 409, "one signal per step: {body}");
    let (status, body) = server.signal("approval", &id, "editor", serde_json::json!({"approved": true, "by": "Ada"}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.attach(&id);
    assert_eq!(status, 200, "{body}\n{}", service.log_tail());
    let out = json(&body);
    assert_eq!((out["published"].as_bool(), out["legalNote"].as_str()), (Some(true), Some("fine")), "{out}");
    assert!(out["summary"].as_str().unwrap().ends_with("(approved by Ada)"), "{out}");
    // Once it has ended, its signals object forgets its waits (sent by the
    // execution as it ends, delivered shortly after) and refuses signals.
    let keys = || {
        let query = format!("SELECT key FROM state WHERE service_name = 'approval-signals' AND service_key = '{id}'");
        server.sql_rows(&query).iter().map(|r| r["key"].as_str().unwrap_or_default().to_owned()).collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while keys() != ["ended"] {
        assert!(Instant::now() < deadline, "the signals object kept {:?}", keys());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, body) = server.signal("approval", &id, "editor", serde_json::json!({"approved": true, "by": "Ada"}));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains(&format!("execution {id} has ended")), "{body}");
}

#[test]
fn a_signal_sent_before_its_step_waits_is_kept_and_a_wait_times_out() {
    let Some(server) = RestateServer::start() else { return };
    let (_dir, file, service) = serve_recording(&server, "waits", "waits");
    // Sent while the first step still runs: kept until the wait registers.
    let id = server.send("/waits/run", r#"{"slowMs": 1500}"#);
    wait_for_slow_step(&file);
    let (status, body) = server.signal("waits", &id, "gate", serde_json::json!({"ok": true}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&calls(&file), "last"), 0, "the signal came early: {:?}", calls(&file));
    let (status, body) = server.attach(&id);
    assert_eq!(status, 200, "{body}\n{}", service.log_tail());
    assert_eq!(json(&body), serde_json::json!({"ok": true, "last": "last"}));
    // Never signalled: the wait's timeout (a durable timer) fails the step,
    // and a signal sent after it is refused, as embedded.
    let id = server.send("/waits/run", r#"{"slowMs": 0}"#);
    let (status, body) = server.attach(&id);
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("step gate: no signal `go` arrived within 2s"), "{body}");
    // The failed wait ended the execution: whether its end or the step's
    // closing reaches the signals object first, the signal is refused.
    let (status, body) = server.signal("waits", &id, "gate", serde_json::json!({"ok": true}));
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no longer waits") || body.contains("has ended"), "{body}");
}

/// `POST`/`GET` `url` with a JSON body (or none): status, headers, body.
fn call(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> orchestr8::restate::http::HttpResponse {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    orchestr8::restate::http::http(method, url, &all, body, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// The step ids of a journal page's `event` events, in order.
fn steps_with<'a>(page: &'a Value, event: &str) -> Vec<&'a str> {
    let events = page["events"].as_array().unwrap().iter();
    events.filter(|e| e["event"] == event).map(|e| e["stepId"].as_str().unwrap()).collect()
}

/// The example's service (built with the `rest` feature) registered with
/// `server`, and its REST facade (`--wait-timeout wait`): both processes
/// and the facade's base URL.
fn serve_rest(server: &RestateServer, example: &str, wait: &str) -> (ServiceProcess, ServiceProcess, String) {
    let workflow = repo().join(format!("examples/{example}/workflow.json"));
    let binary = build_with(&workflow, "restate", example, &["rest"]);
    let service = serve(server, &binary, &[]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let rest = ServiceProcess::start(
        &binary,
        &["rest", "--addr", &addr, "--ingress", &server.ingress(), "--admin", &server.admin(), "--wait-timeout", wait],
        &[],
        port,
    );
    (service, rest, format!("http://{addr}"))
}

#[test]
fn the_rest_api_of_serve_answers_for_a_workflow_on_restate() {
    let Some(server) = RestateServer::start() else { return };
    let (service, _rest, api) = serve_rest(&server, "approval", "1s");
    // Execute: 202, the execution's id (the invocation's) and where to find it.
    let r = call("POST", &format!("{api}/workflows/execute"), Some(r#"{"input": {"topic": "the launch"}}"#), &[]);
    assert_eq!(r.status, 202, "{}\n{}", r.body, service.log_tail());
    let started = json(&r.body);
    let id = started["executionId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("inv_") && started["status"] == "running", "{started}");
    assert_eq!(started["links"]["self"], format!("/executions/{id}"));
    // An input off the workflow's types: 422 where it is wrong, nothing started.
    let r = call("POST", &format!("{api}/workflows/execute"), Some(r#"{"input": {"topic": 5}}"#), &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("/topic"), "{}", r.body);
    // Its state while it waits, then its signals: refused as serve refuses them.
    let r = call("GET", &format!("{api}/executions/{id}"), None, &[]);
    assert_eq!((r.status, json(&r.body)["status"].as_str()), (200, Some("running")), "{}", r.body);
    let signal =
        |step: &str, payload: &str| call("POST", &format!("{api}/executions/{id}/signals/{step}"), Some(payload), &[]);
    assert_eq!(signal("nope", "{}").status, 404);
    let r = signal("editor", r#"{"approved": true, "by": ""}"#);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(signal("legal", r#"{"ok": true, "note": "fine"}"#).status, 202);
    assert_eq!(signal("legal", r#"{"ok": true}"#).status, 409, "one signal per step");
    assert_eq!(signal("editor", r#"{"approved": true, "by": "Ada"}"#).status, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let done = loop {
        let r = call("GET", &format!("{api}/executions/{id}"), None, &[]);
        let doc = json(&r.body);
        if doc["status"] == "completed" {
            break doc;
        }
        assert!(Instant::now() < deadline && doc["status"] == "running", "{doc}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["output"]["legalNote"], "fine", "{done}");
    assert!(done["startedAt"].is_string() && done["endedAt"].is_string(), "{done}");
    // Its journal, as the contract's events, in pages.
    let r = call("GET", &format!("{api}/executions/{id}/journal"), None, &[]);
    let page = json(&r.body);
    let kinds: Vec<&str> = page["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"execution.started"), "{page}");
    assert_eq!(kinds.last(), Some(&"execution.completed"), "{page}");
    let succeeded = steps_with(&page, "step.succeeded");
    assert!(succeeded.contains(&"draft") && succeeded.contains(&"publish"), "{page}");
    assert_eq!(page["complete"], true);
    let r = call("GET", &format!("{api}/executions/{id}/journal?limit=2"), None, &[]);
    let first = json(&r.body);
    assert_eq!((first["events"].as_array().unwrap().len(), first["more"].as_bool()), (2, Some(true)), "{first}");
    assert_eq!(first["links"]["next"], format!("/executions/{id}/journal?after=2&limit=2"));
    // Waiting for an execution that waits for people: 202 after --wait-timeout.
    let r = call("POST", &format!("{api}/workflows/execute?wait=true"), Some(r#"{"input": {"topic": "t"}}"#), &[]);
    assert_eq!(r.status, 202, "{}", r.body);
    let waiting = json(&r.body)["executionId"].as_str().unwrap().to_owned();
    // Cancelled: 202, then `cancelled`; a second cancel is a 409.
    let r = call("POST", &format!("{api}/executions/{waiting}/cancel"), None, &[]);
    assert_eq!(r.status, 202, "{}", r.body);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let doc = json(&call("GET", &format!("{api}/executions/{waiting}"), None, &[]).body);
        if doc["status"] == "cancelled" {
            assert_eq!(doc["error"]["kind"], "cancelled", "{doc}");
            break;
        }
        assert!(Instant::now() < deadline, "{doc}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(call("POST", &format!("{api}/executions/{waiting}/cancel"), None, &[]).status, 409);
    // An Idempotency-Key is Restate's: the retry gets the same execution,
    // and the key reused for another request is refused, as serve does.
    let keyed = |topic: &str| {
        let body = format!(r#"{{"input": {{"topic": "{topic}"}}}}"#);
        call("POST", &format!("{api}/workflows/execute"), Some(&body), &[("idempotency-key", "k-1")])
    };
    let first = keyed("same");
    assert_eq!(first.status, 202, "{}", first.body);
    let first = json(&first.body)["executionId"].as_str().unwrap().to_owned();
    let again = keyed("same");
    assert_eq!(
        (again.status, json(&again.body)["executionId"].as_str()),
        (202, Some(first.as_str())),
        "{}",
        again.body
    );
    let other = keyed("other");
    assert_eq!(other.status, 422, "{}", other.body);
    assert!(other.body.contains("idempotency-key-reused") && other.body.contains(&first), "{}", other.body);
    let r = call(
        "POST",
        &format!("{api}/workflows/execute"),
        Some(r#"{"input": {"topic": "t"}}"#),
        &[("idempotency-key", "")],
    );
    assert_eq!(r.status, 400, "an empty key, as serve: {}", r.body);
    // Unknown executions.
    assert_eq!(call("GET", &format!("{api}/executions/inv_1nope"), None, &[]).status, 404);
    assert_eq!(call("GET", &format!("{api}/executions/x';DROP"), None, &[]).status, 404);
}

/// The REST API's journal of an execution on Restate holds the steps its
/// calls ran too: a map's items are calls of the `branch` handler.
#[test]
fn the_rest_api_journal_holds_the_steps_of_a_maps_items() {
    let Some(server) = RestateServer::start() else { return };
    let (service, _rest, api) = serve_rest(&server, "digest", "60s");
    let input = std::fs::read_to_string(repo().join("examples/digest/input.json")).unwrap();
    let body = format!(r#"{{"input": {input}}}"#);
    let r = call("POST", &format!("{api}/workflows/execute?wait=true"), Some(&body), &[]);
    assert_eq!(r.status, 200, "{}\n{}", r.body, service.log_tail());
    let id = json(&r.body)["executionId"].as_str().unwrap().to_owned();
    let r = call("GET", &format!("{api}/executions/{id}/journal?limit=1000"), None, &[]);
    let page = json(&r.body);
    let started = steps_with(&page, "step.started");
    for step in ["summaries[0].summarize", "summaries[1].summarize", "summaries[3].summarize", "write"] {
        assert!(started.contains(&step), "{step} is not in the journal: {page}");
    }
    assert_eq!((page["more"].as_bool(), page["complete"].as_bool()), (Some(false), Some(true)), "{page}");
}
