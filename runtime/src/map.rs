//! `map` steps: one run of a body per item of a list, at most `concurrency`
//! items in flight, the outputs kept in input order.
//!
//! Each item runs its body on a state of its own (the item, its index, its
//! steps' outputs, and an `Arc` of the enclosing state for the steps before
//! the map), in the execution's task, like a parallel block's branches. Its
//! steps are journaled as `MAP[INDEX].STEP`. The map itself is journaled as a
//! step (`step.started`, then `step.succeeded` with the list of outputs, or
//! `step.failed`), so a resume restores a finished map from its output and
//! reruns an unfinished one item by item, each item's finished steps
//! restored rather than run again.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::agent::BoxFuture;
use crate::error::{ErrorKind, StepError};
use crate::executor::{millis, resumed_with, Cx, Node, OnError, Outcome, StepNode};
use crate::journal::{EventKind, Json};
use crate::resilience::BreakerRegistry;
use crate::resume::Done;
use crate::state::StepState;
use crate::wait::Mailbox;

/// Items in flight when the workflow does not say (`map.concurrency`).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How many of a map's items may fail before the map fails
/// (`map.toleratedFailures`).
///
/// ```
/// use orchestr8_runtime::codegen::Tolerated;
///
/// assert_eq!(Tolerated::Count(2).allowed(10), 2);
/// assert_eq!(Tolerated::Percent(25.0).allowed(10), 2); // rounded down
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerated {
    /// At most this many items.
    Count(u64),
    /// At most this percentage of the items (rounded down), from 0 to 100.
    Percent(f64),
}

impl Default for Tolerated {
    fn default() -> Self {
        Tolerated::Count(0)
    }
}

impl Tolerated {
    /// How many of `total` items may fail.
    pub fn allowed(self, total: usize) -> usize {
        match self {
            Tolerated::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            // Exact for any list a machine holds: `total` is far below 2^53.
            Tolerated::Percent(p) => ((total as f64) * p.clamp(0.0, 100.0) / 100.0).floor() as usize,
        }
    }
}

type ItemsFn<S, T> = dyn Fn(&S) -> Result<Vec<T>, String> + Send + Sync;
type ItemStateFn<S, T, I> = dyn Fn(Arc<S>, usize, T) -> I + Send + Sync;
type ResultFn<I, O> = dyn Fn(&I) -> Option<O> + Send + Sync;
type StoreFn<S, O> = dyn Fn(&S, Vec<Option<O>>) -> Result<(), String> + Send + Sync;

/// A `map` step over the state `S`: items of type `T`, each run as the body
/// on an item state `I`, each giving an output `O`.
///
/// An item's state holds the enclosing state's `Arc` (the steps before the
/// map), the item and the slots of the body's steps; the execution runs on
/// a shared state ([`Runtime::run_shared`](crate::Runtime::run_shared)).
///
/// ```
/// use std::sync::{Arc, OnceLock};
/// use orchestr8_runtime::codegen::{map_all, store, MapStep};
/// use orchestr8_runtime::{AgentStep, ExecutionOptions, Node, Runtime, Workflow, WorkflowInfo};
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
/// struct State { words: Vec<String>, lengths: OnceLock<Vec<usize>> }
/// struct Item { up: Arc<State>, word: String, length: OnceLock<usize> }
///
/// let body = AgentStep::new("measure", Arc::new(Lookup), |i: &Item| Ok(i.word.clone()), |i: &Item, n| store(&i.length, "measure", n));
/// let map = MapStep::new(
///     "lengths",
///     Node::sequence([body.node()]),
///     |s: &State| Ok(s.words.clone()),
///     |up, _index, word| Item { up, word, length: OnceLock::new() },
///     |i: &Item| i.length.get().copied(),
///     |s: &State, outputs| store(&s.lengths, "lengths", map_all(outputs)?),
/// )
/// .concurrency(2);
/// let workflow = Workflow::new(
///     WorkflowInfo::new("lengths", "1.0.0", "sha256:x"),
///     Node::sequence([map.node()]),
///     |s: &State| Ok(s.lengths.get().cloned()),
/// );
/// let state = Arc::new(State { words: vec!["a".into(), "abc".into()], lengths: OnceLock::new() });
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let output = Runtime::default().run_shared(&workflow, &state, ExecutionOptions::default()).await.unwrap();
/// assert_eq!(output, Ok(Some(vec![1, 3])));
/// # });
/// ```
pub struct MapStep<S, T, I, O> {
    id: Arc<str>,
    concurrency: usize,
    tolerated: Tolerated,
    items: Box<ItemsFn<S, T>>,
    item_state: Box<ItemStateFn<S, T, I>>,
    body: Node<I>,
    result: Box<ResultFn<I, O>>,
    store: Box<StoreFn<S, O>>,
    _types: PhantomData<fn(T) -> O>,
}

impl<S, T, I, O> fmt::Debug for MapStep<S, T, I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapStep")
            .field("id", &self.id)
            .field("concurrency", &self.concurrency)
            .field("tolerated", &self.tolerated)
            .field("body", &self.body)
            .finish()
    }
}

impl<S, T, I, O> MapStep<S, T, I, O>
where
    S: Send + Sync + 'static,
    T: Send + 'static,
    I: Send + Sync + 'static,
    O: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A map step `id` running `body` once per item.
    ///
    /// `items` reads the list from the state (an `Err` fails the step with
    /// `invalid_input`); `item_state` makes an item's state from the
    /// enclosing state, the index and the item; `result` reads an item's
    /// output once its body has succeeded (`None`: the body ended without
    /// one, its last step having failed with `onError: continue`, which
    /// counts as a failed item); `store` puts the outputs, in input order,
    /// `None` for the failed items, into the state.
    pub fn new(
        id: impl Into<Arc<str>>,
        body: Node<I>,
        items: impl Fn(&S) -> Result<Vec<T>, String> + Send + Sync + 'static,
        item_state: impl Fn(Arc<S>, usize, T) -> I + Send + Sync + 'static,
        result: impl Fn(&I) -> Option<O> + Send + Sync + 'static,
        store: impl Fn(&S, Vec<Option<O>>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        MapStep {
            id: id.into(),
            concurrency: DEFAULT_CONCURRENCY,
            tolerated: Tolerated::default(),
            items: Box::new(items),
            item_state: Box::new(item_state),
            body,
            result: Box::new(result),
            store: Box::new(store),
            _types: PhantomData,
        }
    }

    /// At most `n` items in flight (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How many items may fail before the map fails.
    pub fn tolerated(mut self, tolerated: Tolerated) -> Self {
        self.tolerated = tolerated;
        self
    }

    /// Wraps the step as a plan node.
    pub fn node(self) -> Node<S> {
        Node::step(self)
    }

    async fn run_map(&self, cx: &Cx<'_, S>, cancel: &CancellationToken) -> Outcome {
        let id = cx.name(&self.id);
        let rec = cx.recorder();
        if cancel.is_cancelled() {
            rec.skipped(&id, None);
            return Outcome::Cancelled;
        }
        let started = Instant::now();
        let items = (self.items)(cx.state());
        let mut ev = rec.step_event(EventKind::StepStarted, &id, None, started);
        ev.state = Some(StepState::Executing.into());
        if let Ok(items) = &items {
            ev.input = Some(Json::from(json!({"items": items.len(), "concurrency": self.concurrency})));
        }
        rec.record(ev);
        let items = match (items, cx.owner()) {
            (Ok(items), Some(_)) => items,
            (Err(msg), _) => return self.failed(cx, &id, StepError::new(ErrorKind::InvalidInput, msg, 0), started),
            (_, None) => {
                let msg = "a map needs the execution's state in an Arc: run it with Runtime::start, \
                           Runtime::run_shared or Execution::run_shared";
                return self.failed(cx, &id, StepError::new(ErrorKind::InvalidInput, msg, 0), started);
            }
        };
        let owner = cx.owner().expect("checked above");
        let total = items.len();
        let allowed = self.tolerated.allowed(total);
        // Cancelled at the failure beyond the tolerated ones, as a fail-fast
        // parallel block cancels its branches.
        let block = cancel.child_token();
        let mut outputs: Vec<Option<O>> = std::iter::repeat_with(|| None).take(total).collect();
        let mut pending = items.into_iter().enumerate();
        let mut running = FuturesUnordered::new();
        let mut failed = 0usize;
        let mut beyond: Option<(usize, StepError)> = None;
        let (mut cancelled, mut suspended) = (false, false);
        loop {
            while running.len() < self.concurrency && !block.is_cancelled() {
                if pending.len() > 0 && cx.mailbox().is_some_and(Mailbox::suspending) {
                    // The server stops while steps wait: as a sequence's
                    // next step, the items not started run in the next one,
                    // once it resumes the execution.
                    suspended = true;
                    break;
                }
                let Some((index, item)) = pending.next() else { break };
                let state = Arc::new((self.item_state)(owner.clone(), index, item));
                running.push(self.run_item(cx, &id, index, state, &block));
            }
            let Some((index, outcome, output)) = running.next().await else { break };
            let error = match outcome {
                Outcome::Ok => match output {
                    Some(o) => {
                        outputs[index] = Some(o);
                        continue;
                    }
                    None => StepError::new(ErrorKind::InvalidOutput, "the item's body ended without an output", 0),
                },
                Outcome::Failed(e) => e,
                Outcome::Cancelled => {
                    cancelled = true;
                    continue;
                }
                Outcome::Suspended => {
                    suspended = true;
                    continue;
                }
            };
            failed += 1;
            if failed > allowed && beyond.is_none() {
                block.cancel();
                beyond = Some((index, error));
            }
        }
        if let Some((index, e)) = beyond {
            let message =
                format!("{failed} of {total} items failed ({allowed} tolerated); item {index}: {}", e.message);
            // The map's own error: the item's kind, its attempts are the item's business.
            let e = StepError { message, attempt: 0, ..e };
            return self.failed(cx, &id, e, started);
        }
        if cancelled || cancel.is_cancelled() {
            let end = Instant::now();
            let mut ev = rec.step_event(EventKind::StepCancelled, &id, None, end);
            ev.duration_ms = Some(millis(end - started));
            ev.state = Some(StepState::Cancelled.into());
            let e = StepError::new(ErrorKind::Cancelled, "the map was cancelled", 0).with_step(id.clone());
            ev.error = Some(Box::new(e));
            rec.record(ev);
            return Outcome::Cancelled;
        }
        if suspended {
            return Outcome::Suspended;
        }
        let output = Json::serialize(&outputs).ok();
        if let Err(msg) = (self.store)(cx.state(), outputs) {
            return self.failed(cx, &id, StepError::new(ErrorKind::InvalidOutput, msg, 0), started);
        }
        let end = Instant::now();
        let mut ev = rec.step_event(EventKind::StepSucceeded, &id, None, end);
        ev.duration_ms = Some(millis(end - started));
        ev.output = output;
        ev.state = Some(StepState::Succeeded.into());
        rec.record(ev);
        Outcome::Ok
    }

    /// Runs item `index`'s body; its steps that a resumed execution's
    /// journal says succeeded are restored first, not run again.
    async fn run_item<'a>(
        &'a self,
        cx: &'a Cx<'a, S>,
        map: &str,
        index: usize,
        state: Arc<I>,
        block: &'a CancellationToken,
    ) -> (usize, Outcome, Option<O>) {
        let prefix = format!("{map}[{index}].");
        if let Some(done) = cx.done_steps() {
            if let Err(e) = self.body.restore_from(&state, done, &prefix) {
                let e = StepError::new(ErrorKind::InvalidOutput, e.to_string(), 0);
                return (index, Outcome::Failed(e), None);
            }
        }
        let icx = cx.item(&state, &prefix);
        let outcome = self.body.run(&icx, block).await;
        let output = if outcome == Outcome::Ok { (self.result)(&state) } else { None };
        (index, outcome, output)
    }

    fn failed(&self, cx: &Cx<'_, S>, id: &Arc<str>, e: StepError, started: Instant) -> Outcome {
        let e = e.with_step(id.clone());
        let end = Instant::now();
        let mut ev = cx.recorder().step_event(EventKind::StepFailed, id, None, end);
        ev.duration_ms = Some(millis(end - started));
        ev.state = Some(StepState::of_failure(e.kind).into());
        ev.error = Some(Box::new(e.clone()));
        cx.recorder().record(ev);
        Outcome::Failed(e)
    }
}

impl<S, T, I, O> StepNode<S> for MapStep<S, T, I, O>
where
    S: Send + Sync + 'static,
    T: Send + 'static,
    I: Send + Sync + 'static,
    O: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn step_id(&self) -> &Arc<str> {
        &self.id
    }

    fn agent_id(&self) -> Option<&Arc<str>> {
        None
    }

    fn bind(&mut self, registry: &BreakerRegistry) {
        self.body.bind(registry);
    }

    fn inner_step_ids(&self) -> Vec<&str> {
        self.body.step_ids()
    }

    fn longest_call(&self) -> Option<std::time::Duration> {
        let mut longest = None;
        self.body.each_step(&mut |s| longest = longest.max(s.longest_call()));
        longest
    }

    fn run<'a>(&'a self, cx: &'a Cx<'a, S>, cancel: &'a CancellationToken) -> BoxFuture<'a, Outcome> {
        if let Some(done) = cx.done(&self.id) {
            return Box::pin(std::future::ready(self.resumed(done)));
        }
        Box::pin(self.run_map(cx, cancel))
    }

    #[cfg(feature = "restate")]
    fn run_on_restate<'a>(
        &'a self,
        on: &'a crate::restate::Invocation<'a>,
        state: &'a Arc<S>,
        path: &'a [usize],
    ) -> BoxFuture<'a, Result<(), restate_sdk::errors::TerminalError>> {
        use restate_sdk::errors::TerminalError;
        Box::pin(async move {
            if on.in_item() {
                // Its items would be calls found from the root: not from an item's body.
                return Err(TerminalError::new(format!(
                    "map {}: a map in a map's body does not run on Restate",
                    self.id
                )));
            }
            // The items themselves are read again by each item's handler,
            // from the same outputs: only their number is needed here.
            let total = (self.items)(state)
                .map_err(|e| TerminalError::new(format!("map {}: invalid input: {e}", self.id)))?
                .len();
            let answers = crate::restate::map_items(on, path, total, self.concurrency, self.tolerated.allowed(total))
                .await
                .map_err(|e| match crate::restate::is_cancellation(&e) {
                    true => e,
                    // With the item's code (a spent budget stays one).
                    false => TerminalError::new_with_code(e.code(), format!("map {}: {}", self.id, e.message())),
                })?;
            let outputs = answers
                .into_iter()
                .map(|a| a.map(O::deserialize).transpose())
                .collect::<Result<Vec<Option<O>>, _>>()
                .map_err(|e| TerminalError::new(format!("map {}: an item's output: {e}", self.id)))?;
            // A parallel block's branches that start after it restore it.
            if let Ok(value) = serde_json::to_value(&outputs) {
                on.succeeded(&self.id, value);
            }
            (self.store)(state, outputs).map_err(|e| TerminalError::new(format!("map {}: {e}", self.id)))
        })
    }

    #[cfg(feature = "restate")]
    fn run_item_on_restate<'a>(
        &'a self,
        on: &'a crate::restate::Invocation<'a>,
        state: &'a Arc<S>,
        index: usize,
    ) -> BoxFuture<'a, Result<Option<Value>, restate_sdk::errors::TerminalError>> {
        use restate_sdk::errors::TerminalError;
        Box::pin(async move {
            let items =
                (self.items)(state).map_err(|e| TerminalError::new(format!("map {}: invalid input: {e}", self.id)))?;
            let item = items.into_iter().nth(index).ok_or_else(|| {
                TerminalError::new(format!("map {}: no item {index}: the outputs it was started from changed", self.id))
            })?;
            let item_state = Arc::new((self.item_state)(state.clone(), index, item));
            let item_on = on.item(&self.id, index);
            crate::restate::node(&item_on, &self.body, &mut Vec::new(), &item_state).await?;
            (self.result)(&item_state)
                .map(|o| serde_json::to_value(o))
                .transpose()
                .map_err(|e| TerminalError::new(format!("map {}: item {index}'s output: {e}", self.id)))
        })
    }

    fn restore(&self, state: &S, output: &Value) -> Result<(), String> {
        // `null` stands for a failed item; a list journaled without failures reads the same.
        let outputs = Vec::<Option<O>>::deserialize(output).map_err(|e| e.to_string())?;
        (self.store)(state, outputs)
    }

    fn resumed(&self, done: &Done) -> Outcome {
        resumed_with(done, OnError::Fail)
    }
}

/// The step id of a step's name in the journal: `summarize` for
/// `summaries[3].summarize`, the name itself outside any map.
pub fn step_of(name: &str) -> &str {
    name.rsplit_once("].").map_or(name, |(_, step)| step)
}

/// Every output of a map that tolerates no failure (all are there once it
/// has succeeded); for generated code's `store`.
pub fn all<O>(outputs: Vec<Option<O>>) -> Result<Vec<O>, String> {
    outputs.into_iter().collect::<Option<Vec<O>>>().ok_or_else(|| "a map item has no output".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerated_counts_and_rounds_percentages_down() {
        assert_eq!(Tolerated::Count(0).allowed(10), 0);
        assert_eq!(Tolerated::Count(3).allowed(2), 3);
        assert_eq!(Tolerated::Percent(25.0).allowed(10), 2);
        assert_eq!(Tolerated::Percent(25.0).allowed(0), 0);
        assert_eq!(Tolerated::Percent(100.0).allowed(7), 7);
        assert_eq!(Tolerated::Percent(250.0).allowed(4), 4);
    }

    #[test]
    fn step_of_strips_item_prefixes() {
        assert_eq!(step_of("fetch"), "fetch");
        assert_eq!(step_of("m[3].summarize"), "summarize");
        assert_eq!(step_of("a[1].b[20].c"), "c");
    }

    #[test]
    fn all_needs_every_output() {
        assert_eq!(all(vec![Some(1), Some(2)]).unwrap(), [1, 2]);
        assert!(all(vec![Some(1), None]).is_err());
    }
}
