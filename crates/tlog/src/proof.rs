//! Verifying proofs with no tree at hand, as an auditor does.
//!
//! - Inclusion: RFC 9162 §2.1.3.2.
//! - Consistency: RFC 9162 §2.1.4.2, written as the subtree consistency check of the Merkle
//!   Tree Certificates draft (draft-ietf-plants-merkle-tree-certs §4.4.3), of which it is the
//!   case `start = 0`.
//!
//! The edge cases (empty trees, equal sizes, empty proofs) answer as transparency-dev/merkle
//! does, so that every vector of its `testdata/` succeeds or fails as marked.

use crate::hash::{Hash, empty_root, node_hash};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The arguments or the proof's shape are wrong (sizes, bounds, length).
    #[error("invalid proof: {0}")]
    Invalid(String),
    /// The proof is well formed but leads to another root.
    #[error("the proof leads to a different root")]
    Mismatch,
}

fn invalid(why: impl Into<String>) -> ProofError {
    ProofError::Invalid(why.into())
}

fn matches(calculated: Hash, expected: &Hash) -> Result<(), ProofError> {
    if calculated == *expected { Ok(()) } else { Err(ProofError::Mismatch) }
}

/// `[start, end)` is a subtree: `start` is a multiple of the smallest power of two at least
/// `end - start` (the draft's §4.1; every range is one when `start` is 0 or it is empty).
pub fn is_subtree(start: u64, end: u64) -> bool {
    if start > end {
        return false;
    }
    if start == 0 || start == end {
        return true;
    }
    let len = end - start;
    if len > 1 << 63 {
        return false;
    }
    start & (len.next_power_of_two() - 1) == 0
}

/// Checks that `leaf` is entry `index` of the tree of `size` entries with root `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    matches(root_from_inclusion(index, size, leaf, proof)?, root)
}

/// Checks that `leaf` is entry `index` of the subtree `[start, end)` with root `root`.
pub fn verify_subtree_inclusion(index: u64, start: u64, end: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if !is_subtree(start, end) {
        return Err(invalid(format!("[{start}, {end}) is not a subtree")));
    }
    if index < start || index >= end {
        return Err(invalid(format!("index {index} is outside [{start}, {end})")));
    }
    matches(root_from_inclusion(index - start, end - start, leaf, proof)?, root)
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2, steps 1–5).
pub fn root_from_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash]) -> Result<Hash, ProofError> {
    if index >= size {
        return Err(invalid(format!("index {index} is not below the size {size}")));
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(invalid("the proof is too long"));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            // On the right border the node has no right sibling: it rises until it is a
            // right child, and the hash just used is its left sibling there.
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(invalid("the proof is too short"));
    }
    Ok(r)
}

/// Checks that the tree of `size1` entries with `root1` is a prefix of the tree of `size2`
/// with `root2`.
pub fn verify_consistency(size1: u64, size2: u64, proof: &[Hash], root1: &Hash, root2: &Hash) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(invalid(format!("size2 {size2} is below size1 {size1}")));
    }
    if size1 == 0 {
        return Err(invalid("a consistency proof from the empty tree says nothing"));
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(invalid("equal sizes need an empty proof"));
        }
        return matches(*root1, root2);
    }
    if proof.is_empty() {
        return Err(invalid("empty proof"));
    }
    matches(chain_subtree_consistency(0, size1, size2, proof, root1)?, root2)
}

/// [`verify_consistency`] over raw bytes, as they come off the wire: see
/// [`verify_subtree_consistency_bytes`].
pub fn verify_consistency_bytes(size1: u64, size2: u64, proof: &[Vec<u8>], root1: &[u8], root2: &[u8]) -> Result<(), ProofError> {
    if size2 < size1 {
        return Err(invalid(format!("size2 {size2} is below size1 {size1}")));
    }
    if size1 == 0 {
        return Err(invalid("a consistency proof from the empty tree says nothing"));
    }
    verify_subtree_consistency_bytes(0, size1, size2, proof, root1, root2)
}

/// [`verify_subtree_consistency`] over raw bytes. A hash of the wrong length fails, except
/// where no hashing happens and transparency-dev/merkle compares bytes as they are (its
/// vectors hold such cases): a subtree that is the whole tree is consistent when the two roots
/// are the same bytes, and an empty subtree when its root is the empty root.
pub fn verify_subtree_consistency_bytes(
    start: u64,
    end: u64,
    size: u64,
    proof: &[Vec<u8>],
    sub_root: &[u8],
    root: &[u8],
) -> Result<(), ProofError> {
    if proof.is_empty() && start == end && end <= size && is_subtree(start, end) {
        return if sub_root == empty_root().0 { Ok(()) } else { Err(ProofError::Mismatch) };
    }
    if proof.is_empty() && start == 0 && end == size && end > 0 {
        return if sub_root == root { Ok(()) } else { Err(ProofError::Mismatch) };
    }
    let hash = |b: &[u8]| Hash::from_slice(b).ok_or_else(|| invalid(format!("a hash of {} bytes", b.len())));
    let proof = proof.iter().map(|p| hash(p)).collect::<Result<Vec<_>, _>>()?;
    verify_subtree_consistency(start, end, size, &proof, &hash(sub_root)?, &hash(root)?)
}

/// Checks that the subtree `[start, end)` with root `sub_root` sits at those positions in the
/// tree of `size` entries with root `root`.
pub fn verify_subtree_consistency(start: u64, end: u64, size: u64, proof: &[Hash], sub_root: &Hash, root: &Hash) -> Result<(), ProofError> {
    if start == end {
        // An empty subtree is in every tree; its root must be the empty root.
        if end > size {
            return Err(invalid(format!("end {end} is beyond the size {size}")));
        }
        if !proof.is_empty() {
            return Err(invalid("an empty subtree needs an empty proof"));
        }
        return matches(*sub_root, &empty_root());
    }
    matches(root_from_subtree_consistency(start, end, size, proof, sub_root)?, root)
}

/// The root of the tree of `size` entries that a subtree consistency proof leads to.
pub fn root_from_subtree_consistency(start: u64, end: u64, size: u64, proof: &[Hash], sub_root: &Hash) -> Result<Hash, ProofError> {
    if !is_subtree(start, end) {
        return Err(invalid(format!("[{start}, {end}) is not a subtree")));
    }
    if size < end {
        return Err(invalid(format!("end {end} is beyond the size {size}")));
    }
    if start == end {
        if size == 0 && proof.is_empty() && *sub_root == empty_root() {
            return Ok(empty_root());
        }
        return Err(invalid("an empty subtree cannot lead to a non-empty tree"));
    }
    if start == 0 && end == size {
        if !proof.is_empty() {
            return Err(invalid("the subtree is the tree: the proof must be empty"));
        }
        return Ok(*sub_root);
    }
    if proof.is_empty() {
        return Err(invalid("empty proof"));
    }
    chain_subtree_consistency(start, end, size, proof, sub_root)
}

/// The draft's §4.4.3 walk. `f` and `s` are the nodes over the subtree's first and last
/// entries at the current level, `t` the tree's last node there. It rebuilds the subtree's root
/// from the hashes inside it (which must give `sub_root`) and the tree's root from all of them.
fn chain_subtree_consistency(start: u64, end: u64, size: u64, proof: &[Hash], sub_root: &Hash) -> Result<Hash, ProofError> {
    let (mut f, mut s, mut t) = (start, end - 1, size - 1);
    let shift = |f: &mut u64, s: &mut u64, t: &mut u64| {
        *f >>= 1;
        *s >>= 1;
        *t >>= 1;
    };
    if s == t {
        // The subtree ends the tree: climb to its root, which the verifier knows.
        while f != s {
            shift(&mut f, &mut s, &mut t);
        }
    } else {
        // Climb the subtree's rightmost perfect part, whose root the proof gives first
        // (unless that part is the whole subtree).
        while f != s && s & 1 == 1 {
            shift(&mut f, &mut s, &mut t);
        }
    }
    let mut rest = proof.iter();
    let seed = if f == s { *sub_root } else { *rest.next().ok_or_else(|| invalid("empty proof"))? };
    let (mut fr, mut sr) = (seed, seed);
    for c in rest {
        if t == 0 {
            return Err(invalid("the proof is too long"));
        }
        if s & 1 == 1 || s == t {
            // A left sibling. Inside the subtree it also builds the subtree's root.
            if f < s {
                fr = node_hash(c, &fr);
            }
            sr = node_hash(c, &sr);
            while s & 1 == 0 && s != 0 {
                shift(&mut f, &mut s, &mut t);
            }
        } else {
            // A right sibling: beyond the subtree, so only in the tree's root.
            sr = node_hash(&sr, c);
        }
        shift(&mut f, &mut s, &mut t);
    }
    if t != 0 {
        return Err(invalid("the proof is too short"));
    }
    matches(fr, sub_root)?;
    Ok(sr)
}
