//! `#[agent]`: an async function becomes an orchestr8 agent whose input and
//! output schemas are declared right on it.
//!
//! ```ignore
//! use orchestr8_macros::agent;
//! use orchestr8_runtime::codegen::{AgentContext, AgentError};
//!
//! #[agent(
//!     id = "classify",
//!     version = "1.0.0",
//!     input = {
//!         /// The ticket's text.
//!         text: String,
//!         language: Option<"en" | "de">,
//!     },
//!     output = { category: "billing" | "bug" | "other", confidence: f64 },
//! )]
//! /// Classifies a support ticket.
//! pub async fn classify(ctx: &AgentContext<'_>, input: ClassifyInput) -> Result<ClassifyOutput, AgentError> {
//!     Ok(ClassifyOutput { category: ClassifyOutputCategory::Bug, confidence: 0.9 })
//! }
//! ```
//!
//! This generates `ClassifyInput` and `ClassifyOutput` (serde + schemars
//! types; inline enums and objects become `ClassifyInputLanguage`-style
//! types; camelCase names become snake_case fields with a serde rename), and
//! `ClassifyAgent`, which implements `orchestr8_runtime::codegen::Agent` by
//! calling the function. The function stays as written, so it can be unit
//! tested directly. Named types used in a declaration must derive `Debug`,
//! `Clone`, `PartialEq`, `Serialize`, `Deserialize` and `JsonSchema`.
//!
//! The declaration language and its checks live in `orchestr8-agent-decl`,
//! which `orchestr8 validate` uses to read the same declarations from source.

#![warn(missing_docs)]

mod expand;

use proc_macro::TokenStream;

/// Declares an agent: see the crate documentation.
#[proc_macro_attribute]
pub fn agent(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::agent(args.into(), item.into()).into()
}
