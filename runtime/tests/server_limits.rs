//! `PROGRAM serve` under load and abuse (issue 16): large inputs, limits,
//! exposure, idempotent retries. Real clients over loopback; no timing
//! assertions (a short read timeout on a probe only guards against a
//! request that waits behind others).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use orchestr8_runtime::codegen::{
    slot, store, Agent, AgentStep, BreakerRegistry, Node, Program, Workflow, WorkflowInfo,
};
use orchestr8_runtime::testing::MockAgent;
use serde_json::{json, Value};

mod common;
use common::http::*;

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
    Program::new(Arc::new(workflow), |input: Value, _ids| State { input, echo: OnceLock::new() }).input_schema(json!({
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
