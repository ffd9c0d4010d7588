//! What the server benches share (`server.rs`, `soak.rs`): `PROGRAM serve`
//! run in this process on 127.0.0.1:0, its standard error drained on a
//! thread, and a stop that interrupts it as Ctrl-C does.
//!
//! Included with `#[path = "common/serve.rs"] mod serve;` by the benches
//! that need the `server` feature (`common/mod.rs` is shared by all).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use orchestr8_runtime::codegen::Program;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Lines of standard error kept for the report (the rest are counted).
const KEPT_LINES: usize = 50;

/// The server's standard error, line by line, into a channel.
struct Lines(mpsc::Sender<String>, Vec<u8>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.1.extend_from_slice(buf);
        while let Some(i) = self.1.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.1.drain(..=i).collect();
            let _ = self.0.send(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running server.
pub struct Served {
    pub addr: SocketAddr,
    interrupt: UnboundedSender<()>,
    thread: JoinHandle<u8>,
    drain: JoinHandle<(usize, Vec<String>)>,
}

/// How a server ended: its exit status and what it wrote after its first
/// line (`lines` in all, the first [`KEPT_LINES`] of them in `kept`).
pub struct Stopped {
    pub status: u8,
    pub lines: usize,
    pub kept: Vec<String>,
}

/// Runs `PROGRAM serve --addr 127.0.0.1:0 -q --journal-dir DIR EXTRA...` on a
/// thread of its own and waits until it says where it listens.
pub fn start<I, S, O>(program: Program<I, S, O>, dir: &Path, extra: &[&str]) -> Served
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    let (interrupt, rx) = unbounded_channel();
    let program = program.interrupts(rx);
    let mut args: Vec<OsString> =
        ["bench", "serve", "--addr", "127.0.0.1:0", "-q", "--journal-dir"].into_iter().map(OsString::from).collect();
    args.push(dir.as_os_str().to_owned());
    args.extend(extra.iter().map(OsString::from));
    let (tx, lines) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut out = Vec::new();
        program.run_with(args, std::io::empty(), &mut out, &mut Lines(tx, Vec::new()))
    });
    let first = lines.recv_timeout(Duration::from_secs(30)).expect("the server says where it listens");
    let addr = first
        .split_once("on http://")
        .and_then(|(_, rest)| rest.split(';').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .parse()
        .expect("a socket address");
    // Drained as it comes, so that a server that logs per request does
    // not grow this process's memory through an unread channel.
    let drain = std::thread::spawn(move || {
        let (mut n, mut kept) = (0, Vec::new());
        for line in lines {
            n += 1;
            if kept.len() < KEPT_LINES {
                kept.push(line);
            }
        }
        (n, kept)
    });
    Served { addr, interrupt, thread, drain }
}

impl Served {
    /// One interrupt (as Ctrl-C); waits for the server to exit.
    pub fn stop(self) -> Stopped {
        self.interrupt.send(()).expect("the server listens for interrupts");
        let status = self.thread.join().expect("the server thread does not panic");
        // The server's writer is gone with its thread: the drain ends.
        let (lines, kept) = self.drain.join().expect("the drain does not panic");
        Stopped { status, lines, kept }
    }
}
