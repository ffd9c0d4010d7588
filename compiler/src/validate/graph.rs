//! Layer 2: the graph rules. Ids are well formed and unique, names resolve,
//! policies make sense; and the step tree is indexed so the type layer can
//! ask which steps have certainly finished when another starts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use orchestr8_runtime::policy::{CircuitBreakerPolicy, Policy, PolicyError, PolicyField};
use orchestr8_schema::ast::{PolicyOverlay, PolicyRef, Step, Workflow};
use orchestr8_schema::source::escape_pointer_token;

use super::Doc;
use crate::diagnostics::{suggestion, Code, Diagnostic};

/// Step ids the generated `State` keeps its own fields under (the input and
/// the execution's ids), beside one field per step.
const RESERVED_STEP_IDS: &[&str] = &["input", "ids"];

/// The kind of block a step sits in. The top-level list is a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Children run in order.
    Sequence,
    /// Children run concurrently.
    Parallel,
    /// The body of a map: run once per item.
    Map,
    /// Children run in order, in branch N of a switch (its cases in order,
    /// then `default`): they run only when the switch takes that branch.
    Case(usize),
}

/// Where a step sits: from the top, the container, the index in it and the
/// container's id (empty at the top level).
pub type Position<'a> = [(Container, usize, &'a str)];

/// One step of the tree, with where it sits.
#[derive(Debug)]
pub struct StepNode<'a> {
    /// The step.
    pub step: &'a Step,
    /// Its JSON pointer.
    pub pointer: String,
    /// From the top: the container, the index in it and the container's id
    /// (empty at the top level), down to this step.
    pub path: Vec<(Container, usize, &'a str)>,
}

/// Why a step's output can or cannot be referenced from another step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// It has certainly finished.
    Visible,
    /// It is the referring step.
    Itself,
    /// It runs concurrently with the referring step, in this parallel block.
    Concurrent(String),
    /// It runs after the referring step.
    Later,
    /// It encloses the referring step.
    Enclosing,
    /// It is inside the body of this map, which the referring step is not:
    /// it runs once per item.
    InsideMap(String),
    /// It is in another branch of this switch than the referring step.
    OtherCase(String),
    /// It is nested inside the referring block.
    Inside,
}

/// The indexed step tree.
#[derive(Debug, Default)]
pub struct Graph<'a> {
    /// Every step, in document order.
    pub nodes: Vec<StepNode<'a>>,
    /// Index of the first step with each id.
    pub by_id: HashMap<&'a str, usize>,
}

impl<'a> Graph<'a> {
    /// Whether `target`'s output is ready when `referrer` starts.
    pub fn visibility(&self, referrer: usize, target: usize) -> Visibility {
        if referrer == target {
            return Visibility::Itself;
        }
        self.visibility_from(&self.nodes[referrer].path, target)
    }

    /// Whether `target`'s output is ready at position `r` (a step's path, or
    /// the end of a switch's case).
    pub fn visibility_from(&self, r: &Position<'_>, target: usize) -> Visibility {
        let t = &self.nodes[target].path;
        // A step in a map's body has one output per item: outside that body
        // (the referrer's path leaves it) only the map's output is read.
        let common = r.iter().zip(t).take_while(|(a, b)| a == b).count();
        if let Some((_, _, map)) = t[common.min(t.len())..].iter().find(|(c, _, _)| *c == Container::Map) {
            return Visibility::InsideMap((*map).to_owned());
        }
        for (depth, (rs, ts)) in r.iter().zip(t).enumerate() {
            if rs.0 != ts.0 {
                // Only two branches of one switch differ in container here.
                return Visibility::OtherCase(rs.2.to_owned());
            }
            if rs.1 != ts.1 {
                return match rs.0 {
                    Container::Parallel => Visibility::Concurrent(rs.2.to_owned()),
                    Container::Sequence | Container::Case(_) if ts.1 < rs.1 => Visibility::Visible,
                    // A map's body has one child.
                    Container::Sequence | Container::Case(_) | Container::Map => Visibility::Later,
                };
            }
            if depth + 1 == t.len() {
                return Visibility::Enclosing;
            }
        }
        if t.len() > r.len() {
            return Visibility::Inside;
        }
        Visibility::Enclosing
    }

    /// The maps enclosing step `index`, innermost first, by graph index.
    pub fn enclosing_maps(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        self.maps_at(&self.nodes[index].path)
    }

    /// The maps enclosing position `path`, innermost first, by graph index.
    pub fn maps_at<'p>(&'p self, path: &'p Position<'_>) -> impl Iterator<Item = usize> + 'p {
        path.iter().rev().filter(|(c, _, _)| *c == Container::Map).map(|(_, _, map)| self.by_id[map])
    }

    /// Whether `target`, visible from position `r`, may not have run there:
    /// it is inside a switch's branch that `r` is not inside (the switch may
    /// have taken another one).
    pub fn maybe_skipped(&self, r: &Position<'_>, target: usize) -> bool {
        let t = &self.nodes[target].path;
        t.iter().enumerate().any(|(depth, entry)| {
            matches!(entry.0, Container::Case(_))
                && !(r.len() > depth && r[..depth] == t[..depth] && r[depth].0 == entry.0)
        })
    }

    /// The position at the end of branch `case` of switch `switch` (by
    /// graph index): where that branch's output is built.
    pub fn end_of_case(&self, switch: usize, case: usize, len: usize) -> Vec<(Container, usize, &'a str)> {
        let node = &self.nodes[switch];
        let mut path = node.path.clone();
        path.push((Container::Case(case), len, node.step.id()));
        path
    }

    /// All step ids, for suggestions.
    pub fn ids(&self) -> impl Iterator<Item = &str> + Clone {
        self.nodes.iter().map(|n| n.step.id())
    }
}

/// Indexes the steps and checks the graph rules.
pub fn check<'a>(workflow: &'a Workflow, doc: &Doc<'_>, out: &mut Vec<Diagnostic>) -> Graph<'a> {
    let mut graph = Graph::default();
    index_steps(&workflow.steps, "/steps", Container::Sequence, "", &mut Vec::new(), &mut graph);

    for id in workflow.agents.keys() {
        let pointer = format!("/agents/{}", escape_pointer_token(id));
        check_not_keyword(id, "agent id", &pointer, doc.key(&pointer), out);
    }
    let mut used_agents = BTreeSet::new();
    let mut used_policies = BTreeSet::new();
    for (index, node) in graph.nodes.iter().enumerate() {
        let id = node.step.id();
        let id_pointer = format!("{}/id", node.pointer);
        check_not_keyword(id, "step id", &id_pointer, doc.value(&id_pointer), out);
        if RESERVED_STEP_IDS.contains(&id) {
            out.push(
                Diagnostic::error(
                    Code::ReservedId,
                    format!("step id `{id}` is reserved: the generated program keeps its own `{id}` beside the steps' outputs"),
                    id_pointer.clone(),
                    doc.value(&id_pointer),
                )
                .with_label("reserved")
                .with_help(format!("choose another name, such as `{id}_step`; `input` and `ids` are reserved")),
            );
        }
        let first = graph.by_id[id];
        if first != index {
            let first_line = doc.line_of(&format!("{}/id", graph.nodes[first].pointer));
            out.push(
                Diagnostic::error(
                    Code::DuplicateStepId,
                    format!("step id `{id}` is used twice"),
                    id_pointer.clone(),
                    doc.value(&id_pointer),
                )
                .with_label("second use")
                .with_help("step ids are unique in the whole document: rename one")
                .with_note(format!("first used on line {first_line}")),
            );
        }
        if let Step::Wait(wait) = node.step {
            check_wait_timeout(wait, &node.pointer, doc, out);
            if let Some(map) = graph.enclosing_maps(index).next() {
                let map = graph.nodes[map].step.id();
                out.push(
                    Diagnostic::error(
                        Code::WaitInMap,
                        format!("wait `{id}` is inside the body of map `{map}`"),
                        id_pointer.clone(),
                        doc.value(&id_pointer),
                    )
                    .with_label("a wait in a map")
                    .with_help(format!(
                        "wait before or after map `{map}`: a signal is sent to one step, not to one of a map's items"
                    )),
                );
            }
        }
        if let Step::Map(map) = node.step {
            check_map(map, index, &graph, &node.pointer, doc, out);
        }
        check_map_switch_nesting(index, &graph, &id_pointer, doc, out);
        let Step::Agent(step) = node.step else { continue };
        let agent_pointer = format!("{}/agent", node.pointer);
        if workflow.agents.contains_key(&step.agent) {
            used_agents.insert(step.agent.as_str());
        } else {
            let help = suggestion(&step.agent, workflow.agents.keys().map(String::as_str)).unwrap_or_else(|| {
                format!("declare it under `agents`, or use one of {}", names(workflow.agents.keys()))
            });
            out.push(
                Diagnostic::error(
                    Code::UnknownAgent,
                    format!("step `{id}` calls agent `{}`, which is not declared", step.agent),
                    agent_pointer.clone(),
                    doc.value(&agent_pointer),
                )
                .with_label("unknown agent")
                .with_help(help),
            );
        }
        match &step.policy {
            Some(PolicyRef::Named(name)) => {
                let pointer = format!("{}/policy", node.pointer);
                if workflow.policies.contains_key(name) {
                    used_policies.insert(name.as_str());
                } else {
                    let help = suggestion(name, workflow.policies.keys().map(String::as_str)).unwrap_or_else(|| {
                        if workflow.policies.is_empty() {
                            "declare it under `policies`, or write the policy inline as an object".into()
                        } else {
                            format!("declare it under `policies`, or use one of {}", names(workflow.policies.keys()))
                        }
                    });
                    out.push(
                        Diagnostic::error(
                            Code::UnknownPolicy,
                            format!("step `{id}` uses policy `{name}`, which is not declared"),
                            pointer.clone(),
                            doc.value(&pointer),
                        )
                        .with_label("unknown policy")
                        .with_help(help),
                    );
                }
            }
            Some(PolicyRef::Inline(policy)) => {
                check_policy(policy, workflow.policies.get("default"), &format!("{}/policy", node.pointer), doc, out)
            }
            None => {}
        }
    }
    for (name, policy) in &workflow.policies {
        let default = if name == "default" { None } else { workflow.policies.get("default") };
        check_policy(policy, default, &format!("/policies/{}", escape_pointer_token(name)), doc, out);
    }
    check_shared_breakers(workflow, &graph, doc, out);

    for id in workflow.agents.keys().filter(|id| !used_agents.contains(id.as_str())) {
        let pointer = format!("/agents/{}", escape_pointer_token(id));
        out.push(
            Diagnostic::error(
                Code::UnusedAgent,
                format!("agent `{id}` is never used"),
                pointer.clone(),
                doc.key(&pointer),
            )
            .with_label("no step calls it")
            .with_help("remove it, or call it from a step"),
        );
    }
    for name in workflow.policies.keys().filter(|n| *n != "default" && !used_policies.contains(n.as_str())) {
        let pointer = format!("/policies/{}", escape_pointer_token(name));
        out.push(
            Diagnostic::error(
                Code::UnusedPolicy,
                format!("policy `{name}` is never used"),
                pointer.clone(),
                doc.key(&pointer),
            )
            .with_label("no step uses it")
            .with_help("remove it, or name it in a step's `policy`"),
        );
    }
    graph
}

fn index_steps<'a>(
    steps: &'a [Step],
    pointer: &str,
    container: Container,
    container_id: &'a str,
    path: &mut Vec<(Container, usize, &'a str)>,
    graph: &mut Graph<'a>,
) {
    for (i, step) in steps.iter().enumerate() {
        index_step(step, format!("{pointer}/{i}"), (container, i, container_id), path, graph);
    }
}

/// Indexes `step`, which sits `at` (its container, its index there, the
/// container's id), and what it contains.
fn index_step<'a>(
    step: &'a Step,
    pointer: String,
    at: (Container, usize, &'a str),
    path: &mut Vec<(Container, usize, &'a str)>,
    graph: &mut Graph<'a>,
) {
    path.push(at);
    graph.by_id.entry(step.id()).or_insert(graph.nodes.len());
    graph.nodes.push(StepNode { step, pointer: pointer.clone(), path: path.clone() });
    let id = step.id();
    if let Step::Map(m) = step {
        // A map's body is one step, at `map/step` (no index below it).
        index_step(&m.map.step, format!("{pointer}/map/step"), (Container::Map, 0, id), path, graph);
    }
    for list in step.child_lists().into_iter().filter(|_| !matches!(step, Step::Map(_))) {
        let kind = match (step, list.case) {
            (Step::Parallel(_), _) => Container::Parallel,
            (_, Some(case)) => Container::Case(case),
            _ => Container::Sequence,
        };
        index_steps(list.steps, &format!("{pointer}{}", list.pointer), kind, id, path, graph);
    }
    path.pop();
}

fn check_not_keyword(
    id: &str,
    what: &str,
    pointer: &str,
    span: orchestr8_schema::source::Span,
    out: &mut Vec<Diagnostic>,
) {
    // Ids become Rust identifiers.
    if orchestr8_agent_decl::ident::is_keyword(id) {
        out.push(
            Diagnostic::error(Code::ReservedId, format!("{what} `{id}` is a Rust keyword"), pointer, span)
                .with_label("reserved")
                .with_help(format!("ids become Rust identifiers; choose another name, such as `{id}_step`")),
        );
    }
}

fn names<'a>(keys: impl Iterator<Item = &'a String>) -> String {
    let all: Vec<String> = keys.map(|k| format!("`{k}`")).collect();
    if all.is_empty() {
        "(none declared)".into()
    } else {
        all.join(", ")
    }
}

/// One breaker serves every step that calls an agent (per agent id and
/// version, and one workflow has one version of an agent); the first step
/// in document order binds it, so a later step's different
/// `circuitBreaker` settings would be silently ignored.
fn check_shared_breakers(workflow: &Workflow, graph: &Graph<'_>, doc: &Doc<'_>, out: &mut Vec<Diagnostic>) {
    let mut first: BTreeMap<&str, (&str, CircuitBreakerPolicy)> = BTreeMap::new();
    for node in &graph.nodes {
        let Step::Agent(step) = node.step else { continue };
        // An unknown or invalid policy is reported on its own.
        let Some(Ok(resolved)) = workflow.policy_layers(step).map(Policy::resolve) else { continue };
        let breaker = resolved.circuit_breaker;
        let Some((first_id, first_breaker)) = first.get(step.agent.as_str()) else {
            first.insert(&step.agent, (&step.id, breaker));
            continue;
        };
        if breaker == *first_breaker {
            continue;
        }
        let differences: Vec<String> = [
            ("failureThreshold", first_breaker.failure_threshold.to_string(), breaker.failure_threshold.to_string()),
            (
                "resetTimeout",
                format!("{} ms", first_breaker.reset_timeout.as_millis()),
                format!("{} ms", breaker.reset_timeout.as_millis()),
            ),
            ("halfOpenRequests", first_breaker.half_open_requests.to_string(), breaker.half_open_requests.to_string()),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, a, b)| format!("`{name}` {b} here, {a} there"))
        .collect();
        let at = match &step.policy {
            Some(_) => format!("{}/policy", node.pointer),
            None => format!("{}/agent", node.pointer),
        };
        out.push(
            Diagnostic::error(
                Code::BreakerSettingsDiffer,
                format!(
                    "step `{}` gives agent `{}` other circuit breaker settings than step `{first_id}` does, which are the ones used",
                    step.id, step.agent
                ),
                at.clone(),
                doc.value(&at),
            )
            .with_label("ignored circuitBreaker settings")
            .with_note(format!(
                "one breaker serves every call to an agent id and version, with the settings of the first step that runs with it: {}",
                differences.join("; ")
            ))
            .with_help("give every step that calls this agent the same `circuitBreaker` settings, e.g. in `policies.default`"),
        );
    }
}

/// A switch in a map's body, or a map in a switch's case, is refused: the
/// lowering types a map's items and a switch's outputs in one order each,
/// which do not compose yet.
fn check_map_switch_nesting(
    index: usize,
    graph: &Graph<'_>,
    id_pointer: &str,
    doc: &Doc<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let node = &graph.nodes[index];
    let id = node.step.id();
    let found = match node.step {
        Step::Switch(_) => graph.enclosing_maps(index).next().map(|m| {
            let map = graph.nodes[m].step.id();
            (
                format!("switch `{id}` is inside the body of map `{map}`: not supported yet"),
                // A map's output is a list: a switch after it cannot take its place.
                format!("move the switch out of `{map}`'s body (before the map, if it does not read the item), or let the body's agent make the choice"),
            )
        }),
        Step::Map(_) => node.path.iter().rev().find(|(c, _, _)| matches!(c, Container::Case(_))).map(|(_, _, switch)| {
            (
                format!("map `{id}` is inside a case of switch `{switch}`: not supported yet"),
                format!("move the map before or after switch `{switch}`"),
            )
        }),
        _ => None,
    };
    if let Some((message, help)) = found {
        out.push(
            Diagnostic::error(Code::MapSwitchNesting, message, id_pointer, doc.value(id_pointer))
                .with_label("not supported yet")
                .with_help(help),
        );
    }
}

/// Sorts a block's steps before the block, and earlier steps before later ones.
pub fn post_order_key(path: &Position<'_>) -> Vec<(usize, usize)> {
    let mut key: Vec<(usize, usize)> = path
        .iter()
        .map(|(container, index, _)| (if let Container::Case(c) = container { *c } else { 0 }, *index))
        .collect();
    key.push((usize::MAX, usize::MAX));
    key
}

/// The roots a reference may start with, which a map's item cannot be named.
const REFERENCE_ROOTS: &[&str] = &["input", "steps", "execution", "workflow", "map"];

/// A map's item name is not a reference root nor an enclosing map's, and
/// its body has an output.
fn check_map(
    map: &orchestr8_schema::ast::MapStep,
    index: usize,
    graph: &Graph<'_>,
    pointer: &str,
    doc: &Doc<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let name = &map.map.item;
    let at = format!("{pointer}/map/as");
    let clash = if REFERENCE_ROOTS.contains(&name.as_str()) {
        Some(format!("`${{{name}}}` already means something else"))
    } else {
        graph.enclosing_maps(index).find_map(|outer| match graph.nodes[outer].step {
            Step::Map(o) if o.map.item == *name => {
                Some(format!("map `{}`, which encloses this one, names its item `{name}` too", o.id))
            }
            _ => None,
        })
    };
    if let Some(why) = clash {
        out.push(
            Diagnostic::error(
                Code::MapItemName,
                format!("map `{}` cannot name its item `{name}`: {why}", map.id),
                at.clone(),
                doc.value(&at),
            )
            .with_label("item name taken")
            .with_help(format!("choose another name, such as `{name}_item`")),
        );
    }
    if map.map.step.result().is_none() {
        let at = format!("{pointer}/map/step");
        // The step without an output: the body, or the last of its sequence.
        let mut last = &*map.map.step;
        while let Step::Sequence(s) = last {
            match s.sequence.last() {
                Some(step) => last = step,
                None => break,
            }
        }
        let (which, help) = match last {
            Step::Switch(s) => (
                format!("switch `{}`, which has no `output`", s.id),
                "give the switch an `output`, or end the body with a step after it whose output is the item's",
            ),
            other => (
                match other {
                    Step::Parallel(p) => format!("parallel block `{}`", p.id),
                    _ => format!("`{}`", other.id()),
                },
                "end the body with a step whose output is the item's: wrap the parallel block in a sequence \
                 followed by a step that combines its results",
            ),
        };
        let ends = if std::ptr::eq(last, &*map.map.step) { "is" } else { "ends with" };
        out.push(
            Diagnostic::error(
                Code::MapBodyHasNoOutput,
                format!("the body of map `{}` has no output: it {ends} {which}", map.id),
                at.clone(),
                doc.value(&at),
            )
            .with_label("no output per item")
            .with_help(help),
        );
    }
}

/// A wait's `timeout` must be a positive duration that fits (its pattern was
/// checked with the schema).
fn check_wait_timeout(wait: &orchestr8_schema::ast::WaitStep, pointer: &str, doc: &Doc<'_>, out: &mut Vec<Diagnostic>) {
    let Some(timeout) = &wait.wait.timeout else { return };
    let at = format!("{pointer}/wait/timeout");
    let problem = match timeout.to_std() {
        Ok(d) if d.is_zero() => "`timeout` must be greater than 0".to_owned(),
        Ok(_) => return,
        Err(e) => e.to_string(),
    };
    out.push(
        Diagnostic::error(Code::InvalidDuration, problem, at.clone(), doc.value(&at))
            .with_label("not a usable timeout")
            .with_help("give a positive duration such as `24h`, or leave `timeout` out to wait until the signal comes"),
    );
}

/// Checks one policy as the runtime will resolve it, over `default` (none
/// for `default` itself). A fault is reported where this policy sets a field
/// at fault; a fault of `default` alone is reported once, in `default`.
fn check_policy(
    policy: &PolicyOverlay,
    default: Option<&PolicyOverlay>,
    pointer: &str,
    doc: &Doc<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let Err(error) = Policy::resolve(default.into_iter().chain([policy])) else { return };
    let Some(field) = error.fields().into_iter().find(|f| f.is_set_in(policy)) else { return };
    if matches!(error, PolicyError::Duration { .. }) && Policy::default().overlay(policy).is_ok() {
        // The duration that does not parse is `default`'s, reported there.
        return;
    }
    let at = format!("{pointer}{}", field.pointer());
    let span = doc.value(&at);
    out.push(match &error {
        PolicyError::Duration { error, .. } => Diagnostic::error(Code::InvalidDuration, error.to_string(), at, span)
            .with_label("not a duration")
            .with_help("write integer milliseconds (`1500`) or a number with a unit: `250ms`, `30s`, `2m`, `1h`"),
        PolicyError::Zero(field) => {
            let is_duration =
                matches!(field, PolicyField::Timeout | PolicyField::AttemptTimeout | PolicyField::ResetTimeout);
            Diagnostic::error(Code::InvalidPolicy, format!("`{}` must be greater than 0", field.name()), at, span)
                .with_label("zero")
                .with_help(if is_duration { "give a positive duration such as `30s`" } else { "give at least 1" })
        }
        PolicyError::Multiplier => Diagnostic::error(
            Code::InvalidPolicy,
            "`backoffMultiplier` must be a finite number of at least 1",
            at,
            span,
        ),
        PolicyError::DelayOrder { initial, max } => Diagnostic::error(
            Code::InvalidPolicy,
            format!("`initialDelay` ({} ms) is longer than `maxDelay` ({} ms)", initial.as_millis(), max.as_millis()),
            at,
            span,
        )
        .with_label("initialDelay > maxDelay")
        .with_help(
            "raise `maxDelay` or lower `initialDelay`; missing values come from `policies.default`, then 1s and 10s",
        ),
    });
}
