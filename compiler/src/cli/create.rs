//! `orchestr8 create agent NAME`: appends an `#[agent]` function (from
//! `compiler/templates/agent.rs.txt`) to the project's agent crate and registers it in
//! the workflow, editing the workflow's text in place so that everything the
//! user wrote (content, key order, indentation) stays as it was.

use std::path::{Path, PathBuf};

use orchestr8_schema::source::{self, Parsed};
use serde_json::Value;

use super::Status;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// Add an `#[agent]` function to the project's agent crate and register it in the workflow.
    #[command(
        after_help = "Example:\n  orchestr8 create agent summarize\n  orchestr8 create agent classify --workflow flows/triage/workflow.json"
    )]
    Agent(AgentArgs),
}

#[derive(Debug, clap::Args)]
struct AgentArgs {
    /// The agent's id and function name: lower case letters, digits and `_`,
    /// starting with a letter, not a Rust keyword.
    #[arg(value_name = "NAME")]
    name: String,
    /// The workflow to register the agent in; the agent crate is the one its
    /// first Rust agent lives in.
    #[arg(long, value_name = "FILE", default_value = "workflow.json")]
    workflow: PathBuf,
}

const AGENT_TEMPLATE: &str = include_str!("../../templates/agent.rs.txt");

pub(super) fn run(args: &Args) -> Status {
    let What::Agent(args) = &args.what;
    match create_agent(&args.name, &args.workflow) {
        Ok(lib_rs) => {
            eprintln!(
                "created agent `{}` in {} and registered it in {}",
                args.name,
                lib_rs.display(),
                args.workflow.display()
            );
            eprintln!(
                "use it from a step: {{ \"id\": \"{0}\", \"agent\": \"{0}\", \"input\": {{ \"text\": \"...\" }} }}",
                args.name
            );
            Status::Success
        }
        Err(message) => {
            eprintln!("error: {message}");
            Status::Usage
        }
    }
}

/// Rust's keywords (strict and reserved, up to edition 2024): not usable as a
/// function name.
const KEYWORDS: [&str; 52] = [
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl", "in",
    "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait",
    "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen", "union",
];

/// Why `name` cannot name an agent, if it cannot.
fn check_agent_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let shaped = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !shaped {
        return Err(format!(
            "`{name}` is not a valid agent name: 1 to 64 lower case letters, digits and `_`, starting with a letter \
             (e.g. `summarize_text`)"
        ));
    }
    if KEYWORDS.contains(&name) {
        return Err(format!("`{name}` is a Rust keyword and cannot name an agent function; pick another name"));
    }
    Ok(())
}

fn create_agent(name: &str, workflow: &Path) -> Result<PathBuf, String> {
    check_agent_name(name)?;
    let shown = workflow.display();
    let bytes = std::fs::read(workflow).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("no workflow at `{shown}`; run this in a project made by `orchestr8 init`, or pass --workflow FILE")
        }
        _ => format!("cannot read `{shown}`: {e}"),
    })?;
    let parsed = source::parse(&bytes).map_err(|issues| {
        let first = issues.first().map(|i| i.message.as_str()).unwrap_or("not JSON");
        format!("`{shown}` is not valid JSON ({first}); `orchestr8 validate {shown}` shows where")
    })?;
    let Some(agents) = parsed.value.get("agents").and_then(Value::as_object) else {
        return Err(format!("`{shown}` has no `agents` object to register the agent in"));
    };
    if agents.contains_key(name) {
        return Err(format!("agent `{name}` already exists in `{shown}`"));
    }
    let workflow_dir = workflow.parent().unwrap_or(Path::new(""));
    let (crate_name, crate_path) = match agents.values().find(|a| a.get("kind").and_then(Value::as_str) == Some("rust"))
    {
        Some(rust) => match (rust.get("crate").and_then(Value::as_str), rust.get("path").and_then(Value::as_str)) {
            (Some(c), Some(p)) => (c.to_owned(), p.to_owned()),
            _ => return Err(format!("the first Rust agent of `{shown}` has no `crate` and `path`")),
        },
        // No Rust agent yet: the crate `orchestr8 init` makes, in `agents/`.
        None => (
            package_name(&workflow_dir.join("agents/Cargo.toml")).ok_or_else(|| {
                format!(
                "`{shown}` has no Rust agent and there is no agent crate in `agents/` beside it, so there is nowhere \
                 to add `{name}`"
            )
            })?,
            "agents".to_owned(),
        ),
    };
    let (crate_name, crate_path) = (crate_name.as_str(), crate_path.as_str());
    let lib_rs = workflow_dir.join(crate_path).join("src").join("lib.rs");
    let lib = std::fs::read_to_string(&lib_rs).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "no `{}`: the agent crate `{crate_name}` (path `{crate_path}` in `{shown}`) has no lib.rs to add `{name}` to",
            lib_rs.display()
        ),
        _ => format!("cannot read `{}`: {e}", lib_rs.display()),
    })?;
    if defines_fn(&lib, name) {
        return Err(format!("`{}` already has a function `{name}`", lib_rs.display()));
    }

    let new_workflow = insert_agent(&parsed, name, crate_name, crate_path)?;
    let mut new_lib = lib.clone();
    if !new_lib.is_empty() && !new_lib.ends_with('\n') {
        new_lib.push('\n');
    }
    new_lib.push_str(
        &AGENT_TEMPLATE.replace("{{name}}", name).replace("{{Type}}", &orchestr8_agent_decl::pascal_case(name)),
    );

    // Both files are written in full beside their targets, then renamed, so
    // that a failure leaves both as they were.
    let lib_tmp = temp_beside(&lib_rs);
    let workflow_tmp = temp_beside(workflow);
    let written = std::fs::write(&lib_tmp, &new_lib)
        .map_err(|e| format!("cannot write `{}`: {e}", lib_tmp.display()))
        .and_then(|()| {
            std::fs::write(&workflow_tmp, &new_workflow)
                .map_err(|e| format!("cannot write `{}`: {e}", workflow_tmp.display()))
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&lib_tmp);
        let _ = std::fs::remove_file(&workflow_tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&lib_tmp, &lib_rs) {
        let _ = std::fs::remove_file(&lib_tmp);
        let _ = std::fs::remove_file(&workflow_tmp);
        return Err(format!("cannot replace `{}`: {e}", lib_rs.display()));
    }
    if let Err(e) = std::fs::rename(&workflow_tmp, workflow) {
        let _ = std::fs::remove_file(&workflow_tmp);
        let _ = std::fs::write(&lib_rs, &lib);
        return Err(format!("cannot replace `{shown}`: {e}"));
    }
    Ok(lib_rs)
}

/// The package name in the manifest at `path`, if it is readable.
fn package_name(path: &Path) -> Option<String> {
    let manifest: toml::Table = std::fs::read_to_string(path).ok()?.parse().ok()?;
    Some(manifest.get("package")?.get("name")?.as_str()?.to_owned())
}

/// A temporary file name in `path`'s directory.
fn temp_beside(path: &Path) -> PathBuf {
    let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{file}.orchestr8-{}.tmp", std::process::id()))
}

/// Whether `lib` already has `fn NAME`: a new one would not compile.
fn defines_fn(lib: &str, name: &str) -> bool {
    let needle = format!("fn {name}");
    lib.match_indices(&needle).any(|(i, _)| {
        let before = lib[..i].chars().next_back();
        let after = lib[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// The workflow's text with `"NAME": {...}` added as the last member of
/// `agents`, laid out like the members already there.
fn insert_agent(parsed: &Parsed, name: &str, crate_name: &str, crate_path: &str) -> Result<String, String> {
    let text = parsed.text.as_str();
    let agents = parsed.spans.get("/agents").ok_or("the workflow has no `agents` span")?.value;
    let members: Vec<&String> = parsed.value["agents"].as_object().map(|m| m.keys().collect()).unwrap_or_default();
    let fields = [
        ("kind", "rust".to_owned()),
        ("crate", crate_name.to_owned()),
        ("path", crate_path.to_owned()),
        ("function", name.to_owned()),
        ("description", format!("TODO: say what `{name}` does.")),
    ];
    let json = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let unit = indent_unit(parsed);
    let (at, prefix, indent, suffix) = match members.last() {
        Some(last) => {
            let pointer = format!("/agents/{}", source::escape_pointer_token(last));
            let last_value = parsed.spans.get(&pointer).ok_or("no span for the last agent")?.value;
            let first_pointer = format!("/agents/{}", source::escape_pointer_token(members[0]));
            let first_key = parsed.spans.get(&first_pointer).and_then(|n| n.key).ok_or("no span for an agent key")?;
            match line_indent(text, first_key.start) {
                // Members on lines of their own: the new one too.
                Some(indent) => (last_value.end, format!(",\n{indent}"), Some(indent.to_owned()), String::new()),
                // Members on the line of `{`: the new one on one line too.
                None => (last_value.end, ", ".to_owned(), None, String::new()),
            }
        }
        None => {
            // `{}`: members one level deeper than the line of `"agents"`.
            let key = parsed.spans.get("/agents").and_then(|n| n.key).ok_or("no span for `agents`")?;
            let outer = line_indent(text, key.start).unwrap_or("").to_owned();
            let inner = format!("{outer}{unit}");
            // Replace what is between the braces (white space only).
            (agents.start + 1, format!("\n{inner}"), Some(inner), format!("\n{outer}"))
        }
    };
    let member = match &indent {
        Some(indent) => {
            let field_indent = format!("{indent}{}", field_unit(parsed, &members).unwrap_or(unit));
            let body: Vec<String> =
                fields.iter().map(|(k, v)| format!("{field_indent}{}: {}", json(k), json(v))).collect();
            format!("{}: {{\n{}\n{indent}}}", json(name), body.join(",\n"))
        }
        None => {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("{}: {}", json(k), json(v))).collect();
            format!("{}: {{{}}}", json(name), body.join(", "))
        }
    };
    let end = if members.is_empty() { agents.end - 1 } else { at };
    // Windows line ends stay Windows line ends.
    let inserted = format!("{prefix}{member}{suffix}");
    let inserted = if text.contains("\r\n") { inserted.replace('\n', "\r\n") } else { inserted };
    let new_text = format!("{}{inserted}{}", &text[..at], &text[end..]);
    // The edit must leave a document with the agent in it.
    match source::parse(new_text.as_bytes()) {
        Ok(p) if p.value["agents"].get(name).is_some() => Ok(new_text),
        _ => Err("internal error: the edited workflow does not parse; nothing was written".to_owned()),
    }
}

/// The white space before `pos` on its line, if nothing else precedes it.
fn line_indent(text: &str, pos: usize) -> Option<&str> {
    let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[start..pos];
    before.chars().all(|c| c == ' ' || c == '\t').then_some(before)
}

/// One level of indentation in the document: that of its first member, or two spaces.
fn indent_unit(parsed: &Parsed) -> &str {
    let first = parsed.value.as_object().and_then(|o| o.keys().next());
    first
        .and_then(|k| parsed.spans.get(&format!("/{}", source::escape_pointer_token(k))))
        .and_then(|n| n.key)
        .and_then(|key| line_indent(&parsed.text, key.start))
        .filter(|i| !i.is_empty())
        .unwrap_or("  ")
}

/// How much deeper an existing agent's fields sit than its key.
fn field_unit<'a>(parsed: &'a Parsed, members: &[&String]) -> Option<&'a str> {
    let text = parsed.text.as_str();
    members.iter().find_map(|m| {
        let pointer = format!("/agents/{}", source::escape_pointer_token(m));
        let member_indent = line_indent(text, parsed.spans.get(&pointer)?.key?.start)?;
        let field = parsed.value["agents"][m.as_str()].as_object()?.keys().next()?;
        let field_pointer = format!("{pointer}/{}", source::escape_pointer_token(field));
        let field_indent = line_indent(text, parsed.spans.get(&field_pointer)?.key?.start)?;
        field_indent.strip_prefix(member_indent).filter(|u| !u.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(text: &str) -> String {
        insert_agent(&source::parse(text.as_bytes()).unwrap(), "new_one", "c", "agents").unwrap()
    }

    #[test]
    fn names() {
        assert!(check_agent_name("summarize_text2").is_ok());
        for bad in ["", "Summarize", "2x", "_x", "a-b", "loop", "gen", &"a".repeat(65)] {
            assert!(check_agent_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_functions() {
        assert!(defines_fn("pub async fn greet(", "greet"));
        assert!(!defines_fn("pub async fn greeting(", "greet"));
        assert!(!defines_fn("fn pregreet(", "greet"));
    }

    #[test]
    fn keeps_the_layout_of_the_members() {
        let text = "{\n    \"agents\": {\n        \"a\": {\n            \"kind\": \"rust\"\n        }\n    }\n}\n";
        assert_eq!(
            insert(text),
            "{\n    \"agents\": {\n        \"a\": {\n            \"kind\": \"rust\"\n        },\n        \"new_one\": {\n            \"kind\": \"rust\",\n            \"crate\": \"c\",\n            \"path\": \"agents\",\n            \"function\": \"new_one\",\n            \"description\": \"TODO: say what `new_one` does.\"\n        }\n    }\n}\n"
        );
    }

    #[test]
    fn keeps_windows_line_ends() {
        let text = "{\r\n  \"agents\": {\r\n    \"a\": {\r\n      \"kind\": \"rust\"\r\n    }\r\n  }\r\n}\r\n";
        let new = insert(text);
        assert!(new.starts_with("{\r\n  \"agents\": {\r\n    \"a\": {\r\n      \"kind\": \"rust\"\r\n    },\r\n    \"new_one\": {\r\n      \"kind\""), "{new}");
        assert_eq!(new.matches('\n').count(), new.matches("\r\n").count(), "{new}");
    }

    #[test]
    fn compact_members_get_a_compact_member() {
        assert_eq!(
            insert("{\"agents\": {\"a\": {}}, \"steps\": []}"),
            "{\"agents\": {\"a\": {}, \"new_one\": {\"kind\": \"rust\", \"crate\": \"c\", \"path\": \"agents\", \"function\": \"new_one\", \"description\": \"TODO: say what `new_one` does.\"}}, \"steps\": []}"
        );
    }

    #[test]
    fn fills_an_empty_object() {
        let text = "{\n\t\"agents\": { },\n\t\"steps\": []\n}";
        assert_eq!(
            insert(text),
            "{\n\t\"agents\": {\n\t\t\"new_one\": {\n\t\t\t\"kind\": \"rust\",\n\t\t\t\"crate\": \"c\",\n\t\t\t\"path\": \"agents\",\n\t\t\t\"function\": \"new_one\",\n\t\t\t\"description\": \"TODO: say what `new_one` does.\"\n\t\t}\n\t},\n\t\"steps\": []\n}"
        );
    }
}
