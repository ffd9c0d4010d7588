//! Fuzz target `journal`: see `checks/runtime.rs` for what it checks.
#![no_main]

// Each target runs one of the checks the module shares with the tests.
#[allow(dead_code)]
#[path = "../checks/runtime.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::journal(data);
});
