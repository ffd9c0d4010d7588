//! Finding the executions that earlier processes left unfinished in a
//! server's log ([`LogStore::unfinished`](super::LogStore::unfinished)):
//! what a restarted `serve` resumes.
//!
//! An execution is unfinished when a segment of a process that is gone
//! holds its `execution.started` (or `execution.resumed`) line and no
//! segment of the log holds its terminal line. Finding them reads every
//! segment once, in chunks (a segment is up to 64 MiB, the log up to the
//! retention's 10 GiB), and parses no line: each line's `executionId` and
//! `event` are picked out where the line writer puts them (`{"seq":N,
//! "ts":"…","executionId":"…","event":"…",…`). What it learns of each
//! segment's ids goes to the [`SegmentFilters`], so that later lookups of
//! ids skip the segments that do not hold them.

use std::collections::HashSet;
use std::fs::File;
use std::hash::BuildHasherDefault;
use std::io::{self, Read};
use std::path::PathBuf;

use super::id_map::{IdHasher, IdMap};
use super::lookup::{self, SegmentFilters, Stamp, KEY};

/// An execution an earlier process started in the log and did not end
/// (see [`LogStore::unfinished`](super::LogStore::unfinished)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unfinished {
    /// The execution.
    pub execution_id: String,
    /// The segment holding its first `execution.started` line read (its
    /// first `execution.resumed` if retention deleted the start).
    pub segment: PathBuf,
}

/// How one segment is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    /// A process that is gone wrote it: its starts and ends count.
    Gone,
    /// This process wrote it: only its ends count (what this process
    /// starts, it runs).
    Ours,
}

/// A segment to read: where, how, and whether to teach the filters its ids
/// (not for segments a store is writing: they may grow while read).
pub(super) struct Segment {
    pub(super) path: PathBuf,
    pub(super) part: Part,
    pub(super) learn: bool,
}

/// What one read asks of the file system at a time: large enough that the
/// system calls cost nothing next to the scanning, small enough to stay in
/// the CPU's caches.
const CHUNK: usize = 1 << 20;

type HashSetU64 = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// The executions `segments` (oldest first) leave unfinished, oldest start
/// first, leaving out those `skip` says (running in this process).
pub(super) fn scan(
    segments: &[Segment],
    filters: &SegmentFilters,
    skip: impl Fn(&str) -> bool,
) -> io::Result<Vec<Unfinished>> {
    let key = memchr::memmem::Finder::new(KEY);
    // By the id's JSON string, as lines hold it: the segment and the order
    // of its first start. An execution leaves the map when it ends, so it
    // holds the executions under way at one point of the log, not every one
    // in it (no set of ended ids: for a 10 GiB log that would be millions).
    // Segments sort by creation time: should a clock set back put an end
    // before its start, the execution is listed, and `reopen` refuses it.
    let mut started: IdMap<Box<[u8]>, (usize, u64)> = IdMap::default();
    let mut order = 0u64;
    let mut buf = vec![0u8; CHUNK];
    for (number, segment) in segments.iter().enumerate() {
        let stamp = match Stamp::of(&segment.path) {
            Ok(stamp) => stamp,
            // Deleted by retention since it was listed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut file = match File::open(&segment.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut ids = HashSetU64::default();
        let mut line = |line: &[u8]| {
            let Some((id, event)) = fields(line, &key) else { return };
            if segment.learn {
                ids.insert(lookup::hash(id));
            }
            match event {
                b"execution.started" | b"execution.resumed"
                    if segment.part == Part::Gone && !started.contains_key(id) =>
                {
                    started.insert(id.into(), (number, order));
                    order += 1;
                }
                b"execution.completed" | b"execution.failed" | b"execution.cancelled" => {
                    started.remove(id);
                }
                _ => {}
            }
        };
        let (mut have, mut total) = (0usize, 0u64);
        loop {
            if have == buf.len() {
                // One line longer than the buffer: grow it.
                buf.resize(buf.len() * 2, 0);
            }
            let n = match file.read(&mut buf[have..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n as u64;
            let scanned = have;
            have += n;
            // Complete lines: up to the last newline; the rest waits for more.
            let Some(last) = memchr::memrchr(b'\n', &buf[scanned..have]).map(|i| scanned + i) else { continue };
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', &buf[..last + 1]) {
                line(&buf[start..end]);
                start = end + 1;
            }
            buf.copy_within(last + 1..have, 0);
            have -= last + 1;
        }
        // Left in `buf`: a last line without its newline, which a crash
        // tore (the log writes whole lines). Readers take it if it parses
        // (the crash came just before the newline), so it counts then.
        if have > 0 && super::read::parse_line(&buf[..have]).is_ok() {
            line(&buf[..have]);
        }
        if segment.learn && total == stamp.len {
            filters.learn_read(&segment.path, stamp, ids.into_iter());
        }
    }
    let mut found: Vec<(u64, Unfinished)> = started
        .into_iter()
        .filter_map(|(id, (number, order))| {
            let execution_id: String = serde_json::from_slice(&id).ok()?;
            if skip(&execution_id) {
                return None;
            }
            Some((order, Unfinished { execution_id, segment: segments[number].path.clone() }))
        })
        .collect();
    found.sort_unstable_by_key(|(order, _)| *order);
    Ok(found.into_iter().map(|(_, u)| u).collect())
}

/// Whether another process, `pid`, is alive and so runs what it wrote.
#[cfg(target_os = "linux")]
pub(super) fn running(pid: u32) -> bool {
    super::retention::process_alive(pid)
}

/// Elsewhere there is no cheap check. One server writes a journal
/// directory, so the processes that wrote it before this one are gone.
#[cfg(not(target_os = "linux"))]
pub(super) fn running(_pid: u32) -> bool {
    false
}

/// The execution id (its JSON string, quotes included) and the event name
/// of one of the log's lines, found where the line writer puts them without
/// parsing the line; `None` for a line that is not one of ours.
fn fields<'a>(line: &'a [u8], key: &memchr::memmem::Finder) -> Option<(&'a [u8], &'a [u8])> {
    if !line.starts_with(b"{\"seq\":") || line.last() != Some(&b'}') {
        return None;
    }
    // The first `"executionId":` is the line's own: it comes before any
    // input or output that could hold the same text.
    let at = key.find(line)? + KEY.len();
    let id = lookup::json_string(&line[at..])?;
    let rest = line[at + id.len()..].strip_prefix(b",\"event\":\"")?;
    let end = memchr::memchr(b'"', rest)?;
    Some((id, &rest[..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_where_the_line_writer_puts_them() {
        let key = memchr::memmem::Finder::new(KEY);
        let line = br#"{"seq":3,"ts":"2026-01-01T00:00:00.000000Z","executionId":"a\"b","event":"step.started","input":{"executionId":"x","event":"execution.completed"}}"#;
        assert_eq!(fields(line, &key), Some((&br#""a\"b""#[..], &b"step.started"[..])));
        // Torn, or not a journal line.
        assert_eq!(fields(&line[..line.len() - 2], &key), None);
        assert_eq!(fields(br#"{"executionId":"a","event":"x"}"#, &key), None);
        assert_eq!(fields(br#"{"seq":1,"executionId":"a","evt":"x"}"#, &key), None);
    }
}
