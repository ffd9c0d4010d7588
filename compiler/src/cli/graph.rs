//! `orchestr8 graph WORKFLOW --format mermaid|dot`: the workflow's structure.
//!
//! The graph is read from the validated AST: agent steps are nodes, parallel
//! blocks and sequences are subgraphs, control edges follow execution order
//! (a parallel block forks into its branches and joins them; a switch is a
//! decision whose edges are labelled by case value, and whose branches meet
//! again at its merge), and dashed data
//! edges go from each step to every step (or the workflow output) whose input
//! references `${steps.ID.output...}`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use orchestr8_schema::ast::{Step, Workflow};
use orchestr8_schema::expr::{parse_template, Reference, Root, Segment, Template};
use serde_json::Value;

use super::{Reporting, Status};
use crate::agents::{DeclaredInWorkflow, FromRustSource};
use crate::diagnostics::render_human;
use crate::validate::validate;

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW")]
    file: PathBuf,
    /// The graph language.
    #[arg(long, value_enum, default_value_t)]
    format: GraphFormat,
    /// Take agent schemas only from the workflow's `agents.ID.input`/`output`,
    /// without reading the agent crates' `#[agent]` declarations.
    #[arg(long)]
    declared_only: bool,
    #[command(flatten)]
    reporting: Reporting,
}

/// The graph languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(super) enum GraphFormat {
    /// A Mermaid flowchart (GitHub and most Markdown viewers render it).
    #[default]
    Mermaid,
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
}

pub(super) fn run(args: &Args) -> Status {
    let name = args.file.display().to_string();
    let bytes = match super::read_document(&args.file) {
        Ok(b) => b,
        Err(message) => {
            eprintln!("error[E0100]: {message}");
            return Status::Usage;
        }
    };
    let validation = if args.declared_only {
        validate(&bytes, &DeclaredInWorkflow)
    } else {
        let base = args.file.parent().map(Path::to_path_buf).unwrap_or_default();
        validate(&bytes, &FromRustSource::new(base))
    };
    let workflow = match (&validation.workflow, validation.has_errors()) {
        (Some(w), false) => w,
        _ => {
            let options = args.reporting.options();
            eprint!("{}", render_human(&name, &validation.text, &validation.diagnostics, options));
            let errors = validation.diagnostics.iter().filter(|d| d.is_error()).count();
            eprintln!("{name}: invalid, {errors} error{}", if errors == 1 { "" } else { "s" });
            super::print_explain_hint(&validation.diagnostics);
            return Status::Failure;
        }
    };
    let graph = Graph::of(workflow);
    let text = match args.format {
        GraphFormat::Mermaid => graph.mermaid(),
        GraphFormat::Dot => graph.dot(),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Status::Success
}

/// A node of the drawing.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    /// The workflow's input (where execution starts).
    Input,
    /// The workflow's output (where execution ends).
    Output,
    /// An agent step, by id.
    Step(String),
    /// Where a parallel block (by id) starts its branches.
    Fork(String),
    /// Where a parallel block (by id) waits for its branches.
    Join(String),
    /// Where a switch (by id) decides.
    Decision(String),
    /// Where a switch's (by id) branches meet again.
    Merge(String),
}

/// A parallel block, a sequence or a map, drawn as a subgraph.
#[derive(Debug)]
struct Cluster {
    id: String,
    kind: Kind,
    description: Option<String>,
    items: Vec<Item>,
}

/// What a cluster is.
#[derive(Debug)]
enum Kind {
    Sequence,
    Parallel,
    /// A switch: a decision, its cases' steps, a merge.
    Switch,
    /// A map's body, run per item: its list, the item's name, the concurrency.
    Map {
        over: String,
        item: String,
        concurrency: u64,
    },
}

#[derive(Debug)]
enum Item {
    /// An agent call, or a wait (`waits`, drawn as a hexagon); `what` is its
    /// second line (`agent: X`, `signal: S`).
    Step {
        id: String,
        what: String,
        description: Option<String>,
        waits: bool,
    },
    Fork(String),
    Join(String),
    /// A switch's decision: its id and what it is on.
    Decision(String, String),
    Merge(String),
    Cluster(Cluster),
}

/// A data edge: `to` reads `paths` of `from`'s output.
#[derive(Debug)]
struct DataEdge {
    from: String,
    to: Node,
    paths: Vec<String>,
}

#[derive(Debug)]
struct Graph {
    workflow_id: String,
    items: Vec<Item>,
    /// Control edges, labelled with a case's value where a switch decides.
    control: Vec<(Node, Node, Option<String>)>,
    data: Vec<DataEdge>,
    /// The node a step's output comes from: the step, or a block's last node.
    exits: BTreeMap<String, Node>,
}

impl Graph {
    fn of(workflow: &Workflow) -> Graph {
        let mut g = Graph {
            workflow_id: workflow.metadata.id.clone(),
            items: Vec::new(),
            control: Vec::new(),
            data: Vec::new(),
            exits: BTreeMap::new(),
        };
        let mut items = Vec::new();
        let (_, exit) = g.sequence(&workflow.steps, Node::Input, &mut items);
        g.control.push((exit, Node::Output, None));
        g.items = items;
        if let Some(output) = &workflow.output {
            g.add_data(output, Node::Output);
        }
        g
    }

    /// Lays out `steps` in order after `before`; returns the first node and the last.
    fn sequence(&mut self, steps: &[Step], before: Node, items: &mut Vec<Item>) -> (Node, Node) {
        let mut prev = before;
        let mut first = None;
        for step in steps {
            let start = entry(step);
            self.control.push((prev, start.clone(), None));
            let (_, end) = self.step(step, items);
            first.get_or_insert(start);
            prev = end;
        }
        (first.unwrap_or_else(|| prev.clone()), prev)
    }

    /// Lays out one step; returns its entry and exit nodes.
    fn step(&mut self, step: &Step, items: &mut Vec<Item>) -> (Node, Node) {
        let bounds = self.step_inner(step, items);
        self.exits.insert(step.id().to_owned(), bounds.1.clone());
        bounds
    }

    fn step_inner(&mut self, step: &Step, items: &mut Vec<Item>) -> (Node, Node) {
        match step {
            Step::Agent(s) => {
                items.push(Item::Step {
                    id: s.id.clone(),
                    what: format!("agent: {}", s.agent),
                    description: s.description.clone(),
                    waits: false,
                });
                let node = Node::Step(s.id.clone());
                for value in s.input.values() {
                    self.add_data(value, node.clone());
                }
                (node.clone(), node)
            }
            Step::Wait(w) => {
                items.push(Item::Step {
                    id: w.id.clone(),
                    what: format!("signal: {}", w.wait.signal),
                    description: w.description.clone(),
                    waits: true,
                });
                let node = Node::Step(w.id.clone());
                (node.clone(), node)
            }
            Step::Parallel(p) => {
                let fork = Node::Fork(p.id.clone());
                let join = Node::Join(p.id.clone());
                let mut inner = vec![Item::Fork(p.id.clone())];
                for child in &p.parallel {
                    self.control.push((fork.clone(), entry(child), None));
                    let (_, end) = self.step(child, &mut inner);
                    self.control.push((end, join.clone(), None));
                }
                inner.push(Item::Join(p.id.clone()));
                items.push(Item::Cluster(Cluster {
                    id: p.id.clone(),
                    kind: Kind::Parallel,
                    description: p.description.clone(),
                    items: inner,
                }));
                (fork, join)
            }
            Step::Sequence(s) => {
                let mut inner = Vec::new();
                let mut bounds: Option<(Node, Node)> = None;
                for child in &s.sequence {
                    if let Some((_, last)) = &bounds {
                        self.control.push((last.clone(), entry(child), None));
                    }
                    let (start, end) = self.step(child, &mut inner);
                    match &mut bounds {
                        None => bounds = Some((start, end)),
                        Some((_, last)) => *last = end,
                    }
                }
                items.push(Item::Cluster(Cluster {
                    id: s.id.clone(),
                    kind: Kind::Sequence,
                    description: s.description.clone(),
                    items: inner,
                }));
                // A sequence is never empty in a valid workflow.
                bounds.unwrap_or((Node::Input, Node::Input))
            }
            Step::Map(m) => {
                // One box: the body, drawn once, inside the map's frame.
                let mut inner = Vec::new();
                let bounds = self.step(&m.map.step, &mut inner);
                self.add_data(&Value::String(m.map.over.clone()), bounds.0.clone());
                let over = m.map.over.trim_start_matches("${").trim_end_matches('}').to_owned();
                let concurrency = m.map.concurrency.unwrap_or(orchestr8_runtime::map::DEFAULT_CONCURRENCY as u64);
                items.push(Item::Cluster(Cluster {
                    id: m.id.clone(),
                    kind: Kind::Map { over, item: m.map.item.clone(), concurrency },
                    description: m.description.clone(),
                    items: inner,
                }));
                bounds
            }
            Step::Switch(s) => {
                let decision = Node::Decision(s.id.clone());
                let merge = Node::Merge(s.id.clone());
                let mut inner = vec![Item::Decision(s.id.clone(), s.switch.clone())];
                self.add_data(&Value::String(s.switch.clone()), decision.clone());
                for (_, branch) in s.branches() {
                    let mut last = None;
                    for (i, child) in branch.case.steps().iter().enumerate() {
                        let label = (i == 0).then(|| branch.label());
                        let from = last.take().unwrap_or_else(|| decision.clone());
                        self.control.push((from, entry(child), label));
                        let (_, end) = self.step(child, &mut inner);
                        last = Some(end);
                    }
                    match last {
                        Some(end) => self.control.push((end, merge.clone(), None)),
                        // A case without steps goes straight to the merge.
                        None => self.control.push((decision.clone(), merge.clone(), Some(branch.label()))),
                    }
                    if let Some(output) = branch.case.output() {
                        self.add_data(output, merge.clone());
                    }
                }
                inner.push(Item::Merge(s.id.clone()));
                items.push(Item::Cluster(Cluster {
                    id: s.id.clone(),
                    kind: Kind::Switch,
                    description: s.description.clone(),
                    items: inner,
                }));
                (decision, merge)
            }
        }
    }

    /// Adds a data edge to `to` for every `${steps.X.output...}` in `value`.
    fn add_data(&mut self, value: &Value, to: Node) {
        let mut refs = Vec::new();
        collect_refs(value, &mut refs);
        for r in refs {
            let Root::StepOutput(from) = &r.root else { continue };
            let path: String = r.path.iter().map(ToString::to_string).collect();
            let path = path.strip_prefix('.').map(str::to_owned).unwrap_or(path);
            let path = if path.is_empty() { "output".to_owned() } else { path };
            match self.data.iter_mut().find(|e| &e.from == from && e.to == to) {
                Some(edge) => {
                    if !edge.paths.contains(&path) {
                        edge.paths.push(path);
                    }
                }
                None => self.data.push(DataEdge { from: from.clone(), to: to.clone(), paths: vec![path] }),
            }
        }
    }

    fn producer<'a>(&'a self, id: &str) -> &'a Node {
        // Every referenced step exists in a valid workflow.
        self.exits.get(id).unwrap_or(&Node::Input)
    }

    fn mermaid(&self) -> String {
        let mut out = String::new();
        out.push_str("flowchart TD\n");
        out.push_str(&format!("    %% workflow {}\n", self.workflow_id));
        out.push_str("    IN([\"input\"])\n");
        for item in &self.items {
            mermaid_item(item, 1, &mut out);
        }
        out.push_str("    OUT([\"output\"])\n");
        for (from, to, label) in &self.control {
            match label {
                Some(l) => out.push_str(&format!(
                    "    {} -->|\"{}\"| {}\n",
                    mermaid_id(from),
                    mermaid_escape(l),
                    mermaid_id(to)
                )),
                None => out.push_str(&format!("    {} --> {}\n", mermaid_id(from), mermaid_id(to))),
            }
        }
        for edge in &self.data {
            let label = mermaid_escape(&edge.paths.join(", "));
            out.push_str(&format!(
                "    {} -.->|\"{label}\"| {}\n",
                mermaid_id(self.producer(&edge.from)),
                mermaid_id(&edge.to)
            ));
        }
        out
    }

    fn dot(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("digraph \"{}\" {{\n", dot_escape(&self.workflow_id)));
        out.push_str("    rankdir=TB;\n");
        out.push_str("    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
        out.push_str("    edge [fontname=\"Helvetica\", fontsize=10];\n");
        out.push_str("    \"input\" [label=\"input\", shape=oval];\n");
        for item in &self.items {
            dot_item(item, 1, &mut out);
        }
        out.push_str("    \"output\" [label=\"output\", shape=oval];\n");
        for (from, to, label) in &self.control {
            match label {
                Some(l) => {
                    out.push_str(&format!("    {} -> {} [label=\"{}\"];\n", dot_id(from), dot_id(to), dot_escape(l)))
                }
                None => out.push_str(&format!("    {} -> {};\n", dot_id(from), dot_id(to))),
            }
        }
        for edge in &self.data {
            out.push_str(&format!(
                "    {} -> {} [style=dashed, color=\"#6b7280\", fontcolor=\"#6b7280\", constraint=false, label=\"{}\"];\n",
                dot_id(self.producer(&edge.from)),
                dot_id(&edge.to),
                dot_escape(&edge.paths.join(", "))
            ));
        }
        out.push_str("}\n");
        out
    }
}

/// The node where a step starts.
fn entry(step: &Step) -> Node {
    match step {
        Step::Agent(s) => Node::Step(s.id.clone()),
        Step::Wait(w) => Node::Step(w.id.clone()),
        Step::Parallel(p) => Node::Fork(p.id.clone()),
        Step::Sequence(s) => s.sequence.first().map(entry).unwrap_or(Node::Input),
        Step::Map(m) => entry(&m.map.step),
        Step::Switch(s) => Node::Decision(s.id.clone()),
    }
}

fn collect_refs(value: &Value, out: &mut Vec<Reference>) {
    match value {
        Value::String(s) => match parse_template(s) {
            Ok(Template::Whole(r)) => out.push(r.value),
            Ok(Template::Interpolated(segments)) => {
                for seg in segments {
                    if let Segment::Reference(r) = seg {
                        out.push(r.value);
                    }
                }
            }
            Ok(Template::Literal(_)) | Err(_) => {}
        },
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

fn step_label(id: &str, what: &str, description: Option<&str>) -> Vec<String> {
    let mut lines = vec![id.to_owned(), what.to_owned()];
    if let Some(d) = description {
        lines.push(d.to_owned());
    }
    lines
}

fn cluster_label(c: &Cluster) -> String {
    let kind = match &c.kind {
        Kind::Sequence => "sequence".to_owned(),
        Kind::Parallel => "parallel".to_owned(),
        Kind::Switch => "switch".to_owned(),
        Kind::Map { over, item, concurrency } => format!("map: each {item} of {over}, {concurrency} at a time"),
    };
    match &c.description {
        Some(d) => format!("{} ({kind}): {d}", c.id),
        None => format!("{} ({kind})", c.id),
    }
}

// Mermaid ids: step ids are lower case, so an upper-case prefix keeps every
// kind of node apart and away from keywords such as `end`.
fn mermaid_id(node: &Node) -> String {
    match node {
        Node::Input => "IN".to_owned(),
        Node::Output => "OUT".to_owned(),
        Node::Step(id) => format!("S_{id}"),
        Node::Fork(id) => format!("F_{id}"),
        Node::Join(id) => format!("J_{id}"),
        Node::Decision(id) => format!("D_{id}"),
        Node::Merge(id) => format!("M_{id}"),
    }
}

/// Text for a quoted Mermaid label: entity codes for the characters that
/// end or reinterpret one, white space folded to spaces.
fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '`' => out.push_str("#96;"),
            '|' => out.push_str("#124;"),
            c if c.is_whitespace() || c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn mermaid_item(item: &Item, depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    match item {
        Item::Step { id, what, description, waits } => {
            let label: Vec<String> =
                step_label(id, what, description.as_deref()).iter().map(|l| mermaid_escape(l)).collect();
            let (open, close) = if *waits { ("{{", "}}") } else { ("[", "]") };
            let node = mermaid_id(&Node::Step(id.clone()));
            out.push_str(&format!("{pad}{node}{open}\"{}\"{close}\n", label.join("<br/>")));
        }
        Item::Fork(id) => out.push_str(&format!("{pad}{}((\"fork\"))\n", mermaid_id(&Node::Fork(id.clone())))),
        Item::Join(id) => out.push_str(&format!("{pad}{}((\"join\"))\n", mermaid_id(&Node::Join(id.clone())))),
        Item::Decision(id, on) => out.push_str(&format!(
            "{pad}{}{{\"{}<br/>{}\"}}\n",
            mermaid_id(&Node::Decision(id.clone())),
            mermaid_escape(id),
            mermaid_escape(&format!("switch: {on}"))
        )),
        Item::Merge(id) => out.push_str(&format!("{pad}{}((\"merge\"))\n", mermaid_id(&Node::Merge(id.clone())))),
        Item::Cluster(c) => {
            out.push_str(&format!("{pad}subgraph G_{}[\"{}\"]\n", c.id, mermaid_escape(&cluster_label(c))));
            if !matches!(c.kind, Kind::Parallel) {
                out.push_str(&format!("{pad}    direction TB\n"));
            }
            for child in &c.items {
                mermaid_item(child, depth + 1, out);
            }
            out.push_str(&format!("{pad}end\n"));
        }
    }
}

fn dot_id(node: &Node) -> String {
    match node {
        Node::Input => "\"input\"".to_owned(),
        Node::Output => "\"output\"".to_owned(),
        Node::Step(id) => format!("\"step:{id}\""),
        Node::Fork(id) => format!("\"fork:{id}\""),
        Node::Join(id) => format!("\"join:{id}\""),
        Node::Decision(id) => format!("\"switch:{id}\""),
        Node::Merge(id) => format!("\"merge:{id}\""),
    }
}

/// Text for a quoted DOT string: backslashes and quotes escaped, line
/// breaks as `\n`.
fn dot_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn dot_item(item: &Item, depth: usize, out: &mut String) {
    let pad = "    ".repeat(depth);
    match item {
        Item::Step { id, what, description, waits } => {
            let label: Vec<String> =
                step_label(id, what, description.as_deref()).iter().map(|l| dot_escape(l)).collect();
            let shape = if *waits { ", shape=hexagon" } else { "" };
            let node = dot_id(&Node::Step(id.clone()));
            out.push_str(&format!("{pad}{node} [label=\"{}\"{shape}];\n", label.join("\\n")));
        }
        Item::Fork(id) => out.push_str(&format!(
            "{pad}{} [label=\"fork\", shape=circle, width=0.3, fontsize=9];\n",
            dot_id(&Node::Fork(id.clone()))
        )),
        Item::Join(id) => out.push_str(&format!(
            "{pad}{} [label=\"join\", shape=circle, width=0.3, fontsize=9];\n",
            dot_id(&Node::Join(id.clone()))
        )),
        Item::Decision(id, on) => out.push_str(&format!(
            "{pad}{} [label=\"{}\\n{}\", shape=diamond];\n",
            dot_id(&Node::Decision(id.clone())),
            dot_escape(id),
            dot_escape(&format!("switch: {on}"))
        )),
        Item::Merge(id) => out.push_str(&format!(
            "{pad}{} [label=\"merge\", shape=circle, width=0.3, fontsize=9];\n",
            dot_id(&Node::Merge(id.clone()))
        )),
        Item::Cluster(c) => {
            out.push_str(&format!("{pad}subgraph \"cluster_{}\" {{\n", c.id));
            out.push_str(&format!("{pad}    label=\"{}\";\n", dot_escape(&cluster_label(c))));
            let style = match c.kind {
                Kind::Parallel => "dashed",
                Kind::Sequence | Kind::Switch => "solid",
                // Drawn once, run per item.
                Kind::Map { .. } => "bold",
            };
            out.push_str(&format!("{pad}    style={style};\n"));
            for child in &c.items {
                dot_item(child, depth + 1, out);
            }
            out.push_str(&format!("{pad}}}\n"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(
            mermaid_escape("a \"b\" <c> & #d | `e`\nf"),
            "a #quot;b#quot; #lt;c#gt; #amp; #35;d #124; #96;e#96; f"
        );
        assert_eq!(dot_escape("a \"b\" \\n\nc"), "a \\\"b\\\" \\\\n\\nc");
    }
}
