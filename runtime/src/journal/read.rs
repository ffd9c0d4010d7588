//! Reading one journal line back, as deep as it was written.
//!
//! The line writer ([`super::line`]) writes values of any depth, and a
//! server accepts inputs up to serde_json's 128 levels that a workflow may
//! wrap deeper in its output; serde_json's reader stops at 128. Lines are
//! read here without that limit, on a stack that grows as the parse goes
//! deeper (`serde_stacker`), so reading agrees with writing. What is read is
//! then cloned, serialised into responses and dropped by recursive code on
//! ordinary threads: a field's value nested deeper than [`MAX_READ_DEPTH`]
//! is left out (read as absent) with a warning, instead of risking the
//! stack, and the event itself (its name, state, step) is still read, so a
//! completed execution never reads back as failed because of its output.

use std::ops::Range;

use super::JournalEvent;

/// The deepest value (arrays and objects) of a journal line's field that is
/// read back; a deeper one is left out with a warning. Far above what
/// requests can hold (128) and what workflows build from them, and low
/// enough that serialising, cloning and dropping it is safe on a 2 MiB
/// thread even in a debug build (which takes about 1 KiB per level).
pub const MAX_READ_DEPTH: usize = 512;

/// Stack kept free below the parse; a new segment of `STACK_GROWTH` is
/// allocated when less is left.
const RED_ZONE: usize = 64 * 1024;
const STACK_GROWTH: usize = 1024 * 1024;

/// One line (without its newline) as an event, and a warning when a value
/// too deep to keep was left out.
pub(crate) fn parse_line(line: &[u8]) -> serde_json::Result<(JournalEvent, Option<String>)> {
    let deep = too_deep(line, MAX_READ_DEPTH);
    if deep.is_empty() {
        return unbounded::<JournalEvent>(line).map(|ev| (ev, None));
    }
    let mut kept = Vec::with_capacity(line.len());
    let mut from = 0;
    for (range, _) in &deep {
        kept.extend_from_slice(&line[from..range.start]);
        kept.extend_from_slice(b"null");
        from = range.end;
    }
    kept.extend_from_slice(&line[from..]);
    let ev: JournalEvent = unbounded(&kept)?;
    let fields: Vec<&str> = deep.iter().map(|(_, key)| key.as_str()).collect();
    let warning = format!(
        "event {} ({}) of execution {}: its {} nested deeper than {MAX_READ_DEPTH} levels, left out",
        ev.seq,
        ev.event.as_str(),
        ev.execution_id,
        match fields.as_slice() {
            [one] => format!("`{one}` is"),
            many => format!("`{}` are", many.join("`, `")),
        }
    );
    Ok((ev, Some(warning)))
}

/// A value serde_json wrote, read as a journal line's field is read: at any
/// depth up to [`MAX_READ_DEPTH`]; deeper, left out (`null`).
pub(crate) fn field_value(json: &str) -> serde_json::Value {
    // The same scan as a line's (a field of a one-field line).
    if !too_deep(format!("{{\"v\":{json}}}").as_bytes(), MAX_READ_DEPTH).is_empty() {
        return serde_json::Value::Null;
    }
    unbounded(json.as_bytes()).unwrap_or(serde_json::Value::Null)
}

/// serde_json without its recursion limit, on a stack that grows.
fn unbounded<T: serde::de::DeserializeOwned>(json: &[u8]) -> serde_json::Result<T> {
    let mut de = serde_json::Deserializer::from_slice(json);
    de.disable_recursion_limit();
    let mut stacked = serde_stacker::Deserializer::new(&mut de);
    stacked.red_zone = RED_ZONE;
    stacked.stack_size = STACK_GROWTH;
    let value = T::deserialize(stacked)?;
    de.end()?;
    Ok(value)
}

/// The values of the line's top-level fields that nest deeper than `limit`
/// (byte ranges and keys, in order). A scan over the bytes: strings are
/// skipped, brackets counted; malformed JSON is left to the parser.
fn too_deep(line: &[u8], limit: usize) -> Vec<(Range<usize>, String)> {
    let mut found = Vec::new();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut string_start, mut last_string, mut key) = (0usize, 0..0, 0..0);
    let (mut value_start, mut value_depth) = (0usize, 0usize);
    for (i, &b) in line.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                last_string = string_start..i + 1;
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i;
            }
            b':' if depth == 1 => key = last_string.clone(),
            b'[' | b'{' => {
                depth += 1;
                if depth == 2 {
                    value_start = i;
                    value_depth = 0;
                }
                value_depth = value_depth.max(depth - 1);
            }
            b']' | b'}' => {
                if depth == 2 && value_depth > limit {
                    let name = String::from_utf8_lossy(&line[key.clone()]).trim_matches('"').to_owned();
                    found.push((value_start..i + 1, name));
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!("{}0{}", "[".repeat(depth), "]".repeat(depth))
    }

    fn line(output: &str) -> String {
        format!(
            r#"{{"seq":3,"ts":"2026-01-01T00:00:00.000000Z","executionId":"e","event":"execution.completed","input":{{"k":"[{{"}},"output":{output},"state":"completed"}}"#
        )
    }

    #[test]
    fn values_up_to_the_limit_are_read_whole() {
        let (ev, warning) = parse_line(line(&nested(MAX_READ_DEPTH)).as_bytes()).unwrap();
        assert_eq!(warning, None);
        let mut v = ev.output.as_ref().unwrap().value();
        let mut depth = 0;
        while let Some(inner) = v.as_array() {
            v = &inner[0];
            depth += 1;
        }
        assert_eq!(depth, MAX_READ_DEPTH);
    }

    #[test]
    fn a_deeper_value_is_left_out_and_the_event_kept() {
        let (ev, warning) = parse_line(line(&nested(MAX_READ_DEPTH + 1)).as_bytes()).unwrap();
        assert_eq!(ev.output, None);
        assert_eq!(ev.input.as_ref().unwrap().value(), &serde_json::json!({"k": "[{"}));
        assert_eq!(ev.state, Some(super::super::StateName::Completed));
        let warning = warning.unwrap();
        assert!(warning.contains("`output` is nested deeper than 512"), "{warning}");
    }

    #[test]
    fn strings_with_brackets_and_escapes_do_not_count() {
        let s = format!(r#"{{"a":"\"{}","b":[1]}}"#, "[".repeat(1000));
        assert!(too_deep(s.as_bytes(), 2).is_empty());
        let s = r#"{"a\"x":[[[1]]],"b":[[1]]}"#;
        let found = too_deep(s.as_bytes(), 2);
        assert_eq!(found.len(), 1);
        assert_eq!(&s[found[0].0.clone()], "[[[1]]]");
        assert_eq!(found[0].1, r#"a\"x"#);
    }

    #[test]
    fn a_deep_line_parses_on_a_small_stack() {
        // serde_json's own recursion takes about 1 KiB a level in a debug build.
        let l = line(&nested(MAX_READ_DEPTH));
        let r = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse_line(l.as_bytes()).map(|(ev, w)| (ev.output.is_some(), w)).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(r, (true, None));
    }
}
