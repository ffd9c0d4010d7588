//! The rules of LLM agents (`"kind": "llm"`) that are not about types: the
//! schemas they must declare, their examples, their base URL, and what the
//! chosen provider can enforce of the output schema. (Prompt references are
//! typed, so the type layer checks them.)

use orchestr8_runtime::llm::check_base_url;
use orchestr8_runtime::llm::wire::wire_schema;
use orchestr8_schema::ast::{AgentDefinition, LlmAgent, Provider, Workflow};
use orchestr8_schema::source::escape_pointer_token;

use super::Doc;
use crate::diagnostics::{Code, Diagnostic};

/// Checks every LLM agent of `workflow`.
pub fn check(workflow: &Workflow, doc: &Doc<'_>, out: &mut Vec<Diagnostic>) {
    for (id, definition) in &workflow.agents {
        let AgentDefinition::Llm(agent) = definition else { continue };
        let at = format!("/agents/{}", escape_pointer_token(id));
        check_agent(id, agent, &at, doc, out);
    }
}

fn check_agent(id: &str, agent: &LlmAgent, at: &str, doc: &Doc<'_>, out: &mut Vec<Diagnostic>) {
    let missing: Vec<&str> = [("input", agent.common.input.is_none()), ("output", agent.common.output.is_none())]
        .into_iter()
        .filter_map(|(side, absent)| absent.then_some(side))
        .collect();
    if !missing.is_empty() {
        out.push(
            Diagnostic::error(
                Code::LlmSchemaRequired,
                format!("LLM agent `{id}` declares no `{}` schema", missing.join("` or `")),
                at,
                doc.key(at),
            )
            .with_label("no schema")
            .with_help(format!(
                "an LLM agent's `input` and `output` JSON Schemas are its types: add `{}`",
                missing.join("` and `")
            )),
        );
    }
    if let Some(url) = &agent.base_url {
        if let Err(problem) = check_base_url(url) {
            let p = format!("{at}/baseUrl");
            out.push(
                Diagnostic::error(
                    Code::BadBaseUrl,
                    format!("`{url}` is not a usable base URL: {problem}"),
                    &p,
                    doc.value(&p),
                )
                .with_label("not an http(s) URL")
                .with_help("write the server's root, e.g. `http://127.0.0.1:8080/v1` for an OpenAI-compatible server"),
            );
        }
    }
    // The runtime compiles both schemas when the program starts (the output
    // to validate answers): what passes the meta-schema may still not compile
    // (a `pattern` that is not a regular expression).
    let mut compiled = [None, None];
    for (slot, side, schema) in [(0, "input", &agent.common.input), (1, "output", &agent.common.output)] {
        let Some(schema) = schema else { continue };
        if jsonschema::meta::validate(schema).is_err() {
            continue; // reported by the type layer, located
        }
        match jsonschema::validator_for(schema) {
            Ok(v) => compiled[slot] = Some(v),
            Err(e) => {
                let p = format!("{at}/{side}{}", e.instance_path().as_str());
                out.push(
                    Diagnostic::error(
                        Code::InvalidJsonSchema,
                        format!("agent `{id}`'s {side} schema does not compile: {e}"),
                        &p,
                        doc.value(&p),
                    )
                    .with_label("does not compile")
                    .with_help("a `pattern` must be a regular expression (ECMA 262)"),
                );
            }
        }
    }
    for (i, example) in agent.prompt.examples.iter().enumerate() {
        for (side, value, validator) in
            [("input", &example.input, &compiled[0]), ("output", &example.output, &compiled[1])]
        {
            let Some(validator) = validator else { continue };
            for error in validator.iter_errors(value) {
                let p = format!("{at}/prompt/examples/{i}/{side}{}", error.instance_path().as_str());
                out.push(
                    Diagnostic::error(
                        Code::ExampleMismatch,
                        format!("example {} does not fit agent `{id}`'s {side} schema: {error}", i + 1),
                        &p,
                        doc.value(&p),
                    )
                    .with_label(format!("not a valid {side}"))
                    .with_help(
                        "an example shows the model a real input and its output: make it one the schemas accept",
                    ),
                );
            }
        }
    }
    let Some(output) = &agent.common.output else { return };
    let output_at = format!("{at}/output");
    match wire_schema(agent.provider, output) {
        Err(unsupported) => {
            let p = format!("{output_at}{}", unsupported.pointer);
            out.push(
                Diagnostic::error(Code::ProviderCannotEnforce, unsupported.message, &p, doc.key(&p))
                    .with_label(format!("not expressible for {}", provider_name(agent.provider)))
                    .with_help(
                        "give the output a shape structured output takes (`orchestr8 explain E0424` shows the \
                         rewrite of each), or use a provider that accepts it, such as `openai` with an \
                         OpenAI-compatible server",
                    ),
            );
        }
        Ok(wire) => {
            if !wire.dropped.is_empty() {
                let listed: Vec<String> = wire
                    .dropped
                    .iter()
                    .map(|d| format!("`{}` at `{}`", d.keyword, if d.pointer.is_empty() { "/" } else { &d.pointer }))
                    .collect();
                out.push(
                    Diagnostic::error(
                        Code::CheckedLocallyOnly,
                        format!(
                            "{} does not enforce {} of agent `{id}`'s output schema: {}; these are checked locally only, and an answer breaking them is sent back for repair",
                            provider_name(agent.provider),
                            if listed.len() == 1 { "this keyword" } else { "these keywords" },
                            listed.join(", ")
                        ),
                        &output_at,
                        doc.key(&output_at),
                    )
                    .with_label("checked locally only")
                    .with_help("keep them if they matter (each broken answer costs a repair call), or drop them"),
                );
            }
            if let Some(why) = wire.not_strict_because {
                let p = format!("{output_at}{}", why.pointer);
                out.push(
                    Diagnostic::error(
                        Code::CheckedLocallyOnly,
                        format!(
                            "OpenAI's strict mode is off for agent `{id}`: {}; the server enforces the schema best-effort, and it is checked locally",
                            why.message
                        ),
                        &p,
                        doc.key(&p),
                    )
                    .with_label("not strict")
                    .with_help("make every property required (an optional one as `anyOf` with `null`) to turn strict mode on"),
                );
            }
        }
    }
}

fn provider_name(p: Provider) -> &'static str {
    match p {
        Provider::Anthropic => "Anthropic's structured output",
        Provider::Openai => "the OpenAI-compatible server",
    }
}
