//! Layer 1: the document against the published JSON Schema.
//!
//! jsonschema finds the violations; this module turns each into a
//! diagnostic a person can act on: unknown fields with "did you mean",
//! missing fields with what they are for, and, for the unions (steps,
//! durations, policy references, agent kinds), the errors of the branch the
//! user evidently meant instead of "not valid under any of the schemas".

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use orchestr8_schema::ast::{SEMVER_PATTERN, SUPPORTED_SCHEMA_VERSIONS};
use orchestr8_schema::source::{escape_pointer_token, Span, SpanIndex};
use serde_json::Value;

use crate::diagnostics::{suggestion, Code, Diagnostic};

/// The agent kinds, in the order of `AgentDefinition`'s variants (the
/// published schema's `oneOf` branches).
const AGENT_KINDS: &[&str] = &["rust", "llm"];

/// A published schema and its compiled validator, built once per process.
fn compiled(cell: &'static OnceLock<(Value, Validator)>, schema: fn() -> Value) -> &'static (Value, Validator) {
    cell.get_or_init(|| {
        let schema = schema();
        let validator = jsonschema::validator_for(&schema).expect("a published schema compiles");
        (schema, validator)
    })
}

/// The kind of document checked: which published schema, and what its
/// root is called in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A workflow (`workflow.schema.json`).
    Workflow,
    /// An eval file (`eval.schema.json`).
    Eval,
}

/// Checks `document` against the workflow schema.
pub fn check(document: &Value, spans: &SpanIndex) -> Vec<Diagnostic> {
    check_as(Kind::Workflow, document, spans)
}

/// Checks `document` against the published schema of its kind.
pub fn check_as(kind: Kind, document: &Value, spans: &SpanIndex) -> Vec<Diagnostic> {
    static WORKFLOW: OnceLock<(Value, Validator)> = OnceLock::new();
    static EVAL: OnceLock<(Value, Validator)> = OnceLock::new();
    let (schema, validator) = match kind {
        Kind::Workflow => compiled(&WORKFLOW, orchestr8_schema::json_schema),
        Kind::Eval => compiled(&EVAL, orchestr8_schema::eval_json_schema),
    };
    let cx = Context { schema, spans, document, kind };
    let mut out = Vec::new();
    for error in validator.iter_errors(document) {
        cx.convert(&error, &mut out);
    }
    fold_misspelled_required(&mut out);
    // A document of another format version fails everywhere; say only that.
    if out.iter().any(|d| d.code == Code::UnsupportedVersion) {
        out.retain(|d| d.code == Code::UnsupportedVersion);
    }
    out
}

/// A misspelled required field is reported twice by JSON Schema: as an
/// unknown field and as a missing one. Keep the unknown one, which says
/// "did you mean", and drop the other.
fn fold_misspelled_required(out: &mut Vec<Diagnostic>) {
    let misspelled: Vec<(String, String)> = out
        .iter()
        .filter(|d| d.code == Code::UnknownField)
        .filter_map(|d| {
            let meant = d.help.as_deref()?.strip_prefix("did you mean `")?.strip_suffix("`?")?;
            let parent = d.pointer.rsplit_once('/')?.0;
            Some((parent.to_owned(), meant.to_owned()))
        })
        .collect();
    out.retain(|d| {
        d.code != Code::MissingField
            || !misspelled
                .iter()
                .any(|(parent, field)| *parent == d.pointer && d.message.contains(&format!("`{field}`")))
    });
}

struct Context<'a> {
    schema: &'a Value,
    spans: &'a SpanIndex,
    document: &'a Value,
    kind: Kind,
}

/// The subschema an error comes from, and the `$defs` entry it sits in.
struct SchemaSite<'a> {
    node: Option<&'a Value>,
    def: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// Follows an evaluation path (with `$ref` hops) through the schema.
    fn site(&self, evaluation_path: &str) -> SchemaSite<'a> {
        let mut node = Some(self.schema);
        let mut def = None;
        for raw in evaluation_path.split('/').skip(1) {
            let segment = raw.replace("~1", "/").replace("~0", "~");
            let Some(current) = node else { break };
            if segment == "$ref" {
                let target = current.get("$ref").and_then(Value::as_str).unwrap_or_default();
                let name = target.rsplit('/').next().unwrap_or_default();
                let entry = self.schema.get("$defs").and_then(Value::as_object).and_then(|m| m.get_key_value(name));
                node = entry.map(|(_, v)| v);
                def = entry.map(|(k, _)| k.as_str());
                continue;
            }
            node = match current {
                Value::Object(m) => m.get(&segment),
                Value::Array(a) => segment.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
        }
        SchemaSite { node, def }
    }

    /// The subschema holding the keyword that failed (the error's site minus
    /// its last segment).
    fn parent_site(&self, error: &ValidationError<'_>) -> SchemaSite<'a> {
        let path = error.evaluation_path().as_str();
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        self.site(parent)
    }

    fn convert(&self, error: &ValidationError<'_>, out: &mut Vec<Diagnostic>) {
        let pointer = error.instance_path().as_str().to_owned();
        let instance = error.instance();
        let at_value = self.spans.value_or_ancestor(&pointer);
        let what = describe(self.kind, self.document, &pointer);
        match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let site = self.parent_site(error);
                let known: Vec<&str> = site
                    .node
                    .and_then(|n| n.get("properties"))
                    .and_then(Value::as_object)
                    .map(|m| m.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                for field in unexpected {
                    let field_pointer = format!("{pointer}/{}", escape_pointer_token(field));
                    let help = suggestion(field, known.iter().copied())
                        .or_else(|| (!known.is_empty()).then(|| format!("{what} has the fields {}", list(&known))));
                    out.push(
                        Diagnostic::error(
                            Code::UnknownField,
                            format!("unknown field `{field}` in {what}"),
                            field_pointer.clone(),
                            self.spans.key_or_value(&field_pointer),
                        )
                        .with_label("unknown field")
                        .with_optional_help(help),
                    );
                }
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let purpose = self
                    .parent_site(error)
                    .node
                    .and_then(|n| n.pointer(&format!("/properties/{}/description", escape_pointer_token(name))))
                    .and_then(Value::as_str)
                    .map(|d| {
                        format!(
                            "add `\"{name}\"`: {}",
                            lower_first(&d.split_whitespace().collect::<Vec<_>>().join(" "))
                        )
                    })
                    .unwrap_or_else(|| format!("add `\"{name}\"`"));
                out.push(
                    Diagnostic::error(
                        Code::MissingField,
                        format!("missing field `{name}` in {what}"),
                        pointer.clone(),
                        at_value,
                    )
                    .with_label(format!("`{name}` is missing here"))
                    .with_help(purpose),
                );
            }
            ValidationErrorKind::Type { kind } => {
                let expected = match kind {
                    TypeKind::Single(t) => article(&t.to_string()),
                    TypeKind::Multiple(ts) => {
                        let names: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
                        names.join(" or ")
                    }
                };
                out.push(
                    Diagnostic::error(
                        Code::WrongType,
                        format!("expected {expected} for {what}, found {}", json_kind(instance)),
                        pointer.clone(),
                        at_value,
                    )
                    .with_label(format!("expected {expected}")),
                );
            }
            ValidationErrorKind::Enum { options } | ValidationErrorKind::Constant { expected_value: options } => {
                if pointer == "/schemaVersion" {
                    out.push(
                        Diagnostic::error(
                            Code::UnsupportedVersion,
                            format!("unsupported schemaVersion {instance}"),
                            pointer.clone(),
                            at_value,
                        )
                        .with_label("not a version this build reads")
                        .with_help(format!(
                            "this build of orchestr8 reads schemaVersion {}",
                            quoted_list(SUPPORTED_SCHEMA_VERSIONS)
                        )),
                    );
                } else {
                    let allowed: Vec<String> = match &**options {
                        Value::Array(a) => a.iter().map(Value::to_string).collect(),
                        other => vec![other.to_string()],
                    };
                    out.push(invalid_choice(instance, &allowed, &what, pointer.clone(), at_value));
                }
            }
            ValidationErrorKind::Pattern { pattern } => {
                let (rule, example) = match self.kind {
                    Kind::Eval if pattern == orchestr8_schema::eval::TASK_ID_PATTERN => (
                        "not a task id",
                        "use lower case letters, digits and `-`, starting with a letter, at most 64 characters (e.g. `classify-tickets`)".into(),
                    ),
                    _ => pattern_rule(pattern),
                };
                out.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("{instance} is not a valid value for {what}"),
                        pointer.clone(),
                        at_value,
                    )
                    .with_label(rule)
                    .with_help(example),
                );
            }
            ValidationErrorKind::PropertyNames { error: inner } => {
                let key = inner.instance().as_str().unwrap_or_default().to_owned();
                let key_pointer = format!("{pointer}/{}", escape_pointer_token(&key));
                let (rule, example) = match inner.kind() {
                    ValidationErrorKind::Pattern { pattern } => pattern_rule(pattern),
                    _ => ("not a valid name", String::new()),
                };
                out.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        format!("`{key}` is not a valid {}", key_kind(&pointer)),
                        key_pointer.clone(),
                        self.spans.key_or_value(&key_pointer),
                    )
                    .with_label(rule)
                    .with_help(example),
                );
            }
            ValidationErrorKind::MinItems { limit } => {
                out.push(
                    Diagnostic::error(
                        Code::OutOfRange,
                        format!("{what} needs at least {limit} item{}", if *limit == 1 { "" } else { "s" }),
                        pointer.clone(),
                        at_value,
                    )
                    .with_label("empty list")
                    .with_help(match (self.kind, pointer.as_str()) {
                        (Kind::Workflow, "/steps") => "a workflow needs at least one step",
                        (Kind::Workflow, _) => "add a step, or remove the block",
                        (Kind::Eval, "/tasks") => "an eval needs at least one task",
                        (Kind::Eval, _) => "add an input document",
                    }),
                );
            }
            ValidationErrorKind::Minimum { limit } | ValidationErrorKind::ExclusiveMinimum { limit } => {
                out.push(
                    Diagnostic::error(
                        Code::OutOfRange,
                        format!("{what} must be at least {limit}, found {instance}"),
                        pointer.clone(),
                        at_value,
                    )
                    .with_label(format!("less than {limit}")),
                );
            }
            ValidationErrorKind::Maximum { limit } | ValidationErrorKind::ExclusiveMaximum { limit } => {
                out.push(
                    Diagnostic::error(
                        Code::OutOfRange,
                        format!("{what} must be at most {limit}, found {instance}"),
                        pointer.clone(),
                        at_value,
                    )
                    .with_label(format!("more than {limit}")),
                );
            }
            ValidationErrorKind::MinLength { limit } => {
                out.push(
                    Diagnostic::error(Code::OutOfRange, format!("{what} must not be empty"), pointer.clone(), at_value)
                        .with_label(format!("shorter than {limit}")),
                );
            }
            ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
                self.convert_union(error, context, out);
            }
            _ => {
                out.push(Diagnostic::error(
                    Code::SchemaViolation,
                    format!("{what}: {error}"),
                    pointer.clone(),
                    at_value,
                ));
            }
        }
    }

    /// A value matched no branch of a union: report the branch the user meant.
    fn convert_union(
        &self,
        error: &ValidationError<'_>,
        branches: &[Vec<ValidationError<'static>>],
        out: &mut Vec<Diagnostic>,
    ) {
        let pointer = error.instance_path().as_str().to_owned();
        let at = self.spans.value_or_ancestor(&pointer);
        let instance = error.instance();
        // A union of constants (an enum whose values have descriptions) is one choice.
        let constants: Option<Vec<String>> = branches
            .iter()
            .map(|errs| match errs.as_slice() {
                [e] if e.instance_path().as_str() == pointer => match e.kind() {
                    ValidationErrorKind::Constant { expected_value } => Some(expected_value.to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        if let Some(allowed) = constants.filter(|c| !c.is_empty()) {
            out.push(invalid_choice(instance, &allowed, &describe(self.kind, self.document, &pointer), pointer, at));
            return;
        }
        let def = self.parent_site(error).def.or_else(|| self.site(error.evaluation_path().as_str()).def);
        match def {
            Some("Step") => {
                // The keys that say a step's shape, in the order of `Step`'s variants
                // (the schema's branches).
                const SHAPES: [&str; 6] = ["agent", "wait", "parallel", "sequence", "switch", "map"];
                let shapes: Vec<&str> = SHAPES.into_iter().filter(|k| instance.get(k).is_some()).collect();
                if instance.is_object() && shapes.len() != 1 {
                    let message = if shapes.is_empty() {
                        "a step needs one of `agent`, `wait`, `parallel`, `sequence`, `switch` or `map`".to_owned()
                    } else {
                        format!(
                            "a step has exactly one of `agent`, `wait`, `parallel`, `sequence`, `switch` or `map`, this one has {}",
                            list(&shapes)
                        )
                    };
                    out.push(
                        Diagnostic::error(Code::InvalidStepShape, message, pointer, at)
                            .with_label("not an agent call, a wait, a parallel block, a sequence, a switch or a map")
                            .with_help("`agent` calls an agent; `wait` waits for a signal; `parallel` runs a list of steps concurrently; `sequence` runs them in order; `switch` runs the case matching a value; `map` runs a step for each item of a list"),
                    );
                    return;
                }
                if let Some(shape) = shapes.first() {
                    let index = SHAPES.iter().position(|k| k == shape).unwrap_or(0);
                    if let Some(branch) = branches.get(index) {
                        return branch.iter().for_each(|e| self.convert(e, out));
                    }
                }
            }
            // An eval task's agent: a reference to a workflow's, or one written inline.
            Some("TaskAgent") => {
                let index = usize::from(instance.get("workflow").is_none());
                if let Some(branch) = branches.get(index) {
                    return branch.iter().for_each(|e| self.convert(e, out));
                }
            }
            Some("AgentDefinition") => {
                if let Some(kind) = instance.get("kind").and_then(Value::as_str) {
                    // The union's branches, in `AgentDefinition`'s order: a known
                    // kind's own errors are the ones to show.
                    match AGENT_KINDS.iter().position(|k| *k == kind) {
                        Some(index) => {
                            if let Some(branch) = branches.get(index) {
                                return branch.iter().for_each(|e| self.convert(e, out));
                            }
                        }
                        None => {
                            out.push(
                                Diagnostic::error(
                                    Code::UnknownAgentKind,
                                    format!("unknown agent kind `{kind}`"),
                                    format!("{pointer}/kind"),
                                    self.spans.value_or_ancestor(&format!("{pointer}/kind")),
                                )
                                .with_label("unknown kind")
                                .with_help(format!("this build supports the agent kinds {}", list(AGENT_KINDS))),
                            );
                            return;
                        }
                    }
                }
            }
            Some("Duration") => {
                out.push(
                    Diagnostic::error(Code::InvalidDuration, format!("{instance} is not a duration"), pointer, at)
                        .with_label("not a duration")
                        .with_help(
                            "write integer milliseconds (`1500`) or a number with a unit: `250ms`, `30s`, `2m`, `1h`",
                        ),
                );
                return;
            }
            Some("PolicyRef") if !instance.is_object() => {
                out.push(
                    Diagnostic::error(
                        Code::WrongType,
                        format!(
                            "a step's policy is a policy name or an inline policy object, found {}",
                            json_kind(instance)
                        ),
                        pointer,
                        at,
                    )
                    .with_label("expected a string or an object"),
                );
                return;
            }
            _ => {}
        }
        // Otherwise: the branch that got furthest into the value, then the one
        // with the fewest errors, is the one the user meant.
        let best = branches.iter().max_by_key(|errs| {
            let depth = errs.iter().map(|e| e.instance_path().as_str().matches('/').count()).max().unwrap_or(0);
            (depth, std::cmp::Reverse(errs.len()))
        });
        match best {
            Some(errs) if !errs.is_empty() => errs.iter().for_each(|e| self.convert(e, out)),
            _ => out.push(Diagnostic::error(Code::SchemaViolation, error.to_string(), pointer, at)),
        }
    }
}

/// A value that is not one of the `allowed` choices (JSON texts).
fn invalid_choice(instance: &Value, allowed: &[String], what: &str, pointer: String, at: Span) -> Diagnostic {
    let word = instance.as_str().unwrap_or_default();
    let help = suggestion(word, allowed.iter().map(|s| s.trim_matches('"')))
        .unwrap_or_else(|| format!("use one of {}", allowed.join(", ")));
    Diagnostic::error(Code::InvalidValue, format!("{instance} is not a valid value for {what}"), pointer, at)
        .with_label("not allowed here")
        .with_help(help)
}

/// What sits at `pointer`, for messages: "the workflow", "step `fetch`",
/// "`retry.maxAttempts` of policy `fast`", "`metadata.id`".
fn describe(kind: Kind, document: &Value, pointer: &str) -> String {
    let segments: Vec<String> = pointer.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    let (subject, rest): (String, &[String]) = match segments.as_slice() {
        [] if kind == Kind::Eval => return "the eval file".into(),
        [] => return "the workflow".into(),
        [first, index, rest @ ..] if kind == Kind::Eval && first == "tasks" => {
            match document.pointer(&format!("/tasks/{index}/id")).and_then(Value::as_str) {
                Some(id) => (format!("task `{id}`"), rest),
                None => (format!("task {index}"), rest),
            }
        }
        [first, rest @ ..] if first == "metadata" => return format!("`metadata{}`", dotted(rest)),
        [first, id, rest @ ..] if first == "agents" => (format!("agent `{id}`"), rest),
        [first, name, rest @ ..] if first == "policies" => (format!("policy `{name}`"), rest),
        [first, ..] if first == "steps" => {
            // The innermost step: /steps/N, then (parallel|sequence)/N pairs, a
            // switch's (cases/KEY|default)[/steps]/N, or a map's map/step.
            let mut end = 2.min(segments.len());
            let is_index = |i: usize| segments.get(i).is_some_and(|s| s.parse::<usize>().is_ok());
            let is = |i: usize, word: &str| segments.get(i).is_some_and(|s| s == word);
            loop {
                if is(end, "map") && is(end + 1, "step") {
                    end += 2;
                    continue;
                }
                let skip = match segments.get(end).map(String::as_str) {
                    Some("parallel" | "sequence") => 1,
                    Some("cases") if segments.len() > end + 1 => 2,
                    Some("default") => 1,
                    _ => break,
                };
                let skip = if is(end + skip, "steps") { skip + 1 } else { skip };
                if !is_index(end + skip) {
                    break;
                }
                end += skip + 1;
            }
            let step_pointer: String = segments[..end].iter().map(|s| format!("/{s}")).collect();
            let subject = match document.pointer(&format!("{step_pointer}/id")).and_then(Value::as_str) {
                Some(id) if end >= 2 => format!("step `{id}`"),
                _ if end >= 2 => "a step".to_owned(),
                _ => return "`steps`".into(),
            };
            (subject, &segments[end..])
        }
        [first, rest @ ..] => {
            let field = format!("`{first}{}`", dotted(rest));
            return field;
        }
    };
    if rest.is_empty() {
        subject
    } else {
        format!("`{}` of {subject}", dotted(rest).trim_start_matches('.'))
    }
}

/// `["retry", "maxAttempts"]` -> ".retry.maxAttempts"; indices as `[n]`.
fn dotted(segments: &[String]) -> String {
    segments.iter().map(|s| if s.parse::<usize>().is_ok() { format!("[{s}]") } else { format!(".{s}") }).collect()
}

fn key_kind(object_pointer: &str) -> &'static str {
    match object_pointer {
        "/agents" => "agent id",
        "/policies" => "policy name",
        _ => "name",
    }
}

/// What a pattern means, and an example that fits it.
fn pattern_rule(pattern: &str) -> (&'static str, String) {
    use orchestr8_schema::ast::{DURATION_PATTERN, IDENTIFIER_PATTERN, WORKFLOW_ID_PATTERN};
    if pattern == WORKFLOW_ID_PATTERN {
        ("not a workflow id", "use lower case letters, digits and `-`, starting with a letter, at most 64 characters (e.g. `ticket-triage`)".into())
    } else if pattern == IDENTIFIER_PATTERN {
        ("not an identifier", "use lower case letters, digits and `_`, starting with a letter, at most 64 characters (e.g. `fetch_ticket`)".into())
    } else if pattern == SEMVER_PATTERN {
        ("not a semantic version", "write a version such as `1.0.0` or `0.2.1-beta.1`".into())
    } else if pattern == orchestr8_schema::ast::PERCENT_PATTERN {
        ("not a percentage", "write a count of items (`2`) or a percentage from `0%` to `100%` (`10%`, `2.5%`)".into())
    } else if pattern == DURATION_PATTERN {
        (
            "not a duration",
            "write integer milliseconds (`1500`) or a number with a unit: `250ms`, `30s`, `2m`, `1h`".into(),
        )
    } else {
        ("does not match the expected form", format!("it must match the pattern `{pattern}`"))
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON type with its article: "an integer", "a string", "null".
pub(crate) fn article(t: &str) -> String {
    match t {
        "null" => "null".into(),
        "integer" | "object" | "array" => format!("an {t}"),
        _ => format!("a {t}"),
    }
}

fn list(items: &[&str]) -> String {
    items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
}

fn quoted_list(items: &[&str]) -> String {
    items.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ")
}

/// `s` with its first letter in lower case, to follow "add `x`: ", unless
/// it starts an acronym (`JSON Schema` stays).
fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) if !s.chars().nth(1).is_some_and(char::is_uppercase) => f.to_lowercase().chain(c).collect(),
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod lower_first_tests {
    #[test]
    fn lower_first_keeps_acronyms() {
        assert_eq!(super::lower_first("The agent's id"), "the agent's id");
        assert_eq!(super::lower_first("JSON Schema (draft 2020-12)"), "JSON Schema (draft 2020-12)");
        assert_eq!(super::lower_first("A"), "a");
        assert_eq!(super::lower_first(""), "");
    }
}
