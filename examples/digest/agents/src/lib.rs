//! The agents of the `digest` example: one summarizes an article (the
//! workflow maps it over the articles), the other writes the digest from the
//! summaries that came back.

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(
    id = "summarize",
    version = "1.0.0",
    input = {
        /// The article's title.
        title: String,
        /// The article's text.
        body: String,
        /// At most this many words in the summary.
        maxWords: u32,
        /// The article's place in the list, from 0.
        position: u64,
    },
    output = {
        /// The article's title.
        title: String,
        /// Its first words.
        summary: String,
        /// Its place in the list.
        position: u64,
    },
)]
/// Summarizes an article by its first words; an empty article is an error.
pub async fn summarize(_ctx: &AgentContext<'_>, input: SummarizeInput) -> Result<SummarizeOutput, AgentError> {
    let summary = first_words(&input.body, input.max_words as usize);
    if summary.is_empty() {
        return Err(AgentError::fatal(format!("article \"{}\" has no text to summarize", input.title)));
    }
    Ok(SummarizeOutput { title: input.title, summary, position: input.position })
}

#[agent(
    id = "digest",
    version = "1.0.0",
    input = {
        /// Each article's summary, in the articles' order; none for an article that could not be summarized.
        summaries: Vec<Option<{ title: String, summary: String }>>,
    },
    output = {
        /// One line per summarized article.
        text: String,
        /// How many articles are in it.
        count: u32,
        /// How many could not be summarized.
        skipped: u32,
    },
)]
/// Writes the digest: a line per summary, in order.
pub async fn digest(_ctx: &AgentContext<'_>, input: DigestInput) -> Result<DigestOutput, AgentError> {
    let lines: Vec<String> = input.summaries.iter().flatten().map(|s| format!("{}: {}", s.title, s.summary)).collect();
    let skipped = input.summaries.iter().filter(|s| s.is_none()).count();
    Ok(DigestOutput { text: lines.join("\n"), count: lines.len() as u32, skipped: skipped as u32 })
}

fn first_words(text: &str, n: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().take(n).collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_words_stops_at_n() {
        assert_eq!(super::first_words("  one two\nthree four ", 3), "one two three");
        assert_eq!(super::first_words("", 3), "");
    }
}
