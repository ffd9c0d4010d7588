//! Scoring one answer on the three dimensions of the product spec, each
//! 0-100:
//!
//! - **structure**: the share of shape checks the answer passes: at every
//!   value the output schema describes, its `type`; at every object, each
//!   `required` member present and no member the schema does not allow
//!   (an object with `properties` and no `additionalProperties` schema is
//!   closed, as the generated Rust types are).
//! - **constraints**: the share of bounds satisfied: the schema's own
//!   (`minimum`, `maxLength`, `pattern`, `enum`, `maxItems`, ... at every
//!   value present) and the task's constraints.
//! - **completeness**: the share of expected fields present and non-empty
//!   (not null, not blank, not `[]` or `{}`): the schema's `required`
//!   members of every object present, and the task's `fields`.
//!
//! A dimension with nothing to check scores 100. An answer that is not
//! JSON scores 0 on all three; a call that failed is not scored here (the
//! report counts it apart and scores it 0).

use serde_json::Value;

use super::file::{Check, EvalTask, Rule};

/// One answer's scores.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Scores {
    /// Shape checks passed, in percent.
    pub structure: f64,
    /// Bounds and task constraints satisfied, in percent.
    pub constraints: f64,
    /// Expected fields present and non-empty, in percent.
    pub completeness: f64,
}

impl Scores {
    /// A failed call, or an answer that is not JSON.
    pub const ZERO: Scores = Scores { structure: 0.0, constraints: 0.0, completeness: 0.0 };

    /// The scores of one dimension, by its index in [`DIMENSIONS`].
    pub fn get(&self, dimension: usize) -> f64 {
        [self.structure, self.constraints, self.completeness][dimension]
    }
}

/// The dimensions, in report order.
pub const DIMENSIONS: [&str; 3] = ["structure", "constraints", "completeness"];

/// Scores and the outcome of each of the task's own checks (in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The three scores.
    pub scores: Scores,
    /// Whether each of the task's checks passed.
    pub checks: Vec<bool>,
}

/// Scores `answer` (the model's final answer as JSON, or `None` when it was
/// not JSON) to `input` for `task`.
pub fn score(task: &EvalTask, input: &Value, answer: Option<&Value>) -> Scored {
    let Some(answer) = answer else {
        return Scored { scores: Scores::ZERO, checks: vec![false; task.checks.len()] };
    };
    let schema = task.agent.common.output.as_ref().unwrap_or(&Value::Bool(true));
    // An answer of the wrong type altogether is no answer to score.
    if !type_fits(schema, schema, answer) {
        return Scored { scores: Scores::ZERO, checks: vec![false; task.checks.len()] };
    }
    let mut tally = Tally::default();
    tally.walk(schema, schema, answer);
    let checks: Vec<bool> = task.checks.iter().map(|c| passes(c, answer, input)).collect();
    let bounds = Ratio { pass: tally.bounds.pass + count(&checks), total: tally.bounds.total + checks.len() };
    let mut complete = tally.complete;
    for field in &task.fields {
        let ok = field.values(answer).is_some_and(|vs| vs.into_iter().all(non_empty));
        complete.add(ok);
    }
    Scored {
        scores: Scores {
            structure: tally.shape.percent(),
            constraints: bounds.percent(),
            completeness: complete.percent(),
        },
        checks,
    }
}

fn count(checks: &[bool]) -> usize {
    checks.iter().filter(|c| **c).count()
}

#[derive(Debug, Default, Clone, Copy)]
struct Ratio {
    pass: usize,
    total: usize,
}

impl Ratio {
    fn add(&mut self, ok: bool) {
        self.total += 1;
        self.pass += usize::from(ok);
    }

    fn percent(self) -> f64 {
        if self.total == 0 {
            100.0
        } else {
            100.0 * self.pass as f64 / self.total as f64
        }
    }

    fn plus(self, other: Ratio) -> Ratio {
        Ratio { pass: self.pass + other.pass, total: self.total + other.total }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    shape: Ratio,
    bounds: Ratio,
    complete: Ratio,
}

impl Tally {
    fn plus(self, other: Tally) -> Tally {
        Tally {
            shape: self.shape.plus(other.shape),
            bounds: self.bounds.plus(other.bounds),
            complete: self.complete.plus(other.complete),
        }
    }

    /// Every check `schema` makes of `value`, recursively.
    fn walk(&mut self, root: &Value, schema: &Value, value: &Value) {
        let schema = deref(root, schema);
        // A union: the branch the answer fits best is the one it meant.
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = schema.get(key) {
                let best = branches
                    .iter()
                    .map(|b| {
                        let mut t = Tally::default();
                        t.walk(root, b, value);
                        (type_fits(root, b, value), t)
                    })
                    // The branch whose type the value has, then the fewest
                    // failures, then the most checks (the object branch of an
                    // optional object over `null`).
                    .min_by_key(|(typed, t)| {
                        let failures = t.shape.total - t.shape.pass + t.bounds.total - t.bounds.pass;
                        (!typed, failures, std::cmp::Reverse(t.shape.total + t.complete.total))
                    })
                    .map(|(_, t)| t);
                if let Some(best) = best {
                    *self = self.plus(best);
                }
            }
        }
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for part in all {
                self.walk(root, part, value);
            }
        }
        if let Some(t) = schema.get("type") {
            let ok = match t {
                Value::String(t) => is_type(value, t),
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(|t| is_type(value, t)),
                _ => true,
            };
            self.shape.add(ok);
            if !ok {
                // What the value should have held is missing too.
                if let Some(Value::Array(required)) = schema.get("required") {
                    for _ in required {
                        self.shape.add(false);
                        self.complete.add(false);
                    }
                }
                return;
            }
        }
        self.bounds_of(schema, value);
        match value {
            Value::Object(members) => {
                let properties = schema.get("properties").and_then(Value::as_object);
                if let Some(Value::Array(required)) = schema.get("required") {
                    for name in required.iter().filter_map(Value::as_str) {
                        let member = members.get(name);
                        self.shape.add(member.is_some());
                        self.complete.add(member.is_some_and(non_empty));
                    }
                }
                let extra = schema.get("additionalProperties");
                for (name, member) in members {
                    match (properties.and_then(|p| p.get(name)), extra) {
                        (Some(sub), _) => self.walk(root, sub, member),
                        (None, Some(sub @ Value::Object(_))) => self.walk(root, sub, member),
                        (None, Some(Value::Bool(true))) => {}
                        // Closed: `false`, or properties listed and nothing else said.
                        (None, Some(_)) => self.shape.add(false),
                        (None, None) => self.shape.add(properties.is_none()),
                    }
                }
            }
            Value::Array(items) => {
                if let Some(sub) = schema.get("items").filter(|i| i.is_object()) {
                    for item in items {
                        self.walk(root, sub, item);
                    }
                }
            }
            _ => {}
        }
    }

    /// The schema's bounds that apply to `value`'s type.
    fn bounds_of(&mut self, schema: &Value, value: &Value) {
        let number = |k: &str| schema.get(k).and_then(Value::as_f64);
        let size = |k: &str| schema.get(k).and_then(Value::as_u64).map(|n| n as usize);
        if let Some(options) = schema.get("enum").and_then(Value::as_array) {
            self.bounds.add(options.iter().any(|o| same(o, value)));
        }
        if let Some(c) = schema.get("const") {
            self.bounds.add(same(c, value));
        }
        match value {
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                for ok in [
                    number("minimum").map(|m| x >= m),
                    number("maximum").map(|m| x <= m),
                    number("exclusiveMinimum").map(|m| x > m),
                    number("exclusiveMaximum").map(|m| x < m),
                    number("multipleOf").map(|m| m > 0.0 && ((x / m) - (x / m).round()).abs() < 1e-9),
                ]
                .into_iter()
                .flatten()
                {
                    self.bounds.add(ok);
                }
            }
            Value::String(s) => {
                let chars = s.chars().count();
                if let Some(m) = size("minLength") {
                    self.bounds.add(chars >= m);
                }
                if let Some(m) = size("maxLength") {
                    self.bounds.add(chars <= m);
                }
                if let Some(re) = schema.get("pattern").and_then(Value::as_str).and_then(|p| regex::Regex::new(p).ok())
                {
                    self.bounds.add(re.is_match(s));
                }
            }
            Value::Array(items) => {
                if let Some(m) = size("minItems") {
                    self.bounds.add(items.len() >= m);
                }
                if let Some(m) = size("maxItems") {
                    self.bounds.add(items.len() <= m);
                }
                if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
                    let distinct = items.iter().enumerate().all(|(i, a)| items[..i].iter().all(|b| !same(a, b)));
                    self.bounds.add(distinct);
                }
            }
            Value::Object(members) => {
                if let Some(m) = size("minProperties") {
                    self.bounds.add(members.len() >= m);
                }
                if let Some(m) = size("maxProperties") {
                    self.bounds.add(members.len() <= m);
                }
            }
            _ => {}
        }
    }
}

/// Whether `value` has a type `schema` allows (no `type`: any; a union:
/// any branch's).
fn type_fits(root: &Value, schema: &Value, value: &Value) -> bool {
    let schema = deref(root, schema);
    match schema.get("type") {
        Some(Value::String(t)) => is_type(value, t),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).any(|t| is_type(value, t)),
        _ => ["anyOf", "oneOf"].iter().all(|k| match schema.get(*k) {
            Some(Value::Array(branches)) => branches.iter().any(|b| type_fits(root, b, value)),
            _ => true,
        }),
    }
}

fn deref<'s>(root: &'s Value, schema: &'s Value) -> &'s Value {
    let mut node = schema;
    // Bounded: a `$ref` cycle must not loop.
    for _ in 0..32 {
        match node.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')).and_then(|p| root.pointer(p)) {
            Some(target) => node = target,
            None => break,
        }
    }
    node
}

fn is_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.as_f64().is_some_and(|x| x.fract() == 0.0),
        _ => true,
    }
}

/// JSON equality with numbers compared by value (`1` is `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    equal(a, b, false)
}

/// JSON equality, numbers by value, strings trimmed and ignoring case when
/// `loose` (an echo), recursively.
fn equal(a: &Value, b: &Value, loose: bool) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) if loose => x.trim().to_lowercase() == y.trim().to_lowercase(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equal(x, y, loose)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w, loose)))
        }
        _ => a == b,
    }
}

/// Present and not empty: not null, not blank, not `[]` or `{}`.
fn non_empty(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Whether `answer` passes `check`: every value the path reaches does; a
/// missing field fails.
fn passes(check: &Check, answer: &Value, input: &Value) -> bool {
    let Some(values) = check.path.values(answer) else { return false };
    values.into_iter().all(|v| match &check.rule {
        Rule::Range(b) => v.as_f64().is_some_and(|x| b.contains(x)),
        Rule::Length(b) => match v {
            Value::String(s) => b.contains(s.chars().count() as f64),
            Value::Array(a) => b.contains(a.len() as f64),
            _ => false,
        },
        Rule::Words(b) => v.as_str().is_some_and(|s| b.contains(s.split_whitespace().count() as f64)),
        Rule::Pattern(re) => v.as_str().is_some_and(|s| re.is_match(s)),
        Rule::Contains(term) => v.as_str().is_some_and(|s| s.to_lowercase().contains(term.as_str())),
        Rule::Excludes(term) => v.as_str().is_some_and(|s| !s.to_lowercase().contains(term.as_str())),
        Rule::Echoes(at) => {
            let expected = at.values(input).and_then(|vs| vs.first().copied());
            expected.is_some_and(|e| equal(e, v, true))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::file::check as check_file;
    use serde_json::json;

    fn task(output: Value, constraints: Value, fields: Value) -> EvalTask {
        let file = json!({
            "schemaVersion": "1.0.0",
            "name": "t",
            "tasks": [{
                "id": "t",
                "agent": {
                    "kind": "llm", "provider": "openai", "model": "m",
                    "prompt": {"system": "s", "instructions": "i"},
                    "input": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
                    "output": output
                },
                "inputs": [{"name": "Ada"}],
                "constraints": constraints,
                "fields": fields
            }]
        });
        let (eval, _) = check_file(file.to_string().as_bytes(), std::path::Path::new("."))
            .unwrap_or_else(|r| panic!("{:?}", r.diagnostics));
        eval.tasks.into_iter().next().unwrap()
    }

    fn output() -> Value {
        json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 10},
                "stars": {"type": "integer", "minimum": 1, "maximum": 5},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "note": {"type": "string"}
            },
            "required": ["name", "stars", "tags"],
            "additionalProperties": false
        })
    }

    #[test]
    fn a_perfect_answer_scores_100_everywhere() {
        let t = task(
            output(),
            json!([{"path": "/name", "echoes": "/name"}, {"path": "/tags/*", "words": {"max": 2}}]),
            json!(["/note"]),
        );
        let s = score(
            &t,
            &json!({"name": "Ada"}),
            Some(&json!({"name": "ada ", "stars": 4, "tags": ["a b"], "note": "n"})),
        );
        assert_eq!(s.scores, Scores { structure: 100.0, constraints: 100.0, completeness: 100.0 });
        assert_eq!(s.checks, [true, true]);
    }

    #[test]
    fn each_dimension_counts_its_own_checks() {
        let t = task(
            output(),
            json!([{"path": "/name", "echoes": "/name"}, {"path": "/tags/*", "words": {"max": 2}}]),
            json!(["/note"]),
        );
        // Bounds: name maxLength fails, tags maxItems fails; echo fails, words fails (one tag has 3 words).
        // Completeness: name, stars, tags present and non-empty; note missing -> 3 of 4.
        let answer = json!({"name": "Grace Hopper", "stars": "5", "tags": ["a", "b c d", "e", "f"], "x": 1});
        let s = score(&t, &json!({"name": "Ada"}), Some(&answer));
        // Shape: root type, required x3, name/stars/tags/4 items types (7), extra x: 1 fail.
        // root(1) + required(3) + name(1) + stars(1, fail) + tags(1) + items(4) + extra(1, fail) = 12, 10 pass.
        assert_eq!(s.scores.structure, 100.0 * 10.0 / 12.0);
        // name maxLength (fail), tags maxItems (fail), stars not checked (wrong type), 2 task checks (fail).
        assert_eq!(s.scores.constraints, 0.0);
        assert_eq!(s.scores.completeness, 75.0);
        assert_eq!(s.checks, [false, false]);
    }

    #[test]
    fn missing_and_empty_fields_and_non_json_answers() {
        let t = task(output(), json!([{"path": "/note", "excludes": "sorry"}]), json!([]));
        let s = score(&t, &json!({"name": "Ada"}), Some(&json!({"name": "", "stars": 2, "tags": []})));
        // Completeness: name blank, tags empty: 1 of 3. The check on a missing field fails.
        assert_eq!(s.scores.completeness, 100.0 / 3.0);
        assert_eq!(s.checks, [false]);
        assert_eq!(score(&t, &json!({}), None).scores, Scores::ZERO);
    }

    #[test]
    fn open_objects_unions_and_refs() {
        let schema = json!({
            "type": "object",
            "properties": {"v": {"anyOf": [{"$ref": "#/$defs/S"}, {"type": "null"}]}},
            "required": ["v"],
            "additionalProperties": true,
            "$defs": {"S": {"type": "string", "enum": ["a", "b"]}}
        });
        let t = task(schema, json!([]), json!([]));
        let s = score(&t, &json!({}), Some(&json!({"v": "c", "extra": 1})));
        // The string branch fits the shape; its enum fails. The extra member is allowed.
        assert_eq!(s.scores.structure, 100.0);
        assert_eq!(s.scores.constraints, 0.0);
        let s = score(&t, &json!({}), Some(&json!({"v": null})));
        assert_eq!((s.scores.structure, s.scores.constraints), (100.0, 100.0));
        let s = score(&t, &json!({}), Some(&json!({"v": 2})));
        assert_eq!(s.scores.structure, 100.0 * 2.0 / 3.0);
    }

    #[test]
    fn an_answer_of_the_wrong_type_scores_zero_and_a_wrongly_typed_member_misses_its_fields() {
        let t = task(output(), json!([]), json!([]));
        for wrong in [json!([]), json!(null), json!("hello")] {
            assert_eq!(score(&t, &json!({}), Some(&wrong)).scores, Scores::ZERO, "{wrong}");
        }
        let nested = json!({
            "type": "object",
            "properties": {"who": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}}, "required": ["name", "email"]}},
            "required": ["who"]
        });
        let t = task(nested, json!([]), json!([]));
        let flat = score(&t, &json!({}), Some(&json!({"who": "Ada Lopez"}))).scores;
        let close = score(&t, &json!({}), Some(&json!({"who": {"name": "Ada"}}))).scores;
        assert!(flat.completeness < close.completeness, "{flat:?} {close:?}");
        assert!(flat.structure < close.structure, "{flat:?} {close:?}");
    }

    #[test]
    fn an_optional_object_is_scored_as_the_object_it_is() {
        let schema = json!({
            "type": "object",
            "properties": {"address": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}},
            "required": ["address"],
            "$defs": {"A": {"type": "object", "properties": {"street": {"type": "string"}, "zip": {"type": "string"}}, "required": ["street", "zip"], "additionalProperties": false}}
        });
        let t = task(schema, json!([]), json!([]));
        let s = score(&t, &json!({}), Some(&json!({"address": {"street": "s"}}))).scores;
        // address, street present; zip missing: 2 of 3.
        assert_eq!(s.completeness, 200.0 / 3.0);
        let s = score(&t, &json!({}), Some(&json!({"address": null}))).scores;
        assert_eq!((s.structure, s.completeness), (100.0, 0.0));
    }

    #[test]
    fn echoes_compare_nested_values_loosely() {
        let input = json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}, "required": ["tags"]});
        let mut t = task(output(), json!([]), json!([]));
        t.checks = vec![Check {
            path: crate::eval::pointer::Pointer::parse("/tags").unwrap(),
            label: "echo".into(),
            rule: Rule::Echoes(crate::eval::pointer::Pointer::parse("/tags").unwrap()),
        }];
        let _ = input;
        let s = score(&t, &json!({"tags": [" A ", "b"]}), Some(&json!({"name": "x", "stars": 1, "tags": ["a", "B"]})));
        assert_eq!(s.checks, [true]);
    }

    #[test]
    fn range_length_pattern_contains() {
        let t = task(
            output(),
            json!([
                {"path": "/stars", "range": {"min": 2, "max": 4}},
                {"path": "/tags", "length": {"min": 2}},
                {"path": "/name", "pattern": "^[A-Z]"},
                {"path": "/note", "contains": "REFUND"},
                {"path": "/tags/*", "length": {"max": 3}}
            ]),
            json!([]),
        );
        let pass =
            score(&t, &json!({}), Some(&json!({"name": "Ada", "stars": 3, "tags": ["x", "yz"], "note": "a refund"})));
        assert_eq!(pass.checks, [true; 5]);
        let fail = score(&t, &json!({}), Some(&json!({"name": "ada", "stars": 5, "tags": ["long tag"], "note": "no"})));
        assert_eq!(fail.checks, [false; 5]);
    }
}
