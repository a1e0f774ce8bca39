//! The transparency log's rows (`tlog`): entries and signed checkpoints. There is no update
//! and no delete here on purpose: the log only grows, and `tlog` checks at start that what is
//! stored still matches the last checkpoint it signed.

use crate::{BeginWrite, Db, Store, StoreError};

/// Guards appends on a shared PostgreSQL database: one writer picks the next index at a time.
const PG_TLOG_LOCK: i64 = 0x0061_6970_6c75_7303;

/// One stored entry: its public leaf (the bytes that are hashed and served) and the full record
/// it commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    pub index: i64,
    pub at_ms: i64,
    pub leaf: String,
    pub record: String,
}

impl Store {
    /// Stores entry `index` and the checkpoint signed over the tree it ends, in one
    /// transaction. False (and nothing stored) when `index` is taken: another instance
    /// appended first.
    pub async fn append_log(&self, row: &LogRow, checkpoint: &str) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_TLOG_LOCK).execute(&mut *tx).await?;
            }
            let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_entries").fetch_one(&mut *tx).await?;
            if next != row.index {
                return Ok(false);
            }
            sqlx::query("INSERT INTO tlog_entries (idx, at_ms, leaf, record) VALUES ($1, $2, $3, $4)")
                .bind(row.index)
                .bind(row.at_ms)
                .bind(&row.leaf)
                .bind(&row.record)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO tlog_checkpoints (size, at_ms, note) VALUES ($1, $2, $3)")
                .bind(row.index + 1)
                .bind(row.at_ms)
                .bind(checkpoint)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Stores a checkpoint (at start, for entries stored after the last one); an existing
    /// checkpoint of that size stays.
    pub async fn put_log_checkpoint(&self, size: i64, at_ms: i64, note: &str) -> Result<(), StoreError> {
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO tlog_checkpoints (size, at_ms, note) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING"
        )
        .bind(size)
        .bind(at_ms)
        .bind(note)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Entries from `from`, in order, at most `limit`.
    pub async fn log_entries(&self, from: i64, limit: u32) -> Result<Vec<LogRow>, StoreError> {
        let rows: Vec<(i64, i64, String, String)> = on_pool!(self, |pool| sqlx::query_as(
            "SELECT idx, at_ms, leaf, record FROM tlog_entries WHERE idx >= $1 ORDER BY idx LIMIT $2"
        )
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(index, at_ms, leaf, record)| LogRow { index, at_ms, leaf, record }).collect())
    }

    /// The leaves only (what tiles and entry bundles serve), from `from`, at most `limit`.
    pub async fn log_leaves(&self, from: i64, limit: u32) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as("SELECT idx, leaf FROM tlog_entries WHERE idx >= $1 ORDER BY idx LIMIT $2")
            .bind(from)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?))
    }

    /// Entries stored.
    pub async fn log_size(&self) -> Result<i64, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM tlog_entries").fetch_one(pool).await?))
    }

    /// The signed checkpoint of `size` entries, if stored.
    pub async fn log_checkpoint(&self, size: i64) -> Result<Option<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT note FROM tlog_checkpoints WHERE size = $1")
            .bind(size)
            .fetch_optional(pool)
            .await?))
    }

    /// The checkpoint of the largest size: (size, signed note).
    pub async fn latest_log_checkpoint(&self) -> Result<Option<(i64, String)>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_as("SELECT size, note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(pool)
            .await?))
    }
}
