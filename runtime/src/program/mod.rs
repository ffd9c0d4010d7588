//! The generated program: everything a compiled workflow's `main` does, so
//! that generated code is one call.
//!
//! ```
//! use orchestr8_runtime::codegen::*;
//! # use serde::{Deserialize, Serialize};
//! # struct Greet;
//! # impl Agent for Greet {
//! #     type Input = String;
//! #     type Output = String;
//! #     fn id(&self) -> &str { "greet" }
//! #     fn version(&self) -> &str { "1.0.0" }
//! #     async fn run(&self, _: &AgentContext<'_>, name: String) -> Result<String, AgentError> {
//! #         Ok(format!("Hello, {name}!"))
//! #     }
//! # }
//!
//! #[derive(Deserialize, Serialize)]
//! struct Input { name: String }
//! struct State { input: Input, greet: OnceLock<String> }
//!
//! fn program() -> Program<Input, State, String> {
//!     let greet = AgentStep::new(
//!         "greet",
//!         Arc::new(Greet),
//!         |s: &State| Ok(s.input.name.clone()),
//!         |s: &State, out| store(&s.greet, "greet", out),
//!     );
//!     let workflow = Workflow::new(
//!         WorkflowInfo::new("hello", "0.1.0", "sha256:example"),
//!         Node::sequence([greet.node()]),
//!         |s: &State| Ok(slot(&s.greet, "greet")?.clone()),
//!     );
//!     Program::new(Arc::new(workflow), |input: Input, _ids: &ExecutionIds| State { input, greet: OnceLock::new() })
//!         .about("Greets someone.")
//!         .input_schema(serde_json::json!({ "type": "object", "required": ["name"] }))
//! }
//!
//! // A generated `main.rs` is `fn main() -> ExitCode { program().main() }`;
//! // `run_with` is the same with the arguments and streams given.
//! let journals = tempfile::tempdir()?;
//! let args = ["hello", "--quiet", "--input", r#"{"name": "Ada"}"#, "--journal-dir"];
//! let mut args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
//! args.push(journals.path().into());
//! let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
//! let code = program().run_with(args, std::io::empty(), &mut stdout, &mut stderr);
//! assert_eq!(code, orchestr8_runtime::program::EXIT_COMPLETED);
//! assert_eq!(String::from_utf8(stdout)?, "\"Hello, Ada!\"\n");
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
//!
//! The behaviour is the contract's (`docs/spec/workflow-v1.md`, "The generated
//! program"):
//!
//! - the input comes from `--input JSON`, `--input-file PATH` (`-` for
//!   standard input) or standard input; when neither flag is given and
//!   standard input is a terminal, or standard input is empty, the input is
//!   `{}`. It is parsed into the typed input with every error located: a JSON
//!   pointer for a value that does not fit (`invalid input at /count: invalid
//!   type: string "x", expected u32`, and the missing or unknown field itself
//!   for `missing field` / `unknown field`), `line:column` for malformed JSON;
//! - `--journal-dir DIR` (default
//!   [`DEFAULT_JOURNAL_DIR`](crate::journal::DEFAULT_JOURNAL_DIR)),
//!   `--correlation-id ID` (default: the execution id), `--quiet`, `--help`,
//!   `--version`, `--input-schema`;
//! - standard output carries nothing but the output, as pretty JSON and a
//!   newline; progress (one line per step started, succeeded, failed, retried,
//!   from the event bus) and errors go to standard error;
//! - exit status: 0 completed, 1 failed (a human line, then the contract's
//!   error JSON `{"kind","message","step","attempt"}` on its own line, both on
//!   standard error), 2 bad input or usage, 130 cancelled. The first Ctrl-C
//!   or SIGTERM (`signals`, shared with `serve`) cancels the execution
//!   cooperatively (running agents see their token; the journal ends with
//!   `execution.cancelled`); a second one exits at once, leaving a journal
//!   without a terminal event (read back as interrupted).
//!
//! `PROGRAM serve [OPTIONS]` serves the workflow over HTTP instead (the
//! `server` module, behind the cargo feature `server`; without it, `serve`
//! exits 2 and says how to build it); `PROGRAM completions SHELL` prints a
//! completion script.
//!
//! Arguments are parsed by clap (`args`), like the `orchestr8` CLI's: help,
//! errors with suggestions, completions. Its cost, measured for issue 16
//! (a clean debug build of the runtime with `server`, 2 cores): about 6-7 s
//! of CPU over 67 s (clap's builder, `clap_complete` and derive), under 2 s
//! of it for derive; no `color`, no `wrap_help` (the help is wrapped by hand).
//!
//! The execution runs on a current-thread tokio runtime on a thread of its
//! own; the calling thread only writes progress lines. Progress travels over
//! a bounded channel that the execution side never waits on (lines that do
//! not fit are counted and reported), so a slow or blocked standard error
//! never slows the execution.
//!
//! The modules, one concern each: `args` (the command line and its
//! defaults), `help`, `input` (reading the input and locating its errors),
//! `bounds` (the input schema's bounds), `run` (a plain run and its worker
//! thread), `signals` (Ctrl-C and SIGTERM, for `run` and `serve` alike),
//! `progress` (progress lines), `log` (the program's own messages), `serve`
//! (the program's side of the server) and `test_mode` (`--test`).

use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::Level;

use crate::executor::Workflow;
use crate::telemetry::{LogFormat, Telemetry};

mod args;
mod bounds;
mod help;
mod input;
mod log;
mod progress;
mod resume;
mod run;
mod serve;
mod signals;
mod test_mode;

#[cfg(feature = "server")]
pub(crate) use args::ServeArgs;
use args::{bin_name, Command};
pub use args::{
    DEFAULT_ADDR, DEFAULT_BODY_LIMIT, DEFAULT_IDEMPOTENCY_TTL, DEFAULT_JOURNAL_MAX_BYTES, DEFAULT_JOURNAL_RETENTION,
    DEFAULT_MAX_RUNNING, DEFAULT_WAIT_TIMEOUT,
};
#[cfg(feature = "server")]
pub(crate) use bounds::number_key;
pub(crate) use bounds::{checked_json, InputError};
pub(crate) use input::parse_input_value;
pub(crate) use input::{escape_pointer, one_line};
use input::{parse_input, strip_position, syntax_error, Source};
use log::{log_format, say};
use run::describe_error;
#[cfg(feature = "server")]
pub(crate) use signals::signals;

/// Exit status of a completed execution.
pub const EXIT_COMPLETED: u8 = 0;
/// Exit status of a failed execution.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for bad input or bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of an execution suspended while steps wait for signals
/// (`PROGRAM signal` goes on with it).
pub const EXIT_SUSPENDED: u8 = 3;
/// Exit status of a cancelled execution (Ctrl-C).
pub const EXIT_CANCELLED: u8 = 130;

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

/// Everything the generated program is made of: the workflow, how to make
/// an execution's state from its input, and what `--help` and the schemas
/// say. The [module documentation](crate::program) has a whole program.
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

    /// Parses [`std::env::args_os`], runs, and returns the exit code: the
    /// whole of a generated crate's `main.rs`. It is the server's entry as
    /// well: `PROGRAM serve` (built with the runtime's `server` feature)
    /// serves the workflow over HTTP until Ctrl-C or SIGTERM.
    ///
    /// ```
    /// # mod generated { // compiled, not run: it would read this process's arguments
    /// # use orchestr8_runtime::codegen::*;
    /// # struct Greet;
    /// # impl Agent for Greet {
    /// #     type Input = String;
    /// #     type Output = String;
    /// #     fn id(&self) -> &str { "greet" }
    /// #     fn version(&self) -> &str { "1.0.0" }
    /// #     async fn run(&self, _: &AgentContext<'_>, name: String) -> Result<String, AgentError> { Ok(name) }
    /// # }
    /// # struct State { name: String, greet: OnceLock<String> }
    /// # fn program() -> Program<String, State, String> {
    /// #     let step = AgentStep::new("greet", Arc::new(Greet), |s: &State| Ok(s.name.clone()), |s: &State, o| store(&s.greet, "greet", o));
    /// #     let workflow = Workflow::new(WorkflowInfo::new("hello", "0.1.0", "sha256:x"), Node::sequence([step.node()]), |s: &State| Ok(slot(&s.greet, "greet")?.clone()));
    /// #     Program::new(Arc::new(workflow), |name: String, _: &ExecutionIds| State { name, greet: OnceLock::new() })
    /// #         .input_schema(serde_json::json!({ "type": "string", "minLength": 1 }))
    /// # }
    /// fn main() -> std::process::ExitCode {
    ///     program().main()
    /// }
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use orchestr8_runtime::codegen::*;
    /// # struct Greet;
    /// # impl Agent for Greet {
    /// #     type Input = String;
    /// #     type Output = String;
    /// #     fn id(&self) -> &str { "greet" }
    /// #     fn version(&self) -> &str { "1.0.0" }
    /// #     async fn run(&self, _: &AgentContext<'_>, name: String) -> Result<String, AgentError> { Ok(name) }
    /// # }
    /// # struct State { name: String, greet: OnceLock<String> }
    /// # fn program() -> Program<String, State, String> {
    /// #     let step = AgentStep::new("greet", Arc::new(Greet), |s: &State| Ok(s.name.clone()), |s: &State, o| store(&s.greet, "greet", o));
    /// #     let workflow = Workflow::new(WorkflowInfo::new("hello", "0.1.0", "sha256:x"), Node::sequence([step.node()]), |s: &State| Ok(slot(&s.greet, "greet")?.clone()));
    /// #     Program::new(Arc::new(workflow), |name: String, _: &ExecutionIds| State { name, greet: OnceLock::new() })
    /// #         .input_schema(serde_json::json!({ "type": "string", "minLength": 1 }))
    /// # }
    /// let (name, json) = program().check_input(r#""Ada""#).unwrap();
    /// assert_eq!((name.as_str(), json), ("Ada", serde_json::json!("Ada")));
    /// assert!(program().check_input("42").unwrap_err().contains("expected a string"));
    /// ```
    pub fn check_input(&self, text: &str) -> Result<(I, Value), String> {
        self.check_input_from(text, &Source::Flag)
    }

    fn check_input_from(&self, text: &str, source: &Source) -> Result<(I, Value), String> {
        check_value_from(text, source, self.input_schema.as_ref())
    }

    /// The same as [`main`](Self::main) with explicit arguments (the program
    /// name first, as from `args_os`), standard input and output streams.
    /// `stdin` is read only when neither `--input` nor `--input-file` is
    /// given. Installs a Ctrl-C handler for the execution (unless a test
    /// trigger was given), which stays installed afterwards.
    ///
    /// `serve` (with the runtime's `server` feature) is the same call; it
    /// answers on the address until the process is interrupted:
    ///
    /// ```no_run
    /// # use orchestr8_runtime::codegen::*;
    /// # struct Greet;
    /// # impl Agent for Greet {
    /// #     type Input = String;
    /// #     type Output = String;
    /// #     fn id(&self) -> &str { "greet" }
    /// #     fn version(&self) -> &str { "1.0.0" }
    /// #     async fn run(&self, _: &AgentContext<'_>, name: String) -> Result<String, AgentError> { Ok(name) }
    /// # }
    /// # struct State { name: String, greet: OnceLock<String> }
    /// # fn program() -> Program<String, State, String> {
    /// #     let step = AgentStep::new("greet", Arc::new(Greet), |s: &State| Ok(s.name.clone()), |s: &State, o| store(&s.greet, "greet", o));
    /// #     let workflow = Workflow::new(WorkflowInfo::new("hello", "0.1.0", "sha256:x"), Node::sequence([step.node()]), |s: &State| Ok(slot(&s.greet, "greet")?.clone()));
    /// #     Program::new(Arc::new(workflow), |name: String, _: &ExecutionIds| State { name, greet: OnceLock::new() })
    /// #         .input_schema(serde_json::json!({ "type": "string", "minLength": 1 }))
    /// # }
    /// let args = ["hello", "serve", "--addr", "127.0.0.1:8080", "--journal-dir", "/var/lib/hello"];
    /// let code = program().run_with(args.iter().map(Into::into).collect(), std::io::empty(), &mut std::io::stdout(), &mut std::io::stderr());
    /// std::process::exit(code.into());
    /// ```
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
        let info = self.workflow.info();
        let bin = bin_name(args.first(), &info.id);
        let mut cli = args::cli(&bin, &info.id, &info.version, self.help_text(&bin));
        let text = match args::parse(&mut cli, args) {
            // Help and version are clap's "errors" for standard output.
            Err(e) if !e.use_stderr() => e.render().to_string(),
            Err(e) => {
                let _ = write!(stderr, "{}", e.render());
                return EXIT_USAGE;
            }
            Ok(Command::InputSchema) => match &self.input_schema {
                Some(schema) => pretty(schema).unwrap_or_default() + "\n",
                None => {
                    let _ = writeln!(stderr, "error: this program was built without an input schema");
                    return EXIT_USAGE;
                }
            },
            Ok(Command::Completions(shell)) => {
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut cli, bin, &mut script);
                String::from_utf8_lossy(&script).into_owned()
            }
            Ok(Command::Run(args)) => {
                return self.with_telemetry(args.common.log_format, stderr, |p, format, stderr| {
                    p.execute(args, format, stdin, stdout, stderr)
                })
            }
            Ok(Command::Test(file)) => return test_mode::run(&self, &file, stdin, stdout, stderr),
            Ok(Command::Resume(args)) => {
                return self.with_telemetry(args.log_format, stderr, |p, format, stderr| {
                    p.resume(args, format, stdout, stderr)
                })
            }
            Ok(Command::Serve(args)) => {
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
}

/// Parses `text` into `T` and checks the bounds of `schema` its type cannot
/// hold; errors are located (a JSON pointer, or `line:column`).
fn check_value_from<T: DeserializeOwned + Serialize>(
    text: &str,
    source: &Source,
    schema: Option<&Value>,
) -> Result<(T, Value), String> {
    let value: T = parse_input(text, source)?;
    let json = checked_json(schema, &value).map_err(|e| e.to_string())?;
    Ok((value, json))
}

/// A signal's payload (`--data`, a request body, a test file's) as `T`,
/// checked against the bounds of `schema` its type cannot hold: the JSON to
/// journal, or where and why it does not fit.
pub(crate) fn check_payload<T: DeserializeOwned + Serialize>(
    payload: &Value,
    schema: &Value,
) -> Result<Value, InputError> {
    let typed: T = parse_input_value(payload)?;
    checked_json(Some(schema), &typed)
}

/// `--data`'s text as JSON; the error is located by `line:column`.
pub(crate) fn parse_payload(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| syntax_error(&e, &Source::Payload))
}

fn pretty<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(v)
}
