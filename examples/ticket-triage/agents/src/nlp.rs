//! Text analysis agents (a module, to show `"function": "nlp::classify"`).

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(
    id = "classify",
    version = "1.0.0",
    input = { text: String },
    output = { category: "billing" | "bug" | "account" | "other", confidence: f64 },
)]
/// Classifies a ticket by keywords.
pub async fn classify(_ctx: &AgentContext<'_>, input: ClassifyInput) -> Result<ClassifyOutput, AgentError> {
    let text = input.text.to_lowercase();
    let (category, confidence) = if text.contains("invoice") || text.contains("charge") {
        (ClassifyOutputCategory::Billing, 0.9)
    } else if text.contains("crash") || text.contains("error") {
        (ClassifyOutputCategory::Bug, 0.8)
    } else if text.contains("password") || text.contains("login") {
        (ClassifyOutputCategory::Account, 0.7)
    } else {
        (ClassifyOutputCategory::Other, 0.3)
    };
    Ok(ClassifyOutput { category, confidence })
}

#[agent(
    id = "sentiment",
    version = "1.0.0",
    input = { text: String },
    output = { score: f64, angry: bool },
)]
/// A crude sentiment score from exclamation marks and strong words.
pub async fn sentiment(_ctx: &AgentContext<'_>, input: SentimentInput) -> Result<SentimentOutput, AgentError> {
    let strong = ["unacceptable", "terrible", "angry", "worst"];
    let hits =
        strong.iter().filter(|w| input.text.to_lowercase().contains(*w)).count() + input.text.matches('!').count();
    let score = 1.0 - (hits as f64 * 0.4).min(2.0);
    Ok(SentimentOutput { score, angry: score < 0.0 })
}
