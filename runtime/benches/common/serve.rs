//! What the server benches share (`server.rs`, `soak.rs`): `PROGRAM serve`
//! run in this process on 127.0.0.1:0, its standard error drained on a
//! thread, and a stop that interrupts it as Ctrl-C does.
//!
//! Included with `#[path = "common/serve.rs"] mod serve;` by the benches
//! that need the `server` feature (`common/mod.rs` is shared by all).

use std::net::SocketAddr;
use std::path::Path;
use std::thread::JoinHandle;

use orchestr8_runtime::codegen::Program;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

// The in-process start the server's tests use too.
#[path = "../../tests/common/serve.rs"]
mod spawn;

/// Lines of standard error kept for the report (the rest are counted).
const KEPT_LINES: usize = 50;

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

/// Runs `PROGRAM serve --addr 127.0.0.1:0 --journal-dir DIR -q EXTRA...` on a
/// thread of its own and waits until it says where it listens.
pub fn start<I, S, O>(program: Program<I, S, O>, dir: &Path, extra: &[&str]) -> Served
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    let mut args = vec!["-q"];
    args.extend_from_slice(extra);
    let spawn::Spawned { addr, interrupt, thread, lines, .. } = spawn::spawn(program, "bench", dir, &args);
    let addr = addr.parse().expect("a socket address");
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
