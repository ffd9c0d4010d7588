//! Rendering: rustc-style text for people, one JSON object per line for tools.

use std::fmt::Write as _;

use orchestr8_schema::source::Span;
use serde_json::json;

use super::{Code, Diagnostic, Severity};

/// Source lines longer than this are shown as a window around the span, so a
/// minified 10 MB document does not print 10 MB per diagnostic.
const MAX_SHOWN_LINE: usize = 120;

/// How to render.
#[derive(Debug, Clone, Copy, Default)]
pub struct RenderOptions {
    /// ANSI colours.
    pub color: bool,
    /// Stop after this many errors, with a count of what was left out (0: show all).
    pub max_errors: usize,
}

/// Line and column lookup for one source text, in O(log n) per lookup
/// whatever the lines' lengths (a minified document is one line).
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
    /// Byte offsets of the characters longer than one byte, and the extra
    /// bytes of all such characters up to and including each: byte distances
    /// become character counts without scanning.
    wide: Vec<(usize, usize)>,
}

impl<'a> LineIndex<'a> {
    /// Indexes the line starts of `text`.
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(newlines(text));
        let mut wide = Vec::new();
        if !text.is_ascii() {
            let mut extra = 0;
            for (i, c) in text.char_indices().filter(|(_, c)| !c.is_ascii()) {
                extra += c.len_utf8() - 1;
                wide.push((i, extra));
            }
        }
        LineIndex { text, starts, wide }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = self.floor_char(offset.min(self.text.len()));
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        (line + 1, self.chars_between(self.starts[line], offset) + 1)
    }

    /// The text of a 1-based line, without its line break.
    pub fn line_text(&self, line: usize) -> &'a str {
        let start = self.starts[line - 1];
        let end = self.starts.get(line).map_or(self.text.len(), |&e| e - 1);
        self.text[start..end].trim_end_matches('\r')
    }

    /// Characters in `text[from..to]` (both on character boundaries).
    fn chars_between(&self, from: usize, to: usize) -> usize {
        // Extra bytes of the wide characters that start before `at`.
        let extra = |at: usize| match self.wide.partition_point(|&(i, _)| i < at) {
            0 => 0,
            n => self.wide[n - 1].1,
        };
        (to - from) - (extra(to) - extra(from))
    }

    fn floor_char(&self, mut offset: usize) -> usize {
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }
}

fn newlines(text: &str) -> impl Iterator<Item = usize> + '_ {
    text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1)
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

/// Renders diagnostics of one file the way rustc does, in time linear in
/// their number: after `options.max_errors` errors it stops and says how
/// many errors and warnings it left out.
pub fn render_human(file: &str, text: &str, diagnostics: &[Diagnostic], options: RenderOptions) -> String {
    let index = LineIndex::new(text);
    let p = if options.color { &COLOR } else { &PLAIN };
    let mut out = String::new();
    let mut errors = 0;
    for (shown, d) in diagnostics.iter().enumerate() {
        if options.max_errors != 0 && errors == options.max_errors {
            let rest = &diagnostics[shown..];
            let more_errors = rest.iter().filter(|d| d.is_error()).count();
            let plural = |n: usize, word: &str| format!("{n} more {word}{}", if n == 1 { "" } else { "s" });
            let _ = writeln!(
                out,
                "{}note{}: {} and {} not shown: `--max-errors 0` shows them all, `--format json` lists them all\n",
                p.bold,
                p.reset,
                plural(more_errors, "error"),
                plural(rest.len() - more_errors, "warning"),
            );
            break;
        }
        errors += usize::from(d.is_error());
        let (sev, sev_color) = match d.severity {
            Severity::Error => ("error", p.error),
            Severity::Warning => ("warning", p.warning),
        };
        let (line, col) = index.line_col(d.span.start);
        let gutter = " ".repeat(line.to_string().len());
        let _ = writeln!(out, "{sev_color}{sev}[{}]{}{}: {}{}", d.code.as_str(), p.reset, p.bold, d.message, p.reset);
        let _ = writeln!(out, "{gutter}{}-->{} {file}:{line}:{col}", p.accent, p.reset);
        let _ = writeln!(out, "{gutter} {}|{}", p.accent, p.reset);
        let (shown, caret_col, caret_len) = window(&index, line, d.span);
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

/// Codes named in the hint; the rest are counted.
const MAX_HINT_CODES: usize = 5;

/// The line after a report that points at the diagnostics index, as
/// rustc's `--explain` hint: the codes of the errors reported (of the
/// warnings when there is no error; those past `--max-errors` too), in
/// order, and the command for the first. `None` when nothing was reported.
pub fn explain_hint(diagnostics: &[Diagnostic]) -> Option<String> {
    let any_error = diagnostics.iter().any(Diagnostic::is_error);
    let codes: std::collections::BTreeSet<Code> =
        diagnostics.iter().filter(|d| d.is_error() == any_error).map(|d| d.code).collect();
    let codes: Vec<&str> = codes.into_iter().map(Code::as_str).collect();
    let first = codes.first()?;
    let what = if any_error { "error" } else { "warning" };
    Some(match codes.len() {
        1 => format!("For more information about this {what}, try `orchestr8 explain {first}`."),
        n => {
            // A long list would bury the command.
            let mut shown = codes[..n.min(MAX_HINT_CODES)].join(", ");
            if n > MAX_HINT_CODES {
                shown.push_str(&format!(" and {} more", n - MAX_HINT_CODES));
            }
            format!("For more information about these {what}s ({shown}), try `orchestr8 explain {first}`.")
        }
    })
}

/// The part of `line` to show for `span` (which starts on it), the caret's
/// column in it (0-based) and its length. Tabs become spaces; a line longer
/// than [`MAX_SHOWN_LINE`] is cut to a window around the span, found from
/// byte offsets so the work does not grow with the line.
fn window(index: &LineIndex<'_>, line: usize, span: Span) -> (String, usize, usize) {
    let text = index.line_text(line);
    let line_start = index.starts[line - 1];
    // A span may start past the shown text (in trimmed `\r`s or at the end of file).
    let start = index.floor_char(span.start.min(index.text.len())).saturating_sub(line_start).min(text.len());
    let end = span.end.clamp(line_start + start, line_start + text.len()) - line_start;
    let end = index.floor_char(line_start + end) - line_start;
    let tabs = |s: &str| s.replace('\t', " ");
    // Bytes bound characters from above, so this count is bounded too.
    let short =
        text.len() <= MAX_SHOWN_LINE || (text.len() <= 4 * MAX_SHOWN_LINE && text.chars().count() <= MAX_SHOWN_LINE);
    if short {
        let caret = text[..start].chars().count();
        let len = text[start..end].chars().count().max(1);
        let len = len.min(text.chars().count().saturating_sub(caret).max(1));
        return (tabs(text), caret, len);
    }
    // Up to 40 characters before the span, the span (capped) and 40 after.
    let before: usize = text[..start].chars().rev().take(40).map(char::len_utf8).sum();
    let len = text[start..end].chars().take(MAX_SHOWN_LINE - 40).count().max(1);
    let after: usize = text[start..].chars().take(len + 40).map(char::len_utf8).sum();
    let (from, to) = (start - before, start + after);
    let mut shown = String::new();
    let mut caret = text[from..start].chars().count();
    if from > 0 {
        shown.push_str("...");
        caret += 3;
    }
    shown.push_str(&tabs(&text[from..to]));
    if to < text.len() {
        shown.push_str("...");
    }
    let len = len.min(text[start..to].chars().count().max(1));
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
    fn the_explain_hint_names_the_codes_shown_errors_first() {
        let d = |code: Code| {
            let mut d = Diagnostic::error(code, "m", "", Span::default());
            d.severity = code.severity();
            d
        };
        assert_eq!(explain_hint(&[]), None);
        assert_eq!(
            explain_hint(&[d(Code::TypeMismatch), d(Code::TypeMismatch)]).unwrap(),
            "For more information about this error, try `orchestr8 explain E0402`."
        );
        // Warnings are left out when there is an error.
        assert_eq!(
            explain_hint(&[d(Code::UnusedAgent), d(Code::UnknownStep), d(Code::TypeMismatch)]).unwrap(),
            "For more information about these errors (E0306, E0402), try `orchestr8 explain E0306`."
        );
        assert_eq!(
            explain_hint(&[d(Code::UnusedAgent)]).unwrap(),
            "For more information about this warning, try `orchestr8 explain W0320`."
        );
        let many: Vec<Diagnostic> =
            Code::ALL.iter().filter(|c| c.severity() == Severity::Error).map(|&c| d(c)).collect();
        let hint = explain_hint(&many).unwrap();
        assert!(hint.contains("(E0100, E0101, E0102, E0103, E0104 and "), "{hint}");
        assert!(hint.ends_with("try `orchestr8 explain E0100`."), "{hint}");
    }

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
        let text = "x".repeat(1000);
        let index = LineIndex::new(&text);
        let (shown, caret, len) = window(&index, 1, Span { start: 499, end: 504 });
        assert!(shown.len() < 200);
        assert_eq!(&shown[caret..caret + len], "xxxxx");
        assert_eq!(index.line_col(499), (1, 500));
    }

    #[test]
    fn wide_characters_on_a_long_line_keep_columns_and_carets_right() {
        // A minified line of 2,000 characters, every other one two or three bytes.
        let text: String = (0..1000).map(|i| if i % 2 == 0 { "é\"" } else { "€a" }).collect();
        let index = LineIndex::new(&text);
        let offset = text.char_indices().nth(1501).unwrap().0;
        assert_eq!(index.line_col(offset), (1, 1502));
        let (shown, caret, len) = window(&index, 1, Span { start: offset, end: offset + 1 });
        let at: String = shown.chars().skip(caret).take(len).collect();
        assert_eq!(at, text[offset..].chars().next().unwrap().to_string());
        assert!(shown.starts_with("...") && shown.ends_with("..."), "{shown}");
        assert!(shown.chars().count() <= MAX_SHOWN_LINE + 6);
    }

    #[test]
    fn a_short_line_is_shown_whole_with_the_caret_under_the_span() {
        let text = "{\n  \"naïve\":\t1\n}";
        let index = LineIndex::new(text);
        let start = text.find('1').unwrap();
        let (shown, caret, len) = window(&index, 2, Span { start, end: start + 1 });
        assert_eq!(shown, "  \"naïve\": 1");
        assert_eq!((caret, len), (11, 1));
    }
}
