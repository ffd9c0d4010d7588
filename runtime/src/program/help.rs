//! `--help`: what clap's help says around the options, with an example
//! input drawn from the input schema.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::args::HelpText;
use super::Program;

impl<I, S, O> Program<I, S, O>
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    /// What clap's help says around the options (clap writes the usage and
    /// the options themselves, with their defaults).
    pub(super) fn help_text(&self, bin: &str) -> HelpText {
        let info = self.workflow.info();
        let mut about = String::new();
        if let Some(text) = self.about.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            about.push_str(text);
            about.push_str("\n\n");
        }
        about.push_str(&format!(
            "Runs workflow {id} {version}: reads its input as JSON and prints its output as JSON
on standard output. Progress and errors go to standard error; every run writes a
journal DIR/EXECUTION_ID.jsonl. `serve` makes the workflow an HTTP service (see
/openapi.json) and journals all its executions in one log, DIR/log/.",
            id = info.id,
            version = info.version,
        ));
        let example = match &self.input_schema {
            Some(schema) => example_value(schema, schema, 0),
            None => Value::Object(Default::default()),
        };
        let example = shell_quote(&serde_json::to_string(&example).unwrap_or_else(|_| "{}".into()));
        // Only a workflow with waits can be suspended.
        let suspended = if self.workflow.wait_steps().is_empty() {
            ""
        } else {
            " 3 suspended (steps wait for signals:\nsend one with `signal ID STEP --data JSON`),"
        };
        let after = format!(
            "Exit status: 0 completed, 1 failed, 2 bad input or usage,{suspended} 130 cancelled.
Ctrl-C or SIGTERM cancels cooperatively; a second one exits at once.
With --test: 0 all cases passed, 1 some failed, 2 unreadable or invalid file.

Examples:
  {bin} --input {example}
  {bin} serve --addr 0.0.0.0:8080 --auth-token-env ORCHESTR8_TOKEN
  source <({bin} completions bash)"
        );
        let serve_after = "Ctrl-C or SIGTERM stops the server: it waits --shutdown-timeout for running
executions and open requests, journals what still runs as cancelled (as
suspended if it waits for signals: the next server resumes it) and exits; a
second one exits at once.
Exit status: 0 stopped, 1 cannot serve (cannot listen on the address or read the
journal), 2 bad usage, 130 executions were left cancelled or interrupted."
            .to_owned();
        HelpText { about, after, serve_after }
    }
}

/// A small example of the input for `--help`, from the schema: `examples`,
/// `default`, `const` or the first `enum` value when given, else the required
/// properties with placeholders.
fn example_value(root: &Value, schema: &Value, depth: usize) -> Value {
    let Some(obj) = schema.as_object() else {
        return Value::Null;
    };
    if depth > 8 {
        return Value::Null;
    }
    if let Some(v) = obj.get("examples").and_then(Value::as_array).and_then(|a| a.first()) {
        return v.clone();
    }
    for key in ["default", "const"] {
        if let Some(v) = obj.get(key) {
            return v.clone();
        }
    }
    if let Some(v) = obj.get("enum").and_then(Value::as_array).and_then(|a| a.first()) {
        return v.clone();
    }
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        let resolved = target.strip_prefix('#').and_then(|p| root.pointer(p));
        return resolved.map_or(Value::Null, |s| example_value(root, s, depth + 1));
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(alts) = obj.get(key).and_then(Value::as_array) {
            let pick = alts.iter().find(|s| s.get("type").and_then(Value::as_str) != Some("null")).or(alts.first());
            if let Some(s) = pick {
                return example_value(root, s, depth + 1);
            }
        }
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ => "",
    };
    match ty {
        "object" => {
            let props = obj.get("properties").and_then(Value::as_object);
            let mut out = serde_json::Map::new();
            for name in obj.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                let sub = props.and_then(|p| p.get(name)).map_or(Value::Null, |s| example_value(root, s, depth + 1));
                out.insert(name.to_owned(), sub);
            }
            Value::Object(out)
        }
        "array" => Value::Array(Vec::new()),
        "string" => Value::String("...".into()),
        "integer" | "number" => Value::from(0),
        "boolean" => Value::Bool(false),
        _ => Value::Null,
    }
}

/// `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn example_follows_the_schema() {
        let schema = json!({
            "type": "object",
            "required": ["id", "n", "tags", "kind", "inner", "opt"],
            "properties": {
                "id": {"type": "string"},
                "n": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "kind": {"enum": ["a", "b"]},
                "inner": {"$ref": "#/$defs/Inner"},
                "opt": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
                "skipped": {"type": "string"}
            },
            "$defs": {"Inner": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number", "default": 1.5}}}}
        });
        assert_eq!(
            example_value(&schema, &schema, 0),
            json!({"id": "...", "n": 0, "tags": [], "kind": "a", "inner": {"x": 1.5}, "opt": false})
        );
        assert_eq!(shell_quote(r#"{"a":"it's"}"#), r#"'{"a":"it'\''s"}'"#);
    }
}
