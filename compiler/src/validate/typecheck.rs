//! Layer 3: every value expression against the schema of the field it
//! feeds, and every reference against the schema of what it reads.
//!
//! One walk over the expressions does both the scope rules (a step reads
//! only steps that have certainly finished) and the type rules, so each
//! reference is resolved once.

use std::collections::{BTreeMap, HashMap};

use orchestr8_schema::ast::{AgentDefinition, OnError, Step, SwitchStep, Workflow};
use orchestr8_schema::expr::{parse_template, PathSegment, Reference, Root, Segment, Template};
use orchestr8_schema::source::{escape_pointer_token, Span};
use serde_json::{Map, Value};

use super::graph::{post_order_key, Graph, Position, Visibility};
use super::Doc;
use crate::agents::{AgentSchemaSource, DeclaredSchema, FoundAgent, Origin};
use crate::diagnostics::{suggestion, Code, Diagnostic};
use crate::types::{fits, from_schema, literal_ty, Misfit, ObjectTy, ProblemKind, Ty};

/// What the type layer learned, for lowering.
pub struct Typed {
    /// The workflow input's shape.
    pub input: Ty,
    /// Each agent's `#[agent]` declaration, where the source reads them.
    pub declarations: BTreeMap<String, FoundAgent>,
    /// Each LLM agent's input and output shapes: the generated crate defines their types.
    pub llm: BTreeMap<String, (Ty, Ty)>,
    /// Each wait step's payload shape (an object), by step id: the generated crate defines it.
    pub waits: BTreeMap<String, Ty>,
    /// Each map's item shape, by step id.
    pub items: BTreeMap<String, Ty>,
    /// What each switch is on, by step id.
    pub switches: BTreeMap<String, SwitchOn>,
}

/// Checks every expression of `workflow`.
pub fn check(
    workflow: &Workflow,
    graph: &Graph<'_>,
    doc: &Doc<'_>,
    agents: &dyn AgentSchemaSource,
    out: &mut Vec<Diagnostic>,
) -> Typed {
    let mut cx = Checker {
        doc,
        graph,
        out,
        outputs: Vec::new(),
        input_ty: Ty::Any,
        declares_input: workflow.input.is_some(),
        input_owner: "the workflow's input".into(),
        items: HashMap::new(),
    };
    if let Some(schema) = &workflow.input {
        for pointer in unchecked_keywords(schema, "/input") {
            let keyword = pointer.rsplit('/').next().unwrap_or_default().to_owned();
            cx.out.push(
                Diagnostic::error(
                    Code::UncheckedInputKeyword,
                    format!("`{keyword}` is not checked when the compiled program reads its input"),
                    pointer.clone(),
                    doc.key(&pointer),
                )
                .with_label("not enforced at run time")
                .with_help("check it in the agent that uses the value, or drop it; types, required fields, enums and numeric and length bounds are checked"),
            );
        }
    }
    let input_ty = match &workflow.input {
        Some(schema) => cx.schema_ty(
            &DeclaredSchema { schema: schema.clone(), origin: Origin::Workflow { pointer: "/input".into() } },
            "/input",
        ),
        None => Ty::Object(ObjectTy::default()),
    };

    // Each agent's shapes, read once however many steps call it.
    let mut agent_shapes: HashMap<&str, AgentShapes> = HashMap::new();
    let mut declarations = BTreeMap::new();
    for (id, definition) in &workflow.agents {
        let pointer = format!("/agents/{}", escape_pointer_token(id));
        let mut schemas = agents.schemas(id, definition, &pointer);
        if let Some(found) = schemas.declaration.take() {
            declarations.insert(id.clone(), found);
        }
        let reported = !schemas.diagnostics.is_empty();
        for mut d in schemas.diagnostics {
            // Sources report by pointer; the entry's key, or the field's value, is what to underline.
            d.span = if d.pointer == pointer { doc.key(&d.pointer) } else { doc.value(&d.pointer) };
            cx.out.push(d);
        }
        let input = schemas.input.map(|s| (cx.schema_ty(&s, &pointer), s.origin));
        let output = schemas.output.map(|s| (cx.schema_ty(&s, &pointer), s.origin));
        let missing: Vec<&str> = [("input", input.is_none()), ("output", output.is_none())]
            .into_iter()
            .filter_map(|(side, absent)| absent.then_some(side))
            .collect();
        // An LLM agent without schemas is an error of its own (`validate::llm`).
        let llm = matches!(definition, AgentDefinition::Llm(_));
        if !missing.is_empty() && !reported && !llm {
            cx.out.push(
                Diagnostic::error(
                    Code::AgentSchemaUnavailable,
                    format!(
                        "the {} {} of agent `{id}` {} not known, so steps calling it are not type-checked",
                        missing.join(" and "),
                        if missing.len() == 1 { "schema" } else { "schemas" },
                        if missing.len() == 1 { "is" } else { "are" },
                    ),
                    pointer.clone(),
                    doc.key(&pointer),
                )
                .with_label("no schema")
                .with_help(format!(
                    "declare `{}` on the agent in the workflow, or validate without `--declared-only` to read them from its `#[agent]` declaration",
                    missing.join("` and `")
                )),
            );
        }
        let shapes = AgentShapes { input, output };
        agent_shapes.insert(id.as_str(), shapes);
    }

    // Each wait's payload: an object, whose fields later steps read.
    let mut waits = BTreeMap::new();
    for node in &graph.nodes {
        let Step::Wait(step) = node.step else { continue };
        let pointer = format!("{}/wait/schema", node.pointer);
        let declared =
            DeclaredSchema { schema: step.wait.schema.clone(), origin: Origin::Workflow { pointer: pointer.clone() } };
        let reported = cx.out.len();
        let ty = cx.schema_ty(&declared, &pointer);
        match &ty {
            // `{"type": "object"}` alone (a trigger, or free fields) is a map.
            Ty::Object(_) | Ty::Map(_) => {
                waits.insert(step.id.clone(), ty);
            }
            // A schema `schema_ty` could not read is reported there.
            Ty::Any if cx.out.len() > reported => {}
            other => cx.out.push(
                Diagnostic::error(
                    Code::WaitPayloadNotObject,
                    format!("the payload schema of wait `{}` describes `{}`, not an object", step.id, other.detailed()),
                    pointer.clone(),
                    cx.doc.value(&pointer),
                )
                .with_label("not an object schema")
                .with_help(
                    "give the payload an object schema, e.g. `{\"type\": \"object\", \"properties\": {\"approved\": {\"type\": \"boolean\"}}}`",
                ),
            ),
        }
    }

    // What each step produces, by graph index (blocks produce nothing).
    cx.outputs = graph
        .nodes
        .iter()
        .map(|node| {
            let (output, on_error) = match node.step {
                Step::Agent(step) => {
                    let shapes = agent_shapes.get(step.agent.as_str());
                    (shapes.and_then(|s| s.output.as_ref()).map_or(Ty::Any, |(t, _)| t.clone()), step.on_error)
                }
                Step::Wait(step) => (waits.get(&step.id).cloned().unwrap_or(Ty::Any), step.on_error),
                _ => return Ty::Any,
            };
            if on_error == OnError::Continue {
                output.optional()
            } else {
                output
            }
        })
        .collect();
    // A map's output is the list of its body's; inner maps come later in
    // document order, so they are done first from the end.
    for (index, node) in graph.nodes.iter().enumerate().rev() {
        let Step::Map(map) = node.step else { continue };
        // An item's output is its result step's once it has succeeded: a
        // result step continuing on error fails its item, and the map unless
        // it tolerates failures (its items are then optional).
        let item = map
            .map
            .step
            .result()
            .and_then(|r| graph.by_id.get(r.id()))
            .map_or(Ty::Any, |&r| cx.outputs[r].required().clone());
        let item =
            if map.map.tolerated_failures.as_ref().is_some_and(|t| !t.is_zero()) { item.optional() } else { item };
        cx.outputs[index] = Ty::Array(Box::new(item));
    }

    // Each switch: its value, its cases, and its output's type (children
    // before their switch, earlier switches first: a case output may read both).
    let mut switches: Vec<usize> =
        graph.nodes.iter().enumerate().filter(|(_, n)| matches!(n.step, Step::Switch(_))).map(|(i, _)| i).collect();
    switches.sort_by_key(|&i| post_order_key(&graph.nodes[i].path));
    let mut switch_values = BTreeMap::new();
    for index in switches {
        let Step::Switch(switch) = graph.nodes[index].step else { continue };
        cx.input_ty = input_ty.clone();
        if let Some(value) = cx.check_switch(index, switch) {
            switch_values.insert(switch.id.clone(), value);
        }
        if let Some(ty) = cx.check_case_outputs(index, switch) {
            cx.outputs[index] = ty;
        }
    }

    // Each LLM agent's prompt reads its own input.
    let mut llm = BTreeMap::new();
    for (id, definition) in &workflow.agents {
        let AgentDefinition::Llm(agent) = definition else { continue };
        let Some(shapes) = agent_shapes.get(id.as_str()) else { continue };
        let (Some((input, _)), Some((output, _))) = (&shapes.input, &shapes.output) else { continue };
        let pointer = format!("/agents/{}/prompt", escape_pointer_token(id));
        cx.input_ty = input.clone();
        cx.declares_input = true;
        cx.input_owner = format!("agent `{id}`'s input");
        let texts = [("system", &agent.prompt.system), ("instructions", &agent.prompt.instructions)]
            .into_iter()
            .map(|(k, t)| (format!("{pointer}/{k}"), t))
            .chain(agent.prompt.constraints.iter().enumerate().map(|(i, t)| (format!("{pointer}/constraints/{i}"), t)));
        for (at, text) in texts {
            cx.check_prompt_text(text, &at, id);
        }
        llm.insert(id.clone(), (input.clone(), output.clone()));
    }
    cx.declares_input = workflow.input.is_some();
    cx.input_owner = "the workflow's input".into();

    cx.input_ty = input_ty.clone();
    // Each map's list, outer maps first (an inner map may map over its outer item).
    let mut items = BTreeMap::new();
    for (index, node) in graph.nodes.iter().enumerate() {
        let Step::Map(map) = node.step else { continue };
        let item = cx.map_item(map, index, &node.pointer);
        cx.items.insert(index, item.clone());
        items.insert(map.id.clone(), item);
    }
    for (index, node) in graph.nodes.iter().enumerate() {
        let Step::Agent(step) = node.step else { continue };
        let consumer = agent_shapes.get(step.agent.as_str()).and_then(|s| s.input.as_ref());
        let expected = consumer.map_or(Ty::Any, |(t, _)| t.clone());
        let site = Site {
            referrer: Some(index),
            position: Some(&node.path),
            who: format!("step `{}`", step.id),
            agent: &step.agent,
            origin: consumer.map(|(_, o)| o.clone()),
        };
        cx.check_object(&step.input, &format!("{}/input", node.pointer), &expected, &site);
    }
    if workflow.output.is_none() {
        // The result is then the last step's output, which a block does not have.
        if let Some(last) = workflow.steps.last().filter(|s| !has_output(s)) {
            let pointer = format!("/steps/{}", workflow.steps.len() - 1);
            let kind = last.children_key().unwrap_or("block");
            cx.out.push(
                Diagnostic::error(
                    Code::BlockHasNoOutput,
                    format!(
                        "the workflow has no `output`, and its last step `{}` is a {kind} block, which has no output",
                        last.id()
                    ),
                    pointer.clone(),
                    doc.value(&pointer),
                )
                .with_label("the last step")
                .with_help(
                    "add a top-level `output` that picks the results you need, e.g. `{\"x\": \"${steps.ID.output}\"}`",
                ),
            );
        }
    }
    if let Some(output) = &workflow.output {
        let site =
            Site { referrer: None, position: None, who: "the workflow's output".into(), agent: "", origin: None };
        cx.check_value(output, "/output", &Ty::Any, &site);
    }
    Typed { input: input_ty, declarations, llm, waits, items, switches: switch_values }
}

/// Whether a step has an output others may read: an agent call, a wait, a
/// map, a switch whose cases declare one.
fn has_output(step: &Step) -> bool {
    match step {
        Step::Agent(_) | Step::Wait(_) | Step::Map(_) => true,
        Step::Switch(s) => s.branches().any(|(_, b)| b.case.output().is_some()),
        Step::Parallel(_) | Step::Sequence(_) => false,
    }
}

/// What a switch is on, for lowering.
#[derive(Debug, Clone, PartialEq)]
pub enum SwitchOn {
    /// A string enum, or a boolean (`"true"` and `"false"`), every value of which is covered
    /// by the cases or `default`.
    Values(Vec<String>),
    /// A string of any value.
    String,
}

struct AgentShapes {
    input: Option<(Ty, Origin)>,
    output: Option<(Ty, Origin)>,
}

/// Who consumes the value being checked.
struct Site<'s> {
    /// The referring step (by graph index), or `None` for the workflow's output.
    referrer: Option<usize>,
    /// Where the value is read, for the scope rules: the referring step's
    /// position, or the end of a switch's case (`None`: after every step).
    position: Option<&'s Position<'s>>,
    /// Who reads, for messages: "step `x`".
    who: String,
    /// The agent whose input it feeds ("" for the workflow's output).
    agent: &'s str,
    /// Where that agent's input schema is declared.
    origin: Option<Origin>,
}

struct Checker<'a, 'g> {
    doc: &'a Doc<'a>,
    graph: &'a Graph<'g>,
    out: &'a mut Vec<Diagnostic>,
    /// Output shape of each step, by graph index.
    outputs: Vec<Ty>,
    /// The workflow input's shape.
    input_ty: Ty,
    /// Whether the workflow has an `input` schema.
    declares_input: bool,
    /// Whose input `${input...}` reads, for messages.
    input_owner: String,
    /// Each map's item shape, by graph index (`Ty::Any` when its `over` is at fault).
    items: HashMap<usize, Ty>,
}

impl Checker<'_, '_> {
    /// Reads a declared schema, reporting what is wrong with it where it is declared.
    fn schema_ty(&mut self, declared: &DeclaredSchema, agent_pointer: &str) -> Ty {
        let (base, note) = match &declared.origin {
            Origin::Workflow { pointer } => (pointer.clone(), None),
            Origin::RustSource { .. } => (agent_pointer.to_owned(), Some(format!("declared at {}", declared.origin))),
        };
        if let Err(e) = jsonschema::meta::validate(&declared.schema) {
            let at = format!("{base}{}", e.instance_path().as_str());
            let mut d = Diagnostic::error(
                Code::InvalidJsonSchema,
                format!("not a valid JSON Schema: {e}"),
                at.clone(),
                self.doc.value(&at),
            )
            .with_label("invalid schema")
            .with_help("see https://json-schema.org/draft/2020-12 for the form of a schema");
            if let Some(n) = &note {
                d = d.with_note(n.clone());
            }
            self.out.push(d);
            return Ty::Any;
        }
        match from_schema(&declared.schema) {
            Ok(ty) => ty,
            Err(problems) => {
                for p in problems {
                    let at = format!("{base}{}", p.pointer);
                    let span = if matches!(declared.origin, Origin::Workflow { .. }) {
                        self.doc.key(&at)
                    } else {
                        self.doc.key(&base)
                    };
                    let (code, label) = match p.kind {
                        ProblemKind::Unsupported => (Code::UnsupportedSchemaConstruct, "unsupported"),
                        ProblemKind::NotAnIdentifier => (Code::NotAnIdentifier, "not a Rust name"),
                    };
                    let mut d =
                        Diagnostic::error(code, p.message, at, span).with_label(label).with_optional_help(p.help);
                    if let Some(n) = &note {
                        d = d.with_note(n.clone());
                    }
                    self.out.push(d);
                }
                Ty::Any
            }
        }
    }

    /// A switch's value and cases: the value is one reference to a string
    /// enum, a boolean or a string; the cases are values of it, and cover it
    /// (or `default` does). `None` when the value cannot be read.
    fn check_switch(&mut self, index: usize, switch: &SwitchStep) -> Option<SwitchOn> {
        let node = &self.graph.nodes[index];
        let at = format!("{}/switch", node.pointer);
        let site = Site {
            referrer: Some(index),
            position: Some(&node.path),
            who: format!("switch `{}`", switch.id),
            agent: "",
            origin: None,
        };
        let reference = match self.template(&switch.switch, &at)? {
            Template::Whole(r) => r,
            _ => {
                self.out.push(
                    Diagnostic::error(
                        Code::SwitchNotAReference,
                        format!(
                            "switch `{}` must be on one reference, such as `\"${{steps.classify.output.category}}\"`",
                            switch.id
                        ),
                        at.clone(),
                        self.doc.value(&at),
                    )
                    .with_label("not a single `${...}` reference")
                    .with_help(switch_reference_help(&switch.switch)),
                );
                return None;
            }
        };
        let span = self.doc.in_string(&at, reference.start, reference.end);
        let found = self.resolve(&reference.value, &at, span, &site)?;
        let shown = format!("`${{{}}}`", reference.value);
        let on = match (found.required(), found.is_optional()) {
            (Ty::String(Some(values)), false) => SwitchOn::Values(values.clone()),
            (Ty::Boolean, false) => SwitchOn::Values(vec!["true".into(), "false".into()]),
            (Ty::String(None), false) => SwitchOn::String,
            (other, optional) => {
                let why = match other {
                    Ty::Any => format!("the type of {shown} is not known"),
                    Ty::String(_) | Ty::Boolean if optional => format!("{shown} may be absent"),
                    _ => format!("{shown} is {}", with_article(other)),
                };
                self.out.push(
                    Diagnostic::error(
                        Code::SwitchValueType,
                        format!("switch `{}` cannot switch on its value: {why}", switch.id),
                        at.clone(),
                        span,
                    )
                    .with_label(format!("{other}"))
                    .with_help("switch on a string enum, a boolean or a string that is always there"),
                );
                return None;
            }
        };
        let cases_at = format!("{}/cases", node.pointer);
        match &on {
            SwitchOn::String if switch.default.is_none() => {
                self.out.push(
                    Diagnostic::error(
                        Code::SwitchNeedsDefault,
                        format!("switch `{}` is on a string of any value, so it needs a `default`", switch.id),
                        at.clone(),
                        span,
                    )
                    .with_label("a string, not an enum")
                    .with_help("add `\"default\": [...]` for the values no case names, or give the string an `enum` in its schema"),
                );
            }
            SwitchOn::String => {}
            SwitchOn::Values(values) => {
                for (key, _) in &switch.cases.0 {
                    if values.contains(key) {
                        continue;
                    }
                    let key_at = format!("{cases_at}/{}", escape_pointer_token(key));
                    let help = suggestion(key, values.iter().map(String::as_str))
                        .unwrap_or_else(|| format!("its values are {}", quoted(values)));
                    self.out.push(
                        Diagnostic::error(
                            Code::UnknownCase,
                            format!("case \"{key}\" of switch `{}` is not a value of {shown}", switch.id),
                            key_at.clone(),
                            self.doc.key(&key_at),
                        )
                        .with_label("never taken")
                        .with_help(help),
                    );
                }
                let missing: Vec<String> = values.iter().filter(|v| switch.cases.get(v).is_none()).cloned().collect();
                match (&switch.default, missing.is_empty()) {
                    (None, false) => self.out.push(
                        Diagnostic::error(
                            Code::MissingCase,
                            format!(
                                "switch `{}` has no case for {} of {shown}, and no `default`",
                                switch.id,
                                quoted(&missing)
                            ),
                            cases_at.clone(),
                            self.doc.key(&cases_at),
                        )
                        .with_label(format!("missing {}", quoted(&missing)))
                        .with_help("add a case for each value, or a `default` for the others"),
                    ),
                    (Some(_), true) => {
                        let default_at = format!("{}/default", node.pointer);
                        self.out.push(
                            Diagnostic::error(
                                Code::UnreachableDefault,
                                format!("the `default` of switch `{}` is never taken: its cases cover every value of {shown}", switch.id),
                                default_at.clone(),
                                self.doc.key(&default_at),
                            )
                            .with_label("unreachable")
                            .with_help("remove it, or the case it duplicates"),
                        );
                    }
                    _ => {}
                }
            }
        }
        Some(on)
    }

    /// The type of a switch's output: every branch declares one, of one type
    /// (the first case's). `None` when the switch has no output.
    fn check_case_outputs(&mut self, index: usize, switch: &SwitchStep) -> Option<Ty> {
        let node = &self.graph.nodes[index];
        let with_output: Vec<bool> = switch.branches().map(|(_, b)| b.case.output().is_some()).collect();
        if !with_output.iter().any(|x| *x) {
            return None;
        }
        let mut first: Option<(String, Ty)> = None;
        for (i, branch) in switch.branches() {
            let branch_at = format!("{}{}", node.pointer, branch.pointer());
            let Some(output) = branch.case.output() else {
                self.out.push(
                    Diagnostic::error(
                        Code::CaseOutputMissing,
                        format!(
                            "{} of switch `{}` declares no `output`, but other cases do",
                            case_name(&branch),
                            switch.id
                        ),
                        branch_at.clone(),
                        self.doc.key(&branch_at),
                    )
                    .with_label("no `output`")
                    .with_help("write it as `{\"steps\": [...], \"output\": ...}`: the switch's output must exist whichever case runs"),
                );
                continue;
            };
            let position = self.graph.end_of_case(index, i, branch.case.steps().len());
            let site = Site {
                referrer: None,
                position: Some(&position),
                who: format!("the output of {} of switch `{}`", case_name(&branch), switch.id),
                agent: "",
                origin: None,
            };
            let at = format!("{branch_at}/output");
            let ty = self.infer(output, &at, &site);
            match &first {
                None => first = Some((case_name(&branch), ty)),
                Some((first_case, expected)) => {
                    if let Err(misfit) = fits(&ty, expected) {
                        let detail = match misfit {
                            Misfit::MaybeAbsent { path } => format!("{}may be absent", at_path_prefix(&path)),
                            Misfit::MissingField { path, field } => {
                                format!("{}lacks field `{field}`", at_path_prefix(&path))
                            }
                            Misfit::Type { path, expected, found } => format!(
                                "{}is {}, not {}",
                                at_path_prefix(&path),
                                with_article(&found),
                                with_article(&expected)
                            ),
                        };
                        self.out.push(
                            Diagnostic::error(
                                Code::CaseOutputMismatch,
                                format!(
                                    "the output of {} of switch `{}` does not have the type of {first_case}'s: it {detail}",
                                    case_name(&branch),
                                    switch.id
                                ),
                                at.clone(),
                                self.doc.value(&at),
                            )
                            .with_label(format!("{ty}"))
                            .with_help(format!("every case's output has the type of the first case's output, {expected}")),
                        );
                    }
                }
            }
        }
        first.map(|(_, ty)| ty)
    }

    /// The type of a value expression (a switch case's output), checking its references.
    fn infer(&mut self, value: &Value, pointer: &str, site: &Site<'_>) -> Ty {
        match value {
            Value::String(s) => match self.template(s, pointer) {
                None => Ty::Any,
                // A literal is a string, not a one-value enum: another case may give another.
                Some(Template::Literal(_)) => Ty::String(None),
                Some(Template::Whole(r)) => {
                    let span = self.doc.in_string(pointer, r.start, r.end);
                    self.resolve(&r.value, pointer, span, site).unwrap_or(Ty::Any)
                }
                Some(Template::Interpolated(_)) => {
                    self.check_string(s, pointer, &Ty::String(None), site);
                    Ty::String(None)
                }
            },
            Value::Object(map) => {
                let mut o = ObjectTy::default();
                for (name, v) in map {
                    let ty = self.infer(v, &format!("{pointer}/{}", escape_pointer_token(name)), site);
                    o.fields.insert(name.clone(), crate::types::Field { ty, required: true, description: None });
                }
                Ty::Object(o)
            }
            Value::Array(items) => {
                let tys: Vec<Ty> =
                    items.iter().enumerate().map(|(i, v)| self.infer(v, &format!("{pointer}/{i}"), site)).collect();
                Ty::Array(Box::new(tys.into_iter().next().unwrap_or(Ty::Any)))
            }
            literal => literal_ty(literal),
        }
    }

    fn check_value(&mut self, value: &Value, pointer: &str, expected: &Ty, site: &Site<'_>) {
        match value {
            Value::String(s) => self.check_string(s, pointer, expected, site),
            Value::Object(map) => self.check_object(map, pointer, expected, site),
            Value::Array(items) => {
                let item_ty = match expected.required() {
                    Ty::Array(t) => (**t).clone(),
                    Ty::Any => Ty::Any,
                    other => {
                        self.mismatch(pointer, self.doc.value(pointer), other, &literal_ty(value), site, "");
                        Ty::Any
                    }
                };
                for (i, v) in items.iter().enumerate() {
                    self.check_value(v, &format!("{pointer}/{i}"), &item_ty, site);
                }
            }
            literal => {
                if let Err(misfit) = fits(&literal_ty(literal), expected) {
                    self.report_misfit(misfit, pointer, self.doc.value(pointer), &format!("`{literal}`"), site);
                }
            }
        }
    }

    fn check_object(&mut self, map: &Map<String, Value>, pointer: &str, expected: &Ty, site: &Site<'_>) {
        let fields = match expected.required() {
            Ty::Object(o) => Some(o),
            Ty::Any | Ty::Map(_) => None,
            other => {
                self.mismatch(pointer, self.doc.value(pointer), other, &Ty::Map(Box::new(Ty::Any)), site, "");
                None
            }
        };
        for (name, v) in map {
            let child = format!("{pointer}/{}", escape_pointer_token(name));
            let field_ty = match (fields, expected.required()) {
                (Some(o), _) => match o.fields.get(name) {
                    Some(f) => f.ty.clone(),
                    None => {
                        let help =
                            suggestion(name, o.fields.keys().map(String::as_str)).unwrap_or_else(|| field_list(o));
                        self.push(
                            Diagnostic::error(
                                Code::UnknownInputField,
                                format!("{} has no field `{name}`", whose(site, pointer)),
                                child.clone(),
                                self.doc.key(&child),
                            )
                            .with_label("unknown field")
                            .with_help(help),
                            site,
                        );
                        Ty::Any
                    }
                },
                (None, Ty::Map(t)) => (**t).clone(),
                _ => Ty::Any,
            };
            self.check_value(v, &child, &field_ty, site);
        }
        if let Some(o) = fields {
            let missing: Vec<&str> =
                o.fields.iter().filter(|(n, f)| f.required && !map.contains_key(*n)).map(|(n, _)| n.as_str()).collect();
            for name in missing {
                self.push(
                    Diagnostic::error(
                        Code::MissingInputField,
                        format!("{} requires field `{name}`, which is not given", whose(site, pointer)),
                        pointer,
                        self.doc.key(pointer),
                    )
                    .with_label(format!("`{name}` is missing"))
                    .with_help(format!("add `\"{name}\": ...` with a value of type {}", o.fields[name].ty)),
                    site,
                );
            }
        }
    }

    /// A string's template, or `None` when a reference in it is malformed (reported).
    fn template(&mut self, s: &str, pointer: &str) -> Option<Template> {
        match parse_template(s) {
            Ok(t) => Some(t),
            Err(e) => {
                let span = self.doc.in_string(pointer, e.start, e.end);
                self.out.push(
                    Diagnostic::error(Code::MalformedReference, e.message, pointer, span)
                        .with_label("malformed reference")
                        .with_optional_help(e.help),
                );
                None
            }
        }
    }

    fn check_string(&mut self, s: &str, pointer: &str, expected: &Ty, site: &Site<'_>) {
        let Some(template) = self.template(s, pointer) else { return };
        match template {
            Template::Literal(text) => {
                if let Err(misfit) = fits(&Ty::String(Some(vec![text.clone()])), expected) {
                    self.report_misfit(misfit, pointer, self.doc.value(pointer), &format!("\"{text}\""), site);
                }
            }
            Template::Whole(r) => {
                let span = self.doc.in_string(pointer, r.start, r.end);
                if let Some(found) = self.resolve(&r.value, pointer, span, site) {
                    if let Err(misfit) = fits(&found, expected) {
                        self.report_misfit(misfit, pointer, span, &format!("`${{{}}}`", r.value), site);
                    }
                }
            }
            Template::Interpolated(segments) => {
                for segment in segments {
                    let Segment::Reference(r) = segment else { continue };
                    let span = self.doc.in_string(pointer, r.start, r.end);
                    let Some(found) = self.resolve(&r.value, pointer, span, site) else { continue };
                    if found.is_optional() {
                        self.out.push(
                            Diagnostic::error(
                                Code::MaybeAbsent,
                                format!("`${{{}}}` may be absent, so it cannot be interpolated", r.value),
                                pointer,
                                span,
                            )
                            .with_label(format!("{found}"))
                            .with_help(
                                "reference a required value, or pass it whole as `\"${...}\"` into an optional field",
                            ),
                        );
                    } else if !found.is_scalar() {
                        self.out.push(not_interpolatable(&r.value, &found, pointer, span).with_help(
                            "only strings, numbers, integers and booleans interpolate; pass a whole value as `\"${...}\"` alone in the string",
                        ));
                    }
                }
                if let Err(misfit) = fits(&Ty::String(None), expected) {
                    self.report_misfit(misfit, pointer, self.doc.value(pointer), "interpolated text", site);
                }
            }
        }
    }

    /// A prompt text of LLM agent `agent`: its references read the agent's
    /// own input (set as the checker's input), and interpolate. An optional
    /// value may be absent: it then renders as nothing.
    fn check_prompt_text(&mut self, s: &str, pointer: &str, agent: &str) {
        let segments = match self.template(s, pointer) {
            None | Some(Template::Literal(_)) => return,
            Some(Template::Whole(r)) => vec![Segment::Reference(r)],
            Some(Template::Interpolated(segments)) => segments,
        };
        let site =
            Site { referrer: None, position: None, who: format!("agent `{agent}`'s prompt"), agent, origin: None };
        for segment in segments {
            let Segment::Reference(r) = segment else { continue };
            let span = self.doc.in_string(pointer, r.start, r.end);
            if let Root::Item(name) = &r.value.root {
                let (message, help) = orchestr8_schema::expr::unknown_root(name, &r.value.to_string());
                self.out.push(
                    Diagnostic::error(Code::MalformedReference, message, pointer, span)
                        .with_label("malformed reference")
                        .with_optional_help(help),
                );
                continue;
            }
            if r.value.root != Root::Input {
                self.out.push(
                    Diagnostic::error(
                        Code::PromptReference,
                        format!("`${{{}}}`: a prompt may reference only its agent's own input", r.value),
                        pointer,
                        span,
                    )
                    .with_label("not the agent's input")
                    .with_help(format!(
                        "pass the value into agent `{agent}`'s input from the step, and reference it as `${{input...}}`"
                    )),
                );
                continue;
            }
            let Some(found) = self.resolve(&r.value, pointer, span, &site) else { continue };
            if !found.required().is_scalar() {
                self.out.push(not_interpolatable(&r.value, &found, pointer, span).with_help(
                    "only strings, numbers, integers and booleans interpolate; the whole input is in the prompt anyway",
                ));
            }
        }
    }

    /// The shape a reference reads, after checking it is in scope and exists.
    fn resolve(&mut self, reference: &Reference, pointer: &str, span: Span, site: &Site<'_>) -> Option<Ty> {
        let shown = format!("`${{{reference}}}`");
        // The reference up to the segment being resolved, for messages.
        let mut reached = Reference { root: reference.root.clone(), path: Vec::new() }.to_string();
        let (mut ty, mut described) = match &reference.root {
            Root::Input if !self.declares_input && !reference.path.is_empty() => {
                self.out.push(
                    Diagnostic::error(
                        Code::NoSuchField,
                        format!("{shown}: the workflow declares no `input` schema, so its input is `{{}}`"),
                        pointer,
                        span,
                    )
                    .with_label("no workflow input")
                    .with_help("add a top-level `input` JSON Schema with this field"),
                );
                return None;
            }
            Root::Input => (self.input_ty.clone(), self.input_owner.clone()),
            Root::ExecutionId | Root::CorrelationId | Root::WorkflowId | Root::WorkflowVersion => {
                return Some(Ty::String(None))
            }
            Root::Item(_) | Root::MapIndex => {
                let (ty, described) = self.item(reference, pointer, span, site)?;
                (ty, described)
            }
            Root::StepOutput(id) => {
                let Some(&target) = self.graph.by_id.get(id.as_str()) else {
                    let help = suggestion(id, self.graph.ids())
                        .unwrap_or_else(|| "reference one of the steps declared before this one".into());
                    self.out.push(
                        Diagnostic::error(
                            Code::UnknownStep,
                            format!("{shown} references step `{id}`, which does not exist"),
                            pointer,
                            span,
                        )
                        .with_label("unknown step")
                        .with_help(help),
                    );
                    return None;
                };
                let target_node = &self.graph.nodes[target];
                if !has_output(target_node.step) {
                    let kind = target_node.step.children_key().unwrap_or("block");
                    let help = if kind == "switch" {
                        format!("give every case of `{id}` an `output` (`{{\"steps\": [...], \"output\": ...}}`), or reference a step inside it")
                    } else {
                        format!("reference the output of a step inside `{id}` instead")
                    };
                    self.out.push(
                        Diagnostic::error(
                            Code::BlockHasNoOutput,
                            format!("{shown} references `{id}`, a {kind} block, which has no output"),
                            pointer,
                            span,
                        )
                        .with_label("a block has no output")
                        .with_help(help),
                    );
                    return None;
                }
                if let Some(position) = site.position {
                    let me = &site.who;
                    let visibility = match site.referrer {
                        Some(referrer) => self.graph.visibility(referrer, target),
                        None => self.graph.visibility_from(position, target),
                    };
                    let label = match visibility {
                        Visibility::OtherCase(_) => "never runs with this case",
                        Visibility::InsideMap(_) => "one output per item",
                        _ => "not finished yet",
                    };
                    let problem = match visibility {
                        Visibility::Visible => None,
                        Visibility::Itself => Some((format!("{me} cannot read its own output"), "a step's output exists only after it has run".to_owned())),
                        Visibility::Concurrent(block) => Some((
                            format!("{me} cannot read the output of `{id}`: both run concurrently in parallel block `{block}`"),
                            format!("move the step that needs `{id}` after the parallel block `{block}`"),
                        )),
                        Visibility::Later => Some((
                            format!("{me} cannot read the output of `{id}`, which runs later"),
                            match site.referrer {
                                Some(r) => format!("move `{id}` before `{}`, or the reference into a later step", self.graph.nodes[r].step.id()),
                                None => format!("move `{id}` before the reference, or the reference into a later step"),
                            },
                        )),
                        Visibility::Enclosing => Some((
                            format!("{me} cannot read the output of `{id}`, which encloses it"),
                            "reference a step that has finished before this one starts".to_owned(),
                        )),
                        Visibility::Inside => Some((
                            format!("{me} cannot read the output of `{id}`, which runs inside it"),
                            "reference a step that has finished before this one starts".to_owned(),
                        )),
                        Visibility::InsideMap(map) => Some((
                            format!("{me} cannot read the output of `{id}`: it runs once per item of map `{map}`, outside of which it has no one output"),
                            format!("read the list of the items' outputs, `${{steps.{map}.output}}`, after the map"),
                        )),
                        Visibility::OtherCase(switch) => Some((
                            format!("{me} cannot read the output of `{id}`: it is in another case of switch `{switch}`, which never runs when this one does"),
                            format!("read `{id}` after the switch `{switch}`, where it is optional, or give the switch an `output`"),
                        )),
                    };
                    if let Some((message, help)) = problem {
                        self.out.push(
                            Diagnostic::error(Code::StepNotInScope, message, pointer, span)
                                .with_label(label)
                                .with_help(help),
                        );
                        return None;
                    }
                } else if let Some(map) = self.graph.enclosing_maps(target).last() {
                    // The workflow's output reads any step, but a step in a
                    // map's body has one output per item, none of them the one.
                    let map = self.graph.nodes[map].step.id();
                    self.out.push(
                        Diagnostic::error(
                            Code::StepNotInScope,
                            format!("the workflow's output cannot read the output of `{id}`: it runs once per item of map `{map}`, outside of which it has no one output"),
                            pointer,
                            span,
                        )
                        .with_label("one output per item")
                        .with_help(format!("read the list of the items' outputs, `${{steps.{map}.output}}`")),
                    );
                    return None;
                }
                let producer = match target_node.step {
                    Step::Agent(s) => format!("agent `{}`", s.agent),
                    Step::Wait(w) => format!("the payload of signal `{}`", w.wait.signal),
                    Step::Map(m) => format!("the outputs of map `{}`'s items", m.id),
                    _ => "the output of the case it took".into(),
                };
                let ty = self.outputs[target].clone();
                // A step in a switch's case may not have run, unless read from inside that case.
                let skippable = self.graph.maybe_skipped(site.position.unwrap_or(&[]), target);
                (if skippable { ty.optional() } else { ty }, format!("the output of step `{id}` ({producer})"))
            }
        };
        for segment in &reference.path {
            let optional = ty.is_optional();
            let next = match (ty.required(), segment) {
                (Ty::Any, _) => Ty::Any,
                (Ty::Object(o), PathSegment::Field(name)) => match o.fields.get(name) {
                    Some(f) => f.ty.clone(),
                    None => {
                        let help =
                            suggestion(name, o.fields.keys().map(String::as_str)).unwrap_or_else(|| field_list(o));
                        self.out.push(
                            Diagnostic::error(
                                Code::NoSuchField,
                                format!("{shown}: {described} has no field `{name}`"),
                                pointer,
                                span,
                            )
                            .with_label("no such field")
                            .with_help(help),
                        );
                        return None;
                    }
                },
                (Ty::Map(v), PathSegment::Field(_)) => (**v).clone().optional(),
                (Ty::Array(item), PathSegment::Index(_)) => (**item).clone(),
                (other, _) => {
                    let what = match segment {
                        PathSegment::Field(name) => format!("field `{name}`"),
                        PathSegment::Index(i) => format!("index [{i}]"),
                    };
                    self.out.push(
                        Diagnostic::error(
                            Code::NoSuchField,
                            format!("{shown}: {described} is {}, which has no {what}", with_article(other)),
                            pointer,
                            span,
                        )
                        .with_label(format!("{other}")),
                    );
                    return None;
                }
            };
            ty = if optional { next.optional() } else { next };
            reached.push_str(&segment.to_string());
            described = format!("`{reached}`");
        }
        Some(ty)
    }

    /// The item shape of `map` (graph index `index`): its `over` is one
    /// reference to a list that is always there.
    fn map_item(&mut self, map: &orchestr8_schema::ast::MapStep, index: usize, pointer: &str) -> Ty {
        let at = format!("{pointer}/map/over");
        let node = &self.graph.nodes[index];
        let site = Site {
            referrer: Some(index),
            position: Some(&node.path),
            who: format!("map `{}`", map.id),
            agent: "",
            origin: None,
        };
        let reference = match self.template(&map.map.over, &at) {
            None => return Ty::Any,
            Some(Template::Whole(r)) => r,
            Some(_) => {
                self.out.push(
                    Diagnostic::error(
                        Code::MapOverNotList,
                        format!("map `{}` maps over text, not a list", map.id),
                        at.clone(),
                        self.doc.value(&at),
                    )
                    .with_label("not one reference")
                    .with_help(
                        "write one reference to a list alone in the string, e.g. `\"${steps.split.output.documents}\"`",
                    ),
                );
                return Ty::Any;
            }
        };
        let span = self.doc.in_string(&at, reference.start, reference.end);
        let Some(found) = self.resolve(&reference.value, &at, span, &site) else { return Ty::Any };
        match found {
            Ty::Array(item) => *item,
            Ty::Any => Ty::Any,
            other => {
                let (label, help) = if other.is_optional() {
                    ("may be absent", "map over a list that is always there: a required field of a step that fails the workflow on error")
                } else {
                    ("not a list", "map over a list (a JSON Schema `array`)")
                };
                self.out.push(
                    Diagnostic::error(
                        Code::MapOverNotList,
                        format!(
                            "map `{}` maps over `${{{}}}`, which is {}, not a list that is always there",
                            map.id,
                            reference.value,
                            with_article(&other)
                        ),
                        at.clone(),
                        span,
                    )
                    .with_label(label)
                    .with_help(help),
                );
                Ty::Any
            }
        }
    }

    /// The shape of `${NAME...}` (a map's item) or `${map.index}`, read by
    /// the step of `site`, and what it is (for messages).
    fn item(&mut self, reference: &Reference, pointer: &str, span: Span, site: &Site<'_>) -> Option<(Ty, String)> {
        let maps: Vec<usize> = site.position.map(|p| self.graph.maps_at(p).collect()).unwrap_or_default();
        let found = match &reference.root {
            Root::MapIndex => maps.first().map(|&m| (Ty::Integer, m)),
            Root::Item(name) => maps.iter().find_map(|&m| match self.graph.nodes[m].step {
                Step::Map(map) if map.map.item == *name => Some((self.items.get(&m).cloned().unwrap_or(Ty::Any), m)),
                _ => None,
            }),
            _ => None,
        };
        if let Some((ty, m)) = found {
            let map = self.graph.nodes[m].step.id();
            return Some((ty, format!("the item of map `{map}`")));
        }
        let shown = format!("`${{{reference}}}`");
        let owner = match &reference.root {
            Root::Item(name) => self.graph.nodes.iter().find_map(|n| match n.step {
                Step::Map(m) if m.map.item == *name => Some(m.id.as_str()),
                _ => None,
            }),
            _ => None,
        };
        let diagnostic = match (&reference.root, owner) {
            (Root::Item(name), None) => {
                let (message, help) = orchestr8_schema::expr::unknown_root(name, &reference.to_string());
                Diagnostic::error(Code::MalformedReference, message, pointer, span)
                    .with_label("malformed reference")
                    .with_optional_help(help)
            }
            (Root::Item(_), Some(map)) => Diagnostic::error(
                Code::MapItemOutOfScope,
                format!("{shown} is the item of map `{map}`, and is read only inside its body"),
                pointer,
                span,
            )
            .with_label("outside the map")
            .with_help(format!(
                "read it from a step inside the body of `{map}`, or read the map's output `${{steps.{map}.output}}` here"
            )),
            _ => Diagnostic::error(
                Code::MapItemOutOfScope,
                format!("{shown} is read only inside a map's body"),
                pointer,
                span,
            )
            .with_label("outside any map")
            .with_help("`${map.index}` is the index of the item a map's body runs for"),
        };
        self.out.push(diagnostic);
        None
    }

    fn report_misfit(&mut self, misfit: Misfit, pointer: &str, span: Span, shown: &str, site: &Site<'_>) {
        match misfit {
            Misfit::Type { path, expected, found } => self.mismatch(pointer, span, &expected, &found, site, &format!("{shown}{}", at_path(&path))),
            Misfit::MaybeAbsent { path } => self.push(
                Diagnostic::error(Code::MaybeAbsent, format!("{shown}{} may be absent, but {} is required", at_path(&path), field_name(site, pointer)), pointer, span)
                    .with_label("may be absent")
                    .with_help("the value is optional (an optional field, or the output of an `onError: \"continue\"` step): pass it only into an optional field"),
                site,
            ),
            Misfit::MissingField { path, field } => self.push(
                Diagnostic::error(Code::TypeMismatch, format!("{shown}{} lacks field `{field}`, which {} requires", at_path(&path), field_name(site, pointer)), pointer, span)
                    .with_label(format!("no `{field}`")),
                site,
            ),
        }
    }

    fn mismatch(&mut self, pointer: &str, span: Span, expected: &Ty, found: &Ty, site: &Site<'_>, shown: &str) {
        let subject = if shown.is_empty() { "the value".to_owned() } else { shown.to_owned() };
        // A literal's own one-value enum would read oddly: call it a string.
        let found = match found {
            Ty::String(Some(v)) if v.len() == 1 => &Ty::String(None),
            other => other,
        };
        let found_text = found.to_string();
        self.push(
            Diagnostic::error(
                Code::TypeMismatch,
                format!(
                    "type mismatch: {subject} is {}, but {} takes {}",
                    with_article(found),
                    field_name(site, pointer),
                    with_article(expected)
                ),
                pointer,
                span,
            )
            .with_label(format!("expected {expected}, found {found_text}")),
            site,
        );
    }

    /// Adds a diagnostic, with a note naming where the consumer's schema is declared.
    fn push(&mut self, mut d: Diagnostic, site: &Site<'_>) {
        if let Some(origin) = &site.origin {
            d = d.with_note(format!("the input of agent `{}` is declared at {origin}", site.agent));
        }
        self.out.push(d);
    }
}

/// A reference to a value that is not text-like, inside interpolated text
/// (a step input or a prompt); the caller says what to do instead.
fn not_interpolatable(reference: &Reference, found: &Ty, pointer: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        Code::NotInterpolatable,
        format!("`${{{reference}}}` is {}, which cannot be interpolated into text", with_article(found)),
        pointer,
        span,
    )
    .with_label(format!("{found}"))
}

/// "case \"bug\"", or "the `default` case".
fn case_name(branch: &orchestr8_schema::ast::Branch<'_>) -> String {
    match branch.value {
        Some(v) => format!("case \"{v}\""),
        None => "the `default` case".into(),
    }
}

/// `"a"`, `"b"` and `"c"`.
fn quoted(values: &[String]) -> String {
    let q: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    match q.as_slice() {
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
        [] => String::new(),
    }
}

fn at_path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("at `{path}` ")
    }
}

fn at_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" (at `{path}`)")
    }
}

/// "field `text` of agent `classify`'s input", from the value's pointer.
fn field_name(site: &Site<'_>, pointer: &str) -> String {
    if site.referrer.is_none() {
        return "the workflow's output".into();
    }
    whose(site, pointer)
}

/// "field `meta.tags[1]` of agent `score`", or "the input of agent `score`".
fn whose(site: &Site<'_>, pointer: &str) -> String {
    let Some(field_path) = pointer.split_once("/input/").map(|(_, p)| p) else {
        return format!("the input of agent `{}`", site.agent);
    };
    let mut shown = String::new();
    for segment in field_path.split('/') {
        if segment.parse::<usize>().is_ok() {
            shown.push_str(&format!("[{segment}]"));
        } else {
            if !shown.is_empty() {
                shown.push('.');
            }
            shown.push_str(&segment.replace("~1", "/").replace("~0", "~"));
        }
    }
    format!("field `{shown}` of agent `{}`", site.agent)
}

fn field_list(o: &ObjectTy) -> String {
    if o.fields.is_empty() {
        "it has no fields".into()
    } else {
        let names: Vec<String> = o.fields.keys().map(|k| format!("`{k}`")).collect();
        format!("its fields are {}", names.join(", "))
    }
}

fn with_article(ty: &Ty) -> String {
    let s = ty.to_string();
    match s.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {s}"),
        _ => format!("a {s}"),
    }
}

/// Pointers of the `pattern` and `format` keywords in a schema.
fn unchecked_keywords(schema: &Value, at: &str) -> Vec<String> {
    let mut found = Vec::new();
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                // Values, not schemas: a `format` member of an example is data.
                if matches!(key.as_str(), "examples" | "default" | "const" | "enum") {
                    continue;
                }
                let here = format!("{at}/{}", escape_pointer_token(key));
                // Maps of names to schemas: a property may be named `examples`.
                if let (
                    "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas",
                    Value::Object(named),
                ) = (key.as_str(), value)
                {
                    for (name, sub) in named {
                        found.extend(unchecked_keywords(sub, &format!("{here}/{}", escape_pointer_token(name))));
                    }
                    continue;
                }
                if matches!(key.as_str(), "pattern" | "format") && value.is_string() {
                    found.push(here);
                } else {
                    found.extend(unchecked_keywords(value, &here));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                found.extend(unchecked_keywords(item, &format!("{at}/{i}")));
            }
        }
        _ => {}
    }
    found
}

/// The help of E0440: a bare path (the `${...}` forgotten) gets the
/// reference it likely meant.
fn switch_reference_help(text: &str) -> String {
    let bare = text.trim();
    let is_path = !bare.is_empty()
        && !bare.contains("${")
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '[' | ']'));
    if is_path && bare.contains('.') {
        format!("did you mean `\"${{{bare}}}\"`? A switch's value is a reference written `${{...}}`")
    } else {
        "write the reference alone in the string; text around it would make a new string each time".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switch_on_a_bare_path_is_told_the_reference_it_meant() {
        assert_eq!(
            switch_reference_help("input.plan"),
            "did you mean `\"${input.plan}\"`? A switch's value is a reference written `${...}`"
        );
        assert!(switch_reference_help("plan: ${input.plan}").starts_with("write the reference alone"));
        assert!(switch_reference_help("billing").starts_with("write the reference alone"));
    }

    #[test]
    fn unchecked_keywords_are_found_in_schemas_not_in_data() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "a": {"type": "string", "pattern": "^x"},
                "format": {"type": "string", "format": "email"},
                "examples": {"type": "string", "pattern": "^y"}
            },
            "examples": [{"format": "pdf", "pattern": "p"}],
            "default": {"pattern": "p"},
            "const": {"format": "f"},
            "enum": [{"format": "f"}]
        });
        assert_eq!(
            unchecked_keywords(&schema, "/input"),
            ["/input/properties/a/pattern", "/input/properties/format/format", "/input/properties/examples/pattern"]
        );
    }
}
