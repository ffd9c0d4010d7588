//! [`LlmAgent`]: an [`Agent`] whose work is a model call, with the answer
//! validated against the agent's output schema and sent back for repair
//! while it is not.
//!
//! One attempt of the step is one run of the repair loop (at most
//! `repair.maxAttempts + 1` calls). Transport failures are not retried
//! here: they come back as retryable errors (with the provider's
//! `retry-after`) and the step's retry policy is the one retry loop.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use orchestr8_schema::ast::{self, PromptFormat, Provider, StructuredOutput};

use super::call_span::CallSpan;
use super::failure::Failure;
use super::prompt::{repair_text, Prompt, Rendered};
use super::provider::{self, Candidate, Outcome, Repair, Reply, RequestSpec};
use super::wire::wire_schema;
use super::{base_url_env, DEFAULT_MAX_TOKENS, DEFAULT_REPAIRS};
use crate::agent::{Agent, AgentContext, AgentError};

/// An agent declared `{"kind": "llm"}` in a workflow, typed by the Rust
/// types the compiler generated from its input and output schemas.
///
/// Generated code builds one per LLM agent and checks it before anything
/// runs, so a missing API key stops the program at once:
///
/// ```
/// use orchestr8_runtime::llm::LlmAgent;
/// use serde_json::Value;
///
/// let definition = r#"{
///     "kind": "llm", "provider": "anthropic", "model": "claude-sonnet-4-5",
///     "apiKeyEnv": "EXAMPLE_KEY_THAT_IS_NOT_SET",
///     "prompt": { "system": "You summarise support tickets.", "instructions": "Summarise ${input.text} in one sentence." },
///     "input": { "type": "object", "properties": { "text": { "type": "string" } }, "required": ["text"] },
///     "output": { "type": "object", "properties": { "summary": { "type": "string" } }, "required": ["summary"] }
/// }"#;
/// let agent: LlmAgent<Value, Value> = LlmAgent::new("summarise", "1.0.0", definition);
/// let error = agent.check().unwrap_err();
/// assert!(error.contains("EXAMPLE_KEY_THAT_IS_NOT_SET"), "{error}");
/// ```
pub struct LlmAgent<I, O> {
    id: String,
    version: String,
    ready: Result<Arc<Ready>, String>,
    types: PhantomData<fn(I) -> O>,
}

impl<I, O> std::fmt::Debug for LlmAgent<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("LlmAgent");
        d.field("id", &self.id).field("version", &self.version);
        match &self.ready {
            Ok(r) => d.field("provider", &r.provider).field("model", &r.model).field("endpoint", &r.endpoint),
            Err(e) => d.field("error", e),
        };
        d.finish()
    }
}

/// An API key: never printed.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Everything a call needs, built once from the agent's definition.
struct Ready {
    provider: Provider,
    mode: StructuredOutput,
    model: String,
    endpoint: String,
    /// `endpoint`, parsed once: a call does not parse it again.
    url: reqwest::Url,
    key: Option<Secret>,
    max_tokens: u32,
    max_completion_tokens: bool,
    temperature: Option<f64>,
    prompt: Prompt,
    /// The wire schema, wrapped as `{"result": ...}` when `wrapped`,
    /// serialised once.
    wire: Box<serde_json::value::RawValue>,
    strict: bool,
    /// Anthropic's tool mode needs an object at the root.
    wrapped: bool,
    validator: jsonschema::Validator,
    repairs: u32,
    limit: Option<Arc<Semaphore>>,
}

impl<I, O> LlmAgent<I, O> {
    /// Builds the agent from its definition in the workflow (the JSON of
    /// `agents.ID`, as the compiler embeds it) and reads its API key from
    /// the environment. A problem (a missing key) is kept, reported by
    /// [`check`](Self::check) when the program starts and by every call.
    pub fn new(id: &str, version: &str, definition: &str) -> Self {
        let ready = match serde_json::from_str::<ast::AgentDefinition>(definition) {
            Ok(ast::AgentDefinition::Llm(def)) => {
                Ready::new(id, &def, def.prompt.format.unwrap_or_default()).map(Arc::new)
            }
            Ok(_) => Err(format!("agent `{id}` is not an LLM agent")),
            Err(e) => Err(format!("agent `{id}`: its definition does not parse: {e}")),
        };
        LlmAgent { id: id.to_owned(), version: version.to_owned(), ready, types: PhantomData }
    }

    /// Whether the agent can run: its API key is set and its definition is sound.
    pub fn check(&self) -> Result<(), String> {
        self.ready.as_ref().map(|_| ()).map_err(Clone::clone)
    }
}

impl Ready {
    fn new(id: &str, def: &ast::LlmAgent, format: PromptFormat) -> Result<Ready, String> {
        let provider = def.provider;
        let mode = def.structured_output.unwrap_or_default();
        let output = def.common.output.clone().ok_or_else(|| format!("agent `{id}` has no output schema"))?;
        let wire =
            wire_schema(provider, &output).map_err(|u| format!("agent `{id}`: output{}: {}", u.pointer, u.message))?;
        let is_object = output.get("type").and_then(Value::as_str) == Some("object");
        let wrapped = provider == Provider::Anthropic && mode == StructuredOutput::Tool && !is_object;
        let wire_value = if wrapped {
            // `#/$defs/...` references resolve from the root: the definitions move up with them.
            let mut inner = wire.schema;
            let mut wrapper =
                serde_json::json!({"type": "object", "required": ["result"], "additionalProperties": false});
            for key in ["$defs", "definitions"] {
                if let Some(defs) = inner.as_object_mut().and_then(|o| o.remove(key)) {
                    wrapper[key] = defs;
                }
            }
            wrapper["properties"] = serde_json::json!({"result": inner});
            wrapper
        } else {
            wire.schema
        };
        let validator = jsonschema::validator_for(&output)
            .map_err(|e| format!("agent `{id}`: its output schema does not compile: {e}"))?;
        let (env_base, custom_base) = match std::env::var(base_url_env(provider)) {
            Ok(url) if !url.is_empty() => (Some(url), true),
            _ => (None, def.base_url.is_some()),
        };
        let base = env_base.or_else(|| def.base_url.clone()).unwrap_or_else(|| default_base_url(provider).to_owned());
        if let Err(problem) = super::check_base_url(&base) {
            let from = if custom_base && def.base_url.is_none() { base_url_env(provider) } else { "baseUrl" };
            return Err(format!("agent `{id}`: the base URL `{base}` (from {from}) is not usable: {problem}"));
        }
        let base = base.trim_end_matches('/');
        let endpoint = match provider {
            Provider::Anthropic => format!("{base}/v1/messages"),
            Provider::Openai => format!("{base}/chat/completions"),
        };
        let url = reqwest::Url::parse(&endpoint)
            .map_err(|e| format!("agent `{id}`: the endpoint `{endpoint}` is not a URL: {e}"))?;
        let key_env = def.api_key_env.clone().unwrap_or_else(|| default_key_env(provider).to_owned());
        let key = std::env::var(&key_env).ok().filter(|k| !k.is_empty()).map(Secret);
        // A key goes into an HTTP header: visible ASCII only. Say so without showing it.
        if key.as_ref().is_some_and(|Secret(k)| !k.bytes().all(|b| b.is_ascii_graphic())) {
            return Err(format!(
                "agent `{id}`: the environment variable {key_env} holds characters an API key cannot have \
                 (blanks, a line break, or non-ASCII letters); check how it was set"
            ));
        }
        // OpenAI-compatible local servers need no key; a key named
        // explicitly, and Anthropic's, must be there.
        let key_required = provider == Provider::Anthropic || def.api_key_env.is_some();
        if key.is_none() && key_required {
            return Err(format!(
                "agent `{id}`: the environment variable {key_env} is not set; it holds the {provider} API key \
                 (set it, or name another variable with `apiKeyEnv`)",
                provider = provider_name(provider)
            ));
        }
        let prompt = Prompt::with_format(&def.prompt, format).map_err(|e| format!("agent `{id}`: prompt {e}"))?;
        let limit =
            def.limits.as_ref().and_then(|l| l.concurrency).map(|n| concurrency_limit(&endpoint, &def.model, n));
        Ok(Ready {
            provider,
            mode,
            model: def.model.clone(),
            endpoint,
            url,
            key,
            max_tokens: def.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            max_completion_tokens: provider == Provider::Openai && !custom_base,
            temperature: def.temperature,
            prompt,
            wire: serde_json::value::to_raw_value(&wire_value).expect("a JSON value serialises"),
            strict: wire.strict,
            wrapped,
            validator,
            repairs: def.repair.as_ref().and_then(|r| r.max_attempts).unwrap_or(DEFAULT_REPAIRS),
            limit,
        })
    }

    fn spec(&self, max_tokens: u32) -> RequestSpec<'_> {
        RequestSpec {
            provider: self.provider,
            mode: self.mode,
            model: &self.model,
            max_tokens,
            max_completion_tokens: self.max_completion_tokens,
            temperature: self.temperature,
            schema: &self.wire,
            strict: self.strict,
        }
    }

    /// Parses and validates a candidate against the full output schema; the
    /// errors, located by JSON pointer, are what a repair turn sends back.
    fn check<O: DeserializeOwned>(&self, candidate: Candidate) -> Result<O, Rejected> {
        let mut value = match candidate {
            Candidate::Value(v) => v,
            Candidate::Text(t) => match serde_json::from_str(t.trim()) {
                Ok(v) => v,
                Err(e) => {
                    let errors = vec![format!("the answer is not valid JSON: {e}")];
                    return Err(Rejected { value: None, text: Some(t), errors });
                }
            },
        };
        if self.wrapped {
            value = match value {
                Value::Object(mut o) if o.contains_key("result") => o.remove("result").unwrap_or_default(),
                other => {
                    let errors = vec!["the answer has no `result` field".into()];
                    return Err(Rejected { value: Some(other), text: None, errors });
                }
            };
        }
        let errors: Vec<String> = self
            .validator
            .iter_errors(&value)
            .map(|e| {
                // The model sees the wrapper: its paths start at `/result`.
                let at = format!("{}{}", if self.wrapped { "/result" } else { "" }, e.instance_path().as_str());
                format!("at `{}`: {e}", if at.is_empty() { "/" } else { &at })
            })
            .collect();
        if !errors.is_empty() {
            return Err(Rejected { value: Some(value), text: None, errors });
        }
        O::deserialize(&value).map_err(|e| {
            let errors = vec![format!("the answer does not fit the output type: {e}")];
            Rejected { value: Some(value.clone()), text: None, errors }
        })
    }

    /// One HTTP exchange, classified. Errors are the step's: retryable for
    /// what waiting can fix, fatal for the rest, never holding the key.
    async fn send(&self, body: Vec<u8>) -> Result<Reply, AgentError> {
        let client = client();
        let mut request = client.post(self.url.clone()).header("content-type", "application/json").body(body);
        // The call's trace context goes out with it (W3C `traceparent`).
        #[cfg(feature = "otel")]
        {
            let mut context = reqwest::header::HeaderMap::new();
            crate::telemetry::otel::inject(&mut context);
            if !context.is_empty() {
                request = request.headers(context);
            }
        }
        match (self.provider, &self.key) {
            (Provider::Anthropic, key) => {
                request = request.header("anthropic-version", "2023-06-01");
                if let Some(k) = key {
                    request = request.header("x-api-key", sensitive(&k.0));
                }
            }
            (Provider::Openai, Some(k)) => {
                request = request.header("authorization", sensitive(&format!("Bearer {}", k.0)))
            }
            (Provider::Openai, None) => {}
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        // Only a failure reads the headers (retry-after, x-should-retry).
        let headers = if status.is_success() { reqwest::header::HeaderMap::new() } else { response.headers().clone() };
        let body = response.bytes().await.map_err(|e| self.transport(&e))?;
        if status.is_success() {
            return provider::parse(self.provider, self.mode, &body).map_err(|e| {
                Failure::ProviderError.retryable(self.redact(format!(
                    "{} at {}: {e}",
                    provider_name(self.provider),
                    self.endpoint
                )))
            });
        }
        let said = provider::error_message(&body).unwrap_or_else(|| {
            let text = String::from_utf8_lossy(&body);
            let text = text.trim();
            if text.is_empty() {
                "no message".to_owned()
            } else {
                text.chars().take(300).collect()
            }
        });
        let message = self.redact(format!(
            "{} answered {} at {}: {said}",
            provider_name(self.provider),
            status.as_u16(),
            self.endpoint
        ));
        let code = status.as_u16();
        let should_retry = match headers.get("x-should-retry").and_then(|v| v.to_str().ok()) {
            Some("true") => true,
            Some("false") => false,
            _ => matches!(code, 408 | 409 | 429) || code >= 500,
        };
        if !should_retry || provider::quota_exhausted(&body) {
            return Err(Failure::ProviderRejected.fatal(message));
        }
        let error = Failure::ProviderUnavailable.retryable(message);
        Err(match retry_after(&headers) {
            Some(delay) => error.with_retry_after(delay),
            None => error,
        })
    }

    fn transport(&self, e: &reqwest::Error) -> AgentError {
        if e.is_builder() {
            // Not the network: a request that cannot be built will not be built on a retry.
            return Failure::Config
                .fatal(self.redact(format!("the request to {} cannot be built: {e}", self.endpoint)));
        }
        // The URL is ours and holds no key; the chain says what failed.
        let mut message = format!("cannot reach {} at {}: {e}", provider_name(self.provider), self.endpoint);
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        Failure::Transport.retryable(self.redact(message))
    }

    /// Removes the API key, and any word sharing a long prefix or suffix
    /// with it (providers echo a masked key: `sk-abc...xyz`), from text
    /// that leaves the agent.
    fn redact(&self, text: String) -> String {
        let Some(Secret(key)) = &self.key else { return text };
        let text = text.replace(key.as_str(), "[redacted]");
        // Providers echo a masked key (`sk-proj-ab****wxyz`): a word with a
        // mask that starts or ends like the key goes too. Words without a
        // mask stay, whatever they share with the key (`required`). Keys
        // are visible ASCII, so byte slices are character slices.
        let n = key.len().min(4);
        let (head, tail) = (&key[..n], &key[key.len() - n..]);
        text.split_inclusive(char::is_whitespace)
            .map(|word| {
                let w = word.trim_end().trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '*');
                if w.contains('*') && (w.starts_with(head) || w.ends_with(tail)) {
                    word.replace(w, "[redacted]")
                } else {
                    word.to_owned()
                }
            })
            .collect()
    }
}

impl<I, O> Agent for LlmAgent<I, O>
where
    I: Serialize + DeserializeOwned + schemars::JsonSchema + Clone + Send + Sync + 'static,
    O: Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static,
{
    type Input = I;
    type Output = O;

    fn id(&self) -> &str {
        &self.id
    }

    fn version(&self) -> &str {
        &self.version
    }

    async fn run(&self, ctx: &AgentContext<'_>, input: I) -> Result<O, AgentError> {
        let input = serde_json::to_value(&input).map_err(|e| AgentError::fatal(format!("invalid input: {e}")))?;
        let ready = self.ready.as_ref().map_err(|e| Failure::Config.fatal(e.clone()))?;
        let done = answer(ready, ctx, &input).await?;
        done.result.map_err(|rejected| Failure::InvalidOutput.fatal(ready.redact(rejected.message(done.calls))))
    }
}

/// An answer that did not validate: what it was, and what is wrong with it.
struct Rejected {
    value: Option<Value>,
    text: Option<String>,
    errors: Vec<String>,
}

impl Rejected {
    fn without_answer(why: String) -> Rejected {
        Rejected { value: None, text: None, errors: vec![why] }
    }

    /// The step's error after the last repair.
    fn message(&self, calls: u32) -> String {
        let shown: Vec<&str> = self.errors.iter().take(5).map(String::as_str).collect();
        let more = self.errors.len().saturating_sub(shown.len());
        let mut message =
            format!("the answer did not match the output schema after {calls} call(s): {}", shown.join("; "));
        if more > 0 {
            message.push_str(&format!("; and {more} more"));
        }
        message
    }
}

/// The end of the repair loop: the valid output, or the last answer that
/// was not, with the number of calls made.
struct Final<O> {
    result: Result<O, Rejected>,
    calls: u32,
}

/// Renders the prompt and runs the repair loop under the agent's
/// concurrency limit: what [`LlmAgent`] and [`AnswerAgent`] share.
async fn answer<O: DeserializeOwned>(
    ready: &Ready,
    ctx: &AgentContext<'_>,
    input: &Value,
) -> Result<Final<O>, AgentError> {
    let prompt = ready.prompt.render(input);
    let cancel = ctx.cancellation_token();
    let _permit = match &ready.limit {
        Some(limit) => tokio::select! {
            permit = limit.acquire() => Some(permit.expect("the limit's semaphore is never closed")),
            _ = cancel.cancelled() => return Err(AgentError::cancelled()),
        },
        None => None,
    };
    run_calls(ready, ctx, &prompt).await
}

async fn run_calls<O: DeserializeOwned>(
    ready: &Ready,
    ctx: &AgentContext<'_>,
    prompt: &Rendered,
) -> Result<Final<O>, AgentError> {
    let cancel = ctx.cancellation_token();
    let tokens = ctx.tokens();
    let mut repair: Option<Repair> = None;
    for call in 0..=ready.repairs {
        let mut max_tokens = ready.max_tokens;
        let mut capped_by_budget = false;
        if let Some(remaining) = tokens.and_then(|t| t.remaining()) {
            if remaining == 0 {
                let budget = tokens.and_then(|t| t.budget()).unwrap_or(0);
                let what = if call == 0 { "the call" } else { "repair" };
                return Err(AgentError::budget_exceeded(format!(
                    "the execution's token budget of {budget} is spent; {what} was not made"
                )));
            }
            // The answer cannot take more than what is left.
            if remaining < u64::from(max_tokens) {
                max_tokens = u32::try_from(remaining).unwrap_or(u32::MAX);
                capped_by_budget = true;
            }
        }
        let body = provider::body(&ready.spec(max_tokens), prompt, repair.as_ref());
        let observed = CallSpan::start(ready.provider, &ready.model, &ready.url, max_tokens, ready.temperature, &body);
        let span = observed.span.clone();
        let sent = tokio::select! {
            reply = tracing::Instrument::instrument(ready.send(body), span) => reply,
            _ = cancel.cancelled() => return Err(AgentError::cancelled()),
        };
        observed.end(&sent);
        let reply = sent?;
        if let Some(t) = tokens {
            t.record(reply.usage);
        }
        let rejected = match reply.outcome {
            Outcome::Candidate(c) => match ready.check::<O>(c) {
                Ok(out) => return Ok(Final { result: Ok(out), calls: call + 1 }),
                Err(rejected) => rejected,
            },
            Outcome::Missing(why) => Rejected::without_answer(why),
            Outcome::Refused(why) => return Err(Failure::Refused.fatal(format!("the model refused: {why}"))),
            Outcome::ContentFiltered => {
                return Err(Failure::ContentFilter.fatal("the provider's content filter stopped the answer"))
            }
            Outcome::Truncated if capped_by_budget => {
                let budget = tokens.and_then(|t| t.budget()).unwrap_or(0);
                return Err(AgentError::budget_exceeded(format!(
                    "the execution's token budget of {budget} ran out during the answer (cut off at the {max_tokens} tokens that were left)"
                )));
            }
            Outcome::Truncated => {
                return Err(Failure::Truncated
                    .fatal(format!("the answer was cut off at {max_tokens} tokens (raise the agent's `maxTokens`)")))
            }
            Outcome::Stopped(reason) => {
                return Err(Failure::Stopped.fatal(format!("the model stopped with `{reason}` before answering")))
            }
        };
        if call == ready.repairs {
            return Ok(Final { result: Err(rejected), calls: call + 1 });
        }
        // Each repair replaces the one before: the conversation stays the
        // prompt, the last answer and what is wrong with it.
        repair = Some(Repair {
            assistant: reply.assistant,
            tool_use_id: reply.tool_use_id,
            text: repair_text(&rejected.errors),
        });
    }
    unreachable!("the loop returns on its last call")
}

/// What a model answered, valid or not: what `orchestr8 eval` scores.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Answer {
    /// The final answer as JSON (unwrapped from Anthropic's tool wrapper),
    /// when it was JSON.
    pub value: Option<Value>,
    /// The final answer's text, when it was not JSON.
    pub text: Option<String>,
    /// What the output schema found wrong with the final answer; empty when
    /// it is valid.
    pub errors: Vec<String>,
    /// Calls made, repairs included.
    pub calls: u32,
}

/// An LLM agent whose output is the model's final answer whether or not it
/// validates (after the agent's repairs), for `orchestr8 eval` to score; a
/// workflow step uses [`LlmAgent`], which fails on an invalid answer. Both
/// run the same calls, repair loop and failure classes.
pub struct AnswerAgent {
    id: String,
    version: String,
    ready: Result<Arc<Ready>, String>,
}

impl std::fmt::Debug for AnswerAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerAgent").field("id", &self.id).field("ready", &self.ready.is_ok()).finish()
    }
}

impl AnswerAgent {
    /// Builds the agent from its definition, its prompt rendered in `format`
    /// whatever the definition says.
    pub fn new(id: &str, version: &str, definition: &ast::LlmAgent, format: PromptFormat) -> Self {
        let ready = Ready::new(id, definition, format).map(Arc::new);
        AnswerAgent { id: id.to_owned(), version: version.to_owned(), ready }
    }

    /// Whether the agent can run: its API key is set and its definition is sound.
    pub fn check(&self) -> Result<(), String> {
        self.ready.as_ref().map(|_| ()).map_err(Clone::clone)
    }
}

impl Agent for AnswerAgent {
    type Input = Value;
    type Output = Answer;

    fn id(&self) -> &str {
        &self.id
    }

    fn version(&self) -> &str {
        &self.version
    }

    async fn run(&self, ctx: &AgentContext<'_>, input: Value) -> Result<Answer, AgentError> {
        let ready = self.ready.as_ref().map_err(|e| Failure::Config.fatal(e.clone()))?;
        let done = answer::<Value>(ready, ctx, &input).await?;
        Ok(match done.result {
            Ok(value) => Answer { value: Some(value), text: None, errors: Vec::new(), calls: done.calls },
            Err(Rejected { value, text, errors }) => Answer { value, text, errors, calls: done.calls },
        })
    }
}

/// A header value that HTTP debugging output does not show.
fn sensitive(value: &str) -> reqwest::header::HeaderValue {
    // The key was checked to be visible ASCII when the agent was built.
    let mut v = reqwest::header::HeaderValue::from_str(value).expect("an API key is a valid header value");
    v.set_sensitive(true);
    v
}

/// The provider's `retry-after-ms` or `retry-after` (seconds or an HTTP
/// date), honoured between 0 and 60 s as the official SDKs do.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let delay = if let Some(ms) = text("retry-after-ms").and_then(|t| t.parse::<f64>().ok()) {
        Duration::try_from_secs_f64(ms / 1000.0).ok()?
    } else {
        let t = text("retry-after")?;
        match t.parse::<f64>() {
            Ok(secs) => Duration::try_from_secs_f64(secs).ok()?,
            Err(_) => httpdate::parse_http_date(t).ok()?.duration_since(std::time::SystemTime::now()).ok()?,
        }
    };
    (!delay.is_zero() && delay <= Duration::from_secs(60)).then_some(delay)
}

/// One HTTP client per process: connections to a provider are pooled
/// across steps and executions.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A redirect would carry the API key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("orchestr8/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client's settings are valid")
    })
}

/// The process-wide concurrency limit of one endpoint and model: every
/// execution's calls share it. The first agent to ask sets its size.
fn concurrency_limit(endpoint: &str, model: &str, permits: u32) -> Arc<Semaphore> {
    /// By endpoint and model: the size and the permits.
    type Limits = HashMap<(String, String), (u32, Arc<Semaphore>)>;
    static LIMITS: OnceLock<Mutex<Limits>> = OnceLock::new();
    let mut limits = LIMITS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    let (size, semaphore) = limits
        .entry((endpoint.to_owned(), model.to_owned()))
        .or_insert_with(|| (permits, Arc::new(Semaphore::new(permits as usize))));
    if *size != permits {
        tracing::warn!(
            endpoint,
            model,
            in_use = *size,
            asked = permits,
            "another agent set this model's concurrency limit; it stays"
        );
    }
    semaphore.clone()
}

fn default_base_url(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "https://api.anthropic.com",
        Provider::Openai => "https://api.openai.com/v1",
    }
}

fn default_key_env(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "ANTHROPIC_API_KEY",
        Provider::Openai => "OPENAI_API_KEY",
    }
}

fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "Anthropic",
        Provider::Openai => "the OpenAI-compatible server",
    }
}
