//! The Rust side of the data: each value's Rust type and, for structs and
//! enums, their fields and variants, as data (names as strings and
//! identifiers, never token streams), so that lowering can decide every
//! conversion by comparing types and code generation only renders them.

use orchestr8_agent_decl::{
    field_ident, item_type_name, nested_type_name, rust_field_name, variant_ident, FieldList, IdentError, ScalarKind,
    TypeDecl,
};
use proc_macro2::{Ident, Span};

use crate::types::Ty;

/// A Rust type as generated code sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum RustTy {
    /// `String`
    String,
    /// `bool`
    Bool,
    /// An integer type.
    Int(IntTy),
    /// A float type.
    Float(FloatTy),
    /// `Option<T>`
    Option(Box<RustTy>),
    /// `Vec<T>`
    Vec(Box<RustTy>),
    /// A map from `String`.
    Map(MapKind, Box<RustTy>),
    /// `serde_json::Value`
    Json,
    /// A string enum with a variant per value.
    Enum(EnumTy),
    /// A struct with known fields.
    Struct(StructTy),
    /// A type defined outside any declaration: moved through serde.
    Named(syn::Path),
}

/// A string enum.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumTy {
    /// Where it is defined.
    pub path: TypePath,
    /// Its variants, in the declared order.
    pub variants: Vec<Variant>,
}

/// One value of a string enum.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The JSON value.
    pub json: String,
    /// The Rust variant.
    pub ident: Ident,
}

/// A struct with known fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StructTy {
    /// Where it is defined.
    pub path: TypePath,
    /// Its fields, in the declared order.
    pub fields: Vec<Field>,
}

/// A field of a struct.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its JSON name.
    pub json: String,
    /// Its Rust name.
    pub ident: Ident,
    /// Its type.
    pub ty: RustTy,
    /// Its doc comment, a line per string.
    pub docs: Vec<String>,
}

/// Where a struct or enum is defined: in an agent crate, or in the generated
/// crate itself (`krate: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypePath {
    /// The crate, as a Rust identifier (`triage_agents`).
    pub krate: Option<String>,
    /// Modules from the crate root (`["nlp"]`).
    pub modules: Vec<String>,
    /// The type's name.
    pub name: String,
}

impl TypePath {
    /// A type of the generated crate.
    pub fn local(name: impl Into<String>) -> Self {
        TypePath { krate: None, modules: Vec::new(), name: name.into() }
    }

    /// Another item of the same module.
    pub fn sibling(&self, name: impl Into<String>) -> Self {
        TypePath { krate: self.krate.clone(), modules: self.modules.clone(), name: name.into() }
    }
}

/// The map types a declaration may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKind {
    /// `std::collections::BTreeMap`
    BTree,
    /// `std::collections::HashMap`
    Hash,
}

/// Rust's integer types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum IntTy {
    I8,
    I16,
    I32,
    I64,
    Isize,
    U8,
    U16,
    U32,
    U64,
    Usize,
}

impl IntTy {
    /// The type by name (`u32`).
    pub fn from_name(name: &str) -> Option<IntTy> {
        Some(match name {
            "i8" => IntTy::I8,
            "i16" => IntTy::I16,
            "i32" => IntTy::I32,
            "i64" => IntTy::I64,
            "isize" => IntTy::Isize,
            "u8" => IntTy::U8,
            "u16" => IntTy::U16,
            "u32" => IntTy::U32,
            "u64" => IntTy::U64,
            "usize" => IntTy::Usize,
            _ => return None,
        })
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            IntTy::I8 => "i8",
            IntTy::I16 => "i16",
            IntTy::I32 => "i32",
            IntTy::I64 => "i64",
            IntTy::Isize => "isize",
            IntTy::U8 => "u8",
            IntTy::U16 => "u16",
            IntTy::U32 => "u32",
            IntTy::U64 => "u64",
            IntTy::Usize => "usize",
        }
    }

    /// Whether every value of `self` is a value of `other` and std has a
    /// `From` for it (into `isize`/`usize` only from 16 bits or less).
    pub fn is_subset_of(self, other: IntTy) -> bool {
        use IntTy::*;
        let pointer_sized = |t| matches!(t, Isize | Usize);
        let ((a_min, a_max), (b_min, b_max)) = (self.range(), other.range());
        let fixed = !pointer_sized(self) && !pointer_sized(other) && b_min <= a_min && a_max <= b_max;
        // std's `From` into pointer-sized integers: what fits 16 bits.
        let into_pointer_sized = matches!((self, other), (U8 | U16, Usize) | (U8 | I8 | I16, Isize));
        fixed || into_pointer_sized
    }

    /// The values it holds. `isize`/`usize` are taken at 64 bits, the
    /// targets orchestr8 builds for.
    pub fn range(self) -> (i128, i128) {
        match self {
            IntTy::I8 => (i8::MIN.into(), i8::MAX.into()),
            IntTy::I16 => (i16::MIN.into(), i16::MAX.into()),
            IntTy::I32 => (i32::MIN.into(), i32::MAX.into()),
            IntTy::I64 | IntTy::Isize => (i64::MIN.into(), i64::MAX.into()),
            IntTy::U8 => (0, u8::MAX.into()),
            IntTy::U16 => (0, u16::MAX.into()),
            IntTy::U32 => (0, u32::MAX.into()),
            IntTy::U64 | IntTy::Usize => (0, u64::MAX.into()),
        }
    }
}

/// Rust's float types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum FloatTy {
    F32,
    F64,
}

impl FloatTy {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            FloatTy::F32 => "f32",
            FloatTy::F64 => "f64",
        }
    }
}

impl RustTy {
    /// Whether values are copied rather than cloned.
    pub fn is_copy(&self) -> bool {
        match self {
            RustTy::Bool | RustTy::Int(_) | RustTy::Float(_) | RustTy::Enum(_) => true,
            RustTy::Option(inner) => inner.is_copy(),
            _ => false,
        }
    }

    /// A short name for messages (`u32`, `Vec<String>`, `ClassifyOutput`).
    pub fn shown(&self) -> String {
        match self {
            RustTy::String => "String".into(),
            RustTy::Bool => "bool".into(),
            RustTy::Int(i) => i.name().into(),
            RustTy::Float(f) => f.name().into(),
            RustTy::Option(t) => format!("Option<{}>", t.shown()),
            RustTy::Vec(t) => format!("Vec<{}>", t.shown()),
            RustTy::Map(MapKind::BTree, t) => format!("BTreeMap<String, {}>", t.shown()),
            RustTy::Map(MapKind::Hash, t) => format!("HashMap<String, {}>", t.shown()),
            RustTy::Json => "serde_json::Value".into(),
            RustTy::Enum(e) => e.path.name.clone(),
            RustTy::Struct(s) => s.path.name.clone(),
            RustTy::Named(p) => p.segments.last().map(|s| s.ident.to_string()).unwrap_or_default(),
        }
    }
}

/// The Rust type of an agent's declared field list named `name`, in the
/// module `module` (following the macro's naming, through the same functions).
pub fn from_decl(module: &TypePath, name: &str, list: &FieldList) -> Result<RustTy, IdentError> {
    let fields = list
        .fields
        .iter()
        .map(|f| {
            let json = f.json_name();
            Ok(Field {
                ident: field_ident(&json, Span::call_site())?,
                ty: decl_type(module, &nested_type_name(name, &json), &f.ty)?,
                docs: Vec::new(),
                json,
            })
        })
        .collect::<Result<_, IdentError>>()?;
    Ok(RustTy::Struct(StructTy { path: module.sibling(name), fields }))
}

fn decl_type(module: &TypePath, name: &str, ty: &TypeDecl) -> Result<RustTy, IdentError> {
    Ok(match ty {
        TypeDecl::Scalar(ScalarKind::String, _) => RustTy::String,
        TypeDecl::Scalar(ScalarKind::Bool, _) => RustTy::Bool,
        TypeDecl::Scalar(ScalarKind::Integer, t) => RustTy::Int(IntTy::from_name(&last_ident(t)).unwrap_or(IntTy::I64)),
        TypeDecl::Scalar(ScalarKind::Float, t) => {
            RustTy::Float(if last_ident(t) == "f32" { FloatTy::F32 } else { FloatTy::F64 })
        }
        TypeDecl::Option(inner, _) => RustTy::Option(Box::new(decl_type(module, name, inner)?)),
        TypeDecl::Vec(item, _) => RustTy::Vec(Box::new(decl_type(module, &item_type_name(name), item)?)),
        TypeDecl::Map(value, written) => {
            let kind = if last_ident(written) == "HashMap" { MapKind::Hash } else { MapKind::BTree };
            RustTy::Map(kind, Box::new(decl_type(module, name, value)?))
        }
        TypeDecl::Json(_) => RustTy::Json,
        TypeDecl::Enum(values) => RustTy::Enum(EnumTy {
            path: module.sibling(name),
            variants: values
                .iter()
                .map(|v| Ok(Variant { ident: variant_ident(&v.value(), Span::call_site())?, json: v.value() }))
                .collect::<Result<_, IdentError>>()?,
        }),
        TypeDecl::Object(list) => from_decl(module, name, list)?,
        TypeDecl::Named(path) => {
            // A bare name is resolved in the agent's module; a path from a crate root stays as written.
            if path.leading_colon.is_some() || path.segments.len() > 1 {
                RustTy::Named(path.clone())
            } else {
                let mut full: syn::Path = syn::parse_str(&module_path_text(module)).expect("a module path parses");
                full.segments.extend(path.segments.iter().cloned());
                RustTy::Named(full)
            }
        }
    })
}

/// `::krate::a::b`, the module a `TypePath` lives in.
fn module_path_text(path: &TypePath) -> String {
    let mut text = String::new();
    if let Some(k) = &path.krate {
        text.push_str("::");
        text.push_str(k);
    }
    for m in &path.modules {
        text.push_str("::");
        text.push_str(m);
    }
    text
}

/// The last identifier of a written type (`std::collections::HashMap<String, u8>` -> `HashMap`).
fn last_ident(tokens: &proc_macro2::TokenStream) -> String {
    match syn::parse2::<syn::Path>(tokens.clone()) {
        Ok(path) => path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Unique names for the types and items a generated crate defines itself,
/// whatever the JSON names they come from.
#[derive(Default)]
pub struct Names {
    used: std::collections::HashSet<String>,
}

impl Names {
    /// `base`, or `base2`, `base3`... if taken.
    pub fn unique(&mut self, base: &str) -> String {
        unique(&mut self.used, base)
    }
}

fn unique(used: &mut std::collections::HashSet<String>, base: &str) -> String {
    let mut name = base.to_owned();
    let mut n = 2;
    while !used.insert(name.clone()) {
        name = format!("{base}{n}");
        n += 1;
    }
    name
}

/// Field identifiers for the JSON names of one struct of the generated
/// crate, distinct within it (`maxItems` and `max_items` become `max_items`
/// and `max_items2`; `self`, which cannot be an identifier even raw, `self_`).
/// Serde renames each back to its JSON name.
pub fn field_idents<'a>(json_names: impl IntoIterator<Item = &'a str>) -> Vec<Ident> {
    let mut used = std::collections::HashSet::new();
    json_names
        .into_iter()
        .map(|json| {
            let name = rust_field_name(json);
            let name = if orchestr8_agent_decl::ident::ident(&name, Span::call_site()).is_err() {
                format!("{name}_")
            } else {
                name
            };
            orchestr8_agent_decl::ident::ident(&unique(&mut used, &name), Span::call_site())
                .expect("a snake_case name with `_` appended to the keywords that cannot be raw is an identifier")
        })
        .collect()
}

/// The Rust type of a schema shape, for types the generated crate defines
/// itself (the workflow's input), named from `name`; each struct and enum
/// is appended to `defined`.
pub fn from_ty(name: &str, ty: &Ty, names: &mut Names, defined: &mut Vec<RustTy>) -> Result<RustTy, IdentError> {
    Ok(match ty {
        Ty::Any | Ty::Null => RustTy::Json,
        Ty::Boolean => RustTy::Bool,
        Ty::Integer => RustTy::Int(IntTy::I64),
        Ty::Number => RustTy::Float(FloatTy::F64),
        Ty::String(None) => RustTy::String,
        Ty::String(Some(values)) => {
            let e = RustTy::Enum(EnumTy {
                path: TypePath::local(names.unique(name)),
                variants: values
                    .iter()
                    .map(|v| Ok(Variant { ident: variant_ident(v, Span::call_site())?, json: v.clone() }))
                    .collect::<Result<_, IdentError>>()?,
            });
            defined.push(e.clone());
            e
        }
        Ty::Array(item) => RustTy::Vec(Box::new(from_ty(&item_type_name(name), item, names, defined)?)),
        Ty::Map(value) => RustTy::Map(MapKind::BTree, Box::new(from_ty(name, value, names, defined)?)),
        Ty::Optional(inner) => RustTy::Option(Box::new(from_ty(name, inner, names, defined)?)),
        Ty::Object(o) => {
            let struct_name = names.unique(name);
            let idents = field_idents(o.fields.keys().map(String::as_str));
            let position = defined.len();
            let mut fields = Vec::new();
            for ((json, f), ident) in o.fields.iter().zip(idents) {
                fields.push(Field {
                    docs: f.description.as_deref().map(orchestr8_agent_decl::emit::doc_lines_of).unwrap_or_default(),
                    json: json.clone(),
                    ident,
                    ty: from_ty(&nested_type_name(&struct_name, json), &f.ty, names, defined)?,
                });
            }
            let s = RustTy::Struct(StructTy { path: TypePath::local(struct_name), fields });
            // A struct comes before the types of its fields.
            defined.insert(position, s.clone());
            s
        }
    })
}
