//! `orchestr8 eval`: the product spec's measurement protocol. Every task's
//! LLM agent answers every input with its prompt rendered as Markdown
//! (control) and as JSON (test), N times each; every answer is scored on
//! structure, constraints and completeness; the arms are compared pair by
//! pair with a signed-rank test and a bootstrap interval.
//!
//! - [`file`]: the eval file, checked with located diagnostics;
//! - [`pointer`]: JSON pointers with `*`, against schemas and answers;
//! - [`score`]: one answer's three scores;
//! - [`run`]: the calls, through the runtime as one-step executions;
//! - [`stats`]: the test, the interval, percentiles;
//! - [`report`]: the numbers as JSON, Markdown and a table; [`chart`]: the SVG.

pub mod chart;
pub mod file;
pub mod pointer;
pub mod report;
pub mod run;
pub mod score;
pub mod stats;
