//! `--help`: the text, with an example input drawn from the input schema.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::args::DEFAULT_ADDR;
use super::Program;
use crate::journal::DEFAULT_JOURNAL_DIR;

impl<I, S, O> Program<I, S, O>
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    pub(super) fn help(&self, bin: &str) -> String {
        let info = self.workflow.info();
        let mut h = String::new();
        if let Some(about) = self.about.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            h.push_str(about);
            h.push_str("\n\n");
        }
        let example = match &self.input_schema {
            Some(schema) => example_value(schema, schema, 0),
            None => Value::Object(Default::default()),
        };
        let example = shell_quote(&serde_json::to_string(&example).unwrap_or_else(|_| "{}".into()));
        let _ = write!(
            h,
            "Runs workflow {id} {version}: reads its input as JSON and prints its output as JSON on
standard output. Progress and errors go to standard error; every run writes a
journal DIR/EXECUTION_ID.jsonl. `serve` makes the workflow an HTTP service
(see /openapi.json) and journals all its executions in one log, DIR/log/.

Usage: {bin} [OPTIONS]
       {bin} serve [--addr ADDR] [--journal-dir DIR] [--wait-timeout T] [--body-limit N]
                   [--journal-retention T] [--journal-max-bytes N]
                   [--header-timeout T] [--body-timeout T] [--idle-timeout T]
                   [--max-connections N] [--shutdown-timeout T]

Options:
      --input JSON           the input (otherwise --input-file, or standard input;
                             {{}} when standard input is a terminal or empty)
      --input-file PATH      read the input from PATH ('-': standard input)
      --journal-dir DIR      where journals go [default: {dir}]
      --correlation-id ID    correlation id to record [default: the execution id]
  -q, --quiet                no progress lines (serve: no access log lines)
      --log-format FORMAT    standard error as `text` or `json` (one object per
                             line) [default: $ORCHESTR8_LOG_FORMAT, else text]
      --input-schema         print the input's JSON Schema and exit
      --test FILE            run the test cases of FILE ('-': standard input)
                             with mocked steps on virtual time, and exit
      --addr ADDR            serve: where to listen [default: {addr}]
      --wait-timeout T       serve: how long ?wait=true waits [default: 30s]
      --body-limit N         serve: largest request body [default: 1MiB]
      --allowed-host NAME    serve: another host name to answer to (repeatable;
                             `*`: any) [default: the bound IP, and localhost
                             when on loopback]
      --max-running N        serve: executions running at once; beyond, 503
                             with Retry-After [default: 1024]
      --idempotency-ttl T    serve: how long an Idempotency-Key is remembered,
                             across restarts [default: 24h]
      --auth-token-env VAR   serve: require `Authorization: Bearer $VAR` on every
                             request but /health
      --journal-retention T  serve: delete journal segments whose executions
                             all ended this long ago (`7d`, `12h`; `off`) [default: 7d]
      --journal-max-bytes N  serve: delete the oldest ended segments beyond this
                             size of DIR/log/ (`10GiB`; `off`) [default: 10GiB]
      --header-timeout T     serve: time to send a request head [default: 10s]
      --body-timeout T       serve: time for a request body to arrive [default: 30s]
      --idle-timeout T       serve: time a keep-alive connection may idle [default: 60s]
      --max-connections N    serve: open connections at most; more wait [default: 512]
      --shutdown-timeout T   serve: after the first signal, time to wait for running
                             executions before they are journaled cancelled [default: 25s]
  -h, --help                 print this help and exit
  -V, --version              print the workflow id and version and exit

Exit status: 0 completed, 1 failed, 2 bad input or usage, 130 cancelled.
Ctrl-C or SIGTERM cancels cooperatively; a second one exits at once. serve
then waits --shutdown-timeout, journals what still runs as cancelled and exits 130.
With --test: 0 all cases passed, 1 some failed, 2 unreadable or invalid file.

Example:
  {bin} --input {example}
",
            id = info.id,
            version = info.version,
            dir = DEFAULT_JOURNAL_DIR,
            addr = DEFAULT_ADDR,
        );
        h
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
