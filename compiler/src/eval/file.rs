//! Reading an eval file: syntax, the published eval schema, then what the
//! schema cannot say, every finding located in the eval file. An inline
//! agent is checked by the workflow validator itself (as the only agent of
//! a one-step workflow), so an agent valid here is valid in a workflow.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use orchestr8_schema::ast::{AgentDefinition, LlmAgent};
use orchestr8_schema::eval::{Bounds, Constraint, EvalFile, TaskAgent};
use orchestr8_schema::source::{self, SpanIndex};
use serde_json::{json, Value};

use super::pointer::{Pointer, Segment};
use crate::agents::FromRustSource;
use crate::diagnostics::{sort_and_dedup, suggestion, Code, Diagnostic};
use crate::validate::schema::{article, check_as, Kind};
use crate::validate::{syntax_diagnostic, validate};

/// A checked eval: every task's agent resolved, every check compiled.
#[derive(Debug, Clone)]
pub struct Eval {
    /// The eval's name.
    pub name: String,
    /// What it measures.
    pub description: Option<String>,
    /// The tasks, in file order.
    pub tasks: Vec<EvalTask>,
}

/// One task, ready to run and score.
#[derive(Debug, Clone)]
pub struct EvalTask {
    /// The task id.
    pub id: String,
    /// What the task is.
    pub description: Option<String>,
    /// The agent (its `prompt.format` is set by each arm).
    pub agent: LlmAgent,
    /// Where the agent is defined, for the report.
    pub source: String,
    /// The input documents.
    pub inputs: Vec<Value>,
    /// The task's own checks.
    pub checks: Vec<Check>,
    /// Fields that must be present and non-empty, beyond the schema's `required`.
    pub fields: Vec<Pointer>,
}

/// One compiled constraint.
#[derive(Debug, Clone)]
pub struct Check {
    /// The field checked.
    pub path: Pointer,
    /// What it is for, or a description made from the check.
    pub label: String,
    /// The check itself.
    pub rule: Rule,
}

/// What a check requires of its field.
#[derive(Debug, Clone)]
pub enum Rule {
    /// A number within bounds.
    Range(Bounds),
    /// A list's items or a string's characters, within bounds.
    Length(Bounds),
    /// A string's words, within bounds.
    Words(Bounds),
    /// A string matching a regular expression.
    Pattern(regex::Regex),
    /// A string containing a term, ignoring case (the term lower-cased).
    Contains(String),
    /// A string not containing a term, ignoring case (the term lower-cased).
    Excludes(String),
    /// Equal to the input's value at a pointer.
    Echoes(Pointer),
}

/// An eval file that did not check: its text and what is wrong with it.
#[derive(Debug)]
pub struct Rejected {
    /// The text the diagnostics point into.
    pub text: String,
    /// Every finding, sorted.
    pub diagnostics: Vec<Diagnostic>,
}

/// Checks the bytes of an eval file; `dir` is where its workflow paths start.
pub fn check(bytes: &[u8], dir: &Path) -> Result<(Eval, Vec<Diagnostic>), Rejected> {
    let parsed = match source::parse(bytes) {
        Ok(parsed) => parsed,
        Err(issues) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            return Err(rejected(text, issues.into_iter().map(syntax_diagnostic).collect()));
        }
    };
    let mut out: Vec<Diagnostic> = parsed.warnings.iter().cloned().map(syntax_diagnostic).collect();
    out.extend(check_as(Kind::Eval, &parsed.value, &parsed.spans));
    if out.iter().any(Diagnostic::is_error) {
        return Err(rejected(parsed.text, out));
    }
    let file: EvalFile = match serde_json::from_value(parsed.value.clone()) {
        Ok(file) => file,
        Err(e) => {
            out.push(Diagnostic::error(
                Code::SchemaViolation,
                format!("this eval file cannot be read: {e}"),
                "",
                parsed.spans.value_or_ancestor(""),
            ));
            return Err(rejected(parsed.text, out));
        }
    };
    let mut cx = Checker { spans: &parsed.spans, dir, out };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut tasks = Vec::new();
    for (i, task) in file.tasks.iter().enumerate() {
        let at = format!("/tasks/{i}");
        if let Some(first) = seen.get(task.id.as_str()).copied() {
            cx.error(
                Code::EvalDuplicateTask,
                format!("task id `{}` is used twice (first at /tasks/{first})", task.id),
                &format!("{at}/id"),
                Some("give each task its own id: the report names tasks by id".into()),
            );
        }
        seen.entry(&task.id).or_insert(i);
        let raw_agent = parsed.value.pointer(&format!("{at}/agent")).cloned().unwrap_or_default();
        let Some((agent, source)) = cx.agent(&task.agent, &raw_agent, &format!("{at}/agent"), &task.id) else {
            continue;
        };
        cx.inputs(&agent, &task.inputs, &at);
        let (Some(input_schema), Some(output_schema)) = (&agent.common.input, &agent.common.output) else { continue };
        let checks: Vec<Check> = task
            .constraints
            .iter()
            .enumerate()
            .filter_map(|(j, c)| cx.constraint(c, &format!("{at}/constraints/{j}"), input_schema, output_schema))
            .collect();
        // An echo reads the input: each input must have the value.
        for check in &checks {
            let Rule::Echoes(echoed) = &check.rule else { continue };
            for (k, input) in task.inputs.iter().enumerate() {
                if echoed.values(input).is_none_or(|v| v.is_empty()) {
                    cx.error(
                        Code::EvalInputMismatch,
                        format!(
                            "input {} has no value at `{echoed}`, which the constraint on `{}` echoes",
                            k + 1,
                            check.path
                        ),
                        &format!("{at}/inputs/{k}"),
                        Some("give every input the value, or drop the constraint".into()),
                    );
                }
            }
        }
        let fields: Vec<Pointer> = task
            .fields
            .iter()
            .enumerate()
            .filter_map(|(j, f)| cx.field(f, &format!("{at}/fields/{j}"), output_schema))
            .collect();
        tasks.push(EvalTask {
            id: task.id.clone(),
            description: task.description.clone(),
            agent,
            source,
            inputs: task.inputs.clone(),
            checks,
            fields,
        });
    }
    let mut diagnostics = cx.out;
    sort_and_dedup(&mut diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(Rejected { text: parsed.text, diagnostics });
    }
    Ok((Eval { name: file.name, description: file.description, tasks }, diagnostics))
}

fn rejected(text: String, mut diagnostics: Vec<Diagnostic>) -> Rejected {
    sort_and_dedup(&mut diagnostics);
    Rejected { text, diagnostics }
}

struct Checker<'a> {
    spans: &'a SpanIndex,
    dir: &'a Path,
    out: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, code: Code, message: String, pointer: &str, help: Option<String>) {
        let span = self.spans.value_or_ancestor(pointer);
        self.out.push(Diagnostic::error(code, message, pointer, span).with_optional_help(help));
    }

    /// The task's agent, checked as a workflow's LLM agent is.
    fn agent(&mut self, agent: &TaskAgent, raw: &Value, at: &str, task: &str) -> Option<(LlmAgent, String)> {
        match agent {
            TaskAgent::Inline(_) => self.inline_agent(raw, at, task).map(|a| (a, "inline".to_owned())),
            TaskAgent::Workflow(r) => {
                let path = self.dir.join(&r.workflow);
                self.workflow_agent(&path, &r.workflow, &r.agent, at)
                    .map(|a| (a, format!("{}#{}", r.workflow, r.agent)))
            }
        }
    }

    /// Validates an inline agent as the one agent of a one-step workflow,
    /// keeping the findings about the agent, moved to where it is written.
    fn inline_agent(&mut self, raw: &Value, at: &str, task: &str) -> Option<LlmAgent> {
        const ID: &str = "task_agent";
        let workflow = json!({
            "schemaVersion": "1.0.0",
            "metadata": {"id": "eval-task", "version": "1.0.0"},
            "agents": {ID: raw},
            "steps": [{"id": "answer", "agent": ID, "input": {}}],
        });
        let text = serde_json::to_string(&workflow).expect("a JSON value serialises");
        let validation = validate(text.as_bytes(), &FromRustSource::new(self.dir));
        let prefix = format!("/agents/{ID}");
        for d in validation.diagnostics {
            let Some(rest) = d.pointer.strip_prefix(&prefix) else { continue };
            let pointer = format!("{at}{rest}");
            let span = if rest.is_empty() {
                self.spans.key_or_value(&pointer)
            } else {
                self.spans.value_or_ancestor(&pointer)
            };
            // Messages name the agent by id: here it is the task's.
            let rename = |text: &str| {
                text.replace(&format!("LLM agent `{ID}`"), &format!("the agent of task `{task}`"))
                    .replace(&format!("agent `{ID}`"), &format!("the agent of task `{task}`"))
            };
            let (message, help) = (rename(&d.message), d.help.as_deref().map(rename));
            self.out.push(Diagnostic { pointer, span, message, help, ..d });
        }
        // The synthetic step's own findings are dropped, and with them the
        // validated workflow: the agent is read from the value the eval
        // schema accepted.
        match serde_json::from_value(raw.clone()) {
            Ok(AgentDefinition::Llm(agent)) => Some(agent),
            _ => {
                self.error(Code::Internal, "the eval schema accepted an agent that does not read".into(), at, None);
                None
            }
        }
    }

    fn workflow_agent(&mut self, path: &Path, shown: &str, id: &str, at: &str) -> Option<LlmAgent> {
        let unavailable = |cx: &mut Self, message: String, pointer: &str, help: Option<String>| {
            cx.error(Code::EvalAgentUnavailable, message, pointer, help);
            None
        };
        let bytes = match crate::cli::read_document(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                return unavailable(
                    self,
                    e.replace(&path.display().to_string(), shown),
                    &format!("{at}/workflow"),
                    Some("the path is relative to the eval file".into()),
                )
            }
        };
        let dir: PathBuf = path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let validation = validate(&bytes, &FromRustSource::new(dir));
        let errors = validation.diagnostics.iter().filter(|d| d.is_error()).count();
        let Some(mut workflow) = validation.workflow.filter(|_| errors == 0) else {
            return unavailable(
                self,
                format!("workflow `{shown}` has {errors} error(s)"),
                &format!("{at}/workflow"),
                Some(format!("run `orchestr8 validate {}` and fix it first", path.display())),
            );
        };
        let ids: Vec<String> = workflow.agents.keys().cloned().collect();
        match workflow.agents.remove(id) {
            Some(AgentDefinition::Llm(agent)) => Some(agent),
            Some(AgentDefinition::Rust(_)) => unavailable(
                self,
                format!("agent `{id}` of `{shown}` is a Rust agent; only LLM agents (`\"kind\": \"llm\"`) have prompts to evaluate"),
                &format!("{at}/agent"),
                None,
            ),
            None => {
                let help = suggestion(id, ids.iter().map(String::as_str))
                    .or_else(|| Some(format!("its agents are {}", ids.join(", "))));
                unavailable(self, format!("workflow `{shown}` has no agent `{id}`"), &format!("{at}/agent"), help)
            }
        }
    }

    fn inputs(&mut self, agent: &LlmAgent, inputs: &[Value], at: &str) {
        let Some(schema) = &agent.common.input else { return };
        let Ok(validator) = jsonschema::validator_for(schema) else { return };
        for (j, input) in inputs.iter().enumerate() {
            for e in validator.iter_errors(input) {
                let pointer = format!("{at}/inputs/{j}{}", e.instance_path().as_str());
                self.error(
                    Code::EvalInputMismatch,
                    format!("input {} does not fit the agent's input schema: {e}", j + 1),
                    &pointer,
                    Some("every input is what a step would pass the agent: fix the input or the schema".into()),
                );
            }
        }
    }

    fn constraint(&mut self, c: &Constraint, at: &str, input: &Value, output: &Value) -> Option<Check> {
        let given: Vec<&str> = [
            ("range", c.range.is_some()),
            ("length", c.length.is_some()),
            ("words", c.words.is_some()),
            ("pattern", c.pattern.is_some()),
            ("contains", c.contains.is_some()),
            ("excludes", c.excludes.is_some()),
            ("echoes", c.echoes.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, on)| on.then_some(k))
        .collect();
        let [kind] = given.as_slice() else {
            let message = if given.is_empty() {
                "a constraint needs a check".to_owned()
            } else {
                format!("a constraint has exactly one check, this one has {}", given.join(", "))
            };
            self.error(
                Code::EvalBadConstraint,
                message,
                at,
                Some("write one of `range`, `length`, `words`, `pattern`, `contains`, `excludes` or `echoes`; split several checks into several constraints".into()),
            );
            return None;
        };
        let kind = *kind;
        let path = self.pointer(&c.path, &format!("{at}/path"), output, "the output schema", true)?;
        let types = path.types(output);
        let need = |allowed: &[&str]| types.is_empty() || types.iter().any(|t| allowed.contains(&t.as_str()));
        let fits = match kind {
            "range" => need(&["number", "integer"]),
            "length" => need(&["string", "array"]),
            "words" | "pattern" | "contains" | "excludes" => need(&["string"]),
            _ => true,
        };
        if !fits {
            self.error(
                Code::EvalBadConstraint,
                format!(
                    "`{kind}` cannot apply to `{}`, which is {}",
                    c.path,
                    types.iter().map(|t| article(t)).collect::<Vec<_>>().join(" or ")
                ),
                &format!("{at}/{kind}"),
                Some(match kind {
                    "range" => "`range` checks numbers".into(),
                    "length" => "`length` checks lists and strings".into(),
                    _ => format!("`{kind}` checks strings"),
                }),
            );
            return None;
        }
        let bounds = |cx: &mut Self, b: Bounds, counts: bool| -> Option<Bounds> {
            let p = format!("{at}/{kind}");
            let problem = match (b.min, b.max) {
                (None, None) => Some("give `min`, `max` or both".to_owned()),
                (Some(lo), Some(hi)) if lo > hi => Some(format!("`min` ({lo}) is greater than `max` ({hi})")),
                (lo, hi) if counts && [lo, hi].into_iter().flatten().any(|x| x < 0.0 || x.fract() != 0.0) => {
                    Some("a count is a whole number, 0 or more".to_owned())
                }
                _ => None,
            };
            match problem {
                Some(problem) => {
                    cx.error(Code::EvalBadConstraint, format!("bad bounds: {problem}"), &p, None);
                    None
                }
                None => Some(b),
            }
        };
        let rule = match kind {
            "range" => Rule::Range(bounds(self, c.range?, false)?),
            "length" => Rule::Length(bounds(self, c.length?, true)?),
            "words" => Rule::Words(bounds(self, c.words?, true)?),
            "pattern" => {
                let pattern = c.pattern.as_deref()?;
                match regex::Regex::new(pattern) {
                    Ok(re) => Rule::Pattern(re),
                    Err(e) => {
                        let text = e.to_string();
                        let first = text.lines().last().unwrap_or_default().trim().trim_start_matches("error: ");
                        self.error(
                            Code::EvalBadConstraint,
                            format!("`{pattern}` is not a regular expression: {first}"),
                            &format!("{at}/pattern"),
                            Some("the syntax is the Rust `regex` crate's (no look-around or back-references)".into()),
                        );
                        return None;
                    }
                }
            }
            "contains" => Rule::Contains(c.contains.as_deref()?.to_lowercase()),
            "excludes" => Rule::Excludes(c.excludes.as_deref()?.to_lowercase()),
            _ => {
                let echoes = c.echoes.as_deref()?;
                Rule::Echoes(self.pointer(echoes, &format!("{at}/echoes"), input, "the input schema", false)?)
            }
        };
        let label = c.description.clone().unwrap_or_else(|| describe_check(&path, &rule));
        Some(Check { path, label, rule })
    }

    fn field(&mut self, field: &str, at: &str, output: &Value) -> Option<Pointer> {
        self.pointer(field, at, output, "the output schema", true)
    }

    /// A pointer that names a field of `schema`.
    fn pointer(&mut self, text: &str, at: &str, schema: &Value, whose: &str, wildcards: bool) -> Option<Pointer> {
        let pointer = match Pointer::parse(text) {
            Ok(p) if wildcards || !p.has_wildcard() => p,
            Ok(_) => {
                self.error(
                    Code::EvalBadConstraint,
                    format!("`{text}`: `*` is not allowed here"),
                    at,
                    Some("name one value of the input".into()),
                );
                return None;
            }
            Err(e) => {
                let help = (!text.starts_with('/')).then(|| format!("write `/{text}`"));
                self.error(Code::EvalBadConstraint, format!("`{text}` is not a JSON pointer: {e}"), at, help);
                return None;
            }
        };
        if let Err((reached, known)) = pointer.resolve(schema) {
            let help = match &pointer.segments().get(reached) {
                Some(Segment::Key(k)) => suggestion(k, known.iter().map(String::as_str))
                    .or_else(|| (!known.is_empty()).then(|| format!("the fields there are {}", known.join(", ")))),
                _ => Some("`*` is for the items of a list (`type: array`)".into()),
            };
            self.error(Code::EvalNoSuchField, format!("`{text}`: {whose} has no such field"), at, help);
            return None;
        }
        Some(pointer)
    }
}

/// The report's name for a check without a description.
fn describe_check(path: &Pointer, rule: &Rule) -> String {
    let b = |b: &Bounds| match (b.min, b.max) {
        (Some(lo), Some(hi)) => format!("{lo}..={hi}"),
        (Some(lo), None) => format!(">= {lo}"),
        (None, Some(hi)) => format!("<= {hi}"),
        (None, None) => String::new(),
    };
    match rule {
        Rule::Range(x) => format!("{path} in {}", b(x)),
        Rule::Length(x) => format!("length of {path} {}", b(x)),
        Rule::Words(x) => format!("words of {path} {}", b(x)),
        Rule::Pattern(re) => format!("{path} matches /{}/", re.as_str()),
        Rule::Contains(t) => format!("{path} contains \"{t}\""),
        Rule::Excludes(t) => format!("{path} excludes \"{t}\""),
        Rule::Echoes(p) => format!("{path} echoes input {p}"),
    }
}
