//! `orchestr8 explain CODE`: a diagnostic code's page of the index (what it
//! means, an example that triggers it, how to fix it), as rustc `--explain`.

use std::io::Write;

use super::Status;
use crate::diagnostics::{explain, Code, Severity};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The code, as printed in a diagnostic: `E0402` (or `0402`).
    #[arg(value_name = "CODE", required_unless_present = "list")]
    code: Option<String>,
    /// List every code with its title instead.
    #[arg(long, conflicts_with = "code")]
    list: bool,
}

pub(super) fn run(args: &Args) -> Status {
    let text = if args.list {
        list()
    } else {
        let asked = args.code.as_deref().unwrap_or_default();
        match explain::find(asked) {
            Some(code) => code.explanation().to_owned(),
            None => {
                eprintln!(
                    "error: `{asked}` is not an orchestr8 diagnostic code\n  = help: codes look like `E0402` or `W0320`; `orchestr8 explain --list` lists them all"
                );
                return Status::Usage;
            }
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Status::Success,
        // `orchestr8 explain --list | head` is a normal use.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Status::Success,
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            Status::Usage
        }
    }
}

/// One line per code: the code, error or warning, the page's title.
fn list() -> String {
    let mut out = String::new();
    for &code in Code::ALL {
        let title = explain::page(code).map(|p| p.title).unwrap_or_default();
        let severity = match code.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{}  {severity:<7}  {title}\n", code.as_str()));
    }
    out
}
