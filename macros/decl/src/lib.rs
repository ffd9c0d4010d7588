//! The `#[agent]` declaration language: one parser, three readers, and one
//! emitter of the Rust items it declares (`emit`, `ident`), shared by the
//! macro and the compiler.
//!
//! The proc-macro (`orchestr8-macros`) expands a declaration into Rust types
//! and an `Agent` implementation; the compiler reads the same declaration
//! from source, without building user code, to type-check workflows
//! (`orchestr8 validate`); rustc then checks the generated wiring. Every
//! mistake is a `syn::Error` spanned at the offending token.
//!
//! Agent authors do not depend on this crate: they write `#[agent]` from
//! `orchestr8-macros`, whose documentation describes the language. This one
//! is for tools that read declarations.
//!
//! Reading a declaration from source, as `orchestr8 validate` does:
//!
//! ```
//! use orchestr8_agent_decl::{is_agent_attribute, AgentDecl};
//! use serde_json::json;
//!
//! let source = r#"
//!     #[agent(
//!         id = "classify",
//!         version = "1.0.0",
//!         input = {
//!             /// The ticket's text.
//!             text: String,
//!             language: Option<String>,
//!         },
//!         output = { category: "billing" | "bug" | "other", confidence: f64 },
//!     )]
//!     /// Classifies a support ticket.
//!     pub async fn classify(ctx: &AgentContext<'_>, input: ClassifyInput) -> Result<ClassifyOutput, AgentError> {
//!         Ok(ClassifyOutput { category: ClassifyOutputCategory::Other, confidence: 0.5 })
//!     }
//! "#;
//! let file = syn::parse_file(source)?;
//! let syn::Item::Fn(function) = &file.items[0] else { unreachable!() };
//! let attr = function.attrs.iter().find(|a| is_agent_attribute(a)).expect("an #[agent]");
//! let syn::Meta::List(args) = &attr.meta else { unreachable!() };
//! let decl = AgentDecl::new(args.tokens.clone(), proc_macro2::Span::call_site(), function)?;
//!
//! assert_eq!(decl.args.id.value(), "classify");
//! assert_eq!(decl.description().as_deref(), Some("Classifies a support ticket."));
//! let output = decl.output_schema().expect("no named types");
//! assert_eq!(output["properties"]["category"]["enum"], json!(["billing", "bug", "other"]));
//! assert_eq!(output["required"], json!(["category", "confidence"]));
//! # Ok::<_, syn::Error>(())
//! ```

#![warn(missing_docs)]

mod args;
pub mod emit;
mod function;
pub mod ident;
mod schema;
mod types;

pub use args::AgentArgs;
pub use function::AgentDecl;
pub use ident::{
    expected_type_names, field_ident, item_type_name, nested_type_name, pascal_case, rust_field_name, variant_ident,
    variant_name, IdentError,
};
pub use schema::{Unresolved, NAMED_TYPE_NOTE};
pub use types::{FieldDecl, FieldList, ScalarKind, TypeDecl};

/// Whether `attr` is an `#[agent]` attribute (also `#[orchestr8::agent]` or
/// `#[orchestr8_macros::agent]`).
///
/// ```
/// use orchestr8_agent_decl::is_agent_attribute;
///
/// let function: syn::ItemFn = syn::parse_quote! {
///     #[orchestr8_macros::agent(id = "a", version = "1.0.0", input = {}, output = {})]
///     #[inline]
///     async fn a() {}
/// };
/// let agents: Vec<bool> = function.attrs.iter().map(is_agent_attribute).collect();
/// assert_eq!(agents, [true, false]);
/// ```
pub fn is_agent_attribute(attr: &syn::Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "agent")
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
