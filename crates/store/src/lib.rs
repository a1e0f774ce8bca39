//! The store: the only crate that knows SQL. Embedded SQLite in a data directory today;
//! PostgreSQL behind the same functions when several aiplus instances share one database.
//!
//! Architecture invariant: every statement is a constant string with bound parameters; nothing
//! here builds SQL with `format!`. Records are stored as JSON documents next to the columns that
//! are queried, so the domain types stay in the domain crates and this crate stays small.
//!
//! Durability: SQLite runs in WAL mode with `synchronous = FULL`, so a write that returned is on
//! disk and survives a kill -9 or a power cut.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, de::DeserializeOwned};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored record is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
}

/// Schema steps, applied in order once each; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE hubs (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_ms INTEGER NOT NULL);
     CREATE TABLE clusters (id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_ms INTEGER NOT NULL);
     CREATE TABLE network_meta (key TEXT PRIMARY KEY, doc TEXT NOT NULL);
     CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        idempotency_key TEXT,
        state TEXT NOT NULL,
        submitted_ms INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE UNIQUE INDEX jobs_idempotency ON jobs (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
     CREATE INDEX jobs_tenant_seq ON jobs (tenant, seq);
     CREATE INDEX jobs_state_seq ON jobs (state, seq);",
    // The job lifecycle's history and the platform's usage ledger (append-only).
    "CREATE TABLE job_events (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at_ms INTEGER NOT NULL,
        doc TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
     );
     CREATE TABLE usage_events (
        id TEXT PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        tenant TEXT NOT NULL,
        pillar TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX usage_tenant_at ON usage_events (tenant, at_ms);",
    // API keys: only the SHA-256 of each secret is kept.
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        doc TEXT NOT NULL
     );
     CREATE INDEX api_keys_tenant ON api_keys (tenant);",
];

/// `PRAGMA user_version = n` after step n; one entry per migration.
const USER_VERSION: [&str; 3] = ["PRAGMA user_version = 1", "PRAGMA user_version = 2", "PRAGMA user_version = 3"];
const _: () = assert!(MIGRATIONS.len() == USER_VERSION.len(), "one user_version per migration");

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// A job row: the columns the store queries by, and the document the domain owns.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRow<T> {
    pub id: String,
    pub tenant: String,
    pub idempotency_key: Option<String>,
    pub state: String,
    pub submitted_ms: i64,
    pub doc: T,
}

/// One entry of the usage ledger. `id` is unique: writing the same event twice is refused, so
/// a retried write can never count twice.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageRow<T> {
    pub id: String,
    pub at_ms: i64,
    pub tenant: String,
    pub pillar: String,
    pub doc: T,
}

/// Everything one step of the job lifecycle writes, stored in one transaction.
pub struct Record<'a, J, E, U> {
    /// (job id, new state, new document)
    pub jobs: Vec<(&'a str, &'a str, &'a J)>,
    /// (job id, event document); sequence numbers are assigned here.
    pub events: Vec<(&'a str, i64, &'a E)>,
    pub usage: Vec<&'a UsageRow<U>>,
}

/// Filters for listing jobs; every field optional. `limit` is capped by the caller.
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub tenant: Option<String>,
    pub state: Option<String>,
    /// Only jobs submitted after this job id (keyset pagination).
    pub after: Option<String>,
    pub limit: u32,
}

impl Store {
    /// Opens (creating if needed) the SQLite database `aiplus.db` in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir { path: data_dir.display().to_string(), source })?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(data_dir.join("aiplus.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// An in-memory database, for tests.
    pub async fn memory() -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // One connection: every connection to :memory: is its own database.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *tx).await?;
        for (i, step) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            sqlx::raw_sql(*step).execute(&mut *tx).await?;
            // PRAGMA takes no bound parameters, so each step's version is a constant here.
            sqlx::raw_sql(USER_VERSION[i]).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- network ----

    /// Whether the network tables were ever written (a fresh data directory is seeded once).
    pub async fn network_seeded(&self) -> Result<bool, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM network_meta WHERE key = 'seeded'").fetch_one(&self.pool).await?;
        Ok(n > 0)
    }

    /// Replaces the whole network in one transaction: hubs, clusters and the rest (links, GPU
    /// models) as one document, with the job changes the new network forces (`jobs`: id, state,
    /// document). Either all of it is stored or none.
    pub async fn save_network<H: Serialize, C: Serialize, M: Serialize, J: Serialize>(
        &self,
        hubs: &[(String, H)],
        clusters: &[(String, C)],
        meta: &M,
        jobs: &[(&str, &str, &J)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        write_jobs(&mut tx, jobs).await?;
        sqlx::query("DELETE FROM hubs").execute(&mut *tx).await?;
        sqlx::query("DELETE FROM clusters").execute(&mut *tx).await?;
        for (i, (id, h)) in hubs.iter().enumerate() {
            sqlx::query("INSERT INTO hubs (id, doc, updated_ms) VALUES (?, ?, ?)")
                .bind(id)
                .bind(serde_json::to_string(&(i, h))?)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        for (i, (id, c)) in clusters.iter().enumerate() {
            sqlx::query("INSERT INTO clusters (id, doc, updated_ms) VALUES (?, ?, ?)")
                .bind(id)
                .bind(serde_json::to_string(&(i, c))?)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("INSERT INTO network_meta (key, doc) VALUES ('rest', ?) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc")
            .bind(serde_json::to_string(meta)?)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO network_meta (key, doc) VALUES ('seeded', 'true') ON CONFLICT (key) DO NOTHING").execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The stored network, in the order it was saved: (hubs, clusters, the rest).
    pub async fn load_network<H: DeserializeOwned, C: DeserializeOwned, M: DeserializeOwned>(
        &self,
    ) -> Result<Option<(Vec<H>, Vec<C>, M)>, StoreError> {
        let Some(meta) =
            sqlx::query_scalar::<_, String>("SELECT doc FROM network_meta WHERE key = 'rest'").fetch_optional(&self.pool).await?
        else {
            return Ok(None);
        };
        let mut hubs: Vec<(usize, H)> = Vec::new();
        for doc in sqlx::query_scalar::<_, String>("SELECT doc FROM hubs").fetch_all(&self.pool).await? {
            hubs.push(serde_json::from_str(&doc)?);
        }
        let mut clusters: Vec<(usize, C)> = Vec::new();
        for doc in sqlx::query_scalar::<_, String>("SELECT doc FROM clusters").fetch_all(&self.pool).await? {
            clusters.push(serde_json::from_str(&doc)?);
        }
        hubs.sort_by_key(|(i, _)| *i);
        clusters.sort_by_key(|(i, _)| *i);
        Ok(Some((hubs.into_iter().map(|(_, h)| h).collect(), clusters.into_iter().map(|(_, c)| c).collect(), serde_json::from_str(&meta)?)))
    }

    // ---- jobs ----

    /// Inserts a job. If the tenant already submitted one with the same idempotency key, nothing
    /// is written and the earlier job is returned instead (`Err` of the existing row).
    pub async fn insert_job<T: Serialize + DeserializeOwned, E: Serialize>(
        &self,
        row: &JobRow<T>,
        events: &[E],
    ) -> Result<Result<(), JobRow<T>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(key) = &row.idempotency_key {
            let existing = sqlx::query(
                "SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs WHERE tenant = ? AND idempotency_key = ?",
            )
            .bind(&row.tenant)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(r) = existing {
                return Ok(Err(job_from_row(&r)?));
            }
        }
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetch_one(&mut *tx).await?;
        sqlx::query("INSERT INTO jobs (id, tenant, idempotency_key, state, submitted_ms, seq, doc) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&row.id)
            .bind(&row.tenant)
            .bind(&row.idempotency_key)
            .bind(&row.state)
            .bind(row.submitted_ms)
            .bind(seq)
            .bind(serde_json::to_string(&row.doc)?)
            .execute(&mut *tx)
            .await?;
        for (i, e) in events.iter().enumerate() {
            sqlx::query("INSERT INTO job_events (job_id, seq, at_ms, doc) VALUES (?, ?, ?, ?)")
                .bind(&row.id)
                .bind(i as i64 + 1)
                .bind(row.submitted_ms)
                .bind(serde_json::to_string(e)?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Writes several jobs' new state and document in one transaction.
    pub async fn update_jobs<T: Serialize>(&self, updates: &[(&str, &str, &T)]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        write_jobs(&mut tx, updates).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes job changes, their lifecycle events and usage events, all or nothing.
    pub async fn record<J: Serialize, E: Serialize, U: Serialize>(&self, r: &Record<'_, J, E, U>) -> Result<(), StoreError> {
        if r.jobs.is_empty() && r.events.is_empty() && r.usage.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        write_jobs(&mut tx, &r.jobs).await?;
        for (job_id, at_ms, doc) in &r.events {
            sqlx::query(
                "INSERT INTO job_events (job_id, seq, at_ms, doc)
                 VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = ?1), ?2, ?3)",
            )
            .bind(job_id)
            .bind(at_ms)
            .bind(serde_json::to_string(doc)?)
            .execute(&mut *tx)
            .await?;
        }
        for u in &r.usage {
            sqlx::query("INSERT INTO usage_events (id, at_ms, tenant, pillar, doc) VALUES (?, ?, ?, ?, ?)")
                .bind(&u.id)
                .bind(u.at_ms)
                .bind(&u.tenant)
                .bind(&u.pillar)
                .bind(serde_json::to_string(&u.doc)?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A job's lifecycle events, oldest first: (sequence, time, document).
    pub async fn job_events<E: DeserializeOwned>(&self, job_id: &str) -> Result<Vec<(i64, i64, E)>, StoreError> {
        let rows =
            sqlx::query("SELECT seq, at_ms, doc FROM job_events WHERE job_id = ? ORDER BY seq").bind(job_id).fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let doc: String = r.try_get("doc")?;
            out.push((r.try_get("seq")?, r.try_get("at_ms")?, serde_json::from_str(&doc)?));
        }
        Ok(out)
    }

    /// Usage events, oldest first, optionally for one tenant and pillar, within [from, to).
    pub async fn usage<U: DeserializeOwned>(
        &self,
        tenant: Option<&str>,
        pillar: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> Result<Vec<UsageRow<U>>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at_ms, tenant, pillar, doc FROM usage_events
             WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR pillar = ?2) AND at_ms >= ?3 AND at_ms < ?4
             ORDER BY at_ms, id LIMIT ?5",
        )
        .bind(tenant)
        .bind(pillar)
        .bind(from_ms)
        .bind(to_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let doc: String = r.try_get("doc")?;
            out.push(UsageRow {
                id: r.try_get("id")?,
                at_ms: r.try_get("at_ms")?,
                tenant: r.try_get("tenant")?,
                pillar: r.try_get("pillar")?,
                doc: serde_json::from_str(&doc)?,
            });
        }
        Ok(out)
    }

    /// The job a tenant submitted with this idempotency key, if any.
    pub async fn job_by_key<T: DeserializeOwned>(&self, tenant: &str, key: &str) -> Result<Option<JobRow<T>>, StoreError> {
        let r =
            sqlx::query("SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs WHERE tenant = ? AND idempotency_key = ?")
                .bind(tenant)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        r.as_ref().map(job_from_row).transpose()
    }

    pub async fn get_job<T: DeserializeOwned>(&self, id: &str) -> Result<Option<JobRow<T>>, StoreError> {
        let r = sqlx::query("SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(job_from_row).transpose()
    }

    pub async fn list_jobs<T: DeserializeOwned>(&self, f: &JobFilter) -> Result<Vec<JobRow<T>>, StoreError> {
        // Optional filters as `? IS NULL OR column = ?`, so one constant statement serves all.
        let rows = sqlx::query(
            "SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs
             WHERE (?1 IS NULL OR tenant = ?1)
               AND (?2 IS NULL OR state = ?2)
               AND (?3 IS NULL OR seq > (SELECT seq FROM jobs WHERE id = ?3))
             ORDER BY seq LIMIT ?4",
        )
        .bind(&f.tenant)
        .bind(&f.state)
        .bind(&f.after)
        .bind(i64::from(f.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Jobs in any of `states`, oldest first: what the scheduler must hold on start-up.
    pub async fn jobs_in_states<T: DeserializeOwned>(&self, states: &[&str]) -> Result<Vec<JobRow<T>>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, tenant, idempotency_key, state, submitted_ms, doc FROM jobs
             WHERE state IN (SELECT value FROM json_each(?)) ORDER BY seq",
        )
        .bind(serde_json::to_string(states)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    // ---- API keys ----

    pub async fn insert_key<K: Serialize>(&self, id: &str, hash: &str, tenant: &str, doc: &K) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO api_keys (id, hash, tenant, doc) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(hash)
            .bind(tenant)
            .bind(serde_json::to_string(doc)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn update_key<K: Serialize>(&self, id: &str, doc: &K) -> Result<bool, StoreError> {
        let r =
            sqlx::query("UPDATE api_keys SET doc = ? WHERE id = ?").bind(serde_json::to_string(doc)?).bind(id).execute(&self.pool).await?;
        Ok(r.rows_affected() == 1)
    }

    /// Every key as (hash, document), optionally for one tenant.
    pub async fn keys<K: DeserializeOwned>(&self, tenant: Option<&str>) -> Result<Vec<(String, K)>, StoreError> {
        let rows = sqlx::query("SELECT hash, doc FROM api_keys WHERE (?1 IS NULL OR tenant = ?1) ORDER BY id")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let doc: String = r.try_get("doc")?;
            out.push((r.try_get("hash")?, serde_json::from_str(&doc)?));
        }
        Ok(out)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn write_jobs<T: Serialize>(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, updates: &[(&str, &str, &T)]) -> Result<(), StoreError> {
    for (id, state, doc) in updates {
        sqlx::query("UPDATE jobs SET state = ?, doc = ? WHERE id = ?")
            .bind(state)
            .bind(serde_json::to_string(doc)?)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn job_from_row<T: DeserializeOwned>(r: &sqlx::sqlite::SqliteRow) -> Result<JobRow<T>, StoreError> {
    let doc: String = r.try_get("doc")?;
    Ok(JobRow {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        idempotency_key: r.try_get("idempotency_key")?,
        state: r.try_get("state")?,
        submitted_ms: r.try_get("submitted_ms")?,
        doc: serde_json::from_str(&doc)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, key: Option<&str>) -> JobRow<serde_json::Value> {
        JobRow {
            id: id.into(),
            tenant: "t".into(),
            idempotency_key: key.map(Into::into),
            state: "queued".into(),
            submitted_ms: 1,
            doc: serde_json::json!({"id": id}),
        }
    }

    #[tokio::test]
    async fn idempotent_insert_returns_the_first_job() {
        let s = Store::memory().await.unwrap();
        assert!(s.insert_job(&row("a", Some("k")), &[] as &[i32]).await.unwrap().is_ok());
        let again = s.insert_job(&row("b", Some("k")), &[] as &[i32]).await.unwrap();
        assert_eq!(again.unwrap_err().id, "a");
        assert!(s.get_job::<serde_json::Value>("b").await.unwrap().is_none());
        // No key: no deduplication.
        assert!(s.insert_job(&row("c", None), &[] as &[i32]).await.unwrap().is_ok());
        assert!(s.insert_job(&row("d", None), &[] as &[i32]).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        let s = Store::memory().await.unwrap();
        for id in ["a", "b", "c", "d"] {
            s.insert_job(&row(id, None), &[] as &[i32]).await.unwrap().unwrap();
        }
        s.update_jobs(&[("b", "cancelled", &serde_json::json!({"id": "b"}))]).await.unwrap();
        let page: Vec<JobRow<serde_json::Value>> =
            s.list_jobs(&JobFilter { after: Some("a".into()), limit: 2, ..Default::default() }).await.unwrap();
        assert_eq!(page.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        let queued: Vec<JobRow<serde_json::Value>> = s.jobs_in_states(&["queued"]).await.unwrap();
        assert_eq!(queued.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["a", "c", "d"]);
        let cancelled: Vec<JobRow<serde_json::Value>> =
            s.list_jobs(&JobFilter { state: Some("cancelled".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(cancelled.len(), 1);
    }

    #[tokio::test]
    async fn record_is_all_or_nothing_and_usage_ids_are_unique() {
        let s = Store::memory().await.unwrap();
        s.insert_job(&row("a", None), &[] as &[i32]).await.unwrap().unwrap();
        let doc = serde_json::json!({"id": "a", "v": 2});
        let ev = serde_json::json!({"to": "succeeded"});
        let usage = UsageRow {
            id: "job:a:1".into(),
            at_ms: 5,
            tenant: "t".into(),
            pillar: "compute".into(),
            doc: serde_json::json!({"gpu_seconds": 1.0}),
        };
        s.record(&Record { jobs: vec![("a", "succeeded", &doc)], events: vec![("a", 5, &ev), ("a", 6, &ev)], usage: vec![&usage] })
            .await
            .unwrap();
        // The same usage id again: the whole record is refused, the job is not changed.
        let doc3 = serde_json::json!({"id": "a", "v": 3});
        let again = s.record(&Record { jobs: vec![("a", "failed", &doc3)], events: vec![("a", 7, &ev)], usage: vec![&usage] }).await;
        assert!(again.is_err());
        let job: JobRow<serde_json::Value> = s.get_job("a").await.unwrap().unwrap();
        assert_eq!((job.state.as_str(), &job.doc), ("succeeded", &doc));
        let events: Vec<(i64, i64, serde_json::Value)> = s.job_events("a").await.unwrap();
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
        let u: Vec<UsageRow<serde_json::Value>> = s.usage(Some("t"), None, 0, i64::MAX, 10).await.unwrap();
        assert_eq!(u.len(), 1);
    }

    #[tokio::test]
    async fn reopening_keeps_what_was_written() {
        let dir = std::env::temp_dir().join(format!("aiplus-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let s = Store::open(&dir).await.unwrap();
            s.insert_job(&row("a", Some("k")), &[] as &[i32]).await.unwrap().unwrap();
            s.save_network(&[("h".to_string(), 1)], &[("c".to_string(), 2)], &3, &[] as &[(&str, &str, &i32)], 0).await.unwrap();
            s.close().await;
        }
        let s = Store::open(&dir).await.unwrap();
        assert!(s.network_seeded().await.unwrap());
        let (h, c, m): (Vec<i32>, Vec<i32>, i32) = s.load_network().await.unwrap().unwrap();
        assert_eq!((h, c, m), (vec![1], vec![2], 3));
        assert_eq!(s.get_job::<serde_json::Value>("a").await.unwrap().unwrap().idempotency_key.as_deref(), Some("k"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
