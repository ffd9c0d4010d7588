//! The code generator on fixture workflows that cover every construct:
//! sequences, parallel blocks, a sequence inside a parallel block,
//! `onError: "continue"`, named and inline policies, interpolation,
//! whole-object references, optional fields, enums, arrays, nested objects,
//! and text built to break out of string literals and comments. Each
//! generated crate is a reviewed snapshot; each is built under `-D warnings`
//! and clippy in one shared target folder, run, and its output snapshotted.

use std::path::{Path, PathBuf};
use std::process::Command;

use orchestr8::agents::FromRustSource;
use orchestr8::codegen::{generate, write_files, CrateOptions};
use orchestr8::own_crates::OwnCrates;
use orchestr8::target::Target;
use orchestr8::validate::validate;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().canonicalize().unwrap()
}

fn cargo(args: &[&str], manifest: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO"))
        .args(args)
        .arg("--manifest-path")
        .arg(manifest)
        .args(extra)
        .env("CARGO_TARGET_DIR", repo().join("target/generated"))
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .unwrap()
}

#[test]
fn fixtures_generate_build_and_run() {
    let fixtures = repo().join("compiler/tests/codegen");
    let mut names: Vec<String> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.ends_with(".input.json"))
        .map(|n| n.trim_end_matches(".json").to_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    let journals = tempfile::tempdir().unwrap();
    for name in names {
        let text = std::fs::read_to_string(fixtures.join(format!("{name}.json"))).unwrap();
        let source = FromRustSource::new(&fixtures);
        let validation = validate(text.as_bytes(), &source);
        let workflow = validation.checked.unwrap_or_else(|| panic!("{name}: {:?}", validation.diagnostics));
        let out = repo().join("target/codegen-fixtures").join(&name);
        let options = CrateOptions {
            own: OwnCrates::checkout(repo()),
            out_dir: out.clone(),
            workflow_dir: fixtures.clone(),
            target: Target::Embedded,
        };
        let files = generate(&workflow, &options).unwrap();
        insta::assert_snapshot!(format!("{name}.rs"), files[Path::new("src/workflow.rs")]);

        std::fs::create_dir_all(&out).unwrap();
        write_files(&out, &files).unwrap();
        std::fs::copy(repo().join("Cargo.lock"), out.join("Cargo.lock")).unwrap();
        let manifest = out.join("Cargo.toml");
        let built = cargo(&["build", "--quiet", "--offline"], &manifest, &[]);
        assert!(built.status.success(), "{name}: build\n{}", String::from_utf8_lossy(&built.stderr));
        let linted = cargo(&["clippy", "--quiet", "--offline"], &manifest, &["--", "-D", "warnings"]);
        assert!(linted.status.success(), "{name}: clippy\n{}", String::from_utf8_lossy(&linted.stderr));

        let binary = repo().join("target/generated/debug").join(&workflow.id);
        let ran = Command::new(binary)
            .arg("--quiet")
            .arg("--input-file")
            .arg(fixtures.join(format!("{name}.input.json")))
            .arg("--journal-dir")
            .arg(journals.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&ran.stdout);
        assert_eq!(ran.status.code(), Some(0), "{name}: {}", String::from_utf8_lossy(&ran.stderr));
        insta::assert_snapshot!(format!("{name}.output"), stdout);
    }
}
