//! `orchestr8 compile WORKFLOW`: validate, then write the workflow's crate.

use std::path::{Path, PathBuf};

use super::{Reporting, Status};

use crate::agents::FromRustSource;
use crate::codegen::{generate, write_files, CrateOptions};
use crate::diagnostics::render_human;
use crate::own_crates::OwnCrates;
use crate::target::Target;
use crate::validate::validate_for;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW")]
    workflow: PathBuf,
    /// Where to write the crate (default: the workflow's directory, so that
    /// `cargo run` there runs it).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The orchestr8 checkout whose `runtime/` the crate depends on by path
    /// (default: where the workflow's agent crates take it from; else the
    /// checkout this orchestr8 was built from, if it is still there; else
    /// `orchestr8-runtime` from the registry, by exact version).
    #[arg(long, value_name = "DIR", alias = "runtime-path")]
    orchestr8_path: Option<PathBuf>,
    /// What to compile for: a program that runs the workflow itself, or a
    /// Restate service (the book's "Running on Restate" lists the differences).
    #[arg(long, value_enum, default_value_t)]
    target: Target,
    #[command(flatten)]
    reporting: Reporting,
}

pub(super) fn run(args: &Args) -> Status {
    match compile(&args.workflow, args.out.as_deref(), args.orchestr8_path.as_deref(), args.target, args.reporting) {
        Ok(Compiled::Crate { .. }) => Status::Success,
        Ok(Compiled::Invalid) => Status::Failure,
        Err(message) => {
            eprintln!("error: {message}");
            Status::Usage
        }
    }
}

/// What a compile came to.
pub(super) enum Compiled {
    /// The workflow has errors (reported); nothing was written.
    Invalid,
    /// The crate is written.
    Crate {
        /// Its directory.
        dir: PathBuf,
        /// Its package and binary name (`metadata.id`).
        name: String,
        /// The ids of its wait steps.
        waits: Vec<String>,
    },
}

/// Validates `workflow` and writes its crate to `out` (default: beside it),
/// reporting diagnostics on standard error.
pub(super) fn compile(
    workflow: &Path,
    out: Option<&Path>,
    orchestr8_path: Option<&Path>,
    target: Target,
    reporting: Reporting,
) -> Result<Compiled, String> {
    let shown = workflow.display().to_string();
    let bytes = super::read_document(workflow)?;
    let workflow_dir = absolute(workflow.parent().unwrap_or(Path::new("")))?;
    let source = FromRustSource::new(&workflow_dir);
    let validation = validate_for(&bytes, &source, target);
    eprint!("{}", render_human(&shown, &validation.text, &validation.diagnostics, reporting.options()));
    let Some(workflow) = validation.checked else {
        let errors = validation.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("{shown}: invalid, {errors} error{}; nothing was written", if errors == 1 { "" } else { "s" });
        super::print_explain_hint(&validation.diagnostics);
        return Ok(Compiled::Invalid);
    };
    let manifests: Vec<_> = workflow.crates.iter().map(|c| workflow_dir.join(&c.path).join("Cargo.toml")).collect();
    let own = OwnCrates::locate_for(orchestr8_path, &manifests)?;
    if let Some(note) = own.registry_note() {
        eprintln!("{note}");
    }
    let out_dir = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
            absolute(dir)?
        }
        None => workflow_dir.clone(),
    };
    let options = CrateOptions { own, out_dir: out_dir.clone(), workflow_dir, target };
    let files = generate(&workflow, &options).map_err(|e| {
        format!("internal compiler error: {e}\nplease report this, with the workflow, to the orchestr8 issue tracker")
    })?;
    let summary = write_files(&out_dir, &files).map_err(|e| e.to_string())?;
    eprintln!(
        "compiled `{}` into {}: {} file{} written, {} unchanged",
        workflow.id,
        out_dir.display(),
        summary.written.len(),
        if summary.written.len() == 1 { "" } else { "s" },
        summary.unchanged.len()
    );
    let waits = workflow.waits.iter().map(|w| w.id.clone()).collect();
    Ok(Compiled::Crate { dir: out_dir, name: workflow.id, waits })
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
    std::fs::canonicalize(path).map_err(|e| format!("cannot find `{}`: {e}", path.display()))
}
