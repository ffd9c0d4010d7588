//! Lowering: a workflow that passed the type layer, with its agents'
//! declarations, becomes a [`CheckedWorkflow`]. What only the Rust types can
//! tell (a literal too large for the field's integer width, an output field
//! no identifier can name) is reported here, located like every other finding.

mod map;
mod value;

use std::collections::{BTreeMap, BTreeSet};

use orchestr8_agent_decl::emit::doc_lines_of;
use orchestr8_agent_decl::{expected_type_names, nested_type_name};
use orchestr8_runtime::policy::Policy;
use orchestr8_schema::ast::{AgentDefinition, OnError, PolicyRef, Step, SwitchStep, Workflow};
use orchestr8_schema::expr::Template;
use orchestr8_schema::source::escape_pointer_token;
use proc_macro2::{Ident, Span};
use serde_json::Value;

use self::map::{MapContext, Placement};
use self::value::{Scope, Slot};
use super::types::{self, FloatTy, IntTy, Names, RustTy, StructTy, TypePath};
use super::value::{Absent, Const, Expr};
use super::{
    AgentCrate, AgentImpl, CheckedLlmAgent, CheckedStep, CheckedSwitch, CheckedWait, CheckedWorkflow, NamedPolicy,
    PlanNode, PolicySource, SwitchArms,
};
use crate::agents::FoundAgent;
use crate::diagnostics::{Code, Diagnostic};
use crate::types::Ty;
use crate::validate::graph::{post_order_key, Graph, Position};
use crate::validate::typecheck::SwitchOn;
use crate::validate::Doc;

/// Why lowering stopped.
#[derive(Debug)]
pub enum Lowered {
    /// A located diagnostic says why.
    Reported,
    /// Validation accepted what cannot be lowered: a bug in orchestr8.
    Internal(String),
}

/// The result of a lowering step.
pub type Lowering<T> = Result<T, Lowered>;

fn internal<T>(message: String) -> Lowering<T> {
    Err(Lowered::Internal(message))
}

/// What lowering reads: the outcome of the earlier layers.
pub struct Input<'a> {
    /// The workflow.
    pub workflow: &'a Workflow,
    /// Its text, hashed into the definition's identity.
    pub text: &'a str,
    /// Its step tree, indexed.
    pub graph: &'a Graph<'a>,
    /// The document, to locate findings.
    pub doc: &'a Doc<'a>,
    /// The input's shape, as the type layer read it.
    pub input: &'a Ty,
    /// Every Rust agent's declaration, by agent id.
    pub declarations: &'a BTreeMap<String, FoundAgent>,
    /// Every LLM agent's input and output shapes, by agent id.
    pub llm: &'a BTreeMap<String, (Ty, Ty)>,
    /// Every wait step's payload shape, by step id.
    pub waits: &'a BTreeMap<String, Ty>,
    /// What every switch is on, by step id.
    pub switches: &'a BTreeMap<String, SwitchOn>,
}

/// Lowers a valid workflow; findings (and internal errors) go to `out`.
pub fn lower(input: &Input<'_>, out: &mut Vec<Diagnostic>) -> Option<CheckedWorkflow> {
    match lower_inner(input, out) {
        Ok(checked) => Some(checked),
        Err(Lowered::Reported) => None,
        Err(Lowered::Internal(message)) => {
            out.push(
                Diagnostic::error(
                    Code::Internal,
                    format!("internal compiler error: {message}"),
                    "",
                    Default::default(),
                )
                .with_help("please report this, with the workflow, to the orchestr8 issue tracker"),
            );
            None
        }
    }
}

fn lower_inner(input: &Input<'_>, out: &mut Vec<Diagnostic>) -> Lowering<CheckedWorkflow> {
    let wf = input.workflow;
    let mut names = Names::default();
    // The input takes its own name first; the other items every crate defines are reserved.
    let mut input_types = Vec::new();
    // An object is the struct `WorkflowInput`; anything else is named by an alias of that
    // name, so its own types are `WorkflowInputValue...`.
    let base = if matches!(input.input, Ty::Object(_)) { "WorkflowInput" } else { "WorkflowInputValue" };
    let input_ty = types::from_ty(base, input.input, &mut names, &mut input_types)
        .map_err(|e| Lowered::Internal(format!("the input schema: {e}")))?;
    for taken in ["WorkflowInput", "State", "WorkflowOutput"] {
        names.unique(taken);
    }

    // Each agent's types, at their paths in its crate.
    let mut agents = BTreeMap::new();
    for (id, found) in input.declarations {
        let module =
            TypePath { krate: Some(found.crate_ident.clone()), modules: found.modules.clone(), name: String::new() };
        let (input_name, output_name, agent_name) = expected_type_names(&found.decl.function.to_string());
        let declared = |name: &str, list| {
            types::from_decl(&module, name, list).map_err(|e| Lowered::Internal(format!("agent {id}: {e}")))
        };
        let types = (declared(&input_name, &found.decl.args.input)?, declared(&output_name, &found.decl.args.output)?);
        agents.insert(id.as_str(), (AgentImpl::Rust(module.sibling(agent_name)), types));
    }
    // Each LLM agent's types, defined in the generated crate.
    let mut agent_types = Vec::new();
    let mut llm_agents = Vec::new();
    let mut agent_fns = Names::default();
    for (id, (input_shape, output_shape)) in input.llm {
        // An agent no step calls is only warned about: nothing is generated for it.
        let called = input.graph.nodes.iter().any(|n| matches!(n.step, Step::Agent(s) if s.agent == *id));
        if !called {
            continue;
        }
        let Some(AgentDefinition::Llm(definition)) = wf.agents.get(id) else {
            return internal(format!("agent {id} is not an LLM agent"));
        };
        // Named as a Rust agent's would be: `triage` has `TriageInput` and `TriageOutput`.
        let (input_name, output_name, _) = expected_type_names(id);
        let mut local = |name: &str, shape: &Ty| {
            types::from_ty(name, shape, &mut names, &mut agent_types)
                .map_err(|e| Lowered::Internal(format!("agent {id}'s {name}: {e}")))
        };
        let types = (local(&input_name, input_shape)?, local(&output_name, output_shape)?);
        let version = definition.common.version.clone().unwrap_or_else(|| wf.metadata.version.clone());
        let json = serde_json::to_string(&AgentDefinition::Llm(definition.clone()))
            .map_err(|e| Lowered::Internal(format!("agent {id}: {e}")))?;
        agents.insert(id.as_str(), (AgentImpl::Llm(llm_agents.len()), types.clone()));
        llm_agents.push(CheckedLlmAgent {
            id: id.clone(),
            version,
            ident: Ident::new(&agent_fns.unique(&format!("agent_{}", slot_name(id))), Span::call_site()),
            definition: json,
            input: types.0,
            output: types.1,
        });
    }

    // Each agent step's output slot.
    let agent_steps: Vec<(usize, &orchestr8_schema::ast::AgentStep)> = input
        .graph
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, node)| match node.step {
            Step::Agent(s) => Some((i, s)),
            _ => None,
        })
        .collect();
    let mut slots = BTreeMap::new();
    // The state's fields: snake_case (`say__it` is `say_it`), not keywords, distinct, beside `input` and `ids`.
    let mut fields = Names::default();
    for taken in ["input", "ids"] {
        fields.unique(taken);
    }
    let placement = Placement::of(input);
    if !placement.number.is_empty() {
        // An item state's own fields, beside its steps' outputs.
        for taken in ["up", "index", "item"] {
            fields.unique(taken);
        }
    }
    for (node_index, step) in &agent_steps {
        let Some((_, (_, output))) = agents.get(step.agent.as_str()) else {
            return internal(format!("agent {} has no declaration", step.agent));
        };
        let slot = Slot {
            field: Ident::new(&fields.unique(&slot_name(&step.id)), Span::call_site()),
            ty: output.clone(),
            may_be_empty: step.on_error == OnError::Continue,
            level: placement.level(*node_index),
        };
        slots.insert(step.id.clone(), slot);
    }
    // Each wait step's payload type (defined in the crate) and slot.
    let mut waits = Vec::new();
    for node in &input.graph.nodes {
        let Step::Wait(step) = node.step else { continue };
        let Some(shape) = input.waits.get(&step.id) else {
            return internal(format!("wait {} has no payload type", step.id));
        };
        let name = format!("{}Payload", nested_type_name("", &step.id));
        let payload = types::from_ty(&name, shape, &mut names, &mut agent_types)
            .map_err(|e| Lowered::Internal(format!("wait {}'s payload: {e}", step.id)))?;
        let field = Ident::new(&fields.unique(&slot_name(&step.id)), Span::call_site());
        let may_be_empty = step.on_error == OnError::Continue;
        slots.insert(step.id.clone(), Slot { field: field.clone(), ty: payload.clone(), may_be_empty, level: 0 });
        let mut docs = vec![format!("Step `{}`: waits for signal `{}`.", step.id, step.wait.signal)];
        if let Some(d) = &step.description {
            docs.push(String::new());
            docs.extend(doc_lines_of(d));
        }
        let timeout = step.wait.timeout.as_ref().map(|t| t.to_std());
        let timeout_ms = match timeout {
            Some(Ok(d)) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            Some(Err(e)) => return internal(format!("wait {}: {e}", step.id)),
            None => None,
        };
        waits.push(CheckedWait {
            id: step.id.clone(),
            docs,
            slot: field,
            signal: step.wait.signal.clone(),
            schema: serde_json::to_string(&step.wait.schema).expect("a JSON value serializes"),
            payload,
            timeout_ms,
            continue_on_error: may_be_empty,
        });
    }
    // The maps' output slots: their types are their bodies' (no switch
    // stands in a body, nor a map in a case: `validate::graph` says so).
    map::slots(input, &placement, &mut slots, &mut fields)?;
    // Each switch, inner and earlier ones first (a case's output may read
    // them); its output slot is there for the switches and steps after it.
    let mut switches = Vec::new();
    let mut switch_nodes: Vec<usize> = input
        .graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.step, Step::Switch(_)))
        .map(|(i, _)| i)
        .collect();
    switch_nodes.sort_by_key(|&i| post_order_key(&input.graph.nodes[i].path));
    let mut output_types = Vec::new();
    let mut failed = false;
    for index in switch_nodes {
        let Step::Switch(switch) = input.graph.nodes[index].step else { continue };
        let field = Ident::new(&fields.unique(&slot_name(&switch.id)), Span::call_site());
        let lowered = lower_switch(input, index, switch, &slots, &field, &input_ty, &mut names, &mut output_types, out);
        let checked = match lowered {
            Ok(c) => c,
            Err(Lowered::Reported) => {
                failed = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Some((ty, _)) = &checked.output {
            // Switches stand outside maps' bodies (`validate::graph`).
            let slot = Slot { field: field.clone(), ty: ty.clone(), may_be_empty: false, level: 0 };
            slots.insert(switch.id.clone(), slot);
        }
        switches.push(checked);
    }
    // In document order, as the other steps.
    switches.sort_by_key(|s| input.graph.by_id.get(s.id.as_str()).copied());
    let everywhere = skippable_at(input.graph, &[]);
    let map_cx = MapContext { input_ty: &input_ty, slots: &slots, placement: &placement };
    let (mut maps, frames) = map::maps(input, &map_cx, &mut names, out)?;
    let scope = Scope {
        input: &input_ty,
        slots: &slots,
        workflow: (&wf.metadata.id, &wf.metadata.version),
        doc: input.doc,
        maps: &[],
        skippable: &everywhere,
    };

    // Each step: its input, its policy.
    let mut policies: Vec<NamedPolicy> = Vec::new();
    let mut steps = Vec::new();
    for (node_index, step) in &agent_steps {
        let (agent_impl, (input_type, output_type)) = &agents[step.agent.as_str()];
        let pointer = format!("{}/input", input.graph.nodes[*node_index].pointer);
        let around = map::frames_at(&placement.enclosing[*node_index], &frames)?;
        let skippable = skippable_at(input.graph, &input.graph.nodes[*node_index].path);
        let scope = Scope { maps: &around, skippable: &skippable, ..scope };
        let value = scope.value(&Value::Object(step.input.clone()), input_type, &pointer, out);
        let value = match value {
            Ok(v) => v,
            Err(Lowered::Reported) => {
                // Go on: every literal of every step is checked in one run.
                failed = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        let policy = policy_index(wf, step, &mut policies, &mut names)?;
        let config =
            wf.agents.get(&step.agent).and_then(|a| a.common().config.as_ref()).map(|c| Value::Object(c.clone()));
        let mut docs = vec![format!("Step `{}`: calls agent `{}`.", step.id, step.agent)];
        if let Some(d) = &step.description {
            docs.push(String::new());
            docs.extend(doc_lines_of(d));
        }
        steps.push(CheckedStep {
            id: step.id.clone(),
            docs,
            slot: slots[&step.id].field.clone(),
            agent: step.agent.clone(),
            agent_impl: agent_impl.clone(),
            input_type: input_type.clone(),
            output_type: output_type.clone(),
            input: value,
            policy,
            continue_on_error: step.on_error == OnError::Continue,
            config,
            state: placement.state(*node_index),
        });
    }

    // The result: the `output` expression, or the last step's output.
    let output = match &wf.output {
        Some(expr) => infer_output(&scope, expr, "/output", "WorkflowOutput", &mut names, &mut output_types, out),
        None => {
            let Some(last) = wf.steps.last() else { return internal("a workflow has steps".into()) };
            let Some(slot) = slots.get(last.id()) else { return internal("the last step is an agent step".into()) };
            let (read, ty) = scope.read(&orchestr8_schema::expr::Reference {
                root: orchestr8_schema::expr::Root::StepOutput(last.id().to_owned()),
                path: Vec::new(),
            })?;
            debug_assert_eq!(ty, slot.ty);
            Ok(owned(read, ty))
        }
    };
    let (output, output_value) = output?;
    if failed {
        return Err(Lowered::Reported);
    }

    let mut reads = Vec::new();
    output_value.reads(&mut reads);
    steps.iter().for_each(|s| s.input.reads(&mut reads));
    maps.iter().for_each(|m| m.over.reads(&mut reads));
    for switch in &switches {
        switch.on.reads(&mut reads);
        switch.output.iter().flat_map(|(_, values)| values).for_each(|v| v.reads(&mut reads));
    }
    let reads_input = reads.iter().any(|r| r.root == super::value::Root::Input);
    let reads_ids =
        reads.iter().any(|r| matches!(r.root, super::value::Root::ExecutionId | super::value::Root::CorrelationId));

    let mut crates: Vec<AgentCrate> = Vec::new();
    for agent in wf.agents.values() {
        let AgentDefinition::Rust(rust) = agent else { continue };
        if !crates.iter().any(|c| c.name == rust.crate_name) {
            crates.push(AgentCrate { name: rust.crate_name.clone(), path: rust.path.clone() });
        }
    }
    let index_of: BTreeMap<&str, PlanNode> = (steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), PlanNode::Step(i))))
    .chain(waits.iter().enumerate().map(|(i, w)| (w.id.as_str(), PlanNode::Wait(i))))
    .chain(
        switches.iter().enumerate().map(|(i, s)| (s.id.as_str(), PlanNode::Switch { index: i, branches: Vec::new() })),
    )
    .chain(maps.iter().enumerate().map(|(i, m)| (m.id.as_str(), PlanNode::Map(i))))
    .collect();
    let plan = plan(&wf.steps, &index_of);
    let mut bodies = Vec::new();
    for node in &input.graph.nodes {
        let Step::Map(m) = node.step else { continue };
        let PlanNode::Map(i) = index_of[m.id.as_str()] else { return internal(format!("map {}", m.id)) };
        let body = self::plan(std::slice::from_ref(&*m.map.step), &index_of);
        let Some(body) = body.into_iter().next() else { return internal(format!("map {} has no body", m.id)) };
        bodies.push((i, body));
    }
    for (i, body) in bodies {
        *maps[i].body = body;
    }
    map::mark_reads(&mut maps, &steps);
    Ok(CheckedWorkflow {
        id: wf.metadata.id.clone(),
        version: wf.metadata.version.clone(),
        docs: module_docs(wf),
        about: wf.metadata.description.clone().or_else(|| wf.metadata.name.clone()),
        definition_hash: definition_hash(input.text),
        input: input_ty,
        input_schema: serde_json::to_string(
            wf.input.as_ref().unwrap_or(&serde_json::json!({"type": "object", "additionalProperties": false})),
        )
        .expect("a JSON value serializes"),
        output,
        output_value,
        input_types,
        output_types,
        reads_input,
        reads_ids,
        steps,
        waits,
        maps,
        switches,
        plan,
        policies,
        crates,
        llm_agents,
        agent_types,
        max_tokens: wf.limits.as_ref().and_then(|l| l.max_tokens),
    })
}

/// The state field of a step (and the name its functions are made from):
/// snake_case, never a keyword (`self_` is `self` in snake_case, so `self_`).
fn slot_name(id: &str) -> String {
    let name = orchestr8_agent_decl::rust_field_name(id);
    if orchestr8_agent_decl::ident::is_keyword(&name) {
        format!("{name}_")
    } else {
        name
    }
}

/// The index of the step's policy among the distinct ones, adding it if new.
fn policy_index(
    wf: &Workflow,
    step: &orchestr8_schema::ast::AgentStep,
    policies: &mut Vec<NamedPolicy>,
    names: &mut Names,
) -> Lowering<usize> {
    let source = match &step.policy {
        None => PolicySource::Default,
        Some(PolicyRef::Named(name)) => PolicySource::Named(name.clone()),
        Some(PolicyRef::Inline(_)) => PolicySource::Inline(step.id.clone()),
    };
    let layers =
        wf.policy_layers(step).ok_or_else(|| Lowered::Internal(format!("step {}: unknown policy", step.id)))?;
    let policy = Policy::resolve(layers).map_err(|e| Lowered::Internal(format!("step {}: {e}", step.id)))?;
    if let Some(i) = policies.iter().position(|p| p.policy == policy) {
        policies[i].steps.push(step.id.clone());
        return Ok(i);
    }
    let base = match &source {
        PolicySource::Default => "policy_default".to_owned(),
        // snake_case either way (`2x` is `policy_2x`, `say__it` `policy_of_say_it`).
        PolicySource::Named(name) => {
            format!("policy_{}", orchestr8_agent_decl::rust_field_name(name).trim_start_matches('_'))
        }
        PolicySource::Inline(id) => format!("policy_of_{}", slot_name(id)),
    };
    let ident = Ident::new(&names.unique(&base), Span::call_site());
    let over_default = wf.policies.contains_key("default");
    policies.push(NamedPolicy { ident, source, over_default, policy, steps: vec![step.id.clone()] });
    Ok(policies.len() - 1)
}

/// The plan below `steps`: agent and wait steps by index, blocks as written
/// (a sequence of one step is that step).
fn plan(steps: &[Step], index_of: &BTreeMap<&str, PlanNode>) -> Vec<PlanNode> {
    steps
        .iter()
        .map(|step| match step {
            Step::Agent(_) | Step::Wait(_) | Step::Map(_) => index_of[step.id()].clone(),
            Step::Parallel(p) => PlanNode::Parallel {
                id: p.id.clone(),
                fail_fast: p.fail_fast,
                children: p.parallel.iter().flat_map(|c| plan(std::slice::from_ref(c), index_of)).collect(),
            },
            Step::Sequence(s) => {
                let mut children = plan(&s.sequence, index_of);
                if children.len() == 1 {
                    children.remove(0)
                } else {
                    PlanNode::Sequence(children)
                }
            }
            Step::Switch(s) => {
                let index = match index_of.get(s.id.as_str()) {
                    Some(PlanNode::Switch { index, .. }) => *index,
                    _ => usize::MAX,
                };
                PlanNode::Switch {
                    index,
                    branches: s.branches().map(|(_, b)| plan(b.case.steps(), index_of)).collect(),
                }
            }
        })
        .collect()
}

/// The steps with an output, inside a switch's case, that may not have run
/// at `position` (the type layer made their outputs optional there).
pub(super) fn skippable_at(graph: &Graph<'_>, position: &Position<'_>) -> BTreeSet<String> {
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, n)| !matches!(n.step, Step::Parallel(_) | Step::Sequence(_)) && graph.maybe_skipped(position, *i))
        .map(|(_, n)| n.step.id().to_owned())
        .collect()
}

/// A switch: the value it is on, its arms, and its output.
#[allow(clippy::too_many_arguments)]
fn lower_switch(
    input: &Input<'_>,
    index: usize,
    switch: &SwitchStep,
    slots: &BTreeMap<String, Slot>,
    field: &Ident,
    input_ty: &RustTy,
    names: &mut Names,
    defined: &mut Vec<RustTy>,
    out: &mut Vec<Diagnostic>,
) -> Lowering<CheckedSwitch> {
    let node = &input.graph.nodes[index];
    let wf = input.workflow;
    let skippable = skippable_at(input.graph, &node.path);
    let scope = Scope {
        input: input_ty,
        slots,
        workflow: (&wf.metadata.id, &wf.metadata.version),
        doc: input.doc,
        maps: &[],
        skippable: &skippable,
    };
    let Some(on) = input.switches.get(&switch.id) else {
        return internal(format!("switch {} has no checked value", switch.id));
    };
    let Template::Whole(reference) = scope.template(&switch.switch)? else {
        return internal(format!("switch {} is not on one reference", switch.id));
    };
    let (_, from) = scope.read(&reference.value)?;
    let pointer = format!("{}/switch", node.pointer);
    let branch_of = |value: &str| -> Lowering<usize> {
        switch
            .branches()
            .find(|(_, b)| b.value == Some(value))
            .or_else(|| switch.branches().find(|(_, b)| b.value.is_none()))
            .map(|(i, _)| i)
            .ok_or_else(|| Lowered::Internal(format!("switch {}: no branch takes \"{value}\"", switch.id)))
    };
    let default = switch.default.as_ref().map(|_| switch.cases.0.len());
    let (target, arms) = match (on, &from) {
        (SwitchOn::Values(_), RustTy::Enum(e)) => {
            let arms =
                e.variants.iter().map(|v| Ok((v.ident.clone(), branch_of(&v.json)?))).collect::<Lowering<Vec<_>>>()?;
            (from.clone(), SwitchArms::Enum { path: e.path.clone(), arms })
        }
        (SwitchOn::Values(_), RustTy::Bool) => {
            (RustTy::Bool, SwitchArms::Bool { when_true: branch_of("true")?, when_false: branch_of("false")? })
        }
        // An enum only serde knows: matched as its text, every value of its
        // schema listed with its branch; another text fails the switch.
        (SwitchOn::Values(values), _) => {
            let arms = values.iter().map(|v| Ok((v.clone(), branch_of(v)?))).collect::<Lowering<Vec<_>>>()?;
            (RustTy::String, SwitchArms::Str { arms, otherwise: None })
        }
        (SwitchOn::String, _) => {
            let arms = switch.cases.0.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
            (RustTy::String, SwitchArms::Str { arms, otherwise: default })
        }
    };
    let on_value = scope.value(&Value::String(switch.switch.clone()), &target, &pointer, out)?;

    let mut output = None;
    let mut first_ty = None;
    let mut values = Vec::new();
    for (i, branch) in switch.branches() {
        let Some(value) = branch.case.output() else { continue };
        let at = format!("{}{}/output", node.pointer, branch.pointer());
        let position = input.graph.end_of_case(index, i, branch.case.steps().len());
        let skippable = skippable_at(input.graph, &position);
        let scope = Scope { skippable: &skippable, ..scope };
        match &first_ty {
            None => {
                let name = names.unique(&format!("{}Output", nested_type_name("", &switch.id)));
                let (ty, expr) = infer_output(&scope, value, &at, &name, names, defined, out)?;
                first_ty = Some(ty);
                values.push(expr);
            }
            Some(ty) => values.push(scope.value(value, ty, &at, out)?),
        }
    }
    if let Some(ty) = first_ty {
        output = Some((ty, values));
    }
    let mut docs = vec![format!("Switch `{}`: runs the case matching `{}`.", switch.id, switch.switch)];
    if let Some(d) = &switch.description {
        docs.push(String::new());
        docs.extend(doc_lines_of(d));
    }
    Ok(CheckedSwitch {
        id: switch.id.clone(),
        docs,
        slot: field.clone(),
        on: on_value,
        arms,
        labels: switch.branches().map(|(_, b)| b.label()).collect(),
        output,
    })
}

/// An owned copy of what `read` reads, in its own type (optional when it may be absent).
fn owned(mut read: super::value::Read, mut ty: RustTy) -> (RustTy, Expr) {
    if read.path.last() == Some(&super::value::Access::Optional) {
        // The `Option` itself, when nothing before it may be absent.
        read.path.pop();
        if read.may_be_absent() {
            read.path.push(super::value::Access::Optional);
        } else {
            ty = RustTy::Option(Box::new(ty));
            return (ty.clone(), Expr::Read { read, conversion: value::same(&ty), absent: Absent::Never });
        }
    }
    let conversion = value::same(&ty);
    if read.may_be_absent() {
        (RustTy::Option(Box::new(ty)), Expr::Read { read, conversion, absent: Absent::None })
    } else {
        (ty, Expr::Read { read, conversion, absent: Absent::Never })
    }
}

/// The output's type (defined when it is built from an object) and the
/// expression that builds it.
fn infer_output(
    scope: &Scope<'_>,
    value: &Value,
    pointer: &str,
    name: &str,
    names: &mut Names,
    defined: &mut Vec<RustTy>,
    out: &mut Vec<Diagnostic>,
) -> Lowering<(RustTy, Expr)> {
    match value {
        Value::Object(map) => {
            let idents = types::field_idents(map.keys().map(String::as_str));
            let position = defined.len();
            let mut fields = Vec::new();
            let mut inits = Vec::new();
            for ((json, v), ident) in map.iter().zip(idents) {
                let nested = names.unique(&nested_type_name(name, json));
                let at = format!("{pointer}/{}", escape_pointer_token(json));
                let (ty, expr) = infer_output(scope, v, &at, &nested, names, defined, out)?;
                inits.push((ident.clone(), expr));
                fields.push(types::Field { json: json.clone(), ident, ty, docs: Vec::new() });
            }
            let path = TypePath::local(name);
            let ty = RustTy::Struct(StructTy { path: path.clone(), fields });
            defined.insert(position, ty.clone());
            Ok((ty, Expr::Struct { path, fields: inits }))
        }
        Value::String(s) => match scope.template(s)? {
            Template::Whole(r) => {
                let (read, ty) = scope.read(&r.value)?;
                Ok(owned(read, ty))
            }
            _ => Ok((RustTy::String, scope.value(value, &RustTy::String, pointer, out)?)),
        },
        Value::Bool(b) => Ok((RustTy::Bool, Expr::Const(Const::Bool(*b)))),
        Value::Number(n) => {
            let ty = match (n.as_i64(), n.as_u64()) {
                (Some(_), _) => RustTy::Int(IntTy::I64),
                (None, Some(_)) => RustTy::Int(IntTy::U64),
                (None, None) => RustTy::Float(FloatTy::F64),
            };
            Ok((ty.clone(), scope.value(value, &ty, pointer, out)?))
        }
        _ => Ok((RustTy::Json, scope.value(value, &RustTy::Json, pointer, out)?)),
    }
}

/// The generated module's doc comment.
fn module_docs(wf: &Workflow) -> Vec<String> {
    let m = &wf.metadata;
    let title = m.name.as_deref().unwrap_or(&m.id);
    let mut docs = doc_lines_of(&format!("The `{}` workflow ({title}), version {}.", m.id, m.version));
    if let Some(d) = &m.description {
        docs.push(String::new());
        docs.extend(doc_lines_of(d));
    }
    docs
}

/// A stable hash of the workflow's text (FNV-1a, 64 bits), recorded in journals
/// so an execution can be matched to the definition that ran it.
pub fn definition_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}
