//! `#[agent]`: an async function becomes an orchestr8 agent whose input and
//! output schemas are declared right on it.
//!
//! ```
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
//!     let category = if input.text.contains("invoice") {
//!         ClassifyOutputCategory::Billing
//!     } else {
//!         ClassifyOutputCategory::Bug
//!     };
//!     Ok(ClassifyOutput { category, confidence: 0.9 })
//! }
//! # fn main() {}
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
//! The crate that uses `#[agent]` depends on `orchestr8-runtime` (the
//! generated items name `::orchestr8_runtime::codegen`), and needs no
//! dependency of its own on serde or schemars.
//!
//! # The declaration language
//!
//! `input` and `output` are field lists, `{ name: Type, ... }`; a `///`
//! comment on a field becomes its description in the schema, and the
//! function's doc comment the agent's description. A type is one of:
//!
//! | written | JSON Schema | Rust |
//! | --- | --- | --- |
//! | `String`, `bool` | `string`, `boolean` | as written |
//! | `i8` ... `u64`, `isize`, `usize`; `f32`, `f64` | `integer`; `number` | as written |
//! | `Option<T>` | `T`, not required | `Option<T>` (absent when `None`) |
//! | `Vec<T>` | `array` of `T` | `Vec<T>` |
//! | `BTreeMap<String, T>`, `HashMap<String, T>` | `object` with `T` values | as written |
//! | `serde_json::Value` | any value | as written |
//! | `"a" \| "b"` | `string` with an `enum` | a generated enum, a variant per value |
//! | `{ ... }` | a nested `object` | a generated struct |
//! | a path (`Money`, `crate::types::Money`) | the type's own schema | as written |
//!
//! Generated structs reject unknown fields. Mistakes (an unknown key, a
//! type outside this list, a function whose signature does not match) are
//! compile errors at the offending token; `orchestr8 validate` reports the
//! same ones, reading the declaration from source.
//!
//! Using the agent, directly or through the trait the executor calls:
//!
//! ```
//! # use orchestr8_macros::agent;
//! # use orchestr8_runtime::codegen::{AgentContext, AgentError};
//! # #[agent(id = "classify", version = "1.0.0", input = { text: String }, output = { category: "billing" | "bug" })]
//! # pub async fn classify(_: &AgentContext<'_>, input: ClassifyInput) -> Result<ClassifyOutput, AgentError> {
//! #     Ok(ClassifyOutput { category: if input.text.contains("invoice") { ClassifyOutputCategory::Billing } else { ClassifyOutputCategory::Bug } })
//! # }
//! use orchestr8_runtime::codegen::{Agent, CancellationToken, ExecutionMeta};
//!
//! # fn main() {
//! let meta = ExecutionMeta {
//!     execution_id: "e-1".into(), correlation_id: "e-1".into(),
//!     workflow_id: "triage".into(), workflow_version: "1.0.0".into(),
//! };
//! let (cancel, config) = (CancellationToken::new(), serde_json::Value::Null);
//! let ctx = AgentContext::new(&cancel, &meta, "classify", 1, &config);
//! let input: ClassifyInput = serde_json::from_str(r#"{"text": "My invoice is wrong"}"#).unwrap();
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let output = ClassifyAgent.run(&ctx, input).await.unwrap();
//! assert_eq!(output.category, ClassifyOutputCategory::Billing);
//! assert_eq!(ClassifyAgent.id(), "classify");
//! # });
//! # }
//! ```
//!
//! The declaration language and its checks live in `orchestr8-agent-decl`,
//! which `orchestr8 validate` uses to read the same declarations from source.

#![warn(missing_docs)]

mod expand;

use proc_macro::TokenStream;

/// Declares an agent: an `async fn(&AgentContext<'_>, NameInput) ->
/// Result<NameOutput, AgentError>` gets its input and output types and a
/// `NameAgent` that implements `Agent`. The [crate documentation](crate)
/// describes the declaration language.
///
/// ```
/// use orchestr8_macros::agent;
/// use orchestr8_runtime::codegen::{AgentContext, AgentError};
///
/// #[agent(id = "greet", version = "1.0.0", input = { name: String }, output = { greeting: String })]
/// /// Greets someone.
/// pub async fn greet(_ctx: &AgentContext<'_>, input: GreetInput) -> Result<GreetOutput, AgentError> {
///     Ok(GreetOutput { greeting: format!("Hello, {}!", input.name) })
/// }
///
/// # fn main() {
/// // The generated types carry the declared JSON Schema.
/// let schema = orchestr8_runtime::codegen::schemars::schema_for!(GreetInput);
/// assert_eq!(schema.get("required"), Some(&serde_json::json!(["name"])));
/// let _agent = GreetAgent; // what a workflow's step runs
/// # }
/// ```
#[proc_macro_attribute]
pub fn agent(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::agent(args.into(), item.into()).into()
}
