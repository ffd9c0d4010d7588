//! Value expressions as Rust expressions: references become reads of the
//! state (`rt::slot(&s.fetch, "fetch")?.body`), and values move from a
//! producer's type into the consumer's field by field, with clones and
//! conversions, never through JSON except for `serde_json::Value` fields and
//! named types, which only serde knows.
//!
//! Every generated expression runs inside a closure returning
//! `Result<_, String>`: `?` reports a value that cannot be converted.

use std::collections::BTreeMap;

use orchestr8_schema::expr::{parse_template, PathSegment, Reference, Root, Segment, Template};
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use serde_json::Value;

use super::rust_ty::{variant, RustTy};

/// What the generator knows about each step's output.
pub struct Scope<'a> {
    /// The workflow input's type.
    pub input: &'a RustTy,
    /// Each agent step's output type and whether it may be absent (`onError: "continue"`).
    pub outputs: &'a BTreeMap<String, (RustTy, bool)>,
    /// `metadata.id` and `metadata.version`.
    pub workflow: (&'a str, &'a str),
}

/// A place to read from: a value that is there, or an expression of
/// type `Option<&T>`.
#[derive(Clone)]
enum Place {
    Required(Ref),
    Optional(TokenStream),
}

impl Place {
    /// The place reached by `access` (an expression of type `Option<&U>`
    /// over a receiver): optional from then on.
    fn and_then(self, access: impl Fn(TokenStream) -> TokenStream) -> Place {
        match self {
            Place::Required(r) => Place::Optional(access(r.receiver())),
            Place::Optional(e) => {
                let inner = access(quote!(v));
                Place::Optional(quote!(#e.and_then(|v| #inner)))
            }
        }
    }
}

/// Unwraps `Option`s: an optional value is an optional place of its inner
/// type, one notion of absence.
fn flatten_option(mut place: Place, mut ty: RustTy) -> (Place, RustTy) {
    while let RustTy::Option(inner) = ty {
        place = place.and_then(|e| quote!(#e.as_ref()));
        ty = *inner;
    }
    (place, ty)
}

/// A read of a `T`, written so that generated code needs no extra `&`, `*`
/// or parentheses (which rustc and clippy would flag).
#[derive(Clone)]
pub enum Ref {
    /// A place expression of type `T` (`s.input.name`).
    Place(TokenStream),
    /// An expression of type `&T` (`rt::slot(&s.fetch, "fetch")?`, `v`).
    Borrowed(TokenStream),
}

impl Ref {
    /// An expression of type `&T`.
    pub fn by_ref(&self) -> TokenStream {
        match self {
            Ref::Place(p) => quote!(&#p),
            Ref::Borrowed(e) => e.clone(),
        }
    }

    /// An expression of type `T` (for `Copy` types).
    pub fn copied(&self) -> TokenStream {
        match self {
            Ref::Place(p) => p.clone(),
            Ref::Borrowed(e) => quote!(*#e),
        }
    }

    /// The place of field `field`.
    fn field(&self, field: &proc_macro2::Ident) -> Ref {
        match self {
            Ref::Place(p) | Ref::Borrowed(p) => Ref::Place(quote!(#p.#field)),
        }
    }

    /// Something a method can be called on (auto-ref and auto-deref do the rest).
    fn receiver(&self) -> TokenStream {
        match self {
            Ref::Place(p) | Ref::Borrowed(p) => p.clone(),
        }
    }
}

/// Why an expression cannot be generated (reported as an internal error:
/// validation accepts only what can be generated).
pub type GenError = String;

impl Scope<'_> {
    /// A place for `reference`, with its type.
    fn place(&self, reference: &Reference) -> Result<(Place, RustTy), GenError> {
        let (mut place, mut ty) = match &reference.root {
            Root::Input => (Place::Required(Ref::Place(quote!(s.input))), self.input.clone()),
            Root::StepOutput(id) => {
                let (ty, optional) = self.outputs.get(id).ok_or_else(|| format!("no output type for step {id}"))?;
                let field = format_ident!("{}", id);
                let place = if *optional {
                    Place::Optional(quote!(s.#field.get()))
                } else {
                    Place::Required(Ref::Borrowed(quote!(::orchestr8_runtime::codegen::slot(&s.#field, #id)?)))
                };
                (place, ty.clone())
            }
            Root::ExecutionId => return Ok((Place::Required(Ref::Place(quote!(s.ids.execution_id))), RustTy::String)),
            Root::CorrelationId => {
                return Ok((Place::Required(Ref::Place(quote!(s.ids.correlation_id))), RustTy::String))
            }
            Root::WorkflowId => {
                let v = self.workflow.0;
                return Ok((Place::Required(Ref::Place(quote!(::std::string::String::from(#v)))), RustTy::String));
            }
            Root::WorkflowVersion => {
                let v = self.workflow.1;
                return Ok((Place::Required(Ref::Place(quote!(::std::string::String::from(#v)))), RustTy::String));
            }
        };
        for segment in &reference.path {
            // An `Option` met on the way makes the rest of the path optional.
            (place, ty) = flatten_option(place, ty);
            let shown = reference.to_string();
            (place, ty) = match (&ty, segment) {
                (RustTy::Struct { fields, .. }, PathSegment::Field(name)) => {
                    let field = fields.iter().find(|f| f.json == *name).ok_or_else(|| format!("{shown}: no field {name}"))?;
                    let ident = &field.ident;
                    let place = match place {
                        Place::Required(r) => Place::Required(r.field(ident)),
                        Place::Optional(e) => Place::Optional(quote!(#e.map(|v| &v.#ident))),
                    };
                    (place, field.ty.clone())
                }
                (RustTy::Vec(item), PathSegment::Index(i)) => {
                    // `.first()`, not `.get(0)`: clippy's `get_first`.
                    let get = if *i == 0 {
                        quote!(first())
                    } else {
                        let i = Literal::usize_unsuffixed(*i);
                        quote!(get(#i))
                    };
                    let i = Literal::usize_unsuffixed(*i);
                    let message = format!("{shown}: the list has no item {i}");
                    let place = match place {
                        Place::Required(r) => {
                            let e = r.receiver();
                            Place::Required(Ref::Borrowed(quote!(#e.#get.ok_or_else(|| #message.to_owned())?)))
                        }
                        Place::Optional(e) => Place::Optional(quote!(#e.and_then(|v| v.#get))),
                    };
                    (place, (**item).clone())
                }
                (RustTy::Map(value, _), PathSegment::Field(name)) => {
                    (place.and_then(|e| quote!(#e.get(#name))), (**value).clone())
                }
                (RustTy::Json, segment) => {
                    let key = match segment {
                        PathSegment::Field(name) => quote!(#name),
                        PathSegment::Index(i) => {
                            let i = Literal::usize_unsuffixed(*i);
                            quote!(#i)
                        }
                    };
                    (place.and_then(|e| quote!(#e.get(#key))), RustTy::Json)
                }
                (RustTy::Named(path), _) => {
                    return Err(format!(
                        "{shown} reads inside `{path}`, a type defined outside the declaration; reference the whole value instead"
                    ))
                }
                _ => return Err(format!("{shown}: cannot follow {segment} into a value of this type")),
            };
        }
        Ok(flatten_option(place, ty))
    }

    /// An owned value of type `target` for the value expression `value`.
    pub fn value(&self, value: &Value, target: &RustTy) -> Result<TokenStream, GenError> {
        if let RustTy::Option(inner) = target {
            return Ok(match value {
                Value::Null => quote!(::core::option::Option::None),
                Value::String(s) => match parse_template(s).map_err(|e| e.message)? {
                    Template::Whole(r) => {
                        let (place, from) = self.place(&r.value)?;
                        return convert_into_option(place, &from, inner);
                    }
                    _ => {
                        let v = self.value(value, inner)?;
                        quote!(::core::option::Option::Some(#v))
                    }
                },
                _ => {
                    let v = self.value(value, inner)?;
                    quote!(::core::option::Option::Some(#v))
                }
            });
        }
        if let RustTy::Json = target {
            return self.json(value);
        }
        match value {
            Value::String(s) => match parse_template(s).map_err(|e| e.message)? {
                Template::Literal(text) => literal_string(&text, target),
                Template::Whole(r) => {
                    let (place, from) = self.place(&r.value)?;
                    convert_place(place, &from, target, &r.value.to_string())
                }
                Template::Interpolated(segments) => {
                    let text = self.interpolate(&segments)?;
                    from_text(text, target)
                }
            },
            Value::Bool(b) => match target.required() {
                RustTy::Bool => Ok(quote!(#b)),
                RustTy::Named(_) => through_serde(&quote!(#b), target),
                _ => Err(format!("a boolean cannot become {}", target.tokens())),
            },
            Value::Number(n) => number(n, target),
            Value::Null => match target {
                RustTy::Named(_) => through_serde(&quote!(()), target),
                _ => Err("null needs an optional field".into()),
            },
            Value::Array(items) => match target {
                RustTy::Vec(item) => {
                    let items = items.iter().map(|v| self.value(v, item)).collect::<Result<Vec<_>, _>>()?;
                    Ok(quote!(::std::vec![#(#items),*]))
                }
                _ => through_serde(&self.json(value)?, target),
            },
            Value::Object(map) => match target {
                RustTy::Struct { path, fields } => {
                    let inits = fields
                        .iter()
                        .map(|f| {
                            let ident = &f.ident;
                            let v = match map.get(&f.json) {
                                Some(v) => self.value(v, &f.ty)?,
                                None => quote!(::core::option::Option::None),
                            };
                            Ok(quote!(#ident: #v))
                        })
                        .collect::<Result<Vec<_>, GenError>>()?;
                    Ok(quote!(#path { #(#inits),* }))
                }
                RustTy::Map(value_ty, _) => {
                    let entries = map
                        .iter()
                        .map(|(k, v)| {
                            let v = self.value(v, value_ty)?;
                            Ok(quote!((::std::string::String::from(#k), #v)))
                        })
                        .collect::<Result<Vec<_>, GenError>>()?;
                    Ok(quote!(::core::iter::Iterator::collect([#(#entries),*].into_iter())))
                }
                _ => through_serde(&self.json(value)?, target),
            },
        }
    }

    /// A `serde_json::Value` for `value`.
    fn json(&self, value: &Value) -> Result<TokenStream, GenError> {
        let rt = quote!(::orchestr8_runtime::codegen);
        Ok(match value {
            Value::String(s) => match parse_template(s).map_err(|e| e.message)? {
                Template::Literal(text) => quote!(#rt::serde_json::Value::String(::std::string::String::from(#text))),
                Template::Whole(r) => {
                    let (place, _) = self.place(&r.value)?;
                    match place {
                        Place::Required(r) => {
                            let e = r.by_ref();
                            quote!(#rt::serde_json::to_value(#e).map_err(|e| e.to_string())?)
                        }
                        Place::Optional(e) => quote!(#rt::serde_json::to_value(#e).map_err(|e| e.to_string())?),
                    }
                }
                Template::Interpolated(segments) => {
                    let text = self.interpolate(&segments)?;
                    quote!(#rt::serde_json::Value::String(#text))
                }
            },
            Value::Array(items) => {
                let items = items.iter().map(|v| self.json(v)).collect::<Result<Vec<_>, _>>()?;
                quote!(#rt::serde_json::Value::Array(::std::vec![#(#items),*]))
            }
            Value::Object(map) => {
                let entries = map
                    .iter()
                    .map(|(k, v)| {
                        let v = self.json(v)?;
                        Ok(quote!(map.insert(::std::string::String::from(#k), #v);))
                    })
                    .collect::<Result<Vec<_>, GenError>>()?;
                quote!({
                    let mut map = #rt::serde_json::Map::new();
                    #(#entries)*
                    #rt::serde_json::Value::Object(map)
                })
            }
            scalar => {
                // Numbers, booleans and null: parsed from their own JSON text, a literal.
                let text = scalar.to_string();
                quote!(#rt::serde_json::from_str::<#rt::serde_json::Value>(#text).map_err(|e| e.to_string())?)
            }
        })
    }

    /// A `String` made of text and rendered references.
    fn interpolate(&self, segments: &[Segment]) -> Result<TokenStream, GenError> {
        let pushes = segments
            .iter()
            .map(|segment| match segment {
                // One character is pushed as a `char` (clippy's `single_char_add_str`).
                Segment::Text(t) if t.chars().count() == 1 => {
                    let c = t.chars().next().expect("one character");
                    Ok(quote!(text.push(#c);))
                }
                Segment::Text(t) => Ok(quote!(text.push_str(#t);)),
                Segment::Reference(r) => {
                    let (place, ty) = self.place(&r.value)?;
                    let shown = format!("${{{}}}", r.value);
                    let r = match place {
                        Place::Required(r) => r,
                        Place::Optional(e) => {
                            let message = format!("{shown} has no value");
                            Ref::Borrowed(quote!(#e.ok_or_else(|| #message.to_owned())?))
                        }
                    };
                    let rendered = render_text(&r, &ty)?;
                    Ok(quote!(text.push_str(#rendered);))
                }
            })
            .collect::<Result<Vec<_>, GenError>>()?;
        Ok(quote!({
            let mut text = ::std::string::String::new();
            #(#pushes)*
            text
        }))
    }
}

/// The text of a scalar read by `r`, as a `&str` for `push_str`.
fn render_text(r: &Ref, ty: &RustTy) -> Result<TokenStream, GenError> {
    Ok(match ty {
        RustTy::String => r.by_ref(),
        RustTy::Bool | RustTy::Int(_) | RustTy::Float(_) => {
            let e = r.receiver();
            quote!(&#e.to_string())
        }
        RustTy::Enum { path, values } => {
            let e = r.copied();
            let arms = values.iter().map(|v| {
                let var = variant(v);
                quote!(#path::#var => #v)
            });
            quote!(match #e { #(#arms,)* })
        }
        RustTy::Json | RustTy::Named(_) => {
            let e = r.by_ref();
            quote!(&::orchestr8_runtime::codegen::text(#e)?)
        }
        other => return Err(format!("{} cannot be interpolated", other.tokens())),
    })
}

/// A string literal as a value of `target`.
fn literal_string(text: &str, target: &RustTy) -> Result<TokenStream, GenError> {
    match target {
        RustTy::String => Ok(quote!(::std::string::String::from(#text))),
        RustTy::Enum { path, values } if values.iter().any(|v| v == text) => {
            let var = variant(text);
            Ok(quote!(#path::#var))
        }
        RustTy::Named(_) => through_serde(&quote!(#text), target),
        other => Err(format!("\"{text}\" cannot become {}", other.tokens())),
    }
}

/// Interpolated text (a `String` expression) as a value of `target`.
fn from_text(text: TokenStream, target: &RustTy) -> Result<TokenStream, GenError> {
    match target {
        RustTy::String => Ok(text),
        _ => through_serde(&text, target),
    }
}

fn number(n: &serde_json::Number, target: &RustTy) -> Result<TokenStream, GenError> {
    match target {
        RustTy::Int(kind) => {
            // A suffixed literal of the field's own type: no cast to warn about.
            let text = format!("{n}{kind}");
            let lit: TokenStream = text.parse().map_err(|_| format!("{n} is not an integer of type {kind}"))?;
            if n.is_f64() {
                return Err(format!("{n} is not an integer"));
            }
            Ok(lit)
        }
        RustTy::Float(kind) => {
            let value = n.as_f64().ok_or_else(|| format!("{n} is not a number"))?;
            let lit = if kind == "f32" { Literal::f32_suffixed(value as f32) } else { Literal::f64_suffixed(value) };
            Ok(quote!(#lit))
        }
        RustTy::Named(_) => {
            let text = n.to_string();
            through_serde(
                &quote!(::orchestr8_runtime::codegen::serde_json::from_str::<::orchestr8_runtime::codegen::serde_json::Value>(#text).map_err(|e| e.to_string())?),
                target,
            )
        }
        other => Err(format!("{n} cannot become {}", other.tokens())),
    }
}

/// `value` (any serializable expression) converted to `target` through serde.
fn through_serde(value: &TokenStream, target: &RustTy) -> Result<TokenStream, GenError> {
    let t = target.tokens();
    Ok(quote!(::orchestr8_runtime::codegen::convert::<_, #t>(&#value)?))
}

/// Whether generated tokens use `?` (and so cannot sit in a plain closure).
fn has_try(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        proc_macro2::TokenTree::Punct(p) => p.as_char() == '?',
        proc_macro2::TokenTree::Group(g) => has_try(&g.stream()),
        _ => false,
    })
}

/// `expr` without its final `?`, when it is a single call chain ending in
/// one (so the rest is a `Result<_, String>`).
fn strip_final_try(expr: &TokenStream) -> Option<TokenStream> {
    let tokens: Vec<proc_macro2::TokenTree> = expr.clone().into_iter().collect();
    let starts_with_operator = matches!(tokens.first(), Some(proc_macro2::TokenTree::Punct(p)) if matches!(p.as_char(), '*' | '&' | '!' | '-'));
    match tokens.last() {
        Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == '?' && !starts_with_operator => {
            Some(tokens[..tokens.len() - 1].iter().cloned().collect())
        }
        _ => None,
    }
}

/// `option` (an `Option<&T>` expression) with each value converted by
/// `converted` (written over `v`), as `Option::map` would, and as clippy
/// wants it: `.copied()`/`.cloned()` for plain copies, `transpose` when the
/// conversion can fail.
fn map_option(option: &TokenStream, converted: &TokenStream) -> TokenStream {
    let text = converted.to_string();
    if text == "* v" {
        quote!(#option.copied())
    } else if text == ":: core :: clone :: Clone :: clone (v)" {
        quote!(#option.cloned())
    } else if let Some(fallible) = strip_final_try(converted) {
        // `x.map(|v| f(v)?)` would be `Ok(f(v)?)`: clippy's `needless_question_mark`.
        quote!(#option.map(|v| #fallible).transpose()?)
    } else if has_try(converted) {
        quote!(#option.map(|v| ::core::result::Result::<_, ::std::string::String>::Ok(#converted)).transpose()?)
    } else {
        quote!(#option.map(|v| #converted))
    }
}

/// A value read from `place` and converted to `Option<target>`.
fn convert_into_option(place: Place, from: &RustTy, target: &RustTy) -> Result<TokenStream, GenError> {
    Ok(match place {
        Place::Required(r) => {
            let v = convert(&r, from, target)?;
            quote!(::core::option::Option::Some(#v))
        }
        Place::Optional(e) => {
            let v = convert(&Ref::Borrowed(quote!(v)), from, target)?;
            map_option(&e, &v)
        }
    })
}

/// A value read from `place`, converted to a required `target`.
fn convert_place(place: Place, from: &RustTy, target: &RustTy, shown: &str) -> Result<TokenStream, GenError> {
    match place {
        Place::Required(r) => convert(&r, from, target),
        Place::Optional(e) => {
            let message = format!("${{{shown}}} has no value");
            convert(&Ref::Borrowed(quote!(#e.ok_or_else(|| #message.to_owned())?)), from, target)
        }
    }
}

/// An owned `to` from what `r` reads, of type `from`.
pub fn convert(r: &Ref, from: &RustTy, to: &RustTy) -> Result<TokenStream, GenError> {
    let rt = quote!(::orchestr8_runtime::codegen);
    let v = Ref::Borrowed(quote!(v));
    Ok(match (from, to) {
        (RustTy::Option(from_inner), RustTy::Option(inner)) => {
            let converted = convert(&v, from_inner, inner)?;
            let e = r.receiver();
            map_option(&quote!(#e.as_ref()), &converted)
        }
        (_, RustTy::Option(inner)) => {
            let converted = convert(r, from, inner)?;
            quote!(::core::option::Option::Some(#converted))
        }
        (RustTy::Option(inner), _) => {
            let converted = convert(&v, inner, to)?;
            let e = r.receiver();
            quote!(match #e.as_ref() { ::core::option::Option::Some(v) => #converted, ::core::option::Option::None => return ::core::result::Result::Err(::std::string::String::from("a value is missing")) })
        }
        (_, RustTy::Json) => {
            let e = r.by_ref();
            quote!(#rt::serde_json::to_value(#e).map_err(|e| e.to_string())?)
        }
        (RustTy::Named(a), RustTy::Named(b)) if a.to_string() == b.to_string() => {
            let e = r.by_ref();
            quote!(::core::clone::Clone::clone(#e))
        }
        (RustTy::Named(_) | RustTy::Json, _) | (_, RustTy::Named(_)) => {
            let t = to.tokens();
            let e = r.by_ref();
            quote!(#rt::convert::<_, #t>(#e)?)
        }
        (RustTy::String, RustTy::String) => {
            let e = r.by_ref();
            quote!(::core::clone::Clone::clone(#e))
        }
        (RustTy::Bool, RustTy::Bool) => r.copied(),
        (RustTy::Int(a), RustTy::Int(b)) if a == b => r.copied(),
        (RustTy::Int(_), RustTy::Int(b)) => {
            let e = r.copied();
            let message = format!("a value does not fit {b}");
            quote!(<#b as ::core::convert::TryFrom<_>>::try_from(#e).map_err(|_| ::std::string::String::from(#message))?)
        }
        (RustTy::Int(_) | RustTy::Float(_), RustTy::Float(b)) if !matches!(from, RustTy::Float(a) if a == b) => {
            let e = r.copied();
            quote!(#e as #b)
        }
        (RustTy::Float(_), RustTy::Float(_)) => r.copied(),
        (RustTy::Enum { path, values }, RustTy::String) => {
            let e = r.copied();
            let arms = values.iter().map(|v| {
                let var = variant(v);
                quote!(#path::#var => #v)
            });
            quote!(::std::string::String::from(match #e { #(#arms,)* }))
        }
        (RustTy::Enum { path: from_path, values }, RustTy::Enum { path: to_path, values: to_values }) => {
            let e = r.copied();
            let arms = values.iter().map(|value| {
                let var = variant(value);
                if to_values.contains(value) {
                    quote!(#from_path::#var => #to_path::#var)
                } else {
                    let message = format!("\"{value}\" is not allowed here");
                    quote!(#from_path::#var => return ::core::result::Result::Err(::std::string::String::from(#message)))
                }
            });
            quote!(match #e { #(#arms,)* })
        }
        (RustTy::Vec(a), RustTy::Vec(b)) => {
            let item = convert(&v, a, b)?;
            let t = b.tokens();
            let e = r.receiver();
            quote!(#e.iter().map(|v| ::core::result::Result::<#t, ::std::string::String>::Ok(#item)).collect::<::core::result::Result<::std::vec::Vec<#t>, ::std::string::String>>()?)
        }
        (RustTy::Map(a, _), RustTy::Map(b, written)) => {
            let item = convert(&v, a, b)?;
            let t = b.tokens();
            let e = r.receiver();
            quote!(#e.iter().map(|(k, v)| ::core::result::Result::<(::std::string::String, #t), ::std::string::String>::Ok((::core::clone::Clone::clone(k), #item))).collect::<::core::result::Result<#written, ::std::string::String>>()?)
        }
        (RustTy::Struct { fields: from_fields, .. }, RustTy::Struct { path, fields }) => {
            let inits = fields
                .iter()
                .map(|f| {
                    let ident = &f.ident;
                    let value = match from_fields.iter().find(|g| g.json == f.json) {
                        Some(g) => convert(&r.field(&g.ident), &g.ty, &f.ty)?,
                        None => quote!(::core::option::Option::None),
                    };
                    Ok(quote!(#ident: #value))
                })
                .collect::<Result<Vec<_>, GenError>>()?;
            quote!(#path { #(#inits),* })
        }
        (RustTy::Struct { .. }, RustTy::Map(..)) => {
            let t = to.tokens();
            let e = r.by_ref();
            quote!(#rt::convert::<_, #t>(#e)?)
        }
        (from, to) => return Err(format!("cannot convert {} into {}", from.tokens(), to.tokens())),
    })
}

impl Scope<'_> {
    /// An owned copy of what `reference` reads, in its own type (optional
    /// when it may be absent).
    pub fn read_owned(&self, reference: &Reference) -> Result<(RustTy, TokenStream), GenError> {
        let (place, ty) = self.place(reference)?;
        Ok(match place {
            Place::Required(r) => {
                let e = r.by_ref();
                (ty, quote!(::core::clone::Clone::clone(#e)))
            }
            Place::Optional(e) => (RustTy::Option(Box::new(ty)), quote!(#e.cloned())),
        })
    }
}
