//! `orchestr8 eval FILE`: runs an eval file's tasks in both arms, writes
//! `report.md`, `report.json` and `chart.svg`, and prints the summary.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use orchestr8_runtime::{CancellationToken, Policy};

use super::Reporting;
use crate::diagnostics::render_human;
use crate::eval::report::{self, Setup};
use crate::eval::run::{self, Options, Progress};
use crate::eval::{file, run::peak_memory_mb};

#[derive(Debug, clap::Args)]
#[command(after_long_help = SCORING)]
pub(super) struct Args {
    /// The eval file (`*.eval.json`).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Pairs of calls (one per arm) per task and input.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    iterations: u32,
    /// Pairs in flight at once.
    #[arg(long, value_name = "C", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: u32,
    /// Seeds the order of the pairs, of the arms in each pair, and the bootstrap.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Where the reports go (created if needed; report.md, report.json and chart.svg in it are replaced).
    #[arg(long, value_name = "DIR", default_value = "eval-report")]
    out: PathBuf,
    /// Call this model instead of each agent's own (same provider and base URL).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// Each call's timeout, repairs included (`30s`, `2m`, or milliseconds).
    #[arg(long, value_name = "DURATION", default_value = "120s", value_parser = parse_timeout)]
    timeout: std::time::Duration,
    /// Exit 1 when more than this percentage of the calls failed.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    max_failed: f64,
    #[command(flatten)]
    reporting: Reporting,
}

const SCORING: &str = "Scoring (each 0-100 per answer):
  structure     shape checks passed: every value's `type`, every object's `required`
                members present and no member the schema does not allow
  constraints   bounds satisfied: the output schema's (minimum, maxLength, pattern,
                enum, maxItems, ...) and the task's `constraints`
  completeness  expected fields present and non-empty: the schema's `required` and
                the task's `fields`
A failed call (transport, refusal, truncation, timeout) scores 0 on all three and is
counted apart. Pairs are compared with a two-sided Wilcoxon signed-rank test and a 95%
bootstrap interval; a difference is claimed only where p < 0.05.

Exit status: 0 when the run completed (whatever the verdict); 1 when more than
--max-failed percent of the calls failed; 2 on a bad eval file or a problem before
the run (a missing API key); 130 when interrupted (the reports cover what finished).

Examples:
  orchestr8 eval examples/prompt-eval/standard.eval.json
  orchestr8 eval tasks.eval.json --iterations 5 --concurrency 4 --model claude-sonnet-4-5 --out reports/today";

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let parsed = match text.parse::<u64>() {
        Ok(ms) => std::time::Duration::from_millis(ms),
        Err(_) => orchestr8_schema::ast::parse_duration(text)
            .map_err(|_| "write milliseconds (`1500`) or a number with a unit: `250ms`, `30s`, `2m`".to_owned())?,
    };
    if parsed.is_zero() {
        return Err("the timeout must be more than zero".into());
    }
    Ok(parsed)
}

pub(super) fn run(args: &Args) -> ExitCode {
    match eval(args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn eval(args: &Args) -> Result<ExitCode, String> {
    let shown = args.file.display().to_string();
    if !(0.0..=100.0).contains(&args.max_failed) {
        return Err(format!("--max-failed is a percentage from 0 to 100, not {}", args.max_failed));
    }
    let bytes = super::read_document(&args.file)?;
    let dir = args.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (eval, warnings) = match file::check(&bytes, dir) {
        Ok(checked) => checked,
        Err(rejected) => {
            eprint!("{}", render_human(&shown, &rejected.text, &rejected.diagnostics, args.reporting.options()));
            eprintln!("{shown}: invalid eval file; nothing was run");
            super::print_explain_hint(&rejected.diagnostics);
            return Ok(ExitCode::from(2));
        }
    };
    if !warnings.is_empty() {
        let text = String::from_utf8_lossy(&bytes);
        eprint!("{}", render_human(&shown, &text, &warnings, args.reporting.options()));
    }
    if args.out.is_file() {
        return Err(format!("`{}` is a file; --out names a directory", args.out.display()));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create `{}`: {e}", args.out.display()))?;

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    // The first Ctrl-C stops the run and keeps what finished; a second one
    // (say, during the statistics of a huge run) ends the process.
    ctrlc::set_handler(move || {
        if on_signal.is_cancelled() {
            std::process::exit(130);
        }
        on_signal.cancel();
    })
    .map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let policy = Policy { timeout: args.timeout, ..Policy::default() };
    let options = Options {
        iterations: args.iterations,
        concurrency: args.concurrency as usize,
        seed: args.seed,
        model: args.model.clone(),
        policy,
        cancel,
    };
    let models: Vec<String> =
        eval.tasks.iter().map(|t| args.model.clone().unwrap_or_else(|| t.agent.model.clone())).collect();
    let setup = Setup {
        eval: eval.name.clone(),
        file: shown.clone(),
        models,
        started: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        orchestr8: env!("CARGO_PKG_VERSION").to_owned(),
        iterations: args.iterations,
        concurrency: args.concurrency as usize,
        seed: args.seed,
    };
    let calls: usize = eval.tasks.iter().map(|t| t.inputs.len()).sum::<usize>() * args.iterations as usize * 2;
    eprintln!(
        "eval `{}`: {} task(s), {calls} calls (Markdown and JSON arms, {} iteration(s) per input)",
        eval.name,
        eval.tasks.len(),
        args.iterations
    );
    let bar = ProgressBar::new(std::io::stderr().is_terminal());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let outcome = runtime.block_on(run::run(&eval, &options, |p| bar.show(p)))?;
    bar.finish();

    let built = report::build(&eval, &outcome, setup, peak_memory_mb());
    let json = serde_json::to_string_pretty(&built).map_err(|e| format!("cannot serialise the report: {e}"))?;
    write(&args.out.join("report.json"), &format!("{json}\n"))?;
    write(&args.out.join("report.md"), &report::markdown(&built))?;
    write(&args.out.join("chart.svg"), &report::svg(&built, &outcome))?;

    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}\n{}", report::summary(&built), report::performance(&built));
    let _ = writeln!(stdout, "Reports: {}", args.out.join("report.md").display());
    let failed: usize = built.tasks.iter().flat_map(|t| &t.calls).map(|c| c.failed).sum();
    let finished = outcome.samples.len();
    if outcome.interrupted {
        eprintln!("interrupted after {finished} of {calls} calls; the reports cover those");
        return Ok(ExitCode::from(130));
    }
    let share = if finished == 0 { 0.0 } else { 100.0 * failed as f64 / finished as f64 };
    if share > args.max_failed {
        eprintln!(
            "error: {failed} of {finished} calls failed ({share:.1}%, more than --max-failed {}%); see the failures in {}",
            args.max_failed,
            args.out.join("report.md").display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes beside the file and renames: a failed write leaves the last
/// report whole.
fn write(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write `{}`: {e}", path.display()))
}

/// A one-line progress bar on a terminal; nothing otherwise.
struct ProgressBar {
    on: bool,
    started: Instant,
}

impl ProgressBar {
    fn new(on: bool) -> Self {
        ProgressBar { on, started: Instant::now() }
    }

    fn show(&self, p: Progress) {
        if !self.on {
            return;
        }
        const WIDTH: usize = 30;
        let filled = (p.done * WIDTH).checked_div(p.total).unwrap_or(WIDTH);
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 { p.done as f64 / elapsed } else { 0.0 };
        let eta = if rate > 0.0 { (p.total - p.done) as f64 / rate } else { 0.0 };
        eprint!(
            "\r[{}{}] {}/{} calls, {} failed, {rate:.1}/s, ~{eta:.0}s left   ",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            p.done,
            p.total,
            p.failed
        );
    }

    fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timeouts() {
        assert_eq!(super::parse_timeout("1500"), Ok(std::time::Duration::from_millis(1500)));
        assert_eq!(super::parse_timeout("2m"), Ok(std::time::Duration::from_secs(120)));
        assert!(super::parse_timeout("0").is_err());
        assert!(super::parse_timeout("soon").is_err());
    }
}
