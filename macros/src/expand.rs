//! From a checked declaration to Rust items.

use orchestr8_agent_decl::emit;
use orchestr8_agent_decl::{
    expected_type_names, field_ident, item_type_name, nested_type_name, variant_ident, AgentDecl, FieldList, TypeDecl,
};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::ItemFn;

/// The whole expansion, or the declaration's errors.
pub fn agent(args: TokenStream, item: TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item) {
        Ok(f) => f,
        Err(_) => {
            return syn::Error::new(Span::call_site(), "`#[agent]` goes on an `async fn`").to_compile_error();
        }
    };
    let decl = match AgentDecl::new(args, Span::call_site(), &function) {
        Ok(d) => d,
        // Only the errors: the function refers to types that were not generated,
        // and rustc's complaints about them would bury the real mistake.
        Err(e) => return e.to_compile_error(),
    };
    let vis = &quote::ToTokens::to_token_stream(&function.vis);
    let name = function.sig.ident.to_string();
    let (input_name, output_name, agent_name) = expected_type_names(&name);
    let mut items = TokenStream::new();
    let input_ty = object(
        &input_name,
        &decl.args.input,
        vis,
        &mut items,
        &format!("Input of the `{}` agent.", decl.args.id.value()),
    );
    let output_ty = object(
        &output_name,
        &decl.args.output,
        vis,
        &mut items,
        &format!("Output of the `{}` agent.", decl.args.id.value()),
    );
    let agent_ident = format_ident!("{}", agent_name);
    let function_ident = &function.sig.ident;
    let id = &decl.args.id;
    let version = &decl.args.version;
    let agent_doc = match decl.description() {
        Some(d) => format!("The `{}` agent: {d}", id.value()),
        None => format!("The `{}` agent.", id.value()),
    };
    let agent_doc_lines = emit::doc_attrs(&[agent_doc]);
    quote! {
        #function

        #items

        #agent_doc_lines
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::default::Default)]
        #vis struct #agent_ident;

        impl ::orchestr8_runtime::codegen::Agent for #agent_ident {
            type Input = #input_ty;
            type Output = #output_ty;

            fn id(&self) -> &str {
                #id
            }

            fn version(&self) -> &str {
                #version
            }

            fn run(
                &self,
                ctx: &::orchestr8_runtime::codegen::AgentContext<'_>,
                input: Self::Input,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<Self::Output, ::orchestr8_runtime::codegen::AgentError>,
            > + ::core::marker::Send {
                #function_ident(ctx, input)
            }
        }
    }
}

/// The derives and crate paths of every generated data type.
fn data_attrs() -> TokenStream {
    quote! {
        #[derive(
            ::core::fmt::Debug,
            ::core::clone::Clone,
            ::core::cmp::PartialEq,
            ::orchestr8_runtime::codegen::serde::Serialize,
            ::orchestr8_runtime::codegen::serde::Deserialize,
            ::orchestr8_runtime::codegen::schemars::JsonSchema,
        )]
        #[serde(crate = "::orchestr8_runtime::codegen::serde")]
        #[schemars(crate = "::orchestr8_runtime::codegen::schemars")]
    }
}

/// Emits a struct for `list` named `name` (and its nested types); returns its path.
fn object(name: &str, list: &FieldList, vis: &TokenStream, items: &mut TokenStream, doc: &str) -> TokenStream {
    let ident = format_ident!("{}", name);
    let attrs = data_attrs();
    let idents: Vec<syn::Ident> = list
        .fields
        .iter()
        // The declaration's parser has rejected every name that is not an identifier.
        .map(|f| field_ident(&f.json_name(), f.name.span()).expect("declared field names are checked"))
        .collect();
    let jsons: Vec<String> = list.fields.iter().map(|f| f.json_name()).collect();
    let fields: Vec<emit::Field<'_>> = list
        .fields
        .iter()
        .zip(&idents)
        .zip(&jsons)
        .map(|((field, ident), json)| emit::Field {
            docs: &field.docs,
            json,
            ident,
            ty: rust_type(&nested_type_name(name, json), &field.ty, vis, items),
            optional: matches!(field.ty, TypeDecl::Option(..)),
        })
        .collect();
    let docs: Vec<String> = if doc.is_empty() { Vec::new() } else { vec![doc.to_owned()] };
    items.extend(emit::struct_item(&emit::Item { vis, ident: &ident, docs: &docs, attrs: &attrs }, &fields, true));
    quote!(#ident)
}

/// The Rust type of a declared type, emitting nested types named from `name`.
fn rust_type(name: &str, ty: &TypeDecl, vis: &TokenStream, items: &mut TokenStream) -> TokenStream {
    match ty {
        TypeDecl::Scalar(_, tokens) | TypeDecl::Json(tokens) | TypeDecl::Map(_, tokens) => tokens.clone(),
        TypeDecl::Named(path) => quote!(#path),
        TypeDecl::Option(inner, _) => {
            let inner = rust_type(name, inner, vis, items);
            quote!(::core::option::Option<#inner>)
        }
        TypeDecl::Vec(item, _) => {
            let item = rust_type(&item_type_name(name), item, vis, items);
            quote!(::std::vec::Vec<#item>)
        }
        TypeDecl::Object(list) => object(name, list, vis, items, ""),
        TypeDecl::Enum(values) => {
            let ident = format_ident!("{}", name);
            let data = data_attrs();
            let attrs = quote! {
                #data
                #[derive(::core::marker::Copy, ::core::cmp::Eq, ::core::hash::Hash)]
            };
            let jsons: Vec<String> = values.iter().map(|v| v.value()).collect();
            let idents: Vec<syn::Ident> = values
                .iter()
                .zip(&jsons)
                // The declaration's parser has rejected every value that is not a variant.
                .map(|(v, json)| variant_ident(json, v.span()).expect("declared enum values are checked"))
                .collect();
            let variants: Vec<emit::Variant<'_>> =
                jsons.iter().zip(&idents).map(|(json, ident)| emit::Variant { json, ident }).collect();
            items.extend(emit::enum_item(&emit::Item { vis, ident: &ident, docs: &[], attrs: &attrs }, &variants));
            quote!(#ident)
        }
    }
}
