//! The Restate target (`orchestr8 compile --target restate`): a compiled
//! workflow's plan run by a handler of a Restate service, so executions
//! survive the loss of the process (and, with a Restate cluster, of the
//! machine).
//!
//! Each agent step is one journaled action (`ctx.run`) named by its step
//! id: a replayed invocation reads a finished step's output from Restate's
//! journal and never calls its agent again. The step's policy becomes the
//! action's retry policy (attempts, initial delay, factor, max delay; the
//! step timeout as its max duration), and each attempt is bounded by the
//! attempt timeout (or the step timeout). Fatal errors, invalid input and an
//! open circuit breaker are terminal; the rest Restate retries. Cancelling
//! the invocation cancels the running agent's token, as embedded. Where this
//! differs from the embedded executor is listed in the book's "Running on
//! Restate" (`docs/src/how-to/restate.md`).
//!
//! The items here are used by the crate `orchestr8 compile --target restate`
//! writes: its handlers call [`run`] and [`run_branch`], its `main` calls
//! [`serve`] (whose example is such a crate's `main.rs`, in short).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use restate_sdk::context::{
    CallFuture, Context, ContextAwakeables, ContextClient, ContextReadState, ContextSideEffects, ContextTimers,
    ContextWriteState, DurableFuture, DurableFuturesUnordered, ObjectContext, RequestTarget, RunFuture, RunRetryPolicy,
};
use restate_sdk::errors::{HandlerError, HandlerResult, TerminalError};
use restate_sdk::serde::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentContext, AgentError, AgentErrorKind, ExecutionMeta};
use crate::executor::{Node, Workflow};
use crate::policy::Policy;
use crate::program::{checked_json, ExecutionIds};
use crate::resilience::CircuitBreaker;
use crate::usage::{Tokens, Usage, UsageMeter};

/// What every step of one invocation shares.
pub struct Invocation<'a> {
    ctx: &'a Context<'a>,
    pub(crate) meta: Arc<ExecutionMeta>,
    /// The service's name: a parallel block's branches are calls to its
    /// `branch` handler.
    service: &'a str,
    /// The workflow's input, as the branches' requests carry it.
    input: Value,
    /// Each step's output by step id, as it succeeded: what a branch starts
    /// from, and what it answers.
    outputs: Mutex<Map<String, Value>>,
    /// Inside a map item's body: `MAP[INDEX].`, before its steps' names,
    /// as the embedded journal names them; empty elsewhere.
    prefix: String,
    /// The execution's model tokens spent so far, as far as this
    /// invocation knows: what it started from (a branch: the spending
    /// before its block) and what its steps' journaled answers add.
    spent: Arc<UsageMeter>,
    /// The execution's token budget (`limits.maxTokens`).
    budget: Option<u64>,
}

impl<'a> Invocation<'a> {
    /// The invocation as item `index` of map `map` runs its body in it.
    pub(crate) fn item(&self, map: &str, index: usize) -> Invocation<'a> {
        Invocation {
            ctx: self.ctx,
            meta: self.meta.clone(),
            service: self.service,
            input: self.input.clone(),
            outputs: Mutex::new(Map::new()),
            prefix: format!("{}{map}[{index}].", self.prefix),
            spent: self.spent.clone(),
            budget: self.budget,
        }
    }

    /// Whether this runs a map item's body.
    pub(crate) fn in_item(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// Notes a step's output, for the branches that start after it.
    pub(crate) fn succeeded(&self, step: &str, output: Value) {
        self.outputs.lock().unwrap_or_else(|e| e.into_inner()).insert(step.to_owned(), canonical(output));
    }
}

/// The request of a parallel block's branch, or of a map's item: the
/// execution it belongs to, the outputs of the steps that ran before the
/// block, and where the branch (or the map) is in the plan (child indexes
/// from the root).
#[derive(Debug, Serialize, Deserialize)]
pub struct Branch<I> {
    /// The workflow's input.
    pub input: I,
    /// The execution's id: the invocation id of `run`.
    pub execution_id: String,
    /// Outputs of the steps that succeeded before the block, by step id.
    pub outputs: Map<String, Value>,
    /// The branch's node: the index of each child on the way from the root.
    pub path: Vec<usize>,
    /// For a map's item: its index (the node at `path` is the map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// The model tokens the execution had spent when the block started:
    /// what the branch's budget starts from.
    #[serde(default, skip_serializing_if = "Usage::is_empty")]
    pub spent: Usage,
}

/// What a branch answers: the outputs of the steps it ran, by step id; a
/// map's item, its output.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct BranchOutputs {
    /// The outputs, by step id.
    pub outputs: Map<String, Value>,
    /// A map item's output; absent when its body ended without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    /// The model tokens the branch's steps spent.
    #[serde(default, skip_serializing_if = "Usage::is_empty")]
    pub spent: Usage,
}

/// The execution's ids on Restate: the invocation id of `run` is both.
fn ids(execution_id: &str) -> ExecutionIds {
    ExecutionIds { execution_id: execution_id.to_owned(), correlation_id: execution_id.to_owned() }
}

/// A workflow as a Restate service: what its handlers run.
pub struct Service<S, O> {
    name: &'static str,
    workflow: Workflow<S, O>,
    /// The workflow's input schema, whose bounds (minimum, lengths, ...) the
    /// input's Rust type cannot hold: checked before the first step.
    input_schema: Option<Value>,
}

impl<S: Send + Sync + 'static, O: Serialize> Service<S, O> {
    /// The service `name` (the workflow id: `POST /NAME/run`) running `workflow`.
    pub fn new(name: &'static str, workflow: Workflow<S, O>) -> Self {
        Service { name, workflow, input_schema: None }
    }

    /// The input schema (JSON text written by orchestr8), checked on every
    /// execution's input as the embedded program checks it.
    pub fn input_schema(mut self, schema: &str) -> Self {
        self.input_schema = Some(serde_json::from_str(schema).expect("the input schema is JSON written by orchestr8"));
        self
    }

    /// The service's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The service's options for Restate: an invocation may stay in flight
    /// without journaling anything as long as its longest agent call (and
    /// its cancellation grace), or Restate would ask it to suspend mid-call
    /// and, while the call's cancellation watch reads the invocation's
    /// input, it would (a suspension that nothing resumes).
    pub fn options(&self) -> restate_sdk::endpoint::ServiceOptions {
        let mut longest = Duration::ZERO;
        self.workflow.root().each_step(&mut |s| longest = longest.max(s.longest_call().unwrap_or_default()));
        // Restate's default (1 minute) is the least; then a margin.
        let inactivity = (longest + Duration::from_secs(30)).max(Duration::from_secs(60));
        restate_sdk::endpoint::ServiceOptions::new().inactivity_timeout(inactivity)
    }
}

/// `service` (a `#[restate_sdk::service]`) with `options` (see
/// [`Service::options`]), to bind to the endpoint.
pub fn with_options(
    service: impl restate_sdk::service::IntoServiceDefinition,
    options: restate_sdk::endpoint::ServiceOptions,
) -> restate_sdk::service::ServiceDefinition {
    service.into_service_definition().options(options)
}

fn invocation<'a, S: Send + Sync + 'static, O: Serialize>(
    ctx: &'a Context<'a>,
    service: &'a Service<S, O>,
    input: Value,
    execution_id: &str,
) -> Invocation<'a> {
    let info = service.workflow.info();
    let id: Arc<str> = execution_id.into();
    let meta = Arc::new(ExecutionMeta {
        execution_id: id.clone(),
        correlation_id: id,
        workflow_id: info.id.clone(),
        workflow_version: info.version.clone(),
    });
    Invocation {
        ctx,
        meta,
        service: service.name,
        input,
        outputs: Mutex::new(Map::new()),
        prefix: String::new(),
        spent: Arc::default(),
        budget: info.max_tokens,
    }
}

/// Runs the workflow inside the handler `run`: the input checked (its
/// schema's bounds; a 400 terminal error), a state from it (by `new_state`,
/// as the embedded program makes it), each step in plan order, then the
/// workflow's output.
pub async fn run<S, I, O>(
    ctx: &Context<'_>,
    service: &Service<S, O>,
    input: I,
    new_state: impl FnOnce(I, &ExecutionIds) -> S,
) -> HandlerResult<Output<O>>
where
    S: Send + Sync + 'static,
    I: Serialize,
    O: Serialize,
{
    let json = checked_json(service.input_schema.as_ref(), &input)
        .map_err(|e| TerminalError::new_with_code(400, format!("invalid input: {e}")))?;
    let execution_id = ctx.invocation_id().to_owned();
    let on = invocation(ctx, service, canonical(json), &execution_id);
    let state = Arc::new(new_state(input, &ids(&execution_id)));
    let workflow = &service.workflow;
    let ran = node(&on, workflow.root(), &mut Vec::new(), &state).await;
    // Every error of the plan is terminal: the execution has ended, and
    // its signals object forgets its waits (a signal from now on is a 409).
    if !workflow.wait_steps().is_empty() {
        ctx.request::<(), ()>(RequestTarget::object(signals_object(service.name), execution_id.clone(), "end"), ())
            .send();
    }
    ran?;
    let output = workflow.output_of(&state).map_err(|e| TerminalError::new(format!("invalid output: {e}")))?;
    Ok(Output(output))
}

/// Runs one branch of a parallel block, or one item of a map, inside the
/// handler `branch`: the state rebuilt from the request (the input and the
/// outputs so far), the branch's node (or the item's body) run, and the
/// outputs of its steps (or the item's output) answered.
pub async fn run_branch<S, I, O>(
    ctx: &Context<'_>,
    service: &Service<S, O>,
    request: Branch<I>,
    new_state: impl FnOnce(I, &ExecutionIds) -> S,
) -> HandlerResult<Json<BranchOutputs>>
where
    S: Send + Sync + 'static,
    I: Serialize,
    O: Serialize,
{
    let Branch { input, execution_id, outputs: before, path, item, spent } = request;
    let json =
        serde_json::to_value(&input).map_err(|e| TerminalError::new(format!("the input cannot be written: {e}")))?;
    let on = invocation(ctx, service, canonical(json), &execution_id);
    on.spent.add(spent);
    let state = Arc::new(new_state(input, &ids(&execution_id)));
    let root = service.workflow.root();
    restore(root, &state, &before)?;
    let branch = node_at(root, &path)
        .ok_or_else(|| TerminalError::new(format!("no branch at {path:?}: the service's plan changed")))?;
    if let Some(index) = item {
        let Node::Step(map) = branch else {
            return Err(TerminalError::new(format!("no map at {path:?}: the service's plan changed")).into());
        };
        let item = map.run_item_on_restate(&on, &state, index).await?;
        return Ok(Json(BranchOutputs { outputs: Map::new(), item, spent: on.spent.get().since(spent) }));
    }
    *on.outputs.lock().unwrap_or_else(|e| e.into_inner()) = before.clone();
    node(&on, branch, &mut path.clone(), &state).await?;
    let spent = on.spent.get().since(spent);
    let mut outputs = on.outputs.into_inner().unwrap_or_else(|e| e.into_inner());
    outputs.retain(|step, _| !before.contains_key(step));
    Ok(Json(BranchOutputs { outputs, item: None, spent }))
}

/// `value` with every object's members in key order. What a handler sends
/// in a call is compared with the journal on replay, byte for byte, and a
/// replayed output decoded into a `HashMap` comes back in another order.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut members: Vec<(String, Value)> = map.into_iter().map(|(k, v)| (k, canonical(v))).collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(members.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// Puts each step's output of `outputs` into `state`, as a resume does; a
/// switch's output is stored again from the branch it took.
fn restore<S: Send + Sync + 'static>(
    n: &Node<S>,
    state: &S,
    outputs: &Map<String, Value>,
) -> Result<(), TerminalError> {
    match n {
        Node::Step(step) => match outputs.get(&**step.step_id()) {
            Some(output) => step.restore(state, output).map_err(TerminalError::new),
            None => Ok(()),
        },
        Node::Sequence { children, .. } | Node::Parallel { children, .. } => {
            children.iter().try_for_each(|c| restore(c, state, outputs))
        }
        Node::Switch(switch) => {
            for (_, branch) in switch.branches() {
                restore(branch, state, outputs)?;
            }
            match outputs.get(&**switch.id()).and_then(Value::as_u64) {
                Some(taken) => switch.store_output(state, taken as usize).map_err(TerminalError::new),
                None => Ok(()),
            }
        }
    }
}

/// The node at `path` (child indexes from `root`; a switch's children are
/// its branches).
fn node_at<'a, S: Send + Sync + 'static>(root: &'a Node<S>, path: &[usize]) -> Option<&'a Node<S>> {
    path.iter().try_fold(root, |n, &i| match n {
        Node::Sequence { children, .. } | Node::Parallel { children, .. } => children.get(i),
        Node::Switch(switch) => switch.branches().nth(i).map(|(_, branch)| branch),
        Node::Step(_) => None,
    })
}

/// One node of the plan at `path`: a step, its children in order, or a
/// parallel block's branches as calls to the service's `branch` handler.
pub(crate) fn node<'a, S: Send + Sync + 'static>(
    on: &'a Invocation<'a>,
    n: &'a Node<S>,
    path: &'a mut Vec<usize>,
    state: &'a Arc<S>,
) -> BoxFuture<'a, Result<(), TerminalError>> {
    Box::pin(async move {
        match n {
            Node::Step(step) => step.run_on_restate(on, state, path).await,
            Node::Sequence { children, .. } => {
                for (i, child) in children.iter().enumerate() {
                    path.push(i);
                    let done = node(on, child, path, state).await;
                    path.pop();
                    done?;
                }
                Ok(())
            }
            Node::Parallel { children, fail_fast, .. } => {
                if on.in_item() {
                    // The `branch` handler finds branches from the root: not in an item's body.
                    return Err(TerminalError::new("a parallel block in a map's body does not run on Restate"));
                }
                parallel(on, children, *fail_fast, path, state).await
            }
            // The selector reads outputs a replay restores as they were: it
            // takes the same branch every time. The others are not run.
            Node::Switch(switch) => {
                let taken = switch
                    .select(state)
                    .map_err(|e| TerminalError::new(format!("switch {}: invalid input: {e}", switch.id())))?;
                let (_, branch) = switch.branches().nth(taken).expect("select checks the index");
                path.push(taken);
                let done = node(on, branch, path, state).await;
                path.pop();
                done?;
                switch
                    .store_output(state, taken)
                    .map_err(|e| TerminalError::new(format!("switch {}: invalid output: {e}", switch.id())))?;
                if switch.has_output() {
                    // A later branch stores the output again from the branch taken.
                    on.succeeded(switch.id(), Value::from(taken));
                }
                Ok(())
            }
        }
    })
}

/// A parallel block: each branch a durable call to the service's `branch`
/// handler (the SDK cannot join concurrent journaled actions of one
/// invocation), joined as the contract says: the first failure cancels
/// the other branches (`failFast`, the default), or every branch ends first.
async fn parallel<S: Send + Sync + 'static>(
    on: &Invocation<'_>,
    branches: &[Node<S>],
    fail_fast: bool,
    path: &[usize],
    state: &Arc<S>,
) -> Result<(), TerminalError> {
    let outputs = on.outputs_so_far();
    let mut calls = DurableFuturesUnordered::new();
    let mut handles = Vec::with_capacity(branches.len());
    for i in 0..branches.len() {
        let (handle, call) = on.call_branch(&outputs, [path, &[i]].concat(), None).await?;
        handles.push(handle);
        calls.push(call);
    }
    let mut failed = None;
    while let Some((i, result)) = calls.next().await? {
        match result {
            Ok(Json(branch)) => {
                // The branch's outputs, into this invocation's state.
                on.spent.add(branch.spent);
                if let Err(e) = restore(&branches[i], state.as_ref(), &branch.outputs) {
                    // No branch goes on for a block that failed.
                    handles.iter().for_each(|h| h.cancel());
                    return Err(e);
                }
                for (step, output) in branch.outputs {
                    on.succeeded(&step, output);
                }
            }
            Err(e) if fail_fast => {
                for (j, handle) in handles.iter().enumerate() {
                    if j != i {
                        handle.cancel();
                    }
                }
                return Err(e);
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// A call to the service's `branch` handler, boxed to join others.
type BranchCall<'a> = Pin<Box<dyn DurableFuture<Output = Result<Json<BranchOutputs>, TerminalError>> + Send + 'a>>;

impl<'a> Invocation<'a> {
    /// The outputs so far, in key order: a call's parameters must be the
    /// same on every replay.
    fn outputs_so_far(&self) -> Map<String, Value> {
        match canonical(Value::Object(self.outputs.lock().unwrap_or_else(|e| e.into_inner()).clone())) {
            Value::Object(outputs) => outputs,
            _ => unreachable!("an object stays an object"),
        }
    }

    /// Starts the branch at `path` (or item `item` of the map there) as a
    /// call to the service's `branch` handler: its invocation, to cancel
    /// it, and its answer.
    async fn call_branch(
        &self,
        outputs: &Map<String, Value>,
        path: Vec<usize>,
        item: Option<usize>,
    ) -> Result<(restate_sdk::context::InvocationHandle, BranchCall<'a>), TerminalError> {
        let request = Branch {
            input: self.input.clone(),
            execution_id: self.meta.execution_id.to_string(),
            outputs: outputs.clone(),
            path,
            item,
            spent: self.spent.get(),
        };
        let call = self
            .ctx
            .request::<Json<Branch<Value>>, Json<BranchOutputs>>(
                RequestTarget::service(self.service, "branch"),
                Json(request),
            )
            .call();
        let handle = call.invocation_handle().await?;
        Ok((handle, Box::pin(call)))
    }
}

/// A map's items on Restate: each a call to the service's `branch` handler
/// (as a parallel block's branches), at most `concurrency` in flight,
/// started in item order; the outputs in input order, `None` for a failed
/// item. Beyond `tolerated` failures the items still running are cancelled,
/// and once they have ended the map fails with the embedded target's
/// message.
pub(crate) async fn map_items(
    on: &Invocation<'_>,
    path: &[usize],
    total: usize,
    concurrency: usize,
    tolerated: usize,
) -> Result<Vec<Option<Value>>, TerminalError> {
    let outputs = on.outputs_so_far();
    let mut results: Vec<Option<Value>> = vec![None; total];
    let mut calls = DurableFuturesUnordered::new();
    let mut handles = Vec::with_capacity(total);
    let mut failed = 0usize;
    // The first failure beyond the tolerated ones: no item starts after it,
    // and the map ends once the items it cancelled have (as embedded).
    let mut beyond: Option<(usize, TerminalError)> = None;
    loop {
        while beyond.is_none() && calls.len() < concurrency.max(1) && handles.len() < total {
            let (handle, call) = on.call_branch(&outputs, path.to_vec(), Some(handles.len())).await?;
            handles.push(handle);
            // Pushed in item order: the index it answers with is the item's.
            calls.push(call);
        }
        let Some((index, result)) = calls.next().await? else { break };
        let error = match result {
            Ok(Json(BranchOutputs { item: Some(output), spent, .. })) => {
                on.spent.add(spent);
                results[index] = Some(output);
                continue;
            }
            Ok(Json(BranchOutputs { item: None, spent, .. })) => {
                on.spent.add(spent);
                TerminalError::new("the item's body ended without an output")
            }
            // Cancelled by this map, past its tolerated failures.
            Err(e) if is_cancellation(&e) && beyond.is_some() => continue,
            // An item cancelled on its own (not by this map): the map is
            // cancelled, and no item it started goes on.
            Err(e) if is_cancellation(&e) => {
                handles.iter().for_each(|h| h.cancel());
                return Err(e);
            }
            Err(e) => e,
        };
        failed += 1;
        if failed > tolerated && beyond.is_none() {
            for handle in &handles {
                handle.cancel();
            }
            beyond = Some((index, error));
        }
    }
    match beyond {
        // With the item's code, as embedded keeps the item's error kind.
        Some((index, error)) => Err(TerminalError::new_with_code(
            error.code(),
            format!("{failed} of {total} items failed ({tolerated} tolerated); item {index}: {}", error.message()),
        )),
        None => Ok(results),
    }
}

/// The name of the virtual object that takes a workflow's signals: its id,
/// then `-signals` (`POST /ID-signals/EXECUTION_ID/signal` on the ingress).
pub fn signals_object(id: &str) -> String {
    format!("{id}-signals")
}

/// A waiting step's registration with its execution's signals object: the
/// awakeable the step awaits (sent by the step, not through the ingress).
#[derive(Debug, Serialize, Deserialize)]
pub struct Register {
    /// The wait step's id.
    pub step: String,
    /// The awakeable's id, which the signal resolves.
    pub awakeable: String,
    /// The step no longer waits (it timed out, or was cancelled): a later
    /// signal is refused (409), as embedded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub closed: bool,
}

/// The workflow's input as the `run` handler takes it: JSON, declared in
/// Restate's discovery (so in its UI and the OpenAPI it serves) with the
/// schema the workflow declares, bounds and all, which `S` gives (the SDK's
/// `Json` declares `{}`).
pub struct Input<T, S>(pub T, pub std::marker::PhantomData<S>);

/// The JSON Schema a workflow declares for its input (the generated crate
/// implements it on a type of its own, with the workflow's `INPUT_SCHEMA`).
pub trait DeclaredInput {
    /// The workflow's input schema, JSON text.
    const SCHEMA: &'static str;
}

impl<T: serde::de::DeserializeOwned, S> restate_sdk::serde::Deserialize for Input<T, S> {
    type Error = serde_json::Error;
    fn deserialize(bytes: &mut bytes::Bytes) -> Result<Self, Self::Error> {
        serde_json::from_slice(bytes).map(|input| Input(input, std::marker::PhantomData))
    }
}

impl<T: Serialize, S> restate_sdk::serde::Serialize for Input<T, S> {
    type Error = serde_json::Error;
    fn serialize(&self) -> Result<bytes::Bytes, Self::Error> {
        serde_json::to_vec(&self.0).map(bytes::Bytes::from)
    }
}

impl<T, S: DeclaredInput> restate_sdk::serde::PayloadMetadata for Input<T, S> {
    fn json_schema() -> Option<Value> {
        Some(serde_json::from_str(S::SCHEMA).unwrap_or_else(|_| Value::Object(Map::new())))
    }
}

/// The workflow's output as the `run` handler answers it: JSON, declared in
/// Restate's discovery with its type's JSON Schema.
pub struct Output<T>(pub T);

impl<T: Serialize> restate_sdk::serde::Serialize for Output<T> {
    type Error = serde_json::Error;
    fn serialize(&self) -> Result<bytes::Bytes, Self::Error> {
        serde_json::to_vec(&self.0).map(bytes::Bytes::from)
    }
}

impl<T: serde::de::DeserializeOwned> restate_sdk::serde::Deserialize for Output<T> {
    type Error = serde_json::Error;
    fn deserialize(bytes: &mut bytes::Bytes) -> Result<Self, Self::Error> {
        serde_json::from_slice(bytes).map(Output)
    }
}

impl<T: schemars::JsonSchema> restate_sdk::serde::PayloadMetadata for Output<T> {
    fn json_schema() -> Option<Value> {
        serde_json::to_value(schemars::schema_for!(T)).ok()
    }
}

/// A signal for a wait step of an execution, through the ingress: `POST
/// /ID-signals/EXECUTION_ID/signal` with `{"step": ..., "payload": ...}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Signal {
    /// The wait step's id.
    pub step: String,
    /// What the step's output becomes; it must fit the wait's schema.
    pub payload: Value,
}

/// What the signals object keeps of one wait step of its execution.
#[derive(Debug, Default, Serialize, Deserialize)]
struct WaitState {
    /// The awakeable the step awaits, once it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    awakeable: Option<String>,
    /// A payload that came before the step waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Value>,
    /// Whether the step got its signal.
    #[serde(default)]
    delivered: bool,
    /// Whether the step stopped waiting without one.
    #[serde(default)]
    closed: bool,
}

/// The signals object's state key of every wait step's state, by step id
/// (the SDK's state keys must outlive the handler's context: constants).
const WAITS: &str = "waits";
/// Its state key set once the execution has ended (all it then keeps).
const ENDED: &str = "ended";

/// Whether the execution has ended (its `end` came).
async fn ended(ctx: &ObjectContext<'_>) -> Result<bool, TerminalError> {
    Ok(ctx.get::<Json<bool>>(ENDED).await?.is_some_and(|ended| ended.0))
}

/// Handler `end` of the signals object, called by the execution when it
/// ends: its waits' states and unclaimed payloads are dropped, and a
/// signal from now on is refused (409).
pub async fn end(ctx: &ObjectContext<'_>) -> HandlerResult<()> {
    ctx.clear_all();
    ctx.set(ENDED, Json(true));
    Ok(())
}

async fn waits_of(ctx: &ObjectContext<'_>) -> Result<Map<String, Value>, TerminalError> {
    Ok(ctx.get::<Json<Map<String, Value>>>(WAITS).await?.map(|j| j.0).unwrap_or_default())
}

fn wait_state(waits: &Map<String, Value>, step: &str) -> WaitState {
    waits.get(step).and_then(|v| WaitState::deserialize(v).ok()).unwrap_or_default()
}

fn put_wait_state(ctx: &ObjectContext<'_>, mut waits: Map<String, Value>, step: &str, state: &WaitState) {
    if let Ok(value) = serde_json::to_value(state) {
        waits.insert(step.to_owned(), value);
    }
    ctx.set(WAITS, Json(waits));
}

/// Handler `register` of the signals object: the step awaits `awakeable`;
/// a payload that came first resolves it at once.
pub async fn register(ctx: &ObjectContext<'_>, request: Register) -> HandlerResult<()> {
    if ended(ctx).await? {
        // A wait's closing sent as the execution failed, delivered after its
        // end: nothing is left to close (and the sender does not wait).
        return Ok(());
    }
    let waits = waits_of(ctx).await?;
    let mut state = wait_state(&waits, &request.step);
    if request.closed {
        state.closed = true;
        state.awakeable = None;
        put_wait_state(ctx, waits, &request.step, &state);
        return Ok(());
    }
    match state.pending.take() {
        Some(payload) => {
            ctx.resolve_awakeable(&request.awakeable, Json(payload));
            state.delivered = true;
        }
        None => state.awakeable = Some(request.awakeable),
    }
    put_wait_state(ctx, waits, &request.step, &state);
    Ok(())
}

/// Handler `signal` of the signals object: the payload checked against the
/// wait's type and schema (422 where it does not fit, 404 for a step that
/// is no wait), then handed to the step, now or once it waits; a second
/// signal for a step, or one after the execution ended, is a 409, as embedded.
pub async fn signal<S: Send + Sync + 'static, O: Serialize>(
    ctx: &ObjectContext<'_>,
    service: &Service<S, O>,
    request: Signal,
) -> HandlerResult<()> {
    let step = request.step;
    let mut waiting = None;
    service.workflow.root().each_step(&mut |s| {
        if &**s.step_id() == step.as_str() {
            waiting = s.waiting().map(|w| w.check(&request.payload));
        }
    });
    let payload = match waiting {
        Some(Ok(payload)) => payload,
        Some(Err(e)) => {
            return Err(
                TerminalError::new_with_code(422, format!("the payload does not fit wait step `{step}`: {e}")).into()
            )
        }
        None => {
            let steps = service.workflow.wait_steps().join(", ");
            return Err(
                TerminalError::new_with_code(404, format!("no wait step `{step}` (the wait steps: {steps})")).into()
            );
        }
    };
    if ended(ctx).await? {
        return Err(TerminalError::new_with_code(409, format!("execution {} has ended", ctx.key())).into());
    }
    let waits = waits_of(ctx).await?;
    let mut state = wait_state(&waits, &step);
    if state.delivered || state.pending.is_some() {
        return Err(TerminalError::new_with_code(409, format!("step `{step}` already has its signal")).into());
    }
    if state.closed {
        return Err(TerminalError::new_with_code(409, format!("step `{step}` no longer waits")).into());
    }
    match state.awakeable.take() {
        Some(awakeable) => {
            ctx.resolve_awakeable(&awakeable, Json(payload));
            state.delivered = true;
        }
        None => state.pending = Some(payload),
    }
    put_wait_state(ctx, waits, &step, &state);
    Ok(())
}

/// A wait step on Restate: an awakeable registered with the execution's
/// signals object, awaited (at most `timeout`, a durable timer); its
/// payload, or `None` when the time ran out.
pub(crate) async fn wait_for_signal(
    on: &Invocation<'_>,
    step: &str,
    timeout: Option<Duration>,
) -> Result<Option<Value>, TerminalError> {
    let (awakeable, payload) = on.ctx.awakeable::<Json<Value>>();
    let register = |awakeable: String, closed: bool| {
        on.ctx
            .request::<Json<Register>, ()>(
                RequestTarget::object(signals_object(on.service), on.meta.execution_id.to_string(), "register"),
                Json(Register { step: step.to_owned(), awakeable, closed }),
            )
            .send();
    };
    register(awakeable, false);
    let received: Result<Option<Value>, TerminalError> = match timeout {
        None => payload.await.map(|p| Some(p.0)),
        Some(timeout) => restate_sdk::select! {
            received = payload => received.map(|p| Some(p.0)),
            _ = on.ctx.sleep(timeout) => Ok(None),
            on_cancel => Err(TerminalError::new_with_code(409, "cancelled")),
        },
    };
    if !matches!(received, Ok(Some(_))) {
        // Timed out or cancelled: a signal sent from now on is refused.
        register(String::new(), true);
    }
    received
}

/// Whether Restate ended the action because the invocation was cancelled
/// (the SDK's 409): that is never a step's own failure to continue past.
pub(crate) fn is_cancellation(error: &TerminalError) -> bool {
    error.code() == 409
}

/// The step's policy as Restate's retry policy of its action.
pub fn retry_policy(policy: &Policy) -> RunRetryPolicy {
    RunRetryPolicy::new()
        .initial_delay(policy.retry.initial_delay)
        .exponentiation_factor(policy.retry.backoff_multiplier as f32)
        .max_delay(policy.retry.max_delay)
        .max_attempts(policy.retry.max_attempts)
        .max_duration(policy.timeout)
}

/// How long one attempt may take: its own timeout, within the step's.
fn attempt_bound(policy: &Policy) -> Duration {
    policy.attempt_timeout.map_or(policy.timeout, |t| t.min(policy.timeout))
}

/// One agent step as Restate sees it: what the executor's step holds.
pub(crate) struct AgentCall<'a, A: Agent> {
    pub(crate) step: &'a Arc<str>,
    pub(crate) agent: &'a Arc<A>,
    pub(crate) policy: &'a Policy,
    pub(crate) config: &'a Value,
    pub(crate) breaker: Option<&'a Arc<CircuitBreaker>>,
}

impl<A: Agent> AgentCall<'_, A> {
    /// Runs the step as one journaled action named by its id, retried by
    /// Restate under the step's policy; a replay reads its output back.
    pub(crate) async fn run(
        &self,
        on: &Invocation<'_>,
        input: Result<A::Input, String>,
    ) -> Result<A::Output, TerminalError> {
        // In a map item's body, `MAP[INDEX].STEP`: the name the agent is
        // told (and its idempotency key), errors say and the journal shows.
        let step: Arc<str> =
            if on.prefix.is_empty() { self.step.clone() } else { format!("{}{}", on.prefix, self.step).into() };
        let input = input.map_err(|e| TerminalError::new(format!("step {step}: invalid input: {e}")))?;
        let cancel = CancellationToken::new();
        let started = Arc::new(Notify::new());
        // Restate tells a running action nothing: its cancel signal reaches
        // the invocation's input, which only an awaited durable future reads.
        // An awakeable nobody resolves is such a future, created here on
        // every run and replay alike (it takes no journal entry, only the
        // next signal id) and awaited only once the action really runs: an
        // unresolved await while replaying would be a journal mismatch.
        let (_, cancelled) = on.ctx.awakeable::<()>();
        let attempt = Attempt {
            agent: self.agent.clone(),
            meta: on.meta.clone(),
            step: step.clone(),
            config: self.config.clone(),
            policy: *self.policy,
            breaker: self.breaker.cloned(),
            cancel: cancel.clone(),
            started: started.clone(),
            spent: on.spent.get(),
            budget: on.budget,
        };
        let action =
            on.ctx.run(move || attempt.call(input)).name(step.to_string()).retry_policy(retry_policy(self.policy));
        let watch = async {
            started.notified().await;
            cancelled.await
        };
        let mut action = std::pin::pin!(action);
        let output = tokio::select! {
            biased;
            output = &mut action => output,
            Err(_) = watch => {
                // Cancelled (the SDK's 409; an awakeable whose id nobody
                // knows completes no other way): the agent is told and has
                // its `cancelGrace` to return, as embedded; then it is
                // abandoned. What it answers no longer matters.
                cancel.cancel();
                let _ = tokio::time::timeout(self.policy.cancel_grace, action).await;
                Err(TerminalError::new_with_code(409, "cancelled"))
            }
        };
        let Json(answer) = output?;
        // Journaled with the output: a replay counts it again, the same.
        on.spent.add(answer.usage);
        Ok(answer.output)
    }
}

/// What a step's action answers and Restate journals: its output and the
/// model tokens it spent (the budget's count survives a replay).
#[derive(Serialize, Deserialize)]
struct Answer<O> {
    output: O,
    #[serde(default, skip_serializing_if = "Usage::is_empty")]
    usage: Usage,
}

/// What one attempt needs, owned: Restate may run it on a later replay.
struct Attempt<A> {
    agent: Arc<A>,
    meta: Arc<ExecutionMeta>,
    step: Arc<str>,
    config: Value,
    policy: Policy,
    breaker: Option<Arc<CircuitBreaker>>,
    /// Cancelled when the invocation is: the agent's token.
    cancel: CancellationToken,
    /// Notified when the action runs (not on a replay of its result).
    started: Arc<Notify>,
    /// The execution's tokens spent before the step, and its budget.
    spent: Usage,
    budget: Option<u64>,
}

/// How a failed attempt ends its action.
enum Failed {
    /// Restate retries it under the step's retry policy.
    Retry(String),
    /// The step fails (or the invocation was cancelled: code 409).
    Terminal(TerminalError),
}

impl From<Failed> for HandlerError {
    fn from(f: Failed) -> Self {
        match f {
            Failed::Retry(message) => HandlerError::from(message),
            Failed::Terminal(e) => e.into(),
        }
    }
}

/// The terminal code of a step that failed because the execution's token
/// budget is spent (the REST facade reads it as `budget_exceeded`).
pub(crate) const BUDGET_EXCEEDED: u16 = 402;

impl<A: Agent> Attempt<A> {
    async fn call(self, input: A::Input) -> HandlerResult<Json<Answer<A::Output>>> {
        self.attempt(input).await.map(Json).map_err(HandlerError::from)
    }

    async fn attempt(self, input: A::Input) -> Result<Answer<A::Output>, Failed> {
        // The breaker is this process's, as in the embedded target: an open
        // one fails the step at once, never retried.
        let permit = match &self.breaker {
            Some(b) => Some(b.try_acquire(|_| {}).map_err(|_| {
                Failed::Terminal(TerminalError::new(format!(
                    "step {}: circuit breaker for agent {}@{} is open",
                    self.step,
                    self.agent.id(),
                    self.agent.version()
                )))
            })?),
            None => None,
        };
        self.started.notify_one();
        // The execution's meter starts from what it spent before: an
        // attempt's own spending is answered, and added once journaled.
        let (step, execution) = (UsageMeter::default(), UsageMeter::default());
        execution.add(self.spent);
        // Restate does not say which attempt this is: every attempt is the first.
        let ctx = AgentContext::new(&self.cancel, &self.meta, &self.step, 1, &self.config).with_tokens(Tokens::new(
            &step,
            &execution,
            self.budget,
        ));
        let bound = attempt_bound(&self.policy);
        let call = std::panic::AssertUnwindSafe(self.agent.run(&ctx, input)).catch_unwind();
        let result = match tokio::time::timeout(bound, call).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(AgentError::fatal(format!("the agent panicked: {}", panic_message(&panic)))),
            Err(_) => {
                Err(AgentError::retryable(format!("the attempt timed out after {}", humantime::format_duration(bound))))
            }
        };
        match result {
            Ok(output) => {
                if let Some(p) = permit {
                    p.success(|_| {});
                }
                Ok(Answer { output, usage: step.get() })
            }
            Err(e) => {
                // A spent budget is the execution's, not the agent's failure:
                // as embedded, the breaker does not count it (dropping the
                // permit records nothing).
                if let Some(p) = permit.filter(|_| e.kind() != AgentErrorKind::BudgetExceeded) {
                    p.failure(|_| {});
                }
                if self.cancel.is_cancelled() {
                    // Never retried: the invocation is over.
                    return Err(Failed::Terminal(TerminalError::new_with_code(409, "cancelled")));
                }
                let message = format!("step {}: {e}", self.step);
                Err(match e.kind() {
                    AgentErrorKind::Retryable => Failed::Retry(message),
                    AgentErrorKind::BudgetExceeded => {
                        Failed::Terminal(TerminalError::new_with_code(BUDGET_EXCEEDED, message))
                    }
                    _ => Failed::Terminal(TerminalError::new(message)),
                })
            }
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Serves `service` on the address of `--bind ADDR` (default
/// `127.0.0.1:9080`, loopback: Restate calls it, nobody else should) until
/// Ctrl-C or SIGTERM. The process's exit code: 0 once stopped, 1 when the
/// address cannot be bound, 2 for a bad command line.
///
/// The whole of a generated Restate crate's `main`, after the service's
/// handlers (`no_run`: it serves until stopped):
///
/// ```no_run
/// use orchestr8_runtime::codegen::{self as rt, *};
/// # struct Greet;
/// # impl Agent for Greet {
/// #     type Input = String;
/// #     type Output = String;
/// #     fn id(&self) -> &str { "greet" }
/// #     fn version(&self) -> &str { "1.0.0" }
/// #     async fn run(&self, _: &AgentContext<'_>, name: String) -> Result<String, AgentError> { Ok(name) }
/// # }
/// # pub struct State { name: String, greet: OnceLock<String> }
/// # fn workflow() -> Workflow<State, String> {
/// #     let step = AgentStep::new("greet", Arc::new(Greet), |s: &State| Ok(s.name.clone()), |s: &State, o| store(&s.greet, "greet", o));
/// #     Workflow::new(WorkflowInfo::new("hello", "1.0.0", "sha256:x"), Node::sequence([step.node()]), |s: &State| Ok(slot(&s.greet, "greet")?.clone()))
/// # }
///
/// pub struct Service {
///     service: rt::restate::Service<State, String>,
/// }
///
/// /// The input's schema, declared to Restate for `run`.
/// pub struct NameSchema;
///
/// impl rt::restate::DeclaredInput for NameSchema {
///     const SCHEMA: &'static str = r#"{"type": "string"}"#;
/// }
///
/// #[restate_sdk::service(name = "hello")]
/// impl Service {
///     /// Runs the workflow on its input; its output is the answer.
///     #[handler]
///     async fn run(
///         &self,
///         ctx: restate_sdk::context::Context<'_>,
///         input: rt::restate::Input<String, NameSchema>,
///     ) -> restate_sdk::errors::HandlerResult<rt::restate::Output<String>> {
///         rt::restate::run(&ctx, &self.service, input.0, |name, _ids| State { name, greet: OnceLock::new() }).await
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     let service = rt::restate::Service::new("hello", workflow()).input_schema(r#"{"type": "string"}"#);
///     // Restate keeps an invocation in flight as long as its longest agent call.
///     let options = service.options();
///     let endpoint = restate_sdk::endpoint::Endpoint::builder()
///         .bind(rt::restate::with_options(Service { service }, options))
///         .build();
///     rt::restate::serve(endpoint, "hello")
/// }
/// ```
pub fn serve(endpoint: restate_sdk::endpoint::Endpoint, name: &str) -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut bind = String::from("127.0.0.1:9080");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => match args.next() {
                Some(addr) => bind = addr,
                None => {
                    eprintln!("error: --bind needs an address, like 127.0.0.1:9080");
                    return std::process::ExitCode::from(2);
                }
            },
            "--help" | "-h" => {
                println!("Serves the `{name}` workflow as a Restate service.\n\nUsage: {name} [--bind ADDR]\n\n  --bind ADDR  where the Restate server reaches this service [default: 127.0.0.1:9080]\n\nThen register it: POST http://RESTATE_ADMIN/deployments {{\"uri\": \"http://ADDR\"}}");
                return std::process::ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("error: unexpected argument `{arg}`; usage: {name} [--bind ADDR]");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let addr: std::net::SocketAddr = match bind.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --bind `{bind}` is not an address like 127.0.0.1:9080: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    listening(addr, |listener| async move {
        eprintln!("serving `{name}` for Restate on http://{addr} (HTTP/2)");
        restate_sdk::http_server::HttpServer::new(endpoint).serve_with_cancel(listener, stopped()).await;
        std::process::ExitCode::SUCCESS
    })
}

/// Runs `serve` on a listener bound to `addr` (here, not by the SDK, which
/// panics on an address in use), in a runtime of its own; exit 1 when
/// either cannot be had.
fn listening<F, Fut>(addr: std::net::SocketAddr, serve: F) -> std::process::ExitCode
where
    F: FnOnce(tokio::net::TcpListener) -> Fut,
    Fut: std::future::Future<Output = std::process::ExitCode>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => serve(listener).await,
            Err(e) => {
                eprintln!("error: cannot serve on {addr}: {e}");
                std::process::ExitCode::from(1)
            }
        }
    })
}

/// `ID-restate rest [--addr ADDR] [--ingress URL] [--admin URL]
/// [--wait-timeout DURATION]`: serves `PROGRAM serve`'s REST API (execute,
/// status, journal, cancel, signals) for the workflow of `service`, over
/// Restate's ingress (default `http://127.0.0.1:8080`) and admin API
/// (default `http://127.0.0.1:9070`), on `ADDR` (default
/// `127.0.0.1:8081`), until Ctrl-C or SIGTERM. Exit 0 once stopped, 1 when
/// the address cannot be bound, 2 for a bad command line.
#[cfg(feature = "restate-rest")]
pub fn rest<I, S, O>(service: Service<S, O>) -> std::process::ExitCode
where
    I: serde::de::DeserializeOwned + Serialize,
    S: Send + Sync + 'static,
    O: Serialize,
{
    use crate::server::restate_rest::{router, Facade};
    let name = service.name;
    let usage =
        format!("usage: {name}-restate rest [--addr ADDR] [--ingress URL] [--admin URL] [--wait-timeout DURATION]");
    let mut args = std::env::args().skip(2);
    let (mut addr, mut ingress, mut admin) =
        ("127.0.0.1:8081".to_owned(), "http://127.0.0.1:8080".to_owned(), "http://127.0.0.1:9070".to_owned());
    let mut wait_timeout = Duration::from_secs(30);
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--addr" => &mut addr,
            "--ingress" => &mut ingress,
            "--admin" => &mut admin,
            "--wait-timeout" => {
                // The format's one duration parser (`30s`, `2m`, milliseconds).
                let parsed = args.next().and_then(|t| {
                    serde_json::from_value::<orchestr8_schema::ast::Duration>(Value::String(t)).ok()?.to_std().ok()
                });
                match parsed {
                    Some(d) => wait_timeout = d,
                    _ => {
                        eprintln!("error: --wait-timeout needs a duration, like 30s\n{usage}");
                        return std::process::ExitCode::from(2);
                    }
                }
                continue;
            }
            "--help" | "-h" => {
                println!("Serves the REST API of `{name}` (as `PROGRAM serve` does) for its executions on Restate.\n\n{usage}\n\n  --addr ADDR          where to listen [default: 127.0.0.1:8081]\n  --ingress URL        Restate's ingress [default: http://127.0.0.1:8080]\n  --admin URL          Restate's admin API [default: http://127.0.0.1:9070]\n  --wait-timeout D     how long `?wait=true` waits [default: 30s]");
                return std::process::ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("error: unexpected argument `{arg}`\n{usage}");
                return std::process::ExitCode::from(2);
            }
        };
        match args.next() {
            Some(v) => *slot = v.trim_end_matches('/').to_owned(),
            None => {
                eprintln!("error: {arg} needs a value\n{usage}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let addr: std::net::SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: --addr `{addr}` is not an address like 127.0.0.1:8081: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut waits = Vec::new();
    service.workflow.root().each_step(&mut |s| {
        if let Some(w) = s.waiting() {
            waits.push((s.step_id().to_string(), w.signal().to_owned()));
        }
    });
    let schema = service.input_schema.clone();
    let check_input = Box::new(move |value: &Value| {
        let typed: I = crate::program::parse_input_value(value)?;
        checked_json(schema.as_ref(), &typed)
    });
    // Bounded: a Restate that accepts connections and never answers gets a
    // 502, not a request that hangs (`?wait=true` has its own bound).
    let http = match reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot make an HTTP client: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let facade = Facade { id: name.to_owned(), ingress, admin, waits, check_input, wait_timeout, http };
    listening(addr, |listener| async move {
        eprintln!("serving `{name}`'s REST API on http://{addr}, over Restate at {}", facade.ingress);
        let app = router(Arc::new(facade));
        match axum::serve(listener, app).with_graceful_shutdown(stopped()).await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::ExitCode::from(1)
            }
        }
    })
}

/// Ctrl-C or SIGTERM (what a process manager sends).
async fn stopped() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::CircuitBreakerPolicy;
    use crate::resilience::CircuitState;

    /// Answers that the execution's token budget is spent.
    struct OverBudget;

    impl Agent for OverBudget {
        type Input = ();
        type Output = ();
        fn id(&self) -> &str {
            "over"
        }
        fn version(&self) -> &str {
            "1.0.0"
        }
        async fn run(&self, _: &AgentContext<'_>, _: ()) -> Result<(), AgentError> {
            Err(AgentError::budget_exceeded("the token budget (10) is spent"))
        }
    }

    fn attempt(breaker: &Arc<CircuitBreaker>) -> Attempt<OverBudget> {
        Attempt {
            agent: Arc::new(OverBudget),
            meta: Arc::new(ExecutionMeta {
                execution_id: "e".into(),
                correlation_id: "e".into(),
                workflow_id: "w".into(),
                workflow_version: "1.0.0".into(),
            }),
            step: "s".into(),
            config: Value::Null,
            policy: Policy::default(),
            breaker: Some(breaker.clone()),
            cancel: CancellationToken::new(),
            started: Arc::new(Notify::new()),
            spent: Usage::default(),
            budget: Some(10),
        }
    }

    #[tokio::test]
    async fn a_spent_budget_is_its_own_terminal_code_and_the_breaker_does_not_count_it() {
        let policy = CircuitBreakerPolicy { failure_threshold: 1, ..CircuitBreakerPolicy::default() };
        let breaker = Arc::new(CircuitBreaker::new("over", "1.0.0", policy));
        for _ in 0..2 {
            let Err(Failed::Terminal(e)) = attempt(&breaker).attempt(()).await else {
                panic!("not a terminal failure")
            };
            assert_eq!(e.code(), BUDGET_EXCEEDED, "{}", e.message());
            assert!(e.message().starts_with("step s: "), "{}", e.message());
            // As embedded: the agent did not fail, the execution ran out.
            assert_eq!(breaker.state(), CircuitState::Closed);
        }
    }
}
