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
//! open circuit breaker are terminal; the rest Restate retries. Where this
//! differs from the embedded executor is listed in the README's table.

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use restate_sdk::context::{Context, ContextSideEffects, RunFuture, RunRetryPolicy};
use restate_sdk::errors::{HandlerError, HandlerResult, TerminalError};
use restate_sdk::serde::Json;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::agent::{Agent, AgentContext, AgentError, AgentErrorKind, ExecutionMeta};
use crate::executor::{Node, Workflow};
use crate::policy::Policy;
use crate::resilience::CircuitBreaker;

/// What every step of one invocation shares.
pub struct Invocation<'a> {
    /// The handler's context.
    pub ctx: &'a Context<'a>,
    /// The execution's ids: the invocation id is the execution id.
    pub meta: Arc<ExecutionMeta>,
}

/// Runs `workflow` on `state` inside a Restate handler and builds its output.
pub async fn run<S: Send + Sync + 'static, O: serde::Serialize>(
    ctx: &Context<'_>,
    workflow: &Workflow<S, O>,
    state: S,
) -> HandlerResult<Json<O>> {
    let info = workflow.info();
    let id: Arc<str> = ctx.invocation_id().into();
    let meta = Arc::new(ExecutionMeta {
        execution_id: id.clone(),
        correlation_id: id,
        workflow_id: info.id.clone(),
        workflow_version: info.version.clone(),
    });
    let invocation = Invocation { ctx, meta };
    node(&invocation, workflow.root(), &state).await?;
    let output = workflow.output_of(&state).map_err(|e| TerminalError::new(format!("invalid output: {e}")))?;
    Ok(Json(output))
}

/// One node of the plan, its children in order.
fn node<'a, S: Send + Sync + 'static>(
    on: &'a Invocation<'a>,
    n: &'a Node<S>,
    state: &'a S,
) -> futures_util::future::BoxFuture<'a, Result<(), TerminalError>> {
    Box::pin(async move {
        match n {
            Node::Step(step) => step.run_on_restate(on, state).await,
            Node::Sequence { children, .. } => {
                for child in children {
                    node(on, child, state).await?;
                }
                Ok(())
            }
            // `orchestr8 compile --target restate` refuses these (E0460):
            // a plan built by hand meets this instead.
            _ => Err(TerminalError::new(
                "parallel blocks, switches, maps and waits do not run on the Restate target yet",
            )),
        }
    })
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
        let step = self.step;
        let input = input.map_err(|e| TerminalError::new(format!("step {step}: invalid input: {e}")))?;
        let attempt = Attempt {
            agent: self.agent.clone(),
            meta: on.meta.clone(),
            step: step.clone(),
            config: self.config.clone(),
            policy: *self.policy,
            breaker: self.breaker.cloned(),
        };
        let Json(output) = on
            .ctx
            .run(move || attempt.call(input))
            .name(step.to_string())
            .retry_policy(retry_policy(self.policy))
            .await?;
        Ok(output)
    }
}

/// What one attempt needs, owned: Restate may run it on a later replay.
struct Attempt<A> {
    agent: Arc<A>,
    meta: Arc<ExecutionMeta>,
    step: Arc<str>,
    config: Value,
    policy: Policy,
    breaker: Option<Arc<CircuitBreaker>>,
}

impl<A: Agent> Attempt<A> {
    async fn call(self, input: A::Input) -> HandlerResult<Json<A::Output>> {
        // The breaker is this process's, as in the embedded target: an open
        // one fails the step at once, never retried.
        let permit = match &self.breaker {
            Some(b) => Some(b.try_acquire(|_| {}).map_err(|_| {
                TerminalError::new(format!(
                    "step {}: circuit breaker for agent {}@{} is open",
                    self.step,
                    self.agent.id(),
                    self.agent.version()
                ))
            })?),
            None => None,
        };
        let cancel = CancellationToken::new();
        // Restate does not say which attempt this is: every attempt is the first.
        let ctx = AgentContext::new(&cancel, &self.meta, &self.step, 1, &self.config);
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
                Ok(Json(output))
            }
            Err(e) => {
                if let Some(p) = permit {
                    p.failure(|_| {});
                }
                let message = format!("step {}: {e}", self.step);
                Err(match e.kind() {
                    AgentErrorKind::Retryable => HandlerError::from(message),
                    _ => TerminalError::new(message).into(),
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
/// Ctrl-C. The process's exit code: 0, or 2 for a bad command line.
pub fn serve(service: impl restate_sdk::service::IntoServiceDefinition, name: &str) -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let mut bind = String::from("127.0.0.1:9080");
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--bind", Some(addr)) => bind = addr,
            ("--help" | "-h", _) => {
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
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let endpoint = restate_sdk::endpoint::Endpoint::builder().bind(service).build();
        eprintln!("serving `{name}` for Restate on http://{addr} (HTTP/2)");
        restate_sdk::http_server::HttpServer::new(endpoint).listen_and_serve(addr).await;
    });
    std::process::ExitCode::SUCCESS
}
