//! OpenTelemetry: the OTLP/HTTP exporters configured by the standard
//! variables, the `tracing` bridge, the instruments, and W3C trace context.
//!
//! The exporters use the SDK's batch span processor and periodic metric
//! reader, each on an OS thread of its own with a blocking HTTP client: no
//! async runtime is needed, and the execution's runtime is never blocked by
//! a slow collector.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter, MeterProvider as _};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::TraceParent;
use crate::agent::ExecutionMeta;
use crate::executor::WorkflowInfo;
use crate::journal::{EventKind, JournalEvent};

/// How long an exit waits at most for the exporters to deliver what is left.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// The instrumentation scope of everything orchestr8 records.
pub(crate) const SCOPE: &str = "orchestr8";

/// The SDK providers a program exports through.
pub(crate) struct Providers {
    pub(crate) tracer: Option<SdkTracerProvider>,
    pub(crate) meter: Option<SdkMeterProvider>,
}

impl Providers {
    /// The exporters the `OTEL_*` variables ask for; `None` when they ask
    /// for none. `OTEL_EXPORTER_OTLP_ENDPOINT` (a base: `/v1/traces` and
    /// `/v1/metrics` are appended) or the per-signal variables (used as
    /// given); `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` = `none`
    /// turn a signal off; `OTEL_SDK_DISABLED=true` turns both off.
    pub(crate) fn from_env(info: &WorkflowInfo, notes: &mut Vec<String>) -> Result<Option<Providers>, String> {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        // One signal's problem turns that signal off, not the other.
        let mut wants = |signal: &str| -> bool {
            let endpoint =
                var(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")).or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
            let exporter_var = format!("OTEL_{signal}_EXPORTER");
            let on = match var(&exporter_var).as_deref() {
                // The SDK's default endpoint (http://localhost:4318) when asked for by name.
                Some("otlp") => true,
                None => endpoint.is_some(),
                Some("none") => false,
                Some(other) => {
                    notes.push(format!(
                        "{exporter_var}=`{other}` is not supported (only `otlp` or `none`); {} are not exported",
                        signal.to_lowercase()
                    ));
                    false
                }
            };
            if !on {
                return false;
            }
            if let Some(url) = endpoint.filter(|u| !u.starts_with("http://")) {
                notes.push(format!(
                    "the OTLP endpoint `{url}` for {} is not plain http://: this program exports without TLS \
                     (send to a local collector or agent, which forwards over TLS); nothing is exported",
                    signal.to_lowercase()
                ));
                return false;
            }
            // The signal's own protocol variable wins over the general one.
            let protocol =
                var(&format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")).or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
            if let Some(p) = protocol.filter(|p| p != "http/protobuf") {
                notes.push(format!(
                    "the OTLP protocol `{p}` for {} is not supported: this program exports OTLP over HTTP with \
                     protobuf (set `http/protobuf` and point the endpoint at the collector's HTTP port, usually \
                     4318); nothing is exported",
                    signal.to_lowercase()
                ));
                return false;
            }
            true
        };
        let traces = wants("TRACES");
        let metrics = wants("METRICS");
        if !traces && !metrics {
            return Ok(None);
        }
        let resource = resource(info);
        let tracer = if traces {
            let exporter = SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build()
                .map_err(|e| format!("cannot build the OTLP span exporter: {e}"))?;
            Some(SdkTracerProvider::builder().with_resource(resource.clone()).with_batch_exporter(exporter).build())
        } else {
            None
        };
        let meter = if metrics {
            let exporter = MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build()
                .map_err(|e| format!("cannot build the OTLP metric exporter: {e}"))?;
            Some(SdkMeterProvider::builder().with_resource(resource).with_periodic_exporter(exporter).build())
        } else {
            None
        };
        Ok(Some(Providers { tracer, meter }))
    }

    /// The propagator (for `traceparent` in and out) and the instruments.
    pub(crate) fn install_globals(&self) {
        if let Some(t) = &self.tracer {
            opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
            opentelemetry::global::set_tracer_provider(t.clone());
        }
        if let Some(m) = &self.meter {
            set_instruments(&m.meter(SCOPE));
        }
    }

    /// Delivers what is pending and stops, within [`SHUTDOWN_WAIT`] for an
    /// unreachable collector (the metrics shutdown does not honour its own
    /// timeout, so it runs on a thread we stop waiting for).
    pub(crate) fn shutdown(self) {
        // Both at once, against one deadline: the metrics shutdown does not
        // honour a timeout of its own, so it runs on a thread we stop
        // waiting for.
        let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let mut pending = 0;
        if let Some(t) = self.tracer {
            let tx = tx.clone();
            let spawned = std::thread::Builder::new().name("orchestr8-traces-shutdown".into()).spawn(move || {
                let _ = tx.send(t.shutdown_with_timeout(SHUTDOWN_WAIT).map_err(|e| format!("spans: {e}")));
            });
            pending += usize::from(spawned.is_ok());
        }
        if let Some(m) = self.meter {
            let spawned = std::thread::Builder::new().name("orchestr8-metrics-shutdown".into()).spawn(move || {
                let _ = tx.send(m.shutdown().map_err(|e| format!("metrics: {e}")));
            });
            pending += usize::from(spawned.is_ok());
        }
        let deadline = std::time::Instant::now() + SHUTDOWN_WAIT;
        for _ in 0..pending {
            match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(target: "orchestr8_runtime::telemetry", "the OTLP exporter did not shut down cleanly ({e}); some telemetry may be lost")
                }
                Err(_) => {
                    tracing::warn!(
                        target: "orchestr8_runtime::telemetry",
                        "the OTLP exporters did not finish within {} s; some telemetry may be lost",
                        SHUTDOWN_WAIT.as_secs()
                    );
                    return;
                }
            }
        }
    }
}

/// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` as the SDK reads them;
/// the service name defaults to the workflow id, its version to the
/// workflow's.
fn resource(info: &WorkflowInfo) -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut builder = Resource::builder();
    if !named {
        builder = builder.with_service_name(info.id.to_string());
    }
    let versioned = std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.version="));
    if !versioned {
        builder = builder.with_attribute(KeyValue::new("service.version", info.version.to_string()));
    }
    builder.build()
}

/// The `tracing` → OpenTelemetry bridge for `tracer`'s provider: the spans
/// of workflows and agents and their events (circuit transitions, agents'
/// own logs), not the exporter's own (it logs through `tracing` too, and
/// exporting those would loop).
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("opentelemetry", LevelFilter::OFF)
        .with_target("opentelemetry_sdk", LevelFilter::OFF)
        .with_target("opentelemetry-otlp", LevelFilter::OFF)
        .with_target("reqwest", LevelFilter::OFF)
        .with_target("hyper", LevelFilter::OFF)
        .with_target("hyper_util", LevelFilter::OFF)
        .with_target("h2", LevelFilter::OFF)
        .with_target("tower", LevelFilter::OFF)
        // The executor's end-of-span log lines: the spans' own fields say it.
        .with_target("orchestr8_runtime::telemetry", LevelFilter::WARN);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(SCOPE))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_filter(filter)
}

/// See [`super::stamp_ids`].
pub(crate) fn stamp_ids(span: &tracing::Span) {
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    // Only a trace that is recorded: an unsampled id leads nowhere.
    if sc.is_valid() && sc.is_sampled() {
        span.record("trace_id", tracing::field::display(sc.trace_id()));
        span.record("span_id", tracing::field::display(sc.span_id()));
    }
}

/// Makes `span` (not yet entered) a child of the remote context `parent`.
/// A malformed `traceparent` is ignored, as W3C Trace Context says: the
/// execution starts a trace of its own.
pub(crate) fn adopt(span: &tracing::Span, parent: &TraceParent) {
    if span.is_disabled() {
        return;
    }
    let mut carrier = std::collections::HashMap::new();
    carrier.insert("traceparent".to_owned(), parent.traceparent.clone());
    if let Some(state) = &parent.tracestate {
        carrier.insert("tracestate".to_owned(), state.clone());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The trace id of `span`, when it is exported (sampled).
pub(crate) fn trace_id(span: &tracing::Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    (sc.is_valid() && sc.is_sampled()).then(|| sc.trace_id().to_string())
}

/// Adds `traceparent` (and `tracestate`) for the current span to `headers`.
#[cfg_attr(not(feature = "llm"), allow(dead_code))]
pub(crate) fn inject(headers: &mut http::HeaderMap) {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        opentelemetry::global::get_text_map_propagator(|p| {
            p.inject_context(&cx, &mut opentelemetry_http::HeaderInjector(headers))
        });
    }
}

/// The metrics instruments, once a meter provider is installed.
pub(crate) struct Instruments {
    execution_duration: Histogram<f64>,
    step_duration: Histogram<f64>,
    step_successes: Counter<u64>,
    step_failures: Counter<u64>,
    step_retries: Counter<u64>,
    circuit_transitions: Counter<u64>,
    pub(crate) journal_commit: Histogram<f64>,
    /// The model calls' (LLM agents only).
    #[cfg_attr(not(feature = "llm"), allow(dead_code))]
    pub(crate) genai_duration: Histogram<f64>,
    #[cfg_attr(not(feature = "llm"), allow(dead_code))]
    pub(crate) genai_tokens: Histogram<u64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// Creates the instruments from `meter`: the first meter wins for the
/// process (instruments are process-wide, like the provider behind them).
pub fn set_instruments(meter: &Meter) {
    INSTRUMENTS.get_or_init(|| Instruments::new(meter));
}

/// The instruments, when metrics are exported.
pub(crate) fn instruments() -> Option<&'static Instruments> {
    INSTRUMENTS.get()
}

/// Seconds, the unit OpenTelemetry's conventions give durations.
fn seconds_from_ms(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        // Boundaries for durations from milliseconds (a local step) to
        // minutes (a slow model call), in seconds.
        let bounds = vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
        Instruments {
            execution_duration: meter
                .f64_histogram("orchestr8.execution.duration")
                .with_unit("s")
                .with_description("Duration of workflow executions, by outcome")
                .with_boundaries(bounds.clone())
                .build(),
            step_duration: meter
                .f64_histogram("orchestr8.step.duration")
                .with_unit("s")
                .with_description("Duration of steps (every attempt and backoff), by outcome")
                .with_boundaries(bounds.clone())
                .build(),
            step_successes: meter
                .u64_counter("orchestr8.step.successes")
                .with_unit("{step}")
                .with_description("Steps that produced their output")
                .build(),
            step_failures: meter
                .u64_counter("orchestr8.step.failures")
                .with_unit("{step}")
                .with_description("Steps that failed, by error type")
                .build(),
            step_retries: meter
                .u64_counter("orchestr8.step.retries")
                .with_unit("{retry}")
                .with_description("Retries scheduled after a failed attempt")
                .build(),
            circuit_transitions: meter
                .u64_counter("orchestr8.circuit.transitions")
                .with_unit("{transition}")
                .with_description("Circuit breaker state changes, by the state entered")
                .build(),
            journal_commit: meter
                .f64_histogram("orchestr8.journal.commit.duration")
                .with_unit("s")
                .with_description("Time from a journal write to its group commit (fsync) in `serve`")
                .with_boundaries(vec![0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0])
                .build(),
            genai_duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("GenAI operation duration")
                .with_boundaries(vec![
                    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
                ])
                .build(),
            genai_tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(vec![
                    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
                    16777216.0, 67108864.0,
                ])
                .build(),
        }
    }

    /// Counts what a journal event says happened. Metrics carry workflow,
    /// step and agent, never an execution or correlation id (cardinality).
    pub(crate) fn observe(&self, meta: &ExecutionMeta, ev: &JournalEvent) {
        let workflow = || {
            vec![
                KeyValue::new("workflow_id", meta.workflow_id.to_string()),
                KeyValue::new("workflow_version", meta.workflow_version.to_string()),
            ]
        };
        let step = |outcome: &'static str| {
            let mut attrs = workflow();
            if let Some(s) = &ev.step_id {
                attrs.push(KeyValue::new("step_id", s.to_string()));
            }
            if let Some(a) = &ev.agent_id {
                attrs.push(KeyValue::new("agent_id", a.to_string()));
            }
            attrs.push(KeyValue::new("outcome", outcome));
            if let Some(e) = &ev.error {
                attrs.push(KeyValue::new("error.type", e.kind.as_str()));
            }
            attrs
        };
        let seconds = ev.duration_ms.map(seconds_from_ms);
        match ev.event {
            EventKind::StepSucceeded => {
                let attrs = step("succeeded");
                if let Some(s) = seconds {
                    self.step_duration.record(s, &attrs);
                }
                self.step_successes.add(1, &attrs);
            }
            EventKind::StepFailed => {
                let attrs = step("failed");
                if let Some(s) = seconds {
                    self.step_duration.record(s, &attrs);
                }
                self.step_failures.add(1, &attrs);
            }
            EventKind::StepCancelled => {
                if let Some(s) = seconds {
                    self.step_duration.record(s, &step("cancelled"));
                }
            }
            EventKind::StepRetryScheduled => {
                let mut attrs = step("retrying");
                attrs.pop();
                self.step_retries.add(1, &attrs);
            }
            EventKind::CircuitOpened | EventKind::CircuitHalfOpened | EventKind::CircuitClosed => {
                let to = match ev.event {
                    EventKind::CircuitOpened => "open",
                    EventKind::CircuitHalfOpened => "half_open",
                    _ => "closed",
                };
                let mut attrs = workflow();
                if let Some(a) = &ev.agent_id {
                    attrs.push(KeyValue::new("agent_id", a.to_string()));
                }
                attrs.push(KeyValue::new("circuit.state", to));
                self.circuit_transitions.add(1, &attrs);
            }
            EventKind::ExecutionCompleted | EventKind::ExecutionFailed | EventKind::ExecutionCancelled => {
                let outcome = match ev.event {
                    EventKind::ExecutionCompleted => "completed",
                    EventKind::ExecutionFailed => "failed",
                    _ => "cancelled",
                };
                let mut attrs = workflow();
                attrs.push(KeyValue::new("outcome", outcome));
                if let Some(e) = &ev.error {
                    attrs.push(KeyValue::new("error.type", e.kind.as_str()));
                }
                if let Some(s) = seconds {
                    self.execution_duration.record(s, &attrs);
                }
            }
            _ => {}
        }
    }
}
