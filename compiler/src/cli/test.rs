//! `orchestr8 test [FILE]`: checks a workflow test file against the
//! workflow and its agents, then builds the workflow and runs the cases in
//! the program's test mode (in-process, on virtual time, agents mocked per
//! step and attempt).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::compile::check;
use super::run::{build_checked, run_built};
use super::Reporting;
use crate::diagnostics::{render_human, Diagnostic};
use crate::target::Target;
use crate::validate::syntax_diagnostic;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The test file.
    #[arg(value_name = "FILE", default_value = "workflow.test.json")]
    file: PathBuf,
    /// The workflow it tests (default: `workflow.json` beside the test file).
    #[arg(long, value_name = "WORKFLOW")]
    workflow: Option<PathBuf>,
    /// The orchestr8 checkout whose `runtime/` the crate depends on by path
    /// (default: where the workflow's agent crates take it from; else the
    /// checkout this orchestr8 was built from, if it is still there; else
    /// `orchestr8-runtime` from the registry, by exact version).
    #[arg(long, value_name = "DIR", alias = "runtime-path")]
    orchestr8_path: Option<PathBuf>,
    #[command(flatten)]
    reporting: Reporting,
}

pub(super) fn run(args: &Args) -> ExitCode {
    match test(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn test(args: &Args) -> Result<ExitCode, String> {
    let options = args.reporting.options();
    let shown = args.file.display().to_string();
    let bytes = super::read_document(&args.file)?;
    let workflow_path =
        args.workflow.clone().unwrap_or_else(|| args.file.parent().unwrap_or(Path::new("")).join("workflow.json"));
    // Validated once, for the test file's checks and the build alike; its
    // warnings are shown whatever the test file holds.
    let Some(checked) = check(&workflow_path, Target::Embedded, args.reporting, "fix it before testing it")? else {
        return Ok(ExitCode::from(1));
    };
    let workflow = checked.validation.workflow.as_ref().expect("a checked workflow has its AST");
    let (text, diagnostics) = match orchestr8_schema::source::parse(&bytes) {
        Ok(parsed) => {
            let found = crate::testfile::check(&parsed.value, &parsed.spans, workflow, &checked.source);
            (parsed.text, found)
        }
        Err(issues) => (
            String::from_utf8_lossy(&bytes).into_owned(),
            issues.into_iter().map(syntax_diagnostic).collect::<Vec<_>>(),
        ),
    };
    // Its warnings too, when it has no errors.
    eprint!("{}", render_human(&shown, &text, &diagnostics, options));
    if diagnostics.iter().any(Diagnostic::is_error) {
        eprintln!("{shown}: invalid test file; nothing was run");
        super::print_explain_hint(&diagnostics);
        return Ok(ExitCode::from(2));
    }
    let test_file = std::fs::canonicalize(&args.file).map_err(|e| format!("cannot find `{shown}`: {e}"))?;
    let built = build_checked(checked, args.orchestr8_path.as_deref(), Target::Embedded, &["test-mode"])?;
    run_built(&built, &["--test".to_owned(), test_file.display().to_string()])
}
