//! Value expressions, lowered: what each step's input and the workflow's
//! output are built from, as typed data. A reference becomes a [`Read`] of
//! the execution's state and a [`Conversion`] into the consumer's type;
//! literals become constants of the consumer's type. Code generation renders
//! these once, deciding nothing but how to spell them.

use proc_macro2::Ident;

use super::types::{EnumTy, FloatTy, IntTy, MapKind, RustTy, TypePath};

/// An owned value of a known Rust type.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant.
    Const(Const),
    /// `Some(value)`.
    Some(Box<Expr>),
    /// A struct literal: a value per field, in the struct's order.
    Struct {
        /// The struct.
        path: TypePath,
        /// Each field and its value.
        fields: Vec<(Ident, Expr)>,
    },
    /// A `Vec` of values.
    List(Vec<Expr>),
    /// A map from string keys.
    Map {
        /// Which map type.
        kind: MapKind,
        /// Its entries, in the document's order.
        entries: Vec<(String, Expr)>,
    },
    /// A `String` made of text and rendered values.
    Text(Vec<Piece>),
    /// A value read from the state and converted.
    Read {
        /// Where it is read.
        read: Read,
        /// From the read's type into the consumer's.
        conversion: Conversion,
        /// What an absent value becomes.
        absent: Absent,
    },
    /// A `serde_json::Value`.
    Json(Json),
    /// A value moved into a type only serde knows (a named type).
    Serde {
        /// The value, of a type that serializes.
        value: Box<Expr>,
        /// The type it is deserialized into.
        target: RustTy,
    },
}

/// A constant of a Rust type.
#[derive(Debug, Clone, PartialEq)]
pub enum Const {
    /// A `String`.
    Str(String),
    /// A `bool`.
    Bool(bool),
    /// An integer of this type (checked to fit it).
    Int(i128, IntTy),
    /// A float of this type (checked to be finite in it).
    Float(f64, FloatTy),
    /// `None`.
    None,
    /// A variant of a string enum.
    Variant(TypePath, Ident),
}

/// A `serde_json::Value` built from parts.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`, a boolean, a number or a string written in the document.
    Literal(serde_json::Value),
    /// Interpolated text.
    Text(Vec<Piece>),
    /// A value read from the state, serialized (`null` when absent).
    Read(Read),
    /// An array.
    Array(Vec<Json>),
    /// An object, in the document's order.
    Object(Vec<(String, Json)>),
}

/// A piece of interpolated text.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A value read from the state (present, or the text fails), rendered.
    Value(Read, Render),
}

/// How a read value becomes text.
#[derive(Debug, Clone, PartialEq)]
pub enum Render {
    /// As it is (`String`).
    Str,
    /// With `Display` (numbers, booleans).
    Display,
    /// As its JSON value.
    Enum(EnumTy),
    /// As its JSON text, through serde (`serde_json::Value`, named types).
    Serde,
}

/// A read of the execution's state: a root, then a path.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// How many enclosing states up (`s.up.up...`) the root is: inside a
    /// map's body, steps read their item's state, whose `up` is the state
    /// the map runs in.
    pub up: usize,
    /// Where it starts.
    pub root: Root,
    /// The way down.
    pub path: Vec<Access>,
    /// The reference as written (`steps.fetch.output.body`), for messages.
    pub shown: String,
}

/// Where a read starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// The workflow's input.
    Input,
    /// The execution's id.
    ExecutionId,
    /// The execution's correlation id.
    CorrelationId,
    /// A step's output slot.
    Slot {
        /// The step's id (in messages).
        step: String,
        /// The state's field.
        field: Ident,
        /// Whether the step may have failed and gone on (`onError: "continue"`):
        /// then an empty slot is an absent value, not an error.
        may_be_empty: bool,
    },
    /// A map's current item.
    Item,
    /// A map's current item's index (a `u64`).
    MapIndex,
}

/// One step down a read's path.
#[derive(Debug, Clone, PartialEq)]
pub enum Access {
    /// A struct's field.
    Field(Ident),
    /// A list's item: absent when the list is shorter.
    Index(usize),
    /// A map's entry: absent when there is none.
    Key(String),
    /// A JSON value's member or item: absent when there is none.
    Json(JsonKey),
    /// Into the JSON value of a named type (one defined outside any
    /// declaration, known to serde alone), to read below it.
    Serialize,
    /// Into an `Option`: absent when it is `None`.
    Optional,
}

/// A member name or an item index of a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonKey {
    /// `.name`
    Name(String),
    /// `[n]`
    Index(usize),
}

impl Read {
    /// Whether the value may be absent: an empty slot, a short list, a
    /// missing key, `None` met on the way.
    pub fn may_be_absent(&self) -> bool {
        matches!(self.root, Root::Slot { may_be_empty: true, .. })
            || self.path.iter().any(|a| matches!(a, Access::Key(_) | Access::Json(_) | Access::Optional))
    }
}

/// What a read that finds no value gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absent {
    /// It cannot be absent.
    Never,
    /// `None`: the consumer's field is optional.
    None,
    /// An error naming the reference: the consumer needs it (a list item
    /// the list may not have).
    Error,
    /// `null`, converted with the rest through serde (a JSON value or a
    /// named type into an optional field, where `null` is `None` too).
    Null,
}

/// How a value of one Rust type becomes a value of another.
#[derive(Debug, Clone, PartialEq)]
pub enum Conversion {
    /// The same `Copy` type.
    Copy,
    /// The same type, cloned.
    Clone,
    /// The same named type, cloned through `Clone::clone` (it may be `Copy`,
    /// which `.clone()` would be flagged for).
    CloneNamed,
    /// A wider integer type, which holds every value (`From`).
    IntFrom(IntTy),
    /// Another integer type: fails when the value does not fit.
    IntTryFrom(IntTy),
    /// An integer or a narrower float into a float (`as`, exact or nearest).
    ToFloat(FloatTy),
    /// An `f64` into an `f32`: fails when it is too large for one.
    ToF32,
    /// A string enum into its JSON value.
    EnumToString(EnumTy),
    /// A string enum into another with at least one of its values: fails on
    /// a value the target lacks.
    EnumToEnum {
        /// The source enum.
        from: EnumTy,
        /// The target enum.
        to: EnumTy,
    },
    /// `Option<A>` into `Option<B>`.
    Option(Box<Conversion>),
    /// `A` into `Option<B>`.
    Wrap(Box<Conversion>),
    /// `Vec<A>` into `Vec<B>`.
    List {
        /// Each item's conversion.
        item: Box<Conversion>,
        /// The target's item type.
        to: RustTy,
    },
    /// A map into a map.
    Map {
        /// Each value's conversion.
        value: Box<Conversion>,
        /// The target's map type.
        kind: MapKind,
        /// The target's value type.
        to: RustTy,
    },
    /// A struct into another, field by field.
    Struct {
        /// The target struct.
        to: TypePath,
        /// Each target field: from a source field, or `None` (an optional
        /// field the source lacks).
        fields: Vec<(Ident, Option<(Ident, Conversion)>)>,
    },
    /// Any serializable value into `serde_json::Value`.
    ToJson,
    /// Through serde, into a type only serde knows.
    Serde(RustTy),
}

impl Conversion {
    /// Whether the converted value depends on the source at all (a struct
    /// whose fields the source has none of does not).
    pub fn uses_source(&self) -> bool {
        match self {
            Conversion::Option(c) | Conversion::Wrap(c) => c.uses_source(),
            Conversion::Struct { fields, .. } => {
                fields.iter().any(|(_, f)| f.as_ref().is_some_and(|(_, c)| c.uses_source()))
            }
            // A list or a map keeps its length and keys, whatever each item keeps.
            _ => true,
        }
    }

    /// Whether it can fail at run time (and so needs `?`).
    pub fn fallible(&self) -> bool {
        match self {
            Conversion::Copy
            | Conversion::Clone
            | Conversion::CloneNamed
            | Conversion::IntFrom(_)
            | Conversion::ToFloat(_)
            | Conversion::EnumToString(_) => false,
            Conversion::IntTryFrom(_) | Conversion::ToF32 | Conversion::ToJson | Conversion::Serde(_) => true,
            Conversion::EnumToEnum { from, to } => {
                from.variants.iter().any(|v| !to.variants.iter().any(|w| w.json == v.json))
            }
            Conversion::Option(c) | Conversion::Wrap(c) => c.fallible(),
            Conversion::List { item, .. } => item.fallible(),
            Conversion::Map { value, .. } => value.fallible(),
            Conversion::Struct { fields, .. } => {
                fields.iter().any(|(_, f)| f.as_ref().is_some_and(|(_, c)| c.fallible()))
            }
        }
    }
}

impl Expr {
    /// Whether it reads the state (else the function building it ignores it).
    pub fn reads_state(&self) -> bool {
        let mut reads = Vec::new();
        self.reads(&mut reads);
        !reads.is_empty()
    }

    /// Every read in it.
    pub fn reads(&self, out: &mut Vec<Read>) {
        match self {
            Expr::Const(_) => {}
            Expr::Some(e) | Expr::Serde { value: e, .. } => e.reads(out),
            Expr::Struct { fields, .. } => fields.iter().for_each(|(_, e)| e.reads(out)),
            Expr::List(items) => items.iter().for_each(|e| e.reads(out)),
            Expr::Map { entries, .. } => entries.iter().for_each(|(_, e)| e.reads(out)),
            Expr::Text(pieces) => pieces.iter().for_each(|p| p.reads(out)),
            Expr::Read { read, .. } => out.push(read.clone()),
            Expr::Json(j) => j.reads(out),
        }
    }
}

impl Piece {
    fn reads(&self, out: &mut Vec<Read>) {
        if let Piece::Value(r, _) = self {
            out.push(r.clone());
        }
    }
}

impl Json {
    fn reads(&self, out: &mut Vec<Read>) {
        match self {
            Json::Literal(_) => {}
            Json::Text(pieces) => pieces.iter().for_each(|p| p.reads(out)),
            Json::Read(r) => out.push(r.clone()),
            Json::Array(items) => items.iter().for_each(|j| j.reads(out)),
            Json::Object(entries) => entries.iter().for_each(|(_, j)| j.reads(out)),
        }
    }
}
