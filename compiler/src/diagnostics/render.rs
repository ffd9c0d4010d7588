//! Rendering: rustc-style text for people, one JSON object per line for tools.

use std::fmt::Write as _;

use orchestr8_schema::source::Span;
use serde_json::json;

use super::{Diagnostic, Severity};

/// Source lines longer than this are shown as a window around the span, so a
/// minified 10 MB document does not print 10 MB per diagnostic.
const MAX_SHOWN_LINE: usize = 120;

/// How to render.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// ANSI colours.
    pub color: bool,
}

/// Line and column lookup for one source text.
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the line starts of `text`.
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.floor_char(offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let col = self.text[self.starts[line]..offset].chars().count() + 1;
        (line + 1, col)
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &'a str {
        let start = self.starts[line - 1];
        let end = self.starts.get(line).map_or(self.text.len(), |&e| e - 1);
        self.text[start..end].trim_end_matches('\r')
    }

    fn floor_char(&self, mut offset: usize) -> usize {
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

struct Palette {
    error: &'static str,
    warning: &'static str,
    accent: &'static str,
    bold: &'static str,
    reset: &'static str,
}

const COLOR: Palette =
    Palette { error: "\x1b[1;31m", warning: "\x1b[1;33m", accent: "\x1b[1;34m", bold: "\x1b[1m", reset: "\x1b[0m" };
const PLAIN: Palette = Palette { error: "", warning: "", accent: "", bold: "", reset: "" };

/// Renders diagnostics of one file the way rustc does.
pub fn render_human(file: &str, text: &str, diagnostics: &[Diagnostic], options: RenderOptions) -> String {
    let index = LineIndex::new(text);
    let p = if options.color { &COLOR } else { &PLAIN };
    let mut out = String::new();
    for d in diagnostics {
        let (sev, sev_color) = match d.severity {
            Severity::Error => ("error", p.error),
            Severity::Warning => ("warning", p.warning),
        };
        let (line, col) = index.line_col(d.span.start);
        let gutter = " ".repeat(line.to_string().len());
        let _ = writeln!(out, "{sev_color}{sev}[{}]{}{}: {}{}", d.code.as_str(), p.reset, p.bold, d.message, p.reset);
        let _ = writeln!(out, "{gutter}{}-->{} {file}:{line}:{col}", p.accent, p.reset);
        let _ = writeln!(out, "{gutter} {}|{}", p.accent, p.reset);
        let (shown, caret_col, caret_len) = window(index.line_text(line), col, span_len_on_line(&index, d.span, line));
        let _ = writeln!(out, "{}{line} |{} {shown}", p.accent, p.reset);
        let label = d.label.as_deref().map(|l| format!(" {l}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "{gutter} {}|{} {}{sev_color}{}{label}{}",
            p.accent,
            p.reset,
            " ".repeat(caret_col),
            "^".repeat(caret_len),
            p.reset
        );
        let _ = writeln!(out, "{gutter} {}|{}", p.accent, p.reset);
        if let Some(help) = &d.help {
            let _ = writeln!(out, "{gutter} {}={} {}help{}: {help}", p.accent, p.reset, p.bold, p.reset);
        }
        for note in &d.notes {
            let _ = writeln!(out, "{gutter} {}={} {}note{}: {note}", p.accent, p.reset, p.bold, p.reset);
        }
        let pointer = shorten_pointer(&d.pointer);
        let _ = writeln!(out, "{gutter} {}={} {}at{}: {pointer}", p.accent, p.reset, p.bold, p.reset);
        out.push('\n');
    }
    out
}

/// How many characters of `line` the span covers (at least one caret).
fn span_len_on_line(index: &LineIndex<'_>, span: Span, line: usize) -> usize {
    let (start_line, start_col) = index.line_col(span.start);
    let (end_line, end_col) = index.line_col(span.end);
    let line_chars = index.line_text(line).chars().count();
    let end_col = if end_line == start_line { end_col } else { line_chars + 1 };
    debug_assert_eq!(start_line, line);
    end_col.saturating_sub(start_col).max(1)
}

/// The part of a line to show, the caret's column in it (0-based) and its
/// length, after expanding tabs and cutting very long lines.
fn window(line: &str, col: usize, len: usize) -> (String, usize, usize) {
    let chars: Vec<char> = line.chars().map(|c| if c == '\t' { ' ' } else { c }).collect();
    // A span may start past the shown text (in trimmed `\r`s or at the end of file).
    let start = (col - 1).min(chars.len());
    if chars.len() <= MAX_SHOWN_LINE {
        let len = len.min(chars.len().saturating_sub(start).max(1));
        return (chars.iter().collect(), start, len);
    }
    let from = start.saturating_sub(40);
    let len = len.min(MAX_SHOWN_LINE - 40);
    let to = (start + len + 40).min(chars.len());
    let mut shown = String::new();
    let mut caret = start - from;
    if from > 0 {
        shown.push_str("...");
        caret += 3;
    }
    shown.extend(&chars[from..to]);
    if to < chars.len() {
        shown.push_str("...");
    }
    (shown, caret, len)
}

/// A pointer short enough to read: the middle of a very deep one is elided.
fn shorten_pointer(pointer: &str) -> std::borrow::Cow<'_, str> {
    const KEEP: usize = 40;
    if pointer.is_empty() {
        "(the document)".into()
    } else if pointer.len() <= 2 * KEEP + 5 || !pointer.is_ascii() {
        pointer.into()
    } else {
        format!("{}/.../{}", &pointer[..KEEP], &pointer[pointer.len() - KEEP..]).into()
    }
}

/// Renders diagnostics as JSON Lines, one object per diagnostic.
pub fn render_json(file: &str, text: &str, diagnostics: &[Diagnostic]) -> String {
    let index = LineIndex::new(text);
    let mut out = String::new();
    for d in diagnostics {
        let (line, column) = index.line_col(d.span.start);
        let (end_line, end_column) = index.line_col(d.span.end);
        let value = json!({
            "file": file,
            "severity": d.severity,
            "code": d.code.as_str(),
            "message": d.message,
            "pointer": d.pointer,
            "line": line,
            "column": column,
            "endLine": end_line,
            "endColumn": end_column,
            "label": d.label,
            "help": d.help,
            "notes": d.notes,
        });
        out.push_str(&value.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let idx = LineIndex::new("ab\n\"é\" x\n");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(3), (2, 1));
        assert_eq!(idx.line_col(7), (2, 4)); // after the 2-byte é
        assert_eq!(idx.line_text(2), "\"é\" x");
        assert_eq!(idx.line_col(100), (3, 1));
    }

    #[test]
    fn long_lines_are_windowed() {
        let line = "x".repeat(1000);
        let (shown, caret, len) = window(&line, 500, 5);
        assert!(shown.len() < 200);
        assert_eq!(&shown[caret..caret + len], "xxxxx");
    }
}
