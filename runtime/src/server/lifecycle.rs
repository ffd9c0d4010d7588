//! Start and shutdown: the listener, the journal's log, the signals.

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::guard::Guard;
use super::handlers::router;
use super::idempotency::Keys;
use super::listener::{self, Slots};
use super::openapi::openapi;
use super::registry::{App, Entry, Limits, Table};
use super::search_queue::{SearchQueue, SEARCH_QUEUE};
use super::{Config, End, LogLine, StartFn, MAX_FINISHED, MAX_FINISHED_BYTES};
use crate::error::{ErrorKind, StepError};
use crate::executor::Runtime;
use crate::journal::{LogOptions, LogStore, LOG_DIR};
use crate::program::signals;

/// Runs the server until a signal stops it; log lines go to `log` (the
/// calling thread writes them). `Err` when it cannot start.
pub(crate) fn run(
    config: Config,
    start: Arc<StartFn>,
    interrupts: Option<UnboundedReceiver<()>>,
    log: SyncSender<LogLine>,
) -> Result<End, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("orchestr8-server")
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    let end = rt.block_on(serve(config, start, interrupts, log));
    // An abandoned execution (or an agent's blocking task) is not waited for.
    rt.shutdown_background();
    end
}

/// Log lines that cannot be written at once are dropped: never wait on standard error.
pub(super) fn say(log: &SyncSender<LogLine>, line: String) {
    let _ = log.try_send(LogLine { level: tracing::Level::INFO, message: line, fields: Vec::new() });
}

pub(super) async fn serve(
    config: Config,
    start: Arc<StartFn>,
    interrupts: Option<UnboundedReceiver<()>>,
    log: SyncSender<LogLine>,
) -> Result<End, String> {
    let addr = config.args.addr;
    let token = match &config.args.auth_token_env {
        Some(var) => match std::env::var(var) {
            Ok(t) if !t.trim().is_empty() => Some(Arc::<str>::from(t.trim())),
            _ => {
                return Err(format!(
                    "--auth-token-env {var}: the variable is not set or empty; set it to the token clients must send"
                ))
            }
        },
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let mut interrupts = interrupts.unwrap_or_else(signals);
    let options = LogOptions { retention: config.args.retention, ..LogOptions::default() };
    let store = LogStore::with_options(config.args.journal_dir.clone(), options)
        .map_err(|e| format!("cannot start the journal's log thread: {e}"))?;
    store.create_dir().map_err(|e| {
        format!(
            "cannot use the journal directory {}: {e} (give --journal-dir a directory this program can write)",
            config.args.journal_dir.display()
        )
    })?;
    if !local.ip().is_loopback() && token.is_none() {
        say(
            &log,
            format!(
                "[orchestr8] warning: serving on {local} beyond loopback without a token: anyone who can reach it can run and cancel executions (see --auth-token-env)"
            ),
        );
    }
    // Keys outlive the process: read back what the log recorded within the ttl.
    let mut keys = Keys::new(config.args.idempotency_ttl);
    let dir = config.args.journal_dir.clone();
    let (keys, loaded) = tokio::task::spawn_blocking(move || keys.load(&dir).map(|n| (keys, n)))
        .await
        .map_err(|e| format!("cannot read the idempotency keys back: {e}"))?
        .map_err(|e| {
            format!("cannot read the idempotency keys back from {}: {e}", config.args.journal_dir.display())
        })?;
    let guard = Guard { local, allowed_hosts: config.args.allowed_hosts.clone(), token };
    let app = Arc::new(App {
        log: (!config.args.quiet).then(|| log.clone()),
        guard,
        openapi: Bytes::from(serde_json::to_vec_pretty(&openapi(&config)).unwrap_or_default()),
        runtime: Runtime::new(store.clone()),
        store,
        start,
        table: Mutex::new(Table::new(
            Limits { running: config.args.max_running, finished: MAX_FINISHED, finished_bytes: MAX_FINISHED_BYTES },
            keys,
        )),
        scans: SearchQueue::new(SEARCH_QUEUE),
        config,
    });
    if app.config.args.resume {
        // Before the first request: a client that asks after an execution
        // the restart resumed finds it running.
        super::recovery::resume_unfinished(&app, &log).await;
    }
    say(
        &log,
        format!(
            "[orchestr8] serving {} {} on http://{local}; journals in {}",
            app.config.info.id,
            app.config.info.version,
            app.store.dir().join(LOG_DIR).display()
        ),
    );
    if loaded > 0 {
        let keys = if loaded == 1 { "key" } else { "keys" };
        say(&log, format!("[orchestr8] {loaded} idempotency {keys} read back from the journal"));
    }
    {
        // A journal that fails is said once, loudly; /health reports it.
        let (store, log) = (app.store.clone(), log.clone());
        tokio::spawn(async move {
            let why = store.failed().await;
            say(
                &log,
                format!("[orchestr8] error: the journal is failing ({why}); executions are no longer recorded durably"),
            );
        });
    }
    if let Some(mut deletions) = app.store.retention_log() {
        // What retention deleted, said as it happens.
        let log = log.clone();
        tokio::spawn(async move {
            while let Some(line) = deletions.recv().await {
                say(&log, format!("[orchestr8] {line}"));
            }
        });
    }
    let shutdown = CancellationToken::new();
    let limits = listener::Limits::of(&app.config.args);
    let slots = Slots::new(&limits);
    let mut server =
        tokio::spawn(listener::accept(listener, router(app.clone()), limits, slots.clone(), shutdown.clone()));
    let mut interruptible = true;
    loop {
        tokio::select! {
            r = &mut server => return Err(match r {
                Ok(_) => "the server stopped".into(),
                Err(e) => format!("the server failed: {e}"),
            }),
            signal = interrupts.recv(), if interruptible => match signal {
                None => interruptible = false,
                Some(()) => break,
            },
        }
    }
    // Stop accepting, then cancel every execution; none starts after this.
    let running: Vec<Arc<Entry>> = {
        let mut table = app.table.lock().unwrap_or_else(|e| e.into_inner());
        table.closing = true;
        table.entries.values().filter(|e| e.done.borrow().is_none()).cloned().collect()
    };
    shutdown.cancel();
    let grace = app.config.args.shutdown_timeout;
    let deadline = tokio::time::Instant::now() + grace;
    let grace = humantime::format_duration(grace);
    // An execution with steps waiting for signals is suspended, not
    // cancelled: its journal ends `execution.suspended` once its steps in
    // flight end (no new one starts), and the next server on this
    // directory resumes it.
    let (waiting, cancelled): (Vec<&Arc<Entry>>, Vec<&Arc<Entry>>) =
        running.iter().partition(|e| !e.mailbox.waiting().is_empty());
    say(
        &log,
        format!(
            "[orchestr8] stopping: cancelling {} running executions, suspending {} waiting for signals; waiting up to {grace} for them and open requests; press Ctrl-C again to exit at once",
            cancelled.len(),
            waiting.len()
        ),
    );
    // Cancelled first: one that does not wait must never see only the
    // suspension, which would stop it as suspended with nothing waiting.
    for e in &cancelled {
        e.cancel.cancel();
    }
    for e in &running {
        // Waits that start from now on suspend too.
        e.mailbox.suspend();
    }
    let finished = async {
        for e in &running {
            let mut rx = e.done.clone();
            let _ = rx.wait_for(Option::is_some).await;
        }
        // Open connections end once their requests are answered.
        if let Ok(connections) = (&mut server).await {
            connections.shutdown().await;
        }
    };
    tokio::select! {
        ended = tokio::time::timeout_at(deadline, finished) => if ended.is_ok() {
            say(&log, "[orchestr8] stopped".into());
            return Ok(End::Stopped);
        },
        Some(()) = interrupts.recv() => {
            say(&log, "[orchestr8] exiting without waiting for running executions".into());
            return Ok(End::Abandoned);
        }
    }
    // The deadline passed: what still runs is journaled as cancelled in its
    // place (its own later lines are dropped), and open connections are
    // closed with the runtime.
    let cause = StepError::new(
        ErrorKind::Cancelled,
        format!(
            "abandoned by the shutdown: the execution did not end within --shutdown-timeout ({grace}) of the signal"
        ),
        0,
    );
    // One that waits stays resumable: cancelling it would lose its waits for
    // good over a step that a resume runs again anyway.
    let suspended: Vec<_> = waiting
        .iter()
        .filter(|e| e.done.borrow().is_none())
        .filter_map(|e| app.store.abandon_suspended(&e.id))
        .collect();
    let ends: Vec<_> = cancelled
        .iter()
        .filter(|e| e.done.borrow().is_none())
        .filter_map(|e| app.store.abandon(&e.id, cause.clone()))
        .collect();
    let (abandoned, left_waiting) = (ends.len(), suspended.len());
    let ends: Vec<_> = ends.into_iter().chain(suspended).collect();
    let connections = slots.open();
    tokio::select! {
        synced = futures_util::future::join_all(ends) => {
            if let Some(Err(e)) = synced.into_iter().find(Result::is_err) {
                say(&log, format!("[orchestr8] error: the abandoned executions' journals are not durable: {e}"));
            }
        }
        Some(()) = interrupts.recv() => {
            say(&log, "[orchestr8] exiting without waiting for the journals".into());
            return Ok(End::Abandoned);
        }
    }
    let suspended = match left_waiting {
        0 => String::new(),
        n => format!("{n} waiting executions suspended with their steps in flight (the next server runs them again), "),
    };
    say(
        &log,
        format!(
            "[orchestr8] stopped after --shutdown-timeout ({grace}): {abandoned} executions abandoned and journaled as cancelled, {suspended}{connections} connections closed"
        ),
    );
    Ok(if abandoned + left_waiting == 0 { End::Stopped } else { End::TimedOut })
}
