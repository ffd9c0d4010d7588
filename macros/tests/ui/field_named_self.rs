use orchestr8_macros::agent;

#[agent(id = "echo", version = "1.0.0", input = { self: String }, output = { text: String })]
async fn echo(_ctx: &orchestr8_runtime::codegen::AgentContext<'_>, input: EchoInput) -> Result<EchoOutput, orchestr8_runtime::codegen::AgentError> {
    Err(orchestr8_runtime::codegen::AgentError::fatal("only compiled"))
}

fn main() {}
