//! The JSON prompt rendered into the text a model reads.
//!
//! The rendering is deterministic (same agent, same input, same bytes), so
//! a provider's prompt cache and a reviewer's diff both see only what
//! changed. The templates use the contract's `${input...}` grammar, parsed
//! by the same parser the compiler checks them with.

use std::fmt::Write as _;

use orchestr8_schema::ast::{self, PromptFormat};
use orchestr8_schema::expr::{parse_template, PathSegment, Root, Segment, Template};
use serde::Serialize;
use serde_json::Value;

/// A prompt text: literal text and references into the agent's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Text(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Input(Vec<PathSegment>),
}

impl Text {
    /// Parses a prompt text; a reference to anything but the agent's own
    /// input is an error (the compiler reports it first, located).
    pub fn parse(text: &str) -> Result<Text, String> {
        let template = parse_template(text).map_err(|e| format!("in `{text}`: {}", e.message))?;
        let references = match template {
            Template::Literal(s) => return Ok(Text(vec![Part::Literal(s)])),
            Template::Whole(r) => vec![Segment::Reference(r)],
            Template::Interpolated(segments) => segments,
        };
        references
            .into_iter()
            .map(|segment| match segment {
                Segment::Text(s) => Ok(Part::Literal(s)),
                Segment::Reference(r) => match r.value.root {
                    Root::Input => Ok(Part::Input(r.value.path)),
                    _ => Err(format!("`{text}`: a prompt may reference only the agent's input (`${{input...}}`)")),
                },
            })
            .collect::<Result<_, _>>()
            .map(Text)
    }

    /// The text with each reference replaced by the input's value there: a
    /// string as it is, anything else as JSON, an absent value as nothing.
    pub fn render(&self, input: &Value, out: &mut String) {
        for part in &self.0 {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Input(path) => match lookup(input, path) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) => out.push_str(s),
                    Some(other) => {
                        let _ = write!(out, "{other}");
                    }
                },
            }
        }
    }
}

impl Text {
    /// About the length of a rendering, to size its buffer: the literal
    /// text and a little for each reference.
    fn size_hint(&self) -> usize {
        self.0
            .iter()
            .map(|part| match part {
                Part::Literal(s) => s.len(),
                Part::Input(_) => 32,
            })
            .sum()
    }
}

fn lookup<'v>(value: &'v Value, path: &[PathSegment]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, segment| match segment {
        PathSegment::Field(f) => v.get(f),
        PathSegment::Index(i) => v.get(i),
    })
}

/// An agent's prompt, parsed once when the agent is built.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    format: PromptFormat,
    system: Text,
    instructions: Text,
    constraints: Vec<Text>,
    /// The examples, in the prompt's format: they do not depend on the input.
    examples: Examples,
}

/// The examples, prepared once for the prompt's format.
#[derive(Debug, Clone, PartialEq)]
enum Examples {
    /// The Markdown section, rendered.
    Markdown(String),
    /// The JSON list, as the user turn's `examples` member.
    Json(Value),
}

/// The rendered prompt: the system text and the first user turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The system prompt.
    pub system: String,
    /// The first user message.
    pub user: String,
}

/// The last sentence of every system turn: the same in both formats, so a
/// comparison of formats compares only the user turn.
const ANSWER_RULE: &str = "Answer with a JSON value that matches the given JSON Schema, and nothing else.";

impl Prompt {
    /// Parses the workflow's JSON prompt, to be rendered in its own `format`.
    pub fn new(prompt: &ast::Prompt) -> Result<Prompt, String> {
        Prompt::with_format(prompt, prompt.format.unwrap_or_default())
    }

    /// Parses the workflow's JSON prompt, to be rendered in `format`
    /// whatever the prompt says (the two arms of `orchestr8 eval`).
    pub fn with_format(prompt: &ast::Prompt, format: PromptFormat) -> Result<Prompt, String> {
        let examples = match format {
            PromptFormat::Markdown => {
                let mut text = String::new();
                for (i, example) in prompt.examples.iter().enumerate() {
                    let _ = write!(
                        text,
                        "\n\n### Example {}\nInput:\n{}\nOutput:\n{}",
                        i + 1,
                        fenced(&example.input),
                        fenced(&example.output)
                    );
                }
                Examples::Markdown(text)
            }
            PromptFormat::Json => Examples::Json(Value::Array(
                prompt.examples.iter().map(|e| serde_json::json!({"input": e.input, "output": e.output})).collect(),
            )),
        };
        Ok(Prompt {
            format,
            system: Text::parse(&prompt.system)?,
            instructions: Text::parse(&prompt.instructions)?,
            constraints: prompt.constraints.iter().map(|c| Text::parse(c)).collect::<Result<_, _>>()?,
            examples,
        })
    }

    /// The format the user turn is rendered in.
    pub fn format(&self) -> PromptFormat {
        self.format
    }

    /// The system text and first user turn for `input`.
    pub fn render(&self, input: &Value) -> Rendered {
        let mut system = String::with_capacity(self.system.size_hint() + 2 + ANSWER_RULE.len());
        self.system.render(input, &mut system);
        system.push_str("\n\n");
        system.push_str(ANSWER_RULE);
        let text = |t: &Text| {
            let mut s = String::new();
            t.render(input, &mut s);
            s
        };
        let user = match &self.examples {
            Examples::Markdown(examples) => {
                let mut user = text(&self.instructions);
                if !self.constraints.is_empty() {
                    user.push_str("\n\n## Constraints");
                    for c in &self.constraints {
                        user.push_str("\n- ");
                        c.render(input, &mut user);
                    }
                }
                if !examples.is_empty() {
                    user.push_str("\n\n## Examples");
                    user.push_str(examples);
                }
                user.push_str("\n\n## Input\n");
                user.push_str(&fenced(input));
                user
            }
            Examples::Json(examples) => {
                let turn = JsonTurn {
                    instructions: Rendering { text: &self.instructions, input },
                    constraints: Renderings { texts: &self.constraints, input },
                    examples,
                    input,
                };
                // One pretty serialisation straight into a buffer of about the right size.
                let mut user = Vec::with_capacity(USER_TURN_CAPACITY);
                serde_json::to_writer_pretty(&mut user, &turn).expect("a JSON value serialises");
                String::from_utf8(user).expect("serde_json writes UTF-8")
            }
        };
        Rendered { system, user }
    }
}

/// Room for a typical JSON user turn, so that writing it rarely reallocates.
const USER_TURN_CAPACITY: usize = 1024;

/// The JSON user turn: a struct, so its members are in reading order
/// whatever the map type orders keys by, and no part of it is cloned.
#[derive(Serialize)]
struct JsonTurn<'a> {
    instructions: Rendering<'a>,
    #[serde(skip_serializing_if = "Renderings::is_empty")]
    constraints: Renderings<'a>,
    #[serde(skip_serializing_if = "is_empty_list")]
    examples: &'a Value,
    input: &'a Value,
}

/// A prompt text rendered for an input, as a JSON string.
struct Rendering<'a> {
    text: &'a Text,
    input: &'a Value,
}

impl Serialize for Rendering<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.text.0.as_slice() {
            [Part::Literal(s)] => serializer.serialize_str(s),
            _ => {
                let mut out = String::with_capacity(self.text.size_hint());
                self.text.render(self.input, &mut out);
                serializer.serialize_str(&out)
            }
        }
    }
}

/// Prompt texts rendered for an input, as a JSON array of strings.
struct Renderings<'a> {
    texts: &'a [Text],
    input: &'a Value,
}

impl Renderings<'_> {
    fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

impl Serialize for Renderings<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.texts.iter().map(|text| Rendering { text, input: self.input }))
    }
}

fn is_empty_list(v: &&Value) -> bool {
    v.as_array().is_none_or(Vec::is_empty)
}

/// A JSON value in a fenced Markdown code block.
fn fenced(v: &Value) -> String {
    format!("```json\n{}\n```", pretty(v))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).expect("a JSON value serialises")
}

/// The most validation errors a repair turn lists, and the most characters
/// it spends on them: the model needs the first few, not a flood.
const REPAIR_ERRORS: usize = 20;
const REPAIR_CHARS: usize = 2_000;

/// The user turn that sends an invalid answer back with what is wrong with it.
pub fn repair_text(errors: &[String]) -> String {
    let mut text = format!(
        "Your previous answer did not validate against the required JSON Schema.\n{} validation error(s):",
        errors.len()
    );
    let limit = text.len() + REPAIR_CHARS;
    for (shown, e) in errors.iter().enumerate() {
        if shown == REPAIR_ERRORS || text.len() + e.len() > limit {
            let _ = write!(text, "\n- ... and {} more", errors.len() - shown);
            break;
        }
        text.push_str("\n- ");
        text.push_str(e);
    }
    text.push_str("\nFix the errors and answer with the corrected JSON only.");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prompt(v: Value) -> ast::Prompt {
        serde_json::from_value(v).unwrap()
    }

    fn triage(format: &str) -> Prompt {
        Prompt::new(&prompt(json!({
            "system": "You triage tickets for ${input.team}.",
            "instructions": "Classify: ${input.ticket.subject} (${input.ticket.priority})${input.missing}",
            "constraints": ["Be brief.", "Answer in ${input.lang}."],
            "examples": [{"input": {"ticket": {"subject": "x"}}, "output": {"kind": "bug"}}],
            "format": format
        })))
        .unwrap()
    }

    fn ticket() -> Value {
        json!({"team": "ops", "lang": "French", "ticket": {"subject": "Login down", "priority": 2}})
    }

    #[test]
    fn markdown_renders_references_constraints_examples_and_input() {
        let r = triage("markdown").render(&ticket());
        assert_eq!(
            r.system,
            "You triage tickets for ops.\n\nAnswer with a JSON value that matches the given JSON Schema, and nothing else."
        );
        let expected = "Classify: Login down (2)\n\n## Constraints\n- Be brief.\n- Answer in French.\n\n## Examples\n\n\
             ### Example 1\nInput:\n```json\n{\n  \"ticket\": {\n    \"subject\": \"x\"\n  }\n}\n```\n\
             Output:\n```json\n{\n  \"kind\": \"bug\"\n}\n```\n\n## Input\n```json\n{\n  \"team\": \"ops\",\n  \
             \"lang\": \"French\",\n  \"ticket\": {\n    \"subject\": \"Login down\",\n    \"priority\": 2\n  }\n}\n```";
        assert_eq!(r.user, expected);
    }

    #[test]
    fn json_is_the_default_and_carries_the_same_content_as_one_object() {
        let json = triage("json");
        let default = Prompt::new(&prompt(json!({"system": "s", "instructions": "i"}))).unwrap();
        assert_eq!(default.format(), PromptFormat::Json);
        let r = json.render(&ticket());
        // The system turn is the same in both formats.
        assert_eq!(r.system, triage("markdown").render(&ticket()).system);
        let user: Value = serde_json::from_str(&r.user).unwrap();
        assert_eq!(
            user,
            json!({
                "instructions": "Classify: Login down (2)",
                "constraints": ["Be brief.", "Answer in French."],
                "examples": [{"input": {"ticket": {"subject": "x"}}, "output": {"kind": "bug"}}],
                "input": ticket()
            })
        );
        // Members in reading order, indented as one document: the bytes a
        // provider's prompt cache sees.
        let expected = "{\n  \"instructions\": \"Classify: Login down (2)\",\n  \"constraints\": [\n    \"Be brief.\",\n    \
             \"Answer in French.\"\n  ],\n  \"examples\": [\n    {\n      \"input\": {\n        \"ticket\": {\n          \
             \"subject\": \"x\"\n        }\n      },\n      \"output\": {\n        \"kind\": \"bug\"\n      }\n    }\n  ],\n  \
             \"input\": {\n    \"team\": \"ops\",\n    \"lang\": \"French\",\n    \"ticket\": {\n      \
             \"subject\": \"Login down\",\n      \"priority\": 2\n    }\n  }\n}";
        assert_eq!(r.user, expected);
        // Without constraints or examples, no empty members.
        let bare: Value = serde_json::from_str(&default.render(&json!({"x": 1})).user).unwrap();
        assert_eq!(bare, json!({"instructions": "i", "input": {"x": 1}}));
    }

    #[test]
    fn with_format_overrides_the_prompts_own() {
        let p = prompt(json!({"system": "s", "instructions": "i", "format": "markdown"}));
        assert_eq!(Prompt::new(&p).unwrap().format(), PromptFormat::Markdown);
        let forced = Prompt::with_format(&p, PromptFormat::Json).unwrap();
        assert_eq!(forced.format(), PromptFormat::Json);
        assert!(forced.render(&json!({})).user.starts_with('{'));
    }

    #[test]
    fn only_the_input_may_be_referenced() {
        let err = Text::parse("${steps.a.output.x}").unwrap_err();
        assert!(err.contains("only the agent's input"), "{err}");
        assert!(Text::parse("${input.").is_err());
        assert_eq!(Text::parse("$${input.x}").unwrap(), Text(vec![Part::Literal("${input.x}".into())]));
    }

    #[test]
    fn repair_text_is_bounded() {
        let errors: Vec<String> =
            (0..50).map(|i| format!("at `/items/{i}`: 9.5 is greater than the maximum of 1")).collect();
        let text = repair_text(&errors);
        assert!(text.contains("... and 30 more"), "{text}");
        assert!(text.len() < REPAIR_CHARS + 300);
        assert!(repair_text(&errors[..1]).contains("1 validation error(s):\n- at `/items/0`"));
    }
}
