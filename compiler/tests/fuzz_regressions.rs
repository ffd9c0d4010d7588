//! The compiler's fuzz targets (`fuzz/`) replayed on stable: their seeds and
//! every input that once crashed one (`fuzz/regressions/TARGET/`), through
//! the very checks the targets run.

#[path = "../../fuzz/checks/compiler.rs"]
mod checks;
#[path = "../../fuzz/checks/inputs.rs"]
mod inputs;

use inputs::inputs;

#[test]
fn validate_seeds_and_regressions() {
    let files = [inputs("corpus", "validate"), inputs("regressions", "validate")].concat();
    assert!(files.len() >= 5);
    for file in files {
        checks::validate_bytes(&std::fs::read(&file).unwrap());
    }
}

#[test]
fn compile_seeds_stay_valid_and_regressions_hold() {
    for seed in inputs("corpus", "compile") {
        // A seed that no longer validates would leave the target mutating invalid documents.
        assert!(checks::compile_bytes(&std::fs::read(&seed).unwrap()), "{} is no longer valid", seed.display());
    }
    for file in inputs("regressions", "compile") {
        checks::compile_bytes(&std::fs::read(&file).unwrap());
    }
}
