//! `orchestr8 run WORKFLOW [PROGRAM ARGS...]`: compile into a build folder
//! beside the workflow, build, and run, passing the program's exit code through.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::compile::{check, write_crate, Checked, Written};
use super::Reporting;
use crate::target::Target;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW")]
    workflow: PathBuf,
    /// The orchestr8 checkout whose `runtime/` the crate depends on by path
    /// (default: where the workflow's agent crates take it from; else the
    /// checkout this orchestr8 was built from, if it is still there; else
    /// `orchestr8-runtime` from the registry, by exact version).
    #[arg(long, value_name = "DIR", alias = "runtime-path")]
    orchestr8_path: Option<PathBuf>,
    /// Run the program (embedded), or serve the workflow on a Restate server
    /// started for the run and stopped after it (restate).
    #[arg(long, value_enum, default_value_t)]
    target: Target,
    /// The `restate-server` binary, for `--target restate` (default:
    /// `$ORCHESTR8_RESTATE_SERVER`, else `restate-server` on the `PATH`).
    #[arg(long, value_name = "PATH")]
    restate_server: Option<PathBuf>,
    #[command(flatten)]
    reporting: Reporting,
    /// Arguments for the program: `--input JSON`, `--input-file PATH`,
    /// `--journal-dir DIR`, `--correlation-id ID`, `--quiet`; for
    /// `--target restate`, `--input JSON` or `--input-file PATH` (without
    /// one, the service stays up until Ctrl-C).
    #[arg(value_name = "PROGRAM ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    program_args: Vec<String>,
}

pub(super) fn run(args: &Args) -> ExitCode {
    match run_workflow(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run_workflow(args: &Args) -> Result<ExitCode, String> {
    match args.target {
        Target::Embedded => {
            if args.restate_server.is_some() {
                return Err("--restate-server is for `--target restate`".into());
            }
            build_and_run(&args.workflow, args.orchestr8_path.as_deref(), args.reporting, &[], &args.program_args)
        }
        Target::Restate => super::run_restate::run(
            &args.workflow,
            args.orchestr8_path.as_deref(),
            args.restate_server.as_deref(),
            args.reporting,
            &args.program_args,
        ),
    }
}

/// Compiles `workflow` into `.orchestr8/build/` beside it, builds it, and runs
/// the program with `program_args`, returning its exit code.
pub(super) fn build_and_run(
    workflow: &Path,
    orchestr8_path: Option<&Path>,
    reporting: Reporting,
    features: &[&str],
    program_args: &[String],
) -> Result<ExitCode, String> {
    match check(workflow, Target::Embedded, reporting, "nothing was written")? {
        Some(checked) => run_built(&build_checked(checked, orchestr8_path, Target::Embedded, features)?, program_args),
        None => Ok(ExitCode::from(1)),
    }
}

/// Runs a built program with `program_args`, returning its exit code.
pub(super) fn run_built(built: &Built, program_args: &[String]) -> Result<ExitCode, String> {
    // Ctrl-C goes to the program, which cancels cooperatively and exits 130;
    // orchestr8 waits for it rather than dying first.
    ctrlc::set_handler(|| {}).map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let status = Command::new(&built.binary)
        .args(program_args)
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", built.binary.display()))?;
    Ok(ExitCode::from(status.code().map_or(1, |c| c.clamp(0, 255) as u8)))
}

/// A workflow's program (or Restate service), built.
pub(super) struct Built {
    /// The binary.
    pub(super) binary: PathBuf,
    /// The workflow id.
    pub(super) name: String,
    /// Its wait steps' ids.
    pub(super) waits: Vec<String>,
}

/// Compiles `workflow` for `target` into `.orchestr8/build/` beside it and
/// builds it, or `None` when the workflow is invalid (reported).
pub(super) fn build(
    workflow: &Path,
    orchestr8_path: Option<&Path>,
    reporting: Reporting,
    target: Target,
    features: &[&str],
) -> Result<Option<Built>, String> {
    match check(workflow, target, reporting, "nothing was written")? {
        Some(checked) => build_checked(checked, orchestr8_path, target, features).map(Some),
        None => Ok(None),
    }
}

/// Writes a checked workflow's crate into `.orchestr8/build/` beside the
/// workflow and builds it.
pub(super) fn build_checked(
    checked: Checked,
    orchestr8_path: Option<&Path>,
    target: Target,
    features: &[&str],
) -> Result<Built, String> {
    let workflow = checked.path.clone();
    let base = workflow.parent().unwrap_or(Path::new("")).join(".orchestr8");
    let build_dir = base.join("build");
    let crate_dir = match target {
        Target::Embedded => stem(&workflow),
        Target::Restate => format!("{}-restate", stem(&workflow)),
    };
    let Written { dir, name, waits } = write_crate(checked, Some(&build_dir.join(crate_dir)), orchestr8_path, target)?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| base.join("target"), PathBuf::from);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = {
        let _progress = Progress::start(&format!("building {name}"));
        Command::new(&cargo)
            .args(["build", "--quiet", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .args(features.iter().flat_map(|f| ["--features", f]))
            .env("CARGO_TARGET_DIR", &target_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?
    };
    if !build.status.success() {
        std::io::stderr().write_all(&build.stderr).ok();
        return Err(format!("the generated crate in `{}` did not build (cargo's output is above)", dir.display()));
    }
    let binary = match target {
        Target::Embedded => name.clone(),
        Target::Restate => crate::codegen::restate_binary(&name),
    };
    Ok(Built { binary: target_dir.join("debug").join(binary), name, waits })
}

fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| "workflow".into(), |s| s.to_string_lossy().into_owned())
}

/// A spinner on standard error while something runs, on a terminal only.
struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(label: &str) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        if !std::io::stderr().is_terminal() {
            return Progress { done, thread: None };
        }
        let label = label.to_owned();
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let frames = ['|', '/', '-', '\\'];
            let mut i = 0;
            while !flag.load(Ordering::Relaxed) {
                eprint!("\r{} {label} ({}s)", frames[i % frames.len()], started.elapsed().as_secs());
                i += 1;
                std::thread::sleep(Duration::from_millis(120));
            }
            eprint!("\r\x1b[2K");
        });
        Progress { done, thread: Some(thread) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
