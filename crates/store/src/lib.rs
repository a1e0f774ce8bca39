//! The store: the only crate that knows SQL. Embedded SQLite in a data directory by default;
//! PostgreSQL behind the same functions when several aiplus instances share one database.
//! Statements use `$n` parameters, which both databases understand, so each is written once.
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

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored record is not valid JSON: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("data directory {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
}

/// Guards PostgreSQL migrations against two instances starting at once.
const PG_MIGRATION_LOCK: i64 = 0x0061_6970_6c75_7301;
/// Held by the one instance that runs the compute lifecycle on a shared database.
const PG_COMPUTE_LOCK: i64 = 0x0061_6970_6c75_7302;

/// Where the data lives. Every public function works on both.
#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has. The body is compiled once
/// per database, so each statement is checked against both drivers' types.
macro_rules! on_pool {
    ($self:expr, |$pool:ident| $body:expr) => {
        match &$self.db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

pub use agents::{AgentRow, AgentRunRow};
pub use alerts::AlertRow;
pub use collections::{ChunkRow, CollectionLimits, CollectionRow, DocumentRow, PutDocument};
pub use console::ReportRow;
pub use conversations::{ConversationRow, ItemLimits};
pub use data::{ChunkReceipt, CreateUpload, DatasetRow, PutVersion, UploadRow, VersionRow};
pub use data_market::{ContractRow, RegistrationRow, ValuationRow};
pub use data_runs::{InsertRun, RunRow};
pub use filings::FilingRow;
pub use monitor::DeliveryRow;
pub use targets::TargetEntryRow;

/// A transaction that will write. On SQLite it takes the write lock at `BEGIN IMMEDIATE`, where
/// the busy timeout applies: a deferred transaction that reads first and writes later fails at
/// once with "database is locked" if another connection wrote in between (WAL mode cannot
/// upgrade its snapshot), which concurrent API writers met as a 500.
trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for sqlx::SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for sqlx::PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

/// `UPDATE jobs` for each (id, state, document) inside an open transaction.
macro_rules! write_jobs {
    ($tx:expr, $updates:expr) => {
        for (id, state, doc) in $updates {
            sqlx::query("UPDATE jobs SET state = $1, doc = $2 WHERE id = $3")
                .bind(*state)
                .bind(serde_json::to_string(doc)?)
                .bind(*id)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// `INSERT INTO usage_events` for each ledger row inside an open transaction.
macro_rules! insert_usage {
    ($tx:expr, $entries:expr) => {
        for e in $entries {
            sqlx::query("INSERT INTO usage_events (id, at_ms, tenant, pillar, doc) VALUES ($1, $2, $3, $4, $5)")
                .bind(&e.id)
                .bind(e.at_ms)
                .bind(&e.tenant)
                .bind(&e.pillar)
                .bind(serde_json::to_string(&e.doc)?)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

mod agents;
mod alerts;
mod collections;
mod compute;
mod console;
mod conversations;
mod data;
mod data_market;
mod data_runs;
mod eval;
mod filings;
mod gateway;
mod govern;
mod identity;
mod ledger;
mod models;
mod monitor;
mod schema;
mod targets;
mod tlog;

pub use tlog::LogRow;

#[derive(Clone)]
pub struct Store {
    db: Db,
}

/// Holds the compute lock on a shared database for as long as it lives.
pub struct ComputeLock {
    _conn: Option<sqlx::PgConnection>,
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

/// Most connections one process opens to PostgreSQL.
pub const PG_MAX_CONNECTIONS: u32 = 16;

impl Store {
    /// Opens (creating if needed) the SQLite database `aiplus.db` in `data_dir`.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir_err = |source| StoreError::DataDir { path: data_dir.display().to_string(), source };
        std::fs::create_dir_all(data_dir).map_err(dir_err)?;
        private(data_dir, 0o700).map_err(dir_err)?;
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(data_dir.join("aiplus.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        let store = Self { db: Db::Sqlite(pool) };
        store.migrate().await?;
        // The database holds every tenant's records and upstream keys: only the server's user
        // may read it (SQLite creates its files with the umask's mode).
        for f in ["aiplus.db", "aiplus.db-wal", "aiplus.db-shm"] {
            let p = data_dir.join(f);
            if p.exists() {
                private(&p, 0o600).map_err(dir_err)?;
            }
        }
        Ok(store)
    }

    /// Connects to a PostgreSQL database shared by several aiplus instances
    /// (`postgres://user:password@host:port/db`) and brings its schema up to date.
    pub async fn connect_postgres(url: &str) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool =
            PgPoolOptions::new().max_connections(PG_MAX_CONNECTIONS).acquire_timeout(Duration::from_secs(5)).connect_with(opts).await?;
        let store = Self { db: Db::Postgres(pool) };
        store.migrate().await?;
        Ok(store)
    }

    /// An in-memory database, for tests.
    /// Whether other instances may share this store (PostgreSQL): what they change must then
    /// be followed; an embedded SQLite store has only this instance.
    pub fn shared(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    pub async fn memory() -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?;
        // One connection: every connection to :memory: is its own database.
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
        let store = Self { db: Db::Sqlite(pool) };
        store.migrate().await?;
        Ok(store)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn kind(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin_write().await?;
                let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *tx).await?;
                for (i, step) in schema::MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
                    sqlx::raw_sql(*step).execute(&mut *tx).await?;
                    // PRAGMA takes no bound parameters, so each step's version is a constant here.
                    sqlx::raw_sql(schema::USER_VERSION[i]).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin_write().await?;
                // Two instances starting together: the second waits here, then finds the work done.
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *tx).await?;
                sqlx::raw_sql("CREATE TABLE IF NOT EXISTS aiplus_schema (version BIGINT NOT NULL)").execute(&mut *tx).await?;
                let version: Option<i64> = sqlx::query_scalar("SELECT version FROM aiplus_schema").fetch_optional(&mut *tx).await?;
                if version.is_none() {
                    sqlx::query("INSERT INTO aiplus_schema (version) VALUES (0)").execute(&mut *tx).await?;
                }
                for (i, step) in schema::MIGRATIONS.iter().enumerate().skip(version.unwrap_or(0).max(0) as usize) {
                    sqlx::raw_sql(*step).execute(&mut *tx).await?;
                    sqlx::query("UPDATE aiplus_schema SET version = $1").bind(i as i64 + 1).execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// On a shared database only one instance may run the compute lifecycle (it holds the
    /// queue in memory and talks to the engines). `None`: another instance holds it.
    pub async fn try_compute_lock(&self) -> Result<Option<ComputeLock>, StoreError> {
        match &self.db {
            Db::Sqlite(_) => Ok(Some(ComputeLock { _conn: None })),
            Db::Postgres(pool) => {
                // A session lock lives as long as its connection, so the guard takes the
                // connection out of the pool; dropping the guard closes it and frees the lock.
                let mut conn = pool.acquire().await?.detach();
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(PG_COMPUTE_LOCK).fetch_one(&mut conn).await?;
                Ok(got.then_some(ComputeLock { _conn: Some(conn) }))
            }
        }
    }

    /// Writes job changes, their lifecycle events and usage events, all or nothing.
    pub async fn record<J: Serialize, E: Serialize, U: Serialize>(&self, r: &Record<'_, J, E, U>) -> Result<(), StoreError> {
        if r.jobs.is_empty() && r.events.is_empty() && r.usage.is_empty() {
            return Ok(());
        }
        // One flat JSON array, five values an event: [id, at_ms, tenant, pillar, {doc}, id, ...],
        // written in one pass. The document goes in as an object, not as an escaped string: the
        // databases' JSON functions hand an object element back as its JSON text.
        let usage_rows = {
            use serde::ser::{SerializeSeq, Serializer};
            let mut out = Vec::with_capacity(r.usage.len() * 384);
            let mut ser = serde_json::Serializer::new(&mut out);
            let mut seq = ser.serialize_seq(Some(r.usage.len() * 5))?;
            for u in &r.usage {
                seq.serialize_element(&u.id)?;
                seq.serialize_element(&u.at_ms)?;
                seq.serialize_element(&u.tenant)?;
                seq.serialize_element(&u.pillar)?;
                seq.serialize_element(&u.doc)?;
            }
            seq.end()?;
            // serde_json writes UTF-8 only; were it ever not, the empty batch fails in SQL and the
            // writer retries, rather than storing something else.
            String::from_utf8(out).unwrap_or_default()
        };
        let usage_sql = match self.db {
            Db::Sqlite(_) => USAGE_BATCH_SQLITE,
            Db::Postgres(_) => USAGE_BATCH_POSTGRES,
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin_write().await?;
            write_jobs!(tx, &r.jobs);
            for (job_id, at_ms, doc) in &r.events {
                sqlx::query(
                    "INSERT INTO job_events (job_id, seq, at_ms, doc)
                     VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_events WHERE job_id = $1), $2, $3)",
                )
                .bind(*job_id)
                .bind(*at_ms)
                .bind(serde_json::to_string(doc)?)
                .execute(&mut *tx)
                .await?;
            }
            if !r.usage.is_empty() {
                // The whole batch in one statement: one round trip to the database, however
                // many events a flush carries.
                sqlx::query(usage_sql).bind(&usage_rows).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await);
    }
}

/// Usage events from a flat JSON array, five values an event (id, at_ms, tenant, pillar, doc):
/// the one statement whose text differs between the databases (their JSON table functions
/// differ). SQLite's reads the array once and regroups the values by position, instead of
/// parsing each event again for each field.
const USAGE_BATCH_SQLITE: &str = "INSERT INTO usage_events (id, at_ms, tenant, pillar, doc)
     SELECT max(CASE WHEN key % 5 = 0 THEN value END), max(CASE WHEN key % 5 = 1 THEN value END),
            max(CASE WHEN key % 5 = 2 THEN value END), max(CASE WHEN key % 5 = 3 THEN value END),
            max(CASE WHEN key % 5 = 4 THEN value END)
     FROM json_each($1) GROUP BY key / 5";
const USAGE_BATCH_POSTGRES: &str = "INSERT INTO usage_events (id, at_ms, tenant, pillar, doc)
     SELECT e.value ->> 0, (e.value ->> 1)::bigint, e.value ->> 2, e.value ->> 3, e.value ->> 4
     FROM (SELECT jsonb_agg(v ORDER BY n) AS value FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS t(v, n)
           GROUP BY (n - 1) / 5) AS e";

/// Gives `path` the Unix permission bits `mode` (nothing to do elsewhere).
fn private(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
    Ok(())
}

/// Helpers for tests in this and other crates: not used by the product.
#[expect(clippy::panic, reason = "test helpers: a missing or broken test server must fail the test, not skip it")]
pub mod testing {
    fn fail(what: &str, e: impl std::fmt::Display) -> ! {
        panic!("test PostgreSQL: {what}: {e}")
    }

    /// A fresh PostgreSQL database on the test server (`AIPLUS_TEST_POSTGRES_URL`, started by
    /// `scripts/test`), as a URL. Without the server this fails, unless `AIPLUS_SKIP_POSTGRES=1`
    /// says to skip PostgreSQL on purpose (then `None`).
    pub async fn fresh_postgres() -> Option<String> {
        let Ok(url) = std::env::var("AIPLUS_TEST_POSTGRES_URL") else {
            if std::env::var("AIPLUS_SKIP_POSTGRES").as_deref() == Ok("1") {
                return None;
            }
            fail("AIPLUS_TEST_POSTGRES_URL is not set", "run scripts/test (it starts PostgreSQL) or set AIPLUS_SKIP_POSTGRES=1");
        };
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let admin = sqlx::PgPool::connect(&url).await.unwrap_or_else(|e| fail("connecting", e));
        // Test set-up only: CREATE DATABASE takes no bound parameters; the name is digits we made.
        for sql in [format!("DROP DATABASE IF EXISTS {name}"), format!("CREATE DATABASE {name}")] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&admin).await.unwrap_or_else(|e| fail("creating a database", e));
        }
        admin.close().await;
        let Some((base, _)) = url.rsplit_once('/') else { fail("AIPLUS_TEST_POSTGRES_URL", "has no database part") };
        Some(format!("{base}/{name}"))
    }

    /// Rewrites a column of one transparency-log row, as an attacker with the database would:
    /// the log must notice at its next start. `what` is `leaf` or `record` (rewrite entry
    /// `index`), `delete` (remove it), `delete-checkpoint` (remove the checkpoint of size
    /// `index`) or `forge` (add entry `index` with leaf `value` and record `{}`).
    pub async fn tamper_log(store: &crate::Store, index: i64, what: &str, value: &str) {
        let sql = match what {
            "leaf" => "UPDATE tlog_entries SET leaf = $1 WHERE idx = $2",
            "record" => "UPDATE tlog_entries SET record = $1 WHERE idx = $2",
            "delete-checkpoint" => "DELETE FROM tlog_checkpoints WHERE size = $2 AND $1 = $1",
            "forge" => "INSERT INTO tlog_entries (idx, at_ms, leaf, record) VALUES ($2, 0, $1, '{}')",
            _ => "DELETE FROM tlog_entries WHERE idx = $2 AND $1 = $1",
        };
        let done = match &store.db {
            crate::Db::Sqlite(p) => sqlx::query(sql).bind(value).bind(index).execute(p).await.map(|r| r.rows_affected()),
            crate::Db::Postgres(p) => sqlx::query(sql).bind(value).bind(index).execute(p).await.map(|r| r.rows_affected()),
        };
        if done.unwrap_or_else(|e| fail("tampering", e)) != 1 {
            fail("tampering", format!("no entry {index}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-memory SQLite store and, when the test server is there, a fresh PostgreSQL one.
    async fn both() -> Vec<Store> {
        let mut v = vec![Store::memory().await.unwrap()];
        if let Some(url) = testing::fresh_postgres().await {
            v.push(Store::connect_postgres(&url).await.unwrap());
        }
        v
    }

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
    async fn stored_responses_are_kept_per_tenant_within_a_byte_quota() {
        for s in both().await {
            let doc = "x".repeat(100);
            for i in 0..5 {
                s.put_response(&format!("r{i}"), "a", i, &doc, 350).await.unwrap();
            }
            // Three of 100 bytes fit in 350: the two oldest were forgotten.
            assert!(s.response("r0", "a").await.unwrap().is_none() && s.response("r1", "a").await.unwrap().is_none());
            assert_eq!(s.response("r4", "a").await.unwrap().as_deref(), Some(doc.as_str()));
            assert_eq!(s.response_bytes("a").await.unwrap(), 300);
            assert!(s.response("r4", "b").await.unwrap().is_none(), "another tenant's answers like a missing one");
            s.put_response("b0", "b", 0, &doc, 350).await.unwrap();
            assert_eq!(s.response_bytes("a").await.unwrap(), 300, "one tenant's quota is its own");
        }
    }

    #[tokio::test]
    async fn model_deployments_are_kept_replaced_and_forgotten() {
        for s in both().await {
            s.put_model_deployment("m", &serde_json::json!({"replicas": 1})).await.unwrap();
            s.put_model_deployment("m", &serde_json::json!({"replicas": 2})).await.unwrap();
            s.put_model_deployment("a", &serde_json::json!({"replicas": 0})).await.unwrap();
            let all: Vec<(String, serde_json::Value)> = s.model_deployments().await.unwrap();
            assert_eq!(all, [("a".to_string(), serde_json::json!({"replicas": 0})), ("m".to_string(), serde_json::json!({"replicas": 2}))]);
            assert!(s.delete_model_deployment("m").await.unwrap());
            assert!(!s.delete_model_deployment("m").await.unwrap());
            assert_eq!(s.model_deployments::<serde_json::Value>().await.unwrap().len(), 1);
        }
    }

    #[tokio::test]
    async fn idempotent_insert_returns_the_first_job() {
        for s in both().await {
            eprintln!("{}", s.kind());
            assert!(s.insert_job(&row("a", Some("k")), &[] as &[i32]).await.unwrap().is_ok());
            let again = s.insert_job(&row("b", Some("k")), &[] as &[i32]).await.unwrap();
            assert_eq!(again.unwrap_err().id, "a");
            assert!(s.get_job::<serde_json::Value>("b").await.unwrap().is_none());
            // No key: no deduplication.
            assert!(s.insert_job(&row("c", None), &[] as &[i32]).await.unwrap().is_ok());
            assert!(s.insert_job(&row("d", None), &[] as &[i32]).await.unwrap().is_ok());
        }
    }

    /// Writers that read before they write (a job's sequence number) run beside other writers
    /// on the file database without "database is locked": each takes the write lock up front
    /// and waits for it, instead of failing when its read snapshot went stale.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writers_wait_for_each_other_on_sqlite() {
        let dir = std::env::temp_dir().join(format!("aiplus-store-concurrent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let s = Store::open(&dir).await.unwrap();
        let mut tasks = Vec::new();
        for w in 0..4 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    let id = format!("w{w}-{i}");
                    assert!(s.insert_job(&row(&id, None), &[] as &[i32]).await?.is_ok(), "{id} is new");
                    s.update_jobs(&[(id.as_str(), "running", &serde_json::json!({"id": id}))]).await?;
                }
                Ok::<_, StoreError>(())
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let all: Vec<JobRow<serde_json::Value>> = s.jobs_in_states(&["running"]).await.unwrap();
        assert_eq!(all.len(), 200);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn list_filters_and_pages() {
        for s in both().await {
            eprintln!("{}", s.kind());
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
    }

    #[tokio::test]
    async fn record_is_all_or_nothing_and_usage_ids_are_unique() {
        for s in both().await {
            eprintln!("{}", s.kind());
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700, "the data directory is the server's alone");
            assert_eq!(mode(&dir.join("aiplus.db")), 0o600, "so is the database");
        }
        assert!(s.network_seeded().await.unwrap());
        let (h, c, m): (Vec<i32>, Vec<i32>, i32) = s.load_network().await.unwrap().unwrap();
        assert_eq!((h, c, m), (vec![1], vec![2], 3));
        assert_eq!(s.get_job::<serde_json::Value>("a").await.unwrap().unwrap().idempotency_key.as_deref(), Some("k"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn leases_never_pass_the_limit_even_when_raced() {
        for s in both().await {
            // Concurrent leases on separate connections race for one window, like instances do.
            let mut tasks = Vec::new();
            for _ in 0..40 {
                let st = s.clone();
                tasks.push(tokio::spawn(async move { st.lease("key:k:rpm", 7, 3, 100).await.unwrap() }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.unwrap();
            }
            assert_eq!(total, 100, "{}: 40 × 3 wanted, the limit is 100", s.kind());
            assert_eq!(s.lease("key:k:rpm", 7, 3, 100).await.unwrap(), 0);
            assert_eq!(s.lease("key:k:rpm", 8, 3, 100).await.unwrap(), 3, "a new window starts empty");
            s.charge("key:k:rpm", 7, 5).await.unwrap();
            assert_eq!(s.counter("key:k:rpm", 7).await.unwrap(), 105, "a charge counts even past the limit");
        }
    }

    #[tokio::test]
    async fn postgres_instances_share_keys_limits_and_the_compute_lock() {
        let Some(url) = testing::fresh_postgres().await else { return };
        let (a, b) = tokio::join!(Store::connect_postgres(&url), Store::connect_postgres(&url));
        let (a, b) = (a.unwrap(), b.unwrap());
        a.insert_key("k1", "h1", "t", &serde_json::json!({"id": "k1"})).await.unwrap();
        let seen: Vec<(String, serde_json::Value)> = b.keys(Some("t")).await.unwrap();
        assert_eq!(seen.len(), 1);
        b.set_tenant_settings("t", &serde_json::json!({"requests_per_min": 5})).await.unwrap();
        let limits: Vec<(String, serde_json::Value)> = a.tenant_settings().await.unwrap();
        assert_eq!(limits[0].1["requests_per_min"], 5);
        let first = a.try_compute_lock().await.unwrap();
        assert!(first.is_some());
        assert!(b.try_compute_lock().await.unwrap().is_none(), "only one instance runs compute");
        drop(first);
        // The server frees the lock when it sees the connection close, which takes a moment.
        let mut freed = false;
        for _ in 0..50 {
            if b.try_compute_lock().await.unwrap().is_some() {
                freed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(freed, "dropping the guard frees the lock");
    }

    /// Evaluation runs on both databases: kept in the order asked, found by state, updated in
    /// place.
    #[tokio::test]
    async fn eval_runs_behave_alike_on_both_databases() {
        for s in both().await {
            s.put_eval_run("r1", "queued", "{\"id\":\"r1\"}").await.unwrap();
            s.put_eval_run("r2", "queued", "{\"id\":\"r2\"}").await.unwrap();
            s.put_eval_run("r1", "running", "{\"id\":\"r1\",\"n\":1}").await.unwrap();
            assert_eq!(s.eval_runs(10).await.unwrap(), ["{\"id\":\"r2\"}", "{\"id\":\"r1\",\"n\":1}"], "newest first, r1 kept its place");
            assert_eq!(s.eval_runs_in("queued").await.unwrap(), [("r2".to_string(), "{\"id\":\"r2\"}".to_string())]);
            assert_eq!(s.eval_runs_in("running").await.unwrap().len(), 1);
            assert_eq!(s.eval_run("r1").await.unwrap().as_deref(), Some("{\"id\":\"r1\",\"n\":1}"));
            assert_eq!(s.eval_run("nope").await.unwrap(), None);
            assert_eq!(s.eval_runs(1).await.unwrap().len(), 1);
        }
    }

    /// Agents on both databases: versions numbered per agent and tenant, the newest listed, a
    /// delete hides every version and numbering goes on after it.
    #[tokio::test]
    async fn agents_are_versioned_alike_on_both_databases() {
        for s in both().await {
            assert_eq!(s.add_agent_version("t", "a", 1, "{\"v\":1}").await.unwrap(), 1);
            assert_eq!(s.add_agent_version("t", "a", 2, "{\"v\":2}").await.unwrap(), 2);
            assert_eq!(s.add_agent_version("u", "a", 3, "{\"u\":1}").await.unwrap(), 1, "numbered per tenant");
            assert_eq!(s.agent("t", "a", None).await.unwrap().unwrap().doc, "{\"v\":2}");
            assert_eq!(s.agent("t", "a", Some(1)).await.unwrap().unwrap().doc, "{\"v\":1}");
            assert_eq!(s.agent("v", "a", None).await.unwrap(), None, "another tenant's is not found");
            let listed: Vec<(String, i64)> = s.agents(None, 10).await.unwrap().into_iter().map(|r| (r.tenant, r.version)).collect();
            assert_eq!(listed, [("t".to_string(), 2), ("u".to_string(), 1)]);
            assert_eq!(s.agents(Some("u"), 10).await.unwrap().len(), 1);
            assert_eq!(s.agent_versions("t", "a").await.unwrap(), [(2, 2), (1, 1)]);
            assert!(s.delete_agent("t", "a").await.unwrap());
            assert!(!s.delete_agent("t", "a").await.unwrap(), "already gone");
            assert_eq!(s.agent("t", "a", Some(1)).await.unwrap(), None);
            assert_eq!(s.add_agent_version("t", "a", 4, "{}").await.unwrap(), 3, "a new agent never takes an old pin's number");
            assert_eq!(s.agent("t", "a", Some(2)).await.unwrap(), None);

            // Background runs: leased, claimed only when the lease lapsed, saved only by the
            // holder, cancelled once, forgotten after they end.
            let run = AgentRunRow { id: "r1".into(), tenant: "t".into(), state: "queued".into(), doc: "{}".into() };
            s.insert_agent_run(&run, "i1", 100, 200).await.unwrap();
            assert_eq!(s.live_agent_runs("t").await.unwrap(), 1);
            assert!(s.claim_agent_runs("i2", 150, 300, 10).await.unwrap().is_empty(), "the lease holds until 200");
            assert_eq!(s.claim_agent_runs("i2", 250, 350, 10).await.unwrap().len(), 1);
            assert!(!s.save_agent_run("r1", "i1", "in_progress", "{}", 260, 400).await.unwrap(), "i1 lost it");
            assert!(s.save_agent_run("r1", "i2", "in_progress", "{\"n\":1}", 260, 400).await.unwrap());
            assert!(s.renew_agent_run("r1", "i2", 500).await.unwrap());
            s.add_agent_run_events("r1", &[(0, "a".into()), (1, "b".into())]).await.unwrap();
            assert_eq!(s.agent_run_last_seq("r1").await.unwrap(), 1);
            assert_eq!(s.agent_run_events("r1", 0, 10).await.unwrap(), [(1, "b".to_string())]);
            assert!(s.agent_run("r1", "u").await.unwrap().is_none(), "another tenant's");
            assert!(!s.cancel_agent_run("r1", "u", 300).await.unwrap());
            assert!(s.cancel_agent_run("r1", "t", 300).await.unwrap());
            assert!(!s.save_agent_run("r1", "i2", "completed", "{}", 310, 310).await.unwrap(), "a cancelled run is not saved over");
            assert_eq!(s.live_agent_runs("t").await.unwrap(), 0);
            assert!(s.claim_agent_approval("t", "mcpr_1", 10).await.unwrap());
            assert!(!s.claim_agent_approval("t", "mcpr_1", 11).await.unwrap(), "an approval is claimed once");
            assert_eq!(s.forget_agent_runs(301).await.unwrap(), 1);
            assert!(s.agent_run("r1", "t").await.unwrap().is_none());
            assert!(s.agent_run_events("r1", -1, 10).await.unwrap().is_empty());
            assert!(s.claim_agent_approval("t", "mcpr_1", 12).await.unwrap(), "forgotten with the runs");
        }
    }

    /// Conversations on both databases: items in order, paged both ways from an item, limits
    /// checked as items are added, a tenant sees only its own, retention forgets old ones.
    #[tokio::test]
    async fn conversations_behave_alike_on_both_databases() {
        let limits = ItemLimits { max_items: 3, max_bytes: 1000, max_tenant_bytes: 2000 };
        for s in both().await {
            s.create_conversation("c1", "t", 10, "{}").await.unwrap();
            let items = |ids: &[&str]| ids.iter().map(|i| (i.to_string(), format!("{{\"id\":\"{i}\"}}"))).collect::<Vec<_>>();
            assert_eq!(s.add_conversation_items("c1", "t", 11, &items(&["a", "b"]), limits).await.unwrap(), Some(true));
            assert_eq!(s.add_conversation_items("c1", "t", 12, &items(&["c", "d"]), limits).await.unwrap(), Some(false), "over 3 items");
            assert_eq!(s.add_conversation_items("c1", "u", 12, &items(&["c"]), limits).await.unwrap(), None, "another tenant's");
            assert_eq!(s.add_conversation_items("c1", "t", 13, &items(&["c"]), limits).await.unwrap(), Some(true));
            let ids = |v: Option<Vec<(String, String)>>| v.unwrap().into_iter().map(|(i, _)| i).collect::<Vec<_>>();
            assert_eq!(ids(s.conversation_items("c1", "t", None, false, 10).await.unwrap()), ["a", "b", "c"]);
            assert_eq!(ids(s.conversation_items("c1", "t", None, true, 2).await.unwrap()), ["c", "b"]);
            assert_eq!(ids(s.conversation_items("c1", "t", Some("b"), true, 10).await.unwrap()), ["a"]);
            assert_eq!(ids(s.conversation_items("c1", "t", Some("a"), false, 10).await.unwrap()), ["b", "c"]);
            assert_eq!(s.conversation_items("c1", "t", Some("zz"), false, 10).await.unwrap(), None);
            assert_eq!(s.conversation_items("c1", "u", None, false, 10).await.unwrap(), None);
            assert!(s.delete_conversation_item("c1", "t", "b", 14).await.unwrap());
            assert!(!s.delete_conversation_item("c1", "u", "a", 14).await.unwrap());
            let c = s.conversation("c1", "t").await.unwrap().unwrap();
            assert_eq!((c.items, c.updated_ms), (2, 14));
            assert_eq!(s.conversation_item("c1", "t", "c").await.unwrap().as_deref(), Some("{\"id\":\"c\"}"));
            assert!(s.set_conversation_metadata("c1", "t", "{\"k\":\"v\"}", 15).await.unwrap());
            s.create_conversation("c2", "t", 1, "{}").await.unwrap();
            assert_eq!(s.forget_conversations(5).await.unwrap(), 1, "c2 was last used before 5");
            assert!(s.conversation("c2", "t").await.unwrap().is_none());
            assert!(!s.delete_conversation("c1", "u").await.unwrap());
            assert!(s.delete_conversation("c1", "t").await.unwrap());
            assert_eq!(s.conversation_item("c1", "t", "c").await.unwrap(), None);
        }
    }

    /// Governance rows on both databases: one open alert per key, filings by revision, blobs
    /// once, counters summed, deliveries due, incidents by revision, end users followed.
    #[tokio::test]
    async fn governance_rows_behave_alike_on_both_databases() {
        for s in both().await {
            let alert = |id: &str, key: &str, tenant: Option<&str>| AlertRow {
                id: id.into(),
                key: key.into(),
                tenant: tenant.map(Into::into),
                opened_ms: 10,
                closed_ms: None,
                doc: "{}".into(),
            };
            assert!(s.raise_alert(&alert("a1", "k", Some("t"))).await.unwrap());
            assert!(!s.raise_alert(&alert("a2", "k", None)).await.unwrap(), "one open alert per key");
            assert_eq!(s.open_alert_keys("k").await.unwrap(), ["k"]);
            assert!(s.close_alert("k", 20).await.unwrap());
            assert_eq!(s.last_closed_alert_ms("k").await.unwrap(), Some(20));
            assert!(s.raise_alert(&alert("a3", "k", None)).await.unwrap(), "a closed alert frees its key");
            assert_eq!(s.alerts(Some("t"), 0, 10).await.unwrap().len(), 1);
            assert_eq!(s.alerts(None, 0, 10).await.unwrap().len(), 2);
            assert_eq!(s.alerts(None, 11, 10).await.unwrap().len(), 1, "closed ones only since");
            assert!(s.open_alert("k").await.unwrap().is_some_and(|a| a.id == "a3"));

            assert!(s.put_filing("f", Some("t"), 1, "{\"rev\":1}", "{}").await.unwrap());
            assert!(!s.put_filing("f", Some("t"), 1, "{}", "{}").await.unwrap(), "revision 1 is taken");
            assert!(s.put_filing("f", Some("t"), 2, "{\"rev\":2}", "{}").await.unwrap());
            assert_eq!(s.filings_since(0).await.unwrap().len(), 1);
            assert_eq!(s.filing_events("f").await.unwrap().len(), 2);
            s.put_blob("ab", b"bytes").await.unwrap();
            s.put_blob("ab", b"other").await.unwrap();
            assert_eq!(s.blob("ab").await.unwrap().as_deref(), Some(&b"bytes"[..]), "stored once");

            s.put_monitor_bucket("i1", "m", 0, "{\"n\":1}").await.unwrap();
            s.put_monitor_bucket("i1", "m", 0, "{\"n\":2}").await.unwrap();
            s.put_monitor_bucket("i2", "m", 10_000, "{}").await.unwrap();
            assert_eq!(s.monitor_buckets(0).await.unwrap().len(), 2);
            assert_eq!(s.prune_monitor_buckets(5_000).await.unwrap(), 1);
            assert!(!s.put_monitor_rule("r", "{}").await.unwrap());
            assert!(s.put_monitor_rule("r", "{}").await.unwrap(), "existed");
            assert!(s.delete_monitor_rule("r").await.unwrap());

            let d = DeliveryRow { id: "d".into(), state: "pending".into(), next_ms: 5, doc: "{}".into() };
            s.put_delivery(&d).await.unwrap();
            assert!(s.due_deliveries(4, 10).await.unwrap().is_empty());
            assert_eq!(s.due_deliveries(5, 10).await.unwrap().len(), 1);
            assert_eq!(s.deliveries("pending", 10).await.unwrap().len(), 1);

            assert!(s.put_incident("i", 1, "{}").await.unwrap());
            assert!(!s.put_incident("i", 3, "{}").await.unwrap());
            assert_eq!(s.incidents_since(0).await.unwrap().len(), 1);
            assert!(s.put_end_user("t", "u", None, "{}").await.unwrap());
            assert!(!s.put_end_user("t", "u", None, "{}").await.unwrap(), "inserted by another meanwhile");
            let (seq, _) = s.end_user("t", "u").await.unwrap().unwrap();
            assert!(s.put_end_user("t", "u", Some(seq), "{\"x\":1}").await.unwrap());
            assert!(!s.put_end_user("t", "u", Some(seq), "{\"x\":2}").await.unwrap(), "a stale read writes nothing");
            let users = s.end_users_since(0).await.unwrap();
            assert_eq!(users.len(), 1);
            assert_eq!(s.end_user("t", "u").await.unwrap().map(|r| r.1).as_deref(), Some("{\"x\":1}"));
        }
    }

    /// Collections on both databases: a document with its chunks, replaced whole, listed per
    /// tenant with their sizes, read back in order for a search, deleted alone or with its
    /// collection; limits checked in the write; another tenant's are never touched.
    #[tokio::test]
    async fn collections_behave_alike_on_both_databases() {
        let doc = |c: &str, id: &str, chunks: i64| DocumentRow {
            id: id.into(),
            collection: c.into(),
            filename: format!("{id}.md"),
            bytes: 10 * chunks,
            chunks,
            created_ms: 5,
            attributes: "{\"k\":\"v\"}".into(),
        };
        let chunks = |n: usize| (0..n).map(|i| (format!("text {i}"), format!("vec{i}"))).collect::<Vec<_>>();
        let lim = CollectionLimits { max_collections: 2, max_documents: 2, max_chunks: 5, max_tenant_bytes: 70 };
        for s in both().await {
            let put = |t: &'static str, d: DocumentRow| {
                let s = s.clone();
                async move {
                    let n = d.chunks as usize;
                    s.put_collection_document(t, &d, Some(&chunks(n)), lim).await.unwrap()
                }
            };
            assert_eq!(put("t", doc("kb", "a", 2)).await, PutDocument::Added);
            assert_eq!(put("t", doc("kb", "b", 1)).await, PutDocument::Added);
            let probe = s.put_collection_document("t", &doc("kb", "b", 2), None, lim).await.unwrap();
            assert_eq!(probe, PutDocument::Replaced, "a probe says how a write would end");
            assert_eq!(s.collection_documents("t", "kb", 10).await.unwrap()[1].chunks, 1, "and writes nothing");
            assert_eq!(put("u", doc("kb", "a", 1)).await, PutDocument::Added, "another tenant's");
            assert_eq!(put("t", doc("kb", "a", 3)).await, PutDocument::Replaced);
            assert_eq!(put("t", doc("kb", "c", 1)).await, PutDocument::TooManyDocuments);
            assert_eq!(put("t", doc("kb", "a", 5)).await, PutDocument::TooManyChunks { held: 1 });
            assert_eq!(put("t", doc("k2", "x", 4)).await, PutDocument::TooManyBytes { held: 40 });
            assert_eq!(put("t", doc("k2", "x", 1)).await, PutDocument::Added);
            assert_eq!(put("t", doc("k3", "x", 1)).await, PutDocument::TooManyCollections);
            let c = s.collections("t", 10).await.unwrap();
            assert_eq!(c.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["k2", "kb"]);
            assert_eq!((c[1].documents, c[1].chunks, c[1].bytes), (2, 4, 40));
            let docs = s.collection_documents("t", "kb", 10).await.unwrap();
            assert_eq!(docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
            assert_eq!(docs[0].attributes, "{\"k\":\"v\"}");
            let v = s.collection_vectors("t", "kb", 10).await.unwrap();
            let at: Vec<(&str, i64, &str)> = v.iter().map(|(d, i, v)| (d.as_str(), *i, v.as_str())).collect();
            assert_eq!(at, [("a", 0, "vec0"), ("a", 1, "vec1"), ("a", 2, "vec2"), ("b", 0, "vec0")]);
            assert_eq!(s.collection_vectors("t", "kb", 2).await.unwrap().len(), 2, "a search reads at most its limit");
            let c = s.collection_chunk("t", "kb", "a", 2).await.unwrap().unwrap();
            assert_eq!((c.filename.as_str(), c.text.as_str()), ("a.md", "text 2"));
            assert!(s.collection_chunk("u", "kb", "a", 2).await.unwrap().is_none());
            assert_eq!(s.delete_collection_documents("t", "kb", Some("a")).await.unwrap(), 1);
            assert_eq!(s.collection_vectors("t", "kb", 10).await.unwrap().len(), 1);
            assert_eq!(s.delete_collection_documents("t", "kb", Some("zz")).await.unwrap(), 0);
            assert_eq!(s.delete_collection_documents("t", "kb", None).await.unwrap(), 1);
            assert_eq!(s.collections("t", 10).await.unwrap().len(), 1);
            assert_eq!(s.collection_vectors("u", "kb", 10).await.unwrap().len(), 1, "another tenant's stays");
        }
    }
}
