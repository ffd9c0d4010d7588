//! `orchestr8 run --target restate WORKFLOW [--input JSON | --input-file PATH]`:
//! the development path of the Restate target in one command. Compiles and
//! builds the service, starts a Restate server on free loopback ports (its
//! data in `.orchestr8/restate/` beside the workflow, removed after), serves
//! and registers the service, then runs one execution with the input and
//! prints its output, or, without an input, stays up until Ctrl-C. What it
//! started, it stops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::run::{build, Built};
use super::Reporting;
use crate::restate::http::http;
use crate::restate::Server;
use crate::target::Target;

pub(super) fn run(
    workflow: &Path,
    orchestr8_path: Option<&Path>,
    restate_server: Option<&Path>,
    reporting: Reporting,
    program_args: &[String],
) -> Result<ExitCode, String> {
    let input = input(program_args)?;
    let server_binary = server_binary(restate_server)?;
    // Ctrl-C (or SIGTERM) from here on stops what was started, via the drops.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).map_err(|e| format!("cannot handle Ctrl-C: {e}"))?;
    let Some(Built { binary, name: id, waits }) = build(workflow, orchestr8_path, reporting, Target::Restate, &[])?
    else {
        return Ok(ExitCode::from(1));
    };
    if stop.load(Ordering::SeqCst) {
        return Ok(ExitCode::from(130));
    }
    let base =
        workflow.parent().unwrap_or(Path::new("")).join(".orchestr8/restate").join(std::process::id().to_string());
    let mut server = Server::start(&server_binary, &base)?;
    let mut service = ServiceChild::start(&binary)?;
    server.register(&service.uri())?;
    let url = format!("{}/{id}/run", server.ports.ingress_url());
    let Some(body) = input else {
        eprintln!(
            "`{id}` is served on Restate (ingress {}, admin {}); run it with:",
            server.ports.ingress_url(),
            server.ports.admin_url()
        );
        eprintln!("  curl -X POST {url} -H 'content-type: application/json' -d @input.json");
        eprintln!("Ctrl-C stops the service and the server.");
        loop {
            if stop.load(Ordering::SeqCst) {
                // As `PROGRAM serve` stopped: a clean end.
                return Ok(ExitCode::SUCCESS);
            }
            watch(&mut server, &mut service)?;
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // Started, then attached to: its id is known (and shown) while it runs,
    // which a wait's signal needs.
    let headers = [("content-type", "application/json")];
    let send_url = format!("{url}/send");
    let sent = http("POST", &send_url, &headers, Some(&body), Duration::from_secs(30))
        .map_err(|e| format!("cannot call {send_url}: {e}"))?;
    let execution = match serde_json::from_str::<serde_json::Value>(&sent.body) {
        Ok(v) if (200..300).contains(&sent.status) => v["invocationId"].as_str().map(str::to_owned),
        _ => None,
    };
    let Some(execution) = execution else {
        // Not started (the ingress refused the request).
        return Ok(failed(sent.status, sent.body));
    };
    eprintln!("execution {execution}");
    if !waits.is_empty() {
        eprintln!("its wait steps take their signals with:");
        for step in &waits {
            eprintln!(
                "  curl -X POST {}/{}/{execution}/signal -H 'content-type: application/json' -d '{{\"step\": \"{step}\", \"payload\": ...}}'",
                server.ports.ingress_url(),
                crate::codegen::restate_signals_object(&id),
            );
        }
    }
    // The output is awaited on a thread, so that Ctrl-C and a process that
    // died are noticed meanwhile.
    let (tx, rx) = std::sync::mpsc::channel();
    let call_url = format!("{}/restate/invocation/{execution}/attach", server.ports.ingress_url());
    std::thread::spawn(move || {
        let answer = http("GET", &call_url, &[], None, Duration::from_secs(365 * 24 * 3600))
            .map(|r| (r.status, r.body))
            .map_err(|e| format!("cannot call {call_url}: {e}"));
        let _ = tx.send(answer);
    });
    let (status, answer) = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(answer) => break answer?,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err("the call to the service ended without an answer".into())
            }
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(ExitCode::from(130));
        }
        watch(&mut server, &mut service)?;
    };
    if (200..300).contains(&status) {
        let pretty = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(answer);
        println!("{pretty}");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(failed(status, answer))
    }
}

/// Reports a failed or refused execution (Restate's terminal error: `{"code",
/// "message"}`); the exit code, as the embedded program's: 2 for an input it
/// refused, 1 for a failure.
fn failed(status: u16, answer: String) -> ExitCode {
    let message = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or(answer);
    eprintln!("error: the execution failed ({status}): {message}");
    ExitCode::from(if status == 400 { 2 } else { 1 })
}

/// An error when the server or the service is gone: nothing would answer.
fn watch(server: &mut Server, service: &mut ServiceChild) -> Result<(), String> {
    if server.exited() {
        return Err("the Restate server stopped".into());
    }
    if let Ok(Some(status)) = service.child.try_wait() {
        return Err(format!("the service stopped ({status})"));
    }
    Ok(())
}

/// The input's JSON text, from `--input JSON` or `--input-file PATH`.
fn input(args: &[String]) -> Result<Option<String>, String> {
    let text = match args {
        [] => return Ok(None),
        [flag, json] if flag == "--input" => json.clone(),
        [flag, path] if flag == "--input-file" => {
            std::fs::read_to_string(path).map_err(|e| format!("cannot read the input file `{path}`: {e}"))?
        }
        _ => {
            return Err(format!(
                "`{}`: with --target restate, give `--input JSON` or `--input-file PATH` (or nothing, to serve until Ctrl-C); orchestr8's own options go before the workflow",
                args.join(" ")
            ))
        }
    };
    serde_json::from_str::<serde_json::Value>(&text).map_err(|e| format!("the input is not JSON: {e}"))?;
    Ok(Some(text))
}

/// `--restate-server`, else `$ORCHESTR8_RESTATE_SERVER`, else
/// `restate-server` on the `PATH`.
fn server_binary(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) =
        given.map(Path::to_path_buf).or_else(|| std::env::var_os("ORCHESTR8_RESTATE_SERVER").map(PathBuf::from))
    {
        return if path.is_file() { Ok(path) } else { Err(format!("no Restate server at `{}`", path.display())) };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("restate-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "no Restate server found: install it (on Linux x64: `npm install --prefix DIR --ignore-scripts @restatedev/restate-server-linux-x64@1.7.12` \
             puts it at DIR/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server; in an orchestr8 checkout, \
             `scripts/restate-server install` prints where it is), then pass `--restate-server PATH` or set ORCHESTR8_RESTATE_SERVER"
                .to_owned()
        })
}

/// The service process on a free loopback port, killed when dropped.
struct ServiceChild {
    child: Child,
    port: u16,
}

impl ServiceChild {
    fn start(binary: &Path) -> Result<ServiceChild, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let child = Command::new(binary)
            .args(["--bind", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run `{}`: {e}", binary.display()))?;
        let mut service = ServiceChild { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = service.child.try_wait() {
                return Err(format!("the service exited ({status}) before it served"));
            }
            if Instant::now() >= deadline {
                return Err(format!("the service did not listen on 127.0.0.1:{port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(service)
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ServiceChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
