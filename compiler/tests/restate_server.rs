//! The harness the `restate` target's end-to-end tests run on: a real Restate
//! server (from `scripts/restate-server with`) starts healthy, answers the
//! admin and ingress APIs through the harness's HTTP client, survives kill -9
//! and leaves nothing behind; a service process starts, restarts and dies.

mod common;

use common::restate::{free_port, process_alive, RestateServer, ServiceProcess};
use orchestr8::restate::http::{http, parse_response};
use std::time::Duration;

#[test]
fn a_real_restate_server_answers_survives_kill_9_and_leaves_no_process() {
    let Some(mut server) = RestateServer::start() else { return };
    let get = |url: String| http("GET", &url, &[], None, Duration::from_secs(5)).unwrap();
    assert_eq!(get(format!("{}/health", server.admin())).status, 200);
    let ingress_health = get(format!("{}/restate/health", server.ingress()));
    assert_eq!((ingress_health.status, ingress_health.body.as_str()), (200, r#"{"services":[]}"#));

    // The query answer comes chunked.
    assert_eq!(server.sql_rows("SELECT 1 AS one"), [serde_json::json!({"one": 1})]);
    assert_eq!(server.sql_rows("SELECT id FROM sys_deployment"), Vec::<serde_json::Value>::new());
    // A table served by the partitions: ready when `start` returns.
    assert_eq!(server.sql_rows("SELECT count(*) AS n FROM sys_invocation"), [serde_json::json!({"n": 0})]);
    // An unknown service is the ingress's 404, not a hang or a panic.
    let (status, body) = server.invoke("/NoSuchService/run", "{}");
    assert_eq!(status, 404, "{body}");

    // Loopback only, on exactly the three ports picked.
    let pid = server.pid().unwrap();
    let mut listening = listening_ports(pid);
    listening.sort();
    let mut expected = [server.ingress_port, server.admin_port, server.node_port];
    expected.sort();
    assert_eq!(listening, expected.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>());

    let base = server.base_dir().to_owned();
    server.kill9();
    assert!(!process_alive(pid), "restate-server {pid} survived SIGKILL");
    assert_eq!(
        http("GET", &format!("{}/health", server.admin()), &[], None, Duration::from_secs(2)).ok().map(|r| r.status),
        None
    );

    // Same base dir, node name and ports: it finds its cluster again.
    server.restart();
    let again = server.pid().unwrap();
    assert_ne!(again, pid);
    assert_eq!(get(format!("{}/health", server.admin())).status, 200);
    // Partitions too, which answer ~100 ms after the health checks on a restart.
    assert_eq!(server.sql_rows("SELECT count(*) AS n FROM sys_invocation"), [serde_json::json!({"n": 0})]);
    assert!(base.join("orchestr8").is_dir(), "no node dir in {}", base.display());
    let log = std::fs::read_to_string(base.join("server.log")).unwrap();
    assert_eq!(log.matches("Starting Restate Server").count(), 2, "{log}");
    assert_eq!(log.matches("automatically provisioned").count(), 1, "the restart provisioned a new cluster:\n{log}");

    drop(server);
    assert!(!process_alive(again), "restate-server {again} outlived its handle");
    assert!(!base.exists(), "{} outlived its server", base.display());
}

#[test]
fn a_service_process_is_ready_when_its_port_accepts_and_dies_with_its_handle() {
    // Any program that takes its port as an argument will do: Python's HTTP
    // server (python3 is required by the suite anyway).
    let port = free_port();
    let port_arg = port.to_string();
    let mut service = ServiceProcess::start(
        "python3",
        &["-m", "http.server", "--bind", "127.0.0.1", &port_arg],
        &[("PYTHONUNBUFFERED", "1")],
        port,
    );
    assert_eq!(service.uri(), format!("http://127.0.0.1:{port}"));
    let url = format!("{}/", service.uri());
    let get = || http("GET", &url, &[], None, Duration::from_secs(5));
    assert_eq!(get().unwrap().status, 200);
    let first = service.pid().unwrap();
    service.kill9();
    assert!(!process_alive(first));
    assert!(get().is_err(), "something still answers on {port}");
    service.restart();
    let second = service.pid().unwrap();
    assert_eq!(get().unwrap().status, 200);
    assert!(service.log_tail().contains("GET / HTTP/1.1"), "{}", service.log_tail());
    drop(service);
    assert!(!process_alive(second));
}

#[test]
fn chunked_sized_and_unsized_bodies_parse() {
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    let r = parse_response(chunked).unwrap();
    assert_eq!((r.status, r.body.as_str(), r.header("x-a")), (200, "hello, world", Some("b")));
    let sized = b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabcdef";
    let r = parse_response(sized).unwrap();
    assert_eq!((r.status, r.body.as_str()), (404, "abc"));
    assert_eq!(parse_response(b"HTTP/1.1 202 Accepted\r\n\r\n{}").unwrap().body, "{}");
    assert!(parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel").is_err());
    assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort").is_err());
}

/// The TCP addresses process `pid` listens on (Linux: its socket inodes
/// matched against /proc/net/tcp{,6}).
fn listening_ports(pid: u32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let mut found = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // State 0A is LISTEN; the local address is HEXIP:HEXPORT.
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let (ip, port) = f[1].split_once(':').unwrap();
                let port = u16::from_str_radix(port, 16).unwrap();
                found.push(match u32::from_str_radix(ip, 16) {
                    // /proc/net/tcp writes an IPv4 address as a little-endian word.
                    Ok(v4) if table == "tcp" => {
                        let [a, b, c, d] = v4.to_le_bytes();
                        format!("{a}.{b}.{c}.{d}:{port}")
                    }
                    _ => format!("[{ip}]:{port}"),
                });
            }
        }
    }
    found
}
