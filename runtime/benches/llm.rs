//! The runtime's own cost per LLM call (issue 13): one execution of a
//! one-step workflow whose LLM agent calls a local mock server (request
//! building from the JSON prompt, the HTTP exchange, parsing, validation
//! against the output schema, typed output, journal in memory), next to a
//! bare `reqwest` POST of the same request body to the same server, in the
//! same run.
//!
//! The mock is a minimal HTTP/1.1 keep-alive server on 127.0.0.1 that
//! answers every request with one fixed chat completion, so both rows pay
//! the same server and loopback costs and the difference is orchestr8's.
//!
//! Run: `cargo bench -p orchestr8-runtime --features llm --bench llm`.

use std::sync::{Arc, OnceLock};

use criterion::{criterion_group, criterion_main, Criterion};
use orchestr8_runtime::codegen::{
    slot, store, AgentStep, ExecutionOptions, MemoryStore, Node, Runtime, Workflow, WorkflowInfo,
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
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let port = rt.block_on(mock_server());
    let workflow = Workflow::new(
        WorkflowInfo::new("bench", "1.0.0", "h"),
        Node::sequence([AgentStep::new(
            "classify",
            Arc::new(agent(port)),
            |_: &OnceLock<Triage>| Ok(ticket()),
            |s: &OnceLock<Triage>, o| store(s, "classify", o),
        )
        .node()]),
        |s: &OnceLock<Triage>| slot(s, "classify").cloned(),
    );
    let runtime = Runtime::new(MemoryStore::with_capacity(64));
    // The same body the agent sends, built once: the bare row pays only HTTP.
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let body = request_body();

    let mut group = c.benchmark_group("llm_call");
    group.bench_function("bare reqwest", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let bytes = r.bytes().await.unwrap();
                assert_eq!(bytes.len(), ANSWER.len());
            })
        })
    });
    group.bench_function("orchestr8 step", |b| {
        b.iter(|| {
            rt.block_on(async {
                let out = runtime.run(&workflow, &OnceLock::new(), ExecutionOptions::default()).await.unwrap().unwrap();
                assert_eq!(out.priority, 2);
            })
        })
    });
    group.finish();
}

/// A request body of the agent's size: the rendered prompt and the schema,
/// as the agent builds it (the bare row sends the same bytes).
fn request_body() -> Vec<u8> {
    let body = json!({
        "model": "smollm2",
        "messages": [
            {"role": "system", "content": "You are a support engineer who triages tickets.\n\n## Constraints\n- category is one of bug, billing, question, feature\n- priority is 1 to 4\n\nAnswer with a JSON value that matches the given JSON Schema, and nothing else."},
            {"role": "user", "content": format!("Classify the ticket titled \"{}\".\n\n## Input\n{}", ticket().subject, serde_json::to_string_pretty(&ticket()).unwrap())}
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
