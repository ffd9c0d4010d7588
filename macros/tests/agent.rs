//! `#[agent]` on real functions: the generated types, the agent
//! implementation, and the function left callable as written.

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{schemars, Agent, AgentContext, AgentError};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Money {
    pub cents: i64,
}

#[agent(
    id = "classify",
    version = "1.2.0",
    input = {
        /// The ticket's text.
        text: String,
        language: Option<"en" | "de">,
        maxWords: Option<u32>,
        customer: { name: String, vip: Option<bool> },
        tags: Vec<String>,
        extra: serde_json::Value,
    },
    output = { category: "billing" | "bug" | "in-progress", confidence: f64, refund: Option<Money> },
)]
/// Classifies a support ticket.
pub async fn classify(_ctx: &AgentContext<'_>, input: ClassifyInput) -> Result<ClassifyOutput, AgentError> {
    if input.text.is_empty() {
        return Err(AgentError::fatal("empty ticket"));
    }
    let category =
        if input.text.contains("invoice") { ClassifyOutputCategory::Billing } else { ClassifyOutputCategory::Bug };
    Ok(ClassifyOutput {
        category,
        confidence: 0.5,
        refund: input.customer.vip.filter(|v| *v).map(|_| Money { cents: 100 }),
    })
}

fn input(text: &str) -> ClassifyInput {
    serde_json::from_value(json!({
        "text": text, "maxWords": 10, "customer": { "name": "Ada", "vip": true }, "tags": [], "extra": null
    }))
    .unwrap()
}

#[test]
fn generated_types_use_the_declared_json_names() {
    let i = input("my invoice");
    assert_eq!(i.max_words, Some(10));
    assert_eq!(i.language, None);
    let back = serde_json::to_value(&i).unwrap();
    assert_eq!(back["maxWords"], 10);
    assert!(back.get("language").is_none(), "absent options are not written: {back}");
    let unknown = serde_json::from_value::<ClassifyInput>(json!({
        "text": "x", "customer": { "name": "A" }, "tags": [], "extra": 1, "other": 2
    }));
    assert!(unknown.is_err(), "unknown fields are rejected");
    let category: ClassifyOutputCategory = serde_json::from_value(json!("in-progress")).unwrap();
    assert_eq!(category, ClassifyOutputCategory::InProgress);
}

#[test]
fn schemas_carry_types_and_descriptions() {
    let schema = serde_json::to_value(schemars::schema_for!(ClassifyInput)).unwrap();
    assert_eq!(schema["properties"]["text"]["description"], "The ticket's text.");
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, ["text", "customer", "tags", "extra"]);
}

#[tokio::test]
async fn the_function_stays_callable_and_the_agent_calls_it() {
    let agent = ClassifyAgent;
    assert_eq!((agent.id(), agent.version()), ("classify", "1.2.0"));
    let token = orchestr8_runtime::codegen::CancellationToken::new();
    let meta = orchestr8_runtime::codegen::ExecutionMeta {
        execution_id: "e".into(),
        correlation_id: "c".into(),
        workflow_id: "w".into(),
        workflow_version: "1.0.0".into(),
    };
    let config = serde_json::Value::Null;
    let ctx = AgentContext::new(&token, &meta, "step", 1, &config);
    let direct = classify(&ctx, input("my invoice")).await.unwrap();
    let via_agent = agent.run(&ctx, input("my invoice")).await.unwrap();
    assert_eq!(direct, via_agent);
    assert_eq!(direct.category, ClassifyOutputCategory::Billing);
    assert_eq!(direct.refund, Some(Money { cents: 100 }));
    assert!(agent.run(&ctx, input("")).await.is_err());
}

#[test]
fn compile_errors_point_at_the_mistake() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
