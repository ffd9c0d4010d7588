//! A declaration as JSON Schema, for the compiler's type checks. The
//! macro's generated types (schemars) say the same; a test compares them.

use serde_json::{json, Map, Value};

use crate::types::{FieldList, ScalarKind, TypeDecl};
use crate::AgentDecl;

/// What the compiler says about a named type it cannot read from source.
pub const NAMED_TYPE_NOTE: &str = "named types are defined elsewhere and checked by rustc; \
    to type-check the workflow against them, declare the agent's schema in the workflow";

/// A named type the compiler cannot follow, with where it is used.
#[derive(Debug, Clone)]
pub struct Unresolved {
    /// The type as written.
    pub type_name: String,
    /// Where it is used.
    pub span: proc_macro2::Span,
}

impl AgentDecl {
    /// JSON Schema of the input, or the first named type in the way.
    pub fn input_schema(&self) -> Result<Value, Unresolved> {
        object_schema(&self.args.input, Named::Unresolved)
    }

    /// JSON Schema of the output, or the first named type in the way.
    pub fn output_schema(&self) -> Result<Value, Unresolved> {
        object_schema(&self.args.output, Named::Unresolved)
    }

    /// JSON Schema of the input with each named type as `{}` (any value):
    /// what a schema the workflow declares for the agent must agree with.
    pub fn input_shape(&self) -> Value {
        object_schema(&self.args.input, Named::Any).expect("named types are any value")
    }

    /// JSON Schema of the output with each named type as `{}` (any value).
    pub fn output_shape(&self) -> Value {
        object_schema(&self.args.output, Named::Any).expect("named types are any value")
    }
}

/// What a named type becomes in a schema.
#[derive(Clone, Copy)]
enum Named {
    /// The schema cannot be written: the type is defined elsewhere.
    Unresolved,
    /// Any value.
    Any,
}

fn object_schema(list: &FieldList, named: Named) -> Result<Value, Unresolved> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in &list.fields {
        let (mut schema, optional) = match &field.ty {
            TypeDecl::Option(inner, _) => (type_schema(inner, named)?, true),
            other => (type_schema(other, named)?, false),
        };
        if let (Some(d), Value::Object(obj)) = (crate::description(&field.docs), &mut schema) {
            obj.insert("description".into(), d.into());
        }
        if !optional {
            required.push(Value::from(field.json_name()));
        }
        properties.insert(field.json_name(), schema);
    }
    Ok(json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false }))
}

fn type_schema(ty: &TypeDecl, named: Named) -> Result<Value, Unresolved> {
    Ok(match ty {
        TypeDecl::Scalar(ScalarKind::String, _) => json!({ "type": "string" }),
        TypeDecl::Scalar(ScalarKind::Bool, _) => json!({ "type": "boolean" }),
        TypeDecl::Scalar(ScalarKind::Integer, _) => json!({ "type": "integer" }),
        TypeDecl::Scalar(ScalarKind::Float, _) => json!({ "type": "number" }),
        TypeDecl::Option(inner, _) => json!({ "anyOf": [type_schema(inner, named)?, { "type": "null" }] }),
        TypeDecl::Vec(item, _) => json!({ "type": "array", "items": type_schema(item, named)? }),
        TypeDecl::Map(value, _) => json!({ "type": "object", "additionalProperties": type_schema(value, named)? }),
        TypeDecl::Json(_) => json!({}),
        TypeDecl::Enum(values) => {
            json!({ "type": "string", "enum": values.iter().map(|v| v.value()).collect::<Vec<_>>() })
        }
        TypeDecl::Object(list) => object_schema(list, named)?,
        TypeDecl::Named(_) if matches!(named, Named::Any) => json!({}),
        TypeDecl::Named(path) => {
            let type_name = quote::ToTokens::to_token_stream(path).to_string().replace(' ', "");
            return Err(Unresolved { type_name, span: syn::spanned::Spanned::span(path) });
        }
    })
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn decl(args: proc_macro2::TokenStream) -> syn::Result<AgentDecl> {
        let function: syn::ItemFn = syn::parse2(quote! {
            /// Classifies a ticket.
            async fn classify(ctx: &AgentContext<'_>, input: ClassifyInput) -> Result<ClassifyOutput, AgentError> { Err(AgentError::fatal("only parsed, never run")) }
        })
        .unwrap();
        AgentDecl::new(args, proc_macro2::Span::call_site(), &function)
    }

    #[test]
    fn schemas_of_a_declaration() {
        let Ok(d) = decl(quote! {
            id = "classify", version = "1.0.0",
            input = {
                /// The text.
                text: String,
                language: Option<"en" | "de">,
                tags: Vec<String>,
                customer: { name: String, vip: Option<bool> },
                extra: serde_json::Value,
                counts: BTreeMap<String, u32>,
            },
            output = { category: "billing" | "bug", confidence: f64 },
        }) else {
            panic!("valid declaration rejected")
        };
        assert_eq!(d.description().as_deref(), Some("Classifies a ticket."));
        assert_eq!(
            d.input_schema().unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "The text." },
                    "language": { "type": "string", "enum": ["en", "de"] },
                    "tags": { "type": "array", "items": { "type": "string" } },
                    "customer": {
                        "type": "object",
                        "properties": { "name": { "type": "string" }, "vip": { "type": "boolean" } },
                        "required": ["name"],
                        "additionalProperties": false
                    },
                    "extra": {},
                    "counts": { "type": "object", "additionalProperties": { "type": "integer" } }
                },
                "required": ["text", "tags", "customer", "extra", "counts"],
                "additionalProperties": false
            })
        );
    }

    #[test]
    fn named_types_are_unresolved() {
        let Ok(d) =
            decl(quote! { id = "classify", version = "1.0.0", input = { t: String }, output = { c: Category } })
        else {
            panic!("valid declaration rejected")
        };
        assert!(d.input_schema().is_ok());
        assert_eq!(d.output_schema().unwrap_err().type_name, "Category");
        assert_eq!(d.output_shape()["properties"]["c"], json!({}));
    }

    #[test]
    fn mistakes_are_errors() {
        for (args, message) in [
            (quote! { version = "1.0.0", input = {}, output = {} }, "needs `id`"),
            (quote! { id = "x", version = "1.0", input = {}, output = {} }, "not a semantic version"),
            (quote! { id = "x", version = "1.0.0", input = { a: String, a: u8 }, output = {} }, "duplicate field `a`"),
            (quote! { id = "x", version = "1.0.0", input = { a: &str }, output = {} }, "a reference"),
            (quote! { id = "x", versoin = "1.0.0", input = {}, output = {} }, "did you mean `version`"),
            (quote! { id = "Bad", version = "1.0.0", input = {}, output = {} }, "lower case"),
            (quote! { id = "x", version = "1.0.0", input = { a: "x" | "x" }, output = {} }, "duplicate enum value"),
        ] {
            let Err(err) = decl(args) else { panic!("{message}: accepted") };
            let err = err.to_string();
            assert!(err.contains(message), "{err} should contain {message}");
        }
    }
}
