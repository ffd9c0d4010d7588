//! The agents of the `document-pipeline` example: plain text analysis, no
//! network, so the example runs anywhere.

use std::collections::BTreeMap;

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(
    id = "extract",
    version = "1.0.0",
    input = { body: String },
    output = {
        /// The text with white space normalised.
        text: String,
        sentences: Vec<String>,
        words: u64,
    },
)]
/// Normalises white space and splits the text into sentences.
pub async fn extract(_ctx: &AgentContext<'_>, input: ExtractInput) -> Result<ExtractOutput, AgentError> {
    let text = input.body.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return Err(AgentError::fatal("the document is empty"));
    }
    let sentences = split_sentences(&text);
    let words = text.split(' ').count() as u64;
    Ok(ExtractOutput { text, sentences, words })
}

#[agent(
    id = "summarize",
    version = "1.0.0",
    input = { sentences: Vec<String>, maxSentences: Option<u32> },
    output = { summary: String },
)]
/// Keeps the first sentences of the document.
pub async fn summarize(_ctx: &AgentContext<'_>, input: SummarizeInput) -> Result<SummarizeOutput, AgentError> {
    let keep = input.max_sentences.unwrap_or(3) as usize;
    Ok(SummarizeOutput { summary: input.sentences.iter().take(keep).cloned().collect::<Vec<_>>().join(" ") })
}

#[agent(
    id = "keywords",
    version = "1.0.0",
    input = { text: String, limit: Option<u32> },
    output = { keywords: Vec<{ word: String, count: u32 }> },
)]
/// The most frequent words of four letters or more.
pub async fn keywords(_ctx: &AgentContext<'_>, input: KeywordsInput) -> Result<KeywordsOutput, AgentError> {
    let top = top_words(&input.text, input.limit.unwrap_or(5) as usize);
    Ok(KeywordsOutput {
        keywords: top.into_iter().map(|(word, count)| KeywordsOutputKeywordsItem { word, count }).collect(),
    })
}

#[agent(
    id = "readability",
    version = "1.0.0",
    input = { text: String, language: String },
    output = { score: f64, level: "easy" | "standard" | "hard" },
)]
/// A rough readability score: average words per sentence.
pub async fn readability(_ctx: &AgentContext<'_>, input: ReadabilityInput) -> Result<ReadabilityOutput, AgentError> {
    let sentences = split_sentences(&input.text).len().max(1) as f64;
    let words = input.text.split_whitespace().count() as f64;
    let score = words / sentences;
    let level = match score {
        s if s < 12.0 => ReadabilityOutputLevel::Easy,
        s if s < 20.0 => ReadabilityOutputLevel::Standard,
        _ => ReadabilityOutputLevel::Hard,
    };
    Ok(ReadabilityOutput { score, level })
}

#[agent(
    id = "render_report",
    version = "1.0.0",
    input = {
        heading: String,
        summary: String,
        keywords: Vec<{ word: String, count: u32 }>,
        level: String,
    },
    output = { markdown: String },
)]
/// Renders the analyses as a Markdown report.
pub async fn render_report(
    _ctx: &AgentContext<'_>,
    input: RenderReportInput,
) -> Result<RenderReportOutput, AgentError> {
    let keywords: Vec<String> = input.keywords.iter().map(|k| format!("{} ({})", k.word, k.count)).collect();
    Ok(RenderReportOutput {
        markdown: format!(
            "# {}\n\n{}\n\nKeywords: {}\n\nReadability: {}\n",
            input.heading,
            input.summary,
            keywords.join(", "),
            input.level
        ),
    })
}

fn split_sentences(text: &str) -> Vec<String> {
    text.split_inclusive(['.', '!', '?']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn top_words(text: &str, limit: usize) -> Vec<(String, u32)> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 4) {
        *counts.entry(word.to_lowercase()).or_default() += 1;
    }
    let mut ranked: Vec<(String, u32)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.truncate(limit);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_and_keywords() {
        assert_eq!(split_sentences("One. Two! Three"), ["One.", "Two!", "Three"]);
        assert_eq!(
            top_words("Rust rust cargo. Cargo crate rust", 2),
            [("rust".to_owned(), 3), ("cargo".to_owned(), 2)]
        );
    }
}
