//! Ctrl-C and SIGTERM, for a run and for `serve` alike.

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// One `()` per Ctrl-C or SIGTERM (a container's stop): both cancel
/// cooperatively, so the journal ends and telemetry is flushed.
pub(crate) fn signals() -> UnboundedReceiver<()> {
    let (tx, rx) = unbounded_channel();
    let ctrl_c = tx.clone();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if ctrl_c.send(()).is_err() {
                break;
            }
        }
    });
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        tokio::spawn(async move {
            while term.recv().await.is_some() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}
