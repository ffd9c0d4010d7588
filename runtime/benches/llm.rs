//! The runtime's own cost per LLM call (issue 13): one execution of a
//! one-step workflow whose LLM agent calls a local mock server (request
//! building from the JSON prompt, the HTTP exchange, parsing, validation
//! against the output schema, typed output, journal in memory), next to a
//! bare `reqwest` POST of the same request body to the same server, in the
//! same run.
//!
//! The mock is a minimal HTTP/1.1 keep-alive server on 127.0.0.1, on a
//! thread of its own, that answers every request with one fixed chat
//! completion; the client side runs on a current-thread runtime, as the
//! generated program does. Both rows pay the same server and loopback costs,
//! so the difference is orchestr8's. A third row, the agent alone (no
//! executor, no journal), splits that difference; a fourth, a four-step
//! execution, gives the cost per call once an execution's own events
//! (started, completed, its output) are shared by several calls.
//!
//! Loopback round trips on this kind of machine drift by 10-30 % from one
//! second to the next, more than the difference measured, and criterion
//! measures each row in its own window of time. So after criterion's rows,
//! a paired summary runs the rows in turn, call after call (rotating which
//! goes first), and prints each row's median and its ratio to the bare call:
//! every row sees the same conditions. `O8_PAIRED_N` sets its rounds
//! (default 5,000; 0 skips it).
//!
//! Run: `cargo bench -p orchestr8-runtime --features llm --bench llm`.

use std::sync::{Arc, OnceLock};

use criterion::{criterion_group, criterion_main, Criterion};
use orchestr8_runtime::codegen::{
    slot, store, Agent, AgentContext, AgentStep, CancellationToken, ExecutionMeta, ExecutionOptions, MemoryStore, Node,
    Runtime, Workflow, WorkflowInfo,
};
use orchestr8_runtime::llm::LlmAgent;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Ticket {
    subject: String,
    body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
struct Triage {
    category: String,
    priority: i64,
}

const ANSWER: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1796309009,"model":"smollm2","choices":[{"index":0,"message":{"role":"assistant","content":"{\"category\":\"bug\",\"priority\":2}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":12,"total_tokens":132}}"#;

/// Serves `ANSWER` to every request on every connection, keep-alive.
async fn mock_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(16 * 1024);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                loop {
                    // Read one request: headers, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 8192];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + length);
                    if conn.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

fn agent(port: u16) -> LlmAgent<Ticket, Triage> {
    let definition = json!({
        "kind": "llm", "provider": "openai", "model": "smollm2",
        "baseUrl": format!("http://127.0.0.1:{port}/v1"),
        "prompt": {
            "system": "You are a support engineer who triages tickets.",
            "instructions": "Classify the ticket titled \"${input.subject}\".",
            "constraints": ["category is one of bug, billing, question, feature", "priority is 1 to 4"]
        },
        "input": {"type": "object", "properties": {"subject": {"type": "string"}, "body": {"type": "string"}}, "required": ["subject", "body"]},
        "output": {"type": "object", "properties": {
            "category": {"type": "string", "enum": ["bug", "billing", "question", "feature"]},
            "priority": {"type": "integer", "minimum": 1, "maximum": 4}
        }, "required": ["category", "priority"]}
    });
    let a = LlmAgent::new("classify", "1.0.0", &definition.to_string());
    a.check().unwrap();
    a
}

fn ticket() -> Ticket {
    Ticket {
        subject: "Export to CSV crashes the app".into(),
        body: "Since yesterday's update, clicking Export > CSV closes the app without a message.".into(),
    }
}

fn bench(c: &mut Criterion) {
    // The server on a thread of its own; the client side on one thread, as
    // the generated program runs (a current-thread runtime).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let server = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        server.block_on(async {
            tx.send(mock_server().await).unwrap();
            std::future::pending::<()>().await
        })
    });
    let port = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let llm = Arc::new(agent(port));
    let workflow = sequence(&llm, 1);
    let four = sequence(&llm, 4);
    let runtime = Runtime::new(MemoryStore::with_capacity(64));
    // The same body the agent sends, built once: the bare row pays only HTTP.
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body = request_body();

    // The agent alone (prompt, request, parse, validation), without the executor and journal.
    let alone = agent(port);
    let (cancel, config) = (CancellationToken::new(), serde_json::Value::Null);
    let meta = ExecutionMeta {
        execution_id: "e".into(),
        correlation_id: "e".into(),
        workflow_id: "bench".into(),
        workflow_version: "1.0.0".into(),
    };
    // One call of each row. Loopback timings drift by 10-20 % between
    // criterion's rows, so every row's iteration makes all three calls in
    // turn and counts only its own: the rows share the same conditions.
    let call = |row: usize| {
        rt.block_on(async {
            match row {
                0 => {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.bytes().await.unwrap().len(), ANSWER.len());
                }
                1 => {
                    let ctx = AgentContext::new(&cancel, &meta, "classify", 1, &config);
                    assert_eq!(Agent::run(&alone, &ctx, ticket()).await.unwrap().priority, 2);
                }
                2 => {
                    let out =
                        runtime.run(&workflow, &Slots::default(), ExecutionOptions::default()).await.unwrap().unwrap();
                    assert_eq!(out.priority, 2);
                }
                _ => {
                    let out =
                        runtime.run(&four, &Slots::default(), ExecutionOptions::default()).await.unwrap().unwrap();
                    assert_eq!(out.priority, 2);
                }
            }
        })
    };
    let mut group = c.benchmark_group("llm_call");
    const ROWS: [&str; 4] = ["bare reqwest", "llm agent alone", "orchestr8 step", "orchestr8 4-step execution"];
    for (row, name) in ROWS.into_iter().enumerate() {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut own = std::time::Duration::ZERO;
                for _ in 0..iters {
                    for other in (0..ROWS.len()).filter(|r| *r != row) {
                        call(other);
                    }
                    let t = std::time::Instant::now();
                    call(row);
                    own += t.elapsed();
                }
                own
            })
        });
    }
    // The executor and journal around an agent that does nothing.
    let noop = sequence(&Arc::new(Noop), 1);
    group.bench_function("orchestr8 step, no-op agent", |b| {
        b.iter(|| {
            rt.block_on(async {
                runtime.run(&noop, &Slots::default(), ExecutionOptions::default()).await.unwrap().unwrap();
            })
        })
    });
    group.finish();
    paired(&ROWS, call);
}

/// Each row's median over rounds in which every row makes one call, in
/// turn, and its ratio to the bare call's median (module docs: why).
fn paired(rows: &[&str], call: impl Fn(usize)) {
    let rounds: usize = std::env::var("O8_PAIRED_N").ok().and_then(|n| n.parse().ok()).unwrap_or(5_000);
    if rounds == 0 {
        return;
    }
    let mut times: Vec<Vec<std::time::Duration>> = vec![Vec::with_capacity(rounds); rows.len()];
    for round in 0..rounds {
        for k in 0..rows.len() {
            let row = (round + k) % rows.len();
            let t = std::time::Instant::now();
            call(row);
            times[row].push(t.elapsed());
        }
    }
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2].as_secs_f64() * 1e6
        })
        .collect();
    println!("\nllm_call, paired ({rounds} rounds; median, ratio to the bare call):");
    for (name, m) in rows.iter().zip(&medians) {
        println!("  {name:<28} {m:>8.1} µs  {:.3}×", m / medians[0]);
    }
    let per_call = medians[3] / 4.0;
    println!("  {:<28} {per_call:>8.1} µs  {:.3}×", "4-step execution, per call", per_call / medians[0]);
}

/// The steps' outputs, by step.
#[derive(Default)]
struct Slots([OnceLock<Triage>; 4]);

/// A workflow of `n` steps in sequence, each calling `agent` on the ticket;
/// its output is the last step's.
fn sequence<A: Agent<Input = Ticket, Output = Triage>>(agent: &Arc<A>, n: usize) -> Workflow<Slots, Triage> {
    const IDS: [&str; 4] = ["classify", "classify2", "classify3", "classify4"];
    let steps = (0..n).map(|i| {
        AgentStep::new(IDS[i], agent.clone(), |_: &Slots| Ok(ticket()), move |s: &Slots, o| store(&s.0[i], IDS[i], o))
            .node()
    });
    let last = n - 1;
    Workflow::new(WorkflowInfo::new("bench", "1.0.0", "h"), Node::sequence(steps), move |s: &Slots| {
        slot(&s.0[last], IDS[last]).cloned()
    })
}

/// An agent that answers at once: what the executor costs by itself.
struct Noop;

impl Agent for Noop {
    type Input = Ticket;
    type Output = Triage;
    fn id(&self) -> &str {
        "noop"
    }
    fn version(&self) -> &str {
        "1.0.0"
    }
    async fn run(&self, _: &AgentContext<'_>, _: Ticket) -> Result<Triage, orchestr8_runtime::AgentError> {
        Ok(Triage { category: "bug".into(), priority: 2 })
    }
}

/// A request body of the agent's size: the rendered prompt and the schema,
/// as the agent builds it (the bare row sends the same bytes).
fn request_body() -> Vec<u8> {
    let body = json!({
        "model": "smollm2",
        "messages": [
            {"role": "system", "content": "You are a support engineer who triages tickets.\n\nAnswer with a JSON value that matches the given JSON Schema, and nothing else."},
            // The default JSON prompt: one object in the user turn.
            {"role": "user", "content": serde_json::to_string_pretty(&json!({
                "instructions": format!("Classify the ticket titled \"{}\".", ticket().subject),
                "constraints": ["category is one of bug, billing, question, feature", "priority is 1 to 4"],
                "input": ticket()
            })).unwrap()}
        ],
        "max_tokens": 4096,
        "response_format": {"type": "json_schema", "json_schema": {"name": "output", "strict": true, "schema": {"type": "object", "properties": {
            "category": {"type": "string", "enum": ["bug", "billing", "question", "feature"]},
            "priority": {"type": "integer", "minimum": 1, "maximum": 4}
        }, "required": ["category", "priority"], "additionalProperties": false}}}
    });
    serde_json::to_vec(&body).unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
