//! Reading requests: media types, query parameters, context headers.

use axum::http::{header, HeaderMap, StatusCode};

use super::problem::Problem;
use serde_json::Value;

use crate::program::{escape_pointer, one_line};
use crate::telemetry::TraceParent;

/// The request headers of trace context and correlation.
pub(super) const TRACEPARENT: &str = "traceparent";
pub(super) const TRACESTATE: &str = "tracestate";
pub(super) const CORRELATION_ID: &str = "x-correlation-id";

/// `application/json`, or any `application/*+json`, with parameters.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().as_bytes();
    let (kind, subtype) = match essence.iter().position(|&b| b == b'/') {
        Some(i) => (&essence[..i], &essence[i + 1..]),
        None => return false,
    };
    let json = |s: &[u8]| s.eq_ignore_ascii_case(b"json");
    kind.eq_ignore_ascii_case(b"application")
        && (json(subtype)
            || subtype.len() > 5 && json(&subtype[subtype.len() - 4..]) && subtype[subtype.len() - 5] == b'+')
}

/// A POST without a body, or with a JSON one: anything else (a form, text)
/// is refused before it does anything.
pub(super) fn json_or_empty(headers: &HeaderMap) -> Result<(), Problem> {
    let has_type = headers.contains_key(header::CONTENT_TYPE);
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().parse::<u64>() != Ok(0));
    if (has_type || has_body) && !is_json(headers) {
        return Err(Problem::not_json());
    }
    Ok(())
}

/// `a=b&c=d` into pairs, percent-decoded (`+` is a space, as forms send
/// it); a name or value that does not decode to UTF-8 is kept as given.
pub(super) fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

pub(super) fn bool_param(name: &str, v: &str) -> Result<bool, Problem> {
    match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Problem::bad_query(format!("'{name}' must be true or false, not '{}'", one_line(v)))),
    }
}

pub(super) fn u64_param(name: &str, v: &str) -> Result<u64, Problem> {
    v.parse().map_err(|_| Problem::bad_query(format!("'{name}' must be a non-negative integer, not '{}'", one_line(v))))
}

/// The trace context and correlation id a request brings in its headers.
/// A malformed `traceparent` is not the request's failure (W3C Trace
/// Context): the execution then starts a trace of its own.
pub(super) fn request_context(headers: &HeaderMap) -> Result<(Option<TraceParent>, Option<String>), Problem> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let trace_parent = text(TRACEPARENT).map(|traceparent| TraceParent { traceparent, tracestate: text(TRACESTATE) });
    let correlation = match headers.get(CORRELATION_ID).map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        Some(_) => {
            return Err(Problem::new(StatusCode::BAD_REQUEST, "bad-header", "Bad header")
                .detail("the `X-Correlation-Id` header must be visible ASCII and not empty"))
        }
    };
    Ok((trace_parent, correlation))
}

/// serde_json's message without its ` at line L column C` suffix.
/// The body as JSON; a 400 located by `line:column` when it is not.
pub(super) fn parse_json(bytes: &[u8]) -> Result<Value, Problem> {
    serde_json::from_slice(bytes).map_err(|e| {
        Problem::new(StatusCode::BAD_REQUEST, "malformed-json", "Malformed JSON").detail(format!(
            "the request body is not JSON: {} at {}:{}",
            strip_position(&e),
            e.line(),
            e.column()
        ))
    })
}

pub(super) fn strip_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    one_line(full.strip_suffix(&suffix).unwrap_or(&full))
}

/// The body of `POST /workflows/execute`, checked.
pub(super) struct ExecuteBody {
    pub(super) input: Value,
    pub(super) correlation_id: Option<String>,
}

impl ExecuteBody {
    /// Parses `{"input", "correlationId"?, "workflowId"?}`; the correlation id
    /// may come from the header too (the same in both, or one of them).
    pub(super) fn parse(bytes: &[u8], workflow_id: &str, header_correlation: Option<String>) -> Result<Self, Problem> {
        let body = parse_json(bytes)?;
        let Value::Object(mut body) = body else {
            return Err(Problem::invalid(String::new(), "the request body must be an object with `input`".into()));
        };
        let input =
            body.remove("input").ok_or_else(|| Problem::invalid("/input".into(), "missing field `input`".into()))?;
        let mut correlation_id = None;
        for (key, value) in body {
            match (key.as_str(), value) {
                ("correlationId", Value::String(c)) if !c.is_empty() => correlation_id = Some(c),
                ("correlationId", Value::Null) => {}
                ("correlationId", _) => {
                    return Err(Problem::invalid("/correlationId".into(), "must be a non-empty string".into()))
                }
                ("workflowId", Value::String(w)) if *w == *workflow_id => {}
                ("workflowId", _) => {
                    return Err(Problem::invalid(
                        "/workflowId".into(),
                        format!("this server runs workflow `{}`", workflow_id),
                    ))
                }
                (other, _) => {
                    return Err(Problem::invalid(
                        format!("/{}", escape_pointer(other)),
                        format!(
                            "unknown field `{}`, expected `input`, `correlationId` or `workflowId`",
                            one_line(other)
                        ),
                    ))
                }
            }
        }
        let correlation_id = match (correlation_id, header_correlation) {
            (Some(body), Some(header)) if body != header => {
                return Err(Problem::invalid(
                    "/correlationId".into(),
                    format!(
                        "differs from the X-Correlation-Id header `{}`; give one, or the same in both",
                        one_line(&header)
                    ),
                ))
            }
            (body, header) => body.or(header),
        };
        Ok(ExecuteBody { input, correlation_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn content_type(ct: &str) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        is_json(&headers)
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let q = |s: &str| query_pairs(&Some(s.to_owned()));
        assert_eq!(q("after=%31%32&wait=tr%75e"), [("after".into(), "12".into()), ("wait".into(), "true".into())]);
        assert_eq!(
            q("a=x+y&b=%2&c=%zz&d"),
            [
                ("a".to_owned(), "x y".to_owned()),
                ("b".into(), "%2".into()),
                ("c".into(), "%zz".into()),
                ("d".into(), "".into())
            ]
        );
        assert_eq!(q("a=%FF"), [("a".to_owned(), "%FF".to_owned())], "not UTF-8: kept");
        assert!(q("").is_empty());
    }

    #[test]
    fn json_media_types_with_any_case_and_parameters() {
        for yes in
            ["application/json", "Application/JSON; charset=utf-8", " application/problem+json ", "application/x+JSON"]
        {
            assert!(content_type(yes), "{yes}");
        }
        for no in ["text/json", "application/jsonx", "application/+json", "json", "application/xml", ""] {
            assert!(!content_type(no), "{no:?}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
