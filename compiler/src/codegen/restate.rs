//! The Restate target's `src/main.rs`: the workflow as a Restate service
//! whose handler `run` takes the workflow's input and answers its output,
//! running the plan of `workflow.rs` (the same as the embedded target's)
//! through `orchestr8_runtime::restate`.

use quote::{format_ident, quote};

use super::emit::new_state;
use super::files::rust_file;
use super::types::ty;
use crate::checked::types::RustTy;
use crate::checked::{CheckedWorkflow, PlanNode};

/// A struct's name in `main.rs`: `base`, or `base2`... when the workflow's
/// own types (imported whole from `workflow.rs`) or `also` take it.
fn free_ident(c: &CheckedWorkflow, base: &str, also: &[&proc_macro2::Ident]) -> proc_macro2::Ident {
    let mut taken: Vec<String> = vec!["State".into(), "WorkflowInput".into()];
    let local = |t: &RustTy| match t {
        RustTy::Struct(s) if s.path.krate.is_none() => Some(s.path.name.clone()),
        RustTy::Enum(e) if e.path.krate.is_none() => Some(e.path.name.clone()),
        _ => None,
    };
    taken.extend(c.input_types.iter().chain(&c.output_types).chain(&c.agent_types).filter_map(local));
    taken.extend(c.maps.iter().map(|m| m.item_state.to_string()));
    taken.extend(also.iter().map(|i| i.to_string()));
    let name = std::iter::once(base.to_owned())
        .chain((2..).map(|n| format!("{base}{n}")))
        .find(|n| !taken.contains(n))
        .expect("an unbounded sequence of names has a free one");
    format_ident!("{name}")
}

pub fn main_file(c: &CheckedWorkflow) -> Result<String, String> {
    let id = &c.id;
    let service = free_ident(c, "Service", &[]);
    let output = ty(&c.output);
    let (input_param, ids_param, state) = new_state(c);
    let service_doc = format!(
        " The `{id}` workflow as a Restate service: `POST /{id}/run` on the Restate ingress, with the workflow's input, runs it."
    );
    // The branches of parallel blocks and the items of maps are calls to a
    // handler of their own.
    let branch_handler = has_branches(&c.plan).then(|| {
        quote! {
            /// Runs one branch of a parallel block, or one item of a map, of
            /// an execution of `run` (called by `run`, not through the ingress).
            #[handler(ingress_private)]
            async fn branch(
                &self,
                ctx: ::restate_sdk::context::Context<'_>,
                request: ::restate_sdk::serde::Json<rt::restate::Branch<WorkflowInput>>,
            ) -> ::restate_sdk::errors::HandlerResult<::restate_sdk::serde::Json<rt::restate::BranchOutputs>> {
                rt::restate::run_branch(&ctx, &self.service, request.0, new_state).await
            }
        }
    });
    // A workflow's waits take their signals through a virtual object keyed
    // by the execution: `POST /ID-signals/EXECUTION_ID/signal`.
    let signals = (!c.waits.is_empty()).then(|| free_ident(c, "Signals", &[&service]));
    // A type of this crate's for the input's schema: `WorkflowInput` may be
    // another crate's (or `()`), which cannot take the runtime's trait.
    let input_schema = free_ident(c, "InputSchema", &[&service]);
    let signals_items = signals.as_ref().map(|signals| {
        let object = super::files::restate_signals_object(id);
        let doc = format!(
            " The signals of `{id}`'s executions: `POST /{object}/EXECUTION_ID/signal` on the Restate ingress, with `{{\"step\": WAIT_STEP, \"payload\": ...}}`, hands a waiting step its payload."
        );
        quote! {
            #[doc = #doc]
            pub struct #signals {
                service: rt::restate::Service<State, #output>,
            }

            #[::restate_sdk::object(name = #object)]
            impl #signals {
                /// Takes a signal for a wait step of the execution (the key):
                /// checked against the wait's schema, then handed to the step.
                #[handler]
                async fn signal(
                    &self,
                    ctx: ::restate_sdk::context::ObjectContext<'_>,
                    request: ::restate_sdk::serde::Json<rt::restate::Signal>,
                ) -> ::restate_sdk::errors::HandlerResult<()> {
                    rt::restate::signal(&ctx, &self.service, request.0).await
                }
                /// Notes the awakeable a wait step awaits (called by the step).
                #[handler(ingress_private)]
                async fn register(
                    &self,
                    ctx: ::restate_sdk::context::ObjectContext<'_>,
                    request: ::restate_sdk::serde::Json<rt::restate::Register>,
                ) -> ::restate_sdk::errors::HandlerResult<()> {
                    rt::restate::register(&ctx, request.0).await
                }
                /// Forgets the execution's waits once it has ended (called by it).
                #[handler(ingress_private)]
                async fn end(&self, ctx: ::restate_sdk::context::ObjectContext<'_>) -> ::restate_sdk::errors::HandlerResult<()> {
                    rt::restate::end(&ctx).await
                }
            }
        }
    });
    let bind_signals = signals.as_ref().map(|signals| {
        quote! {
            .bind(#signals { service: rt::restate::Service::new(#id, workflow::workflow()) })
        }
    });
    // A missing API key stops the service before it serves (exit 2).
    let preflight = (!c.llm_agents.is_empty()).then(|| {
        quote! {
            if let Err(e) = workflow::preflight() {
                eprintln!("error: {e}");
                return std::process::ExitCode::from(2);
            }
        }
    });
    let items = vec![
        quote!(
            mod workflow;
        ),
        quote!(
            use ::orchestr8_runtime::codegen as rt;
        ),
        // The workflow's types, whatever their names (the output may be an agent crate's).
        quote!(
            use workflow::*;
        ),
        quote! {
            #[doc = #service_doc]
            pub struct #service {
                service: rt::restate::Service<State, #output>,
            }
        },
        quote! {
            /// The workflow's input schema, which Restate's discovery declares for `run`.
            pub struct #input_schema;

            impl rt::restate::DeclaredInput for #input_schema {
                const SCHEMA: &'static str = workflow::INPUT_SCHEMA;
            }
        },
        quote! {
            #[::restate_sdk::service(name = #id)]
            impl #service {
                /// Runs the workflow on its input; its output is the answer.
                #[handler]
                async fn run(
                    &self,
                    ctx: ::restate_sdk::context::Context<'_>,
                    input: rt::restate::Input<WorkflowInput, #input_schema>,
                ) -> ::restate_sdk::errors::HandlerResult<rt::restate::Output<#output>> {
                    rt::restate::run(&ctx, &self.service, input.0, new_state).await
                }

                #branch_handler
            }
        },
        quote!(#signals_items),
        quote! {
            /// A new execution's state, every step's output still to come.
            fn new_state(#input_param: WorkflowInput, #ids_param: &rt::ExecutionIds) -> State {
                #state
            }
        },
        quote! {
            fn main() -> std::process::ExitCode {
                // `cargo run --features rest -- rest`: the REST API of
                // `PROGRAM serve`, over Restate's ingress and admin APIs.
                #[cfg(feature = "rest")]
                if std::env::args().nth(1).as_deref() == Some("rest") {
                    let service = rt::restate::Service::new(#id, workflow::workflow()).input_schema(workflow::INPUT_SCHEMA);
                    return rt::restate::rest::<WorkflowInput, _, _>(service);
                }
                #preflight
                let service = rt::restate::Service::new(#id, workflow::workflow()).input_schema(workflow::INPUT_SCHEMA);
                let options = service.options();
                let endpoint = ::restate_sdk::endpoint::Endpoint::builder()
                    .bind(rt::restate::with_options(#service { service }, options))
                    #bind_signals
                    .build();
                rt::restate::serve(endpoint, #id)
            }
        },
    ];
    let docs = [format!("Serves the `{id}` workflow as a Restate service: see `workflow.rs` for its steps.")];
    rust_file(&docs, items)
}

/// Whether the plan has a parallel block or a map (at any depth): what
/// runs as calls to the `branch` handler.
fn has_branches(plan: &[PlanNode]) -> bool {
    plan.iter().any(|n| match n {
        PlanNode::Parallel { .. } | PlanNode::Map(_) => true,
        PlanNode::Sequence(children) => has_branches(children),
        PlanNode::Switch { branches, .. } => branches.iter().any(|b| has_branches(b)),
        PlanNode::Step(_) | PlanNode::Wait(_) => false,
    })
}
