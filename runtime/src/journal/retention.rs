//! Retention of the log's segments: what a [`LogStore`](super::LogStore)
//! deletes so that a long-running server does not fill its disk.
//!
//! Only whole segments of the log (`DIR/log/*.jsonl`) are deleted, never a
//! `run`'s own journal file, and only segments that are closed and whose
//! executions have all ended: a segment holding lines of an execution still
//! running here is kept, whatever its age or the log's size, so that a
//! journal is never cut in the middle of its execution. Segments go oldest
//! first, when their last write is older than [`Retention::max_age`] or
//! while the log holds more than [`Retention::max_bytes`]. The log thread
//! checks when it starts, whenever it closes a segment, and every
//! [`RETENTION_CHECK`]. A deleted execution reads as unknown.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Default [`Retention::max_age`]: a week, so that last week's executions
/// (a weekend included) can still be looked into.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Default [`Retention::max_bytes`]: 10 GiB, 160 segments of 64 MiB, which
/// at a few hundred bytes a line is tens of millions of events, and still a
/// small part of an ordinary server's disk.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024 * 1024;

/// How often the log thread checks retention (besides when a segment closes).
pub const RETENTION_CHECK: Duration = Duration::from_secs(60);

/// How long and how much of its log a [`LogStore`](super::LogStore) keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Segments last written longer ago than this are deleted; `None`: kept
    /// whatever their age.
    pub max_age: Option<Duration>,
    /// The log is trimmed, oldest segment first, to at most this many bytes;
    /// `None`: no bound.
    pub max_bytes: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_age: Some(DEFAULT_RETENTION), max_bytes: Some(DEFAULT_MAX_BYTES) }
    }
}

impl Retention {
    /// Keeps everything.
    pub const KEEP: Retention = Retention { max_age: None, max_bytes: None };

    /// True when it may delete anything.
    pub fn deletes(&self) -> bool {
        self.max_age.is_some() || self.max_bytes.is_some()
    }
}

/// A segment file of the log.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub(super) path: PathBuf,
    pub(super) len: u64,
    pub(super) modified: SystemTime,
    /// Closed, and every execution with lines in it has ended.
    pub(super) deletable: bool,
}

/// Which of `segments` (oldest first) to delete, by their indices.
pub(super) fn select(segments: &[Candidate], retention: &Retention, now: SystemTime) -> Vec<usize> {
    let mut total: u64 = segments.iter().map(|s| s.len).sum();
    let mut delete = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        if !s.deletable {
            continue;
        }
        let too_old =
            retention.max_age.is_some_and(|age| now.duration_since(s.modified).is_ok_and(|elapsed| elapsed >= age));
        let too_big = retention.max_bytes.is_some_and(|max| total > max);
        if too_old || too_big {
            total -= s.len;
            delete.push(i);
        }
    }
    delete
}

/// Whether a segment another store wrote (named `UNIXMS-PID-N.jsonl`) can
/// still be written to: only the newest segment of a process that is alive.
/// A segment of this process that is not this store's is an earlier store's
/// (one store writes a directory), so it has ended.
pub(super) fn foreign_segment_ended(pid: Option<u32>, newest_of_its_process: bool) -> bool {
    match pid {
        Some(pid) if pid == std::process::id() => true,
        Some(pid) => !newest_of_its_process || !process_alive(pid),
        None => true,
    }
}

#[cfg(target_os = "linux")]
pub(super) fn process_alive(pid: u32) -> bool {
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

/// Elsewhere there is no cheap portable check: assume it may be writing.
#[cfg(not(target_os = "linux"))]
pub(super) fn process_alive(_pid: u32) -> bool {
    true
}

/// The process id in a segment's name `UNIXMS-PID-N.jsonl`.
pub(super) fn segment_pid(name: &str) -> Option<u32> {
    name.split('-').nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(len: u64, age_s: u64, deletable: bool, now: SystemTime) -> Candidate {
        Candidate { path: PathBuf::new(), len, modified: now - Duration::from_secs(age_s), deletable }
    }

    #[test]
    fn trims_oldest_first_to_the_size_skipping_what_must_stay() {
        let now = SystemTime::now();
        let segs =
            [seg(100, 50, true, now), seg(100, 40, false, now), seg(100, 30, true, now), seg(100, 20, true, now)];
        let by_size = Retention { max_age: None, max_bytes: Some(200) };
        assert_eq!(select(&segs, &by_size, now), vec![0, 2]);
        let by_age = Retention { max_age: Some(Duration::from_secs(35)), max_bytes: None };
        assert_eq!(select(&segs, &by_age, now), vec![0]);
        assert!(select(&segs, &Retention::KEEP, now).is_empty());
    }

    #[test]
    fn names_carry_the_process() {
        assert_eq!(segment_pid("1733270000000-4242-0007.jsonl"), Some(4242));
        assert_eq!(segment_pid("junk.jsonl"), None);
        assert!(foreign_segment_ended(Some(std::process::id()), true));
        assert!(foreign_segment_ended(Some(u32::MAX), false));
    }
}
