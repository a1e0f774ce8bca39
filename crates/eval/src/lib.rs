//! Model evaluation (floor 4, see ARCHITECTURE.md): capability, safety knowledge, bias and
//! refusal suites, asked of any model aiplus serves.
//!
//! - [`suite`]: a suite is a directory with a `suite.toml` manifest and its data files, so
//!   operators add banks of their own; [`formats`] reads the data formats the public sets use.
//! - [`prompt`]: the one request each item becomes (multiple choice in lm-evaluation-harness's
//!   layout, with k shots from the suite's `dev` split).
//! - [`answer`]: what a response says: the option letter (from log-probabilities when the
//!   deployment gives them, else from the text by a documented rule) and whether it refuses.
//! - [`run`]: the runner, generic over a [`run::Model`] (the binary's HTTP client of the
//!   gateway, or a test double) and a [`cache::Cache`] keyed by the hash of (model, request), so
//!   an interrupted run resumes where it stopped and a re-run asks nothing again.
//! - [`report`] and [`stats`]: accuracy with its standard error per group and overall, BBQ's
//!   bias scores, refusal rates per risk class; [`chart`] draws a report as SVG.
//!
//! The crate knows no HTTP and reads no clock: the runner's only waits are its retry backoff.

pub mod answer;
pub mod cache;
pub mod chart;
pub mod compare;
pub mod double;
pub mod formats;
pub mod item;
pub mod judge;
pub mod pipeline;
pub mod profile;
pub mod prompt;
pub mod report;
pub mod run;
pub mod service;
pub mod stats;
pub mod suite;

pub use item::{Choice, Item, Task};
pub use report::Report;
pub use suite::Suite;

/// Why a suite could not be read or a run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A suite's manifest or data is wrong: the file, and what is wrong with it.
    #[error("{file}: {reason}")]
    Suite { file: String, reason: String },
    /// An option of the run is wrong: the option, and why.
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The request cache could not be read or written.
    #[error("cache {path}: {reason}")]
    Cache { path: String, reason: String },
    #[error("storage failed: {0}")]
    Store(#[from] store::StoreError),
    /// A stored record does not read back.
    #[error("stored record {id}: {reason}")]
    Corrupt { id: String, reason: String },
}

impl EvalError {
    pub(crate) fn suite(file: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        EvalError::Suite { file: file.to_string(), reason: reason.into() }
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        EvalError::Invalid { field: field.into(), reason: reason.into() }
    }
}
