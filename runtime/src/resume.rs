//! Resuming an execution from its journal: what the journal says was done
//! before its process ended, checked against the program before anything
//! runs again ([`crate::Runtime::resume`]).
//!
//! A step that succeeded is not run again: its journaled output is read back
//! into the typed state. A step that failed keeps its failure (and its
//! `onError`). Anything else (in flight when the process ended, cancelled,
//! skipped, never reached) runs from its first attempt: steps run at least
//! once, and [`crate::AgentContext::idempotency_key`] lets an agent
//! recognise a repeated call.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

use crate::error::StepError;
use crate::executor::WorkflowInfo;
use crate::journal::{EventKind, JournalRead, Json};
use crate::state::ExecutionState;
use crate::usage::Usage;
use crate::wait::Signals;

/// An unfinished execution as its journal left it: read with
/// [`Resume::from_journal`], then run the rest with [`crate::Runtime::resume`].
///
/// Here the process "dies" while the second step runs (its future is
/// dropped); the resumed execution runs only that step again:
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::time::Duration;
/// use orchestr8_runtime::codegen::{slot, store};
/// use orchestr8_runtime::{AgentStep, ExecutionOptions, MemoryStore, Node, Resume, Runtime, Workflow, WorkflowInfo};
/// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
/// # struct Slow(AtomicBool);
/// # impl Agent for Slow {
/// #     type Input = ();
/// #     type Output = u32;
/// #     fn id(&self) -> &str { "slow" }
/// #     fn version(&self) -> &str { "1.0.0" }
/// #     async fn run(&self, ctx: &AgentContext<'_>, _: ()) -> Result<u32, AgentError> {
/// #         // Hangs the first time it is called for step `b`: the crash comes then.
/// #         if ctx.step_id() == "b" && !self.0.swap(true, Ordering::SeqCst) { std::future::pending::<()>().await }
/// #         Ok(1)
/// #     }
/// # }
///
/// #[derive(Default)]
/// struct State { a: OnceLock<u32>, b: OnceLock<u32> }
/// let slow = Arc::new(Slow(AtomicBool::new(false)));
/// let a = AgentStep::new("a", slow.clone(), |_: &State| Ok(()), |s: &State, n| store(&s.a, "a", n));
/// let b = AgentStep::new("b", slow, |_: &State| Ok(()), |s: &State, n| store(&s.b, "b", n));
/// let workflow = Workflow::new(
///     WorkflowInfo::new("two", "1.0.0", "sha256:x"),
///     Node::sequence([a.node(), b.node()]),
///     |s: &State| Ok(slot(&s.a, "a")? + slot(&s.b, "b")?),
/// );
/// let journals = MemoryStore::new();
/// let runtime = Runtime::new(journals.clone());
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let opts = ExecutionOptions { execution_id: Some("e-1".into()), ..ExecutionOptions::default() };
/// let first = State::default();
/// let run = runtime.run(&workflow, &first, opts);
/// assert!(tokio::time::timeout(Duration::from_secs(1), run).await.is_err()); // the "crash"
///
/// let point = Resume::from_journal(&runtime.store().read("e-1")?)?;
/// assert_eq!(point.done_steps(), ["a"]);
/// point.check_definition(workflow.info(), &workflow.step_ids(), false)?;
/// let state = State::default();
/// let execution = runtime.resume(&workflow, &state, &point, ExecutionOptions::default())?;
/// assert_eq!(execution.run(&workflow, &state).await, Ok(2));
/// # Ok::<_, Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Resume {
    pub(crate) execution_id: Arc<str>,
    pub(crate) correlation_id: Arc<str>,
    workflow_version: Arc<str>,
    definition_hash: Arc<str>,
    input: Option<Json>,
    pub(crate) last_seq: u64,
    pub(crate) done: Arc<HashMap<Arc<str>, Done>>,
    /// The steps journaled `step.skipped` (a switch does not journal its
    /// skips again when it takes its case anew).
    pub(crate) skipped: Arc<HashSet<Arc<str>>>,
    /// Model tokens of the steps that are done (the budget goes on from there).
    pub(crate) usage: Usage,
    /// Signals received, and since when steps wait.
    pub(crate) signals: Signals,
}

/// How a step ended before the process did ([`crate::StepNode::resumed`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Done {
    /// Its output, as journaled on `step.succeeded`.
    Succeeded(Option<Json>),
    /// Its failure, as journaled on `step.failed`.
    Failed(StepError),
}

/// Why an execution cannot be resumed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeError {
    /// No journal, or one that cannot be read.
    #[error("cannot read the journal of execution {id}: {source}")]
    Journal {
        /// The execution.
        id: String,
        /// What went wrong.
        source: io::Error,
    },
    /// Another process still runs the execution (it holds its journal).
    #[error(
        "execution {id} is still running in another process ({source}); nothing was resumed: \
         wait for that process to end, or stop it, then resume"
    )]
    Running {
        /// The execution.
        id: String,
        /// The journal store's refusal.
        source: io::Error,
    },
    /// The journal does not say how the execution began, or its events are
    /// not one unbroken run: nothing is resumed from it.
    #[error("the journal of execution {id} cannot be resumed: {why}")]
    Corrupt {
        /// The execution.
        id: String,
        /// What is wrong with it.
        why: String,
    },
    /// The execution has already ended.
    #[error("execution {id} has already ended ({}); there is nothing to resume", state.as_str())]
    Ended {
        /// The execution.
        id: String,
        /// How it ended.
        state: ExecutionState,
    },
    /// The program is not the one that started the execution.
    #[error(transparent)]
    Changed(Box<DefinitionChanged>),
    /// A step's journaled output does not fit its type in this program.
    #[error(
        "the journal's output of step {step} does not fit that step's output type in this program: {why}; \
         the execution cannot be resumed by this program"
    )]
    Output {
        /// The step.
        step: String,
        /// Why it does not deserialize.
        why: String,
    },
}

/// The program's definition is not the one that started the execution.
#[derive(Debug, thiserror::Error)]
#[error("{}; resume with --force to run the rest with this program's definition", self.difference())]
pub struct DefinitionChanged {
    /// The execution.
    pub id: String,
    /// The definition hash on its `execution.started`.
    pub journal_hash: String,
    /// The workflow version on its `execution.started`.
    pub journal_version: String,
    /// This program's definition hash.
    pub program_hash: String,
    /// This program's workflow version.
    pub program_version: String,
    /// What differs that the journal shows (steps this program lacks).
    pub changed: String,
}

impl DefinitionChanged {
    /// What differs, without what to do about it (a server has no `--force`).
    pub fn difference(&self) -> String {
        format!(
            "execution {} was started by a different definition of this workflow \
             (journal: version {}, definition hash {}; this program: version {}, definition hash {}){}",
            self.id, self.journal_version, self.journal_hash, self.program_version, self.program_hash, self.changed
        )
    }
}

impl Resume {
    /// What the journal `read` of one execution says was done. Refuses a
    /// journal that has ended, one that does not begin with
    /// `execution.started`, and one whose `seq` is broken.
    pub fn from_journal(read: &JournalRead) -> Result<Resume, ResumeError> {
        let first = read
            .events
            .first()
            .ok_or_else(|| ResumeError::Corrupt { id: "(unknown)".into(), why: "it holds no event".into() })?;
        let id = first.execution_id.clone();
        let corrupt = |why: String| ResumeError::Corrupt { id: id.to_string(), why };
        if first.event != EventKind::ExecutionStarted || first.seq != 1 {
            return Err(corrupt(format!(
                "it begins with {} (seq {}), not with execution.started (seq 1)",
                first.event.as_str(),
                first.seq
            )));
        }
        let mut done = HashMap::new();
        let mut skipped = HashSet::new();
        let mut usage = Usage::default();
        let mut signals = Signals::default();
        for (i, ev) in read.events.iter().enumerate() {
            if ev.seq != i as u64 + 1 || ev.execution_id != id {
                return Err(corrupt(format!(
                    "event {} is seq {} of execution {}: the journal is not one unbroken run of seq 1, 2, 3…",
                    i + 1,
                    ev.seq,
                    ev.execution_id
                )));
            }
            if ev.event.is_terminal() {
                let state = match ev.event {
                    EventKind::ExecutionCompleted => ExecutionState::Completed,
                    EventKind::ExecutionCancelled => ExecutionState::Cancelled,
                    _ => ExecutionState::Failed,
                };
                return Err(ResumeError::Ended { id: id.to_string(), state });
            }
            let Some(step) = &ev.step_id else { continue };
            match ev.event {
                EventKind::StepWaiting => {
                    // The timeout counts from the first wait.
                    signals.since.entry(step.clone()).or_insert(ev.ts);
                    if let Some(name) = ev.signal() {
                        signals.names.insert(step.clone(), name.into());
                    }
                }
                EventKind::SignalReceived => {
                    let payload = ev.output.clone().unwrap_or_default();
                    signals.received.insert(step.clone(), payload);
                }
                EventKind::StepSkipped => {
                    skipped.insert(step.clone());
                }
                _ => {}
            }
            let ended = match ev.event {
                EventKind::StepSucceeded => Some(Done::Succeeded(ev.output.clone())),
                EventKind::StepFailed => Some(Done::Failed(ev.error.as_deref().cloned().unwrap_or_else(|| {
                    StepError::new(crate::ErrorKind::Fatal, "failed (the journal does not say why)", 0)
                }))),
                // Run again: a later event of the same step (after an earlier
                // resume) replaces what an earlier one said.
                EventKind::StepStarted => {
                    done.remove(step);
                    None
                }
                _ => None,
            };
            if let Some(ended) = ended {
                if let Some(u) = ev.usage() {
                    usage = usage.plus(*u);
                }
                done.insert(step.clone(), ended);
            }
        }
        let labels = first.labels.as_deref();
        let label = |f: fn(&crate::journal::EventLabels) -> &Option<Arc<str>>| {
            labels.and_then(|l| f(l).clone()).unwrap_or_else(|| "".into())
        };
        let last_seq = read.events.last().map_or(0, |e| e.seq);
        Ok(Resume {
            correlation_id: labels.and_then(|l| l.correlation_id.clone()).unwrap_or_else(|| id.clone()),
            execution_id: id,
            workflow_version: label(|l| &l.workflow_version),
            definition_hash: label(|l| &l.definition_hash),
            input: first.input.clone(),
            last_seq,
            done: Arc::new(done),
            skipped: Arc::new(skipped),
            usage,
            signals,
        })
    }

    /// The execution id.
    pub fn execution_id(&self) -> &str {
        &self.execution_id
    }

    /// The correlation id, as journaled on `execution.started`.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// The workflow input, as journaled on `execution.started` (`null` if it was not).
    pub fn input(&self) -> &serde_json::Value {
        self.input.as_ref().map_or(&serde_json::Value::Null, |j| j.value())
    }

    /// The signals the journal holds: which steps wait, which received theirs.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The steps that wait for their signal now, sorted: they journaled
    /// `step.waiting` and neither received their signal nor ended (a
    /// timeout).
    pub fn waiting(&self) -> Vec<&str> {
        self.signals.waiting().into_iter().filter(|s| !self.done.contains_key(*s)).collect()
    }

    /// How `step` ended, if the journal says it did.
    pub fn ended(&self, step: &str) -> Option<&Done> {
        self.done.get(step)
    }

    /// Hands `payload` (checked by the step's [`crate::wait::Waiting::check`])
    /// to the waiting step `step`: the resumed execution journals it as
    /// `signal.received` before anything runs, then the step succeeds with it.
    pub fn deliver(&mut self, step: &str, payload: serde_json::Value) {
        let step: Arc<str> = self.signals.since.get_key_value(step).map_or_else(|| step.into(), |(k, _)| k.clone());
        self.signals.received.insert(step.clone(), Json::from(payload));
        self.signals.fresh.push(step);
    }

    /// The `seq` of the journal's last event.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The steps that will not run again, by id, sorted.
    pub fn done_steps(&self) -> Vec<&str> {
        let mut steps: Vec<&str> = self.done.keys().map(|k| &**k).collect();
        steps.sort_unstable();
        steps
    }

    /// Refuses a program whose definition differs from the one that started
    /// the execution, unless `force`; `steps` are the program's step ids.
    pub fn check_definition(&self, info: &WorkflowInfo, steps: &[&str], force: bool) -> Result<(), ResumeError> {
        if force || *self.definition_hash == *info.definition_hash {
            return Ok(());
        }
        let mut gone: Vec<&str> = self.done.keys().map(|k| &**k).filter(|s| !steps.contains(s)).collect();
        gone.sort_unstable();
        let changed = match gone.as_slice() {
            [] => String::new(),
            gone => format!("; steps done in the journal that this program does not have: {}", gone.join(", ")),
        };
        Err(ResumeError::Changed(Box::new(DefinitionChanged {
            id: self.execution_id.to_string(),
            journal_hash: self.definition_hash.to_string(),
            journal_version: self.workflow_version.to_string(),
            program_hash: info.definition_hash.to_string(),
            program_version: info.version.to_string(),
            changed,
        })))
    }
}
