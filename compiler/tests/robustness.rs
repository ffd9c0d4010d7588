//! Any bytes get diagnostics, never a panic, a stack overflow or a hang.

use orchestr8::agents::DeclaredInWorkflow;
use orchestr8::diagnostics::{render_human, render_json, Code, RenderOptions};
use orchestr8::validate::{validate, Validation};
use proptest::prelude::*;

const VALID: &str = include_str!("valid-fixture.json");

fn check(bytes: &[u8]) -> Validation {
    let v = validate(bytes, &DeclaredInWorkflow);
    // Rendering must not panic either, whatever the spans.
    render_human("f.json", &v.text, &v.diagnostics, RenderOptions { color: true, max_errors: 3 });
    render_json("f.json", &v.text, &v.diagnostics);
    v
}

fn codes(v: &Validation) -> Vec<Code> {
    v.diagnostics.iter().map(|d| d.code).collect()
}

#[test]
fn empty_and_blank_files() {
    assert_eq!(codes(&check(b"")), [Code::EmptyFile]);
    assert_eq!(codes(&check(b" \n\t ")), [Code::EmptyFile]);
}

#[test]
fn invalid_utf8_is_located() {
    let v = check(b"{\"a\": \"\xff\"}");
    assert_eq!(codes(&v), [Code::InvalidUtf8]);
    assert_eq!(v.diagnostics[0].span.start, 7);
}

#[test]
fn a_byte_order_mark_is_a_warning() {
    let v = check(format!("\u{feff}{VALID}").as_bytes());
    assert_eq!(codes(&v), [Code::ByteOrderMark]);
    assert!(!v.has_errors() && v.workflow.is_some());
}

#[test]
fn trailing_garbage() {
    let v = check(format!("{VALID}garbage").as_bytes());
    assert_eq!(codes(&v), [Code::TrailingContent]);
}

#[test]
fn ten_thousand_levels_of_nesting() {
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let text = format!("{}1{}", open.repeat(10_000), close.repeat(10_000));
        assert_eq!(codes(&check(text.as_bytes())), [Code::NestingTooDeep]);
    }
    // Unclosed, too.
    assert_eq!(codes(&check("[".repeat(10_000).as_bytes())), [Code::NestingTooDeep]);
}

#[test]
fn ten_megabytes_of_input() {
    // A valid document padded with a 10 MB description: parsed, not refused.
    let big = VALID.replacen(
        "\"version\": \"1.0.0\"",
        &format!("\"version\": \"1.0.0\", \"description\": \"{}\"", "x".repeat(10 << 20)),
        1,
    );
    let v = check(big.as_bytes());
    assert!(!v.has_errors(), "{:?}", v.diagnostics);
    // 10 MB of one long line of garbage: one located error.
    let v = check(&vec![b'x'; 10 << 20]);
    assert_eq!(codes(&v), [Code::JsonSyntax]);
    // A long array: one schema error, no blow-up in the diagnostics.
    let items = vec!["1"; 200_000].join(",");
    let v = check(format!("[{items}]").as_bytes());
    assert!(v.has_errors() && v.diagnostics.len() < 5);
}

#[test]
fn lone_surrogates_and_odd_escapes() {
    for text in [r#"{"a": "\ud800"}"#, r#"{"a": "\udc00"}"#, r#"{"a": "\u12"}"#, r#"{"a": "\x"}"#, "{\"a\": \"\u{1}\"}"]
    {
        assert_eq!(codes(&check(text.as_bytes())), [Code::JsonSyntax], "{text}");
    }
    // A valid surrogate pair is fine (then fails the schema, not the parser).
    assert!(!codes(&check(r#"{"a": "\ud83d\ude00"}"#.as_bytes())).contains(&Code::JsonSyntax));
}

#[test]
fn huge_numbers() {
    assert_eq!(codes(&check(b"[1e400]")), [Code::JsonSyntax]);
    assert!(!codes(&check(b"[123456789012345678901234567890]")).contains(&Code::Internal));
}

/// One random edit to a valid document.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Replace(usize, u8),
    Truncate(usize),
    Swap(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let n = VALID.len();
    let interesting = prop::sample::select(vec![
        b"{".to_vec(),
        b"}".to_vec(),
        b"[".to_vec(),
        b"]".to_vec(),
        b",".to_vec(),
        b"\"".to_vec(),
        b":".to_vec(),
        b"${".to_vec(),
        b"${steps.".to_vec(),
        b"\\".to_vec(),
        b"\\u".to_vec(),
        b"null".to_vec(),
        b"-0.5e".to_vec(),
        b"\xff".to_vec(),
        "é".as_bytes().to_vec(),
        b"\"id\": \"x\",".to_vec(),
        b"\"parallel\": [],".to_vec(),
    ]);
    prop_oneof![
        (0..n, 1..20usize).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (0..n, interesting).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (0..n, any::<u8>()).prop_map(|(at, b)| Mutation::Replace(at, b)),
        (0..n).prop_map(Mutation::Truncate),
        (0..n, 0..n).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    match *m {
        Mutation::Delete(at, n) => {
            let at = at.min(len);
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Insert(at, ref b) => {
            let at = at.min(len);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Replace(at, b) if at < len => bytes[at] = b,
        Mutation::Truncate(at) => bytes.truncate(at),
        Mutation::Swap(a, b) if a < len && b < len => bytes.swap(a, b),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_documents_never_panic(mutations in prop::collection::vec(mutation(), 1..6)) {
        let mut bytes = VALID.as_bytes().to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let v = check(&bytes);
        // A document is either valid, or invalid with at least one error; never an internal error.
        prop_assert!(v.workflow.is_some() != v.has_errors());
        prop_assert!(!codes(&v).contains(&Code::Internal), "{:?}", v.diagnostics);
        for d in &v.diagnostics {
            prop_assert!(d.span.start <= d.span.end && d.span.end <= v.text.len(), "{d:?}");
        }
    }
}

#[test]
fn integral_floats_are_integers() {
    let text = VALID.replace("\"timeout\": \"30s\"", "\"timeout\": 30000.0, \"retry\": {\"maxAttempts\": 3.0}");
    let v = check(text.as_bytes());
    assert!(!v.has_errors(), "{:?}", v.diagnostics);
}

#[test]
fn documented_enums_read_as_string_enums() {
    let start = VALID.find("\"mood\": {").unwrap();
    let end = start + VALID[start..].find('}').unwrap() + 1;
    let text = format!(
        "{}\"mood\": {{\"oneOf\": [{{\"const\": \"calm\", \"description\": \"c\"}}, {{\"const\": \"angry\"}}]}}{}",
        &VALID[..start],
        &VALID[end..]
    );
    assert_ne!(text, VALID);
    let v = check(text.as_bytes());
    assert!(!v.has_errors(), "{:?}", v.diagnostics);
}

#[test]
fn carriage_returns_past_a_long_line_do_not_break_rendering() {
    let text = format!("{{\"{}\": 1{}", "a".repeat(130), "\r".repeat(50));
    assert_eq!(codes(&check(text.as_bytes())), [Code::JsonSyntax]);
}

#[test]
fn a_long_chain_of_refs_is_cut_off() {
    let defs: Vec<String> = (0..5000).map(|i| format!("\"d{i}\": {{\"$ref\": \"#/$defs/d{}\"}}", i + 1)).collect();
    let schema =
        format!("{{\"$ref\": \"#/$defs/d0\", \"$defs\": {{{}, \"d5000\": {{\"type\": \"string\"}}}}}}", defs.join(","));
    let start = VALID.find("\"count\": {").unwrap();
    let end = start + VALID[start..].find('}').unwrap() + 1;
    let text = format!("{}\"count\": {schema}{}", &VALID[..start], &VALID[end..]);
    let v = check(text.as_bytes());
    assert!(codes(&v).contains(&Code::UnsupportedSchemaConstruct), "{:?}", codes(&v));
}
