//! `orchestr8 graph`, `inspect` and `completions`: output snapshots and exit codes.

use assert_cmd::Command;

fn orchestr8() -> Command {
    let mut cmd = Command::cargo_bin("orchestr8").unwrap();
    cmd.env("NO_COLOR", "1").current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

/// Runs the command, checks its exit code, and returns (stdout, stderr).
fn run(args: &[&str], code: i32) -> (String, String) {
    let out = orchestr8().args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    (stdout, stderr)
}

// graph

#[test]
fn graph_ticket_triage_mermaid() {
    let (out, err) = run(&["graph", "../examples/ticket-triage/workflow.json", "--format", "mermaid"], 0);
    assert_eq!(err, "");
    insta::assert_snapshot!(out);
}

#[test]
fn graph_ticket_triage_dot() {
    let (out, _) = run(&["graph", "../examples/ticket-triage/workflow.json", "--format", "dot"], 0);
    insta::assert_snapshot!(out);
}

#[test]
fn graph_document_pipeline_mermaid() {
    let (out, _) = run(&["graph", "../examples/document-pipeline/workflow.json", "--format", "mermaid"], 0);
    insta::assert_snapshot!(out);
}

#[test]
fn graph_document_pipeline_dot() {
    let (out, _) = run(&["graph", "../examples/document-pipeline/workflow.json", "--format", "dot"], 0);
    insta::assert_snapshot!(out);
}

/// Switches on an enum, a boolean and a string, one nested in a case, empty
/// cases: decisions with labelled edges that meet at their merge.
#[test]
fn graph_of_switches() {
    let (mermaid, err) = run(&["graph", "tests/codegen/switch.json"], 0);
    assert_eq!(err, "");
    assert!(mermaid.contains("    D_by_tier -->|\"#quot;free#quot;\"| S_free_note\n"), "{mermaid}");
    assert!(mermaid.contains("    D_by_tier -->|\"default\"| M_by_tier\n"), "{mermaid}");
    assert!(mermaid.contains("    S_pro_twice --> D_pro_speed\n"), "{mermaid}");
    assert!(mermaid.contains("    M_pro_speed --> M_by_tier\n"), "{mermaid}");
    let (dot, _) = run(&["graph", "tests/codegen/switch.json", "--format", "dot"], 0);
    assert!(dot.contains("\"switch:urgency\" -> \"merge:urgency\" [label=\"\\\"false\\\"\"];"), "{dot}");
    insta::assert_snapshot!(format!("{mermaid}\n{dot}"));
}

#[test]
fn graph_is_deterministic_and_declared_only_agrees() {
    let (a, _) = run(&["graph", "../examples/ticket-triage/workflow.json"], 0);
    let (b, _) = run(&["graph", "../examples/ticket-triage/workflow.json", "--format", "mermaid"], 0);
    assert_eq!(a, b, "mermaid is the default");
    let (c, _) = run(&["graph", "--declared-only", "tests/valid-fixture.json"], 0);
    let (d, _) = run(&["graph", "--declared-only", "tests/valid-fixture.json"], 0);
    assert_eq!(c, d);
}

#[test]
fn graph_escapes_descriptions_and_draws_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = serde_json::json!({
        "schemaVersion": "1.0.0",
        "metadata": {"id": "esc", "version": "1.0.0"},
        "agents": {"echo": {"kind": "rust", "crate": "x", "path": "x", "function": "echo",
            "input": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
            "output": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}},
        "steps": [
            {"id": "end", "description": "quote \" <b>bold</b> & #1 | `x`\nnext \\ line", "agent": "echo", "input": {"text": "a"}},
            {"id": "fan", "parallel": [
                {"id": "branch", "sequence": [
                    {"id": "one", "agent": "echo", "input": {"text": "${steps.end.output.text}"}},
                    {"id": "two", "agent": "echo", "input": {"text": "${steps.one.output.text} and ${steps.end.output.text}"}}
                ]},
                {"id": "solo", "agent": "echo", "input": {"text": "x"}}
            ]}
        ],
        "output": {"t": "${steps.two.output.text}", "all": "${steps.end.output}"}
    });
    let path = dir.path().join("w.json");
    std::fs::write(&path, serde_json::to_string_pretty(&workflow).unwrap()).unwrap();
    let path = path.to_str().unwrap();
    let (mermaid, _) = run(&["graph", "--declared-only", path], 0);
    let (dot, _) = run(&["graph", "--declared-only", path, "--format", "dot"], 0);
    insta::assert_snapshot!("graph_escaping_mermaid", mermaid);
    insta::assert_snapshot!("graph_escaping_dot", dot);
}

#[test]
fn graph_of_an_invalid_workflow_prints_diagnostics_and_exits_one() {
    let (out, err) = run(&["graph", "--declared-only", "tests/invalid/graph-unknown-agent.json"], 1);
    assert_eq!(out, "");
    assert!(err.contains("error[E0303]"), "{err}");
    assert!(err.contains("tests/invalid/graph-unknown-agent.json: invalid, 1 error"), "{err}");
}

#[test]
fn graph_of_a_missing_file_exits_two() {
    let (out, err) = run(&["graph", "does-not-exist.json"], 2);
    assert_eq!(out, "");
    assert!(err.contains("cannot read `does-not-exist.json`"), "{err}");
}

// inspect

#[test]
fn inspect_completed_with_retry_text() {
    let (out, err) = run(&["inspect", "tests/journals/completed-retry.jsonl"], 0);
    assert_eq!(err, "");
    insta::assert_snapshot!(out);
}

#[test]
fn inspect_completed_with_retry_json() {
    let (out, _) = run(&["inspect", "tests/journals/completed-retry.jsonl", "--format", "json"], 0);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["steps"][0]["attempts"], 3);
    insta::assert_snapshot!(out);
}

#[test]
fn inspect_completed_with_retry_mermaid() {
    let (out, _) = run(&["inspect", "tests/journals/completed-retry.jsonl", "--format", "mermaid"], 0);
    insta::assert_snapshot!(out);
}

/// Issue 17: a resumed journal shows where it went on, after what gap, and
/// the attempt the process ended in.
#[test]
fn inspect_resumed_text_and_json() {
    let (out, err) = run(&["inspect", "tests/journals/resumed.jsonl"], 0);
    assert_eq!(err, "");
    assert!(out.contains("resumed      at 5.00 s (seq 7), 4.88 s after the last event before it\n"), "{out}");
    insta::assert_snapshot!(out);
    let (json, _) = run(&["inspect", "tests/journals/resumed.jsonl", "--format", "json"], 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["resumes"], serde_json::json!([{"seq": 7, "atMs": 5000, "gapMs": 4880, "definitionHash": null}]));
    assert_eq!(value["durationMs"], 5010, "from the start, not the last run's 10 ms");
    let price = &value["steps"][1];
    assert_eq!(price["attemptDetails"][0]["error"]["kind"], "interrupted", "{price}");
    assert_eq!(price["attemptDetails"][1]["error"], serde_json::Value::Null, "{price}");
    let (mermaid, _) = run(&["inspect", "tests/journals/resumed.jsonl", "--format", "mermaid"], 0);
    assert!(mermaid.contains("    section execution\n    resumed (seq 7) :milestone, 5000, 0ms\n"), "{mermaid}");
}

/// Waits are hexagons with their signal; the data their payloads feed are edges.
#[test]
fn graph_approval_draws_waits() {
    let (mermaid, err) = run(&["graph", "../examples/approval/workflow.json", "--format", "mermaid"], 0);
    assert_eq!(err, "");
    assert!(mermaid.contains("S_editor{{\"editor<br/>signal: approval<br/>"), "{mermaid}");
    assert!(mermaid.contains("S_editor -.->|\"approved, by\"| S_publish"), "{mermaid}");
    let (dot, _) = run(&["graph", "../examples/approval/workflow.json", "--format", "dot"], 0);
    assert!(dot.contains("\"step:legal\" [label=\"legal\\nsignal: approval\\n"), "{dot}");
    insta::assert_snapshot!(format!("{mermaid}\n{dot}"));
}

/// A run that was suspended twice while steps waited, and resumed by signals.
#[test]
fn inspect_waits_suspensions_and_signals() {
    let (out, err) = run(&["inspect", "tests/journals/waited.jsonl"], 0);
    assert_eq!(err, "");
    assert!(
        out.contains("suspended    at 23 ms (seq 7), steps waiting for signals\nresumed      at 2 h 0 min (seq 8)"),
        "{out}"
    );
    assert!(out.contains("  editor   succeeded  signal approval"), "{out}");
    insta::assert_snapshot!(out);
    let (mermaid, _) = run(&["inspect", "tests/journals/waited.jsonl", "--format", "mermaid"], 0);
    assert!(mermaid.contains("    signal approval succeeded :done, 22, 7200002\n"), "{mermaid}");
    assert!(mermaid.contains("    suspended (seq 7) :milestone, 23, 0ms\n    resumed (seq 8)"), "{mermaid}");
    let (json, _) = run(&["inspect", "tests/journals/waited.jsonl", "--format", "json"], 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["state"], "completed");
    assert_eq!(value["suspensions"], serde_json::json!([{"seq": 7, "atMs": 23}, {"seq": 12, "atMs": 7200003}]));
    assert_eq!(value["steps"][1]["signal"], "approval");
    assert_eq!(value["steps"][1]["attempts"], 0);
    // Cut after the first suspension, the journal reads as waiting, not interrupted.
    let text = std::fs::read_to_string("tests/journals/waited.jsonl").unwrap();
    let cut: Vec<&str> = text.lines().take(7).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suspended.jsonl");
    std::fs::write(&path, cut.join("\n") + "\n").unwrap();
    let (json, _) = run(&["inspect", path.to_str().unwrap(), "--format", "json"], 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["state"], "waiting", "{value}");
    let (mermaid, _) = run(&["inspect", path.to_str().unwrap(), "--format", "mermaid"], 0);
    assert!(mermaid.contains("    signal approval waiting :active, 22, 23\n"), "{mermaid}");
    assert!(mermaid.contains("    suspended (seq 7) :milestone, 23, 0ms\n"), "{mermaid}");
    assert_eq!(value["error"], serde_json::Value::Null, "{value}");
    assert_eq!(value["steps"][1]["state"], "waiting", "{value}");
}

/// A switch's case not taken: its step is skipped, with the reason.
#[test]
fn inspect_switch_shows_skipped_steps_with_their_reason() {
    let (out, err) = run(&["inspect", "tests/journals/switched.jsonl"], 0);
    assert_eq!(err, "");
    assert!(out.contains("invoice     skipped"), "{out}");
    assert!(out.contains("switch route took case \"bug\""), "{out}");
    insta::assert_snapshot!(out);
    let (json, _) = run(&["inspect", "tests/journals/switched.jsonl", "--format", "json"], 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let steps = value["steps"].as_array().unwrap();
    let invoice = steps.iter().find(|s| s["id"] == "invoice").unwrap();
    assert_eq!(invoice["state"], "skipped");
    assert_eq!(invoice["skipReason"], "switch route took case \"bug\"");
    let report = steps.iter().find(|s| s["id"] == "bug_report").unwrap();
    assert_eq!(report["skipReason"], serde_json::Value::Null);
}

#[test]
fn inspect_failed_text() {
    let (out, _) = run(&["inspect", "tests/journals/failed.jsonl"], 0);
    insta::assert_snapshot!(out);
}

#[test]
fn inspect_failed_json() {
    let (out, _) = run(&["inspect", "tests/journals/failed.jsonl", "--format", "json"], 0);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["state"], "failed");
    assert_eq!(value["error"]["kind"], "fatal");
    insta::assert_snapshot!(out);
}

#[test]
fn inspect_failed_mermaid() {
    let (out, _) = run(&["inspect", "tests/journals/failed.jsonl", "--format", "mermaid"], 0);
    insta::assert_snapshot!(out);
}

#[test]
fn inspect_torn_journal_warns_and_shows_what_was_read() {
    let (out, err) = run(&["inspect", "tests/journals/torn.jsonl"], 0);
    assert!(err.starts_with("warning: tests/journals/torn.jsonl: line 11: last line is incomplete"), "{err}");
    insta::assert_snapshot!("inspect_torn_text", out);
    let (json, _) = run(&["inspect", "tests/journals/torn.jsonl", "--format", "json"], 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["error"]["kind"], "interrupted");
    assert_eq!(value["warnings"].as_array().unwrap().len(), 1);
}

#[test]
fn inspect_by_execution_id_in_journal_dir() {
    let (by_id, _) =
        run(&["inspect", "0f3c9a2e-1b7d-4c55-9e0a-6d2f8b1c4e77", "--journal-dir", "tests/journals/by-id"], 0);
    let (by_file, _) = run(&["inspect", "tests/journals/completed-retry.jsonl"], 0);
    assert_eq!(by_id, by_file);
}

#[test]
fn inspect_by_execution_id_in_a_server_log() {
    // Two segments of a served process, the lines of two executions interleaved.
    let dir = ["--journal-dir", "tests/journals/server-log"];
    let (by_id, err) = run(&[&["inspect", "0f3c9a2e-1b7d-4c55-9e0a-6d2f8b1c4e77"][..], &dir].concat(), 0);
    assert_eq!(err, "");
    let (by_file, _) = run(&["inspect", "tests/journals/completed-retry.jsonl"], 0);
    assert_eq!(by_id, by_file);
    let (other, _) = run(&[&["inspect", "7a1e5c3b-2d4f-4e6a-8b9c-0d1e2f3a4b5c"][..], &dir].concat(), 0);
    let (other_file, _) = run(&["inspect", "tests/journals/failed.jsonl"], 0);
    assert_eq!(other, other_file);
}

#[test]
fn inspect_missing_file_exits_two() {
    let (out, err) = run(&["inspect", "tests/journals/nope.jsonl"], 2);
    assert_eq!(out, "");
    assert_eq!(err, "error: cannot read journal `tests/journals/nope.jsonl`: no such file\n");
}

#[test]
fn inspect_unknown_execution_id_exits_two() {
    let (out, err) = run(&["inspect", "no-such-execution", "--journal-dir", "tests/journals"], 2);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "error: no execution `no-such-execution`: neither `tests/journals/no-such-execution.jsonl` nor the server \
         log in `tests/journals/log` has it (give a journal file, or the folder of journals with --journal-dir)\n"
    );
}

#[test]
fn inspect_unreadable_journal_exits_two() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"seq\":1}\nnot json\n").unwrap();
    let (out, err) = run(&["inspect", bad.to_str().unwrap()], 2);
    assert_eq!(out, "");
    assert!(err.starts_with("error: cannot read journal `"), "{err}");
    assert!(err.contains("journal line 1"), "{err}");

    let other = dir.path().join("other.jsonl");
    std::fs::write(&other, "").unwrap();
    let (_, err) = run(&["inspect", other.to_str().unwrap()], 2);
    assert!(err.contains("is not an orchestr8 journal: it has no `execution.started` event"), "{err}");

    let (_, err) = run(&["inspect", "tests/journals"], 2);
    assert!(err.contains("is a directory"), "{err}");
}

// completions

#[test]
fn completions_for_bash_mention_the_commands() {
    let (out, _) = run(&["completions", "bash"], 0);
    assert!(out.contains("validate"), "{out}");
    assert!(out.contains("inspect"));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (out, _) = run(&["completions", shell], 0);
        assert!(out.contains("validate"), "{shell}");
    }
    run(&["completions", "tcsh"], 2);
}

// every command

#[test]
fn every_command_has_an_example_in_its_help() {
    for command in ["graph", "inspect", "completions"] {
        let (out, _) = run(&[command, "--help"], 0);
        assert!(out.contains("Example") && out.contains(&format!("orchestr8 {command} ")), "{out}");
    }
}

#[test]
fn inspect_shows_token_usage_and_error_reasons() {
    let (out, err) = run(&["inspect", "tests/journals/llm-usage.jsonl"], 0);
    assert_eq!(err, "");
    assert!(out.contains("tokens       1019 total: 688 in (96 cached), 331 out, 3 calls"), "{out}");
    insta::assert_snapshot!(out);
    let (out, _) = run(&["inspect", "tests/journals/llm-usage.jsonl", "--format", "json"], 0);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["usage"]["calls"], 3);
    assert_eq!(value["steps"][0]["usage"]["inputTokens"], 412);
    assert_eq!(value["steps"][1]["error"]["reason"], "truncated");
}

/// Issue 18: a map is drawn once, in a frame that says what it maps over.
#[test]
fn graph_digest_draws_a_map_as_one_framed_body() {
    let (mermaid, err) = run(&["graph", "../examples/digest/workflow.json", "--format", "mermaid"], 0);
    assert_eq!(err, "");
    assert!(
        mermaid.contains("subgraph G_summaries[\"summaries (map: each article of input.articles, 4 at a time): One summary per article.\"]"),
        "{mermaid}"
    );
    insta::assert_snapshot!("graph_digest_mermaid", mermaid);
    let (dot, _) = run(&["graph", "../examples/digest/workflow.json", "--format", "dot"], 0);
    assert!(dot.contains("subgraph \"cluster_summaries\" {\n        label=\"summaries (map: each article"), "{dot}");
    assert!(dot.contains("style=bold;"), "{dot}");
}

/// Issue 18: a map's items are grouped under the map, by index, and the
/// map's row counts them.
#[test]
fn inspect_groups_a_maps_items_under_it() {
    let (out, err) = run(&["inspect", "tests/journals/mapped.jsonl"], 0);
    assert_eq!(err, "");
    assert!(out.contains("  summaries                 succeeded  4 items"), "{out}");
    assert!(out.contains("\n    summaries[1].summarize  failed"), "{out}");
    insta::assert_snapshot!("inspect_mapped_text", out);
    let (json, _) = run(&["inspect", "tests/journals/mapped.jsonl", "--format", "json"], 0);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ids: Vec<&str> = value["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "summaries",
            "summaries[0].summarize",
            "summaries[1].summarize",
            "summaries[2].summarize",
            "summaries[3].summarize",
            "write"
        ]
    );
}
