//! The compiler's view of JSON Schema: the shapes data can take, read from
//! agent and workflow schemas, and the contract's rules for when a
//! producer's shape fits a consumer's field.
//!
//! Only what generated Rust types can express is accepted; every other
//! construct is reported by name rather than silently ignored.

use std::fmt;

use indexmap::IndexMap;

use serde_json::{Map, Value};

/// The shape of a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// No constraint (`{}`, `true`, `serde_json::Value`): checked at run time only.
    Any,
    /// `null`.
    Null,
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// A string, possibly limited to some values.
    String(Option<Vec<String>>),
    /// A list of items of one shape.
    Array(Box<Ty>),
    /// An object with known fields.
    Object(ObjectTy),
    /// A map from strings to values of one shape.
    Map(Box<Ty>),
    /// A value that may be absent or null.
    Optional(Box<Ty>),
}

/// An object's fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObjectTy {
    /// Fields by name, in the schema's order (equality ignores the order).
    /// Fields beyond these are never read or written: the generated Rust
    /// struct has exactly these.
    pub fields: IndexMap<String, Field>,
}

/// One field of an object.
#[derive(Debug, Clone)]
pub struct Field {
    /// Its shape.
    pub ty: Ty,
    /// Whether it must be present.
    pub required: bool,
    /// Its schema's `description`, for doc comments (not part of the shape).
    pub description: Option<String>,
}

impl PartialEq for Field {
    /// Shapes compare equal whatever their descriptions say.
    fn eq(&self, other: &Self) -> bool {
        self.ty == other.ty && self.required == other.required
    }
}

impl Ty {
    /// The shape with any optionality removed.
    pub fn required(&self) -> &Ty {
        match self {
            Ty::Optional(inner) => inner.required(),
            other => other,
        }
    }

    /// Whether it may be absent.
    pub fn is_optional(&self) -> bool {
        matches!(self, Ty::Optional(_))
    }

    /// Wraps it as optional (once).
    pub fn optional(self) -> Ty {
        match self {
            Ty::Optional(_) => self,
            other => Ty::Optional(Box::new(other)),
        }
    }

    /// Whether it can be rendered into an interpolated string.
    pub fn is_scalar(&self) -> bool {
        matches!(self, Ty::Boolean | Ty::Integer | Ty::Number | Ty::String(_) | Ty::Any)
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Any => f.write_str("any value"),
            Ty::Null => f.write_str("null"),
            Ty::Boolean => f.write_str("boolean"),
            Ty::Integer => f.write_str("integer"),
            Ty::Number => f.write_str("number"),
            Ty::String(None) => f.write_str("string"),
            Ty::String(Some(values)) => {
                let shown: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
                write!(f, "string enum ({})", shown.join(" | "))
            }
            Ty::Array(item) => write!(f, "array of {item}"),
            Ty::Object(o) if o.fields.is_empty() => f.write_str("object"),
            Ty::Object(o) => {
                let names: Vec<&str> = o.fields.keys().map(String::as_str).collect();
                write!(f, "object {{{}}}", names.join(", "))
            }
            Ty::Map(v) if **v == Ty::Any => f.write_str("object"),
            Ty::Map(v) => write!(f, "map of {v}"),
            Ty::Optional(inner) => write!(f, "optional {inner}"),
        }
    }
}

impl Ty {
    /// The whole shape, fields and all: `{id: integer, tags: [string]}`.
    pub fn detailed(&self) -> String {
        match self {
            Ty::Object(o) => {
                let fields: Vec<String> =
                    o.fields.iter().map(|(name, f)| format!("{name}: {}", f.ty.detailed())).collect();
                format!("{{{}}}", fields.join(", "))
            }
            Ty::Array(item) => format!("[{}]", item.detailed()),
            Ty::Map(v) => format!("map of {}", v.detailed()),
            Ty::Optional(inner) => format!("{}?", inner.detailed()),
            other => other.to_string(),
        }
    }
}

/// A construct in a schema the compiler cannot use, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaProblem {
    /// What sort of problem.
    pub kind: ProblemKind,
    /// JSON pointer relative to the schema's root.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// What to do instead.
    pub help: Option<String>,
}

/// What sort of problem a schema has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// A construct generated types cannot express.
    Unsupported,
    /// A name (a property, an enum value) no Rust identifier can stand for.
    NotAnIdentifier,
}

/// Keywords that only annotate or validate values, and change no shape.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$anchor",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "contentEncoding",
    "contentMediaType",
];

/// Keywords that shape values and are understood here.
const SHAPING: &[&str] = &[
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "const",
    "additionalProperties",
    "$ref",
    "$defs",
    "definitions",
    "anyOf",
    "oneOf",
];

/// Keywords of JSON Schema that generated types cannot express.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("if", "conditional schemas (`if`/`then`/`else`)"),
    ("then", "conditional schemas (`if`/`then`/`else`)"),
    ("else", "conditional schemas (`if`/`then`/`else`)"),
    ("not", "`not`"),
    ("allOf", "`allOf`"),
    ("patternProperties", "`patternProperties`"),
    ("propertyNames", "`propertyNames`"),
    ("dependentSchemas", "`dependentSchemas`"),
    ("dependentRequired", "`dependentRequired`"),
    ("dependencies", "`dependencies`"),
    ("unevaluatedProperties", "`unevaluatedProperties`"),
    ("unevaluatedItems", "`unevaluatedItems`"),
    ("prefixItems", "tuples (`prefixItems`)"),
    ("additionalItems", "`additionalItems`"),
    ("contains", "`contains`"),
    ("minContains", "`minContains`"),
    ("maxContains", "`maxContains`"),
    ("$dynamicRef", "`$dynamicRef`"),
    ("$dynamicAnchor", "`$dynamicAnchor`"),
    ("$recursiveRef", "`$recursiveRef`"),
    ("$vocabulary", "`$vocabulary`"),
];

/// Reads a JSON Schema into a shape, reporting every construct it cannot use.
pub fn from_schema(schema: &Value) -> Result<Ty, Vec<SchemaProblem>> {
    let mut reader =
        Reader { root: schema, problems: Vec::new(), resolving: Vec::new(), read: 0, depth: 0, cut_off: false };
    let ty = reader.read(schema, "");
    if reader.problems.is_empty() {
        Ok(ty)
    } else {
        Err(reader.problems)
    }
}

struct Reader<'a> {
    root: &'a Value,
    problems: Vec<SchemaProblem>,
    /// `$ref` targets being read, to cut recursive types.
    resolving: Vec<String>,
    /// Subschemas read so far: shared `$defs` are expanded per use, so a
    /// schema built to explode is cut off rather than read for ever.
    read: usize,
    /// Current nesting, bounded to keep the stack safe.
    depth: usize,
    /// Whether a limit was hit (reported once).
    cut_off: bool,
}

/// Most subschemas one schema may expand to.
const MAX_SUBSCHEMAS: usize = 20_000;
/// Deepest nesting of subschemas (through `$ref`s too).
const MAX_SCHEMA_DEPTH: usize = 64;

impl<'a> Reader<'a> {
    fn problem(&mut self, pointer: String, message: String, help: Option<String>) {
        self.problems.push(SchemaProblem { kind: ProblemKind::Unsupported, pointer, message, help });
    }

    fn not_an_identifier(&mut self, pointer: String, message: String) {
        self.problems.push(SchemaProblem {
            kind: ProblemKind::NotAnIdentifier,
            pointer,
            message,
            help: Some("generated Rust types name it: choose another".into()),
        });
    }

    fn read(&mut self, schema: &'a Value, at: &str) -> Ty {
        self.read += 1;
        if self.read > MAX_SUBSCHEMAS || self.depth >= MAX_SCHEMA_DEPTH {
            if !self.cut_off {
                self.cut_off = true;
                self.problem(
                    at.into(),
                    format!("the schema expands to more than {MAX_SUBSCHEMAS} subschemas or nests more than {MAX_SCHEMA_DEPTH} deep"),
                    Some("simplify it: share fewer `$defs` along more paths, or use `{}` for data checked at run time".into()),
                );
            }
            return Ty::Any;
        }
        self.depth += 1;
        let ty = self.read_inner(schema, at);
        self.depth -= 1;
        ty
    }

    fn read_inner(&mut self, schema: &'a Value, at: &str) -> Ty {
        let obj = match schema {
            Value::Bool(true) => return Ty::Any,
            Value::Bool(false) => {
                self.problem(
                    at.into(),
                    "the schema `false` accepts no value".into(),
                    Some("remove the field instead".into()),
                );
                return Ty::Any;
            }
            Value::Object(o) => o,
            _ => {
                self.problem(at.into(), "a schema must be an object or a boolean".into(), None);
                return Ty::Any;
            }
        };
        self.screen_keywords(obj, at);
        if let Some(reference) = obj.get("$ref") {
            return self.read_ref(reference, &format!("{at}/$ref"));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = obj.get(key) {
                return self.read_nullable_union(key, branches, &format!("{at}/{key}"));
            }
        }
        if let Some(c) = obj.get("const") {
            return match c {
                Value::String(s) => {
                    let here = format!("{at}/const");
                    self.check_variants(std::slice::from_ref(s), &here, |_| here.clone());
                    Ty::String(Some(vec![s.clone()]))
                }
                other => literal_ty(other),
            };
        }
        if let Some(values) = obj.get("enum") {
            return self.read_enum(values, &format!("{at}/enum"));
        }
        let (ty_name, nullable) = match obj.get("type") {
            None => (None, false),
            Some(Value::String(t)) => (Some(t.as_str()), false),
            Some(Value::Array(ts)) => {
                let names: Vec<&str> = ts.iter().filter_map(Value::as_str).collect();
                let non_null: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
                match non_null.as_slice() {
                    [one] => (Some(*one), names.contains(&"null")),
                    [] => (Some("null"), false),
                    _ => {
                        self.problem(
                            format!("{at}/type"),
                            format!("a value of several types ({}) cannot be given a Rust type", non_null.join(", ")),
                            Some("choose one type, or use `{}` for any value".into()),
                        );
                        return Ty::Any;
                    }
                }
            }
            Some(_) => {
                self.problem(format!("{at}/type"), "`type` must be a string or a list of strings".into(), None);
                return Ty::Any;
            }
        };
        let inferred = ty_name.or_else(|| {
            if obj.contains_key("properties") || obj.contains_key("additionalProperties") {
                Some("object")
            } else if obj.contains_key("items") {
                Some("array")
            } else {
                None
            }
        });
        let ty = match inferred {
            None => Ty::Any,
            Some("null") => Ty::Null,
            Some("boolean") => Ty::Boolean,
            Some("integer") => Ty::Integer,
            Some("number") => Ty::Number,
            Some("string") => Ty::String(None),
            Some("array") => match obj.get("items") {
                Some(items) => Ty::Array(Box::new(self.read(items, &format!("{at}/items")))),
                None => Ty::Array(Box::new(Ty::Any)),
            },
            Some("object") => self.read_object(obj, at),
            Some(other) => {
                self.problem(
                    format!("{at}/type"),
                    format!("unknown type `{other}`"),
                    Some("JSON Schema types are null, boolean, integer, number, string, array and object".into()),
                );
                Ty::Any
            }
        };
        if nullable {
            ty.optional()
        } else {
            ty
        }
    }

    fn screen_keywords(&mut self, obj: &Map<String, Value>, at: &str) {
        for key in obj.keys() {
            if let Some((_, what)) = UNSUPPORTED.iter().find(|(k, _)| k == key) {
                if (key == "then" || key == "else") && obj.contains_key("if") {
                    continue; // reported once, at `if`
                }
                self.problem(
                    format!("{at}/{key}"),
                    format!("{what} cannot be used in agent and workflow schemas"),
                    Some("generated Rust types cannot express it: describe the data with `type`, `properties`, `required`, `items` and `enum`".into()),
                );
            } else if !ANNOTATIONS.contains(&key.as_str()) && !SHAPING.contains(&key.as_str()) {
                let known = ANNOTATIONS.iter().chain(SHAPING).copied();
                let help = crate::diagnostics::suggestion(key, known)
                    .unwrap_or_else(|| "remove it; orchestr8 reads only JSON Schema keywords".into());
                self.problem(format!("{at}/{key}"), format!("unknown JSON Schema keyword `{key}`"), Some(help));
            }
        }
    }

    fn read_ref(&mut self, reference: &'a Value, at: &str) -> Ty {
        let Some(target) = reference.as_str() else {
            self.problem(at.into(), "`$ref` must be a string".into(), None);
            return Ty::Any;
        };
        let Some(fragment) = target.strip_prefix('#') else {
            self.problem(
                at.into(),
                format!("external `$ref` \"{target}\" is not supported"),
                Some("put the schema under `$defs` in the same document and refer to it as `#/$defs/NAME`".into()),
            );
            return Ty::Any;
        };
        if self.resolving.iter().any(|r| r == target) {
            // A recursive type: its shape below this point is checked at run time.
            return Ty::Any;
        }
        let Some(resolved) = self.root.pointer(fragment) else {
            self.problem(
                at.into(),
                format!("`$ref` \"{target}\" points at nothing"),
                Some("define it under `$defs`".into()),
            );
            return Ty::Any;
        };
        self.resolving.push(target.to_owned());
        let ty = self.read(resolved, fragment);
        self.resolving.pop();
        ty
    }

    fn read_nullable_union(&mut self, key: &str, branches: &'a Value, at: &str) -> Ty {
        let Some(list) = branches.as_array() else {
            self.problem(at.into(), format!("`{key}` must be a list of schemas"), None);
            return Ty::Any;
        };
        let is_null = |s: &Value| s.get("type").and_then(Value::as_str) == Some("null");
        let others: Vec<(usize, &'a Value)> = list.iter().enumerate().filter(|(_, s)| !is_null(s)).collect();
        // Documented enum values (schemars' form): `oneOf` of string constants.
        let constants: Option<Vec<String>> =
            others.iter().map(|(_, s)| s.get("const").and_then(Value::as_str).map(str::to_owned)).collect();
        if let Some(values) = constants.filter(|v| v.len() > 1) {
            // schemars' documented enum: `oneOf` of `const`s, each at `ITEM/const`.
            let positions: Vec<usize> = others.iter().map(|(i, _)| *i).collect();
            self.check_variants(&values, at, |i| format!("{at}/{}/const", positions[i]));
            let ty = Ty::String(Some(values));
            return if others.len() < list.len() { ty.optional() } else { ty };
        }
        match others.as_slice() {
            [(i, one)] if list.len() == 2 => self.read(one, &format!("{at}/{i}")).optional(),
            _ => {
                self.problem(
                    at.into(),
                    format!("`{key}` is supported only as an optional value: one schema and `{{\"type\": \"null\"}}`"),
                    Some(
                        "a union of several shapes has no single Rust type; use one shape, or `{}` for any value"
                            .into(),
                    ),
                );
                Ty::Any
            }
        }
    }

    /// Each string enum value becomes a Rust variant: one that cannot be an
    /// identifier, and two that name the same one, are reported.
    fn check_variants(&mut self, values: &[String], at: &str, pointer_of: impl Fn(usize) -> String) {
        for (i, v) in values.iter().enumerate() {
            if let Err(e) = orchestr8_agent_decl::variant_ident(v, proc_macro2::Span::call_site()) {
                self.not_an_identifier(
                    pointer_of(i),
                    format!("enum value \"{v}\" would be the Rust variant `{}`, a keyword", e.ident),
                );
            }
            let variant = orchestr8_agent_decl::variant_name(v);
            if let Some(w) = values[..i].iter().find(|w| orchestr8_agent_decl::variant_name(w) == variant) {
                self.problem(
                    at.into(),
                    format!("enum values \"{w}\" and \"{v}\" would both be the Rust variant `{variant}`"),
                    Some("make the values differ in their letters or digits".into()),
                );
            }
        }
    }

    fn read_enum(&mut self, values: &Value, at: &str) -> Ty {
        let Some(list) = values.as_array().filter(|l| !l.is_empty()) else {
            self.problem(at.into(), "`enum` must be a non-empty list".into(), None);
            return Ty::Any;
        };
        let strings: Option<Vec<String>> = list.iter().map(|v| v.as_str().map(str::to_owned)).collect();
        match strings {
            Some(s) => {
                self.check_variants(&s, at, |i| format!("{at}/{i}"));
                Ty::String(Some(s))
            }
            None => {
                self.problem(
                    at.into(),
                    "only enums of strings are supported".into(),
                    Some("use strings for the values, or `type` with `minimum`/`maximum` for numbers".into()),
                );
                Ty::Any
            }
        }
    }

    fn read_object(&mut self, obj: &'a Map<String, Value>, at: &str) -> Ty {
        let required: Vec<&str> = match obj.get("required") {
            Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let mut fields = IndexMap::new();
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, schema) in props {
                let here = format!("{at}/properties/{}", orchestr8_schema::source::escape_pointer_token(name));
                let ty = self.read(schema, &here);
                let is_required = required.contains(&name.as_str());
                let ty = if is_required { ty } else { ty.optional() };
                let description = schema.get("description").and_then(Value::as_str).map(str::to_owned);
                fields.insert(name.clone(), Field { ty, required: is_required, description });
            }
        }
        for name in &required {
            if !fields.contains_key(*name) {
                self.problem(
                    format!("{at}/required"),
                    format!("`{name}` is required but not among `properties`"),
                    Some(format!("add `{name}` to `properties`, or remove it from `required`")),
                );
            }
        }
        match obj.get("additionalProperties") {
            // An object without declared fields is a free-form map.
            None | Some(Value::Bool(true)) if fields.is_empty() => Ty::Map(Box::new(Ty::Any)),
            None | Some(Value::Bool(_)) => Ty::Object(ObjectTy { fields }),
            Some(values) if fields.is_empty() => {
                Ty::Map(Box::new(self.read(values, &format!("{at}/additionalProperties"))))
            }
            Some(_) => {
                self.problem(
                    format!("{at}/additionalProperties"),
                    "`additionalProperties` with a schema is supported only for maps (an object without `properties`)"
                        .into(),
                    None,
                );
                Ty::Object(ObjectTy { fields })
            }
        }
    }
}

/// The shape of a JSON literal.
pub fn literal_ty(value: &Value) -> Ty {
    match value {
        Value::Null => Ty::Null,
        Value::Bool(_) => Ty::Boolean,
        Value::Number(n) if n.is_i64() || n.is_u64() => Ty::Integer,
        Value::Number(_) => Ty::Number,
        Value::String(s) => Ty::String(Some(vec![s.clone()])),
        Value::Array(_) => Ty::Array(Box::new(Ty::Any)),
        Value::Object(_) => Ty::Map(Box::new(Ty::Any)),
    }
}

/// Whether `written` says what `declared` says, except where `declared` is
/// any value (a named type, which the written schema may describe).
pub fn agrees_but_for_any(declared: &Ty, written: &Ty) -> bool {
    match (declared, written) {
        (Ty::Any, _) => true,
        (Ty::Optional(a), Ty::Optional(b)) | (Ty::Array(a), Ty::Array(b)) | (Ty::Map(a), Ty::Map(b)) => {
            agrees_but_for_any(a, b)
        }
        (Ty::Object(a), Ty::Object(b)) => {
            a.fields.len() == b.fields.len()
                && a.fields.iter().all(|(name, f)| {
                    b.fields.get(name).is_some_and(|g| f.required == g.required && agrees_but_for_any(&f.ty, &g.ty))
                })
        }
        (a, b) => a == b,
    }
}

/// Why a value does not fit a field.
#[derive(Debug, Clone, PartialEq)]
pub enum Misfit {
    /// Shapes differ.
    Type {
        /// Where below the value (`.a[]`), empty at the top.
        path: String,
        /// What the field takes.
        expected: Box<Ty>,
        /// What the value is.
        found: Box<Ty>,
    },
    /// The value may be absent and the field is required.
    MaybeAbsent {
        /// Where below the value.
        path: String,
    },
    /// The value lacks a field the consumer requires.
    MissingField {
        /// Where below the value.
        path: String,
        /// The field.
        field: String,
    },
}

/// Whether a value of shape `found` fits a field of shape `expected`, by
/// the contract's rules: an integer fits a number, a required value an
/// optional field, a string enum a string; never the reverse.
pub fn fits(found: &Ty, expected: &Ty) -> Result<(), Misfit> {
    fits_at(found, expected, &mut String::new())
}

fn fits_at(found: &Ty, expected: &Ty, path: &mut String) -> Result<(), Misfit> {
    let mismatch = |path: &str| Misfit::Type {
        path: path.to_owned(),
        expected: Box::new(expected.clone()),
        found: Box::new(found.clone()),
    };
    match (found, expected) {
        (_, Ty::Any) | (Ty::Any, _) => Ok(()),
        (Ty::Optional(f), Ty::Optional(e)) => fits_at(f, e, path),
        (Ty::Null, Ty::Optional(_)) => Ok(()),
        (f, Ty::Optional(e)) => fits_at(f, e, path),
        (Ty::Optional(_), _) => Err(Misfit::MaybeAbsent { path: path.clone() }),
        (Ty::Null, Ty::Null) | (Ty::Boolean, Ty::Boolean) | (Ty::Integer, Ty::Integer) => Ok(()),
        (Ty::Integer | Ty::Number, Ty::Number) => Ok(()),
        (Ty::String(_), Ty::String(None)) => Ok(()),
        (Ty::String(Some(f)), Ty::String(Some(e))) if f.iter().all(|v| e.contains(v)) => Ok(()),
        (Ty::Array(f), Ty::Array(e)) => nested(path, "[]", |p| fits_at(f, e, p)),
        (Ty::Map(f), Ty::Map(e)) => nested(path, "[*]", |p| fits_at(f, e, p)),
        (Ty::Object(f), Ty::Map(e)) => {
            for (name, field) in &f.fields {
                nested(path, &format!(".{name}"), |p| fits_at(&field.ty, e, p))?;
            }
            Ok(())
        }
        (Ty::Object(f), Ty::Object(e)) => {
            for (name, want) in &e.fields {
                match f.fields.get(name) {
                    Some(have) => nested(path, &format!(".{name}"), |p| fits_at(&have.ty, &want.ty, p))?,
                    None if want.required => {
                        return Err(Misfit::MissingField { path: path.clone(), field: name.clone() })
                    }
                    None => {}
                }
            }
            Ok(())
        }
        _ => Err(mismatch(path)),
    }
}

fn nested(path: &mut String, segment: &str, f: impl FnOnce(&mut String) -> Result<(), Misfit>) -> Result<(), Misfit> {
    let len = path.len();
    path.push_str(segment);
    let result = f(path);
    path.truncate(len);
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ty(schema: Value) -> Ty {
        from_schema(&schema).unwrap()
    }

    #[test]
    fn reads_objects_optionals_enums_and_refs() {
        let t = ty(json!({
            "type": "object",
            "properties": {
                "a": {"type": "string"},
                "b": {"type": ["integer", "null"]},
                "c": {"$ref": "#/$defs/Mood"},
                "d": {"type": "array", "items": {"type": "number"}}
            },
            "required": ["a", "c"],
            "$defs": {"Mood": {"enum": ["calm", "angry"]}}
        }));
        let Ty::Object(o) = t else { panic!() };
        assert_eq!(o.fields["a"].ty, Ty::String(None));
        assert_eq!(o.fields["b"].ty, Ty::Optional(Box::new(Ty::Integer)));
        assert_eq!(o.fields["c"].ty, Ty::String(Some(vec!["calm".into(), "angry".into()])));
        assert_eq!(o.fields["d"].ty, Ty::Optional(Box::new(Ty::Array(Box::new(Ty::Number)))));
    }

    #[test]
    fn reports_unsupported_constructs_by_name() {
        let problems = from_schema(&json!({
            "type": "object",
            "properties": {"x": {"if": {"type": "string"}, "then": {}}, "y": {"$ref": "other.json#/a"}},
            "propertys": {}
        }))
        .unwrap_err();
        let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert!(messages.iter().any(|m| m.contains("if")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("external `$ref`")), "{messages:?}");
        assert!(problems
            .iter()
            .any(|p| p.pointer == "/propertys" && p.help.as_deref() == Some("did you mean `properties`?")));
    }

    #[test]
    fn recursive_refs_terminate() {
        let t = ty(
            json!({"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}}),
        );
        assert!(matches!(t, Ty::Object(_)));
    }

    #[test]
    fn fit_rules_of_the_contract() {
        let s = Ty::String(None);
        let e = Ty::String(Some(vec!["a".into()]));
        assert!(fits(&Ty::Integer, &Ty::Number).is_ok());
        assert!(fits(&Ty::Number, &Ty::Integer).is_err());
        assert!(fits(&s, &s.clone().optional()).is_ok());
        assert!(matches!(fits(&s.clone().optional(), &s), Err(Misfit::MaybeAbsent { .. })));
        assert!(fits(&e, &s).is_ok());
        assert!(fits(&s, &e).is_err());
        assert!(fits(&Ty::Array(Box::new(Ty::Integer)), &Ty::Array(Box::new(Ty::Number))).is_ok());
        let err = fits(&Ty::Array(Box::new(Ty::Number)), &Ty::Array(Box::new(Ty::Integer))).unwrap_err();
        assert!(matches!(err, Misfit::Type { ref path, .. } if path == "[]"));
    }
}
