//! Maps, lowered: where each runs (the workflow's state or an enclosing
//! map's item state), its output slot, its item's type read from its list,
//! and the item state its body runs on.

use std::collections::BTreeMap;

use orchestr8_agent_decl::emit::doc_lines_of;
use orchestr8_agent_decl::nested_type_name;
use orchestr8_schema::ast::{MapStep, Step, ToleratedFailures};
use orchestr8_schema::expr::Template;
use proc_macro2::{Ident, Span};
use serde_json::Value;

use super::value::{Frame, Scope, Slot};
use super::{internal, skippable_at, slot_name, Input, Lowered, Lowering};
use crate::checked::types::{Names, RustTy};
use crate::checked::value::{Read, Root};
use crate::checked::{CheckedMap, CheckedStep, ItemReads, PlanNode, Tolerated};
use crate::diagnostics::Diagnostic;

/// Where each step of the graph runs: the maps enclosing it (graph
/// indexes, outermost first).
pub struct Placement {
    /// By graph index.
    pub enclosing: Vec<Vec<usize>>,
    /// Each map's number (its index in [`crate::checked::CheckedWorkflow::maps`]), by graph index.
    pub number: BTreeMap<usize, usize>,
}

impl Placement {
    /// Places every step of `input`'s graph.
    pub fn of(input: &Input<'_>) -> Self {
        let graph = input.graph;
        let enclosing = (0..graph.nodes.len())
            .map(|i| {
                let mut maps: Vec<usize> = graph.enclosing_maps(i).collect();
                maps.reverse();
                maps
            })
            .collect();
        let number = (graph.nodes.iter().enumerate())
            .filter(|(_, n)| matches!(n.step, Step::Map(_)))
            .enumerate()
            .map(|(number, (index, _))| (index, number))
            .collect();
        Placement { enclosing, number }
    }

    /// How many maps enclose step `index`.
    pub fn level(&self, index: usize) -> usize {
        self.enclosing[index].len()
    }

    /// The map whose item state step `index` runs on (its number), if any.
    pub fn state(&self, index: usize) -> Option<usize> {
        self.enclosing[index].last().map(|m| self.number[m])
    }
}

/// The maps' output slots, added to `slots`: a body's result step comes
/// later in document order than its map, so they are made from the end.
pub fn slots(
    input: &Input<'_>,
    placement: &Placement,
    slots: &mut BTreeMap<String, Slot>,
    fields: &mut Names,
) -> Lowering<()> {
    // Fields are named in document order, as the other steps' are.
    let mut named: BTreeMap<usize, Ident> = BTreeMap::new();
    for &index in placement.number.keys() {
        let id = input.graph.nodes[index].step.id();
        named.insert(index, Ident::new(&fields.unique(&slot_name(id)), Span::call_site()));
    }
    for (&index, field) in named.iter().rev() {
        let Step::Map(map) = input.graph.nodes[index].step else { return internal("a map is a map".into()) };
        let (result, _) = result_slot(map, slots)?;
        let item = result.ty.clone();
        let item = if tolerated(map).is_some() { RustTy::Option(Box::new(item)) } else { item };
        let slot = Slot {
            field: field.clone(),
            ty: RustTy::Vec(Box::new(item)),
            may_be_empty: false,
            level: placement.level(index),
        };
        slots.insert(map.id.clone(), slot);
    }
    Ok(())
}

/// The slot of the step whose output is an item's output.
fn result_slot<'s>(map: &MapStep, slots: &'s BTreeMap<String, Slot>) -> Lowering<(&'s Slot, String)> {
    let Some(result) = map.map.step.result() else { return internal(format!("map {} has no result step", map.id)) };
    match slots.get(result.id()) {
        Some(slot) => Ok((slot, result.id().to_owned())),
        None => internal(format!("map {}: no slot for its result step {}", map.id, result.id())),
    }
}

fn tolerated(map: &MapStep) -> Option<Tolerated> {
    match map.map.tolerated_failures.as_ref()? {
        t if t.is_zero() => None,
        ToleratedFailures::Count(n) => Some(Tolerated::Count(*n)),
        t @ ToleratedFailures::Percent(_) => t.percent().map(Tolerated::Percent),
    }
}

/// What lowering a map needs beyond the slots.
pub struct MapContext<'a> {
    /// The workflow input's type.
    pub input_ty: &'a RustTy,
    /// Every step's output slot, maps' included.
    pub slots: &'a BTreeMap<String, Slot>,
    /// Where each step runs.
    pub placement: &'a Placement,
}

/// Each map, in document order, with its body left empty (see [`bodies`]);
/// and the frames each step's values are lowered in, by graph index.
pub fn maps(
    input: &Input<'_>,
    cx: &MapContext<'_>,
    names: &mut Names,
    out: &mut Vec<Diagnostic>,
) -> Lowering<(Vec<CheckedMap>, BTreeMap<usize, Frame>)> {
    let wf = input.workflow;
    let mut maps = Vec::new();
    let mut frames: BTreeMap<usize, Frame> = BTreeMap::new();
    for &index in cx.placement.number.keys() {
        let node = &input.graph.nodes[index];
        let Step::Map(map) = node.step else { return internal("a map is a map".into()) };
        let around = frames_at(&cx.placement.enclosing[index], &frames)?;
        let skippable = skippable_at(input.graph, &node.path);
        let scope = Scope {
            input: cx.input_ty,
            slots: cx.slots,
            workflow: (&wf.metadata.id, &wf.metadata.version),
            doc: input.doc,
            maps: &around,
            skippable: &skippable,
        };
        let Template::Whole(reference) = scope.template(&map.map.over)? else {
            return internal(format!("map {}: `over` is not one reference", map.id));
        };
        let (_, list) = scope.read(&reference.value)?;
        let item = match list {
            RustTy::Vec(item) => *item,
            RustTy::Json => RustTy::Json,
            other => return internal(format!("map {}: `over` reads {}, not a list", map.id, other.shown())),
        };
        let pointer = format!("{}/map/over", node.pointer);
        let over =
            scope.value(&Value::String(map.map.over.clone()), &RustTy::Vec(Box::new(item.clone())), &pointer, out)?;
        frames.insert(index, Frame { item_name: map.map.item.clone(), item: item.clone() });
        let (result, _) = result_slot(map, cx.slots)?;
        let mut docs = vec![format!("Step `{}`: runs its body for each item of `{}`.", map.id, map.map.over)];
        if let Some(d) = &map.description {
            docs.push(String::new());
            docs.extend(doc_lines_of(d));
        }
        let slot = &cx.slots[&map.id];
        maps.push(CheckedMap {
            id: map.id.clone(),
            docs,
            slot: slot.field.clone(),
            state: cx.placement.state(index),
            item_state: Ident::new(&names.unique(&format!("{}Item", nested_type_name("", &map.id))), Span::call_site()),
            item,
            over,
            body: Box::new(PlanNode::Sequence(Vec::new())),
            result: result.field.clone(),
            result_type: result.ty.clone(),
            concurrency: map.map.concurrency,
            tolerated: tolerated(map),
            output: slot.ty.clone(),
            reads: ItemReads::default(),
        });
    }
    Ok((maps, frames))
}

/// Marks in each map which of its item state's fields the steps inside
/// (and the maps inside, for their lists) read: a read `up` states up
/// passes through the `up` field of each state on the way.
pub fn mark_reads(maps: &mut [CheckedMap], steps: &[CheckedStep]) {
    let mut reads: Vec<(Option<usize>, Read)> = Vec::new();
    for step in steps {
        let mut found = Vec::new();
        step.input.reads(&mut found);
        reads.extend(found.into_iter().map(|r| (step.state, r)));
    }
    for m in maps.iter() {
        let mut found = Vec::new();
        m.over.reads(&mut found);
        reads.extend(found.into_iter().map(|r| (m.state, r)));
    }
    for (state, read) in reads {
        let mut at = state;
        for _ in 0..read.up {
            let Some(m) = at else { break };
            maps[m].reads.up = true;
            at = maps[m].state;
        }
        let Some(m) = at else { continue };
        match read.root {
            Root::Item => maps[m].reads.item = true,
            Root::MapIndex => maps[m].reads.index = true,
            _ => {}
        }
    }
}

/// The frames of the maps `enclosing` (outermost first), already lowered.
pub fn frames_at(enclosing: &[usize], frames: &BTreeMap<usize, Frame>) -> Lowering<Vec<Frame>> {
    enclosing
        .iter()
        .map(|m| frames.get(m).cloned().ok_or_else(|| Lowered::Internal(format!("map at node {m} not lowered yet"))))
        .collect()
}
