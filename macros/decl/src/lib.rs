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
/// `max_sentences` (the generated struct renames it back for serde).
pub fn rust_field_name(json: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in json.chars() {
        if c.is_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.extend(c.to_lowercase());
            prev_lower = false;
        } else {
            out.push(if c == '-' || c == ' ' || c == '.' { '_' } else { c });
            prev_lower = c.is_lowercase() || c.is_ascii_digit();
        }
    }
    out
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
pub fn pascal_case(name: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in name.trim_start_matches("r#").chars() {
        if c == '_' || c == '-' || c == ' ' || c == '.' {
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
    }
}
