//! What the chosen [`Target`] cannot run yet: each such block is an error
//! where it is written, so `validate --target T` saying "valid" still means
//! the crate for `T` builds and runs.

use orchestr8_schema::ast::{Step, Workflow};

use super::Doc;
use crate::diagnostics::{Code, Diagnostic};
use crate::target::Target;

pub fn check(workflow: &Workflow, target: Target, doc: &Doc, out: &mut Vec<Diagnostic>) {
    if target == Target::Restate {
        // Restate refuses to register a service named so (META0005, seen
        // from 1.7.12): `restate...` in any case, and `openapi`.
        let id = &workflow.metadata.id;
        if id.to_ascii_lowercase().starts_with("restate") || id == "openapi" {
            let at = "/metadata/id";
            out.push(
                Diagnostic::error(
                    Code::ReservedOnTarget,
                    format!(
                        "Restate reserves `openapi` and the service names starting with `restate`, so `{id}` cannot name the service"
                    ),
                    at,
                    doc.value(at),
                )
                .with_label("reserved by Restate")
                .with_help("rename the workflow (its `metadata.id` is the service's name: `POST /ID/run`)"),
            );
        }
        let steps: Vec<_> = workflow.steps.iter().enumerate().map(|(i, s)| (format!("/steps/{i}"), s)).collect();
        walk(&steps, false, target, doc, out);
    }
}

/// `in_map`: inside a map's body, where the `branch` handler that runs a
/// parallel block's branches or a map's items cannot reach (it finds them
/// from the plan's root).
fn walk(steps: &[(String, &Step)], in_map: bool, target: Target, doc: &Doc, out: &mut Vec<Diagnostic>) {
    for (pointer, step) in steps {
        // What it is, its key, and what to do instead.
        let unsupported = match step {
            // (A wait in a map's body is E0454 on every target.)
            Step::Agent(_) | Step::Sequence(_) | Step::Switch(_) | Step::Wait(_) => None,
            Step::Parallel(_) if in_map => Some((
                "a parallel block in a map's body",
                "parallel",
                "compile for the embedded target (the default, no `--target`), or run the block's steps in a \
                 sequence in the map's body (its items already run concurrently)",
            )),
            Step::Map(_) if in_map => Some((
                "a map in a map's body",
                "map",
                "compile for the embedded target (the default, no `--target`), or flatten the lists into one \
                 before the outer map",
            )),
            Step::Parallel(_) | Step::Map(_) => None,
        };
        if let Some((what, key, help)) = unsupported {
            let at_key = format!("{pointer}/{key}");
            out.push(
                Diagnostic::error(
                    Code::UnsupportedOnTarget,
                    format!("{what} does not run on the `{}` target yet", target.name()),
                    at_key.clone(),
                    doc.key(&at_key),
                )
                .with_label(format!("not on `{}` yet", target.name()))
                .with_help(help),
            );
            continue;
        }
        let in_map = in_map || matches!(step, Step::Map(_));
        for list in step.child_lists() {
            let children: Vec<_> =
                list.steps.iter().enumerate().map(|(i, s)| (list.step_pointer(pointer, i), s)).collect();
            walk(&children, in_map, target, doc, out);
        }
    }
}
