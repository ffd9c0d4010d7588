//! Fuzz target `compile`: see `checks/compiler.rs` for what it checks.
#![no_main]

// Each target runs one of the checks the module shares with the tests.
#[allow(dead_code)]
#[path = "../checks/compiler.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = checks::compile_bytes(data);
});
