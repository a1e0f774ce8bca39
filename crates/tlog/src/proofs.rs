//! The proof documents the API and the CLI hand out, and their offline check: everything an
//! auditor needs is in the document except the log's public key, which they must get from a
//! source they trust (the operator's published `log-key.pub`), never from the document.

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::hash::{Hash, leaf_hash};
use crate::note::VerifierKey;
use crate::proof::{verify_consistency, verify_inclusion};
use crate::{ProofError, TlogError};

/// Most hashes a proof may hold (a tree of 2^64 entries needs 64; consistency at most twice).
pub const MAX_PROOF_HASHES: usize = 130;

/// Entry `index` is in the tree of `size` entries that `checkpoint` signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    pub index: u64,
    pub size: u64,
    /// The entry's public leaf, as stored and hashed.
    pub leaf: String,
    /// Base64 hashes, from the leaf up.
    pub proof: Vec<String>,
    /// The signed checkpoint of `size`.
    pub checkpoint: String,
}

/// The tree of `size1` entries is a prefix of the tree of `size2`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    pub size1: u64,
    pub size2: u64,
    pub proof: Vec<String>,
    pub checkpoint1: String,
    pub checkpoint2: String,
}

/// Either document, as a file holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProofDoc {
    Inclusion(InclusionProof),
    Consistency(ConsistencyProof),
}

fn hashes(p: &[String]) -> Result<Vec<Hash>, TlogError> {
    if p.len() > MAX_PROOF_HASHES {
        return Err(TlogError::malformed("proof", format!("more than {MAX_PROOF_HASHES} hashes")));
    }
    p.iter()
        .map(|h| Hash::from_base64(h).ok_or_else(|| TlogError::malformed("proof", format!("{h:?} is not a 32-byte base64 hash"))))
        .collect()
}

/// Opens a signed checkpoint with `key` and checks that it is of `size` entries.
fn signed(note: &str, key: &VerifierKey, size: u64) -> Result<Checkpoint, TlogError> {
    let c = Checkpoint::open(note, key)?;
    if c.size != size {
        return Err(TlogError::malformed("proof", format!("its checkpoint is of {} entries, not {size}", c.size)));
    }
    Ok(c)
}

impl InclusionProof {
    /// Checks the proof against the checkpoint inside it, signed by `key`; and, when
    /// `trusted` is given (a checkpoint the auditor fetched themselves), that it is the same
    /// checkpoint.
    pub fn verify(&self, key: &VerifierKey, trusted: Option<&str>) -> Result<Checkpoint, TlogError> {
        let c = signed(&self.checkpoint, key, self.size)?;
        if let Some(t) = trusted {
            let t = Checkpoint::open(t, key)?;
            if t != c {
                return Err(TlogError::malformed(
                    "proof",
                    format!("it is for the tree of {} entries, the checkpoint given is of {}", c.size, t.size),
                ));
            }
        }
        verify_inclusion(self.index, self.size, &leaf_hash(self.leaf.as_bytes()), &hashes(&self.proof)?, &c.root)?;
        Ok(c)
    }
}

impl ConsistencyProof {
    /// Checks that both checkpoints are signed by `key` and the older is a prefix of the newer.
    pub fn verify(&self, key: &VerifierKey) -> Result<(Checkpoint, Checkpoint), TlogError> {
        let c1 = signed(&self.checkpoint1, key, self.size1)?;
        let c2 = signed(&self.checkpoint2, key, self.size2)?;
        verify_consistency(self.size1, self.size2, &hashes(&self.proof)?, &c1.root, &c2.root)
            .map_err(|e: ProofError| TlogError::Proof(e))?;
        Ok((c1, c2))
    }
}
