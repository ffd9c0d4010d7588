//! What a running workflow tells the outside: log lines on standard error
//! (human text, or one JSON object per line), and, with the cargo feature
//! `otel`, OpenTelemetry traces and metrics over OTLP/HTTP when the standard
//! `OTEL_*` variables ask for them.
//!
//! The executor opens `tracing` spans with the product spec's names
//! (`orchestrator.execute`, `orchestrator.step`, `agent.run`,
//! `resilience.retry`) and derives its metrics from the journal events it
//! records (so a trace, the metrics and `inspect` agree on steps, attempts
//! and durations). Nothing here is built or spawned unless asked for: with no
//! `OTEL_*` variable set there is no exporter, no thread and no connection.
//!
//! Modules: `json` (the JSON log layer), `otel` (exporters, instruments,
//! W3C trace context; feature `otel`).

pub(crate) mod json;
#[cfg(feature = "otel")]
pub mod otel;

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

use crate::executor::WorkflowInfo;

/// Selects the log format: `--log-format` wins over this variable.
pub const LOG_FORMAT_ENV: &str = "ORCHESTR8_LOG_FORMAT";

/// The variable that lets prompts and answers of model calls into spans
/// (the GenAI conventions' opt-in; off by default: they may hold personal data).
pub const CAPTURE_CONTENT_ENV: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";

/// The OpenTelemetry GenAI semantic conventions version the model-call spans
/// and metrics follow (development status: names may still change).
pub const GENAI_SEMCONV_VERSION: &str = "1.37.0";

/// How standard error reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Progress lines for people; `tracing` warnings and errors as text.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, the
    /// event's fields and the span's ids (`trace_id`, `span_id`,
    /// `execution_id`, `step_id`).
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format `{other}`; expected `text` or `json`")),
        }
    }
}

impl LogFormat {
    /// From [`LOG_FORMAT_ENV`], [`Text`](Self::Text) when unset.
    pub fn from_env() -> Result<LogFormat, String> {
        match std::env::var(LOG_FORMAT_ENV) {
            Ok(v) if !v.is_empty() => v.parse().map_err(|e| format!("{LOG_FORMAT_ENV}: {e}")),
            _ => Ok(LogFormat::Text),
        }
    }
}

/// The installed telemetry of a program: flushes and shuts the exporters
/// down when dropped (or at [`shutdown`](Self::shutdown)), so a short run
/// loses no span.
#[must_use = "dropping it shuts the exporters down"]
pub struct Telemetry {
    #[cfg(feature = "otel")]
    providers: Option<otel::Providers>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("exporting", &self.exporting()).finish()
    }
}

impl Telemetry {
    /// Installs the process's `tracing` subscriber (once per process; a
    /// second call keeps the first) and, when the `OTEL_*` variables ask for
    /// it, the OTLP exporters. `RUST_LOG` filters the log lines (`warn` for
    /// text and `info` for JSON by default). What cannot be honoured (a bad
    /// `RUST_LOG`, an unsupported protocol, a build without the exporter)
    /// goes into `notes` for the caller to say, and the program runs on.
    pub fn install(info: &WorkflowInfo, format: LogFormat, notes: &mut Vec<String>) -> Telemetry {
        let default = match format {
            LogFormat::Text => LevelFilter::WARN,
            LogFormat::Json => LevelFilter::INFO,
        };
        // The SDK's own chatter (`provider set`, ...) only when it matters,
        // unless RUST_LOG asks for it.
        let quiet_sdk = Targets::new()
            .with_default(default)
            .with_target("opentelemetry", LevelFilter::WARN)
            .with_target("opentelemetry_sdk", LevelFilter::WARN)
            .with_target("opentelemetry-otlp", LevelFilter::WARN);
        let filter = match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => v.parse::<Targets>().unwrap_or_else(|e| {
                notes.push(format!("RUST_LOG `{v}` is not a filter ({e}); using `{default}`"));
                quiet_sdk
            }),
            _ => quiet_sdk,
        };
        let text = (format == LogFormat::Text).then(|| {
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_filter(filter.clone())
        });
        // Spans always reach the JSON layer (their ids go on every line, a
        // warning's too, however strict RUST_LOG is); RUST_LOG picks events.
        let json = (format == LogFormat::Json).then(|| {
            json::JsonLayer::stderr().with_filter(tracing_subscriber::filter::filter_fn(move |m| {
                if m.is_span() {
                    *m.level() <= tracing::Level::INFO
                } else {
                    filter.would_enable(m.target(), m.level())
                }
            }))
        });
        let registry = tracing_subscriber::registry().with(text).with(json);

        #[cfg(feature = "otel")]
        {
            let mut said = Vec::new();
            let providers = match otel::Providers::from_env(info, &mut said) {
                Ok(p) => p,
                Err(msg) => {
                    said.push(format!("{msg}; nothing is exported"));
                    None
                }
            };
            notes.extend(said);
            let layer = providers.as_ref().and_then(|p| p.tracer.as_ref()).map(otel::layer);
            if layer.is_some() && format == LogFormat::Json {
                IDS_IN_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let _ = tracing::subscriber::set_global_default(registry.with(layer));
            if let Some(p) = &providers {
                p.install_globals();
            }
            Telemetry { providers }
        }
        #[cfg(not(feature = "otel"))]
        {
            let _ = info;
            if let Some(var) = otel_requested() {
                notes.push(format!(
                    "{var} is set but this program was built without OpenTelemetry export; \
                     nothing is exported (build it with `--features otel`, the generated crate's default)"
                ));
            }
            let _ = tracing::subscriber::set_global_default(registry);
            Telemetry {}
        }
    }

    /// Whether traces or metrics are exported.
    pub fn exporting(&self) -> bool {
        #[cfg(feature = "otel")]
        return self.providers.is_some();
        #[cfg(not(feature = "otel"))]
        false
    }

    /// Flushes what is pending and stops the exporters, waiting at most a few
    /// seconds for an unreachable collector.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(p) = self.providers.take() {
            p.shutdown();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The `OTEL_*` variable that asks for export, if any is set.
#[cfg_attr(feature = "otel", allow(dead_code))]
pub(crate) fn otel_requested() -> Option<&'static str> {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]
        .into_iter()
        .find(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}

/// A W3C trace context received with a request (`traceparent`, and
/// `tracestate` when given): the execution's trace becomes its child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceParent {
    /// The `traceparent` header.
    pub traceparent: String,
    /// The `tracestate` header, if any.
    pub tracestate: Option<String>,
}

/// Whether log lines show trace and span ids (JSON logs while traces are
/// exported): only then are the ids worth recording on every span.
#[cfg(feature = "otel")]
static IDS_IN_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records the OpenTelemetry ids of `span` on its `trace_id` and `span_id`
/// fields (for the JSON log lines of events inside it). Does nothing unless
/// traces are exported.
pub(crate) fn stamp_ids(span: &tracing::Span) {
    #[cfg(feature = "otel")]
    if IDS_IN_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        otel::stamp_ids(span);
    }
    #[cfg(not(feature = "otel"))]
    let _ = span;
}

/// A span of the executor (`info_span!` with the given name and fields)
/// that also declares what [`end_span`] and [`stamp_ids`] record.
macro_rules! executor_span {
    ($name:literal, $($fields:tt)*) => {
        tracing::info_span!(
            $name,
            $($fields)*
            outcome = tracing::field::Empty,
            error.type = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        )
    };
}
pub(crate) use executor_span;

/// How a span of the executor ended: its `outcome`, `error.type`,
/// `duration_ms` (the journal's figure, so a trace and `inspect` agree) and
/// status (with the error's message), and one log line in it (for the logs:
/// the trace has all of it in the span). The span declares these fields.
pub(crate) fn end_span(
    span: &tracing::Span,
    what: &str,
    outcome: &'static str,
    error: Option<&crate::error::StepError>,
    duration_ms: Option<u64>,
) {
    if span.is_disabled() {
        return;
    }
    span.record("outcome", outcome);
    if let Some(ms) = duration_ms {
        // i64: tracing-opentelemetry exports unsigned fields as strings.
        span.record("duration_ms", i64::try_from(ms).unwrap_or(i64::MAX));
    }
    match error {
        Some(e) if outcome != "cancelled" => {
            span.record("error.type", e.kind.as_str());
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", e.message.as_str());
            tracing::info!(parent: span, error.type = e.kind.as_str(), error.message = %e.message, "{what} {outcome}");
        }
        _ => tracing::info!(parent: span, "{what} {outcome}"),
    }
}
