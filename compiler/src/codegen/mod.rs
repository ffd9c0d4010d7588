//! `orchestr8 compile`: a checked workflow becomes a Rust crate, for the
//! embedded runtime or (`restate`) as a Restate service: one `workflow.rs`,
//! two `main.rs`.
//!
//! Code generation reads only the [`CheckedWorkflow`]: `emit` renders its
//! items (`expr` its values, `types` its types), and `files` formats them
//! with prettyplease, adds the `@generated` header and writes only what
//! changed, never over a file orchestr8 did not write.

mod emit;
mod expr;
mod files;
mod restate;
mod types;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use files::{
    restate_binary, restate_signals_object, write_files, WriteError, WriteSummary, GENERATED_MARK, RESTATE_SDK_VERSION,
};

use crate::checked::CheckedWorkflow;
use crate::own_crates::OwnCrates;
use crate::target::Target;

/// Where the generated crate finds its dependencies.
pub struct CrateOptions {
    /// Where orchestr8's runtime comes from.
    pub own: OwnCrates,
    /// The directory the crate is written to.
    pub out_dir: PathBuf,
    /// The workflow file's directory (agent `path`s are relative to it).
    pub workflow_dir: PathBuf,
    /// What the crate is for.
    pub target: Target,
}

/// The files of a generated crate, by path relative to its directory.
pub type GeneratedFiles = BTreeMap<PathBuf, String>;

/// Generates the crate of a checked workflow. An error is a bug in
/// orchestr8 (generated code that does not parse).
pub fn generate(workflow: &CheckedWorkflow, options: &CrateOptions) -> Result<GeneratedFiles, String> {
    let mut out = GeneratedFiles::new();
    let items = emit::workflow_items(workflow, options.target);
    out.insert(PathBuf::from("src/workflow.rs"), files::rust_file(&workflow.docs, items)?);
    let main = match options.target {
        Target::Embedded => files::main_file(&workflow.id)?,
        Target::Restate => restate::main_file(workflow)?,
    };
    out.insert(PathBuf::from("src/main.rs"), main);
    out.insert(PathBuf::from("Cargo.toml"), files::manifest(workflow, options));
    Ok(out)
}

/// `to` relative to `from` (both absolute), for paths in the generated `Cargo.toml`.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to_parts: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to_parts).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return to.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for part in &to_parts[common..] {
        out.push(part);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path(Path::new("/a/b/c"), Path::new("/a/runtime")), PathBuf::from("../../runtime"));
        assert_eq!(relative_path(Path::new("/a/b"), Path::new("/a/b/agents")), PathBuf::from("agents"));
        assert_eq!(relative_path(Path::new("/a"), Path::new("/a")), PathBuf::from("."));
    }
}
