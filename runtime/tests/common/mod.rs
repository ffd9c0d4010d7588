//! Helpers shared by the test files (not a test target of its own).

pub mod http;
pub mod serve;
