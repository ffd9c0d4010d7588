//! `PROGRAM resume ID`: the rest of an execution whose process ended before
//! it did, from its journal file (see [`crate::resume`]); and `PROGRAM signal
//! ID STEP --data JSON`: the same, once a waiting step's signal is delivered
//! (see [`crate::wait`]).

use std::io::Write;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::Level;

use super::log::say;
use super::progress::PREFIX;
use super::run::Begin;
use super::{ExecutionIds, Program, EXIT_USAGE};
use crate::journal::{FileStore, JournalStore};
use crate::resume::Resume;
use crate::telemetry::LogFormat;

/// What `resume` is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResumeArgs {
    /// The execution to resume.
    pub id: String,
    pub journal_dir: PathBuf,
    /// `--force`: resume with this program's definition even if it differs.
    pub force: bool,
    pub quiet: bool,
    pub log_format: Option<LogFormat>,
    /// `signal ID STEP --data JSON`: a payload for a waiting step first.
    pub signal: Option<Deliver>,
}

/// A signal to deliver before the rest runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Deliver {
    /// The waiting step.
    pub step: String,
    /// `--data`: the payload's JSON text.
    pub data: String,
}

impl<I, S, O> Program<I, S, O>
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    /// Reads the journal, checks it against this program (exit 2 and why,
    /// before anything runs or is journaled), and runs the rest like `run`.
    pub(super) fn resume(
        self,
        args: ResumeArgs,
        format: LogFormat,
        stdout: &mut dyn Write,
        stderr: &mut dyn Write,
    ) -> u8 {
        let refuse = |stderr: &mut dyn Write, msg: &str| {
            say(stderr, format, Level::ERROR, msg, None, &[]);
            EXIT_USAGE
        };
        let store = FileStore::new(&args.journal_dir);
        let read = match store.read(&args.id) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let path = store.path(&args.id);
                let dir = args.journal_dir.display();
                let msg = match crate::journal::read_execution(&args.journal_dir, &args.id) {
                    // An ended one says so (there is nothing to resume, anywhere).
                    Ok(read) => match Resume::from_journal(&read) {
                        Err(e @ crate::resume::ResumeError::Ended { .. }) => e.to_string(),
                        _ => format!(
                            "execution {} was served: its journal is in serve's log in {}, not in a run's journal \
                             file ({}), and resume goes on only from such a file; serve resumes it when it starts \
                             again on this directory (serve --journal-dir {dir}), unless --no-resume",
                            args.id,
                            args.journal_dir.join(crate::journal::LOG_DIR).display(),
                            path.display()
                        ),
                    },
                    Err(_) => format!("no journal of execution {} at {}", args.id, path.display()),
                };
                return refuse(stderr, &msg);
            }
            Err(e) => {
                let path = store.path(&args.id);
                return refuse(stderr, &format!("cannot resume from {}: {e}", path.display()));
            }
        };
        let mut point = match Resume::from_journal(&read) {
            Ok(point) => point,
            Err(e) => return refuse(stderr, &e.to_string()),
        };
        // A copied or renamed file: resuming would go on with the other
        // execution's journal file, not this one.
        if point.execution_id() != args.id {
            let (path, other) = (store.path(&args.id), point.execution_id());
            let msg = format!(
                "{} is the journal of execution {other}, not of {} (a copied or renamed file?); nothing was \
                 resumed: to resume execution {other}, resume {other} with its journal at {}",
                path.display(),
                args.id,
                store.path(other).display()
            );
            return refuse(stderr, &msg);
        }
        if let Err(e) = point.check_definition(self.workflow.info(), &self.workflow.step_ids(), args.force) {
            return refuse(stderr, &e.to_string());
        }
        if let Some(deliver) = &args.signal {
            if let Err(msg) = self.deliver(&mut point, deliver) {
                return refuse(stderr, &msg);
            }
        }
        // The input as the journal has it, through the same checks as a run's.
        let text = serde_json::to_string(point.input()).unwrap_or_else(|_| "null".into());
        let input = match self.check_input(&text) {
            Ok((input, _)) => input,
            Err(msg) => {
                let msg = format!("the journaled input of execution {} does not fit this program: {msg}", args.id);
                return refuse(stderr, &msg);
            }
        };
        let ids = ExecutionIds { execution_id: args.id.clone(), correlation_id: point.correlation_id().to_owned() };
        let state = (self.make_state)(input, &ids);
        let quiet = args.quiet || format == LogFormat::Json;
        let done = point.done_steps();
        let note = (!quiet).then(|| {
            let done = if done.is_empty() { "none".to_owned() } else { done.join(", ") };
            let signal = args.signal.as_ref().map_or(String::new(), |d| format!("; signal to {}", d.step));
            format!(
                "{PREFIX} resuming execution {} after seq {}; steps done: {done}{signal}",
                args.id,
                point.last_seq()
            )
        });
        let begin = Begin::Resume { point: Box::new(point), note };
        self.work(begin, ids, state, store, quiet, None, format, stdout, stderr)
    }

    /// Checks that `deliver.step` is a wait of this program that the journal
    /// shows waiting, and its payload, then hands it to the resume.
    fn deliver(&self, point: &mut Resume, deliver: &Deliver) -> Result<(), String> {
        let (id, step) = (point.execution_id().to_owned(), deliver.step.as_str());
        let Some(wait) = self.workflow.waiting(step) else {
            let waits = self.workflow.wait_steps();
            let known = if waits.is_empty() {
                "this workflow has no wait step".to_owned()
            } else {
                format!("its wait steps are: {}", waits.join(", "))
            };
            return Err(format!("`{step}` is not a wait step of this workflow; {known}"));
        };
        let signals = point.signals();
        if signals.received(step) {
            return Err(format!("step `{step}` of execution {id} has already received its signal"));
        }
        let waiting = point.waiting();
        let now = if waiting.is_empty() {
            "no step of it waits now".to_owned()
        } else {
            format!("the steps waiting now: {}", waiting.join(", "))
        };
        if let Some(crate::resume::Done::Failed(e)) = point.ended(step) {
            // Its timeout is journaled already: `resume` has nothing more to record for it.
            return Err(format!(
                "step `{step}` of execution {id} no longer waits: it ended ({}: {}); {now}",
                e.kind, e.message
            ));
        }
        let Some(since) = signals.since(step) else {
            return Err(format!("step `{step}` of execution {id} is not waiting for a signal ({now})"));
        };
        if let Some(timeout) = wait.timeout() {
            if since + timeout <= std::time::SystemTime::now() {
                return Err(format!(
                    "the wait of step `{step}` timed out (no signal within its timeout); \
                     `resume {id}` records the timeout and runs the rest"
                ));
            }
        }
        let payload = super::parse_payload(&deliver.data)
            .and_then(|payload| wait.check(&payload).map_err(|e| e.to_string()))
            .map_err(|msg| format!("the payload for step `{step}` (signal `{}`) does not fit: {msg}", wait.signal()))?;
        point.deliver(step, payload);
        Ok(())
    }
}
