//! `orchestr8 init NAME`: a new project from the templates embedded in the
//! binary (`compiler/templates/project/`): a workflow, its agent crate with two agents
//! and their unit tests, a workflow test file, an input, a README and a
//! `.gitignore`.

use std::path::{Path, PathBuf};

use super::Status;
use crate::own_crates::{OwnCrate, OwnCrates};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The project's name, which is also the workflow id: lower case letters,
    /// digits and `-`, starting with a letter.
    #[arg(value_name = "NAME")]
    name: String,
    /// Where to create the project (default: ./NAME). It must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// The orchestr8 checkout whose `runtime/` and `macros/` the agent crate
    /// depends on by path (default: the one this orchestr8 was built from, if
    /// it is still there; else the registry's, by exact version).
    #[arg(long, value_name = "DIR")]
    orchestr8_path: Option<PathBuf>,
}

/// The project's files: where each goes and its template.
const FILES: [(&str, &str); 8] = [
    ("workflow.json", include_str!("../../templates/project/workflow.json")),
    ("workflow.test.json", include_str!("../../templates/project/workflow.test.json")),
    ("input.json", include_str!("../../templates/project/input.json")),
    ("README.md", include_str!("../../templates/project/README.md")),
    (".gitignore", include_str!("../../templates/project/gitignore.txt")),
    ("agents/Cargo.toml", include_str!("../../templates/project/agents/Cargo.toml.txt")),
    ("agents/src/lib.rs", include_str!("../../templates/project/agents/src/lib.rs.txt")),
    // Filled in from `orchestr8_schema::json_schema_text()`.
    ("workflow.schema.json", ""),
];

pub(super) fn run(args: &Args) -> Status {
    match init(args) {
        Ok(dir) => {
            let shown = dir.display();
            eprintln!("created `{}` in {shown}", args.name);
            eprintln!("next:\n  cd {shown}\n  orchestr8 compile workflow.json && cargo run -- --input-file input.json");
            Status::Success
        }
        Err(message) => {
            eprintln!("error: {message}");
            Status::Usage
        }
    }
}

/// Whether `name` is a valid workflow id (`^[a-z][a-z0-9-]{0,63}$`).
pub(super) fn valid_workflow_id(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Writes the project and returns its directory, as given.
fn init(args: &Args) -> Result<PathBuf, String> {
    let name = args.name.as_str();
    if !valid_workflow_id(name) {
        return Err(format!(
            "`{name}` is not a valid project name: it becomes the workflow id, which is 1 to 64 lower case \
             letters, digits and `-`, starting with a letter (e.g. `my-workflow`)"
        ));
    }
    let dir = args.path.clone().unwrap_or_else(|| PathBuf::from(name));
    let own = OwnCrates::locate(args.orchestr8_path.as_deref())?;
    if let Some(note) = own.registry_note() {
        eprintln!("{note}");
    }
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!(
                    "`{}` is not empty; init only writes into a new or empty directory (pick another --path)",
                    dir.display()
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot use `{}`: {e}", dir.display())),
    }
    let vars = Vars {
        name,
        crate_name: &format!("{}_agents", name.replace('-', "_")),
        // Absolute paths: the project may move, a checkout seldom does.
        runtime: &own.dependency(OwnCrate::Runtime, None, &[]),
        macros: &own.dependency(OwnCrate::Macros, None, &[]),
    };
    for (path, template) in FILES {
        let text =
            if path == "workflow.schema.json" { orchestr8_schema::json_schema_text() } else { vars.fill(template) };
        write(&dir.join(path), &text)?;
    }
    Ok(dir)
}

/// What the templates' `{{...}}` placeholders stand for.
struct Vars<'a> {
    name: &'a str,
    crate_name: &'a str,
    runtime: &'a str,
    macros: &'a str,
}

impl Vars<'_> {
    fn fill(&self, template: &str) -> String {
        template
            .replace("{{name}}", self.name)
            .replace("{{crate}}", self.crate_name)
            .replace("{{runtime}}", self.runtime)
            .replace("{{macros}}", self.macros)
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::valid_workflow_id;

    #[test]
    fn workflow_ids() {
        for ok in ["a", "hello", "my-flow-2", &"a".repeat(64)] {
            assert!(valid_workflow_id(ok), "{ok}");
        }
        for bad in ["", "Hello", "1st", "-a", "a_b", "a.b", "héllo", &"a".repeat(65)] {
            assert!(!valid_workflow_id(bad), "{bad}");
        }
    }
}
