//! The generated crate's `workflow.rs`: the workflow's own types, the state
//! that carries typed outputs from step to step, a policy function per
//! distinct policy, an input function and a constructor per step, the plan,
//! and the program. Items are rendered from the checked workflow, in order.

use orchestr8_agent_decl::emit as items;
use orchestr8_runtime::policy::Policy;
use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, ToTokens};

use super::expr::{expr, json_literal, str_of};
use super::types::{path, ty};
use crate::checked::types::RustTy;
use crate::checked::{
    AgentImpl, CheckedLlmAgent, CheckedMap, CheckedStep, CheckedSwitch, CheckedWait, CheckedWorkflow, NamedPolicy,
    PlanNode, PolicySource, SwitchArms, Tolerated,
};
use crate::target::Target;

/// clippy's `type_complexity` score of `t` written `nest` levels deep (1:
/// a field's type): each path scores 10 per level it is nested at.
fn complexity(t: &RustTy, nest: u64) -> u64 {
    10 * nest
        + match t {
            RustTy::Option(inner) | RustTy::Vec(inner) => complexity(inner, nest + 1),
            RustTy::Map(_, value) => complexity(&RustTy::String, nest + 1) + complexity(value, nest + 1),
            _ => 0,
        }
}

/// Whether a field of the generated types goes beyond clippy's default
/// `type_complexity` threshold (250): a state's slot (in a `OnceLock`), an
/// item, a field of the input or the output.
fn too_complex_for_clippy(c: &CheckedWorkflow) -> bool {
    const THRESHOLD: u64 = 250;
    let fields = |types: &[RustTy]| -> bool {
        types.iter().any(|t| match t {
            RustTy::Struct(s) => s.fields.iter().any(|f| complexity(&f.ty, 1) > THRESHOLD),
            _ => false,
        })
    };
    c.maps.iter().any(|m| complexity(&m.output, 2) > THRESHOLD || complexity(&m.item, 1) > THRESHOLD)
        || fields(&c.input_types)
        || fields(&c.output_types)
}

/// The items of `src/workflow.rs`, in order: the data types, the state, the
/// steps and the plan; the program for the embedded target, the input
/// schema and the LLM agents' preflight for the Restate target.
pub fn workflow_items(c: &CheckedWorkflow, target: Target) -> Vec<TokenStream> {
    let mut out = Vec::new();
    if too_complex_for_clippy(c) {
        // The types are the data's shapes (a map's output nests its body's,
        // one level per map): aliases for their parts would only hide them.
        out.push(quote!(#![allow(clippy::type_complexity)]));
    }
    out.push(quote!(
        use ::orchestr8_runtime::codegen as rt;
    ));
    let input_attrs = quote! {
        #[derive(Debug, Clone, rt::serde::Serialize, rt::serde::Deserialize, rt::schemars::JsonSchema)]
        #[serde(crate = "rt::serde")]
        #[schemars(crate = "rt::schemars")]
    };
    let output_attrs = quote! {
        #[derive(Debug, Clone, rt::serde::Serialize, rt::schemars::JsonSchema)]
        #[serde(crate = "rt::serde")]
        #[schemars(crate = "rt::schemars")]
    };
    let input_enum_attrs = quote! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, rt::serde::Serialize, rt::serde::Deserialize, rt::schemars::JsonSchema)]
        #[serde(crate = "rt::serde")]
        #[schemars(crate = "rt::schemars")]
    };
    if !matches!(c.input, RustTy::Struct(_)) {
        // Not an object: the input's type is an alias of what it is.
        let t = ty(&c.input);
        out.push(quote!(#[doc = " The workflow's input."] pub type WorkflowInput = #t;));
    }
    for t in &c.input_types {
        out.push(data_item(t, "The workflow's input.", &input_attrs, &input_enum_attrs, true));
    }
    for t in &c.output_types {
        out.push(data_item(t, "The workflow's result.", &output_attrs, &output_attrs, false));
    }
    // An LLM agent's types are read and written: its answer is parsed into them.
    for t in &c.agent_types {
        out.push(data_item(t, "An LLM agent's data.", &input_attrs, &input_enum_attrs, true));
    }
    out.extend(c.llm_agents.iter().map(llm_agent_fn));
    out.push(state(c));
    out.extend(c.maps.iter().map(|m| item_state(c, m)));
    out.extend(c.policies.iter().map(policy_fn));
    for step in &c.steps {
        out.push(input_fn(step, c));
        out.push(step_fn(step, c));
    }
    out.extend(c.waits.iter().map(wait_fn));
    for switch in &c.switches {
        out.push(select_fn(switch));
        if let Some(f) = switch_output_fn(switch) {
            out.push(f);
        }
    }
    out.extend(c.maps.iter().map(|m| map_fn(m, c)));
    out.push(plan_fn(c));
    out.push(output_fn(c));
    out.push(workflow_fn(c));
    if target == Target::Restate && !c.llm_agents.is_empty() {
        let checks = c.llm_agents.iter().map(|a| {
            let f = &a.ident;
            quote!(#f().check()?;)
        });
        out.push(quote! {
            /// Checks what each LLM agent needs before anything runs (its API
            /// key): the service does not start without it.
            pub fn preflight() -> Result<(), String> {
                #(#checks)*
                Ok(())
            }
        });
    }
    let schema = &c.input_schema;
    match target {
        Target::Embedded => {
            out.push(quote! {
                /// The workflow's input schema, as the workflow declares it.
                const INPUT_SCHEMA: &str = #schema;
            });
            out.push(program_fn(c));
        }
        // The service checks each input against it (`main.rs`).
        Target::Restate => out.push(quote! {
            /// The workflow's input schema, as the workflow declares it.
            pub const INPUT_SCHEMA: &str = #schema;
        }),
    }
    out
}

/// A struct or string enum of the workflow's own data.
/// `input`: the type is read (`Deserialize`, unknown fields denied, absent
/// optional fields defaulted); else only written (an absent value is `null`).
fn data_item(t: &RustTy, top_doc: &str, attrs: &TokenStream, enum_attrs: &TokenStream, input: bool) -> TokenStream {
    let vis = quote!(pub);
    match t {
        RustTy::Struct(s) => {
            let ident = format_ident!("{}", s.path.name);
            let is_top = matches!(s.path.name.as_str(), "WorkflowInput" | "WorkflowOutput");
            let docs = [if is_top { top_doc.to_owned() } else { "Part of the workflow's data.".to_owned() }];
            let types: Vec<TokenStream> = s.fields.iter().map(|f| ty(&f.ty)).collect();
            let fields: Vec<items::Field<'_>> = s
                .fields
                .iter()
                .zip(types)
                .map(|(f, t)| items::Field {
                    docs: &f.docs,
                    json: &f.json,
                    ident: &f.ident,
                    ty: t,
                    optional: input && matches!(f.ty, RustTy::Option(_)),
                })
                .collect();
            items::struct_item(&items::Item { vis: &vis, ident: &ident, docs: &docs, attrs }, &fields, input)
        }
        RustTy::Enum(e) => {
            let ident = format_ident!("{}", e.path.name);
            let variants: Vec<items::Variant<'_>> =
                e.variants.iter().map(|v| items::Variant { json: &v.json, ident: &v.ident }).collect();
            let docs = ["One of the allowed values.".to_owned()];
            // An upper-case value (`"ALL"`) is its variant as written: not an acronym to rename.
            let upper_case = e.variants.iter().any(|v| {
                let name = v.ident.to_string();
                name.len() > 1 && !name.chars().any(|c| c.is_ascii_lowercase())
            });
            let allow = upper_case.then(|| quote!(#[allow(clippy::upper_case_acronyms)]));
            let attrs = quote!(#enum_attrs #allow);
            items::enum_item(&items::Item { vis: &vis, ident: &ident, docs: &docs, attrs: &attrs }, &variants)
        }
        _ => TokenStream::new(),
    }
}

fn state(c: &CheckedWorkflow) -> TokenStream {
    let input_field = c.reads_input.then(|| quote!(#[doc = " The workflow's input."] pub input: WorkflowInput,));
    let ids_field = c.reads_ids.then(|| quote!(#[doc = " The execution's ids."] pub ids: rt::ExecutionIds,));
    let slots = slot_fields(c, None);
    quote! {
        /// What one execution carries: the input, its ids, and each step's output.
        pub struct State {
            #input_field
            #ids_field
            #(#slots)*
        }
    }
}

/// The output slots of the steps that run on the state of map `state`
/// (`None`: the workflow's), as fields.
fn slot_fields(c: &CheckedWorkflow, state: Option<usize>) -> Vec<TokenStream> {
    let agent_slots = c.steps.iter().filter(|s| s.state == state).map(|step| (&step.id, &step.slot, &step.output_type));
    let wait_slots = c.waits.iter().filter(|_| state.is_none()).map(|wait| (&wait.id, &wait.slot, &wait.payload));
    // Switches stand outside maps' bodies: theirs are the workflow's.
    let switch_slots =
        (c.switches.iter().filter(|_| state.is_none())).filter_map(|s| Some((&s.id, &s.slot, &s.output.as_ref()?.0)));
    let map_slots = c.maps.iter().filter(|m| m.state == state).map(|m| (&m.id, &m.slot, &m.output));
    agent_slots
        .chain(wait_slots)
        .chain(switch_slots)
        .chain(map_slots)
        .map(|(id, field, output)| {
            let t = ty(output);
            let doc = format!(" The output of step `{id}`, once it has succeeded.");
            quote!(#[doc = #doc] pub #field: rt::OnceLock<#t>,)
        })
        .collect()
}

/// The type of the state the steps of map `state` run on.
fn state_ty(c: &CheckedWorkflow, state: Option<usize>) -> proc_macro2::Ident {
    match state {
        None => format_ident!("State"),
        Some(m) => c.maps[m].item_state.clone(),
    }
}

/// The state each item of a map runs its body on.
fn item_state(c: &CheckedWorkflow, m: &CheckedMap) -> TokenStream {
    let number = c.maps.iter().position(|x| x.id == m.id);
    let (ident, up, item) = (&m.item_state, state_ty(c, m.state), ty(&m.item));
    let slots = slot_fields(c, number);
    let doc = format!(" One item of map `{}`: what its body reads of the item, and its body's outputs.", m.id);
    let up = m.reads.up.then(|| quote!(#[doc = " The state the map runs on."] pub up: rt::Arc<#up>,));
    let index = m.reads.index.then(|| quote!(#[doc = " The item's index in the list."] pub index: u64,));
    let item = m.reads.item.then(|| quote!(#[doc = " The item."] pub item: #item,));
    quote! {
        #[doc = #doc]
        pub struct #ident {
            #up
            #index
            #item
            #(#slots)*
        }
    }
}

/// A map step's constructor.
fn map_fn(m: &CheckedMap, c: &CheckedWorkflow) -> TokenStream {
    let number = c.maps.iter().position(|x| x.id == m.id);
    let (id, field, result, over) = (&m.id, &m.slot, &m.result, expr(&m.over));
    // A list converted from JSON ends with `?`: `Ok(x?)` would be clippy's
    // `needless_question_mark`, and the `?` is needed to turn the error.
    let items = if over.to_string().trim_end().ends_with('?') {
        let item = ty(&m.item);
        quote!({
            let items: Vec<#item> = #over;
            Ok(items)
        })
    } else {
        quote!(Ok(#over))
    };
    let (state, item_state) = (state_ty(c, m.state), &m.item_state);
    let constructor = format_ident!("step_{}", m.slot);
    let docs = items::doc_attrs(&m.docs);
    let body = plan_node(c, &m.body);
    let param = if m.over.reads_state() { quote!(s) } else { quote!(_s) };
    let empty = (c.steps.iter().filter(|s| s.state == number).map(|s| &s.slot))
        .chain(c.maps.iter().filter(|x| x.state == number).map(|x| &x.slot))
        .map(|f| quote!(#f: rt::OnceLock::new(),));
    // What the item state keeps of what each item is made from.
    let keep = |read: bool, name: &str| {
        let name = format_ident!("{name}");
        if read {
            (quote!(#name), Some(quote!(#name,)))
        } else {
            (format_ident!("_{name}").into_token_stream(), None)
        }
    };
    let (up, up_field) = keep(m.reads.up, "up");
    let (index, index_field) = keep(m.reads.index, "index");
    let (item, item_field) = keep(m.reads.item, "item");
    let index_field = index_field.map(|_| quote!(index: index as u64,));
    let outputs = match m.tolerated {
        None => quote!(rt::map_all(outputs)?),
        Some(_) => quote!(outputs),
    };
    let concurrency = m.concurrency.map(|n| {
        let n = Literal::u64_unsuffixed(n);
        quote!(.concurrency(#n))
    });
    let tolerated = m.tolerated.map(|t| match t {
        Tolerated::Count(n) => {
            let n = Literal::u64_unsuffixed(n);
            quote!(.tolerated(rt::Tolerated::Count(#n)))
        }
        Tolerated::Percent(p) => {
            let p = Literal::f64_unsuffixed(p);
            quote!(.tolerated(rt::Tolerated::Percent(#p)))
        }
    });
    quote! {
        #docs
        fn #constructor() -> rt::Node<#state> {
            rt::MapStep::new(
                #id,
                #body,
                |#param: &#state| #items,
                |#up, #index, #item| #item_state { #up_field #index_field #item_field #(#empty)* },
                |s: &#item_state| s.#result.get().cloned(),
                |s: &#state, outputs| rt::store(&s.#field, #id, #outputs),
            )
            #concurrency
            #tolerated
            .node()
        }
    }
}

fn policy_fn(p: &NamedPolicy) -> TokenStream {
    let under = if p.over_default { "`policies.default` and the built-in defaults" } else { "the built-in defaults" };
    let written = match &p.source {
        PolicySource::Default if p.over_default => "`policies.default`, over the built-in defaults.".to_owned(),
        PolicySource::Default => "The built-in defaults.".to_owned(),
        PolicySource::Named(name) => format!("Policy `{name}`, over {under}."),
        PolicySource::Inline(step) => format!("The inline policy of step `{step}`, over {under}."),
    };
    let steps: Vec<String> = p.steps.iter().map(|s| format!("`{s}`")).collect();
    let used = match steps.as_slice() {
        [one] => format!("Used by step {one}."),
        [init @ .., last] => format!("Used by steps {} and {last}.", init.join(", ")),
        [] => String::new(),
    };
    let docs = items::doc_attrs(&[written, String::new(), used]);
    let (ident, literal) = (&p.ident, policy_literal(&p.policy));
    quote! {
        #docs
        fn #ident() -> rt::Policy {
            #literal
        }
    }
}

fn policy_literal(p: &Policy) -> TokenStream {
    let millis = |d: std::time::Duration| Literal::u64_unsuffixed(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let (r, c) = (&p.retry, &p.circuit_breaker);
    let timeout = millis(p.timeout);
    let attempt_timeout = match p.attempt_timeout.map(millis) {
        Some(ms) => quote!(Some(std::time::Duration::from_millis(#ms))),
        None => quote!(None),
    };
    let cancel_grace = millis(p.cancel_grace);
    let (max_attempts, initial_delay, max_delay) =
        (Literal::u32_unsuffixed(r.max_attempts), millis(r.initial_delay), millis(r.max_delay));
    let (multiplier, jitter) = (Literal::f64_unsuffixed(r.backoff_multiplier), r.jitter);
    let (failure_threshold, reset_timeout, half_open_requests) = (
        Literal::u32_unsuffixed(c.failure_threshold),
        millis(c.reset_timeout),
        Literal::u32_unsuffixed(c.half_open_requests),
    );
    quote! {
        rt::Policy {
            timeout: std::time::Duration::from_millis(#timeout),
            retry: rt::RetryPolicy {
                max_attempts: #max_attempts,
                initial_delay: std::time::Duration::from_millis(#initial_delay),
                max_delay: std::time::Duration::from_millis(#max_delay),
                backoff_multiplier: #multiplier,
                jitter: #jitter,
            },
            circuit_breaker: rt::CircuitBreakerPolicy {
                failure_threshold: #failure_threshold,
                reset_timeout: std::time::Duration::from_millis(#reset_timeout),
                half_open_requests: #half_open_requests,
            },
            attempt_timeout: #attempt_timeout,
            cancel_grace: std::time::Duration::from_millis(#cancel_grace),
        }
    }
}

fn input_fn_ident(step: &CheckedStep) -> proc_macro2::Ident {
    format_ident!("input_{}", step.slot)
}

fn input_fn(step: &CheckedStep, c: &CheckedWorkflow) -> TokenStream {
    let (ident, t, value) = (input_fn_ident(step), ty(&step.input_type), expr(&step.input));
    let param = if step.input.reads_state() { quote!(s) } else { quote!(_s) };
    let doc = format!(" The input of step `{}`, built from the state.", step.id);
    let state = state_ty(c, step.state);
    quote! {
        #[doc = #doc]
        fn #ident(#param: &#state) -> Result<#t, String> {
            Ok(#value)
        }
    }
}

/// The program's one instance of an LLM agent: every step calling it, and
/// every execution, share its HTTP client and concurrency limit.
fn llm_agent_fn(a: &CheckedLlmAgent) -> TokenStream {
    let (ident, id, version, definition) = (&a.ident, &a.id, &a.version, &a.definition);
    let (input, output) = (ty(&a.input), ty(&a.output));
    let doc = format!(" LLM agent `{id}`, built once from its definition in the workflow.");
    quote! {
        #[doc = #doc]
        fn #ident() -> rt::Arc<rt::llm::LlmAgent<#input, #output>> {
            static AGENT: rt::OnceLock<rt::Arc<rt::llm::LlmAgent<#input, #output>>> = rt::OnceLock::new();
            AGENT.get_or_init(|| rt::Arc::new(rt::llm::LlmAgent::new(#id, #version, #definition))).clone()
        }
    }
}

fn step_fn(step: &CheckedStep, c: &CheckedWorkflow) -> TokenStream {
    let policy = &c.policies[step.policy];
    let (id, field) = (&step.id, &step.slot);
    let agent = match &step.agent_impl {
        AgentImpl::Rust(p) => {
            let p = path(p);
            quote!(rt::Arc::new(#p))
        }
        AgentImpl::Llm(i) => {
            let f = &c.llm_agents[*i].ident;
            quote!(#f())
        }
    };
    let (constructor, input, policy) = (format_ident!("step_{}", step.slot), input_fn_ident(step), &policy.ident);
    let state = state_ty(c, step.state);
    let docs = items::doc_attrs(&step.docs);
    let on_error = step.continue_on_error.then(|| quote!(.on_error(rt::OnError::Continue)));
    let config = step.config.as_ref().map(|c| {
        let c = json_literal(c);
        quote!(.config(#c))
    });
    quote! {
        #docs
        fn #constructor() -> rt::Node<#state> {
            rt::AgentStep::new(#id, #agent, #input, |s: &#state, output| rt::store(&s.#field, #id, output))
                .policy(#policy())
                #on_error
                #config
                .node()
        }
    }
}

/// A wait step's constructor: its payload's schema is parsed once per
/// program (it is JSON the compiler wrote).
fn wait_fn(w: &CheckedWait) -> TokenStream {
    let (id, signal, schema, field, payload) = (&w.id, &w.signal, &w.schema, &w.slot, ty(&w.payload));
    let constructor = format_ident!("step_{}", w.slot);
    let docs = items::doc_attrs(&w.docs);
    let timeout = w.timeout_ms.map(|ms| {
        let ms = Literal::u64_unsuffixed(ms);
        quote!(.timeout(std::time::Duration::from_millis(#ms)))
    });
    let on_error = w.continue_on_error.then(|| quote!(.on_error(rt::OnError::Continue)));
    quote! {
        #docs
        fn #constructor() -> rt::Node<State> {
            let schema = rt::serde_json::from_str(#schema).expect("the payload schema is JSON written by orchestr8");
            rt::WaitStep::new(#id, #signal, schema, |s: &State, payload: #payload| rt::store(&s.#field, #id, payload))
                #timeout
                #on_error
                .node()
        }
    }
}

fn plan_fn(c: &CheckedWorkflow) -> TokenStream {
    let nodes = c.plan.iter().map(|n| plan_node(c, n));
    quote! {
        /// The plan: the steps in order, blocks as written.
        pub fn plan() -> rt::Node<State> {
            rt::Node::sequence([#(#nodes),*])
        }
    }
}

fn plan_node(c: &CheckedWorkflow, node: &PlanNode) -> TokenStream {
    match node {
        PlanNode::Step(i) => {
            let f = format_ident!("step_{}", c.steps[*i].slot);
            quote!(#f())
        }
        PlanNode::Wait(i) => {
            let f = format_ident!("step_{}", c.waits[*i].slot);
            quote!(#f())
        }
        PlanNode::Parallel { id, fail_fast, children } => {
            let children = children.iter().map(|n| plan_node(c, n));
            quote!(rt::Node::parallel(#id, #fail_fast, [#(#children),*]))
        }
        PlanNode::Sequence(children) => {
            let children = children.iter().map(|n| plan_node(c, n));
            quote!(rt::Node::sequence([#(#children),*]))
        }
        PlanNode::Map(i) => {
            let f = format_ident!("step_{}", c.maps[*i].slot);
            quote!(#f())
        }
        PlanNode::Switch { index, branches } => {
            let s = &c.switches[*index];
            let (id, select) = (&s.id, format_ident!("select_{}", s.slot));
            let branches = branches.iter().zip(&s.labels).map(|(nodes, label)| {
                let node = match nodes.as_slice() {
                    [one] => plan_node(c, one),
                    many => {
                        let many = many.iter().map(|n| plan_node(c, n));
                        quote!(rt::Node::sequence([#(#many),*]))
                    }
                };
                quote!((#label, #node))
            });
            let output = s.output.as_ref().map(|_| {
                let f = format_ident!("output_{}", s.slot);
                quote!(.output(#f))
            });
            quote!(rt::Switch::new(#id, #select, [#(#branches),*]) #output .node())
        }
    }
}

/// The branch a switch takes: an exhaustive `match` on its value (a
/// `_` arm only for a string's other values).
fn select_fn(s: &CheckedSwitch) -> TokenStream {
    let ident = format_ident!("select_{}", s.slot);
    let param = if s.on.reads_state() { quote!(s) } else { quote!(_s) };
    let index = |i: &usize| Literal::usize_unsuffixed(*i);
    let body = match &s.arms {
        SwitchArms::Enum { path: p, arms } => {
            let (p, on) = (path(p), expr(&s.on));
            let arms = arms.iter().map(|(variant, i)| {
                let i = index(i);
                quote!(#p::#variant => #i)
            });
            quote!(match #on { #(#arms,)* })
        }
        SwitchArms::Bool { when_true, when_false } => {
            let (t, f, on) = (index(when_true), index(when_false), expr(&s.on));
            quote!(match #on { true => #t, false => #f })
        }
        SwitchArms::Str { arms, otherwise } => {
            let arms = arms.iter().map(|(value, i)| {
                let i = index(i);
                quote!(#value => #i)
            });
            let otherwise = match otherwise {
                Some(i) => {
                    let i = index(i);
                    quote!(_ => #i)
                }
                None => {
                    // The id is an identifier: no brace can reach the format string.
                    let message = format!("switch {}: no case takes {{other:?}}", s.id);
                    quote!(other => return Err(format!(#message)))
                }
            };
            let on = str_of(&s.on);
            quote!(match #on { #(#arms,)* #otherwise })
        }
    };
    let doc = format!(" The branch switch `{}` takes: its cases in order, then `default`.", s.id);
    quote! {
        #[doc = #doc]
        fn #ident(#param: &State) -> Result<usize, String> {
            Ok(#body)
        }
    }
}

/// Stores a switch's output once branch `case` has run.
fn switch_output_fn(s: &CheckedSwitch) -> Option<TokenStream> {
    let (t, values) = s.output.as_ref()?;
    let (ident, field, id, t) = (format_ident!("output_{}", s.slot), &s.slot, &s.id, ty(t));
    let arms = values.iter().enumerate().map(|(i, v)| {
        let (i, v) = (Literal::usize_unsuffixed(i), expr(v));
        quote!(#i => #v)
    });
    let message = format!("switch {id} has no branch {{other}}");
    let doc = format!(" Stores the output of switch `{id}` once branch `case` has run.");
    Some(quote! {
        #[doc = #doc]
        fn #ident(s: &State, case: usize) -> Result<(), String> {
            let value: #t = match case {
                #(#arms,)*
                other => return Err(format!(#message)),
            };
            rt::store(&s.#field, #id, value)
        }
    })
}

fn output_fn(c: &CheckedWorkflow) -> TokenStream {
    let (t, value) = (ty(&c.output), expr(&c.output_value));
    let param = if c.output_value.reads_state() { quote!(s) } else { quote!(_s) };
    quote! {
        /// The workflow's result, built from the state once every step has run.
        fn output(#param: &State) -> Result<#t, String> {
            Ok(#value)
        }
    }
}

fn workflow_fn(c: &CheckedWorkflow) -> TokenStream {
    let (id, version, hash, output) = (&c.id, &c.version, &c.definition_hash, ty(&c.output));
    let budget = c.max_tokens.map(|n| quote!(.max_tokens(#n)));
    quote! {
        /// The workflow, ready to run.
        pub fn workflow() -> rt::Workflow<State, #output> {
            rt::Workflow::new(rt::WorkflowInfo::new(#id, #version, #hash) #budget, plan(), output)
        }
    }
}

/// A new execution's state, from the variables `input` (the workflow's
/// input) and `ids` (`&rt::ExecutionIds`), with every slot empty; and the
/// names to bind those variables to (`_input` when unread, say).
pub(super) fn new_state(c: &CheckedWorkflow) -> (TokenStream, TokenStream, TokenStream) {
    let (input_param, input_init) =
        if c.reads_input { (quote!(input), quote!(input,)) } else { (quote!(_input), quote!()) };
    let (ids_param, ids_init) =
        if c.reads_ids { (quote!(ids), quote!(ids: ids.clone(),)) } else { (quote!(_ids), quote!()) };
    let slots = (c.steps.iter().filter(|s| s.state.is_none()).map(|s| &s.slot))
        .chain(c.waits.iter().map(|w| &w.slot))
        .chain(c.maps.iter().filter(|m| m.state.is_none()).map(|m| &m.slot))
        .chain(c.switches.iter().filter(|s| s.output.is_some()).map(|s| &s.slot))
        .map(|field| quote!(#field: rt::OnceLock::new(),));
    let literal = quote!(State {
        #input_init
        #ids_init
        #(#slots)*
    });
    (input_param, ids_param, literal)
}

fn program_fn(c: &CheckedWorkflow) -> TokenStream {
    let output = ty(&c.output);
    let (input_param, ids_param, state) = new_state(c);
    let about = c.about.as_ref().map(|text| quote!(.about(#text)));
    // A missing API key stops the program before it reads its input.
    let preflight = c.llm_agents.iter().map(|a| {
        let f = &a.ident;
        quote!(.preflight(|| #f().check()))
    });
    quote! {
        /// The program: reads the input, runs the workflow, prints the output.
        pub fn program() -> rt::Program<WorkflowInput, State, #output> {
            rt::Program::new(rt::Arc::new(workflow()), |#input_param, #ids_param| #state)
            #about
            #(#preflight)*
            .output_schema(rt::serde_json::to_value(rt::schemars::schema_for!(#output)).expect("a schema serializes"))
            .input_schema(rt::serde_json::from_str(INPUT_SCHEMA).expect("the input schema is JSON written by orchestr8"))
        }
    }
}
