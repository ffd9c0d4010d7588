//! The agent of the `hello` example.

use orchestr8_macros::agent;
use orchestr8_runtime::codegen::{AgentContext, AgentError};

#[agent(
    id = "greet",
    version = "1.0.0",
    input = {
        /// Who to greet.
        name: String,
    },
    output = {
        /// The greeting.
        greeting: String,
    },
)]
/// Builds a greeting.
pub async fn greet(_ctx: &AgentContext<'_>, input: GreetInput) -> Result<GreetOutput, AgentError> {
    let name = input.name.trim();
    if name.is_empty() {
        return Err(AgentError::fatal("a greeting needs a name"));
    }
    Ok(GreetOutput { greeting: greeting(name) })
}

fn greeting(name: &str) -> String {
    format!("Hello, {name}!")
}

#[cfg(test)]
mod tests {
    #[test]
    fn greets_by_name() {
        assert_eq!(super::greeting("Ada"), "Hello, Ada!");
    }
}
