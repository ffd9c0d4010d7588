//! The schema a provider is sent (the *wire schema*) and what it leaves out.
//!
//! Providers enforce only a subset of JSON Schema server-side. The agent's
//! full output schema stays the one the answer is validated against
//! locally; the wire schema is what the provider's constrained decoder can
//! take. Both the compiler (its "checked locally only" warning) and the
//! runtime (the request) call [`wire_schema`], so they cannot disagree.

use serde_json::{json, Map, Value};

use orchestr8_schema::ast::Provider;

/// A keyword of the output schema the provider does not enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// JSON pointer of the schema object holding it, relative to the output schema.
    pub pointer: String,
    /// The keyword, e.g. `maximum`.
    pub keyword: String,
}

/// A construct the provider's structured output cannot express at all: the
/// agent cannot use this provider with this schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// JSON pointer of the schema object, relative to the output schema.
    pub pointer: String,
    /// What it is and what to write instead.
    pub message: String,
}

/// The wire schema for `provider`, with the keywords it drops.
#[derive(Debug, Clone, PartialEq)]
pub struct WireSchema {
    /// The schema sent to the provider.
    pub schema: Value,
    /// Whether the provider is asked to enforce it strictly (OpenAI's
    /// `strict`; Anthropic always enforces what it accepts).
    pub strict: bool,
    /// Keywords checked locally only, in document order.
    pub dropped: Vec<Dropped>,
    /// Why `strict` is off, when it is (OpenAI).
    pub not_strict_because: Option<Unsupported>,
}

/// String formats Anthropic's structured output enforces.
const ANTHROPIC_FORMATS: &[&str] =
    &["date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"];

/// Keywords Anthropic keeps as they are (the others are dropped into the
/// description, as Anthropic's own SDK does, so the model may still follow them).
const ANTHROPIC_KEEP: &[&str] = &["type", "enum", "const", "description", "title", "default", "pattern"];

/// Builds the wire schema of `output` for `provider`, or says which
/// construct the provider cannot take.
pub fn wire_schema(provider: Provider, output: &Value) -> Result<WireSchema, Unsupported> {
    match provider {
        Provider::Anthropic => {
            let mut dropped = Vec::new();
            let schema = anthropic(output, "", &mut dropped)?;
            Ok(WireSchema { schema, strict: true, dropped, not_strict_because: None })
        }
        Provider::Openai => {
            let mut strict = output.clone();
            let not_strict_because = if is_object(output) {
                openai_strict(&mut strict, "").err()
            } else {
                Some(Unsupported { pointer: String::new(), message: "strict mode needs an object at the root".into() })
            };
            // A schema strict mode cannot take is sent as written, not half closed.
            let schema = if not_strict_because.is_none() { strict } else { output.clone() };
            Ok(WireSchema { schema, strict: not_strict_because.is_none(), dropped: Vec::new(), not_strict_because })
        }
    }
}

/// Whether a schema describes an object.
fn is_object(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object") || schema.get("properties").is_some()
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn anthropic(schema: &Value, at: &str, dropped: &mut Vec<Dropped>) -> Result<Value, Unsupported> {
    let obj = match schema {
        Value::Object(o) => o,
        Value::Bool(true) => return Ok(json!({})),
        other => {
            return Err(Unsupported {
                pointer: at.to_owned(),
                message: format!("the schema `{other}` cannot be sent to Anthropic's structured output"),
            })
        }
    };
    if let Some(r) = obj.get("$ref") {
        let local = r.as_str().is_some_and(|r| r.starts_with("#/$defs/") || r.starts_with("#/definitions/"));
        if !local {
            return Err(Unsupported {
                pointer: at.to_owned(),
                message: format!("`$ref: {r}` is not a local `#/$defs/...` reference"),
            });
        }
    }
    let mut out = Map::new();
    let mut extra = Map::new();
    for (key, value) in obj {
        let here = format!("{at}/{}", escape(key));
        match key.as_str() {
            "$ref" => {
                out.insert(key.clone(), value.clone());
            }
            "$defs" | "definitions" | "properties" => {
                let Some(members) = value.as_object() else { continue };
                let mut kept = Map::new();
                for (name, member) in members {
                    kept.insert(name.clone(), anthropic(member, &format!("{here}/{}", escape(name)), dropped)?);
                }
                out.insert(key.clone(), Value::Object(kept));
            }
            "anyOf" | "oneOf" | "allOf" => {
                let Some(items) = value.as_array() else { continue };
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, s)| anthropic(s, &format!("{here}/{i}"), dropped))
                    .collect::<Result<Vec<_>, _>>()?;
                // Anthropic takes `anyOf` where the schema says `oneOf`: the
                // local validation still checks "exactly one".
                let name = if key == "allOf" { "allOf" } else { "anyOf" };
                if key == "oneOf" {
                    dropped.push(Dropped { pointer: at.to_owned(), keyword: "oneOf".into() });
                }
                out.insert(name.into(), Value::Array(items));
            }
            "items" => {
                out.insert(key.clone(), anthropic(value, &here, dropped)?);
            }
            "required" => {
                out.insert(key.clone(), value.clone());
            }
            // Closed below; an open object's answer still validates.
            "additionalProperties" => match value {
                Value::Bool(_) => {}
                _ => {
                    return Err(Unsupported {
                        pointer: at.to_owned(),
                        message: "a map (`additionalProperties` with a schema) cannot be enforced by Anthropic's \
                                  structured output, which requires `additionalProperties: false`; use an array \
                                  of `{\"key\", \"value\"}` objects instead"
                            .into(),
                    })
                }
            },
            "minItems" if matches!(value.as_u64(), Some(0 | 1)) => {
                out.insert(key.clone(), value.clone());
            }
            "format" if value.as_str().is_some_and(|f| ANTHROPIC_FORMATS.contains(&f)) => {
                out.insert(key.clone(), value.clone());
            }
            k if ANTHROPIC_KEEP.contains(&k) => {
                out.insert(key.clone(), value.clone());
            }
            _ => {
                dropped.push(Dropped { pointer: at.to_owned(), keyword: key.clone() });
                extra.insert(key.clone(), value.clone());
            }
        }
    }
    if is_object(schema) {
        if !obj.contains_key("properties") {
            return Err(Unsupported {
                pointer: at.to_owned(),
                message: "an object without `properties` cannot be enforced by Anthropic's structured output, \
                          which closes every object (`additionalProperties: false`), so the model could only \
                          answer `{}`; declare its properties"
                    .into(),
            });
        }
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    if !extra.is_empty() {
        // What the provider cannot enforce, said to the model in words.
        let note = Value::Object(extra).to_string();
        let description = match out.get("description").and_then(Value::as_str) {
            Some(d) => format!("{d}\n\n{note}"),
            None => note,
        };
        out.insert("description".into(), Value::String(description));
    }
    Ok(Value::Object(out))
}

/// Makes `schema` fit OpenAI's strict mode in place (every object closed),
/// or says why strict mode must stay off: strict mode needs every property
/// required, and has no `allOf`, `oneOf` or maps.
fn openai_strict(schema: &mut Value, at: &str) -> Result<(), Unsupported> {
    let Value::Object(obj) = schema else { return Ok(()) };
    let not = |pointer: &str, message: String| Err(Unsupported { pointer: pointer.to_owned(), message });
    for key in ["allOf", "oneOf", "patternProperties", "not", "if"] {
        if obj.contains_key(key) {
            return not(at, format!("`{key}` is not accepted by strict mode"));
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> =
            obj.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        if let Some(optional) = props.keys().find(|k| !required.contains(&k.as_str())) {
            return not(
                &format!("{at}/properties/{}", escape(optional)),
                format!("the property `{optional}` is optional, and strict mode requires every property"),
            );
        }
    }
    match obj.get("additionalProperties") {
        Some(Value::Object(_) | Value::Bool(true)) => {
            return not(at, "a map (`additionalProperties`) is not accepted by strict mode".into())
        }
        Some(_) => {}
        None if obj.contains_key("properties") => {
            obj.insert("additionalProperties".into(), Value::Bool(false));
        }
        None if obj.get("type").and_then(Value::as_str) == Some("object") => {
            return not(at, "an object without `properties` is not accepted by strict mode".into())
        }
        None => {}
    }
    for (key, value) in obj.iter_mut() {
        let here = format!("{at}/{}", escape(key));
        match key.as_str() {
            "$defs" | "definitions" | "properties" => {
                if let Some(members) = value.as_object_mut() {
                    for (name, member) in members.iter_mut() {
                        openai_strict(member, &format!("{here}/{}", escape(name)))?;
                    }
                }
            }
            "anyOf" => {
                if let Some(items) = value.as_array_mut() {
                    for (i, item) in items.iter_mut().enumerate() {
                        openai_strict(item, &format!("{here}/{i}"))?;
                    }
                }
            }
            "items" => openai_strict(value, &here)?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_drops_bounds_into_the_description_and_closes_objects() {
        let schema = json!({
            "type": "object",
            "properties": {
                "confidence": {"type": "number", "minimum": 0, "maximum": 1, "description": "How sure."},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3, "minItems": 1},
                "when": {"type": "string", "format": "date"},
                "kind": {"oneOf": [{"const": "a"}, {"const": "b"}]}
            },
            "required": ["confidence"]
        });
        let wire = wire_schema(Provider::Anthropic, &schema).unwrap();
        assert_eq!(
            wire.schema,
            json!({
                "type": "object",
                "properties": {
                    "confidence": {"type": "number", "description": "How sure.\n\n{\"minimum\":0,\"maximum\":1}"},
                    "tags": {"type": "array", "items": {"type": "string", "description": "{\"maxLength\":20}"},
                             "minItems": 1, "description": "{\"maxItems\":3}"},
                    "when": {"type": "string", "format": "date"},
                    "kind": {"anyOf": [{"const": "a"}, {"const": "b"}]}
                },
                "required": ["confidence"],
                "additionalProperties": false
            })
        );
        let dropped: Vec<_> = wire.dropped.iter().map(|d| format!("{} {}", d.pointer, d.keyword)).collect();
        assert_eq!(
            dropped,
            [
                "/properties/confidence minimum",
                "/properties/confidence maximum",
                "/properties/tags/items maxLength",
                "/properties/tags maxItems",
                "/properties/kind oneOf"
            ]
        );
    }

    #[test]
    fn anthropic_rejects_maps_and_remote_refs() {
        let map = json!({"type": "object", "additionalProperties": {"type": "string"}});
        let err = wire_schema(Provider::Anthropic, &json!({"type": "object", "properties": {"m": map}})).unwrap_err();
        assert_eq!(err.pointer, "/properties/m");
        assert!(err.message.contains("array of"), "{}", err.message);
        let err = wire_schema(Provider::Anthropic, &json!({"$ref": "https://example.com/s.json"})).unwrap_err();
        assert!(err.message.contains("local"), "{}", err.message);
    }

    #[test]
    fn free_form_objects_cannot_be_closed() {
        let free = json!({"type": "object", "properties": {"meta": {"type": "object"}}, "required": ["meta"]});
        let err = wire_schema(Provider::Anthropic, &free).unwrap_err();
        assert_eq!(err.pointer, "/properties/meta");
        let wire = wire_schema(Provider::Openai, &free).unwrap();
        assert!(!wire.strict);
        assert_eq!(wire.schema, free, "sent as written");
        // Open with properties: closed on the wire, and nothing is lost to validation.
        let open = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": true});
        let wire = wire_schema(Provider::Anthropic, &open).unwrap();
        assert_eq!(wire.schema["additionalProperties"], json!(false));
        assert!(wire.dropped.is_empty());
    }

    #[test]
    fn openai_strict_mode_needs_an_object_root() {
        let wire = wire_schema(Provider::Openai, &json!({"type": "array", "items": {"type": "string"}})).unwrap();
        assert!(!wire.strict);
        assert!(wire.not_strict_because.unwrap().message.contains("root"));
    }

    #[test]
    fn openai_is_strict_only_when_every_property_is_required() {
        let closed =
            json!({"type": "object", "properties": {"a": {"type": "integer", "maximum": 3}}, "required": ["a"]});
        let wire = wire_schema(Provider::Openai, &closed).unwrap();
        assert!(wire.strict);
        assert_eq!(wire.schema["additionalProperties"], json!(false));
        assert_eq!(wire.schema["properties"]["a"]["maximum"], json!(3));
        let open = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a"]});
        let wire = wire_schema(Provider::Openai, &open).unwrap();
        assert!(!wire.strict);
        assert_eq!(wire.not_strict_because.unwrap().pointer, "/properties/b");
        assert_eq!(wire.schema, open, "a non-strict schema is sent as written");
    }
}
