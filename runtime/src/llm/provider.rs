//! The two wire formats: a request body from the rendered prompt, and a
//! provider's answer classified into one [`Outcome`].
//!
//! Only the fields orchestr8 uses are read; unknown content blocks, stop
//! reasons and fields are tolerated (the APIs grow), never a parse error.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use orchestr8_schema::ast::{Provider, StructuredOutput};

use super::prompt::Rendered;
use crate::usage::Usage;

/// The tool Anthropic's forced-tool mode asks the model to call.
pub const TOOL_NAME: &str = "emit_result";

/// Everything of one request but the conversation.
#[derive(Debug, Clone)]
pub struct RequestSpec<'a> {
    /// Which wire format.
    pub provider: Provider,
    /// How Anthropic is made to answer with the schema.
    pub mode: StructuredOutput,
    /// The model.
    pub model: &'a str,
    /// The answer's token bound.
    pub max_tokens: u32,
    /// `max_completion_tokens` (OpenAI itself) rather than `max_tokens`
    /// (OpenAI-compatible servers such as llama.cpp, Ollama and vLLM).
    pub max_completion_tokens: bool,
    /// Sampling temperature, sent only when set.
    pub temperature: Option<f64>,
    /// The wire schema (wrapped in an object for Anthropic's tool mode when
    /// its root is not one), serialised once.
    pub schema: &'a RawValue,
    /// Whether OpenAI's strict mode is on.
    pub strict: bool,
}

/// A failed answer sent back: the model's own turn and what is wrong with it.
#[derive(Debug, Clone)]
pub struct Repair {
    /// The assistant turn as the provider returned it.
    pub assistant: Value,
    /// In Anthropic's tool mode, the id of the tool call the feedback answers.
    pub tool_use_id: Option<String>,
    /// The feedback.
    pub text: String,
}

/// The request body, as the bytes to send. Built from borrowed parts (the
/// wire schema is serialised once, when the agent is built): a call copies
/// its prompt into the body once and clones nothing.
pub fn body(spec: &RequestSpec<'_>, prompt: &Rendered, repair: Option<&Repair>) -> Vec<u8> {
    let bytes = match spec.provider {
        Provider::Anthropic => serde_json::to_vec(&anthropic_body(spec, prompt, repair)),
        Provider::Openai => serde_json::to_vec(&openai_body(spec, prompt, repair)),
    };
    bytes.expect("a request body serialises")
}

/// Whether the model's turn has nothing in it: the providers reject an
/// empty turn, so the feedback then goes into the user's turn instead.
fn is_empty_turn(content: &Value) -> bool {
    match content {
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// The first user turn: the prompt, with a repair's feedback when the
/// model's own turn was empty (and is left out).
fn first_turn<'a>(prompt: &'a Rendered, repair: Option<&Repair>, empty: bool) -> Cow<'a, str> {
    match repair.filter(|_| empty) {
        Some(r) => Cow::Owned(format!("{}\n\n{}", prompt.user, r.text)),
        None => Cow::Borrowed(&prompt.user),
    }
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Content<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(Cow<'a, str>),
    /// The model's own content, as it returned it.
    Returned(&'a Value),
    ToolResult([ToolResult<'a>; 1]),
}

#[derive(Serialize)]
struct ToolResult<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    tool_use_id: &'a str,
    is_error: bool,
    content: &'a str,
}

#[derive(Serialize)]
struct AnthropicBody<'a> {
    model: &'a str,
    max_tokens: u32,
    system: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<[Tool<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoice>,
}

#[derive(Serialize)]
struct OutputConfig<'a> {
    format: SchemaFormat<'a>,
}

#[derive(Serialize)]
struct SchemaFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'a RawValue,
}

#[derive(Serialize)]
struct Tool<'a> {
    name: &'static str,
    description: &'static str,
    input_schema: &'a RawValue,
}

#[derive(Serialize)]
struct ToolChoice {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'static str,
    disable_parallel_tool_use: bool,
}

fn anthropic_body<'a>(spec: &RequestSpec<'a>, prompt: &'a Rendered, repair: Option<&'a Repair>) -> AnthropicBody<'a> {
    let empty = repair.is_some_and(|r| is_empty_turn(&r.assistant));
    let mut messages = vec![Message { role: "user", content: Content::Text(first_turn(prompt, repair, empty)) }];
    if let Some(r) = repair.filter(|_| !empty) {
        messages.push(Message { role: "assistant", content: Content::Returned(&r.assistant) });
        // The conversation always ends with a user turn: structured output
        // rejects an assistant prefill.
        messages.push(Message {
            role: "user",
            content: match &r.tool_use_id {
                Some(id) => Content::ToolResult([ToolResult {
                    kind: "tool_result",
                    tool_use_id: id,
                    is_error: true,
                    content: &r.text,
                }]),
                None => Content::Text(Cow::Borrowed(&r.text)),
            },
        });
    }
    let native = spec.mode == StructuredOutput::Native;
    AnthropicBody {
        model: spec.model,
        max_tokens: spec.max_tokens,
        system: &prompt.system,
        messages,
        temperature: spec.temperature,
        output_config: native
            .then_some(OutputConfig { format: SchemaFormat { kind: "json_schema", schema: spec.schema } }),
        tools: (!native).then_some([Tool {
            name: TOOL_NAME,
            description: "Return the final result.",
            input_schema: spec.schema,
        }]),
        tool_choice: (!native).then_some(ToolChoice { kind: "tool", name: TOOL_NAME, disable_parallel_tool_use: true }),
    }
}

#[derive(Serialize)]
struct OpenAiBody<'a> {
    model: &'a str,
    messages: Vec<OpenAiMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    response_format: ResponseFormat<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum OpenAiMessage<'a> {
    Text {
        role: &'static str,
        content: Cow<'a, str>,
    },
    /// The model's own message, as it returned it.
    Returned(&'a Value),
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    json_schema: NamedSchema<'a>,
}

#[derive(Serialize)]
struct NamedSchema<'a> {
    name: &'static str,
    schema: &'a RawValue,
    strict: bool,
}

fn openai_body<'a>(spec: &RequestSpec<'a>, prompt: &'a Rendered, repair: Option<&'a Repair>) -> OpenAiBody<'a> {
    let empty = repair.is_some_and(|r| is_empty_turn(&r.assistant["content"]));
    let mut messages = vec![
        OpenAiMessage::Text { role: "system", content: Cow::Borrowed(&prompt.system) },
        OpenAiMessage::Text { role: "user", content: first_turn(prompt, repair, empty) },
    ];
    if let Some(r) = repair.filter(|_| !empty) {
        messages.push(OpenAiMessage::Returned(&r.assistant));
        messages.push(OpenAiMessage::Text { role: "user", content: Cow::Borrowed(&r.text) });
    }
    let limit = Some(spec.max_tokens);
    OpenAiBody {
        model: spec.model,
        messages,
        max_tokens: limit.filter(|_| !spec.max_completion_tokens),
        max_completion_tokens: limit.filter(|_| spec.max_completion_tokens),
        temperature: spec.temperature,
        response_format: ResponseFormat {
            kind: "json_schema",
            json_schema: NamedSchema { name: "output", schema: spec.schema, strict: spec.strict },
        },
    }
}

/// What an answer amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Something to parse and validate: JSON text, or (tool mode) a JSON value.
    Candidate(Candidate),
    /// The model declined (Anthropic `refusal`, OpenAI `message.refusal`). Terminal.
    Refused(String),
    /// The provider's content filter stopped the answer (OpenAI `content_filter`). Terminal.
    ContentFiltered,
    /// The answer hit the token bound (`max_tokens`, `length`). Terminal: a
    /// cut-off answer is not an invalid one.
    Truncated,
    /// The model answered without the structured output (no tool call, no
    /// text): sent back for repair like an invalid answer.
    Missing(String),
    /// Any other stop reason, by name (e.g. `pause_turn`). Terminal.
    Stopped(String),
}

/// An answer's structured output.
#[derive(Debug, Clone, PartialEq)]
pub enum Candidate {
    /// JSON as text (Anthropic native mode, OpenAI content, OpenAI tool arguments).
    Text(String),
    /// JSON as a value (Anthropic tool mode).
    Value(Value),
}

/// One answer, classified.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// What it amounts to.
    pub outcome: Outcome,
    /// The tokens it cost.
    pub usage: Usage,
    /// The assistant turn to send back in a repair.
    pub assistant: Value,
    /// The tool call's id (Anthropic tool mode), for the repair's `tool_result`.
    pub tool_use_id: Option<String>,
    /// What the provider says of itself: the model that answered, the
    /// response id and why it stopped (for the call's span).
    pub about: About,
}

/// The response's own identity, as the provider gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct About {
    /// The model that answered (may name a snapshot of the requested one).
    pub model: Option<String>,
    /// The response id.
    pub id: Option<String>,
    /// The stop or finish reason, as the provider spells it.
    pub finish_reason: Option<String>,
}

/// Reads a successful (2xx) response body.
pub fn parse(provider: Provider, mode: StructuredOutput, body: &[u8]) -> Result<Reply, String> {
    match provider {
        Provider::Anthropic => parse_anthropic(mode, body),
        Provider::Openai => parse_openai(body),
    }
}

#[derive(Deserialize)]
struct AnthropicMessage {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_details: Option<Value>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize, Default)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

fn parse_anthropic(mode: StructuredOutput, body: &[u8]) -> Result<Reply, String> {
    let m: AnthropicMessage = serde_json::from_slice(body)
        .map_err(|e| format!("the provider's answer is not a Messages API message: {e}"))?;
    let u = m.usage.unwrap_or_default();
    let usage = Usage {
        input_tokens: u.input_tokens.unwrap_or(0),
        output_tokens: u.output_tokens.unwrap_or(0),
        cache_creation_input_tokens: u.cache_creation_input_tokens.unwrap_or(0),
        cache_read_input_tokens: u.cache_read_input_tokens.unwrap_or(0),
        calls: 1,
    };
    let block_type = |b: &Value| b.get("type").and_then(Value::as_str).map(str::to_owned);
    let text: String = m
        .content
        .iter()
        .filter(|b| block_type(b).as_deref() == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    let tool = m.content.iter().find(|b| {
        block_type(b).as_deref() == Some("tool_use") && b.get("name").and_then(Value::as_str) == Some(TOOL_NAME)
    });
    let tool_use_id = tool.and_then(|t| t.get("id")).and_then(Value::as_str).map(str::to_owned);
    let outcome = match m.stop_reason.as_deref() {
        Some("refusal") => {
            let details = m.stop_details.as_ref();
            let field = |k: &str| details.and_then(|d| d.get(k)).and_then(Value::as_str);
            Outcome::Refused(match (field("category"), field("explanation")) {
                (Some(c), Some(e)) => format!("{c}: {e}"),
                (Some(c), None) => c.to_owned(),
                (None, Some(e)) => e.to_owned(),
                (None, None) => "no explanation given".to_owned(),
            })
        }
        Some("max_tokens") => Outcome::Truncated,
        Some("end_turn" | "tool_use" | "stop_sequence") | None => match mode {
            StructuredOutput::Tool => match tool.and_then(|t| t.get("input")) {
                Some(input) => Outcome::Candidate(Candidate::Value(input.clone())),
                None => Outcome::Missing(format!("the answer did not call the `{TOOL_NAME}` tool")),
            },
            StructuredOutput::Native if text.trim().is_empty() => Outcome::Missing("the answer has no text".into()),
            StructuredOutput::Native => Outcome::Candidate(Candidate::Text(text.clone())),
        },
        Some(other) => Outcome::Stopped(other.to_owned()),
    };
    let assistant = match mode {
        StructuredOutput::Tool => Value::Array(m.content),
        StructuredOutput::Native => Value::String(text),
    };
    let about = About { model: m.model, id: m.id, finish_reason: m.stop_reason };
    Ok(Reply { outcome, usage, assistant, tool_use_id, about })
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<CompletionUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct ChoiceMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

#[derive(Deserialize, Default)]
struct CompletionUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize, Default)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

fn parse_openai(body: &[u8]) -> Result<Reply, String> {
    let c: Completion =
        serde_json::from_slice(body).map_err(|e| format!("the provider's answer is not a chat completion: {e}"))?;
    let u = c.usage.unwrap_or_default();
    let cached = u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0);
    let usage = Usage {
        // OpenAI counts cached tokens inside `prompt_tokens`.
        input_tokens: u.prompt_tokens.unwrap_or(0).saturating_sub(cached),
        output_tokens: u.completion_tokens.unwrap_or(0),
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: cached,
        calls: 1,
    };
    let choice = c.choices.into_iter().next();
    let finish = choice.as_ref().and_then(|c| c.finish_reason.clone());
    let about = About { model: c.model, id: c.id, finish_reason: finish.clone() };
    let message = choice.and_then(|c| c.message).unwrap_or_default();
    let tool_arguments = message
        .tool_calls
        .iter()
        .flatten()
        .find_map(|t| t.pointer("/function/arguments").and_then(Value::as_str))
        .map(str::to_owned);
    let text = message.content.clone().filter(|t| !t.trim().is_empty()).or(tool_arguments);
    let outcome = if let Some(refusal) = message.refusal.filter(|r| !r.is_empty()) {
        Outcome::Refused(refusal)
    } else {
        match finish.as_deref() {
            Some("content_filter") => Outcome::ContentFiltered,
            Some("length") => Outcome::Truncated,
            Some("stop" | "tool_calls" | "function_call") | None => match &text {
                Some(t) => Outcome::Candidate(Candidate::Text(t.clone())),
                None => Outcome::Missing("the answer has no content".into()),
            },
            Some(other) => Outcome::Stopped(other.to_owned()),
        }
    };
    let assistant = json!({"role": "assistant", "content": text.unwrap_or_default()});
    Ok(Reply { outcome, usage, assistant, tool_use_id: None, about })
}

/// The provider's own words from an error body (`error.message`, or a plain
/// `error` string as some local servers write), with its type when given.
pub fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error")?;
    if let Some(s) = error.as_str() {
        return Some(s.to_owned());
    }
    let message = error.get("message").and_then(Value::as_str)?;
    Some(match error.get("type").and_then(Value::as_str) {
        Some(t) => format!("{t}: {message}"),
        None => message.to_owned(),
    })
}

/// Whether an error body says the account is out of money or quota: a 429
/// that waiting does not fix (Anthropic's spend limit, OpenAI's `insufficient_quota`).
pub fn quota_exhausted(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return false };
    v.pointer("/error/code").and_then(Value::as_str) == Some("insufficient_quota")
        || v.pointer("/error/details/error_code").and_then(Value::as_str) == Some("enforced_spend_limit_reached")
        || v.pointer("/error/type").and_then(Value::as_str) == Some("billing_error")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        Rendered { system: "sys".into(), user: "user".into() }
    }

    fn spec<'a>(provider: Provider, mode: StructuredOutput, schema: &'a RawValue) -> RequestSpec<'a> {
        RequestSpec {
            provider,
            mode,
            model: "m",
            max_tokens: 100,
            max_completion_tokens: false,
            temperature: None,
            schema,
            strict: true,
        }
    }

    #[test]
    fn anthropic_tool_mode_repair_answers_the_tool_call() {
        let schema = serde_json::value::to_raw_value(&json!({"type": "object"})).unwrap();
        let s = spec(Provider::Anthropic, StructuredOutput::Tool, &schema);
        let answer = br#"{"content":[{"type":"text","text":"Sure."},{"type":"tool_use","id":"toolu_1","name":"emit_result","input":{"a":1}},{"type":"new_block_kind"}],"stop_reason":"tool_use","usage":{"input_tokens":10,"output_tokens":5}}"#;
        let reply = parse(Provider::Anthropic, StructuredOutput::Tool, answer).unwrap();
        assert_eq!(reply.outcome, Outcome::Candidate(Candidate::Value(json!({"a": 1}))));
        assert_eq!(reply.usage.total_tokens(), 15);
        let repair = Repair { assistant: reply.assistant, tool_use_id: reply.tool_use_id, text: "fix".into() };
        let body: Value = serde_json::from_slice(&body(&s, &rendered(), Some(&repair))).unwrap();
        assert_eq!(body["messages"][1]["content"][1]["id"], "toolu_1");
        assert_eq!(
            body["messages"][2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true, "content": "fix"})
        );
        assert_eq!(body["tool_choice"]["name"], TOOL_NAME);
        assert!(body.get("temperature").is_none());
    }

    #[test]
    fn stop_reasons_are_classified_before_the_content() {
        let parse_a = |b: &str| parse(Provider::Anthropic, StructuredOutput::Native, b.as_bytes()).unwrap().outcome;
        assert_eq!(
            parse_a(
                r#"{"content":[],"stop_reason":"refusal","stop_details":{"type":"refusal","category":"cyber","explanation":null}}"#
            ),
            Outcome::Refused("cyber".into())
        );
        assert_eq!(
            parse_a(r#"{"content":[{"type":"text","text":"{\"a\":"}],"stop_reason":"max_tokens"}"#),
            Outcome::Truncated
        );
        assert_eq!(parse_a(r#"{"content":[],"stop_reason":"pause_turn"}"#), Outcome::Stopped("pause_turn".into()));
        assert_eq!(
            parse_a(r#"{"content":[],"stop_reason":"end_turn"}"#),
            Outcome::Missing("the answer has no text".into())
        );
        let parse_o = |b: &str| parse(Provider::Openai, StructuredOutput::Native, b.as_bytes()).unwrap().outcome;
        assert_eq!(
            parse_o(
                r#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#
            ),
            Outcome::Refused("I can't help with that.".into())
        );
        assert_eq!(
            parse_o(r#"{"choices":[{"message":{"content":"{"},"finish_reason":"length"}]}"#),
            Outcome::Truncated
        );
        assert_eq!(
            parse_o(r#"{"choices":[{"message":{"content":""},"finish_reason":"content_filter"}]}"#),
            Outcome::ContentFiltered
        );
        assert_eq!(
            parse_o(r#"{"choices":[{"message":{"content":"{}"},"finish_reason":"something_new"}]}"#),
            Outcome::Stopped("something_new".into())
        );
        assert!(parse(Provider::Openai, StructuredOutput::Native, b"[1]").is_err());
    }

    #[test]
    fn error_bodies_of_every_shape() {
        assert_eq!(
            error_message(br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#).unwrap(),
            "invalid_request_error: bad"
        );
        assert_eq!(error_message(br#"{"error":"server busy"}"#).unwrap(), "server busy");
        assert_eq!(error_message(b"<html>"), None);
        assert!(quota_exhausted(br#"{"error":{"code":"insufficient_quota","message":"x"}}"#));
        assert!(quota_exhausted(br#"{"type":"error","error":{"type":"rate_limit_error","details":{"error_code":"enforced_spend_limit_reached"}}}"#));
        assert!(!quota_exhausted(br#"{"error":{"code":"rate_limit_exceeded"}}"#));
    }
}
