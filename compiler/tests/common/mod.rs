//! What several integration tests share: the local model server, (in
//! `restate`) a real Restate server, and (in `golden`) checked-in files
//! generated from the code.

#![allow(dead_code)] // each test binary uses its own part

pub mod golden;
pub mod restate;

use std::process::Command;
use std::time::{Duration, Instant};

/// llama.cpp's `llama-server` with SmolLM2-135M on a free loopback port,
/// installed by `scripts/local-llm with` (which `.ci/run` runs the suite
/// under), started for one test and killed however the test ends.
pub struct LlamaServer {
    child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl LlamaServer {
    /// Starts the server and waits until it answers `/health` (at most 60
    /// s). `None` outside CI when the suite was not run under
    /// `scripts/local-llm with`; under CI that is a failure.
    pub fn start() -> Option<LlamaServer> {
        let (Some(server), Some(model)) =
            (std::env::var_os("ORCHESTR8_LLAMA_SERVER"), std::env::var_os("ORCHESTR8_LLAMA_MODEL"))
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs this against the local model: run the suite as `scripts/local-llm with cargo test --workspace`, which sets ORCHESTR8_LLAMA_SERVER and ORCHESTR8_LLAMA_MODEL"
            );
            eprintln!("skipped: run the tests as `scripts/local-llm with cargo test` to run against a local model");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(server)
            .arg("-m")
            .arg(model)
            .args(["--alias", "smollm2", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "4096", "-t", "2", "--jinja", "--offline", "--seed", "42"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("llama-server starts");
        let mut llama = LlamaServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        // Not listening yet, or listening and still loading the model (503).
        while health(port) != Some(200) {
            assert!(Instant::now() < deadline, "llama-server did not become ready in 60 s");
            assert!(llama.child.try_wait().unwrap().is_none(), "llama-server exited");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(llama)
    }

    /// The base URL an OpenAI-compatible agent calls.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of `GET /health`, if the server answers.
fn health(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}
