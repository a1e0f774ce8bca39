//! The data exchange's rows: resumable uploads and their chunks, the content-addressed objects
//! each tenant holds, datasets, their immutable versions and the lineage between versions.

use crate::{BeginWrite, Db, Store, StoreError};

/// Serialises upload and object writes on a shared PostgreSQL database, so limits are checked
/// and an upload finished as one step (SQLite's write lock does this).
const PG_DATA_LOCK: i64 = 0x0061_6970_6c75_730c;

/// A resumable upload of one file, declared by its SHA-256 and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadRow {
    pub id: String,
    pub tenant: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub chunk_bytes: i64,
    /// `open` until the file is assembled and checked, then `complete`.
    pub state: String,
    pub name: String,
    pub created_ms: i64,
}

/// How opening an upload ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateUpload {
    Created,
    TooManyOpen,
    /// The tenant's objects and open uploads hold `held` bytes already.
    TooManyBytes {
        held: i64,
    },
}

/// A received chunk of an upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkReceipt {
    pub ix: i64,
    pub bytes: i64,
    pub sha256: String,
}

/// A dataset: its id, residency and the version its listing points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetRow {
    pub tenant: String,
    pub id: String,
    pub residency: Option<String>,
    pub listed_version: Option<String>,
    /// The listing's offer (JSON): its price and modes.
    pub offer: Option<String>,
    pub created_ms: i64,
}

/// One version of a dataset. `croissant` is the record as submitted; `summary` is what the
/// exchange read from it (JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRow {
    pub tenant: String,
    pub dataset: String,
    pub version: String,
    /// `draft` while files may still be uploaded, `published` once every file is held.
    pub state: String,
    pub croissant: String,
    pub croissant_sha256: String,
    pub summary: String,
    pub created_ms: i64,
    pub published_ms: Option<i64>,
}

/// How adding a version ended. Versions are immutable, so the same version with other
/// content is a conflict, and with the same content is the same version again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutVersion {
    Created,
    Unchanged,
    Conflict,
    /// Nothing was written: the dataset already has as many versions as it may.
    TooMany,
}

type VersionTuple = (String, String, String, String, String, String, String, i64, Option<i64>);

fn version_row(
    (tenant, dataset, version, state, croissant, croissant_sha256, summary, created_ms, published_ms): VersionTuple,
) -> VersionRow {
    VersionRow { tenant, dataset, version, state, croissant, croissant_sha256, summary, created_ms, published_ms }
}

type UploadTuple = (String, String, String, i64, i64, String, String, i64);

type DatasetTuple = (String, String, Option<String>, Option<String>, Option<String>, i64);

fn dataset_row((tenant, id, residency, listed_version, offer, created_ms): DatasetTuple) -> DatasetRow {
    DatasetRow { tenant, id, residency, listed_version, offer, created_ms }
}

impl Store {
    /// Opens an upload unless the tenant already has `max_open` open ones (`TooManyOpen`), or
    /// its objects and open uploads would pass `max_bytes` with this one (`TooManyBytes`): an
    /// open upload reserves its size, so staged chunks are bounded by the tenant's quota too.
    pub async fn create_upload(&self, u: &UploadRow, max_open: i64, max_bytes: i64) -> Result<CreateUpload, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(&self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_DATA_LOCK).execute(&mut *tx).await?;
            }
            let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_uploads WHERE tenant = $1 AND state = 'open'")
                .bind(&u.tenant)
                .fetch_one(&mut *tx)
                .await?;
            if open >= max_open {
                return Ok(CreateUpload::TooManyOpen);
            }
            if u.state == "open" {
                let held: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE((SELECT SUM(bytes) FROM data_objects WHERE tenant = $1), 0)
                          + COALESCE((SELECT SUM(size_bytes) FROM data_uploads WHERE tenant = $1 AND state = 'open'), 0) AS BIGINT)",
                )
                .bind(&u.tenant)
                .fetch_one(&mut *tx)
                .await?;
                if held + u.size_bytes > max_bytes {
                    return Ok(CreateUpload::TooManyBytes { held });
                }
            }
            sqlx::query(
                "INSERT INTO data_uploads (id, tenant, sha256, size_bytes, chunk_bytes, state, name, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&u.id)
            .bind(&u.tenant)
            .bind(&u.sha256)
            .bind(u.size_bytes)
            .bind(u.chunk_bytes)
            .bind(&u.state)
            .bind(&u.name)
            .bind(u.created_ms)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(CreateUpload::Created)
        })
    }

    /// A tenant's upload; another tenant's is `None`, as a missing one.
    pub async fn upload(&self, tenant: &str, id: &str) -> Result<Option<UploadRow>, StoreError> {
        let row: Option<UploadTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT id, tenant, sha256, size_bytes, chunk_bytes, state, name, created_ms FROM data_uploads
             WHERE tenant = $1 AND id = $2"
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(id, tenant, sha256, size_bytes, chunk_bytes, state, name, created_ms)| UploadRow {
            id,
            tenant,
            sha256,
            size_bytes,
            chunk_bytes,
            state,
            name,
            created_ms,
        }))
    }

    /// Records a chunk as received. Called only after the chunk's bytes are durably stored, so
    /// a receipt never names a chunk that is not there.
    pub async fn put_upload_chunk(&self, upload: &str, c: &ChunkReceipt) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO data_upload_chunks (upload, ix, bytes, sha256) VALUES ($1, $2, $3, $4)
             ON CONFLICT (upload, ix) DO UPDATE SET bytes = excluded.bytes, sha256 = excluded.sha256"
        )
        .bind(upload)
        .bind(c.ix)
        .bind(c.bytes)
        .bind(&c.sha256)
        .execute(pool)
        .await
        .map(drop)?);
        Ok(())
    }

    /// Cancels an open upload: it no longer counts against the tenant's limits. False when it
    /// was not open.
    pub async fn cancel_upload(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            let n = sqlx::query("UPDATE data_uploads SET state = 'cancelled' WHERE tenant = $1 AND id = $2 AND state = 'open'")
                .bind(tenant)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM data_upload_chunks WHERE upload = $1").bind(id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(n == 1)
        })
    }

    /// Forgets an upload's chunk receipts (its chunks are to be sent again).
    pub async fn clear_upload_chunks(&self, upload: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("DELETE FROM data_upload_chunks WHERE upload = $1")
            .bind(upload)
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// An upload's received chunks, in order.
    pub async fn upload_chunks(&self, upload: &str) -> Result<Vec<ChunkReceipt>, StoreError> {
        let rows: Vec<(i64, i64, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT ix, bytes, sha256 FROM data_upload_chunks WHERE upload = $1 ORDER BY ix")
                .bind(upload)
                .fetch_all(pool)
                .await?);
        Ok(rows.into_iter().map(|(ix, bytes, sha256)| ChunkReceipt { ix, bytes, sha256 }).collect())
    }

    /// The size of a tenant's object, if it holds it.
    pub async fn data_object(&self, tenant: &str, sha256: &str) -> Result<Option<i64>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT bytes FROM data_objects WHERE tenant = $1 AND sha256 = $2")
            .bind(tenant)
            .bind(sha256)
            .fetch_optional(pool)
            .await?))
    }

    /// Marks an upload complete and records its object, in one transaction; the chunks'
    /// receipts go with it. Idempotent: finishing a finished upload changes nothing.
    pub async fn finish_upload(&self, u: &UploadRow, now_ms: i64) -> Result<(), StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "INSERT INTO data_objects (tenant, sha256, bytes, created_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, sha256) DO NOTHING",
            )
            .bind(&u.tenant)
            .bind(&u.sha256)
            .bind(u.size_bytes)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE data_uploads SET state = 'complete' WHERE id = $1").bind(&u.id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM data_upload_chunks WHERE upload = $1").bind(&u.id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Creates a dataset unless the tenant has one of that id (false) or `max` of them (None).
    pub async fn create_dataset(&self, d: &DatasetRow, max: i64) -> Result<Option<bool>, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(&self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_DATA_LOCK).execute(&mut *tx).await?;
            }
            let (held, same): (i64, i64) = sqlx::query_as(
                "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(SUM(CASE WHEN id = $2 THEN 1 ELSE 0 END), 0) AS BIGINT)
                 FROM datasets WHERE tenant = $1",
            )
            .bind(&d.tenant)
            .bind(&d.id)
            .fetch_one(&mut *tx)
            .await?;
            if same > 0 {
                return Ok(Some(false));
            }
            if held >= max {
                return Ok(None);
            }
            sqlx::query("INSERT INTO datasets (tenant, id, residency, listed_version, offer, created_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&d.tenant)
                .bind(&d.id)
                .bind(&d.residency)
                .bind(&d.listed_version)
                .bind(&d.offer)
                .bind(d.created_ms)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(true))
        })
    }

    pub async fn dataset(&self, tenant: &str, id: &str) -> Result<Option<DatasetRow>, StoreError> {
        let row: Option<DatasetTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT tenant, id, residency, listed_version, offer, created_ms FROM datasets WHERE tenant = $1 AND id = $2"
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(dataset_row))
    }

    /// A tenant's datasets by id, at most `limit`.
    pub async fn datasets(&self, tenant: &str, limit: i64) -> Result<Vec<DatasetRow>, StoreError> {
        let rows: Vec<DatasetTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT tenant, id, residency, listed_version, offer, created_ms FROM datasets WHERE tenant = $1 ORDER BY id LIMIT $2"
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(dataset_row).collect())
    }

    /// Every tenant's listed datasets (the catalogue), by tenant and id, at most `limit`.
    pub async fn listed_datasets(&self, limit: i64) -> Result<Vec<DatasetRow>, StoreError> {
        let rows: Vec<DatasetTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT tenant, id, residency, listed_version, offer, created_ms FROM datasets
             WHERE listed_version IS NOT NULL ORDER BY tenant, id LIMIT $1"
        )
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(dataset_row).collect())
    }

    /// Points a dataset's listing at a version with its offer (or withdraws it with `None`).
    pub async fn set_listing(&self, tenant: &str, id: &str, version: Option<&str>, offer: Option<&str>) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query("UPDATE datasets SET listed_version = $3, offer = $4 WHERE tenant = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .bind(version)
            .bind(offer)
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Adds a version with its lineage (the IRIs it was derived from).
    pub async fn put_version(&self, v: &VersionRow, derived_from: &[String], max_versions: i64) -> Result<PutVersion, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(&self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_DATA_LOCK).execute(&mut *tx).await?;
            }
            let stored: Option<String> =
                sqlx::query_scalar("SELECT croissant_sha256 FROM dataset_versions WHERE tenant = $1 AND dataset = $2 AND version = $3")
                    .bind(&v.tenant)
                    .bind(&v.dataset)
                    .bind(&v.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            match stored {
                Some(h) if h == v.croissant_sha256 => return Ok(PutVersion::Unchanged),
                Some(_) => return Ok(PutVersion::Conflict),
                None => {}
            }
            let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM dataset_versions WHERE tenant = $1 AND dataset = $2")
                .bind(&v.tenant)
                .bind(&v.dataset)
                .fetch_one(&mut *tx)
                .await?;
            if held >= max_versions {
                return Ok(PutVersion::TooMany);
            }
            sqlx::query(
                "INSERT INTO dataset_versions (tenant, dataset, version, state, croissant, croissant_sha256, summary, created_ms, published_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&v.tenant)
            .bind(&v.dataset)
            .bind(&v.version)
            .bind(&v.state)
            .bind(&v.croissant)
            .bind(&v.croissant_sha256)
            .bind(&v.summary)
            .bind(v.created_ms)
            .bind(v.published_ms)
            .execute(&mut *tx)
            .await?;
            for parent in derived_from {
                sqlx::query(
                    "INSERT INTO dataset_lineage (tenant, dataset, version, parent) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (tenant, dataset, version, parent) DO NOTHING",
                )
                .bind(&v.tenant)
                .bind(&v.dataset)
                .bind(&v.version)
                .bind(parent)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(PutVersion::Created)
        })
    }

    pub async fn dataset_version(&self, tenant: &str, dataset: &str, version: &str) -> Result<Option<VersionRow>, StoreError> {
        let row: Option<VersionTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT tenant, dataset, version, state, croissant, croissant_sha256, summary, created_ms, published_ms
             FROM dataset_versions WHERE tenant = $1 AND dataset = $2 AND version = $3"
        )
        .bind(tenant)
        .bind(dataset)
        .bind(version)
        .fetch_optional(pool)
        .await?);
        Ok(row.map(version_row))
    }

    /// A dataset's versions, oldest first.
    pub async fn dataset_versions(&self, tenant: &str, dataset: &str) -> Result<Vec<VersionRow>, StoreError> {
        let rows: Vec<VersionTuple> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT tenant, dataset, version, state, croissant, croissant_sha256, summary, created_ms, published_ms
             FROM dataset_versions WHERE tenant = $1 AND dataset = $2 ORDER BY created_ms, version"
        )
        .bind(tenant)
        .bind(dataset)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(version_row).collect())
    }

    /// Publishes a draft version; false when it was not a draft.
    pub async fn publish_version(&self, tenant: &str, dataset: &str, version: &str, now_ms: i64) -> Result<bool, StoreError> {
        let done = on_pool!(self, |pool| sqlx::query(
            "UPDATE dataset_versions SET state = 'published', published_ms = $4
             WHERE tenant = $1 AND dataset = $2 AND version = $3 AND state = 'draft'"
        )
        .bind(tenant)
        .bind(dataset)
        .bind(version)
        .bind(now_ms)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(done == 1)
    }

    /// The versions derived from `parent` (an IRI), as (tenant, dataset, version).
    pub async fn derived_versions(&self, parent: &str, limit: i64) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as(
            "SELECT tenant, dataset, version FROM dataset_lineage WHERE parent = $1 ORDER BY tenant, dataset, version LIMIT $2"
        )
        .bind(parent)
        .bind(limit)
        .fetch_all(pool)
        .await?))
    }
}
