//! The `switch` node: runs the one branch a selector picks from the state,
//! journals every step of the other branches `step.skipped` with the reason,
//! and stores the branch's output (if the switch declares one).
//!
//! The selector reads outputs that had certainly finished before the switch,
//! so a resumed execution, whose state is restored from the journal, picks
//! the same branch again: nothing about the decision needs journaling.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::agent::BoxFuture;
use crate::error::{ErrorKind, StepError};
use crate::executor::{Cx, Node, Outcome, Recorder};
use crate::resume::Done;

type SelectFn<S> = dyn Fn(&S) -> Result<usize, String> + Send + Sync;
type CaseOutputFn<S> = dyn Fn(&S, usize) -> Result<(), String> + Send + Sync;

/// A switch: branches (its cases in order, then `default`), a selector
/// giving the index of the branch to run, and optionally what stores the
/// switch's output once that branch has run.
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use orchestr8_runtime::codegen::{slot, store};
/// use orchestr8_runtime::{AgentStep, ExecutionOptions, Node, Runtime, Switch, Workflow, WorkflowInfo};
/// # use orchestr8_runtime::{Agent, AgentContext, AgentError};
/// # struct Lookup;
/// # impl Agent for Lookup {
/// #     type Input = String;
/// #     type Output = usize;
/// #     fn id(&self) -> &str { "lookup" }
/// #     fn version(&self) -> &str { "1.0.0" }
/// #     async fn run(&self, _: &AgentContext<'_>, key: String) -> Result<usize, AgentError> { Ok(key.len()) }
/// # }
///
/// struct State { kind: String, short: OnceLock<usize>, long: OnceLock<usize> }
///
/// let lookup = Arc::new(Lookup);
/// let short = AgentStep::new("short", lookup.clone(), |_: &State| Ok("s".into()), |s: &State, n| store(&s.short, "short", n));
/// let long = AgentStep::new("long", lookup, |_: &State| Ok("long".into()), |s: &State, n| store(&s.long, "long", n));
/// // Case `bug` first, then `default`.
/// let switch = Switch::new("route", |s: &State| Ok(if s.kind == "bug" { 0 } else { 1 }), [
///     ("bug", short.node()),
///     ("default", long.node()),
/// ]);
/// let workflow = Workflow::new(
///     WorkflowInfo::new("route", "1.0.0", "sha256:x"),
///     switch.node(),
///     |s: &State| Ok((s.short.get().copied(), s.long.get().copied())),
/// );
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let state = State { kind: "bug".into(), short: OnceLock::new(), long: OnceLock::new() };
/// let output = Runtime::default().run(&workflow, &state, ExecutionOptions::default()).await.unwrap();
/// assert_eq!(output, Ok((Some(1), None))); // `long` was skipped
/// # });
/// ```
pub struct Switch<S> {
    id: Arc<str>,
    select: Box<SelectFn<S>>,
    branches: Vec<(Arc<str>, Node<S>)>,
    output: Option<Box<CaseOutputFn<S>>>,
}

impl<S> fmt::Debug for Switch<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Switch")
            .field("id", &self.id)
            .field("branches", &self.branches)
            .field("output", &self.output.is_some())
            .finish()
    }
}

impl<S> Switch<S> {
    /// The switch's id.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The branches: their labels and nodes.
    pub fn branches(&self) -> impl Iterator<Item = (&str, &Node<S>)> {
        self.branches.iter().map(|(l, n)| (&**l, n))
    }

    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Node<S>> {
        self.branches.iter().map(|(_, n)| n)
    }

    pub(crate) fn nodes_mut(&mut self) -> impl Iterator<Item = &mut Node<S>> {
        self.branches.iter_mut().map(|(_, n)| n)
    }
}

impl<S: Send + Sync + 'static> Switch<S> {
    /// A switch `id` whose `select` returns the index into `branches` (each
    /// a label such as `"bug"` or `default`, shown in skip reasons, and its
    /// node). An `Err` from `select`, or an index out of range, fails the
    /// switch with `invalid_input`.
    pub fn new(
        id: impl Into<Arc<str>>,
        select: impl Fn(&S) -> Result<usize, String> + Send + Sync + 'static,
        branches: impl IntoIterator<Item = (&'static str, Node<S>)>,
    ) -> Self {
        Switch {
            id: id.into(),
            select: Box::new(select),
            branches: branches.into_iter().map(|(label, node)| (Arc::from(label), node)).collect(),
            output: None,
        }
    }

    /// Stores the switch's output once branch `i` has run: `store(state, i)`;
    /// an `Err` fails the switch with `invalid_output`.
    pub fn output(mut self, store: impl Fn(&S, usize) -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.output = Some(Box::new(store));
        self
    }

    /// Stores the switch's output after branch `taken` ran (nothing for a
    /// switch without one).
    #[cfg(feature = "restate")]
    pub(crate) fn store_output(&self, state: &S, taken: usize) -> Result<(), String> {
        self.output.as_ref().map_or(Ok(()), |store| store(state, taken))
    }

    /// Whether the switch has an output.
    #[cfg(feature = "restate")]
    pub(crate) fn has_output(&self) -> bool {
        self.output.is_some()
    }

    /// Wraps the switch as a plan node.
    pub fn node(self) -> Node<S> {
        Node::Switch(Box::new(self))
    }

    pub(crate) fn select(&self, state: &S) -> Result<usize, String> {
        let i = (self.select)(state)?;
        if i < self.branches.len() {
            Ok(i)
        } else {
            Err(format!("switch {} chose branch {i} of {}", self.id, self.branches.len()))
        }
    }

    /// How the switch ends if the journal decides it: the branch the state
    /// selects is decided.
    pub(crate) fn decided(&self, state: &S, done: &HashMap<Arc<str>, Done>) -> Option<Outcome> {
        let i = self.select(state).ok()?;
        self.branches[i].1.decided(state, done)
    }

    /// Resuming: once the journal decides the taken branch, stores the
    /// switch's output from the restored state (the branch does not run again).
    pub(crate) fn restore(&self, state: &S, done: &HashMap<Arc<str>, Done>) -> Result<(), String> {
        let Some(output) = &self.output else { return Ok(()) };
        let Ok(i) = self.select(state) else { return Ok(()) };
        if self.branches[i].1.decided(state, done) == Some(Outcome::Ok) {
            output(state, i)?;
        }
        Ok(())
    }

    /// Journals every step of the branches other than `taken` skipped,
    /// except those a resumed execution's journal has skipped already.
    fn skip_others(&self, taken: usize, cx: &Cx<'_, S>) {
        let reason: Arc<str> = format!("switch {} took case {}", self.id, self.branches[taken].0).into();
        for (i, (_, node)) in self.branches.iter().enumerate() {
            if i != taken {
                node.each_step(&mut |s| {
                    if !cx.skipped_before(s.step_id()) {
                        cx.recorder().skipped_because(s.step_id(), s.agent_id(), Some(&reason));
                    }
                });
            }
        }
    }

    fn failed(&self, kind: ErrorKind, message: String, rec: &Recorder) -> Outcome {
        let reason: Arc<str> = format!("switch {} failed: {message}", self.id).into();
        for (_, node) in &self.branches {
            node.skip_all_because(rec, Some(&reason));
        }
        Outcome::Failed(StepError::new(kind, message, 0).with_step(self.id.clone()))
    }

    /// Runs the switch.
    pub(crate) fn run<'a>(&'a self, cx: &'a Cx<'a, S>, cancel: &'a CancellationToken) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let rec = cx.recorder();
            if cancel.is_cancelled() {
                self.nodes().for_each(|n| n.skip_all_because(rec, None));
                return Outcome::Cancelled;
            }
            let taken = match self.select(cx.state()) {
                Ok(i) => i,
                Err(message) => return self.failed(ErrorKind::InvalidInput, message, rec),
            };
            self.skip_others(taken, cx);
            let branch = &self.branches[taken].1;
            // Resumed with the branch decided: `restore` stored the output.
            let restored = cx.done_steps().is_some_and(|d| branch.decided(cx.state(), d) == Some(Outcome::Ok));
            let outcome = branch.run(cx, cancel).await;
            if outcome != Outcome::Ok || restored {
                return outcome;
            }
            match &self.output {
                Some(store) => match store(cx.state(), taken) {
                    Ok(()) => Outcome::Ok,
                    Err(message) => {
                        Outcome::Failed(StepError::new(ErrorKind::InvalidOutput, message, 0).with_step(self.id.clone()))
                    }
                },
                None => Outcome::Ok,
            }
        })
    }
}
