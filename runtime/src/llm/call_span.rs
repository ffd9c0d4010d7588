//! One model call as the OpenTelemetry GenAI semantic conventions describe
//! it (version [`GENAI_SEMCONV_VERSION`](crate::telemetry::GENAI_SEMCONV_VERSION)):
//! a CLIENT span `chat {model}` under the attempt's `agent.run`, and the
//! `gen_ai.client.operation.duration` and `gen_ai.client.token.usage`
//! metrics. Prompts and answers go into the span only when
//! [`CAPTURE_CONTENT_ENV`](crate::telemetry::CAPTURE_CONTENT_ENV) is `true`;
//! the API key never does (it travels in a header, never in a body).

use std::time::Instant;

use orchestr8_schema::ast::Provider;
use tracing::field::Empty;

use super::provider::Reply;
use crate::agent::AgentError;

/// The span of one call, open until [`end`](Self::end).
pub(super) struct CallSpan {
    pub(super) span: tracing::Span,
    started: Instant,
    provider: &'static str,
    capture: bool,
    /// The model, for the metrics; `None` once ended.
    model: Option<String>,
}

/// A call dropped before it answered: the attempt timed out or the
/// execution was cancelled. It still shows, as a failed call.
impl Drop for CallSpan {
    fn drop(&mut self) {
        let Some(model) = self.model.take() else { return };
        self.span.record("error.type", "aborted");
        self.span.record("otel.status_code", "ERROR");
        self.span.record("otel.status_description", "the call was abandoned (timeout or cancellation)");
        self.metrics(&model, None, Some("aborted"), None);
    }
}

/// `gen_ai.provider.name` of the conventions.
fn semconv_provider(provider: Provider) -> &'static str {
    match provider {
        Provider::Anthropic => "anthropic",
        Provider::Openai => "openai",
    }
}

impl CallSpan {
    pub(super) fn start(
        provider: Provider,
        model: &str,
        url: &reqwest::Url,
        max_tokens: u32,
        temperature: Option<f64>,
        body: &[u8],
    ) -> CallSpan {
        let provider = semconv_provider(provider);
        let span = tracing::info_span!(
            "chat",
            otel.name = %format_args!("chat {model}"),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = provider,
            gen_ai.request.model = model,
            gen_ai.request.max_tokens = i64::from(max_tokens),
            gen_ai.request.temperature = temperature,
            gen_ai.response.model = Empty,
            gen_ai.response.id = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.input.messages = Empty,
            gen_ai.output.messages = Empty,
            server.address = url.host_str().unwrap_or_default(),
            server.port = url.port_or_known_default().map(i64::from),
            error.type = Empty,
            otel.status_description = Empty,
        );
        let capture = !span.is_disabled()
            && std::env::var(crate::telemetry::CAPTURE_CONTENT_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        if capture {
            span.record("gen_ai.input.messages", String::from_utf8_lossy(body).as_ref());
        }
        CallSpan { span, started: Instant::now(), provider, capture, model: Some(model.to_owned()) }
    }

    /// Records how the call went on the span and in the metrics.
    pub(super) fn end(mut self, result: &Result<Reply, AgentError>) {
        let Some(model) = self.model.take() else { return };
        let response_model = result.as_ref().ok().and_then(|r| r.about.model.as_deref());
        let error_type = result.as_ref().err().map(|e| e.reason().unwrap_or("agent_error"));
        if !self.span.is_disabled() {
            match result {
                Ok(reply) => {
                    let a = &reply.about;
                    if let Some(m) = &a.model {
                        self.span.record("gen_ai.response.model", m.as_str());
                    }
                    if let Some(id) = &a.id {
                        self.span.record("gen_ai.response.id", id.as_str());
                    }
                    if let Some(f) = &a.finish_reason {
                        finish_reasons(&self.span, f);
                    }
                    let input = reply.usage.input_tokens
                        + reply.usage.cache_creation_input_tokens
                        + reply.usage.cache_read_input_tokens;
                    self.span.record("gen_ai.usage.input_tokens", i64::try_from(input).unwrap_or(i64::MAX));
                    self.span.record(
                        "gen_ai.usage.output_tokens",
                        i64::try_from(reply.usage.output_tokens).unwrap_or(i64::MAX),
                    );
                    if self.capture {
                        // OpenAI's turn is a message; the reply keeps only its content.
                        let turn = match self.provider {
                            "openai" => serde_json::json!({"role": "assistant", "content": reply.assistant}),
                            _ => reply.assistant.clone(),
                        };
                        self.span.record("gen_ai.output.messages", turn.to_string().as_str());
                    }
                }
                Err(e) => {
                    self.span.record("error.type", e.reason().unwrap_or("agent_error"));
                    self.span.record("otel.status_code", "ERROR");
                }
            }
        }
        self.metrics(&model, response_model, error_type, result.as_ref().ok().map(|r| &r.usage));
    }

    /// `gen_ai.client.operation.duration` and, when it answered,
    /// `gen_ai.client.token.usage`.
    fn metrics(
        &self,
        model: &str,
        response_model: Option<&str>,
        error_type: Option<&str>,
        usage: Option<&crate::usage::Usage>,
    ) {
        #[cfg(feature = "otel")]
        if let Some(m) = crate::telemetry::otel::instruments() {
            use opentelemetry::KeyValue;
            let mut attrs = vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.provider.name", self.provider),
                KeyValue::new("gen_ai.request.model", model.to_owned()),
            ];
            if let Some(rm) = response_model {
                attrs.push(KeyValue::new("gen_ai.response.model", rm.to_owned()));
            }
            if let Some(t) = error_type {
                attrs.push(KeyValue::new("error.type", t.to_owned()));
            }
            m.genai_duration.record(self.started.elapsed().as_secs_f64(), &attrs);
            if let Some(u) = usage {
                let input = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
                for (kind, n) in [("input", input), ("output", u.output_tokens)] {
                    let mut a = attrs.clone();
                    a.push(KeyValue::new("gen_ai.token.type", kind));
                    m.genai_tokens.record(n, &a);
                }
            }
        }
        #[cfg(not(feature = "otel"))]
        let _ = (model, response_model, error_type, usage, self.provider, self.started);
    }
}

/// `gen_ai.response.finish_reasons`: a string array in the conventions
/// (one choice here); `tracing` fields cannot hold arrays, so it is set on
/// the OpenTelemetry span directly.
fn finish_reasons(span: &tracing::Span, reason: &str) {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::{Array, StringValue, Value};
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        span.set_attribute(
            "gen_ai.response.finish_reasons",
            Value::Array(Array::String(vec![StringValue::from(reason.to_owned())])),
        );
    }
    #[cfg(not(feature = "otel"))]
    let _ = (span, reason);
}
