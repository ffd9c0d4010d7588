//! Ctrl-C and SIGTERM, for a run and for `serve` alike.

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// One `()` per Ctrl-C (SIGINT) or SIGTERM (a container's stop), for a run
/// and for `serve` alike: the first cancels cooperatively, so the journal
/// ends and telemetry is flushed; the caller exits at once on the second.
///
/// Both signals are registered before this returns (tokio's `ctrl_c()`
/// would register SIGINT only when its task first runs, leaving a moment in
/// which Ctrl-C still killed the process outright), and each stays
/// registered (one stream per signal, not one `ctrl_c()` per press, which
/// could miss a press that came between two). A signal that cannot be
/// registered keeps its default action; the channel closes when neither is.
/// Needs a tokio runtime.
pub(crate) fn signals() -> UnboundedReceiver<()> {
    let (tx, rx) = unbounded_channel();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
            if let Ok(mut stream) = signal(kind) {
                let tx = tx.clone();
                tokio::spawn(async move { while stream.recv().await.is_some() && tx.send(()).is_ok() {} });
            }
        }
    }
    #[cfg(windows)]
    if let Ok(mut stream) = tokio::signal::windows::ctrl_c() {
        let tx = tx.clone();
        tokio::spawn(async move { while stream.recv().await.is_some() && tx.send(()).is_ok() {} });
    }
    drop(tx);
    rx
}

#[cfg(all(test, unix))]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    /// Set in the child process this test runs (itself, alone).
    const CHILD: &str = "ORCHESTR8_SIGNALS_TEST_CHILD";

    /// Sends `signal` to this process; `kill` has sent it when this returns.
    fn kill(signal: &str) {
        let status = Command::new("kill").args([signal, &std::process::id().to_string()]).status().expect("kill");
        assert!(status.success(), "kill {signal}: {status}");
    }

    /// Both signals are caught from the moment `signals()` returns, before
    /// anything awaits: a run or a server that is still setting up (the
    /// journal, the listener) is not killed by the default action. Run in a
    /// child process, since the signals go to the whole process.
    #[test]
    fn both_signals_are_caught_as_soon_as_signals_returns() {
        let name = "program::signals::tests::both_signals_are_caught_as_soon_as_signals_returns";
        if std::env::var_os(CHILD).is_none() {
            let exe = std::env::current_exe().unwrap();
            let out = Command::new(exe)
                .args(["--exact", name, "--nocapture", "--test-threads=1"])
                .env(CHILD, "1")
                .output()
                .unwrap();
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(out.status.success(), "the child ended with {}:\n{stdout}\n{stderr}", out.status);
            assert!(stdout.contains("1 passed"), "the child did not run the test:\n{stdout}");
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut rx = super::signals();
            // Each signal is sent before the next await: nothing of
            // `signals()` has run but what it did before returning.
            for signal in ["-INT", "-TERM", "-INT", "-TERM"] {
                kill(signal);
                let got = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
                assert_eq!(got, Ok(Some(())), "{signal} was not reported");
            }
        });
    }
}
