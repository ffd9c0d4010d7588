//! The diagnostics index: one Markdown page per [`Code`]
//! (`diagnostics/explain/CODE.md`), printed by `orchestr8 explain` and
//! checked by the test suite, which writes each page's example files into
//! an empty directory, runs its command and compares the output with the
//! page's.

use super::Code;

/// A page of the index, read into its parts.
#[derive(Debug)]
pub struct Page {
    /// The code the page is about.
    pub code: Code,
    /// The title after `# CODE: `.
    pub title: String,
    /// What triggers the code, or why no file can.
    pub example: Example,
}

/// A page's example.
#[derive(Debug)]
pub enum Example {
    /// Files to write, the `orchestr8` command to run beside them, and what
    /// it prints (standard error, then standard output).
    Run {
        /// The files, by path relative to the example's directory.
        files: Vec<ExampleFile>,
        /// The arguments after `orchestr8`.
        args: Vec<String>,
        /// The expected output, trailing whitespace trimmed.
        output: String,
    },
    /// No file can trigger the code (an internal error, say): why.
    None {
        /// The reason the page gives.
        reason: String,
    },
}

/// One file of an example: a fenced block whose info string is `LANG PATH`.
#[derive(Debug)]
pub struct ExampleFile {
    /// Relative path, `/`-separated.
    pub path: String,
    /// The block's text.
    pub text: String,
}

/// Looks a code up as a person types it: `E0402`, `e0402` or `0402`.
pub fn find(text: &str) -> Option<Code> {
    let text = text.trim();
    // Numbers are unique across errors and warnings, so the digits alone name a code.
    Code::ALL.iter().copied().find(|c| {
        let code = c.as_str();
        code.eq_ignore_ascii_case(text) || (text.len() == 4 && code[1..] == *text)
    })
}

/// Reads a code's page. An error says what is wrong with the page (a bug
/// of ours, caught by the test suite).
pub fn page(code: Code) -> Result<Page, String> {
    parse(code, code.explanation())
}

fn parse(code: Code, text: &str) -> Result<Page, String> {
    let first = text.lines().next().unwrap_or_default();
    let title = first
        .strip_prefix(&format!("# {}: ", code.as_str()))
        .ok_or_else(|| format!("the first line is not `# {}: TITLE`", code.as_str()))?
        .trim()
        .to_owned();
    if let Some(start) = text.find("<!-- no example:") {
        let rest = &text[start + "<!-- no example:".len()..];
        let end = rest.find("-->").ok_or("an unclosed `<!-- no example:` comment")?;
        return Ok(Page { code, title, example: Example::None { reason: rest[..end].trim().to_owned() } });
    }
    let mut files = Vec::new();
    let mut console = None;
    for block in blocks(text)? {
        let mut info = block.info.split_whitespace();
        let lang = info.next().unwrap_or_default();
        match (lang, info.next()) {
            ("console", _) if console.is_some() => return Err("more than one `console` block".into()),
            ("console", _) => console = Some(block.text),
            (_, Some(path)) => {
                if path.starts_with('/') || path.split('/').any(|p| p == ".." || p.is_empty()) {
                    return Err(format!("example file `{path}` is not a plain relative path"));
                }
                files.push(ExampleFile { path: path.to_owned(), text: block.text });
            }
            _ => {}
        }
    }
    let console = console.ok_or("no `console` block and no `<!-- no example: REASON -->`")?;
    let (command, output) = console.split_once('\n').unwrap_or((&console, ""));
    let args: Vec<String> = command
        .strip_prefix("$ orchestr8 ")
        .ok_or("the `console` block does not start with `$ orchestr8 ARGS`")?
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    Ok(Page { code, title, example: Example::Run { files, args, output: output.trim_end().to_owned() } })
}

/// A fenced code block.
struct Block {
    info: String,
    text: String,
}

/// The fenced blocks of a page (``` fences, not nested).
fn blocks(text: &str) -> Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut open: Option<(String, Vec<&str>, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), Vec::new(), n + 1)),
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                let (info, lines, _) = open.take().expect("a block is open");
                let mut body = lines.join("\n");
                body.push('\n');
                out.push(Block { info, text: body });
            }
            (Some((_, lines, _)), _) => lines.push(line),
            (None, None) => {}
        }
    }
    match open {
        Some((_, _, line)) => Err(format!("the block opened on line {line} is not closed")),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_as_people_type_them() {
        assert_eq!(find("E0402"), Some(Code::TypeMismatch));
        assert_eq!(find("e0402"), Some(Code::TypeMismatch));
        assert_eq!(find("0402"), Some(Code::TypeMismatch));
        assert_eq!(find(" W0320 "), Some(Code::UnusedAgent));
        assert_eq!(find("W0402"), None, "a warning prefix on an error's number");
        assert_eq!(find("E9999"), None);
        assert_eq!(find(""), None);
        assert_eq!(find("E"), None);
    }

    #[test]
    fn a_page_is_read_into_its_files_command_and_output() {
        let text = "# E0402: a title\n\nWhy.\n\n```json workflow.json\n{}\n```\n\n```json\nnot a file\n```\n\n```console\n$ orchestr8 validate workflow.json\nerror[E0402]: x\n\n```\n";
        let page = parse(Code::TypeMismatch, text).unwrap();
        assert_eq!(page.title, "a title");
        let Example::Run { files, args, output } = page.example else { panic!("an example") };
        assert_eq!(files.len(), 1);
        assert_eq!((files[0].path.as_str(), files[0].text.as_str()), ("workflow.json", "{}\n"));
        assert_eq!(args, ["validate", "workflow.json"]);
        assert_eq!(output, "error[E0402]: x");
    }

    #[test]
    fn malformed_pages_say_what_is_wrong() {
        let wrong = |text: &str| parse(Code::TypeMismatch, text).unwrap_err();
        assert!(wrong("# E0401: other\n").contains("# E0402: TITLE"));
        assert!(wrong("# E0402: t\n```json a.json\n{}\n").contains("not closed"));
        assert!(wrong("# E0402: t\n```json a.json\n{}\n```\n").contains("no `console` block"));
        assert!(wrong("# E0402: t\n```json ../a.json\n{}\n```\n```console\n$ orchestr8 validate a.json\n```\n")
            .contains("plain relative path"));
        assert!(wrong("# E0402: t\n```json a.json\n{}\n```\n```console\n$ cargo run\n```\n").contains("$ orchestr8"));
        let none = parse(Code::Internal, "# E0900: a bug\n<!-- no example: a bug has none -->\n").unwrap();
        assert!(matches!(none.example, Example::None { reason } if reason == "a bug has none"));
    }
}
