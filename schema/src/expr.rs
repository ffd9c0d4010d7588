//! Value expressions: strings with `${REF}` references.
//!
//! The grammar of the contract's "Values and references", shared by the
//! validator and the code generator so both read a reference the same way.

use std::fmt;

/// A parsed string of a value expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// No reference: the string as written (with `$${` already unescaped).
    Literal(String),
    /// Exactly one `${REF}` and nothing else: passes the value with its own type.
    Whole(Located<Reference>),
    /// Text around references: the result is a string.
    Interpolated(Vec<Segment>),
}

/// A piece of an interpolated string.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// A reference whose value is rendered as text.
    Reference(Located<Reference>),
}

/// A value with its byte range in the decoded string.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    /// The value.
    pub value: T,
    /// Byte offset of `${` in the decoded string.
    pub start: usize,
    /// Byte offset just past `}`.
    pub end: usize,
}

/// What a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The data it starts from.
    pub root: Root,
    /// Field names and indices below the root.
    pub path: Vec<PathSegment>,
}

/// The data a reference starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// `input`: the workflow's input.
    Input,
    /// `steps.ID.output`: a step's output.
    StepOutput(String),
    /// `execution.id`.
    ExecutionId,
    /// `execution.correlationId`.
    CorrelationId,
    /// `workflow.id`.
    WorkflowId,
    /// `workflow.version`.
    WorkflowVersion,
    /// `NAME`: the current item of the enclosing map whose `as` is `NAME`
    /// (resolved against the scope by the type layer: any other name is an
    /// unknown root there).
    Item(String),
    /// `map.index`: the current item's index in the innermost enclosing map.
    MapIndex,
}

/// One step down a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// `.name`
    Field(String),
    /// `[n]`
    Index(usize),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.root {
            Root::Input => f.write_str("input")?,
            Root::StepOutput(id) => write!(f, "steps.{id}.output")?,
            Root::ExecutionId => f.write_str("execution.id")?,
            Root::CorrelationId => f.write_str("execution.correlationId")?,
            Root::WorkflowId => f.write_str("workflow.id")?,
            Root::WorkflowVersion => f.write_str("workflow.version")?,
            Root::Item(name) => f.write_str(name)?,
            Root::MapIndex => f.write_str("map.index")?,
        }
        for seg in &self.path {
            write!(f, "{seg}")?;
        }
        Ok(())
    }
}

impl fmt::Display for PathSegment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathSegment::Field(name) => write!(f, ".{name}"),
            PathSegment::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A malformed reference, with where it is in the decoded string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// What is wrong.
    pub message: String,
    /// What to write instead, where that is clear.
    pub help: Option<String>,
    /// Byte range in the decoded string.
    pub start: usize,
    /// End of that range.
    pub end: usize,
}

/// Parses a string of a value expression.
pub fn parse_template(s: &str) -> Result<Template, TemplateError> {
    let mut segments = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(i) = rest.find('$') {
        let after = &rest[i..];
        if after.starts_with("$${") {
            text.push_str(&rest[..i]);
            text.push_str("${");
            rest = &rest[i + 3..];
            offset += i + 3;
        } else if after.starts_with("${") {
            text.push_str(&rest[..i]);
            let start = offset + i;
            let Some(close) = after.find('}') else {
                return Err(TemplateError {
                    message: "unclosed reference: `${` without `}`".into(),
                    help: Some("close it with `}`, or write `$${` for a literal `${`".into()),
                    start,
                    end: offset + rest.len(),
                });
            };
            let body = &after[2..close];
            let end = start + close + 1;
            let reference =
                parse_reference(body).map_err(|(message, help)| TemplateError { message, help, start, end })?;
            if !text.is_empty() {
                segments.push(Segment::Text(std::mem::take(&mut text)));
            }
            segments.push(Segment::Reference(Located { value: reference, start, end }));
            rest = &after[close + 1..];
            offset = end;
        } else {
            text.push_str(&rest[..=i]);
            rest = &rest[i + 1..];
            offset += i + 1;
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        segments.push(Segment::Text(text));
    }
    Ok(match segments.len() {
        0 => Template::Literal(String::new()),
        1 => match segments.pop().expect("one segment") {
            Segment::Text(t) => Template::Literal(t),
            Segment::Reference(r) => Template::Whole(r),
        },
        _ => Template::Interpolated(segments),
    })
}

const REFERENCE_FORMS: &str =
    "a reference is `input...`, `steps.ID.output...`, `execution.id`, `execution.correlationId`, `workflow.id` or `workflow.version`";

/// Parses the text between `${` and `}`.
pub fn parse_reference(body: &str) -> Result<Reference, (String, Option<String>)> {
    let body_trim = body.trim();
    if body_trim.is_empty() {
        return Err(("empty reference `${}`".into(), Some(REFERENCE_FORMS.into())));
    }
    if body_trim.len() != body.len() {
        return Err((
            format!("reference `${{{body}}}` has spaces around it"),
            Some(format!("write `${{{body_trim}}}`")),
        ));
    }
    let (head, path_text) = split_head(body);
    let mut path = parse_path(path_text, body)?;
    let root = match head {
        "input" => Root::Input,
        "steps" => {
            let mut it = path.drain(..2.min(path.len()));
            match (it.next(), it.next()) {
                (Some(PathSegment::Field(id)), Some(PathSegment::Field(out))) if out == "output" => {
                    Root::StepOutput(id)
                }
                (Some(PathSegment::Field(id)), _) => {
                    return Err((
                        format!("`${{{body}}}` does not name a step's output"),
                        Some(format!("write `steps.{id}.output` followed by the field you need")),
                    ))
                }
                _ => {
                    return Err((
                        format!("`${{{body}}}` does not name a step"),
                        Some("write `steps.ID.output...`".into()),
                    ))
                }
            }
        }
        "execution" | "workflow" => {
            let field = match path.first() {
                Some(PathSegment::Field(f)) if path.len() == 1 => f.as_str(),
                _ => "",
            };
            match (head, field) {
                ("execution", "id") => Root::ExecutionId,
                ("execution", "correlationId") => Root::CorrelationId,
                ("workflow", "id") => Root::WorkflowId,
                ("workflow", "version") => Root::WorkflowVersion,
                ("execution", _) => {
                    return Err((
                        format!("unknown execution field in `${{{body}}}`"),
                        Some("use `execution.id` or `execution.correlationId`".into()),
                    ))
                }
                _ => {
                    return Err((
                        format!("unknown workflow field in `${{{body}}}`"),
                        Some("use `workflow.id` or `workflow.version`".into()),
                    ))
                }
            }
        }
        "map" => match path.as_slice() {
            [PathSegment::Field(f)] if f == "index" => Root::MapIndex,
            _ => {
                return Err((
                    format!("unknown map field in `${{{body}}}`"),
                    Some("inside a map's body, `${map.index}` is the item's index; the item is `${NAME}`, NAME being the map's `as`".into()),
                ))
            }
        },
        // A map's item name, if a map in scope has it (the type layer says).
        name if is_item_name(name) => Root::Item(name.to_owned()),
        other => return Err(unknown_root(other, body)),
    };
    if !matches!(root, Root::Input | Root::StepOutput(_) | Root::Item(_)) {
        path.clear();
    }
    Ok(Reference { root, path })
}

/// Whether `name` can name a map's item: an identifier, not a root of its own.
fn is_item_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The message and help for a reference whose root is neither a fixed root
/// nor a map's item in scope.
pub fn unknown_root(name: &str, body: &str) -> (String, Option<String>) {
    let help = match name {
        "inputs" | "in" | "params" => "write `input`".to_string(),
        "step" | "outputs" => "write `steps.ID.output`".to_string(),
        _ => format!("{REFERENCE_FORMS}; inside a map's body, also the map's item (its `as`) and `map.index`"),
    };
    (format!("unknown reference root `{name}` in `${{{body}}}`"), Some(help))
}

fn split_head(body: &str) -> (&str, &str) {
    let end = body.find(['.', '[']).unwrap_or(body.len());
    body.split_at(end)
}

fn parse_path(mut text: &str, body: &str) -> Result<Vec<PathSegment>, (String, Option<String>)> {
    let bad = |what: &str| (format!("malformed reference `${{{body}}}`: {what}"), Some(REFERENCE_FORMS.to_string()));
    let mut path = Vec::new();
    while !text.is_empty() {
        if let Some(rest) = text.strip_prefix('.') {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() {
                return Err(bad("empty field name"));
            }
            if !name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
                return Err(bad(&format!("`{name}` is not a field name (letters, digits, `_` and `-`)")));
            }
            path.push(PathSegment::Field(name.to_owned()));
            text = &rest[end..];
        } else if let Some(rest) = text.strip_prefix('[') {
            let Some(close) = rest.find(']') else {
                return Err(bad("`[` without `]`"));
            };
            let index = rest[..close]
                .parse::<usize>()
                .map_err(|_| bad(&format!("`[{}]` is not an array index", &rest[..close])))?;
            path.push(PathSegment::Index(index));
            text = &rest[close + 1..];
        } else {
            return Err(bad("expected `.` or `[`"));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(s: &str) -> Reference {
        match parse_template(s).unwrap() {
            Template::Whole(r) => r.value,
            other => panic!("not a whole reference: {other:?}"),
        }
    }

    #[test]
    fn whole_references() {
        assert_eq!(whole("${input}"), Reference { root: Root::Input, path: vec![] });
        assert_eq!(
            whole("${input.items[0].name}"),
            Reference {
                root: Root::Input,
                path: vec![
                    PathSegment::Field("items".into()),
                    PathSegment::Index(0),
                    PathSegment::Field("name".into())
                ]
            }
        );
        assert_eq!(whole("${steps.fetch.output.body}").root, Root::StepOutput("fetch".into()));
        assert_eq!(whole("${execution.correlationId}").root, Root::CorrelationId);
        assert_eq!(whole("${workflow.version}").root, Root::WorkflowVersion);
    }

    #[test]
    fn interpolation_and_escapes() {
        match parse_template("Hello ${input.customer}, cost $5 $${x}").unwrap() {
            Template::Interpolated(segs) => {
                assert_eq!(segs.len(), 3);
                assert_eq!(segs[2], Segment::Text(", cost $5 ${x}".into()));
                match &segs[1] {
                    Segment::Reference(r) => assert_eq!((r.start, r.end), (6, 23)),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_template("$${input}").unwrap(), Template::Literal("${input}".into()));
        assert_eq!(parse_template("").unwrap(), Template::Literal(String::new()));
    }

    #[test]
    fn malformed_references() {
        for bad in [
            "${",
            "${}",
            "${ input }",
            "${steps.x}",
            "${steps}",
            "${execution.foo}",
            "${Foo.bar}",
            "${map}",
            "${map.item}",
            "${map.index.x}",
            "${input..a}",
            "${input[x]}",
            "${input.a b}",
        ] {
            assert!(parse_template(bad).is_err(), "{bad} should not parse");
        }
        let e = parse_template("ab ${input").unwrap_err();
        assert_eq!((e.start, e.end), (3, 10));
    }

    #[test]
    fn map_items_parse_for_the_type_layer_to_resolve() {
        let doc = whole("${doc.title[0]}");
        assert_eq!(doc.root, Root::Item("doc".into()));
        assert_eq!(doc.path, [PathSegment::Field("title".into()), PathSegment::Index(0)]);
        assert_eq!(whole("${map.index}").root, Root::MapIndex);
        // Whatever the type layer does not find in scope, it reports as an unknown root.
        assert_eq!(unknown_root("inputs", "inputs.x").1.as_deref(), Some("write `input`"));
    }

    #[test]
    fn display_round_trips() {
        for s in ["input.items[0].name", "steps.a.output", "execution.id", "workflow.id", "doc.a[1]", "map.index"] {
            assert_eq!(whole(&format!("${{{s}}}")).to_string(), s);
        }
    }
}
