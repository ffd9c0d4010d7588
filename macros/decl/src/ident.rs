//! Names: how JSON names become Rust identifiers and type names, in one
//! place for the macro and the compiler (as prost-build keeps `ident.rs`).
//!
//! Every function here is total except where a name cannot be made a Rust
//! identifier at all; those return [`IdentError`], which the macro reports
//! as a spanned error and the compiler as a diagnostic.

use proc_macro2::{Ident, Span};

/// Rust's keywords, strict and reserved, in every edition.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod",
    "move", "mut", "override", "priv", "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait",
    "true", "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Keywords an identifier cannot be, not even raw (`r#self` is not Rust).
const NEVER_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

/// Whether `name` is a Rust keyword (so an identifier of it must be raw, or cannot be).
pub fn is_keyword(name: &str) -> bool {
    KEYWORDS.contains(&name)
}

/// Why a name cannot become a Rust identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentError {
    /// The name as the user wrote it.
    pub name: String,
    /// The identifier it would become.
    pub ident: String,
}

impl std::fmt::Display for IdentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\"{}\" would be the Rust identifier `{}`, a keyword that cannot be written raw",
            self.name, self.ident
        )
    }
}

/// The Rust name of a field with JSON name `json`: `maxSentences` ->
/// `max_sentences`, `e-mail` -> `e_mail`, `2nd` -> `_2nd` (the generated
/// struct renames it back for serde). Keywords are made raw by [`field_ident`].
///
/// ```
/// use orchestr8_agent_decl::rust_field_name;
///
/// assert_eq!(rust_field_name("maxSentences"), "max_sentences");
/// assert_eq!(rust_field_name("e-mail"), "e_mail");
/// assert_eq!(rust_field_name("2nd"), "_2nd");
/// ```
pub fn rust_field_name(json: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in json.trim_start_matches("r#").chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_lower = true;
        } else if !out.ends_with('_') {
            // Anything else separates words, once: the result is snake_case.
            out.push('_');
            prev_lower = false;
        }
    }
    let trimmed = out.trim_matches('_');
    match trimmed.chars().next() {
        None => "field".to_owned(),
        Some(c) if c.is_ascii_digit() => format!("_{trimmed}"),
        Some(_) => trimmed.to_owned(),
    }
}

/// An identifier for `name` (already a Rust-shaped name), raw when it is a
/// keyword (`type` -> `r#type`); an error for the keywords that cannot be raw.
///
/// ```
/// use orchestr8_agent_decl::ident::ident;
/// use proc_macro2::Span;
///
/// assert_eq!(ident("type", Span::call_site()).unwrap().to_string(), "r#type");
/// assert!(ident("self", Span::call_site()).is_err());
/// ```
pub fn ident(name: &str, span: Span) -> Result<Ident, IdentError> {
    if NEVER_RAW.contains(&name) {
        return Err(IdentError { name: name.to_owned(), ident: name.to_owned() });
    }
    Ok(if is_keyword(name) { Ident::new_raw(name, span) } else { Ident::new(name, span) })
}

/// The field identifier of JSON name `json` ([`rust_field_name`], raw if a keyword).
pub fn field_ident(json: &str, span: Span) -> Result<Ident, IdentError> {
    ident(&rust_field_name(json), span).map_err(|e| IdentError { name: json.to_owned(), ..e })
}

/// The variant identifier of string enum value `value` ([`variant_name`]).
pub fn variant_ident(value: &str, span: Span) -> Result<Ident, IdentError> {
    ident(&variant_name(value), span).map_err(|e| IdentError { name: value.to_owned(), ..e })
}

/// The name of the type generated for field `json` of type `parent`
/// (`ClassifyInput` + `customer` -> `ClassifyInputCustomer`).
///
/// ```
/// use orchestr8_agent_decl::{item_type_name, nested_type_name};
///
/// assert_eq!(nested_type_name("ClassifyInput", "customer"), "ClassifyInputCustomer");
/// assert_eq!(item_type_name("ClassifyInputTags"), "ClassifyInputTagsItem");
/// ```
pub fn nested_type_name(parent: &str, json: &str) -> String {
    format!("{parent}{}", pascal_case(json))
}

/// The name of the type generated for the items of a list named `parent`.
pub fn item_type_name(parent: &str) -> String {
    format!("{parent}Item")
}

/// `classify` -> `Classify`, `fetch_ticket` -> `FetchTicket`, `in-progress` -> `InProgress`.
/// Anything but letters and digits separates words and is dropped, so the
/// result is always usable in an identifier (possibly empty, or starting
/// with a digit: see [`variant_name`]).
///
/// ```
/// use orchestr8_agent_decl::pascal_case;
///
/// assert_eq!(pascal_case("fetch_ticket"), "FetchTicket");
/// assert_eq!(pascal_case("in-progress"), "InProgress");
/// ```
pub fn pascal_case(name: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in name.trim_start_matches("r#").chars() {
        if !c.is_ascii_alphanumeric() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The Rust variant for string enum value `value`: `in-progress` -> `InProgress`,
/// `2fa` -> `V2fa`, `` -> `Empty`. `self` gives `Self`, which
/// [`variant_ident`] rejects.
///
/// ```
/// use orchestr8_agent_decl::variant_name;
///
/// assert_eq!(variant_name("in-progress"), "InProgress");
/// assert_eq!(variant_name("2fa"), "V2fa");
/// assert_eq!(variant_name(""), "Empty");
/// ```
pub fn variant_name(value: &str) -> String {
    let name = pascal_case(value);
    match name.chars().next() {
        None => "Empty".to_owned(),
        Some(c) if !c.is_ascii_alphabetic() => format!("V{name}"),
        Some(_) => name,
    }
}

/// The names a declaration generates for function `name`: its input type,
/// output type and agent type (`classify` -> `ClassifyInput`,
/// `ClassifyOutput`, `ClassifyAgent`).
///
/// ```
/// let (input, output, agent) = orchestr8_agent_decl::expected_type_names("fetch_ticket");
/// assert_eq!((input.as_str(), output.as_str(), agent.as_str()), ("FetchTicketInput", "FetchTicketOutput", "FetchTicketAgent"));
/// ```
pub fn expected_type_names(name: &str) -> (String, String, String) {
    let base = pascal_case(name);
    (format!("{base}Input"), format!("{base}Output"), format!("{base}Agent"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_fields_variants_and_types() {
        for (json, rust) in [
            ("maxSentences", "max_sentences"),
            ("ticket_id", "ticket_id"),
            ("HTTPCode", "httpcode"),
            ("e-mail \"x\"", "e_mail_x"),
            ("2nd", "_2nd"),
            ("naïve", "na_ve"),
            ("", "field"),
            ("_id", "id"),
        ] {
            assert_eq!(rust_field_name(json), rust, "{json}");
        }
        assert_eq!(pascal_case("fetch_ticket"), "FetchTicket");
        assert_eq!(pascal_case("in-progress"), "InProgress");
        assert_eq!(pascal_case("r#type"), "Type");
        assert_eq!(variant_name("in progress!"), "InProgress");
        assert_eq!(variant_name("2fa"), "V2fa");
        assert_eq!(variant_name("*/"), "Empty");
        assert_eq!(variant_name("ALL"), "ALL");
        assert_eq!(variant_name("inProgress"), "InProgress");
    }

    #[test]
    fn keywords_are_raw_or_rejected() {
        let span = Span::call_site();
        assert_eq!(field_ident("type", span).unwrap().to_string(), "r#type");
        assert_eq!(field_ident("async", span).unwrap().to_string(), "r#async");
        assert_eq!(field_ident("gen", span).unwrap().to_string(), "r#gen");
        assert_eq!(field_ident("name", span).unwrap().to_string(), "name");
        for never in ["self", "super", "crate"] {
            let e = field_ident(never, span).unwrap_err();
            assert_eq!(e.ident, never);
            assert!(e.to_string().contains("cannot be written raw"), "{e}");
        }
        assert_eq!(variant_ident("self", span).unwrap_err().ident, "Self");
        assert_eq!(variant_ident("crate", span).unwrap().to_string(), "Crate");
    }
}
