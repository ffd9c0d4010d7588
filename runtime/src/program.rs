//! The generated program: everything a compiled workflow's `main` does, so
//! that generated code is one call.
//!
//! ```rust,ignore
//! use orchestr8_runtime::codegen::*;
//!
//! fn main() -> std::process::ExitCode {
//!     Program::new(workflow(), |input: Input, ids: &ExecutionIds| State::new(input, ids))
//!         .about("Triage a support ticket.")
//!         .input_schema(serde_json::json!({ "type": "object" }))
//!         .main()
//! }
//! ```
//!
//! The behaviour is the contract's (`spec/workflow-v1.md`, "The generated
//! program"):
//!
//! - the input comes from `--input JSON`, `--input-file PATH` (`-` for
//!   standard input) or standard input; when neither flag is given and
//!   standard input is a terminal, or standard input is empty, the input is
//!   `{}`. It is parsed into the typed input with every error located: a JSON
//!   pointer for a value that does not fit (`invalid input at /count: invalid
//!   type: string "x", expected u32`, and the missing or unknown field itself
//!   for `missing field` / `unknown field`), `line:column` for malformed JSON;
//! - `--journal-dir DIR` (default [`DEFAULT_JOURNAL_DIR`]), `--correlation-id
//!   ID` (default: the execution id), `--quiet`, `--help`, `--version`,
//!   `--input-schema`;
//! - standard output carries nothing but the output, as pretty JSON and a
//!   newline; progress (one line per step started, succeeded, failed, retried,
//!   from the event bus) and errors go to standard error;
//! - exit status: 0 completed, 1 failed (a human line, then the contract's
//!   error JSON `{"kind","message","step","attempt"}` on its own line, both on
//!   standard error), 2 bad input or usage, 130 cancelled. The first Ctrl-C
//!   cancels the execution cooperatively (running agents see their token;
//!   the journal ends with `execution.cancelled`); a second one exits at once,
//!   leaving a journal without a terminal event (read back as interrupted).
//!
//! `PROGRAM serve [--addr ADDR]` serves the workflow over HTTP instead (the
//! `server` module, behind the cargo feature `server`; without it, `serve`
//! exits 2 and says how to build it).
//!
//! Arguments are parsed by hand: no clap, so generated crates build fast.
//!
//! The execution runs on a current-thread tokio runtime on a thread of its
//! own; the calling thread only writes progress lines. Progress travels over
//! a bounded channel that the execution side never waits on (lines that do
//! not fit are counted and reported), so a slow or blocked standard error
//! never slows the execution.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio_util::sync::CancellationToken;

use crate::bus::{BusMessage, Subscriber};
use crate::error::{panic_message, ErrorKind, ExecutionError, StepError};
use crate::executor::{new_execution_id, ExecutionOptions, Runtime, Workflow};
use crate::journal::{EventKind, FileStore, JournalEvent, DEFAULT_JOURNAL_DIR};
use crate::telemetry::{LogFormat, Telemetry};
use tracing::Level;

mod bounds;
mod test_mode;

pub(crate) use bounds::{checked_json, InputError};
#[cfg(feature = "server")]
pub(crate) use bounds::number_key;

/// Exit status of a completed execution.
pub const EXIT_COMPLETED: u8 = 0;
/// Exit status of a failed execution.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for bad input or bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of a cancelled execution (Ctrl-C).
pub const EXIT_CANCELLED: u8 = 130;

/// Progress lines that may wait for standard error before new ones are dropped.
const PROGRESS_CAPACITY: usize = 1024;

/// Prefix of every progress line.
const PREFIX: &str = "[orchestr8]";

/// Ids the program chose for this execution; generated code puts them in its
/// state for `${execution.id}` / `${execution.correlationId}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionIds {
    /// The execution id (a fresh UUID v4; names the journal file).
    pub execution_id: String,
    /// `--correlation-id`, or the execution id.
    pub correlation_id: String,
}

type MakeState<I, S> = Arc<dyn Fn(I, &ExecutionIds) -> S + Send + Sync>;

/// Everything the generated program is made of.
pub struct Program<I, S, O> {
    workflow: Arc<Workflow<S, O>>,
    make_state: MakeState<I, S>,
    about: Option<String>,
    input_schema: Option<Value>,
    output_schema: Option<Value>,
    interrupts: Option<UnboundedReceiver<()>>,
    start_paused: bool,
    preflight: Vec<Preflight>,
}

/// A check the program makes before it runs or serves anything (an LLM
/// agent's API key is set): its error ends the program with exit code 2.
type Preflight = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

impl<I, S, O> std::fmt::Debug for Program<I, S, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program").field("workflow", &self.workflow).field("about", &self.about).finish()
    }
}

impl<I, S, O> Program<I, S, O>
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    /// `workflow`: the plan; `make_state`: builds the execution state from the
    /// parsed input and the execution's ids (once per execution; `--test`
    /// runs several).
    pub fn new(
        workflow: Arc<Workflow<S, O>>,
        make_state: impl Fn(I, &ExecutionIds) -> S + Send + Sync + 'static,
    ) -> Self {
        Program {
            workflow,
            make_state: Arc::new(make_state),
            about: None,
            input_schema: None,
            output_schema: None,
            interrupts: None,
            start_paused: false,
            preflight: Vec::new(),
        }
    }

    /// Adds a check made when the program starts to run or serve (not for
    /// `--help` or `--test`, whose mocks may stand in for what it checks).
    pub fn preflight(mut self, check: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.preflight.push(Box::new(check));
        self
    }

    /// A one-paragraph description for `--help` (the workflow's description).
    pub fn about(mut self, text: &str) -> Self {
        self.about = Some(text.to_owned());
        self
    }

    /// The input's JSON Schema, printed by `--input-schema` and used for the
    /// example in `--help`.
    pub fn input_schema(mut self, schema: Value) -> Self {
        self.input_schema = Some(schema);
        self
    }

    /// The output's JSON Schema, for `serve`'s OpenAPI document.
    pub fn output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }

    /// Tests only: each message on `interrupts` acts as one Ctrl-C (the
    /// first cancels, the second exits at once), and no Ctrl-C or SIGTERM
    /// handler is installed. A closed channel never interrupts. Under
    /// `serve`, the first stops the server and cancels its executions.
    #[cfg(feature = "testing")]
    pub fn interrupts(mut self, interrupts: UnboundedReceiver<()>) -> Self {
        self.interrupts = Some(interrupts);
        self
    }

    /// Tests only: runs the execution on paused tokio time (timers fire as
    /// soon as the runtime is idle), so retries and timeouts take no real time.
    #[cfg(feature = "testing")]
    pub fn start_paused(mut self) -> Self {
        self.start_paused = true;
        self
    }

    /// Runs the preflight checks; reports each failure.
    fn failed_preflight(&self, format: LogFormat, stderr: &mut dyn Write) -> bool {
        let mut failed = false;
        for check in &self.preflight {
            if let Err(msg) = check() {
                say(stderr, format, Level::ERROR, &msg, None, &[]);
                failed = true;
            }
        }
        failed
    }

    /// `run` for `run` and `serve`: resolves the log format, runs the
    /// preflight checks and installs the telemetry (saying what goes wrong
    /// in that format), runs, then shuts the telemetry down. Every exit of a
    /// run or a server goes through here: nothing recorded is lost.
    fn with_telemetry(
        self,
        flag: Option<LogFormat>,
        stderr: &mut dyn Write,
        run: impl FnOnce(Self, LogFormat, &mut dyn Write) -> u8,
    ) -> u8 {
        let Some(format) = log_format(flag, stderr) else { return EXIT_USAGE };
        if self.failed_preflight(format, stderr) {
            return EXIT_USAGE;
        }
        let mut notes = Vec::new();
        let telemetry = Telemetry::install(self.workflow.info(), format, &mut notes);
        for note in &notes {
            say(stderr, format, Level::WARN, note, None, &[]);
        }
        let code = run(self, format, stderr);
        telemetry.shutdown();
        code
    }

    /// Parses [`std::env::args_os`], runs, and returns the exit code.
    pub fn main(self) -> ExitCode {
        let args: Vec<OsString> = std::env::args_os().collect();
        let stdin = io::stdin();
        let mut stdin_lock = (!stdin.is_terminal()).then(|| stdin.lock());
        let stdin = stdin_lock.as_mut().map(|s| s as &mut dyn Read);
        // Standard error unlocked: the log layers write to it from the
        // execution's thread (a line at a time) while this one runs.
        let code = self.run(args, stdin, &mut io::stdout().lock(), &mut io::stderr());
        ExitCode::from(code)
    }

    /// Checks an input document as `--input` does: JSON syntax, the input
    /// type, then the input schema's bounds. Returns the typed input and its
    /// JSON (what the journal records), or the message the program prints.
    pub fn check_input(&self, text: &str) -> Result<(I, Value), String> {
        self.check_input_from(text, &Source::Flag)
    }

    fn check_input_from(&self, text: &str, source: &Source) -> Result<(I, Value), String> {
        let input: I = parse_input(text, source)?;
        let json = checked_json(self.input_schema.as_ref(), &input).map_err(|e| e.to_string())?;
        Ok((input, json))
    }

    /// The same as [`main`](Self::main) with explicit arguments (the program
    /// name first, as from `args_os`), standard input and output streams.
    /// `stdin` is read only when neither `--input` nor `--input-file` is
    /// given. Installs a Ctrl-C handler for the execution (unless a test
    /// trigger was given), which stays installed afterwards.
    pub fn run_with(
        self,
        args: Vec<OsString>,
        mut stdin: impl Read,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> u8 {
        self.run(args, Some(&mut stdin), stdout, stderr)
    }

    /// `stdin` is `None` when it is a terminal (the input is then `{}`).
    fn run(
        self,
        args: Vec<OsString>,
        stdin: Option<&mut dyn Read>,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> u8 {
        let bin = bin_name(args.first(), &self.workflow.info().id);
        let args = match parse_args(args) {
            Ok(a) => a,
            Err(msg) => {
                let _ = write!(
                    stderr,
                    "error: {msg}\n\nUsage: {bin} [OPTIONS]\nFor more information, try '{bin} --help'.\n"
                );
                return EXIT_USAGE;
            }
        };
        let text = match args {
            Command::Help => self.help(&bin),
            Command::Version => {
                let info = self.workflow.info();
                format!("{} {}\n", info.id, info.version)
            }
            Command::InputSchema => match &self.input_schema {
                Some(schema) => pretty(schema).unwrap_or_default() + "\n",
                None => {
                    let _ = writeln!(stderr, "error: this program was built without an input schema");
                    return EXIT_USAGE;
                }
            },
            Command::Run(args) => {
                return self.with_telemetry(args.log_format, stderr, |p, format, stderr| {
                    p.execute(args, format, stdin, stdout, stderr)
                })
            }
            Command::Test(file) => return test_mode::run(&self, &file, stdin, stdout, stderr),
            Command::Serve(args) => {
                return self.with_telemetry(args.log_format, stderr, |p, format, stderr| p.serve(args, format, stderr))
            }
        };
        match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
            Ok(()) => EXIT_COMPLETED,
            Err(e) => {
                let _ = writeln!(stderr, "error: cannot write to standard output: {e}");
                EXIT_FAILED
            }
        }
    }

    fn help(&self, bin: &str) -> String {
        let info = self.workflow.info();
        let mut h = String::new();
        if let Some(about) = self.about.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
            h.push_str(about);
            h.push_str("\n\n");
        }
        let example = match &self.input_schema {
            Some(schema) => example_value(schema, schema, 0),
            None => Value::Object(Default::default()),
        };
        let example = shell_quote(&serde_json::to_string(&example).unwrap_or_else(|_| "{}".into()));
        let _ = write!(
            h,
            "Runs workflow {id} {version}: reads its input as JSON and prints its output as JSON on
standard output. Progress and errors go to standard error; every run writes a
journal DIR/EXECUTION_ID.jsonl. `serve` makes the workflow an HTTP service
(see /openapi.json) and journals all its executions in one log, DIR/log/.

Usage: {bin} [OPTIONS]
       {bin} serve [--addr ADDR] [--journal-dir DIR] [--wait-timeout T] [--body-limit N]
                   [--journal-retention T] [--journal-max-bytes N]
                   [--header-timeout T] [--body-timeout T] [--idle-timeout T]
                   [--max-connections N] [--shutdown-timeout T]

Options:
      --input JSON           the input (otherwise --input-file, or standard input;
                             {{}} when standard input is a terminal or empty)
      --input-file PATH      read the input from PATH ('-': standard input)
      --journal-dir DIR      where journals go [default: {dir}]
      --correlation-id ID    correlation id to record [default: the execution id]
  -q, --quiet                no progress lines (serve: no access log lines)
      --log-format FORMAT    standard error as `text` or `json` (one object per
                             line) [default: $ORCHESTR8_LOG_FORMAT, else text]
      --input-schema         print the input's JSON Schema and exit
      --test FILE            run the test cases of FILE ('-': standard input)
                             with mocked steps on virtual time, and exit
      --addr ADDR            serve: where to listen [default: {addr}]
      --wait-timeout T       serve: how long ?wait=true waits [default: 30s]
      --body-limit N         serve: largest request body [default: 1MiB]
      --allowed-host NAME    serve: another host name to answer to (repeatable;
                             `*`: any) [default: the bound IP, and localhost
                             when on loopback]
      --max-running N        serve: executions running at once; beyond, 503
                             with Retry-After [default: 1024]
      --idempotency-ttl T    serve: how long an Idempotency-Key is remembered,
                             across restarts [default: 24h]
      --auth-token-env VAR   serve: require `Authorization: Bearer $VAR` on every
                             request but /health
      --journal-retention T  serve: delete journal segments whose executions
                             all ended this long ago (`7d`, `12h`; `off`) [default: 7d]
      --journal-max-bytes N  serve: delete the oldest ended segments beyond this
                             size of DIR/log/ (`10GiB`; `off`) [default: 10GiB]
      --header-timeout T     serve: time to send a request head [default: 10s]
      --body-timeout T       serve: time for a request body to arrive [default: 30s]
      --idle-timeout T       serve: time a keep-alive connection may idle [default: 60s]
      --max-connections N    serve: open connections at most; more wait [default: 512]
      --shutdown-timeout T   serve: after the first signal, time to wait for running
                             executions before they are journaled cancelled [default: 25s]
  -h, --help                 print this help and exit
  -V, --version              print the workflow id and version and exit

Exit status: 0 completed, 1 failed, 2 bad input or usage, 130 cancelled.
Ctrl-C or SIGTERM cancels cooperatively; a second one exits at once. serve
then waits --shutdown-timeout, journals what still runs as cancelled and exits 130.
With --test: 0 all cases passed, 1 some failed, 2 unreadable or invalid file.

Example:
  {bin} --input {example}
",
            id = info.id,
            version = info.version,
            dir = DEFAULT_JOURNAL_DIR,
            addr = DEFAULT_ADDR,
        );
        h
    }

    #[cfg(not(feature = "server"))]
    fn serve(self, _args: ServeArgs, _format: LogFormat, stderr: &mut dyn Write) -> u8 {
        let _ = writeln!(stderr, "error: this program was built without the server; build it with --features serve");
        EXIT_USAGE
    }

    /// `serve`: the server runs on a thread of its own; this one writes its
    /// log lines to `stderr` until it ends.
    #[cfg(feature = "server")]
    fn serve(self, args: ServeArgs, format: LogFormat, stderr: &mut dyn Write) -> u8 {
        let workflow = self.workflow.clone();
        let make_state = self.make_state.clone();
        let schema = self.input_schema.clone();
        let start = move |runtime: &Runtime,
                          input: &Value,
                          o: crate::server::StartOptions|
              -> Result<crate::server::Started, crate::server::StartError> {
            let crate::server::StartOptions { ids, trace_parent, cancel, idempotency } = o;
            use crate::server::StartError;
            let typed: I = parse_input_value(input).map_err(StartError::Input)?;
            let input_json = checked_json(schema.as_ref(), &typed).map_err(StartError::Input)?;
            let state = make_state(typed, &ids);
            let opts = ExecutionOptions {
                execution_id: Some(ids.execution_id),
                correlation_id: Some(ids.correlation_id),
                input: Some(input_json),
                cancel: Some(cancel),
                trace_parent,
                idempotency,
                ..ExecutionOptions::default()
            };
            let execution = runtime.prepare(workflow.info(), opts).map_err(StartError::Journal)?;
            let trace_id = execution.trace_id();
            let workflow = workflow.clone();
            let run: crate::server::Run = Box::pin(async move {
                let output = execution.run(&workflow, &state).await?;
                serde_json::to_value(output).map_err(|e| StepError::new(ErrorKind::InvalidOutput, e.to_string(), 0))
            });
            Ok(crate::server::Started { run, trace_id })
        };
        let config = crate::server::Config {
            args,
            info: self.workflow.info().clone(),
            about: self.about,
            input_schema: self.input_schema,
            output_schema: self.output_schema,
        };
        let interrupts = self.interrupts;
        let (tx, rx) = sync_channel(PROGRESS_CAPACITY);
        let spawned = std::thread::Builder::new()
            .name("orchestr8-server".into())
            .spawn(move || crate::server::run(config, Arc::new(start), interrupts, tx));
        let server = match spawned {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(stderr, "error: cannot start the server thread: {e}");
                return EXIT_FAILED;
            }
        };
        for line in rx {
            let crate::server::LogLine { level, message, fields } = line;
            say(stderr, format, level, &message, None, &fields);
            let _ = stderr.flush();
        }
        match server.join() {
            Ok(Ok(crate::server::End::Stopped)) => EXIT_COMPLETED,
            // Executions left unfinished: journaled cancelled (a deadline) or interrupted (a second signal).
            Ok(Ok(crate::server::End::Abandoned | crate::server::End::TimedOut)) => EXIT_CANCELLED,
            Ok(Err(msg)) => {
                say(stderr, format, Level::ERROR, &one_line(&msg), None, &[]);
                EXIT_FAILED
            }
            Err(_) => {
                say(stderr, format, Level::ERROR, "the server panicked", None, &[]);
                EXIT_FAILED
            }
        }
    }

    fn execute(
        self,
        args: RunArgs,
        format: LogFormat,
        stdin: Option<&mut dyn Read>,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> u8 {
        let (text, source) = match read_input(&args, stdin) {
            Ok(t) => t,
            Err(msg) => {
                say(stderr, format, Level::ERROR, &msg, None, &[]);
                return EXIT_USAGE;
            }
        };
        let (input, input_json) = match self.check_input_from(&text, &source) {
            Ok(checked) => checked,
            Err(msg) => {
                say(stderr, format, Level::ERROR, &msg, None, &[]);
                return EXIT_USAGE;
            }
        };
        let execution_id = new_execution_id();
        let correlation_id = args.correlation_id.unwrap_or_else(|| execution_id.clone());
        let ids = ExecutionIds { execution_id, correlation_id };
        // The ids on the program's own last line, for JSON logs.
        let ids_fields = [("execution_id", ids.execution_id.clone()), ("correlation_id", ids.correlation_id.clone())];
        let state = (self.make_state)(input, &ids);
        let store = FileStore::new(args.journal_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_JOURNAL_DIR)));
        let (tx, rx) = sync_channel(PROGRESS_CAPACITY);
        let mut progress = Progress::new(tx, store.path(&ids.execution_id));
        // JSON logs come from the execution's spans; progress lines are for people.
        let quiet = args.quiet || format == LogFormat::Json;
        if !quiet && source == Source::Default {
            progress.send(format!("{PREFIX} no input given; using {{}}"));
        }
        let worker = Worker {
            workflow: self.workflow,
            state,
            store,
            ids,
            input: input_json,
            quiet,
            interrupts: self.interrupts,
            start_paused: self.start_paused,
            progress,
        };
        let spawned = std::thread::Builder::new().name("orchestr8-execution".into()).spawn(move || worker.run());
        let worker = match spawned {
            Ok(w) => w,
            Err(e) => {
                say(stderr, format, Level::ERROR, &format!("cannot start the execution thread: {e}"), None, &[]);
                return EXIT_FAILED;
            }
        };
        // Ends when the worker drops its sender, i.e. when it is done.
        for line in rx {
            let _ = writeln!(stderr, "{line}");
        }
        let ended = match worker.join() {
            Ok(e) => e,
            Err(panic) => {
                let msg = format!("the execution panicked: {}", one_line(&panic_message(&*panic)));
                say(stderr, format, Level::ERROR, &msg, None, &[]);
                return EXIT_FAILED;
            }
        };
        match ended {
            Ended::Finished(Ok(output)) => {
                let text = match pretty(&output) {
                    Ok(t) => t,
                    Err(e) => {
                        say(
                            stderr,
                            format,
                            Level::ERROR,
                            &format!("the output cannot be written as JSON: {e}"),
                            None,
                            &[],
                        );
                        return EXIT_FAILED;
                    }
                };
                match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
                    Ok(()) => EXIT_COMPLETED,
                    Err(e) => {
                        let msg = format!("cannot write the output to standard output: {e}");
                        say(stderr, format, Level::ERROR, &msg, None, &[]);
                        EXIT_FAILED
                    }
                }
            }
            Ended::Finished(Err(e)) if e.kind == ErrorKind::Cancelled => {
                say(stderr, format, Level::INFO, "cancelled", None, &ids_fields);
                EXIT_CANCELLED
            }
            Ended::Finished(Err(e)) => {
                say(stderr, format, Level::ERROR, &describe_error(&e), Some(&e), &ids_fields);
                EXIT_FAILED
            }
            Ended::Abandoned => {
                say(stderr, format, Level::INFO, "cancelled", None, &ids_fields);
                EXIT_CANCELLED
            }
            Ended::NotStarted(msg) => {
                say(stderr, format, Level::ERROR, &msg, None, &[]);
                EXIT_FAILED
            }
        }
    }
}

/// The log format: the flag, else [`crate::telemetry::LOG_FORMAT_ENV`];
/// `None` (after saying why) when the variable holds no format.
fn log_format(flag: Option<LogFormat>, stderr: &mut dyn Write) -> Option<LogFormat> {
    match flag.map(Ok).unwrap_or_else(LogFormat::from_env) {
        Ok(f) => Some(f),
        Err(msg) => {
            let _ = writeln!(stderr, "error: {msg}");
            None
        }
    }
}

/// Writes a message of the program itself to standard error: `error: …`
/// (and the contract's error JSON on its own line) for people, one JSON
/// object per line with `--log-format json`.
fn say(
    stderr: &mut dyn Write,
    format: LogFormat,
    level: Level,
    message: &str,
    error: Option<&ExecutionError>,
    fields: &[(&str, String)],
) {
    match format {
        LogFormat::Text => {
            let _ = match (level, error) {
                (_, Some(e)) => {
                    writeln!(stderr, "error: {message}\n{}", serde_json::to_string(e).unwrap_or_default())
                }
                (Level::ERROR, None) => writeln!(stderr, "error: {message}"),
                (Level::WARN, None) => writeln!(stderr, "warning: {message}"),
                _ => writeln!(stderr, "{message}"),
            };
        }
        LogFormat::Json => {
            let mut line = crate::telemetry::json::start_line(&level, "orchestr8", message.into());
            for (k, v) in fields {
                line.insert((*k).into(), v.as_str().into());
            }
            if let Some(e) = error {
                line.insert("error".into(), serde_json::to_value(e).unwrap_or_default());
            }
            let _ = writeln!(stderr, "{}", Value::Object(line));
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
enum Command {
    Run(RunArgs),
    /// `--test FILE`.
    Test(PathBuf),
    Help,
    Version,
    InputSchema,
    /// `serve`: the workflow as an HTTP service.
    Serve(ServeArgs),
}

/// Default address of `serve`: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default bound of `POST /workflows/execute?wait=true`.
pub const DEFAULT_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Default request body limit of `serve`, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default bound of `serve` on executions running at once: far above what
/// one machine's agents usually sustain, low enough that a flood of
/// requests meets a 503 instead of exhausting memory.
pub const DEFAULT_MAX_RUNNING: usize = 1024;
/// Default time `serve` remembers an `Idempotency-Key`: a day covers a
/// client's retries across an outage and a restart.
pub const DEFAULT_IDEMPOTENCY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Default `--journal-retention` of `serve`: a week (see [`crate::journal::DEFAULT_RETENTION`]).
pub const DEFAULT_JOURNAL_RETENTION: std::time::Duration = crate::journal::DEFAULT_RETENTION;
/// Default `--journal-max-bytes` of `serve`: 10 GiB (see [`crate::journal::DEFAULT_MAX_BYTES`]).
pub const DEFAULT_JOURNAL_MAX_BYTES: u64 = crate::journal::DEFAULT_MAX_BYTES;
/// Default time a connection of `serve` has to send a request head: from
/// the connection for its first request, from the first byte for later ones.
/// A client sends a head in one packet or a few; ten seconds covers slow
/// links, and bounds what a client that sends nothing can hold.
pub const DEFAULT_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Default time a request body has to arrive whole, from the end of its
/// head: the default 1 MiB body at about 35 KB/s.
pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Default time a keep-alive connection may wait, idle, for its next request.
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Default number of connections `serve` keeps open at once; more wait in
/// the listen backlog. Half the usual limit of 1024 open files, leaving
/// descriptors for the journal's segments and the rest of the process.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default time `serve` waits after the first Ctrl-C or SIGTERM for running
/// executions and open requests before it journals what is left as
/// cancelled and exits: below the 30 s an orchestrator (Kubernetes' default
/// grace period) waits before SIGKILL, so the journals are written first.
pub const DEFAULT_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(25);

/// The options of `serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct ServeArgs {
    pub addr: std::net::SocketAddr,
    pub journal_dir: PathBuf,
    pub wait_timeout: std::time::Duration,
    pub body_limit: usize,
    /// `--journal-retention` and `--journal-max-bytes`.
    pub retention: crate::journal::Retention,
    pub header_timeout: std::time::Duration,
    pub body_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub max_connections: usize,
    pub shutdown_timeout: std::time::Duration,
    pub quiet: bool,
    pub log_format: Option<LogFormat>,
    /// `--allowed-host`: more names the server answers to (`*`: any).
    pub allowed_hosts: Vec<String>,
    /// `--auth-token-env`: the variable holding the bearer token.
    pub auth_token_env: Option<String>,
    /// `--max-running`: executions running at once at most.
    pub max_running: usize,
    /// `--idempotency-ttl`: how long `Idempotency-Key`s are remembered.
    pub idempotency_ttl: std::time::Duration,
}

#[derive(Debug, Default)]
struct RunArgs {
    input: Option<String>,
    input_file: Option<PathBuf>,
    journal_dir: Option<PathBuf>,
    correlation_id: Option<String>,
    quiet: bool,
    test: Option<PathBuf>,
    serve: bool,
    addr: Option<String>,
    wait_timeout: Option<String>,
    body_limit: Option<String>,
    journal_retention: Option<String>,
    journal_max_bytes: Option<String>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<String>,
    shutdown_timeout: Option<String>,
    log_format: Option<LogFormat>,
    allowed_hosts: Vec<String>,
    auth_token_env: Option<String>,
    max_running: Option<String>,
    idempotency_ttl: Option<String>,
}

/// Parses the arguments after the program name: `--flag VALUE` or
/// `--flag=VALUE`; `--help`, `--version` and `--input-schema` win as soon as
/// they are seen.
fn parse_args(args: Vec<OsString>) -> Result<Command, String> {
    let mut it = args.into_iter().skip(1).peekable();
    let mut a = RunArgs::default();
    if it.peek().is_some_and(|first| first == "serve") {
        it.next();
        a.serve = true;
    }
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str() else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match s.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(OsString::from(v))),
            _ => (s, None),
        };
        let mut value = |flag: &str| -> Result<OsString, String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) if inline.is_some() || !v.to_str().is_some_and(|v| v.starts_with("--")) => Ok(v),
                _ => Err(format!("'{flag}' needs a value")),
            }
        };
        let utf8 = |flag: &str, v: OsString| v.into_string().map_err(|_| format!("the value of '{flag}' is not UTF-8"));
        match name {
            "-h" | "--help" if inline.is_none() => return Ok(Command::Help),
            "-V" | "--version" if inline.is_none() => return Ok(Command::Version),
            "--input-schema" if inline.is_none() => return Ok(Command::InputSchema),
            "-q" | "--quiet" if inline.is_none() => a.quiet = true,
            "--input" => set(&mut a.input, name, utf8(name, value(name)?)?)?,
            "--input-file" => set(&mut a.input_file, name, PathBuf::from(value(name)?))?,
            "--journal-dir" => set(&mut a.journal_dir, name, PathBuf::from(value(name)?))?,
            "--correlation-id" => set(&mut a.correlation_id, name, utf8(name, value(name)?)?)?,
            "--test" => set(&mut a.test, name, PathBuf::from(value(name)?))?,
            "--addr" => set(&mut a.addr, name, utf8(name, value(name)?)?)?,
            "--wait-timeout" => set(&mut a.wait_timeout, name, utf8(name, value(name)?)?)?,
            "--body-limit" => set(&mut a.body_limit, name, utf8(name, value(name)?)?)?,
            "--allowed-host" => {
                let host = utf8(name, value(name)?)?;
                if host.trim().is_empty() || host.contains(['/', ' ']) {
                    return Err(format!(
                        "'--allowed-host' needs a host name like api.example.com (or *), not '{host}'"
                    ));
                }
                a.allowed_hosts.push(host.trim().to_owned())
            }
            "--auth-token-env" => set(&mut a.auth_token_env, name, utf8(name, value(name)?)?)?,
            "--max-running" => set(&mut a.max_running, name, utf8(name, value(name)?)?)?,
            "--idempotency-ttl" => set(&mut a.idempotency_ttl, name, utf8(name, value(name)?)?)?,
            "--journal-retention" => set(&mut a.journal_retention, name, utf8(name, value(name)?)?)?,
            "--journal-max-bytes" => set(&mut a.journal_max_bytes, name, utf8(name, value(name)?)?)?,
            "--header-timeout" => set(&mut a.header_timeout, name, utf8(name, value(name)?)?)?,
            "--body-timeout" => set(&mut a.body_timeout, name, utf8(name, value(name)?)?)?,
            "--idle-timeout" => set(&mut a.idle_timeout, name, utf8(name, value(name)?)?)?,
            "--max-connections" => set(&mut a.max_connections, name, utf8(name, value(name)?)?)?,
            "--shutdown-timeout" => set(&mut a.shutdown_timeout, name, utf8(name, value(name)?)?)?,
            "--log-format" => {
                let v = utf8(name, value(name)?)?;
                let format = v.parse().map_err(|e| format!("'--log-format': {e}"))?;
                set(&mut a.log_format, name, format)?
            }
            "-q" | "--quiet" | "--help" | "--version" | "--input-schema" => {
                return Err(format!("'{name}' takes no value"))
            }
            _ if name.starts_with('-') && name != "-" => return Err(format!("unknown option '{name}'")),
            _ => return Err(format!("unexpected argument '{s}'")),
        }
    }
    if a.serve {
        return serve_args(a);
    }
    let serve_only = [
        ("--addr", a.addr.is_some()),
        ("--wait-timeout", a.wait_timeout.is_some()),
        ("--body-limit", a.body_limit.is_some()),
        ("--allowed-host", !a.allowed_hosts.is_empty()),
        ("--auth-token-env", a.auth_token_env.is_some()),
        ("--max-running", a.max_running.is_some()),
        ("--idempotency-ttl", a.idempotency_ttl.is_some()),
        ("--journal-retention", a.journal_retention.is_some()),
        ("--journal-max-bytes", a.journal_max_bytes.is_some()),
        ("--header-timeout", a.header_timeout.is_some()),
        ("--body-timeout", a.body_timeout.is_some()),
        ("--idle-timeout", a.idle_timeout.is_some()),
        ("--max-connections", a.max_connections.is_some()),
        ("--shutdown-timeout", a.shutdown_timeout.is_some()),
    ];
    if let Some((flag, _)) = serve_only.iter().find(|(_, given)| *given) {
        return Err(format!("'{flag}' is only for 'serve'"));
    }
    if a.input.is_some() && a.input_file.is_some() {
        return Err("'--input' and '--input-file' cannot be used together".into());
    }
    if let Some(file) = a.test.take() {
        let other = [
            ("--input", a.input.is_some()),
            ("--input-file", a.input_file.is_some()),
            ("--journal-dir", a.journal_dir.is_some()),
            ("--correlation-id", a.correlation_id.is_some()),
            ("--log-format", a.log_format.is_some()),
        ];
        if let Some((flag, _)) = other.iter().find(|(_, given)| *given) {
            return Err(format!("'--test' and '{flag}' cannot be used together"));
        }
        return Ok(Command::Test(file));
    }
    Ok(Command::Run(a))
}

/// Checks and converts the options of `serve`.
fn serve_args(a: RunArgs) -> Result<Command, String> {
    let other = [
        ("--input", a.input.is_some()),
        ("--input-file", a.input_file.is_some()),
        ("--correlation-id", a.correlation_id.is_some()),
        ("--test", a.test.is_some()),
    ];
    if let Some((flag, _)) = other.iter().find(|(_, given)| *given) {
        return Err(format!("'serve' and '{flag}' cannot be used together"));
    }
    let addr = a.addr.as_deref().unwrap_or(DEFAULT_ADDR);
    let addr = addr.parse().map_err(|_| format!("'--addr' needs an address like {DEFAULT_ADDR}, not '{addr}'"))?;
    let wait_timeout = match &a.wait_timeout {
        Some(t) => crate::policy::parse_duration(t)
            .map_err(|_| format!("'--wait-timeout' needs a duration like 30s or 500ms, not '{t}'"))?,
        None => DEFAULT_WAIT_TIMEOUT,
    };
    let body_limit = match &a.body_limit {
        Some(b) => parse_size(b)
            .ok_or_else(|| format!("'--body-limit' needs a size like 1048576, 64KiB or 1MiB, not '{b}'"))?,
        None => DEFAULT_BODY_LIMIT,
    };
    let max_running = match &a.max_running {
        Some(n) => n
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("'--max-running' needs a positive whole number like 64, not '{n}'"))?,
        None => DEFAULT_MAX_RUNNING,
    };
    let idempotency_ttl = match &a.idempotency_ttl {
        Some(t) => crate::policy::parse_duration(t)
            .map_err(|_| format!("'--idempotency-ttl' needs a duration like 24h or 30m, not '{t}'"))?,
        None => DEFAULT_IDEMPOTENCY_TTL,
    };
    if let Some(var) = &a.auth_token_env {
        // Checked here, so that a token that is not there is a usage error.
        if std::env::var(var).map_or(true, |t| t.trim().is_empty()) {
            return Err(format!(
                "'--auth-token-env {var}': the variable is not set or empty; set it to the token clients must send"
            ));
        }
    }
    let max_age = match a.journal_retention.as_deref().map(str::trim) {
        Some("off") => None,
        Some(t) => Some(parse_retention(t).ok_or_else(|| {
            format!("'--journal-retention' needs a duration like 7d, 12h or 30m, or 'off', not '{t}'")
        })?),
        None => Some(DEFAULT_JOURNAL_RETENTION),
    };
    let max_bytes =
        match a.journal_max_bytes.as_deref().map(str::trim) {
            Some("off") => None,
            Some(b) => Some(parse_size(b).map(|n| n as u64).ok_or_else(|| {
                format!("'--journal-max-bytes' needs a size like 10GiB or 500MiB, or 'off', not '{b}'")
            })?),
            None => Some(DEFAULT_JOURNAL_MAX_BYTES),
        };
    // Connection timeouts must be positive: zero would close every connection.
    let timeout = |flag: &str, given: &Option<String>, default, zero_ok: bool| match given {
        Some(t) => match crate::policy::parse_duration(t) {
            Ok(d) if zero_ok || !d.is_zero() => Ok(d),
            _ => Err(format!(
                "'{flag}' needs a duration like 10s or 500ms{}, not '{t}'",
                if zero_ok { "" } else { " (more than zero)" }
            )),
        },
        None => Ok(default),
    };
    let header_timeout = timeout("--header-timeout", &a.header_timeout, DEFAULT_HEADER_TIMEOUT, false)?;
    let body_timeout = timeout("--body-timeout", &a.body_timeout, DEFAULT_BODY_TIMEOUT, false)?;
    let idle_timeout = timeout("--idle-timeout", &a.idle_timeout, DEFAULT_IDLE_TIMEOUT, false)?;
    // Zero: journal what is running as cancelled at once, without waiting.
    let shutdown_timeout = timeout("--shutdown-timeout", &a.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT, true)?;
    let max_connections = match &a.max_connections {
        Some(n) => n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("'--max-connections' needs a number of connections, 1 or more, not '{n}'"))?,
        None => DEFAULT_MAX_CONNECTIONS,
    };
    Ok(Command::Serve(ServeArgs {
        addr,
        journal_dir: a.journal_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_JOURNAL_DIR)),
        wait_timeout,
        body_limit,
        retention: crate::journal::Retention { max_age, max_bytes },
        header_timeout,
        body_timeout,
        idle_timeout,
        max_connections,
        shutdown_timeout,
        quiet: a.quiet,
        log_format: a.log_format,
        allowed_hosts: a.allowed_hosts,
        auth_token_env: a.auth_token_env,
        max_running,
        idempotency_ttl,
    }))
}

/// A retention age: `7d` (days), or what [`crate::policy::parse_duration`]
/// reads (`12h`, `30m`, `0s`).
fn parse_retention(s: &str) -> Option<std::time::Duration> {
    match s.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => {
            days.parse::<u64>().ok()?.checked_mul(86_400).map(std::time::Duration::from_secs)
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

fn set<T>(slot: &mut Option<T>, flag: &str, value: T) -> Result<(), String> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(format!("'{flag}' given more than once")),
    }
}

/// The program's name for help and usage: the file name it was run as, else the workflow id.
fn bin_name(arg0: Option<&OsString>, workflow_id: &str) -> String {
    arg0.map(Path::new)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| workflow_id.to_owned())
}

/// Where the input came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Flag,
    File(PathBuf),
    Stdin,
    /// Nothing given: `{}`.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("--input"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Stdin => f.write_str("standard input"),
            Source::Default => f.write_str("the default input"),
        }
    }
}

fn read_input(args: &RunArgs, stdin: Option<&mut dyn Read>) -> Result<(String, Source), String> {
    if let Some(text) = &args.input {
        return Ok((text.clone(), Source::Flag));
    }
    let read_stdin = |stdin: Option<&mut dyn Read>| -> Result<(String, Source), String> {
        let Some(stdin) = stdin else {
            return Ok(("{}".into(), Source::Default));
        };
        let mut text = String::new();
        stdin.read_to_string(&mut text).map_err(|e| format!("cannot read the input from standard input: {e}"))?;
        if text.trim().is_empty() {
            return Ok(("{}".into(), Source::Default));
        }
        Ok((text, Source::Stdin))
    };
    match &args.input_file {
        Some(p) if p.as_os_str() == "-" => read_stdin(stdin),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => Ok((text, Source::File(p.clone()))),
            Err(e) => Err(format!("cannot read the input file {}: {e}", p.display())),
        },
        None => read_stdin(stdin),
    }
}

/// Parses the input into `I`; the error is located by a JSON pointer (a value
/// that does not fit) or by `line:column` (malformed JSON).
fn parse_input<I: DeserializeOwned>(text: &str, source: &Source) -> Result<I, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let input: I = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_data() {
            locate(e.path(), e.inner()).to_string()
        } else {
            syntax_error(e.inner(), source)
        }
    })?;
    de.end().map_err(|e| syntax_error(&e, source))?;
    Ok(input)
}

fn syntax_error(e: &serde_json::Error, source: &Source) -> String {
    format!("invalid JSON in {source} at {}:{}: {}", e.line(), e.column(), one_line(&strip_position(e)))
}

/// serde_json's message without its ` at line L column C` suffix.
fn strip_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(m) => m.to_owned(),
        None => full,
    }
}

/// The field a `missing field` / `unknown field` message is about: the error
/// is raised on the object, and the pointer should name the field.
fn field_named(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("missing field `").or_else(|| msg.strip_prefix("unknown field `"))?;
    rest.split_once('`').map(|(field, _)| field)
}

/// Parses an input given as a JSON value (the server's request body) into
/// `I`, located as [`parse_input`] locates it.
#[cfg(feature = "server")]
pub(crate) fn parse_input_value<I: DeserializeOwned>(value: &Value) -> Result<I, InputError> {
    serde_path_to_error::deserialize(value).map_err(|e| locate(e.path(), e.inner()))
}

/// The pointer and message of a data error at `path`.
fn locate(path: &serde_path_to_error::Path, e: &serde_json::Error) -> InputError {
    let pointer = json_pointer(path);
    let msg = strip_position(e);
    // serde_path_to_error already ends the path with an unknown
    // field's key, but not with a missing one's.
    let pointer = match field_named(&msg).map(|f| format!("/{}", escape_pointer(f))) {
        Some(field) if !pointer.ends_with(&field) => pointer + &field,
        _ => pointer,
    };
    InputError { pointer, message: one_line(&msg) }
}

/// RFC 6901 pointer of a serde path (`""` for the whole document).
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut p = String::new();
    for seg in path {
        p.push('/');
        match seg {
            Segment::Seq { index } => {
                let _ = write!(p, "{index}");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => p.push_str(&escape_pointer(key)),
            Segment::Unknown => p.push('?'),
        }
    }
    p
}

pub(crate) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `text` on one line: line breaks and other control characters escaped.
pub(crate) fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn pretty<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(v)
}

/// The human line of a failed execution (after `error: `).
fn describe_error(e: &ExecutionError) -> String {
    let msg = one_line(&e.message);
    match &e.step {
        Some(step) => format!("step `{step}` failed ({}, attempt {}): {msg}", e.kind, e.attempt),
        None => format!("execution failed ({}): {msg}", e.kind),
    }
}

/// A small example of the input for `--help`, from the schema: `examples`,
/// `default`, `const` or the first `enum` value when given, else the required
/// properties with placeholders.
fn example_value(root: &Value, schema: &Value, depth: usize) -> Value {
    let Some(obj) = schema.as_object() else {
        return Value::Null;
    };
    if depth > 8 {
        return Value::Null;
    }
    if let Some(v) = obj.get("examples").and_then(Value::as_array).and_then(|a| a.first()) {
        return v.clone();
    }
    for key in ["default", "const"] {
        if let Some(v) = obj.get(key) {
            return v.clone();
        }
    }
    if let Some(v) = obj.get("enum").and_then(Value::as_array).and_then(|a| a.first()) {
        return v.clone();
    }
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        let resolved = target.strip_prefix('#').and_then(|p| root.pointer(p));
        return resolved.map_or(Value::Null, |s| example_value(root, s, depth + 1));
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(alts) = obj.get(key).and_then(Value::as_array) {
            let pick = alts.iter().find(|s| s.get("type").and_then(Value::as_str) != Some("null")).or(alts.first());
            if let Some(s) = pick {
                return example_value(root, s, depth + 1);
            }
        }
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ => "",
    };
    match ty {
        "object" => {
            let props = obj.get("properties").and_then(Value::as_object);
            let mut out = serde_json::Map::new();
            for name in obj.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                let sub = props.and_then(|p| p.get(name)).map_or(Value::Null, |s| example_value(root, s, depth + 1));
                out.insert(name.to_owned(), sub);
            }
            Value::Object(out)
        }
        "array" => Value::Array(Vec::new()),
        "string" => Value::String("...".into()),
        "integer" | "number" => Value::from(0),
        "boolean" => Value::Bool(false),
        _ => Value::Null,
    }
}

/// `s` as one POSIX shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// How the execution thread ended.
enum Ended<O> {
    /// The execution reached its terminal event.
    Finished(Result<O, ExecutionError>),
    /// A second interrupt: the execution was left unfinished.
    Abandoned,
    /// The execution could not be started (runtime or journal).
    NotStarted(String),
}

/// Everything the execution thread owns.
struct Worker<S, O> {
    workflow: Arc<Workflow<S, O>>,
    state: S,
    store: FileStore,
    ids: ExecutionIds,
    input: Value,
    quiet: bool,
    interrupts: Option<UnboundedReceiver<()>>,
    start_paused: bool,
    progress: Progress,
}

impl<S, O> Worker<S, O>
where
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    fn run(self) -> Ended<O> {
        let mut builder = tokio::runtime::Builder::new_current_thread();
        builder.enable_all();
        if self.start_paused {
            // Only `Program::start_paused` (feature `testing`) sets it.
            #[cfg(feature = "test-mode")]
            builder.start_paused(true);
        }
        let rt = match builder.build() {
            Ok(rt) => rt,
            Err(e) => return Ended::NotStarted(format!("cannot start the tokio runtime: {e}")),
        };
        let ended = rt.block_on(self.drive());
        // Tasks left (the Ctrl-C listener, an abandoned execution) are dropped
        // without waiting, as are blocking tasks an agent may have started.
        rt.shutdown_background();
        ended
    }

    async fn drive(self) -> Ended<O> {
        let Worker { workflow, state, store, ids, input, quiet, interrupts, mut progress, .. } = self;
        let dir = store.dir().to_owned();
        let runtime = Runtime::new(store);
        let mut bus = (!quiet).then(|| runtime.bus().subscribe());
        let mut interrupts = interrupts.unwrap_or_else(signals);
        let opts = ExecutionOptions {
            execution_id: Some(ids.execution_id),
            correlation_id: Some(ids.correlation_id),
            input: Some(input),
            cancel: Some(CancellationToken::new()),
            ..ExecutionOptions::default()
        };
        let mut handle = match runtime.start(workflow, state, opts) {
            Ok(h) => h,
            Err(e) => return Ended::NotStarted(format!("cannot create the journal in {}: {e}", dir.display())),
        };
        let mut interruptible = true;
        let mut cancelling = false;
        loop {
            tokio::select! {
                biased;
                result = &mut handle => {
                    if let Some(bus) = &mut bus {
                        while let Some(m) = bus.try_recv() {
                            progress.message(m);
                        }
                    }
                    return Ended::Finished(result);
                }
                signal = interrupts.recv(), if interruptible => match signal {
                    None => interruptible = false,
                    Some(()) if cancelling => return Ended::Abandoned,
                    Some(()) => {
                        cancelling = true;
                        handle.cancel();
                        progress.send(format!("{PREFIX} cancelling; press Ctrl-C again to exit at once"));
                    }
                },
                Some(m) = next_message(&mut bus) => progress.message(m),
            }
        }
    }
}

/// One `()` per Ctrl-C or SIGTERM (a container's stop): both cancel
/// cooperatively, so the journal ends and telemetry is flushed.
pub(crate) fn signals() -> UnboundedReceiver<()> {
    let (tx, rx) = unbounded_channel();
    let ctrl_c = tx.clone();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if ctrl_c.send(()).is_err() {
                break;
            }
        }
    });
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        tokio::spawn(async move {
            while term.recv().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

async fn next_message(bus: &mut Option<Subscriber>) -> Option<BusMessage> {
    match bus {
        Some(b) => b.recv().await,
        None => std::future::pending().await,
    }
}

/// Turns bus events into progress lines and hands them to the writing
/// thread without ever waiting.
struct Progress {
    tx: SyncSender<String>,
    dropped: u64,
    journal: PathBuf,
    /// The last failed attempt of each step, for the retry line.
    failed_attempts: HashMap<Arc<str>, StepError>,
}

impl Progress {
    fn new(tx: SyncSender<String>, journal: PathBuf) -> Self {
        Progress { tx, dropped: 0, journal, failed_attempts: HashMap::new() }
    }

    fn send(&mut self, line: String) {
        if self.dropped > 0 {
            let note = format!("{PREFIX} {} progress lines dropped (standard error is slow)", self.dropped);
            match self.tx.try_send(note) {
                Ok(()) => self.dropped = 0,
                Err(_) => {
                    self.dropped += 1;
                    return;
                }
            }
        }
        match self.tx.try_send(line) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => self.dropped += 1,
        }
    }

    fn message(&mut self, m: BusMessage) {
        match m {
            BusMessage::Event(ev) => {
                if let Some(line) = self.line(&ev) {
                    self.send(line);
                }
            }
            BusMessage::Missed(n) => self.send(format!("{PREFIX} {n} events missed (progress fell behind)")),
        }
    }

    fn line(&mut self, ev: &JournalEvent) -> Option<String> {
        let step = ev.step_id.as_deref().unwrap_or("-");
        let ms = ev.duration_ms.unwrap_or(0);
        let error = |ev: &JournalEvent| ev.error.as_deref().map(|e| (e.kind, one_line(&e.message)));
        Some(match ev.event {
            EventKind::ExecutionStarted => format!(
                "{PREFIX} execution {} of {} {} started; journal {}",
                ev.execution_id,
                ev.workflow_id().unwrap_or("-"),
                ev.workflow_version().unwrap_or("-"),
                self.journal.display()
            ),
            EventKind::StepStarted => format!("{PREFIX} step {step} started"),
            EventKind::StepAttemptStarted => return None,
            EventKind::StepAttemptFailed => {
                if let (Some(id), Some(e)) = (&ev.step_id, &ev.error) {
                    self.failed_attempts.insert(id.clone(), (**e).clone());
                }
                return None;
            }
            EventKind::StepRetryScheduled => {
                let delay = ev.delay_ms.unwrap_or(0);
                let failed = ev.step_id.as_ref().and_then(|id| self.failed_attempts.remove(id));
                match failed {
                    Some(e) => format!(
                        "{PREFIX} step {step} attempt {} failed ({}): {}; retrying in {delay} ms",
                        e.attempt,
                        e.kind,
                        one_line(&e.message)
                    ),
                    None => format!("{PREFIX} step {step} retrying in {delay} ms"),
                }
            }
            EventKind::StepSucceeded => {
                let attempts = ev.attempt.unwrap_or(1);
                let tries = if attempts > 1 { format!(" (attempt {attempts})") } else { String::new() };
                format!("{PREFIX} step {step} succeeded in {ms} ms{tries}")
            }
            EventKind::StepFailed => {
                if let Some(id) = &ev.step_id {
                    self.failed_attempts.remove(id);
                }
                let attempt = ev.attempt.unwrap_or(0);
                match error(ev) {
                    Some((kind, msg)) => {
                        format!("{PREFIX} step {step} failed ({kind}, attempt {attempt}) in {ms} ms: {msg}")
                    }
                    None => format!("{PREFIX} step {step} failed in {ms} ms"),
                }
            }
            EventKind::StepCancelled => format!("{PREFIX} step {step} cancelled after {ms} ms"),
            EventKind::StepSkipped => format!("{PREFIX} step {step} skipped"),
            EventKind::CircuitOpened | EventKind::CircuitHalfOpened | EventKind::CircuitClosed => {
                let what = match ev.event {
                    EventKind::CircuitOpened => "opened",
                    EventKind::CircuitHalfOpened => "half-opened",
                    _ => "closed",
                };
                format!(
                    "{PREFIX} circuit breaker of agent {} {what} (step {step})",
                    ev.agent_id.as_deref().unwrap_or("-")
                )
            }
            EventKind::ExecutionCompleted => format!("{PREFIX} execution completed in {ms} ms"),
            EventKind::ExecutionFailed => format!("{PREFIX} execution failed after {ms} ms"),
            EventKind::ExecutionCancelled => format!("{PREFIX} execution cancelled after {ms} ms"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(list: &[&str]) -> Result<Command, String> {
        parse_args(std::iter::once("prog").chain(list.iter().copied()).map(OsString::from).collect())
    }

    #[test]
    fn parses_flags_in_both_forms() {
        let Ok(Command::Run(a)) = args(&["--input={\"a\":1}", "--journal-dir", "j", "--correlation-id=c", "-q"]) else {
            panic!("not a run")
        };
        assert_eq!(a.input.as_deref(), Some("{\"a\":1}"));
        assert_eq!(a.journal_dir, Some(PathBuf::from("j")));
        assert_eq!(a.correlation_id.as_deref(), Some("c"));
        assert!(a.quiet);
    }

    #[test]
    fn rejects_bad_usage() {
        let err = |l: &[&str]| args(l).unwrap_err();
        assert_eq!(err(&["--frob"]), "unknown option '--frob'");
        assert_eq!(err(&["--input"]), "'--input' needs a value");
        assert_eq!(err(&["--journal-dir", "--quiet"]), "'--journal-dir' needs a value");
        assert_eq!(err(&["--quiet=yes"]), "'--quiet' takes no value");
        assert_eq!(err(&["--input", "{}", "--input", "{}"]), "'--input' given more than once");
        assert_eq!(
            err(&["--input", "{}", "--input-file", "x"]),
            "'--input' and '--input-file' cannot be used together"
        );
        assert_eq!(err(&["run"]), "unexpected argument 'run'");
        assert_eq!(err(&["--quiet", "serve"]), "unexpected argument 'serve'");
        assert_eq!(err(&["--addr", "127.0.0.1:1"]), "'--addr' is only for 'serve'");
        assert_eq!(err(&["serve", "--input", "{}"]), "'serve' and '--input' cannot be used together");
        assert_eq!(
            err(&["serve", "--addr", "localhost"]),
            "'--addr' needs an address like 127.0.0.1:8080, not 'localhost'"
        );
        assert!(err(&["serve", "--body-limit", "0"]).starts_with("'--body-limit' needs a size"));
        assert!(err(&["serve", "--wait-timeout", "soon"]).starts_with("'--wait-timeout' needs a duration"));
        let Ok(Command::Serve(s)) = args(&["serve", "--body-limit=64KiB", "--wait-timeout", "250ms", "-q"]) else {
            panic!("not serve")
        };
        assert_eq!(s.addr.to_string(), DEFAULT_ADDR);
        assert_eq!((s.body_limit, s.wait_timeout, s.quiet), (65536, std::time::Duration::from_millis(250), true));
        assert!(matches!(args(&["--input", "{}", "--help"]), Ok(Command::Help)));
        assert!(matches!(args(&["-V"]), Ok(Command::Version)));
    }

    #[test]
    fn parses_journal_retention() {
        use crate::journal::Retention;
        let serve = |l: &[&str]| match args(l) {
            Ok(Command::Serve(s)) => s.retention,
            other => panic!("{other:?}"),
        };
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(
            serve(&["serve"]),
            Retention { max_age: Some(DEFAULT_JOURNAL_RETENTION), max_bytes: Some(DEFAULT_JOURNAL_MAX_BYTES) }
        );
        assert_eq!(DEFAULT_JOURNAL_RETENTION, 7 * day);
        assert_eq!(
            serve(&["serve", "--journal-retention", "2d", "--journal-max-bytes=3GiB"]),
            Retention { max_age: Some(2 * day), max_bytes: Some(3 << 30) }
        );
        assert_eq!(
            serve(&["serve", "--journal-retention=0s", "--journal-max-bytes", "off"]),
            Retention { max_age: Some(std::time::Duration::ZERO), max_bytes: None }
        );
        assert_eq!(serve(&["serve", "--journal-retention", "off"]).max_age, None);
        let err = |l: &[&str]| args(l).unwrap_err();
        assert!(err(&["serve", "--journal-retention", "a week"]).starts_with("'--journal-retention' needs a duration"));
        assert!(err(&["serve", "--journal-max-bytes", "0"]).starts_with("'--journal-max-bytes' needs a size"));
        assert_eq!(err(&["--journal-max-bytes", "1GiB"]), "'--journal-max-bytes' is only for 'serve'");
    }

    #[test]
    fn connection_and_shutdown_flags_are_parsed_with_their_defaults() {
        let ms = std::time::Duration::from_millis;
        let err = |l: &[&str]| args(l).unwrap_err();
        let Ok(Command::Serve(s)) = args(&["serve"]) else { panic!("not serve") };
        assert_eq!(
            (s.header_timeout, s.body_timeout, s.idle_timeout, s.max_connections, s.shutdown_timeout),
            (
                DEFAULT_HEADER_TIMEOUT,
                DEFAULT_BODY_TIMEOUT,
                DEFAULT_IDLE_TIMEOUT,
                DEFAULT_MAX_CONNECTIONS,
                DEFAULT_SHUTDOWN_TIMEOUT
            )
        );
        let given = [
            "serve",
            "--header-timeout",
            "200ms",
            "--body-timeout=300ms",
            "--idle-timeout",
            "2m",
            "--max-connections",
            "2",
            "--shutdown-timeout",
            "0s",
        ];
        let Ok(Command::Serve(s)) = args(&given) else { panic!("not serve") };
        assert_eq!(
            (s.header_timeout, s.body_timeout, s.idle_timeout, s.max_connections, s.shutdown_timeout),
            (ms(200), ms(300), ms(120_000), 2, ms(0))
        );
        for flag in ["--header-timeout", "--body-timeout", "--idle-timeout"] {
            assert_eq!(
                err(&["serve", flag, "0s"]),
                format!("'{flag}' needs a duration like 10s or 500ms (more than zero), not '0s'")
            );
            assert!(err(&["serve", flag, "soon"]).starts_with(&format!("'{flag}' needs a duration")));
            assert_eq!(err(&[flag, "1s"]), format!("'{flag}' is only for 'serve'"));
        }
        assert_eq!(
            err(&["serve", "--shutdown-timeout", "later"]),
            "'--shutdown-timeout' needs a duration like 10s or 500ms, not 'later'"
        );
        for bad in ["0", "-1", "many"] {
            assert_eq!(
                err(&["serve", "--max-connections", bad]),
                format!("'--max-connections' needs a number of connections, 1 or more, not '{bad}'")
            );
        }
        assert_eq!(err(&["--max-connections", "2"]), "'--max-connections' is only for 'serve'");
    }

    #[test]
    fn pointers_are_escaped() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            #[serde(rename = "a/b~c")]
            x: Vec<u32>,
        }
        let e = parse_input::<T>(r#"{"a/b~c": [1, "2"]}"#, &Source::Flag).unwrap_err();
        assert_eq!(e, r#"invalid input at /a~1b~0c/1: invalid type: string "2", expected u32"#);
        let e = parse_input::<T>("true", &Source::Flag).unwrap_err();
        assert_eq!(e, "invalid input at the top level: invalid type: boolean `true`, expected struct T");
        let e = parse_input::<T>("{}", &Source::Flag).unwrap_err();
        assert_eq!(e, "invalid input at /a~1b~0c: missing field `a/b~c`");
        let e = parse_input::<T>(r#"{"a/b~c": []} x"#, &Source::Stdin).unwrap_err();
        assert_eq!(e, "invalid JSON in standard input at 1:15: trailing characters");
    }

    #[test]
    fn example_follows_the_schema() {
        let schema = json!({
            "type": "object",
            "required": ["id", "n", "tags", "kind", "inner", "opt"],
            "properties": {
                "id": {"type": "string"},
                "n": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "kind": {"enum": ["a", "b"]},
                "inner": {"$ref": "#/$defs/Inner"},
                "opt": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
                "skipped": {"type": "string"}
            },
            "$defs": {"Inner": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number", "default": 1.5}}}}
        });
        assert_eq!(
            example_value(&schema, &schema, 0),
            json!({"id": "...", "n": 0, "tags": [], "kind": "a", "inner": {"x": 1.5}, "opt": false})
        );
        assert_eq!(shell_quote(r#"{"a":"it's"}"#), r#"'{"a":"it'\''s"}'"#);
    }

    #[test]
    fn messages_stay_on_one_line() {
        assert_eq!(one_line("a\nb\tc"), r"a\nb\tc");
        let e = StepError::new(ErrorKind::Timeout, "slow\nvery", 3).with_step("fetch".into());
        assert_eq!(describe_error(&e), r"step `fetch` failed (timeout, attempt 3): slow\nvery");
    }
}
