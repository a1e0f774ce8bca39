//! Resumable, content-addressed uploads.
//!
//! A client declares a file by its SHA-256 and size and sends it in fixed-size chunks, in any
//! order and as often as it likes. Each chunk is stored whole (an object store's put is atomic)
//! before its receipt is written, so after a crash the receipts name only chunks that are there,
//! and the client resends the rest. Completing assembles the chunks into the tenant's object
//! while hashing them; the object appears (a multipart upload's completion, or a rename on the
//! local disk) only if the hash is the one declared. So a half-written object is never visible,
//! and completing twice is the same as once.

use bytes::Bytes;
use object_store::{PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DataError, Exchange, chunk_path, hex, invalid, is_sha256, object_path};

/// Longest file name an upload may carry, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// Most missing chunk numbers one status lists; the client asks again after sending them.
const MAX_MISSING_LISTED: usize = 1000;

/// A file to upload.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadIn {
    pub sha256: String,
    pub size_bytes: i64,
    #[serde(default)]
    pub name: Option<String>,
}

/// An upload as its client sees it: enough to resume it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct UploadView {
    pub object: &'static str,
    pub id: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub name: String,
    pub chunk_bytes: i64,
    pub chunks: i64,
    pub received: i64,
    /// The chunk numbers not yet received (at most 1000 listed).
    pub missing: Vec<i64>,
    /// `open`, `complete` or `cancelled`.
    pub state: String,
    pub created_ms: i64,
}

fn chunk_count(size: i64, chunk: i64) -> i64 {
    (size + chunk - 1) / chunk
}

impl Exchange {
    /// Opens an upload. A file the tenant already holds completes at once.
    pub async fn start_upload(&self, tenant: &str, u: UploadIn) -> Result<UploadView, DataError> {
        let sha = u.sha256.to_ascii_lowercase();
        if !is_sha256(&sha) {
            return Err(invalid("sha256", "64 hex digits: the SHA-256 of the whole file"));
        }
        if !(1..=self.limits.max_file_bytes).contains(&u.size_bytes) {
            return Err(invalid("size_bytes", format!("from 1 to {} bytes", self.limits.max_file_bytes)));
        }
        let name = u.name.unwrap_or_else(|| sha.clone());
        if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
            return Err(invalid("name", format!("1 to {MAX_NAME_BYTES} bytes without control characters")));
        }
        let held = self.store.data_object(tenant, &sha).await?.is_some();
        let row = store::UploadRow {
            id: (self.ids)("upl"),
            tenant: tenant.to_string(),
            sha256: sha,
            size_bytes: u.size_bytes,
            chunk_bytes: self.limits.chunk_bytes,
            state: if held { "complete" } else { "open" }.into(),
            name,
            created_ms: self.clock.now_ms(),
        };
        match self.store.create_upload(&row, self.limits.max_open_uploads, self.limits.max_tenant_bytes).await? {
            store::CreateUpload::Created => {}
            store::CreateUpload::TooManyOpen => {
                return Err(DataError::Limit(format!("a tenant has at most {} open uploads", self.limits.max_open_uploads)));
            }
            store::CreateUpload::TooManyBytes { held } => {
                return Err(DataError::Limit(format!(
                    "a tenant's files and open uploads hold at most {} bytes; it holds {held}",
                    self.limits.max_tenant_bytes
                )));
            }
        }
        self.upload_view(row).await
    }

    async fn open_upload(&self, tenant: &str, id: &str) -> Result<store::UploadRow, DataError> {
        self.store.upload(tenant, id).await?.ok_or_else(|| DataError::NotFound { what: "upload", id: id.to_string() })
    }

    pub async fn upload_status(&self, tenant: &str, id: &str) -> Result<UploadView, DataError> {
        let row = self.open_upload(tenant, id).await?;
        self.upload_view(row).await
    }

    async fn upload_view(&self, row: store::UploadRow) -> Result<UploadView, DataError> {
        let chunks = chunk_count(row.size_bytes, row.chunk_bytes);
        let (received, missing) = if row.state == "complete" {
            (chunks, Vec::new())
        } else if row.state != "open" {
            (0, Vec::new())
        } else {
            let got: std::collections::BTreeSet<i64> = self.store.upload_chunks(&row.id).await?.iter().map(|c| c.ix).collect();
            let missing = (0..chunks).filter(|i| !got.contains(i)).take(MAX_MISSING_LISTED).collect();
            (got.len() as i64, missing)
        };
        Ok(UploadView {
            object: "data.upload",
            id: row.id,
            sha256: row.sha256,
            size_bytes: row.size_bytes,
            name: row.name,
            chunk_bytes: row.chunk_bytes,
            chunks,
            received,
            missing,
            state: row.state,
            created_ms: row.created_ms,
        })
    }

    /// Stores chunk `ix`. Every chunk but the last is exactly `chunk_bytes` long. When the
    /// client sends the chunk's SHA-256, a chunk damaged on the way is refused.
    pub async fn put_chunk(&self, tenant: &str, id: &str, ix: i64, body: Bytes, sha256: Option<&str>) -> Result<UploadView, DataError> {
        let row = self.open_upload(tenant, id).await?;
        if row.state != "open" {
            return Err(DataError::Conflict(format!("upload {id} is {}; its chunks can no longer change", row.state)));
        }
        let chunks = chunk_count(row.size_bytes, row.chunk_bytes);
        if !(0..chunks).contains(&ix) {
            return Err(invalid("chunk", format!("chunk numbers run from 0 to {}", chunks - 1)));
        }
        let want = if ix == chunks - 1 { row.size_bytes - ix * row.chunk_bytes } else { row.chunk_bytes };
        if body.len() as i64 != want {
            return Err(invalid("body", format!("chunk {ix} is {want} bytes, not {}", body.len())));
        }
        let digest = hex(&Sha256::digest(&body));
        if let Some(claimed) = sha256
            && !claimed.eq_ignore_ascii_case(&digest)
        {
            return Err(invalid("x-chunk-sha256", format!("the chunk's SHA-256 is {digest}, not {claimed}; send it again")));
        }
        self.objects.put(&chunk_path(&row.id, ix), PutPayload::from_bytes(body)).await?;
        let receipt = store::ChunkReceipt { ix, bytes: want, sha256: digest };
        self.store.put_upload_chunk(&row.id, &receipt).await?;
        self.upload_view(row).await
    }

    /// Cancels an open upload and deletes its staged chunks; it stops counting against the
    /// tenant's open uploads and quota. Cancelling a cancelled upload changes nothing.
    pub async fn cancel_upload(&self, tenant: &str, id: &str) -> Result<UploadView, DataError> {
        let row = self.open_upload(tenant, id).await?;
        if row.state == "complete" {
            return Err(DataError::Conflict(format!("upload {id} is complete; its file stays")));
        }
        self.store.cancel_upload(tenant, id).await?;
        for ix in 0..chunk_count(row.size_bytes, row.chunk_bytes) {
            let _ = self.objects.delete(&chunk_path(&row.id, ix)).await;
        }
        self.upload_status(tenant, id).await
    }

    /// Assembles the chunks into the tenant's object if their hash is the declared one.
    pub async fn complete_upload(&self, tenant: &str, id: &str) -> Result<UploadView, DataError> {
        let row = self.open_upload(tenant, id).await?;
        if row.state == "complete" {
            return self.upload_view(row).await;
        }
        if row.state != "open" {
            return Err(DataError::Conflict(format!("upload {id} is {}", row.state)));
        }
        let receipts = self.store.upload_chunks(&row.id).await?;
        let chunks = chunk_count(row.size_bytes, row.chunk_bytes);
        if receipts.len() as i64 != chunks {
            return Err(DataError::Conflict(format!(
                "upload {id} has {} of its {chunks} chunks; send the missing ones (GET it to see which)",
                receipts.len()
            )));
        }
        let target = object_path(tenant, &row.sha256);
        // An object already at its address was checked before it appeared there (a completion
        // that crashed before recording it): it is the declared content.
        if self.objects.head(&target).await.is_err() {
            let digest = self.assemble(&row, chunks, &target).await?;
            if digest != row.sha256 {
                self.forget_chunks(&row, chunks).await;
                return Err(DataError::Conflict(format!(
                    "the file's SHA-256 is {digest}, not the declared {}; its chunks were discarded, send them again",
                    row.sha256
                )));
            }
        }
        self.store.finish_upload(&row, self.clock.now_ms()).await?;
        self.forget_chunks(&row, chunks).await;
        self.upload_status(tenant, id).await
    }

    /// Copies the chunks in order into a multipart write at `target`, hashing them. The write is
    /// completed only when the hash matches, and aborted otherwise.
    async fn assemble(&self, row: &store::UploadRow, chunks: i64, target: &object_store::path::Path) -> Result<String, DataError> {
        let mut hasher = Sha256::new();
        let upload = self.objects.put_multipart(target).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, row.chunk_bytes.max(5 << 20) as usize);
        for ix in 0..chunks {
            let bytes = match self.objects.get(&chunk_path(&row.id, ix)).await {
                Ok(got) => got.bytes().await,
                Err(e) => Err(e),
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            hasher.update(&bytes);
            writer.write(&bytes);
        }
        let digest = hex(&hasher.finalize());
        if digest == row.sha256 {
            writer.finish().await?;
        } else {
            writer.abort().await?;
        }
        Ok(digest)
    }

    /// Deletes an upload's staged chunks and receipts. Best effort for the bytes: a chunk left
    /// behind is garbage, never content.
    async fn forget_chunks(&self, row: &store::UploadRow, chunks: i64) {
        for ix in 0..chunks {
            let _ = self.objects.delete(&chunk_path(&row.id, ix)).await;
        }
        if row.state != "complete" {
            let _ = self.store.clear_upload_chunks(&row.id).await;
        }
    }
}
