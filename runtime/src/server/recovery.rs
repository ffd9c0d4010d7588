//! Executions an earlier process left unfinished (it crashed, or was
//! killed), found in the log at startup and resumed, unless `--no-resume`.
//!
//! Resuming is the default: a server that restarts after a crash goes on
//! with the work it had accepted, which is what its clients were promised
//! (a 202 is an execution that will end). `--no-resume` is for an operator
//! who wants to look first; the executions then read as interrupted until a
//! later start without it.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use super::lifecycle::say;
use super::registry::{blocking, App};
use super::LogLine;
use crate::journal::JournalStore;
use crate::program::one_line;
use crate::resume::Resume;

/// Finds the unfinished executions, reads each one's journal, and starts
/// what is left of it; one line says how many, and one line per execution
/// that stays unfinished says why.
pub(super) async fn resume_unfinished(app: &Arc<App>, log: &SyncSender<LogLine>) {
    let store = app.store.clone();
    let found = blocking(move || {
        let unfinished = store.unfinished()?;
        Ok(unfinished.into_iter().map(|u| (store.read(&u.execution_id), u.execution_id)).collect::<Vec<_>>())
    })
    .await;
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            let why = one_line(&e.to_string());
            say(
                log,
                format!("[orchestr8] warning: cannot look for executions an earlier process left unfinished: {why}"),
            );
            return;
        }
    };
    if found.is_empty() {
        return;
    }
    let total = found.len();
    let mut resumed = 0;
    for (read, id) in found {
        let point = read.map_err(|e| e.to_string()).and_then(|r| Resume::from_journal(&r).map_err(|e| e.to_string()));
        match point.and_then(|point| app.resume(point)) {
            Ok(()) => resumed += 1,
            Err(why) => say(
                log,
                format!(
                    "[orchestr8] warning: execution {id} stays unfinished (it reads as interrupted): {}",
                    one_line(&why)
                ),
            ),
        }
    }
    say(log, format!("[orchestr8] resumed {resumed} of {total} executions an earlier process left unfinished"));
}
