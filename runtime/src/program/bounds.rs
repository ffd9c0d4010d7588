//! The input schema's bounds that the input's Rust types cannot hold, checked
//! on the parsed input: a small JSON Schema checker for the keywords the
//! compiler's type model leaves to run time.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

use serde::Serialize;
use serde_json::{Number, Value};

use super::{escape_pointer, one_line};

/// Checks the bounds of the input schema that its Rust types cannot hold:
/// `minimum`/`maximum` (and exclusive), `multipleOf`, lengths, item and
/// property counts, `uniqueItems` and `const`. Types, required and unknown
/// fields and enums were checked by deserializing. `pattern` and `format`
/// are not checked (the compiler warns about them).
pub(crate) fn check_bounds(root: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), InputError> {
    let Value::Object(s) = schema else { return Ok(()) };
    if let Some(target) = s.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
        if let Some(resolved) = root.pointer(target) {
            // Recursive types stop at the data's own depth, which is finite.
            return check_bounds(root, resolved, value, at);
        }
    }
    let fail = |what: String| Err(InputError { pointer: at.to_owned(), message: what });
    let num = |k: &str| s.get(k).and_then(Value::as_f64);
    let count = |k: &str| s.get(k).and_then(Value::as_u64);
    if let Some(c) = s.get("const") {
        if c != value {
            return fail(format!("must be {c}"));
        }
    }
    match value {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(m) = num("minimum").filter(|m| x < *m) {
                return fail(format!("{n} is less than the minimum {m}"));
            }
            if let Some(m) = num("maximum").filter(|m| x > *m) {
                return fail(format!("{n} is more than the maximum {m}"));
            }
            if let Some(m) = num("exclusiveMinimum").filter(|m| x <= *m) {
                return fail(format!("{n} must be more than {m}"));
            }
            if let Some(m) = num("exclusiveMaximum").filter(|m| x >= *m) {
                return fail(format!("{n} must be less than {m}"));
            }
            if let Some(m) = num("multipleOf").filter(|m| *m > 0.0 && (x / m).fract().abs() > 1e-9) {
                return fail(format!("{n} is not a multiple of {m}"));
            }
        }
        Value::String(text) => {
            let len = text.chars().count() as u64;
            if let Some(m) = count("minLength").filter(|m| len < *m) {
                return fail(format!("is {len} characters long, fewer than {m}"));
            }
            if let Some(m) = count("maxLength").filter(|m| len > *m) {
                return fail(format!("is {len} characters long, more than {m}"));
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(m) = count("minItems").filter(|m| len < *m) {
                return fail(format!("has {len} items, fewer than {m}"));
            }
            if let Some(m) = count("maxItems").filter(|m| len > *m) {
                return fail(format!("has {len} items, more than {m}"));
            }
            if s.get("uniqueItems") == Some(&Value::Bool(true)) {
                if let Some((first, i)) = first_repeat(items) {
                    return fail(format!("item {i} repeats item {first}"));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_bounds(root, item_schema, item, &format!("{at}/{i}"))?;
                }
            }
        }
        Value::Object(map) => {
            let len = map.len() as u64;
            if let Some(m) = count("minProperties").filter(|m| len < *m) {
                return fail(format!("has {len} properties, fewer than {m}"));
            }
            if let Some(m) = count("maxProperties").filter(|m| len > *m) {
                return fail(format!("has {len} properties, more than {m}"));
            }
            let props = s.get("properties").and_then(Value::as_object);
            for (key, v) in map {
                let sub = props.and_then(|p| p.get(key)).or_else(|| s.get("additionalProperties"));
                if let Some(sub) = sub {
                    check_bounds(root, sub, v, &format!("{at}/{}", escape_pointer(key)))?;
                }
            }
        }
        _ => {}
    }
    // An optional value (`anyOf: [T, {type: null}]`): the branch that is not null.
    for key in ["anyOf", "oneOf"] {
        if let (Some(Value::Array(branches)), false) = (s.get(key), value.is_null()) {
            for b in branches.iter().filter(|b| b.get("type").and_then(Value::as_str) != Some("null")) {
                check_bounds(root, b, value, at)?;
            }
        }
    }
    Ok(())
}

/// A value of the input that does not fit its type or bounds, located by a
/// JSON pointer (`""`: the whole input). Displays as `invalid input at
/// POINTER: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct InputError {
    /// RFC 6901 pointer into the input.
    pub pointer: String,
    /// What is wrong, on one line.
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() { "the top level" } else { &self.pointer };
        write!(f, "invalid input at {at}: {}", self.message)
    }
}

/// The typed input as the JSON the journal records, checked against the
/// schema's bounds (the types already held the shape): what every way in
/// (a run, `serve`, `--test`) does after parsing.
pub(crate) fn checked_json<I: Serialize>(schema: Option<&Value>, input: &I) -> Result<Value, InputError> {
    let json = serde_json::to_value(input)
        .map_err(|e| InputError { pointer: String::new(), message: one_line(&e.to_string()) })?;
    if let Some(schema) = schema {
        check_bounds(schema, schema, &json, "")?;
    }
    Ok(json)
}

/// The first item equal to an earlier one, as `(earlier, later)` indexes, in
/// JSON Schema's sense of equality (numbers by value, objects regardless of
/// key order). Items are bucketed by a hash of that equality, so this is
/// linear in the array's size, not quadratic: 20,000 items cost 20,000
/// hashes instead of 200 million comparisons.
fn first_repeat(items: &[Value]) -> Option<(usize, usize)> {
    let state = std::collections::hash_map::RandomState::new();
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut h = state.build_hasher();
        hash_json(item, &state, &mut h);
        let bucket = seen.entry(h.finish()).or_default();
        if let Some(&first) = bucket.iter().find(|&&j| json_eq(&items[j], item)) {
            return Some((first, i));
        }
        bucket.push(i);
    }
    None
}

/// Hashes `v` consistently with [`json_eq`].
fn hash_json(v: &Value, state: &impl BuildHasher, h: &mut impl Hasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, number_key(n)).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            for x in a {
                hash_json(x, state, h);
            }
        }
        Value::Object(m) => {
            // Key order does not matter: members are hashed apart and summed.
            let sum = m.iter().fold(0u64, |acc, (k, x)| {
                let mut e = state.build_hasher();
                k.hash(&mut e);
                hash_json(x, state, &mut e);
                acc.wrapping_add(e.finish())
            });
            (5u8, m.len(), sum).hash(h);
        }
    }
}

/// A number's hash key: integral values hash alike whatever their
/// representation (`1`, `1.0`), others by their bits.
pub(crate) fn number_key(n: &Number) -> (u8, u64) {
    if let Some(i) = n.as_i64() {
        return (0, i as u64);
    }
    if let Some(u) = n.as_u64() {
        return (1, u);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
        return (0, f as i64 as u64);
    }
    if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
        return (1, f as u64);
    }
    // `-0.0` is `0`, caught above; anything else by its bits.
    (2, f.to_bits())
}

/// JSON Schema's equality: numbers by mathematical value, objects by their
/// members whatever their order, arrays item by item.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_key(x) == number_key(y),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bounds_of_the_input_schema() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "n": { "type": "integer", "minimum": 1, "maximum": 10 },
                "name": { "type": "string", "minLength": 2 },
                "tags": { "type": "array", "items": { "$ref": "#/$defs/tag" }, "uniqueItems": true },
                "opt": { "anyOf": [{ "type": "number", "exclusiveMinimum": 0 }, { "type": "null" }] }
            },
            "$defs": { "tag": { "type": "string", "maxLength": 3 } }
        });
        let check = |v: Value| check_bounds(&schema, &schema, &v, "").map_err(|e| e.to_string());
        assert!(check(serde_json::json!({ "n": 5, "name": "ab", "tags": ["a", "b"], "opt": 1 })).is_ok());
        assert!(check(serde_json::json!({ "opt": null })).is_ok());
        for (bad, at) in [
            (serde_json::json!({ "n": 0 }), "/n"),
            (serde_json::json!({ "n": 11 }), "/n"),
            (serde_json::json!({ "name": "a" }), "/name"),
            (serde_json::json!({ "tags": ["abcd"] }), "/tags/0"),
            (serde_json::json!({ "tags": ["a", "a"] }), "/tags"),
            (serde_json::json!({ "opt": 0 }), "/opt"),
        ] {
            let e = check(bad).unwrap_err();
            assert!(e.contains(&format!("at {at}:")), "{e}");
        }
    }

    #[test]
    fn repeats_are_found_by_value() {
        let repeat = |v: Value| first_repeat(v.as_array().unwrap());
        assert_eq!(repeat(json!([1, 2, 3])), None);
        assert_eq!(repeat(json!([1, 2, 1.0])), Some((0, 2)), "1 and 1.0 are the same number");
        assert_eq!(repeat(json!([0.5, 1.5, 0.5])), Some((0, 2)));
        assert_eq!(repeat(json!([-0.0, 0])), Some((0, 1)));
        assert_eq!(repeat(json!([{"a": 1, "b": [2]}, {"b": [2.0], "a": 1}])), Some((0, 1)), "key order");
        assert_eq!(repeat(json!([{"a": 1}, {"a": 1, "b": null}])), None);
        assert_eq!(repeat(json!([[1, 2], [2, 1]])), None, "arrays keep their order");
        assert_eq!(repeat(json!(["1", 1, true, null, [], {}])), None, "types differ");
        assert_eq!(repeat(json!([u64::MAX, i64::MIN, u64::MAX])), Some((0, 2)));
    }

    #[test]
    fn a_large_array_is_checked_in_linear_time() {
        // 200,000 distinct items and one repeat at the end: quadratic
        // checking would take 2e10 comparisons (hours); this is instant.
        let mut items: Vec<Value> = (0..200_000).map(|i| json!({"id": i, "tag": format!("t{i}")})).collect();
        items.push(json!({"tag": "t123", "id": 123.0}));
        let schema = json!({"type": "array", "uniqueItems": true});
        let e = check_bounds(&schema, &schema, &Value::Array(items), "/tags").unwrap_err();
        assert_eq!(e.to_string(), "invalid input at /tags: item 200000 repeats item 123");
    }
}
