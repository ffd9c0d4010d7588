//! `workflow.test.json`: cases for `orchestr8 test`, checked before anything
//! is built. Every mistake is located in the test file: a mock for a step
//! that does not exist, an attempt range that does not parse, a mocked
//! output that the agent's declared output schema rejects, a signal for a
//! step that does not wait or with a payload its schema rejects.

use std::collections::HashMap;

use orchestr8_schema::ast::{Step, Workflow};
use orchestr8_schema::source::{escape_pointer_token, SpanIndex};
use serde_json::{Map, Value};

use crate::agents::AgentSchemaSource;
use crate::diagnostics::{suggestion, Code, Diagnostic};

/// Checks a parsed test file against the workflow it tests.
pub fn check(test: &Value, spans: &SpanIndex, workflow: &Workflow, agents: &dyn AgentSchemaSource) -> Vec<Diagnostic> {
    let mut cx = Checker { spans, out: Vec::new() };
    let Some(cases) = cx.field(test, "", "cases").and_then(|c| cx.array(c, "/cases")) else {
        return cx.out;
    };
    if let Value::Object(top) = test {
        cx.unknown_keys(top, "", &["cases", "$schema"]);
    }
    let mut steps = Vec::new();
    let mut waits = Vec::new();
    let mut maps = Vec::new();
    collect(&workflow.steps, &mut steps, &mut waits, &mut maps);
    let step_ids: Vec<&str> = steps.iter().map(|(id, _)| *id).collect();
    let mut maps_of = HashMap::new();
    enclosing_maps(&workflow.steps, &mut Vec::new(), &mut maps_of);
    // A step's id, or one item's (`summaries[3].summarize`), named through exactly its maps.
    let step_of = |name: &str| -> String { item_step(name, &maps_of).unwrap_or(name).to_owned() };
    // Waits and maps succeed too: `expect.steps` may list them.
    let succeeding: Vec<&str> =
        step_ids.iter().copied().chain(waits.iter().map(|w| w.id.as_str())).chain(maps.iter().copied()).collect();
    for (i, case) in cases.iter().enumerate() {
        let at = format!("/cases/{i}");
        let Some(case_obj) = cx.object(case, &at) else { continue };
        cx.unknown_keys(case_obj, &at, &["name", "input", "mocks", "signals", "expect"]);
        if !matches!(case_obj.get("name"), Some(Value::String(_))) {
            cx.push(
                Code::TestFile,
                "every case needs a `name` (a string)".into(),
                &at,
                Some("add `\"name\": \"...\"`".into()),
            );
        }
        if let Some(mocks) = case_obj.get("mocks") {
            let mocks_at = format!("{at}/mocks");
            let Some(mocks) = cx.object(mocks, &mocks_at) else { continue };
            for (step, mock) in mocks {
                let step_at = format!("{mocks_at}/{}", escape_pointer_token(step));
                // A step in a map's body is mocked for every item, or for one (`MAP[INDEX].STEP`).
                match steps.iter().find(|(id, _)| *id == step_of(step)) {
                    Some((_, agent)) => cx.mock(mock, &step_at, workflow, agent, agents),
                    None => cx.unknown_step(step, &step_at, &step_ids),
                }
            }
        }
        if let Some(signals) = case_obj.get("signals") {
            let signals_at = format!("{at}/signals");
            if let Some(signals) = cx.object(signals, &signals_at) {
                for (step, signal) in signals {
                    let step_at = format!("{signals_at}/{}", escape_pointer_token(step));
                    match waits.iter().find(|w| w.id == *step) {
                        Some(wait) => cx.signal(signal, &step_at, &wait.wait.schema),
                        None => {
                            let ids: Vec<&str> = waits.iter().map(|w| w.id.as_str()).collect();
                            let help = suggestion(step, ids.iter().copied()).or_else(|| {
                                Some(if ids.is_empty() {
                                    "the workflow has no wait step".to_owned()
                                } else {
                                    format!("the wait steps are {}", ids.join(", "))
                                })
                            });
                            cx.no_such_step(
                                format!("the workflow has no wait step `{step}`"),
                                &step_at,
                                "not a wait step of the workflow",
                                help,
                            );
                        }
                    }
                }
            }
        }
        if let Some(expect) = case_obj.get("expect") {
            let expect_at = format!("{at}/expect");
            let Some(expect) = cx.object(expect, &expect_at) else { continue };
            cx.unknown_keys(expect, &expect_at, &["output", "error", "steps", "skipped", "attempts"]);
            if expect.contains_key("output") && expect.contains_key("error") {
                cx.push(
                    Code::TestFile,
                    "a case expects either an `output` or an `error`, not both".into(),
                    &expect_at,
                    None,
                );
            }
            if let Some(Value::Array(skipped)) = expect.get("skipped") {
                for (j, s) in skipped.iter().enumerate() {
                    let s_at = format!("{expect_at}/skipped/{j}");
                    match s.as_str() {
                        Some(id) if succeeding.contains(&id) => {}
                        Some(id) => cx.unknown_step(id, &s_at, &succeeding),
                        None => cx.push(Code::TestFile, "a step id is a string".into(), &s_at, None),
                    }
                }
            }
            if let Some(Value::Array(order)) = expect.get("steps") {
                for (j, s) in order.iter().enumerate() {
                    let s_at = format!("{expect_at}/steps/{j}");
                    match s.as_str() {
                        // The journal names a map's body steps per item: a bare id never succeeds.
                        Some(id) if maps_of.get(id).is_some_and(|maps| !maps.is_empty()) => {
                            let item: String = maps_of[id].iter().map(|m| format!("{m}[N].")).collect();
                            cx.no_such_step(
                                format!("step `{id}` runs once per item of a map: `steps` lists items' steps"),
                                &s_at,
                                "runs once per item",
                                Some(format!("name one item's, `{item}{id}` (N from 0)")),
                            )
                        }
                        Some(id) if succeeding.contains(&step_of(id).as_str()) => {}
                        Some(id) => cx.unknown_step(id, &s_at, &succeeding),
                        None => cx.push(Code::TestFile, "a step id is a string".into(), &s_at, None),
                    }
                }
            }
            if let Some(Value::Object(attempts)) = expect.get("attempts") {
                for id in attempts.keys() {
                    if !step_ids.contains(&step_of(id).as_str()) {
                        cx.unknown_step(id, &format!("{expect_at}/attempts/{}", escape_pointer_token(id)), &step_ids);
                    }
                }
            }
        }
    }
    cx.out
}

/// The maps enclosing each step, outermost first (none for most steps).
fn enclosing_maps<'a>(steps: &'a [Step], around: &mut Vec<&'a str>, out: &mut HashMap<&'a str, Vec<&'a str>>) {
    for step in steps {
        out.insert(step.id(), around.clone());
        let map = matches!(step, Step::Map(_));
        if map {
            around.push(step.id());
        }
        for list in step.child_lists() {
            enclosing_maps(list.steps, around, out);
        }
        if map {
            around.pop();
        }
    }
}

/// The step an item's name (`a[1].b[2].c`) names, when it is well formed
/// and names exactly the maps around that step; `None` otherwise (a plain
/// id is looked up as it is).
fn item_step<'n>(name: &'n str, maps_of: &HashMap<&str, Vec<&str>>) -> Option<&'n str> {
    let mut chain = Vec::new();
    let mut rest = name;
    while let Some((map, after)) = rest.split_once('[') {
        let (index, tail) = after.split_once("].")?;
        index.parse::<usize>().ok()?;
        chain.push(map);
        rest = tail;
    }
    (!chain.is_empty() && maps_of.get(rest).is_some_and(|maps| *maps == chain)).then_some(rest)
}

/// Agent steps, with their agent ids, wait steps and map steps, in document order.
fn collect<'a>(
    steps: &'a [Step],
    out: &mut Vec<(&'a str, &'a str)>,
    waits: &mut Vec<&'a orchestr8_schema::ast::WaitStep>,
    maps: &mut Vec<&'a str>,
) {
    for step in steps {
        match step {
            Step::Agent(s) => out.push((&s.id, &s.agent)),
            Step::Wait(w) => waits.push(w),
            other => {
                if let Step::Map(m) = other {
                    maps.push(&m.id);
                }
                other.child_lists().iter().for_each(|l| collect(l.steps, out, waits, maps))
            }
        }
    }
}

struct Checker<'a> {
    spans: &'a SpanIndex,
    out: Vec<Diagnostic>,
}

impl Checker<'_> {
    /// An error at `pointer` (its key, or its value).
    fn error(&self, code: Code, message: String, pointer: &str) -> Diagnostic {
        Diagnostic::error(code, message, pointer, self.spans.key_or_value(pointer))
    }

    fn push(&mut self, code: Code, message: String, pointer: &str, help: Option<String>) {
        let d = self.error(code, message, pointer).with_optional_help(help);
        self.out.push(d);
    }

    /// A step the workflow does not have (E0502), labelled so.
    fn no_such_step(&mut self, message: String, pointer: &str, label: &str, help: Option<String>) {
        let d = self.error(Code::TestUnknownStep, message, pointer).with_label(label).with_optional_help(help);
        self.out.push(d);
    }

    fn field<'v>(&mut self, value: &'v Value, at: &str, key: &str) -> Option<&'v Value> {
        let found = value.get(key);
        if found.is_none() {
            self.push(
                Code::TestFile,
                format!("missing `{key}`"),
                at,
                Some(format!("a test file is `{{\"{key}\": [...]}}`")),
            );
        }
        found
    }

    fn array<'v>(&mut self, value: &'v Value, at: &str) -> Option<&'v Vec<Value>> {
        let found = value.as_array();
        if found.is_none() {
            self.push(Code::TestFile, "expected a list".into(), at, None);
        }
        found
    }

    fn object<'v>(&mut self, value: &'v Value, at: &str) -> Option<&'v Map<String, Value>> {
        let found = value.as_object();
        if found.is_none() {
            self.push(Code::TestFile, "expected an object".into(), at, None);
        }
        found
    }

    fn unknown_keys(&mut self, map: &Map<String, Value>, at: &str, known: &[&str]) {
        for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
            let help = suggestion(key, known.iter().copied());
            self.push(
                Code::TestFile,
                format!("unknown field `{key}`"),
                &format!("{at}/{}", escape_pointer_token(key)),
                help,
            );
        }
    }

    fn unknown_step(&mut self, id: &str, at: &str, step_ids: &[&str]) {
        let help = suggestion(id, step_ids.iter().copied())
            .or_else(|| Some(format!("the agent steps are {}", step_ids.join(", "))));
        self.no_such_step(
            format!("the workflow has no agent step `{id}`"),
            at,
            "not an agent step of the workflow",
            help,
        );
    }

    /// A step's mock: one reply, or replies by attempt (`"1"`, `"2-3"`, `"*"`).
    fn mock(&mut self, mock: &Value, at: &str, workflow: &Workflow, agent: &str, agents: &dyn AgentSchemaSource) {
        let Some(map) = self.object(mock, at) else { return };
        let is_reply = ["output", "error", "fatal", "hang", "delayMs"].iter().any(|k| map.contains_key(*k));
        let output_schema = workflow.agents.get(agent).and_then(|definition| {
            agents.schemas(agent, definition, &format!("/agents/{agent}")).output.map(|s| s.schema)
        });
        if is_reply {
            self.reply(map, at, output_schema.as_ref());
            return;
        }
        for (key, reply) in map {
            let reply_at = format!("{at}/{}", escape_pointer_token(key));
            if !attempt_key_ok(key) {
                self.push(
                    Code::TestFile,
                    format!("`{key}` is not an attempt: write `\"1\"`, a range such as `\"2-3\"`, or `\"*\"`"),
                    &reply_at,
                    None,
                );
                continue;
            }
            if let Some(reply) = self.object(reply, &reply_at) {
                self.reply(reply, &reply_at, output_schema.as_ref());
            }
        }
    }

    /// A signal for a wait step: `{"payload": ..., "atMs": N}`.
    fn signal(&mut self, signal: &Value, at: &str, schema: &Value) {
        let Some(map) = self.object(signal, at) else { return };
        self.unknown_keys(map, at, &["payload", "atMs"]);
        if map.get("atMs").is_some_and(|n| n.as_u64().is_none()) {
            self.push(Code::TestFile, "`atMs` is a whole number of milliseconds".into(), &format!("{at}/atMs"), None);
        }
        match map.get("payload") {
            Some(payload) => self.fits(
                payload,
                &format!("{at}/payload"),
                schema,
                "the signal's payload does not fit the wait's schema",
                "a signal carries what the wait's `schema` describes: fix the payload or the schema",
            ),
            None => self.push(Code::TestFile, "a signal needs a `payload`".into(), at, None),
        }
    }

    /// Reports where `value` does not fit `schema`.
    fn fits(&mut self, value: &Value, at: &str, schema: &Value, what: &str, help: &str) {
        match jsonschema::validator_for(schema) {
            Ok(validator) => {
                for error in validator.iter_errors(value) {
                    let pointer = format!("{at}{}", error.instance_path().as_str());
                    self.push(Code::TestMockOutput, format!("{what}: {error}"), &pointer, Some(help.to_owned()));
                }
            }
            Err(e) => self.push(Code::Internal, format!("the schema does not compile: {e}"), at, None),
        }
    }

    fn reply(&mut self, reply: &Map<String, Value>, at: &str, output_schema: Option<&Value>) {
        self.unknown_keys(reply, at, &["output", "error", "fatal", "hang", "delayMs"]);
        let kinds = ["output", "error", "fatal", "hang"].iter().filter(|k| reply.contains_key(**k)).count();
        if kinds != 1 {
            self.push(
                Code::TestFile,
                "a mocked reply has exactly one of `output`, `error` (retryable), `fatal` or `hang`".into(),
                at,
                None,
            );
        }
        if let (Some(output), Some(schema)) = (reply.get("output"), output_schema) {
            self.fits(
                output,
                &format!("{at}/output"),
                schema,
                "the mocked output does not fit the agent's output schema",
                "a mock returns what the agent would: fix the value or the declaration",
            );
        }
    }
}

fn attempt_key_ok(key: &str) -> bool {
    let number = |s: &str| s.parse::<u32>().is_ok_and(|n| n >= 1);
    key == "*"
        || number(key)
        || key
            .split_once('-')
            .is_some_and(|(a, b)| number(a) && number(b) && a.parse::<u32>().ok() <= b.parse::<u32>().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn attempt_keys() {
        for ok in ["1", "2-3", "*", "4-4"] {
            assert!(super::attempt_key_ok(ok), "{ok}");
        }
        for bad in ["0", "3-2", "a", "1-", "", "-1"] {
            assert!(!super::attempt_key_ok(bad), "{bad}");
        }
    }
}
