//! `LogStore::unfinished` over a log of one full segment (64 MiB) that a
//! process now gone wrote: what a restarted server pays per segment to find
//! the executions to resume (issue 17). Next to it, for scale, parsing the
//! same bytes as a reader does (`journal::parse`).
//!
//! A plain `main` (no criterion). The segment holds about 27,000 executions
//! (326,000 lines of 206 bytes on average) interleaved 32 at a time, each `execution.started`, three steps
//! (started, attempt, succeeded, with a small input and output) and its
//! end; one in ten has no end. The file is written once, then read with the
//! page cache warm (the figure is the scan's, not the disk's; a cold read
//! adds the disk's sequential read, e.g. 64 MiB at 500 MB/s = 0.13 s).
//!
//! Run: `cargo bench -p orchestr8-runtime --bench unfinished`. `O8_BENCH_MIB`
//! sets the log's size (default 64). On this project's 2-core VM: 36 ms,
//! 1.9 GB/s (parsing the same bytes: 0.7 s, 93 MB/s).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orchestr8_runtime::journal::{self, EventKind, JournalEvent, LogStore, StateName, LOG_DIR};
use serde_json::json;

const ROUNDS: usize = 7;

fn main() {
    let mib: usize = std::env::var("O8_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let dir = tempfile::tempdir().expect("a temp dir");
    let (bytes, unfinished) = write_log(dir.path(), mib << 20);
    let mb = bytes as f64 / 1e6;
    let lines = std::fs::read(std::fs::read_dir(dir.path().join(LOG_DIR)).unwrap().next().unwrap().unwrap().path())
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    println!("log: {mb:.1} MB in one segment, {lines} lines, {unfinished} executions unfinished");

    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        // A fresh store each round: a restarted server.
        let store = LogStore::new(dir.path()).expect("a store");
        let start = Instant::now();
        let found = store.unfinished().expect("unfinished");
        times.push(start.elapsed());
        assert_eq!(found.len(), unfinished, "every unfinished execution found");
    }
    report("LogStore::unfinished", mb, &mut times);

    let segment = std::fs::read_dir(dir.path().join(LOG_DIR)).unwrap().next().unwrap().unwrap().path();
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let read = journal::parse(&std::fs::read(&segment).unwrap()).unwrap();
        times.push(start.elapsed());
        assert!(read.events.len() > 100_000);
    }
    report("read + journal::parse (for scale)", mb, &mut times);
}

fn report(what: &str, mb: f64, times: &mut [Duration]) {
    times.sort();
    let median = times[times.len() / 2];
    let best = times[0];
    println!(
        "{what}: median {:.1} ms ({:.0} MB/s), best {:.1} ms ({:.0} MB/s)",
        median.as_secs_f64() * 1e3,
        mb / median.as_secs_f64(),
        best.as_secs_f64() * 1e3,
        mb / best.as_secs_f64()
    );
}

/// Writes about `target` bytes of interleaved journals as a gone process's
/// segment; the bytes written and the number left unfinished.
fn write_log(dir: &Path, target: usize) -> (usize, usize) {
    let log = dir.join(LOG_DIR);
    std::fs::create_dir_all(&log).unwrap();
    let pid = (4_200_000u32..).find(|pid| !Path::new("/proc").join(pid.to_string()).exists()).unwrap();
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
    let path = log.join(format!("{millis:013}-{pid}-0000.jsonl"));
    let mut out = Vec::with_capacity(target + (1 << 20));
    let mut cache = journal::LineCache::default();
    let (mut next, mut unfinished) = (0usize, 0usize);
    // 32 executions at a time, one event each in turn.
    let mut running: Vec<(String, u64)> = Vec::new();
    while out.len() < target || !running.is_empty() {
        while running.len() < 32 && out.len() < target {
            running.push((format!("{:08x}-0000-4000-8000-{next:012x}", next * 7919), 0));
            next += 1;
        }
        let mut i = 0;
        while i < running.len() {
            let (id, seq) = &mut running[i];
            *seq += 1;
            let ended = *seq == 12;
            let kind = match *seq {
                1 => EventKind::ExecutionStarted,
                12 => EventKind::ExecutionCompleted,
                n => [EventKind::StepStarted, EventKind::StepAttemptStarted, EventKind::StepSucceeded]
                    [(n as usize - 2) % 3],
            };
            let number = next_number(id);
            if ended && number % 10 == 0 {
                // Its process died before its end.
                unfinished += 1;
            } else {
                let mut ev = JournalEvent::new(id.as_str().into(), kind);
                ev.seq = *seq;
                if kind == EventKind::ExecutionStarted {
                    ev.labels = Some(Box::new(journal::EventLabels {
                        workflow_id: Some("bench".into()),
                        workflow_version: Some("1.0.0".into()),
                        definition_hash: Some("sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f0".into()),
                        correlation_id: Some(id.as_str().into()),
                        ..Default::default()
                    }));
                    ev.input = Some(json!({"customer": "c-1234", "amount": 125}).into());
                }
                if *seq > 1 && !ended {
                    ev.step_id = Some(format!("step-{}", (*seq - 2) / 3).into());
                    ev.state = Some(match kind {
                        EventKind::StepSucceeded => StateName::Succeeded,
                        _ => StateName::Executing,
                    });
                }
                match kind {
                    EventKind::StepStarted => ev.input = Some(json!({"query": "status of order 1234"}).into()),
                    EventKind::StepSucceeded => {
                        ev.output = Some(json!({"answer": "shipped", "confidence": 0.93}).into());
                        ev.duration_ms = Some(12);
                    }
                    EventKind::ExecutionCompleted => ev.output = Some(json!({"result": "done"}).into()),
                    _ => {}
                }
                ev.write_line(&mut out, &mut cache);
            }
            if ended {
                running.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
    std::fs::write(&path, &out).unwrap();
    (out.len(), unfinished)
}

/// The execution's number, from its id's last field.
fn next_number(id: &str) -> usize {
    usize::from_str_radix(id.rsplit('-').next().unwrap(), 16).unwrap()
}
