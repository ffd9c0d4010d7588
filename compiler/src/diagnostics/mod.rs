//! Diagnostics: what is wrong, where (JSON pointer and `file:line:col`) and
//! what to do, rendered rustc-style for people and as JSON for tools.

mod codes;
pub mod explain;
mod render;

pub use codes::Code;
pub use render::{explain_hint, render_human, render_json, RenderOptions};

use orchestr8_schema::source::Span;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails validation.
    Error,
    /// Reported; does not fail validation.
    Warning,
}

/// One finding about a workflow document.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Stable code.
    pub code: Code,
    /// What is wrong, in one line.
    pub message: String,
    /// JSON pointer of the value concerned.
    pub pointer: String,
    /// The bytes to underline.
    pub span: Span,
    /// Short text under the underline.
    pub label: Option<String>,
    /// What to do.
    pub help: Option<String>,
    /// Further facts (where else something is declared, say).
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// An error with code `code` at `span`.
    pub fn error(code: Code, message: impl Into<String>, pointer: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: code.severity(),
            code,
            message: message.into(),
            pointer: pointer.into(),
            span,
            label: None,
            help: None,
            notes: Vec::new(),
        }
    }

    /// Adds the text under the underline.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line if there is one.
    pub fn with_optional_help(mut self, help: Option<String>) -> Self {
        self.help = help.or(self.help);
        self
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Whether it fails validation.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Sorts diagnostics by position so reports read top to bottom, and drops
/// exact repeats (two rules may find the same fault).
pub fn sort_and_dedup(diagnostics: &mut Vec<Diagnostic>) {
    diagnostics.sort_by(|a, b| {
        (a.span.start, a.span.end, a.code, &a.message).cmp(&(b.span.start, b.span.end, b.code, &b.message))
    });
    diagnostics.dedup();
}

/// The closest of `candidates` to `word`, if it is close enough to be a
/// likely typo: the "did you mean" of every unknown name.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, c)| c)
}

/// "did you mean `x`?" for the closest candidate, if any.
pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_only_close_names() {
        assert_eq!(did_you_mean("clasify", ["classify", "sentiment"]), Some("classify"));
        assert_eq!(did_you_mean("polcy", ["policy", "input", "agent"]), Some("policy"));
        assert_eq!(did_you_mean("zzz", ["classify", "sentiment"]), None);
    }
}
