//! What the runtime's features pull in: a production build leaves tokio's
//! test clock out (it puts a lock behind every clock read).

use std::process::Command;

/// The tokio features a build of the runtime with `features` enables.
fn tokio_features(features: &str) -> String {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "-p", "orchestr8-runtime", "-e", "normal,features", "-i", "tokio"])
        .args(["--features", features])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn only_the_test_features_enable_tokios_test_clock() {
    for production in ["", "server"] {
        let tree = tokio_features(production);
        assert!(tree.contains("tokio feature \"time\""), "{tree}");
        assert!(!tree.contains("test-util"), "features [{production}] enable tokio/test-util:\n{tree}");
    }
    for test in ["test-mode", "testing"] {
        assert!(tokio_features(test).contains("tokio feature \"test-util\""), "{test}");
    }
}
