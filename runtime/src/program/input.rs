//! The input: where it is read from, and its errors located (a JSON pointer
//! for a value that does not fit, `line:column` for malformed JSON).

use std::fmt::Write as _;
use std::io::Read;
use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::args::RunArgs;
use super::InputError;

/// Where the input came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    Flag,
    File(PathBuf),
    Stdin,
    /// Nothing given: `{}`.
    Default,
    /// A signal's payload.
    Payload,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("--input"),
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Stdin => f.write_str("standard input"),
            Source::Default => f.write_str("the default input"),
            Source::Payload => f.write_str("the payload"),
        }
    }
}

pub(super) fn read_input(args: &RunArgs, stdin: Option<&mut dyn Read>) -> Result<(String, Source), String> {
    if let Some(text) = &args.input {
        return Ok((text.clone(), Source::Flag));
    }
    let read_stdin = |stdin: Option<&mut dyn Read>| -> Result<(String, Source), String> {
        let Some(stdin) = stdin else {
            return Ok(("{}".into(), Source::Default));
        };
        let mut text = String::new();
        stdin.read_to_string(&mut text).map_err(|e| format!("cannot read the input from standard input: {e}"))?;
        if text.trim().is_empty() {
            return Ok(("{}".into(), Source::Default));
        }
        Ok((text, Source::Stdin))
    };
    match &args.input_file {
        Some(p) if p.as_os_str() == "-" => read_stdin(stdin),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => Ok((text, Source::File(p.clone()))),
            Err(e) => Err(format!("cannot read the input file {}: {e}", p.display())),
        },
        None => read_stdin(stdin),
    }
}

/// Parses the input into `I`; the error is located by a JSON pointer (a value
/// that does not fit) or by `line:column` (malformed JSON).
pub(super) fn parse_input<I: DeserializeOwned>(text: &str, source: &Source) -> Result<I, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let input: I = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_data() {
            locate(e.path(), e.inner()).to_string()
        } else {
            syntax_error(e.inner(), source)
        }
    })?;
    de.end().map_err(|e| syntax_error(&e, source))?;
    Ok(input)
}

pub(super) fn syntax_error(e: &serde_json::Error, source: &Source) -> String {
    format!("invalid JSON in {source} at {}:{}: {}", e.line(), e.column(), one_line(&strip_position(e)))
}

/// serde_json's message without its ` at line L column C` suffix.
pub(super) fn strip_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match full.strip_suffix(&suffix) {
        Some(m) => m.to_owned(),
        None => full,
    }
}

/// The field a `missing field` / `unknown field` message is about: the error
/// is raised on the object, and the pointer should name the field.
fn field_named(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("missing field `").or_else(|| msg.strip_prefix("unknown field `"))?;
    rest.split_once('`').map(|(field, _)| field)
}

/// Parses an input given as a JSON value (the server's request body, a
/// signal's payload) into `I`, located as [`parse_input`] locates it.
pub(crate) fn parse_input_value<I: DeserializeOwned>(value: &Value) -> Result<I, InputError> {
    serde_path_to_error::deserialize(value).map_err(|e| locate(e.path(), e.inner()))
}

/// The pointer and message of a data error at `path`.
fn locate(path: &serde_path_to_error::Path, e: &serde_json::Error) -> InputError {
    let pointer = json_pointer(path);
    let msg = strip_position(e);
    // serde_path_to_error already ends the path with an unknown
    // field's key, but not with a missing one's.
    let pointer = match field_named(&msg).map(|f| format!("/{}", escape_pointer(f))) {
        Some(field) if !pointer.ends_with(&field) => pointer + &field,
        _ => pointer,
    };
    InputError { pointer, message: one_line(&msg) }
}

/// RFC 6901 pointer of a serde path (`""` for the whole document).
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut p = String::new();
    for seg in path {
        p.push('/');
        match seg {
            Segment::Seq { index } => {
                let _ = write!(p, "{index}");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => p.push_str(&escape_pointer(key)),
            Segment::Unknown => p.push('?'),
        }
    }
    p
}

pub(crate) fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `text` on one line: line breaks and other control characters escaped.
pub(crate) fn one_line(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_are_escaped() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            #[serde(rename = "a/b~c")]
            x: Vec<u32>,
        }
        let e = parse_input::<T>(r#"{"a/b~c": [1, "2"]}"#, &Source::Flag).unwrap_err();
        assert_eq!(e, r#"invalid input at /a~1b~0c/1: invalid type: string "2", expected u32"#);
        let e = parse_input::<T>("true", &Source::Flag).unwrap_err();
        assert_eq!(e, "invalid input at the top level: invalid type: boolean `true`, expected struct T");
        let e = parse_input::<T>("{}", &Source::Flag).unwrap_err();
        assert_eq!(e, "invalid input at /a~1b~0c: missing field `a/b~c`");
        let e = parse_input::<T>(r#"{"a/b~c": []} x"#, &Source::Stdin).unwrap_err();
        assert_eq!(e, "invalid JSON in standard input at 1:15: trailing characters");
    }

    #[test]
    fn messages_stay_on_one_line() {
        assert_eq!(one_line("a\nb\tc"), r"a\nb\tc");
    }
}
