//! The `orchestr8` command.

fn main() -> std::process::ExitCode {
    orchestr8::cli::main()
}
