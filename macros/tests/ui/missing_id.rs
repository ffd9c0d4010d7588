use orchestr8_macros::agent;

#[agent(version = "1.0.0", input = { text: String }, output = { text: String })]
async fn echo(_ctx: &orchestr8_runtime::codegen::AgentContext<'_>, input: EchoInput) -> Result<EchoOutput, orchestr8_runtime::codegen::AgentError> {
    todo!()
}

fn main() {}
