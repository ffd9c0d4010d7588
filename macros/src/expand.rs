//! From a checked declaration to Rust items.

use orchestr8_agent_decl::{
    expected_type_names, item_type_name, nested_type_name, rust_field_name, variant_name, AgentDecl, FieldList,
    TypeDecl,
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
    let vis = &function.vis;
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
    let agent_doc_lines = doc_attrs(&agent_doc);
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
fn object(name: &str, list: &FieldList, vis: &syn::Visibility, items: &mut TokenStream, doc: &str) -> TokenStream {
    let ident = format_ident!("{}", name);
    let attrs = data_attrs();
    let docs = doc_attrs(doc);
    let fields: Vec<TokenStream> = list
        .fields
        .iter()
        .map(|field| {
            let json_name = field.json_name();
            let rust_name = rust_field_name(&json_name);
            let field_ident = syn::Ident::new_raw_or_plain(&rust_name, field.name.span());
            let ty = rust_type(&nested_type_name(name, &json_name), &field.ty, vis, items);
            let rename = (rust_name != json_name).then(|| quote!(#[serde(rename = #json_name)]));
            let optional = matches!(field.ty, TypeDecl::Option(..))
                .then(|| quote!(#[serde(default, skip_serializing_if = "::core::option::Option::is_none")]));
            let field_docs = doc_attrs(&field.docs.join("\n"));
            quote! {
                #field_docs
                #rename
                #optional
                pub #field_ident: #ty
            }
        })
        .collect();
    items.extend(quote! {
        #docs
        #attrs
        #[serde(deny_unknown_fields)]
        #vis struct #ident {
            #(#fields,)*
        }
    });
    quote!(#ident)
}

/// The Rust type of a declared type, emitting nested types named from `name`.
fn rust_type(name: &str, ty: &TypeDecl, vis: &syn::Visibility, items: &mut TokenStream) -> TokenStream {
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
            let attrs = data_attrs();
            let variants = values.iter().map(|v| {
                let value = v.value();
                let variant = format_ident!("{}", variant_name(&value), span = v.span());
                quote!(#[serde(rename = #value)] #variant)
            });
            items.extend(quote! {
                #attrs
                #[derive(::core::marker::Copy, ::core::cmp::Eq, ::core::hash::Hash)]
                #vis enum #ident {
                    #(#variants,)*
                }
            });
            quote!(#ident)
        }
    }
}

/// `#[doc = " ..."]` per line, the way rustdoc writes `///` comments.
fn doc_attrs(text: &str) -> TokenStream {
    if text.trim().is_empty() {
        return TokenStream::new();
    }
    let lines = text.lines().map(|l| format!(" {l}"));
    quote!(#(#[doc = #lines])*)
}

trait IdentExt {
    fn new_raw_or_plain(name: &str, span: Span) -> syn::Ident;
}

impl IdentExt for syn::Ident {
    /// An identifier, raw when it is a keyword (`type` -> `r#type`).
    fn new_raw_or_plain(name: &str, span: Span) -> syn::Ident {
        match syn::parse_str::<syn::Ident>(name) {
            Ok(_) => syn::Ident::new(name, span),
            Err(_) => syn::Ident::new_raw(name, span),
        }
    }
}
