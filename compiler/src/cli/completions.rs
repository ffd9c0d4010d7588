//! `orchestr8 completions SHELL`: a completion script for a shell.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, Status};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The shell to write completions for.
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

pub(super) fn run(args: &Args) -> Status {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "orchestr8", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => Status::Success,
        Err(e) => {
            eprintln!("error: cannot write the completion script: {e}");
            Status::Usage
        }
    }
}
