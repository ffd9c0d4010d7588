//! `orchestr8 eval`: bad eval files are located (snapshots), a scripted
//! model server makes one arm fail a known share of answers and the report
//! must find exactly the difference that implies, and the standard eval
//! runs against the real local model server.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use orchestr8::diagnostics::{render_human, render_json, RenderOptions};
use orchestr8::eval::file;
use serde_json::{json, Value};

mod common;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn orchestr8() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orchestr8"));
    cmd.env("NO_COLOR", "1").env_remove("ORCHESTR8_OPENAI_BASE_URL").env_remove("OPENAI_API_KEY");
    cmd
}

fn report(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    let name = format!("eval-invalid/{}", path.file_name().unwrap().to_string_lossy());
    let rejected = match file::check(&bytes, path.parent().unwrap()) {
        Ok((eval, warnings)) => {
            panic!("{name} should be invalid, read {} task(s), warnings {warnings:?}", eval.tasks.len())
        }
        Err(rejected) => rejected,
    };
    let human = render_human(&name, &rejected.text, &rejected.diagnostics, RenderOptions::default());
    let json = render_json(&name, &rejected.text, &rejected.diagnostics);
    format!("{human}---- json ----\n{json}")
}

#[test]
fn invalid_eval_files() {
    insta::glob!("eval-invalid/*.eval.json", |path| {
        insta::assert_snapshot!(report(path));
    });
}

#[test]
fn the_standard_eval_checks_clean() {
    let dir = repo().join("examples/prompt-eval");
    let bytes = std::fs::read(dir.join("standard.eval.json")).unwrap();
    let (eval, warnings) = file::check(&bytes, &dir).unwrap_or_else(|r| panic!("{:#?}", r.diagnostics));
    assert_eq!(warnings, vec![]);
    let ids: Vec<&str> = eval.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["classify", "extract", "rate", "list", "rewrite"]);
    for task in &eval.tasks {
        assert!(task.inputs.len() >= 5, "{}: {} inputs", task.id, task.inputs.len());
        assert!(!task.checks.is_empty(), "{}", task.id);
    }
}

#[test]
fn a_bad_eval_file_exits_2_with_located_errors_and_runs_nothing() {
    let out = tempfile::tempdir().unwrap();
    let path = repo().join("compiler/tests/eval-invalid/constraints-malformed.eval.json");
    let output = orchestr8().arg("eval").arg(&path).arg("--out").arg(out.path().join("r")).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error[E0604]") && stderr.contains("constraints-malformed.eval.json:"), "{stderr}");
    assert!(stderr.contains("invalid eval file; nothing was run"), "{stderr}");
    assert!(!out.path().join("r").exists(), "nothing is written for a bad file");
}

/// What the scripted server saw of one chat completion.
#[derive(Debug, Clone)]
struct Seen {
    json_arm: bool,
    n: u64,
}

/// A scripted OpenAI-compatible server on loopback: each answer is
/// `script(json_arm, input, request_number)` (a status and an answer), the
/// arm read from the rendered user turn (a JSON object for the JSON arm, a
/// fenced input for Markdown).
fn scripted_server(
    script: impl Fn(bool, &Value, usize) -> (u16, Value) + Send + Sync + 'static,
) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(script);
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (script, log) = (script.clone(), log.clone());
            std::thread::spawn(move || serve(stream, &*script, &log));
        }
    });
    (port, seen)
}

fn serve(stream: std::net::TcpStream, script: &dyn Fn(bool, &Value, usize) -> (u16, Value), log: &Mutex<Vec<Seen>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request: Value = serde_json::from_slice(&body).unwrap();
        let user = request["messages"][1]["content"].as_str().unwrap();
        let (json_arm, input) = match serde_json::from_str::<Value>(user) {
            Ok(object) => (true, object["input"].clone()),
            Err(_) => {
                let fenced = user.rsplit("```json\n").next().unwrap().split("\n```").next().unwrap();
                (false, serde_json::from_str(fenced).unwrap())
            }
        };
        let number = {
            let mut log = log.lock().unwrap();
            log.push(Seen { json_arm, n: input["n"].as_u64().unwrap() });
            log.len() - 1
        };
        let (status, answer) = script(json_arm, &input, number);
        let reply = if status == 200 {
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "model": "scripted",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.to_string()}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
            })
        } else {
            json!({"error": {"message": "scripted failure", "type": "invalid_request_error"}})
        };
        let text = reply.to_string();
        write!(
            writer,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )
        .unwrap();
    }
}

/// Runs `orchestr8 eval` against the scripted server on `port`.
fn eval_against(port: u16, eval: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    orchestr8()
        .arg("eval")
        .arg(eval)
        .args(args)
        .arg("--out")
        .arg(out)
        .env("ORCHESTR8_OPENAI_BASE_URL", format!("http://127.0.0.1:{port}/v1"))
        .output()
        .unwrap()
}

/// One task: reply politely to a person; the check is `contains "please"`.
fn polite_eval(dir: &Path, inputs: u64) -> PathBuf {
    let eval = json!({
        "schemaVersion": "1.0.0",
        "name": "scripted",
        "tasks": [{
            "id": "polite",
            "agent": {
                "kind": "llm", "provider": "openai", "model": "scripted",
                "prompt": {"system": "You reply politely.", "instructions": "Reply to ${input.name}.", "constraints": ["Say please."]},
                "input": {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}, "required": ["name", "n"]},
                "output": {"type": "object", "properties": {"reply": {"type": "string"}}, "required": ["reply"], "additionalProperties": false}
            },
            "inputs": (0..inputs).map(|n| json!({"name": format!("person {n}"), "n": n})).collect::<Vec<_>>(),
            "constraints": [{"path": "/reply", "contains": "please", "description": "asks politely"}]
        }]
    });
    let path = dir.join("scripted.eval.json");
    std::fs::write(&path, eval.to_string()).unwrap();
    path
}

#[test]
fn the_report_finds_the_difference_a_scripted_server_implies() {
    // The Markdown arm forgets "please" for inputs 0-3 of 10; the JSON arm
    // never does. The very first request is a 503, which the step's retry
    // policy absorbs (the same runtime path as a workflow step).
    let (port, seen) = scripted_server(|json_arm, input, number| {
        if number == 0 {
            return (503, Value::Null);
        }
        let polite = json_arm || input["n"].as_u64().unwrap() >= 4;
        (200, json!({"reply": if polite { "Please wait a moment." } else { "Wait." }}))
    });
    let dir = tempfile::tempdir().unwrap();
    let eval = polite_eval(dir.path(), 10);
    let out = dir.path().join("report");
    let output = eval_against(port, &eval, &out, &["--iterations", "2", "--seed", "7"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();

    // 20 pairs; constraints score 100 or 0; 8 pairs differ by +100.
    // Means 60 and 100: improvement (100 - 60) / 60 = +66.67%.
    // Wilcoxon: n = 8 tied differences, 12 zeros, more than 13 pairs, so the
    // normal approximation: W+ = 36, mean 18, variance 8*9*17/24 - (8^3-8)/48
    // = 40.5, z = 18/sqrt(40.5) = 2*sqrt(2), p = erfc(2) = 0.004677734981047266.
    let task = &report["tasks"][0];
    let constraints = &task["dimensions"][1];
    assert_eq!(constraints["dimension"], "constraints");
    assert_eq!(constraints["pairs"], 20);
    assert_eq!(constraints["means"], json!([60.0, 100.0]));
    assert!((constraints["improvementPercent"].as_f64().unwrap() - 200.0 / 3.0).abs() < 1e-9, "{constraints}");
    assert_eq!(constraints["meanDifference"], 40.0);
    let w = &constraints["wilcoxon"];
    assert_eq!(
        (w["n"].as_u64(), w["zeros"].as_u64(), w["wPlus"].as_f64(), w["wMinus"].as_f64()),
        (Some(8), Some(12), Some(36.0), Some(0.0))
    );
    assert_eq!(w["method"], "normal");
    assert!((w["z"].as_f64().unwrap() - 2.0 * 2f64.sqrt()).abs() < 1e-12, "{w}");
    assert!((constraints["pValue"].as_f64().unwrap() - 0.004677734981047266).abs() < 1e-12, "{constraints}");
    assert_eq!(constraints["significant"], true);
    assert_eq!(constraints["verdict"], "JSON better: +66.7% (p = 0.0047)");
    let [lo, hi] = [0, 1].map(|i| constraints["ci95"][i].as_f64().unwrap());
    assert!(0.0 < lo && lo < 40.0 && 40.0 < hi && hi <= 100.0, "{constraints}");
    // Structure and completeness are perfect in both arms: nothing to claim.
    for d in [0, 2] {
        let dim = &task["dimensions"][d];
        assert_eq!((dim["means"].clone(), dim["pValue"].as_f64()), (json!([100.0, 100.0]), Some(1.0)), "{dim}");
        assert_eq!(dim["significant"], false);
    }
    assert_eq!(task["checks"][0]["passPercent"], json!([60.0, 100.0]));
    assert_eq!(task["calls"][0]["failed"], 0);
    assert_eq!(task["calls"][1]["failed"], 0);
    // Every call's tokens are counted: 20 + 5 per call, the retried one once.
    let perf = &report["performance"];
    assert_eq!(
        perf["arms"][0]["inputTokens"].as_u64().unwrap() + perf["arms"][1]["inputTokens"].as_u64().unwrap(),
        40 * 20
    );
    for arm in 0..2 {
        for p in ["p50", "p95", "p99"] {
            assert!(perf["arms"][arm]["latencyMs"][p].as_f64().unwrap() > 0.0, "{perf}");
        }
    }
    assert!(perf["throughputOpsPerS"].as_f64().unwrap() > 0.0 && perf["peakMemoryMb"].as_f64().unwrap() > 1.0);

    // The arms interleave: each pair's two calls back to back, the same
    // input, in both orders across the run. (The first request was the 503.)
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 41);
    let calls = &seen[1..];
    let mut firsts = [0, 0];
    for pair in calls.chunks(2) {
        assert_eq!(pair[0].n, pair[1].n);
        assert_ne!(pair[0].json_arm, pair[1].json_arm);
        firsts[usize::from(pair[0].json_arm)] += 1;
    }
    assert!(firsts[0] > 0 && firsts[1] > 0, "{firsts:?}");

    // The human outputs say the same.
    assert!(stdout.contains("| polite | constraints | 20 | 60.0 | 100.0 | +66.7% |"), "{stdout}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("JSON better: +66.7% (p = 0.0047)") && md.contains("| asks politely | 60.0 | 100.0 |"), "{md}");
    let svg = std::fs::read_to_string(out.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{svg}");
    assert!(svg.contains("polite") && svg.contains("Markdown") && svg.contains("JSON"));
}

#[test]
fn failed_calls_score_zero_are_counted_apart_and_beyond_the_threshold_exit_1() {
    // Every JSON-arm call is rejected (400: not retried).
    let (port, _) =
        scripted_server(
            |json_arm, _, _| {
                if json_arm {
                    (400, Value::Null)
                } else {
                    (200, json!({"reply": "Please hold."}))
                }
            },
        );
    let dir = tempfile::tempdir().unwrap();
    let eval = polite_eval(dir.path(), 3);
    let out = dir.path().join("report");
    let output = eval_against(port, &eval, &out, &["--iterations", "2"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("6 of 12 calls failed (50.0%, more than --max-failed 10%)"), "{stderr}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let calls = &report["tasks"][0]["calls"];
    assert_eq!((calls[0]["failed"].as_u64(), calls[1]["failed"].as_u64()), (Some(0), Some(6)));
    // The JSON arm's own breaker (5 failures) opens on the fifth rejection;
    // the Markdown arm's is untouched.
    assert_eq!(calls[1]["failures"], json!({"circuit_open": 1, "provider_rejected": 5}));
    let structure = &report["tasks"][0]["dimensions"][0];
    assert_eq!(structure["means"], json!([100.0, 0.0]), "a failed call scores 0");
    // With a looser threshold the same run exits 0.
    let output = eval_against(port, &eval, &out, &["--iterations", "2", "--max-failed", "60"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}

/// Every number in the report is a finite number (none missing where data
/// exists); `where` names the place for the failure message.
fn assert_numbers(value: &Value, at: &str) {
    match value {
        Value::Number(n) => assert!(n.as_f64().is_some_and(f64::is_finite), "{at}: {n}"),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| assert_numbers(v, &format!("{at}/{i}"))),
        Value::Object(map) => map.iter().for_each(|(k, v)| assert_numbers(v, &format!("{at}/{k}"))),
        _ => {}
    }
}

/// The standard eval against llama.cpp's server with SmolLM2-135M, N = 1:
/// the run completes and the report is whole (what the model says is not
/// asserted, only that every figure was computed from it).
#[test]
fn the_standard_eval_runs_against_the_local_model() {
    let Some(llama) = common::LlamaServer::start() else { return };
    let out = tempfile::tempdir().unwrap();
    let output = orchestr8()
        .arg("eval")
        .arg(repo().join("examples/prompt-eval/standard.eval.json"))
        .args(["--iterations", "1", "--out"])
        .arg(out.path())
        .env("ORCHESTR8_OPENAI_BASE_URL", llama.base_url())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap()).unwrap();
    assert_numbers(&report, "");
    assert_eq!(report["setup"]["models"], json!(["smollm2"]));
    assert_eq!(report["interrupted"], false);
    let tasks = report["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 5);
    for task in tasks {
        let id = task["id"].as_str().unwrap();
        let inputs = task["inputs"].as_u64().unwrap();
        for arm in 0..2 {
            assert_eq!(task["calls"][arm]["calls"].as_u64(), Some(inputs), "{id}");
        }
        for d in task["dimensions"].as_array().unwrap() {
            assert_eq!(d["pairs"].as_u64(), Some(inputs), "{id}");
            for arm in 0..2 {
                let mean = d["means"][arm].as_f64().unwrap();
                assert!((0.0..=100.0).contains(&mean), "{id}: {d}");
            }
            let p = d["pValue"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&p), "{id}: {d}");
            assert!(d["ci95"].is_array() && !d["verdict"].as_str().unwrap().is_empty(), "{id}: {d}");
        }
        for c in task["checks"].as_array().unwrap() {
            for arm in 0..2 {
                assert!(c["passPercent"][arm].is_number(), "{id}: {c}");
            }
        }
    }
    let perf = &report["performance"];
    for arm in 0..2 {
        assert!(perf["arms"][arm]["inputTokens"].as_u64().unwrap() > 0, "{perf}");
        assert!(perf["arms"][arm]["latencyMs"]["p99"].as_f64().unwrap() > 0.0, "{perf}");
    }
    assert!(perf["peakMemoryMb"].as_f64().unwrap() > 1.0);
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    for needle in ["## Adherence", "## Performance", "### classify", "### rewrite", "## Method", "smollm2"] {
        assert!(md.contains(needle), "{needle}\n{md}");
    }
    assert!(!md.contains("NaN"), "{md}");
    assert!(stdout.contains("| **overall** | constraints | 30 |"), "{stdout}");
}

#[test]
fn an_agent_that_calls_openai_itself_without_a_key_stops_before_the_first_call() {
    let dir = tempfile::tempdir().unwrap();
    let eval = polite_eval(dir.path(), 1);
    let out = dir.path().join("report");
    let output = orchestr8().arg("eval").arg(&eval).arg("--out").arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("task `polite`: OPENAI_API_KEY is not set"), "{stderr}");
    assert!(!out.join("report.json").exists(), "no report for a run that did not start");
}
