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
    }
}
