use orchestr8_macros::agent;

#[agent(id = "echo", version = "1.0.0", input = { text: String }, output = { text: String })]
async fn echo(&self, input: EchoInput) -> Result<EchoOutput, orchestr8_runtime::codegen::AgentError> {
    todo!()
}

fn main() {}
