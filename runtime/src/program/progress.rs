//! Progress lines of a run: bus events as human lines, handed to the
//! writing thread without ever waiting on it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

use super::input::one_line;
use crate::bus::BusMessage;
use crate::error::StepError;
use crate::journal::{EventKind, JournalEvent};

/// Progress lines that may wait for standard error before new ones are dropped.
pub(super) const PROGRESS_CAPACITY: usize = 1024;

/// Prefix of every progress line.
pub(super) const PREFIX: &str = "[orchestr8]";

/// Turns bus events into progress lines and hands them to the writing
/// thread without ever waiting.
pub(super) struct Progress {
    tx: SyncSender<String>,
    dropped: u64,
    journal: PathBuf,
    /// The last failed attempt of each step, for the retry line.
    failed_attempts: HashMap<Arc<str>, StepError>,
}

impl Progress {
    pub(super) fn new(tx: SyncSender<String>, journal: PathBuf) -> Self {
        Progress { tx, dropped: 0, journal, failed_attempts: HashMap::new() }
    }

    pub(super) fn send(&mut self, line: String) {
        if self.dropped > 0 {
            let note = format!("{PREFIX} {} progress lines dropped (standard error is slow)", self.dropped);
            match self.tx.try_send(note) {
                Ok(()) => self.dropped = 0,
                Err(_) => {
                    self.dropped += 1;
                    return;
                }
            }
        }
        match self.tx.try_send(line) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => self.dropped += 1,
        }
    }

    pub(super) fn message(&mut self, m: BusMessage) {
        match m {
            BusMessage::Event(ev) => {
                if let Some(line) = self.line(&ev) {
                    self.send(line);
                }
            }
            BusMessage::Missed(n) => self.send(format!("{PREFIX} {n} events missed (progress fell behind)")),
        }
    }

    fn line(&mut self, ev: &JournalEvent) -> Option<String> {
        let step = ev.step_id.as_deref().unwrap_or("-");
        let ms = ev.duration_ms.unwrap_or(0);
        let error = |ev: &JournalEvent| ev.error.as_deref().map(|e| (e.kind, one_line(&e.message)));
        Some(match ev.event {
            EventKind::ExecutionStarted => format!(
                "{PREFIX} execution {} of {} {} started; journal {}",
                ev.execution_id,
                ev.workflow_id().unwrap_or("-"),
                ev.workflow_version().unwrap_or("-"),
                self.journal.display()
            ),
            EventKind::ExecutionResumed => {
                format!("{PREFIX} execution {} resumed; journal {}", ev.execution_id, self.journal.display())
            }
            EventKind::StepStarted => format!("{PREFIX} step {step} started"),
            EventKind::StepWaiting => {
                let signal = ev.signal().unwrap_or("-");
                match ev.delay_ms {
                    Some(ms) => {
                        // Whole seconds read better once there are any.
                        let left = if ms >= 1000 { ms / 1000 * 1000 } else { ms };
                        let left = humantime::format_duration(std::time::Duration::from_millis(left));
                        format!("{PREFIX} step {step} waits for signal `{signal}` (times out in {left})")
                    }
                    None => format!("{PREFIX} step {step} waits for signal `{signal}`"),
                }
            }
            EventKind::SignalReceived => format!("{PREFIX} step {step} received its signal"),
            EventKind::ExecutionSuspended => format!("{PREFIX} execution {} suspended", ev.execution_id),
            EventKind::StepAttemptStarted => return None,
            EventKind::StepAttemptFailed => {
                if let (Some(id), Some(e)) = (&ev.step_id, &ev.error) {
                    self.failed_attempts.insert(id.clone(), (**e).clone());
                }
                return None;
            }
            EventKind::StepRetryScheduled => {
                let delay = ev.delay_ms.unwrap_or(0);
                let failed = ev.step_id.as_ref().and_then(|id| self.failed_attempts.remove(id));
                match failed {
                    Some(e) => format!(
                        "{PREFIX} step {step} attempt {} failed ({}): {}; retrying in {delay} ms",
                        e.attempt,
                        e.kind,
                        one_line(&e.message)
                    ),
                    None => format!("{PREFIX} step {step} retrying in {delay} ms"),
                }
            }
            EventKind::StepSucceeded => {
                let attempts = ev.attempt.unwrap_or(1);
                let tries = if attempts > 1 { format!(" (attempt {attempts})") } else { String::new() };
                format!("{PREFIX} step {step} succeeded in {ms} ms{tries}")
            }
            EventKind::StepFailed => {
                if let Some(id) = &ev.step_id {
                    self.failed_attempts.remove(id);
                }
                let attempt = ev.attempt.unwrap_or(0);
                match error(ev) {
                    Some((kind, msg)) => {
                        format!("{PREFIX} step {step} failed ({kind}, attempt {attempt}) in {ms} ms: {msg}")
                    }
                    None => format!("{PREFIX} step {step} failed in {ms} ms"),
                }
            }
            EventKind::StepCancelled => format!("{PREFIX} step {step} cancelled after {ms} ms"),
            EventKind::StepSkipped => format!("{PREFIX} step {step} skipped"),
            EventKind::CircuitOpened | EventKind::CircuitHalfOpened | EventKind::CircuitClosed => {
                let what = match ev.event {
                    EventKind::CircuitOpened => "opened",
                    EventKind::CircuitHalfOpened => "half-opened",
                    _ => "closed",
                };
                format!(
                    "{PREFIX} circuit breaker of agent {} {what} (step {step})",
                    ev.agent_id.as_deref().unwrap_or("-")
                )
            }
            EventKind::ExecutionCompleted => format!("{PREFIX} execution completed in {ms} ms"),
            EventKind::ExecutionFailed => format!("{PREFIX} execution failed after {ms} ms"),
            EventKind::ExecutionCancelled => format!("{PREFIX} execution cancelled after {ms} ms"),
        })
    }
}
