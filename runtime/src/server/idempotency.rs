//! `Idempotency-Key`: a client that retries `POST /workflows/execute` with
//! the same key and the same body gets the execution its first request
//! started, not a second one; the same key with another body is a 422.
//!
//! The key and the request's fingerprint are recorded on the execution's
//! `execution.started` line (`idempotencyKey`, `requestHash`), so that keys
//! outlive the process: at start, the server reads them back from the log
//! segments written within `--idempotency-ttl`. In memory, keys are
//! forgotten once older than that (or, past [`MAX_KEYS`], oldest first).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::problem::Problem;
use crate::journal::{EventKind, JournalEvent, LOG_DIR};
use crate::program::{number_key, one_line};

/// The request header.
pub(super) const HEADER: &str = "idempotency-key";

/// Keys remembered at most (about 150 bytes each).
pub(crate) const MAX_KEYS: usize = 1_000_000;

/// The longest key accepted.
const MAX_KEY_LEN: usize = 255;

/// The execution a key started, and the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyRecord {
    pub(super) execution_id: Arc<str>,
    pub(super) request_hash: Arc<str>,
    at: SystemTime,
}

/// What a key says about a new request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// Never seen (or forgotten): start an execution.
    New,
    /// The same request again: answer with this execution.
    Same(Arc<str>),
    /// The key started another request's execution.
    Different(Arc<str>),
}

/// The keys of the last `ttl`.
#[derive(Debug)]
pub(super) struct Keys {
    map: HashMap<Arc<str>, KeyRecord>,
    order: VecDeque<(SystemTime, Arc<str>)>,
    ttl: Duration,
    max: usize,
}

impl Keys {
    pub(super) fn new(ttl: Duration) -> Self {
        Keys { map: HashMap::new(), order: VecDeque::new(), ttl, max: MAX_KEYS }
    }

    /// What `key` says about a request with fingerprint `hash`, at `now`.
    pub(super) fn seen(&mut self, key: &str, hash: &str, now: SystemTime) -> Seen {
        self.expire(now);
        match self.map.get(key) {
            None => Seen::New,
            Some(r) if &*r.request_hash == hash => Seen::Same(r.execution_id.clone()),
            Some(r) => Seen::Different(r.execution_id.clone()),
        }
    }

    /// Remembers that `key` started `execution_id` for a request `hash`.
    pub(super) fn insert(&mut self, key: Arc<str>, execution_id: Arc<str>, request_hash: Arc<str>, at: SystemTime) {
        if expired(at, self.ttl, SystemTime::now()) {
            return; // already expired (read back from an old segment)
        }
        self.order.push_back((at, key.clone()));
        self.map.insert(key, KeyRecord { execution_id, request_hash, at });
        while self.map.len() > self.max {
            let Some((at, old)) = self.order.pop_front() else { break };
            // Only if not removed and inserted again since (the map holds the newest).
            if self.map.get(&old).is_some_and(|r| r.at == at) {
                self.map.remove(&old);
            }
        }
    }

    fn expire(&mut self, now: SystemTime) {
        while let Some((at, _)) = self.order.front() {
            if !expired(*at, self.ttl, now) {
                break;
            }
            let (at, key) = self.order.pop_front().expect("a front");
            // Only if not re-inserted since (the map holds the newest).
            if self.map.get(&key).is_some_and(|r| r.at == at) {
                self.map.remove(&key);
            }
        }
    }

    /// Forgets `key` (its request started nothing).
    pub(super) fn remove(&mut self, key: &str) {
        self.map.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }

    /// Reads back the keys recorded in the log's segments changed within
    /// the ttl (lines without a key are skipped unparsed).
    pub(super) fn load(&mut self, journal_dir: &Path) -> io::Result<usize> {
        let dir = journal_dir.join(LOG_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let now = SystemTime::now();
        let mut segments = Vec::new();
        for entry in entries {
            let entry = entry?;
            let modified = entry.metadata()?.modified().unwrap_or(now);
            if !expired(modified, self.ttl, now) && entry.file_name().to_string_lossy().ends_with(".jsonl") {
                segments.push(entry.path());
            }
        }
        segments.sort(); // names sort by age: newer keys are inserted last
        let needle = memchr::memmem::Finder::new(b"\"idempotencyKey\":");
        let mut found = 0;
        for path in segments {
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue, // retention got it
                Err(e) => return Err(e),
            };
            for line in bytes.split(|&b| b == b'\n') {
                if needle.find(line).is_none() {
                    continue;
                }
                // A torn or unreadable line is skipped: its key is lost, not the server.
                let Ok(ev) = serde_json::from_slice::<JournalEvent>(line) else { continue };
                if ev.event != EventKind::ExecutionStarted {
                    continue;
                }
                if let (Some(key), Some(hash)) = (ev.idempotency_key(), ev.request_hash()) {
                    self.insert(key.into(), ev.execution_id.clone(), hash.into(), ev.ts);
                    found += 1;
                }
            }
        }
        Ok(found)
    }
}

/// Whether something of time `at` is older than `ttl` at `now` (a ttl too
/// large to add is never reached).
fn expired(at: SystemTime, ttl: Duration, now: SystemTime) -> bool {
    at.checked_add(ttl).is_some_and(|end| end <= now)
}

/// The request's key, if it has one: 1 to 255 visible ASCII characters.
pub(super) fn key(headers: &HeaderMap) -> Result<Option<Arc<str>>, Problem> {
    let Some(v) = headers.get(HEADER) else { return Ok(None) };
    let bad = || {
        Problem::new(StatusCode::BAD_REQUEST, "bad-header", "Bad header").detail(format!(
            "the `Idempotency-Key` header must be 1 to {MAX_KEY_LEN} visible ASCII characters (a UUID is a good key)"
        ))
    };
    let text = v.to_str().map_err(|_| bad())?.trim();
    if text.is_empty() || text.len() > MAX_KEY_LEN || !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad());
    }
    Ok(Some(text.into()))
}

/// The 422 for a key that started another request.
pub(super) fn reused(key: &str, execution_id: &str) -> Problem {
    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency key reused")
        .detail(format!(
            "the Idempotency-Key `{}` was used for a different request (execution {execution_id}); use a new key for a new request",
            one_line(key)
        ))
        .about(execution_id, None)
}

/// The fingerprint of a request: `input` and `correlationId`, as JSON
/// values (key order and number spelling do not matter), FNV-1a 64 in hex.
/// Stable across processes and versions: it is compared with fingerprints
/// read back from the journal.
pub(super) fn fingerprint(input: &Value, correlation_id: Option<&str>) -> String {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    canonical(input, &mut h);
    match correlation_id {
        Some(c) => {
            h.write(b"c");
            h.write(c.as_bytes());
        }
        None => h.write(b"n"),
    }
    format!("{:016x}", h.0)
}

struct Fnv(u64);

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn len(&mut self, n: usize) {
        self.write(&(n as u64).to_le_bytes());
    }
}

/// Feeds `v` in a canonical form: tagged, length-prefixed, object members
/// sorted by key, numbers by value.
fn canonical(v: &Value, h: &mut Fnv) {
    match v {
        Value::Null => h.write(b"z"),
        Value::Bool(b) => h.write(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            let (kind, bits) = number_key(n);
            h.write(&[b'#', kind]);
            h.write(&bits.to_le_bytes());
        }
        Value::String(s) => {
            h.write(b"s");
            h.len(s.len());
            h.write(s.as_bytes());
        }
        Value::Array(a) => {
            h.write(b"a");
            h.len(a.len());
            for x in a {
                canonical(x, h);
            }
        }
        Value::Object(m) => {
            h.write(b"o");
            h.len(m.len());
            let mut members: Vec<_> = m.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            for (k, x) in members {
                h.len(k.len());
                h.write(k.as_bytes());
                canonical(x, h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fingerprints_ignore_key_order_and_number_spelling_only() {
        let f = |v: Value, c: Option<&str>| fingerprint(&v, c);
        assert_eq!(f(json!({"a": 1, "b": [true, null]}), None), f(json!({"b": [true, null], "a": 1.0}), None));
        assert_ne!(f(json!({"a": 1}), None), f(json!({"a": 2}), None));
        assert_ne!(f(json!({"a": 1}), None), f(json!({"a": 1}), Some("c")));
        assert_ne!(f(json!(["ab", "c"]), None), f(json!(["a", "bc"]), None), "lengths are part of it");
        assert_ne!(f(json!([[1], 2]), None), f(json!([1, [2]]), None));
        // Pinned (checked against a Python transcription): fingerprints are
        // compared with ones in older journals.
        assert_eq!(f(json!({"ticketId": "T-1"}), None), "fa645ec6c8b08270");
    }

    #[test]
    fn keys_expire_and_are_bounded() {
        let t0 = SystemTime::now();
        let mut k = Keys::new(Duration::from_secs(60));
        k.insert("k1".into(), "e1".into(), "h1".into(), t0);
        assert_eq!(k.seen("k1", "h1", t0), Seen::Same("e1".into()));
        assert_eq!(k.seen("k1", "h2", t0), Seen::Different("e1".into()));
        assert_eq!(k.seen("k2", "h1", t0), Seen::New);
        assert_eq!(k.seen("k1", "h1", t0 + Duration::from_secs(61)), Seen::New, "expired");
        assert_eq!(k.len(), 0);
        k.max = 2;
        for i in 0..3 {
            k.insert(format!("k{i}").into(), "e".into(), "h".into(), t0);
        }
        assert_eq!((k.len(), k.seen("k0", "h", t0)), (2, Seen::New), "the oldest goes first");
        // A key removed and stored again is not evicted by its old place in line.
        k.remove("k1");
        k.insert("k1".into(), "e2".into(), "h".into(), t0 + Duration::from_secs(1));
        k.insert("k3".into(), "e".into(), "h".into(), t0 + Duration::from_secs(1));
        assert_eq!(k.seen("k1", "h", t0 + Duration::from_secs(1)), Seen::Same("e2".into()));
        let mut forever = Keys::new(Duration::MAX);
        forever.insert("k".into(), "e".into(), "h".into(), t0);
        assert_eq!(forever.seen("k", "h", t0 + Duration::from_secs(3600)), Seen::Same("e".into()), "no overflow");
    }

    #[test]
    fn header_values() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(HEADER, v.parse().unwrap());
            key(&m)
        };
        assert_eq!(h(" 8e0f-key ").unwrap().as_deref(), Some("8e0f-key"));
        assert!(h("").is_err() && h(&"x".repeat(256)).is_err());
        assert_eq!(key(&HeaderMap::new()).unwrap(), None);
    }
}
