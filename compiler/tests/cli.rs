//! The `orchestr8` binary: exit codes, output streams and formats.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn orchestr8() -> Command {
    let mut cmd = Command::cargo_bin("orchestr8").unwrap();
    cmd.env("NO_COLOR", "1").current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(cmd.output().unwrap().stdout).unwrap()
}

#[test]
fn valid_workflow_exits_zero() {
    let out = orchestr8().args(["validate", "--declared-only", "tests/valid-fixture.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "tests/valid-fixture.json: valid\n");
    assert!(out.stdout.is_empty());
}

#[test]
fn invalid_workflow_exits_one_with_located_errors_on_stderr() {
    let out =
        orchestr8().args(["validate", "--declared-only", "tests/invalid/types-no-such-field.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    insta::assert_snapshot!(stderr);
}

#[test]
fn json_format_prints_one_object_per_diagnostic_on_stdout() {
    let out = orchestr8()
        .args([
            "validate",
            "--declared-only",
            "--format",
            "json",
            "tests/invalid/graph-unknown-agent.json",
            "tests/valid-fixture.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["code"], "E0303");
    assert_eq!(lines[0]["line"], 133);
    assert_eq!(lines[0]["pointer"], "/steps/0/agent");
}

#[test]
fn warnings_alone_do_not_fail() {
    let dir = tempfile::tempdir().unwrap();
    let text = include_str!("valid-fixture.json").replacen("\"agents\": {", "\"agents\": {\n    \"spare\": {\"kind\": \"rust\", \"crate\": \"x\", \"path\": \"x\", \"function\": \"f\", \"input\": {}, \"output\": {}},", 1);
    let path = dir.path().join("w.json");
    std::fs::write(&path, text).unwrap();
    let out = orchestr8().args(["validate", "--declared-only"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("warning[W0320]: agent `spare` is never used"), "{stderr}");
    assert!(stderr.contains("valid, with 1 warning"), "{stderr}");
}

#[test]
fn missing_file_and_directory_exit_two() {
    let out = orchestr8().args(["validate", "does-not-exist.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read `does-not-exist.json`"));
    let out = orchestr8().args(["validate", "tests"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a directory"));
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(orchestr8().arg("validate").output().unwrap().status.code(), Some(2));
    assert_eq!(orchestr8().args(["validate", "--format", "xml", "x.json"]).output().unwrap().status.code(), Some(2));
    assert_eq!(orchestr8().arg("frobnicate").output().unwrap().status.code(), Some(2));
}

#[test]
fn schema_prints_the_published_schema() {
    let printed = stdout_of(orchestr8().arg("schema"));
    let published = std::fs::read_to_string(repo().join("schema/workflow.schema.json")).unwrap();
    assert_eq!(printed, published);
}

#[test]
fn the_examples_validate() {
    let mut count = 0;
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let workflow = entry.unwrap().path().join("workflow.json");
        if workflow.exists() {
            let out = orchestr8().arg("validate").arg(&workflow).output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{}: {}", workflow.display(), String::from_utf8_lossy(&out.stderr));
            assert!(
                !String::from_utf8_lossy(&out.stderr).contains("warning"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            count += 1;
        }
    }
    assert!(count >= 3, "expected at least three examples, found {count}");
}

#[test]
fn help_shows_examples() {
    let help = stdout_of(orchestr8().args(["validate", "--help"]));
    assert!(help.contains("Examples:"), "{help}");
}

/// A copy of the hello example in a temporary folder, to compile into.
fn hello_project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let example = repo().join("examples/hello");
    std::fs::copy(example.join("workflow.json"), dir.path().join("workflow.json")).unwrap();
    let agents = dir.path().join("agents/src");
    std::fs::create_dir_all(&agents).unwrap();
    let manifest = std::fs::read_to_string(example.join("agents/Cargo.toml")).unwrap();
    let runtime = repo().join("runtime");
    let macros = repo().join("macros");
    let manifest = manifest
        .replace("../../../runtime", runtime.to_str().unwrap())
        .replace("../../../macros", macros.to_str().unwrap());
    std::fs::write(dir.path().join("agents/Cargo.toml"), manifest).unwrap();
    std::fs::copy(example.join("agents/src/lib.rs"), agents.join("lib.rs")).unwrap();
    dir
}

#[test]
fn compile_writes_the_crate_then_rewrites_nothing_when_nothing_changed() {
    let project = hello_project();
    let workflow = project.path().join("workflow.json");
    let out = orchestr8().arg("compile").arg(&workflow).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 files written, 0 unchanged"));
    let main_rs = project.path().join("src/main.rs");
    let written = std::fs::metadata(&main_rs).unwrap().modified().unwrap();
    let manifest = std::fs::read_to_string(project.path().join("Cargo.toml")).unwrap();
    assert!(manifest.starts_with("# @generated by orchestr8"), "{manifest}");
    assert!(manifest.contains("hello_agents = { path = \"agents\" }"), "{manifest}");

    let out = orchestr8().arg("compile").arg(&workflow).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 files written, 3 unchanged"));
    assert_eq!(std::fs::metadata(&main_rs).unwrap().modified().unwrap(), written, "an unchanged file is not touched");
}

#[test]
fn compile_never_overwrites_a_file_it_did_not_write() {
    let project = hello_project();
    let mine = "[package]\nname = \"mine\"\n";
    std::fs::write(project.path().join("Cargo.toml"), mine).unwrap();
    let out = orchestr8().arg("compile").arg(project.path().join("workflow.json")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Cargo.toml") && stderr.contains("was not generated by orchestr8"), "{stderr}");
    assert_eq!(std::fs::read_to_string(project.path().join("Cargo.toml")).unwrap(), mine);
    assert!(!project.path().join("src").exists(), "nothing is written when one file is refused");
}

#[test]
fn compile_writes_nothing_for_an_invalid_workflow() {
    let project = hello_project();
    let workflow = project.path().join("workflow.json");
    let text = std::fs::read_to_string(&workflow).unwrap().replace("${input.name}", "${input.nmae}");
    std::fs::write(&workflow, text).unwrap();
    let out = orchestr8().arg("compile").arg(&workflow).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error[E0401]") && stderr.contains("nothing was written"), "{stderr}");
    assert!(!project.path().join("Cargo.toml").exists());
    assert!(!project.path().join("src").exists());
}

#[test]
fn run_compiles_builds_and_runs_passing_the_exit_code_through() {
    let _generated = generated_lock();
    let project = hello_project();
    let workflow = project.path().join("workflow.json");
    let run = |input: &str| {
        orchestr8()
            .args(["run"])
            .arg(&workflow)
            .args(["--quiet", "--input", input, "--journal-dir"])
            .arg(project.path().join("journal"))
            // Shared with the other tests that build generated crates (same flags, same target).
            .env("CARGO_TARGET_DIR", repo().join("target/generated"))
            .env("RUSTFLAGS", "-D warnings")
            .output()
            .unwrap()
    };
    let out = run(r#"{"name": "Ada"}"#);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["greeting"], "Hello, Ada!");
    assert!(project.path().join(".orchestr8/build/workflow/Cargo.toml").exists());
    let out = run(r#"{"name": 5}"#);
    assert_eq!(out.status.code(), Some(2), "bad input: the program's exit code");
    let out = run(r#"{"name": " "}"#);
    assert_eq!(out.status.code(), Some(1), "a failed agent: the program's exit code");
}

#[test]
fn top_level_help_lists_every_command() {
    let help = stdout_of(orchestr8().arg("--help"));
    insta::assert_snapshot!(help);
}

#[test]
fn compile_reports_what_it_wrote() {
    let project = hello_project();
    let out = orchestr8().arg("compile").arg(project.path().join("workflow.json")).output().unwrap();
    let dir = project.path().canonicalize().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(dir.to_str().unwrap(), "[PROJECT]");
    insta::assert_snapshot!(stderr);
}

#[test]
fn compile_into_a_file_is_refused_clearly() {
    let project = hello_project();
    let blocker = project.path().join("out");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = orchestr8()
        .arg("compile")
        .arg(project.path().join("workflow.json"))
        .arg("--out")
        .arg(&blocker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot create") && stderr.contains("out"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "not a directory", "the file is left as it was");
}

/// Generated crates share one target directory, and every `hello` project
/// builds `debug/hello` there, with or without its test mode: a test that
/// builds and runs one holds this, so no other replaces its binary meanwhile.
static GENERATED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn generated_lock() -> std::sync::MutexGuard<'static, ()> {
    GENERATED.lock().unwrap_or_else(|e| e.into_inner())
}

/// `orchestr8` with the shared build settings of the tests that build generated crates.
fn orchestr8_building() -> Command {
    let mut cmd = orchestr8();
    cmd.env("CARGO_TARGET_DIR", repo().join("target/generated")).env("RUSTFLAGS", "-D warnings");
    cmd
}

#[test]
fn test_reports_a_failing_case_with_a_diff_and_exits_one() {
    let _generated = generated_lock();
    let project = hello_project();
    let cases = r#"{"cases": [
        {"name": "right", "input": {"name": "Ada"}, "expect": {"output": {"greeting": "Hello, Ada!"}}},
        {"name": "wrong", "input": {"name": "Ada"}, "expect": {"output": {"greeting": "Goodbye, Ada!"}}},
        {"name": "retried", "input": {"name": "Ada"},
         "mocks": {"greet": {"1": {"error": "busy"}, "2": {"output": {"greeting": "Hi"}}}},
         "expect": {"output": {"greeting": "Hi"}, "attempts": {"greet": 3}}}
    ]}"#;
    std::fs::write(project.path().join("workflow.test.json"), cases).unwrap();
    let out = orchestr8_building().arg("test").current_dir(project.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("case right ... ok"), "{stdout}");
    assert!(stdout.contains("case wrong ... FAILED"), "{stdout}");
    assert!(stdout.contains("Goodbye, Ada!") && stdout.contains("Hello, Ada!"), "the diff shows both: {stdout}");
    assert!(stdout.contains("case retried ... FAILED"), "2 attempts were made, 3 expected: {stdout}");
    assert_eq!(stdout.lines().last(), Some("1 passed, 2 failed"), "{stdout}");
}

#[test]
fn run_reports_an_agent_crate_that_does_not_build() {
    let _generated = generated_lock();
    let project = hello_project();
    let lib = project.path().join("agents/src/lib.rs");
    let broken = std::fs::read_to_string(&lib).unwrap().replace("greeting(name)", "greeting(name, 1)");
    std::fs::write(&lib, broken).unwrap();
    let out = orchestr8_building()
        .args(["run"])
        .arg(project.path().join("workflow.json"))
        .args(["--input", r#"{"name": "Ada"}"#])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error[E0061]"), "cargo's own error is shown: {stderr}");
    assert!(stderr.contains("did not build"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// A minified document (one line) of `steps` steps that each call an undeclared agent.
fn many_errors(steps: usize) -> tempfile::NamedTempFile {
    let steps: Vec<String> = (0..steps).map(|i| format!(r#"{{"id":"s{i}","agent":"missing","input":{{}}}}"#)).collect();
    let text = format!(
        r#"{{"schemaVersion":"1.0.0","metadata":{{"id":"many","version":"1.0.0"}},"input":{{"type":"object"}},"agents":{{"unused":{{"kind":"rust","crate":"x","path":"x","function":"f","input":{{"type":"object"}},"output":{{"type":"object"}}}}}},"steps":[{}],"output":{{}}}}"#,
        steps.join(",")
    );
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

#[test]
fn human_output_stops_after_max_errors_and_counts_the_rest() {
    let file = many_errors(2_000);
    let path = file.path().to_str().unwrap();
    let errors_shown = |stderr: &str| stderr.lines().filter(|l| l.starts_with("error[")).count();

    let out = orchestr8().args(["validate", "--declared-only", path]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(errors_shown(&stderr), 20, "the default limit");
    assert!(stderr.contains("note: 1980 more errors and 0 more warnings not shown"), "{stderr}");
    assert!(
        stderr.ends_with(": invalid, 2000 errors and 1 warning\nFor more information about this error, try `orchestr8 explain E0303`.\n"),
        "the summary counts all, then the index's hint: {stderr}"
    );

    let out = orchestr8().args(["validate", "--declared-only", "--max-errors", "3", path]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(errors_shown(&stderr), 3);
    assert!(stderr.contains("1997 more errors"), "{stderr}");

    let out = orchestr8().args(["validate", "--declared-only", "--max-errors", "0", path]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(errors_shown(&stderr), 2_000);
    assert!(!stderr.contains("not shown"));
    // Every caret line is cut to a window of the one long line.
    assert!(stderr.lines().all(|l| l.chars().count() < 200), "a line of the document was printed whole");

    let out = orchestr8().args(["validate", "--declared-only", "--format", "json", path]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2_001, "JSON lists them all");

    let out = orchestr8().args(["compile", "--max-errors", "1", path]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(errors_shown(&String::from_utf8_lossy(&out.stderr)), 1);
}
