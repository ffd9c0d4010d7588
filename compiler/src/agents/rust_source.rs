//! Agent schemas read from `#[agent]` declarations in agent crates, without
//! building or running user code: the crate's `Cargo.toml` names it, its
//! modules are followed from `src/lib.rs` to the function, and the
//! declaration is parsed by `orchestr8-agent-decl`, the parser the macro uses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use orchestr8_agent_decl::{is_agent_attribute, AgentDecl, Unresolved, NAMED_TYPE_NOTE};
use orchestr8_schema::ast::{AgentDefinition, RustAgent};
use syn::spanned::Spanned;

use super::{AgentSchemaSource, AgentSchemas, DeclaredSchema, Origin};
use crate::diagnostics::{suggestion, Code, Diagnostic};
use crate::types::{agrees_but_for_any, from_schema};

/// Reads agent schemas from the crates beside a workflow. Where a
/// declaration uses a named type, the workflow's own `input`/`output` for
/// that agent fills the gap; where both exist they must agree.
pub struct FromRustSource {
    /// The workflow file's directory: agent `path`s are relative to it.
    base: PathBuf,
    /// Parsed source files, by path: several agents share one file.
    files: Mutex<HashMap<PathBuf, Result<syn::File, String>>>,
}

/// A declaration found in source, with the Rust path to its items.
#[derive(Clone)]
pub struct FoundAgent {
    /// The parsed declaration.
    pub decl: AgentDecl,
    /// The crate's name as a Rust identifier (`triage_agents`).
    pub crate_ident: String,
    /// Modules from the crate root to the function (`["nlp"]`).
    pub modules: Vec<String>,
}

impl std::fmt::Debug for FoundAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoundAgent")
            .field("function", &self.decl.function.to_string())
            .field("crate_ident", &self.crate_ident)
            .field("modules", &self.modules)
            .finish()
    }
}

impl FromRustSource {
    /// A source for the workflow in directory `base`.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        FromRustSource { base: base.into(), files: Mutex::new(HashMap::new()) }
    }

    /// A diagnostic at `pointer`; the type layer locates it in the workflow.
    fn error(&self, code: Code, message: String, pointer: String) -> Diagnostic {
        Diagnostic::error(code, message, pointer, Default::default())
    }

    fn parse(&self, path: &Path) -> Result<syn::File, String> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        files
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                syn::parse_file(&text).map_err(|e| {
                    let at = e.span().start();
                    format!("{}:{}:{}: {e}", path.display(), at.line, at.column + 1)
                })
            })
            .clone()
    }

    /// The items of a source file of the agent declared at `pointer`.
    #[allow(clippy::result_large_err)] // see `declaration`
    fn items(&self, path: &Path, pointer: &str) -> Result<Vec<syn::Item>, Diagnostic> {
        self.parse(path).map(|file| file.items).map_err(|e| {
            self.error(
                Code::AgentSourceUnreadable,
                format!("cannot read the agent crate's source: {e}"),
                format!("{pointer}/path"),
            )
        })
    }

    /// Finds and parses the declaration of `agent`, or says why it cannot.
    // Once per agent, off any hot path: a boxed error would only add noise.
    #[allow(clippy::result_large_err)]
    fn declaration(&self, agent: &RustAgent, pointer: &str) -> Result<(AgentDecl, String, usize), Diagnostic> {
        let dir = self.base.join(&agent.path);
        let shown_dir = Path::new(&agent.path);
        let manifest = dir.join("Cargo.toml");
        let manifest_text = std::fs::read_to_string(&manifest).map_err(|_| {
            self.error(
                Code::AgentCrateNotFound,
                format!(
                    "no agent crate at `{}`: `{}` does not exist",
                    agent.path,
                    shown_dir.join("Cargo.toml").display()
                ),
                format!("{pointer}/path"),
            )
            .with_label("no crate here")
            .with_help("`path` is the agent crate's directory, relative to the workflow file")
        })?;
        let manifest: toml::Table = manifest_text.parse().map_err(|e| {
            self.error(
                Code::AgentSourceUnreadable,
                format!("cannot parse `{}`: {e}", shown_dir.join("Cargo.toml").display()),
                format!("{pointer}/path"),
            )
        })?;
        let package = manifest.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str()).unwrap_or_default();
        if package.replace('-', "_") != agent.crate_name.replace('-', "_") {
            return Err(self
                .error(
                    Code::CrateNameMismatch,
                    format!("the crate at `{}` is named `{package}`, not `{}`", agent.path, agent.crate_name),
                    format!("{pointer}/crate"),
                )
                .with_label("another crate's name")
                .with_help(format!(
                    "write `\"crate\": \"{package}\"`, or point `path` at the crate named `{}`",
                    agent.crate_name
                )));
        }
        let lib = manifest
            .get("lib")
            .and_then(|l| l.get("path"))
            .and_then(|p| p.as_str())
            .map_or_else(|| PathBuf::from("src/lib.rs"), PathBuf::from);
        let function_pointer = format!("{pointer}/function");
        let mut file_path = dir.join(&lib);
        let mut shown_file = shown_dir.join(&lib);
        let mut items = self.items(&file_path, pointer)?;
        let segments: Vec<&str> = agent.function.split("::").collect();
        let (function_name, modules) = segments.split_last().expect("split yields one segment");
        for module in modules {
            let found = items.iter().find_map(|item| match item {
                syn::Item::Mod(m) if m.ident == module => Some(m.clone()),
                _ => None,
            });
            let Some(m) = found else {
                return Err(self
                    .error(
                        Code::AgentFunctionNotFound,
                        format!("module `{module}` is not declared in `{}`", shown_file.display()),
                        function_pointer,
                    )
                    .with_label("no such module"));
            };
            if !matches!(m.vis, syn::Visibility::Public(_)) {
                let line = m.ident.span().start().line;
                return Err(self
                    .error(
                        Code::AgentNotPublic,
                        format!("module `{module}` ({}:{line}) is private", shown_file.display()),
                        function_pointer,
                    )
                    .with_label("not reachable from the generated program")
                    .with_help(format!("write `pub mod {module}`")));
            }
            match m.content {
                Some((_, inline)) => items = inline,
                None => {
                    // `mod x;` in `lib.rs`/`mod.rs` lives beside it; in `y.rs`, under `y/`.
                    let parent = file_path.parent().unwrap_or(Path::new("")).to_path_buf();
                    let stem = file_path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                    let dir_of = if matches!(stem, "lib" | "main" | "mod") { parent } else { parent.join(stem) };
                    let candidates = [dir_of.join(format!("{module}.rs")), dir_of.join(module).join("mod.rs")];
                    let Some(found) = candidates.iter().find(|p| p.exists()) else {
                        return Err(self
                            .error(
                                Code::AgentFunctionNotFound,
                                format!("the file of module `{module}` is missing"),
                                function_pointer,
                            )
                            .with_note(format!(
                                "looked for {}",
                                candidates
                                    .iter()
                                    .map(|c| format!("`{}`", display_under(c, &self.base)))
                                    .collect::<Vec<_>>()
                                    .join(" and ")
                            )));
                    };
                    file_path = found.clone();
                    shown_file = PathBuf::from(display_under(found, &self.base));
                    items = self.items(&file_path, pointer)?;
                }
            }
        }
        let functions: Vec<&syn::ItemFn> = items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Fn(f) => Some(f),
                _ => None,
            })
            .collect();
        let shown = shown_file.display().to_string();
        let Some(function) = functions.iter().find(|f| f.sig.ident == function_name) else {
            let agents: Vec<String> = functions
                .iter()
                .filter(|f| f.attrs.iter().any(is_agent_attribute))
                .map(|f| f.sig.ident.to_string())
                .collect();
            let help = suggestion(function_name, agents.iter().map(String::as_str)).unwrap_or_else(|| {
                if agents.is_empty() {
                    format!("`{shown}` has no `#[agent]` functions")
                } else {
                    format!(
                        "the agents in `{shown}` are {}",
                        agents.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                    )
                }
            });
            return Err(self
                .error(
                    Code::AgentFunctionNotFound,
                    format!("function `{function_name}` is not in `{shown}`"),
                    function_pointer,
                )
                .with_label("no such function")
                .with_help(help));
        };
        let line = function.sig.ident.span().start().line;
        let Some(attr) = function.attrs.iter().find(|a| is_agent_attribute(a)) else {
            return Err(self
                .error(
                    Code::NotAnAgent,
                    format!("function `{function_name}` ({shown}:{line}) is not marked `#[agent]`"),
                    function_pointer,
                )
                .with_label("not an agent")
                .with_help("add `#[agent(id = .., version = .., input = { .. }, output = { .. })]` to it"));
        };
        if !matches!(function.vis, syn::Visibility::Public(_)) {
            return Err(self
                .error(
                    Code::AgentNotPublic,
                    format!("function `{function_name}` ({shown}:{line}) is private"),
                    function_pointer,
                )
                .with_label("not reachable from the generated program")
                .with_help(format!("write `pub async fn {function_name}`")));
        }
        let line = attr.span().start().line;
        let tokens = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            _ => proc_macro2::TokenStream::new(),
        };
        let decl = AgentDecl::new(tokens, attr.span(), function).map_err(|errors| {
            let mut d = self
                .error(
                    Code::InvalidAgentDeclaration,
                    format!("the `#[agent]` declaration of `{function_name}` has errors"),
                    pointer.to_owned(),
                )
                .with_label("declaration has errors")
                .with_help("`cargo build` of the agent crate shows them in full");
            for e in errors {
                let at = e.span().start();
                d = d.with_note(format!("{shown}:{}:{}: {e}", at.line, at.column + 1));
            }
            d
        })?;
        Ok((decl, shown, line))
    }
}

/// `path` relative to `base` where it is below it, for messages.
fn display_under(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}

impl AgentSchemaSource for FromRustSource {
    fn schemas(&self, id: &str, definition: &AgentDefinition, pointer: &str) -> AgentSchemas {
        // Other kinds declare their schemas in the workflow.
        let AgentDefinition::Rust(agent) = definition else {
            return super::DeclaredInWorkflow.schemas(id, definition, pointer);
        };
        let mut out = AgentSchemas::default();
        let (decl, file, line) = match self.declaration(agent, pointer) {
            Ok(found) => found,
            Err(d) => {
                out.diagnostics.push(d);
                return out;
            }
        };
        let here = format!("{file}:{line}");
        let modules: Vec<String> = agent
            .function
            .split("::")
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, m)| m.to_vec())
            .unwrap_or_default();
        out.declaration =
            Some(FoundAgent { decl: decl.clone(), crate_ident: agent.crate_name.replace('-', "_"), modules });
        let declared_id = decl.args.id.value();
        if declared_id != id {
            out.diagnostics.push(
                self.error(
                    Code::DeclarationMismatch,
                    format!("agent `{id}` is declared with id `{declared_id}` at {here}"),
                    pointer.to_owned(),
                )
                .with_label("another id")
                .with_help(format!(
                    "rename the agent to `{declared_id}` here, or its `id` in the declaration to `{id}`"
                )),
            );
        }
        if let Some(version) = &definition.common().version {
            let declared = decl.args.version.value();
            if *version != declared {
                out.diagnostics.push(
                    self.error(
                        Code::DeclarationMismatch,
                        format!("agent `{id}` is version {declared} at {here}, not {version}"),
                        format!("{pointer}/version"),
                    )
                    .with_label("another version"),
                );
            }
        }
        let common = definition.common();
        for (side, from_source, in_workflow) in
            [("input", decl.input_schema(), &common.input), ("output", decl.output_schema(), &common.output)]
        {
            let side_pointer = format!("{pointer}/{side}");
            let chosen = match (from_source, in_workflow) {
                (Ok(schema), None) => {
                    Some(DeclaredSchema { schema, origin: Origin::RustSource { file: file.clone(), line } })
                }
                (declared, Some(workflow_schema)) => {
                    // Both say what the data is: they must say the same, but where the declaration
                    // names a type, which the workflow's schema then describes.
                    let named = declared.as_ref().err().map(|u| u.type_name.clone());
                    let shape = match &declared {
                        Ok(schema) => schema.clone(),
                        Err(_) if side == "input" => decl.input_shape(),
                        Err(_) => decl.output_shape(),
                    };
                    if let (Ok(a), Ok(b)) = (from_schema(&shape), from_schema(workflow_schema)) {
                        if !agrees_but_for_any(&a, &b) {
                            let (help, stands_for) = match &named {
                                None => (format!("remove `{side}` here (the declaration is enough), or make the two agree"), ""),
                                Some(t) => (
                                    format!("make the two agree; only where the declaration names a type (`{t}`) may the schema here say more"),
                                    " (`any value` stands for a named type)",
                                ),
                            };
                            out.diagnostics.push(
                                self.error(
                                    Code::DeclarationMismatch,
                                    format!("the {side} schema of agent `{id}` here disagrees with its `#[agent]` declaration at {here}"),
                                    side_pointer.clone(),
                                )
                                .with_label("disagrees with the declaration")
                                .with_help(help)
                                .with_note(format!("the workflow says: {}", b.detailed()))
                                .with_note(format!("{here} says: {}{stands_for}", a.detailed())),
                            );
                        }
                    }
                    Some(match declared {
                        Ok(schema) => {
                            DeclaredSchema { schema, origin: Origin::RustSource { file: file.clone(), line } }
                        }
                        Err(_) => DeclaredSchema {
                            schema: workflow_schema.clone(),
                            origin: Origin::Workflow { pointer: side_pointer },
                        },
                    })
                }
                (Err(Unresolved { type_name, span }), None) => {
                    out.diagnostics.push(
                        self.error(
                            Code::NamedTypeUnresolved,
                            format!(
                                "the {side} of agent `{id}` uses the named type `{type_name}` ({file}:{}), so steps using it are not type-checked",
                                span.start().line
                            ),
                            pointer.to_owned(),
                        )
                        .with_label("not type-checked")
                        .with_help(format!("declare `{side}` for this agent in the workflow to type-check it"))
                        .with_note(NAMED_TYPE_NOTE),
                    );
                    None
                }
            };
            match side {
                "input" => out.input = chosen,
                _ => out.output = chosen,
            }
        }
        out
    }
}
