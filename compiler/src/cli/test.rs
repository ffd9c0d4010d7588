//! `orchestr8 test [FILE]`: checks a workflow test file against the
//! workflow and its agents, then builds the workflow and runs the cases in
//! the program's test mode (in-process, on virtual time, agents mocked per
//! step and attempt).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::run::build_and_run;
use super::Reporting;
use crate::agents::FromRustSource;
use crate::diagnostics::{render_human, Diagnostic};
use crate::validate::{syntax_diagnostic, validate};

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
    let workflow_shown = workflow_path.display().to_string();
    let workflow_bytes = super::read_document(&workflow_path)?;
    let workflow_dir = workflow_path.parent().unwrap_or(Path::new("")).to_path_buf();
    let source =
        FromRustSource::new(if workflow_dir.as_os_str().is_empty() { PathBuf::from(".") } else { workflow_dir });
    let validation = validate(&workflow_bytes, &source);
    let Some(workflow) = validation.workflow else {
        eprint!("{}", render_human(&workflow_shown, &validation.text, &validation.diagnostics, options));
        eprintln!("{workflow_shown}: invalid; fix it before testing it");
        super::print_explain_hint(&validation.diagnostics);
        return Ok(ExitCode::from(1));
    };
    let (text, diagnostics) = match orchestr8_schema::source::parse(&bytes) {
        Ok(parsed) => {
            let found = crate::testfile::check(&parsed.value, &parsed.spans, &workflow, &source);
            (parsed.text, found)
        }
        Err(issues) => (
            String::from_utf8_lossy(&bytes).into_owned(),
            issues.into_iter().map(syntax_diagnostic).collect::<Vec<_>>(),
        ),
    };
    if diagnostics.iter().any(Diagnostic::is_error) {
        eprint!("{}", render_human(&shown, &text, &diagnostics, options));
        eprintln!("{shown}: invalid test file; nothing was run");
        super::print_explain_hint(&diagnostics);
        return Ok(ExitCode::from(2));
    }
    let test_file = std::fs::canonicalize(&args.file).map_err(|e| format!("cannot find `{shown}`: {e}"))?;
    build_and_run(
        &workflow_path,
        args.orchestr8_path.as_deref(),
        args.reporting,
        &["test-mode"],
        &["--test".to_owned(), test_file.display().to_string()],
    )
}
