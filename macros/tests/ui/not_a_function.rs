use orchestr8_macros::agent;

#[agent(id = "echo", version = "1.0.0", input = { text: String }, output = { text: String })]
struct Echo;

fn main() {}
