//! Types and paths as tokens: the one place a [`RustTy`] is spelled.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, ToTokens};

use crate::checked::types::{RustTy, TypePath};

/// A type, as generated code writes it (prelude names, the `rt` alias).
pub fn ty(t: &RustTy) -> TokenStream {
    match t {
        RustTy::String => quote!(String),
        RustTy::Bool => quote!(bool),
        RustTy::Int(i) => format_ident!("{}", i.name()).into_token_stream(),
        RustTy::Float(f) => format_ident!("{}", f.name()).into_token_stream(),
        RustTy::Option(inner) => {
            let inner = ty(inner);
            quote!(Option<#inner>)
        }
        RustTy::Vec(inner) => {
            let inner = ty(inner);
            quote!(Vec<#inner>)
        }
        RustTy::Map(kind, value) => super::expr::map_type(*kind, value),
        RustTy::Json => quote!(rt::serde_json::Value),
        RustTy::Enum(e) => path(&e.path),
        RustTy::Struct(s) => path(&s.path),
        RustTy::Named(p) => p.to_token_stream(),
    }
}

/// A struct's or enum's path: its bare name in the generated crate,
/// `::krate::module::Name` in an agent crate.
pub fn path(p: &TypePath) -> TokenStream {
    let name = format_ident!("{}", p.name);
    match &p.krate {
        None => quote!(#name),
        Some(krate) => {
            let krate = format_ident!("{}", krate);
            // Module names were found in the agent's source, so they are identifiers (raw if keywords).
            let modules = p.modules.iter().map(|m| {
                orchestr8_agent_decl::ident::ident(m, proc_macro2::Span::call_site())
                    .unwrap_or_else(|_| format_ident!("{}", m))
            });
            quote!(::#krate #(::#modules)*::#name)
        }
    }
}
