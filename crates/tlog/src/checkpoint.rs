//! C2SP tlog-checkpoint bodies (c2sp.org/tlog-checkpoint): origin, tree size, root hash, then
//! optional extension lines, each ending in a newline. The signed form is a [`crate::note`].

use crate::TlogError;
use crate::hash::Hash;
use crate::note::{SignerKey, VerifierKey};

/// Longest origin or extension line we accept.
pub const MAX_LINE_BYTES: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub extensions: Vec<String>,
}

fn malformed(why: impl Into<String>) -> TlogError {
    TlogError::malformed("checkpoint", why)
}

impl Checkpoint {
    /// The note text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{}\n{}\n{}\n", self.origin, self.size, self.root.to_base64());
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }

    /// Reads a note text (not the signatures: see [`Checkpoint::open`]).
    pub fn parse(text: &str) -> Result<Self, TlogError> {
        let body = text.strip_suffix('\n').ok_or_else(|| malformed("it must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() || origin.len() > MAX_LINE_BYTES {
            return Err(malformed("the origin line must be 1 to 1024 bytes"));
        }
        let size = lines.next().ok_or_else(|| malformed("no tree size line"))?;
        let size_ok = !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()) && (size == "0" || !size.starts_with('0'));
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| size_ok)
            .ok_or_else(|| malformed(format!("tree size {size:?} is not a decimal without leading zeros")))?;
        let root = lines.next().ok_or_else(|| malformed("no root hash line"))?;
        let root = Hash::from_base64(root).ok_or_else(|| malformed("the root hash is not 32 bytes of base64"))?;
        let extensions: Vec<String> = lines.map(str::to_string).collect();
        if extensions.iter().any(|e| e.is_empty() || e.len() > MAX_LINE_BYTES) {
            return Err(malformed("extension lines must be 1 to 1024 bytes"));
        }
        Ok(Self { origin: origin.to_string(), size, root, extensions })
    }

    /// The signed checkpoint.
    pub fn sign(&self, key: &SignerKey) -> Result<String, TlogError> {
        key.sign(&self.to_text())
    }

    /// Opens a signed checkpoint: its signature by `key` must check, and `key`'s name must be
    /// the origin (the log signs its own checkpoints).
    pub fn open(msg: &str, key: &VerifierKey) -> Result<Self, TlogError> {
        let note = crate::note::open(msg, std::slice::from_ref(key))?;
        let c = Self::parse(&note.text)?;
        if c.origin != key.name() {
            return Err(malformed(format!("origin {:?} is not the key's name {:?}", c.origin, key.name())));
        }
        Ok(c)
    }
}
