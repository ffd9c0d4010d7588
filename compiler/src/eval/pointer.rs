//! JSON pointers into answers and inputs, with `*` for every item of a
//! list, resolved against a JSON Schema (to check them when the eval file
//! is read) and against a value (to score an answer).

use std::fmt;

use serde_json::Value;

/// A parsed pointer: `/items/*/name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    segments: Vec<Segment>,
}

/// One step of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A member of an object (or an index of a list, when it is a number).
    Key(String),
    /// Every item of a list.
    Each,
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.text.is_empty() { "/" } else { &self.text })
    }
}

impl Pointer {
    /// Parses RFC 6901 text (`~1` is `/`, `~0` is `~`); `*` alone is a wildcard.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        if text.is_empty() {
            return Ok(Pointer { text: String::new(), segments: Vec::new() });
        }
        let rest = text.strip_prefix('/').ok_or("it must start with `/`")?;
        let segments = rest
            .split('/')
            .map(|raw| {
                if raw == "*" {
                    return Ok(Segment::Each);
                }
                let mut key = String::with_capacity(raw.len());
                let mut chars = raw.chars();
                while let Some(c) = chars.next() {
                    match c {
                        '~' => match chars.next() {
                            Some('0') => key.push('~'),
                            Some('1') => key.push('/'),
                            _ => return Err("`~` must be followed by `0` or `1`".to_owned()),
                        },
                        c => key.push(c),
                    }
                }
                Ok(Segment::Key(key))
            })
            .collect::<Result<_, _>>()?;
        Ok(Pointer { text: text.to_owned(), segments })
    }

    /// The steps.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether any step is `*`.
    pub fn has_wildcard(&self) -> bool {
        self.segments.contains(&Segment::Each)
    }

    /// Checks that `schema` has the field: `Err` with the index of the
    /// first step it lacks and the names known there.
    pub fn resolve(&self, schema: &Value) -> Result<(), (usize, Vec<String>)> {
        let mut nodes = vec![schema];
        for (i, segment) in self.segments.iter().enumerate() {
            let here: Vec<&Value> = nodes.iter().flat_map(|n| alternatives(schema, n)).collect();
            let next: Vec<&Value> = here.iter().filter_map(|n| child(n, segment)).collect();
            if next.is_empty() {
                let known = here
                    .iter()
                    .filter_map(|n| n.get("properties").and_then(Value::as_object))
                    .flat_map(|p| p.keys().cloned())
                    .collect();
                return Err((i, known));
            }
            nodes = next;
        }
        Ok(())
    }

    /// The JSON types the schema allows at the pointer (empty: any).
    pub fn types(&self, schema: &Value) -> Vec<String> {
        let mut nodes = vec![schema];
        for segment in &self.segments {
            let here: Vec<&Value> = nodes.iter().flat_map(|n| alternatives(schema, n)).collect();
            nodes = here.iter().filter_map(|n| child(n, segment)).collect();
        }
        let mut types = Vec::new();
        for node in nodes.iter().flat_map(|n| alternatives(schema, n)) {
            // A `$ref` or a union stands for its targets, listed too.
            let composite = ["$ref", "anyOf", "oneOf", "allOf"].iter().any(|k| node.get(*k).is_some());
            if composite && node.get("type").is_none() {
                continue;
            }
            match node.get("type") {
                Some(Value::String(t)) => types.push(t.clone()),
                Some(Value::Array(ts)) => types.extend(ts.iter().filter_map(Value::as_str).map(str::to_owned)),
                // An untyped branch allows anything.
                _ if node.get("enum").is_none() && node.get("const").is_none() => return Vec::new(),
                _ => {}
            }
        }
        types.sort();
        types.dedup();
        types
    }

    /// The values the pointer reaches in `value`: one, or every item for
    /// `*` (none for an empty list). `None` when a step is missing.
    pub fn values<'v>(&self, value: &'v Value) -> Option<Vec<&'v Value>> {
        let mut reached = vec![value];
        for segment in &self.segments {
            let mut next = Vec::new();
            for v in reached {
                match (segment, v) {
                    (Segment::Each, Value::Array(items)) => next.extend(items),
                    (Segment::Key(k), Value::Object(o)) => next.push(o.get(k)?),
                    (Segment::Key(k), Value::Array(items)) => next.push(items.get(k.parse::<usize>().ok()?)?),
                    _ => return None,
                }
            }
            reached = next;
        }
        Some(reached)
    }
}

/// A schema node with local `$ref`s followed and `anyOf`/`oneOf`/`allOf`
/// branches listed: the shapes a value there may have.
fn alternatives<'s>(root: &'s Value, node: &'s Value) -> Vec<&'s Value> {
    let mut out = Vec::new();
    let mut stack = vec![node];
    // Bounded: a recursive `$ref` must not loop.
    let mut budget = 64;
    while let Some(n) = stack.pop() {
        budget -= 1;
        if budget == 0 {
            break;
        }
        if let Some(target) = n.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            if let Some(t) = root.pointer(target) {
                stack.push(t);
            }
        }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let Some(Value::Array(branches)) = n.get(key) {
                stack.extend(branches);
            }
        }
        out.push(n);
    }
    out
}

fn child<'s>(node: &'s Value, segment: &Segment) -> Option<&'s Value> {
    match segment {
        Segment::Each => node.get("items").filter(|i| i.is_object()),
        Segment::Key(k) => node
            .get("properties")
            .and_then(|p| p.get(k))
            .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))
            .or_else(|| k.parse::<usize>().ok().and_then(|_| node.get("items").filter(|i| i.is_object()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "tags": {"type": "array", "items": {"type": "string"}},
                "who": {"$ref": "#/$defs/Person"},
                "a/b": {"type": ["integer", "null"]}
            },
            "$defs": {"Person": {"type": "object", "properties": {"name": {"type": "string"}}}}
        })
    }

    #[test]
    fn parses_escapes_and_wildcards() {
        let p = Pointer::parse("/a~1b/~0x/*").unwrap();
        assert_eq!(p.segments(), &[Segment::Key("a/b".into()), Segment::Key("~x".into()), Segment::Each]);
        assert!(p.has_wildcard());
        assert!(Pointer::parse("tags").is_err());
        assert!(Pointer::parse("/a~2").is_err());
        assert_eq!(Pointer::parse("").unwrap().to_string(), "/");
    }

    #[test]
    fn resolves_against_a_schema() {
        let s = schema();
        for ok in ["/tags", "/tags/*", "/tags/0", "/who/name", "/a~1b", ""] {
            assert_eq!(Pointer::parse(ok).unwrap().resolve(&s), Ok(()), "{ok}");
        }
        let (at, known) = Pointer::parse("/who/nmae").unwrap().resolve(&s).unwrap_err();
        assert_eq!((at, known), (1, vec!["name".to_owned()]));
        assert!(Pointer::parse("/who/*").unwrap().resolve(&s).is_err());
        assert_eq!(Pointer::parse("/tags/*").unwrap().types(&s), ["string"]);
        assert_eq!(Pointer::parse("/a~1b").unwrap().types(&s), ["integer", "null"]);
        // Through a `$ref`: the target's type.
        assert_eq!(Pointer::parse("/who").unwrap().types(&s), ["object"]);
    }

    #[test]
    fn reaches_values() {
        let v = json!({"tags": ["x", "y"], "who": {"name": "Ada"}, "empty": []});
        let values = |p: &str| Pointer::parse(p).unwrap().values(&v);
        assert_eq!(values("/tags/*"), Some(vec![&json!("x"), &json!("y")]));
        assert_eq!(values("/tags/1"), Some(vec![&json!("y")]));
        assert_eq!(values("/who/name"), Some(vec![&json!("Ada")]));
        assert_eq!(values("/empty/*"), Some(vec![]));
        assert_eq!(values("/who/age"), None);
        assert_eq!(values("/who/*"), None);
    }
}
