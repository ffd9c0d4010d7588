//! `orchestr8 init` and `orchestr8 create agent`: the files written (as
//! snapshots, with absolute paths normalised), the in-place edit of
//! workflow.json, every error path. A project made by both that compiles, builds, runs and passes its tests,
//! with the CLI installed by `cargo install`, is in `install.rs`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn orchestr8(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("orchestr8").unwrap();
    cmd.env("NO_COLOR", "1").current_dir(dir);
    cmd
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap()
}

/// Runs `orchestr8 ARGS` in `dir`, checks the exit code and returns stderr
/// (stdout must be empty: these commands only report progress).
fn run(dir: &Path, args: &[&str], code: i32) -> String {
    let out = orchestr8(dir).args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "{args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.is_empty(), "{args:?}: {stdout}");
    stderr
}

/// `text` without the machine's absolute paths.
fn normalise(text: &str, tmp: &Path) -> String {
    text.replace(&tmp.canonicalize().unwrap().display().to_string(), "[TMP]")
        .replace(&tmp.display().to_string(), "[TMP]")
        .replace(&repo().display().to_string(), "[ORCHESTR8]")
}

/// Every file under `dir`, sorted, as `path -> content`.
fn files(dir: &Path) -> Vec<(String, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A project made by `init NAME` in a fresh temporary folder.
fn project(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    run(tmp.path(), &["init", name], 0);
    let dir = tmp.path().join(name);
    (tmp, dir)
}

fn unified_diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(2).header("before", "after").to_string()
}

/// `new` is `old` with one stretch of text inserted: nothing else moved.
fn assert_only_inserted(old: &str, new: &str) -> String {
    let prefix = old.bytes().zip(new.bytes()).take_while(|(a, b)| a == b).count();
    let suffix = old.len() - prefix;
    assert!(new.len() > old.len());
    assert_eq!(&new[..prefix], &old[..prefix]);
    assert_eq!(&new[new.len() - suffix..], &old[prefix..], "the text after the insertion is unchanged");
    new[prefix..new.len() - suffix].to_owned()
}

// init

#[test]
fn init_writes_a_project() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = run(tmp.path(), &["init", "my-flow"], 0);
    insta::assert_snapshot!("init_stderr", normalise(&stderr, tmp.path()));
    let dir = tmp.path().join("my-flow");
    let mut all = String::new();
    for (path, content) in files(&dir) {
        if path == "workflow.schema.json" {
            assert_eq!(content, orchestr8_schema::json_schema_text(), "the published schema");
            continue;
        }
        all.push_str(&format!("==> {path} <==\n{}\n", normalise(&content, tmp.path())));
    }
    insta::assert_snapshot!("init_files", all);
    // The agent crate depends on this repository's crates, by absolute path.
    let manifest = std::fs::read_to_string(dir.join("agents/Cargo.toml")).unwrap();
    assert!(manifest.contains(&format!("path = \"{}\"", repo().join("runtime").display())), "{manifest}");
}

#[test]
fn init_validates_without_warnings() {
    let (_tmp, dir) = project("clean");
    assert_eq!(run(&dir, &["validate", "workflow.json"], 0), "workflow.json: valid\n");
}

#[test]
fn init_path_and_orchestr8_path() {
    let tmp = tempfile::tempdir().unwrap();
    fake_checkout(&tmp.path().join("o8"));
    let version = env!("CARGO_PKG_VERSION");
    // An existing but empty directory is fine.
    std::fs::create_dir_all(tmp.path().join("deep/place")).unwrap();
    run(tmp.path(), &["init", "x1", "--path", "deep/place", "--orchestr8-path", "o8"], 0);
    let manifest = std::fs::read_to_string(tmp.path().join("deep/place/agents/Cargo.toml")).unwrap();
    let manifest = normalise(&manifest, tmp.path());
    assert!(manifest.contains("name = \"x1_agents\""), "{manifest}");
    // The exact version too: the same manifest works against a release.
    let runtime = format!("orchestr8-runtime = {{ version = \"={version}\", path = \"[TMP]/o8/runtime\" }}");
    assert!(manifest.contains(&runtime), "{manifest}");
    let macros = format!("orchestr8-macros = {{ version = \"={version}\", path = \"[TMP]/o8/macros\" }}");
    assert!(manifest.contains(&macros), "{manifest}");
    let workflow = std::fs::read_to_string(tmp.path().join("deep/place/workflow.json")).unwrap();
    assert!(workflow.contains("\"id\": \"x1\""), "{workflow}");
}

#[test]
fn init_refuses_bad_names() {
    let tmp = tempfile::tempdir().unwrap();
    let mut all = String::new();
    for name in ["Hello", "1st", "my_flow", "a.b", "héllo", &"a".repeat(65)] {
        all.push_str(&run(tmp.path(), &["init", name], 2));
    }
    insta::assert_snapshot!("init_bad_names", all);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "nothing was written");
}

#[test]
fn init_refuses_a_non_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/notes.txt"), "mine").unwrap();
    let stderr = run(tmp.path(), &["init", "taken"], 2);
    assert_eq!(
        stderr,
        "error: `taken` is not empty; init only writes into a new or empty directory (pick another --path)\n"
    );
    let stderr = run(tmp.path(), &["init", "other", "--path", "taken"], 2);
    assert!(stderr.contains("`taken` is not empty"), "{stderr}");
    assert_eq!(files(&tmp.path().join("taken")), [("notes.txt".to_owned(), "mine".to_owned())]);
}

/// A fake checkout of this version: what `--orchestr8-path` checks.
fn fake_checkout(dir: &Path) {
    for krate in ["runtime", "macros"] {
        std::fs::create_dir_all(dir.join(krate)).unwrap();
        std::fs::write(dir.join(krate).join("Cargo.toml"), "").unwrap();
    }
    let version = env!("CARGO_PKG_VERSION");
    std::fs::write(dir.join("Cargo.toml"), format!("[workspace.package]\nversion = \"{version}\"\n")).unwrap();
}

/// A project made with `init --orchestr8-path` compiles against the runtime
/// its agent crate uses, without being told again: one build cannot hold two
/// runtimes of one version (cargo's "package collision in the lockfile").
#[test]
fn compile_takes_the_runtime_the_agent_crates_take() {
    let tmp = tempfile::tempdir().unwrap();
    fake_checkout(&tmp.path().join("o8"));
    run(tmp.path(), &["init", "along", "--orchestr8-path", "o8"], 0);
    let dir = tmp.path().join("along");
    run(&dir, &["compile", "workflow.json"], 0);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        manifest.contains(&format!("orchestr8-runtime = {{ version = \"={version}\", path = \"../o8/runtime\" }}")),
        "{manifest}"
    );
    // Told another checkout, it says why it refuses, and writes nothing new.
    let stderr = run(&dir, &["compile", "workflow.json", "--orchestr8-path", repo().to_str().unwrap()], 2);
    assert!(
        stderr.contains("but the agent crate") && stderr.contains("takes orchestr8-runtime from the checkout at"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("Cargo.toml")).unwrap(), manifest);
    // Its checkout moved on to another version: the fix is in the agents'
    // manifest, and the error says so (no other --orchestr8-path could help).
    std::fs::write(tmp.path().join("o8/Cargo.toml"), "[workspace.package]\nversion = \"0.0.9\"\n").unwrap();
    let stderr = run(&dir, &["compile", "workflow.json"], 2);
    assert!(stderr.contains("is orchestr8 0.0.9"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "point its orchestr8-runtime and orchestr8-macros dependencies at a checkout of orchestr8 {version}"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("pass another --orchestr8-path"), "{stderr}");
    // Agents taking the registry's runtime: the crate does too, and says so.
    let agents = dir.join("agents/Cargo.toml");
    let registry = format!(
        "orchestr8-runtime = {{ version = \"={version}\" }}\norchestr8-macros = {{ version = \"={version}\" }}\n"
    );
    let text = std::fs::read_to_string(&agents).unwrap();
    let text: String = text.lines().filter(|l| !l.starts_with("orchestr8-")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&agents, text.replace("[dependencies]\n", &format!("[dependencies]\n{registry}"))).unwrap();
    let stderr = run(&dir, &["compile", "workflow.json"], 0);
    assert!(stderr.contains("note: orchestr8-runtime and orchestr8-macros"), "{stderr}");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains(&format!("orchestr8-runtime = {{ version = \"={version}\" }}")), "{manifest}");
}

#[test]
fn init_refuses_an_orchestr8_path_without_the_crates() {
    let tmp = tempfile::tempdir().unwrap();
    let stderr = run(tmp.path(), &["init", "x", "--orchestr8-path", "."], 2);
    assert!(stderr.contains("is not an orchestr8 checkout"), "{stderr}");
    // A checkout of another version: its runtime is not the one this
    // orchestr8 generates code for.
    for krate in ["runtime", "macros"] {
        std::fs::create_dir_all(tmp.path().join("old").join(krate)).unwrap();
        std::fs::write(tmp.path().join("old").join(krate).join("Cargo.toml"), "").unwrap();
    }
    std::fs::write(tmp.path().join("old/Cargo.toml"), "[workspace.package]\nversion = \"0.0.1\"\n").unwrap();
    let stderr = run(tmp.path(), &["init", "x", "--orchestr8-path", "old"], 2);
    assert!(stderr.contains("is orchestr8 0.0.1, and this orchestr8 is"), "{stderr}");
    let stderr = run(tmp.path(), &["init", "x", "--orchestr8-path", "nowhere"], 2);
    assert!(stderr.contains("cannot find `nowhere`"), "{stderr}");
    assert!(!tmp.path().join("x").exists());
}

// create agent

#[test]
fn create_agent_registers_it_and_keeps_the_layout() {
    let (tmp, dir) = project("grow");
    let before = std::fs::read_to_string(dir.join("workflow.json")).unwrap();
    let lib_before = std::fs::read_to_string(dir.join("agents/src/lib.rs")).unwrap();
    let stderr = run(&dir, &["create", "agent", "summarize_text"], 0);
    insta::assert_snapshot!("create_agent_stderr", normalise(&stderr, tmp.path()));
    let after = std::fs::read_to_string(dir.join("workflow.json")).unwrap();
    assert_only_inserted(&before, &after);
    insta::assert_snapshot!("create_agent_workflow_diff", unified_diff(&before, &after));
    let lib_after = std::fs::read_to_string(dir.join("agents/src/lib.rs")).unwrap();
    let appended = lib_after.strip_prefix(&lib_before).expect("lib.rs is only appended to");
    insta::assert_snapshot!("create_agent_lib_rs_appended", appended);
    // The new agent is unused until a step calls it, which validate says.
    let stderr = run(&dir, &["validate", "workflow.json"], 0);
    assert!(stderr.contains("warning[W0320]: agent `summarize_text` is never used"), "{stderr}");
    assert!(
        stderr.ends_with(
            "workflow.json: valid, with 1 warning\nFor more information about this warning, try `orchestr8 explain W0320`.\n"
        ),
        "{stderr}"
    );
}

/// A hand-written project: `path` names the crate's folder.
fn hand_written(workflow: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("crates/mine/src")).unwrap();
    std::fs::write(tmp.path().join("crates/mine/src/lib.rs"), "//! Mine.\n").unwrap();
    std::fs::write(tmp.path().join("crates/mine/Cargo.toml"), "[package]\nname = \"mine\"\n").unwrap();
    std::fs::write(tmp.path().join("flow.json"), workflow).unwrap();
    tmp
}

#[test]
fn create_agent_follows_the_users_indentation() {
    // Four spaces, tabs for the agent's fields, a key order of its own, no final newline.
    let workflow = "{\n    \"steps\": [{\"id\": \"s\", \"agent\": \"first\"}],\n    \"agents\": {\n        \"first\": {\n\t\t\t\"path\": \"crates/mine\",\n\t\t\t\"kind\": \"rust\",\n\t\t\t\"function\": \"first\",\n\t\t\t\"crate\": \"mine\"\n        }\n    },\n    \"schemaVersion\": \"1.0.0\"\n}";
    let tmp = hand_written(workflow);
    run(tmp.path(), &["create", "agent", "second", "--workflow", "flow.json"], 0);
    let after = std::fs::read_to_string(tmp.path().join("flow.json")).unwrap();
    let inserted = assert_only_inserted(workflow, &after);
    insta::assert_snapshot!("create_agent_indentation", inserted);
    let lib = std::fs::read_to_string(tmp.path().join("crates/mine/src/lib.rs")).unwrap();
    assert!(lib.starts_with("//! Mine.\n\n#[orchestr8_macros::agent(\n    id = \"second\","), "{lib}");
}

#[test]
fn create_agent_keeps_compact_agents_compact() {
    let workflow = "{\"agents\": {\"first\": {\"kind\": \"rust\", \"crate\": \"mine\", \"path\": \"crates/mine\", \"function\": \"first\"}}, \"steps\": []}\n";
    let tmp = hand_written(workflow);
    run(tmp.path(), &["create", "agent", "second", "--workflow", "flow.json"], 0);
    let after = std::fs::read_to_string(tmp.path().join("flow.json")).unwrap();
    insta::assert_snapshot!("create_agent_compact", assert_only_inserted(workflow, &after));
}

#[test]
fn create_agent_fills_empty_agents() {
    let (_tmp, dir) = project("empty");
    let workflow = "{\n  \"schemaVersion\": \"1.0.0\",\n  \"agents\": {},\n  \"steps\": []\n}\n";
    std::fs::write(dir.join("workflow.json"), workflow).unwrap();
    run(&dir, &["create", "agent", "first"], 0);
    let after = std::fs::read_to_string(dir.join("workflow.json")).unwrap();
    insta::assert_snapshot!("create_agent_empty_agents_diff", unified_diff(workflow, &after));
}

/// Runs a `create agent` that must fail, and checks that nothing changed.
fn create_fails(dir: &Path, args: &[&str]) -> String {
    let before = files(dir);
    let mut full = vec!["create", "agent"];
    full.extend_from_slice(args);
    let stderr = run(dir, &full, 2);
    assert_eq!(files(dir), before, "{args:?}: nothing written, no temporary file left");
    stderr
}

#[test]
fn create_agent_errors() {
    let (tmp, dir) = project("errs");
    let mut all = String::new();
    for args in [
        &["greet"][..],
        &["normalize"],
        &["Summarize"],
        &["summarize-text"],
        &["2fast"],
        &["loop"],
        &["self"],
        &["x", "--workflow", "missing.json"],
        &["input", "--workflow", "input.json"],
        &["x", "--workflow", "README.md"],
    ] {
        all.push_str(&format!("$ create agent {}\n{}\n", args.join(" "), create_fails(&dir, args)));
    }
    // lib.rs is gone.
    std::fs::rename(dir.join("agents/src/lib.rs"), dir.join("agents/src/main.rs")).unwrap();
    all.push_str(&format!("$ create agent x (no lib.rs)\n{}\n", create_fails(&dir, &["x"])));
    // A function of that name exists already.
    std::fs::rename(dir.join("agents/src/main.rs"), dir.join("agents/src/lib.rs")).unwrap();
    let lib = std::fs::read_to_string(dir.join("agents/src/lib.rs")).unwrap();
    std::fs::write(dir.join("agents/src/lib.rs"), format!("{lib}\nfn helper() {{}}\n")).unwrap();
    all.push_str(&format!("$ create agent helper\n{}\n", create_fails(&dir, &["helper"])));
    // No Rust agent and no agents/ crate.
    let empty = tmp.path().join("bare");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("workflow.json"), "{\"agents\": {}, \"steps\": []}").unwrap();
    all.push_str(&format!("$ create agent x (no agent crate)\n{}\n", create_fails(&empty, &["x"])));
    // Run outside a project.
    all.push_str(&format!("$ create agent x (no workflow.json)\n{}", create_fails(tmp.path(), &["x"])));
    insta::assert_snapshot!("create_agent_errors", normalise(&all, tmp.path()));
}

// both

#[test]
fn help_has_examples() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["init", "--help"][..], &["create", "agent", "--help"], &["create", "--help"]] {
        let out = orchestr8(tmp.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Example") && help.contains(&format!("orchestr8 {} ", args[0])), "{help}");
    }
}
