//! What the runtime's fuzz targets check on one input. Shared, by path,
//! with `runtime/tests/fuzz_regressions.rs`, which replays the corpus and
//! every crash on stable.

use std::sync::Arc;

use orchestr8_runtime::journal::{parse, LineCache, Snapshot};
use orchestr8_runtime::program::Program;
use orchestr8_runtime::{Node, Workflow, WorkflowInfo};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An input type like the ones orchestr8 generates: integers of a width,
/// bounds, an enum, optional and nested fields, a keyword renamed.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Ticket {
    #[schemars(length(min = 1, max = 12))]
    ticket_id: String,
    priority: u8,
    #[schemars(range(min = -3, max = 40))]
    retries: Option<i64>,
    #[schemars(range(min = 0.0, max = 1.0))]
    score: f64,
    #[schemars(length(max = 4))]
    tags: Vec<String>,
    mood: Mood,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer: Option<Customer>,
    #[serde(rename = "self")]
    self_: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Mood {
    Calm,
    Angry,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
struct Customer {
    #[schemars(email)]
    email: String,
    #[schemars(range(min = 1, max = 99))]
    seats: u32,
}

/// The generated program's `--input` checks on arbitrary text: no panic,
/// and an accepted input's JSON is accepted again, unchanged. Returns
/// whether the input was accepted.
pub fn program_input(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else { return false };
    let workflow =
        Arc::new(Workflow::new(WorkflowInfo::new("fuzz", "1.0.0", "h"), Node::sequence([]), |_: &()| Ok(())));
    let schema = serde_json::to_value(schemars::schema_for!(Ticket)).unwrap();
    let program = Program::new(workflow, |_: Ticket, _| ()).input_schema(schema);
    let Ok((_, json)) = program.check_input(text) else { return false };
    match program.check_input(&json.to_string()) {
        Ok((_, again)) => assert_eq!(again, json, "the checked input changed when checked again"),
        Err(e) => panic!("an accepted input is rejected when checked again: {e}\n{json}"),
    }
    true
}

/// The journal reader on arbitrary bytes: no panic, and the events it
/// reads write back as lines that read again to as many events.
pub fn journal(data: &[u8]) {
    let Ok(read) = parse(data) else { return };
    let _ = read.snapshot();
    let mut out = Vec::new();
    let mut cache = LineCache::default();
    for event in &read.events {
        event.write_line(&mut out, &mut cache);
    }
    let again = parse(&out).expect("the journal's own lines read back");
    assert_eq!(again.events.len(), read.events.len());
    let _ = Snapshot::from_events(&again.events);
}
