//! The command line, parsed by clap: what it asks for ([`Command`]), the
//! flags of a run and of `serve`, their defaults and their errors.
//!
//! `PROGRAM [OPTIONS]` runs the workflow once, `PROGRAM serve [OPTIONS]`
//! serves it, `PROGRAM completions SHELL` prints a completion script. A flag
//! is added in one place, its field with its help line, value parser and
//! default: [`RunArgs`] for a run alone, [`Common`] for a run and `serve`,
//! [`ServeFlags`] for `serve` alone (and then in [`ServeArgs`], which the
//! server reads). A default is a `DEFAULT_*` constant below, shown in the
//! help through [`show_duration`] or [`show_size`]; a bad value is refused
//! by its value parser, whose message clap prints after the flag's name
//! (`invalid value 'soon' for '--wait-timeout <T>': expected a duration
//! like 30s or 500ms`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use clap_complete::Shell;

use crate::journal::DEFAULT_JOURNAL_DIR;
use crate::telemetry::LogFormat;

/// What the command line asks for (`--help` and `--version` are clap's:
/// they come back from [`parse`] as its "error" that goes to standard output).
#[derive(Debug)]
pub(super) enum Command {
    Run(RunArgs),
    /// `--test FILE`.
    Test(PathBuf),
    InputSchema,
    /// `serve`: the workflow as an HTTP service.
    Serve(ServeArgs),
    /// `completions SHELL`.
    Completions(Shell),
    /// `resume ID`: the rest of an execution whose process ended first.
    Resume(super::resume::ResumeArgs),
}

/// Default address of `serve`: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default bound of `POST /workflows/execute?wait=true`.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default request body limit of `serve`, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default bound of `serve` on executions running at once: far above what
/// one machine's agents usually sustain, low enough that a flood of
/// requests meets a 503 instead of exhausting memory.
pub const DEFAULT_MAX_RUNNING: usize = 1024;
/// Default time `serve` remembers an `Idempotency-Key`: a day covers a
/// client's retries across an outage and a restart.
pub const DEFAULT_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default `--journal-retention` of `serve`: a week (see [`crate::journal::DEFAULT_RETENTION`]).
pub const DEFAULT_JOURNAL_RETENTION: Duration = crate::journal::DEFAULT_RETENTION;
/// Default `--journal-max-bytes` of `serve`: 10 GiB (see [`crate::journal::DEFAULT_MAX_BYTES`]).
pub const DEFAULT_JOURNAL_MAX_BYTES: u64 = crate::journal::DEFAULT_MAX_BYTES;
/// Default time a connection of `serve` has to send a request head: from
/// the connection for its first request, from the first byte for later ones.
/// A client sends a head in one packet or a few; ten seconds covers slow
/// links, and bounds what a client that sends nothing can hold.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a request body has to arrive whole, from the end of its
/// head: the default 1 MiB body at about 35 KB/s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a keep-alive connection may wait, idle, for its next request.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of connections `serve` keeps open at once; more wait in
/// the listen backlog. Half the usual limit of 1024 open files, leaving
/// descriptors for the journal's segments and the rest of the process.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default time `serve` waits after the first Ctrl-C or SIGTERM for running
/// executions and open requests before it journals what is left as
/// cancelled and exits: below the 30 s an orchestrator (Kubernetes' default
/// grace period) waits before SIGKILL, so the journals are written first.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(25);

/// The options of `serve`, as the server reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct ServeArgs {
    pub addr: std::net::SocketAddr,
    pub journal_dir: PathBuf,
    pub wait_timeout: Duration,
    pub body_limit: usize,
    /// `--journal-retention` and `--journal-max-bytes`.
    pub retention: crate::journal::Retention,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    pub quiet: bool,
    pub log_format: Option<LogFormat>,
    /// `--allowed-host`: more names the server answers to (`*`: any).
    pub allowed_hosts: Vec<String>,
    /// `--auth-token-env`: the variable holding the bearer token.
    pub auth_token_env: Option<String>,
    /// `--max-running`: executions running at once at most.
    pub max_running: usize,
    /// `--idempotency-ttl`: how long `Idempotency-Key`s are remembered.
    pub idempotency_ttl: Duration,
    /// Resume at startup what an earlier process left unfinished (unless `--no-resume`).
    pub resume: bool,
}

// The whole command line. Options given before a subcommand are a run's,
// so `--input x serve` is refused rather than `--input` ignored.
#[derive(Parser, Debug)]
#[command(args_conflicts_with_subcommands = true, disable_help_subcommand = true)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Serve the workflow over HTTP (see /openapi.json)
    Serve(Box<ServeFlags>),
    /// Run the rest of an execution whose process ended before it did
    /// (a crash, a kill), from its journal: steps that succeeded are not
    /// run again
    #[command(verbatim_doc_comment)]
    Resume {
        /// The execution's id (its journal is DIR/ID.jsonl)
        #[arg(value_name = "ID")]
        id: String,
        /// Resume even if this program's workflow definition differs from
        /// the one that started the execution
        #[arg(verbatim_doc_comment, long)]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Send the signal a waiting step of a suspended execution waits for
    /// (exit code 3 of a run), then run the rest of the execution like
    /// `resume`
    #[command(verbatim_doc_comment)]
    Signal {
        /// The execution's id (its journal is DIR/ID.jsonl)
        #[arg(value_name = "ID")]
        id: String,
        /// The id of the waiting step (a `wait` step of the workflow)
        #[arg(value_name = "STEP")]
        step: String,
        /// The signal's payload, as JSON fitting the wait's schema
        #[arg(long, value_name = "JSON", allow_negative_numbers = true)]
        data: String,
        /// Go on even if this program's workflow definition differs from
        /// the one that started the execution
        #[arg(verbatim_doc_comment, long)]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Print a completion script for SHELL to standard output
    Completions {
        #[arg(value_name = "SHELL", value_enum)]
        shell: Shell,
    },
}

// The options of a run (and `--test`, `--input-schema`).
#[derive(Args, Debug)]
pub(super) struct RunArgs {
    /// The input as JSON (else --input-file, or standard input;
    /// {} when standard input is a terminal or empty)
    #[arg(verbatim_doc_comment, long, value_name = "JSON", allow_negative_numbers = true)]
    pub(super) input: Option<String>,
    /// Read the input from PATH ('-': standard input)
    #[arg(long, value_name = "PATH", conflicts_with = "input")]
    pub(super) input_file: Option<PathBuf>,
    /// Correlation id to record [default: the execution id]
    #[arg(long, value_name = "ID")]
    pub(super) correlation_id: Option<String>,
    #[command(flatten)]
    pub(super) common: Common,
    /// Print the input's JSON Schema and exit
    #[arg(long)]
    input_schema: bool,
    /// Run the test cases of FILE ('-': standard input) with mocked
    /// steps on virtual time, and exit
    #[arg(
        verbatim_doc_comment,
        long,
        value_name = "FILE",
        conflicts_with_all = ["input", "input_file", "journal_dir", "correlation_id", "log_format"]
    )]
    test: Option<PathBuf>,
}

// The options of both a run and `serve`.
#[derive(Args, Debug)]
pub(super) struct Common {
    /// Where journals go
    #[arg(long, value_name = "DIR", default_value = DEFAULT_JOURNAL_DIR)]
    pub(super) journal_dir: PathBuf,
    /// No progress lines
    #[arg(short, long)]
    pub(super) quiet: bool,
    /// Standard error as text, or json (one object per line)
    /// [default: $ORCHESTR8_LOG_FORMAT, else text]
    #[arg(verbatim_doc_comment, long, value_name = "FORMAT", value_parser = log_format(), hide_possible_values = true)]
    pub(super) log_format: Option<LogFormat>,
}

// The options of `serve`.
#[derive(Args, Debug)]
struct ServeFlags {
    /// Where to listen
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADDR, value_parser = addr)]
    addr: std::net::SocketAddr,
    #[command(flatten)]
    common: Common,
    /// How long ?wait=true waits
    #[arg(long, value_name = "T", default_value = show_duration(DEFAULT_WAIT_TIMEOUT),
          value_parser = duration("30s or 500ms", Zero::Allowed))]
    wait_timeout: Duration,
    /// Largest request body
    #[arg(long, value_name = "N", default_value = show_size(DEFAULT_BODY_LIMIT as u64),
          value_parser = size("1048576, 64KiB or 1MiB"))]
    body_limit: usize,
    /// Another host name to answer to (repeatable; `*`: any)
    /// [default: the bound IP, and localhost when on loopback]
    #[arg(verbatim_doc_comment, long = "allowed-host", value_name = "NAME", value_parser = allowed_host)]
    allowed_hosts: Vec<String>,
    /// Executions running at once (those only waiting for
    /// signals do not count); beyond them, 503 with Retry-After
    #[arg(verbatim_doc_comment, long, value_name = "N", default_value = DEFAULT_MAX_RUNNING.to_string(),
          allow_negative_numbers = true, value_parser = count("a positive whole number like 64"))]
    max_running: usize,
    /// How long an Idempotency-Key is remembered, across
    /// restarts
    #[arg(verbatim_doc_comment, long, value_name = "T",
          default_value = show_duration(DEFAULT_IDEMPOTENCY_TTL), value_parser = duration("24h or 30m", Zero::Allowed))]
    idempotency_ttl: Duration,
    /// Require `Authorization: Bearer $VAR` on every request but /health
    #[arg(long, value_name = "VAR", value_parser = auth_token_env)]
    auth_token_env: Option<String>,
    /// Delete journal segments whose executions all ended this
    /// long ago (`7d`, `12h`; `off`)
    #[arg(verbatim_doc_comment, long, value_name = "T",
          default_value = show_retention(DEFAULT_JOURNAL_RETENTION), value_parser = or_off(retention))]
    journal_retention: Limit<Duration>,
    /// Delete the oldest ended segments beyond this size of
    /// DIR/log/ (`10GiB`; `off`)
    #[arg(verbatim_doc_comment, long, value_name = "N",
          default_value = show_size(DEFAULT_JOURNAL_MAX_BYTES), value_parser = or_off(journal_bytes))]
    journal_max_bytes: Limit<u64>,
    /// Time to send a request head
    #[arg(long, value_name = "T", default_value = show_duration(DEFAULT_HEADER_TIMEOUT),
          value_parser = duration("10s or 500ms", Zero::Refused))]
    header_timeout: Duration,
    /// Time for a request body to arrive
    #[arg(long, value_name = "T", default_value = show_duration(DEFAULT_BODY_TIMEOUT),
          value_parser = duration("10s or 500ms", Zero::Refused))]
    body_timeout: Duration,
    /// Time a keep-alive connection may idle
    #[arg(long, value_name = "T", default_value = show_duration(DEFAULT_IDLE_TIMEOUT),
          value_parser = duration("10s or 500ms", Zero::Refused))]
    idle_timeout: Duration,
    /// Open connections at most; more wait in the listen
    /// backlog
    #[arg(verbatim_doc_comment, long, value_name = "N", default_value = DEFAULT_MAX_CONNECTIONS.to_string(),
          allow_negative_numbers = true, value_parser = count("a number of connections, 1 or more"))]
    max_connections: usize,
    /// After the first signal, time to wait for running
    /// executions before they are journaled cancelled
    #[arg(verbatim_doc_comment, long, value_name = "T",
          default_value = show_duration(DEFAULT_SHUTDOWN_TIMEOUT),
          value_parser = duration("10s or 500ms", Zero::Allowed))]
    shutdown_timeout: Duration,
    /// Leave the executions an earlier process left unfinished as
    /// they are, instead of resuming them at startup
    #[arg(verbatim_doc_comment, long)]
    no_resume: bool,
}

impl From<ServeFlags> for ServeArgs {
    fn from(f: ServeFlags) -> Self {
        ServeArgs {
            addr: f.addr,
            journal_dir: f.common.journal_dir,
            wait_timeout: f.wait_timeout,
            body_limit: f.body_limit,
            retention: crate::journal::Retention { max_age: f.journal_retention.0, max_bytes: f.journal_max_bytes.0 },
            header_timeout: f.header_timeout,
            body_timeout: f.body_timeout,
            idle_timeout: f.idle_timeout,
            max_connections: f.max_connections,
            shutdown_timeout: f.shutdown_timeout,
            quiet: f.common.quiet,
            log_format: f.common.log_format,
            allowed_hosts: f.allowed_hosts,
            auth_token_env: f.auth_token_env,
            max_running: f.max_running,
            idempotency_ttl: f.idempotency_ttl,
            resume: !f.no_resume,
        }
    }
}

/// What the help says about the program around its options.
pub(super) struct HelpText {
    /// Before the usage: what the program is and does.
    pub(super) about: String,
    /// After the options: exit statuses, signals, an example.
    pub(super) after: String,
    /// After `serve`'s options.
    pub(super) serve_after: String,
}

/// The command line of workflow `id` `version`, run as `bin`: `-V` prints
/// `ID VERSION`; usage and help name `bin`.
pub(super) fn cli(bin: &str, id: &str, version: &str, help: HelpText) -> clap::Command {
    Cli::command()
        .name(id.to_owned())
        .display_name(id)
        .bin_name(bin)
        .version(version.to_owned())
        .about(help.about)
        .after_help(help.after)
        .mut_subcommand("serve", |s| s.mut_arg("quiet", |a| a.help("No access log lines")).after_help(help.serve_after))
}

/// Parses the arguments (the program name first) with `cli`. An `Err` is
/// clap's, to be rendered: help and version (to standard output), or a
/// usage error (to standard error).
pub(super) fn parse(cli: &mut clap::Command, args: Vec<OsString>) -> Result<Command, clap::Error> {
    let matches = cli.try_get_matches_from_mut(args).map_err(|e| with_tip(cli, e))?;
    let Cli { run, command } = Cli::from_arg_matches(&matches).map_err(|e| e.format(cli))?;
    Ok(match command {
        Some(Sub::Serve(flags)) => Command::Serve((*flags).into()),
        Some(Sub::Completions { shell }) => Command::Completions(shell),
        Some(Sub::Resume { id, force, common }) => Command::Resume(super::resume::ResumeArgs {
            id,
            journal_dir: common.journal_dir,
            force,
            quiet: common.quiet,
            log_format: common.log_format,
            signal: None,
        }),
        Some(Sub::Signal { id, step, data, force, common }) => Command::Resume(super::resume::ResumeArgs {
            id,
            journal_dir: common.journal_dir,
            force,
            quiet: common.quiet,
            log_format: common.log_format,
            signal: Some(super::resume::Deliver { step, data }),
        }),
        None if run.input_schema => Command::InputSchema,
        None => match run.test {
            Some(file) => Command::Test(file),
            None => Command::Run(run),
        },
    })
}

/// Clap suggests a subcommand's flag only when the subcommand is named too:
/// an unknown flag that is `serve`'s (given to a run) or a run's (given to
/// `serve`) gets a tip saying where it goes.
fn with_tip(cli: &clap::Command, mut e: clap::Error) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let (Some(serve), ErrorKind::UnknownArgument) = (cli.find_subcommand("serve"), e.kind()) else { return e };
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else { return e };
    let flag = arg.split_once('=').map_or(arg.as_str(), |(flag, _)| flag).to_owned();
    let has = |cmd: &clap::Command| {
        cmd.get_arguments().any(|a| a.get_long().is_some_and(|long| flag.strip_prefix("--") == Some(long)))
    };
    let bin = cli.get_bin_name().unwrap_or_else(|| cli.get_name());
    let tip = match (has(cli), has(serve)) {
        (false, true) => format!("'{flag}' is an option of 'serve': {bin} serve {flag} ..."),
        (true, false) => format!("'{flag}' is an option of a run, without a subcommand: {bin} {flag} ..."),
        _ => return e,
    };
    let mut tips = match e.get(ContextKind::Suggested) {
        Some(ContextValue::StyledStrs(tips)) => tips.clone(),
        _ => Vec::new(),
    };
    tips.push(tip.into());
    e.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
    e
}

/// The program's name for help and usage: the file name it was run as, else the workflow id.
pub(super) fn bin_name(arg0: Option<&OsString>, workflow_id: &str) -> String {
    arg0.map(Path::new)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| workflow_id.to_owned())
}

// Value parsers: each error says what is expected; clap names the flag and
// the value before it.

fn log_format() -> impl clap::builder::TypedValueParser<Value = LogFormat> {
    PossibleValuesParser::new(["text", "json"]).try_map(|s| s.parse::<LogFormat>())
}

fn addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| format!("expected an address like {DEFAULT_ADDR}"))
}

/// Whether a zero duration means something: a connection timeout of zero
/// would close every connection; a shutdown timeout of zero journals what
/// runs as cancelled at once.
#[derive(Clone, Copy)]
enum Zero {
    Allowed,
    Refused,
}

fn duration(like: &'static str, zero: Zero) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync {
    move |s| match crate::policy::parse_duration(s) {
        Ok(d) if !d.is_zero() || matches!(zero, Zero::Allowed) => Ok(d),
        _ => Err(match zero {
            Zero::Allowed => format!("expected a duration like {like}"),
            Zero::Refused => format!("expected a duration like {like}, more than zero"),
        }),
    }
}

fn size(like: &'static str) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync {
    move |s| parse_size(s).ok_or_else(|| format!("expected a size like {like}"))
}

fn count(what: &'static str) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync {
    move |s| s.trim().parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| format!("expected {what}"))
}

fn allowed_host(host: &str) -> Result<String, String> {
    if host.trim().is_empty() || host.contains(['/', ' ']) {
        return Err("expected a host name like api.example.com (or *)".into());
    }
    Ok(host.trim().to_owned())
}

/// Checked when parsed, so that a token that is not there is a usage error.
fn auth_token_env(var: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(token) if !token.trim().is_empty() => Ok(var.to_owned()),
        _ => Err("the variable is not set or empty; set it to the token clients must send".into()),
    }
}

fn retention(s: &str) -> Result<Duration, String> {
    parse_retention(s).ok_or_else(|| "expected a duration like 7d, 12h or 30m, or 'off'".into())
}

fn journal_bytes(s: &str) -> Result<u64, String> {
    parse_size(s).map(|n| n as u64).ok_or_else(|| "expected a size like 10GiB or 500MiB, or 'off'".into())
}

/// A limit that `off` lifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limit<T>(Option<T>);

fn or_off<T>(parse: fn(&str) -> Result<T, String>) -> impl Fn(&str) -> Result<Limit<T>, String> + Clone + Send + Sync {
    move |s| match s.trim() {
        "off" => Ok(Limit(None)),
        s => parse(s).map(|v| Limit(Some(v))),
    }
}

/// A retention age: `7d` (days), or what [`crate::policy::parse_duration`]
/// reads (`12h`, `30m`, `0s`).
fn parse_retention(s: &str) -> Option<Duration> {
    match s.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => {
            days.parse::<u64>().ok()?.checked_mul(86_400).map(Duration::from_secs)
        }
        _ => crate::policy::parse_duration(s).ok(),
    }
}

/// `1048576`, `64KiB`, `1MiB` (also `KB`/`MB` as powers of 1000); at least 1.
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: usize = n.parse().ok()?;
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        "GiB" => 1 << 30,
        "GB" => 1000 * 1000 * 1000,
        "TiB" => 1 << 40,
        "TB" => 1000 * 1000 * 1000 * 1000,
        _ => return None,
    };
    n.checked_mul(unit).filter(|&b| b > 0)
}

/// A default duration as a flag takes it, in its largest whole unit (`30s`,
/// `24h`, `250ms`): what `--help` shows, read back by the flag's parser.
pub(super) fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        _ if ms == 0 || ms % 1000 != 0 => format!("{ms}ms"),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ => format!("{}s", ms / 1000),
    }
}

/// [`show_duration`], and whole days as `7d` (which `--journal-retention` reads).
fn show_retention(d: Duration) -> String {
    match d.as_secs() {
        s if s > 0 && s % 86_400 == 0 && d.subsec_nanos() == 0 => format!("{}d", s / 86_400),
        _ => show_duration(d),
    }
}

/// A default size in its largest whole binary unit (`1MiB`, `10GiB`).
pub(super) fn show_size(n: u64) -> String {
    for (unit, name) in [(1u64 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if n >= unit && n % unit == 0 {
            return format!("{}{name}", n / unit);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn cli() -> clap::Command {
        let help = HelpText { about: "About.".into(), after: "After.".into(), serve_after: "Serve after.".into() };
        super::cli("prog", "wf", "1.2.3", help)
    }

    fn args(list: &[&str]) -> Result<Command, clap::Error> {
        parse(&mut cli(), std::iter::once("prog").chain(list.iter().copied()).map(OsString::from).collect())
    }

    /// The rendered error's first line (then come tips, the usage and `--help`).
    fn err(list: &[&str]) -> String {
        match args(list) {
            Err(e) if e.use_stderr() => e.render().to_string().lines().next().unwrap_or_default().to_owned(),
            other => panic!("{list:?}: not a usage error: {other:?}"),
        }
    }

    fn serve(list: &[&str]) -> ServeArgs {
        match args(&[&["serve"], list].concat()) {
            Ok(Command::Serve(s)) => s,
            other => panic!("{list:?}: {other:?}"),
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        cli().debug_assert();
    }

    #[test]
    fn parses_flags_in_both_forms() {
        let Ok(Command::Run(a)) = args(&["--input={\"a\":1}", "--journal-dir", "j", "--correlation-id=c", "-q"]) else {
            panic!("not a run")
        };
        assert_eq!(a.input.as_deref(), Some("{\"a\":1}"));
        assert_eq!(a.common.journal_dir, PathBuf::from("j"));
        assert_eq!(a.correlation_id.as_deref(), Some("c"));
        assert!(a.common.quiet);
        let Ok(Command::Run(a)) = args(&["--input", "-1", "--log-format=json"]) else { panic!("not a run") };
        assert_eq!((a.input.as_deref(), a.common.log_format), (Some("-1"), Some(LogFormat::Json)));
        let Ok(Command::Run(a)) = args(&[]) else { panic!("not a run") };
        assert_eq!(a.common.journal_dir, PathBuf::from(DEFAULT_JOURNAL_DIR));
        assert_eq!((a.input, a.input_file, a.correlation_id, a.common.log_format), (None, None, None, None));
        assert!(matches!(args(&["--test", "t.json", "-q"]), Ok(Command::Test(f)) if f == Path::new("t.json")));
        assert!(matches!(args(&["--input-schema"]), Ok(Command::InputSchema)));
        // `-` is a value (standard input), not a flag.
        assert!(matches!(args(&["--test", "-"]), Ok(Command::Test(f)) if f == Path::new("-")));
        let Ok(Command::Run(a)) = args(&["--input-file", "-"]) else { panic!("not a run") };
        assert_eq!(a.input_file, Some(PathBuf::from("-")));
    }

    #[cfg(unix)]
    #[test]
    fn arguments_that_are_not_utf8_are_usage_errors_or_paths() {
        use std::os::unix::ffi::OsStringExt as _;
        let bad = || OsString::from_vec(vec![b'x', 0xff]);
        let e = parse(&mut cli(), vec!["prog".into(), "--input".into(), bad()]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidUtf8);
        let Ok(Command::Run(a)) = parse(&mut cli(), vec!["prog".into(), "--journal-dir".into(), bad()]) else {
            panic!("not a run")
        };
        assert_eq!(a.common.journal_dir.into_os_string(), bad());
        assert_eq!(bin_name(Some(&bad()), "wf"), "x\u{fffd}");
    }

    #[test]
    fn rejects_bad_usage() {
        assert_eq!(err(&["--frob"]), "error: unexpected argument '--frob' found");
        assert_eq!(err(&["--input"]), "error: a value is required for '--input <JSON>' but none was supplied");
        assert_eq!(
            err(&["--journal-dir", "--quiet"]),
            "error: a value is required for '--journal-dir <DIR>' but none was supplied"
        );
        assert_eq!(err(&["--quiet=yes"]), "error: unexpected value 'yes' for '--quiet' found; no more were expected");
        assert_eq!(
            err(&["--input", "{}", "--input", "{}"]),
            "error: the argument '--input <JSON>' cannot be used multiple times"
        );
        assert_eq!(
            err(&["--input", "{}", "--input-file", "x"]),
            "error: the argument '--input <JSON>' cannot be used with '--input-file <PATH>'"
        );
        assert_eq!(err(&["run"]), "error: unrecognized subcommand 'run'");
        assert_eq!(err(&["--log-format", "xml"]), "error: invalid value 'xml' for '--log-format <FORMAT>'");
        for other in ["--input", "--input-file", "--journal-dir", "--correlation-id", "--log-format"] {
            let value = if other == "--log-format" { "json" } else { "x" };
            assert_eq!(
                err(&["--test", "t.json", other, value]),
                format!("error: the argument '--test <FILE>' cannot be used with '{other} <{}>'", value_name(other))
            );
        }
    }

    fn value_name(flag: &str) -> &'static str {
        match flag {
            "--input" => "JSON",
            "--input-file" => "PATH",
            "--journal-dir" => "DIR",
            "--correlation-id" => "ID",
            _ => "FORMAT",
        }
    }

    #[test]
    fn run_and_serve_flags_stay_apart() {
        // A flag of `serve` on a run: clap says where it belongs.
        let e = args(&["--addr", "127.0.0.1:1"]).unwrap_err().render().to_string();
        assert!(
            e.starts_with(
                "error: unexpected argument '--addr' found\n\n  tip: '--addr' is an option of 'serve': prog serve --addr ...\n"
            ),
            "{e}"
        );
        let e = args(&["serve", "--input={}"]).unwrap_err().render().to_string();
        assert!(e.contains("tip: '--input' is an option of a run, without a subcommand: prog --input ...\n"), "{e}");
        // Every flag of one given to the other, each with its tip.
        let cli = cli();
        let longs = |c: &clap::Command| -> Vec<String> {
            c.get_arguments().filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect()
        };
        let (run_flags, serve_flags) = (longs(&cli), longs(cli.find_subcommand("serve").unwrap()));
        let serve_only: Vec<_> = serve_flags.iter().filter(|f| !run_flags.contains(f)).collect();
        let run_only: Vec<_> = run_flags.iter().filter(|f| !serve_flags.contains(f)).collect();
        assert_eq!(serve_only.len(), 15, "{serve_only:?}");
        assert_eq!(run_only.len(), 5, "{run_only:?}");
        for flag in serve_only {
            let e = args(&[&format!("{flag}=1")]).unwrap_err().render().to_string();
            assert!(e.starts_with(&format!("error: unexpected argument '{flag}' found\n")), "{e}");
            assert!(e.contains(&format!("tip: '{flag}' is an option of 'serve': prog serve {flag} ...")), "{e}");
        }
        for flag in run_only {
            let e = args(&["serve", flag]).unwrap_err().render().to_string();
            assert!(e.starts_with(&format!("error: unexpected argument '{flag}' found\n")), "{e}");
            assert!(e.contains(&format!("tip: '{flag}' is an option of a run, without a subcommand")), "{e}");
        }
        // Options before `serve` are a run's: refused, not ignored.
        assert_eq!(
            err(&["--input", "{}", "serve"]),
            "error: the subcommand 'serve' cannot be used with '--input <JSON>'"
        );
        assert_eq!(err(&["--quiet", "serve"]), "error: the subcommand 'serve' cannot be used with '--quiet'");
        // The options both have.
        let s = serve(&["--journal-dir", "j", "-q", "--log-format", "json"]);
        assert_eq!((s.journal_dir, s.quiet, s.log_format), (PathBuf::from("j"), true, Some(LogFormat::Json)));
    }

    #[test]
    fn help_and_version_go_to_standard_output() {
        let out = |l: &[&str]| match args(l) {
            Err(e) if !e.use_stderr() => (e.kind(), e.render().to_string()),
            other => panic!("{l:?}: {other:?}"),
        };
        let (kind, help) = out(&["--input", "{}", "--help"]);
        assert_eq!(kind, ErrorKind::DisplayHelp);
        assert!(help.starts_with("About.\n\nUsage: prog [OPTIONS]\n       prog <COMMAND>\n"), "{help}");
        assert!(help.contains("--journal-dir <DIR>"), "{help}");
        assert!(help.contains("[default: .orchestr8/executions]"), "{help}");
        assert!(help.trim_end().ends_with("After."), "{help}");
        assert_eq!(out(&["-V"]), (ErrorKind::DisplayVersion, "wf 1.2.3\n".into()));
        let (_, help) = out(&["serve", "-h"]);
        assert!(help.contains("Usage: prog serve [OPTIONS]"), "{help}");
        assert!(help.contains("No access log lines"), "{help}");
        assert!(help.contains("[default: 127.0.0.1:8080]") && help.contains("[default: 10GiB]"), "{help}");
        assert!(help.trim_end().ends_with("Serve after."), "{help}");
    }

    #[test]
    fn a_misspelt_flag_gets_a_suggestion() {
        let e = args(&["--journal-dri", "j"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        let e = e.render().to_string();
        assert!(e.contains("tip: a similar argument exists: '--journal-dir'"), "{e}");
        let e = args(&["serve", "--wait-timout", "1s"]).unwrap_err().render().to_string();
        assert!(e.contains("tip: a similar argument exists: '--wait-timeout'"), "{e}");
        assert!(e.contains("Usage: prog serve "), "{e}");
    }

    #[test]
    fn completions_take_a_known_shell() {
        assert!(matches!(args(&["completions", "bash"]), Ok(Command::Completions(Shell::Bash))));
        for shell in ["zsh", "fish", "powershell", "elvish"] {
            assert!(matches!(args(&["completions", shell]), Ok(Command::Completions(_))), "{shell}");
        }
        assert_eq!(err(&["completions", "tcsh"]), "error: invalid value 'tcsh' for '<SHELL>'");
        assert_eq!(err(&["completions"]), "error: the following required arguments were not provided:");
    }

    #[test]
    fn serve_flags_are_checked() {
        assert_eq!(
            err(&["serve", "--addr", "localhost"]),
            "error: invalid value 'localhost' for '--addr <ADDR>': expected an address like 127.0.0.1:8080"
        );
        assert_eq!(
            err(&["serve", "--body-limit", "0"]),
            "error: invalid value '0' for '--body-limit <N>': expected a size like 1048576, 64KiB or 1MiB"
        );
        assert_eq!(
            err(&["serve", "--wait-timeout", "soon"]),
            "error: invalid value 'soon' for '--wait-timeout <T>': expected a duration like 30s or 500ms"
        );
        assert_eq!(
            err(&["serve", "--idempotency-ttl", "a day"]),
            "error: invalid value 'a day' for '--idempotency-ttl <T>': expected a duration like 24h or 30m"
        );
        for bad in ["0", "-1", "many"] {
            assert_eq!(
                err(&["serve", &format!("--max-running={bad}")]),
                format!(
                    "error: invalid value '{bad}' for '--max-running <N>': expected a positive whole number like 64"
                )
            );
        }
        for bad in ["", "a/b", "a b"] {
            assert_eq!(
                err(&["serve", "--allowed-host", bad]),
                format!(
                    "error: invalid value '{bad}' for '--allowed-host <NAME>': expected a host name like api.example.com (or *)"
                )
            );
        }
        assert_eq!(
            err(&["serve", "--auth-token-env", "ORCHESTR8_TEST_NO_SUCH_VARIABLE"]),
            "error: invalid value 'ORCHESTR8_TEST_NO_SUCH_VARIABLE' for '--auth-token-env <VAR>': \
             the variable is not set or empty; set it to the token clients must send"
        );
        // PATH is set wherever tests run.
        assert_eq!(serve(&["--auth-token-env", "PATH"]).auth_token_env.as_deref(), Some("PATH"));
        let s = serve(&[
            "--body-limit=64KiB",
            "--wait-timeout",
            "250ms",
            "-q",
            "--allowed-host",
            "a.example",
            "--allowed-host=*",
        ]);
        assert_eq!(s.addr.to_string(), DEFAULT_ADDR);
        assert_eq!((s.body_limit, s.wait_timeout, s.quiet), (65536, Duration::from_millis(250), true));
        assert_eq!(s.allowed_hosts, ["a.example", "*"]);
        let s = serve(&["--max-running", "64", "--idempotency-ttl", "30m", "--addr", "0.0.0.0:9"]);
        assert_eq!((s.max_running, s.idempotency_ttl, s.addr.port()), (64, Duration::from_secs(1800), 9));
        assert_eq!(
            err(&["serve", "--addr", "0.0.0.0:9", "--addr=0.0.0.0:8"]),
            "error: the argument '--addr <ADDR>' cannot be used multiple times"
        );
    }

    #[test]
    fn serve_defaults_are_the_constants() {
        let s = serve(&[]);
        assert_eq!(
            s,
            ServeArgs {
                addr: DEFAULT_ADDR.parse().unwrap(),
                journal_dir: PathBuf::from(DEFAULT_JOURNAL_DIR),
                wait_timeout: DEFAULT_WAIT_TIMEOUT,
                body_limit: DEFAULT_BODY_LIMIT,
                retention: crate::journal::Retention {
                    max_age: Some(DEFAULT_JOURNAL_RETENTION),
                    max_bytes: Some(DEFAULT_JOURNAL_MAX_BYTES)
                },
                header_timeout: DEFAULT_HEADER_TIMEOUT,
                body_timeout: DEFAULT_BODY_TIMEOUT,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
                quiet: false,
                log_format: None,
                allowed_hosts: Vec::new(),
                auth_token_env: None,
                max_running: DEFAULT_MAX_RUNNING,
                idempotency_ttl: DEFAULT_IDEMPOTENCY_TTL,
                resume: true,
            }
        );
        assert!(!serve(&["--no-resume"]).resume);
        let ms = Duration::from_millis;
        assert_eq!(
            [ms(30_000), ms(86_400_000), ms(250), ms(0), ms(90_000), ms(1500)].map(show_duration),
            ["30s", "24h", "250ms", "0ms", "90s", "1500ms"]
        );
        assert_eq!((show_duration(ms(120_000)), show_retention(ms(7 * 86_400_000))), ("2m".into(), "7d".into()));
        assert_eq!([1 << 20, 10 << 30, 1000, 1536].map(show_size), ["1MiB", "10GiB", "1000", "1536"]);
    }

    #[test]
    fn connection_and_shutdown_flags_are_parsed() {
        let ms = Duration::from_millis;
        let s = serve(&[
            "--header-timeout",
            "200ms",
            "--body-timeout=300ms",
            "--idle-timeout",
            "2m",
            "--max-connections",
            "2",
            "--shutdown-timeout",
            "0s",
        ]);
        assert_eq!(
            (s.header_timeout, s.body_timeout, s.idle_timeout, s.max_connections, s.shutdown_timeout),
            (ms(200), ms(300), ms(120_000), 2, ms(0))
        );
        for flag in ["--header-timeout", "--body-timeout", "--idle-timeout"] {
            for bad in ["0s", "soon"] {
                assert_eq!(
                    err(&["serve", flag, bad]),
                    format!("error: invalid value '{bad}' for '{flag} <T>': expected a duration like 10s or 500ms, more than zero")
                );
            }
        }
        assert_eq!(
            err(&["serve", "--shutdown-timeout", "later"]),
            "error: invalid value 'later' for '--shutdown-timeout <T>': expected a duration like 10s or 500ms"
        );
        for bad in ["0", "-1", "many"] {
            assert_eq!(
                err(&["serve", "--max-connections", bad]),
                format!("error: invalid value '{bad}' for '--max-connections <N>': expected a number of connections, 1 or more")
            );
        }
    }

    #[test]
    fn parses_journal_retention() {
        use crate::journal::Retention;
        let day = Duration::from_secs(86_400);
        assert_eq!(DEFAULT_JOURNAL_RETENTION, 7 * day);
        assert_eq!(
            serve(&["--journal-retention", "2d", "--journal-max-bytes=3GiB"]).retention,
            Retention { max_age: Some(2 * day), max_bytes: Some(3 << 30) }
        );
        assert_eq!(
            serve(&["--journal-retention=0s", "--journal-max-bytes", "off"]).retention,
            Retention { max_age: Some(Duration::ZERO), max_bytes: None }
        );
        assert_eq!(serve(&["--journal-retention", "off"]).retention.max_age, None);
        assert_eq!(
            err(&["serve", "--journal-retention", "a week"]),
            "error: invalid value 'a week' for '--journal-retention <T>': expected a duration like 7d, 12h or 30m, or 'off'"
        );
        assert_eq!(
            err(&["serve", "--journal-max-bytes", "0"]),
            "error: invalid value '0' for '--journal-max-bytes <N>': expected a size like 10GiB or 500MiB, or 'off'"
        );
    }
}
