//! JSON written straight into a byte buffer: what a request body is made
//! of, a member at a time, with the same bytes `serde_json` writes.
//!
//! A body is mostly two long texts (the system prompt and the user turn,
//! itself JSON and so full of quotes and line breaks). `serde_json` escapes
//! a string a byte at a time; [`JsonWriter::string`] skips eight bytes at
//! once where nothing needs escaping, which is most of a prompt.

use serde::Serialize;
use serde_json::value::RawValue;

/// A JSON document being written.
pub(super) struct JsonWriter {
    out: Vec<u8>,
    /// Whether the next member or element is the first in its container.
    first: bool,
}

impl JsonWriter {
    pub(super) fn with_capacity(capacity: usize) -> JsonWriter {
        JsonWriter { out: Vec::with_capacity(capacity), first: true }
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    /// Opens an object (`{`) or an array (`[`).
    pub(super) fn open(&mut self, bracket: u8) -> &mut Self {
        self.separator();
        self.out.push(bracket);
        self.first = true;
        self
    }

    /// Closes what [`open`](Self::open) opened (`}` or `]`).
    pub(super) fn close(&mut self, bracket: u8) -> &mut Self {
        self.out.push(bracket);
        self.first = false;
        self
    }

    /// A member's key (a constant of the wire format: written as it is).
    pub(super) fn key(&mut self, key: &str) -> &mut Self {
        self.separator();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.first = true;
        self
    }

    /// Before an element of an array, or after a key.
    fn separator(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// A string value, escaped.
    pub(super) fn string(&mut self, text: &str) -> &mut Self {
        self.separator();
        self.out.push(b'"');
        escape_into(&mut self.out, text.as_bytes());
        self.out.push(b'"');
        self
    }

    /// Strings joined, as one string value.
    pub(super) fn strings(&mut self, texts: &[&str]) -> &mut Self {
        self.separator();
        self.out.push(b'"');
        for text in texts {
            escape_into(&mut self.out, text.as_bytes());
        }
        self.out.push(b'"');
        self
    }

    /// JSON already serialised.
    pub(super) fn raw(&mut self, json: &RawValue) -> &mut Self {
        self.separator();
        self.out.extend_from_slice(json.get().as_bytes());
        self
    }

    /// Any other value (numbers, booleans, the model's own turns), as `serde_json` writes it.
    pub(super) fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> &mut Self {
        self.separator();
        serde_json::to_writer(&mut self.out, value).expect("a JSON value serialises");
        self
    }
}

/// Appends `text` escaped as the inside of a JSON string, as `serde_json`
/// does: `"`, `\` and the control characters, with the short escapes where
/// JSON has them and `\u00XX` (lowercase) for the others; nothing else.
fn escape_into(out: &mut Vec<u8>, text: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        let at = match text.get(i..i + 8) {
            // Eight bytes at a time: the first one to escape, if any.
            Some(chunk) => match first_to_escape(u64::from_le_bytes(chunk.try_into().expect("eight bytes"))) {
                Some(offset) => i + offset,
                None => {
                    i += 8;
                    continue;
                }
            },
            None if needs_escape(text[i]) => i,
            None => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&text[start..at]);
        let byte = text[at];
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
        }
        i = at + 1;
        start = i;
    }
    out.extend_from_slice(&text[start..]);
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The offset of the first byte of `word` (little-endian: the first byte
/// is the lowest) that JSON escapes. Each mask below flags its bytes with
/// the high bit (the classic has-zero-byte trick); a borrow can flag bytes
/// above a flagged one, never below, so the lowest flag is exact.
fn first_to_escape(word: u64) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let equal = |byte: u8| below(word ^ (ONES * u64::from(byte)), 1);
    let flags = below(word, 0x20) | equal(b'"') | equal(b'\\');
    (flags != 0).then(|| flags.trailing_zeros() as usize / 8)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        // Every byte below 0x80 at every offset in a word, between runs
        // long enough to be skipped, and multi-byte characters.
        let mut texts: Vec<String> = (0u8..0x80)
            .flat_map(|b| (0..9).map(move |at| format!("{}{}{}", "a".repeat(at), char::from(b), "bcdefghijklmnop")))
            .collect();
        texts.push("é✓😀\"\\\n\u{7f}\u{80}\u{2028}".repeat(5));
        texts.push(String::new());
        for text in texts {
            let mut w = JsonWriter::with_capacity(0);
            w.string(&text);
            assert_eq!(String::from_utf8(w.into_bytes()).unwrap(), serde_json::to_string(&text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn members_and_elements_are_separated() {
        let raw = serde_json::value::to_raw_value(&serde_json::json!({"x": [1]})).unwrap();
        let mut w = JsonWriter::with_capacity(0);
        w.open(b'{').key("a").open(b'[').string("s").value(&1.5).raw(&raw).close(b']');
        w.key("b").open(b'{').close(b'}').key("c").strings(&["x", "\n", "y"]).close(b'}');
        assert_eq!(String::from_utf8(w.into_bytes()).unwrap(), r#"{"a":["s",1.5,{"x":[1]}],"b":{},"c":"x\ny"}"#);
    }
}
