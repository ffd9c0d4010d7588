//! A plain run: the input read and checked, the execution on a thread of
//! its own (the worker), progress lines and the output written here.

use std::io::{Read, Write};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;
use tracing::Level;

use super::args::RunArgs;
use super::input::{one_line, read_input, Source};
use super::log::say;
use super::progress::{Progress, PREFIX, PROGRESS_CAPACITY};
use super::signals::signals;
use super::{pretty, ExecutionIds, Program, EXIT_CANCELLED, EXIT_COMPLETED, EXIT_FAILED, EXIT_SUSPENDED, EXIT_USAGE};
use crate::bus::{BusMessage, Subscriber};
use crate::error::{panic_message, ErrorKind, ExecutionError};
use crate::executor::{new_execution_id, ExecutionOptions, Runtime, Workflow};
use crate::journal::FileStore;
use crate::resume::Resume;
use crate::telemetry::LogFormat;

impl<I, S, O> Program<I, S, O>
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    pub(super) fn execute(
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
        let state = (self.make_state)(input, &ids);
        let store = FileStore::new(args.common.journal_dir);
        let quiet = args.common.quiet || format == LogFormat::Json;
        let note = (!quiet && source == Source::Default).then(|| format!("{PREFIX} no input given; using {{}}"));
        let begin = Begin::New { input: input_json };
        self.work(begin, ids, state, store, quiet, note, format, stdout, stderr)
    }

    /// Runs `begin` on the worker thread, writes its progress lines (after
    /// `note`) and its output, and returns the exit status.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn work(
        self,
        begin: Begin,
        ids: ExecutionIds,
        state: S,
        store: FileStore,
        quiet: bool,
        note: Option<String>,
        format: LogFormat,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> u8 {
        // The ids on the program's own last line, for JSON logs.
        let ids_fields = [("execution_id", ids.execution_id.clone()), ("correlation_id", ids.correlation_id.clone())];
        let (tx, rx) = sync_channel(PROGRESS_CAPACITY);
        // JSON logs come from the execution's spans; progress lines are for people.
        let mut progress = Progress::new(tx, store.path(&ids.execution_id));
        if let Some(note) = note {
            progress.send(note);
        }
        let worker = Worker {
            workflow: self.workflow,
            state,
            store,
            ids,
            begin,
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
            Ended::Finished(Err(e)) if e.kind == ErrorKind::Suspended => {
                let id = &ids_fields[0].1;
                let step = e.step.as_deref().unwrap_or("STEP");
                let msg = format!(
                    "suspended: execution {id} is {}; deliver a signal with `signal {id} {step} --data JSON`",
                    one_line(&e.message)
                );
                say(stderr, format, Level::INFO, &msg, None, &ids_fields);
                EXIT_SUSPENDED
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
            Ended::Refused(msg) => {
                say(stderr, format, Level::ERROR, &msg, None, &[]);
                EXIT_USAGE
            }
        }
    }
}

/// The human line of a failed execution (after `error: `).
pub(super) fn describe_error(e: &ExecutionError) -> String {
    let msg = one_line(&e.message);
    match &e.step {
        Some(step) => format!("step `{step}` failed ({}, attempt {}): {msg}", e.kind, e.attempt),
        None => format!("execution failed ({}): {msg}", e.kind),
    }
}

/// How the execution thread ended.
enum Ended<O> {
    /// The execution reached its terminal event.
    Finished(Result<O, ExecutionError>),
    /// A second interrupt: the execution was left unfinished.
    Abandoned,
    /// The execution could not be started (runtime or journal).
    NotStarted(String),
    /// The journal cannot be resumed by this program.
    Refused(String),
}

/// What the worker starts.
pub(super) enum Begin {
    /// A new execution of `input` (for its journal).
    New { input: Value },
    /// The rest of an execution, from its journal; `note` is said once
    /// the journal is reopened (a refused resume says only why).
    Resume { point: Box<Resume>, note: Option<String> },
}

/// Everything the execution thread owns.
struct Worker<S, O> {
    workflow: Arc<Workflow<S, O>>,
    state: S,
    store: FileStore,
    ids: ExecutionIds,
    begin: Begin,
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
        let Worker { workflow, state, store, ids, begin, quiet, interrupts, mut progress, .. } = self;
        let dir = store.dir().to_owned();
        let runtime = Runtime::new(store);
        let mut bus = (!quiet).then(|| runtime.bus().subscribe());
        let mut interrupts = interrupts.unwrap_or_else(signals);
        let mut handle = match begin {
            Begin::New { input } => {
                let opts = ExecutionOptions {
                    execution_id: Some(ids.execution_id),
                    correlation_id: Some(ids.correlation_id),
                    input: Some(input),
                    cancel: Some(CancellationToken::new()),
                    ..ExecutionOptions::default()
                };
                match runtime.start(workflow, state, opts) {
                    Ok(h) => h,
                    Err(e) => return Ended::NotStarted(format!("cannot create the journal in {}: {e}", dir.display())),
                }
            }
            Begin::Resume { point, note } => {
                let state = Arc::new(state);
                match runtime.resume(&workflow, &state, &point, ExecutionOptions::default()) {
                    Ok(exec) => {
                        if let Some(note) = note {
                            progress.send(note);
                        }
                        exec.spawn(workflow, state)
                    }
                    Err(e) => return Ended::Refused(e.to_string()),
                }
            }
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

async fn next_message(bus: &mut Option<Subscriber>) -> Option<BusMessage> {
    match bus {
        Some(b) => b.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StepError;

    #[test]
    fn failures_are_described_on_one_line() {
        let e = StepError::new(ErrorKind::Timeout, "slow\nvery", 3).with_step("fetch".into());
        assert_eq!(describe_error(&e), r"step `fetch` failed (timeout, attempt 3): slow\nvery");
    }
}
