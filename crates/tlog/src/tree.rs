//! The tree in memory: every complete node, level by level, built as leaves are appended.
//!
//! `levels[l][i]` is the root of the perfect subtree of `2^l` entries starting at `i * 2^l`.
//! Such a node never changes once it exists, so a root, a proof or a tile at any past size is
//! read from the same arrays. Memory is about 64 bytes an entry (a million entries: 64 MiB),
//! which a governance log stays far below.

use crate::hash::{Hash, empty_root, node_hash};
use crate::proof::ProofError;

#[derive(Clone, Debug, Default)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries in the tree.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends one leaf hash; its index.
    pub fn push(&mut self, leaf: Hash) -> u64 {
        let index = self.size();
        let mut node = leaf;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(node);
            // A node at an odd position completes its parent.
            if row.len() % 2 == 1 {
                break;
            }
            node = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
        index
    }

    /// Forgets every entry from `size` on (an append the store refused).
    pub fn truncate(&mut self, size: u64) {
        for (level, row) in self.levels.iter_mut().enumerate() {
            row.truncate(usize::try_from(size >> level).unwrap_or(usize::MAX));
        }
    }

    /// The complete node at `level`, `index`, if present.
    pub fn node(&self, level: usize, index: u64) -> Option<Hash> {
        self.levels.get(level)?.get(usize::try_from(index).ok()?).copied()
    }

    /// Complete nodes at `level`.
    pub fn width(&self, level: usize) -> u64 {
        self.levels.get(level).map_or(0, |l| l.len() as u64)
    }

    /// The root of the tree's first `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, ProofError> {
        self.check_size(size)?;
        Ok(if size == 0 { empty_root() } else { self.mth(0, size) })
    }

    /// RFC 9162 §2.1.3.1: the inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size)?;
        if index >= size {
            return Err(ProofError::Invalid(format!("index {index} is not below the size {size}")));
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out);
        Ok(out)
    }

    /// RFC 9162 §2.1.4.1: the consistency proof from `size1` entries to `size2`.
    pub fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, ProofError> {
        self.check_size(size2)?;
        if size1 == 0 || size1 > size2 {
            return Err(ProofError::Invalid(format!("no consistency proof from size {size1} to {size2}")));
        }
        let mut out = Vec::new();
        self.subproof(size1, 0, size2, true, &mut out);
        Ok(out)
    }

    fn check_size(&self, size: u64) -> Result<(), ProofError> {
        if size > self.size() {
            return Err(ProofError::Invalid(format!("size {size} is beyond the tree's {}", self.size())));
        }
        Ok(())
    }

    /// MTH(D[lo:hi]) for `lo < hi`: a stored node when the range is a perfect aligned subtree,
    /// else split at the largest power of two below the length.
    fn mth(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            if let Some(h) = self.node(level, lo >> level) {
                return h;
            }
        }
        let k = split(n);
        node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
    }

    /// PATH(m, D[lo:hi]), appended to `out` from the leaf up.
    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.mth(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.mth(lo, lo + k));
        }
    }

    /// SUBPROOF(m, D[lo:hi], b), appended to `out`.
    fn subproof(&self, m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.mth(lo, hi));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            self.subproof(m, lo, lo + k, whole, out);
            out.push(self.mth(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.mth(lo, lo + k));
        }
    }
}

/// The largest power of two below `n` (for `n >= 2`).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::hash::leaf_hash;
    use crate::proof::{verify_consistency, verify_inclusion};
    use proptest::prelude::*;

    /// The reference: MTH straight from RFC 9162's recursive definition.
    fn reference_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_mth(&leaves[..k]), &reference_mth(&leaves[k..]))
            }
        }
    }

    fn tree(n: u64) -> (Tree, Vec<Hash>) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut t = Tree::new();
        for l in &leaves {
            t.push(*l);
        }
        (t, leaves)
    }

    #[test]
    fn split_is_the_largest_power_of_two_below() {
        assert_eq!([2, 3, 4, 5, 8, 9].map(split), [1, 2, 2, 4, 4, 8]);
    }

    proptest! {
        /// Every root matches the recursive definition, and every proof this tree makes
        /// verifies, at every past size too.
        #[test]
        fn roots_and_proofs_agree_with_the_definition(n in 1u64..80, a in 0u64..80, b in 0u64..80) {
            let (t, leaves) = tree(n);
            let size2 = 1 + b % n;
            let size1 = 1 + a % size2;
            let r2 = t.root(size2).unwrap();
            prop_assert_eq!(r2, reference_mth(&leaves[..size2 as usize]));
            let r1 = t.root(size1).unwrap();
            let index = a % size2;
            let p = t.inclusion_proof(index, size2).unwrap();
            prop_assert_eq!(verify_inclusion(index, size2, &leaves[index as usize], &p, &r2), Ok(()));
            let c = t.consistency_proof(size1, size2).unwrap();
            prop_assert_eq!(verify_consistency(size1, size2, &c, &r1, &r2), Ok(()));
            // A proof for another leaf fails.
            let other = leaf_hash(b"not in the tree");
            prop_assert!(verify_inclusion(index, size2, &other, &p, &r2).is_err());
        }
    }

    #[test]
    fn truncating_gives_back_the_earlier_tree() {
        let (mut t, _) = tree(13);
        let before = t.root(6).unwrap();
        t.truncate(6);
        assert_eq!((t.size(), t.root(6).unwrap()), (6, before));
        let (again, _) = tree(6);
        assert_eq!(t.width(1), again.width(1));
        assert_eq!(t.width(2), again.width(2));
        assert_eq!(t.width(3), 0);
    }

    #[test]
    fn sizes_beyond_the_tree_are_refused() {
        let (t, _) = tree(5);
        assert!(t.root(6).is_err());
        assert!(t.inclusion_proof(5, 5).is_err());
        assert!(t.consistency_proof(0, 5).is_err());
        assert!(t.consistency_proof(3, 6).is_err());
        assert_eq!(Tree::new().root(0).unwrap(), empty_root());
    }
}
