//! `orchestr8 compile`: a validated workflow becomes a Rust crate.
//!
//! `emit` builds the Rust source as token streams (`expr` turns value
//! expressions into reads and conversions over `rust_ty`'s type model);
//! `files` formats it with prettyplease, adds the `@generated` header and
//! writes only what changed, never over a file orchestr8 did not write.

mod emit;
mod expr;
mod files;
mod rust_ty;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use files::{write_files, WriteError, WriteSummary, GENERATED_MARK};

use crate::agents::FoundAgent;
use crate::types::Ty;
use orchestr8_schema::ast::Workflow;

/// Where the generated crate finds its dependencies.
pub struct CrateOptions {
    /// The `orchestr8-runtime` crate's directory.
    pub runtime_dir: PathBuf,
    /// The directory the crate is written to.
    pub out_dir: PathBuf,
    /// The workflow file's directory (agent `path`s are relative to it).
    pub workflow_dir: PathBuf,
}

/// The files of a generated crate, by path relative to its directory.
pub type GeneratedFiles = BTreeMap<PathBuf, String>;

/// Generates the crate for a validated `workflow`.
pub fn generate(
    workflow: &Workflow,
    source_text: &str,
    agents: &BTreeMap<String, FoundAgent>,
    options: &CrateOptions,
) -> Result<GeneratedFiles, String> {
    let input_ty = match &workflow.input {
        Some(schema) => crate::types::from_schema(schema).map_err(|p| format!("input schema: {:?}", p.first()))?,
        None => Ty::Object(Default::default()),
    };
    let hash = definition_hash(source_text);
    let module = emit::workflow_module(&emit::Input { workflow, input_ty: &input_ty, agents, definition_hash: &hash })?;
    let mut out = GeneratedFiles::new();
    out.insert(PathBuf::from("src/workflow.rs"), files::rust_file(module, workflow)?);
    out.insert(PathBuf::from("src/main.rs"), files::main_file(workflow)?);
    out.insert(PathBuf::from("Cargo.toml"), files::manifest(workflow, options)?);
    Ok(out)
}

/// A stable hash of the workflow's text (FNV-1a, 64 bits), recorded in journals
/// so an execution can be matched to the definition that ran it.
fn definition_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
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
