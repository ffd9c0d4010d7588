//! `orchestr8 validate FILE...`

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Format, Reporting, Status};
use crate::agents::{DeclaredInWorkflow, FromRustSource};
use crate::diagnostics::{render_human, render_json, Code, Diagnostic};
use crate::target::Target;
use crate::validate::validate_for;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Workflow files to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format of the diagnostics.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Take agent schemas only from the workflow's `agents.ID.input`/`output`,
    /// without reading the agent crates' `#[agent]` declarations.
    #[arg(long)]
    declared_only: bool,
    /// What the workflows will be compiled for: what a target cannot run is an error.
    #[arg(long, value_enum, default_value_t)]
    target: Target,
    #[command(flatten)]
    reporting: Reporting,
}

pub(super) fn run(args: &Args) -> Status {
    let mut status = Status::Success;
    // Every file's findings, for one `orchestr8 explain` hint at the end.
    let mut reported: Vec<Diagnostic> = Vec::new();
    let options = args.reporting.options();
    for path in &args.files {
        let name = path.display().to_string();
        let bytes = match super::read_document(path) {
            Ok(b) => b,
            Err(message) => {
                let d = Diagnostic::error(Code::Io, message, "", Default::default());
                match args.format {
                    Format::Human => eprintln!("error[{}]: {}", d.code.as_str(), d.message),
                    Format::Json => print(&render_json(&name, "", &[d])),
                }
                status = Status::Usage;
                continue;
            }
        };
        let validation = if args.declared_only {
            validate_for(&bytes, &DeclaredInWorkflow, args.target)
        } else {
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            validate_for(&bytes, &FromRustSource::new(base), args.target)
        };
        let errors = validation.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = validation.diagnostics.len() - errors;
        match args.format {
            Format::Human => {
                eprint!("{}", render_human(&name, &validation.text, &validation.diagnostics, options));
                eprintln!("{}", summary(&name, errors, warnings));
                reported.extend(validation.diagnostics.iter().cloned());
            }
            Format::Json => print(&render_json(&name, &validation.text, &validation.diagnostics)),
        }
        if errors > 0 && status == Status::Success {
            status = Status::Failure;
        }
    }
    super::print_explain_hint(&reported);
    status
}

fn summary(name: &str, errors: usize, warnings: usize) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, 0) => format!("{name}: valid"),
        (0, w) => format!("{name}: valid, with {}", plural(w, "warning")),
        (e, 0) => format!("{name}: invalid, {}", plural(e, "error")),
        (e, w) => format!("{name}: invalid, {} and {}", plural(e, "error"), plural(w, "warning")),
    }
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
}
