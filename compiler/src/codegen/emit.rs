//! The generated crate's Rust source: the workflow's own types, the state
//! that carries typed outputs from step to step, one constructor per step,
//! the plan, and the program.

use std::collections::BTreeMap;

use orchestr8_agent_decl::expected_type_names;
use orchestr8_schema::ast::{OnError, Policy, PolicyRef, Step, Workflow};
use orchestr8_schema::expr::{parse_template, Root, Segment, Template};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use serde_json::Value;

use super::expr::{GenError, Scope};
use super::rust_ty::{self, from_decl, variant, RustTy};
use crate::agents::FoundAgent;
use crate::types::Ty;

/// Everything the generator needs, checked by validation first.
pub struct Input<'a> {
    /// The workflow.
    pub workflow: &'a Workflow,
    /// Its input's shape.
    pub input_ty: &'a Ty,
    /// The declaration of each agent, by agent id.
    pub agents: &'a BTreeMap<String, FoundAgent>,
    /// A hash of the definition, recorded in every journal.
    pub definition_hash: &'a str,
}

/// The `workflow.rs` module, unformatted.
pub fn workflow_module(input: &Input<'_>) -> Result<TokenStream, GenError> {
    let wf = input.workflow;
    let mut names = rust_ty::Names::default();
    // Reserved: the items every generated module defines (the input takes its own name first).
    for taken in ["State", "WorkflowOutput"] {
        names.type_name(taken);
    }
    let input_rty = rust_ty::from_ty("WorkflowInput", input.input_ty, &mut names);
    let mut local_types = TokenStream::new();
    define(&input_rty, "WorkflowInput", true, &mut local_types);

    // Each agent step's output type, and whether it may be absent.
    let mut outputs: BTreeMap<String, (RustTy, bool)> = BTreeMap::new();
    let mut agent_steps = Vec::new();
    collect_agent_steps(&wf.steps, &mut agent_steps);
    for step in &agent_steps {
        let found = input.agents.get(&step.agent).ok_or_else(|| format!("agent {} has no declaration", step.agent))?;
        let (_, output_name, _) = expected_type_names(&found.decl.function.to_string());
        let module = module_path(found);
        outputs.insert(
            step.id.clone(),
            (from_decl(&module, &output_name, &found.decl.args.output), step.on_error == OnError::Continue),
        );
    }
    let scope = Scope { input: &input_rty, outputs: &outputs, workflow: (&wf.metadata.id, &wf.metadata.version) };

    // The result: the `output` expression, or the last step's output.
    let (output_rty, output_expr) = match &wf.output {
        Some(expr) => infer_output(&scope, expr, "WorkflowOutput", &mut names, &mut local_types)?,
        None => {
            let last = wf.steps.last().ok_or("a workflow has steps")?;
            let (ty, _) = outputs.get(last.id()).ok_or("the last step is an agent step")?;
            let field = format_ident!("{}", last.id());
            let id = last.id();
            (ty.clone(), quote!(::core::clone::Clone::clone(::orchestr8_runtime::codegen::slot(&s.#field, #id)?)))
        }
    };
    let output_type = output_rty.tokens();
    let input_type = input_rty.tokens();

    let slots = agent_steps.iter().map(|step| {
        let field = format_ident!("{}", step.id);
        let ty = outputs[&step.id].0.tokens();
        let doc = format!(" The output of step `{}`, once it has succeeded.", step.id);
        quote!(#[doc = #doc] pub #field: ::orchestr8_runtime::codegen::OnceLock<#ty>)
    });
    let slot_inits = agent_steps.iter().map(|step| {
        let field = format_ident!("{}", step.id);
        quote!(#field: ::orchestr8_runtime::codegen::OnceLock::new())
    });

    // One function per distinct policy, named after where it comes from.
    let mut policies: Vec<(String, proc_macro2::Ident, TokenStream)> = Vec::new();
    let mut policy_of_step = BTreeMap::new();
    for step in &agent_steps {
        let tokens = policy_tokens(&effective_policy(wf, step.policy.as_ref()));
        let key = tokens.to_string();
        let ident = match policies.iter().find(|(k, _, _)| *k == key) {
            Some((_, ident, _)) => ident.clone(),
            None => {
                let base = match &step.policy {
                    None => "policy_default".to_owned(),
                    Some(PolicyRef::Named(name)) => {
                        format!("policy_{}", rust_ty::ident(name).to_string().trim_start_matches("r#"))
                    }
                    Some(PolicyRef::Inline(_)) => format!("policy_of_{}", step.id),
                };
                let ident = format_ident!("{}", names.type_name(&orchestr8_agent_decl::rust_field_name(&base)));
                policies.push((key, ident.clone(), tokens));
                ident
            }
        };
        policy_of_step.insert(step.id.clone(), ident);
    }
    let policy_fns = policies.iter().map(|(_, ident, tokens)| {
        quote! {
            #[doc = " A step policy: the built-in defaults, overlaid by `policies.default` and the step's own."]
            fn #ident() -> rt::Policy {
                #tokens
            }
        }
    });
    let constructors = agent_steps
        .iter()
        .map(|step| step_constructor(&scope, wf, step, &input.agents[&step.agent], &policy_of_step[&step.id]))
        .collect::<Result<Vec<_>, _>>()?;
    let plan = plan(&wf.steps, true);

    let id = &wf.metadata.id;
    let version = &wf.metadata.version;
    let hash = input.definition_hash;
    let about = wf.metadata.description.clone().or_else(|| wf.metadata.name.clone()).unwrap_or_default();
    let input_schema = serde_json::to_string(
        wf.input.as_ref().unwrap_or(&serde_json::json!({"type": "object", "additionalProperties": false})),
    )
    .map_err(|e| e.to_string())?;
    let reads_state = wf.output.as_ref().is_none_or(references_anything);
    // The input and the execution's ids are kept only when an expression reads them (an unread field is a warning).
    let (input_field, input_param, input_init) = if reads_root(wf, |r| matches!(r, Root::Input)) {
        (quote!(#[doc = " The workflow's input."] pub input: #input_type,), quote!(input), quote!(input,))
    } else {
        (TokenStream::new(), quote!(_input), TokenStream::new())
    };
    let (ids_field, ids_param, ids_init) = if reads_root(wf, |r| matches!(r, Root::ExecutionId | Root::CorrelationId)) {
        (
            quote!(#[doc = " The execution's ids."] pub ids: rt::ExecutionIds,),
            quote!(ids),
            quote!(ids: rt::ExecutionIds {
                execution_id: ::core::clone::Clone::clone(&ids.execution_id),
                correlation_id: ::core::clone::Clone::clone(&ids.correlation_id),
            },),
        )
    } else {
        (TokenStream::new(), quote!(_ids), TokenStream::new())
    };
    let output_param = if reads_state { quote!(s) } else { quote!(_s) };

    Ok(quote! {
        use ::orchestr8_runtime::codegen as rt;

        #local_types

        /// What one execution carries: the input, its ids, and each step's output.
        pub struct State {
            #input_field
            #ids_field
            #(#slots,)*
        }

        #(#policy_fns)*

        #(#constructors)*

        /// The plan: the steps in order, blocks as written.
        pub fn plan() -> rt::Node<State> {
            #plan
        }

        /// The workflow, ready to run.
        pub fn workflow() -> rt::Workflow<State, #output_type> {
            rt::Workflow::new(
                rt::WorkflowInfo::new(#id, #version, #hash),
                plan(),
                |#output_param: &State| -> ::core::result::Result<#output_type, ::std::string::String> {
                    ::core::result::Result::Ok(#output_expr)
                },
            )
        }

        /// The program: reads the input, runs the workflow, prints the output.
        pub fn program() -> rt::Program<#input_type, State, #output_type> {
            rt::Program::new(rt::Arc::new(workflow()), |#input_param, #ids_param| State {
                #input_init
                #ids_init
                #(#slot_inits,)*
            })
            .about(#about)
            .output_schema(
                rt::serde_json::to_value(rt::schemars::schema_for!(#output_type))
                    .expect("a schema serializes"),
            )
            .input_schema(
                rt::serde_json::from_str(#input_schema).expect("the input schema is JSON written by orchestr8"),
            )
        }
    })
}

fn collect_agent_steps<'a>(steps: &'a [Step], out: &mut Vec<&'a orchestr8_schema::ast::AgentStep>) {
    for step in steps {
        match step {
            Step::Agent(s) => out.push(s),
            other => collect_agent_steps(other.children(), out),
        }
    }
}

/// `::triage_agents::nlp`
fn module_path(found: &FoundAgent) -> TokenStream {
    let krate = format_ident!("{}", found.crate_ident);
    let modules = found.modules.iter().map(|m| rust_ty::ident(m));
    quote!(::#krate #(::#modules)*)
}

fn step_constructor(
    scope: &Scope<'_>,
    wf: &Workflow,
    step: &orchestr8_schema::ast::AgentStep,
    found: &FoundAgent,
    policy: &proc_macro2::Ident,
) -> Result<TokenStream, GenError> {
    let module = module_path(found);
    let (input_name, _, agent_name) = expected_type_names(&found.decl.function.to_string());
    let input_rty = from_decl(&module, &input_name, &found.decl.args.input);
    let input_type = input_rty.tokens();
    let agent_ident = format_ident!("{}", agent_name);
    let value =
        scope.value(&Value::Object(step.input.clone()), &input_rty).map_err(|e| format!("step {}: {e}", step.id))?;
    let param = if references_anything(&Value::Object(step.input.clone())) { quote!(s) } else { quote!(_s) };
    let id = &step.id;
    let field = format_ident!("{}", step.id);
    let fn_name = format_ident!("step_{}", step.id);
    let doc = format!(
        " Step `{id}`: calls agent `{}`.{}",
        step.agent,
        step.description.as_deref().map(|d| format!(" {d}")).unwrap_or_default()
    );
    let doc_lines = doc_attrs(&doc);
    let on_error = (step.on_error == OnError::Continue).then(|| quote!(.on_error(rt::OnError::Continue)));
    let config = wf.agents.get(&step.agent).and_then(|a| a.common().config.as_ref()).map(|c| {
        let text = serde_json::to_string(c).unwrap_or_default();
        quote!(.config(rt::serde_json::from_str(#text).expect("the agent's config is JSON written by orchestr8")))
    });
    Ok(quote! {
        #doc_lines
        fn #fn_name() -> rt::Node<State> {
            rt::AgentStep::new(
                #id,
                rt::Arc::new(#module::#agent_ident),
                |#param: &State| -> ::core::result::Result<#input_type, ::std::string::String> {
                    ::core::result::Result::Ok(#value)
                },
                |s: &State, output| rt::store(&s.#field, #id, output),
            )
            .policy(#policy())
            #on_error
            #config
            .node()
        }
    })
}

fn plan(steps: &[Step], top: bool) -> TokenStream {
    let children = steps.iter().map(|step| match step {
        Step::Agent(s) => {
            let f = format_ident!("step_{}", s.id);
            quote!(#f())
        }
        Step::Parallel(p) => {
            let id = &p.id;
            let fail_fast = p.fail_fast;
            let inner = p.parallel.iter().map(|c| plan(std::slice::from_ref(c), false));
            quote!(rt::Node::parallel(#id, #fail_fast, ::std::vec![#(#inner),*]))
        }
        Step::Sequence(s) => plan(&s.sequence, false),
    });
    let children: Vec<TokenStream> = children.collect();
    if children.len() == 1 && !top {
        return children.into_iter().next().expect("one child");
    }
    quote!(rt::Node::sequence(::std::vec![#(#children),*]))
}

/// Whether any expression reads a root that `wanted` accepts.
fn reads_root(wf: &Workflow, wanted: fn(&Root) -> bool) -> bool {
    let reads = |value: &Value| reads_in(value, wanted);
    let mut steps = Vec::new();
    collect_agent_steps(&wf.steps, &mut steps);
    steps.iter().any(|s| s.input.values().any(reads)) || wf.output.as_ref().is_some_and(reads)
}

fn reads_in(value: &Value, wanted: fn(&Root) -> bool) -> bool {
    {
        match value {
            Value::String(s) => {
                let refs: Vec<Root> = match parse_template(s) {
                    Ok(Template::Whole(r)) => vec![r.value.root],
                    Ok(Template::Interpolated(segments)) => segments
                        .into_iter()
                        .filter_map(|s| match s {
                            Segment::Reference(r) => Some(r.value.root),
                            Segment::Text(_) => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                refs.iter().any(wanted)
            }
            Value::Array(items) => items.iter().any(|v| reads_in(v, wanted)),
            Value::Object(map) => map.values().any(|v| reads_in(v, wanted)),
            _ => false,
        }
    }
}

/// Whether a value expression reads anything (and so needs the state).
fn references_anything(value: &Value) -> bool {
    match value {
        Value::String(s) => match parse_template(s) {
            Ok(Template::Literal(_)) => false,
            Ok(Template::Whole(_)) => true,
            Ok(Template::Interpolated(segments)) => segments.iter().any(|s| matches!(s, Segment::Reference(_))),
            Err(_) => false,
        },
        Value::Array(items) => items.iter().any(references_anything),
        Value::Object(map) => map.values().any(references_anything),
        _ => false,
    }
}

/// A step's policy: built-ins, then `policies.default`, then the named or inline policy.
pub struct EffectivePolicy {
    timeout: u64,
    max_attempts: u32,
    initial_delay: u64,
    max_delay: u64,
    backoff_multiplier: f64,
    jitter: bool,
    failure_threshold: u32,
    reset_timeout: u64,
    half_open_requests: u32,
}

fn effective_policy(wf: &Workflow, step_policy: Option<&PolicyRef>) -> EffectivePolicy {
    let mut p = EffectivePolicy {
        timeout: 30_000,
        max_attempts: 3,
        initial_delay: 1_000,
        max_delay: 10_000,
        backoff_multiplier: 2.0,
        jitter: true,
        failure_threshold: 5,
        reset_timeout: 60_000,
        half_open_requests: 3,
    };
    let layers: Vec<&Policy> = [
        wf.policies.get("default"),
        match step_policy {
            Some(PolicyRef::Named(name)) => wf.policies.get(name),
            Some(PolicyRef::Inline(policy)) => Some(policy),
            None => None,
        },
    ]
    .into_iter()
    .flatten()
    .collect();
    let ms = |d: &Option<orchestr8_schema::ast::Duration>| d.as_ref().and_then(|d| d.to_millis().ok());
    for layer in layers {
        p.timeout = ms(&layer.timeout).unwrap_or(p.timeout);
        if let Some(r) = &layer.retry {
            p.max_attempts = r.max_attempts.unwrap_or(p.max_attempts);
            p.initial_delay = ms(&r.initial_delay).unwrap_or(p.initial_delay);
            p.max_delay = ms(&r.max_delay).unwrap_or(p.max_delay);
            p.backoff_multiplier = r.backoff_multiplier.unwrap_or(p.backoff_multiplier);
            p.jitter = r.jitter.unwrap_or(p.jitter);
        }
        if let Some(c) = &layer.circuit_breaker {
            p.failure_threshold = c.failure_threshold.unwrap_or(p.failure_threshold);
            p.reset_timeout = ms(&c.reset_timeout).unwrap_or(p.reset_timeout);
            p.half_open_requests = c.half_open_requests.unwrap_or(p.half_open_requests);
        }
    }
    p
}

fn policy_tokens(p: &EffectivePolicy) -> TokenStream {
    let EffectivePolicy {
        timeout,
        max_attempts,
        initial_delay,
        max_delay,
        backoff_multiplier,
        jitter,
        failure_threshold,
        reset_timeout,
        half_open_requests,
    } = p;
    let multiplier = proc_macro2::Literal::f64_suffixed(*backoff_multiplier);
    quote! {
        rt::Policy {
            timeout: ::core::time::Duration::from_millis(#timeout),
            retry: rt::RetryPolicy {
                max_attempts: #max_attempts,
                initial_delay: ::core::time::Duration::from_millis(#initial_delay),
                max_delay: ::core::time::Duration::from_millis(#max_delay),
                backoff_multiplier: #multiplier,
                jitter: #jitter,
            },
            circuit_breaker: rt::CircuitBreakerPolicy {
                failure_threshold: #failure_threshold,
                reset_timeout: ::core::time::Duration::from_millis(#reset_timeout),
                half_open_requests: #half_open_requests,
            },
            attempt_timeout: ::core::option::Option::None,
        }
    }
}

/// Defines the crate's own types below `ty` (the workflow's input and output).
fn define(ty: &RustTy, name: &str, input: bool, out: &mut TokenStream) {
    // JsonSchema: the output's schema, which may hold input types, is published by `serve`.
    let derives = if input {
        quote!(#[derive(::core::fmt::Debug, ::core::clone::Clone, rt::serde::Serialize, rt::serde::Deserialize, rt::schemars::JsonSchema)])
    } else {
        quote!(#[derive(::core::fmt::Debug, ::core::clone::Clone, rt::serde::Serialize, rt::schemars::JsonSchema)])
    };
    match ty {
        RustTy::Struct { path, fields } => {
            let ident = format_ident!("{}", name);
            debug_assert_eq!(path.to_string(), ident.to_string());
            let field_defs = fields.iter().map(|f| {
                let ident = &f.ident;
                let t = f.ty.tokens();
                let json = &f.json;
                let rename =
                    (ident.to_string().trim_start_matches("r#") != json).then(|| quote!(#[serde(rename = #json)]));
                let optional = matches!(f.ty, RustTy::Option(_))
                    .then(|| quote!(#[serde(default, skip_serializing_if = "::core::option::Option::is_none")]));
                let docs = f
                    .doc
                    .as_deref()
                    .map(|d| doc_attrs(&d.lines().map(|l| format!(" {l}")).collect::<Vec<_>>().join("\n")));
                quote!(#docs #rename #optional pub #ident: #t)
            });
            let deny = input.then(|| quote!(#[serde(deny_unknown_fields)]));
            let doc = format!(
                " {}",
                if name == "WorkflowInput" {
                    "The workflow's input."
                } else if name == "WorkflowOutput" {
                    "The workflow's result."
                } else {
                    "Part of the workflow's data."
                }
            );
            out.extend(quote! {
                #[doc = #doc]
                #derives
                #[serde(crate = "rt::serde")]
                #[schemars(crate = "rt::schemars")]
                #deny
                pub struct #ident { #(#field_defs,)* }
            });
            for f in fields {
                define_nested(&f.ty, input, out);
            }
        }
        other => {
            // Not an object: the type is an alias of what it is.
            let ident = format_ident!("{}", name);
            let t = other.tokens();
            out.extend(quote!(#[doc = " The workflow's data."] pub type #ident = #t;));
            define_nested(other, input, out);
        }
    }
}

fn define_nested(ty: &RustTy, input: bool, out: &mut TokenStream) {
    match ty {
        RustTy::Option(t) | RustTy::Vec(t) | RustTy::Map(t, _) => define_nested(t, input, out),
        RustTy::Struct { path, .. } => define(ty, &path.to_string(), input, out),
        RustTy::Enum { path, values } => {
            let ident: TokenStream = path.clone();
            let variants = values.iter().map(|v| {
                let var = variant(v);
                quote!(#[serde(rename = #v)] #var)
            });
            out.extend(quote! {
                #[doc = " One of the allowed values."]
                #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy, ::core::cmp::PartialEq, ::core::cmp::Eq, rt::serde::Serialize, rt::serde::Deserialize, rt::schemars::JsonSchema)]
                #[serde(crate = "rt::serde")]
                #[schemars(crate = "rt::schemars")]
                pub enum #ident { #(#variants,)* }
            });
        }
        _ => {}
    }
}

/// The output's type (defined here when it is built from an object) and the
/// expression that builds it.
fn infer_output(
    scope: &Scope<'_>,
    value: &Value,
    name: &str,
    names: &mut rust_ty::Names,
    out: &mut TokenStream,
) -> Result<(RustTy, TokenStream), GenError> {
    match value {
        Value::Object(map) => {
            let mut fields = Vec::new();
            let mut inits = Vec::new();
            let idents = rust_ty::field_idents(map.keys().map(String::as_str));
            for ((json, v), ident) in map.iter().zip(idents) {
                let nested_name = names.type_name(&orchestr8_agent_decl::nested_type_name(name, json));
                let (ty, expr) = infer_output(scope, v, &nested_name, names, out)?;
                inits.push(quote!(#ident: #expr));
                fields.push(rust_ty::RustField { doc: None, json: json.clone(), ident, ty });
            }
            let ident = format_ident!("{}", name);
            let ty = RustTy::Struct { path: quote!(#ident), fields };
            // Output types only serialize; define this level (nested ones were defined on the way).
            define_flat(&ty, name, out);
            Ok((ty, quote!(#ident { #(#inits),* })))
        }
        Value::String(s) => match parse_template(s).map_err(|e| e.message)? {
            Template::Whole(r) => scope.read_owned(&r.value),
            _ => Ok((RustTy::String, scope.value(value, &RustTy::String)?)),
        },
        Value::Bool(_) => Ok((RustTy::Bool, scope.value(value, &RustTy::Bool)?)),
        Value::Number(n) if n.is_f64() => {
            let t = RustTy::Float(format_ident!("f64"));
            Ok((t.clone(), scope.value(value, &t)?))
        }
        Value::Number(_) => {
            let t = RustTy::Int(format_ident!("i64"));
            Ok((t.clone(), scope.value(value, &t)?))
        }
        _ => Ok((RustTy::Json, scope.value(value, &RustTy::Json)?)),
    }
}

fn define_flat(ty: &RustTy, name: &str, out: &mut TokenStream) {
    let RustTy::Struct { fields, .. } = ty else { return };
    let ident = format_ident!("{}", name);
    let field_defs = fields.iter().map(|f| {
        let ident = &f.ident;
        let t = f.ty.tokens();
        let json = &f.json;
        let rename = (ident.to_string().trim_start_matches("r#") != json).then(|| quote!(#[serde(rename = #json)]));
        quote!(#rename pub #ident: #t)
    });
    let doc = if name == "WorkflowOutput" { " The workflow's result." } else { " Part of the workflow's result." };
    out.extend(quote! {
        #[doc = #doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, rt::serde::Serialize, rt::schemars::JsonSchema)]
        #[serde(crate = "rt::serde")]
        #[schemars(crate = "rt::schemars")]
        pub struct #ident { #(#field_defs,)* }
    });
}

/// `#[doc = " ..."]` per line.
pub fn doc_attrs(text: &str) -> TokenStream {
    let lines = text.lines();
    quote!(#(#[doc = #lines])*)
}
