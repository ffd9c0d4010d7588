//! The runtime's fuzz targets (`fuzz/`) replayed on stable: their seeds and
//! every input that once crashed one (`fuzz/regressions/TARGET/`), through
//! the very checks the targets run.

#[path = "../../fuzz/checks/runtime.rs"]
mod checks;
#[path = "../../fuzz/checks/inputs.rs"]
mod inputs;

use inputs::inputs;

#[test]
fn program_input_seeds_and_regressions() {
    let seeds = inputs("corpus", "program_input");
    let accepted = seeds.iter().filter(|f| checks::program_input(&std::fs::read(f).unwrap())).count();
    assert!(accepted >= 2 && accepted < seeds.len(), "the seeds should hold accepted and rejected inputs");
    for file in inputs("regressions", "program_input") {
        checks::program_input(&std::fs::read(&file).unwrap());
    }
}

#[test]
fn journal_seeds_and_regressions() {
    let files = [inputs("corpus", "journal"), inputs("regressions", "journal")].concat();
    assert!(files.len() >= 3);
    for file in files {
        checks::journal(&std::fs::read(&file).unwrap());
    }
}
