//! The CLI as a user gets it: installed with `cargo install --path compiler
//! --root DIR`, then used in a directory outside the repository: `init`,
//! `create agent`, `compile`, `cargo build` under `-D warnings`, a run on the
//! sample input, `inspect` of its journal, the agents' unit tests and
//! `orchestr8 test`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap()
}

/// The target directory the suite's generated crates share: the install
/// reuses what they built (the runtime and its dependencies).
fn shared_target() -> PathBuf {
    repo().join("target/generated")
}

/// Runs `command`, asserting it exits with `code`, and returns its output.
fn expect(command: &mut Command, code: i32) -> Output {
    let out = command.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{command:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn cargo(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(dir).env("CARGO_TARGET_DIR", shared_target()).env("RUSTFLAGS", "-D warnings");
    cmd
}

#[test]
fn installed_cli_inits_compiles_runs_and_tests_outside_the_repository() {
    let root = tempfile::tempdir().unwrap();
    // `--debug`: the suite's profile, so the dependencies built for the
    // generated crates serve; `--locked`: the workspace's lockfile, offline.
    expect(
        cargo(&repo())
            .args(["install", "--quiet", "--offline", "--locked", "--debug", "--path", "compiler", "--root"])
            .arg(root.path()),
        0,
    );
    let installed = root.path().join("bin").join(format!("orchestr8{}", std::env::consts::EXE_SUFFIX));
    assert!(installed.is_file(), "no {}", installed.display());

    let work = tempfile::tempdir().unwrap();
    assert!(!work.path().canonicalize().unwrap().starts_with(repo()), "the project must be outside the repository");
    let orchestr8 = |dir: &Path| {
        let mut cmd = Command::new(&installed);
        cmd.current_dir(dir).env("NO_COLOR", "1").env("CARGO_TARGET_DIR", shared_target());
        cmd
    };
    let stderr = |out: Output| String::from_utf8(out.stderr).unwrap();

    expect(orchestr8(work.path()).args(["init", "install-e2e"]), 0);
    let dir = work.path().join("install-e2e");
    // Built from a checkout, it depends on that checkout's crates by path,
    // with the exact version a release would use.
    let manifest = std::fs::read_to_string(dir.join("agents/Cargo.toml")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let runtime =
        format!("orchestr8-runtime = {{ version = \"={version}\", path = \"{}\" }}", repo().join("runtime").display());
    assert!(manifest.contains(&runtime), "{manifest}");

    expect(orchestr8(&dir).args(["create", "agent", "summarize"]), 0);
    let compiled = stderr(expect(orchestr8(&dir).args(["compile", "workflow.json"]), 0));
    assert!(compiled.contains("warning[W0320]: agent `summarize` is never used"), "{compiled}");
    std::fs::copy(repo().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    expect(cargo(&dir).args(["build", "--quiet", "--offline"]), 0);

    let journal = tempfile::tempdir().unwrap();
    let out = expect(
        Command::new(shared_target().join("debug/install-e2e"))
            .args(["--input-file", "input.json", "--journal-dir"])
            .arg(journal.path())
            .current_dir(&dir),
        0,
    );
    let output: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output, serde_json::json!({ "greeting": "Hello, Ada Lovelace!" }));
    // The execution's journal reads back.
    let journal_file = std::fs::read_dir(journal.path()).unwrap().next().unwrap().unwrap().path();
    let timeline = String::from_utf8(expect(orchestr8(&dir).arg("inspect").arg(&journal_file), 0).stdout).unwrap();
    assert!(timeline.contains("normalize") && timeline.contains("greet"), "{timeline}");

    // The agents' unit tests: the two of init and the one of create.
    let tests = expect(cargo(&dir).args(["test", "--quiet", "--offline", "--manifest-path", "agents/Cargo.toml"]), 0);
    let tests = String::from_utf8(tests.stdout).unwrap();
    assert!(tests.contains("test result: ok. 3 passed"), "{tests}");

    // And the cases of workflow.test.json, built where the rest was.
    let build = dir.join(".orchestr8/build/workflow");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::copy(repo().join("Cargo.lock"), build.join("Cargo.lock")).unwrap();
    let out =
        orchestr8(&dir).arg("test").env("RUSTFLAGS", "-D warnings").env("CARGO_NET_OFFLINE", "true").output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("2 passed, 0 failed"), "{report}");
}

/// What each published crate holds (its `include` list) covers every file
/// its sources embed with a literal `include_str!`/`include_bytes!` path:
/// the mistake `cargo publish --dry-run` finds only by building the package.
#[test]
fn published_crates_hold_the_files_their_sources_embed() {
    let literal = regex::Regex::new(r#"include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)"#).unwrap();
    for package in ["orchestr8", "orchestr8-runtime", "orchestr8-macros", "orchestr8-agent-decl", "orchestr8-schema"] {
        let out = expect(
            Command::new(env!("CARGO"))
                .args(["package", "--list", "--offline", "--allow-dirty", "-p", package])
                .current_dir(repo()),
            0,
        );
        let listed: std::collections::BTreeSet<PathBuf> =
            String::from_utf8(out.stdout).unwrap().lines().map(PathBuf::from).collect();
        assert!(listed.contains(Path::new("README.md")), "{package} has no README: {listed:?}");
        let dir = repo().join(package_dir(package));
        let mut embedded = 0;
        for source in listed.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
            let text = std::fs::read_to_string(dir.join(source)).unwrap();
            for capture in literal.captures_iter(&text) {
                let target = normalize(&source.parent().unwrap().join(&capture[1]));
                assert!(
                    listed.contains(&target),
                    "{package}: {} embeds {}, which the package leaves out (its `include` list)",
                    source.display(),
                    target.display()
                );
                embedded += 1;
            }
        }
        if package == "orchestr8" {
            assert!(embedded >= 8, "the project templates are embedded: {embedded}");
        }
    }
}

fn package_dir(package: &str) -> &'static str {
    match package {
        "orchestr8" => "compiler",
        "orchestr8-runtime" => "runtime",
        "orchestr8-macros" => "macros",
        "orchestr8-agent-decl" => "macros/decl",
        _ => "schema",
    }
}

/// `path` with its `..` and `.` components resolved, without the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
