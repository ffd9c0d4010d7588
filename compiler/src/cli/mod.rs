//! The `orchestr8` command line: one module per subcommand.

mod compile;
mod completions;
mod create;
mod eval;
mod explain;
mod graph;
mod init;
mod inspect;
mod run;
mod run_restate;
mod schema;
mod test;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostics::RenderOptions;

/// Exit status of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything held.
    Success = 0,
    /// The input was checked and found wrong (an invalid workflow).
    Failure = 1,
    /// Bad usage or an I/O error.
    Usage = 2,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> Self {
        ExitCode::from(s as u8)
    }
}

/// orchestr8: compile agent workflows into typed Rust programs.
#[derive(Debug, Parser)]
#[command(name = "orchestr8", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check workflows: JSON syntax, the JSON Schema, graph rules and types.
    #[command(
        after_help = "Examples:\n  orchestr8 validate workflow.json\n  orchestr8 validate --format json examples/*/workflow.json"
    )]
    Validate(validate::Args),
    /// Create a project: a workflow, its agent crate, tests and a sample input.
    #[command(
        after_help = "Examples:\n  orchestr8 init hello && cd hello && orchestr8 compile workflow.json && cargo run -- --input-file input.json\n  orchestr8 init triage --path flows/triage"
    )]
    Init(init::Args),
    /// Add to a project: `create agent NAME` adds an agent to its crate and workflow.
    #[command(after_help = "Example:\n  orchestr8 create agent summarize")]
    Create(create::Args),
    /// Validate a workflow, then write it as a Rust crate: `cargo run` runs it.
    #[command(
        after_help = "Examples:\n  orchestr8 compile workflow.json && cargo run -- --input-file input.json\n  orchestr8 compile workflow.json --out build/triage"
    )]
    Compile(compile::Args),
    /// Compile a workflow into a build folder beside it, build it and run it.
    #[command(
        after_help = "Examples:\n  orchestr8 run workflow.json --input '{\"name\": \"Ada\"}'\n  orchestr8 run workflow.json --input-file input.json --quiet"
    )]
    Run(run::Args),
    /// Run the cases of a workflow test file: mocks per step and attempt, on virtual time.
    #[command(
        after_help = "Examples:\n  orchestr8 test\n  orchestr8 test cases/billing.test.json --workflow workflow.json"
    )]
    Test(test::Args),
    /// Measure prompts: each task's LLM agent with Markdown against JSON prompts, scored and tested.
    #[command(
        after_help = "Examples:\n  orchestr8 eval examples/prompt-eval/standard.eval.json\n  orchestr8 eval tasks.eval.json --iterations 5 --concurrency 4 --out reports/today"
    )]
    Eval(eval::Args),
    /// Draw a workflow's steps, parallel blocks and data references (Mermaid or DOT).
    #[command(
        after_help = "Examples:\n  orchestr8 graph workflow.json > workflow.mmd\n  orchestr8 graph workflow.json --format dot | dot -Tsvg > workflow.svg"
    )]
    Graph(graph::Args),
    /// Show an execution from its journal: steps, attempts, durations, errors and a timeline.
    #[command(
        after_help = "Examples:\n  orchestr8 inspect .orchestr8/executions/0f3c9a2e-1b7d-4c55-9e0a-6d2f8b1c4e77.jsonl\n  orchestr8 inspect 0f3c9a2e-1b7d-4c55-9e0a-6d2f8b1c4e77 --journal-dir examples/flaky-dependency/.orchestr8/executions\n  orchestr8 inspect run.jsonl --format json | jq '.steps[] | select(.state != \"succeeded\")'"
    )]
    Inspect(inspect::Args),
    /// Explain a diagnostic code: what it means, an example, how to fix it.
    #[command(after_help = "Examples:\n  orchestr8 explain E0402\n  orchestr8 explain --list")]
    Explain(explain::Args),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  orchestr8 completions bash > ~/.local/share/bash-completion/completions/orchestr8\n  orchestr8 completions zsh > ~/.zfunc/_orchestr8\n  orchestr8 completions fish > ~/.config/fish/completions/orchestr8.fish"
    )]
    Completions(completions::Args),
    /// Print the JSON Schema of workflow documents.
    #[command(after_help = "Example:\n  orchestr8 schema > workflow.schema.json")]
    Schema,
}

/// How much of the human output of diagnostics to show.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(super) struct Reporting {
    /// Stop showing diagnostics after N errors and count the rest (0: show
    /// all); `orchestr8 validate --format json` always lists all.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_ERRORS)]
    max_errors: usize,
}

/// Errors shown before the rest are only counted (clang's default).
pub const DEFAULT_MAX_ERRORS: usize = 20;

impl Reporting {
    /// Rendering options for standard error.
    fn options(self) -> RenderOptions {
        RenderOptions { color: stderr_color(), max_errors: self.max_errors }
    }
}

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// rustc-style text on standard error.
    #[default]
    Human,
    /// One JSON object per diagnostic on standard output.
    Json,
}

/// Largest document read; a bigger one is refused before it is loaded.
const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Reads a workflow or test file, refusing directories and huge files with
/// a message that names the path.
pub(crate) fn read_document(path: &std::path::Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if meta.is_dir() {
        return Err(format!("`{shown}` is a directory; give the path of a file"));
    }
    if meta.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "`{shown}` is {} MiB; files are limited to {} MiB",
            meta.len() >> 20,
            MAX_DOCUMENT_BYTES >> 20
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read `{shown}`: {e}"))
}

/// After a human report on standard error: which `orchestr8 explain` to
/// run for more (nothing when nothing was reported).
fn print_explain_hint(reported: &[crate::diagnostics::Diagnostic]) {
    if let Some(hint) = crate::diagnostics::explain_hint(reported) {
        eprintln!("{hint}");
    }
}

/// Whether to colour output on standard error: only on a terminal, and
/// never when `NO_COLOR` is set.
pub fn stderr_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { Status::Usage.into() } else { Status::Success.into() };
        }
    };
    let status = match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Compile(args) => compile::run(&args),
        Command::Init(args) => init::run(&args),
        Command::Create(args) => create::run(&args),
        // The program's own exit code, passed through.
        Command::Run(args) => return run::run(&args),
        Command::Test(args) => return test::run(&args),
        Command::Eval(args) => return eval::run(&args),
        Command::Schema => schema::run(),
        Command::Graph(args) => graph::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Completions(args) => completions::run(&args),
    };
    status.into()
}
