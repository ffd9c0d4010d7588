//! Span-aware JSON loading.
//!
//! serde_json reports positions only for syntax errors, and every later
//! diagnostic must point into the user's file. This strict RFC 8259 parser
//! builds the `serde_json::Value` and, beside it, the byte range of every
//! value and key keyed by JSON pointer. It also reports what serde_json
//! silently accepts or rejects without a location: duplicate keys, a byte
//! order mark, nesting that would exhaust the stack.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

/// Nesting deeper than this is rejected before it can exhaust the stack
/// (serde_json uses the same limit).
pub const MAX_DEPTH: usize = 128;

/// A byte range in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
}

/// Where a value sits in the source: the value itself and, for object
/// members, the key that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpans {
    /// The whole value.
    pub value: Span,
    /// The member's key (with its quotes), if the value is an object member.
    pub key: Option<Span>,
}

/// Byte ranges of every value in a document, by JSON pointer.
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    nodes: HashMap<String, NodeSpans>,
}

impl SpanIndex {
    /// The spans of the value at `pointer`, if it exists.
    pub fn get(&self, pointer: &str) -> Option<NodeSpans> {
        self.nodes.get(pointer).copied()
    }

    /// The span of the value at `pointer`, or of its nearest existing
    /// ancestor (a missing member is best shown at the object that lacks it).
    pub fn value_or_ancestor(&self, pointer: &str) -> Span {
        let mut p = pointer;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return n.value;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.nodes.get("").map(|n| n.value).unwrap_or_default(),
            }
        }
    }

    /// The key's span where there is one, else the value's (or an ancestor's).
    pub fn key_or_value(&self, pointer: &str) -> Span {
        match self.nodes.get(pointer) {
            Some(NodeSpans { key: Some(k), .. }) => *k,
            _ => self.value_or_ancestor(pointer),
        }
    }
}

/// What went wrong, or what is worth a warning, while reading the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntaxIssueKind {
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// Nothing but white space.
    Empty,
    /// Not JSON.
    Syntax,
    /// The same key twice in one object.
    DuplicateKey,
    /// Nesting beyond [`MAX_DEPTH`].
    TooDeep,
    /// Content after the document's value.
    TrailingContent,
    /// A UTF-8 byte order mark (a warning: it is skipped).
    ByteOrderMark,
}

/// A problem found while reading the bytes, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxIssue {
    /// Its class.
    pub kind: SyntaxIssueKind,
    /// Where, in bytes of the source.
    pub span: Span,
    /// What is wrong.
    pub message: String,
    /// What to do, when that is not obvious.
    pub help: Option<String>,
    /// JSON pointer of the enclosing value, where known.
    pub pointer: String,
}

impl SyntaxIssue {
    /// Whether it is only a warning.
    pub fn is_warning(&self) -> bool {
        self.kind == SyntaxIssueKind::ByteOrderMark
    }
}

/// A parsed document.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The document as a value (object keys in source order).
    pub value: Value,
    /// Byte ranges by JSON pointer.
    pub spans: SpanIndex,
    /// Warnings (a byte order mark).
    pub warnings: Vec<SyntaxIssue>,
    /// The text the spans refer to (the input, decoded).
    pub text: String,
}

/// Parses `bytes` as one strict JSON document.
///
/// On failure returns every issue found: the first syntax error ends the
/// scan, but duplicate keys before it are all reported.
pub fn parse(bytes: &[u8]) -> Result<Parsed, Vec<SyntaxIssue>> {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            // Show the error on the last valid line: the bad byte itself
            // cannot be printed.
            return Err(vec![SyntaxIssue {
                kind: SyntaxIssueKind::InvalidUtf8,
                span: Span::new(at, at),
                message: format!("the file is not valid UTF-8 (byte 0x{:02x} at offset {at})", bytes[at]),
                help: Some("save the workflow as UTF-8".into()),
                pointer: String::new(),
            }]);
        }
    };
    let mut parser = Parser {
        src: text,
        bytes: text.as_bytes(),
        pos: 0,
        spans: HashMap::new(),
        issues: Vec::new(),
        warnings: Vec::new(),
    };
    if text.starts_with('\u{feff}') {
        parser.pos = 3;
        parser.warnings.push(SyntaxIssue {
            kind: SyntaxIssueKind::ByteOrderMark,
            span: Span::new(0, 3),
            message: "the file starts with a byte order mark".into(),
            help: Some("JSON files should not start with a BOM; it was skipped".into()),
            pointer: String::new(),
        });
    }
    parser.skip_ws();
    if parser.pos == parser.bytes.len() {
        return Err(vec![SyntaxIssue {
            kind: SyntaxIssueKind::Empty,
            span: Span::new(parser.pos, parser.pos),
            message: "the file is empty".into(),
            help: Some("a workflow is a JSON object: start from `orchestr8 init`".into()),
            pointer: String::new(),
        }]);
    }
    let mut pointer = String::new();
    let value = match parser.value(&mut pointer, 0, None) {
        Ok(v) => v,
        Err(fatal) => {
            parser.issues.push(fatal);
            return Err(parser.issues);
        }
    };
    parser.skip_ws();
    if parser.pos < parser.bytes.len() {
        let start = parser.pos;
        parser.issues.push(SyntaxIssue {
            kind: SyntaxIssueKind::TrailingContent,
            span: Span::new(start, parser.bytes.len().min(start + parser.char_len(start))),
            message: "unexpected content after the end of the document".into(),
            help: Some("a workflow file holds exactly one JSON object; remove what follows it".into()),
            pointer: String::new(),
        });
    }
    if !parser.issues.is_empty() {
        return Err(parser.issues);
    }
    Ok(Parsed { value, spans: SpanIndex { nodes: parser.spans }, warnings: parser.warnings, text: text.to_owned() })
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
pub fn escape_pointer_token(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains(['~', '/']) {
        token.replace('~', "~0").replace('/', "~1").into()
    } else {
        token.into()
    }
}

/// Maps a byte offset in a decoded string to the byte offset in its raw
/// token (`"..."` with escapes), so a diagnostic can point inside a string.
pub fn raw_offset_in_string_token(raw: &str, decoded_offset: usize) -> usize {
    let bytes = raw.as_bytes();
    let mut raw_pos = 1; // after the opening quote
    let mut decoded = 0;
    while raw_pos < bytes.len() && decoded < decoded_offset {
        if bytes[raw_pos] == b'\\' && raw_pos + 1 < bytes.len() {
            if bytes[raw_pos + 1] == b'u' {
                let hex = raw.get(raw_pos + 2..raw_pos + 6).unwrap_or("0");
                let cp = u32::from_str_radix(hex, 16).unwrap_or(0);
                if (0xD800..0xDC00).contains(&cp) {
                    // A surrogate pair: two escapes, one 4-byte character.
                    raw_pos += 12;
                    decoded += 4;
                } else {
                    raw_pos += 6;
                    decoded += char::from_u32(cp).map_or(3, char::len_utf8);
                }
            } else {
                raw_pos += 2;
                decoded += 1;
            }
        } else {
            let len = raw[raw_pos..].chars().next().map_or(1, char::len_utf8);
            raw_pos += len;
            decoded += len;
        }
    }
    raw_pos.min(bytes.len())
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    spans: HashMap<String, NodeSpans>,
    issues: Vec<SyntaxIssue>,
    warnings: Vec<SyntaxIssue>,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn char_len(&self, at: usize) -> usize {
        self.src[at..].chars().next().map_or(0, char::len_utf8)
    }

    fn error(&self, at: usize, message: impl Into<String>, pointer: &str) -> SyntaxIssue {
        let end = (at + self.char_len(at)).min(self.bytes.len());
        SyntaxIssue {
            kind: SyntaxIssueKind::Syntax,
            span: Span::new(at, end),
            message: message.into(),
            help: None,
            pointer: pointer.to_owned(),
        }
    }

    fn unexpected(&self, expected: &str, pointer: &str) -> SyntaxIssue {
        match self.src[self.pos..].chars().next() {
            None => {
                let mut e = self.error(self.pos, format!("unexpected end of file, expected {expected}"), pointer);
                e.help = Some("the document is cut short: check for a missing `}` or `]`".into());
                e
            }
            Some(c) => {
                let shown =
                    if c.is_control() || c.is_whitespace() { c.escape_debug().to_string() } else { c.to_string() };
                let mut e = self.error(self.pos, format!("expected {expected}, found `{shown}`"), pointer);
                e.help = match c {
                    '\'' => Some("JSON strings use double quotes".into()),
                    '/' => Some("JSON has no comments".into()),
                    '"' if expected.starts_with("`,`") => Some("add a `,` after the previous value".into()),
                    _ => None,
                };
                e
            }
        }
    }

    fn value(&mut self, pointer: &mut String, depth: usize, key: Option<Span>) -> Result<Value, SyntaxIssue> {
        if depth > MAX_DEPTH {
            return Err(SyntaxIssue {
                kind: SyntaxIssueKind::TooDeep,
                span: Span::new(self.pos, self.pos + 1),
                message: format!("values are nested more than {MAX_DEPTH} levels deep"),
                help: Some("a workflow never needs this much nesting; flatten the document".into()),
                pointer: pointer.clone(),
            });
        }
        let start = self.pos;
        let value = match self.bytes.get(self.pos) {
            Some(b'{') => self.object(pointer, depth)?,
            Some(b'[') => self.array(pointer, depth)?,
            Some(b'"') => Value::String(self.string(pointer)?),
            Some(b'-' | b'0'..=b'9') => self.number(pointer)?,
            Some(b't') => self.literal("true", Value::Bool(true), pointer)?,
            Some(b'f') => self.literal("false", Value::Bool(false), pointer)?,
            Some(b'n') => self.literal("null", Value::Null, pointer)?,
            _ => return Err(self.unexpected("a value", pointer)),
        };
        self.spans.insert(pointer.clone(), NodeSpans { value: Span::new(start, self.pos), key });
        Ok(value)
    }

    fn literal(&mut self, word: &str, value: Value, pointer: &str) -> Result<Value, SyntaxIssue> {
        if self.src[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.unexpected("a value", pointer))
        }
    }

    fn object(&mut self, pointer: &mut String, depth: usize) -> Result<Value, SyntaxIssue> {
        self.pos += 1;
        let mut map = Map::new();
        let mut first_keys: HashMap<String, Span> = HashMap::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.unexpected("a string key", pointer));
            }
            let key_start = self.pos;
            let key = self.string(pointer)?;
            let key_span = Span::new(key_start, self.pos);
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.unexpected("`:`", pointer));
            }
            self.pos += 1;
            self.skip_ws();
            let len = pointer.len();
            pointer.push('/');
            pointer.push_str(&escape_pointer_token(&key));
            if let Some(first) = first_keys.get(&key) {
                let line = self.src[..first.start].matches('\n').count() + 1;
                self.issues.push(SyntaxIssue {
                    kind: SyntaxIssueKind::DuplicateKey,
                    span: key_span,
                    message: format!("duplicate key `{key}`"),
                    help: Some(format!(
                        "`{key}` is already set on line {line}; JSON parsers disagree on which one wins, so keep one"
                    )),
                    pointer: pointer.clone(),
                });
                // Parse the value for its syntax only: the first one's spans stay.
                let kept = std::mem::take(&mut self.spans);
                let parsed = self.value(pointer, depth + 1, Some(key_span));
                self.spans = kept;
                parsed?;
            } else {
                first_keys.insert(key.clone(), key_span);
                let v = self.value(pointer, depth + 1, Some(key_span))?;
                map.insert(key, v);
            }
            pointer.truncate(len);
            if self.end_of_member(b'}', "object", pointer)? {
                return Ok(Value::Object(map));
            }
        }
    }

    fn array(&mut self, pointer: &mut String, depth: usize) -> Result<Value, SyntaxIssue> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            let len = pointer.len();
            pointer.push('/');
            pointer.push_str(&items.len().to_string());
            items.push(self.value(pointer, depth + 1, None)?);
            pointer.truncate(len);
            if self.end_of_member(b']', "array", pointer)? {
                return Ok(Value::Array(items));
            }
        }
    }

    /// After a member of an object or array: `,` (false: another follows)
    /// or the closing bracket (true: the container ends).
    fn end_of_member(&mut self, close: u8, container: &str, pointer: &str) -> Result<bool, SyntaxIssue> {
        self.skip_ws();
        match self.bytes.get(self.pos) {
            Some(b',') => {
                let comma = self.pos;
                self.pos += 1;
                self.skip_ws();
                if self.bytes.get(self.pos) == Some(&close) {
                    let mut e = self.error(comma, format!("trailing comma in {container}"), pointer);
                    e.help = Some("JSON allows no trailing comma: remove it".into());
                    return Err(e);
                }
                Ok(false)
            }
            Some(&b) if b == close => {
                self.pos += 1;
                Ok(true)
            }
            _ => Err(self.unexpected(&format!("`,` or `{}`", close as char), pointer)),
        }
    }

    fn string(&mut self, pointer: &str) -> Result<String, SyntaxIssue> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.src[run_start..self.pos]);
            match self.bytes.get(self.pos) {
                None => {
                    let mut e = self.error(start, "unterminated string", pointer);
                    e.help = Some("add the closing `\"`".into());
                    return Err(e);
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc_start = self.pos;
                    self.pos += 1;
                    let c = match self.bytes.get(self.pos) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos -= 1;
                            let c = self.unicode_escape(pointer)?;
                            out.push(c);
                            continue;
                        }
                        _ => {
                            let mut e = self.error(esc_start, "invalid escape in string", pointer);
                            e.span =
                                Span::new(esc_start, (self.pos + self.char_len(self.pos).max(1)).min(self.bytes.len()));
                            e.help = Some("valid escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX".into());
                            return Err(e);
                        }
                    };
                    self.pos += 1;
                    out.push(c);
                }
                Some(_) => {
                    let mut e = self.error(self.pos, "control character in string", pointer);
                    e.help = Some("write a line break as \\n and a tab as \\t".into());
                    return Err(e);
                }
            }
        }
    }

    /// Reads `\uXXXX` (and its low surrogate, if it is a high one).
    fn unicode_escape(&mut self, pointer: &str) -> Result<char, SyntaxIssue> {
        let start = self.pos;
        let hi = self.hex4(pointer)?;
        let cp = if (0xD800..0xDC00).contains(&hi) {
            if self.bytes.get(self.pos) == Some(&b'\\') && self.bytes.get(self.pos + 1) == Some(&b'u') {
                let lo = self.hex4(pointer)?;
                if !(0xDC00..0xE000).contains(&lo) {
                    return Err(self.bad_surrogate(start, pointer));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            } else {
                return Err(self.bad_surrogate(start, pointer));
            }
        } else {
            hi
        };
        char::from_u32(cp).ok_or_else(|| self.bad_surrogate(start, pointer))
    }

    fn bad_surrogate(&self, start: usize, pointer: &str) -> SyntaxIssue {
        let mut e = self.error(start, "invalid unicode escape: unpaired surrogate", pointer);
        e.span = Span::new(start, self.pos.max(start + 1));
        e
    }

    fn hex4(&mut self, pointer: &str) -> Result<u32, SyntaxIssue> {
        let start = self.pos;
        let digits = self.src.get(start + 2..start + 6).filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        match digits {
            Some(d) => {
                self.pos = start + 6;
                Ok(u32::from_str_radix(d, 16).expect("four hex digits"))
            }
            None => {
                let mut e = self.error(start, "invalid unicode escape: expected four hex digits after \\u", pointer);
                e.span = Span::new(start, (start + 2).min(self.bytes.len()));
                Err(e)
            }
        }
    }

    fn number(&mut self, pointer: &str) -> Result<Value, SyntaxIssue> {
        let start = self.pos;
        let b = self.bytes;
        let mut p = self.pos;
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        match b.get(p) {
            Some(b'0') => p += 1,
            Some(b'1'..=b'9') => {
                while b.get(p).is_some_and(u8::is_ascii_digit) {
                    p += 1;
                }
            }
            _ => {
                self.pos = p;
                return Err(self.unexpected("a digit", pointer));
            }
        }
        if b.get(p).is_some_and(u8::is_ascii_digit) {
            let mut e = self.error(start, "numbers cannot have leading zeros", pointer);
            e.span = Span::new(start, p + 1);
            return Err(e);
        }
        if b.get(p) == Some(&b'.') {
            p += 1;
            if !b.get(p).is_some_and(u8::is_ascii_digit) {
                self.pos = p;
                return Err(self.unexpected("a digit after the decimal point", pointer));
            }
            while b.get(p).is_some_and(u8::is_ascii_digit) {
                p += 1;
            }
        }
        if let Some(b'e' | b'E') = b.get(p) {
            p += 1;
            if let Some(b'+' | b'-') = b.get(p) {
                p += 1;
            }
            if !b.get(p).is_some_and(u8::is_ascii_digit) {
                self.pos = p;
                return Err(self.unexpected("a digit in the exponent", pointer));
            }
            while b.get(p).is_some_and(u8::is_ascii_digit) {
                p += 1;
            }
        }
        self.pos = p;
        let text = &self.src[start..p];
        match serde_json::from_str::<Number>(text) {
            Ok(n) => Ok(Value::Number(n)),
            Err(_) => {
                let mut e = self.error(start, format!("number `{text}` is out of range"), pointer);
                e.span = Span::new(start, p);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_of_values_and_keys_by_pointer() {
        let text = r#"{"a/b": [1, {"c~d": "x"}], "e": true}"#;
        let parsed = parse(text.as_bytes()).unwrap();
        let at = |p: &str| {
            let s = parsed.spans.get(p).unwrap().value;
            &text[s.start..s.end]
        };
        assert_eq!(at(""), text);
        assert_eq!(at("/a~1b/1/c~0d"), "\"x\"");
        assert_eq!(at("/a~1b/0"), "1");
        let key = parsed.spans.get("/e").unwrap().key.unwrap();
        assert_eq!(&text[key.start..key.end], "\"e\"");
        // A missing member is located at its nearest ancestor.
        assert_eq!(parsed.spans.value_or_ancestor("/a~1b/1/zz"), parsed.spans.get("/a~1b/1").unwrap().value);
    }

    #[test]
    fn keys_keep_source_order() {
        let parsed = parse(br#"{"z": 1, "a": 2}"#).unwrap();
        let keys: Vec<&String> = parsed.value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["z", "a"]);
    }

    #[test]
    fn every_duplicate_key_is_reported() {
        let issues = parse(br#"{"a": 1, "a": 2, "b": {"c": 1, "c": 2}}"#).unwrap_err();
        let pointers: Vec<&str> = issues.iter().map(|i| i.pointer.as_str()).collect();
        assert_eq!(pointers, ["/a", "/b/c"]);
    }

    #[test]
    fn offsets_inside_strings_with_escapes() {
        // Decoded: `a"é😀${x}`; raw: `"a\"\u00e9\ud83d\ude00${x}"`.
        let raw = r#""a\"\u00e9\ud83d\ude00${x}""#;
        let decoded = "a\"é😀";
        assert_eq!(raw_offset_in_string_token(raw, decoded.len()), raw.find('$').unwrap());
        assert_eq!(raw_offset_in_string_token(raw, 0), 1);
    }
}
