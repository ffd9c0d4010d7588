//! The two wire formats: a request body from the rendered prompt, and a
//! provider's answer classified into one [`Outcome`].
//!
//! Only the fields orchestr8 uses are read; unknown content blocks, stop
//! reasons and fields are tolerated (the APIs grow), never a parse error.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use orchestr8_schema::ast::{Provider, StructuredOutput};

use super::json_writer::JsonWriter;
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
    /// The model's turn as the provider returned it (see [`Reply::assistant`]).
    pub assistant: Value,
    /// In Anthropic's tool mode, the id of the tool call the feedback answers.
    pub tool_use_id: Option<String>,
    /// The feedback.
    pub text: String,
}

/// The request body, as the bytes to send, written member by member in the
/// order the providers document (the wire schema is serialised once, when
/// the agent is built): a call copies its prompt into the body once and
/// clones nothing.
pub fn body(spec: &RequestSpec<'_>, prompt: &Rendered, repair: Option<&Repair>) -> Vec<u8> {
    // Room for the texts, their escapes and the members around them.
    let texts = prompt.system.len() + prompt.user.len() + repair.map_or(0, |r| r.text.len() * 2 + 512);
    let mut w = JsonWriter::with_capacity(spec.schema.get().len() + texts + texts / 4 + 512);
    match spec.provider {
        Provider::Anthropic => anthropic_body(&mut w, spec, prompt, repair),
        Provider::Openai => openai_body(&mut w, spec, prompt, repair),
    }
    w.into_bytes()
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
fn first_turn(w: &mut JsonWriter, prompt: &Rendered, repair: Option<&Repair>, empty: bool) {
    match repair.filter(|_| empty) {
        Some(r) => w.strings(&[&prompt.user, "\n\n", &r.text]),
        None => w.string(&prompt.user),
    };
}

fn anthropic_body(w: &mut JsonWriter, spec: &RequestSpec<'_>, prompt: &Rendered, repair: Option<&Repair>) {
    let empty = repair.is_some_and(|r| is_empty_turn(&r.assistant));
    w.open(b'{').key("model").string(spec.model).key("max_tokens").value(&spec.max_tokens);
    w.key("system").string(&prompt.system).key("messages").open(b'[');
    w.open(b'{').key("role").string("user").key("content");
    first_turn(w, prompt, repair, empty);
    w.close(b'}');
    if let Some(r) = repair.filter(|_| !empty) {
        w.open(b'{').key("role").string("assistant").key("content").value(&r.assistant).close(b'}');
        // The conversation always ends with a user turn: structured output
        // rejects an assistant prefill.
        w.open(b'{').key("role").string("user").key("content");
        match &r.tool_use_id {
            Some(id) => {
                w.open(b'[').open(b'{').key("type").string("tool_result").key("tool_use_id").string(id);
                w.key("is_error").value(&true).key("content").string(&r.text).close(b'}').close(b']');
            }
            None => {
                w.string(&r.text);
            }
        }
        w.close(b'}');
    }
    w.close(b']');
    if let Some(t) = spec.temperature {
        w.key("temperature").value(&t);
    }
    if spec.mode == StructuredOutput::Native {
        w.key("output_config").open(b'{').key("format").open(b'{');
        w.key("type").string("json_schema").key("schema").raw(spec.schema).close(b'}').close(b'}');
    } else {
        w.key("tools").open(b'[').open(b'{').key("name").string(TOOL_NAME);
        w.key("description").string("Return the final result.").key("input_schema").raw(spec.schema);
        w.close(b'}').close(b']');
        w.key("tool_choice").open(b'{').key("type").string("tool").key("name").string(TOOL_NAME);
        w.key("disable_parallel_tool_use").value(&true).close(b'}');
    }
    w.close(b'}');
}

fn openai_body(w: &mut JsonWriter, spec: &RequestSpec<'_>, prompt: &Rendered, repair: Option<&Repair>) {
    let empty = repair.is_some_and(|r| is_empty_turn(&r.assistant));
    w.open(b'{').key("model").string(spec.model).key("messages").open(b'[');
    w.open(b'{').key("role").string("system").key("content").string(&prompt.system).close(b'}');
    w.open(b'{').key("role").string("user").key("content");
    first_turn(w, prompt, repair, empty);
    w.close(b'}');
    if let Some(r) = repair.filter(|_| !empty) {
        w.open(b'{').key("role").string("assistant").key("content").value(&r.assistant).close(b'}');
        w.open(b'{').key("role").string("user").key("content").string(&r.text).close(b'}');
    }
    w.close(b']');
    let limit = if spec.max_completion_tokens { "max_completion_tokens" } else { "max_tokens" };
    w.key(limit).value(&spec.max_tokens);
    if let Some(t) = spec.temperature {
        w.key("temperature").value(&t);
    }
    w.key("response_format").open(b'{').key("type").string("json_schema");
    w.key("json_schema").open(b'{').key("name").string("output").key("schema").raw(spec.schema);
    w.key("strict").value(&spec.strict).close(b'}').close(b'}');
    w.close(b'}');
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
    /// The content of the model's turn, to send back in a repair: the
    /// content blocks in Anthropic's tool mode, the text otherwise.
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
    let m: AnthropicMessage =
        from_body(body).map_err(|e| format!("the provider's answer is not a Messages API message: {e}"))?;
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
    let c: Completion = from_body(body).map_err(|e| format!("the provider's answer is not a chat completion: {e}"))?;
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
    let (finish, message) = match c.choices.into_iter().next() {
        Some(choice) => (choice.finish_reason, choice.message.unwrap_or_default()),
        None => (None, ChoiceMessage::default()),
    };
    let tool_arguments = message
        .tool_calls
        .iter()
        .flatten()
        .find_map(|t| t.pointer("/function/arguments").and_then(Value::as_str))
        .map(str::to_owned);
    let text = message.content.filter(|t| !t.trim().is_empty()).or(tool_arguments);
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
    let assistant = Value::String(text.unwrap_or_default());
    let about = About { model: c.model, id: c.id, finish_reason: finish };
    Ok(Reply { outcome, usage, assistant, tool_use_id: None, about })
}

/// A response body read as `T`. Any JSON a provider sends is UTF-8: checked
/// once for the whole body, serde_json then reads it as text and does not
/// check every string again. A body that is not gets serde_json's own error.
fn from_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
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
    use serde_json::json;

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
    fn bodies_are_the_documented_members_in_order_with_every_escape() {
        // Every character JSON escapes, and some it does not, in every text.
        let tricky = "q\"b\\s/n\nt\tr\rb\u{8}f\u{c}c\u{1}\u{1f}\u{7f} é ✓ \u{1F600} ends long enough to span words";
        let schema_value = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let schema = serde_json::value::to_raw_value(&schema_value).unwrap();
        let prompt = Rendered { system: format!("sys {tricky}"), user: format!("user {tricky}") };
        let assistant_text = json!("{\"a\": 1");
        let repair = |assistant: Value, tool_use_id: Option<&str>| Repair {
            assistant,
            tool_use_id: tool_use_id.map(str::to_owned),
            text: format!("fix {tricky}"),
        };
        let bytes = |v: Value| serde_json::to_vec(&v).unwrap();

        let mut openai = spec(Provider::Openai, StructuredOutput::Native, &schema);
        openai.model = "m\"1";
        let response_format =
            json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema_value, "strict": true}});
        assert_eq!(
            body(&openai, &prompt, None),
            bytes(json!({
                "model": "m\"1",
                "messages": [{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}],
                "max_tokens": 100,
                "response_format": response_format
            }))
        );
        openai.max_completion_tokens = true;
        openai.temperature = Some(0.2);
        let r = repair(assistant_text.clone(), None);
        let mut expected = json!({
            "model": "m\"1",
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": prompt.user},
                {"role": "assistant", "content": assistant_text},
                {"role": "user", "content": r.text}
            ],
            "max_completion_tokens": 100,
            "temperature": 0.2,
            "response_format": response_format
        });
        assert_eq!(body(&openai, &prompt, Some(&r)), bytes(expected.clone()));
        // An empty turn is left out; the feedback joins the prompt.
        let r = repair(json!(" "), None);
        expected["messages"] = json!([
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": format!("{}\n\n{}", prompt.user, r.text)}
        ]);
        assert_eq!(body(&openai, &prompt, Some(&r)), bytes(expected));

        let native = spec(Provider::Anthropic, StructuredOutput::Native, &schema);
        let r = repair(json!(tricky), None);
        assert_eq!(
            body(&native, &prompt, Some(&r)),
            bytes(json!({
                "model": "m",
                "max_tokens": 100,
                "system": prompt.system,
                "messages": [
                    {"role": "user", "content": prompt.user},
                    {"role": "assistant", "content": tricky},
                    {"role": "user", "content": r.text}
                ],
                "output_config": {"format": {"type": "json_schema", "schema": schema_value}}
            }))
        );
        let mut tool = spec(Provider::Anthropic, StructuredOutput::Tool, &schema);
        tool.temperature = Some(1.0);
        let blocks = json!([{"type": "tool_use", "id": "toolu_1", "name": TOOL_NAME, "input": {"a": 1}}]);
        let r = repair(blocks.clone(), Some("toolu_1"));
        let mut expected = json!({
            "model": "m",
            "max_tokens": 100,
            "system": prompt.system,
            "messages": [
                {"role": "user", "content": prompt.user},
                {"role": "assistant", "content": blocks},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true, "content": r.text}
                ]}
            ],
            "temperature": 1.0,
            "tools": [{"name": TOOL_NAME, "description": "Return the final result.", "input_schema": schema_value}],
            "tool_choice": {"type": "tool", "name": TOOL_NAME, "disable_parallel_tool_use": true}
        });
        assert_eq!(body(&tool, &prompt, Some(&r)), bytes(expected.clone()));
        expected["messages"] = json!([{"role": "user", "content": prompt.user}]);
        assert_eq!(body(&tool, &prompt, None), bytes(expected));
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
