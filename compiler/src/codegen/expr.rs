//! Lowered values as Rust expressions. Every choice was made by lowering;
//! this only spells it, in the forms rustc and clippy accept without
//! complaint (`.copied()`, `.cloned()`, `transpose()` for fallible maps).
//!
//! Expressions run inside functions returning `Result<_, String>`: `?`
//! reports a value that cannot be read or converted.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::types::{path, ty};
use crate::checked::types::{EnumTy, FloatTy, MapKind, RustTy};
use crate::checked::value::{Absent, Access, Const, Conversion, Expr, Json, JsonKey, Piece, Read, Render, Root};

/// An owned value of the expression's type.
pub fn expr(e: &Expr) -> TokenStream {
    match e {
        Expr::Const(c) => constant(c),
        Expr::Some(inner) => {
            let inner = expr(inner);
            quote!(Some(#inner))
        }
        Expr::Struct { path: p, fields } => {
            let p = path(p);
            let fields = fields.iter().map(|(ident, e)| {
                let e = expr(e);
                quote!(#ident: #e)
            });
            quote!(#p { #(#fields),* })
        }
        Expr::List(items) => list(items.iter().map(expr)),
        Expr::Map { kind, entries } => {
            let map = map_path(*kind);
            let entries = entries.iter().map(|(k, v)| {
                let v = expr(v);
                quote!((String::from(#k), #v))
            });
            quote!(#map::from([#(#entries),*]))
        }
        Expr::Text(pieces) => text(pieces),
        Expr::Read { read: r, conversion, absent } => match (place(r), absent) {
            (Place::Required(r), _) => value(conversion, &r),
            (Place::Optional(e), Absent::None) => map_option(&e, conversion),
            // The `Option<&T>` itself through serde: absent and `null` alike are `None`.
            (Place::Optional(e), Absent::Null) => value(conversion, &Ref::Place(e)),
            (Place::Optional(e), Absent::Error | Absent::Never) => value(conversion, &present(e, &r.shown)),
        },
        Expr::Json(j) => json(j),
        Expr::Serde { value: v, target } => {
            let v = expr(v);
            let t = ty(target);
            quote!(rt::convert::<_, #t>(&#v)?)
        }
    }
}

/// A `&str` of a string expression: the place itself when it reads a
/// `String` that is always there (no clone just to compare it), else the
/// owned value's.
pub fn str_of(e: &Expr) -> TokenStream {
    if let Expr::Read { read: r, conversion: Conversion::Clone, absent: Absent::Never } = e {
        if let Place::Required(r) = place(r) {
            let e = r.receiver();
            return quote!(#e.as_str());
        }
    }
    let e = expr(e);
    quote!(#e.as_str())
}

fn constant(c: &Const) -> TokenStream {
    match c {
        Const::Str(s) => quote!(String::from(#s)),
        Const::Bool(b) => quote!(#b),
        Const::Int(v, _) => int_literal(*v),
        Const::Float(v, t) => float_literal(*v, *t),
        Const::None => quote!(None),
        Const::Variant(p, variant) => {
            let p = path(p);
            quote!(#p::#variant)
        }
    }
}

/// An integer literal. Constants always flow into a place of their type,
/// so the literal needs no suffix (negative: `-5`).
fn int_literal(v: i128) -> TokenStream {
    let magnitude = Literal::u128_unsuffixed(v.unsigned_abs());
    if v < 0 {
        quote!(-#magnitude)
    } else {
        quote!(#magnitude)
    }
}

/// A float literal as a person writes it: `2.5`, `1.0`, `3.4e38`, with the
/// shortest digits that give the value in its own type (so clippy's
/// `excessive_precision` has nothing to say).
fn float_literal(v: f64, t: FloatTy) -> TokenStream {
    let (text, magnitude) = match t {
        FloatTy::F32 => ((v as f32).to_string(), f64::from((v as f32).abs())),
        FloatTy::F64 => (v.to_string(), v.abs()),
    };
    let text = if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        match t {
            FloatTy::F32 => format!("{:e}", v as f32),
            FloatTy::F64 => format!("{v:e}"),
        }
    } else if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (false, text),
    };
    let literal: TokenStream = digits.parse().expect("a float's digits are a literal");
    if negative {
        quote!(-#literal)
    } else {
        literal
    }
}

/// Where a read ends: a value that is there, or an expression of type `Option<&T>`.
enum Place {
    Required(Ref),
    Optional(TokenStream),
}

/// A read of a `T`, spelled so that generated code needs no extra `&`, `*`
/// or parentheses.
#[derive(Clone)]
enum Ref {
    /// A place expression of type `T` (`s.input.name`).
    Place(TokenStream),
    /// An expression of type `&T` (`rt::slot(&s.fetch, "fetch")?`, `v`).
    Borrowed(TokenStream),
}

impl Ref {
    /// An expression of type `&T`.
    fn by_ref(&self) -> TokenStream {
        match self {
            Ref::Place(p) => quote!(&#p),
            Ref::Borrowed(e) => e.clone(),
        }
    }

    /// An expression of type `T`, for `Copy` types.
    fn copied(&self) -> TokenStream {
        match self {
            Ref::Place(p) => p.clone(),
            Ref::Borrowed(e) => quote!(*#e),
        }
    }

    /// Something a method can be called on (auto-ref and auto-deref do the rest).
    fn receiver(&self) -> TokenStream {
        match self {
            Ref::Place(p) | Ref::Borrowed(p) => p.clone(),
        }
    }

    /// The place of a field.
    fn field(&self, field: &proc_macro2::Ident) -> Ref {
        let r = self.receiver();
        Ref::Place(quote!(#r.#field))
    }
}

/// The closure parameter of `map`s: a borrowed value.
fn param() -> Ref {
    Ref::Borrowed(quote!(v))
}

fn place(read: &Read) -> Place {
    // Inside a map's body, `s` is the item's state; `s.up` the enclosing one.
    let ups = std::iter::repeat_n(quote!(.up), read.up);
    let s = quote!(s #(#ups)*);
    let mut place = match &read.root {
        Root::Input => Place::Required(Ref::Place(quote!(#s.input))),
        Root::ExecutionId => Place::Required(Ref::Place(quote!(#s.ids.execution_id))),
        Root::CorrelationId => Place::Required(Ref::Place(quote!(#s.ids.correlation_id))),
        Root::Slot { step, field, may_be_empty: false } => {
            Place::Required(Ref::Borrowed(quote!(rt::slot(&#s.#field, #step)?)))
        }
        Root::Slot { field, may_be_empty: true, .. } => Place::Optional(quote!(#s.#field.get())),
        Root::Item => Place::Required(Ref::Place(quote!(#s.item))),
        Root::MapIndex => Place::Required(Ref::Place(quote!(#s.index))),
    };
    for access in &read.path {
        place = match (access, place) {
            (Access::Field(field), Place::Required(r)) => Place::Required(r.field(field)),
            (Access::Field(field), Place::Optional(e)) => Place::Optional(quote!(#e.map(|v| &v.#field))),
            (Access::Index(i), Place::Required(r)) => {
                let (e, get) = (r.receiver(), index(*i));
                let message = format!("${{{}}}: the list has no item {i}", read.shown);
                Place::Required(Ref::Borrowed(quote!(#e.#get.ok_or_else(|| #message.to_owned())?)))
            }
            (Access::Index(i), Place::Optional(e)) => {
                let get = index(*i);
                Place::Optional(quote!(#e.and_then(|v| v.#get)))
            }
            (Access::Key(key), place) => and_then(place, quote!(get(#key))),
            (Access::Json(JsonKey::Name(key)), place) => and_then(place, quote!(get(#key))),
            (Access::Json(JsonKey::Index(i)), place) => {
                let i = Literal::usize_unsuffixed(*i);
                and_then(place, quote!(get(#i)))
            }
            (Access::Optional, place) => and_then(place, quote!(as_ref())),
            (Access::Serialize, Place::Required(r)) => {
                let e = r.by_ref();
                Place::Required(Ref::Place(quote!(rt::json(#e)?)))
            }
            (Access::Serialize, Place::Optional(e)) => Place::Optional(quote!(#e.map(rt::json).transpose()?.as_ref())),
        };
    }
    place
}

/// `.first()`, not `.get(0)`: clippy's `get_first`.
fn index(i: usize) -> TokenStream {
    if i == 0 {
        quote!(first())
    } else {
        let i = Literal::usize_unsuffixed(i);
        quote!(get(#i))
    }
}

/// The place reached by calling `method` (which gives an `Option<&U>`): optional from then on.
fn and_then(place: Place, method: TokenStream) -> Place {
    match place {
        Place::Required(r) => {
            let e = r.receiver();
            Place::Optional(quote!(#e.#method))
        }
        Place::Optional(e) => Place::Optional(quote!(#e.and_then(|v| v.#method))),
    }
}

/// The value of an optional place that must be there, or an error naming it.
fn present(option: TokenStream, shown: &str) -> Ref {
    let message = format!("${{{shown}}} has no value");
    Ref::Borrowed(quote!(#option.ok_or_else(|| #message.to_owned())?))
}

/// `option` (an `Option<&A>`) with each value converted, as `Option::map`
/// would, spelled as clippy wants it.
fn map_option(option: &TokenStream, c: &Conversion) -> TokenStream {
    match c {
        Conversion::Copy => quote!(#option.copied()),
        Conversion::Clone | Conversion::CloneNamed => quote!(#option.cloned()),
        c if c.fallible() => {
            let f = result_fn(c);
            quote!(#option.map(#f).transpose()?)
        }
        c if !c.uses_source() => {
            let v = value(c, &param());
            quote!(#option.map(|_| #v))
        }
        c => {
            let v = value(c, &param());
            quote!(#option.map(|v| #v))
        }
    }
}

/// A value of the target type from what `r` reads (with `?` where it can fail).
fn value(c: &Conversion, r: &Ref) -> TokenStream {
    match c {
        Conversion::Copy => r.copied(),
        Conversion::Clone => {
            let e = r.receiver();
            quote!(#e.clone())
        }
        Conversion::CloneNamed => {
            let e = r.by_ref();
            quote!(Clone::clone(#e))
        }
        Conversion::IntFrom(t) => {
            let (t, e) = (format_ident!("{}", t.name()), r.copied());
            quote!(#t::from(#e))
        }
        Conversion::ToFloat(t) => {
            let (t, e) = (format_ident!("{}", t.name()), r.copied());
            quote!(#e as #t)
        }
        Conversion::EnumToString(e) => {
            let name = enum_name(e, r);
            quote!(String::from(#name))
        }
        Conversion::EnumToEnum { from, to } => {
            let (from_path, to_path, e) = (path(&from.path), path(&to.path), r.copied());
            let arms = from.variants.iter().map(|v| {
                let var = &v.ident;
                match to.variants.iter().find(|w| w.json == v.json) {
                    Some(w) => {
                        let target = &w.ident;
                        quote!(#from_path::#var => #to_path::#target)
                    }
                    None => {
                        let message = format!("\"{}\" is not allowed here", v.json);
                        quote!(#from_path::#var => return Err(String::from(#message)))
                    }
                }
            });
            quote!(match #e { #(#arms,)* })
        }
        Conversion::Option(inner) if !inner.fallible() => {
            let e = r.receiver();
            map_option(&quote!(#e.as_ref()), inner)
        }
        Conversion::Wrap(inner) if !inner.fallible() => {
            let v = value(inner, r);
            quote!(Some(#v))
        }
        Conversion::List { item, to } if !item.fallible() => {
            let (e, t, v) = (r.receiver(), ty(to), value(item, &param()));
            let v_param = if item.uses_source() { quote!(v) } else { quote!(_) };
            quote!(#e.iter().map(|#v_param| #v).collect::<Vec<#t>>())
        }
        Conversion::Map { value: inner, kind, to } if !inner.fallible() => {
            let (e, t, map, v) = (r.receiver(), ty(to), map_path(*kind), value(inner, &param()));
            quote!(#e.iter().map(|(k, v)| (k.clone(), #v)).collect::<#map<String, #t>>())
        }
        Conversion::Struct { to, fields } => {
            let to = path(to);
            let fields = fields.iter().map(|(ident, from)| match from {
                Some((source, c)) => {
                    let v = value(c, &r.field(source));
                    quote!(#ident: #v)
                }
                None => quote!(#ident: None),
            });
            quote!(#to { #(#fields),* })
        }
        // The rest can fail: their `Result`, and `?`.
        Conversion::IntTryFrom(_)
        | Conversion::ToF32
        | Conversion::ToJson
        | Conversion::Serde(_)
        | Conversion::Option(_)
        | Conversion::Wrap(_)
        | Conversion::List { .. }
        | Conversion::Map { .. } => {
            let f = result_call(c, r);
            quote!(#f?)
        }
    }
}

/// A function of `v: &A` giving `Result<B, String>`, for `map` over fallible conversions.
fn result_fn(c: &Conversion) -> TokenStream {
    match c {
        // A path, not a closure that only calls it (clippy's `redundant_closure`).
        Conversion::ToJson => quote!(rt::json),
        Conversion::Serde(target) => {
            let t = ty(target);
            quote!(rt::convert::<_, #t>)
        }
        c => {
            let call = result_call(c, &param());
            quote!(|v| #call)
        }
    }
}

/// The `Result` of a conversion that is a single fallible call.
fn result_call(c: &Conversion, r: &Ref) -> TokenStream {
    match c {
        Conversion::IntTryFrom(t) => {
            let message = format!("a value does not fit {}", t.name());
            let (t, e) = (format_ident!("{}", t.name()), r.copied());
            quote!(#t::try_from(#e).map_err(|_| String::from(#message)))
        }
        Conversion::ToJson => {
            let e = r.by_ref();
            quote!(rt::json(#e))
        }
        Conversion::Serde(target) => {
            let (t, e) = (ty(target), r.by_ref());
            quote!(rt::convert::<_, #t>(#e))
        }
        Conversion::ToF32 => {
            let e = r.copied();
            quote!(rt::f32_from(#e))
        }
        Conversion::List { item, to } if item.fallible() => {
            let (e, t, f) = (r.receiver(), ty(to), result_fn(item));
            quote!(#e.iter().map(#f).collect::<Result<Vec<#t>, String>>())
        }
        Conversion::Map { value: inner, kind, to } if inner.fallible() => {
            let (e, t, map) = (r.receiver(), ty(to), map_path(*kind));
            let v = value(inner, &param());
            quote!(#e.iter().map(|(k, v)| Ok::<_, String>((k.clone(), #v))).collect::<Result<#map<String, #t>, String>>())
        }
        Conversion::Option(inner) if inner.fallible() => {
            let (e, f) = (r.receiver(), result_fn(inner));
            quote!(#e.as_ref().map(#f).transpose())
        }
        Conversion::Wrap(inner) if inner.fallible() => {
            let call = result_call(inner, r);
            quote!(#call.map(Some))
        }
        // A struct or an enum match whose parts can fail: the value, `Ok`.
        other => {
            let v = value(other, r);
            quote!(Ok::<_, String>(#v))
        }
    }
}

/// The JSON value of the enum value `r` reads, as a `&str`.
fn enum_name(e: &EnumTy, r: &Ref) -> TokenStream {
    let (p, v) = (path(&e.path), r.copied());
    let arms = e.variants.iter().map(|variant| {
        let (var, json) = (&variant.ident, &variant.json);
        quote!(#p::#var => #json)
    });
    quote!(match #v { #(#arms,)* })
}

/// Interpolated text, pushed piece by piece onto a `String`.
fn text(pieces: &[Piece]) -> TokenStream {
    let pushes = pieces.iter().map(|piece| match piece {
        // One character is pushed as a `char` (clippy's `single_char_add_str`).
        Piece::Text(t) if t.chars().count() == 1 => {
            let c = t.chars().next().expect("one character");
            quote!(text.push(#c);)
        }
        Piece::Text(t) => quote!(text.push_str(#t);),
        Piece::Value(read, render) => {
            let r = match place(read) {
                Place::Required(r) => r,
                Place::Optional(e) => present(e, &read.shown),
            };
            let rendered = match render {
                Render::Str => r.by_ref(),
                Render::Display => {
                    let e = r.receiver();
                    quote!(&#e.to_string())
                }
                Render::Enum(e) => enum_name(e, &r),
                Render::Serde => {
                    let e = r.by_ref();
                    quote!(&rt::text(#e)?)
                }
            };
            quote!(text.push_str(#rendered);)
        }
    });
    quote!({
        let mut text = String::new();
        #(#pushes)*
        text
    })
}

/// A `serde_json::Value`.
pub fn json(j: &Json) -> TokenStream {
    match j {
        Json::Literal(v) => json_literal(v),
        Json::Text(pieces) => {
            let t = text(pieces);
            quote!(rt::serde_json::Value::String(#t))
        }
        Json::Read(read) => match place(read) {
            Place::Required(r) => {
                let e = r.by_ref();
                quote!(rt::json(#e)?)
            }
            // An absent value is `null`.
            Place::Optional(e) => quote!(rt::json(&#e)?),
        },
        Json::Array(items) => {
            let items = list(items.iter().map(json));
            quote!(rt::serde_json::Value::Array(#items))
        }
        Json::Object(entries) => object(entries.iter().map(|(k, v)| (k, json(v)))),
    }
}

/// A JSON value written in the document, built as it is (no parsing at run time).
pub fn json_literal(v: &serde_json::Value) -> TokenStream {
    match v {
        serde_json::Value::Null => quote!(rt::serde_json::Value::Null),
        serde_json::Value::Bool(b) => quote!(rt::serde_json::Value::Bool(#b)),
        serde_json::Value::Number(n) => {
            let n = match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Literal::i64_suffixed(i),
                (None, Some(u), _) => Literal::u64_suffixed(u),
                (None, None, f) => Literal::f64_suffixed(f.unwrap_or(0.0)),
            };
            quote!(rt::serde_json::Value::from(#n))
        }
        serde_json::Value::String(s) => quote!(rt::serde_json::Value::from(#s)),
        serde_json::Value::Array(items) => {
            let items = list(items.iter().map(json_literal));
            quote!(rt::serde_json::Value::Array(#items))
        }
        serde_json::Value::Object(map) => object(map.iter().map(|(k, v)| (k, json_literal(v)))),
    }
}

/// A `Vec` of items: `Vec::from([..])`, which prettyplease formats (it
/// leaves the insides of `vec![..]` as they are).
fn list(items: impl ExactSizeIterator<Item = TokenStream>) -> TokenStream {
    if items.len() == 0 {
        quote!(Vec::new())
    } else {
        quote!(Vec::from([#(#items),*]))
    }
}

/// A JSON object of entries, in order.
fn object<'a>(entries: impl ExactSizeIterator<Item = (&'a String, TokenStream)>) -> TokenStream {
    if entries.len() == 0 {
        return quote!(rt::serde_json::Value::Object(rt::serde_json::Map::new()));
    }
    let entries = entries.map(|(k, v)| quote!((String::from(#k), #v)));
    quote!(rt::serde_json::Value::Object(rt::serde_json::Map::from_iter([#(#entries),*])))
}

fn map_path(kind: MapKind) -> TokenStream {
    match kind {
        MapKind::BTree => quote!(std::collections::BTreeMap),
        MapKind::Hash => quote!(std::collections::HashMap),
    }
}

/// The type of a map, for [`super::types::ty`].
pub fn map_type(kind: MapKind, value: &RustTy) -> TokenStream {
    let (map, v) = (map_path(kind), ty(value));
    quote!(#map<String, #v>)
}
