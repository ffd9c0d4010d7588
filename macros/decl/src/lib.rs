//! The `#[agent]` declaration language: one parser, three readers.
//!
//! The proc-macro (`orchestr8-macros`) expands a declaration into Rust types
//! and an `Agent` implementation; the compiler reads the same declaration
//! from source, without building user code, to type-check workflows
//! (`orchestr8 validate`); rustc then checks the generated wiring. Every
//! mistake is a `syn::Error` spanned at the offending token.
//!
//! ```text
//! #[agent(
//!     id = "classify",
//!     version = "1.0.0",
//!     input = {
//!         /// The ticket's text.
//!         text: String,
//!         language: Option<String>,
//!     },
//!     output = { category: "billing" | "bug" | "other", confidence: f64 },
//! )]
//! /// Classifies a support ticket.
//! async fn classify(ctx: &AgentContext<'_>, input: ClassifyInput) -> Result<ClassifyOutput, AgentError> { .. }
//! ```

mod args;
mod function;
mod schema;
mod types;

pub use args::AgentArgs;
pub use function::{expected_type_names, AgentDecl};
pub use schema::{Unresolved, NAMED_TYPE_NOTE};
pub use types::{FieldDecl, FieldList, ScalarKind, TypeDecl};

/// Whether `attr` is an `#[agent]` attribute (also `#[orchestr8::agent]` or
/// `#[orchestr8_macros::agent]`).
pub fn is_agent_attribute(attr: &syn::Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "agent")
}

/// The Rust name of a field with JSON name `json`: `maxSentences` ->
/// `max_sentences`, `e-mail` -> `e_mail`, `2nd` -> `_2nd` (the generated
/// struct renames it back for serde). Keywords are left for the caller to
/// write raw.
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

/// The name of the type generated for field `json` of type `parent`
/// (`ClassifyInput` + `customer` -> `ClassifyInputCustomer`).
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
/// `2fa` -> `V2fa`, `` -> `Empty`.
pub fn variant_name(value: &str) -> String {
    let name = pascal_case(value);
    match name.chars().next() {
        None => "Empty".to_owned(),
        Some(c) if !c.is_ascii_alphabetic() => format!("V{name}"),
        Some(_) => name,
    }
}

/// The doc comment text of some attributes, one string per line.
pub fn doc_lines(attrs: &[syn::Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| line.strip_prefix(' ').unwrap_or(&line).trim_end().to_owned())
        .collect()
}

/// Doc lines as one description, or `None` when there are none.
pub fn description(lines: &[String]) -> Option<String> {
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pascal_case_of_names_and_literals() {
        assert_eq!(pascal_case("fetch_ticket"), "FetchTicket");
        assert_eq!(pascal_case("in-progress"), "InProgress");
        assert_eq!(pascal_case("r#type"), "Type");
        assert_eq!(pascal_case("Bug"), "Bug");
        assert_eq!(rust_field_name("maxSentences"), "max_sentences");
        assert_eq!(rust_field_name("ticket_id"), "ticket_id");
        assert_eq!(rust_field_name("HTTPCode"), "httpcode");
        assert_eq!(rust_field_name("e-mail \"x\""), "e_mail_x");
        assert_eq!(rust_field_name("2nd"), "_2nd");
        assert_eq!(rust_field_name("naïve"), "na_ve");
        assert_eq!(rust_field_name(""), "field");
        assert_eq!(rust_field_name("_id"), "id");
        assert_eq!(variant_name("in progress!"), "InProgress");
        assert_eq!(variant_name("2fa"), "V2fa");
        assert_eq!(variant_name("*/"), "Empty");
    }
}
