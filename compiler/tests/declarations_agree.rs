//! One declaration, three readers: the types `#[agent]` generates (as
//! schemars describes them) have the same shape as the schema the compiler
//! reads from the same declaration in source.

use std::path::Path;

use orchestr8::agents::{AgentSchemaSource, FromRustSource};
use orchestr8::types::{from_schema, Ty};
use orchestr8_runtime::codegen::schemars::{schema_for, JsonSchema};
use orchestr8_schema::ast::Workflow;

fn from_source(example: &str, agent: &str, side: &str) -> Ty {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(example);
    let workflow: Workflow =
        serde_json::from_str(&std::fs::read_to_string(dir.join("workflow.json")).unwrap()).unwrap();
    let schemas = FromRustSource::new(&dir).schemas(agent, &workflow.agents[agent], &format!("/agents/{agent}"));
    assert!(schemas.diagnostics.is_empty(), "{:?}", schemas.diagnostics);
    let declared = if side == "input" { schemas.input } else { schemas.output };
    from_schema(&declared.expect("declared").schema).unwrap()
}

fn generated<T: JsonSchema>() -> Ty {
    from_schema(&serde_json::to_value(schema_for!(T)).unwrap()).unwrap()
}

#[test]
fn generated_types_match_their_declarations() {
    // Shapes, not a vacuous `Any == Any`.
    assert!(matches!(generated::<triage_agents::FetchTicketOutput>(), Ty::Object(ref o) if o.fields.len() == 4));
    assert_eq!(generated::<triage_agents::FetchTicketOutput>(), from_source("ticket-triage", "fetch_ticket", "output"));
    assert_eq!(generated::<triage_agents::DraftReplyInput>(), from_source("ticket-triage", "draft_reply", "input"));
    assert_eq!(generated::<pipeline_agents::KeywordsOutput>(), from_source("document-pipeline", "keywords", "output"));
    assert_eq!(generated::<pipeline_agents::SummarizeInput>(), from_source("document-pipeline", "summarize", "input"));
    assert_eq!(generated::<flaky_agents::CachedPriceInput>(), from_source("flaky-dependency", "cached_price", "input"));
    assert_eq!(
        generated::<flaky_agents::CachedPriceOutput>(),
        from_source("flaky-dependency", "cached_price", "output")
    );
}
