//! `orchestr8 compile WORKFLOW`: validate, then write the workflow's crate.

use std::path::{Path, PathBuf};

use super::{Reporting, Status};

use crate::agents::FromRustSource;
use crate::codegen::{generate, write_files, CrateOptions};
use crate::diagnostics::render_human;
use crate::own_crates::OwnCrates;
use crate::target::Target;
use crate::validate::{validate_for, Validation};

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
    let written = check(&args.workflow, args.target, args.reporting, "nothing was written").and_then(|checked| {
        checked.map(|c| write_crate(c, args.out.as_deref(), args.orchestr8_path.as_deref(), args.target)).transpose()
    });
    match written {
        Ok(Some(_)) => Status::Success,
        Ok(None) => Status::Failure,
        Err(message) => {
            eprintln!("error: {message}");
            Status::Usage
        }
    }
}

/// A workflow's crate, written.
pub(super) struct Written {
    /// Its directory.
    pub(super) dir: PathBuf,
    /// Its package and binary name (`metadata.id`).
    pub(super) name: String,
    /// The ids of its wait steps.
    pub(super) waits: Vec<String>,
}

/// A workflow validated without errors, its findings shown: what
/// [`write_crate`] generates from (validated once, whatever follows).
pub(super) struct Checked {
    /// The workflow file.
    pub(super) path: PathBuf,
    /// Its directory, absolute: where its agent crates are found from.
    dir: PathBuf,
    /// Where the agents' declarations were read.
    pub(super) source: FromRustSource,
    /// Its text, diagnostics, workflow and checked form (both present).
    pub(super) validation: Validation,
}

/// Reads and validates `workflow` for `target`, showing every finding (its
/// warnings too). `None` when it has errors, reported with `then` (what
/// did not happen because of them).
pub(super) fn check(
    workflow: &Path,
    target: Target,
    reporting: Reporting,
    then: &str,
) -> Result<Option<Checked>, String> {
    let shown = workflow.display().to_string();
    let bytes = super::read_document(workflow)?;
    let dir = absolute(workflow.parent().unwrap_or(Path::new("")))?;
    let source = FromRustSource::new(&dir);
    let validation = validate_for(&bytes, &source, target);
    eprint!("{}", render_human(&shown, &validation.text, &validation.diagnostics, reporting.options()));
    if validation.checked.is_none() {
        let errors = validation.diagnostics.iter().filter(|d| d.is_error()).count();
        eprintln!("{shown}: invalid, {errors} error{}; {then}", if errors == 1 { "" } else { "s" });
        super::print_explain_hint(&validation.diagnostics);
        return Ok(None);
    }
    Ok(Some(Checked { path: workflow.to_path_buf(), dir, source, validation }))
}

/// Writes the crate of a checked workflow to `out` (default: beside it).
pub(super) fn write_crate(
    checked: Checked,
    out: Option<&Path>,
    orchestr8_path: Option<&Path>,
    target: Target,
) -> Result<Written, String> {
    let Checked { dir: workflow_dir, validation, .. } = checked;
    let workflow = validation.checked.expect("`check` returns only a checked workflow");
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
    Ok(Written { dir: out_dir, name: workflow.id, waits })
}

fn absolute(path: &Path) -> Result<PathBuf, String> {
    let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
    std::fs::canonicalize(path).map_err(|e| format!("cannot find `{}`: {e}", path.display()))
}
