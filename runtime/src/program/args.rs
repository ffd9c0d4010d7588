//! The command line: what it asks for ([`Command`]), the flags of a run and
//! of `serve`, their defaults and their errors.
//!
//! A flag is added in four places here: its field in [`RunArgs`], its arm in
//! [`parse_args`], its check in [`serve_args`] (with `serve_only` if it is
//! for `serve` alone), and its line in the help text (`help.rs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::journal::DEFAULT_JOURNAL_DIR;
use crate::telemetry::LogFormat;

/// What the command line asks for.
#[derive(Debug)]
pub(super) enum Command {
    Run(RunArgs),
    /// `--test FILE`.
    Test(PathBuf),
    Help,
    Version,
    InputSchema,
    /// `serve`: the workflow as an HTTP service.
    Serve(ServeArgs),
}

/// Default address of `serve`: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
/// Default bound of `POST /workflows/execute?wait=true`.
pub const DEFAULT_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Default request body limit of `serve`, in bytes.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Default bound of `serve` on executions running at once: far above what
/// one machine's agents usually sustain, low enough that a flood of
/// requests meets a 503 instead of exhausting memory.
pub const DEFAULT_MAX_RUNNING: usize = 1024;
/// Default time `serve` remembers an `Idempotency-Key`: a day covers a
/// client's retries across an outage and a restart.
pub const DEFAULT_IDEMPOTENCY_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Default `--journal-retention` of `serve`: a week (see [`crate::journal::DEFAULT_RETENTION`]).
pub const DEFAULT_JOURNAL_RETENTION: std::time::Duration = crate::journal::DEFAULT_RETENTION;
/// Default `--journal-max-bytes` of `serve`: 10 GiB (see [`crate::journal::DEFAULT_MAX_BYTES`]).
pub const DEFAULT_JOURNAL_MAX_BYTES: u64 = crate::journal::DEFAULT_MAX_BYTES;
/// Default time a connection of `serve` has to send a request head: from
/// the connection for its first request, from the first byte for later ones.
/// A client sends a head in one packet or a few; ten seconds covers slow
/// links, and bounds what a client that sends nothing can hold.
pub const DEFAULT_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Default time a request body has to arrive whole, from the end of its
/// head: the default 1 MiB body at about 35 KB/s.
pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// Default time a keep-alive connection may wait, idle, for its next request.
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Default number of connections `serve` keeps open at once; more wait in
/// the listen backlog. Half the usual limit of 1024 open files, leaving
/// descriptors for the journal's segments and the rest of the process.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default time `serve` waits after the first Ctrl-C or SIGTERM for running
/// executions and open requests before it journals what is left as
/// cancelled and exits: below the 30 s an orchestrator (Kubernetes' default
/// grace period) waits before SIGKILL, so the journals are written first.
pub const DEFAULT_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(25);

/// The options of `serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "server"), allow(dead_code))]
pub(crate) struct ServeArgs {
    pub addr: std::net::SocketAddr,
    pub journal_dir: PathBuf,
    pub wait_timeout: std::time::Duration,
    pub body_limit: usize,
    /// `--journal-retention` and `--journal-max-bytes`.
    pub retention: crate::journal::Retention,
    pub header_timeout: std::time::Duration,
    pub body_timeout: std::time::Duration,
    pub idle_timeout: std::time::Duration,
    pub max_connections: usize,
    pub shutdown_timeout: std::time::Duration,
    pub quiet: bool,
    pub log_format: Option<LogFormat>,
    /// `--allowed-host`: more names the server answers to (`*`: any).
    pub allowed_hosts: Vec<String>,
    /// `--auth-token-env`: the variable holding the bearer token.
    pub auth_token_env: Option<String>,
    /// `--max-running`: executions running at once at most.
    pub max_running: usize,
    /// `--idempotency-ttl`: how long `Idempotency-Key`s are remembered.
    pub idempotency_ttl: std::time::Duration,
}

#[derive(Debug, Default)]
pub(super) struct RunArgs {
    pub(super) input: Option<String>,
    pub(super) input_file: Option<PathBuf>,
    pub(super) journal_dir: Option<PathBuf>,
    pub(super) correlation_id: Option<String>,
    pub(super) quiet: bool,
    pub(super) test: Option<PathBuf>,
    pub(super) serve: bool,
    pub(super) addr: Option<String>,
    pub(super) wait_timeout: Option<String>,
    pub(super) body_limit: Option<String>,
    pub(super) journal_retention: Option<String>,
    pub(super) journal_max_bytes: Option<String>,
    pub(super) header_timeout: Option<String>,
    pub(super) body_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) max_connections: Option<String>,
    pub(super) shutdown_timeout: Option<String>,
    pub(super) log_format: Option<LogFormat>,
    pub(super) allowed_hosts: Vec<String>,
    pub(super) auth_token_env: Option<String>,
    pub(super) max_running: Option<String>,
    pub(super) idempotency_ttl: Option<String>,
}

/// Parses the arguments after the program name: `--flag VALUE` or
/// `--flag=VALUE`; `--help`, `--version` and `--input-schema` win as soon as
/// they are seen.
pub(super) fn parse_args(args: Vec<OsString>) -> Result<Command, String> {
    let mut it = args.into_iter().skip(1).peekable();
    let mut a = RunArgs::default();
    if it.peek().is_some_and(|first| first == "serve") {
        it.next();
        a.serve = true;
    }
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str() else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline) = match s.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(OsString::from(v))),
            _ => (s, None),
        };
        let mut value = |flag: &str| -> Result<OsString, String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) if inline.is_some() || !v.to_str().is_some_and(|v| v.starts_with("--")) => Ok(v),
                _ => Err(format!("'{flag}' needs a value")),
            }
        };
        let utf8 = |flag: &str, v: OsString| v.into_string().map_err(|_| format!("the value of '{flag}' is not UTF-8"));
        match name {
            "-h" | "--help" if inline.is_none() => return Ok(Command::Help),
            "-V" | "--version" if inline.is_none() => return Ok(Command::Version),
            "--input-schema" if inline.is_none() => return Ok(Command::InputSchema),
            "-q" | "--quiet" if inline.is_none() => a.quiet = true,
            "--input" => set(&mut a.input, name, utf8(name, value(name)?)?)?,
            "--input-file" => set(&mut a.input_file, name, PathBuf::from(value(name)?))?,
            "--journal-dir" => set(&mut a.journal_dir, name, PathBuf::from(value(name)?))?,
            "--correlation-id" => set(&mut a.correlation_id, name, utf8(name, value(name)?)?)?,
            "--test" => set(&mut a.test, name, PathBuf::from(value(name)?))?,
            "--addr" => set(&mut a.addr, name, utf8(name, value(name)?)?)?,
            "--wait-timeout" => set(&mut a.wait_timeout, name, utf8(name, value(name)?)?)?,
            "--body-limit" => set(&mut a.body_limit, name, utf8(name, value(name)?)?)?,
            "--allowed-host" => {
                let host = utf8(name, value(name)?)?;
                if host.trim().is_empty() || host.contains(['/', ' ']) {
                    return Err(format!(
                        "'--allowed-host' needs a host name like api.example.com (or *), not '{host}'"
                    ));
                }
                a.allowed_hosts.push(host.trim().to_owned())
            }
            "--auth-token-env" => set(&mut a.auth_token_env, name, utf8(name, value(name)?)?)?,
            "--max-running" => set(&mut a.max_running, name, utf8(name, value(name)?)?)?,
            "--idempotency-ttl" => set(&mut a.idempotency_ttl, name, utf8(name, value(name)?)?)?,
            "--journal-retention" => set(&mut a.journal_retention, name, utf8(name, value(name)?)?)?,
            "--journal-max-bytes" => set(&mut a.journal_max_bytes, name, utf8(name, value(name)?)?)?,
            "--header-timeout" => set(&mut a.header_timeout, name, utf8(name, value(name)?)?)?,
            "--body-timeout" => set(&mut a.body_timeout, name, utf8(name, value(name)?)?)?,
            "--idle-timeout" => set(&mut a.idle_timeout, name, utf8(name, value(name)?)?)?,
            "--max-connections" => set(&mut a.max_connections, name, utf8(name, value(name)?)?)?,
            "--shutdown-timeout" => set(&mut a.shutdown_timeout, name, utf8(name, value(name)?)?)?,
            "--log-format" => {
                let v = utf8(name, value(name)?)?;
                let format = v.parse().map_err(|e| format!("'--log-format': {e}"))?;
                set(&mut a.log_format, name, format)?
            }
            "-q" | "--quiet" | "--help" | "--version" | "--input-schema" => {
                return Err(format!("'{name}' takes no value"))
            }
            _ if name.starts_with('-') && name != "-" => return Err(format!("unknown option '{name}'")),
            _ => return Err(format!("unexpected argument '{s}'")),
        }
    }
    if a.serve {
        return serve_args(a);
    }
    let serve_only = [
        ("--addr", a.addr.is_some()),
        ("--wait-timeout", a.wait_timeout.is_some()),
        ("--body-limit", a.body_limit.is_some()),
        ("--allowed-host", !a.allowed_hosts.is_empty()),
        ("--auth-token-env", a.auth_token_env.is_some()),
        ("--max-running", a.max_running.is_some()),
        ("--idempotency-ttl", a.idempotency_ttl.is_some()),
        ("--journal-retention", a.journal_retention.is_some()),
        ("--journal-max-bytes", a.journal_max_bytes.is_some()),
        ("--header-timeout", a.header_timeout.is_some()),
        ("--body-timeout", a.body_timeout.is_some()),
        ("--idle-timeout", a.idle_timeout.is_some()),
        ("--max-connections", a.max_connections.is_some()),
        ("--shutdown-timeout", a.shutdown_timeout.is_some()),
    ];
    if let Some((flag, _)) = serve_only.iter().find(|(_, given)| *given) {
        return Err(format!("'{flag}' is only for 'serve'"));
    }
    if a.input.is_some() && a.input_file.is_some() {
        return Err("'--input' and '--input-file' cannot be used together".into());
    }
    if let Some(file) = a.test.take() {
        let other = [
            ("--input", a.input.is_some()),
            ("--input-file", a.input_file.is_some()),
            ("--journal-dir", a.journal_dir.is_some()),
            ("--correlation-id", a.correlation_id.is_some()),
            ("--log-format", a.log_format.is_some()),
        ];
        if let Some((flag, _)) = other.iter().find(|(_, given)| *given) {
            return Err(format!("'--test' and '{flag}' cannot be used together"));
        }
        return Ok(Command::Test(file));
    }
    Ok(Command::Run(a))
}

/// Checks and converts the options of `serve`.
fn serve_args(a: RunArgs) -> Result<Command, String> {
    let other = [
        ("--input", a.input.is_some()),
        ("--input-file", a.input_file.is_some()),
        ("--correlation-id", a.correlation_id.is_some()),
        ("--test", a.test.is_some()),
    ];
    if let Some((flag, _)) = other.iter().find(|(_, given)| *given) {
        return Err(format!("'serve' and '{flag}' cannot be used together"));
    }
    let addr = a.addr.as_deref().unwrap_or(DEFAULT_ADDR);
    let addr = addr.parse().map_err(|_| format!("'--addr' needs an address like {DEFAULT_ADDR}, not '{addr}'"))?;
    let wait_timeout = match &a.wait_timeout {
        Some(t) => crate::policy::parse_duration(t)
            .map_err(|_| format!("'--wait-timeout' needs a duration like 30s or 500ms, not '{t}'"))?,
        None => DEFAULT_WAIT_TIMEOUT,
    };
    let body_limit = match &a.body_limit {
        Some(b) => parse_size(b)
            .ok_or_else(|| format!("'--body-limit' needs a size like 1048576, 64KiB or 1MiB, not '{b}'"))?,
        None => DEFAULT_BODY_LIMIT,
    };
    let max_running = match &a.max_running {
        Some(n) => n
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("'--max-running' needs a positive whole number like 64, not '{n}'"))?,
        None => DEFAULT_MAX_RUNNING,
    };
    let idempotency_ttl = match &a.idempotency_ttl {
        Some(t) => crate::policy::parse_duration(t)
            .map_err(|_| format!("'--idempotency-ttl' needs a duration like 24h or 30m, not '{t}'"))?,
        None => DEFAULT_IDEMPOTENCY_TTL,
    };
    if let Some(var) = &a.auth_token_env {
        // Checked here, so that a token that is not there is a usage error.
        if std::env::var(var).map_or(true, |t| t.trim().is_empty()) {
            return Err(format!(
                "'--auth-token-env {var}': the variable is not set or empty; set it to the token clients must send"
            ));
        }
    }
    let max_age = match a.journal_retention.as_deref().map(str::trim) {
        Some("off") => None,
        Some(t) => Some(parse_retention(t).ok_or_else(|| {
            format!("'--journal-retention' needs a duration like 7d, 12h or 30m, or 'off', not '{t}'")
        })?),
        None => Some(DEFAULT_JOURNAL_RETENTION),
    };
    let max_bytes =
        match a.journal_max_bytes.as_deref().map(str::trim) {
            Some("off") => None,
            Some(b) => Some(parse_size(b).map(|n| n as u64).ok_or_else(|| {
                format!("'--journal-max-bytes' needs a size like 10GiB or 500MiB, or 'off', not '{b}'")
            })?),
            None => Some(DEFAULT_JOURNAL_MAX_BYTES),
        };
    // Connection timeouts must be positive: zero would close every connection.
    let timeout = |flag: &str, given: &Option<String>, default, zero_ok: bool| match given {
        Some(t) => match crate::policy::parse_duration(t) {
            Ok(d) if zero_ok || !d.is_zero() => Ok(d),
            _ => Err(format!(
                "'{flag}' needs a duration like 10s or 500ms{}, not '{t}'",
                if zero_ok { "" } else { " (more than zero)" }
            )),
        },
        None => Ok(default),
    };
    let header_timeout = timeout("--header-timeout", &a.header_timeout, DEFAULT_HEADER_TIMEOUT, false)?;
    let body_timeout = timeout("--body-timeout", &a.body_timeout, DEFAULT_BODY_TIMEOUT, false)?;
    let idle_timeout = timeout("--idle-timeout", &a.idle_timeout, DEFAULT_IDLE_TIMEOUT, false)?;
    // Zero: journal what is running as cancelled at once, without waiting.
    let shutdown_timeout = timeout("--shutdown-timeout", &a.shutdown_timeout, DEFAULT_SHUTDOWN_TIMEOUT, true)?;
    let max_connections = match &a.max_connections {
        Some(n) => n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("'--max-connections' needs a number of connections, 1 or more, not '{n}'"))?,
        None => DEFAULT_MAX_CONNECTIONS,
    };
    Ok(Command::Serve(ServeArgs {
        addr,
        journal_dir: a.journal_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_JOURNAL_DIR)),
        wait_timeout,
        body_limit,
        retention: crate::journal::Retention { max_age, max_bytes },
        header_timeout,
        body_timeout,
        idle_timeout,
        max_connections,
        shutdown_timeout,
        quiet: a.quiet,
        log_format: a.log_format,
        allowed_hosts: a.allowed_hosts,
        auth_token_env: a.auth_token_env,
        max_running,
        idempotency_ttl,
    }))
}

/// A retention age: `7d` (days), or what [`crate::policy::parse_duration`]
/// reads (`12h`, `30m`, `0s`).
fn parse_retention(s: &str) -> Option<std::time::Duration> {
    match s.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => {
            days.parse::<u64>().ok()?.checked_mul(86_400).map(std::time::Duration::from_secs)
        }
        _ => crate::policy::parse_duration(s).ok(),
    }
}

/// `1048576`, `64KiB`, `1MiB` (also `KB`/`MB` as powers of 1000); at least 1.
fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: usize = n.parse().ok()?;
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        "GiB" => 1 << 30,
        "GB" => 1000 * 1000 * 1000,
        "TiB" => 1 << 40,
        "TB" => 1000 * 1000 * 1000 * 1000,
        _ => return None,
    };
    n.checked_mul(unit).filter(|&b| b > 0)
}

fn set<T>(slot: &mut Option<T>, flag: &str, value: T) -> Result<(), String> {
    match slot.replace(value) {
        None => Ok(()),
        Some(_) => Err(format!("'{flag}' given more than once")),
    }
}

/// The program's name for help and usage: the file name it was run as, else the workflow id.
pub(super) fn bin_name(arg0: Option<&OsString>, workflow_id: &str) -> String {
    arg0.map(Path::new)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| workflow_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Command, String> {
        parse_args(std::iter::once("prog").chain(list.iter().copied()).map(OsString::from).collect())
    }

    #[test]
    fn parses_flags_in_both_forms() {
        let Ok(Command::Run(a)) = args(&["--input={\"a\":1}", "--journal-dir", "j", "--correlation-id=c", "-q"]) else {
            panic!("not a run")
        };
        assert_eq!(a.input.as_deref(), Some("{\"a\":1}"));
        assert_eq!(a.journal_dir, Some(PathBuf::from("j")));
        assert_eq!(a.correlation_id.as_deref(), Some("c"));
        assert!(a.quiet);
    }

    #[test]
    fn rejects_bad_usage() {
        let err = |l: &[&str]| args(l).unwrap_err();
        assert_eq!(err(&["--frob"]), "unknown option '--frob'");
        assert_eq!(err(&["--input"]), "'--input' needs a value");
        assert_eq!(err(&["--journal-dir", "--quiet"]), "'--journal-dir' needs a value");
        assert_eq!(err(&["--quiet=yes"]), "'--quiet' takes no value");
        assert_eq!(err(&["--input", "{}", "--input", "{}"]), "'--input' given more than once");
        assert_eq!(
            err(&["--input", "{}", "--input-file", "x"]),
            "'--input' and '--input-file' cannot be used together"
        );
        assert_eq!(err(&["run"]), "unexpected argument 'run'");
        assert_eq!(err(&["--quiet", "serve"]), "unexpected argument 'serve'");
        assert_eq!(err(&["--addr", "127.0.0.1:1"]), "'--addr' is only for 'serve'");
        assert_eq!(err(&["serve", "--input", "{}"]), "'serve' and '--input' cannot be used together");
        assert_eq!(
            err(&["serve", "--addr", "localhost"]),
            "'--addr' needs an address like 127.0.0.1:8080, not 'localhost'"
        );
        assert!(err(&["serve", "--body-limit", "0"]).starts_with("'--body-limit' needs a size"));
        assert!(err(&["serve", "--wait-timeout", "soon"]).starts_with("'--wait-timeout' needs a duration"));
        let Ok(Command::Serve(s)) = args(&["serve", "--body-limit=64KiB", "--wait-timeout", "250ms", "-q"]) else {
            panic!("not serve")
        };
        assert_eq!(s.addr.to_string(), DEFAULT_ADDR);
        assert_eq!((s.body_limit, s.wait_timeout, s.quiet), (65536, std::time::Duration::from_millis(250), true));
        assert!(matches!(args(&["--input", "{}", "--help"]), Ok(Command::Help)));
        assert!(matches!(args(&["-V"]), Ok(Command::Version)));
    }

    #[test]
    fn connection_and_shutdown_flags_are_parsed_with_their_defaults() {
        let ms = std::time::Duration::from_millis;
        let err = |l: &[&str]| args(l).unwrap_err();
        let Ok(Command::Serve(s)) = args(&["serve"]) else { panic!("not serve") };
        assert_eq!(
            (s.header_timeout, s.body_timeout, s.idle_timeout, s.max_connections, s.shutdown_timeout),
            (
                DEFAULT_HEADER_TIMEOUT,
                DEFAULT_BODY_TIMEOUT,
                DEFAULT_IDLE_TIMEOUT,
                DEFAULT_MAX_CONNECTIONS,
                DEFAULT_SHUTDOWN_TIMEOUT
            )
        );
        let given = [
            "serve",
            "--header-timeout",
            "200ms",
            "--body-timeout=300ms",
            "--idle-timeout",
            "2m",
            "--max-connections",
            "2",
            "--shutdown-timeout",
            "0s",
        ];
        let Ok(Command::Serve(s)) = args(&given) else { panic!("not serve") };
        assert_eq!(
            (s.header_timeout, s.body_timeout, s.idle_timeout, s.max_connections, s.shutdown_timeout),
            (ms(200), ms(300), ms(120_000), 2, ms(0))
        );
        for flag in ["--header-timeout", "--body-timeout", "--idle-timeout"] {
            assert_eq!(
                err(&["serve", flag, "0s"]),
                format!("'{flag}' needs a duration like 10s or 500ms (more than zero), not '0s'")
            );
            assert!(err(&["serve", flag, "soon"]).starts_with(&format!("'{flag}' needs a duration")));
            assert_eq!(err(&[flag, "1s"]), format!("'{flag}' is only for 'serve'"));
        }
        assert_eq!(
            err(&["serve", "--shutdown-timeout", "later"]),
            "'--shutdown-timeout' needs a duration like 10s or 500ms, not 'later'"
        );
        for bad in ["0", "-1", "many"] {
            assert_eq!(
                err(&["serve", "--max-connections", bad]),
                format!("'--max-connections' needs a number of connections, 1 or more, not '{bad}'")
            );
        }
        assert_eq!(err(&["--max-connections", "2"]), "'--max-connections' is only for 'serve'");
    }

    #[test]
    fn parses_journal_retention() {
        use crate::journal::Retention;
        let serve = |l: &[&str]| match args(l) {
            Ok(Command::Serve(s)) => s.retention,
            other => panic!("{other:?}"),
        };
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(
            serve(&["serve"]),
            Retention { max_age: Some(DEFAULT_JOURNAL_RETENTION), max_bytes: Some(DEFAULT_JOURNAL_MAX_BYTES) }
        );
        assert_eq!(DEFAULT_JOURNAL_RETENTION, 7 * day);
        assert_eq!(
            serve(&["serve", "--journal-retention", "2d", "--journal-max-bytes=3GiB"]),
            Retention { max_age: Some(2 * day), max_bytes: Some(3 << 30) }
        );
        assert_eq!(
            serve(&["serve", "--journal-retention=0s", "--journal-max-bytes", "off"]),
            Retention { max_age: Some(std::time::Duration::ZERO), max_bytes: None }
        );
        assert_eq!(serve(&["serve", "--journal-retention", "off"]).max_age, None);
        let err = |l: &[&str]| args(l).unwrap_err();
        assert!(err(&["serve", "--journal-retention", "a week"]).starts_with("'--journal-retention' needs a duration"));
        assert!(err(&["serve", "--journal-max-bytes", "0"]).starts_with("'--journal-max-bytes' needs a size"));
        assert_eq!(err(&["--journal-max-bytes", "1GiB"]), "'--journal-max-bytes' is only for 'serve'");
    }
}
