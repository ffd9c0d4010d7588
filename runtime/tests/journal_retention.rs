//! Retention of the server's log (issue 16.6): closed segments whose
//! executions have all ended are deleted, oldest first, by size and by age;
//! a segment with lines of a running execution stays.

use std::path::{Path, PathBuf};
use std::time::Duration;

use orchestr8_runtime::journal::{
    read_execution, EventKind, JournalEvent, JournalStore, JournalWriter, LogOptions, LogStore, Retention, LOG_DIR,
};
use serde_json::json;

const SEGMENT: u64 = 2048;

fn store(dir: &Path, retention: Retention) -> LogStore {
    let options = LogOptions {
        segment_bytes: SEGMENT,
        retention,
        // Only the checks when a segment closes, and the test's own.
        retention_check: Duration::from_secs(3600),
        ..LogOptions::default()
    };
    LogStore::with_options(dir, options).unwrap()
}

fn event(id: &str, seq: u64, kind: EventKind) -> JournalEvent {
    let mut e = JournalEvent::new(id.into(), kind);
    e.seq = seq;
    // About 300 bytes a line: a segment holds a few.
    e.output = Some(json!({ "padding": "x".repeat(240) }).into());
    e
}

/// Starts an execution: its first line, durable.
async fn start(store: &LogStore, id: &str) -> Box<dyn JournalWriter> {
    let mut w = store.create(id).unwrap();
    w.append(event(id, 1, EventKind::ExecutionStarted)).unwrap();
    w.sync().await.unwrap();
    w
}

/// Ends it: its terminal line, durable, and the writer gone.
async fn end(mut w: Box<dyn JournalWriter>, id: &str) {
    w.append(event(id, 2, EventKind::ExecutionCompleted)).unwrap();
    w.sync().await.unwrap();
}

async fn run_many(store: &LogStore, prefix: &str, n: usize) {
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let w = start(store, &id).await;
        end(w, &id).await;
    }
}

fn segment_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(dir.join(LOG_DIR))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.path(), e.metadata().unwrap().len()))
        .collect();
    files.sort();
    files
}

fn log_bytes(dir: &Path) -> u64 {
    segment_files(dir).iter().map(|(_, len)| len).sum()
}

fn is_unknown(store: &LogStore, id: &str) -> bool {
    matches!(store.read(id), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_past_its_size_is_trimmed_but_a_running_execution_keeps_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let max = 4 * SEGMENT;
    let store = store(dir.path(), Retention { max_age: None, max_bytes: Some(max) });
    let running = start(&store, "running").await;
    let first = store.segments()[0].clone();
    // About 36 KiB of ended executions: many segments past the limit.
    run_many(&store, "done", 60).await;
    // The log thread trimmed as it closed segments, on its own.
    assert!(store.segments_deleted() > 0);
    store.retain();
    assert!(log_bytes(dir.path()) <= max, "{:?}", segment_files(dir.path()));
    assert!(first.exists(), "the running execution's segment stays");
    assert_eq!(store.read("running").unwrap().events.len(), 1);
    // Older ended executions are gone, here and for a new process (the
    // first few share the running execution's segment, and stay with it).
    assert_eq!(store.read("done-0").unwrap().events.len(), 2);
    assert!(is_unknown(&store, "done-10"));
    let err = read_execution(dir.path(), "done-10").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    // The newest are kept.
    assert_eq!(store.read("done-59").unwrap().events.len(), 2);

    // Once it ends, its segment can go too.
    end(running, "running").await;
    run_many(&store, "more", 20).await;
    store.retain();
    assert!(!first.exists());
    assert!(is_unknown(&store, "running"));
    assert!(log_bytes(dir.path()) <= max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_older_than_the_retention_go_unless_an_execution_runs_in_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Retention { max_age: Some(Duration::ZERO), max_bytes: None });
    let running = start(&store, "running").await;
    let first = store.segments()[0].clone();
    run_many(&store, "done", 20).await;
    store.retain();
    let left: Vec<PathBuf> = segment_files(dir.path()).into_iter().map(|(p, _)| p).collect();
    // The running execution's segment and the one being written: nothing else.
    assert_eq!(left.len(), 2, "{left:?}");
    assert_eq!(left[0], first);
    assert_eq!(Some(&left[1]), store.segments().last());
    assert!(is_unknown(&store, "done-10"));
    assert_eq!(store.read("running").unwrap().events.len(), 1);
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_everything_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Retention::KEEP);
    run_many(&store, "done", 20).await;
    assert_eq!(store.retain(), 0);
    assert_eq!(store.segments_deleted(), 0);
    assert_eq!(store.read("done-0").unwrap().events.len(), 2);
}
