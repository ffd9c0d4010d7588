//! The function an `#[agent]` is written on: its shape is checked here so
//! that both the macro and the compiler report the same mistakes.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, ReturnType};

use crate::args::AgentArgs;
use crate::ident::expected_type_names;

/// A complete declaration: the attribute's arguments and the function. The
/// [crate documentation](crate) reads one from source.
#[derive(Clone)]
pub struct AgentDecl {
    /// What the attribute says.
    pub args: AgentArgs,
    /// The function's name.
    pub function: syn::Ident,
    /// The function's doc comment lines (the agent's description).
    pub docs: Vec<String>,
}

impl AgentDecl {
    /// Checks `function` and pairs it with the attribute's arguments
    /// (`attr_span` locates errors about the attribute as a whole).
    pub fn new(args_tokens: proc_macro2::TokenStream, attr_span: Span, function: &ItemFn) -> syn::Result<Self> {
        let mut errors: Vec<syn::Error> = Vec::new();
        let args = AgentArgs::parse_with_span(args_tokens, attr_span);
        if let Err(e) = check_signature(function) {
            errors.push(e);
        }
        let args = match args {
            Ok(a) => Some(a),
            Err(e) => {
                errors.insert(0, e);
                None
            }
        };
        let mut iter = errors.into_iter();
        if let Some(mut first) = iter.next() {
            iter.for_each(|e| first.combine(e));
            return Err(first);
        }
        Ok(AgentDecl {
            args: args.expect("no errors, so the arguments parsed"),
            function: function.sig.ident.clone(),
            docs: crate::doc_lines(&function.attrs),
        })
    }

    /// The agent's description, from the function's doc comment.
    pub fn description(&self) -> Option<String> {
        crate::description(&self.docs)
    }
}

fn check_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    let name = sig.ident.to_string();
    let (input_ty, output_ty, _) = expected_type_names(&name);
    let expected =
        format!("async fn {name}(ctx: &AgentContext<'_>, input: {input_ty}) -> Result<{output_ty}, AgentError>");
    let mut errors: Vec<syn::Error> = Vec::new();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(sig.fn_token.span(), format!("an agent function must be `async`: `{expected}`")));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "an agent function cannot be generic: its types come from the declaration",
        ));
    }
    if sig.constness.is_some() || sig.abi.is_some() {
        errors.push(syn::Error::new(sig.fn_token.span(), "an agent function is a plain `async fn`"));
    }
    if sig.variadic.is_some() {
        errors.push(syn::Error::new(sig.span(), "an agent function cannot be variadic"));
    }
    let args: Vec<&FnArg> = sig.inputs.iter().collect();
    if let Some(FnArg::Receiver(r)) = args.first() {
        errors.push(syn::Error::new(r.span(), "an agent is a free function, not a method: remove `self`"));
    } else if args.len() != 2 {
        let span = if args.is_empty() { sig.paren_token.span.join() } else { sig.inputs.span() };
        errors.push(syn::Error::new(
            span,
            format!(
                "an agent function takes two parameters, the context and the input, found {}: `{expected}`",
                args.len()
            ),
        ));
    } else if let FnArg::Typed(input) = args[1] {
        if last_ident(&input.ty).as_deref() != Some(input_ty.as_str()) {
            errors.push(syn::Error::new(
                input.ty.span(),
                format!("the input parameter's type must be `{input_ty}`, the type `#[agent]` generates from `input = {{ .. }}`"),
            ));
        }
    }
    match &sig.output {
        ReturnType::Default => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("an agent function returns `Result<{output_ty}, AgentError>`"),
        )),
        ReturnType::Type(_, ty) => {
            let ok = match result_args(ty) {
                Some((ok, err)) => {
                    last_ident(ok).as_deref() == Some(output_ty.as_str())
                        && last_ident(err).as_deref() == Some("AgentError")
                }
                None => false,
            };
            if !ok {
                errors.push(syn::Error::new(
                    ty.span(),
                    format!("an agent function returns `Result<{output_ty}, AgentError>`, where `{output_ty}` is generated from `output = {{ .. }}`"),
                ));
            }
        }
    }
    let mut iter = errors.into_iter();
    match iter.next() {
        Some(mut first) => {
            iter.for_each(|e| first.combine(e));
            Err(first)
        }
        None => Ok(()),
    }
}

fn last_ident(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

fn result_args(ty: &syn::Type) -> Option<(&syn::Type, &syn::Type)> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    let types: Vec<&syn::Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match types.as_slice() {
        [ok, err] => Some((ok, err)),
        _ => None,
    }
}
