//! Who may talk to the server: the `Host` a request names (DNS rebinding)
//! and, when configured, a bearer token. Runs before every handler.
//!
//! A browser page on another site can make requests to a loopback server
//! by pointing a name it controls at 127.0.0.1 (DNS rebinding); those
//! requests carry that name in `Host`. Only the names this server answers
//! to are accepted: the bound IP, `localhost` when bound to loopback, any IP
//! when bound to all interfaces, and whatever `--allowed-host` adds.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use crate::program::one_line;

/// What the guard checks, fixed at start.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    /// The address the listener is bound to (its port is the real one).
    pub local: SocketAddr,
    /// `--allowed-host`: more host names (without port); `*` allows any.
    pub allowed_hosts: Vec<String>,
    /// The bearer token every request but `/health` must carry.
    pub token: Option<Arc<str>>,
}

impl Guard {
    /// `Err` with the problem to answer when the request may not go on.
    fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Problem> {
        // A probe without `Host` (HTTP/1.0) may read /health: browsers always send one.
        if path != "/health" || headers.contains_key(header::HOST) {
            self.check_host(headers)?;
        }
        if method == Method::POST {
            self.check_origin(headers)?;
        }
        if path != "/health" {
            self.check_token(headers)?;
        }
        Ok(())
    }

    /// A browser names the page that makes a request in `Origin`: a page of
    /// another site may not start or cancel executions here (the `Host` is
    /// this server's then, so the host check does not see it).
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
        if self.allowed_hosts.iter().any(|h| h == "*") {
            return Ok(());
        }
        let forbidden = |origin: &str| {
            Problem::new(StatusCode::FORBIDDEN, "cross-origin", "Cross-origin request")
                .detail(format!("a page of another origin ({}) may not change anything here", one_line(origin)))
        };
        let text = origin.to_str().map_err(|_| forbidden("unreadable"))?;
        let Some((scheme, authority)) = text.split_once("://") else { return Err(forbidden(text)) };
        let (name, port) = split_host(authority);
        let port = port.unwrap_or(if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 });
        if port == self.local.port() && self.host_allowed(name) {
            return Ok(());
        }
        Err(forbidden(text))
    }

    fn check_host(&self, headers: &HeaderMap) -> Result<(), Problem> {
        if self.allowed_hosts.iter().any(|h| h == "*") {
            return Ok(());
        }
        let misdirected = |detail: String| {
            Problem::new(StatusCode::MISDIRECTED_REQUEST, "unexpected-host", "Unexpected host").detail(detail)
        };
        let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
            return Err(misdirected("the request has no (readable) Host header".into()));
        };
        let (name, port) = split_host(host);
        if port.is_some_and(|p| p != self.local.port()) {
            return Err(misdirected(format!(
                "this server listens on port {}, not {}",
                self.local.port(),
                one_line(host)
            )));
        }
        if self.host_allowed(name) {
            return Ok(());
        }
        Err(misdirected(format!(
            "this server does not answer to the host `{}`; to serve under that name, start it with --allowed-host {}",
            one_line(host),
            one_line(name)
        )))
    }

    fn host_allowed(&self, name: &str) -> bool {
        let ip = self.local.ip();
        match name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            // Bound to all interfaces, any of this machine's addresses may be
            // the one dialled; an IP literal is never a rebinding.
            Ok(asked) => ip.is_unspecified() || asked == ip || (ip.is_loopback() && asked.is_loopback()),
            Err(_) => {
                (name.eq_ignore_ascii_case("localhost") && (ip.is_loopback() || ip.is_unspecified()))
                    || self.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
            }
        }
    }

    fn check_token(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let Some(token) = &self.token else { return Ok(()) };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        match given {
            Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(unauthorized("the bearer token is not this server's")),
            None => Err(unauthorized("this server needs `Authorization: Bearer TOKEN`")),
        }
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized").detail(detail)
}

/// `name[:port]`, `[v6][:port]` or a bare IPv6 address, split.
fn split_host(host: &str) -> (&str, Option<u16>) {
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((v6, tail)) => (v6, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') => match port.parse() {
            Ok(p) => (name, Some(p)),
            Err(_) => (host, Some(0)),
        },
        _ => (host, None),
    }
}

/// Compares without stopping at the first difference, so that the time a
/// wrong token takes does not tell how much of it was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(a.len() ^ b.len(), |acc, (x, y)| acc | usize::from(x ^ y));
    diff == 0
}

impl Guard {
    /// The answer to a request the guard stops; `None` lets it through.
    pub(super) fn refuse(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
        let problem = self.check(method, path, headers).err()?;
        let mut response = problem.into_response();
        if response.status() == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard(local: &str, allowed: &[&str]) -> Guard {
        Guard {
            local: local.parse().unwrap(),
            allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
            token: None,
        }
    }

    fn host(g: &Guard, host: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        g.check_host(&h).is_ok()
    }

    #[test]
    fn hosts_a_loopback_server_answers_to() {
        let g = guard("127.0.0.1:8080", &[]);
        for ok in ["127.0.0.1:8080", "127.0.0.1", "localhost:8080", "LOCALHOST", "[::1]:8080", "127.0.0.2:8080"] {
            assert!(host(&g, ok), "{ok}");
        }
        for no in ["evil.example:8080", "evil.example", "127.0.0.1:9090", "localhost:x", "10.0.0.1:8080", ""] {
            assert!(!host(&g, no), "{no}");
        }
        assert!(g.check_host(&HeaderMap::new()).is_err(), "no Host at all");
        assert!(g.check(&Method::GET, "/health", &HeaderMap::new()).is_ok(), "an HTTP/1.0 probe");
        assert!(g.check(&Method::GET, "/openapi.json", &HeaderMap::new()).is_err());
        let g = guard("127.0.0.1:8080", &["orchestr8.internal"]);
        assert!(host(&g, "orchestr8.internal:8080") && host(&g, "Orchestr8.Internal"));
        assert!(host(&guard("127.0.0.1:8080", &["*"]), "anything.example"));
    }

    #[test]
    fn hosts_a_server_on_every_interface_answers_to() {
        let g = guard("0.0.0.0:8080", &[]);
        assert!(host(&g, "192.168.1.7:8080") && host(&g, "localhost:8080"));
        assert!(!host(&g, "service.example:8080"), "names must be allowed explicitly");
        let g = guard("[::]:8080", &["service.example"]);
        assert!(host(&g, "[fe80::1]:8080") && host(&g, "service.example"));
    }

    #[test]
    fn posts_from_pages_of_other_origins_are_refused() {
        let g = guard("127.0.0.1:8080", &[]);
        let post = |origin: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
            h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            g.check(&Method::POST, "/executions/x/cancel", &h)
        };
        assert!(post("http://127.0.0.1:8080").is_ok() && post("http://localhost:8080").is_ok());
        for other in ["https://evil.example", "http://127.0.0.1:3000", "null", "http://localhost"] {
            assert_eq!(post(other).unwrap_err().status, StatusCode::FORBIDDEN, "{other}");
        }
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(
            g.check(&Method::GET, "/health", &h).is_ok(),
            "reads are not refused: the browser keeps their answers from the page"
        );
    }

    #[test]
    fn tokens_are_compared_whole() {
        let g = Guard { token: Some("s3cret".into()), ..guard("127.0.0.1:1", &[]) };
        let auth = |v: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:1"));
            if let Some(v) = v {
                h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert!(g.check(&Method::POST, "/workflows/execute", &auth(Some("Bearer s3cret"))).is_ok());
        for bad in [None, Some("Bearer s3cre"), Some("Bearer s3cretx"), Some("Basic s3cret"), Some("s3cret")] {
            assert_eq!(
                g.check(&Method::GET, "/executions/x", &auth(bad)).unwrap_err().status,
                StatusCode::UNAUTHORIZED,
                "{bad:?}"
            );
        }
        assert!(g.check(&Method::GET, "/health", &auth(None)).is_ok(), "probes need no token");
        assert!(g.check(&Method::GET, "/x", &auth(Some("BEARER s3cret"))).is_ok(), "the scheme in any case");
    }
}
