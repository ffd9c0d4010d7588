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
