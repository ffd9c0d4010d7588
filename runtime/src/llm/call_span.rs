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
            gen_ai.response.finish_reasons = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.input.messages = Empty,
            gen_ai.output.messages = Empty,
            server.address = url.host_str().unwrap_or_default(),
            server.port = url.port_or_known_default().map(i64::from),
            error.type = Empty,
        );
        let capture = !span.is_disabled()
            && std::env::var(crate::telemetry::CAPTURE_CONTENT_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        if capture {
            span.record("gen_ai.input.messages", String::from_utf8_lossy(body).as_ref());
        }
        CallSpan { span, started: Instant::now(), provider, capture }
    }

    /// Records how the call went on the span and in the metrics.
    pub(super) fn end(self, model: &str, result: &Result<Reply, AgentError>) {
        let seconds = self.started.elapsed().as_secs_f64();
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
                        // A list in the conventions: one choice here.
                        self.span.record("gen_ai.response.finish_reasons", tracing::field::debug([f.as_str()]));
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
                        self.span.record("gen_ai.output.messages", reply.assistant.to_string().as_str());
                    }
                }
                Err(e) => {
                    self.span.record("error.type", e.reason().unwrap_or("agent_error"));
                    self.span.record("otel.status_code", "ERROR");
                }
            }
        }
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
            m.genai_duration.record(seconds, &attrs);
            if let Ok(reply) = result {
                let u = &reply.usage;
                let input = u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens;
                for (kind, n) in [("input", input), ("output", u.output_tokens)] {
                    let mut a = attrs.clone();
                    a.push(KeyValue::new("gen_ai.token.type", kind));
                    m.genai_tokens.record(n, &a);
                }
            }
        }
        #[cfg(not(feature = "otel"))]
        let _ = (seconds, model, response_model, error_type, self.provider);
    }
}
