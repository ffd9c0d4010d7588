//! The orchestr8 workflow compiler, a pipeline of stages, each run once:
//! parse and validate (`validate`, with located `diagnostics`; agent schemas
//! from `agents`), lower to the checked workflow (`checked`), and generate
//! a crate from it (`codegen`).

pub mod agents;
pub mod checked;
pub mod cli;
pub mod codegen;
pub mod diagnostics;
pub mod eval;
pub mod own_crates;
pub mod restate;
pub mod target;
pub mod testfile;
pub mod types;
pub mod validate;
