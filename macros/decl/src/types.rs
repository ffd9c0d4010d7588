//! Field lists and the types a JSON Schema can say.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{braced, Ident, LitStr, Token};

/// `{ field: Type, ... }`
#[derive(Clone)]
pub struct FieldList {
    /// The braces, for errors about the list as a whole.
    pub span: Span,
    /// The fields in order.
    pub fields: Vec<FieldDecl>,
}

/// One field: doc comments, a name and a type.
#[derive(Clone)]
pub struct FieldDecl {
    /// Doc comment lines.
    pub docs: Vec<String>,
    /// The field's name (its JSON name, without `r#`).
    pub name: Ident,
    /// Its type.
    pub ty: TypeDecl,
}

impl FieldDecl {
    /// The field's JSON name.
    pub fn json_name(&self) -> String {
        self.name.to_string().trim_start_matches("r#").to_owned()
    }
}

/// A scalar Rust type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    /// `String`
    String,
    /// `bool`
    Bool,
    /// `i8` ... `u64`, `isize`, `usize`
    Integer,
    /// `f32`, `f64`
    Float,
}

/// A type a declaration can use.
#[derive(Clone)]
pub enum TypeDecl {
    /// A scalar, with the Rust type as written.
    Scalar(ScalarKind, TokenStream),
    /// `Option<T>`: may be absent.
    Option(Box<TypeDecl>, Span),
    /// `Vec<T>`.
    Vec(Box<TypeDecl>, Span),
    /// `BTreeMap<String, T>` or `HashMap<String, T>`.
    Map(Box<TypeDecl>, TokenStream),
    /// `serde_json::Value`: any JSON.
    Json(TokenStream),
    /// `"a" | "b"`: a string enum.
    Enum(Vec<LitStr>),
    /// `{ ... }`: a nested object.
    Object(FieldList),
    /// A named type that derives `JsonSchema`, as written.
    Named(syn::Path),
}

impl TypeDecl {
    /// Where it is written.
    pub fn span(&self) -> Span {
        match self {
            TypeDecl::Scalar(_, t) | TypeDecl::Map(_, t) | TypeDecl::Json(t) => t.span(),
            TypeDecl::Option(_, s) | TypeDecl::Vec(_, s) => *s,
            TypeDecl::Enum(values) => values[0].span(),
            TypeDecl::Object(list) => list.span,
            TypeDecl::Named(p) => p.span(),
        }
    }
}

impl Parse for FieldList {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let content;
        let brace = braced!(content in input);
        let mut fields: Vec<FieldDecl> = Vec::new();
        let mut errors: Option<syn::Error> = None;
        while !content.is_empty() {
            let attrs = content.call(syn::Attribute::parse_outer)?;
            for attr in &attrs {
                if !attr.path().is_ident("doc") {
                    return Err(syn::Error::new(
                        attr.span(),
                        "only doc comments (`/// ...`) may be written on a declared field",
                    ));
                }
            }
            let name: Ident = content
                .call(syn::ext::IdentExt::parse_any)
                .map_err(|e| syn::Error::new(e.span(), "expected a field name, such as `text: String`"))?;
            if !content.peek(Token![:]) {
                return Err(syn::Error::new(
                    name.span(),
                    format!("expected `:` and a type after `{name}`, such as `{name}: String`"),
                ));
            }
            content.parse::<Token![:]>()?;
            let ty: TypeDecl = content.parse()?;
            let field = FieldDecl { docs: crate::doc_lines(&attrs), name, ty };
            if let Err(e) = crate::field_ident(&field.json_name(), field.name.span()) {
                return Err(syn::Error::new(
                    field.name.span(),
                    format!(
                        "a field cannot be named `{}`: it is a Rust keyword that cannot be written raw; choose another name",
                        e.ident
                    ),
                ));
            }
            let rust_name = crate::rust_field_name(&field.json_name());
            if let Some(first) = fields
                .iter()
                .find(|f| f.json_name() != field.json_name() && crate::rust_field_name(&f.json_name()) == rust_name)
            {
                return Err(syn::Error::new(
                    field.name.span(),
                    format!(
                        "fields `{}` and `{}` would both be the Rust field `{rust_name}`; rename one",
                        first.json_name(),
                        field.json_name()
                    ),
                ));
            }
            if let Some(first) = fields.iter().find(|f| f.json_name() == field.json_name()) {
                let mut e = syn::Error::new(field.name.span(), format!("duplicate field `{}`", field.json_name()));
                e.combine(syn::Error::new(first.name.span(), "first declared here"));
                match &mut errors {
                    Some(all) => all.combine(e),
                    None => errors = Some(e),
                }
            }
            fields.push(field);
            if content.is_empty() {
                break;
            }
            if !content.peek(Token![,]) {
                return Err(content.error("expected `,` between fields"));
            }
            content.parse::<Token![,]>()?;
        }
        match errors {
            Some(e) => Err(e),
            None => Ok(FieldList { span: brace.span.join(), fields }),
        }
    }
}

impl Parse for TypeDecl {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let values: Punctuated<LitStr, Token![|]> = Punctuated::parse_separated_nonempty(input)?;
            let values: Vec<LitStr> = values.into_iter().collect();
            for (i, v) in values.iter().enumerate() {
                if v.value().is_empty() {
                    return Err(syn::Error::new(v.span(), "an enum value cannot be empty"));
                }
                if values[..i].iter().any(|w| w.value() == v.value()) {
                    return Err(syn::Error::new(v.span(), format!("duplicate enum value \"{}\"", v.value())));
                }
                if let Err(e) = crate::variant_ident(&v.value(), v.span()) {
                    return Err(syn::Error::new(
                        v.span(),
                        format!(
                            "enum value \"{}\" would be the Rust variant `{}`, a keyword; choose another value",
                            e.name, e.ident
                        ),
                    ));
                }
                let variant = crate::variant_name(&v.value());
                if let Some(other) = values[..i].iter().find(|w| crate::variant_name(&w.value()) == variant) {
                    return Err(syn::Error::new(
                        v.span(),
                        format!(
                            "enum values \"{}\" and \"{}\" would both be the Rust variant `{variant}`",
                            other.value(),
                            v.value()
                        ),
                    ));
                }
            }
            return Ok(TypeDecl::Enum(values));
        }
        if input.peek(syn::token::Brace) {
            return Ok(TypeDecl::Object(input.parse()?));
        }
        // `Option<..>` and `Vec<..>` are read here, not by syn, so that they can
        // hold inline enums and objects.
        if input.peek(Ident) && input.peek2(Token![<]) {
            let fork = input.fork();
            let ident: Ident = fork.parse()?;
            if ident == "Option" || ident == "Vec" {
                input.parse::<Ident>()?;
                input.parse::<Token![<]>()?;
                let inner: TypeDecl = input.parse()?;
                if !input.peek(Token![>]) {
                    return Err(input.error(format!("expected `>` to close `{ident}<`")));
                }
                input.parse::<Token![>]>()?;
                return Ok(if ident == "Option" {
                    TypeDecl::Option(Box::new(inner), ident.span())
                } else {
                    TypeDecl::Vec(Box::new(inner), ident.span())
                });
            }
        }
        let ty: syn::Type = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a type: a Rust type, `\"a\" | \"b\"` for a string enum, or `{ ... }` for an object",
            )
        })?;
        classify(&ty)
    }
}

/// Sorts a Rust type into what a JSON Schema can say, or says why it cannot.
fn classify(ty: &syn::Type) -> syn::Result<TypeDecl> {
    let unsupported = |what: &str| {
        Err(syn::Error::new(
            ty.span(),
            format!(
                "{what} cannot be described by a JSON Schema; use a scalar, `Option<T>`, `Vec<T>`, `\"a\" | \"b\"`, \
                 `{{ ... }}`, `serde_json::Value` or a named type that derives `JsonSchema`"
            ),
        ))
    };
    let path = match ty {
        syn::Type::Path(p) if p.qself.is_none() => &p.path,
        syn::Type::Reference(_) => return unsupported("a reference"),
        syn::Type::Tuple(t) if t.elems.is_empty() => return unsupported("`()`"),
        syn::Type::Tuple(_) => return unsupported("a tuple"),
        syn::Type::Array(_) | syn::Type::Slice(_) => return unsupported("an array or slice (use `Vec<T>`)"),
        syn::Type::Ptr(_) => return unsupported("a raw pointer"),
        syn::Type::TraitObject(_) | syn::Type::ImplTrait(_) => return unsupported("a trait object"),
        _ => return unsupported("this type"),
    };
    let last = path.segments.last().expect("a path has a segment");
    let name = last.ident.to_string();
    let tokens = ty.to_token_stream();
    let generic_args: Vec<&syn::Type> = match &last.arguments {
        syn::PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|arg| match arg {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let single = |what: &str| -> syn::Result<&syn::Type> {
        match generic_args.as_slice() {
            [one] => Ok(one),
            _ => Err(syn::Error::new(last.span(), format!("`{what}` takes one type, such as `{what}<String>`"))),
        }
    };
    let is_std_path = path.segments.len() == 1;
    Ok(match name.as_str() {
        "String" if is_std_path || path_is(path, &["std", "string", "String"]) => {
            TypeDecl::Scalar(ScalarKind::String, tokens)
        }
        "str" => return unsupported("`str` (use `String`)"),
        "bool" => TypeDecl::Scalar(ScalarKind::Bool, tokens),
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "isize" | "usize" => {
            TypeDecl::Scalar(ScalarKind::Integer, tokens)
        }
        "i128" | "u128" => return unsupported("a 128-bit integer"),
        "f32" | "f64" => TypeDecl::Scalar(ScalarKind::Float, tokens),
        "Option" => TypeDecl::Option(Box::new(classify(single("Option")?)?), last.span()),
        "Vec" => TypeDecl::Vec(Box::new(classify(single("Vec")?)?), last.span()),
        "BTreeMap" | "HashMap" => match generic_args.as_slice() {
            [key, value] if key.to_token_stream().to_string() == "String" => {
                TypeDecl::Map(Box::new(classify(value)?), tokens)
            }
            _ => {
                return Err(syn::Error::new(
                    last.span(),
                    format!("a map is `{name}<String, T>`: JSON object keys are strings"),
                ))
            }
        },
        "Value" if path.segments.len() == 1 || path_is(path, &["serde_json", "Value"]) => TypeDecl::Json(tokens),
        "Box" | "Rc" | "Arc" | "Cow" => return unsupported(&format!("`{name}<..>`")),
        _ => TypeDecl::Named(path.clone()),
    })
}

fn path_is(path: &syn::Path, names: &[&str]) -> bool {
    path.segments.len() == names.len() && path.segments.iter().zip(names).all(|(s, n)| s.ident == n)
}
