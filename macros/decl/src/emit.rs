//! Rust items from data: the structs and string enums that both the macro
//! (an agent's input and output) and the compiler (a workflow's input and
//! output) generate, written one way. Callers decide names, types and
//! derives; this module only renders them.

use proc_macro2::{Ident, TokenStream};
use quote::quote;
use syn::ext::IdentExt;

/// What every item has.
pub struct Item<'a> {
    /// Its visibility (`pub`, or the agent function's).
    pub vis: &'a TokenStream,
    /// Its name.
    pub ident: &'a Ident,
    /// Its doc comment, a string per line.
    pub docs: &'a [String],
    /// Derives and crate paths, written before it.
    pub attrs: &'a TokenStream,
}

/// A field of a struct.
pub struct Field<'a> {
    /// Its doc comment, a string per line.
    pub docs: &'a [String],
    /// Its JSON name (serde renames the field when the identifier differs).
    pub json: &'a str,
    /// Its identifier.
    pub ident: &'a Ident,
    /// Its type.
    pub ty: TokenStream,
    /// Whether it may be absent (`Option`): defaulted, and skipped when `None`.
    pub optional: bool,
}

/// A variant of a string enum.
pub struct Variant<'a> {
    /// The JSON value.
    pub json: &'a str,
    /// Its identifier.
    pub ident: &'a Ident,
}

/// `struct NAME { fields }`.
pub fn struct_item(item: &Item<'_>, fields: &[Field<'_>], deny_unknown_fields: bool) -> TokenStream {
    let Item { vis, ident, docs, attrs } = item;
    let docs = doc_attrs(docs);
    let fields = fields.iter().map(|f| {
        let docs = doc_attrs(f.docs);
        let rename = renamed(f.ident, f.json);
        let optional =
            f.optional.then(|| quote!(#[serde(default, skip_serializing_if = "::core::option::Option::is_none")]));
        let (ident, ty) = (f.ident, &f.ty);
        quote!(#docs #rename #optional pub #ident: #ty)
    });
    let deny = deny_unknown_fields.then(|| quote!(#[serde(deny_unknown_fields)]));
    quote! {
        #docs
        #attrs
        #deny
        #vis struct #ident {
            #(#fields,)*
        }
    }
}

/// `enum NAME { variants }`: a string enum, each variant renamed to its value.
pub fn enum_item(item: &Item<'_>, variants: &[Variant<'_>]) -> TokenStream {
    let Item { vis, ident, docs, attrs } = item;
    let docs = doc_attrs(docs);
    let variants = variants.iter().map(|v| {
        let rename = renamed(v.ident, v.json);
        let ident = v.ident;
        quote!(#rename #ident)
    });
    quote! {
        #docs
        #attrs
        #vis enum #ident {
            #(#variants,)*
        }
    }
}

/// `#[serde(rename = "json")]` when the identifier is not the JSON name.
fn renamed(ident: &Ident, json: &str) -> Option<TokenStream> {
    (ident.unraw() != json).then(|| quote!(#[serde(rename = #json)]))
}

/// `#[doc = " ..."]` per line, the way rustdoc writes `///` comments.
pub fn doc_attrs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|l| if l.is_empty() { String::new() } else { format!(" {l}") });
    quote!(#(#[doc = #lines])*)
}

/// Text from JSON (a description, a workflow's name) as doc comment lines
/// that rustdoc shows as written: brackets that are not a link are escaped,
/// bare URLs are wrapped in `<>`, trailing blanks dropped.
///
/// ```
/// use orchestr8_agent_decl::emit::doc_lines_of;
///
/// assert_eq!(doc_lines_of("Docs at https://example.com  \nSee [1]."), ["Docs at <https://example.com>", "See \\[1\\]."]);
/// ```
pub fn doc_lines_of(text: &str) -> Vec<String> {
    let lines: Vec<String> = text.lines().map(|l| sanitize_line(l.trim_end())).collect();
    let first = lines.iter().position(|l| !l.is_empty()).unwrap_or(lines.len());
    let last = lines.iter().rposition(|l| !l.is_empty()).map_or(first, |i| i + 1);
    lines[first..last].to_vec()
}

fn sanitize_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(c) = rest.chars().next() {
        if c == '[' {
            // `[text](target)` is a link: kept as written.
            if let Some(link) = link_len(rest) {
                out.push_str(&rest[..link]);
                rest = &rest[link..];
                continue;
            }
        }
        if rest.starts_with("http://") || rest.starts_with("https://") {
            let end = rest.find(|c: char| c.is_whitespace() || c == '>' || c == ')').unwrap_or(rest.len());
            let already_wrapped = out.ends_with('<') || out.ends_with('(');
            if already_wrapped {
                out.push_str(&rest[..end]);
            } else {
                out.push('<');
                out.push_str(&rest[..end]);
                out.push('>');
            }
            rest = &rest[end..];
            continue;
        }
        if matches!(c, '[' | ']') {
            out.push('\\');
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The length of a markdown link at the start of `s` (`[a](b)`).
fn link_len(s: &str) -> Option<usize> {
    let close = s.find(']')?;
    let after = &s[close + 1..];
    if !after.starts_with('(') || s[1..close].contains('[') {
        return None;
    }
    Some(close + 1 + after.find(')')? + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_text_is_escaped_for_rustdoc() {
        for (text, lines) in [
            ("plain", vec!["plain"]),
            ("a [b] c", vec!["a \\[b\\] c"]),
            ("see [docs](https://x.dev/a)", vec!["see [docs](https://x.dev/a)"]),
            ("at https://x.dev/a now", vec!["at <https://x.dev/a> now"]),
            ("already <https://x.dev>", vec!["already <https://x.dev>"]),
            ("\n\nfirst\n\nsecond  \n\n", vec!["first", "", "second"]),
            ("*/ \"quoted\" \\", vec!["*/ \"quoted\" \\"]),
            ("", vec![]),
        ] {
            assert_eq!(doc_lines_of(text), lines, "{text:?}");
        }
    }

    #[test]
    fn items_rename_only_what_differs() {
        let vis = quote!(pub);
        let name = Ident::new("Mood", proc_macro2::Span::call_site());
        let attrs = TokenStream::new();
        let calm = Ident::new("Calm", proc_macro2::Span::call_site());
        let e = enum_item(
            &Item { vis: &vis, ident: &name, docs: &["One of.".into()], attrs: &attrs },
            &[Variant { json: "calm", ident: &calm }],
        );
        assert_eq!(
            e.to_string(),
            quote!(
                #[doc = " One of."]
                pub enum Mood {
                    #[serde(rename = "calm")]
                    Calm,
                }
            )
            .to_string()
        );
    }
}
