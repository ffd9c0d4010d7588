//! `PROGRAM serve` under load and abuse (issue 16): large inputs, limits,
//! exposure, idempotent retries. Real clients over loopback; no timing
//! assertions (a short read timeout on a probe only guards against a
//! request that waits behind others).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orchestr8_runtime::codegen::{
    slot, store, Agent, AgentStep, BreakerRegistry, Node, Program, Workflow, WorkflowInfo,
};
use orchestr8_runtime::testing::MockAgent;
use serde_json::{json, Value};

mod common;
use common::http::*;

/// The state builder of n = 14 has started, and may go on (and panic).
static BUILDING_14: AtomicBool = AtomicBool::new(false);
static RELEASE_14: AtomicBool = AtomicBool::new(false);

struct State {
    input: Value,
    echo: OnceLock<Value>,
}

/// `limits` 1.0.0: one step `echo` calling `agent` with the input; the
/// output is the agent's output. Input: `{"tags": [..unique..], "n"?: int}`.
fn program<A: Agent<Input = Value, Output = Value>>(agent: A) -> Program<Value, State, Value> {
    let echo = AgentStep::new(
        "echo",
        Arc::new(agent),
        |s: &State| Ok(json!({"n": s.input.get("n").cloned().unwrap_or(Value::Null)})),
        |s: &State, out| store(&s.echo, "echo", out),
    )
    .node();
    let workflow = Workflow::with_registry(
        WorkflowInfo::new("limits", "1.0.0", "sha256:0"),
        Node::sequence(vec![echo]),
        |s: &State| Ok(json!({ "echo": slot(&s.echo, "echo")? })),
        &BreakerRegistry::new(16),
    );
    Program::new(Arc::new(workflow), |input: Value, _ids| {
        // A state builder that fails in the worst way for n = 13, and slowly for n = 14.
        if input.get("n") == Some(&json!(14)) {
            // Held until the test lets it fail (a hang guard of 30 s).
            BUILDING_14.store(true, Ordering::SeqCst);
            for _ in 0..3000 {
                if RELEASE_14.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("no state for 14");
        }
        if input.get("n") == Some(&json!(13)) {
            panic!("no state for 13");
        }
        State { input, echo: OnceLock::new() }
    })
    .input_schema(json!({
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "integer"}, "uniqueItems": true},
            "n": {"type": "integer"}
        }
    }))
}

fn ok_agent() -> MockAgent<Value, Value> {
    MockAgent::new("echo", "1.0.0").then_ok(json!({"ok": true}))
}

#[test]
fn large_unique_items_inputs_do_not_hold_up_health() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &["--body-limit", "4MiB"]);
    // Checked pairwise, 50,000 items are 1.25e9 comparisons: tens of
    // seconds per request. One request per worker thread would take every
    // worker, and /health would wait behind them.
    let tags: Vec<u64> = (0..50_000).collect();
    let body = json!({"input": {"tags": tags}}).to_string();
    let workers = std::thread::available_parallelism().map_or(2, usize::from).max(2);
    let posts: Vec<_> = (0..workers)
        .map(|_| {
            let (addr, body) = (server.addr.clone(), body.clone());
            std::thread::spawn(move || {
                request(&addr, "POST", "/workflows/execute", &[("Content-Type", "application/json")], body.as_bytes())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200)); // let the bodies arrive first
    let health = server.get_within("/health", Duration::from_secs(5));
    assert_eq!(health.status, 200, "{}", health.text());
    for post in posts {
        let r = post.join().unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
    }
    // A repeat is still found, and located.
    let mut tags: Vec<u64> = (0..50_000).collect();
    tags.push(49_999);
    let r = server.post("/workflows/execute", &json!({"input": {"tags": tags}}));
    let p = r.problem(422);
    assert_eq!(p["errors"][0]["pointer"], "/input/tags", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("item 50000 repeats item 49999"), "{p}");
}

#[test]
fn a_foreign_host_is_refused_and_allowed_hosts_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &["--allowed-host", "workflows.internal"]);
    let port = server.addr.rsplit_once(':').unwrap().1.to_owned();
    // A page at rebind.example resolving to 127.0.0.1 sends its own name.
    for host in [format!("rebind.example:{port}"), "rebind.example".into(), "127.0.0.1:1".into()] {
        let r = request(&server.addr, "GET", "/health", &[("Host", &host)], b"");
        let p = r.problem(421);
        assert!(p["detail"].as_str().unwrap().contains("not"), "{p}");
    }
    let r = request(
        &server.addr,
        "POST",
        "/workflows/execute",
        &[("Host", "rebind.example"), ("Content-Type", "application/json")],
        br#"{"input": {}}"#,
    );
    r.problem(421);
    for host in [format!("localhost:{port}"), format!("workflows.internal:{port}"), "Workflows.Internal".into()] {
        let r = request(&server.addr, "GET", "/health", &[("Host", &host)], b"");
        assert_eq!(r.status, 200, "{host}: {}", r.text());
    }
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    assert!(journaled(dir.path()).is_empty(), "nothing ran");
}

fn journaled(dir: &std::path::Path) -> Vec<String> {
    if dir.join(orchestr8_runtime::journal::LOG_DIR).exists() {
        journaled_executions(dir)
    } else {
        Vec::new()
    }
}

#[test]
fn cancel_takes_json_or_nothing_and_ids_are_uuid_v4() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(MockAgent::new("echo", "1.0.0").then_hang()), dir.path(), &[]);
    let r = server.post("/workflows/execute", &json!({"input": {}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = id_of(&r.json());
    let b = id.as_bytes();
    assert!(id.len() == 36 && b[14] == b'4' && matches!(b[19], b'8' | b'9' | b'a' | b'b'), "{id}");
    let path = format!("/executions/{id}/cancel");
    // What a cross-site form (or a no-cors fetch) can send.
    for (ct, body) in [
        ("application/x-www-form-urlencoded", &b"x=1"[..]),
        ("text/plain", b"{}"),
        ("multipart/form-data; boundary=x", b"--x--"),
        ("text/plain", b""),
    ] {
        let r = request(&server.addr, "POST", &path, &[("Content-Type", ct)], body);
        r.problem(415);
    }
    assert_eq!(server.get(&format!("/executions/{id}")).json()["cancelRequested"], false, "not cancelled");
    let r = request(&server.addr, "POST", &path, &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let r = request(&server.addr, "POST", &path, &[("Content-Type", "application/json")], b"{}");
    assert!(r.status == 202 || r.status == 409, "{}", r.text());
}

#[test]
fn a_bearer_token_guards_everything_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let var = "ORCHESTR8_TEST_SERVER_TOKEN_A";
    // SAFETY (edition 2024 wording aside): a variable no other test reads.
    std::env::set_var(var, "t0ken-of-this-test");
    let server = Server::start(program(ok_agent()), dir.path(), &["--auth-token-env", var]);
    let body = br#"{"input": {}}"#;
    let json = ("Content-Type", "application/json");
    for auth in [None, Some("Bearer wrong"), Some("Bearer t0ken-of-this-tes"), Some("Basic dDA=")] {
        let mut headers = vec![json];
        headers.extend(auth.map(|a| ("Authorization", a)));
        let r = request(&server.addr, "POST", "/workflows/execute", &headers, body);
        r.problem(401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        request(&server.addr, "GET", "/openapi.json", &headers[1..], b"").problem(401);
    }
    assert_eq!(server.get("/health").status, 200, "probes need no token");
    let ok = [json, ("Authorization", "Bearer t0ken-of-this-test")];
    let r = request(&server.addr, "POST", "/workflows/execute?wait=true", &ok, body);
    assert_eq!(r.status, 200, "{}", r.text());
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    assert_eq!(journaled(dir.path()).len(), 1, "only the authorised request ran");
}

#[test]
fn a_token_variable_that_is_not_set_stops_serve_before_it_listens() {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let args = ["limits", "serve", "--addr", "127.0.0.1:0", "--auth-token-env", "ORCHESTR8_TEST_UNSET_TOKEN_VAR"];
    let code = program(ok_agent()).run_with(
        args.iter().map(std::ffi::OsString::from).collect(),
        std::io::empty(),
        &mut out,
        &mut err,
    );
    let err = String::from_utf8_lossy(&err);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ORCHESTR8_TEST_UNSET_TOKEN_VAR") && err.contains("not set"), "{err}");
    assert!(out.is_empty() && !err.contains("serving"), "it never listened: {err}");
}

#[test]
fn executions_beyond_max_running_are_refused_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start(program(MockAgent::new("echo", "1.0.0").then_hang()), dir.path(), &["--max-running", "2"]);
    let ids: Vec<String> =
        (0..2).map(|_| id_of(&server.post("/workflows/execute", &json!({"input": {}})).json())).collect();
    let r = server.post("/workflows/execute", &json!({"input": {}}));
    assert_eq!(r.header("retry-after"), Some("1"));
    let p = r.problem(503);
    assert_eq!(p["type"], "urn:orchestr8:problem:too-many-executions", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("--max-running"), "{p}");
    assert_eq!(server.get("/health").json()["running"], 2);
    // One ends: there is room again.
    let r = request(&server.addr, "POST", &format!("/executions/{}/cancel", ids[0]), &[], b"");
    assert_eq!(r.status, 202, "{}", r.text());
    server.poll("/health", |h| h["running"] == 1);
    let r = server.post("/workflows/execute", &json!({"input": {}}));
    assert_eq!(r.status, 202, "{}", r.text());
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    assert_eq!(journaled(dir.path()).len(), 3, "the refused one wrote nothing");
}

fn post_keyed(server: &Server, path: &str, key: &str, body: &Value) -> Resp {
    let headers = [("Content-Type", "application/json"), ("Idempotency-Key", key)];
    request(&server.addr, "POST", path, &headers, body.to_string().as_bytes())
}

#[test]
fn a_retried_request_with_its_idempotency_key_gets_the_original_execution_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    let body = json!({"input": {"n": 1}, "correlationId": "order-7"});
    let first = post_keyed(&server, "/workflows/execute?wait=true", "key-1", &body);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("idempotent-replayed"), None);
    assert_eq!(first.header("x-correlation-id"), Some("order-7"));
    let id = id_of(&first.json());
    // The client did not hear the answer and retries: same key, same body
    // (members in another order, a number spelled otherwise).
    let again = json!({"correlationId": "order-7", "input": {"n": 1.0}});
    for path in ["/workflows/execute", "/workflows/execute?wait=true"] {
        let r = post_keyed(&server, path, "key-1", &again);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(r.header("x-correlation-id"), Some("order-7"), "headers as the original's");
        assert_eq!(r.json(), first.json(), "the original answer");
    }
    // The same key for another request is a client's mistake.
    let other = post_keyed(&server, "/workflows/execute", "key-1", &json!({"input": {"n": 2}}));
    let p = other.problem(422);
    assert_eq!(p["type"], "urn:orchestr8:problem:idempotency-key-reused", "{p}");
    assert_eq!(p["executionId"], id.as_str());
    // A request that starts nothing (bad input) does not use up its key.
    post_keyed(&server, "/workflows/execute", "key-2", &json!({"input": {"tags": [1, 1]}})).problem(422);
    let fixed = post_keyed(&server, "/workflows/execute", "key-2", &json!({"input": {"n": 3}}));
    assert_eq!(fixed.status, 202, "{}", fixed.text());
    let bad = request(
        &server.addr,
        "POST",
        "/workflows/execute",
        &[("Content-Type", "application/json"), ("Idempotency-Key", "")],
        br#"{"input": {}}"#,
    );
    bad.problem(400);
    let (code, _) = server.stop();
    assert_eq!(code, 0);

    // A new process reads the keys back from the journal.
    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    server.wait_for_line(|l| l.contains("2 idempotency keys read back"));
    let r = post_keyed(&server, "/workflows/execute", "key-1", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("idempotent-replayed"), Some("true"));
    let replayed = r.json();
    assert_eq!((replayed["executionId"].as_str(), &replayed["status"]), (Some(id.as_str()), &json!("completed")));
    assert_eq!(replayed["output"], first.json()["output"]);
    post_keyed(&server, "/workflows/execute", "key-1", &json!({"input": {"n": 2}})).problem(422);
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    assert_eq!(journaled(dir.path()).len(), 2, "one execution per key");
}

#[test]
fn concurrent_requests_with_one_key_start_one_execution() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    let answers: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let headers = [("Content-Type", "application/json"), ("Idempotency-Key", "same")];
                let r = request(&addr, "POST", "/workflows/execute", &headers, br#"{"input": {"n": 5}}"#);
                assert!(r.status == 200 || r.status == 202, "{}", r.text());
                id_of(&r.json())
            })
        })
        .collect();
    let ids: std::collections::BTreeSet<String> = answers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    assert_eq!(journaled(dir.path()).len(), 1);
}

#[test]
fn every_answer_is_well_formed_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    // An id that does not decode: axum's extractor answers it, as a problem now.
    let r = server.get("/executions/%FF");
    let p = r.problem(400);
    assert_eq!(p["instance"], "/executions/%FF", "{p}");
    let r = server.post("/workflows/execute?wait=tru%65", &json!({"input": {"n": 1}}));
    assert_eq!(r.status, 200, "percent-decoded: {}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let id = id_of(&r.json());
    for bad in ["limit=0", "limit=10001", "after=-1", "limit=%31x"] {
        let r = server.get(&format!("/executions/{id}/journal?{bad}"));
        let p = r.problem(400);
        assert!(p["detail"].as_str().unwrap().contains("must be"), "{bad}: {p}");
    }
    let r = server.get(&format!("/executions/{id}/journal?after=%31&limit=10000"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["events"][0]["seq"], 2, "after=1, decoded");
    assert_eq!(server.get(&format!("/executions/{id}")).header("cache-control"), Some("no-store"));
    assert_eq!(server.get("/openapi.json").header("cache-control"), None, "the document may be cached");
    // One access line per request, at info level.
    server.wait_for_line(|l| l.starts_with("[orchestr8] GET /executions/%FF 400 "));
    server.wait_for_line(|l| l.starts_with("[orchestr8] POST /workflows/execute 200 ") && l.ends_with("ms"));
    let (code, _) = server.stop();
    assert_eq!(code, 0);

    // `-q`: no access lines.
    let server = Server::start(program(ok_agent()), dir.path(), &["-q"]);
    assert_eq!(server.get("/health").status, 200);
    let (code, log) = server.stop();
    assert_eq!(code, 0);
    assert!(!log.iter().any(|l| l.contains("GET /health")), "{log:?}");
}

/// Validates `body` against `#/components/schemas/NAME` of the served document.
fn check_against(doc: &Value, name: &str, body: &Value) {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: {e}"));
    let errors: Vec<String> = validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{name} does not describe {body}: {errors:?}");
}

#[test]
fn the_openapi_document_describes_every_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    let doc = server.get("/openapi.json").json();
    let waited = server.post("/workflows/execute?wait=true", &json!({"input": {"n": 1}})).json();
    check_against(&doc, "Result", &waited);
    let id = id_of(&waited);
    check_against(&doc, "Execution", &server.get(&format!("/executions/{id}")).json());
    check_against(&doc, "JournalPage", &server.get(&format!("/executions/{id}/journal?limit=2")).json());
    check_against(&doc, "Health", &server.get("/health").json());
    for r in [
        server.get("/executions/nope"),
        server.post("/workflows/execute", &json!({"input": {"tags": [1, 1]}})),
        request(&server.addr, "POST", &format!("/executions/{id}/cancel"), &[], b""),
    ] {
        check_against(&doc, "Problem", &r.json());
    }
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    let server = Server::start(program(MockAgent::new("echo", "1.0.0").then_hang()), dir.path(), &[]);
    let accepted = server.post("/workflows/execute", &json!({"input": {}})).json();
    check_against(&doc, "Accepted", &accepted);
    let id = id_of(&accepted);
    let cancel = request(&server.addr, "POST", &format!("/executions/{id}/cancel"), &[], b"");
    check_against(&doc, "CancelRequested", &cancel.json());
    // Every operation documents its errors, and every answer has a body schema.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500") && responses.contains_key("421"), "{method} {path}");
            assert_eq!(responses.contains_key("403"), method == "post", "{method} {path}: the Origin check");
            for (status, r) in responses {
                assert!(r.get("content").is_some(), "{method} {path} {status} has no body schema");
            }
        }
    }
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}

#[test]
fn a_start_that_panics_frees_its_slot_and_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &["--max-running", "1"]);
    let thirteen = json!({"input": {"n": 13}});
    for _ in 0..3 {
        let p = server.post("/workflows/execute", &thirteen).problem(500);
        assert!(p["detail"].as_str().unwrap().contains("no state for 13"), "{p}");
    }
    // The slot is free (before: 503 too-many-executions, for ever).
    assert_eq!(server.post("/workflows/execute?wait=true", &json!({"input": {"n": 1}})).status, 200);
    assert_eq!(server.get("/health").json()["running"], 0);
    // A retry racing a start that fails is told so, not given an id that never existed.
    // Over 64 KiB: started on the blocking pool, as a slow start should be
    // (a state builder that blocks an async worker would hold up the retry).
    let fourteen = json!({"input": {"n": 14, "pad": "x".repeat(70_000)}});
    let first = {
        let (addr, body) = (server.addr.clone(), fourteen.to_string());
        std::thread::spawn(move || {
            let headers = [("Content-Type", "application/json"), ("Idempotency-Key", "k14")];
            request(&addr, "POST", "/workflows/execute", &headers, body.as_bytes())
        })
    };
    for _ in 0..3000 {
        if BUILDING_14.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(BUILDING_14.load(Ordering::SeqCst), "the first request reached its state builder");
    let retry = {
        let (addr, body) = (server.addr.clone(), fourteen.to_string());
        std::thread::spawn(move || {
            let headers = [("Content-Type", "application/json"), ("Idempotency-Key", "k14")];
            request(&addr, "POST", "/workflows/execute", &headers, body.as_bytes())
        })
    };
    std::thread::sleep(Duration::from_millis(500)); // the retry waits on the first's start
    RELEASE_14.store(true, Ordering::SeqCst);
    let retry = retry.join().unwrap();
    let first = first.join().unwrap();
    let mut statuses = [first.status, retry.status];
    statuses.sort();
    assert_eq!(statuses, [409, 500], "{} / {}", first.text(), retry.text());
    let unused = if retry.status == 409 { retry } else { first };
    assert_eq!(unused.problem(409)["type"], "urn:orchestr8:problem:idempotency-key-unused");
    let (code, _) = server.stop();
    assert_eq!(code, 0);
    assert_eq!(journaled(dir.path()).len(), 1, "only the n = 1 execution started");
}

#[test]
fn a_page_of_another_origin_cannot_start_or_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(program(ok_agent()), dir.path(), &[]);
    let headers = [("Content-Type", "application/json"), ("Origin", "https://evil.example")];
    let r = request(&server.addr, "POST", "/workflows/execute", &headers, br#"{"input": {}}"#);
    assert_eq!(r.problem(403)["type"], "urn:orchestr8:problem:cross-origin");
    let r = request(&server.addr, "POST", "/executions/x/cancel", &[("Origin", "null")], b"");
    r.problem(403);
    let own = format!("http://{}", server.addr);
    let headers = [("Content-Type", "application/json"), ("Origin", own.as_str())];
    let r = request(&server.addr, "POST", "/workflows/execute", &headers, br#"{"input": {}}"#);
    assert_eq!(r.status, 202, "{}", r.text());
    let (code, _) = server.stop();
    assert_eq!(code, 0);
}
