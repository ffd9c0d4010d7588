//! `orchestr8 validate`: a workflow document through three layers, each
//! reporting every fault it finds with its location.
//!
//! 1. syntax: strict JSON with spans ([`orchestr8_schema::source`]);
//! 2. the published JSON Schema ([`schema`]);
//! 3. the graph rules ([`graph`]) and the types of every reference ([`typecheck`]);
//! 4. lowering to the checked workflow ([`crate::checked::lower`]), which
//!    code generation reads, when every agent's declaration is known.
//!
//! A layer runs only when the one before it passed: the graph of a document
//! that is not a workflow has no meaning.

pub mod graph;
pub mod llm;
pub mod schema;
pub mod target;
pub mod typecheck;

use orchestr8_schema::ast::Workflow;
use orchestr8_schema::source::{self, raw_offset_in_string_token, Span, SpanIndex, SyntaxIssueKind};

use crate::agents::AgentSchemaSource;
use crate::checked::{lower, CheckedWorkflow};
use crate::diagnostics::{sort_and_dedup, Code, Diagnostic};
use crate::target::Target;

/// The outcome of validating one document.
#[derive(Debug)]
pub struct Validation {
    /// The source text the diagnostics point into (lossy if it was not UTF-8).
    pub text: String,
    /// Every finding, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The workflow, when it has no errors.
    pub workflow: Option<Workflow>,
    /// The checked workflow, when it has no errors and every agent's
    /// declaration is known (not with `--declared-only`): what code
    /// generation reads.
    pub checked: Option<CheckedWorkflow>,
}

impl Validation {
    /// Whether any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// A parsed document: text and spans, for locating findings.
pub struct Doc<'a> {
    text: &'a str,
    spans: &'a SpanIndex,
}

impl<'a> Doc<'a> {
    /// A view of `text` with its spans.
    pub fn new(text: &'a str, spans: &'a SpanIndex) -> Self {
        Doc { text, spans }
    }

    /// The value at `pointer` (or its nearest ancestor).
    pub fn value(&self, pointer: &str) -> Span {
        self.spans.value_or_ancestor(pointer)
    }

    /// The key naming the member at `pointer`, else its value.
    pub fn key(&self, pointer: &str) -> Span {
        self.spans.key_or_value(pointer)
    }

    /// The bytes `start..end` of the decoded string at `pointer`.
    pub fn in_string(&self, pointer: &str, start: usize, end: usize) -> Span {
        let Some(node) = self.spans.get(pointer) else { return self.value(pointer) };
        let raw = &self.text[node.value.start..node.value.end];
        let from = node.value.start + raw_offset_in_string_token(raw, start);
        let to = node.value.start + raw_offset_in_string_token(raw, end);
        Span::new(from, to)
    }

    /// 1-based line of the value at `pointer`.
    pub fn line_of(&self, pointer: &str) -> usize {
        let at = self.value(pointer).start.min(self.text.len());
        self.text[..at].matches('\n').count() + 1
    }
}

/// Validates the bytes of one workflow document for the embedded target,
/// taking agent schemas from `agents`.
pub fn validate(bytes: &[u8], agents: &dyn AgentSchemaSource) -> Validation {
    validate_for(bytes, agents, Target::Embedded)
}

/// Validates a workflow for `target`: what the target cannot run is an error too.
pub fn validate_for(bytes: &[u8], agents: &dyn AgentSchemaSource, target: Target) -> Validation {
    let parsed = match source::parse(bytes) {
        Ok(parsed) => parsed,
        Err(issues) => {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let diagnostics = issues.into_iter().map(syntax_diagnostic).collect();
            return finish(text, diagnostics, None);
        }
    };
    let mut diagnostics: Vec<Diagnostic> = parsed.warnings.iter().cloned().map(syntax_diagnostic).collect();
    let schema_errors = schema::check(&parsed.value, &parsed.spans);
    if !schema_errors.is_empty() {
        diagnostics.extend(schema_errors);
        return finish(parsed.text, diagnostics, None);
    }
    // JSON Schema counts `30000.0` as an integer; so do the AST types.
    let mut value = parsed.value.clone();
    integral_floats_to_integers(&mut value);
    let workflow: Workflow = match serde_path_to_error::deserialize(value) {
        Ok(w) => w,
        Err(e) => {
            // The schema accepted what the types reject (a number too large, say).
            let pointer: String = e
                .path()
                .iter()
                .map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
                    serde_path_to_error::Segment::Map { key } => format!("/{}", source::escape_pointer_token(key)),
                    _ => String::new(),
                })
                .collect();
            let span = parsed.spans.value_or_ancestor(&pointer);
            diagnostics.push(
                Diagnostic::error(Code::WrongType, format!("this value cannot be read: {}", e.inner()), pointer, span)
                    .with_label("not readable")
                    .with_help("check the field's type in the workflow schema (`orchestr8 schema`)"),
            );
            return finish(parsed.text, diagnostics, None);
        }
    };
    let doc = Doc::new(&parsed.text, &parsed.spans);
    let graph = graph::check(&workflow, &doc, &mut diagnostics);
    target::check(&workflow, target, &doc, &mut diagnostics);
    llm::check(&workflow, &doc, &mut diagnostics);
    let typed = typecheck::check(&workflow, &graph, &doc, agents, &mut diagnostics);
    let every_agent_declared =
        workflow.agents.keys().all(|id| typed.declarations.contains_key(id) || typed.llm.contains_key(id));
    let checked = if diagnostics.iter().any(Diagnostic::is_error) || !every_agent_declared {
        None
    } else {
        let input = lower::Input {
            workflow: &workflow,
            text: &parsed.text,
            graph: &graph,
            doc: &doc,
            input: &typed.input,
            declarations: &typed.declarations,
            llm: &typed.llm,
            waits: &typed.waits,
            switches: &typed.switches,
        };
        lower::lower(&input, &mut diagnostics)
    };
    drop(graph);
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    // Lowering runs only without errors, and gives a workflow only if it adds none.
    Validation { checked, ..finish(parsed.text, diagnostics, ok.then_some(workflow)) }
}

fn finish(text: String, mut diagnostics: Vec<Diagnostic>, workflow: Option<Workflow>) -> Validation {
    sort_and_dedup(&mut diagnostics);
    Validation { text, diagnostics, workflow, checked: None }
}

pub(crate) fn syntax_diagnostic(issue: source::SyntaxIssue) -> Diagnostic {
    let code = match issue.kind {
        SyntaxIssueKind::InvalidUtf8 => Code::InvalidUtf8,
        SyntaxIssueKind::Empty => Code::EmptyFile,
        SyntaxIssueKind::Syntax => Code::JsonSyntax,
        SyntaxIssueKind::DuplicateKey => Code::DuplicateKey,
        SyntaxIssueKind::TooDeep => Code::NestingTooDeep,
        SyntaxIssueKind::TrailingContent => Code::TrailingContent,
        SyntaxIssueKind::ByteOrderMark => Code::ByteOrderMark,
    };
    let label = match issue.kind {
        SyntaxIssueKind::DuplicateKey => "duplicate key",
        SyntaxIssueKind::TrailingContent => "after the document",
        SyntaxIssueKind::ByteOrderMark => "byte order mark",
        _ => "here",
    };
    Diagnostic::error(code, issue.message, issue.pointer, issue.span).with_label(label).with_optional_help(issue.help)
}

/// Rewrites numbers like `30000.0` as integers, recursively.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && (0.0..=u64::MAX as f64).contains(&f) && f < 2f64.powi(63) {
                *value = serde_json::Value::from(f as u64);
            } else if f.fract() == 0.0 && f < 0.0 && f >= i64::MIN as f64 {
                *value = serde_json::Value::from(f as i64);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        serde_json::Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}
