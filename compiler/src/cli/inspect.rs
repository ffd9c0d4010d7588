//! `orchestr8 inspect JOURNAL|EXECUTION_ID`: an execution from its journal.
//!
//! The journal is read with the runtime's readers ([`read_file`],
//! [`read_execution`] for an id, also found in a server's log) and folded
//! with its [`snapshot`](JournalRead::snapshot); this module only adds the
//! timing of each step and attempt, and renders them as text (with a bar
//! chart of when each step ran), JSON or a Mermaid gantt chart.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use orchestr8_runtime::journal::{
    read_execution, read_file, EventKind, JournalEvent, JournalRead, DEFAULT_JOURNAL_DIR, LOG_DIR,
};
use orchestr8_runtime::{StepError, Usage};
use serde::Serialize;
use serde_json::{json, Value};

use super::{stderr_color, Status};

#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// A journal file, or the id of an execution whose journal is in `--journal-dir`.
    #[arg(value_name = "JOURNAL|EXECUTION_ID")]
    target: String,
    /// Where executions are looked up: `EXECUTION_ID.jsonl` files (runs) and the `log/` of a server.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_JOURNAL_DIR)]
    journal_dir: PathBuf,
    /// How the execution is shown.
    #[arg(long, value_enum, default_value_t)]
    format: InspectFormat,
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(super) enum InspectFormat {
    /// A summary, one line per step and a timeline.
    #[default]
    Text,
    /// One JSON object with the same data.
    Json,
    /// A Mermaid gantt chart of the steps' attempts.
    Mermaid,
}

/// Width of the timeline's bars, in columns.
const BAR_WIDTH: u64 = 40;

pub(super) fn run(args: &Args) -> Status {
    let (read, source) = match load(&args.target, &args.journal_dir) {
        Ok(r) => r,
        Err(message) => return usage(&message),
    };
    for w in &read.warnings {
        warn(&format!("{source}: {w}"));
    }
    let execution = match Execution::from_journal(&read) {
        Some(x) => x,
        None => return usage(&format!("`{source}` is not an orchestr8 journal: it has no `execution.started` event")),
    };
    let text = match args.format {
        InspectFormat::Text => execution.text(stdout_color()),
        InspectFormat::Json => {
            let mut s = serde_json::to_string_pretty(&execution.json()).unwrap_or_default();
            s.push('\n');
            s
        }
        InspectFormat::Mermaid => execution.mermaid(),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Status::Success
}

fn usage(message: &str) -> Status {
    if stderr_color() {
        eprintln!("\x1b[1;31merror\x1b[0m: {message}");
    } else {
        eprintln!("error: {message}");
    }
    Status::Usage
}

fn warn(message: &str) {
    if stderr_color() {
        eprintln!("\x1b[1;33mwarning\x1b[0m: {message}");
    } else {
        eprintln!("warning: {message}");
    }
}

/// Colour on standard output: only on a terminal, never with `NO_COLOR`.
fn stdout_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// The journal's path: `target` itself when it is a file, else
/// `DIR/TARGET.jsonl`.
/// Reads the journal `target` names: a file, or an execution id looked up
/// in `dir` (its own `ID.jsonl` from a run, or its lines in a server's
/// log); with a label for messages.
fn load(target: &str, dir: &Path) -> Result<(JournalRead, String), String> {
    let as_path = Path::new(target);
    if as_path.is_file() {
        let read = read_file(as_path).map_err(|e| format!("cannot read journal `{target}`: {e}"))?;
        return Ok((read, target.to_owned()));
    }
    if as_path.is_dir() {
        return Err(format!("`{target}` is a directory; give a journal file or an execution id"));
    }
    let looks_like_path = target.contains(['/', '\\']) || target.ends_with(".jsonl") || target.ends_with(".json");
    if looks_like_path || target.is_empty() {
        return Err(format!("cannot read journal `{target}`: no such file"));
    }
    match read_execution(dir, target) {
        Ok(read) => Ok((read, format!("execution {target}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "no execution `{target}`: neither `{}` nor the server log in `{}` has it (give a journal file, or the folder of journals with --journal-dir)",
            dir.join(format!("{target}.jsonl")).display(),
            dir.join(LOG_DIR).display()
        )),
        Err(e) => Err(format!("cannot read the journal of execution `{target}` in `{}`: {e}", dir.display())),
    }
}

/// One call of a step's agent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Attempt {
    attempt: u32,
    /// Milliseconds from the execution's start.
    start_ms: u64,
    /// Milliseconds from the execution's start; `None` while it runs.
    end_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<StepError>,
}

/// What the journal says about one step.
#[derive(Debug, Clone)]
struct StepRow {
    id: String,
    agent: Option<String>,
    state: String,
    start_ms: u64,
    end_ms: Option<u64>,
    duration_ms: Option<u64>,
    attempts: Vec<Attempt>,
    error: Option<StepError>,
    /// Model tokens the step used (LLM agents).
    usage: Option<Usage>,
    /// The signal a `wait` step waits for.
    signal: Option<String>,
    /// Why it was skipped, when the journal says (a switch took another case).
    skip_reason: Option<String>,
}

impl StepRow {
    fn ran(&self) -> bool {
        self.state != "skipped"
    }

    fn attempt_count(&self) -> u32 {
        self.attempts.iter().map(|a| a.attempt).max().unwrap_or(0)
    }
}

/// An execution as its journal tells it.
#[derive(Debug)]
struct Execution {
    execution_id: String,
    workflow_id: Option<String>,
    workflow_version: Option<String>,
    correlation_id: Option<String>,
    definition_hash: Option<String>,
    started_at: String,
    state: String,
    duration_ms: u64,
    error: Option<StepError>,
    steps: Vec<StepRow>,
    warnings: Vec<String>,
    /// Model tokens: the terminal event's, else the steps' so far.
    usage: Option<Usage>,
    /// Where the journal goes on after its process ended (`execution.resumed`).
    resumes: Vec<Resumed>,
    /// Where a run let the execution go while steps waited for signals
    /// (`execution.suspended`): seq and offset in ms.
    suspensions: Vec<(u64, u64)>,
}

/// An `execution.resumed`: when, and how long after the event before it.
#[derive(Debug)]
struct Resumed {
    seq: u64,
    at_ms: u64,
    gap_ms: u64,
    /// The resuming program's definition, when it differs from the start's.
    definition_hash: Option<String>,
}

fn since(start: SystemTime, t: SystemTime) -> u64 {
    t.duration_since(start).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => "unknown".to_owned(),
    }
}

impl Execution {
    fn from_journal(read: &JournalRead) -> Option<Execution> {
        let started = read.events.iter().find(|e| e.event == EventKind::ExecutionStarted)?;
        let snapshot = read.snapshot();
        let t0 = started.ts;
        let last_ms = read.events.iter().map(|e| since(t0, e.ts)).max().unwrap_or(0);
        let terminal = read.events.iter().find(|e| e.event.is_terminal());
        let mut steps: Vec<StepRow> = Vec::new();
        // A map's items make many rows: found by name, not by a scan.
        let mut row_of: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut resumes = Vec::new();
        let mut suspensions = Vec::new();
        let mut last_at = 0;
        for ev in &read.events {
            let previous = std::mem::replace(&mut last_at, since(t0, ev.ts));
            if ev.event == EventKind::ExecutionResumed {
                // Attempts the process ended in are over where its journal stops.
                for a in steps.iter_mut().flat_map(|s| s.attempts.iter_mut()).filter(|a| a.end_ms.is_none()) {
                    a.end_ms = Some(previous);
                    a.error = Some(StepError::new(
                        orchestr8_runtime::ErrorKind::Interrupted,
                        "the process ended during this attempt; the step ran again after the resume",
                        a.attempt,
                    ));
                }
                let hash = ev.definition_hash().filter(|h| Some(*h) != started.definition_hash());
                resumes.push(Resumed {
                    seq: ev.seq,
                    at_ms: last_at,
                    gap_ms: last_at.saturating_sub(previous),
                    definition_hash: hash.map(str::to_owned),
                });
            }
            if ev.event == EventKind::ExecutionSuspended {
                suspensions.push((ev.seq, last_at));
            }
            let Some(step_id) = ev.step_id.as_deref() else { continue };
            if !ev.event.as_str().starts_with("step.") && ev.event != EventKind::SignalReceived {
                continue;
            }
            let at = since(t0, ev.ts);
            let row = match row_of.get(step_id) {
                Some(&i) => &mut steps[i],
                None => {
                    row_of.insert(step_id.to_owned(), steps.len());
                    steps.push(StepRow {
                        id: step_id.to_owned(),
                        agent: None,
                        state: String::new(),
                        start_ms: at,
                        end_ms: None,
                        duration_ms: None,
                        attempts: Vec::new(),
                        error: None,
                        usage: None,
                        signal: None,
                        skip_reason: None,
                    });
                    steps.last_mut().expect("just pushed")
                }
            };
            if row.agent.is_none() {
                row.agent = ev.agent_id.as_deref().map(str::to_owned);
            }
            apply(row, ev, at);
        }
        group_items(&mut steps);
        for row in &mut steps {
            row.state = snapshot.steps.get(&row.id).map(name_of).unwrap_or_else(|| "unknown".to_owned());
            if row.end_ms.is_none() && row.ran() {
                // Still running when the journal ends: drawn up to its last event.
                row.duration_ms = None;
            }
        }
        // A resumed execution's terminal event times its last run only.
        let duration_ms = match terminal {
            Some(e) if resumes.is_empty() => e.duration_ms.unwrap_or_else(|| since(t0, e.ts)),
            Some(e) => since(t0, e.ts),
            None => last_ms,
        };
        let usage = terminal.and_then(|e| e.usage().copied()).or_else(|| {
            let sum = steps.iter().filter_map(|s| s.usage).fold(Usage::default(), Usage::plus);
            (!sum.is_empty()).then_some(sum)
        });
        let started_at = serde_json::to_value(started).ok().and_then(|v| v["ts"].as_str().map(str::to_owned));
        Some(Execution {
            execution_id: started.execution_id.to_string(),
            workflow_id: started.workflow_id().map(str::to_owned),
            workflow_version: started.workflow_version().map(str::to_owned),
            correlation_id: started.correlation_id().map(str::to_owned),
            definition_hash: started.definition_hash().map(str::to_owned),
            started_at: started_at.unwrap_or_default(),
            state: snapshot.execution.map(|s| name_of(&s)).unwrap_or_else(|| "unknown".to_owned()),
            duration_ms,
            error: snapshot.error.clone(),
            steps,
            warnings: read.warnings.clone(),
            usage,
            resumes,
            suspensions,
        })
    }

    /// The end of a step's bar: its end, or the journal's end while it runs.
    fn end_of(&self, row: &StepRow) -> u64 {
        match (row.duration_ms, row.end_ms) {
            (Some(d), _) => row.start_ms + d,
            (None, Some(end)) => end,
            (None, None) => self.duration_ms.max(row.start_ms),
        }
    }

    /// The timeline's length: the execution's, or the latest step end if later.
    fn span(&self) -> u64 {
        self.steps.iter().map(|s| self.end_of(s)).fold(self.duration_ms, u64::max).max(1)
    }

    fn json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| {
                json!({
                    "id": s.id,
                    "agentId": s.agent,
                    "state": s.state,
                    "attempts": s.attempt_count(),
                    "startMs": s.start_ms,
                    "endMs": s.end_ms,
                    "durationMs": s.duration_ms,
                    "error": s.error,
                    "usage": s.usage,
                    "attemptDetails": s.attempts,
                    "signal": s.signal,
                    "skipReason": s.skip_reason,
                })
            })
            .collect();
        json!({
            "executionId": self.execution_id,
            "workflowId": self.workflow_id,
            "workflowVersion": self.workflow_version,
            "correlationId": self.correlation_id,
            "definitionHash": self.definition_hash,
            "startedAt": self.started_at,
            "state": self.state,
            "durationMs": self.duration_ms,
            "error": self.error,
            "usage": self.usage,
            "steps": steps,
            "resumes": self.resumes.iter().map(|r| json!({
                "seq": r.seq,
                "atMs": r.at_ms,
                "gapMs": r.gap_ms,
                "definitionHash": r.definition_hash,
            })).collect::<Vec<_>>(),
            "suspensions": self.suspensions.iter().map(|(seq, at)| json!({"seq": seq, "atMs": at})).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
    }

    fn text(&self, color: bool) -> String {
        let paint = |state: &str, text: &str| -> String {
            if !color {
                return text.to_owned();
            }
            let code = match state {
                "succeeded" | "completed" => "32",
                "failed" | "timed_out" => "31",
                "executing" | "retrying" | "running" => "33",
                _ => "2",
            };
            format!("\x1b[{code}m{text}\x1b[0m")
        };
        let mut out = String::new();
        let workflow = match (&self.workflow_id, &self.workflow_version) {
            (Some(id), Some(v)) => format!("{id} {v}"),
            (Some(id), None) => id.clone(),
            _ => "(unknown)".to_owned(),
        };
        out.push_str(&format!("workflow     {workflow}\n"));
        out.push_str(&format!("execution    {}\n", self.execution_id));
        out.push_str(&format!("correlation  {}\n", self.correlation_id.as_deref().unwrap_or("-")));
        out.push_str(&format!("started      {}\n", self.started_at));
        out.push_str(&format!("state        {}\n", paint(&self.state, &self.state)));
        out.push_str(&format!("duration     {}\n", ms(self.duration_ms)));
        // Suspensions and resumes, in journal order.
        let mut milestones: Vec<(u64, String)> = self
            .suspensions
            .iter()
            .map(|(seq, at)| (*seq, format!("suspended    at {} (seq {seq}), steps waiting for signals\n", ms(*at))))
            .collect();
        for r in &self.resumes {
            let changed = r.definition_hash.as_deref().map(|h| format!(", by definition {h}")).unwrap_or_default();
            let line = format!(
                "resumed      at {} (seq {}), {} after the last event before it{changed}\n",
                ms(r.at_ms),
                r.seq,
                ms(r.gap_ms)
            );
            milestones.push((r.seq, line));
        }
        milestones.sort_by_key(|(seq, _)| *seq);
        milestones.into_iter().for_each(|(_, line)| out.push_str(&line));
        if let Some(u) = &self.usage {
            out.push_str(&format!("tokens       {}\n", tokens(u)));
        }
        if let Some(e) = &self.error {
            let step = e.step.as_deref().map(|s| format!(" in step `{s}`")).unwrap_or_default();
            out.push_str(&format!("error        {}{step}: {}\n", kind(e), one_line(&e.message)));
        }
        if self.steps.is_empty() {
            out.push_str("\nno step started\n");
            return out;
        }
        // A map's items are indented under it.
        let shown = |s: &StepRow| format!("{}{}", "  ".repeat(depth(&s.id)), s.id);
        let id_w = self.steps.iter().map(|s| shown(s).chars().count()).max().unwrap_or(0).max(4);
        let state_w = self.steps.iter().map(|s| s.state.len()).max().unwrap_or(0);
        out.push_str("\nsteps\n");
        // A map's row counts the items that started (its steps have no agent nor signal).
        let items_of = |map: &str| -> usize {
            let prefix = format!("{map}[");
            let indexes: std::collections::BTreeSet<&str> = (self.steps.iter())
                .filter_map(|s| s.id.strip_prefix(&prefix)?.split_once(']').map(|(i, _)| i))
                .collect();
            indexes.len()
        };
        let attempts_of = |s: &StepRow| match (&s.signal, s.attempt_count()) {
            (Some(signal), _) => format!("signal {signal}"),
            (None, _) if s.agent.is_none() => match items_of(&s.id) {
                1 => "1 item ".to_owned(),
                n => format!("{n} items"),
            },
            (None, 1) => "1 attempt ".to_owned(),
            (None, n) => format!("{n} attempts"),
        };
        let attempts_w = self.steps.iter().map(|s| attempts_of(s).chars().count()).max().unwrap_or(0).max(11);
        for s in &self.steps {
            let attempts = attempts_of(s);
            let duration = match (s.duration_ms, s.ran()) {
                (Some(d), _) => ms(d),
                (None, true) => "running".to_owned(),
                (None, false) => "-".to_owned(),
            };
            let state = format!("{:<state_w$}", s.state);
            let mut line = format!(
                "  {:<id_w$}  {}  {:<attempts_w$} {:>9}",
                shown(s),
                paint(&s.state, &state),
                attempts,
                duration
            );
            if let Some(u) = &s.usage {
                line.push_str(&format!("  {} tokens", u.total_tokens()));
            }
            if let Some(e) = &s.error {
                line.push_str(&format!("  {}: {}", kind(e), one_line(&e.message)));
            }
            if let Some(reason) = s.skip_reason.as_deref().filter(|_| !s.ran()) {
                line.push_str(&format!("  {}", one_line(reason)));
            }
            out.push_str(line.trim_end());
            out.push('\n');
            for a in &s.attempts {
                if let Some(e) = &a.error {
                    if s.error.as_ref().is_some_and(|se| se.attempt == a.attempt && se.kind == e.kind) {
                        continue;
                    }
                    out.push_str(&format!(
                        "  {:<id_w$}    attempt {} failed at {}: {}: {}\n",
                        "",
                        a.attempt,
                        ms(a.start_ms),
                        kind(e),
                        one_line(&e.message)
                    ));
                }
            }
        }
        let total = self.span();
        out.push_str(&format!("\ntimeline (0 to {}, {} per column)\n", ms(total), per_column(total)));
        for s in &self.steps {
            let bar = if s.ran() {
                let from = (s.start_ms * BAR_WIDTH / total).min(BAR_WIDTH - 1);
                let to = self.end_of(s).saturating_mul(BAR_WIDTH).div_ceil(total).clamp(from + 1, BAR_WIDTH);
                (0..BAR_WIDTH).map(|c| if c >= from && c < to { '█' } else { ' ' }).collect::<String>()
            } else {
                " ".repeat(BAR_WIDTH as usize)
            };
            let note = if s.ran() { format!("{} to {}", ms(s.start_ms), ms(self.end_of(s))) } else { s.state.clone() };
            out.push_str(&format!("  {:<id_w$}  |{}|  {note}\n", shown(s), paint(&s.state, &bar)));
        }
        out
    }

    fn mermaid(&self) -> String {
        let mut out = String::from("gantt\n");
        let workflow = self.workflow_id.as_deref().unwrap_or("workflow");
        out.push_str(&format!(
            "    title {} execution {} ({})\n",
            gantt_text(workflow),
            gantt_text(&self.execution_id),
            gantt_text(&self.state)
        ));
        out.push_str("    dateFormat x\n");
        out.push_str("    axisFormat %M:%S.%L\n");
        if !self.resumes.is_empty() || !self.suspensions.is_empty() {
            out.push_str("    section execution\n");
            let suspended = self.suspensions.iter().map(|(seq, at)| (*seq, "suspended", *at));
            let mut milestones: Vec<(u64, &str, u64)> =
                self.resumes.iter().map(|r| (r.seq, "resumed", r.at_ms)).chain(suspended).collect();
            milestones.sort_unstable();
            for (seq, what, at) in milestones {
                out.push_str(&format!("    {what} (seq {seq}) :milestone, {at}, 0ms\n"));
            }
        }
        for s in &self.steps {
            out.push_str(&format!("    section {}\n", gantt_text(&s.id)));
            if let Some(signal) = s.signal.as_deref().filter(|_| s.ran()) {
                // A wait: one bar from its first wait to its end (or the journal's).
                let (start, end) = (s.start_ms, self.end_of(s).max(s.start_ms + 1));
                let tag = match s.state.as_str() {
                    "succeeded" => "done, ",
                    "waiting" => "active, ",
                    "failed" | "timed_out" => "crit, ",
                    _ => "",
                };
                let label = gantt_text(&format!("signal {signal} {}", s.state));
                out.push_str(&format!("    {label} :{tag}{start}, {end}\n"));
                continue;
            }
            if !s.ran() || s.attempts.is_empty() {
                out.push_str(&format!("    {} :milestone, {}, 0ms\n", gantt_text(&s.state), s.start_ms));
                continue;
            }
            for a in &s.attempts {
                let end = a.end_ms.unwrap_or_else(|| self.end_of(s)).max(a.start_ms + 1);
                let (tag, label) = match &a.error {
                    Some(e) => ("crit, ", format!("attempt {} {}", a.attempt, e.kind)),
                    None if a.end_ms.is_none() => ("active, ", format!("attempt {} running", a.attempt)),
                    None if s.state == "succeeded" => ("done, ", format!("attempt {} succeeded", a.attempt)),
                    None => ("", format!("attempt {} {}", a.attempt, s.state)),
                };
                out.push_str(&format!("    {} :{tag}{}, {end}\n", gantt_text(&label), a.start_ms));
            }
        }
        out
    }
}

/// Puts the rows of a map's items (`summaries[3].summarize`) right after
/// the map's own row, by item index, each item's steps in the order they
/// started; other rows keep theirs.
fn group_items(steps: &mut Vec<StepRow>) {
    // Where each name first appears, and where each map's first row is.
    let first: std::collections::HashMap<&str, usize> =
        steps.iter().enumerate().rev().map(|(i, s)| (s.id.as_str(), i)).collect();
    let key = |position: usize, id: &str| -> Vec<usize> {
        // `a[1].b[2].c`: map `a` (where it appears), item 1, map `a[1].b`, item 2, then the row.
        let mut key = Vec::new();
        let mut rest = id;
        let mut prefix_end = 0;
        while let Some((map, after)) = rest.split_once('[') {
            let Some((index, tail)) = after.split_once("].") else { break };
            let map_name = &id[..prefix_end + map.len()];
            let map_position = first.get(map_name).copied().unwrap_or(position);
            key.push(map_position);
            key.push(index.parse().unwrap_or(usize::MAX));
            prefix_end += map.len() + 1 + index.len() + 2;
            rest = tail;
        }
        // A map's row is a prefix of its items' keys: it sorts before them.
        key.push(position);
        key
    };
    let keys: Vec<Vec<usize>> = steps.iter().enumerate().map(|(i, s)| key(i, &s.id)).collect();
    let mut order: Vec<usize> = (0..steps.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    let mut taken: Vec<Option<StepRow>> = std::mem::take(steps).into_iter().map(Some).collect();
    steps.extend(order.into_iter().filter_map(|i| taken[i].take()));
}

/// How deep in maps a row's step is (its name's item indexes).
fn depth(id: &str) -> usize {
    id.matches("].").count()
}

/// Folds one `step.*` event into its step's row; `at` is its offset in ms.
fn apply(row: &mut StepRow, ev: &JournalEvent, at: u64) {
    match ev.event {
        EventKind::StepWaiting | EventKind::SignalReceived if row.signal.is_none() => {
            row.signal = ev.signal().map(str::to_owned);
        }
        EventKind::StepStarted => row.start_ms = at,
        EventKind::StepAttemptStarted => {
            row.attempts.push(Attempt { attempt: ev.attempt.unwrap_or(1), start_ms: at, end_ms: None, error: None })
        }
        EventKind::StepAttemptFailed => {
            if let Some(a) =
                row.attempts.iter_mut().rev().find(|a| Some(a.attempt) == ev.attempt || ev.attempt.is_none())
            {
                a.end_ms = Some(at);
                a.error = ev.error.as_deref().cloned();
            }
        }
        EventKind::StepSucceeded | EventKind::StepFailed | EventKind::StepCancelled | EventKind::StepSkipped => {
            row.end_ms = Some(at);
            row.usage = ev.usage().copied();
            if ev.event == EventKind::StepSkipped {
                row.start_ms = at;
                // A resume may journal the skip again, without its reason.
                row.skip_reason = ev.reason().map(str::to_owned).or(row.skip_reason.take());
            } else {
                row.duration_ms = Some(ev.duration_ms.unwrap_or(at.saturating_sub(row.start_ms)));
            }
            row.error = ev.error.as_deref().cloned();
            if let Some(a) = row.attempts.last_mut() {
                if a.end_ms.is_none() {
                    a.end_ms = Some(at);
                    if a.error.is_none() && ev.event != EventKind::StepSucceeded {
                        a.error = row.error.clone();
                    }
                }
            }
        }
        _ => {}
    }
}

/// An error's kind, with its reason when it has one: `fatal (refused)`.
fn kind(e: &StepError) -> String {
    match &e.reason {
        Some(r) => format!("{} ({r})", e.kind),
        None => e.kind.to_string(),
    }
}

/// Token usage for people: `1234 in (200 cached), 56 out, 3 calls`.
fn tokens(u: &Usage) -> String {
    let cached = u.cache_read_input_tokens + u.cache_creation_input_tokens;
    let input = u.input_tokens + cached;
    let cached = if cached > 0 { format!(" ({cached} cached)") } else { String::new() };
    let calls = if u.calls == 1 { "1 call".to_owned() } else { format!("{} calls", u.calls) };
    format!("{} total: {input} in{cached}, {} out, {calls}", u.total_tokens(), u.output_tokens)
}

/// A duration for people: `850 ms`, `1.25 s`, `2 min 5.0 s`.
/// A duration for people. Each unit's bound is where rounding would reach
/// the next unit (59.996 s is `1 min 0.0 s`, never `60.00 s`); from an hour
/// on (waits), minutes are enough.
fn ms(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 59_995 {
        format!("{:.2} s", ms as f64 / 1_000.0)
    } else if ms < 3_599_950 {
        let tenths = (ms + 50) / 100;
        format!("{} min {:.1} s", tenths / 600, (tenths % 600) as f64 / 10.0)
    } else {
        let minutes = (ms + 30_000) / 60_000;
        format!("{} h {} min", minutes / 60, minutes % 60)
    }
}

fn per_column(total: u64) -> String {
    let per = total as f64 / BAR_WIDTH as f64;
    if per < 1_000.0 {
        format!("{} ms", (per * 10.0).round() / 10.0)
    } else {
        format!("{:.2} s", per / 1_000.0)
    }
}

/// A message on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text safe in a gantt task, section or title: no `:`, `;` or `#` (which
/// end or start syntax) and no line breaks.
fn gantt_text(text: &str) -> String {
    let cleaned: String =
        text.chars().map(|c| if matches!(c, ':' | ';' | '#' | '%') || c.is_control() { ' ' } else { c }).collect();
    one_line(&cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(ms(0), "0 ms");
        assert_eq!(ms(999), "999 ms");
        assert_eq!(ms(1_250), "1.25 s");
        assert_eq!(ms(125_000), "2 min 5.0 s");
    }

    /// Rounding never shows 60 seconds or 60 minutes; hours (waits) read as hours.
    #[test]
    fn durations_round_into_the_next_unit() {
        assert_eq!(ms(59_996), "1 min 0.0 s");
        assert_eq!(ms(7_199_980), "2 h 0 min");
        assert_eq!(ms(18_000_041), "5 h 0 min");
        assert_eq!(ms(3_599_990), "1 h 0 min");
        assert_eq!(ms(5_400_000), "1 h 30 min");
    }

    #[test]
    fn gantt_text_drops_syntax() {
        assert_eq!(gantt_text("a: b;#c\n%%d"), "a b c d");
    }
}
