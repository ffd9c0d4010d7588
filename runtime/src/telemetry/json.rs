//! `--log-format json`: one JSON object per line, with the ids of the span
//! the event happened in. Our own small layer rather than
//! tracing-subscriber's JSON formatter: a log line carries the ids flat
//! (`trace_id`, `span_id`, `execution_id`, `step_id`), not the span stack.

use std::io::Write;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Span fields a log line carries, innermost span winning.
const IDS: [&str; 7] = ["trace_id", "span_id", "execution_id", "correlation_id", "workflow_id", "step_id", "attempt"];

/// A log line's first fields, in the order every line has them:
/// `timestamp`, `level`, `target`, `message` (the program's own lines start
/// the same way).
pub(crate) fn start_line(level: &tracing::Level, target: &str, message: Value) -> Map<String, Value> {
    let mut line = Map::new();
    line.insert("timestamp".into(), humantime::format_rfc3339_micros(SystemTime::now()).to_string().into());
    line.insert("level".into(), level.as_str().into());
    line.insert("target".into(), target.into());
    line.insert("message".into(), message);
    line
}

/// Writes each event as a JSON line to standard error.
pub(crate) struct JsonLayer {
    write: fn(&[u8]),
}

impl JsonLayer {
    pub(crate) fn stderr() -> Self {
        JsonLayer {
            write: |line| {
                // One write per line: lines from several threads never interleave.
                let _ = std::io::stderr().lock().write_all(line);
            },
        }
    }
}

/// The ids a span carries, kept in its extensions.
#[derive(Default)]
struct SpanIds(Vec<(&'static str, Value)>);

impl SpanIds {
    fn set(&mut self, key: &'static str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

impl Visit for SpanIds {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if let Some(key) = IDS.iter().find(|k| **k == field.name()) {
            self.set(key, Value::String(format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(key) = IDS.iter().find(|k| **k == field.name()) {
            self.set(key, Value::String(value.to_owned()));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if let Some(key) = IDS.iter().find(|k| **k == field.name()) {
            self.set(key, Value::from(value));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Some(key) = IDS.iter().find(|k| **k == field.name()) {
            self.set(key, Value::from(value));
        }
    }
}

/// An event's own fields, `message` first.
struct EventFields(Map<String, Value>);

impl Visit for EventFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ids = SpanIds::default();
        attrs.record(&mut ids);
        span.extensions_mut().insert(ids);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(ids) = ext.get_mut::<SpanIds>() {
            values.record(ids);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = EventFields(Map::new());
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_else(|| Value::String(String::new()));
        let mut line = start_line(meta.level(), meta.target(), message);
        if let Some(scope) = ctx.event_scope(event) {
            let mut innermost = None;
            for span in scope.from_root() {
                if let Some(ids) = span.extensions().get::<SpanIds>() {
                    for (k, v) in &ids.0 {
                        line.insert((*k).into(), v.clone());
                    }
                }
                innermost = Some(span.name());
            }
            if let Some(name) = innermost {
                line.insert("span".into(), name.into());
            }
        }
        // The event's own fields last: they say most about this line.
        for (k, v) in fields.0 {
            line.entry(k).or_insert(v);
        }
        let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
        bytes.push(b'\n');
        (self.write)(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    static LINES: Mutex<Vec<u8>> = Mutex::new(Vec::new());

    #[test]
    fn a_line_carries_the_ids_of_its_spans() {
        let layer = JsonLayer { write: |l| LINES.lock().unwrap().extend_from_slice(l) };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let outer =
                tracing::info_span!("orchestrator.execute", execution_id = "e1", trace_id = tracing::field::Empty);
            outer.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
            let _o = outer.enter();
            let inner = tracing::info_span!("orchestrator.step", step_id = "classify", other = 3);
            let _i = inner.enter();
            tracing::warn!(attempt = 2, "the step \"classify\" failed");
        });
        let text = String::from_utf8(LINES.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let v: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "the step \"classify\" failed");
        assert_eq!(v["execution_id"], "e1");
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(v["step_id"], "classify");
        assert_eq!(v["span"], "orchestrator.step");
        assert_eq!(v["attempt"], 2);
        assert!(v.get("other").is_none(), "span fields other than ids stay out: {v}");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
