//! What the chosen [`Target`] cannot run yet: each such block is an error
//! where it is written, so `validate --target T` saying "valid" still means
//! the crate for `T` builds and runs.

use orchestr8_schema::ast::{Step, Workflow};

use super::Doc;
use crate::diagnostics::{Code, Diagnostic};
use crate::target::Target;

pub fn check(workflow: &Workflow, target: Target, doc: &Doc, out: &mut Vec<Diagnostic>) {
    if target == Target::Restate {
        // Restate refuses to register a service named so (META0005).
        if workflow.metadata.id.starts_with("restate") {
            let at = "/metadata/id";
            out.push(
                Diagnostic::error(
                    Code::ReservedOnTarget,
                    format!(
                        "Restate reserves service names starting with `restate`, so `{}` cannot name the service",
                        workflow.metadata.id
                    ),
                    at,
                    doc.value(at),
                )
                .with_label("reserved by Restate")
                .with_help("rename the workflow (its `metadata.id` is the service's name: `POST /ID/run`)"),
            );
        }
        walk(&workflow.steps, "/steps", target, doc, out);
    }
}

fn walk(steps: &[Step], at: &str, target: Target, doc: &Doc, out: &mut Vec<Diagnostic>) {
    for (i, step) in steps.iter().enumerate() {
        let pointer = format!("{at}/{i}");
        let unsupported = match step {
            Step::Agent(_) | Step::Sequence(_) | Step::Parallel(_) | Step::Switch(_) => None,
            Step::Wait(_) => Some(("a wait", "wait")),
            Step::Map(_) => Some(("a map", "map")),
        };
        if let Some((what, key)) = unsupported {
            let at_key = format!("{pointer}/{key}");
            out.push(
                Diagnostic::error(
                    Code::UnsupportedOnTarget,
                    format!("{what} does not run on the `{}` target yet", target.name()),
                    at_key.clone(),
                    doc.key(&at_key),
                )
                .with_label(format!("not on `{}` yet", target.name()))
                .with_help(
                    "compile for the embedded target (the default, no `--target`), which runs every kind of block",
                ),
            );
            continue;
        }
        for list in step.child_lists() {
            walk(list.steps, &format!("{pointer}{}", list.pointer), target, doc, out);
        }
    }
}
