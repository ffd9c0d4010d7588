//! `PROGRAM serve` run in this process on 127.0.0.1:0, on a thread of its
//! own, its standard error line by line into a channel: what the server's
//! tests (`common/http.rs`) and benches (`benches/common/serve.rs`, by
//! `#[path]`) both start from.

use std::ffi::OsString;
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use orchestr8_runtime::codegen::Program;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

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

/// A server started by [`spawn`].
pub struct Spawned {
    /// `127.0.0.1:PORT`, from the line it says where it listens.
    pub addr: String,
    /// One send: an interrupt (as Ctrl-C).
    pub interrupt: UnboundedSender<()>,
    /// Ends with its exit status.
    pub thread: JoinHandle<u8>,
    /// What it writes after that line.
    pub lines: mpsc::Receiver<String>,
    /// What it wrote before it (e.g. the executions it resumed).
    #[allow(dead_code)] // the benches start on an empty directory: nothing comes before
    pub before: Vec<String>,
}

/// Runs `NAME serve --addr 127.0.0.1:0 --journal-dir DIR EXTRA...` and waits
/// (60 s at most: a guard against a hang) until it says where it listens.
pub fn spawn<I, S, O>(program: Program<I, S, O>, name: &str, dir: &Path, extra: &[&str]) -> Spawned
where
    I: DeserializeOwned + Serialize + Send + 'static,
    S: Send + Sync + 'static,
    O: Serialize + Send + 'static,
{
    let (interrupt, rx) = unbounded_channel();
    let program = program.interrupts(rx);
    let mut args: Vec<OsString> =
        [name, "serve", "--addr", "127.0.0.1:0", "--journal-dir"].into_iter().map(OsString::from).collect();
    args.push(dir.as_os_str().to_owned());
    args.extend(extra.iter().map(OsString::from));
    let (tx, lines) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut out = Vec::new();
        program.run_with(args, std::io::empty(), &mut out, &mut Lines(tx, Vec::new()))
    });
    let mut before = Vec::new();
    let addr = loop {
        let line = lines.recv_timeout(Duration::from_secs(60)).expect("the server says where it listens");
        match line.split_once(" on http://").and_then(|(_, rest)| rest.split(';').next()) {
            Some(addr) => break addr.to_owned(),
            None => before.push(line),
        }
    };
    Spawned { addr, interrupt, thread, lines, before }
}
