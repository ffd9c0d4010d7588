//! The Rust side of the data: each value's Rust type and, for structs and
//! enums, their fields and variants, so generated code can move data from a
//! producer's type into a consumer's, field by field.

use orchestr8_agent_decl::{
    item_type_name, nested_type_name, rust_field_name, variant_name, FieldList, ScalarKind, TypeDecl,
};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, ToTokens};

use crate::types::Ty;

/// A Rust type as generated code sees it.
#[derive(Debug, Clone)]
pub enum RustTy {
    /// `String`
    String,
    /// `bool`
    Bool,
    /// An integer type, by name (`i64`, `u32`, ...).
    Int(Ident),
    /// A float type, by name.
    Float(Ident),
    /// `Option<T>`
    Option(Box<RustTy>),
    /// `Vec<T>`
    Vec(Box<RustTy>),
    /// A map from `String` (the type as written).
    Map(Box<RustTy>, TokenStream),
    /// `serde_json::Value`
    Json,
    /// A string enum with a variant per value.
    Enum {
        /// Full path of the type.
        path: TokenStream,
        /// JSON values, in order; variant names are `variant_name(value)`.
        values: Vec<String>,
    },
    /// A struct with known fields.
    Struct {
        /// Full path of the type.
        path: TokenStream,
        /// Its fields.
        fields: Vec<RustField>,
    },
    /// A type defined elsewhere: converted through serde.
    Named(TokenStream),
}

/// A field of a generated struct.
#[derive(Debug, Clone)]
pub struct RustField {
    /// Its description, for a doc comment.
    pub doc: Option<String>,
    /// Its JSON name.
    pub json: String,
    /// Its Rust name.
    pub ident: Ident,
    /// Its type.
    pub ty: RustTy,
}

impl RustTy {
    /// The type as tokens.
    pub fn tokens(&self) -> TokenStream {
        match self {
            RustTy::String => quote!(::std::string::String),
            RustTy::Bool => quote!(bool),
            RustTy::Int(i) | RustTy::Float(i) => i.to_token_stream(),
            RustTy::Option(t) => {
                let t = t.tokens();
                quote!(::core::option::Option<#t>)
            }
            RustTy::Vec(t) => {
                let t = t.tokens();
                quote!(::std::vec::Vec<#t>)
            }
            RustTy::Map(_, written) => written.clone(),
            RustTy::Json => quote!(::orchestr8_runtime::codegen::serde_json::Value),
            RustTy::Enum { path, .. } | RustTy::Struct { path, .. } | RustTy::Named(path) => path.clone(),
        }
    }

    /// The type without `Option`.
    pub fn required(&self) -> &RustTy {
        match self {
            RustTy::Option(t) => t.required(),
            other => other,
        }
    }
}

/// A field's Rust identifier: snake_case, raw when it is a keyword.
pub fn field_ident(json: &str) -> Ident {
    ident(&rust_field_name(json))
}

/// An identifier, raw when it is a keyword (`type` -> `r#type`); the
/// keywords that cannot be raw get a trailing `_`.
pub fn ident(name: &str) -> Ident {
    match name {
        "self" | "Self" | "super" | "crate" | "_" => format_ident!("{name}_"),
        _ if syn::parse_str::<Ident>(name).is_ok() => Ident::new(name, Span::call_site()),
        _ => Ident::new_raw(name, Span::call_site()),
    }
}

/// Unique names for the types and fields a generated crate defines itself,
/// whatever the JSON names they come from.
#[derive(Default)]
pub struct Names {
    used: std::collections::HashSet<String>,
}

impl Names {
    /// `base`, or `base2`, `base3`... if taken.
    pub fn type_name(&mut self, base: &str) -> String {
        unique(&mut self.used, base)
    }
}

fn unique(used: &mut std::collections::HashSet<String>, base: &str) -> String {
    let mut name = base.to_owned();
    let mut n = 2;
    while !used.insert(name.clone()) {
        name = format!("{base}{n}");
        n += 1;
    }
    name
}

/// Field identifiers for JSON names, distinct within one struct.
pub fn field_idents<'a>(json_names: impl IntoIterator<Item = &'a str>) -> Vec<Ident> {
    let mut used = std::collections::HashSet::new();
    json_names.into_iter().map(|json| ident(&unique(&mut used, &rust_field_name(json)))).collect()
}

/// The variant of enum value `value`.
pub fn variant(value: &str) -> Ident {
    format_ident!("{}", variant_name(value))
}

/// The Rust type of a declared field list named `name` in module `module`
/// (a path such as `::triage_agents::nlp`), following the macro's naming.
pub fn from_decl(module: &TokenStream, name: &str, list: &FieldList) -> RustTy {
    let type_ident = format_ident!("{}", name);
    let fields = list
        .fields
        .iter()
        .map(|f| {
            let json = f.json_name();
            RustField {
                doc: None,
                ident: field_ident(&json),
                ty: decl_type(module, &nested_type_name(name, &json), &f.ty),
                json,
            }
        })
        .collect();
    RustTy::Struct { path: quote!(#module::#type_ident), fields }
}

fn decl_type(module: &TokenStream, name: &str, ty: &TypeDecl) -> RustTy {
    match ty {
        TypeDecl::Scalar(ScalarKind::String, _) => RustTy::String,
        TypeDecl::Scalar(ScalarKind::Bool, _) => RustTy::Bool,
        TypeDecl::Scalar(ScalarKind::Integer, t) => {
            RustTy::Int(syn::parse2(t.clone()).unwrap_or_else(|_| format_ident!("i64")))
        }
        TypeDecl::Scalar(ScalarKind::Float, t) => {
            RustTy::Float(syn::parse2(t.clone()).unwrap_or_else(|_| format_ident!("f64")))
        }
        TypeDecl::Option(inner, _) => RustTy::Option(Box::new(decl_type(module, name, inner))),
        TypeDecl::Vec(item, _) => RustTy::Vec(Box::new(decl_type(module, &item_type_name(name), item))),
        TypeDecl::Map(value, written) => RustTy::Map(Box::new(decl_type(module, name, value)), written.clone()),
        TypeDecl::Json(_) => RustTy::Json,
        TypeDecl::Enum(values) => {
            let ident = format_ident!("{}", name);
            RustTy::Enum { path: quote!(#module::#ident), values: values.iter().map(|v| v.value()).collect() }
        }
        TypeDecl::Object(list) => from_decl(module, name, list),
        TypeDecl::Named(path) => {
            // A bare name is resolved in the agent's module; a path from a crate root stays as written.
            if path.leading_colon.is_some() || path.segments.len() > 1 {
                RustTy::Named(path.to_token_stream())
            } else {
                RustTy::Named(quote!(#module::#path))
            }
        }
    }
}

/// The Rust type of a schema shape, for types the generated crate defines
/// itself (the workflow's input), named from `name`.
pub fn from_ty(name: &str, ty: &Ty, names: &mut Names) -> RustTy {
    match ty {
        Ty::Any | Ty::Null => RustTy::Json,
        Ty::Boolean => RustTy::Bool,
        Ty::Integer => RustTy::Int(format_ident!("i64")),
        Ty::Number => RustTy::Float(format_ident!("f64")),
        Ty::String(None) => RustTy::String,
        Ty::String(Some(values)) => {
            let ident = format_ident!("{}", names.type_name(name));
            RustTy::Enum { path: quote!(#ident), values: values.clone() }
        }
        Ty::Array(item) => RustTy::Vec(Box::new(from_ty(&item_type_name(name), item, names))),
        Ty::Map(value) => {
            let value = from_ty(name, value, names);
            let v = value.tokens();
            RustTy::Map(Box::new(value), quote!(::std::collections::BTreeMap<::std::string::String, #v>))
        }
        Ty::Optional(inner) => RustTy::Option(Box::new(from_ty(name, inner, names))),
        Ty::Object(o) => {
            let struct_name = names.type_name(name);
            let idents = field_idents(o.fields.keys().map(String::as_str));
            let fields = o
                .fields
                .iter()
                .zip(idents)
                .map(|((json, f), ident)| RustField {
                    doc: f.description.clone(),
                    json: json.clone(),
                    ident,
                    ty: from_ty(&nested_type_name(&struct_name, json), &f.ty, names),
                })
                .collect();
            let ident = format_ident!("{}", struct_name);
            RustTy::Struct { path: quote!(#ident), fields }
        }
    }
}
