//! `serve`: the program's side of the server (the `server` module): the
//! typed start of an execution, and the log lines written to standard error.

use std::io::Write;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::args::ServeArgs;
use super::Program;
#[cfg(not(feature = "server"))]
use super::EXIT_USAGE;
use crate::telemetry::LogFormat;
#[cfg(feature = "server")]
use {
    super::log::say,
    super::progress::PROGRESS_CAPACITY,
    super::{checked_json, one_line, parse_input_value, EXIT_CANCELLED, EXIT_COMPLETED, EXIT_FAILED},
    crate::error::{ErrorKind, StepError},
    crate::executor::{ExecutionOptions, Runtime},
    serde_json::Value,
    std::sync::{mpsc::sync_channel, Arc},
    tracing::Level,
};

impl<I, S, O> Program<I, S, O>
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    #[cfg(not(feature = "server"))]
    pub(super) fn serve(self, _args: ServeArgs, _format: LogFormat, stderr: &mut dyn Write) -> u8 {
        let _ = writeln!(stderr, "error: this program was built without the server; build it with --features serve");
        EXIT_USAGE
    }

    /// `serve`: the server runs on a thread of its own; this one writes its
    /// log lines to `stderr` until it ends.
    #[cfg(feature = "server")]
    pub(super) fn serve(self, args: ServeArgs, format: LogFormat, stderr: &mut dyn Write) -> u8 {
        let workflow = self.workflow.clone();
        let make_state = self.make_state.clone();
        let schema = self.input_schema.clone();
        let start = move |runtime: &Runtime,
                          input: &Value,
                          o: crate::server::StartOptions|
              -> Result<crate::server::Started, crate::server::StartError> {
            let crate::server::StartOptions { ids, trace_parent, cancel, idempotency, resume, mailbox } = o;
            use crate::server::StartError;
            let typed: I = parse_input_value(input).map_err(StartError::Input)?;
            let input_json = checked_json(schema.as_ref(), &typed).map_err(StartError::Input)?;
            let state = Arc::new(make_state(typed, &ids));
            let opts = ExecutionOptions {
                execution_id: Some(ids.execution_id),
                correlation_id: Some(ids.correlation_id),
                input: Some(input_json),
                cancel: Some(cancel),
                trace_parent,
                idempotency,
                mailbox: Some(mailbox),
                ..ExecutionOptions::default()
            };
            let execution = match resume {
                // An earlier process's execution: this program's definition, or none of it.
                Some(point) => {
                    point.check_definition(workflow.info(), &workflow.step_ids(), false).map_err(StartError::Resume)?;
                    runtime.resume(&workflow, &state, &point, opts).map_err(StartError::Resume)?
                }
                None => runtime.prepare(workflow.info(), opts).map_err(StartError::Journal)?,
            };
            let trace_id = execution.trace_id();
            let workflow = workflow.clone();
            let run: crate::server::Run = Box::pin(async move {
                let output = execution.run_shared(&workflow, &state).await?;
                serde_json::to_value(output).map_err(|e| StepError::new(ErrorKind::InvalidOutput, e.to_string(), 0))
            });
            Ok(crate::server::Started { run, trace_id })
        };
        let waits = (self.workflow.wait_steps().into_iter())
            .filter_map(|step| {
                let wait = self.workflow.waiting(step)?;
                let (signal, schema) = (wait.signal().to_owned(), wait.schema().clone());
                Some(crate::server::WaitInfo { step: step.to_owned(), signal, schema })
            })
            .collect();
        let signals = self.workflow.clone();
        let check_signal = move |step: &str, payload: &Value| Some(signals.waiting(step)?.check(payload));
        let config = crate::server::Config {
            args,
            info: self.workflow.info().clone(),
            about: self.about,
            input_schema: self.input_schema,
            output_schema: self.output_schema,
            waits,
            check_signal: Arc::new(check_signal),
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
}
