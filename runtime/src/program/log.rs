//! The program's own messages on standard error: `error: …` for people, or
//! one JSON object per line with `--log-format json`.

use std::io::Write;

use serde_json::Value;
use tracing::Level;

use crate::error::ExecutionError;
use crate::telemetry::LogFormat;

/// The log format: the flag, else [`crate::telemetry::LOG_FORMAT_ENV`];
/// `None` (after saying why) when the variable holds no format.
pub(super) fn log_format(flag: Option<LogFormat>, stderr: &mut dyn Write) -> Option<LogFormat> {
    match flag.map(Ok).unwrap_or_else(LogFormat::from_env) {
        Ok(f) => Some(f),
        Err(msg) => {
            let _ = writeln!(stderr, "error: {msg}");
            None
        }
    }
}

/// Writes a message of the program itself to standard error: `error: …`
/// (and the contract's error JSON on its own line) for people, one JSON
/// object per line with `--log-format json`.
pub(super) fn say(
    stderr: &mut dyn Write,
    format: LogFormat,
    level: Level,
    message: &str,
    error: Option<&ExecutionError>,
    fields: &[(&str, String)],
) {
    match format {
        LogFormat::Text => {
            let _ = match (level, error) {
                (_, Some(e)) => {
                    writeln!(stderr, "error: {message}\n{}", serde_json::to_string(e).unwrap_or_default())
                }
                (Level::ERROR, None) => writeln!(stderr, "error: {message}"),
                (Level::WARN, None) => writeln!(stderr, "warning: {message}"),
                _ => writeln!(stderr, "{message}"),
            };
        }
        LogFormat::Json => {
            let mut line = crate::telemetry::json::start_line(&level, "orchestr8", message.into());
            for (k, v) in fields {
                line.insert((*k).into(), v.as_str().into());
            }
            if let Some(e) = error {
                line.insert("error".into(), serde_json::to_value(e).unwrap_or_default());
            }
            let _ = writeln!(stderr, "{}", Value::Object(line));
        }
    }
}
