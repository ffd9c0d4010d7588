//! The orchestr8 workflow compiler: validation with located diagnostics,
//! and (later) code generation.

pub mod agents;
pub mod cli;
pub mod codegen;
pub mod diagnostics;
pub mod testfile;
pub mod types;
pub mod validate;
