//! Value expressions into typed [`Expr`]s: each reference becomes a read of
//! the state and a conversion into the consumer's Rust type; each literal a
//! constant of that type, checked to fit it (a `300` into a `u8` field is a
//! located error here, not a crate that does not build).

use std::collections::BTreeMap;

use orchestr8_schema::expr::{parse_template, PathSegment, Reference, Root as RefRoot, Segment, Template};
use orchestr8_schema::source::escape_pointer_token;
use proc_macro2::Ident;
use serde_json::Value;

use super::{internal, Lowered, Lowering};
use crate::checked::types::{FloatTy, IntTy, RustTy};
use crate::checked::value::{Absent, Access, Const, Conversion, Expr, Json, JsonKey, Piece, Read, Render, Root};
use crate::diagnostics::{Code, Diagnostic};
use crate::validate::Doc;

/// What a step's output is, for the steps and the output that read it.
pub struct Slot {
    /// The state's field holding it.
    pub field: Ident,
    /// Its type.
    pub ty: RustTy,
    /// Whether the step may fail and go on (`onError: "continue"`).
    pub may_be_empty: bool,
    /// How many maps enclose the step: its slot is in the item state of the
    /// innermost one (0: in the workflow's state).
    pub level: usize,
}

/// A map enclosing the steps whose values are lowered.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its item's name (`as`).
    pub item_name: String,
    /// Its item's type.
    pub item: RustTy,
}

/// What value expressions can read, and where to report what they cannot.
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    /// The workflow input's type.
    pub input: &'a RustTy,
    /// Each agent step's output, by step id.
    pub slots: &'a BTreeMap<String, Slot>,
    /// `metadata.id` and `metadata.version`.
    pub workflow: (&'a str, &'a str),
    /// The document, to locate findings.
    pub doc: &'a Doc<'a>,
    /// The maps enclosing the steps read from, outermost first.
    pub maps: &'a [Frame],
    /// The steps, inside a switch's case, that may not have run where the
    /// expression is read: their outputs read as possibly empty.
    pub skippable: &'a std::collections::BTreeSet<String>,
}

impl Scope<'_> {
    /// An owned value of type `target` for the value expression `value` at `pointer`.
    pub fn value(&self, value: &Value, target: &RustTy, pointer: &str, out: &mut Vec<Diagnostic>) -> Lowering<Expr> {
        if let RustTy::Option(inner) = target {
            return match value {
                Value::Null => Ok(Expr::Const(Const::None)),
                Value::String(s) => match self.template(s)? {
                    Template::Whole(r) => {
                        let (mut read, from) = self.read(&r.value)?;
                        if read.path.last() == Some(&Access::Optional) {
                            // An optional value into an optional field: the `Option` itself,
                            // when nothing before it may be absent.
                            read.path.pop();
                            if !read.may_be_absent() {
                                let conversion = convert(&RustTy::Option(Box::new(from)), target)?;
                                return Ok(Expr::Read { read, conversion, absent: Absent::Never });
                            }
                            read.path.push(Access::Optional);
                        }
                        if matches!(from, RustTy::Json | RustTy::Named(_)) {
                            // Through serde as a whole: an absent value and `null` are both `None`.
                            let conversion = Conversion::Serde(target.clone());
                            return Ok(Expr::Read { read, conversion, absent: Absent::Null });
                        }
                        let conversion = convert(&from, inner)?;
                        if let Some(constant) = constant_of(&conversion).filter(|_| !read.may_be_absent()) {
                            return Ok(Expr::Some(Box::new(constant)));
                        }
                        Ok(if read.may_be_absent() {
                            Expr::Read { read, conversion, absent: Absent::None }
                        } else {
                            Expr::Some(Box::new(Expr::Read { read, conversion, absent: Absent::Never }))
                        })
                    }
                    _ => Ok(Expr::Some(Box::new(self.value(value, inner, pointer, out)?))),
                },
                _ => Ok(Expr::Some(Box::new(self.value(value, inner, pointer, out)?))),
            };
        }
        if let RustTy::Json = target {
            return Ok(Expr::Json(self.json(value)?));
        }
        let literal = |c| Ok(Expr::Const(c));
        let serde = |value: Expr| Ok(Expr::Serde { value: Box::new(value), target: target.clone() });
        match (value, target) {
            (Value::String(s), _) => match self.template(s)? {
                Template::Literal(text) => match target {
                    RustTy::String => literal(Const::Str(text)),
                    RustTy::Enum(e) => match e.variants.iter().find(|v| v.json == text) {
                        Some(v) => literal(Const::Variant(e.path.clone(), v.ident.clone())),
                        None => internal(format!("\"{text}\" is not a value of {}", target.shown())),
                    },
                    RustTy::Named(_) => serde(Expr::Const(Const::Str(text))),
                    _ => internal(format!("\"{text}\" cannot become {}", target.shown())),
                },
                Template::Whole(r) => {
                    let (read, from) = self.read(&r.value)?;
                    let conversion = convert(&from, target)?;
                    if let Some(constant) = constant_of(&conversion).filter(|_| !read.may_be_absent()) {
                        // Nothing of the source is kept: no read.
                        return Ok(constant);
                    }
                    let absent = if read.may_be_absent() { Absent::Error } else { Absent::Never };
                    Ok(Expr::Read { read, conversion, absent })
                }
                Template::Interpolated(segments) => {
                    let text = Expr::Text(self.pieces(&segments)?);
                    match target {
                        RustTy::String => Ok(text),
                        RustTy::Named(_) => serde(text),
                        _ => internal(format!("text cannot become {}", target.shown())),
                    }
                }
            },
            (Value::Bool(b), RustTy::Bool) => literal(Const::Bool(*b)),
            (Value::Bool(b), RustTy::Named(_)) => serde(Expr::Const(Const::Bool(*b))),
            (Value::Number(n), RustTy::Int(t)) => self.integer(n, *t, pointer, out).map(Expr::Const),
            (Value::Number(n), RustTy::Float(t)) => self.float(n, *t, pointer, out).map(Expr::Const),
            (Value::Number(_) | Value::Null, RustTy::Named(_)) => serde(Expr::Json(Json::Literal(value.clone()))),
            (Value::Array(items), RustTy::Vec(item)) => Ok(Expr::List(every(
                items.iter().enumerate().map(|(i, v)| self.value(v, item, &format!("{pointer}/{i}"), out)),
            )?)),
            (Value::Object(map), RustTy::Struct(s)) => {
                let fields = every(s.fields.iter().map(|f| {
                    let value = match map.get(&f.json) {
                        Some(v) => {
                            self.value(v, &f.ty, &format!("{pointer}/{}", escape_pointer_token(&f.json)), out)?
                        }
                        None => Expr::Const(Const::None),
                    };
                    Ok((f.ident.clone(), value))
                }))?;
                Ok(Expr::Struct { path: s.path.clone(), fields })
            }
            (Value::Object(map), RustTy::Map(kind, value_ty)) => Ok(Expr::Map {
                kind: *kind,
                entries: every(map.iter().map(|(k, v)| {
                    Ok((k.clone(), self.value(v, value_ty, &format!("{pointer}/{}", escape_pointer_token(k)), out)?))
                }))?,
            }),
            (Value::Array(_) | Value::Object(_), RustTy::Named(_)) => serde(Expr::Json(self.json(value)?)),
            _ => internal(format!("`{value}` cannot become {}", target.shown())),
        }
    }

    /// The template of a string, with the references whose value is known
    /// when compiling (`workflow.id`, `workflow.version`) made text.
    pub fn template(&self, s: &str) -> Lowering<Template> {
        let known = |r: &Reference| match (&r.root, r.path.is_empty()) {
            (RefRoot::WorkflowId, true) => Some(self.workflow.0.to_owned()),
            (RefRoot::WorkflowVersion, true) => Some(self.workflow.1.to_owned()),
            _ => None,
        };
        Ok(match parse_template(s).map_err(|e| Lowered::Internal(e.message))? {
            Template::Whole(r) => match known(&r.value) {
                Some(text) => Template::Literal(text),
                None => Template::Whole(r),
            },
            Template::Interpolated(segments) => {
                let mut merged: Vec<Segment> = Vec::new();
                for segment in segments {
                    let text = match &segment {
                        Segment::Text(t) => Some(t.clone()),
                        Segment::Reference(r) => known(&r.value),
                    };
                    match (text, merged.last_mut()) {
                        (Some(t), Some(Segment::Text(last))) => last.push_str(&t),
                        (Some(t), _) => merged.push(Segment::Text(t)),
                        (None, _) => merged.push(segment),
                    }
                }
                match merged.as_slice() {
                    [Segment::Text(t)] => Template::Literal(t.clone()),
                    _ => Template::Interpolated(merged),
                }
            }
            literal => literal,
        })
    }

    /// An integer literal of type `t`, or a located error when it does not fit.
    fn integer(&self, n: &serde_json::Number, t: IntTy, pointer: &str, out: &mut Vec<Diagnostic>) -> Lowering<Const> {
        let value = n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
        let Some(value) = value else { return internal(format!("{n} is not an integer")) };
        let (min, max) = t.range();
        if (min..=max).contains(&value) {
            return Ok(Const::Int(value, t));
        }
        let message = format!("{value} does not fit the field's Rust type `{}` ({min} to {max})", t.name());
        let label = format!("out of range for `{}`", t.name());
        self.out_of_range(
            pointer,
            message,
            label,
            format!("give a value from {min} to {max}, or widen the agent's field"),
            out,
        )
    }

    /// A float literal of type `t`, or a located error when it is not finite there.
    fn float(&self, n: &serde_json::Number, t: FloatTy, pointer: &str, out: &mut Vec<Diagnostic>) -> Lowering<Const> {
        let Some(value) = n.as_f64() else { return internal(format!("{n} is not a number")) };
        let finite = match t {
            FloatTy::F32 => (value as f32).is_finite(),
            FloatTy::F64 => value.is_finite(),
        };
        if finite {
            return Ok(Const::Float(value, t));
        }
        let message = format!("{value:e} is too large for the field's Rust type `{}`", t.name());
        let help = match t {
            FloatTy::F32 => {
                "an `f32` holds magnitudes up to about 3.4e38: give a smaller value, or make the agent's field `f64`"
            }
            FloatTy::F64 => "give a smaller value",
        };
        self.out_of_range(pointer, message, format!("not a finite `{}`", t.name()), help.to_owned(), out)
    }

    /// Reports a literal that its field's Rust type cannot hold.
    fn out_of_range(
        &self,
        pointer: &str,
        message: String,
        label: String,
        help: String,
        out: &mut Vec<Diagnostic>,
    ) -> Lowering<Const> {
        out.push(
            Diagnostic::error(Code::LiteralOutOfRange, message, pointer, self.doc.value(pointer))
                .with_label(label)
                .with_help(help),
        );
        Err(Lowered::Reported)
    }

    /// A `serde_json::Value` for `value`.
    pub fn json(&self, value: &Value) -> Lowering<Json> {
        Ok(match value {
            Value::String(s) => match self.template(s)? {
                Template::Literal(text) => Json::Literal(Value::String(text)),
                Template::Whole(r) => Json::Read(self.read(&r.value)?.0),
                Template::Interpolated(segments) => Json::Text(self.pieces(&segments)?),
            },
            Value::Array(items) => Json::Array(items.iter().map(|v| self.json(v)).collect::<Lowering<_>>()?),
            Value::Object(map) => {
                Json::Object(map.iter().map(|(k, v)| Ok((k.clone(), self.json(v)?))).collect::<Lowering<_>>()?)
            }
            scalar => Json::Literal(scalar.clone()),
        })
    }

    /// The pieces of interpolated text.
    pub fn pieces(&self, segments: &[Segment]) -> Lowering<Vec<Piece>> {
        segments
            .iter()
            .map(|segment| match segment {
                Segment::Text(t) => Ok(Piece::Text(t.clone())),
                Segment::Reference(r) => {
                    let (read, ty) = self.read(&r.value)?;
                    let render = match ty {
                        RustTy::String => Render::Str,
                        RustTy::Bool | RustTy::Int(_) | RustTy::Float(_) => Render::Display,
                        RustTy::Enum(e) => Render::Enum(e),
                        RustTy::Json | RustTy::Named(_) => Render::Serde,
                        other => return internal(format!("{} cannot be interpolated", other.shown())),
                    };
                    Ok(Piece::Value(read, render))
                }
            })
            .collect()
    }

    /// The read of `reference`, and the type it reads (optionality is the read's).
    pub fn read(&self, reference: &Reference) -> Lowering<(Read, RustTy)> {
        let shown = reference.to_string();
        // The workflow's state is `level` states up; each map's item state one less.
        let level = self.maps.len();
        let (up, root, mut ty) = match &reference.root {
            RefRoot::Input => (level, Root::Input, self.input.clone()),
            RefRoot::StepOutput(id) => {
                let Some(slot) = self.slots.get(id) else { return internal(format!("no output type for step {id}")) };
                let Some(up) = level.checked_sub(slot.level) else {
                    return internal(format!("{shown}: step {id} is inside a map this step is not in"));
                };
                let may_be_empty = slot.may_be_empty || self.skippable.contains(id);
                let root = Root::Slot { step: id.clone(), field: slot.field.clone(), may_be_empty };
                (up, root, slot.ty.clone())
            }
            RefRoot::ExecutionId => (level, Root::ExecutionId, RustTy::String),
            RefRoot::CorrelationId => (level, Root::CorrelationId, RustTy::String),
            RefRoot::WorkflowId | RefRoot::WorkflowVersion => {
                return internal(format!("{shown} is known when compiling: `template` makes it text"))
            }
            RefRoot::Item(name) => {
                let Some(k) = self.maps.iter().rposition(|f| f.item_name == *name) else {
                    return internal(format!("{shown}: no enclosing map names its item {name}"));
                };
                (level - (k + 1), Root::Item, self.maps[k].item.clone())
            }
            RefRoot::MapIndex if level > 0 => (0, Root::MapIndex, RustTy::Int(IntTy::U64)),
            RefRoot::MapIndex => return internal(format!("{shown} outside any map")),
        };
        let mut path = Vec::new();
        for segment in &reference.path {
            // An `Option` met on the way makes the rest of the path optional.
            ty = unwrap_options(ty, &mut path);
            ty = match (ty, segment) {
                (RustTy::Struct(s), PathSegment::Field(name)) => {
                    let Some(field) = s.fields.into_iter().find(|f| f.json == *name) else {
                        return internal(format!("{shown}: no field {name}"));
                    };
                    path.push(Access::Field(field.ident));
                    field.ty
                }
                (RustTy::Vec(item), PathSegment::Index(i)) => {
                    path.push(Access::Index(*i));
                    *item
                }
                (RustTy::Map(_, value), PathSegment::Field(name)) => {
                    path.push(Access::Key(name.clone()));
                    *value
                }
                (ty @ (RustTy::Json | RustTy::Named(_)), segment) => {
                    // A named type is known to serde alone: it is read through its JSON value.
                    if matches!(ty, RustTy::Named(_)) {
                        path.push(Access::Serialize);
                    }
                    path.push(Access::Json(match segment {
                        PathSegment::Field(name) => JsonKey::Name(name.clone()),
                        PathSegment::Index(i) => JsonKey::Index(*i),
                    }));
                    RustTy::Json
                }
                (ty, _) => return internal(format!("{shown}: cannot follow {segment} into {}", ty.shown())),
            };
        }
        let ty = unwrap_options(ty, &mut path);
        Ok((Read { up, root, path, shown }, ty))
    }
}

/// The value a conversion gives whatever its source, when it keeps nothing of it.
fn constant_of(conversion: &Conversion) -> Option<Expr> {
    match conversion {
        Conversion::Struct { to, fields } => Some(Expr::Struct {
            path: to.clone(),
            fields: fields
                .iter()
                .map(|(ident, from)| {
                    let value = match from {
                        None => Expr::Const(Const::None),
                        Some((_, c)) => constant_of(c)?,
                    };
                    Some((ident.clone(), value))
                })
                .collect::<Option<_>>()?,
        }),
        Conversion::Wrap(inner) => constant_of(inner).map(|e| Expr::Some(Box::new(e))),
        _ => None,
    }
}

/// Every item lowered, so that every literal is checked in one run: the
/// first internal error, else `Reported` if any was, else the items.
fn every<T>(items: impl Iterator<Item = Lowering<T>>) -> Lowering<Vec<T>> {
    let mut out = Vec::new();
    let mut reported = false;
    for item in items {
        match item {
            Ok(v) => out.push(v),
            Err(Lowered::Reported) => reported = true,
            Err(e) => return Err(e),
        }
    }
    if reported {
        Err(Lowered::Reported)
    } else {
        Ok(out)
    }
}

/// A value of the same type: copied, or cloned.
pub fn same(ty: &RustTy) -> Conversion {
    // A named type may be `Copy`, where `.clone()` would be flagged.
    fn named(ty: &RustTy) -> bool {
        match ty {
            RustTy::Named(_) => true,
            RustTy::Option(inner) => named(inner),
            _ => false,
        }
    }
    match ty {
        t if t.is_copy() => Conversion::Copy,
        t if named(t) => Conversion::CloneNamed,
        _ => Conversion::Clone,
    }
}

/// Steps into `Option`s: an optional value is an optional read of its inner type.
fn unwrap_options(mut ty: RustTy, path: &mut Vec<Access>) -> RustTy {
    while let RustTy::Option(inner) = ty {
        path.push(Access::Optional);
        ty = *inner;
    }
    ty
}

/// How a value of type `from` becomes one of type `to`, decided on the types.
pub fn convert(from: &RustTy, to: &RustTy) -> Lowering<Conversion> {
    if from == to {
        return Ok(same(from));
    }
    let serde_only = |t: &RustTy| matches!(t, RustTy::Json | RustTy::Named(_));
    Ok(match (from, to) {
        // A JSON value or a named type into an optional field: `null` is `None` too.
        (RustTy::Option(a), RustTy::Option(_)) if serde_only(a) => Conversion::Serde(to.clone()),
        (a, RustTy::Option(_)) if serde_only(a) => Conversion::Serde(to.clone()),
        (RustTy::Option(a), RustTy::Option(b)) => Conversion::Option(Box::new(convert(a, b)?)),
        (_, RustTy::Option(b)) => Conversion::Wrap(Box::new(convert(from, b)?)),
        (_, RustTy::Json) => Conversion::ToJson,
        (RustTy::Named(_) | RustTy::Json, _) | (_, RustTy::Named(_)) => Conversion::Serde(to.clone()),
        (RustTy::Int(a), RustTy::Int(b)) if a.is_subset_of(*b) => Conversion::IntFrom(*b),
        (RustTy::Int(_), RustTy::Int(b)) => Conversion::IntTryFrom(*b),
        (RustTy::Float(FloatTy::F64), RustTy::Float(FloatTy::F32)) => Conversion::ToF32,
        (RustTy::Int(_) | RustTy::Float(_), RustTy::Float(b)) => Conversion::ToFloat(*b),
        (RustTy::Enum(e), RustTy::String) => Conversion::EnumToString(e.clone()),
        (RustTy::Enum(a), RustTy::Enum(b)) => Conversion::EnumToEnum { from: a.clone(), to: b.clone() },
        (RustTy::Vec(a), RustTy::Vec(b)) => Conversion::List { item: Box::new(convert(a, b)?), to: (**b).clone() },
        (RustTy::Map(_, a), RustTy::Map(kind, b)) => {
            Conversion::Map { value: Box::new(convert(a, b)?), kind: *kind, to: (**b).clone() }
        }
        (RustTy::Struct(a), RustTy::Struct(b)) => Conversion::Struct {
            to: b.path.clone(),
            fields: b
                .fields
                .iter()
                .map(|f| {
                    let from = match a.fields.iter().find(|g| g.json == f.json) {
                        Some(g) => Some((g.ident.clone(), convert(&g.ty, &f.ty)?)),
                        None => None,
                    };
                    Ok((f.ident.clone(), from))
                })
                .collect::<Lowering<_>>()?,
        },
        (RustTy::Struct(_), RustTy::Map(..)) => Conversion::Serde(to.clone()),
        _ => return internal(format!("cannot convert {} into {}", from.shown(), to.shown())),
    })
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;

    use super::*;
    use crate::checked::types::{EnumTy, MapKind, TypePath, Variant};

    fn enum_of(name: &str, values: &[&str]) -> RustTy {
        RustTy::Enum(EnumTy {
            path: TypePath::local(name),
            variants: values
                .iter()
                .map(|v| Variant {
                    json: (*v).to_owned(),
                    ident: Ident::new(&orchestr8_agent_decl::variant_name(v), Span::call_site()),
                })
                .collect(),
        })
    }

    #[test]
    fn conversions_are_decided_on_the_types() {
        let int = |t| RustTy::Int(t);
        let named = RustTy::Named(syn::parse_str("::agents::Money").unwrap());
        let cases: Vec<(RustTy, RustTy, Conversion, bool)> = vec![
            (int(IntTy::U8), int(IntTy::U8), Conversion::Copy, false),
            (RustTy::String, RustTy::String, Conversion::Clone, false),
            (named.clone(), named.clone(), Conversion::CloneNamed, false),
            (int(IntTy::U8), int(IntTy::I64), Conversion::IntFrom(IntTy::I64), false),
            (int(IntTy::I64), int(IntTy::U8), Conversion::IntTryFrom(IntTy::U8), true),
            (int(IntTy::U32), int(IntTy::Usize), Conversion::IntTryFrom(IntTy::Usize), true),
            (int(IntTy::I32), RustTy::Float(FloatTy::F64), Conversion::ToFloat(FloatTy::F64), false),
            (RustTy::String, RustTy::Json, Conversion::ToJson, true),
            (RustTy::Json, named.clone(), Conversion::Serde(named.clone()), true),
            (
                RustTy::Vec(Box::new(int(IntTy::U8))),
                RustTy::Vec(Box::new(int(IntTy::I64))),
                Conversion::List { item: Box::new(Conversion::IntFrom(IntTy::I64)), to: int(IntTy::I64) },
                false,
            ),
            (
                RustTy::Map(MapKind::Hash, Box::new(int(IntTy::I64))),
                RustTy::Map(MapKind::BTree, Box::new(int(IntTy::I64))),
                Conversion::Map { value: Box::new(Conversion::Copy), kind: MapKind::BTree, to: int(IntTy::I64) },
                false,
            ),
            (
                int(IntTy::I64),
                RustTy::Option(Box::new(int(IntTy::U8))),
                Conversion::Wrap(Box::new(Conversion::IntTryFrom(IntTy::U8))),
                true,
            ),
        ];
        for (from, to, expected, fallible) in cases {
            let c = convert(&from, &to).unwrap_or_else(|e| panic!("{} -> {}: {e:?}", from.shown(), to.shown()));
            assert_eq!(c, expected, "{} -> {}", from.shown(), to.shown());
            assert_eq!(c.fallible(), fallible, "{} -> {}", from.shown(), to.shown());
        }
    }

    #[test]
    fn an_enum_into_a_narrower_one_can_fail_and_a_wider_one_cannot() {
        let (small, large) = (enum_of("Small", &["a", "b"]), enum_of("Large", &["a", "b", "c"]));
        assert!(!convert(&small, &large).unwrap().fallible());
        assert!(convert(&large, &small).unwrap().fallible());
        assert!(matches!(convert(&small, &RustTy::String).unwrap(), Conversion::EnumToString(_)));
    }

    #[test]
    fn what_cannot_be_converted_is_an_internal_error_not_a_guess() {
        assert!(matches!(convert(&RustTy::String, &RustTy::Bool), Err(Lowered::Internal(_))));
        assert!(matches!(
            convert(&RustTy::Option(Box::new(RustTy::String)), &RustTy::String),
            Err(Lowered::Internal(_))
        ));
    }
}
