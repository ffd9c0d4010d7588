//! A Restate server for `orchestr8 run --target restate` and the test
//! suite: started on free loopback ports with its own data directory,
//! telemetry off, ready once every partition has a leader; services
//! registered and invoked over its admin and ingress APIs.

pub mod http;

use std::fs::File;
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::http;

/// Partitions of a new cluster (24 by default: more threads and memory).
pub const PARTITIONS: u32 = 2;
/// The node name: a restart must reuse it to find its data.
pub const NODE_NAME: &str = "orchestr8";
/// How long a server may take to be ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The three ports a server listens on, on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Where services are invoked.
    pub ingress: u16,
    /// The admin API (deployments, SQL).
    pub admin: u16,
    /// Node to node.
    pub node: u16,
}

impl Ports {
    /// Three distinct ports that were free a moment ago.
    pub fn free() -> io::Result<Ports> {
        let listeners =
            [TcpListener::bind("127.0.0.1:0")?, TcpListener::bind("127.0.0.1:0")?, TcpListener::bind("127.0.0.1:0")?];
        let port = |i: usize| listeners[i].local_addr().map(|a| a.port());
        Ok(Ports { ingress: port(0)?, admin: port(1)?, node: port(2)? })
    }

    /// `http://127.0.0.1:PORT` of the ingress.
    pub fn ingress_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ingress)
    }

    /// `http://127.0.0.1:PORT` of the admin API.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin)
    }
}

/// Sets up `command` (the `restate-server` binary) to keep its data in
/// `base` and listen on `ports` on loopback only, TCP only, telemetry off,
/// small (2 partitions, 128 MiB RocksDB), its log quiet but for what
/// [`ready`] reads. Only this configuration: a `RESTATE_*` variable of the
/// caller's (or `RUST_LOG`, which overrides the log filter) is removed.
pub fn configure(command: &mut Command, base: &Path, ports: Ports) {
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(|n| n.starts_with("RESTATE_")) {
            command.env_remove(name);
        }
    }
    let node = format!("127.0.0.1:{}", ports.node);
    command
        .env_remove("RUST_LOG")
        .env("RESTATE_BIND_IP", "127.0.0.1")
        .env("RESTATE_LISTEN_MODE", "tcp")
        .env("RESTATE_BIND_ADDRESS", &node)
        .env("RESTATE_ADVERTISED_ADDRESS", format!("http://{node}/"))
        .env("RESTATE_ADMIN__BIND_ADDRESS", format!("127.0.0.1:{}", ports.admin))
        .env("RESTATE_INGRESS__BIND_ADDRESS", format!("127.0.0.1:{}", ports.ingress))
        .env("RESTATE_DISABLE_TELEMETRY", "true")
        .env("RESTATE_DEFAULT_NUM_PARTITIONS", PARTITIONS.to_string())
        .env("RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE", "128MiB")
        // Without the offline GitHub release check's error line;
        // restate=info keeps the "became Leader" lines `ready` reads.
        .env("RESTATE_LOG_FILTER", "warn,restate=info,octocrab=off")
        .env("RESTATE_LOG_FORMAT", "compact")
        .env("RESTATE_LOG_DISABLE_ANSI_CODES", "true")
        .arg("--base-dir")
        .arg(base)
        .args(["--node-name", NODE_NAME, "--no-logo"]);
}

/// Whether the server is ready: both health checks pass, every partition
/// has a leader in this run (its log, read from `log_start`, says so) and a
/// query on a partition table answers. The health checks pass some 100 ms
/// before that, and until then queries and invocations fail.
pub fn ready(ports: Ports, log: &Path, log_start: u64) -> bool {
    let status = |url: String| http("GET", &url, &[], None, Duration::from_secs(5)).ok().map(|r| r.status);
    if status(format!("{}/health", ports.admin_url())) != Some(200)
        || status(format!("{}/restate/health", ports.ingress_url())) != Some(200)
    {
        return false;
    }
    let log = std::fs::read(log).unwrap_or_default();
    let this_run = String::from_utf8_lossy(log.get(log_start as usize..).unwrap_or_default());
    let led = |p: u32| {
        let id = format!("partition_id={p}");
        this_run.lines().any(|l| l.contains("became Leader") && l.split_whitespace().any(|w| w == id))
    };
    if !(0..PARTITIONS).all(led) {
        return false;
    }
    let body = r#"{"query":"SELECT count(*) AS n FROM sys_invocation"}"#;
    let headers = [("content-type", "application/json"), ("accept", "application/json")];
    http("POST", &format!("{}/query", ports.admin_url()), &headers, Some(body), Duration::from_secs(5))
        .is_ok_and(|r| r.status == 200)
}

/// A server this process started, stopped (SIGTERM, then SIGKILL after
/// 10 s) and its data directory removed when dropped.
pub struct Server {
    child: Option<Child>,
    base: PathBuf,
    /// Its ports.
    pub ports: Ports,
}

impl Server {
    /// Starts `binary` with a fresh data directory `base` (what was there is
    /// removed first; it is removed on drop too) and waits until it is
    /// [`ready`]. The error says why, with the end of the server's log.
    pub fn start(binary: &Path, base: &Path) -> Result<Server, String> {
        // The ports are free when picked, but may be taken before the
        // server binds them: then it exits at once, and new ones are tried.
        let mut last = String::new();
        for _ in 0..3 {
            let _ = std::fs::remove_dir_all(base);
            std::fs::create_dir_all(base).map_err(|e| format!("cannot create `{}`: {e}", base.display()))?;
            let ports = Ports::free().map_err(|e| format!("cannot find free ports: {e}"))?;
            let log_path = base.join("server.log");
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| format!("cannot write `{}`: {e}", log_path.display()))?;
            let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
            let err = log.try_clone().map_err(|e| e.to_string())?;
            let mut command = Command::new(binary);
            configure(&mut command, base, ports);
            let child = command
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|e| format!("cannot run the Restate server `{}`: {e}", binary.display()))?;
            let mut server = Server { child: Some(child), base: base.to_owned(), ports };
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Some(Ok(Some(status))) = server.child.as_mut().map(Child::try_wait) {
                    server.child = None;
                    last = format!("it exited ({status}):\n{}", tail(&log_path, 20));
                    break;
                }
                if ready(ports, &log_path, log_start) {
                    return Ok(server);
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the Restate server was not ready after {} s:\n{}",
                        READY_TIMEOUT.as_secs(),
                        tail(&log_path, 20)
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // musl's wording (the server is a static musl binary).
            if !last.contains("Address in use") {
                break;
            }
        }
        Err(format!("the Restate server did not start: {last}"))
    }

    /// Whether the server process has exited (it should not have).
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// Registers the service endpoint at `uri` (`http://127.0.0.1:PORT`),
    /// retrying for up to 10 s while it does not answer yet.
    pub fn register(&self, uri: &str) -> Result<serde_json::Value, String> {
        register(self.ports, uri)
    }
}

/// Registers the service endpoint at `uri` with the server on `ports`,
/// overwriting an earlier registration of it; retries for up to 10 s while
/// the service does not answer its discovery yet. Returns the deployment
/// (`id`, `services`).
pub fn register(ports: Ports, uri: &str) -> Result<serde_json::Value, String> {
    let body = serde_json::json!({ "uri": uri, "force": true }).to_string();
    let url = format!("{}/deployments", ports.admin_url());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let last =
            match http("POST", &url, &[("content-type", "application/json")], Some(&body), Duration::from_secs(30)) {
                Ok(r) if (200..300).contains(&r.status) => {
                    return serde_json::from_str(&r.body).map_err(|e| format!("registering {uri}: {e} in {}", r.body))
                }
                // The request itself is wrong: waiting will not help.
                Ok(r) if r.status < 500 => return Err(format!("registering {uri} failed: {} {}", r.status, r.body)),
                // Discovery failed: the service is not listening yet.
                Ok(r) => format!("{} {}", r.status, r.body),
                Err(e) => e.to_string(),
            };
        if Instant::now() >= deadline {
            return Err(format!("registering {uri} failed for 10 s: {last}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Graceful first (SIGTERM; std can only SIGKILL), when `kill` runs.
            if Command::new("kill").args(["-TERM", &child.id().to_string()]).status().is_ok() {
                let deadline = Instant::now() + Duration::from_secs(10);
                while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// The last `lines` lines of a log file.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
