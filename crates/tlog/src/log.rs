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
pub const MAX_FIELD_BYTES: usize = 1024;
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

/// Told every checkpoint the log signs (the binary keeps the newest outside the store).
pub type Witness = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

pub struct Log {
    store: Store,
    key: SignerKey,
    verifier: VerifierKey,
    tree: Mutex<Tree>,
    witness: Option<Witness>,
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
    /// Rebuilds the tree from the store and checks it: every entry must be unchanged and every
    /// stored size must carry this key's checkpoint over the same root. `trusted` is the last
    /// checkpoint this server saw, kept outside the store (the binary keeps it beside the key):
    /// entries removed from the end together with their checkpoints leave a store that agrees
    /// with itself, and only that copy shows it. `witness` is told every new checkpoint, to keep
    /// that copy.
    pub async fn open(
        store: Store,
        key: SignerKey,
        now_ms: i64,
        trusted: Option<&str>,
        witness: Option<Witness>,
    ) -> Result<Self, LogError> {
        let verifier = key.verifier();
        let log = Self { store, key, verifier, tree: Mutex::new(Tree::new()), witness };
        {
            let mut tree = log.tree.lock().await;
            log.catch_up(&mut tree).await?;
            let size = tree.size();
            if let Some((latest, _)) = log.store.latest_log_checkpoint().await?
                && u64::try_from(latest).is_ok_and(|l| l > size)
            {
                return Err(LogError::Tampered(format!("checkpoint {latest} covers entries that are gone (the store has {size})")));
            }
            if let Some(t) = trusted {
                log.check_trusted(&tree, t)?;
            }
            let note = match log.store.log_checkpoint(to_i64(size)).await? {
                Some(note) => note,
                None => {
                    // Only the empty log has no checkpoint of its size (an entry is stored
                    // with its checkpoint); sign one so that /log/checkpoint always answers.
                    let note = log.checkpoint_note(&tree, size)?;
                    log.store.put_log_checkpoint(to_i64(size), now_ms, &note).await?;
                    note
                }
            };
            log.tell_witness(&note);
        }
        Ok(log)
    }

    /// The store must reach and agree with the last checkpoint this server saw.
    fn check_trusted(&self, tree: &Tree, trusted: &str) -> Result<(), LogError> {
        let c = Checkpoint::open(trusted, &self.verifier)
            .map_err(|e| LogError::Tampered(format!("the last checkpoint this server saw does not open with its key ({e})")))?;
        if c.size > tree.size() {
            return Err(LogError::Tampered(format!(
                "the store has {} entries, but this server saw a checkpoint of {}: entries were removed",
                tree.size(),
                c.size
            )));
        }
        if tree.root(c.size)? != c.root {
            return Err(LogError::Tampered(format!("the entries no longer hash to the checkpoint of {} this server saw", c.size)));
        }
        Ok(())
    }

    fn tell_witness(&self, note: &str) {
        if let Some(w) = &self.witness {
            w(note);
        }
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

    /// Reads entries other instances (or an earlier run) stored beyond the tree, checking each
    /// and then the checkpoint of the new size: an entry is always stored with its checkpoint, so
    /// a row without one was not written by the log. On a failure the tree is left as it was.
    async fn catch_up(&self, tree: &mut Tree) -> Result<(), LogError> {
        let start = tree.size();
        let read = self.read_rows(tree).await;
        let checked = match read {
            Ok(()) if tree.size() > start => self.check_head(tree).await,
            other => other,
        };
        if checked.is_err() {
            tree.truncate(start);
        }
        checked
    }

    async fn read_rows(&self, tree: &mut Tree) -> Result<(), LogError> {
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

    /// The stored checkpoint of the tree's size must be this key's, over the tree's root.
    async fn check_head(&self, tree: &Tree) -> Result<(), LogError> {
        let size = tree.size();
        let Some(note) = self.store.log_checkpoint(to_i64(size)).await? else {
            return Err(LogError::Tampered(format!("entry {} has no signed checkpoint: the log did not write it", size.saturating_sub(1))));
        };
        let c = Checkpoint::open(&note, &self.verifier).map_err(|e| self.explain(to_i64(size), &note, &e))?;
        if c.size != size || tree.root(size)? != c.root {
            return Err(LogError::Tampered(format!("the entries no longer hash to checkpoint {size}'s root")));
        }
        Ok(())
    }

    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// Records a fact: stores it with the checkpoint over the new tree, in one transaction.
    /// A digest of `data` only this log's key can make: a public leaf can name something
    /// private (an end user's id) by it without revealing it, and the operator can recompute it.
    pub fn pseudonym(&self, data: &str) -> String {
        self.key.keyed_digest(data.as_bytes()).iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    pub async fn append(&self, fact: &Fact<'_>, now_ms: i64) -> Result<Appended, LogError> {
        check_field("kind", fact.kind)?;
        check_field("subject", fact.subject)?;
        check_field("actor_role", fact.actor_role)?;
        let serde_json::Value::Object(mut record) = fact.record.clone() else {
            return Err(LogError::Invalid("a record is a JSON object".into()));
        };
        // A keyed salt, so the public digest cannot be matched by guessing a short record.
        let seed = format!("{}\n{}\n{now_ms}\n{}", fact.kind, fact.subject, serde_json::Value::Object(record.clone()));
        let salt: String = self.key.keyed_digest(seed.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        record.insert("salt".into(), serde_json::Value::String(salt));
        let record = serde_json::to_string(&record)?;
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
                Ok(Some(checkpoint)) => {
                    self.tell_witness(&checkpoint);
                    return Ok(Appended { index, leaf_hash: h.to_base64(), checkpoint });
                }
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

    /// Catches up with entries stored by other instances. The store is asked its size without
    /// the tree's lock, so that readers (public, unauthenticated) never hold up an append.
    async fn refresh(&self) -> Result<(), LogError> {
        let stored = self.store.log_size().await?;
        let have = self.tree.lock().await.size();
        if u64::try_from(stored).is_ok_and(|n| n <= have) {
            return Ok(());
        }
        let mut tree = self.tree.lock().await;
        self.catch_up(&mut tree).await
    }

    /// The tree, caught up with the store, and `size` or else its whole size: the size of the
    /// latest checkpoint, since every stored entry comes with the checkpoint it ends.
    async fn caught_up(&self, size: Option<u64>) -> Result<(tokio::sync::MutexGuard<'_, Tree>, u64), LogError> {
        self.refresh().await?;
        let tree = self.tree.lock().await;
        let size = size.unwrap_or(tree.size());
        Ok((tree, size))
    }

    /// Entry `index`'s inclusion in the tree of `size` entries (default: the latest
    /// checkpoint's), with that checkpoint signed, so it verifies offline.
    pub async fn inclusion(&self, index: u64, size: Option<u64>) -> Result<InclusionProof, LogError> {
        let (tree, size) = self.caught_up(size).await?;
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
        let (tree, size2) = self.caught_up(size2).await?;
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
                let rows = self.store.log_leaves(to_i64(first), u32::from(width)).await?;
                if rows.len() != usize::from(width) {
                    return Ok(None);
                }
                Ok(Some(tiles::entry_bundle(rows.iter().map(|(_, leaf)| leaf.as_bytes()))?))
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
