//! A real Restate server (the durable execution engine the `restate` target
//! compiles to) for end-to-end tests, with what tests need beyond
//! `orchestr8::restate` (whose configuration, readiness check and HTTP
//! client it uses): kill -9 and restart, SQL, attach; and the service
//! processes it calls.
//!
//! The server binary is installed by `scripts/restate-server with`, which
//! exports `ORCHESTR8_RESTATE_SERVER`; each test starts its own server on free
//! loopback ports with a temporary data dir, so tests run in parallel.

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use orchestr8::restate;
use orchestr8::restate::http::http;
use orchestr8::restate::tail;

/// How long the server may take to be ready (health checks and partitions).
const HEALTH_TIMEOUT: Duration = restate::READY_TIMEOUT;
/// How long an ingress call may block (a workflow runs to its end first).
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);
/// Admin calls other than registration answer at once.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `Drop` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `restate-server` on three free loopback ports (ingress, admin and the
/// node-to-node port) with its own temporary base dir, started for one test
/// and stopped however the test ends (SIGTERM, then SIGKILL; the base dir is
/// removed).
pub struct RestateServer {
    binary: PathBuf,
    child: Option<Child>,
    /// Its data (under `restate::NODE_NAME/`) and `server.log`.
    base: tempfile::TempDir,
    pub ingress_port: u16,
    pub admin_port: u16,
    pub node_port: u16,
}

impl RestateServer {
    /// Starts the server and waits until it is healthy and its partitions
    /// answer queries (at most 30 s).
    /// `None` outside CI when the suite was not run under
    /// `scripts/restate-server with`; under CI that is a failure.
    pub fn start() -> Option<RestateServer> {
        let Some(binary) = std::env::var_os("ORCHESTR8_RESTATE_SERVER") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs this against a real Restate server: run the suite as `scripts/restate-server with cargo test --workspace`, which sets ORCHESTR8_RESTATE_SERVER"
            );
            eprintln!("skipped: run the tests as `scripts/restate-server with cargo test` to run against a real Restate server");
            return None;
        };
        // The ports are free when picked but may be taken before the server
        // binds them: then it exits at once, and a new set is tried.
        for attempt in 1..=3 {
            let restate::Ports { ingress: ingress_port, admin: admin_port, node: node_port } =
                restate::Ports::free().unwrap();
            let base = tempfile::Builder::new().prefix("orchestr8-restate-").tempdir().unwrap();
            let mut server =
                RestateServer { binary: binary.clone().into(), child: None, base, ingress_port, admin_port, node_port };
            match server.spawn_and_wait() {
                Ok(()) => return Some(server),
                Err(log) if attempt < 3 && log.contains("Address in use") => continue,
                Err(log) => panic!("restate-server did not start; last lines of its log:\n{log}"),
            }
        }
        unreachable!()
    }

    /// `http://127.0.0.1:PORT`, where services are invoked.
    pub fn ingress(&self) -> String {
        format!("http://127.0.0.1:{}", self.ingress_port)
    }

    /// `http://127.0.0.1:PORT`, the admin API (deployments, SQL, ...).
    pub fn admin(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// The server's base dir, which `restart` reuses.
    pub fn base_dir(&self) -> &Path {
        self.base.path()
    }

    /// The running server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last 40 lines of the server's log (all its runs).
    pub fn log_tail(&self) -> String {
        tail(&self.log_path(), 40)
    }

    /// Registers the service endpoint at `service_uri` (`http://127.0.0.1:P`;
    /// the server calls its discovery endpoint at once), overwriting an
    /// earlier registration of the same URI. Retries for up to 10 s while the
    /// service does not answer yet; panics with the server's answer otherwise.
    /// Returns the deployment (`id`, `services`).
    pub fn register(&self, service_uri: &str) -> serde_json::Value {
        restate::register(self.ports(), service_uri)
            .unwrap_or_else(|e| panic!("{e}\nlast lines of the server's log:\n{}", self.log_tail()))
    }

    /// Calls a handler through the ingress and waits for its result:
    /// `path` is `/Service/handler`, `/Object/key/handler` or
    /// `/Workflow/key/run`; `body` is JSON. Returns the status and body.
    pub fn invoke(&self, path: &str, body: &str) -> (u16, String) {
        self.invoke_with(path, body, &[])
    }

    /// `invoke` with extra headers, e.g. `("idempotency-key", "k1")`.
    pub fn invoke_with(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        let url = format!("{}{}", self.ingress(), slash(path));
        let r = http("POST", &url, &all, Some(body), INVOKE_TIMEOUT)
            .unwrap_or_else(|e| panic!("POST {url}: {e}\nlast lines of the server's log:\n{}", self.log_tail()));
        (r.status, r.body)
    }

    /// Starts a handler without waiting (`path` as for `invoke`, plus
    /// `/send`) and returns its invocation id (`inv_...`).
    pub fn send(&self, path: &str, body: &str) -> String {
        let path = format!("{}/send", slash(path).trim_end_matches('/'));
        let (status, text) = self.invoke(&path, body);
        assert!(status == 200 || status == 202, "POST {path}: {status} {text}");
        let answer: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST {path}: {e} in {text}"));
        answer["invocationId"].as_str().unwrap_or_else(|| panic!("POST {path}: no invocationId in {text}")).to_owned()
    }

    /// Sends a wait step of execution `execution_id` of workflow `id` its
    /// signal, through the ingress (`POST /ID-signals/EXECUTION/signal`).
    pub fn signal(&self, id: &str, execution_id: &str, step: &str, payload: serde_json::Value) -> (u16, String) {
        let body = serde_json::json!({"step": step, "payload": payload}).to_string();
        self.invoke(&format!("/{id}-signals/{execution_id}/signal"), &body)
    }

    /// Cancels an invocation through the admin API, as `restate invocations
    /// cancel` does; panics unless the server accepts it.
    pub fn cancel(&self, invocation_id: &str) {
        let url = format!("{}/invocations/{invocation_id}/cancel", self.admin());
        let r = http("PATCH", &url, &[], None, INVOKE_TIMEOUT)
            .unwrap_or_else(|e| panic!("PATCH {url}: {e}\nlast lines of the server's log:\n{}", self.log_tail()));
        assert!((200..300).contains(&r.status), "PATCH {url}: {} {}", r.status, r.body);
    }

    /// Waits for an invocation (an id from `send`) to end; its status and
    /// output (or error).
    pub fn attach(&self, invocation_id: &str) -> (u16, String) {
        self.ingress_get(&format!("/restate/invocation/{invocation_id}/attach"))
    }

    /// The output of an invocation that has ended (an error status while it
    /// runs).
    pub fn output(&self, invocation_id: &str) -> (u16, String) {
        self.ingress_get(&format!("/restate/invocation/{invocation_id}/output"))
    }

    /// Waits for the run of workflow `name` with `key` to end; its status and
    /// output.
    pub fn workflow_attach(&self, name: &str, key: &str) -> (u16, String) {
        self.ingress_get(&format!("/restate/workflow/{name}/{key}/attach"))
    }

    /// The output of the finished run of workflow `name` with `key`.
    pub fn workflow_output(&self, name: &str, key: &str) -> (u16, String) {
        self.ingress_get(&format!("/restate/workflow/{name}/{key}/output"))
    }

    fn ingress_get(&self, path: &str) -> (u16, String) {
        let url = format!("{}{path}", self.ingress());
        let r = http("GET", &url, &[], None, INVOKE_TIMEOUT)
            .unwrap_or_else(|e| panic!("GET {url}: {e}\nlast lines of the server's log:\n{}", self.log_tail()));
        (r.status, r.body)
    }

    /// Runs a query on the admin API's SQL introspection (`sys_invocation`,
    /// `sys_journal`, `sys_deployment`, ...): `{"rows": [{column: value}]}`.
    pub fn sql(&self, query: &str) -> serde_json::Value {
        let url = format!("{}/query", self.admin());
        let body = serde_json::json!({ "query": query }).to_string();
        let r = http(
            "POST",
            &url,
            &[("content-type", "application/json"), ("accept", "application/json")],
            Some(&body),
            ADMIN_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(r.status, 200, "SQL {query:?}: {}", r.body);
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("SQL {query:?}: {e} in {}", r.body))
    }

    /// The rows of `sql(query)`.
    pub fn sql_rows(&self, query: &str) -> Vec<serde_json::Value> {
        match self.sql(query).get_mut("rows").map(serde_json::Value::take) {
            Some(serde_json::Value::Array(rows)) => rows,
            other => panic!("SQL {query:?}: no rows in the answer ({other:?})"),
        }
    }

    /// Kills the server with SIGKILL (no shutdown at all) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same base dir, node name and ports
    /// (after `kill9`; a running server is stopped gracefully first) and
    /// waits until it is healthy and its partitions answer queries.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(log) = self.spawn_and_wait() {
            panic!("restate-server did not restart; last lines of its log:\n{log}");
        }
    }

    /// SIGTERM (graceful), up to 10 s, then SIGKILL.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn ports(&self) -> restate::Ports {
        restate::Ports { ingress: self.ingress_port, admin: self.admin_port, node: self.node_port }
    }

    fn log_path(&self) -> PathBuf {
        self.base.path().join("server.log")
    }

    /// Spawns the server and waits for health; on failure it is killed and
    /// the error is the log's tail.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        // Appends: a restart's log follows the killed run's.
        let log = File::options().create(true).append(true).open(self.log_path()).unwrap();
        let log_start = log.metadata().unwrap().len();
        let mut command = Command::new(&self.binary);
        restate::configure(&mut command, self.base.path(), self.ports());
        command.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} (ORCHESTR8_RESTATE_SERVER): {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            // Alive first: a server that failed to bind exits at once, and
            // then whatever holds the port must not pass for it.
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("(it exited: {status})\n{}", self.log_tail()));
            }
            if restate::ready(self.ports(), &self.log_path(), log_start) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(format!("(not healthy after {} s)\n{}", HEALTH_TIMEOUT.as_secs(), self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RestateServer {
    fn drop(&mut self) {
        self.stop();
        // Then `base` is dropped, which removes the dir.
    }
}

/// A service endpoint process (e.g. a generated Restate service binary) on a
/// loopback port, killed however the test ends. Its stdout and stderr go to a
/// log file (`log_tail`).
pub struct ServiceProcess {
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    child: Option<Child>,
    log: tempfile::NamedTempFile,
    /// The port on 127.0.0.1 it listens on.
    pub port: u16,
}

impl ServiceProcess {
    /// Runs `program` with `args` and extra `envs`, then waits until
    /// 127.0.0.1:`port` accepts TCP connections (at most 30 s). The caller
    /// tells it the port through `args` (e.g. `--bind 127.0.0.1:PORT`, with
    /// `port` from [`free_port`]).
    pub fn start(program: impl AsRef<Path>, args: &[&str], envs: &[(&str, &str)], port: u16) -> ServiceProcess {
        let mut service = ServiceProcess {
            program: program.as_ref().to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            envs: envs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
            log: tempfile::Builder::new().prefix("orchestr8-service-").suffix(".log").tempfile().unwrap(),
            port,
        };
        service.spawn_and_wait();
        service
    }

    /// `http://127.0.0.1:PORT`, what `RestateServer::register` takes.
    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last 40 lines of its output (all its runs).
    pub fn log_tail(&self) -> String {
        tail(self.log.path(), 40)
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same program, arguments, environment and
    /// port (killing it first if it still runs) and waits for the port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_and_wait();
    }

    fn spawn_and_wait(&mut self) {
        let log = File::options().append(true).open(self.log.path()).unwrap();
        let child = Command::new(&self.program)
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program.display()));
        self.child = Some(child);
        // The Restate SDK's endpoint speaks HTTP/2 only: a TCP connect is the
        // readiness check that needs no HTTP/2 client.
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "{} exited ({status}) before listening; its output:\n{}",
                    self.program.display(),
                    self.log_tail()
                );
            }
            if TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1)).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                self.kill9();
                panic!(
                    "{} did not listen on 127.0.0.1:{} in {} s; its output:\n{}",
                    self.program.display(),
                    self.port,
                    HEALTH_TIMEOUT.as_secs(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Whether process `pid` exists and is not a zombie (Linux).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

fn slash(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}
