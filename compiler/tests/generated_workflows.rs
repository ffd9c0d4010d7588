//! Random valid workflows, each with a matching agent crate, through the
//! compiler.
//!
//! A typed model (agent declarations with their constant outputs, steps,
//! value expressions, the workflow's input) is generated from a seed and
//! rendered twice: as the workflow's JSON and as the agent crate's Rust
//! source. Every generated workflow keeps the contract
//! (docs/spec/workflow-v1.md): a step reads only steps that have certainly
//! finished, every required field is given and no other, every value fits
//! the field it feeds, integers fit the width of their field at run time,
//! and only optional fields take what may be absent. So a failure to
//! validate, to generate, to parse, to build under `-D warnings` or to run
//! is a compiler bug.
//!
//! - `generated_workflows_compile`: 64 proptest cases (a seed and a size,
//!   from a fixed runner seed, no persistence) through validation and
//!   generation, done twice (the files must not change); every generated
//!   `.rs` file must parse. A failure prints the workflow, the agent crate
//!   and the input.
//! - `generated_switches_compile`: generated workflows with switches (on
//!   enums and booleans, taking a case and taking `default`) through
//!   validation and generation; steps in a case not taken read as absent.
//! - `generated_sample_builds_and_runs`: a fixed sample of 20, written to
//!   `target/generated-prop/case-NN`, built under `-D warnings` in the
//!   shared `target/generated` folder and run; the parts of the output the
//!   model can predict (all but execution ids and `f32`s) are compared.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use orchestr8::agents::FromRustSource;
use orchestr8::codegen::{generate, write_files, CrateOptions, GeneratedFiles};
use orchestr8::own_crates::OwnCrates;
use orchestr8::target::Target;
use orchestr8::validate::validate;
use orchestr8_agent_decl::{expected_type_names, item_type_name, nested_type_name, rust_field_name, variant_name};
use proptest::arbitrary::any;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Map, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap()
}

/// Validates `workflow_json` with the agent crates under `agents_dir` (the
/// directory the workflow's agent `path`s are relative to, as for a
/// workflow file there) and generates its crate, to be written to `out`.
/// The only call into the compiler's library: adapt API changes here.
fn compile(workflow_json: &str, agents_dir: &Path, out: &Path) -> Result<GeneratedFiles, String> {
    let source = FromRustSource::new(agents_dir);
    let validation = validate(workflow_json.as_bytes(), &source);
    let errors: Vec<String> = validation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{} [{:?}] {}", d.pointer, d.code, d.message))
        .collect();
    if !errors.is_empty() {
        return Err(format!("validation failed:\n{}", errors.join("\n")));
    }
    let workflow = validation.checked.ok_or("validation gave neither a checked workflow nor an error")?;
    let options = CrateOptions {
        own: OwnCrates::checkout(repo()),
        out_dir: out.to_path_buf(),
        workflow_dir: agents_dir.to_path_buf(),
        target: Target::Embedded,
    };
    generate(&workflow, &options).map_err(|e| format!("generation failed: {e}"))
}

// ---------------------------------------------------------------------------
// Randomness: one small deterministic generator, so a seed names a case.

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------
// The model: types, values, expressions, steps.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IntK {
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

impl IntK {
    const ALL: [IntK; 10] = [
        IntK::I8,
        IntK::I16,
        IntK::I32,
        IntK::I64,
        IntK::Isize,
        IntK::U8,
        IntK::U16,
        IntK::U32,
        IntK::U64,
        IntK::Usize,
    ];

    fn name(self) -> &'static str {
        match self {
            IntK::I8 => "i8",
            IntK::I16 => "i16",
            IntK::I32 => "i32",
            IntK::I64 => "i64",
            IntK::Isize => "isize",
            IntK::U8 => "u8",
            IntK::U16 => "u16",
            IntK::U32 => "u32",
            IntK::U64 => "u64",
            IntK::Usize => "usize",
        }
    }

    fn bounds(self) -> (i128, i128) {
        match self {
            IntK::I8 => (i8::MIN.into(), i8::MAX.into()),
            IntK::I16 => (i16::MIN.into(), i16::MAX.into()),
            IntK::I32 => (i32::MIN.into(), i32::MAX.into()),
            IntK::I64 => (i64::MIN.into(), i64::MAX.into()),
            IntK::Isize => (isize::MIN as i128, isize::MAX as i128),
            IntK::U8 => (0, u8::MAX.into()),
            IntK::U16 => (0, u16::MAX.into()),
            IntK::U32 => (0, u32::MAX.into()),
            IntK::U64 => (0, u64::MAX.into()),
            IntK::Usize => (0, usize::MAX as i128),
        }
    }

    fn holds(self, v: i128) -> bool {
        let (lo, hi) = self.bounds();
        (lo..=hi).contains(&v)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatK {
    F32,
    F64,
}

impl FloatK {
    fn name(self) -> &'static str {
        match self {
            FloatK::F32 => "f32",
            FloatK::F64 => "f64",
        }
    }
}

/// How a map type is written in the agent crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapK {
    /// `BTreeMap<String, T>`, imported.
    BTree,
    /// `HashMap<String, T>`, imported.
    Hash,
    /// `std::collections::BTreeMap<String, T>`.
    FullBTree,
}

impl MapK {
    fn path(self) -> &'static str {
        match self {
            MapK::BTree => "BTreeMap",
            MapK::Hash => "HashMap",
            MapK::FullBTree => "std::collections::BTreeMap",
        }
    }
}

/// A type of the declaration language (and of the workflow's input, which
/// uses `i64`, `f64` and `BTreeMap` only).
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Str,
    Bool,
    Int(IntK),
    Float(FloatK),
    Opt(Box<Ty>),
    List(Box<Ty>),
    Map(MapK, Box<Ty>),
    Json,
    Enum(Vec<String>),
    Obj(Vec<Field>),
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    name: String,
    ty: Ty,
    /// A doc comment in a declaration, a `description` in a schema.
    doc: Option<&'static str>,
}

impl Ty {
    /// As written in `#[agent(..)]`.
    fn decl(&self, indent: usize) -> String {
        match self {
            Ty::Str => "String".into(),
            Ty::Bool => "bool".into(),
            Ty::Int(k) => k.name().into(),
            Ty::Float(k) => k.name().into(),
            Ty::Opt(t) => format!("Option<{}>", t.decl(indent)),
            Ty::List(t) => format!("Vec<{}>", t.decl(indent)),
            Ty::Map(k, t) => format!("{}<String, {}>", k.path(), t.decl(indent)),
            Ty::Json => "serde_json::Value".into(),
            Ty::Enum(values) => values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(" | "),
            Ty::Obj(fields) => field_block(fields, indent),
        }
    }

    /// JSON Schema; `closed`: objects say `"additionalProperties": false`,
    /// as a declaration's schema does.
    fn schema(&self, closed: bool) -> Value {
        match self {
            Ty::Str => json!({ "type": "string" }),
            Ty::Bool => json!({ "type": "boolean" }),
            Ty::Int(_) => json!({ "type": "integer" }),
            Ty::Float(_) => json!({ "type": "number" }),
            Ty::Opt(t) => t.schema(closed),
            Ty::List(t) => json!({ "type": "array", "items": t.schema(closed) }),
            Ty::Map(_, t) => json!({ "type": "object", "additionalProperties": t.schema(closed) }),
            Ty::Json => json!({}),
            Ty::Enum(values) => json!({ "type": "string", "enum": values }),
            Ty::Obj(fields) => {
                let properties: Map<String, Value> = fields
                    .iter()
                    .map(|f| {
                        let mut schema = f.ty.schema(closed);
                        if let (Some(doc), Value::Object(map)) = (f.doc, &mut schema) {
                            map.insert("description".into(), json!(doc));
                        }
                        (f.name.clone(), schema)
                    })
                    .collect();
                let required: Vec<&str> =
                    fields.iter().filter(|f| !matches!(f.ty, Ty::Opt(_))).map(|f| f.name.as_str()).collect();
                let mut schema = json!({ "type": "object", "properties": properties, "required": required });
                if closed {
                    schema["additionalProperties"] = json!(false);
                }
                schema
            }
        }
    }

    /// Whether `pred` holds of this type or one inside it.
    fn any(&self, pred: &dyn Fn(&Ty) -> bool) -> bool {
        pred(self)
            || match self {
                Ty::Opt(t) | Ty::List(t) | Ty::Map(_, t) => t.any(pred),
                Ty::Obj(fields) => fields.iter().any(|f| f.ty.any(pred)),
                _ => false,
            }
    }
}

fn field_block(fields: &[Field], indent: usize) -> String {
    if fields.is_empty() {
        return "{}".into();
    }
    let pad = " ".repeat(indent + 4);
    let mut s = String::from("{\n");
    for f in fields {
        for line in f.doc.iter().flat_map(|d| d.lines()) {
            let _ = writeln!(s, "{pad}/// {line}");
        }
        let _ = writeln!(s, "{pad}{}: {},", f.name, f.ty.decl(indent + 4));
    }
    s + &" ".repeat(indent) + "}"
}

/// A value; `Null` is an absent optional value.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Null,
    Str(String),
    Bool(bool),
    Int(i128),
    Float(f64),
    Enum(String),
    List(Vec<Val>),
    Map(Vec<(String, Val)>),
    Json(Value),
    Obj(Vec<(String, Val)>),
}

impl Val {
    fn field(&self, name: &str) -> Option<&Val> {
        match self {
            Val::Obj(fields) | Val::Map(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// As JSON, absent fields left out.
    fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Str(s) | Val::Enum(s) => Value::String(s.clone()),
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(n) => int_json(*n),
            Val::Float(f) => float_json(*f),
            Val::List(items) => Value::Array(items.iter().map(Val::to_json).collect()),
            Val::Map(entries) | Val::Obj(entries) => Value::Object(
                entries.iter().filter(|(_, v)| *v != Val::Null).map(|(k, v)| (k.clone(), v.to_json())).collect(),
            ),
            Val::Json(v) => v.clone(),
        }
    }
}

fn int_json(n: i128) -> Value {
    if n >= 0 {
        Value::from(u64::try_from(n).unwrap())
    } else {
        Value::from(i64::try_from(n).unwrap())
    }
}

fn float_json(f: f64) -> Value {
    Value::Number(serde_json::Number::from_f64(f).unwrap())
}

/// A Rust expression of type `ty` for `val`, in the agent crate; `name` is
/// the type the macro generates for `ty` when it is an object or an enum.
fn rust_val(ty: &Ty, val: &Val, name: &str, indent: usize) -> String {
    match (ty, val) {
        (Ty::Opt(_), Val::Null) => "None".into(),
        (Ty::Opt(t), v) => format!("Some({})", rust_val(t, v, name, indent)),
        (Ty::Str, Val::Str(s)) => format!("String::from({s:?})"),
        (Ty::Bool, Val::Bool(b)) => b.to_string(),
        (Ty::Int(k), Val::Int(n)) => format!("{n}{}", k.name()),
        (Ty::Float(k), Val::Float(f)) => format!("{f:?}{}", k.name()),
        (Ty::Enum(_), Val::Enum(v)) => format!("{name}::{}", variant_name(v)),
        (Ty::List(_), Val::List(items)) if items.is_empty() => "Vec::new()".into(),
        (Ty::List(t), Val::List(items)) => {
            let item_name = item_type_name(name);
            let items: Vec<String> = items.iter().map(|v| rust_val(t, v, &item_name, indent)).collect();
            format!("vec![{}]", items.join(", "))
        }
        (Ty::Map(k, _), Val::Map(entries)) if entries.is_empty() => format!("{}::new()", k.path()),
        (Ty::Map(k, t), Val::Map(entries)) => {
            let entries: Vec<String> = entries
                .iter()
                .map(|(key, v)| format!("(String::from({key:?}), {})", rust_val(t, v, name, indent)))
                .collect();
            format!("{}::from([{}])", k.path(), entries.join(", "))
        }
        (Ty::Json, Val::Json(v)) => format!("serde_json::json!({})", json_rust(v)),
        (Ty::Obj(fields), Val::Obj(values)) => {
            let pad = " ".repeat(indent + 4);
            let mut s = format!("{name} {{\n");
            for f in fields {
                let v = values.iter().find(|(n, _)| *n == f.name).map(|(_, v)| v).unwrap();
                let inner = rust_val(&f.ty, v, &nested_type_name(name, &f.name), indent + 4);
                let _ = writeln!(s, "{pad}{}: {inner},", rust_ident(&rust_field_name(&f.name)));
            }
            s + &" ".repeat(indent) + "}"
        }
        (ty, val) => panic!("generator bug: value {val:?} for type {ty:?}"),
    }
}

/// An identifier as the macro writes a field: raw when it is a keyword.
fn rust_ident(name: &str) -> String {
    if syn::parse_str::<syn::Ident>(name).is_ok() {
        name.to_owned()
    } else {
        format!("r#{name}")
    }
}

/// Whether a JSON name can name a declared field.
fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// JSON as the tokens of `serde_json::json!`, numbers suffixed (an
/// unsuffixed `18446744073709551615` would be an `i32` there).
fn json_rust(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => format!("{u}u64"),
            (_, Some(i), _) => format!("{i}i64"),
            (_, _, Some(f)) => format!("{f:?}f64"),
            _ => unreachable!(),
        },
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!("[{}]", items.iter().map(json_rust).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => {
            let entries: Vec<String> = map.iter().map(|(k, v)| format!("{k:?}: {}", json_rust(v))).collect();
            format!("{{{}}}", entries.join(", "))
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Root {
    Input,
    Step(String),
    ExecutionId,
    CorrelationId,
    WorkflowId,
    WorkflowVersion,
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Field(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq)]
struct RefPath {
    root: Root,
    segs: Vec<Seg>,
}

impl RefPath {
    fn root(root: Root) -> Self {
        RefPath { root, segs: Vec::new() }
    }

    fn with(&self, seg: Seg) -> Self {
        let mut p = self.clone();
        p.segs.push(seg);
        p
    }

    fn text(&self) -> String {
        let mut s = match &self.root {
            Root::Input => "input".to_owned(),
            Root::Step(id) => format!("steps.{id}.output"),
            Root::ExecutionId => "execution.id".into(),
            Root::CorrelationId => "execution.correlationId".into(),
            Root::WorkflowId => "workflow.id".into(),
            Root::WorkflowVersion => "workflow.version".into(),
        };
        for seg in &self.segs {
            match seg {
                Seg::Field(name) => {
                    let _ = write!(s, ".{name}");
                }
                Seg::Index(i) => {
                    let _ = write!(s, "[{i}]");
                }
            }
        }
        s
    }
}

/// A value expression.
#[derive(Debug, Clone)]
enum Expr {
    /// A JSON literal that is not a string.
    Lit(Value),
    /// Literal text (a `${` in it is written `$${`).
    Text(String),
    /// `"${REF}"`.
    Ref(RefPath),
    /// Text with references.
    Interp(Vec<Piece>),
    Obj(Vec<(String, Expr)>),
    List(Vec<Expr>),
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Ref(RefPath),
}

fn escape_text(s: &str) -> String {
    s.replace("${", "$${")
}

impl Expr {
    fn to_json(&self) -> Value {
        match self {
            Expr::Lit(v) => v.clone(),
            Expr::Text(s) => Value::String(escape_text(s)),
            Expr::Ref(r) => Value::String(format!("${{{}}}", r.text())),
            Expr::Interp(pieces) => Value::String(
                pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(t) => escape_text(t),
                        Piece::Ref(r) => format!("${{{}}}", r.text()),
                    })
                    .collect(),
            ),
            Expr::Obj(fields) => Value::Object(fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Expr::List(items) => Value::Array(items.iter().map(Expr::to_json).collect()),
        }
    }

    /// A JSON literal as an expression (its strings as literal text).
    fn literal(v: &Value) -> Expr {
        match v {
            Value::String(s) => Expr::Text(s.clone()),
            Value::Array(items) => Expr::List(items.iter().map(Expr::literal).collect()),
            Value::Object(map) => Expr::Obj(map.iter().map(|(k, v)| (k.clone(), Expr::literal(v))).collect()),
            other => Expr::Lit(other.clone()),
        }
    }
}

#[derive(Debug, Clone)]
enum Dur {
    Ms(u64),
    Text(&'static str),
}

impl Dur {
    fn to_json(&self) -> Value {
        match self {
            Dur::Ms(ms) => json!(ms),
            Dur::Text(t) => json!(t),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Policy {
    timeout: Option<Dur>,
    max_attempts: Option<u32>,
    delays: Option<(Dur, Option<Dur>)>,
    multiplier: Option<f64>,
    jitter: Option<bool>,
    breaker: Option<(Option<u32>, Option<Dur>, Option<u32>)>,
}

impl Policy {
    fn to_json(&self) -> Value {
        let mut p = Map::new();
        if let Some(t) = &self.timeout {
            p.insert("timeout".into(), t.to_json());
        }
        let mut retry = Map::new();
        if let Some(n) = self.max_attempts {
            retry.insert("maxAttempts".into(), json!(n));
        }
        if let Some((initial, max)) = &self.delays {
            retry.insert("initialDelay".into(), initial.to_json());
            if let Some(max) = max {
                retry.insert("maxDelay".into(), max.to_json());
            }
        }
        if let Some(m) = self.multiplier {
            retry.insert("backoffMultiplier".into(), json!(m));
        }
        if let Some(j) = self.jitter {
            retry.insert("jitter".into(), json!(j));
        }
        if !retry.is_empty() {
            p.insert("retry".into(), Value::Object(retry));
        }
        if let Some((threshold, reset, half_open)) = &self.breaker {
            let mut b = Map::new();
            if let Some(n) = threshold {
                b.insert("failureThreshold".into(), json!(n));
            }
            if let Some(d) = reset {
                b.insert("resetTimeout".into(), d.to_json());
            }
            if let Some(n) = half_open {
                b.insert("halfOpenRequests".into(), json!(n));
            }
            p.insert("circuitBreaker".into(), Value::Object(b));
        }
        Value::Object(p)
    }
}

#[derive(Debug, Clone)]
enum PolicyRef {
    Named(String),
    Inline(Policy),
}

/// Modules agents may live in: inline (`nlp`, `nlp::deep`) or in a file (`extra`).
const MODULES: &[&str] = &["", "", "", "", "nlp", "nlp::deep", "extra"];

#[derive(Debug, Clone)]
struct Agent {
    id: String,
    /// The module path from the crate root, `""` at the root.
    module: &'static str,
    function: String,
    version: String,
    input: Vec<Field>,
    output: Vec<Field>,
    /// What it returns, always; `None`: it always fails (fatally).
    returns: Option<Val>,
    /// Whether the workflow repeats the declared version.
    states_version: bool,
    /// Whether the workflow repeats the declared schemas.
    states_schemas: bool,
    config: Option<Value>,
    description: Option<&'static str>,
}

impl Agent {
    fn source(&self) -> String {
        let (input_type, output_type, _) = expected_type_names(&self.function);
        let body = match &self.returns {
            Some(v) => format!("    Ok({})\n", rust_val(&Ty::Obj(self.output.clone()), v, &output_type, 4)),
            None => format!("    Err(AgentError::fatal(\"agent {} always fails\"))\n", self.id),
        };
        format!(
            "#[agent(\n    id = {:?},\n    version = {:?},\n    input = {},\n    output = {},\n)]\n/// Generated agent `{}`.\npub async fn {}(_ctx: &AgentContext<'_>, _input: {input_type}) -> Result<{output_type}, AgentError> {{\n{body}}}\n",
            self.id,
            self.version,
            field_block(&self.input, 4),
            field_block(&self.output, 4),
            self.id,
            self.function,
        )
    }

    /// `function` in the workflow: `nlp::deep::run`.
    fn path(&self) -> String {
        if self.module.is_empty() {
            self.function.clone()
        } else {
            format!("{}::{}", self.module, self.function)
        }
    }

    fn types(&self) -> impl Iterator<Item = &Ty> {
        self.input.iter().chain(&self.output).map(|f| &f.ty)
    }
}

#[derive(Debug, Clone)]
struct AgentStep {
    id: String,
    agent: usize,
    /// `None`: the `input` key is left out (the agent takes no fields).
    input: Option<Vec<(String, Expr)>>,
    policy: Option<PolicyRef>,
    continue_on_error: bool,
    /// Whether `"onError": "fail"` (the default) is written out.
    states_fail: bool,
    description: Option<String>,
    /// In a switch's case that is not taken: it never runs.
    skipped: bool,
}

#[derive(Debug, Clone)]
enum Step {
    Agent(AgentStep),
    Parallel {
        id: String,
        fail_fast: Option<bool>,
        children: Vec<Step>,
    },
    Sequence {
        id: String,
        children: Vec<Step>,
    },
    /// Cases by value in order, then `default`.
    Switch {
        id: String,
        on: RefPath,
        cases: Vec<(String, Vec<Step>)>,
        default: Option<Vec<Step>>,
    },
}

impl Step {
    fn to_json(&self, agents: &[Agent]) -> Value {
        match self {
            Step::Agent(s) => {
                let mut m = Map::new();
                m.insert("id".into(), json!(s.id));
                if let Some(d) = &s.description {
                    m.insert("description".into(), json!(d));
                }
                m.insert("agent".into(), json!(agents[s.agent].id));
                if let Some(input) = &s.input {
                    m.insert(
                        "input".into(),
                        Value::Object(input.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
                    );
                }
                match &s.policy {
                    Some(PolicyRef::Named(name)) => {
                        m.insert("policy".into(), json!(name));
                    }
                    Some(PolicyRef::Inline(p)) => {
                        m.insert("policy".into(), p.to_json());
                    }
                    None => {}
                }
                if s.continue_on_error {
                    m.insert("onError".into(), json!("continue"));
                } else if s.states_fail {
                    m.insert("onError".into(), json!("fail"));
                }
                Value::Object(m)
            }
            Step::Parallel { id, fail_fast, children } => {
                let mut m = Map::new();
                m.insert("id".into(), json!(id));
                if let Some(f) = fail_fast {
                    m.insert("failFast".into(), json!(f));
                }
                m.insert("parallel".into(), Value::Array(children.iter().map(|c| c.to_json(agents)).collect()));
                Value::Object(m)
            }
            Step::Sequence { id, children } => json!({
                "id": id,
                "sequence": children.iter().map(|c| c.to_json(agents)).collect::<Vec<_>>(),
            }),
            Step::Switch { id, on, cases, default } => {
                let list = |steps: &[Step]| Value::Array(steps.iter().map(|c| c.to_json(agents)).collect());
                let mut m = Map::new();
                m.insert("id".into(), json!(id));
                m.insert("switch".into(), json!(format!("${{{}}}", on.text())));
                m.insert("cases".into(), Value::Object(cases.iter().map(|(k, v)| (k.clone(), list(v))).collect()));
                if let Some(d) = default {
                    m.insert("default".into(), list(d));
                }
                Value::Object(m)
            }
        }
    }

    /// Marks every agent step in it as never run (a case not taken).
    fn skip(&mut self) {
        match self {
            Step::Agent(s) => s.skipped = true,
            Step::Parallel { children, .. } | Step::Sequence { children, .. } => {
                children.iter_mut().for_each(Step::skip)
            }
            Step::Switch { cases, default, .. } => {
                cases.iter_mut().flat_map(|(_, c)| c).chain(default.iter_mut().flatten()).for_each(Step::skip)
            }
        }
    }

    fn agent_steps<'a>(&'a self, out: &mut Vec<&'a AgentStep>) {
        match self {
            Step::Agent(s) => out.push(s),
            Step::Parallel { children, .. } | Step::Sequence { children, .. } => {
                children.iter().for_each(|c| c.agent_steps(out))
            }
            Step::Switch { cases, default, .. } => {
                cases.iter().flat_map(|(_, c)| c).chain(default.iter().flatten()).for_each(|c| c.agent_steps(out))
            }
        }
    }
}

/// One generated workflow with its agents and an input for it.
#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    id: String,
    crate_name: String,
    name: Option<String>,
    description: Option<String>,
    version: String,
    /// The input's fields, when the workflow declares an input schema.
    input: Option<Vec<Field>>,
    /// Bounds (`minimum`, `maximum`) of input properties, which the value keeps.
    input_keywords: Vec<(String, &'static str, Value)>,
    input_val: Vec<(String, Val)>,
    agents: Vec<Agent>,
    policies: Vec<(String, Policy)>,
    steps: Vec<Step>,
    output: Option<Expr>,
}

impl Case {
    /// The input's type and value. Without a schema the input is `{}`,
    /// which `${input}` still reads; a schema without properties is a map.
    fn input_type(&self) -> (Ty, Val) {
        match &self.input {
            Some(fields) if fields.is_empty() => (Ty::Map(MapK::FullBTree, Box::new(Ty::Json)), Val::Map(Vec::new())),
            fields => (Ty::Obj(fields.clone().unwrap_or_default()), Val::Obj(self.input_val.clone())),
        }
    }

    fn workflow_json(&self) -> String {
        let mut doc = Map::new();
        doc.insert("schemaVersion".into(), json!("1.0.0"));
        let mut metadata = Map::new();
        metadata.insert("id".into(), json!(self.id));
        if let Some(n) = &self.name {
            metadata.insert("name".into(), json!(n));
        }
        metadata.insert("version".into(), json!(self.version));
        if let Some(d) = &self.description {
            metadata.insert("description".into(), json!(d));
        }
        doc.insert("metadata".into(), Value::Object(metadata));
        if let Some(fields) = &self.input {
            let mut schema = Ty::Obj(fields.clone()).schema(false);
            for (property, keyword, value) in &self.input_keywords {
                schema["properties"][property][*keyword] = value.clone();
            }
            doc.insert("input".into(), schema);
        }
        let agents: Map<String, Value> = self
            .agents
            .iter()
            .map(|a| {
                let mut m = Map::new();
                m.insert("kind".into(), json!("rust"));
                m.insert("crate".into(), json!(self.crate_name));
                m.insert("path".into(), json!("agents"));
                m.insert("function".into(), json!(a.path()));
                if a.states_version {
                    m.insert("version".into(), json!(a.version));
                }
                if let Some(d) = a.description {
                    m.insert("description".into(), json!(d));
                }
                if a.states_schemas {
                    m.insert("input".into(), Ty::Obj(a.input.clone()).schema(true));
                    m.insert("output".into(), Ty::Obj(a.output.clone()).schema(true));
                }
                if let Some(c) = &a.config {
                    m.insert("config".into(), c.clone());
                }
                (a.id.clone(), Value::Object(m))
            })
            .collect();
        doc.insert("agents".into(), Value::Object(agents));
        if !self.policies.is_empty() {
            let policies: Map<String, Value> = self.policies.iter().map(|(n, p)| (n.clone(), p.to_json())).collect();
            doc.insert("policies".into(), Value::Object(policies));
        }
        doc.insert("steps".into(), Value::Array(self.steps.iter().map(|s| s.to_json(&self.agents)).collect()));
        if let Some(o) = &self.output {
            doc.insert("output".into(), o.to_json());
        }
        serde_json::to_string_pretty(&Value::Object(doc)).unwrap() + "\n"
    }

    /// The agent crate's source files: `src/lib.rs`, and `src/extra.rs` when
    /// an agent lives in module `extra`.
    fn agent_sources(&self) -> Vec<(&'static str, String)> {
        let in_module = |m: &str| -> Vec<&Agent> { self.agents.iter().filter(|a| a.module == m).collect() };
        let agents = |list: &[&Agent], indent: usize| -> String {
            let pad = " ".repeat(indent);
            let mut s = String::new();
            for a in list {
                s.push('\n');
                for line in a.source().lines() {
                    if line.is_empty() {
                        s.push('\n');
                    } else {
                        let _ = writeln!(s, "{pad}{line}");
                    }
                }
            }
            s
        };
        let mut lib = self.agent_prelude();
        let extra = in_module("extra");
        if !extra.is_empty() {
            lib.push_str("\npub mod extra;\n");
        }
        lib.push_str(&agents(&in_module(""), 0));
        let (nlp, deep) = (in_module("nlp"), in_module("nlp::deep"));
        if !nlp.is_empty() || !deep.is_empty() {
            lib.push_str("\n/// Agents in an inline module.\npub mod nlp {\n");
            if !nlp.is_empty() {
                lib.push_str("    use crate::*;\n");
                lib.push_str(&agents(&nlp, 4));
            }
            if !deep.is_empty() {
                lib.push_str("\n    /// Agents two modules down.\n    pub mod deep {\n        use crate::*;\n");
                lib.push_str(&agents(&deep, 8));
                lib.push_str("    }\n");
            }
            lib.push_str("}\n");
        }
        let mut files = vec![("src/lib.rs", lib)];
        if !extra.is_empty() {
            files.push((
                "src/extra.rs",
                format!("//! Agents in a module file.\n\nuse crate::*;\n{}", agents(&extra, 0)),
            ));
        }
        files
    }

    /// The crate root's doc comment and imports.
    fn agent_prelude(&self) -> String {
        let uses = |pred: &dyn Fn(&Ty) -> bool| self.agents.iter().any(|a| a.types().any(|t| t.any(pred)));
        let btree = uses(&|t| matches!(t, Ty::Map(MapK::BTree, _)));
        let hash = uses(&|t| matches!(t, Ty::Map(MapK::Hash, _)));
        let mut s = String::from("//! Agents of a generated workflow (compiler/tests/generated_workflows.rs).\n\n");
        match (btree, hash) {
            (true, true) => s.push_str("use std::collections::{BTreeMap, HashMap};\n\n"),
            (true, false) => s.push_str("use std::collections::BTreeMap;\n\n"),
            (false, true) => s.push_str("use std::collections::HashMap;\n\n"),
            (false, false) => {}
        }
        s.push_str("use orchestr8_macros::agent;\n");
        if uses(&|t| matches!(t, Ty::Json)) {
            s.push_str("use orchestr8_runtime::codegen::serde_json;\n");
        }
        s.push_str("use orchestr8_runtime::codegen::{AgentContext, AgentError};\n");
        s
    }

    fn agent_manifest(&self) -> String {
        let path = |p: &str| format!("{:?}", repo().join(p).to_string_lossy());
        format!(
            "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[dependencies]\norchestr8-runtime = {{ path = {} }}\norchestr8-macros = {{ path = {} }}\n",
            self.crate_name,
            path("runtime"),
            path("macros")
        )
    }

    fn input_json(&self) -> String {
        Val::Obj(self.input_val.clone()).to_json().to_string() + "\n"
    }

    /// Writes `workflow.json`, `input.json` and the agent crate (`agents/`)
    /// into `dir`, leaving files that already say the same untouched.
    fn write(&self, dir: &Path) -> Result<(), String> {
        write_if_changed(&dir.join("workflow.json"), &self.workflow_json())?;
        write_if_changed(&dir.join("input.json"), &self.input_json())?;
        write_if_changed(&dir.join("agents/Cargo.toml"), &self.agent_manifest())?;
        for (path, text) in self.agent_sources() {
            write_if_changed(&dir.join("agents").join(path), &text)?;
        }
        Ok(())
    }

    /// `what` went wrong, with everything needed to reproduce it.
    fn report(&self, what: &str) -> String {
        format!(
            "case {:#018x} ({}): {what}\n--- workflow.json ---\n{}{}--- input.json ---\n{}",
            self.seed,
            self.id,
            self.workflow_json(),
            self.agent_sources()
                .iter()
                .map(|(path, text)| format!("--- agents/{path} ---\n{text}"))
                .collect::<String>(),
            self.input_json()
        )
    }
}

fn write_if_changed(path: &Path, text: &str) -> Result<(), String> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// The generator.

const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod",
    "move", "mut", "override", "priv", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
    "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Step ids, some chosen to meet names in generated code.
const STEP_IDS: &[&str] = &[
    "a",
    "fetch",
    "s",
    "v",
    "e",
    "k",
    "text",
    "map",
    "rt",
    "state",
    "plan",
    "output",
    "result",
    "some",
    "none",
    "ok",
    "err",
    "std",
    "core",
    "self_",
    "step_1",
    "data",
    "workflow",
    "program",
    "policy_default",
    "x9",
];

/// Declared field names (JSON names; keywords are allowed in declarations).
const FIELD_NAMES: &[&str] = &[
    "text", "count", "name", "value", "flag", "items", "score", "level", "kind", "fooBar", "xCoord", "type", "loop",
    "data2", "a", "n", "tags", "meta",
];

/// Workflow input property names.
const INPUT_NAMES: &[&str] =
    &["name", "count", "flag", "tier", "tags", "first-name", "firstName", "type", "ratio", "meta", "extra", "n"];

/// Keys of output objects and map literals.
const OUTPUT_KEYS: &[&str] =
    &["result", "value", "first", "x-y", "xY", "type", "Weird Key", "a", "nested", "Nested", "n2", "self", "", "field"];

const MAP_KEYS: &[&str] = &["a", "key-1", "k_2", "with space", "ünï", "\"q\""];

const ENUM_VALUES: &[&str] = &["red", "green", "blue", "dark-red", "x2", "1st", "up_down", "ALL"];

const STRINGS: &[&str] = &[
    "",
    "plain",
    "two words",
    "with \"quotes\"",
    "back\\slash",
    "naïve ✓ é",
    "{} {0} {{",
    "line\nbreak",
    "*/ // /*",
    "${not}",
    "tab\there",
];

const INTERP_TEXTS: &[&str] = &["Hello ", " and ", ": ", "-", "{} ", " \"q\" ", " ${not} ", "\n", "✓ "];

const DESCRIPTIONS: &[&str] =
    &["plain words", "\"); std::process::exit(3); // */ #[cfg(any())] \\ \n naïve ✓ {} {0} ${not}"];

/// A step whose output a later step may read.
#[derive(Debug, Clone)]
struct Visible {
    step: String,
    agent: usize,
    /// `onError: "continue"`, or in a switch's case: its output may be absent.
    optional: bool,
    /// In a switch's case not taken: its output is absent.
    skipped: bool,
}

/// Something a reference can read, with its type and its value at run time.
#[derive(Debug, Clone)]
struct Cand {
    path: RefPath,
    /// Without the outer `Option`.
    ty: Ty,
    /// Whether it may be absent (an optional field on the way, a map entry,
    /// a step that may have failed).
    optional: bool,
    /// The value, when present.
    val: Option<Val>,
}

impl Cand {
    fn interpolatable(&self) -> bool {
        !self.optional && matches!(self.ty, Ty::Str | Ty::Bool | Ty::Int(_) | Ty::Float(_) | Ty::Enum(_))
    }
}

/// Everything readable below `path`.
fn walk(path: RefPath, ty: &Ty, val: Option<&Val>, optional: bool, depth: usize, out: &mut Vec<Cand>) {
    let (ty, optional) = match ty {
        Ty::Opt(inner) => (&**inner, true),
        other => (other, optional),
    };
    let val = val.filter(|v| **v != Val::Null);
    out.push(Cand { path: path.clone(), ty: ty.clone(), optional, val: val.cloned() });
    if depth >= 3 {
        return;
    }
    match (ty, val) {
        (Ty::Obj(fields), _) => {
            for f in fields {
                let v = val.and_then(|v| v.field(&f.name));
                walk(path.with(Seg::Field(f.name.clone())), &f.ty, v, optional, depth + 1, out);
            }
        }
        (Ty::List(item), Some(Val::List(items))) => {
            // Only items that exist: a missing item of a list that is there fails at run time.
            for (i, v) in items.iter().enumerate().take(2) {
                walk(path.with(Seg::Index(i)), item, Some(v), optional, depth + 1, out);
            }
        }
        (Ty::List(item), None) if optional => walk(path.with(Seg::Index(0)), item, None, true, depth + 1, out),
        // Below a `serde_json::Value`: any JSON, or nothing.
        (Ty::Json, Some(Val::Json(Value::Object(map)))) => {
            if let Some((k, v)) = map.iter().find(|(k, _)| is_identifier(k)) {
                walk(path.with(Seg::Field(k.clone())), &Ty::Json, Some(&Val::Json(v.clone())), true, depth + 1, out);
            }
        }
        (Ty::Map(_, value), _) => {
            if let Some(Val::Map(entries)) = val {
                if let Some((k, v)) = entries.iter().find(|(k, _)| k.chars().all(|c| c.is_alphanumeric() || c == '_')) {
                    walk(path.with(Seg::Field(k.clone())), value, Some(v), true, depth + 1, out);
                }
            }
            walk(path.with(Seg::Field("absent".into())), value, None, true, depth + 1, out);
        }
        _ => {}
    }
}

/// Whether a value of type `from` (and value `val`, when present) fits a
/// field of type `to` by the contract's rules, and converts at run time.
fn fits(from: &Ty, to: &Ty, val: Option<&Val>) -> bool {
    let val = val.filter(|v| **v != Val::Null);
    match (from, to) {
        (_, Ty::Json) => true,
        (Ty::Opt(f), Ty::Opt(t)) => fits(f, t, val),
        (f, Ty::Opt(t)) => fits(f, t, val),
        (Ty::Opt(_), _) => false,
        (Ty::Str, Ty::Str) | (Ty::Bool, Ty::Bool) | (Ty::Enum(_), Ty::Str) => true,
        (Ty::Int(a), Ty::Int(b)) => a == b || val.is_none_or(|v| matches!(v, Val::Int(n) if b.holds(*n))),
        (Ty::Int(_) | Ty::Float(_), Ty::Float(_)) => true,
        (Ty::Enum(a), Ty::Enum(b)) => a.iter().all(|v| b.contains(v)),
        (Ty::List(a), Ty::List(b)) => {
            fits(a, b, None)
                && match val {
                    Some(Val::List(items)) => items.iter().all(|v| fits(a, b, Some(v))),
                    _ => true,
                }
        }
        (Ty::Map(_, a), Ty::Map(_, b)) => {
            fits(a, b, None)
                && match val {
                    Some(Val::Map(entries)) => entries.iter().all(|(_, v)| fits(a, b, Some(v))),
                    _ => true,
                }
        }
        (Ty::Obj(a), Ty::Obj(b)) => {
            a.iter().all(|f| b.iter().any(|g| g.name == f.name))
                && b.iter().all(|g| match a.iter().find(|f| f.name == g.name) {
                    Some(f) => fits(&f.ty, &g.ty, val.and_then(|v| v.field(&f.name))),
                    None => matches!(g.ty, Ty::Opt(_)),
                })
        }
        _ => false,
    }
}

/// Where a type sits, which limits what it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// A declared field: anything.
    Field,
    /// Inside `Option<..>` or `Vec<..>`: not an `Option`.
    Inner,
    /// A map's value (written as a Rust type): scalars, JSON and lists of scalars.
    MapValue,
}

struct Gen {
    rng: Rng,
    case: Case,
    ids: BTreeSet<String>,
    agent_steps: usize,
    budget: usize,
}

impl Case {
    /// The case of `seed`, with at most `size` agent steps (plus one).
    fn generate(seed: u64, size: usize) -> Case {
        let tag = format!("{seed:016x}");
        let case = Case {
            seed,
            id: format!("wf-{tag}"),
            crate_name: format!("wf_{tag}_agents"),
            name: None,
            description: None,
            version: "1.0.0".into(),
            input: None,
            input_keywords: Vec::new(),
            input_val: Vec::new(),
            agents: Vec::new(),
            policies: Vec::new(),
            steps: Vec::new(),
            output: None,
        };
        let mut g = Gen {
            rng: Rng(seed),
            case,
            ids: ["input", "ids"].iter().map(|s| s.to_string()).collect(),
            agent_steps: 0,
            budget: size.clamp(1, 12),
        };
        g.metadata();
        g.input();
        if g.rng.chance(40) {
            let p = g.policy();
            g.case.policies.push(("default".into(), p));
        }
        let mut scope = Vec::new();
        let n = g.rng.range(1, 4);
        for _ in 0..n {
            if g.agent_steps >= g.budget {
                break;
            }
            let (step, done) = g.step(&scope, 0, true);
            scope.extend(done);
            g.case.steps.push(step);
        }
        g.output(&mut scope);
        g.case
    }
}

impl Gen {
    fn metadata(&mut self) {
        if self.rng.chance(30) {
            self.case.name = Some("Generated workflow".into());
        }
        if self.rng.chance(30) {
            self.case.description = Some((*self.rng.pick(DESCRIPTIONS)).into());
        }
        self.case.version = (*self.rng.pick(&["1.0.0", "0.2.1", "3.1.4-rc.1"])).into();
    }

    fn input(&mut self) {
        if self.rng.chance(25) {
            return;
        }
        // An input schema without properties is a free-form object.
        let n = if self.rng.chance(5) { 0 } else { self.rng.range(1, 4) };
        let mut fields: Vec<Field> = Vec::new();
        while fields.len() < n {
            let name = (*self.rng.pick(INPUT_NAMES)).to_owned();
            if fields.iter().any(|f| f.name == name) {
                continue;
            }
            let ty = self.input_ty(0);
            let ty = if self.rng.chance(25) { Ty::Opt(Box::new(ty)) } else { ty };
            let doc = self.rng.chance(15).then(|| *self.rng.pick(DESCRIPTIONS));
            fields.push(Field { name, ty, doc });
        }
        self.case.input_val = fields.iter().map(|f| (f.name.clone(), self.val(&f.ty))).collect();
        // Numeric bounds are checked when the program reads its input: the value keeps them.
        for (name, v) in &self.case.input_val {
            if let Val::Int(n) = v {
                if self.rng.chance(30) {
                    self.case.input_keywords.push((name.clone(), "minimum", int_json(*n)));
                }
                if self.rng.chance(30) {
                    self.case.input_keywords.push((name.clone(), "maximum", int_json(*n)));
                }
            }
        }
        self.case.input = Some(fields);
    }

    /// A type of the workflow input: what a JSON Schema says.
    fn input_ty(&mut self, depth: usize) -> Ty {
        match self.rng.below(12) {
            0 | 1 => Ty::Str,
            2 => Ty::Bool,
            3 | 4 => Ty::Int(IntK::I64),
            5 => Ty::Float(FloatK::F64),
            6 => Ty::Enum(self.enum_values()),
            7 if depth < 2 => {
                let item = match self.rng.below(4) {
                    0 => Ty::Str,
                    1 => Ty::Int(IntK::I64),
                    2 => Ty::Enum(self.enum_values()),
                    _ => self.input_ty(depth + 1),
                };
                Ty::List(Box::new(strip_opt(item)))
            }
            8 if depth < 2 => {
                let value = if self.rng.chance(50) { Ty::Str } else { Ty::Int(IntK::I64) };
                Ty::Map(MapK::BTree, Box::new(value))
            }
            9 => Ty::Json,
            10 | 11 if depth < 2 => {
                let n = self.rng.range(1, 3);
                let mut fields: Vec<Field> = Vec::new();
                while fields.len() < n {
                    let name = (*self.rng.pick(FIELD_NAMES)).to_owned();
                    if fields.iter().any(|f| f.name == name) {
                        continue;
                    }
                    let ty = self.input_ty(depth + 1);
                    let ty = if self.rng.chance(20) { Ty::Opt(Box::new(strip_opt(ty))) } else { ty };
                    fields.push(Field { name, ty, doc: None });
                }
                Ty::Obj(fields)
            }
            _ => Ty::Str,
        }
    }

    fn enum_values(&mut self) -> Vec<String> {
        let n = self.rng.range(1, 4);
        let mut values: Vec<String> = Vec::new();
        while values.len() < n {
            let v = (*self.rng.pick(ENUM_VALUES)).to_owned();
            if !values.contains(&v) {
                values.push(v);
            }
        }
        values
    }

    /// A declared type.
    fn decl_ty(&mut self, depth: usize, ctx: Ctx) -> Ty {
        let roll = self.rng.below(100);
        if ctx == Ctx::MapValue {
            return match roll {
                0..=24 => Ty::Str,
                25..=34 => Ty::Bool,
                35..=64 => Ty::Int(*self.rng.pick(&IntK::ALL)),
                65..=74 => Ty::Float(*self.rng.pick(&[FloatK::F32, FloatK::F64])),
                75..=84 => Ty::Json,
                _ => Ty::List(Box::new(if self.rng.chance(50) { Ty::Str } else { Ty::Int(IntK::U16) })),
            };
        }
        match roll {
            0..=19 => Ty::Str,
            20..=27 => Ty::Bool,
            28..=47 => Ty::Int(*self.rng.pick(&IntK::ALL)),
            48..=54 => Ty::Float(*self.rng.pick(&[FloatK::F32, FloatK::F64])),
            55..=63 => Ty::Enum(self.enum_values()),
            64..=71 if ctx == Ctx::Field => Ty::Opt(Box::new(self.decl_ty(depth, Ctx::Inner))),
            72..=79 if depth < 2 => Ty::List(Box::new(self.decl_ty(depth + 1, Ctx::Inner))),
            80..=84 if depth < 2 => {
                let k = *self.rng.pick(&[MapK::BTree, MapK::Hash, MapK::FullBTree]);
                Ty::Map(k, Box::new(self.decl_ty(depth + 1, Ctx::MapValue)))
            }
            85..=88 => Ty::Json,
            89..=99 if depth < 2 => Ty::Obj(self.decl_fields(depth + 1, 1, 3)),
            _ => Ty::Int(*self.rng.pick(&IntK::ALL)),
        }
    }

    fn field_name(&mut self, taken: &[Field]) -> String {
        loop {
            let name = *self.rng.pick(FIELD_NAMES);
            if !taken.iter().any(|f| rust_field_name(&f.name) == rust_field_name(name)) {
                return name.to_owned();
            }
        }
    }

    fn decl_fields(&mut self, depth: usize, lo: usize, hi: usize) -> Vec<Field> {
        let n = self.rng.range(lo, hi);
        let mut fields = Vec::new();
        for _ in 0..n {
            let name = self.field_name(&fields);
            let ty = self.decl_ty(depth, Ctx::Field);
            let doc = self.rng.chance(10).then(|| *self.rng.pick(DESCRIPTIONS));
            fields.push(Field { name, ty, doc });
        }
        fields
    }

    /// A declared type that a value of `ty` (with these values) fits: the
    /// same, or wider by the contract's rules.
    fn widen(&mut self, ty: &Ty, vals: &[&Val], ctx: Ctx) -> Ty {
        let wide = match ty {
            Ty::Int(k) => {
                let mut options: Vec<Ty> = IntK::ALL
                    .iter()
                    .filter(|b| vals.iter().all(|v| matches!(v, Val::Int(n) if b.holds(*n))))
                    .map(|b| Ty::Int(*b))
                    .collect();
                options.push(Ty::Float(FloatK::F32));
                options.push(Ty::Float(FloatK::F64));
                if self.rng.chance(40) {
                    Ty::Int(*k)
                } else {
                    self.rng.pick(&options).clone()
                }
            }
            // An `f64` too large for an `f32` fails the step that narrows it: only what fits.
            Ty::Float(_) if vals.iter().any(|v| matches!(v, Val::Float(f) if !(*f as f32).is_finite())) => {
                Ty::Float(FloatK::F64)
            }
            Ty::Float(_) => Ty::Float(*self.rng.pick(&[FloatK::F32, FloatK::F64])),
            Ty::Enum(values) => match self.rng.below(3) {
                _ if ctx == Ctx::MapValue => Ty::Str,
                0 => Ty::Str,
                1 => Ty::Enum(values.clone()),
                _ => {
                    let mut more = values.clone();
                    let extra = (*self.rng.pick(ENUM_VALUES)).to_owned();
                    if !more.contains(&extra) {
                        more.insert(self.rng.below(more.len() + 1), extra);
                    }
                    Ty::Enum(more)
                }
            },
            Ty::List(item) => {
                let items: Vec<&Val> = vals
                    .iter()
                    .flat_map(|v| match v {
                        Val::List(items) => items.iter().filter(|v| **v != Val::Null).collect(),
                        _ => Vec::new(),
                    })
                    .collect();
                let inner = if ctx == Ctx::MapValue { Ctx::MapValue } else { Ctx::Inner };
                Ty::List(Box::new(self.widen(item, &items, inner)))
            }
            Ty::Map(_, value) => {
                let values: Vec<&Val> = vals
                    .iter()
                    .flat_map(|v| match v {
                        Val::Map(entries) => entries.iter().map(|(_, v)| v).filter(|v| **v != Val::Null).collect(),
                        _ => Vec::new(),
                    })
                    .collect();
                let k = *self.rng.pick(&[MapK::BTree, MapK::Hash, MapK::FullBTree]);
                Ty::Map(k, Box::new(self.widen(value, &values, Ctx::MapValue)))
            }
            // A declared field is named by an identifier: an input property such as
            // `first-name` can only be passed in as JSON.
            Ty::Obj(fields) if !fields.iter().all(|f| is_identifier(&f.name)) => Ty::Json,
            Ty::Obj(fields) => {
                let mut wide: Vec<Field> = fields
                    .iter()
                    .map(|f| {
                        let vs: Vec<&Val> =
                            vals.iter().filter_map(|v| v.field(&f.name)).filter(|v| **v != Val::Null).collect();
                        let ty = match &f.ty {
                            Ty::Opt(inner) => Ty::Opt(Box::new(self.widen(inner, &vs, Ctx::Inner))),
                            t if self.rng.chance(10) => Ty::Opt(Box::new(self.widen(t, &vs, Ctx::Inner))),
                            t => self.widen(t, &vs, Ctx::Field),
                        };
                        Field { name: f.name.clone(), ty, doc: f.doc }
                    })
                    .collect();
                if wide.len() > 1 && self.rng.chance(30) {
                    wide.reverse();
                }
                // A field the value lacks: optional, it stays absent.
                if self.rng.chance(15) {
                    let name = self.field_name(&wide);
                    let ty = Ty::Opt(Box::new(self.decl_ty(1, Ctx::Inner)));
                    wide.push(Field { name, ty, doc: None });
                }
                Ty::Obj(wide)
            }
            Ty::Opt(inner) => Ty::Opt(Box::new(self.widen(inner, vals, Ctx::Inner))),
            Ty::Str | Ty::Bool | Ty::Json => ty.clone(),
        };
        // A map's value is written as a Rust type: no inline enums or objects.
        if ctx == Ctx::MapValue && wide.any(&|t| matches!(t, Ty::Enum(_) | Ty::Obj(_) | Ty::Opt(_))) {
            return Ty::Json;
        }
        wide
    }

    /// A value of `ty`.
    fn val(&mut self, ty: &Ty) -> Val {
        match ty {
            Ty::Str => Val::Str((*self.rng.pick(STRINGS)).into()),
            Ty::Bool => Val::Bool(self.rng.chance(50)),
            Ty::Int(k) => Val::Int(self.int_in(*k)),
            Ty::Float(k) => Val::Float(self.float_for(*k)),
            Ty::Enum(values) => Val::Enum(self.rng.pick(values).clone()),
            Ty::Opt(t) => {
                if self.rng.chance(30) {
                    Val::Null
                } else {
                    self.val(t)
                }
            }
            Ty::List(t) => {
                let n = self.rng.range(0, 2);
                Val::List((0..n).map(|_| self.val(t)).collect())
            }
            Ty::Map(_, t) => {
                let n = self.rng.range(0, 2);
                let mut entries: Vec<(String, Val)> = Vec::new();
                for _ in 0..n {
                    let k = (*self.rng.pick(MAP_KEYS)).to_owned();
                    if !entries.iter().any(|(e, _)| *e == k) {
                        let v = self.val(t);
                        entries.push((k, v));
                    }
                }
                Val::Map(entries)
            }
            Ty::Json => Val::Json(self.json_value()),
            Ty::Obj(fields) => Val::Obj(fields.iter().map(|f| (f.name.clone(), self.val(&f.ty))).collect()),
        }
    }

    /// An integer of kind `k`, often at its bounds.
    fn int_in(&mut self, k: IntK) -> i128 {
        let (lo, hi) = k.bounds();
        match self.rng.below(6) {
            0 | 1 => lo,
            2 | 3 => hi,
            4 => 0,
            _ => (lo + hi) / 2 + 1,
        }
    }

    fn float_for(&mut self, k: FloatK) -> f64 {
        match k {
            FloatK::F32 => *self.rng.pick(&[0.5, -2.25, 3.0, 16_777_216.0, 1e10, f64::from(f32::MAX)]),
            FloatK::F64 => *self.rng.pick(&[0.5, -2.25, 1e300, f64::MAX, 1e-300, 123_456.789]),
        }
    }

    fn json_value(&mut self) -> Value {
        match self.rng.below(9) {
            0 => Value::Null,
            1 => json!(true),
            2 => json!(-5),
            3 => json!(2.5),
            4 => json!("s ${x} \"q\""),
            5 => json!([1, "a", null]),
            6 => json!({ "k": [true, { "deep": 1 }] }),
            7 => json!(u64::MAX),
            _ => json!({}),
        }
    }

    fn fresh_id(&mut self) -> String {
        let base =
            if self.rng.chance(50) { (*self.rng.pick(STEP_IDS)).to_owned() } else { format!("s{}", self.ids.len()) };
        let mut id = base.clone();
        let mut n = 2;
        while self.ids.contains(&id) {
            id = format!("{base}_{n}");
            n += 1;
        }
        assert!(!RUST_KEYWORDS.contains(&id.as_str()));
        self.ids.insert(id.clone());
        id
    }

    /// Everything the steps in `scope` and the input let a value read.
    fn candidates(&self, scope: &[Visible]) -> Vec<Cand> {
        let mut out = Vec::new();
        let (ty, val) = self.case.input_type();
        walk(RefPath::root(Root::Input), &ty, Some(&val), false, 0, &mut out);
        for v in scope {
            let agent = &self.case.agents[v.agent];
            let root = RefPath::root(Root::Step(v.step.clone()));
            let returns = if v.skipped { None } else { agent.returns.as_ref() };
            walk(root, &Ty::Obj(agent.output.clone()), returns, v.optional, 0, &mut out);
        }
        out
    }

    /// One step (an agent step or a block) that may read `scope`; with the
    /// agent steps it completes.
    fn step(&mut self, scope: &[Visible], depth: usize, in_sequence: bool) -> (Step, Vec<Visible>) {
        let room = self.budget - self.agent_steps;
        let roll = self.rng.below(100);
        if depth < 3 && room >= 2 && roll < 22 {
            let id = self.fresh_id();
            let n = self.rng.range(1, 3);
            let mut children = Vec::new();
            let mut done = Vec::new();
            for _ in 0..n {
                if self.agent_steps >= self.budget && !children.is_empty() {
                    break;
                }
                // Siblings run concurrently: each sees only what came before the block.
                let (child, d) = self.step(scope, depth + 1, false);
                children.push(child);
                done.extend(d);
            }
            let fail_fast = *self.rng.pick(&[None, Some(true), Some(false)]);
            return (Step::Parallel { id, fail_fast, children }, done);
        }
        if depth < 3 && room >= 2 && roll < if in_sequence { 27 } else { 50 } {
            let id = self.fresh_id();
            let n = self.rng.range(1, 3);
            let mut inner = scope.to_vec();
            let mut children = Vec::new();
            let mut done = Vec::new();
            for _ in 0..n {
                if self.agent_steps >= self.budget && !children.is_empty() {
                    break;
                }
                let (child, d) = self.step(&inner, depth + 1, true);
                inner.extend(d.iter().cloned());
                done.extend(d);
                children.push(child);
            }
            return (Step::Sequence { id, children }, done);
        }
        if depth < 3 && room >= 2 && roll >= 80 {
            if let Some(switch) = self.switch(scope, depth) {
                return switch;
            }
        }
        self.agent_step(scope, false)
    }

    /// A switch on an enum or a boolean that is always there (its value is
    /// known, so is the case taken), or `None` when the scope has none.
    fn switch(&mut self, scope: &[Visible], depth: usize) -> Option<(Step, Vec<Visible>)> {
        let discriminants: Vec<Cand> = self
            .candidates(scope)
            .into_iter()
            .filter(|c| !c.optional && c.val.is_some() && matches!(c.ty, Ty::Enum(_) | Ty::Bool))
            .collect();
        if discriminants.is_empty() {
            return None;
        }
        let on = self.rng.pick(&discriminants).clone();
        let values: Vec<String> = match &on.ty {
            Ty::Enum(values) => values.clone(),
            _ => vec!["true".into(), "false".into()],
        };
        let taken_value = match &on.val {
            Some(Val::Enum(v)) => v.clone(),
            Some(Val::Bool(b)) => b.to_string(),
            other => unreachable!("generator bug: switch on {other:?}"),
        };
        let mut keys: Vec<String> = values.iter().filter(|_| self.rng.chance(60)).cloned().collect();
        if keys.is_empty() {
            keys.push(values[0].clone());
        }
        // A default no value reaches is only a warning.
        let has_default = keys.len() < values.len() || self.rng.chance(20);
        let taken = keys.iter().position(|k| *k == taken_value).unwrap_or(keys.len());
        let id = self.fresh_id();
        let mut branches = Vec::new();
        let mut done = Vec::new();
        for branch in 0..keys.len() + usize::from(has_default) {
            let mut inner = scope.to_vec();
            let mut steps = Vec::new();
            for _ in 0..self.rng.range(0, 3) {
                if self.agent_steps >= self.budget {
                    break;
                }
                let (mut step, d) = self.step(&inner, depth + 1, true);
                inner.extend(d.iter().cloned());
                if branch != taken {
                    step.skip();
                }
                // After the switch a step of a case may not have run.
                done.extend(d.into_iter().map(|v| Visible {
                    optional: true,
                    skipped: v.skipped || branch != taken,
                    ..v
                }));
                steps.push(step);
            }
            branches.push(steps);
        }
        let default = has_default.then(|| branches.pop().unwrap_or_default());
        let cases = keys.into_iter().zip(branches).collect();
        Some((Step::Switch { id, on: on.path, cases, default }, done))
    }

    /// An agent step; `plain`: it neither continues on error nor fails.
    fn agent_step(&mut self, scope: &[Visible], plain: bool) -> (Step, Vec<Visible>) {
        let continue_on_error = !plain && self.rng.chance(20);
        let cands = self.candidates(scope);
        let agent = if continue_on_error && self.rng.chance(35) {
            let failing: Vec<usize> =
                (0..self.case.agents.len()).filter(|i| self.case.agents[*i].returns.is_none()).collect();
            if !failing.is_empty() && self.rng.chance(50) {
                *self.rng.pick(&failing)
            } else {
                self.new_agent(&cands, true)
            }
        } else {
            let working: Vec<usize> =
                (0..self.case.agents.len()).filter(|i| self.case.agents[*i].returns.is_some()).collect();
            if !working.is_empty() && (self.rng.chance(35) || self.case.agents.len() >= 6) {
                *self.rng.pick(&working)
            } else {
                self.new_agent(&cands, false)
            }
        };
        let fields = self.case.agents[agent].input.clone();
        let input = if fields.is_empty() && self.rng.chance(50) {
            None
        } else {
            let mut given = Vec::new();
            for f in &fields {
                if matches!(f.ty, Ty::Opt(_)) && self.rng.chance(30) {
                    continue;
                }
                let e = self.expr(&f.ty, &cands, 0);
                given.push((f.name.clone(), e));
            }
            Some(given)
        };
        let policy = match self.rng.below(4) {
            0 => Some(PolicyRef::Inline(self.policy())),
            1 => Some(PolicyRef::Named(self.named_policy())),
            _ => None,
        };
        let description = self.rng.chance(15).then(|| (*self.rng.pick(DESCRIPTIONS)).to_owned());
        let id = self.fresh_id();
        self.agent_steps += 1;
        let visible = Visible { step: id.clone(), agent, optional: continue_on_error, skipped: false };
        let states_fail = self.rng.chance(10);
        let step = AgentStep { id, agent, input, policy, continue_on_error, states_fail, description, skipped: false };
        (Step::Agent(step), vec![visible])
    }

    /// A new agent whose input fields are often shaped after what `cands`
    /// can give them.
    fn new_agent(&mut self, cands: &[Cand], fails: bool) -> usize {
        let n = self.case.agents.len() + 1;
        let id = format!("{}{n}", self.rng.pick(&["ag", "fetch_", "classify", "x"]));
        let module = *self.rng.pick(MODULES);
        // Agents in different modules may share a function name (and so their type names).
        let function =
            if !module.is_empty() && !self.case.agents.iter().any(|a| a.module == module && a.function == "run") {
                "run".to_owned()
            } else if self.rng.chance(50) {
                format!("agent_{n}")
            } else {
                format!("do_work{n}")
            };
        let count = *self.rng.pick(&[0, 1, 2, 2, 3, 3, 4]);
        let mut input: Vec<Field> = Vec::new();
        for _ in 0..count {
            let name = self.field_name(&input);
            let ty = if !cands.is_empty() && self.rng.chance(55) {
                let c = self.rng.pick(cands).clone();
                let vals: Vec<&Val> = c.val.iter().collect();
                let ty = if self.rng.chance(5) { Ty::Json } else { self.widen(&c.ty, &vals, Ctx::Field) };
                if c.optional || self.rng.chance(15) {
                    Ty::Opt(Box::new(strip_opt(ty)))
                } else {
                    ty
                }
            } else {
                self.decl_ty(0, Ctx::Field)
            };
            let doc = self.rng.chance(10).then(|| *self.rng.pick(DESCRIPTIONS));
            input.push(Field { name, ty, doc });
        }
        let at_least = usize::from(!fails && self.rng.chance(95));
        let output = self.decl_fields(0, at_least, 3);
        let returns = (!fails).then(|| self.val(&Ty::Obj(output.clone())));
        let version = (*self.rng.pick(&["1.0.0", "0.3.1", "2.0.0-beta.1"])).to_owned();
        let states_version = self.rng.chance(30);
        let states_schemas = self.rng.chance(10);
        let config = self.rng.chance(15).then(|| json!({ "mode": "fast", "limits": [1, 2] }));
        let description = self.rng.chance(10).then(|| *self.rng.pick(DESCRIPTIONS));
        self.case.agents.push(Agent {
            id,
            module,
            function,
            version,
            input,
            output,
            returns,
            states_version,
            states_schemas,
            config,
            description,
        });
        n - 1
    }

    fn policy(&mut self) -> Policy {
        let mut p = Policy::default();
        if self.rng.chance(60) {
            p.timeout = Some(
                self.rng
                    .pick(&[Dur::Ms(30_000), Dur::Text("10s"), Dur::Text("2m"), Dur::Text("5000ms"), Dur::Text("1h")])
                    .clone(),
            );
        }
        if self.rng.chance(50) {
            if self.rng.chance(60) {
                p.max_attempts = Some(*self.rng.pick(&[1, 2, 3, 5]));
            }
            // An initial delay of at most 5 ms is never above any maximum chosen here.
            if self.rng.chance(50) {
                let initial = self.rng.pick(&[Dur::Ms(0), Dur::Ms(1), Dur::Text("1ms"), Dur::Text("5ms")]).clone();
                let max = self.rng.chance(70).then(|| {
                    self.rng.pick(&[Dur::Text("10ms"), Dur::Ms(50), Dur::Text("1s"), Dur::Ms(20_000)]).clone()
                });
                p.delays = Some((initial, max));
            }
            if self.rng.chance(40) {
                p.multiplier = Some(*self.rng.pick(&[1.0, 1.5, 2.0, 3.0]));
            }
            if self.rng.chance(40) {
                p.jitter = Some(self.rng.chance(50));
            }
        }
        if self.rng.chance(40) {
            p.breaker = Some((
                self.rng.chance(70).then(|| *self.rng.pick(&[1, 3, 5, 100])),
                self.rng
                    .chance(70)
                    .then(|| self.rng.pick(&[Dur::Text("1s"), Dur::Ms(60_000), Dur::Text("30s")]).clone()),
                self.rng.chance(50).then(|| *self.rng.pick(&[1, 3])),
            ));
        }
        p
    }

    /// A named policy, declared the first time it is used.
    fn named_policy(&mut self) -> String {
        let existing: Vec<String> = self.case.policies.iter().map(|(n, _)| n.clone()).collect();
        if !existing.is_empty() && self.rng.chance(50) {
            return self.rng.pick(&existing).clone();
        }
        let name = (*self.rng.pick(&["fast", "slow", "careful", "p1", "of_a", "type"])).to_owned();
        if !existing.contains(&name) {
            let p = self.policy();
            self.case.policies.push((name.clone(), p));
        }
        name
    }

    /// A value expression for a field of type `target`, reading `cands`.
    fn expr(&mut self, target: &Ty, cands: &[Cand], depth: usize) -> Expr {
        let (inner, optional) = match target {
            Ty::Opt(t) => (&**t, true),
            t => (t, false),
        };
        if optional && self.rng.chance(15) {
            return Expr::Lit(Value::Null);
        }
        let fitting: Vec<&Cand> =
            cands.iter().filter(|c| (optional || !c.optional) && fits(&c.ty, inner, c.val.as_ref())).collect();
        if !fitting.is_empty() && self.rng.chance(55) {
            return Expr::Ref(self.rng.pick(&fitting).path.clone());
        }
        match inner {
            Ty::Str => self.string_expr(cands),
            Ty::Bool => Expr::Lit(json!(self.rng.chance(50))),
            Ty::Int(k) => Expr::Lit(int_json(self.int_in(*k))),
            Ty::Float(k) => {
                if self.rng.chance(30) {
                    Expr::Lit(int_json(*self.rng.pick(&[0, 7, -3, i64::MIN.into(), u64::MAX.into()])))
                } else {
                    Expr::Lit(float_json(self.float_for(*k)))
                }
            }
            Ty::Enum(values) => Expr::Text(self.rng.pick(values).clone()),
            Ty::List(item) => {
                let n = if depth < 3 { self.rng.range(0, 2) } else { 0 };
                Expr::List((0..n).map(|_| self.expr(item, cands, depth + 1)).collect())
            }
            Ty::Map(_, value) => {
                let n = if depth < 3 { self.rng.range(0, 2) } else { 0 };
                let mut entries: Vec<(String, Expr)> = Vec::new();
                for _ in 0..n {
                    let k = (*self.rng.pick(MAP_KEYS)).to_owned();
                    if !entries.iter().any(|(e, _)| *e == k) {
                        let v = self.expr(value, cands, depth + 1);
                        entries.push((k, v));
                    }
                }
                Expr::Obj(entries)
            }
            Ty::Obj(fields) => {
                let mut given = Vec::new();
                for f in fields {
                    if matches!(f.ty, Ty::Opt(_)) && self.rng.chance(35) {
                        continue;
                    }
                    let e = self.expr(&f.ty, cands, depth + 1);
                    given.push((f.name.clone(), e));
                }
                Expr::Obj(given)
            }
            Ty::Json => self.json_expr(cands, depth),
            Ty::Opt(_) => unreachable!("no Option in an Option"),
        }
    }

    fn string_expr(&mut self, cands: &[Cand]) -> Expr {
        match self.rng.below(10) {
            0..=3 => Expr::Text((*self.rng.pick(STRINGS)).into()),
            4..=6 => self.interpolation(cands),
            7 => Expr::Ref(RefPath::root(Root::ExecutionId)),
            8 => Expr::Ref(RefPath::root(Root::WorkflowId)),
            _ => {
                Expr::Ref(RefPath::root(if self.rng.chance(50) { Root::WorkflowVersion } else { Root::CorrelationId }))
            }
        }
    }

    /// Text with references to required scalars and ids.
    fn interpolation(&mut self, cands: &[Cand]) -> Expr {
        let scalars: Vec<&Cand> = cands.iter().filter(|c| c.interpolatable()).collect();
        let mut pieces = Vec::new();
        for _ in 0..self.rng.range(1, 3) {
            if self.rng.chance(70) {
                pieces.push(Piece::Text((*self.rng.pick(INTERP_TEXTS)).into()));
            }
            let r = if !scalars.is_empty() && self.rng.chance(75) {
                self.rng.pick(&scalars).path.clone()
            } else {
                RefPath::root(
                    self.rng
                        .pick(&[Root::ExecutionId, Root::WorkflowId, Root::WorkflowVersion, Root::CorrelationId])
                        .clone(),
                )
            };
            pieces.push(Piece::Ref(r));
        }
        if pieces.len() == 1 || self.rng.chance(40) {
            pieces.push(Piece::Text((*self.rng.pick(INTERP_TEXTS)).into()));
        }
        Expr::Interp(pieces)
    }

    /// A value expression for a `serde_json::Value`, which takes anything.
    fn json_expr(&mut self, cands: &[Cand], depth: usize) -> Expr {
        match self.rng.below(10) {
            0..=2 if !cands.is_empty() => Expr::Ref(self.rng.pick(cands).path.clone()),
            3 => Expr::Text((*self.rng.pick(STRINGS)).into()),
            4 => self.interpolation(cands),
            5 | 6 if depth < 2 => {
                let n = self.rng.range(0, 2);
                let mut entries: Vec<(String, Expr)> = Vec::new();
                for _ in 0..n {
                    let k = (*self.rng.pick(OUTPUT_KEYS)).to_owned();
                    if !entries.iter().any(|(e, _)| *e == k) {
                        let v = self.json_expr(cands, depth + 1);
                        entries.push((k, v));
                    }
                }
                Expr::Obj(entries)
            }
            7 if depth < 2 => {
                let n = self.rng.range(0, 2);
                Expr::List((0..n).map(|_| self.json_expr(cands, depth + 1)).collect())
            }
            _ => {
                let v = self.json_value();
                Expr::literal(&v)
            }
        }
    }

    /// The workflow's `output`, or none (then the last top-level step is an
    /// agent step that returns).
    fn output(&mut self, scope: &mut Vec<Visible>) {
        let cands = self.candidates(scope);
        self.case.output = match self.rng.below(10) {
            0..=6 => {
                let n = self.rng.range(1, 4);
                let mut entries: Vec<(String, Expr)> = Vec::new();
                for _ in 0..n {
                    let k = (*self.rng.pick(OUTPUT_KEYS)).to_owned();
                    if !entries.iter().any(|(e, _)| *e == k) {
                        let v = self.output_value(&cands, 0);
                        entries.push((k, v));
                    }
                }
                Some(Expr::Obj(entries))
            }
            7 if !cands.is_empty() && self.rng.chance(70) => Some(Expr::Ref(self.rng.pick(&cands).path.clone())),
            // Not `null`, which reads as no `output` at all.
            7 => Some(self.output_value(&cands, 0)).filter(|e| !matches!(e, Expr::Lit(Value::Null))),
            _ => None,
        };
        let ends_well = match self.case.steps.last() {
            Some(Step::Agent(s)) => self.case.agents[s.agent].returns.is_some(),
            _ => false,
        };
        if self.case.output.is_none() && !ends_well {
            let (step, done) = self.agent_step(scope, true);
            scope.extend(done);
            self.case.steps.push(step);
        }
    }

    fn output_value(&mut self, cands: &[Cand], depth: usize) -> Expr {
        match self.rng.below(20) {
            0..=8 if !cands.is_empty() => Expr::Ref(self.rng.pick(cands).path.clone()),
            9..=11 => self.interpolation(cands),
            12 => Expr::Lit(int_json(*self.rng.pick(&[i64::MIN.into(), i64::MAX.into(), u64::MAX.into(), 0, -1]))),
            13 => Expr::Lit(float_json(*self.rng.pick(&[0.5, 1e300, -2.25]))),
            14 => Expr::Lit(json!(self.rng.chance(50))),
            15 => Expr::Text((*self.rng.pick(STRINGS)).into()),
            16 => Expr::Lit(Value::Null),
            17 | 18 if depth < 2 => {
                let n = self.rng.range(1, 3);
                let mut entries: Vec<(String, Expr)> = Vec::new();
                for _ in 0..n {
                    let k = (*self.rng.pick(OUTPUT_KEYS)).to_owned();
                    if !entries.iter().any(|(e, _)| *e == k) {
                        let v = self.output_value(cands, depth + 1);
                        entries.push((k, v));
                    }
                }
                Expr::Obj(entries)
            }
            _ => self.json_expr(cands, depth),
        }
    }
}

fn strip_opt(ty: Ty) -> Ty {
    match ty {
        Ty::Opt(inner) => *inner,
        other => other,
    }
}

// ---------------------------------------------------------------------------
// What the program must print.

/// An expected JSON value; `Any` where the model cannot tell (execution
/// ids, `f32`s, which change on their way through text).
#[derive(Debug)]
enum Expect {
    Any,
    Exact(Value),
    Obj(Vec<(String, Expect)>),
    List(Vec<Expect>),
}

impl Case {
    /// What `${path}` reads: its type, whether it may be absent, its value.
    fn resolve(&self, path: &RefPath) -> (Ty, Option<Val>) {
        let (mut ty, mut val) = match &path.root {
            Root::Input => {
                let (ty, val) = self.input_type();
                (ty, Some(val))
            }
            Root::Step(id) => {
                let mut steps = Vec::new();
                self.steps.iter().for_each(|s| s.agent_steps(&mut steps));
                let step = steps.iter().find(|s| s.id == *id).unwrap();
                let agent = &self.agents[step.agent];
                (Ty::Obj(agent.output.clone()), agent.returns.clone().filter(|_| !step.skipped))
            }
            Root::WorkflowId => (Ty::Str, Some(Val::Str(self.id.clone()))),
            Root::WorkflowVersion => (Ty::Str, Some(Val::Str(self.version.clone()))),
            Root::ExecutionId | Root::CorrelationId => (Ty::Str, None),
        };
        for seg in &path.segs {
            ty = strip_opt(ty);
            (ty, val) = match (&ty, seg) {
                (Ty::Obj(fields), Seg::Field(name)) => {
                    let f = fields.iter().find(|f| f.name == *name).unwrap();
                    (f.ty.clone(), val.as_ref().and_then(|v| v.field(name)).cloned())
                }
                (Ty::List(item), Seg::Index(i)) => {
                    let v = match &val {
                        Some(Val::List(items)) => items.get(*i).cloned(),
                        _ => None,
                    };
                    ((**item).clone(), v)
                }
                (Ty::Map(_, value), Seg::Field(name)) => {
                    ((**value).clone(), val.as_ref().and_then(|v| v.field(name)).cloned())
                }
                (Ty::Json, Seg::Field(name)) => {
                    let v = match &val {
                        Some(Val::Json(v)) => v.get(name).cloned().map(Val::Json),
                        _ => None,
                    };
                    (Ty::Json, v)
                }
                _ => unreachable!("generator bug: path {}", path.text()),
            };
        }
        (strip_opt(ty), val.filter(|v| *v != Val::Null))
    }

    fn expect(&self, e: &Expr) -> Expect {
        match e {
            Expr::Lit(v) if v.is_f64() => Expect::Any,
            Expr::Lit(v) => Expect::Exact(v.clone()),
            Expr::Text(s) => Expect::Exact(Value::String(s.clone())),
            Expr::Ref(r) if matches!(r.root, Root::ExecutionId | Root::CorrelationId) => Expect::Any,
            Expr::Ref(r) => match self.resolve(r) {
                (ty, Some(v)) => expect_val(&ty, &v),
                (_, None) => Expect::Exact(Value::Null),
            },
            Expr::Interp(pieces) => {
                let mut text = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => text.push_str(t),
                        Piece::Ref(r) if matches!(r.root, Root::ExecutionId | Root::CorrelationId) => {
                            return Expect::Any
                        }
                        Piece::Ref(r) => match self.resolve(r) {
                            (_, Some(Val::Str(s) | Val::Enum(s))) => text.push_str(&s),
                            (_, Some(Val::Bool(b))) => text.push_str(&b.to_string()),
                            (_, Some(Val::Int(n))) => text.push_str(&n.to_string()),
                            (Ty::Float(FloatK::F64), Some(Val::Float(f))) => text.push_str(&f.to_string()),
                            _ => return Expect::Any,
                        },
                    }
                }
                Expect::Exact(Value::String(text))
            }
            Expr::Obj(entries) => Expect::Obj(entries.iter().map(|(k, v)| (k.clone(), self.expect(v))).collect()),
            Expr::List(items) => Expect::List(items.iter().map(|v| self.expect(v)).collect()),
        }
    }

    fn expected_output(&self) -> Expect {
        match &self.output {
            Some(e) => self.expect(e),
            None => {
                let Some(Step::Agent(last)) = self.steps.last() else { unreachable!() };
                let agent = &self.agents[last.agent];
                expect_val(&Ty::Obj(agent.output.clone()), agent.returns.as_ref().unwrap())
            }
        }
    }
}

fn expect_val(ty: &Ty, val: &Val) -> Expect {
    match (ty, val) {
        (_, Val::Null) => Expect::Exact(Value::Null),
        (Ty::Opt(t), v) => expect_val(t, v),
        (Ty::Float(FloatK::F32), _) => Expect::Any,
        (Ty::List(t), Val::List(items)) => Expect::List(items.iter().map(|v| expect_val(t, v)).collect()),
        (Ty::Map(_, t), Val::Map(entries)) => {
            Expect::Obj(entries.iter().map(|(k, v)| (k.clone(), expect_val(t, v))).collect())
        }
        (Ty::Obj(fields), Val::Obj(values)) => Expect::Obj(
            fields
                .iter()
                .map(|f| {
                    let v = values.iter().find(|(n, _)| *n == f.name).map_or(&Val::Null, |(_, v)| v);
                    (f.name.clone(), expect_val(&f.ty, v))
                })
                .collect(),
        ),
        (_, v) => Expect::Exact(v.to_json()),
    }
}

/// Differences between `expect` and `got` (an absent member counts as `null`).
fn compare(expect: &Expect, got: Option<&Value>, at: &str, out: &mut Vec<String>) {
    let got_or_null = got.unwrap_or(&Value::Null);
    match expect {
        Expect::Any => {}
        Expect::Exact(v) if v == got_or_null => {}
        Expect::Exact(v) => out.push(format!("at `{at}`: expected {v}, found {got_or_null}")),
        Expect::Obj(entries) => match got_or_null {
            Value::Object(map) => {
                for (k, e) in entries {
                    compare(e, map.get(k), &format!("{at}.{k}"), out);
                }
            }
            other => out.push(format!("at `{at}`: expected an object, found {other}")),
        },
        Expect::List(items) => match got_or_null {
            Value::Array(values) if values.len() == items.len() => {
                for (i, (e, v)) in items.iter().zip(values).enumerate() {
                    compare(e, Some(v), &format!("{at}[{i}]"), out);
                }
            }
            other => out.push(format!("at `{at}`: expected a list of {}, found {other}", items.len())),
        },
    }
}

// ---------------------------------------------------------------------------
// The tests.

/// Validates and generates `case`, twice (the files must not change), and
/// parses every generated Rust file.
fn check_compiles(case: &Case) -> Result<GeneratedFiles, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    case.write(dir.path())?;
    let out = dir.path().join("crate");
    let files = compile(&case.workflow_json(), dir.path(), &out).map_err(|e| case.report(&e))?;
    let again = compile(&case.workflow_json(), dir.path(), &out).map_err(|e| case.report(&e))?;
    if again != files {
        return Err(case.report("generating the same workflow twice gave different files"));
    }
    for (path, text) in &files {
        if path.extension().is_some_and(|e| e == "rs") {
            syn::parse_file(text)
                .map_err(|e| case.report(&format!("generated {} does not parse: {e}\n{text}", path.display())))?;
        }
    }
    Ok(files)
}

#[test]
fn generated_workflows_compile() {
    let config = Config {
        cases: 64,
        failure_persistence: None,
        max_shrink_iters: 256,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, b"orchestr8 generated workflows 01");
    let mut runner = TestRunner::new_with_rng(config, rng);
    let started = Instant::now();
    let result = runner.run(&(any::<u64>(), 1usize..=10), |(seed, size)| {
        check_compiles(&Case::generate(seed, size)).map(drop).map_err(TestCaseError::fail)
    });
    eprintln!("generated_workflows_compile: 64 cases in {:.1?}", started.elapsed());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Switches are generated, on enums and booleans, taking a case and taking
/// `default`, and they compile: not a vacuous part of the model.
#[test]
fn generated_switches_compile() {
    let (mut on_enum, mut on_bool, mut case_taken, mut default_taken, mut checked) = (0, 0, 0, 0, 0);
    for seed in 0..400u64 {
        let case = Case::generate(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 8);
        let mut switches = Vec::new();
        fn collect<'a>(steps: &'a [Step], out: &mut Vec<&'a Step>) {
            for step in steps {
                match step {
                    Step::Agent(_) => {}
                    Step::Parallel { children, .. } | Step::Sequence { children, .. } => collect(children, out),
                    Step::Switch { cases, default, .. } => {
                        out.push(step);
                        cases.iter().for_each(|(_, c)| collect(c, out));
                        default.iter().for_each(|d| collect(d, out));
                    }
                }
            }
        }
        collect(&case.steps, &mut switches);
        if switches.is_empty() || checked >= 40 {
            continue;
        }
        for switch in &switches {
            let Step::Switch { on, cases, .. } = switch else { continue };
            let (ty, val) = case.resolve(on);
            if val.is_none() {
                // In a case not taken, on a step of that case: it never runs.
                continue;
            }
            match ty {
                Ty::Bool => on_bool += 1,
                _ => on_enum += 1,
            }
            let taken = match val {
                Some(Val::Enum(v)) => v,
                Some(Val::Bool(b)) => b.to_string(),
                other => panic!("switch on {other:?}"),
            };
            if cases.iter().any(|(k, _)| *k == taken) {
                case_taken += 1;
            } else {
                default_taken += 1;
            }
        }
        check_compiles(&case).unwrap_or_else(|e| panic!("{e}"));
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} generated workflows have a switch");
    assert!(on_enum > 0 && on_bool > 0, "switches on enums: {on_enum}, on booleans: {on_bool}");
    assert!(case_taken > 0 && default_taken > 0, "cases taken: {case_taken}, defaults taken: {default_taken}");
}

/// Seeds of the build sample: fixed, so that the sample is the same on
/// every run and its builds are incremental.
const SAMPLE_SEED: u64 = 0x6f72_6368_6573_7438;
const SAMPLE_CASES: u64 = 20;

fn build_and_run(case: &Case, dir: &Path, journals: &Path) -> Result<(), String> {
    case.write(dir)?;
    let out = dir.join("crate");
    let files = compile(&case.workflow_json(), dir, &out).map_err(|e| case.report(&e))?;
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    write_files(&out, &files).map_err(|e| case.report(&format!("writing the crate: {e:?}")))?;
    write_if_changed(
        &out.join("Cargo.lock"),
        &std::fs::read_to_string(repo().join("Cargo.lock")).map_err(|e| e.to_string())?,
    )?;
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--offline", "--manifest-path"])
        .arg(out.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", repo().join("target/generated"))
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .map_err(|e| e.to_string())?;
    if !built.status.success() {
        return Err(case.report(&format!("build failed:\n{}", String::from_utf8_lossy(&built.stderr))));
    }
    let ran = Command::new(repo().join("target/generated/debug").join(&case.id))
        .arg("--quiet")
        .arg("--input-file")
        .arg(dir.join("input.json"))
        .arg("--journal-dir")
        .arg(journals)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&ran.stdout);
    if ran.status.code() != Some(0) {
        return Err(case.report(&format!(
            "run exited with {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            ran.status.code(),
            String::from_utf8_lossy(&ran.stderr)
        )));
    }
    let output: Value =
        serde_json::from_str(&stdout).map_err(|e| case.report(&format!("stdout is not JSON ({e}):\n{stdout}")))?;
    let mut differences = Vec::new();
    compare(&case.expected_output(), Some(&output), "output", &mut differences);
    if !differences.is_empty() {
        return Err(case.report(&format!("wrong output:\n{}\nstdout:\n{stdout}", differences.join("\n"))));
    }
    Ok(())
}

#[test]
fn generated_sample_builds_and_runs() {
    let root = repo().join("target/generated-prop");
    let journals = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut failures = Vec::new();
    for n in 0..SAMPLE_CASES {
        let case = Case::generate(SAMPLE_SEED.wrapping_add(n.wrapping_mul(0x9e37_79b9)), 3 + (n as usize % 6));
        if let Err(e) = build_and_run(&case, &root.join(format!("case-{n:02}")), journals.path()) {
            failures.push(e);
        }
    }
    eprintln!("generated_sample_builds_and_runs: {SAMPLE_CASES} cases in {:.1?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} of {SAMPLE_CASES} generated workflows failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
