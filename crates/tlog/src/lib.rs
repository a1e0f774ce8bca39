//! The transparency log (floor 2 of the house, see ARCHITECTURE.md): the record of governance
//! facts that nobody, the operator included, can rewrite quietly.
//!
//! - [`hash`]: RFC 9162 / RFC 6962 hashing over SHA-256 (leaves prefixed 0x00, nodes 0x01).
//! - [`tree`]: the tree in memory, built by appending leaves; roots at any size, inclusion and
//!   consistency proofs.
//! - [`proof`]: verifying those proofs (and the subtree proofs of the Merkle Tree Certificates
//!   draft), with no tree at hand: what an auditor runs.
//! - [`note`]: C2SP signed notes with Ed25519 keys; [`checkpoint`]: C2SP tlog-checkpoint bodies.
//! - [`tiles`]: the C2SP tlog-tiles layout, so anyone can mirror the log with standard tools.
//! - [`proofs`]: the proof documents the API and CLI hand out, and their offline check.
//! - [`log`]: the service over the store: appends, each with a signed checkpoint; proofs and
//!   tiles; and the start-up check that refuses a store whose history was rewritten.
//!
//! Nothing here reads a clock or draws a random number: callers pass the time, and the binary
//! draws the seed of the log's key.

pub mod checkpoint;
pub mod hash;
pub mod log;
pub mod note;
pub mod proof;
pub mod proofs;
pub mod tiles;
pub mod tree;

pub use checkpoint::Checkpoint;
pub use hash::{Hash, leaf_hash, node_hash};
pub use log::{Appended, Fact, Leaf, Log, LogError};
pub use note::{SignerKey, VerifierKey};
pub use proof::ProofError;
pub use proofs::{ConsistencyProof, InclusionProof, ProofDoc};
pub use tree::Tree;

/// Errors of this crate's parsers: what was wrong, in words a person can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlogError {
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
    #[error("signature check failed: {0}")]
    Signature(String),
    #[error(transparent)]
    Proof(#[from] ProofError),
}

impl TlogError {
    pub(crate) fn malformed(what: &'static str, why: impl Into<String>) -> Self {
        Self::Malformed { what, why: why.into() }
    }
}
