//! Filing rows (`govern`): one document per filing with a revision that a change must name, the
//! history of its changes, and the files attached to filings, stored once by SHA-256.

use base64::Engine as _;

use crate::{BeginWrite, Db, Store, StoreError};

/// Guards the filings' sequence on a shared PostgreSQL database.
const PG_FILINGS_LOCK: i64 = 0x0061_6970_6c75_7305;

/// A filing as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilingRow {
    pub id: String,
    pub tenant: Option<String>,
    pub seq: i64,
    pub rev: i64,
    pub doc: String,
}

impl Store {
    /// Writes revision `rev` of a filing and its history event, if the stored revision is
    /// `rev - 1` (none for the first). False, and nothing written, when another writer changed
    /// it meanwhile.
    pub async fn put_filing(&self, id: &str, tenant: Option<&str>, rev: i64, doc: &str, event: &str) -> Result<bool, StoreError> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            if matches!(self.db, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_FILINGS_LOCK).execute(&mut *tx).await?;
            }
            let stored: Option<i64> = sqlx::query_scalar("SELECT rev FROM filings WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
            if stored.unwrap_or(0) != rev - 1 {
                return Ok(false);
            }
            let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM filings").fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO filings (id, tenant, seq, rev, doc) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, rev = excluded.rev, doc = excluded.doc",
            )
            .bind(id)
            .bind(tenant)
            .bind(seq)
            .bind(rev)
            .bind(doc)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO filing_events (filing_id, rev, doc) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(rev)
                .bind(event)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    pub async fn filing(&self, id: &str) -> Result<Option<FilingRow>, StoreError> {
        let row: Option<(String, Option<String>, i64, i64, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT id, tenant, seq, rev, doc FROM filings WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?);
        Ok(row.map(|(id, tenant, seq, rev, doc)| FilingRow { id, tenant, seq, rev, doc }))
    }

    /// Filings changed after `seq`, oldest change first.
    pub async fn filings_since(&self, seq: i64) -> Result<Vec<FilingRow>, StoreError> {
        let rows: Vec<(String, Option<String>, i64, i64, String)> =
            on_pool!(self, |pool| sqlx::query_as("SELECT id, tenant, seq, rev, doc FROM filings WHERE seq > $1 ORDER BY seq")
                .bind(seq)
                .fetch_all(pool)
                .await?);
        Ok(rows.into_iter().map(|(id, tenant, seq, rev, doc)| FilingRow { id, tenant, seq, rev, doc }).collect())
    }

    /// A filing's history, oldest first.
    pub async fn filing_events(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(on_pool!(self, |pool| sqlx::query_scalar("SELECT doc FROM filing_events WHERE filing_id = $1 ORDER BY rev")
            .bind(id)
            .fetch_all(pool)
            .await?))
    }

    /// Stores `data` under its SHA-256 (hex), once: the same bytes stored again change nothing.
    pub async fn put_blob(&self, sha256: &str, data: &[u8]) -> Result<(), StoreError> {
        let text = base64::engine::general_purpose::STANDARD.encode(data);
        let size = i64::try_from(data.len()).unwrap_or(i64::MAX);
        on_pool!(self, |pool| sqlx::query(
            "INSERT INTO blobs (sha256, size_bytes, data) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING"
        )
        .bind(sha256)
        .bind(size)
        .bind(&text)
        .execute(pool)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let text: Option<String> =
            on_pool!(self, |pool| sqlx::query_scalar("SELECT data FROM blobs WHERE sha256 = $1").bind(sha256).fetch_optional(pool).await?);
        text.map(|t| base64::engine::general_purpose::STANDARD.decode(t).map_err(|e| StoreError::Corrupt(serde::de::Error::custom(e))))
            .transpose()
    }
}
