//! A `PROGRAM serve` on a thread of its own (`Program::run_with`, bound to
//! 127.0.0.1:0, signals through a channel) and a small HTTP/1.1 client over
//! `std::net::TcpStream`, shared by the server's test files.
#![allow(dead_code)] // each test file uses part of it

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use orchestr8_runtime::codegen::Program;
use orchestr8_runtime::journal::{self, read_execution, EventKind, JournalEvent, LOG_DIR};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use super::serve::{spawn, Spawned};

pub struct Server {
    pub addr: String,
    interrupt: UnboundedSender<()>,
    thread: Option<JoinHandle<u8>>,
    lines: mpsc::Receiver<String>,
    /// Its log lines before the one that says where it listens.
    pub before: Vec<String>,
}

impl Server {
    /// Serves `program` on 127.0.0.1:0 with its journals in `dir` and `extra` flags.
    pub fn start<I, S, O>(program: Program<I, S, O>, dir: &Path, extra: &[&str]) -> Server
    where
        I: DeserializeOwned + Serialize + Send + 'static,
        S: Send + Sync + 'static,
        O: Serialize + Send + 'static,
    {
        let Spawned { addr, interrupt, thread, lines, before } = spawn(program, "probe", dir, extra);
        Server { addr, interrupt, thread: Some(thread), lines, before }
    }

    /// Reads log lines until one satisfies `want` (a guard against a hang, not a timing assertion).
    pub fn wait_for_line(&self, want: impl Fn(&str) -> bool) {
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(60)).expect("the expected log line");
            if want(&line) {
                return;
            }
        }
    }

    /// One Ctrl-C / SIGTERM.
    pub fn interrupt(&self) {
        self.interrupt.send(()).expect("the server listens for interrupts");
    }

    /// Waits for the server to exit; its exit status and remaining log.
    pub fn join(mut self) -> (u8, Vec<String>) {
        let code = self.thread.take().unwrap().join().expect("the server thread does not panic");
        (code, self.lines.try_iter().collect())
    }

    /// Waits for the server to exit after an interrupt; fails (and makes
    /// it exit at once) if it has not within `secs` (a guard against a hang).
    pub fn join_within(mut self, secs: u64) -> (u8, Vec<String>) {
        let thread = self.thread.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(thread.join());
        });
        match rx.recv_timeout(Duration::from_secs(secs)) {
            Ok(code) => (code.expect("the server thread does not panic"), self.lines.try_iter().collect()),
            Err(_) => {
                let _ = self.interrupt.send(());
                panic!("the server has not exited {secs} s after the interrupt: shutdown is unbounded");
            }
        }
    }

    pub fn stop(self) -> (u8, Vec<String>) {
        self.interrupt();
        self.join()
    }

    pub fn get(&self, path: &str) -> Resp {
        request(&self.addr, "GET", path, &[], b"")
    }

    /// GET that fails the test if no answer came within `limit`: for
    /// requests that must not wait behind others (a hang guard with a
    /// shorter fuse, not a speed measurement).
    pub fn get_within(&self, path: &str, limit: Duration) -> Resp {
        request_within(&self.addr, "GET", path, &[], b"", limit)
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        request(&self.addr, "POST", path, &[("Content-Type", "application/json")], body.to_string().as_bytes())
    }

    /// GETs `path` until `done` holds (at most 2,000 tries, 5 ms apart).
    pub fn poll(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..2000 {
            let r = self.get(path);
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            if done(&v) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("{path} never reached the expected state");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test must not leave the server running.
        if let Some(t) = self.thread.take() {
            let _ = self.interrupt.send(());
            let _ = self.interrupt.send(());
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        // However deep: the server writes values deeper than serde_json's default limit of 128 reads.
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        de.disable_recursion_limit();
        serde::Deserialize::deserialize(&mut de).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// Checks an RFC 9457 problem of `status` and returns it.
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/problem+json"));
        let p = self.json();
        assert_eq!(p["status"], status, "{p}");
        for key in ["type", "title", "detail"] {
            assert!(p[key].as_str().is_some_and(|s| !s.is_empty()), "{key} in {p}");
        }
        p
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    request_within(addr, method, path, headers, body, Duration::from_secs(120))
}

/// [`request`], failing if the server sends nothing for `limit`.
pub fn request_within(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limit: Duration,
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(limit)).expect("a read timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    // The server may answer (413) and close before reading everything.
    let _ = s.write_all(&req);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            // A reset after the response (unread request bytes): keep what came.
            Err(_) if !buf.is_empty() => break,
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Resp {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response head");
    let head = std::str::from_utf8(&buf[..end]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked")) {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let i = rest.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..i]).unwrap().trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[i + 2..i + 2 + size]);
            rest = &rest[i + 2 + size + 2..];
        }
        body = out;
    } else if let Some(len) = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()) {
        assert!(body.len() >= len, "short body");
        body.truncate(len);
    }
    Resp { status, headers, body }
}

pub fn journal_events(dir: &Path, id: &str) -> Vec<JournalEvent> {
    read_execution(dir, id).expect("journal").events
}

/// The executions the server's log holds, by their `execution.started` lines.
pub fn journaled_executions(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for segment in std::fs::read_dir(dir.join(LOG_DIR)).unwrap() {
        let read = journal::parse(&std::fs::read(segment.unwrap().path()).unwrap()).unwrap();
        ids.extend(
            read.events.iter().filter(|e| e.event == EventKind::ExecutionStarted).map(|e| e.execution_id.to_string()),
        );
    }
    ids
}

pub fn id_of(v: &Value) -> String {
    v["executionId"].as_str().expect("executionId").to_owned()
}
