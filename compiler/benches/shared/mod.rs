//! The step list both benchmarks use: a chain of agent steps, every tenth
//! position a parallel block of three, each step reading the previous step's
//! output and the workflow's input field `field`.

use serde_json::{json, Value};

/// The steps (calling `agent`) and the id of the last one.
pub fn chained_steps(steps: usize, agent: &str, field: &str) -> (Vec<Value>, String) {
    let step = |id: &str, previous: &Option<String>| {
        let text = match previous {
            Some(p) => format!("${{steps.{p}.output.text}} / ${{input.{field}}}"),
            None => format!("${{input.{field}}}"),
        };
        json!({ "id": id, "agent": agent, "input": { "text": text } })
    };
    let mut list = Vec::new();
    let mut previous: Option<String> = None;
    let mut n = 0;
    while n < steps {
        if n % 10 == 9 && n + 3 <= steps {
            let children: Vec<Value> = (0..3).map(|i| step(&format!("s{}", n + i), &previous)).collect();
            list.push(json!({ "id": format!("block{n}"), "parallel": children }));
            previous = Some(format!("s{}", n + 2));
            n += 3;
        } else {
            let id = format!("s{n}");
            list.push(step(&id, &previous));
            previous = Some(id);
            n += 1;
        }
    }
    (list, previous.unwrap_or_default())
}
