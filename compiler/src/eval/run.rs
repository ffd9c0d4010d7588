//! Running an eval: both arms for every task, input and iteration, each
//! call a one-step execution of the runtime (the step's policy, breaker,
//! journal and token usage, as in a compiled workflow).
//!
//! The two calls of a pair (same task, input and iteration) run back to
//! back in an order drawn from the seed, and the pairs run in a shuffled
//! order, so drift in the server (a warming cache, a neighbour's load)
//! does not favour one arm.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use orchestr8_runtime::llm::{base_url_env, Answer, AnswerAgent};
use orchestr8_runtime::{
    codegen, AgentStep, CancellationToken, ExecutionOptions, MemoryStore, Policy, Runtime, StepError, Usage, Workflow,
    WorkflowInfo,
};
use orchestr8_schema::ast::{PromptFormat, Provider};
use serde_json::Value;

use super::file::Eval;
use super::score::{score, Scored, Scores};
use super::stats::Rng;

/// The arms, by index: the control first.
pub const ARMS: [PromptFormat; 2] = [PromptFormat::Markdown, PromptFormat::Json];

/// An arm's name: `markdown` or `json`.
pub fn arm_name(format: PromptFormat) -> &'static str {
    match format {
        PromptFormat::Markdown => "markdown",
        PromptFormat::Json => "json",
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Pairs per task and input.
    pub iterations: u32,
    /// Pairs in flight at once.
    pub concurrency: usize,
    /// Orders the pairs and the arms within each pair; the bootstrap's too.
    pub seed: u64,
    /// A model to use instead of every agent's own.
    pub model: Option<String>,
    /// Each call's step policy.
    pub policy: Policy,
    /// Stops the run: calls in flight are cancelled, the rest not made.
    pub cancel: CancellationToken,
}

/// One call's result.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Task index.
    pub task: usize,
    /// Input index within the task.
    pub input: usize,
    /// Iteration, from 0.
    pub iteration: u32,
    /// Arm index in [`ARMS`].
    pub arm: usize,
    /// What came back.
    pub result: CallResult,
    /// Wall time of the call, policy and repairs included.
    pub latency: Duration,
    /// Tokens the call used.
    pub usage: Usage,
}

/// What one call gave.
#[derive(Debug, Clone)]
pub enum CallResult {
    /// An answer, scored (valid against the output schema or not).
    Answered {
        /// The scores and the task's checks.
        scored: Scored,
        /// Whether it validated against the output schema.
        valid: bool,
        /// Calls made, repairs included.
        calls: u32,
    },
    /// The step failed (transport, refusal, truncation, timeout, ...).
    Failed(StepError),
}

impl Sample {
    /// The call's scores; a failed call scores 0 on every dimension.
    pub fn scores(&self) -> Scores {
        match &self.result {
            CallResult::Answered { scored, .. } => scored.scores,
            CallResult::Failed(_) => Scores::ZERO,
        }
    }
}

/// Where the run is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Calls finished.
    pub done: usize,
    /// Calls in the run.
    pub total: usize,
    /// Calls that failed.
    pub failed: usize,
}

/// Everything measured.
#[derive(Debug)]
pub struct Outcome {
    /// Every finished call, in completion order.
    pub samples: Vec<Sample>,
    /// The run's wall time.
    pub wall: Duration,
    /// Whether it was stopped before every pair ran.
    pub interrupted: bool,
}

/// The state of one call's execution.
struct State {
    input: Value,
    answer: OnceLock<Answer>,
}

/// One arm of one task, built once.
struct Arm {
    workflow: Arc<Workflow<State, Answer>>,
}

/// Checks that every agent can run (its key is set, its base URL parses)
/// and builds the arms.
fn arms(eval: &Eval, opts: &Options) -> Result<Vec<[Arm; 2]>, String> {
    eval.tasks
        .iter()
        .map(|task| {
            let mut agent = task.agent.clone();
            if let Some(model) = &opts.model {
                agent.model.clone_from(model);
            }
            // The default OpenAI endpoint without a key fails every call:
            // say so before the first one (the agent lets a custom server go keyless).
            let key_env = agent.api_key_env.as_deref().unwrap_or("OPENAI_API_KEY");
            let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
            if agent.provider == Provider::Openai
                && agent.base_url.is_none()
                && !set(base_url_env(Provider::Openai))
                && !set(key_env)
            {
                return Err(format!(
                    "task `{}`: {key_env} is not set and the agent calls OpenAI itself; set the key, or point {} (or the agent's `baseUrl`) at an OpenAI-compatible server",
                    task.id,
                    base_url_env(Provider::Openai)
                ));
            }
            let build = |format: PromptFormat| -> Result<Arm, String> {
                // One breaker per arm: one arm's failures must not open the other's.
                let id = format!("{}.{}", task.id, arm_name(format));
                let built = AnswerAgent::new(&id, "1.0.0", &agent, format);
                built.check().map_err(|e| format!("task `{}`: {e}", task.id))?;
                let step = AgentStep::new(
                    "answer",
                    Arc::new(built),
                    |s: &State| Ok(s.input.clone()),
                    |s: &State, answer| codegen::store(&s.answer, "answer", answer),
                )
                .policy(opts.policy);
                let info = WorkflowInfo::new(format!("eval-{}", task.id), "1.0.0", "eval");
                let output = |s: &State| codegen::slot(&s.answer, "answer").cloned();
                Ok(Arm { workflow: Arc::new(Workflow::new(info, step.node(), output)) })
            };
            Ok([build(ARMS[0])?, build(ARMS[1])?])
        })
        .collect()
}

/// Runs every pair; `progress` is called after each call.
pub async fn run(eval: &Eval, opts: &Options, progress: impl Fn(Progress)) -> Result<Outcome, String> {
    let arms = arms(eval, opts)?;
    let mut rng = Rng::new(opts.seed);
    let mut pairs: Vec<(usize, usize, u32, bool)> = Vec::new();
    for (t, task) in eval.tasks.iter().enumerate() {
        for i in 0..task.inputs.len() {
            for k in 0..opts.iterations {
                pairs.push((t, i, k, rng.below(2) == 1));
            }
        }
    }
    rng.shuffle(&mut pairs);
    let total = pairs.len() * 2;
    // Each call's journal is read back for its usage when it ends; the store
    // forgets the oldest, so it holds far more than the calls in flight (a
    // slow call must not lose its journal to the fast ones finishing meanwhile).
    let store = MemoryStore::with_capacity(opts.concurrency * 256 + 256);
    let runtime = Runtime::new(store.clone());
    let started = Instant::now();
    let (done, failed) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let call = |t: usize, i: usize, k: u32, arm: usize| {
        let (runtime, store, arms) = (&runtime, &store, &arms);
        let input = eval.tasks[t].inputs[i].clone();
        async move {
            if opts.cancel.is_cancelled() {
                return None;
            }
            let state = State { input: input.clone(), answer: OnceLock::new() };
            let options = ExecutionOptions { cancel: Some(opts.cancel.child_token()), ..Default::default() };
            let began = Instant::now();
            let exec = runtime.prepare(arms[t][arm].workflow.info(), options).ok()?;
            let id = exec.execution_id().to_owned();
            let result = exec.run(&arms[t][arm].workflow, &state).await;
            let latency = began.elapsed();
            let usage = store
                .events(&id)
                .iter()
                .rev()
                .find_map(|e| e.labels.as_ref().and_then(|l| l.usage))
                .unwrap_or_default();
            let result = match result {
                Ok(answer) => CallResult::Answered {
                    scored: score(&eval.tasks[t], &input, answer.value.as_ref()),
                    valid: answer.errors.is_empty(),
                    calls: answer.calls,
                },
                Err(e) if e.kind == orchestr8_runtime::ErrorKind::Cancelled && opts.cancel.is_cancelled() => {
                    return None
                }
                Err(e) => CallResult::Failed(e),
            };
            Some(Sample { task: t, input: i, iteration: k, arm, result, latency, usage })
        }
    };
    let samples: Vec<Sample> = stream::iter(pairs)
        .map(|(t, i, k, test_first)| {
            let call = &call;
            let (done, failed) = (&done, &failed);
            let progress = &progress;
            async move {
                let order = if test_first { [1, 0] } else { [0, 1] };
                let mut out = Vec::with_capacity(2);
                for arm in order {
                    let Some(sample) = call(t, i, k, arm).await else { break };
                    done.set(done.get() + 1);
                    if matches!(sample.result, CallResult::Failed(_)) {
                        failed.set(failed.get() + 1);
                    }
                    progress(Progress { done: done.get(), total, failed: failed.get() });
                    out.push(sample);
                }
                out
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .flat_map(stream::iter)
        .collect()
        .await;
    let interrupted = samples.len() < total;
    Ok(Outcome { samples, wall: started.elapsed(), interrupted })
}

/// The process's peak resident memory in MB, where the OS says (Linux).
pub fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
