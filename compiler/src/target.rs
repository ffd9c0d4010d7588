//! What a workflow is compiled for: the embedded runtime (the default), or
//! a Restate service (`--target restate`), and what each can run.

/// A compile target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Target {
    /// A program that runs the workflow itself (`orchestr8-runtime`'s
    /// executor, its journal and REST server).
    #[default]
    Embedded,
    /// A Restate service: Restate journals, retries and resumes it.
    Restate,
}

impl Target {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Target::Embedded => "embedded",
            Target::Restate => "restate",
        }
    }
}
