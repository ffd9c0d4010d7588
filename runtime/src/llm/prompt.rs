//! The JSON prompt rendered into the text a model reads.
//!
//! The rendering is deterministic (same agent, same input, same bytes), so
//! a provider's prompt cache and a reviewer's diff both see only what
//! changed. The templates use the contract's `${input...}` grammar, parsed
//! by the same parser the compiler checks them with.

use std::fmt::Write as _;

use orchestr8_schema::ast;
use orchestr8_schema::expr::{parse_template, PathSegment, Root, Segment, Template};
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

fn lookup<'v>(value: &'v Value, path: &[PathSegment]) -> Option<&'v Value> {
    path.iter().try_fold(value, |v, segment| match segment {
        PathSegment::Field(f) => v.get(f),
        PathSegment::Index(i) => v.get(i),
    })
}

/// An agent's prompt, parsed once when the agent is built.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    system: Text,
    instructions: Text,
    constraints: Vec<Text>,
    /// Each example rendered once: it does not depend on the input.
    examples: String,
}

/// The rendered prompt: the system text and the first user turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The system prompt.
    pub system: String,
    /// The first user message.
    pub user: String,
}

impl Prompt {
    /// Parses the workflow's JSON prompt.
    pub fn new(prompt: &ast::Prompt) -> Result<Prompt, String> {
        let mut examples = String::new();
        for (i, example) in prompt.examples.iter().enumerate() {
            let _ = write!(
                examples,
                "\n\n### Example {}\nInput:\n{}\nOutput:\n{}",
                i + 1,
                pretty(&example.input),
                pretty(&example.output)
            );
        }
        Ok(Prompt {
            system: Text::parse(&prompt.system)?,
            instructions: Text::parse(&prompt.instructions)?,
            constraints: prompt.constraints.iter().map(|c| Text::parse(c)).collect::<Result<_, _>>()?,
            examples,
        })
    }

    /// The system text and first user turn for `input`.
    pub fn render(&self, input: &Value) -> Rendered {
        let mut system = String::new();
        self.system.render(input, &mut system);
        if !self.constraints.is_empty() {
            system.push_str("\n\n## Constraints");
            for c in &self.constraints {
                system.push_str("\n- ");
                c.render(input, &mut system);
            }
        }
        system.push_str("\n\nAnswer with a JSON value that matches the given JSON Schema, and nothing else.");
        let mut user = String::new();
        self.instructions.render(input, &mut user);
        if !self.examples.is_empty() {
            user.push_str("\n\n## Examples");
            user.push_str(&self.examples);
        }
        user.push_str("\n\n## Input\n");
        user.push_str(&pretty(input));
        Rendered { system, user }
    }
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

    #[test]
    fn renders_input_references_constraints_and_examples() {
        let p = Prompt::new(&prompt(json!({
            "system": "You triage tickets for ${input.team}.",
            "instructions": "Classify: ${input.ticket.subject} (${input.ticket.priority})${input.missing}",
            "constraints": ["Be brief.", "Answer in ${input.lang}."],
            "examples": [{"input": {"ticket": {"subject": "x"}}, "output": {"kind": "bug"}}]
        })))
        .unwrap();
        let r = p.render(&json!({"team": "ops", "lang": "French", "ticket": {"subject": "Login down", "priority": 2}}));
        assert_eq!(
            r.system,
            "You triage tickets for ops.\n\n## Constraints\n- Be brief.\n- Answer in French.\n\n\
             Answer with a JSON value that matches the given JSON Schema, and nothing else."
        );
        assert!(
            r.user.starts_with("Classify: Login down (2)\n\n## Examples\n\n### Example 1\nInput:\n{"),
            "{}",
            r.user
        );
        assert!(r.user.ends_with("## Input\n{\n  \"team\": \"ops\",\n  \"lang\": \"French\",\n  \"ticket\": {\n    \"subject\": \"Login down\",\n    \"priority\": 2\n  }\n}"), "{}", r.user);
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
