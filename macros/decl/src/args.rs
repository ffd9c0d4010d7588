//! The attribute's arguments: `id = "..", version = "..", input = {..}, output = {..}`.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token};

use crate::types::FieldList;

const KEYS: &[&str] = &["id", "version", "input", "output"];

/// What `#[agent(...)]` says.
#[derive(Clone)]
pub struct AgentArgs {
    /// The agent id.
    pub id: LitStr,
    /// Its semantic version.
    pub version: LitStr,
    /// Its input fields.
    pub input: FieldList,
    /// Its output fields.
    pub output: FieldList,
}

impl AgentArgs {
    /// Parses the arguments; `span` is the attribute's, for "missing" errors.
    pub fn parse_with_span(tokens: proc_macro2::TokenStream, span: Span) -> syn::Result<Self> {
        let raw: RawArgs = syn::parse2(tokens)?;
        let missing = |key: &str, example: &str| {
            syn::Error::new(span, format!("`#[agent]` needs `{key}`, for example `{key} = {example}`"))
        };
        let id = raw.id.ok_or_else(|| missing("id", "\"classify\""))?;
        let version = raw.version.ok_or_else(|| missing("version", "\"1.0.0\""))?;
        let input = raw.input.ok_or_else(|| missing("input", "{ text: String }"))?;
        let output = raw.output.ok_or_else(|| missing("output", "{ category: String }"))?;
        Ok(AgentArgs { id, version, input, output })
    }
}

#[derive(Default)]
struct RawArgs {
    id: Option<LitStr>,
    version: Option<LitStr>,
    input: Option<FieldList>,
    output: Option<FieldList>,
}

impl Parse for RawArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut raw = RawArgs::default();
        while !input.is_empty() {
            let key: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            let name = key.to_string();
            if !KEYS.contains(&name.as_str()) {
                let hint = closest(&name).map(|k| format!("; did you mean `{k}`?")).unwrap_or_else(|| {
                    format!("; the keys are {}", KEYS.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
                });
                return Err(syn::Error::new(key.span(), format!("unknown key `{name}` in `#[agent]`{hint}")));
            }
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(key.span(), format!("expected `=` after `{name}`")));
            }
            input.parse::<Token![=]>()?;
            let duplicate = || syn::Error::new(key.span(), format!("`{name}` is given twice"));
            match name.as_str() {
                "id" | "version" => {
                    let value: LitStr = input.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            format!(
                                "`{name}` takes a string literal, such as `{name} = \"{}\"`",
                                if name == "id" { "classify" } else { "1.0.0" }
                            ),
                        )
                    })?;
                    if name == "id" {
                        check_id(&value)?;
                        if raw.id.replace(value).is_some() {
                            return Err(duplicate());
                        }
                    } else {
                        check_semver(&value)?;
                        if raw.version.replace(value).is_some() {
                            return Err(duplicate());
                        }
                    }
                }
                _ => {
                    if !input.peek(syn::token::Brace) {
                        return Err(input.error(format!(
                            "`{name}` takes a field list in braces, such as `{name} = {{ text: String }}`"
                        )));
                    }
                    let fields: FieldList = input.parse()?;
                    let slot = if name == "input" { &mut raw.input } else { &mut raw.output };
                    if slot.replace(fields).is_some() {
                        return Err(duplicate());
                    }
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(raw)
    }
}

/// An agent id as the workflow format allows it: `^[a-z][a-z0-9_]{0,63}$`.
fn check_id(id: &LitStr) -> syn::Result<()> {
    let v = id.value();
    let ok = v.len() <= 64
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(syn::Error::new(
            id.span(),
            format!("agent id \"{v}\" must be lower case letters, digits and `_`, starting with a letter (e.g. \"fetch_ticket\")"),
        ))
    }
}

/// A semantic version: `MAJOR.MINOR.PATCH` with optional `-pre` and `+build`.
fn check_semver(version: &LitStr) -> syn::Result<()> {
    let v = version.value();
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    let numeric =
        |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0'));
    let rest_ok = v[core.len()..].chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'));
    if parts.len() == 3 && parts.iter().all(numeric) && rest_ok && !v.ends_with(['-', '+', '.']) {
        Ok(())
    } else {
        Err(syn::Error::new(
            version.span(),
            format!("\"{v}\" is not a semantic version; write e.g. \"1.0.0\" or \"0.2.0-beta.1\""),
        ))
    }
}

fn closest(word: &str) -> Option<&'static str> {
    // A key with at most two edits away is a likely typo.
    KEYS.iter().copied().find(|k| edit_distance(word, k) <= 2)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
