//! The diagnostics index: every code has a page, every page's example
//! really produces its code, and the output the page shows is what
//! `orchestr8` prints today (so a changed message shows up here).

mod common;

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use orchestr8::diagnostics::explain::{self, Example};
use orchestr8::diagnostics::{Code, Severity};

/// Codes no example can show: a file that is not UTF-8 (a page is UTF-8),
/// and a bug of ours. The page says why instead.
const WITHOUT_EXAMPLE: &[Code] = &[Code::InvalidUtf8, Code::Internal];

fn orchestr8() -> Command {
    let mut c = Command::cargo_bin("orchestr8").expect("the binary is built");
    c.env("NO_COLOR", "1");
    c
}

/// Runs a page's example in an empty directory; `Err` says what differs.
fn check(code: Code) -> Result<(), String> {
    let page = explain::page(code)?;
    let (files, args, expected) = match page.example {
        Example::None { reason } if WITHOUT_EXAMPLE.contains(&code) => {
            return if reason.is_empty() { Err("no reason given for having no example".into()) } else { Ok(()) };
        }
        Example::None { .. } => return Err("the page has no example, and this code can have one".into()),
        Example::Run { files, args, output } => (files, args, output),
    };
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    for file in &files {
        let path = dir.path().join(&file.path);
        std::fs::create_dir_all(path.parent().unwrap_or(dir.path())).map_err(|e| e.to_string())?;
        std::fs::write(&path, &file.text).map_err(|e| e.to_string())?;
    }
    let out = orchestr8().args(&args).current_dir(dir.path()).output().map_err(|e| e.to_string())?;
    let mut shown = String::from_utf8_lossy(&out.stderr).into_owned();
    shown.push_str(&String::from_utf8_lossy(&out.stdout));
    let shown = normalize(&shown, dir.path());
    let tag = format!("[{}]", code.as_str());
    if !shown.contains(&tag) {
        return Err(format!("the example does not produce {tag}; it printed:\n{shown}"));
    }
    if code.severity() == Severity::Error && out.status.success() {
        return Err("the example of an error exits 0".into());
    }
    if shown != expected {
        // Never under CI, where a stale page must fail.
        if common::golden::blessing() {
            return bless(code, &shown);
        }
        let diff = similar::TextDiff::from_lines(&expected, &shown);
        return Err(format!(
            "the page shows another output than `orchestr8 {}` prints (- page, + printed; ORCHESTR8_BLESS=1 rewrites the page):\n{}",
            args.join(" "),
            diff.unified_diff()
        ));
    }
    Ok(())
}

/// Writes what the command printed into the page's `console` block (after
/// `$ orchestr8 ...`), for review with `git diff`.
fn bless(code: Code, shown: &str) -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/diagnostics/explain/{}.md", code.as_str()));
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let start = text.find("```console\n$ orchestr8 ").ok_or("no console block")?;
    let body = start + text[start..].find('\n').expect("the fence line ends") + 1;
    let body = body + text[body..].find('\n').ok_or("no command line")? + 1;
    let blessed = if text[body..].starts_with("```") {
        // An empty block: the output goes before its closing fence.
        format!("{}{shown}\n{}", &text[..body], &text[body..])
    } else {
        let end = body + text[body..].find("\n```").ok_or("the console block is not closed")?;
        format!("{}{shown}{}", &text[..body], &text[end..])
    };
    std::fs::write(&path, blessed).map_err(|e| e.to_string())
}

/// The output with the example's temporary directory taken out, trailing
/// whitespace trimmed.
fn normalize(text: &str, dir: &Path) -> String {
    let dir = dir.to_string_lossy();
    text.replace(&format!("{dir}/"), "").replace(dir.as_ref(), ".").trim_end().to_owned()
}

#[test]
fn every_code_has_a_page_whose_example_produces_it() {
    let failures: Vec<String> =
        Code::ALL.iter().filter_map(|&code| check(code).err().map(|e| format!("{}: {e}", code.as_str()))).collect();
    assert!(
        failures.is_empty(),
        "{} of {} pages are wrong:\n\n{}",
        failures.len(),
        Code::ALL.len(),
        failures.join("\n\n")
    );
}

#[test]
fn explain_prints_the_page_of_a_code_however_it_is_typed() {
    for asked in ["E0402", "e0402", "0402"] {
        let out = orchestr8().args(["explain", asked]).output().unwrap();
        assert!(out.status.success(), "{asked}");
        assert_eq!(String::from_utf8(out.stdout).unwrap(), Code::TypeMismatch.explanation(), "{asked}");
    }
}

#[test]
fn explain_refuses_what_is_not_a_code_and_says_how_to_list_them() {
    for asked in ["E9999", "W0402", "hello", ""] {
        let out = orchestr8().args(["explain", asked]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{asked}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("not an orchestr8 diagnostic code") && err.contains("--list"), "{asked}: {err}");
        assert!(out.stdout.is_empty());
    }
    let out = orchestr8().arg("explain").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no code and no --list is a usage error");
}

#[test]
fn explain_list_names_every_code_with_its_title() {
    let out = orchestr8().args(["explain", "--list"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), Code::ALL.len());
    for (line, code) in text.lines().zip(Code::ALL) {
        let title = explain::page(*code).unwrap().title;
        assert!(line.starts_with(code.as_str()) && line.ends_with(&title), "{line}");
    }
}
