//! Finding one execution's journal in a journal directory: its own
//! `EXECUTION_ID.jsonl` (a `run`), or its lines among every execution's in
//! the segments of a server's log (`DIR/log/`).
//!
//! Searching the log means reading segments. A [`SegmentFilters`] remembers,
//! for each segment it has read, a Bloom filter of the execution ids in it
//! (10 bits per id, about 1 % false positives): later lookups read only the
//! segments that may hold the id, so asking for an id that is nowhere (a
//! typo, a guess) costs a few hash probes per segment instead of the whole
//! log. A filter is kept while its file's length and modification time stay
//! as they were; a segment still being written is read again.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;
use std::{fs, io};

use super::id_map::IdHasher;
use super::store::check_execution_id;
use super::{JournalRead, LOG_DIR};

/// Reads the journal of `execution_id` from a journal directory, wherever it
/// is: `DIR/EXECUTION_ID.jsonl` (a `run`) or the lines in `DIR/log/` (a
/// server). `NotFound` when neither has it.
pub fn read_execution(dir: &Path, execution_id: &str) -> io::Result<JournalRead> {
    SegmentFilters::default().read_execution(dir, execution_id)
}

/// Bloom filters of the execution ids in the segments of journal
/// directories, learned as lookups read them; see the module docs.
#[derive(Debug, Default)]
pub struct SegmentFilters {
    filters: Mutex<HashMap<PathBuf, Filter>>,
    /// Segments read (not skipped) by lookups.
    reads: AtomicU64,
}

impl SegmentFilters {
    /// Like [`read_execution`], reading only the segments whose filter may
    /// hold `execution_id`, and learning the filters of those it reads.
    pub fn read_execution(&self, dir: &Path, execution_id: &str) -> io::Result<JournalRead> {
        self.read_execution_with(dir, execution_id, &|_, _| None)
    }

    /// Like [`read_execution`](Self::read_execution); `own` answers for the
    /// segments a store is writing (whether one may hold an id's hash, from
    /// what it wrote; `None` for any other segment), which are not read
    /// when it says no.
    pub(super) fn read_execution_with(
        &self,
        dir: &Path,
        execution_id: &str,
        own: &dyn Fn(&Path, u64) -> Option<bool>,
    ) -> io::Result<JournalRead> {
        check_execution_id(execution_id)?;
        match super::read_file(dir.join(format!("{execution_id}.jsonl"))) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let read = self.scan(&dir.join(LOG_DIR), execution_id, own)?;
        // Without its first line (seq 1; and nothing unreadable): retention
        // deleted its beginning, and with it the execution.
        let head = read.events.first().is_some_and(|e| e.seq <= 1);
        if read.warnings.is_empty() && !head {
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("no journal for execution {execution_id}")));
        }
        Ok(read)
    }

    /// Learns the filter of a segment a store wrote and closed, from the
    /// hashes of the ids it wrote there ([`id_hash`]), without reading it.
    pub(super) fn learn(&self, path: &Path, hashes: impl ExactSizeIterator<Item = u64>) {
        if let Ok(stamp) = Stamp::of(path) {
            self.lock().insert(path.to_owned(), Filter::of_hashes(hashes, stamp));
        }
    }

    /// Learns the filter of a segment that was read whole (`hashes`: every
    /// id in it, [`hash`] of its JSON string) when it was as `stamp` says:
    /// a segment that changed since is not learned (it is read again).
    pub(super) fn learn_read(&self, path: &Path, stamp: Stamp, hashes: impl ExactSizeIterator<Item = u64>) {
        if Stamp::of(path).is_ok_and(|now| now == stamp) {
            self.lock().insert(path.to_owned(), Filter::of_hashes(hashes, stamp));
        }
    }

    /// Whether `path` may hold the id of hash `h` ([`id_hash`]), by its
    /// filter; `None` when it has none, or one made before it changed.
    pub(super) fn may_hold(&self, path: &Path, h: u64) -> Option<bool> {
        let stamp = Stamp::of(path).ok()?;
        let filters = self.lock();
        let filter = filters.get(path).filter(|f| f.stamp == stamp)?;
        Some(filter.may_hold(h))
    }

    /// Forgets the filter of a segment that was deleted.
    pub(super) fn forget(&self, path: &Path) {
        self.lock().remove(path);
    }

    /// Segment files read by lookups so far (the rest were skipped by their filter).
    pub fn segments_read(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Every line of `execution_id` in the segments under `log_dir`, oldest
    /// segment first. A line that does not parse is a warning (the last line
    /// of a segment a crash cut, or damage), not an error: one bad line must
    /// not hide every other execution's journal.
    fn scan(
        &self,
        log_dir: &Path,
        execution_id: &str,
        own: &dyn Fn(&Path, u64) -> Option<bool>,
    ) -> io::Result<JournalRead> {
        let mut names: Vec<PathBuf> = match fs::read_dir(log_dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        names.sort();
        // The id as the line writer writes it: a JSON string.
        let id_json = serde_json::to_vec(execution_id).map_err(io::Error::other)?;
        let id_hash = hash(&id_json);
        let mut key = KEY.to_vec();
        key.extend_from_slice(&id_json);
        key.push(b',');
        let finder = memchr::memmem::Finder::new(&key);
        let mut read = JournalRead::default();
        for path in names {
            if own(&path, id_hash) == Some(false) {
                continue;
            }
            let stamp = match Stamp::of(&path) {
                Ok(stamp) => stamp,
                // Deleted by retention since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let known = self.lock().get(&path).map(|f| (f.stamp == stamp, f.may_hold(id_hash)));
            if known == Some((true, false)) {
                continue;
            }
            let bytes = fs::read(&path)?;
            self.reads.fetch_add(1, Ordering::Relaxed);
            if known.is_none_or(|(fresh, _)| !fresh) {
                self.lock().insert(path.clone(), Filter::of(&bytes, stamp));
            }
            collect(&bytes, &finder, &path, execution_id, &mut read);
        }
        read.events.sort_by_key(|e| e.seq);
        for w in &read.warnings {
            tracing::warn!("{w}");
        }
        Ok(read)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Filter>> {
        self.filters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What every line has before its execution id.
pub(super) const KEY: &[u8] = b"\"executionId\":";

/// The lines of `execution_id` in one segment's `bytes`, into `read`.
fn collect(bytes: &[u8], finder: &memchr::memmem::Finder, path: &Path, execution_id: &str, read: &mut JournalRead) {
    let mut from = 0;
    while let Some(at) = finder.find(&bytes[from..]) {
        let at = from + at;
        let start = memchr::memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &bytes[at..]).map(|i| at + i);
        let line = &bytes[start..end.unwrap_or(bytes.len())];
        match super::read::parse_line(line) {
            Ok((ev, warning)) if *ev.execution_id == *execution_id => {
                read.warnings.extend(warning.map(|w| format!("{}: {w}", path.display())));
                read.events.push(ev);
            }
            Ok(_) => {}
            Err(e) => {
                let what = if end.is_none() { "its last line is incomplete (cut by a crash)" } else { "a line" };
                read.warnings.push(format!(
                    "{}: {what} of execution {execution_id} does not parse ({e}); ignored",
                    path.display()
                ));
            }
        }
        from = end.map_or(bytes.len(), |e| e + 1);
    }
}

/// When a filter was made: the file's length and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    pub(super) fn of(path: &Path) -> io::Result<Stamp> {
        let meta = fs::metadata(path)?;
        Ok(Stamp { len: meta.len(), modified: meta.modified().ok() })
    }
}

/// The hash filters keep of an execution id's JSON string, as lines hold it.
pub(super) fn hash(bytes: &[u8]) -> u64 {
    BuildHasherDefault::<IdHasher>::default().hash_one(bytes)
}

/// The hash filters keep of an execution id (of its JSON string, as lines hold it).
pub(super) fn id_hash(execution_id: &str) -> u64 {
    hash(&serde_json::to_vec(execution_id).unwrap_or_default())
}

/// A Bloom filter of one segment's execution ids (their JSON strings).
#[derive(Debug)]
struct Filter {
    stamp: Stamp,
    bits: Vec<u64>,
}

/// Probes per id: with 10 bits per id, about 1 % false positives.
const PROBES: u64 = 7;

impl Filter {
    /// The ids of every line of a segment.
    fn of(bytes: &[u8], stamp: Stamp) -> Filter {
        let key = memchr::memmem::Finder::new(KEY);
        let ids: std::collections::HashSet<u64> =
            key.find_iter(bytes).filter_map(|at| json_string(&bytes[at + KEY.len()..])).map(hash).collect();
        Filter::of_hashes(ids.into_iter(), stamp)
    }

    /// Of distinct id hashes.
    fn of_hashes(ids: impl ExactSizeIterator<Item = u64>, stamp: Stamp) -> Filter {
        // At least 128 bytes: a small segment's filter is all but exact.
        let words = (ids.len() * 10).div_ceil(64).max(16);
        let mut filter = Filter { stamp, bits: vec![0; words] };
        for h in ids {
            for bit in filter.probes(h) {
                filter.bits[bit / 64] |= 1 << (bit % 64);
            }
        }
        filter
    }

    fn may_hold(&self, h: u64) -> bool {
        self.probes(h).all(|bit| self.bits[bit / 64] & (1 << (bit % 64)) != 0)
    }

    /// Double hashing: probe `i` is `h1 + i * h2`.
    fn probes(&self, h: u64) -> impl Iterator<Item = usize> {
        let m = self.bits.len() as u64 * 64;
        // FxHash's low bits barely differ between ids that differ in their
        // last bytes, and the filter's size is a power of two: mix first.
        let h1 = mix(h);
        let h2 = mix(h1) | 1;
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }
}

/// A 64-bit finaliser (MurmurHash3's fmix64): every input bit moves every output bit.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The JSON string at the start of `bytes`, quotes included (escapes kept
/// as written); `None` if there is none.
pub(super) fn json_string(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(&bytes[..=i]),
            b'\n' => return None,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_end_at_their_unescaped_quote() {
        assert_eq!(json_string(br#""abc","event""#), Some(&br#""abc""#[..]));
        assert_eq!(json_string(br#""a\"b\\","x""#), Some(&br#""a\"b\\""#[..]));
        assert_eq!(json_string(br#""cut"#), None);
        assert_eq!(json_string(b"\"a\nb\""), None);
        assert_eq!(json_string(b"x"), None);
    }

    #[test]
    fn a_filter_holds_what_it_saw_and_little_else() {
        let stamp = Stamp { len: 0, modified: None };
        let lines: String =
            (0..1000).map(|i| format!("{{\"seq\":1,\"executionId\":\"id-{i}\",\"event\":\"x\"}}\n")).collect();
        let filter = Filter::of(lines.as_bytes(), stamp);
        for i in 0..1000 {
            assert!(filter.may_hold(hash(format!("\"id-{i}\"").as_bytes())), "{i}");
        }
        let false_positives =
            (0..10_000).filter(|i| filter.may_hold(hash(format!("\"other-{i}\"").as_bytes()))).count();
        assert!(false_positives < 500, "{false_positives} of 10,000");
    }
}
