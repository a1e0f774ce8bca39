//! The log service: the tree in memory over the store's rows, the log's signing key, appends
//! that each store a signed checkpoint, proofs, tiles, and the start-up check that refuses a
//! store whose history was rewritten.

use serde::{Deserialize, Serialize};
use store::{LogRow, Store, StoreError};
use tokio::sync::Mutex;

use crate::checkpoint::Checkpoint;
use crate::hash::{Hash, leaf_hash, sha256};
use crate::note::{SignerKey, VerifierKey};
use crate::proofs::{ConsistencyProof, InclusionProof};
use crate::tiles::{self, TilePath};
use crate::tree::Tree;
use crate::{ProofError, TlogError};

/// Longest kind, subject or actor role of a fact.
pub const MAX_FIELD_BYTES: usize = 256;
/// Largest full record of a fact.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Rows read from the store at a time when rebuilding.
const PAGE: u32 = 1000;

/// A governance fact to record: its public part and its full record.
pub struct Fact<'a> {
    /// What happened, as `pillar.what` (`filing.submitted`, `model.suspended`, ...).
    pub kind: &'a str,
    /// What it happened to (`model/qwen`, `filing/F-1`, `tenant/acme`).
    pub subject: &'a str,
    /// The role of who did it (`operator`, `tenant-admin`, `system`), not their name.
    pub actor_role: &'a str,
    /// Everything else, behind permissions; the leaf commits to it by SHA-256.
    pub record: &'a serde_json::Value,
}

/// The public leaf: what is hashed into the tree and served in entry bundles. Fields are in
/// sorted order, so serde writes canonical JSON (sorted keys, no spaces).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leaf {
    pub actor_role: String,
    pub at_ms: i64,
    pub kind: String,
    /// Hex SHA-256 of the full record's stored JSON text.
    pub record_sha256: String,
    pub subject: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// What is stored no longer matches what the log signed: the server must not start on it.
    #[error("the transparency log in the store was altered: {0}")]
    Tampered(String),
    /// The store's checkpoints carry another key's signature: this server has not the key the
    /// log was kept with (a second instance on a shared store without the first one's key).
    #[error(
        "the transparency log in the store is signed by key {theirs}, not by this server's key {ours}: instances that share a store must share the log key (govern.log_key_file)"
    )]
    OtherKey { theirs: String, ours: String },
    #[error("invalid fact: {0}")]
    Invalid(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Tlog(#[from] TlogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the log's record is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// What an append produced.
#[derive(Clone, Debug, Serialize)]
pub struct Appended {
    pub index: u64,
    pub leaf_hash: String,
    pub checkpoint: String,
}

pub struct Log {
    store: Store,
    key: SignerKey,
    verifier: VerifierKey,
    tree: Mutex<Tree>,
}

fn check_field(name: &str, v: &str) -> Result<(), LogError> {
    if v.is_empty() || v.len() > MAX_FIELD_BYTES || v.chars().any(char::is_control) {
        return Err(LogError::Invalid(format!("{name} must be 1 to {MAX_FIELD_BYTES} bytes with no control character")));
    }
    Ok(())
}

/// Checks one stored row against the leaf it must be, and its leaf hash.
fn check_row(row: &LogRow, expected_index: u64) -> Result<Hash, LogError> {
    let tampered = |why: String| LogError::Tampered(format!("entry {}: {why}", row.index));
    if u64::try_from(row.index).ok() != Some(expected_index) {
        return Err(LogError::Tampered(format!("entry {expected_index} is missing")));
    }
    let leaf: Leaf = serde_json::from_str(&row.leaf).map_err(|e| tampered(format!("the leaf is not a leaf ({e})")))?;
    if serde_json::to_string(&leaf)? != row.leaf {
        return Err(tampered("the leaf is not in canonical form".into()));
    }
    if sha256(row.record.as_bytes()).to_hex() != leaf.record_sha256 {
        return Err(tampered("the record does not match the SHA-256 in its leaf".into()));
    }
    Ok(leaf_hash(row.leaf.as_bytes()))
}

impl Log {
    /// Rebuilds the tree from the store and checks it against the last signed checkpoint:
    /// every entry must be present and unchanged, and the checkpoint must carry this key's
    /// signature over the same root. Then signs a checkpoint for entries stored after it.
    pub async fn open(store: Store, key: SignerKey, now_ms: i64) -> Result<Self, LogError> {
        let verifier = key.verifier();
        let log = Self { store, key, verifier, tree: Mutex::new(Tree::new()) };
        {
            let mut tree = log.tree.lock().await;
            log.catch_up(&mut tree).await?;
            if let Some((size, note)) = log.store.latest_log_checkpoint().await? {
                let c = Checkpoint::open(&note, &log.verifier).map_err(|e| log.explain(size, &note, &e))?;
                if u64::try_from(size).ok() != Some(c.size) {
                    return Err(LogError::Tampered(format!("checkpoint {size} says size {}", c.size)));
                }
                if c.size > tree.size() {
                    return Err(LogError::Tampered(format!(
                        "checkpoint {} covers entries that are gone (the store has {})",
                        c.size,
                        tree.size()
                    )));
                }
                if tree.root(c.size)? != c.root {
                    return Err(LogError::Tampered(format!("the entries no longer hash to checkpoint {}'s root", c.size)));
                }
            }
            let size = tree.size();
            let note = log.checkpoint_note(&tree, size)?;
            log.store.put_log_checkpoint(to_i64(size), now_ms, &note).await?;
        }
        Ok(log)
    }

    /// Why a stored checkpoint does not open: signed by another key only, or altered.
    fn explain(&self, size: i64, note: &str, e: &TlogError) -> LogError {
        let (name, id) = (self.verifier.name(), self.verifier.id());
        if let Ok((_, sigs)) = crate::note::split(note)
            && let Some(s) = sigs.first()
            && !sigs.iter().any(|s| s.name == name && s.id == id)
        {
            return LogError::OtherKey { theirs: format!("{}+{:08x}", s.name, s.id), ours: format!("{name}+{id:08x}") };
        }
        LogError::Tampered(format!("checkpoint {size} does not open with the log's key ({e})"))
    }

    fn checkpoint_note(&self, tree: &Tree, size: u64) -> Result<String, LogError> {
        let c = Checkpoint { origin: self.key.name().to_string(), size, root: tree.root(size)?, extensions: vec![] };
        Ok(c.sign(&self.key)?)
    }

    /// Reads entries other instances (or an earlier run) stored beyond the tree, checking each.
    async fn catch_up(&self, tree: &mut Tree) -> Result<(), LogError> {
        loop {
            let rows = self.store.log_entries(to_i64(tree.size()), PAGE).await?;
            for row in &rows {
                let h = check_row(row, tree.size())?;
                tree.push(h);
            }
            if rows.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// Records a fact: stores it with the checkpoint over the new tree, in one transaction.
    pub async fn append(&self, fact: &Fact<'_>, now_ms: i64) -> Result<Appended, LogError> {
        check_field("kind", fact.kind)?;
        check_field("subject", fact.subject)?;
        check_field("actor_role", fact.actor_role)?;
        let record = serde_json::to_string(fact.record)?;
        if record.len() > MAX_RECORD_BYTES {
            return Err(LogError::Invalid(format!("the record is larger than {MAX_RECORD_BYTES} bytes")));
        }
        let leaf = Leaf {
            actor_role: fact.actor_role.into(),
            at_ms: now_ms,
            kind: fact.kind.into(),
            record_sha256: sha256(record.as_bytes()).to_hex(),
            subject: fact.subject.into(),
        };
        let leaf = serde_json::to_string(&leaf)?;
        let mut tree = self.tree.lock().await;
        // Another instance may take the index first; then catch up and try the next one.
        for _ in 0..16 {
            self.catch_up(&mut tree).await?;
            let index = tree.size();
            let h = leaf_hash(leaf.as_bytes());
            tree.push(h);
            match self.store_entry(&tree, index, &leaf, &record, now_ms).await {
                Ok(Some(checkpoint)) => return Ok(Appended { index, leaf_hash: h.to_base64(), checkpoint }),
                Ok(None) => tree.truncate(index),
                Err(e) => {
                    tree.truncate(index);
                    return Err(e);
                }
            }
        }
        Err(LogError::Invalid("other writers kept taking the next index; try again".into()))
    }

    /// Stores entry `index` (already in `tree`) with its checkpoint; the checkpoint, or `None`
    /// when the index was taken.
    async fn store_entry(&self, tree: &Tree, index: u64, leaf: &str, record: &str, now_ms: i64) -> Result<Option<String>, LogError> {
        let note = self.checkpoint_note(tree, index + 1)?;
        let row = LogRow { index: to_i64(index), at_ms: now_ms, leaf: leaf.into(), record: record.into() };
        Ok(self.store.append_log(&row, &note).await?.then_some(note))
    }

    /// The latest signed checkpoint.
    pub async fn checkpoint(&self) -> Result<String, LogError> {
        self.refresh().await?;
        let (_, note) = self.store.latest_log_checkpoint().await?.ok_or_else(|| LogError::NotFound("no checkpoint yet".into()))?;
        Ok(note)
    }

    async fn refresh(&self) -> Result<(), LogError> {
        let mut tree = self.tree.lock().await;
        self.catch_up(&mut tree).await
    }

    /// The size of the latest checkpoint, which proofs default to.
    async fn latest_size(&self) -> Result<u64, LogError> {
        let note = self.checkpoint().await?;
        Ok(Checkpoint::open(&note, &self.verifier)?.size)
    }

    /// Entry `index`'s inclusion in the tree of `size` entries (default: the latest
    /// checkpoint's), with that checkpoint signed, so it verifies offline.
    pub async fn inclusion(&self, index: u64, size: Option<u64>) -> Result<InclusionProof, LogError> {
        let size = match size {
            Some(s) => s,
            None => self.latest_size().await?,
        };
        self.refresh().await?;
        let tree = self.tree.lock().await;
        if index >= size || size > tree.size() {
            return Err(LogError::NotFound(format!("entry {index} in a tree of {size}")));
        }
        let row = self
            .store
            .log_entries(to_i64(index), 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| LogError::NotFound(format!("entry {index}")))?;
        Ok(InclusionProof {
            index,
            size,
            leaf: row.leaf,
            proof: tree.inclusion_proof(index, size)?.iter().map(Hash::to_base64).collect(),
            checkpoint: self.checkpoint_note(&tree, size)?,
        })
    }

    /// The consistency of the tree of `size1` entries with the one of `size2`.
    pub async fn consistency(&self, size1: u64, size2: Option<u64>) -> Result<ConsistencyProof, LogError> {
        let size2 = match size2 {
            Some(s) => s,
            None => self.latest_size().await?,
        };
        self.refresh().await?;
        let tree = self.tree.lock().await;
        if size2 > tree.size() || size1 == 0 || size1 > size2 {
            return Err(LogError::NotFound(format!("a tree of {size1} entries before one of {size2}")));
        }
        Ok(ConsistencyProof {
            size1,
            size2,
            proof: tree.consistency_proof(size1, size2)?.iter().map(Hash::to_base64).collect(),
            checkpoint1: self.checkpoint_note(&tree, size1)?,
            checkpoint2: self.checkpoint_note(&tree, size2)?,
        })
    }

    /// A tile or entry bundle by its path below `/log/`, if it exists.
    pub async fn tile(&self, path: &str) -> Result<Option<Vec<u8>>, LogError> {
        let p = TilePath::parse(path)?;
        self.refresh().await?;
        match p {
            TilePath::Hashes { level, index, width } => Ok(tiles::hash_tile(&*self.tree.lock().await, level, index, width)),
            TilePath::Entries { index, width } => {
                let Some(first) = index.checked_mul(tiles::TILE_WIDTH) else { return Ok(None) };
                let rows = self.store.log_entries(to_i64(first), u32::from(width)).await?;
                if rows.len() != usize::from(width) {
                    return Ok(None);
                }
                Ok(Some(tiles::entry_bundle(rows.iter().map(|r| r.leaf.as_bytes()))?))
            }
        }
    }

    /// Entry `index` with its full record.
    pub async fn entry(&self, index: u64) -> Result<LogRow, LogError> {
        self.store
            .log_entries(to_i64(index), 1)
            .await?
            .into_iter()
            .find(|r| u64::try_from(r.index).ok() == Some(index))
            .ok_or_else(|| LogError::NotFound(format!("entry {index}")))
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
